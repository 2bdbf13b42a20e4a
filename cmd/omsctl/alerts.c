/* alerts.c — `omsctl alerts status|test`: the Sentry and e-mail notices of
 * DESIGN §3.8 from the operator's side. Both read the same configuration
 * and environment as omsd (SENTRY_DSN, EMAIL_*, ORDER_NOTIFICATION_RECIPIENTS). */
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "alert/alert.h"
#include "ctl.h"
#include "json/json.h"
#include "pg/pg.h"

static void alerts_help(FILE *out)
{
    fprintf(out,
            "usage: omsctl alerts status [--json] [--config FILE]\n"
            "       omsctl alerts test [--json] [--config FILE]\n"
            "\n"
            "omsd reports each new order (alerts.rules) to Sentry and by e-mail, once,\n"
            "folding bursts over alerts.max_per_minute into digests; its own errors go to\n"
            "Sentry too.\n"
            "\n"
            "status: the configured sinks (never a key or password), the rules, and what\n"
            "        Postgres recorded: notices sent, waiting, folded, digests.\n"
            "test:   send a test notice to every configured sink now and say what\n"
            "        happened to each (a wrong Sentry key, a refused login, no STARTTLS).\n"
            "\n"
            "options:\n"
            "  --json             machine-readable output\n"
            "  --config FILE      configuration file (default: $OMS_CONFIG, none)\n"
            "  -h, --help         this help\n"
            "\n"
            "Environment (as omsd): SENTRY_DSN, SENTRY_ENVIRONMENT,\n"
            "EMAIL_NOTIFICATIONS_ENABLED, EMAIL_HOST, EMAIL_PORT, EMAIL_USER,\n"
            "EMAIL_PASSWORD or EMAIL_PASSWORD_FILE, EMAIL_TLS (starttls|tls|none; default by\n"
            "port: 465 tls, else starttls), EMAIL_FROM, ORDER_NOTIFICATION_RECIPIENTS; the\n"
            "database as for 'omsctl projections'.\n"
            "exit status: 0 ok, 1 a sink or postgres failed, 2 usage or configuration\n");
}

static json_t *config_json(const oms_config *cfg, const oms_alert_settings *s)
{
    json_t *sentry = s->sentry ? json_pack("{s:b,s:s,s:s}", "configured", 1, "target",
                                           s->sentry_where, "environment",
                                           cfg->alerts.sentry_environment)
                               : json_pack("{s:b}", "configured", 0);
    json_t *email = json_pack("{s:b}", "configured", s->email);
    if (s->email) {
        json_object_set_new(email, "host", json_string(cfg->alerts.email_host));
        json_object_set_new(email, "port", json_integer(cfg->alerts.email_port));
        json_object_set_new(email, "tls", json_string(oms_smtp_tls_name(s->tls)));
        json_object_set_new(email, "from", json_string(s->from));
        json_object_set_new(email, "auth", json_boolean(*cfg->alerts.email_user != '\0'));
        json_t *r = json_array();
        for (size_t i = 0; i < s->nrecipients; i++)
            json_array_append_new(r, json_string(s->recipients[i]));
        json_object_set_new(email, "recipients", r);
    }
    return json_pack("{s:b,s:s,s:s,s:i,s:i,s:b,s:o,s:o}", "notices", s->enabled, "group",
                     cfg->alerts.group, "rules", cfg->alerts.rules, "maxPerMinute",
                     cfg->alerts.max_per_minute, "digestIntervalSeconds",
                     cfg->alerts.digest_interval_s, "reportErrors",
                     s->sentry && cfg->alerts.report_errors, "sentry", sentry, "email", email);
}

