/* oms-wsload — WebSocket load generator for omsd's plain JSON dialect.
 *
 * One process, one libwebsockets service thread, many client connections to
 * ws://127.0.0.1:PORT/events. Each connection authenticates with an HS256
 * token minted here from the shared secret, optionally subscribes, and counts
 * the pushed events it receives; the produce→receive latency of each event
 * is now − its `data.timestamp` (the event's occurredAt, ISO 8601 UTC with
 * milliseconds), kept in a histogram.
 *
 * Workplace rules built in: only loopback addresses are accepted, and the
 * run always ends by itself (--duration caps it).
 *
 * Note on latency: occurredAt has millisecond resolution (truncated), so a
 * measured latency is the true one plus 0..1 ms. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <libwebsockets.h>
#include <netdb.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "auth/auth.h"
#include "common/oms.h"
#include "json/json.h"

#define PROG "oms-wsload"

/* latency histogram: 100 µs buckets up to 30 s, then one overflow bucket */
#define HIST_STEP_US 100
#define HIST_BUCKETS (30 * 1000 * 1000 / HIST_STEP_US)

enum conn_state { CS_NEW = 0, CS_CONNECTING, CS_OPEN, CS_CLOSED, CS_FAILED };

typedef struct conn {
    struct lws *wsi;
    int idx;
    enum conn_state state;
    bool hello;      /* got `connected` */
    bool subscribed; /* got every subscription_confirmed asked for */
    int confirms;    /* subscription_confirmed received */
    int want;        /* subscriptions asked for */
    int answers;     /* subscriptions answered (confirmed or refused) */
    int next_sub;    /* next subscription to send (bit index) */
    uint64_t events;
    char *rx;
    size_t rxlen, rxcap;
} conn;

typedef struct err_count {
    char what[128];
    uint64_t n;
} err_count;

enum { EV_ORDER, EV_INVENTORY, EV_USER_NOTE, EV_SYSTEM_NOTE, EV_OTHER, EV__COUNT };
static const char *const ev_names[EV__COUNT] = {"order_update", "inventory_update",
                                                "user_notification", "system_notification",
                                                "other"};

static struct {
    /* options */
    char host[64];
    char addr[64]; /* numeric loopback address we connect to */
    int port;
    char path[512];
    int nconns;
    const char *secret;
    const char *token;
    oms_role role;
    int64_t user_id; /* 0: first_user_id .. first_user_id + N - 1 */
    int64_t first_user_id;
    unsigned subs; /* 1 orders, 2 inventory */
    double duration_s;
    int ramp;
    int max_pending;
    bool idle;
    uint64_t expect;
    double quiet_s;
    bool json;
    bool verbose;
    const char *ready_file;

    /* state */
    struct lws_context *ctx;
    conn *conns;
    int started, pending, open, hello, subscribed, failed, closed;
    uint64_t t0_ns, ready_ns;
    bool ready;
    bool stopping;
    const char *stop_reason;
    err_count errs[8];
    int nerrs;
    uint64_t close_codes[8][2]; /* code, count */
    int ncodes;
    uint64_t closes_other; /* codes past the table */

    /* measurements */
    uint64_t events, by_kind[EV__COUNT], frames, bytes, error_frames, no_ts;
    uint64_t first_ev_ns, last_ev_ns;
    int64_t first_ev_us, last_ev_us; /* the same, wall clock */
    uint64_t *hist;
    uint64_t hist_over;
    int64_t lat_max_us;
    double lat_sum_us;
    char first_error_frame[200];
} g;

static volatile sig_atomic_t got_signal;

static void on_signal(int sig)
{
    got_signal = sig;
    /* lws_cancel_service is documented as safe from other threads, but not
     * from a signal handler: the 100 ms tick notices the flag instead */
}

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- small, allocation-free JSON scanning ------------------------------------ */

