/* serve_api.c — the routes of `oms-producer serve`: authentication (the
 * JWT rules of omsd: a customer acts for itself, staff, admin and service
 * tokens for anyone), validation of every input, and the domain rules of
 * pkg/sim (order transitions, stock statuses, default threshold). Nothing is
 * published unless the whole request is valid and allowed. */
#include <ctype.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "serve.h"
#include "json/json.h"
#include "sim/sim.h"

#define MAX_ITEMS 100
#define MAX_ITEM_QUANTITY 10000
#define MAX_PRICE 1e9
#define MAX_RESTOCK 1000000
#define MAX_THRESHOLD 1000000
#define MAX_NAME 100
#define MAX_MESSAGE 500
#define MAX_ID 9007199254740991LL /* 2^53 - 1: exact in every JSON reader */
#define ORDER_SOURCE "order-service"
#define INVENTORY_SOURCE "inventory-service"

/* ---- answers ------------------------------------------------------------------- */

static void reply(sv_response *resp, int status, json_t *body)
{
    free(resp->body);
    resp->status = status;
    resp->body = body ? oms_json_dumps(body, JSON_COMPACT) : NULL;
    resp->len = resp->body ? strlen(resp->body) : 0;
    json_decref(body);
}

void sv_api_error(sv_response *resp, int status, const char *code, const char *field,
                  const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_t *e = json_pack("{s:s,s:s}", "code", code, "message", msg);
    if (field)
        json_object_set_new(e, "field", json_string(field));
    reply(resp, status, json_pack("{s:o}", "error", e));
}

/* 400 naming the field: "FIELD: message" */
#define BAD(resp, field, ...) sv_api_error((resp), 400, "invalid", (field), __VA_ARGS__)

static json_t *iso_time(int64_t ms)
{
    char buf[40];
    oms_iso8601_ms(ms, buf, sizeof buf);
    return json_string(buf);
}

static json_t *order_json(const sv_order *o)
{
    json_t *items = json_array();
    for (size_t i = 0; i < o->nitems; i++)
        json_array_append_new(items, json_pack("{s:I,s:s,s:i,s:f}", "productId",
                                               (json_int_t)o->items[i].product_id, "productName",
                                               o->items[i].product_name ? o->items[i].product_name : "",
                                               "quantity", (int)o->items[i].quantity, "price",
                                               o->items[i].price));
    return json_pack("{s:s,s:s,s:I,s:s,s:f,s:o,s:o,s:o}", "orderId", o->order_id, "aliasId",
                     o->alias_id, "userId", (json_int_t)o->user_id, "status", o->status,
                     "totalAmount", o->total, "items", items, "createdAt",
                     iso_time(o->created_at), "updatedAt", iso_time(o->updated_at));
}

static json_t *product_json(const sv_product *p)
{
    return json_pack("{s:I,s:s,s:i,s:i,s:s,s:o}", "productId", (json_int_t)p->id, "productName",
                     p->name ? p->name : "", "quantity", (int)p->quantity, "threshold",
                     (int)p->threshold, "status", p->status, "updatedAt", iso_time(p->updated_at));
}

/* ---- who is asking ---------------------------------------------------------------- */

static bool acts_for_anyone(oms_role r)
{
    return r == OMS_ROLE_STAFF || r == OMS_ROLE_ADMIN || r == OMS_ROLE_SERVICE;
}

static int authenticate(serve *s, const sv_request *req, oms_principal *who, sv_response *resp)
{
    const char *h = req->authorization;
    if (!h) {
        sv_api_error(resp, 401, "unauthorized", NULL, "the Authorization header is too long");
        return -1;
    }
    if (!*h) {
        sv_api_error(resp, 401, "unauthorized", NULL,
                     "a token is required: 'Authorization: Bearer <JWT>'");
        return -1;
    }
    if (strncasecmp(h, "Bearer ", 7) != 0) {
        sv_api_error(resp, 401, "unauthorized", NULL, "Authorization must be 'Bearer <JWT>'");
        return -1;
    }
    const char *tok = h + 7;
    while (*tok == ' ')
        tok++;
    char err[256];
    int rc = oms_auth_verify(s->auth, tok, oms_now_ms() / 1000, who, err, sizeof err);
    if (rc != OMS_OK) {
        sv_api_error(resp, 401, rc == OMS_EEXPIRED ? "token_expired" : "unauthorized", NULL, "%s",
                     err);
        return -1;
    }
    return 0;
}

