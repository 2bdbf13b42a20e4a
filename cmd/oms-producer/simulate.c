/* simulate.c — `oms-producer simulate`: the domain services at a steady rate. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "producer.h"
#include "json/json.h"
#include "sim/sim.h"

static void simulate_help(FILE *out)
{
    fprintf(out,
            "usage: oms-producer simulate [--rate N|max] [--duration SECONDS] [--count N]\n"
            "                             [--users U] [--products P] [--seed S] [options]\n"
            "\n"
            "Simulate the order, inventory and notification services: order lifecycles\n"
            "(created, confirmed, shipped, delivered, some cancelled) that draw stock down,\n"
            "low/out-of-stock and restock events, user and system notifications.\n"
            "The same seed gives the same events (ids and timestamps aside).\n"
            "Stops after --duration or --count, whichever comes first, or on Ctrl-C;\n"
            "then waits for every delivery report and prints a summary.\n"
            "\n"
            "options:\n"
            "  --rate N|max       events per second (default 100); max: as fast as the\n"
            "                     broker takes them\n"
            "  --duration SECONDS how long to run (default 10; 0 = until --count or Ctrl-C)\n"
            "  --count N          stop after N events (default: no limit)\n"
            "  --users U          user ids 1..U (default 50)\n"
            "  --products P       product ids 1..P (default 20)\n"
            "  --seed S           random seed (default: from the clock, printed)\n"
            "  --brokers LIST     Kafka bootstrap servers (default: $KAFKA_BROKERS, config)\n"
            "  --config FILE      configuration file (default: $OMS_CONFIG, none)\n"
            "  --schemas DIR      extra .avsc files to load\n"
            "  --record FILE      write one JSON line per delivered event\n"
            PROD_FORMAT_HELP
            "  --print            also print each event as JSON on stdout (no Kafka needed\n"
            "                     with --dry-run)\n"
            "  --dry-run          do not connect to Kafka (with --print: show the events)\n"
            "  --json-summary     print the summary as JSON on stdout\n"
            "  -h, --help         this help\n"
            "\n"
            "exit status: 0 all delivered, 1 a failed delivery, 2 usage\n");
}

static void sleep_ns(uint64_t ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
    nanosleep(&ts, NULL);
}

int cmd_simulate(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"rate", required_argument, NULL, 'r'},    {"duration", required_argument, NULL, 'd'},
        {"count", required_argument, NULL, 'n'},   {"users", required_argument, NULL, 'u'},
        {"products", required_argument, NULL, 'p'}, {"seed", required_argument, NULL, 's'},
        {"brokers", required_argument, NULL, 'b'}, {"config", required_argument, NULL, 'c'},
        {"schemas", required_argument, NULL, 'S'}, {"record", required_argument, NULL, 'R'},
        {"print", no_argument, NULL, 'P'},         {"dry-run", no_argument, NULL, 'D'},
        {"json-summary", no_argument, NULL, 'J'},  {"help", no_argument, NULL, 'h'},
        {"format", required_argument, NULL, 'F'},  {"registry", required_argument, NULL, 'G'},
        {NULL, 0, NULL, 0},
    };
    const char *pc = "oms-producer simulate";
    prod_opts po = {0};
    long rate = 100, duration = 10, count = -1, users = 50, products = 20;
    uint64_t seed = 0;
    bool have_seed = false, print = false, dry = false, json_summary = false;
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'r':
            if (strcmp(optarg, "max") == 0)
                rate = 0;
            else if (oms_cli_parse_long(pc, "--rate", optarg, 1, 100000000, &rate))
                return OMS_EXIT_USAGE;
            break;
        case 'd':
            if (oms_cli_parse_long(pc, "--duration", optarg, 0, 86400 * 365, &duration))
                return OMS_EXIT_USAGE;
            break;
        case 'n':
            if (oms_cli_parse_long(pc, "--count", optarg, 0, 1000000000000L, &count))
                return OMS_EXIT_USAGE;
            break;
        case 'u':
            if (oms_cli_parse_long(pc, "--users", optarg, 1, 100000000, &users))
                return OMS_EXIT_USAGE;
            break;
        case 'p':
            if (oms_cli_parse_long(pc, "--products", optarg, 1, 10000000, &products))
                return OMS_EXIT_USAGE;
            break;
        case 's': {
            char *end;
            errno = 0;
            seed = strtoull(optarg, &end, 0);
            if (errno || *end || end == optarg || optarg[0] == '-' || seed > INT64_MAX)
                return oms_cli_usage_error(
                    pc, "--seed: expected an integer between 0 and 2^63-1, got '%s'", optarg);
            have_seed = true;
            break;
        }
        case 'b': po.brokers = optarg; break;
        case 'c': po.config = optarg; break;
        case 'S': po.schemas = optarg; break;
        case 'F': po.format = optarg; break;
        case 'G': po.registry = optarg; break;
        case 'R': po.record = optarg; break;
        case 'P': print = true; break;
        case 'D': dry = true; break;
        case 'J': json_summary = true; break;
        case 'h': simulate_help(stdout); return OMS_EXIT_OK;
        default: return oms_cli_usage_error(pc, "unknown or incomplete option");
        }
    }
    if (optind < argc)
        return oms_cli_usage_error(pc, "unexpected argument '%s'", argv[optind]);
    if (duration == 0 && count < 0 && !oms_cli_isatty(stdin))
        fprintf(stderr, "oms-producer: no --duration or --count: running until stopped\n");
    if (!have_seed)
        seed = ((uint64_t)oms_now_ms() ^ ((uint64_t)oms_mono_ns() << 17)) & INT64_MAX;

    oms_sim_opts so = {seed, (int)users, (int)products, "oms-producer"};
    oms_sim *sim = oms_sim_new(&so);
    if (!sim) {
        fprintf(stderr, "oms-producer: out of memory\n");
        return OMS_EXIT_FAIL;
    }
    prod_ctx c;
    memset(&c, 0, sizeof c);
    oms_events *dry_events = NULL;
    if (!dry) {
        int rc = prod_open(&c, &po);
        if (rc) {
            oms_sim_free(sim);
            return rc;
        }
    } else {
        char err[512];
        dry_events = oms_events_new(po.schemas, err, sizeof err);
        if (!dry_events) {
            fprintf(stderr, "oms-producer: cannot load schemas: %s\n", err);
            oms_sim_free(sim);
            return OMS_EXIT_USAGE;
        }
    }
    prod_install_signals();
    uint64_t start = oms_mono_ns();
    uint64_t end = duration > 0 ? start + (uint64_t)duration * 1000000000u : UINT64_MAX;
    uint64_t sent = 0;
    int exit_code = OMS_EXIT_OK;
    int64_t now_ms = oms_now_ms();
    uint64_t now = start;
    while (!producer_stop && (count < 0 || sent < (uint64_t)count)) {
        /* at full speed, read the clocks every 64 events: two clock reads per
         * event were a visible share of the producer's time */
        if (rate > 0 || (sent & 63) == 0) {
            now = oms_mono_ns();
            now_ms = oms_now_ms();
        }
        if (now >= end)
            break;
        if (rate > 0) {
            /* pace against the start time, so short stalls are caught up */
            uint64_t due = start + sent * 1000000000u / (uint64_t)rate;
            if (due > now) {
                uint64_t wait = due - now;
                if (!dry) {
                    char err[512];
                    if (prod_flush_staged(&c, err, sizeof err) != 0) {
                        fprintf(stderr, "oms-producer: %s\n", err);
                        exit_code = OMS_EXIT_FAIL;
                        break;
                    }
                    oms_kafka_producer_poll(c.kp, 0);
                }
                sleep_ns(wait > 50000000u ? 50000000u : wait);
                continue;
            }
        }
        const oms_event *ev = oms_sim_next(sim, now_ms);
        if (print) {
            json_t *j = oms_event_to_json(ev);
            char *s = oms_json_dumps(j, JSON_COMPACT);
            if (s)
                puts(s);
            free(s);
            json_decref(j);
        }
        if (!dry) {
            char err[512];
            int rc = prod_send(&c, ev, err, sizeof err);
            if (rc != 0) {
                fprintf(stderr, "oms-producer: %s\n", err);
                exit_code = OMS_EXIT_FAIL;
                break;
            }
        }
        sent++;
    }
    if (!dry) {
        int rc = prod_close(&c, json_summary, (int64_t)seed);
        if (rc)
            exit_code = rc;
    } else {
        if (json_summary)
            printf("{\"sent\":%" PRIu64 ",\"seed\":%" PRIu64 "}\n", sent, seed);
        else
            fprintf(stderr, "oms-producer: %" PRIu64 " events (dry run), seed %" PRIu64 "\n", sent,
                    seed);
        oms_events_free(dry_events);
    }
    oms_sim_free(sim);
    return exit_code;
}
