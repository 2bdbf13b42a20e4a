/* projections.c — the projection consumer (DESIGN §3.4): one consumer group
 * shared by every omsd instance (kafka.projection_group) reads the event
 * topics and folds them into the Postgres read models, exactly once.
 *
 * Where a partition starts is what Postgres stores (oms_offsets), not what
 * Kafka has committed: on assignment a worker reads the stored next offsets
 * and starts there. Records are gathered into a batch (by count,
 * projections.batch_size, and time, projections.batch_ms); the batch's
 * effects and the partitions' next offsets are one Postgres transaction
 * that first checks the stored offsets are still where the batch started
 * (pkg/pg), so a crash anywhere applies every event once. Kafka gets the
 * offsets too, after the transaction, for monitoring only.
 *
 * Throughput: a batch's transaction goes to Postgres in one round trip
 * (pipeline mode) and, while Postgres applies it (`fly`), the worker reads
 * and decodes the next (`cur`). Each omsd runs PROJ_WORKERS workers, each
 * its own group member with its own consumer, Postgres connection and DLQ
 * producer: they apply disjoint partitions in parallel.
 *
 * Faults:
 *   - Postgres down or failing: the batches are kept, the assigned
 *     partitions are paused (the consumer keeps polling, so the group
 *     membership lives), and the same batch is tried again with a backoff
 *     of 100 ms doubling to 5 s; consumption resumes once Postgres is set
 *     up again and the batch kept has gone through (or was dropped) and
 *     the backoff has run out. One function, sync_pause, pauses and resumes
 *     from those facts. Health answers 503 meanwhile.
 *   - A record that cannot be decoded, or breaks a constraint of the read
 *     models, is copied to the DLQ (oms.stage=projection, with the reason and
 *     its position) before the transaction that skips it commits; the rest
 *     of the batch applies. DLQ copies are at least once: a crash between
 *     the copy and the commit copies the record again.
 *   - The stored offsets moved under us (`omsctl projections rebuild`, or
 *     another member still finishing a batch of a partition we now own, or
 *     a batch committed whose answer was lost with the connection): both
 *     batches are dropped and every partition seeks to its stored offset.
 *
 * Everything of a worker runs on its thread, the rebalance callback included
 * (it is served by rd_kafka_consumer_poll). Health reads a few published
 * fields under `lock`. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "omsd.h"
#include "pg/pg.h"

enum { PROJ_STARTING, PROJ_UP, PROJ_DOWN };

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000

typedef struct proj_part {
    oms_topic_kind kind;
    int32_t partition;
    int64_t stored;    /* the next offset stored in Postgres, as far as we know */
    int64_t last_seen; /* offset of the last record taken into a batch */
    int64_t batch_max; /* highest offset of this partition in the gathering batch, -1 none */
    bool need_seek;    /* where to start is not known yet (Postgres was down) */
    bool paused;       /* as last set in librdkafka, by sync_pause or the assignment */
    bool held;         /* the record at hold_offset waits for its schema (sync_pause pauses) */
    int64_t hold_offset;
    uint64_t hold_until_ns;
} proj_part;

typedef struct proj_msg {
    rd_kafka_message_t *m;
    size_t part; /* index into parts */
    bool decoded;
    oms_event ev;
    char reason[256]; /* why it could not be decoded */
} proj_msg;

/* A batch: gathering records, or sealed (its cursors fixed) and in flight
 * or waiting to be tried again. */
typedef struct proj_batch {
    proj_msg *msgs;
    oms_pg_record *recs;
    size_t n, cap;
    oms_pg_cursor *curs;
    size_t ncurs;
    size_t undecodable;
    uint64_t start_ns;
} proj_batch;

typedef struct proj_worker proj_worker;

struct proj_worker {
    omsd *d;
    int id; /* 0, 1, ...: in the logs and the client.id */
    pthread_t thread;
    bool started;
    rd_kafka_t *rk;
    oms_kafka_producer *dlq;
    int dlq_failed; /* delivery failures; reports are served on this thread */
    rd_kafka_resp_err_t last_kafka_err;

    oms_pg *pg;
    bool ready;   /* connected and the schema is there */
    bool failing; /* a failure not got over yet: consumption held, see sync_pause */
    uint64_t retry_at_ns;
    int backoff_ms;
    uint64_t next_check_ns, next_lag_ns;
    int fault_lost_commit; /* FAULT_*, see fault_commit_lost */

    proj_part *parts;
    size_t nparts;
    /* While Postgres applies `fly`, the thread gathers and decodes `cur`. */
    proj_batch batches[2];
    proj_batch *cur, *fly;

    /* published for health */
    pthread_mutex_t lock;
    int state;
    char error[384];
    int64_t last_applied_ms;
    uint64_t applied, rejected, batches_applied;
    int64_t lag;
    size_t assigned;
    bool conn_lost; /* the failure being set is a lost or refused connection */
};

/* ---- state ------------------------------------------------------------------------- */

