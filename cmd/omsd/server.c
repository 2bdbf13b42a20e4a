/* server.c — libwebsockets: HTTP (REST, upgrade checks) and the WebSocket
 * connections of the plain JSON dialect, their send queues and the hand-over
 * from the other threads. Runs on the service threads: one lws context
 * each, all listening on the same port (SO_REUSEPORT, the kernel spreads
 * the connections), each owning the connections it accepted (omsd_worker).
 * What they share (users online, per-address counts, the history) is under
 * a lock, and frames are shared by reference. */
#define _GNU_SOURCE /* accept4 */
#include <inttypes.h>
#include <malloc.h>
#include <stdlib.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>

#include "gateway/router.h"
#include "httpd/httpd.h"
#include "notify.h"
#include "omsd.h"
#include "socketio.h"

#define MAX_BODY (1u << 20)
#define WRITES_PER_CALLBACK 1024 /* more than XQ_BATCH: writes must outpace dispatch */

struct omsd_conn {
    omsd *d;
    omsd_worker *w; /* the service thread it belongs to */
    struct lws *wsi;
    bool is_ws;
    /* HTTP transaction (NULL on a WebSocket: idle connections stay small) */
    struct omsd_http *h;
    omsd_conn *pending_next; /* deferred HTTP answers */
    /* WebSocket */
    omsd_conn *next, *prev;
    oms_session sess;
    omsd_frame **q;
    uint32_t qhead, qlen, qcap; /* the ring grows up to server.queue_limit */
    oms_route route;
    omsd_rstate rst; /* positions and resume (resume.c) */
    char *rx;
    size_t rxlen, rxcap;
    bool rx_skip;
    int close_code;
    char close_reason[96];
    bool closing, close_sent;
    /* timers on w->wheel: the token's expiry; pings and the idle timeout
     * (activity only stamps last_rx_ms, the timer looks at it when due) */
    oms_wtimer t_exp, t_idle;
    int64_t last_rx_ms;
    bool ping_due;
    /* Socket.IO (socketio.c): the session this connection serves, as its
     * held polling GET or its WebSocket; sio_ws marks a Socket.IO WebSocket
     * (not in w->conns: its session is what fan-out visits) */
    omsd_sio *sio;
    bool sio_ws;
    struct omsd_addr *addr; /* its client address's count (WebSockets) */
};

/* An HTTP exchange (pkg/httpd) and, for a REST trigger, the answer that
 * waits for Kafka's acknowledgement; allocated for HTTP callbacks, freed
 * when the connection becomes a WebSocket or closes. */
typedef struct omsd_http {
    oms_httpd_txn t;
    uint64_t request_id;
    omsd_http_resp deferred; /* status 0: none */
    bool sio_forward;        /* answered by another thread (omsd_http_defer) */
    char sio_sid[OMSD_SIO_ARG_MAX];
} omsd_http;

_Thread_local omsd_worker *omsd_self;

/* ---- WebSockets per client address (server.max_connections_per_address) ---------------- */

struct omsd_addr {
    struct omsd_addr *next;
    uint32_t n;
    char addr[64];
};

#define ADDR_BUCKETS 4096
static omsd_addr *addr_tab[ADDR_BUCKETS]; /* every service thread: under addr_lock */
static pthread_mutex_t addr_lock = PTHREAD_MUTEX_INITIALIZER;

static unsigned addr_hash(const char *a)
{
    unsigned h = 2166136261u;
    for (; *a; a++)
        h = (h ^ (unsigned char)*a) * 16777619u;
    return h % ADDR_BUCKETS;
}

static omsd_addr *addr_find(const char *a, bool create)
{
    unsigned b = addr_hash(a);
    for (omsd_addr *e = addr_tab[b]; e; e = e->next)
        if (strcmp(e->addr, a) == 0)
            return e;
    if (!create)
        return NULL;
    omsd_addr *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    snprintf(e->addr, sizeof e->addr, "%s", a);
    e->next = addr_tab[b];
    addr_tab[b] = e;
    return e;
}

void omsd_addr_put(omsd_addr *e)
{
    if (!e)
        return;
    pthread_mutex_lock(&addr_lock);
    if (--e->n == 0) {
        unsigned b = addr_hash(e->addr);
        for (omsd_addr **pp = &addr_tab[b]; *pp; pp = &(*pp)->next) {
            if (*pp == e) {
                *pp = e->next;
                free(e);
                break;
            }
        }
    }
    pthread_mutex_unlock(&addr_lock);
}

static void addr_release(omsd_conn *c)
{
    omsd_addr *e = c->addr;
    c->addr = NULL;
    omsd_addr_put(e);
}

static void addr_free_all(void)
{
    /* every service thread has ended */
    for (int b = 0; b < ADDR_BUCKETS; b++) {
        while (addr_tab[b]) {
            omsd_addr *e = addr_tab[b];
            addr_tab[b] = e->next;
            free(e);
        }
    }
}

/* A slot for one more connection from this peer, taken at once (the check
 * and the count under one lock: service threads accept at the same time):
 * 0 and *out (NULL when there is no limit), or 429 with why in msg. */
static int addr_reserve(omsd *d, struct lws *wsi, omsd_addr **out, char *msg, size_t msglen)
{
    *out = NULL;
    int max = d->cfg.server.max_conns_per_address;
    char a[64];
    if (max <= 0 || !lws_get_peer_simple(wsi, a, sizeof a))
        return 0;
    int st = 0;
    pthread_mutex_lock(&addr_lock);
    omsd_addr *e = addr_find(a, true);
    if (e && e->n >= (uint32_t)max) {
        st = 429;
    } else if (e) {
        e->n++;
        *out = e;
    }
    pthread_mutex_unlock(&addr_lock);
    if (st)
        snprintf(msg, msglen,
                 "too many connections from %s: at most %d (server.max_connections_per_address)", a,
                 max);
    return st;
}

int omsd_conn_addr_acquire(omsd_conn *c, omsd_addr **out, char *msg, size_t msglen)
{
    return addr_reserve(c->d, c->wsi, out, msg, msglen);
}

/* The verdict of CONFIRM_UPGRADE, carried on the wsi to ESTABLISHED. */
typedef struct omsd_upgrade {
    omsd_addr *addr;    /* its address slot, taken at the upgrade */
    bool sio;
    oms_principal who;  /* /events */
    char sid[64];       /* /socket.io/: the session to upgrade, "" for a new one */
} omsd_upgrade;

/* ---- cross-thread hand-over ------------------------------------------------------ */

void omsd_xq_push(omsd_worker *w, omsd_xq_item *it)
{
    pthread_mutex_lock(&w->xq_lock);
    bool was_empty = w->xq_head == NULL;
    if (w->xq_tail)
        w->xq_tail->next = it;
    else
        w->xq_head = it;
    w->xq_tail = it;
    w->xq_len++;
    pthread_mutex_unlock(&w->xq_lock);
    /* the service thread empties the whole queue when it wakes, so one
     * wake-up per batch is enough */
    if (was_empty && w->ctx)
        lws_cancel_service(w->ctx);
}

omsd_worker *omsd_request_worker(omsd *d, uint64_t request_id)
{
    int i = (int)(request_id & 0xff);
    return i < d->nworkers ? &d->workers[i] : &d->workers[0];
}

size_t omsd_nconns(omsd *d)
{
    size_t n = 0;
    for (int i = 0; i < d->nworkers; i++)
        n += atomic_load(&d->workers[i].nconns);
    return n;
}

/* ---- WebSocket send queue ----------------------------------------------------------- */

