/* main.c — oms-load's options, the run and its result.
 *
 * One process, one libwebsockets service thread, many client connections
 * speaking one protocol (--protocol plain|socketio|centrifugo); each
 * connection authenticates with an HS256 token minted here from the shared
 * secret, optionally subscribes, and counts the events pushed to it with
 * their produce-to-receive latency.
 *
 * Workplace rules built in: only loopback targets are accepted, and the run
 * always ends by itself (--duration caps it). */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/oms.h"
#include "json/json.h"
#include "load.h"

struct load_state load;

static volatile sig_atomic_t got_signal;

static void on_signal(int sig)
{
    got_signal = sig;
    /* lws_cancel_service is documented as safe from other threads, but not
     * from a signal handler: the 100 ms tick notices the flag instead */
}

/* the last resort of "always stops by itself": the service loop never
 * returned (lws 4.1.6 spins inside it on some extension answers) */
static void on_alarm(int sig)
{
    static const char m[] = LOAD_PROG ": the run did not end 30 s past --duration: stopped\n";
    (void)sig;
    ssize_t w = write(STDERR_FILENO, m, sizeof m - 1);
    (void)w;
    _exit(1);
}

bool load_got_signal(void)
{
    return got_signal != 0;
}

static const load_proto *const protos[] = {&oms_load_plain, &oms_load_socketio,
                                           &oms_load_centrifugo};

