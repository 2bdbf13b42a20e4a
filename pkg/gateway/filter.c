/* filter.c — parsing, normalizing and matching subscription filters. */
#include "gateway/filter.h"
#include "json/json.h"

#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { FT_STR, FT_INT, FT_NUM };
enum { ON_ORDERS = 1, ON_INVENTORY = 2 };

static const struct {
    const char *name;
    int type;
    int topics;
    int rank; /* pivot preference: lower is more selective */
} fields[OMS_FF__COUNT] = {
    [OMS_FF_EVENT_TYPE] = {"eventType", FT_STR, ON_ORDERS | ON_INVENTORY, 9},
    [OMS_FF_ORDER_ID] = {"orderId", FT_STR, ON_ORDERS, 0},
    [OMS_FF_ALIAS_ID] = {"aliasId", FT_STR, ON_ORDERS, 1},
    [OMS_FF_USER_ID] = {"userId", FT_INT, ON_ORDERS, 2},
    [OMS_FF_STATUS] = {"status", FT_STR, ON_ORDERS | ON_INVENTORY, 7},
    [OMS_FF_PREVIOUS_STATUS] = {"previousStatus", FT_STR, ON_ORDERS, 8},
    [OMS_FF_TOTAL_AMOUNT] = {"totalAmount", FT_NUM, ON_ORDERS, 5},
    [OMS_FF_PRODUCT_ID] = {"productId", FT_INT, ON_INVENTORY, 0},
    [OMS_FF_PRODUCT_NAME] = {"productName", FT_STR, ON_INVENTORY, 3},
    [OMS_FF_QUANTITY] = {"quantity", FT_INT, ON_INVENTORY, 5},
    [OMS_FF_THRESHOLD] = {"threshold", FT_INT, ON_INVENTORY, 6},
    [OMS_FF_DELTA] = {"delta", FT_INT, ON_INVENTORY, 6},
    [OMS_FF_SOURCE] = {"source", FT_STR, ON_ORDERS | ON_INVENTORY, 4},
};

/* integers beyond this are not exact as doubles */
#define MAX_EXACT 9007199254740992.0

const char *oms_filter_field_name(oms_filter_field field)
{
    return field < OMS_FF__COUNT ? fields[field].name : "?";
}

/* ---- views ------------------------------------------------------------------------ */

static void put_str(oms_filter_view *v, oms_filter_field f, const char *s)
{
    if (!s)
        return;
    v->str[f] = s;
    v->present |= 1u << f;
}

static void put_num(oms_filter_view *v, oms_filter_field f, double x)
{
    v->num[f] = x;
    v->present |= 1u << f;
}

void oms_filter_view_of(const oms_event *ev, oms_filter_view *out)
{
    memset(out, 0, sizeof *out);
    out->type = ev->type;
    put_str(out, OMS_FF_EVENT_TYPE, oms_event_type_name(ev->type));
    put_str(out, OMS_FF_SOURCE, ev->source);
    switch (ev->type) {
    case OMS_EV_ORDER_CREATED:
    case OMS_EV_ORDER_STATUS_CHANGED:
        put_str(out, OMS_FF_ORDER_ID, ev->order_id);
        put_str(out, OMS_FF_ALIAS_ID, ev->alias_id);
        put_num(out, OMS_FF_USER_ID, (double)ev->user_id);
        put_str(out, OMS_FF_STATUS, ev->status);
        if (ev->type == OMS_EV_ORDER_CREATED)
            put_num(out, OMS_FF_TOTAL_AMOUNT, ev->total_amount);
        else
            put_str(out, OMS_FF_PREVIOUS_STATUS, ev->previous_status);
        break;
    case OMS_EV_INVENTORY_CHANGED:
        put_num(out, OMS_FF_PRODUCT_ID, (double)ev->product_id);
        put_str(out, OMS_FF_PRODUCT_NAME, ev->product_name);
        put_num(out, OMS_FF_QUANTITY, ev->quantity);
        put_num(out, OMS_FF_THRESHOLD, ev->threshold);
        put_str(out, OMS_FF_STATUS, ev->status);
        put_num(out, OMS_FF_DELTA, ev->delta);
        break;
    default:
        break;
    }
}

