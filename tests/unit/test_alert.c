/* test_alert.c — pkg/alert: rules, the notices of events and digests, and
 * the alerts.* settings (with the guide's environment names). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "alert/alert.h"

static oms_event order_created(oms_order_item *items)
{
    oms_event ev;
    memset(&ev, 0, sizeof ev);
    ev.type = OMS_EV_ORDER_CREATED;
    strcpy(ev.event_id, "01939b2c-7d4e-7a3b-8c9d-0123456789ab");
    ev.occurred_at = 1764979200123;
    ev.order_id = "0f8c2a1e-0000-4000-8000-000000000001";
    ev.alias_id = "ORDER-123";
    ev.user_id = 7;
    ev.status = "created";
    ev.total_amount = 59.97;
    items[0] = (oms_order_item){17, "Café <crème>", 3, 19.99};
    ev.items = items;
    ev.nitems = 1;
    return ev;
}

static void test_rules(void **state)
{
    oms_alert_rules r;
    char err[256];
    assert_int_equal(oms_alert_rules_parse(OMS_ALERT_DEFAULT_RULES, &r, err, sizeof err), 0);
    assert_int_equal(r.n, 1);
    oms_order_item items[1];
    oms_event ev = order_created(items);
    assert_int_equal(oms_alert_rules_match(&r, &ev), 0);
    assert_int_equal(oms_alert_rules_topics(&r), 1u << OMS_TOPIC_ORDERS);
    ev.type = OMS_EV_ORDER_STATUS_CHANGED;
    assert_int_equal(oms_alert_rules_match(&r, &ev), -1);

    assert_int_equal(oms_alert_rules_parse("type=OrderCreated total>=100; "
                                           "type=order-status-changed status=cancelled ;"
                                           "type=InventoryChanged status=low_stock,out_of_stock",
                                           &r, err, sizeof err),
                     0);
    assert_int_equal(r.n, 3);
    assert_int_equal(oms_alert_rules_topics(&r), (1u << OMS_TOPIC_ORDERS) | (1u << OMS_TOPIC_INVENTORY));
    ev.type = OMS_EV_ORDER_CREATED;
    assert_int_equal(oms_alert_rules_match(&r, &ev), -1); /* 59.97 < 100 */
    ev.total_amount = 100;
    assert_int_equal(oms_alert_rules_match(&r, &ev), 0);
    ev.type = OMS_EV_ORDER_STATUS_CHANGED;
    ev.status = "shipped";
    assert_int_equal(oms_alert_rules_match(&r, &ev), -1);
    ev.status = "cancelled";
    assert_int_equal(oms_alert_rules_match(&r, &ev), 1);
    oms_event inv;
    memset(&inv, 0, sizeof inv);
    inv.type = OMS_EV_INVENTORY_CHANGED;
    inv.status = "in_stock";
    assert_int_equal(oms_alert_rules_match(&r, &inv), -1);
    inv.status = "out_of_stock";
    assert_int_equal(oms_alert_rules_match(&r, &inv), 2);
    inv.status = NULL;
    assert_int_equal(oms_alert_rules_match(&r, &inv), -1);
    /* notifications read their topic */
    assert_int_equal(oms_alert_rules_parse("type=SystemNotification", &r, err, sizeof err), 0);
    assert_int_equal(oms_alert_rules_topics(&r), 1u << OMS_TOPIC_NOTIFICATIONS);

    static const struct {
        const char *text, *why;
    } bad[] = {
        {"", "no rule"},
        {"   ", "no rule"},
        {"type=Nope", "rule 1: unknown event type 'Nope'"},
        {"type=OrderCreated; status=cancelled", "rule 2: names no event type"},
        {"type=OrderCreated;;type=OrderCreated", "rule 2: empty"},
        {"type=OrderCreated colour=red", "unknown condition 'colour'"},
        {"type=OrderCreated total>=abc", "needs a number"},
        {"type=OrderCreated total>=-1", "needs a number"},
        {"type=InventoryChanged total>=5", "order events only"},
        {"type=OrderCreated status=", "has no value"},
        {"type=OrderCreated status=a;b", "rule 2"},
        {"type=OrderCreated status=bad!", "not a status name"},
    };
    for (size_t i = 0; i < OMS_ARRAY_LEN(bad); i++) {
        err[0] = '\0';
        if (oms_alert_rules_parse(bad[i].text, &r, err, sizeof err) != OMS_EINVAL)
            fail_msg("'%s' accepted", bad[i].text);
        if (!strstr(err, bad[i].why))
            fail_msg("'%s': message '%s' lacks '%s'", bad[i].text, err, bad[i].why);
    }
}

