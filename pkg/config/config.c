/* config.c — omsd configuration: defaults, YAML file, environment,
 * cross-field checks (see config.h).
 *
 * One table (config_keys) describes every key: its dotted path, type,
 * place in oms_config, range or allowed values, and default. Defaults,
 * loading, environment overrides, validation and freeing all walk it, so
 * adding a key is one line here (plus configs/omsd.yaml). */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "yaml_tree.h"

typedef enum {
    KT_STR,   /* char *, any scalar; null means "" */
    KT_ENUM,  /* char *, one of allowed (case-insensitive, stored canonical) */
    KT_INT,   /* int, within [min, max] */
    KT_INT64, /* int64_t, within [min, max] */
    KT_BOOL,  /* bool: true/false/yes/no/on/off */
    KT_PROPS, /* mapping of names to scalars: oms_kv[OMS_CONFIG_MAX_PROPS] at off, count at noff */
} key_type;

typedef struct {
    const char *path;
    key_type type;
    size_t off;
    int64_t min, max;
    const char *const *allowed; /* KT_ENUM, NULL-terminated */
    const char *sdef;           /* default of KT_STR / KT_ENUM */
    int64_t idef;               /* default of KT_INT / KT_INT64 / KT_BOOL */
    size_t noff;                /* KT_PROPS: offset of the size_t count */
} key_desc;

static const char *const log_levels[] = {"debug", "info", "warn", "error", NULL};
static const char *const event_loops[] = {"epoll", "poll", NULL};
static const char *const log_formats[] = {"auto", "json", "text", NULL};
static const char *const jwt_algorithms[] = {"HS256", "RS256", "ES256", NULL};
static const char *const alerts_enabled[] = {"auto", "true", "false", NULL};
static const char *const alerts_start[] = {"end", "beginning", NULL};
static const char *const email_tls[] = {"auto", "starttls", "tls", "none", NULL};

#define OFF(field) offsetof(oms_config, field)
#define K_STR(p, f, d) {p, KT_STR, OFF(f), 0, 0, NULL, d, 0, 0}
#define K_ENUM(p, f, list, d) {p, KT_ENUM, OFF(f), 0, 0, list, d, 0, 0}
#define K_INT(p, f, lo, hi, d) {p, KT_INT, OFF(f), lo, hi, NULL, NULL, d, 0}
#define K_INT64(p, f, lo, hi, d) {p, KT_INT64, OFF(f), lo, hi, NULL, NULL, d, 0}
#define K_BOOL(p, f, d) {p, KT_BOOL, OFF(f), 0, 1, NULL, NULL, d, 0}
#define K_PROPS(p, f, n) {p, KT_PROPS, OFF(f), 0, 0, NULL, NULL, 0, OFF(n)}

/* Ranges: ports are ports; sizes and periods are positive, with upper
 * bounds that catch a unit mistake (ms typed for s) rather than any real
 * limit. */
