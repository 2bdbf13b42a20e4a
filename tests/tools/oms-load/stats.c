/* stats.c — what the run counts: connections settling, failures by reason,
 * close codes, events by kind and their produce-to-receive latency.
 *
 * Latency is now (wall clock) − the event's produce time, which has
 * millisecond resolution (truncated): a measured latency is the true one
 * plus 0..1 ms. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/oms.h"
#include "load.h"

uint64_t load_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int64_t load_wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void load_note_error(const char *what)
{
    for (int i = 0; i < load.nerrs; i++) {
        if (strcmp(load.errs[i].what, what) == 0) {
            load.errs[i].n++;
            return;
        }
    }
    /* the table is small: past it every new reason shares the last slot */
    int last = (int)OMS_ARRAY_LEN(load.errs) - 1;
    int i = load.nerrs < last ? load.nerrs++ : last;
    if (i == last) {
        snprintf(load.errs[i].what, sizeof load.errs[i].what, "(other reasons)");
        load.nerrs = last + 1;
    } else {
        snprintf(load.errs[i].what, sizeof load.errs[i].what, "%s", what);
    }
    load.errs[i].n++;
}

void load_note_close_code(unsigned code)
{
    for (int i = 0; i < load.ncodes; i++) {
        if (load.close_codes[i][0] == code) {
            load.close_codes[i][1]++;
            return;
        }
    }
    if (load.ncodes < (int)OMS_ARRAY_LEN(load.close_codes)) {
        load.close_codes[load.ncodes][0] = code;
        load.close_codes[load.ncodes][1] = 1;
        load.ncodes++;
    } else {
        load.closes_other++;
    }
}

void load_note_error_frame(load_conn *c, const char *m, size_t n)
{
    load.error_frames++;
    if (c->answers < c->want)
        c->answers++;
    if (!load.first_error_frame[0])
        snprintf(load.first_error_frame, sizeof load.first_error_frame, "%.*s",
                 (int)(n < 190 ? n : 190), m);
}

void load_conn_hello(load_conn *c)
{
    if (!c->hello) {
        c->hello = true;
        load.hello++;
    }
}

void load_conn_confirmed(load_conn *c)
{
    c->answers++;
    if (++c->confirms >= c->want && !c->subscribed) {
        c->subscribed = true;
        load.subscribed++;
    }
}

void load_count_event(load_conn *c, int kind, int64_t ts_ms)
{
    int64_t now_us = load_wall_us();
    uint64_t now_ns = load_mono_ns();
    load.by_kind[kind]++;
    load.events++;
    c->events++;
    if (!load.first_ev_ns) {
        load.first_ev_ns = now_ns;
        load.first_ev_us = now_us;
    }
    load.last_ev_ns = now_ns;
    load.last_ev_us = now_us;
    if (ts_ms < 0) {
        load.no_ts++;
        return;
    }
    int64_t lat = now_us - ts_ms * 1000;
    if (lat < 0)
        lat = 0;
    if (lat > load.lat_max_us)
        load.lat_max_us = lat;
    load.lat_sum_us += (double)lat;
    int64_t b = lat / LOAD_HIST_STEP_US;
    if (b >= LOAD_HIST_BUCKETS)
        load.hist_over++;
    else
        load.hist[b]++;
}

/* the upper edge of the bucket holding quantile q */
double load_percentile_us(double q)
{
    uint64_t total = load.hist_over;
    for (int i = 0; i < LOAD_HIST_BUCKETS; i++)
        total += load.hist[i];
    if (!total)
        return 0;
    uint64_t rank = (uint64_t)(q * (double)total);
    if (rank >= total)
        rank = total - 1;
    uint64_t seen = 0;
    for (int i = 0; i < LOAD_HIST_BUCKETS; i++) {
        seen += load.hist[i];
        if (seen > rank) {
            double edge = (double)(i + 1) * LOAD_HIST_STEP_US;
            return edge < (double)load.lat_max_us ? edge : (double)load.lat_max_us;
        }
    }
    return (double)load.lat_max_us;
}
