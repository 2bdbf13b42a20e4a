/* event_json.c — the RealTimeEvent frame written by hand (replay and the
 * fan-out write one per event; jansson's object tree and json_dumps were
 * two thirds of replay's time), and the helpers it needs.
 *
 * The output is byte for byte what the jansson reference
 * (oms_event_frame_json_generic) gives: same members in the same order,
 * strings escaped as json_dumps escapes them, integers as "%lld", reals as
 * oms_json_fmt_real() writes them (the shortest round trip; the reference
 * is serialized by oms_json_dumps(), which writes reals the same way).
 * What the writer does not do itself it hands to the reference, whole:
 * notification data that is not already in its canonical form, strings
 * that are not UTF-8 (jansson drops such members), non-finite numbers
 * (jansson drops those too), unknown types.
 * Decoded events never take that way; hand-built ones rarely do. */
#include "events/events_internal.h"
#include "json/json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- buffer ---------------------------------------------------------------------- */

int oms_buf_reserve(oms_buf *b, size_t n)
{
    if (b->cap > b->len && b->cap - b->len > n)
        return OMS_OK;
    size_t want = b->len + n + 1;
    if (want <= n)
        return OMS_ENOMEM;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < want)
        cap = cap > SIZE_MAX / 2 ? want : cap * 2;
    char *p = realloc(b->p, cap);
    if (!p)
        return OMS_ENOMEM;
    b->p = p;
    b->cap = cap;
    return OMS_OK;
}

/* ---- UTF-8 -------------------------------------------------------------------------- */

/* Length of the valid sequence whose lead byte (>= 0x80) is s[0], 0 when
 * it is not valid. Reads s[k] only after s[k-1] was a continuation byte,
 * so a NUL-terminated text may be passed with left = 4. */
static inline size_t utf8_seq(const uint8_t *s, size_t left)
{
    uint8_t b = s[0];
    if (b >= 0xC2 && b <= 0xDF)
        return left >= 2 && (s[1] & 0xC0) == 0x80 ? 2 : 0;
    if (b >= 0xE0 && b <= 0xEF) {
        if (left < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80)
            return 0;
        uint32_t cp = (uint32_t)(b & 0x0F) << 12 | (uint32_t)(s[1] & 0x3F) << 6 | (s[2] & 0x3F);
        return cp >= 0x800 && (cp < 0xD800 || cp > 0xDFFF) ? 3 : 0;
    }
    if (b >= 0xF0 && b <= 0xF4) {
        if (left < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 ||
            (s[3] & 0xC0) != 0x80)
            return 0;
        uint32_t cp = (uint32_t)(b & 0x07) << 18 | (uint32_t)(s[1] & 0x3F) << 12 |
                      (uint32_t)(s[2] & 0x3F) << 6 | (s[3] & 0x3F);
        return cp >= 0x10000 && cp <= 0x10FFFF ? 4 : 0;
    }
    return 0; /* continuation byte, C0/C1 overlong lead, F5..FF */
}

size_t oms_ev_utf8_check(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        while (n - i >= 8) { /* ASCII, eight bytes at a time */
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (w & 0x8080808080808080ull)
                break;
            i += 8;
        }
        if (i >= n)
            break;
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        size_t k = utf8_seq(s + i, n - i);
        if (!k)
            return i;
        i += k;
    }
    return n;
}

/* ---- compact JSON check ------------------------------------------------------------ */

#define CJ_MAX_DEPTH 32
#define CJ_MAX_KEYS 32

typedef struct {
    const char *p;
    int depth;
} cj;

static bool cj_value(cj *c);

/* c->p at the opening quote; on success past the closing one, with the
 * raw text between the quotes in *s, *n. */
static bool cj_string(cj *c, const char **s, size_t *n)
{
    const uint8_t *p = (const uint8_t *)c->p + 1, *start = p;
    for (;;) {
        uint8_t ch = *p;
        if (ch == '"')
            break;
        if (ch < 0x20) /* control characters (jansson refuses them), the end of the text */
            return false;
        if (ch == '\\') {
            /* json_dumps writes only these two as \x; anything else it would
             * write differently from how it is spelled here */
            if (p[1] != '"' && p[1] != '\\')
                return false;
            p += 2;
        } else if (ch < 0x80) {
            p++;
        } else {
            size_t k = utf8_seq(p, 4);
            if (!k)
                return false;
            p += k;
        }
    }
    *s = (const char *)start;
    *n = (size_t)(p - start);
    c->p = (const char *)p + 1;
    return true;
}

