/* notice.c — what a notice says, in Sentry and by e-mail. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alert.h"
#include "json/json.h"
#include "mail/mail.h"
#include "sentry/sentry.h"

void oms_alert_notice_clear(oms_alert_notice *n)
{
    free(n->message);
    free(n->subject);
    free(n->text);
    free(n->html);
    json_decref(n->tags);
    json_decref(n->extra);
    memset(n, 0, sizeof *n);
}

/* ---- event text is data: made safe before it reaches a header, JSON or SQL ---- */

/* Length of the valid UTF-8 sequence at s, 0 when it is not valid. */
static size_t utf8_seq(const unsigned char *s)
{
    if (s[0] < 0x80)
        return 1;
    size_t n = (s[0] & 0xE0) == 0xC0 ? 2 : (s[0] & 0xF0) == 0xE0 ? 3 : (s[0] & 0xF8) == 0xF0 ? 4 : 0;
    if (!n || (n == 2 && s[0] < 0xC2))
        return 0;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    return n;
}

/* In place: each byte that is not valid UTF-8 becomes '?', control
 * characters become spaces (line breaks too when one_line). A producer's
 * bad string must not stop the notices: a header with a line break, JSON or
 * a Postgres text that is not UTF-8 would be refused for ever. */
static void clean_inplace(char *s, bool one_line)
{
    unsigned char *p = (unsigned char *)s;
    while (p && *p) {
        size_t n = utf8_seq(p);
        if (!n) {
            *p++ = '?';
            continue;
        }
        if (n == 1 && (*p < ' ' || *p == 0x7f) && (one_line || *p != '\n'))
            *p = ' ';
        p += n;
    }
}

static char *clean_dup(const char *s, bool one_line)
{
    if (!s)
        return NULL;
    char *c = strdup(s);
    clean_inplace(c, one_line);
    return c;
}

/* A copy of ev whose strings are cleaned (free with clean_event_free). */
static int clean_event(const oms_event *in, oms_event *out)
{
    *out = *in;
    out->arena = NULL;
    clean_inplace(out->event_id, true);
    char **f[] = {&out->source, &out->trace_id, &out->order_id, &out->alias_id, &out->status,
                  &out->previous_status, &out->message, &out->product_name, &out->title,
                  &out->severity, &out->data_json};
    for (size_t i = 0; i < OMS_ARRAY_LEN(f); i++)
        *f[i] = NULL;
    const char *src[] = {in->source, in->trace_id, in->order_id, in->alias_id, in->status,
                         in->previous_status, in->message, in->product_name, in->title,
                         in->severity, NULL};
    bool failed = false;
    for (size_t i = 0; i < OMS_ARRAY_LEN(src) - 1; i++) {
        /* a notification's message may have several lines; names may not */
        *f[i] = clean_dup(src[i], f[i] != &out->message);
        failed = failed || (src[i] && !*f[i]);
    }
    out->items = in->nitems ? calloc(in->nitems, sizeof *out->items) : NULL;
    failed = failed || (in->nitems && !out->items);
    for (size_t i = 0; out->items && i < in->nitems; i++) {
        out->items[i] = in->items[i];
        out->items[i].product_name = clean_dup(in->items[i].product_name, true);
        failed = failed || (in->items[i].product_name && !out->items[i].product_name);
    }
    return failed ? OMS_ENOMEM : 0;
}

static void clean_event_free(oms_event *e)
{
    char *f[] = {e->source, e->trace_id, e->order_id, e->alias_id, e->status,
                 e->previous_status, e->message, e->product_name, e->title, e->severity};
    for (size_t i = 0; i < OMS_ARRAY_LEN(f); i++)
        free(f[i]);
    for (size_t i = 0; e->items && i < e->nitems; i++)
        free(e->items[i].product_name);
    free(e->items);
    memset(e, 0, sizeof *e);
}

static const char *order_name(const oms_event *ev)
{
    /* the guide's alert names the order by its alias (ORDER-123) */
    if (ev->alias_id && *ev->alias_id)
        return ev->alias_id;
    return ev->order_id ? ev->order_id : "?";
}

