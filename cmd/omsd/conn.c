/* conn.c — the core's connections: the send queue of a WebSocket (frames
 * shared by reference, bounded by server.queue_limit), its write path,
 * its receive buffer and its client-address slot. Dialect-free: what a
 * dialect must do when the queue goes down it sets as on_drained. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "conn_types.h"
#include "deflate.h"

#define WRITES_PER_CALLBACK 1024 /* more than XQ_BATCH: writes must outpace dispatch */

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

void omsd_addr_free_all(void)
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
int omsd_addr_reserve(omsd *d, struct lws *wsi, omsd_addr **out, char *msg, size_t msglen)
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
    return omsd_addr_reserve(c->d, c->wsi, out, msg, msglen);
}

/* ---- writing at the end of a loop turn ------------------------------------------------ */

/* A connection that got frames is written at the end of the loop turn
 * (omsd_conn_flush), all its frames at once, straight from the service
 * thread: no WRITEABLE round (two epoll_ctl and a wake-up per delivery)
 * unless the socket is full, when lws keeps the rest and asks for one
 * itself. OMS_WRITE_DIRECT=0: every write waits for WRITEABLE instead (for
 * benchmarks). */
/* A switch for benchmarks: on unless the environment sets NAME=0 (read
 * once, into *cache: -1 until then). */
static bool env_switch(const char *name, int *cache)
{
    if (*cache < 0) {
        const char *e = getenv(name);
        *cache = !(e && strcmp(e, "0") == 0);
    }
    return *cache;
}

static bool direct_on(void)
{
    static int on = -1;
    return env_switch("OMS_WRITE_DIRECT", &on);
}

static void mark_dirty(omsd_conn *c)
{
    if (c->dirty_idx)
        return;
    omsd_worker *w = c->w;
    if (!direct_on() || omsd_self != w) {
        lws_callback_on_writable(c->wsi);
        return;
    }
    if (w->ndirty == w->dirty_cap) {
        size_t ncap = w->dirty_cap ? w->dirty_cap * 2 : 256;
        omsd_conn **nd = realloc(w->dirty, ncap * sizeof *nd);
        if (!nd) {
            lws_callback_on_writable(c->wsi);
            return;
        }
        w->dirty = nd;
        w->dirty_cap = ncap;
    }
    w->dirty[w->ndirty++] = c;
    c->dirty_idx = (uint32_t)w->ndirty; /* 1-based: 0 is "not listed" */
}

static int write_frames(omsd_conn *c, bool direct);

void omsd_conn_flush(omsd_worker *w)
{
    /* writing may queue more (a replay's next part): those are listed
     * behind and written in this same pass */
    for (size_t i = 0; i < w->ndirty; i++) {
        omsd_conn *c = w->dirty[i];
        if (!c)
            continue; /* closed meanwhile */
        c->dirty_idx = 0;
        if (c->closing) {
            lws_callback_on_writable(c->wsi); /* the rest, then the close frame */
            continue;
        }
        if (lws_partial_buffered(c->wsi))
            continue; /* lws asked for WRITEABLE: the queue goes out then */
        if (write_frames(c, true) < 0) {
            c->closing = true;
            omsd_conn_drop_queue(c);
            omsd_conn_kill(c);
            continue;
        }
        if (c->on_drained)
            c->on_drained(c);
        if (c->qlen > 0 && !c->dirty_idx)
            lws_callback_on_writable(c->wsi);
    }
    w->ndirty = 0;
}

/* ---- WebSocket send queue ----------------------------------------------------------- */

void omsd_conn_close(omsd_conn *c, int code, const char *reason)
{
    if (c->closing)
        return;
    c->closing = true;
    c->close_code = code;
    snprintf(c->close_reason, sizeof c->close_reason, "%s", reason);
    lws_callback_on_writable(c->wsi);
}

void omsd_conn_drop_queue(omsd_conn *c)
{
    while (c->qlen) {
        omsd_frame_unref(c->q[c->qhead]);
        c->qhead = (c->qhead + 1) % c->qcap;
        c->qlen--;
    }
}

uint32_t omsd_queue_max(const omsd *d)
{
    return (uint32_t)(d->cfg.server.queue_limit > 0 ? d->cfg.server.queue_limit : 4096);
}

/* Queue f (taking a reference). Returns false when the bound is passed: the
 * connection is then closed with 1013 and never slows the others. */