static void test_notice_order(void **state)
{
    oms_order_item items[1];
    oms_event ev = order_created(items);
    oms_alert_notice n;
    assert_int_equal(oms_alert_notice_from_event(&ev, "https://console.example/oms?x=1&y=2", &n), 0);
    assert_string_equal(n.message, "Order creation alert triggered for order ORDER-123");
    assert_string_equal(n.level, "info");
    assert_string_equal(n.event_id, "01939b2c7d4e7a3b8c9d0123456789ab");
    assert_string_equal(n.key, ev.event_id);
    assert_string_equal(json_string_value(json_object_get(n.tags, "orderId")), ev.order_id);
    assert_string_equal(json_string_value(json_object_get(n.tags, "aliasId")), "ORDER-123");
    assert_string_equal(json_string_value(json_object_get(n.tags, "userId")), "7");
    assert_string_equal(json_string_value(json_object_get(n.tags, "status")), "created");
    assert_true(json_real_value(json_object_get(n.extra, "total")) == 59.97);
    json_t *it = json_array_get(json_object_get(n.extra, "items"), 0);
    assert_string_equal(json_string_value(json_object_get(it, "productName")), "Café <crème>");
    assert_int_equal(json_integer_value(json_object_get(it, "quantity")), 3);
    assert_non_null(strstr(n.subject, "ORDER-123"));
    assert_non_null(strstr(n.subject, "59.97"));
    /* the text: alias, user, total, items, the link */
    const char *text_wants[] = {"ORDER-123", "User:   7", "Total:  59.97", "3 x Café <crème>",
                                "https://console.example/oms?x=1&y=2"};
    for (size_t i = 0; i < OMS_ARRAY_LEN(text_wants); i++)
        if (!strstr(n.text, text_wants[i]))
            fail_msg("text lacks '%s':\n%s", text_wants[i], n.text);
    /* the HTML: the same, escaped */
    const char *html_wants[] = {"ORDER-123", "<td>7</td>", "59.97", "Café &lt;crème&gt;",
                                "href=\"https://console.example/oms?x=1&amp;y=2\""};
    for (size_t i = 0; i < OMS_ARRAY_LEN(html_wants); i++)
        if (!strstr(n.html, html_wants[i]))
            fail_msg("html lacks '%s':\n%s", html_wants[i], n.html);
    assert_null(strstr(n.html, "<crème>"));
    oms_alert_notice_clear(&n);

    /* without an alias, the order id names the order; without a console, no link */
    ev.alias_id = NULL;
    assert_int_equal(oms_alert_notice_from_event(&ev, "", &n), 0);
    assert_string_equal(n.message, "Order creation alert triggered for order 0f8c2a1e-0000-4000-8000-000000000001");
    assert_null(strstr(n.text, "console"));
    oms_alert_notice_clear(&n);

    /* a status change: the move, no empty total or items */
    oms_event sc;
    memset(&sc, 0, sizeof sc);
    sc.type = OMS_EV_ORDER_STATUS_CHANGED;
    strcpy(sc.event_id, "01939b2c-7d4e-7a3b-8c9d-0123456789ac");
    sc.order_id = "o-9";
    sc.alias_id = "ORDER-9";
    sc.user_id = 3;
    sc.status = "cancelled";
    sc.previous_status = "created";
    sc.message = "customer asked";
    assert_int_equal(oms_alert_notice_from_event(&sc, "", &n), 0);
    assert_string_equal(n.message, "Order status alert triggered for order ORDER-9: cancelled");
    assert_string_equal(n.subject, "[OMS] Order ORDER-9 is cancelled");
    assert_non_null(strstr(n.text, "Status: created -> cancelled\n"));
    assert_non_null(strstr(n.text, "Note:   customer asked\n"));
    assert_null(strstr(n.text, "Total"));
    assert_null(strstr(n.html, "Items"));
    assert_null(json_object_get(n.extra, "total"));
    assert_string_equal(json_string_value(json_object_get(n.extra, "previousStatus")), "created");
    oms_alert_notice_clear(&n);

    /* a producer's bad bytes: no line break in a header, valid UTF-8 for
     * JSON, mail and Postgres */
    sc.alias_id = "ORDER-9\r\nBcc: evil@x.org \xff\xfe";
    sc.message = "line 1\nline 2\x01";
    assert_int_equal(oms_alert_notice_from_event(&sc, "", &n), 0);
    assert_string_equal(n.subject, "[OMS] Order ORDER-9  Bcc: evil@x.org ?? is cancelled");
    assert_non_null(strstr(n.text, "Note:   line 1\nline 2 \n"));
    assert_string_equal(json_string_value(json_object_get(n.tags, "aliasId")),
                        "ORDER-9  Bcc: evil@x.org ??");
    oms_alert_notice_clear(&n);
    char line[256];
    oms_alert_summary(&sc, line, sizeof line);
    assert_null(strpbrk(line, "\r\n\xff"));
    sc.alias_id = "ORDER-9";
    oms_alert_summary(&sc, line, sizeof line);
    assert_string_equal(line, "ORDER-9 · user 3 · cancelled · OrderStatusChanged");
    ev.alias_id = "ORDER-123";
    oms_alert_summary(&ev, line, sizeof line);
    assert_string_equal(line, "ORDER-123 · user 7 · created · total 59.97 · OrderCreated");
}

