/* test_config.c — pkg/config: defaults, omsd.yaml, environment, validation,
 * topics.yaml. Runs from the project root (configs/ by relative path). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config.h"

#define ERRLEN 512

/* Load a YAML string named "x.yaml" into a defaults config; returns rc. */
static int load(oms_config *cfg, const char *yaml, char *err)
{
    err[0] = '\0';
    return oms_config_load_string(cfg, yaml, strlen(yaml), "x.yaml", err, ERRLEN);
}

/* Load into fresh defaults and expect an error whose message is exactly
 * want (or, with want_sub, contains every piece). */
static void expect_error(const char *yaml, const char *want)
{
    oms_config cfg;
    char err[ERRLEN];
    assert_int_equal(oms_config_defaults(&cfg), 0);
    int rc = load(&cfg, yaml, err);
    if (rc != OMS_ECONFIG)
        fail_msg("expected OMS_ECONFIG for:\n%s\ngot %d (%s)", yaml, rc, err);
    assert_string_equal(err, want);
    oms_config_free(&cfg);
}

static void expect_error_has(const char *yaml, const char *prefix, const char *part)
{
    oms_config cfg;
    char err[ERRLEN];
    assert_int_equal(oms_config_defaults(&cfg), 0);
    int rc = load(&cfg, yaml, err);
    if (rc != OMS_ECONFIG)
        fail_msg("expected OMS_ECONFIG for:\n%s\ngot %d (%s)", yaml, rc, err);
    if (strncmp(err, prefix, strlen(prefix)) != 0)
        fail_msg("error '%s' does not start with '%s'", err, prefix);
    if (part && !strstr(err, part))
        fail_msg("error '%s' does not contain '%s'", err, part);
    oms_config_free(&cfg);
}

static void assert_props_equal(const oms_config *a, const oms_config *b)
{
    assert_int_equal(a->kafka.nprops, b->kafka.nprops);
    for (size_t i = 0; i < a->kafka.nprops; i++) {
        assert_string_equal(a->kafka.props[i].key, b->kafka.props[i].key);
        assert_string_equal(a->kafka.props[i].value, b->kafka.props[i].value);
    }
    assert_int_equal(a->database.nparams, b->database.nparams);
    for (size_t i = 0; i < a->database.nparams; i++) {
        assert_string_equal(a->database.params[i].key, b->database.params[i].key);
        assert_string_equal(a->database.params[i].value, b->database.params[i].value);
    }
}

/* Field by field, so a new key that the test forgets fails loudly here. */
static void assert_config_equal(const oms_config *a, const oms_config *b)
{
    assert_string_equal(a->server.host, b->server.host);
    assert_int_equal(a->server.port, b->server.port);
    assert_string_equal(a->server.cors_origin, b->server.cors_origin);
    assert_string_equal(a->server.tls_cert, b->server.tls_cert);
    assert_string_equal(a->server.tls_key, b->server.tls_key);
    assert_int_equal(a->server.max_frame_bytes, b->server.max_frame_bytes);
    assert_int_equal(a->server.ping_interval_s, b->server.ping_interval_s);
    assert_int_equal(a->server.idle_timeout_s, b->server.idle_timeout_s);
    assert_int_equal(a->server.rate_limit_per_min, b->server.rate_limit_per_min);
    assert_int_equal(a->server.queue_limit, b->server.queue_limit);
    assert_string_equal(a->server.web_root, b->server.web_root);
    assert_string_equal(a->auth.jwt_secret, b->auth.jwt_secret);
    assert_string_equal(a->auth.jwt_secret_file, b->auth.jwt_secret_file);
    assert_string_equal(a->auth.algorithm, b->auth.algorithm);
    assert_string_equal(a->auth.public_key_file, b->auth.public_key_file);
    assert_string_equal(a->auth.issuer, b->auth.issuer);
    assert_string_equal(a->auth.audience, b->auth.audience);
    assert_string_equal(a->kafka.brokers, b->kafka.brokers);
    assert_string_equal(a->kafka.topic_orders, b->kafka.topic_orders);
    assert_string_equal(a->kafka.topic_inventory, b->kafka.topic_inventory);
    assert_string_equal(a->kafka.topic_notifications, b->kafka.topic_notifications);
    assert_string_equal(a->kafka.topic_dlq, b->kafka.topic_dlq);
    assert_string_equal(a->kafka.projection_group, b->kafka.projection_group);
    assert_props_equal(a, b);
    assert_string_equal(a->database.host, b->database.host);
    assert_int_equal(a->database.port, b->database.port);
    assert_string_equal(a->database.user, b->database.user);
    assert_string_equal(a->database.password, b->database.password);
    assert_string_equal(a->database.name, b->database.name);
    assert_string_equal(a->database.password_file, b->database.password_file);
    assert_string_equal(a->database.url, b->database.url);
    assert_string_equal(a->database.sslmode, b->database.sslmode);
    assert_string_equal(a->database.sslrootcert, b->database.sslrootcert);
    assert_int_equal(a->projections.enabled, b->projections.enabled);
    assert_int_equal(a->projections.migrate_on_start, b->projections.migrate_on_start);
    assert_int_equal(a->projections.batch_size, b->projections.batch_size);
    assert_int_equal(a->projections.batch_ms, b->projections.batch_ms);
    assert_string_equal(a->log.level, b->log.level);
    assert_string_equal(a->log.format, b->log.format);
    assert_string_equal(a->schemas.dir, b->schemas.dir);
}

/* ---- defaults and files -------------------------------------------------- */

