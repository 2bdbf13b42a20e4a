/* omsd.h — the daemon's shared state. Threads:
 *   service (server.threads of them, the first is main): each has its own
 *                   libwebsockets context listening on the same port
 *                   (SO_REUSEPORT) and owns the connections the kernel gave
 *                   it, their queues, router, timers and positions; only it
 *                   calls lws on its context (omsd_worker).
 *   fanout:         reads every partition of the event topics, decodes,
 *                   serializes each event once, keeps the history, and hands
 *                   the same frame to every service thread (xq).
 *   kafka-poll:     serves the producer's delivery reports (REST triggers,
 *                   DLQ copies) and checks the dependencies' health.
 * Hand-over to a service thread goes through its `xq` plus
 * lws_cancel_service on its context. */
#ifndef OMSD_H
#define OMSD_H

#include <libwebsockets.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>

#include "auth/auth.h"
#include "cli/cli.h"
#include "events/events.h"
#include "gateway/gateway.h"
#include "gateway/wheel.h"
#include "kafka/kafka.h"
#include "log/log.h"
#include "registry/registry.h"

extern volatile sig_atomic_t omsd_stop;

/* Clock skew allowed on a token's exp/nbf, at verification and at expiry. */
#define OMSD_AUTH_LEEWAY_S 5

/* A serialized frame shared by every connection it goes to, on every
 * service thread (the reference count is atomic). */
typedef struct omsd_frame {
    atomic_int refs;
    int topic; /* oms_topic_kind of an event, -1 for replies */
    int64_t ts_ms; /* a live event's record timestamp (for its age at write
                    * time, oms_delivery_age_seconds); 0 otherwise */
    /* an event's partition and offset (-1: a reply); its position token
     * (tokens.c), made from tvec (what fan-out had dispatched as of the
     * event) by the first thread that needs it and kept for all: NULL for
     * replies and read-back events. Both freed with the frame. */
    int32_t part;
    int64_t off;
    _Atomic(char *) token;
    int64_t *tvec;
    size_t len;
    /* an order or inventory event's filterable fields (owned, freed with the
     * frame; NULL for others): subscription filters look at them */
    struct oms_filter_view *view;
    /* permessage-deflate (deflate.c): the whole compressed WebSocket frame,
     * header included, at z + zoff, zlen bytes; NULL when not compressed */
    unsigned char *z;
    size_t zoff, zlen;
    unsigned char buf[]; /* LWS_PRE bytes of headroom, then len bytes */
} omsd_frame;

/* A frame of len bytes, not filled in yet (one reference, no topic). */
omsd_frame *omsd_frame_alloc(size_t len);
omsd_frame *omsd_frame_new(const char *data, size_t len);
void omsd_frame_unref(omsd_frame *f);
/* The frame to send in a replay: f itself when it carries no timestamp,
 * else a copy without one (a replayed event's age is not a live latency).
 * Takes f's reference; NULL when out of memory. */
omsd_frame *omsd_frame_replay(omsd_frame *f);

/* The parts of a plain frame {"event":NAME,"data":DATA} as fan-out
 * serialized it (compact JSON): the bytes of NAME (without its quotes)
 * and of DATA (an object or array), so a dialect can splice them into its
 * own framing without a second serialization. False when the frame does
 * not have exactly that shape (the caller then goes through jansson). */
static inline size_t omsd_json_span(const char *p, size_t n)
{
    /* end of the JSON object or array starting at p[0]: the index just
     * past it, or 0 when it does not close within n */
    int depth = 0;
    bool str = false;
    for (size_t i = 0; i < n; i++) {
        char ch = p[i];
        if (str) {
            if (ch == '\\')
                i++;
            else if (ch == '"')
                str = false;
        } else if (ch == '"') {
            str = true;
        } else if (ch == '{' || ch == '[') {
            depth++;
        } else if (ch == '}' || ch == ']') {
            if (--depth == 0)
                return i + 1;
        }
    }
    return 0;
}

