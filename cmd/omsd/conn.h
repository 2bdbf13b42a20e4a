/* conn.h — the gateway's core, shared by every dialect (plain JSON,
 * Socket.IO, REST): a connection, its send queue and write path, its
 * client-address slot, its HTTP exchange, and the hand-over of items from
 * other threads to a service thread. The core never calls a dialect: what
 * it needs of one it asks through the hooks below (omsd_conn.on_drained,
 * omsd_xq_handle, omsd_xq_on_event), which the dialects fill in.
 *
 * Dependencies between the gateway's files, each calling only those below:
 *   workers.c   threads, contexts, listening socket, tick, life cycle
 *   server.c    the lws callback: routes each connection to its dialect
 *   plain.c socketio.c rest.c static.c metrics.c   the dialects and pages
 *   resume.c fanout.c     replay and the Kafka fan-out
 *   conn.c xq.c http.c users.c frame.c age.c reply.c   the core
 * Service thread only, but for omsd_xq_push and the counters. */
#ifndef OMSD_CONN_H
#define OMSD_CONN_H

#include "gateway/router.h"
#include "httpd/httpd.h"
#include "omsd.h"

typedef struct omsd_sio omsd_sio;
typedef struct omsd_addr omsd_addr;
typedef struct omsd_http omsd_http;

/* ---- conn.c: connections and their send queues --------------------------------- */
/* (what a connection holds: conn_types.h) */

/* Set a new WebSocket up (at ESTABLISHED): its queue and the client-address
 * slot taken at the upgrade. 0, or -1 out of memory (the slot given back). */
int omsd_conn_open(omsd_conn *c, omsd_addr *slot);
/* The WebSocket is gone: its queue, buffers and slot are freed. */
void omsd_conn_release(omsd_conn *c);
/* The largest send queue (server.queue_limit). */
uint32_t omsd_queue_max(const omsd *d);
/* Send queue: takes a reference; false when not queued (closing or
 * overflowed: the connection is then closed with 1013). */
bool omsd_conn_enqueue(omsd_conn *c, omsd_frame *f);
/* Queue {"event", "data"} of the plain dialect; data is borrowed / taken. */
void omsd_conn_send_json(omsd_conn *c, const char *event, const json_t *data);
void omsd_conn_send_json_new(omsd_conn *c, const char *event, json_t *data);
/* Frames waiting in the send queue; dropping them all. */
uint32_t omsd_conn_queued(const omsd_conn *c);
void omsd_conn_drop_queue(omsd_conn *c);
/* Flush the queue, then send a close frame with code and reason. */
void omsd_conn_close(omsd_conn *c, int code, const char *reason);
/* Drop the connection now, without a close handshake. */
void omsd_conn_kill(omsd_conn *c);
/* Ask for a WRITEABLE callback on the connection. */
void omsd_conn_want_write(omsd_conn *c);
/* End of a loop turn: write the connections that got frames (conn.c). */
void omsd_conn_flush(omsd_worker *w);
/* WRITEABLE: a due ping, else queued frames (as few writes as it takes),
 * then on_drained, then the close frame when closing. -1 closes. */
int omsd_conn_writeable(omsd_conn *c);
/* Gather a message's fragments in c->rx: 1 complete, 0 more to come (or
 * being skipped), 2 over max (the rest of it is skipped), -1 out of
 * memory; rx_done after handling a complete one. */
int omsd_conn_collect(omsd_conn *c, const char *in, size_t len, size_t max);
void omsd_conn_rx_done(omsd_conn *c);
omsd_sio *omsd_conn_sio(const omsd_conn *c);
void omsd_conn_set_sio(omsd_conn *c, omsd_sio *s);
/* Called when the queue went down after writes (a running replay sends
 * more); NULL: nothing. */
void omsd_conn_on_drained(omsd_conn *c, void (*fn)(omsd_conn *c));

/* A slot of server.max_connections_per_address for wsi's peer, taken at
 * once (check and count under one lock: threads accept at the same time):
 * 0 and *out (NULL when there is no limit), or 429 with why in msg. */
int omsd_addr_reserve(omsd *d, struct lws *wsi, omsd_addr **out, char *msg, size_t msglen);
/* The same for a Socket.IO polling session, held by it. */
int omsd_conn_addr_acquire(omsd_conn *c, omsd_addr **out, char *msg, size_t msglen);
/* Give a slot back (NULL: nothing); free them all at the end. */
void omsd_addr_put(omsd_addr *a);
void omsd_addr_free_all(void);

/* ---- xq.c: hand-over to a service thread ---------------------------------------------- */

/* What a service thread does with an item of a kind (set once, before the
 * threads start). live false: omsd is stopping, only free what it carries.
 * The core frees the item itself (and an event's frame) afterwards. */
typedef void (*omsd_xq_handler)(omsd_worker *w, omsd_xq_item *it, bool live);
void omsd_xq_handle(omsd_xq_kind kind, omsd_xq_handler fn);
/* Who gets a live event (each listener, in the order they were added). */
typedef void (*omsd_event_listener)(omsd_worker *w, const omsd_xq_item *it);
void omsd_xq_on_event(omsd_event_listener fn);
/* Handle what was handed to w: a batch when dispatch, else free it all. */
void omsd_xq_drain(omsd_worker *w, bool dispatch);
/* Handle what other threads handed this one, now. */
void omsd_xq_drain_now(void);

/* ---- http.c: one HTTP exchange on a connection ---------------------------------------- */

/* The exchange of c (allocated on its first HTTP callback); freed. */
int omsd_http_begin(omsd_conn *c);
void omsd_http_free(omsd_conn *c);
/* A request header (empty when absent); ?token= of the request. */
void omsd_http_header(struct lws *wsi, enum lws_token_indexes t, char *buf, int len);
void omsd_http_token_arg(struct lws *wsi, char *out, size_t outlen);
/* Answer the request (takes body, malloc'd or NULL). */
void omsd_http_reply(omsd_conn *c, int status, const char *content_type, char *body, size_t len);
/* A REST handler's answer goes out (takes r->body). */
void omsd_http_reply_rest(omsd_conn *c, omsd_http_resp *r);
/* Keep a request unanswered for at most secs (a held polling GET). */
void omsd_http_hold(omsd_conn *c, int secs);
/* A REST trigger waits for Kafka's acknowledgement (XQ_DELIVERY). */
void omsd_http_wait_delivery(omsd_conn *c, const omsd_http_resp *r);
/* A new request id; its low byte names this thread. */
uint64_t omsd_http_request_id(omsd_conn *c);
/* Keep a request unanswered while another thread answers it (for at most
 * secs); returns the id its answer comes back with. sid: the Socket.IO
 * session it is for (told when the connection goes). */
uint64_t omsd_http_defer(omsd_conn *c, int secs, const char *sid);
/* That answer (takes body); dropped when the connection is gone. */
void omsd_http_answer_deferred(omsd_worker *w, uint64_t id, int status, const char *ctype,
                               char *body, size_t len);
/* The connection ends: it no longer waits for anything. */
void omsd_http_unlink(omsd_conn *c);
/* XQ_DELIVERY: a trigger's produce finished. */
void omsd_http_delivery(omsd_worker *w, omsd_xq_item *it, bool live);

#endif
