/* serve_state.c — the services' state, folded from the orders and inventory
 * topics by a follower thread that reads them from the beginning and keeps
 * following; and publishing, which waits until the fold has seen what it
 * wrote, so an answer never runs ahead of the state. */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "producer.h"
#include "serve.h"

static atomic_bool follower_stop; /* set once, at shutdown */

/* ---- tables ------------------------------------------------------------------- */

static uint64_t hash_str(const char *k)
{
    uint64_t h = 1469598103934665603ull;
    for (; *k; k++)
        h = (h ^ (unsigned char)*k) * 1099511628211ull;
    return h;
}

static uint64_t hash_i64(int64_t v)
{
    uint64_t z = (uint64_t)v + 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

sv_order *sv_order_find(serve *s, const char *order_id)
{
    if (!s->orders_cap)
        return NULL;
    for (sv_order *o = s->orders[hash_str(order_id) & (s->orders_cap - 1)]; o; o = o->next)
        if (strcmp(o->order_id, order_id) == 0)
            return o;
    return NULL;
}

sv_product *sv_product_find(serve *s, int64_t product_id)
{
    if (!s->products_cap)
        return NULL;
    for (sv_product *p = s->products[hash_i64(product_id) & (s->products_cap - 1)]; p; p = p->next)
        if (p->id == product_id)
            return p;
    return NULL;
}

/* Double a table when it is as full as it is wide (chains stay short). */
static int grow_orders(serve *s)
{
    if (s->norders < s->orders_cap)
        return 0;
    size_t ncap = s->orders_cap ? s->orders_cap * 2 : 1024;
    sv_order **nt = calloc(ncap, sizeof *nt);
    if (!nt)
        return -1;
    for (size_t i = 0; i < s->orders_cap; i++) {
        for (sv_order *o = s->orders[i], *next; o; o = next) {
            next = o->next;
            size_t b = hash_str(o->order_id) & (ncap - 1);
            o->next = nt[b];
            nt[b] = o;
        }
    }
    free(s->orders);
    s->orders = nt;
    s->orders_cap = ncap;
    return 0;
}

static int grow_products(serve *s)
{
    if (s->nproducts < s->products_cap)
        return 0;
    size_t ncap = s->products_cap ? s->products_cap * 2 : 256;
    sv_product **nt = calloc(ncap, sizeof *nt);
    if (!nt)
        return -1;
    for (size_t i = 0; i < s->products_cap; i++) {
        for (sv_product *p = s->products[i], *next; p; p = next) {
            next = p->next;
            size_t b = hash_i64(p->id) & (ncap - 1);
            p->next = nt[b];
            nt[b] = p;
        }
    }
    free(s->products);
    s->products = nt;
    s->products_cap = ncap;
    return 0;
}

static void order_free(sv_order *o)
{
    for (size_t i = 0; i < o->nitems; i++)
        free(o->items[i].product_name);
    free(o->items);
    free(o->order_id);
    free(o->alias_id);
    free(o);
}

/* ---- the fold ------------------------------------------------------------------- */

static void unlink_order(serve *s, sv_order *o)
{
    for (sv_order **pp = &s->orders[hash_str(o->order_id) & (s->orders_cap - 1)]; *pp;
         pp = &(*pp)->next) {
        if (*pp == o) {
            *pp = o->next;
            s->norders--;
            return;
        }
    }
}

static void apply_order_created(serve *s, const oms_event *ev)
{
    /* a second OrderCreated for an id (a simulation rerun with its seed)
     * replaces the order, as the projections do: the log's last word */
    sv_order *old = sv_order_find(s, ev->order_id);
    if (old) {
        unlink_order(s, old);
        order_free(old);
    }
    if (grow_orders(s) != 0)
        return;
    sv_order *o = calloc(1, sizeof *o);
    if (!o)
        return;
    o->order_id = strdup(ev->order_id);
    o->alias_id = strdup(ev->alias_id ? ev->alias_id : "");
    o->items = ev->nitems ? calloc(ev->nitems, sizeof *o->items) : NULL;
    if (!o->order_id || !o->alias_id || (ev->nitems && !o->items)) {
        order_free(o);
        return;
    }
    o->user_id = ev->user_id;
    snprintf(o->status, sizeof o->status, "%s", ev->status ? ev->status : "created");
    o->total = ev->total_amount;
    for (size_t i = 0; i < ev->nitems; i++) {
        o->items[i].product_id = ev->items[i].product_id;
        o->items[i].product_name = strdup(ev->items[i].product_name ? ev->items[i].product_name : "");
        o->items[i].quantity = ev->items[i].quantity;
        o->items[i].price = ev->items[i].price;
        o->nitems++;
    }
    o->created_at = o->updated_at = ev->occurred_at;
    size_t b = hash_str(o->order_id) & (s->orders_cap - 1);
    o->next = s->orders[b];
    s->orders[b] = o;
    s->norders++;
}

static void apply_status_changed(serve *s, const oms_event *ev)
{
    sv_order *o = sv_order_find(s, ev->order_id);
    if (!o)
        return; /* a change for an order this log never created */
    snprintf(o->status, sizeof o->status, "%s", ev->status);
    o->updated_at = ev->occurred_at;
}

static void apply_inventory(serve *s, const oms_event *ev)
{
    sv_product *p = sv_product_find(s, ev->product_id);
    if (!p) {
        if (grow_products(s) != 0 || !(p = calloc(1, sizeof *p)))
            return;
        p->id = ev->product_id;
        size_t b = hash_i64(p->id) & (s->products_cap - 1);
        p->next = s->products[b];
        s->products[b] = p;
        s->nproducts++;
    }
    if (!p->name || strcmp(p->name, ev->product_name) != 0) {
        char *n = strdup(ev->product_name);
        if (n) {
            free(p->name);
            p->name = n;
        }
    }
    /* the event carries the stock after the change: the last one wins */
    p->quantity = ev->quantity;
    p->threshold = ev->threshold;
    snprintf(p->status, sizeof p->status, "%s", ev->status);
    p->updated_at = ev->occurred_at;
}

static void apply(serve *s, const oms_event *ev)
{
    switch (ev->type) {
    case OMS_EV_ORDER_CREATED: apply_order_created(s, ev); break;
    case OMS_EV_ORDER_STATUS_CHANGED: apply_status_changed(s, ev); break;
    case OMS_EV_INVENTORY_CHANGED: apply_inventory(s, ev); break;
    default: break;
    }
}

static int kind_of(serve *s, const char *topic)
{
    if (strcmp(topic, s->topics[OMS_TOPIC_ORDERS]) == 0)
        return OMS_TOPIC_ORDERS;
    if (strcmp(topic, s->topics[OMS_TOPIC_INVENTORY]) == 0)
        return OMS_TOPIC_INVENTORY;
    return -1;
}

static bool caught_up_locked(serve *s)
{
    for (int k = 0; k < 2; k++)
        for (int p = 0; p < s->nparts[k]; p++)
            if (s->start_high[k][p] > 0 && s->next_offset[k][p] < s->start_high[k][p])
                return false;
    return true;
}

static void *follow(void *arg)
{
    serve *s = arg;
    char err[512];
    while (!atomic_load(&follower_stop)) {
        rd_kafka_message_t *m = oms_kafka_reader_poll(s->reader, 100);
        if (!m)
            continue;
        int k = m->rkt ? kind_of(s, rd_kafka_topic_name(m->rkt)) : -1;
        if (m->err && m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            oms_log(s->log, OMS_LOG_WARN, "kafka read error", OMS_LS("error", rd_kafka_message_errstr(m)));
            rd_kafka_message_destroy(m);
            continue;
        }
        if (k < 0 || m->partition < 0) {
            rd_kafka_message_destroy(m);
            continue;
        }
        oms_event ev;
        bool have = false;
        if (!m->err) {
            have = oms_event_decode(s->events, m->payload, m->len, &ev, err, sizeof err) == OMS_OK;
            if (!have) {
                s->undecodable++;
                oms_log(s->log, OMS_LOG_WARN, "record skipped: not decodable",
                        OMS_LS("topic", s->topics[k]), OMS_LI("partition", m->partition),
                        OMS_LI("offset", m->offset), OMS_LS("error", err));
            }
        }
        pthread_mutex_lock(&s->lock);
        if (have) {
            apply(s, &ev);
            s->applied++;
        }
        int64_t next = m->err ? m->offset : m->offset + 1;
        /* positions are kept for the first SV_MAX_PARTITIONS partitions (a
         * write to a later one is answered without waiting for its fold) */
        if (m->partition < SV_MAX_PARTITIONS && next > s->next_offset[k][m->partition])
            s->next_offset[k][m->partition] = next;
        if (!s->caught_up && caught_up_locked(s))
            s->caught_up = true;
        pthread_cond_broadcast(&s->cond);
        pthread_mutex_unlock(&s->lock);
        if (have)
            oms_event_clear(&ev);
        rd_kafka_message_destroy(m);
    }
    return NULL;
}

int sv_state_start(serve *s, char *errbuf, size_t errlen)
{
    pthread_mutex_init(&s->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cond, &ca);
    pthread_condattr_destroy(&ca);
    const char *topics[2] = {s->topics[OMS_TOPIC_ORDERS], s->topics[OMS_TOPIC_INVENTORY]};
    int n = oms_kafka_reader_assign(s->reader, topics, 2, -1, OMS_KAFKA_FROM_BEGINNING, false,
                                    10000, errbuf, errlen);
    if (n < 0)
        return -1;
    /* where the log ends now: the state is ready once it got there */
    rd_kafka_t *rk = oms_kafka_reader_handle(s->reader);
    rd_kafka_topic_partition_list_t *as = NULL;
    if (rd_kafka_assignment(rk, &as) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        oms_errf(errbuf, errlen, "cannot read the assignment");
        return -1;
    }
    int rc = 0;
    for (int i = 0; i < as->cnt && rc == 0; i++) {
        int k = kind_of(s, as->elems[i].topic);
        int32_t p = as->elems[i].partition;
        if (k < 0 || p >= SV_MAX_PARTITIONS)
            continue;
        int64_t lo = 0, hi = 0;
        rd_kafka_resp_err_t e =
            rd_kafka_query_watermark_offsets(rk, as->elems[i].topic, p, &lo, &hi, 10000);
        if (e) {
            oms_errf(errbuf, errlen, "cannot read the end of '%s' partition %d: %s",
                     as->elems[i].topic, (int)p, rd_kafka_err2str(e));
            rc = -1;
            break;
        }
        s->start_high[k][p] = hi;
        s->next_offset[k][p] = lo;
        if (p + 1 > s->nparts[k])
            s->nparts[k] = p + 1;
    }
    rd_kafka_topic_partition_list_destroy(as);
    if (rc)
        return rc;
    s->caught_up = caught_up_locked(s);
    atomic_store(&follower_stop, false);
    if (pthread_create(&s->follower, NULL, follow, s) != 0) {
        oms_errf(errbuf, errlen, "cannot start the follower thread");
        return -1;
    }
    s->follower_started = true;
    return 0;
}

static void deadline_in(struct timespec *ts, int ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

int sv_state_wait_ready(serve *s, int timeout_ms)
{
    struct timespec until;
    deadline_in(&until, timeout_ms);
    pthread_mutex_lock(&s->lock);
    int rc = 0;
    while (!s->caught_up && !producer_stop) {
        if (pthread_cond_timedwait(&s->cond, &s->lock, &until) != 0 && !s->caught_up) {
            rc = OMS_ETIMEDOUT;
            break;
        }
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

void sv_state_stop(serve *s)
{
    if (s->follower_started) {
        atomic_store(&follower_stop, true);
        pthread_join(s->follower, NULL);
        s->follower_started = false;
    }
    for (size_t i = 0; i < s->orders_cap; i++)
        for (sv_order *o = s->orders[i], *next; o; o = next) {
            next = o->next;
            order_free(o);
        }
    free(s->orders);
    s->orders = NULL;
    for (size_t i = 0; i < s->products_cap; i++)
        for (sv_product *p = s->products[i], *next; p; p = next) {
            next = p->next;
            free(p->name);
            free(p);
        }
    free(s->products);
    s->products = NULL;
    s->orders_cap = s->products_cap = 0;
}

/* ---- publishing ---------------------------------------------------------------- */

void sv_on_delivery(void *ctx, void *opaque, rd_kafka_resp_err_t err, const char *topic,
                        int32_t partition, int64_t offset, int64_t timestamp)
{
    (void)ctx;
    (void)topic;
    (void)timestamp;
    sv_pub *p = opaque;
    if (!p)
        return;
    p->done = true;
    p->err = err;
    p->partition = partition;
    p->offset = offset;
}

int sv_publish(serve *s, oms_event *evs, size_t n, char *errbuf, size_t errlen)
{
    sv_pub *pubs = calloc(n, sizeof *pubs);
    if (!pubs) {
        oms_errf(errbuf, errlen, "out of memory");
        return OMS_ENOMEM;
    }
    int rc = OMS_OK;
    size_t queued = 0;
    uint64_t t0 = oms_mono_ns();
    for (size_t i = 0; i < n && rc == OMS_OK; i++) {
        uint8_t *buf = s->encbuf;
        size_t len = 0;
        char key[64];
        int klen = oms_event_key(&evs[i], key, sizeof key);
        rc = klen < 0 ? OMS_ERANGE
                      : oms_event_encode_wire(s->events, s->format, s->schema_ids, &evs[i], buf,
                                              SV_ENCODE_MAX, &len, errbuf, errlen);
        if (rc != OMS_OK) {
            if (klen < 0)
                oms_errf(errbuf, errlen, "event key too long");
            break;
        }
        pubs[i].ev = &evs[i];
        pubs[i].kind = oms_event_topic_kind(evs[i].type);
        rc = oms_kafka_produce(s->kp, s->topics[pubs[i].kind], RD_KAFKA_PARTITION_UA, key,
                               (size_t)klen, buf, len, NULL, 0, &pubs[i], 5000, errbuf, errlen);
        if (rc == OMS_OK)
            queued++;
    }
    /* what was queued must be reported on before pubs goes away */
    while (oms_kafka_producer_flush(s->kp, 30000) > 0)
        ;
    for (size_t i = 0; i < queued; i++) {
        if (rc == OMS_OK && (!pubs[i].done || pubs[i].err)) {
            oms_errf(errbuf, errlen, "kafka did not acknowledge %s: %s",
                     oms_event_type_name(evs[i].type),
                     pubs[i].done ? rd_kafka_err2str(pubs[i].err) : "no delivery report");
            rc = OMS_EKAFKA;
        }
    }
    if (rc == OMS_OK)
        s->published += n;
    uint64_t t_ack = oms_mono_ns();
    /* wait until the follower applied every acknowledged event: the answer
     * and the next request then see them (bounded: the events are in the
     * log whatever happens here) */
    struct timespec until;
    deadline_in(&until, 10000);
    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < queued; i++) {
        sv_pub *p = &pubs[i];
        if (!p->done || p->err || p->partition < 0 || p->partition >= SV_MAX_PARTITIONS ||
            p->kind > OMS_TOPIC_INVENTORY)
            continue;
        while (s->next_offset[p->kind][p->partition] <= p->offset) {
            if (pthread_cond_timedwait(&s->cond, &s->lock, &until) != 0) {
                oms_log(s->log, OMS_LOG_WARN, "the follower did not see a published event in 10 s",
                        OMS_LS("topic", s->topics[p->kind]), OMS_LI("partition", p->partition),
                        OMS_LI("offset", p->offset));
                i = queued;
                break;
            }
        }
    }
    pthread_mutex_unlock(&s->lock);
    oms_log(s->log, OMS_LOG_DEBUG, "published", OMS_LI("events", n),
            OMS_LD("ackMs", (double)(t_ack - t0) / 1e6),
            OMS_LD("appliedMs", (double)(oms_mono_ns() - t_ack) / 1e6));
    free(pubs);
    if (rc != OMS_OK && rc != OMS_EKAFKA)
        rc = OMS_EKAFKA;
    return rc;
}