static void test_defaults(void **state)
{
    oms_config c;
    char err[ERRLEN];
    assert_int_equal(oms_config_defaults(&c), 0);
    assert_string_equal(c.server.host, "0.0.0.0");
    assert_int_equal(c.server.port, 3000);
    assert_string_equal(c.server.cors_origin, "");
    assert_string_equal(c.server.tls_cert, "");
    assert_string_equal(c.server.tls_key, "");
    assert_int_equal(c.server.max_frame_bytes, 1048576);
    assert_int_equal(c.server.ping_interval_s, 25);
    assert_int_equal(c.server.idle_timeout_s, 60);
    assert_int_equal(c.server.rate_limit_per_min, 100);
    assert_int_equal(c.server.queue_limit, 4096);
    assert_int_equal(c.server.max_unauth_sessions, 10000);
    assert_int_equal(c.server.connect_timeout_s, 10);
    assert_int_equal(c.resume.read_budget_mb, 256);
    assert_string_equal(c.resume.token_secret, "");
    assert_string_equal(c.server.web_root, "web");
    assert_string_equal(c.auth.jwt_secret, "");
    assert_string_equal(c.auth.algorithm, "HS256");
    assert_string_equal(c.auth.public_key_file, "");
    assert_string_equal(c.auth.issuer, "");
    assert_string_equal(c.auth.audience, "");
    assert_string_equal(c.kafka.brokers, "127.0.0.1:9092");
    assert_string_equal(c.kafka.topic_orders, "oms.orders");
    assert_string_equal(c.kafka.topic_inventory, "oms.inventory");
    assert_string_equal(c.kafka.topic_notifications, "oms.notifications");
    assert_string_equal(c.kafka.topic_dlq, "oms.dlq");
    assert_string_equal(c.kafka.projection_group, "omsd-projections");
    assert_int_equal(c.kafka.nprops, 0);
    assert_string_equal(c.database.host, "127.0.0.1");
    assert_int_equal(c.database.port, 5432);
    assert_string_equal(c.database.user, "postgres");
    assert_string_equal(c.database.password, "");
    assert_string_equal(c.database.name, "oms");
    assert_string_equal(c.auth.jwt_secret_file, "");
    assert_string_equal(c.database.password_file, "");
    assert_string_equal(c.database.url, "");
    assert_string_equal(c.database.sslmode, "");
    assert_string_equal(c.database.sslrootcert, "");
    assert_int_equal(c.database.nparams, 0);
    assert_true(c.projections.enabled);
    assert_true(c.projections.migrate_on_start);
    assert_int_equal(c.projections.batch_size, 1000);
    assert_int_equal(c.projections.batch_ms, 50);
    assert_string_equal(c.log.level, "info");
    assert_string_equal(c.log.format, "auto");
    assert_string_equal(c.schemas.dir, "");
    assert_int_equal(oms_config_validate(&c, err, sizeof err), 0);
    oms_config_free(&c);
    assert_null(c.server.host);
    oms_config_free(&c); /* twice is harmless */
}

static void test_shipped_omsd_yaml_equals_defaults(void **state)
{
    oms_config def, c;
    char err[ERRLEN] = "";
    assert_int_equal(oms_config_defaults(&def), 0);
    assert_int_equal(oms_config_defaults(&c), 0);
    int rc = oms_config_load_file(&c, "configs/omsd.yaml", err, sizeof err);
    if (rc)
        fail_msg("configs/omsd.yaml: %s", err);
    assert_config_equal(&c, &def);
    assert_int_equal(oms_config_validate(&c, err, sizeof err), 0);
    oms_config_free(&c);
    oms_config_free(&def);
}

static void test_empty_file_is_defaults(void **state)
{
    const char *docs[] = {"", "# only a comment\n\n", "---\n", "~\n", "server:\n", "server: {}\n"};
    for (size_t i = 0; i < sizeof docs / sizeof *docs; i++) {
        oms_config def, c;
        char err[ERRLEN];
        assert_int_equal(oms_config_defaults(&def), 0);
        assert_int_equal(oms_config_defaults(&c), 0);
        if (load(&c, docs[i], err) != 0)
            fail_msg("'%s': %s", docs[i], err);
        assert_config_equal(&c, &def);
        oms_config_free(&c);
        oms_config_free(&def);
    }
}

static const char custom_yaml[] =
    "server:\n"
    "  host: 127.0.0.1\n"
    "  port: \"8080\"            # quoted numbers are accepted\n"
    "  cors_origin: 'https://a.example,https://b.example'\n"
    "  tls_cert: /etc/oms/cert.pem\n"
    "  tls_key: /etc/oms/key.pem\n"
    "  max_frame_bytes: 2097152\n"
    "  ping_interval_s: 10\n"
    "  idle_timeout_s: 30\n"
    "  rate_limit_per_min: 600\n"
    "  queue_limit: 128\n"
    "  web_root: /srv/oms/web\n"
    "auth:\n"
    "  jwt_secret: \"s3cret with spaces and: colon\"\n"
    "  algorithm: rs256\n"
    "  public_key_file: /etc/oms/jwt.pub\n"
    "  issuer: oms\n"
    "  audience: oms-clients\n"
    "kafka:\n"
    "  brokers: k1:9092,k2:9092\n"
    "  topics:\n"
    "    orders: t.orders\n"
    "    inventory: t.inventory\n"
    "    notifications: t.notifications\n"
    "    dlq: t.dlq\n"
    "  projection_group: grp\n"
    "  properties:\n"
    "    client.id: omsd-1\n"
    "    enable.idempotence: true\n"
    "    linger.ms: 5\n"
    "database:\n"
    "  host: db.local\n"
    "  port: 6543\n"
    "  user: oms\n"
    "  password: pw\n"
    "  name: omsdb\n"
    "projections:\n"
    "  enabled: no\n"
    "  migrate_on_start: Off\n"
    "  batch_size: 10\n"
    "  batch_ms: 5\n"
    "log:\n"
    "  level: WARN\n"
    "  format: json\n"
    "schemas:\n"
    "  dir: \"\"\n";

static void test_custom_file_sets_every_type(void **state)
{
    oms_config c;
    char err[ERRLEN];
    assert_int_equal(oms_config_defaults(&c), 0);
    if (load(&c, custom_yaml, err) != 0)
        fail_msg("%s", err);
    assert_string_equal(c.server.host, "127.0.0.1");
    assert_int_equal(c.server.port, 8080);
    assert_string_equal(c.server.cors_origin, "https://a.example,https://b.example");
    assert_string_equal(c.server.tls_cert, "/etc/oms/cert.pem");
    assert_string_equal(c.server.tls_key, "/etc/oms/key.pem");
    assert_int_equal(c.server.max_frame_bytes, 2097152);
    assert_int_equal(c.server.ping_interval_s, 10);
    assert_int_equal(c.server.idle_timeout_s, 30);
    assert_int_equal(c.server.rate_limit_per_min, 600);
    assert_int_equal(c.server.queue_limit, 128);
    assert_string_equal(c.server.web_root, "/srv/oms/web");
    assert_string_equal(c.auth.jwt_secret, "s3cret with spaces and: colon");
    assert_string_equal(c.auth.algorithm, "RS256"); /* stored canonical */
    assert_string_equal(c.auth.public_key_file, "/etc/oms/jwt.pub");
    assert_string_equal(c.auth.issuer, "oms");
    assert_string_equal(c.auth.audience, "oms-clients");
    assert_string_equal(c.kafka.brokers, "k1:9092,k2:9092");
    assert_string_equal(c.kafka.topic_orders, "t.orders");
    assert_string_equal(c.kafka.topic_inventory, "t.inventory");
    assert_string_equal(c.kafka.topic_notifications, "t.notifications");
    assert_string_equal(c.kafka.topic_dlq, "t.dlq");
    assert_string_equal(c.kafka.projection_group, "grp");
    assert_int_equal(c.kafka.nprops, 3);
    assert_string_equal(c.kafka.props[0].key, "client.id");
    assert_string_equal(c.kafka.props[0].value, "omsd-1");
    assert_string_equal(c.kafka.props[1].key, "enable.idempotence");
    assert_string_equal(c.kafka.props[1].value, "true");
    assert_string_equal(c.kafka.props[2].key, "linger.ms");
    assert_string_equal(c.kafka.props[2].value, "5");
    assert_string_equal(c.database.host, "db.local");
    assert_int_equal(c.database.port, 6543);
    assert_string_equal(c.database.user, "oms");
    assert_string_equal(c.database.password, "pw");
    assert_string_equal(c.database.name, "omsdb");
    assert_false(c.projections.enabled);
    assert_false(c.projections.migrate_on_start);
    assert_int_equal(c.projections.batch_size, 10);
    assert_int_equal(c.projections.batch_ms, 5);
    assert_string_equal(c.log.level, "warn");
    assert_string_equal(c.log.format, "json");
    assert_string_equal(c.schemas.dir, "");
    assert_int_equal(oms_config_validate(&c, err, sizeof err), 0);
    oms_config_free(&c);
}