static const char *skip_ws(const char *p, const char *e)
{
    while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

/* p at '"': returns the position after the closing quote, or NULL */
static const char *skip_string(const char *p, const char *e)
{
    for (p++; p < e;) {
        const char *q = memchr(p, '"', (size_t)(e - p));
        if (!q)
            return NULL;
        /* escaped when preceded by an odd number of backslashes */
        size_t bs = 0;
        while (q - bs > p && q[-1 - (ptrdiff_t)bs] == '\\')
            bs++;
        if (!(bs & 1))
            return q + 1;
        p = q + 1;
    }
    return NULL;
}

static const char *skip_value(const char *p, const char *e)
{
    p = skip_ws(p, e);
    if (p >= e)
        return NULL;
    if (*p == '"')
        return skip_string(p, e);
    if (*p == '{' || *p == '[') {
        int depth = 0;
        while (p < e) {
            char ch = *p;
            if (ch == '"') {
                p = skip_string(p, e);
                if (!p)
                    return NULL;
                continue;
            }
            if (ch == '{' || ch == '[')
                depth++;
            else if (ch == '}' || ch == ']') {
                if (--depth == 0)
                    return p + 1;
            }
            p++;
        }
        return NULL;
    }
    while (p < e && *p != ',' && *p != '}' && *p != ']')
        p++;
    return p;
}

static bool key_is(const char *k, const char *kend, const char *want)
{
    size_t n = strlen(want);
    return (size_t)(kend - k) == n && memcmp(k, want, n) == 0;
}

/* What one frame {"event": NAME, "data": {..., "timestamp": TS, ...}} holds. */
typedef struct frame_info {
    const char *event, *event_end;
    const char *ts, *ts_end; /* data.timestamp, when data is an object */
} frame_info;

/* One pass over an object at p ('{'). At depth 0 it records "event" and
 * descends into "data"; at depth 1 it records "timestamp". Returns the end
 * of the object, or NULL on bad JSON. Stops early once it has what it needs. */
static const char *scan_object(const char *p, const char *e, int depth, frame_info *fi)
{
    p = skip_ws(p, e);
    if (p >= e || *p != '{')
        return NULL;
    p = skip_ws(p + 1, e);
    if (p < e && *p == '}')
        return p + 1;
    while (p < e) {
        if (*p != '"')
            return NULL;
        const char *k = p + 1;
        const char *ke = skip_string(p, e);
        if (!ke)
            return NULL;
        ke--; /* at the closing quote */
        p = skip_ws(ke + 1, e);
        if (p >= e || *p != ':')
            return NULL;
        const char *v = skip_ws(p + 1, e), *ve;
        if (v >= e)
            return NULL;
        if (depth == 0 && *v == '{' && key_is(k, ke, "data")) {
            ve = scan_object(v, e, 1, fi);
        } else {
            ve = skip_value(v, e);
            if (ve && *v == '"') {
                if (depth == 0 && key_is(k, ke, "event")) {
                    fi->event = v + 1;
                    fi->event_end = ve - 1;
                } else if (depth == 1 && key_is(k, ke, "timestamp")) {
                    fi->ts = v + 1;
                    fi->ts_end = ve - 1;
                }
            }
        }
        if (!ve)
            return NULL;
        if (depth == 0 && fi->event && fi->ts)
            return e;
        p = skip_ws(ve, e);
        if (p < e && *p == ',') {
            p = skip_ws(p + 1, e);
            continue;
        }
        return p < e && *p == '}' ? p + 1 : NULL;
    }
    return NULL;
}

/* days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant) */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static int digits(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* "2026-11-25T18:13:04.123Z" fast; anything else through the library */
static bool parse_ts_ms(const char *s, const char *e, int64_t *ms)
{
    if (e - s == 24 && s[4] == '-' && s[7] == '-' && s[10] == 'T' && s[13] == ':' &&
        s[16] == ':' && s[19] == '.' && s[23] == 'Z') {
        int y = digits(s, 4), mo = digits(s + 5, 2), d = digits(s + 8, 2), h = digits(s + 11, 2),
            mi = digits(s + 14, 2), se = digits(s + 17, 2), f = digits(s + 20, 3);
        if (y >= 0 && mo >= 1 && mo <= 12 && d >= 1 && d <= 31 && h >= 0 && mi >= 0 && se >= 0 &&
            f >= 0) {
            int64_t days = days_from_civil(y, (unsigned)mo, (unsigned)d);
            *ms = ((days * 24 + h) * 60 + mi) * 60000 + (int64_t)se * 1000 + f;
            return true;
        }
    }
    char buf[64];
    if (e - s <= 0 || e - s >= (long)sizeof buf)
        return false;
    memcpy(buf, s, (size_t)(e - s));
    buf[e - s] = '\0';
    return oms_parse_iso8601_ms(buf, ms) == OMS_OK;
}

/* ---- per-message accounting -------------------------------------------------- */

static void note_error(const char *what)
{
    for (int i = 0; i < g.nerrs; i++) {
        if (strcmp(g.errs[i].what, what) == 0) {
            g.errs[i].n++;
            return;
        }
    }
    int last = (int)OMS_ARRAY_LEN(g.errs) - 1;
    int i = g.nerrs < last ? g.nerrs++ : last;
    if (i == last) {
        snprintf(g.errs[i].what, sizeof g.errs[i].what, "(other reasons)");
        g.nerrs = last + 1;
    } else {
        snprintf(g.errs[i].what, sizeof g.errs[i].what, "%s", what);
    }
    g.errs[i].n++;
}

static void note_close_code(unsigned code)
{
    for (int i = 0; i < g.ncodes; i++) {
        if (g.close_codes[i][0] == code) {
            g.close_codes[i][1]++;
            return;
        }
    }
    if (g.ncodes < (int)OMS_ARRAY_LEN(g.close_codes)) {
        g.close_codes[g.ncodes][0] = code;
        g.close_codes[g.ncodes][1] = 1;
        g.ncodes++;
    } else {
        g.closes_other++;
    }
}

static int kind_of(const char *ev, size_t n)
{
    for (int k = 0; k < EV_OTHER; k++)
        if (strlen(ev_names[k]) == n && memcmp(ev, ev_names[k], n) == 0)
            return k;
    return EV_OTHER;
}

static bool name_is(const frame_info *fi, const char *want)
{
    return key_is(fi->event, fi->event_end, want);
}

static void on_message(conn *c, const char *m, size_t n)
{
    g.frames++;
    g.bytes += n;
    frame_info fi;
    memset(&fi, 0, sizeof fi);
    const char *e = m + n;
    if (!scan_object(m, e, 0, &fi) || !fi.event) {
        note_error("unparsable frame");
        return;
    }
    if (name_is(&fi, "connected")) {
        if (!c->hello) {
            c->hello = true;
            g.hello++;
        }
        return;
    }
    if (name_is(&fi, "subscription_confirmed")) {
        c->answers++;
        if (++c->confirms == c->want && !c->subscribed) {
            c->subscribed = true;
            g.subscribed++;
        }
        return;
    }
    if (name_is(&fi, "error")) {
        g.error_frames++;
        if (c->answers < c->want)
            c->answers++; /* a refused subscription (every reply comes in order) */
        if (!g.first_error_frame[0])
            snprintf(g.first_error_frame, sizeof g.first_error_frame, "%.*s",
                     (int)(n < 190 ? n : 190), m);
        return;
    }
    if (name_is(&fi, "pong") || name_is(&fi, "resumed") || name_is(&fi, "unsubscribed") ||
        name_is(&fi, "token_refreshed"))
        return;
    /* a pushed event */
    int64_t now_us = wall_us();
    uint64_t now_ns = mono_ns();
    int k = kind_of(fi.event, (size_t)(fi.event_end - fi.event));
    g.by_kind[k]++;
    g.events++;
    c->events++;
    if (!g.first_ev_ns) {
        g.first_ev_ns = now_ns;
        g.first_ev_us = now_us;
    }
    g.last_ev_ns = now_ns;
    g.last_ev_us = now_us;
    int64_t ts_ms;
    if (!fi.ts || !parse_ts_ms(fi.ts, fi.ts_end, &ts_ms)) {
        g.no_ts++;
        return;
    }
    int64_t lat = now_us - ts_ms * 1000;
    if (lat < 0)
        lat = 0;
    if (lat > g.lat_max_us)
        g.lat_max_us = lat;
    g.lat_sum_us += (double)lat;
    int64_t b = lat / HIST_STEP_US;
    if (b >= HIST_BUCKETS)
        g.hist_over++;
    else
        g.hist[b]++;
}

/* latency (µs) at quantile q: the upper edge of the bucket holding it */
static double percentile_us(double q)
{
    uint64_t total = g.hist_over;
    for (int i = 0; i < HIST_BUCKETS; i++)
        total += g.hist[i];
    if (!total)
        return 0;
    uint64_t rank = (uint64_t)(q * (double)total);
    if (rank >= total)
        rank = total - 1;
    uint64_t seen = 0;
    for (int i = 0; i < HIST_BUCKETS; i++) {
        seen += g.hist[i];
        if (seen > rank) {
            double edge = (double)(i + 1) * HIST_STEP_US;
            return edge < (double)g.lat_max_us ? edge : (double)g.lat_max_us;
        }
    }
    return (double)g.lat_max_us;
}

/* ---- libwebsockets ------------------------------------------------------------- */

static void conn_free_rx(conn *c)
{
    free(c->rx);
    c->rx = NULL;
    c->rxlen = c->rxcap = 0;
}

static void conn_gone(conn *c)
{
    if (c->state == CS_CONNECTING)
        g.pending--;
    if (c->state == CS_OPEN)
        g.open--;
    conn_free_rx(c);
    c->wsi = NULL;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    conn *c = user;
    switch (reason) {
    case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER: {
        if (!c)
            return 0;
        unsigned char **p = in, *end = *p + len;
        char *tok = NULL;
        if (g.token) {
            tok = strdup(g.token);
        } else if (g.secret) {
            int64_t uid = g.user_id ? g.user_id : g.first_user_id + c->idx;
            int64_t ttl = (int64_t)g.duration_s + 3600;
            tok = oms_auth_mint_hs256((const unsigned char *)g.secret, strlen(g.secret), uid,
                                      g.role, ttl, oms_now_ms() / 1000, NULL, NULL);
        }
        if (!tok)
            return 0;
        size_t hl = strlen(tok) + 8;
        char *h = malloc(hl);
        if (!h) {
            free(tok);
            return -1;
        }
        snprintf(h, hl, "Bearer %s", tok);
        int rc = lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_AUTHORIZATION,
                                              (unsigned char *)h, (int)strlen(h), p, end);
        free(h);
        free(tok);
        return rc ? -1 : 0;
    }

    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR: {
        if (!c)
            return 0;
        char what[128];
        int status = (int)lws_http_client_http_response(wsi);
        if (status && status != 101)
            snprintf(what, sizeof what, "HTTP %d (%s)", status,
                     in ? (const char *)in : "no reason");
        else
            snprintf(what, sizeof what, "%s", in ? (const char *)in : "connection error");
        note_error(what);
        conn_gone(c);
        c->state = CS_FAILED;
        g.failed++;
        return 0;
    }

    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        if (!c)
            return 0;
        g.pending--;
        g.open++;
        c->state = CS_OPEN;
        c->want = (g.subs & 1 ? 1 : 0) + (g.subs & 2 ? 1 : 0);
        if (g.subs && !g.idle)
            lws_callback_on_writable(wsi);
        return 0;

    case LWS_CALLBACK_CLIENT_WRITEABLE: {
        if (!c || g.stopping)
            return 0;
        static const char *const frames[] = {"{\"event\":\"subscribe_to_orders\"}",
                                             "{\"event\":\"subscribe_to_inventory\"}"};
        while (c->next_sub < 2 && !(g.subs & (1u << c->next_sub)))
            c->next_sub++;
        if (c->next_sub >= 2)
            return 0;
        unsigned char buf[LWS_PRE + 64];
        size_t n = strlen(frames[c->next_sub]);
        memcpy(buf + LWS_PRE, frames[c->next_sub], n);
        if (lws_write(wsi, buf + LWS_PRE, n, LWS_WRITE_TEXT) < (int)n)
            return -1;
        c->next_sub++;
        if (c->next_sub < 2)
            lws_callback_on_writable(wsi);
        return 0;
    }

    case LWS_CALLBACK_CLIENT_RECEIVE: {
        if (!c)
            return 0;
        bool final = lws_is_final_fragment(wsi) && lws_remaining_packet_payload(wsi) == 0;
        if (final && c->rxlen == 0) {
            on_message(c, in, len); /* the common case: no copy */
            return 0;
        }
        if (c->rxlen + len > c->rxcap) {
            size_t cap = c->rxcap ? c->rxcap : 4096;
            while (cap < c->rxlen + len)
                cap *= 2;
            char *nb = realloc(c->rx, cap);
            if (!nb)
                return -1;
            c->rx = nb;
            c->rxcap = cap;
        }
        memcpy(c->rx + c->rxlen, in, len);
        c->rxlen += len;
        if (final) {
            on_message(c, c->rx, c->rxlen);
            c->rxlen = 0;
            if (c->rxcap > 65536)
                conn_free_rx(c);
        }
        return 0;
    }

    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        if (c && len >= 2) {
            const unsigned char *b = in;
            note_close_code((unsigned)b[0] << 8 | b[1]);
        } else if (c) {
            note_close_code(1005);
        }
        return 0;

    case LWS_CALLBACK_CLIENT_CLOSED:
        if (!c)
            return 0;
        conn_gone(c);
        c->state = CS_CLOSED;
        if (!g.stopping)
            g.closed++;
        return 0;

    default:
        return 0;
    }
}

static const struct lws_protocols protocols[] = {
    {"oms-wsload", callback, 0, 16384, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static void start_one(void)
{
    conn *c = &g.conns[g.started++];
    c->idx = g.started - 1;
    c->state = CS_CONNECTING;
    g.pending++;
    struct lws_client_connect_info i;
    memset(&i, 0, sizeof i);
    i.context = g.ctx;
    i.address = g.addr;
    i.port = g.port;
    i.path = g.path;
    i.host = g.host;
    i.origin = NULL; /* a non-browser client: no Origin header */
    i.protocol = NULL;
    i.local_protocol_name = protocols[0].name;
    i.ietf_version_or_minus_one = -1;
    i.userdata = c;
    i.pwsi = &c->wsi;
    if (!lws_client_connect_via_info(&i)) {
        /* CONNECTION_ERROR may or may not have fired already */
        if (c->state == CS_CONNECTING) {
            note_error("connect failed at once (out of file descriptors?)");
            conn_gone(c);
            c->state = CS_FAILED;
            g.failed++;
        }
    }
}

/* ---- timers -------------------------------------------------------------------- */

static lws_sorted_usec_list_t sul_ramp, sul_check;

static void stop(const char *why)
{
    if (g.stopping)
        return;
    g.stopping = true;
    g.stop_reason = why;
    lws_cancel_service(g.ctx);
}

static void on_ramp(lws_sorted_usec_list_t *sul)
{
    if (g.stopping)
        return;
    double el = (double)(mono_ns() - g.t0_ns) / 1e9;
    long due = (long)(el * g.ramp) + 1;
    while (g.started < g.nconns && g.started < due && g.pending < g.max_pending)
        start_one();
    if (g.started < g.nconns)
        lws_sul_schedule(g.ctx, 0, sul, on_ramp, 5 * LWS_US_PER_MS);
}

static bool conn_settled(const conn *c)
{
    if (c->state == CS_FAILED || c->state == CS_CLOSED)
        return true;
    if (c->state != CS_OPEN || !c->hello)
        return false;
    return g.idle || !g.subs || c->answers >= c->want;
}

static void write_ready_file(void)
{
    if (!g.ready_file)
        return;
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s.tmp", g.ready_file);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        fprintf(stderr, PROG ": cannot write '%s': %s\n", tmp, strerror(errno));
        return;
    }
    fprintf(f, "{\"connected\":%d,\"subscribed\":%d,\"failed\":%d,\"seconds\":%.3f}\n", g.open,
            g.subscribed, g.failed, (double)(mono_ns() - g.t0_ns) / 1e9);
    fclose(f);
    if (rename(tmp, g.ready_file) != 0)
        fprintf(stderr, PROG ": cannot write '%s': %s\n", g.ready_file, strerror(errno));
}

static int settled_scan_from; /* conns before this index are settled */

static void on_check(lws_sorted_usec_list_t *sul)
{
    uint64_t now = mono_ns();
    double el = (double)(now - g.t0_ns) / 1e9;
    if (got_signal)
        stop("signal");
    else if (el >= g.duration_s)
        stop("duration");
    else if (g.expect && g.events >= g.expect)
        stop("expect");
    else if (g.quiet_s > 0 && g.last_ev_ns &&
             (double)(now - g.last_ev_ns) / 1e9 >= g.quiet_s)
        stop("quiet");
    else if (g.started == g.nconns && g.open == 0 && g.pending == 0)
        stop("no connection left");
    if (!g.ready && g.started == g.nconns) {
        while (settled_scan_from < g.nconns && conn_settled(&g.conns[settled_scan_from]))
            settled_scan_from++;
        if (settled_scan_from == g.nconns) {
            g.ready = true;
            g.ready_ns = now;
            write_ready_file();
            if (g.verbose || !g.json)
                fprintf(stderr,
                        PROG ": ready after %.1f s: %d open, %d subscribed, %d failed\n", el,
                        g.open, g.subscribed, g.failed);
        }
    }
    static uint64_t last_progress, last_events;
    if (g.verbose && now - last_progress >= 2000000000u) {
        double dt = last_progress ? (double)(now - last_progress) / 1e9 : el;
        fprintf(stderr, PROG ": %.0f s: %d open, %d pending, %d failed, %d closed, %" PRIu64
                        " events (%.0f/s)\n",
                el, g.open, g.pending, g.failed, g.closed, g.events,
                dt > 0 ? (double)(g.events - last_events) / dt : 0.0);
        last_progress = now;
        last_events = g.events;
    }
    if (!g.stopping)
        lws_sul_schedule(g.ctx, 0, sul, on_check, 100 * LWS_US_PER_MS);
}

/* ---- options --------------------------------------------------------------------- */

static void help(FILE *out)
{
    fprintf(out,
            "usage: " PROG " --url ws://127.0.0.1:PORT/events [options]\n"
            "\n"
            "Opens many WebSocket connections to omsd (plain JSON dialect) from one\n"
            "process, counts the events pushed to them and their produce-to-receive\n"
            "latency (now - data.timestamp). Loopback targets only; always stops by\n"
            "itself (--duration).\n"
            "\n"
            "options:\n"
            "  --url URL            ws://HOST:PORT/PATH, HOST a loopback address or\n"
            "                       localhost (required)\n"
            "  --connections N      connections to open (default 1)\n"
            "  --secret S           mint HS256 tokens with this secret (default:\n"
            "                       $JWT_SECRET)\n"
            "  --token T            use this token for every connection instead\n"
            "  --role R             admin, staff or customer (default admin)\n"
            "  --user-id ID         user id of every token (default: 1..N)\n"
            "  --first-user-id ID   user ids ID..ID+N-1 instead of 1..N (to split\n"
            "                       clients over several processes)\n"
            "  --subscribe WHAT     orders, inventory, all or none (default orders)\n"
            "  --duration SECONDS   stop after this long (default 60, at most 3600)\n"
            "  --ramp-per-sec R     new connections per second (default 1000)\n"
            "  --max-pending N      handshakes in flight at once (default 256)\n"
            "  --idle               connect and hold: no subscription, report the\n"
            "                       connected count\n"
            "  --expect N           stop once N events were received\n"
            "  --quiet-exit S       stop S seconds after the last event (once one came)\n"
            "  --ready-file PATH    write a JSON line there once every connection is\n"
            "                       open and subscribed (or has failed)\n"
            "  --json               print the result as one JSON line on stdout\n"
            "  -v, --verbose        progress on stderr every 2 s\n"
            "  -h, --help           this help\n"
            "\n"
            "exit status: 0 every connection opened (and --expect reached), 1 not,\n"
            "2 usage\n");
}

static bool addr_is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)(const void *)sa;
        return (ntohl(s4->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)(const void *)sa;
        return IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr);
    }
    return false;
}

