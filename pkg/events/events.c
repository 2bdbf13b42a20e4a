/* events.c — event types, validation and the JSON shapes. */
#include "events/events.h"
#include "events/events_internal.h"
#include "json/json.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const struct {
    const char *name;
    const char *schema;
    const char *ws_name;
    const char *rt_type;
    oms_topic_kind topic;
} type_info[OMS_EV__COUNT] = {
    [OMS_EV_ORDER_CREATED] = {"OrderCreated", "oms.events.OrderCreated", "order_update",
                              "order_status", OMS_TOPIC_ORDERS},
    [OMS_EV_ORDER_STATUS_CHANGED] = {"OrderStatusChanged", "oms.events.OrderStatusChanged",
                                     "order_update", "order_status", OMS_TOPIC_ORDERS},
    [OMS_EV_INVENTORY_CHANGED] = {"InventoryChanged", "oms.events.InventoryChanged",
                                  "inventory_update", "inventory_update", OMS_TOPIC_INVENTORY},
    [OMS_EV_USER_NOTIFICATION] = {"UserNotification", "oms.events.UserNotification",
                                  "user_notification", "user_specific", OMS_TOPIC_NOTIFICATIONS},
    [OMS_EV_SYSTEM_NOTIFICATION] = {"SystemNotification", "oms.events.SystemNotification",
                                    "system_notification", "system_notification",
                                    OMS_TOPIC_NOTIFICATIONS},
};

static const char *const order_statuses[] = {"created", "confirmed", "shipped", "delivered",
                                             "cancelled", NULL};
static const char *const stock_statuses[] = {"in_stock", "low_stock", "out_of_stock", "restocked",
                                             NULL};
static const char *const severities[] = {"info", "warning", "critical", NULL};

const char *const *oms_event_statuses(oms_topic_kind kind)
{
    return kind == OMS_TOPIC_ORDERS ? order_statuses
           : kind == OMS_TOPIC_INVENTORY ? stock_statuses
                                         : NULL;
}

const char *oms_event_type_name(oms_event_type t)
{
    return (unsigned)t < OMS_EV__COUNT ? type_info[t].name : "unknown";
}

const char *oms_event_schema_name(oms_event_type t)
{
    return (unsigned)t < OMS_EV__COUNT ? type_info[t].schema : "unknown";
}

oms_topic_kind oms_event_topic_kind(oms_event_type t)
{
    return (unsigned)t < OMS_EV__COUNT ? type_info[t].topic : OMS_TOPIC_NOTIFICATIONS;
}

const char *oms_event_ws_name(oms_event_type t)
{
    return (unsigned)t < OMS_EV__COUNT ? type_info[t].ws_name : "unknown";
}

const char *oms_event_rt_type(oms_event_type t)
{
    return (unsigned)t < OMS_EV__COUNT ? type_info[t].rt_type : "unknown";
}

int oms_event_type_parse(const char *s, oms_event_type *out)
{
    if (!s)
        return OMS_ENOTFOUND;
    /* compare ignoring case and the separators - _ . */
    char norm[64];
    size_t n = 0;
    for (const char *p = s; *p && n + 1 < sizeof norm; p++) {
        if (*p == '-' || *p == '_' || *p == '.')
            continue;
        norm[n++] = (char)tolower((unsigned char)*p);
    }
    norm[n] = '\0';
    for (int i = 0; i < OMS_EV__COUNT; i++) {
        if (strcasecmp(norm, type_info[i].name) == 0) {
            *out = (oms_event_type)i;
            return OMS_OK;
        }
    }
    return OMS_ENOTFOUND;
}

/* decimal text of v; the key is built for every produced event, and
 * snprintf was a tenth of the producer's time */
static int fmt_i64(int64_t v, char *buf, size_t buflen)
{
    char tmp[24];
    int n = 0;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        tmp[n++] = '-';
    if ((size_t)n >= buflen)
        return OMS_ERANGE;
    for (int i = 0; i < n; i++)
        buf[i] = tmp[n - 1 - i];
    buf[n] = '\0';
    return n;
}

