/* session.c — one connection's protocol state and its answers. */
#include "gateway/gateway.h"
#include "json/json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void oms_session_init(oms_session *s, const oms_principal *who, int rate_per_min, int64_t now_ms)
{
    memset(s, 0, sizeof *s);
    s->who = *who;
    s->per_min = rate_per_min > 0 ? rate_per_min : 100;
    s->tokens = s->per_min;
    s->refill_ms = now_ms;
}

void oms_session_clear(oms_session *s)
{
    for (int i = 0; i < 2; i++) {
        oms_filter_unref(s->filter[i]);
        s->filter[i] = NULL;
    }
}

void oms_session_copy(oms_session *dst, const oms_session *src)
{
    *dst = *src;
    for (int i = 0; i < 2; i++)
        oms_filter_ref(dst->filter[i]);
}

const oms_filter *oms_session_filter(const oms_session *s, oms_topic_kind topic)
{
    return topic == OMS_TOPIC_ORDERS      ? s->filter[OMS_GW_F_ORDERS]
           : topic == OMS_TOPIC_INVENTORY ? s->filter[OMS_GW_F_INVENTORY]
                                          : NULL;
}

void oms_gw_out_add(oms_gw_out *out, const char *event, json_t *data, bool is_answer)
{
    if (out->n == 0)
        out->answer = -1;
    if (out->n >= OMS_GW_MAX_MSGS) {
        json_decref(data);
        return;
    }
    out->msgs[out->n].event = event;
    out->msgs[out->n].data = data;
    if (is_answer)
        out->answer = out->n;
    out->n++;
}

void oms_gw_out_clear(oms_gw_out *out)
{
    for (int i = 0; i < out->n; i++)
        json_decref(out->msgs[i].data);
    json_decref(out->resume_since);
    memset(out, 0, sizeof *out);
    out->answer = -1;
}

json_t *oms_gw_error(const char *code, const char *message)
{
    return json_pack("{s:s,s:s}", "code", code, "message", message);
}

static void error_answer(oms_gw_out *out, const char *code, const char *message)
{
    oms_gw_out_add(out, "error", oms_gw_error(code, message), true);
}

char *oms_gw_frame_text(const char *event, const json_t *data, size_t *len)
{
    json_t *f = json_pack("{s:s,s:O}", "event", event, "data", data ? data : json_null());
    if (!f)
        return NULL;
    char *s = oms_json_dumps(f, JSON_COMPACT);
    json_decref(f);
    if (s && len)
        *len = strlen(s);
    return s;
}

static json_t *iso_now(int64_t now_ms)
{
    char ts[32];
    oms_iso8601_ms(now_ms, ts, sizeof ts);
    return json_string(ts);
}

static json_t *positions(const oms_gw_env *env, oms_topic_kind kind)
{
    json_t *p = env->positions ? env->positions(env->ud, kind) : NULL;
    return p ? p : json_array();
}

json_t *oms_gw_connected(const oms_session *s, const oms_gw_env *env)
{
    json_t *d = json_object();
    json_object_set_new(d, "userId", s->who.user_id ? json_integer(s->who.user_id) : json_null());
    json_object_set_new(d, "role", json_string(oms_role_name(s->who.role)));
    json_object_set_new(d, "timestamp", iso_now(env->now_ms));
    json_object_set_new(d, "positions", positions(env, OMS_TOPIC_NOTIFICATIONS));
    return d;
}

bool oms_session_admit(oms_session *s, const oms_gw_env *env, oms_gw_out *out)
{
    int64_t elapsed = env->now_ms - s->refill_ms;
    if (elapsed > 0) {
        s->tokens += (double)elapsed * s->per_min / 60000.0;
        if (s->tokens > s->per_min)
            s->tokens = s->per_min;
        s->refill_ms = env->now_ms;
    }
    if (s->tokens >= 1.0) {
        s->tokens -= 1.0;
        s->violations = 0;
        return true;
    }
    s->violations++;
    char msg[128];
    snprintf(msg, sizeof msg, "rate limit of %d messages per minute exceeded", s->per_min);
    error_answer(out, "rate_limited", msg);
    /* a client that keeps going after being told is abusing, not bursting */
    int tolerated = s->per_min / 10 > 10 ? s->per_min / 10 : 10;
    if (s->violations > tolerated) {
        out->close_code = OMS_CLOSE_POLICY;
        snprintf(out->close_reason, sizeof out->close_reason, "rate limit exceeded");
    }
    return false;
}

