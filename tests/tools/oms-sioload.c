/* oms-sioload — Socket.IO load generator for omsd (Engine.IO 4 / Socket.IO 5
 * over WebSocket, namespace /events), the counterpart of oms-wsload for the
 * plain dialect, so that both dialects can be loaded by equally cheap
 * clients in one benchmark.
 *
 * One process, one libwebsockets service thread, many connections to
 * ws://127.0.0.1:PORT/socket.io/?EIO=4&transport=websocket. Each connection
 * joins /events with an HS256 token minted here (CONNECT auth {token}),
 * optionally subscribes, answers the server's pings, and counts the events
 * pushed to it; latency is now - the event's `timestamp` (occurredAt, ms).
 * The --json result has the keys of oms-wsload's, so the bench scripts merge
 * both the same way.
 *
 * Loopback targets only; the run always ends by itself (--duration). */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <libwebsockets.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stddef.h>
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

#define PROG "oms-sioload"
#define HIST_STEP_US 100
#define HIST_BUCKETS (30 * 1000 * 1000 / HIST_STEP_US)
#define EIO_PATH "/socket.io/?EIO=4&transport=websocket"

enum conn_state { CS_IDLE = 0, CS_CONNECTING, CS_OPEN, CS_CLOSED, CS_FAILED };
enum { OUT_CONNECT = 1, OUT_SUB_ORDERS = 2, OUT_SUB_INVENTORY = 4 };

typedef struct conn {
    struct lws *wsi;
    int idx;
    enum conn_state state;
    bool hello;      /* got `connected` */
    bool subscribed; /* every subscription answered with a confirmation */
    int want, confirms, answers;
    unsigned out;    /* OUT_* still to send */
    int pongs;       /* EIO pongs still to send */
    uint64_t events;
    char *rx;
    size_t rxlen, rxcap;
} conn;

enum { EV_ORDER, EV_INVENTORY, EV_USER_NOTE, EV_SYSTEM_NOTE, EV_OTHER, EV__COUNT };
static const char *const ev_names[EV__COUNT] = {"order_update", "inventory_update",
                                                "user_notification", "system_notification",
                                                "other"};

static struct {
    char host[64], addr[64];
    int port;
    int nconns;
    const char *secret;
    oms_role role;
    int64_t first_user_id;
    unsigned subs;
    double duration_s, quiet_s;
    int ramp, max_pending;
    bool json, verbose;
    const char *ready_file;

    struct lws_context *ctx;
    conn *conns;
    int started, pending, open, hello, subscribed, failed, closed;
    uint64_t t0_ns, ready_ns;
    bool ready, stopping;
    const char *stop_reason;
    char errs[8][128];
    uint64_t errn[8];
    int nerrs;
    uint64_t codes[8][2];
    int ncodes;

    uint64_t events, by_kind[EV__COUNT], frames, bytes, error_frames, no_ts, pings;
    uint64_t first_ev_ns, last_ev_ns;
    int64_t first_ev_us, last_ev_us;
    uint64_t *hist, hist_over;
    int64_t lat_max_us;
    char first_error_frame[200];
} g;

static volatile sig_atomic_t got_signal;
static void on_signal(int sig) { got_signal = sig; }

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

static void note_error(const char *what)
{
    for (int i = 0; i < g.nerrs; i++)
        if (strcmp(g.errs[i], what) == 0) {
            g.errn[i]++;
            return;
        }
    int i = g.nerrs < 7 ? g.nerrs++ : 7;
    if (i == 7)
        g.nerrs = 8;
    snprintf(g.errs[i], sizeof g.errs[i], "%s", i == 7 ? "(other reasons)" : what);
    g.errn[i]++;
}

static void note_close_code(unsigned code)
{
    for (int i = 0; i < g.ncodes; i++)
        if (g.codes[i][0] == code) {
            g.codes[i][1]++;
            return;
        }
    if (g.ncodes < 8) {
        g.codes[g.ncodes][0] = code;
        g.codes[g.ncodes++][1] = 1;
    }
}

/* ---- just enough JSON scanning -------------------------------------------------- */

/* p at '"': the position after the closing quote, or NULL (memchr: this is
 * the hot path, as in oms-wsload) */
