/* sse.c — Server-Sent Events (DESIGN §3.5, issue #19): GET /events/stream.
 *
 * The same events as the WebSocket dialects, for the same roles and
 * subscriptions (?subscribe=orders,inventory), each as
 *     id: <position token>      (tokens.c: enough to resume every partition)
 *     event: <name>             (order_update, inventory_update, ...)
 *     data: <the RealTimeEvent, the JSON the WebSocket frame carries as data>
 * A browser's EventSource reconnects by itself and sends the last id it saw
 * as Last-Event-ID (or ?lastEventId= for polyfills): the missed events are
 * replayed first, from memory or Kafka, exactly as `resume` does (resume.c:
 * in order per partition, filtered by the session, all or nothing), then an
 * event `resumed {recovered, replayed}` (no id), then live events. A
 * stream starts with `connected`, then a `subscription_confirmed` (no id)
 * per subscription, its filter normalized (?filter_orders=, ...).
 *
 * HTTP/1.1: the stream is chunked (each event one chunk, built once per
 * event, class of subscriptions and thread, shared by every stream that
 * gets it), so when omsd ends it (shutdown) the connection stays usable
 * (keep-alive). HTTP/2 (TLS, ALPN h2): the same payloads in DATA frames. Heartbeat: a comment `: ping` every server.ping_interval_s
 * (OMS_SSE_HEARTBEAT_MS for tests). A stream whose queue passes
 * server.queue_limit is dropped (the client reconnects and resumes); one
 * whose token expires is ended. Auth: Authorization: Bearer or ?token=;
 * Origin and CORS as for the REST API. Service thread only. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "conn_types.h"
#include "gateway/router.h"
#include "sse.h"

typedef struct omsd_sse omsd_sse;

#define SSE_PATH "/events/stream"
#define RETRY_MS 1000 /* EventSource's reconnection delay, sent once */

struct omsd_sse {
    omsd_conn *c;
    omsd_sse *next, *prev; /* the thread's streams */
    oms_session sess;
    oms_route route;
    omsd_rstate rst;
    omsd_frame **q; /* chunks to write, by reference */
    uint32_t qhead, qlen, qcap;
    bool headers_sent;
    bool ending; /* the last chunk goes after the queue */
    bool dead;   /* dropped: nothing more is queued */
    bool h2;     /* an HTTP/2 stream (TLS with ALPN h2): no chunk framing */
    int64_t *rvec; /* a Last-Event-ID replay: how far it has come */
    oms_wtimer t_hb, t_exp;
};

typedef struct omsd_sse_state {
    oms_router *router;
    omsd_sse *all;
    omsd_sse **batch;
    size_t nbatch, capbatch;
    omsd_frame *f_ping;
    int64_t hb_ms;
} omsd_sse_state;

bool omsd_sse_path(const char *path)
{
    return strcmp(path, SSE_PATH) == 0;
}

static omsd_sse_state *state(omsd_worker *w)
{
    if (!w->sse) {
        omsd_sse_state *st = calloc(1, sizeof *st);
        if (!st || !(st->router = oms_router_new())) {
            free(st);
            return NULL;
        }
        int64_t hb = (int64_t)(w->d->cfg.server.ping_interval_s > 0 ? w->d->cfg.server.ping_interval_s
                                                                    : 25) *
                     1000;
        const char *e = getenv("OMS_SSE_HEARTBEAT_MS");
        if (e && atoll(e) > 0)
            hb = atoll(e);
        st->hb_ms = hb;
        w->sse = st;
    }
    return w->sse;
}

/* ---- chunks -------------------------------------------------------------------------------- */

/* One HTTP chunk holding the n bytes of p. */
static omsd_frame *chunk(const char *p, size_t n)
{
    char head[24];
    int hl = snprintf(head, sizeof head, "%zx\r\n", n);
    size_t len = (size_t)hl + n + 2;
    omsd_frame *f = omsd_frame_alloc(len);
    if (!f)
        return NULL;
    char *o = (char *)f->buf + LWS_PRE;
    memcpy(o, head, (size_t)hl);
    memcpy(o + hl, p, n);
    memcpy(o + hl + n, "\r\n", 2);
    return f;
}

