/* alerts.c — the alerting consumer (DESIGN §3.8, the original system's
 * Sentry and e-mail notice of each new order): its own consumer group
 * (alerts.group) on the topics alerts.rules reads, one thread per omsd.
 *
 * Exactly one notice per event. Where a partition starts is what Postgres
 * stores for the group (oms_offsets), as for the projections. Each event a
 * rule matches goes through three steps, in partition order:
 *   1. claim: one transaction checks the stored offset is still ours,
 *      looks the eventId up in alert_notices, and records the decision:
 *      notify on its own, or fold into the next digest when more than
 *      alerts.max_per_minute notices were decided in the last minute (the
 *      offset moves past a folded event at once);
 *   2. send to every sink (Sentry: event_id derived from the eventId;
 *      e-mail: Message-ID derived from it);
 *   3. record: sent_at and the next offset, in one transaction.
 * A crash between 2 and 3 sends the same notice again at the next start,
 * with the same Sentry event_id (Sentry drops the repeat) and Message-ID
 * (mail systems that drop duplicate Message-IDs drop it): the window is
 * that of one notice, and receivers see it once. An event recorded as sent
 * or folded is never sent again, whatever rereads it (a restart, another
 * instance, a rebuild). A sink or Postgres that fails holds the partitions
 * (paused; the consumer keeps polling so the group membership lives) and
 * the same step is tried again with a backoff of 1 s doubling to
 * alerts.retry_max_s: nothing is skipped.
 *
 * Digests: one instance at a time (a Postgres advisory lock) gathers the
 * folded notices not yet in a digest once the oldest is
 * alerts.digest_interval_s old, records the digest, sends it (one e-mail,
 * one Sentry event naming the count) and records it sent; a digest recorded
 * and not sent is sent again with the same ids.
 *
 * Test hook: OMS_ALERTS_FAULT=exit-after-send:N makes omsd kill itself with
 * SIGKILL right after the Nth notice went to every sink and before it is
 * recorded (the crash window above). Off unless set. */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alerts.h"
#include "pg/pg.h"

#define BACKOFF_MIN_MS 1000
#define FLUSH_EVERY_NS 1000000000u
#define DIGEST_CHECK_NS 1000000000u

enum { CUR_NONE = 0, CUR_EVENT, CUR_DIGEST };
enum { ST_CLAIM = 0, ST_SEND, ST_RECORD };

typedef struct al_part {
    oms_topic_kind kind;
    int32_t partition;
    int64_t stored; /* the next offset stored in Postgres, as far as we know */
    int64_t next;   /* the next offset to handle */
    bool need_seek; /* where to start is not known yet (Postgres was down) */
} al_part;

typedef struct al_msg {
    struct al_msg *next;
    rd_kafka_message_t *m;
} al_msg;

typedef struct al_cur {
    int kind;
    int stage;
    rd_kafka_message_t *m;
    size_t part;
    oms_event ev;
    bool decoded;
    oms_alert_notice n;
    bool built;
    bool done[SINK__COUNT];
    unsigned tries[SINK__COUNT]; /* attempts so far: the second and later are retries */
    oms_alert_digest dg;
} al_cur;

struct al_worker {
    omsd *d;
    struct omsd_alerts *a;
    rd_kafka_t *rk;
    rd_kafka_resp_err_t last_kafka_err;
    oms_pg *pg;
    uint64_t pg_retry_ns;
    al_part *parts;
    size_t nparts;
    al_msg *qhead, *qtail; /* fetched while holding, handled first */
    bool paused;
    al_cur cur;
    uint64_t retry_ns;
    int backoff_ms;
    uint64_t last_flush_ns, next_digest_ns;
    long fault_after; /* OMS_ALERTS_FAULT: SIGKILL after this many sends, 0 off */
    long sends;
    char mail_domain[256];
};

/* ---- shared state -------------------------------------------------------------------------- */