static void set_state(proj_worker *p, int state, const char *error)
{
    pthread_mutex_lock(&p->lock);
    int old = p->state;
    bool same_error = error && strcmp(p->error, error) == 0;
    p->state = state;
    snprintf(p->error, sizeof p->error, "%s", error ? error : "");
    pthread_mutex_unlock(&p->lock);
    if (state == PROJ_DOWN && (old != PROJ_DOWN || !same_error))
        oms_log(p->d->log, OMS_LOG_ERROR, "projections: cannot apply, consumption paused",
                OMS_LS("error", error ? error : ""), OMS_LS("host", p->d->cfg.database.host),
                OMS_LI("port", p->d->cfg.database.port),
                OMS_LS("database", p->d->cfg.database.name), OMS_LI("worker", p->id));
    /* to Sentry once per failing period of the whole consumer (not per
     * worker); a lost or refused connection is the poll thread's Postgres
     * outage event, not a projection failure */
    if (state == PROJ_DOWN && old != PROJ_DOWN && !p->conn_lost && atomic_load(&p->d->pg_up))
        omsd_alerts_outage(p->d, OMSD_OUTAGE_PROJECTIONS, true, "projections cannot apply",
                           error);
    /* forgotten once no worker is down any more */
    if (state == PROJ_DOWN && old != PROJ_DOWN)
        atomic_fetch_add(&p->d->proj_down, 1);
    else if (state != PROJ_DOWN && old == PROJ_DOWN &&
             atomic_fetch_sub(&p->d->proj_down, 1) == 1)
        omsd_alerts_outage(p->d, OMSD_OUTAGE_PROJECTIONS, false, NULL, NULL);
    if (state == PROJ_UP && old != PROJ_UP)
        oms_log(p->d->log, OMS_LOG_INFO, "projections: postgres ready",
                OMS_LS("host", p->d->cfg.database.host), OMS_LI("port", p->d->cfg.database.port),
                OMS_LS("database", p->d->cfg.database.name),
                OMS_LS("group", p->d->cfg.kafka.projection_group), OMS_LI("worker", p->id));
}

static const char *topic_of(const proj_worker *p, const proj_part *pp)
{
    return p->d->topics[pp->kind];
}

static bool pending(const proj_worker *p)
{
    return oms_pg_apply_pending(p->pg);
}

/* ---- partitions ----------------------------------------------------------------------- */

static proj_part *find_part(proj_worker *p, const char *topic, int32_t partition,
                            size_t *index)
{
    for (size_t i = 0; i < p->nparts; i++) {
        proj_part *q = &p->parts[i];
        if (q->partition == partition && strcmp(topic_of(p, q), topic) == 0) {
            *index = i;
            return q;
        }
    }
    return NULL;
}

/* The one place that pauses and resumes partitions: a partition is paused
 * while where it starts is not known (need_seek) or while the worker holds
 * consumption back — Postgres not set up, or a failure not got over: the
 * batch it left has not gone through or been dropped, or its backoff has not
 * run out. The other paths only change those facts. (Pausing and resuming
 * from each path, as before, left partitions paused for good: a batch tried
 * again after an outage and found already committed, its answer lost, was
 * dropped while paused, and no success came to resume them.)
 *
 * Called before each poll, so whatever a step changed is in force before
 * the next records come. A pause keeps the position after the last record
 * polled; a seek while paused sets where fetching goes on at the resume. */
static void sync_pause(proj_worker *p)
{
    if (p->failing && p->ready && !p->fly->n && !pending(p) && oms_mono_ns() >= p->retry_at_ns)
        p->failing = false;
    bool hold = !p->ready || p->failing;
    rd_kafka_topic_partition_list_t *l[2] = {NULL, NULL}; /* resume, pause */
    for (size_t i = 0; i < p->nparts; i++) {
        proj_part *q = &p->parts[i];
        bool want = hold || q->need_seek || q->held;
        if (want == q->paused)
            continue;
        if (!l[want])
            l[want] = rd_kafka_topic_partition_list_new((int)p->nparts);
        rd_kafka_topic_partition_list_add(l[want], topic_of(p, q), q->partition);
        q->paused = want;
    }
    for (int want = 0; want < 2; want++) {
        if (!l[want])
            continue;
        if (want)
            rd_kafka_pause_partitions(p->rk, l[want]);
        else
            rd_kafka_resume_partitions(p->rk, l[want]);
        /* not done (not assigned in librdkafka's view): tried again next time */
        for (int k = 0; k < l[want]->cnt; k++) {
            size_t pi;
            proj_part *q;
            if (l[want]->elems[k].err &&
                (q = find_part(p, l[want]->elems[k].topic, l[want]->elems[k].partition, &pi)))
                q->paused = !want;
        }
        rd_kafka_topic_partition_list_destroy(l[want]);
    }
}

static void batch_clear(proj_batch *b)
{
    for (size_t i = 0; i < b->n; i++) {
        rd_kafka_message_destroy(b->msgs[i].m);
        if (b->msgs[i].decoded)
            oms_event_clear(&b->msgs[i].ev);
    }
    b->n = 0;
    b->ncurs = 0;
    b->undecodable = 0;
}

/* Forget both batches: the partitions are read again from their stored
 * offsets (the caller seeks, or the partitions go away). */
static void drop_all(proj_worker *p)
{
    batch_clear(p->cur);
    batch_clear(p->fly);
    for (size_t i = 0; i < p->nparts; i++) {
        p->parts[i].batch_max = -1;
        p->parts[i].last_seen = p->parts[i].stored - 1;
        p->parts[i].held = false;
    }
}

/* The stored offsets moved: drop both batches and read every partition
 * again from what is stored. The seek is the main loop's (seek_to_stored,
 * Postgres willing); until then the partitions are paused and their records
 * ignored, whatever happened before. */
static void reread_all(proj_worker *p)
{
    drop_all(p);
    for (size_t i = 0; i < p->nparts; i++)
        p->parts[i].need_seek = true;
}

/* The connection is in an unknown state (an answer that never came): close
 * it. A transaction it left behind either commits or not; the offsets check
 * of every batch keeps that exactly once. */
static void abandon_pg(proj_worker *p)
{
    oms_pg_free(p->pg);
    p->pg = NULL;
    p->ready = false;
}

/* Fault injection for the tests (0410), off unless OMS_FAULT_PROJ_LOST_COMMIT
 * is set (and not "0") when omsd starts: the first batch a worker commits
 * after a Postgres failure is reported as if the connection had dropped
 * before the answer to COMMIT came back — committed, but the worker cannot
 * know. That is what a Postgres going away at the wrong moment does, in a
 * window too narrow to hit on purpose. Once per worker; otherwise a flag
 * test per batch. */
enum { FAULT_OFF, FAULT_WAIT_FAILURE, FAULT_ARMED, FAULT_FIRED };