static void help(FILE *out)
{
    fprintf(out,
            "usage: " LOAD_PROG " --url ws://127.0.0.1:PORT[/PATH] [options]\n"
            "\n"
            "Opens many WebSocket connections from one process to omsd (plain JSON\n"
            "dialect or Socket.IO) or to Centrifugo, counts the events pushed to them\n"
            "and their produce-to-receive latency (now - the event's timestamp).\n"
            "Loopback targets only; always stops by itself (--duration).\n"
            "\n"
            "options:\n"
            "  --protocol P         plain (omsd /events, the default), socketio (omsd\n"
            "                       /socket.io/, namespace /events) or centrifugo\n"
            "                       (client protocol v2, JSON)\n"
            "  --url URL            ws://HOST:PORT[/PATH], HOST a loopback address or\n"
            "                       localhost (required); the path defaults to /events,\n"
            "                       /socket.io/?EIO=4&transport=websocket or\n"
            "                       /connection/websocket by protocol\n"
            "  --connections N      connections to open (default 1)\n"
            "  --secret S           mint HS256 tokens with this secret (default:\n"
            "                       $JWT_SECRET)\n"
            "  --token T            use this token for every connection instead\n"
            "  --role R             admin, staff or customer (default admin)\n"
            "  --user-id ID         user id of every token (default: 1..N)\n"
            "  --first-user-id ID   user ids ID..ID+N-1 instead of 1..N (to split\n"
            "                       clients over several processes)\n"
            "  --subscribe WHAT     orders, inventory, all or none (default orders)\n"
            "  --channels LIST      centrifugo: channels to subscribe to (default:\n"
            "                       orders and/or inventory per --subscribe, and system)\n"
            "  --source-addresses N bind connection of user id U to 127.0.0.(1 + (U-1) %% N),\n"
            "                       to get past one address's ephemeral ports (about\n"
            "                       28,000); default 0: the kernel picks 127.0.0.1\n"
            "  --duration SECONDS   stop after this long (default 60, at most 3600)\n"
            "  --ramp-per-sec R     new connections per second (default 1000)\n"
            "  --max-pending N      handshakes in flight at once (default 256)\n"
            "  --filter-products N  plain: subscribe to inventory with the filter\n"
            "                       {\"productId\": P}, P = first product + index %% N\n"
            "                       (connections share N distinct filters)\n"
            "  --first-product P    the first product of --filter-products (default 1)\n"
            "  --compress           offer permessage-deflate (RFC 7692) on every\n"
            "                       connection; the result says how many servers\n"
            "                       accepted (negotiated)\n"
            "  --idle               connect and hold: no subscription, report the\n"
            "                       connected count\n"
            "  --expect N           stop once N events were received\n"
            "  --quiet-exit S       stop S seconds after the last event (once one came)\n"
            "  --ready-file PATH    write a JSON line there once every connection is\n"
            "                       open and subscribed (or has failed)\n"
            "  --progress-file PATH append \"UNIX_MS EVENTS OPEN WIRE_BYTES PAYLOAD_BYTES\"\n"
            "                       there every second\n"
            "  --json               print the result as one JSON line on stdout\n"
            "  -v, --verbose        progress on stderr every 2 s\n"
            "  -h, --help           this help\n"
            "\n"
            "bytes: wire_bytes are what TCP received on the connections (frame\n"
            "headers and compressed payloads: TCP_INFO), bytes the payloads of the\n"
            "messages received after inflating them\n"
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
        fprintf(stderr, LOAD_PROG ": url '%s' must start with ws:// (plain WebSocket only)\n", url);
        return -1;
    }
    const char *h = url + 5, *he, *rest;
    if (*h == '[') {
        he = strchr(h, ']');
        if (!he) {
            fprintf(stderr, LOAD_PROG ": bad url '%s'\n", url);
            return -1;
        }
        h++;
        rest = he + 1;
    } else {
        he = h + strcspn(h, ":/");
        rest = he;
    }
    if (he == h || (size_t)(he - h) >= sizeof load.host) {
        fprintf(stderr, LOAD_PROG ": bad host in url '%s'\n", url);
        return -1;
    }
    memcpy(load.host, h, (size_t)(he - h));
    load.host[he - h] = '\0';
    load.port = 80;
    if (*rest == ':') {
        char *end;
        long p = strtol(rest + 1, &end, 10);
        if (p < 1 || p > 65535 || (*end && *end != '/')) {
            fprintf(stderr, LOAD_PROG ": bad port in url '%s'\n", url);
            return -1;
        }
        load.port = (int)p;
        rest = end;
    }
    snprintf(load.path, sizeof load.path, "%s", *rest ? rest : load.proto->default_path);

    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(load.host, NULL, &hints, &res);
    if (rc != 0 || !res) {
        fprintf(stderr, LOAD_PROG ": cannot resolve '%s': %s\n", load.host, gai_strerror(rc));
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
                      load.addr, sizeof load.addr);
        else
            inet_ntop(AF_INET6,
                      &((const struct sockaddr_in6 *)(const void *)pick->ai_addr)->sin6_addr,
                      load.addr, sizeof load.addr);
    }
    freeaddrinfo(res);
    if (!ok) {
        fprintf(stderr, LOAD_PROG ": refusing '%s': only loopback targets (127.0.0.0/8, ::1) are "
                        "allowed\n",
                load.host);
        return -1;
    }
    return 0;
}

