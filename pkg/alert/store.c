/* store.c — the Postgres record of the alert notices (see alert.h). */
#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "alert.h"

/* Advisory lock keys: the bytes "oms-alrt" and "oms-dgst" as integers. */
#define LOCK_RATE "7957128161092170868"
#define LOCK_DIGEST "7957128163094033268"

/* The error of res (or of the connection) into errbuf; OMS_EEXPIRED for
 * SQLSTATE OMS01 (the stored offsets moved), else OMS_EIO. Clears res. */
static int fail(PGconn *c, PGresult *res, const char *what, char *errbuf, size_t errlen)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = res ? PQresultErrorMessage(res) : PQerrorMessage(c);
    char clean[300];
    size_t j = 0;
    for (size_t i = 0; msg && msg[i] && j + 1 < sizeof clean; i++)
        clean[j++] = msg[i] == '\n' ? ' ' : msg[i];
    while (j && clean[j - 1] == ' ')
        j--;
    clean[j] = '\0';
    int rc = state && strcmp(state, "OMS01") == 0 ? OMS_EEXPIRED : OMS_EIO;
    oms_errf(errbuf, errlen, "alerts: %s: %s", what, clean[0] ? clean : "connection lost");
    PQclear(res);
    if (PQtransactionStatus(c) == PQTRANS_INERROR || PQtransactionStatus(c) == PQTRANS_INTRANS)
        PQclear(PQexec(c, "ROLLBACK"));
    return rc;
}

static bool cmd_ok(PGresult *r)
{
    return r && (PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK);
}

static int exec0(PGconn *c, const char *sql, const char *what, char *errbuf, size_t errlen)
{
    PGresult *r = PQexec(c, sql);
    if (!cmd_ok(r))
        return fail(c, r, what, errbuf, errlen);
    PQclear(r);
    return 0;
}

int oms_alert_store_position(PGconn *c, const char *group, const char *topic, int32_t partition,
                             int64_t initial, int64_t *next, char *errbuf, size_t errlen)
{
    char p[16], init[24];
    snprintf(p, sizeof p, "%d", (int)partition);
    snprintf(init, sizeof init, "%" PRId64, initial < 0 ? 0 : initial);
    const char *v[] = {group, topic, p, init};
    PGresult *r = PQexecParams(c,
                               "WITH ins AS (INSERT INTO oms_offsets (group_id, topic, partition, "
                               "next_offset) VALUES ($1, $2, $3::int, $4::bigint) ON CONFLICT DO "
                               "NOTHING RETURNING next_offset) "
                               "SELECT next_offset FROM ins UNION ALL SELECT next_offset FROM "
                               "oms_offsets WHERE group_id = $1 AND topic = $2 AND partition = $3::int",
                               4, NULL, v, NULL, NULL, 0);
    if (!cmd_ok(r) || PQntuples(r) < 1)
        return fail(c, r, "cannot read the stored offset", errbuf, errlen);
    *next = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return 0;
}

/* oms_offsets_advance() for one partition, inside the caller's transaction. */
static int advance(PGconn *c, const char *group, const char *topic, int32_t partition,
                   int64_t expected, int64_t next, char *errbuf, size_t errlen)
{
    char t[300], p[16], e[24], n[24];
    /* an array literal: the topic name is [a-zA-Z0-9._-] (config-checked) */
    snprintf(t, sizeof t, "{\"%s\"}", topic);
    snprintf(p, sizeof p, "{%d}", (int)partition);
    snprintf(e, sizeof e, "{%" PRId64 "}", expected);
    snprintf(n, sizeof n, "{%" PRId64 "}", next);
    const char *v[] = {group, t, p, e, n};
    PGresult *r = PQexecParams(c,
                               "SELECT oms_offsets_advance($1, $2::text[], $3::int[], "
                               "$4::bigint[], $5::bigint[])",
                               5, NULL, v, NULL, NULL, 0);
    if (!cmd_ok(r))
        return fail(c, r, "cannot store the offset", errbuf, errlen);
    PQclear(r);
    return 0;
}

