/* event_jsonrec.c — the fast reader of JSON records (DESIGN §2): one pass
 * over the bytes straight into the event, one allocation, for the records
 * producers write (the schemas' fields, plain values). jansson took 7 µs a
 * record (a hash table per object, a copy per string); this takes a tenth.
 *
 * It has no error messages of its own: whatever it is not sure of (escapes
 * in keys, a field it does not know, a value of an unexpected kind, a
 * duplicate key, a number that is not plainly an integer where one is
 * needed, \u0000, data that is not compact JSON, anything that fails
 * validation) makes it answer "don't know", and the jansson path
 * (oms_event_decode_json_record's slow half) decides and says why. What it
 * accepts, that path accepts as the same event: the unit tests and the
 * fuzz target 'wire' hold it to that. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "events/events_internal.h"

typedef struct {
    const uint8_t *p, *end;
    char *s; /* next free byte of the arena's string area */
} jr;

enum { F_EVENT_ID, F_TYPE, F_OCCURRED, F_SOURCE, F_TRACE, F_ORDER, F_ALIAS, F_USER, F_STATUS,
       F_PREV, F_TOTAL, F_ITEMS, F_MESSAGE, F_PRODUCT, F_PNAME, F_QTY, F_THRESHOLD, F_DELTA,
       F_TITLE, F_SEVERITY, F_DATA, F__COUNT };

static const char *const field_names[F__COUNT] = {
    "eventId", "type", "occurredAt", "source", "traceId", "orderId", "aliasId",
    "userId", "status", "previousStatus", "totalAmount", "items", "message",
    "productId", "productName", "quantity", "threshold", "delta", "title", "severity", "data"};

/* fields of each type beyond the envelope (F_EVENT_ID..F_TRACE), as bits */
#define B(f) (1u << (f))
#define ENVELOPE (B(F_EVENT_ID) | B(F_TYPE) | B(F_OCCURRED) | B(F_SOURCE) | B(F_TRACE))
static const uint32_t allowed[OMS_EV__COUNT] = {
    [OMS_EV_ORDER_CREATED] = ENVELOPE | B(F_ORDER) | B(F_ALIAS) | B(F_USER) | B(F_STATUS) |
                             B(F_TOTAL) | B(F_ITEMS) | B(F_MESSAGE),
    [OMS_EV_ORDER_STATUS_CHANGED] = ENVELOPE | B(F_ORDER) | B(F_ALIAS) | B(F_USER) |
                                    B(F_STATUS) | B(F_PREV) | B(F_MESSAGE),
    [OMS_EV_INVENTORY_CHANGED] = ENVELOPE | B(F_PRODUCT) | B(F_PNAME) | B(F_QTY) |
                                 B(F_THRESHOLD) | B(F_STATUS) | B(F_DELTA),
    [OMS_EV_USER_NOTIFICATION] = ENVELOPE | B(F_USER) | B(F_TITLE) | B(F_MESSAGE) | B(F_DATA),
    [OMS_EV_SYSTEM_NOTIFICATION] = ENVELOPE | B(F_TITLE) | B(F_MESSAGE) | B(F_SEVERITY) |
                                   B(F_DATA),
};

static inline void ws(jr *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

static inline bool eat(jr *j, uint8_t c)
{
    ws(j);
    if (j->p < j->end && *j->p == c) {
        j->p++;
        return true;
    }
    return false;
}

static int hex4(const uint8_t *p)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        int c = p[i], d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            return -1;
        v = v << 4 | d;
    }
    return v;
}

/* A string (the opening quote next) decoded into the arena as a C string.
 * False when unsure: invalid UTF-8, a control character, a bad escape, a
 * lone surrogate, \u0000 (jansson refuses all of these). */
