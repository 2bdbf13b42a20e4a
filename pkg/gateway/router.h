/* router.h — which connections an event goes to, without looking at the
 * others. Channels of DESIGN §3.4: all orders (staff/admin subscribed),
 * orders of user N (customers subscribed), inventory (staff/admin
 * subscribed), user N's notifications, system notifications (everyone but
 * service tokens). Dispatch visits exactly the connections for which
 * oms_session_wants() is true, each once.
 *
 * Single-threaded; the server embeds one oms_route in each connection. */
#ifndef OMS_GATEWAY_ROUTER_H
#define OMS_GATEWAY_ROUTER_H

#include <stddef.h>
#include <stdint.h>

#include "gateway/gateway.h"

typedef struct oms_router oms_router;

/* Per-connection bookkeeping; zero it before oms_router_add. */
typedef struct oms_route {
    void *conn;
    int64_t user_id;
    oms_role role;
    unsigned subs;
    int32_t idx_all, idx_orders, idx_inventory, idx_user, bucket;
    int in_router;
} oms_route;

oms_router *oms_router_new(void);
void oms_router_free(oms_router *r);

/* Enter a connection with its session's identity and subscriptions.
 * Returns 0 or OMS_ENOMEM. */
int oms_router_add(oms_router *r, oms_route *rt, void *conn, const oms_session *s);

/* The session's subscriptions changed. Returns 0 or OMS_ENOMEM. */
int oms_router_update(oms_router *r, oms_route *rt, const oms_session *s);

/* Leave (no-op when not in). */
void oms_router_remove(oms_router *r, oms_route *rt);

/* Call fn(conn, ud) for every connection that receives an event of this type
 * for this user; returns how many. fn must not add or remove routes. */
typedef void (*oms_router_fn)(void *conn, void *ud);
size_t oms_router_dispatch(const oms_router *r, oms_event_type type, int64_t user_id,
                           oms_router_fn fn, void *ud);

/* Connections in the router, and those subscribed to orders / inventory. */
size_t oms_router_size(const oms_router *r);

#endif
