/* sstore.c — the Socket.IO session store: what each session (by pid) was
 * subscribed to and with which filters, so that connection-state recovery
 * restores the filters too, on the same instance or any other, and the
 * replay is filtered as live delivery was.
 *
 * Two places:
 *   memory    a table pid -> {user, state, stored?, live sessions}, shared
 *             by the service threads (one lock, taken per subscription
 *             change, recovery and join/leave: never per event);
 *   Postgres  ws_sessions (migration 0003), written and read by the store
 *             thread alone, with its own connection, so that no service
 *             thread ever waits on Postgres. It answers through the
 *             hand-over (XQ_SSTORE): "saved" once a state is committed, so
 *             that the client's subscription_confirmed follows the commit,
 *             and "found" for a lookup.
 * Postgres down: saves are answered OMS_EIO at once (the session goes on,
 * marked as not stored: see socketio.c) and kept in memory as not stored,
 * then written when Postgres is back; lookups are answered OMS_EIO.
 *
 * Expiry: a row not written for resume.session_ttl_s is deleted (every
 * sweep, OMS_SSTORE_SWEEP_MS, default a minute); the rows of sessions live
 * here are refreshed at each sweep; a session the client ended (DISCONNECT)
 * is deleted at once. Memory keeps a session that left for 10 minutes, an
 * hour when Postgres does not have it (at most resume.session_ttl_s). */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gateway/postoken.h"
#include "pg/pg.h"
#include "sstore.h"

#define MEM_KEEP_MS 600000           /* a stored session that left, in memory */
#define MEM_KEEP_UNSTORED_MS 3600000 /* one Postgres does not have (or no Postgres) */
#define RETRY_NS 2000000000u

enum { OP_SAVE, OP_LOOKUP, OP_DELETE };

typedef struct ss_op {
    struct ss_op *next;
    int kind;
    char pid[OMS_POSTOKEN_PID_LEN + 1];
    int64_t user_id;
    char *state;
    uint64_t version;
    bool answer;
    int worker;
    char sid[32];
    uint64_t seq;
} ss_op;

struct omsd_sstore {
    omsd *d;
    pthread_mutex_t lock; /* mem, the queue, closed */
    pthread_cond_t cond;
    json_t *mem; /* pid -> {"u": user, "s": state, "t": ms, "ok": stored, "live": n, "v": version} */
    uint64_t version;
    ss_op *head, *tail;
    atomic_bool closed;
    bool durable;
    pthread_t thread;
    /* the store thread's */
    oms_pg *pg;
    bool down;
    uint64_t retry_ns, sweep_ns;
    int64_t sweep_ms;
    bool resave;
};

void omsd_sstore_ans_free(omsd_sstore_ans *a)
{
    if (!a)
        return;
    free(a->state);
    free(a);
}

static void op_free(ss_op *op)
{
    free(op->state);
    free(op);
}

static bool pid_ok(const char *pid)
{
    return pid && strlen(pid) == OMS_POSTOKEN_PID_LEN;
}

static void push_op(struct omsd_sstore *ss, ss_op *op)
{
    /* under ss->lock */
    if (ss->tail)
        ss->tail->next = op;
    else
        ss->head = op;
    ss->tail = op;
    pthread_cond_signal(&ss->cond);
}

static void answer(struct omsd_sstore *ss, const ss_op *op, omsd_sstore_op kind, int rc,
                   int64_t user_id, char *state)
{
    omsd *d = ss->d;
    omsd_sstore_ans *a = calloc(1, sizeof *a);
    omsd_xq_item *it = a ? calloc(1, sizeof *it) : NULL;
    if (!it || op->worker < 0 || op->worker >= d->nworkers) {
        /* the session's wait is bounded (socketio.c): it goes on without */
        free(a);
        free(it);
        free(state);
        return;
    }
    a->op = kind;
    memcpy(a->sid, op->sid, sizeof a->sid);
    a->seq = op->seq;
    a->rc = rc;
    a->user_id = user_id;
    a->state = state;
    it->kind = XQ_SSTORE;
    it->sstore = a;
    omsd_xq_push(&d->workers[op->worker], it);
}

/* ---- Postgres (the store thread) ---------------------------------------------------- */

