/* fold.c — the pure part of the projections: the SQL of the read models and
 * the fold of a batch of events into one multi-row statement per kind of
 * change (unnest of array parameters: one round trip per statement, not per
 * event). No I/O. */
#include <inttypes.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json/json.h"
#include "pg/pg_internal.h"

/* Every guard compares (pos_partition, pos_offset): the events of one order
 * (key orderId) or one product (key productId) share a partition, so a row
 * only moves forward and a replayed event changes nothing. Timestamps travel
 * as epoch milliseconds. */
const char *const pg_query_sql[PG_Q__COUNT] = {
    [PG_Q_ORDERS_PRE] =
        "UPDATE orders AS o SET status = u.status, updated_at = to_timestamp(u.ts::float8 / 1000), "
        "position = u.pos, pos_partition = u.p, pos_offset = u.o "
        "FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::int[], $6::bigint[]) "
        "AS u(order_id, status, ts, pos, p, o) "
        "WHERE o.order_id = u.order_id AND (o.pos_partition, o.pos_offset) < (u.p, u.o)",
    /* A replayed event adds no second history row (ON CONFLICT on the
     * primary key: always checked through its index, whatever the plan). */
    [PG_Q_HISTORY_PRE] =
        "INSERT INTO order_status_history (order_id, status, occurred_at, position, event_id) "
        "SELECT u.order_id, u.status, to_timestamp(u.ts::float8 / 1000), u.pos, u.eid "
        "FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::uuid[]) "
        "AS u(order_id, status, ts, pos, eid) "
        "ON CONFLICT (order_id, position) DO NOTHING",
    [PG_Q_ORDERS] =
        "INSERT INTO orders (order_id, alias_id, user_id, status, total_amount, items, "
        "created_at, updated_at, position, pos_partition, pos_offset) "
        "SELECT u.order_id, u.alias_id, u.user_id, u.status, u.total::numeric, u.items, "
        "to_timestamp(u.cts::float8 / 1000), to_timestamp(u.uts::float8 / 1000), u.pos, u.p, u.o "
        "FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::float8[], "
        "$6::jsonb[], $7::bigint[], $8::bigint[], $9::text[], $10::int[], $11::bigint[]) "
        "AS u(order_id, alias_id, user_id, status, total, items, cts, uts, pos, p, o) "
        "ON CONFLICT (order_id) DO UPDATE SET alias_id = EXCLUDED.alias_id, "
        "user_id = EXCLUDED.user_id, status = EXCLUDED.status, "
        "total_amount = EXCLUDED.total_amount, items = EXCLUDED.items, "
        "created_at = EXCLUDED.created_at, updated_at = EXCLUDED.updated_at, "
        "position = EXCLUDED.position, pos_partition = EXCLUDED.pos_partition, "
        "pos_offset = EXCLUDED.pos_offset "
        "WHERE (orders.pos_partition, orders.pos_offset) < "
        "(EXCLUDED.pos_partition, EXCLUDED.pos_offset)",
    [PG_Q_HISTORY] =
        "INSERT INTO order_status_history (order_id, status, occurred_at, position, event_id) "
        "SELECT u.order_id, u.status, to_timestamp(u.ts::float8 / 1000), u.pos, u.eid "
        "FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::uuid[]) "
        "AS u(order_id, status, ts, pos, eid) "
        "ON CONFLICT (order_id, position) DO NOTHING",
    [PG_Q_INVENTORY] =
        "INSERT INTO inventory (product_id, product_name, quantity, threshold, status, "
        "updated_at, position, pos_partition, pos_offset) "
        "SELECT u.id, u.name, u.qty, u.thr, u.status, to_timestamp(u.ts::float8 / 1000), u.pos, u.p, "
        "u.o FROM unnest($1::bigint[], $2::text[], $3::int[], $4::int[], $5::text[], "
        "$6::bigint[], $7::text[], $8::int[], $9::bigint[]) "
        "AS u(id, name, qty, thr, status, ts, pos, p, o) "
        "ON CONFLICT (product_id) DO UPDATE SET product_name = EXCLUDED.product_name, "
        "quantity = EXCLUDED.quantity, threshold = EXCLUDED.threshold, "
        "status = EXCLUDED.status, updated_at = EXCLUDED.updated_at, "
        "position = EXCLUDED.position, pos_partition = EXCLUDED.pos_partition, "
        "pos_offset = EXCLUDED.pos_offset "
        "WHERE (inventory.pos_partition, inventory.pos_offset) < "
        "(EXCLUDED.pos_partition, EXCLUDED.pos_offset)",
    [PG_Q_NOTIFICATIONS] =
        "INSERT INTO notifications (event_id, kind, user_id, title, message, severity, data, "
        "occurred_at, position, pos_partition, pos_offset) "
        "SELECT u.eid, u.kind, u.uid, u.title, u.msg, u.sev, u.data, "
        "to_timestamp(u.ts::float8 / 1000), u.pos, u.p, u.o "
        "FROM unnest($1::uuid[], $2::text[], $3::bigint[], $4::text[], $5::text[], "
        "$6::text[], $7::jsonb[], $8::bigint[], $9::text[], $10::int[], $11::bigint[]) "
        "AS u(eid, kind, uid, title, msg, sev, data, ts, pos, p, o) "
        "ON CONFLICT (event_id) DO UPDATE SET kind = EXCLUDED.kind, user_id = EXCLUDED.user_id, "
        "title = EXCLUDED.title, message = EXCLUDED.message, severity = EXCLUDED.severity, "
        "data = EXCLUDED.data, occurred_at = EXCLUDED.occurred_at, "
        "position = EXCLUDED.position, pos_partition = EXCLUDED.pos_partition, "
        "pos_offset = EXCLUDED.pos_offset "
        "WHERE (notifications.pos_partition, notifications.pos_offset) < "
        "(EXCLUDED.pos_partition, EXCLUDED.pos_offset)",
    [PG_Q_OFFSETS_ADVANCE] =
        "SELECT oms_offsets_advance($1, $2::text[], $3::int[], $4::bigint[], $5::bigint[])",
    [PG_Q_OFFSETS_READ] =
        "SELECT topic, partition, next_offset FROM oms_offsets "
        "WHERE group_id = $1 AND (topic, partition) IN "
        "(SELECT t, p FROM unnest($2::text[], $3::int[]) AS u(t, p))",
};