/* An SSE event (id may be NULL: the browser keeps its last one; cls
 * replaces the class digit of id) as a chunk, written in place. */
static omsd_frame *event_chunk(const char *id, unsigned cls, const char *event, size_t el,
                               const char *data, size_t dl)
{
    size_t il = id ? strlen(id) : 0;
    size_t n = (il ? 4 + il + 1 : 0) + 7 + el + 1 + 6 + dl + 2;
    char head[24];
    int hl = snprintf(head, sizeof head, "%zx\r\n", n);
    size_t len = (size_t)hl + n + 2;
    omsd_frame *f = omsd_frame_alloc(len);
    if (!f)
        return NULL;
    char *b = (char *)f->buf + LWS_PRE;
    size_t o = 0;
    memcpy(b, head, (size_t)hl);
    o += (size_t)hl;
    if (il) {
        memcpy(b + o, "id: ", 4);
        o += 4;
        memcpy(b + o, id, il);
        b[o] = (char)('0' + cls);
        o += il;
        b[o++] = '\n';
    }
    memcpy(b + o, "event: ", 7);
    o += 7;
    memcpy(b + o, event, el);
    o += el;
    b[o++] = '\n';
    memcpy(b + o, "data: ", 6);
    o += 6;
    memcpy(b + o, data, dl);
    o += dl;
    memcpy(b + o, "\n\n\r\n", 4);
    return f;
}

/* The chunk of a plain frame {"event":NAME,"data":DATA} (compact JSON: no
 * newline inside), with id: spliced from its bytes when it has exactly that
 * shape (no second serialization), else through jansson. */
static omsd_frame *frame_chunk(const omsd_frame *pf, const char *id, unsigned cls)
{
    const char *p = (const char *)pf->buf + LWS_PRE, *name, *dp;
    size_t n = pf->len, nl, dl;
    omsd_frame *f = NULL;
    if (omsd_frame_split(pf, &name, &nl, &dp, &dl))
        f = event_chunk(id, cls, name, nl, dp, dl);
    if (!f) {
        json_t *j = json_loadb(p, n, 0, NULL);
        const char *event = json_string_value(json_object_get(j, "event"));
        char *data = event ? json_dumps(json_object_get(j, "data"), JSON_COMPACT | JSON_ENCODE_ANY)
                           : NULL;
        f = data ? event_chunk(id, cls, event, strlen(event), data, strlen(data)) : NULL;
        free(data);
        json_decref(j);
    }
    if (f) {
        f->topic = pf->topic;
        f->ts_ms = pf->ts_ms;
    }
    return f;
}

/* ---- a stream's queue ------------------------------------------------------------------------ */

