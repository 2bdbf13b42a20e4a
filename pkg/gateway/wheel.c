/* wheel.c — see wheel.h. */
#include "gateway/wheel.h"

#include <stdlib.h>

#include "common/oms.h"

int oms_wheel_init(oms_wheel *w, size_t nslots, int64_t tick_ms, int64_t now_ms)
{
    size_t n = 1;
    while (n < nslots)
        n <<= 1;
    w->slots = calloc(n, sizeof *w->slots);
    if (!w->slots)
        return OMS_ENOMEM;
    w->nslots = n;
    w->tick_ms = tick_ms > 0 ? tick_ms : 1;
    w->origin_ms = now_ms;
    w->now = 0;
    w->armed = 0;
    return OMS_OK;
}

void oms_wheel_free(oms_wheel *w)
{
    free(w->slots);
    w->slots = NULL;
    w->nslots = 0;
}

static void unlink_timer(oms_wtimer *t)
{
    *t->pprev = t->next;
    if (t->next)
        t->next->pprev = t->pprev;
    t->next = NULL;
    t->pprev = NULL;
}

static void link_timer(oms_wtimer **head, oms_wtimer *t)
{
    t->next = *head;
    if (t->next)
        t->next->pprev = &t->next;
    *head = t;
    t->pprev = head;
}

void oms_wheel_arm(oms_wheel *w, oms_wtimer *t, int64_t now_ms, int64_t delay_ms,
                   oms_wtimer_fn fn)
{
    if (t->pprev)
        unlink_timer(t);
    else
        w->armed++;
    if (delay_ms < 0)
        delay_ms = 0;
    /* the tick whose sweep comes at or after now + delay (rounded up), and
     * never one already swept */
    int64_t at = now_ms - w->origin_ms + delay_ms;
    uint64_t due = at > 0 ? (uint64_t)((at + w->tick_ms - 1) / w->tick_ms) : 0;
    t->due = due > w->now ? due : w->now + 1;
    t->fn = fn;
    link_timer(&w->slots[t->due & (w->nslots - 1)], t);
}

void oms_wheel_cancel(oms_wheel *w, oms_wtimer *t)
{
    if (!t->pprev)
        return;
    unlink_timer(t);
    w->armed--;
}

size_t oms_wheel_advance(oms_wheel *w, int64_t now_ms)
{
    if (now_ms < w->origin_ms)
        return 0;
    uint64_t target = (uint64_t)((now_ms - w->origin_ms) / w->tick_ms);
    size_t ran = 0;
    while (w->now < target) {
        w->now++;
        /* the slot's list moves to a local head: callbacks may arm timers
         * into this very slot (for a later turn) or cancel ones still here */
        oms_wtimer *pending = NULL;
        oms_wtimer **slot = &w->slots[w->now & (w->nslots - 1)];
        if (*slot) {
            pending = *slot;
            pending->pprev = &pending;
            *slot = NULL;
        }
        while (pending) {
            oms_wtimer *t = pending;
            unlink_timer(t);
            if (t->due > w->now) {
                link_timer(slot, t); /* a later turn of the wheel */
                continue;
            }
            w->armed--;
            ran++;
            t->fn(t);
        }
    }
    return ran;
}
