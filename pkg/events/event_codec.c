/* codec.c — Avro single-object encoding of events.
 *
 * The encoder writes the schemas named in writer_files[] field by field; the
 * unit test test_events.c checks it byte for byte against the generic encoder
 * of pkg/avro, so a schema change that is not mirrored here fails the build's
 * tests rather than the wire. */
#include "events/events.h"

#include <stdlib.h>
#include <string.h>

#include "avro/embedded.h"

static const char *const writer_files[OMS_EV__COUNT] = {
    [OMS_EV_ORDER_CREATED] = "order_created.v1.avsc",
    [OMS_EV_ORDER_STATUS_CHANGED] = "order_status_changed.v1.avsc",
    [OMS_EV_INVENTORY_CHANGED] = "inventory_changed.v1.avsc",
    [OMS_EV_USER_NOTIFICATION] = "user_notification.v1.avsc",
    [OMS_EV_SYSTEM_NOTIFICATION] = "system_notification.v1.avsc",
};

struct oms_events {
    oms_avro_store *store;
    const oms_avro_schema *writer[OMS_EV__COUNT];
    uint8_t header[OMS_EV__COUNT][OMS_AVRO_SOE_HEADER_LEN];
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

int oms_event_decode(const oms_events *e, const uint8_t *buf, size_t len, oms_event *ev,
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