static const key_desc config_keys[] = {
    K_STR("server.host", server.host, "0.0.0.0"),
    K_INT("server.port", server.port, 1, 65535, 3000),
    K_STR("server.cors_origin", server.cors_origin, ""),
    K_STR("server.tls_cert", server.tls_cert, ""),
    K_STR("server.tls_key", server.tls_key, ""),
    K_INT64("server.max_frame_bytes", server.max_frame_bytes, 1, 1073741824, 1048576),
    K_INT("server.ping_interval_s", server.ping_interval_s, 1, 3600, 25),
    K_INT("server.idle_timeout_s", server.idle_timeout_s, 1, 86400, 60),
    K_INT("server.rate_limit_per_min", server.rate_limit_per_min, 1, 1000000, 100),
    K_INT("server.queue_limit", server.queue_limit, 1, 10000000, 4096),
    K_INT("server.max_connections_per_address", server.max_conns_per_address, 0, 10000000, 1000),
    K_INT("server.max_unauthenticated_sessions", server.max_unauth_sessions, 0, 10000000, 10000),
    K_INT("server.connect_timeout_s", server.connect_timeout_s, 1, 3600, 10),
    K_INT("server.threads", server.threads, 0, 64, 0),
    K_ENUM("server.event_loop", server.event_loop, event_loops, "epoll"),
    K_STR("server.web_root", server.web_root, "web"),
    K_INT("server.filter_max_values", server.filter_max_values, 1, 100000, 256),
    K_INT("server.filter_max_bytes", server.filter_max_bytes, 64, 1048576, 4096),
    K_BOOL("server.compression", server.compression, 1),
    K_INT("server.compression_min_bytes", server.compression_min_bytes, 0, 1073741824, 256),

    K_STR("auth.jwt_secret", auth.jwt_secret, ""),
    K_STR("auth.jwt_secret_file", auth.jwt_secret_file, ""),
    K_ENUM("auth.algorithm", auth.algorithm, jwt_algorithms, "HS256"),
    K_STR("auth.public_key_file", auth.public_key_file, ""),
    K_STR("auth.issuer", auth.issuer, ""),
    K_STR("auth.audience", auth.audience, ""),

    K_STR("kafka.brokers", kafka.brokers, "127.0.0.1:9092"),
    K_STR("kafka.topics.orders", kafka.topic_orders, "oms.orders"),
    K_STR("kafka.topics.inventory", kafka.topic_inventory, "oms.inventory"),
    K_STR("kafka.topics.notifications", kafka.topic_notifications, "oms.notifications"),
    K_STR("kafka.topics.dlq", kafka.topic_dlq, "oms.dlq"),
    K_STR("kafka.topics.presence", kafka.topic_presence, "oms.presence"),
    K_STR("kafka.projection_group", kafka.projection_group, "omsd-projections"),
    K_PROPS("kafka.properties", kafka.props, kafka.nprops),

    K_STR("database.host", database.host, "127.0.0.1"),
    K_INT("database.port", database.port, 1, 65535, 5432),
    K_STR("database.user", database.user, "postgres"),
    K_STR("database.password", database.password, ""),
    K_STR("database.name", database.name, "oms"),
    K_STR("database.password_file", database.password_file, ""),
    K_STR("database.url", database.url, ""),
    K_STR("database.sslmode", database.sslmode, ""),
    K_STR("database.sslrootcert", database.sslrootcert, ""),
    K_PROPS("database.params", database.params, database.nparams),

    K_BOOL("projections.enabled", projections.enabled, 1),
    K_BOOL("projections.migrate_on_start", projections.migrate_on_start, 1),
    K_INT("projections.batch_size", projections.batch_size, 1, 100000, 1000),
    K_INT("projections.batch_ms", projections.batch_ms, 1, 60000, 50),

    K_INT("resume.history_size", resume.history_size, 0, 10000000, 2000),
    K_INT("resume.history_ttl_s", resume.history_ttl_s, 0, 86400, 300),
    K_INT("resume.max_replay", resume.max_replay, 0, 100000000, 100000),
    K_INT("resume.read_budget_mb", resume.read_budget_mb, 1, 1048576, 256),
    K_STR("resume.token_secret", resume.token_secret, ""),
    K_BOOL("resume.session_store", resume.session_store, 1),
    K_INT("resume.session_ttl_s", resume.session_ttl_s, 60, 31536000, 1209600),

    K_INT("presence.interval_s", presence.interval_s, 1, 3600, 5),
    K_INT("presence.expiry_s", presence.expiry_s, 2, 86400, 15),

    K_ENUM("log.level", log.level, log_levels, "info"),
    K_ENUM("log.format", log.format, log_formats, "auto"),

    K_STR("schemas.dir", schemas.dir, ""),

    K_STR("schema_registry.url", schema_registry.url, ""),
    K_STR("schema_registry.username", schema_registry.username, ""),
    K_STR("schema_registry.password", schema_registry.password, ""),
    K_STR("schema_registry.password_file", schema_registry.password_file, ""),
    K_STR("schema_registry.ca_file", schema_registry.ca_file, ""),
    K_INT("schema_registry.timeout_ms", schema_registry.timeout_ms, 100, 600000, 5000),
    K_ENUM("alerts.enabled", alerts.enabled, alerts_enabled, "auto"),
    K_STR("alerts.group", alerts.group, "omsd-alerts"),
    K_STR("alerts.rules", alerts.rules, "type=OrderCreated"),
    K_STR("alerts.console_url", alerts.console_url, ""),
    K_ENUM("alerts.start", alerts.start, alerts_start, "end"),
    K_INT("alerts.max_per_minute", alerts.max_per_minute, 1, 100000, 30),
    K_INT("alerts.digest_interval_s", alerts.digest_interval_s, 1, 86400, 60),
    K_INT("alerts.retry_max_s", alerts.retry_max_s, 1, 3600, 60),
    K_BOOL("alerts.report_errors", alerts.report_errors, 1),
    K_STR("alerts.crash_file", alerts.crash_file, ""),
    K_STR("alerts.sentry.dsn", alerts.sentry_dsn, ""),
    K_STR("alerts.sentry.environment", alerts.sentry_environment, ""),
    K_STR("alerts.sentry.ca_file", alerts.sentry_ca_file, ""),
    K_INT("alerts.sentry.timeout_s", alerts.sentry_timeout_s, 1, 600, 10),
    K_BOOL("alerts.email.enabled", alerts.email_enabled, 0),
    K_STR("alerts.email.host", alerts.email_host, ""),
    K_INT("alerts.email.port", alerts.email_port, 1, 65535, 587),
    K_STR("alerts.email.user", alerts.email_user, ""),
    K_STR("alerts.email.password", alerts.email_password, ""),
    K_STR("alerts.email.password_file", alerts.email_password_file, ""),
    K_ENUM("alerts.email.tls", alerts.email_tls, email_tls, "auto"),
    K_STR("alerts.email.from", alerts.email_from, ""),
    K_STR("alerts.email.from_name", alerts.email_from_name, "OMS alerts"),
    K_STR("alerts.email.recipients", alerts.email_recipients, ""),
    K_STR("alerts.email.ca_file", alerts.email_ca_file, ""),
    K_INT("alerts.email.timeout_s", alerts.email_timeout_s, 1, 600, 30),
};

/* The environment names of DESIGN §3.8 (those of the guide's Node.js
 * service) and the key each one overrides. */