static inline bool omsd_frame_split(const omsd_frame *f, const char **name, size_t *nlen,
                                    const char **data, size_t *dlen)
{
    static const char pre[] = "{\"event\":\"", mid[] = ",\"data\":";
    const char *p = (const char *)f->buf + LWS_PRE;
    size_t n = f->len, k = sizeof pre - 1;
    if (n <= k || memcmp(p, pre, k) != 0 || p[n - 1] != '}')
        return false;
    size_t e = k;
    while (e < n && p[e] != '"' && p[e] != '\\')
        e++;
    size_t d0 = e + sizeof mid; /* past the closing quote and mid */
    if (e >= n || p[e] != '"' || d0 >= n || memcmp(p + e + 1, mid, sizeof mid - 1) != 0 ||
        (p[d0] != '{' && p[d0] != '[') || d0 + omsd_json_span(p + d0, n - 1 - d0) != n - 1)
        return false;
    *name = p + k;
    *nlen = e - k;
    *data = p + d0;
    *dlen = n - 1 - d0;
    return true;
}

/* An item handed to the service thread. */
typedef enum { XQ_EVENT, XQ_DELIVERY, XQ_RESUME, XQ_SIO, XQ_SSTORE } omsd_xq_kind;

struct omsd_rreq;

typedef struct omsd_xq_item {
    struct omsd_xq_item *next;
    omsd_xq_kind kind;
    /* XQ_EVENT */
    omsd_frame *frame;
    oms_event_type type;
    int64_t user_id;
    oms_topic_kind topic;
    int32_t partition;
    int64_t offset;
    /* XQ_DELIVERY: a REST trigger's produce finished */
    uint64_t request_id;
    int err; /* 0 ok */
    char errstr[128];
    /* XQ_RESUME: frames read back from Kafka for one resume (in order per
     * partition), and how the read went (see resume.c) */
    struct omsd_rreq *req;
    omsd_frame **frames;
    size_t nframes;
    int rstatus;
    /* XQ_SIO: a Socket.IO message between service threads (socketio.c) */
    struct omsd_sio_msg *sio;
    /* XQ_SSTORE: the session store's answer (sstore.h) */
    struct omsd_sstore_ans *sstore;
} omsd_xq_item;

#define OMSD_MAX_PARTITIONS 256

/* Counters shared by every thread (atomic). The hot ones (deliveries,
 * their age) are per service thread, in omsd_worker. */
typedef struct omsd_metrics {
    atomic_uint_fast64_t consumed[OMS_TOPIC__COUNT];
    atomic_uint_fast64_t undecodable;
    atomic_uint_fast64_t dlq_sent;
    atomic_int_fast64_t lag; /* sum over partitions, fan-out reader */
    atomic_uint_fast64_t dropped[OMS_TOPIC__COUNT]; /* never queued: connection closing/overflowing */
    atomic_uint_fast64_t overflow_closes;
    atomic_uint_fast64_t connections_total;
    atomic_uint_fast64_t auth_failures;
    atomic_uint_fast64_t rate_limited;
    atomic_uint_fast64_t deflated; /* frames compressed (deflate.c: once for all takers) */
    /* Socket.IO session store (sstore.c): saves stored/failed, lookups
     * found/missing/failed, whether Postgres answers (-1: no store) */
    atomic_uint_fast64_t ss_saves[2];
    atomic_uint_fast64_t ss_lookups[3];
    atomic_int ss_up;
    atomic_uint_fast64_t address_refused; /* upgrades refused: server.max_connections_per_address */
    atomic_uint_fast64_t unauth_refused;  /* Socket.IO sessions refused: server.max_unauthenticated_sessions */
    atomic_uint_fast64_t rest_requests;
    atomic_uint_fast64_t triggers_produced;
    atomic_uint_fast64_t resumes[4];      /* by outcome: recovered from memory, from kafka, not recoverable, failed */
    atomic_uint_fast64_t replayed;        /* events sent by resumes */
    atomic_uint_fast64_t resume_reads; /* records read back from Kafka for resumes */
    atomic_uint_fast64_t sio_forwarded; /* Socket.IO requests served by another thread's session */
    atomic_uint_fast64_t sio_moved;     /* Socket.IO sessions moved to their WebSocket's thread */
    /* resume.read_budget_mb: bytes of read-back frames held by resumes (the
     * reader adds, the service threads subtract), the most ever held, the
     * frame size fan-out sees (for estimates), resumes that had to wait */
    atomic_int_fast64_t rb_used;
    atomic_int_fast64_t rb_peak;
    atomic_int_fast64_t avg_frame;
    atomic_uint_fast64_t rb_waited;
    atomic_uint_fast64_t rb_waiting;
    /* records held because their schema could not be fetched yet (each try) */
    atomic_uint_fast64_t registry_waits;
    atomic_int_fast64_t registry_wait_logged_ms; /* last such log line: one per 10 s */
} omsd_metrics;