int oms_alert_store_advance(PGconn *c, const char *group, const char *topic, int32_t partition,
                            int64_t expected, int64_t next, char *errbuf, size_t errlen)
{
    int rc = exec0(c, "BEGIN", "begin", errbuf, errlen);
    if (!rc)
        rc = advance(c, group, topic, partition, expected, next, errbuf, errlen);
    if (!rc)
        rc = exec0(c, "COMMIT", "commit", errbuf, errlen);
    return rc;
}

int oms_alert_store_claim(PGconn *c, const char *group, const char *topic, int32_t partition,
                          int64_t expected, int64_t offset, const char *event_id,
                          const char *event_type, const char *summary, int max_per_minute,
                          oms_alert_decision *d, char *errbuf, size_t errlen)
{
    int rc = exec0(c, "BEGIN", "begin", errbuf, errlen);
    /* the records before this one raised nothing: the offset moves up to
     * it, and the check proves we still own the partition */
    if (!rc)
        rc = advance(c, group, topic, partition, expected, offset, errbuf, errlen);
    if (rc)
        return rc;
    const char *v1[] = {event_id};
    PGresult *r = PQexecParams(c, "SELECT mode, sent_at IS NOT NULL FROM alert_notices "
                                  "WHERE event_id = $1",
                               1, NULL, v1, NULL, NULL, 0);
    if (!cmd_ok(r))
        return fail(c, r, "cannot read the notice record", errbuf, errlen);
    bool have = PQntuples(r) > 0;
    bool single = have && strcmp(PQgetvalue(r, 0, 0), "single") == 0;
    bool sent = have && strcmp(PQgetvalue(r, 0, 1), "t") == 0;
    PQclear(r);
    if (have) {
        *d = single && !sent ? OMS_ALERT_SEND : OMS_ALERT_DONE;
    } else {
        /* instances decide one after the other, so together they keep to
         * max_per_minute */
        rc = exec0(c, "SELECT pg_advisory_xact_lock(" LOCK_RATE ")", "lock", errbuf, errlen);
        if (rc)
            return rc;
        r = PQexec(c, "SELECT count(*) FROM alert_notices WHERE mode = 'single' AND "
                      "decided_at > now() - interval '60 seconds'");
        if (!cmd_ok(r))
            return fail(c, r, "cannot count the recent notices", errbuf, errlen);
        long long recent = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        PQclear(r);
        *d = recent < max_per_minute ? OMS_ALERT_SEND : OMS_ALERT_FOLDED;
        char p[16], o[24];
        snprintf(p, sizeof p, "%d", (int)partition);
        snprintf(o, sizeof o, "%" PRId64, offset);
        const char *v[] = {event_id, event_type, topic, p, o,
                           *d == OMS_ALERT_SEND ? "single" : "folded", summary};
        /* clock_timestamp(): the decision time, not the transaction's start
         * (which the lock wait may have delayed) */
        r = PQexecParams(c,
                         "INSERT INTO alert_notices (event_id, event_type, topic, partition, "
                         "\"offset\", mode, summary, decided_at) VALUES ($1, $2, $3, $4::int, "
                         "$5::bigint, $6, $7, clock_timestamp())",
                         7, NULL, v, NULL, NULL, 0);
        if (!cmd_ok(r))
            return fail(c, r, "cannot record the notice", errbuf, errlen);
        PQclear(r);
    }
    if (*d != OMS_ALERT_SEND &&
        (rc = advance(c, group, topic, partition, offset, offset + 1, errbuf, errlen)))
        return rc;
    return exec0(c, "COMMIT", "commit", errbuf, errlen);
}