static bool fault_commit_lost(proj_worker *p)
{
    if (p->fault_lost_commit != FAULT_ARMED)
        return false;
    p->fault_lost_commit = FAULT_FIRED;
    oms_log(p->d->log, OMS_LOG_WARN,
            "projections: fault injection: the answer to COMMIT is lost, the connection closed",
            OMS_LI("worker", p->id));
    abandon_pg(p);
    return true;
}

/* Hold consumption back (sync_pause) and schedule the retry. */
static void backoff(proj_worker *p)
{
    if (p->fault_lost_commit == FAULT_WAIT_FAILURE)
        p->fault_lost_commit = FAULT_ARMED;
    p->failing = true;
    p->retry_at_ns = oms_mono_ns() + (uint64_t)p->backoff_ms * 1000000u;
    p->backoff_ms = p->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : p->backoff_ms * 2;
}

/* A Postgres failure: note it, pause consumption, schedule the retry. */
static void pg_failed(proj_worker *p, const char *error)
{
    p->conn_lost = !p->pg || !oms_pg_connected(p->pg);
    set_state(p, PROJ_DOWN, error);
    p->conn_lost = false;
    if (p->pg && !oms_pg_connected(p->pg))
        abandon_pg(p);
    backoff(p);
}

/* Start the partitions that need it at their stored offsets. Returns false
 * on a Postgres failure (already handled). Nothing may be in flight. They
 * are usually paused (sync_pause) and resumed once positioned. */
static bool seek_to_stored(proj_worker *p)
{
    size_t n = 0;
    oms_pg_partition *pp = calloc(p->nparts ? p->nparts : 1, sizeof *pp);
    size_t *which = calloc(p->nparts ? p->nparts : 1, sizeof *which);
    if (!pp || !which) {
        free(pp);
        free(which);
        return false;
    }
    for (size_t i = 0; i < p->nparts; i++) {
        if (!p->parts[i].need_seek)
            continue;
        pp[n] = (oms_pg_partition){topic_of(p, &p->parts[i]), p->parts[i].partition, 0};
        which[n++] = i;
    }
    bool ok = true;
    if (n) {
        char err[512];
        if (oms_pg_offsets_claim(p->pg, p->d->cfg.kafka.projection_group, pp, n, err,
                                 sizeof err) != OMS_OK) {
            pg_failed(p, err);
            ok = false;
            goto out;
        }
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)n);
        for (size_t k = 0; k < n; k++)
            rd_kafka_topic_partition_list_add(l, pp[k].topic, pp[k].partition)->offset =
                pp[k].next_offset;
        rd_kafka_error_t *e = rd_kafka_seek_partitions(p->rk, l, 5000);
        if (e) {
            oms_log(p->d->log, OMS_LOG_WARN, "projections: seek failed",
                    OMS_LS("error", rd_kafka_error_string(e)));
            rd_kafka_error_destroy(e);
        }
        for (size_t k = 0; k < n; k++) {
            proj_part *q = &p->parts[which[k]];
            if (l->elems[k].err) {
                oms_log(p->d->log, OMS_LOG_WARN, "projections: seek failed",
                        OMS_LS("topic", pp[k].topic), OMS_LI("partition", pp[k].partition),
                        OMS_LS("error", rd_kafka_err2str(l->elems[k].err)));
                continue; /* still need_seek: tried again */
            }
            q->stored = pp[k].next_offset;
            q->last_seen = q->stored - 1;
            q->need_seek = false;
        }
        rd_kafka_topic_partition_list_destroy(l);
    }
out:
    free(pp);
    free(which);
    return ok;
}

/* ---- Postgres set-up ------------------------------------------------------------------ */

static void pg_setup(proj_worker *p)
{
    omsd *d = p->d;
    char err[512];
    if (!p->pg) {
        p->pg = oms_pg_connect(&d->cfg, "omsd-projections", 3, err, sizeof err);
        if (!p->pg) {
            pg_failed(p, err);
            return;
        }
    }
    int from = 0, to = 0, latest = oms_pg_migrations_latest();
    if (d->cfg.projections.migrate_on_start) {
        int rc = oms_pg_migrate(p->pg, &from, &to, err, sizeof err);
        if (rc != OMS_OK) {
            char msg[600];
            snprintf(msg, sizeof msg, "migrations: %s", err);
            pg_failed(p, msg);
            return;
        }
        if (to != from)
            oms_log(d->log, OMS_LOG_INFO, "projections: schema migrated", OMS_LI("from", from),
                    OMS_LI("to", to));
    } else {
        if (oms_pg_schema_version(p->pg, &to, err, sizeof err) != OMS_OK) {
            pg_failed(p, err);
            return;
        }
        if (to < latest) {
            char msg[200];
            snprintf(msg, sizeof msg,
                     "schema version %d, this omsd needs %d: run 'omsctl projections migrate' "
                     "(projections.migrate_on_start is false)",
                     to, latest);
            pg_failed(p, msg);
            p->backoff_ms = BACKOFF_MAX_MS;
            return;
        }
    }
    if (to > latest)
        oms_log(d->log, OMS_LOG_WARN, "projections: the database schema is newer than this omsd",
                OMS_LI("version", to), OMS_LI("known", latest));
    p->ready = true;
    if (!seek_to_stored(p))
        return;
    set_state(p, PROJ_UP, NULL);
    p->backoff_ms = BACKOFF_MIN_MS;
}

/* ---- batches -------------------------------------------------------------------------- */

static void on_dlq_delivery(void *ctx, void *opaque, rd_kafka_resp_err_t err, const char *topic,
                            int32_t partition, int64_t offset, int64_t timestamp)
{
    proj_worker *p = ctx;
    if (err)
        p->dlq_failed++;
}

/* Before COMMIT: the records left out go to the DLQ, acknowledged, or the
 * transaction does not commit. */