int oms_event_key(const oms_event *ev, char *buf, size_t buflen)
{
    const char *s;
    switch (ev->type) {
    case OMS_EV_ORDER_CREATED:
    case OMS_EV_ORDER_STATUS_CHANGED:
        s = ev->order_id ? ev->order_id : "";
        break;
    case OMS_EV_INVENTORY_CHANGED:
        return fmt_i64(ev->product_id, buf, buflen);
    case OMS_EV_USER_NOTIFICATION:
        return fmt_i64(ev->user_id, buf, buflen);
    default:
        s = "*";
        break;
    }
    size_t n = strlen(s);
    if (n >= buflen)
        return OMS_ERANGE;
    memcpy(buf, s, n + 1);
    return (int)n;
}

/* ---- validation ------------------------------------------------------------ */

static bool one_of(const char *s, const char *const *allowed)
{
    for (; s && *allowed; allowed++)
        if (strcmp(s, *allowed) == 0)
            return true;
    return false;
}

static void list_allowed(char *buf, size_t len, const char *const *allowed)
{
    size_t used = 0;
    buf[0] = '\0';
    for (; *allowed; allowed++) {
        int n = snprintf(buf + used, len - used, "%s%s", used ? ", " : "", *allowed);
        if (n < 0 || (size_t)n >= len - used)
            break;
        used += (size_t)n;
    }
}

static int need_str(const char *v, const char *field, char *errbuf, size_t errlen)
{
    if (!v || !*v) {
        oms_errf(errbuf, errlen, "%s: required, must be a non-empty string", field);
        return OMS_EINVAL;
    }
    return OMS_OK;
}

static int need_enum(const char *v, const char *field, const char *const *allowed, char *errbuf,
                     size_t errlen)
{
    if (!one_of(v, allowed)) {
        char list[160];
        list_allowed(list, sizeof list, allowed);
        oms_errf(errbuf, errlen, "%s: must be one of %s, got '%s'", field, list, v ? v : "");
        return OMS_EINVAL;
    }
    return OMS_OK;
}

/* 8-4-4-4-12 hex digits (isxdigit's set) in an event's event_id[37] (all
 * 37 bytes may be read). Every event is checked, and random hex defeats
 * branch prediction: table lookups folded together, no branch per byte. */
static bool valid_uuid(const char s[37])
{
    static const uint8_t hex[256] = {
        ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1,
        ['7'] = 1, ['8'] = 1, ['9'] = 1, ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1,
        ['e'] = 1, ['f'] = 1, ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1,
        ['F'] = 1,
    };
    const unsigned char *u = (const unsigned char *)s;
    unsigned ok = (u[8] == '-') & (u[13] == '-') & (u[18] == '-') & (u[23] == '-') & (u[36] == 0);
    for (int i = 0; i < 8; i++)
        ok &= hex[u[i]];
    for (int i = 9; i < 13; i++)
        ok &= hex[u[i]] & hex[u[i + 5]] & hex[u[i + 10]];
    for (int i = 24; i < 36; i++)
        ok &= hex[u[i]];
    return ok != 0;
}

#define CHECK(expr)                                                                                \
    do {                                                                                           \
        int rc_ = (expr);                                                                          \
        if (rc_ != OMS_OK)                                                                         \
            return rc_;                                                                            \
    } while (0)

int oms_event_validate(const oms_event *ev, char *errbuf, size_t errlen)
{
    return oms_ev_validate(ev, false, errbuf, errlen);
}