static void kill_stream(omsd_sse *s, const char *why)
{
    if (s->dead)
        return;
    s->dead = true;
    oms_log(s->c->d->log, OMS_LOG_DEBUG, "event stream dropped", OMS_LS("why", why),
            OMS_LI("userId", s->sess.who.user_id));
    lws_set_timeout(s->c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

/* Queue a chunk (taking a reference). False when not queued: the stream
 * is dropped or ending, or its queue passed server.queue_limit (it is then
 * dropped: the client reconnects with Last-Event-ID). */
static bool sse_send(omsd_sse *s, omsd_frame *f)
{
    if (s->dead || s->ending || !f)
        return false;
    omsd *d = s->c->d;
    uint32_t max = omsd_queue_max(d);
    if (s->qlen == s->qcap) {
        if (s->qcap >= max) {
            d->m.overflow_closes++;
            oms_log(d->log, OMS_LOG_WARN, "slow event-stream client dropped: send queue full",
                    OMS_LI("userId", s->sess.who.user_id), OMS_LI("queued", s->qlen));
            kill_stream(s, "queue full");
            return false;
        }
        uint32_t cap = s->qcap ? s->qcap * 2 : 16;
        if (cap > max)
            cap = max;
        omsd_frame **nq = malloc(cap * sizeof *nq);
        if (!nq)
            return false;
        for (uint32_t i = 0; i < s->qlen; i++)
            nq[i] = s->q[(s->qhead + i) % s->qcap];
        free(s->q);
        s->q = nq;
        s->qcap = cap;
        s->qhead = 0;
    }
    atomic_fetch_add(&f->refs, 1);
    s->q[(s->qhead + s->qlen) % s->qcap] = f;
    s->qlen++;
    if (s->headers_sent && s->qlen == 1)
        lws_callback_on_writable(s->c->wsi);
    return true;
}

static bool send_new(omsd_sse *s, omsd_frame *f)
{
    bool ok = sse_send(s, f);
    omsd_frame_unref(f);
    return ok;
}

/* A stream's own event (data borrowed); with an id of what this thread has
 * dispatched when with_id (not while a replay runs: it has not come that
 * far). */
static void send_json(omsd_sse *s, const char *event, const json_t *data, bool with_id)
{
    char *js = json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY);
    char *id = with_id && !s->rst.rs && !s->rvec ? omsd_token_here(s->c->d, s->sess.subs & 3u)
                                                 : NULL;
    if (js)
        send_new(s, event_chunk(id, s->sess.subs & 3u, event, strlen(event), js, strlen(js)));
    free(js);
    free(id);
}

/* ---- what a resume needs of a stream ----------------------------------------------------------- */

static bool rsink_send(void *conn, omsd_frame *f)
{
    omsd_sse *s = conn;
    omsd *d = s->c->d;
    unsigned cls = s->sess.subs & 3u;
    char *own = NULL;
    const char *id = NULL;
    if (!s->rst.rs) {
        id = omsd_frame_token(d, f); /* a live event held behind the replay */
    } else if (s->rvec && f->topic >= 0 && f->topic < OMS_TOPIC__COUNT && f->part >= 0 &&
               f->part < d->nparts[f->topic]) {
        int64_t *v = &s->rvec[d->pbase[f->topic] + f->part];
        if (f->off > *v)
            *v = f->off;
        id = own = omsd_token_make(d, cls, s->rvec);
    }
    omsd_frame *ch = frame_chunk(f, id, cls);
    free(own);
    return send_new(s, ch);
}

static uint32_t rsink_queued(void *conn)
{
    return ((omsd_sse *)conn)->qlen;
}

static void rsink_answer(void *conn, const char *event, json_t *data)
{
    omsd_sse *s = conn;
    if (strcmp(event, "resumed") != 0) {
        /* out of memory and the like: the stream goes on, unrecovered */
        json_decref(data);
        data = json_pack("{s:b,s:i}", "recovered", 0, "replayed", 0);
    }
    send_json(s, "resumed", data, false);
    json_decref(data);
    free(s->rvec);
    s->rvec = NULL;
}

static void rsink_close(void *conn, int code, const char *reason)
{
    (void)code;
    kill_stream(conn, reason);
}

static const omsd_rsink sse_rsink = {rsink_send, rsink_queued, rsink_answer, rsink_close};

/* ---- timers ------------------------------------------------------------------------------------- */

static void on_heartbeat(oms_wtimer *t)
{
    omsd_sse *s = lws_container_of(t, omsd_sse, t_hb);
    omsd_sse_state *st = s->c->w->sse;
    if (!st->f_ping)
        st->f_ping = chunk(": ping\n\n", 8);
    sse_send(s, st->f_ping);
    oms_wheel_arm(&s->c->w->wheel, &s->t_hb, omsd_mono_ms(), st->hb_ms, on_heartbeat);
}

static void schedule_expiry(omsd_sse *s);

static void on_expiry(oms_wtimer *t)
{
    omsd_sse *s = lws_container_of(t, omsd_sse, t_exp);
    if (!oms_auth_expired(s->sess.who.exp, oms_now_ms() / 1000, OMSD_AUTH_LEEWAY_S)) {
        schedule_expiry(s);
        return;
    }
    json_t *e = oms_gw_error("token_expired", "the token expired; reconnect with a new one");
    send_json(s, "error", e, false);
    json_decref(e);
    s->ending = true; /* a new request needs a new token */
    lws_callback_on_writable(s->c->wsi);
}

static void schedule_expiry(omsd_sse *s)
{
    int64_t in = oms_auth_expires_in(s->sess.who.exp, oms_now_ms() / 1000, OMSD_AUTH_LEEWAY_S);
    oms_wheel_arm(&s->c->w->wheel, &s->t_exp, omsd_mono_ms(), in * 1000 + 1, on_expiry);
}

/* ---- the request ------------------------------------------------------------------------------ */

static void refuse(omsd_conn *c, int status, const char *code, const char *message)
{
    omsd_http_resp r = {0};
    omsd_rest_error(&r, status, code, message);
    if (status == 405)
        snprintf(r.allow, sizeof r.allow, "GET, OPTIONS");
    omsd_http_reply_rest(c, &r);
}

static json_t *env_positions(void *ud, oms_topic_kind kind)
{
    return omsd_positions(ud, kind);
}

/* Accept absent, or naming text/event-stream or any type. */
static bool acceptable(const char *accept)
{
    return !accept[0] || strstr(accept, "text/event-stream") || strstr(accept, "*/*") ||
           strstr(accept, "text/*");
}

/* ?subscribe=orders,inventory into OMS_SUB_* bits; -1 for an unknown name. */
static int parse_subscribe(const char *v)
{
    int subs = 0;
    const char *p = v;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == 6 && strncmp(p, "orders", 6) == 0)
            subs |= OMS_SUB_ORDERS;
        else if (n == 9 && strncmp(p, "inventory", 9) == 0)
            subs |= OMS_SUB_INVENTORY;
        else if (n != 0)
            return -1;
        p += n + (e ? 1 : 0);
    }
    return subs;
}