int oms_alert_store_done(PGconn *c, const char *group, const char *topic, int32_t partition,
                         int64_t offset, const char *event_id, char *errbuf, size_t errlen)
{
    int rc = exec0(c, "BEGIN", "begin", errbuf, errlen);
    if (!rc)
        rc = advance(c, group, topic, partition, offset, offset + 1, errbuf, errlen);
    if (rc)
        return rc;
    const char *v[] = {event_id};
    PGresult *r = PQexecParams(c, "UPDATE alert_notices SET sent_at = clock_timestamp() "
                                  "WHERE event_id = $1",
                               1, NULL, v, NULL, NULL, 0);
    if (!cmd_ok(r))
        return fail(c, r, "cannot record the notice as sent", errbuf, errlen);
    PQclear(r);
    return exec0(c, "COMMIT", "commit", errbuf, errlen);
}

/* ---- digests -------------------------------------------------------------------------- */

void oms_alert_digest_clear(oms_alert_digest *dg)
{
    for (size_t i = 0; i < dg->count; i++)
        free(dg->lines[i]);
    free(dg->lines);
    memset(dg, 0, sizeof *dg);
}

void oms_alert_store_digest_release(PGconn *c)
{
    PQclear(PQexec(c, "SELECT pg_advisory_unlock(" LOCK_DIGEST ")"));
}

static void new_uuid(char out[37])
{
    unsigned char b[16];
    if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b) {
        /* cannot happen on Linux >= 3.17 for 16 bytes; still unique enough */
        uint64_t t = (uint64_t)oms_now_ms(), m = oms_mono_ns();
        memcpy(b, &t, sizeof t);
        memcpy(b + 8, &m, sizeof m);
    }
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    snprintf(out, 37,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
             b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
             b[15]);
}

static int load_lines(PGconn *c, oms_alert_digest *dg, char *errbuf, size_t errlen)
{
    const char *v[] = {dg->id};
    PGresult *r = PQexecParams(c,
                               "SELECT summary, (extract(epoch FROM decided_at) * 1000)::bigint "
                               "FROM alert_notices WHERE digest_id = $1::uuid "
                               "ORDER BY decided_at, event_id",
                               1, NULL, v, NULL, NULL, 0);
    if (!cmd_ok(r))
        return fail(c, r, "cannot read the digest", errbuf, errlen);
    int n = PQntuples(r);
    dg->lines = calloc(n ? (size_t)n : 1, sizeof *dg->lines);
    if (!dg->lines) {
        PQclear(r);
        return OMS_ENOMEM;
    }
    for (int i = 0; i < n; i++) {
        dg->lines[i] = strdup(PQgetvalue(r, i, 0));
        if (!dg->lines[i]) {
            PQclear(r);
            return OMS_ENOMEM;
        }
        dg->count++;
        int64_t ms = strtoll(PQgetvalue(r, i, 1), NULL, 10);
        if (i == 0)
            dg->first_ms = ms;
        dg->last_ms = ms;
    }
    PQclear(r);
    return 0;
}