static int status(const oms_config *cfg, const oms_alert_settings *s, bool json)
{
    json_t *j = config_json(cfg, s);
    int rc = OMS_EXIT_OK;
    char err[512];
    oms_pg *pg = oms_pg_connect(cfg, "omsctl", 5, err, sizeof err);
    oms_alert_counts c;
    int version = 0;
    if (!pg || oms_pg_schema_version(pg, &version, err, sizeof err) != OMS_OK ||
        (version >= 2 && oms_alert_store_counts(oms_pg_handle(pg), &c, err, sizeof err) != OMS_OK)) {
        json_object_set_new(j, "postgres", json_pack("{s:s,s:s}", "status", "down", "error", err));
        rc = OMS_EXIT_FAIL;
    } else if (version < 2) {
        json_object_set_new(j, "postgres", json_pack("{s:s,s:s}", "status", "up", "error",
                                                     "alert tables not created yet (start omsd "
                                                     "or run 'omsctl projections migrate')"));
    } else {
        json_t *p = json_pack("{s:s,s:I,s:I,s:I,s:I,s:I,s:I}", "status", "up", "sent",
                              (json_int_t)c.sent, "waiting", (json_int_t)c.pending, "folded",
                              (json_int_t)c.folded, "foldedWaiting",
                              (json_int_t)c.folded_pending, "digests", (json_int_t)c.digests,
                              "digestsWaiting", (json_int_t)c.digests_pending);
        if (c.last_sent_ms >= 0) {
            char ts[32];
            oms_iso8601_ms(c.last_sent_ms, ts, sizeof ts);
            json_object_set_new(p, "lastSentAt", json_string(ts));
        }
        json_object_set_new(j, "postgres", p);
    }
    oms_pg_free(pg);
    if (json) {
        char *t = oms_json_dumps(j, JSON_INDENT(2));
        printf("%s\n", t ? t : "{}");
        free(t);
    } else {
        printf("notices:      %s (group %s)\n", s->enabled ? "on" : "off", cfg->alerts.group);
        printf("rules:        %s\n", cfg->alerts.rules);
        printf("rate:         %d per minute, then digests every %d s\n",
               cfg->alerts.max_per_minute, cfg->alerts.digest_interval_s);
        printf("sentry:       %s\n", s->sentry ? s->sentry_where : "not configured (SENTRY_DSN)");
        if (s->email)
            printf("email:        %s:%d (%s%s) from %s to %zu recipient(s)\n",
                   cfg->alerts.email_host, cfg->alerts.email_port, oms_smtp_tls_name(s->tls),
                   *cfg->alerts.email_user ? ", auth" : "", s->from, s->nrecipients);
        else
            printf("email:        off (EMAIL_NOTIFICATIONS_ENABLED)\n");
        json_t *p = json_object_get(j, "postgres");
        if (json_object_get(p, "sent"))
            printf("recorded:     %" JSON_INTEGER_FORMAT " sent, %" JSON_INTEGER_FORMAT
                   " waiting, %" JSON_INTEGER_FORMAT " folded (%" JSON_INTEGER_FORMAT
                   " waiting) into %" JSON_INTEGER_FORMAT " digests (%" JSON_INTEGER_FORMAT
                   " waiting)\n",
                   json_integer_value(json_object_get(p, "sent")),
                   json_integer_value(json_object_get(p, "waiting")),
                   json_integer_value(json_object_get(p, "folded")),
                   json_integer_value(json_object_get(p, "foldedWaiting")),
                   json_integer_value(json_object_get(p, "digests")),
                   json_integer_value(json_object_get(p, "digestsWaiting")));
        else
            printf("recorded:     %s\n", json_string_value(json_object_get(p, "error")));
    }
    json_decref(j);
    if (rc)
        fprintf(stderr, "omsctl: cannot read the alert record from postgres: %s\n", err);
    return rc;
}

