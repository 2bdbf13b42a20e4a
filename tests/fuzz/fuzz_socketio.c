/* fuzz_socketio.c — the Socket.IO v4 dialect of cmd/omsd/socketio.c
 * (Engine.IO 4 packets over polling and WebSocket, the upgrade, Socket.IO 5
 * packets, acks, binary attachments, timers, the fan-out framing).
 * socketio.c is compiled into this file; what it needs from the core (conn.h)
 * (connections) and fanout.c (frames) is stood in for below, so nothing
 * touches a socket; the daemon's timer wheel is real and its timers fire
 * when the input says so.
 *
 * Input: records separated by NUL bytes. A record's first byte is the
 * operation (low 4 bits) and the connection slot (bits 4-5) or the session
 * (bits 6-7); the rest is its payload, "@T0".."@T9" standing for tokens:
 *   15 polling handshake (GET, no sid)    1 POST payload to a session
 *   2 GET (held) on a session             3 serve the writeable GETs
 *   4 WebSocket-only connection           5 WebSocket upgrade of a session
 *   6 WebSocket text message (payload)    7 WebSocket binary message
 *   8 WebSocket message too big           9 the connection goes away
 *   10 fire every scheduled timer          11 fan-out: the payload as a plain
 *                                            frame (when it is a JSON object)
 *   12 a polling request with the payload's "eio,transport,sid,method"
 *   13 a request from a foreign origin     14 shutdown (drain)     0 nothing
 * Invariants: every packet the server sends (WebSocket frames and polling
 * bodies) is a well-formed Engine.IO packet whose Socket.IO JSON parses;
 * the session list, hash and count agree; after free_all nothing is left
 * (timers, sessions, frames: ASan's leak check sees the rest). */
#include "../../cmd/omsd/socketio.c"

#include <fcntl.h>
#include <unistd.h>

#include "fuzz.h"

/* ---- timers: the daemon's wheel, fired when the input says so --------------------------- */

static omsd g_d;
static omsd_worker g_w; /* the one service thread */
_Thread_local omsd_worker *omsd_self;

static void fire_timers(void)
{
    enum { MAX_T = 1024 };
    oms_wtimer *snap[MAX_T];
    int n = 0;
    for (size_t b = 0; b < g_w.wheel.nslots; b++)
        for (oms_wtimer *t = g_w.wheel.slots[b]; t && n < MAX_T; t = t->next)
            snap[n++] = t;
    FUZZ_CHECK(n < MAX_T, "too many timers");
    /* sessions closed by a callback stay in memory until the reaper runs */
    for (int i = 0; i < n; i++) {
        if (!oms_wtimer_armed(snap[i]))
            continue; /* cancelled by an earlier callback */
        oms_wheel_cancel(&g_w.wheel, snap[i]);
        snap[i]->fn(snap[i]);
    }
}

/* ---- frames (frame.c) ------------------------------------------------------------------------- */

#include "../../cmd/omsd/frame.c" /* the daemon's own frames */

/* deflate.c: nothing is compressed here */
void omsd_frame_compress(omsd *d, omsd_frame *f)
{
    (void)d;
    (void)f;
}

/* ---- position tokens (tokens.c): no key here, so no recovery ------------------------------ */

char *omsd_token_make(omsd *d, unsigned cls, const int64_t *vec)
{
    (void)d, (void)vec;
    char *t = strdup("0AAAAAAAA");
    if (t)
        t[0] = (char)('0' + (cls & 3u));
    return t;
}

const char *omsd_frame_token(omsd *d, omsd_frame *f)
{
    (void)d;
    return f->token;
}

char *omsd_token_here(omsd *d, unsigned cls)
{
    return omsd_token_make(d, cls, NULL);
}

int omsd_token_read(omsd *d, const char *tok, unsigned *cls, int64_t *vec)
{
    (void)d, (void)tok, (void)cls, (void)vec;
    return OMS_EINVAL;
}

json_t *omsd_token_since(omsd *d, const int64_t *vec)
{
    (void)d, (void)vec;
    return json_array();
}

unsigned omsd_token_subs(unsigned cls, oms_role role)
{
    (void)role;
    return cls & 3u;
}

/* ---- the session store (sstore.c): memory-less, nothing stored -------------------------- */

void omsd_sstore_ans_free(omsd_sstore_ans *a)
{
    if (a)
        free(a->state);
    free(a);
}

bool omsd_sstore_durable(const omsd *d)
{
    (void)d;
    return false;
}

