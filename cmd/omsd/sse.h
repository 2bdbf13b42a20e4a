/* sse.h — the Server-Sent Events dialect (sse.c), for server.c and
 * workers.c: GET /events/stream. */
#ifndef OMSD_SSE_H
#define OMSD_SSE_H

#include "conn.h"

/* Whether a request path is the stream's. */
bool omsd_sse_path(const char *path);
/* A complete request on the path (c->h->t.cors already set for an allowed
 * Origin): refused with a JSON error, or the stream begins. */
void omsd_sse_request(omsd_conn *c);
/* HTTP_WRITEABLE on a stream: headers, then queued events. -1 closes. */
int omsd_sse_writeable(omsd_conn *c);
/* The connection is gone. */
void omsd_sse_closed(omsd_conn *c);
/* Fan-out listener: a live event for the streams of w. */
void omsd_sse_dispatch(omsd_worker *w, const omsd_xq_item *it);
/* Shutdown: end every stream of w (the last chunk; clients reconnect
 * elsewhere with Last-Event-ID). */
void omsd_sse_drain(omsd_worker *w);
/* After the context is gone: what the thread kept for its streams. */
void omsd_sse_free_all(omsd_worker *w);

#endif