static bool cj_number(cj *c)
{
    const char *p = c->p;
    bool neg = *p == '-';
    if (neg)
        p++;
    if (*p < '0' || *p > '9')
        return false;
    const char *digits = p;
    if (*p == '0') {
        p++;
        if (neg && *p != '.' && *p != 'e' && *p != 'E')
            return false; /* "-0" reads as the integer 0, written back as "0" */
    } else {
        while (*p >= '0' && *p <= '9')
            p++;
    }
    if (*p == '.' || *p == 'e' || *p == 'E') {
        /* a real is canonical when it is spelled exactly as it is written
         * back (oms_json_fmt_real): then strtod's value is jansson's */
        const char *end = p;
        while ((*end >= '0' && *end <= '9') || *end == '.' || *end == 'e' || *end == '-')
            end++;
        size_t n = (size_t)(end - c->p);
        char text[OMS_JSON_REAL_MAX], canon[OMS_JSON_REAL_MAX];
        if (n >= sizeof text)
            return false;
        memcpy(text, c->p, n);
        text[n] = '\0';
        double v = strtod(text, NULL);
        if (!isfinite(v) || oms_json_fmt_real(v, canon) != n || memcmp(canon, text, n) != 0)
            return false;
        c->p = end;
        return true;
    }
    /* more than 18 digits may not fit json_int_t */
    if ((*p >= '0' && *p <= '9') || p - digits > 18)
        return false;
    c->p = p;
    return true;
}

static bool cj_object(cj *c)
{
    if (++c->depth > CJ_MAX_DEPTH)
        return false;
    c->p++; /* { */
    if (*c->p == '}') {
        c->p++;
        c->depth--;
        return true;
    }
    const char *keys[CJ_MAX_KEYS];
    size_t lens[CJ_MAX_KEYS], nkeys = 0;
    for (;;) {
        const char *k;
        size_t kn;
        if (*c->p != '"' || nkeys == CJ_MAX_KEYS || !cj_string(c, &k, &kn))
            return false;
        /* a repeated key: json_loads keeps the last value at the first place */
        for (size_t i = 0; i < nkeys; i++)
            if (lens[i] == kn && memcmp(keys[i], k, kn) == 0)
                return false;
        keys[nkeys] = k;
        lens[nkeys++] = kn;
        if (*c->p != ':')
            return false;
        c->p++;
        if (!cj_value(c))
            return false;
        if (*c->p == ',') {
            c->p++;
            continue;
        }
        if (*c->p != '}')
            return false;
        c->p++;
        c->depth--;
        return true;
    }
}

static bool cj_array(cj *c)
{
    if (++c->depth > CJ_MAX_DEPTH)
        return false;
    c->p++; /* [ */
    if (*c->p == ']') {
        c->p++;
        c->depth--;
        return true;
    }
    for (;;) {
        if (!cj_value(c))
            return false;
        if (*c->p == ',') {
            c->p++;
            continue;
        }
        if (*c->p != ']')
            return false;
        c->p++;
        c->depth--;
        return true;
    }
}

static bool cj_literal(cj *c, const char *lit, size_t n)
{
    if (strncmp(c->p, lit, n) != 0)
        return false;
    c->p += n;
    return true;
}

static bool cj_value(cj *c)
{
    const char *s;
    size_t n;
    switch (*c->p) {
    case '{': return cj_object(c);
    case '[': return cj_array(c);
    case '"': return cj_string(c, &s, &n);
    case 't': return cj_literal(c, "true", 4);
    case 'f': return cj_literal(c, "false", 5);
    case 'n': return cj_literal(c, "null", 4);
    default: return cj_number(c);
    }
}

bool oms_ev_json_is_compact_object(const char *s)
{
    if (!s || *s != '{')
        return false;
    cj c = {s, 0};
    return cj_object(&c) && *c.p == '\0';
}

/* ---- numbers ---------------------------------------------------------------------- */

/* u (< 10^20) in decimal at o; returns the end. */
static char *put_u64(char *o, uint64_t u)
{
    char tmp[20];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    while (n)
        *o++ = tmp[--n];
    return o;
}

static char *put_i64(char *o, int64_t v)
{
    if (v < 0) {
        *o++ = '-';
        return put_u64(o, (uint64_t)0 - (uint64_t)v);
    }
    return put_u64(o, (uint64_t)v);
}