static void test_notice_digest(void **state)
{
    const char *lines[150];
    char buf[150][32];
    for (int i = 0; i < 150; i++) {
        snprintf(buf[i], sizeof buf[i], "ORDER-%d · user 1", i);
        lines[i] = buf[i];
    }
    oms_alert_notice n;
    assert_int_equal(oms_alert_notice_digest("2f1d0c6e-0000-4000-8000-00000000000a", lines, 150, 20,
                                             1764979200000, 1764979210000, "http://c/", 1764979260000,
                                             &n),
                     0);
    assert_string_equal(n.message, "Alert digest: 150 notices folded (more than 20 per minute)");
    assert_string_equal(n.key, "digest-2f1d0c6e-0000-4000-8000-00000000000a");
    assert_string_equal(n.event_id, "2f1d0c6e00004000800000000000000a");
    assert_int_equal(json_integer_value(json_object_get(n.extra, "count")), 150);
    /* Sentry gets the first 100, the mail lists all */
    assert_int_equal(json_array_size(json_object_get(n.extra, "notices")), 100);
    assert_non_null(strstr(n.subject, "Digest: 150 notices"));
    assert_non_null(strstr(n.text, "1. ORDER-0 · user 1\n"));
    assert_non_null(strstr(n.text, "150. ORDER-149 · user 1\n"));
    assert_non_null(strstr(n.html, "<li>ORDER-149 · user 1</li>"));
    oms_alert_notice_clear(&n);
}

/* A fake environment for oms_config_apply_env. */
static const char *const *fake_env;
static char *fake_getenv(const char *name)
{
    for (size_t i = 0; fake_env[i]; i += 2)
        if (strcmp(fake_env[i], name) == 0)
            return (char *)fake_env[i + 1];
    return NULL;
}