oms_filter_view *oms_filter_view_copy(const oms_filter_view *v)
{
    size_t len[OMS_FF__COUNT] = {0}, total = 0;
    for (int f = 0; f < OMS_FF__COUNT; f++)
        if (v->str[f]) {
            len[f] = strlen(v->str[f]) + 1;
            total += len[f];
        }
    oms_filter_view *c = malloc(sizeof *c + total);
    if (!c)
        return NULL;
    *c = *v;
    char *p = (char *)(c + 1);
    for (int f = 0; f < OMS_FF__COUNT; f++)
        if (v->str[f]) {
            memcpy(p, v->str[f], len[f]);
            c->str[f] = p;
            p += len[f];
        }
    return c;
}

void oms_filter_view_free(oms_filter_view *v)
{
    free(v);
}

/* ---- filters ---------------------------------------------------------------------- */

typedef struct term {
    oms_filter_field field;
    bool range;
    /* a set (sorted, distinct): strings for FT_STR fields, numbers else */
    size_t n;
    char **s;
    double *x;
    /* a range */
    bool has_lo, lo_incl, has_hi, hi_incl;
    double lo, hi;
} term;

struct oms_filter {
    atomic_int refs;
    oms_topic_kind topic;
    int nterms;
    term t[OMS_FF__COUNT];
    char *text;
    json_t *json;
    int pivot; /* index into t, -1 when none */
    uint64_t *keys;
    size_t nkeys;
};

static void filter_free(oms_filter *f)
{
    for (int i = 0; i < f->nterms; i++) {
        for (size_t j = 0; f->t[i].s && j < f->t[i].n; j++)
            free(f->t[i].s[j]);
        free(f->t[i].s);
        free(f->t[i].x);
    }
    free(f->text);
    json_decref(f->json);
    free(f->keys);
    free(f);
}

oms_filter *oms_filter_ref(oms_filter *f)
{
    if (f)
        atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
    return f;
}

void oms_filter_unref(oms_filter *f)
{
    if (f && atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) == 1)
        filter_free(f);
}

const char *oms_filter_text(const oms_filter *f)
{
    return f->text;
}

json_t *oms_filter_json(const oms_filter *f)
{
    return json_deep_copy(f->json);
}

oms_topic_kind oms_filter_topic(const oms_filter *f)
{
    return f->topic;
}

/* ---- keys ------------------------------------------------------------------------- */

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

static uint64_t key_str(oms_filter_field field, const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ull;
    }
    return mix64(h ^ ((uint64_t)field << 56));
}

static uint64_t key_num(oms_filter_field field, double x)
{
    uint64_t bits;
    if (x == 0)
        x = 0; /* -0 and 0 are one value */
    memcpy(&bits, &x, sizeof bits);
    return mix64(bits ^ ((uint64_t)(field + 1) * 0x9e3779b97f4a7c15ull));
}

bool oms_filter_key(oms_filter_field field, const oms_filter_view *v, uint64_t *key)
{
    if (field >= OMS_FF__COUNT || !(v->present & (1u << field)))
        return false;
    *key = fields[field].type == FT_STR ? key_str(field, v->str[field])
                                        : key_num(field, v->num[field]);
    return true;
}

bool oms_filter_pivot(const oms_filter *f, oms_filter_field *field, const uint64_t **keys,
                      size_t *nkeys)
{
    if (f->pivot < 0)
        return false;
    *field = f->t[f->pivot].field;
    *keys = f->keys;
    *nkeys = f->nkeys;
    return true;
}

/* ---- matching --------------------------------------------------------------------- */

static bool in_strs(char *const *s, size_t n, const char *x)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(s[mid], x);
        if (c == 0)
            return true;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

