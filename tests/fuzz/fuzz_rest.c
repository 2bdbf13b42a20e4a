/* fuzz_rest.c — the REST API of cmd/omsd/rest.c through omsd_rest_handle:
 * routing, the Authorization header, roles, and the body parsers of the
 * notification triggers and of the broadcast. rest.c, request.c and static.c are
 * compiled into this file; the Kafka produce is stubbed (nothing is sent)
 * and decodes what it is given; the daemon's other parts (metrics,
 * presence, projections) are small stand-ins.
 *
 * Input: byte 0 picks the path (a table of the API's paths; past it, the
 * first line of the rest is the path), byte 1 the credentials (0..9:
 * "Bearer @T<n>", 10 none, 11 ?token=@T0, 12 a malformed header, 13
 * "Bearer " and the second line), byte 2 the method, whether Kafka
 * refuses the record (0x80) and whether Kafka and PostgreSQL are down
 * (0x40). The rest is the body.
 * Invariants: a status in 100..599; a JSON body parses; a 2xx on a guarded
 * path only with a valid token of an allowed role; health's details
 * (brokers, error texts, connections) only with a valid staff or admin
 * token, and never an address or error text in its public answer; a 202
 * only when exactly one record was produced, which decodes and validates
 * as the path's type;
 * no console file outside the root; omsd_origin_allowed (the body's first
 * line as Origin, second as Host) admits only the configured origins and
 * the host's own. */
#include "../../cmd/omsd/rest.c"
#include "../../cmd/omsd/request.c"
#include "../../cmd/omsd/static.c"

#include <limits.h>

#include "fuzz.h"

/* ---- stand-ins for the rest of omsd -------------------------------------------------- */

static oms_events *g_events;
static int g_produced;
static oms_event_type g_produced_type;
static bool g_kafka_fails;

int oms_kafka_produce(oms_kafka_producer *p, const char *topic, int32_t partition, const void *key,
                      size_t keylen, const void *payload, size_t len,
                      const oms_kafka_header *headers, size_t nheaders, void *msg_opaque,
                      int block_ms, char *errbuf, size_t errlen)
{
    (void)p, (void)partition, (void)headers, (void)nheaders, (void)msg_opaque, (void)block_ms;
    FUZZ_CHECK(topic && key && keylen > 0, "produce without topic or key");
    if (g_kafka_fails) {
        oms_errf(errbuf, errlen, "stub: queue full");
        return OMS_EKAFKA;
    }
    oms_event ev;
    char err[512];
    int rc = oms_event_decode(g_events, payload, len, &ev, err, sizeof err);
    FUZZ_CHECK(rc == OMS_OK, "the REST API produced an undecodable record: %s", err);
    char k[128];
    int kl = oms_event_key(&ev, k, sizeof k);
    FUZZ_CHECK(kl >= 0 && (size_t)kl == keylen && memcmp(k, key, keylen) == 0,
               "record key does not match the event");
    g_produced_type = ev.type;
    oms_event_clear(&ev);
    g_produced++;
    return OMS_OK;
}

bool omsd_projections_health(omsd *d, json_t *deps)
{
    (void)d;
    json_object_set_new(deps, "projections", json_pack("{s:s}", "status", "up"));
    return true;
}

/* a registry that is down, with an error text only staff and admin may see */
json_t *omsd_registry_health(omsd *d)
{
    (void)d;
    return json_pack("{s:s,s:b,s:s,s:s}", "status", "down", "required", 0, "url",
                     "http://registry.fuzz:8081", "error", "fuzz registry unreachable");
}

bool omsd_alerts_health(omsd *d, json_t *deps)
{
    (void)d;
    (void)deps;
    return true;
}

char *omsd_metrics_text(omsd *d, size_t *len)
{
    (void)d;
    char *s = strdup("# fuzz\noms_up 1\n");
    *len = strlen(s);
    return s;
}

json_t *omsd_stats_json(omsd *d)
{
    return json_pack("{s:I}", "connections", (json_int_t)omsd_nconns(d));
}