int oms_ev_validate(const oms_event *ev, bool data_checked, char *errbuf, size_t errlen)
{
    if ((unsigned)ev->type >= OMS_EV__COUNT) {
        oms_errf(errbuf, errlen, "type: unknown event type");
        return OMS_EINVAL;
    }
    if (!valid_uuid(ev->event_id)) {
        oms_errf(errbuf, errlen, "eventId: must be a UUID, got '%s'", ev->event_id);
        return OMS_EINVAL;
    }
    if (ev->occurred_at <= 0) {
        oms_errf(errbuf, errlen, "occurredAt: must be a positive epoch-millisecond timestamp");
        return OMS_EINVAL;
    }
    CHECK(need_str(ev->source, "source", errbuf, errlen));
    switch (ev->type) {
    case OMS_EV_ORDER_CREATED:
    case OMS_EV_ORDER_STATUS_CHANGED:
        CHECK(need_str(ev->order_id, "orderId", errbuf, errlen));
        CHECK(need_str(ev->alias_id, "aliasId", errbuf, errlen));
        if (ev->user_id <= 0) {
            oms_errf(errbuf, errlen, "userId: required, must be a positive integer");
            return OMS_EINVAL;
        }
        CHECK(need_enum(ev->status, "status", order_statuses, errbuf, errlen));
        if (ev->previous_status)
            CHECK(need_enum(ev->previous_status, "previousStatus", order_statuses, errbuf,
                            errlen));
        if (ev->type == OMS_EV_ORDER_CREATED) {
            if (!isfinite(ev->total_amount) || ev->total_amount < 0) {
                oms_errf(errbuf, errlen, "totalAmount: must be a number >= 0");
                return OMS_EINVAL;
            }
            for (size_t i = 0; i < ev->nitems; i++) {
                const oms_order_item *it = &ev->items[i];
                if (it->product_id <= 0) {
                    oms_errf(errbuf, errlen, "items[%zu].productId: must be a positive integer", i);
                    return OMS_EINVAL;
                }
                if (it->quantity <= 0) {
                    oms_errf(errbuf, errlen, "items[%zu].quantity: must be a positive integer", i);
                    return OMS_EINVAL;
                }
                if (!isfinite(it->price) || it->price < 0) {
                    oms_errf(errbuf, errlen, "items[%zu].price: must be a number >= 0", i);
                    return OMS_EINVAL;
                }
            }
        }
        break;
    case OMS_EV_INVENTORY_CHANGED:
        if (ev->product_id <= 0) {
            oms_errf(errbuf, errlen, "productId: required, must be a positive integer");
            return OMS_EINVAL;
        }
        CHECK(need_str(ev->product_name, "productName", errbuf, errlen));
        if (ev->quantity < 0) {
            oms_errf(errbuf, errlen, "quantity: must be >= 0");
            return OMS_EINVAL;
        }
        if (ev->threshold < 0) {
            oms_errf(errbuf, errlen, "threshold: must be >= 0");
            return OMS_EINVAL;
        }
        CHECK(need_enum(ev->status, "status", stock_statuses, errbuf, errlen));
        break;
    case OMS_EV_USER_NOTIFICATION:
        if (ev->user_id <= 0) {
            oms_errf(errbuf, errlen, "userId: required, must be a positive integer");
            return OMS_EINVAL;
        }
        /* fall through */
    case OMS_EV_SYSTEM_NOTIFICATION:
        CHECK(need_str(ev->title, "title", errbuf, errlen));
        CHECK(need_str(ev->message, "message", errbuf, errlen));
        if (ev->type == OMS_EV_SYSTEM_NOTIFICATION)
            CHECK(need_enum(ev->severity, "severity", severities, errbuf, errlen));
        if (ev->data_json && !data_checked && !oms_ev_json_is_compact_object(ev->data_json)) {
            /* not the compact form (which is surely fine): ask jansson */
            json_t *d = json_loads(ev->data_json, JSON_DECODE_ANY, NULL);
            bool ok = d && json_is_object(d);
            json_decref(d);
            if (!ok) {
                oms_errf(errbuf, errlen, "data: must be a JSON object");
                return OMS_EINVAL;
            }
        }
        break;
    default:
        break;
    }
    return OMS_OK;
}