/* ---- time ------------------------------------------------------------------------------ */

static char *put_2(char *o, unsigned v)
{
    o[0] = (char)('0' + v / 10);
    o[1] = (char)('0' + v % 10);
    return o + 2;
}

size_t oms_ev_fmt_iso8601_ms(int64_t ms, char *out)
{
    /* 0000-01-01.. is what the fast path covers: 1970-01-01 to 9999-12-31 */
    if (ms < 0 || ms >= INT64_C(253402300800000))
        return oms_iso8601_ms(ms, out, 32);
    int64_t secs = ms / 1000;
    unsigned frac = (unsigned)(ms % 1000);
    /* events come in time order: the last second's text, per thread */
    static _Thread_local int64_t last_secs = -1;
    static _Thread_local char last[20];
    char *o = out;
    if (secs == last_secs) {
        memcpy(o, last, 19);
        o += 19;
        goto ms;
    }
    int64_t z = secs / 86400;
    unsigned sod = (unsigned)(secs % 86400);
    /* civil_from_days (H. Hinnant), z >= 0 */
    z += 719468;
    int64_t era = z / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    unsigned day = doy - (153 * mp + 2) / 5 + 1;
    unsigned mon = mp < 10 ? mp + 3 : mp - 9;
    unsigned year = (unsigned)(yoe + era * 400) + (mon <= 2);
    o = put_2(o, year / 100);
    o = put_2(o, year % 100);
    *o++ = '-';
    o = put_2(o, mon);
    *o++ = '-';
    o = put_2(o, day);
    *o++ = 'T';
    o = put_2(o, sod / 3600);
    *o++ = ':';
    o = put_2(o, sod / 60 % 60);
    *o++ = ':';
    o = put_2(o, sod % 60);
    memcpy(last, out, 19);
    last_secs = secs;
ms:
    *o++ = '.';
    *o++ = (char)('0' + frac / 100);
    o = put_2(o, frac % 100);
    *o++ = 'Z';
    *o = '\0';
    return (size_t)(o - out);
}

/* ---- the writer ------------------------------------------------------------------------- */

#define JW_FALLBACK 1

typedef struct {
    oms_buf *b;
    int err; /* 0, JW_FALLBACK or OMS_ENOMEM; once set, the puts do nothing */
} jw;

static inline char *jw_room(jw *w, size_t n)
{
    if (w->err)
        return NULL;
    oms_buf *b = w->b;
    if (b->cap - b->len <= n && oms_buf_reserve(b, n) != OMS_OK) {
        w->err = OMS_ENOMEM;
        return NULL;
    }
    return b->p + b->len;
}

static inline void jw_done(jw *w, char *o)
{
    w->b->len = (size_t)(o - w->b->p);
}

static inline void put_raw(jw *w, const char *s, size_t n)
{
    char *o = jw_room(w, n);
    if (!o)
        return;
    memcpy(o, s, n);
    jw_done(w, o + n);
}

/* Whether any of the 8 bytes of x needs more than a copy in a JSON string:
 * < 0x20, '"', '\\' or >= 0x80 (exact, no false positives: each test is the
 * classic "has a byte less than n" on bytes that are all < 0x80 once the
 * high bits are known clear). */
#define ONES 0x0101010101010101ull
#define HIGHS 0x8080808080808080ull
static inline bool word_special(uint64_t x)
{
    uint64_t q = x ^ (ONES * '"'), b = x ^ (ONES * '\\');
    uint64_t lt20 = (x - ONES * 0x20) & ~x, isq = (q - ONES) & ~q, isb = (b - ONES) & ~b;
    return ((x | lt20 | isq | isb) & HIGHS) != 0;
}

#define PUT_LIT(w, lit) put_raw((w), (lit), sizeof(lit) - 1)

/* "s", escaped as json_dumps escapes: \" \\ \b \f \n \r \t, other control
 * characters as \u00XX; the rest, UTF-8 included, as is. */