void omsd_sse_request(omsd_conn *c)
{
    omsd *d = c->d;
    struct lws *wsi = c->wsi;
    if (strcmp(c->h->t.method, "OPTIONS") == 0) {
        /* a CORS preflight (a fetch with Authorization), as the REST API */
        omsd_http_resp pre = {0};
        pre.status = 204;
        omsd_http_reply_rest(c, &pre);
        return;
    }
    if (strcmp(c->h->t.method, "GET") != 0) {
        refuse(c, 405, "method_not_allowed", "the event stream takes GET");
        return;
    }
    if (atomic_load(&d->stopping)) {
        refuse(c, 503, "unavailable", "omsd is shutting down");
        return;
    }
    char accept[512], auth[4096], token[4096], origin[300], host[300], sub[128], last[4096];
    omsd_http_header(wsi, WSI_TOKEN_HTTP_ACCEPT, accept, sizeof accept);
    omsd_http_header(wsi, WSI_TOKEN_HTTP_AUTHORIZATION, auth, sizeof auth);
    omsd_http_header(wsi, WSI_TOKEN_ORIGIN, origin, sizeof origin);
    omsd_http_header(wsi, WSI_TOKEN_HOST, host, sizeof host);
    omsd_http_token_arg(wsi, token, sizeof token);
    if (!acceptable(accept)) {
        refuse(c, 406, "not_acceptable", "the event stream is text/event-stream");
        return;
    }
    if (origin[0] && !omsd_origin_allowed(d, origin, host)) {
        char msg[300];
        snprintf(msg, sizeof msg, "origin '%.200s' is not allowed", origin);
        refuse(c, 403, "forbidden_origin", msg);
        return;
    }
    omsd_http_req req = {"GET", SSE_PATH, "", auth, token, origin, "", 0, 0};
    omsd_http_resp r = {0};
    oms_principal who;
    if (omsd_rest_auth(d, &req, &who, &r) != 0) {
        d->m.auth_failures++;
        omsd_http_reply_rest(c, &r);
        return;
    }
    int subs = 0;
    int qa = oms_httpd_query_arg(wsi, "subscribe", sub, sizeof sub);
    if (qa < 0 || (qa == 1 && (subs = parse_subscribe(sub)) < 0)) {
        refuse(c, 400, "bad_request", "subscribe: a comma-separated list of orders, inventory");
        return;
    }
    /* ?filter_orders= / ?filter_inventory=: a subscription's filter as
     * subscribe_to_* takes it (JSON, URL-encoded); EventSource reconnects
     * with the same URL, so a replay is filtered the same way */
    static const char *const fname[2] = {"filter_orders", "filter_inventory"};
    json_t *fspec[2] = {NULL, NULL};
    for (int i = 0; i < 2; i++) {
        /* the raw JSON may be spaced out: twice the normalized bound */
        size_t cap = 2 * (size_t)d->filter_limits.max_bytes + 1;
        char *fb = malloc(cap);
        int fa = fb ? oms_httpd_query_arg(wsi, fname[i], fb, cap) : -1;
        char msg[300] = "";
        if (fa < 0) {
            snprintf(msg, sizeof msg, "%s: over %zu bytes", fname[i], cap - 1);
        } else if (fa == 1) {
            json_error_t je;
            fspec[i] = json_loads(fb, JSON_REJECT_DUPLICATES, &je);
            if (!fspec[i])
                snprintf(msg, sizeof msg, "%s: not JSON (%.200s)", fname[i], je.text);
            else if (!((unsigned)subs & (i == 0 ? OMS_SUB_ORDERS : OMS_SUB_INVENTORY)))
                snprintf(msg, sizeof msg, "%s without subscribe=%s", fname[i],
                         i == 0 ? "orders" : "inventory");
        }
        free(fb);
        if (msg[0]) {
            json_decref(fspec[0]);
            json_decref(fspec[1]);
            refuse(c, 400, "bad_filter", msg);
            return;
        }
    }
    /* the position to resume from: the header EventSource sends, or the
     * query argument polyfills use */
    last[0] = '\0';
    if (lws_hdr_custom_length(wsi, "last-event-id:", 14) > 0 &&
        lws_hdr_custom_copy(wsi, last, sizeof last, "last-event-id:", 14) < 0)
        last[0] = '\0';
    if (!last[0] && oms_httpd_query_arg(wsi, "lastEventId", last, sizeof last) < 0)
        last[0] = '\0';

    omsd_sse_state *st = state(c->w);
    omsd_sse *s = st ? calloc(1, sizeof *s) : NULL;
    if (!s) {
        json_decref(fspec[0]);
        json_decref(fspec[1]);
        refuse(c, 503, "unavailable", "out of memory");
        return;
    }
    s->c = c;
    oms_session_init(&s->sess, &who, d->cfg.server.rate_limit_per_min, oms_now_ms());
    /* the subscriptions through the session's own checks (roles) */
    oms_gw_env env = {d->auth, env_positions, d, oms_now_ms(), &d->filter_limits};
    json_t *confirmed[2] = {NULL, NULL}; /* each subscription_confirmed, sent after connected */
    static const struct {
        unsigned bit;
        const char *event;
    } want[] = {{OMS_SUB_ORDERS, "subscribe_to_orders"}, {OMS_SUB_INVENTORY, "subscribe_to_inventory"}};
    for (size_t i = 0; i < OMS_ARRAY_LEN(want); i++) {
        if (!((unsigned)subs & want[i].bit))
            continue;
        oms_gw_out out;
        memset(&out, 0, sizeof out);
        out.answer = -1;
        json_t *data = fspec[i] ? json_pack("{s:O}", "filter", fspec[i]) : NULL;
        oms_session_on_message(&s->sess, &env, want[i].event, data, &out);
        json_decref(data);
        bool refused = out.n > 0 && strcmp(out.msgs[0].event, "error") == 0;
        char msg[300] = "", code[32] = "forbidden";
        if (refused) {
            const char *ec = json_string_value(json_object_get(out.msgs[0].data, "code"));
            snprintf(msg, sizeof msg, "%s%s",
                     ec && strcmp(ec, "bad_filter") == 0 ? (i == 0 ? "filter_orders: "
                                                                   : "filter_inventory: ")
                                                         : "",
                     json_string_value(json_object_get(out.msgs[0].data, "message")));
            if (ec && strcmp(ec, "bad_filter") == 0)
                snprintf(code, sizeof code, "bad_filter");
        }
        if (!refused && out.n > 0 && strcmp(out.msgs[0].event, "subscription_confirmed") == 0)
            confirmed[i] = json_incref(out.msgs[0].data);
        oms_gw_out_clear(&out);
        if (refused) {
            json_decref(fspec[0]);
            json_decref(fspec[1]);
            json_decref(confirmed[0]);
            json_decref(confirmed[1]);
            oms_session_clear(&s->sess);
            free(s);
            refuse(c, strcmp(code, "bad_filter") == 0 ? 400 : 403, code, msg);
            return;
        }
    }
    json_decref(fspec[0]);
    json_decref(fspec[1]);
    if (omsd_rstate_init(d, &s->rst) != OMS_OK ||
        oms_router_add(st->router, &s->route, s, &s->sess) != OMS_OK) {
        json_decref(confirmed[0]);
        json_decref(confirmed[1]);
        omsd_rstate_free(d, &s->rst);
        oms_session_clear(&s->sess);
        free(s);
        refuse(c, 503, "unavailable", "out of memory");
        return;
    }
    /* HTTP/2 (only requests over h2 have the :path pseudo-header): its own
     * DATA frames, no chunked encoding */
    s->h2 = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_COLON_PATH) > 0;
    c->sse = s;
    s->next = st->all;
    if (st->all)
        st->all->prev = s;
    st->all = s;
    atomic_fetch_add(&c->w->nconns, 1);
    omsd_users_add(d, who.user_id, 1);
    omsd_subs_count(d, 0, s->sess.subs);
    d->m.connections_total++;
    lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0); /* as long as it takes */

    char retry[32];
    int rl = snprintf(retry, sizeof retry, "retry: %d\n\n", RETRY_MS);
    send_new(s, chunk(retry, (size_t)rl));
    int64_t *vec = NULL;
    int rc = OMS_EINVAL;
    if (last[0]) {
        vec = malloc((d->nparts_total > 0 ? (size_t)d->nparts_total : 1) * sizeof *vec);
        rc = vec ? omsd_token_read(d, last, NULL, vec) : OMS_ENOMEM;
        if (rc != OMS_OK) {
            free(vec);
            vec = NULL;
        }
    }
    json_t *hello = oms_gw_connected(&s->sess, &env);
    send_json(s, "connected", hello, !vec);
    json_decref(hello);
    /* what each subscription is, its filter in normalized form, as a
     * WebSocket's subscribe is answered (no id: not a position) */
    for (size_t i = 0; i < 2; i++) {
        if (confirmed[i])
            send_json(s, "subscription_confirmed", confirmed[i], false);
        json_decref(confirmed[i]);
    }
    if (last[0] && !vec) {
        /* not one of our positions (edited, another cluster's, another
         * secret's): live from now, and the client is told */
        oms_log(d->log, OMS_LOG_DEBUG, "event stream: Last-Event-ID not ours, not resumed",
                OMS_LI("userId", who.user_id), OMS_LS("error", oms_strerror(rc)));
        d->m.resumes[2]++;
        json_t *res = json_pack("{s:b,s:i}", "recovered", 0, "replayed", 0);
        send_json(s, "resumed", res, false);
        json_decref(res);
    }
    oms_wheel_arm(&c->w->wheel, &s->t_hb, omsd_mono_ms(), st->hb_ms, on_heartbeat);
    schedule_expiry(s);
    lws_callback_on_writable(wsi);
    oms_log(d->log, OMS_LOG_DEBUG, "event stream opened", OMS_LI("userId", who.user_id),
            OMS_LB("resuming", vec != NULL));
    if (vec) {
        s->rvec = vec;
        json_t *since = omsd_token_since(d, vec);
        if (since)
            omsd_resume_start(d, &s->rst, &s->sess, since, &sse_rsink, s);
        else
            rsink_answer(s, "error", NULL);
        json_decref(since);
    }
}

