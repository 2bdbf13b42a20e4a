/* api.c — the commands that talk to omsd's REST API: health, stats, users,
 * broadcast, notify; and token, which mints a JWT for them. */
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "auth/auth.h"
#include "ctl.h"
#include "http/http.h"
#include "json/json.h"

/* What every API command shares. */
typedef struct api {
    const char *cmd; /* "omsctl health" */
    char url[512];
    char *token; /* malloc'd */
    bool json;
    long timeout_ms;
    oms_config cfg;
} api;

/* Long options shared by the API commands; each command appends its own. */
#define API_OPTS                                                                                   \
    {"url", required_argument, NULL, 'U'}, {"token", required_argument, NULL, 'T'},               \
        {"json", no_argument, NULL, 'J'}, {"config", required_argument, NULL, 'c'},                \
        {"timeout", required_argument, NULL, 'W'}, {"help", no_argument, NULL, 'h'}

#define API_HELP                                                                                   \
    "  --url URL          omsd's address (default: $OMS_URL, else http://127.0.0.1:PORT\n"         \
    "                     with PORT from the configuration)\n"                                     \
    "  --token JWT        bearer token (default: $OMS_TOKEN, else one minted as admin\n"           \
    "                     from JWT_SECRET, JWT_SECRET_FILE or auth.jwt_secret[_file])\n"          \
    "  --json             print omsd's JSON answer as it is\n"                                     \
    "  --config FILE      configuration file (default: $OMS_CONFIG, none)\n"                       \
    "  --timeout SECONDS  give up after this long (default 10)\n"                                  \
    "  -h, --help         this help\n"

typedef struct api_opts {
    const char *url, *token, *config;
    bool json;
    long timeout_s;
} api_opts;

/* Handle a shared option; returns 1 when opt was one, -1 on a bad value. */
static int api_opt(api_opts *o, int opt, const char *cmd)
{
    switch (opt) {
    case 'U': o->url = optarg; return 1;
    case 'T': o->token = optarg; return 1;
    case 'J': o->json = true; return 1;
    case 'c': o->config = optarg; return 1;
    case 'W':
        return oms_cli_parse_long(cmd, "--timeout", optarg, 1, 3600, &o->timeout_s) ? -1 : 1;
    default: return 0;
    }
}

static int api_open(api *a, const char *cmd, const api_opts *o, bool need_token)
{
    memset(a, 0, sizeof *a);
    a->cmd = cmd;
    a->json = o->json;
    a->timeout_ms = (o->timeout_s > 0 ? o->timeout_s : 10) * 1000;
    int rc = ctl_config(&a->cfg, o->config, NULL);
    if (rc)
        return rc;
    const char *url = o->url ? o->url : getenv("OMS_URL");
    if (url && *url)
        snprintf(a->url, sizeof a->url, "%s", url);
    else
        snprintf(a->url, sizeof a->url, "http://127.0.0.1:%d", a->cfg.server.port);
    size_t ul = strlen(a->url);
    while (ul > 0 && a->url[ul - 1] == '/')
        a->url[--ul] = '\0';
    if (strncmp(a->url, "http://", 7) != 0 && strncmp(a->url, "https://", 8) != 0) {
        oms_config_free(&a->cfg);
        return oms_cli_usage_error(cmd, "--url: expected http://HOST:PORT or https://..., got '%s'",
                                   a->url);
    }
    const char *tok = o->token ? o->token : getenv("OMS_TOKEN");
    if (tok && *tok) {
        a->token = strdup(tok);
    } else if (need_token && a->cfg.auth.jwt_secret && *a->cfg.auth.jwt_secret) {
        const char *s = a->cfg.auth.jwt_secret;
        a->token = oms_auth_mint_hs256((const unsigned char *)s, strlen(s), 1, OMS_ROLE_ADMIN, 300,
                                       oms_now_ms() / 1000, a->cfg.auth.issuer,
                                       a->cfg.auth.audience);
    }
    return OMS_EXIT_OK;
}

static void api_close(api *a)
{
    free(a->token);
    oms_config_free(&a->cfg);
}