static int usage(const char *fmt, const char *arg)
{
    fprintf(stderr, LOAD_PROG ": ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\ntry '" LOAD_PROG " --help'\n");
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
    /* the connections are still open: the context is destroyed after this */
    uint64_t wire = load_wire_bytes();
    struct rusage ru;
    double cpu_s = 0;
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        cpu_s = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    double window = load.last_ev_ns > load.first_ev_ns ? (double)(load.last_ev_ns - load.first_ev_ns) / 1e9 : 0;
    double rate = window > 0 ? (double)load.events / window : 0;
    uint64_t with_lat = load.events - load.no_ts;
    double p50 = load_percentile_us(0.50), p90 = load_percentile_us(0.90), p99 = load_percentile_us(0.99),
           p999 = load_percentile_us(0.999);
    double mean = with_lat ? load.lat_sum_us / (double)with_lat : 0;
    uint64_t cmin = UINT64_MAX, cmax = 0;
    int counted = 0;
    for (int i = 0; i < load.started; i++) {
        if (!load.conns[i].hello)
            continue;
        counted++;
        if (load.conns[i].events < cmin)
            cmin = load.conns[i].events;
        if (load.conns[i].events > cmax)
            cmax = load.conns[i].events;
    }
    if (!counted)
        cmin = 0;
    if (load.json) {
        json_t *errs = json_object(), *codes = json_object(), *kinds = json_object();
        for (int i = 0; i < load.nerrs; i++)
            json_object_set_new(errs, load.errs[i].what, json_integer((json_int_t)load.errs[i].n));
        for (int i = 0; i < load.ncodes; i++) {
            char k[16];
            snprintf(k, sizeof k, "%" PRIu64, load.close_codes[i][0]);
            json_object_set_new(codes, k, json_integer((json_int_t)load.close_codes[i][1]));
        }
        if (load.closes_other)
            json_object_set_new(codes, "other", json_integer((json_int_t)load.closes_other));
        for (int k = 0; k < LOAD_EV__COUNT; k++)
            json_object_set_new(kinds, load_ev_names[k], json_integer((json_int_t)load.by_kind[k]));
        json_t *j = json_object();
        json_object_set_new(j, "protocol", json_string(load.proto->name));
        json_object_set_new(j, "connections", json_integer(load.nconns));
        json_object_set_new(j, "started", json_integer(load.started));
        json_object_set_new(j, "connected", json_integer(load.hello));
        json_object_set_new(j, "open_at_end", json_integer(load.open));
        json_object_set_new(j, "subscribed", json_integer(load.subscribed));
        json_object_set_new(j, "connect_failures", json_integer(load.failed));
        json_object_set_new(j, "closed_by_server", json_integer(load.closed));
        json_object_set_new(j, "close_codes", codes);
        json_object_set_new(j, "errors", errs);
        json_object_set_new(j, "error_frames", json_integer((json_int_t)load.error_frames));
        if (load.first_error_frame[0])
            json_object_set_new(j, "first_error_frame", json_string(load.first_error_frame));
        json_object_set_new(j, "ready_s",
                            json_real(load.ready ? (double)(load.ready_ns - load.t0_ns) / 1e9 : -1));
        json_object_set_new(j, "events", json_integer((json_int_t)load.events));
        json_object_set_new(j, "by_event", kinds);
        json_object_set_new(j, "frames", json_integer((json_int_t)load.frames));
        json_object_set_new(j, "bytes", json_integer((json_int_t)load.bytes));
        json_object_set_new(j, "wire_bytes", json_integer((json_int_t)wire));
        json_object_set_new(j, "compress", json_boolean(load.compress));
        json_object_set_new(j, "negotiated", json_integer(load.negotiated));
        json_object_set_new(j, "events_without_timestamp", json_integer((json_int_t)load.no_ts));
        json_object_set_new(j, "per_connection_min", json_integer((json_int_t)cmin));
        json_object_set_new(j, "per_connection_max", json_integer((json_int_t)cmax));
        json_object_set_new(j, "window_s", json_real(window));
        json_object_set_new(j, "events_per_s", json_real(rate));
        json_object_set_new(j, "latency_ms",
                            json_pack("{s:f,s:f,s:f,s:f,s:f,s:f}", "p50", p50 / 1000, "p90",
                                      p90 / 1000, "p99", p99 / 1000, "p999", p999 / 1000, "max",
                                      (double)load.lat_max_us / 1000, "mean", mean / 1000));
        json_object_set_new(j, "first_event_unix_ms", json_real((double)load.first_ev_us / 1000));
        json_object_set_new(j, "last_event_unix_ms", json_real((double)load.last_ev_us / 1000));
        /* the histogram itself, so runs of several processes can be merged:
         * [upper edge in µs, count] for each non-empty bucket */
        json_t *h = json_array();
        for (int i = 0; i < LOAD_HIST_BUCKETS; i++)
            if (load.hist[i])
                json_array_append_new(h, json_pack("[I,I]", (json_int_t)(i + 1) * LOAD_HIST_STEP_US,
                                                   (json_int_t)load.hist[i]));
        json_object_set_new(j, "latency_hist_us", h);
        json_object_set_new(j, "latency_over_30s", json_integer((json_int_t)load.hist_over));
        json_object_set_new(j, "latency_max_us", json_integer((json_int_t)load.lat_max_us));
        json_object_set_new(j, "elapsed_s", json_real(elapsed));
        json_object_set_new(j, "cpu_s", json_real(cpu_s));
        json_object_set_new(j, "pings", json_integer((json_int_t)load.pings));
        json_object_set_new(j, "stop_reason", json_string(load.stop_reason ? load.stop_reason : ""));
        char *s = oms_json_dumps(j, JSON_COMPACT);
        if (s)
            puts(s);
        free(s);
        json_decref(j);
        return;
    }
    printf("connections: %d asked, %d connected, %d subscribed, %d failed, %d closed by the "
           "server, %d open at the end\n",
           load.nconns, load.hello, load.subscribed, load.failed, load.closed, load.open);
    for (int i = 0; i < load.nerrs; i++)
        printf("  failure: %s x%" PRIu64 "\n", load.errs[i].what, load.errs[i].n);
    for (int i = 0; i < load.ncodes; i++)
        printf("  close code %" PRIu64 " x%" PRIu64 "\n", load.close_codes[i][0],
               load.close_codes[i][1]);
    if (load.error_frames)
        printf("  error frames: %" PRIu64 ", first: %s\n", load.error_frames, load.first_error_frame);
    printf("events: %" PRIu64 " (", load.events);
    for (int k = 0; k < LOAD_EV__COUNT; k++)
        printf("%s%s %" PRIu64, k ? ", " : "", load_ev_names[k], load.by_kind[k]);
    printf("), %" PRIu64 " bytes, per connection %" PRIu64 "..%" PRIu64 "\n", load.bytes, cmin,
           cmax);
    printf("wire: %" PRIu64 " bytes received (%.1f per message); permessage-deflate %s",
           wire, load.frames ? (double)wire / (double)load.frames : 0.0,
           load.compress ? "offered" : "not offered");
    if (load.compress)
        printf(", negotiated on %d of %d", load.negotiated, load.hello);
    printf("\n");
    printf("rate: %.0f events/s over %.2f s (first to last event)\n", rate, window);
    if (with_lat)
        printf("latency ms: p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  max %.1f  mean %.2f\n",
               p50 / 1000, p90 / 1000, p99 / 1000, p999 / 1000, (double)load.lat_max_us / 1000,
               mean / 1000);
    printf("ran %.1f s (%.1f s of CPU), stopped: %s\n", elapsed, cpu_s,
           load.stop_reason ? load.stop_reason : "?");
}

