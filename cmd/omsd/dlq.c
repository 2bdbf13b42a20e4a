/* dlq.c — copies of bad records to the dead-letter topic, shared by the
 * fan-out reader and the projection consumer. */
#include <inttypes.h>
#include <string.h>

#include "omsd.h"

int omsd_dlq_copy(omsd *d, oms_kafka_producer *p, const rd_kafka_message_t *m, const char *topic,
                  const char *reason, const char *stage)
{
    char part[16], off[24];
    snprintf(part, sizeof part, "%d", (int)m->partition);
    snprintf(off, sizeof off, "%" PRId64, m->offset);
    const oms_kafka_header h[] = {
        {"oms.error", reason, strlen(reason)},
        {"oms.source.topic", topic, strlen(topic)},
        {"oms.source.partition", part, strlen(part)},
        {"oms.source.offset", off, strlen(off)},
        {"oms.stage", stage, strlen(stage)},
    };
    char err[256];
    int rc = oms_kafka_produce(p, d->cfg.kafka.topic_dlq, RD_KAFKA_PARTITION_UA, m->key,
                               m->key_len, m->payload, m->len, h, OMS_ARRAY_LEN(h), NULL, 5000,
                               err, sizeof err);
    if (rc == OMS_OK)
        atomic_fetch_add(&d->m.dlq_sent, 1);
    /* one Sentry event per record: each is data someone must look at; the
     * fingerprint keeps them in one issue */
    char msg[600];
    snprintf(msg, sizeof msg, "record copied to the dead-letter topic: %s:%d:%s", topic,
             (int)m->partition, off);
    omsd_alerts_error(d, "error", msg, "omsd-dlq",
                      json_pack("{s:s,s:s,s:s,s:s}", "topic", topic, "partition", part, "offset",
                                off, "stage", stage),
                      json_pack("{s:s,s:s,s:b}", "reason", reason, "dlqTopic",
                                d->cfg.kafka.topic_dlq, "copied", rc == OMS_OK));
    if (rc != OMS_OK)
        oms_log(d->log, OMS_LOG_ERROR, "cannot copy a bad record to the dlq", OMS_LS("error", err),
                OMS_LS("topic", topic), OMS_LI("partition", m->partition),
                OMS_LI("offset", m->offset), OMS_LS("stage", stage));
    return rc;
}