typedef struct omsd_conn omsd_conn;
typedef struct omsd omsd;

#define OMSD_MAX_THREADS 64
#define OMSD_WRITE_BATCH (64 * 1024) /* bytes of queued frames sent in one write */
#define OMSD_AGE_BUCKETS 22 /* metrics.c: one per bound, then +Inf */

/* Add to a counter only its own thread writes (a plain add; any thread may
 * read it). */
#define OMSD_BUMP(ctr, n)                                                                        \
    atomic_store_explicit(&(ctr), atomic_load_explicit(&(ctr), memory_order_relaxed) + (n),     \
                          memory_order_relaxed)

/* One service thread: its lws context, connections and everything they
 * need, touched by it alone but for the hand-over queue (xq) and the
 * counters others read. */
typedef struct omsd_worker {
    omsd *d;
    int idx;
    pthread_t thread;
    struct lws_context *ctx;
    void *evloop; /* server.event_loop epoll: the thread's libev loop (lws' foreign loop) */
    /* per-connection timers (pings, idle and connect timeouts, token
     * expiry, Socket.IO heartbeats), swept by the tick: O(1) to re-arm,
     * unlike lws' sorted list */
    oms_wheel wheel;
    omsd_conn *conns; /* plain WebSocket connections (list) */
    struct oms_router *router; /* who gets what, for the plain connections */
    struct omsd_sio_state *sio; /* socketio.c */
    struct omsd_sse_state *sse; /* sse.c: the thread's event streams */
    omsd_conn *pending_http;    /* REST answers waiting for Kafka */
    size_t sio_ws_conns;        /* Socket.IO WebSockets open */
    uint64_t next_request;
    int64_t *last_offset[OMS_TOPIC__COUNT]; /* last offset dispatched here, -1 none */
    bool draining;
    uint64_t drain_deadline_ns;
    int reload_gen; /* SIGHUP reloads applied to this context */
    lws_sorted_usec_list_t sul_tick;
    unsigned char *wbuf; /* conn.c: LWS_PRE + OMSD_WRITE_BATCH, frames packed for one write */
    omsd_conn **dirty;   /* conn.c: connections with frames to write at the end of the turn */
    size_t ndirty, dirty_cap;

    pthread_mutex_t xq_lock;
    omsd_xq_item *xq_head, *xq_tail;
    size_t xq_len;

    atomic_size_t nconns; /* plain and joined Socket.IO connections */
    atomic_uint_fast64_t delivered[OMS_TOPIC__COUNT];
    /* writes of WebSocket frames to sockets (in a WRITEABLE callback, at
     * the end of a loop turn), frames in them (conn.c) */
    atomic_uint_fast64_t ws_writes[2], ws_frames;
    /* WebSocket data frames written and their bytes on the wire (header
     * included), [0] uncompressed, [1] compressed (permessage-deflate) */
    atomic_uint_fast64_t ws_sent_frames[2], ws_sent_bytes[2];
    /* age of live events when written to a client (record timestamp ->
     * socket write): per bucket of metrics.c's bounds, then > last */
    atomic_uint_fast64_t age_buckets[OMSD_AGE_BUCKETS];
    atomic_uint_fast64_t age_count;
    atomic_int_fast64_t age_sum_ms;
} omsd_worker;

/* The service thread running this code (NULL on the others). */
extern _Thread_local omsd_worker *omsd_self;

