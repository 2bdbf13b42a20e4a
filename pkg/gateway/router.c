/* router.c — channel lists as arrays with swap-removal (each member knows
 * its index), and a hash of user id → the user's connections. */
#include "gateway/router.h"

#include <stdlib.h>
#include <string.h>

typedef struct vec {
    oms_route **v;
    int32_t n, cap;
} vec;

typedef struct bucket {
    int64_t user_id; /* 0: free slot */
    vec members;
} bucket;

struct oms_router {
    vec all;       /* every non-service connection: system notifications */
    vec orders;    /* staff/admin subscribed to orders */
    vec inventory; /* staff/admin subscribed to inventory */
    bucket *users; /* open addressing, linear probing, never shrinks */
    int32_t ucap, uused;
};

static int vec_push(vec *v, oms_route *rt, int32_t *idx)
{
    if (v->n == v->cap) {
        int32_t cap = v->cap ? v->cap * 2 : 16;
        oms_route **nv = realloc(v->v, (size_t)cap * sizeof *nv);
        if (!nv)
            return OMS_ENOMEM;
        v->v = nv;
        v->cap = cap;
    }
    *idx = v->n;
    v->v[v->n++] = rt;
    return OMS_OK;
}

/* which index field of a route tracks its place in v */
typedef int32_t *(*idx_of)(oms_route *rt);
static int32_t *idx_all(oms_route *rt) { return &rt->idx_all; }
static int32_t *idx_orders(oms_route *rt) { return &rt->idx_orders; }
static int32_t *idx_inventory(oms_route *rt) { return &rt->idx_inventory; }
static int32_t *idx_user(oms_route *rt) { return &rt->idx_user; }

static void vec_remove(vec *v, oms_route *rt, idx_of field)
{
    int32_t i = *field(rt);
    if (i < 0 || i >= v->n || v->v[i] != rt)
        return;
    oms_route *last = v->v[--v->n];
    v->v[i] = last;
    *field(last) = i;
    *field(rt) = -1;
}

oms_router *oms_router_new(void)
{
    oms_router *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->ucap = 64;
    r->users = calloc((size_t)r->ucap, sizeof *r->users);
    if (!r->users) {
        free(r);
        return NULL;
    }
    return r;
}

void oms_router_free(oms_router *r)
{
    if (!r)
        return;
    free(r->all.v);
    free(r->orders.v);
    free(r->inventory.v);
    for (int32_t i = 0; i < r->ucap; i++)
        free(r->users[i].members.v);
    free(r->users);
    free(r);
}

static uint32_t hash64(int64_t k)
{
    uint64_t x = (uint64_t)k;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return (uint32_t)x;
}

static int32_t find_bucket(const oms_router *r, int64_t user_id)
{
    uint32_t mask = (uint32_t)r->ucap - 1;
    for (uint32_t i = hash64(user_id) & mask, n = 0; n < (uint32_t)r->ucap; i = (i + 1) & mask, n++) {
        if (r->users[i].user_id == user_id)
            return (int32_t)i;
        if (r->users[i].user_id == 0)
            return -1;
    }
    return -1;
}

static int grow_users(oms_router *r)
{
    int32_t ncap = r->ucap * 2;
    bucket *nb = calloc((size_t)ncap, sizeof *nb);
    if (!nb)
        return OMS_ENOMEM;
    uint32_t mask = (uint32_t)ncap - 1;
    for (int32_t i = 0; i < r->ucap; i++) {
        bucket *b = &r->users[i];
        if (!b->user_id)
            continue;
        uint32_t j = hash64(b->user_id) & mask;
        while (nb[j].user_id)
            j = (j + 1) & mask;
        nb[j] = *b;
        for (int32_t k = 0; k < b->members.n; k++)
            b->members.v[k]->bucket = (int32_t)j;
    }
    free(r->users);
    r->users = nb;
    r->ucap = ncap;
    return OMS_OK;
}

static int32_t bucket_for(oms_router *r, int64_t user_id)
{
    int32_t b = find_bucket(r, user_id);
    if (b >= 0)
        return b;
    if ((r->uused + 1) * 4 > r->ucap * 3 && grow_users(r) != OMS_OK)
        return -1;
    uint32_t mask = (uint32_t)r->ucap - 1, i = hash64(user_id) & mask;
    while (r->users[i].user_id)
        i = (i + 1) & mask;
    r->users[i].user_id = user_id;
    r->uused++;
    return (int32_t)i;
}

static bool staff(oms_role role)
{
    return role == OMS_ROLE_STAFF || role == OMS_ROLE_ADMIN;
}

