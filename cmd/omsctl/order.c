/* order.c — `omsctl order ID`: the whole story of one order, named by its
 * orderId or its aliasId: its projection row, its status history, and its
 * events on the orders topic. */
#include <getopt.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "events/events.h"
#include "json/json.h"
#include "kafka/kafka.h"
#include "pg/pg.h"
#include "registry/registry.h"

static void order_help(FILE *out)
{
    fprintf(out,
            "usage: omsctl order ID [--json] [--no-events]\n"
            "\n"
            "Show one order: its row in the orders projection, its status history, and\n"
            "its events found on the orders topic (only the partition the projection\n"
            "names when it knows the order, else every partition).\n"
            "\n"
            "ID is the orderId or the aliasId people see (ORD-00000010): the projection\n"
            "is searched by orderId first, then by aliasId; an alias that several orders\n"
            "share is refused with their orderIds. An order the projection does not know\n"
            "is looked for on the topic by either field.\n"
            "\n"
            "options:\n"
            "  --json           one JSON object {order, history, events}\n"
            "  --no-events      skip reading the topic\n"
            "  --brokers LIST   Kafka bootstrap servers (default: $KAFKA_BROKERS, config)\n"
            "  --config FILE    configuration file (default: $OMS_CONFIG, none); the\n"
            "                   database comes from DATABASE_* / database.*\n"
            "  -h, --help       this help\n"
            "\n"
            "exit status: 0 found, 1 not found or a dependency failed, 2 usage\n");
}

/* Whether needle occurs in the len bytes at hay (memmem is not C11). */
static bool bytes_contain(const void *hay, size_t len, const char *needle, size_t nlen)
{
    const unsigned char *h = hay;
    if (nlen == 0 || len < nlen)
        return false;
    for (const unsigned char *p = h; p + nlen <= h + len; p++) {
        p = memchr(p, (unsigned char)needle[0], (size_t)(h + len - p) - nlen + 1);
        if (!p)
            return false;
        if (memcmp(p, needle, nlen) == 0)
            return true;
    }
    return false;
}

/* Events of the order on the topic, as RealTimeEvent objects. Events are
 * keyed by orderId, so with by_alias false only the key is compared. With
 * by_alias (the projection does not know id, so it may be either field) a
 * record whose key differs is decoded when id occurs in its bytes, and
 * kept when its aliasId is id. */
static json_t *topic_events(const oms_config *cfg, const char *order_id, bool by_alias,
                            int partition, int *err_out)
{
    char err[512];
    json_t *list = json_array();
    oms_events *events = oms_registry_events_new(cfg, cfg->schemas.dir, err, sizeof err);
    oms_kafka_reader *r =
        events ? oms_kafka_reader_new(cfg->kafka.brokers, cfg->kafka.props, cfg->kafka.nprops, err,
                                      sizeof err)
               : NULL;
    const char *topics[1] = {cfg->kafka.topic_orders};
    int n = r ? oms_kafka_reader_assign(r, topics, 1, partition, OMS_KAFKA_FROM_BEGINNING, false,
                                        10000, err, sizeof err)
              : -1;
    if (n < 0) {
        fprintf(stderr, "omsctl: cannot read '%s': %s\n", cfg->kafka.topic_orders, err);
        *err_out = 1;
        goto out;
    }
    /* stop at the log end as it is now */
    rd_kafka_t *rk = oms_kafka_reader_handle(r);
    int64_t ends[1024];
    int nparts = n < 1024 ? n : 1024, done = 0;
    bool finished[1024] = {false};
    for (int p = 0; p < nparts; p++) {
        int64_t lo = 0, hi = 0;
        int part = partition >= 0 ? partition : p;
        rd_kafka_query_watermark_offsets(rk, cfg->kafka.topic_orders, part, &lo, &hi, 10000);
        ends[p] = hi;
        if (hi <= lo) {
            finished[p] = true;
            done++;
        }
    }
    size_t klen = strlen(order_id);
    while (done < nparts && !ctl_stop) {
        rd_kafka_message_t *m = oms_kafka_reader_poll(r, 500);
        if (!m)
            continue;
        int slot = partition >= 0 ? 0 : m->partition;
        if (slot < 0 || slot >= nparts || finished[slot]) {
            rd_kafka_message_destroy(m);
            continue;
        }
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF || (!m->err && m->offset + 1 >= ends[slot])) {
            finished[slot] = true;
            done++;
        }
        bool key_match = !m->err && m->key_len == klen && memcmp(m->key, order_id, klen) == 0;
        if (key_match ||
            (by_alias && !m->err && bytes_contain(m->payload, m->len, order_id, klen))) {
            oms_event ev;
            char pos[300];
            snprintf(pos, sizeof pos, "%s:%d:%" PRId64, cfg->kafka.topic_orders,
                     (int)m->partition, m->offset);
            if (oms_event_decode(events, m->payload, m->len, &ev, err, sizeof err) == OMS_OK) {
                if (key_match || (ev.alias_id && strcmp(ev.alias_id, order_id) == 0))
                    json_array_append_new(list, oms_event_realtime(&ev, pos));
                oms_event_clear(&ev);
            } else if (key_match) {
                json_array_append_new(list, json_pack("{s:s,s:s}", "id", pos, "undecodable", err));
            }
        }
        rd_kafka_message_destroy(m);
    }