static int before_commit(void *ctx, const oms_pg_record *recs, size_t n)
{
    proj_worker *p = ctx;
    size_t copies = 0;
    p->dlq_failed = 0;
    for (size_t i = 0; i < n; i++) {
        const proj_msg *pm = &p->fly->msgs[i];
        const char *reason = !recs[i].ev ? pm->reason : recs[i].rejected ? recs[i].reason : NULL;
        if (!reason)
            continue;
        char why[512];
        snprintf(why, sizeof why, "%s%s", recs[i].ev ? "constraint violated: " : "not decodable: ",
                 reason);
        oms_log(p->d->log, OMS_LOG_WARN, "projections: record not applied, copied to the dlq",
                OMS_LS("topic", recs[i].topic), OMS_LI("partition", recs[i].partition),
                OMS_LI("offset", recs[i].offset), OMS_LS("reason", why));
        if (omsd_dlq_copy(p->d, p->dlq, pm->m, recs[i].topic, why, "projection") != OMS_OK)
            return OMS_EKAFKA;
        copies++;
    }
    if (!copies)
        return OMS_OK;
    int left = oms_kafka_producer_flush(p->dlq, 10000);
    return left || p->dlq_failed ? OMS_EKAFKA : OMS_OK;
}

static void commit_to_kafka(proj_worker *p, const proj_batch *b)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)b->ncurs);
    for (size_t i = 0; i < b->ncurs; i++)
        rd_kafka_topic_partition_list_add(l, b->curs[i].topic, b->curs[i].partition)->offset =
            b->curs[i].next;
    rd_kafka_commit(p->rk, l, 1); /* async; for lag monitoring only */
    rd_kafka_topic_partition_list_destroy(l);
}

/* Close the gathering batch: fix its cursors and records, make it `fly`.
 * `fly` must be empty. */
static void seal(proj_worker *p)
{
    proj_batch *b = p->cur;
    b->ncurs = 0;
    for (size_t i = 0; i < p->nparts; i++) {
        proj_part *q = &p->parts[i];
        if (q->batch_max < 0)
            continue;
        b->curs[b->ncurs++] =
            (oms_pg_cursor){topic_of(p, q), q->partition, q->stored, q->batch_max + 1};
        q->batch_max = -1;
    }
    for (size_t i = 0; i < b->n; i++) {
        proj_msg *pm = &b->msgs[i];
        b->recs[i] = (oms_pg_record){.ev = pm->decoded ? &pm->ev : NULL,
                                     .topic = topic_of(p, &p->parts[pm->part]),
                                     .partition = pm->m->partition,
                                     .offset = pm->m->offset};
    }
    p->cur = p->fly;
    p->fly = b;
}

static void send_fly(proj_worker *p);

/* What became of `fly`. */
static void outcome(proj_worker *p, int rc, const oms_pg_apply_stats *st, const char *err)
{
    omsd *d = p->d;
    proj_batch *b = p->fly;
    if (rc == OMS_OK) {
        for (size_t i = 0; i < b->ncurs; i++)
            for (size_t k = 0; k < p->nparts; k++)
                if (p->parts[k].partition == b->curs[i].partition &&
                    strcmp(topic_of(p, &p->parts[k]), b->curs[i].topic) == 0)
                    p->parts[k].stored = b->curs[i].next;
        commit_to_kafka(p, b);
        pthread_mutex_lock(&p->lock);
        p->applied += st->applied;
        p->rejected += st->rejected + b->undecodable;
        p->batches_applied++;
        p->last_applied_ms = oms_now_ms();
        pthread_mutex_unlock(&p->lock);
        batch_clear(b);
        set_state(p, PROJ_UP, NULL);
        p->backoff_ms = BACKOFF_MIN_MS;
        return;
    }
    if (rc == OMS_EINVAL) {
        /* a record broke a rule: the slow path isolates it */
        oms_pg_apply_stats st2 = {0};
        char err2[512];
        int rc2 = oms_pg_apply(p->pg, d->cfg.kafka.projection_group, b->recs, b->n, b->curs,
                               b->ncurs, before_commit, p, &st2, err2, sizeof err2);
        if (rc2 == OMS_EINVAL) {
            pg_failed(p, err2); /* no progress possible: do not loop */
            return;
        }
        outcome(p, rc2, &st2, err2);
        return;
    }
    if (rc == OMS_EEXPIRED) {
        oms_log(d->log, OMS_LOG_INFO,
                "projections: stored offsets moved (rebuild or another instance), reading "
                "from them",
                OMS_LS("detail", err));
        reread_all(p);
        return;
    }
    if (rc == OMS_EKAFKA) {
        /* the DLQ copies did not make it: nothing committed, try again */
        set_state(p, PROJ_DOWN, "cannot copy rejected records to the dlq (kafka)");
        backoff(p);
        return;
    }
    pg_failed(p, err);
}

/* Apply `fly`: in one round trip when every record decoded (the outcome
 * comes later, see settle), else at once with the DLQ copies. */
static void send_fly(proj_worker *p)
{
    omsd *d = p->d;
    proj_batch *b = p->fly;
    char err[512];
    oms_pg_apply_stats st = {0};
    int rc;
    if (b->undecodable) {
        rc = oms_pg_apply(p->pg, d->cfg.kafka.projection_group, b->recs, b->n, b->curs, b->ncurs,
                          before_commit, p, &st, err, sizeof err);
        outcome(p, rc, &st, err);
        return;
    }
    rc = oms_pg_apply_send(p->pg, d->cfg.kafka.projection_group, b->recs, b->n, b->curs,
                           b->ncurs, err, sizeof err);
    if (rc != OMS_OK)
        outcome(p, rc, &st, err);
}

/* Collect the outcome of `fly` if it is in flight, waiting up to timeout_ms.
 * Returns true when nothing is in flight any more. */
static bool settle(proj_worker *p, int timeout_ms)
{
    if (!pending(p))
        return true;
    char err[512];
    oms_pg_apply_stats st = {0};
    int rc = oms_pg_apply_poll(p->pg, timeout_ms, &st, err, sizeof err);
    if (rc == OMS_ETIMEDOUT)
        return false;
    if (rc == OMS_OK && fault_commit_lost(p)) {
        rc = OMS_EIO;
        snprintf(err, sizeof err, "batch: connection lost (fault injection)");
    }
    outcome(p, rc, &st, err);
    return !pending(p);
}