size_t omsd_nconns(omsd *d)
{
    (void)d;
    return 0;
}

json_t *omsd_users_online(omsd *d)
{
    (void)d;
    return json_pack("[{s:i,s:i}]", "userId", 3, "connections", 1);
}

int omsd_user_connections(omsd *d, int64_t user_id)
{
    (void)d;
    return user_id == 3;
}

/* ---- the harness ------------------------------------------------------------------------ */

static omsd g_d;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (g_events)
        return 0;
    fuzz_tokens_init(oms_now_ms() / 1000);
    char err[512];
    g_events = oms_events_new(NULL, err, sizeof err);
    if (!g_events || oms_config_defaults(&g_d.cfg) != OMS_OK) {
        fprintf(stderr, "fuzz_rest: %s\n", err);
        abort();
    }
    g_d.auth = (oms_auth *)fuzz_auth();
    g_d.events = g_events;
    g_d.dev = true;
    g_d.secret = (unsigned char *)FUZZ_SECRET;
    g_d.secret_len = strlen(FUZZ_SECRET);
    g_d.topics[OMS_TOPIC_ORDERS] = "oms.orders";
    g_d.topics[OMS_TOPIC_INVENTORY] = "oms.inventory";
    g_d.topics[OMS_TOPIC_NOTIFICATIONS] = "oms.notifications";
    free(g_d.cfg.server.cors_origin);
    g_d.cfg.server.cors_origin = strdup(" https://console.example ,http://localhost:5173");
    /* an address and an error text that health's public answer must not show */
    free(g_d.cfg.kafka.brokers);
    g_d.cfg.kafka.brokers = strdup("10.9.8.7:9092");
    snprintf(g_d.kafka_error, sizeof g_d.kafka_error,
             "10.9.8.7:9092/bootstrap: Connect to ipv4#10.9.8.7:9092 failed: Connection refused");
    g_d.cfg.projections.enabled = true;
    g_d.started_ms = oms_now_ms();
    /* the console's files, when run from the repository root */
    char real[PATH_MAX];
    if (realpath("web", real))
        snprintf(g_d.web_root, sizeof g_d.web_root, "%s", real);
    return 0;
}

#define R_ALL (R(CUSTOMER) | R(STAFF) | R(ADMIN) | R(SERVICE))
static const struct {
    const char *path;
    unsigned roles; /* who may get a 2xx; 0: no token needed */
    int type;       /* the event a 202 produces, -1 none */
} k_paths[] = {
    {"/websocket/notifications/order-created", R(STAFF) | R(ADMIN) | R(SERVICE),
     OMS_EV_ORDER_CREATED},
    {"/websocket/notifications/order-status-update", R(STAFF) | R(ADMIN) | R(SERVICE),
     OMS_EV_ORDER_STATUS_CHANGED},
    {"/websocket/notifications/inventory-alert", R(STAFF) | R(ADMIN) | R(SERVICE),
     OMS_EV_INVENTORY_CHANGED},
    {"/websocket/broadcast", R(ADMIN), -2}, /* system or user notification */
    {"/websocket/health", 0, -1},
    {"/websocket/stats", R(STAFF) | R(ADMIN), -1},
    {"/websocket/users/online", R(STAFF) | R(ADMIN), -1},
    {"/websocket/users/3/online", R(STAFF) | R(ADMIN), -1},
    {"/events", R_ALL, -1},
    {"/metrics", 0, -1},
    {"/dev/tokens", 0, -1},
    {"/", 0, -1},
};

