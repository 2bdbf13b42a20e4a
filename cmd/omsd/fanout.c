/* fanout.c — the fan-out reader: every partition of the event topics, from
 * where the log ended at start-up, decoded and serialized once per event,
 * then handed to the service thread. Undecodable records go to the DLQ. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "omsd.h"
#include "deflate.h"

int omsd_fanout_prepare(omsd *d, char *errbuf, size_t errlen)
{
    /* a short-lived reader to learn the partitions and where each ends */
    oms_kafka_reader *r = oms_kafka_reader_new(d->cfg.kafka.brokers, d->cfg.kafka.props,
                                               d->cfg.kafka.nprops, errbuf, errlen);
    if (!r)
        return OMS_EKAFKA;
    int rc = OMS_OK;
    rd_kafka_t *rk = oms_kafka_reader_handle(r);
    for (int k = 0; k < OMS_TOPIC__COUNT && rc == OMS_OK; k++) {
        const char *one[1] = {d->topics[k]};
        int n = oms_kafka_reader_assign(r, one, 1, -1, OMS_KAFKA_FROM_END, false, 10000, errbuf,
                                        errlen);
        if (n < 0) {
            rc = n;
            break;
        }
        if (n > OMSD_MAX_PARTITIONS)
            n = OMSD_MAX_PARTITIONS;
        d->nparts[k] = n;
        d->start_offset[k] = calloc((size_t)n, sizeof(int64_t));
        if (!d->start_offset[k]) {
            oms_errf(errbuf, errlen, "out of memory");
            rc = OMS_ENOMEM;
            break;
        }
        for (int p = 0; p < n; p++) {
            int64_t lo = 0, hi = 0;
            rd_kafka_resp_err_t err;
            /* a topic created a moment ago may not have its leaders yet */
            uint64_t until = oms_mono_ns() + 15000000000u;
            while ((err = rd_kafka_query_watermark_offsets(rk, d->topics[k], p, &lo, &hi, 5000)) &&
                   oms_mono_ns() < until)
                rd_kafka_poll(rk, 200);
            if (err) {
                oms_errf(errbuf, errlen, "cannot read the end of '%s' partition %d: %s",
                         d->topics[k], p, rd_kafka_err2str(err));
                rc = OMS_EKAFKA;
                break;
            }
            d->start_offset[k][p] = hi;
        }
    }
    rd_kafka_assign(rk, NULL);
    oms_kafka_reader_free(r);
    return rc;
}

static oms_topic_kind kind_of(const omsd *d, const char *topic)
{
    for (int k = 0; k < OMS_TOPIC__COUNT; k++)
        if (strcmp(d->topics[k], topic) == 0)
            return (oms_topic_kind)k;
    return OMS_TOPIC__COUNT;
}

/* Copy the raw record to the DLQ with why and where from in its headers. */
static void to_dlq(omsd *d, const rd_kafka_message_t *m, const char *topic, const char *reason)
{
    omsd_dlq_copy(d, d->producer, m, topic, reason, "fanout");
}

/* scratch: the fan-out thread's frame buffer, reused from event to event */
static void handle(omsd *d, oms_kafka_reader *r, rd_kafka_message_t *m, oms_buf *scratch)
{
    const char *topic = rd_kafka_topic_name(m->rkt);
    oms_topic_kind kind = kind_of(d, topic);
    if (kind == OMS_TOPIC__COUNT)
        return;
    oms_event ev;
    char err[256];
    int rc = oms_event_decode(d->events, m->payload, m->len, &ev, err, sizeof err);
    if (rc == OMS_EAGAIN) {
        /* its schema cannot be fetched now: this partition waits and reads it
         * again (order kept, nothing to the DLQ), the others go on */
        omsd_registry_wait(d, topic, m->partition, m->offset, err);
        oms_kafka_reader_hold(r, topic, m->partition, m->offset, OMSD_REGISTRY_HOLD_MS);
        return;
    }
    atomic_fetch_add(&d->m.consumed[kind], 1);
    if (rc != OMS_OK) {
        atomic_fetch_add(&d->m.undecodable, 1);
        oms_log(d->log, OMS_LOG_WARN, "record not decodable, copied to the dlq",
                OMS_LS("topic", topic), OMS_LI("partition", m->partition),
                OMS_LI("offset", m->offset), OMS_LS("reason", err));
        to_dlq(d, m, topic, err);
        return;
    }
    char pos[300];
    snprintf(pos, sizeof pos, "%s:%d:%" PRId64, topic, (int)m->partition, m->offset);
    scratch->len = 0;
    int frc = oms_event_frame_append(&ev, pos, scratch);
    omsd_xq_item *it = calloc(1, sizeof *it);
    omsd_frame *f = frc == OMS_OK ? omsd_frame_new(scratch->p, scratch->len) : NULL;
    if (!it || !f) {
        free(it);
        free(f);
        oms_event_clear(&ev);
        oms_log(d->log, OMS_LOG_ERROR, "out of memory in fan-out");
        return;
    }
    it->kind = XQ_EVENT;
    f->topic = (int)kind;
    if (kind == OMS_TOPIC_ORDERS || kind == OMS_TOPIC_INVENTORY) {
        /* what subscription filters look at, on every service thread */
        oms_filter_view v;
        oms_filter_view_of(&ev, &v);
        if (!(f->view = oms_filter_view_copy(&v)))
            oms_log(d->log, OMS_LOG_ERROR, "out of memory in fan-out: filtered subscriptions "
                                           "miss an event");
    }
    int64_t ts = rd_kafka_message_timestamp(m, NULL);
    f->ts_ms = ts > 0 ? ts : 0;
    omsd_frame_compress(d, f); /* once, for every connection that negotiated it */
    /* a running mean of frame sizes: resumes estimate what a read-back
     * will hold from it (resume.read_budget_mb) */
    int64_t avg = atomic_load(&d->m.avg_frame);
    atomic_store(&d->m.avg_frame, avg ? avg + ((int64_t)f->len - avg) / 16 : (int64_t)f->len);
    it->frame = f;
    it->type = ev.type;
    it->user_id = ev.user_id;
    it->topic = kind;
    it->partition = m->partition;
    it->offset = m->offset;
    oms_event_clear(&ev);
    omsd_token_stamp(d, f, (int)kind, m->partition, m->offset);
    /* the history first: a resume on any thread finds what it dispatched */
    omsd_history_add(d, it);
    /* the same frame to every service thread (a reference each) */
    for (int i = 1; i < d->nworkers; i++) {
        omsd_xq_item *copy = malloc(sizeof *copy);
        if (!copy) {
            oms_log(d->log, OMS_LOG_ERROR, "out of memory in fan-out");
            continue;
        }
        *copy = *it;
        copy->next = NULL;
        atomic_fetch_add(&f->refs, 1);
        omsd_xq_push(&d->workers[i], copy);
    }
    omsd_xq_push(&d->workers[0], it);
}