static void conn_close(omsd_conn *c, int code, const char *reason)
{
    if (c->closing)
        return;
    c->closing = true;
    c->close_code = code;
    snprintf(c->close_reason, sizeof c->close_reason, "%s", reason);
    lws_callback_on_writable(c->wsi);
}

static void drop_queue(omsd_conn *c)
{
    while (c->qlen) {
        omsd_frame_unref(c->q[c->qhead]);
        c->qhead = (c->qhead + 1) % c->qcap;
        c->qlen--;
    }
}

static uint32_t queue_max(const omsd *d)
{
    return (uint32_t)(d->cfg.server.queue_limit > 0 ? d->cfg.server.queue_limit : 4096);
}

/* Queue f (taking a reference). Returns false when the bound is passed: the
 * connection is then closed with 1013 and never slows the others. */
static bool conn_enqueue(omsd_conn *c, omsd_frame *f)
{
    if (c->closing)
        return false;
    if (c->qlen == c->qcap && c->qcap < queue_max(c->d)) {
        /* most connections never queue much: start small, double on demand */
        uint32_t ncap = c->qcap * 2 < queue_max(c->d) ? c->qcap * 2 : queue_max(c->d);
        omsd_frame **nq = malloc((size_t)ncap * sizeof *nq);
        if (nq) {
            for (uint32_t i = 0; i < c->qlen; i++)
                nq[i] = c->q[(c->qhead + i) % c->qcap];
            free(c->q);
            c->q = nq;
            c->qhead = 0;
            c->qcap = ncap;
        }
    }
    if (c->qlen == c->qcap) {
        omsd *d = c->d;
        d->m.overflow_closes++;
        oms_log(d->log, OMS_LOG_WARN, "slow client closed: send queue full",
                OMS_LI("userId", c->sess.who.user_id), OMS_LI("queued", c->qlen));
        drop_queue(c);
        conn_close(c, OMS_CLOSE_TRY_LATER, "send queue overflow, reconnect and resume");
        return false;
    }
    f->refs++;
    c->q[(c->qhead + c->qlen) % c->qcap] = f;
    c->qlen++;
    if (c->qlen == 1)
        lws_callback_on_writable(c->wsi);
    return true;
}

/* Queue {"event", "data"}; data is borrowed. */
static void conn_send_json(omsd_conn *c, const char *event, const json_t *data)
{
    size_t len = 0;
    char *s = oms_gw_frame_text(event, data, &len);
    if (!s)
        return;
    omsd_frame *f = omsd_frame_new(s, len);
    free(s);
    if (!f)
        return;
    /* replies may exceed a full queue's bound by nothing: same rule */
    conn_enqueue(c, f);
    omsd_frame_unref(f);
}

/* Same, taking the reference to data. */
static void conn_send_json_new(omsd_conn *c, const char *event, json_t *data)
{
    conn_send_json(c, event, data);
    json_decref(data);
}

static void apply_out(omsd_conn *c, oms_gw_out *out)
{
    for (int i = 0; i < out->n; i++)
        conn_send_json(c, out->msgs[i].event, out->msgs[i].data);
    if (out->close_code)
        conn_close(c, out->close_code, out->close_reason);
}

/* ---- what a resume needs of a plain connection ---------------------------------------- */

static bool sink_send(void *conn, omsd_frame *f)
{
    return conn_enqueue(conn, f);
}

static uint32_t sink_queued(void *conn)
{
    return ((omsd_conn *)conn)->qlen;
}

static void sink_answer(void *conn, const char *event, json_t *data)
{
    conn_send_json_new(conn, event, data);
}

static void sink_close(void *conn, int code, const char *reason)
{
    omsd_conn *c = conn;
    drop_queue(c);
    conn_close(c, code, reason);
}

static const omsd_rsink plain_sink = {sink_send, sink_queued, sink_answer, sink_close};

/* ---- for socketio.c ---------------------------------------------------------------- */

omsd_sio *omsd_conn_sio(const omsd_conn *c)
{
    return c->sio;
}

void omsd_conn_set_sio(omsd_conn *c, omsd_sio *s)
{
    c->sio = s;
}

uint32_t omsd_conn_queued(const omsd_conn *c)
{
    return c->qlen;
}

bool omsd_conn_enqueue(omsd_conn *c, omsd_frame *f)
{
    return conn_enqueue(c, f);
}

void omsd_conn_close(omsd_conn *c, int code, const char *reason)
{
    conn_close(c, code, reason);
}

void omsd_conn_want_write(omsd_conn *c)
{
    lws_callback_on_writable(c->wsi);
}

void omsd_http_reply(omsd_conn *c, int status, const char *content_type, char *body, size_t len)
{
    lws_set_timeout(c->wsi, NO_PENDING_TIMEOUT, 0);
    oms_httpd_answer(&c->h->t, c->wsi, status, content_type, body, len);
}

/* A REST handler's answer goes out. */
static void reply_rest(omsd_conn *c, omsd_http_resp *r)
{
    snprintf(c->h->t.allow, sizeof c->h->t.allow, "%s", r->allow);
    c->h->t.cache_control = r->cache_control;
    omsd_http_reply(c, r->status, r->content_type, r->body, r->len);
    r->body = NULL;
}

void omsd_http_hold(omsd_conn *c, int secs)
{
    lws_set_timeout(c->wsi, PENDING_TIMEOUT_HTTP_CONTENT, secs);
}

/* ---- positions and presence ------------------------------------------------------- */

json_t *omsd_positions(omsd *d, oms_topic_kind kind)
{
    json_t *a = json_array();
    for (int p = 0; p < d->nparts[kind]; p++) {
        char pos[300];
        snprintf(pos, sizeof pos, "%s:%d:%" PRId64, d->topics[kind], p,
                 omsd_self->last_offset[kind][p]);
        json_array_append_new(a, json_string(pos));
    }
    return a;
}

static json_t *env_positions(void *ud, oms_topic_kind kind)
{
    return omsd_positions(ud, kind);
}

void omsd_users_add(omsd *d, int64_t user_id, int delta)
{
    if (!user_id)
        return;
    char k[32];
    snprintf(k, sizeof k, "%" PRId64, user_id);
    pthread_mutex_lock(&d->users_lock);
    json_t *n = json_object_get(d->users, k);
    json_int_t v = (n ? json_integer_value(n) : 0) + delta;
    if (v > 0)
        json_object_set_new(d->users, k, json_integer(v));
    else
        json_object_del(d->users, k);
    pthread_mutex_unlock(&d->users_lock);
}

void omsd_local_users(omsd *d, json_t *byuser)
{
    pthread_mutex_lock(&d->users_lock);
    const char *k;
    json_t *v;
    json_object_foreach(d->users, k, v)
    {
        json_t *n = json_object_get(byuser, k);
        json_object_set_new(byuser, k,
                            json_integer((n ? json_integer_value(n) : 0) + json_integer_value(v)));
    }
    pthread_mutex_unlock(&d->users_lock);
}

/* Users online across the cluster: this instance's connections plus the
 * other live instances' (presence.c). */
json_t *omsd_users_online(omsd *d)
{
    json_t *byuser = json_object();
    omsd_local_users(d, byuser);
    omsd_presence_merge(d, byuser);
    json_t *users = json_array();
    const char *k;
    json_t *v;
    json_object_foreach(byuser, k, v)
    {
        json_array_append_new(users, json_pack("{s:I,s:O}", "userId",
                                               (json_int_t)strtoll(k, NULL, 10), "connections", v));
    }
    json_decref(byuser);
    return users;
}