int main(int argc, char **argv)
{
    enum { O_URL = 1000, O_CONNS, O_SECRET, O_TOKEN, O_ROLE, O_UID, O_FUID, O_SUB, O_DUR, O_RAMP,
           O_PENDING, O_IDLE, O_EXPECT, O_QUIET, O_READY, O_JSON, O_PROTO, O_CHANNELS, O_SOURCES,
           O_PROGRESS, O_FPRODUCTS, O_FIRSTPRODUCT, O_COMPRESS };
    static const struct option longopts[] = {
        {"protocol", required_argument, NULL, O_PROTO},
        {"url", required_argument, NULL, O_URL},
        {"connections", required_argument, NULL, O_CONNS},
        {"secret", required_argument, NULL, O_SECRET},
        {"token", required_argument, NULL, O_TOKEN},
        {"role", required_argument, NULL, O_ROLE},
        {"user-id", required_argument, NULL, O_UID},
        {"first-user-id", required_argument, NULL, O_FUID},
        {"subscribe", required_argument, NULL, O_SUB},
        {"channels", required_argument, NULL, O_CHANNELS},
        {"source-addresses", required_argument, NULL, O_SOURCES},
        {"duration", required_argument, NULL, O_DUR},
        {"ramp-per-sec", required_argument, NULL, O_RAMP},
        {"max-pending", required_argument, NULL, O_PENDING},
        {"idle", no_argument, NULL, O_IDLE},
        {"compress", no_argument, NULL, O_COMPRESS},
        {"filter-products", required_argument, NULL, O_FPRODUCTS},
        {"first-product", required_argument, NULL, O_FIRSTPRODUCT},
        {"expect", required_argument, NULL, O_EXPECT},
        {"quiet-exit", required_argument, NULL, O_QUIET},
        {"ready-file", required_argument, NULL, O_READY},
        {"progress-file", required_argument, NULL, O_PROGRESS},
        {"json", no_argument, NULL, O_JSON},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *url = NULL;
    load.proto = &oms_load_plain;
    load.nconns = 1;
    load.role = OMS_ROLE_ADMIN;
    load.first_user_id = 1;
    load.first_product = 1;
    load.subs = LOAD_SUB_ORDERS;
    load.duration_s = 60;
    load.ramp = 1000;
    load.max_pending = 256;
    load.secret = getenv("JWT_SECRET");
    if (load.secret && !*load.secret)
        load.secret = NULL;
    int opt;
    double v;
    while ((opt = getopt_long(argc, argv, "vh", longopts, NULL)) != -1) {
        switch (opt) {
        case O_PROTO: {
            load.proto = NULL;
            for (size_t i = 0; i < OMS_ARRAY_LEN(protos); i++)
                if (strcmp(optarg, protos[i]->name) == 0)
                    load.proto = protos[i];
            if (!load.proto)
                return usage("--protocol wants plain, socketio or centrifugo, not '%s'", optarg);
            break;
        }
        case O_URL: url = optarg; break;
        case O_CONNS:
            if (!parse_num(optarg, 1, 1000000, &v))
                return usage("--connections wants 1..1000000, not '%s'", optarg);
            load.nconns = (int)v;
            break;
        case O_SECRET: load.secret = optarg; break;
        case O_TOKEN: load.token = optarg; break;
        case O_ROLE:
            if (oms_role_parse(optarg, &load.role) != OMS_OK || load.role == OMS_ROLE_SERVICE)
                return usage("--role wants admin, staff or customer, not '%s'", optarg);
            break;
        case O_UID:
            if (!parse_num(optarg, 1, 9e15, &v))
                return usage("--user-id wants a positive integer, not '%s'", optarg);
            load.user_id = (int64_t)v;
            break;
        case O_FUID:
            if (!parse_num(optarg, 1, 9e15, &v))
                return usage("--first-user-id wants a positive integer, not '%s'", optarg);
            load.first_user_id = (int64_t)v;
            break;
        case O_SUB:
            if (strcmp(optarg, "orders") == 0)
                load.subs = LOAD_SUB_ORDERS;
            else if (strcmp(optarg, "inventory") == 0)
                load.subs = LOAD_SUB_INVENTORY;
            else if (strcmp(optarg, "all") == 0)
                load.subs = LOAD_SUB_ORDERS | LOAD_SUB_INVENTORY;
            else if (strcmp(optarg, "none") == 0)
                load.subs = 0;
            else
                return usage("--subscribe wants orders, inventory, all or none, not '%s'", optarg);
            break;
        case O_CHANNELS: load.channels = optarg; break;
        case O_SOURCES:
            if (!parse_num(optarg, 0, LOAD_MAX_SOURCES, &v))
                return usage("--source-addresses wants 0..64, not '%s'", optarg);
            load.nsources = (int)v;
            break;
        case O_DUR:
            if (!parse_num(optarg, 0.1, 3600, &load.duration_s))
                return usage("--duration wants 0.1..3600 seconds, not '%s'", optarg);
            break;
        case O_RAMP:
            if (!parse_num(optarg, 1, 1000000, &v))
                return usage("--ramp-per-sec wants 1..1000000, not '%s'", optarg);
            load.ramp = (int)v;
            break;
        case O_PENDING:
            if (!parse_num(optarg, 1, 100000, &v))
                return usage("--max-pending wants 1..100000, not '%s'", optarg);
            load.max_pending = (int)v;
            break;
        case O_IDLE: load.idle = true; break;
        case O_COMPRESS: load.compress = true; break;
        case O_FPRODUCTS:
            if (!parse_num(optarg, 1, 10000000, &v))
                return usage("--filter-products wants 1..10000000, not '%s'", optarg);
            load.filter_products = (int)v;
            break;
        case O_FIRSTPRODUCT:
            if (!parse_num(optarg, 1, 1e15, &v))
                return usage("--first-product wants a positive id, not '%s'", optarg);
            load.first_product = (int64_t)v;
            break;
        case O_EXPECT:
            if (!parse_num(optarg, 1, 1e18, &v))
                return usage("--expect wants a positive count, not '%s'", optarg);
            load.expect = (uint64_t)v;
            break;
        case O_QUIET:
            if (!parse_num(optarg, 0.1, 3600, &load.quiet_s))
                return usage("--quiet-exit wants 0.1..3600 seconds, not '%s'", optarg);
            break;
        case O_READY: load.ready_file = optarg; break;
        case O_PROGRESS: load.progress_file = optarg; break;
        case O_JSON: load.json = true; break;
        case 'v': load.verbose = true; break;
        case 'h': help(stdout); return 0;
        default: return usage("%s", "unknown or incomplete option");
        }
    }
    if (optind < argc)
        return usage("unexpected argument '%s'", argv[optind]);
    if (!url)
        return usage("%s", "--url is required (ws://127.0.0.1:PORT)");
    if (parse_url(url) != 0)
        return 2;
    if (!load.secret && !load.token)
        return usage("%s", "no credentials: give --secret (or set JWT_SECRET) or --token");
    if (load.nsources > 0 && strncmp(load.addr, "127.", 4) != 0)
        return usage("%s", "--source-addresses needs an IPv4 loopback target");
    if (load.idle)
        load.subs = 0;
    if (load.ready_file)
        unlink(load.ready_file);
    if (load.progress_file)
        unlink(load.progress_file);

    /* as many descriptors as we may have */
    struct rlimit rl;
    int fd_limit = 1024;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            getrlimit(RLIMIT_NOFILE, &rl);
        fd_limit = rl.rlim_cur > 1000000 ? 1000000 : (int)rl.rlim_cur;
    }
    if (load.nconns + 64 > fd_limit)
        fprintf(stderr,
                LOAD_PROG ": warning: %d connections asked but only %d file descriptors "
                          "(hard limit); some will fail\n",
                load.nconns, fd_limit);

    int exit_code = 1;
    load.conns = calloc((size_t)load.nconns, sizeof *load.conns);
    load.hist = calloc(LOAD_HIST_BUCKETS, sizeof *load.hist);
    if (!load.conns || !load.hist) {
        fprintf(stderr, LOAD_PROG ": out of memory\n");
        goto out;
    }
    if (load_pool_init(fd_limit) != 0)
        goto out;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, NULL);
    alarm((unsigned)load.duration_s + 30);

    double elapsed = load_pool_run();
    int hello = load.hello;
    report(elapsed);
    fflush(stdout);
    exit_code = hello == load.nconns && (!load.expect || load.events >= load.expect) ? 0 : 1;
out:
    load_pool_destroy();
    free(load.conns);
    free(load.hist);
    return exit_code;
}
