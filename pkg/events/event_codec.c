/* codec.c — Avro single-object encoding of events.
 *
 * The encoder writes the schemas named in writer_files[] field by field; the
 * unit test test_events.c checks it byte for byte against the generic encoder
 * of pkg/avro, so a schema change that is not mirrored here fails the build's
 * tests rather than the wire. */
#include "events/events.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "avro/embedded.h"
#include "events/events_internal.h"

static const char *const writer_files[OMS_EV__COUNT] = {
    [OMS_EV_ORDER_CREATED] = "order_created.v1.avsc",
    [OMS_EV_ORDER_STATUS_CHANGED] = "order_status_changed.v1.avsc",
    [OMS_EV_INVENTORY_CHANGED] = "inventory_changed.v1.avsc",
    [OMS_EV_USER_NOTIFICATION] = "user_notification.v1.avsc",
    [OMS_EV_SYSTEM_NOTIFICATION] = "system_notification.v1.avsc",
};

/* The Parsing Canonical Form of the schemas the fast decoder below reads,
 * field by field. If a writer schema changes without the decoder, the fast
 * path turns itself off for that type (oms_events_fast_decode() says so and
 * a unit test fails) instead of misreading records. */
static const char *const fast_canonical[OMS_EV__COUNT] = {
    [OMS_EV_ORDER_CREATED] =
        "{\"name\":\"oms.events.OrderCreated\",\"type\":\"record\",\"fields\":["
        "{\"name\":\"eventId\",\"type\":\"string\"},{\"name\":\"type\",\"type\":\"string\"},"
        "{\"name\":\"occurredAt\",\"type\":\"long\"},{\"name\":\"source\",\"type\":\"string\"},"
        "{\"name\":\"traceId\",\"type\":[\"null\",\"string\"]},{\"name\":\"orderId\",\"type\":"
        "\"string\"},{\"name\":\"aliasId\",\"type\":\"string\"},{\"name\":\"userId\",\"type\":"
        "\"long\"},{\"name\":\"status\",\"type\":\"string\"},{\"name\":\"totalAmount\",\"type\":"
        "\"double\"},{\"name\":\"items\",\"type\":{\"type\":\"array\",\"items\":{\"name\":"
        "\"oms.events.OrderItem\",\"type\":\"record\",\"fields\":[{\"name\":\"productId\","
        "\"type\":\"long\"},{\"name\":\"productName\",\"type\":\"string\"},{\"name\":"
        "\"quantity\",\"type\":\"int\"},{\"name\":\"price\",\"type\":\"double\"}]}}},{\"name\":"
        "\"message\",\"type\":[\"null\",\"string\"]}]}",
    [OMS_EV_ORDER_STATUS_CHANGED] =
        "{\"name\":\"oms.events.OrderStatusChanged\",\"type\":\"record\",\"fields\":["
        "{\"name\":\"eventId\",\"type\":\"string\"},{\"name\":\"type\",\"type\":\"string\"},"
        "{\"name\":\"occurredAt\",\"type\":\"long\"},{\"name\":\"source\",\"type\":\"string\"},"
        "{\"name\":\"traceId\",\"type\":[\"null\",\"string\"]},{\"name\":\"orderId\",\"type\":"
        "\"string\"},{\"name\":\"aliasId\",\"type\":\"string\"},{\"name\":\"userId\",\"type\":"
        "\"long\"},{\"name\":\"status\",\"type\":\"string\"},{\"name\":\"previousStatus\","
        "\"type\":[\"null\",\"string\"]},{\"name\":\"message\",\"type\":[\"null\",\"string\"]}]}",
    [OMS_EV_INVENTORY_CHANGED] =
        "{\"name\":\"oms.events.InventoryChanged\",\"type\":\"record\",\"fields\":["
        "{\"name\":\"eventId\",\"type\":\"string\"},{\"name\":\"type\",\"type\":\"string\"},"
        "{\"name\":\"occurredAt\",\"type\":\"long\"},{\"name\":\"source\",\"type\":\"string\"},"
        "{\"name\":\"traceId\",\"type\":[\"null\",\"string\"]},{\"name\":\"productId\",\"type\":"
        "\"long\"},{\"name\":\"productName\",\"type\":\"string\"},{\"name\":\"quantity\","
        "\"type\":\"int\"},{\"name\":\"threshold\",\"type\":\"int\"},{\"name\":\"status\","
        "\"type\":\"string\"},{\"name\":\"delta\",\"type\":\"int\"}]}",
    [OMS_EV_USER_NOTIFICATION] =
        "{\"name\":\"oms.events.UserNotification\",\"type\":\"record\",\"fields\":["
        "{\"name\":\"eventId\",\"type\":\"string\"},{\"name\":\"type\",\"type\":\"string\"},"
        "{\"name\":\"occurredAt\",\"type\":\"long\"},{\"name\":\"source\",\"type\":\"string\"},"
        "{\"name\":\"traceId\",\"type\":[\"null\",\"string\"]},{\"name\":\"userId\",\"type\":"
        "\"long\"},{\"name\":\"title\",\"type\":\"string\"},{\"name\":\"message\",\"type\":"
        "\"string\"},{\"name\":\"data\",\"type\":[\"null\",\"string\"]}]}",
    [OMS_EV_SYSTEM_NOTIFICATION] =
        "{\"name\":\"oms.events.SystemNotification\",\"type\":\"record\",\"fields\":["
        "{\"name\":\"eventId\",\"type\":\"string\"},{\"name\":\"type\",\"type\":\"string\"},"
        "{\"name\":\"occurredAt\",\"type\":\"long\"},{\"name\":\"source\",\"type\":\"string\"},"
        "{\"name\":\"traceId\",\"type\":[\"null\",\"string\"]},{\"name\":\"title\",\"type\":"
        "\"string\"},{\"name\":\"message\",\"type\":\"string\"},{\"name\":\"severity\","
        "\"type\":\"string\"},{\"name\":\"data\",\"type\":[\"null\",\"string\"]}]}",
};

