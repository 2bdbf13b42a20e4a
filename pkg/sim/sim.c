/* sim.c — the domain simulation. Each step picks an action with a seeded
 * generator; an action may yield several events (an order reserves stock on
 * several products), which wait in a small queue. */
#include "sim/sim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ITEMS 3
#define QUEUE_CAP 16
#define STR_CAP 96

typedef struct {
    int64_t product_id;
    int32_t quantity;
    double price;
} sim_item;

typedef struct {
    char order_id[24];
    char alias_id[24];
    int64_t user_id;
    int status; /* index into statuses[] */
    int nitems;
    sim_item items[MAX_ITEMS];
} sim_order;

typedef struct {
    int32_t quantity;
    int32_t threshold;
    double price;
    char name[32];
} sim_product;

/* A queued event with its own string storage. */
typedef struct {
    oms_event ev;
    char s[6][STR_CAP];
    oms_order_item items[MAX_ITEMS];
    char item_names[MAX_ITEMS][32];
} sim_slot;

enum { ST_CREATED, ST_CONFIRMED, ST_SHIPPED, ST_DELIVERED, ST_CANCELLED };
const char *const oms_sim_order_statuses[OMS_SIM_ORDER_STATUS_COUNT] = {
    "created", "confirmed", "shipped", "delivered", "cancelled"};

static int status_index(const char *s)
{
    for (int i = 0; s && i < OMS_SIM_ORDER_STATUS_COUNT; i++)
        if (strcmp(s, oms_sim_order_statuses[i]) == 0)
            return i;
    return -1;
}

bool oms_sim_order_status_known(const char *s)
{
    return status_index(s) >= 0;
}

bool oms_sim_order_transition_ok(const char *from, const char *to)
{
    int f = status_index(from), t = status_index(to);
    if (f < 0 || t < 0)
        return false;
    if (t == ST_CANCELLED)
        return f == ST_CREATED || f == ST_CONFIRMED;
    return f != ST_CANCELLED && t == f + 1;
}

const char *oms_sim_stock_status(int32_t before, int32_t after, int32_t threshold)
{
    if (after == 0)
        return "out_of_stock";
    if (after <= threshold)
        return "low_stock";
    if (before <= threshold)
        return "restocked";
    return "in_stock";
}

struct oms_sim {
    oms_sim_opts o;
    uint64_t rng;
    sim_product *products;
    sim_order *orders; /* active (not delivered/cancelled) */
    int norders, max_orders;
    uint64_t order_seq;
    sim_slot queue[QUEUE_CAP];
    int qhead, qlen;
    char source[64];
    uint64_t counts[OMS_EV__COUNT];
};

