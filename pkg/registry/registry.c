/* registry.c — the schema registry client: cache, backoff, HTTP. */
#include "registry/registry.h"

#include <curl/curl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BACKOFF_MIN_MS 250
#define BACKOFF_MAX_MS 10000
/* an id the registry does not know is asked again after this long: it may
 * be a record written against another registry, or one registered since */
#define NOT_FOUND_TTL_NS 30000000000ull
#define MAX_BODY (4u << 20) /* a schema answer larger than this is not one */

/* The read side of the cache, without a lock: decoding threads look every
 * record's id up, so a mutex and a clock read per record were a tenth of
 * Confluent decoding's cost. Slots are only ever filled (writer, then id,
 * with release order) under the lock, and never emptied before the client
 * is freed; a reader that misses takes the locked path. */
#define FAST_SLOTS 1024 /* a power of two */
#define FAST_PROBES 8
typedef struct fast_slot {
    _Atomic uint32_t id1; /* id + 1; 0: empty */
    const oms_events_writer *_Atomic w;
} fast_slot;

typedef struct entry {
    uint32_t id;
    bool used;
    oms_events_writer *w;      /* NULL: the registry said it does not know the id */
    uint64_t not_found_until;  /* mono ns, for w == NULL */
} entry;

struct oms_registry {
    char *url, *userpwd, *ca_file;
    long timeout_ms;
    int wait_ms;
    const oms_events *events;

    pthread_mutex_t lock;
    entry *tab; /* open addressing, cap a power of two, never more than half full */
    size_t cap, count;
    uint64_t down_until; /* mono ns: no request before */
    int backoff_ms;
    /* a lookup waited wait_ms in vain: the next ones do not wait again
     * until the registry answers (a CLI meeting many new ids) */
    bool waited_in_vain;
    oms_registry_stats st;
    fast_slot fast[FAST_SLOTS];
};

static inline size_t fast_index(uint32_t id)
{
    return (size_t)(id * 2654435761u) & (FAST_SLOTS - 1);
}

static const oms_events_writer *fast_find(oms_registry *r, uint32_t id)
{
    size_t i = fast_index(id);
    for (int k = 0; k < FAST_PROBES; k++, i = (i + 1) & (FAST_SLOTS - 1)) {
        uint32_t id1 = atomic_load_explicit(&r->fast[i].id1, memory_order_acquire);
        if (id1 == 0)
            return NULL;
        if (id1 == id + 1)
            return atomic_load_explicit(&r->fast[i].w, memory_order_acquire);
    }
    return NULL;
}

/* Under the lock. No free slot near its place: the id stays on the locked
 * path, which answers the same. */