/* A second file over a loaded config replaces (and frees) strings and
 * merges properties; LeakSanitizer checks the frees. */
static void test_reload_replaces_values(void **state)
{
    oms_config c;
    char err[ERRLEN];
    assert_int_equal(oms_config_defaults(&c), 0);
    assert_int_equal(load(&c, custom_yaml, err), 0);
    assert_int_equal(load(&c, custom_yaml, err), 0);
    assert_int_equal(load(&c,
                          "server:\n  host: h2\nkafka:\n  properties:\n"
                          "    linger.ms: \"50\"\n    acks: all\n",
                          err),
                     0);
    assert_string_equal(c.server.host, "h2");
    assert_int_equal(c.server.port, 8080); /* untouched keys stay */
    assert_int_equal(c.kafka.nprops, 4);
    assert_string_equal(c.kafka.props[2].key, "linger.ms");
    assert_string_equal(c.kafka.props[2].value, "50");
    assert_string_equal(c.kafka.props[3].key, "acks");
    assert_string_equal(c.kafka.props[3].value, "all");
    /* null means empty for strings */
    assert_int_equal(load(&c, "server:\n  tls_cert:\n  tls_key: ~\n", err), 0);
    assert_string_equal(c.server.tls_cert, "");
    assert_string_equal(c.server.tls_key, "");
    oms_config_free(&c);
}

static void test_error_leaves_config_unchanged(void **state)
{
    oms_config c, def;
    char err[ERRLEN];
    assert_int_equal(oms_config_defaults(&c), 0);
    assert_int_equal(oms_config_defaults(&def), 0);
    /* the good keys come before the bad one */
    assert_int_equal(load(&c,
                          "server:\n  host: changed\n  port: 1234\n"
                          "kafka:\n  properties: {a: b}\n  brokers: [x]\n",
                          err),
                     OMS_ECONFIG);
    assert_string_equal(err, "x.yaml:6: kafka.brokers: expected a single value, got a sequence");
    assert_config_equal(&c, &def);
    oms_config_free(&c);
    oms_config_free(&def);
}

static void test_missing_file(void **state)
{
    oms_config c;
    char err[ERRLEN];
    assert_int_equal(oms_config_defaults(&c), 0);
    assert_int_equal(oms_config_load_file(&c, "no/such/omsd.yaml", err, sizeof err), OMS_EIO);
    assert_non_null(strstr(err, "'no/such/omsd.yaml'"));
    oms_config_free(&c);
}

/* ---- error kinds ---------------------------------------------------------- */

static void test_unknown_key(void **state)
{
    expect_error("server:\n  host: x\n  prot: 80\n",
                 "x.yaml:3: unknown key 'server.prot' (did you mean 'server.port'?)");
    expect_error("# comment\nsever:\n  port: 1\n",
                 "x.yaml:2: unknown key 'sever' (did you mean 'server'?)");
    expect_error("log:\n  level: info\nfoo: 1\n", "x.yaml:3: unknown key 'foo'");
    /* right key, wrong section */
    expect_error("server:\n  brokers: x\n",
                 "x.yaml:2: unknown key 'server.brokers' (did you mean 'kafka.brokers'?)");
    /* dotted keys are not nesting */
    expect_error_has("kafka.brokers: x\n", "x.yaml:1: unknown key 'kafka.brokers'", "nested");
    expect_error("kafka:\n  topics:\n    order: x\n",
                 "x.yaml:3: unknown key 'kafka.topics.order' (did you mean "
                 "'kafka.topics.orders'?)");
}

static void test_wrong_type(void **state)
{
    expect_error("server:\n  port: abc\n",
                 "x.yaml:2: server.port: expected an integer between 1 and 65535, got 'abc'");
    expect_error("server:\n  port: \"12x\"\n",
                 "x.yaml:2: server.port: expected an integer between 1 and 65535, got '12x'");
    expect_error("server:\n  port: 1.5\n",
                 "x.yaml:2: server.port: expected an integer between 1 and 65535, got '1.5'");
    expect_error("server:\n  port:\n",
                 "x.yaml:2: server.port: expected an integer between 1 and 65535, got nothing");
    expect_error("projections:\n  enabled: maybe\n",
                 "x.yaml:2: projections.enabled: expected true or false (or yes/no, on/off), "
                 "got 'maybe'");
    expect_error("\n\nserver:\n  max_frame_bytes: 1MB\n",
                 "x.yaml:4: server.max_frame_bytes: expected an integer between 1 and "
                 "1073741824, got '1MB'");
}

static void test_out_of_range(void **state)
{
    expect_error("server:\n  port: 70000\n",
                 "x.yaml:2: server.port: expected an integer between 1 and 65535, got '70000'");
    expect_error("database:\n  port: 0\n",
                 "x.yaml:2: database.port: expected an integer between 1 and 65535, got '0'");
    expect_error_has("server:\n  queue_limit: -5\n", "x.yaml:2: server.queue_limit:", "'-5'");
    expect_error_has("server:\n  max_frame_bytes: 99999999999999999999999\n",
                     "x.yaml:2: server.max_frame_bytes:", "between 1 and");
}

static void test_bad_enum(void **state)
{
    expect_error("log:\n  level: verbose\n",
                 "x.yaml:2: log.level: expected one of debug, info, warn, error, got 'verbose'");
    expect_error("log:\n  format: xml\n",
                 "x.yaml:2: log.format: expected one of auto, json, text, got 'xml'");
    expect_error("auth:\n  algorithm: none\n",
                 "x.yaml:2: auth.algorithm: expected one of HS256, RS256, ES256, got 'none'");
}

static void test_syntax_error(void **state)
{
    /* an unterminated quote: reported where the stream ends, with the
     * line where the scalar started */
    expect_error_has("server:\n  host: \"unterminated\n", "x.yaml:3:1: ",
                     "quoted scalar at line 2");
    expect_error_has("server:\n  port: 3000\n bad: x\n", "x.yaml:3:2: ", NULL);
    expect_error_has("a: b: c\n", "x.yaml:1:5: ", "mapping values are not allowed");
    expect_error_has("server:\n\tport: 1\n", "x.yaml:2:1: ", "tabs");
    /* invalid UTF-8 is a reader error, reported by line */
    expect_error_has("server:\n  host: \"\xff\"\n", "x.yaml:2: ", "UTF-8");
    expect_error_has("server: {}\n---\nlog: {}\n", "x.yaml:2: ", "one YAML document");
    expect_error_has("- a\n", "x.yaml:1: ", "expected a mapping");
    expect_error_has("server:\n  host: !!str x\n", "x.yaml:2:9: ", "tags are not supported");
}

