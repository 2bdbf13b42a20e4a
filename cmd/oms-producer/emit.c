/* emit.c — `oms-producer emit`: one event from --json, or a file of JSON
 * lines. A file is checked whole before anything is sent, so a bad line
 * never leaves half a file on the topic (unless --skip-bad). */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "producer.h"

static void emit_help(FILE *out)
{
    fprintf(out,
            "usage: oms-producer emit TYPE --json '{...}' [options]\n"
            "       oms-producer emit [TYPE] --file FILE|- [options]\n"
            "\n"
            "Encode events (Avro single-object encoding, or see --format) and produce\n"
            "them to Kafka,\n"
            "keyed as the design says (orderId, productId, userId or '*').\n"
            "TYPE: OrderCreated, OrderStatusChanged, InventoryChanged, UserNotification,\n"
            "      SystemNotification (also order-created, order_created, ...).\n"
            "In a file each line is one JSON object; a line without TYPE on the command\n"
            "line needs a \"type\" member. eventId, occurredAt and source are filled in\n"
            "when absent. Blank lines and lines starting with '#' are skipped.\n"
            "\n"
            "options:\n"
            "  --json JSON        the event's fields, as in schemas/\n"
            "  --file FILE        JSON lines to send ('-' reads stdin)\n"
            "  --skip-bad         send the good lines of a file even if some are bad\n"
            "                     (the exit status is still 1)\n"
            "  --brokers LIST     Kafka bootstrap servers (default: $KAFKA_BROKERS, config)\n"
            "  --config FILE      configuration file (default: $OMS_CONFIG, none)\n"
            "  --schemas DIR      extra .avsc files to load\n"
            "  --record FILE      write one JSON line per delivered event\n"
            PROD_FORMAT_HELP
            "  --json-summary     print the summary as JSON on stdout\n"
            "  -h, --help         this help\n"
            "\n"
            "exit status: 0 all delivered, 1 a bad event or a failed delivery, 2 usage\n");
}