int omsd_user_connections(omsd *d, int64_t user_id)
{
    json_t *byuser = json_object();
    omsd_local_users(d, byuser);
    omsd_presence_merge(d, byuser);
    char k[32];
    snprintf(k, sizeof k, "%" PRId64, user_id);
    int n = (int)json_integer_value(json_object_get(byuser, k));
    json_decref(byuser);
    return n;
}

void omsd_subs_count(omsd *d, unsigned old_subs, unsigned new_subs)
{
    static const unsigned bits[2] = {OMS_SUB_ORDERS, OMS_SUB_INVENTORY};
    for (int i = 0; i < 2; i++) {
        if ((old_subs & bits[i]) && !(new_subs & bits[i]))
            atomic_fetch_sub(&d->subscribed[i], 1);
        else if (!(old_subs & bits[i]) && (new_subs & bits[i]))
            atomic_fetch_add(&d->subscribed[i], 1);
    }
}

size_t omsd_subscribed(omsd *d, unsigned sub)
{
    return atomic_load(&d->subscribed[sub == OMS_SUB_ORDERS ? 0 : 1]);
}

/* ---- dispatch of handed-over items ------------------------------------------------------ */

static void answer_pending(omsd_worker *w, uint64_t request_id, int err, const char *errstr);

static void deliver(void *conn, void *ud)
{
    omsd_conn *c = conn;
    omsd_xq_item *it = ud;
    if (c->rst.rs && omsd_resume_hold(c->d, &c->rst, it->frame))
        return; /* behind the replay */
    if (!conn_enqueue(c, it->frame))
        c->d->m.dropped[it->topic]++;
}

static void dispatch_event(omsd_worker *w, omsd_xq_item *it)
{
    omsd *d = w->d;
    if (it->partition >= 0 && it->partition < d->nparts[it->topic] &&
        it->offset > w->last_offset[it->topic][it->partition])
        w->last_offset[it->topic][it->partition] = it->offset;
    oms_router_dispatch_view(w->router, it->type, it->user_id, it->frame->view, deliver, it);
    omsd_sio_dispatch(d, it);
}

/* Items dispatched per wake-up. Dispatching a whole backlog at once would
 * let no socket be written meanwhile: every queue, a fast reader's too,
 * would fill to its bound during a burst. */
#define XQ_BATCH 128

static void drain_xq(omsd_worker *w, bool dispatch)
{
    omsd *d = w->d;
    pthread_mutex_lock(&w->xq_lock);
    omsd_xq_item *it = w->xq_head, *last = NULL;
    size_t n = 0;
    for (omsd_xq_item *p = it; p && (!dispatch || n < XQ_BATCH); p = p->next, n++)
        last = p;
    if (last) {
        w->xq_head = last->next;
        last->next = NULL;
        if (!w->xq_head)
            w->xq_tail = NULL;
        w->xq_len -= n;
    }
    bool more = w->xq_head != NULL;
    pthread_mutex_unlock(&w->xq_lock);
    while (it) {
        omsd_xq_item *next = it->next;
        if (it->kind == XQ_EVENT) {
            if (dispatch)
                dispatch_event(w, it);
            omsd_frame_unref(it->frame);
        } else if (it->kind == XQ_RESUME) {
            omsd_resume_xq(d, it); /* frees what it carries */
        } else if (it->kind == XQ_SIO) {
            omsd_sio_xq(d, it, dispatch); /* frees what it carries */
        } else if (dispatch) {
            answer_pending(w, it->request_id, it->err, it->errstr);
        }
        free(it);
        it = next;
    }
    /* come back for the rest after the sockets had their turn */
    if (more && dispatch && w->ctx)
        lws_cancel_service(w->ctx);
    if (more && !dispatch)
        drain_xq(w, false);
}

size_t omsd_xq_backlog(omsd *d)
{
    size_t most = 0;
    for (int i = 0; i < d->nworkers; i++) {
        omsd_worker *w = &d->workers[i];
        pthread_mutex_lock(&w->xq_lock);
        if (w->xq_len > most)
            most = w->xq_len;
        pthread_mutex_unlock(&w->xq_lock);
    }
    return most;
}

/* ---- HTTP ----------------------------------------------------------------------- */

static void hdr(struct lws *wsi, enum lws_token_indexes t, char *buf, int len)
{
    oms_httpd_header(wsi, t, buf, len);
}

static void request_info(omsd_conn *c)
{
    oms_httpd_request_line(&c->h->t, c->wsi);
}

static void set_token_arg(omsd_conn *c, char *out, size_t outlen)
{
    out[0] = '\0';
    /* lws copies the whole "token=..." fragment and points past the name */
    const char *v = lws_get_urlarg_by_name(c->wsi, "token=", out, (int)outlen);
    if (!v)
        out[0] = '\0';
    else if (v != out)
        memmove(out, v, strlen(v) + 1);
}

#define query_arg oms_httpd_query_arg

/* What socketio.c needs of a request on /socket.io/. */
static void sio_request(omsd *d, omsd_conn *c, omsd_sio_req *r, const char *origin,
                        const char *host, const char *ctype)
{
    memset(r, 0, sizeof *r);
    r->method = c->h->t.method;
    if (query_arg(c->wsi, "EIO", r->eio, sizeof r->eio) < 0)
        snprintf(r->eio, sizeof r->eio, "?");
    if (query_arg(c->wsi, "transport", r->transport, sizeof r->transport) < 0)
        snprintf(r->transport, sizeof r->transport, "?");
    int sid = query_arg(c->wsi, "sid", r->sid, sizeof r->sid);
    r->has_sid = sid != 0;
    r->sid_long = sid < 0;
    r->origin = origin;
    r->origin_ok = !origin[0] || omsd_origin_allowed(d, origin, host);
    r->content_type = ctype;
    r->body = c->h->t.body ? c->h->t.body : "";
    r->body_len = c->h->t.body_len;
    r->body_too_large = c->h->t.body_too_large;
}

static size_t body_limit(const omsd_conn *c)
{
    if (!omsd_sio_path(c->h->t.path))
        return MAX_BODY;
    /* a session that has not authenticated yet may send little */
    char sid[OMSD_SIO_ARG_MAX];
    return omsd_sio_body_limit(query_arg(c->wsi, "sid", sid, sizeof sid) == 1 ? sid : NULL);
}

/* Run a request through rest.c and arm the answer. */
static void run_request(omsd *d, omsd_conn *c)
{
    /* lws may report the end of an empty body after we already answered */
    if (!oms_httpd_take(&c->h->t))
        return;
    char auth[4096], origin[300], host[300], token[4096];
    hdr(c->wsi, WSI_TOKEN_HTTP_AUTHORIZATION, auth, sizeof auth);
    hdr(c->wsi, WSI_TOKEN_ORIGIN, origin, sizeof origin);
    hdr(c->wsi, WSI_TOKEN_HOST, host, sizeof host);
    set_token_arg(c, token, sizeof token);
    c->h->t.cors[0] = '\0';
    if (origin[0] && omsd_origin_allowed(d, origin, host))
        snprintf(c->h->t.cors, sizeof c->h->t.cors, "%s", origin);
    if (omsd_sio_path(c->h->t.path)) {
        char ctype[128];
        hdr(c->wsi, WSI_TOKEN_HTTP_CONTENT_TYPE, ctype, sizeof ctype);
        omsd_sio_req r;
        sio_request(d, c, &r, origin, host, ctype);
        omsd_sio_http(d, c, &r);
        return;
    }
    /* the low byte names this thread: the delivery report comes back here */
    c->h->request_id = (++c->w->next_request << 8) | (uint64_t)c->w->idx;
    omsd_http_req req = {c->h->t.method, c->h->t.path, "", auth, token, origin,
                         c->h->t.body ? c->h->t.body : "", c->h->t.body_len, c->h->request_id};
    omsd_http_resp resp;
    memset(&resp, 0, sizeof resp);
    d->m.rest_requests++;
    if (c->h->t.path_too_long)
        omsd_rest_error(&resp, 414, "uri_too_long", "the path is over 511 bytes");
    else if (c->h->t.body_too_large)
        omsd_rest_error(&resp, 413, "too_large", "request body over 1 MiB");
    else if (c->h->t.no_length)
        omsd_rest_error(&resp, 411, "length_required", "a body needs a Content-Length header");
    else
        omsd_rest_handle(d, &req, &resp);
    if (resp.deferred) {
        c->h->deferred = resp;
        c->pending_next = c->w->pending_http;
        c->w->pending_http = c;
        lws_set_timeout(c->wsi, PENDING_TIMEOUT_HTTP_CONTENT, 20);
        return;
    }
    reply_rest(c, &resp);
}

