/* metrics.c — /metrics (Prometheus text format) and /websocket/stats. */
#include <inttypes.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "omsd.h"

typedef struct sbuf {
    char *s;
    size_t len, cap;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void sb_printf(sbuf *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if (b->s && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap ? b->cap * 2 : 4096;
        while (cap < b->len + (size_t)n + 1)
            cap *= 2;
        char *ns = realloc(b->s, cap);
        if (!ns)
            return;
        b->s = ns;
        b->cap = cap;
    }
}

static const char *const kind_names[OMS_TOPIC__COUNT] = {"orders", "inventory", "notifications"};

#define RELAXED(x) atomic_load_explicit(&(x), memory_order_relaxed)

static uint64_t ws_sum(const omsd *d, bool bytes, int z)
{
    uint64_t n = 0;
    for (int i = 0; i < d->nworkers; i++)
        n += bytes ? RELAXED(d->workers[i].ws_sent_bytes[z]) : RELAXED(d->workers[i].ws_sent_frames[z]);
    return n;
}

static uint64_t delivered_total(const omsd *d, int k)
{
    uint64_t n = 0;
    for (int i = 0; i < d->nworkers; i++)
        n += RELAXED(d->workers[i].delivered[k]);
    return n;
}

char *omsd_metrics_text(omsd *d, size_t *len)
{
    sbuf b = {0};
    sb_printf(&b, "# HELP oms_connections WebSocket connections open now.\n"
                  "# TYPE oms_connections gauge\noms_connections %zu\n",
              omsd_nconns(d));
    sb_printf(&b, "# HELP oms_connections_total WebSocket connections accepted.\n"
                  "# TYPE oms_connections_total counter\noms_connections_total %" PRIu64 "\n",
              d->m.connections_total);
    sb_printf(&b, "# HELP oms_subscriptions Connections subscribed, by kind.\n"
                  "# TYPE oms_subscriptions gauge\n"
                  "oms_subscriptions{kind=\"orders\"} %zu\n"
                  "oms_subscriptions{kind=\"inventory\"} %zu\n",
              omsd_subscribed(d, OMS_SUB_ORDERS), omsd_subscribed(d, OMS_SUB_INVENTORY));
    sb_printf(&b, "# HELP oms_events_consumed_total Records read by the fan-out, by topic.\n"
                  "# TYPE oms_events_consumed_total counter\n");
    for (int k = 0; k < OMS_TOPIC__COUNT; k++)
        sb_printf(&b, "oms_events_consumed_total{topic=\"%s\"} %" PRIu64 "\n", d->topics[k],
                  (uint64_t)atomic_load(&d->m.consumed[k]));
    sb_printf(&b, "# HELP oms_events_delivered_total Frames written to clients, by topic.\n"
                  "# TYPE oms_events_delivered_total counter\n");
    for (int k = 0; k < OMS_TOPIC__COUNT; k++)
        sb_printf(&b, "oms_events_delivered_total{topic=\"%s\"} %" PRIu64 "\n", d->topics[k],
                  delivered_total(d, k));
    uint64_t writes[2] = {0, 0}, frames = 0;
    for (int i = 0; i < d->nworkers; i++) {
        writes[0] += RELAXED(d->workers[i].ws_writes[0]);
        writes[1] += RELAXED(d->workers[i].ws_writes[1]);
        frames += RELAXED(d->workers[i].ws_frames);
    }
    sb_printf(&b,
              "# HELP oms_websocket_writes_total Writes of WebSocket frames to sockets (queued "
              "frames go out several to a write): at the end of a loop turn (direct) or when "
              "a full socket took more again (writeable).\n"
              "# TYPE oms_websocket_writes_total counter\n"
              "oms_websocket_writes_total{path=\"direct\"} %" PRIu64 "\n"
              "oms_websocket_writes_total{path=\"writeable\"} %" PRIu64 "\n"
              "# HELP oms_websocket_frames_total WebSocket frames in those writes.\n"
              "# TYPE oms_websocket_frames_total counter\noms_websocket_frames_total %" PRIu64 "\n",
              writes[1], writes[0], frames);
    sb_printf(&b, "# HELP oms_ws_sent_frames_total WebSocket data frames written, compressed "
                  "(permessage-deflate) or not.\n"
                  "# TYPE oms_ws_sent_frames_total counter\n"
                  "oms_ws_sent_frames_total{compressed=\"false\"} %" PRIu64 "\n"
                  "oms_ws_sent_frames_total{compressed=\"true\"} %" PRIu64 "\n",
              ws_sum(d, false, 0), ws_sum(d, false, 1));
    sb_printf(&b, "# HELP oms_ws_deflated_frames_total Frames compressed, each once for every "
                  "connection that takes it (none while no connection negotiated "
                  "permessage-deflate).\n"
                  "# TYPE oms_ws_deflated_frames_total counter\noms_ws_deflated_frames_total %" PRIu64
                  "\n",
              (uint64_t)RELAXED(d->m.deflated));
    sb_printf(&b, "# HELP oms_ws_sent_bytes_total Bytes of those frames on the wire, headers "
                  "included.\n"
                  "# TYPE oms_ws_sent_bytes_total counter\n"
                  "oms_ws_sent_bytes_total{compressed=\"false\"} %" PRIu64 "\n"
                  "oms_ws_sent_bytes_total{compressed=\"true\"} %" PRIu64 "\n",
              ws_sum(d, true, 0), ws_sum(d, true, 1));
    sb_printf(&b, "# HELP oms_events_dropped_total Deliveries not queued because the client "
                  "was closing or overflowed, by topic.\n"
                  "# TYPE oms_events_dropped_total counter\n");
    for (int k = 0; k < OMS_TOPIC__COUNT; k++)
        sb_printf(&b, "oms_events_dropped_total{topic=\"%s\"} %" PRIu64 "\n", d->topics[k],
                  d->m.dropped[k]);
    sb_printf(&b, "# HELP oms_thread_connections Connections each service thread serves.\n"
                  "# TYPE oms_thread_connections gauge\n");
    for (int i = 0; i < d->nworkers; i++)
        sb_printf(&b, "oms_thread_connections{thread=\"%d\"} %zu\n", i,
                  atomic_load(&d->workers[i].nconns));
    sb_printf(&b, "# HELP oms_delivery_age_seconds Age of live events when written to a client: "
                  "record timestamp to socket write.\n"
                  "# TYPE oms_delivery_age_seconds histogram\n");
    uint64_t ages[OMSD_AGE_BUCKETS], age_count;
    int64_t age_sum;
    omsd_age_totals(d, ages, &age_count, &age_sum);
    uint64_t cum = 0;
    for (size_t i = 0; i < OMSD_AGE_BOUNDS; i++) {
        cum += ages[i];
        sb_printf(&b, "oms_delivery_age_seconds_bucket{le=\"%g\"} %" PRIu64 "\n",
                  (double)omsd_age_bounds_ms[i] / 1000.0, cum);
    }
    cum += ages[OMSD_AGE_BOUNDS];
    sb_printf(&b,
              "oms_delivery_age_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n"
              "oms_delivery_age_seconds_sum %.3f\noms_delivery_age_seconds_count %" PRIu64 "\n",
              cum, (double)age_sum / 1000.0, age_count);
    struct mallinfo2 mi = mallinfo2();
    sb_printf(&b,
              "# HELP oms_heap_in_use_bytes Heap memory allocated and not freed (malloc).\n"
              "# TYPE oms_heap_in_use_bytes gauge\noms_heap_in_use_bytes %zu\n"
              "# HELP oms_heap_free_bytes Heap memory freed but kept by the allocator.\n"
              "# TYPE oms_heap_free_bytes gauge\noms_heap_free_bytes %zu\n",
              mi.uordblks + mi.hblkhd, mi.fordblks);
    sb_printf(&b,
              "# HELP oms_connections_refused_address_total WebSocket upgrades refused: too many "
              "from one client address.\n"
              "# TYPE oms_connections_refused_address_total counter\n"
              "oms_connections_refused_address_total %" PRIu64 "\n"
              "# HELP oms_sessions_refused_unauthenticated_total Socket.IO sessions refused: "
              "server.max_unauthenticated_sessions reached.\n"
              "# TYPE oms_sessions_refused_unauthenticated_total counter\n"
              "oms_sessions_refused_unauthenticated_total %" PRIu64 "\n"
              "# HELP oms_service_threads Threads serving connections (server.threads).\n"
              "# TYPE oms_service_threads gauge\noms_service_threads %d\n"
              "# HELP oms_sio_forwarded_total Socket.IO polling requests that reached a thread "
              "other than their session's and were handed to it.\n"
              "# TYPE oms_sio_forwarded_total counter\noms_sio_forwarded_total %" PRIu64 "\n"
              "# HELP oms_sio_moved_total Socket.IO sessions that moved to the thread their "
              "WebSocket upgrade landed on.\n"
              "# TYPE oms_sio_moved_total counter\noms_sio_moved_total %" PRIu64 "\n"
              "# HELP oms_sessions_unauthenticated Socket.IO sessions open and not joined "
              "to /events yet.\n"
              "# TYPE oms_sessions_unauthenticated gauge\noms_sessions_unauthenticated %zu\n",
              d->m.address_refused, d->m.unauth_refused, d->nworkers,
              (uint64_t)d->m.sio_forwarded, (uint64_t)d->m.sio_moved, (size_t)atomic_load(&d->sio_unauth));
    sb_printf(&b, "# HELP oms_resumes_total Resumes answered, by where the missed events came "
                  "from or why not.\n"
                  "# TYPE oms_resumes_total counter\n"
                  "oms_resumes_total{outcome=\"memory\"} %" PRIu64 "\n"
                  "oms_resumes_total{outcome=\"kafka\"} %" PRIu64 "\n"
                  "oms_resumes_total{outcome=\"unrecoverable\"} %" PRIu64 "\n"
                  "oms_resumes_total{outcome=\"failed\"} %" PRIu64 "\n",
              d->m.resumes[0], d->m.resumes[1], d->m.resumes[2], d->m.resumes[3]);
    if (atomic_load(&d->m.ss_up) >= 0)
        sb_printf(&b,
                  "# HELP oms_session_store_up Whether the Socket.IO session store's PostgreSQL "
                  "answers (table ws_sessions).\n"
                  "# TYPE oms_session_store_up gauge\noms_session_store_up %d\n"
                  "# HELP oms_session_store_saves_total Socket.IO sessions' subscriptions "
                  "written, by result (failed: confirmed unstored, written when it is back).\n"
                  "# TYPE oms_session_store_saves_total counter\n"
                  "oms_session_store_saves_total{result=\"stored\"} %" PRIu64 "\n"
                  "oms_session_store_saves_total{result=\"failed\"} %" PRIu64 "\n"
                  "# HELP oms_session_store_lookups_total Recoveries that asked PostgreSQL for a "
                  "session, by result.\n"
                  "# TYPE oms_session_store_lookups_total counter\n"
                  "oms_session_store_lookups_total{result=\"found\"} %" PRIu64 "\n"
                  "oms_session_store_lookups_total{result=\"missing\"} %" PRIu64 "\n"
                  "oms_session_store_lookups_total{result=\"failed\"} %" PRIu64 "\n",
                  atomic_load(&d->m.ss_up), (uint64_t)RELAXED(d->m.ss_saves[0]),
                  (uint64_t)RELAXED(d->m.ss_saves[1]), (uint64_t)RELAXED(d->m.ss_lookups[0]),
                  (uint64_t)RELAXED(d->m.ss_lookups[1]), (uint64_t)RELAXED(d->m.ss_lookups[2]));
    sb_printf(&b,
              "# HELP oms_resume_replayed_total Events sent by resumes.\n"
              "# TYPE oms_resume_replayed_total counter\noms_resume_replayed_total %" PRIu64 "\n"
              "# HELP oms_resume_read_total Records read back from Kafka for resumes.\n"
              "# TYPE oms_resume_read_total counter\noms_resume_read_total %" PRIu64 "\n"
              "# HELP oms_resume_read_bytes Events read back from Kafka held by resumes.\n"
              "# TYPE oms_resume_read_bytes gauge\noms_resume_read_bytes %" PRId64 "\n"
              "# HELP oms_resume_read_bytes_peak The most oms_resume_read_bytes has been.\n"
              "# TYPE oms_resume_read_bytes_peak gauge\noms_resume_read_bytes_peak %" PRId64 "\n"
              "# HELP oms_resume_read_budget_bytes resume.read_budget_mb in bytes.\n"
              "# TYPE oms_resume_read_budget_bytes gauge\noms_resume_read_budget_bytes %" PRId64 "\n"
              "# HELP oms_resumes_waiting Resumes waiting for room in the read budget.\n"
              "# TYPE oms_resumes_waiting gauge\noms_resumes_waiting %" PRIu64 "\n"
              "# HELP oms_resume_budget_waits_total Resumes that waited for the read budget.\n"
              "# TYPE oms_resume_budget_waits_total counter\noms_resume_budget_waits_total %" PRIu64
              "\n"
              "# HELP oms_presence_instances omsd instances alive in the presence topic, this "
              "one included.\n"
              "# TYPE oms_presence_instances gauge\noms_presence_instances %d\n",
              d->m.replayed, (uint64_t)atomic_load(&d->m.resume_reads),
              (int64_t)atomic_load(&d->m.rb_used), (int64_t)atomic_load(&d->m.rb_peak),
              d->rb_budget, d->m.rb_waiting, d->m.rb_waited, omsd_presence_instances(d));
    sb_printf(&b,
              "# HELP oms_records_undecodable_total Records that could not be decoded.\n"
              "# TYPE oms_records_undecodable_total counter\noms_records_undecodable_total %" PRIu64
              "\n",
              (uint64_t)atomic_load(&d->m.undecodable));
    sb_printf(&b,
              "# HELP oms_dlq_records_total Records copied to the dead-letter topic.\n"
              "# TYPE oms_dlq_records_total counter\noms_dlq_records_total %" PRIu64 "\n",
              (uint64_t)atomic_load(&d->m.dlq_sent));
    sb_printf(&b,
              "# HELP oms_queue_overflow_closes_total Slow clients closed with 1013.\n"
              "# TYPE oms_queue_overflow_closes_total counter\noms_queue_overflow_closes_total "
              "%" PRIu64 "\n",
              d->m.overflow_closes);
    sb_printf(&b,
              "# HELP oms_consumer_lag Records behind the log end, fan-out reader.\n"
              "# TYPE oms_consumer_lag gauge\noms_consumer_lag %" PRId64 "\n",
              (int64_t)atomic_load(&d->m.lag));
    sb_printf(&b,
              "# HELP oms_auth_failures_total Upgrades refused (401/403).\n"
              "# TYPE oms_auth_failures_total counter\noms_auth_failures_total %" PRIu64 "\n",
              d->m.auth_failures);
    sb_printf(&b,
              "# HELP oms_rate_limited_total Client messages refused by the rate limit.\n"
              "# TYPE oms_rate_limited_total counter\noms_rate_limited_total %" PRIu64 "\n",
              d->m.rate_limited);
    sb_printf(&b,
              "# HELP oms_http_requests_total REST requests served.\n"
              "# TYPE oms_http_requests_total counter\noms_http_requests_total %" PRIu64 "\n",
              d->m.rest_requests);
    sb_printf(&b,
              "# HELP oms_triggers_produced_total Events produced by REST triggers and "
              "broadcasts, acknowledged by Kafka.\n"
              "# TYPE oms_triggers_produced_total counter\noms_triggers_produced_total %" PRIu64
              "\n",
              d->m.triggers_produced);
    sb_printf(&b,
              "# HELP oms_dependency_up Whether a dependency answers (1) or not (0).\n"
              "# TYPE oms_dependency_up gauge\noms_dependency_up{dependency=\"kafka\"} %d\n"
              "oms_dependency_up{dependency=\"postgres\"} %d\n",
              atomic_load(&d->kafka_up) ? 1 : 0, atomic_load(&d->pg_up) ? 1 : 0);
    if (d->registry) {
        oms_registry_stats st;
        oms_registry_stats_get(d->registry, &st);
        sb_printf(&b,
                  "oms_dependency_up{dependency=\"schema_registry\"} %d\n"
                  "# HELP oms_schema_registry_cached_schemas Writer schemas cached by id.\n"
                  "# TYPE oms_schema_registry_cached_schemas gauge\n"
                  "oms_schema_registry_cached_schemas %zu\n"
                  "# HELP oms_schema_registry_fetches_total Schemas fetched from the registry.\n"
                  "# TYPE oms_schema_registry_fetches_total counter\n"
                  "oms_schema_registry_fetches_total %" PRIu64 "\n"
                  "# HELP oms_schema_registry_failures_total Registry requests without a usable "
                  "answer.\n"
                  "# TYPE oms_schema_registry_failures_total counter\n"
                  "oms_schema_registry_failures_total %" PRIu64 "\n"
                  "# HELP oms_schema_registry_unknown_ids_total Lookups of ids the registry does "
                  "not know (records to the DLQ).\n"
                  "# TYPE oms_schema_registry_unknown_ids_total counter\n"
                  "oms_schema_registry_unknown_ids_total %" PRIu64 "\n"
                  "# HELP oms_schema_registry_waits_total Times a fan-out or projection record "
                  "was held because its schema could not be fetched yet.\n"
                  "# TYPE oms_schema_registry_waits_total counter\n"
                  "oms_schema_registry_waits_total %" PRIu64 "\n",
                  st.known && st.up ? 1 : 0, st.cached, st.fetches, st.failures, st.not_found,
                  (uint64_t)atomic_load(&d->m.registry_waits));
    }
    sb_printf(&b, "# HELP oms_uptime_seconds Seconds since omsd started.\n"
                  "# TYPE oms_uptime_seconds gauge\noms_uptime_seconds %" PRId64 "\n",
              (oms_now_ms() - d->started_ms) / 1000);
    char *alerts = omsd_alerts_metrics(d);
    if (alerts) {
        sb_printf(&b, "%s", alerts);
        free(alerts);
    }
    *len = b.len;
    return b.s;
}

json_t *omsd_stats_json(omsd *d)
{
    json_t *users = omsd_users_online(d);
    json_t *consumed = json_object(), *delivered = json_object(), *dropped = json_object();
    for (int k = 0; k < OMS_TOPIC__COUNT; k++) {
        json_object_set_new(consumed, kind_names[k],
                            json_integer((json_int_t)atomic_load(&d->m.consumed[k])));
        json_object_set_new(delivered, kind_names[k], json_integer((json_int_t)delivered_total(d, k)));
        json_object_set_new(dropped, kind_names[k], json_integer((json_int_t)d->m.dropped[k]));
    }
    json_t *j = json_pack(
        "{s:I,s:I,s:{s:I,s:I},s:{s:o,s:o,s:o},s:f,s:f,s:I,s:I,s:I,s:I}", "connections",
        (json_int_t)omsd_nconns(d), "usersOnline", (json_int_t)json_array_size(users), "subscriptions",
        "orders", (json_int_t)omsd_subscribed(d, OMS_SUB_ORDERS), "inventory",
        (json_int_t)omsd_subscribed(d, OMS_SUB_INVENTORY), "events", "consumed", consumed,
        "delivered", delivered, "dropped", dropped, "eventsPerSecond", d->events_per_s,
        "deliveriesPerSecond", d->deliveries_per_s, "dlq",
        (json_int_t)atomic_load(&d->m.dlq_sent), "queueOverflowCloses",
        (json_int_t)d->m.overflow_closes, "consumerLag", (json_int_t)atomic_load(&d->m.lag),
        "uptimeSeconds", (json_int_t)((oms_now_ms() - d->started_ms) / 1000));
    json_decref(users);
    double p50 = omsd_age_quantile(d, 0.5), p99 = omsd_age_quantile(d, 0.99);
    uint64_t age_b[OMSD_AGE_BUCKETS], age_n;
    int64_t age_sum;
    omsd_age_totals(d, age_b, &age_n, &age_sum);
    json_object_set_new(j, "deliveryAgeMs",
                        json_pack("{s:o,s:o,s:I}", "p50", p50 < 0 ? json_null() : json_real(p50),
                                  "p99", p99 < 0 ? json_null() : json_real(p99), "count",
                                  (json_int_t)age_n));
    return j;
}