bool omsd_conn_enqueue(omsd_conn *c, omsd_frame *f)
{
    if (c->closing)
        return false;
    if (c->qlen == c->qcap && c->qcap < omsd_queue_max(c->d)) {
        /* most connections never queue much: start small, double on demand */
        uint32_t ncap = c->qcap * 2 < omsd_queue_max(c->d) ? c->qcap * 2 : omsd_queue_max(c->d);
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
        omsd_conn_drop_queue(c);
        omsd_conn_close(c, OMS_CLOSE_TRY_LATER, "send queue overflow, reconnect and resume");
        return false;
    }
    f->refs++;
    c->q[(c->qhead + c->qlen) % c->qcap] = f;
    c->qlen++;
    if (c->qlen == 1)
        mark_dirty(c);
    return true;
}

/* Queue {"event", "data"}; data is borrowed. */
void omsd_conn_send_json(omsd_conn *c, const char *event, const json_t *data)
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
    omsd_conn_enqueue(c, f);
    omsd_frame_unref(f);
}

/* Same, taking the reference to data. */
void omsd_conn_send_json_new(omsd_conn *c, const char *event, json_t *data)
{
    omsd_conn_send_json(c, event, data);
    json_decref(data);
}

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



void omsd_conn_on_drained(omsd_conn *c, void (*fn)(omsd_conn *c))
{
    c->on_drained = fn;
}

void omsd_conn_kill(omsd_conn *c)
{
    /* at once, whether or not it reads: a close handshake would wait */
    lws_set_timeout(c->wsi, PENDING_TIMEOUT_CLOSE_ACK, LWS_TO_KILL_ASYNC);
}

int omsd_conn_open(omsd_conn *c, omsd_addr *slot)
{
    uint32_t max = omsd_queue_max(c->d);
    c->qcap = max < 4 ? max : 4;
    c->q = calloc(c->qcap, sizeof *c->q);
    if (!c->q) {
        omsd_addr_put(slot);
        return -1;
    }
    c->is_ws = true;
    c->addr = slot;
    c->pmd = omsd_pmd_negotiated(c->wsi, &c->pmd_max);
    if (c->pmd)
        atomic_fetch_add(&c->d->pmd_conns, 1);
    return 0;
}

void omsd_conn_release(omsd_conn *c)
{
    if (c->dirty_idx) {
        c->w->dirty[c->dirty_idx - 1] = NULL; /* not written after it is gone */
        c->dirty_idx = 0;
    }
    addr_release(c);
    if (c->pmd) {
        atomic_fetch_sub(&c->d->pmd_conns, 1);
        c->pmd = false;
    }
    omsd_conn_drop_queue(c);
    free(c->q);
    free(c->rx);
    c->q = NULL;
    c->rx = NULL;
    c->rxcap = c->rxlen = 0;
    c->is_ws = false;
    c->on_drained = NULL;
}

void omsd_conn_want_write(omsd_conn *c)
{
    lws_callback_on_writable(c->wsi);
}

/* Gather a message's fragments in c->rx: 1 when it is complete, 0 when more
 * is to come (or it is being skipped), 2 when it passed max (the rest of it
 * is then skipped), -1 out of memory. */
int omsd_conn_collect(omsd_conn *c, const char *in, size_t len, size_t max)
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
void omsd_conn_rx_done(omsd_conn *c)
{
    c->rxlen = 0;
    if (c->rxcap > RX_KEEP) {
        free(c->rx);
        c->rx = NULL;
        c->rxcap = 0;
    }
}

/* ---- the write path ------------------------------------------------------------------- */

/* Several queued frames go out in one write (one system call, one TLS
 * record) of at most OMSD_WRITE_BATCH bytes: the frames' own WebSocket
 * headers (server to client: unmasked) written here, the payloads copied
 * after them into the thread's buffer. lws sends a raw write whole (the
 * protocol's tx_packet_size allows it) and keeps what the socket did not
 * take for the next WRITEABLE, as it does for a frame. OMS_WRITE_COALESCE=0
 * turns it off (one write per frame), for benchmarks. */
static bool coalesce_on(void)
{
    static int on = -1;
    return env_switch("OMS_WRITE_COALESCE", &on);
}

/* Whether f goes to c compressed (omsd_frame_compress made it, c
 * negotiated the extension and its window holds f). */
