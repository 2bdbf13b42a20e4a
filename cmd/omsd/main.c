/* omsd — the oms daemon: options, configuration, start-up and shutdown. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libpq-fe.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "notify.h"
#include "omsd.h"
#include "pg/pg.h"
#include "sstore.h"

volatile sig_atomic_t omsd_stop;

static void on_signal(int sig)
{
    (void)sig;
    omsd_stop = 1;
}

static void help(FILE *out)
{
    fprintf(out,
            "usage: omsd [--config FILE] [-t] [--dev]\n"
            "\n"
            "The oms daemon: consumes the event topics from Kafka, pushes events to\n"
            "WebSocket clients (ws://HOST:PORT/events, Socket.IO on /socket.io/ with\n"
            "connection-state recovery), Server-Sent Events (/events/stream) and\n"
            "serves the REST API (/websocket/..., /metrics).\n"
            "\n"
            "options:\n"
            "  -c, --config FILE  configuration file (default: $OMS_CONFIG, else built-in\n"
            "                     defaults); environment variables override it:\n"
            "                     JWT_SECRET, JWT_SECRET_FILE, CORS_ORIGIN, DATABASE_URL,\n"
            "                     DATABASE_HOST, DATABASE_PORT, DATABASE_USER,\n"
            "                     DATABASE_PASSWORD, DATABASE_PASSWORD_FILE, DATABASE_NAME,\n"
            "                     KAFKA_BROKERS, PORT, LOG_LEVEL, RESUME_TOKEN_SECRET\n"
            "                     (signs recovery positions; default: from the JWT\n"
            "                     secret); and for alerts\n"
            "                     SENTRY_DSN, SENTRY_ENVIRONMENT,\n"
            "                     EMAIL_NOTIFICATIONS_ENABLED, EMAIL_HOST, EMAIL_PORT,\n"
            "                     EMAIL_USER, EMAIL_PASSWORD, EMAIL_PASSWORD_FILE,\n"
            "                     EMAIL_TLS, EMAIL_FROM, ORDER_NOTIFICATION_RECIPIENTS\n"
            "  -t, --test-config  check the configuration and exit (0 ok, 2 invalid)\n"
            "      --dev          development mode: generates a JWT secret when none is set\n"
            "                     and serves sample tokens at GET /dev/tokens\n"
            "  -h, --help         this help\n"
            "\n"
            "Outside --dev, omsd refuses to start without a JWT secret of at least 32\n"
            "bytes (HS256) or a public key file (RS256/ES256).\n"
            "Alerts (alerts.* of the config): with SENTRY_DSN and/or\n"
            "EMAIL_NOTIFICATIONS_ENABLED=true, each new order (alerts.rules) is reported\n"
            "to Sentry and e-mailed to ORDER_NOTIFICATION_RECIPIENTS, exactly once, bursts\n"
            "over alerts.max_per_minute folded into digests; omsd's own errors (DLQ\n"
            "records, projection failures, Kafka and Postgres outages, a crash) go to\n"
            "Sentry. EMAIL_TLS: starttls (required, the default but on port 465), tls\n"
            "(the default on 465) or none (plain text, only when set). 'omsctl alerts\n"
            "status|test' shows and tries the sinks. Keys and passwords are never logged.\n"
            "SIGTERM or SIGINT: stop accepting, close clients with 1001, exit 0.\n"
            "SIGHUP: re-read the configuration's log.level and the TLS certificate and\n"
            "key files (new connections get the new certificate).\n"
            "Under systemd (Type=notify) omsd sends READY=1, RELOADING=1 and STOPPING=1\n"
            "to $NOTIFY_SOCKET.\n"
            "\n"
            "Connections are served by server.threads threads (default: one per CPU\n"
            "core), each with its own share of them; an event is serialized once for all.\n"
            "\n"
            "Socket.IO v4 clients connect on /socket.io/ (namespace /events, JWT in the\n"
            "CONNECT auth {token}). Its heartbeat follows server.ping_interval_s (the\n"
            "pingTimeout is server.idle_timeout_s minus that); for tests these take\n"
            "milliseconds from the environment: OMS_SIO_PING_INTERVAL_MS,\n"
            "OMS_SIO_PING_TIMEOUT_MS, OMS_SIO_CONNECT_TIMEOUT_MS (default:\n"
            "server.connect_timeout_s, 10 s).\n"
            "\n"
            "Server-Sent Events: GET /events/stream?subscribe=orders,inventory (token as\n"
            "Bearer or ?token=); each event's id resumes every partition (Last-Event-ID).\n"
            "Heartbeat comments every server.ping_interval_s, or OMS_SSE_HEARTBEAT_MS.\n"
            "Subscriptions may carry a filter on the event's fields ({\"productId\": [3, 17]},\n"
            "{\"quantity\": {\"lt\": 10}}; SSE: ?filter_orders=, ?filter_inventory=).\n"
            "\n"
            "Socket.IO sessions' subscriptions and filters are kept in PostgreSQL (table\n"
            "ws_sessions, resume.session_store, resume.session_ttl_s) so that recovery on\n"
            "any instance restores them; a subscription is confirmed once stored (at most\n"
            "2 s, or OMS_SSTORE_WAIT_MS, while Postgres is down).\n"
            "\n"
            "WebSocket clients that offer permessage-deflate get each event compressed\n"
            "once for all of them (server.compression, default on; frames under\n"
            "server.compression_min_bytes go as they are).\n");
}

/* The verification key: the HS256 secret or the PEM public key. */
static int load_key(omsd *d, char *errbuf, size_t errlen)
{
    const char *alg = d->cfg.auth.algorithm;
    const char *secret = d->cfg.auth.jwt_secret;
    if (secret && *secret) {
        d->secret = (unsigned char *)strdup(secret);
        d->secret_len = strlen(secret);
    } else if (d->dev) {
        unsigned char raw[32];
        if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw) {
            oms_errf(errbuf, errlen, "cannot generate a dev secret: %s", strerror(errno));
            return -1;
        }
        d->secret = malloc(65);
        for (size_t i = 0; d->secret && i < sizeof raw; i++)
            snprintf((char *)d->secret + 2 * i, 3, "%02x", raw[i]);
        d->secret_len = 64;
    }
    if (strcmp(alg, "HS256") == 0) {
        if (!d->secret) {
            oms_errf(errbuf, errlen, "no JWT secret: set JWT_SECRET (at least 32 bytes) or "
                                     "auth.jwt_secret, or run with --dev");
            return -1;
        }
        if (d->secret_len < 32 && !d->dev) {
            oms_errf(errbuf, errlen, "JWT secret is %zu bytes; at least 32 are required "
                                     "(or run with --dev)",
                     d->secret_len);
            return -1;
        }
        return 0;
    }
    return 0;
}

