/* resume.c — positions and resume (DESIGN §3.5).
 *
 * A client that reconnects sends `resume {since: ["TOPIC:PARTITION:OFFSET",
 * ...]}`. For each partition it names, the events after its position up to
 * where live delivery to this connection began (rstate.live_from) are sent
 * first, filtered by the session exactly as live ones are, then
 * `resumed {recovered: true, replayed: N}`, then the live events that came
 * meanwhile (held back, so the order per partition holds and nothing is
 * sent twice).
 *
 * Where the events come from: the history (a ring per partition of the
 * frames fan-out dispatched, bounded by resume.history_size and
 * resume.history_ttl_s) when it reaches back far enough, else the read-back
 * thread, which reads Kafka with its own consumer so the live fan-out never
 * waits. Before anything is sent the read-back checks that every range is
 * still in the log; when one is not (retention, a position of another
 * cluster, a deleted topic) the answer is `resumed {recovered: false}` and
 * nothing partial. A replay is paced by the connection's queue (never more
 * than half of server.queue_limit in it), so a long one neither overflows
 * the queue nor holds the service thread.
 *
 * Memory: what the read-back holds for all resumes together is bounded by
 * resume.read_budget_mb. A resume that needs Kafka is admitted when its
 * estimate (records in its ranges x the frame size fan-out sees) fits
 * beside the reads under way, and waits its turn otherwise; one whose
 * estimate alone passes the budget is answered recovered: false. The
 * reader also counts the real bytes (d->m.rb_used, every reference a
 * resume holds and its connection has not taken yet) and waits for room
 * before reading on, so the bound holds even when the estimate was low.
 *
 * Threads: everything here runs on the service thread except reader_main;
 * they meet through omsd_rreq (immutable for the reader but `cancelled`) and
 * XQ_RESUME items. The reader ends every request with one final item; the
 * service thread frees the request when it takes that item. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "omsd.h"

/* ---- history ------------------------------------------------------------------------------ */

typedef struct hentry {
    int64_t offset;
    int64_t at_ms;
    omsd_frame *frame;
    int64_t user_id;
    int type;
} hentry;

typedef struct omsd_hist {
    hentry *ring;
    uint32_t head, len, cap;
    /* every deliverable event from this offset on is in the ring */
    int64_t from;
} omsd_hist;

static int flat(const omsd *d, int kind, int32_t p)
{
    return d->pbase[kind] + p;
}

int omsd_history_init(omsd *d)
{
    int n = 0;
    for (int k = 0; k < OMS_TOPIC__COUNT; k++) {
        d->pbase[k] = n;
        n += d->nparts[k];
    }
    d->nparts_total = n;
    d->hist = calloc(n > 0 ? (size_t)n : 1, sizeof *d->hist);
    if (!d->hist)
        return OMS_ENOMEM;
    for (int k = 0; k < OMS_TOPIC__COUNT; k++)
        for (int p = 0; p < d->nparts[k]; p++)
            d->hist[flat(d, k, p)].from = d->start_offset[k][p];
    return OMS_OK;
}

static void hist_pop(omsd_hist *h)
{
    hentry *e = &h->ring[h->head];
    h->from = e->offset + 1;
    omsd_frame_unref(e->frame);
    e->frame = NULL;
    h->head = (h->head + 1) % h->cap;
    h->len--;
}

static void history_add(omsd *d, const omsd_xq_item *it);

void omsd_history_add(omsd *d, const omsd_xq_item *it)
{
    if (!d->hist || it->partition < 0 || it->partition >= d->nparts[it->topic])
        return;
    pthread_mutex_lock(&d->hist_lock);
    history_add(d, it);
    pthread_mutex_unlock(&d->hist_lock);
}

static void history_add(omsd *d, const omsd_xq_item *it)
{
    omsd_hist *h = &d->hist[flat(d, it->topic, it->partition)];
    uint32_t max = (uint32_t)d->cfg.resume.history_size;
    if (max == 0) {
        h->from = it->offset + 1;
        return;
    }
    if (h->len == h->cap && h->cap < max) {
        uint32_t ncap = h->cap ? h->cap * 2 : 64;
        if (ncap > max)
            ncap = max;
        hentry *nr = malloc((size_t)ncap * sizeof *nr);
        if (nr) {
            for (uint32_t i = 0; i < h->len; i++)
                nr[i] = h->ring[(h->head + i) % h->cap];
            free(h->ring);
            h->ring = nr;
            h->head = 0;
            h->cap = ncap;
        }
    }
    if (h->cap == 0) {
        h->from = it->offset + 1; /* out of memory: nothing to keep */
        return;
    }
    if (h->len == h->cap)
        hist_pop(h);
    hentry *e = &h->ring[(h->head + h->len) % h->cap];
    e->offset = it->offset;
    e->at_ms = oms_now_ms();
    e->frame = it->frame;
    it->frame->refs++;
    e->user_id = it->user_id;
    e->type = (int)it->type;
    h->len++;
}