static void test_alias_rejected(void **state)
{
    expect_error_has("server:\n  host: &h x\n  web_root: *h\n", "x.yaml:2:9: ",
                     "anchors and aliases are not supported (found anchor '&h')");
    expect_error_has("server:\n  host: x\n  web_root: *h\n", "x.yaml:3:13: ",
                     "(found alias '*h')");
    expect_error_has("base: &b {port: 1}\nserver:\n  <<: *b\n", "x.yaml:1:7: ", "anchor");
}

static void test_duplicate_key(void **state)
{
    expect_error("server:\n  port: 1\n  host: x\n  port: 2\n",
                 "x.yaml:4: duplicate key 'port' (first at line 2)");
    expect_error("server: {}\nlog: {}\nserver: {}\n",
                 "x.yaml:3: duplicate key 'server' (first at line 1)");
}

static void test_shape_mismatch(void **state)
{
    expect_error("server:\n  port: [1, 2]\n",
                 "x.yaml:2: server.port: expected a single value, got a sequence");
    expect_error("server:\n  host:\n    name: x\n",
                 "x.yaml:3: server.host: expected a single value, got a mapping");
    expect_error("server: 3000\n", "x.yaml:1: server: expected a mapping of keys, got '3000'");
    expect_error("kafka:\n  topics: [a]\n",
                 "x.yaml:2: kafka.topics: expected a mapping of keys, got a sequence");
    expect_error("kafka:\n  properties: [a]\n",
                 "x.yaml:2: kafka.properties: expected a mapping of librdkafka properties, got "
                 "a sequence");
    expect_error("kafka:\n  properties:\n    client.id: {a: b}\n",
                 "x.yaml:3: kafka.properties.client.id: expected a value, got a mapping");
    expect_error("kafka:\n  properties:\n    client.id:\n",
                 "x.yaml:3: kafka.properties.client.id: expected a value, got nothing");
}

static void test_too_many_properties(void **state)
{
    char yaml[8192];
    size_t o = (size_t)snprintf(yaml, sizeof yaml, "kafka:\n  properties:\n");
    for (int i = 0; i < OMS_CONFIG_MAX_PROPS; i++)
        o += (size_t)snprintf(yaml + o, sizeof yaml - o, "    p%d: v%d\n", i, i);

    oms_config c;
    char err[ERRLEN];
    assert_int_equal(oms_config_defaults(&c), 0);
    if (load(&c, yaml, err) != 0) /* exactly the maximum is fine */
        fail_msg("%s", err);
    assert_int_equal(c.kafka.nprops, OMS_CONFIG_MAX_PROPS);
    oms_config_free(&c);

    snprintf(yaml + o, sizeof yaml - o, "    one.more: x\n");
    char want[128];
    snprintf(want, sizeof want, "x.yaml:%d: kafka.properties: too many properties (at most %d)",
             OMS_CONFIG_MAX_PROPS + 3, OMS_CONFIG_MAX_PROPS);
    expect_error(yaml, want);
}

/* ---- environment ------------------------------------------------------------ */

static const char *const *fake_env;

static char *fake_getenv(const char *name)
{
    for (const char *const *e = fake_env; e && *e; e += 2)
        if (strcmp(e[0], name) == 0)
            return (char *)e[1];
    return NULL;
}

static void test_env_overrides(void **state)
{
    static const char *const env[] = {
        "JWT_SECRET", "0123456789abcdef0123456789abcdef",
        "CORS_ORIGIN", "https://x.example,https://y.example",
        "DATABASE_HOST", "pg.internal",
        "DATABASE_PORT", "15432",
        "DATABASE_USER", "app",
        "DATABASE_PASSWORD", "hunter2",
        "DATABASE_NAME", "orders",
        "KAFKA_BROKERS", "b1:9092,b2:9092",
        "PORT", "8443",
        "LOG_LEVEL", "DEBUG",
        "RESUME_TOKEN_SECRET", "resume-token-secret-0123",
        NULL,
    };
    oms_config c;
    char err[ERRLEN];
    assert_int_equal(oms_config_defaults(&c), 0);
    /* the environment wins over the file */
    assert_int_equal(load(&c, "server:\n  port: 4000\nlog:\n  level: error\n", err), 0);
    fake_env = env;
    assert_int_equal(oms_config_apply_env(&c, fake_getenv, err, sizeof err), 0);
    assert_string_equal(c.auth.jwt_secret, "0123456789abcdef0123456789abcdef");
    assert_string_equal(c.server.cors_origin, "https://x.example,https://y.example");
    assert_string_equal(c.database.host, "pg.internal");
    assert_int_equal(c.database.port, 15432);
    assert_string_equal(c.database.user, "app");
    assert_string_equal(c.database.password, "hunter2");
    assert_string_equal(c.database.name, "orders");
    assert_string_equal(c.kafka.brokers, "b1:9092,b2:9092");
    assert_int_equal(c.server.port, 8443);
    assert_string_equal(c.log.level, "debug");
    assert_string_equal(c.resume.token_secret, "resume-token-secret-0123");
    /* applying again replaces (and frees) the same strings */
    assert_int_equal(oms_config_apply_env(&c, fake_getenv, err, sizeof err), 0);
    oms_config_free(&c);
}

static void test_env_empty_and_unset_ignored(void **state)
{
    static const char *const env[] = {"PORT", "", "KAFKA_BROKERS", "", NULL};
    oms_config c, def;
    char err[ERRLEN];
    assert_int_equal(oms_config_defaults(&c), 0);
    assert_int_equal(oms_config_defaults(&def), 0);
    fake_env = env;
    assert_int_equal(oms_config_apply_env(&c, fake_getenv, err, sizeof err), 0);
    fake_env = NULL;
    assert_int_equal(oms_config_apply_env(&c, fake_getenv, err, sizeof err), 0);
    assert_config_equal(&c, &def);
    oms_config_free(&c);
    oms_config_free(&def);
}

static void expect_env_error(const char *var, const char *value, const char *want)
{
    const char *env[] = {"JWT_SECRET", "changed-before-the-error", var, value, NULL};
    oms_config c, def;
    char err[ERRLEN] = "";
    assert_int_equal(oms_config_defaults(&c), 0);
    assert_int_equal(oms_config_defaults(&def), 0);
    fake_env = env;
    assert_int_equal(oms_config_apply_env(&c, fake_getenv, err, sizeof err), OMS_ECONFIG);
    fake_env = NULL;
    assert_string_equal(err, want);
    assert_config_equal(&c, &def); /* nothing applied */
    oms_config_free(&c);
    oms_config_free(&def);
}