/* ws://HOST[:PORT][/PATH]; every address HOST names must be loopback. */
static int parse_url(const char *url)
{
    if (strncmp(url, "ws://", 5) != 0) {
        fprintf(stderr, PROG ": url '%s' must start with ws:// (plain WebSocket only)\n", url);
        return -1;
    }
    const char *h = url + 5, *he, *rest;
    if (*h == '[') {
        he = strchr(h, ']');
        if (!he) {
            fprintf(stderr, PROG ": bad url '%s'\n", url);
            return -1;
        }
        h++;
        rest = he + 1;
    } else {
        he = h + strcspn(h, ":/");
        rest = he;
    }
    if (he == h || (size_t)(he - h) >= sizeof g.host) {
        fprintf(stderr, PROG ": bad host in url '%s'\n", url);
        return -1;
    }
    memcpy(g.host, h, (size_t)(he - h));
    g.host[he - h] = '\0';
    g.port = 80;
    if (*rest == ':') {
        char *end;
        long p = strtol(rest + 1, &end, 10);
        if (p < 1 || p > 65535 || (*end && *end != '/')) {
            fprintf(stderr, PROG ": bad port in url '%s'\n", url);
            return -1;
        }
        g.port = (int)p;
        rest = end;
    }
    snprintf(g.path, sizeof g.path, "%s", *rest ? rest : "/events");

    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(g.host, NULL, &hints, &res);
    if (rc != 0 || !res) {
        fprintf(stderr, PROG ": cannot resolve '%s': %s\n", g.host, gai_strerror(rc));
        return -1;
    }
    bool ok = true;
    for (struct addrinfo *a = res; a; a = a->ai_next)
        ok = ok && addr_is_loopback(a->ai_addr);
    if (ok) {
        /* prefer IPv4: connect to the numeric address so nothing resolves later */
        const struct addrinfo *pick = res;
        for (struct addrinfo *a = res; a; a = a->ai_next)
            if (a->ai_family == AF_INET) {
                pick = a;
                break;
            }
        if (pick->ai_family == AF_INET)
            inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)pick->ai_addr)->sin_addr,
                      g.addr, sizeof g.addr);
        else
            inet_ntop(AF_INET6,
                      &((const struct sockaddr_in6 *)(const void *)pick->ai_addr)->sin6_addr,
                      g.addr, sizeof g.addr);
    }
    freeaddrinfo(res);
    if (!ok) {
        fprintf(stderr, PROG ": refusing '%s': only loopback targets (127.0.0.0/8, ::1) are "
                        "allowed\n",
                g.host);
        return -1;
    }
    return 0;
}