int oms_event_fill_envelope(oms_event *ev, const char *default_source)
{
    if (ev->occurred_at == 0)
        ev->occurred_at = oms_now_ms();
    if (ev->event_id[0] == '\0')
        oms_uuid7(ev->occurred_at, ev->event_id);
    if (!ev->source && !(ev->source = strdup(default_source)))
        return OMS_ENOMEM;
    return OMS_OK;
}

/* ---- JSON in ------------------------------------------------------------------ */

typedef struct {
    const json_t *obj;
    char *errbuf;
    size_t errlen;
    const char *prefix; /* "items[2]." for nested objects */
} jin;

static int bad(jin *j, const char *field, const char *what)
{
    oms_errf(j->errbuf, j->errlen, "%s%s: %s", j->prefix, field, what);
    return OMS_EINVAL;
}

static int get_str(jin *j, const char *field, bool required, char **out)
{
    json_t *v = json_object_get(j->obj, field);
    if (!v || json_is_null(v)) {
        if (required)
            return bad(j, field, "required, must be a string");
        return OMS_OK;
    }
    if (!json_is_string(v))
        return bad(j, field, "must be a string");
    free(*out);
    *out = strdup(json_string_value(v));
    return *out ? OMS_OK : OMS_ENOMEM;
}

/* ids are numbers in the original API; accept an integer or a string of digits */
static int get_id(jin *j, const char *field, bool required, int64_t *out)
{
    json_t *v = json_object_get(j->obj, field);
    if (!v || json_is_null(v)) {
        if (required)
            return bad(j, field, "required, must be a positive integer");
        return OMS_OK;
    }
    if (json_is_integer(v)) {
        *out = (int64_t)json_integer_value(v);
        return OMS_OK;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        char *end;
        if (*s >= '0' && *s <= '9') {
            long long x = strtoll(s, &end, 10);
            if (*end == '\0') {
                *out = x;
                return OMS_OK;
            }
        }
    }
    return bad(j, field, "must be a positive integer");
}

static int get_int32(jin *j, const char *field, bool required, int32_t *out)
{
    json_t *v = json_object_get(j->obj, field);
    if (!v || json_is_null(v)) {
        if (required)
            return bad(j, field, "required, must be an integer");
        return OMS_OK;
    }
    if (!json_is_integer(v))
        return bad(j, field, "must be an integer");
    json_int_t x = json_integer_value(v);
    if (x < INT32_MIN || x > INT32_MAX)
        return bad(j, field, "out of range for a 32-bit integer");
    *out = (int32_t)x;
    return OMS_OK;
}

static int get_double(jin *j, const char *field, bool required, double *out)
{
    json_t *v = json_object_get(j->obj, field);
    if (!v || json_is_null(v)) {
        if (required)
            return bad(j, field, "required, must be a number");
        return OMS_OK;
    }
    if (!json_is_number(v))
        return bad(j, field, "must be a number");
    *out = json_number_value(v);
    return OMS_OK;
}

static int check_members(jin *j, const char *const *allowed)
{
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)j->obj, key, val)
    {
        if (!one_of(key, allowed))
            return bad(j, key, "unknown field");
    }
    return OMS_OK;
}

#define ENVELOPE_FIELDS "eventId", "type", "occurredAt", "timestamp", "source", "traceId"
static const char *const order_created_fields[] = {
    ENVELOPE_FIELDS, "orderId", "aliasId", "userId", "status", "totalAmount", "items", "message",
    NULL};
static const char *const order_status_fields[] = {
    ENVELOPE_FIELDS, "orderId", "aliasId", "userId", "status", "previousStatus", "message", NULL};
static const char *const inventory_fields[] = {
    ENVELOPE_FIELDS, "productId", "productName", "quantity", "threshold", "status", "delta", NULL};
static const char *const user_note_fields[] = {ENVELOPE_FIELDS, "userId", "title", "message",
                                               "data", NULL};