static bool pg_ready(struct omsd_sstore *ss)
{
    omsd *d = ss->d;
    if (ss->pg && oms_pg_connected(ss->pg))
        return true;
    if (ss->pg) {
        oms_pg_free(ss->pg);
        ss->pg = NULL;
    }
    uint64_t now = oms_mono_ns();
    if (now < ss->retry_ns)
        return false;
    char err[512] = "";
    ss->pg = oms_pg_connect(&d->cfg, "omsd-sessions", 2, err, sizeof err);
    int from, to = 0;
    if (ss->pg && d->cfg.projections.migrate_on_start) {
        if (oms_pg_migrate(ss->pg, &from, &to, err, sizeof err) != OMS_OK) {
            oms_pg_free(ss->pg);
            ss->pg = NULL;
        }
    } else if (ss->pg) {
        if (oms_pg_schema_version(ss->pg, &to, err, sizeof err) == OMS_OK && to < 3)
            snprintf(err, sizeof err, "schema version %d: the session table needs version 3; "
                                      "run 'omsctl projections migrate'", to);
        if (to < 3) {
            oms_pg_free(ss->pg);
            ss->pg = NULL;
        }
    }
    if (!ss->pg) {
        if (!ss->down)
            oms_log(d->log, OMS_LOG_WARN,
                    "socket.io session store: postgres unavailable; subscriptions are "
                    "confirmed without being stored, such sessions recover on this instance only",
                    OMS_LS("error", err));
        ss->down = true;
        atomic_store(&d->m.ss_up, 0);
        ss->retry_ns = now + RETRY_NS;
        return false;
    }
    /* a confirmed subscription must survive a Postgres crash too: this
     * connection waits for the WAL flush (oms_pg_connect turns it off) */
    PGresult *r = PQexec(oms_pg_handle(ss->pg), "SET synchronous_commit = on");
    PQclear(r);
    if (ss->down)
        oms_log(d->log, OMS_LOG_INFO, "socket.io session store: postgres back");
    ss->down = false;
    atomic_store(&d->m.ss_up, 1);
    ss->resave = true;
    return true;
}

/* Run a statement; true when it did what it should. */
static bool exec(struct omsd_sstore *ss, const char *sql, int n, const char *const *vals,
                 PGresult **out)
{
    PGresult *r = PQexecParams(oms_pg_handle(ss->pg), sql, n, NULL, vals, NULL, NULL, 0);
    ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    if (!ok) {
        oms_log(ss->d->log, OMS_LOG_WARN, "socket.io session store: statement failed",
                OMS_LS("error", ss->pg ? PQerrorMessage(oms_pg_handle(ss->pg)) : ""));
        if (!oms_pg_connected(ss->pg)) {
            oms_pg_free(ss->pg);
            ss->pg = NULL;
            ss->down = true;
            atomic_store(&ss->d->m.ss_up, 0);
            ss->retry_ns = oms_mono_ns() + RETRY_NS;
        }
    }
    if (ok && out)
        *out = r;
    else
        PQclear(r);
    return ok;
}

static bool upsert(struct omsd_sstore *ss, const char *pid, int64_t user_id, const char *state)
{
    char uid[24];
    snprintf(uid, sizeof uid, "%" PRId64, user_id);
    const char *v[3] = {pid, uid, state};
    return exec(ss,
                "INSERT INTO ws_sessions (pid, user_id, subscriptions, updated_at) "
                "VALUES ($1, $2::bigint, $3::jsonb, now()) ON CONFLICT (pid) DO UPDATE SET "
                "user_id = EXCLUDED.user_id, subscriptions = EXCLUDED.subscriptions, "
                "updated_at = now()",
                3, v, NULL);
}

/* The memory entry of pid is stored, unless it changed meanwhile. */
static void mark_stored(struct omsd_sstore *ss, const char *pid, uint64_t version)
{
    pthread_mutex_lock(&ss->lock);
    json_t *e = json_object_get(ss->mem, pid);
    if (e && (uint64_t)json_integer_value(json_object_get(e, "v")) == version)
        json_object_set_new(e, "ok", json_true());
    pthread_mutex_unlock(&ss->lock);
}

static void do_op(struct omsd_sstore *ss, ss_op *op)
{
    switch (op->kind) {
    case OP_SAVE: /* save_run's */
        break;
    case OP_LOOKUP: {
        PGresult *r = NULL;
        char ttl[24];
        snprintf(ttl, sizeof ttl, "%d", ss->d->cfg.resume.session_ttl_s);
        const char *v[2] = {op->pid, ttl};
        if (!pg_ready(ss) ||
            !exec(ss,
                  "SELECT user_id, subscriptions::text FROM ws_sessions WHERE pid = $1 AND "
                  "updated_at > now() - make_interval(secs => $2::int)",
                  2, v, &r)) {
            atomic_fetch_add(&ss->d->m.ss_lookups[2], 1);
            answer(ss, op, OMSD_SS_FOUND, OMS_EIO, 0, NULL);
            break;
        }
        atomic_fetch_add(&ss->d->m.ss_lookups[PQntuples(r) == 1 ? 0 : 1], 1);
        if (PQntuples(r) != 1) {
            PQclear(r);
            answer(ss, op, OMSD_SS_FOUND, OMS_ENOTFOUND, 0, NULL);
            break;
        }
        int64_t uid = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        char *st = strdup(PQgetvalue(r, 0, 1));
        PQclear(r);
        answer(ss, op, OMSD_SS_FOUND, st ? OMS_OK : OMS_EIO, uid, st);
        break;
    }
    case OP_DELETE: {
        const char *v[1] = {op->pid};
        if (pg_ready(ss))
            exec(ss, "DELETE FROM ws_sessions WHERE pid = $1", 1, v, NULL);
        break; /* down: the row expires */
    }
    }
}

