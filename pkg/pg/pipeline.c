/* pipeline.c — a batch in one round trip: the whole transaction (BEGIN,
 * offsets check and store, the folded effects, COMMIT) sent in libpq
 * pipeline mode, its outcome collected later, so that the caller can read
 * and decode the next batch while Postgres works on this one. */
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg/pg_internal.h"

bool oms_pg_apply_pending(const oms_pg *pg)
{
    return pg && pg->inflight;
}

/* The connection is in an unknown state: only freeing it is left. */
static int lost(oms_pg *pg, const char *what, char *errbuf, size_t errlen)
{
    char msg[512];
    snprintf(msg, sizeof msg, "%s", PQerrorMessage(pg->conn));
    for (char *c = msg; *c; c++)
        if (*c == '\n' || *c == '\t')
            *c = ' ';
    pg->broken = true;
    pg->inflight = false;
    oms_errf(errbuf, errlen, "%s: %s", what, *msg ? msg : "connection lost");
    return OMS_EIO;
}

int oms_pg_apply_send(oms_pg *pg, const char *group, const oms_pg_record *recs, size_t n,
                      const oms_pg_cursor *cursors, size_t ncursors, char *errbuf,
                      size_t errlen)
{
    if (pg->inflight) {
        oms_errf(errbuf, errlen, "an apply is already in flight");
        return OMS_EINVAL;
    }
    if (!oms_pg_connected(pg)) {
        oms_errf(errbuf, errlen, "not connected to postgres");
        return OMS_EIO;
    }
    for (size_t i = 0; i < n; i++)
        if (!recs[i].ev) {
            oms_errf(errbuf, errlen, "record %zu is not decoded: use oms_pg_apply", i);
            return OMS_EINVAL;
        }
    /* statements are prepared outside the pipeline, once per connection */
    char err[512];
    for (int q = 0; q < PG_Q__COUNT; q++)
        if (pg_prepare(pg, (pg_query)q, err, sizeof err) != PG_OK) {
            oms_errf(errbuf, errlen, "prepare: %s", err);
            return OMS_EIO;
        }
    int rc = OMS_ENOMEM;
    pg_fold fold;
    memset(&fold, 0, sizeof fold);
    pg_array cur[4];
    memset(cur, 0, sizeof cur);
    size_t *idx = malloc((n ? n : 1) * sizeof *idx);
    if (!idx)
        goto out;
    for (size_t i = 0; i < n; i++)
        idx[i] = i;
    if (pg_fold_build(&fold, recs, idx, n) != OMS_OK || pg_cursor_arrays(cursors, ncursors, cur))
        goto out;
    pg_params params[PG_FOLD_COUNT], adv;
    memset(params, 0, sizeof params);
    memset(&adv, 0, sizeof adv);
    for (int q = PG_FOLD_FIRST; q < PG_FOLD_FIRST + PG_FOLD_COUNT; q++)
        for (int c = 0; fold.rows[q] && c < pg_query_nparams[q]; c++)
            if (!pg_params_array(&params[q], &fold.cols[q][c]))
                goto out;
    pg_params_text(&adv, group);
    for (int i = 0; i < 4; i++)
        if (!pg_params_array(&adv, &cur[i]))
            goto out;

    PGconn *conn = pg->conn;
    if (PQenterPipelineMode(conn) != 1) {
        rc = lost(pg, "cannot enter pipeline mode", errbuf, errlen);
        goto out;
    }
    /* non-blocking: a large batch is written out by oms_pg_apply_poll while
     * the results of its first statements come back */
    PQsetnonblocking(conn, 1);
    char name[16];
    size_t sent = 0;
    int ok = PQsendQueryParams(conn, "BEGIN", 0, NULL, NULL, NULL, NULL, 0);
    pg_query_name(PG_Q_OFFSETS_ADVANCE, name);
    ok = ok && PQsendQueryPrepared(conn, name, adv.n, adv.values, adv.lengths, adv.formats, 0);
    sent += 2;
    for (int q = PG_FOLD_FIRST; ok && q < PG_FOLD_FIRST + PG_FOLD_COUNT; q++) {
        if (!fold.rows[q])
            continue;
        pg_query_name((pg_query)q, name);
        ok = PQsendQueryPrepared(conn, name, params[q].n, params[q].values, params[q].lengths,
                                 params[q].formats, 0);
        sent++;
    }
    ok = ok && PQsendQueryParams(conn, "COMMIT", 0, NULL, NULL, NULL, NULL, 0);
    sent++;
    ok = ok && PQpipelineSync(conn);
    if (!ok || PQflush(conn) < 0) {
        /* half a transaction may be queued: this connection is done */
        rc = lost(pg, "cannot send the batch", errbuf, errlen);
        goto out;
    }
    pg->inflight = true;
    pg->outcome = PG_OK;
    pg->error[0] = '\0';
    memset(&pg->st, 0, sizeof pg->st);
    pg->st.applied = n;
    pg->st.statements = sent;
    rc = OMS_OK;
out:
    if (rc == OMS_ENOMEM)
        oms_errf(errbuf, errlen, "out of memory");
    pg_fold_free(&fold);
    for (int i = 0; i < 4; i++)
        pg_array_free(&cur[i]);
    free(idx);
    return rc;
}