static void unlink_pending(omsd_conn *c)
{
    for (omsd_conn **pp = &c->w->pending_http; *pp; pp = &(*pp)->pending_next) {
        if (*pp == c) {
            *pp = c->pending_next;
            return;
        }
    }
}

uint64_t omsd_http_defer(omsd_conn *c, int secs, const char *sid)
{
    c->h->request_id = (++c->w->next_request << 8) | (uint64_t)c->w->idx;
    c->h->sio_forward = true;
    snprintf(c->h->sio_sid, sizeof c->h->sio_sid, "%s", sid);
    c->pending_next = c->w->pending_http;
    c->w->pending_http = c;
    lws_set_timeout(c->wsi, PENDING_TIMEOUT_HTTP_CONTENT, secs);
    return c->h->request_id;
}

void omsd_http_answer_deferred(omsd_worker *w, uint64_t id, int status, const char *ctype,
                               char *body, size_t len)
{
    for (omsd_conn *c = w->pending_http; c; c = c->pending_next) {
        if (c->h->request_id != id || !c->h->sio_forward)
            continue;
        unlink_pending(c);
        c->h->sio_forward = false;
        omsd_http_reply(c, status, ctype, body, len);
        return;
    }
    free(body); /* the client went away meanwhile */
}

void omsd_xq_drain_now(void)
{
    drain_xq(omsd_self, true);
}

static void answer_pending(omsd_worker *w, uint64_t request_id, int err, const char *errstr)
{
    omsd *d = w->d;
    for (omsd_conn *c = w->pending_http; c; c = c->pending_next) {
        if (c->h->request_id != request_id)
            continue;
        unlink_pending(c);
        omsd_http_resp *r = &c->h->deferred;
        if (err) {
            free(r->body);
            char msg[256];
            snprintf(msg, sizeof msg, "kafka did not acknowledge the event: %s", errstr);
            omsd_rest_error(r, 503, "unavailable", msg);
        } else {
            d->m.triggers_produced++;
            r->status = 202;
        }
        r->deferred = false;
        reply_rest(c, r);
        return;
    }
}

static int write_http(omsd *d, omsd_conn *c)
{
    (void)d;
    return oms_httpd_write(&c->h->t, c->wsi);
}

/* An upgrade refused: a JSON body with the status, then the connection ends. */
static int refuse_upgrade_body(omsd_conn *c, int status, const char *body, size_t len)
{
    unsigned char buf[LWS_PRE + 2048];
    unsigned char *start = buf + LWS_PRE, *p = start, *end = buf + sizeof buf - 1;
    if (!lws_add_http_common_headers(c->wsi, (unsigned)status, "application/json",
                                     (lws_filepos_t)len, &p, end) &&
        (status != 401 ||
         !lws_add_http_header_by_name(c->wsi, (const unsigned char *)"www-authenticate:",
                                      (const unsigned char *)"Bearer", 6, &p, end)) &&
        !lws_finalize_write_http_header(c->wsi, start, &p, end)) {
        unsigned char *b = malloc(LWS_PRE + len);
        if (b) {
            memcpy(b + LWS_PRE, body, len);
            lws_write(c->wsi, b + LWS_PRE, len, LWS_WRITE_HTTP_FINAL);
            free(b);
        }
    }
    return 1;
}

static int refuse_upgrade(omsd_conn *c, int status, const char *code, const char *message)
{
    omsd_http_resp r = {0};
    omsd_rest_error(&r, status, code, message);
    int rc = refuse_upgrade_body(c, status, r.body ? r.body : "", r.body ? r.len : 0);
    free(r.body);
    return rc;
}

/* Authenticate an upgrade (or an established connection): 0 and *who, or a
 * status to refuse with. */
static int ws_auth(omsd *d, omsd_conn *c, oms_principal *who, char *err, size_t errlen,
                   const char **code)
{
    char auth[4096], token[4096], origin[300], host[300];
    hdr(c->wsi, WSI_TOKEN_HTTP_AUTHORIZATION, auth, sizeof auth);
    hdr(c->wsi, WSI_TOKEN_ORIGIN, origin, sizeof origin);
    hdr(c->wsi, WSI_TOKEN_HOST, host, sizeof host);
    set_token_arg(c, token, sizeof token);
    if (origin[0] && !omsd_origin_allowed(d, origin, host)) {
        snprintf(err, errlen, "origin '%.200s' is not allowed", origin);
        *code = "forbidden_origin";
        return 403;
    }
    omsd_http_req req = {"GET", c->h->t.path, "", auth, token, origin, "", 0, 0};
    omsd_http_resp r = {0};
    if (omsd_rest_auth(d, &req, who, &r) != 0) {
        json_t *j = json_loadb(r.body, r.len, 0, NULL);
        json_t *e = json_object_get(j, "error");
        const char *msg = json_string_value(json_object_get(e, "message"));
        const char *ecode = json_string_value(json_object_get(e, "code"));
        snprintf(err, errlen, "%s", msg ? msg : "unauthorized");
        *code = ecode && strcmp(ecode, "token_expired") == 0 ? "token_expired" : "unauthorized";
        json_decref(j);
        free(r.body);
        return 401;
    }
    return 0;
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
    conn_send_json_new(c, "error", oms_gw_error("token_expired", "the token expired; reconnect with "
                                                             "a new one or send refresh_token "
                                                             "before expiry"));
    conn_close(c, OMS_CLOSE_TOKEN_EXPIRED, "token expired");
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
        /* at once, whether or not it reads: a close handshake would wait */
        lws_set_timeout(c->wsi, PENDING_TIMEOUT_CLOSE_ACK, LWS_TO_KILL_ASYNC);
        return;
    }
    int64_t next = ping - idle;
    if (idle >= ping) {
        c->ping_due = true;
        lws_callback_on_writable(c->wsi);
        next = ping < hangup - idle ? ping : hangup - idle;
    }
    oms_wheel_arm(&c->w->wheel, &c->t_idle, now, next, on_idle_check);
}

static oms_gw_env make_env(omsd *d)
{
    oms_gw_env env = {d->auth, env_positions, d, oms_now_ms(), &d->filter_limits};
    return env;
}

static void ws_closed(omsd *d, omsd_conn *c);

static void http_free(omsd_conn *c)
{
    if (!c->h)
        return;
    oms_httpd_txn_clear(&c->h->t);
    free(c->h->deferred.body);
    free(c->h);
    c->h = NULL;
}