void omsd_history_sweep(omsd *d, int64_t now_ms)
{
    if (!d->hist)
        return;
    int64_t oldest = now_ms - (int64_t)d->cfg.resume.history_ttl_s * 1000;
    pthread_mutex_lock(&d->hist_lock);
    for (int i = 0; i < d->nparts_total; i++) {
        omsd_hist *h = &d->hist[i];
        while (h->len > 0 && h->ring[h->head].at_ms < oldest)
            hist_pop(h);
    }
    pthread_mutex_unlock(&d->hist_lock);
}

void omsd_history_free(omsd *d)
{
    if (!d->hist)
        return;
    for (int i = 0; i < d->nparts_total; i++) {
        while (d->hist[i].len > 0)
            hist_pop(&d->hist[i]);
        free(d->hist[i].ring);
    }
    free(d->hist);
    d->hist = NULL;
}

/* ---- the read-back thread ------------------------------------------------------------------ */

/* rstatus of XQ_RESUME items */
enum {
    RS_FRAMES = 0,       /* frames, more to come */
    RS_VERDICT_OK = 1,   /* every range is in the log: sending may begin */
    RS_DONE = 2,         /* final: everything was read */
    RS_UNRECOVERABLE = 3, /* final: a range is no longer (or never was) in the log */
    RS_FAILED = 4,       /* final: reading failed midway */
};

typedef struct rrange {
    int kind;
    int32_t part;
    int64_t from, to; /* inclusive */
} rrange;

typedef struct omsd_rreq {
    struct omsd_rreq *next; /* reader queue, or the budget's waiting list */
    oms_session sess;
    rrange *r;
    int n;
    atomic_int cancelled;
    omsd_resume *rs; /* service thread only: NULL once the resume is gone */
    int64_t estimate; /* bytes counted in d->rb_admitted (rb_lock) */
    omsd_worker *w;   /* the service thread of the connection: items go there */
    bool want;        /* reader: wants the record being read */
    /* reader only */
    omsd_frame **batch;
    size_t nbatch, capbatch;
    bool failed;
} omsd_rreq;

typedef struct omsd_rreader {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    omsd_rreq *head, *tail;
    bool started;
} omsd_rreader;

#define RBATCH 256
#define READ_DEADLINE_NS 30000000000ull

static void rreq_free(omsd_rreq *q)
{
    oms_session_clear(&q->sess);
    free(q->r);
    free(q);
}

static void push_status(omsd *d, omsd_rreq *q, int status)
{
    omsd_xq_item *it = calloc(1, sizeof *it);
    if (!it) {
        /* cannot tell the service thread: it would wait forever, so wait
         * for memory instead */
        while (!(it = calloc(1, sizeof *it))) {
            struct timespec ts = {0, 10000000};
            nanosleep(&ts, NULL);
        }
    }
    it->kind = XQ_RESUME;
    it->req = q;
    it->rstatus = status;
    if (status == RS_FRAMES || status >= RS_DONE) {
        it->frames = q->batch;
        it->nframes = q->nbatch;
        q->batch = NULL;
        q->nbatch = q->capbatch = 0;
    }
    omsd_xq_push(q->w, it);
    (void)d;
}

/* Bytes of read-back frames held: the reader adds, the service thread takes
 * away (negative len). */
static void rb_count(omsd *d, int64_t len)
{
    int64_t now = atomic_fetch_add(&d->m.rb_used, len) + len;
    int64_t peak = atomic_load(&d->m.rb_peak);
    while (now > peak && !atomic_compare_exchange_weak(&d->m.rb_peak, &peak, now))
        ;
}

/* Room for len more bytes in the read budget. Every partial batch is handed
 * over first (connections free room as they take those frames), then the
 * reader waits. False when the deadline passed or omsd is stopping. */
static bool rb_room(omsd *d, omsd_rreq *reqs, int64_t len, uint64_t deadline)
{
    /* with nothing held, anything goes: a frame larger than the whole
     * budget must not stop the reader for good */
    int64_t used = atomic_load(&d->m.rb_used);
    if (used == 0 || used + len <= d->rb_budget)
        return true;
    for (omsd_rreq *q = reqs; q; q = q->next)
        if (q->nbatch > 0)
            push_status(d, q, RS_FRAMES);
    while ((used = atomic_load(&d->m.rb_used)) > 0 && used + len > d->rb_budget) {
        if (atomic_load(&d->threads_stop) || oms_mono_ns() > deadline)
            return false;
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
    }
    return true;
}

static bool batch_add(omsd_rreq *q, omsd_frame *f)
{
    if (q->nbatch == q->capbatch) {
        size_t cap = q->capbatch ? q->capbatch * 2 : 64;
        omsd_frame **nb = realloc(q->batch, cap * sizeof *nb);
        if (!nb)
            return false;
        q->batch = nb;
        q->capbatch = cap;
    }
    q->batch[q->nbatch++] = f;
    return true;
}

static int kind_of(const omsd *d, const char *topic)
{
    for (int k = 0; k < OMS_TOPIC__COUNT; k++)
        if (strcmp(d->topics[k], topic) == 0)
            return k;
    return -1;
}

/* One round: every request waiting now, read together (a partition is read
 * once for all of them, from the lowest position any of them needs). */
