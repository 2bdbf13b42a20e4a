/* rest.c — the REST API of DESIGN §3.3: routing, roles, body validation,
 * and the triggers that produce Avro events to Kafka (authentication and
 * the answer shapes: request.c). */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "json/json.h"
#include "omsd.h"

/* ---- helpers --------------------------------------------------------------------- */

static bool role_in(oms_role r, unsigned mask)
{
    return (mask & (1u << r)) != 0;
}
#define R(x) (1u << OMS_ROLE_##x)

/* Authenticate and check the role; false when resp holds the refusal. */
static bool need_role(omsd *d, const omsd_http_req *req, unsigned mask, oms_principal *who,
                      omsd_http_resp *resp)
{
    if (omsd_rest_auth(d, req, who, resp) != 0)
        return false;
    if (!role_in(who->role, mask)) {
        char msg[160];
        snprintf(msg, sizeof msg, "role '%s' may not do this", oms_role_name(who->role));
        omsd_rest_error(resp, 403, "forbidden", msg);
        return false;
    }
    return true;
}

static json_t *parse_body(const omsd_http_req *req, omsd_http_resp *resp)
{
    json_error_t jerr;
    json_t *j = req->body_len ? json_loadb(req->body, req->body_len, 0, &jerr) : NULL;
    if (!j || !json_is_object(j)) {
        char msg[256];
        snprintf(msg, sizeof msg, "the body must be a JSON object%s%s", j ? "" : ": ",
                 j ? "" : (req->body_len ? jerr.text : "empty body"));
        omsd_rest_error(resp, 400, "bad_request", msg);
        json_decref(j);
        return NULL;
    }
    return j;
}

/* ---- produce ------------------------------------------------------------------------ */

/* Validate, encode and produce; the answer (202 {eventId}) waits for the
 * broker's acknowledgement, so a 202 means the event is on the log. */
static void produce_event(omsd *d, const omsd_http_req *req, json_t *body, oms_event_type type,
                          omsd_http_resp *resp)
{
    oms_event ev;
    char err[512];
    if (oms_event_from_json(body, type, &ev, err, sizeof err) != OMS_OK ||
        oms_event_fill_envelope(&ev, "omsd") != OMS_OK ||
        oms_event_validate(&ev, err, sizeof err) != OMS_OK) {
        oms_event_clear(&ev);
        omsd_rest_error(resp, 400, "bad_request", err);
        return;
    }
    uint8_t buf[65536];
    size_t len = 0;
    char key[128];
    int klen = oms_event_key(&ev, key, sizeof key);
    int rc = klen < 0 ? OMS_ERANGE
                      : oms_event_encode(d->events, &ev, buf, sizeof buf, &len, err, sizeof err);
    if (rc != OMS_OK) {
        oms_event_clear(&ev);
        omsd_rest_error(resp, 400, "bad_request", klen < 0 ? "key too long" : err);
        return;
    }
    const char *topic = d->topics[oms_event_topic_kind(type)];
    rc = oms_kafka_produce(d->producer, topic, RD_KAFKA_PARTITION_UA, key, (size_t)klen, buf, len,
                           NULL, 0, (void *)(uintptr_t)req->request_id, 0, err, sizeof err);
    if (rc != OMS_OK) {
        oms_event_clear(&ev);
        omsd_rest_error(resp, 503, "unavailable", err);
        return;
    }
    json_t *ok = json_pack("{s:s,s:s,s:s}", "eventId", ev.event_id, "type",
                           oms_event_type_name(type), "topic", topic);
    omsd_rest_json(resp, 202, ok);
    resp->deferred = true;
    oms_event_clear(&ev);
}

/* The guide's inventory-alert body names: currentQuantity, alertType. */
static void rename_member(json_t *o, const char *from, const char *to)
{
    json_t *v = json_object_get(o, from);
    if (v && !json_object_get(o, to)) {
        json_object_set(o, to, v);
        json_object_del(o, from);
    }
}

static void trigger(omsd *d, const omsd_http_req *req, oms_event_type type, omsd_http_resp *resp)
{
    oms_principal who;
    if (!need_role(d, req, R(STAFF) | R(ADMIN) | R(SERVICE), &who, resp))
        return;
    json_t *body = parse_body(req, resp);
    if (!body)
        return;
    if (type == OMS_EV_INVENTORY_CHANGED) {
        rename_member(body, "currentQuantity", "quantity");
        rename_member(body, "alertType", "status");
    }
    produce_event(d, req, body, type, resp);
    json_decref(body);
}

static void broadcast(omsd *d, const omsd_http_req *req, omsd_http_resp *resp)
{
    oms_principal who;
    if (!need_role(d, req, R(ADMIN), &who, resp))
        return;
    json_t *body = parse_body(req, resp);
    if (!body)
        return;
    /* {type: "system" (default) | "user", title, message, data?, severity?, userId?} */
    const char *t = json_string_value(json_object_get(body, "type"));
    oms_event_type type = OMS_EV_SYSTEM_NOTIFICATION;
    if (json_object_get(body, "type") && !t) {
        omsd_rest_error(resp, 400, "bad_request", "type: must be \"system\" or \"user\"");
    } else if (t && strcmp(t, "user") == 0) {
        type = OMS_EV_USER_NOTIFICATION;
    } else if (t && strcmp(t, "system") != 0) {
        omsd_rest_error(resp, 400, "bad_request", "type: must be \"system\" or \"user\"");
        json_decref(body);
        return;
    }
    if (resp->status) {
        json_decref(body);
        return;
    }
    json_object_del(body, "type");
    produce_event(d, req, body, type, resp);
    json_decref(body);
}

