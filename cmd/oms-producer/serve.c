/* serve.c — `oms-producer serve`: options, start-up (rebuild the state from
 * the log before listening), the HTTP side on libwebsockets, shutdown.
 * Requests are handled one at a time on the service thread, so the writes of
 * this process are serialized: a stock check and the events it leads to
 * cannot interleave with another request's. */
#include <errno.h>
#include <getopt.h>
#include <libwebsockets.h>
#include <stdlib.h>
#include <string.h>

#include "producer.h"
#include "httpd/httpd.h"
#include "serve.h"
#include "registry/registry.h"

#define AUTH_LEEWAY_S 5

/* One HTTP exchange per connection (pkg/httpd speaks HTTP; serve_api.c
 * decides the answers). */
typedef struct sv_conn {
    oms_httpd_txn t;
} sv_conn;

static void serve_help(FILE *out)
{
    fprintf(out,
            "usage: oms-producer serve [options]\n"
            "\n"
            "Run the order and inventory services as an HTTP JSON API. Every change is\n"
            "an event: the request is answered once Kafka acknowledged its events.\n"
            "The state (orders, stock) is rebuilt at start by reading the orders and\n"
            "inventory topics from the beginning, and follows them while running, so\n"
            "events of other producers (and other 'serve' processes) count too.\n"
            "\n"
            "  POST  /order/orders               {addressId, items: [{productId, quantity,\n"
            "                                     price}], userId?}: reserve the stock, 201\n"
            "  GET   /order/orders/{id}\n"
            "  PATCH /order/orders/{id}/status   {status, message?}: created -> confirmed ->\n"
            "                                     shipped -> delivered; cancelled from created\n"
            "                                     or confirmed returns the stock\n"
            "  POST  /inventory/{productId}/restock  {quantity, productName?, threshold?}\n"
            "  GET   /inventory/{productId}\n"
            "  GET   /health                     (no token)\n"
            "\n"
            "Every request but /health needs 'Authorization: Bearer <JWT>', checked as\n"
            "omsd checks it (auth.* of the configuration, JWT_SECRET): a customer acts\n"
            "for itself; staff, admin and service tokens act for anyone and restock.\n"
            "Errors: {\"error\": {code, message, field?}} with 400 (the field named), 401,\n"
            "403, 404, 405, 409 (insufficient stock, illegal transition), 413 (body over\n"
            "64 KiB), 415, 503 (Kafka did not acknowledge); no event is emitted on error.\n"
            "\n"
            "options:\n"
            "  --port N           listen on port N (default 3002)\n"
            "  --host ADDR        listen address (default: server.host of the config,\n"
            "                     0.0.0.0)\n"
            "  --brokers LIST     Kafka bootstrap servers (default: $KAFKA_BROKERS, config)\n"
            "  --config FILE      configuration file (default: $OMS_CONFIG, none)\n"
            "  --schemas DIR      extra .avsc files to load\n"
            PROD_FORMAT_HELP
            "  -h, --help         this help\n"
            "\n"
            "exit status: 0 stopped by SIGINT/SIGTERM, 1 Kafka or the port failed,\n"
            "2 usage or configuration error\n");
}

/* ---- HTTP --------------------------------------------------------------------- */