static uint64_t next_u64(oms_sim *s)
{
    /* splitmix64: tiny, fast, and the same on every platform */
    uint64_t z = (s->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static int rnd(oms_sim *s, int n)
{
    return (int)(next_u64(s) % (uint64_t)n);
}

oms_sim *oms_sim_new(const oms_sim_opts *opts)
{
    if (opts->users < 1 || opts->products < 1)
        return NULL;
    oms_sim *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->o = *opts;
    s->rng = opts->seed;
    snprintf(s->source, sizeof s->source, "%s", opts->source ? opts->source : "oms-producer");
    s->products = calloc((size_t)opts->products, sizeof *s->products);
    s->max_orders = opts->users * 4 < 10000 ? opts->users * 4 + 16 : 10000;
    s->orders = calloc((size_t)s->max_orders, sizeof *s->orders);
    if (!s->products || !s->orders) {
        oms_sim_free(s);
        return NULL;
    }
    for (int i = 0; i < opts->products; i++) {
        sim_product *p = &s->products[i];
        p->threshold = OMS_SIM_DEFAULT_THRESHOLD;
        p->quantity = 20 + rnd(s, 80);
        p->price = (double)(100 + rnd(s, 19900)) / 100.0;
        snprintf(p->name, sizeof p->name, "Product %d", i + 1);
    }
    return s;
}

void oms_sim_free(oms_sim *s)
{
    if (!s)
        return;
    free(s->products);
    free(s->orders);
    free(s);
}

uint64_t oms_sim_count(const oms_sim *s, oms_event_type t)
{
    return (unsigned)t < OMS_EV__COUNT ? s->counts[t] : 0;
}

static sim_slot *push(oms_sim *s, oms_event_type type)
{
    /* actions enqueue at most 1 + MAX_ITEMS + 1 events and run only when the
     * queue is empty, so it cannot overflow */
    sim_slot *slot = &s->queue[(s->qhead + s->qlen) % QUEUE_CAP];
    s->qlen++;
    memset(&slot->ev, 0, sizeof slot->ev);
    slot->ev.type = type;
    return slot;
}

static char *sput(sim_slot *slot, int i, const char *fmt, const char *a, long long b)
{
    snprintf(slot->s[i], STR_CAP, fmt, a ? a : "", b);
    return slot->s[i];
}

static char *scopy(sim_slot *slot, int i, const char *v)
{
    size_t n = strlen(v);
    if (n >= STR_CAP)
        n = STR_CAP - 1;
    memcpy(slot->s[i], v, n);
    slot->s[i][n] = '\0';
    return slot->s[i];
}

static const char *stock_status(const sim_product *p, int32_t before)
{
    return oms_sim_stock_status(before, p->quantity, p->threshold);
}

static void stock_change(oms_sim *s, int64_t product_id, int32_t delta)
{
    sim_product *p = &s->products[product_id - 1];
    int32_t before = p->quantity;
    p->quantity += delta;
    sim_slot *slot = push(s, OMS_EV_INVENTORY_CHANGED);
    oms_event *ev = &slot->ev;
    ev->product_id = product_id;
    ev->product_name = scopy(slot, 0, p->name);
    ev->quantity = p->quantity;
    ev->threshold = p->threshold;
    ev->delta = delta;
    ev->status = scopy(slot, 1, stock_status(p, before));
}

static void user_note(oms_sim *s, int64_t user_id, const char *title, const char *msg,
                      const char *order_id)
{
    sim_slot *slot = push(s, OMS_EV_USER_NOTIFICATION);
    slot->ev.user_id = user_id;
    slot->ev.title = scopy(slot, 0, title);
    slot->ev.message = scopy(slot, 1, msg);
    if (order_id)
        slot->ev.data_json = sput(slot, 2, "{\"orderId\":\"%s\"}", order_id, 0);
}

static void order_event(oms_sim *s, const sim_order *o, int prev_status)
{
    sim_slot *slot =
        push(s, prev_status < 0 ? OMS_EV_ORDER_CREATED : OMS_EV_ORDER_STATUS_CHANGED);
    oms_event *ev = &slot->ev;
    ev->order_id = scopy(slot, 0, o->order_id);
    ev->alias_id = scopy(slot, 1, o->alias_id);
    ev->user_id = o->user_id;
    ev->status = scopy(slot, 2, oms_sim_order_statuses[o->status]);
    if (prev_status < 0) {
        double total = 0;
        for (int i = 0; i < o->nitems; i++) {
            oms_order_item *it = &slot->items[i];
            it->product_id = o->items[i].product_id;
            it->quantity = o->items[i].quantity;
            it->price = o->items[i].price;
            it->product_name = slot->item_names[i];
            snprintf(slot->item_names[i], sizeof slot->item_names[i], "%s",
                     s->products[it->product_id - 1].name);
            total += it->price * it->quantity;
        }
        ev->items = slot->items;
        ev->nitems = (size_t)o->nitems;
        ev->total_amount = (double)(int64_t)(total * 100 + 0.5) / 100.0;
    } else {
        ev->previous_status = scopy(slot, 3, oms_sim_order_statuses[prev_status]);
        if (o->status == ST_CANCELLED)
            ev->message = scopy(slot, 4, "cancelled by customer");
    }
}

static void restock(oms_sim *s, int64_t product_id)
{
    stock_change(s, product_id, 50 + rnd(s, 100));
}

static void create_order(oms_sim *s)
{
    if (s->norders >= s->max_orders)
        return;
    sim_order *o = &s->orders[s->norders];
    memset(o, 0, sizeof *o);
    int want = 1 + rnd(s, MAX_ITEMS);
    for (int tries = 0; tries < want * 4 && o->nitems < want; tries++) {
        int64_t pid = 1 + rnd(s, s->o.products);
        sim_product *p = &s->products[pid - 1];
        int dup = 0;
        for (int i = 0; i < o->nitems; i++)
            dup |= o->items[i].product_id == pid;
        if (dup || p->quantity == 0)
            continue;
        int32_t q = 1 + rnd(s, 3);
        if (q > p->quantity)
            q = p->quantity;
        o->items[o->nitems++] = (sim_item){pid, q, p->price};
    }
    if (o->nitems == 0) {
        /* everything we tried is sold out: the warehouse restocks one */
        restock(s, 1 + rnd(s, s->o.products));
        return;
    }
    s->order_seq++;
    snprintf(o->order_id, sizeof o->order_id, "ord-%016llx", (unsigned long long)next_u64(s));
    snprintf(o->alias_id, sizeof o->alias_id, "ORD-%08llu", (unsigned long long)s->order_seq);
    o->user_id = 1 + rnd(s, s->o.users);
    o->status = ST_CREATED;
    s->norders++;
    order_event(s, o, -1);
    for (int i = 0; i < o->nitems; i++)
        stock_change(s, o->items[i].product_id, -o->items[i].quantity);
}

static void advance_order(oms_sim *s)
{
    int idx = rnd(s, s->norders);
    sim_order *o = &s->orders[idx];
    int prev = o->status;
    int r = rnd(s, 100);
    if (prev == ST_CREATED)
        o->status = r < 10 ? ST_CANCELLED : ST_CONFIRMED;
    else if (prev == ST_CONFIRMED)
        o->status = r < 5 ? ST_CANCELLED : ST_SHIPPED;
    else
        o->status = ST_DELIVERED;
    order_event(s, o, prev);
    if (o->status == ST_CANCELLED) {
        for (int i = 0; i < o->nitems; i++)
            stock_change(s, o->items[i].product_id, o->items[i].quantity);
    } else if (o->status == ST_SHIPPED) {
        user_note(s, o->user_id, "Order shipped", "Your order is on its way", o->order_id);
    } else if (o->status == ST_DELIVERED) {
        user_note(s, o->user_id, "Order delivered", "Your order has arrived", o->order_id);
    }
    if (o->status == ST_CANCELLED || o->status == ST_DELIVERED)
        s->orders[idx] = s->orders[--s->norders];
}

static void system_note(oms_sim *s)
{
    static const char *const notes[][3] = {
        {"Scheduled maintenance", "Checkout may be slow for a few minutes", "info"},
        {"Payment provider degraded", "Some payments are being retried", "warning"},
        {"New release", "The order service was upgraded", "info"},
    };
    int i = rnd(s, 3);
    sim_slot *slot = push(s, OMS_EV_SYSTEM_NOTIFICATION);
    slot->ev.title = scopy(slot, 0, notes[i][0]);
    slot->ev.message = scopy(slot, 1, notes[i][1]);
    slot->ev.severity = scopy(slot, 2, notes[i][2]);
}

static void step(oms_sim *s)
{
    int r = rnd(s, 100);
    if (r < 40 || s->norders == 0) {
        create_order(s);
    } else if (r < 88) {
        advance_order(s);
    } else if (r < 96) {
        /* restock the emptiest product if it is at or below its threshold */
        int64_t best = 1 + rnd(s, s->o.products);
        for (int k = 0; k < 4; k++) {
            int64_t pid = 1 + rnd(s, s->o.products);
            if (s->products[pid - 1].quantity < s->products[best - 1].quantity)
                best = pid;
        }
        if (s->products[best - 1].quantity <= s->products[best - 1].threshold)
            restock(s, best);
        else
            user_note(s, 1 + rnd(s, s->o.users), "Price drop",
                      "An item on your wishlist is cheaper", NULL);
    } else if (r < 98) {
        system_note(s);
    } else {
        user_note(s, 1 + rnd(s, s->o.users), "Welcome back", "See what is new in the shop",
                  NULL);
    }
}

const oms_event *oms_sim_next(oms_sim *s, int64_t now_ms)
{
    while (s->qlen == 0)
        step(s);
    /* the slot stays intact until the next call: a step runs only when the
     * queue is empty and fills at most 5 of its 16 slots after this one */
    sim_slot *slot = &s->queue[s->qhead];
    s->qhead = (s->qhead + 1) % QUEUE_CAP;
    s->qlen--;
    oms_event *ev = &slot->ev;
    ev->occurred_at = now_ms;
    oms_uuid7(now_ms, ev->event_id);
    ev->source = s->source;
    s->counts[ev->type]++;
    return ev;
}