static void fmt_money(double v, char *buf, size_t len)
{
    snprintf(buf, len, "%.2f", v);
}

static void summary_raw(const oms_event *ev, char *buf, size_t len);

void oms_alert_summary(const oms_event *ev, char *buf, size_t len)
{
    summary_raw(ev, buf, len);
    clean_inplace(buf, true); /* also mends a sequence cut by truncation */
}

static void summary_raw(const oms_event *ev, char *buf, size_t len)
{
    char money[48];
    switch (ev->type) {
    case OMS_EV_ORDER_STATUS_CHANGED:
        if (!ev->nitems) {
            snprintf(buf, len, "%s · user %" PRId64 " · %s · %s", order_name(ev), ev->user_id,
                     ev->status ? ev->status : "", oms_event_type_name(ev->type));
            break;
        }
        /* fall through */
    case OMS_EV_ORDER_CREATED:
        fmt_money(ev->total_amount, money, sizeof money);
        snprintf(buf, len, "%s · user %" PRId64 " · %s · total %s · %s", order_name(ev),
                 ev->user_id, ev->status ? ev->status : "", money, oms_event_type_name(ev->type));
        break;
    case OMS_EV_INVENTORY_CHANGED:
        snprintf(buf, len, "product %" PRId64 " %s · %s · quantity %d (threshold %d)",
                 ev->product_id, ev->product_name ? ev->product_name : "",
                 ev->status ? ev->status : "", (int)ev->quantity, (int)ev->threshold);
        break;
    default:
        snprintf(buf, len, "%s · %s", oms_event_type_name(ev->type), ev->title ? ev->title : "");
        break;
    }
}

static json_t *items_json(const oms_event *ev)
{
    json_t *a = json_array();
    for (size_t i = 0; i < ev->nitems; i++) {
        const oms_order_item *it = &ev->items[i];
        json_array_append_new(a, json_pack("{s:I,s:s,s:i,s:f}", "productId",
                                           (json_int_t)it->product_id, "productName",
                                           it->product_name ? it->product_name : "", "quantity",
                                           (int)it->quantity, "price", it->price));
    }
    return a;
}

static int link_parts(oms_mail_buf *t, oms_mail_buf *h, const char *console_url)
{
    if (!console_url || !*console_url)
        return 0;
    int rc = oms_mail_printf(t, "\nOpen the OMS console: %s\n", console_url);
    rc = rc ? rc : oms_mail_printf(h, "<p><a href=\"");
    rc = rc ? rc : oms_mail_html_escape(h, console_url);
    rc = rc ? rc : oms_mail_printf(h, "\">Open the OMS console</a></p>\n");
    return rc;
}

/* Order events: the guide's wording for a creation. A status change
 * carries no total or items (schemas/order_status_changed): its notice
 * shows the status move instead of an empty order. */
