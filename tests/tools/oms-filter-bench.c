/* oms-filter-bench — the router's cost of choosing recipients, without
 * sockets: CONNECTIONS staff sessions subscribed to inventory, without a
 * filter or with FILTERS distinct {"productId": P} filters (P = 1 + i %
 * FILTERS), or FILTERS comparison-only filters {"quantity": {"gte": k}}
 * (never indexed: each is tested for every event); EVENTS inventory events
 * of products 1..FILTERS in turn. Prints ns per event and per recipient.
 *   usage: oms-filter-bench [CONNECTIONS [FILTERS [EVENTS]]]  (10000 1000 1000000) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gateway/filter.h"
#include "gateway/gateway.h"
#include "gateway/router.h"

typedef struct conn {
    oms_session s;
    oms_route rt;
} conn;

static uint64_t hits;
static void on_hit(void *c, void *ud)
{
    (void)c;
    (void)ud;
    hits++;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int run(const char *what, int nconns, int nfilters, long nevents, int mode)
{
    oms_router *r = oms_router_new();
    conn *c = calloc((size_t)nconns, sizeof *c);
    if (!r || !c)
        return 1;
    for (int i = 0; i < nconns; i++) {
        oms_principal p = {.user_id = 1 + i, .role = OMS_ROLE_STAFF};
        oms_session_init(&c[i].s, &p, 100, 0);
        c[i].s.subs = OMS_SUB_INVENTORY;
        if (mode) {
            char spec[96];
            if (mode == 1)
                snprintf(spec, sizeof spec, "{\"productId\": %d}", 1 + i % nfilters);
            else
                snprintf(spec, sizeof spec, "{\"quantity\": {\"gte\": %d}}", i % nfilters);
            json_t *j = json_loads(spec, 0, NULL);
            char err[256];
            if (oms_filter_parse(j, OMS_TOPIC_INVENTORY, NULL, &c[i].s.filter[OMS_GW_F_INVENTORY], err,
                                 sizeof err) != OMS_OK) {
                fprintf(stderr, "oms-filter-bench: %s\n", err);
                return 1;
            }
            json_decref(j);
        }
        if (oms_router_add(r, &c[i].rt, &c[i], &c[i].s) != OMS_OK)
            return 1;
    }
    oms_event ev = {0};
    ev.type = OMS_EV_INVENTORY_CHANGED;
    ev.product_name = (char *)"Product";
    ev.status = (char *)"in_stock";
    ev.source = (char *)"bench";
    hits = 0;
    uint64_t e0 = oms_router_filter_evals(r);
    double t0 = now_s();
    for (long e = 0; e < nevents; e++) {
        ev.product_id = 1 + e % nfilters;
        ev.quantity = (int32_t)(e % nfilters);
        oms_filter_view v;
        oms_filter_view_of(&ev, &v);
        oms_router_dispatch_view(r, ev.type, 0, &v, on_hit, NULL);
    }
    double dt = now_s() - t0;
    printf("oms-filter-bench: %-34s %6d connections, %5zu groups: %9.1f ns per event, %6.2f ns per "
           "recipient (%.1f recipients and %.1f filter tests per event)\n",
           what, nconns, oms_router_filter_groups(r), 1e9 * dt / nevents,
           hits ? 1e9 * dt / (double)hits : 0, (double)hits / nevents,
           (double)(oms_router_filter_evals(r) - e0) / nevents);
    for (int i = 0; i < nconns; i++) {
        oms_router_remove(r, &c[i].rt);
        oms_session_clear(&c[i].s);
    }
    oms_router_free(r);
    free(c);
    return 0;
}

int main(int argc, char **argv)
{
    int nconns = argc > 1 ? atoi(argv[1]) : 10000;
    int nfilters = argc > 2 ? atoi(argv[2]) : 1000;
    long nevents = argc > 3 ? atol(argv[3]) : 1000000;
    if (nconns < 1 || nfilters < 1 || nevents < 1) {
        fprintf(stderr, "usage: oms-filter-bench [CONNECTIONS [FILTERS [EVENTS]]]\n");
        return 2;
    }
    char what[64];
    int rc = run("no filter", nconns, nfilters, nevents / 100 + 1, 0);
    snprintf(what, sizeof what, "%d productId filters (indexed)", nfilters);
    rc |= run(what, nconns, nfilters, nevents, 1);
    snprintf(what, sizeof what, "%d quantity filters (tested each)", nfilters);
    rc |= run(what, nconns, nfilters, nevents / 100 + 1, 2);
    return rc;
}