/* Saves: consecutive ones (a storm of subscriptions) in one transaction,
 * one WAL flush for all of them instead of one each; a single one in its
 * own statement. All are answered after the commit, or all fail. Returns
 * the first op after them. */
#define SAVE_RUN_MAX 1000
static ss_op *save_run(struct omsd_sstore *ss, ss_op *first)
{
    ss_op *end = first;
    int n = 0;
    while (end && end->kind == OP_SAVE && n < SAVE_RUN_MAX) {
        end = end->next;
        n++;
    }
    bool tx = n > 1;
    bool ok = pg_ready(ss) && (!tx || exec(ss, "BEGIN", 0, NULL, NULL));
    for (ss_op *op = first; ok && op != end; op = op->next)
        ok = upsert(ss, op->pid, op->user_id, op->state);
    if (tx && ok)
        ok = exec(ss, "COMMIT", 0, NULL, NULL);
    else if (tx && ss->pg)
        (void)exec(ss, "ROLLBACK", 0, NULL, NULL);
    atomic_fetch_add(&ss->d->m.ss_saves[ok ? 0 : 1], (uint_fast64_t)n);
    for (ss_op *op = first; op != end;) {
        ss_op *next = op->next;
        if (ok)
            mark_stored(ss, op->pid, op->version);
        if (op->answer)
            answer(ss, op, OMSD_SS_SAVED, ok ? OMS_OK : OMS_EIO, 0, NULL);
        op_free(op);
        op = next;
    }
    return end;
}

/* Memory entries of sessions gone long enough are dropped; Postgres rows
 * past the TTL are deleted, the live sessions' refreshed, the states not
 * stored yet written. */
static void sweep(struct omsd_sstore *ss, bool full)
{
    omsd *d = ss->d;
    int64_t now = oms_now_ms();
    int64_t ttl_ms = (int64_t)d->cfg.resume.session_ttl_s * 1000;
    json_t *live = json_array(), *unsaved = json_array();
    pthread_mutex_lock(&ss->lock);
    const char *pid;
    json_t *e, *tmp;
    json_object_foreach_safe(ss->mem, tmp, pid, e)
    {
        bool stored = json_is_true(json_object_get(e, "ok"));
        int64_t t = json_integer_value(json_object_get(e, "t"));
        int64_t nlive = json_integer_value(json_object_get(e, "live"));
        int64_t keep = stored && ss->durable ? MEM_KEEP_MS : MEM_KEEP_UNSTORED_MS;
        if (keep > ttl_ms)
            keep = ttl_ms;
        if (full && nlive <= 0 && now - t > keep) {
            json_object_del(ss->mem, pid);
            continue;
        }
        if (full && nlive > 0 && live)
            json_array_append_new(live, json_string(pid));
        if (!stored && unsaved)
            json_array_append_new(unsaved, json_pack("{s:s,s:O,s:O,s:O}", "p", pid, "u",
                                                     json_object_get(e, "u"), "s",
                                                     json_object_get(e, "s"), "v",
                                                     json_object_get(e, "v")));
    }
    pthread_mutex_unlock(&ss->lock);
    if (ss->durable && pg_ready(ss)) {
        size_t i;
        json_t *x;
        json_array_foreach(unsaved, i, x)
        {
            const char *p = json_string_value(json_object_get(x, "p"));
            const char *st = json_string_value(json_object_get(x, "s"));
            if (!p || !st || !ss->pg ||
                !upsert(ss, p, json_integer_value(json_object_get(x, "u")), st))
                break;
            mark_stored(ss, p, (uint64_t)json_integer_value(json_object_get(x, "v")));
        }
        if (full && ss->pg) {
            char ttl[24];
            snprintf(ttl, sizeof ttl, "%d", d->cfg.resume.session_ttl_s);
            const char *v[1] = {ttl};
            exec(ss, "DELETE FROM ws_sessions WHERE updated_at < now() - "
                     "make_interval(secs => $1::int)", 1, v, NULL);
        }
        if (full && ss->pg && live && json_array_size(live) > 0) {
            char *arr = json_dumps(live, JSON_COMPACT);
            const char *v[1] = {arr};
            if (arr)
                exec(ss, "UPDATE ws_sessions SET updated_at = now() WHERE pid IN "
                         "(SELECT jsonb_array_elements_text($1::jsonb))", 1, v, NULL);
            free(arr);
        }
    }
    json_decref(live);
    json_decref(unsaved);
}

