/* plain.c — the plain JSON dialect on /events (DESIGN §3.2): a connection's
 * session (pkg/gateway: messages, roles, subscriptions), its routing entry,
 * its token expiry, pings and idle timeout, its resume. Calls the core
 * (conn.c) and resume.c; the core calls it only through the hooks it sets. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "conn_types.h"
#include "gateway/router.h"
#include "plain.h"

static void apply_out(omsd_conn *c, oms_gw_out *out)
{
    for (int i = 0; i < out->n; i++)
        omsd_conn_send_json(c, out->msgs[i].event, out->msgs[i].data);
    if (out->close_code)
        omsd_conn_close(c, out->close_code, out->close_reason);
}

/* ---- what a resume needs of a plain connection ---------------------------------------- */

static bool sink_send(void *conn, omsd_frame *f)
{
    return omsd_conn_enqueue(conn, f);
}

static uint32_t sink_queued(void *conn)
{
    return ((omsd_conn *)conn)->qlen;
}

static void sink_answer(void *conn, const char *event, json_t *data)
{
    omsd_conn_send_json_new(conn, event, data);
}

static void sink_close(void *conn, int code, const char *reason)
{
    omsd_conn *c = conn;
    omsd_conn_drop_queue(c);
    omsd_conn_close(c, code, reason);
}

static const omsd_rsink plain_sink = {sink_send, sink_queued, sink_answer, sink_close};

/* A live event for the plain connections the router picks. */
static void deliver(void *conn, void *ud)
{
    omsd_conn *c = conn;
    omsd_xq_item *it = ud;
    if (c->rst.rs && omsd_resume_hold(c->d, &c->rst, it->frame))
        return; /* behind the replay */
    if (!omsd_conn_enqueue(c, it->frame))
        c->d->m.dropped[it->topic]++;
}

void omsd_plain_dispatch(omsd_worker *w, const omsd_xq_item *it)
{
    oms_router_dispatch(w->router, it->type, it->user_id, deliver, (void *)it);
}

static json_t *env_positions(void *ud, oms_topic_kind kind)
{
    return omsd_positions(ud, kind);
}

/* ---- WebSocket connection life --------------------------------------------------------- */

static void schedule_expiry(omsd_conn *c);

static void on_token_expiry(oms_wtimer *t)
{
    omsd_conn *c = lws_container_of(t, omsd_conn, t_exp);
    if (!oms_auth_expired(c->sess.who.exp, oms_now_ms() / 1000, OMSD_AUTH_LEEWAY_S)) {
        schedule_expiry(c); /* refreshed meanwhile, or further than a day */
        return;
    }
    omsd_conn_send_json_new(c, "error", oms_gw_error("token_expired", "the token expired; reconnect with "
                                                             "a new one or send refresh_token "
                                                             "before expiry"));
    omsd_conn_close(c, OMS_CLOSE_TOKEN_EXPIRED, "token expired");
}

static void schedule_expiry(omsd_conn *c)
{
    /* the same grace the verification allows: a token accepted at the
     * upgrade is not closed the moment after; a far exp (any int64 a client
     * signs into its token) is looked at again daily, never overflowing the
     * timer */
    int64_t in = oms_auth_expires_in(c->sess.who.exp, oms_now_ms() / 1000, OMSD_AUTH_LEEWAY_S);
    oms_wheel_arm(&c->w->wheel, &c->t_exp, omsd_mono_ms(), in * 1000 + 1, on_token_expiry);
}

/* Pings and the idle timeout (server.ping_interval_s, idle_timeout_s): a
 * ping when nothing came from the peer for a ping interval, the connection
 * dropped when nothing came for the idle timeout. */
static void on_idle_check(oms_wtimer *t)
{
    omsd_conn *c = lws_container_of(t, omsd_conn, t_idle);
    omsd *d = c->d;
    int64_t ping = (int64_t)d->cfg.server.ping_interval_s * 1000;
    int64_t hangup = (int64_t)d->cfg.server.idle_timeout_s * 1000;
    int64_t now = omsd_mono_ms(), idle = now - c->last_rx_ms;
    if (idle >= hangup) {
        oms_log(d->log, OMS_LOG_DEBUG, "idle client dropped", OMS_LI("userId", c->sess.who.user_id));
        omsd_conn_kill(c);
        return;
    }
    int64_t next = ping - idle;
    if (idle >= ping) {
        c->ping_due = true;
        omsd_conn_want_write(c);
        next = ping < hangup - idle ? ping : hangup - idle;
    }
    oms_wheel_arm(&c->w->wheel, &c->t_idle, now, next, on_idle_check);
}

