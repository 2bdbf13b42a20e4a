/* offsets.c — the consumer offsets stored next to the read models, and the
 * operator queries (counts, rebuild). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg/pg_internal.h"

/* The parameters (group, topics, partitions) of the partitions. */
static int partition_params(const char *group, const oms_pg_partition *parts, size_t n,
                            pg_array *topics, pg_array *nums, pg_params *params)
{
    pg_array_reset(topics, PG_T_TEXT);
    pg_array_reset(nums, PG_T_INT4);
    for (size_t i = 0; i < n; i++) {
        pg_array_str(topics, parts[i].topic);
        pg_array_i64(nums, parts[i].partition);
    }
    memset(params, 0, sizeof *params);
    pg_params_text(params, group);
    return pg_params_array(params, topics) && pg_params_array(params, nums) ? OMS_OK
                                                                            : OMS_ENOMEM;
}

static int read_into(oms_pg *pg, oms_pg_partition *parts, size_t n, const pg_params *params,
                     char *errbuf, size_t errlen)
{
    PGresult *res = NULL;
    char err[512];
    if (pg_exec(pg, PG_Q_OFFSETS_READ, params, &res, err, sizeof err) != PG_OK) {
        oms_errf(errbuf, errlen, "cannot read the stored offsets: %s", err);
        return OMS_EIO;
    }
    for (size_t i = 0; i < n; i++)
        parts[i].next_offset = 0;
    for (int r = 0; r < PQntuples(res); r++) {
        const char *t = PQgetvalue(res, r, 0);
        int32_t p = (int32_t)atol(PQgetvalue(res, r, 1));
        int64_t o = strtoll(PQgetvalue(res, r, 2), NULL, 10);
        for (size_t i = 0; i < n; i++)
            if (parts[i].partition == p && strcmp(parts[i].topic, t) == 0)
                parts[i].next_offset = o;
    }
    PQclear(res);
    return OMS_OK;
}

int oms_pg_offsets_read(oms_pg *pg, const char *group, oms_pg_partition *parts, size_t n,
                        char *errbuf, size_t errlen)
{
    pg_array topics = {0}, nums = {0};
    pg_params params;
    int rc = partition_params(group, parts, n, &topics, &nums, &params);
    if (rc == OMS_OK)
        rc = read_into(pg, parts, n, &params, errbuf, errlen);
    else
        oms_errf(errbuf, errlen, "out of memory");
    pg_array_free(&topics);
    pg_array_free(&nums);
    return rc;
}

int oms_pg_offsets_claim(oms_pg *pg, const char *group, oms_pg_partition *parts, size_t n,
                         char *errbuf, size_t errlen)
{
    pg_array topics = {0}, nums = {0};
    pg_params params;
    int rc = partition_params(group, parts, n, &topics, &nums, &params);
    if (rc != OMS_OK) {
        oms_errf(errbuf, errlen, "out of memory");
        goto out;
    }
    PGresult *res = PQexecParams(pg->conn,
                                 "INSERT INTO oms_offsets (group_id, topic, partition, next_offset) "
                                 "SELECT $1, u.t, u.p, 0 FROM unnest($2::text[], $3::int[]) "
                                 "AS u(t, p) ON CONFLICT DO NOTHING",
                                 params.n, NULL, params.values, params.lengths, params.formats,
                                 0);
    char err[512];
    if (pg_classify(pg, res, PGRES_COMMAND_OK, err, sizeof err) != PG_OK) {
        oms_errf(errbuf, errlen, "cannot claim the offsets of group '%s': %s", group, err);
        rc = OMS_EIO;
    }
    PQclear(res);
    if (rc == OMS_OK)
        rc = read_into(pg, parts, n, &params, errbuf, errlen);
out:
    pg_array_free(&topics);
    pg_array_free(&nums);
    return rc;
}

