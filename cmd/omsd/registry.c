/* registry.c — omsd's side of the schema registry: records held while it
 * is down, and what health and metrics say about it. */
#include <inttypes.h>
#include <stdio.h>

#include "omsd.h"

void omsd_registry_wait(omsd *d, const char *topic, int32_t partition, int64_t offset,
                        const char *why)
{
    atomic_fetch_add(&d->m.registry_waits, 1);
    int64_t now = oms_now_ms(), last = atomic_load(&d->m.registry_wait_logged_ms);
    /* a held partition comes back every OMSD_REGISTRY_HOLD_MS: one line says it */
    if (now - last < 10000 ||
        !atomic_compare_exchange_strong(&d->m.registry_wait_logged_ms, &last, now))
        return;
    oms_log(d->log, OMS_LOG_WARN, "record waits for its schema, partition held",
            OMS_LS("topic", topic), OMS_LI("partition", partition), OMS_LI("offset", offset),
            OMS_LS("reason", why));
}

json_t *omsd_registry_health(omsd *d)
{
    if (!d->registry)
        return NULL;
    oms_registry_stats st;
    oms_registry_stats_get(d->registry, &st);
    const char *status = !st.known ? "unknown" : st.up ? "up" : "down";
    json_t *j = json_pack("{s:s,s:b,s:s,s:I,s:I}", "status", status, "required", 0, "url",
                          oms_registry_url(d->registry), "cachedSchemas", (json_int_t)st.cached,
                          "recordsWaiting", (json_int_t)atomic_load(&d->m.registry_waits));
    if (j && st.known && !st.up && st.last_error[0])
        json_object_set_new(j, "error", json_string(st.last_error));
    return j;
}