int omsd_sstore_save(omsd *d, const char *pid, int64_t user_id, const char *state, bool join,
                     bool durable, bool answer, int worker, const char *sid, uint64_t seq)
{
    (void)d, (void)pid, (void)user_id, (void)state, (void)join, (void)durable, (void)answer;
    (void)worker, (void)sid, (void)seq;
    return OMS_OK;
}

int omsd_sstore_peek(omsd *d, const char *pid, int64_t *user_id, char **state, bool *stored)
{
    (void)d, (void)pid, (void)user_id, (void)stored;
    *state = NULL;
    return OMS_ENOTFOUND;
}

int omsd_sstore_lookup(omsd *d, const char *pid, int worker, const char *sid, uint64_t seq)
{
    (void)d, (void)pid, (void)worker, (void)sid, (void)seq;
    return OMS_EINVAL;
}

void omsd_sstore_live(omsd *d, const char *pid, bool live)
{
    (void)d, (void)pid, (void)live;
}

void omsd_sstore_forget(omsd *d, const char *pid)
{
    (void)d, (void)pid;
}

void omsd_age_record(omsd_worker *w, int64_t ts_ms, int64_t now_ms)
{
    (void)w, (void)ts_ms, (void)now_ms;
}

/* ---- what the core keeps for every thread: one thread here, nothing to hand over ---------- */

void omsd_users_add(omsd *d, int64_t user_id, int delta)
{
    (void)d, (void)user_id, (void)delta;
}

void omsd_subs_count(omsd *d, unsigned old_subs, unsigned new_subs)
{
    (void)d, (void)old_subs, (void)new_subs;
}

uint64_t omsd_http_defer(omsd_conn *c, int secs, const char *sid)
{
    (void)c, (void)secs, (void)sid;
    FUZZ_CHECK(0, "a request forwarded with one thread");
    return 0;
}

void omsd_http_answer_deferred(omsd_worker *w, uint64_t id, int status, const char *ctype,
                               char *body, size_t len)
{
    (void)w, (void)id, (void)status, (void)ctype, (void)len;
    free(body);
}

void omsd_xq_drain_now(void)
{
}

void omsd_xq_push(omsd_worker *w, omsd_xq_item *it)
{
    (void)w;
    FUZZ_CHECK(0, "a message between threads with one thread");
    free(it);
}

/* ---- per-address slots (conn.c): no limit here ------------------------------------------ */

int omsd_conn_addr_acquire(omsd_conn *c, omsd_addr **out, char *msg, size_t msglen)
{
    (void)c, (void)msg, (void)msglen;
    *out = NULL;
    return 0;
}

void omsd_addr_put(omsd_addr *a)
{
    (void)a;
}

/* ---- resume (resume.c): answers at once, after one replayed event ------------------------ */

int omsd_rstate_init(omsd *d, omsd_rstate *st)
{
    (void)d;
    memset(st, 0, sizeof *st);
    return OMS_OK;
}

void omsd_rstate_subs(omsd *d, omsd_rstate *st, unsigned old_subs, unsigned new_subs)
{
    (void)d, (void)st, (void)old_subs, (void)new_subs;
}

void omsd_rstate_free(omsd *d, omsd_rstate *st)
{
    (void)d;
    memset(st, 0, sizeof *st);
}

bool omsd_resume_hold(omsd *d, omsd_rstate *st, omsd_frame *f)
{
    (void)d, (void)st, (void)f;
    return false;
}

void omsd_resume_start(omsd *d, omsd_rstate *st, const oms_session *s, const json_t *since,
                       const omsd_rsink *ops, void *conn)
{
    (void)d, (void)st, (void)s;
    if (!json_is_string(since) && !json_is_array(since)) {
        ops->answer(conn, "error", oms_gw_error("bad_request", "resume needs since"));
        return;
    }
    static const char replayed[] =
        "{\"event\":\"order_update\",\"data\":{\"type\":\"order_status\",\"id\":\"oms.orders:0:1\"}}";
    omsd_frame *f = omsd_frame_new(replayed, sizeof replayed - 1);
    ops->send(conn, f);
    omsd_frame_unref(f);
    (void)ops->queued(conn);
    ops->answer(conn, "resumed", json_pack("{s:b,s:i}", "recovered", 1, "replayed", 1));
}

void omsd_resume_pump(omsd *d, omsd_rstate *st)
{
    (void)d, (void)st;
}

/* ---- connections (conn.c) ---------------------------------------------------------------------- */