struct oms_events {
    oms_avro_store *store;
    const oms_avro_schema *writer[OMS_EV__COUNT];
    uint8_t header[OMS_EV__COUNT][OMS_AVRO_SOE_HEADER_LEN];
    uint64_t fp[OMS_EV__COUNT]; /* of writer[t] */
    bool fast[OMS_EV__COUNT];   /* records with fp[t] take the fast decoder */
    oms_events_lookup_fn lookup; /* Confluent schema ids (NULL: no registry) */
    void *lookup_ctx;
    void (*lookup_ctx_free)(void *);
};

struct oms_events_writer {
    oms_avro_schema *schema;       /* NULL for a JSON schema or an unusable one */
    const oms_avro_schema *reader; /* the store's latest of the same name */
    oms_event_type type;
    bool json;  /* the registry holds a JSON schema: the body is a JSON record */
    bool fast;  /* the writer is what the hand reader reads (and what it resolves to) */
    char *error; /* why records written with it cannot be read, NULL when they can */
};

oms_events *oms_events_new(const char *extra_schema_dir, char *errbuf, size_t errlen)
{
    oms_events *e = calloc(1, sizeof *e);
    if (!e || !(e->store = oms_avro_store_new())) {
        oms_errf(errbuf, errlen, "out of memory");
        free(e);
        return NULL;
    }
    if (oms_avro_store_load_embedded(e->store, errbuf, errlen) < 0)
        goto fail;
    if (extra_schema_dir && *extra_schema_dir &&
        oms_avro_store_load_dir(e->store, extra_schema_dir, errbuf, errlen) < 0)
        goto fail;
    for (int t = 0; t < OMS_EV__COUNT; t++) {
        const char *text = NULL;
        for (const oms_embedded_schema *es = oms_embedded_schemas; es->file; es++)
            if (strcmp(es->file, writer_files[t]) == 0)
                text = es->text;
        if (!text) {
            oms_errf(errbuf, errlen, "schema file '%s' is not built in", writer_files[t]);
            goto fail;
        }
        oms_avro_schema *s = oms_avro_schema_parse(text, errbuf, errlen);
        if (!s)
            goto fail;
        uint64_t fp = oms_avro_schema_fingerprint(s);
        oms_avro_schema_free(s);
        e->writer[t] = oms_avro_store_get(e->store, fp);
        if (!e->writer[t]) {
            oms_errf(errbuf, errlen, "schema '%s' missing from the store", writer_files[t]);
            goto fail;
        }
        oms_avro_soe_header(fp, e->header[t]);
        e->fp[t] = fp;
        /* the generic path reads with the latest schema of the name: fast
         * only when that is the writer's (then it does not resolve either) */
        const char *canon = oms_avro_schema_canonical(e->writer[t]);
        const oms_avro_schema *latest =
            oms_avro_store_latest(e->store, oms_avro_schema_name(e->writer[t]));
        e->fast[t] = strcmp(canon, fast_canonical[t]) == 0 && latest &&
                     strcmp(oms_avro_schema_canonical(latest), canon) == 0;
    }
    return e;
fail:
    oms_events_free(e);
    return NULL;
}

void oms_events_free(oms_events *e)
{
    if (!e)
        return;
    if (e->lookup_ctx_free)
        e->lookup_ctx_free(e->lookup_ctx);
    oms_avro_store_free(e->store);
    free(e);
}

const oms_avro_store *oms_events_store(const oms_events *e)
{
    return e->store;
}

const oms_avro_schema *oms_events_writer_schema(const oms_events *e, oms_event_type t)
{
    return (unsigned)t < OMS_EV__COUNT ? e->writer[t] : NULL;
}

/* ---- binary writer ------------------------------------------------------------ */

typedef struct {
    uint8_t *p;
    uint8_t *end;
    int overflow;
} wbuf;

static void put_bytes(wbuf *w, const void *src, size_t n)
{
    if (n == 0)
        return;
    if ((size_t)(w->end - w->p) < n) {
        w->overflow = 1;
        w->p = w->end;
        return;
    }
    memcpy(w->p, src, n);
    w->p += n;
}

static void put_long(wbuf *w, int64_t v)
{
    uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
    uint8_t tmp[10];
    size_t n = 0;
    while (z >= 0x80) {
        tmp[n++] = (uint8_t)(z | 0x80);
        z >>= 7;
    }
    tmp[n++] = (uint8_t)z;
    put_bytes(w, tmp, n);
}

static void put_double(wbuf *w, double d)
{
    uint64_t bits;
    memcpy(&bits, &d, 8);
    uint8_t tmp[8];
    for (int i = 0; i < 8; i++)
        tmp[i] = (uint8_t)(bits >> (8 * i));
    put_bytes(w, tmp, 8);
}

