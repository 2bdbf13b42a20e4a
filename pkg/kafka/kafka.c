/* kafka.c — producer, reader and admin adapters over librdkafka. */
#include "kafka/kafka.h"

#include <signal.h>
#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

int oms_kafka_conf_apply(rd_kafka_conf_t *conf, const oms_kv *props, size_t nprops, char *errbuf,
                         size_t errlen)
{
    char err[512];
    for (size_t i = 0; i < nprops; i++) {
        if (rd_kafka_conf_set(conf, props[i].key, props[i].value, err, sizeof err) !=
            RD_KAFKA_CONF_OK) {
            oms_errf(errbuf, errlen, "kafka property '%s': %s", props[i].key, err);
            return OMS_EINVAL;
        }
    }
    return OMS_OK;
}

rd_kafka_conf_t *oms_kafka_group_conf(const char *brokers, const char *group,
                                      const char *const *defaults, const oms_kv *props,
                                      size_t nprops, char *errbuf, size_t errlen)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char err[512];
    if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers, err, sizeof err) ||
        rd_kafka_conf_set(conf, "group.id", group, err, sizeof err)) {
        oms_errf(errbuf, errlen, "%s", err);
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    for (size_t i = 0; defaults && defaults[i]; i += 2) {
        if (rd_kafka_conf_set(conf, defaults[i], defaults[i + 1], err, sizeof err)) {
            oms_errf(errbuf, errlen, "kafka property '%s': %s", defaults[i], err);
            rd_kafka_conf_destroy(conf);
            return NULL;
        }
    }
    if (oms_kafka_conf_apply(conf, props, nprops, errbuf, errlen)) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    return conf;
}

/* First member of every handle's opaque, so the error callback can tell the
 * waiting code that no broker answers (fail in a second, not at a timeout). */
typedef struct kstate {
    volatile sig_atomic_t all_down;
} kstate;

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    kstate *ks = opaque;
    if (ks && err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
        ks->all_down = 1;
}

/* librdkafka logs connection failures on stderr by itself; our programs
 * report them through their own errors, so its log stays quiet unless
 * OMS_KAFKA_DEBUG is set. */
static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    static const char *const env = "OMS_KAFKA_DEBUG";
    if (getenv(env))
        fprintf(stderr, "librdkafka: %d %s: %s\n", level, fac, buf);
}

/* Cluster metadata, giving up early when every broker refuses. */
static rd_kafka_resp_err_t metadata_wait(rd_kafka_t *rk, kstate *ks, int timeout_ms,
                                         const struct rd_kafka_metadata **md)
{
    uint64_t until = oms_mono_ns() + (uint64_t)timeout_ms * 1000000u;
    rd_kafka_resp_err_t err;
    for (;;) {
        err = rd_kafka_metadata(rk, 1, NULL, md, 500);
        if (err != RD_KAFKA_RESP_ERR__TIMED_OUT && err != RD_KAFKA_RESP_ERR__TRANSPORT)
            return err;
        rd_kafka_poll(rk, 0); /* serve the error callback */
        if (ks->all_down)
            return RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN;
        if (oms_mono_ns() >= until)
            return err;
    }
}

static rd_kafka_conf_t *base_conf(const char *brokers, const char *const *defaults,
                                  const oms_kv *props, size_t nprops, char *errbuf, size_t errlen)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char err[512];
    if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers, err, sizeof err) !=
        RD_KAFKA_CONF_OK) {
        oms_errf(errbuf, errlen, "brokers '%s': %s", brokers, err);
        goto fail;
    }
    for (size_t i = 0; defaults && defaults[i]; i += 2) {
        if (rd_kafka_conf_set(conf, defaults[i], defaults[i + 1], err, sizeof err) !=
            RD_KAFKA_CONF_OK) {
            oms_errf(errbuf, errlen, "kafka property '%s': %s", defaults[i], err);
            goto fail;
        }
    }
    if (oms_kafka_conf_apply(conf, props, nprops, errbuf, errlen) != OMS_OK)
        goto fail;
    rd_kafka_conf_set_error_cb(conf, on_error);
    rd_kafka_conf_set_log_cb(conf, on_log);
    return conf;
