/* workers.c — the service threads (server.threads): each its own lws
 * context (server.c's callback) and event loop, all watching one listening
 * socket; the 100 ms tick (timers, drain, the process-wide figures); start,
 * run, SIGHUP reloads, drain and stop. Also wires the core's hooks to the
 * dialects: nothing below calls up except through them. */
#include <inttypes.h>
#include <malloc.h>
#include <stdlib.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>

#include "conn.h"
#include "gateway/router.h"
#include "notify.h"
#include "plain.h"
#include "socketio.h"
#include "deflate.h"
#include "sse.h"

extern const struct lws_protocols omsd_protocols[];

/* ---- the listening socket ------------------------------------------------------------------- */

/* One listening socket for every service thread: each watches it in its
 * own loop (adopted as a file) and accepts a few connections per wake-up
 * (server.c), so the connections spread over the threads and a second
 * process still cannot take the port. (lws 4.1 sets SO_REUSEPORT only when
 * built for several threads per context, which Debian's is not.) */

static int open_listener(const omsd *d, char *errbuf, size_t errlen)
{
    const char *host = d->cfg.server.host;
    bool any = strcmp(host, "0.0.0.0") == 0;
    char port[16];
    snprintf(port, sizeof port, "%d", d->cfg.server.port);
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    /* every address: IPv6 and IPv4 on one dual-stack socket when we can */
    hints.ai_family = any ? AF_INET6 : AF_UNSPEC;
    int gai = getaddrinfo(any ? NULL : host, port, &hints, &res);
    if (gai != 0 && any) {
        hints.ai_family = AF_INET;
        gai = getaddrinfo(NULL, port, &hints, &res);
    }
    if (gai != 0) {
        oms_errf(errbuf, errlen, "cannot listen on %s:%d: %s", host, d->cfg.server.port,
                 gai_strerror(gai));
        return -1;
    }
    int fd = -1, err = 0;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            err = errno;
            continue;
        }
        int one = 1, zero = 0;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (ai->ai_family == AF_INET6 && any)
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 4096) != 0) {
            err = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0)
        oms_errf(errbuf, errlen, "cannot listen on %s:%d: %s", host, d->cfg.server.port,
                 strerror(err));
    return fd;
}

/* ---- timers and life cycle ----------------------------------------------------------------- */

/* Every 100 ms on each service thread: its timers, its drain; the first
 * one also keeps the process-wide figures, the history and presence. */
static void tick(lws_sorted_usec_list_t *sul)
{
    omsd_worker *w = lws_container_of(sul, omsd_worker, sul_tick);
    omsd *d = w->d;
    omsd_self = w;
    oms_wheel_advance(&w->wheel, omsd_mono_ms());
    uint64_t now = oms_mono_ns();
    if (w->idx == 0 && now - d->rate_mark_ns >= 1000000000u) {
        omsd_history_sweep(d, oms_now_ms());
        /* the history's turnover leaves freed memory in the heap: give the
         * free pages back now and then, so RSS follows what is in use */
        static int trim_in;
        if (++trim_in >= 30) {
            trim_in = 0;
            malloc_trim(0);
        }
        json_t *local = json_object();
        omsd_local_users(d, local);
        omsd_presence_publish(d, local);
        uint64_t consumed = 0, delivered = 0;
        for (int k = 0; k < OMS_TOPIC__COUNT; k++)
            consumed += atomic_load(&d->m.consumed[k]);
        for (int i = 0; i < d->nworkers; i++)
            for (int k = 0; k < OMS_TOPIC__COUNT; k++)
                delivered += atomic_load_explicit(&d->workers[i].delivered[k],
                                                  memory_order_relaxed);
        double secs = (double)(now - d->rate_mark_ns) / 1e9;
        d->events_per_s = (double)(consumed - d->rate_mark_consumed) / secs;
        d->deliveries_per_s = (double)(delivered - d->rate_mark_delivered) / secs;
        d->rate_mark_consumed = consumed;
        d->rate_mark_delivered = delivered;
        d->rate_mark_ns = now;
    }
    if (omsd_stop && !w->draining) {
        if (!atomic_exchange(&d->stopping, 1)) {
            /* systemd: stopping starts now, with the drain (not after it) */
            omsd_notify("STOPPING=1\nSTATUS=closing clients");
            oms_log(d->log, OMS_LOG_INFO, "shutting down: closing clients",
                    OMS_LI("connections", omsd_nconns(d)));
        }
        w->draining = true;
        w->drain_deadline_ns = now + 4500000000u;
        omsd_plain_drain(w);
        omsd_sio_drain(d);
        omsd_sse_drain(w);
    }
    lws_sul_schedule(w->ctx, 0, sul, tick, 100 * LWS_US_PER_MS);
}