static void put_str(wbuf *w, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    put_long(w, (int64_t)n);
    put_bytes(w, s, n);
}

/* ["null","string"] */
static void put_opt_str(wbuf *w, const char *s)
{
    if (!s) {
        put_long(w, 0);
    } else {
        put_long(w, 1);
        put_str(w, s);
    }
}

static void put_envelope(wbuf *w, const oms_event *ev)
{
    put_str(w, ev->event_id);
    put_str(w, oms_event_type_name(ev->type));
    put_long(w, ev->occurred_at);
    put_str(w, ev->source);
    put_opt_str(w, ev->trace_id);
}

int oms_event_encode(const oms_events *e, const oms_event *ev, uint8_t *out, size_t cap,
                     size_t *written, char *errbuf, size_t errlen)
{
    int rc = oms_event_validate(ev, errbuf, errlen);
    if (rc != OMS_OK)
        return rc;
    wbuf w = {out, out + cap, 0};
    put_bytes(&w, e->header[ev->type], OMS_AVRO_SOE_HEADER_LEN);
    put_envelope(&w, ev);
    switch (ev->type) {
    case OMS_EV_ORDER_CREATED:
        put_str(&w, ev->order_id);
        put_str(&w, ev->alias_id);
        put_long(&w, ev->user_id);
        put_str(&w, ev->status);
        put_double(&w, ev->total_amount);
        if (ev->nitems > 0) {
            put_long(&w, (int64_t)ev->nitems);
            for (size_t i = 0; i < ev->nitems; i++) {
                put_long(&w, ev->items[i].product_id);
                put_str(&w, ev->items[i].product_name);
                put_long(&w, ev->items[i].quantity);
                put_double(&w, ev->items[i].price);
            }
        }
        put_long(&w, 0);
        put_opt_str(&w, ev->message);
        break;
    case OMS_EV_ORDER_STATUS_CHANGED:
        put_str(&w, ev->order_id);
        put_str(&w, ev->alias_id);
        put_long(&w, ev->user_id);
        put_str(&w, ev->status);
        put_opt_str(&w, ev->previous_status);
        put_opt_str(&w, ev->message);
        break;
    case OMS_EV_INVENTORY_CHANGED:
        put_long(&w, ev->product_id);
        put_str(&w, ev->product_name);
        put_long(&w, ev->quantity);
        put_long(&w, ev->threshold);
        put_str(&w, ev->status);
        put_long(&w, ev->delta);
        break;
    case OMS_EV_USER_NOTIFICATION:
        put_long(&w, ev->user_id);
        put_str(&w, ev->title);
        put_str(&w, ev->message);
        put_opt_str(&w, ev->data_json);
        break;
    case OMS_EV_SYSTEM_NOTIFICATION:
        put_str(&w, ev->title);
        put_str(&w, ev->message);
        put_str(&w, ev->severity ? ev->severity : "info");
        put_opt_str(&w, ev->data_json);
        break;
    default:
        break;
    }
    if (w.overflow) {
        oms_errf(errbuf, errlen, "encoded event does not fit in %zu bytes", cap);
        return OMS_ERANGE;
    }
    *written = (size_t)(w.p - out);
    return OMS_OK;
}

int oms_event_decode_generic(const oms_events *e, const uint8_t *buf, size_t len, oms_event *ev,
                             char *errbuf, size_t errlen)
{
    memset(ev, 0, sizeof *ev);
    json_t *obj = NULL;
    const oms_avro_schema *writer = NULL;
    int rc = oms_avro_store_decode(e->store, buf, len, &obj, &writer, errbuf, errlen);
    if (rc != OMS_OK)
        return rc;
    oms_event_type type;
    const char *name = oms_avro_schema_name(writer);
    const char *dot = strrchr(name, '.');
    if (strncmp(name, "oms.events.", 11) != 0 ||
        oms_event_type_parse(dot ? dot + 1 : name, &type) != OMS_OK) {
        oms_errf(errbuf, errlen, "schema '%s' is not an oms event", name);
        json_decref(obj);
        return OMS_ESCHEMA;
    }
    rc = oms_event_from_json(obj, type, ev, errbuf, errlen);
    json_decref(obj);
    if (rc == OMS_OK) {
        rc = oms_event_validate(ev, errbuf, errlen);
        if (rc != OMS_OK)
            oms_event_clear(ev);
    }
    return rc;
}

/* ---- fast decoder ------------------------------------------------------------------
 *
 * Reads the body of a record written with fast_canonical[t] straight into
 * the event, with the generic path's checks in the generic path's order, so
 * that both return the same code and the same message for every input:
 *   1. the Avro structure, field by field (pkg/avro's codec.c: varints of at
 *      most 10 bytes, lengths >= 0 and <= the bytes left, union indexes,
 *      UTF-8, finite doubles, array block counts against the bytes left),
 *      then no trailing bytes;
 *   2. what oms_event_from_json() checks of that JSON (the "type" member
 *      names this type, eventId has 36 characters, data is a JSON object);
 *   3. oms_event_validate(), the same function.
 * Strings are C strings cut at a NUL, as jansson's json_string_value() and
 * strdup() make them on the generic path. One allocation per event (the
 * arena): the items array, then every string. Its size is bounded by the
 * body: a string of n bytes takes at least n + 1 bytes of input (its length
 * comes first) and an item at least ITEM_MIN. */