static int order_notice(const oms_event *ev, const char *console_url, oms_alert_notice *n)
{
    const char *name = order_name(ev);
    const char *status = ev->status ? ev->status : "";
    char money[48], user[32], buf[512], move[128];
    fmt_money(ev->total_amount, money, sizeof money);
    snprintf(user, sizeof user, "%" PRId64, ev->user_id);
    bool created = ev->type == OMS_EV_ORDER_CREATED;
    bool amounts = created || ev->nitems > 0;
    if (ev->previous_status && *ev->previous_status)
        snprintf(move, sizeof move, "%s -> %s", ev->previous_status, status);
    else
        snprintf(move, sizeof move, "%s", status);
    if (created)
        snprintf(buf, sizeof buf, "Order creation alert triggered for order %s", name);
    else
        snprintf(buf, sizeof buf, "Order status alert triggered for order %s: %s", name, status);
    n->message = strdup(buf);
    if (created)
        snprintf(buf, sizeof buf, "[OMS] New order %s: total %s, user %s", name, money, user);
    else
        snprintf(buf, sizeof buf, "[OMS] Order %s is %s", name, status);
    n->subject = strdup(buf);
    n->tags = json_pack("{s:s,s:s,s:s,s:s,s:s}", "orderId", ev->order_id ? ev->order_id : "",
                        "aliasId", ev->alias_id ? ev->alias_id : "", "userId", user, "status",
                        status, "eventType", oms_event_type_name(ev->type));
    n->extra = json_pack("{s:s}", "eventId", ev->event_id);
    if (n->extra && amounts) {
        json_object_set_new(n->extra, "total", json_real(ev->total_amount));
        json_object_set_new(n->extra, "items", items_json(ev));
    }
    if (n->extra && ev->previous_status)
        json_object_set_new(n->extra, "previousStatus", json_string(ev->previous_status));
    if (n->extra && ev->message && *ev->message)
        json_object_set_new(n->extra, "statusMessage", json_string(ev->message));

    oms_mail_buf t = {0}, h = {0};
    int rc = oms_mail_printf(&t, "%s\n\nOrder:  %s (id %s)\nUser:   %s\nStatus: %s\n",
                             created ? "A new order was created." : "An order changed status.",
                             name, ev->order_id ? ev->order_id : "", user, move);
    rc = rc ? rc : oms_mail_printf(&h, "<!DOCTYPE html>\n<html><body>\n<h2>");
    rc = rc ? rc : oms_mail_html_escape(&h, created ? "New order " : "Order ");
    rc = rc ? rc : oms_mail_html_escape(&h, name);
    rc = rc ? rc : oms_mail_printf(&h, "</h2>\n<table>\n<tr><th align=\"left\">Order</th><td>");
    rc = rc ? rc : oms_mail_html_escape(&h, name);
    rc = rc ? rc : oms_mail_printf(&h, " (id ");
    rc = rc ? rc : oms_mail_html_escape(&h, ev->order_id ? ev->order_id : "");
    rc = rc ? rc : oms_mail_printf(&h, ")</td></tr>\n<tr><th align=\"left\">User</th>"
                                       "<td>%s</td></tr>\n<tr><th align=\"left\">Status</th><td>",
                                   user);
    rc = rc ? rc : oms_mail_html_escape(&h, move);
    rc = rc ? rc : oms_mail_printf(&h, "</td></tr>\n");
    if (!rc && ev->message && *ev->message) {
        rc = oms_mail_printf(&t, "Note:   %s\n", ev->message);
        rc = rc ? rc : oms_mail_printf(&h, "<tr><th align=\"left\">Note</th><td>");
        rc = rc ? rc : oms_mail_html_escape(&h, ev->message);
        rc = rc ? rc : oms_mail_printf(&h, "</td></tr>\n");
    }
    if (!rc && amounts) {
        rc = oms_mail_printf(&t, "Total:  %s\nItems:\n", money);
        rc = rc ? rc : oms_mail_printf(&h, "<tr><th align=\"left\">Total</th><td>%s</td></tr>\n",
                                       money);
    }
    rc = rc ? rc : oms_mail_printf(&h, "</table>\n");
    if (!rc && amounts)
        rc = oms_mail_printf(&h, "<h3>Items</h3>\n<ul>\n");
    for (size_t i = 0; !rc && i < ev->nitems; i++) {
        const oms_order_item *it = &ev->items[i];
        char price[48];
        fmt_money(it->price, price, sizeof price);
        const char *pn = it->product_name ? it->product_name : "";
        rc = oms_mail_printf(&t, "  - %d x %s (product %" PRId64 ") at %s\n", (int)it->quantity,
                             pn, it->product_id, price);
        rc = rc ? rc : oms_mail_printf(&h, "<li>%d &times; ", (int)it->quantity);
        rc = rc ? rc : oms_mail_html_escape(&h, pn);
        rc = rc ? rc : oms_mail_printf(&h, " (product %" PRId64 ") at %s</li>\n", it->product_id,
                                       price);
    }
    if (!rc && amounts && !ev->nitems)
        rc = oms_mail_printf(&t, "  (none)\n");
    if (!rc && amounts)
        rc = oms_mail_printf(&h, "</ul>\n");
    rc = rc ? rc : link_parts(&t, &h, console_url);
    rc = rc ? rc : oms_mail_printf(&t, "\nEvent %s\n", ev->event_id);
    rc = rc ? rc : oms_mail_printf(&h, "<p><small>Event %s</small></p>\n</body></html>\n",
                                   ev->event_id);
    n->text = t.p;
    n->html = h.p;
    return rc;
}

