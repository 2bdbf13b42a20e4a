/* pool.c — the connections: one libwebsockets client context, connects
 * paced (--ramp-per-sec, --max-pending), spread over several source
 * addresses, and the timers that end the run and report readiness.
 *
 * Why several source addresses: every connection from one source address
 * to one server port needs its own ephemeral port, and Linux hands out
 * about 28,000 of them (net.ipv4.ip_local_port_range). 127.0.0.0/8 is all
 * loopback, so binding connection i to 127.0.0.(1 + i % N) gives N times
 * as many without touching a sysctl. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/oms.h"
#include "load.h"
#include "wire.h"

static void conn_free_rx(load_conn *c)
{
    free(c->rx);
    c->rx = NULL;
    c->rxlen = c->rxcap = 0;
}

static void conn_gone(load_conn *c)
{
    if (c->state == LOAD_CS_CONNECTING)
        load.pending--;
    if (c->state == LOAD_CS_OPEN) {
        load.open--;
        /* what it received stays counted once its socket is gone */
        uint64_t b;
        if (c->wsi && load_wire_rx_bytes(lws_get_socket_fd(c->wsi), &b) == 0)
            load.wire_closed += b;
    }
    conn_free_rx(c);
    c->wsi = NULL;
}

uint64_t load_wire_bytes(void)
{
    uint64_t total = load.wire_closed, b;
    for (int i = 0; i < load.started; i++) {
        const load_conn *c = &load.conns[i];
        if (c->state == LOAD_CS_OPEN && c->wsi &&
            load_wire_rx_bytes(lws_get_socket_fd(c->wsi), &b) == 0)
            total += b;
    }
    return total;
}

void load_want_write(load_conn *c)
{
    if (c->wsi)
        lws_callback_on_writable(c->wsi);
}

int load_send_text(struct lws *wsi, const char *s, size_t n)
{
    unsigned char stack[LWS_PRE + 512], *b = stack;
    if (n > sizeof stack - LWS_PRE && !(b = malloc(LWS_PRE + n)))
        return -1;
    memcpy(b + LWS_PRE, s, n);
    int w = lws_write(wsi, b + LWS_PRE, n, LWS_WRITE_TEXT);
    if (b != stack)
        free(b);
    return w < (int)n ? -1 : 0;
}

char *load_token_for(const load_conn *c)
{
    if (load.token)
        return strdup(load.token);
    if (!load.secret)
        return NULL;
    int64_t uid = load.user_id ? load.user_id : load.first_user_id + c->idx;
    /* valid past the end of the run, so no connection meets its expiry */
    int64_t ttl = (int64_t)load.duration_s + 3600;
    return oms_auth_mint_hs256((const unsigned char *)load.secret, strlen(load.secret), uid,
                               load.role, ttl, oms_now_ms() / 1000, NULL, NULL);
}

static void on_receive(load_conn *c, struct lws *wsi, const char *in, size_t len)
{
    bool final = lws_is_final_fragment(wsi) && lws_remaining_packet_payload(wsi) == 0;
    if (final && c->rxlen == 0) {
        load.frames++;
        load.bytes += len;
        load.proto->on_message(c, in, len); /* the common case: no copy */
        return;
    }
    if (c->rxlen + len > c->rxcap) {
        size_t cap = c->rxcap ? c->rxcap : 4096;
        while (cap < c->rxlen + len)
            cap *= 2;
        char *nb = realloc(c->rx, cap);
        if (!nb) {
            load_note_error("out of memory for a fragmented message");
            return;
        }
        c->rx = nb;
        c->rxcap = cap;
    }
    memcpy(c->rx + c->rxlen, in, len);
    c->rxlen += len;
    if (final) {
        load.frames++;
        load.bytes += c->rxlen;
        load.proto->on_message(c, c->rx, c->rxlen);
        c->rxlen = 0;
        if (c->rxcap > 65536)
            conn_free_rx(c);
    }
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    load_conn *c = user;
    if (!c)
        return 0;
    switch (reason) {
    case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER:
        if (!load.proto->handshake_headers)
            return 0;
        return load.proto->handshake_headers(c, wsi, (unsigned char **)in,
                                             *(unsigned char **)in + len);

    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR: {
        char what[128];
        int status = (int)lws_http_client_http_response(wsi);
        if (status && status != 101)
            snprintf(what, sizeof what, "HTTP %d (%s)", status,
                     in ? (const char *)in : "no reason");
        else
            snprintf(what, sizeof what, "%s", in ? (const char *)in : "connection error");
        load_note_error(what);
        conn_gone(c);
        c->state = LOAD_CS_FAILED;
        load.failed++;
        return 0;
    }

    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        load.pending--;
        load.open++;
        c->state = LOAD_CS_OPEN;
        if (load.compress && load_deflate_active(wsi)) {
            c->deflate = true;
            load.negotiated++;
        }
        if (load.proto->on_open)
            load.proto->on_open(c, wsi);
        return 0;

    case LWS_CALLBACK_CLIENT_WRITEABLE:
        if (load.stopping || !load.proto->on_writeable)
            return 0;
        return load.proto->on_writeable(c, wsi);

    case LWS_CALLBACK_CLIENT_RECEIVE:
        on_receive(c, wsi, in, len);
        return 0;

    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        if (len >= 2) {
            const unsigned char *b = in;
            load_note_close_code((unsigned)b[0] << 8 | b[1]);
        } else {
            load_note_close_code(1005);
        }
        return 0;

    case LWS_CALLBACK_CLIENT_CLOSED:
        conn_gone(c);
        c->state = LOAD_CS_CLOSED;
        if (!load.stopping)
            load.closed++;
        return 0;

    default:
        return 0;
    }
}