/* ---- writing --------------------------------------------------------------------------------- */

static int write_headers(omsd_conn *c, bool h2)
{
    unsigned char buf[LWS_PRE + 1024];
    unsigned char *start = buf + LWS_PRE, *p = start, *end = buf + sizeof buf - 1;
    struct lws *wsi = c->wsi;
#define HDR(name, val)                                                                             \
    lws_add_http_header_by_name(wsi, (const unsigned char *)name, (const unsigned char *)(val),   \
                                (int)strlen(val), &p, end)
    if (lws_add_http_header_status(wsi, 200, &p, end) ||
        HDR("content-type:", "text/event-stream; charset=utf-8") ||
        HDR("cache-control:", "no-store") || (!h2 && HDR("transfer-encoding:", "chunked")) ||
        HDR("x-accel-buffering:", "no") || HDR("x-content-type-options:", "nosniff") ||
        (c->h->t.cors[0] && (HDR("access-control-allow-origin:", c->h->t.cors) ||
                             HDR("vary:", "Origin"))))
        return -1;
#undef HDR
    return lws_finalize_write_http_header(wsi, start, &p, end) ? -1 : 0;
}

/* On HTTP/2 a chunk's payload goes out in a DATA frame, whose header lws
 * writes before it: from a copy, as the chunk's bytes before the payload
 * belong to the frame every HTTP/1.1 stream of this thread shares. */
