/* projections.c — `omsctl projections status|migrate|rebuild`: the Postgres
 * read models that omsd folds from the event topics (DESIGN §3.4). */
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"
#include "json/json.h"
#include "kafka/kafka.h"
#include "pg/pg.h"

static void projections_help(FILE *out)
{
    fprintf(out,
            "usage: omsctl projections status [--json] [--group G]\n"
            "       omsctl projections migrate [--json]\n"
            "       omsctl projections rebuild [--yes] [--no-wait] [--timeout SECONDS] [--group G]\n"
            "\n"
            "omsd folds the event topics into Postgres tables (orders,\n"
            "order_status_history, inventory, notifications), exactly once: each batch\n"
            "and the next offsets of its partitions (table oms_offsets) commit together.\n"
            "\n"
            "status:  per partition of the event topics: the next offset stored in\n"
            "         Postgres for the group, the end of the log, the lag and when the\n"
            "         partition was last applied; the schema version.\n"
            "migrate: apply the pending schema migrations (omsd does it at start unless\n"
            "         projections.migrate_on_start is false) and print the version.\n"
            "rebuild: empty the four tables and set every stored offset to 0 (every\n"
            "         group), in one transaction; the running omsd instances notice\n"
            "         within a second and fold the log again from its start. Asks for\n"
            "         confirmation unless --yes, then shows the progress (on a terminal)\n"
            "         until the group has caught up with the log.\n"
            "\n"
            "options:\n"
            "  --json             machine-readable output\n"
            "  --group G          consumer group (default: kafka.projection_group of the\n"
            "                     config, omsd-projections)\n"
            "  --yes              rebuild without asking\n"
            "  --no-wait          rebuild: return once the tables are reset\n"
            "  --timeout SECONDS  rebuild: stop waiting after SECONDS (default: no limit)\n"
            "  --brokers LIST     Kafka bootstrap servers (default: $KAFKA_BROKERS, config)\n"
            "  --config FILE      configuration file (default: $OMS_CONFIG, none)\n"
            "  -h, --help         this help\n"
            "\n"
            "Postgres is reached with database.* of the config or DATABASE_URL, else\n"
            "DATABASE_HOST, DATABASE_PORT, DATABASE_USER, DATABASE_PASSWORD (or\n"
            "DATABASE_PASSWORD_FILE), DATABASE_NAME.\n"
            "exit status: 0 ok, 1 postgres or kafka failed, rebuild cancelled or not caught up\n"
            "in time, 2 usage\n");
}

typedef struct opts {
    bool json, yes, no_wait;
    long timeout_s;
    const char *group;
} opts;

static oms_pg *connect_pg(const oms_config *cfg)
{
    char err[512];
    oms_pg *pg = oms_pg_connect(cfg, "omsctl", 5, err, sizeof err);
    if (!pg)
        fprintf(stderr, "omsctl: %s (is postgres running? set DATABASE_URL, or DATABASE_HOST, "
                        "DATABASE_PORT, DATABASE_NAME, or database.* in the config)\n",
                err);
    return pg;
}

/* The read models must exist for status and rebuild. */
static bool schema_ok(oms_pg *pg, int *version)
{
    char err[512];
    if (oms_pg_schema_version(pg, version, err, sizeof err) != OMS_OK) {
        fprintf(stderr, "omsctl: %s\n", err);
        return false;
    }
    if (*version == 0) {
        fprintf(stderr, "omsctl: the projection tables do not exist yet (run 'omsctl projections "
                        "migrate', or start omsd)\n");
        return false;
    }
    return true;
}

/* ---- the log ends (Kafka) ---------------------------------------------------------------- */

typedef struct log_part {
    const char *topic; /* the config's */
    int32_t partition;
    int64_t lo, hi;
    int64_t stored; /* -1: no row */
    int64_t updated_ms;
} log_part;

typedef struct log_view {
    oms_kafka_reader *r;
    log_part *parts;
    size_t n;
} log_view;