/* Inventory and notifications: a title line and the fields. */
static int other_notice(const oms_event *ev, const char *console_url, oms_alert_notice *n)
{
    char buf[512], summary[400];
    oms_alert_summary(ev, summary, sizeof summary);
    if (ev->type == OMS_EV_INVENTORY_CHANGED) {
        snprintf(buf, sizeof buf, "Inventory alert triggered for product %" PRId64 " (%s): %s",
                 ev->product_id, ev->product_name ? ev->product_name : "",
                 ev->status ? ev->status : "");
        char pid[32];
        snprintf(pid, sizeof pid, "%" PRId64, ev->product_id);
        n->tags = json_pack("{s:s,s:s,s:s}", "productId", pid, "status",
                            ev->status ? ev->status : "", "eventType",
                            oms_event_type_name(ev->type));
        n->extra = json_pack("{s:s,s:i,s:i,s:s}", "productName",
                             ev->product_name ? ev->product_name : "", "quantity",
                             (int)ev->quantity, "threshold", (int)ev->threshold, "eventId",
                             ev->event_id);
    } else {
        snprintf(buf, sizeof buf, "Notification alert triggered: %s", ev->title ? ev->title : "");
        n->tags = json_pack("{s:s}", "eventType", oms_event_type_name(ev->type));
        n->extra = json_pack("{s:s,s:s}", "message", ev->message ? ev->message : "", "eventId",
                             ev->event_id);
        if (ev->type == OMS_EV_USER_NOTIFICATION) {
            char user[32];
            snprintf(user, sizeof user, "%" PRId64, ev->user_id);
            json_object_set_new(n->tags, "userId", json_string(user));
        }
    }
    n->message = strdup(buf);
    char subj[600];
    snprintf(subj, sizeof subj, "[OMS] %s", buf);
    n->subject = strdup(subj);
    oms_mail_buf t = {0}, h = {0};
    int rc = oms_mail_printf(&t, "%s\n\n%s\n", buf, summary);
    if (!rc && ev->message && *ev->message)
        rc = oms_mail_printf(&t, "\n%s\n", ev->message);
    rc = rc ? rc : oms_mail_printf(&h, "<!DOCTYPE html>\n<html><body>\n<h2>");
    rc = rc ? rc : oms_mail_html_escape(&h, buf);
    rc = rc ? rc : oms_mail_printf(&h, "</h2>\n<p>");
    rc = rc ? rc : oms_mail_html_escape(&h, summary);
    rc = rc ? rc : oms_mail_printf(&h, "</p>\n");
    if (!rc && ev->message && *ev->message) {
        rc = oms_mail_printf(&h, "<p>");
        rc = rc ? rc : oms_mail_html_escape(&h, ev->message);
        rc = rc ? rc : oms_mail_printf(&h, "</p>\n");
    }
    rc = rc ? rc : link_parts(&t, &h, console_url);
    rc = rc ? rc : oms_mail_printf(&t, "\nEvent %s\n", ev->event_id);
    rc = rc ? rc : oms_mail_printf(&h, "<p><small>Event %s</small></p>\n</body></html>\n", ev->event_id);
    n->text = t.p;
    n->html = h.p;
    return rc;
}