/* ---- input ----------------------------------------------------------------------- */

/* The body as a JSON object (new reference) or NULL with the answer set. */
static json_t *body_object(const sv_request *req, sv_response *resp)
{
    const char *ct = req->content_type;
    if (ct && *ct && strncasecmp(ct, "application/json", 16) != 0) {
        sv_api_error(resp, 415, "unsupported_media_type", "Content-Type",
                     "Content-Type: the body must be application/json");
        return NULL;
    }
    if (req->body_len == 0) {
        BAD(resp, "body", "body: a JSON object is required");
        return NULL;
    }
    json_error_t jerr;
    json_t *v = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!v) {
        BAD(resp, "body", "body: invalid JSON: %s (line %d, column %d)", jerr.text, jerr.line,
            jerr.column);
        return NULL;
    }
    if (!json_is_object(v)) {
        json_decref(v);
        BAD(resp, "body", "body: must be a JSON object");
        return NULL;
    }
    return v;
}

/* Every member of obj must be one of the NULL-terminated names. */
static int only_fields(const json_t *obj, const char *prefix, const char *const *names,
                       sv_response *resp)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)obj, k, v)
    {
        bool known = false;
        for (size_t i = 0; names[i] && !known; i++)
            known = strcmp(k, names[i]) == 0;
        if (!known) {
            char field[160];
            snprintf(field, sizeof field, "%s%.100s", prefix, k);
            BAD(resp, field, "%s: unknown field", field);
            return -1;
        }
    }
    return 0;
}

static int want_int(const json_t *v, const char *field, int64_t min, int64_t max, int64_t *out,
                    sv_response *resp)
{
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max) {
        BAD(resp, field, "%s: must be an integer from %" PRId64 " to %" PRId64, field, min, max);
        return -1;
    }
    *out = json_integer_value(v);
    return 0;
}

/* A printable single-line UTF-8 string of 1..max bytes (jansson checked the
 * UTF-8). */
static int want_text(const json_t *v, const char *field, size_t max, const char **out,
                     sv_response *resp)
{
    if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > max) {
        BAD(resp, field, "%s: must be a string of 1 to %zu bytes", field, max);
        return -1;
    }
    const char *t = json_string_value(v);
    for (size_t i = 0; i < json_string_length(v); i++) {
        if ((unsigned char)t[i] < 0x20 || t[i] == 0x7f) {
            BAD(resp, field, "%s: must not contain control characters", field);
            return -1;
        }
    }
    *out = t;
    return 0;
}

/* A path segment naming a product: a positive decimal integer. */
static int parse_product_id(const char *seg, size_t len, int64_t *out, sv_response *resp)
{
    int64_t v = 0;
    bool ok = len > 0 && len <= 16 && seg[0] != '0';
    for (size_t i = 0; ok && i < len; i++) {
        ok = isdigit((unsigned char)seg[i]);
        v = v * 10 + (seg[i] - '0');
    }
    if (!ok || v < 1 || v > MAX_ID) {
        BAD(resp, "productId", "productId: must be a positive integer up to %lld", MAX_ID);
        return -1;
    }
    *out = v;
    return 0;
}

static int check_order_id(const char *seg, size_t len, sv_response *resp)
{
    bool ok = len > 0 && len <= 64;
    for (size_t i = 0; ok && i < len; i++)
        ok = isalnum((unsigned char)seg[i]) || strchr("-_.:", seg[i]) != NULL;
    if (!ok) {
        BAD(resp, "orderId", "orderId: must be 1 to 64 letters, digits, '-', '_', '.' or ':'");
        return -1;
    }
    return 0;
}

static void publish_failed(sv_response *resp, const char *err)
{
    sv_api_error(resp, 503, "unavailable", NULL, "the event was not stored: %s", err);
}

static void envelope(oms_event *ev, oms_event_type type, const char *source, const char *trace,
                     int64_t now)
{
    memset(ev, 0, sizeof *ev);
    ev->type = type;
    oms_uuid7(now, ev->event_id);
    ev->occurred_at = now;
    ev->source = (char *)source;
    ev->trace_id = (char *)trace;
}