static const char *skip_string(const char *p, const char *e)
{
    for (p++; p < e;) {
        const char *q = memchr(p, '"', (size_t)(e - p));
        if (!q)
            return NULL;
        size_t bs = 0; /* escaped when preceded by an odd number of backslashes */
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
    if (p >= e)
        return NULL;
    if (*p == '"')
        return skip_string(p, e);
    if (*p == '{' || *p == '[') {
        int depth = 0;
        while (p < e) {
            if (*p == '"') {
                if (!(p = skip_string(p, e)))
                    return NULL;
                continue;
            }
            if (*p == '{' || *p == '[')
                depth++;
            else if ((*p == '}' || *p == ']') && --depth == 0)
                return p + 1;
            p++;
        }
        return NULL;
    }
    while (p < e && *p != ',' && *p != '}' && *p != ']')
        p++;
    return p;
}

/* The top-level string member `key` of the (compact) object at p. */
static bool member_string(const char *p, const char *e, const char *key, const char **v,
                          const char **ve)
{
    size_t kl = strlen(key);
    if (p >= e || *p != '{')
        return false;
    p++;
    while (p < e && *p == '"') {
        const char *k = p + 1, *ke = skip_string(p, e);
        if (!ke || ke >= e || *ke != ':')
            return false;
        const char *val = ke + 1, *end = skip_value(val, e);
        if (!end)
            return false;
        if ((size_t)(ke - 1 - k) == kl && memcmp(k, key, kl) == 0 && *val == '"') {
            *v = val + 1;
            *ve = end - 1;
            return true;
        }
        p = end;
        if (p < e && *p == ',')
            p++;
    }
    return false;
}

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

static bool parse_ts_ms(const char *s, const char *e, int64_t *ms)
{
    if (e - s != 24 || s[4] != '-' || s[10] != 'T' || s[19] != '.' || s[23] != 'Z')
        return false;
    int y = digits(s, 4), mo = digits(s + 5, 2), d = digits(s + 8, 2), h = digits(s + 11, 2),
        mi = digits(s + 14, 2), se = digits(s + 17, 2), f = digits(s + 20, 3);
    if (y < 0 || mo < 1 || mo > 12 || d < 1 || h < 0 || mi < 0 || se < 0 || f < 0)
        return false;
    *ms = ((days_from_civil(y, (unsigned)mo, (unsigned)d) * 24 + h) * 60 + mi) * 60000 +
          (int64_t)se * 1000 + f;
    return true;
}

/* ---- packets --------------------------------------------------------------------- */

static bool name_is(const char *n, size_t nl, const char *want)
{
    return strlen(want) == nl && memcmp(n, want, nl) == 0;
}

static void want_write(conn *c)
{
    if (c->wsi)
        lws_callback_on_writable(c->wsi);
}

/* A server EVENT `42/events,["NAME",DATA]` (p past "42/events,"). */
static void on_event(conn *c, const char *p, const char *e, const char *whole, size_t wlen)
{
    if (p >= e || *p != '[' || p + 1 >= e || p[1] != '"') {
        note_error("unparsable event");
        return;
    }
    const char *n = p + 2, *ne = skip_string(p + 1, e);
    if (!ne) {
        note_error("unparsable event");
        return;
    }
    size_t nl = (size_t)(ne - 1 - n);
    const char *data = ne < e && *ne == ',' ? ne + 1 : e;
    if (name_is(n, nl, "connected")) {
        if (!c->hello) {
            c->hello = true;
            g.hello++;
            c->want = (g.subs & 1 ? 1 : 0) + (g.subs & 2 ? 1 : 0);
            c->out |= (g.subs & 1 ? OUT_SUB_ORDERS : 0) | (g.subs & 2 ? OUT_SUB_INVENTORY : 0);
            if (c->out)
                want_write(c);
        }
        return;
    }
    if (name_is(n, nl, "subscription_confirmed")) {
        c->answers++;
        if (++c->confirms == c->want && !c->subscribed) {
            c->subscribed = true;
            g.subscribed++;
        }
        return;
    }
    if (name_is(n, nl, "error")) {
        g.error_frames++;
        if (c->answers < c->want)
            c->answers++;
        if (!g.first_error_frame[0])
            snprintf(g.first_error_frame, sizeof g.first_error_frame, "%.*s",
                     (int)(wlen < 190 ? wlen : 190), whole);
        return;
    }
    if (name_is(n, nl, "pong") || name_is(n, nl, "resumed") || name_is(n, nl, "unsubscribed") ||
        name_is(n, nl, "token_refreshed"))
        return;
    int64_t now_us = wall_us();
    uint64_t now_ns = mono_ns();
    int k = EV_OTHER;
    for (int i = 0; i < EV_OTHER; i++)
        if (name_is(n, nl, ev_names[i]))
            k = i;
    g.by_kind[k]++;
    g.events++;
    c->events++;
    if (!g.first_ev_ns) {
        g.first_ev_ns = now_ns;
        g.first_ev_us = now_us;
    }
    g.last_ev_ns = now_ns;
    g.last_ev_us = now_us;
    const char *ts, *tse;
    int64_t ts_ms;
    if (!member_string(data, e, "timestamp", &ts, &tse) || !parse_ts_ms(ts, tse, &ts_ms)) {
        g.no_ts++;
        return;
    }
    int64_t lat = now_us - ts_ms * 1000;
    if (lat < 0)
        lat = 0;
    if (lat > g.lat_max_us)
        g.lat_max_us = lat;
    int64_t b = lat / HIST_STEP_US;
    if (b >= HIST_BUCKETS)
        g.hist_over++;
    else
        g.hist[b]++;
}

static void on_message(conn *c, const char *m, size_t n)
{
    static const char ev[] = "42/events,";
    g.frames++;
    g.bytes += n;
    if (n >= sizeof ev - 1 && memcmp(m, ev, sizeof ev - 1) == 0) {
        on_event(c, m + sizeof ev - 1, m + n, m, n);
    } else if (n == 1 && m[0] == '2') {
        g.pings++;
        c->pongs++;
        want_write(c);
    } else if (n > 0 && m[0] == '0') {
        c->out |= OUT_CONNECT;
        want_write(c);
    } else if (n >= 10 && memcmp(m, "40/events,", 10) == 0) {
        /* joined; the `connected` event follows */
    } else if (n >= 10 && memcmp(m, "44/events,", 10) == 0) {
        note_error("connect refused (CONNECT_ERROR)");
        if (!g.first_error_frame[0])
            snprintf(g.first_error_frame, sizeof g.first_error_frame, "%.*s",
                     (int)(n < 190 ? n : 190), m);
    } else if (n >= 10 && memcmp(m, "41/events,", 10) == 0) {
        note_error("server disconnect");
    } else if (!(n > 0 && m[0] == '6')) {
        note_error("unexpected packet");
    }
}

/* ---- libwebsockets -------------------------------------------------------------- */

static void conn_gone(conn *c)
{
    if (c->state == CS_CONNECTING)
        g.pending--;
    if (c->state == CS_OPEN)
        g.open--;
    free(c->rx);
    c->rx = NULL;
    c->rxlen = c->rxcap = 0;
    c->wsi = NULL;
}

static int send_text(struct lws *wsi, const char *s, size_t n)
{
    unsigned char *b = malloc(LWS_PRE + n);
    if (!b)
        return -1;
    memcpy(b + LWS_PRE, s, n);
    int w = lws_write(wsi, b + LWS_PRE, n, LWS_WRITE_TEXT);
    free(b);
    return w < (int)n ? -1 : 0;
}

static int on_writeable(conn *c, struct lws *wsi)
{
    if (g.stopping)
        return 0;
    int rc = 0;
    if (c->pongs > 0) {
        c->pongs--;
        rc = send_text(wsi, "3", 1);
    } else if (c->out & OUT_CONNECT) {
        c->out &= ~(unsigned)OUT_CONNECT;
        char *tok = oms_auth_mint_hs256((const unsigned char *)g.secret, strlen(g.secret),
                                        g.first_user_id + c->idx, g.role,
                                        (int64_t)g.duration_s + 3600, oms_now_ms() / 1000, NULL,
                                        NULL);
        if (!tok)
            return -1;
        char buf[4200];
        int n = snprintf(buf, sizeof buf, "40/events,{\"token\":\"%s\"}", tok);
        free(tok);
        if (n < 0 || (size_t)n >= sizeof buf)
            return -1;
        rc = send_text(wsi, buf, (size_t)n);
    } else if (c->out & OUT_SUB_ORDERS) {
        c->out &= ~(unsigned)OUT_SUB_ORDERS;
        rc = send_text(wsi, "42/events,[\"subscribe_to_orders\"]", 33);
    } else if (c->out & OUT_SUB_INVENTORY) {
        c->out &= ~(unsigned)OUT_SUB_INVENTORY;
        rc = send_text(wsi, "42/events,[\"subscribe_to_inventory\"]", 36);
    }
    if (c->pongs > 0 || c->out)
        lws_callback_on_writable(wsi);
    return rc;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    conn *c = user;
    switch (reason) {
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR: {
        if (!c)
            return 0;
        char what[128];
        int status = (int)lws_http_client_http_response(wsi);
        if (status && status != 101)
            snprintf(what, sizeof what, "HTTP %d", status);
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
        return 0;
    case LWS_CALLBACK_CLIENT_WRITEABLE:
        return c ? on_writeable(c, wsi) : 0;
    case LWS_CALLBACK_CLIENT_RECEIVE: {
        if (!c)
            return 0;
        bool final = lws_is_final_fragment(wsi) && lws_remaining_packet_payload(wsi) == 0;
        if (final && c->rxlen == 0) {
            on_message(c, in, len);
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
        }
        return 0;
    }
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        if (c)
            note_close_code(len >= 2 ? (unsigned)((const unsigned char *)in)[0] << 8 |
                                           ((const unsigned char *)in)[1]
                                     : 1005);
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
    {"oms-sioload", callback, 0, 16384, 0, NULL, 0},
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
    i.path = EIO_PATH;
    i.host = g.host;
    i.local_protocol_name = protocols[0].name;
    i.ietf_version_or_minus_one = -1;
    i.userdata = c;
    i.pwsi = &c->wsi;
    if (!lws_client_connect_via_info(&i) && c->state == CS_CONNECTING) {
        note_error("connect failed at once (out of file descriptors?)");
        conn_gone(c);
        c->state = CS_FAILED;
        g.failed++;
    }
}

/* ---- timers ----------------------------------------------------------------------- */

static lws_sorted_usec_list_t sul_ramp, sul_check;
static int settled_from;

static void stop(const char *why)
{
    if (!g.stopping) {
        g.stopping = true;
        g.stop_reason = why;
        lws_cancel_service(g.ctx);
    }
}

static void on_ramp(lws_sorted_usec_list_t *sul)
{
    if (g.stopping)
        return;
    long due = (long)((double)(mono_ns() - g.t0_ns) / 1e9 * g.ramp) + 1;
    while (g.started < g.nconns && g.started < due && g.pending < g.max_pending)
        start_one();
    if (g.started < g.nconns)
        lws_sul_schedule(g.ctx, 0, sul, on_ramp, 5 * LWS_US_PER_MS);
}

static bool settled(const conn *c)
{
    if (c->state == CS_FAILED || c->state == CS_CLOSED)
        return true;
    return c->state == CS_OPEN && c->hello && c->answers >= c->want;
}

static void on_check(lws_sorted_usec_list_t *sul)
{
    uint64_t now = mono_ns();
    double el = (double)(now - g.t0_ns) / 1e9;
    if (got_signal)
        stop("signal");
    else if (el >= g.duration_s)
        stop("duration");
    else if (g.quiet_s > 0 && g.last_ev_ns && (double)(now - g.last_ev_ns) / 1e9 >= g.quiet_s)
        stop("quiet");
    else if (g.started == g.nconns && g.open == 0 && g.pending == 0)
        stop("no connection left");
    if (!g.ready && g.started == g.nconns) {
        while (settled_from < g.nconns && settled(&g.conns[settled_from]))
            settled_from++;
        if (settled_from == g.nconns) {
            g.ready = true;
            g.ready_ns = now;
            if (g.ready_file) {
                char tmp[1024];
                snprintf(tmp, sizeof tmp, "%s.tmp", g.ready_file);
                FILE *f = fopen(tmp, "w");
                if (f) {
                    fprintf(f, "{\"connected\":%d,\"subscribed\":%d,\"failed\":%d}\n", g.hello,
                            g.subscribed, g.failed);
                    fclose(f);
                    rename(tmp, g.ready_file);
                }
            }
            if (g.verbose || !g.json)
                fprintf(stderr, PROG ": ready after %.1f s: %d joined, %d subscribed, %d failed\n",
                        el, g.hello, g.subscribed, g.failed);
        }
    }
    if (!g.stopping)
        lws_sul_schedule(g.ctx, 0, sul, on_check, 100 * LWS_US_PER_MS);
}

/* ---- options and result ---------------------------------------------------------------- */

static void help(FILE *out)
{
    fprintf(out,
            "usage: " PROG " --url ws://127.0.0.1:PORT [options]\n"
            "\n"
            "Opens many Socket.IO (Engine.IO 4 over WebSocket) connections to omsd's\n"
            "/socket.io/, joins namespace /events with minted HS256 tokens, answers the\n"
            "heartbeat, and counts the events pushed and their produce-to-receive\n"
            "latency (now - timestamp). Loopback only; stops by itself (--duration).\n"
            "\n"
            "options:\n"
            "  --url URL            ws://HOST:PORT, HOST a loopback address (required)\n"
            "  --connections N      connections to open (default 1)\n"
            "  --secret S           HS256 secret (default: $JWT_SECRET)\n"
            "  --role R             admin, staff or customer (default admin)\n"
            "  --first-user-id ID   user ids ID..ID+N-1 (default 1)\n"
            "  --subscribe WHAT     orders, inventory, all or none (default orders)\n"
            "  --duration SECONDS   stop after this long (default 60, at most 3600)\n"
            "  --ramp-per-sec R     new connections per second (default 1000)\n"
            "  --max-pending N      handshakes in flight at once (default 256)\n"
            "  --quiet-exit S       stop S seconds after the last event (once one came)\n"
            "  --ready-file PATH    write a JSON line there once every connection has\n"
            "                       joined and subscribed (or failed)\n"
            "  --json               the result as one JSON line on stdout (the keys of\n"
            "                       oms-wsload --json)\n"
            "  -v, --verbose        libwebsockets warnings on stderr\n"
            "  -h, --help           this help\n"
            "\n"
            "exit status: 0 every connection joined, 1 not, 2 usage\n");
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

static int parse_url(const char *url)
{
    if (strncmp(url, "ws://", 5) != 0)
        return -1;
    const char *h = url + 5, *he = h + strcspn(h, ":/");
    if (he == h || (size_t)(he - h) >= sizeof g.host)
        return -1;
    memcpy(g.host, h, (size_t)(he - h));
    g.host[he - h] = '\0';
    g.port = 80;
    if (*he == ':') {
        char *end;
        long p = strtol(he + 1, &end, 10);
        if (p < 1 || p > 65535 || (*end && *end != '/'))
            return -1;
        g.port = (int)p;
    }
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(g.host, NULL, &hints, &res) != 0 || !res)
        return -1;
    const struct sockaddr_in *s4 = (const struct sockaddr_in *)(const void *)res->ai_addr;
    bool loop = (ntohl(s4->sin_addr.s_addr) >> 24) == 127;
    inet_ntop(AF_INET, &s4->sin_addr, g.addr, sizeof g.addr);
    freeaddrinfo(res);
    if (!loop) {
        fprintf(stderr, PROG ": refusing '%s': only loopback targets are allowed\n", g.host);
        return -1;
    }
    return 0;
}

static void report(double elapsed)
{
    struct rusage ru;
    double cpu_s = 0;
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        cpu_s = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    double window = g.last_ev_ns > g.first_ev_ns ? (double)(g.last_ev_ns - g.first_ev_ns) / 1e9 : 0;
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
    json_t *errs = json_object(), *codes = json_object(), *kinds = json_object(), *h = json_array();
    for (int i = 0; i < g.nerrs; i++)
        json_object_set_new(errs, g.errs[i], json_integer((json_int_t)g.errn[i]));
    for (int i = 0; i < g.ncodes; i++) {
        char k[16];
        snprintf(k, sizeof k, "%" PRIu64, g.codes[i][0]);
        json_object_set_new(codes, k, json_integer((json_int_t)g.codes[i][1]));
    }
    for (int k = 0; k < EV__COUNT; k++)
        json_object_set_new(kinds, ev_names[k], json_integer((json_int_t)g.by_kind[k]));
    for (int i = 0; i < HIST_BUCKETS; i++)
        if (g.hist[i])
            json_array_append_new(h, json_pack("[I,I]", (json_int_t)(i + 1) * HIST_STEP_US,
                                               (json_int_t)g.hist[i]));
    json_t *j = json_pack(
        "{s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:o,s:o,s:I,s:f,s:I,s:o,s:I,s:I,s:I,s:I,s:I,s:f,s:f,s:f,"
        "s:f,s:o,s:I,s:I,s:f,s:f,s:s,s:I}",
        "connections", g.nconns, "started", g.started, "connected", g.hello, "open_at_end", g.open,
        "subscribed", g.subscribed, "connect_failures", g.failed, "closed_by_server", g.closed,
        "close_codes", codes, "errors", errs, "error_frames", (json_int_t)g.error_frames,
        "ready_s", g.ready ? (double)(g.ready_ns - g.t0_ns) / 1e9 : -1.0, "events",
        (json_int_t)g.events, "by_event", kinds, "frames", (json_int_t)g.frames, "bytes",
        (json_int_t)g.bytes, "events_without_timestamp", (json_int_t)g.no_ts,
        "per_connection_min", (json_int_t)cmin, "per_connection_max", (json_int_t)cmax,
        "window_s", window, "events_per_s", window > 0 ? (double)g.events / window : 0.0,
        "first_event_unix_ms", (double)g.first_ev_us / 1000, "last_event_unix_ms",
        (double)g.last_ev_us / 1000, "latency_hist_us", h, "latency_over_30s",
        (json_int_t)g.hist_over, "latency_max_us", (json_int_t)g.lat_max_us, "elapsed_s", elapsed,
        "cpu_s", cpu_s, "stop_reason", g.stop_reason ? g.stop_reason : "", "pings",
        (json_int_t)g.pings);
    if (g.first_error_frame[0])
        json_object_set_new(j, "first_error_frame", json_string(g.first_error_frame));
    if (g.json) {
        char *s = oms_json_dumps(j, JSON_COMPACT);
        if (s)
            puts(s);
        free(s);
    } else {
        char *s = oms_json_dumps(j, JSON_INDENT(2));
        if (s)
            puts(s);
        free(s);
    }
    json_decref(j);
}

int main(int argc, char **argv)
{
    enum { O_URL = 1000, O_CONNS, O_SECRET, O_ROLE, O_FUID, O_SUB, O_DUR, O_RAMP, O_PENDING,
           O_QUIET, O_READY, O_JSON };
    static const struct option longopts[] = {
        {"url", required_argument, NULL, O_URL},
        {"connections", required_argument, NULL, O_CONNS},
        {"secret", required_argument, NULL, O_SECRET},
        {"role", required_argument, NULL, O_ROLE},
        {"first-user-id", required_argument, NULL, O_FUID},
        {"subscribe", required_argument, NULL, O_SUB},
        {"duration", required_argument, NULL, O_DUR},
        {"ramp-per-sec", required_argument, NULL, O_RAMP},
        {"max-pending", required_argument, NULL, O_PENDING},
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
        case O_ROLE:
            if (oms_role_parse(optarg, &g.role) != OMS_OK || g.role == OMS_ROLE_SERVICE)
                return usage("--role wants admin, staff or customer, not '%s'", optarg);
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
    if (!url || parse_url(url) != 0)
        return usage("%s", "--url ws://127.0.0.1:PORT is required (loopback only)");
    if (!g.secret || !*g.secret)
        return usage("%s", "no secret: give --secret or set JWT_SECRET");
    if (g.ready_file)
        unlink(g.ready_file);

    struct rlimit rl;
    int fd_limit = 1024;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            getrlimit(RLIMIT_NOFILE, &rl);
        fd_limit = rl.rlim_cur > 1000000 ? 1000000 : (int)rl.rlim_cur;
    }
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
    return hello == g.nconns ? 0 : 1;
}
