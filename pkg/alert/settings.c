/* settings.c — alerts.* checked and parsed (see alert.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alert.h"

void oms_alert_settings_free(oms_alert_settings *s)
{
    for (size_t i = 0; i < s->nrecipients; i++)
        free(s->recipients[i]);
    free(s->recipients);
    memset(s, 0, sizeof *s);
}

/* Split the comma (or semicolon) list into addresses. */
static int parse_recipients(const char *list, oms_alert_settings *s, char *errbuf, size_t errlen)
{
    char *copy = strdup(list);
    if (!copy)
        return OMS_ENOMEM;
    int rc = 0;
    char *save = NULL;
    for (char *a = strtok_r(copy, ",;", &save); a; a = strtok_r(NULL, ",;", &save)) {
        while (*a == ' ' || *a == '\t')
            a++;
        size_t n = strlen(a);
        while (n && (a[n - 1] == ' ' || a[n - 1] == '\t'))
            a[--n] = '\0';
        if (!n)
            continue;
        if (!oms_mail_address_valid(a)) {
            oms_errf(errbuf, errlen,
                     "alerts.email.recipients (ORDER_NOTIFICATION_RECIPIENTS): '%.80s' is not a "
                     "plain address (local@domain)",
                     a);
            rc = OMS_ECONFIG;
            break;
        }
        if (s->nrecipients == 100) {
            oms_errf(errbuf, errlen, "alerts.email.recipients: more than 100 addresses");
            rc = OMS_ECONFIG;
            break;
        }
        char **grown = realloc(s->recipients, (s->nrecipients + 1) * sizeof *grown);
        if (!grown || !(grown[s->nrecipients] = strdup(a))) {
            if (grown)
                s->recipients = grown;
            rc = OMS_ENOMEM;
            break;
        }
        s->recipients = grown;
        s->nrecipients++;
    }
    free(copy);
    return rc;
}

int oms_alert_settings_load(const oms_config *cfg, oms_alert_settings *out, char *errbuf,
                            size_t errlen)
{
    memset(out, 0, sizeof *out);
    const __typeof__(cfg->alerts) *a = &cfg->alerts;
    char why[300];
    if (*a->sentry_dsn) {
        if (oms_sentry_dsn_parse(a->sentry_dsn, "alerts.sentry.dsn (SENTRY_DSN)", &out->dsn, why,
                                 sizeof why)) {
            oms_errf(errbuf, errlen, "%s", why);
            return OMS_ECONFIG;
        }
        out->sentry = true;
        oms_sentry_dsn_describe(&out->dsn, out->sentry_where, sizeof out->sentry_where);
    }
    if (oms_alert_rules_parse(a->rules, &out->rules, why, sizeof why)) {
        oms_errf(errbuf, errlen, "alerts.rules: %s", why);
        return OMS_ECONFIG;
    }
    out->topics = oms_alert_rules_topics(&out->rules);
    if (*a->console_url && strncmp(a->console_url, "http://", 7) != 0 &&
        strncmp(a->console_url, "https://", 8) != 0) {
        oms_errf(errbuf, errlen, "alerts.console_url: expected an http:// or https:// URL");
        return OMS_ECONFIG;
    }
    if (strpbrk(a->console_url, " \t\r\n\"<>")) {
        oms_errf(errbuf, errlen, "alerts.console_url: spaces, quotes and angle brackets are not "
                                 "allowed in a URL");
        return OMS_ECONFIG;
    }
    if (!*a->group) {
        oms_errf(errbuf, errlen, "alerts.group: must not be empty");
        return OMS_ECONFIG;
    }
    if (oms_smtp_tls_parse(a->email_tls, a->email_port, &out->tls)) {
        oms_errf(errbuf, errlen, "alerts.email.tls (EMAIL_TLS): expected auto, starttls, tls or none");
        return OMS_ECONFIG;
    }
    out->email = a->email_enabled;
    if (out->email) {
        if (!*a->email_host) {
            oms_errf(errbuf, errlen, "e-mail notifications are on (EMAIL_NOTIFICATIONS_ENABLED) "
                                     "but alerts.email.host (EMAIL_HOST) is not set");
            return OMS_ECONFIG;
        }
        if (strpbrk(a->email_host, " \t\r\n/@")) {
            oms_errf(errbuf, errlen, "alerts.email.host (EMAIL_HOST): not a host name");
            return OMS_ECONFIG;
        }
        if (*a->email_user && !*a->email_password) {
            oms_errf(errbuf, errlen, "alerts.email.user (EMAIL_USER) is set but no password: set "
                                     "EMAIL_PASSWORD or EMAIL_PASSWORD_FILE");
            return OMS_ECONFIG;
        }
        if (!*a->email_user && *a->email_password) {
            oms_errf(errbuf, errlen, "a password is set (EMAIL_PASSWORD) but no user (EMAIL_USER)");
            return OMS_ECONFIG;
        }
        int rc = parse_recipients(a->email_recipients, out, errbuf, errlen);
        if (rc) {
            oms_alert_settings_free(out);
            return rc == OMS_ENOMEM ? OMS_ENOMEM : OMS_ECONFIG;
        }
        if (!out->nrecipients) {
            oms_errf(errbuf, errlen, "e-mail notifications are on (EMAIL_NOTIFICATIONS_ENABLED) "
                                     "but alerts.email.recipients (ORDER_NOTIFICATION_RECIPIENTS) "
                                     "names nobody");
            return OMS_ECONFIG;
        }
        const char *from = *a->email_from                ? a->email_from
                           : strchr(a->email_user, '@') ? a->email_user
                                                         : "";
        if (!*from) {
            oms_errf(errbuf, errlen, "no sender address: set alerts.email.from (EMAIL_FROM) or an "
                                     "EMAIL_USER that is an address");
            oms_alert_settings_free(out);
            return OMS_ECONFIG;
        }
        if (!oms_mail_address_valid(from)) {
            oms_errf(errbuf, errlen, "alerts.email.from (EMAIL_FROM): '%.80s' is not a plain "
                                     "address (local@domain)", from);
            oms_alert_settings_free(out);
            return OMS_ECONFIG;
        }
        snprintf(out->from, sizeof out->from, "%s", from);
        if (strpbrk(a->email_from_name, "\r\n")) {
            oms_errf(errbuf, errlen, "alerts.email.from_name: must be one line");
            oms_alert_settings_free(out);
            return OMS_ECONFIG;
        }
    }
    bool sink = out->sentry || out->email;
    if (strcmp(a->enabled, "true") == 0 && !sink) {
        oms_errf(errbuf, errlen, "alerts.enabled is true but no sink is configured: set SENTRY_DSN "
                                 "and/or EMAIL_NOTIFICATIONS_ENABLED with EMAIL_HOST and "
                                 "ORDER_NOTIFICATION_RECIPIENTS");
        oms_alert_settings_free(out);
        return OMS_ECONFIG;
    }
    out->enabled = strcmp(a->enabled, "false") != 0 && sink;
    return 0;
}