static int usage(const char *fmt, const char *arg)
{
    fprintf(stderr, PROG ": ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\ntry '" PROG " --help'\n");
    return 2;
}

static bool parse_num(const char *s, double min, double max, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || v < min || v > max)
        return false;
    *out = v;
    return true;
}

/* ---- result ---------------------------------------------------------------------- */

static void report(double elapsed)
{
    struct rusage ru;
    double cpu_s = 0;
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        cpu_s = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    double window = g.last_ev_ns > g.first_ev_ns ? (double)(g.last_ev_ns - g.first_ev_ns) / 1e9 : 0;
    double rate = window > 0 ? (double)g.events / window : 0;
    uint64_t with_lat = g.events - g.no_ts;
    double p50 = percentile_us(0.50), p90 = percentile_us(0.90), p99 = percentile_us(0.99),
           p999 = percentile_us(0.999);
    double mean = with_lat ? g.lat_sum_us / (double)with_lat : 0;
    uint64_t cmin = UINT64_MAX, cmax = 0;
    int counted = 0;
    for (int i = 0; i < g.started; i++) {
        if (!g.conns[i].hello)
            continue;
        counted++;
        if (g.conns[i].events < cmin)
            cmin = g.conns[i].events;
        if (g.conns[i].events > cmax)
            cmax = g.conns[i].events;
    }
    if (!counted)
        cmin = 0;
    if (g.json) {
        json_t *errs = json_object(), *codes = json_object(), *kinds = json_object();
        for (int i = 0; i < g.nerrs; i++)
            json_object_set_new(errs, g.errs[i].what, json_integer((json_int_t)g.errs[i].n));
        for (int i = 0; i < g.ncodes; i++) {
            char k[16];
            snprintf(k, sizeof k, "%" PRIu64, g.close_codes[i][0]);
            json_object_set_new(codes, k, json_integer((json_int_t)g.close_codes[i][1]));
        }
        if (g.closes_other)
            json_object_set_new(codes, "other", json_integer((json_int_t)g.closes_other));
        for (int k = 0; k < EV__COUNT; k++)
            json_object_set_new(kinds, ev_names[k], json_integer((json_int_t)g.by_kind[k]));
        json_t *j = json_object();
        json_object_set_new(j, "connections", json_integer(g.nconns));
        json_object_set_new(j, "started", json_integer(g.started));
        json_object_set_new(j, "connected", json_integer(g.hello));
        json_object_set_new(j, "open_at_end", json_integer(g.open));
        json_object_set_new(j, "subscribed", json_integer(g.subscribed));
        json_object_set_new(j, "connect_failures", json_integer(g.failed));
        json_object_set_new(j, "closed_by_server", json_integer(g.closed));
        json_object_set_new(j, "close_codes", codes);
        json_object_set_new(j, "errors", errs);
        json_object_set_new(j, "error_frames", json_integer((json_int_t)g.error_frames));
        if (g.first_error_frame[0])
            json_object_set_new(j, "first_error_frame", json_string(g.first_error_frame));
        json_object_set_new(j, "ready_s",
                            json_real(g.ready ? (double)(g.ready_ns - g.t0_ns) / 1e9 : -1));
        json_object_set_new(j, "events", json_integer((json_int_t)g.events));
        json_object_set_new(j, "by_event", kinds);
        json_object_set_new(j, "frames", json_integer((json_int_t)g.frames));
        json_object_set_new(j, "bytes", json_integer((json_int_t)g.bytes));
        json_object_set_new(j, "events_without_timestamp", json_integer((json_int_t)g.no_ts));
        json_object_set_new(j, "per_connection_min", json_integer((json_int_t)cmin));
        json_object_set_new(j, "per_connection_max", json_integer((json_int_t)cmax));
        json_object_set_new(j, "window_s", json_real(window));
        json_object_set_new(j, "events_per_s", json_real(rate));
        json_object_set_new(j, "latency_ms",
                            json_pack("{s:f,s:f,s:f,s:f,s:f,s:f}", "p50", p50 / 1000, "p90",
                                      p90 / 1000, "p99", p99 / 1000, "p999", p999 / 1000, "max",
                                      (double)g.lat_max_us / 1000, "mean", mean / 1000));
        json_object_set_new(j, "first_event_unix_ms", json_real((double)g.first_ev_us / 1000));
        json_object_set_new(j, "last_event_unix_ms", json_real((double)g.last_ev_us / 1000));
        /* the histogram itself, so runs of several processes can be merged:
         * [upper edge in µs, count] for each non-empty bucket */
        json_t *h = json_array();
        for (int i = 0; i < HIST_BUCKETS; i++)
            if (g.hist[i])
                json_array_append_new(h, json_pack("[I,I]", (json_int_t)(i + 1) * HIST_STEP_US,
                                                   (json_int_t)g.hist[i]));
        json_object_set_new(j, "latency_hist_us", h);
        json_object_set_new(j, "latency_over_30s", json_integer((json_int_t)g.hist_over));
        json_object_set_new(j, "latency_max_us", json_integer((json_int_t)g.lat_max_us));
        json_object_set_new(j, "elapsed_s", json_real(elapsed));
        json_object_set_new(j, "cpu_s", json_real(cpu_s));
        json_object_set_new(j, "stop_reason", json_string(g.stop_reason ? g.stop_reason : ""));
        char *s = oms_json_dumps(j, JSON_COMPACT);
        if (s)
            puts(s);
        free(s);
        json_decref(j);
        return;
    }
    printf("connections: %d asked, %d connected, %d subscribed, %d failed, %d closed by the "
           "server, %d open at the end\n",
           g.nconns, g.hello, g.subscribed, g.failed, g.closed, g.open);
    for (int i = 0; i < g.nerrs; i++)
        printf("  failure: %s x%" PRIu64 "\n", g.errs[i].what, g.errs[i].n);
    for (int i = 0; i < g.ncodes; i++)
        printf("  close code %" PRIu64 " x%" PRIu64 "\n", g.close_codes[i][0],
               g.close_codes[i][1]);
    if (g.error_frames)
        printf("  error frames: %" PRIu64 ", first: %s\n", g.error_frames, g.first_error_frame);
    printf("events: %" PRIu64 " (", g.events);
    for (int k = 0; k < EV__COUNT; k++)
        printf("%s%s %" PRIu64, k ? ", " : "", ev_names[k], g.by_kind[k]);
    printf("), %" PRIu64 " bytes, per connection %" PRIu64 "..%" PRIu64 "\n", g.bytes, cmin,
           cmax);
    printf("rate: %.0f events/s over %.2f s (first to last event)\n", rate, window);
    if (with_lat)
        printf("latency ms: p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  max %.1f  mean %.2f\n",
               p50 / 1000, p90 / 1000, p99 / 1000, p999 / 1000, (double)g.lat_max_us / 1000,
               mean / 1000);
    printf("ran %.1f s (%.1f s of CPU), stopped: %s\n", elapsed, cpu_s,
           g.stop_reason ? g.stop_reason : "?");
}

