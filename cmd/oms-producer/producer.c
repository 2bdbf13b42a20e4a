/* producer.c — shared set-up, sending, delivery records and the summary. */
#include "producer.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

volatile sig_atomic_t producer_stop;

static void on_signal(int sig)
{
    (void)sig;
    producer_stop = 1;
}

void prod_install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* What a delivery report needs to write the record line. */
typedef struct sent_rec {
    char event_id[37];
    oms_event_type type;
    char key[64];
} sent_rec;

static void on_delivery(void *ctx, void *opaque, rd_kafka_resp_err_t err, const char *topic,
                        int32_t partition, int64_t offset)
{
    prod_ctx *c = ctx;
    sent_rec *r = opaque;
    if (!r)
        return;
    if (c->record && !err)
        fprintf(c->record,
                "{\"eventId\":\"%s\",\"type\":\"%s\",\"key\":\"%s\",\"topic\":\"%s\","
                "\"partition\":%d,\"offset\":%" PRId64 "}\n",
                r->event_id, oms_event_type_name(r->type), r->key, topic, (int)partition, offset);
    free(r);
}

int prod_open(prod_ctx *c, const prod_opts *o)
{
    memset(c, 0, sizeof *c);
    char err[512];
    int rc = oms_cli_load_config("oms-producer", o->config, &c->cfg);
    if (rc)
        return rc;
    if (o->brokers) {
        free(c->cfg.kafka.brokers);
        c->cfg.kafka.brokers = strdup(o->brokers);
    }
    c->topics[OMS_TOPIC_ORDERS] = c->cfg.kafka.topic_orders;
    c->topics[OMS_TOPIC_INVENTORY] = c->cfg.kafka.topic_inventory;
    c->topics[OMS_TOPIC_NOTIFICATIONS] = c->cfg.kafka.topic_notifications;
    c->events = oms_events_new(o->schemas ? o->schemas : c->cfg.schemas.dir, err, sizeof err);
    if (!c->events) {
        fprintf(stderr, "oms-producer: cannot load schemas: %s\n", err);
        oms_config_free(&c->cfg);
        return OMS_EXIT_USAGE;
    }
    if (o->record) {
        c->record = fopen(o->record, "w");
        if (!c->record) {
            fprintf(stderr, "oms-producer: cannot write '%s': %s\n", o->record, strerror(errno));
            oms_events_free(c->events);
            oms_config_free(&c->cfg);
            return OMS_EXIT_USAGE;
        }
    }
    c->kp = oms_kafka_producer_new(c->cfg.kafka.brokers, c->cfg.kafka.props, c->cfg.kafka.nprops,
                                   on_delivery, c, err, sizeof err);
    if (!c->kp) {
        fprintf(stderr, "oms-producer: %s\n", err);
        if (c->record)
            fclose(c->record);
        oms_events_free(c->events);
        oms_config_free(&c->cfg);
        return OMS_EXIT_USAGE;
    }
    c->start_ns = oms_mono_ns();
    return OMS_EXIT_OK;
}

int prod_send(prod_ctx *c, const oms_event *ev, char *errbuf, size_t errlen)
{
    uint8_t buf[16384];
    size_t len = 0;
    char key[64];
    int klen = oms_event_key(ev, key, sizeof key);
    if (klen < 0) {
        oms_errf(errbuf, errlen, "key too long");
        return -1;
    }
    int rc = oms_event_encode(c->events, ev, buf, sizeof buf, &len, errbuf, errlen);
    uint8_t *big = NULL;
    if (rc == OMS_ERANGE) {
        /* rare: an event with a large data payload */
        size_t cap = 1u << 20;
        big = malloc(cap);
        rc = big ? oms_event_encode(c->events, ev, big, cap, &len, errbuf, errlen) : OMS_ENOMEM;
    }
    if (rc != OMS_OK) {
        c->encode_failed++;
        free(big);
        return -1;
    }
    sent_rec *r = NULL;
    if (c->record) {
        r = malloc(sizeof *r);
        if (r) {
            memcpy(r->event_id, ev->event_id, sizeof r->event_id);
            r->type = ev->type;
            snprintf(r->key, sizeof r->key, "%s", key);
        }
    }
    const char *topic = c->topics[oms_event_topic_kind(ev->type)];
    rc = oms_kafka_produce(c->kp, topic, RD_KAFKA_PARTITION_UA, key, (size_t)klen, big ? big : buf,
                           len, NULL, 0, r, 30000, errbuf, errlen);
    free(big);
    if (rc != OMS_OK) {
        free(r);
        return -2;
    }
    c->sent_by_type[ev->type]++;
    oms_kafka_producer_poll(c->kp, 0);
    return 0;
}

int prod_close(prod_ctx *c, bool json_summary, const char *extra_json_fields)
{
    int undelivered = oms_kafka_producer_flush(c->kp, 30000);
    oms_kafka_producer_stats st;
    oms_kafka_producer_stats_get(c->kp, &st);
    double secs = (double)(oms_mono_ns() - c->start_ns) / 1e9;
    double rate = secs > 0 ? (double)st.delivered / secs : 0;
    const char *last = oms_kafka_producer_last_error(c->kp);
    if (json_summary) {
        printf("{\"sent\":%" PRIu64 ",\"delivered\":%" PRIu64 ",\"failed\":%" PRIu64
               ",\"undelivered\":%d,\"seconds\":%.3f,\"rate\":%.0f,\"byType\":{",
               st.produced, st.delivered, st.failed, undelivered, secs, rate);
        for (int t = 0; t < OMS_EV__COUNT; t++)
            printf("%s\"%s\":%" PRIu64, t ? "," : "", oms_event_type_name((oms_event_type)t),
                   c->sent_by_type[t]);
        printf("}%s%s}\n", extra_json_fields ? "," : "", extra_json_fields ? extra_json_fields : "");
    } else {
        fprintf(stderr, "oms-producer: sent %" PRIu64 ", delivered %" PRIu64 ", failed %" PRIu64
                        ", undelivered %d in %.2f s (%.0f events/s)\n",
                st.produced, st.delivered, st.failed, undelivered, secs, rate);
        for (int t = 0; t < OMS_EV__COUNT; t++)
            if (c->sent_by_type[t])
                fprintf(stderr, "  %-20s %" PRIu64 "\n", oms_event_type_name((oms_event_type)t),
                        c->sent_by_type[t]);
        if (extra_json_fields)
            fprintf(stderr, "  %s\n", extra_json_fields);
        if (st.failed && last[0])
            fprintf(stderr, "oms-producer: last delivery error: %s\n", last);
    }
    int left = oms_kafka_producer_free(c->kp, 0);
    if (c->record)
        fclose(c->record);
    oms_events_free(c->events);
    oms_config_free(&c->cfg);
    return (st.failed || left || undelivered) ? OMS_EXIT_FAIL : OMS_EXIT_OK;
}
