/* config.h — the YAML configuration (configs/omsd.yaml) and its environment
 * overrides (DESIGN §3.8), plus the topic list (configs/topics.yaml).
 *
 * Loading order: built-in defaults, then the YAML file (if any), then the
 * environment. Every error names the key and the file line ("omsd.yaml:12:
 * server.port: expected an integer between 1 and 65535, got 'abc'") or the
 * environment variable ("PORT: expected an integer ..."). */
#ifndef OMS_CONFIG_H
#define OMS_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/oms.h"

#define OMS_CONFIG_MAX_PROPS 64

typedef struct oms_kv {
    char *key;
    char *value;
} oms_kv;

typedef struct oms_config {
    struct {
        char *host;              /* server.host, default "0.0.0.0" */
        int port;                /* server.port, default 3000; env PORT */
        char *cors_origin;       /* server.cors_origin, default ""; env CORS_ORIGIN (comma list) */
        char *tls_cert;          /* server.tls_cert, default "" (no TLS) */
        char *tls_key;           /* server.tls_key, default "" */
        int64_t max_frame_bytes; /* server.max_frame_bytes, default 1048576 */
        int ping_interval_s;     /* server.ping_interval_s, default 25 */
        int idle_timeout_s;      /* server.idle_timeout_s, default 60 */
        int rate_limit_per_min;  /* server.rate_limit_per_min, default 100 */
        int queue_limit;         /* server.queue_limit, messages per connection, default 4096 */
        int max_conns_per_address; /* server.max_connections_per_address, default 1000, 0 = no limit */
        int max_unauth_sessions; /* server.max_unauthenticated_sessions, default 10000, 0 = no limit */
        int connect_timeout_s;   /* server.connect_timeout_s: Socket.IO CONNECT within, default 10 */
        int threads;             /* server.threads: service threads, default 0 = the cores */
        char *event_loop;        /* server.event_loop: epoll|poll, default "epoll" */
        char *web_root;          /* server.web_root, default "web" */
        int filter_max_values;   /* server.filter_max_values: values in one subscription filter, default 256 */
        int filter_max_bytes;    /* server.filter_max_bytes: a filter's normalized size, default 4096 */
        bool compression;        /* server.compression: permessage-deflate when offered, default false */
        int compression_min_bytes; /* server.compression_min_bytes: smaller frames go as they are, default 256 */
    } server;
    struct {
        char *jwt_secret;      /* auth.jwt_secret, default ""; env JWT_SECRET */
        char *jwt_secret_file; /* auth.jwt_secret_file, default ""; env JWT_SECRET_FILE:
                                  read into jwt_secret by oms_config_apply_env */
        char *algorithm;       /* auth.algorithm: HS256 | RS256 | ES256, default HS256 */
        char *public_key_file; /* auth.public_key_file, default "" */
        char *issuer;          /* auth.issuer, default "" (not checked) */
        char *audience;        /* auth.audience, default "" (not checked) */
    } auth;
    struct {
        char *brokers;            /* kafka.brokers, default "127.0.0.1:9092"; env KAFKA_BROKERS */
        char *topic_orders;       /* kafka.topics.orders, default "oms.orders" */
        char *topic_inventory;    /* kafka.topics.inventory, default "oms.inventory" */
        char *topic_notifications;/* kafka.topics.notifications, default "oms.notifications" */
        char *topic_dlq;          /* kafka.topics.dlq, default "oms.dlq" */
        char *topic_presence;     /* kafka.topics.presence, default "oms.presence" (compacted) */
        char *projection_group;   /* kafka.projection_group, default "omsd-projections" */
        oms_kv props[OMS_CONFIG_MAX_PROPS]; /* kafka.properties: passed to librdkafka */
        size_t nprops;
    } kafka;
    struct {
        char *host;     /* database.host, default "127.0.0.1"; env DATABASE_HOST */
        int port;       /* database.port, default 5432; env DATABASE_PORT */
        char *user;     /* database.user, default "postgres"; env DATABASE_USER */
        char *password; /* database.password, default ""; env DATABASE_PASSWORD */
        char *name;     /* database.name, default "oms"; env DATABASE_NAME */
        char *password_file; /* database.password_file, default ""; env
                                DATABASE_PASSWORD_FILE: read into password */
        char *url;         /* database.url, default ""; env DATABASE_URL: a libpq
                              URI or conninfo that takes precedence over the above */
        char *sslmode;     /* database.sslmode, default "" (libpq's: prefer) */
        char *sslrootcert; /* database.sslrootcert, default "" */
        oms_kv params[OMS_CONFIG_MAX_PROPS]; /* database.params: more libpq keywords */
        size_t nparams;
    } database;
    struct {
        bool enabled;         /* projections.enabled, default true */
        bool migrate_on_start;/* projections.migrate_on_start, default true */
        int batch_size;       /* projections.batch_size, default 1000 */
        int batch_ms;         /* projections.batch_ms, default 50 */
    } projections;
    struct {
        int history_size;    /* resume.history_size: events kept per partition, default 2000 */
        int history_ttl_s;   /* resume.history_ttl_s: oldest kept, seconds, default 300 */
        int max_replay;      /* resume.max_replay: most records one resume reads, default 100000 */
        int read_budget_mb;  /* resume.read_budget_mb: read-back memory of all resumes, default 256 */
        char *token_secret;  /* resume.token_secret: signs position tokens (Socket.IO offsets,
                                SSE ids), default "": derived from auth.jwt_secret */
        int session_store;   /* resume.session_store: Socket.IO sessions' subscriptions and
                                filters kept in Postgres for recovery on any instance, default 1 */
        int session_ttl_s;   /* resume.session_ttl_s: how long a stored session may be
                                recovered after its last change, default 1209600 (14 days) */
    } resume;
    struct {
        int interval_s; /* presence.interval_s: heartbeat period, default 5 */
        int expiry_s;   /* presence.expiry_s: silent instance forgotten after, default 15 */
    } presence;
    struct {
        char *level;  /* log.level: debug|info|warn|error, default "info"; env LOG_LEVEL */
        char *format; /* log.format: auto|json|text, default "auto" */
    } log;
    struct {
        char *enabled;       /* alerts.enabled: auto|true|false, default auto (on when a
                                sink is configured: SENTRY_DSN, EMAIL_NOTIFICATIONS_ENABLED) */
        char *group;         /* alerts.group: consumer group, default "omsd-alerts" */
        char *rules;         /* alerts.rules, default "type=OrderCreated" (pkg/alert) */
        char *console_url;   /* alerts.console_url: linked from e-mails, default "" */
        char *start;         /* alerts.start: end|beginning for a new group, default end */
        int max_per_minute;  /* alerts.max_per_minute, default 30 */
        int digest_interval_s; /* alerts.digest_interval_s, default 60 */
        int retry_max_s;     /* alerts.retry_max_s: backoff cap, default 60 */
        bool report_errors;  /* alerts.report_errors: omsd's own errors to Sentry, default true */
        char *crash_file;    /* alerts.crash_file, default "" (TMPDIR/omsd-PORT.crash) */
        char *sentry_dsn;    /* alerts.sentry.dsn; env SENTRY_DSN */
        char *sentry_environment; /* alerts.sentry.environment; env SENTRY_ENVIRONMENT */
        char *sentry_ca_file; /* alerts.sentry.ca_file, default "" (system CAs) */
        int sentry_timeout_s; /* alerts.sentry.timeout_s, default 10 */
        bool email_enabled;  /* alerts.email.enabled; env EMAIL_NOTIFICATIONS_ENABLED */
        char *email_host;    /* alerts.email.host; env EMAIL_HOST */
        int email_port;      /* alerts.email.port, default 587; env EMAIL_PORT */
        char *email_user;    /* alerts.email.user; env EMAIL_USER */
        char *email_password; /* alerts.email.password; env EMAIL_PASSWORD */
        char *email_password_file; /* alerts.email.password_file; env EMAIL_PASSWORD_FILE */
        char *email_tls;     /* alerts.email.tls: auto|starttls|tls|none; env EMAIL_TLS */
        char *email_from;    /* alerts.email.from; env EMAIL_FROM (default EMAIL_USER) */
        char *email_from_name; /* alerts.email.from_name, default "OMS alerts" */
        char *email_recipients; /* alerts.email.recipients (comma list);
                                   env ORDER_NOTIFICATION_RECIPIENTS */
        char *email_ca_file; /* alerts.email.ca_file, default "" */
        int email_timeout_s; /* alerts.email.timeout_s, default 30 */
    } alerts;
    struct {
        char *dir; /* schemas.dir: extra .avsc files to load, default "" (embedded only) */
    } schemas;
    struct {
        char *url;           /* schema_registry.url, default "" (no registry: Confluent-framed
                                records go to the DLQ); env SCHEMA_REGISTRY_URL */
        char *username;      /* schema_registry.username (basic auth), default "";
                                env SCHEMA_REGISTRY_USERNAME */
        char *password;      /* schema_registry.password, default ""; env SCHEMA_REGISTRY_PASSWORD */
        char *password_file; /* schema_registry.password_file, default ""; env
                                SCHEMA_REGISTRY_PASSWORD_FILE: read into password */
        char *ca_file;       /* schema_registry.ca_file: PEM CA of an https registry, default "";
                                env SCHEMA_REGISTRY_CA_FILE */
        int timeout_ms;      /* schema_registry.timeout_ms: one request, default 5000 */
    } schema_registry;
} oms_config;