#define ITEM_MIN 11 /* encoded OrderItem: long, string, int (1 byte each), double (8) */

typedef struct {
    const uint8_t *start, *p, *end;
    char *s; /* next free byte of the arena's string area */
    oms_order_item *items;
    size_t maxitems;
    char msg[256];
    char path[64];
} fdec;

#define FD_OFF(d) ((size_t)((d)->p - (d)->start))
#define FD_LEFT(d) ((size_t)((d)->end - (d)->p))

__attribute__((format(printf, 3, 4))) static int fd_err(fdec *d, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->msg, sizeof d->msg, fmt, ap);
    va_end(ap);
    return code;
}

/* the field the failed read belongs to, as codec.c writes the path */
static int fd_at(fdec *d, int code, const char *field)
{
    snprintf(d->path, sizeof d->path, "%s", field);
    return code;
}

static int fd_at_item(fdec *d, int code, size_t idx, const char *field)
{
    snprintf(d->path, sizeof d->path, "items[%zu].%s", idx, field);
    return code;
}

static int fd_varint_slow(fdec *d, uint64_t *out, const char *what)
{
    const uint8_t *p = d->p;
    uint64_t acc = 0;
    for (unsigned i = 0; i < 10; i++) {
        if (p >= d->end)
            return fd_err(d, OMS_ETRUNC, "truncated: %s at offset %zu ends after %u bytes", what,
                          FD_OFF(d), i);
        uint8_t b = *p++;
        if (i == 9) {
            if (b & 0x80)
                return fd_err(d, OMS_EINVAL, "%s at offset %zu: varint longer than 10 bytes",
                              what, FD_OFF(d));
            if (b > 1)
                return fd_err(d, OMS_EINVAL, "%s at offset %zu: varint overflows 64 bits", what,
                              FD_OFF(d));
        }
        acc |= (uint64_t)(b & 0x7F) << (7 * i);
        if (!(b & 0x80)) {
            d->p = p;
            *out = acc;
            return 0;
        }
    }
    return fd_err(d, OMS_EINVAL, "%s at offset %zu: varint longer than 10 bytes", what, FD_OFF(d));
}

static inline int fd_long(fdec *d, int64_t *v, const char *what)
{
    uint64_t u;
    const uint8_t *p = d->p;
    if (p < d->end && !(*p & 0x80)) {
        u = *p;
        d->p = p + 1;
    } else {
        int rc = fd_varint_slow(d, &u, what);
        if (rc)
            return rc;
    }
    *v = (int64_t)((u >> 1) ^ (0 - (u & 1)));
    return 0;
}

static inline int fd_int(fdec *d, int32_t *v)
{
    size_t off = FD_OFF(d);
    int64_t l = 0;
    int rc = fd_long(d, &l, "int");
    if (rc)
        return rc;
    if (l < INT32_MIN || l > INT32_MAX)
        return fd_err(d, OMS_EINVAL, "%s at offset %zu: %" PRId64 " does not fit an int", "int",
                      off, l);
    *v = (int32_t)l;
    return 0;
}

static inline int fd_double(fdec *d, double *v)
{
    if (FD_LEFT(d) < 8)
        return fd_err(d, OMS_ETRUNC, "truncated: need %zu bytes for %s at offset %zu, %zu left",
                      (size_t)8, "double", FD_OFF(d), FD_LEFT(d));
    uint64_t u = 0;
    for (int i = 7; i >= 0; i--)
        u = u << 8 | d->p[i];
    double x;
    memcpy(&x, &u, 8);
    if (!isfinite(x))
        return fd_err(d, OMS_EINVAL,
                      "double at offset %zu is NaN or infinite (not representable in JSON)",
                      FD_OFF(d));
    d->p += 8;
    *v = x;
    return 0;
}

/* A string's length prefix: >= 0 and no more than the bytes left. */
static inline int fd_strlen(fdec *d, size_t *n)
{
    size_t off = FD_OFF(d);
    int64_t l = 0;
    int rc = fd_long(d, &l, "string");
    if (rc)
        return rc;
    if (l < 0)
        return fd_err(d, OMS_EINVAL, "negative length %" PRId64 " for %s at offset %zu", l,
                      "string", off);
    if ((uint64_t)l > FD_LEFT(d))
        return fd_err(d, OMS_ETRUNC,
                      "truncated: need %" PRId64 " bytes for %s at offset %zu, %zu left", l,
                      "string", FD_OFF(d), FD_LEFT(d));
    *n = (size_t)l;
    return 0;
}

#define HIGH_BITS 0x8080808080808080ull

/* The n string bytes at d->p, when some is not ASCII: UTF-8 or an error. */
static int fd_utf8(fdec *d, size_t n)
{
    size_t bad = oms_ev_utf8_check(d->p, n);
    if (bad != n)
        return fd_err(d, OMS_EINVAL, "invalid UTF-8 in %s at offset %zu", "string",
                      FD_OFF(d) + bad);
    return 0;
}

/* A string's bytes, checked, left in the input. */
static inline int fd_str(fdec *d, const uint8_t **s, size_t *n)
{
    int rc = fd_strlen(d, n);
    if (rc)
        return rc;
    uint64_t acc = 0;
    size_t i = 0;
    for (; i + 8 <= *n; i += 8) {
        uint64_t w;
        memcpy(&w, d->p + i, 8);
        acc |= w;
    }
    for (; i < *n; i++)
        acc |= d->p[i];
    if ((acc & HIGH_BITS) && (rc = fd_utf8(d, *n)))
        return rc;
    *s = d->p;
    d->p += *n;
    return 0;
}

