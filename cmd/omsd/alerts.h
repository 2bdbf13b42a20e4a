/* alerts.h — private to alerts.c and alerts_errors.c: the state the
 * alerting consumer and the own-error reporter share. */
#ifndef OMSD_ALERTS_H
#define OMSD_ALERTS_H

#include <pthread.h>
#include <stdatomic.h>

#include "alert/alert.h"
#include "omsd.h"

enum { SINK_SENTRY = 0, SINK_EMAIL, SINK__COUNT };
enum { SINK_UNKNOWN = 0, SINK_UP, SINK_DOWN };

/* One sink's published state (under omsd_alerts.lock). */
typedef struct al_sink {
    int state;
    char error[512];
    int64_t last_ok_ms;  /* -1 never */
    int64_t last_err_ms; /* -1 never */
    uint64_t consecutive;
} al_sink;

/* An own error waiting for the reporter. */
typedef struct al_report {
    struct al_report *next;
    char event_id[33];
    char level[16];
    char *message;
    char *fingerprint;
    json_t *tags;  /* owned */
    json_t *extra; /* owned */
    int64_t at_ms;
} al_report;

#define AL_OUTAGE_KEYS 3 /* OMSD_OUTAGE_*: kafka, postgres, projections */

typedef struct al_worker al_worker;

struct omsd_alerts {
    omsd *d;
    al_worker *worker; /* alerts.c: the consumer */
    oms_alert_settings s;
    char server_name[256];

    /* the consumer */
    pthread_t thread;
    bool started;
    /* the reporter of omsd's own errors */
    pthread_t rthread;
    atomic_bool rstarted; /* read by every thread that reports */
    pthread_cond_t rcond;
    al_report *rhead, *rtail;
    size_t rlen;
    bool rstop;
    /* outage keys already reported (one event per outage) */
    bool outage[AL_OUTAGE_KEYS];

    pthread_mutex_t lock;
    al_sink sink[SINK__COUNT];
    bool pg_ok;
    char pg_error[384];
    size_t assigned;
    bool holding;
    char holding_why[160];

    atomic_uint_fast64_t sent[SINK__COUNT];
    atomic_uint_fast64_t retried[SINK__COUNT];
    atomic_uint_fast64_t failed[SINK__COUNT];
    atomic_uint_fast64_t folded;
    atomic_uint_fast64_t digests;
    atomic_uint_fast64_t duplicates; /* events found already handled (replays, restarts) */
    atomic_uint_fast64_t own_sent, own_dropped;
};

/* "sentry", "email" (for logs, health and metrics). */
extern const char *const omsd_alerts_sink_names[SINK__COUNT];

/* Publish one sink's outcome (any thread). */
void omsd_alerts_sink_result(struct omsd_alerts *a, int sink, bool ok, const char *error);

/* Send one event to Sentry with the configured DSN (any thread; blocks up
 * to alerts.sentry.timeout_s). Updates the sentry sink state. */
oms_sentry_outcome omsd_alerts_sentry_send(struct omsd_alerts *a, const oms_sentry_event *ev,
                                           char *errbuf, size_t errlen);

/* alerts_errors.c */
int omsd_alerts_reporter_start(struct omsd_alerts *a);
void omsd_alerts_reporter_join(struct omsd_alerts *a);

#endif