static bool str(jr *j, char **out)
{
    ws(j);
    if (j->p >= j->end || *j->p != '"')
        return false;
    j->p++;
    char *o = j->s;
    const uint8_t *run = j->p;
    bool high = false; /* a byte >= 0x80 in the run: UTF-8 to check */
    for (;;) {
        /* eight plain ASCII bytes at a time: no quote, backslash, control
         * character or high bit among them */
        while (j->end - j->p >= 8) {
            uint64_t w;
            memcpy(&w, j->p, 8);
            uint64_t q = w ^ 0x2222222222222222ull, b = w ^ 0x5C5C5C5C5C5C5C5Cull;
            uint64_t special = ((q - 0x0101010101010101ull) & ~q) |
                               ((b - 0x0101010101010101ull) & ~b) |
                               ((w - 0x2020202020202020ull) & ~w) | w;
            if (special & 0x8080808080808080ull)
                break;
            j->p += 8;
        }
        if (j->p >= j->end)
            return false;
        uint8_t c = *j->p;
        high |= c >= 0x80;
        if (c == '"')
            break;
        if (c < 0x20)
            return false;
        if (c != '\\') {
            j->p++;
            continue;
        }
        /* flush the plain run, then the escape */
        size_t n = (size_t)(j->p - run);
        if (high && oms_ev_utf8_check(run, n) != n)
            return false;
        high = false;
        memcpy(o, run, n);
        o += n;
        if (j->end - j->p < 2)
            return false;
        uint8_t e = j->p[1];
        j->p += 2;
        switch (e) {
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '/': *o++ = '/'; break;
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'n': *o++ = '\n'; break;
        case 'r': *o++ = '\r'; break;
        case 't': *o++ = '\t'; break;
        case 'u': {
            if (j->end - j->p < 4)
                return false;
            int cp = hex4(j->p);
            j->p += 4;
            if (cp <= 0)
                return false;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (j->end - j->p < 6 || j->p[0] != '\\' || j->p[1] != 'u')
                    return false;
                int lo = hex4(j->p + 2);
                if (lo < 0xDC00 || lo > 0xDFFF)
                    return false;
                j->p += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                return false;
            }
            if (cp < 0x80) {
                *o++ = (char)cp;
            } else if (cp < 0x800) {
                *o++ = (char)(0xC0 | cp >> 6);
                *o++ = (char)(0x80 | (cp & 0x3F));
            } else if (cp < 0x10000) {
                *o++ = (char)(0xE0 | cp >> 12);
                *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
                *o++ = (char)(0x80 | (cp & 0x3F));
            } else {
                *o++ = (char)(0xF0 | cp >> 18);
                *o++ = (char)(0x80 | ((cp >> 12) & 0x3F));
                *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
                *o++ = (char)(0x80 | (cp & 0x3F));
            }
            break;
        }
        default: return false;
        }
        run = j->p;
    }
    size_t n = (size_t)(j->p - run);
    if (high && oms_ev_utf8_check(run, n) != n)
        return false;
    memcpy(o, run, n);
    o += n;
    *o++ = '\0';
    *out = j->s;
    j->s = o;
    j->p++; /* the closing quote */
    return true;
}

/* The extent of a JSON number at j->p; *is_int when it has no fraction and
 * no exponent. False when it is not one. */
static bool number(jr *j, const uint8_t **start, size_t *n, bool *is_int)
{
    ws(j);
    const uint8_t *p = j->p, *s = p;
    if (p < j->end && *p == '-')
        p++;
    if (p >= j->end || *p < '0' || *p > '9')
        return false;
    if (*p == '0')
        p++;
    else
        while (p < j->end && *p >= '0' && *p <= '9')
            p++;
    *is_int = true;
    if (p < j->end && *p == '.') {
        p++;
        if (p >= j->end || *p < '0' || *p > '9')
            return false;
        while (p < j->end && *p >= '0' && *p <= '9')
            p++;
        *is_int = false;
    }
    if (p < j->end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < j->end && (*p == '+' || *p == '-'))
            p++;
        if (p >= j->end || *p < '0' || *p > '9')
            return false;
        while (p < j->end && *p >= '0' && *p <= '9')
            p++;
        *is_int = false;
    }
    *start = s;
    *n = (size_t)(p - s);
    j->p = p;
    return true;
}

/* An integer token as jansson reads it (json_integer, long long); false on
 * overflow (jansson refuses the record then). */