static void log_view_free(log_view *v)
{
    if (v->r)
        oms_kafka_reader_free(v->r);
    free(v->parts);
    memset(v, 0, sizeof *v);
}

/* The partitions of the three event topics. Returns 0 or prints and -1. */
static int log_view_open(log_view *v, const oms_config *cfg)
{
    char err[512];
    memset(v, 0, sizeof *v);
    v->r = oms_kafka_reader_new(cfg->kafka.brokers, cfg->kafka.props, cfg->kafka.nprops, err,
                                sizeof err);
    if (!v->r) {
        fprintf(stderr, "omsctl: %s\n", err);
        return -1;
    }
    rd_kafka_t *rk = oms_kafka_reader_handle(v->r);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 1, NULL, &md, 10000);
    if (e) {
        fprintf(stderr, "omsctl: cannot read the topics at '%s': %s (is kafka running? set "
                        "--brokers or KAFKA_BROKERS)\n",
                cfg->kafka.brokers, rd_kafka_err2str(e));
        return -1;
    }
    const char *names[3] = {cfg->kafka.topic_orders, cfg->kafka.topic_inventory,
                            cfg->kafka.topic_notifications};
    size_t total = 0;
    for (int t = 0; t < md->topic_cnt; t++)
        total += (size_t)md->topics[t].partition_cnt;
    v->parts = calloc(total ? total : 1, sizeof *v->parts);
    int rc = v->parts ? 0 : -1;
    for (int k = 0; k < 3 && rc == 0; k++) {
        const struct rd_kafka_metadata_topic *mt = NULL;
        for (int t = 0; t < md->topic_cnt; t++)
            if (strcmp(md->topics[t].topic, names[k]) == 0)
                mt = &md->topics[t];
        if (!mt || mt->err) {
            fprintf(stderr, "omsctl: topic '%s' does not exist (run 'omsctl topics create')\n",
                    names[k]);
            rc = -1;
            break;
        }
        /* metadata lists partitions in no particular order */
        for (int32_t p = 0; p < mt->partition_cnt; p++)
            v->parts[v->n++] = (log_part){names[k], p, 0, 0, -1, 0};
    }
    rd_kafka_metadata_destroy(md);
    return rc;
}

/* Refresh the watermarks. Returns 0 or prints and -1. */
static int log_view_ends(log_view *v)
{
    rd_kafka_t *rk = oms_kafka_reader_handle(v->r);
    for (size_t i = 0; i < v->n; i++) {
        rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(
            rk, v->parts[i].topic, v->parts[i].partition, &v->parts[i].lo, &v->parts[i].hi, 5000);
        if (e) {
            fprintf(stderr, "omsctl: cannot read the end of '%s' partition %d: %s\n",
                    v->parts[i].topic, (int)v->parts[i].partition, rd_kafka_err2str(e));
            return -1;
        }
    }
    return 0;
}

/* Fill the stored offsets from Postgres. Returns 0 or prints and -1. */
static int log_view_stored(log_view *v, oms_pg *pg, const char *group)
{
    char err[512];
    oms_pg_offset_row *rows = NULL;
    int n = oms_pg_offsets_list(pg, group, &rows, err, sizeof err);
    if (n < 0) {
        fprintf(stderr, "omsctl: %s\n", err);
        return -1;
    }
    for (size_t i = 0; i < v->n; i++) {
        v->parts[i].stored = -1;
        v->parts[i].updated_ms = 0;
        for (int r = 0; r < n; r++)
            if (rows[r].partition == v->parts[i].partition &&
                strcmp(rows[r].topic, v->parts[i].topic) == 0) {
                v->parts[i].stored = rows[r].next_offset;
                v->parts[i].updated_ms = rows[r].updated_ms;
            }
    }
    free(rows);
    return 0;
}

/* Records still to apply in a partition: from the stored offset (or the log
 * start when that is later: retention) to the end. */
static int64_t part_lag(const log_part *p)
{
    int64_t from = p->stored > p->lo ? p->stored : p->lo;
    return p->hi > from ? p->hi - from : 0;
}