int oms_alert_notice_from_event(const oms_event *raw, const char *console_url,
                                oms_alert_notice *out)
{
    memset(out, 0, sizeof *out);
    oms_event clean;
    if (clean_event(raw, &clean) != 0) {
        clean_event_free(&clean);
        return OMS_ENOMEM;
    }
    const oms_event *ev = &clean;
    snprintf(out->key, sizeof out->key, "%.36s", ev->event_id);
    oms_sentry_event_id(ev->event_id, out->event_id);
    out->level = ev->type == OMS_EV_SYSTEM_NOTIFICATION && ev->severity &&
                         strcmp(ev->severity, "critical") == 0
                     ? "error"
                     : ev->type == OMS_EV_INVENTORY_CHANGED ? "warning" : "info";
    out->timestamp_ms = ev->occurred_at;
    int rc = ev->type == OMS_EV_ORDER_CREATED || ev->type == OMS_EV_ORDER_STATUS_CHANGED
                 ? order_notice(ev, console_url, out)
                 : other_notice(ev, console_url, out);
    clean_event_free(&clean);
    if (rc || !out->message || !out->subject || !out->tags || !out->extra || !out->text ||
        !out->html) {
        oms_alert_notice_clear(out);
        return OMS_ENOMEM;
    }
    return 0;
}

int oms_alert_notice_digest(const char *digest_id, const char *const *lines, size_t count,
                            int max_per_minute, int64_t first_ms, int64_t last_ms,
                            const char *console_url, int64_t now_ms, oms_alert_notice *out)
{
    memset(out, 0, sizeof *out);
    snprintf(out->key, sizeof out->key, "digest-%s", digest_id);
    oms_sentry_event_id(digest_id, out->event_id);
    out->level = "info";
    out->timestamp_ms = now_ms;
    char buf[300], from[32], to[32];
    oms_iso8601_ms(first_ms, from, sizeof from);
    oms_iso8601_ms(last_ms, to, sizeof to);
    snprintf(buf, sizeof buf,
             "Alert digest: %zu notices folded (more than %d per minute)", count, max_per_minute);
    out->message = strdup(buf);
    snprintf(buf, sizeof buf, "[OMS] Digest: %zu notices between %s and %s", count, from, to);
    out->subject = strdup(buf);
    char cnt[32];
    snprintf(cnt, sizeof cnt, "%zu", count);
    out->tags = json_pack("{s:s,s:s}", "digest", "true", "count", cnt);
    json_t *first = json_array();
    for (size_t i = 0; i < count && i < 100; i++)
        json_array_append_new(first, json_string(lines[i]));
    out->extra = json_pack("{s:I,s:s,s:s,s:s,s:o}", "count", (json_int_t)count, "digestId",
                           digest_id, "from", from, "to", to, "notices", first);
    oms_mail_buf t = {0}, h = {0};
    int rc = oms_mail_printf(&t,
                             "%zu notices arrived faster than alerts.max_per_minute (%d) and were "
                             "folded into this digest (%s to %s):\n\n",
                             count, max_per_minute, from, to);
    rc = rc ? rc : oms_mail_printf(&h, "<!DOCTYPE html>\n<html><body>\n<h2>%zu notices folded</h2>\n"
                                       "<p>They arrived faster than alerts.max_per_minute (%d), "
                                       "between %s and %s.</p>\n<ol>\n",
                                   count, max_per_minute, from, to);
    for (size_t i = 0; !rc && i < count; i++) {
        rc = oms_mail_printf(&t, "%zu. %s\n", i + 1, lines[i]);
        rc = rc ? rc : oms_mail_printf(&h, "<li>");
        rc = rc ? rc : oms_mail_html_escape(&h, lines[i]);
        rc = rc ? rc : oms_mail_printf(&h, "</li>\n");
    }
    rc = rc ? rc : oms_mail_printf(&h, "</ol>\n");
    rc = rc ? rc : link_parts(&t, &h, console_url);
    rc = rc ? rc : oms_mail_printf(&t, "\nDigest %s\n", digest_id);
    rc = rc ? rc : oms_mail_printf(&h, "<p><small>Digest %s</small></p>\n</body></html>\n", digest_id);
    out->text = t.p;
    out->html = h.p;
    if (rc || !out->message || !out->subject || !out->tags || !out->extra || !t.p || !h.p) {
        oms_alert_notice_clear(out);
        return OMS_ENOMEM;
    }
    return 0;
}