static const struct lws_protocols protocols[] = {
    {"oms-load", callback, 0, 16384, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static void start_one(void)
{
    load_conn *c = &load.conns[load.started++];
    c->idx = load.started - 1;
    c->state = LOAD_CS_CONNECTING;
    load.pending++;
    struct lws_client_connect_info i;
    memset(&i, 0, sizeof i);
    i.context = load.ctx;
    i.address = load.addr;
    i.port = load.port;
    i.path = load.path;
    i.host = load.host;
    i.origin = NULL; /* a non-browser client: no Origin header */
    i.protocol = NULL;
    i.local_protocol_name = protocols[0].name;
    i.ietf_version_or_minus_one = -1;
    i.userdata = c;
    i.pwsi = &c->wsi;
    if (load.nsources > 0) {
        /* by user id, not by index, so that several processes sharing the
         * clients (--first-user-id) also share the addresses evenly */
        int64_t uid = load.first_user_id + c->idx;
        i.iface = load.sources[(uid - 1) % load.nsources];
    }
    if (!lws_client_connect_via_info(&i)) {
        /* CONNECTION_ERROR may or may not have fired already */
        if (c->state == LOAD_CS_CONNECTING) {
            load_note_error("connect failed at once (out of file descriptors or ports?)");
            conn_gone(c);
            c->state = LOAD_CS_FAILED;
            load.failed++;
        }
    }
}

/* ---- timers ---------------------------------------------------------------------- */

static lws_sorted_usec_list_t sul_ramp, sul_check;
static int settled_scan_from; /* connections before this index are settled */

static void stop(const char *why)
{
    if (load.stopping)
        return;
    load.stopping = true;
    load.stop_reason = why;
    lws_cancel_service(load.ctx);
}

static void on_ramp(lws_sorted_usec_list_t *sul)
{
    if (load.stopping)
        return;
    double el = (double)(load_mono_ns() - load.t0_ns) / 1e9;
    long due = (long)(el * load.ramp) + 1;
    while (load.started < load.nconns && load.started < due && load.pending < load.max_pending)
        start_one();
    if (load.started < load.nconns)
        lws_sul_schedule(load.ctx, 0, sul, on_ramp, 5 * LWS_US_PER_MS);
}

static bool conn_settled(const load_conn *c)
{
    if (c->state == LOAD_CS_FAILED || c->state == LOAD_CS_CLOSED)
        return true;
    if (c->state != LOAD_CS_OPEN || !c->hello)
        return false;
    return load.idle || !load.subs || c->answers >= c->want;
}

static void write_ready_file(void)
{
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s.tmp", load.ready_file);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        fprintf(stderr, LOAD_PROG ": cannot write '%s': %s\n", tmp, strerror(errno));
        return;
    }
    fprintf(f, "{\"connected\":%d,\"subscribed\":%d,\"failed\":%d,\"seconds\":%.3f}\n", load.open,
            load.subscribed, load.failed, (double)(load_mono_ns() - load.t0_ns) / 1e9);
    fclose(f);
    if (rename(tmp, load.ready_file) != 0)
        fprintf(stderr, LOAD_PROG ": cannot write '%s': %s\n", load.ready_file, strerror(errno));
}

/* one line a second, "UNIX_MS EVENTS OPEN WIRE_BYTES PAYLOAD_BYTES", so that
 * a benchmark can take the deliveries and the bytes of any window of the run */
static void write_progress(void)
{
    static FILE *f;
    if (!f && !(f = fopen(load.progress_file, "a"))) {
        fprintf(stderr, LOAD_PROG ": cannot write '%s': %s\n", load.progress_file,
                strerror(errno));
        load.progress_file = NULL;
        return;
    }
    fprintf(f, "%" PRId64 " %" PRIu64 " %d %" PRIu64 " %" PRIu64 "\n", load_wall_us() / 1000,
            load.events, load.open, load_wire_bytes(), load.bytes);
    fflush(f);
    if (load.stopping) {
        fclose(f);
        f = NULL;
    }
}

static void on_check(lws_sorted_usec_list_t *sul)
{
    uint64_t now = load_mono_ns();
    double el = (double)(now - load.t0_ns) / 1e9;
    if (load_got_signal())
        stop("signal");
    else if (el >= load.duration_s)
        stop("duration");
    else if (load.expect && load.events >= load.expect)
        stop("expect");
    else if (load.quiet_s > 0 && load.last_ev_ns &&
             (double)(now - load.last_ev_ns) / 1e9 >= load.quiet_s)
        stop("quiet");
    else if (load.started == load.nconns && load.open == 0 && load.pending == 0)
        stop("no connection left");
    if (!load.ready && load.started == load.nconns) {
        while (settled_scan_from < load.nconns && conn_settled(&load.conns[settled_scan_from]))
            settled_scan_from++;
        if (settled_scan_from == load.nconns) {
            load.ready = true;
            load.ready_ns = now;
            if (load.ready_file)
                write_ready_file();
            if (load.verbose || !load.json)
                fprintf(stderr,
                        LOAD_PROG ": ready after %.1f s: %d open, %d subscribed, %d failed\n",
                        el, load.open, load.subscribed, load.failed);
        }
    }
    static uint64_t last_progress, last_verbose, last_events;
    if (load.progress_file && (now - last_progress >= 1000000000u || load.stopping)) {
        write_progress();
        last_progress = now;
    }
    if (load.verbose && now - last_verbose >= 2000000000u) {
        double dt = last_verbose ? (double)(now - last_verbose) / 1e9 : el;
        fprintf(stderr,
                LOAD_PROG ": %.0f s: %d open, %d pending, %d failed, %d closed, %" PRIu64
                          " events (%.0f/s)\n",
                el, load.open, load.pending, load.failed, load.closed, load.events,
                dt > 0 ? (double)(load.events - last_events) / dt : 0.0);
        last_verbose = now;
        last_events = load.events;
    }
    if (!load.stopping)
        lws_sul_schedule(load.ctx, 0, sul, on_check, 100 * LWS_US_PER_MS);
}

int load_pool_init(int fd_limit)
{
    for (int i = 0; i < load.nsources && i < LOAD_MAX_SOURCES; i++)
        snprintf(load.sources[i], sizeof load.sources[i], "127.0.0.%u", (unsigned)(i + 1) & 0xffu);
    lws_set_log_level(load.verbose ? LLL_ERR | LLL_WARN : 0, NULL);
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = protocols;
    info.count_threads = 1;
    info.fd_limit_per_thread = (unsigned)fd_limit;
    info.pt_serv_buf_size = 64 * 1024;
    info.timeout_secs = 20;
    info.connect_timeout_secs = 20;
    /* --compress: offer permessage-deflate on every connection */
    info.extensions = load.compress ? load_client_extensions() : NULL;
    load.ctx = lws_create_context(&info);
    if (!load.ctx) {
        fprintf(stderr, LOAD_PROG ": cannot create the libwebsockets context\n");
        return -1;
    }
    return 0;
}

double load_pool_run(void)
{
    load.t0_ns = load_mono_ns();
    lws_sul_schedule(load.ctx, 0, &sul_ramp, on_ramp, 1);
    lws_sul_schedule(load.ctx, 0, &sul_check, on_check, 100 * LWS_US_PER_MS);
    while (!load.stopping && lws_service(load.ctx, 0) >= 0) {
        /* the timers above end the run; this also ends it when the service
         * loop never lets them run (lws' own permessage-deflate client
         * spins that way once negotiated) */
        if (load_got_signal())
            stop("signal");
        else if ((double)(load_mono_ns() - load.t0_ns) / 1e9 >= load.duration_s + 5)
            stop("duration (timers starved)");
    }
    if (load.progress_file)
        write_progress();
    lws_sul_cancel(&sul_ramp);
    lws_sul_cancel(&sul_check);
    return (double)(load_mono_ns() - load.t0_ns) / 1e9;
}

void load_pool_destroy(void)
{
    if (load.ctx)
        lws_context_destroy(load.ctx);
    load.ctx = NULL;
    if (load.conns)
        for (int i = 0; i < load.nconns; i++)
            free(load.conns[i].rx);
}