/* One request; prints why it failed. Returns the HTTP status or -1. */
static long api_call(api *a, const char *method, const char *path, const char *body,
                     oms_http_resp *r)
{
    char url[1024], err[256];
    snprintf(url, sizeof url, "%s%s", a->url, path);
    if (oms_http_request(method, url, a->token, body, a->timeout_ms, r, err, sizeof err) != 0) {
        fprintf(stderr, "omsctl: cannot reach omsd at '%s': %s (is omsd running? set --url or "
                        "OMS_URL)\n",
                a->url, err);
        return -1;
    }
    if (r->status == 401)
        fprintf(stderr, "omsctl: omsd refused the token: %s (set --token or OMS_TOKEN, or "
                        "JWT_SECRET or JWT_SECRET_FILE to mint one)\n",
                oms_http_error_message(r) ? oms_http_error_message(r) : "unauthorized");
    else if (r->status == 403)
        fprintf(stderr, "omsctl: not allowed: %s (this needs another role)\n",
                oms_http_error_message(r) ? oms_http_error_message(r) : "forbidden");
    else if (r->status >= 400 && r->status != 503)
        fprintf(stderr, "omsctl: omsd answered %ld: %s\n", r->status,
                oms_http_error_message(r) ? oms_http_error_message(r) : r->body);
    return r->status;
}

static void print_json(const json_t *j, const char *raw)
{
    if (j) {
        char *s = oms_json_dumps(j, JSON_COMPACT);
        puts(s ? s : "null");
        free(s);
    } else {
        puts(raw ? raw : "");
    }
}

static const char *str(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "-";
}

static void fmt_duration(json_int_t secs, char *buf, size_t len)
{
    if (secs >= 86400)
        snprintf(buf, len, "%lldd%02lldh", (long long)secs / 86400, (long long)(secs % 86400) / 3600);
    else if (secs >= 3600)
        snprintf(buf, len, "%lldh%02lldm", (long long)secs / 3600, (long long)(secs % 3600) / 60);
    else
        snprintf(buf, len, "%lldm%02llds", (long long)secs / 60, (long long)secs % 60);
}

/* ---- health ------------------------------------------------------------------------ */

int cmd_health(int argc, char **argv)
{
    static const struct option longopts[] = {API_OPTS, {NULL, 0, NULL, 0}};
    const char *pc = "omsctl health";
    api_opts o = {0};
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        int r = api_opt(&o, opt, pc);
        if (r < 0)
            return OMS_EXIT_USAGE;
        if (r)
            continue;
        if (opt == 'h') {
            printf("usage: omsctl health [options]\n\n"
                   "Ask omsd whether it and its dependencies (Kafka, PostgreSQL) are up.\n"
                   "No token is needed for that. With a staff or admin token (one is minted\n"
                   "when a JWT secret is configured) omsd adds the details: brokers, error\n"
                   "texts, connections, projection counters.\n\noptions:\n" API_HELP
                   "\nexit status: 0 healthy, 1 unhealthy or unreachable, 2 usage\n");
            return OMS_EXIT_OK;
        }
        return oms_cli_usage_error(pc, "unknown or incomplete option");
    }
    if (optind < argc)
        return oms_cli_usage_error(pc, "unexpected argument '%s'", argv[optind]);
    api a;
    /* a token is optional here, but only with one does omsd show the details */
    int rc = api_open(&a, pc, &o, true);
    if (rc)
        return rc;
    oms_http_resp r;
    long st = api_call(&a, "GET", "/websocket/health", NULL, &r);
    int exit_code = OMS_EXIT_FAIL;
    if (st == 200 || st == 503) {
        if (a.json) {
            print_json(r.json, r.body);
        } else {
            char up[32];
            fmt_duration(json_integer_value(json_object_get(r.json, "uptimeSeconds")), up,
                         sizeof up);
            /* connections is one of the details a staff or admin token sees */
            json_t *conns = json_object_get(r.json, "connections");
            if (conns)
                printf("omsd        %-6s uptime %s, %lld connections (%s)\n",
                       str(r.json, "status"), up, (long long)json_integer_value(conns), a.url);
            else
                printf("omsd        %-6s uptime %s (%s; details need a staff or admin token)\n",
                       str(r.json, "status"), up, a.url);
            json_t *deps = json_object_get(r.json, "dependencies");
            const char *k;
            json_t *v;
            json_object_foreach(deps, k, v)
            {
                printf("%-11s %-6s", k, str(v, "status"));
                if (json_object_get(v, "brokers"))
                    printf(" %s", str(v, "brokers"));
                if (json_object_get(v, "error"))
                    printf(" (%s)", str(v, "error"));
                if (json_is_false(json_object_get(v, "required")))
                    printf(" (not required)");
                printf("\n");
            }
        }
        if (st == 200) {
            exit_code = OMS_EXIT_OK;
        } else {
            fprintf(stderr, "omsctl: omsd is unhealthy: %s down\n", str(r.json, "failing"));
        }
    }
    if (st >= 0)
        oms_http_resp_free(&r);
    api_close(&a);
    return exit_code;
}

