/* migrate.c — the versioned SQL migrations of migrations/, embedded. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg/embedded.h"
#include "pg/pg_internal.h"

/* pg_advisory_lock key: the bytes "oms-migr" as a big-endian integer. */
#define MIGRATION_LOCK "8029200349617809266"

int oms_pg_migrations_latest(void)
{
    int v = 0;
    for (const oms_pg_migration *m = oms_pg_migrations; m->file; m++)
        if (m->version > v)
            v = m->version;
    return v;
}

static void checksum(const char *sql, char out[17])
{
    uint64_t h = 1469598103934665603u;
    for (const unsigned char *p = (const unsigned char *)sql; *p; p++) {
        h ^= *p;
        h *= 1099511628211u;
    }
    snprintf(out, 17, "%016" PRIx64, h);
}

static int query_version(oms_pg *pg, int *version, char *errbuf, size_t errlen)
{
    PGresult *res = PQexec(pg->conn, "SELECT to_regclass('oms_schema_migrations') IS NOT NULL");
    int rc = pg_classify(pg, res, PGRES_TUPLES_OK, errbuf, errlen);
    bool exists = rc == PG_OK && PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    if (rc != PG_OK)
        return OMS_EIO;
    *version = 0;
    if (!exists)
        return OMS_OK;
    res = PQexec(pg->conn, "SELECT coalesce(max(version), 0) FROM oms_schema_migrations");
    rc = pg_classify(pg, res, PGRES_TUPLES_OK, errbuf, errlen);
    if (rc == PG_OK && PQntuples(res) == 1)
        *version = atoi(PQgetvalue(res, 0, 0));
    PQclear(res);
    return rc == PG_OK ? OMS_OK : OMS_EIO;
}

int oms_pg_schema_version(oms_pg *pg, int *version, char *errbuf, size_t errlen)
{
    return query_version(pg, version, errbuf, errlen);
}

/* Check the recorded checksums of the applied migrations, then apply the
 * missing ones; called with the advisory lock held. */
static int migrate_locked(oms_pg *pg, int *from, int *to, char *errbuf, size_t errlen)
{
    char err[512];
    if (pg_command(pg,
                   "CREATE TABLE IF NOT EXISTS oms_schema_migrations ("
                   "version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL, "
                   "applied_at timestamptz NOT NULL DEFAULT now())",
                   err, sizeof err) != PG_OK) {
        oms_errf(errbuf, errlen, "cannot create oms_schema_migrations: %s", err);
        return OMS_EIO;
    }
    PGresult *res =
        PQexec(pg->conn, "SELECT version, name, checksum FROM oms_schema_migrations ORDER BY 1");
    if (pg_classify(pg, res, PGRES_TUPLES_OK, err, sizeof err) != PG_OK) {
        PQclear(res);
        oms_errf(errbuf, errlen, "cannot read oms_schema_migrations: %s", err);
        return OMS_EIO;
    }
    int current = 0;
    int rc = OMS_OK;
    for (int i = 0; i < PQntuples(res) && rc == OMS_OK; i++) {
        int v = atoi(PQgetvalue(res, i, 0));
        if (v > current)
            current = v;
        for (const oms_pg_migration *m = oms_pg_migrations; m->file; m++) {
            char sum[17];
            checksum(m->sql, sum);
            if (m->version == v && strcmp(sum, PQgetvalue(res, i, 2)) != 0) {
                oms_errf(errbuf, errlen,
                         "migration %s was changed after it was applied (recorded checksum %s, "
                         "now %s): add a new migration instead of editing an applied one",
                         m->file, PQgetvalue(res, i, 2), sum);
                rc = OMS_ESCHEMA;
            }
        }
    }
    PQclear(res);
    if (from)
        *from = current;
    if (to)
        *to = current;
    if (rc != OMS_OK)
        return rc;
    for (const oms_pg_migration *m = oms_pg_migrations; m->file; m++) {
        if (m->version <= current)
            continue;
        char sum[17], ver[16];
        checksum(m->sql, sum);
        snprintf(ver, sizeof ver, "%d", m->version);
        if (pg_command(pg, "BEGIN", err, sizeof err) != PG_OK) {
            oms_errf(errbuf, errlen, "migration %s: %s", m->file, err);
            return OMS_EIO;
        }
        /* A migration may hold several statements: the simple query
         * protocol runs them all inside our transaction. */
        res = PQexec(pg->conn, m->sql);
        int r = pg_classify(pg, res, PGRES_COMMAND_OK, err, sizeof err);
        PQclear(res);
        if (r == PG_OK) {
            const char *params[3] = {ver, m->file, sum};
            res = PQexecParams(pg->conn,
                               "INSERT INTO oms_schema_migrations (version, name, checksum) "
                               "VALUES ($1::int, $2, $3)",
                               3, NULL, params, NULL, NULL, 0);
            r = pg_classify(pg, res, PGRES_COMMAND_OK, err, sizeof err);
            PQclear(res);
        }
        if (r == PG_OK)
            r = pg_command(pg, "COMMIT", err, sizeof err);
        if (r != PG_OK) {
            char ignored[64];
            pg_command(pg, "ROLLBACK", ignored, sizeof ignored);
            oms_errf(errbuf, errlen, "migration %s failed: %s", m->file, err);
            return oms_pg_connected(pg) ? OMS_ESCHEMA : OMS_EIO;
        }
        current = m->version;
        if (to)
            *to = current;
    }
    return OMS_OK;
}

int oms_pg_migrate(oms_pg *pg, int *from, int *to, char *errbuf, size_t errlen)
{
    char err[512];
    PGresult *res = PQexec(pg->conn, "SELECT pg_advisory_lock(" MIGRATION_LOCK ")");
    int r = pg_classify(pg, res, PGRES_TUPLES_OK, err, sizeof err);
    PQclear(res);
    if (r != PG_OK) {
        oms_errf(errbuf, errlen, "cannot take the migration lock: %s", err);
        return OMS_EIO;
    }
    /* no statement timeout for the migrations themselves */
    pg_command(pg, "SET statement_timeout = 0", err, sizeof err);
    int rc = migrate_locked(pg, from, to, errbuf, errlen);
    pg_command(pg, "RESET statement_timeout", err, sizeof err);
    res = PQexec(pg->conn, "SELECT pg_advisory_unlock(" MIGRATION_LOCK ")");
    PQclear(res);
    return rc;
}