static int ws_established(omsd *d, omsd_conn *c)
{
    http_free(c); /* a WebSocket from now on */
    omsd_upgrade *verdict = lws_get_opaque_user_data(c->wsi);
    if (!verdict)
        return -1; /* every upgrade passes CONFIRM_UPGRADE first */
    omsd_upgrade u = *verdict;
    free(verdict);
    lws_set_opaque_user_data(c->wsi, NULL);
    oms_principal who = u.who;
    c->qcap = queue_max(d) < 4 ? queue_max(d) : 4;
    c->q = calloc(c->qcap, sizeof *c->q);
    if (!c->q) {
        omsd_addr_put(u.addr);
        return -1;
    }
    c->is_ws = true;
    c->addr = u.addr; /* the slot taken at CONFIRM_UPGRADE */
    if (u.sio) {
        c->sio_ws = true;
        c->w->sio_ws_conns++;
        if (omsd_sio_ws_open(d, c, u.sid) != 0) {
            ws_closed(d, c);
            return -1;
        }
        return 0;
    }
    oms_session_init(&c->sess, &who, d->cfg.server.rate_limit_per_min, oms_now_ms());
    if (omsd_rstate_init(d, &c->rst) != OMS_OK ||
        oms_router_add(c->w->router, &c->route, c, &c->sess) != OMS_OK) {
        omsd_rstate_free(d, &c->rst);
        addr_release(c);
        free(c->q);
        c->q = NULL;
        c->is_ws = false;
        return -1;
    }
    c->next = c->w->conns;
    if (c->w->conns)
        c->w->conns->prev = c;
    c->w->conns = c;
    atomic_fetch_add(&c->w->nconns, 1);
    omsd_users_add(d, who.user_id, 1);
    d->m.connections_total++;
    oms_gw_env env = make_env(d);
    conn_send_json_new(c, "connected", oms_gw_connected(&c->sess, &env));
    schedule_expiry(c);
    c->last_rx_ms = omsd_mono_ms();
    oms_wheel_arm(&c->w->wheel, &c->t_idle, c->last_rx_ms,
                  (int64_t)d->cfg.server.ping_interval_s * 1000,
                  on_idle_check);
    oms_log(d->log, OMS_LOG_DEBUG, "client connected", OMS_LI("userId", who.user_id),
            OMS_LS("role", oms_role_name(who.role)));
    return 0;
}

static void ws_closed(omsd *d, omsd_conn *c)
{
    if (!c->is_ws)
        return;
    addr_release(c);
    if (c->sio_ws) {
        omsd_sio_conn_gone(d, c); /* also when it waits for its session */
        c->sio_ws = false;
        c->w->sio_ws_conns--;
    } else {
        oms_wheel_cancel(&c->w->wheel, &c->t_exp);
        oms_wheel_cancel(&c->w->wheel, &c->t_idle);
        oms_router_remove(c->w->router, &c->route);
        omsd_users_add(d, c->sess.who.user_id, -1);
        omsd_subs_count(d, c->sess.subs, 0);
        omsd_rstate_free(d, &c->rst);
        oms_session_clear(&c->sess);
        if (c->prev)
            c->prev->next = c->next;
        else if (c->w->conns == c)
            c->w->conns = c->next;
        if (c->next)
            c->next->prev = c->prev;
        atomic_fetch_sub(&c->w->nconns, 1);
    }
    drop_queue(c);
    free(c->q);
    free(c->rx);
    c->q = NULL;
    c->rx = NULL;
    c->is_ws = false;
}

/* Gather a message's fragments in c->rx: 1 when it is complete, 0 when more
 * is to come (or it is being skipped), 2 when it passed max (the rest of it
 * is then skipped), -1 out of memory. */
static int ws_collect(omsd_conn *c, const char *in, size_t len, size_t max)
{
    bool final = lws_is_final_fragment(c->wsi) && lws_remaining_packet_payload(c->wsi) == 0;
    if (!c->rx_skip && c->rxlen + len > max) {
        c->rx_skip = true;
        c->rxlen = 0;
        return 2;
    }
    if (c->rx_skip) {
        if (final)
            c->rx_skip = false;
        return 0;
    }
    if (c->rxlen + len > c->rxcap) {
        size_t cap = c->rxcap ? c->rxcap : 4096;
        while (cap < c->rxlen + len)
            cap *= 2;
        char *nb = realloc(c->rx, cap);
        if (!nb)
            return -1;
        c->rx = nb;
        c->rxcap = cap;
    }
    memcpy(c->rx + c->rxlen, in, len);
    c->rxlen += len;
    return final ? 1 : 0;
}

/* A message was handled: its buffer goes back to nothing when a large one
 * made it grow, so an idle connection does not keep it. */
#define RX_KEEP 16384
static void rx_done(omsd_conn *c)
{
    c->rxlen = 0;
    if (c->rxcap > RX_KEEP) {
        free(c->rx);
        c->rx = NULL;
        c->rxcap = 0;
    }
}

/* A Socket.IO WebSocket: whole messages go to socketio.c (a few KiB at most
 * before the session authenticates). */
static int sio_ws_receive(omsd *d, omsd_conn *c, const char *in, size_t len)
{
    if (c->closing)
        return 0;
    int rc = ws_collect(c, in, len, omsd_sio_message_limit(c));
    if (rc == 2) {
        omsd_sio_ws_too_big(d, c);
        return 0;
    }
    if (rc <= 0)
        return rc;
    omsd_sio_ws_message(d, c, c->rx, c->rxlen, lws_frame_is_binary(c->wsi) != 0);
    rx_done(c);
    return 0;
}