static void run_request(serve *s, sv_conn *c, struct lws *wsi)
{
    oms_httpd_txn *t = &c->t;
    if (!oms_httpd_take(t))
        return;
    s->requests++;
    char auth[OMS_AUTH_MAX_TOKEN_LEN + 64], ctype[128];
    bool auth_ok = oms_httpd_header(wsi, WSI_TOKEN_HTTP_AUTHORIZATION, auth, sizeof auth);
    if (!oms_httpd_header(wsi, WSI_TOKEN_HTTP_CONTENT_TYPE, ctype, sizeof ctype))
        snprintf(ctype, sizeof ctype, "?");
    sv_response resp;
    memset(&resp, 0, sizeof resp);
    if (t->path_too_long) {
        sv_api_error(&resp, 414, "uri_too_long", NULL, "the path is over 511 bytes");
    } else if (t->body_too_large) {
        sv_api_error(&resp, 413, "too_large", "body", "body: over %u bytes", SV_BODY_MAX);
    } else if (t->no_length) {
        sv_api_error(&resp, 411, "length_required", NULL,
                     "a body needs a Content-Length header");
    } else {
        sv_request req = {t->method, t->path, auth_ok ? auth : NULL, ctype,
                          t->body ? t->body : "", t->body_len};
        sv_api_handle(s, &req, &resp);
    }
    oms_log(s->log, resp.status >= 500 ? OMS_LOG_WARN : OMS_LOG_DEBUG, "request",
            OMS_LS("method", t->method), OMS_LS("path", t->path), OMS_LI("status", resp.status));
    if (resp.allow)
        snprintf(t->allow, sizeof t->allow, "%s", resp.allow);
    oms_httpd_answer(t, wsi, resp.status, NULL, resp.body, resp.len);
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    serve *s = lws_context_user(lws_get_context(wsi));
    sv_conn *c = user;
    switch (reason) {
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        return 1; /* no WebSocket here: that is omsd */

    case LWS_CALLBACK_HTTP:
        if (!c)
            return 1;
        if (oms_httpd_begin(&c->t, wsi, SV_BODY_MAX) == OMS_HTTPD_RUN)
            run_request(s, c, wsi);
        return 0;

    case LWS_CALLBACK_HTTP_BODY:
        return c ? oms_httpd_body(&c->t, in, len) : 0;

    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        if (c)
            run_request(s, c, wsi);
        return 0;

    case LWS_CALLBACK_HTTP_WRITEABLE:
        return c ? oms_httpd_write(&c->t, wsi) : 0;

    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
    case LWS_CALLBACK_CLOSED_HTTP:
        if (c)
            oms_httpd_txn_clear(&c->t);
        return 0;

    default:
        return 0;
    }
}

