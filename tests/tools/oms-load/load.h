/* oms-load — one WebSocket load generator, one file per protocol.
 *
 * The common core (pool.c: connections over one libwebsockets client
 * context; stats.c: per-message accounting and the latency histogram;
 * scan.c: allocation-free JSON scanning; main.c: options and the result)
 * knows nothing of what a protocol says on the wire. A protocol
 * (plain.c: omsd's /events, socketio.c: Engine.IO 4 / Socket.IO 5,
 * centrifugo.c: Centrifugo's client protocol v2 in JSON) is a table of
 * callbacks the core calls: extra handshake headers, what to send when the
 * socket is writable, what to make of a received message.
 *
 * This is a test tool, one process, one thread: its state is one global,
 * `load`, as main()'s state is allowed to be. */
#ifndef OMS_LOAD_H
#define OMS_LOAD_H

#include <libwebsockets.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth/auth.h"

#define LOAD_PROG "oms-load"

/* latency histogram: 100 µs buckets up to 30 s, then one overflow bucket */
#define LOAD_HIST_STEP_US 100
#define LOAD_HIST_BUCKETS (30 * 1000 * 1000 / LOAD_HIST_STEP_US)

/* subscriptions asked for (--subscribe) */
#define LOAD_SUB_ORDERS 1u
#define LOAD_SUB_INVENTORY 2u

/* the most source addresses (127.0.0.1 .. 127.0.0.N) connections spread over */
#define LOAD_MAX_SOURCES 64

enum load_conn_state { LOAD_CS_NEW = 0, LOAD_CS_CONNECTING, LOAD_CS_OPEN, LOAD_CS_CLOSED,
                       LOAD_CS_FAILED };

enum { LOAD_EV_ORDER, LOAD_EV_INVENTORY, LOAD_EV_USER_NOTE, LOAD_EV_SYSTEM_NOTE, LOAD_EV_OTHER,
       LOAD_EV__COUNT };
extern const char *const load_ev_names[LOAD_EV__COUNT];

typedef struct load_conn {
    struct lws *wsi;
    int idx;
    enum load_conn_state state;
    bool hello;      /* the protocol's "you are in" arrived */
    bool subscribed; /* every subscription asked for was confirmed */
    int want;        /* subscriptions asked for */
    int confirms;    /* subscriptions confirmed */
    int answers;     /* subscriptions answered (confirmed or refused) */
    unsigned out;    /* protocol-defined bits: frames still to send */
    int pongs;       /* heartbeat answers still to send */
    bool deflate; /* the server accepted permessage-deflate */
    uint64_t events;
    char *rx; /* a message arriving in several fragments */
    size_t rxlen, rxcap;
} load_conn;

/* A protocol. Every callback may be NULL. */
typedef struct load_proto {
    const char *name;
    const char *default_path; /* when the URL names none */
    /* add headers to the upgrade request; 0 or -1 to fail the connection */
    int (*handshake_headers)(load_conn *c, struct lws *wsi, unsigned char **p,
                             unsigned char *end);
    /* the WebSocket is open */
    void (*on_open)(load_conn *c, struct lws *wsi);
    /* the socket is writable: send at most one frame; 0 or -1 to close */
    int (*on_writeable)(load_conn *c, struct lws *wsi);
    /* one complete message */
    void (*on_message)(load_conn *c, const char *m, size_t n);
} load_proto;

extern const load_proto oms_load_plain, oms_load_socketio, oms_load_centrifugo;

typedef struct load_err_count {
    char what[128];
    uint64_t n;
} load_err_count;

/* Options and state of the run (main.c fills the options). */
struct load_state {
    /* options */
    const load_proto *proto;
    char host[64];
    char addr[64]; /* the numeric loopback address connected to */
    int port;
    char path[512];
    int nconns;
    const char *secret;
    const char *token;
    oms_role role;
    int64_t user_id; /* 0: first_user_id .. first_user_id + N - 1 */
    int64_t first_user_id;
    unsigned subs;          /* LOAD_SUB_* */
    const char *channels;   /* centrifugo: comma-separated channels, NULL: from subs */
    int nsources;           /* source addresses 127.0.0.1..N; 0: let the kernel pick */
    double duration_s;
    int ramp;
    int max_pending;
    bool idle;
    int filter_products;   /* plain: inventory filter {"productId": first + idx % N}, 0: none */
    int64_t first_product;
    bool compress; /* offer permessage-deflate */
    uint64_t expect;
    double quiet_s;
    bool json;
    bool verbose;
    const char *ready_file;
    const char *progress_file;