/* ---- stats ------------------------------------------------------------------------- */

static volatile int stats_rows;

static void print_stats(const json_t *j, bool header)
{
    json_t *ev = json_object_get(j, "events");
    json_int_t c = 0, dl = 0, dr = 0;
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(ev, "consumed"), k, v) c += json_integer_value(v);
    json_object_foreach(json_object_get(ev, "delivered"), k, v) dl += json_integer_value(v);
    json_object_foreach(json_object_get(ev, "dropped"), k, v) dr += json_integer_value(v);
    if (header)
        printf("%-8s %11s %6s %8s %9s %10s %11s %12s %8s %5s %5s %7s %7s\n", "TIME",
               "CONNECTIONS", "USERS", "ORDERS", "INVENTORY", "EVENTS/S", "DELIVERED/S",
               "DELIVERED", "DROPPED", "LAG", "DLQ", "P50MS", "P99MS");
    char ts[16];
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(ts, sizeof ts, "%H:%M:%S", &tm);
    json_t *subs = json_object_get(j, "subscriptions");
    /* event age at write time (record timestamp -> socket write), "-"
     * before the first delivery */
    char p50[16] = "-", p99[16] = "-";
    json_t *age = json_object_get(j, "deliveryAgeMs");
    if (json_is_number(json_object_get(age, "p50")))
        snprintf(p50, sizeof p50, "%.1f", json_number_value(json_object_get(age, "p50")));
    if (json_is_number(json_object_get(age, "p99")))
        snprintf(p99, sizeof p99, "%.1f", json_number_value(json_object_get(age, "p99")));
    printf("%-8s %11lld %6lld %8lld %9lld %10.0f %11.0f %12lld %8lld %5lld %5lld %7s %7s\n", ts,
           (long long)json_integer_value(json_object_get(j, "connections")),
           (long long)json_integer_value(json_object_get(j, "usersOnline")),
           (long long)json_integer_value(json_object_get(subs, "orders")),
           (long long)json_integer_value(json_object_get(subs, "inventory")),
           json_number_value(json_object_get(j, "eventsPerSecond")),
           json_number_value(json_object_get(j, "deliveriesPerSecond")), (long long)dl,
           (long long)dr, (long long)json_integer_value(json_object_get(j, "consumerLag")),
           (long long)json_integer_value(json_object_get(j, "dlq")), p50, p99);
    (void)c;
    fflush(stdout);
}