fail:
    rd_kafka_conf_destroy(conf);
    return NULL;
}

/* ---- producer ------------------------------------------------------------------ */

#define TOPIC_CACHE 8

struct oms_kafka_producer {
    kstate ks;
    rd_kafka_t *rk;
    /* topic handles by name: producev(RD_KAFKA_V_TOPIC) would look the
     * name up under a lock for every message */
    rd_kafka_topic_t *topics[TOPIC_CACHE];
    pthread_mutex_t topics_lock; /* producing threads add handles (REST, DLQ copies) */
    oms_kafka_on_delivery on_delivery;
    void *ctx;
    oms_kafka_producer_stats stats;
    char last_error[256];
};

static void on_dr_msg(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    oms_kafka_producer *p = opaque;
    if (m->err) {
        p->stats.failed++;
        snprintf(p->last_error, sizeof p->last_error, "%s", rd_kafka_err2str(m->err));
    } else {
        p->stats.delivered++;
    }
    if (p->on_delivery)
        p->on_delivery(p->ctx, m->_private, m->err, rd_kafka_topic_name(m->rkt), m->partition,
                       m->offset, rd_kafka_message_timestamp(m, NULL));
}

oms_kafka_producer *oms_kafka_producer_new(const char *brokers, const oms_kv *props, size_t nprops,
                                           oms_kafka_on_delivery on_delivery, void *ctx,
                                           char *errbuf, size_t errlen)
{
    static const char *const defaults[] = {
        "enable.idempotence", "true",
        "acks", "all",
        "linger.ms", "5",
        "batch.num.messages", "10000",
        "batch.size", "1000000",
        "queue.buffering.max.messages", "1000000",
        "queue.buffering.max.kbytes", "1048576",
        "message.timeout.ms", "30000",
        NULL,
    };
    oms_kafka_producer *p = calloc(1, sizeof *p);
    if (!p) {
        oms_errf(errbuf, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&p->topics_lock, NULL);
    rd_kafka_conf_t *conf = base_conf(brokers, defaults, props, nprops, errbuf, errlen);
    if (!conf) {
        free(p);
        return NULL;
    }
    p->on_delivery = on_delivery;
    p->ctx = ctx;
    rd_kafka_conf_set_dr_msg_cb(conf, on_dr_msg);
    rd_kafka_conf_set_opaque(conf, p);
    char err[512];
    p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!p->rk) {
        oms_errf(errbuf, errlen, "cannot create producer: %s", err);
        rd_kafka_conf_destroy(conf);
        free(p);
        return NULL;
    }
    return p;
}

/* The cached handle of topic (NULL when the cache is full: then callers use
 * producev by name). */
static rd_kafka_topic_t *topic_handle(oms_kafka_producer *p, const char *topic)
{
    /* under a lock: two threads adding the same new topic would otherwise
     * fill one slot twice and lose a handle */
    pthread_mutex_lock(&p->topics_lock);
    rd_kafka_topic_t *rkt = NULL;
    int slot = 0;
    for (; slot < TOPIC_CACHE && p->topics[slot]; slot++)
        if (strcmp(rd_kafka_topic_name(p->topics[slot]), topic) == 0)
            break;
    if (slot < TOPIC_CACHE) {
        if (!p->topics[slot])
            p->topics[slot] = rd_kafka_topic_new(p->rk, topic, NULL);
        rkt = p->topics[slot];
    }
    pthread_mutex_unlock(&p->topics_lock);
    return rkt;
}