static bool in_nums(const double *a, size_t n, double x)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (a[mid] == x)
            return true;
        if (a[mid] < x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

static bool term_match(const term *t, const oms_filter_view *v)
{
    if (!(v->present & (1u << t->field)))
        return false;
    if (t->range) {
        double x = v->num[t->field];
        if (t->has_lo && (t->lo_incl ? x < t->lo : x <= t->lo))
            return false;
        if (t->has_hi && (t->hi_incl ? x > t->hi : x >= t->hi))
            return false;
        return true;
    }
    if (t->s)
        return in_strs(t->s, t->n, v->str[t->field]);
    return in_nums(t->x, t->n, v->num[t->field]);
}

bool oms_filter_match(const oms_filter *f, const oms_filter_view *v)
{
    for (int i = 0; i < f->nterms; i++)
        if (!term_match(&f->t[i], v))
            return false;
    return true;
}

/* ---- parsing ---------------------------------------------------------------------- */

typedef struct parse_ctx {
    oms_topic_kind topic;
    int max_values;
    int values;
    char *err;
    size_t errlen;
} parse_ctx;

static int fail(parse_ctx *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, c->errlen, fmt, ap);
    va_end(ap);
    return OMS_EINVAL;
}

/* a field name for messages: at most 64 bytes, not cutting a UTF-8 sequence */
static int shown(const char *s)
{
    size_t n = strlen(s);
    if (n > 64) {
        n = 64;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--;
    }
    return (int)n;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmp_num(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int cmp_term(const void *a, const void *b)
{
    return strcmp(fields[((const term *)a)->field].name, fields[((const term *)b)->field].name);
}

/* A number for field: finite, and integral (exactly) for integer fields. */
static int number_of(parse_ctx *c, oms_filter_field field, const char *what, const json_t *j,
                     double *out)
{
    const char *name = fields[field].name;
    if (!json_is_number(j))
        return fail(c, "%s: %s must be a number", name, what);
    double x = json_number_value(j);
    if (!isfinite(x) || fabs(x) > MAX_EXACT)
        return fail(c, "%s: %s is out of range", name, what);
    if (fields[field].type == FT_INT && x != floor(x))
        return fail(c, "%s: %s must be an integer", name, what);
    *out = x;
    return OMS_OK;
}

/* A string value: checked against the values the field can have. */
static int string_of(parse_ctx *c, oms_filter_field field, const json_t *j, const char **out,
                     char *canon, size_t canonlen)
{
    const char *name = fields[field].name;
    if (!json_is_string(j))
        return fail(c, "%s: values must be strings", name);
    const char *s = json_string_value(j);
    size_t n = json_string_length(j);
    if (n == 0)
        return fail(c, "%s: an empty string matches nothing", name);
    if (n > OMS_FILTER_MAX_STRING)
        return fail(c, "%s: a value is longer than %d bytes", name, OMS_FILTER_MAX_STRING);
    if (strlen(s) != n)
        return fail(c, "%s: a value holds a NUL character", name);
    if (field == OMS_FF_STATUS) {
        const char *const *ok = oms_event_statuses(c->topic);
        for (int i = 0; ok && ok[i]; i++)
            if (strcmp(ok[i], s) == 0) {
                *out = s;
                return OMS_OK;
            }
        char list[160] = "";
        for (int i = 0; ok && ok[i]; i++)
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "", ok[i]);
        return fail(c, "status: '%.*s' is not one of %s", shown(s), s, list);
    }
    if (field == OMS_FF_EVENT_TYPE) {
        oms_event_type t;
        if (oms_event_type_parse(s, &t) != OMS_OK || oms_event_topic_kind(t) != c->topic)
            return fail(c, "eventType: '%.*s' is not one of %s", shown(s), s,
                        c->topic == OMS_TOPIC_ORDERS ? "OrderCreated, OrderStatusChanged"
                                                     : "InventoryChanged");
        snprintf(canon, canonlen, "%s", oms_event_type_name(t));
        *out = canon;
        return OMS_OK;
    }
    *out = s;
    return OMS_OK;
}

static int count_value(parse_ctx *c, oms_filter_field field)
{
    if (++c->values > c->max_values)
        return fail(c, "%s: the filter holds more than %d values (server.filter_max_values)",
                    fields[field].name, c->max_values);
    return OMS_OK;
}

/* equality (one scalar) or membership (an array) */
static int parse_set(parse_ctx *c, term *t, const json_t *spec)
{
    oms_filter_field field = t->field;
    const char *name = fields[field].name;
    size_t n = json_is_array(spec) ? json_array_size(spec) : 1;
    if (n == 0)
        return fail(c, "%s: an empty list matches nothing", name);
    bool str = fields[field].type == FT_STR;
    if (str)
        t->s = calloc(n, sizeof *t->s);
    else
        t->x = calloc(n, sizeof *t->x);
    if (str ? !t->s : !t->x)
        return OMS_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        const json_t *j = json_is_array(spec) ? json_array_get(spec, i) : spec;
        int rc = count_value(c, field);
        if (rc)
            return rc;
        if (str) {
            const char *s = NULL;
            char canon[64];
            if ((rc = string_of(c, field, j, &s, canon, sizeof canon)))
                return rc;
            if (!(t->s[t->n] = strdup(s)))
                return OMS_ENOMEM;
        } else if ((rc = number_of(c, field, "a value", j, &t->x[t->n]))) {
            return rc;
        }
        t->n++;
    }
    /* sorted and distinct: binary search, and one normalized text */
    size_t k = 0;
    if (str) {
        qsort(t->s, t->n, sizeof *t->s, cmp_str);
        for (size_t i = 0; i < t->n; i++) {
            if (k > 0 && strcmp(t->s[k - 1], t->s[i]) == 0)
                free(t->s[i]);
            else
                t->s[k++] = t->s[i];
        }
    } else {
        qsort(t->x, t->n, sizeof *t->x, cmp_num);
        for (size_t i = 0; i < t->n; i++)
            if (k == 0 || t->x[k - 1] != t->x[i])
                t->x[k++] = t->x[i] == 0 ? 0 : t->x[i];
    }
    t->n = k;
    return OMS_OK;
}