int cmd_stats(int argc, char **argv)
{
    static const struct option longopts[] = {API_OPTS, {"watch", optional_argument, NULL, 'w'},
                                             {NULL, 0, NULL, 0}};
    const char *pc = "omsctl stats";
    api_opts o = {0};
    long watch = 0;
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "hw::", longopts, NULL)) != -1) {
        int r = api_opt(&o, opt, pc);
        if (r < 0)
            return OMS_EXIT_USAGE;
        if (r)
            continue;
        if (opt == 'w') {
            watch = 2;
            if (optarg && oms_cli_parse_long(pc, "--watch", optarg, 1, 3600, &watch))
                return OMS_EXIT_USAGE;
            continue;
        }
        if (opt == 'h') {
            printf("usage: omsctl stats [--watch[=SECONDS]] [options]\n\n"
                   "omsd's live figures: connections, users online, subscriptions, events and\n"
                   "deliveries per second, totals, consumer lag, DLQ count, and the age of\n"
                   "events when written to clients (record timestamp to socket write, p50 and\n"
                   "p99 in ms since omsd started). Needs a staff or admin token.\n\noptions:\n"
                   "  --watch[=SECONDS]  print a new line every SECONDS (default 2) until Ctrl-C\n" API_HELP
                   "\nexit status: 0 ok, 1 failed, 2 usage\n");
            return OMS_EXIT_OK;
        }
        return oms_cli_usage_error(pc, "unknown or incomplete option");
    }
    if (optind < argc)
        return oms_cli_usage_error(pc, "unexpected argument '%s'", argv[optind]);
    api a;
    int rc = api_open(&a, pc, &o, true);
    if (rc)
        return rc;
    ctl_install_signals();
    int exit_code = OMS_EXIT_OK;
    for (int n = 0; !ctl_stop; n++) {
        oms_http_resp r;
        long st = api_call(&a, "GET", "/websocket/stats", NULL, &r);
        if (st != 200) {
            exit_code = OMS_EXIT_FAIL;
            if (st >= 0)
                oms_http_resp_free(&r);
            break;
        }
        if (a.json)
            print_json(r.json, r.body);
        else
            print_stats(r.json, n % 20 == 0);
        oms_http_resp_free(&r);
        if (!watch)
            break;
        for (long t = 0; t < watch * 10 && !ctl_stop; t++)
            usleep(100000);
    }
    api_close(&a);
    return exit_code;
}

/* ---- users ------------------------------------------------------------------------- */

int cmd_users(int argc, char **argv)
{
    static const struct option longopts[] = {API_OPTS, {NULL, 0, NULL, 0}};
    const char *pc = "omsctl users";
    api_opts o = {0};
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        int r = api_opt(&o, opt, pc);
        if (r < 0)
            return OMS_EXIT_USAGE;
        if (r)
            continue;
        if (opt == 'h') {
            printf("usage: omsctl users online [options]\n"
                   "       omsctl users get ID [options]\n\n"
                   "online: the users connected to omsd now, with their connection counts\n"
                   "get:    whether user ID is connected (exit 1 when not)\n"
                   "Needs a staff or admin token.\n\noptions:\n" API_HELP
                   "\nexit status: 0 ok (get: online), 1 failed (get: offline), 2 usage\n");
            return OMS_EXIT_OK;
        }
        return oms_cli_usage_error(pc, "unknown or incomplete option");
    }
    if (optind >= argc)
        return oms_cli_usage_error(pc, "name an action: online or get ID");
    const char *action = argv[optind++];
    long id = 0;
    if (strcmp(action, "get") == 0) {
        if (optind >= argc)
            return oms_cli_usage_error(pc, "get needs a user ID");
        if (oms_cli_parse_long(pc, "ID", argv[optind++], 1, LONG_MAX, &id))
            return OMS_EXIT_USAGE;
    } else if (strcmp(action, "online") != 0) {
        return oms_cli_usage_error(pc, "unknown action '%s' (online or get)", action);
    }
    if (optind < argc)
        return oms_cli_usage_error(pc, "unexpected argument '%s'", argv[optind]);
    api a;
    int rc = api_open(&a, pc, &o, true);
    if (rc)
        return rc;
    char path[128];
    if (id)
        snprintf(path, sizeof path, "/websocket/users/%ld/online", id);
    else
        snprintf(path, sizeof path, "/websocket/users/online");
    oms_http_resp r;
    long st = api_call(&a, "GET", path, NULL, &r);
    int exit_code = OMS_EXIT_FAIL;
    if (st == 200) {
        exit_code = OMS_EXIT_OK;
        if (a.json) {
            print_json(r.json, r.body);
        } else if (id) {
            bool on = json_is_true(json_object_get(r.json, "online"));
            printf("user %ld is %s (%lld connection%s)\n", id, on ? "online" : "offline",
                   (long long)json_integer_value(json_object_get(r.json, "connections")),
                   json_integer_value(json_object_get(r.json, "connections")) == 1 ? "" : "s");
        } else {
            printf("%-10s %s\n", "USER", "CONNECTIONS");
            size_t i;
            json_t *u;
            json_array_foreach(json_object_get(r.json, "users"), i, u)
                printf("%-10lld %lld\n", (long long)json_integer_value(json_object_get(u, "userId")),
                       (long long)json_integer_value(json_object_get(u, "connections")));
            printf("%lld user(s) online\n",
                   (long long)json_integer_value(json_object_get(r.json, "count")));
        }
        if (id && !json_is_true(json_object_get(r.json, "online")))
            exit_code = OMS_EXIT_FAIL;
    }
    if (st >= 0)
        oms_http_resp_free(&r);
    api_close(&a);
    return exit_code;
}

