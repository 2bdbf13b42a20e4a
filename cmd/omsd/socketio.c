/* socketio.c — the Socket.IO v4 dialect of DESIGN §3.6: Engine.IO protocol 4
 * (sessions, HTTP long-polling and WebSocket transports, the upgrade between
 * them, server-driven heartbeat) and Socket.IO protocol 5 (namespace
 * /events, events, acks), as in docs/socketio-protocol.md.
 *
 * This file only frames: client events go to oms_session_on_message() (the
 * logic the plain dialect uses too), its answers come back as events or, when
 * the client asked for an acknowledgement, as the ack. Fan-out events are
 * framed once per event (`42/events,["order_update",{…}]`) and the frame is
 * shared by every session it goes to.
 *
 * A session (EIO sid) lives in a list and a hash by sid. Its transport is
 *   polling:   packets wait in the session's queue until a GET takes them
 *              (joined with \x1e), a GET finding nothing is held;
 *   websocket: packets go straight to the connection's send queue (conn.c),
 *              which also holds the shared frames by reference.
 * Timers (on the daemon's wheel, O(1) to re-arm): heartbeat (ping every pingInterval, close without a pong
 * within pingTimeout; this also reaps a polling session whose client vanished),
 * connect timeout, upgrade timeout and the noop tick during an upgrade, and
 * the token's expiry. Service thread only.
 *
 * Lifetime: a closed session is only marked dead and put in a graveyard;
 * omsd_sio_reap() frees the graveyard between two turns of the event loop,
 * when no handler of ours is running. So a send that closes its receiver
 * (a queue overflow in the middle of a resume's replay, say) never frees
 * memory a caller still walks: a dead session refuses every send and is
 * otherwise left alone until the reaper takes it.
 *
 * Before its namespace CONNECT succeeds a session is unauthenticated: it
 * counts against server.max_connections_per_address (a polling session by
 * the address of its handshake, a WebSocket by its connection), all of them
 * together against server.max_unauthenticated_sessions, must CONNECT within
 * server.connect_timeout_s, and may send OMSD_SIO_PREAUTH_BYTES at most. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "gateway/postoken.h"
#include "gateway/router.h"
#include "json/json.h"
#include "socketio.h"
#include "sstore.h"
#include "deflate.h"

#define ID_BYTES 18                 /* random bytes of a sid */
#define ID_LEN (ID_BYTES / 3 * 4)   /* 24 base64url characters */
#define NSP "/events"
#define MAX_NSP 128
#define MAX_ATTACHMENTS 16
#define MAX_REFUSALS 10 /* refused CONNECTs before the EIO connection is closed */
#define HASH_MIN_BUCKETS 1024 /* the sid table doubles as sessions come */
#define TEXT_PLAIN "text/plain; charset=UTF-8"

/* close codes of a session's WebSocket */
enum {
    CLOSE_NORMAL = 1000,
    CLOSE_PROTOCOL = 1002,
};

typedef enum { TR_POLLING, TR_WEBSOCKET } sio_transport;

struct omsd_sio {
    omsd_sio *next, *prev; /* every session */
    omsd_sio *hnext;       /* hash chain */
    char sid[ID_LEN + 1];
    sio_transport tr;
    bool dead; /* closed: in the graveyard, freed by omsd_sio_reap */
    omsd_sio *grave_next;
    omsd_addr *addr; /* the address slot of a polling session's handshake */
    omsd_worker *home; /* the service thread it lives on */
    /* polling */
    omsd_conn *get;      /* the held GET, on this thread */
    uint64_t get_remote; /* or the held GET another thread keeps for us */
    bool flush_queued;   /* in S.flush: packets for get_remote */
    omsd_sio *flush_next;
    omsd_frame **q;
    uint32_t qhead, qlen, qcap;
    /* websocket */
    omsd_conn *ws;    /* the transport (WebSocket sessions, or after the upgrade) */
    omsd_conn *probe; /* a WebSocket upgrading a polling session */
    bool probed;      /* 2probe answered */
    /* timers */
    bool awaiting_pong;
    oms_wtimer t_hb, t_connect, t_upgrade, t_noop, t_exp; /* on its thread's wheel */
    /* namespace /events */
    bool joined;
    int refusals; /* CONNECTs refused on this EIO connection */
    char nsp_sid[ID_LEN + 1];
    oms_session sess;
    oms_route route; /* in S.router while joined */
    omsd_rstate rst;  /* positions and resume (resume.c) */
    int64_t resume_ack; /* the ack id the resume answers with, -1: an event */
    /* connection-state recovery (recovery hooks below, tokens.c): the pid
     * given in CONNECT; while recovering, the CONNECT answer waits for the
     * replay and rvec is where the replay has brought the client */
    char pid[OMS_POSTOKEN_PID_LEN + 1];
    bool recovering;
    int64_t *rvec;
    /* the session store (sstore.c): the subscriptions and filters by pid.
     * A change is confirmed once stored: its answers wait in `held` until
     * the store answers request ss_seq (or t_store fires). */
    bool ss_live;     /* counted among the live sessions of pid in the store */
    bool unsaved;     /* the last change could not be stored (token class bit) */
    bool ss_wait;     /* answers held for the store */
    bool ss_lookup;   /* a recovery waits for its state from Postgres */
    unsigned ss_cls;  /* that recovery's token class */
    unsigned ss_tsubs; /* and the subscriptions it names, as the role allows */
    uint64_t ss_seq;  /* the last request to the store */
    oms_wtimer t_store;
    struct held_msg *held;
    size_t nheld, capheld;
    /* a binary event or ack waiting for its attachments */
    int att_left;
    bool att_event;
    int64_t att_ack;
    json_t *att_args;
};

/* The sessions of one service thread (omsd_worker.sio); S is the calling
 * thread's. A session lives on the thread that created it: its sid's
 * first character names that thread, and a polling request that another
 * thread received is forwarded there (XQ_SIO). */
struct omsd_sio_state {
    omsd *d;
    omsd_sio *all;
    omsd_sio **hash; /* by sid, nbuckets (a power of two) chains */
    size_t nbuckets;
    size_t count;
    omsd_sio *grave; /* closed, to be freed by omsd_sio_reap */
    omsd_sio *flush; /* remote GETs to answer at the end of the turn */
    struct probe_wait *probes; /* WebSockets waiting for their session to move here */
    uint64_t next_probe;
    int64_t ping_interval_ms, ping_timeout_ms, connect_timeout_ms, upgrade_timeout_ms;
    size_t max_payload;
    uint32_t queue_limit;
    omsd_frame *f_ping, *f_noop, *f_close, *f_probe;
    oms_router *router; /* joined sessions by channel, as for plain connections */
    omsd_sio **batch;   /* one event's recipients, held while it is sent */
    size_t nbatch, capbatch;
    int64_t store_wait_ms; /* the longest a change waits for the store */
};

/* An answer held until the session store committed the change it confirms:
 * an event (ack < 0) or an acknowledgement (event NULL). */
typedef struct held_msg {
    const char *event; /* static */
    json_t *data;      /* owned, may be NULL */
    int64_t ack;
} held_msg;
#define S (*omsd_self->sio)

/* ---- settings -------------------------------------------------------------------------- */

static int64_t env_ms(const char *name, int64_t dflt)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return dflt;
    char *end;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (errno || *end || n < 10 || n > 3600000) {
        oms_log(S.d->log, OMS_LOG_WARN, "ignoring a bad millisecond value", OMS_LS("variable", name),
                OMS_LS("value", v));
        return dflt;
    }
    return n;
}

#define FDATA(f) ((char *)(f)->buf + LWS_PRE)

static omsd_frame *frame_text(const char *s)
{
    size_t n = strlen(s);
    omsd_frame *f = omsd_frame_alloc(n);
    if (f)
        memcpy(FDATA(f), s, n);
    return f;
}

void omsd_sio_init(omsd *d)
{
    if (!omsd_self->sio && !(omsd_self->sio = calloc(1, sizeof *omsd_self->sio)))
        return; /* out of memory at start-up: no Socket.IO on this thread */
    S.d = d;
    if (!S.router)
        S.router = oms_router_new();
    int pi = d->cfg.server.ping_interval_s > 0 ? d->cfg.server.ping_interval_s : 25;
    int idle = d->cfg.server.idle_timeout_s > 0 ? d->cfg.server.idle_timeout_s : 60;
    /* the client gives up after pingInterval + pingTimeout without a ping:
     * that is the plain dialect's idle timeout */
    S.ping_interval_ms = (int64_t)pi * 1000;
    S.ping_timeout_ms = idle > pi ? (int64_t)(idle - pi) * 1000 : 20000;
    S.ping_interval_ms = env_ms("OMS_SIO_PING_INTERVAL_MS", S.ping_interval_ms);
    S.ping_timeout_ms = env_ms("OMS_SIO_PING_TIMEOUT_MS", S.ping_timeout_ms);
    S.connect_timeout_ms =
        env_ms("OMS_SIO_CONNECT_TIMEOUT_MS", (int64_t)d->cfg.server.connect_timeout_s * 1000);
    S.upgrade_timeout_ms = 10000;
    S.store_wait_ms = env_ms("OMS_SSTORE_WAIT_MS", 2000);
    S.max_payload = d->cfg.server.max_frame_bytes > 0 ? (size_t)d->cfg.server.max_frame_bytes
                                                      : 1000000;
    S.queue_limit = (uint32_t)(d->cfg.server.queue_limit > 0 ? d->cfg.server.queue_limit : 4096);
    S.f_ping = frame_text("2");
    S.f_noop = frame_text("6");
    S.f_close = frame_text("1");
    S.f_probe = frame_text("3probe");
}

bool omsd_sio_path(const char *path)
{
    return strcmp(path, "/socket.io/") == 0 || strcmp(path, "/socket.io") == 0;
}

size_t omsd_sio_max_payload(void)
{
    return S.max_payload;
}

static omsd_sio *find(const char *sid);

static bool reg_is_joined(const char *sid);

size_t omsd_sio_body_limit(const char *sid)
{
    /* the session may live on another thread: the registry knows */
    return sid && strlen(sid) == ID_LEN && reg_is_joined(sid) ? S.max_payload
                                                               : OMSD_SIO_PREAUTH_BYTES;
}

size_t omsd_sio_message_limit(const omsd_conn *c)
{
    const omsd_sio *s = omsd_conn_sio(c);
    return s && s->joined && c == s->ws ? S.max_payload : OMSD_SIO_PREAUTH_BYTES;
}

/* 0 when one more unauthenticated session fits under
 * server.max_unauthenticated_sessions, else 503 and why in msg. */
static int unauth_full(char *msg, size_t len)
{
    int max = S.d->cfg.server.max_unauth_sessions;
    if (max <= 0 || atomic_load(&S.d->sio_unauth) < (size_t)max)
        return 0;
    S.d->m.unauth_refused++;
    snprintf(msg, len,
             "too many sessions waiting to authenticate: at most %d "
             "(server.max_unauthenticated_sessions)",
             max);
    return 503;
}

/* ---- sessions ---------------------------------------------------------------------------- */