const int pg_query_nparams[PG_Q__COUNT] = {
    [PG_Q_ORDERS_PRE] = 6,    [PG_Q_HISTORY_PRE] = 5,  [PG_Q_ORDERS] = 11,
    [PG_Q_HISTORY] = 5,       [PG_Q_INVENTORY] = 9,    [PG_Q_NOTIFICATIONS] = 11,
    [PG_Q_OFFSETS_ADVANCE] = 5, [PG_Q_OFFSETS_READ] = 3,
};

/* A float8 total becomes numeric with 15 significant digits (float8_numeric),
 * what people typed: 99.99, not 99.989999999999995. */
const pg_type pg_fold_types[PG_FOLD_COUNT][PG_MAX_COLS] = {
    [PG_Q_ORDERS_PRE] = {PG_T_TEXT, PG_T_TEXT, PG_T_INT8, PG_T_TEXT, PG_T_INT4, PG_T_INT8},
    [PG_Q_HISTORY_PRE] = {PG_T_TEXT, PG_T_TEXT, PG_T_INT8, PG_T_TEXT, PG_T_UUID},
    [PG_Q_ORDERS] = {PG_T_TEXT, PG_T_TEXT, PG_T_INT8, PG_T_TEXT, PG_T_FLOAT8, PG_T_JSONB,
                     PG_T_INT8, PG_T_INT8, PG_T_TEXT, PG_T_INT4, PG_T_INT8},
    [PG_Q_HISTORY] = {PG_T_TEXT, PG_T_TEXT, PG_T_INT8, PG_T_TEXT, PG_T_UUID},
    [PG_Q_INVENTORY] = {PG_T_INT8, PG_T_TEXT, PG_T_INT4, PG_T_INT4, PG_T_TEXT, PG_T_INT8,
                        PG_T_TEXT, PG_T_INT4, PG_T_INT8},
    [PG_Q_NOTIFICATIONS] = {PG_T_UUID, PG_T_TEXT, PG_T_INT8, PG_T_TEXT, PG_T_TEXT, PG_T_TEXT,
                            PG_T_JSONB, PG_T_INT8, PG_T_TEXT, PG_T_INT4, PG_T_INT8},
};