int oms_alert_store_digest_take(PGconn *c, int interval_s, oms_alert_digest *dg, char *errbuf,
                                size_t errlen)
{
    memset(dg, 0, sizeof *dg);
    PGresult *r = PQexec(c, "SELECT pg_try_advisory_lock(" LOCK_DIGEST ")");
    if (!cmd_ok(r))
        return fail(c, r, "cannot take the digest lock", errbuf, errlen);
    bool locked = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    PQclear(r);
    if (!locked)
        return 0; /* another instance sends digests */
    r = PQexec(c, "SELECT digest_id FROM alert_digests WHERE sent_at IS NULL "
                  "ORDER BY created_at LIMIT 1");
    if (!cmd_ok(r)) {
        int rc = fail(c, r, "cannot read the digests", errbuf, errlen);
        oms_alert_store_digest_release(c);
        return rc;
    }
    int rc = 0;
    if (PQntuples(r) == 1) {
        snprintf(dg->id, sizeof dg->id, "%s", PQgetvalue(r, 0, 0));
        PQclear(r);
    } else {
        PQclear(r);
        char iv[16];
        snprintf(iv, sizeof iv, "%d", interval_s);
        new_uuid(dg->id);
        const char *v[] = {iv, dg->id};
        rc = exec0(c, "BEGIN", "begin", errbuf, errlen);
        if (rc)
            goto fail;
        r = PQexecParams(c,
                         "SELECT 1 FROM alert_notices WHERE mode = 'folded' AND digest_id IS NULL "
                         "AND decided_at <= now() - make_interval(secs => $1::int) LIMIT 1",
                         1, NULL, v, NULL, NULL, 0);
        if (!cmd_ok(r)) {
            rc = fail(c, r, "cannot read the folded notices", errbuf, errlen);
            goto fail;
        }
        bool due = PQntuples(r) > 0;
        PQclear(r);
        if (!due) {
            exec0(c, "COMMIT", "commit", errbuf, errlen);
            oms_alert_store_digest_release(c);
            memset(dg, 0, sizeof *dg);
            return 0;
        }
        r = PQexecParams(c,
                         "WITH d AS (UPDATE alert_notices SET digest_id = $1::uuid WHERE mode = "
                         "'folded' AND digest_id IS NULL RETURNING 1) "
                         "INSERT INTO alert_digests (digest_id, notices) "
                         "SELECT $1::uuid, count(*) FROM d",
                         1, NULL, v + 1, NULL, NULL, 0);
        if (!cmd_ok(r)) {
            rc = fail(c, r, "cannot record the digest", errbuf, errlen);
            goto fail;
        }
        PQclear(r);
        if ((rc = exec0(c, "COMMIT", "commit", errbuf, errlen)))
            goto fail;
    }
    if ((rc = load_lines(c, dg, errbuf, errlen)))
        goto fail;
    return 1;
fail:
    oms_alert_digest_clear(dg);
    oms_alert_store_digest_release(c);
    return rc;
}

int oms_alert_store_digest_done(PGconn *c, const char *id, char *errbuf, size_t errlen)
{
    const char *v[] = {id};
    PGresult *r = PQexecParams(c, "UPDATE alert_digests SET sent_at = clock_timestamp() "
                                  "WHERE digest_id = $1::uuid",
                               1, NULL, v, NULL, NULL, 0);
    if (!cmd_ok(r))
        return fail(c, r, "cannot record the digest as sent", errbuf, errlen);
    PQclear(r);
    oms_alert_store_digest_release(c);
    return 0;
}

int oms_alert_store_counts(PGconn *c, oms_alert_counts *out, char *errbuf, size_t errlen)
{
    PGresult *r = PQexec(
        c, "SELECT count(*) FILTER (WHERE mode = 'single' AND sent_at IS NOT NULL), "
           "count(*) FILTER (WHERE mode = 'single' AND sent_at IS NULL), "
           "count(*) FILTER (WHERE mode = 'folded'), "
           "count(*) FILTER (WHERE mode = 'folded' AND (digest_id IS NULL OR digest_id IN "
           "(SELECT digest_id FROM alert_digests WHERE sent_at IS NULL))), "
           "(SELECT count(*) FROM alert_digests WHERE sent_at IS NOT NULL), "
           "(SELECT count(*) FROM alert_digests WHERE sent_at IS NULL), "
           "coalesce((extract(epoch FROM max(sent_at)) * 1000)::bigint, -1) "
           "FROM alert_notices");
    if (!cmd_ok(r) || PQntuples(r) != 1)
        return fail(c, r, "cannot count the notices", errbuf, errlen);
    int64_t *f[] = {&out->sent,    &out->pending,         &out->folded,      &out->folded_pending,
                    &out->digests, &out->digests_pending, &out->last_sent_ms};
    for (int i = 0; i < 7; i++)
        *f[i] = strtoll(PQgetvalue(r, 0, i), NULL, 10);
    PQclear(r);
    return 0;
}