static oms_auth *make_auth(omsd *d, char *errbuf, size_t errlen)
{
    const char *alg = d->cfg.auth.algorithm;
    oms_auth_opts o = {alg, d->secret, d->secret_len, d->cfg.auth.issuer, d->cfg.auth.audience,
                          OMSD_AUTH_LEEWAY_S};
    return oms_auth_new_from_file(&o, d->cfg.auth.public_key_file, errbuf, errlen);
}

static void on_delivery(void *ctx, void *opaque, rd_kafka_resp_err_t err, const char *topic,
                        int32_t partition, int64_t offset, int64_t timestamp)
{
    omsd *d = ctx;
    uint64_t id = (uint64_t)(uintptr_t)opaque;
    if (!id)
        return; /* a DLQ copy */
    omsd_xq_item *it = calloc(1, sizeof *it);
    if (!it)
        return;
    it->kind = XQ_DELIVERY;
    it->request_id = id;
    it->err = err != RD_KAFKA_RESP_ERR_NO_ERROR;
    if (err)
        snprintf(it->errstr, sizeof it->errstr, "%s", rd_kafka_err2str(err));
    omsd_xq_push(omsd_request_worker(d, id), it); /* the thread the request came on */
}

static int pg_ping(const oms_config *c)
{
    return oms_pg_ping(c, 2);
}