out:
    oms_kafka_reader_free(r);
    oms_events_free(events);
    return list;
}

int cmd_order(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"json", no_argument, NULL, 'J'},         {"no-events", no_argument, NULL, 'n'},
        {"brokers", required_argument, NULL, 'b'}, {"config", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
    };
    const char *pc = "omsctl order";
    const char *brokers = NULL, *config = NULL;
    bool json = false, no_events = false;
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'J': json = true; break;
        case 'n': no_events = true; break;
        case 'b': brokers = optarg; break;
        case 'c': config = optarg; break;
        case 'h': order_help(stdout); return OMS_EXIT_OK;
        default: return oms_cli_usage_error(pc, "unknown or incomplete option");
        }
    }
    if (optind >= argc)
        return oms_cli_usage_error(pc, "name the order: its orderId or aliasId");
    const char *id = argv[optind++];
    if (optind < argc)
        return oms_cli_usage_error(pc, "unexpected argument '%s'", argv[optind]);
    if (!*id || strlen(id) > 200)
        return oms_cli_usage_error(pc, "ID must be 1 to 200 characters");
    oms_config cfg;
    int rc = ctl_config(&cfg, config, brokers);
    if (rc)
        return rc;
    char err[512];
    int exit_code = OMS_EXIT_OK, kafka_err = 0;
    json_t *order = json_null(), *history = json_array(), *events = NULL;
    int partition = -1;
    const char *order_id = id; /* the orderId once the projection resolved an alias */
    oms_pg *pg = oms_pg_connect(&cfg, "omsctl", 5, err, sizeof err);
    if (!pg) {
        fprintf(stderr, "omsctl: %s (set DATABASE_HOST/PORT/USER/PASSWORD/NAME)\n", err);
        exit_code = OMS_EXIT_FAIL;
        goto out;
    }
    PGconn *c = oms_pg_handle(pg);
    /* The orderId first (the primary key); only when no order has that id is
     * the argument taken for an aliasId. Aliases are not unique (nothing
     * enforces it), so at most 6 rows are read to name the candidates. */
    static const char *const lookups[2] = {"order_id = $1", "alias_id = $1"};
    const char *params[1] = {id};
    PGresult *res = NULL;
    for (size_t l = 0; l < 2; l++) {
        char sql[1024];
        snprintf(sql, sizeof sql,
                 "SELECT order_id, alias_id, user_id, status, total_amount::float8, items::text, "
                 "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), "
                 "to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), "
                 "position, pos_partition FROM orders WHERE %s ORDER BY order_id LIMIT 6",
                 lookups[l]);
        PQclear(res);
        res = PQexecParams(c, sql, 1, NULL, params, NULL, NULL, 0);
        if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) > 0)
            break;
    }
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        fprintf(stderr, "omsctl: cannot read the orders projection: %s (run 'omsctl projections "
                        "migrate'?)\n",
                PQresultErrorMessage(res));
        PQclear(res);
        exit_code = OMS_EXIT_FAIL;
        goto out;
    }
    if (PQntuples(res) > 1) {
        bool more = PQntuples(res) > 5;
        fprintf(stderr, "omsctl: alias '%s' names %s%d orders:", id, more ? "over " : "",
                more ? 5 : PQntuples(res));
        for (int i = 0; i < PQntuples(res) && i < 5; i++)
            fprintf(stderr, "%s %s", i ? "," : "", PQgetvalue(res, i, 0));
        fprintf(stderr, "%s (name one by its orderId)\n", more ? ", ..." : "");
        PQclear(res);
        exit_code = OMS_EXIT_FAIL;
        goto out;
    }
    if (PQntuples(res) == 1) {
        json_decref(order);
        json_t *items = json_loads(PQgetvalue(res, 0, 5), 0, NULL);
        order = json_pack("{s:s,s:s,s:I,s:s,s:f,s:o,s:s,s:s,s:s}", "orderId", PQgetvalue(res, 0, 0),
                          "aliasId", PQgetvalue(res, 0, 1), "userId",
                          (json_int_t)strtoll(PQgetvalue(res, 0, 2), NULL, 10), "status",
                          PQgetvalue(res, 0, 3), "totalAmount", strtod(PQgetvalue(res, 0, 4), NULL),
                          "items", items ? items : json_array(), "createdAt", PQgetvalue(res, 0, 6),
                          "updatedAt", PQgetvalue(res, 0, 7), "position", PQgetvalue(res, 0, 8));
        partition = atoi(PQgetvalue(res, 0, 9));
        /* from here on the order is its orderId, whichever field named it */
        order_id = json_string_value(json_object_get(order, "orderId"));
        params[0] = order_id;
    }
    PQclear(res);
    res = PQexecParams(c,
                       "SELECT status, to_char(occurred_at AT TIME ZONE 'UTC', "
                       "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), position FROM order_status_history "
                       "WHERE order_id = $1 ORDER BY occurred_at, "
                       "split_part(position, ':', 3)::bigint",
                       1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) == PGRES_TUPLES_OK) {
        for (int i = 0; i < PQntuples(res); i++)
            json_array_append_new(history, json_pack("{s:s,s:s,s:s}", "status",
                                                     PQgetvalue(res, i, 0), "occurredAt",
                                                     PQgetvalue(res, i, 1), "position",
                                                     PQgetvalue(res, i, 2)));
    }
    PQclear(res);
    if (!no_events) {
        ctl_install_signals();
        events = topic_events(&cfg, order_id, json_is_null(order), partition, &kafka_err);
    }
    if (json_is_null(order) && json_array_size(history) == 0 &&
        (!events || json_array_size(events) == 0)) {
        fprintf(stderr, "omsctl: no order '%s' in the projection%s\n", id,
                no_events ? "" : " nor on the topic");
        exit_code = OMS_EXIT_FAIL;
        goto out;
    }
    if (json) {
        json_t *all = json_pack("{s:O,s:O,s:O}", "order", order, "history", history, "events",
                                events ? events : json_null());
        char *s = oms_json_dumps(all, JSON_COMPACT);
        puts(s);
        free(s);
        json_decref(all);
    } else {
        if (json_is_null(order)) {
            printf("order %s: not in the orders projection (yet)\n", id);
        } else {
            printf("order %s (%s) of user %lld: %s, total %.2f, %zu item(s)\n", order_id,
                   json_string_value(json_object_get(order, "aliasId")),
                   (long long)json_integer_value(json_object_get(order, "userId")),
                   json_string_value(json_object_get(order, "status")),
                   json_real_value(json_object_get(order, "totalAmount")),
                   json_array_size(json_object_get(order, "items")));
            printf("  created %s, updated %s, last event %s\n",
                   json_string_value(json_object_get(order, "createdAt")),
                   json_string_value(json_object_get(order, "updatedAt")),
                   json_string_value(json_object_get(order, "position")));
        }
        printf("history:\n");
        size_t i;
        json_t *h;
        json_array_foreach(history, i, h)
            printf("  %s  %-10s %s\n", json_string_value(json_object_get(h, "occurredAt")),
                   json_string_value(json_object_get(h, "status")),
                   json_string_value(json_object_get(h, "position")));
        if (events) {
            printf("events on %s:\n", cfg.kafka.topic_orders);
            json_t *e;
            json_array_foreach(events, i, e)
            {
                json_t *d = json_object_get(e, "data");
                printf("  %s  %-20s %-10s %s\n", json_string_value(json_object_get(e, "timestamp")),
                       json_string_value(json_object_get(d, "eventType")),
                       json_string_value(json_object_get(d, "status")),
                       json_string_value(json_object_get(e, "id")));
            }
        }
    }
    if (kafka_err)
        exit_code = OMS_EXIT_FAIL;
out:
    json_decref(order);
    json_decref(history);
    json_decref(events);
    oms_pg_free(pg);
    oms_config_free(&cfg);
    return exit_code;
}