static const struct {
    const char *var;
    const char *path;
} config_env[] = {
    {"JWT_SECRET", "auth.jwt_secret"},
    {"JWT_SECRET_FILE", "auth.jwt_secret_file"},
    {"RESUME_TOKEN_SECRET", "resume.token_secret"},
    {"CORS_ORIGIN", "server.cors_origin"},
    {"DATABASE_URL", "database.url"},
    {"DATABASE_HOST", "database.host"},
    {"DATABASE_PORT", "database.port"},
    {"DATABASE_USER", "database.user"},
    {"DATABASE_PASSWORD", "database.password"},
    {"DATABASE_PASSWORD_FILE", "database.password_file"},
    {"DATABASE_NAME", "database.name"},
    {"KAFKA_BROKERS", "kafka.brokers"},
    {"PORT", "server.port"},
    {"LOG_LEVEL", "log.level"},
    {"SCHEMA_REGISTRY_URL", "schema_registry.url"},
    {"SCHEMA_REGISTRY_USERNAME", "schema_registry.username"},
    {"SCHEMA_REGISTRY_PASSWORD", "schema_registry.password"},
    {"SCHEMA_REGISTRY_PASSWORD_FILE", "schema_registry.password_file"},
    {"SCHEMA_REGISTRY_CA_FILE", "schema_registry.ca_file"},
    /* the guide's Sentry and e-mail integration */
    {"SENTRY_DSN", "alerts.sentry.dsn"},
    {"SENTRY_ENVIRONMENT", "alerts.sentry.environment"},
    {"EMAIL_NOTIFICATIONS_ENABLED", "alerts.email.enabled"},
    {"EMAIL_HOST", "alerts.email.host"},
    {"EMAIL_PORT", "alerts.email.port"},
    {"EMAIL_USER", "alerts.email.user"},
    {"EMAIL_PASSWORD", "alerts.email.password"},
    {"EMAIL_PASSWORD_FILE", "alerts.email.password_file"},
    {"EMAIL_TLS", "alerts.email.tls"},
    {"EMAIL_FROM", "alerts.email.from"},
    {"ORDER_NOTIFICATION_RECIPIENTS", "alerts.email.recipients"},
};

#define CFG_FIELD(cfg, d, type) ((type *)((char *)(cfg) + (d)->off))
#define CFG_PROPS(cfg, d) ((oms_kv *)((char *)(cfg) + (d)->off))
#define CFG_NPROPS(cfg, d) ((size_t *)((char *)(cfg) + (d)->noff))

/* A secret and the file holding it: setting one (non-empty) clears the
 * other, so each level of the configuration replaces the level below. */
static const struct {
    const char *value;
    const char *file;
    const char *value_env;
    const char *file_env;
} secret_pairs[] = {
    {"auth.jwt_secret", "auth.jwt_secret_file", "JWT_SECRET", "JWT_SECRET_FILE"},
    {"database.password", "database.password_file", "DATABASE_PASSWORD",
     "DATABASE_PASSWORD_FILE"},
    {"schema_registry.password", "schema_registry.password_file", "SCHEMA_REGISTRY_PASSWORD",
     "SCHEMA_REGISTRY_PASSWORD_FILE"},
    {"alerts.email.password", "alerts.email.password_file", "EMAIL_PASSWORD",
     "EMAIL_PASSWORD_FILE"},
};

/* Largest secret file read: a key or a password, never a document. */
#define SECRET_FILE_MAX 65536

static const key_desc *find_key(const char *path)
{
    for (size_t i = 0; i < OMS_ARRAY_LEN(config_keys); i++)
        if (strcmp(config_keys[i].path, path) == 0)
            return &config_keys[i];
    return NULL;
}

/* A section is a proper prefix of some key: "kafka", "kafka.topics". */
static bool is_section(const char *path)
{
    size_t n = strlen(path);
    for (size_t i = 0; i < OMS_ARRAY_LEN(config_keys); i++)
        if (strncmp(config_keys[i].path, path, n) == 0 && config_keys[i].path[n] == '.')
            return true;
    return false;
}

/* ---- scalar conversion --------------------------------------------------- */

typedef struct {
    const char *str; /* KT_STR: into the input; KT_ENUM: the canonical name */
    int64_t num;     /* KT_INT, KT_INT64, KT_BOOL */
} conv_value;

/* Convert the scalar s (len bytes; is_null for YAML's null) for key d.
 * On error writes "expected ..., got '...'" into why. */
static int convert(const key_desc *d, const char *s, size_t len, bool is_null, conv_value *v,
                   char *why, size_t whylen)
{
    char got[64], exp[96];
    if (is_null)
        snprintf(got, sizeof got, "nothing");
    else
        yt_quote(s, len, got, sizeof got);

    switch (d->type) {
    case KT_STR:
        if (is_null) {
            v->str = "";
            return 0;
        }
        /* A "\0" escape would silently cut the value short. */
        if (memchr(s, '\0', len)) {
            snprintf(why, whylen, "must not contain a NUL character");
            return OMS_ECONFIG;
        }
        v->str = s;
        return 0;
    case KT_ENUM:
        for (size_t i = 0; !is_null && d->allowed[i]; i++) {
            if (strlen(d->allowed[i]) == len && strncasecmp(d->allowed[i], s, len) == 0) {
                v->str = d->allowed[i];
                return 0;
            }
        }
        {
            size_t o = 0;
            exp[0] = '\0';
            for (size_t i = 0; d->allowed[i] && o < sizeof exp; i++)
                o += (size_t)snprintf(exp + o, sizeof exp - o, "%s%s", i ? ", " : "",
                                      d->allowed[i]);
        }
        snprintf(why, whylen, "expected one of %s, got %s", exp, got);
        return OMS_ECONFIG;
    case KT_INT:
    case KT_INT64:
        /* Quoted numbers ("8080") are accepted: env files and templating
         * tools quote everything, and the digits are unambiguous. */
        if (is_null || yt_parse_int(s, len, d->min, d->max, &v->num) != 0) {
            snprintf(why, whylen, "%s, got %s",
                     yt_int_expectation(d->min, d->max, exp, sizeof exp), got);
            return OMS_ECONFIG;
        }
        return 0;
    case KT_BOOL: {
        bool b;
        if (is_null || yt_parse_bool(s, len, &b) != 0) {
            snprintf(why, whylen, "expected true or false (or yes/no, on/off), got %s", got);
            return OMS_ECONFIG;
        }
        v->num = b;
        return 0;
    }
    case KT_PROPS:
        break;
    }
    snprintf(why, whylen, "expected a mapping, got %s", got);
    return OMS_ECONFIG;
}