static const char *const system_note_fields[] = {ENVELOPE_FIELDS, "title", "message", "severity",
                                                 "data", NULL};

static const char *const *fields_of(oms_event_type t)
{
    switch (t) {
    case OMS_EV_ORDER_CREATED: return order_created_fields;
    case OMS_EV_ORDER_STATUS_CHANGED: return order_status_fields;
    case OMS_EV_INVENTORY_CHANGED: return inventory_fields;
    case OMS_EV_USER_NOTIFICATION: return user_note_fields;
    default: return system_note_fields;
    }
}

static int get_occurred(jin *j, int64_t *out)
{
    json_t *v = json_object_get(j->obj, "occurredAt");
    if (!v)
        v = json_object_get(j->obj, "timestamp");
    if (!v || json_is_null(v))
        return OMS_OK;
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return OMS_OK;
    }
    if (json_is_string(v) && oms_parse_iso8601_ms(json_string_value(v), out) == OMS_OK)
        return OMS_OK;
    return bad(j, "occurredAt", "must be epoch milliseconds or an ISO 8601 timestamp");
}

static int get_data(jin *j, char **out)
{
    json_t *v = json_object_get(j->obj, "data");
    if (!v || json_is_null(v))
        return OMS_OK;
    if (json_is_string(v)) {
        json_t *d = json_loads(json_string_value(v), JSON_DECODE_ANY, NULL);
        bool ok = d && json_is_object(d);
        json_decref(d);
        if (!ok)
            return bad(j, "data", "must be a JSON object (or its text)");
        *out = strdup(json_string_value(v));
    } else if (json_is_object(v)) {
        *out = oms_json_dumps(v, JSON_COMPACT);
    } else {
        return bad(j, "data", "must be a JSON object");
    }
    return *out ? OMS_OK : OMS_ENOMEM;
}

static int get_items(jin *j, oms_event *ev)
{
    json_t *arr = json_object_get(j->obj, "items");
    if (!arr || json_is_null(arr))
        return OMS_OK;
    if (!json_is_array(arr))
        return bad(j, "items", "must be an array");
    size_t n = json_array_size(arr);
    if (n == 0)
        return OMS_OK;
    ev->items = calloc(n, sizeof *ev->items);
    if (!ev->items)
        return OMS_ENOMEM;
    ev->nitems = n;
    static const char *const item_fields[] = {"productId", "productName", "quantity", "price",
                                              NULL};
    for (size_t i = 0; i < n; i++) {
        char prefix[32];
        snprintf(prefix, sizeof prefix, "items[%zu].", i);
        json_t *it = json_array_get(arr, i);
        jin sub = {it, j->errbuf, j->errlen, prefix};
        if (!json_is_object(it)) {
            oms_errf(j->errbuf, j->errlen, "items[%zu]: must be an object", i);
            return OMS_EINVAL;
        }
        oms_order_item *o = &ev->items[i];
        CHECK(check_members(&sub, item_fields));
        CHECK(get_id(&sub, "productId", true, &o->product_id));
        CHECK(get_str(&sub, "productName", false, &o->product_name));
        CHECK(get_int32(&sub, "quantity", true, &o->quantity));
        CHECK(get_double(&sub, "price", true, &o->price));
    }
    return OMS_OK;
}

