/* kafka.h — thin adapters over librdkafka: an idempotent acks=all producer
 * with delivery accounting, a manual-assignment reader (tail, fan-out,
 * replay), and topic administration.
 *
 * Every constructor takes the broker list and optional extra librdkafka
 * properties (key/value pairs, applied last, so an operator can set SASL,
 * SSL, client.id...). */
#ifndef OMS_KAFKA_H
#define OMS_KAFKA_H

#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/oms.h"
#include "config/config.h"
#include "log/log.h"

/* ---- producer ------------------------------------------------------------------ */

typedef struct oms_kafka_producer oms_kafka_producer;

/* Called from oms_kafka_producer_poll()/flush() on the calling thread, once
 * per message: err is RD_KAFKA_RESP_ERR_NO_ERROR or the failure; timestamp
 * is the record's Kafka timestamp (epoch ms, -1 unknown). */
typedef void (*oms_kafka_on_delivery)(void *ctx, void *msg_opaque, rd_kafka_resp_err_t err,
                                      const char *topic, int32_t partition, int64_t offset,
                                      int64_t timestamp);

typedef struct oms_kafka_producer_stats {
    uint64_t produced;  /* accepted into the local queue */
    uint64_t delivered; /* acknowledged by the brokers (acks=all) */
    uint64_t failed;    /* permanently failed */
    uint64_t bytes;     /* payload bytes accepted */
} oms_kafka_producer_stats;

typedef struct oms_kafka_header {
    const char *name;
    const void *value;
    size_t len;
} oms_kafka_header;

/* A producer with enable.idempotence=true, acks=all, and batching tuned for
 * throughput (linger 5 ms). on_delivery may be NULL. Returns NULL + errbuf. */
oms_kafka_producer *oms_kafka_producer_new(const char *brokers, const oms_kv *props, size_t nprops,
                                           oms_kafka_on_delivery on_delivery, void *ctx,
                                           char *errbuf, size_t errlen);

/* Queue one message (payload and key are copied). When the local queue is
 * full it serves delivery reports and retries for up to block_ms.
 * Returns 0, OMS_ETIMEDOUT (queue still full) or OMS_EKAFKA + errbuf. */
int oms_kafka_produce(oms_kafka_producer *p, const char *topic, int32_t partition, const void *key,
                      size_t keylen, const void *payload, size_t len,
                      const oms_kafka_header *headers, size_t nheaders, void *msg_opaque,
                      int block_ms, char *errbuf, size_t errlen);

/* Look topic up before the first message, so its partitions are known and
 * a missing topic is an error now rather than a delivery timeout later.
 * Returns 0, OMS_ENOTFOUND or OMS_EKAFKA with errbuf. */
int oms_kafka_producer_prepare(oms_kafka_producer *p, const char *topic, int timeout_ms,
                               char *errbuf, size_t errlen);

/* Queue n messages for topic in one call (partitioned by key): for each,
 * payload/len, key/key_len and _private (the delivery opaque) must be set;
 * payloads are copied. Cheaper per message than oms_kafka_produce. msgs is
 * reordered on a partial failure. Returns 0, OMS_ETIMEDOUT or OMS_EKAFKA. */
int oms_kafka_produce_batch(oms_kafka_producer *p, const char *topic, rd_kafka_message_t *msgs,
                            size_t n, int block_ms, char *errbuf, size_t errlen);

/* Check that the cluster answers (metadata), failing within about a second
 * when every broker refuses. Returns 0 or OMS_EKAFKA + errbuf. */
int oms_kafka_producer_check(oms_kafka_producer *p, int timeout_ms, char *errbuf, size_t errlen);

/* Serve delivery reports. */
void oms_kafka_producer_poll(oms_kafka_producer *p, int timeout_ms);

/* Wait up to timeout_ms for every queued message. Returns the number of
 * messages still undelivered (0 = all delivered or failed with a report). */
int oms_kafka_producer_flush(oms_kafka_producer *p, int timeout_ms);

void oms_kafka_producer_stats_get(const oms_kafka_producer *p, oms_kafka_producer_stats *out);
/* The last delivery error text ("" when none). */
const char *oms_kafka_producer_last_error(const oms_kafka_producer *p);
rd_kafka_t *oms_kafka_producer_handle(oms_kafka_producer *p);

/* Flush for up to flush_ms, then destroy. Returns the number of messages
 * that were still undelivered (lost unless retried by the caller). */