/* ---- text buffers and binary arrays --------------------------------------------------- */

void pg_sb_add(pg_sb *b, const char *s, size_t len)
{
    if (b->oom)
        return;
    if (b->len + len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (b->len + len + 1 > cap)
            cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, len);
    b->len += len;
    b->s[b->len] = '\0';
}

void pg_sb_free(pg_sb *b)
{
    free(b->s);
    memset(b, 0, sizeof *b);
}

#define ARRAY_HEADER 20 /* ndim, flags, element type, length, lower bound */

static const uint32_t elem_oid[] = {
    [PG_T_TEXT] = 25, [PG_T_INT8] = 20,   [PG_T_INT4] = 23,
    [PG_T_FLOAT8] = 701, [PG_T_UUID] = 2950, [PG_T_JSONB] = 3802,
};

static void be32(unsigned char *b, uint32_t v)
{
    b[0] = (unsigned char)(v >> 24);
    b[1] = (unsigned char)(v >> 16);
    b[2] = (unsigned char)(v >> 8);
    b[3] = (unsigned char)v;
}

static void put32(pg_array *a, uint32_t v)
{
    unsigned char b[4];
    be32(b, v);
    pg_sb_add(&a->sb, (const char *)b, 4);
}

static void put64(pg_array *a, uint64_t v)
{
    put32(a, (uint32_t)(v >> 32));
    put32(a, (uint32_t)v);
}