static inline bool goes_compressed(const omsd_conn *c, const omsd_frame *f)
{
    return c->pmd && f->z && f->len <= c->pmd_max;
}

/* The frame at the head of the queue went out: wire bytes, z compressed. */
static void sent(omsd_conn *c, int64_t *now_ms, size_t wire, bool z)
{
    omsd_frame *f = c->q[c->qhead];
    OMSD_BUMP(c->w->ws_sent_frames[z], 1);
    OMSD_BUMP(c->w->ws_sent_bytes[z], wire);
    c->qhead = (c->qhead + 1) % c->qcap;
    c->qlen--;
    if (f->topic >= 0)
        OMSD_BUMP(c->w->delivered[f->topic], 1);
    if (f->ts_ms) {
        if (!*now_ms)
            *now_ms = oms_now_ms(); /* once per callback */
        omsd_age_record(c->w, f->ts_ms, *now_ms);
    }
    omsd_frame_unref(f);
}

/* Pack up to max frames from the head of the queue into the thread's
 * buffer, each with its own header: how many (0 when the first alone does
 * not fit) and their bytes in *len. A frame alone goes this way too: its
 * header is never written into the frame's shared headroom, which another
 * service thread may be sending from at the same time. */
static uint32_t pack(omsd_conn *c, size_t *len, uint32_t max)
{
    unsigned char *base = c->w->wbuf + LWS_PRE, *p = base;
    uint32_t n = 0;
    for (; n < c->qlen && n < max; n++) {
        omsd_frame *f = c->q[(c->qhead + n) % c->qcap];
        if ((size_t)(p - base) + 10 + f->len > OMSD_WRITE_BATCH)
            break;
        if (goes_compressed(c, f)) {
            /* permessage-deflate: the frame compressed once, header and all */
            memcpy(p, f->z + f->zoff, f->zlen);
            p += f->zlen;
            continue;
        }
        p += omsd_ws_header(p, f->len, false);
        memcpy(p, f->buf + LWS_PRE, f->len);
        p += f->len;
    }
    *len = (size_t)(p - base);
    return n;
}

static int write_frames(omsd_conn *c, bool direct)
{
    int64_t now_ms = 0;
    bool coalesce = coalesce_on();
    for (int i = 0; i < WRITES_PER_CALLBACK && c->qlen > 0; i++) {
        /* lws keeps what the socket did not take; then we wait for
         * WRITEABLE (lws_send_pipe_choked would poll(2) the socket: a
         * system call per write) */
        if (lws_partial_buffered(c->wsi))
            break;
        size_t len = 0;
        uint32_t n = c->w->wbuf ? pack(c, &len, coalesce ? UINT32_MAX : 1) : 0;
        if (n) {
            int w = lws_write(c->wsi, c->w->wbuf + LWS_PRE, len, LWS_WRITE_HTTP);
            if (w < (int)len) {
                oms_log(c->d->log, OMS_LOG_WARN, "write failed, closing", OMS_LI("wrote", w),
                        OMS_LI("len", len));
                return -1;
            }
            OMSD_BUMP(c->w->ws_writes[direct], 1);
            OMSD_BUMP(c->w->ws_frames, n);
            while (n--) {
                omsd_frame *f = c->q[c->qhead];
                bool z = goes_compressed(c, f);
                sent(c, &now_ms, z ? f->zlen : omsd_ws_header_len(f->len) + f->len, z);
            }
            continue;
        }
        /* a frame larger than the buffer: on its own */
        omsd_frame *f = c->q[c->qhead];
        bool z = goes_compressed(c, f);
        size_t want;
        int w = omsd_frame_write_alone(c->wsi, f, z, &want);
        if (w < (int)want) {
            oms_log(c->d->log, OMS_LOG_WARN, "write failed, closing", OMS_LI("wrote", w),
                    OMS_LI("len", f->len));
            return -1;
        }
        OMSD_BUMP(c->w->ws_writes[direct], 1);
        OMSD_BUMP(c->w->ws_frames, 1);
        sent(c, &now_ms, want, z);
    }
    return 0;
}

int omsd_conn_writeable(omsd_conn *c)
{
    if (c->ping_due && !c->closing && !lws_partial_buffered(c->wsi)) {
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
    if (write_frames(c, false) < 0)
        return -1;
    /* a replay goes out as the queue empties (the dialect's) */
    if (c->on_drained)
        c->on_drained(c);
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