static void set_pg(al_worker *w, bool ok, const char *error)
{
    struct omsd_alerts *a = w->a;
    pthread_mutex_lock(&a->lock);
    bool was = a->pg_ok;
    bool same = strcmp(a->pg_error, error ? error : "") == 0;
    a->pg_ok = ok;
    snprintf(a->pg_error, sizeof a->pg_error, "%s", ok ? "" : error ? error : "");
    pthread_mutex_unlock(&a->lock);
    if (!ok && (was || !same))
        oms_log(w->d->log, OMS_LOG_ERROR, "alerts: postgres failing, notices held",
                OMS_LS("error", error ? error : ""));
    else if (ok && !was)
        oms_log(w->d->log, OMS_LOG_INFO, "alerts: postgres ready",
                OMS_LS("group", w->d->cfg.alerts.group));
}

static void set_holding(al_worker *w, bool holding, const char *why)
{
    pthread_mutex_lock(&w->a->lock);
    w->a->holding = holding;
    snprintf(w->a->holding_why, sizeof w->a->holding_why, "%s", holding && why ? why : "");
    w->a->assigned = w->nparts;
    pthread_mutex_unlock(&w->a->lock);
}

/* ---- partitions ---------------------------------------------------------------------------- */

static const char *topic_of(const al_worker *w, const al_part *p)
{
    return w->d->topics[p->kind];
}

static rd_kafka_topic_partition_list_t *parts_list(al_worker *w)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)w->nparts + 1);
    for (size_t i = 0; i < w->nparts; i++)
        if (!w->parts[i].need_seek)
            rd_kafka_topic_partition_list_add(l, topic_of(w, &w->parts[i]), w->parts[i].partition);
    return l;
}