static void read_round(omsd *d, oms_kafka_reader *r, omsd_rreq *reqs)
{
    rd_kafka_t *rk = oms_kafka_reader_handle(r);
    int np = d->nparts_total;
    int64_t *lo = malloc((size_t)np * sizeof *lo), *hi = malloc((size_t)np * sizeof *hi);
    int64_t *want_from = malloc((size_t)np * sizeof *want_from);
    int64_t *want_to = malloc((size_t)np * sizeof *want_to);
    int64_t *seen = malloc((size_t)np * sizeof *seen);
    if (!lo || !hi || !want_from || !want_to || !seen) {
        for (omsd_rreq *q = reqs; q; q = q->next)
            q->failed = true;
        goto out;
    }
    for (int i = 0; i < np; i++) {
        lo[i] = hi[i] = -2; /* not asked yet */
        want_from[i] = INT64_MAX;
        want_to[i] = -1;
        seen[i] = -1;
    }
    /* 1. is every range still in the log? A request that fails here is
     * answered and leaves the round (its final item hands it over) */
    for (omsd_rreq **qq = &reqs; *qq;) {
        omsd_rreq *q = *qq;
        if (atomic_load(&q->cancelled)) {
            q->failed = true;
            qq = &q->next;
            continue;
        }
        bool ok = true;
        for (int j = 0; j < q->n && ok; j++) {
            rrange *g = &q->r[j];
            int i = flat(d, g->kind, g->part);
            if (lo[i] == -2) {
                int64_t l = -1, h = -1;
                rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(
                    rk, d->topics[g->kind], g->part, &l, &h, 5000);
                if (err) {
                    oms_log(d->log, OMS_LOG_WARN, "resume: cannot read the log's bounds",
                            OMS_LS("topic", d->topics[g->kind]), OMS_LI("partition", g->part),
                            OMS_LS("error", rd_kafka_err2str(err)));
                    l = h = -1;
                }
                lo[i] = l;
                hi[i] = h;
            }
            ok = lo[i] >= 0 && g->from >= lo[i] && g->to < hi[i];
        }
        if (!ok) {
            *qq = q->next;
            q->next = NULL;
            push_status(d, q, RS_UNRECOVERABLE);
            continue;
        }
        push_status(d, q, RS_VERDICT_OK);
        for (int j = 0; j < q->n; j++) {
            rrange *g = &q->r[j];
            int i = flat(d, g->kind, g->part);
            if (g->from < want_from[i])
                want_from[i] = g->from;
            if (g->to > want_to[i])
                want_to[i] = g->to;
        }
        qq = &q->next;
    }
    /* 2. read what is wanted */
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(16);
    int pending = 0;
    for (int k = 0; k < OMS_TOPIC__COUNT; k++)
        for (int p = 0; p < d->nparts[k]; p++) {
            int i = flat(d, k, p);
            if (want_to[i] >= 0) {
                rd_kafka_topic_partition_list_add(l, d->topics[k], p)->offset = want_from[i];
                pending++;
            }
        }
    if (pending > 0)
        rd_kafka_assign(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    uint64_t deadline = oms_mono_ns() + READ_DEADLINE_NS;
    oms_buf scratch = {0};
    while (pending > 0 && !atomic_load(&d->threads_stop)) {
        if (oms_mono_ns() > deadline) {
            oms_log(d->log, OMS_LOG_WARN, "resume: reading back took too long, giving up");
            break;
        }
        rd_kafka_message_t *m = oms_kafka_reader_poll(r, 100);
        if (!m)
            continue;
        int k = m->rkt ? kind_of(d, rd_kafka_topic_name(m->rkt)) : -1;
        if (k < 0 || m->partition < 0 || m->partition >= d->nparts[k]) {
            if (m->err && m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                oms_log(d->log, OMS_LOG_WARN, "resume: read error",
                        OMS_LS("error", rd_kafka_message_errstr(m)));
                rd_kafka_message_destroy(m);
                break;
            }
            rd_kafka_message_destroy(m);
            continue;
        }
        int i = flat(d, k, m->partition);
        if (m->err) {
            bool eof = m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF;
            if (!eof)
                oms_log(d->log, OMS_LOG_WARN, "resume: read error",
                        OMS_LS("error", rd_kafka_message_errstr(m)));
            rd_kafka_message_destroy(m);
            if (!eof)
                break; /* out of range (retention) or worse: the rest fails */
            if (seen[i] < want_to[i]) {
                /* the end came before the range's end: whatever is missing
                 * is not in the log (nothing more to read) */
                seen[i] = want_to[i];
                pending--;
            }
            continue;
        }
        if (m->offset <= seen[i] || seen[i] >= want_to[i]) {
            rd_kafka_message_destroy(m);
            continue;
        }
        seen[i] = m->offset;
        atomic_fetch_add(&d->m.resume_reads, 1);
        oms_event ev;
        bool decoded = false, later = false, viewed = false;
        oms_filter_view view; /* the filters' view of ev, once decoded */
        omsd_frame *f = NULL;
        int wanted = 0;
        /* who wants it, first: the budget is waited for before the frame
         * goes into any batch (a batch handed over while the frame is still
         * being counted would let the service thread free it) */
        for (omsd_rreq *q = reqs; q; q = q->next) {
            q->want = false;
            if (q->failed || atomic_load(&q->cancelled))
                continue;
            for (int j = 0; j < q->n; j++) {
                rrange *g = &q->r[j];
                if (g->kind != k || g->part != m->partition || m->offset < g->from ||
                    m->offset > g->to)
                    continue;
                if (!decoded) {
                    char err[256];
                    decoded = true;
                    int drc = oms_event_decode(d->events, m->payload, m->len, &ev, err, sizeof err);
                    if (drc != OMS_OK) {
                        /* the fan-out sent it to the DLQ long ago */
                        ev.type = OMS_EV__COUNT;
                        /* or not: its schema cannot be fetched now, and a
                         * replay without it would have a gap */
                        later = drc == OMS_EAGAIN;
                    }
                }
                q->failed |= later;
                if (ev.type != OMS_EV__COUNT && !viewed) {
                    oms_filter_view_of(&ev, &view);
                    viewed = true;
                }
                q->want = ev.type != OMS_EV__COUNT &&
                          oms_session_wants_view(&q->sess, ev.type, ev.user_id, &view);
                wanted += q->want;
                break;
            }
        }
        if (wanted > 0) {
            char pos[300];
            snprintf(pos, sizeof pos, "%s:%d:%" PRId64, d->topics[k], (int)m->partition,
                     m->offset);
            scratch.len = 0;
            if (oms_event_frame_append(&ev, pos, &scratch) == OMS_OK &&
                (f = omsd_frame_new(scratch.p, scratch.len))) {
                f->topic = k;
                f->part = m->partition;
                f->off = m->offset;
                f->refs = 0;
            }
            if (f && !rb_room(d, reqs, (int64_t)f->len * wanted, deadline)) {
                oms_log(d->log, OMS_LOG_WARN, "resume: no room in resume.read_budget_mb before "
                                              "the deadline, giving up");
                free(f);
                f = NULL;
                if (decoded && ev.type != OMS_EV__COUNT)
                    oms_event_clear(&ev);
                rd_kafka_message_destroy(m);
                break; /* pending stays > 0: every request of the round fails */
            }
            wanted = 0;
            for (omsd_rreq *q = reqs; q; q = q->next) {
                if (!q->want)
                    continue;
                if (f && batch_add(q, f)) {
                    f->refs++;
                    wanted++;
                    rb_count(d, (int64_t)f->len);
                } else {
                    q->failed = true;
                }
            }
        }
        /* hand full batches over only now: once one is handed over, the
         * service thread owns the frame's reference count, so every
         * reference must be counted before */
        if (wanted > 0)
            for (omsd_rreq *q = reqs; q; q = q->next)
                if (q->nbatch >= RBATCH)
                    push_status(d, q, RS_FRAMES);
        if (decoded && ev.type != OMS_EV__COUNT)
            oms_event_clear(&ev);
        if (f && wanted == 0)
            free(f);
        rd_kafka_message_destroy(m);
        if (seen[i] >= want_to[i])
            pending--;
    }
    free(scratch.p);
    rd_kafka_assign(rk, NULL);
    if (pending > 0)
        for (omsd_rreq *q = reqs; q; q = q->next)
            q->failed = true;
out:
    free(lo);
    free(hi);
    free(want_from);
    free(want_to);
    free(seen);
    omsd_rreq *next;
    for (omsd_rreq *q = reqs; q; q = next) {
        next = q->next;
        q->next = NULL;
        push_status(d, q, q->failed ? RS_FAILED : RS_DONE);
    }
}

static void rb_admit(omsd *d);
static void forget_req(omsd_resume *rs);

static void *reader_main(void *arg)
{
    omsd *d = arg;
    omsd_rreader *R = d->rreader;
    char err[512];
    oms_kv props[OMS_CONFIG_MAX_PROPS + 3];
    size_t np = 0;
    props[np++] = (oms_kv){"client.id", "omsd-resume"};
    /* a position gone by retention must fail, not silently jump */
    props[np++] = (oms_kv){"auto.offset.reset", "error"};
    for (size_t i = 0; i < d->cfg.kafka.nprops; i++)
        props[np++] = d->cfg.kafka.props[i];
    oms_kafka_reader *r = oms_kafka_reader_new(d->cfg.kafka.brokers, props, np, err, sizeof err);
    if (!r)
        oms_log(d->log, OMS_LOG_ERROR, "resume reader failed", OMS_LS("error", err));
    for (;;) {
        pthread_mutex_lock(&R->lock);
        while (!R->head && !atomic_load(&d->threads_stop)) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 200000000;
            if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
            }
            pthread_cond_timedwait(&R->cond, &R->lock, &ts);
        }
        omsd_rreq *reqs = R->head;
        R->head = R->tail = NULL;
        pthread_mutex_unlock(&R->lock);
        if (!reqs)
            break; /* stopping, nothing waits */
        if (!r || atomic_load(&d->threads_stop)) {
            omsd_rreq *next;
            for (omsd_rreq *q = reqs; q; q = next) {
                next = q->next;
                q->next = NULL;
                push_status(d, q, RS_FAILED);
            }
            continue;
        }
        read_round(d, r, reqs);
    }
    if (r)
        oms_kafka_reader_free(r);
    return NULL;
}