struct omsd {
    oms_config cfg;
    oms_logger *log;
    oms_auth *auth;
    unsigned char *secret; /* HS256 secret (dev tokens) */
    size_t secret_len;
    bool dev;
    oms_events *events;
    oms_registry *registry; /* owned by events; NULL without schema_registry.url */
    const char *topics[OMS_TOPIC__COUNT];
    int nparts[OMS_TOPIC__COUNT];
    int64_t *start_offset[OMS_TOPIC__COUNT]; /* where fan-out starts (end at boot) */
    int pbase[OMS_TOPIC__COUNT]; /* flat partition index: pbase[kind] + partition */
    int nparts_total;
    struct omsd_hist *hist;      /* resume.c: recent events per partition (hist_lock) */
    pthread_mutex_t hist_lock;
    struct omsd_rreader *rreader; /* resume.c: the Kafka read-back thread */
    int64_t rb_budget;            /* resume.read_budget_mb in bytes */
    pthread_mutex_t rb_lock;      /* the next two */
    int64_t rb_admitted;          /* estimates of the reads under way */
    struct omsd_rreq *rb_wait_head, *rb_wait_tail; /* reads waiting for the budget */
    struct omsd_presence *presence; /* presence.c */
    char instance_id[64];

    omsd_worker *workers; /* server.threads of them */
    int listen_fd;        /* workers.c: every service thread accepts from it */
    int nworkers;
    atomic_int stopping;    /* the drain began: refuse new clients */
    atomic_int reload_gen;  /* SIGHUP reloads asked for */
    /* users connected here, cluster presence's local part: {"id": n} */
    pthread_mutex_t users_lock;
    json_t *users;
    atomic_size_t subscribed[2]; /* connections subscribed to orders, inventory */
    atomic_size_t sio_unauth;    /* Socket.IO sessions not joined to /events */
    atomic_size_t pmd_conns;     /* WebSockets that negotiated permessage-deflate:
                                  * none, and no event is compressed */

    oms_kafka_producer *producer;
    pthread_t fanout_thread, poll_thread;
    atomic_int threads_stop;
    atomic_int kafka_up;
    atomic_int pg_up;
    char kafka_error[256];

    omsd_metrics m;
    int64_t started_ms;
    uint64_t rate_mark_ns; /* for events/s in stats */
    uint64_t rate_mark_consumed, rate_mark_delivered;
    double events_per_s, deliveries_per_s;
    char web_root[4096]; /* resolved, "" when there is none */
    struct omsd_projections *proj; /* projections.c; NULL when disabled */
    atomic_int proj_down;          /* projection workers failing now (alerts report) */
    struct omsd_alerts *alerts;    /* alerts.c; NULL before omsd_alerts_init */
    oms_filter_limits filter_limits; /* server.filter_max_values, _bytes */
    struct oms_postoken *ptok;     /* tokens.c: signs position tokens and pids */
    int64_t *fvec; /* tokens.c: the last offset fan-out dispatched per partition (flat) */
    struct omsd_sstore *sstore;    /* sstore.c: Socket.IO sessions' subscriptions by pid */
};

/* resume.c — positions and resume (DESIGN §3.5). */
typedef struct omsd_resume omsd_resume;

/* What a resume needs of the connection it serves (plain or Socket.IO). */
typedef struct omsd_rsink {
    /* queue an event frame of the plain dialect (takes a reference); false
     * when it was not queued (the connection is closing) */
    bool (*send)(void *conn, omsd_frame *f);
    uint32_t (*queued)(void *conn); /* frames waiting in its send queue */
    /* the answer to the resume: `resumed` or `error` (takes data) */
    void (*answer)(void *conn, const char *event, json_t *data);
    void (*close)(void *conn, int code, const char *reason);
} omsd_rsink;

/* Per connection (in omsd_conn and omsd_sio). */
typedef struct omsd_rstate {
    /* per partition (flat index): the last offset before live delivery to
     * this connection began; a resume replays up to there */
    int64_t *live_from;
    omsd_resume *rs; /* the resume running, NULL when none */
} omsd_rstate;

