/* tail.c — `omsctl tail`: decode and print events from topics. */
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "events/events.h"
#include "kafka/kafka.h"
#include "registry/registry.h"

static void tail_help(FILE *out)
{
    fprintf(out,
            "usage: omsctl tail TOPIC... [--from-beginning] [--exit-at-end] [--partition N]\n"
            "                   [--format json|pretty] [--count N]\n"
            "\n"
            "Read events from Kafka, decode the records (single-object Avro, Confluent\n"
            "framing with the schema registry of SCHEMA_REGISTRY_URL, or JSON, mixed)\n"
            "and print them: as the\n"
            "WebSocket frames a client would receive ({\"event\":..., \"data\": RealTimeEvent},\n"
            "one per line, `id` being the position TOPIC:PARTITION:OFFSET) or as readable\n"
            "lines. Follows new events until Ctrl-C unless --exit-at-end.\n"
            "TOPIC is a topic name, or orders, inventory, notifications for the\n"
            "configured event topics, or all for the three of them.\n"
            "Records that cannot be decoded are reported on stderr with their position.\n"
            "\n"
            "options:\n"
            "  --from-beginning   start at the oldest retained record (default: the end)\n"
            "  --exit-at-end      stop once every partition has been read to its end\n"
            "  --partition N      only partition N\n"
            "  --format FMT       json (default when stdout is not a terminal) or pretty\n"
            "  --count N          stop after N events\n"
            "  --brokers LIST     Kafka bootstrap servers (default: $KAFKA_BROKERS, config)\n"
            "  --config FILE      configuration file (default: $OMS_CONFIG, none)\n"
            "  --schemas DIR      extra .avsc files to load (newer writers' schemas)\n"
            "  -h, --help         this help\n"
            "\n"
            "exit status: 0 ok, 1 some records could not be decoded or kafka failed, 2 usage\n");
}

typedef struct tail_part {
    char topic[256];
    int32_t partition;
    bool eof;
} tail_part;

static void print_pretty(const oms_event *ev, const char *pos)
{
    char ts[32];
    oms_iso8601_ms(ev->occurred_at, ts, sizeof ts);
    printf("%s  %-24s %-19s", ts + 11, pos, oms_event_type_name(ev->type));
    switch (ev->type) {
    case OMS_EV_ORDER_CREATED:
        printf(" %s %s user=%" PRId64 " status=%s total=%.2f items=%zu\n", ev->order_id,
               ev->alias_id, ev->user_id, ev->status, ev->total_amount, ev->nitems);
        break;
    case OMS_EV_ORDER_STATUS_CHANGED:
        printf(" %s %s user=%" PRId64 " %s -> %s\n", ev->order_id, ev->alias_id, ev->user_id,
               ev->previous_status ? ev->previous_status : "?", ev->status);
        break;
    case OMS_EV_INVENTORY_CHANGED:
        printf(" product=%" PRId64 " \"%s\" qty=%d (%+d) threshold=%d %s\n", ev->product_id,
               ev->product_name, ev->quantity, ev->delta, ev->threshold, ev->status);
        break;
    case OMS_EV_USER_NOTIFICATION:
        printf(" user=%" PRId64 " \"%s\": %s\n", ev->user_id, ev->title, ev->message);
        break;
    default:
        printf(" [%s] \"%s\": %s\n", ev->severity, ev->title, ev->message);
        break;
    }
}