/* ---- POST /order/orders -------------------------------------------------------------- */

typedef struct want_item {
    int64_t product_id;
    int32_t quantity;
    double price;
} want_item;

static void create_order(serve *s, const oms_principal *who, const sv_request *req,
                         sv_response *resp)
{
    static const char *const fields[] = {"addressId", "items", "userId", NULL};
    static const char *const item_fields[] = {"productId", "quantity", "price", "productName",
                                              NULL};
    json_t *body = body_object(req, resp);
    if (!body)
        return;
    oms_event evs[1 + MAX_ITEMS];
    oms_order_item items[MAX_ITEMS];
    char *names[MAX_ITEMS] = {0};
    char statuses[MAX_ITEMS][16];
    want_item want[MAX_ITEMS];
    size_t n = 0;
    int64_t user_id = who->user_id;
    if (only_fields(body, "", fields, resp) != 0)
        goto out;
    json_t *addr = json_object_get(body, "addressId");
    if (!addr) {
        BAD(resp, "addressId", "addressId: required");
        goto out;
    }
    if (json_is_string(addr)) {
        const char *t;
        if (want_text(addr, "addressId", 64, &t, resp) != 0)
            goto out;
    } else {
        int64_t a;
        if (!json_is_integer(addr)) {
            BAD(resp, "addressId", "addressId: must be a positive integer or a string");
            goto out;
        }
        if (want_int(addr, "addressId", 1, MAX_ID, &a, resp) != 0)
            goto out;
    }
    json_t *uid = json_object_get(body, "userId");
    if (uid && want_int(uid, "userId", 1, MAX_ID, &user_id, resp) != 0)
        goto out;
    json_t *jitems = json_object_get(body, "items");
    if (!json_is_array(jitems) || json_array_size(jitems) == 0 ||
        json_array_size(jitems) > MAX_ITEMS) {
        BAD(resp, "items", "items: must be an array of 1 to %d items", MAX_ITEMS);
        goto out;
    }
    for (size_t i = 0; i < json_array_size(jitems); i++) {
        json_t *it = json_array_get(jitems, i);
        char pre[32], f[64];
        snprintf(pre, sizeof pre, "items[%zu].", i);
        if (!json_is_object(it)) {
            snprintf(f, sizeof f, "items[%zu]", i);
            BAD(resp, f, "%s: must be an object {productId, quantity, price}", f);
            goto out;
        }
        if (only_fields(it, pre, item_fields, resp) != 0)
            goto out;
        int64_t pid, q;
        snprintf(f, sizeof f, "%sproductId", pre);
        if (want_int(json_object_get(it, "productId"), f, 1, MAX_ID, &pid, resp) != 0)
            goto out;
        for (size_t j = 0; j < n; j++) {
            if (want[j].product_id == pid) {
                BAD(resp, f, "%s: product %" PRId64 " is already in items[%zu]", f, pid, j);
                goto out;
            }
        }
        snprintf(f, sizeof f, "%squantity", pre);
        if (want_int(json_object_get(it, "quantity"), f, 1, MAX_ITEM_QUANTITY, &q, resp) != 0)
            goto out;
        snprintf(f, sizeof f, "%sprice", pre);
        json_t *pr = json_object_get(it, "price");
        if (!json_is_number(pr) || !isfinite(json_number_value(pr)) ||
            json_number_value(pr) < 0 || json_number_value(pr) > MAX_PRICE) {
            BAD(resp, f, "%s: must be a number from 0 to %.0f", f, MAX_PRICE);
            goto out;
        }
        json_t *nm = json_object_get(it, "productName");
        const char *ignored;
        snprintf(f, sizeof f, "%sproductName", pre);
        if (nm && want_text(nm, f, MAX_NAME, &ignored, resp) != 0)
            goto out;
        want[n++] = (want_item){pid, (int32_t)q, json_number_value(pr)};
    }
    /* who for: a customer only for itself */
    if (!acts_for_anyone(who->role) && user_id != who->user_id) {
        sv_api_error(resp, 403, "forbidden", "userId",
                     "userId: a customer places orders for itself only");
        goto out;
    }
    if (user_id <= 0) {
        BAD(resp, "userId", "userId: required with a service token");
        goto out;
    }

    /* check the stock and build the events under the lock: the state cannot
     * move under the checks (writes of this process are serialized on the
     * HTTP thread, and the follower waits for the lock) */
    int64_t now = oms_now_ms();
    char trace[37], order_id[24], alias_id[24];
    oms_uuid7(now, trace);
    uint64_t r[2] = {0, 0};
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
        r[0] = (uint64_t)now ^ oms_mono_ns(), r[1] = oms_mono_ns();
    snprintf(order_id, sizeof order_id, "ord-%016" PRIx64, r[0]);
    snprintf(alias_id, sizeof alias_id, "ORD-%08" PRIu64, r[1] % 100000000u);
    double total = 0;
    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < n; i++) {
        sv_product *p = sv_product_find(s, want[i].product_id);
        char f[64];
        snprintf(f, sizeof f, "items[%zu].productId", i);
        if (!p) {
            pthread_mutex_unlock(&s->lock);
            sv_api_error(resp, 404, "not_found", f, "%s: product %" PRId64 " not found", f,
                         want[i].product_id);
            goto out;
        }
        if (p->quantity < want[i].quantity) {
            pthread_mutex_unlock(&s->lock);
            snprintf(f, sizeof f, "items[%zu].quantity", i);
            sv_api_error(resp, 409, "insufficient_stock", f,
                         "%s: %d of product %" PRId64 " asked, %d in stock", f,
                         (int)want[i].quantity, want[i].product_id, (int)p->quantity);
            goto out;
        }
        names[i] = strdup(p->name ? p->name : "");
        int32_t after = p->quantity - want[i].quantity;
        snprintf(statuses[i], sizeof statuses[i], "%s",
                 oms_sim_stock_status(p->quantity, after, p->threshold));
        items[i] = (oms_order_item){want[i].product_id, names[i], want[i].quantity, want[i].price};
        oms_event *iv = &evs[1 + i];
        envelope(iv, OMS_EV_INVENTORY_CHANGED, INVENTORY_SOURCE, trace, now);
        iv->product_id = want[i].product_id;
        iv->product_name = names[i];
        iv->quantity = after;
        iv->threshold = p->threshold;
        iv->delta = -want[i].quantity;
        iv->status = statuses[i];
        total += want[i].price * want[i].quantity;
    }
    pthread_mutex_unlock(&s->lock);
    for (size_t i = 0; i < n; i++) {
        if (!names[i]) {
            sv_api_error(resp, 500, "internal", NULL, "out of memory");
            goto out;
        }
    }
    oms_event *oc = &evs[0];
    envelope(oc, OMS_EV_ORDER_CREATED, ORDER_SOURCE, trace, now);
    oc->order_id = order_id;
    oc->alias_id = alias_id;
    oc->user_id = user_id;
    oc->status = "created";
    oc->total_amount = round(total * 100) / 100;
    oc->items = items;
    oc->nitems = n;
    char err[512];
    for (size_t i = 0; i <= n; i++) {
        if (oms_event_validate(&evs[i], err, sizeof err) != OMS_OK) {
            sv_api_error(resp, 500, "internal", NULL, "event does not validate: %s", err);
            goto out;
        }
    }
    if (sv_publish(s, evs, 1 + n, err, sizeof err) != OMS_OK) {
        publish_failed(resp, err);
        goto out;
    }
    json_t *o = NULL;
    pthread_mutex_lock(&s->lock);
    sv_order *so = sv_order_find(s, order_id);
    if (so)
        o = order_json(so);
    pthread_mutex_unlock(&s->lock);
    if (!o) {
        sv_order tmp = {.order_id = order_id, .alias_id = alias_id, .user_id = user_id,
                        .status = "created", .total = oc->total_amount, .items = items,
                        .nitems = n, .created_at = now, .updated_at = now};
        o = order_json(&tmp);
    }
    json_object_set(o, "addressId", addr);
    reply(resp, 201, o);