static void pause_all(al_worker *w)
{
    if (w->paused)
        return;
    w->paused = true;
    rd_kafka_topic_partition_list_t *l = parts_list(w);
    if (l->cnt)
        rd_kafka_pause_partitions(w->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
}

static void resume_all(al_worker *w)
{
    if (!w->paused)
        return;
    w->paused = false;
    rd_kafka_topic_partition_list_t *l = parts_list(w);
    if (l->cnt)
        rd_kafka_resume_partitions(w->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
}

static al_part *find_part(al_worker *w, const char *topic, int32_t partition, size_t *idx)
{
    for (size_t i = 0; i < w->nparts; i++) {
        if (w->parts[i].partition == partition && strcmp(topic_of(w, &w->parts[i]), topic) == 0) {
            if (idx)
                *idx = i;
            return &w->parts[i];
        }
    }
    return NULL;
}

static void queue_drop(al_worker *w, const al_part *only)
{
    al_msg **pp = &w->qhead;
    w->qtail = NULL;
    while (*pp) {
        al_msg *q = *pp;
        al_part *p = find_part(w, rd_kafka_topic_name(q->m->rkt), q->m->partition, NULL);
        if (!only || p == only) {
            *pp = q->next;
            rd_kafka_message_destroy(q->m);
            free(q);
        } else {
            w->qtail = q;
            pp = &q->next;
        }
    }
}

static void cur_clear(al_worker *w)
{
    al_cur *c = &w->cur;
    if (c->m)
        rd_kafka_message_destroy(c->m);
    if (c->decoded)
        oms_event_clear(&c->ev);
    if (c->built)
        oms_alert_notice_clear(&c->n);
    if (c->kind == CUR_DIGEST)
        oms_alert_digest_clear(&c->dg);
    memset(c, 0, sizeof *c);
    w->backoff_ms = BACKOFF_MIN_MS;
    set_holding(w, false, NULL);
}

static void pg_drop(al_worker *w)
{
    if (w->pg)
        oms_pg_free(w->pg);
    w->pg = NULL;
    /* the digest lock went with the connection: whoever takes it next
     * sends that digest (recorded, not sent) with the same ids */
    if (w->cur.kind == CUR_DIGEST) {
        cur_clear(w);
        resume_all(w);
    }
}

/* Postgres connected and migrated. */
static bool pg_ready(al_worker *w)
{
    if (w->pg && oms_pg_connected(w->pg))
        return true;
    if (w->pg)
        pg_drop(w);
    uint64_t now = oms_mono_ns();
    if (now < w->pg_retry_ns)
        return false;
    char err[512];
    w->pg = oms_pg_connect(&w->d->cfg, "omsd-alerts", 3, err, sizeof err);
    /* the alert tables are migration 0002: applied like the projections'
     * (projections.migrate_on_start), else required */
    int from, to = 0;
    if (w->pg && w->d->cfg.projections.migrate_on_start &&
        oms_pg_migrate(w->pg, &from, &to, err, sizeof err) != OMS_OK) {
        oms_pg_free(w->pg);
        w->pg = NULL;
    } else if (w->pg && !w->d->cfg.projections.migrate_on_start) {
        if (oms_pg_schema_version(w->pg, &to, err, sizeof err) == OMS_OK && to < 2)
            snprintf(err, sizeof err, "schema version %d: the alert tables need version 2; run "
                                      "'omsctl projections migrate'", to);
        if (to < 2) {
            oms_pg_free(w->pg);
            w->pg = NULL;
        }
    }
    if (!w->pg) {
        /* the outage itself is reported by the poll thread, once */
        set_pg(w, false, err);
        w->pg_retry_ns = now + 2000000000u;
        return false;
    }
    set_pg(w, true, NULL);
    return true;
}

static void pg_failed(al_worker *w, const char *err)
{
    set_pg(w, false, err);
    if (w->pg && !oms_pg_connected(w->pg))
        pg_drop(w);
}

/* The stored next offset of p, created at the start position (the end of
 * the log for alerts.start=end, so that a new group does not alert on the
 * past) when the group has none. False when Kafka or Postgres failed. */
static bool position_of(al_worker *w, const al_part *p, int64_t *next)
{
    if (!pg_ready(w))
        return false;
    bool from_end = strcmp(w->d->cfg.alerts.start, "end") == 0;
    int64_t lo = 0, hi = 0;
    if (from_end && rd_kafka_query_watermark_offsets(w->rk, topic_of(w, p), p->partition, &lo, &hi,
                                                     5000) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return false;
    char err[512];
    if (oms_alert_store_position(oms_pg_handle(w->pg), w->d->cfg.alerts.group, topic_of(w, p),
                                 p->partition, from_end ? hi : 0, next, err, sizeof err)) {
        pg_failed(w, err);
        return false;
    }
    return true;
}

/* Seek the partitions whose start was not known (Postgres was down, or the
 * stored offset moved) to their stored offsets. */
static void seek_pending(al_worker *w)
{
    for (size_t i = 0; i < w->nparts; i++) {
        al_part *p = &w->parts[i];
        int64_t next;
        if (!p->need_seek)
            continue;
        if (!position_of(w, p, &next))
            return; /* tried again on the next turn */
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(l, topic_of(w, p), p->partition)->offset = next;
        rd_kafka_resume_partitions(w->rk, l); /* the seek then sets where fetching goes on */
        rd_kafka_error_t *e = rd_kafka_seek_partitions(w->rk, l, 5000);
        bool ok = !e && !l->elems[0].err;
        if (e)
            rd_kafka_error_destroy(e);
        if (!ok || w->paused)
            rd_kafka_pause_partitions(w->rk, l);
        rd_kafka_topic_partition_list_destroy(l);
        if (!ok)
            return;
        queue_drop(w, p);
        p->stored = p->next = next;
        p->need_seek = false;
    }
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    al_worker *w = opaque;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        free(w->parts);
        w->parts = calloc((size_t)parts->cnt + 1, sizeof *w->parts);
        w->nparts = 0;
        w->paused = false;
        rd_kafka_topic_partition_list_t *later = rd_kafka_topic_partition_list_new(parts->cnt + 1);
        for (int i = 0; w->parts && i < parts->cnt; i++) {
            oms_topic_kind kind = OMS_TOPIC_ORDERS;
            for (int k = 0; k < OMS_TOPIC__COUNT; k++)
                if (strcmp(w->d->topics[k], parts->elems[i].topic) == 0)
                    kind = (oms_topic_kind)k;
            al_part *p = &w->parts[w->nparts++];
            *p = (al_part){kind, parts->elems[i].partition, 0, 0, false};
            int64_t next;
            if (position_of(w, p, &next)) {
                parts->elems[i].offset = next;
                p->stored = p->next = next;
            } else {
                /* paused until the stored offset is known (seek_pending) */
                parts->elems[i].offset = RD_KAFKA_OFFSET_END;
                p->need_seek = true;
                rd_kafka_topic_partition_list_add(later, parts->elems[i].topic,
                                                  parts->elems[i].partition);
            }
        }
        rd_kafka_assign(rk, parts);
        if (later->cnt)
            rd_kafka_pause_partitions(rk, later);
        rd_kafka_topic_partition_list_destroy(later);
        oms_log(w->d->log, OMS_LOG_INFO, "alerts: partitions assigned",
                OMS_LI("count", parts->cnt), OMS_LS("group", w->d->cfg.alerts.group));
        if (w->cur.kind)
            pause_all(w);
    } else {
        /* the new owner claims again what we held; a notice sent and not
         * recorded goes out again with the same ids */
        queue_drop(w, NULL);
        if (w->cur.kind == CUR_EVENT)
            cur_clear(w);
        rd_kafka_assign(rk, NULL);
        free(w->parts);
        w->parts = NULL;
        w->nparts = 0;
        w->paused = false;
    }
    set_holding(w, w->cur.kind != CUR_NONE, w->a->holding_why);
}

/* ---- steps ----------------------------------------------------------------------------------- */

static void hold(al_worker *w, const char *why)
{
    pause_all(w);
    w->retry_ns = oms_mono_ns() + (uint64_t)w->backoff_ms * 1000000u;
    int cap = w->d->cfg.alerts.retry_max_s * 1000;
    w->backoff_ms = w->backoff_ms * 2 > cap ? cap : w->backoff_ms * 2;
    set_holding(w, true, why);
}

/* The stored offset moved: another member owns the partition now, or a
 * rebuild reset it. Read it again from what is stored. */
static void moved(al_worker *w, al_part *p, const char *err)
{
    oms_log(w->d->log, OMS_LOG_WARN, "alerts: stored offset moved, reading from it again",
            OMS_LS("error", err));
    if (w->cur.kind == CUR_EVENT && &w->parts[w->cur.part] == p)
        cur_clear(w);
    p->need_seek = true;
    seek_pending(w);
    if (!w->cur.kind)
        resume_all(w);
}

static bool send_sinks(al_worker *w)
{
    struct omsd_alerts *a = w->a;
    al_cur *c = &w->cur;
    oms_alert_notice *n = &c->n;
    bool all = true;
    char err[700];
    for (int s = 0; s < SINK__COUNT; s++)
        if ((s == SINK_SENTRY ? a->s.sentry : a->s.email) && !c->done[s] && c->tries[s]++)
            atomic_fetch_add(&a->retried[s], 1);
    if (a->s.sentry && !c->done[SINK_SENTRY]) {
        oms_sentry_event ev = {
            .event_id = n->event_id,
            .level = n->level,
            .message = n->message,
            .logger = "oms.alerts",
            .environment = w->d->cfg.alerts.sentry_environment,
            .server_name = a->server_name,
            .tags = n->tags,
            .extra = n->extra,
            .timestamp_ms = n->timestamp_ms,
        };
        if (omsd_alerts_sentry_send(a, &ev, err, sizeof err) == OMS_SENTRY_OK) {
            c->done[SINK_SENTRY] = true;
            atomic_fetch_add(&a->sent[SINK_SENTRY], 1);
        } else {
            atomic_fetch_add(&a->failed[SINK_SENTRY], 1);
            all = false;
        }
    }
    if (a->s.email && !c->done[SINK_EMAIL]) {
        const __typeof__(w->d->cfg.alerts) *cf = &w->d->cfg.alerts;
        char mid[400];
        oms_mail_message_id(n->key, w->mail_domain, mid, sizeof mid);
        oms_mail_message m = {
            .from = a->s.from,
            .from_name = cf->email_from_name,
            .to = (const char *const *)a->s.recipients,
            .nto = a->s.nrecipients,
            .subject = n->subject,
            .text = n->text,
            .html = n->html,
            .message_id = mid,
            .date_ms = oms_now_ms(),
        };
        char *msg;
        size_t len;
        if (oms_mail_build(&m, &msg, &len, err, sizeof err) != OMS_OK) {
            omsd_alerts_sink_result(a, SINK_EMAIL, false, err);
            atomic_fetch_add(&a->failed[SINK_EMAIL], 1);
            all = false;
        } else {
            oms_smtp_opts o = {cf->email_host, cf->email_port, a->s.tls, cf->email_user,
                               cf->email_password, cf->email_ca_file, cf->email_timeout_s * 1000L,
                               NULL};
            oms_smtp_outcome r = oms_smtp_send(&o, a->s.from, (const char *const *)a->s.recipients,
                                               a->s.nrecipients, msg, len, err, sizeof err);
            free(msg);
            omsd_alerts_sink_result(a, SINK_EMAIL, r == OMS_SMTP_OK, err);
            if (r == OMS_SMTP_OK) {
                c->done[SINK_EMAIL] = true;
                atomic_fetch_add(&a->sent[SINK_EMAIL], 1);
            } else {
                atomic_fetch_add(&a->failed[SINK_EMAIL], 1);
                all = false;
            }
        }
    }
    return all;
}

static void fault_point(al_worker *w)
{
    if (w->fault_after > 0 && ++w->sends == w->fault_after) {
        oms_log(w->d->log, OMS_LOG_WARN, "alerts: OMS_ALERTS_FAULT: SIGKILL after the send, "
                                         "before the record",
                OMS_LS("key", w->cur.n.key));
        /* as abrupt as a kill -9 from outside: no handler, no flush */
        kill(getpid(), SIGKILL);
        _exit(137); /* not reached */
    }
}

/* One turn of the notice in hand. */
static void step(al_worker *w)
{
    omsd *d = w->d;
    al_cur *c = &w->cur;
    char err[700];
    if (!pg_ready(w)) {
        /* a digest in hand went with the connection (its lock too) */
        if (c->kind)
            hold(w, "postgres unavailable");
        return;
    }
    PGconn *pc = oms_pg_handle(w->pg);
    al_part *p = c->kind == CUR_EVENT ? &w->parts[c->part] : NULL;
    if (c->stage == ST_CLAIM) {
        char summary[512];
        oms_alert_summary(&c->ev, summary, sizeof summary);
        oms_alert_decision dec;
        int rc = oms_alert_store_claim(pc, d->cfg.alerts.group, topic_of(w, p), p->partition,
                                       p->stored, c->m->offset, c->ev.event_id,
                                       oms_event_type_name(c->ev.type), summary,
                                       d->cfg.alerts.max_per_minute, &dec, err, sizeof err);
        if (rc == OMS_EEXPIRED) {
            moved(w, p, err);
            return;
        }
        if (rc) {
            pg_failed(w, err);
            hold(w, "postgres failing");
            return;
        }
        set_pg(w, true, NULL);
        p->stored = c->m->offset;
        if (dec != OMS_ALERT_SEND) {
            p->stored = c->m->offset + 1;
            atomic_fetch_add(dec == OMS_ALERT_FOLDED ? &w->a->folded : &w->a->duplicates, 1);
            cur_clear(w);
            resume_all(w);
            return;
        }
        if (oms_alert_notice_from_event(&c->ev, d->cfg.alerts.console_url, &c->n) != OMS_OK) {
            hold(w, "out of memory");
            return;
        }
        c->built = true;
        c->stage = ST_SEND;
    }
    if (c->stage == ST_SEND) {
        if (!send_sinks(w)) {
            hold(w, "a sink is failing");
            return;
        }
        fault_point(w);
        c->stage = ST_RECORD;
    }
    int rc = c->kind == CUR_EVENT
                 ? oms_alert_store_done(pc, d->cfg.alerts.group, topic_of(w, p), p->partition,
                                        c->m->offset, c->ev.event_id, err, sizeof err)
                 : oms_alert_store_digest_done(pc, c->dg.id, err, sizeof err);
    if (rc == OMS_EEXPIRED) {
        moved(w, p, err);
        return;
    }
    if (rc) {
        pg_failed(w, err);
        if (c->kind)
            hold(w, "postgres failing");
        return;
    }
    if (c->kind == CUR_EVENT) {
        p->stored = c->m->offset + 1;
        oms_log(d->log, OMS_LOG_INFO, "alerts: notice sent", OMS_LS("event", c->ev.event_id),
                OMS_LS("message", c->n.message));
    } else {
        atomic_fetch_add(&w->a->digests, 1);
        oms_log(d->log, OMS_LOG_INFO, "alerts: digest sent", OMS_LS("digest", c->dg.id),
                OMS_LI("notices", c->dg.count));
    }
    cur_clear(w);
    resume_all(w);
}

/* A fetched record: decode, match, and take it in hand when it alerts. */
static void handle(al_worker *w, rd_kafka_message_t *m)
{
    size_t idx;
    al_part *p = find_part(w, rd_kafka_topic_name(m->rkt), m->partition, &idx);
    if (!p || p->need_seek || m->offset < p->next) {
        /* a partition not ours any more, or read again before a seek */
        rd_kafka_message_destroy(m);
        return;
    }
    oms_event ev;
    char err[256];
    if (oms_event_decode(w->d->events, m->payload, m->len, &ev, err, sizeof err) != OMS_OK) {
        /* the fan-out and projections copy it to the DLQ; nothing to alert */
        p->next = m->offset + 1;
        rd_kafka_message_destroy(m);
        return;
    }
    if (oms_alert_rules_match(&w->a->s.rules, &ev) < 0) {
        oms_event_clear(&ev);
        p->next = m->offset + 1;
        rd_kafka_message_destroy(m);
        return;
    }
    p->next = m->offset + 1;
    al_cur *c = &w->cur;
    c->kind = CUR_EVENT;
    c->stage = ST_CLAIM;
    c->m = m;
    c->part = idx;
    c->ev = ev;
    c->decoded = true;
    step(w);
}

/* Store the offsets of records that raised nothing (every second, and when
 * idle), so that a restart does not read them again. */
static void flush_offsets(al_worker *w)
{
    w->last_flush_ns = oms_mono_ns();
    for (size_t i = 0; i < w->nparts; i++) {
        al_part *p = &w->parts[i];
        if (p->need_seek || p->next <= p->stored)
            continue;
        if (w->cur.kind == CUR_EVENT && w->cur.part == i)
            continue; /* the claim moves it */
        if (!pg_ready(w))
            return;
        char err[512];
        int rc = oms_alert_store_advance(oms_pg_handle(w->pg), w->d->cfg.alerts.group,
                                         topic_of(w, p), p->partition, p->stored, p->next, err,
                                         sizeof err);
        if (rc == OMS_EEXPIRED) {
            moved(w, p, err);
            return;
        }
        if (rc) {
            pg_failed(w, err);
            return;
        }
        p->stored = p->next;
    }
}

static void digest_check(al_worker *w)
{
    w->next_digest_ns = oms_mono_ns() + DIGEST_CHECK_NS;
    if (!pg_ready(w))
        return;
    al_cur *c = &w->cur;
    char err[512];
    int rc = oms_alert_store_digest_take(oms_pg_handle(w->pg), w->d->cfg.alerts.digest_interval_s,
                                         &c->dg, err, sizeof err);
    if (rc < 0) {
        pg_failed(w, err);
        return;
    }
    if (rc == 0)
        return;
    c->kind = CUR_DIGEST;
    c->stage = ST_SEND;
    if (oms_alert_notice_digest(c->dg.id, (const char *const *)c->dg.lines, c->dg.count,
                                w->d->cfg.alerts.max_per_minute, c->dg.first_ms, c->dg.last_ms,
                                w->d->cfg.alerts.console_url, oms_now_ms(), &c->n) != OMS_OK) {
        oms_alert_store_digest_release(oms_pg_handle(w->pg));
        cur_clear(w);
        return;
    }
    c->built = true;
    step(w);
}

/* ---- the thread -------------------------------------------------------------------------------- */

static void on_kafka_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    if (getenv("OMS_KAFKA_DEBUG"))
        fprintf(stderr, "librdkafka: %d %s: %s\n", level, fac, buf);
}

static void on_kafka_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    al_worker *w = opaque;
    if ((rd_kafka_resp_err_t)err == w->last_kafka_err)
        return;
    w->last_kafka_err = (rd_kafka_resp_err_t)err;
    oms_log(w->d->log, OMS_LOG_WARN, "alerts: kafka error", OMS_LS("error", reason));
}