bool oms_session_wants(const oms_session *s, oms_event_type type, int64_t user_id)
{
    oms_role r = s->who.role;
    if (r == OMS_ROLE_SERVICE)
        return false;
    bool staff = r == OMS_ROLE_STAFF || r == OMS_ROLE_ADMIN;
    switch (type) {
    case OMS_EV_ORDER_CREATED:
    case OMS_EV_ORDER_STATUS_CHANGED:
        return (s->subs & OMS_SUB_ORDERS) && (staff || (user_id != 0 && user_id == s->who.user_id));
    case OMS_EV_INVENTORY_CHANGED:
        return (s->subs & OMS_SUB_INVENTORY) && staff;
    case OMS_EV_USER_NOTIFICATION:
        return user_id != 0 && user_id == s->who.user_id;
    case OMS_EV_SYSTEM_NOTIFICATION:
        return true;
    default:
        return false;
    }
}

bool oms_session_wants_view(const oms_session *s, oms_event_type type, int64_t user_id,
                            const oms_filter_view *v)
{
    if (!oms_session_wants(s, type, user_id))
        return false;
    const oms_filter *f = oms_session_filter(s, oms_event_topic_kind(type));
    return !f || (v && oms_filter_match(f, v));
}

static void subscribe(oms_session *s, const oms_gw_env *env, unsigned sub, const json_t *data,
                      oms_gw_out *out)
{
    bool staff = s->who.role == OMS_ROLE_STAFF || s->who.role == OMS_ROLE_ADMIN;
    if (s->who.role == OMS_ROLE_SERVICE || (sub == OMS_SUB_INVENTORY && !staff)) {
        error_answer(out, "forbidden",
                     sub == OMS_SUB_INVENTORY
                         ? "only staff and admin may subscribe to inventory alerts"
                         : "service tokens do not receive events");
        return;
    }
    bool orders = sub == OMS_SUB_ORDERS;
    /* the filter replaces the one before; a bad one changes nothing */
    const json_t *spec = json_is_object(data) ? json_object_get(data, "filter") : NULL;
    oms_filter *f = NULL;
    char err[256];
    int rc = oms_filter_parse(spec, orders ? OMS_TOPIC_ORDERS : OMS_TOPIC_INVENTORY,
                              env->filter_limits, &f, err, sizeof err);
    if (rc != OMS_OK) {
        error_answer(out, "bad_filter", err);
        return;
    }
    int fi = orders ? OMS_GW_F_ORDERS : OMS_GW_F_INVENTORY;
    oms_filter_unref(s->filter[fi]);
    s->filter[fi] = f;
    s->subs |= sub;
    json_t *d = json_object();
    json_object_set_new(d, "type", json_string(orders ? "order" : "inventory"));
    json_object_set_new(d, "message",
                        json_string(orders ? (staff ? "Subscribed to all order updates"
                                                    : "Subscribed to your order updates")
                                           : "Subscribed to inventory alerts"));
    json_object_set_new(d, "positions",
                        positions(env, orders ? OMS_TOPIC_ORDERS : OMS_TOPIC_INVENTORY));
    if (f)
        json_object_set_new(d, "filter", oms_filter_json(f));
    oms_gw_out_add(out, "subscription_confirmed", d, true);
}

static void unsubscribe(oms_session *s, const json_t *data, oms_gw_out *out)
{
    const char *type = json_string_value(json_object_get(data, "type"));
    unsigned sub = 0;
    if (type && strcmp(type, "order") == 0)
        sub = OMS_SUB_ORDERS;
    else if (type && strcmp(type, "inventory") == 0)
        sub = OMS_SUB_INVENTORY;
    if (!sub) {
        error_answer(out, "bad_request", "unsubscribe needs data {type: \"order\" | \"inventory\"}");
        return;
    }
    s->subs &= ~sub;
    int fi = sub == OMS_SUB_ORDERS ? OMS_GW_F_ORDERS : OMS_GW_F_INVENTORY;
    oms_filter_unref(s->filter[fi]);
    s->filter[fi] = NULL;
    oms_gw_out_add(out, "unsubscribed", json_pack("{s:s}", "type", type), true);
}

