/* alerts_errors.c — omsd's own errors in Sentry (DESIGN §3.8): records
 * sent to the DLQ, projection failures, Kafka and Postgres outages (one
 * event per outage), and crashes.
 *
 * Reports are queued (bounded: a storm of bad records must not eat memory)
 * and sent by a thread of their own, so that the threads that hit an error
 * never wait for Sentry. They are best effort: a few tries with a backoff,
 * then counted as dropped and logged.
 *
 * A crash (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT) cannot be sent from
 * the dying process: the handler writes the signal, the time and a
 * backtrace to alerts.crash_file with async-signal-safe calls only (open,
 * write, clock_gettime, backtrace_symbols_fd: no malloc, no locks, no
 * stdio), then lets the signal kill the process as before. The next start
 * sends the file as a fatal event, with an event_id derived from its
 * content, and removes it. */
#include <errno.h>
#include <execinfo.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "alerts.h"

#define REPORT_QUEUE_MAX 256
#define REPORT_TRIES 5

/* ---- crash handler (signal context) ------------------------------------------------------ */

static char crash_path[4096];
static volatile sig_atomic_t crash_armed;

static size_t u64_text(uint64_t v, char *buf)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        buf[i] = tmp[n - 1 - i];
    return n;
}

static void put(int fd, const char *s, size_t n)
{
    while (n) {
        ssize_t w = write(fd, s, n);
        if (w <= 0)
            return;
        s += w;
        n -= (size_t)w;
    }
}

static void on_crash(int sig)
{
    if (crash_armed) {
        crash_armed = 0; /* a fault inside the handler must not loop */
        int fd = open(crash_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd >= 0) {
            char line[64];
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            uint64_t ms = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
            put(fd, "signal ", 7);
            put(fd, line, u64_text((uint64_t)sig, line));
            put(fd, "\ntime_ms ", 9);
            put(fd, line, u64_text(ms, line));
            put(fd, "\npid ", 5);
            put(fd, line, u64_text((uint64_t)getpid(), line));
            put(fd, "\nbacktrace\n", 11);
            void *frames[64];
            int n = backtrace(frames, 64);
            backtrace_symbols_fd(frames, n, fd);
            close(fd);
        }
    }
    /* die of the same signal, as without us (exit status, core dump) */
    signal(sig, SIG_DFL);
    raise(sig);
}

static void install_crash_handler(omsd *d)
{
    const char *f = d->cfg.alerts.crash_file;
    if (*f) {
        snprintf(crash_path, sizeof crash_path, "%s", f);
    } else {
        const char *tmp = getenv("TMPDIR");
        snprintf(crash_path, sizeof crash_path, "%s/omsd-%d.crash", tmp && *tmp ? tmp : "/tmp",
                 d->cfg.server.port);
    }
    /* backtrace() loads libgcc on its first call, which allocates: do it
     * now, not in the handler */
    void *warm[2];
    backtrace(warm, 2);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_crash;
    sigemptyset(&sa.sa_mask);
    /* SA_ONSTACK: a stack overflow still gets its report when an alternate
     * stack exists (ASan installs one) */
    sa.sa_flags = SA_RESETHAND | SA_ONSTACK;
    static const int sigs[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
    for (size_t i = 0; i < OMS_ARRAY_LEN(sigs); i++)
        sigaction(sigs[i], &sa, NULL);
    crash_armed = 1;
}

/* ---- the queue --------------------------------------------------------------------------- */

static void report_free(al_report *r)
{
    free(r->message);
    free(r->fingerprint);
    json_decref(r->tags);
    json_decref(r->extra);
    free(r);
}

static void random_event_id(char out[33])
{
    unsigned char b[16];
    if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b) {
        uint64_t t = oms_mono_ns(), w = (uint64_t)oms_now_ms();
        memcpy(b, &t, 8);
        memcpy(b + 8, &w, 8);
    }
    for (size_t i = 0; i < 16; i++)
        snprintf(out + 2 * i, 3, "%02x", b[i]);
}

