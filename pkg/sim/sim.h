/* sim.h — a deterministic simulation of the domain services: order
 * lifecycles (created → confirmed → shipped → delivered, some cancelled)
 * that reserve and return stock, low/out-of-stock and restock events, and
 * user and system notifications.
 *
 * The same seed and options give the same sequence of event types, keys and
 * payloads; only eventId and occurredAt (taken from the clock passed in)
 * differ between runs. Pure: no I/O. */
#ifndef OMS_SIM_H
#define OMS_SIM_H

#include <stdbool.h>
#include <stdint.h>

#include "events/events.h"

/* ---- the domain rules (shared with `oms-producer serve`) ------------------ */

/* The low-stock threshold of a product nobody gave one. */
#define OMS_SIM_DEFAULT_THRESHOLD 10

/* Order statuses, in lifecycle order; cancelled last. */
#define OMS_SIM_ORDER_STATUS_COUNT 5
extern const char *const oms_sim_order_statuses[OMS_SIM_ORDER_STATUS_COUNT];

/* Whether s is one of oms_sim_order_statuses. */
bool oms_sim_order_status_known(const char *s);

/* Whether an order may move from `from` to `to`: created -> confirmed ->
 * shipped -> delivered, and created or confirmed -> cancelled. Anything else
 * (the same status, backwards, skipping, unknown names) is refused. */
bool oms_sim_order_transition_ok(const char *from, const char *to);

/* The InventoryChanged status of a stock change from `before` to `after`
 * units with this threshold: out_of_stock at 0, low_stock at or below the
 * threshold, restocked when it climbs back above it, else in_stock. */
const char *oms_sim_stock_status(int32_t before, int32_t after, int32_t threshold);

typedef struct oms_sim_opts {
    uint64_t seed;
    int users;    /* user ids 1..users */
    int products; /* product ids 1..products */
    const char *source; /* the events' source, e.g. "oms-producer" */
} oms_sim_opts;

typedef struct oms_sim oms_sim;

/* NULL on allocation failure or when users/products < 1. */
oms_sim *oms_sim_new(const oms_sim_opts *opts);
void oms_sim_free(oms_sim *s);

/* The next event, stamped with now_ms and a fresh eventId. The event and its
 * strings belong to the simulator and stay valid until the next call; do not
 * oms_event_clear() it. Never NULL. */
const oms_event *oms_sim_next(oms_sim *s, int64_t now_ms);

/* Counters for the summary. */
uint64_t oms_sim_count(const oms_sim *s, oms_event_type t);

#endif
