/* alerts_status.c — the sinks' state (each outcome published, the Sentry
 * sender that records it) and what the alerting consumer and the reporter
 * show: the "alerts" dependency of /websocket/health (each sink) and the
 * oms_alerts_* counters of /metrics. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alerts.h"

const char *const omsd_alerts_sink_names[SINK__COUNT] = {"sentry", "email"};

void omsd_alerts_sink_result(struct omsd_alerts *a, int sink, bool ok, const char *error)
{
    pthread_mutex_lock(&a->lock);
    al_sink *s = &a->sink[sink];
    int old = s->state;
    bool same = !ok && strcmp(s->error, error ? error : "") == 0;
    s->state = ok ? SINK_UP : SINK_DOWN;
    if (ok) {
        s->last_ok_ms = oms_now_ms();
        s->consecutive = 0;
        s->error[0] = '\0';
    } else {
        s->last_err_ms = oms_now_ms();
        s->consecutive++;
        snprintf(s->error, sizeof s->error, "%s", error ? error : "");
    }
    pthread_mutex_unlock(&a->lock);
    omsd *d = a->d;
    if (!ok && (old != SINK_DOWN || !same))
        oms_log(d->log, OMS_LOG_ERROR, "alerts: sink failing, notices held until it works",
                OMS_LS("sink", omsd_alerts_sink_names[sink]), OMS_LS("error", error ? error : ""));
    else if (ok && old == SINK_DOWN)
        oms_log(d->log, OMS_LOG_INFO, "alerts: sink working again",
                OMS_LS("sink", omsd_alerts_sink_names[sink]));
}

oms_sentry_outcome omsd_alerts_sentry_send(struct omsd_alerts *a, const oms_sentry_event *ev,
                                           char *errbuf, size_t errlen)
{
    char *env;
    size_t len;
    if (oms_sentry_envelope(ev, oms_now_ms(), &env, &len) != OMS_OK) {
        oms_errf(errbuf, errlen, "sentry: cannot build the envelope");
        return OMS_SENTRY_INVALID;
    }
    oms_sentry_send_opts o = {a->d->cfg.alerts.sentry_ca_file,
                              a->d->cfg.alerts.sentry_timeout_s * 1000L, "omsd/1.0"};
    long http;
    oms_sentry_outcome r = oms_sentry_send(&a->s.dsn, &o, env, len, &http, errbuf, errlen);
    free(env);
    omsd_alerts_sink_result(a, SINK_SENTRY, r == OMS_SENTRY_OK, errbuf);
    return r;
}

static json_t *sink_json(const al_sink *s, bool on, const char *target)
{
    if (!on)
        return json_pack("{s:s}", "status", "disabled");
    json_t *j = json_pack("{s:s,s:s,s:I}", "status",
                          s->state == SINK_UP ? "up" : s->state == SINK_DOWN ? "down" : "unknown",
                          "target", target, "consecutiveFailures", (json_int_t)s->consecutive);
    char ts[32];
    if (s->last_ok_ms >= 0) {
        oms_iso8601_ms(s->last_ok_ms, ts, sizeof ts);
        json_object_set_new(j, "lastSuccessAt", json_string(ts));
    }
    if (s->state == SINK_DOWN && s->error[0])
        json_object_set_new(j, "error", json_string(s->error));
    return j;
}

bool omsd_alerts_health(omsd *d, json_t *deps)
{
    struct omsd_alerts *a = d->alerts;
    if (!a || (!a->s.sentry && !a->s.email))
        return true;
    char smtp[400];
    snprintf(smtp, sizeof smtp, "%s:%d (%s)", d->cfg.alerts.email_host, d->cfg.alerts.email_port,
             oms_smtp_tls_name(a->s.tls));
    pthread_mutex_lock(&a->lock);
    bool down = (a->s.sentry && a->sink[SINK_SENTRY].state == SINK_DOWN) ||
                (a->s.email && a->sink[SINK_EMAIL].state == SINK_DOWN) ||
                (a->s.enabled && !a->pg_ok && a->pg_error[0]);
    json_t *sinks = json_object();
    json_object_set_new(sinks, "sentry", sink_json(&a->sink[SINK_SENTRY], a->s.sentry,
                                                   a->s.sentry_where));
    json_object_set_new(sinks, "email", sink_json(&a->sink[SINK_EMAIL], a->s.email, smtp));
    /* an alert outage must not take omsd out of a load balancer: not
     * required, it shows here and in the metrics */
    json_t *j = json_pack("{s:s,s:b,s:b,s:o}", "status", down ? "down" : "up", "required", 0,
                          "notices", a->s.enabled, "sinks", sinks);
    if (a->s.enabled) {
        json_object_set_new(j, "group", json_string(d->cfg.alerts.group));
        json_object_set_new(j, "rules", json_string(d->cfg.alerts.rules));
        json_object_set_new(j, "assignedPartitions", json_integer((json_int_t)a->assigned));
        json_object_set_new(j, "holding", json_boolean(a->holding));
        if (a->holding)
            json_object_set_new(j, "holdingReason", json_string(a->holding_why));
        json_object_set_new(j, "postgres", json_string(a->pg_ok ? "up" : a->pg_error[0] ? "down" : "unknown"));
        if (!a->pg_ok && a->pg_error[0])
            json_object_set_new(j, "postgresError", json_string(a->pg_error));
    }
    json_object_set_new(j, "reportsErrors", json_boolean(a->s.sentry && d->cfg.alerts.report_errors));
    pthread_mutex_unlock(&a->lock);
    json_object_set_new(j, "sent", json_pack("{s:I,s:I}", "sentry",
                                             (json_int_t)atomic_load(&a->sent[SINK_SENTRY]),
                                             "email", (json_int_t)atomic_load(&a->sent[SINK_EMAIL])));
    json_object_set_new(j, "folded", json_integer((json_int_t)atomic_load(&a->folded)));
    json_object_set_new(deps, "alerts", j);
    return true;
}