int oms_kafka_producer_prepare(oms_kafka_producer *p, const char *topic, int timeout_ms,
                               char *errbuf, size_t errlen)
{
    rd_kafka_topic_t *rkt = topic_handle(p, topic);
    const struct rd_kafka_metadata *md = NULL;
    uint64_t until = oms_mono_ns() + (uint64_t)timeout_ms * 1000000u;
    for (;;) {
        rd_kafka_resp_err_t err =
            rkt ? rd_kafka_metadata(p->rk, 0, rkt, &md, 1000) : RD_KAFKA_RESP_ERR__INVALID_ARG;
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            int cnt = md->topic_cnt == 1 ? md->topics[0].partition_cnt : 0;
            rd_kafka_resp_err_t terr = md->topic_cnt == 1 ? md->topics[0].err : err;
            rd_kafka_metadata_destroy(md);
            if (cnt > 0)
                return OMS_OK;
            if (terr == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART || oms_mono_ns() >= until) {
                oms_errf(errbuf, errlen, "topic '%s' does not exist (create it with 'omsctl "
                                         "topics create')",
                         topic);
                return OMS_ENOTFOUND;
            }
        } else if (p->ks.all_down || oms_mono_ns() >= until) {
            oms_errf(errbuf, errlen, "metadata of '%s': %s", topic, rd_kafka_err2str(err));
            return OMS_EKAFKA;
        }
        rd_kafka_poll(p->rk, 100);
    }
}

int oms_kafka_produce_batch(oms_kafka_producer *p, const char *topic, rd_kafka_message_t *msgs,
                            size_t n, int block_ms, char *errbuf, size_t errlen)
{
    rd_kafka_topic_t *rkt = topic_handle(p, topic);
    if (!rkt) {
        /* no handle: one by one */
        for (size_t i = 0; i < n; i++) {
            int rc = oms_kafka_produce(p, topic, RD_KAFKA_PARTITION_UA, msgs[i].key,
                                       msgs[i].key_len, msgs[i].payload, msgs[i].len, NULL, 0,
                                       msgs[i]._private, block_ms, errbuf, errlen);
            if (rc != OMS_OK)
                return rc;
        }
        return OMS_OK;
    }
    uint64_t deadline = oms_mono_ns() + (uint64_t)(block_ms > 0 ? block_ms : 0) * 1000000u;
    size_t todo = n;
    while (todo > 0) {
        int ok = rd_kafka_produce_batch(rkt, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY, msgs,
                                        (int)todo);
        if (ok == (int)todo) {
            p->stats.produced += todo;
            for (size_t i = 0; i < todo; i++)
                p->stats.bytes += msgs[i].len;
            return OMS_OK;
        }
        /* keep the failed ones, in order, for another try */
        size_t left = 0;
        for (size_t i = 0; i < todo; i++) {
            if (msgs[i].err == RD_KAFKA_RESP_ERR_NO_ERROR) {
                p->stats.produced++;
                p->stats.bytes += msgs[i].len;
                continue;
            }
            if (msgs[i].err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                oms_errf(errbuf, errlen, "produce to '%s': %s", topic,
                         rd_kafka_err2str(msgs[i].err));
                return OMS_EKAFKA;
            }
            msgs[left++] = msgs[i];
        }
        todo = left;
        if (oms_mono_ns() >= deadline) {
            oms_errf(errbuf, errlen, "produce to '%s': local queue full", topic);
            return OMS_ETIMEDOUT;
        }
        rd_kafka_poll(p->rk, 10);
    }
    return OMS_OK;
}