static void update_lag(omsd *d, rd_kafka_t *rk)
{
    rd_kafka_topic_partition_list_t *l = NULL;
    if (rd_kafka_assignment(rk, &l) != RD_KAFKA_RESP_ERR_NO_ERROR || !l)
        return;
    rd_kafka_position(rk, l);
    int64_t lag = 0;
    for (int i = 0; i < l->cnt; i++) {
        int64_t lo, hi;
        if (rd_kafka_get_watermark_offsets(rk, l->elems[i].topic, l->elems[i].partition, &lo,
                                           &hi) == RD_KAFKA_RESP_ERR_NO_ERROR &&
            l->elems[i].offset >= 0 && hi > l->elems[i].offset)
            lag += hi - l->elems[i].offset;
    }
    atomic_store(&d->m.lag, lag);
    rd_kafka_topic_partition_list_destroy(l);
}

static void *fanout_main(void *arg)
{
    omsd *d = arg;
    char err[512];
    oms_kv props[OMS_CONFIG_MAX_PROPS + 2];
    size_t np = 0;
    props[np++] = (oms_kv){"client.id", "omsd-fanout"};
    props[np++] = (oms_kv){"statistics.interval.ms", "0"};
    for (size_t i = 0; i < d->cfg.kafka.nprops; i++)
        props[np++] = d->cfg.kafka.props[i];
    oms_kafka_reader *r = oms_kafka_reader_new(d->cfg.kafka.brokers, props, np, err, sizeof err);
    if (!r) {
        oms_log(d->log, OMS_LOG_ERROR, "fan-out reader failed", OMS_LS("error", err));
        return NULL;
    }
    rd_kafka_t *rk = oms_kafka_reader_handle(r);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(32);
    for (int k = 0; k < OMS_TOPIC__COUNT; k++)
        for (int p = 0; p < d->nparts[k]; p++)
            rd_kafka_topic_partition_list_add(l, d->topics[k], p)->offset = d->start_offset[k][p];
    rd_kafka_assign(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    oms_log(d->log, OMS_LOG_INFO, "fan-out reading", OMS_LS("orders", d->topics[OMS_TOPIC_ORDERS]),
            OMS_LS("inventory", d->topics[OMS_TOPIC_INVENTORY]),
            OMS_LS("notifications", d->topics[OMS_TOPIC_NOTIFICATIONS]));
    uint64_t lag_at = 0;
    oms_buf scratch = {0};
    while (!atomic_load(&d->threads_stop)) {
        /* backpressure: the service thread is behind, let Kafka hold the rest */
        if (omsd_xq_backlog(d) > OMSD_XQ_HIGH) {
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
            continue;
        }
        rd_kafka_message_t *m = oms_kafka_reader_poll(r, 100);
        if (m) {
            if (!m->err)
                handle(d, r, m, &scratch);
            else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                oms_log(d->log, OMS_LOG_WARN, "fan-out consumer error",
                        OMS_LS("error", rd_kafka_message_errstr(m)));
            rd_kafka_message_destroy(m);
        }
        uint64_t now = oms_mono_ns();
        if (now - lag_at > 1000000000u) {
            update_lag(d, rk);
            lag_at = now;
        }
    }
    free(scratch.p);
    rd_kafka_assign(rk, NULL);
    oms_kafka_reader_free(r);
    return NULL;
}

int omsd_fanout_start(omsd *d)
{
    return pthread_create(&d->fanout_thread, NULL, fanout_main, d) == 0 ? OMS_OK : OMS_EIO;
}

void omsd_fanout_join(omsd *d)
{
    pthread_join(d->fanout_thread, NULL);
}