/* Serves the producer's reports and watches the dependencies. */
static void *poll_main(void *arg)
{
    omsd *d = arg;
    uint64_t next_check = 0;
    while (!atomic_load(&d->threads_stop)) {
        oms_kafka_producer_poll(d->producer, 100);
        uint64_t now = oms_mono_ns();
        if (now < next_check)
            continue;
        next_check = now + 2000000000u;
        char err[256];
        int up = oms_kafka_producer_check(d->producer, 1500, err, sizeof err) == OMS_OK;
        if (!up)
            snprintf(d->kafka_error, sizeof d->kafka_error, "%s", err);
        if (up != atomic_load(&d->kafka_up))
            oms_log(d->log, up ? OMS_LOG_INFO : OMS_LOG_ERROR,
                    up ? "kafka reachable again" : "kafka unreachable", OMS_LS("error", up ? "" : err));
        atomic_store(&d->kafka_up, up);
        omsd_alerts_outage(d, OMSD_OUTAGE_KAFKA, !up, "kafka unreachable", up ? NULL : err);
        int pg = pg_ping(&d->cfg);
        if (pg != atomic_load(&d->pg_up)) {
            char where[300];
            oms_pg_describe(&d->cfg, where, sizeof where);
            oms_log(d->log, pg ? OMS_LOG_INFO : OMS_LOG_WARN,
                    pg ? "postgres reachable" : "postgres unreachable", OMS_LS("at", where));
        }
        atomic_store(&d->pg_up, pg);
        if (d->registry) {
            /* health shows the registry even when no new id was needed lately */
            oms_registry_stats before;
            oms_registry_stats_get(d->registry, &before);
            int reg = oms_registry_probe(d->registry, err, sizeof err) == OMS_OK;
            if (before.known && reg != before.up)
                oms_log(d->log, reg ? OMS_LOG_INFO : OMS_LOG_WARN,
                        reg ? "schema registry reachable again" : "schema registry unreachable",
                        OMS_LS("url", oms_registry_url(d->registry)),
                        OMS_LS("error", reg ? "" : err));
        }
        /* Postgres matters only to the projections and the alerts */
        if (d->cfg.projections.enabled || omsd_alerts_notices_on(d)) {
            char where[300];
            oms_pg_describe(&d->cfg, where, sizeof where);
            omsd_alerts_outage(d, OMSD_OUTAGE_POSTGRES, !pg, "postgres unreachable", where);
        }
    }
    return NULL;
}