int omsd_resume_reader_start(omsd *d)
{
    d->rb_budget = (int64_t)d->cfg.resume.read_budget_mb * 1024 * 1024;
    omsd_rreader *R = calloc(1, sizeof *R);
    if (!R)
        return OMS_ENOMEM;
    pthread_mutex_init(&R->lock, NULL);
    pthread_cond_init(&R->cond, NULL);
    d->rreader = R;
    if (pthread_create(&R->thread, NULL, reader_main, d) != 0)
        return OMS_EIO;
    R->started = true;
    return OMS_OK;
}

void omsd_resume_reader_join(omsd *d)
{
    omsd_rreader *R = d->rreader;
    if (!R)
        return;
    if (R->started) {
        pthread_mutex_lock(&R->lock);
        pthread_cond_broadcast(&R->cond);
        pthread_mutex_unlock(&R->lock);
        pthread_join(R->thread, NULL);
    }
    /* requests never taken: nothing waits for them any more (this runs on
     * the thread that served the connections, after its loop ended, so
     * their resumes can be told) */
    omsd_rreq *next;
    for (omsd_rreq *q = R->head; q; q = next) {
        next = q->next;
        if (q->rs)
            forget_req(q->rs);
        rreq_free(q);
    }
    pthread_mutex_destroy(&R->lock);
    pthread_cond_destroy(&R->cond);
    free(R);
    d->rreader = NULL;
    pthread_mutex_lock(&d->rb_lock);
    rb_admit(d); /* frees the reads still waiting for the budget */
    pthread_mutex_unlock(&d->rb_lock);
}