/* ---- broadcast and notify ---------------------------------------------------------- */

/* A flag that becomes a member of the request body. */
typedef struct body_flag {
    const char *flag;   /* "order-id" */
    const char *member; /* "orderId" */
    char kind;          /* 's' string, 'i' integer, 'n' number, 'j' JSON */
    bool required;
    const char *help;
} body_flag;

static int post_with_flags(const char *pc, const char *path, const char *usage,
                           const body_flag *flags, const char *fixed_type, int argc, char **argv)
{
    struct option longopts[32] = {API_OPTS};
    size_t nbase = 6, nf = 0;
    while (flags[nf].flag)
        nf++;
    for (size_t i = 0; i < nf; i++)
        longopts[nbase + i] = (struct option){flags[i].flag, required_argument, NULL, 1000 + (int)i};
    const char *vals[24] = {0};
    api_opts o = {0};
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        int r = api_opt(&o, opt, pc);
        if (r < 0)
            return OMS_EXIT_USAGE;
        if (r)
            continue;
        if (opt >= 1000 && opt < 1000 + (int)nf) {
            vals[opt - 1000] = optarg;
            continue;
        }
        if (opt == 'h') {
            printf("%s\noptions:\n", usage);
            for (size_t i = 0; i < nf; i++)
                printf("  --%-17s %s%s\n", flags[i].flag, flags[i].help,
                       flags[i].required ? " (required)" : "");
            printf(API_HELP "\nexit status: 0 accepted (the event is on Kafka), 1 refused or "
                            "failed, 2 usage\n");
            return OMS_EXIT_OK;
        }
        return oms_cli_usage_error(pc, "unknown or incomplete option");
    }
    if (optind < argc)
        return oms_cli_usage_error(pc, "unexpected argument '%s'", argv[optind]);
    json_t *body = json_object();
    if (fixed_type)
        json_object_set_new(body, "type", json_string(fixed_type));
    for (size_t i = 0; i < nf; i++) {
        const char *v = vals[i];
        if (!v) {
            if (flags[i].required) {
                json_decref(body);
                return oms_cli_usage_error(pc, "--%s is required", flags[i].flag);
            }
            continue;
        }
        json_t *jv = NULL;
        char *end;
        switch (flags[i].kind) {
        case 'i': {
            long long x = strtoll(v, &end, 10);
            if (*end == '\0' && end != v)
                jv = json_integer(x);
            break;
        }
        case 'n': {
            double x = strtod(v, &end);
            if (*end == '\0' && end != v)
                jv = json_real(x);
            break;
        }
        case 'j':
            jv = json_loads(v, JSON_DECODE_ANY, NULL);
            break;
        default:
            jv = json_string(v);
        }
        if (!jv) {
            json_decref(body);
            return oms_cli_usage_error(pc, "--%s: expected %s, got '%s'", flags[i].flag,
                                       flags[i].kind == 'i'   ? "an integer"
                                       : flags[i].kind == 'n' ? "a number"
                                       : flags[i].kind == 'j' ? "JSON"
                                                              : "text",
                                       v);
        }
        json_object_set_new(body, flags[i].member, jv);
    }
    api a;
    int rc = api_open(&a, pc, &o, true);
    if (rc) {
        json_decref(body);
        return rc;
    }
    char *text = oms_json_dumps(body, JSON_COMPACT);
    json_decref(body);
    oms_http_resp r;
    long st = api_call(&a, "POST", path, text, &r);
    free(text);
    int exit_code = OMS_EXIT_FAIL;
    if (st == 202) {
        exit_code = OMS_EXIT_OK;
        if (a.json)
            print_json(r.json, r.body);
        else
            printf("accepted: %s %s on %s\n", str(r.json, "type"), str(r.json, "eventId"),
                   str(r.json, "topic"));
    } else if (st == 503) {
        fprintf(stderr, "omsctl: omsd could not produce the event: %s\n",
                oms_http_error_message(&r) ? oms_http_error_message(&r) : r.body);
    }
    if (st >= 0)
        oms_http_resp_free(&r);
    api_close(&a);
    return exit_code;
}