/* ---- read endpoints ------------------------------------------------------------------ */

/* Whether a health request may see the details (brokers, error texts, hosts
 * in them, connections, projection counters): with a valid staff or admin
 * token only. Anything else, an invalid or expired token included, gets the
 * public answer rather than a 401: load balancers and orchestrator probes
 * call health without a token and read only its status code, which must not
 * depend on who asks. */
static bool health_details(omsd *d, const omsd_http_req *req)
{
    if (!(req->authorization && *req->authorization) && !(req->token_arg && *req->token_arg))
        return false;
    omsd_http_resp refusal = {0};
    oms_principal who;
    bool ok = omsd_rest_auth(d, req, &who, &refusal) == 0 && role_in(who.role, R(STAFF) | R(ADMIN));
    free(refusal.body);
    return ok;
}

/* The public form of a health answer: the overall status and uptime, and of
 * each dependency only whether it is up (and whether PostgreSQL is
 * required); a whitelist, so that details added later stay private. */
static json_t *health_public(const json_t *full)
{
    json_t *j = json_object(), *deps = json_object();
    static const char *const top[] = {"status", "uptimeSeconds", "failing"};
    for (size_t i = 0; i < OMS_ARRAY_LEN(top); i++) {
        json_t *v = json_object_get(full, top[i]);
        if (v)
            json_object_set(j, top[i], v);
    }
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(full, "dependencies"), k, v)
    {
        json_t *dep = json_object();
        json_t *st = json_object_get(v, "status"), *req = json_object_get(v, "required");
        if (st)
            json_object_set(dep, "status", st);
        if (req)
            json_object_set(dep, "required", req);
        json_object_set_new(deps, k, dep);
    }
    json_object_set_new(j, "dependencies", deps);
    return j;
}

static void health(omsd *d, const omsd_http_req *req, omsd_http_resp *resp)
{
    bool kafka = atomic_load(&d->kafka_up), pg = atomic_load(&d->pg_up);
    bool pg_needed = d->cfg.projections.enabled;
    json_t *proj = json_object();
    bool proj_ok = omsd_projections_health(d, proj);
    bool ok = kafka && (pg || !pg_needed) && proj_ok;
    json_t *j = json_object();
    json_object_set_new(j, "status", json_string(ok ? "ok" : "unavailable"));
    json_object_set_new(j, "uptimeSeconds", json_integer((oms_now_ms() - d->started_ms) / 1000));
    json_object_set_new(j, "connections", json_integer((json_int_t)omsd_nconns(d)));
    json_t *deps = json_object();
    json_t *k = json_pack("{s:s,s:s}", "status", kafka ? "up" : "down", "brokers",
                          d->cfg.kafka.brokers);
    if (!kafka && d->kafka_error[0])
        json_object_set_new(k, "error", json_string(d->kafka_error));
    json_object_set_new(deps, "kafka", k);
    json_object_set_new(deps, "postgres",
                        json_pack("{s:s,s:b}", "status", pg ? "up" : "down", "required",
                                  pg_needed));
    json_object_update(deps, proj);
    json_decref(proj);
    json_t *reg = omsd_registry_health(d);
    if (reg)
        json_object_set_new(deps, "schemaRegistry", reg);
    omsd_alerts_health(d, deps);
    json_object_set_new(j, "dependencies", deps);
    if (!ok) {
        char why[128];
        snprintf(why, sizeof why, "%s%s%s%s%s", kafka ? "" : "kafka",
                 (!kafka && !(pg || !pg_needed)) ? ", " : "", (pg || !pg_needed) ? "" : "postgres",
                 (!proj_ok && (!kafka || !(pg || !pg_needed))) ? ", " : "",
                 proj_ok ? "" : "projections");
        json_object_set_new(j, "failing", json_string(why));
    }
    if (!health_details(d, req)) {
        json_t *pub = health_public(j);
        json_decref(j);
        j = pub;
    }
    omsd_rest_json(resp, ok ? 200 : 503, j);
}

static void dev_tokens(omsd *d, omsd_http_resp *resp)
{
    static const struct {
        oms_role role;
        int64_t user;
    } who[] = {{OMS_ROLE_ADMIN, 1}, {OMS_ROLE_STAFF, 2}, {OMS_ROLE_CUSTOMER, 3}};
    json_t *list = json_array();
    int64_t now = oms_now_ms() / 1000;
    for (size_t i = 0; i < OMS_ARRAY_LEN(who); i++) {
        char *t = oms_auth_mint_hs256(d->secret, d->secret_len, who[i].user, who[i].role, 8 * 3600,
                                      now, d->cfg.auth.issuer, d->cfg.auth.audience);
        if (!t)
            continue;
        json_array_append_new(list, json_pack("{s:s,s:I,s:s}", "role", oms_role_name(who[i].role),
                                              "userId", (json_int_t)who[i].user, "token", t));
        free(t);
    }
    omsd_rest_json(resp, 200, json_pack("{s:o}", "tokens", list));
}