static void test_env_bad_values(void **state)
{
    expect_env_error("PORT", "abc", "PORT: expected an integer between 1 and 65535, got 'abc'");
    expect_env_error("PORT", "65536",
                     "PORT: expected an integer between 1 and 65535, got '65536'");
    expect_env_error("PORT", " 80", "PORT: expected an integer between 1 and 65535, got ' 80'");
    expect_env_error("DATABASE_PORT", "5432x",
                     "DATABASE_PORT: expected an integer between 1 and 65535, got '5432x'");
    expect_env_error("LOG_LEVEL", "loud",
                     "LOG_LEVEL: expected one of debug, info, warn, error, got 'loud'");
}

/* ---- validation -------------------------------------------------------------- */

static void expect_invalid(const char *yaml, const char *want)
{
    oms_config c;
    char err[ERRLEN] = "";
    assert_int_equal(oms_config_defaults(&c), 0);
    if (load(&c, yaml, err) != 0)
        fail_msg("load: %s", err);
    assert_int_equal(oms_config_validate(&c, err, sizeof err), OMS_ECONFIG);
    assert_string_equal(err, want);
    oms_config_free(&c);
}

static void test_validate(void **state)
{
    expect_invalid("server:\n  tls_cert: c.pem\n",
                   "server.tls_cert is set but server.tls_key is not: TLS needs both");
    expect_invalid("server:\n  tls_key: k.pem\n",
                   "server.tls_key is set but server.tls_cert is not: TLS needs both");
    expect_invalid("auth:\n  algorithm: RS256\n", "auth.algorithm RS256 needs auth.public_key_file");
    expect_invalid("auth:\n  algorithm: ES256\n", "auth.algorithm ES256 needs auth.public_key_file");
    expect_invalid("server:\n  ping_interval_s: 60\n",
                   "server.ping_interval_s (60) must be less than server.idle_timeout_s (60)");
    expect_invalid("kafka:\n  brokers: \"\"\n",
                   "kafka.brokers (or KAFKA_BROKERS): must not be empty");
    expect_invalid("database:\n  name:\n", "database.name (or DATABASE_NAME): must not be empty");
    expect_invalid("kafka:\n  topics:\n    dlq: \"bad topic\"\n",
                   "kafka.topics.dlq: 'bad topic' is not a valid Kafka topic name (1 to 249 of "
                   "a-z A-Z 0-9 . _ -)");
    expect_invalid("kafka:\n  topics:\n    dlq: oms.orders\n",
                   "kafka.topics.orders and kafka.topics.dlq name the same topic 'oms.orders'");
    expect_invalid("resume:\n  token_secret: tooshort\n",
                   "resume.token_secret: 8 bytes; at least 16 are required (or leave it empty "
                   "to derive it from auth.jwt_secret)");
    expect_invalid("kafka:\n  projection_group: \"\"\n",
                   "kafka.projection_group: must not be empty when projections are enabled");

    /* set by code, not loaded: the ranges still hold */
    oms_config c;
    char err[ERRLEN];
    assert_int_equal(oms_config_defaults(&c), 0);
    c.server.port = 0;
    assert_int_equal(oms_config_validate(&c, err, sizeof err), OMS_ECONFIG);
    assert_string_equal(err, "server.port: expected an integer between 1 and 65535, got '0'");
    c.server.port = 3000;
    free(c.log.level);
    c.log.level = strdup("loud");
    assert_int_equal(oms_config_validate(&c, err, sizeof err), OMS_ECONFIG);
    assert_string_equal(err, "log.level: expected one of debug, info, warn, error, got 'loud'");
    oms_config_free(&c);

    /* RS256 with a key file and TLS with both files are fine */
    assert_int_equal(oms_config_defaults(&c), 0);
    assert_int_equal(load(&c,
                          "auth:\n  algorithm: ES256\n  public_key_file: k.pub\n"
                          "server:\n  tls_cert: c\n  tls_key: k\n",
                          err),
                     0);
    assert_int_equal(oms_config_validate(&c, err, sizeof err), 0);
    oms_config_free(&c);
}

/* ---- secrets from files, database connection keys ------------------------------ */

static char secret_dir[64];

/* A file in secret_dir holding len bytes of content; returns its path. */
static const char *secret_file(const char *name, const char *content, size_t len)
{
    static char path[8][128];
    static int next;
    char *p = path[next++ % 8];
    snprintf(p, 128, "%s/%s", secret_dir, name);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(content, 1, len, f), len);
    fclose(f);
    return p;
}