#define NCONN 4
#define CONN_QUEUE 64
struct omsd_conn {
    omsd_sio *sio;
    bool in_use;
    bool closing;  /* omsd_conn_close or an overflow: gone at the next step */
    bool held;     /* a GET waits for its answer */
    bool want_write;
    int nq;
};
static struct omsd_conn g_conn[NCONN];

json_t *omsd_positions(omsd *d, oms_topic_kind kind)
{
    (void)d;
    return json_pack("[s]", kind == OMS_TOPIC_ORDERS ? "oms.orders:0:5" : "oms.notifications:1:9");
}

uint32_t omsd_conn_queued(const omsd_conn *c)
{
    (void)c;
    return 0; /* frames are "sent" at once */
}

omsd_sio *omsd_conn_sio(const omsd_conn *c)
{
    return c->sio;
}

void omsd_conn_set_sio(omsd_conn *c, omsd_sio *s)
{
    c->sio = s;
}

/* An Engine.IO packet the server sends: a type digit, and for a message
 * a Socket.IO packet whose JSON parses. */
static void check_packet(const char *p, size_t n)
{
    static int debug = -1;
    if (debug < 0)
        debug = getenv("FUZZ_DEBUG") != NULL;
    if (debug)
        fprintf(stderr, "  sent: %.*s\n", (int)(n > 200 ? 200 : n), p);
    FUZZ_CHECK(n >= 1 && p[0] >= '0' && p[0] <= '6', "bad EIO packet '%.*s'", (int)n, p);
    if (p[0] != '4')
        return;
    FUZZ_CHECK(n >= 2 && p[1] >= '0' && p[1] <= '6', "bad SIO packet '%.*s'", (int)n, p);
    size_t i = 2;
    if (i < n && p[i] == '/') {
        while (i < n && p[i] != ',')
            i++;
        FUZZ_CHECK(i < n || n == i, "namespace");
        if (i < n)
            i++;
    }
    while (i < n && p[i] >= '0' && p[i] <= '9')
        i++;
    if (i < n) {
        json_error_t e;
        json_t *j = json_loadb(p + i, n - i, 0, &e);
        FUZZ_CHECK(j, "server sent bad JSON (%s): '%.*s'", e.text, (int)n, p);
        if (p[1] == '2')
            FUZZ_CHECK(json_is_array(j) && json_is_string(json_array_get(j, 0)),
                       "an event is not [name, ...]: '%.*s'", (int)n, p);
        json_decref(j);
    }
}

bool omsd_conn_enqueue(omsd_conn *c, omsd_frame *f)
{
    FUZZ_CHECK(c->in_use, "a frame queued on a connection that is gone");
    if (c->closing)
        return false;
    if (c->nq >= CONN_QUEUE) {
        c->closing = true; /* overflow: conn.c closes with 1013 */
        return false;
    }
    check_packet((const char *)f->buf + LWS_PRE, f->len);
    c->nq++;
    return true; /* the frame is "sent" at once: no reference kept */
}

void omsd_conn_close(omsd_conn *c, int code, const char *reason)
{
    FUZZ_CHECK(c->in_use, "close of a connection that is gone");
    FUZZ_CHECK(code >= 1000 && code < 5000 && reason, "close code %d", code);
    c->closing = true;
}

void omsd_http_reply(omsd_conn *c, int status, const char *content_type, char *body, size_t len)
{
    FUZZ_CHECK(c->in_use, "an answer to a request that is gone");
    FUZZ_CHECK(status >= 100 && status <= 599 && content_type, "status %d", status);
    if (status == 200 && body && strncmp(content_type, "text/plain", 10) == 0) {
        /* packets joined with \x1e */
        size_t at = 0;
        while (at <= len) {
            const char *e = memchr(body + at, 0x1e, len - at);
            size_t pl = e ? (size_t)(e - (body + at)) : len - at;
            check_packet(body + at, pl);
            if (!e)
                break;
            at += pl + 1;
        }
    }
    if (status == 200 && body && len > 1 && body[0] == '0') {
        /* the open packet: remember the sid */
        json_t *j = json_loadb(body + 1, len - 1, 0, NULL);
        const char *sid = json_string_value(json_object_get(j, "sid"));
        FUZZ_CHECK(sid && strlen(sid) == ID_LEN, "open packet without a sid");
        extern char g_sids[4][ID_LEN + 1];
        extern int g_nsids;
        memcpy(g_sids[g_nsids % 4], sid, ID_LEN + 1);
        g_nsids++;
        json_decref(j);
    }
    free(body);
    c->held = false;
    c->in_use = false; /* the request is over */
}