static void reader_submit(omsd *d, omsd_rreq *q)
{
    omsd_rreader *R = d->rreader;
    pthread_mutex_lock(&R->lock);
    if (R->tail)
        R->tail->next = q;
    else
        R->head = q;
    R->tail = q;
    pthread_cond_signal(&R->cond);
    pthread_mutex_unlock(&R->lock);
}

/* ---- a resume on one connection --------------------------------------------------------------- */

enum { OUT_MEMORY, OUT_KAFKA, OUT_UNRECOVERABLE, OUT_FAILED };

struct omsd_resume {
    const omsd_rsink *ops;
    void *conn;
    omsd_rstate *st;
    omsd_frame **frames; /* the replay, in order per partition */
    size_t n, cap, next;
    size_t mem_left; /* the first frames come from the history; the rest are
                      * read back and counted in the read budget */
    omsd_frame **held; /* live events behind it */
    size_t nheld, capheld;
    omsd_rreq *req; /* the Kafka part, until its final item */
    bool verdict;   /* sending may begin */
    bool from_kafka;
    uint64_t replayed;
};

static bool push_frame(omsd_frame ***v, size_t *n, size_t *cap, omsd_frame *f)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 64;
        omsd_frame **nv = realloc(*v, nc * sizeof *nv);
        if (!nv)
            return false;
        *v = nv;
        *cap = nc;
    }
    (*v)[(*n)++] = f;
    return true;
}

static uint32_t queue_bound(const omsd *d)
{
    return (uint32_t)(d->cfg.server.queue_limit > 0 ? d->cfg.server.queue_limit : 4096);
}

/* Its request is freed without a final item (omsd stopping). */
static void forget_req(omsd_resume *rs)
{
    rs->req = NULL;
}

/* A frame leaves the replay (sent, or dropped): one read back gives its
 * bytes back to the read budget. */
static void frame_leaves(omsd *d, omsd_resume *rs, omsd_frame *f)
{
    if (rs->mem_left > 0)
        rs->mem_left--;
    else
        rb_count(d, -(int64_t)f->len);
}

static void resume_free(omsd *d, omsd_resume *rs)
{
    for (size_t i = rs->next; i < rs->n; i++) {
        frame_leaves(d, rs, rs->frames[i]);
        omsd_frame_unref(rs->frames[i]);
    }
    for (size_t i = 0; i < rs->nheld; i++)
        omsd_frame_unref(rs->held[i]);
    free(rs->frames);
    free(rs->held);
    if (rs->req) {
        rs->req->rs = NULL;
        atomic_store(&rs->req->cancelled, 1);
    }
    free(rs);
}

/* End of the resume: the answer, then the live events held back. */
static void finish(omsd *d, omsd_resume *rs, int outcome)
{
    omsd_rstate *st = rs->st;
    const omsd_rsink *ops = rs->ops;
    void *conn = rs->conn;
    d->m.resumes[outcome]++;
    st->rs = NULL;
    if (outcome == OUT_FAILED) {
        oms_log(d->log, OMS_LOG_WARN, "resume failed midway: connection closed to start over");
        ops->close(conn, OMS_CLOSE_TRY_LATER, "resume interrupted, reconnect and resume");
        resume_free(d, rs);
        return;
    }
    if (outcome == OUT_UNRECOVERABLE)
        ops->answer(conn, "resumed", json_pack("{s:b,s:i}", "recovered", 0, "replayed", 0));
    else
        ops->answer(conn, "resumed",
                    json_pack("{s:b,s:I}", "recovered", 1, "replayed", (json_int_t)rs->replayed));
    for (size_t i = 0; i < rs->nheld; i++) {
        ops->send(conn, rs->held[i]);
        omsd_frame_unref(rs->held[i]);
    }
    rs->nheld = 0;
    resume_free(d, rs);
}