/* Apply everything in hand now, one try (revocation, exit). */
static void apply_now(proj_worker *p)
{
    if (!settle(p, 30000)) {
        oms_log(p->d->log, OMS_LOG_ERROR, "projections: no answer from postgres in 30 s");
        abandon_pg(p);
        return;
    }
    if (p->ready && p->fly->n) {
        send_fly(p);
        if (!settle(p, 30000))
            abandon_pg(p);
    }
    if (p->ready && !p->fly->n && p->cur->n) {
        seal(p);
        send_fly(p);
        if (!settle(p, 30000))
            abandon_pg(p);
    }
}

static bool batch_reserve(proj_batch *b)
{
    if (b->n < b->cap)
        return true;
    size_t cap = b->cap * 2;
    proj_msg *m = realloc(b->msgs, cap * sizeof *m);
    if (!m)
        return false;
    b->msgs = m;
    oms_pg_record *r = realloc(b->recs, cap * sizeof *r);
    if (!r)
        return false;
    b->recs = r;
    b->cap = cap;
    return true;
}

/* The record m cannot be decoded yet (its schema cannot be fetched now):
 * pause its partition, the others go on; release() reads it again from
 * that record, in order, and nothing is skipped or sent to the DLQ. */
static void hold(proj_worker *p, proj_part *q, rd_kafka_message_t *m)
{
    omsd_registry_wait(p->d, rd_kafka_topic_name(m->rkt), m->partition, m->offset,
                       p->cur->msgs[p->cur->n].reason);
    q->held = true; /* sync_pause pauses it before the next poll */
    q->hold_offset = m->offset;
    q->hold_until_ns = oms_mono_ns() + (uint64_t)OMSD_REGISTRY_HOLD_MS * 1000000u;
    rd_kafka_message_destroy(m);
}

/* Held partitions whose time came: resume, then seek back to the held
 * record, so it is read again in order. While the worker holds everything
 * back (Postgres down, a failure not got over) they wait: sync_pause keeps
 * them paused, and a re-read from the stored offsets (reread_all) clears
 * the hold anyway. */
static void release(proj_worker *p)
{
    uint64_t now = oms_mono_ns();
    if (!p->ready || p->failing)
        return;
    for (size_t i = 0; i < p->nparts; i++) {
        proj_part *q = &p->parts[i];
        if (!q->held || q->need_seek || now < q->hold_until_ns)
            continue;
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(l, topic_of(p, q), q->partition)->offset =
            q->hold_offset;
        rd_kafka_resume_partitions(p->rk, l);
        rd_kafka_error_t *e = rd_kafka_seek_partitions(p->rk, l, 5000);
        bool ok = !e && !l->elems[0].err;
        if (e)
            rd_kafka_error_destroy(e);
        if (ok) {
            q->held = false;
            q->paused = false;
        } else {
            rd_kafka_pause_partitions(p->rk, l);
            q->hold_until_ns = now + 1000000000u;
        }
        rd_kafka_topic_partition_list_destroy(l);
    }
}

static void on_message(proj_worker *p, rd_kafka_message_t *m)
{
    if (m->err) {
        if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF && m->err != p->last_kafka_err)
            oms_log(p->d->log, OMS_LOG_WARN, "projections: consumer error",
                    OMS_LS("error", rd_kafka_message_errstr(m)));
        p->last_kafka_err = m->err;
        rd_kafka_message_destroy(m);
        return;
    }
    size_t pi = 0;
    proj_part *q = find_part(p, rd_kafka_topic_name(m->rkt), m->partition, &pi);
    /* not ours (any more), not positioned yet, already taken, or waiting */
    if (!q || q->need_seek || q->held || m->offset <= q->last_seen) {
        rd_kafka_message_destroy(m);
        return;
    }
    proj_batch *b = p->cur;
    if (!batch_reserve(b)) {
        /* out of memory: drop what is gathered and read it again */
        oms_log(p->d->log, OMS_LOG_ERROR, "projections: out of memory, batch dropped",
                OMS_LI("records", b->n));
        rd_kafka_message_destroy(m);
        batch_clear(b);
        for (size_t i = 0; i < p->nparts; i++)
            if (p->parts[i].batch_max >= 0) {
                p->parts[i].batch_max = -1;
                p->parts[i].need_seek = true;
            }
        return;
    }
    proj_msg *pm = &b->msgs[b->n];
    memset(pm, 0, sizeof *pm);
    int rc = oms_event_decode(p->d->events, m->payload, m->len, &pm->ev, pm->reason,
                              sizeof pm->reason);
    if (rc == OMS_EAGAIN) {
        hold(p, q, m);
        return;
    }
    b->n++;
    q->last_seen = m->offset;
    q->batch_max = m->offset;
    pm->m = m;
    pm->part = pi;
    pm->decoded = rc == OMS_OK;
    b->undecodable += !pm->decoded;
    if (b->n == 1)
        b->start_ns = oms_mono_ns();
}