static void cleanup(omsd *d)
{
    oms_events_free(d->events); /* and the registry it owns */
    oms_auth_free(d->auth);
    omsd_alerts_free(d);
    omsd_tokens_free(d);
    free(d->secret);
    for (int k = 0; k < OMS_TOPIC__COUNT; k++)
        free(d->start_offset[k]);
    pthread_mutex_destroy(&d->hist_lock);
    pthread_mutex_destroy(&d->rb_lock);
    oms_logger_free(d->log);
    oms_config_free(&d->cfg);
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"test-config", no_argument, NULL, 't'},
        {"dev", no_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *config = NULL;
    bool test_only = false;
    static omsd d;
    int opt;
    while ((opt = getopt_long(argc, argv, "c:th", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c': config = optarg; break;
        case 't': test_only = true; break;
        case 'd': d.dev = true; break;
        case 'h': help(stdout); return OMS_EXIT_OK;
        default: return oms_cli_usage_error("omsd", "unknown or incomplete option");
        }
    }
    if (optind < argc)
        return oms_cli_usage_error("omsd", "unexpected argument '%s'", argv[optind]);
    int rc = oms_cli_load_config("omsd", config, &d.cfg);
    if (rc)
        return rc;
    pthread_mutex_init(&d.hist_lock, NULL);
    pthread_mutex_init(&d.rb_lock, NULL);
    char err[512];
    if (oms_config_validate(&d.cfg, err, sizeof err) != OMS_OK ||
        oms_pg_check_config(&d.cfg, err, sizeof err) != OMS_OK || load_key(&d, err, sizeof err) ||
        !(d.auth = make_auth(&d, err, sizeof err)) || omsd_alerts_init(&d, err, sizeof err)) {
        fprintf(stderr, "omsd: %s\n", err);
        cleanup(&d);
        return OMS_EXIT_USAGE;
    }
    if (test_only) {
        fprintf(stderr, "omsd: configuration %s is valid\n", config ? config : "(defaults)");
        cleanup(&d);
        return OMS_EXIT_OK;
    }
    /* early: a SIGHUP during start-up is kept for the service loop, not fatal;
     * a SIGTERM or SIGINT is kept too: the service threads drain at once
     * when they start (not a kill that skips the clean exit) */
    omsd_reload_setup(config);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    oms_log_level level = OMS_LOG_INFO;
    oms_log_format format = OMS_LOG_FORMAT_AUTO;
    oms_log_level_parse(d.cfg.log.level, &level);
    oms_log_format_parse(d.cfg.log.format, &format);
    d.log = oms_logger_new(2, level, format);
    d.started_ms = oms_now_ms();
    d.topics[OMS_TOPIC_ORDERS] = d.cfg.kafka.topic_orders;
    d.topics[OMS_TOPIC_INVENTORY] = d.cfg.kafka.topic_inventory;
    d.topics[OMS_TOPIC_NOTIFICATIONS] = d.cfg.kafka.topic_notifications;
    if (d.dev)
        oms_log(d.log, OMS_LOG_WARN, "development mode: sample tokens at GET /dev/tokens",
                OMS_LB("generatedSecret", !(d.cfg.auth.jwt_secret && *d.cfg.auth.jwt_secret)));

    d.events = oms_events_new(d.cfg.schemas.dir, err, sizeof err);
    /* wait 0: a record whose schema cannot be fetched now is held, not waited for */
    if (d.events && oms_registry_from_config(&d.cfg, d.events, 0, &d.registry, err, sizeof err)) {
        fprintf(stderr, "omsd: %s\n", err);
        cleanup(&d);
        return OMS_EXIT_USAGE;
    }
    if (d.registry)
        oms_log(d.log, OMS_LOG_INFO, "schema registry configured",
                OMS_LS("url", oms_registry_url(d.registry)));
    oms_kv props[OMS_CONFIG_MAX_PROPS + 2];
    size_t np = 0;
    props[np++] = (oms_kv){"client.id", "omsd"};
    props[np++] = (oms_kv){"message.timeout.ms", "10000"};
    for (size_t i = 0; i < d.cfg.kafka.nprops; i++)
        props[np++] = d.cfg.kafka.props[i];
    if (!d.events ||
        !(d.producer = oms_kafka_producer_new(d.cfg.kafka.brokers, props, np, on_delivery, &d, err,
                                              sizeof err)) ||
        omsd_fanout_prepare(&d, err, sizeof err) != OMS_OK ||
        omsd_history_init(&d) != OMS_OK || omsd_tokens_init(&d, err, sizeof err) != OMS_OK) {
        oms_log(d.log, OMS_LOG_ERROR, "cannot start", OMS_LS("error", err),
                OMS_LS("brokers", d.cfg.kafka.brokers));
        fprintf(stderr, "omsd: %s\n", err);
        if (d.producer)
            oms_kafka_producer_free(d.producer, 0);
        cleanup(&d);
        return OMS_EXIT_FAIL;
    }
    atomic_store(&d.kafka_up, 1);
    omsd_static_init(&d);
    d.filter_limits = (oms_filter_limits){d.cfg.server.filter_max_values,
                                          d.cfg.server.filter_max_bytes};
    /* before the service threads, which use it */
    if (omsd_sstore_start(&d) != OMS_OK)
        oms_log(d.log, OMS_LOG_ERROR, "socket.io session store not started: filters recover on "
                                      "this instance only");
    if (omsd_server_start(&d, err, sizeof err) != OMS_OK) {
        oms_log(d.log, OMS_LOG_ERROR, "cannot start", OMS_LS("error", err));
        fprintf(stderr, "omsd: %s\n", err);
        omsd_sstore_join(&d);
        oms_kafka_producer_free(d.producer, 0);
        cleanup(&d);
        return OMS_EXIT_FAIL;
    }
    omsd_fanout_start(&d);
    if (omsd_resume_reader_start(&d) != OMS_OK)
        oms_log(d.log, OMS_LOG_ERROR, "resume reader not started: gaps beyond the history "
                                      "cannot be filled");
    if (omsd_presence_start(&d) != OMS_OK)
        oms_log(d.log, OMS_LOG_ERROR, "presence not started: users online is this instance's only");
    omsd_projections_start(&d); /* failures show in health (503) */
    omsd_alerts_start(&d);      /* failures show in health and the log */
    pthread_create(&d.poll_thread, NULL, poll_main, &d);
    oms_log(d.log, OMS_LOG_INFO, "omsd listening", OMS_LS("host", d.cfg.server.host),
            OMS_LI("port", d.cfg.server.port), OMS_LS("websocket", "/events"),
            OMS_LB("tls", d.cfg.server.tls_cert[0] != '\0'), OMS_LB("dev", d.dev));
    omsd_notify("READY=1\nSTATUS=listening");

    omsd_server_run(&d);

    /* STOPPING=1 went out when the drain began (workers.c); a run loop that
     * ended another way says it here */
    if (!atomic_load(&d.stopping))
        omsd_notify("STOPPING=1");
    oms_log(d.log, OMS_LOG_INFO, "stopping");
    atomic_store(&d.threads_stop, 1);
    omsd_fanout_join(&d);
    omsd_resume_reader_join(&d);
    omsd_presence_join(&d);
    omsd_sstore_join(&d);
    omsd_projections_join(&d);
    pthread_join(d.poll_thread, NULL);
    omsd_alerts_join(&d); /* last: sends the errors of the shutdown */
    int left = oms_kafka_producer_free(d.producer, 3000);
    if (left)
        oms_log(d.log, OMS_LOG_ERROR, "events not delivered at exit", OMS_LI("count", left));
    omsd_server_stop(&d);
    omsd_history_free(&d);
    oms_log(d.log, OMS_LOG_INFO, "stopped");
    cleanup(&d);
    return OMS_EXIT_OK;
}