static void enqueue(struct omsd_alerts *a, al_report *r)
{
    pthread_mutex_lock(&a->lock);
    if (a->rlen >= REPORT_QUEUE_MAX || a->rstop) {
        pthread_mutex_unlock(&a->lock);
        atomic_fetch_add(&a->own_dropped, 1);
        report_free(r);
        return;
    }
    if (a->rtail)
        a->rtail->next = r;
    else
        a->rhead = r;
    a->rtail = r;
    a->rlen++;
    pthread_cond_signal(&a->rcond);
    pthread_mutex_unlock(&a->lock);
}

void omsd_alerts_error(omsd *d, const char *level, const char *message, const char *fingerprint,
                       json_t *tags, json_t *extra)
{
    struct omsd_alerts *a = d->alerts;
    if (!a || !a->s.sentry || !d->cfg.alerts.report_errors || !a->rstarted) {
        json_decref(tags);
        json_decref(extra);
        return;
    }
    al_report *r = calloc(1, sizeof *r);
    if (!r) {
        json_decref(tags);
        json_decref(extra);
        return;
    }
    random_event_id(r->event_id);
    snprintf(r->level, sizeof r->level, "%s", level);
    r->message = strdup(message);
    r->fingerprint = fingerprint ? strdup(fingerprint) : NULL;
    r->tags = tags ? tags : json_object();
    r->extra = extra ? extra : json_object();
    json_object_set_new(r->tags, "component", json_string("omsd"));
    json_object_set_new(r->tags, "instance", json_string(d->instance_id));
    r->at_ms = oms_now_ms();
    if (!r->message) {
        report_free(r);
        return;
    }
    enqueue(a, r);
}

void omsd_alerts_outage(omsd *d, int key, bool down, const char *what, const char *detail)
{
    struct omsd_alerts *a = d->alerts;
    if (!a || key < 0 || key >= AL_OUTAGE_KEYS)
        return;
    pthread_mutex_lock(&a->lock);
    bool report = down && !a->outage[key];
    a->outage[key] = down;
    pthread_mutex_unlock(&a->lock);
    if (!report)
        return;
    char msg[400], fp[64];
    snprintf(msg, sizeof msg, "%s", what);
    snprintf(fp, sizeof fp, "omsd-outage-%d", key);
    omsd_alerts_error(d, "error", msg, fp, json_pack("{s:s}", "outage", what),
                      json_pack("{s:s}", "detail", detail ? detail : ""));
}

/* ---- the crash report of the last run ---------------------------------------------------- */

static const char *signal_name(int sig)
{
    switch (sig) {
    case SIGSEGV: return "SIGSEGV";
    case SIGBUS: return "SIGBUS";
    case SIGFPE: return "SIGFPE";
    case SIGILL: return "SIGILL";
    case SIGABRT: return "SIGABRT";
    default: return "signal";
    }
}

/* Queue the crash file as a fatal event (removed once sent). */
static bool crash_report(struct omsd_alerts *a, al_report **out)
{
    *out = NULL;
    FILE *f = fopen(crash_path, "rb");
    if (!f)
        return false;
    char buf[16384];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    int sig = 0;
    long long ms = 0, pid = 0;
    sscanf(buf, "signal %d\ntime_ms %lld\npid %lld", &sig, &ms, &pid);
    const char *bt = strstr(buf, "backtrace\n");
    al_report *r = calloc(1, sizeof *r);
    if (!r)
        return false;
    oms_sentry_event_id(buf, r->event_id); /* the same file gives the same id */
    snprintf(r->level, sizeof r->level, "fatal");
    char msg[200];
    snprintf(msg, sizeof msg, "omsd crashed: %s (signal %d)", signal_name(sig), sig);
    r->message = strdup(msg);
    r->fingerprint = strdup("omsd-crash");
    char sigs[16];
    snprintf(sigs, sizeof sigs, "%d", sig);
    r->tags = json_pack("{s:s,s:s,s:s}", "component", "omsd", "signal", signal_name(sig),
                        "instance", a->d->instance_id);
    r->extra = json_pack("{s:I,s:s,s:s}", "pid", (json_int_t)pid, "backtrace",
                         bt ? bt + 10 : "", "crashFile", crash_path);
    r->at_ms = ms > 0 ? ms : oms_now_ms();
    if (!r->message || !r->fingerprint || !r->tags || !r->extra) {
        report_free(r);
        return false;
    }
    *out = r;
    return true;
}