int oms_pg_apply_poll(oms_pg *pg, int timeout_ms, oms_pg_apply_stats *st, char *errbuf,
                      size_t errlen)
{
    if (!pg->inflight) {
        oms_errf(errbuf, errlen, "no apply in flight");
        return OMS_EINVAL;
    }
    PGconn *conn = pg->conn;
    uint64_t start = oms_mono_ns();
    bool done = false;
    for (;;) {
        int unsent = PQflush(conn);
        if (unsent < 0 || !PQconsumeInput(conn))
            return lost(pg, "batch", errbuf, errlen);
        int nulls = 0;
        while (!done && !PQisBusy(conn)) {
            PGresult *res = PQgetResult(conn);
            if (!res) {
                if (++nulls > 1)
                    break; /* nothing more to read yet */
                continue;
            }
            nulls = 0;
            ExecStatusType s = PQresultStatus(res);
            if (s == PGRES_PIPELINE_SYNC)
                done = true;
            else if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK &&
                     s != PGRES_PIPELINE_ABORTED && pg->outcome == PG_OK)
                pg->outcome = pg_classify(pg, res, PGRES_COMMAND_OK, pg->error, sizeof pg->error);
            PQclear(res);
        }
        if (done)
            break;
        if (PQstatus(conn) != CONNECTION_OK)
            return lost(pg, "batch", errbuf, errlen);
        uint64_t waited_ms = (oms_mono_ns() - start) / 1000000u;
        if (timeout_ms >= 0 && waited_ms >= (uint64_t)timeout_ms)
            return OMS_ETIMEDOUT;
        int wait = timeout_ms < 0 ? 1000 : (int)((uint64_t)timeout_ms - waited_ms);
        struct pollfd pfd = {PQsocket(conn), (short)(POLLIN | (unsent ? POLLOUT : 0)), 0};
        if (pfd.fd < 0)
            return lost(pg, "batch", errbuf, errlen);
        poll(&pfd, 1, wait);
    }
    pg->inflight = false;
    if (PQexitPipelineMode(conn) != 1 || PQsetnonblocking(conn, 0) != 0)
        return lost(pg, "cannot leave pipeline mode", errbuf, errlen);
    if (pg->outcome != PG_OK && PQtransactionStatus(conn) != PQTRANS_IDLE) {
        PGresult *res = PQexec(conn, "ROLLBACK");
        PQclear(res);
    }
    switch (pg->outcome) {
    case PG_OK:
        if (st)
            *st = pg->st;
        return OMS_OK;
    case PG_MOVED:
        oms_errf(errbuf, errlen, "%s", pg->error);
        return OMS_EEXPIRED;
    case PG_DATA:
        oms_errf(errbuf, errlen, "%s", pg->error);
        return OMS_EINVAL;
    default:
        oms_errf(errbuf, errlen, "%s", pg->error);
        return OMS_EIO;
    }
}