static const char id_alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static int random_id(char out[ID_LEN + 1])
{
    const char *a = id_alpha;
    unsigned char raw[ID_BYTES];
    size_t got = 0;
    while (got < sizeof raw) {
        ssize_t n = getrandom(raw + got, sizeof raw - got, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        got += (size_t)n;
    }
    for (size_t i = 0; i < ID_BYTES / 3; i++) {
        uint32_t v = (uint32_t)raw[3 * i] << 16 | (uint32_t)raw[3 * i + 1] << 8 | raw[3 * i + 2];
        out[4 * i] = a[(v >> 18) & 63];
        out[4 * i + 1] = a[(v >> 12) & 63];
        out[4 * i + 2] = a[(v >> 6) & 63];
        out[4 * i + 3] = a[v & 63];
    }
    out[ID_LEN] = '\0';
    return 0;
}

static uint32_t sid_hash(const char *sid)
{
    uint32_t h = 2166136261u;
    for (; *sid; sid++)
        h = (h ^ (unsigned char)*sid) * 16777619u;
    return h;
}

static size_t bucket(const char *sid)
{
    return sid_hash(sid) & (S.nbuckets - 1);
}

/* Keeps chains short whatever the number of sessions: doubles the table
 * when there are more than two sessions a bucket. 0 or OMS_ENOMEM. */
static int hash_reserve(size_t count)
{
    if (S.nbuckets && count <= S.nbuckets * 2)
        return OMS_OK;
    size_t nb = S.nbuckets ? S.nbuckets * 2 : HASH_MIN_BUCKETS;
    omsd_sio **nh = calloc(nb, sizeof *nh);
    if (!nh)
        return S.nbuckets ? OMS_OK : OMS_ENOMEM; /* longer chains, still correct */
    for (size_t b = 0; b < S.nbuckets; b++) {
        omsd_sio *next;
        for (omsd_sio *s = S.hash[b]; s; s = next) {
            next = s->hnext;
            size_t nbk = sid_hash(s->sid) & (nb - 1);
            s->hnext = nh[nbk];
            nh[nbk] = s;
        }
    }
    free(S.hash);
    S.hash = nh;
    S.nbuckets = nb;
    return OMS_OK;
}

static omsd_sio *find(const char *sid)
{
    if (strlen(sid) != ID_LEN || !S.hash)
        return NULL;
    for (omsd_sio *s = S.hash[bucket(sid)]; s; s = s->hnext)
        if (memcmp(s->sid, sid, ID_LEN) == 0 && !s->dead)
            return s;
    return NULL;
}

static void sched(omsd_sio *s, oms_wtimer *t, oms_wtimer_fn cb, int64_t ms)
{
    if (!s->dead)
        oms_wheel_arm(&omsd_self->wheel, t, omsd_mono_ms(), ms, cb);
}

/* ---- the sessions of every thread ------------------------------------------------------------ */

/* Which thread holds each session, and whether a WebSocket has it or is
 * claiming it: requests that land on another thread are sent there, and
 * an upgrade is refused at once when the session has a WebSocket already
 * (one per session), whichever thread it lands on. {sid: state}, state =
 * thread | REG_WS | claim time (ms) << REG_CLAIM_SHIFT. */
#define REG_WS 0x100
#define REG_JOINED 0x200 /* joined to /events: its requests may be large */
#define REG_CLAIM_SHIFT 16
#define REG_CLAIM_MS 10000 /* a claim whose WebSocket never came is void after this */
static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static json_t *reg;

static json_int_t reg_get_locked(const char *sid)
{
    json_t *v = reg ? json_object_get(reg, sid) : NULL;
    return v ? json_integer_value(v) : -1;
}

static void reg_set_locked(const char *sid, json_int_t state)
{
    if (!reg)
        reg = json_object();
    if (reg)
        json_object_set_new(reg, sid, json_integer(state));
}

static void reg_put(const char *sid, int thread, bool ws)
{
    pthread_mutex_lock(&reg_lock);
    reg_set_locked(sid, thread | (ws ? REG_WS : 0));
    pthread_mutex_unlock(&reg_lock);
}

static void reg_del(const char *sid)
{
    pthread_mutex_lock(&reg_lock);
    if (reg) {
        json_object_del(reg, sid);
        if (json_object_size(reg) == 0) {
            json_decref(reg);
            reg = NULL;
        }
    }
    pthread_mutex_unlock(&reg_lock);
}

/* A new owner, or the WebSocket transport (which ends a claim). */
static void reg_update(const char *sid, int thread, bool ws)
{
    pthread_mutex_lock(&reg_lock);
    json_int_t st = reg_get_locked(sid);
    if (st >= 0) {
        if (!ws)
            reg_set_locked(sid, (st & ~(json_int_t)0xff) | thread);
        else
            reg_set_locked(sid, thread | REG_WS | (st & REG_JOINED));
    }
    pthread_mutex_unlock(&reg_lock);
}

static void reg_joined(const char *sid, bool joined)
{
    pthread_mutex_lock(&reg_lock);
    json_int_t st = reg_get_locked(sid);
    if (st >= 0)
        reg_set_locked(sid, joined ? st | REG_JOINED : st & ~(json_int_t)REG_JOINED);
    pthread_mutex_unlock(&reg_lock);
}

static bool reg_is_joined(const char *sid)
{
    pthread_mutex_lock(&reg_lock);
    json_int_t st = reg_get_locked(sid);
    pthread_mutex_unlock(&reg_lock);
    return st >= 0 && (st & REG_JOINED);
}

/* An upgrade for sid: 0 (claimed for it), 1 no such session, 2 it has or
 * is getting a WebSocket. */
static int reg_claim(const char *sid)
{
    int rc;
    int64_t now = omsd_mono_ms();
    pthread_mutex_lock(&reg_lock);
    json_int_t st = reg_get_locked(sid);
    int64_t claimed = st >= 0 ? (int64_t)(st >> REG_CLAIM_SHIFT) : 0;
    if (st < 0)
        rc = 1;
    else if ((st & REG_WS) || (claimed && now - claimed < REG_CLAIM_MS))
        rc = 2;
    else {
        reg_set_locked(sid, (st & 0x3ff) | ((json_int_t)now << REG_CLAIM_SHIFT));
        rc = 0;
    }
    pthread_mutex_unlock(&reg_lock);
    return rc;
}

static void reg_unclaim(const char *sid)
{
    pthread_mutex_lock(&reg_lock);
    json_int_t st = reg_get_locked(sid);
    if (st >= 0)
        reg_set_locked(sid, st & 0x3ff);
    pthread_mutex_unlock(&reg_lock);
}

/* The thread that holds session sid (-1: none). */
static int owner_of(const omsd *d, const char *sid)
{
    if (strlen(sid) != ID_LEN)
        return -1;
    pthread_mutex_lock(&reg_lock);
    json_int_t st = reg_get_locked(sid);
    pthread_mutex_unlock(&reg_lock);
    int t = st >= 0 ? (int)(st & 0xff) : -1;
    return t < d->nworkers ? t : -1;
}

static void session_free_d(omsd *d, omsd_sio *s)
{
    while (s->qlen) {
        omsd_frame_unref(s->q[s->qhead]);
        s->qhead = (s->qhead + 1) % s->qcap;
        s->qlen--;
    }
    free(s->q);
    json_decref(s->att_args);
    omsd_rstate_free(d, &s->rst);
    oms_session_clear(&s->sess);
    free(s->rvec);
    for (size_t i = 0; i < s->nheld; i++)
        json_decref(s->held[i].data);
    free(s->held);
    omsd_addr_put(s->addr);
    reg_del(s->sid);
    free(s);
}

static void session_free(omsd_sio *s)
{
    session_free_d(S.d, s);
}

size_t omsd_sio_unauthenticated(omsd *d)
{
    return atomic_load(&d->sio_unauth);
}

static char *poll_body(omsd *d, omsd_sio *s, size_t *len);
static void send_answer(uint64_t id, int status, const char *ctype, char *body, size_t len);

void omsd_sio_reap(void)
{
    if (!omsd_self->sio)
        return;
    while (S.flush) {
        omsd_sio *s = S.flush;
        S.flush = s->flush_next;
        s->flush_queued = false;
        if (s->dead || !s->get_remote || !s->qlen)
            continue;
        size_t len = 0;
        char *body = poll_body(S.d, s, &len);
        if (!body)
            continue;
        uint64_t id = s->get_remote;
        s->get_remote = 0;
        send_answer(id, 200, TEXT_PLAIN, body, len);
        if (s->rst.rs)
            omsd_resume_pump(S.d, &s->rst);
    }
    while (S.grave) {
        omsd_sio *s = S.grave;
        S.grave = s->grave_next;
        session_free(s);
    }
}

/* Joined to /events or not (the unauthenticated count follows). */
static void set_joined(omsd_sio *s, bool joined)
{
    if (s->joined == joined)
        return;
    s->joined = joined;
    reg_joined(s->sid, joined);
    if (joined)
        atomic_fetch_sub(&S.d->sio_unauth, 1);
    else
        atomic_fetch_add(&S.d->sio_unauth, 1);
}

static void on_heartbeat(oms_wtimer *t);
static void on_connect_timeout(oms_wtimer *t);
static void on_store_timeout(oms_wtimer *t);

static omsd_sio *session_new(omsd *d, sio_transport tr)
{
    if (hash_reserve(S.count + 1) != OMS_OK)
        return NULL;
    omsd_sio *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    if (random_id(s->sid) != 0) {
        free(s);
        return NULL;
    }
    s->home = omsd_self;
    reg_put(s->sid, omsd_self->idx, tr == TR_WEBSOCKET);
    s->tr = tr;
    s->att_ack = -1;
    s->next = S.all;
    if (S.all)
        S.all->prev = s;
    S.all = s;
    size_t b = bucket(s->sid);
    s->hnext = S.hash[b];
    S.hash[b] = s;
    S.count++;
    atomic_fetch_add(&S.d->sio_unauth, 1);
    sched(s, &s->t_hb, on_heartbeat, S.ping_interval_ms);
    sched(s, &s->t_connect, on_connect_timeout, S.connect_timeout_ms);
    (void)d;
    return s;
}

/* The session no longer holds its pid here: the store stops counting it
 * among the live ones, held answers are dropped, waits end. */
static void store_leave(omsd_sio *s)
{
    if (s->ss_live && s->pid[0])
        omsd_sstore_live(S.d, s->pid, false);
    s->ss_live = false;
    s->ss_wait = s->ss_lookup = false;
    s->unsaved = false;
    s->ss_seq++;
    oms_wheel_cancel(&omsd_self->wheel, &s->t_store);
    for (size_t i = 0; i < s->nheld; i++)
        json_decref(s->held[i].data);
    s->nheld = 0;
}

static void leave(omsd_sio *s)
{
    if (!s->joined)
        return;
    store_leave(s);
    set_joined(s, false);
    oms_router_remove(S.router, &s->route);
    omsd_rstate_free(S.d, &s->rst);
    free(s->rvec);
    s->rvec = NULL;
    s->recovering = false;
    s->pid[0] = '\0';
    atomic_fetch_sub(&omsd_self->nconns, 1);
    omsd_users_add(S.d, s->sess.who.user_id, -1);
    omsd_subs_count(S.d, s->sess.subs, 0);
    oms_wheel_cancel(&omsd_self->wheel, &s->t_exp);
    oms_log(S.d->log, OMS_LOG_DEBUG, "socket.io client left", OMS_LI("userId", s->sess.who.user_id));
    /* an EIO connection without a namespace does not stay around */
    sched(s, &s->t_connect, on_connect_timeout, S.connect_timeout_ms);
}

/* Answer the held GET (here or on another thread) with one packet. */
static void answer_get(omsd_sio *s, const omsd_frame *f)
{
    omsd_conn *c = s->get;
    if (!c && !s->get_remote)
        return;
    char *body = malloc(f->len ? f->len : 1);
    if (body)
        memcpy(body, FDATA(f), f->len);
    if (c) {
        s->get = NULL;
        omsd_conn_set_sio(c, NULL);
        omsd_http_reply(c, 200, TEXT_PLAIN, body, body ? f->len : 0);
    } else {
        uint64_t id = s->get_remote;
        s->get_remote = 0;
        send_answer(id, 200, TEXT_PLAIN, body, body ? f->len : 0);
    }
}

/* A held GET on another thread: answered with the queued packets at the
 * end of this turn of the loop (omsd_sio_reap), so a burst goes in one. */
static void flush_later(omsd_sio *s)
{
    if (s->flush_queued)
        return;
    s->flush_queued = true;
    s->flush_next = S.flush;
    S.flush = s;
}

/* Close a session: its WebSocket gets a close frame (code), a held GET gets
 * get_answer ("1" when the server closes, "6" when the client did). */
static void session_close(omsd_sio *s, int code, const char *reason, const omsd_frame *get_answer)
{
    if (s->dead)
        return;
    omsd *d = S.d;
    s->dead = true;
    if (s->prev)
        s->prev->next = s->next;
    else
        S.all = s->next;
    if (s->next)
        s->next->prev = s->prev;
    for (omsd_sio **pp = &S.hash[bucket(s->sid)]; *pp; pp = &(*pp)->hnext) {
        if (*pp == s) {
            *pp = s->hnext;
            break;
        }
    }
    S.count--;
    if (s->joined) {
        store_leave(s);
        oms_router_remove(S.router, &s->route);
        atomic_fetch_sub(&omsd_self->nconns, 1);
        omsd_users_add(d, s->sess.who.user_id, -1);
        omsd_subs_count(d, s->sess.subs, 0);
        s->joined = false;
    } else {
        atomic_fetch_sub(&d->sio_unauth, 1);
    }
    oms_wheel_cancel(&omsd_self->wheel, &s->t_hb);
    oms_wheel_cancel(&omsd_self->wheel, &s->t_connect);
    oms_wheel_cancel(&omsd_self->wheel, &s->t_upgrade);
    oms_wheel_cancel(&omsd_self->wheel, &s->t_noop);
    oms_wheel_cancel(&omsd_self->wheel, &s->t_exp);
    if (s->ws) {
        omsd_conn *c = s->ws;
        s->ws = NULL;
        omsd_conn_set_sio(c, NULL);
        omsd_conn_close(c, code, reason);
    }
    if (s->probe) {
        omsd_conn *c = s->probe;
        s->probe = NULL;
        omsd_conn_set_sio(c, NULL);
        omsd_conn_close(c, code, reason);
    }
    answer_get(s, get_answer ? get_answer : S.f_close);
    oms_log(d->log, OMS_LOG_DEBUG, "socket.io session closed", OMS_LS("reason", reason),
            OMS_LI("userId", s->sess.who.user_id));
    s->grave_next = S.grave;
    S.grave = s;
}

static void protocol_error(omsd_sio *s, const char *why)
{
    oms_log(S.d->log, OMS_LOG_DEBUG, "socket.io protocol error, session closed",
            OMS_LS("error", why));
    session_close(s, CLOSE_PROTOCOL, "protocol error", S.f_close);
}

/* Queue a packet on the session (taking a reference). False when it could
 * not be queued: closing, or the queue bound passed (the session is then
 * closed and the client reconnects, as a plain client would after 1013). */
static bool sio_send(omsd_sio *s, omsd_frame *f)
{
    if (s->dead || !f)
        return false;
    if (s->ws)
        return omsd_conn_enqueue(s->ws, f);
    if (s->qlen == s->qcap) {
        if (s->qcap >= S.queue_limit) {
            S.d->m.overflow_closes++;
            oms_log(S.d->log, OMS_LOG_WARN, "slow socket.io client closed: send queue full",
                    OMS_LI("userId", s->sess.who.user_id), OMS_LI("queued", s->qlen));
            session_close(s, OMS_CLOSE_TRY_LATER, "send queue overflow, reconnect and resume",
                          S.f_close);
            return false;
        }
        uint32_t cap = s->qcap ? s->qcap * 2 : 16;
        if (cap > S.queue_limit)
            cap = S.queue_limit;
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
    f->refs++;
    s->q[(s->qhead + s->qlen) % s->qcap] = f;
    s->qlen++;
    if (s->get && s->qlen == 1)
        omsd_conn_want_write(s->get);
    else if (s->get_remote)
        flush_later(s);
    return true;
}

/* A packet built here (one reference, given up after queueing). */
static bool send_new(omsd_sio *s, omsd_frame *f)
{
    bool ok = sio_send(s, f);
    omsd_frame_unref(f);
    return ok;
}

/* "4<type><nsp>,<ack id><json>": a Socket.IO packet inside an EIO message.
 * The namespace "/" is not written. */
static omsd_frame *sio_frame(char type, const char *nsp, int64_t ack, const json_t *payload)
{
    char head[MAX_NSP + 48];
    bool root = strcmp(nsp, "/") == 0;
    int hl = snprintf(head, sizeof head, "4%c%s%s", type, root ? "" : nsp, root ? "" : ",");
    if (ack >= 0)
        hl += snprintf(head + hl, sizeof head - (size_t)hl, "%" PRId64, ack);
    char *js = payload ? oms_json_dumps(payload, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    size_t jl = js ? strlen(js) : 0;
    omsd_frame *f = omsd_frame_alloc((size_t)hl + jl);
    if (f) {
        memcpy(FDATA(f), head, (size_t)hl);
        if (jl)
            memcpy(FDATA(f) + hl, js, jl);
    }
    free(js);
    return f;
}

static char *session_token(omsd_sio *s);

static void emit_event(omsd_sio *s, const char *event, const json_t *data)
{
    json_t *a = data ? json_pack("[sO]", event, data) : json_pack("[s]", event);
    if (!a)
        return;
    /* recovery: the client takes the last string argument as its offset */
    char *tok = data ? session_token(s) : NULL;
    if (tok)
        json_array_append_new(a, json_string(tok));
    free(tok);
    send_new(s, sio_frame('2', NSP, -1, a));
    json_decref(a);
}

static void emit_ack(omsd_sio *s, int64_t ack, const json_t *data)
{
    json_t *a = data ? json_pack("[O]", data) : json_array();
    if (!a)
        return;
    send_new(s, sio_frame('3', NSP, ack, a));
    json_decref(a);
}

/* Server-side disconnect of the namespace ("io server disconnect": the
 * client does not reconnect by itself). */
static void kick(omsd_sio *s)
{
    send_new(s, sio_frame('1', NSP, -1, NULL));
    leave(s);
}

/* ---- timers ------------------------------------------------------------------------------ */

static void on_heartbeat(oms_wtimer *t)
{
    omsd_sio *s = lws_container_of(t, omsd_sio, t_hb);
    if (s->awaiting_pong) {
        session_close(s, CLOSE_NORMAL, "ping timeout", S.f_close);
        return;
    }
    s->awaiting_pong = true;
    sio_send(s, S.f_ping);
    sched(s, &s->t_hb, on_heartbeat, S.ping_timeout_ms);
}

static void on_connect_timeout(oms_wtimer *t)
{
    omsd_sio *s = lws_container_of(t, omsd_sio, t_connect);
    if (!s->joined)
        session_close(s, CLOSE_NORMAL, "connect timeout", S.f_close);
}

static void abandon_upgrade(omsd_sio *s, int code, const char *reason)
{
    omsd_conn *c = s->probe;
    s->probe = NULL;
    s->probed = false;
    oms_wheel_cancel(&omsd_self->wheel, &s->t_upgrade);
    oms_wheel_cancel(&omsd_self->wheel, &s->t_noop);
    reg_unclaim(s->sid);
    if (c) {
        omsd_conn_set_sio(c, NULL);
        omsd_conn_close(c, code, reason);
    }
}

static void on_upgrade_timeout(oms_wtimer *t)
{
    omsd_sio *s = lws_container_of(t, omsd_sio, t_upgrade);
    abandon_upgrade(s, CLOSE_NORMAL, "upgrade timeout");
}

/* While upgrading, a GET the client makes before pausing polling is
 * released with a noop so that the pause can complete. */
static void on_noop_tick(oms_wtimer *t)
{
    omsd_sio *s = lws_container_of(t, omsd_sio, t_noop);
    if (!s->probe || !s->probed)
        return;
    answer_get(s, S.f_noop);
    sched(s, &s->t_noop, on_noop_tick, 100);
}

static void on_expiry(oms_wtimer *t);

/* The end of a token's validity: exp plus the grace the verification
 * allows (as on /events), looked at again daily when further. */
static void schedule_expiry(omsd_sio *s)
{
    int64_t in = oms_auth_expires_in(s->sess.who.exp, oms_now_ms() / 1000, OMSD_AUTH_LEEWAY_S);
    sched(s, &s->t_exp, on_expiry, in * 1000 + 1);
}

static void on_expiry(oms_wtimer *t)
{
    omsd_sio *s = lws_container_of(t, omsd_sio, t_exp);
    if (!s->joined)
        return;
    if (!oms_auth_expired(s->sess.who.exp, oms_now_ms() / 1000, OMSD_AUTH_LEEWAY_S)) {
        schedule_expiry(s); /* refreshed meanwhile, or far away */
        return;
    }
    json_t *e = oms_gw_error("token_expired",
                             "the token expired; reconnect with a new one or send refresh_token "
                             "before expiry");
    emit_event(s, "error", e);
    json_decref(e);
    kick(s);
}

/* ---- Socket.IO packets --------------------------------------------------------------------- */

static json_t *env_positions(void *ud, oms_topic_kind kind)
{
    return omsd_positions(ud, kind);
}

static oms_gw_env make_env(void)
{
    oms_gw_env env = {S.d->auth, env_positions, S.d, oms_now_ms(), &S.d->filter_limits};
    return env;
}

/* ---- the session store (sstore.c) ---------------------------------------------------------- */

/* The class digit of this session's position tokens: its subscriptions,
 * whether one has a filter, whether its state could not be stored. A
 * recovery elsewhere reads the last two to refuse rather than restore
 * wider than the session was (the digit is not signed: a client that sets
 * them only refuses itself; one that clears them still gets the stored
 * filters, which are looked up whatever the digit says). */
static unsigned sess_class(const omsd_sio *s)
{
    unsigned c = s->sess.subs & 3u;
    if (s->sess.filter[OMS_GW_F_ORDERS] || s->sess.filter[OMS_GW_F_INVENTORY])
        c |= OMS_POSTOKEN_CLS_FILTERED;
    if (s->unsaved)
        c |= OMS_POSTOKEN_CLS_UNSAVED;
    return c;
}

/* The session's subscriptions as the store keeps them:
 * {"orders": FILTER | null, "inventory": ...} (malloc'd, NULL: no memory). */
static char *state_text(const oms_session *sess)
{
    json_t *o = json_object();
    static const struct {
        unsigned bit;
        int fi;
        const char *name;
    } subs[2] = {{OMS_SUB_ORDERS, OMS_GW_F_ORDERS, "orders"},
                 {OMS_SUB_INVENTORY, OMS_GW_F_INVENTORY, "inventory"}};
    for (int i = 0; o && i < 2; i++)
        if (sess->subs & subs[i].bit)
            json_object_set_new(o, subs[i].name, sess->filter[subs[i].fi]
                                                     ? oms_filter_json(sess->filter[subs[i].fi])
                                                     : json_null());
    char *t = o ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(o);
    return t;
}

/* Parse a stored state, as far as the role allows, into *subs and f[2]
 * (new references). 0, or -1 when it is not a state (f untouched). */
static int state_parse(const char *text, const oms_principal *who, unsigned *subs,
                       oms_filter *f[2])
{
    json_t *o = text ? json_loads(text, 0, NULL) : NULL;
    oms_filter *nf[2] = {NULL, NULL};
    unsigned sb = 0;
    int rc = json_is_object(o) ? 0 : -1;
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v)
    {
        if (rc != 0)
            break;
        bool orders = strcmp(k, "orders") == 0;
        if ((!orders && strcmp(k, "inventory") != 0) || (!json_is_null(v) && !json_is_object(v))) {
            rc = -1;
            break;
        }
        int fi = orders ? OMS_GW_F_ORDERS : OMS_GW_F_INVENTORY;
        char err[256];
        oms_filter_unref(nf[fi]);
        nf[fi] = NULL;
        if (oms_filter_parse(v, orders ? OMS_TOPIC_ORDERS : OMS_TOPIC_INVENTORY,
                             &S.d->filter_limits, &nf[fi], err, sizeof err) != OMS_OK) {
            rc = -1;
            break;
        }
        sb |= orders ? OMS_SUB_ORDERS : OMS_SUB_INVENTORY;
    }
    json_decref(o);
    unsigned allowed = omsd_token_subs(sb, who->role);
    for (int i = 0; i < 2; i++) {
        unsigned bit = i == OMS_GW_F_ORDERS ? OMS_SUB_ORDERS : OMS_SUB_INVENTORY;
        if (rc != 0 || !(allowed & bit)) {
            oms_filter_unref(nf[i]);
            nf[i] = NULL;
        }
    }
    if (rc != 0)
        return -1;
    *subs = allowed;
    f[0] = nf[0];
    f[1] = nf[1];
    return 0;
}

/* Set the session's subscriptions and filters (f: references taken). */
static void set_subs(omsd_sio *s, unsigned subs, oms_filter *f[2])
{
    omsd *d = S.d;
    unsigned old = s->sess.subs;
    for (int i = 0; i < 2; i++) {
        oms_filter_unref(s->sess.filter[i]);
        s->sess.filter[i] = f ? f[i] : NULL;
    }
    s->sess.subs = subs;
    omsd_rstate_subs(d, &s->rst, old, subs);
    omsd_subs_count(d, old, subs);
    if (s->joined && oms_router_update(S.router, &s->route, &s->sess) != OMS_OK)
        d->m.dropped[OMS_TOPIC_NOTIFICATIONS]++; /* out of memory: its lists are unchanged */
}

/* Hand the session's state to the store. With answer, true when the
 * store will answer (the caller holds the confirmation until then). */
static bool store_save(omsd_sio *s, bool answer)
{
    omsd *d = S.d;
    if (!s->pid[0])
        return false;
    char *st = state_text(&s->sess);
    bool durable = omsd_sstore_durable(d);
    uint64_t seq = ++s->ss_seq;
    int rc = st ? omsd_sstore_save(d, s->pid, s->sess.who.user_id, st, !s->ss_live, durable,
                                   answer && durable, omsd_self->idx, s->sid, seq)
                : OMS_ENOMEM;
    free(st);
    if (rc != OMS_OK) {
        s->unsaved = durable; /* a recovery elsewhere cannot find it */
        return false;
    }
    s->ss_live = true;
    if (!durable || !answer)
        return false;
    s->ss_wait = true;
    sched(s, &s->t_store, on_store_timeout, S.store_wait_ms);
    return true;
}

static void hold(omsd_sio *s, const char *event, const json_t *data, int64_t ack)
{
    if (s->nheld == s->capheld) {
        size_t cap = s->capheld ? s->capheld * 2 : 4;
        held_msg *h = realloc(s->held, cap * sizeof *h);
        if (!h)
            return; /* out of memory: this answer is lost, the state is not */
        s->held = h;
        s->capheld = cap;
    }
    s->held[s->nheld++] = (held_msg){event, data ? json_incref((json_t *)data) : NULL, ack};
}

static void unhold(omsd_sio *s)
{
    s->ss_wait = false;
    oms_wheel_cancel(&omsd_self->wheel, &s->t_store);
    for (size_t i = 0; i < s->nheld; i++) {
        held_msg *h = &s->held[i];
        if (!s->dead) {
            if (h->event)
                emit_event(s, h->event, h->data);
            else
                emit_ack(s, h->ack, h->data);
        }
        json_decref(h->data);
    }
    s->nheld = 0;
}

static void recovery_start(omsd_sio *s);
static void recovery_refuse(omsd_sio *s);

/* A recovery's state (memory or Postgres) against its token: the stored
 * subscriptions must be those the token names (as the role allows), and a
 * token saying "filtered" needs a filter. 0: restored; -1: not (nothing
 * changed). */
static int state_restore(omsd_sio *s, int64_t user_id, const char *text, unsigned cls,
                         unsigned tsubs)
{
    unsigned subs;
    oms_filter *f[2];
    if (user_id != s->sess.who.user_id || state_parse(text, &s->sess.who, &subs, f) != 0)
        return -1;
    if (subs != tsubs || ((cls & OMS_POSTOKEN_CLS_FILTERED) && !f[0] && !f[1])) {
        oms_filter_unref(f[0]);
        oms_filter_unref(f[1]);
        return -1;
    }
    set_subs(s, subs, f);
    return 0;
}

/* Where a recovery's subscriptions come from. 1: restored (or nothing to
 * restore), replay now; 0: asked Postgres, the answer goes on; -1: refuse
 * (a fresh session). */
static int recovery_state(omsd_sio *s, unsigned cls, unsigned tsubs)
{
    omsd *d = S.d;
    int64_t uid = 0;
    char *st = NULL;
    bool stored = false;
    if (omsd_sstore_peek(d, s->pid, &uid, &st, &stored) == OMS_OK) {
        /* this instance knows the session's latest state */
        int rc = state_restore(s, uid, st, cls, tsubs);
        free(st);
        if (rc != 0)
            return -1;
        s->unsaved = omsd_sstore_durable(d) && !stored; /* still not in Postgres */
        omsd_sstore_live(d, s->pid, true);
        s->ss_live = true;
        return 1;
    }
    if (tsubs == 0 && !(cls & OMS_POSTOKEN_CLS_FILTERED))
        return 1; /* it had no subscription: nothing to restore */
    if (!omsd_sstore_durable(d)) {
        /* memory only: without filters, the token's subscriptions */
        if (cls & (OMS_POSTOKEN_CLS_FILTERED | OMS_POSTOKEN_CLS_UNSAVED))
            return -1;
        set_subs(s, tsubs, NULL);
        return 1;
    }
    if (cls & OMS_POSTOKEN_CLS_UNSAVED)
        return -1; /* what Postgres has is not its latest state */
    s->ss_cls = cls;
    s->ss_tsubs = tsubs;
    s->ss_lookup = true;
    if (omsd_sstore_lookup(d, s->pid, omsd_self->idx, s->sid, ++s->ss_seq) != OMS_OK) {
        s->ss_lookup = false;
        return -1;
    }
    sched(s, &s->t_store, on_store_timeout, S.store_wait_ms);
    return 0;
}

static void on_store_timeout(oms_wtimer *t)
{
    omsd_sio *s = lws_container_of(t, omsd_sio, t_store);
    if (s->dead)
        return;
    s->ss_seq++; /* a late answer is not waited for any more */
    if (s->ss_lookup) {
        s->ss_lookup = false;
        oms_log(S.d->log, OMS_LOG_DEBUG, "socket.io recovery: no answer from the session store",
                OMS_LI("userId", s->sess.who.user_id));
        recovery_refuse(s);
    } else if (s->ss_wait) {
        s->unsaved = true;
        unhold(s);
    }
}

void omsd_sio_sstore(omsd *d, omsd_xq_item *it, bool live)
{
    omsd_sstore_ans *a = it->sstore;
    it->sstore = NULL;
    omsd_sio *s = live && omsd_self->sio ? find(a->sid) : NULL;
    if (live && omsd_self->sio && !s) {
        /* the session moved to another thread meanwhile */
        int t = owner_of(d, a->sid);
        omsd_xq_item *fwd = t >= 0 && t != omsd_self->idx ? calloc(1, sizeof *fwd) : NULL;
        if (fwd) {
            fwd->kind = XQ_SSTORE;
            fwd->sstore = a;
            omsd_xq_push(&d->workers[t], fwd);
            return;
        }
    }
    if (!s || s->dead || !s->joined || a->seq != s->ss_seq) {
        omsd_sstore_ans_free(a);
        return;
    }
    if (a->op == OMSD_SS_SAVED && s->ss_wait) {
        s->unsaved = a->rc != OMS_OK;
        unhold(s);
    } else if (a->op == OMSD_SS_FOUND && s->ss_lookup) {
        s->ss_lookup = false;
        oms_wheel_cancel(&omsd_self->wheel, &s->t_store);
        if (a->rc == OMS_OK && s->recovering &&
            state_restore(s, a->user_id, a->state, s->ss_cls, s->ss_tsubs) == 0) {
            /* remembered here (Postgres has it already) */
            if (omsd_sstore_save(d, s->pid, s->sess.who.user_id, a->state, true, false, false, 0,
                                 NULL, 0) == OMS_OK)
                s->ss_live = true;
            recovery_start(s);
        } else if (s->recovering) {
            oms_log(d->log, OMS_LOG_DEBUG, "socket.io recovery refused: no stored state",
                    OMS_LI("userId", s->sess.who.user_id), OMS_LS("error", oms_strerror(a->rc)));
            recovery_refuse(s);
        }
    }
    omsd_sstore_ans_free(a);
}

/* ---- connection-state recovery (docs/socketio-protocol.md §4) ------------------------------ */

/* A CONNECT auth {pid, offset, token} that names an earlier session of this
 * user (pid signed for them) and a position token we signed: the
 * subscriptions to restore (its class, as far as the role allows), and
 * *vec (malloc'd) the positions to replay from. Anything else: 0 and *vec
 * NULL, a fresh session (recovered false), never an error. */
static unsigned recovery_check(omsd_sio *s, const json_t *auth, const oms_principal *who,
                               int64_t **vec, unsigned *cls_out)
{
    omsd *d = S.d;
    *vec = NULL;
    *cls_out = 0;
    const char *pid = json_string_value(json_object_get(auth, "pid"));
    const char *off = json_string_value(json_object_get(auth, "offset"));
    if (!pid || !off || !d->ptok)
        return 0;
    int rc = oms_postoken_pid_check(d->ptok, pid, who->user_id);
    int64_t *v = malloc((d->nparts_total > 0 ? (size_t)d->nparts_total : 1) * sizeof *v);
    unsigned cls = 0;
    if (rc == OMS_OK && v) {
        rc = omsd_token_read(d, off, &cls, v);
        if (rc != OMS_OK) /* its pid, a bad offset: it gets a new pid, the old one goes */
            omsd_sstore_forget(d, pid);
    }
    if (rc != OMS_OK || !v) {
        oms_log(d->log, OMS_LOG_DEBUG, "socket.io recovery refused: pid or offset not ours",
                OMS_LI("userId", who->user_id), OMS_LS("error", oms_strerror(rc)));
        d->m.resumes[2]++; /* not recoverable (resume.c's OUT_UNRECOVERABLE) */
        free(v);
        return 0;
    }
    memcpy(s->pid, pid, sizeof s->pid - 1);
    s->pid[sizeof s->pid - 1] = '\0';
    *vec = v;
    *cls_out = cls;
    return omsd_token_subs(cls, who->role);
}

static const omsd_rsink *recover_sink(void);
static void connect_answer(omsd_sio *s);

/* Replay from s->rvec like `resume`, filtered by the restored
 * subscriptions; the sink answers CONNECT. */
static void recovery_start(omsd_sio *s)
{
    s->resume_ack = -1;
    json_t *since = omsd_token_since(S.d, s->rvec);
    if (!since) {
        recovery_refuse(s);
        return;
    }
    omsd_resume_start(S.d, &s->rst, &s->sess, since, recover_sink(), s);
    json_decref(since);
}

/* No recovery: a fresh session (a new pid, recovered false), nothing
 * replayed, and no subscription restored unless its state was found. */
static void recovery_refuse(omsd_sio *s)
{
    S.d->m.resumes[2]++; /* not recoverable (resume.c's OUT_UNRECOVERABLE) */
    s->recovering = false;
    free(s->rvec);
    s->rvec = NULL;
    /* a new pid: the client drops the old one, so does the store */
    if (s->pid[0])
        omsd_sstore_forget(S.d, s->pid);
    s->ss_live = false;
    s->pid[0] = '\0';
    connect_answer(s);
}

/* The CONNECT answer {sid, pid} (a new pid unless s->pid holds the one
 * recovered), then `connected`. */
static void connect_answer(omsd_sio *s)
{
    omsd *d = S.d;
    bool fresh = !s->pid[0];
    if (fresh && (!d->ptok || oms_postoken_pid_new(d->ptok, s->sess.who.user_id, s->pid)))
        s->pid[0] = '\0'; /* no recovery for this one */
    if (fresh && s->pid[0] && s->sess.subs)
        store_save(s, false); /* subscriptions restored under a new pid */
    json_t *p = s->pid[0] ? json_pack("{s:s,s:s}", "sid", s->nsp_sid, "pid", s->pid)
                          : json_pack("{s:s}", "sid", s->nsp_sid);
    send_new(s, sio_frame('0', NSP, -1, p));
    json_decref(p);
    oms_gw_env env = make_env();
    json_t *hello = oms_gw_connected(&s->sess, &env);
    emit_event(s, "connected", hello);
    json_decref(hello);
}

/* A token for what this session has been given so far: what this thread
 * dispatched. NULL while a replay runs or a recovery ends (live events
 * held behind it are still to come), or without a pid. */
static char *session_token(omsd_sio *s)
{
    if (!s->joined || !s->pid[0] || s->rst.rs || s->recovering)
        return NULL;
    return omsd_token_here(S.d, sess_class(s));
}

/* 0, or -1 when this client keeps trying (the caller closes the session). */
static int refuse_connect(omsd_sio *s, const char *message, const char *code)
{
    S.d->m.auth_failures++;
    if (++s->refusals > MAX_REFUSALS)
        return -1;
    json_t *p = json_pack("{s:s,s:{s:s}}", "message", message, "data", "code", code);
    send_new(s, sio_frame('4', NSP, -1, p));
    json_decref(p);
    return 0;
}

static int sio_connect(omsd_sio *s, const char *nsp, const json_t *auth)
{
    omsd *d = S.d;
    if (strcmp(nsp, NSP) != 0) {
        json_t *p = json_pack("{s:s}", "message", "Invalid namespace");
        send_new(s, sio_frame('4', nsp, -1, p));
        json_decref(p);
        return 0;
    }
    if (s->joined)
        return -1; /* CONNECT for a joined namespace */
    const char *tok = json_string_value(json_object_get(auth, "token"));
    if (!tok || !*tok)
        return refuse_connect(s, "a token is required: auth: {token: \"<JWT>\"}", "unauthorized");
    oms_principal who;
    char err[256];
    int64_t now = oms_now_ms();
    int rc = oms_auth_verify(d->auth, tok, now / 1000, &who, err, sizeof err);
    if (rc != OMS_OK)
        return refuse_connect(s, err, rc == OMS_EEXPIRED ? "token_expired" : "unauthorized");
    if (random_id(s->nsp_sid) != 0)
        return -1;
    oms_session_clear(&s->sess); /* a namespace joined again: the filters of before go */
    oms_session_init(&s->sess, &who, d->cfg.server.rate_limit_per_min, now);
    /* connection-state recovery: {pid, offset} of an earlier session (a
     * join after an explicit DISCONNECT is a new session: a new pid) */
    s->pid[0] = '\0';
    int64_t *rvec = NULL;
    unsigned cls = 0;
    unsigned tsubs = recovery_check(s, auth, &who, &rvec, &cls);
    s->sess.subs = 0; /* restored below, with their filters, from the session's state */
    if (omsd_rstate_init(d, &s->rst) != OMS_OK) {
        free(rvec);
        return -1;
    }
    if (!S.router || oms_router_add(S.router, &s->route, s, &s->sess) != OMS_OK) {
        omsd_rstate_free(d, &s->rst);
        free(rvec);
        return -1;
    }
    set_joined(s, true);
    atomic_fetch_add(&omsd_self->nconns, 1);
    omsd_users_add(d, who.user_id, 1);
    d->m.connections_total++;
    oms_wheel_cancel(&omsd_self->wheel, &s->t_connect);
    schedule_expiry(s);
    if (rvec) {
        /* answers CONNECT when the replay is done, or at once when refused */
        s->recovering = true;
        s->rvec = rvec;
        int st = recovery_state(s, cls, tsubs);
        if (st > 0)
            recovery_start(s);
        else if (st < 0)
            recovery_refuse(s);
        return 0;
    }
    connect_answer(s);
    oms_log(d->log, OMS_LOG_DEBUG, "socket.io client connected", OMS_LI("userId", who.user_id),
            OMS_LS("role", oms_role_name(who.role)),
            OMS_LS("transport", s->tr == TR_POLLING ? "polling" : "websocket"));
    return 0;
}

static const omsd_rsink *sio_sink(void);

/* A client event [name, data?, ...]: the shared logic answers. */
static void sio_event(omsd_sio *s, const json_t *args, int64_t ack)
{
    omsd *d = S.d;
    const json_t *n0 = json_array_get(args, 0);
    char num[48];
    const char *name = json_string_value(n0);
    if (!name) {
        if (json_is_integer(n0))
            snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(n0));
        else
            snprintf(num, sizeof num, "%g", json_number_value(n0));
        name = num;
    }
    oms_gw_env env = make_env();
    oms_gw_out out;
    memset(&out, 0, sizeof out);
    out.answer = -1;
    unsigned subs = s->sess.subs;
    const oms_filter *f0 = s->sess.filter[0], *f1 = s->sess.filter[1];
    if (oms_session_admit(&s->sess, &env, &out))
        oms_session_on_message(&s->sess, &env, name, json_array_get(args, 1), &out);
    else
        d->m.rate_limited++;
    bool changed = s->sess.subs != subs || s->sess.filter[0] != f0 || s->sess.filter[1] != f1;
    if (s->sess.subs != subs) {
        omsd_rstate_subs(d, &s->rst, subs, s->sess.subs);
        omsd_subs_count(d, subs, s->sess.subs);
    }
    if (s->joined && oms_router_update(S.router, &s->route, &s->sess) != OMS_OK)
        d->m.dropped[OMS_TOPIC_NOTIFICATIONS]++; /* out of memory: its lists are unchanged */
    if (out.exp_changed)
        schedule_expiry(s);
    /* a change of subscriptions is confirmed once the store has it (and
     * later answers wait behind it, in order) */
    bool held = (changed && s->joined && !s->recovering && store_save(s, true)) || s->ss_wait;
    for (int i = 0; i < out.n && !s->dead; i++) {
        if (held)
            hold(s, ack >= 0 && i == out.answer ? NULL : out.msgs[i].event, out.msgs[i].data,
                 ack >= 0 && i == out.answer ? ack : -1);
        else if (ack >= 0 && i == out.answer)
            emit_ack(s, ack, out.msgs[i].data);
        else
            emit_event(s, out.msgs[i].event, out.msgs[i].data);
    }
    if (out.resume && !s->dead && s->joined) {
        /* answered when the replay is done, as an ack when one was asked */
        s->resume_ack = ack;
        omsd_resume_start(d, &s->rst, &s->sess, out.resume_since, sio_sink(), s);
    } else if (ack >= 0 && out.answer < 0 && !s->dead) {
        if (held)
            hold(s, NULL, NULL, ack);
        else
            emit_ack(s, ack, NULL);
    }
    if (out.close_code && !s->dead)
        kick(s);
    oms_gw_out_clear(&out);
}

static bool valid_event_args(const json_t *a)
{
    static const char *const reserved[] = {"connect",       "connect_error", "disconnect",
                                           "disconnecting", "newListener",   "removeListener"};
    if (!json_is_array(a) || json_array_size(a) == 0)
        return false;
    const json_t *n0 = json_array_get(a, 0);
    if (json_is_number(n0))
        return true;
    const char *name = json_string_value(n0);
    if (!name)
        return false;
    for (size_t i = 0; i < OMS_ARRAY_LEN(reserved); i++)
        if (strcmp(name, reserved[i]) == 0)
            return false;
    return true;
}

/* One Socket.IO packet (an EIO message's payload). 0, or -1 for a protocol
 * error (the caller closes the session). */
static int sio_packet(omsd_sio *s, const char *p, size_t n)
{
    if (s->att_left > 0 || n == 0)
        return -1; /* text while attachments are awaited, or nothing */
    int type = p[0] - '0';
    if (type < 0 || type > 6)
        return -1;
    size_t i = 1;
    int att = 0;
    if (type == 5 || type == 6) {
        size_t st = i;
        while (i < n && isdigit((unsigned char)p[i])) {
            att = att * 10 + (p[i] - '0');
            if (att > MAX_ATTACHMENTS)
                return -1;
            i++;
        }
        if (i == st || i >= n || p[i] != '-')
            return -1;
        i++;
    }
    char nsp[MAX_NSP + 1] = "/";
    if (i < n && p[i] == '/') {
        size_t st = i;
        while (i < n && p[i] != ',') {
            if (p[i] < 0x21 || p[i] > 0x7e || i - st >= MAX_NSP)
                return -1;
            i++;
        }
        memcpy(nsp, p + st, i - st);
        nsp[i - st] = '\0';
        if (i < n)
            i++; /* the comma */
    }
    int64_t ack = -1;
    if (i < n && isdigit((unsigned char)p[i])) {
        size_t st = i;
        ack = 0;
        while (i < n && isdigit((unsigned char)p[i])) {
            if (i - st >= 15)
                return -1;
            ack = ack * 10 + (p[i] - '0');
            i++;
        }
    }
    json_t *payload = NULL;
    if (i < n) {
        json_error_t jerr;
        payload = json_loadb(p + i, n - i, 0, &jerr);
        if (!payload)
            return -1;
    }
    bool here = s->joined && strcmp(nsp, NSP) == 0; /* a joined namespace */
    int rc = 0;
    switch (type) {
    case 0: /* CONNECT */
        if (ack >= 0 || (payload && !json_is_object(payload)))
            rc = -1;
        else
            rc = sio_connect(s, nsp, payload);
        break;
    case 1: /* DISCONNECT */
        if (ack >= 0 || payload || !here) {
            rc = -1;
        } else {
            /* the client ended its session: nothing to recover any more */
            if (s->joined && s->pid[0])
                omsd_sstore_forget(S.d, s->pid);
            leave(s);
        }
        break;
    case 2: /* EVENT */
    case 5: /* BINARY_EVENT */
        if (!here || !valid_event_args(payload)) {
            rc = -1;
        } else if (type == 5 && att > 0) {
            s->att_left = att;
            s->att_event = true;
            s->att_ack = ack;
            s->att_args = json_incref(payload);
        } else {
            sio_event(s, payload, ack);
        }
        break;
    case 3: /* ACK: we never ask for one, so the id is unknown: ignored */
    case 6: /* BINARY_ACK */
        if (!here || ack < 0 || !json_is_array(payload)) {
            rc = -1;
        } else if (type == 6 && att > 0) {
            s->att_left = att;
            s->att_event = false;
        }
        break;
    default: /* CONNECT_ERROR comes from servers only */
        rc = -1;
        break;
    }
    json_decref(payload);
    return rc;
}

/* A binary attachment (WebSocket binary frame, polling "b<base64>"). The
 * buffers themselves are not used: omsd's events are JSON. */
static int attachment(omsd_sio *s)
{
    if (s->att_left <= 0)
        return -1;
    if (--s->att_left > 0)
        return 0;
    json_t *args = s->att_args;
    s->att_args = NULL;
    if (s->att_event && args)
        sio_event(s, args, s->att_ack);
    json_decref(args);
    return 0;
}

/* One Engine.IO text packet from the session's transport (not the probe). */
static int eio_packet(omsd_sio *s, const char *p, size_t n)
{
    if (n == 0)
        return -1;
    switch (p[0]) {
    case '1': /* close */
        if (n != 1)
            return -1;
        session_close(s, CLOSE_NORMAL, "client closed", S.f_noop);
        return 0;
    case '3': /* pong */
        if (s->awaiting_pong) {
            s->awaiting_pong = false;
            sched(s, &s->t_hb, on_heartbeat, S.ping_interval_ms);
        }
        return 0;
    case '4':
        return sio_packet(s, p + 1, n - 1);
    case '6': /* noop */
        return 0;
    default: /* open, a client ping (v3 style), upgrade outside a probe, junk */
        return -1;
    }
}

static int b64val(unsigned char ch)
{
    if (ch >= 'A' && ch <= 'Z')
        return ch - 'A';
    if (ch >= 'a' && ch <= 'z')
        return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9')
        return ch - '0' + 52;
    if (ch == '+' || ch == '-')
        return 62;
    if (ch == '/' || ch == '_')
        return 63;
    return -1;
}

static bool valid_base64(const char *p, size_t n)
{
    while (n > 0 && p[n - 1] == '=')
        n--;
    for (size_t i = 0; i < n; i++)
        if (b64val((unsigned char)p[i]) < 0)
            return false;
    return n % 4 != 1;
}

/* ---- polling ----------------------------------------------------------------------------- */

/* Where the answer to a polling request goes: a connection of this thread,
 * or (remote != 0) a request another thread keeps open for it. */
typedef struct sio_reply {
    omsd_conn *c;
    uint64_t remote;
} sio_reply;

static void reply(sio_reply to, int status, const char *ctype, char *body, size_t len)
{
    if (to.c)
        omsd_http_reply(to.c, status, ctype, body, len);
    else
        send_answer(to.remote, status, ctype, body, len);
}

static void reply_error(sio_reply to, int status, int code, const char *message)
{
    char buf[320];
    int n = snprintf(buf, sizeof buf, "{\"code\":%d,\"message\":\"%s\"}", code, message);
    reply(to, status, "application/json", strdup(buf), (size_t)n);
}


static char *open_packet(const omsd_sio *s, size_t *len)
{
    char buf[256];
    int n = snprintf(buf, sizeof buf,
                     "0{\"sid\":\"%s\",\"upgrades\":%s,\"pingInterval\":%" PRId64
                     ",\"pingTimeout\":%" PRId64 ",\"maxPayload\":%zu}",
                     s->sid, s->tr == TR_POLLING ? "[\"websocket\"]" : "[]", S.ping_interval_ms,
                     S.ping_timeout_ms, S.max_payload);
    *len = (size_t)n;
    return strdup(buf);
}

static int hold_secs(void)
{
    return (int)((S.ping_interval_ms + S.ping_timeout_ms) / 1000) + 10;
}

/* A POST body: packets joined with \x1e. */
static int post_body(omsd_sio *s, const char *p, size_t n)
{
    if (n == 0)
        return -1;
    size_t i = 0;
    while (i <= n && !s->dead) {
        const char *e = memchr(p + i, 0x1e, n - i);
        size_t len = e ? (size_t)(e - (p + i)) : n - i;
        const char *pk = p + i;
        int rc;
        if (len > 0 && pk[0] == 'b')
            rc = valid_base64(pk + 1, len - 1) ? attachment(s) : -1;
        else
            rc = eio_packet(s, pk, len);
        if (rc < 0)
            return -1;
        if (!e)
            break;
        i += len + 1;
    }
    return 0;
}

static void forward_request(omsd *d, sio_reply to, const omsd_sio_req *r, int owner);

static void handle_polling(omsd *d, sio_reply to, const omsd_sio_req *r)
{
    omsd_conn *c = to.c; /* NULL: the request came from another thread */
    if (r->origin[0] && !r->origin_ok) {
        d->m.auth_failures++;
        reply_error(to, 403, 4, "Forbidden");
        return;
    }
    if (strcmp(r->method, "OPTIONS") == 0) {
        reply(to, 204, TEXT_PLAIN, NULL, 0);
        return;
    }
    if (strcmp(r->transport, "polling") != 0) {
        if (strcmp(r->transport, "websocket") == 0)
            reply_error(to, 400, 3, "Bad request");
        else
            reply_error(to, 400, 0, "Transport unknown");
        return;
    }
    if (strcmp(r->eio, "4") != 0) {
        reply_error(to, 400, 5, "Unsupported protocol version");
        return;
    }
    if (!r->has_sid) {
        if (strcmp(r->method, "GET") != 0) {
            reply_error(to, 400, 2, "Bad handshake method");
            return;
        }
        if (atomic_load(&d->stopping)) {
            reply_error(to, 503, 3, "Server shutting down");
            return;
        }
        char why[200];
        omsd_addr *a = NULL;
        int st = unauth_full(why, sizeof why);
        if (!st && c && (st = omsd_conn_addr_acquire(c, &a, why, sizeof why)) != 0)
            d->m.address_refused++;
        if (st) {
            reply_error(to, st, 3, why);
            return;
        }
        omsd_sio *s = session_new(d, TR_POLLING);
        if (!s) {
            omsd_addr_put(a);
            reply_error(to, 500, 3, "Cannot create a session");
            return;
        }
        s->addr = a;
        size_t len = 0;
        char *open = open_packet(s, &len);
        reply(to, 200, TEXT_PLAIN, open, open ? len : 0);
        return;
    }
    omsd_sio *s = r->sid_long ? NULL : find(r->sid);
    if (!s && !r->sid_long) {
        int owner = owner_of(S.d, r->sid);
        if (owner >= 0 && owner != omsd_self->idx) {
            forward_request(d, to, r, owner); /* its thread answers */
            return;
        }
        if (owner == omsd_self->idx) {
            /* moving here: its hand-over may still wait in our queue */
            omsd_xq_drain_now();
            s = find(r->sid);
        }
    }
    if (!s) {
        reply_error(to, 400, 1, "Session ID unknown");
        return;
    }
    if (s->tr != TR_POLLING) {
        reply_error(to, 400, 3, "Bad request"); /* upgraded already */
        return;
    }
    if (strcmp(r->method, "GET") == 0) {
        if (s->get || s->get_remote) {
            /* only one GET at a time */
            reply_error(to, 400, 3, "Bad request");
            protocol_error(s, "overlapping GET");
        } else if (c) {
            s->get = c;
            omsd_conn_set_sio(c, s);
            omsd_http_hold(c, hold_secs());
            if (s->qlen)
                omsd_conn_want_write(c);
        } else {
            s->get_remote = to.remote;
            if (s->qlen)
                flush_later(s);
        }
    } else if (strcmp(r->method, "POST") == 0) {
        if (r->body_too_large) {
            reply_error(to, 413, 3, "Payload too large");
            protocol_error(s, "POST body over maxPayload");
        } else if (r->content_type && strncmp(r->content_type, "application/octet-stream", 24) == 0) {
            reply_error(to, 400, 3, "Bad request");
            protocol_error(s, "binary POST body");
        } else if (post_body(s, r->body, r->body_len) != 0) {
            reply_error(to, 400, 3, "Bad request");
            protocol_error(s, "bad packet in a POST body");
        } else {
            reply(to, 200, "text/html", strdup("ok"), 2);
        }
    } else {
        reply_error(to, 400, 3, "Bad request");
    }
}

void omsd_sio_http(omsd *d, omsd_conn *c, const omsd_sio_req *r)
{
    handle_polling(d, (sio_reply){c, 0}, r);
}

/* A polling answer: as many queued packets as fit in maxPayload (at least
 * one), joined with \x1e; they leave the queue. NULL when out of memory. */
static char *poll_body(omsd *d, omsd_sio *s, size_t *len)
{
    size_t total = 0;
    uint32_t k = 0;
    for (; k < s->qlen; k++) {
        const omsd_frame *f = s->q[(s->qhead + k) % s->qcap];
        size_t add = f->len + (k ? 1 : 0);
        if (k && total + add > S.max_payload)
            break;
        total += add;
    }
    char *body = malloc(total ? total : 1);
    if (!body)
        return NULL;
    size_t at = 0;
    int64_t now_ms = oms_now_ms();
    for (uint32_t i = 0; i < k; i++) {
        omsd_frame *f = s->q[s->qhead];
        if (i)
            body[at++] = 0x1e;
        memcpy(body + at, FDATA(f), f->len);
        at += f->len;
        if (f->topic >= 0)
            OMSD_BUMP(omsd_self->delivered[f->topic], 1);
        if (f->ts_ms)
            omsd_age_record(omsd_self, f->ts_ms, now_ms);
        omsd_frame_unref(f);
        s->qhead = (s->qhead + 1) % s->qcap;
        s->qlen--;
    }
    (void)d;
    *len = total;
    return body;
}

void omsd_sio_get_writeable(omsd *d, omsd_conn *c)
{
    omsd_sio *s = omsd_conn_sio(c);
    if (!s || s->get != c || s->qlen == 0)
        return;
    size_t total = 0;
    char *body = poll_body(d, s, &total);
    if (!body)
        return;
    s->get = NULL;
    omsd_conn_set_sio(c, NULL);
    omsd_http_reply(c, 200, TEXT_PLAIN, body, total);
    if (s->rst.rs && !s->dead)
        omsd_resume_pump(d, &s->rst); /* for the next GET */
}

/* ---- between service threads ----------------------------------------------------------------- */

enum { MSG_REQ, MSG_ANSWER, MSG_GONE, MSG_MOVE_ASK, MSG_MOVE };

struct omsd_sio_msg {
    int kind;
    uint64_t id; /* the request (its thread in the low byte), or the waiting WebSocket */
    char sid[OMSD_SIO_ARG_MAX];
    /* MSG_REQ: a polling request another thread received */
    char method[8], eio[OMSD_SIO_ARG_MAX], transport[OMSD_SIO_ARG_MAX], content_type[128];
    bool origin_ok, body_too_large;
    char *body;
    size_t len;
    /* MSG_ANSWER: its answer (body, len above); ctype is a static string */
    int status;
    const char *ctype;
    /* MSG_MOVE: the session, NULL when it cannot move */
    omsd_sio *s;
    int from; /* MSG_MOVE_ASK: the thread that asks */
};

typedef struct probe_wait {
    struct probe_wait *next;
    uint64_t id;
    omsd_conn *c;
    /* what the client sent meanwhile ("2probe", "5"): replayed on arrival */
    char early[4][16];
    size_t early_len[4];
    int nearly;
} probe_wait;

static void push_msg(omsd *d, int thread, omsd_sio_msg *m)
{
    omsd_xq_item *it = calloc(1, sizeof *it);
    if (!it || thread < 0 || thread >= d->nworkers) {
        free(it);
        free(m->body);
        free(m);
        return;
    }
    it->kind = XQ_SIO;
    it->sio = m;
    omsd_xq_push(&d->workers[thread], it);
}

static void send_answer(uint64_t id, int status, const char *ctype, char *body, size_t len)
{
    omsd_sio_msg *m = calloc(1, sizeof *m);
    if (!m) {
        free(body);
        return;
    }
    m->kind = MSG_ANSWER;
    m->id = id;
    m->status = status;
    m->ctype = ctype;
    m->body = body;
    m->len = body ? len : 0;
    push_msg(S.d, (int)(id & 0xff), m);
}

static void forward_request(omsd *d, sio_reply to, const omsd_sio_req *r, int owner)
{
    omsd_sio_msg *m = calloc(1, sizeof *m);
    char *body = r->body_len ? malloc(r->body_len + 1) : NULL;
    if (!m || (r->body_len && !body)) {
        free(m);
        free(body);
        reply_error(to, 500, 3, "Out of memory");
        return;
    }
    m->kind = MSG_REQ;
    /* a connection here waits for the answer; a request that came from
     * yet another thread keeps its own id */
    m->id = to.c ? omsd_http_defer(to.c, strcmp(r->method, "GET") == 0 ? hold_secs() : 20,
                                   r->sid)
                 : to.remote;
    snprintf(m->sid, sizeof m->sid, "%s", r->sid);
    snprintf(m->method, sizeof m->method, "%s", r->method);
    snprintf(m->eio, sizeof m->eio, "%s", r->eio);
    snprintf(m->transport, sizeof m->transport, "%s", r->transport);
    snprintf(m->content_type, sizeof m->content_type, "%s", r->content_type ? r->content_type : "");
    m->origin_ok = r->origin_ok;
    m->body_too_large = r->body_too_large;
    if (body) {
        memcpy(body, r->body, r->body_len);
        body[r->body_len] = '\0';
    }
    m->body = body;
    m->len = r->body_len;
    d->m.sio_forwarded++;
    push_msg(d, owner, m);
}

void omsd_sio_forward_gone(omsd *d, const char *sid, uint64_t id)
{
    int owner = owner_of(d, sid);
    omsd_sio_msg *m = owner >= 0 ? calloc(1, sizeof *m) : NULL;
    if (!m)
        return;
    m->kind = MSG_GONE;
    m->id = id;
    snprintf(m->sid, sizeof m->sid, "%s", sid);
    push_msg(d, owner, m);
}

static void on_heartbeat(oms_wtimer *t);
static void on_connect_timeout(oms_wtimer *t);
static void on_upgrade_timeout(oms_wtimer *t);
static void schedule_expiry(omsd_sio *s);

/* Session s leaves this thread for thread `to` (its WebSocket is there):
 * out of every structure here, its held GET answered with a noop (the
 * client polls again, now routed to its new thread). */
static void move_out(omsd *d, omsd_sio *s, int to)
{
    answer_get(s, S.f_noop);
    if (s->prev)
        s->prev->next = s->next;
    else
        S.all = s->next;
    if (s->next)
        s->next->prev = s->prev;
    s->next = s->prev = NULL;
    for (omsd_sio **pp = &S.hash[bucket(s->sid)]; *pp; pp = &(*pp)->hnext) {
        if (*pp == s) {
            *pp = s->hnext;
            break;
        }
    }
    s->hnext = NULL;
    S.count--;
    if (s->joined) {
        oms_router_remove(S.router, &s->route);
        atomic_fetch_sub(&omsd_self->nconns, 1);
    }
    if (s->flush_queued) {
        for (omsd_sio **pp = &S.flush; *pp; pp = &(*pp)->flush_next) {
            if (*pp == s) {
                *pp = s->flush_next;
                break;
            }
        }
        s->flush_queued = false;
    }
    oms_wheel_cancel(&omsd_self->wheel, &s->t_hb);
    oms_wheel_cancel(&omsd_self->wheel, &s->t_connect);
    oms_wheel_cancel(&omsd_self->wheel, &s->t_upgrade);
    oms_wheel_cancel(&omsd_self->wheel, &s->t_noop);
    oms_wheel_cancel(&omsd_self->wheel, &s->t_exp);
    oms_wheel_cancel(&omsd_self->wheel, &s->t_store);
    s->home = NULL;
    reg_update(s->sid, to, false);
    (void)d;
}

/* Session s arrives here; c is the WebSocket it upgrades to (NULL when
 * that went away meanwhile: it goes on polling from here). */
static void move_in(omsd *d, omsd_sio *s, omsd_conn *c)
{
    s->home = omsd_self;
    if (hash_reserve(S.count + 1) != OMS_OK) {
        s->dead = true; /* cannot keep it: the client starts over */
        s->grave_next = S.grave;
        S.grave = s;
        return;
    }
    s->next = S.all;
    if (S.all)
        S.all->prev = s;
    S.all = s;
    size_t b = bucket(s->sid);
    s->hnext = S.hash[b];
    S.hash[b] = s;
    S.count++;
    if (s->joined) {
        memset(&s->route, 0, sizeof s->route);
        if (oms_router_add(S.router, &s->route, s, &s->sess) != OMS_OK) {
            atomic_fetch_add(&omsd_self->nconns, 1); /* session_close counts it down */
            session_close(s, OMS_CLOSE_TRY_LATER, "out of memory", S.f_close);
            return;
        }
        atomic_fetch_add(&omsd_self->nconns, 1);
        schedule_expiry(s);
        if (s->ss_wait || s->ss_lookup)
            sched(s, &s->t_store, on_store_timeout, S.store_wait_ms);
    } else {
        sched(s, &s->t_connect, on_connect_timeout, S.connect_timeout_ms);
    }
    s->awaiting_pong = false;
    sched(s, &s->t_hb, on_heartbeat, S.ping_interval_ms);
    if (s->qlen && s->get_remote)
        flush_later(s);
    if (c) {
        s->probe = c;
        s->probed = false;
        omsd_conn_set_sio(c, s);
        sched(s, &s->t_upgrade, on_upgrade_timeout, S.upgrade_timeout_ms);
    }
    (void)d;
}

static probe_wait *probe_take(uint64_t id)
{
    for (probe_wait **pp = &S.probes; *pp; pp = &(*pp)->next) {
        if ((*pp)->id == id) {
            probe_wait *pw = *pp;
            *pp = pw->next;
            return pw;
        }
    }
    return NULL;
}

void omsd_sio_xq(omsd *d, omsd_xq_item *it, bool live)
{
    omsd_sio_msg *m = it->sio;
    it->sio = NULL;
    if (!live || !omsd_self->sio) {
        /* omsd is stopping: nothing is answered any more */
        if (m->kind == MSG_MOVE && m->s) {
            if (!m->s->joined)
                atomic_fetch_sub(&d->sio_unauth, 1);
            session_free_d(d, m->s);
        }
        free(m->body);
        free(m);
        return;
    }
    switch (m->kind) {
    case MSG_REQ: {
        omsd_sio_req r;
        memset(&r, 0, sizeof r);
        r.method = m->method;
        snprintf(r.eio, sizeof r.eio, "%s", m->eio);
        snprintf(r.transport, sizeof r.transport, "%s", m->transport);
        snprintf(r.sid, sizeof r.sid, "%s", m->sid);
        r.has_sid = true;
        r.origin = "";
        r.origin_ok = m->origin_ok;
        r.content_type = m->content_type;
        r.body = m->body ? m->body : "";
        r.body_len = m->len;
        r.body_too_large = m->body_too_large;
        handle_polling(d, (sio_reply){NULL, m->id}, &r);
        break;
    }
    case MSG_ANSWER:
        omsd_http_answer_deferred(omsd_self, m->id, m->status, m->ctype, m->body, m->len);
        m->body = NULL;
        break;
    case MSG_GONE: {
        omsd_sio *s = find(m->sid);
        if (s && s->get_remote == m->id)
            s->get_remote = 0; /* the client gave up on that GET */
        else if (!s && owner_of(S.d, m->sid) >= 0 && owner_of(S.d, m->sid) != omsd_self->idx)
            omsd_sio_forward_gone(d, m->sid, m->id);
        break;
    }
    case MSG_MOVE_ASK: {
        omsd_sio *s = find(m->sid);
        int owner = s ? omsd_self->idx : owner_of(S.d, m->sid);
        if (!s && owner >= 0 && owner != omsd_self->idx) {
            push_msg(d, owner, m); /* moved on meanwhile: ask there */
            return;
        }
        omsd_sio_msg *a = calloc(1, sizeof *a);
        if (!a)
            break;
        a->kind = MSG_MOVE;
        a->id = m->id;
        /* a session that polls, is not upgrading, and replays nothing can
         * move (a resume belongs to the thread that started it) */
        if (s && s->tr == TR_POLLING && !s->probe && !s->rst.rs) {
            move_out(d, s, m->from);
            a->s = s;
            d->m.sio_moved++;
        } else if (s && s->tr == TR_POLLING && !s->probe) {
            reg_unclaim(s->sid); /* it stays polling here */
        }
        push_msg(d, m->from, a);
        break;
    }
    case MSG_MOVE: {
        probe_wait *pw = probe_take(m->id);
        omsd_conn *c = pw ? pw->c : NULL;
        if (m->s) {
            move_in(d, m->s, c);
            for (int i = 0; c && pw && i < pw->nearly && omsd_conn_sio(c); i++)
                omsd_sio_ws_message(d, c, pw->early[i], pw->early_len[i], false);
        } else if (c) {
            omsd_conn_close(c, CLOSE_NORMAL, "Session ID unknown");
        }
        free(pw);
        break;
    }
    default:
        break;
    }
    free(m->body);
    free(m);
}

/* ---- WebSocket --------------------------------------------------------------------------- */

int omsd_sio_confirm_upgrade(omsd *d, const omsd_sio_req *r, char *sid_out, size_t sid_len,
                             char *body, size_t body_len)
{
    int status = 400, code = 3;
    const char *msg = "Bad request";
    sid_out[0] = '\0';
    if (r->origin[0] && !r->origin_ok) {
        d->m.auth_failures++;
        status = 403, code = 4, msg = "Forbidden";
    } else if (atomic_load(&d->stopping)) {
        status = 503, msg = "Server shutting down";
    } else if (strcmp(r->transport, "websocket") != 0) {
        if (strcmp(r->transport, "polling") != 0)
            code = 0, msg = "Transport unknown";
    } else if (strcmp(r->eio, "4") != 0) {
        code = 5, msg = "Unsupported protocol version";
    } else if (r->has_sid) {
        /* whichever thread holds it (another one's moves here at
         * ESTABLISHED): one WebSocket per session, claimed now */
        int rc = r->sid_long || sid_len <= ID_LEN ? 1 : reg_claim(r->sid);
        if (rc == 1)
            code = 1, msg = "Session ID unknown";
        else if (rc == 0)
            status = 0, memcpy(sid_out, r->sid, ID_LEN + 1);
        /* else: upgraded or upgrading already */
    } else {
        char why[200];
        status = unauth_full(why, sizeof why);
        if (status) {
            snprintf(body, body_len, "{\"code\":3,\"message\":\"%s\"}", why);
            return status;
        }
    }
    if (status)
        snprintf(body, body_len, "{\"code\":%d,\"message\":\"%s\"}", code, msg);
    return status;
}

int omsd_sio_ws_open(omsd *d, omsd_conn *c, const char *sid)
{
    if (!sid[0]) {
        if (atomic_load(&d->stopping))
            return -1;
        omsd_sio *s = session_new(d, TR_WEBSOCKET);
        if (!s)
            return -1;
        s->ws = c;
        omsd_conn_set_sio(c, s);
        size_t len = 0;
        char *open = open_packet(s, &len);
        omsd_frame *f = open ? omsd_frame_alloc(len) : NULL;
        if (f)
            memcpy(FDATA(f), open, len);
        free(open);
        if (!f) {
            session_close(s, CLOSE_NORMAL, "out of memory", NULL);
            return -1;
        }
        send_new(s, f);
        return 0;
    }
    omsd_sio *s = find(sid);
    int owner = s ? omsd_self->idx : owner_of(S.d, sid);
    if (!s && owner >= 0 && owner != omsd_self->idx) {
        /* the session lives on another thread: ask it to move here, where
         * its WebSocket is; the probe waits meanwhile */
        probe_wait *pw = calloc(1, sizeof *pw);
        omsd_sio_msg *m = pw ? calloc(1, sizeof *m) : NULL;
        if (!m) {
            free(pw);
            return -1;
        }
        pw->id = ++S.next_probe;
        pw->c = c;
        pw->next = S.probes;
        S.probes = pw;
        m->kind = MSG_MOVE_ASK;
        m->id = pw->id;
        m->from = omsd_self->idx;
        snprintf(m->sid, sizeof m->sid, "%s", sid);
        push_msg(d, owner, m);
        return 0;
    }
    if (!s || s->tr != TR_POLLING || s->probe) {
        if (s && s->tr == TR_POLLING && !s->probe)
            reg_unclaim(sid);
        return -1;
    }
    s->probe = c;
    s->probed = false;
    omsd_conn_set_sio(c, s);
    sched(s, &s->t_upgrade, on_upgrade_timeout, S.upgrade_timeout_ms);
    return 0;
}

/* The switch: the probe becomes the transport, queued packets move to it. */
static void upgrade(omsd_sio *s)
{
    omsd_conn *c = s->probe;
    s->probe = NULL;
    s->probed = false;
    oms_wheel_cancel(&omsd_self->wheel, &s->t_upgrade);
    oms_wheel_cancel(&omsd_self->wheel, &s->t_noop);
    s->ws = c;
    s->tr = TR_WEBSOCKET;
    reg_update(s->sid, omsd_self->idx, true);
    /* the WebSocket holds an address slot of its own from now on */
    omsd_addr_put(s->addr);
    s->addr = NULL;
    if (s->get)
        answer_get(s, S.f_noop);
    while (s->qlen) {
        omsd_frame *f = s->q[s->qhead];
        s->qhead = (s->qhead + 1) % s->qcap;
        s->qlen--;
        omsd_conn_enqueue(c, f);
        omsd_frame_unref(f);
    }
    free(s->q);
    s->q = NULL;
    s->qcap = s->qhead = 0;
    oms_log(S.d->log, OMS_LOG_DEBUG, "socket.io session upgraded to websocket",
            OMS_LI("userId", s->sess.who.user_id));
}

static void probe_packet(omsd_sio *s, omsd_conn *c, const char *buf, size_t len, bool binary)
{
    if (!binary && !s->probed && len == 6 && memcmp(buf, "2probe", 6) == 0) {
        omsd_conn_enqueue(c, S.f_probe);
        s->probed = true;
        if (s->get)
            answer_get(s, S.f_noop);
        sched(s, &s->t_noop, on_noop_tick, 100);
    } else if (!binary && s->probed && len == 1 && buf[0] == '5') {
        upgrade(s);
    } else {
        abandon_upgrade(s, CLOSE_PROTOCOL, "bad upgrade");
    }
}

void omsd_sio_ws_message(omsd *d, omsd_conn *c, const char *buf, size_t len, bool binary)
{
    omsd_sio *s = omsd_conn_sio(c);
    (void)d;
    if (!s) {
        /* its session is on its way from another thread: keep the probe's
         * few short messages for it */
        for (probe_wait *pw = S.probes; pw && !binary; pw = pw->next) {
            if (pw->c == c && pw->nearly < 4 && len <= sizeof pw->early[0]) {
                memcpy(pw->early[pw->nearly], buf, len);
                pw->early_len[pw->nearly++] = len;
                break;
            }
        }
        return;
    }
    if (s->dead)
        return;
    if (c == s->probe) {
        probe_packet(s, c, buf, len, binary);
    } else if (c == s->ws) {
        int rc = binary ? attachment(s) : eio_packet(s, buf, len);
        if (rc < 0)
            protocol_error(s, binary ? "unexpected binary frame" : "bad packet");
    }
}

void omsd_sio_ws_too_big(omsd *d, omsd_conn *c)
{
    omsd_sio *s = omsd_conn_sio(c);
    (void)d;
    if (!s)
        return;
    if (c == s->probe)
        abandon_upgrade(s, OMS_CLOSE_TOO_BIG, "message too big");
    else
        session_close(s, OMS_CLOSE_TOO_BIG, "message too big", S.f_close);
}

void omsd_sio_conn_gone(omsd *d, omsd_conn *c)
{
    omsd_sio *s = omsd_conn_sio(c);
    (void)d;
    if (!s) {
        /* a WebSocket waiting for its session to move here */
        if (omsd_self->sio)
            for (probe_wait *pw = S.probes; pw; pw = pw->next)
                if (pw->c == c)
                    pw->c = NULL;
        return;
    }
    omsd_conn_set_sio(c, NULL);
    if (s->get == c) {
        s->get = NULL; /* the client gave up on a GET; the heartbeat decides */
    } else if (s->probe == c) {
        s->probe = NULL;
        s->probed = false;
        oms_wheel_cancel(&omsd_self->wheel, &s->t_upgrade);
        oms_wheel_cancel(&omsd_self->wheel, &s->t_noop);
        reg_unclaim(s->sid);
    } else if (s->ws == c) {
        s->ws = NULL;
        session_close(s, CLOSE_NORMAL, "transport close", S.f_close);
    }
}

/* ---- fan-out ------------------------------------------------------------------------------ */

/* `42/events,[NAME,DATA]` from the plain frame {"event":NAME,"data":DATA}:
 * spliced from its bytes when it has exactly that shape (no second
 * serialization), else re-framed through jansson. tok (may be NULL): a
 * position token, appended as the last argument with class digit cls
 * instead of its own (connection-state recovery). */
static omsd_frame *fanout_frame(const omsd_frame *pf, const char *tok, unsigned cls)
{
    static const char head[] = "42/events,[";
    const char *p = (const char *)pf->buf + LWS_PRE, *name, *dp;
    size_t n = pf->len, nl, dl;
    size_t tl = tok ? strlen(tok) : 0; /* base64url: nothing to escape */
    if (omsd_frame_split(pf, &name, &nl, &dp, &dl)) {
        size_t len = (sizeof head - 1) + 1 + nl + 2 + dl + (tl ? tl + 3 : 0) + 1;
        omsd_frame *f = omsd_frame_alloc(len);
        if (!f)
            return NULL;
        char *o = FDATA(f);
        memcpy(o, head, sizeof head - 1);
        o += sizeof head - 1;
        *o++ = '"';
        memcpy(o, name, nl);
        o += nl;
        *o++ = '"';
        *o++ = ',';
        memcpy(o, dp, dl);
        o += dl;
        if (tl) {
            *o++ = ',';
            *o++ = '"';
            *o++ = oms_postoken_class_char(cls);
            memcpy(o, tok + 1, tl - 1);
            o += tl - 1;
            *o++ = '"';
        }
        *o = ']';
        f->topic = pf->topic;
        f->ts_ms = pf->ts_ms;
        return f;
    }
    json_t *j = json_loadb(p, n, 0, NULL);
    const char *event = json_string_value(json_object_get(j, "event"));
    json_t *data = json_object_get(j, "data");
    json_t *a = event ? json_pack("[sO]", event, data ? data : json_null()) : NULL;
    if (a && tl) {
        char *t = strdup(tok);
        if (t) {
            t[0] = oms_postoken_class_char(cls);
            json_array_append_new(a, json_string(t));
            free(t);
        }
    }
    omsd_frame *f = a ? sio_frame('2', NSP, -1, a) : NULL;
    if (f) {
        f->topic = pf->topic;
        f->ts_ms = pf->ts_ms;
    }
    json_decref(a);
    json_decref(j);
    return f;
}

/* ---- what a resume needs of a session ---------------------------------------------------- */

static bool rsink_send(void *conn, omsd_frame *f)
{
    omsd_sio *s = conn;
    omsd *d = S.d;
    const char *tok = NULL;
    char *own = NULL;
    if (!s->rst.rs) {
        tok = s->pid[0] ? omsd_frame_token(d, f) : NULL; /* a live event held behind the replay */
    } else if (s->recovering && s->rvec && f->topic >= 0 && f->topic < OMS_TOPIC__COUNT &&
               f->part >= 0 && f->part < d->nparts[f->topic]) {
        /* a recovery's replay: the token says how far it has come (a
         * `resume`'s replayed events carry none: the client keeps the
         * offset it had until the live ones) */
        int64_t *v = &s->rvec[d->pbase[f->topic] + f->part];
        if (f->off > *v)
            *v = f->off;
        tok = own = omsd_token_make(d, sess_class(s), s->rvec);
    }
    omsd_frame *sf = fanout_frame(f, tok, sess_class(s));
    free(own);
    bool ok = sf && sio_send(s, sf);
    omsd_frame_unref(sf);
    return ok;
}

static uint32_t rsink_queued(void *conn)
{
    omsd_sio *s = conn;
    return s->ws ? omsd_conn_queued(s->ws) : s->qlen;
}

static void rsink_answer(void *conn, const char *event, json_t *data)
{
    omsd_sio *s = conn;
    if (!s->dead) {
        if (s->resume_ack >= 0)
            emit_ack(s, s->resume_ack, data);
        else
            emit_event(s, event, data);
    }
    json_decref(data);
}

static void rsink_close(void *conn, int code, const char *reason)
{
    session_close(conn, code, reason, S.f_close);
}

static const omsd_rsink sio_rsink = {rsink_send, rsink_queued, rsink_answer, rsink_close};

static const omsd_rsink *sio_sink(void)
{
    return &sio_rsink;
}

/* The end of a recovery's replay: CONNECT with the same pid when every
 * missed event was sent (the client sets socket.recovered), else with a
 * new one (nothing was sent: recovered false). The subscriptions stay
 * restored either way. */
static void recover_answer(void *conn, const char *event, json_t *data)
{
    omsd_sio *s = conn;
    bool ok = strcmp(event, "resumed") == 0 && json_is_true(json_object_get(data, "recovered"));
    json_decref(data);
    if (s->dead || !s->recovering)
        return;
    if (!ok) {
        /* a new pid: the client drops the old one, so does the store */
        omsd_sstore_forget(S.d, s->pid);
        s->ss_live = false;
        s->pid[0] = '\0';
    }
    connect_answer(s); /* still recovering: `connected` carries no offset */
    s->recovering = false;
    free(s->rvec);
    s->rvec = NULL;
    oms_log(S.d->log, OMS_LOG_DEBUG, "socket.io recovery", OMS_LB("recovered", ok),
            OMS_LI("userId", s->sess.who.user_id));
}

static const omsd_rsink sio_recover_rsink = {rsink_send, rsink_queued, recover_answer,
                                             rsink_close};

static const omsd_rsink *recover_sink(void)
{
    return &sio_recover_rsink;
}

void omsd_sio_pump(omsd *d, omsd_conn *c)
{
    omsd_sio *s = omsd_conn_sio(c);
    if (s && !s->dead && s->rst.rs)
        omsd_resume_pump(d, &s->rst);
}

static void collect(void *conn, void *ud)
{
    (void)ud;
    if (S.nbatch == S.capbatch) {
        size_t cap = S.capbatch ? S.capbatch * 2 : 64;
        omsd_sio **nb = realloc(S.batch, cap * sizeof *nb);
        if (!nb)
            return;
        S.batch = nb;
        S.capbatch = cap;
    }
    omsd_sio *s = conn;
    S.batch[S.nbatch++] = s;
}

void omsd_sio_dispatch(omsd *d, const omsd_xq_item *it)
{
    if (!S.router)
        return;
    /* recipients first, then the sends: a send may close a session, which
     * takes it out of the router, and the router must not change while it
     * is walked (a closed session stays in memory until the reaper) */
    S.nbatch = 0;
    oms_router_dispatch_view(S.router, it->type, it->user_id, it->frame->view, collect, NULL);
    /* one frame per class of subscriptions (the offset's digit), each
     * built once for every session of that class */
    omsd_frame *sf[OMS_POSTOKEN_MAX_CLASS + 1] = {NULL};
    for (size_t i = 0; i < S.nbatch; i++) {
        omsd_sio *s = S.batch[i];
        if (s->rst.rs && omsd_resume_hold(d, &s->rst, it->frame))
            continue; /* behind its replay */
        unsigned cls = sess_class(s);
        if (!sf[cls] && (sf[cls] = fanout_frame(it->frame, omsd_frame_token(d, it->frame), cls)))
            omsd_frame_compress(d, sf[cls]); /* once per thread and class, for its WebSockets */
        if (!sf[cls])
            d->m.dropped[it->topic]++;
        else if (!sio_send(s, sf[cls]))
            d->m.dropped[it->topic]++;
    }
    S.nbatch = 0;
    for (unsigned c = 0; c <= OMS_POSTOKEN_MAX_CLASS; c++)
        omsd_frame_unref(sf[c]);
}

/* ---- life cycle and presence --------------------------------------------------------------- */

void omsd_sio_drain(omsd *d)
{
    omsd_sio *next;
    (void)d;
    for (omsd_sio *s = S.all; s; s = next) {
        next = s->next;
        session_close(s, OMS_CLOSE_GOING_AWAY, "server shutting down", S.f_close);
    }
}

void omsd_sio_free_all(omsd *d)
{
    if (!omsd_self->sio)
        return;
    while (S.all) {
        omsd_sio *s = S.all;
        /* no answer can be written any more: detach, then close */
        if (s->get) {
            omsd_conn_set_sio(s->get, NULL);
            s->get = NULL;
        }
        session_close(s, OMS_CLOSE_GOING_AWAY, "server stopped", NULL);
    }
    omsd_sio_reap();
    while (S.probes) {
        probe_wait *pw = S.probes;
        S.probes = pw->next;
        free(pw);
    }
    free(S.hash);
    S.hash = NULL;
    S.nbuckets = 0;
    omsd_frame_unref(S.f_ping);
    omsd_frame_unref(S.f_noop);
    omsd_frame_unref(S.f_close);
    omsd_frame_unref(S.f_probe);
    S.f_ping = S.f_noop = S.f_close = S.f_probe = NULL;
    oms_router_free(S.router);
    S.router = NULL;
    free(S.batch);
    S.batch = NULL;
    S.capbatch = 0;
    free(omsd_self->sio);
    omsd_self->sio = NULL;
    (void)d;
}