static bool integer(jr *j, int64_t *v)
{
    const uint8_t *s;
    size_t n;
    bool is_int;
    if (!number(j, &s, &n, &is_int) || !is_int)
        return false;
    bool neg = *s == '-';
    uint64_t x = 0, lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (size_t i = neg; i < n; i++) {
        uint64_t d = (uint64_t)(s[i] - '0');
        if (x > (lim - d) / 10)
            return false;
        x = x * 10 + d;
    }
    *v = neg ? (int64_t)(0 - x) : (int64_t)x;
    return true;
}

/* Any number, as json_number_value() gives it. */
static bool real(jr *j, double *v)
{
    const uint8_t *s;
    size_t n;
    bool is_int;
    if (!number(j, &s, &n, &is_int) || n > 64)
        return false;
    char buf[72];
    memcpy(buf, s, n);
    buf[n] = '\0';
    if (is_int) {
        int64_t x;
        j->p = s;
        if (!integer(j, &x))
            return false;
        *v = (double)x;
        return true;
    }
    errno = 0;
    double x = strtod(buf, NULL);
    if (errno || !isfinite(x))
        return false;
    *v = x;
    return true;
}

/* An id: an integer, or a string of digits (get_id in events.c). */
static bool id(jr *j, int64_t *v)
{
    ws(j);
    if (j->p < j->end && *j->p == '"') {
        char *s;
        if (!str(j, &s) || *s < '0' || *s > '9')
            return false;
        char *end;
        errno = 0;
        long long x = strtoll(s, &end, 10);
        if (*end || errno)
            return false;
        *v = x;
        return true;
    }
    return integer(j, v);
}

static bool int32(jr *j, int32_t *v)
{
    int64_t x;
    if (!integer(j, &x) || x < INT32_MIN || x > INT32_MAX)
        return false;
    *v = (int32_t)x;
    return true;
}

/* null is absent, as jansson's getters in events.c treat it */
static bool is_null(jr *j)
{
    ws(j);
    if (j->end - j->p >= 4 && memcmp(j->p, "null", 4) == 0) {
        j->p += 4;
        return true;
    }
    return false;
}

/* The key (no escapes) and its colon; false when unsure. */
static bool key(jr *j, const uint8_t **k, size_t *n)
{
    ws(j);
    if (j->p >= j->end || *j->p != '"')
        return false;
    const uint8_t *s = ++j->p;
    const uint8_t *q = memchr(s, '"', (size_t)(j->end - s));
    if (!q || memchr(s, '\\', (size_t)(q - s)))
        return false;
    j->p = q;
    *k = s;
    *n = (size_t)(j->p - s);
    j->p++;
    return eat(j, ':');
}

static int lookup(const char *const *names, const uint8_t *lens, int count, const uint8_t *k,
                  size_t n)
{
    for (int f = 0; f < count; f++)
        if (lens[f] == n && names[f][0] == k[0] && memcmp(names[f], k, n) == 0)
            return f;
    return -1;
}

static const uint8_t field_lens[F__COUNT] = {7, 4, 10, 6, 7, 7, 7, 6, 6, 14, 11,
                                             5, 7, 9, 11, 8, 9, 5, 5, 8, 4};
static const uint8_t item_lens[4] = {9, 11, 8, 5};

static const char *const item_names[] = {"productId", "productName", "quantity", "price"};