static int load(const char *const *env, oms_alert_settings *s, char *err, size_t errlen)
{
    oms_config cfg;
    assert_int_equal(oms_config_defaults(&cfg), 0);
    fake_env = env;
    int rc = oms_config_apply_env(&cfg, fake_getenv, err, errlen);
    if (!rc)
        rc = oms_config_validate(&cfg, err, errlen);
    if (!rc)
        rc = oms_alert_settings_load(&cfg, s, err, errlen);
    oms_config_free(&cfg);
    return rc;
}

static void test_settings(void **state)
{
    oms_alert_settings s;
    char err[512];
    /* nothing configured: alerts off */
    const char *none[] = {NULL};
    assert_int_equal(load(none, &s, err, sizeof err), 0);
    assert_false(s.enabled);
    oms_alert_settings_free(&s);
    /* the guide's variables */
    const char *guide[] = {"SENTRY_DSN", "https://pubkey@sentry.example.com/5",
                           "EMAIL_NOTIFICATIONS_ENABLED", "true",
                           "EMAIL_HOST", "smtp.gmail.com",
                           "EMAIL_PORT", "465",
                           "EMAIL_USER", "me@gmail.com",
                           "EMAIL_PASSWORD", "app-password",
                           "ORDER_NOTIFICATION_RECIPIENTS", "admin@yourcompany.com, ops@yourcompany.com;x@y.org",
                           NULL};
    assert_int_equal(load(guide, &s, err, sizeof err), 0);
    assert_true(s.enabled && s.sentry && s.email);
    assert_int_equal(s.tls, OMS_SMTP_TLS_IMPLICIT); /* 465 */
    assert_string_equal(s.from, "me@gmail.com");     /* EMAIL_USER when no EMAIL_FROM */
    assert_int_equal(s.nrecipients, 3);
    assert_string_equal(s.recipients[1], "ops@yourcompany.com");
    assert_string_equal(s.sentry_where, "https://sentry.example.com project 5");
    oms_alert_settings_free(&s);

    static const struct {
        const char *var, *value, *why;
    } bad[] = {
        {"SENTRY_DSN", "https://secretkey@h/x", "SENTRY_DSN"},
        {"EMAIL_TLS", "sometimes", "EMAIL_TLS"},
        {"ORDER_NOTIFICATION_RECIPIENTS", "", "names nobody"},
        {"ORDER_NOTIFICATION_RECIPIENTS", "a@x.org, not an address", "not a plain address"},
        {"EMAIL_FROM", "Me <me@x.org>", "EMAIL_FROM"},
        {"EMAIL_HOST", "", "EMAIL_HOST"},
        {"EMAIL_PASSWORD", "", "no password"},
    };
    for (size_t i = 0; i < OMS_ARRAY_LEN(bad); i++) {
        const char *env[] = {"EMAIL_NOTIFICATIONS_ENABLED", "true", "EMAIL_HOST", "smtp.x.org",
                             "EMAIL_USER", "u@x.org", "EMAIL_PASSWORD", "pw-secret",
                             "ORDER_NOTIFICATION_RECIPIENTS", "a@x.org", bad[i].var, bad[i].value,
                             NULL};
        /* the bad value comes first, so it wins over the defaults above */
        const char *ordered[2 + OMS_ARRAY_LEN(env)];
        ordered[0] = bad[i].var;
        ordered[1] = bad[i].value;
        memcpy(ordered + 2, env, sizeof env);
        err[0] = '\0';
        if (load(ordered, &s, err, sizeof err) == 0) {
            oms_alert_settings_free(&s);
            if (bad[i].value[0] || strcmp(bad[i].var, "EMAIL_PASSWORD") != 0)
                fail_msg("%s=%s accepted", bad[i].var, bad[i].value);
            continue;
        }
        if (!strstr(err, bad[i].why))
            fail_msg("%s=%s: message '%s' lacks '%s'", bad[i].var, bad[i].value, err, bad[i].why);
        assert_null(strstr(err, "secretkey"));
        assert_null(strstr(err, "pw-secret"));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rules),
        cmocka_unit_test(test_notice_order),
        cmocka_unit_test(test_notice_digest),
        cmocka_unit_test(test_settings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