/* At connect (notifications flow from then on). 0 or OMS_ENOMEM. */
int omsd_rstate_init(omsd *d, omsd_rstate *st);
/* Subscriptions changed: a topic newly subscribed is live from now. */
void omsd_rstate_subs(omsd *d, omsd_rstate *st, unsigned old_subs, unsigned new_subs);
/* At close: cancels a running resume. */
void omsd_rstate_free(omsd *d, omsd_rstate *st);
/* A live event for this connection: true when a running resume holds it
 * back (behind the replay); the caller then does not send it. */
bool omsd_resume_hold(omsd *d, omsd_rstate *st, omsd_frame *f);
/* The client's `resume {since}`; s is the session (copied for filtering). */
void omsd_resume_start(omsd *d, omsd_rstate *st, const oms_session *s, const json_t *since,
                       const omsd_rsink *ops, void *conn);
/* The connection's queue went down: send more of the replay. */
void omsd_resume_pump(omsd *d, omsd_rstate *st);
/* History of recent events (service thread). */
int omsd_history_init(omsd *d);
void omsd_history_add(omsd *d, const omsd_xq_item *it);
void omsd_history_sweep(omsd *d, int64_t now_ms);
void omsd_history_free(omsd *d);
/* XQ_RESUME items, on the service thread. */
void omsd_resume_xq(omsd *d, omsd_xq_item *it);
/* The read-back thread. */
int omsd_resume_reader_start(omsd *d);
void omsd_resume_reader_join(omsd *d);

/* tokens.c — position tokens (pkg/gateway/postoken.h): each event's, made
 * once by fan-out, names the last offset dispatched in every partition as
 * of that event; the Socket.IO offset and the SSE id. */
/* After omsd_history_init: the key (resume.token_secret, else derived from
 * the JWT secret, else random with a warning) and fan-out's vector. */
int omsd_tokens_init(omsd *d, char *errbuf, size_t errlen);
void omsd_tokens_free(omsd *d);
/* Fan-out thread: the event (kind, part, off) is dispatched; f keeps the
 * vector its token is made of (a copy: no MAC on the fan-out thread). */
void omsd_token_stamp(omsd *d, omsd_frame *f, int kind, int32_t part, int64_t off);
/* The event's token (class digit '0', callers write theirs), made once on
 * first use whichever thread asks, the same string for every connection;
 * NULL when f has none or out of memory. Valid while f is. */
const char *omsd_frame_token(omsd *d, omsd_frame *f);
/* A token of class cls for vec (flat, nparts_total), malloc'd; NULL when
 * out of memory. */
char *omsd_token_make(omsd *d, unsigned cls, const int64_t *vec);
/* The same for what the calling service thread dispatched so far (what
 * each of its connections not in a replay has been given). */
char *omsd_token_here(omsd *d, unsigned cls);
/* Read a client's token: 0 with *cls and vec (nparts_total) filled, else
 * OMS_EINVAL / OMS_EDENIED / OMS_ENOTFOUND (postoken.h). */
int omsd_token_read(omsd *d, const char *tok, unsigned *cls, int64_t *vec);
/* vec as resume's since: ["TOPIC:PARTITION:OFFSET", ...] (new reference). */
json_t *omsd_token_since(omsd *d, const int64_t *vec);
/* The subscriptions (OMS_SUB_*) of a class that a role may have. */
unsigned omsd_token_subs(unsigned cls, oms_role role);

/* presence.c — users online across instances, through a compacted topic. */
int omsd_presence_start(omsd *d);
void omsd_presence_join(omsd *d); /* after threads_stop; publishes a tombstone */
/* Service thread, from the tick: hands the local users over (when changed
 * or at the heartbeat). local: {"userId": connections, ...}, taken. */
void omsd_presence_publish(omsd *d, json_t *local);
/* Other live instances' users added into byuser {"userId": n} (any thread). */
void omsd_presence_merge(omsd *d, json_t *byuser);
/* Instances seen alive (self included). */
int omsd_presence_instances(omsd *d);

/* workers.c (the service threads), xq.c (the hand-over), users.c */
/* The monotonic clock in milliseconds (the wheel's). */
static inline int64_t omsd_mono_ms(void)
{
    return (int64_t)(oms_mono_ns() / 1000000u);
}
/* Creates server.threads lws contexts on the port (0 or OMS_EIO + errbuf);
 * run serves them (the first on the calling thread) until the drain ends;
 * stop frees them once every service thread has ended. */