/* ---- routing -------------------------------------------------------------------------- */

static bool is(const omsd_http_req *req, const char *m)
{
    return strcmp(req->method, m) == 0;
}

static bool method_ok(const omsd_http_req *req, const char *allowed, omsd_http_resp *resp)
{
    if (is(req, allowed) || (strcmp(allowed, "GET") == 0 && is(req, "HEAD")))
        return true;
    snprintf(resp->allow, sizeof resp->allow, "%s, OPTIONS", allowed);
    char msg[96];
    snprintf(msg, sizeof msg, "use %s on this path", allowed);
    omsd_rest_error(resp, 405, "method_not_allowed", msg);
    return false;
}

void omsd_rest_handle(omsd *d, const omsd_http_req *req, omsd_http_resp *resp)
{
    const char *p = req->path;
    if (is(req, "OPTIONS")) {
        resp->status = 204;
        return;
    }
    oms_principal who;
    if (strcmp(p, "/livez") == 0) {
        /* liveness: the service thread answers; dependencies are for health */
        if (method_ok(req, "GET", resp))
            omsd_rest_json(resp, 200, json_pack("{s:s}", "status", "alive"));
    } else if (strcmp(p, "/websocket/health") == 0) {
        if (method_ok(req, "GET", resp))
            health(d, req, resp);
    } else if (strcmp(p, "/metrics") == 0) {
        if (method_ok(req, "GET", resp)) {
            resp->status = 200;
            resp->content_type = "text/plain; version=0.0.4";
            resp->body = omsd_metrics_text(d, &resp->len);
        }
    } else if (strcmp(p, "/websocket/stats") == 0) {
        if (method_ok(req, "GET", resp) && need_role(d, req, R(STAFF) | R(ADMIN), &who, resp))
            omsd_rest_json(resp, 200, omsd_stats_json(d));
    } else if (strcmp(p, "/websocket/users/online") == 0) {
        if (method_ok(req, "GET", resp) && need_role(d, req, R(STAFF) | R(ADMIN), &who, resp)) {
            json_t *users = omsd_users_online(d);
            omsd_rest_json(resp, 200,
                           json_pack("{s:I,s:o}", "count", (json_int_t)json_array_size(users),
                                     "users", users));
        }
    } else if (strncmp(p, "/websocket/users/", 17) == 0) {
        const char *id = p + 17;
        char *end;
        long long uid = strtoll(id, &end, 10);
        if (strcmp(end, "/online") != 0 || end == id || uid <= 0) {
            omsd_rest_error(resp, 404, "not_found",
                            "use /websocket/users/{id}/online with a positive numeric id");
        } else if (method_ok(req, "GET", resp) &&
                   need_role(d, req, R(STAFF) | R(ADMIN), &who, resp)) {
            int n = omsd_user_connections(d, uid);
            omsd_rest_json(resp, 200,
                           json_pack("{s:I,s:b,s:i}", "userId", (json_int_t)uid, "online", n > 0,
                                     "connections", n));
        }
    } else if (strcmp(p, "/websocket/broadcast") == 0) {
        if (method_ok(req, "POST", resp))
            broadcast(d, req, resp);
    } else if (strcmp(p, "/websocket/notifications/order-created") == 0) {
        if (method_ok(req, "POST", resp))
            trigger(d, req, OMS_EV_ORDER_CREATED, resp);
    } else if (strcmp(p, "/websocket/notifications/order-status-update") == 0) {
        if (method_ok(req, "POST", resp))
            trigger(d, req, OMS_EV_ORDER_STATUS_CHANGED, resp);
    } else if (strcmp(p, "/websocket/notifications/inventory-alert") == 0) {
        if (method_ok(req, "POST", resp))
            trigger(d, req, OMS_EV_INVENTORY_CHANGED, resp);
    } else if (strcmp(p, "/events") == 0) {
        /* a plain request to the WebSocket endpoint runs the same checks as
         * an upgrade, so a browser (which cannot read a refused upgrade's
         * body) can learn why it was refused */
        if (method_ok(req, "GET", resp) && omsd_rest_auth(d, req, &who, resp) == 0)
            omsd_rest_error(resp, 426, "upgrade_required",
                            "the token is valid; connect with a WebSocket upgrade");
    } else if (strcmp(p, "/dev/tokens") == 0 && d->dev) {
        if (method_ok(req, "GET", resp))
            dev_tokens(d, resp);
    } else if (!omsd_static_serve(d, req, resp)) {
        char msg[600];
        snprintf(msg, sizeof msg, "no such endpoint '%.500s'", p);
        omsd_rest_error(resp, 404, "not_found", msg);
    }
}