static int from_json(jin *j, oms_event_type type, oms_event *ev)
{
    ev->type = type;
    CHECK(check_members(j, fields_of(type)));
    json_t *t = json_object_get(j->obj, "type");
    if (t && !json_is_null(t)) {
        oms_event_type named;
        if (!json_is_string(t) || oms_event_type_parse(json_string_value(t), &named) != OMS_OK ||
            named != type) {
            oms_errf(j->errbuf, j->errlen, "type: must be '%s'", oms_event_type_name(type));
            return OMS_EINVAL;
        }
    }
    json_t *id = json_object_get(j->obj, "eventId");
    if (id && !json_is_null(id)) {
        if (!json_is_string(id) || strlen(json_string_value(id)) != 36)
            return bad(j, "eventId", "must be a UUID string");
        memcpy(ev->event_id, json_string_value(id), 37);
    }
    CHECK(get_occurred(j, &ev->occurred_at));
    CHECK(get_str(j, "source", false, &ev->source));
    CHECK(get_str(j, "traceId", false, &ev->trace_id));
    switch (type) {
    case OMS_EV_ORDER_CREATED:
    case OMS_EV_ORDER_STATUS_CHANGED:
        CHECK(get_str(j, "orderId", true, &ev->order_id));
        CHECK(get_str(j, "aliasId", true, &ev->alias_id));
        CHECK(get_id(j, "userId", true, &ev->user_id));
        CHECK(get_str(j, "status", type == OMS_EV_ORDER_STATUS_CHANGED, &ev->status));
        if (!ev->status && !(ev->status = strdup("created")))
            return OMS_ENOMEM;
        CHECK(get_str(j, "message", false, &ev->message));
        if (type == OMS_EV_ORDER_CREATED) {
            CHECK(get_double(j, "totalAmount", true, &ev->total_amount));
            CHECK(get_items(j, ev));
        } else {
            CHECK(get_str(j, "previousStatus", false, &ev->previous_status));
        }
        break;
    case OMS_EV_INVENTORY_CHANGED:
        CHECK(get_id(j, "productId", true, &ev->product_id));
        CHECK(get_str(j, "productName", true, &ev->product_name));
        CHECK(get_int32(j, "quantity", true, &ev->quantity));
        CHECK(get_int32(j, "threshold", true, &ev->threshold));
        CHECK(get_str(j, "status", true, &ev->status));
        CHECK(get_int32(j, "delta", false, &ev->delta));
        break;
    case OMS_EV_USER_NOTIFICATION:
        CHECK(get_id(j, "userId", true, &ev->user_id));
        /* fall through */
    default:
        CHECK(get_str(j, "title", true, &ev->title));
        CHECK(get_str(j, "message", true, &ev->message));
        CHECK(get_data(j, &ev->data_json));
        if (type == OMS_EV_SYSTEM_NOTIFICATION) {
            CHECK(get_str(j, "severity", false, &ev->severity));
            if (!ev->severity && !(ev->severity = strdup("info")))
                return OMS_ENOMEM;
        }
        break;
    }
    return OMS_OK;
}

int oms_event_from_json(const json_t *obj, oms_event_type type, oms_event *out, char *errbuf,
                        size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (!json_is_object(obj)) {
        oms_errf(errbuf, errlen, "event: must be a JSON object");
        return OMS_EINVAL;
    }
    if ((unsigned)type >= OMS_EV__COUNT) {
        oms_errf(errbuf, errlen, "type: unknown event type");
        return OMS_EINVAL;
    }
    jin j = {obj, errbuf, errlen, ""};
    int rc = from_json(&j, type, out);
    if (rc != OMS_OK) {
        if (rc == OMS_ENOMEM)
            oms_errf(errbuf, errlen, "out of memory");
        oms_event_clear(out);
    }
    return rc;
}

/* ---- JSON out ------------------------------------------------------------------ */

static void set_str(json_t *o, const char *k, const char *v)
{
    if (v)
        json_object_set_new(o, k, json_string(v));
}

