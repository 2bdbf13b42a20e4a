/* plain.h — the plain JSON dialect (plain.c), for server.c and workers.c. */
#ifndef OMSD_PLAIN_H
#define OMSD_PLAIN_H

#include "conn.h"

/* An upgrade to /events authenticated as who is established: the session,
 * `connected`, its timers. 0, or -1 (closes). */
int omsd_plain_open(omsd_conn *c, const oms_principal *who);
/* A (fragment of a) message from the client. -1 closes. */
int omsd_plain_receive(omsd_conn *c, const char *in, size_t len);
/* A pong came (the peer is alive). */
void omsd_plain_pong(omsd_conn *c);
/* The connection is gone: everything of the dialect is undone. */
void omsd_plain_closed(omsd_conn *c);
/* Fan-out listener: a live event for the plain connections of w. */
void omsd_plain_dispatch(omsd_worker *w, const omsd_xq_item *it);
/* Shutdown: close every plain connection of w (1001). */
void omsd_plain_drain(omsd_worker *w);

#endif