static void put_str(jw *w, const char *s)
{
    size_t n = strlen(s);
    char *o = jw_room(w, 6 * n + 2);
    if (!o)
        return;
    static const char hex[] = "0123456789ABCDEF";
    const uint8_t *p = (const uint8_t *)s, *end = p + n;
    *o++ = '"';
    while (p < end) {
        if (end - p >= 8) { /* plain ASCII, eight bytes at a time */
            uint64_t x;
            memcpy(&x, p, 8);
            if (!word_special(x)) {
                memcpy(o, p, 8);
                o += 8;
                p += 8;
                continue;
            }
        }
        uint8_t c = *p;
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            *o++ = (char)c;
            p++;
            continue;
        }
        if (c >= 0x80) {
            size_t k = utf8_seq(p, (size_t)(end - p));
            if (!k) { /* json_string() refuses it: the reference drops the member */
                w->err = JW_FALLBACK;
                return;
            }
            memcpy(o, p, k);
            o += k;
            p += k;
            continue;
        }
        *o++ = '\\';
        switch (c) {
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '\b': *o++ = 'b'; break;
        case '\f': *o++ = 'f'; break;
        case '\n': *o++ = 'n'; break;
        case '\r': *o++ = 'r'; break;
        case '\t': *o++ = 't'; break;
        default:
            *o++ = 'u';
            *o++ = '0';
            *o++ = '0';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
            break;
        }
        p++;
    }
    *o++ = '"';
    jw_done(w, o);
}

static void put_int(jw *w, int64_t v)
{
    char *o = jw_room(w, 24);
    if (o)
        jw_done(w, put_i64(o, v));
}

static void put_real(jw *w, double v)
{
    if (!isfinite(v)) { /* json_real() refuses it: the reference drops it */
        if (!w->err)
            w->err = JW_FALLBACK;
        return;
    }
    char *o = jw_room(w, OMS_JSON_REAL_MAX);
    if (o)
        jw_done(w, o + oms_json_fmt_real(v, o));
}

/* ,"key":"value" when value is set (json's set_str) */
#define PUT_OPT_STR(w, key, v)                                                                    \
    do {                                                                                           \
        if (v) {                                                                                   \
            PUT_LIT(w, ",\"" key "\":");                                                           \
            put_str(w, v);                                                                         \
        }                                                                                          \
    } while (0)

/* The members add_payload() of events.c sets, in its order. */
static void put_payload(jw *w, const oms_event *ev)
{
    switch (ev->type) {
    case OMS_EV_ORDER_CREATED:
    case OMS_EV_ORDER_STATUS_CHANGED:
        PUT_OPT_STR(w, "orderId", ev->order_id);
        PUT_OPT_STR(w, "aliasId", ev->alias_id);
        PUT_LIT(w, ",\"userId\":");
        put_int(w, ev->user_id);
        PUT_OPT_STR(w, "status", ev->status);
        if (ev->type == OMS_EV_ORDER_CREATED) {
            PUT_LIT(w, ",\"totalAmount\":");
            put_real(w, ev->total_amount);
            PUT_LIT(w, ",\"items\":[");
            for (size_t i = 0; i < ev->nitems; i++) {
                const oms_order_item *it = &ev->items[i];
                if (i)
                    PUT_LIT(w, ",");
                PUT_LIT(w, "{\"productId\":");
                put_int(w, it->product_id);
                PUT_LIT(w, ",\"productName\":");
                put_str(w, it->product_name ? it->product_name : "");
                PUT_LIT(w, ",\"quantity\":");
                put_int(w, it->quantity);
                PUT_LIT(w, ",\"price\":");
                put_real(w, it->price);
                PUT_LIT(w, "}");
            }
            PUT_LIT(w, "]");
        } else {
            PUT_OPT_STR(w, "previousStatus", ev->previous_status);
        }
        PUT_OPT_STR(w, "message", ev->message);
        break;
    case OMS_EV_INVENTORY_CHANGED:
        PUT_LIT(w, ",\"productId\":");
        put_int(w, ev->product_id);
        PUT_OPT_STR(w, "productName", ev->product_name);
        PUT_LIT(w, ",\"quantity\":");
        put_int(w, ev->quantity);
        PUT_LIT(w, ",\"threshold\":");
        put_int(w, ev->threshold);
        PUT_OPT_STR(w, "status", ev->status);
        PUT_LIT(w, ",\"delta\":");
        put_int(w, ev->delta);
        break;
    case OMS_EV_USER_NOTIFICATION:
        PUT_LIT(w, ",\"userId\":");
        put_int(w, ev->user_id);
        /* fall through */
    default:
        PUT_OPT_STR(w, "title", ev->title);
        PUT_OPT_STR(w, "message", ev->message);
        if (ev->type == OMS_EV_SYSTEM_NOTIFICATION)
            PUT_OPT_STR(w, "severity", ev->severity);
        if (ev->data_json) {
            /* checked canonical by the caller: oms_json_dumps(json_loads(it)) is itself */
            PUT_LIT(w, ",\"data\":");
            put_raw(w, ev->data_json, strlen(ev->data_json));
        }
        break;
    }
}