int oms_kafka_produce(oms_kafka_producer *p, const char *topic, int32_t partition, const void *key,
                      size_t keylen, const void *payload, size_t len,
                      const oms_kafka_header *headers, size_t nheaders, void *msg_opaque,
                      int block_ms, char *errbuf, size_t errlen)
{
    uint64_t deadline = 0;
    rd_kafka_topic_t *rkt = topic_handle(p, topic);
    for (;;) {
        rd_kafka_headers_t *hdrs = NULL;
        if (nheaders > 0) {
            hdrs = rd_kafka_headers_new(nheaders);
            for (size_t i = 0; i < nheaders; i++)
                rd_kafka_header_add(hdrs, headers[i].name, -1, headers[i].value,
                                    (ssize_t)headers[i].len);
        }
        rd_kafka_resp_err_t err;
        if (rkt && !hdrs)
            err = rd_kafka_produce(rkt, partition, RD_KAFKA_MSG_F_COPY, (void *)payload, len, key,
                                   keylen, msg_opaque) == 0
                      ? RD_KAFKA_RESP_ERR_NO_ERROR
                      : rd_kafka_last_error();
        else if (hdrs)
            err = rd_kafka_producev(p->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
                                    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                    RD_KAFKA_V_KEY(key, keylen),
                                    RD_KAFKA_V_VALUE((void *)payload, len),
                                    RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_OPAQUE(msg_opaque),
                                    RD_KAFKA_V_END);
        else
            err = rd_kafka_producev(p->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
                                    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                    RD_KAFKA_V_KEY(key, keylen),
                                    RD_KAFKA_V_VALUE((void *)payload, len),
                                    RD_KAFKA_V_OPAQUE(msg_opaque), RD_KAFKA_V_END);
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            p->stats.produced++;
            p->stats.bytes += len;
            return OMS_OK;
        }
        if (hdrs)
            rd_kafka_headers_destroy(hdrs); /* ownership passes only on success */
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            oms_errf(errbuf, errlen, "produce to '%s': %s", topic, rd_kafka_err2str(err));
            return OMS_EKAFKA;
        }
        if (deadline == 0)
            deadline = oms_mono_ns() + (uint64_t)(block_ms > 0 ? block_ms : 0) * 1000000u;
        if (oms_mono_ns() >= deadline) {
            oms_errf(errbuf, errlen, "produce to '%s': local queue full", topic);
            return OMS_ETIMEDOUT;
        }
        rd_kafka_poll(p->rk, 10);
    }
}

int oms_kafka_producer_check(oms_kafka_producer *p, int timeout_ms, char *errbuf, size_t errlen)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t err = metadata_wait(p->rk, &p->ks, timeout_ms, &md);
    if (err) {
        oms_errf(errbuf, errlen, "%s", rd_kafka_err2str(err));
        return OMS_EKAFKA;
    }
    rd_kafka_metadata_destroy(md);
    return OMS_OK;
}

void oms_kafka_producer_poll(oms_kafka_producer *p, int timeout_ms)
{
    rd_kafka_poll(p->rk, timeout_ms);
}

int oms_kafka_producer_flush(oms_kafka_producer *p, int timeout_ms)
{
    rd_kafka_flush(p->rk, timeout_ms);
    /* serve the reports of what flush completed */
    rd_kafka_poll(p->rk, 0);
    return rd_kafka_outq_len(p->rk);
}

void oms_kafka_producer_stats_get(const oms_kafka_producer *p, oms_kafka_producer_stats *out)
{
    *out = p->stats;
}

const char *oms_kafka_producer_last_error(const oms_kafka_producer *p)
{
    return p->last_error;
}

rd_kafka_t *oms_kafka_producer_handle(oms_kafka_producer *p)
{
    return p->rk;
}