static int write_h2(struct lws *wsi, const omsd_frame *f)
{
    const char *p = (const char *)f->buf + LWS_PRE;
    const char *nl = memchr(p, '\n', f->len);
    if (!nl || (size_t)(nl + 1 - p) + 2 > f->len)
        return -1;
    size_t off = (size_t)(nl + 1 - p), n = f->len - off - 2;
    unsigned char *b = malloc(LWS_PRE + n);
    if (!b)
        return -1;
    memcpy(b + LWS_PRE, p + off, n);
    int rc = lws_write(wsi, b + LWS_PRE, n, LWS_WRITE_HTTP);
    free(b);
    return rc;
}

int omsd_sse_writeable(omsd_conn *c)
{
    omsd_sse *s = c->sse;
    struct lws *wsi = c->wsi;
    if (s->dead)
        return -1;
    if (!s->headers_sent) {
        if (write_headers(c, s->h2))
            return -1;
        s->headers_sent = true;
        lws_callback_on_writable(wsi);
        return 0;
    }
    int64_t now = 0;
    while (s->qlen > 0 && !lws_partial_buffered(wsi)) {
        omsd_frame *f = s->q[s->qhead];
        if (s->h2 ? write_h2(wsi, f) < 0 : lws_write(wsi, f->buf + LWS_PRE, f->len, LWS_WRITE_HTTP) < 0)
            return -1;
        if (f->topic >= 0 && f->topic < OMS_TOPIC__COUNT)
            OMSD_BUMP(c->w->delivered[f->topic], 1);
        if (f->ts_ms) {
            if (!now)
                now = oms_now_ms();
            omsd_age_record(c->w, f->ts_ms, now);
        }
        s->q[s->qhead] = NULL;
        s->qhead = (s->qhead + 1) % s->qcap;
        s->qlen--;
        omsd_frame_unref(f);
    }
    if (s->rst.rs)
        omsd_resume_pump(c->d, &s->rst);
    if (s->qlen > 0) {
        lws_callback_on_writable(wsi);
        return 0;
    }
    if (s->ending) {
        /* the last chunk: the connection stays for the next request */
        unsigned char fin[LWS_PRE + 8];
        memcpy(fin + LWS_PRE, "0\r\n\r\n", 5);
        if (lws_write(wsi, fin + LWS_PRE, s->h2 ? 0 : 5, LWS_WRITE_HTTP_FINAL) < 0)
            return -1;
        omsd_sse_closed(c);
        oms_httpd_txn_clear(&c->h->t);
        return lws_http_transaction_completed(wsi) ? -1 : 0;
    }
    return 0;
}

