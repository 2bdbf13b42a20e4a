/* server.c — the libwebsockets callback of every service thread: routes
 * each connection's events to what serves it — a REST request to rest.c
 * or the console's files, /socket.io/ to socketio.c, an upgrade to /events
 * (checked and authenticated here) to the plain dialect (plain.c) — and
 * accepts new connections from the shared listening socket. The service
 * threads themselves are workers.c's. */
#define _GNU_SOURCE /* accept4 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "conn_types.h"
#include "deflate.h"
#include "notify.h"
#include "plain.h"
#include "socketio.h"
#include "sse.h"

#define MAX_BODY (1u << 20)

_Thread_local omsd_worker *omsd_self;


/* The verdict of CONFIRM_UPGRADE, carried on the wsi to ESTABLISHED. */
typedef struct omsd_upgrade {
    omsd_addr *addr;    /* its address slot, taken at the upgrade */
    bool sio;
    oms_principal who;  /* /events */
    char sid[64];       /* /socket.io/: the session to upgrade, "" for a new one */
} omsd_upgrade;

/* ---- HTTP ----------------------------------------------------------------------- */

#define hdr omsd_http_header
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
    omsd_http_token_arg(c->wsi, token, sizeof token);
    c->h->t.cors[0] = '\0';
    if (origin[0] && omsd_origin_allowed(d, origin, host))
        snprintf(c->h->t.cors, sizeof c->h->t.cors, "%s", origin);
    if (omsd_sse_path(c->h->t.path)) {
        omsd_sse_request(c); /* an event stream, or its refusal */
        return;
    }
    if (omsd_sio_path(c->h->t.path)) {
        char ctype[128];
        hdr(c->wsi, WSI_TOKEN_HTTP_CONTENT_TYPE, ctype, sizeof ctype);
        omsd_sio_req r;
        sio_request(d, c, &r, origin, host, ctype);
        omsd_sio_http(d, c, &r);
        return;
    }
    /* the low byte names this thread: the delivery report comes back here */
    c->h->request_id = omsd_http_request_id(c);
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
        omsd_http_wait_delivery(c, &resp);
        return;
    }
    omsd_http_reply_rest(c, &resp);
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
    omsd_http_token_arg(c->wsi, token, sizeof token);
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

static void ws_closed(omsd *d, omsd_conn *c);

static int ws_established(omsd *d, omsd_conn *c)
{
    omsd_http_free(c); /* a WebSocket from now on */
    omsd_upgrade *verdict = lws_get_opaque_user_data(c->wsi);
    if (!verdict)
        return -1; /* every upgrade passes CONFIRM_UPGRADE first */
    omsd_upgrade u = *verdict;
    free(verdict);
    lws_set_opaque_user_data(c->wsi, NULL);
    if (omsd_conn_open(c, u.addr) != 0) /* the slot taken at CONFIRM_UPGRADE */
        return -1;
    if (u.sio) {
        c->sio_ws = true;
        c->w->sio_ws_conns++;
        if (omsd_sio_ws_open(d, c, u.sid) != 0) {
            ws_closed(d, c);
            return -1;
        }
        return 0;
    }
    if (omsd_plain_open(c, &u.who) != 0) {
        omsd_conn_release(c);
        return -1;
    }
    return 0;
}

static void ws_closed(omsd *d, omsd_conn *c)
{
    if (!c->is_ws)
        return;
    if (c->sio_ws) {
        omsd_sio_conn_gone(d, c); /* also when it waits for its session */
        c->sio_ws = false;
        c->w->sio_ws_conns--;
    } else {
        omsd_plain_closed(c);
    }
    omsd_conn_release(c);
}

/* A Socket.IO WebSocket: whole messages go to socketio.c (a few KiB at most
 * before the session authenticates). */