/* Store v into cfg; replaced strings are freed. */
static int store(oms_config *cfg, const key_desc *d, const conv_value *v)
{
    switch (d->type) {
    case KT_STR:
    case KT_ENUM: {
        char *copy = strdup(v->str);
        if (!copy)
            return OMS_ENOMEM;
        char **field = CFG_FIELD(cfg, d, char *);
        free(*field);
        *field = copy;
        for (size_t i = 0; *copy && i < OMS_ARRAY_LEN(secret_pairs); i++) {
            const char *other = strcmp(d->path, secret_pairs[i].value) == 0  ? secret_pairs[i].file
                                : strcmp(d->path, secret_pairs[i].file) == 0 ? secret_pairs[i].value
                                                                             : NULL;
            const key_desc *od = other ? find_key(other) : NULL;
            if (!od)
                continue;
            char *empty = strdup("");
            if (!empty)
                return OMS_ENOMEM;
            char **of = CFG_FIELD(cfg, od, char *);
            free(*of);
            *of = empty;
        }
        return 0;
    }
    case KT_INT:
        *CFG_FIELD(cfg, d, int) = (int)v->num;
        return 0;
    case KT_INT64:
        *CFG_FIELD(cfg, d, int64_t) = v->num;
        return 0;
    case KT_BOOL:
        *CFG_FIELD(cfg, d, bool) = v->num != 0;
        return 0;
    case KT_PROPS:
        break;
    }
    return OMS_EINVAL;
}

/* ---- defaults and free --------------------------------------------------- */

int oms_config_defaults(oms_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < OMS_ARRAY_LEN(config_keys); i++) {
        const key_desc *d = &config_keys[i];
        conv_value v = {d->sdef, d->idef};
        if (d->type == KT_PROPS)
            continue;
        if (store(cfg, d, &v) != 0) {
            oms_config_free(cfg);
            return OMS_ENOMEM;
        }
    }
    return 0;
}

void oms_config_free(oms_config *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < OMS_ARRAY_LEN(config_keys); i++) {
        const key_desc *d = &config_keys[i];
        if (d->type == KT_STR || d->type == KT_ENUM) {
            char **field = CFG_FIELD(cfg, d, char *);
            free(*field);
            *field = NULL;
        }
    }
    for (size_t i = 0; i < OMS_ARRAY_LEN(config_keys); i++) {
        const key_desc *d = &config_keys[i];
        if (d->type != KT_PROPS)
            continue;
        oms_kv *props = CFG_PROPS(cfg, d);
        size_t *n = CFG_NPROPS(cfg, d);
        for (size_t j = 0; j < *n; j++) {
            free(props[j].key);
            free(props[j].value);
            props[j].key = props[j].value = NULL;
        }
        *n = 0;
    }
}

/* ---- YAML ---------------------------------------------------------------- */

/* The file is applied in two passes over the tree: the first only checks,
 * the second stores. So a file with an error leaves cfg as it was, and the
 * second pass can only fail for lack of memory. */
typedef struct {
    oms_config *cfg;
    const char *name;
    bool apply;
    char *errbuf;
    size_t errlen;
} walk_ctx;

static int nomem(walk_ctx *w)
{
    oms_errf(w->errbuf, w->errlen, "%s: out of memory", w->name);
    return OMS_ENOMEM;
}

/* The known key or section ("kafka.topics") closest to path by edit
 * distance, into best. Returns the distance. */
static size_t closest_known(const char *path, char *best, size_t bestlen)
{
    size_t bestd = SIZE_MAX;
    best[0] = '\0';
    for (size_t i = 0; i < OMS_ARRAY_LEN(config_keys); i++) {
        const char *key = config_keys[i].path;
        size_t kl = strlen(key);
        /* Each section along the key's path, then the key itself. */
        for (size_t sl = 1; sl <= kl; sl++) {
            char cand[64];
            if ((sl < kl && key[sl] != '.') || sl >= sizeof cand)
                continue;
            memcpy(cand, key, sl);
            cand[sl] = '\0';
            size_t d = yt_edit_distance(path, cand);
            if (d < bestd) {
                bestd = d;
                snprintf(best, bestlen, "%s", cand);
            }
        }
    }
    return bestd;
}