static int worker_init(omsd *d, omsd_worker *w, int idx, char *errbuf, size_t errlen)
{
    w->d = d;
    w->idx = idx;
    pthread_mutex_init(&w->xq_lock, NULL);
    w->router = oms_router_new();
    w->wbuf = malloc(LWS_PRE + OMSD_WRITE_BATCH);
    /* 100 ms ticks, 4096 slots: a turn of the wheel is 409.6 s */
    if (!w->router || !w->wbuf || oms_wheel_init(&w->wheel, 4096, 100, omsd_mono_ms()) != OMS_OK)
        goto nomem;
    for (int k = 0; k < OMS_TOPIC__COUNT; k++) {
        w->last_offset[k] = malloc((d->nparts[k] > 0 ? (size_t)d->nparts[k] : 1) * sizeof(int64_t));
        if (!w->last_offset[k])
            goto nomem;
        for (int p = 0; p < d->nparts[k]; p++)
            w->last_offset[k][p] = d->start_offset[k][p] - 1;
    }
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    /* a server vhost that does not listen: connections come from our
     * listening socket (accept_some) */
    info.port = CONTEXT_PORT_NO_LISTEN_SERVER;
    info.protocols = omsd_protocols;
    info.user = w;
    /* lws' validity timer off: without a policy of ours lws applies its
     * default one (ping after 300 s, hang up after 310 s) and re-arms that
     * timer in its sorted list, O(connections), as connections are
     * serviced; a policy with no hang-up turns it off. Pings and the idle
     * timeout are ours, on w->wheel (on_idle_check). */
    static const lws_retry_bo_t no_validity = {.secs_since_valid_ping = 0,
                                               .secs_since_valid_hangup = 0};
    info.retry_and_idle_policy = &no_validity;
    info.options = LWS_SERVER_OPTION_VALIDATE_UTF8;
    if (strcmp(d->cfg.server.event_loop, "epoll") == 0) {
        /* readiness from epoll: the cost of a wake-up follows the sockets
         * that are ready, not the number open (lws' own loop polls every
         * one); the loop is ours, run a turn at a time in worker_main */
        w->evloop = ev_loop_new(EVBACKEND_EPOLL);
        if (!w->evloop) {
            oms_errf(errbuf, errlen, "cannot create an epoll event loop");
            return OMS_EIO;
        }
        info.options |= LWS_SERVER_OPTION_LIBEV;
        info.foreign_loops = &w->evloop;
    }
    info.extensions = omsd_pmd_extensions(d);
    info.max_http_header_data = 8192;
    info.pt_serv_buf_size = 64 * 1024;
    info.timeout_secs = 20;
    info.ka_time = 0;
    if (d->cfg.server.tls_cert[0]) {
        /* ADOPT_APPLY_LISTEN_ACCEPT_CONFIG: the vhost's TLS for the
         * sockets we adopt, and no client TLS context (omsd connects to
         * no one over lws; with several contexts lws leaks those) */
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT |
                        LWS_SERVER_OPTION_ADOPT_APPLY_LISTEN_ACCEPT_CONFIG;
        info.ssl_cert_filepath = d->cfg.server.tls_cert;
        info.ssl_private_key_filepath = d->cfg.server.tls_key;
    }
    omsd_self = w;
    w->ctx = lws_create_context(&info);
    if (!w->ctx) {
        oms_errf(errbuf, errlen, "cannot start the server (bad TLS files?)");
        return OMS_EIO;
    }
    struct lws_vhost *vh = lws_get_vhost_by_name(w->ctx, "default");
    int lfd = dup(d->listen_fd);
    lws_sock_file_fd_type fd = {.filefd = lfd};
    if (!vh || lfd < 0 || !lws_adopt_descriptor_vhost(vh, LWS_ADOPT_RAW_FILE_DESC, fd, "oms", NULL)) {
        oms_errf(errbuf, errlen, "cannot watch the listening socket");
        return OMS_EIO;
    }
    omsd_sio_init(d);
    lws_sul_schedule(w->ctx, 0, &w->sul_tick, tick, 100 * LWS_US_PER_MS);
    omsd_self = NULL;
    return OMS_OK;
nomem:
    oms_errf(errbuf, errlen, "out of memory");
    return OMS_ENOMEM;
}

/* The core's hooks: what each kind of handed-over item goes to. */
static void xq_resume(omsd_worker *w, omsd_xq_item *it, bool live)
{
    (void)live;
    omsd_resume_xq(w->d, it); /* frees what it carries, live or not */
}

static void xq_sio(omsd_worker *w, omsd_xq_item *it, bool live)
{
    omsd_sio_xq(w->d, it, live);
}

static void xq_sstore(omsd_worker *w, omsd_xq_item *it, bool live)
{
    omsd_sio_sstore(w->d, it, live);
}

static void event_sio(omsd_worker *w, const omsd_xq_item *it)
{
    omsd_sio_dispatch(w->d, it);
}