/* The principal a placeholder token stands for (fuzz_tokens.c); -1 invalid. */
static int token_role(int i)
{
    static const int roles[FUZZ_NTOKENS] = {OMS_ROLE_ADMIN, OMS_ROLE_STAFF,    OMS_ROLE_CUSTOMER,
                                            OMS_ROLE_CUSTOMER, OMS_ROLE_SERVICE, -1,
                                            -1,             OMS_ROLE_CUSTOMER, -1,
                                            OMS_ROLE_STAFF};
    return i >= 0 && i < FUZZ_NTOKENS ? roles[i] : -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!g_events)
        LLVMFuzzerInitialize(NULL, NULL);
    if (size < 3)
        return 0;
    static const char *const methods[] = {"POST", "GET", "HEAD", "OPTIONS", "PUT", "DELETE"};
    size_t npaths = OMS_ARRAY_LEN(k_paths);
    size_t len;
    char *rest = fuzz_expand(data + 3, size - 3, &len);
    const char *body = rest;
    size_t body_len = len;
    char path[1024];
    int pi = data[0] < npaths ? data[0] : -1;
    if (pi >= 0) {
        snprintf(path, sizeof path, "%s", k_paths[pi].path);
    } else {
        const char *nl = memchr(rest, '\n', len);
        size_t pl = nl ? (size_t)(nl - rest) : len;
        if (pl >= sizeof path)
            pl = sizeof path - 1;
        memcpy(path, rest, pl);
        path[pl] = '\0';
        body = nl ? nl + 1 : rest + len;
        body_len = len - (size_t)(body - rest);
    }
    char auth[OMS_AUTH_MAX_TOKEN_LEN + 64] = "";
    const char *token_arg = "";
    int cred = data[1] % 14;
    int role = -1;
    if (cred < FUZZ_NTOKENS) {
        snprintf(auth, sizeof auth, "Bearer %s", fuzz_token(cred));
        role = token_role(cred);
    } else if (cred == 11) {
        token_arg = fuzz_token(0);
        role = OMS_ROLE_ADMIN;
    } else if (cred == 12) {
        snprintf(auth, sizeof auth, "Basic %s", fuzz_token(0));
    } else if (cred == 13) {
        /* the body's first line is the token */
        const char *nl = memchr(body, '\n', body_len);
        size_t tl = nl ? (size_t)(nl - body) : body_len;
        if (tl > OMS_AUTH_MAX_TOKEN_LEN + 16)
            tl = OMS_AUTH_MAX_TOKEN_LEN + 16;
        memcpy(auth, "Bearer ", 7);
        memcpy(auth + 7, body, tl);
        auth[7 + tl] = '\0';
        role = -2; /* unknown */
        if (nl) {
            body_len -= tl + 1;
            body = nl + 1;
        }
    }
    const char *method = methods[(data[2] & 0x7f) % OMS_ARRAY_LEN(methods)];
    g_kafka_fails = (data[2] & 0x80) != 0;
    bool deps_down = (data[2] & 0x40) != 0;
    atomic_store(&g_d.kafka_up, !deps_down);
    atomic_store(&g_d.pg_up, !deps_down);
    g_produced = 0;

    /* the body in a buffer of its own size, as lws hands it over */
    char *b = malloc(body_len ? body_len : 1);
    memcpy(b, body, body_len);
    omsd_http_req req = {method, path, "", auth, token_arg, "", b, body_len, 7};
    omsd_http_resp resp;
    memset(&resp, 0, sizeof resp);
    omsd_rest_handle(&g_d, &req, &resp);

    static int debug = -1;
    if (debug < 0)
        debug = getenv("FUZZ_DEBUG") != NULL;
    if (debug)
        fprintf(stderr, "%s %s (credentials %d): %d %.*s\n", method, path, cred, resp.status,
                resp.body && resp.len < 300 ? (int)resp.len : 0, resp.body ? resp.body : "");
    FUZZ_CHECK(resp.status >= 100 && resp.status <= 599, "status %d", resp.status);
    if (resp.body && resp.content_type && strcmp(resp.content_type, "application/json") == 0) {
        json_t *j = json_loadb(resp.body, resp.len, 0, NULL);
        FUZZ_CHECK(j, "a JSON answer does not parse: %.*s", (int)resp.len, resp.body);
        json_decref(j);
    }
    bool ok2xx = resp.status >= 200 && resp.status < 300 && strcmp(method, "OPTIONS") != 0;
    if (pi >= 0 && k_paths[pi].roles && ok2xx && role != -2) {
        FUZZ_CHECK(role >= 0, "%s answered %d to an invalid token (credentials %d)", path,
                   resp.status, cred);
        FUZZ_CHECK(k_paths[pi].roles & (1u << role), "%s answered %d to a %s", path, resp.status,
                   oms_role_name((oms_role)role));
    }
    if (pi >= 0 && strcmp(path, "/websocket/health") == 0 && resp.status != 405 &&
        strcmp(method, "OPTIONS") != 0) {
        FUZZ_CHECK(resp.status == (deps_down ? 503 : 200), "health answered %d", resp.status);
        char *hb = strndup(resp.body ? resp.body : "", resp.len);
        bool details = strstr(hb, "\"brokers\"") != NULL;
        bool leaks = strstr(hb, "10.9.8.7") || strstr(hb, "\"error\"") ||
                     strstr(hb, "\"connections\"");
        if (role != -2) {
            bool may = role == OMS_ROLE_STAFF || role == OMS_ROLE_ADMIN;
            FUZZ_CHECK(may == details, "health %s details to credentials %d: %s",
                       details ? "gave" : "refused", cred, hb);
            FUZZ_CHECK(may || !leaks, "health's public answer shows details: %s", hb);
        }
        FUZZ_CHECK(!deps_down || strstr(hb, "\"failing\":\"kafka, postgres\""),
                   "health does not say what is down: %s", hb);
        free(hb);
    }
    if (resp.status == 202) {
        FUZZ_CHECK(g_produced == 1, "202 after %d records", g_produced);
        FUZZ_CHECK(strcmp(method, "POST") == 0, "202 to %s", method);
        if (pi >= 0 && k_paths[pi].type >= 0)
            FUZZ_CHECK((int)g_produced_type == k_paths[pi].type, "produced type %d on %s",
                       (int)g_produced_type, path);
        if (pi >= 0 && k_paths[pi].type == -2)
            FUZZ_CHECK(g_produced_type == OMS_EV_SYSTEM_NOTIFICATION ||
                           g_produced_type == OMS_EV_USER_NOTIFICATION,
                       "broadcast produced type %d", (int)g_produced_type);
    } else {
        FUZZ_CHECK(g_produced == 0 || g_kafka_fails, "%d records produced, answer %d", g_produced,
                   resp.status);
    }
    if (pi < 0 && resp.status == 200 && strncmp(path, "/websocket/", 11) != 0)
        FUZZ_CHECK(!strstr(path, "..") && !strstr(path, "//") && !strchr(path, '\\'),
                   "served '%s'", path);
    /* the Origin check of WebSocket upgrades and Socket.IO: the first line
     * of the body as the Origin, the second as the Host */
    const char *nl = memchr(b, '\n', body_len);
    char origin[256], host[256];
    size_t ol = nl ? (size_t)(nl - b) : body_len;
    snprintf(origin, sizeof origin, "%.*s", (int)(ol < 255 ? ol : 255), b);
    const char *h = nl ? nl + 1 : b + body_len;
    size_t hl = body_len - (size_t)(h - b);
    const char *nl2 = memchr(h, '\n', hl);
    if (nl2)
        hl = (size_t)(nl2 - h);
    snprintf(host, sizeof host, "%.*s", (int)(hl < 255 ? hl : 255), h);
    bool allowed = omsd_origin_allowed(&g_d, origin, host);
    if (allowed && origin[0] && strcmp(origin, "https://console.example") != 0 &&
        strcmp(origin, "http://localhost:5173") != 0) {
        const char *rs = strstr(origin, "://");
        FUZZ_CHECK(rs && strcmp(rs + 3, host) == 0, "origin '%s' allowed for host '%s'", origin,
                   host);
    }
    free(resp.body);
    free(b);
    free(rest);
    return 0;
}