int cmd_broadcast(int argc, char **argv)
{
    static const body_flag flags[] = {
        {"title", "title", 's', true, "the notification's title"},
        {"message", "message", 's', true, "its text"},
        {"severity", "severity", 's', false, "info (default), warning or critical"},
        {"data", "data", 'j', false, "extra data, a JSON object"},
        {NULL, NULL, 0, false, NULL},
    };
    return post_with_flags("omsctl broadcast", "/websocket/broadcast",
                           "usage: omsctl broadcast --title T --message M [--severity S] "
                           "[--data JSON] [options]\n\n"
                           "Send a system notification to every connected client (through Kafka,\n"
                           "so every omsd instance delivers it). Needs an admin token.\n",
                           flags, "system", argc, argv);
}

int cmd_notify(int argc, char **argv)
{
    static const body_flag order_created[] = {
        {"order-id", "orderId", 's', true, "order id"},
        {"alias-id", "aliasId", 's', true, "human-readable order number"},
        {"user-id", "userId", 'i', true, "the customer's user id"},
        {"total", "totalAmount", 'n', true, "order total"},
        {"status", "status", 's', false, "initial status (default created)"},
        {"items", "items", 'j', false, "JSON array of {productId, quantity, price}"},
        {NULL, NULL, 0, false, NULL},
    };
    static const body_flag order_status[] = {
        {"order-id", "orderId", 's', true, "order id"},
        {"alias-id", "aliasId", 's', true, "human-readable order number"},
        {"user-id", "userId", 'i', true, "the customer's user id"},
        {"status", "status", 's', true, "created|confirmed|shipped|delivered|cancelled"},
        {"previous-status", "previousStatus", 's', false, "the status before"},
        {"message", "message", 's', false, "a note for the customer"},
        {NULL, NULL, 0, false, NULL},
    };
    static const body_flag inventory[] = {
        {"product-id", "productId", 'i', true, "product id"},
        {"product-name", "productName", 's', true, "product name"},
        {"quantity", "quantity", 'i', true, "stock now"},
        {"threshold", "threshold", 'i', true, "low-stock threshold"},
        {"status", "status", 's', true, "in_stock|low_stock|out_of_stock|restocked"},
        {NULL, NULL, 0, false, NULL},
    };
    const char *pc = "omsctl notify";
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        FILE *out = argc < 2 ? stderr : stdout;
        fprintf(out, "usage: omsctl notify order-created|order-status|inventory-alert [options]\n\n"
                     "Trigger an event through omsd's REST API (it is produced to Kafka, then\n"
                     "pushed to the clients entitled to it). Needs a staff, admin or service\n"
                     "token. 'omsctl notify KIND --help' lists each kind's flags.\n");
        return argc < 2 ? OMS_EXIT_USAGE : OMS_EXIT_OK;
    }
    const char *kind = argv[1];
    if (strcmp(kind, "order-created") == 0)
        return post_with_flags("omsctl notify order-created",
                               "/websocket/notifications/order-created",
                               "usage: omsctl notify order-created --order-id ID --alias-id A "
                               "--user-id U --total N [options]\n",
                               order_created, NULL, argc - 1, argv + 1);
    if (strcmp(kind, "order-status") == 0)
        return post_with_flags("omsctl notify order-status",
                               "/websocket/notifications/order-status-update",
                               "usage: omsctl notify order-status --order-id ID --alias-id A "
                               "--user-id U --status S [options]\n",
                               order_status, NULL, argc - 1, argv + 1);
    if (strcmp(kind, "inventory-alert") == 0)
        return post_with_flags("omsctl notify inventory-alert",
                               "/websocket/notifications/inventory-alert",
                               "usage: omsctl notify inventory-alert --product-id P --product-name "
                               "N --quantity Q --threshold T --status S [options]\n",
                               inventory, NULL, argc - 1, argv + 1);
    return oms_cli_usage_error(pc, "unknown kind '%s' (order-created, order-status or "
                                   "inventory-alert)",
                               kind);
}