static int parse_range(parse_ctx *c, term *t, const json_t *spec)
{
    oms_filter_field field = t->field;
    const char *name = fields[field].name;
    if (fields[field].type == FT_STR)
        return fail(c, "%s: lt, lte, gt and gte apply to numeric fields only", name);
    if (json_object_size(spec) == 0)
        return fail(c, "%s: give a value, a list of values, or {lt|lte|gt|gte: number}", name);
    const char *op;
    json_t *j;
    json_object_foreach((json_t *)spec, op, j)
    {
        double x;
        bool lower = strcmp(op, "gt") == 0 || strcmp(op, "gte") == 0;
        bool upper = strcmp(op, "lt") == 0 || strcmp(op, "lte") == 0;
        if (!lower && !upper)
            return fail(c, "%s: unknown operator '%.*s' (lt, lte, gt, gte)", name, shown(op), op);
        char what[32];
        snprintf(what, sizeof what, "'%s'", op);
        int rc = count_value(c, field);
        if (rc || (rc = number_of(c, field, what, j, &x)))
            return rc;
        bool incl = op[2] == 'e';
        if (lower) {
            /* the tighter bound wins: gt 5 beats gte 5 */
            if (!t->has_lo || x > t->lo || (x == t->lo && !incl)) {
                t->lo = x;
                t->lo_incl = incl;
            }
            t->has_lo = true;
        } else {
            if (!t->has_hi || x < t->hi || (x == t->hi && !incl)) {
                t->hi = x;
                t->hi_incl = incl;
            }
            t->has_hi = true;
        }
    }
    t->range = true;
    return OMS_OK;
}

static json_t *num_json(double x)
{
    if (x == floor(x) && fabs(x) <= MAX_EXACT)
        return json_integer((json_int_t)x);
    return json_real(x);
}

static json_t *term_json(const term *t)
{
    if (t->range) {
        json_t *o = json_object();
        if (t->has_lo)
            json_object_set_new(o, t->lo_incl ? "gte" : "gt", num_json(t->lo));
        if (t->has_hi)
            json_object_set_new(o, t->hi_incl ? "lte" : "lt", num_json(t->hi));
        return o;
    }
    if (t->n == 1)
        return t->s ? json_string(t->s[0]) : num_json(t->x[0]);
    json_t *a = json_array();
    for (size_t i = 0; i < t->n; i++)
        json_array_append_new(a, t->s ? json_string(t->s[i]) : num_json(t->x[i]));
    return a;
}

