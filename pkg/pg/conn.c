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

/* The keywords given to libpq, in order: later ones win, and an empty
 * value is skipped (libpq falls back to its PG* variables and defaults). */
#define PG_MAX_KEYS (24 + OMS_CONFIG_MAX_PROPS)
typedef struct {
    const char *keys[PG_MAX_KEYS + 1];
    const char *vals[PG_MAX_KEYS + 1];
    int n;
    int expand; /* expand_dbname: the URL is the dbname */
    char port[16], timeout[16];
} pg_conn_params;

static void add(pg_conn_params *p, const char *k, const char *v)
{
    if (v && *v && p->n < PG_MAX_KEYS) {
        p->keys[p->n] = k;
        p->vals[p->n] = v;
        p->n++;
    }
    p->keys[p->n] = NULL;
    p->vals[p->n] = NULL;
}

/* Keywords, never a conninfo string built from pieces: a value with a space
 * or a quote cannot change the meaning. Without database.url, expand_dbname
 * = 0 keeps the database name a name; with it, the URL comes last so its
 * own parameters win over ours. Keepalives notice a vanished server.
 * synchronous_commit off: see pg.h (offsets commit with their effects). */
static void conn_params(const oms_config *cfg, const char *app, int connect_timeout_s,
                        pg_conn_params *p)
{
    memset(p, 0, sizeof *p);
    snprintf(p->port, sizeof p->port, "%d", cfg->database.port);
    snprintf(p->timeout, sizeof p->timeout, "%d", connect_timeout_s > 0 ? connect_timeout_s : 5);
    const char *url = cfg->database.url ? cfg->database.url : "";
    if (!*url) {
        add(p, "host", cfg->database.host);
        add(p, "port", p->port);
        add(p, "user", cfg->database.user);
        add(p, "dbname", cfg->database.name);
    }
    add(p, "password", cfg->database.password);
    add(p, "application_name", app ? app : "oms");
    add(p, "connect_timeout", p->timeout);
    add(p, "client_encoding", "UTF8");
    add(p, "options", "-c statement_timeout=60000 -c synchronous_commit=off");
    add(p, "keepalives", "1");
    add(p, "keepalives_idle", "10");
    add(p, "keepalives_interval", "5");
    add(p, "keepalives_count", "3");
    add(p, "sslmode", cfg->database.sslmode);
    add(p, "sslrootcert", cfg->database.sslrootcert);
    for (size_t i = 0; i < cfg->database.nparams; i++)
        add(p, cfg->database.params[i].key, cfg->database.params[i].value);
    if (*url) {
        add(p, "dbname", url);
        p->expand = 1;
    }
}

void oms_pg_describe(const oms_config *cfg, char *buf, size_t len)
{
    const char *url = cfg->database.url ? cfg->database.url : "";
    if (!*url) {
        snprintf(buf, len, "'%s:%d' database '%s'", cfg->database.host, cfg->database.port,
                 cfg->database.name);
        return;
    }
    /* Only host, port and dbname: the URL may hold a password. */
    const char *host = "", *port = "", *db = "";
    PQconninfoOption *opts = PQconninfoParse(url, NULL);
    for (PQconninfoOption *o = opts; o && o->keyword; o++) {
        if (!o->val)
            continue;
        if (strcmp(o->keyword, "host") == 0 || (strcmp(o->keyword, "hostaddr") == 0 && !*host))
            host = o->val;
        else if (strcmp(o->keyword, "port") == 0)
            port = o->val;
        else if (strcmp(o->keyword, "dbname") == 0)
            db = o->val;
    }
    if (!opts)
        snprintf(buf, len, "database.url (unparsable)");
    else
        snprintf(buf, len, "'%s%s%s' database '%s' (database.url)", *host ? host : "local socket",
                 *port ? ":" : "", port, *db ? db : "(default)");
    PQconninfoFree(opts);
}

int oms_pg_check_config(const oms_config *cfg, char *errbuf, size_t errlen)
{
    const char *url = cfg->database.url ? cfg->database.url : "";
    if (*url) {
        char *err = NULL;
        PQconninfoOption *opts = PQconninfoParse(url, &err);
        if (!opts) {
            char msg[256];
            snprintf(msg, sizeof msg, "%s", err ? err : "out of memory");
            chomp(msg);
            PQfreemem(err);
            /* libpq's message names the part at fault, never the password */
            oms_errf(errbuf, errlen, "database.url (or DATABASE_URL): %s", msg);
            return OMS_ECONFIG;
        }
        PQconninfoFree(opts);
    }
    PQconninfoOption *defs = PQconndefaults();
    if (!defs) {
        oms_errf(errbuf, errlen, "out of memory");
        return OMS_ENOMEM;
    }
    int rc = OMS_OK;
    for (size_t i = 0; i < cfg->database.nparams && rc == OMS_OK; i++) {
        const char *k = cfg->database.params[i].key;
        const PQconninfoOption *o = defs;
        while (o->keyword && strcmp(o->keyword, k) != 0)
            o++;
        if (!o->keyword) {
            oms_errf(errbuf, errlen, "database.params: '%s' is not a libpq connection parameter",
                     k);
            rc = OMS_ECONFIG;
        }
    }
    PQconninfoFree(defs);
    return rc;
}

bool oms_pg_ping(const oms_config *cfg, int connect_timeout_s)
{
    pg_conn_params p;
    conn_params(cfg, "oms-ping", connect_timeout_s, &p);
    return PQpingParams(p.keys, p.vals, p.expand) == PQPING_OK;
}

oms_pg *oms_pg_connect(const oms_config *cfg, const char *app, int connect_timeout_s,
                       char *errbuf, size_t errlen)
{
    oms_pg *pg = calloc(1, sizeof *pg);
    if (!pg) {
        oms_errf(errbuf, errlen, "out of memory");
        return NULL;
    }
    oms_pg_describe(cfg, pg->where, sizeof pg->where);
    pg_conn_params p;
    conn_params(cfg, app, connect_timeout_s, &p);
    pg->conn = PQconnectdbParams(p.keys, p.vals, p.expand);
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
