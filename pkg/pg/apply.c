/* apply.c — one batch, one transaction: the offsets check, the folded
 * effects, the bisection of records that break a constraint, the offsets. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg/pg_internal.h"

typedef struct apply_ctx {
    oms_pg *pg;
    oms_pg_record *recs;
    pg_fold fold;
    oms_pg_apply_stats st;
    char err[512];
} apply_ctx;

/* Apply the records at idx[0..n): PG_OK, PG_DATA (a record's data broke a
 * rule: err says how) or PG_FAIL. */
static int apply_set(apply_ctx *a, const size_t *idx, size_t n)
{
    if (pg_fold_build(&a->fold, a->recs, idx, n) != OMS_OK) {
        snprintf(a->err, sizeof a->err, "out of memory");
        return PG_FAIL;
    }
    for (int q = PG_FOLD_FIRST; q < PG_FOLD_FIRST + PG_FOLD_COUNT; q++) {
        if (!a->fold.rows[q])
            continue;
        pg_params params = {0};
        for (int c = 0; c < pg_query_nparams[q]; c++)
            if (!pg_params_array(&params, &a->fold.cols[q][c])) {
                snprintf(a->err, sizeof a->err, "out of memory");
                return PG_FAIL;
            }
        a->st.statements++;
        int rc = pg_exec(a->pg, (pg_query)q, &params, NULL, a->err, sizeof a->err);
        if (rc != PG_OK)
            return rc;
    }
    return PG_OK;
}

static int savepoint(apply_ctx *a, const char *sql)
{
    a->st.statements++;
    return pg_command(a->pg, sql, a->err, sizeof a->err) == PG_OK ? PG_OK : PG_FAIL;
}

/* Apply idx[0..n) under a savepoint; when a record's data is at fault, roll
 * the savepoint back and split, down to the single records, which are
 * marked rejected. Order is kept, so every record sees the effects of the
 * good records before it, as it would one at a time. PG_OK or PG_FAIL. */
static int bisect(apply_ctx *a, const size_t *idx, size_t n)
{
    if (n == 0)
        return PG_OK;
    if (savepoint(a, "SAVEPOINT oms_b") != PG_OK)
        return PG_FAIL;
    int rc = apply_set(a, idx, n);
    if (rc == PG_OK)
        return savepoint(a, "RELEASE SAVEPOINT oms_b");
    if (rc == PG_FAIL)
        return PG_FAIL;
    char why[sizeof a->err];
    memcpy(why, a->err, sizeof why);
    if (savepoint(a, "ROLLBACK TO SAVEPOINT oms_b") != PG_OK ||
        savepoint(a, "RELEASE SAVEPOINT oms_b") != PG_OK)
        return PG_FAIL;
    if (n == 1) {
        oms_pg_record *r = &a->recs[idx[0]];
        r->rejected = true;
        snprintf(r->reason, sizeof r->reason, "%.*s", (int)sizeof r->reason - 1, why);
        a->st.rejected++;
        return PG_OK;
    }
    size_t half = n / 2;
    rc = bisect(a, idx, half);
    return rc == PG_OK ? bisect(a, idx + half, n - half) : rc;
}

/* Check and store the cursors' offsets (oms_offsets_advance): PG_OK,
 * PG_MOVED (a stored offset is not the expected one) or PG_FAIL. */
static int advance(apply_ctx *a, const char *group, const oms_pg_cursor *cur, size_t ncur)
{
    pg_array arr[4];
    memset(arr, 0, sizeof arr);
    int rc = PG_FAIL;
    pg_params params = {0};
    pg_params_text(&params, group);
    if (pg_cursor_arrays(cur, ncur, arr) != OMS_OK || !pg_params_array(&params, &arr[0]) ||
        !pg_params_array(&params, &arr[1]) || !pg_params_array(&params, &arr[2]) ||
        !pg_params_array(&params, &arr[3])) {
        snprintf(a->err, sizeof a->err, "out of memory");
    } else {
        a->st.statements++;
        rc = pg_exec(a->pg, PG_Q_OFFSETS_ADVANCE, &params, NULL, a->err, sizeof a->err);
        if (rc == PG_DATA)
            rc = PG_FAIL; /* not a record's fault */
    }
    for (int i = 0; i < 4; i++)
        pg_array_free(&arr[i]);
    return rc;
}

int oms_pg_apply(oms_pg *pg, const char *group, oms_pg_record *recs, size_t n,
                 const oms_pg_cursor *cursors, size_t ncursors,
                 oms_pg_before_commit before_commit, void *ctx, oms_pg_apply_stats *st,
                 char *errbuf, size_t errlen)
{
    if (pg && pg->inflight) {
        oms_errf(errbuf, errlen, "an apply is in flight");
        return OMS_EINVAL;
    }
    if (!oms_pg_connected(pg)) {
        oms_errf(errbuf, errlen, "not connected to postgres");
        return OMS_EIO;
    }
    apply_ctx *a = calloc(1, sizeof *a);
    size_t *idx = malloc((n ? n : 1) * sizeof *idx);
    if (!a || !idx) {
        free(a);
        free(idx);
        oms_errf(errbuf, errlen, "out of memory");
        return OMS_ENOMEM;
    }
    a->pg = pg;
    a->recs = recs;
    size_t nidx = 0;
    for (size_t i = 0; i < n; i++) {
        if (!recs[i].ev)
            continue;
        recs[i].rejected = false;
        recs[i].reason[0] = '\0';
        idx[nidx++] = i;
    }
    int rc = OMS_EIO;
    const char *stage = "begin";
    a->st.statements++;
    if (pg_command(pg, "BEGIN", a->err, sizeof a->err) != PG_OK)
        goto fail;
    stage = "offsets";
    int r = advance(a, group, cursors, ncursors);
    if (r == PG_MOVED)
        rc = OMS_EEXPIRED;
    if (r != PG_OK)
        goto fail;
    stage = "apply";
    if (nidx) {
        /* the whole batch first, under a savepoint so that a constraint
         * error costs only the bisection, not the transaction */
        if (savepoint(a, "SAVEPOINT oms_all") != PG_OK)
            goto fail;
        r = apply_set(a, idx, nidx);
        if (r == PG_FAIL)
            goto fail;
        if (r == PG_DATA) {
            if (savepoint(a, "ROLLBACK TO SAVEPOINT oms_all") != PG_OK ||
                bisect(a, idx, nidx) != PG_OK)
                goto fail;
        }
    }
    a->st.applied = nidx - a->st.rejected;
    if (before_commit) {
        int brc = before_commit(ctx, recs, n);
        if (brc != OMS_OK) {
            rc = brc;
            snprintf(a->err, sizeof a->err, "the commit hook failed");
            stage = "before commit";
            goto fail;
        }
    }
    stage = "commit";
    a->st.statements++;
    if (pg_command(pg, "COMMIT", a->err, sizeof a->err) != PG_OK)
        goto fail;
    if (st)
        *st = a->st;
    pg_fold_free(&a->fold);
    free(a);
    free(idx);
    return OMS_OK;

fail:
    if (oms_pg_connected(pg)) {
        char ignored[128];
        pg_command(pg, "ROLLBACK", ignored, sizeof ignored);
    }
    oms_errf(errbuf, errlen, "%s: %s", stage, a->err);
    if (st)
        *st = a->st;
    pg_fold_free(&a->fold);
    free(a);
    free(idx);
    return rc;
}