/* Close enough to be a typo rather than another word: "lg" -> "log" yes,
 * "foo" -> "log" no. */
static bool suggestable(size_t distance, size_t len)
{
    return distance <= 2 && distance * 3 <= len + 1;
}

/* "unknown key 'server.prot' (did you mean 'server.port'?)" */
static int unknown_key(walk_ctx *w, const yt_node *key, const char *path)
{
    char q[96], best[64], hint[160] = "";
    yt_quote(path, strlen(path), q, sizeof q);
    const char *last = strrchr(path, '.');
    last = last ? last + 1 : path;

    if (memchr(key->value, '.', key->len)) {
        /* "kafka.brokers: x" at the top: looks right, is not YAML nesting. */
        snprintf(hint, sizeof hint,
                 " (keys are nested, not dotted: put each part on its own line, indented)");
    } else if (suggestable(closest_known(path, best, sizeof best), strlen(path))) {
        snprintf(hint, sizeof hint, " (did you mean '%s'?)", best);
    } else {
        /* Right key, wrong section: "server.brokers" -> kafka.brokers. */
        for (size_t i = 0; i < OMS_ARRAY_LEN(config_keys); i++) {
            const char *kl = strrchr(config_keys[i].path, '.');
            if (kl && strcmp(kl + 1, last) == 0) {
                snprintf(hint, sizeof hint, " (did you mean '%s'?)", config_keys[i].path);
                break;
            }
        }
    }
    oms_errf(w->errbuf, w->errlen, "%s:%d: unknown key %s%s", w->name, key->line, q, hint);
    return OMS_ECONFIG;
}

static int find_prop(oms_config *cfg, const key_desc *d, const char *key, size_t len)
{
    const oms_kv *props = CFG_PROPS(cfg, d);
    for (size_t i = 0; i < *CFG_NPROPS(cfg, d); i++)
        if (strlen(props[i].key) == len && memcmp(props[i].key, key, len) == 0)
            return (int)i;
    return -1;
}

/* kafka.properties, database.params: names and values are passed to
 * librdkafka / libpq as they are, merged over what cfg already holds;
 * librdkafka itself rejects the names it does not know when the client is
 * created, pkg/pg (oms_pg_check_config) those libpq does not know. */
static int walk_props(walk_ctx *w, const key_desc *d, const yt_node *map)
{
    char got[64];
    if (yt_is_null(map))
        return 0;
    if (map->kind != YT_MAP) {
        oms_errf(w->errbuf, w->errlen,
                 "%s:%d: %s: expected a mapping of %s, got %s", w->name, map->line, d->path,
                 strncmp(d->path, "kafka.", 6) == 0 ? "librdkafka properties"
                                                    : "libpq connection parameters",
                 yt_describe(map, got, sizeof got));
        return OMS_ECONFIG;
    }
    oms_kv *props = CFG_PROPS(w->cfg, d);
    size_t *nprops = CFG_NPROPS(w->cfg, d);
    size_t count = *nprops;
    for (size_t i = 0; i < map->n; i += 2) {
        const yt_node *k = map->children[i], *v = map->children[i + 1];
        char q[64];
        yt_quote(k->value, k->len, q, sizeof q);
        if (k->len == 0 || memchr(k->value, '\0', k->len)) {
            oms_errf(w->errbuf, w->errlen, "%s:%d: %s: invalid property name %s", w->name,
                     k->line, d->path, q);
            return OMS_ECONFIG;
        }
        if (v->kind != YT_SCALAR || yt_is_null(v) || memchr(v->value, '\0', v->len)) {
            oms_errf(w->errbuf, w->errlen, "%s:%d: %s.%s: expected a value, got %s", w->name,
                     v->line, d->path, k->value, yt_describe(v, got, sizeof got));
            return OMS_ECONFIG;
        }
        int idx = find_prop(w->cfg, d, k->value, k->len);
        if (idx < 0) {
            if (count == OMS_CONFIG_MAX_PROPS) {
                oms_errf(w->errbuf, w->errlen, "%s:%d: %s: too many properties (at most %d)",
                         w->name, k->line, d->path, OMS_CONFIG_MAX_PROPS);
                return OMS_ECONFIG;
            }
            idx = (int)count++;
        }
        if (!w->apply)
            continue;
        char *value = strdup(v->value);
        if (!value)
            return nomem(w);
        oms_kv *kv = &props[idx];
        if ((size_t)idx == *nprops) {
            kv->key = strdup(k->value);
            if (!kv->key) {
                free(value);
                return nomem(w);
            }
            (*nprops)++;
        } else {
            free(kv->value);
        }
        kv->value = value;
    }
    return 0;
}