void omsd_http_hold(omsd_conn *c, int secs)
{
    FUZZ_CHECK(secs > 0, "hold %d", secs);
    c->held = true;
}

void omsd_conn_want_write(omsd_conn *c)
{
    c->want_write = true;
}

/* ---- the harness --------------------------------------------------------------------------- */

char g_sids[4][ID_LEN + 1];
int g_nsids;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (g_d.auth)
        return 0;
    fuzz_tokens_init(oms_now_ms() / 1000);
    oms_config_defaults(&g_d.cfg);
    g_d.auth = (oms_auth *)fuzz_auth();
    g_w.d = &g_d;
    g_d.workers = &g_w;
    g_d.nworkers = 1;
    omsd_self = &g_w;
    oms_wheel_init(&g_w.wheel, 4096, 100, omsd_mono_ms());
    /* a real logger (its escaping sees the fuzz strings), into /dev/null */
    int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
    g_d.log = oms_logger_new(fd, OMS_LOG_DEBUG, OMS_LOG_FORMAT_JSON);
    return 0;
}

/* The server's side of a connection slot ending (its CLOSED callback). */
static void conn_end(omsd_conn *c)
{
    if (!c->in_use)
        return;
    if (c->sio)
        omsd_sio_conn_gone(&g_d, c);
    memset(c, 0, sizeof *c);
}

static omsd_conn *conn_new(int k)
{
    conn_end(&g_conn[k]);
    g_conn[k].in_use = true;
    return &g_conn[k];
}

static void reap_closed(void)
{
    for (int k = 0; k < NCONN; k++)
        if (g_conn[k].in_use && g_conn[k].closing)
            conn_end(&g_conn[k]);
}

static omsd_sio_req base_req(const char *method, const char *transport, int sel)
{
    omsd_sio_req r;
    memset(&r, 0, sizeof r);
    r.method = method;
    snprintf(r.eio, sizeof r.eio, "4");
    snprintf(r.transport, sizeof r.transport, "%s", transport);
    if (sel >= 0 && g_nsids) {
        snprintf(r.sid, sizeof r.sid, "%s", g_sids[sel % (g_nsids < 4 ? g_nsids : 4)]);
        r.has_sid = true;
    }
    r.origin = "";
    r.origin_ok = true;
    r.content_type = "text/plain;charset=UTF-8";
    r.body = "";
    return r;
}

static void check_sessions(void)
{
    size_t n = 0;
    for (omsd_sio *s = S.all; s; s = s->next) {
        FUZZ_CHECK(!s->dead, "a dead session in the list");
        FUZZ_CHECK(find(s->sid) == s, "a session missing from the hash");
        FUZZ_CHECK(!s->next || s->next->prev == s, "list links");
        n++;
    }
    FUZZ_CHECK(n == S.count, "count %zu, list %zu", S.count, n);
}