/* ---- rebalancing ---------------------------------------------------------------------- */

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *list, void *opaque)
{
    proj_worker *p = opaque;
    omsd *d = p->d;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        /* eager rebalancing: a revocation came first and left nothing */
        if (!settle(p, 30000))
            abandon_pg(p);
        drop_all(p);
        p->nparts = 0;
        for (int i = 0; i < list->cnt && p->nparts < 3 * OMSD_MAX_PARTITIONS; i++) {
            int k = 0;
            while (k < OMS_TOPIC__COUNT && strcmp(d->topics[k], list->elems[i].topic) != 0)
                k++;
            if (k == OMS_TOPIC__COUNT)
                continue;
            p->parts[p->nparts++] = (proj_part){.kind = (oms_topic_kind)k,
                                                .partition = list->elems[i].partition,
                                                .last_seen = -1,
                                                .batch_max = -1,
                                                .need_seek = true,
                                                .paused = true,
                                                .hold_offset = -1};
        }
        bool known = false;
        if (p->ready && p->nparts) {
            oms_pg_partition *pp = calloc(p->nparts, sizeof *pp);
            char e[512];
            for (size_t i = 0; pp && i < p->nparts; i++)
                pp[i] = (oms_pg_partition){topic_of(p, &p->parts[i]), p->parts[i].partition, 0};
            if (pp && oms_pg_offsets_claim(p->pg, d->cfg.kafka.projection_group, pp, p->nparts, e,
                                           sizeof e) == OMS_OK) {
                known = true;
                for (size_t i = 0; i < p->nparts; i++) {
                    p->parts[i].stored = pp[i].next_offset;
                    p->parts[i].last_seen = pp[i].next_offset - 1;
                    p->parts[i].need_seek = false;
                }
            } else if (pp) {
                pg_failed(p, e);
            }
            free(pp);
        }
        /* every partition starts where Postgres says; when it cannot say
         * yet, the partition waits (paused) and seeks once it can */
        for (int i = 0; i < list->cnt; i++) {
            size_t pi;
            proj_part *q = find_part(p, list->elems[i].topic, list->elems[i].partition, &pi);
            list->elems[i].offset = q && !q->need_seek ? q->stored : RD_KAFKA_OFFSET_END;
        }
        rd_kafka_assign(rk, list);
        /* A partition comes paused or not depending on its past in this
         * consumer (librdkafka keeps the application's pause across
         * revocation and reassignment): pause all, so the state is known,
         * and let sync_pause resume those that may go. */
        if (list->cnt)
            rd_kafka_pause_partitions(rk, list);
        for (size_t i = 0; i < p->nparts; i++)
            p->parts[i].paused = true;
        oms_log(d->log, OMS_LOG_INFO, "projections: partitions assigned",
                OMS_LI("count", p->nparts), OMS_LB("offsetsKnown", known),
                OMS_LS("group", d->cfg.kafka.projection_group), OMS_LI("worker", p->id));
    } else {
        if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
            /* commit what we hold while the partitions are still ours; if
             * Postgres fails, the next owner reads it again from the stored
             * offsets */
            apply_now(p);
            size_t left = p->fly->n + p->cur->n;
            if (left)
                oms_log(d->log, OMS_LOG_WARN,
                        "projections: records not committed at revocation, the next owner reads "
                        "them again",
                        OMS_LI("records", left));
        } else {
            if (!settle(p, 30000))
                abandon_pg(p);
            oms_log(d->log, OMS_LOG_ERROR, "projections: rebalance error",
                    OMS_LS("error", rd_kafka_err2str(err)));
        }
        drop_all(p);
        rd_kafka_assign(rk, NULL);
        oms_log(d->log, OMS_LOG_INFO, "projections: partitions revoked", OMS_LI("count", p->nparts),
                OMS_LI("worker", p->id));
        p->nparts = 0;
    }
    pthread_mutex_lock(&p->lock);
    p->assigned = p->nparts;
    pthread_mutex_unlock(&p->lock);
}

/* ---- the thread ------------------------------------------------------------------------- */

/* librdkafka logs broker connection failures by itself; Kafka health is the
 * poll thread's business, so its log stays quiet unless asked for. */
static void on_kafka_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    if (getenv("OMS_KAFKA_DEBUG"))
        fprintf(stderr, "librdkafka: %d %s: %s\n", level, fac, buf);
}

static void on_kafka_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    proj_worker *p = opaque;
    if ((rd_kafka_resp_err_t)err == p->last_kafka_err)
        return;
    p->last_kafka_err = (rd_kafka_resp_err_t)err;
    oms_log(p->d->log, OMS_LOG_WARN, "projections: kafka error", OMS_LS("error", reason));
}