int oms_kafka_producer_free(oms_kafka_producer *p, int flush_ms)
{
    if (!p)
        return 0;
    int left = oms_kafka_producer_flush(p, flush_ms);
    if (left > 0) {
        /* purge so destroy does not block; their reports count as failed */
        rd_kafka_purge(p->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_poll(p->rk, 100);
    }
    for (int i = 0; i < TOPIC_CACHE && p->topics[i]; i++)
        rd_kafka_topic_destroy(p->topics[i]);
    rd_kafka_destroy(p->rk);
    pthread_mutex_destroy(&p->topics_lock);
    free(p);
    return left;
}

/* ---- reader ------------------------------------------------------------------------ */

typedef struct reader_hold {
    char *topic;
    int32_t partition;
    int64_t offset;    /* read again from here */
    uint64_t until_ns; /* mono */
} reader_hold;

struct oms_kafka_reader {
    kstate ks;
    rd_kafka_t *rk;
    size_t assigned;
    reader_hold *holds;
    size_t nholds, capholds;
};

oms_kafka_reader *oms_kafka_reader_new(const char *brokers, const oms_kv *props, size_t nprops,
                                       char *errbuf, size_t errlen)
{
    static const char *const defaults[] = {
        /* group.id is required by the consumer API even without membership */
        "group.id", "oms-reader",
        "enable.auto.commit", "false",
        "enable.auto.offset.store", "false",
        "enable.partition.eof", "true",
        "fetch.wait.max.ms", "50",
        "fetch.min.bytes", "1",
        "queued.max.messages.kbytes", "262144",
        NULL,
    };
    oms_kafka_reader *r = calloc(1, sizeof *r);
    if (!r) {
        oms_errf(errbuf, errlen, "out of memory");
        return NULL;
    }
    rd_kafka_conf_t *conf = base_conf(brokers, defaults, props, nprops, errbuf, errlen);
    if (!conf) {
        free(r);
        return NULL;
    }
    char err[512];
    rd_kafka_conf_set_opaque(conf, r);
    r->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    if (!r->rk) {
        oms_errf(errbuf, errlen, "cannot create consumer: %s", err);
        rd_kafka_conf_destroy(conf);
        free(r);
        return NULL;
    }
    rd_kafka_poll_set_consumer(r->rk);
    return r;
}

static bool all_topics_known(const struct rd_kafka_metadata *md, const char *const *topics,
                             size_t ntopics)
{
    for (size_t t = 0; t < ntopics; t++) {
        bool found = false;
        for (int i = 0; i < md->topic_cnt && !found; i++)
            found = strcmp(md->topics[i].topic, topics[t]) == 0 && !md->topics[i].err &&
                    md->topics[i].partition_cnt > 0;
        if (!found)
            return false;
    }
    return true;
}

int oms_kafka_reader_assign(oms_kafka_reader *r, const char *const *topics, size_t ntopics,
                            int32_t partition, int64_t start, bool start_is_time, int timeout_ms,
                            char *errbuf, size_t errlen)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t err = metadata_wait(r->rk, &r->ks, timeout_ms, &md);
    if (err) {
        oms_errf(errbuf, errlen, "cannot read cluster metadata: %s", rd_kafka_err2str(err));
        return OMS_EKAFKA;
    }
    /* a topic created a moment ago may not be in every broker's metadata
     * yet: look again for a little while before calling it missing */
    for (int tries = 0; tries < 20 && !all_topics_known(md, topics, ntopics); tries++) {
        rd_kafka_metadata_destroy(md);
        rd_kafka_poll(r->rk, 100);
        err = metadata_wait(r->rk, &r->ks, timeout_ms, &md);
        if (err) {
            oms_errf(errbuf, errlen, "cannot read cluster metadata: %s", rd_kafka_err2str(err));
            return OMS_EKAFKA;
        }
    }
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(16);
    int rc = OMS_OK;
    for (size_t t = 0; t < ntopics && rc == OMS_OK; t++) {
        const struct rd_kafka_metadata_topic *mt = NULL;
        for (int i = 0; i < md->topic_cnt; i++)
            if (strcmp(md->topics[i].topic, topics[t]) == 0)
                mt = &md->topics[i];
        if (!mt || mt->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART || mt->partition_cnt == 0) {
            oms_errf(errbuf, errlen, "topic '%s' does not exist", topics[t]);
            rc = OMS_ENOTFOUND;
            break;
        }
        if (partition >= 0 && partition >= mt->partition_cnt) {
            oms_errf(errbuf, errlen, "topic '%s' has no partition %d (it has %d)", topics[t],
                     (int)partition, mt->partition_cnt);
            rc = OMS_ENOTFOUND;
            break;
        }
        for (int p = 0; p < mt->partition_cnt; p++) {
            if (partition >= 0 && p != partition)
                continue;
            rd_kafka_topic_partition_t *tp =
                rd_kafka_topic_partition_list_add(list, topics[t], mt->partitions[p].id);
            tp->offset = start;
        }
    }
    rd_kafka_metadata_destroy(md);
    if (rc == OMS_OK && start_is_time) {
        err = rd_kafka_offsets_for_times(r->rk, list, timeout_ms);
        if (err) {
            oms_errf(errbuf, errlen, "cannot look up offsets by time: %s", rd_kafka_err2str(err));
            rc = OMS_EKAFKA;
        }
        /* a partition with nothing at or after the time gives -1: start at its end */
        for (int i = 0; rc == OMS_OK && i < list->cnt; i++)
            if (list->elems[i].offset < 0)
                list->elems[i].offset = RD_KAFKA_OFFSET_END;
    }
    if (rc == OMS_OK) {
        err = rd_kafka_assign(r->rk, list);
        if (err) {
            oms_errf(errbuf, errlen, "cannot assign partitions: %s", rd_kafka_err2str(err));
            rc = OMS_EKAFKA;
        } else {
            r->assigned = (size_t)list->cnt;
            rc = list->cnt;
        }
    }
    rd_kafka_topic_partition_list_destroy(list);
    return rc;
}