int oms_kafka_producer_free(oms_kafka_producer *p, int flush_ms);

/* ---- reader (manual assignment, no group) ------------------------------------- */

#define OMS_KAFKA_FROM_BEGINNING RD_KAFKA_OFFSET_BEGINNING
#define OMS_KAFKA_FROM_END RD_KAFKA_OFFSET_END

typedef struct oms_kafka_reader oms_kafka_reader;

/* A consumer that assigns partitions itself (no group membership, no
 * commits). Returns NULL + errbuf. */
oms_kafka_reader *oms_kafka_reader_new(const char *brokers, const oms_kv *props, size_t nprops,
                                       char *errbuf, size_t errlen);

/* Assign every partition of each topic (or only `partition` when >= 0),
 * starting at `start`: OMS_KAFKA_FROM_BEGINNING, OMS_KAFKA_FROM_END, an
 * absolute offset (>= 0), or a timestamp when start_is_time (epoch ms).
 * Fails with OMS_ENOTFOUND + errbuf when a topic or partition does not exist.
 * Returns the number of partitions assigned. */
int oms_kafka_reader_assign(oms_kafka_reader *r, const char *const *topics, size_t ntopics,
                            int32_t partition, int64_t start, bool start_is_time, int timeout_ms,
                            char *errbuf, size_t errlen);

/* Next message or NULL on timeout (or when what came belongs to a held
 * partition; held partitions due are released first). The caller destroys it with
 * rd_kafka_message_destroy(). Partition-EOF events are returned as messages
 * with err == RD_KAFKA_RESP_ERR__PARTITION_EOF. */
rd_kafka_message_t *oms_kafka_reader_poll(oms_kafka_reader *r, int timeout_ms);

/* Hold a partition whose record at `offset` cannot be handled yet (its
 * schema cannot be fetched now): it is paused at once, its other partitions
 * go on, and after delay_ms oms_kafka_reader_poll() reads it again from
 * `offset`, so its order is kept and nothing is skipped. Holding a held
 * partition again moves its release. Returns 0 or OMS_ENOMEM. */
int oms_kafka_reader_hold(oms_kafka_reader *r, const char *topic, int32_t partition,
                          int64_t offset, int delay_ms);
/* Number of partitions held now. */
size_t oms_kafka_reader_held(const oms_kafka_reader *r);

/* Number of assigned partitions. */
size_t oms_kafka_reader_assigned(const oms_kafka_reader *r);
rd_kafka_t *oms_kafka_reader_handle(oms_kafka_reader *r);
void oms_kafka_reader_free(oms_kafka_reader *r);

/* ---- admin ----------------------------------------------------------------------- */

typedef struct oms_kafka_topic_info {
    char name[256];
    int partitions;
    int replication_factor;
    int64_t messages; /* sum over partitions of (high - low) watermarks, -1 unknown */
} oms_kafka_topic_info;

/* Create the topics; an existing topic is not an error (result "exists").
 * For each spec, results[i] is 0 (created), 1 (already existed) or a
 * negative code with its message in errs[i] (256 bytes each, may be NULL).
 * Returns 0 when every topic exists afterwards, else OMS_EKAFKA. */
int oms_kafka_topics_create(const char *brokers, const oms_kv *props, size_t nprops,
                            const oms_topic_spec *specs, size_t n, int timeout_ms, int *results,
                            char (*errs)[256], char *errbuf, size_t errlen);

/* List the topics (internal ones starting with "__" skipped), sorted by name,
 * with watermark totals when with_counts. *out is malloc'd (caller frees).
 * Returns the count or a negative code + errbuf. */
int oms_kafka_topics_list(const char *brokers, const oms_kv *props, size_t nprops, bool with_counts,
                          int timeout_ms, oms_kafka_topic_info **out, char *errbuf, size_t errlen);

/* Apply props (name=value) to a librdkafka conf. Returns 0 or OMS_EINVAL. */
int oms_kafka_conf_apply(rd_kafka_conf_t *conf, const oms_kv *props, size_t nprops, char *errbuf,
                         size_t errlen);

/* The conf of a group consumer: brokers, group.id, then the program's
 * settings (defaults: name, value, ..., NULL), then the user's props (which
 * win). NULL with errbuf on a bad property; the caller owns the conf. */
rd_kafka_conf_t *oms_kafka_group_conf(const char *brokers, const char *group,
                                      const char *const *defaults, const oms_kv *props,
                                      size_t nprops, char *errbuf, size_t errlen);

#endif
