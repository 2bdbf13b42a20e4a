/* age.c — the age of live events when written to a client (record
 * timestamp -> socket write): a histogram per service thread, summed when
 * read (oms_delivery_age_seconds, p50/p99 in the stats). */
#include <string.h>

#include "omsd.h"

#define RELAXED(x) atomic_load_explicit(&(x), memory_order_relaxed)

/* Upper bounds (ms) of the buckets of oms_delivery_age_seconds: fine where
 * live pushes land (a few ms), coarse for the stragglers. */
const int64_t omsd_age_bounds_ms[OMSD_AGE_BOUNDS] = {1,   2,   3,   5,    7,    10,   15,   20,   30,    50, 70,
                                        100, 150, 200, 300, 500, 700, 1000, 2000, 5000, 10000};

void omsd_age_record(omsd_worker *w, int64_t ts_ms, int64_t now_ms)
{
    int64_t age = now_ms > ts_ms ? now_ms - ts_ms : 0;
    size_t b = 0;
    while (b < OMSD_AGE_BOUNDS && age > omsd_age_bounds_ms[b])
        b++;
    OMSD_BUMP(w->age_buckets[b], 1);
    OMSD_BUMP(w->age_count, 1);
    OMSD_BUMP(w->age_sum_ms, age);
}

/* The histogram, all service threads together. */
void omsd_age_totals(const omsd *d, uint64_t buckets[OMSD_AGE_BUCKETS], uint64_t *count,
                     int64_t *sum_ms)
{
    memset(buckets, 0, OMSD_AGE_BUCKETS * sizeof *buckets);
    *count = 0;
    *sum_ms = 0;
    for (int i = 0; i < d->nworkers; i++) {
        omsd_worker *w = &d->workers[i];
        for (int b = 0; b < OMSD_AGE_BUCKETS; b++)
            buckets[b] += RELAXED(w->age_buckets[b]);
        *count += RELAXED(w->age_count);
        *sum_ms += RELAXED(w->age_sum_ms);
    }
}

double omsd_age_quantile(const omsd *d, double q)
{
    uint64_t buckets[OMSD_AGE_BUCKETS], count;
    int64_t sum;
    omsd_age_totals(d, buckets, &count, &sum);
    if (count == 0)
        return -1;
    /* as Prometheus' histogram_quantile: linear within the bucket */
    double rank = q * (double)count, seen = 0;
    for (size_t b = 0; b <= OMSD_AGE_BOUNDS; b++) {
        double n = (double)buckets[b];
        if (seen + n >= rank && n > 0) {
            if (b == OMSD_AGE_BOUNDS)
                return (double)omsd_age_bounds_ms[OMSD_AGE_BOUNDS - 1];
            double lo = b ? (double)omsd_age_bounds_ms[b - 1] : 0, hi = (double)omsd_age_bounds_ms[b];
            return lo + (hi - lo) * (rank - seen) / n;
        }
        seen += n;
    }
    return (double)omsd_age_bounds_ms[OMSD_AGE_BOUNDS - 1];
}