static int walk_map(walk_ctx *w, const yt_node *map, const char *prefix)
{
    for (size_t i = 0; i < map->n; i += 2) {
        const yt_node *k = map->children[i], *v = map->children[i + 1];
        char path[160], got[64], why[192];
        if (k->len > 64) {
            char q[64];
            oms_errf(w->errbuf, w->errlen, "%s:%d: unknown key %s", w->name, k->line,
                     yt_quote(k->value, k->len, q, sizeof q));
            return OMS_ECONFIG;
        }
        snprintf(path, sizeof path, "%s%s%s", prefix, *prefix ? "." : "", k->value);

        const key_desc *d = memchr(k->value, '.', k->len) ? NULL : find_key(path);
        int rc;
        if (d && d->type == KT_PROPS) {
            rc = walk_props(w, d, v);
        } else if (d) {
            if (v->kind != YT_SCALAR) {
                oms_errf(w->errbuf, w->errlen, "%s:%d: %s: expected a single value, got %s",
                         w->name, v->line, path, yt_describe(v, got, sizeof got));
                return OMS_ECONFIG;
            }
            conv_value cv;
            rc = convert(d, v->value, v->len, yt_is_null(v), &cv, why, sizeof why);
            if (rc) {
                oms_errf(w->errbuf, w->errlen, "%s:%d: %s: %s", w->name, v->line, path, why);
                return rc;
            }
            if (w->apply && store(w->cfg, d, &cv) != 0)
                return nomem(w);
        } else if (!memchr(k->value, '.', k->len) && is_section(path)) {
            /* "server:" with nothing under it (all commented out) is fine. */
            if (yt_is_null(v))
                continue;
            if (v->kind != YT_MAP) {
                oms_errf(w->errbuf, w->errlen, "%s:%d: %s: expected a mapping of keys, got %s",
                         w->name, v->line, path, yt_describe(v, got, sizeof got));
                return OMS_ECONFIG;
            }
            rc = walk_map(w, v, path);
        } else {
            rc = unknown_key(w, k, path);
        }
        if (rc)
            return rc;
    }
    return 0;
}

/* The scalar at a dotted path of the document, or NULL. */
static const yt_node *lookup(const yt_node *map, const char *path)
{
    const char *dot = strchr(path, '.');
    size_t n = dot ? (size_t)(dot - path) : strlen(path);
    if (!map || map->kind != YT_MAP)
        return NULL;
    for (size_t i = 0; i < map->n; i += 2) {
        const yt_node *k = map->children[i];
        if (k->len == n && memcmp(k->value, path, n) == 0)
            return dot ? lookup(map->children[i + 1], dot + 1) : map->children[i + 1];
    }
    return NULL;
}

/* One document setting a secret and its file is ambiguous: which wins? */
static int check_secret_pairs(const yt_node *root, const char *name, char *errbuf, size_t errlen)
{
    for (size_t i = 0; i < OMS_ARRAY_LEN(secret_pairs); i++) {
        const yt_node *v = lookup(root, secret_pairs[i].value);
        const yt_node *f = lookup(root, secret_pairs[i].file);
        if (v && f && v->kind == YT_SCALAR && f->kind == YT_SCALAR && !yt_is_null(v) &&
            !yt_is_null(f) && v->len && f->len) {
            oms_errf(errbuf, errlen, "%s:%d: %s and %s are both set: keep one", name, f->line,
                     secret_pairs[i].value, secret_pairs[i].file);
            return OMS_ECONFIG;
        }
    }
    return 0;
}

int oms_config_load_string(oms_config *cfg, const char *yaml, size_t len, const char *name,
                           char *errbuf, size_t errlen)
{
    yt_node *root = NULL;
    int rc = yt_parse(yaml, len, name, &root, errbuf, errlen);
    if (rc)
        return rc;
    if (!root)
        return 0; /* empty file: nothing to change */
    if (root->kind != YT_MAP) {
        char got[64];
        oms_errf(errbuf, errlen, "%s:%d: expected a mapping of sections (server:, kafka:, ...), "
                                 "got %s",
                 name, root->line, yt_describe(root, got, sizeof got));
        yt_free(root);
        return OMS_ECONFIG;
    }
    walk_ctx w = {cfg, name, false, errbuf, errlen};
    rc = walk_map(&w, root, "");
    if (rc == 0)
        rc = check_secret_pairs(root, name, errbuf, errlen);
    if (rc == 0) {
        w.apply = true;
        rc = walk_map(&w, root, "");
    }
    yt_free(root);
    return rc;
}

int oms_config_load_file(oms_config *cfg, const char *path, char *errbuf, size_t errlen)
{
    char *buf;
    size_t len;
    int rc = yt_read_file(path, &buf, &len, errbuf, errlen);
    if (rc)
        return rc;
    rc = oms_config_load_string(cfg, buf, len, path, errbuf, errlen);
    free(buf);
    return rc;
}

/* ---- environment --------------------------------------------------------- */

/* Read a secret file named by `what` (a variable or a key) into *out
 * (heap, NUL-terminated, trailing CR/LF stripped). The content never goes
 * into a message. */
static int read_secret_file(const char *what, const char *path, char **out, char *errbuf,
                            size_t errlen)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        oms_errf(errbuf, errlen, "%s: cannot read '%s': %s", what, path, strerror(errno));
        return OMS_ECONFIG;
    }
    char *buf = malloc(SECRET_FILE_MAX + 2);
    if (!buf) {
        fclose(f);
        oms_errf(errbuf, errlen, "%s: out of memory", what);
        return OMS_ENOMEM;
    }
    size_t len = fread(buf, 1, SECRET_FILE_MAX + 1, f);
    int failed = ferror(f);
    int saved = errno;
    fclose(f);
    if (failed) {
        /* e.g. a directory: fopen succeeds, reading fails with EISDIR */
        oms_errf(errbuf, errlen, "%s: cannot read '%s': %s", what, path, strerror(saved));
        free(buf);
        return OMS_ECONFIG;
    }
    if (len > SECRET_FILE_MAX) {
        oms_errf(errbuf, errlen, "%s: '%s' is larger than %d bytes: not a secret", what, path,
                 SECRET_FILE_MAX);
        free(buf);
        return OMS_ECONFIG;
    }
    /* echo "$secret" > file and Kubernetes/systemd credentials alike */
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
        len--;
    buf[len] = '\0';
    if (len == 0) {
        oms_errf(errbuf, errlen, "%s: '%s' is empty", what, path);
        free(buf);
        return OMS_ECONFIG;
    }
    if (memchr(buf, '\0', len)) {
        oms_errf(errbuf, errlen, "%s: '%s' contains a NUL byte", what, path);
        free(buf);
        return OMS_ECONFIG;
    }
    *out = buf;
    return 0;
}