static int ws_receive(omsd *d, omsd_conn *c, const char *in, size_t len)
{
    size_t max = (size_t)d->cfg.server.max_frame_bytes;
    c->last_rx_ms = omsd_mono_ms();
    if (c->closing)
        return 0;
    int rc = ws_collect(c, in, len, max);
    if (rc == 2) {
        char msg[128];
        snprintf(msg, sizeof msg, "message over the %zu-byte limit", max);
        conn_send_json_new(c, "error", oms_gw_error("too_large", msg));
        conn_close(c, OMS_CLOSE_TOO_BIG, "message too big");
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
        conn_close(c, OMS_CLOSE_TRY_LATER, "out of memory");
    rx_done(c);
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

static int ws_writeable(omsd *d, omsd_conn *c)
{
    if (c->ping_due && !c->closing && !lws_send_pipe_choked(c->wsi)) {
        /* a payload: lws 4.1 hands a pong to the protocol callback
         * (LWS_CALLBACK_RECEIVE_PONG) only when it carries one */
        unsigned char buf[LWS_PRE + 4];
        memcpy(buf + LWS_PRE, "oms", 3);
        c->ping_due = false;
        if (lws_write(c->wsi, buf + LWS_PRE, 3, LWS_WRITE_PING) < 0)
            return -1;
        if (c->qlen > 0 || c->closing)
            lws_callback_on_writable(c->wsi); /* one write per WRITEABLE */
        return 0;
    }
    /* one write per frame: packing several frames into one raw write was
     * measured slower here (partial writes get copied by lws) */
    int64_t now_ms = 0;
    for (int i = 0; i < WRITES_PER_CALLBACK && c->qlen > 0; i++) {
        if (lws_send_pipe_choked(c->wsi))
            break;
        omsd_frame *f = c->q[c->qhead];
        int n = lws_write(c->wsi, f->buf + LWS_PRE, f->len, LWS_WRITE_TEXT);
        if (n < (int)f->len) {
            oms_log(d->log, OMS_LOG_WARN, "write failed, closing", OMS_LI("wrote", n),
                    OMS_LI("len", f->len));
            return -1;
        }
        c->qhead = (c->qhead + 1) % c->qcap;
        c->qlen--;
        if (f->topic >= 0)
            OMSD_BUMP(c->w->delivered[f->topic], 1);
        if (f->ts_ms) {
            if (!now_ms)
                now_ms = oms_now_ms(); /* once per callback */
            omsd_age_record(c->w, f->ts_ms, now_ms);
        }
        omsd_frame_unref(f);
    }
    /* a replay goes out as the queue empties */
    if (c->sio_ws)
        omsd_sio_pump(d, c);
    else if (c->rst.rs)
        omsd_resume_pump(d, &c->rst);
    if (c->qlen > 0) {
        lws_callback_on_writable(c->wsi);
        return 0;
    }
    if (c->closing && !c->close_sent) {
        /* Send the close frame ourselves and wait for the peer's: closing the
         * socket at once while a flooding client's frames are still unread
         * would make the kernel answer with a reset, and the client would
         * lose the close code and whatever it had not read yet. */
        unsigned char buf[LWS_PRE + 128];
        size_t rlen = strlen(c->close_reason);
        if (rlen > 120)
            rlen = 120;
        buf[LWS_PRE] = (unsigned char)(c->close_code >> 8);
        buf[LWS_PRE + 1] = (unsigned char)(c->close_code & 0xff);
        memcpy(buf + LWS_PRE + 2, c->close_reason, rlen);
        /* 4 is LWS_WRITE_CLOSE, which lws keeps out of its public header */
        if (lws_write(c->wsi, buf + LWS_PRE, 2 + rlen, (enum lws_write_protocol)4) < 0)
            return -1;
        c->close_sent = true;
        lws_set_timeout(c->wsi, PENDING_TIMEOUT_CLOSE_ACK, 3);
    }
    return 0;
}

/* The rest of CONFIRM_UPGRADE, once the peer's address slot is taken:
 * 0 (accepted, the verdict on the wsi holds the slot) or what the callback
 * returns for a refusal (the caller gives the slot back). */
static int upgrade_verdict(omsd *d, omsd_conn *c, struct lws *wsi, omsd_addr *slot)
{
    if (omsd_sio_path(c->h->t.path)) {
        /* Socket.IO: no token here, auth comes in CONNECT */
        char origin[300], host[300], body[320];
        hdr(wsi, WSI_TOKEN_ORIGIN, origin, sizeof origin);
        hdr(wsi, WSI_TOKEN_HOST, host, sizeof host);
        omsd_sio_req r;
        sio_request(d, c, &r, origin, host, "");
        omsd_upgrade *u = calloc(1, sizeof *u);
        if (!u)
            return 1;
        int status = omsd_sio_confirm_upgrade(d, &r, u->sid, sizeof u->sid, body, sizeof body);
        if (status) {
            free(u);
            return refuse_upgrade_body(c, status, body, strlen(body));
        }
        u->sio = true;
        u->addr = slot;
        lws_set_opaque_user_data(wsi, u);
        return 0;
    }
    if (strcmp(c->h->t.path, "/events") != 0)
        return refuse_upgrade(c, 404, "not_found", "WebSocket endpoint is /events");
    if (atomic_load(&d->stopping))
        return refuse_upgrade(c, 503, "unavailable", "omsd is shutting down");
    oms_principal who;
    char err[256];
    const char *code = "unauthorized";
    int status = ws_auth(d, c, &who, err, sizeof err, &code);
    if (status) {
        d->m.auth_failures++;
        return refuse_upgrade(c, status, code, err);
    }
    /* lws may drop the headers before ESTABLISHED: carry the verdict on
     * the wsi itself (freed at ESTABLISHED or WSI_DESTROY) */
    omsd_upgrade *keep = calloc(1, sizeof *keep);
    if (!keep)
        return 1;
    keep->who = who;
    keep->addr = slot;
    lws_set_opaque_user_data(wsi, keep);
    return 0;
}

/* ---- the protocol callback ------------------------------------------------------------- */

static void accept_some(omsd_worker *w, struct lws *lwsi);

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    omsd_worker *w = lws_context_user(lws_get_context(wsi));
    omsd *d = w ? w->d : NULL;
    omsd_conn *c = NULL;
    omsd_self = w; /* whatever thread runs this context's callbacks */
    /* `user` is our per-session memory only for the connection callbacks;
     * for others (TLS set-up among them) it is something else entirely */
    switch (reason) {
    case LWS_CALLBACK_HTTP:
    case LWS_CALLBACK_HTTP_BODY:
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
    case LWS_CALLBACK_HTTP_WRITEABLE:
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
    case LWS_CALLBACK_CLOSED_HTTP:
    case LWS_CALLBACK_ESTABLISHED:
    case LWS_CALLBACK_RECEIVE:
    case LWS_CALLBACK_RECEIVE_PONG:
    case LWS_CALLBACK_SERVER_WRITEABLE:
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
    case LWS_CALLBACK_CLOSED:
        c = user;
        if (!c)
            return 0;
        if (!c->d) {
            c->d = d;
            c->w = w;
            c->wsi = wsi;
        }
        break;
    default:
        break;
    }
    switch (reason) {
    case LWS_CALLBACK_HTTP:
    case LWS_CALLBACK_HTTP_BODY:
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
    case LWS_CALLBACK_HTTP_WRITEABLE:
        if (!c->h && !(c->h = calloc(1, sizeof *c->h)))
            return -1;
        break;
    default:
        break;
    }
    switch (reason) {
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        if (w)
            drain_xq(w, true);
        return 0;

    case LWS_CALLBACK_RAW_RX_FILE:
        if (w)
            accept_some(w, wsi);
        return 0;

    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE: {
        if (!d)
            return 0;
        if (!in || strcmp((const char *)in, "websocket") != 0)
            return 0;
        /* no per-session memory is bound yet at this point */
        omsd_conn tmp;
        omsd_http th;
        memset(&tmp, 0, sizeof tmp);
        memset(&th, 0, sizeof th);
        tmp.d = d;
        tmp.w = w;
        tmp.wsi = wsi;
        tmp.h = &th;
        c = &tmp;
        request_info(c);
        char amsg[200];
        omsd_addr *slot = NULL;
        if (addr_reserve(d, wsi, &slot, amsg, sizeof amsg)) {
            d->m.address_refused++;
            return refuse_upgrade(c, 429, "too_many_connections", amsg);
        }
        int rc = upgrade_verdict(d, c, wsi, slot);
        if (rc)
            omsd_addr_put(slot); /* refused: the slot goes back */
        return rc;
    }

    case LWS_CALLBACK_WSI_DESTROY: {
        omsd_upgrade *u = lws_get_opaque_user_data(wsi);
        if (u)
            omsd_addr_put(u->addr); /* upgraded, never established */
        free(u);
        lws_set_opaque_user_data(wsi, NULL);
        return 0;
    }

    case LWS_CALLBACK_HTTP:
        request_info(c);
        if (oms_httpd_body_plan(&c->h->t, wsi, body_limit(c)) == OMS_HTTPD_RUN)
            run_request(d, c);
        return 0;

    case LWS_CALLBACK_HTTP_BODY:
        return oms_httpd_body(&c->h->t, in, len);

    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        run_request(d, c);
        return 0;

    case LWS_CALLBACK_HTTP_WRITEABLE:
        if (c->sio && !c->h->t.ready)
            omsd_sio_get_writeable(d, c); /* a held polling GET */
        return write_http(d, c);

    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
    case LWS_CALLBACK_CLOSED_HTTP:
        {
            if (c->sio && !c->sio_ws)
                omsd_sio_conn_gone(d, c);
            if (c->h && c->h->sio_forward) {
                /* the thread holding the session must not answer into the void */
                c->h->sio_forward = false;
                omsd_sio_forward_gone(d, c->h->sio_sid, c->h->request_id);
            }
            unlink_pending(c);
            http_free(c);
        }
        return 0;

    case LWS_CALLBACK_ESTABLISHED:
        return ws_established(d, c);

    case LWS_CALLBACK_RECEIVE:
        if (c->sio_ws)
            return sio_ws_receive(d, c, in, len);
        return ws_receive(d, c, in, len);

    case LWS_CALLBACK_SERVER_WRITEABLE:
        return ws_writeable(d, c);

    case LWS_CALLBACK_RECEIVE_PONG:
        c->last_rx_ms = omsd_mono_ms();
        return 0;

    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        /* the peer answers the close frame we sent ourselves: lws does not
         * know it went out, and echoing it would be a second close frame
         * (browsers then report 1006 instead of our code) */
        return c->close_sent ? -1 : 0;

    case LWS_CALLBACK_CLOSED:
        ws_closed(d, c);
        return 0;

    default:
        return 0;
    }
}

static const struct lws_protocols protocols[] = {
    /* rx_buffer_size is per connection: messages larger than this arrive in
     * pieces, which ws_receive reassembles up to server.max_frame_bytes */
    {"oms", callback, sizeof(omsd_conn), 512, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* ---- the listening socket ------------------------------------------------------------------- */

/* One listening socket for every service thread: each watches it in its
 * own loop (adopted as a file) and accepts a few connections per wake-up,
 * so the connections spread over the threads and a second process still
 * cannot take the port. (lws 4.1 sets SO_REUSEPORT only when built for
 * several threads per context, which Debian's is not.) */
#define ACCEPTS_PER_WAKE 8

static int open_listener(const omsd *d, char *errbuf, size_t errlen)
{
    const char *host = d->cfg.server.host;
    bool any = strcmp(host, "0.0.0.0") == 0;
    char port[16];
    snprintf(port, sizeof port, "%d", d->cfg.server.port);
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    /* every address: IPv6 and IPv4 on one dual-stack socket when we can */
    hints.ai_family = any ? AF_INET6 : AF_UNSPEC;
    int gai = getaddrinfo(any ? NULL : host, port, &hints, &res);
    if (gai != 0 && any) {
        hints.ai_family = AF_INET;
        gai = getaddrinfo(NULL, port, &hints, &res);
    }
    if (gai != 0) {
        oms_errf(errbuf, errlen, "cannot listen on %s:%d: %s", host, d->cfg.server.port,
                 gai_strerror(gai));
        return -1;
    }
    int fd = -1, err = 0;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            err = errno;
            continue;
        }
        int one = 1, zero = 0;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (ai->ai_family == AF_INET6 && any)
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 4096) != 0) {
            err = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0)
        oms_errf(errbuf, errlen, "cannot listen on %s:%d: %s", host, d->cfg.server.port,
                 strerror(err));
    return fd;
}