/* Put rt in the subscription lists its subs call for, take it out of others. */
static int place_subs(oms_router *r, oms_route *rt, unsigned subs)
{
    bool want_orders = staff(rt->role) && (subs & OMS_SUB_ORDERS);
    bool want_inv = staff(rt->role) && (subs & OMS_SUB_INVENTORY);
    if (want_orders && rt->idx_orders < 0 && vec_push(&r->orders, rt, &rt->idx_orders))
        return OMS_ENOMEM;
    if (!want_orders && rt->idx_orders >= 0)
        vec_remove(&r->orders, rt, idx_orders);
    if (want_inv && rt->idx_inventory < 0 && vec_push(&r->inventory, rt, &rt->idx_inventory))
        return OMS_ENOMEM;
    if (!want_inv && rt->idx_inventory >= 0)
        vec_remove(&r->inventory, rt, idx_inventory);
    rt->subs = subs;
    return OMS_OK;
}

int oms_router_add(oms_router *r, oms_route *rt, void *conn, const oms_session *s)
{
    memset(rt, 0, sizeof *rt);
    rt->conn = conn;
    rt->user_id = s->who.user_id;
    rt->role = s->who.role;
    rt->idx_all = rt->idx_orders = rt->idx_inventory = rt->idx_user = rt->bucket = -1;
    if (rt->role == OMS_ROLE_SERVICE) {
        rt->in_router = 1; /* receives nothing, but is counted */
        return OMS_OK;
    }
    if (vec_push(&r->all, rt, &rt->idx_all))
        return OMS_ENOMEM;
    rt->in_router = 1;
    if (rt->user_id != 0) {
        int32_t b = bucket_for(r, rt->user_id);
        if (b < 0 || vec_push(&r->users[b].members, rt, &rt->idx_user)) {
            oms_router_remove(r, rt);
            return OMS_ENOMEM;
        }
        rt->bucket = b;
    }
    if (place_subs(r, rt, s->subs)) {
        oms_router_remove(r, rt);
        return OMS_ENOMEM;
    }
    return OMS_OK;
}

int oms_router_update(oms_router *r, oms_route *rt, const oms_session *s)
{
    if (!rt->in_router || rt->role == OMS_ROLE_SERVICE) {
        rt->subs = s->subs;
        return OMS_OK;
    }
    return place_subs(r, rt, s->subs);
}

void oms_router_remove(oms_router *r, oms_route *rt)
{
    if (!rt->in_router)
        return;
    vec_remove(&r->all, rt, idx_all);
    vec_remove(&r->orders, rt, idx_orders);
    vec_remove(&r->inventory, rt, idx_inventory);
    if (rt->bucket >= 0)
        vec_remove(&r->users[rt->bucket].members, rt, idx_user);
    rt->bucket = -1;
    rt->in_router = 0;
}

size_t oms_router_dispatch(const oms_router *r, oms_event_type type, int64_t user_id,
                           oms_router_fn fn, void *ud)
{
    size_t n = 0;
    switch (type) {
    case OMS_EV_ORDER_CREATED:
    case OMS_EV_ORDER_STATUS_CHANGED: {
        for (int32_t i = 0; i < r->orders.n; i++, n++)
            fn(r->orders.v[i]->conn, ud);
        /* customers see their own orders; staff of that id are already above */
        int32_t b = user_id ? find_bucket(r, user_id) : -1;
        for (int32_t i = 0; b >= 0 && i < r->users[b].members.n; i++) {
            oms_route *rt = r->users[b].members.v[i];
            if (rt->role == OMS_ROLE_CUSTOMER && (rt->subs & OMS_SUB_ORDERS)) {
                fn(rt->conn, ud);
                n++;
            }
        }
        break;
    }
    case OMS_EV_INVENTORY_CHANGED:
        for (int32_t i = 0; i < r->inventory.n; i++, n++)
            fn(r->inventory.v[i]->conn, ud);
        break;
    case OMS_EV_USER_NOTIFICATION: {
        int32_t b = user_id ? find_bucket(r, user_id) : -1;
        for (int32_t i = 0; b >= 0 && i < r->users[b].members.n; i++, n++)
            fn(r->users[b].members.v[i]->conn, ud);
        break;
    }
    case OMS_EV_SYSTEM_NOTIFICATION:
        for (int32_t i = 0; i < r->all.n; i++, n++)
            fn(r->all.v[i]->conn, ud);
        break;
    default:
        break;
    }
    return n;
}

size_t oms_router_size(const oms_router *r)
{
    return (size_t)r->all.n;
}