void pg_array_reset(pg_array *a, pg_type type)
{
    static const char zero[ARRAY_HEADER];
    a->sb.len = 0;
    a->sb.oom = false;
    a->n = 0;
    a->type = type;
    a->has_null = false;
    a->bad = false;
    pg_sb_add(&a->sb, zero, sizeof zero);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" into 16 bytes. */
static bool parse_uuid(const char *s, unsigned char out[16])
{
    size_t k = 0;
    for (const char *p = s; *p; p++) {
        if (*p == '-')
            continue;
        int hi = hexval(p[0]), lo = p[1] ? hexval(p[1]) : -1;
        if (hi < 0 || lo < 0 || k == 16)
            return false;
        out[k++] = (unsigned char)(hi << 4 | lo);
        p++;
    }
    return k == 16;
}

void pg_array_str(pg_array *a, const char *s)
{
    a->n++;
    if (!s) {
        a->has_null = true;
        put32(a, 0xFFFFFFFFu); /* length -1: NULL */
        return;
    }
    size_t len = strlen(s);
    switch (a->type) {
    case PG_T_UUID: {
        unsigned char u[16];
        if (!parse_uuid(s, u)) {
            a->bad = true;
            return;
        }
        put32(a, 16);
        pg_sb_add(&a->sb, (const char *)u, 16);
        return;
    }
    case PG_T_JSONB:
        put32(a, (uint32_t)len + 1);
        pg_sb_add(&a->sb, "\1", 1); /* jsonb_recv: version 1, then the text */
        pg_sb_add(&a->sb, s, len);
        return;
    case PG_T_TEXT:
        put32(a, (uint32_t)len);
        pg_sb_add(&a->sb, s, len);
        return;
    default:
        a->bad = true; /* a string for a number column: a bug */
        return;
    }
}

void pg_array_i64(pg_array *a, int64_t v)
{
    a->n++;
    if (a->type == PG_T_INT4) {
        put32(a, 4);
        put32(a, (uint32_t)(int32_t)v);
    } else if (a->type == PG_T_INT8) {
        put32(a, 8);
        put64(a, (uint64_t)v);
    } else {
        a->bad = true;
    }
}

void pg_array_dbl(pg_array *a, double v)
{
    a->n++;
    if (a->type != PG_T_FLOAT8) {
        a->bad = true;
        return;
    }
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    put32(a, 8);
    put64(a, bits);
}

const char *pg_array_bytes(pg_array *a, int *len)
{
    if (a->sb.len < ARRAY_HEADER)
        pg_array_reset(a, a->type);
    if (a->sb.oom || a->bad || a->sb.len > INT32_MAX || a->n > INT32_MAX)
        return NULL;
    unsigned char *h = (unsigned char *)a->sb.s;
    be32(h, a->n ? 1 : 0);
    be32(h + 4, a->has_null ? 1 : 0);
    be32(h + 8, elem_oid[a->type]);
    be32(h + 12, (uint32_t)a->n);
    be32(h + 16, 1);
    /* an empty array has no dimensions: the header ends after the type */
    *len = a->n ? (int)a->sb.len : 12;
    return a->sb.s;
}

void pg_array_free(pg_array *a)
{
    pg_sb_free(&a->sb);
    a->n = 0;
}

void pg_params_text(pg_params *p, const char *s)
{
    if (p->n >= PG_MAX_PARAMS)
        return;
    p->values[p->n] = s;
    p->lengths[p->n] = 0;
    p->formats[p->n] = 0;
    p->n++;
}

bool pg_params_array(pg_params *p, pg_array *a)
{
    int len = 0;
    const char *b = pg_array_bytes(a, &len);
    if (!b || p->n >= PG_MAX_PARAMS)
        return false;
    p->values[p->n] = b;
    p->lengths[p->n] = len;
    p->formats[p->n] = 1;
    p->n++;
    return true;
}

int pg_cursor_arrays(const oms_pg_cursor *cur, size_t n, pg_array out[4])
{
    static const pg_type types[4] = {PG_T_TEXT, PG_T_INT4, PG_T_INT8, PG_T_INT8};
    for (int i = 0; i < 4; i++)
        pg_array_reset(&out[i], types[i]);
    for (size_t i = 0; i < n; i++) {
        pg_array_str(&out[0], cur[i].topic);
        pg_array_i64(&out[1], cur[i].partition);
        pg_array_i64(&out[2], cur[i].expected);
        pg_array_i64(&out[3], cur[i].next);
    }
    int len;
    for (int i = 0; i < 4; i++)
        if (!pg_array_bytes(&out[i], &len))
            return OMS_ENOMEM;
    return OMS_OK;
}

void pg_position(const oms_pg_record *r, char *buf, size_t len)
{
    snprintf(buf, len, "%s:%d:%" PRId64, r->topic, (int)r->partition, r->offset);
}

/* ---- a small hash map: key bytes (borrowed) -> index ---------------------------------- */

typedef struct fent {
    const char *k;
    size_t klen;
    size_t v;
} fent;

typedef struct fmap {
    fent *e;
    size_t mask;
} fmap;

static int fmap_init(fmap *m, size_t n)
{
    size_t cap = 16;
    while (cap < 2 * n + 2)
        cap *= 2;
    m->e = calloc(cap, sizeof *m->e);
    m->mask = cap - 1;
    return m->e ? OMS_OK : OMS_ENOMEM;
}

static uint64_t fnv1a(const char *k, size_t len)
{
    uint64_t h = 1469598103934665603u;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)k[i];
        h *= 1099511628211u;
    }
    return h;
}

/* The slot of key: its value when present (*found), else a free slot to
 * fill. The map never fills up: it holds at most n keys in 2n+ slots. */
static fent *fmap_slot(fmap *m, const char *k, size_t klen, bool *found)
{
    size_t i = (size_t)fnv1a(k, klen) & m->mask;
    for (;;) {
        fent *e = &m->e[i];
        if (!e->k) {
            *found = false;
            return e;
        }
        if (e->klen == klen && memcmp(e->k, k, klen) == 0) {
            *found = true;
            return e;
        }
        i = (i + 1) & m->mask;
    }
}

/* ---- the fold ------------------------------------------------------------------------ */

#define NONE SIZE_MAX

typedef struct ostate {
    size_t create; /* last OrderCreated in the set */
    size_t last;   /* last event at or after the first OrderCreated */
    size_t pre;    /* last status change before any OrderCreated */
} ostate;