/* The listening socket is readable on this thread: take a few. */
static void accept_some(omsd_worker *w, struct lws *lwsi)
{
    int lfd = (int)lws_get_socket_fd(lwsi);
    struct lws_vhost *vh = lws_get_vhost(lwsi);
    for (int i = 0; i < ACCEPTS_PER_WAKE; i++) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
                errno != ECONNABORTED)
                oms_log(w->d->log, OMS_LOG_WARN, "accept failed", OMS_LS("error", strerror(errno)),
                        OMS_LI("thread", w->idx));
            return; /* another thread took it, or none is left */
        }
        /* HTTP serving mode, TLS when the vhost has it; lws closes fd on
         * failure */
        lws_adopt_socket_vhost(vh, fd);
    }
}

/* ---- timers and life cycle ----------------------------------------------------------------- */

/* Every 100 ms on each service thread: its timers, its drain; the first
 * one also keeps the process-wide figures, the history and presence. */
static void tick(lws_sorted_usec_list_t *sul)
{
    omsd_worker *w = lws_container_of(sul, omsd_worker, sul_tick);
    omsd *d = w->d;
    omsd_self = w;
    oms_wheel_advance(&w->wheel, omsd_mono_ms());
    uint64_t now = oms_mono_ns();
    if (w->idx == 0 && now - d->rate_mark_ns >= 1000000000u) {
        omsd_history_sweep(d, oms_now_ms());
        /* the history's turnover leaves freed memory in the heap: give the
         * free pages back now and then, so RSS follows what is in use */
        static int trim_in;
        if (++trim_in >= 30) {
            trim_in = 0;
            malloc_trim(0);
        }
        json_t *local = json_object();
        omsd_local_users(d, local);
        omsd_presence_publish(d, local);
        uint64_t consumed = 0, delivered = 0;
        for (int k = 0; k < OMS_TOPIC__COUNT; k++)
            consumed += atomic_load(&d->m.consumed[k]);
        for (int i = 0; i < d->nworkers; i++)
            for (int k = 0; k < OMS_TOPIC__COUNT; k++)
                delivered += atomic_load_explicit(&d->workers[i].delivered[k],
                                                  memory_order_relaxed);
        double secs = (double)(now - d->rate_mark_ns) / 1e9;
        d->events_per_s = (double)(consumed - d->rate_mark_consumed) / secs;
        d->deliveries_per_s = (double)(delivered - d->rate_mark_delivered) / secs;
        d->rate_mark_consumed = consumed;
        d->rate_mark_delivered = delivered;
        d->rate_mark_ns = now;
    }
    if (omsd_stop && !w->draining) {
        if (!atomic_exchange(&d->stopping, 1)) {
            /* systemd: stopping starts now, with the drain (not after it) */
            omsd_notify("STOPPING=1\nSTATUS=closing clients");
            oms_log(d->log, OMS_LOG_INFO, "shutting down: closing clients",
                    OMS_LI("connections", omsd_nconns(d)));
        }
        w->draining = true;
        w->drain_deadline_ns = now + 4500000000u;
        for (omsd_conn *c = w->conns; c; c = c->next)
            conn_close(c, OMS_CLOSE_GOING_AWAY, "server shutting down");
        omsd_sio_drain(d);
    }
    lws_sul_schedule(w->ctx, 0, sul, tick, 100 * LWS_US_PER_MS);
}

