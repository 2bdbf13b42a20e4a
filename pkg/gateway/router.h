/* router.h — which connections an event goes to, without looking at the
 * others. Channels of DESIGN §3.4: all orders (staff/admin subscribed),
 * orders of user N (customers subscribed), inventory (staff/admin
 * subscribed), user N's notifications, system notifications (everyone but
 * service tokens). Dispatch visits exactly the connections for which
 * oms_session_wants() is true, each once; with the event's fields
 * (oms_router_dispatch_view), those for which oms_session_wants_view() is.
 *
 * Filters (issue #20) are evaluated once per event per distinct filter:
 * staff and admin connections subscribed with the same normalized filter
 * share one group, and groups are indexed by their pivot field's values
 * (oms_filter_pivot), so an inventory event of product 17 only tests the
 * groups that name product 17 (and those with comparisons only). A
 * customer's filter is tested on the few connections of that user.
 *
 * Single-threaded; the server embeds one oms_route in each connection. */
#ifndef OMS_GATEWAY_ROUTER_H
#define OMS_GATEWAY_ROUTER_H

#include <stddef.h>
#include <stdint.h>

#include "gateway/gateway.h"

typedef struct oms_router oms_router;
struct oms_fgroup;

/* Per-connection bookkeeping; zero it before oms_router_add. */
typedef struct oms_route {
    void *conn;
    int64_t user_id;
    oms_role role;
    unsigned subs;
    int32_t idx_all, idx_orders, idx_inventory, idx_user, bucket;
    int in_router;
    /* filters (own references, OMS_GW_F_*); a staff connection with one is
     * in its group instead of the orders/inventory list */
    oms_filter *filter[2];
    struct oms_fgroup *group[2];
    int32_t idx_group[2];
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

/* The same with the event's filterable fields (v NULL: filtered
 * subscriptions get nothing). */
size_t oms_router_dispatch_view(oms_router *r, oms_event_type type, int64_t user_id,
                                const oms_filter_view *v, oms_router_fn fn, void *ud);

/* Connections in the router, and those subscribed to orders / inventory. */
size_t oms_router_size(const oms_router *r);

/* Distinct filters in use (groups), and filter evaluations so far. */
size_t oms_router_filter_groups(const oms_router *r);
uint64_t oms_router_filter_evals(const oms_router *r);

#endif
