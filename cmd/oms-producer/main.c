/* oms-producer — the domain services' side of the pipeline: emits Avro
 * events to Kafka, one at a time, from a file, as a live simulation, or as
 * the order and inventory services' HTTP API. */
#include <string.h>

#include "producer.h"

static const oms_cli_command commands[] = {
    {"emit", cmd_emit, "encode events given as JSON and produce them to Kafka"},
    {"simulate", cmd_simulate, "simulate orders, stock and notifications at a given rate"},
    {"serve", cmd_serve, "run the order and inventory services as an HTTP JSON API"},
    {NULL, NULL, NULL},
};

static void help(FILE *out)
{
    fprintf(out, "usage: oms-producer COMMAND [options]\n\n"
                 "Emit order-management events (Avro single-object encoding, or the Confluent\n"
                 "framing or JSON with --format) to Kafka, or\n"
                 "serve the order and inventory services that emit them.\n\n"
                 "commands:\n");
    oms_cli_print_commands(out, commands);
    fprintf(out, "\nKafka is reached at --brokers, else $KAFKA_BROKERS, else the config file\n"
                 "($OMS_CONFIG or --config), else 127.0.0.1:9092.\n"
                 "Run 'oms-producer COMMAND --help' for a command's options.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        help(stderr);
        return OMS_EXIT_USAGE;
    }
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "help") == 0) {
        help(stdout);
        return OMS_EXIT_OK;
    }
    return oms_cli_dispatch("oms-producer", commands, argc - 1, argv + 1);
}