int main(int argc, char **argv)
{
    enum { O_URL = 1000, O_CONNS, O_SECRET, O_TOKEN, O_ROLE, O_UID, O_FUID, O_SUB, O_DUR, O_RAMP,
           O_PENDING, O_IDLE, O_EXPECT, O_QUIET, O_READY, O_JSON };
    static const struct option longopts[] = {
        {"url", required_argument, NULL, O_URL},
        {"connections", required_argument, NULL, O_CONNS},
        {"secret", required_argument, NULL, O_SECRET},
        {"token", required_argument, NULL, O_TOKEN},
        {"role", required_argument, NULL, O_ROLE},
        {"user-id", required_argument, NULL, O_UID},
        {"first-user-id", required_argument, NULL, O_FUID},
        {"subscribe", required_argument, NULL, O_SUB},
        {"duration", required_argument, NULL, O_DUR},
        {"ramp-per-sec", required_argument, NULL, O_RAMP},
        {"max-pending", required_argument, NULL, O_PENDING},
        {"idle", no_argument, NULL, O_IDLE},
        {"expect", required_argument, NULL, O_EXPECT},
        {"quiet-exit", required_argument, NULL, O_QUIET},
        {"ready-file", required_argument, NULL, O_READY},
        {"json", no_argument, NULL, O_JSON},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *url = NULL;
    g.nconns = 1;
    g.role = OMS_ROLE_ADMIN;
    g.first_user_id = 1;
    g.subs = 1;
    g.duration_s = 60;
    g.ramp = 1000;
    g.max_pending = 256;
    g.secret = getenv("JWT_SECRET");
    if (g.secret && !*g.secret)
        g.secret = NULL;
    int opt;
    double v;
    while ((opt = getopt_long(argc, argv, "vh", longopts, NULL)) != -1) {
        switch (opt) {
        case O_URL: url = optarg; break;
        case O_CONNS:
            if (!parse_num(optarg, 1, 1000000, &v))
                return usage("--connections wants 1..1000000, not '%s'", optarg);
            g.nconns = (int)v;
            break;
        case O_SECRET: g.secret = optarg; break;
        case O_TOKEN: g.token = optarg; break;
        case O_ROLE:
            if (oms_role_parse(optarg, &g.role) != OMS_OK || g.role == OMS_ROLE_SERVICE)
                return usage("--role wants admin, staff or customer, not '%s'", optarg);
            break;
        case O_UID:
            if (!parse_num(optarg, 1, 9e15, &v))
                return usage("--user-id wants a positive integer, not '%s'", optarg);
            g.user_id = (int64_t)v;
            break;
        case O_FUID:
            if (!parse_num(optarg, 1, 9e15, &v))
                return usage("--first-user-id wants a positive integer, not '%s'", optarg);
            g.first_user_id = (int64_t)v;
            break;
        case O_SUB:
            if (strcmp(optarg, "orders") == 0)
                g.subs = 1;
            else if (strcmp(optarg, "inventory") == 0)
                g.subs = 2;
            else if (strcmp(optarg, "all") == 0)
                g.subs = 3;
            else if (strcmp(optarg, "none") == 0)
                g.subs = 0;
            else
                return usage("--subscribe wants orders, inventory, all or none, not '%s'", optarg);
            break;
        case O_DUR:
            if (!parse_num(optarg, 0.1, 3600, &g.duration_s))
                return usage("--duration wants 0.1..3600 seconds, not '%s'", optarg);
            break;
        case O_RAMP:
            if (!parse_num(optarg, 1, 1000000, &v))
                return usage("--ramp-per-sec wants 1..1000000, not '%s'", optarg);
            g.ramp = (int)v;
            break;
        case O_PENDING:
            if (!parse_num(optarg, 1, 100000, &v))
                return usage("--max-pending wants 1..100000, not '%s'", optarg);
            g.max_pending = (int)v;
            break;
        case O_IDLE: g.idle = true; break;
        case O_EXPECT:
            if (!parse_num(optarg, 1, 1e18, &v))
                return usage("--expect wants a positive count, not '%s'", optarg);
            g.expect = (uint64_t)v;
            break;
        case O_QUIET:
            if (!parse_num(optarg, 0.1, 3600, &g.quiet_s))
                return usage("--quiet-exit wants 0.1..3600 seconds, not '%s'", optarg);
            break;
        case O_READY: g.ready_file = optarg; break;
        case O_JSON: g.json = true; break;
        case 'v': g.verbose = true; break;
        case 'h': help(stdout); return 0;
        default: return usage("%s", "unknown or incomplete option");
        }
    }
    if (optind < argc)
        return usage("unexpected argument '%s'", argv[optind]);
    if (!url)
        return usage("%s", "--url is required (ws://127.0.0.1:PORT/events)");
    if (parse_url(url) != 0)
        return 2;
    if (!g.secret && !g.token)
        return usage("%s", "no credentials: give --secret (or set JWT_SECRET) or --token");
    if (g.idle)
        g.subs = 0;
    if (g.ready_file)
        unlink(g.ready_file);

    /* as many descriptors as we may have */
    struct rlimit rl;
    int fd_limit = 1024;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            getrlimit(RLIMIT_NOFILE, &rl);
        fd_limit = rl.rlim_cur > 1000000 ? 1000000 : (int)rl.rlim_cur;
    }
    if (g.nconns + 64 > fd_limit)
        fprintf(stderr, PROG ": warning: %d connections asked but only %d file descriptors "
                        "(hard limit); some will fail\n",
                g.nconns, fd_limit);

    g.conns = calloc((size_t)g.nconns, sizeof *g.conns);
    g.hist = calloc(HIST_BUCKETS, sizeof *g.hist);
    if (!g.conns || !g.hist) {
        fprintf(stderr, PROG ": out of memory\n");
        return 1;
    }

    lws_set_log_level(g.verbose ? LLL_ERR | LLL_WARN : 0, NULL);
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = protocols;
    info.count_threads = 1;
    info.fd_limit_per_thread = (unsigned)fd_limit;
    info.pt_serv_buf_size = 64 * 1024;
    info.timeout_secs = 20;
    info.connect_timeout_secs = 20;
    g.ctx = lws_create_context(&info);
    if (!g.ctx) {
        fprintf(stderr, PROG ": cannot create the libwebsockets context\n");
        return 1;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    g.t0_ns = mono_ns();
    lws_sul_schedule(g.ctx, 0, &sul_ramp, on_ramp, 1);
    lws_sul_schedule(g.ctx, 0, &sul_check, on_check, 100 * LWS_US_PER_MS);
    while (!g.stopping && lws_service(g.ctx, 0) >= 0)
        ;
    double elapsed = (double)(mono_ns() - g.t0_ns) / 1e9;
    lws_sul_cancel(&sul_ramp);
    lws_sul_cancel(&sul_check);
    int hello = g.hello;
    report(elapsed);
    fflush(stdout);
    lws_context_destroy(g.ctx);
    for (int i = 0; i < g.nconns; i++)
        free(g.conns[i].rx);
    free(g.conns);
    free(g.hist);
    bool ok = hello == g.nconns && (!g.expect || g.events >= g.expect);
    return ok ? 0 : 1;
}
