/* socketio.c — omsd's Socket.IO v4 dialect: Engine.IO 4 / Socket.IO 5 over
 * WebSocket (/socket.io/?EIO=4&transport=websocket), namespace /events.
 *
 * Engine.IO OPEN (`0{...}`) -> we send CONNECT `40/events,{"token":...}`;
 * the server's `connected` event follows the CONNECT answer, then each
 * `42/events,["subscribe_to_orders"]` gets `subscription_confirmed`.
 * Events arrive as `42/events,["NAME",DATA]`, DATA's `timestamp` the
 * event's occurredAt. The server pings (`2`) and we answer (`3`). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "load.h"

#define OUT_CONNECT 1u
#define OUT_SUB_ORDERS 2u
#define OUT_SUB_INVENTORY 4u

static int on_writeable(load_conn *c, struct lws *wsi)
{
    int rc = 0;
    if (c->pongs > 0) {
        c->pongs--;
        rc = load_send_text(wsi, "3", 1);
    } else if (c->out & OUT_CONNECT) {
        c->out &= ~OUT_CONNECT;
        char *tok = load_token_for(c);
        if (!tok)
            return -1;
        char buf[4200];
        int n = snprintf(buf, sizeof buf, "40/events,{\"token\":\"%s\"}", tok);
        free(tok);
        if (n < 0 || (size_t)n >= sizeof buf)
            return -1;
        rc = load_send_text(wsi, buf, (size_t)n);
    } else if (c->out & OUT_SUB_ORDERS) {
        static const char f[] = "42/events,[\"subscribe_to_orders\"]";
        c->out &= ~OUT_SUB_ORDERS;
        rc = load_send_text(wsi, f, sizeof f - 1);
    } else if (c->out & OUT_SUB_INVENTORY) {
        static const char f[] = "42/events,[\"subscribe_to_inventory\"]";
        c->out &= ~OUT_SUB_INVENTORY;
        rc = load_send_text(wsi, f, sizeof f - 1);
    }
    if (c->pongs > 0 || c->out)
        lws_callback_on_writable(wsi);
    return rc;
}

/* A server EVENT `42/events,["NAME",DATA]` (p past "42/events,"). */
static void on_event(load_conn *c, const char *p, const char *e, const char *whole, size_t wlen)
{
    if (p >= e || *p != '[' || p + 1 >= e || p[1] != '"') {
        load_note_error("unparsable event");
        return;
    }
    const char *n = p + 2, *ne = load_json_skip_string(p + 1, e);
    if (!ne) {
        load_note_error("unparsable event");
        return;
    }
    size_t nl = (size_t)(ne - 1 - n);
    const char *data = ne < e && *ne == ',' ? ne + 1 : e;
    if (load_name_is(n, nl, "connected")) {
        if (!c->hello) {
            load_conn_hello(c);
            if (!load.idle) {
                c->want = (load.subs & LOAD_SUB_ORDERS ? 1 : 0) +
                          (load.subs & LOAD_SUB_INVENTORY ? 1 : 0);
                c->out |= (load.subs & LOAD_SUB_ORDERS ? OUT_SUB_ORDERS : 0) |
                          (load.subs & LOAD_SUB_INVENTORY ? OUT_SUB_INVENTORY : 0);
            }
            if (c->out)
                load_want_write(c);
        }
        return;
    }
    if (load_name_is(n, nl, "subscription_confirmed")) {
        load_conn_confirmed(c);
        return;
    }
    if (load_name_is(n, nl, "error")) {
        load_note_error_frame(c, whole, wlen);
        return;
    }
    if (load_name_is(n, nl, "pong") || load_name_is(n, nl, "resumed") ||
        load_name_is(n, nl, "unsubscribed") || load_name_is(n, nl, "token_refreshed"))
        return;
    const char *ts, *tse;
    int64_t ts_ms = -1;
    if (!load_json_string_member(data, e, "timestamp", &ts, &tse) ||
        !load_parse_ts_ms(ts, tse, &ts_ms))
        ts_ms = -1;
    load_count_event(c, load_kind_of(n, nl), ts_ms);
}

static void on_message(load_conn *c, const char *m, size_t n)
{
    static const char ev[] = "42/events,";
    if (n >= sizeof ev - 1 && memcmp(m, ev, sizeof ev - 1) == 0) {
        on_event(c, m + sizeof ev - 1, m + n, m, n);
    } else if (n == 1 && m[0] == '2') {
        load.pings++;
        c->pongs++;
        load_want_write(c);
    } else if (n > 0 && m[0] == '0') {
        c->out |= OUT_CONNECT;
        load_want_write(c);
    } else if (n >= 10 && memcmp(m, "40/events,", 10) == 0) {
        /* joined; the `connected` event follows */
    } else if (n >= 10 && memcmp(m, "44/events,", 10) == 0) {
        load_note_error("connect refused (CONNECT_ERROR)");
        if (!load.first_error_frame[0])
            snprintf(load.first_error_frame, sizeof load.first_error_frame, "%.*s",
                     (int)(n < 190 ? n : 190), m);
    } else if (n >= 10 && memcmp(m, "41/events,", 10) == 0) {
        load_note_error("server disconnect");
    } else if (!(n > 0 && m[0] == '6')) {
        load_note_error("unexpected packet");
    }
}

const load_proto oms_load_socketio = {
    .name = "socketio",
    .default_path = "/socket.io/?EIO=4&transport=websocket",
    .on_writeable = on_writeable,
    .on_message = on_message,
};