/* Fill cfg with the built-in defaults. Returns 0 or OMS_ENOMEM. */
int oms_config_defaults(oms_config *cfg);

/* Apply a YAML file on top of cfg. Unknown keys, wrong types, out-of-range
 * values, aliases, duplicate keys and YAML syntax errors are errors naming
 * the file, line and key. Returns 0 or OMS_ECONFIG / OMS_EIO with errbuf. */
int oms_config_load_file(oms_config *cfg, const char *path, char *errbuf, size_t errlen);

/* Same, from a string (name is used in messages). */
int oms_config_load_string(oms_config *cfg, const char *yaml, size_t len, const char *name,
                           char *errbuf, size_t errlen);

/* Apply the environment overrides (JWT_SECRET, JWT_SECRET_FILE, CORS_ORIGIN,
 * DATABASE_URL, DATABASE_HOST, DATABASE_PORT, DATABASE_USER,
 * DATABASE_PASSWORD, DATABASE_PASSWORD_FILE, DATABASE_NAME, KAFKA_BROKERS,
 * PORT, LOG_LEVEL, SCHEMA_REGISTRY_URL, SCHEMA_REGISTRY_USERNAME,
 * SCHEMA_REGISTRY_PASSWORD, SCHEMA_REGISTRY_PASSWORD_FILE,
 * SCHEMA_REGISTRY_CA_FILE) read through getenv_fn (pass getenv, or a test double).
 * Empty variables are ignored. Then read the secret files: a non-empty
 * auth.jwt_secret_file / database.password_file replaces auth.jwt_secret /
 * database.password with the file's content, trailing newlines stripped.
 * A secret and its file are exclusive at each level (both variables set is
 * an error); a later level's one replaces an earlier level's other. An
 * unreadable, empty or oversized (> 64 KiB) file is an error naming the
 * variable or key and the path, never the content. On error nothing is
 * changed. Returns 0 or OMS_ECONFIG. */