void omsd_resume_pump(omsd *d, omsd_rstate *st)
{
    omsd_resume *rs = st->rs;
    if (!rs || !rs->verdict)
        return;
    uint32_t room = queue_bound(d) / 2;
    if (room == 0)
        room = 1;
    while (rs->next < rs->n && rs->ops->queued(rs->conn) < room) {
        omsd_frame *f = rs->frames[rs->next];
        rs->frames[rs->next++] = NULL;
        frame_leaves(d, rs, f);
        f = omsd_frame_replay(f);
        bool sent = f && rs->ops->send(rs->conn, f);
        omsd_frame_unref(f);
        if (!sent)
            return; /* closing: the close frees the resume */
        rs->replayed++;
        d->m.replayed++;
    }
    if (rs->next == rs->n) {
        rs->n = rs->next = 0;
        if (!rs->req)
            finish(d, rs, rs->from_kafka ? OUT_KAFKA : OUT_MEMORY);
    }
}

void omsd_resume_xq(omsd *d, omsd_xq_item *it)
{
    omsd_rreq *q = it->req;
    omsd_resume *rs = q->rs;
    bool final = it->rstatus >= RS_DONE;
    size_t i = 0;
    if (rs && !final && it->rstatus == RS_VERDICT_OK)
        rs->verdict = true;
    if (rs && (it->rstatus == RS_FRAMES || it->rstatus == RS_DONE)) {
        for (; i < it->nframes; i++)
            if (!push_frame(&rs->frames, &rs->n, &rs->cap, it->frames[i]))
                break;
        if (i < it->nframes) {
            /* out of memory: this replay cannot be complete */
            q->rs = NULL;
            rs->req = NULL;
            atomic_store(&q->cancelled, 1);
            finish(d, rs, OUT_FAILED);
            rs = NULL;
        }
    }
    for (; i < it->nframes; i++) {
        rb_count(d, -(int64_t)it->frames[i]->len);
        omsd_frame_unref(it->frames[i]);
    }
    free(it->frames);
    it->frames = NULL;
    if (final) {
        pthread_mutex_lock(&d->rb_lock);
        d->rb_admitted -= q->estimate;
        q->estimate = 0;
        rb_admit(d);
        pthread_mutex_unlock(&d->rb_lock);
        if (rs) {
            rs->req = NULL;
            if (it->rstatus == RS_UNRECOVERABLE)
                finish(d, rs, OUT_UNRECOVERABLE);
            else if (it->rstatus == RS_FAILED)
                finish(d, rs, OUT_FAILED);
            else
                omsd_resume_pump(d, rs->st);
        }
        rreq_free(q);
        return;
    }
    if (rs)
        omsd_resume_pump(d, rs->st);
}

bool omsd_resume_hold(omsd *d, omsd_rstate *st, omsd_frame *f)
{
    omsd_resume *rs = st->rs;
    if (!rs)
        return false;
    if (rs->nheld >= queue_bound(d) || !push_frame(&rs->held, &rs->nheld, &rs->capheld, f)) {
        /* the replay is too slow for the live stream: start over later */
        d->m.overflow_closes++;
        rs->ops->close(rs->conn, OMS_CLOSE_TRY_LATER, "send queue overflow, reconnect and resume");
        st->rs = NULL;
        d->m.resumes[OUT_FAILED]++;
        resume_free(d, rs);
        return true;
    }
    f->refs++;
    return true;
}

int omsd_rstate_init(omsd *d, omsd_rstate *st)
{
    st->rs = NULL;
    st->live_from = malloc((d->nparts_total > 0 ? (size_t)d->nparts_total : 1) * sizeof(int64_t));
    if (!st->live_from)
        return OMS_ENOMEM;
    for (int k = 0; k < OMS_TOPIC__COUNT; k++)
        for (int p = 0; p < d->nparts[k]; p++)
            st->live_from[flat(d, k, p)] = omsd_self->last_offset[k][p];
    return OMS_OK;
}

void omsd_rstate_subs(omsd *d, omsd_rstate *st, unsigned old_subs, unsigned new_subs)
{
    if (!st->live_from)
        return;
    unsigned added = new_subs & ~old_subs;
    for (int k = 0; k < OMS_TOPIC__COUNT; k++) {
        unsigned bit = k == OMS_TOPIC_ORDERS      ? OMS_SUB_ORDERS
                       : k == OMS_TOPIC_INVENTORY ? OMS_SUB_INVENTORY
                                                  : 0;
        if (!(added & bit))
            continue;
        for (int p = 0; p < d->nparts[k]; p++)
            st->live_from[flat(d, k, p)] = omsd_self->last_offset[k][p];
    }
}

