/* producer.h — what emit and simulate share (serve has serve.h): configuration, the codec, the
 * Kafka producer, the optional record of delivered events, and counters. */
#ifndef OMS_PRODUCER_H
#define OMS_PRODUCER_H

#include <signal.h>
#include <stdio.h>

#include "cli/cli.h"
#include "events/events.h"
#include "kafka/kafka.h"

extern volatile sig_atomic_t producer_stop;

/* Events wait here, encoded, and go to librdkafka STAGE_N at a time. */
#define STAGE_N 256
#define STAGE_SLOT 2048
typedef struct prod_stage {
    rd_kafka_message_t msgs[STAGE_N];
    size_t n;
    uint8_t payload[STAGE_N][STAGE_SLOT];
    char key[STAGE_N][64];
} prod_stage;

typedef struct prod_ctx {
    oms_config cfg;
    oms_events *events;
    oms_kafka_producer *kp;
    FILE *record; /* --record FILE: one JSON line per delivered event */
    const char *topics[OMS_TOPIC__COUNT];
    uint64_t sent_by_type[OMS_EV__COUNT];
    uint64_t encode_failed;
    uint64_t start_ns;
    prod_stage *stage[OMS_TOPIC__COUNT];
    oms_wire_format format;        /* --format */
    uint32_t schema_ids[OMS_EV__COUNT]; /* confluent: registered ids by type */
} prod_ctx;

/* Common options of emit and simulate. */
typedef struct prod_opts {
    const char *config;
    const char *brokers;
    const char *record;
    const char *schemas;
    const char *format;   /* soe (default), confluent, json */
    const char *registry; /* schema registry URL over the config's */
    const bool *topics_needed; /* by oms_topic_kind; NULL: all three */
} prod_opts;

/* The help lines of --format and --registry (emit, simulate, serve). */
#define PROD_FORMAT_HELP                                                                       \
    "  --format F         wire format: soe (Avro single-object, default), confluent\n"        \
    "                     (Avro in the Confluent framing: the schemas are registered\n"       \
    "                     under <topic>-value first) or json (plain JSON objects)\n"          \
    "  --registry URL     schema registry for --format confluent (else\n"                    \
    "                     schema_registry.url, SCHEMA_REGISTRY_URL)\n"

/* Parse --format and set up what it needs (the registry client attached to
 * events, the schema ids): 0, or prints why and returns an exit code. */
int prod_setup_format(const char *prog, oms_config *cfg, oms_events *events, const char *format,
                      const char *registry, const char *const topics[OMS_TOPIC__COUNT],
                      oms_wire_format *fmt, uint32_t ids[OMS_EV__COUNT]);

/* Set up from options; prints its own error and returns an exit code != 0. */
int prod_open(prod_ctx *c, const prod_opts *o);

/* Encode and queue one event. Returns 0, or prints why and returns -1
 * (invalid event: the caller decides; queue errors are fatal). */
int prod_send(prod_ctx *c, const oms_event *ev, char *errbuf, size_t errlen);

/* Hand what is staged to librdkafka (call before sleeping). 0 or -1 with
 * errbuf. */
int prod_flush_staged(prod_ctx *c, char *errbuf, size_t errlen);

/* Flush (bounded), print the summary (to stderr, or JSON to stdout; with
 * the seed when seed >= 0), free. Returns the exit code: 0 when every event
 * was delivered, else 1. */
int prod_close(prod_ctx *c, bool json_summary, int64_t seed);

void prod_install_signals(void);

int cmd_emit(int argc, char **argv);
int cmd_simulate(int argc, char **argv);
int cmd_serve(int argc, char **argv);

#endif