/* Every field but the envelope's type/occurredAt, shared by both shapes. */
static void add_payload(json_t *o, const oms_event *ev)
{
    switch (ev->type) {
    case OMS_EV_ORDER_CREATED:
    case OMS_EV_ORDER_STATUS_CHANGED:
        set_str(o, "orderId", ev->order_id);
        set_str(o, "aliasId", ev->alias_id);
        json_object_set_new(o, "userId", json_integer(ev->user_id));
        set_str(o, "status", ev->status);
        if (ev->type == OMS_EV_ORDER_CREATED) {
            json_object_set_new(o, "totalAmount", json_real(ev->total_amount));
            json_t *items = json_array();
            for (size_t i = 0; i < ev->nitems; i++) {
                const oms_order_item *it = &ev->items[i];
                json_array_append_new(
                    items, json_pack("{s:I,s:s,s:i,s:f}", "productId", (json_int_t)it->product_id,
                                     "productName", it->product_name ? it->product_name : "",
                                     "quantity", (int)it->quantity, "price", it->price));
            }
            json_object_set_new(o, "items", items);
        } else {
            set_str(o, "previousStatus", ev->previous_status);
        }
        set_str(o, "message", ev->message);
        break;
    case OMS_EV_INVENTORY_CHANGED:
        json_object_set_new(o, "productId", json_integer(ev->product_id));
        set_str(o, "productName", ev->product_name);
        json_object_set_new(o, "quantity", json_integer(ev->quantity));
        json_object_set_new(o, "threshold", json_integer(ev->threshold));
        set_str(o, "status", ev->status);
        json_object_set_new(o, "delta", json_integer(ev->delta));
        break;
    case OMS_EV_USER_NOTIFICATION:
        json_object_set_new(o, "userId", json_integer(ev->user_id));
        /* fall through */
    default:
        set_str(o, "title", ev->title);
        set_str(o, "message", ev->message);
        if (ev->type == OMS_EV_SYSTEM_NOTIFICATION)
            set_str(o, "severity", ev->severity);
        if (ev->data_json) {
            json_t *d = json_loads(ev->data_json, JSON_DECODE_ANY, NULL);
            json_object_set_new(o, "data", d ? d : json_string(ev->data_json));
        }
        break;
    }
}

json_t *oms_event_to_json(const oms_event *ev)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    set_str(o, "eventId", ev->event_id);
    set_str(o, "type", oms_event_type_name(ev->type));
    json_object_set_new(o, "occurredAt", json_integer(ev->occurred_at));
    set_str(o, "source", ev->source);
    set_str(o, "traceId", ev->trace_id);
    add_payload(o, ev);
    return o;
}

json_t *oms_event_realtime(const oms_event *ev, const char *position)
{
    char ts[32];
    oms_iso8601_ms(ev->occurred_at, ts, sizeof ts);
    json_t *data = json_object();
    if (!data)
        return NULL;
    set_str(data, "eventId", ev->event_id);
    set_str(data, "eventType", oms_event_type_name(ev->type));
    add_payload(data, ev);
    set_str(data, "source", ev->source);
    set_str(data, "traceId", ev->trace_id);
    set_str(data, "timestamp", ts);

    json_t *rt = json_object();
    if (!rt) {
        json_decref(data);
        return NULL;
    }
    set_str(rt, "type", oms_event_rt_type(ev->type));
    json_object_set_new(rt, "data", data);
    if (ev->type == OMS_EV_ORDER_CREATED || ev->type == OMS_EV_ORDER_STATUS_CHANGED ||
        ev->type == OMS_EV_USER_NOTIFICATION)
        json_object_set_new(rt, "userId", json_integer(ev->user_id));
    set_str(rt, "timestamp", ts);
    set_str(rt, "id", position);
    return rt;
}

char *oms_event_frame_json_generic(const oms_event *ev, const char *position, size_t *len)
{
    json_t *rt = oms_event_realtime(ev, position);
    if (!rt)
        return NULL;
    json_t *frame = json_pack("{s:s,s:o}", "event", oms_event_ws_name(ev->type), "data", rt);
    if (!frame)
        return NULL;
    char *s = oms_json_dumps(frame, JSON_COMPACT);
    json_decref(frame);
    if (s && len)
        *len = strlen(s);
    return s;
}