static int choose_pivot(oms_filter *f)
{
    f->pivot = -1;
    for (int i = 0; i < f->nterms; i++)
        if (!f->t[i].range &&
            (f->pivot < 0 || fields[f->t[i].field].rank < fields[f->t[f->pivot].field].rank))
            f->pivot = i;
    if (f->pivot < 0)
        return OMS_OK;
    const term *t = &f->t[f->pivot];
    f->keys = malloc(t->n * sizeof *f->keys);
    if (!f->keys)
        return OMS_ENOMEM;
    for (size_t i = 0; i < t->n; i++) {
        uint64_t k = t->s ? key_str(t->field, t->s[i]) : key_num(t->field, t->x[i]);
        bool dup = false; /* two strings of one hash: one key */
        for (size_t j = 0; j < f->nkeys && !dup; j++)
            dup = f->keys[j] == k;
        if (!dup)
            f->keys[f->nkeys++] = k;
    }
    return OMS_OK;
}

int oms_filter_parse(const json_t *spec, oms_topic_kind topic, const oms_filter_limits *lim,
                     oms_filter **out, char *errbuf, size_t errlen)
{
    *out = NULL;
    parse_ctx c = {topic, lim && lim->max_values > 0 ? lim->max_values : OMS_FILTER_MAX_VALUES, 0,
                   errbuf, errlen};
    int max_bytes = lim && lim->max_bytes > 0 ? lim->max_bytes : OMS_FILTER_MAX_BYTES;
    if (!spec || json_is_null(spec))
        return OMS_OK;
    if (topic != OMS_TOPIC_ORDERS && topic != OMS_TOPIC_INVENTORY)
        return fail(&c, "filter: only order and inventory subscriptions take a filter");
    if (!json_is_object(spec))
        return fail(&c, "filter: must be an object {field: value | [values] | {lt|lte|gt|gte: "
                        "number}}");
    if (json_object_size(spec) == 0)
        return OMS_OK;
    int mask = topic == OMS_TOPIC_ORDERS ? ON_ORDERS : ON_INVENTORY;
    oms_filter *f = calloc(1, sizeof *f);
    if (!f)
        return OMS_ENOMEM;
    atomic_init(&f->refs, 1);
    f->topic = topic;
    f->pivot = -1;
    int rc = OMS_OK;
    const char *name;
    json_t *j;
    json_object_foreach((json_t *)spec, name, j)
    {
        int field = -1;
        for (int i = 0; i < OMS_FF__COUNT && field < 0; i++)
            if (strcmp(fields[i].name, name) == 0 && (fields[i].topics & mask))
                field = i;
        if (field < 0) {
            rc = fail(&c, "%.*s: not a field of %s events (%s)", shown(name), name,
                      topic == OMS_TOPIC_ORDERS ? "order" : "inventory",
                      topic == OMS_TOPIC_ORDERS
                          ? "eventType, orderId, aliasId, userId, status, previousStatus, "
                            "totalAmount, source"
                          : "eventType, productId, productName, quantity, threshold, status, "
                            "delta, source");
            break;
        }
        term *t = &f->t[f->nterms++];
        t->field = (oms_filter_field)field;
        rc = json_is_object(j) ? parse_range(&c, t, j) : parse_set(&c, t, j);
        if (rc)
            break;
    }
    if (rc == OMS_OK) {
        qsort(f->t, (size_t)f->nterms, sizeof *f->t, cmp_term);
        f->json = json_object();
        for (int i = 0; f->json && i < f->nterms; i++)
            json_object_set_new(f->json, fields[f->t[i].field].name, term_json(&f->t[i]));
        f->text = f->json ? oms_json_dumps(f->json, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
        if (!f->text)
            rc = OMS_ENOMEM;
        else if (strlen(f->text) > (size_t)max_bytes)
            rc = fail(&c, "filter: %zu bytes once normalized, more than %d "
                          "(server.filter_max_bytes)",
                      strlen(f->text), max_bytes);
        else
            rc = choose_pivot(f);
    }
    if (rc == OMS_ENOMEM)
        fail(&c, "out of memory");
    if (rc) {
        filter_free(f);
        return rc;
    }
    *out = f;
    return OMS_OK;
}