int oms_config_apply_env(oms_config *cfg, char *(*getenv_fn)(const char *), char *errbuf,
                         size_t errlen);

/* Check cross-field rules (tls_cert without tls_key, RS256 without a
 * public key file...). Returns 0 or OMS_ECONFIG with errbuf. */
int oms_config_validate(const oms_config *cfg, char *errbuf, size_t errlen);

/* Free every string of cfg (cfg itself is caller-owned). */
void oms_config_free(oms_config *cfg);

/* ---- topics (configs/topics.yaml) -------------------------------------------- */

#define OMS_TOPIC_MAX_CONFIGS 16

typedef struct oms_topic_spec {
    char *name;
    int partitions;         /* default: the file's defaults.partitions, else 6 */
    int replication_factor; /* default: defaults.replication_factor, else 1 */
    oms_kv configs[OMS_TOPIC_MAX_CONFIGS]; /* e.g. retention.ms, cleanup.policy */
    size_t nconfigs;
} oms_topic_spec;

typedef struct oms_topic_list {
    oms_topic_spec *topics;
    size_t count;
} oms_topic_list;

/* Load topics.yaml:
 *   defaults: {partitions: 6, replication_factor: 1, configs: {k: v}}
 *   topics:
 *     - name: oms.orders
 *       partitions: 6          # optional
 *       configs: {retention.ms: "604800000"}   # optional, merged over defaults
 * Returns 0 or OMS_ECONFIG/OMS_EIO with errbuf naming file:line and key. */
int oms_topics_load_file(oms_topic_list *out, const char *path, char *errbuf, size_t errlen);
int oms_topics_load_string(oms_topic_list *out, const char *yaml, size_t len, const char *name,
                           char *errbuf, size_t errlen);
void oms_topics_free(oms_topic_list *tl);

#endif
