/* producer.c — shared set-up, sending, delivery records and the summary. */
#include "producer.h"
#include "registry/registry.h"

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
                        int32_t partition, int64_t offset, int64_t timestamp)
{
    prod_ctx *c = ctx;
    sent_rec *r = opaque;
    if (!r)
        return;
    if (c->record && !err)
        fprintf(c->record,
                "{\"eventId\":\"%s\",\"type\":\"%s\",\"key\":\"%s\",\"topic\":\"%s\","
                "\"partition\":%d,\"offset\":%" PRId64 ",\"timestamp\":%" PRId64 "}\n",
                r->event_id, oms_event_type_name(r->type), r->key, topic, (int)partition, offset,
                timestamp);
    free(r);
}

int prod_setup_format(const char *prog, oms_config *cfg, oms_events *events, const char *format,
                      const char *registry, const char *const topics[OMS_TOPIC__COUNT],
                      oms_wire_format *fmt, uint32_t ids[OMS_EV__COUNT])
{
    *fmt = OMS_WIRE_SOE;
    if (format && oms_wire_format_parse(format, fmt) != OMS_OK) {
        fprintf(stderr, "%s: unknown --format '%s' (soe, confluent or json)\n", prog, format);
        return OMS_EXIT_USAGE;
    }
    if (registry) {
        free(cfg->schema_registry.url);
        if (!(cfg->schema_registry.url = strdup(registry)))
            return OMS_EXIT_FAIL;
    }
    /* --registry also serves reading (serve's state rebuild) */
    if (*fmt != OMS_WIRE_CONFLUENT && !registry)
        return OMS_EXIT_OK;
    char err[512];
    oms_registry *r = NULL;
    if (oms_registry_from_config(cfg, events, OMS_REGISTRY_CLI_WAIT_MS, &r, err, sizeof err) !=
        OMS_OK) {
        fprintf(stderr, "%s: %s\n", prog, err);
        return OMS_EXIT_USAGE;
    }
    if (*fmt != OMS_WIRE_CONFLUENT)
        return OMS_EXIT_OK;
    if (!r) {
        fprintf(stderr, "%s: --format confluent needs a schema registry: give --registry URL or "
                        "set SCHEMA_REGISTRY_URL\n",
                prog);
        return OMS_EXIT_USAGE;
    }
    if (oms_registry_register_writers(r, events, topics, ids, err, sizeof err) != OMS_OK) {
        fprintf(stderr, "%s: cannot register the schemas: %s\n", prog, err);
        return OMS_EXIT_FAIL;
    }
    return OMS_EXIT_OK;
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
    rc = prod_setup_format("oms-producer", &c->cfg, c->events, o->format, o->registry,
                           c->topics, &c->format, c->schema_ids);
    if (rc) {
        oms_events_free(c->events);
        oms_config_free(&c->cfg);
        return rc;
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
    if (oms_kafka_producer_check(c->kp, 10000, err, sizeof err) != OMS_OK) {
        fprintf(stderr, "oms-producer: cannot reach kafka at '%s': %s (is kafka running? set "
                        "--brokers or KAFKA_BROKERS)\n",
                c->cfg.kafka.brokers, err);
        oms_kafka_producer_free(c->kp, 0);
        if (c->record)
            fclose(c->record);
        oms_events_free(c->events);
        oms_config_free(&c->cfg);
        return OMS_EXIT_FAIL;
    }
    for (int k = 0; k < OMS_TOPIC__COUNT; k++) {
        if (o->topics_needed && !o->topics_needed[k])
            continue;
        if (oms_kafka_producer_prepare(c->kp, c->topics[k], 10000, err, sizeof err) != OMS_OK) {
            fprintf(stderr, "oms-producer: %s\n", err);
            oms_kafka_producer_free(c->kp, 0);
            if (c->record)
                fclose(c->record);
            oms_events_free(c->events);
            oms_config_free(&c->cfg);
            return OMS_EXIT_FAIL;
        }
    }
    c->start_ns = oms_mono_ns();
    return OMS_EXIT_OK;
}

static int flush_stage(prod_ctx *c, int kind, char *errbuf, size_t errlen)
{
    prod_stage *st = c->stage[kind];
    if (!st || st->n == 0)
        return 0;
    int rc = oms_kafka_produce_batch(c->kp, c->topics[kind], st->msgs, st->n, 30000, errbuf,
                                     errlen);
    st->n = 0;
    oms_kafka_producer_poll(c->kp, 0);
    return rc == OMS_OK ? 0 : -2;
}

int prod_flush_staged(prod_ctx *c, char *errbuf, size_t errlen)
{
    for (int k = 0; k < OMS_TOPIC__COUNT; k++)
        if (flush_stage(c, k, errbuf, errlen) != 0)
            return -1;
    return 0;
}

static sent_rec *make_rec(prod_ctx *c, const oms_event *ev, const char *key)
{
    if (!c->record)
        return NULL;
    sent_rec *r = malloc(sizeof *r);
    if (r) {
        memcpy(r->event_id, ev->event_id, sizeof r->event_id);
        r->type = ev->type;
        snprintf(r->key, sizeof r->key, "%s", key);
    }
    return r;
}

int prod_send(prod_ctx *c, const oms_event *ev, char *errbuf, size_t errlen)
{
    int kind = oms_event_topic_kind(ev->type);
    prod_stage *st = c->stage[kind];
    if (!st && !(st = c->stage[kind] = calloc(1, sizeof *st))) {
        oms_errf(errbuf, errlen, "out of memory");
        return -2;
    }
    size_t i = st->n;
    int klen = oms_event_key(ev, st->key[i], sizeof st->key[i]);
    if (klen < 0) {
        oms_errf(errbuf, errlen, "key too long");
        return -1;
    }
    size_t len = 0;
    int rc = oms_event_encode_wire(c->events, c->format, c->schema_ids, ev, st->payload[i],
                                   STAGE_SLOT, &len, errbuf, errlen);
    if (rc == OMS_ERANGE) {
        /* rare: an event with a large data payload goes alone, after what is
         * staged for its topic so that per-key order holds */
        size_t cap = 1u << 20;
        uint8_t *big = malloc(cap);
        rc = big ? oms_event_encode_wire(c->events, c->format, c->schema_ids, ev, big, cap, &len,
                                         errbuf, errlen)
                 : OMS_ENOMEM;
        if (rc == OMS_OK && flush_stage(c, kind, errbuf, errlen) != 0)
            rc = OMS_EKAFKA;
        if (rc == OMS_OK) {
            sent_rec *r = make_rec(c, ev, st->key[i]);
            rc = oms_kafka_produce(c->kp, c->topics[kind], RD_KAFKA_PARTITION_UA, st->key[i],
                                   (size_t)klen, big, len, NULL, 0, r, 30000, errbuf, errlen);
            if (rc != OMS_OK) {
                free(r);
                free(big);
                return -2;
            }
            c->sent_by_type[ev->type]++;
        }
        free(big);
        if (rc != OMS_OK)
            c->encode_failed++;
        return rc == OMS_OK ? 0 : -1;
    }
    if (rc != OMS_OK) {
        c->encode_failed++;
        return -1;
    }
    rd_kafka_message_t *m = &st->msgs[i];
    memset(m, 0, sizeof *m);
    m->payload = st->payload[i];
    m->len = len;
    m->key = st->key[i];
    m->key_len = (size_t)klen;
    m->_private = make_rec(c, ev, st->key[i]);
    st->n++;
    c->sent_by_type[ev->type]++;
    if (st->n == STAGE_N)
        return flush_stage(c, kind, errbuf, errlen);
    return 0;
}

int prod_close(prod_ctx *c, bool json_summary, int64_t seed)
{
    char err[512];
    if (prod_flush_staged(c, err, sizeof err) != 0)
        fprintf(stderr, "oms-producer: %s\n", err);
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
        if (seed >= 0)
            printf("},\"seed\":%" PRId64 "}\n", seed);
        else
            printf("}}\n");
    } else {
        fprintf(stderr, "oms-producer: sent %" PRIu64 ", delivered %" PRIu64 ", failed %" PRIu64
                        ", undelivered %d in %.2f s (%.0f events/s)\n",
                st.produced, st.delivered, st.failed, undelivered, secs, rate);
        for (int t = 0; t < OMS_EV__COUNT; t++)
            if (c->sent_by_type[t])
                fprintf(stderr, "  %-20s %" PRIu64 "\n", oms_event_type_name((oms_event_type)t),
                        c->sent_by_type[t]);
        if (seed >= 0)
            fprintf(stderr, "  seed %" PRId64 " (--seed %" PRId64 " repeats this run)\n", seed,
                    seed);
        if (st.failed && last[0])
            fprintf(stderr, "oms-producer: last delivery error: %s\n", last);
    }
    int left = oms_kafka_producer_free(c->kp, 0);
    if (c->record)
        fclose(c->record);
    for (int k = 0; k < OMS_TOPIC__COUNT; k++)
        free(c->stage[k]);
    oms_events_free(c->events);
    oms_config_free(&c->cfg);
    return (st.failed || left || undelivered) ? OMS_EXIT_FAIL : OMS_EXIT_OK;
}
