/* centrifugo.c — Centrifugo's client protocol (v2, JSON) on
 * /connection/websocket, so that omsd and Centrifugo can be loaded by the
 * same client in one benchmark.
 *
 * We send `{"id":1,"connect":{"token":JWT}}` (HS256, `sub` the user id),
 * then one `{"id":N,"subscribe":{"channel":C}}` per channel; replies carry
 * the command's id (`error` instead of the result on failure). Publications
 * arrive as `{"push":{"channel":C,"pub":{"data":RECORD,...}}}`, RECORD the
 * JSON the Kafka consumer read, its `occurredAt` (Unix ms) or `timestamp`
 * the produce time. The server pings with `{}` and wants `{}` back. Several
 * replies may share one WebSocket frame, one per line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "load.h"

#define OUT_CONNECT 1u
#define MAX_CHANNELS 8

static char channels[MAX_CHANNELS][64];
static int nchannels = -1;

/* --channels LIST, else orders/inventory as --subscribe says, plus `system`:
 * every omsd connection gets system notifications without asking */
static void channels_init(void)
{
    nchannels = 0;
    if (load.channels) {
        const char *p = load.channels;
        while (*p && nchannels < MAX_CHANNELS) {
            size_t n = strcspn(p, ",");
            if (n > 0 && n < sizeof channels[0]) {
                memcpy(channels[nchannels], p, n);
                channels[nchannels++][n] = '\0';
            }
            p += n;
            if (*p == ',')
                p++;
        }
        return;
    }
    if (load.subs & LOAD_SUB_ORDERS)
        snprintf(channels[nchannels++], sizeof channels[0], "orders");
    if (load.subs & LOAD_SUB_INVENTORY)
        snprintf(channels[nchannels++], sizeof channels[0], "inventory");
    if (load.subs)
        snprintf(channels[nchannels++], sizeof channels[0], "system");
}

static void on_open(load_conn *c, struct lws *wsi)
{
    if (nchannels < 0)
        channels_init();
    c->out = OUT_CONNECT;
    lws_callback_on_writable(wsi);
}

/* c->out: OUT_CONNECT, then bit 1 + i for channel i still to subscribe */
static int on_writeable(load_conn *c, struct lws *wsi)
{
    int rc = 0;
    char buf[4300];
    if (c->pongs > 0) {
        c->pongs--;
        rc = load_send_text(wsi, "{}", 2);
    } else if (c->out & OUT_CONNECT) {
        c->out &= ~OUT_CONNECT;
        char *tok = load_token_for(c);
        if (!tok)
            return -1;
        int n = snprintf(buf, sizeof buf, "{\"id\":1,\"connect\":{\"token\":\"%s\",\"name\":\"%s\"}}",
                         tok, LOAD_PROG);
        free(tok);
        if (n < 0 || (size_t)n >= sizeof buf)
            return -1;
        rc = load_send_text(wsi, buf, (size_t)n);
    } else {
        for (int i = 0; i < nchannels; i++) {
            if (!(c->out & (2u << i)))
                continue;
            c->out &= ~(2u << i);
            int n = snprintf(buf, sizeof buf, "{\"id\":%d,\"subscribe\":{\"channel\":\"%s\"}}",
                             i + 2, channels[i]);
            rc = load_send_text(wsi, buf, (size_t)n);
            break;
        }
    }
    if (c->pongs > 0 || c->out)
        lws_callback_on_writable(wsi);
    return rc;
}

static int kind_of_channel(const char *ch, size_t n)
{
    if (load_name_is(ch, n, "orders"))
        return LOAD_EV_ORDER;
    if (load_name_is(ch, n, "inventory"))
        return LOAD_EV_INVENTORY;
    if (load_name_is(ch, n, "system"))
        return LOAD_EV_SYSTEM_NOTE;
    if (n >= 4 && memcmp(ch, "user", 4) == 0)
        return LOAD_EV_USER_NOTE;
    return LOAD_EV_OTHER;
}

static void on_push(load_conn *c, const char *p, const char *e)
{
    const char *pub, *pube, *data, *datae, *ch, *che, *ts, *tse;
    if (!load_json_member(p, e, "pub", &pub, &pube)) {
        if (load_json_member(p, e, "disconnect", &pub, &pube))
            load_note_error("server disconnect");
        return; /* join/leave and the like: not publications */
    }
    int kind = LOAD_EV_OTHER;
    if (load_json_string_member(p, e, "channel", &ch, &che))
        kind = kind_of_channel(ch, (size_t)(che - ch));
    /* the record's produce time: occurredAt as Avro's timestamp-millis in
     * JSON (a number), or an ISO 8601 occurredAt or timestamp */
    int64_t ts_ms = -1;
    bool have = load_json_member(pub, pube, "data", &data, &datae) &&
                ((load_json_member(data, datae, "occurredAt", &ts, &tse) && *ts != '"') ||
                 load_json_string_member(data, datae, "occurredAt", &ts, &tse) ||
                 load_json_string_member(data, datae, "timestamp", &ts, &tse));
    if (!have || !load_parse_ts_ms(ts, tse, &ts_ms))
        ts_ms = -1;
    load_count_event(c, kind, ts_ms);
}

static void on_reply(load_conn *c, const char *m, const char *e)
{
    const char *v, *ve;
    if (e - m == 2 && m[0] == '{' && m[1] == '}') {
        load.pings++;
        c->pongs++;
        load_want_write(c);
        return;
    }
    if (load_json_member(m, e, "push", &v, &ve)) {
        on_push(c, v, ve);
        return;
    }
    if (!load_json_member(m, e, "id", &v, &ve)) {
        load_note_error("unexpected reply");
        return;
    }
    long id = strtol(v, NULL, 10);
    if (load_json_member(m, e, "error", &v, &ve)) {
        if (id == 1)
            load_note_error("connect refused");
        load_note_error_frame(c, m, (size_t)(e - m));
        return;
    }
    if (id == 1) {
        load_conn_hello(c);
        if (!load.idle && nchannels > 0) {
            c->want = nchannels;
            c->out |= ((2u << nchannels) - 1) & ~1u;
            load_want_write(c);
        }
        return;
    }
    load_conn_confirmed(c);
}

static void on_message(load_conn *c, const char *m, size_t n)
{
    const char *e = m + n;
    while (m < e) {
        const char *nl = memchr(m, '\n', (size_t)(e - m)), *le = nl ? nl : e;
        if (le > m)
            on_reply(c, m, le);
        m = nl ? nl + 1 : e;
    }
}

const load_proto oms_load_centrifugo = {
    .name = "centrifugo",
    .default_path = "/connection/websocket",
    .on_open = on_open,
    .on_writeable = on_writeable,
    .on_message = on_message,
};
