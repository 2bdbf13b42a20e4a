/* replay.c — `omsctl replay`: read a bounded range of a topic back, filter
 * it, and write it out (JSON lines) or republish it to another topic. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"
#include "events/events.h"
#include "kafka/kafka.h"
#include "registry/registry.h"

static void replay_help(FILE *out)
{
    fprintf(out,
            "usage: omsctl replay --topic T [--topic T2...] --from WHERE [--to WHERE]\n"
            "                     [--partition N] [--filter K=V[,K=V...]] [--rate N]\n"
            "                     [--output FILE | --republish TOPIC]\n"
            "\n"
            "Read events back from Kafka and write them as JSON lines (the frames a\n"
            "WebSocket client gets, `id` being TOPIC:PARTITION:OFFSET), or copy the raw\n"
            "records to another topic. Stops at --to, or at the log end as it was when\n"
            "the replay started.\n"
            "WHERE is an offset (42, applied to every partition), beginning, end, an\n"
            "RFC 3339 time (2026-11-25T18:00:00Z) or a duration back from now (-15m,\n"
            "-2h, -1d, -90s). --to is inclusive for offsets and times.\n"
            "TOPIC may be orders, inventory, notifications (the configured names).\n"
            "\n"
            "options:\n"
            "  --topic T          topic to read (repeatable)\n"
            "  --from WHERE       where to start (required)\n"
            "  --to WHERE         where to stop (default: the end at start)\n"
            "  --partition N      only partition N\n"
            "  --filter K=V,...   keep events matching every pair; keys: type (OrderCreated\n"
            "                     or order_update...), userId, orderId, productId, status\n"
            "  --rate N           at most N records per second\n"
            "  --output FILE      write JSON lines to FILE instead of stdout\n"
            "  --republish TOPIC  produce each kept record, unchanged, with its key and\n"
            "                     headers plus oms.replay.source=TOPIC:PARTITION:OFFSET\n"
            "  --brokers LIST     Kafka bootstrap servers (default: $KAFKA_BROKERS, config)\n"
            "  --config FILE      configuration file (default: $OMS_CONFIG, none)\n"
            "  --json             the summary as JSON (on stdout with --output or --republish,\n"
            "                     else on stderr)\n"
            "  -h, --help         this help\n"
            "\n"
            "A progress bar shows on stderr when it is a terminal.\n"
            "exit status: 0 ok, 1 kafka failed or records could not be decoded, 2 usage\n");
}

/* A position: an offset, a time (ms), or beginning/end. */
typedef struct where {
    enum { W_NONE, W_OFFSET, W_TIME, W_BEGIN, W_END } kind;
    int64_t v;
} where;

static int parse_where(const char *s, where *w)
{
    char *end;
    if (strcmp(s, "beginning") == 0) {
        w->kind = W_BEGIN;
        return 0;
    }
    if (strcmp(s, "end") == 0) {
        w->kind = W_END;
        return 0;
    }
    if (s[0] == '-' && s[1]) {
        errno = 0;
        long long n = strtoll(s + 1, &end, 10);
        long long mul = 0;
        if (!errno && end != s + 1 && n > 0) {
            if (strcmp(end, "s") == 0)
                mul = 1000;
            else if (strcmp(end, "m") == 0)
                mul = 60000;
            else if (strcmp(end, "h") == 0)
                mul = 3600000;
            else if (strcmp(end, "d") == 0)
                mul = 86400000;
        }
        if (!mul)
            return -1;
        w->kind = W_TIME;
        w->v = oms_now_ms() - n * mul;
        return 0;
    }
    errno = 0;
    long long off = strtoll(s, &end, 10);
    if (!errno && *end == '\0' && end != s && off >= 0) {
        w->kind = W_OFFSET;
        w->v = off;
        return 0;
    }
    int64_t ms;
    if (oms_parse_iso8601_ms(s, &ms) == OMS_OK) {
        w->kind = W_TIME;
        w->v = ms;
        return 0;
    }
    return -1;
}

