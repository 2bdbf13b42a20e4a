/* socketio.h — the Socket.IO v4 dialect (socketio.c: Engine.IO 4 +
 * Socket.IO 5 on /socket.io/, namespace /events; DESIGN §3.6), for
 * server.c and workers.c; socketio.c itself calls only the core (conn.h).
 * Service thread only. */
#ifndef OMSD_SOCKETIO_H
#define OMSD_SOCKETIO_H

#include "conn.h"

typedef struct omsd_sio omsd_sio;

#define OMSD_SIO_ARG_MAX 128 /* longest EIO/transport/sid query value kept */
/* What a session may send before its namespace CONNECT succeeds (a WebSocket
 * message, a polling POST body): enough for a CONNECT with a large token. */
#define OMSD_SIO_PREAUTH_BYTES 8192

/* A request on /socket.io/ as server.c read it. Query values: "" when absent;
 * *_long when present but over OMSD_SIO_ARG_MAX (then treated as invalid). */
typedef struct omsd_sio_req {
    const char *method;
    char eio[OMSD_SIO_ARG_MAX], transport[OMSD_SIO_ARG_MAX], sid[OMSD_SIO_ARG_MAX];
    bool has_sid, sid_long;
    const char *origin; /* "" when absent */
    bool origin_ok;     /* no Origin, or own origin / CORS_ORIGIN */
    const char *content_type;
    const char *body;
    size_t body_len;
    bool body_too_large; /* over maxPayload: the body was not kept */
} omsd_sio_req;

/* ---- socketio.c, called by server.c --------------------------------------------- */

/* Reads the settings (config + OMS_SIO_* environment overrides). */
void omsd_sio_init(omsd *d);
/* Whether a path is the Socket.IO endpoint ("/socket.io/" or "/socket.io"). */
bool omsd_sio_path(const char *path);
/* POST bodies on the endpoint are limited to maxPayload bytes. */
size_t omsd_sio_max_payload(void);
/* The largest POST body for session sid (NULL: none given): maxPayload once
 * joined to /events, OMSD_SIO_PREAUTH_BYTES before. */
size_t omsd_sio_body_limit(const char *sid);
/* The same for a WebSocket message on a Socket.IO connection. */
size_t omsd_sio_message_limit(const omsd_conn *c);
/* Frees the sessions closed since the last call. Only between two turns of
 * the event loop (no handler running): see "Lifetime" in socketio.c. */
void omsd_sio_reap(void);
/* An HTTP (long-polling) request: answers through omsd_http_reply, at once
 * or later (a GET held until something is queued). */
void omsd_sio_http(omsd *d, omsd_conn *c, const omsd_sio_req *r);
/* A held GET's connection is writeable: fill its answer from the queue. */
void omsd_sio_get_writeable(omsd *d, omsd_conn *c);
/* A WebSocket upgrade on the endpoint. 0: accept (sid_out: the session to
 * upgrade, "" for a new WebSocket-only session); else the HTTP status to
 * refuse with and its JSON body in body (NUL-terminated). */
int omsd_sio_confirm_upgrade(omsd *d, const omsd_sio_req *r, char *sid_out, size_t sid_len,
                             char *body, size_t body_len);
/* The upgrade is established: a new session, or the probe of sid's. -1 closes. */
int omsd_sio_ws_open(omsd *d, omsd_conn *c, const char *sid);
/* One complete WebSocket message on a Socket.IO connection. */
void omsd_sio_ws_message(omsd *d, omsd_conn *c, const char *buf, size_t len, bool binary);
/* A WebSocket message over maxPayload: the session is closed (1009). */
void omsd_sio_ws_too_big(omsd *d, omsd_conn *c);
/* A connection bound to a session (held GET, WebSocket) is gone. */
void omsd_sio_conn_gone(omsd *d, omsd_conn *c);
/* Fan-out: queue an event on every joined session that wants it; the
 * Socket.IO framing is built once per event, lazily, from it->frame. */
void omsd_sio_dispatch(omsd *d, const omsd_xq_item *it);
/* A Socket.IO WebSocket's queue went down: a running resume sends more. */
void omsd_sio_pump(omsd *d, omsd_conn *c);
/* A message from another service thread (XQ_SIO): a polling request for a
 * session here, the answer to one we forwarded, a session moving here.
 * live false: omsd is stopping, only free it. */
typedef struct omsd_sio_msg omsd_sio_msg;
void omsd_sio_xq(omsd *d, omsd_xq_item *it, bool live);
/* The session store's answer (XQ_SSTORE, sstore.h): a change stored, or a
 * recovering session's state found. live false: only free it. */
void omsd_sio_sstore(omsd *d, omsd_xq_item *it, bool live);
/* A connection that waited for another thread's answer (omsd_http_defer)
 * closed: that thread forgets the GET it held for it. */
void omsd_sio_forward_gone(omsd *d, const char *sid, uint64_t id);
/* Shutdown: close every session (1001 / EIO close). */
void omsd_sio_drain(omsd *d);
/* Before lws_context_destroy: free every session, cancel its timers. */
void omsd_sio_free_all(omsd *d);

#endif