static char *items_json(const oms_event *ev)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < ev->nitems; i++) {
        const oms_order_item *it = &ev->items[i];
        json_array_append_new(a, json_pack("{s:I,s:s,s:i,s:f}", "productId",
                                           (json_int_t)it->product_id, "productName",
                                           it->product_name ? it->product_name : "", "quantity",
                                           (int)it->quantity, "price", it->price));
    }
    char *s = a ? oms_json_dumps(a, JSON_COMPACT) : NULL;
    json_decref(a);
    return s;
}

static void add_history(pg_array *c, const oms_pg_record *r)
{
    char pos[320];
    pg_position(r, pos, sizeof pos);
    pg_array_str(&c[0], r->ev->order_id);
    pg_array_str(&c[1], r->ev->status);
    pg_array_i64(&c[2], r->ev->occurred_at);
    pg_array_str(&c[3], pos);
    pg_array_str(&c[4], r->ev->event_id);
}

static void add_pos(pg_array *c, const oms_pg_record *r)
{
    char pos[320];
    pg_position(r, pos, sizeof pos);
    pg_array_str(&c[0], pos);
    pg_array_i64(&c[1], r->partition);
    pg_array_i64(&c[2], r->offset);
}

int pg_fold_build(pg_fold *f, const oms_pg_record *recs, const size_t *idx, size_t n)
{
    for (int q = 0; q < PG_FOLD_COUNT; q++) {
        f->rows[q] = 0;
        for (int c = 0; c < pg_query_nparams[q]; c++)
            pg_array_reset(&f->cols[q][c], pg_fold_types[q][c]);
    }
    int rc = OMS_ENOMEM;
    fmap orders = {0}, products = {0}, notes = {0};
    ostate *os = malloc((n ? n : 1) * sizeof *os);
    size_t *hist_pre = malloc((n ? n : 1) * sizeof *hist_pre);
    size_t *hist = malloc((n ? n : 1) * sizeof *hist);
    size_t *prod = malloc((n ? n : 1) * sizeof *prod); /* last record per product, in order */
    size_t *note = malloc((n ? n : 1) * sizeof *note);
    size_t nos = 0, npre = 0, nhist = 0, nprod = 0, nnote = 0;
    if (!os || !hist_pre || !hist || !prod || !note || fmap_init(&orders, n) ||
        fmap_init(&products, n) || fmap_init(&notes, n))
        goto out;

    for (size_t j = 0; j < n; j++) {
        size_t i = idx[j];
        const oms_event *ev = recs[i].ev;
        bool found;
        fent *e;
        switch (ev->type) {
        case OMS_EV_ORDER_CREATED:
        case OMS_EV_ORDER_STATUS_CHANGED: {
            e = fmap_slot(&orders, ev->order_id, strlen(ev->order_id), &found);
            if (!found) {
                e->k = ev->order_id;
                e->klen = strlen(ev->order_id);
                e->v = nos;
                os[nos++] = (ostate){NONE, NONE, NONE};
            }
            ostate *s = &os[e->v];
            if (ev->type == OMS_EV_ORDER_CREATED) {
                s->create = i;
                s->last = i;
                hist[nhist++] = i;
            } else if (s->create != NONE) {
                s->last = i;
                hist[nhist++] = i;
            } else {
                s->pre = i;
                hist_pre[npre++] = i;
            }
            break;
        }
        case OMS_EV_INVENTORY_CHANGED:
            e = fmap_slot(&products, (const char *)&ev->product_id, sizeof ev->product_id, &found);
            if (!found) {
                e->k = (const char *)&ev->product_id;
                e->klen = sizeof ev->product_id;
                e->v = nprod++;
            }
            prod[e->v] = i;
            break;
        case OMS_EV_USER_NOTIFICATION:
        case OMS_EV_SYSTEM_NOTIFICATION:
            e = fmap_slot(&notes, ev->event_id, strlen(ev->event_id), &found);
            if (!found) {
                e->k = ev->event_id;
                e->klen = strlen(ev->event_id);
                e->v = nnote++;
            }
            note[e->v] = i;
            break;
        default:
            break;
        }
    }

    for (size_t k = 0; k < nos; k++) {
        const ostate *s = &os[k];
        if (s->pre != NONE) {
            const oms_pg_record *r = &recs[s->pre];
            pg_array *c = f->cols[PG_Q_ORDERS_PRE];
            pg_array_str(&c[0], r->ev->order_id);
            pg_array_str(&c[1], r->ev->status);
            pg_array_i64(&c[2], r->ev->occurred_at);
            add_pos(&c[3], r);
            f->rows[PG_Q_ORDERS_PRE]++;
        }
        if (s->create != NONE) {
            const oms_event *cr = recs[s->create].ev;
            const oms_pg_record *last = &recs[s->last];
            char *items = items_json(cr);
            if (!items)
                goto out;
            pg_array *c = f->cols[PG_Q_ORDERS];
            pg_array_str(&c[0], cr->order_id);
            pg_array_str(&c[1], cr->alias_id);
            pg_array_i64(&c[2], cr->user_id);
            pg_array_str(&c[3], last->ev->status);
            pg_array_dbl(&c[4], cr->total_amount);
            pg_array_str(&c[5], items);
            pg_array_i64(&c[6], cr->occurred_at);
            pg_array_i64(&c[7], last->ev->occurred_at);
            add_pos(&c[8], last);
            free(items);
            f->rows[PG_Q_ORDERS]++;
        }
    }
    for (size_t k = 0; k < npre; k++)
        add_history(f->cols[PG_Q_HISTORY_PRE], &recs[hist_pre[k]]);
    f->rows[PG_Q_HISTORY_PRE] = npre;
    for (size_t k = 0; k < nhist; k++)
        add_history(f->cols[PG_Q_HISTORY], &recs[hist[k]]);
    f->rows[PG_Q_HISTORY] = nhist;
    for (size_t k = 0; k < nprod; k++) {
        const oms_pg_record *r = &recs[prod[k]];
        pg_array *c = f->cols[PG_Q_INVENTORY];
        pg_array_i64(&c[0], r->ev->product_id);
        pg_array_str(&c[1], r->ev->product_name);
        pg_array_i64(&c[2], r->ev->quantity);
        pg_array_i64(&c[3], r->ev->threshold);
        pg_array_str(&c[4], r->ev->status);
        pg_array_i64(&c[5], r->ev->occurred_at);
        add_pos(&c[6], r);
    }
    f->rows[PG_Q_INVENTORY] = nprod;
    for (size_t k = 0; k < nnote; k++) {
        const oms_pg_record *r = &recs[note[k]];
        const oms_event *ev = r->ev;
        bool user = ev->type == OMS_EV_USER_NOTIFICATION;
        pg_array *c = f->cols[PG_Q_NOTIFICATIONS];
        pg_array_str(&c[0], ev->event_id);
        pg_array_str(&c[1], user ? "user" : "system");
        if (user)
            pg_array_i64(&c[2], ev->user_id);
        else
            pg_array_str(&c[2], NULL);
        pg_array_str(&c[3], ev->title);
        pg_array_str(&c[4], ev->message);
        pg_array_str(&c[5], user ? NULL : ev->severity);
        pg_array_str(&c[6], ev->data_json);
        pg_array_i64(&c[7], ev->occurred_at);
        add_pos(&c[8], r);
    }
    f->rows[PG_Q_NOTIFICATIONS] = nnote;
    rc = OMS_OK;
    for (int q = 0; q < PG_FOLD_COUNT; q++)
        for (int c = 0; c < pg_query_nparams[q]; c++)
            if (f->cols[q][c].sb.oom || f->cols[q][c].bad)
                rc = f->cols[q][c].bad ? OMS_EINVAL : OMS_ENOMEM;
out:
    free(orders.e);
    free(products.e);
    free(notes.e);
    free(os);
    free(hist_pre);
    free(hist);
    free(prod);
    free(note);
    return rc;
}

void pg_fold_free(pg_fold *f)
{
    for (int q = 0; q < PG_FOLD_COUNT; q++)
        for (int c = 0; c < PG_MAX_COLS; c++)
            pg_array_free(&f->cols[q][c]);
}