static bool items(jr *j, oms_event *ev, oms_order_item *arr, size_t max)
{
    if (!eat(j, '['))
        return false;
    size_t n = 0;
    if (eat(j, ']'))
        goto done;
    for (;;) {
        if (n == max || !eat(j, '{'))
            return false;
        oms_order_item *it = &arr[n++];
        memset(it, 0, sizeof *it);
        unsigned present = 0, set = 0;
        if (!eat(j, '}')) {
            for (;;) {
                const uint8_t *k;
                size_t kl;
                int which;
                if (!key(j, &k, &kl) || (which = lookup(item_names, item_lens, 4, k, kl)) < 0 ||
                    (present & (1u << which)))
                    return false;
                present |= 1u << which;
                if (!is_null(j)) {
                    bool ok = which == 0   ? id(j, &it->product_id)
                              : which == 1 ? str(j, &it->product_name)
                              : which == 2 ? int32(j, &it->quantity)
                                           : real(j, &it->price);
                    if (!ok)
                        return false;
                    set |= 1u << which;
                }
                if (eat(j, '}'))
                    break;
                if (!eat(j, ','))
                    return false;
            }
        }
        unsigned seen = set;
        /* productId, quantity and price are required (get_items) */
        if ((seen & 0xD) != 0xD)
            return false;
        if (eat(j, ']'))
            break;
        if (!eat(j, ','))
            return false;
    }
done:
    /* from_json leaves an empty array as no items */
    ev->items = n ? arr : NULL;
    ev->nitems = n;
    return true;
}

/* Skip a JSON value that is a compact object (data): *text gets a copy in
 * the arena when oms_ev_json_is_compact_object() vouches for it. */
static bool data_object(jr *j, char **text)
{
    ws(j);
    const uint8_t *s = j->p;
    int depth = 0;
    bool in_str = false;
    for (; j->p < j->end; j->p++) {
        uint8_t c = *j->p;
        if (in_str) {
            if (c == '\\')
                j->p++;
            else if (c == '"')
                in_str = false;
            continue;
        }
        if (c == '"')
            in_str = true;
        else if (c == '{' || c == '[')
            depth++;
        else if ((c == '}' || c == ']') && --depth == 0) {
            j->p++;
            break;
        }
    }
    if (depth != 0 || j->p > j->end)
        return false;
    size_t n = (size_t)(j->p - s);
    memcpy(j->s, s, n);
    j->s[n] = '\0';
    if (!oms_ev_json_is_compact_object(j->s))
        return false;
    *text = j->s;
    j->s += n + 1;
    return true;
}