/* ---- life cycle --------------------------------------------------------------------------------- */

void omsd_sse_closed(omsd_conn *c)
{
    omsd_sse *s = c->sse;
    if (!s)
        return;
    omsd *d = c->d;
    omsd_sse_state *st = c->w->sse;
    c->sse = NULL;
    if (s->prev)
        s->prev->next = s->next;
    else
        st->all = s->next;
    if (s->next)
        s->next->prev = s->prev;
    oms_router_remove(st->router, &s->route);
    omsd_rstate_free(d, &s->rst);
    oms_wheel_cancel(&c->w->wheel, &s->t_hb);
    oms_wheel_cancel(&c->w->wheel, &s->t_exp);
    while (s->qlen) {
        omsd_frame_unref(s->q[s->qhead]);
        s->qhead = (s->qhead + 1) % s->qcap;
        s->qlen--;
    }
    free(s->q);
    free(s->rvec);
    atomic_fetch_sub(&c->w->nconns, 1);
    omsd_users_add(d, s->sess.who.user_id, -1);
    omsd_subs_count(d, s->sess.subs, 0);
    oms_session_clear(&s->sess); /* its filters */
    /* a batch being dispatched may hold it: it is only marked there */
    for (size_t i = 0; i < st->nbatch; i++)
        if (st->batch[i] == s)
            st->batch[i] = NULL;
    free(s);
}