static int worker_init(omsd *d, omsd_worker *w, int idx, char *errbuf, size_t errlen)
{
    w->d = d;
    w->idx = idx;
    pthread_mutex_init(&w->xq_lock, NULL);
    w->router = oms_router_new();
    /* 100 ms ticks, 4096 slots: a turn of the wheel is 409.6 s */
    if (!w->router || oms_wheel_init(&w->wheel, 4096, 100, omsd_mono_ms()) != OMS_OK)
        goto nomem;
    for (int k = 0; k < OMS_TOPIC__COUNT; k++) {
        w->last_offset[k] = malloc((d->nparts[k] > 0 ? (size_t)d->nparts[k] : 1) * sizeof(int64_t));
        if (!w->last_offset[k])
            goto nomem;
        for (int p = 0; p < d->nparts[k]; p++)
            w->last_offset[k][p] = d->start_offset[k][p] - 1;
    }
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    /* a server vhost that does not listen: connections come from our
     * listening socket (accept_some) */
    info.port = CONTEXT_PORT_NO_LISTEN_SERVER;
    info.protocols = protocols;
    info.user = w;
    /* lws' validity timer off: without a policy of ours lws applies its
     * default one (ping after 300 s, hang up after 310 s) and re-arms that
     * timer in its sorted list, O(connections), as connections are
     * serviced; a policy with no hang-up turns it off. Pings and the idle
     * timeout are ours, on w->wheel (on_idle_check). */
    static const lws_retry_bo_t no_validity = {.secs_since_valid_ping = 0,
                                               .secs_since_valid_hangup = 0};
    info.retry_and_idle_policy = &no_validity;
    info.options = LWS_SERVER_OPTION_VALIDATE_UTF8;
    if (strcmp(d->cfg.server.event_loop, "epoll") == 0) {
        /* readiness from epoll: the cost of a wake-up follows the sockets
         * that are ready, not the number open (lws' own loop polls every
         * one); the loop is ours, run a turn at a time in worker_main */
        w->evloop = ev_loop_new(EVBACKEND_EPOLL);
        if (!w->evloop) {
            oms_errf(errbuf, errlen, "cannot create an epoll event loop");
            return OMS_EIO;
        }
        info.options |= LWS_SERVER_OPTION_LIBEV;
        info.foreign_loops = &w->evloop;
    }
    info.max_http_header_data = 8192;
    info.pt_serv_buf_size = 64 * 1024;
    info.timeout_secs = 20;
    info.ka_time = 0;
    if (d->cfg.server.tls_cert[0]) {
        /* ADOPT_APPLY_LISTEN_ACCEPT_CONFIG: the vhost's TLS for the
         * sockets we adopt, and no client TLS context (omsd connects to
         * no one over lws; with several contexts lws leaks those) */
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT |
                        LWS_SERVER_OPTION_ADOPT_APPLY_LISTEN_ACCEPT_CONFIG;
        info.ssl_cert_filepath = d->cfg.server.tls_cert;
        info.ssl_private_key_filepath = d->cfg.server.tls_key;
    }
    omsd_self = w;
    w->ctx = lws_create_context(&info);
    if (!w->ctx) {
        oms_errf(errbuf, errlen, "cannot start the server (bad TLS files?)");
        return OMS_EIO;
    }
    struct lws_vhost *vh = lws_get_vhost_by_name(w->ctx, "default");
    int lfd = dup(d->listen_fd);
    lws_sock_file_fd_type fd = {.filefd = lfd};
    if (!vh || lfd < 0 || !lws_adopt_descriptor_vhost(vh, LWS_ADOPT_RAW_FILE_DESC, fd, "oms", NULL)) {
        oms_errf(errbuf, errlen, "cannot watch the listening socket");
        return OMS_EIO;
    }
    omsd_sio_init(d);
    lws_sul_schedule(w->ctx, 0, &w->sul_tick, tick, 100 * LWS_US_PER_MS);
    omsd_self = NULL;
    return OMS_OK;
nomem:
    oms_errf(errbuf, errlen, "out of memory");
    return OMS_ENOMEM;
}

int omsd_server_start(omsd *d, char *errbuf, size_t errlen)
{
    lws_set_log_level(getenv("OMS_LWS_DEBUG") ? LLL_ERR | LLL_WARN | LLL_NOTICE | LLL_INFO : LLL_ERR, NULL);
    d->listen_fd = -1;
    int n = d->cfg.server.threads;
    if (n <= 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        n = cores > 0 ? (int)cores : 1;
    }
    if (n > OMSD_MAX_THREADS)
        n = OMSD_MAX_THREADS;
    d->workers = calloc((size_t)n, sizeof *d->workers);
    d->users = json_object();
    if (!d->workers || !d->users) {
        oms_errf(errbuf, errlen, "out of memory");
        return OMS_ENOMEM;
    }
    pthread_mutex_init(&d->users_lock, NULL);
    d->listen_fd = open_listener(d, errbuf, errlen);
    if (d->listen_fd < 0)
        return OMS_EIO;
    for (int i = 0; i < n; i++) {
        d->nworkers = i + 1;
        int rc = worker_init(d, &d->workers[i], i, errbuf, errlen);
        if (rc != OMS_OK)
            return rc;
    }
    d->rate_mark_ns = oms_mono_ns();
    return OMS_OK;
}

/* A service thread's loop, until its drain ends. */
static void *worker_main(void *arg)
{
    omsd_worker *w = arg;
    omsd *d = w->d;
    omsd_self = w;
    while (w->evloop ? (ev_run(w->evloop, EVRUN_ONCE), true) : lws_service(w->ctx, 0) >= 0) {
        /* sessions closed during that turn: nothing of ours runs now */
        omsd_sio_reap();
        if (w->idx == 0 && omsd_reload_requested && !w->draining)
            omsd_reload(d); /* SIGHUP: notify.c; bumps reload_gen */
        if (w->reload_gen != atomic_load(&d->reload_gen)) {
            w->reload_gen = atomic_load(&d->reload_gen);
            omsd_reload_tls(w);
        }
        if (w->draining && ((atomic_load(&w->nconns) == 0 && w->sio_ws_conns == 0) ||
                            oms_mono_ns() > w->drain_deadline_ns))
            break;
    }
    return NULL;
}

int omsd_server_run(omsd *d)
{
    for (int i = 1; i < d->nworkers; i++) {
        if (pthread_create(&d->workers[i].thread, NULL, worker_main, &d->workers[i]) != 0) {
            oms_log(d->log, OMS_LOG_ERROR, "cannot start a service thread", OMS_LI("thread", i));
            d->nworkers = i; /* the others are not served; their contexts still listen */
            break;
        }
    }
    oms_log(d->log, OMS_LOG_INFO, "service threads", OMS_LI("threads", d->nworkers),
            OMS_LS("eventLoop", d->cfg.server.event_loop));
    worker_main(&d->workers[0]);
    for (int i = 1; i < d->nworkers; i++)
        pthread_join(d->workers[i].thread, NULL);
    return 0;
}

void omsd_server_stop(omsd *d)
{
    if (!d->workers)
        return;
    /* the first context last: it set OpenSSL up for the process */
    for (int i = d->nworkers - 1; i >= 0; i--) {
        omsd_worker *w = &d->workers[i];
        omsd_self = w;
        if (w->ctx) {
            lws_sul_cancel(&w->sul_tick);
            omsd_sio_free_all(d);
            lws_context_destroy(w->ctx);
            w->ctx = NULL;
        }
        if (w->evloop) {
            ev_loop_destroy(w->evloop);
            w->evloop = NULL;
        }
    }
    for (int i = 0; i < d->nworkers; i++) {
        omsd_worker *w = &d->workers[i];
        omsd_self = w;
        /* whatever was handed over after the last drain has no one to go to */
        drain_xq(w, false);
        oms_wheel_free(&w->wheel);
        oms_router_free(w->router);
        for (int k = 0; k < OMS_TOPIC__COUNT; k++)
            free(w->last_offset[k]);
        pthread_mutex_destroy(&w->xq_lock);
    }
    omsd_self = NULL;
    if (d->listen_fd >= 0)
        close(d->listen_fd);
    d->listen_fd = -1;
    addr_free_all();
    free(d->workers);
    d->workers = NULL;
    d->nworkers = 0;
    json_decref(d->users);
    d->users = NULL;
    pthread_mutex_destroy(&d->users_lock);
}