/* ---- token ------------------------------------------------------------------------- */

/* "90", "90s", "15m", "8h", "7d" → seconds; -1 when malformed */
static long parse_ttl(const char *s)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || v <= 0)
        return -1;
    long mul = 1;
    if (*end == 'm')
        mul = 60;
    else if (*end == 'h')
        mul = 3600;
    else if (*end == 'd')
        mul = 86400;
    else if (*end != 's' && *end != '\0')
        return -1;
    if (*end && end[1])
        return -1;
    return v > LONG_MAX / mul ? -1 : v * mul;
}

int cmd_token(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"sub", required_argument, NULL, 's'},     {"role", required_argument, NULL, 'r'},
        {"ttl", required_argument, NULL, 't'},     {"secret", required_argument, NULL, 'S'},
        {"config", required_argument, NULL, 'c'},  {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *pc = "omsctl token";
    const char *sub = NULL, *role_s = NULL, *ttl_s = "1h", *secret = NULL, *config = NULL;
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (opt) {
        case 's': sub = optarg; break;
        case 'r': role_s = optarg; break;
        case 't': ttl_s = optarg; break;
        case 'S': secret = optarg; break;
        case 'c': config = optarg; break;
        case 'h':
            printf("usage: omsctl token --sub USER_ID --role ROLE [--ttl 1h] [--secret S]\n\n"
                   "Mint an HS256 JWT for testing and scripts, signed with --secret, else\n"
                   "JWT_SECRET, JWT_SECRET_FILE or auth.jwt_secret[_file]. It carries sub\n"
                   "and userId (USER_ID), role, iat, exp, and iss/aud when configured.\n\n"
                   "options:\n"
                   "  --sub USER_ID   the user id (a positive integer)\n"
                   "  --role ROLE     customer, staff, admin or service\n"
                   "  --ttl DURATION  lifetime: 90, 90s, 15m, 8h, 7d (default 1h)\n"
                   "  --secret S      signing secret (default: $JWT_SECRET, the file\n"
                   "                  $JWT_SECRET_FILE, config)\n"
                   "  --config FILE   configuration file (default: $OMS_CONFIG, none)\n"
                   "  -h, --help      this help\n\n"
                   "exit status: 0 ok, 2 usage (bad flag, no secret)\n");
            return OMS_EXIT_OK;
        default: return oms_cli_usage_error(pc, "unknown or incomplete option");
        }
    }
    if (optind < argc)
        return oms_cli_usage_error(pc, "unexpected argument '%s'", argv[optind]);
    if (!sub || !role_s)
        return oms_cli_usage_error(pc, "--sub and --role are required");
    long uid;
    if (oms_cli_parse_long(pc, "--sub", sub, 0, LONG_MAX, &uid))
        return OMS_EXIT_USAGE;
    oms_role role;
    if (oms_role_parse(role_s, &role) != OMS_OK)
        return oms_cli_usage_error(pc, "--role: expected customer, staff, admin or service, got "
                                       "'%s'",
                                   role_s);
    if (uid == 0 && role != OMS_ROLE_SERVICE)
        return oms_cli_usage_error(pc, "--sub: user id must be positive for role '%s'", role_s);
    long ttl = parse_ttl(ttl_s);
    if (ttl < 0)
        return oms_cli_usage_error(pc, "--ttl: expected a duration like 90s, 15m, 8h, 7d, got '%s'",
                                   ttl_s);
    oms_config cfg;
    int rc = ctl_config(&cfg, config, NULL);
    if (rc)
        return rc;
    if (!secret)
        secret = cfg.auth.jwt_secret;
    if (!secret || !*secret) {
        oms_config_free(&cfg);
        return oms_cli_usage_error(pc, "no secret: set --secret, JWT_SECRET or JWT_SECRET_FILE");
    }
    char *t = oms_auth_mint_hs256((const unsigned char *)secret, strlen(secret), uid, role, ttl,
                                  oms_now_ms() / 1000, cfg.auth.issuer, cfg.auth.audience);
    oms_config_free(&cfg);
    if (!t) {
        fprintf(stderr, "omsctl: cannot mint the token\n");
        return OMS_EXIT_FAIL;
    }
    puts(t);
    free(t);
    return OMS_EXIT_OK;
}