void oms_event_clear(oms_event *ev)
{
    if (ev->arena) { /* the fast decoder's: every string and the items are in it */
        free(ev->arena);
        memset(ev, 0, sizeof *ev);
        return;
    }
    free(ev->source);
    free(ev->trace_id);
    free(ev->order_id);
    free(ev->alias_id);
    free(ev->status);
    free(ev->previous_status);
    for (size_t i = 0; i < ev->nitems; i++)
        free(ev->items[i].product_name);
    free(ev->items);
    free(ev->message);
    free(ev->product_name);
    free(ev->title);
    free(ev->severity);
    free(ev->data_json);
    memset(ev, 0, sizeof *ev);
}

/* ---- JSON records (DESIGN §2: plain JSON objects with the schemas' fields) ---------- */

int oms_event_decode_json_record(const uint8_t *buf, size_t len, oms_event *ev, char *errbuf,
                                 size_t errlen)
{
    /* the common case in one pass; anything it is unsure of, jansson
     * decides (and says why) */
    if (oms_ev_json_record_fast(buf, len, ev))
        return OMS_OK;
    return oms_ev_json_record_generic(buf, len, ev, errbuf, errlen);
}

int oms_ev_json_record_generic(const uint8_t *buf, size_t len, oms_event *ev, char *errbuf,
                               size_t errlen)
{
    memset(ev, 0, sizeof *ev);
    json_error_t jerr;
    /* duplicate keys would let two producers' views of a field disagree */
    json_t *obj = json_loadb((const char *)buf, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!obj) {
        oms_errf(errbuf, errlen, "json record: %s at offset %d", jerr.text, jerr.position);
        return OMS_EINVAL;
    }
    int rc = OMS_EINVAL;
    oms_event_type type;
    json_t *t = json_object_get(obj, "type");
    if (!json_is_object(obj)) {
        oms_errf(errbuf, errlen, "json record: must be a JSON object");
        goto out;
    }
    if (!t || !json_is_string(t)) {
        oms_errf(errbuf, errlen, "type: required, must name the event type (OrderCreated, ...)");
        goto out;
    }
    if (oms_event_type_parse(json_string_value(t), &type) != OMS_OK) {
        oms_errf(errbuf, errlen, "type: unknown event type '%.64s'", json_string_value(t));
        goto out;
    }
    /* a producer may leave the envelope to oms_event_fill_envelope; a record
     * on the wire is an event that happened: all of it is required, and only
     * the schemas' field names count (the API's "timestamp" alias is not one) */
    static const char *const envelope[] = {"eventId", "occurredAt", "source"};
    for (size_t i = 0; i < OMS_ARRAY_LEN(envelope); i++) {
        json_t *v = json_object_get(obj, envelope[i]);
        if (!v || json_is_null(v)) {
            oms_errf(errbuf, errlen, "%s: required field missing", envelope[i]);
            goto out;
        }
    }
    if (json_object_get(obj, "timestamp")) {
        oms_errf(errbuf, errlen, "timestamp: unknown field");
        goto out;
    }
    rc = oms_event_from_json(obj, type, ev, errbuf, errlen);
    if (rc == OMS_OK) {
        rc = oms_event_validate(ev, errbuf, errlen);
        if (rc != OMS_OK)
            oms_event_clear(ev);
    }
out:
    json_decref(obj);
    return rc;
}

int oms_event_encode_json_record(const oms_event *ev, uint8_t *out, size_t cap, size_t *written,
                                 char *errbuf, size_t errlen)
{
    int rc = oms_event_validate(ev, errbuf, errlen);
    if (rc != OMS_OK)
        return rc;
    json_t *o = oms_event_to_json(ev);
    char *s = o ? oms_json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!s) {
        oms_errf(errbuf, errlen, "out of memory");
        return OMS_ENOMEM;
    }
    size_t n = strlen(s);
    if (n > cap) {
        free(s);
        oms_errf(errbuf, errlen, "encoded event does not fit in %zu bytes", cap);
        return OMS_ERANGE;
    }
    memcpy(out, s, n);
    *written = n;
    free(s);
    return OMS_OK;
}