static const struct lws_protocols protocols[] = {
    {"http", callback, sizeof(sv_conn), 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static lws_sorted_usec_list_t sul_tick;
static struct lws_context *tick_ctx;

/* wakes the service loop so that it sees the stop flag */
static void tick(lws_sorted_usec_list_t *sul)
{
    lws_sul_schedule(tick_ctx, 0, sul, tick, 200 * LWS_US_PER_MS);
}

/* ---- start-up ------------------------------------------------------------------ */

static oms_auth *make_auth(const oms_config *cfg, char *errbuf, size_t errlen)
{
    const char *alg = cfg->auth.algorithm;
    const char *secret = cfg->auth.jwt_secret ? cfg->auth.jwt_secret : "";
    oms_auth_opts o = {alg, (const unsigned char *)secret, strlen(secret), cfg->auth.issuer,
                       cfg->auth.audience, AUTH_LEEWAY_S};
    if (strcmp(alg, "HS256") == 0) {
        if (!*secret) {
            oms_errf(errbuf, errlen, "no JWT secret: set JWT_SECRET (at least 32 bytes) or "
                                     "auth.jwt_secret, the same as omsd's");
            return NULL;
        }
        if (strlen(secret) < 32) {
            oms_errf(errbuf, errlen, "JWT secret is %zu bytes; at least 32 are required",
                     strlen(secret));
            return NULL;
        }
    }
    return oms_auth_new_from_file(&o, cfg->auth.public_key_file, errbuf, errlen);
}

static void serve_free(serve *s)
{
    if (s->ctx)
        lws_context_destroy(s->ctx);
    sv_state_stop(s);
    if (s->reader)
        oms_kafka_reader_free(s->reader);
    if (s->kp) {
        int left = oms_kafka_producer_free(s->kp, 5000);
        if (left)
            oms_log(s->log, OMS_LOG_ERROR, "events not delivered at exit", OMS_LI("count", left));
    }
    oms_auth_free(s->auth);
    oms_events_free(s->events);
    free(s->encbuf);
    if (s->log)
        oms_logger_free(s->log);
    oms_config_free(&s->cfg);
}

int cmd_serve(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"port", required_argument, NULL, 'p'},    {"host", required_argument, NULL, 'H'},
        {"brokers", required_argument, NULL, 'b'}, {"config", required_argument, NULL, 'c'},
        {"schemas", required_argument, NULL, 'S'}, {"help", no_argument, NULL, 'h'},
        {"format", required_argument, NULL, 'F'},  {"registry", required_argument, NULL, 'G'},
        {NULL, 0, NULL, 0},
    };
    const char *config = NULL, *brokers = NULL, *schemas = NULL, *host = NULL;
    const char *wire = NULL, *registry = NULL;
    long port = 3002;
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'p':
            if (oms_cli_parse_long("oms-producer serve", "--port", optarg, 1, 65535, &port) != 0)
                return OMS_EXIT_USAGE;
            break;
        case 'H': host = optarg; break;
        case 'b': brokers = optarg; break;
        case 'c': config = optarg; break;
        case 'S': schemas = optarg; break;
        case 'F': wire = optarg; break;
        case 'G': registry = optarg; break;
        case 'h': serve_help(stdout); return OMS_EXIT_OK;
        default: return oms_cli_usage_error("oms-producer serve", "unknown or incomplete option");
        }
    }
    if (optind < argc)
        return oms_cli_usage_error("oms-producer serve", "unexpected argument '%s'",
                                   argv[optind]);
    if (host && !*host)
        return oms_cli_usage_error("oms-producer serve", "--host must not be empty");
    oms_wire_format wf;
    if (wire && oms_wire_format_parse(wire, &wf) != OMS_OK)
        return oms_cli_usage_error("oms-producer serve",
                                   "unknown --format '%s' (soe, confluent or json)", wire);

    static serve s; /* one per process; large (offset tables) */
    memset(&s, 0, sizeof s);
    int rc = oms_cli_load_config("oms-producer", config, &s.cfg);
    if (rc)
        return rc;
    char err[512];
    if (brokers) {
        free(s.cfg.kafka.brokers);
        s.cfg.kafka.brokers = strdup(brokers);
    }
    if (oms_config_validate(&s.cfg, err, sizeof err) != OMS_OK ||
        !(s.auth = make_auth(&s.cfg, err, sizeof err))) {
        fprintf(stderr, "oms-producer: %s\n", err);
        serve_free(&s);
        return OMS_EXIT_USAGE;
    }
    oms_log_level level = OMS_LOG_INFO;
    oms_log_format format = OMS_LOG_FORMAT_AUTO;
    oms_log_level_parse(s.cfg.log.level, &level);
    oms_log_format_parse(s.cfg.log.format, &format);
    s.log = oms_logger_new(2, level, format);
    s.topics[OMS_TOPIC_ORDERS] = s.cfg.kafka.topic_orders;
    s.topics[OMS_TOPIC_INVENTORY] = s.cfg.kafka.topic_inventory;
    s.topics[OMS_TOPIC_NOTIFICATIONS] = s.cfg.kafka.topic_notifications;
    s.encbuf = malloc(SV_ENCODE_MAX);
    s.events =
        oms_registry_events_new(&s.cfg, schemas ? schemas : s.cfg.schemas.dir, err, sizeof err);
    if (!s.events || !s.encbuf) {
        fprintf(stderr, "oms-producer: cannot load schemas: %s\n", s.encbuf ? err : "no memory");
        serve_free(&s);
        return OMS_EXIT_USAGE;
    }
    rc = prod_setup_format("oms-producer", &s.cfg, s.events, wire, registry, s.topics, &s.format,
                           s.schema_ids);
    if (rc) {
        serve_free(&s);
        return rc;
    }
    prod_install_signals();
    s.kp = oms_kafka_producer_new(s.cfg.kafka.brokers, s.cfg.kafka.props, s.cfg.kafka.nprops,
                                  sv_on_delivery, &s, err, sizeof err);
    rc = s.kp ? oms_kafka_producer_check(s.kp, 10000, err, sizeof err) : OMS_EKAFKA;
    if (rc != OMS_OK) {
        fprintf(stderr, "oms-producer: cannot reach kafka at '%s': %s (is kafka running? set "
                        "--brokers or KAFKA_BROKERS)\n",
                s.cfg.kafka.brokers, err);
        serve_free(&s);
        return OMS_EXIT_FAIL;
    }
    for (int k = OMS_TOPIC_ORDERS; k <= OMS_TOPIC_INVENTORY; k++) {
        if (oms_kafka_producer_prepare(s.kp, s.topics[k], 10000, err, sizeof err) != OMS_OK) {
            fprintf(stderr, "oms-producer: %s (create the topics: omsctl topics create)\n", err);
            serve_free(&s);
            return OMS_EXIT_FAIL;
        }
    }
    s.reader = oms_kafka_reader_new(s.cfg.kafka.brokers, s.cfg.kafka.props, s.cfg.kafka.nprops,
                                    err, sizeof err);
    if (!s.reader || sv_state_start(&s, err, sizeof err) != 0) {
        fprintf(stderr, "oms-producer: %s\n", err);
        serve_free(&s);
        return OMS_EXIT_FAIL;
    }
    uint64_t t0 = oms_mono_ns();
    while (sv_state_wait_ready(&s, 5000) != OMS_OK && !producer_stop) {
        pthread_mutex_lock(&s.lock);
        uint64_t applied = s.applied;
        pthread_mutex_unlock(&s.lock);
        oms_log(s.log, OMS_LOG_INFO, "still reading the log", OMS_LI("events", applied));
    }
    if (producer_stop) {
        serve_free(&s);
        return OMS_EXIT_OK;
    }
    pthread_mutex_lock(&s.lock);
    oms_log(s.log, OMS_LOG_INFO, "state rebuilt from the log", OMS_LI("events", s.applied),
            OMS_LI("orders", s.norders), OMS_LI("products", s.nproducts),
            OMS_LI("ms", (oms_mono_ns() - t0) / 1000000));
    pthread_mutex_unlock(&s.lock);

    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    const char *iface = host ? host : s.cfg.server.host;
    info.port = (int)port;
    info.iface = strcmp(iface, "0.0.0.0") == 0 ? NULL : iface;
    info.protocols = protocols;
    info.user = &s;
    info.options = LWS_SERVER_OPTION_VALIDATE_UTF8;
    if (info.iface && strchr(info.iface, ':') == NULL)
        info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
    info.max_http_header_data = OMS_AUTH_MAX_TOKEN_LEN + 4096;
    info.pt_serv_buf_size = 64 * 1024;
    info.timeout_secs = 20;
    lws_set_log_level(getenv("OMS_LWS_DEBUG") ? LLL_ERR | LLL_WARN | LLL_NOTICE : LLL_ERR, NULL);
    s.ctx = lws_create_context(&info);
    if (!s.ctx) {
        fprintf(stderr, "oms-producer: cannot listen on %s:%ld (port taken?)\n", iface, port);
        serve_free(&s);
        return OMS_EXIT_FAIL;
    }
    tick_ctx = s.ctx;
    lws_sul_schedule(s.ctx, 0, &sul_tick, tick, 200 * LWS_US_PER_MS);
    oms_log(s.log, OMS_LOG_INFO, "listening", OMS_LS("host", iface), OMS_LI("port", port),
            OMS_LS("orders", s.topics[OMS_TOPIC_ORDERS]),
            OMS_LS("inventory", s.topics[OMS_TOPIC_INVENTORY]));
    while (!producer_stop && lws_service(s.ctx, 0) >= 0)
        ;
    lws_sul_cancel(&sul_tick);
    oms_log(s.log, OMS_LOG_INFO, "stopping", OMS_LI("requests", s.requests),
            OMS_LI("published", s.published));
    serve_free(&s);
    return OMS_EXIT_OK;
}