static rd_kafka_topic_partition_list_t *one_partition(const char *topic, int32_t partition,
                                                     int64_t offset)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, partition)->offset = offset;
    return l;
}

int oms_kafka_reader_hold(oms_kafka_reader *r, const char *topic, int32_t partition,
                          int64_t offset, int delay_ms)
{
    uint64_t until = oms_mono_ns() + (uint64_t)(delay_ms > 0 ? delay_ms : 0) * 1000000u;
    for (size_t i = 0; i < r->nholds; i++)
        if (r->holds[i].partition == partition && strcmp(r->holds[i].topic, topic) == 0) {
            if (offset < r->holds[i].offset)
                r->holds[i].offset = offset;
            r->holds[i].until_ns = until;
            return OMS_OK;
        }
    if (r->nholds == r->capholds) {
        size_t cap = r->capholds ? r->capholds * 2 : 8;
        reader_hold *h = realloc(r->holds, cap * sizeof *h);
        if (!h)
            return OMS_ENOMEM;
        r->holds = h;
        r->capholds = cap;
    }
    char *t = strdup(topic);
    if (!t)
        return OMS_ENOMEM;
    r->holds[r->nholds++] = (reader_hold){t, partition, offset, until};
    /* pausing drops what was fetched past the record; the seek comes at
     * release: a seek on a paused partition does not survive its resume */
    rd_kafka_topic_partition_list_t *l = one_partition(topic, partition, RD_KAFKA_OFFSET_INVALID);
    rd_kafka_pause_partitions(r->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    return OMS_OK;
}

size_t oms_kafka_reader_held(const oms_kafka_reader *r)
{
    return r->nholds;
}

static void release_holds(oms_kafka_reader *r)
{
    uint64_t now = oms_mono_ns();
    for (size_t i = 0; i < r->nholds;) {
        reader_hold *h = &r->holds[i];
        if (now < h->until_ns) {
            i++;
            continue;
        }
        rd_kafka_topic_partition_list_t *l = one_partition(h->topic, h->partition, h->offset);
        rd_kafka_resume_partitions(r->rk, l);
        rd_kafka_error_t *e = rd_kafka_seek_partitions(r->rk, l, 5000);
        bool ok = !e && !l->elems[0].err;
        if (e)
            rd_kafka_error_destroy(e);
        rd_kafka_topic_partition_list_destroy(l);
        if (!ok) {
            /* held again: a partition must not go on past the record */
            l = one_partition(h->topic, h->partition, RD_KAFKA_OFFSET_INVALID);
            rd_kafka_pause_partitions(r->rk, l);
            rd_kafka_topic_partition_list_destroy(l);
            h->until_ns = now + 1000000000u;
            i++;
            continue;
        }
        free(h->topic);
        r->holds[i] = r->holds[--r->nholds];
    }
}

static bool is_held(const oms_kafka_reader *r, const rd_kafka_message_t *m)
{
    if (!r->nholds || !m->rkt)
        return false;
    const char *topic = rd_kafka_topic_name(m->rkt);
    for (size_t i = 0; i < r->nholds; i++)
        if (r->holds[i].partition == m->partition && strcmp(r->holds[i].topic, topic) == 0)
            return true;
    return false;
}

rd_kafka_message_t *oms_kafka_reader_poll(oms_kafka_reader *r, int timeout_ms)
{
    if (r->nholds)
        release_holds(r);
    rd_kafka_message_t *m = rd_kafka_consumer_poll(r->rk, timeout_ms);
    if (m && is_held(r, m)) {
        /* fetched before the pause took effect: read again after the hold */
        rd_kafka_message_destroy(m);
        return NULL;
    }
    return m;
}

size_t oms_kafka_reader_assigned(const oms_kafka_reader *r)
{
    return r->assigned;
}

rd_kafka_t *oms_kafka_reader_handle(oms_kafka_reader *r)
{
    return r->rk;
}

void oms_kafka_reader_free(oms_kafka_reader *r)
{
    if (!r)
        return;
    rd_kafka_consumer_close(r->rk);
    rd_kafka_destroy(r->rk);
    for (size_t i = 0; i < r->nholds; i++)
        free(r->holds[i].topic);
    free(r->holds);
    free(r);
}

/* ---- admin ------------------------------------------------------------------------- */

static rd_kafka_t *admin_client(const char *brokers, const oms_kv *props, size_t nprops,
                                kstate *ks, char *errbuf, size_t errlen)
{
    rd_kafka_conf_t *conf = base_conf(brokers, NULL, props, nprops, errbuf, errlen);
    if (!conf)
        return NULL;
    rd_kafka_conf_set_opaque(conf, ks);
    char err[512];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!rk) {
        oms_errf(errbuf, errlen, "cannot create kafka client: %s", err);
        rd_kafka_conf_destroy(conf);
    }
    return rk;
}