/* {"event":WS_NAME,"data":{"type":RT_TYPE,"data":{"eventId": and
 * ,"eventType":TYPE_NAME for each type, as put_str() would write the names
 * (plain ASCII: unchanged); a unit test compares them with the reference. */
#define FRAME_HEAD(ws, rt) "{\"event\":\"" ws "\",\"data\":{\"type\":\"" rt "\",\"data\":{\"eventId\":"
#define TYPE_MEMBER(name) ",\"eventType\":\"" name "\""
static const struct {
    const char *head, *type;
    size_t head_len, type_len;
} frame_names[OMS_EV__COUNT] = {
#define NAMES(t, ws, rt, name)                                                                     \
    [t] = {FRAME_HEAD(ws, rt), TYPE_MEMBER(name), sizeof(FRAME_HEAD(ws, rt)) - 1,                  \
           sizeof(TYPE_MEMBER(name)) - 1}
    NAMES(OMS_EV_ORDER_CREATED, "order_update", "order_status", "OrderCreated"),
    NAMES(OMS_EV_ORDER_STATUS_CHANGED, "order_update", "order_status", "OrderStatusChanged"),
    NAMES(OMS_EV_INVENTORY_CHANGED, "inventory_update", "inventory_update", "InventoryChanged"),
    NAMES(OMS_EV_USER_NOTIFICATION, "user_notification", "user_specific", "UserNotification"),
    NAMES(OMS_EV_SYSTEM_NOTIFICATION, "system_notification", "system_notification",
          "SystemNotification"),
#undef NAMES
};

static void put_frame(jw *w, const oms_event *ev, const char *position)
{
    char ts[32];
    size_t tslen = oms_ev_fmt_iso8601_ms(ev->occurred_at, ts);
    put_raw(w, frame_names[ev->type].head, frame_names[ev->type].head_len);
    put_str(w, ev->event_id);
    put_raw(w, frame_names[ev->type].type, frame_names[ev->type].type_len);
    put_payload(w, ev);
    PUT_OPT_STR(w, "source", ev->source);
    PUT_OPT_STR(w, "traceId", ev->trace_id);
    PUT_LIT(w, ",\"timestamp\":\"");
    put_raw(w, ts, tslen);
    PUT_LIT(w, "\"}");
    if (ev->type == OMS_EV_ORDER_CREATED || ev->type == OMS_EV_ORDER_STATUS_CHANGED ||
        ev->type == OMS_EV_USER_NOTIFICATION) {
        PUT_LIT(w, ",\"userId\":");
        put_int(w, ev->user_id);
    }
    PUT_LIT(w, ",\"timestamp\":\"");
    put_raw(w, ts, tslen);
    PUT_LIT(w, "\"");
    PUT_OPT_STR(w, "id", position);
    PUT_LIT(w, "}}");
}

int oms_event_frame_append(const oms_event *ev, const char *position, oms_buf *b)
{
    size_t start = b->len;
    jw w = {b, 0};
    if ((unsigned)ev->type >= OMS_EV__COUNT ||
        (ev->data_json && !oms_ev_json_is_compact_object(ev->data_json)))
        w.err = JW_FALLBACK;
    else
        put_frame(&w, ev, position);
    if (w.err == 0) {
        b->p[b->len] = '\0';
        return OMS_OK;
    }
    b->len = start;
    if (b->p)
        b->p[start] = '\0';
    if (w.err == OMS_ENOMEM)
        return OMS_ENOMEM;
    size_t n = 0;
    char *s = oms_event_frame_json_generic(ev, position, &n);
    if (!s)
        return OMS_ENOMEM;
    int rc = oms_buf_reserve(b, n);
    if (rc == OMS_OK) {
        memcpy(b->p + b->len, s, n);
        b->len += n;
        b->p[b->len] = '\0';
    }
    free(s);
    return rc;
}

char *oms_event_frame_json(const oms_event *ev, const char *position, size_t *len)
{
    oms_buf b = {0};
    if (oms_buf_reserve(&b, 512) != OMS_OK || oms_event_frame_append(ev, position, &b) != OMS_OK) {
        free(b.p);
        return NULL;
    }
    if (len)
        *len = b.len;
    return b.p;
}