static void *sstore_main(void *arg)
{
    struct omsd_sstore *ss = arg;
    omsd *d = ss->d;
    if (ss->durable)
        pg_ready(ss); /* migrate early */
    ss->sweep_ns = oms_mono_ns() + (uint64_t)ss->sweep_ms * 1000000u;
    while (!atomic_load(&d->threads_stop)) {
        pthread_mutex_lock(&ss->lock);
        if (atomic_load(&ss->closed)) {
            pthread_mutex_unlock(&ss->lock);
            break;
        }
        if (!ss->head) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 200000000;
            if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
            }
            pthread_cond_timedwait(&ss->cond, &ss->lock, &ts);
        }
        ss_op *ops = ss->head;
        ss->head = ss->tail = NULL;
        pthread_mutex_unlock(&ss->lock);
        while (ops) {
            ss_op *next = ops->next;
            if (ops->kind == OP_SAVE) {
                ops = save_run(ss, ops);
                continue;
            }
            do_op(ss, ops);
            op_free(ops);
            ops = next;
        }
        uint64_t now = oms_mono_ns();
        bool full = now >= ss->sweep_ns;
        if (full)
            ss->sweep_ns = now + (uint64_t)ss->sweep_ms * 1000000u;
        if (full || (ss->resave && ss->pg)) {
            ss->resave = false;
            sweep(ss, full);
        } else if (ss->durable && ss->down && now >= ss->retry_ns) {
            pg_ready(ss); /* back: the states not stored are written at once */
        }
    }
    return NULL;
}

/* ---- the service threads' side --------------------------------------------------------- */

int omsd_sstore_start(omsd *d)
{
    atomic_store(&d->m.ss_up, d->cfg.resume.session_store ? 0 : -1);
    struct omsd_sstore *ss = calloc(1, sizeof *ss);
    if (!ss)
        return OMS_ENOMEM;
    ss->d = d;
    ss->mem = json_object();
    pthread_mutex_init(&ss->lock, NULL);
    pthread_cond_init(&ss->cond, NULL);
    ss->sweep_ms = 60000;
    const char *e = getenv("OMS_SSTORE_SWEEP_MS");
    if (e && atoll(e) >= 100 && atoll(e) <= 3600000)
        ss->sweep_ms = atoll(e);
    d->sstore = ss;
    if (!ss->mem)
        return OMS_ENOMEM;
    /* memory alone still runs the thread: it expires the table */
    ss->durable = d->cfg.resume.session_store != 0;
    if (pthread_create(&ss->thread, NULL, sstore_main, ss) != 0) {
        ss->durable = false;
        atomic_store(&d->m.ss_up, -1);
        atomic_store(&ss->closed, true);
        return OMS_EIO;
    }
    return OMS_OK;
}

void omsd_sstore_join(omsd *d)
{
    struct omsd_sstore *ss = d->sstore;
    if (!ss)
        return;
    pthread_mutex_lock(&ss->lock);
    bool running = !atomic_load(&ss->closed);
    atomic_store(&ss->closed, true);
    pthread_cond_signal(&ss->cond);
    pthread_mutex_unlock(&ss->lock);
    if (running)
        pthread_join(ss->thread, NULL);
    while (ss->head) {
        ss_op *op = ss->head;
        ss->head = op->next;
        op_free(op);
    }
    if (ss->pg)
        oms_pg_free(ss->pg);
    json_decref(ss->mem);
    pthread_mutex_destroy(&ss->lock);
    pthread_cond_destroy(&ss->cond);
    free(ss);
    d->sstore = NULL;
}

bool omsd_sstore_durable(const omsd *d)
{
    return d->sstore && d->sstore->durable && !atomic_load(&d->sstore->closed);
}