int oms_kafka_topics_create(const char *brokers, const oms_kv *props, size_t nprops,
                            const oms_topic_spec *specs, size_t n, int timeout_ms, int *results,
                            char (*errs)[256], char *errbuf, size_t errlen)
{
    kstate ks = {0};
    rd_kafka_t *rk = admin_client(brokers, props, nprops, &ks, errbuf, errlen);
    if (!rk)
        return OMS_EKAFKA;
    int rc = OMS_OK;
    /* fail fast when no broker answers */
    const struct rd_kafka_metadata *md0 = NULL;
    rd_kafka_resp_err_t merr = metadata_wait(rk, &ks, timeout_ms, &md0);
    if (merr) {
        oms_errf(errbuf, errlen, "cannot reach kafka at '%s': %s", brokers, rd_kafka_err2str(merr));
        rd_kafka_destroy(rk);
        return OMS_EKAFKA;
    }
    rd_kafka_metadata_destroy(md0);
    rd_kafka_NewTopic_t **nt = calloc(n ? n : 1, sizeof *nt);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    char err[512];
    for (size_t i = 0; i < n; i++) {
        nt[i] = rd_kafka_NewTopic_new(specs[i].name, specs[i].partitions,
                                      specs[i].replication_factor, err, sizeof err);
        if (!nt[i]) {
            oms_errf(errbuf, errlen, "topic '%s': %s", specs[i].name, err);
            rc = OMS_EINVAL;
            goto out;
        }
        for (size_t c = 0; c < specs[i].nconfigs; c++)
            rd_kafka_NewTopic_set_config(nt[i], specs[i].configs[c].key,
                                         specs[i].configs[c].value);
    }
    rd_kafka_AdminOptions_t *opts = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_AdminOptions_set_operation_timeout(opts, timeout_ms, err, sizeof err);
    rd_kafka_AdminOptions_set_request_timeout(opts, timeout_ms, err, sizeof err);
    rd_kafka_CreateTopics(rk, nt, n, opts, q);
    rd_kafka_AdminOptions_destroy(opts);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, timeout_ms + 2000);
    if (!ev) {
        oms_errf(errbuf, errlen, "no answer from '%s' within %d ms", brokers, timeout_ms);
        rc = OMS_ETIMEDOUT;
        goto out;
    }
    if (rd_kafka_event_error(ev)) {
        oms_errf(errbuf, errlen, "create topics: %s", rd_kafka_event_error_string(ev));
        rc = OMS_EKAFKA;
        rd_kafka_event_destroy(ev);
        goto out;
    }
    size_t cnt = 0;
    const rd_kafka_topic_result_t **res =
        rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &cnt);
    for (size_t i = 0; i < cnt; i++) {
        const char *name = rd_kafka_topic_result_name(res[i]);
        size_t idx = 0;
        while (idx < n && strcmp(specs[idx].name, name) != 0)
            idx++;
        if (idx == n)
            continue;
        rd_kafka_resp_err_t e = rd_kafka_topic_result_error(res[i]);
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
            results[idx] = 0;
        } else if (e == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
            results[idx] = 1;
        } else {
            results[idx] = OMS_EKAFKA;
            rc = OMS_EKAFKA;
            if (errs)
                snprintf(errs[idx], 256, "%s", rd_kafka_topic_result_error_string(res[i]));
        }
    }
    if (rc != OMS_OK)
        oms_errf(errbuf, errlen, "some topics could not be created");
    rd_kafka_event_destroy(ev);
