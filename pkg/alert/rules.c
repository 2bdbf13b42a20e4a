/* rules.c — which events raise a notice (alerts.rules). */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alert.h"

/* One condition c[0..n) of rule ruleno into r. 0 or OMS_EINVAL + errbuf. */
static int parse_condition(oms_alert_rule *r, const char *c, size_t n, size_t ruleno,
                           char *errbuf, size_t errlen)
{
    char tok[256];
    if (n >= sizeof tok) {
        oms_errf(errbuf, errlen, "rule %zu: condition too long", ruleno);
        return OMS_EINVAL;
    }
    memcpy(tok, c, n);
    tok[n] = '\0';
    if (strncmp(tok, "total>=", 7) == 0) {
        char *e;
        errno = 0;
        double v = strtod(tok + 7, &e);
        if (e == tok + 7 || *e || errno || !isfinite(v) || v < 0) {
            oms_errf(errbuf, errlen, "rule %zu: 'total>=' needs a number >= 0, got '%s'", ruleno,
                     tok + 7);
            return OMS_EINVAL;
        }
        r->has_min_total = true;
        r->min_total = v;
        return 0;
    }
    char *eq = strchr(tok, '=');
    if (!eq) {
        oms_errf(errbuf, errlen,
                 "rule %zu: unknown condition '%s' (expected type=, status= or total>=)", ruleno,
                 tok);
        return OMS_EINVAL;
    }
    *eq = '\0';
    bool is_type = strcmp(tok, "type") == 0, is_status = strcmp(tok, "status") == 0;
    if (!is_type && !is_status) {
        oms_errf(errbuf, errlen,
                 "rule %zu: unknown condition '%s' (expected type=, status= or total>=)", ruleno,
                 tok);
        return OMS_EINVAL;
    }
    char *save = NULL;
    size_t count = 0;
    for (char *v = strtok_r(eq + 1, ",", &save); v; v = strtok_r(NULL, ",", &save)) {
        count++;
        if (is_type) {
            oms_event_type t;
            if (oms_event_type_parse(v, &t) != 0) {
                oms_errf(errbuf, errlen,
                         "rule %zu: unknown event type '%s' (OrderCreated, OrderStatusChanged, "
                         "InventoryChanged, UserNotification, SystemNotification)",
                         ruleno, v);
                return OMS_EINVAL;
            }
            r->types |= 1u << t;
        } else {
            if (r->nstatuses == OMS_ALERT_MAX_VALUES || strlen(v) >= sizeof r->statuses[0]) {
                oms_errf(errbuf, errlen, "rule %zu: too many or too long statuses", ruleno);
                return OMS_EINVAL;
            }
            for (const char *p = v; *p; p++) {
                if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-') {
                    oms_errf(errbuf, errlen, "rule %zu: status '%s' is not a status name", ruleno,
                             v);
                    return OMS_EINVAL;
                }
            }
            snprintf(r->statuses[r->nstatuses++], sizeof r->statuses[0], "%s", v);
        }
    }
    if (!count) {
        oms_errf(errbuf, errlen, "rule %zu: '%s=' has no value", ruleno, tok);
        return OMS_EINVAL;
    }
    return 0;
}

int oms_alert_rules_parse(const char *text, oms_alert_rules *out, char *errbuf, size_t errlen)
{
    memset(out, 0, sizeof *out);
    const char *p = text ? text : "";
    size_t ruleno = 0;
    while (*p) {
        const char *end = strchr(p, ';');
        if (!end)
            end = p + strlen(p);
        ruleno++;
        oms_alert_rule r;
        memset(&r, 0, sizeof r);
        bool any = false;
        const char *c = p;
        while (c < end) {
            while (c < end && isspace((unsigned char)*c))
                c++;
            const char *ce = c;
            while (ce < end && !isspace((unsigned char)*ce))
                ce++;
            if (ce > c) {
                if (parse_condition(&r, c, (size_t)(ce - c), ruleno, errbuf, errlen))
                    return OMS_EINVAL;
                any = true;
            }
            c = ce;
        }
        if (any) {
            if (!r.types) {
                oms_errf(errbuf, errlen, "rule %zu: names no event type (add type=...)", ruleno);
                return OMS_EINVAL;
            }
            if (r.has_min_total &&
                (r.types & ~((1u << OMS_EV_ORDER_CREATED) | (1u << OMS_EV_ORDER_STATUS_CHANGED)))) {
                oms_errf(errbuf, errlen, "rule %zu: total>= applies to order events only", ruleno);
                return OMS_EINVAL;
            }
            if (out->n == OMS_ALERT_MAX_RULES) {
                oms_errf(errbuf, errlen, "more than %d rules", OMS_ALERT_MAX_RULES);
                return OMS_EINVAL;
            }
            out->rules[out->n++] = r;
        } else if (*end == ';' || ruleno > 1) {
            /* "a;;b" or a trailing ';' hides a typo more often than not */
            oms_errf(errbuf, errlen, "rule %zu: empty", ruleno);
            return OMS_EINVAL;
        }
        p = *end ? end + 1 : end;
    }
    if (!out->n) {
        oms_errf(errbuf, errlen, "no rule (the default is '%s')", OMS_ALERT_DEFAULT_RULES);
        return OMS_EINVAL;
    }
    return 0;
}

int oms_alert_rules_match(const oms_alert_rules *r, const oms_event *ev)
{
    if ((unsigned)ev->type >= OMS_EV__COUNT)
        return -1;
    for (size_t i = 0; i < r->n; i++) {
        const oms_alert_rule *x = &r->rules[i];
        if (!(x->types & (1u << ev->type)))
            continue;
        if (x->nstatuses) {
            bool hit = false;
            for (size_t k = 0; ev->status && k < x->nstatuses; k++)
                hit = hit || strcmp(ev->status, x->statuses[k]) == 0;
            if (!hit)
                continue;
        }
        if (x->has_min_total && !(ev->total_amount >= x->min_total))
            continue;
        return (int)i;
    }
    return -1;
}

unsigned oms_alert_rules_topics(const oms_alert_rules *r)
{
    unsigned t = 0;
    for (size_t i = 0; i < r->n; i++)
        for (int e = 0; e < OMS_EV__COUNT; e++)
            if (r->rules[i].types & (1u << e))
                t |= 1u << oms_event_topic_kind((oms_event_type)e);
    return t;
}