out:
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    json_decref(body);
}

/* ---- GET /order/orders/{id} and PATCH /order/orders/{id}/status ------------------------ */

static void get_order(serve *s, const oms_principal *who, const char *id, sv_response *resp)
{
    pthread_mutex_lock(&s->lock);
    sv_order *o = sv_order_find(s, id);
    json_t *j = o && (acts_for_anyone(who->role) || o->user_id == who->user_id) ? order_json(o)
                                                                                 : NULL;
    bool other = o && !j;
    pthread_mutex_unlock(&s->lock);
    if (!o)
        sv_api_error(resp, 404, "not_found", "orderId", "orderId: order '%s' not found", id);
    else if (other)
        sv_api_error(resp, 403, "forbidden", "orderId",
                     "orderId: the order belongs to another user");
    else
        reply(resp, 200, j);
}

static void change_status(serve *s, const oms_principal *who, const char *id,
                          const sv_request *req, sv_response *resp)
{
    static const char *const fields[] = {"status", "message", NULL};
    json_t *body = body_object(req, resp);
    if (!body)
        return;
    oms_event *evs = NULL;
    char **names = NULL;
    char (*statuses)[16] = NULL;
    size_t nevs = 0, nitems = 0;
    if (only_fields(body, "", fields, resp) != 0)
        goto out;
    json_t *st = json_object_get(body, "status");
    if (!json_is_string(st) || !oms_sim_order_status_known(json_string_value(st))) {
        BAD(resp, "status", "status: must be one of created, confirmed, shipped, delivered, "
                            "cancelled");
        goto out;
    }
    const char *to = json_string_value(st);
    const char *message = NULL;
    json_t *jm = json_object_get(body, "message");
    if (jm && want_text(jm, "message", MAX_MESSAGE, &message, resp) != 0)
        goto out;
    int64_t now = oms_now_ms();
    char trace[37], from[16], alias[64];
    oms_uuid7(now, trace);
    pthread_mutex_lock(&s->lock);
    sv_order *o = sv_order_find(s, id);
    if (!o) {
        pthread_mutex_unlock(&s->lock);
        sv_api_error(resp, 404, "not_found", "orderId", "orderId: order '%s' not found", id);
        goto out;
    }
    if (!acts_for_anyone(who->role) && o->user_id != who->user_id) {
        pthread_mutex_unlock(&s->lock);
        sv_api_error(resp, 403, "forbidden", "orderId",
                     "orderId: the order belongs to another user");
        goto out;
    }
    if (!acts_for_anyone(who->role) && strcmp(to, "cancelled") != 0) {
        pthread_mutex_unlock(&s->lock);
        sv_api_error(resp, 403, "forbidden", "status",
                     "status: a customer may only cancel its orders");
        goto out;
    }
    if (!oms_sim_order_transition_ok(o->status, to)) {
        pthread_mutex_unlock(&s->lock);
        sv_api_error(resp, 409, "illegal_transition", "status",
                     "status: an order cannot go from %s to %s", o->status, to);
        goto out;
    }
    snprintf(from, sizeof from, "%s", o->status);
    snprintf(alias, sizeof alias, "%s", o->alias_id);
    int64_t user_id = o->user_id;
    bool cancel = strcmp(to, "cancelled") == 0;
    nitems = cancel ? o->nitems : 0;
    evs = calloc(1 + nitems, sizeof *evs);
    names = calloc(nitems + 1, sizeof *names);
    statuses = calloc(nitems + 1, sizeof *statuses);
    if (!evs || !names || !statuses) {
        pthread_mutex_unlock(&s->lock);
        sv_api_error(resp, 500, "internal", NULL, "out of memory");
        goto out;
    }
    envelope(&evs[0], OMS_EV_ORDER_STATUS_CHANGED, ORDER_SOURCE, trace, now);
    nevs = 1;
    /* cancelling returns the reserved stock of every product still known */
    for (size_t i = 0; i < nitems; i++) {
        const sv_item *it = &o->items[i];
        sv_product *p = sv_product_find(s, it->product_id);
        if (!p || it->quantity <= 0)
            continue;
        if (p->quantity > INT32_MAX - it->quantity) {
            pthread_mutex_unlock(&s->lock);
            sv_api_error(resp, 409, "stock_limit", NULL,
                         "returning the stock of product %" PRId64 " would pass %d", p->id,
                         INT32_MAX);
            goto out;
        }
        oms_event *iv = &evs[nevs];
        names[nevs - 1] = strdup(p->name ? p->name : "");
        if (!names[nevs - 1]) {
            pthread_mutex_unlock(&s->lock);
            sv_api_error(resp, 500, "internal", NULL, "out of memory");
            goto out;
        }
        int32_t after = p->quantity + it->quantity;
        snprintf(statuses[nevs - 1], 16, "%s",
                 oms_sim_stock_status(p->quantity, after, p->threshold));
        envelope(iv, OMS_EV_INVENTORY_CHANGED, INVENTORY_SOURCE, trace, now);
        iv->product_id = p->id;
        iv->product_name = names[nevs - 1];
        iv->quantity = after;
        iv->threshold = p->threshold;
        iv->delta = it->quantity;
        iv->status = statuses[nevs - 1];
        nevs++;
    }
    pthread_mutex_unlock(&s->lock);
    oms_event *sc = &evs[0];
    sc->order_id = (char *)id;
    sc->alias_id = alias;
    sc->user_id = user_id;
    sc->status = (char *)to;
    sc->previous_status = from;
    sc->message = (char *)message;
    char err[512];
    for (size_t i = 0; i < nevs; i++) {
        if (oms_event_validate(&evs[i], err, sizeof err) != OMS_OK) {
            sv_api_error(resp, 500, "internal", NULL, "event does not validate: %s", err);
            goto out;
        }
    }
    if (sv_publish(s, evs, nevs, err, sizeof err) != OMS_OK) {
        publish_failed(resp, err);
        goto out;
    }
    get_order(s, who, id, resp);
out:
    for (size_t i = 0; names && i < nitems; i++)
        free(names[i]);
    free(names);
    free(statuses);
    free(evs);
    json_decref(body);
}