int oms_config_apply_env(oms_config *cfg, char *(*getenv_fn)(const char *), char *errbuf,
                         size_t errlen)
{
    conv_value vals[OMS_ARRAY_LEN(config_env)];
    const key_desc *descs[OMS_ARRAY_LEN(config_env)];
    char *secrets[OMS_ARRAY_LEN(secret_pairs)] = {NULL};
    int rc = 0;
    /* Check every variable before changing anything, like the file. */
    for (size_t i = 0; i < OMS_ARRAY_LEN(config_env); i++) {
        const char *s = getenv_fn(config_env[i].var);
        descs[i] = NULL;
        if (!s || !*s)
            continue;
        const key_desc *d = find_key(config_env[i].path);
        char why[192];
        if (convert(d, s, strlen(s), false, &vals[i], why, sizeof why) != 0) {
            oms_errf(errbuf, errlen, "%s: %s", config_env[i].var, why);
            return OMS_ECONFIG;
        }
        descs[i] = d;
    }
    /* The secret files, read before anything changes: the variable's file,
     * else none when the variable's value is set, else the file's key. */
    for (size_t i = 0; i < OMS_ARRAY_LEN(secret_pairs); i++) {
        const char *value = getenv_fn(secret_pairs[i].value_env);
        const char *file = getenv_fn(secret_pairs[i].file_env);
        const char *what = secret_pairs[i].file_env;
        if (value && *value && file && *file) {
            oms_errf(errbuf, errlen, "%s and %s are both set: keep one", secret_pairs[i].value_env,
                     secret_pairs[i].file_env);
            rc = OMS_ECONFIG;
            goto out;
        }
        if (!file || !*file) {
            if (value && *value)
                continue;
            file = *CFG_FIELD(cfg, find_key(secret_pairs[i].file), char *);
            what = secret_pairs[i].file;
        }
        if (file && *file && (rc = read_secret_file(what, file, &secrets[i], errbuf, errlen)))
            goto out;
    }
    for (size_t i = 0; i < OMS_ARRAY_LEN(config_env); i++) {
        if (descs[i] && store(cfg, descs[i], &vals[i]) != 0) {
            oms_errf(errbuf, errlen, "%s: out of memory", config_env[i].var);
            rc = OMS_ENOMEM;
            goto out;
        }
    }
    /* Set the secret itself without store(): it would clear its file key. */
    for (size_t i = 0; i < OMS_ARRAY_LEN(secret_pairs); i++) {
        if (!secrets[i])
            continue;
        char **field = CFG_FIELD(cfg, find_key(secret_pairs[i].value), char *);
        free(*field);
        *field = secrets[i];
        secrets[i] = NULL;
    }
out:
    for (size_t i = 0; i < OMS_ARRAY_LEN(secret_pairs); i++) {
        if (secrets[i]) {
            /* a secret does not linger in freed memory */
            memset(secrets[i], 0, strlen(secrets[i]));
            free(secrets[i]);
        }
    }
    return rc;
}

/* ---- validation ---------------------------------------------------------- */