void omsd_rstate_free(omsd *d, omsd_rstate *st)
{
    if (st->rs) {
        resume_free(d, st->rs);
        st->rs = NULL;
    }
    free(st->live_from);
    st->live_from = NULL;
}

/* "TOPIC:PARTITION:OFFSET" (topic names cannot hold ':'). 0 or -1. */
static int parse_position(const char *s, char *topic, size_t tlen, int64_t *part, int64_t *off)
{
    const char *c2 = strrchr(s, ':');
    if (!c2 || c2 == s)
        return -1;
    const char *c1 = c2 - 1;
    while (c1 > s && *c1 != ':')
        c1--;
    if (*c1 != ':' || c1 == s || (size_t)(c1 - s) >= tlen)
        return -1;
    char *end;
    const char *ps = c1 + 1, *os = c2 + 1;
    if (ps == c2 || !(*ps >= '0' && *ps <= '9') || c2 - ps > 9)
        return -1;
    long long p = strtoll(ps, &end, 10);
    if (end != c2)
        return -1;
    if (!*os || !((*os >= '0' && *os <= '9') || *os == '-') || strlen(os) > 19)
        return -1;
    long long o = strtoll(os, &end, 10);
    if (*end)
        return -1;
    memcpy(topic, s, (size_t)(c1 - s));
    topic[c1 - s] = '\0';
    *part = p;
    *off = o;
    return 0;
}

#define MAX_SINCE 4096

static void bad_request(const omsd_rsink *ops, void *conn, const char *msg)
{
    ops->answer(conn, "error", oms_gw_error("bad_request", msg));
}