/* ---- inventory ------------------------------------------------------------------ */

static void get_product(serve *s, int64_t pid, sv_response *resp)
{
    pthread_mutex_lock(&s->lock);
    sv_product *p = sv_product_find(s, pid);
    json_t *j = p ? product_json(p) : NULL;
    pthread_mutex_unlock(&s->lock);
    if (!j)
        sv_api_error(resp, 404, "not_found", "productId", "productId: product %" PRId64
                     " not found", pid);
    else
        reply(resp, 200, j);
}

static void restock(serve *s, const oms_principal *who, int64_t pid, const sv_request *req,
                    sv_response *resp)
{
    static const char *const fields[] = {"quantity", "productName", "threshold", NULL};
    if (!acts_for_anyone(who->role)) {
        sv_api_error(resp, 403, "forbidden", NULL, "restocking needs a staff or admin token");
        return;
    }
    json_t *body = body_object(req, resp);
    if (!body)
        return;
    char *name = NULL;
    int64_t q, threshold = -1;
    const char *given_name = NULL;
    if (only_fields(body, "", fields, resp) != 0 ||
        want_int(json_object_get(body, "quantity"), "quantity", 1, MAX_RESTOCK, &q, resp) != 0)
        goto out;
    json_t *jn = json_object_get(body, "productName");
    if (jn && want_text(jn, "productName", MAX_NAME, &given_name, resp) != 0)
        goto out;
    json_t *jt = json_object_get(body, "threshold");
    if (jt && want_int(jt, "threshold", 0, MAX_THRESHOLD, &threshold, resp) != 0)
        goto out;
    int64_t now = oms_now_ms();
    char trace[37], status[16];
    oms_uuid7(now, trace);
    pthread_mutex_lock(&s->lock);
    sv_product *p = sv_product_find(s, pid);
    int32_t before = p ? p->quantity : 0;
    int32_t th = threshold >= 0 ? (int32_t)threshold
                                : p ? p->threshold : OMS_SIM_DEFAULT_THRESHOLD;
    if (given_name) {
        name = strdup(given_name);
    } else if (p && p->name) {
        name = strdup(p->name);
    } else if ((name = malloc(32))) {
        snprintf(name, 32, "Product %" PRId64, pid);
    }
    pthread_mutex_unlock(&s->lock);
    if (!name) {
        sv_api_error(resp, 500, "internal", NULL, "out of memory");
        goto out;
    }
    if (before > INT32_MAX - q) {
        sv_api_error(resp, 409, "stock_limit", "quantity",
                     "quantity: the stock would pass %d (it is %d)", INT32_MAX, (int)before);
        goto out;
    }
    int32_t after = before + (int32_t)q;
    snprintf(status, sizeof status, "%s", oms_sim_stock_status(before, after, th));
    oms_event ev;
    envelope(&ev, OMS_EV_INVENTORY_CHANGED, INVENTORY_SOURCE, trace, now);
    ev.product_id = pid;
    ev.product_name = name;
    ev.quantity = after;
    ev.threshold = th;
    ev.delta = (int32_t)q;
    ev.status = status;
    char err[512];
    if (oms_event_validate(&ev, err, sizeof err) != OMS_OK) {
        sv_api_error(resp, 500, "internal", NULL, "event does not validate: %s", err);
        goto out;
    }
    if (sv_publish(s, &ev, 1, err, sizeof err) != OMS_OK) {
        publish_failed(resp, err);
        goto out;
    }
    get_product(s, pid, resp);
out:
    free(name);
    json_decref(body);
}