int oms_config_validate(const oms_config *cfg, char *errbuf, size_t errlen)
{
    /* Values set by code rather than loaded still get the file's checks. */
    for (size_t i = 0; i < OMS_ARRAY_LEN(config_keys); i++) {
        const key_desc *d = &config_keys[i];
        char why[192], num[32];
        conv_value v;
        switch (d->type) {
        case KT_STR:
        case KT_ENUM: {
            const char *s = *CFG_FIELD(cfg, d, char *const);
            if (!s) {
                oms_errf(errbuf, errlen, "%s: not set", d->path);
                return OMS_ECONFIG;
            }
            if (d->type == KT_ENUM && convert(d, s, strlen(s), false, &v, why, sizeof why)) {
                oms_errf(errbuf, errlen, "%s: %s", d->path, why);
                return OMS_ECONFIG;
            }
            break;
        }
        case KT_INT:
        case KT_INT64: {
            int64_t n = d->type == KT_INT ? *CFG_FIELD(cfg, d, const int)
                                          : *CFG_FIELD(cfg, d, const int64_t);
            snprintf(num, sizeof num, "%lld", (long long)n);
            if (convert(d, num, strlen(num), false, &v, why, sizeof why)) {
                oms_errf(errbuf, errlen, "%s: %s", d->path, why);
                return OMS_ECONFIG;
            }
            break;
        }
        default:
            break;
        }
    }

    const char *need[][2] = {
        {"server.host", cfg->server.host},
        {"kafka.brokers (or KAFKA_BROKERS)", cfg->kafka.brokers},
        {"database.host (or DATABASE_HOST)", cfg->database.host},
        {"database.user (or DATABASE_USER)", cfg->database.user},
        {"database.name (or DATABASE_NAME)", cfg->database.name},
    };
    for (size_t i = 0; i < OMS_ARRAY_LEN(need); i++) {
        /* database.url names the server, user and database itself */
        if (i >= 2 && *cfg->database.url)
            break;
        if (!*need[i][1]) {
            oms_errf(errbuf, errlen, "%s: must not be empty", need[i][0]);
            return OMS_ECONFIG;
        }
    }

    size_t tsl = strlen(cfg->resume.token_secret);
    if (tsl > 0 && tsl < 16) {
        oms_errf(errbuf, errlen,
                 "resume.token_secret: %zu bytes; at least 16 are required (or leave it empty "
                 "to derive it from auth.jwt_secret)",
                 tsl);
        return OMS_ECONFIG;
    }

    const char *sr = cfg->schema_registry.url;
    if (*sr && strncmp(sr, "http://", 7) != 0 && strncmp(sr, "https://", 8) != 0) {
        oms_errf(errbuf, errlen, "schema_registry.url: expected an http:// or https:// URL, got '%.100s'",
                 sr);
        return OMS_ECONFIG;
    }
    if (*cfg->schema_registry.password && !*cfg->schema_registry.username) {
        oms_errf(errbuf, errlen,
                 "schema_registry.password is set but schema_registry.username is not: basic "
                 "auth needs both");
        return OMS_ECONFIG;
    }
    if (*cfg->server.tls_cert && !*cfg->server.tls_key) {
        oms_errf(errbuf, errlen, "server.tls_cert is set but server.tls_key is not: TLS needs both");
        return OMS_ECONFIG;
    }
    if (*cfg->server.tls_key && !*cfg->server.tls_cert) {
        oms_errf(errbuf, errlen, "server.tls_key is set but server.tls_cert is not: TLS needs both");
        return OMS_ECONFIG;
    }
    /* A peer is dropped after idle_timeout_s of silence; pinging less often
     * than that would drop healthy peers that only answer pings. */
    if (cfg->server.ping_interval_s >= cfg->server.idle_timeout_s) {
        oms_errf(errbuf, errlen,
                 "server.ping_interval_s (%d) must be less than server.idle_timeout_s (%d)",
                 cfg->server.ping_interval_s, cfg->server.idle_timeout_s);
        return OMS_ECONFIG;
    }
    static const char *const sslmodes[] = {"disable", "allow", "prefer", "require",
                                           "verify-ca", "verify-full"};
    if (*cfg->database.sslmode) {
        size_t i = 0;
        while (i < OMS_ARRAY_LEN(sslmodes) && strcmp(sslmodes[i], cfg->database.sslmode) != 0)
            i++;
        if (i == OMS_ARRAY_LEN(sslmodes)) {
            char q[96];
            oms_errf(errbuf, errlen,
                     "database.sslmode: expected one of disable, allow, prefer, require, "
                     "verify-ca, verify-full, got %s",
                     yt_quote(cfg->database.sslmode, strlen(cfg->database.sslmode), q, sizeof q));
            return OMS_ECONFIG;
        }
    }
    if (strcmp(cfg->auth.algorithm, "HS256") != 0 && !*cfg->auth.public_key_file) {
        oms_errf(errbuf, errlen, "auth.algorithm %s needs auth.public_key_file",
                 cfg->auth.algorithm);
        return OMS_ECONFIG;
    }

    const struct {
        const char *path;
        const char *name;
    } topics[] = {
        {"kafka.topics.orders", cfg->kafka.topic_orders},
        {"kafka.topics.inventory", cfg->kafka.topic_inventory},
        {"kafka.topics.notifications", cfg->kafka.topic_notifications},
        {"kafka.topics.dlq", cfg->kafka.topic_dlq},
        {"kafka.topics.presence", cfg->kafka.topic_presence},
    };
    for (size_t i = 0; i < OMS_ARRAY_LEN(topics); i++) {
        char q[96];
        if (!yt_valid_topic_name(topics[i].name, strlen(topics[i].name))) {
            oms_errf(errbuf, errlen,
                     "%s: %s is not a valid Kafka topic name (1 to 249 of a-z A-Z 0-9 . _ -)",
                     topics[i].path, yt_quote(topics[i].name, strlen(topics[i].name), q, sizeof q));
            return OMS_ECONFIG;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(topics[i].name, topics[j].name) == 0) {
                oms_errf(errbuf, errlen, "%s and %s name the same topic '%s'", topics[j].path,
                         topics[i].path, topics[i].name);
                return OMS_ECONFIG;
            }
        }
    }
    if (cfg->presence.expiry_s <= cfg->presence.interval_s) {
        oms_errf(errbuf, errlen,
                 "presence.expiry_s (%d) must be greater than presence.interval_s (%d)",
                 cfg->presence.expiry_s, cfg->presence.interval_s);
        return OMS_ECONFIG;
    }
    if (cfg->projections.enabled && !*cfg->kafka.projection_group) {
        oms_errf(errbuf, errlen,
                 "kafka.projection_group: must not be empty when projections are enabled");
        return OMS_ECONFIG;
    }
    return 0;
}
