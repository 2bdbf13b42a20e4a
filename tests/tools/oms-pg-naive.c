/* oms-pg-naive — the baseline of the projections benchmark: the same events,
 * the same read models, the same position guards and offsets, applied the
 * naive way: one transaction per event (BEGIN; the event's single-row
 * upsert and history row; its offset row; COMMIT), prepared statements, the
 * same session settings as omsd (pkg/pg oms_pg_connect).
 *
 *   oms-pg-naive --group G [--count N] [--seconds S] [--sync-commit]
 *
 * --sync-commit: synchronous_commit = on (Postgres' default: every COMMIT
 * waits for its WAL flush) instead of omsd's off.
 * Reads the configured event topics ($OMS_CONFIG, KAFKA_BROKERS) from the
 * beginning and writes to the database of DATABASE_* (migrated first).
 * Stops after N events or S seconds (default 15) and prints one JSON line
 * {"events":..., "seconds":..., "rate":...}. Exit 0, or 1 on a failure. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "events/events.h"
#include "json/json.h"
#include "kafka/kafka.h"
#include "pg/pg.h"

#define PROG "oms-pg-naive"

static const char *const sql[][2] = {
    {"n_created",
     "INSERT INTO orders (order_id, alias_id, user_id, status, total_amount, items, created_at, "
     "updated_at, position, pos_partition, pos_offset) VALUES ($1, $2, $3, $4, $5, $6::jsonb, "
     "to_timestamp($7::float8 / 1000), to_timestamp($7::float8 / 1000), $8, $9, $10) "
     "ON CONFLICT (order_id) DO UPDATE SET alias_id = EXCLUDED.alias_id, user_id = "
     "EXCLUDED.user_id, status = EXCLUDED.status, total_amount = EXCLUDED.total_amount, items = "
     "EXCLUDED.items, created_at = EXCLUDED.created_at, updated_at = EXCLUDED.updated_at, "
     "position = EXCLUDED.position, pos_partition = EXCLUDED.pos_partition, pos_offset = "
     "EXCLUDED.pos_offset WHERE (orders.pos_partition, orders.pos_offset) < "
     "(EXCLUDED.pos_partition, EXCLUDED.pos_offset)"},
    {"n_changed",
     "UPDATE orders SET status = $2, updated_at = to_timestamp($3::float8 / 1000), position = $4, "
     "pos_partition = $5, pos_offset = $6 WHERE order_id = $1 AND (pos_partition, pos_offset) < "
     "($5, $6)"},
    {"n_history",
     "INSERT INTO order_status_history (order_id, status, occurred_at, position, event_id) VALUES "
     "($1, $2, to_timestamp($3::float8 / 1000), $4, $5) ON CONFLICT (order_id, position) DO "
     "NOTHING"},
    {"n_stock",
     "INSERT INTO inventory (product_id, product_name, quantity, threshold, status, updated_at, "
     "position, pos_partition, pos_offset) VALUES ($1, $2, $3, $4, $5, to_timestamp($6::float8 / "
     "1000), $7, $8, $9) ON CONFLICT (product_id) DO UPDATE SET product_name = "
     "EXCLUDED.product_name, quantity = EXCLUDED.quantity, threshold = EXCLUDED.threshold, "
     "status = EXCLUDED.status, updated_at = EXCLUDED.updated_at, position = EXCLUDED.position, "
     "pos_partition = EXCLUDED.pos_partition, pos_offset = EXCLUDED.pos_offset WHERE "
     "(inventory.pos_partition, inventory.pos_offset) < (EXCLUDED.pos_partition, "
     "EXCLUDED.pos_offset)"},
    {"n_note",
     "INSERT INTO notifications (event_id, kind, user_id, title, message, severity, data, "
     "occurred_at, position, pos_partition, pos_offset) VALUES ($1, $2, $3, $4, $5, $6, "
     "$7::jsonb, to_timestamp($8::float8 / 1000), $9, $10, $11) ON CONFLICT (event_id) DO "
     "UPDATE SET kind = EXCLUDED.kind, user_id = EXCLUDED.user_id, title = EXCLUDED.title, "
     "message = EXCLUDED.message, severity = EXCLUDED.severity, data = EXCLUDED.data, "
     "occurred_at = EXCLUDED.occurred_at, position = EXCLUDED.position, pos_partition = "
     "EXCLUDED.pos_partition, pos_offset = EXCLUDED.pos_offset WHERE (notifications.pos_partition, notifications.pos_offset) < "
     "(EXCLUDED.pos_partition, EXCLUDED.pos_offset)"},
    {"n_offset",
     "INSERT INTO oms_offsets (group_id, topic, partition, next_offset) VALUES ($1, $2, $3, $4) "
     "ON CONFLICT (group_id, topic, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset, "
     "updated_at = now()"},
};

static bool run(PGconn *c, const char *name, int n, const char *const *params)
{
    PGresult *r = name ? PQexecPrepared(c, name, n, params, NULL, NULL, 0) : PQexec(c, params[0]);
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok)
        fprintf(stderr, PROG ": %s: %s", name ? name : params[0], PQerrorMessage(c));
    PQclear(r);
    return ok;
}

static bool apply(PGconn *c, const char *group, const char *topic, const rd_kafka_message_t *m,
                  const oms_event *ev)
{
    char pos[320], part[16], off[24], nextoff[24], ts[24], uid[24], a[24], b[24], q[24];
    snprintf(pos, sizeof pos, "%s:%d:%" PRId64, topic, (int)m->partition, m->offset);
    snprintf(part, sizeof part, "%d", (int)m->partition);
    snprintf(off, sizeof off, "%" PRId64, m->offset);
    snprintf(nextoff, sizeof nextoff, "%" PRId64, m->offset + 1);
    snprintf(ts, sizeof ts, "%" PRId64, ev->occurred_at);
    snprintf(uid, sizeof uid, "%" PRId64, ev->user_id);
    const char *begin[] = {"BEGIN"}, *commit[] = {"COMMIT"};
    bool ok = run(c, NULL, 0, begin);
    switch (ev->type) {
    case OMS_EV_ORDER_CREATED: {
        char total[40];
        snprintf(total, sizeof total, "%.15g", ev->total_amount);
        json_t *items = json_array();
        for (size_t i = 0; i < ev->nitems; i++)
            json_array_append_new(
                items, json_pack("{s:I,s:s,s:i,s:f}", "productId",
                                 (json_int_t)ev->items[i].product_id, "productName",
                                 ev->items[i].product_name ? ev->items[i].product_name : "",
                                 "quantity", (int)ev->items[i].quantity, "price",
                                 ev->items[i].price));
        char *js = oms_json_dumps(items, JSON_COMPACT);
        json_decref(items);
        const char *p[] = {ev->order_id, ev->alias_id, uid, ev->status, total, js ? js : "[]",
                           ts, pos, part, off};
        ok = ok && run(c, "n_created", 10, p);
        free(js);
        const char *h[] = {ev->order_id, ev->status, ts, pos, ev->event_id};
        ok = ok && run(c, "n_history", 5, h);
        break;
    }
    case OMS_EV_ORDER_STATUS_CHANGED: {
        const char *p[] = {ev->order_id, ev->status, ts, pos, part, off};
        ok = ok && run(c, "n_changed", 6, p);
        const char *h[] = {ev->order_id, ev->status, ts, pos, ev->event_id};
        ok = ok && run(c, "n_history", 5, h);
        break;
    }
    case OMS_EV_INVENTORY_CHANGED: {
        snprintf(a, sizeof a, "%" PRId64, ev->product_id);
        snprintf(b, sizeof b, "%d", (int)ev->quantity);
        snprintf(q, sizeof q, "%d", (int)ev->threshold);
        const char *p[] = {a, ev->product_name, b, q, ev->status, ts, pos, part, off};
        ok = ok && run(c, "n_stock", 9, p);
        break;
    }
    default: {
        bool user = ev->type == OMS_EV_USER_NOTIFICATION;
        const char *p[] = {ev->event_id, user ? "user" : "system", user ? uid : NULL, ev->title,
                           ev->message, user ? NULL : ev->severity, ev->data_json, ts, pos,
                           part, off};
        ok = ok && run(c, "n_note", 11, p);
        break;
    }
    }
    const char *o[] = {group, topic, part, nextoff};
    ok = ok && run(c, "n_offset", 4, o);
    return ok && run(c, NULL, 0, commit);
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"group", required_argument, NULL, 'g'},
        {"count", required_argument, NULL, 'n'},
        {"seconds", required_argument, NULL, 's'},
        {"sync-commit", no_argument, NULL, 'S'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *group = NULL;
    long count = 0, seconds = 15;
    bool sync_commit = false;
    int opt;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'g': group = optarg; break;
        case 'n':
            if (oms_cli_parse_long(PROG, "--count", optarg, 1, 1000000000L, &count))
                return OMS_EXIT_USAGE;
            break;
        case 's':
            if (oms_cli_parse_long(PROG, "--seconds", optarg, 1, 3600, &seconds))
                return OMS_EXIT_USAGE;
            break;
        case 'S': sync_commit = true; break;
        case 'h':
            printf("usage: " PROG " --group G [--count N] [--seconds S] [--sync-commit]\n");
            return OMS_EXIT_OK;
        default: return oms_cli_usage_error(PROG, "unknown or incomplete option");
        }
    }
    if (!group)
        return oms_cli_usage_error(PROG, "--group is required");
    oms_config cfg;
    if (oms_cli_load_config(PROG, NULL, &cfg))
        return OMS_EXIT_USAGE;
    char err[512];
    int rc = OMS_EXIT_FAIL;
    oms_events *events = oms_events_new(NULL, err, sizeof err);
    oms_pg *pg = events ? oms_pg_connect(&cfg, PROG, 5, err, sizeof err) : NULL;
    oms_kafka_reader *r = NULL;
    if (!pg || oms_pg_migrate(pg, NULL, NULL, err, sizeof err) != OMS_OK) {
        fprintf(stderr, PROG ": %s\n", err);
        goto out;
    }
    PGconn *c = oms_pg_handle(pg);
    if (sync_commit) {
        const char *on[] = {"SET synchronous_commit = on"};
        if (!run(c, NULL, 0, on))
            goto out;
    }
    for (size_t i = 0; i < OMS_ARRAY_LEN(sql); i++) {
        PGresult *res = PQprepare(c, sql[i][0], sql[i][1], 0, NULL);
        bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
        PQclear(res);
        if (!ok) {
            fprintf(stderr, PROG ": prepare %s: %s", sql[i][0], PQerrorMessage(c));
            goto out;
        }
    }
    const char *topics[3] = {cfg.kafka.topic_orders, cfg.kafka.topic_inventory,
                             cfg.kafka.topic_notifications};
    r = oms_kafka_reader_new(cfg.kafka.brokers, cfg.kafka.props, cfg.kafka.nprops, err,
                             sizeof err);
    if (!r || oms_kafka_reader_assign(r, topics, 3, -1, OMS_KAFKA_FROM_BEGINNING, false, 10000,
                                      err, sizeof err) < 0) {
        fprintf(stderr, PROG ": %s\n", err);
        goto out;
    }
    uint64_t t0 = 0, until = 0;
    long done = 0;
    for (;;) {
        rd_kafka_message_t *m = oms_kafka_reader_poll(r, 1000);
        if (!m) {
            if (t0 && oms_mono_ns() >= until)
                break;
            if (!t0)
                continue;
            break; /* the topics are read to their end */
        }
        if (!t0) {
            t0 = oms_mono_ns();
            until = t0 + (uint64_t)seconds * 1000000000u;
        }
        if (!m->err) {
            oms_event ev;
            if (oms_event_decode(events, m->payload, m->len, &ev, err, sizeof err) == OMS_OK) {
                bool ok = apply(c, group, rd_kafka_topic_name(m->rkt), m, &ev);
                oms_event_clear(&ev);
                if (!ok) {
                    rd_kafka_message_destroy(m);
                    goto out;
                }
                done++;
            }
        }
        rd_kafka_message_destroy(m);
        if ((count && done >= count) || oms_mono_ns() >= until)
            break;
    }
    double secs = t0 ? (double)(oms_mono_ns() - t0) / 1e9 : 0;
    printf("{\"events\":%ld,\"seconds\":%.3f,\"rate\":%.0f}\n", done, secs,
           secs > 0 ? (double)done / secs : 0.0);
    rc = OMS_EXIT_OK;
out:
    if (r)
        oms_kafka_reader_free(r);
    oms_pg_free(pg);
    oms_events_free(events);
    oms_config_free(&cfg);
    return rc;
}
