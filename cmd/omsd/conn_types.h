/* conn_types.h — what a connection holds, for the core (conn.c, http.c)
 * and the files that own some of its fields (server.c: routing, plain.c:
 * the plain dialect's session). socketio.c keeps its own state in its
 * sessions and reaches a connection only through conn.h. */
#ifndef OMSD_CONN_TYPES_H
#define OMSD_CONN_TYPES_H

#include "conn.h"

/* A connection: an HTTP exchange, then possibly a WebSocket (plain or
 * Socket.IO), lws' per-session memory. */
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
    void (*on_drained)(omsd_conn *c); /* the dialect's: the queue went down */
    uint32_t dirty_idx; /* 1 + its place in w->dirty, 0 when not listed */
    /* permessage-deflate negotiated (deflate.h): every frame goes raw, the
     * compressed form of those that have one and are no longer than pmd_max */
    bool pmd;
    size_t pmd_max;
    struct omsd_sse *sse; /* an event stream (sse.c) on this HTTP connection */
};

/* An HTTP exchange (pkg/httpd) and, for a REST trigger, the answer that
 * waits for Kafka's acknowledgement; allocated for HTTP callbacks, freed
 * when the connection becomes a WebSocket or closes. */
struct omsd_http {
    oms_httpd_txn t;
    uint64_t request_id;
    omsd_http_resp deferred; /* status 0: none */
    bool sio_forward;        /* answered by another thread (omsd_http_defer) */
    char sio_sid[128]; /* OMSD_SIO_ARG_MAX */
};


#endif