static rd_kafka_t *make_consumer(proj_worker *p, char *errbuf, size_t errlen)
{
    omsd *d = p->d;
    char cid[64];
    snprintf(cid, sizeof cid, "omsd-projections-%d", p->id);
    const char *const defaults[] = {
        "client.id", cid,
        "enable.auto.commit", "false",
        "enable.auto.offset.store", "false",
        "auto.offset.reset", "earliest",
        "session.timeout.ms", "6000",
        "heartbeat.interval.ms", "1500",
        "enable.partition.eof", "false",
        NULL,
    };
    char err[512];
    rd_kafka_conf_t *conf =
        oms_kafka_group_conf(d->cfg.kafka.brokers, d->cfg.kafka.projection_group, defaults,
                             d->cfg.kafka.props, d->cfg.kafka.nprops, errbuf, errlen);
    if (!conf)
        return NULL;
    rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
    rd_kafka_conf_set_log_cb(conf, on_kafka_log);
    rd_kafka_conf_set_error_cb(conf, on_kafka_error);
    rd_kafka_conf_set_opaque(conf, p);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    if (!rk) {
        oms_errf(errbuf, errlen, "cannot create the projection consumer: %s", err);
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(OMS_TOPIC__COUNT);
    for (int k = 0; k < OMS_TOPIC__COUNT; k++)
        rd_kafka_topic_partition_list_add(l, d->topics[k], RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (e) {
        oms_errf(errbuf, errlen, "cannot subscribe to the event topics: %s", rd_kafka_err2str(e));
        rd_kafka_destroy(rk);
        return NULL;
    }
    return rk;
}

/* Between batches: have the stored offsets moved (a rebuild)? Also notices a
 * Postgres that went away while there was nothing to write. */
static void check_stored(proj_worker *p)
{
    if (!p->nparts)
        return;
    oms_pg_partition *pp = calloc(p->nparts, sizeof *pp);
    if (!pp)
        return;
    for (size_t i = 0; i < p->nparts; i++)
        pp[i] = (oms_pg_partition){topic_of(p, &p->parts[i]), p->parts[i].partition, 0};
    char err[512];
    if (oms_pg_offsets_read(p->pg, p->d->cfg.kafka.projection_group, pp, p->nparts, err,
                            sizeof err) != OMS_OK) {
        free(pp);
        pg_failed(p, err);
        return;
    }
    bool moved = false;
    for (size_t i = 0; i < p->nparts; i++)
        if (!p->parts[i].need_seek && pp[i].next_offset != p->parts[i].stored) {
            if (!moved)
                oms_log(p->d->log, OMS_LOG_INFO,
                        "projections: stored offsets moved (rebuild or another instance), "
                        "reading from them",
                        OMS_LS("topic", pp[i].topic), OMS_LI("partition", pp[i].partition),
                        OMS_LI("expected", p->parts[i].stored), OMS_LI("stored", pp[i].next_offset));
            moved = true;
        }
    free(pp);
    if (moved)
        reread_all(p);
}

static void publish_lag(proj_worker *p)
{
    int64_t lag = 0;
    for (size_t i = 0; i < p->nparts; i++) {
        int64_t lo = 0, hi = 0;
        const proj_part *q = &p->parts[i];
        if (rd_kafka_get_watermark_offsets(p->rk, topic_of(p, q), q->partition, &lo, &hi) ==
                RD_KAFKA_RESP_ERR_NO_ERROR &&
            hi > 0) {
            int64_t from = q->stored > lo ? q->stored : lo;
            if (hi > from)
                lag += hi - from;
        }
    }
    pthread_mutex_lock(&p->lock);
    p->lag = lag;
    pthread_mutex_unlock(&p->lock);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void *proj_main(void *arg)
{
    proj_worker *p = arg;
    omsd *d = p->d;
    const size_t batch_size = (size_t)d->cfg.projections.batch_size;
    const uint64_t batch_ns = (uint64_t)d->cfg.projections.batch_ms * 1000000u;
    oms_log(d->log, OMS_LOG_INFO, "projections: consuming",
            OMS_LS("group", d->cfg.kafka.projection_group),
            OMS_LI("batchSize", (int64_t)batch_size),
            OMS_LI("batchMs", d->cfg.projections.batch_ms), OMS_LI("worker", p->id));
    while (!atomic_load(&d->threads_stop)) {
        uint64_t now = oms_mono_ns();
        if (!p->ready && now >= p->retry_at_ns)
            pg_setup(p);
        if (pending(p))
            settle(p, 0);
        if (p->ready && !pending(p) && now >= p->retry_at_ns) {
            bool any_seek = false;
            for (size_t i = 0; i < p->nparts; i++)
                any_seek |= p->parts[i].need_seek;
            if (any_seek)
                seek_to_stored(p);
        }
        now = oms_mono_ns();
        if (p->ready && !pending(p) && now >= p->retry_at_ns) {
            if (p->fly->n) {
                send_fly(p); /* again, after a failure */
            } else if (p->cur->n &&
                       (p->cur->n >= batch_size || now - p->cur->start_ns >= batch_ns)) {
                seal(p);
                send_fly(p);
            }
        }
        /* both batches full: wait for Postgres */
        if (pending(p) && p->cur->n >= batch_size)
            settle(p, 100);
        now = oms_mono_ns();
        if (p->ready && !pending(p) && !p->fly->n && !p->cur->n && now >= p->next_check_ns) {
            check_stored(p);
            p->next_check_ns = now + 1000000000u;
        }
        release(p);
        if (now >= p->next_lag_ns) {
            publish_lag(p);
            p->next_lag_ns = now + 1000000000u;
        }
        int timeout = 100;
        if (pending(p)) {
            timeout = 1;
        } else if (p->cur->n && p->ready && now >= p->retry_at_ns) {
            uint64_t due = p->cur->start_ns + batch_ns;
            timeout = due > now ? (int)((due - now) / 1000000u) : 0;
            if (timeout > 100)
                timeout = 100;
        }
        if (p->cur->n >= batch_size)
            timeout = timeout > 10 ? 10 : timeout; /* serve the group, take no more */
        sync_pause(p);
        rd_kafka_message_t *m = rd_kafka_consumer_poll(p->rk, timeout);
        if (m)
            on_message(p, m);
        while (p->cur->n < batch_size && !atomic_load(&d->threads_stop) &&
               (m = rd_kafka_consumer_poll(p->rk, 0)))
            on_message(p, m);
    }
    /* finish what is in hand, a few tries at most */
    uint64_t deadline = oms_mono_ns() + 5000000000u;
    for (;;) {
        if (!p->ready)
            pg_setup(p);
        if (p->ready)
            apply_now(p);
        if (!(p->fly->n + p->cur->n) || oms_mono_ns() >= deadline)
            break;
        sleep_ms(200);
    }
    if (p->fly->n + p->cur->n)
        oms_log(d->log, OMS_LOG_WARN,
                "projections: records not committed at exit, read again at the next start",
                OMS_LI("records", p->fly->n + p->cur->n));
    rd_kafka_consumer_close(p->rk); /* the revoke callback runs here */
    oms_log(d->log, OMS_LOG_INFO, "projections: stopped", OMS_LI("worker", p->id));
    return NULL;
}

/* ---- start, stop, health ---------------------------------------------------------------- */

static void proj_free(proj_worker *p)
{
    if (!p)
        return;
    for (int i = 0; i < 2; i++) {
        batch_clear(&p->batches[i]);
        free(p->batches[i].msgs);
        free(p->batches[i].recs);
        free(p->batches[i].curs);
    }
    if (p->rk)
        rd_kafka_destroy(p->rk);
    if (p->dlq) {
        int left = oms_kafka_producer_free(p->dlq, 3000);
        if (left)
            oms_log(p->d->log, OMS_LOG_ERROR, "projections: dlq copies not delivered at exit",
                    OMS_LI("count", left));
    }
    oms_pg_free(p->pg);
    free(p->parts);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

/* Each omsd runs this many workers (at most one per CPU): a worker is one
 * member of the group with its own consumer, Postgres connection (backend)
 * and DLQ producer, so two of them apply disjoint partitions in parallel —
 * exactly like two omsd instances would, same exactly-once rules. */
#define PROJ_WORKERS 2

typedef struct omsd_projections omsd_projections;

struct omsd_projections {
    size_t n;
    proj_worker *w[PROJ_WORKERS];
};

static proj_worker *worker_new(omsd *d, int id)
{
    proj_worker *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->d = d;
    p->id = id;
    pthread_mutex_init(&p->lock, NULL);
    p->state = PROJ_STARTING;
    p->backoff_ms = BACKOFF_MIN_MS;
    const char *fault = getenv("OMS_FAULT_PROJ_LOST_COMMIT");
    if (fault && *fault && strcmp(fault, "0") != 0)
        p->fault_lost_commit = FAULT_WAIT_FAILURE;
    size_t maxparts = 3 * OMSD_MAX_PARTITIONS;
    bool ok = (p->parts = calloc(maxparts, sizeof *p->parts)) != NULL;
    for (int i = 0; i < 2; i++) {
        proj_batch *b = &p->batches[i];
        b->cap = (size_t)d->cfg.projections.batch_size + 64;
        b->msgs = calloc(b->cap, sizeof *b->msgs);
        b->recs = calloc(b->cap, sizeof *b->recs);
        b->curs = calloc(maxparts, sizeof *b->curs);
        ok = ok && b->msgs && b->recs && b->curs;
    }
    p->cur = &p->batches[0];
    p->fly = &p->batches[1];
    char err[512] = "out of memory", cid[64];
    snprintf(cid, sizeof cid, "omsd-projections-dlq-%d", id);
    oms_kv props[OMS_CONFIG_MAX_PROPS + 2];
    size_t np = 0;
    props[np++] = (oms_kv){"client.id", cid};
    for (size_t i = 0; i < d->cfg.kafka.nprops; i++)
        props[np++] = d->cfg.kafka.props[i];
    if (!ok ||
        !(p->dlq = oms_kafka_producer_new(d->cfg.kafka.brokers, props, np, on_dlq_delivery, p,
                                          err, sizeof err)) ||
        !(p->rk = make_consumer(p, err, sizeof err))) {
        set_state(p, PROJ_DOWN, err);
        oms_log(d->log, OMS_LOG_ERROR, "projections cannot start", OMS_LS("error", err),
                OMS_LI("worker", id));
        return p;
    }
    if (pthread_create(&p->thread, NULL, proj_main, p) != 0) {
        set_state(p, PROJ_DOWN, "cannot start the projection thread");
        return p;
    }
    p->started = true;
    return p;
}

int omsd_projections_start(omsd *d)
{
    if (!d->cfg.projections.enabled) {
        oms_log(d->log, OMS_LOG_INFO, "projections disabled (projections.enabled: false)");
        return OMS_OK;
    }
    omsd_projections *ps = calloc(1, sizeof *ps);
    if (!ps)
        return OMS_ENOMEM;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    size_t n = cpus >= PROJ_WORKERS ? PROJ_WORKERS : 1;
    int rc = OMS_OK;
    for (size_t i = 0; i < n; i++) {
        ps->w[ps->n] = worker_new(d, (int)i);
        if (!ps->w[ps->n]) {
            rc = OMS_ENOMEM;
            break;
        }
        if (!ps->w[ps->n++]->started)
            rc = OMS_EKAFKA;
    }
    d->proj = ps;
    return rc;
}

void omsd_projections_join(omsd *d)
{
    omsd_projections *ps = d->proj;
    if (!ps)
        return;
    for (size_t i = 0; i < ps->n; i++)
        if (ps->w[i]->started)
            pthread_join(ps->w[i]->thread, NULL);
    d->proj = NULL;
    for (size_t i = 0; i < ps->n; i++)
        proj_free(ps->w[i]);
    free(ps);
}

bool omsd_projections_health(omsd *d, json_t *deps)
{
    omsd_projections *ps = d->proj;
    if (!d->cfg.projections.enabled || !ps || !ps->n) {
        json_object_set_new(deps, "projections",
                            json_pack("{s:s}", "status",
                                      d->cfg.projections.enabled ? "down" : "disabled"));
        return !d->cfg.projections.enabled;
    }
    int state = PROJ_UP;
    char error[sizeof ps->w[0]->error];
    error[0] = '\0';
    int64_t last = 0, lag = 0;
    uint64_t applied = 0, rejected = 0;
    size_t assigned = 0;
    for (size_t i = 0; i < ps->n; i++) {
        proj_worker *p = ps->w[i];
        pthread_mutex_lock(&p->lock);
        if (p->state == PROJ_DOWN || (p->state == PROJ_STARTING && state == PROJ_UP))
            state = p->state;
        if (p->error[0] && !error[0])
            memcpy(error, p->error, sizeof error);
        if (p->last_applied_ms > last)
            last = p->last_applied_ms;
        lag += p->lag;
        applied += p->applied;
        rejected += p->rejected;
        assigned += p->assigned;
        pthread_mutex_unlock(&p->lock);
    }
    json_t *j = json_pack("{s:s,s:s,s:I,s:I,s:I,s:I,s:I}", "status",
                          state == PROJ_UP ? "up" : state == PROJ_DOWN ? "down" : "starting",
                          "group", d->cfg.kafka.projection_group, "workers", (json_int_t)ps->n,
                          "partitions", (json_int_t)assigned, "lag", (json_int_t)lag,
                          "eventsApplied", (json_int_t)applied, "rejected", (json_int_t)rejected);
    if (last) {
        char ts[32];
        oms_iso8601_ms(last, ts, sizeof ts);
        json_object_set_new(j, "lastAppliedAt", json_string(ts));
    }
    if (error[0])
        json_object_set_new(j, "error", json_string(error));
    json_object_set_new(deps, "projections", j);
    return state == PROJ_UP;
}