static rd_kafka_t *make_consumer(al_worker *w, char *errbuf, size_t errlen)
{
    omsd *d = w->d;
    static const char *const defaults[] = {
        "enable.auto.commit", "false",  "enable.auto.offset.store", "false",
        "session.timeout.ms", "10000",  "heartbeat.interval.ms",    "2000",
        "enable.partition.eof", "false", "client.id",               "omsd-alerts",
        NULL,
    };
    char err[512];
    rd_kafka_conf_t *conf = oms_kafka_group_conf(d->cfg.kafka.brokers, d->cfg.alerts.group, defaults,
                                                 d->cfg.kafka.props, d->cfg.kafka.nprops, errbuf,
                                                 errlen);
    if (!conf)
        return NULL;
    rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
    rd_kafka_conf_set_log_cb(conf, on_kafka_log);
    rd_kafka_conf_set_error_cb(conf, on_kafka_error);
    rd_kafka_conf_set_opaque(conf, w);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    if (!rk) {
        oms_errf(errbuf, errlen, "cannot create the alerts consumer: %s", err);
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(OMS_TOPIC__COUNT);
    for (int k = 0; k < OMS_TOPIC__COUNT; k++)
        if (w->a->s.topics & (1u << k))
            rd_kafka_topic_partition_list_add(l, d->topics[k], RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (e) {
        oms_errf(errbuf, errlen, "cannot subscribe: %s", rd_kafka_err2str(e));
        rd_kafka_destroy(rk);
        return NULL;
    }
    return rk;
}

static void queue_push(al_worker *w, rd_kafka_message_t *m)
{
    al_msg *q = calloc(1, sizeof *q);
    if (!q) {
        /* cannot keep it: read it again from the stored offset */
        al_part *p = find_part(w, rd_kafka_topic_name(m->rkt), m->partition, NULL);
        if (p)
            p->need_seek = true;
        rd_kafka_message_destroy(m);
        return;
    }
    q->m = m;
    if (w->qtail)
        w->qtail->next = q;
    else
        w->qhead = q;
    w->qtail = q;
}

static rd_kafka_message_t *next_message(al_worker *w, int timeout_ms)
{
    if (w->qhead) {
        al_msg *q = w->qhead;
        w->qhead = q->next;
        if (!w->qhead)
            w->qtail = NULL;
        rd_kafka_message_t *m = q->m;
        free(q);
        return m;
    }
    rd_kafka_message_t *m = rd_kafka_consumer_poll(w->rk, timeout_ms);
    if (m && m->err) {
        if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
            on_kafka_error(w->rk, m->err, rd_kafka_message_errstr(m), w);
        rd_kafka_message_destroy(m);
        return NULL;
    }
    return m;
}

static void *alerts_main(void *arg)
{
    al_worker *w = arg;
    omsd *d = w->d;
    while (!atomic_load(&d->threads_stop)) {
        uint64_t now = oms_mono_ns();
        seek_pending(w);
        if (w->cur.kind) {
            if (now >= w->retry_ns) {
                step(w);
                continue;
            }
            /* keep the group membership: poll; what arrives waits its turn */
            rd_kafka_message_t *m = rd_kafka_consumer_poll(w->rk, 100);
            if (m && !m->err)
                queue_push(w, m);
            else if (m)
                rd_kafka_message_destroy(m);
            continue;
        }
        if (now >= w->next_digest_ns) {
            digest_check(w);
            if (w->cur.kind)
                continue;
        }
        rd_kafka_message_t *m = next_message(w, 100);
        if (m)
            handle(w, m);
        if (!m || oms_mono_ns() - w->last_flush_ns >= FLUSH_EVERY_NS)
            flush_offsets(w);
    }
    if (!w->cur.kind)
        flush_offsets(w);
    return NULL;
}

/* ---- start, stop, health, metrics ------------------------------------------------------------ */

int omsd_alerts_init(omsd *d, char *errbuf, size_t errlen)
{
    struct omsd_alerts *a = calloc(1, sizeof *a);
    if (!a) {
        oms_errf(errbuf, errlen, "out of memory");
        return OMS_ENOMEM;
    }
    int rc = oms_alert_settings_load(&d->cfg, &a->s, errbuf, errlen);
    if (rc) {
        free(a);
        return rc;
    }
    if (a->s.enabled && !a->s.topics) {
        oms_alert_settings_free(&a->s);
        free(a);
        oms_errf(errbuf, errlen, "alerts.rules: no topic to read");
        return OMS_ECONFIG;
    }
    a->d = d;
    pthread_mutex_init(&a->lock, NULL);
    pthread_cond_init(&a->rcond, NULL);
    for (int s = 0; s < SINK__COUNT; s++)
        a->sink[s].last_ok_ms = a->sink[s].last_err_ms = -1;
    if (gethostname(a->server_name, sizeof a->server_name) != 0)
        snprintf(a->server_name, sizeof a->server_name, "omsd");
    a->server_name[sizeof a->server_name - 1] = '\0';
    d->alerts = a;
    return 0;
}

int omsd_alerts_start(omsd *d)
{
    struct omsd_alerts *a = d->alerts;
    if (!a)
        return 0;
    if (omsd_alerts_reporter_start(a) != 0)
        oms_log(d->log, OMS_LOG_ERROR, "alerts: own-error reporter not started");
    if (!a->s.enabled) {
        if (a->s.sentry)
            oms_log(d->log, OMS_LOG_INFO, "alerts: notices off; omsd's own errors go to sentry",
                    OMS_LS("sentry", a->s.sentry_where));
        return 0;
    }
    al_worker *w = calloc(1, sizeof *w);
    if (!w)
        return OMS_ENOMEM;
    w->d = d;
    w->a = a;
    w->backoff_ms = BACKOFF_MIN_MS;
    const char *fault = getenv("OMS_ALERTS_FAULT");
    if (fault && strncmp(fault, "exit-after-send:", 16) == 0)
        w->fault_after = strtol(fault + 16, NULL, 10);
    const char *at = strchr(a->s.from, '@');
    snprintf(w->mail_domain, sizeof w->mail_domain, "%s", at ? at + 1 : "localhost");
    char err[512];
    w->rk = make_consumer(w, err, sizeof err);
    if (!w->rk) {
        oms_log(d->log, OMS_LOG_ERROR, "alerts: not started", OMS_LS("error", err));
        free(w);
        return OMS_EKAFKA;
    }
    if (pthread_create(&a->thread, NULL, alerts_main, w) != 0) {
        rd_kafka_destroy(w->rk);
        free(w);
        return OMS_EIO;
    }
    a->worker = w;
    a->started = true;
    char targets[600];
    snprintf(targets, sizeof targets, "%s%s%s", a->s.sentry ? a->s.sentry_where : "",
             a->s.sentry && a->s.email ? ", " : "", a->s.email ? "smtp" : "");
    oms_log(d->log, OMS_LOG_INFO, "alerts: consumer started", OMS_LS("group", d->cfg.alerts.group),
            OMS_LS("rules", d->cfg.alerts.rules), OMS_LB("sentry", a->s.sentry),
            OMS_LB("email", a->s.email), OMS_LI("recipients", a->s.nrecipients));
    return 0;
}

void omsd_alerts_join(omsd *d)
{
    struct omsd_alerts *a = d->alerts;
    if (!a)
        return;
    if (a->started) {
        pthread_join(a->thread, NULL);
        al_worker *w = a->worker;
        queue_drop(w, NULL);
        if (w->cur.kind == CUR_DIGEST && w->pg)
            oms_alert_store_digest_release(oms_pg_handle(w->pg));
        cur_clear(w);
        rd_kafka_consumer_close(w->rk);
        rd_kafka_destroy(w->rk);
        if (w->pg)
            oms_pg_free(w->pg);
        free(w->parts);
        free(w);
        a->worker = NULL;
        a->started = false;
    }
    omsd_alerts_reporter_join(a);
}

void omsd_alerts_free(omsd *d)
{
    struct omsd_alerts *a = d->alerts;
    if (!a)
        return;
    oms_alert_settings_free(&a->s);
    pthread_mutex_destroy(&a->lock);
    pthread_cond_destroy(&a->rcond);
    free(a);
    d->alerts = NULL;
}
