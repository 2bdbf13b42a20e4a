/* topics.c — `omsctl topics create|list`. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"
#include "kafka/kafka.h"

static void topics_help(FILE *out)
{
    fprintf(out,
            "usage: omsctl topics create [--file FILE] [--partitions N] [--replication-factor N]\n"
            "       omsctl topics list [--json]\n"
            "\n"
            "create: create the topics listed in FILE (default configs/topics.yaml when it\n"
            "        exists, else the four configured topics with 6 partitions). Topics that\n"
            "        exist already are left as they are. --partitions and\n"
            "        --replication-factor override the file for every topic.\n"
            "list:   the topics of the cluster with partitions, replication factor and the\n"
            "        number of retained records.\n"
            "\n"
            "options:\n"
            "  --file FILE              topics file (YAML)\n"
            "  --partitions N           partitions for every topic\n"
            "  --replication-factor N   replication factor for every topic\n"
            "  --json                   machine-readable output\n"
            "  --brokers LIST           Kafka bootstrap servers (default: $KAFKA_BROKERS, config)\n"
            "  --config FILE            configuration file (default: $OMS_CONFIG, none)\n"
            "  -h, --help               this help\n"
            "\n"
            "exit status: 0 ok, 1 kafka failed or a topic could not be created, 2 usage\n");
}

static int topics_create(oms_config *cfg, const char *file, long partitions, long rf, bool json)
{
    char err[512];
    oms_topic_list tl = {0};
    oms_topic_spec builtin[4];
    const oms_topic_spec *specs;
    size_t n;
    if (!file && access("configs/topics.yaml", R_OK) == 0)
        file = "configs/topics.yaml";
    if (file) {
        if (oms_topics_load_file(&tl, file, err, sizeof err) != OMS_OK) {
            fprintf(stderr, "omsctl: %s\n", err);
            return OMS_EXIT_USAGE;
        }
        specs = tl.topics;
        n = tl.count;
    } else {
        const char *names[4] = {cfg->kafka.topic_orders, cfg->kafka.topic_inventory,
                                cfg->kafka.topic_notifications, cfg->kafka.topic_dlq};
        memset(builtin, 0, sizeof builtin);
        for (int i = 0; i < 4; i++) {
            builtin[i].name = (char *)names[i];
            builtin[i].partitions = 6;
            builtin[i].replication_factor = 1;
        }
        specs = builtin;
        n = 4;
    }
    /* overrides apply to a private copy of the counts */
    oms_topic_spec *work = calloc(n ? n : 1, sizeof *work);
    int *results = calloc(n ? n : 1, sizeof *results);
    char(*errs)[256] = calloc(n ? n : 1, sizeof *errs);
    int exit_code = OMS_EXIT_OK;
    if (!work || !results || !errs) {
        fprintf(stderr, "omsctl: out of memory\n");
        exit_code = OMS_EXIT_FAIL;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        work[i] = specs[i];
        if (partitions > 0)
            work[i].partitions = (int)partitions;
        if (rf > 0)
            work[i].replication_factor = (int)rf;
    }
    int rc = oms_kafka_topics_create(cfg->kafka.brokers, cfg->kafka.props, cfg->kafka.nprops, work,
                                     n, 15000, results, errs, err, sizeof err);
    if (rc == OMS_ETIMEDOUT || (rc != OMS_OK && rc != OMS_EKAFKA)) {
        fprintf(stderr, "omsctl: cannot create topics at '%s': %s\n", cfg->kafka.brokers, err);
        exit_code = OMS_EXIT_FAIL;
        goto out;
    }
    if (json)
        printf("[");
    for (size_t i = 0; i < n; i++) {
        const char *what = results[i] == 0 ? "created" : results[i] == 1 ? "exists" : "failed";
        if (json)
            printf("%s{\"topic\":\"%s\",\"partitions\":%d,\"replicationFactor\":%d,"
                   "\"result\":\"%s\"}",
                   i ? "," : "", work[i].name, work[i].partitions, work[i].replication_factor,
                   what);
        else
            printf("%-24s %-8s partitions=%d replication=%d%s%s\n", work[i].name, what,
                   work[i].partitions, work[i].replication_factor, results[i] < 0 ? "  " : "",
                   results[i] < 0 ? errs[i] : "");
        if (results[i] < 0)
            exit_code = OMS_EXIT_FAIL;
    }
    if (json)
        printf("]\n");
    if (rc != OMS_OK && exit_code == OMS_EXIT_OK) {
        fprintf(stderr, "omsctl: %s\n", err);
        exit_code = OMS_EXIT_FAIL;
    }