static int secrets_setup(void **state)
{
    snprintf(secret_dir, sizeof secret_dir, "%s/oms-test-secrets-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    return mkdtemp(secret_dir) ? 0 : -1;
}

static int secrets_teardown(void **state)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", secret_dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* apply_env with env on fresh defaults after yaml; expects rc. */
static int env_on(oms_config *c, const char *yaml, const char *const *env, char *err)
{
    assert_int_equal(oms_config_defaults(c), 0);
    if (yaml && load(c, yaml, err) != 0)
        return -100;
    fake_env = env;
    int rc = oms_config_apply_env(c, fake_getenv, err, ERRLEN);
    fake_env = NULL;
    return rc;
}

/* schema_registry.*: the keys, their SCHEMA_REGISTRY_* overrides, the
 * password file, and the checks of omsd -t */
static void test_schema_registry(void **state)
{
    const char *pw = secret_file("srpw", "s3cret\n", 7);
    oms_config c;
    char err[ERRLEN];
    assert_int_equal(env_on(&c,
                            "schema_registry:\n  url: http://file:8081\n  username: f\n"
                            "  timeout_ms: 1500\n",
                            NULL, err),
                     0);
    assert_string_equal(c.schema_registry.url, "http://file:8081");
    assert_int_equal(c.schema_registry.timeout_ms, 1500);
    oms_config_free(&c);
    const char *env[] = {"SCHEMA_REGISTRY_URL", "https://sr.internal/apis/ccompat/v7",
                         "SCHEMA_REGISTRY_USERNAME", "omsd", "SCHEMA_REGISTRY_PASSWORD_FILE", pw,
                         "SCHEMA_REGISTRY_CA_FILE", "/etc/ca.pem", NULL};
    assert_int_equal(env_on(&c, "schema_registry:\n  url: http://file:8081\n", env, err), 0);
    assert_string_equal(c.schema_registry.url, "https://sr.internal/apis/ccompat/v7");
    assert_string_equal(c.schema_registry.username, "omsd");
    assert_string_equal(c.schema_registry.password, "s3cret");
    assert_string_equal(c.schema_registry.ca_file, "/etc/ca.pem");
    assert_int_equal(c.schema_registry.timeout_ms, 5000);
    assert_int_equal(oms_config_validate(&c, err, sizeof err), 0);
    oms_config_free(&c);
    const char *both[] = {"SCHEMA_REGISTRY_PASSWORD", "x", "SCHEMA_REGISTRY_PASSWORD_FILE", pw,
                          NULL};
    assert_int_equal(env_on(&c, NULL, both, err), OMS_ECONFIG);
    assert_non_null(strstr(err, "are both set"));
    oms_config_free(&c);
    assert_int_equal(env_on(&c, "schema_registry:\n  url: registry:8081\n", NULL, err), 0);
    assert_int_equal(oms_config_validate(&c, err, sizeof err), OMS_ECONFIG);
    assert_non_null(strstr(err, "schema_registry.url: expected an http:// or https:// URL"));
    oms_config_free(&c);
    assert_int_equal(env_on(&c, "schema_registry:\n  password: p\n", NULL, err), 0);
    assert_int_equal(oms_config_validate(&c, err, sizeof err), OMS_ECONFIG);
    assert_non_null(strstr(err, "basic auth needs both"));
    oms_config_free(&c);
    assert_int_not_equal(env_on(&c, "schema_registry:\n  timeout_ms: 5\n", NULL, err), 0);
    oms_config_free(&c);
}

static void test_secret_files(void **state)
{
    const char *jwt = secret_file("jwt", "0123456789abcdef0123456789abcdef\n", 33);
    const char *pw = secret_file("pw", "p@ss word\r\n\n", 12);
    oms_config c;
    char err[ERRLEN];

    /* from the environment, trailing newlines stripped */
    const char *env[] = {"JWT_SECRET_FILE", jwt, "DATABASE_PASSWORD_FILE", pw, NULL};
    assert_int_equal(env_on(&c, NULL, env, err), 0);
    assert_string_equal(c.auth.jwt_secret, "0123456789abcdef0123456789abcdef");
    assert_string_equal(c.auth.jwt_secret_file, jwt);
    assert_string_equal(c.database.password, "p@ss word");
    assert_string_equal(c.database.password_file, pw);
    assert_int_equal(oms_config_validate(&c, err, sizeof err), 0);
    /* applying again reads again */
    assert_int_equal(oms_config_apply_env(&c, fake_getenv, err, sizeof err), 0);
    assert_string_equal(c.auth.jwt_secret, "0123456789abcdef0123456789abcdef");
    oms_config_free(&c);

    /* from the file's keys */
    char yaml[512];
    snprintf(yaml, sizeof yaml, "auth:\n  jwt_secret_file: %s\ndatabase:\n  password_file: %s\n",
             jwt, pw);
    assert_int_equal(env_on(&c, yaml, NULL, err), 0);
    assert_string_equal(c.auth.jwt_secret, "0123456789abcdef0123456789abcdef");
    assert_string_equal(c.database.password, "p@ss word");
    oms_config_free(&c);

    /* a secret without a final newline is kept whole; inner newlines stay */
    const char *raw = secret_file("raw", "a\nb", 3);
    const char *env2[] = {"JWT_SECRET_FILE", raw, NULL};
    assert_int_equal(env_on(&c, NULL, env2, err), 0);
    assert_string_equal(c.auth.jwt_secret, "a\nb");
    oms_config_free(&c);
}

/* The error is exactly want (with %s for the path), nothing changed, and
 * the file's content appears nowhere in the message. */
static void expect_secret_error(const char *var, const char *path, const char *want_fmt,
                                const char *content)
{
    const char *env[] = {"PORT", "4000", var, path, NULL};
    oms_config c, def;
    char err[ERRLEN] = "", want[ERRLEN];
    assert_int_equal(oms_config_defaults(&def), 0);
    assert_int_equal(env_on(&c, NULL, env, err), OMS_ECONFIG);
    snprintf(want, sizeof want, want_fmt, path);
    assert_string_equal(err, want);
    if (content && strstr(err, content))
        fail_msg("the secret leaked into '%s'", err);
    assert_config_equal(&c, &def);
    oms_config_free(&c);
    oms_config_free(&def);
}

static void test_secret_file_errors(void **state)
{
    char missing[128];
    snprintf(missing, sizeof missing, "%s/missing", secret_dir);
    expect_secret_error("JWT_SECRET_FILE", missing,
                        "JWT_SECRET_FILE: cannot read '%s': No such file or directory", NULL);
    expect_secret_error("DATABASE_PASSWORD_FILE", secret_file("empty", "", 0),
                        "DATABASE_PASSWORD_FILE: '%s' is empty", NULL);
    expect_secret_error("JWT_SECRET_FILE", secret_file("newlines", "\n\r\n", 3),
                        "JWT_SECRET_FILE: '%s' is empty", NULL);
    expect_secret_error("JWT_SECRET_FILE", secret_dir, "JWT_SECRET_FILE: cannot read '%s': Is a "
                                                       "directory", NULL);
    expect_secret_error("JWT_SECRET_FILE", secret_file("nul", "TOPSECRET\0x", 11),
                        "JWT_SECRET_FILE: '%s' contains a NUL byte", "TOPSECRET");
    static char big[70000];
    memset(big, 'S', sizeof big);
    memcpy(big, "TOPSECRET", 9);
    expect_secret_error("JWT_SECRET_FILE", secret_file("big", big, sizeof big),
                        "JWT_SECRET_FILE: '%s' is larger than 65536 bytes: not a secret",
                        "TOPSECRET");
    if (geteuid() != 0) { /* root reads anything */
        const char *locked = secret_file("locked", "TOPSECRET", 9);
        chmod(locked, 0);
        expect_secret_error("JWT_SECRET_FILE", locked,
                            "JWT_SECRET_FILE: cannot read '%s': Permission denied", "TOPSECRET");
    }

    /* a key in the file names the key */
    oms_config c;
    char err[ERRLEN], yaml[256], want[ERRLEN];
    snprintf(yaml, sizeof yaml, "database:\n  password_file: %s\n", missing);
    assert_int_equal(env_on(&c, yaml, NULL, err), OMS_ECONFIG);
    snprintf(want, sizeof want,
             "database.password_file: cannot read '%s': No such file or directory", missing);
    assert_string_equal(err, want);
    oms_config_free(&c);
}

static void test_secret_precedence(void **state)
{
    const char *jwt = secret_file("jwt2", "from-the-file-from-the-file-0123\n", 33);
    oms_config c;
    char err[ERRLEN], yaml[256], missing[128];
    snprintf(missing, sizeof missing, "%s/missing", secret_dir);

    /* both at one level: an error */
    const char *both[] = {"JWT_SECRET", "x", "JWT_SECRET_FILE", jwt, NULL};
    assert_int_equal(env_on(&c, NULL, both, err), OMS_ECONFIG);
    assert_string_equal(err, "JWT_SECRET and JWT_SECRET_FILE are both set: keep one");
    oms_config_free(&c);
    const char *both_pw[] = {"DATABASE_PASSWORD", "x", "DATABASE_PASSWORD_FILE", jwt, NULL};
    assert_int_equal(env_on(&c, NULL, both_pw, err), OMS_ECONFIG);
    assert_string_equal(err, "DATABASE_PASSWORD and DATABASE_PASSWORD_FILE are both set: keep one");
    oms_config_free(&c);
    snprintf(yaml, sizeof yaml, "auth:\n  jwt_secret: abc\n  jwt_secret_file: %s\n", jwt);
    assert_int_equal(oms_config_defaults(&c), 0);
    assert_int_equal(load(&c, yaml, err), OMS_ECONFIG);
    assert_string_equal(err, "x.yaml:3: auth.jwt_secret and auth.jwt_secret_file are both set: "
                             "keep one");
    oms_config_free(&c);

    /* the environment's secret replaces the file's key: the file is not read */
    snprintf(yaml, sizeof yaml, "auth:\n  jwt_secret_file: %s\n", missing);
    const char *val[] = {"JWT_SECRET", "from-the-environment-0123456789ab", NULL};
    assert_int_equal(env_on(&c, yaml, val, err), 0);
    assert_string_equal(c.auth.jwt_secret, "from-the-environment-0123456789ab");
    assert_string_equal(c.auth.jwt_secret_file, "");
    oms_config_free(&c);

    /* the environment's file replaces the file's secret */
    const char *file[] = {"JWT_SECRET_FILE", jwt, NULL};
    assert_int_equal(env_on(&c, "auth:\n  jwt_secret: in-the-yaml\n", file, err), 0);
    assert_string_equal(c.auth.jwt_secret, "from-the-file-from-the-file-0123");

    /* a second file replaces the first one's other key */
    assert_int_equal(load(&c, "auth:\n  jwt_secret: second-file\n", err), 0);
    assert_string_equal(c.auth.jwt_secret_file, "");
    assert_string_equal(c.auth.jwt_secret, "second-file");
    oms_config_free(&c);
}

static void test_database_connection_keys(void **state)
{
    oms_config c;
    char err[ERRLEN];
    assert_int_equal(oms_config_defaults(&c), 0);
    assert_int_equal(load(&c,
                          "database:\n"
                          "  url: \"postgresql://omsd@pg.internal:5433/oms?application_name=x\"\n"
                          "  sslmode: verify-full\n"
                          "  sslrootcert: /etc/oms/pg-ca.crt\n"
                          "  params:\n"
                          "    sslcert: /etc/oms/pg.crt\n"
                          "    target_session_attrs: read-write\n"
                          "    connect_timeout: 7\n"
                          "  host: \"\"\n",
                          err),
                     0);
    assert_string_equal(c.database.url, "postgresql://omsd@pg.internal:5433/oms?application_name=x");
    assert_string_equal(c.database.sslmode, "verify-full");
    assert_string_equal(c.database.sslrootcert, "/etc/oms/pg-ca.crt");
    assert_int_equal(c.database.nparams, 3);
    assert_string_equal(c.database.params[0].key, "sslcert");
    assert_string_equal(c.database.params[2].key, "connect_timeout");
    assert_string_equal(c.database.params[2].value, "7");
    /* the URL names the server: an empty host is fine then */
    assert_int_equal(oms_config_validate(&c, err, sizeof err), 0);
    /* a second file merges params */
    assert_int_equal(load(&c, "database:\n  params:\n    connect_timeout: 9\n", err), 0);
    assert_int_equal(c.database.nparams, 3);
    assert_string_equal(c.database.params[2].value, "9");
    /* DATABASE_URL wins over the file */
    const char *env[] = {"DATABASE_URL", "host=other dbname=x", NULL};
    fake_env = env;
    assert_int_equal(oms_config_apply_env(&c, fake_getenv, err, sizeof err), 0);
    fake_env = NULL;
    assert_string_equal(c.database.url, "host=other dbname=x");
    oms_config_free(&c);

    expect_invalid("database:\n  sslmode: verify_full\n",
                   "database.sslmode: expected one of disable, allow, prefer, require, verify-ca, "
                   "verify-full, got 'verify_full'");
    expect_invalid("database:\n  host: \"\"\n",
                   "database.host (or DATABASE_HOST): must not be empty");
    expect_error("database:\n  params: [a, b]\n",
                 "x.yaml:2: database.params: expected a mapping of libpq connection parameters, "
                 "got a sequence");
    expect_error("database:\n  params:\n    sslmode: [a]\n",
                 "x.yaml:3: database.params.sslmode: expected a value, got a sequence");
}

/* ---- topics.yaml ------------------------------------------------------------- */

static void test_topics_shipped_file(void **state)
{
    oms_topic_list tl;
    char err[ERRLEN] = "";
    int rc = oms_topics_load_file(&tl, "configs/topics.yaml", err, sizeof err);
    if (rc)
        fail_msg("configs/topics.yaml: %s", err);
    assert_int_equal(tl.count, 5);
    const char *names[] = {"oms.orders", "oms.inventory", "oms.notifications", "oms.dlq"};
    for (size_t i = 0; i < 4; i++) {
        assert_string_equal(tl.topics[i].name, names[i]);
        assert_int_equal(tl.topics[i].partitions, 6);
        assert_int_equal(tl.topics[i].replication_factor, 1);
    }
    assert_int_equal(tl.topics[0].nconfigs, 0);
    assert_int_equal(tl.topics[3].nconfigs, 1);
    assert_string_equal(tl.topics[3].configs[0].key, "retention.ms");
    assert_string_equal(tl.topics[3].configs[0].value, "1209600000");
    /* presence: one compacted partition */
    assert_string_equal(tl.topics[4].name, "oms.presence");
    assert_int_equal(tl.topics[4].partitions, 1);
    assert_int_equal(tl.topics[4].nconfigs, 1);
    assert_string_equal(tl.topics[4].configs[0].key, "cleanup.policy");
    assert_string_equal(tl.topics[4].configs[0].value, "compact");

    /* the topic names match omsd.yaml's defaults */
    oms_config c;
    assert_int_equal(oms_config_defaults(&c), 0);
    assert_string_equal(tl.topics[0].name, c.kafka.topic_orders);
    assert_string_equal(tl.topics[1].name, c.kafka.topic_inventory);
    assert_string_equal(tl.topics[2].name, c.kafka.topic_notifications);
    assert_string_equal(tl.topics[3].name, c.kafka.topic_dlq);
    assert_string_equal(tl.topics[4].name, c.kafka.topic_presence);
    oms_config_free(&c);
    oms_topics_free(&tl);
    assert_null(tl.topics);
    assert_int_equal(tl.count, 0);
}

static int load_topics(oms_topic_list *tl, const char *yaml, char *err)
{
    err[0] = '\0';
    return oms_topics_load_string(tl, yaml, strlen(yaml), "t.yaml", err, ERRLEN);
}

static void test_topics_defaults_and_merge(void **state)
{
    oms_topic_list tl;
    char err[ERRLEN];
    const char *yaml = "topics:\n"
                       "  - name: a\n"
                       "  - name: b\n"
                       "    partitions: 12\n"
                       "    replication_factor: \"3\"\n"
                       "    configs:\n"
                       "      cleanup.policy: compact\n"
                       "      min.insync.replicas: 2\n"
                       "defaults:\n"
                       "  partitions: 3\n"
                       "  replication_factor: 2\n"
                       "  configs: {cleanup.policy: delete, retention.ms: \"1000\"}\n";
    if (load_topics(&tl, yaml, err) != 0)
        fail_msg("%s", err);
    assert_int_equal(tl.count, 2);
    assert_string_equal(tl.topics[0].name, "a");
    assert_int_equal(tl.topics[0].partitions, 3);
    assert_int_equal(tl.topics[0].replication_factor, 2);
    assert_int_equal(tl.topics[0].nconfigs, 2);
    assert_string_equal(tl.topics[0].configs[0].key, "cleanup.policy");
    assert_string_equal(tl.topics[0].configs[0].value, "delete");
    assert_int_equal(tl.topics[1].partitions, 12);
    assert_int_equal(tl.topics[1].replication_factor, 3);
    assert_int_equal(tl.topics[1].nconfigs, 3);
    assert_string_equal(tl.topics[1].configs[0].value, "compact"); /* topic wins */
    assert_string_equal(tl.topics[1].configs[1].key, "retention.ms");
    assert_string_equal(tl.topics[1].configs[2].key, "min.insync.replicas");
    assert_string_equal(tl.topics[1].configs[2].value, "2");
    oms_topics_free(&tl);

    /* empty file: no topics */
    assert_int_equal(load_topics(&tl, "# nothing\n", err), 0);
    assert_int_equal(tl.count, 0);
    oms_topics_free(&tl);
}

static void expect_topics_error(const char *yaml, const char *want)
{
    oms_topic_list tl;
    char err[ERRLEN];
    int rc = load_topics(&tl, yaml, err);
    if (rc != OMS_ECONFIG)
        fail_msg("expected OMS_ECONFIG for:\n%s\ngot %d (%s)", yaml, rc, err);
    assert_string_equal(err, want);
    assert_null(tl.topics);
    assert_int_equal(tl.count, 0);
}

static void test_topics_errors(void **state)
{
    expect_topics_error("defaults:\n  partitons: 3\n",
                        "t.yaml:2: unknown key 'partitons' in defaults (did you mean "
                        "'partitions'?)");
    expect_topics_error("topic:\n  - name: a\n",
                        "t.yaml:1: unknown key 'topic' (did you mean 'topics'?)");
    expect_topics_error("topics:\n  - name: a\n  - partitions: 3\n",
                        "t.yaml:3: topics[1]: missing 'name'");
    expect_topics_error("topics:\n  - name: a\n    partitions: 0\n",
                        "t.yaml:3: topics[0].partitions: expected an integer between 1 and "
                        "100000, got '0'");
    expect_topics_error("topics:\n  - name: a\n  - name: b\n  - name: a\n",
                        "t.yaml:4: topics[2]: topic 'a' is listed twice");
    expect_topics_error("topics:\n  - name: \"a b\"\n",
                        "t.yaml:2: topics[0].name: expected a Kafka topic name (1 to 249 of "
                        "a-z A-Z 0-9 . _ -), got 'a b'");
    expect_topics_error("topics:\n  name: a\n",
                        "t.yaml:2: topics: expected a sequence of topics (- name: ...), got a "
                        "mapping");
    expect_topics_error("topics:\n  - oms.orders\n",
                        "t.yaml:2: topics[0]: expected a mapping (name:, partitions:, ...), got "
                        "'oms.orders'");
    expect_topics_error("topics:\n  - name: a\n    configs: [x]\n",
                        "t.yaml:3: topics[0].configs: expected a mapping of topic configs, got "
                        "a sequence");
    expect_topics_error("topics:\n  - name: a\n    configs:\n      retention.ms:\n",
                        "t.yaml:4: topics[0].configs.retention.ms: expected a value, got "
                        "nothing");
    expect_topics_error("defaults:\n  replication_factor: many\n",
                        "t.yaml:2: defaults.replication_factor: expected an integer between 1 "
                        "and 32767, got 'many'");
    expect_topics_error("topics:\n  - &t {name: a}\n",
                        "t.yaml:2:5: anchors and aliases are not supported (found anchor '&t')");

    char yaml[4096];
    size_t o = (size_t)snprintf(yaml, sizeof yaml, "topics:\n  - name: a\n    configs:\n");
    for (int i = 0; i <= OMS_TOPIC_MAX_CONFIGS; i++)
        o += (size_t)snprintf(yaml + o, sizeof yaml - o, "      c%d: v\n", i);
    char want[128];
    snprintf(want, sizeof want, "t.yaml:%d: topics[0].configs: too many configs (at most %d)",
             OMS_TOPIC_MAX_CONFIGS + 4, OMS_TOPIC_MAX_CONFIGS);
    expect_topics_error(yaml, want);

    oms_topic_list tl;
    char err[ERRLEN];
    assert_int_equal(oms_topics_load_file(&tl, "no/such/topics.yaml", err, sizeof err), OMS_EIO);
    assert_non_null(strstr(err, "'no/such/topics.yaml'"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_shipped_omsd_yaml_equals_defaults),
        cmocka_unit_test(test_empty_file_is_defaults),
        cmocka_unit_test(test_custom_file_sets_every_type),
        cmocka_unit_test(test_reload_replaces_values),
        cmocka_unit_test(test_error_leaves_config_unchanged),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_unknown_key),
        cmocka_unit_test(test_wrong_type),
        cmocka_unit_test(test_out_of_range),
        cmocka_unit_test(test_bad_enum),
        cmocka_unit_test(test_syntax_error),
        cmocka_unit_test(test_alias_rejected),
        cmocka_unit_test(test_duplicate_key),
        cmocka_unit_test(test_shape_mismatch),
        cmocka_unit_test(test_too_many_properties),
        cmocka_unit_test(test_env_overrides),
        cmocka_unit_test(test_schema_registry),
        cmocka_unit_test(test_env_empty_and_unset_ignored),
        cmocka_unit_test(test_env_bad_values),
        cmocka_unit_test(test_validate),
        cmocka_unit_test(test_secret_files),
        cmocka_unit_test(test_secret_file_errors),
        cmocka_unit_test(test_secret_precedence),
        cmocka_unit_test(test_database_connection_keys),
        cmocka_unit_test(test_topics_shipped_file),
        cmocka_unit_test(test_topics_defaults_and_merge),
        cmocka_unit_test(test_topics_errors),
    };
    return cmocka_run_group_tests(tests, secrets_setup, secrets_teardown);
}