/* A string copied into the arena as a C string; the copy notes whether
 * every byte is ASCII, and only when not is the UTF-8 checked. */
static inline int fd_string(fdec *d, char **out)
{
    size_t n = 0;
    int rc = fd_strlen(d, &n);
    if (rc)
        return rc;
    const uint8_t *s = d->p;
    char *o = d->s;
    uint64_t acc = 0;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        acc |= w;
        memcpy(o + i, &w, 8);
    }
    for (; i < n; i++) {
        acc |= s[i];
        o[i] = (char)s[i];
    }
    if ((acc & HIGH_BITS) && (rc = fd_utf8(d, n)))
        return rc;
    o[n] = '\0';
    *out = o;
    d->s += n + 1;
    d->p += n;
    return 0;
}

/* ["null","string"] */
static inline int fd_opt_string(fdec *d, char **out)
{
    size_t off = FD_OFF(d);
    int64_t i = 0;
    int rc = fd_long(d, &i, "union index");
    if (rc)
        return rc;
    if (i < 0 || i >= 2)
        return fd_err(d, OMS_EINVAL,
                      "union index %" PRId64 " at offset %zu out of range (%zu branches)", i, off,
                      (size_t)2);
    if (i == 0) {
        *out = NULL;
        return 0;
    }
    return fd_string(d, out);
}

static int fd_items(fdec *d, oms_event *ev)
{
    size_t idx = 0;
    int rc;
    for (;;) {
        size_t off = FD_OFF(d);
        int64_t n = 0;
        if ((rc = fd_long(d, &n, "block count")))
            return rc;
        if (n < 0) {
            if (n == INT64_MIN)
                return fd_err(d, OMS_EINVAL, "invalid %s block count at offset %zu", "array", off);
            n = -n;
            int64_t sz = 0;
            if ((rc = fd_long(d, &sz, "block size")))
                return rc;
            if (sz < 0)
                return fd_err(d, OMS_EINVAL, "negative %s block size %" PRId64 " at offset %zu",
                              "array", sz, off);
            if ((uint64_t)sz > FD_LEFT(d))
                return fd_err(d, OMS_ETRUNC,
                              "truncated: %s block of %" PRId64 " bytes at offset %zu, %zu left",
                              "array", sz, off, FD_LEFT(d));
            /* the generic decoder checks the size and then reads the items
             * one by one all the same */
        }
        if (n == 0)
            break;
        if ((uint64_t)n > FD_LEFT(d) / ITEM_MIN)
            return fd_err(d, OMS_ETRUNC,
                          "truncated: %s block of %" PRId64
                          " items at offset %zu cannot fit in %zu bytes left",
                          "array", n, off, FD_LEFT(d));
        for (int64_t k = 0; k < n; k++, idx++) {
            /* cannot happen: each item read took ITEM_MIN bytes at least */
            if (idx >= d->maxitems)
                return fd_at(d, fd_err(d, OMS_EINVAL, "more items than bytes"), "items");
            oms_order_item *it = &d->items[idx];
            if ((rc = fd_long(d, &it->product_id, "long")))
                return fd_at_item(d, rc, idx, "productId");
            if ((rc = fd_string(d, &it->product_name)))
                return fd_at_item(d, rc, idx, "productName");
            if ((rc = fd_int(d, &it->quantity)))
                return fd_at_item(d, rc, idx, "quantity");
            if ((rc = fd_double(d, &it->price)))
                return fd_at_item(d, rc, idx, "price");
        }
    }
    ev->nitems = idx;
    ev->items = idx ? d->items : NULL;
    return 0;
}

#define FD(field, call)                                                                            \
    do {                                                                                           \
        int rc_ = (call);                                                                          \
        if (rc_)                                                                                   \
            return fd_at(d, rc_, field);                                                           \
    } while (0)

/* Step 1: the Avro structure. Leaves eventId and type in the input. */
static int fd_body(fdec *d, oms_event_type t, oms_event *ev, const uint8_t **id, size_t *idn,
                   const uint8_t **type, size_t *typen)
{
    FD("eventId", fd_str(d, id, idn));
    FD("type", fd_str(d, type, typen));
    FD("occurredAt", fd_long(d, &ev->occurred_at, "long"));
    FD("source", fd_string(d, &ev->source));
    FD("traceId", fd_opt_string(d, &ev->trace_id));
    switch (t) {
    case OMS_EV_ORDER_CREATED:
    case OMS_EV_ORDER_STATUS_CHANGED:
        FD("orderId", fd_string(d, &ev->order_id));
        FD("aliasId", fd_string(d, &ev->alias_id));
        FD("userId", fd_long(d, &ev->user_id, "long"));
        FD("status", fd_string(d, &ev->status));
        if (t == OMS_EV_ORDER_CREATED) {
            FD("totalAmount", fd_double(d, &ev->total_amount));
            int rc = fd_items(d, ev);
            if (rc)
                return d->path[0] ? rc : fd_at(d, rc, "items");
        } else {
            FD("previousStatus", fd_opt_string(d, &ev->previous_status));
        }
        FD("message", fd_opt_string(d, &ev->message));
        break;
    case OMS_EV_INVENTORY_CHANGED:
        FD("productId", fd_long(d, &ev->product_id, "long"));
        FD("productName", fd_string(d, &ev->product_name));
        FD("quantity", fd_int(d, &ev->quantity));
        FD("threshold", fd_int(d, &ev->threshold));
        FD("status", fd_string(d, &ev->status));
        FD("delta", fd_int(d, &ev->delta));
        break;
    case OMS_EV_USER_NOTIFICATION:
        FD("userId", fd_long(d, &ev->user_id, "long"));
        FD("title", fd_string(d, &ev->title));
        FD("message", fd_string(d, &ev->message));
        FD("data", fd_opt_string(d, &ev->data_json));
        break;
    case OMS_EV_SYSTEM_NOTIFICATION:
        FD("title", fd_string(d, &ev->title));
        FD("message", fd_string(d, &ev->message));
        FD("severity", fd_string(d, &ev->severity));
        FD("data", fd_opt_string(d, &ev->data_json));
        break;
    default:
        break;
    }
    if (d->p != d->end)
        return fd_err(d, OMS_EINVAL, "trailing garbage: %zu bytes after the datum at offset %zu",
                      FD_LEFT(d), FD_OFF(d));
    return 0;
}

