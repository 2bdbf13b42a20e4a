/* registry.h — a client of a Confluent-compatible Schema Registry (Confluent,
 * Apicurio's /apis/ccompat/v7, Redpanda, Karapace) over libcurl: the writer
 * schemas of the Confluent wire format by id, fetched once and cached, and
 * what producers and omsctl need (register, subjects, versions).
 *
 * The cache is what keeps a registry outage small: an id seen once is never
 * asked for again (ids name immutable schemas), so only records whose id is
 * new wait while the registry is down. Such a lookup fails at once with
 * OMS_EAGAIN, and the registry is asked again only after a backoff that
 * doubles from 250 ms up to 10 s (reset by the first answer), so a thousand
 * waiting records cost no more than one request per backoff step.
 * Thread-safe: every decoding thread may look up at once. */
#ifndef OMS_REGISTRY_H
#define OMS_REGISTRY_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/oms.h"
#include "config/config.h"
#include "events/events.h"

typedef struct oms_registry oms_registry;

typedef struct oms_registry_opts {
    const char *url;      /* base URL ("http://host:8081", ".../apis/ccompat/v7") */
    const char *username; /* HTTP basic auth, NULL or "" for none */
    const char *password;
    const char *ca_file;  /* PEM bundle that signs an https registry, NULL/"" = system's */
    int timeout_ms;       /* one request, 0 = 5000 */
    /* How long a lookup of an uncached id waits for an unreachable registry
     * before OMS_EAGAIN: 0 for the daemon (it holds the record and goes on
     * with others), some seconds for a CLI (it has nothing else to do). */
    int wait_ms;
} oms_registry_opts;

/* A client; the strings of o are copied. events prepares fetched schemas
 * (oms_events_writer_new) and must outlive the client. No request is made
 * here. NULL + errbuf (bad URL, out of memory). */
oms_registry *oms_registry_new(const oms_registry_opts *o, const oms_events *events, char *errbuf,
                               size_t errlen);
void oms_registry_free(oms_registry *r);

/* Make events find Confluent schema ids through r (oms_events_set_lookup);
 * events then owns r (oms_events_free frees it). */
void oms_registry_attach(oms_registry *r, oms_events *events);

/* The oms_events_lookup_fn: ctx is the oms_registry. A cached id answers
 * without I/O; an unknown one is fetched (GET /schemas/ids/{id}). Returns 0,
 * OMS_ENOTFOUND (the registry does not know the id: a bad record) or
 * OMS_EAGAIN (unreachable, refused our credentials, or an error answer;
 * retry later). */
int oms_registry_lookup(void *ctx, uint32_t id, const oms_events_writer **out, char *errbuf,
                        size_t errlen);

/* Ask the registry whether it answers (GET /subjects), for health checks;
 * updates the state oms_registry_stats reports. 0 or OMS_EAGAIN + errbuf. */
int oms_registry_probe(oms_registry *r, char *errbuf, size_t errlen);

typedef struct oms_registry_stats {
    bool up;             /* the last request got an answer (false before any) */
    bool known;          /* some request was made */
    size_t cached;       /* ids in the cache */
    uint64_t fetches;    /* schemas fetched */
    uint64_t failures;   /* requests without a usable answer */
    uint64_t waits;      /* lookups answered OMS_EAGAIN */
    uint64_t not_found;  /* ids the registry does not know */
    int backoff_ms;      /* current backoff, 0 when up */
    char last_error[384];
} oms_registry_stats;

void oms_registry_stats_get(oms_registry *r, oms_registry_stats *out);
const char *oms_registry_url(const oms_registry *r);

/* ---- the rest of the API (producers, omsctl) --------------------------------- */

/* One request: method "GET"/"POST"/..., path under the base URL ("/subjects"),
 * body JSON text or NULL. 0 with *status and *json (the parsed body, NULL
 * when not JSON; caller json_decref's), or OMS_EAGAIN + errbuf when no answer
 * came. */
int oms_registry_request(oms_registry *r, const char *method, const char *path, const char *body,
                         long *status, json_t **json, char *errbuf, size_t errlen);

/* Register an Avro schema under subject (POST /subjects/{subject}/versions);
 * the registry answers the existing id when it knows the schema. 0 and *id,
 * OMS_ESCHEMA (refused, e.g. incompatible: errbuf has the registry's
 * message) or OMS_EAGAIN. */
int oms_registry_register(oms_registry *r, const char *subject, const char *schema_text,
                          uint32_t *id, char *errbuf, size_t errlen);

/* The TopicNameStrategy subject of a topic's values: "<topic>-value". */
void oms_registry_subject(const char *topic, char *buf, size_t buflen);

/* Register the writer schema of every event type (oms_events_writer_schema)
 * under its topic's TopicNameStrategy subject (topics by oms_topic_kind) and
 * fill ids[type] with the ids to frame records with. 0, or the first
 * failure (OMS_ESCHEMA, OMS_EAGAIN) with errbuf naming the subject. */
int oms_registry_register_writers(oms_registry *r, const oms_events *e,
                                  const char *const topics[OMS_TOPIC__COUNT],
                                  uint32_t ids[OMS_EV__COUNT], char *errbuf, size_t errlen);

/* The client the configuration asks for (schema_registry.*), attached to
 * events (which owns it); *out (may be NULL) gets it, or NULL when no url is
 * set. wait_ms as in the options. 0 or OMS_ECONFIG + errbuf. */
int oms_registry_from_config(const oms_config *cfg, oms_events *events, int wait_ms,
                             oms_registry **out, char *errbuf, size_t errlen);

/* What the command-line tools use: oms_events_new(schema_dir) with the
 * configured registry attached, waiting up to OMS_REGISTRY_CLI_WAIT_MS for
 * an unreachable one. NULL + errbuf. */
#define OMS_REGISTRY_CLI_WAIT_MS 30000
oms_events *oms_registry_events_new(const oms_config *cfg, const char *schema_dir, char *errbuf,
                                    size_t errlen);

#endif
