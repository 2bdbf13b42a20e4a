/* plain.c — omsd's plain JSON dialect on /events.
 *
 * The token goes in `Authorization: Bearer` on the upgrade request; omsd
 * answers `connected`, then each `subscribe_to_orders` /
 * `subscribe_to_inventory` with `subscription_confirmed` (or `error`), and
 * pushes {"event": NAME, "data": RealTimeEvent} frames whose
 * `data.timestamp` is the event's occurredAt (ISO 8601, ms). */
#include <stdlib.h>
#include <string.h>

#include "load.h"

#define OUT_SUB_ORDERS 1u
#define OUT_SUB_INVENTORY 2u

static int handshake_headers(load_conn *c, struct lws *wsi, unsigned char **p, unsigned char *end)
{
    char *tok = load_token_for(c);
    if (!tok)
        return 0;
    size_t hl = strlen(tok) + 8;
    char *h = malloc(hl);
    if (!h) {
        free(tok);
        return -1;
    }
    snprintf(h, hl, "Bearer %s", tok);
    int rc = lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_AUTHORIZATION, (unsigned char *)h,
                                          (int)strlen(h), p, end);
    free(h);
    free(tok);
    return rc ? -1 : 0;
}

static void on_open(load_conn *c, struct lws *wsi)
{
    if (load.idle)
        return;
    c->want = (load.subs & LOAD_SUB_ORDERS ? 1 : 0) + (load.subs & LOAD_SUB_INVENTORY ? 1 : 0);
    c->out = (load.subs & LOAD_SUB_ORDERS ? OUT_SUB_ORDERS : 0) |
             (load.subs & LOAD_SUB_INVENTORY ? OUT_SUB_INVENTORY : 0);
    if (c->out)
        lws_callback_on_writable(wsi);
}

static int on_writeable(load_conn *c, struct lws *wsi)
{
    static const char orders[] = "{\"event\":\"subscribe_to_orders\"}";
    static const char inventory[] = "{\"event\":\"subscribe_to_inventory\"}";
    int rc = 0;
    if (c->out & OUT_SUB_ORDERS) {
        c->out &= ~OUT_SUB_ORDERS;
        rc = load_send_text(wsi, orders, sizeof orders - 1);
    } else if (c->out & OUT_SUB_INVENTORY) {
        c->out &= ~OUT_SUB_INVENTORY;
        if (load.filter_products > 0) {
            char m[160];
            int n = snprintf(m, sizeof m,
                             "{\"event\":\"subscribe_to_inventory\",\"data\":{\"filter\":"
                             "{\"productId\":%lld}}}",
                             (long long)(load.first_product + c->idx % load.filter_products));
            rc = load_send_text(wsi, m, (size_t)n);
        } else {
            rc = load_send_text(wsi, inventory, sizeof inventory - 1);
        }
    }
    if (c->out)
        lws_callback_on_writable(wsi);
    return rc;
}

static void on_message(load_conn *c, const char *m, size_t n)
{
    const char *e = m + n, *ev, *eve, *data, *datae;
    if (!load_json_string_member(m, e, "event", &ev, &eve)) {
        load_note_error("unparsable frame");
        return;
    }
    size_t nl = (size_t)(eve - ev);
    if (load_name_is(ev, nl, "connected")) {
        load_conn_hello(c);
        return;
    }
    if (load_name_is(ev, nl, "subscription_confirmed")) {
        load_conn_confirmed(c);
        return;
    }
    if (load_name_is(ev, nl, "error")) {
        load_note_error_frame(c, m, n);
        return;
    }
    if (load_name_is(ev, nl, "pong") || load_name_is(ev, nl, "resumed") ||
        load_name_is(ev, nl, "unsubscribed") || load_name_is(ev, nl, "token_refreshed"))
        return;
    /* a pushed event */
    const char *ts, *tse;
    int64_t ts_ms = -1;
    if (!load_json_member(m, e, "data", &data, &datae) ||
        !load_json_string_member(data, datae, "timestamp", &ts, &tse) ||
        !load_parse_ts_ms(ts, tse, &ts_ms))
        ts_ms = -1;
    load_count_event(c, load_kind_of(ev, nl), ts_ms);
}

const load_proto oms_load_plain = {
    .name = "plain",
    .default_path = "/events",
    .handshake_headers = handshake_headers,
    .on_open = on_open,
    .on_writeable = on_writeable,
    .on_message = on_message,
};