/* from_json's type check: oms_event_type_parse() of the C string names t.
 * scratch has room for n + 1 bytes. */
static bool type_names(const uint8_t *s, size_t n, oms_event_type t, char *scratch)
{
    const char *name = oms_event_type_name(t);
    size_t nl = strlen(name);
    if (n == nl && memcmp(s, name, n) == 0)
        return true;
    memcpy(scratch, s, n);
    scratch[n] = '\0';
    oms_event_type got;
    return oms_event_type_parse(scratch, &got) == OMS_OK && got == t;
}

static int fast_decode(oms_event_type t, const uint8_t *body, size_t blen, oms_event *ev,
                       char *errbuf, size_t errlen)
{
    memset(ev, 0, sizeof *ev);
    size_t maxitems = t == OMS_EV_ORDER_CREATED ? blen / ITEM_MIN : 0;
    size_t isz = maxitems * sizeof(oms_order_item);
    char *arena = malloc(isz + blen + 1);
    if (!arena) {
        oms_errf(errbuf, errlen, "out of memory");
        return OMS_ENOMEM;
    }
    fdec d;
    d.start = d.p = body;
    d.end = body + blen;
    d.s = arena + isz;
    d.items = (oms_order_item *)(void *)arena;
    d.maxitems = maxitems;
    d.path[0] = '\0';
    const uint8_t *id = NULL, *type = NULL;
    size_t idn = 0, typen = 0;
    int rc = fd_body(&d, t, ev, &id, &idn, &type, &typen);
    if (rc) {
        if (d.path[0])
            oms_errf(errbuf, errlen, "field '%s': %s", d.path, d.msg);
        else
            oms_errf(errbuf, errlen, "%s", d.msg);
        goto fail;
    }
    /* step 2: from_json */
    if (!type_names(type, typen, t, d.s)) {
        oms_errf(errbuf, errlen, "type: must be '%s'", oms_event_type_name(t));
        rc = OMS_EINVAL;
        goto fail;
    }
    if (strnlen((const char *)id, idn) != 36) {
        oms_errf(errbuf, errlen, "eventId: must be a UUID string");
        rc = OMS_EINVAL;
        goto fail;
    }
    memcpy(ev->event_id, id, 36);
    ev->event_id[36] = '\0';
    if (ev->data_json && !oms_ev_json_is_compact_object(ev->data_json)) {
        json_t *dj = json_loads(ev->data_json, JSON_DECODE_ANY, NULL);
        bool ok = dj && json_is_object(dj);
        json_decref(dj);
        if (!ok) {
            oms_errf(errbuf, errlen, "data: must be a JSON object (or its text)");
            rc = OMS_EINVAL;
            goto fail;
        }
    }
    ev->type = t;
    ev->arena = arena;
    /* step 3, but for the data, just found to be an object */
    rc = oms_ev_validate(ev, true, errbuf, errlen);
    if (rc != OMS_OK)
        oms_event_clear(ev);
    return rc;
fail:
    free(arena);
    memset(ev, 0, sizeof *ev);
    return rc;
}

bool oms_events_fast_decode(const oms_events *e, oms_event_type t)
{
    return (unsigned)t < OMS_EV__COUNT && e->fast[t];
}

/* ---- wire formats --------------------------------------------------------------- */

oms_wire_format oms_event_wire_format(const uint8_t *buf, size_t len)
{
    if (!buf || len == 0)
        return OMS_WIRE_UNKNOWN;
    if (buf[0] == OMS_AVRO_SOE_MAGIC0)
        return len >= 2 && buf[1] == OMS_AVRO_SOE_MAGIC1 ? OMS_WIRE_SOE : OMS_WIRE_UNKNOWN;
    if (buf[0] == OMS_CONFLUENT_MAGIC)
        return OMS_WIRE_CONFLUENT;
    /* JSON may start with blanks (RFC 8259); an object is what a record is */
    size_t i = 0;
    while (i < len && (buf[i] == ' ' || buf[i] == '\t' || buf[i] == '\n' || buf[i] == '\r'))
        i++;
    return i < len && buf[i] == '{' ? OMS_WIRE_JSON : OMS_WIRE_UNKNOWN;
}