static void fanout(const char *p, size_t n, uint8_t sel)
{
    json_t *j = json_loadb(p, n, 0, NULL);
    bool object = json_is_object(j);
    json_decref(j);
    if (!object)
        return; /* plain frames are always objects written by omsd */
    omsd_xq_item it;
    memset(&it, 0, sizeof it);
    it.kind = XQ_EVENT;
    it.frame = omsd_frame_new(p, n);
    it.type = (oms_event_type)(sel % OMS_EV__COUNT);
    it.user_id = (sel >> 3) & 3 ? 3 : 0;
    it.topic = oms_event_topic_kind(it.type);
    it.frame->topic = (int)it.topic;
    omsd_sio_dispatch(&g_d, &it);
    omsd_frame_unref(it.frame);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!g_d.auth)
        LLVMFuzzerInitialize(NULL, NULL);
    size_t len;
    char *text = fuzz_expand(data, size, &len);
    atomic_store(&g_d.stopping, 0);
    g_nsids = 0;
    omsd_sio_init(&g_d);

    size_t at = 0;
    int steps = 0;
    while (at < len && steps++ < 64) {
        const char *z = memchr(text + at, '\0', len - at);
        size_t rl = z ? (size_t)(z - (text + at)) : len - at;
        const char *rec = text + at;
        at += rl + 1;
        if (rl == 0)
            continue;
        uint8_t op = (uint8_t)rec[0];
        int k = (op >> 4) & 3, sel = op >> 6;
        const char *p = rec + 1;
        size_t n = rl - 1;
        /* payloads are copied to buffers of their exact size */
        char *pl = malloc(n ? n : 1);
        memcpy(pl, p, n);
        switch (op & 15) {
        case 15: {
            omsd_sio_req r = base_req("GET", "polling", -1);
            omsd_sio_http(&g_d, conn_new(k), &r);
            break;
        }
        case 1: {
            omsd_sio_req r = base_req("POST", "polling", sel);
            r.body = pl;
            r.body_len = n;
            omsd_sio_http(&g_d, conn_new(k), &r);
            break;
        }
        case 2: {
            omsd_sio_req r = base_req("GET", "polling", sel);
            omsd_sio_http(&g_d, conn_new(k), &r);
            break;
        }
        case 3:
            for (int i = 0; i < NCONN; i++) {
                if (g_conn[i].in_use && g_conn[i].want_write) {
                    g_conn[i].want_write = false;
                    omsd_sio_get_writeable(&g_d, &g_conn[i]);
                }
            }
            break;
        case 4:
        case 5: {
            omsd_sio_req r = base_req("GET", "websocket", (op & 15) == 5 ? sel : -1);
            char sid[ID_LEN + 8], body[256];
            int st = omsd_sio_confirm_upgrade(&g_d, &r, sid, sizeof sid, body, sizeof body);
            if (st == 0) {
                omsd_conn *c = conn_new(k);
                if (omsd_sio_ws_open(&g_d, c, sid) != 0)
                    conn_end(c);
            } else {
                json_t *j = json_loads(body, 0, NULL);
                FUZZ_CHECK(j, "refusal body '%s'", body);
                json_decref(j);
            }
            break;
        }
        case 6:
        case 7:
            if (g_conn[k].in_use && !g_conn[k].closing)
                omsd_sio_ws_message(&g_d, &g_conn[k], pl, n, (op & 15) == 7);
            break;
        case 8:
            if (g_conn[k].in_use && !g_conn[k].closing)
                omsd_sio_ws_too_big(&g_d, &g_conn[k]);
            break;
        case 9:
            conn_end(&g_conn[k]);
            break;
        case 10:
            fire_timers();
            break;
        case 11:
            fanout(pl, n, (uint8_t)op);
            break;
        case 12: {
            /* eio,transport,sid,method */
            omsd_sio_req r = base_req("GET", "", -1);
            char f[4][OMSD_SIO_ARG_MAX];
            memset(f, 0, sizeof f);
            size_t fi = 0, fl = 0;
            for (size_t i = 0; i < n && fi < 4; i++) {
                if (pl[i] == ',') {
                    fi++;
                    fl = 0;
                } else if (fl + 1 < OMSD_SIO_ARG_MAX) {
                    f[fi][fl++] = pl[i];
                }
            }
            memcpy(r.eio, f[0], sizeof r.eio);
            memcpy(r.transport, f[1], sizeof r.transport);
            memcpy(r.sid, f[2], sizeof r.sid);
            r.has_sid = f[2][0] != '\0';
            static const char *const methods[] = {"GET", "POST", "PUT", "OPTIONS"};
            r.method = methods[(unsigned char)f[3][0] % 4];
            if (sel == 3)
                r.body_too_large = true;
            else if (sel == 2)
                r.content_type = "application/octet-stream";
            omsd_sio_http(&g_d, conn_new(k), &r);
            break;
        }
        case 13: {
            omsd_sio_req r = base_req("GET", "polling", -1);
            r.origin = "https://evil.example";
            r.origin_ok = false;
            omsd_sio_http(&g_d, conn_new(k), &r);
            break;
        }
        case 14:
            atomic_store(&g_d.stopping, 1);
            omsd_sio_drain(&g_d);
            break;
        default:
            break;
        }
        free(pl);
        reap_closed();
        check_sessions();
        omsd_sio_reap(); /* the end of a turn of the event loop */
    }
    for (int i = 0; i < NCONN; i++)
        conn_end(&g_conn[i]);
    omsd_sio_free_all(&g_d);
    FUZZ_CHECK(g_w.sio == NULL, "the sessions' state left after free_all");
    FUZZ_CHECK(g_w.wheel.armed == 0, "%zu timers left after free_all", g_w.wheel.armed);
    FUZZ_CHECK(atomic_load(&g_d.sio_unauth) == 0, "%zu unauthenticated sessions counted after free_all",
               atomic_load(&g_d.sio_unauth));
    FUZZ_CHECK(atomic_load(&g_w.nconns) == 0, "nconns %zu after free_all", atomic_load(&g_w.nconns));
    free(text);
    return 0;
}