static int sio_ws_receive(omsd *d, omsd_conn *c, const char *in, size_t len)
{
    if (c->closing)
        return 0;
    int rc = omsd_conn_collect(c, in, len, omsd_sio_message_limit(c));
    if (rc == 2) {
        omsd_sio_ws_too_big(d, c);
        return 0;
    }
    if (rc <= 0)
        return rc;
    omsd_sio_ws_message(d, c, c->rx, c->rxlen, lws_frame_is_binary(c->wsi) != 0);
    omsd_conn_rx_done(c);
    return 0;
}

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
        if (omsd_http_begin(c) != 0)
            return -1;
        break;
    default:
        break;
    }
    switch (reason) {
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        if (w)
            omsd_xq_drain(w, true);
        return 0;

    case LWS_CALLBACK_RAW_RX_FILE:
        if (w)
            accept_some(w, wsi);
        return 0;

    case LWS_CALLBACK_ADD_HEADERS: /* the WebSocket upgrade's answer */
        return d ? omsd_pmd_headers(d, wsi, in) : 0;

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
        oms_httpd_request_line(&c->h->t, c->wsi);
        char amsg[200];
        omsd_addr *slot = NULL;
        if (omsd_addr_reserve(d, wsi, &slot, amsg, sizeof amsg)) {
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
        oms_httpd_request_line(&c->h->t, c->wsi);
        if (oms_httpd_body_plan(&c->h->t, wsi, body_limit(c)) == OMS_HTTPD_RUN)
            run_request(d, c);
        return 0;

    case LWS_CALLBACK_HTTP_BODY:
        return oms_httpd_body(&c->h->t, in, len);

    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        run_request(d, c);
        return 0;

    case LWS_CALLBACK_HTTP_WRITEABLE:
        if (c->sse)
            return omsd_sse_writeable(c);
        if (c->sio && !c->h->t.ready)
            omsd_sio_get_writeable(d, c); /* a held polling GET */
        return oms_httpd_write(&c->h->t, c->wsi);

    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
    case LWS_CALLBACK_CLOSED_HTTP:
        {
            omsd_sse_closed(c); /* an event stream, when it is one */
            if (c->sio && !c->sio_ws)
                omsd_sio_conn_gone(d, c);
            if (c->h && c->h->sio_forward) {
                /* the thread holding the session must not answer into the void */
                c->h->sio_forward = false;
                omsd_sio_forward_gone(d, c->h->sio_sid, c->h->request_id);
            }
            omsd_http_unlink(c);
            omsd_http_free(c);
        }
        return 0;

    case LWS_CALLBACK_ESTABLISHED:
        return ws_established(d, c);

    case LWS_CALLBACK_RECEIVE:
        if (c->sio_ws)
            return sio_ws_receive(d, c, in, len);
        return omsd_plain_receive(c, in, len);

    case LWS_CALLBACK_SERVER_WRITEABLE:
        return omsd_conn_writeable(c);

    case LWS_CALLBACK_RECEIVE_PONG:
        if (!c->sio_ws)
            omsd_plain_pong(c);
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

const struct lws_protocols omsd_protocols[] = {
    /* rx_buffer_size is per connection: messages larger than this arrive in
     * pieces, which ws_receive reassembles up to server.max_frame_bytes */
    /* tx_packet_size: how much lws hands the socket in one write (else it
     * is rx_buffer_size and a write of several frames goes out 512 bytes at
     * a time, the rest copied aside) */
    {"oms", callback, sizeof(omsd_conn), 512, 0, NULL, OMSD_WRITE_BATCH + 64},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* ---- the listening socket ------------------------------------------------------------------- */

/* Each service thread watches the one listening socket (workers.c) and
 * accepts a few connections per wake-up, so they spread over the threads. */
#define ACCEPTS_PER_WAKE 8

/* The listening socket is readable on this thread: take a few. */
static void accept_some(omsd_worker *w, struct lws *lwsi)
{
    /* a SIGHUP's new certificate before the new clients, not after them */
    int gen = atomic_load(&w->d->reload_gen);
    if (w->reload_gen != gen) {
        w->reload_gen = gen;
        omsd_reload_tls(w);
    }
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
