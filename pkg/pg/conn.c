/* conn.c — the libpq connection and statement helpers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg/pg_internal.h"

/* libpq reports notices (e.g. "relation already exists, skipping") on stderr
 * by default; they are not errors for us. */
static void on_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

/* libpq's messages may span lines and end with a newline; ours are one line. */
static void chomp(char *s)
{
    char *w = s;
    for (const char *r = s; *r; r++) {
        if (*r == '\n' || *r == '\t') {
            if (w > s && w[-1] != ' ')
                *w++ = ' ';
        } else {
            *w++ = *r;
        }
    }
    while (w > s && w[-1] == ' ')
        w--;
    *w = '\0';
}

oms_pg *oms_pg_connect(const oms_config *cfg, const char *app, int connect_timeout_s,
                       char *errbuf, size_t errlen)
{
    oms_pg *pg = calloc(1, sizeof *pg);
    if (!pg) {
        oms_errf(errbuf, errlen, "out of memory");
        return NULL;
    }
    char port[16], timeout[16];
    snprintf(port, sizeof port, "%d", cfg->database.port);
    snprintf(timeout, sizeof timeout, "%d", connect_timeout_s > 0 ? connect_timeout_s : 5);
    snprintf(pg->where, sizeof pg->where, "'%s:%d' database '%s'", cfg->database.host,
             cfg->database.port, cfg->database.name);
    /* Keywords, never a conninfo string built from pieces: a value with a
     * space or a quote cannot change the meaning. expand_dbname = 0 keeps the
     * database name a name. Keepalives notice a vanished server.
     * synchronous_commit off: see pg.h (offsets commit with their effects). */
    const char *const keys[] = {"host",
                                "port",
                                "user",
                                "password",
                                "dbname",
                                "application_name",
                                "connect_timeout",
                                "client_encoding",
                                "options",
                                "keepalives",
                                "keepalives_idle",
                                "keepalives_interval",
                                "keepalives_count",
                                NULL};
    const char *const vals[] = {cfg->database.host,
                                port,
                                cfg->database.user,
                                cfg->database.password ? cfg->database.password : "",
                                cfg->database.name,
                                app ? app : "oms",
                                timeout,
                                "UTF8",
                                "-c statement_timeout=60000 -c synchronous_commit=off",
                                "1",
                                "10",
                                "5",
                                "3",
                                NULL};
    pg->conn = PQconnectdbParams(keys, vals, 0);
    if (!pg->conn || PQstatus(pg->conn) != CONNECTION_OK) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", pg->conn ? PQerrorMessage(pg->conn) : "out of memory");
        chomp(msg);
        oms_errf(errbuf, errlen, "cannot connect to postgres at %s: %s", pg->where, msg);
        oms_pg_free(pg);
        return NULL;
    }
    PQsetNoticeProcessor(pg->conn, on_notice, NULL);
    return pg;
}

void oms_pg_free(oms_pg *pg)
{
    if (!pg)
        return;
    if (pg->conn)
        PQfinish(pg->conn);
    free(pg);
}

bool oms_pg_connected(const oms_pg *pg)
{
    return pg && pg->conn && !pg->broken && PQstatus(pg->conn) == CONNECTION_OK;
}

PGconn *oms_pg_handle(oms_pg *pg)
{
    return pg ? pg->conn : NULL;
}

int pg_classify(oms_pg *pg, const PGresult *res, int ok_status, char *errbuf, size_t errlen)
{
    if (res && (int)PQresultStatus(res) == ok_status)
        return PG_OK;
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    const char *detail = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL) : NULL;
    if (primary) {
        oms_errf(errbuf, errlen, "%s %s%s%s%s", state ? state : "", primary, detail ? " (" : "",
                 detail ? detail : "", detail ? ")" : "");
    } else {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", PQerrorMessage(pg->conn));
        chomp(msg);
        oms_errf(errbuf, errlen, "%s", *msg ? msg : "no answer from the server");
    }
    /* Class 22 (data exception) and 23 (integrity constraint violation):
     * the data of a record broke a rule; the same statement would fail again.
     * Anything else (connection, timeout, deadlock, ...) may pass later. */
    if (state && PQstatus(pg->conn) == CONNECTION_OK &&
        (strncmp(state, "22", 2) == 0 || strncmp(state, "23", 2) == 0))
        return PG_DATA;
    if (state && strcmp(state, "OMS01") == 0)
        return PG_MOVED;
    return PG_FAIL;
}

int pg_command(oms_pg *pg, const char *sql, char *errbuf, size_t errlen)
{
    PGresult *res = PQexec(pg->conn, sql);
    int rc = pg_classify(pg, res, PGRES_COMMAND_OK, errbuf, errlen);
    PQclear(res);
    return rc;
}

void pg_query_name(pg_query q, char buf[16])
{
    snprintf(buf, 16, "oms_q%d", (int)q);
}

int pg_prepare(oms_pg *pg, pg_query q, char *errbuf, size_t errlen)
{
    if (pg->prepared[q])
        return PG_OK;
    char name[16];
    pg_query_name(q, name);
    PGresult *res = PQprepare(pg->conn, name, pg_query_sql[q], pg_query_nparams[q], NULL);
    int rc = pg_classify(pg, res, PGRES_COMMAND_OK, errbuf, errlen);
    PQclear(res);
    if (rc != PG_OK)
        return PG_FAIL; /* a statement that does not prepare is no record's fault */
    pg->prepared[q] = true;
    return PG_OK;
}

int pg_exec(oms_pg *pg, pg_query q, const pg_params *params, PGresult **out, char *errbuf,
            size_t errlen)
{
    char name[16];
    if (pg_prepare(pg, q, errbuf, errlen) != PG_OK)
        return PG_FAIL;
    pg_query_name(q, name);
    PGresult *res = PQexecPrepared(pg->conn, name, params->n, params->values, params->lengths,
                                   params->formats, 0);
    ExecStatusType want = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (want != PGRES_TUPLES_OK)
        want = PGRES_COMMAND_OK;
    int rc = pg_classify(pg, res, (int)want, errbuf, errlen);
    if (rc == PG_OK && out)
        *out = res;
    else
        PQclear(res);
    return rc;
}