/* ---- the reporter thread ------------------------------------------------------------------ */

static bool send_report(struct omsd_alerts *a, const al_report *r)
{
    omsd *d = a->d;
    oms_sentry_event ev = {
        .event_id = r->event_id,
        .level = r->level,
        .message = r->message,
        .logger = "omsd",
        .environment = d->cfg.alerts.sentry_environment,
        .server_name = a->server_name,
        .fingerprint = r->fingerprint,
        .tags = r->tags,
        .extra = r->extra,
        .timestamp_ms = r->at_ms,
    };
    for (int t = 0; t < REPORT_TRIES; t++) {
        char err[700];
        oms_sentry_outcome o = omsd_alerts_sentry_send(a, &ev, err, sizeof err);
        if (o == OMS_SENTRY_OK) {
            atomic_fetch_add(&a->own_sent, 1);
            return true;
        }
        if (o != OMS_SENTRY_RETRY || t + 1 == REPORT_TRIES) {
            oms_log(d->log, OMS_LOG_WARN, "alerts: cannot report an error to sentry",
                    OMS_LS("error", err), OMS_LS("message", r->message));
            break;
        }
        /* 1, 2, 4, 8 s, cut short by the stop */
        for (int i = 0; i < (1 << t) * 10 && !atomic_load(&d->threads_stop); i++)
            usleep(100000);
        if (atomic_load(&d->threads_stop))
            break;
    }
    atomic_fetch_add(&a->own_dropped, 1);
    return false;
}

static void *reporter_main(void *arg)
{
    struct omsd_alerts *a = arg;
    al_report *crash = NULL;
    if (crash_report(a, &crash)) {
        oms_log(a->d->log, OMS_LOG_WARN, "alerts: the last run crashed; reporting it to sentry",
                OMS_LS("message", crash->message), OMS_LS("file", crash_path));
        if (send_report(a, crash))
            unlink(crash_path);
        report_free(crash);
    }
    pthread_mutex_lock(&a->lock);
    for (;;) {
        while (!a->rhead && !a->rstop)
            pthread_cond_wait(&a->rcond, &a->lock);
        if (!a->rhead)
            break; /* stopping, queue empty */
        al_report *r = a->rhead;
        a->rhead = r->next;
        if (!a->rhead)
            a->rtail = NULL;
        a->rlen--;
        pthread_mutex_unlock(&a->lock);
        send_report(a, r);
        report_free(r);
        pthread_mutex_lock(&a->lock);
    }
    pthread_mutex_unlock(&a->lock);
    return NULL;
}

int omsd_alerts_reporter_start(struct omsd_alerts *a)
{
    if (!a->s.sentry || !a->d->cfg.alerts.report_errors)
        return 0;
    install_crash_handler(a->d);
    if (pthread_create(&a->rthread, NULL, reporter_main, a) != 0)
        return OMS_EIO;
    a->rstarted = true;
    return 0;
}

/* Sends what is queued (the shutdown's own reports included), then stops. */
void omsd_alerts_reporter_join(struct omsd_alerts *a)
{
    if (!a->rstarted)
        return;
    pthread_mutex_lock(&a->lock);
    a->rstop = true;
    pthread_cond_signal(&a->rcond);
    pthread_mutex_unlock(&a->lock);
    pthread_join(a->rthread, NULL);
    a->rstarted = false;
    crash_armed = 0;
    for (al_report *r = a->rhead, *next; r; r = next) {
        next = r->next;
        report_free(r);
    }
    a->rhead = a->rtail = NULL;
}