/* ---- status -------------------------------------------------------------------------------- */

static int do_status(oms_config *cfg, const opts *o)
{
    oms_pg *pg = connect_pg(cfg);
    if (!pg)
        return OMS_EXIT_FAIL;
    int version = 0, rc = OMS_EXIT_FAIL;
    log_view v = {0};
    if (!schema_ok(pg, &version) || log_view_open(&v, cfg) || log_view_ends(&v) ||
        log_view_stored(&v, pg, o->group))
        goto out;
    int64_t lag = 0;
    for (size_t i = 0; i < v.n; i++)
        lag += part_lag(&v.parts[i]);
    if (o->json) {
        json_t *parts = json_array();
        for (size_t i = 0; i < v.n; i++) {
            const log_part *p = &v.parts[i];
            char ts[32] = "";
            if (p->updated_ms)
                oms_iso8601_ms(p->updated_ms, ts, sizeof ts);
            json_array_append_new(
                parts, json_pack("{s:s,s:i,s:o,s:I,s:I,s:I,s:o}", "topic", p->topic, "partition",
                                 (int)p->partition, "storedOffset",
                                 p->stored >= 0 ? json_integer(p->stored) : json_null(),
                                 "logStart", (json_int_t)p->lo, "logEnd", (json_int_t)p->hi, "lag",
                                 (json_int_t)part_lag(p), "lastAppliedAt",
                                 *ts ? json_string(ts) : json_null()));
        }
        json_t *j = json_pack("{s:s,s:i,s:i,s:I,s:o}", "group", o->group, "schemaVersion",
                              version, "latestVersion", oms_pg_migrations_latest(), "lag",
                              (json_int_t)lag, "partitions", parts);
        char *s = oms_json_dumps(j, JSON_COMPACT);
        printf("%s\n", s ? s : "null");
        free(s);
        json_decref(j);
    } else {
        int w = 5;
        for (size_t i = 0; i < v.n; i++)
            if ((int)strlen(v.parts[i].topic) > w)
                w = (int)strlen(v.parts[i].topic);
        printf("group %s, schema version %d (this omsctl knows %d)\n", o->group, version,
               oms_pg_migrations_latest());
        printf("%-*s %9s %12s %12s %10s  %s\n", w, "TOPIC", "PARTITION", "STORED", "LOG END",
               "LAG", "LAST APPLIED");
        for (size_t i = 0; i < v.n; i++) {
            const log_part *p = &v.parts[i];
            char stored[24] = "-", ts[32] = "-";
            if (p->stored >= 0)
                snprintf(stored, sizeof stored, "%" PRId64, p->stored);
            if (p->updated_ms)
                oms_iso8601_ms(p->updated_ms, ts, sizeof ts);
            printf("%-*s %9d %12s %12" PRId64 " %10" PRId64 "  %s\n", w, p->topic,
                   (int)p->partition, stored, p->hi, part_lag(p), ts);
        }
        printf("total lag %" PRId64 "\n", lag);
    }
    rc = OMS_EXIT_OK;
out:
    log_view_free(&v);
    oms_pg_free(pg);
    return rc;
}

/* ---- migrate ------------------------------------------------------------------------------- */

static int do_migrate(oms_config *cfg, const opts *o)
{
    oms_pg *pg = connect_pg(cfg);
    if (!pg)
        return OMS_EXIT_FAIL;
    char err[512];
    int from = 0, to = 0, latest = oms_pg_migrations_latest();
    int rc = oms_pg_migrate(pg, &from, &to, err, sizeof err);
    oms_pg_free(pg);
    if (rc != OMS_OK) {
        fprintf(stderr, "omsctl: %s\n", err);
        return OMS_EXIT_FAIL;
    }
    if (o->json)
        printf("{\"from\":%d,\"to\":%d,\"latest\":%d,\"applied\":%d}\n", from, to, latest,
               to > from ? to - from : 0);
    else if (to > latest)
        printf("schema version %d: newer than this omsctl knows (%d), nothing applied\n", to,
               latest);
    else if (to == from)
        printf("schema version %d: up to date\n", to);
    else
        printf("schema version %d (was %d)\n", to, from);
    return OMS_EXIT_OK;
}