typedef struct filter {
    bool has_type;
    oms_event_type type;
    const char *ws_name; /* order_update etc. */
    int64_t user_id, product_id;
    const char *order_id, *status;
} filter;

static int parse_filter(char *spec, filter *f, const char *pc)
{
    for (char *save = NULL, *kv = strtok_r(spec, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(kv, '=');
        if (!eq || eq == kv || !eq[1])
            return oms_cli_usage_error(pc, "--filter: expected KEY=VALUE, got '%s'", kv);
        *eq = '\0';
        const char *k = kv, *v = eq + 1;
        char *end;
        if (strcmp(k, "type") == 0) {
            if (oms_event_type_parse(v, &f->type) == OMS_OK) {
                f->has_type = true;
            } else if (strcmp(v, "order_update") == 0 || strcmp(v, "inventory_update") == 0 ||
                       strcmp(v, "user_notification") == 0 ||
                       strcmp(v, "system_notification") == 0) {
                f->ws_name = v;
            } else {
                return oms_cli_usage_error(pc, "--filter: unknown type '%s'", v);
            }
        } else if (strcmp(k, "userId") == 0 || strcmp(k, "productId") == 0) {
            long long n = strtoll(v, &end, 10);
            if (*end || n <= 0)
                return oms_cli_usage_error(pc, "--filter: %s must be a positive integer", k);
            if (k[0] == 'u')
                f->user_id = n;
            else
                f->product_id = n;
        } else if (strcmp(k, "orderId") == 0) {
            f->order_id = v;
        } else if (strcmp(k, "status") == 0) {
            f->status = v;
        } else {
            return oms_cli_usage_error(pc, "--filter: unknown key '%s' (type, userId, orderId, "
                                           "productId, status)",
                                       k);
        }
    }
    return 0;
}

static bool matches(const filter *f, const oms_event *ev)
{
    if (f->has_type && ev->type != f->type)
        return false;
    if (f->ws_name && strcmp(oms_event_ws_name(ev->type), f->ws_name) != 0)
        return false;
    if (f->user_id && ev->user_id != f->user_id)
        return false;
    if (f->product_id && (ev->type != OMS_EV_INVENTORY_CHANGED || ev->product_id != f->product_id))
        return false;
    if (f->order_id && (!ev->order_id || strcmp(ev->order_id, f->order_id) != 0))
        return false;
    if (f->status && (!ev->status || strcmp(ev->status, f->status) != 0))
        return false;
    return true;
}

static bool filter_empty(const filter *f)
{
    return !f->has_type && !f->ws_name && !f->user_id && !f->product_id && !f->order_id &&
           !f->status;
}

typedef struct rpart {
    const char *topic;
    int32_t partition;
    int64_t start, stop; /* [start, stop) */
    bool done;
    const rd_kafka_topic_t *rkt; /* the messages' topic handle, once seen */
    char pos[280];               /* "TOPIC:PARTITION:" (the offset goes after) */
    size_t poslen;
} rpart;

/* The part a message belongs to: the last one (messages come in runs of one
 * partition), else by topic handle and partition, else by name (the first
 * message of each partition, which then records the handle). */
static rpart *find_part(rpart *parts, size_t nparts, rpart **last, const rd_kafka_message_t *m)
{
    rpart *rp = *last;
    if (rp && rp->rkt == m->rkt && rp->partition == m->partition)
        return rp;
    for (size_t i = 0; i < nparts; i++)
        if (parts[i].rkt == m->rkt && parts[i].partition == m->partition && m->rkt)
            return *last = &parts[i];
    const char *tname = m->rkt ? rd_kafka_topic_name(m->rkt) : "";
    for (size_t i = 0; i < nparts; i++)
        if (parts[i].partition == m->partition && strcmp(parts[i].topic, tname) == 0) {
            parts[i].rkt = m->rkt;
            return *last = &parts[i];
        }
    return NULL;
}

/* rp->pos followed by the offset, NUL-terminated, into pos[300] */
static void format_pos(const rpart *rp, int64_t offset, char *pos)
{
    memcpy(pos, rp->pos, rp->poslen);
    char *o = pos + rp->poslen, tmp[24];
    uint64_t u = offset < 0 ? (uint64_t)0 - (uint64_t)offset : (uint64_t)offset;
    int n = 0;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (offset < 0)
        *o++ = '-';
    while (n)
        *o++ = tmp[--n];
    *o = '\0';
}

#define OUT_CHUNK (1u << 20) /* write the output in pieces of about this size */
#define BATCH 1024           /* messages taken from the consumer queue at once */

/* The JSON lines go out through a thread of their own: copying them into
 * the page cache (a quarter of replay's time to a file) then overlaps the
 * decoding. A ring of OUT_SLOTS buffers: the reading loop fills
 * slot[(head + n) % OUT_SLOTS], the writer writes slot[head] and the n - 1
 * after it, in order. Without the thread, the loop writes itself. */
#define OUT_SLOTS 4

typedef struct lines_out {
    FILE *out;
    oms_buf slot[OUT_SLOTS];
    size_t head, n, cur; /* cur: the slot being filled */
    bool closing, failed, threaded;
    int err; /* errno of the first failed write */
    pthread_mutex_t mu;
    pthread_cond_t work, space;
    pthread_t th;
} lines_out;

static void lines_write(lines_out *lo, oms_buf *b)
{
    if (b->len && fwrite(b->p, 1, b->len, lo->out) != b->len && !lo->failed) {
        lo->failed = true;
        lo->err = errno;
    }
    b->len = 0;
}

static void *lines_main(void *arg)
{
    lines_out *lo = arg;
    pthread_mutex_lock(&lo->mu);
    for (;;) {
        while (lo->n == 0 && !lo->closing)
            pthread_cond_wait(&lo->work, &lo->mu);
        if (lo->n == 0)
            break;
        oms_buf *b = &lo->slot[lo->head];
        pthread_mutex_unlock(&lo->mu);
        lines_write(lo, b);
        pthread_mutex_lock(&lo->mu);
        lo->head = (lo->head + 1) % OUT_SLOTS;
        lo->n--;
        if (lo->n == 0)
            fflush(lo->out); /* caught up: let a reader of a pipe see it all */
        pthread_cond_signal(&lo->space);
    }
    pthread_mutex_unlock(&lo->mu);
    return NULL;
}

static void lines_start(lines_out *lo, FILE *out)
{
    memset(lo, 0, sizeof *lo);
    lo->out = out;
    pthread_mutex_init(&lo->mu, NULL);
    pthread_cond_init(&lo->work, NULL);
    pthread_cond_init(&lo->space, NULL);
    lo->threaded = pthread_create(&lo->th, NULL, lines_main, lo) == 0;
}

/* The slot being filled. */
static oms_buf *lines_buf(lines_out *lo)
{
    return &lo->slot[lo->cur];
}

/* Hand the filled slot over (when it has anything) and get the next. */
static void lines_submit(lines_out *lo)
{
    oms_buf *b = &lo->slot[lo->cur];
    if (b->len == 0)
        return;
    if (!lo->threaded) {
        lines_write(lo, b);
        return;
    }
    pthread_mutex_lock(&lo->mu);
    lo->n++;
    pthread_cond_signal(&lo->work);
    while (lo->n == OUT_SLOTS)
        pthread_cond_wait(&lo->space, &lo->mu);
    lo->cur = (lo->head + lo->n) % OUT_SLOTS;
    pthread_mutex_unlock(&lo->mu);
}

/* Write what is left, stop the thread. False when a write failed. */
static bool lines_finish(lines_out *lo)
{
    lines_submit(lo);
    if (lo->threaded) {
        pthread_mutex_lock(&lo->mu);
        lo->closing = true;
        pthread_cond_signal(&lo->work);
        pthread_mutex_unlock(&lo->mu);
        pthread_join(lo->th, NULL);
    }
    for (int i = 0; i < OUT_SLOTS; i++)
        free(lo->slot[i].p);
    pthread_mutex_destroy(&lo->mu);
    pthread_cond_destroy(&lo->work);
    pthread_cond_destroy(&lo->space);
    if (lo->failed)
        errno = lo->err;
    return !lo->failed;
}

static void progress(uint64_t done, uint64_t total, uint64_t start_ns, bool final)
{
    double secs = (double)(oms_mono_ns() - start_ns) / 1e9;
    double rate = secs > 0 ? (double)done / secs : 0;
    double frac = total ? (double)done / (double)total : 1;
    if (frac > 1)
        frac = 1;
    int width = 30, fill = (int)(frac * width);
    char bar[64];
    for (int i = 0; i < width; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[width] = '\0';
    double eta = rate > 0 && total > done ? (double)(total - done) / rate : 0;
    fprintf(stderr, "\r[%s] %3.0f%% %" PRIu64 "/%" PRIu64 " %.0f rec/s ETA %.0fs   %s", bar,
            frac * 100, done, total, rate, eta, final ? "\n" : "");
}

int cmd_replay(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"topic", required_argument, NULL, 't'},     {"from", required_argument, NULL, 'f'},
        {"to", required_argument, NULL, 'T'},        {"partition", required_argument, NULL, 'p'},
        {"filter", required_argument, NULL, 'F'},    {"rate", required_argument, NULL, 'r'},
        {"output", required_argument, NULL, 'o'},    {"republish", required_argument, NULL, 'R'},
        {"brokers", required_argument, NULL, 'b'},   {"config", required_argument, NULL, 'c'},
        {"json", no_argument, NULL, 'J'},            {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *pc = "omsctl replay";
    const char *topics_arg[32];
    size_t ntopics = 0;
    const char *from_s = NULL, *to_s = NULL, *output = NULL, *republish = NULL;
    const char *brokers = NULL, *config = NULL;
    char *filter_s = NULL;
    long partition = -1, rate = 0;
    bool json = false;
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (opt) {
        case 't':
            if (ntopics == OMS_ARRAY_LEN(topics_arg))
                return oms_cli_usage_error(pc, "too many --topic");
            topics_arg[ntopics++] = optarg;
            break;
        case 'f': from_s = optarg; break;
        case 'T': to_s = optarg; break;
        case 'p':
            if (oms_cli_parse_long(pc, "--partition", optarg, 0, 100000, &partition))
                return OMS_EXIT_USAGE;
            break;
        case 'F': filter_s = optarg; break;
        case 'r':
            if (oms_cli_parse_long(pc, "--rate", optarg, 1, 100000000, &rate))
                return OMS_EXIT_USAGE;
            break;
        case 'o': output = optarg; break;
        case 'R': republish = optarg; break;
        case 'b': brokers = optarg; break;
        case 'c': config = optarg; break;
        case 'J': json = true; break;
        case 'h': replay_help(stdout); return OMS_EXIT_OK;
        default: return oms_cli_usage_error(pc, "unknown or incomplete option");
        }
    }
    if (optind < argc)
        return oms_cli_usage_error(pc, "unexpected argument '%s'", argv[optind]);
    if (!ntopics)
        return oms_cli_usage_error(pc, "--topic is required");
    if (!from_s)
        return oms_cli_usage_error(pc, "--from is required (an offset, beginning, an RFC 3339 "
                                       "time or -DURATION)");
    if (output && republish)
        return oms_cli_usage_error(pc, "--output and --republish exclude each other");
    where from = {0}, to = {0};
    if (parse_where(from_s, &from))
        return oms_cli_usage_error(pc, "--from: cannot read '%s' (an offset, beginning, end, "
                                       "2026-11-25T18:00:00Z or -15m)",
                                   from_s);
    if (to_s && parse_where(to_s, &to))
        return oms_cli_usage_error(pc, "--to: cannot read '%s' (an offset, end, "
                                       "2026-11-25T18:00:00Z or -15m)",
                                   to_s);
    filter flt = {0};
    char *fcopy = filter_s ? strdup(filter_s) : NULL;
    if (fcopy && parse_filter(fcopy, &flt, pc)) {
        free(fcopy);
        return OMS_EXIT_USAGE;
    }

    oms_config cfg;
    int rc = ctl_config(&cfg, config, brokers);
    if (rc) {
        free(fcopy);
        return rc;
    }
    const char *topics[32];
    for (size_t i = 0; i < ntopics; i++) {
        const char *t = topics_arg[i];
        topics[i] = strcmp(t, "orders") == 0          ? cfg.kafka.topic_orders
                    : strcmp(t, "inventory") == 0     ? cfg.kafka.topic_inventory
                    : strcmp(t, "notifications") == 0 ? cfg.kafka.topic_notifications
                                                      : t;
    }
    char err[512];
    int exit_code = OMS_EXIT_OK;
    FILE *out = stdout;
    oms_events *events = NULL;
    oms_kafka_reader *r = NULL;
    oms_kafka_producer *p = NULL;
    rpart *parts = NULL;
    size_t nparts = 0;
    rd_kafka_topic_partition_list_t *l = NULL;
    bool need_decode = !republish || !filter_empty(&flt);

    events = oms_registry_events_new(&cfg, cfg.schemas.dir, err, sizeof err);
    if (!events) {
        fprintf(stderr, "omsctl: cannot load schemas: %s\n", err);
        exit_code = OMS_EXIT_USAGE;
        goto out;
    }
    /* Replay reads a bounded range of every partition as fast as it can.
     * librdkafka stops fetching a partition while the consumer queue (every
     * partition forwarded into one) holds queued.min.messages, and 2.0 only
     * looks again at its next wake-up, up to a second later: with 18
     * partitions one fetch response (1 MB each) is about the default 100000
     * messages, which stalled replay for a second at a time. The queue stays
     * bounded by queued.max.messages.kbytes. The configured properties come
     * after this one, so they can still override it. */
    oms_kv props[OMS_CONFIG_MAX_PROPS + 1];
    size_t np = 0;
    props[np++] = (oms_kv){"queued.min.messages", "1000000"};
    for (size_t i = 0; i < cfg.kafka.nprops && np < OMS_ARRAY_LEN(props); i++)
        props[np++] = cfg.kafka.props[i];
    r = oms_kafka_reader_new(cfg.kafka.brokers, props, np, err, sizeof err);
    if (!r) {
        fprintf(stderr, "omsctl: %s\n", err);
        exit_code = OMS_EXIT_FAIL;
        goto out;
    }
    /* Learn the partitions with a first reader (assign validates topics and
     * partitions), assigned at the end so that it fetches nothing: assigned
     * at the beginning, it prefetched the whole log while the ranges were
     * computed, all thrown away by the assignment with the real offsets. */
    int n = oms_kafka_reader_assign(r, topics, ntopics, (int32_t)partition, OMS_KAFKA_FROM_END,
                                    false, 10000, err, sizeof err);
    if (n < 0) {
        fprintf(stderr, "omsctl: %s (kafka at '%s')\n", err, cfg.kafka.brokers);
        exit_code = OMS_EXIT_FAIL;
        goto out;
    }
    rd_kafka_t *rk = oms_kafka_reader_handle(r);
    rd_kafka_topic_partition_list_t *assigned = NULL;
    if (rd_kafka_assignment(rk, &assigned) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        fprintf(stderr, "omsctl: cannot read the assignment\n");
        exit_code = OMS_EXIT_FAIL;
        goto out;
    }
    /* a plain copy: the assignment's elements hold references that keep the
     * reader from being destroyed while the list lives */
    l = rd_kafka_topic_partition_list_new(assigned->cnt);
    for (int i = 0; i < assigned->cnt; i++)
        rd_kafka_topic_partition_list_add(l, assigned->elems[i].topic,
                                          assigned->elems[i].partition);
    rd_kafka_topic_partition_list_destroy(assigned);
    /* Compute the ranges and read with a second reader, not assigned until
     * then: on the first one's connection each watermark query waits behind
     * a fetch long-polling at the end (fetch.wait.max.ms, 18 x 50 ms), and
     * its queue still delivers what that assignment produced (partition-EOF
     * events claiming the end of the log, which end partitions early). */
    oms_kafka_reader_free(r);
    r = oms_kafka_reader_new(cfg.kafka.brokers, props, np, err, sizeof err);
    if (!r) {
        fprintf(stderr, "omsctl: %s\n", err);
        exit_code = OMS_EXIT_FAIL;
        goto out;
    }
    rk = oms_kafka_reader_handle(r);
    parts = calloc((size_t)l->cnt + 1, sizeof *parts);
    rd_kafka_topic_partition_list_t *starts = rd_kafka_topic_partition_list_copy(l);
    rd_kafka_topic_partition_list_t *stops = rd_kafka_topic_partition_list_copy(l);
    for (int i = 0; i < l->cnt; i++) {
        starts->elems[i].offset = from.kind == W_TIME ? from.v : 0;
        stops->elems[i].offset = to.kind == W_TIME ? to.v + 1 : 0;
    }
    if (from.kind == W_TIME && rd_kafka_offsets_for_times(rk, starts, 10000)) {
        fprintf(stderr, "omsctl: cannot look up offsets by time\n");
        exit_code = OMS_EXIT_FAIL;
    }
    if (to.kind == W_TIME && rd_kafka_offsets_for_times(rk, stops, 10000)) {
        fprintf(stderr, "omsctl: cannot look up offsets by time\n");
        exit_code = OMS_EXIT_FAIL;
    }
    uint64_t total = 0;
    for (int i = 0; exit_code == OMS_EXIT_OK && i < l->cnt; i++) {
        int64_t lo = 0, hi = 0;
        if (rd_kafka_query_watermark_offsets(rk, l->elems[i].topic, l->elems[i].partition, &lo,
                                             &hi, 10000)) {
            fprintf(stderr, "omsctl: cannot read the end of '%s' partition %d\n",
                    l->elems[i].topic, l->elems[i].partition);
            exit_code = OMS_EXIT_FAIL;
            break;
        }
        rpart *rp = &parts[nparts++];
        rp->topic = l->elems[i].topic;
        rp->partition = l->elems[i].partition;
        snprintf(rp->pos, sizeof rp->pos, "%.250s:%d:", rp->topic, (int)rp->partition);
        rp->poslen = strlen(rp->pos);
        switch (from.kind) {
        case W_OFFSET: rp->start = from.v < lo ? lo : from.v; break;
        case W_TIME: rp->start = starts->elems[i].offset < 0 ? hi : starts->elems[i].offset; break;
        case W_END: rp->start = hi; break;
        default: rp->start = lo; break;
        }
        switch (to.kind) {
        case W_OFFSET: rp->stop = to.v + 1 < hi ? to.v + 1 : hi; break;
        case W_TIME: rp->stop = stops->elems[i].offset < 0 ? hi : stops->elems[i].offset; break;
        default: rp->stop = hi; break;
        }
        if (rp->start >= rp->stop) {
            rp->done = true;
        } else {
            total += (uint64_t)(rp->stop - rp->start);
        }
        l->elems[i].offset = rp->start;
    }
    rd_kafka_topic_partition_list_destroy(starts);
    rd_kafka_topic_partition_list_destroy(stops);
    if (exit_code != OMS_EXIT_OK)
        goto out;
    rd_kafka_assign(rk, l);

    if (output && !(out = fopen(output, "w"))) {
        fprintf(stderr, "omsctl: cannot write '%s': %s\n", output, strerror(errno));
        out = stdout;
        exit_code = OMS_EXIT_USAGE;
        goto out;
    }
    if (republish) {
        p = oms_kafka_producer_new(cfg.kafka.brokers, cfg.kafka.props, cfg.kafka.nprops, NULL,
                                   NULL, err, sizeof err);
        if (!p || oms_kafka_producer_prepare(p, republish, 10000, err, sizeof err) != OMS_OK) {
            fprintf(stderr, "omsctl: --republish: %s\n", err);
            exit_code = OMS_EXIT_FAIL;
            goto out;
        }
    }

    ctl_install_signals();
    bool bar = oms_cli_isatty(stderr);
    uint64_t start_ns = oms_mono_ns(), last_bar = 0;
    uint64_t seen = 0, kept = 0, undecodable = 0;
    size_t remaining = 0;
    for (size_t i = 0; i < nparts; i++)
        remaining += !parts[i].done;
    rd_kafka_queue_t *queue = rd_kafka_queue_get_consumer(rk);
    rd_kafka_message_t *batch[BATCH];
    rpart *last = NULL;
    lines_out lo;
    bool writing = !p && need_decode;
    if (writing)
        lines_start(&lo, out);
    while (remaining > 0 && !ctl_stop) {
        /* what is there without waiting; when nothing is, wait for one */
        ssize_t nb = queue ? rd_kafka_consume_batch_queue(queue, 0, batch, BATCH) : 0;
        if (nb <= 0) {
            rd_kafka_message_t *one = oms_kafka_reader_poll(r, 200);
            if (!one)
                continue;
            batch[0] = one;
            nb = 1;
        }
        for (ssize_t bi = 0; bi < nb; bi++) {
            rd_kafka_message_t *m = batch[bi];
            if (remaining == 0 || ctl_stop) {
                rd_kafka_message_destroy(m);
                continue;
            }
            rpart *rp = find_part(parts, nparts, &last, m);
            if (!rp || rp->done) {
                rd_kafka_message_destroy(m);
                continue;
            }
            if (m->err) {
                if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                    rp->done = true;
                    remaining--;
                } else {
                    fprintf(stderr, "omsctl: kafka: %s\n", rd_kafka_message_errstr(m));
                }
                rd_kafka_message_destroy(m);
                continue;
            }
            if (m->offset >= rp->stop) {
                rp->done = true;
                remaining--;
                rd_kafka_message_destroy(m);
                continue;
            }
            seen++;
            char pos[300];
            format_pos(rp, m->offset, pos);
            oms_event ev;
            bool keep = true, decoded = false;
            if (need_decode) {
                if (oms_event_decode(events, m->payload, m->len, &ev, err, sizeof err) != OMS_OK) {
                    undecodable++;
                    fprintf(stderr, "%somsctl: %s: cannot decode record: %s\n", bar ? "\n" : "",
                            pos, err);
                    keep = false;
                } else {
                    decoded = true;
                    keep = matches(&flt, &ev);
                }
            }
            if (keep) {
                kept++;
                if (p) {
                    /* original headers plus where the copy came from */
                    oms_kafka_header hs[33];
                    size_t nh = 0;
                    rd_kafka_headers_t *orig = NULL;
                    if (rd_kafka_message_headers(m, &orig) == RD_KAFKA_RESP_ERR_NO_ERROR) {
                        const char *hn;
                        const void *hv;
                        size_t hl;
                        for (size_t i = 0;
                             nh < 32 && !rd_kafka_header_get_all(orig, i, &hn, &hv, &hl); i++)
                            hs[nh++] = (oms_kafka_header){hn, hv, hl};
                    }
                    hs[nh++] = (oms_kafka_header){"oms.replay.source", pos, strlen(pos)};
                    if (oms_kafka_produce(p, republish, RD_KAFKA_PARTITION_UA, m->key, m->key_len,
                                          m->payload, m->len, hs, nh, NULL, 30000, err,
                                          sizeof err) != OMS_OK) {
                        fprintf(stderr, "omsctl: --republish: %s\n", err);
                        exit_code = OMS_EXIT_FAIL;
                        ctl_stop = 1;
                    }
                    oms_kafka_producer_poll(p, 0);
                } else if (decoded) {
                    oms_buf *ob = lines_buf(&lo);
                    if (oms_event_frame_append(&ev, pos, ob) == OMS_OK &&
                        oms_buf_reserve(ob, 1) == OMS_OK)
                        ob->p[ob->len++] = '\n';
                }
            }
            if (decoded)
                oms_event_clear(&ev);
            int64_t offset = m->offset;
            rd_kafka_message_destroy(m);
            if (offset + 1 >= rp->stop && !rp->done) {
                rp->done = true;
                remaining--;
            }
            if (rate > 0) {
                uint64_t due = start_ns + seen * 1000000000u / (uint64_t)rate;
                uint64_t now = oms_mono_ns();
                if (due > now) {
                    if (writing) /* while sleeping anyway */
                        lines_submit(&lo);
                    struct timespec ts = {(time_t)((due - now) / 1000000000u),
                                          (long)((due - now) % 1000000000u)};
                    nanosleep(&ts, NULL);
                }
            }
            if (bar && oms_mono_ns() - last_bar > 200000000u) {
                progress(seen, total, start_ns, false);
                last_bar = oms_mono_ns();
            }
        }
        /* in big pieces, and as soon as the queue runs dry (caught up) */
        if (writing && (lines_buf(&lo)->len >= OUT_CHUNK || nb < BATCH))
            lines_submit(&lo);
    }
    bool write_failed = writing && !lines_finish(&lo);
    int write_errno = write_failed ? errno : 0;
    if (queue)
        rd_kafka_queue_destroy(queue);
    if (bar)
        progress(seen, total, start_ns, true);
    if (p) {
        int left = oms_kafka_producer_flush(p, 30000);
        oms_kafka_producer_stats st;
        oms_kafka_producer_stats_get(p, &st);
        if (left || st.failed) {
            fprintf(stderr, "omsctl: --republish: %d not delivered, %" PRIu64 " failed\n", left,
                    st.failed);
            exit_code = OMS_EXIT_FAIL;
        }
    }
    if (fflush(out) != 0 && !write_failed) {
        write_failed = true;
        write_errno = errno;
    }
    if (write_failed) {
        fprintf(stderr, "omsctl: cannot write %s: %s\n", output ? output : "the output",
                strerror(write_errno));
        exit_code = OMS_EXIT_FAIL;
    }
    double secs = (double)(oms_mono_ns() - start_ns) / 1e9;
    FILE *sum = (json && (output || republish)) ? stdout : stderr;
    if (json)
        fprintf(sum,
                "{\"read\":%" PRIu64 ",\"kept\":%" PRIu64 ",\"undecodable\":%" PRIu64
                ",\"seconds\":%.3f,\"interrupted\":%s}\n",
                seen, kept, undecodable, secs, ctl_stop ? "true" : "false");
    else
        fprintf(stderr, "omsctl: replay read %" PRIu64 " record%s, kept %" PRIu64 " in %.2f s%s\n",
                seen, seen == 1 ? "" : "s", kept, secs, ctl_stop ? " (interrupted)" : "");
    if (undecodable)
        exit_code = OMS_EXIT_FAIL;
out:
    if (l)
        rd_kafka_topic_partition_list_destroy(l);
    if (out && out != stdout)
        fclose(out);
    if (p)
        oms_kafka_producer_free(p, 5000);
    free(parts);
    oms_kafka_reader_free(r);
    oms_events_free(events);
    oms_config_free(&cfg);
    free(fcopy);
    return exit_code;
}