out:
    for (size_t i = 0; i < n; i++)
        if (nt[i])
            rd_kafka_NewTopic_destroy(nt[i]);
    free(nt);
    rd_kafka_queue_destroy(q);
    rd_kafka_destroy(rk);
    return rc;
}

static int cmp_topic_info(const void *a, const void *b)
{
    return strcmp(((const oms_kafka_topic_info *)a)->name, ((const oms_kafka_topic_info *)b)->name);
}

int oms_kafka_topics_list(const char *brokers, const oms_kv *props, size_t nprops, bool with_counts,
                          int timeout_ms, oms_kafka_topic_info **out, char *errbuf, size_t errlen)
{
    *out = NULL;
    kstate ks = {0};
    rd_kafka_t *rk = admin_client(brokers, props, nprops, &ks, errbuf, errlen);
    if (!rk)
        return OMS_EKAFKA;
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t err = metadata_wait(rk, &ks, timeout_ms, &md);
    if (err) {
        oms_errf(errbuf, errlen, "cannot reach kafka at '%s': %s", brokers, rd_kafka_err2str(err));
        rd_kafka_destroy(rk);
        return OMS_EKAFKA;
    }
    oms_kafka_topic_info *info = calloc((size_t)md->topic_cnt + 1, sizeof *info);
    int n = 0;
    for (int i = 0; info && i < md->topic_cnt; i++) {
        const struct rd_kafka_metadata_topic *t = &md->topics[i];
        if (strncmp(t->topic, "__", 2) == 0)
            continue;
        oms_kafka_topic_info *ti = &info[n++];
        snprintf(ti->name, sizeof ti->name, "%s", t->topic);
        ti->partitions = t->partition_cnt;
        ti->replication_factor = t->partition_cnt > 0 ? t->partitions[0].replica_cnt : 0;
        ti->messages = -1;
        if (with_counts) {
            int64_t total = 0;
            for (int p = 0; p < t->partition_cnt; p++) {
                int64_t lo, hi;
                rd_kafka_resp_err_t werr;
                uint64_t until = oms_mono_ns() + (uint64_t)timeout_ms * 1000000u;
                /* a topic created a moment ago may not have a leader yet */
                while ((werr = rd_kafka_query_watermark_offsets(rk, t->topic, t->partitions[p].id,
                                                                &lo, &hi, timeout_ms)) !=
                           RD_KAFKA_RESP_ERR_NO_ERROR &&
                       oms_mono_ns() < until)
                    rd_kafka_poll(rk, 100);
                if (werr != RD_KAFKA_RESP_ERR_NO_ERROR) {
                    total = -1;
                    break;
                }
                total += hi - lo;
            }
            ti->messages = total;
        }
    }
    rd_kafka_metadata_destroy(md);
    rd_kafka_destroy(rk);
    if (!info) {
        oms_errf(errbuf, errlen, "out of memory");
        return OMS_ENOMEM;
    }
    qsort(info, (size_t)n, sizeof *info, cmp_topic_info);
    *out = info;
    return n;
}
