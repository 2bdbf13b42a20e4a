/* wheel.h — a coarse timer wheel for per-connection timers (pings, idle and
 * connect timeouts, token expiry, Socket.IO heartbeats): arming, re-arming
 * and cancelling are O(1) whatever the number of timers, and one sweep per
 * tick runs what is due. libwebsockets keeps its timers in one sorted list
 * (re-arming one costs O(connections)); this keeps ours out of it.
 *
 * Resolution is one tick (e.g. 100 ms): a timer fires on the first sweep at
 * or after its due time, never before. Timers further away than the wheel's
 * span (slots x tick) wait in their slot until their turn comes round.
 * Single-threaded; callbacks may arm or cancel any timer, themselves too. */
#ifndef OMS_GATEWAY_WHEEL_H
#define OMS_GATEWAY_WHEEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct oms_wtimer oms_wtimer;
typedef void (*oms_wtimer_fn)(oms_wtimer *t);

/* Embed one in the object it serves (zeroed = not armed); recover the
 * object with offsetof in the callback. */
struct oms_wtimer {
    oms_wtimer *next, **pprev; /* pprev == NULL: not armed */
    uint64_t due;              /* tick */
    oms_wtimer_fn fn;
};

typedef struct oms_wheel {
    oms_wtimer **slots; /* nslots list heads, nslots a power of two */
    size_t nslots;
    int64_t tick_ms;
    int64_t origin_ms; /* time of tick 0 */
    uint64_t now;      /* the last tick swept */
    size_t armed;
} oms_wheel;

/* nslots is rounded up to a power of two. 0 or OMS_ENOMEM. */
int oms_wheel_init(oms_wheel *w, size_t nslots, int64_t tick_ms, int64_t now_ms);
/* Timers still armed are simply forgotten. */
void oms_wheel_free(oms_wheel *w);

/* (Re-)arm t to call fn at now_ms + delay_ms (now_ms: the clock advance
 * is given; a negative delay counts as 0), on the first sweep at or after
 * it. */
void oms_wheel_arm(oms_wheel *w, oms_wtimer *t, int64_t now_ms, int64_t delay_ms,
                   oms_wtimer_fn fn);
/* Disarm (no-op when not armed). */
void oms_wheel_cancel(oms_wheel *w, oms_wtimer *t);
static inline bool oms_wtimer_armed(const oms_wtimer *t)
{
    return t->pprev != NULL;
}

/* Run every timer due at now_ms, in tick order. Returns how many ran. */
size_t oms_wheel_advance(oms_wheel *w, int64_t now_ms);

#endif