static oms_gw_env make_env(omsd *d)
{
    oms_gw_env env = {d->auth, env_positions, d, oms_now_ms()};
    return env;
}

/* The queue went down: a running resume sends more. */
static void drained(omsd_conn *c)
{
    if (c->rst.rs)
        omsd_resume_pump(c->d, &c->rst);
}

int omsd_plain_open(omsd_conn *c, const oms_principal *who)
{
    omsd *d = c->d;
    oms_session_init(&c->sess, who, d->cfg.server.rate_limit_per_min, oms_now_ms());
    if (omsd_rstate_init(d, &c->rst) != OMS_OK ||
        oms_router_add(c->w->router, &c->route, c, &c->sess) != OMS_OK) {
        omsd_rstate_free(d, &c->rst);
        return -1;
    }
    omsd_conn_on_drained(c, drained);
    c->next = c->w->conns;
    if (c->w->conns)
        c->w->conns->prev = c;
    c->w->conns = c;
    atomic_fetch_add(&c->w->nconns, 1);
    omsd_users_add(d, who->user_id, 1);
    d->m.connections_total++;
    oms_gw_env env = make_env(d);
    omsd_conn_send_json_new(c, "connected", oms_gw_connected(&c->sess, &env));
    schedule_expiry(c);
    c->last_rx_ms = omsd_mono_ms();
    oms_wheel_arm(&c->w->wheel, &c->t_idle, c->last_rx_ms,
                  (int64_t)d->cfg.server.ping_interval_s * 1000, on_idle_check);
    oms_log(d->log, OMS_LOG_DEBUG, "client connected", OMS_LI("userId", who->user_id),
            OMS_LS("role", oms_role_name(who->role)));
    return 0;
}

void omsd_plain_closed(omsd_conn *c)
{
    omsd *d = c->d;
    oms_wheel_cancel(&c->w->wheel, &c->t_exp);
    oms_wheel_cancel(&c->w->wheel, &c->t_idle);
    oms_router_remove(c->w->router, &c->route);
    omsd_users_add(d, c->sess.who.user_id, -1);
    omsd_subs_count(d, c->sess.subs, 0);
    omsd_rstate_free(d, &c->rst);
    if (c->prev)
        c->prev->next = c->next;
    else if (c->w->conns == c)
        c->w->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->next = c->prev = NULL;
    atomic_fetch_sub(&c->w->nconns, 1);
}

void omsd_plain_pong(omsd_conn *c)
{
    c->last_rx_ms = omsd_mono_ms();
}

void omsd_plain_drain(omsd_worker *w)
{
    for (omsd_conn *c = w->conns; c; c = c->next)
        omsd_conn_close(c, OMS_CLOSE_GOING_AWAY, "server shutting down");
}

int omsd_plain_receive(omsd_conn *c, const char *in, size_t len)
{
    omsd *d = c->d;
    size_t max = (size_t)d->cfg.server.max_frame_bytes;
    c->last_rx_ms = omsd_mono_ms();
    if (c->closing)
        return 0;
    int rc = omsd_conn_collect(c, in, len, max);
    if (rc == 2) {
        char msg[128];
        snprintf(msg, sizeof msg, "message over the %zu-byte limit", max);
        omsd_conn_send_json_new(c, "error", oms_gw_error("too_large", msg));
        omsd_conn_close(c, OMS_CLOSE_TOO_BIG, "message too big");
        return 0;
    }
    if (rc <= 0)
        return rc;
    oms_gw_env env = make_env(d);
    oms_gw_out out;
    memset(&out, 0, sizeof out);
    out.answer = -1;
    unsigned subs = c->sess.subs;
    oms_session_on_text(&c->sess, &env, c->rx, c->rxlen, &out);
    if (c->sess.subs != subs) {
        omsd_rstate_subs(d, &c->rst, subs, c->sess.subs);
        omsd_subs_count(d, subs, c->sess.subs);
    }
    if (oms_router_update(c->w->router, &c->route, &c->sess) != OMS_OK)
        omsd_conn_close(c, OMS_CLOSE_TRY_LATER, "out of memory");
    omsd_conn_rx_done(c);
    if (out.n > 0 && strcmp(out.msgs[0].event, "error") == 0 &&
        strcmp(json_string_value(json_object_get(out.msgs[0].data, "code")), "rate_limited") == 0)
        d->m.rate_limited++;
    if (out.exp_changed)
        schedule_expiry(c);
    apply_out(c, &out);
    if (out.resume && !c->closing)
        omsd_resume_start(d, &c->rst, &c->sess, out.resume_since, &plain_sink, c);
    oms_gw_out_clear(&out);
    return 0;
}