const char *oms_wire_format_name(oms_wire_format f)
{
    switch (f) {
    case OMS_WIRE_SOE: return "soe";
    case OMS_WIRE_CONFLUENT: return "confluent";
    case OMS_WIRE_JSON: return "json";
    default: return "unknown";
    }
}

int oms_wire_format_parse(const char *s, oms_wire_format *out)
{
    for (int f = 0; f < OMS_WIRE_UNKNOWN; f++)
        if (s && strcasecmp(s, oms_wire_format_name((oms_wire_format)f)) == 0) {
            *out = (oms_wire_format)f;
            return OMS_OK;
        }
    return OMS_EINVAL;
}

void oms_events_set_lookup(oms_events *e, oms_events_lookup_fn fn, void *ctx,
                           void (*ctx_free)(void *))
{
    if (e->lookup_ctx_free)
        e->lookup_ctx_free(e->lookup_ctx);
    e->lookup = fn;
    e->lookup_ctx = ctx;
    e->lookup_ctx_free = ctx_free;
}

static oms_events_writer *writer_fail(oms_events_writer *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static oms_events_writer *writer_fail(oms_events_writer *w, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    oms_avro_schema_free(w->schema);
    w->schema = NULL;
    w->reader = NULL;
    w->fast = false;
    if (!(w->error = strdup(buf))) {
        free(w);
        return NULL;
    }
    return w;
}

oms_events_writer *oms_events_writer_new(const oms_events *e, const char *schema_text,
                                         const char *schema_type)
{
    oms_events_writer *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->type = OMS_EV__COUNT;
    if (schema_type && *schema_type && strcasecmp(schema_type, "AVRO") != 0) {
        if (strcasecmp(schema_type, "JSON") == 0) {
            /* the JSON Schema itself is not needed: records are held to the
             * event model, as plain JSON records are */
            w->json = true;
            return w;
        }
        return writer_fail(w, "schema type %s is not supported (AVRO or JSON)", schema_type);
    }
    char err[384];
    if (!schema_text || !(w->schema = oms_avro_schema_parse(schema_text, err, sizeof err)))
        return writer_fail(w, "registered schema does not parse: %s",
                           schema_text ? err : "no schema text");
    const char *name = oms_avro_schema_name(w->schema);
    const char *dot = strrchr(name, '.');
    oms_event_type t;
    if (strncmp(name, "oms.events.", 11) != 0 || !dot ||
        oms_event_type_parse(dot + 1, &t) != OMS_OK || strcmp(oms_event_schema_name(t), name))
        return writer_fail(w, "registered schema '%s' is not an oms event (oms.events.OrderCreated, "
                              "...)",
                           name);
    w->type = t;
    w->reader = oms_avro_store_latest(e->store, name);
    if (!w->reader)
        return writer_fail(w, "no reader schema for '%s'", name);
    if (oms_avro_check_compatible(w->schema, w->reader, err, sizeof err) != OMS_OK)
        return writer_fail(w, "registered schema '%s' cannot be resolved to ours: %s", name, err);
    const char *canon = oms_avro_schema_canonical(w->schema);
    w->fast = e->fast[t] && strcmp(canon, fast_canonical[t]) == 0;
    return w;
}

void oms_events_writer_free(oms_events_writer *w)
{
    if (!w)
        return;
    oms_avro_schema_free(w->schema);
    free(w->error);
    free(w);
}

const char *oms_events_writer_error(const oms_events_writer *w)
{
    return w->error;
}

/* A resolved Avro body: pkg/avro resolves the writer to the reader (defaults,
 * promotions, field order), then the JSON shape goes the generic way. */
static int decode_resolved(const oms_events_writer *w, const uint8_t *body, size_t blen,
                           oms_event *ev, char *errbuf, size_t errlen)
{
    json_t *obj = NULL;
    int rc = oms_avro_decode_json(w->schema, w->reader, body, blen, &obj, errbuf, errlen);
    if (rc != OMS_OK)
        return rc;
    rc = oms_event_from_json(obj, w->type, ev, errbuf, errlen);
    json_decref(obj);
    if (rc == OMS_OK) {
        rc = oms_event_validate(ev, errbuf, errlen);
        if (rc != OMS_OK)
            oms_event_clear(ev);
    }
    return rc;
}

/* ev is zeroed on error here, or by the decoder the body goes to */
static int decode_confluent(const oms_events *e, const uint8_t *buf, size_t len, oms_event *ev,
                            char *errbuf, size_t errlen)
{
    if (len < OMS_CONFLUENT_HEADER_LEN) {
        memset(ev, 0, sizeof *ev);
        oms_errf(errbuf, errlen, "confluent record of %zu bytes, shorter than its 5-byte header",
                 len);
        return OMS_ETRUNC;
    }
    uint32_t id = (uint32_t)buf[1] << 24 | (uint32_t)buf[2] << 16 | (uint32_t)buf[3] << 8 | buf[4];
    if (!e->lookup) {
        memset(ev, 0, sizeof *ev);
        oms_errf(errbuf, errlen,
                 "schema id %" PRIu32 ": confluent record but no schema registry configured "
                 "(schema_registry.url)",
                 id);
        return OMS_ENOTFOUND;
    }
    const oms_events_writer *w = NULL;
    char lerr[384];
    lerr[0] = '\0';
    int rc = e->lookup(e->lookup_ctx, id, &w, lerr, sizeof lerr);
    if (rc != OMS_OK || w->error)
        memset(ev, 0, sizeof *ev);
    if (rc != OMS_OK) {
        oms_errf(errbuf, errlen, "schema id %" PRIu32 ": %s", id, lerr[0] ? lerr : oms_strerror(rc));
        return rc;
    }
    if (w->error) {
        oms_errf(errbuf, errlen, "schema id %" PRIu32 ": %s", id, w->error);
        return OMS_ESCHEMA;
    }
    const uint8_t *body = buf + OMS_CONFLUENT_HEADER_LEN;
    size_t blen = len - OMS_CONFLUENT_HEADER_LEN;
    char derr[384];
    if (w->json)
        rc = oms_event_decode_json_record(body, blen, ev, derr, sizeof derr);
    else if (w->fast)
        rc = fast_decode(w->type, body, blen, ev, derr, sizeof derr);
    else
        rc = decode_resolved(w, body, blen, ev, derr, sizeof derr);
    /* the id says which schema the body did not match */
    if (rc != OMS_OK)
        oms_errf(errbuf, errlen, "schema id %" PRIu32 ": %s", id, derr);
    return rc;
}

int oms_event_encode_confluent(const oms_events *e, const oms_event *ev, uint32_t schema_id,
                               uint8_t *out, size_t cap, size_t *written, char *errbuf,
                               size_t errlen)
{
    /* the single-object encoding is 5 bytes longer: encode it there and put
     * the Confluent header over the end of its own */
    const size_t shift = OMS_AVRO_SOE_HEADER_LEN - OMS_CONFLUENT_HEADER_LEN;
    size_t n = 0;
    if (cap < OMS_CONFLUENT_HEADER_LEN) {
        oms_errf(errbuf, errlen, "encoded event does not fit in %zu bytes", cap);
        return OMS_ERANGE;
    }
    uint8_t *tmp = malloc(cap + shift);
    if (!tmp) {
        oms_errf(errbuf, errlen, "out of memory");
        return OMS_ENOMEM;
    }
    int rc = oms_event_encode(e, ev, tmp, cap + shift, &n, errbuf, errlen);
    if (rc == OMS_OK) {
        out[0] = OMS_CONFLUENT_MAGIC;
        out[1] = (uint8_t)(schema_id >> 24);
        out[2] = (uint8_t)(schema_id >> 16);
        out[3] = (uint8_t)(schema_id >> 8);
        out[4] = (uint8_t)schema_id;
        memcpy(out + OMS_CONFLUENT_HEADER_LEN, tmp + OMS_AVRO_SOE_HEADER_LEN,
               n - OMS_AVRO_SOE_HEADER_LEN);
        *written = n - shift;
    }
    free(tmp);
    return rc;
}

int oms_event_encode_wire(const oms_events *e, oms_wire_format f, const uint32_t *ids,
                          const oms_event *ev, uint8_t *out, size_t cap, size_t *written,
                          char *errbuf, size_t errlen)
{
    switch (f) {
    case OMS_WIRE_SOE: return oms_event_encode(e, ev, out, cap, written, errbuf, errlen);
    case OMS_WIRE_JSON: return oms_event_encode_json_record(ev, out, cap, written, errbuf, errlen);
    case OMS_WIRE_CONFLUENT:
        if (ids && (unsigned)ev->type < OMS_EV__COUNT)
            return oms_event_encode_confluent(e, ev, ids[ev->type], out, cap, written, errbuf,
                                              errlen);
        break;
    default: break;
    }
    oms_errf(errbuf, errlen, "cannot encode in format %s", oms_wire_format_name(f));
    return OMS_EINVAL;
}

int oms_event_decode(const oms_events *e, const uint8_t *buf, size_t len, oms_event *ev,
                     char *errbuf, size_t errlen)
{
    if (buf && len > 0 && buf[0] != OMS_AVRO_SOE_MAGIC0) {
        oms_wire_format f = oms_event_wire_format(buf, len);
        if (f == OMS_WIRE_CONFLUENT)
            return decode_confluent(e, buf, len, ev, errbuf, errlen);
        if (f == OMS_WIRE_JSON)
            return oms_event_decode_json_record(buf, len, ev, errbuf, errlen);
        memset(ev, 0, sizeof *ev);
        oms_errf(errbuf, errlen,
                 "unknown wire format: first byte %02x, expected c3 01 (single-object Avro), 00 "
                 "(Confluent framing) or a JSON object",
                 buf[0]);
        return OMS_EMAGIC;
    }
    if (buf && len >= OMS_AVRO_SOE_HEADER_LEN && buf[0] == OMS_AVRO_SOE_MAGIC0 &&
        buf[1] == OMS_AVRO_SOE_MAGIC1) {
        uint64_t fp = 0;
        for (int i = 7; i >= 0; i--)
            fp = fp << 8 | buf[2 + i];
        for (int t = 0; t < OMS_EV__COUNT; t++)
            if (e->fp[t] == fp && e->fast[t])
                return fast_decode((oms_event_type)t, buf + OMS_AVRO_SOE_HEADER_LEN,
                                   len - OMS_AVRO_SOE_HEADER_LEN, ev, errbuf, errlen);
    }
    return oms_event_decode_generic(e, buf, len, ev, errbuf, errlen);
}