/* ---- rebuild ------------------------------------------------------------------------------- */

static bool confirm(const oms_config *cfg)
{
    char where[300];
    oms_pg_describe(cfg, where, sizeof where); /* database.url aware, no password */
    fprintf(stderr,
            "This empties orders, order_status_history, inventory and notifications in\n"
            "%s and has omsd fold the whole log again.\n"
            "Continue? [y/N] ",
            where);
    fflush(stderr);
    char line[32];
    if (!fgets(line, sizeof line, stdin))
        return false;
    return strcmp(line, "y\n") == 0 || strcmp(line, "yes\n") == 0 || strcmp(line, "Y\n") == 0 ||
           strcmp(line, "YES\n") == 0;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int do_rebuild(oms_config *cfg, const opts *o)
{
    if (!o->yes) {
        if (!oms_cli_isatty(stdin))
            return oms_cli_usage_error("omsctl projections",
                                       "rebuild empties the read models: confirm with --yes");
        if (!confirm(cfg)) {
            fprintf(stderr, "omsctl: rebuild cancelled\n");
            return OMS_EXIT_FAIL;
        }
    }
    oms_pg *pg = connect_pg(cfg);
    if (!pg)
        return OMS_EXIT_FAIL;
    int version = 0, rc = OMS_EXIT_FAIL;
    log_view v = {0};
    char err[512];
    /* Kafka first: no reset when the progress cannot be followed */
    if (!schema_ok(pg, &version) || (!o->no_wait && (log_view_open(&v, cfg) || log_view_ends(&v))))
        goto out;
    int64_t reset = 0;
    if (oms_pg_rebuild_reset(pg, &reset, err, sizeof err) != OMS_OK) {
        fprintf(stderr, "omsctl: %s\n", err);
        goto out;
    }
    uint64_t t0 = oms_mono_ns();
    if (o->no_wait) {
        if (o->json)
            printf("{\"reset\":true,\"partitions\":%" PRId64 "}\n", reset);
        else
            printf("read models emptied, %" PRId64 " stored offsets set to 0: omsd folds the "
                   "log again\n",
                   reset);
        rc = OMS_EXIT_OK;
        goto out;
    }
    ctl_install_signals();
    bool tty = oms_cli_isatty(stderr);
    int64_t done = 0, total = 0, lag = 0, last_done = -1;
    uint64_t last_progress = t0;
    bool warned = false;
    for (;;) {
        if (log_view_ends(&v) || log_view_stored(&v, pg, o->group))
            goto out;
        done = total = lag = 0;
        for (size_t i = 0; i < v.n; i++) {
            const log_part *p = &v.parts[i];
            int64_t l = part_lag(p);
            lag += l;
            total += p->hi - p->lo;
            done += p->hi - p->lo - l;
        }
        uint64_t now = oms_mono_ns();
        if (tty)
            fprintf(stderr, "\rrebuild: %" PRId64 " / %" PRId64 " events (%3d%%), lag %" PRId64
                            "   ",
                    done, total, total ? (int)(done * 100 / total) : 100, lag);
        if (lag == 0)
            break;
        if (done != last_done) {
            last_done = done;
            last_progress = now;
        } else if (!warned && now - last_progress > 15000000000u) {
            fprintf(stderr, "%somsctl: no progress for 15 s: is omsd running with projections "
                            "enabled in group '%s'?\n",
                    tty ? "\n" : "", o->group);
            warned = true;
        }
        if (o->timeout_s > 0 && now - t0 > (uint64_t)o->timeout_s * 1000000000u) {
            fprintf(stderr, "%somsctl: not caught up after %ld s (lag %" PRId64 "); omsd goes "
                            "on folding\n",
                    tty ? "\n" : "", o->timeout_s, lag);
            goto out;
        }
        if (ctl_stop) {
            fprintf(stderr, "%somsctl: stopped waiting (lag %" PRId64 "); omsd goes on "
                            "folding\n",
                    tty ? "\n" : "", lag);
            goto out;
        }
        sleep_ms(250);
    }
    if (tty)
        fprintf(stderr, "\n");
    double secs = (double)(oms_mono_ns() - t0) / 1e9;
    oms_pg_counts c = {0};
    if (oms_pg_counts_get(pg, &c, err, sizeof err) != OMS_OK) {
        fprintf(stderr, "omsctl: %s\n", err);
        goto out;
    }
    if (o->json)
        printf("{\"reset\":true,\"partitions\":%" PRId64 ",\"events\":%" PRId64
               ",\"seconds\":%.3f,\"orders\":%" PRId64 ",\"history\":%" PRId64
               ",\"inventory\":%" PRId64 ",\"notifications\":%" PRId64 "}\n",
               reset, done, secs, c.orders, c.history, c.inventory, c.notifications);
    else
        printf("rebuilt: %" PRId64 " events folded in %.1f s; orders %" PRId64
               ", status history %" PRId64 ", inventory %" PRId64 ", notifications %" PRId64 "\n",
               done, secs, c.orders, c.history, c.inventory, c.notifications);
    rc = OMS_EXIT_OK;
out:
    log_view_free(&v);
    oms_pg_free(pg);
    return rc;
}

int cmd_projections(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"json", no_argument, NULL, 'J'},        {"group", required_argument, NULL, 'g'},
        {"yes", no_argument, NULL, 'y'},         {"no-wait", no_argument, NULL, 'W'},
        {"timeout", required_argument, NULL, 't'}, {"brokers", required_argument, NULL, 'b'},
        {"config", required_argument, NULL, 'c'}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *pc = "omsctl projections";
    const char *brokers = NULL, *config = NULL;
    opts o = {0};
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'J': o.json = true; break;
        case 'g':
            if (!*optarg)
                return oms_cli_usage_error(pc, "--group: must not be empty");
            o.group = optarg;
            break;
        case 'y': o.yes = true; break;
        case 'W': o.no_wait = true; break;
        case 't':
            if (oms_cli_parse_long(pc, "--timeout", optarg, 1, 86400L * 365, &o.timeout_s))
                return OMS_EXIT_USAGE;
            break;
        case 'b': brokers = optarg; break;
        case 'c': config = optarg; break;
        case 'h': projections_help(stdout); return OMS_EXIT_OK;
        default: return oms_cli_usage_error(pc, "unknown or incomplete option");
        }
    }
    if (optind >= argc)
        return oms_cli_usage_error(pc, "name an action: status, migrate or rebuild");
    const char *action = argv[optind++];
    if (optind < argc)
        return oms_cli_usage_error(pc, "unexpected argument '%s'", argv[optind]);
    int which = strcmp(action, "status") == 0    ? 0
                : strcmp(action, "migrate") == 0 ? 1
                : strcmp(action, "rebuild") == 0 ? 2
                                                 : -1;
    if (which < 0)
        return oms_cli_usage_error(pc, "unknown action '%s' (status, migrate or rebuild)", action);
    if (which != 2 && (o.yes || o.no_wait || o.timeout_s))
        return oms_cli_usage_error(pc, "--yes, --no-wait and --timeout go with rebuild");
    if (which == 1 && o.group)
        return oms_cli_usage_error(pc, "--group goes with status and rebuild");
    oms_config cfg;
    int rc = ctl_config(&cfg, config, brokers);
    if (rc)
        return rc;
    if (!o.group)
        o.group = cfg.kafka.projection_group;
    rc = which == 0 ? do_status(&cfg, &o) : which == 1 ? do_migrate(&cfg, &o) : do_rebuild(&cfg, &o);
    oms_config_free(&cfg);
    return rc;
}