int omsd_server_start(omsd *d, char *errbuf, size_t errlen);
int omsd_server_run(omsd *d);
void omsd_server_stop(omsd *d);
/* Hand an item to service thread w (any thread). */
void omsd_xq_push(omsd_worker *w, omsd_xq_item *it);
/* The most items waiting for a service thread (the fan-out slows down
 * above a bound). */
size_t omsd_xq_backlog(omsd *d);
/* The service thread a request id (omsd_request_id) came from. */
omsd_worker *omsd_request_worker(omsd *d, uint64_t request_id);
/* A user's connections here went up or down by delta (any service
 * thread): the local part of users online. */
void omsd_users_add(omsd *d, int64_t user_id, int delta);
/* Connections subscribed to orders or inventory went up or down. */
void omsd_subs_count(omsd *d, unsigned old_subs, unsigned new_subs);
/* Connections here, all service threads together. */
size_t omsd_nconns(omsd *d);
#define OMSD_XQ_HIGH 20000

/* fanout.c (frames: frame.c) */
int omsd_fanout_prepare(omsd *d, char *errbuf, size_t errlen);
int omsd_fanout_start(omsd *d);
void omsd_fanout_join(omsd *d);

/* rest.c (routing) and request.c (answer shapes, Origin, token): one HTTP
 * request. The answer is written into resp. */
typedef struct omsd_http_req {
    const char *method;
    const char *path; /* without query */
    const char *query;
    const char *authorization; /* header value or "" */
    const char *token_arg;     /* ?token= or "" */
    const char *origin;        /* "" when absent */
    const char *body;
    size_t body_len;
    uint64_t request_id; /* for deferred answers */
} omsd_http_req;

typedef struct omsd_http_resp {
    int status;
    char *body; /* malloc'd */
    size_t len;
    const char *content_type;
    bool deferred; /* a trigger waits for its delivery report */
    char allow[64]; /* for 405 */
    const char *cache_control; /* NULL: no-store */
} omsd_http_resp;

void omsd_rest_handle(omsd *d, const omsd_http_req *req, omsd_http_resp *resp);
void omsd_rest_error(omsd_http_resp *resp, int status, const char *code, const char *message);
void omsd_rest_json(omsd_http_resp *resp, int status, json_t *body); /* takes body */
bool omsd_origin_allowed(const omsd *d, const char *origin, const char *host);
/* Authenticate a request's token. 0 ok, else fills resp with 401. */
int omsd_rest_auth(omsd *d, const omsd_http_req *req, oms_principal *who, omsd_http_resp *resp);

/* static.c: the web console's files under server.web_root. Returns false
 * when the path is not a console path (the caller answers 404 JSON). */
bool omsd_static_serve(omsd *d, const omsd_http_req *req, omsd_http_resp *resp);
/* Resolve server.web_root at start-up (relative to the working directory,
 * else to the program's ../../). */
void omsd_static_init(omsd *d);

/* age.c */
/* A live event written to a client now_ms, its record timestamp ts_ms. */
void omsd_age_record(omsd_worker *w, int64_t ts_ms, int64_t now_ms);
/* The q-quantile (0..1) of those ages in ms (all threads), -1 when there is
 * none. */
double omsd_age_quantile(const omsd *d, double q);
/* The buckets' upper bounds, then the histogram of every thread summed. */
#define OMSD_AGE_BOUNDS (OMSD_AGE_BUCKETS - 1)
extern const int64_t omsd_age_bounds_ms[OMSD_AGE_BOUNDS];
void omsd_age_totals(const omsd *d, uint64_t buckets[OMSD_AGE_BUCKETS], uint64_t *count,
                     int64_t *sum_ms);

/* metrics.c */
char *omsd_metrics_text(omsd *d, size_t *len);
json_t *omsd_stats_json(omsd *d);

/* users.c and xq.c: users online across the cluster; this instance's
 * own users counted into byuser {"userId": connections}; positions are the
 * calling service thread's */