void omsd_resume_start(omsd *d, omsd_rstate *st, const oms_session *s, const json_t *since,
                       const omsd_rsink *ops, void *conn)
{
    if (st->rs) {
        bad_request(ops, conn, "a resume is already running on this connection");
        return;
    }
    if (!st->live_from || !d->hist) {
        ops->answer(conn, "resumed", json_pack("{s:b,s:i}", "recovered", 0, "replayed", 0));
        d->m.resumes[OUT_UNRECOVERABLE]++;
        return;
    }
    if (!json_is_array(since) || json_array_size(since) > MAX_SINCE) {
        bad_request(ops, conn,
                    "resume needs data {since: [\"TOPIC:PARTITION:OFFSET\", ...]} (at most 4096)");
        return;
    }
    int np = d->nparts_total;
    int64_t *pos = malloc((np > 0 ? (size_t)np : 1) * sizeof *pos);
    if (!pos) {
        bad_request(ops, conn, "out of memory");
        return;
    }
    for (int i = 0; i < np; i++)
        pos[i] = INT64_MIN; /* not named */
    bool lost = false;
    size_t idx;
    json_t *v;
    json_array_foreach(since, idx, v)
    {
        const char *str = json_string_value(v);
        char topic[256];
        int64_t part, off;
        if (!str || parse_position(str, topic, sizeof topic, &part, &off) != 0 || off < -1) {
            char msg[200];
            snprintf(msg, sizeof msg,
                     "since[%zu]: expected \"TOPIC:PARTITION:OFFSET\" (offset >= -1)", idx);
            bad_request(ops, conn, msg);
            free(pos);
            return;
        }
        int k = kind_of(d, topic);
        if (k < 0 || part >= d->nparts[k] || off > omsd_self->last_offset[k][part]) {
            /* not a position of this log: another cluster's, a deleted
             * topic's, or from the future */
            lost = true;
            continue;
        }
        int i = flat(d, k, (int32_t)part);
        if (off > pos[i])
            pos[i] = off;
    }
    if (lost) {
        free(pos);
        d->m.resumes[OUT_UNRECOVERABLE]++;
        ops->answer(conn, "resumed", json_pack("{s:b,s:i}", "recovered", 0, "replayed", 0));
        return;
    }
    omsd_resume *rs = calloc(1, sizeof *rs);
    rrange *kr = malloc((np > 0 ? (size_t)np : 1) * sizeof *kr);
    if (!rs || !kr) {
        free(rs);
        free(kr);
        free(pos);
        bad_request(ops, conn, "out of memory");
        return;
    }
    rs->ops = ops;
    rs->conn = conn;
    rs->st = st;
    int nk = 0;
    int64_t total = 0;
    bool oom = false;
    /* the history is written by the fan-out thread */
    pthread_mutex_lock(&d->hist_lock);
    for (int k = 0; k < OMS_TOPIC__COUNT && !oom; k++) {
        /* a topic the session gets nothing from needs no replay */
        bool any = k == OMS_TOPIC_ORDERS      ? (s->subs & OMS_SUB_ORDERS) != 0
                   : k == OMS_TOPIC_INVENTORY ? (s->subs & OMS_SUB_INVENTORY) != 0
                                              : true;
        if (!any || s->who.role == OMS_ROLE_SERVICE)
            continue;
        for (int p = 0; p < d->nparts[k]; p++) {
            int i = flat(d, k, p);
            if (pos[i] == INT64_MIN)
                continue;
            int64_t from = pos[i] + 1, to = st->live_from[i];
            if (from > to)
                continue;
            total += to - from + 1;
            omsd_hist *h = &d->hist[i];
            if (from >= h->from) {
                /* all in memory */
                for (uint32_t e = 0; e < h->len; e++) {
                    hentry *he = &h->ring[(h->head + e) % h->cap];
                    if (he->offset < from)
                        continue;
                    if (he->offset > to)
                        break;
                    if (!oms_session_wants_view(s, (oms_event_type)he->type, he->user_id,
                                                he->frame->view))
                        continue;
                    if (!push_frame(&rs->frames, &rs->n, &rs->cap, he->frame)) {
                        oom = true;
                        break;
                    }
                    he->frame->refs++;
                }
            } else {
                kr[nk++] = (rrange){k, p, from, to};
            }
        }
    }
    pthread_mutex_unlock(&d->hist_lock);
    free(pos);
    if (oom) {
        free(kr);
        resume_free(d, rs);
        bad_request(ops, conn, "out of memory");
        return;
    }
    rs->mem_left = rs->n; /* what follows is read back */
    if (d->cfg.resume.max_replay >= 0 && total > d->cfg.resume.max_replay) {
        free(kr);
        resume_free(d, rs);
        d->m.resumes[OUT_UNRECOVERABLE]++;
        oms_log(d->log, OMS_LOG_INFO, "resume refused: gap larger than resume.max_replay",
                OMS_LI("events", total), OMS_LI("max", d->cfg.resume.max_replay));
        ops->answer(conn, "resumed", json_pack("{s:b,s:i}", "recovered", 0, "replayed", 0));
        return;
    }
    st->rs = rs;
    if (nk == 0 || !d->rreader) {
        free(kr);
        if (nk > 0) { /* no reader: cannot fill the gap */
            st->rs = NULL;
            resume_free(d, rs);
            d->m.resumes[OUT_UNRECOVERABLE]++;
            ops->answer(conn, "resumed", json_pack("{s:b,s:i}", "recovered", 0, "replayed", 0));
            return;
        }
        rs->verdict = true;
        omsd_resume_pump(d, st);
        return;
    }
    omsd_rreq *q = calloc(1, sizeof *q);
    if (!q) {
        free(kr);
        st->rs = NULL;
        resume_free(d, rs);
        bad_request(ops, conn, "out of memory");
        return;
    }
    oms_session_copy(&q->sess, s);
    q->r = kr;
    q->n = nk;
    q->rs = rs;
    q->w = omsd_self;
    rs->req = q;
    rs->from_kafka = true;
    /* the read budget: what it will hold, estimated from the frames seen */
    int64_t records = 0;
    for (int j = 0; j < nk; j++)
        records += kr[j].to - kr[j].from + 1;
    int64_t avg = atomic_load(&d->m.avg_frame);
    q->estimate = records * (avg > 0 ? avg : 512);
    if (q->estimate > d->rb_budget) {
        st->rs = NULL;
        rs->req = NULL;
        resume_free(d, rs);
        rreq_free(q);
        d->m.resumes[OUT_UNRECOVERABLE]++;
        oms_log(d->log, OMS_LOG_INFO, "resume refused: gap larger than resume.read_budget_mb",
                OMS_LI("records", records), OMS_LI("estimatedBytes", records * (avg > 0 ? avg : 512)),
                OMS_LI("budgetBytes", d->rb_budget));
        ops->answer(conn, "resumed", json_pack("{s:b,s:i}", "recovered", 0, "replayed", 0));
        return;
    }
    pthread_mutex_lock(&d->rb_lock);
    if (d->rb_wait_head || d->rb_admitted + q->estimate > d->rb_budget) {
        /* its turn comes when reads under way end (rb_admit) */
        d->m.rb_waited++;
        d->m.rb_waiting++;
        if (d->rb_wait_tail)
            d->rb_wait_tail->next = q;
        else
            d->rb_wait_head = q;
        d->rb_wait_tail = q;
    } else {
        d->rb_admitted += q->estimate;
        reader_submit(d, q);
    }
    pthread_mutex_unlock(&d->rb_lock);
}

/* Reads waiting for the budget, in their order, while they fit (the first
 * always fits when nothing else is read). A resume gone meanwhile leaves
 * its request here, cancelled: it is freed, never read. Under rb_lock; a
 * request may belong to another service thread, so only `cancelled` (set
 * after its resume let go of it) is looked at while the reader runs. */
static void rb_admit(omsd *d)
{
    while (d->rb_wait_head) {
        omsd_rreq *q = d->rb_wait_head;
        bool gone = atomic_load(&q->cancelled);
        if (!gone && d->rreader && d->rb_admitted > 0 &&
            d->rb_admitted + q->estimate > d->rb_budget)
            return;
        d->rb_wait_head = q->next;
        if (!d->rb_wait_head)
            d->rb_wait_tail = NULL;
        q->next = NULL;
        d->m.rb_waiting--;
        if (gone || !d->rreader) {
            /* gone, or omsd is stopping (the reader is no more, nor the
             * service threads: the resume can be told) */
            if (!gone && q->rs)
                forget_req(q->rs);
            rreq_free(q);
            continue;
        }
        d->rb_admitted += q->estimate;
        reader_submit(d, q);
    }
}