static void wire_core(void)
{
    omsd_xq_handle(XQ_DELIVERY, omsd_http_delivery);
    omsd_xq_handle(XQ_RESUME, xq_resume);
    omsd_xq_handle(XQ_SIO, xq_sio);
    omsd_xq_handle(XQ_SSTORE, xq_sstore);
    omsd_xq_on_event(omsd_plain_dispatch);
    omsd_xq_on_event(event_sio);
    omsd_xq_on_event(omsd_sse_dispatch);
}

int omsd_server_start(omsd *d, char *errbuf, size_t errlen)
{
    wire_core();
    lws_set_log_level(getenv("OMS_LWS_DEBUG") ? LLL_ERR | LLL_WARN | LLL_NOTICE | LLL_INFO : LLL_ERR, NULL);
    d->listen_fd = -1;
    int n = d->cfg.server.threads;
    if (n <= 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        n = cores > 0 ? (int)cores : 1;
    }
    if (n > OMSD_MAX_THREADS)
        n = OMSD_MAX_THREADS;
    d->workers = calloc((size_t)n, sizeof *d->workers);
    d->users = json_object();
    if (!d->workers || !d->users) {
        oms_errf(errbuf, errlen, "out of memory");
        return OMS_ENOMEM;
    }
    pthread_mutex_init(&d->users_lock, NULL);
    d->listen_fd = open_listener(d, errbuf, errlen);
    if (d->listen_fd < 0)
        return OMS_EIO;
    for (int i = 0; i < n; i++) {
        d->nworkers = i + 1;
        int rc = worker_init(d, &d->workers[i], i, errbuf, errlen);
        if (rc != OMS_OK)
            return rc;
    }
    d->rate_mark_ns = oms_mono_ns();
    return OMS_OK;
}

/* A service thread's loop, until its drain ends. */
static void *worker_main(void *arg)
{
    omsd_worker *w = arg;
    omsd *d = w->d;
    omsd_self = w;
    while (w->evloop ? (ev_run(w->evloop, EVRUN_ONCE), true) : lws_service(w->ctx, 0) >= 0) {
        /* what that turn queued goes out now, several frames to a write */
        omsd_conn_flush(w);
        /* sessions closed during that turn: nothing of ours runs now */
        omsd_sio_reap();
        if (w->idx == 0 && omsd_reload_requested && !w->draining)
            omsd_reload(d); /* SIGHUP: notify.c; bumps reload_gen */
        if (w->reload_gen != atomic_load(&d->reload_gen)) {
            w->reload_gen = atomic_load(&d->reload_gen);
            omsd_reload_tls(w);
        }
        if (w->draining && ((atomic_load(&w->nconns) == 0 && w->sio_ws_conns == 0) ||
                            oms_mono_ns() > w->drain_deadline_ns))
            break;
    }
    return NULL;
}

int omsd_server_run(omsd *d)
{
    for (int i = 1; i < d->nworkers; i++) {
        if (pthread_create(&d->workers[i].thread, NULL, worker_main, &d->workers[i]) != 0) {
            oms_log(d->log, OMS_LOG_ERROR, "cannot start a service thread", OMS_LI("thread", i));
            d->nworkers = i; /* the others are not served; their contexts still listen */
            break;
        }
    }
    oms_log(d->log, OMS_LOG_INFO, "service threads", OMS_LI("threads", d->nworkers),
            OMS_LS("eventLoop", d->cfg.server.event_loop));
    worker_main(&d->workers[0]);
    for (int i = 1; i < d->nworkers; i++)
        pthread_join(d->workers[i].thread, NULL);
    return 0;
}

void omsd_server_stop(omsd *d)
{
    if (!d->workers)
        return;
    /* the first context last: it set OpenSSL up for the process */
    for (int i = d->nworkers - 1; i >= 0; i--) {
        omsd_worker *w = &d->workers[i];
        omsd_self = w;
        if (w->ctx) {
            lws_sul_cancel(&w->sul_tick);
            omsd_sio_free_all(d);
            lws_context_destroy(w->ctx);
            w->ctx = NULL;
            omsd_sse_free_all(w);
        }
        if (w->evloop) {
            ev_loop_destroy(w->evloop);
            w->evloop = NULL;
        }
    }
    for (int i = 0; i < d->nworkers; i++) {
        omsd_worker *w = &d->workers[i];
        omsd_self = w;
        /* whatever was handed over after the last drain has no one to go to */
        omsd_xq_drain(w, false);
        oms_wheel_free(&w->wheel);
        oms_router_free(w->router);
        free(w->wbuf);
        free(w->dirty);
        for (int k = 0; k < OMS_TOPIC__COUNT; k++)
            free(w->last_offset[k]);
        pthread_mutex_destroy(&w->xq_lock);
    }
    omsd_self = NULL;
    if (d->listen_fd >= 0)
        close(d->listen_fd);
    d->listen_fd = -1;
    omsd_addr_free_all();
    free(d->workers);
    d->workers = NULL;
    d->nworkers = 0;
    json_decref(d->users);
    d->users = NULL;
    pthread_mutex_destroy(&d->users_lock);
}