int cmd_emit(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"json", required_argument, NULL, 'j'},     {"file", required_argument, NULL, 'f'},
        {"skip-bad", no_argument, NULL, 's'},       {"brokers", required_argument, NULL, 'b'},
        {"config", required_argument, NULL, 'c'},   {"schemas", required_argument, NULL, 'S'},
        {"record", required_argument, NULL, 'r'},   {"json-summary", no_argument, NULL, 'J'},
        {"format", required_argument, NULL, 'F'},  {"registry", required_argument, NULL, 'G'},
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0},
    };
    prod_opts po = {0};
    const char *json = NULL, *file = NULL;
    bool skip_bad = false, json_summary = false;
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'j': json = optarg; break;
        case 'f': file = optarg; break;
        case 's': skip_bad = true; break;
        case 'b': po.brokers = optarg; break;
        case 'c': po.config = optarg; break;
        case 'S': po.schemas = optarg; break;
        case 'F': po.format = optarg; break;
        case 'G': po.registry = optarg; break;
        case 'r': po.record = optarg; break;
        case 'J': json_summary = true; break;
        case 'h': emit_help(stdout); return OMS_EXIT_OK;
        default: return oms_cli_usage_error("oms-producer emit", "unknown or incomplete option");
        }
    }
    const char *type_arg = optind < argc ? argv[optind++] : NULL;
    if (optind < argc)
        return oms_cli_usage_error("oms-producer emit", "unexpected argument '%s'", argv[optind]);
    if (!!json == !!file)
        return oms_cli_usage_error("oms-producer emit", "give exactly one of --json or --file");
    oms_event_type type = OMS_EV__COUNT;
    if (type_arg && oms_event_type_parse(type_arg, &type) != OMS_OK)
        return oms_cli_usage_error("oms-producer emit", "unknown event type '%s'", type_arg);
    if (json && !type_arg)
        return oms_cli_usage_error("oms-producer emit", "--json needs the event TYPE");

    /* parse and validate everything before connecting */
    size_t len = 0;
    char *text = NULL;
    if (json) {
        text = strdup(json);
        len = strlen(json);
    } else {
        text = oms_cli_read_file(file, &len);
        if (!text) {
            fprintf(stderr, "oms-producer: cannot read '%s': %s\n", file, strerror(errno));
            return OMS_EXIT_USAGE;
        }
    }
    const char *name = json ? "--json" : (strcmp(file, "-") == 0 ? "<stdin>" : file);
    size_t cap = 64, n = 0, bad = 0, lineno = 0;
    oms_event *evs = malloc(cap * sizeof *evs);
    char *next = text;
    while (next && evs) {
        char *line = next;
        char *nl = json ? NULL : strchr(line, '\n');
        if (nl)
            *nl = '\0';
        next = nl ? nl + 1 : NULL;
        lineno++;
        char *p = line;
        while (*p == ' ' || *p == '\t' || *p == '\r')
            p++;
        if (*p == '\0' || *p == '#')
            continue;
        json_error_t jerr;
        json_t *obj = json_loads(p, 0, &jerr);
        char err[512] = "";
        oms_event_type t = type;
        int rc = OMS_EINVAL;
        if (!obj) {
            snprintf(err, sizeof err, "invalid JSON: %s (column %d)", jerr.text, jerr.column);
        } else if (t == OMS_EV__COUNT &&
                   (!json_is_string(json_object_get(obj, "type")) ||
                    oms_event_type_parse(json_string_value(json_object_get(obj, "type")), &t) !=
                        OMS_OK)) {
            snprintf(err, sizeof err, "type: missing or unknown event type");
        } else {
            if (n == cap) {
                oms_event *ne = realloc(evs, cap * 2 * sizeof *evs);
                if (!ne) {
                    json_decref(obj);
                    break;
                }
                evs = ne;
                cap *= 2;
            }
            rc = oms_event_from_json(obj, t, &evs[n], err, sizeof err);
            if (rc == OMS_OK && (rc = oms_event_fill_envelope(&evs[n], "oms-producer")) == OMS_OK &&
                (rc = oms_event_validate(&evs[n], err, sizeof err)) != OMS_OK)
                oms_event_clear(&evs[n]);
            if (rc == OMS_OK)
                n++;
        }
        json_decref(obj);
        if (rc != OMS_OK) {
            bad++;
            if (bad <= 20)
                fprintf(stderr, "oms-producer: %s:%zu: %s\n", name, lineno, err);
        }
    }
    free(text);
    int exit_code = OMS_EXIT_OK;
    if (bad > 20)
        fprintf(stderr, "oms-producer: ... %zu bad lines in all\n", bad);
    if (bad && !skip_bad) {
        fprintf(stderr, "oms-producer: nothing sent: %zu bad line%s (fix them, or use --skip-bad)\n",
                bad, bad == 1 ? "" : "s");
        exit_code = OMS_EXIT_FAIL;
        goto out;
    }
    /* only the topics this input writes to must exist */
    bool needed[OMS_TOPIC__COUNT] = {false};
    for (size_t i = 0; i < n; i++)
        needed[oms_event_topic_kind(evs[i].type)] = true;
    po.topics_needed = needed;
    prod_ctx c;
    int rc = prod_open(&c, &po);
    if (rc) {
        exit_code = rc;
        goto out;
    }
    for (size_t i = 0; i < n && !producer_stop; i++) {
        char err[512];
        if (prod_send(&c, &evs[i], err, sizeof err) != 0) {
            fprintf(stderr, "oms-producer: event %zu: %s\n", i + 1, err);
            exit_code = OMS_EXIT_FAIL;
            break;
        }
    }
    rc = prod_close(&c, json_summary, -1);
    if (rc)
        exit_code = rc;
    if (bad)
        exit_code = OMS_EXIT_FAIL;
out:
    for (size_t i = 0; i < n; i++)
        oms_event_clear(&evs[i]);
    free(evs);
    return exit_code;
}