json_t *omsd_users_online(omsd *d);
void omsd_local_users(omsd *d, json_t *byuser);
int omsd_user_connections(omsd *d, int64_t user_id);
size_t omsd_subscribed(omsd *d, unsigned sub);
json_t *omsd_positions(omsd *d, oms_topic_kind kind);

/* dlq.c: copy a raw record to the dead-letter topic through producer p, with
 * headers oms.error (reason), oms.source.topic/partition/offset and
 * oms.stage (stage: "fanout", "projection"). Counts it in dlq_sent, logs a
 * failure. Returns 0 or the produce error. */
int omsd_dlq_copy(omsd *d, oms_kafka_producer *p, const rd_kafka_message_t *m, const char *topic,
                  const char *reason, const char *stage);

/* projections.c: the projection consumer (Kafka -> Postgres read models,
 * DESIGN §3.4), its own thread with its own group consumer
 * (kafka.projection_group), Postgres connection and DLQ producer.
 * start: nothing when projections.enabled is false; 0 or OMS_EIO.
 * join: after threads_stop is set; commits the batch in hand (bounded
 * retries), leaves the group, frees everything. */
int omsd_projections_start(omsd *d);
void omsd_projections_join(omsd *d);
/* Health (any thread): adds "projections" to deps (object) and returns
 * false when projections are enabled and not working (Postgres down or
 * failing, schema not migrated, no connection yet). */
bool omsd_projections_health(omsd *d, json_t *deps);

/* ---- registry.c: the schema registry, for fan-out, projections, health ---------- */

/* How long a partition holds a record whose writer schema cannot be fetched
 * now before reading it again (the registry client backs off by itself). */
#define OMSD_REGISTRY_HOLD_MS 250

/* Count (and log, at most every 10 s) a record held for its schema. */
void omsd_registry_wait(omsd *d, const char *topic, int32_t partition, int64_t offset,
                        const char *why);
/* The schemaRegistry entry of /websocket/health (new reference), NULL
 * without a registry. Never makes omsd unhealthy: only new ids wait. */
json_t *omsd_registry_health(omsd *d);

/* alerts.c — DESIGN §3.8: the alerting consumer (each event alerts.rules
 * matches: one Sentry event and one e-mail, exactly once; bursts folded into
 * digests) and alerts_errors.c — omsd's own errors in Sentry.
 * init: checks and parses alerts.* (also for -t): 0, OMS_ECONFIG or
 * OMS_ENOMEM with errbuf. start: the consumer thread (when notices are on)
 * and the reporter of own errors (when a DSN is set); failures are logged.
 * join: after threads_stop; sends the own errors still queued. */
int omsd_alerts_init(omsd *d, char *errbuf, size_t errlen);
int omsd_alerts_start(omsd *d);
void omsd_alerts_join(omsd *d);
void omsd_alerts_free(omsd *d);
/* One of omsd's own errors to Sentry, when a DSN is set and
 * alerts.report_errors (any thread; queued, never blocks). level "error" or
 * "fatal"; fingerprint groups the events into one issue (may be NULL);
 * tags (strings only) and extra are taken (may be NULL). */
void omsd_alerts_error(omsd *d, const char *level, const char *message, const char *fingerprint,
                       json_t *tags, json_t *extra);
/* An outage of a dependency: reported once when it begins (down), and
 * forgotten when it ends (!down), so that one outage is one event whatever
 * the retries. what: the message; detail: the error text. */
enum { OMSD_OUTAGE_KAFKA = 0, OMSD_OUTAGE_POSTGRES, OMSD_OUTAGE_PROJECTIONS };
void omsd_alerts_outage(omsd *d, int key, bool down, const char *what, const char *detail);
/* Health: adds "alerts" (each sink, not required) to deps when a sink is
 * configured. Returns true (alerts never make omsd unavailable). */
bool omsd_alerts_health(omsd *d, json_t *deps);
/* Whether the alerting consumer runs (it needs Postgres). */
bool omsd_alerts_notices_on(const omsd *d);
/* The alert counters in Prometheus text (malloc'd; NULL when none). */
char *omsd_alerts_metrics(omsd *d);

#endif
