/* lag.c — `omsctl lag`: a consumer group's committed offsets against the
 * log end, per partition of the event topics. */
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "kafka/kafka.h"

int cmd_lag(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"group", required_argument, NULL, 'g'},   {"topic", required_argument, NULL, 't'},
        {"json", no_argument, NULL, 'J'},          {"brokers", required_argument, NULL, 'b'},
        {"config", required_argument, NULL, 'c'},  {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *pc = "omsctl lag";
    const char *group = NULL, *brokers = NULL, *config = NULL;
    const char *topics_arg[16];
    size_t ntopics = 0;
    bool json = false;
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'g': group = optarg; break;
        case 't':
            if (ntopics == OMS_ARRAY_LEN(topics_arg))
                return oms_cli_usage_error(pc, "too many --topic");
            topics_arg[ntopics++] = optarg;
            break;
        case 'J': json = true; break;
        case 'b': brokers = optarg; break;
        case 'c': config = optarg; break;
        case 'h':
            printf("usage: omsctl lag [--group G] [--topic T...] [--json]\n\n"
                   "Per partition: the group's committed offset, the log end and the lag.\n"
                   "Default group: kafka.projection_group (omsd-projections); default topics:\n"
                   "the three event topics. Reading committed offsets does not join the group.\n\n"
                   "options:\n"
                   "  --group G        consumer group\n"
                   "  --topic T        topic (repeatable)\n"
                   "  --json           machine-readable output\n"
                   "  --brokers LIST   Kafka bootstrap servers (default: $KAFKA_BROKERS, config)\n"
                   "  --config FILE    configuration file (default: $OMS_CONFIG, none)\n"
                   "  -h, --help       this help\n\n"
                   "exit status: 0 ok, 1 kafka failed or unknown topic, 2 usage\n");
            return OMS_EXIT_OK;
        default: return oms_cli_usage_error(pc, "unknown or incomplete option");
        }
    }
    if (optind < argc)
        return oms_cli_usage_error(pc, "unexpected argument '%s'", argv[optind]);
    oms_config cfg;
    int rc = ctl_config(&cfg, config, brokers);
    if (rc)
        return rc;
    if (!group)
        group = cfg.kafka.projection_group;
    const char *topics[16];
    if (ntopics == 0) {
        topics[0] = cfg.kafka.topic_orders;
        topics[1] = cfg.kafka.topic_inventory;
        topics[2] = cfg.kafka.topic_notifications;
        ntopics = 3;
    } else {
        for (size_t i = 0; i < ntopics; i++)
            topics[i] = topics_arg[i];
    }
    char err[512];
    int exit_code = OMS_EXIT_OK;
    oms_kv props[OMS_CONFIG_MAX_PROPS + 1];
    size_t np = 0;
    for (size_t i = 0; i < cfg.kafka.nprops; i++)
        props[np++] = cfg.kafka.props[i];
    props[np++] = (oms_kv){"group.id", (char *)group};
    oms_kafka_reader *r = oms_kafka_reader_new(cfg.kafka.brokers, props, np, err, sizeof err);
    rd_kafka_topic_partition_list_t *l = NULL;
    if (!r) {
        fprintf(stderr, "omsctl: %s\n", err);
        exit_code = OMS_EXIT_FAIL;
        goto out;
    }
    rd_kafka_t *rk = oms_kafka_reader_handle(r);
    /* assign only to learn (and validate) the partitions; nothing is read */
    if (oms_kafka_reader_assign(r, topics, ntopics, -1, OMS_KAFKA_FROM_END, false, 10000, err,
                                sizeof err) < 0) {
        fprintf(stderr, "omsctl: %s (kafka at '%s')\n", err, cfg.kafka.brokers);
        exit_code = OMS_EXIT_FAIL;
        goto out;
    }
    rd_kafka_assignment(rk, &l);
    rd_kafka_assign(rk, NULL);
    rd_kafka_resp_err_t e = rd_kafka_committed(rk, l, 10000);
    if (e) {
        fprintf(stderr, "omsctl: cannot read the committed offsets of group '%s': %s\n", group,
                rd_kafka_err2str(e));
        exit_code = OMS_EXIT_FAIL;
        goto out;
    }
    int64_t total = 0;
    if (json)
        printf("{\"group\":\"%s\",\"partitions\":[", group);
    else
        printf("%-32s %9s %10s %10s %8s\n", "TOPIC", "PARTITION", "COMMITTED", "END", "LAG");
    for (int i = 0; i < l->cnt; i++) {
        rd_kafka_topic_partition_t *tp = &l->elems[i];
        int64_t lo = 0, hi = 0;
        if (rd_kafka_query_watermark_offsets(rk, tp->topic, tp->partition, &lo, &hi, 10000)) {
            hi = -1;
            exit_code = OMS_EXIT_FAIL;
        }
        int64_t committed = tp->offset; /* -1001 (invalid) when nothing committed */
        int64_t lag = hi < 0 ? -1 : committed >= 0 ? hi - committed : hi - lo;
        if (lag > 0)
            total += lag;
        if (json) {
            printf("%s{\"topic\":\"%s\",\"partition\":%d,\"committed\":%" PRId64 ",\"end\":%" PRId64
                   ",\"lag\":%" PRId64 "}",
                   i ? "," : "", tp->topic, tp->partition, committed >= 0 ? committed : -1, hi, lag);
        } else {
            char cbuf[24];
            if (committed >= 0)
                snprintf(cbuf, sizeof cbuf, "%" PRId64, committed);
            else
                snprintf(cbuf, sizeof cbuf, "-");
            printf("%-32s %9d %10s %10" PRId64 " %8" PRId64 "\n", tp->topic, tp->partition, cbuf,
                   hi, lag);
        }
    }
    if (json)
        printf("],\"totalLag\":%" PRId64 "}\n", total);
    else
        printf("group %s: total lag %" PRId64 "\n", group, total);
out:
    if (l)
        rd_kafka_topic_partition_list_destroy(l);
    oms_kafka_reader_free(r);
    oms_config_free(&cfg);
    return exit_code;
}