out:
    free(work);
    free(results);
    free(errs);
    oms_topics_free(&tl);
    return exit_code;
}

static int topics_list(oms_config *cfg, bool json)
{
    char err[512];
    oms_kafka_topic_info *info = NULL;
    int n = oms_kafka_topics_list(cfg->kafka.brokers, cfg->kafka.props, cfg->kafka.nprops, true,
                                  10000, &info, err, sizeof err);
    if (n < 0) {
        fprintf(stderr, "omsctl: %s (is kafka running? set --brokers or KAFKA_BROKERS)\n", err);
        return OMS_EXIT_FAIL;
    }
    if (json) {
        printf("[");
        for (int i = 0; i < n; i++)
            printf("%s{\"topic\":\"%s\",\"partitions\":%d,\"replicationFactor\":%d,"
                   "\"records\":%" PRId64 "}",
                   i ? "," : "", info[i].name, info[i].partitions, info[i].replication_factor,
                   info[i].messages);
        printf("]\n");
    } else {
        int w = 5;
        for (int i = 0; i < n; i++)
            if ((int)strlen(info[i].name) > w)
                w = (int)strlen(info[i].name);
        printf("%-*s %10s %11s %12s\n", w, "TOPIC", "PARTITIONS", "REPLICATION", "RECORDS");
        for (int i = 0; i < n; i++) {
            if (info[i].messages < 0)
                printf("%-*s %10d %11d %12s\n", w, info[i].name, info[i].partitions,
                       info[i].replication_factor, "?");
            else
                printf("%-*s %10d %11d %12" PRId64 "\n", w, info[i].name, info[i].partitions,
                       info[i].replication_factor, info[i].messages);
        }
    }
    free(info);
    return OMS_EXIT_OK;
}

int cmd_topics(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"file", required_argument, NULL, 'f'},
        {"partitions", required_argument, NULL, 'p'},
        {"replication-factor", required_argument, NULL, 'r'},
        {"json", no_argument, NULL, 'J'},
        {"brokers", required_argument, NULL, 'b'},
        {"config", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *pc = "omsctl topics";
    const char *file = NULL, *brokers = NULL, *config = NULL;
    long partitions = 0, rf = 0;
    bool json = false;
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'f': file = optarg; break;
        case 'p':
            if (oms_cli_parse_long(pc, "--partitions", optarg, 1, 10000, &partitions))
                return OMS_EXIT_USAGE;
            break;
        case 'r':
            if (oms_cli_parse_long(pc, "--replication-factor", optarg, 1, 100, &rf))
                return OMS_EXIT_USAGE;
            break;
        case 'J': json = true; break;
        case 'b': brokers = optarg; break;
        case 'c': config = optarg; break;
        case 'h': topics_help(stdout); return OMS_EXIT_OK;
        default: return oms_cli_usage_error(pc, "unknown or incomplete option");
        }
    }
    if (optind >= argc)
        return oms_cli_usage_error(pc, "name an action: create or list");
    const char *action = argv[optind++];
    if (optind < argc)
        return oms_cli_usage_error(pc, "unexpected argument '%s'", argv[optind]);
    bool create = strcmp(action, "create") == 0;
    if (!create && strcmp(action, "list") != 0)
        return oms_cli_usage_error(pc, "unknown action '%s' (create or list)", action);
    oms_config cfg;
    int rc = ctl_config(&cfg, config, brokers);
    if (rc)
        return rc;
    rc = create ? topics_create(&cfg, file, partitions, rf, json) : topics_list(&cfg, json);
    oms_config_free(&cfg);
    return rc;
}
