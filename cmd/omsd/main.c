/* omsd — the oms daemon. This file: options, configuration, logging, and the
 * config check (-t). */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "log/log.h"

static void help(FILE *out)
{
    fprintf(out,
            "usage: omsd [--config FILE] [-t] [--dev]\n"
            "\n"
            "The oms daemon: consumes the event topics from Kafka, pushes events to\n"
            "WebSocket clients, writes the Postgres projections and serves the REST API.\n"
            "\n"
            "options:\n"
            "  -c, --config FILE  configuration file (default: $OMS_CONFIG, else built-in\n"
            "                     defaults); environment variables override it:\n"
            "                     JWT_SECRET, CORS_ORIGIN, DATABASE_HOST, DATABASE_PORT,\n"
            "                     DATABASE_USER, DATABASE_PASSWORD, DATABASE_NAME,\n"
            "                     KAFKA_BROKERS, PORT, LOG_LEVEL\n"
            "  -t, --test-config  check the configuration and exit (0 ok, 2 invalid)\n"
            "      --dev          development mode: generate a JWT secret if none is set\n"
            "  -h, --help         this help\n");
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"test-config", no_argument, NULL, 't'},
        {"dev", no_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *config = NULL;
    bool test_only = false, dev = false;
    int opt;
    while ((opt = getopt_long(argc, argv, "c:th", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c': config = optarg; break;
        case 't': test_only = true; break;
        case 'd': dev = true; break;
        case 'h': help(stdout); return OMS_EXIT_OK;
        default: return oms_cli_usage_error("omsd", "unknown or incomplete option");
        }
    }
    if (optind < argc)
        return oms_cli_usage_error("omsd", "unexpected argument '%s'", argv[optind]);
    oms_config cfg;
    int rc = oms_cli_load_config("omsd", config, &cfg);
    if (rc)
        return rc;
    char err[512];
    if (oms_config_validate(&cfg, err, sizeof err) != OMS_OK) {
        fprintf(stderr, "omsd: %s\n", err);
        oms_config_free(&cfg);
        return OMS_EXIT_USAGE;
    }
    if (test_only) {
        fprintf(stderr, "omsd: configuration %s is valid\n", config ? config : "(defaults)");
        oms_config_free(&cfg);
        return OMS_EXIT_OK;
    }
    oms_log_level level = OMS_LOG_INFO;
    oms_log_format format = OMS_LOG_FORMAT_AUTO;
    oms_log_level_parse(cfg.log.level, &level);
    oms_log_format_parse(cfg.log.format, &format);
    oms_logger *lg = oms_logger_new(2, level, format);
    (void)dev;
    oms_log(lg, OMS_LOG_ERROR, "the gateway is not built yet: only -t works in this version");
    oms_logger_free(lg);
    oms_config_free(&cfg);
    return OMS_EXIT_FAIL;
}
