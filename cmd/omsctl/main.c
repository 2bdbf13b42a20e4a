/* omsctl — the operator's terminal tool. */
#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

volatile sig_atomic_t ctl_stop;

static void on_signal(int sig)
{
    (void)sig;
    ctl_stop = 1;
}

void ctl_install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGPIPE, &sa, NULL);
}

int ctl_config(oms_config *cfg, const char *config_path, const char *brokers)
{
    int rc = oms_cli_load_config("omsctl", config_path, cfg);
    if (rc)
        return rc;
    if (brokers) {
        free(cfg->kafka.brokers);
        cfg->kafka.brokers = strdup(brokers);
    }
    return OMS_EXIT_OK;
}

static const oms_cli_command commands[] = {
    {"health", cmd_health, "is omsd up, and are Kafka and PostgreSQL reachable"},
    {"stats", cmd_stats, "omsd's live figures (--watch to follow)"},
    {"users", cmd_users, "users online now, or whether one user is"},
    {"broadcast", cmd_broadcast, "send a system notification to every client"},
    {"notify", cmd_notify, "trigger an order-created, order-status or inventory-alert event"},
    {"token", cmd_token, "mint a JWT for tests and scripts"},
    {"tail", cmd_tail, "print events from Kafka topics as they arrive (decoded)"},
    {"replay", cmd_replay, "read a range of a topic back: filter, write out or republish"},
    {"lag", cmd_lag, "a consumer group's lag per partition"},
    {"topics", cmd_topics, "create the topics of configs/topics.yaml, or list topics"},
    {"schemas", cmd_schemas, "list, show, fingerprint and check Avro schemas; the schema registry"},
    {"projections", cmd_projections, "Postgres read models: status, migrate, rebuild"},
    {"order", cmd_order, "one order's story: projection row, status history, its events"},
    {"alerts", cmd_alerts, "Sentry and e-mail notices: status, send a test notice"},
    {"completion", cmd_completion, "print a bash completion script (omsctl completion bash)"},
    {NULL, NULL, NULL},
};

/* The command names, for completion.c. */
const oms_cli_command *ctl_commands(void)
{
    return commands;
}

static void help(FILE *out)
{
    fprintf(out, "usage: omsctl COMMAND [options]\n\n"
                 "Operate the oms pipeline: Kafka topics, schemas, the live event stream.\n\n"
                 "commands:\n");
    oms_cli_print_commands(out, commands);
    fprintf(out, "\nKafka is reached at --brokers, else $KAFKA_BROKERS, else the config file\n"
                 "($OMS_CONFIG or --config), else 127.0.0.1:9092.\n"
                 "Run 'omsctl COMMAND --help' for a command's options.\n"
                 "exit status: 0 ok, 1 the operation or check failed, 2 usage error\n");
}

int main(int argc, char **argv)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    atexit(curl_global_cleanup);
    if (argc < 2) {
        help(stderr);
        return OMS_EXIT_USAGE;
    }
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "help") == 0) {
        help(stdout);
        return OMS_EXIT_OK;
    }
    return oms_cli_dispatch("omsctl", commands, argc - 1, argv + 1);
}