int omsd_sstore_save(omsd *d, const char *pid, int64_t user_id, const char *state, bool join,
                     bool durable, bool answer_it, int worker, const char *sid, uint64_t seq)
{
    struct omsd_sstore *ss = d->sstore;
    if (!ss || !pid_ok(pid) || !state)
        return OMS_EINVAL;
    durable = durable && omsd_sstore_durable(d);
    ss_op *op = NULL;
    if (durable) {
        op = calloc(1, sizeof *op);
        if (!op || !(op->state = strdup(state))) {
            free(op);
            return OMS_ENOMEM;
        }
        op->kind = OP_SAVE;
        memcpy(op->pid, pid, sizeof op->pid);
        op->user_id = user_id;
        op->answer = answer_it;
        op->worker = worker;
        snprintf(op->sid, sizeof op->sid, "%s", sid ? sid : "");
        op->seq = seq;
    }
    pthread_mutex_lock(&ss->lock);
    json_t *e = json_object_get(ss->mem, pid);
    int64_t nlive = (e ? json_integer_value(json_object_get(e, "live")) : 0) + (join ? 1 : 0);
    uint64_t v = ++ss->version;
    json_t *ne = json_pack("{s:I,s:s,s:I,s:b,s:I,s:I}", "u", (json_int_t)user_id, "s", state, "t",
                           (json_int_t)oms_now_ms(), "ok", !durable, "live", (json_int_t)nlive,
                           "v", (json_int_t)v);
    int rc = ne && json_object_set_new(ss->mem, pid, ne) == 0 ? OMS_OK : OMS_ENOMEM;
    if (rc == OMS_OK && op && !atomic_load(&ss->closed)) {
        op->version = v;
        push_op(ss, op);
        op = NULL;
    }
    pthread_mutex_unlock(&ss->lock);
    if (op)
        op_free(op);
    return rc;
}

int omsd_sstore_peek(omsd *d, const char *pid, int64_t *user_id, char **state, bool *stored)
{
    struct omsd_sstore *ss = d->sstore;
    *state = NULL;
    if (!ss || !pid_ok(pid))
        return OMS_ENOTFOUND;
    int rc = OMS_ENOTFOUND;
    pthread_mutex_lock(&ss->lock);
    json_t *e = json_object_get(ss->mem, pid);
    if (e) {
        *user_id = json_integer_value(json_object_get(e, "u"));
        *stored = json_is_true(json_object_get(e, "ok"));
        *state = strdup(json_string_value(json_object_get(e, "s")));
        rc = *state ? OMS_OK : OMS_ENOMEM;
    }
    pthread_mutex_unlock(&ss->lock);
    return rc;
}

int omsd_sstore_lookup(omsd *d, const char *pid, int worker, const char *sid, uint64_t seq)
{
    struct omsd_sstore *ss = d->sstore;
    if (!omsd_sstore_durable(d) || !pid_ok(pid))
        return OMS_EINVAL;
    ss_op *op = calloc(1, sizeof *op);
    if (!op)
        return OMS_ENOMEM;
    op->kind = OP_LOOKUP;
    memcpy(op->pid, pid, sizeof op->pid);
    op->worker = worker;
    snprintf(op->sid, sizeof op->sid, "%s", sid ? sid : "");
    op->seq = seq;
    pthread_mutex_lock(&ss->lock);
    bool closed = atomic_load(&ss->closed);
    if (!closed)
        push_op(ss, op);
    pthread_mutex_unlock(&ss->lock);
    if (closed) {
        free(op);
        return OMS_EINVAL;
    }
    return OMS_OK;
}

void omsd_sstore_live(omsd *d, const char *pid, bool live)
{
    struct omsd_sstore *ss = d->sstore;
    if (!ss || !pid_ok(pid))
        return;
    pthread_mutex_lock(&ss->lock);
    json_t *e = json_object_get(ss->mem, pid);
    if (e) {
        json_int_t n = json_integer_value(json_object_get(e, "live")) + (live ? 1 : -1);
        json_object_set_new(e, "live", json_integer(n < 0 ? 0 : n));
        json_object_set_new(e, "t", json_integer((json_int_t)oms_now_ms()));
    }
    pthread_mutex_unlock(&ss->lock);
}

void omsd_sstore_forget(omsd *d, const char *pid)
{
    struct omsd_sstore *ss = d->sstore;
    if (!ss || !pid_ok(pid))
        return;
    ss_op *op = omsd_sstore_durable(d) ? calloc(1, sizeof *op) : NULL;
    if (op) {
        op->kind = OP_DELETE;
        memcpy(op->pid, pid, sizeof op->pid);
    }
    pthread_mutex_lock(&ss->lock);
    json_object_del(ss->mem, pid);
    if (op && !atomic_load(&ss->closed)) {
        push_op(ss, op);
        op = NULL;
    }
    pthread_mutex_unlock(&ss->lock);
    free(op);
}