static void fast_publish(oms_registry *r, uint32_t id, const oms_events_writer *w)
{
    if (id == UINT32_MAX)
        return;
    size_t i = fast_index(id);
    for (int k = 0; k < FAST_PROBES; k++, i = (i + 1) & (FAST_SLOTS - 1)) {
        uint32_t id1 = atomic_load_explicit(&r->fast[i].id1, memory_order_relaxed);
        if (id1 == id + 1)
            return;
        if (id1 == 0) {
            atomic_store_explicit(&r->fast[i].w, w, memory_order_relaxed);
            atomic_store_explicit(&r->fast[i].id1, id + 1, memory_order_release);
            return;
        }
    }
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

oms_registry *oms_registry_new(const oms_registry_opts *o, const oms_events *events, char *errbuf,
                               size_t errlen)
{
    if (!o->url || (strncmp(o->url, "http://", 7) != 0 && strncmp(o->url, "https://", 8) != 0)) {
        oms_errf(errbuf, errlen, "schema registry url '%s' must start with http:// or https://",
                 o->url ? o->url : "");
        return NULL;
    }
    /* not thread-safe, and idempotent: start-up is the place for it */
    curl_global_init(CURL_GLOBAL_DEFAULT);
    oms_registry *r = calloc(1, sizeof *r);
    if (!r)
        goto nomem;
    pthread_mutex_init(&r->lock, NULL);
    r->url = strdup(o->url);
    if (!r->url)
        goto nomem;
    size_t n = strlen(r->url);
    while (n > 0 && r->url[n - 1] == '/')
        r->url[--n] = '\0';
    if (o->username && *o->username) {
        size_t len = strlen(o->username) + strlen(o->password ? o->password : "") + 2;
        if (!(r->userpwd = malloc(len)))
            goto nomem;
        snprintf(r->userpwd, len, "%s:%s", o->username, o->password ? o->password : "");
    }
    if (o->ca_file && *o->ca_file && !(r->ca_file = strdup(o->ca_file)))
        goto nomem;
    r->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 5000;
    r->wait_ms = o->wait_ms;
    r->events = events;
    r->cap = 64;
    if (!(r->tab = calloc(r->cap, sizeof *r->tab)))
        goto nomem;
    return r;
nomem:
    oms_errf(errbuf, errlen, "out of memory");
    oms_registry_free(r);
    return NULL;
}

void oms_registry_free(oms_registry *r)
{
    if (!r)
        return;
    for (size_t i = 0; r->tab && i < r->cap; i++)
        oms_events_writer_free(r->tab[i].w);
    free(r->tab);
    free(r->url);
    if (r->userpwd) {
        memset(r->userpwd, 0, strlen(r->userpwd)); /* a secret */
        free(r->userpwd);
    }
    free(r->ca_file);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

static void registry_free_ctx(void *ctx)
{
    oms_registry_free(ctx);
}

void oms_registry_attach(oms_registry *r, oms_events *events)
{
    oms_events_set_lookup(events, oms_registry_lookup, r, registry_free_ctx);
}

const char *oms_registry_url(const oms_registry *r)
{
    return r->url;
}

void oms_registry_subject(const char *topic, char *buf, size_t buflen)
{
    snprintf(buf, buflen, "%s-value", topic);
}

/* ---- HTTP -------------------------------------------------------------------------- */

typedef struct {
    char *p;
    size_t len;
    bool too_big;
} body_buf;

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    body_buf *b = arg;
    size_t n = size * nmemb;
    if (b->len + n > MAX_BODY) {
        b->too_big = true;
        return 0;
    }
    char *p = realloc(b->p, b->len + n + 1);
    if (!p)
        return 0;
    memcpy(p + b->len, data, n);
    b->p = p;
    b->len += n;
    b->p[b->len] = '\0';
    return n;
}

int oms_registry_request(oms_registry *r, const char *method, const char *path, const char *body,
                         long *status, json_t **json, char *errbuf, size_t errlen)
{
    *status = 0;
    if (json)
        *json = NULL;
    size_t ulen = strlen(r->url) + strlen(path) + 1;
    char *url = malloc(ulen);
    CURL *h = curl_easy_init();
    if (!url || !h) {
        free(url);
        if (h)
            curl_easy_cleanup(h);
        oms_errf(errbuf, errlen, "out of memory");
        return OMS_ENOMEM;
    }
    snprintf(url, ulen, "%s%s", r->url, path);
    body_buf b = {0};
    struct curl_slist *hdrs = NULL;
    hdrs = curl_slist_append(hdrs, "Accept: application/vnd.schemaregistry.v1+json, "
                                   "application/json");
    if (body) {
        hdrs = curl_slist_append(hdrs, "Content-Type: application/vnd.schemaregistry.v1+json");
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, r->timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, r->timeout_ms < 2000 ? r->timeout_ms : 2000L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L); /* called from worker threads */
    curl_easy_setopt(h, CURLOPT_USERAGENT, "oms-schema-registry-client");
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    if (r->userpwd) {
        curl_easy_setopt(h, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
        curl_easy_setopt(h, CURLOPT_USERPWD, r->userpwd);
    }
    if (r->ca_file)
        curl_easy_setopt(h, CURLOPT_CAINFO, r->ca_file);
    CURLcode cc = curl_easy_perform(h);
    int rc = OMS_OK;
    if (cc != CURLE_OK) {
        oms_errf(errbuf, errlen, "schema registry '%s': %s", r->url,
                 b.too_big ? "answer too large" : curl_easy_strerror(cc));
        rc = OMS_EAGAIN;
    } else {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
        if (json && b.p)
            *json = json_loadb(b.p, b.len, 0, NULL);
    }
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
    free(url);
    free(b.p);
    return rc;
}

/* The registry's error message ({"error_code": N, "message": "..."}). */
static const char *answer_message(const json_t *j)
{
    const char *m = json_string_value(json_object_get(j, "message"));
    return m ? m : "no message";
}

/* ---- cache --------------------------------------------------------------------------- */

static entry *find(oms_registry *r, uint32_t id)
{
    size_t mask = r->cap - 1;
    for (size_t i = (id * 2654435761u) & mask;; i = (i + 1) & mask) {
        if (!r->tab[i].used || r->tab[i].id == id)
            return &r->tab[i];
    }
}

/* The slot of id, growing the table first when needed. NULL on ENOMEM. */
static entry *slot(oms_registry *r, uint32_t id)
{
    if ((r->count + 1) * 2 > r->cap) {
        entry *old = r->tab;
        size_t ocap = r->cap;
        entry *t = calloc(ocap * 2, sizeof *t);
        if (!t)
            return NULL;
        r->tab = t;
        r->cap = ocap * 2;
        for (size_t i = 0; i < ocap; i++)
            if (old[i].used)
                *find(r, old[i].id) = old[i];
        free(old);
    }
    return find(r, id);
}

static void note_failure(oms_registry *r, const char *err)
{
    r->st.known = true;
    r->st.up = false;
    r->st.failures++;
    snprintf(r->st.last_error, sizeof r->st.last_error, "%s", err);
    r->backoff_ms = r->backoff_ms ? r->backoff_ms * 2 : BACKOFF_MIN_MS;
    if (r->backoff_ms > BACKOFF_MAX_MS)
        r->backoff_ms = BACKOFF_MAX_MS;
    r->down_until = oms_mono_ns() + (uint64_t)r->backoff_ms * 1000000u;
}

static void note_answer(oms_registry *r)
{
    r->st.known = true;
    r->st.up = true;
    r->backoff_ms = 0;
    r->down_until = 0;
    r->waited_in_vain = false;
}

/* One GET /schemas/ids/{id}. 0 with *w (new), OMS_ENOTFOUND, or OMS_EAGAIN. */
static int fetch(oms_registry *r, uint32_t id, oms_events_writer **w, char *errbuf, size_t errlen)
{
    char path[64];
    snprintf(path, sizeof path, "/schemas/ids/%" PRIu32, id);
    long status = 0;
    json_t *j = NULL;
    int rc = oms_registry_request(r, "GET", path, NULL, &status, &j, errbuf, errlen);
    if (rc != OMS_OK)
        return rc;
    if (status == 404) {
        oms_errf(errbuf, errlen, "unknown to the schema registry (%s)", answer_message(j));
        json_decref(j);
        return OMS_ENOTFOUND;
    }
    const char *text = json_string_value(json_object_get(j, "schema"));
    if (status != 200 || !text) {
        /* 401/403 (our credentials), 5xx, a proxy's page: not the record's
         * fault, so it waits rather than going to the DLQ */
        oms_errf(errbuf, errlen, "schema registry '%s' answered %ld to %s: %s", r->url, status,
                 path, j ? answer_message(j) : "not a schema");
        json_decref(j);
        return OMS_EAGAIN;
    }
    /* a schema with references (other subjects' types) fails to parse here
     * and is reported as such: the events are self-contained records */
    *w = oms_events_writer_new(r->events, text, json_string_value(json_object_get(j, "schemaType")));
    json_decref(j);
    if (!*w) {
        oms_errf(errbuf, errlen, "out of memory");
        return OMS_EAGAIN;
    }
    return OMS_OK;
}

int oms_registry_lookup(void *ctx, uint32_t id, const oms_events_writer **out, char *errbuf,
                        size_t errlen)
{
    oms_registry *r = ctx;
    const oms_events_writer *hit = fast_find(r, id);
    if (hit) {
        *out = hit;
        return OMS_OK;
    }
    pthread_mutex_lock(&r->lock);
    int wait_ms = r->waited_in_vain ? 0 : r->wait_ms;
    pthread_mutex_unlock(&r->lock);
    uint64_t deadline = oms_mono_ns() + (uint64_t)wait_ms * 1000000u;
    for (;;) {
        pthread_mutex_lock(&r->lock);
        entry *e = find(r, id);
        uint64_t now = oms_mono_ns();
        if (e->used && (e->w || now < e->not_found_until)) {
            const oms_events_writer *w = e->w;
            if (!w)
                r->st.not_found++;
            pthread_mutex_unlock(&r->lock);
            if (!w) {
                oms_errf(errbuf, errlen, "unknown to the schema registry");
                return OMS_ENOTFOUND;
            }
            *out = w;
            return OMS_OK;
        }
        if (now < r->down_until) {
            uint64_t until = r->down_until;
            char last[384];
            snprintf(last, sizeof last, "%s", r->st.last_error);
            if (now >= deadline) {
                r->st.waits++;
                r->waited_in_vain |= wait_ms > 0;
            }
            pthread_mutex_unlock(&r->lock);
            if (now < deadline) {
                uint64_t to = until < deadline ? until : deadline;
                sleep_ms((long)((to - now) / 1000000u) + 1);
                continue;
            }
            oms_errf(errbuf, errlen, "not cached and the schema registry cannot be asked now, "
                                     "next try in %" PRIu64 " ms (%s)",
                     (until - now) / 1000000u, last);
            return OMS_EAGAIN;
        }
        pthread_mutex_unlock(&r->lock);

        oms_events_writer *w = NULL;
        char err[384];
        int rc = fetch(r, id, &w, err, sizeof err);

        pthread_mutex_lock(&r->lock);
        if (rc == OMS_EAGAIN) {
            note_failure(r, err);
            bool again = oms_mono_ns() < deadline;
            if (!again) {
                r->st.waits++;
                r->waited_in_vain |= wait_ms > 0;
            }
            pthread_mutex_unlock(&r->lock);
            if (again)
                continue;
            oms_errf(errbuf, errlen, "not cached and %s", err);
            return OMS_EAGAIN;
        }
        note_answer(r);
        e = slot(r, id);
        if (!e) {
            pthread_mutex_unlock(&r->lock);
            oms_events_writer_free(w);
            oms_errf(errbuf, errlen, "out of memory");
            return OMS_EAGAIN;
        }
        if (e->used && e->w) { /* another thread fetched it meanwhile */
            oms_events_writer_free(w);
            w = e->w;
        } else {
            if (!e->used)
                r->count++;
            e->used = true;
            e->id = id;
            e->w = w;
            if (rc == OMS_ENOTFOUND) {
                e->not_found_until = oms_mono_ns() + NOT_FOUND_TTL_NS;
                r->st.not_found++;
            } else {
                r->st.fetches++;
                fast_publish(r, id, w);
            }
        }
        pthread_mutex_unlock(&r->lock);
        if (rc == OMS_ENOTFOUND) {
            oms_errf(errbuf, errlen, "%s", err);
            return OMS_ENOTFOUND;
        }
        *out = w;
        return OMS_OK;
    }
}

int oms_registry_probe(oms_registry *r, char *errbuf, size_t errlen)
{
    long status = 0;
    char err[384];
    int rc = oms_registry_request(r, "GET", "/subjects", NULL, &status, NULL, err, sizeof err);
    if (rc == OMS_OK && status != 200) {
        snprintf(err, sizeof err, "schema registry '%s' answered %ld to /subjects", r->url,
                 status);
        rc = OMS_EAGAIN;
    }
    pthread_mutex_lock(&r->lock);
    if (rc == OMS_OK) {
        note_answer(r);
    } else {
        /* a probe reports; it does not push the lookups' next try out */
        r->st.known = true;
        r->st.up = false;
        snprintf(r->st.last_error, sizeof r->st.last_error, "%s", err);
    }
    pthread_mutex_unlock(&r->lock);
    if (rc != OMS_OK)
        oms_errf(errbuf, errlen, "%s", err);
    return rc;
}

void oms_registry_stats_get(oms_registry *r, oms_registry_stats *out)
{
    pthread_mutex_lock(&r->lock);
    *out = r->st;
    out->cached = 0;
    for (size_t i = 0; i < r->cap; i++)
        out->cached += r->tab[i].used && r->tab[i].w;
    out->backoff_ms = r->backoff_ms;
    pthread_mutex_unlock(&r->lock);
}

int oms_registry_register(oms_registry *r, const char *subject, const char *schema_text,
                          uint32_t *id, char *errbuf, size_t errlen)
{
    json_t *req = json_pack("{s:s,s:s}", "schema", schema_text, "schemaType", "AVRO");
    char *body = req ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    CURL *h = curl_easy_init();
    char *esc = h ? curl_easy_escape(h, subject, 0) : NULL;
    if (h)
        curl_easy_cleanup(h);
    if (!body || !esc) {
        free(body);
        curl_free(esc);
        oms_errf(errbuf, errlen, "out of memory");
        return OMS_ENOMEM;
    }
    char path[512];
    snprintf(path, sizeof path, "/subjects/%s/versions", esc);
    curl_free(esc);
    long status = 0;
    json_t *j = NULL;
    int rc = oms_registry_request(r, "POST", path, body, &status, &j, errbuf, errlen);
    free(body);
    if (rc != OMS_OK)
        return rc;
    json_t *jid = json_object_get(j, "id");
    if (status == 200 && json_is_integer(jid) && json_integer_value(jid) >= 0 &&
        json_integer_value(jid) <= UINT32_MAX) {
        *id = (uint32_t)json_integer_value(jid);
        json_decref(j);
        return OMS_OK;
    }
    oms_errf(errbuf, errlen, "schema registry refused '%s' (HTTP %ld): %s", subject, status,
             j ? answer_message(j) : "no JSON answer");
    json_decref(j);
    return status >= 500 || status == 401 || status == 403 ? OMS_EAGAIN : OMS_ESCHEMA;
}

int oms_registry_from_config(const oms_config *cfg, oms_events *events, int wait_ms,
                             oms_registry **out, char *errbuf, size_t errlen)
{
    if (out)
        *out = NULL;
    if (!cfg->schema_registry.url || !*cfg->schema_registry.url)
        return OMS_OK;
    oms_registry_opts o = {
        .url = cfg->schema_registry.url,
        .username = cfg->schema_registry.username,
        .password = cfg->schema_registry.password,
        .ca_file = cfg->schema_registry.ca_file,
        .timeout_ms = cfg->schema_registry.timeout_ms,
        .wait_ms = wait_ms,
    };
    oms_registry *r = oms_registry_new(&o, events, errbuf, errlen);
    if (!r)
        return OMS_ECONFIG;
    oms_registry_attach(r, events);
    if (out)
        *out = r;
    return OMS_OK;
}

oms_events *oms_registry_events_new(const oms_config *cfg, const char *schema_dir, char *errbuf,
                                    size_t errlen)
{
    oms_events *e = oms_events_new(schema_dir, errbuf, errlen);
    if (e && oms_registry_from_config(cfg, e, OMS_REGISTRY_CLI_WAIT_MS, NULL, errbuf, errlen)) {
        oms_events_free(e);
        return NULL;
    }
    return e;
}

int oms_registry_register_writers(oms_registry *r, const oms_events *e,
                                  const char *const topics[OMS_TOPIC__COUNT],
                                  uint32_t ids[OMS_EV__COUNT], char *errbuf, size_t errlen)
{
    for (int t = 0; t < OMS_EV__COUNT; t++) {
        char subject[300];
        oms_registry_subject(topics[oms_event_topic_kind((oms_event_type)t)], subject,
                             sizeof subject);
        /* the original text: the registry keeps defaults and logical types */
        const char *text = oms_avro_schema_text(oms_events_writer_schema(e, (oms_event_type)t));
        int rc = oms_registry_register(r, subject, text, &ids[t], errbuf, errlen);
        if (rc != OMS_OK)
            return rc;
    }
    return OMS_OK;
}