    /* state */
    struct lws_context *ctx;
    load_conn *conns;
    char sources[LOAD_MAX_SOURCES][24]; /* "127.0.0.N" */
    int started, pending, open, hello, subscribed, failed, closed;
    uint64_t t0_ns, ready_ns;
    bool ready;
    bool stopping;
    const char *stop_reason;
    load_err_count errs[8];
    int nerrs;
    uint64_t close_codes[8][2]; /* code, count */
    int ncodes;
    uint64_t closes_other;
    int negotiated;        /* connections with permessage-deflate */
    uint64_t wire_closed;  /* bytes on the wire of connections since closed */

    /* measurements */
    uint64_t events, by_kind[LOAD_EV__COUNT], frames, bytes, error_frames, no_ts, pings;
    uint64_t first_ev_ns, last_ev_ns;
    int64_t first_ev_us, last_ev_us; /* the same, wall clock */
    uint64_t *hist;
    uint64_t hist_over;
    int64_t lat_max_us;
    double lat_sum_us;
    char first_error_frame[200];
};
extern struct load_state load;

/* ---- clocks (stats.c) ---- */
uint64_t load_mono_ns(void);
int64_t load_wall_us(void);

/* ---- accounting (stats.c) ---- */
void load_note_error(const char *what);
void load_note_close_code(unsigned code);
/* an `error` answer from the server: counted, the first one kept, and it
 * answers a pending subscription (replies come in order) */
void load_note_error_frame(load_conn *c, const char *m, size_t n);
/* the protocol's "you are in" */
void load_conn_hello(load_conn *c);
/* a subscription confirmed */
void load_conn_confirmed(load_conn *c);
/* one pushed event of kind LOAD_EV_*; ts_ms its produce time (Unix ms),
 * or < 0 when it carries none */
void load_count_event(load_conn *c, int kind, int64_t ts_ms);
/* latency (µs) at quantile q */
double load_percentile_us(double q);

/* ---- main.c ---- */
/* a SIGINT or SIGTERM arrived (the handler only sets a flag) */
bool load_got_signal(void);

/* ---- the connection pool (pool.c) ---- */
/* create the lws context; 0 or -1 */
int load_pool_init(int fd_limit);
/* run until the end of the run; returns the elapsed seconds */
double load_pool_run(void);
void load_pool_destroy(void);
/* ask for a writable callback on c */
void load_want_write(load_conn *c);
/* bytes received on the wire so far (TCP payload: frame headers and
 * compressed payloads), over every connection opened */
uint64_t load_wire_bytes(void);
/* send one text frame; 0 or -1 */
int load_send_text(struct lws *wsi, const char *s, size_t n);
/* a token for connection c (HS256 minted from --secret, or --token);
 * the caller frees it. NULL on failure. */
char *load_token_for(const load_conn *c);

/* ---- permessage-deflate (deflate.c) ---- */
/* the extension table --compress offers (a static table) */
const struct lws_extension *load_client_extensions(void);
/* whether permessage-deflate was negotiated on wsi */
bool load_deflate_active(struct lws *wsi);

/* ---- JSON scanning (scan.c): compact or not, never allocates ---- */
/* p at '"': the position after the closing quote, or NULL */
const char *load_json_skip_string(const char *p, const char *e);
/* p at a value: the position after it, or NULL */
const char *load_json_skip_value(const char *p, const char *e);
/* the member `key` of the object at p: *v at its value, *ve after it */
bool load_json_member(const char *p, const char *e, const char *key, const char **v,
                      const char **ve);
/* the string member `key`: *v and *ve bound its contents (no quotes) */
bool load_json_string_member(const char *p, const char *e, const char *key, const char **v,
                             const char **ve);
/* a produce time: "2026-11-25T18:13:04.123Z" or a number of Unix ms */
bool load_parse_ts_ms(const char *s, const char *e, int64_t *ms);
/* the event kind of an omsd event name (order_update, ...) */
int load_kind_of(const char *name, size_t n);
bool load_name_is(const char *s, size_t n, const char *want);

#endif