int oms_pg_offsets_list(oms_pg *pg, const char *group, oms_pg_offset_row **out, char *errbuf,
                        size_t errlen)
{
    *out = NULL;
    const char *params[1] = {group};
    PGresult *res = PQexecParams(
        pg->conn,
        "SELECT group_id, topic, partition, next_offset, "
        "(extract(epoch FROM updated_at) * 1000)::bigint FROM oms_offsets "
        "WHERE $1::text IS NULL OR group_id = $1 ORDER BY group_id, topic, partition",
        1, NULL, params, NULL, NULL, 0);
    char err[512];
    if (pg_classify(pg, res, PGRES_TUPLES_OK, err, sizeof err) != PG_OK) {
        PQclear(res);
        oms_errf(errbuf, errlen, "cannot read oms_offsets: %s", err);
        return OMS_EIO;
    }
    int n = PQntuples(res);
    oms_pg_offset_row *rows = n ? calloc((size_t)n, sizeof *rows) : NULL;
    if (n && !rows) {
        PQclear(res);
        oms_errf(errbuf, errlen, "out of memory");
        return OMS_ENOMEM;
    }
    for (int i = 0; i < n; i++) {
        snprintf(rows[i].group, sizeof rows[i].group, "%s", PQgetvalue(res, i, 0));
        snprintf(rows[i].topic, sizeof rows[i].topic, "%s", PQgetvalue(res, i, 1));
        rows[i].partition = (int32_t)atol(PQgetvalue(res, i, 2));
        rows[i].next_offset = strtoll(PQgetvalue(res, i, 3), NULL, 10);
        rows[i].updated_ms = strtoll(PQgetvalue(res, i, 4), NULL, 10);
    }
    PQclear(res);
    *out = rows;
    return n;
}

int oms_pg_counts_get(oms_pg *pg, oms_pg_counts *out, char *errbuf, size_t errlen)
{
    PGresult *res = PQexec(pg->conn, "SELECT (SELECT count(*) FROM orders), "
                                     "(SELECT count(*) FROM order_status_history), "
                                     "(SELECT count(*) FROM inventory), "
                                     "(SELECT count(*) FROM notifications)");
    char err[512];
    if (pg_classify(pg, res, PGRES_TUPLES_OK, err, sizeof err) != PG_OK || PQntuples(res) != 1) {
        PQclear(res);
        oms_errf(errbuf, errlen, "cannot count the read models: %s", err);
        return OMS_EIO;
    }
    out->orders = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    out->history = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
    out->inventory = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
    out->notifications = strtoll(PQgetvalue(res, 0, 3), NULL, 10);
    PQclear(res);
    return OMS_OK;
}

int oms_pg_rebuild_reset(oms_pg *pg, int64_t *partitions, char *errbuf, size_t errlen)
{
    char err[512], ignored[64];
    /* oms_offsets first: a consumer's batch locks its offset rows before it
     * touches the tables, so taking them in the same order cannot deadlock. */
    static const char *const steps[] = {
        "BEGIN",
        "LOCK TABLE oms_offsets IN EXCLUSIVE MODE",
        "TRUNCATE order_status_history, orders, inventory, notifications",
    };
    for (size_t i = 0; i < OMS_ARRAY_LEN(steps); i++) {
        if (pg_command(pg, steps[i], err, sizeof err) != PG_OK) {
            pg_command(pg, "ROLLBACK", ignored, sizeof ignored);
            oms_errf(errbuf, errlen, "cannot reset the read models: %s", err);
            return OMS_EIO;
        }
    }
    PGresult *res = PQexec(pg->conn, "UPDATE oms_offsets SET next_offset = 0, updated_at = now()");
    int r = pg_classify(pg, res, PGRES_COMMAND_OK, err, sizeof err);
    if (r == PG_OK && partitions)
        *partitions = strtoll(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    if (r == PG_OK)
        r = pg_command(pg, "COMMIT", err, sizeof err);
    if (r != PG_OK) {
        pg_command(pg, "ROLLBACK", ignored, sizeof ignored);
        oms_errf(errbuf, errlen, "cannot reset the read models: %s", err);
        return OMS_EIO;
    }
    return OMS_OK;
}