bool omsd_alerts_notices_on(const omsd *d)
{
    return d->alerts && d->alerts->s.enabled;
}

char *omsd_alerts_metrics(omsd *d)
{
    struct omsd_alerts *a = d->alerts;
    if (!a)
        return NULL;
    oms_mail_buf b = {0};
    static const struct {
        const char *name, *help;
        size_t off;
    } per_sink[] = {
        {"oms_alerts_sent_total", "Notices and digests delivered, by sink.",
         offsetof(struct omsd_alerts, sent)},
        {"oms_alerts_retried_total", "Delivery attempts that repeated a failed one, by sink.",
         offsetof(struct omsd_alerts, retried)},
        {"oms_alerts_failed_total", "Delivery attempts that failed, by sink.",
         offsetof(struct omsd_alerts, failed)},
    };
    for (size_t i = 0; i < OMS_ARRAY_LEN(per_sink); i++) {
        atomic_uint_fast64_t *v = (atomic_uint_fast64_t *)((char *)a + per_sink[i].off);
        oms_mail_printf(&b, "# HELP %s %s\n# TYPE %s counter\n", per_sink[i].name,
                        per_sink[i].help, per_sink[i].name);
        for (int s = 0; s < SINK__COUNT; s++)
            oms_mail_printf(&b, "%s{sink=\"%s\"} %" PRIu64 "\n", per_sink[i].name, omsd_alerts_sink_names[s],
                            (uint64_t)atomic_load(&v[s]));
    }
    oms_mail_printf(&b,
                    "# HELP oms_alerts_folded_total Notices folded into digests (over "
                    "alerts.max_per_minute).\n# TYPE oms_alerts_folded_total counter\n"
                    "oms_alerts_folded_total %" PRIu64 "\n"
                    "# HELP oms_alerts_digests_total Digests delivered.\n"
                    "# TYPE oms_alerts_digests_total counter\noms_alerts_digests_total %" PRIu64 "\n"
                    "# HELP oms_alerts_duplicates_total Events read again that were already "
                    "notified or folded (not sent again).\n"
                    "# TYPE oms_alerts_duplicates_total counter\n"
                    "oms_alerts_duplicates_total %" PRIu64 "\n"
                    "# HELP oms_alerts_errors_reported_total omsd's own errors sent to Sentry, "
                    "by outcome.\n# TYPE oms_alerts_errors_reported_total counter\n"
                    "oms_alerts_errors_reported_total{outcome=\"sent\"} %" PRIu64 "\n"
                    "oms_alerts_errors_reported_total{outcome=\"dropped\"} %" PRIu64 "\n",
                    (uint64_t)atomic_load(&a->folded), (uint64_t)atomic_load(&a->digests),
                    (uint64_t)atomic_load(&a->duplicates), (uint64_t)atomic_load(&a->own_sent),
                    (uint64_t)atomic_load(&a->own_dropped));
    pthread_mutex_lock(&a->lock);
    int st[SINK__COUNT] = {a->sink[SINK_SENTRY].state, a->sink[SINK_EMAIL].state};
    bool holding = a->holding;
    pthread_mutex_unlock(&a->lock);
    oms_mail_printf(&b, "# HELP oms_alerts_sink_up Whether the last delivery to a sink worked "
                        "(1), failed (0); absent when the sink is off or untried.\n"
                        "# TYPE oms_alerts_sink_up gauge\n");
    for (int s = 0; s < SINK__COUNT; s++)
        if (st[s] != SINK_UNKNOWN)
            oms_mail_printf(&b, "oms_alerts_sink_up{sink=\"%s\"} %d\n", omsd_alerts_sink_names[s],
                            st[s] == SINK_UP);
    oms_mail_printf(&b, "# HELP oms_alerts_holding Whether the alerting consumer holds its "
                        "partitions for a failing sink or Postgres.\n"
                        "# TYPE oms_alerts_holding gauge\noms_alerts_holding %d\n",
                    holding);
    return b.p;
}