/* ---- routing ------------------------------------------------------------------ */

static bool method_is(const sv_request *req, const char *m)
{
    return strcmp(req->method, m) == 0;
}

static void not_allowed(sv_response *resp, const char *allow)
{
    resp->allow = allow;
    sv_api_error(resp, 405, "method_not_allowed", NULL, "use %s", allow);
}

static void no_route(const sv_request *req, sv_response *resp)
{
    sv_api_error(resp, 404, "not_found", NULL, "no such route: %s %.200s", req->method,
                 req->path);
}

void sv_api_handle(serve *s, const sv_request *req, sv_response *resp)
{
    const char *path = req->path;
    oms_principal who;
    if (strcmp(path, "/health") == 0) {
        if (!method_is(req, "GET"))
            {
            not_allowed(resp, "GET");
            return;
        }
        pthread_mutex_lock(&s->lock);
        json_t *h = json_pack("{s:s,s:I,s:I,s:I,s:I}", "status", "ok", "orders",
                              (json_int_t)s->norders, "products", (json_int_t)s->nproducts,
                              "applied", (json_int_t)s->applied, "published",
                              (json_int_t)s->published);
        pthread_mutex_unlock(&s->lock);
        reply(resp, 200, h);
        return;
    }
    if (strcmp(path, "/order/orders") == 0) {
        if (!method_is(req, "POST"))
            {
            not_allowed(resp, "POST");
            return;
        }
        if (authenticate(s, req, &who, resp) == 0)
            create_order(s, &who, req, resp);
        return;
    }
    if (strncmp(path, "/order/orders/", 14) == 0) {
        const char *id = path + 14;
        const char *slash = strchr(id, '/');
        size_t len = slash ? (size_t)(slash - id) : strlen(id);
        bool status = slash && strcmp(slash, "/status") == 0;
        if (slash && !status) {
            no_route(req, resp);
            return;
        }
        if (!status && !method_is(req, "GET"))
            {
            not_allowed(resp, "GET");
            return;
        }
        if (status && !method_is(req, "PATCH"))
            {
            not_allowed(resp, "PATCH");
            return;
        }
        if (authenticate(s, req, &who, resp) != 0 || check_order_id(id, len, resp) != 0)
            return;
        char oid[65];
        snprintf(oid, sizeof oid, "%.*s", (int)len, id);
        if (status)
            change_status(s, &who, oid, req, resp);
        else
            get_order(s, &who, oid, resp);
        return;
    }
    if (strncmp(path, "/inventory/", 11) == 0) {
        const char *id = path + 11;
        const char *slash = strchr(id, '/');
        size_t len = slash ? (size_t)(slash - id) : strlen(id);
        bool rs = slash && strcmp(slash, "/restock") == 0;
        if (slash && !rs) {
            no_route(req, resp);
            return;
        }
        if (!rs && !method_is(req, "GET"))
            {
            not_allowed(resp, "GET");
            return;
        }
        if (rs && !method_is(req, "POST"))
            {
            not_allowed(resp, "POST");
            return;
        }
        int64_t pid;
        if (authenticate(s, req, &who, resp) != 0 || parse_product_id(id, len, &pid, resp) != 0)
            return;
        if (rs)
            restock(s, &who, pid, req, resp);
        else
            get_product(s, pid, resp);
        return;
    }
    no_route(req, resp);
}