static int test(const oms_config *cfg, const oms_alert_settings *s, bool json)
{
    if (!s->sentry && !s->email) {
        fprintf(stderr, "omsctl: no alert sink configured: set SENTRY_DSN and/or "
                        "EMAIL_NOTIFICATIONS_ENABLED=true with EMAIL_HOST and "
                        "ORDER_NOTIFICATION_RECIPIENTS\n");
        return OMS_EXIT_USAGE;
    }
    char uuid[37], host[256] = "omsctl";
    oms_uuid7(oms_now_ms(), uuid);
    gethostname(host, sizeof host - 1);
    char text[600], html[800];
    snprintf(text, sizeof text,
             "This is a test notice sent by 'omsctl alerts test' from %s.\n\nIf you read it, "
             "omsd's e-mail notifications reach you.\n\nTest %s\n",
             host, uuid);
    snprintf(html, sizeof html,
             "<!DOCTYPE html>\n<html><body><h2>OMS test notice</h2><p>Sent by "
             "<code>omsctl alerts test</code>. If you read it, omsd's e-mail notifications reach "
             "you.</p><p><small>Test %s</small></p></body></html>\n",
             uuid);
    json_t *out = json_object();
    int rc = OMS_EXIT_OK;
    if (s->sentry) {
        char eid[33], err[700];
        oms_sentry_event_id(uuid, eid);
        json_t *tags = json_pack("{s:s}", "test", "true");
        oms_sentry_event ev = {.event_id = eid, .level = "info",
                               .message = "Test notice from omsctl alerts test",
                               .logger = "oms.alerts", .environment = cfg->alerts.sentry_environment,
                               .server_name = host, .tags = tags, .timestamp_ms = oms_now_ms()};
        char *env;
        size_t len;
        long http = 0;
        oms_sentry_outcome o = OMS_SENTRY_INVALID;
        if (oms_sentry_envelope(&ev, oms_now_ms(), &env, &len) == OMS_OK) {
            oms_sentry_send_opts so = {cfg->alerts.sentry_ca_file,
                                       cfg->alerts.sentry_timeout_s * 1000L, "omsctl/1.0"};
            o = oms_sentry_send(&s->dsn, &so, env, len, &http, err, sizeof err);
            free(env);
        } else {
            snprintf(err, sizeof err, "cannot build the envelope");
        }
        json_decref(tags);
        json_object_set_new(out, "sentry",
                            o == OMS_SENTRY_OK
                                ? json_pack("{s:b,s:s,s:s,s:I}", "ok", 1, "target",
                                            s->sentry_where, "eventId", eid, "http", (json_int_t)http)
                                : json_pack("{s:b,s:s,s:s,s:I}", "ok", 0, "target",
                                            s->sentry_where, "error", err, "http", (json_int_t)http));
        if (!json)
            printf(o == OMS_SENTRY_OK ? "sentry: ok: event %s accepted by %s\n" : "sentry: FAILED: %s%s\n",
                   o == OMS_SENTRY_OK ? eid : err, o == OMS_SENTRY_OK ? s->sentry_where : "");
        if (o != OMS_SENTRY_OK)
            rc = OMS_EXIT_FAIL;
    }
    if (s->email) {
        char mid[400], err[700];
        const char *at = strchr(s->from, '@');
        oms_mail_message_id(uuid, at ? at + 1 : "localhost", mid, sizeof mid);
        oms_mail_message m = {.from = s->from, .from_name = cfg->alerts.email_from_name,
                              .to = (const char *const *)s->recipients, .nto = s->nrecipients,
                              .subject = "[OMS] Test notice", .text = text, .html = html,
                              .message_id = mid, .date_ms = oms_now_ms()};
        char *msg;
        size_t len;
        oms_smtp_outcome o = OMS_SMTP_REJECTED;
        if (oms_mail_build(&m, &msg, &len, err, sizeof err) == OMS_OK) {
            oms_smtp_opts so = {cfg->alerts.email_host, cfg->alerts.email_port, s->tls,
                                cfg->alerts.email_user, cfg->alerts.email_password,
                                cfg->alerts.email_ca_file, cfg->alerts.email_timeout_s * 1000L,
                                NULL};
            o = oms_smtp_send(&so, s->from, (const char *const *)s->recipients, s->nrecipients,
                              msg, len, err, sizeof err);
            free(msg);
        }
        char target[400];
        snprintf(target, sizeof target, "%s:%d (%s)", cfg->alerts.email_host,
                 cfg->alerts.email_port, oms_smtp_tls_name(s->tls));
        json_object_set_new(out, "email",
                            o == OMS_SMTP_OK
                                ? json_pack("{s:b,s:s,s:s,s:I}", "ok", 1, "target", target,
                                            "messageId", mid, "recipients",
                                            (json_int_t)s->nrecipients)
                                : json_pack("{s:b,s:s,s:s}", "ok", 0, "target", target, "error",
                                            err));
        if (!json) {
            if (o == OMS_SMTP_OK)
                printf("email:  ok: %s accepted %s for %zu recipient(s)\n", target, mid,
                       s->nrecipients);
            else
                printf("email:  FAILED: %s\n", err);
        }
        if (o != OMS_SMTP_OK)
            rc = OMS_EXIT_FAIL;
    }
    if (json) {
        char *t = oms_json_dumps(out, JSON_INDENT(2));
        printf("%s\n", t ? t : "{}");
        free(t);
    }
    json_decref(out);
    return rc;
}

int cmd_alerts(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"json", no_argument, NULL, 'j'},
        {"config", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bool json = false;
    const char *config = NULL;
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'j': json = true; break;
        case 'c': config = optarg; break;
        case 'h': alerts_help(stdout); return OMS_EXIT_OK;
        default: return oms_cli_usage_error("omsctl alerts", "unknown or incomplete option");
        }
    }
    if (optind >= argc)
        return oms_cli_usage_error("omsctl alerts", "missing subcommand: status or test");
    const char *sub = argv[optind];
    if (optind + 1 < argc)
        return oms_cli_usage_error("omsctl alerts", "unexpected argument '%s'", argv[optind + 1]);
    bool is_status = strcmp(sub, "status") == 0;
    if (!is_status && strcmp(sub, "test") != 0)
        return oms_cli_usage_error("omsctl alerts", "unknown subcommand '%s' (status or test)",
                                   sub);
    oms_config cfg;
    int rc = ctl_config(&cfg, config, NULL);
    if (rc)
        return rc;
    oms_alert_settings s;
    char err[512];
    if (oms_alert_settings_load(&cfg, &s, err, sizeof err) != OMS_OK) {
        fprintf(stderr, "omsctl: %s\n", err);
        oms_config_free(&cfg);
        return OMS_EXIT_USAGE;
    }
    rc = is_status ? status(&cfg, &s, json) : test(&cfg, &s, json);
    oms_alert_settings_free(&s);
    oms_config_free(&cfg);
    return rc;
}