int cmd_tail(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"from-beginning", no_argument, NULL, 'B'}, {"exit-at-end", no_argument, NULL, 'E'},
        {"partition", required_argument, NULL, 'p'}, {"format", required_argument, NULL, 'f'},
        {"count", required_argument, NULL, 'n'},    {"brokers", required_argument, NULL, 'b'},
        {"config", required_argument, NULL, 'c'},   {"schemas", required_argument, NULL, 'S'},
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0},
    };
    const char *pc = "omsctl tail";
    bool from_beginning = false, exit_at_end = false;
    long partition = -1, count = -1;
    int pretty = oms_cli_isatty(stdout);
    const char *brokers = NULL, *config = NULL, *schemas = NULL;
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'B': from_beginning = true; break;
        case 'E': exit_at_end = true; break;
        case 'p':
            if (oms_cli_parse_long(pc, "--partition", optarg, 0, 100000, &partition))
                return OMS_EXIT_USAGE;
            break;
        case 'n':
            if (oms_cli_parse_long(pc, "--count", optarg, 0, 1000000000000L, &count))
                return OMS_EXIT_USAGE;
            break;
        case 'f':
            if (strcmp(optarg, "json") == 0)
                pretty = 0;
            else if (strcmp(optarg, "pretty") == 0)
                pretty = 1;
            else
                return oms_cli_usage_error(pc, "--format: expected json or pretty, got '%s'",
                                           optarg);
            break;
        case 'b': brokers = optarg; break;
        case 'c': config = optarg; break;
        case 'S': schemas = optarg; break;
        case 'h': tail_help(stdout); return OMS_EXIT_OK;
        default: return oms_cli_usage_error(pc, "unknown or incomplete option");
        }
    }
    if (optind >= argc)
        return oms_cli_usage_error(pc, "name at least one TOPIC");

    oms_config cfg;
    int rc = ctl_config(&cfg, config, brokers);
    if (rc)
        return rc;
    const char *topics[64];
    size_t ntopics = 0;
    for (int i = optind; i < argc; i++) {
        const char *t = argv[i];
        const char *expand[3] = {t, NULL, NULL};
        if (strcmp(t, "orders") == 0)
            expand[0] = cfg.kafka.topic_orders;
        else if (strcmp(t, "inventory") == 0)
            expand[0] = cfg.kafka.topic_inventory;
        else if (strcmp(t, "notifications") == 0)
            expand[0] = cfg.kafka.topic_notifications;
        else if (strcmp(t, "all") == 0) {
            expand[0] = cfg.kafka.topic_orders;
            expand[1] = cfg.kafka.topic_inventory;
            expand[2] = cfg.kafka.topic_notifications;
        }
        for (int k = 0; k < 3 && expand[k]; k++) {
            if (ntopics == OMS_ARRAY_LEN(topics)) {
                oms_config_free(&cfg);
                return oms_cli_usage_error(pc, "too many topics");
            }
            topics[ntopics++] = expand[k];
        }
    }

    char err[512];
    int exit_code = OMS_EXIT_OK;
    oms_events *events =
        oms_registry_events_new(&cfg, schemas ? schemas : cfg.schemas.dir, err, sizeof err);
    oms_kafka_reader *r = NULL;
    tail_part *parts = NULL;
    if (!events) {
        fprintf(stderr, "omsctl: cannot load schemas: %s\n", err);
        exit_code = OMS_EXIT_USAGE;
        goto out;
    }
    r = oms_kafka_reader_new(cfg.kafka.brokers, cfg.kafka.props, cfg.kafka.nprops, err,
                             sizeof err);
    if (!r) {
        fprintf(stderr, "omsctl: %s\n", err);
        exit_code = OMS_EXIT_FAIL;
        goto out;
    }
    int n = oms_kafka_reader_assign(r, topics, ntopics, (int32_t)partition,
                                    from_beginning ? OMS_KAFKA_FROM_BEGINNING : OMS_KAFKA_FROM_END,
                                    false, 10000, err, sizeof err);
    if (n < 0) {
        fprintf(stderr, "omsctl: %s (kafka at '%s')\n", err, cfg.kafka.brokers);
        exit_code = OMS_EXIT_FAIL;
        goto out;
    }
    parts = calloc((size_t)n, sizeof *parts);
    size_t nparts = 0, at_end = 0;
    ctl_install_signals();
    uint64_t printed = 0, undecodable = 0;
    while (!ctl_stop && (count < 0 || printed < (uint64_t)count)) {
        rd_kafka_message_t *m = oms_kafka_reader_poll(r, 200);
        if (!m) {
            fflush(stdout); /* idle: let a pipe reader see what we have */
            continue;
        }
        const char *tname = m->rkt ? rd_kafka_topic_name(m->rkt) : "";
        tail_part *tp = NULL;
        for (size_t i = 0; i < nparts; i++)
            if (parts[i].partition == m->partition && strcmp(parts[i].topic, tname) == 0)
                tp = &parts[i];
        if (!tp && m->rkt && nparts < (size_t)n) {
            tp = &parts[nparts++];
            snprintf(tp->topic, sizeof tp->topic, "%s", tname);
            tp->partition = m->partition;
        }
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            if (tp && !tp->eof) {
                tp->eof = true;
                at_end++;
            }
            rd_kafka_message_destroy(m);
            if (exit_at_end && at_end >= (size_t)n)
                break;
            continue;
        }
        if (m->err) {
            fprintf(stderr, "omsctl: kafka: %s\n", rd_kafka_message_errstr(m));
            bool fatal = m->err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC ||
                         m->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART;
            rd_kafka_message_destroy(m);
            if (fatal) {
                exit_code = OMS_EXIT_FAIL;
                break;
            }
            continue;
        }
        if (tp && tp->eof) {
            tp->eof = false;
            at_end--;
        }
        char pos[300];
        snprintf(pos, sizeof pos, "%s:%d:%" PRId64, tname, (int)m->partition, m->offset);
        oms_event ev;
        rc = oms_event_decode(events, m->payload, m->len, &ev, err, sizeof err);
        if (rc != OMS_OK) {
            undecodable++;
            fprintf(stderr, "omsctl: %s: cannot decode record: %s\n", pos, err);
        } else {
            if (pretty) {
                print_pretty(&ev, pos);
            } else {
                size_t len;
                char *s = oms_event_frame_json(&ev, pos, &len);
                if (s) {
                    s[len] = '\n';
                    fwrite(s, 1, len + 1, stdout);
                    free(s);
                }
            }
            if (pretty)
                fflush(stdout);
            oms_event_clear(&ev);
            printed++;
        }
        rd_kafka_message_destroy(m);
    }
    fflush(stdout);
    if (undecodable) {
        fprintf(stderr, "omsctl: %" PRIu64 " record%s could not be decoded\n", undecodable,
                undecodable == 1 ? "" : "s");
        exit_code = OMS_EXIT_FAIL;
    }
out:
    free(parts);
    oms_kafka_reader_free(r);
    oms_events_free(events);
    oms_config_free(&cfg);
    return exit_code;
}
