/* router.c — channel lists as arrays with swap-removal (each member knows
 * its index), a hash of user id → the user's connections, and filter
 * groups: a hash of normalized filter text → group, an index of (topic,
 * pivot field, value key) → the groups naming that value, and per topic the
 * groups without a pivot (comparisons only), tested for every event. */
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

/* Connections subscribed with one filter (same topic, same normalized text). */
typedef struct oms_fgroup {
    struct oms_fgroup *hnext; /* text hash chain */
    uint64_t hash;
    int topic; /* OMS_GW_F_* */
    oms_filter *f;
    vec members;
    int32_t idx_scan; /* in the topic's scan list, -1 when indexed */
    oms_filter_field pivot;
} oms_fgroup;

typedef struct gvec {
    oms_fgroup **v;
    int32_t n, cap;
} gvec;

/* The groups whose pivot (field) has a value of this key. */
typedef struct ientry {
    struct ientry *next;
    uint64_t key;
    int topic;
    oms_filter_field field;
    gvec groups;
} ientry;

struct oms_router {
    vec all;       /* every non-service connection: system notifications */
    vec orders;    /* staff/admin subscribed to orders, no filter */
    vec inventory; /* staff/admin subscribed to inventory, no filter */
    bucket *users; /* open addressing, linear probing, never shrinks */
    int32_t ucap, uused;
    /* filter groups */
    oms_fgroup **gtab; /* chains by text hash */
    size_t gcap, ngroups;
    ientry **itab; /* chains by key */
    size_t icap, nentries;
    gvec scan[2];
    int pivots[2][OMS_FF__COUNT]; /* groups per topic and pivot field */
    uint64_t evals;
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

static void group_leave(oms_router *r, oms_route *rt, int k);
static void set_filter(oms_route *rt, int k, oms_filter *f);

void oms_router_free(oms_router *r)
{
    if (!r)
        return;
    /* connections still in (the owner did not remove them): their groups
     * and filter references go */
    for (int32_t i = 0; i < r->all.n; i++)
        for (int k = 0; k < 2; k++) {
            group_leave(r, r->all.v[i], k);
            set_filter(r->all.v[i], k, NULL);
        }
    free(r->gtab);
    free(r->itab);
    free(r->scan[0].v);
    free(r->scan[1].v);
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

/* ---- filter groups ------------------------------------------------------------------ */

static int32_t *idx_gorders(oms_route *rt) { return &rt->idx_group[OMS_GW_F_ORDERS]; }
static int32_t *idx_ginventory(oms_route *rt) { return &rt->idx_group[OMS_GW_F_INVENTORY]; }

static uint64_t text_hash(int topic, const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull ^ (uint64_t)topic;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ull;
    }
    return h;
}

static int gvec_push(gvec *v, oms_fgroup *g)
{
    if (v->n == v->cap) {
        int32_t cap = v->cap ? v->cap * 2 : 4;
        oms_fgroup **nv = realloc(v->v, (size_t)cap * sizeof *nv);
        if (!nv)
            return OMS_ENOMEM;
        v->v = nv;
        v->cap = cap;
    }
    v->v[v->n++] = g;
    return OMS_OK;
}

/* the text table doubles at a load of 1 */
static int group_rehash(oms_router *r)
{
    if (r->ngroups < r->gcap)
        return OMS_OK;
    size_t ncap = r->gcap ? r->gcap * 2 : 64;
    oms_fgroup **nt = calloc(ncap, sizeof *nt);
    if (!nt)
        return OMS_ENOMEM;
    for (size_t i = 0; i < r->gcap; i++)
        for (oms_fgroup *g = r->gtab[i], *next; g; g = next) {
            next = g->hnext;
            g->hnext = nt[g->hash & (ncap - 1)];
            nt[g->hash & (ncap - 1)] = g;
        }
    free(r->gtab);
    r->gtab = nt;
    r->gcap = ncap;
    return OMS_OK;
}

static uint64_t ikey(uint64_t key, int topic, oms_filter_field field)
{
    return key ^ ((uint64_t)topic << 62) ^ (uint64_t)field * 0x9e3779b97f4a7c15ull;
}

static ientry *index_find(const oms_router *r, int topic, oms_filter_field field, uint64_t key)
{
    if (!r->icap)
        return NULL;
    for (ientry *e = r->itab[ikey(key, topic, field) & (r->icap - 1)]; e; e = e->next)
        if (e->key == key && e->topic == topic && e->field == field)
            return e;
    return NULL;
}

static int index_rehash(oms_router *r)
{
    if (r->nentries < r->icap)
        return OMS_OK;
    size_t ncap = r->icap ? r->icap * 2 : 64;
    ientry **nt = calloc(ncap, sizeof *nt);
    if (!nt)
        return OMS_ENOMEM;
    for (size_t i = 0; i < r->icap; i++)
        for (ientry *e = r->itab[i], *next; e; e = next) {
            next = e->next;
            size_t b = ikey(e->key, e->topic, e->field) & (ncap - 1);
            e->next = nt[b];
            nt[b] = e;
        }
    free(r->itab);
    r->itab = nt;
    r->icap = ncap;
    return OMS_OK;
}

static int index_add(oms_router *r, oms_fgroup *g, uint64_t key)
{
    ientry *e = index_find(r, g->topic, g->pivot, key);
    if (!e) {
        if (index_rehash(r) != OMS_OK || !(e = calloc(1, sizeof *e)))
            return OMS_ENOMEM;
        e->key = key;
        e->topic = g->topic;
        e->field = g->pivot;
        size_t b = ikey(key, g->topic, g->pivot) & (r->icap - 1);
        e->next = r->itab[b];
        r->itab[b] = e;
        r->nentries++;
    }
    return gvec_push(&e->groups, g);
}

static void index_del(oms_router *r, oms_fgroup *g, uint64_t key)
{
    if (!r->icap)
        return;
    size_t b = ikey(key, g->topic, g->pivot) & (r->icap - 1);
    for (ientry **pe = &r->itab[b]; *pe; pe = &(*pe)->next) {
        ientry *e = *pe;
        if (e->key != key || e->topic != g->topic || e->field != g->pivot)
            continue;
        for (int32_t i = 0; i < e->groups.n; i++)
            if (e->groups.v[i] == g) {
                e->groups.v[i] = e->groups.v[--e->groups.n];
                break;
            }
        if (e->groups.n == 0) {
            *pe = e->next;
            free(e->groups.v);
            free(e);
            r->nentries--;
        }
        return;
    }
}

static void group_unlink(oms_router *r, oms_fgroup *g)
{
    const uint64_t *keys;
    size_t nkeys;
    oms_filter_field field;
    if (g->idx_scan >= 0) {
        gvec *sv = &r->scan[g->topic];
        oms_fgroup *last = sv->v[--sv->n];
        sv->v[g->idx_scan] = last;
        last->idx_scan = g->idx_scan;
        g->idx_scan = -1;
    } else if (oms_filter_pivot(g->f, &field, &keys, &nkeys)) {
        for (size_t i = 0; i < nkeys; i++)
            index_del(r, g, keys[i]);
        r->pivots[g->topic][field]--;
    }
}

static void group_free(oms_router *r, oms_fgroup *g)
{
    for (oms_fgroup **pg = &r->gtab[g->hash & (r->gcap - 1)]; *pg; pg = &(*pg)->hnext)
        if (*pg == g) {
            *pg = g->hnext;
            break;
        }
    r->ngroups--;
    group_unlink(r, g);
    oms_filter_unref(g->f);
    free(g->members.v);
    free(g);
}

/* The group of f on topic k, made when there is none. NULL: out of memory. */
static oms_fgroup *group_get(oms_router *r, int k, oms_filter *f)
{
    const char *text = oms_filter_text(f);
    uint64_t h = text_hash(k, text);
    if (r->gcap)
        for (oms_fgroup *g = r->gtab[h & (r->gcap - 1)]; g; g = g->hnext)
            if (g->hash == h && g->topic == k && strcmp(oms_filter_text(g->f), text) == 0)
                return g;
    if (group_rehash(r) != OMS_OK)
        return NULL;
    oms_fgroup *g = calloc(1, sizeof *g);
    if (!g)
        return NULL;
    g->hash = h;
    g->topic = k;
    g->f = oms_filter_ref(f);
    g->idx_scan = -1;
    const uint64_t *keys;
    size_t nkeys;
    int rc = OMS_OK;
    if (oms_filter_pivot(f, &g->pivot, &keys, &nkeys)) {
        size_t i = 0;
        for (; i < nkeys && rc == OMS_OK; i++)
            rc = index_add(r, g, keys[i]);
        if (rc != OMS_OK) {
            while (i-- > 0)
                index_del(r, g, keys[i]);
        } else {
            r->pivots[k][g->pivot]++;
        }
    } else {
        g->idx_scan = r->scan[k].n;
        rc = gvec_push(&r->scan[k], g);
    }
    if (rc != OMS_OK) {
        oms_filter_unref(g->f);
        free(g);
        return NULL;
    }
    g->hnext = r->gtab[h & (r->gcap - 1)];
    r->gtab[h & (r->gcap - 1)] = g;
    r->ngroups++;
    return g;
}

static void group_leave(oms_router *r, oms_route *rt, int k)
{
    oms_fgroup *g = rt->group[k];
    if (!g)
        return;
    vec_remove(&g->members, rt, k == OMS_GW_F_ORDERS ? idx_gorders : idx_ginventory);
    rt->group[k] = NULL;
    if (g->members.n == 0)
        group_free(r, g);
}

static int group_join(oms_router *r, oms_route *rt, int k, oms_filter *f)
{
    oms_fgroup *g = group_get(r, k, f);
    if (!g)
        return OMS_ENOMEM;
    if (vec_push(&g->members, rt, &rt->idx_group[k])) {
        if (g->members.n == 0)
            group_free(r, g);
        return OMS_ENOMEM;
    }
    rt->group[k] = g;
    return OMS_OK;
}

static void set_filter(oms_route *rt, int k, oms_filter *f)
{
    if (rt->filter[k] == f)
        return;
    oms_filter_unref(rt->filter[k]);
    rt->filter[k] = oms_filter_ref(f);
}

/* Put rt in the subscription lists its subs call for, take it out of others. */
static int place_subs(oms_router *r, oms_route *rt, const oms_session *s)
{
    unsigned subs = s->subs;
    static const unsigned bits[2] = {OMS_SUB_ORDERS, OMS_SUB_INVENTORY};
    vec *plain[2] = {&r->orders, &r->inventory};
    idx_of plain_idx[2] = {idx_orders, idx_inventory};
    for (int k = 0; k < 2; k++) {
        oms_filter *f = (subs & bits[k]) ? s->filter[k] : NULL;
        set_filter(rt, k, f);
        bool want = staff(rt->role) && (subs & bits[k]);
        bool want_plain = want && !f;
        int32_t *ip = plain_idx[k](rt);
        if (!want_plain && *ip >= 0)
            vec_remove(plain[k], rt, plain_idx[k]);
        /* a group of the same text is the same group */
        oms_fgroup *g = rt->group[k];
        bool same = g && want && f && strcmp(oms_filter_text(g->f), oms_filter_text(f)) == 0;
        if (g && !same)
            group_leave(r, rt, k);
        if (want_plain && *ip < 0 && vec_push(plain[k], rt, ip))
            return OMS_ENOMEM;
        if (want && f && !same && group_join(r, rt, k, f))
            return OMS_ENOMEM;
    }
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
    rt->idx_group[0] = rt->idx_group[1] = -1;
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
    if (place_subs(r, rt, s)) {
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
    return place_subs(r, rt, s);
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
    for (int k = 0; k < 2; k++) {
        group_leave(r, rt, k);
        set_filter(rt, k, NULL);
    }
    rt->bucket = -1;
    rt->in_router = 0;
}

/* Every member of the groups of topic k that pass the event. */
static size_t dispatch_groups(oms_router *r, int k, const oms_filter_view *v, oms_router_fn fn,
                              void *ud)
{
    size_t n = 0;
    if (!v)
        return 0;
    for (int field = 0; field < OMS_FF__COUNT; field++) {
        uint64_t key;
        if (!r->pivots[k][field] || !oms_filter_key((oms_filter_field)field, v, &key))
            continue;
        ientry *e = index_find(r, k, (oms_filter_field)field, key);
        for (int32_t i = 0; e && i < e->groups.n; i++) {
            oms_fgroup *g = e->groups.v[i];
            r->evals++;
            if (!oms_filter_match(g->f, v))
                continue;
            for (int32_t j = 0; j < g->members.n; j++, n++)
                fn(g->members.v[j]->conn, ud);
        }
    }
    for (int32_t i = 0; i < r->scan[k].n; i++) {
        oms_fgroup *g = r->scan[k].v[i];
        r->evals++;
        if (!oms_filter_match(g->f, v))
            continue;
        for (int32_t j = 0; j < g->members.n; j++, n++)
            fn(g->members.v[j]->conn, ud);
    }
    return n;
}

size_t oms_router_dispatch_view(oms_router *r, oms_event_type type, int64_t user_id,
                                const oms_filter_view *v, oms_router_fn fn, void *ud)
{
    size_t n = 0;
    switch (type) {
    case OMS_EV_ORDER_CREATED:
    case OMS_EV_ORDER_STATUS_CHANGED: {
        for (int32_t i = 0; i < r->orders.n; i++, n++)
            fn(r->orders.v[i]->conn, ud);
        n += dispatch_groups(r, OMS_GW_F_ORDERS, v, fn, ud);
        /* customers see their own orders; staff of that id are already above */
        int32_t b = user_id ? find_bucket(r, user_id) : -1;
        const oms_filter *last = NULL; /* a user's connections often share a filter */
        bool last_ok = false;
        for (int32_t i = 0; b >= 0 && i < r->users[b].members.n; i++) {
            oms_route *rt = r->users[b].members.v[i];
            if (rt->role != OMS_ROLE_CUSTOMER || !(rt->subs & OMS_SUB_ORDERS))
                continue;
            const oms_filter *f = rt->filter[OMS_GW_F_ORDERS];
            if (f) {
                if (!v)
                    continue;
                if (f != last && (!last || strcmp(oms_filter_text(f), oms_filter_text(last)))) {
                    r->evals++;
                    last_ok = oms_filter_match(f, v);
                }
                last = f;
                if (!last_ok)
                    continue;
            }
            fn(rt->conn, ud);
            n++;
        }
        break;
    }
    case OMS_EV_INVENTORY_CHANGED:
        for (int32_t i = 0; i < r->inventory.n; i++, n++)
            fn(r->inventory.v[i]->conn, ud);
        n += dispatch_groups(r, OMS_GW_F_INVENTORY, v, fn, ud);
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

size_t oms_router_dispatch(const oms_router *r, oms_event_type type, int64_t user_id,
                           oms_router_fn fn, void *ud)
{
    /* without fields no filter is evaluated: nothing is written */
    return oms_router_dispatch_view((oms_router *)r, type, user_id, NULL, fn, ud);
}

size_t oms_router_filter_groups(const oms_router *r)
{
    return r->ngroups;
}

uint64_t oms_router_filter_evals(const oms_router *r)
{
    return r->evals;
}

size_t oms_router_size(const oms_router *r)
{
    return (size_t)r->all.n;
}