static void refresh_token(oms_session *s, const oms_gw_env *env, const json_t *data,
                          oms_gw_out *out)
{
    const char *tok = json_string_value(json_object_get(data, "token"));
    if (!tok) {
        error_answer(out, "bad_request", "refresh_token needs data {token: \"...\"}");
        return;
    }
    oms_principal p;
    char err[256];
    int rc = oms_auth_verify(env->auth, tok, env->now_ms / 1000, &p, err, sizeof err);
    if (rc == OMS_EEXPIRED) {
        error_answer(out, "token_expired", err);
        return;
    }
    if (rc != OMS_OK) {
        error_answer(out, "bad_request", err);
        return;
    }
    if (p.user_id != s->who.user_id || p.role != s->who.role) {
        error_answer(out, "forbidden", "the new token is for another user or role");
        return;
    }
    s->who.exp = p.exp;
    out->exp_changed = true;
    /* exp * 1000 must not overflow: a later exp than 9999-12-31 is shown as that */
    int64_t shown = p.exp > INT64_C(253402300799) ? INT64_C(253402300799) : p.exp;
    char ts[32];
    oms_iso8601_ms(shown * 1000, ts, sizeof ts);
    oms_gw_out_add(out, "token_refreshed", json_pack("{s:s}", "expiresAt", ts), true);
}

void oms_session_on_message(oms_session *s, const oms_gw_env *env, const char *event,
                            const json_t *data, oms_gw_out *out)
{
    if (strcmp(event, "subscribe_to_orders") == 0) {
        subscribe(s, env, OMS_SUB_ORDERS, data, out);
    } else if (strcmp(event, "subscribe_to_inventory") == 0) {
        subscribe(s, env, OMS_SUB_INVENTORY, data, out);
    } else if (strcmp(event, "unsubscribe") == 0) {
        unsubscribe(s, data, out);
    } else if (strcmp(event, "ping") == 0) {
        oms_gw_out_add(out, "pong", json_pack("{s:o}", "timestamp", iso_now(env->now_ms)), true);
    } else if (strcmp(event, "refresh_token") == 0) {
        refresh_token(s, env, data, out);
    } else if (strcmp(event, "resume") == 0) {
        /* the server holds the history and the log: it answers */
        out->resume = true;
        out->resume_since = json_incref(json_object_get(data, "since"));
    } else {
        /* at most 100 bytes of the name, not cutting a UTF-8 sequence (the
         * message must stay valid UTF-8 for json_string) */
        size_t n = strlen(event);
        if (n > 100) {
            n = 100;
            while (n > 0 && ((unsigned char)event[n] & 0xC0) == 0x80)
                n--;
        }
        char msg[160];
        snprintf(msg, sizeof msg, "unknown event '%.*s'", (int)n, event);
        error_answer(out, "unknown_event", msg);
    }
}

void oms_session_on_text(oms_session *s, const oms_gw_env *env, const char *text, size_t len,
                         oms_gw_out *out)
{
    if (!oms_session_admit(s, env, out))
        return;
    json_error_t jerr;
    json_t *msg = json_loadb(text, len, 0, &jerr);
    if (!msg || !json_is_object(msg)) {
        char m[320];
        snprintf(m, sizeof m, "frames must be JSON objects {\"event\": NAME, \"data\": ...}%s%s",
                 msg ? "" : ": ", msg ? "" : jerr.text);
        error_answer(out, "bad_request", m);
        json_decref(msg);
        return;
    }
    const char *event = json_string_value(json_object_get(msg, "event"));
    if (!event) {
        error_answer(out, "bad_request", "missing \"event\" (a string)");
    } else {
        oms_session_on_message(s, env, event, json_object_get(msg, "data"), out);
    }
    json_decref(msg);
}