static void collect(void *conn, void *ud)
{
    omsd_sse_state *st = ud;
    if (st->nbatch == st->capbatch) {
        size_t cap = st->capbatch ? st->capbatch * 2 : 64;
        omsd_sse **nb = realloc(st->batch, cap * sizeof *nb);
        if (!nb)
            return;
        st->batch = nb;
        st->capbatch = cap;
    }
    st->batch[st->nbatch++] = conn;
}

void omsd_sse_dispatch(omsd_worker *w, const omsd_xq_item *it)
{
    omsd_sse_state *st = w->sse;
    if (!st || !st->all)
        return;
    st->nbatch = 0;
    oms_router_dispatch_view(st->router, it->type, it->user_id, it->frame->view, collect, st);
    /* one chunk per class of subscriptions (the id's digit) */
    omsd_frame *ch[4] = {NULL, NULL, NULL, NULL};
    for (size_t i = 0; i < st->nbatch; i++) {
        omsd_sse *s = st->batch[i];
        if (!s)
            continue;
        if (s->rst.rs && omsd_resume_hold(w->d, &s->rst, it->frame))
            continue; /* behind its replay */
        unsigned cls = s->sess.subs & 3u;
        if (!ch[cls] && !(ch[cls] = frame_chunk(it->frame, omsd_frame_token(w->d, it->frame), cls)))
            w->d->m.dropped[it->topic]++;
        else if (!sse_send(s, ch[cls]))
            w->d->m.dropped[it->topic]++;
    }
    st->nbatch = 0;
    for (int k = 0; k < 4; k++)
        omsd_frame_unref(ch[k]);
}

void omsd_sse_drain(omsd_worker *w)
{
    omsd_sse_state *st = w->sse;
    if (!st)
        return;
    for (omsd_sse *s = st->all; s; s = s->next) {
        s->ending = true;
        lws_callback_on_writable(s->c->wsi);
    }
}

void omsd_sse_free_all(omsd_worker *w)
{
    omsd_sse_state *st = w->sse;
    if (!st)
        return;
    oms_router_free(st->router);
    omsd_frame_unref(st->f_ping);
    free(st->batch);
    free(st);
    w->sse = NULL;
}