/* 1: ev holds the record, validated; 0: not sure (ev zeroed). */
int oms_ev_json_record_fast(const uint8_t *buf, size_t len, oms_event *ev)
{
    memset(ev, 0, sizeof *ev);
    /* an item takes at least 38 bytes of text; strings never grow when
     * unescaped and each has its two quotes for the NUL; 16 for defaults */
    size_t maxitems = len / 38 + 1;
    size_t isz = maxitems * sizeof(oms_order_item);
    char *arena = malloc(isz + len + 16);
    if (!arena)
        return 0;
    jr j = {buf, buf + len, arena + isz};
    oms_order_item *arr = (oms_order_item *)(void *)arena;
    char *type = NULL, *event_id = NULL, *iso = NULL;
    uint32_t seen = 0, present = 0;
    if (!eat(&j, '{'))
        goto unsure;
    if (eat(&j, '}'))
        goto unsure;
    for (;;) {
        const uint8_t *k;
        size_t kl;
        int f;
        /* present: every key (duplicates and the type's fields); seen: the
         * ones with a value (null is absent, as jansson's getters have it) */
        if (!key(&j, &k, &kl) || (f = lookup(field_names, field_lens, F__COUNT, k, kl)) < 0 ||
            (present & B(f)))
            goto unsure;
        present |= B(f);
        if (is_null(&j)) {
            if (f == F_TYPE || f == F_EVENT_ID || f == F_OCCURRED || f == F_SOURCE)
                goto unsure; /* required: jansson's path names it */
        } else {
            bool ok;
            switch (f) {
            case F_EVENT_ID: ok = str(&j, &event_id); break;
            case F_TYPE: ok = str(&j, &type); break;
            case F_OCCURRED:
                ws(&j);
                if (j.p < j.end && *j.p == '"') {
                    ok = str(&j, &iso);
                } else {
                    ok = integer(&j, &ev->occurred_at);
                }
                break;
            case F_SOURCE: ok = str(&j, &ev->source); break;
            case F_TRACE: ok = str(&j, &ev->trace_id); break;
            case F_ORDER: ok = str(&j, &ev->order_id); break;
            case F_ALIAS: ok = str(&j, &ev->alias_id); break;
            case F_USER: ok = id(&j, &ev->user_id); break;
            case F_STATUS: ok = str(&j, &ev->status); break;
            case F_PREV: ok = str(&j, &ev->previous_status); break;
            case F_TOTAL: ok = real(&j, &ev->total_amount); break;
            case F_ITEMS: ok = items(&j, ev, arr, maxitems); break;
            case F_MESSAGE: ok = str(&j, &ev->message); break;
            case F_PRODUCT: ok = id(&j, &ev->product_id); break;
            case F_PNAME: ok = str(&j, &ev->product_name); break;
            case F_QTY: ok = int32(&j, &ev->quantity); break;
            case F_THRESHOLD: ok = int32(&j, &ev->threshold); break;
            case F_DELTA: ok = int32(&j, &ev->delta); break;
            case F_TITLE: ok = str(&j, &ev->title); break;
            case F_SEVERITY: ok = str(&j, &ev->severity); break;
            case F_DATA:
                ws(&j);
                ok = j.p < j.end && *j.p == '{' && data_object(&j, &ev->data_json);
                break;
            default: ok = false; break;
            }
            if (!ok)
                goto unsure;
            seen |= B(f);
        }
        if (eat(&j, '}'))
            break;
        if (!eat(&j, ','))
            goto unsure;
    }
    ws(&j);
    if (j.p != j.end || !type || !event_id || !ev->source || !(seen & B(F_OCCURRED)))
        goto unsure;
    oms_event_type t = OMS_EV__COUNT;
    for (int k = 0; k < OMS_EV__COUNT; k++) /* the canonical names first: cheap */
        if (strcmp(type, oms_event_type_name((oms_event_type)k)) == 0)
            t = (oms_event_type)k;
    if ((t == OMS_EV__COUNT && oms_event_type_parse(type, &t) != OMS_OK) ||
        (present & ~allowed[t]))
        goto unsure;
    ev->type = t;
    if (strlen(event_id) != 36)
        goto unsure;
    memcpy(ev->event_id, event_id, 37);
    if (iso && oms_parse_iso8601_ms(iso, &ev->occurred_at) != OMS_OK)
        goto unsure;
    /* the requirements and defaults of from_json */
    switch (t) {
    case OMS_EV_ORDER_CREATED:
    case OMS_EV_ORDER_STATUS_CHANGED:
        if (!ev->order_id || !ev->alias_id || !(seen & B(F_USER)))
            goto unsure;
        if (t == OMS_EV_ORDER_STATUS_CHANGED && !ev->status)
            goto unsure;
        if (t == OMS_EV_ORDER_CREATED && !(seen & B(F_TOTAL)))
            goto unsure;
        if (!ev->status) {
            memcpy(j.s, "created", 8);
            ev->status = j.s;
            j.s += 8;
        }
        break;
    case OMS_EV_INVENTORY_CHANGED:
        if (!(seen & B(F_PRODUCT)) || !ev->product_name || !(seen & B(F_QTY)) ||
            !(seen & B(F_THRESHOLD)) || !ev->status)
            goto unsure;
        break;
    case OMS_EV_USER_NOTIFICATION:
    case OMS_EV_SYSTEM_NOTIFICATION:
        if ((t == OMS_EV_USER_NOTIFICATION && !(seen & B(F_USER))) || !ev->title || !ev->message)
            goto unsure;
        if (t == OMS_EV_SYSTEM_NOTIFICATION && !ev->severity) {
            memcpy(j.s, "info", 5);
            ev->severity = j.s;
            j.s += 5;
        }
        break;
    default: goto unsure;
    }
    ev->arena = arena;
    if (ev->items != arr)
        ev->items = NULL;
    if (oms_ev_validate(ev, true, NULL, 0) != OMS_OK) {
        memset(ev, 0, sizeof *ev);
        free(arena);
        return 0;
    }
    return 1;
unsure:
    memset(ev, 0, sizeof *ev);
    free(arena);
    return 0;
}
