/* presence.c — who is online across every omsd instance (DESIGN §3.3
 * users online), shared through a compacted Kafka topic
 * (kafka.topics.presence, created by omsd when missing).
 *
 * Each instance writes one record under its own key (instance id): its
 * users and their connection counts, when they change (at most once a
 * second) and every presence.interval_s as a heartbeat. Every instance
 * reads the whole topic from the beginning and keeps the others' last
 * records; one that has not been heard of for presence.expiry_s is
 * forgotten (it died without saying so) and its key deleted with a
 * tombstone. A clean shutdown writes the tombstone itself.
 *
 * Threads: the service thread hands its users over (omsd_presence_publish)
 * and reads the merged view (omsd_presence_merge); the presence thread
 * does all the Kafka work. They share `P.lock`. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "json/json.h"
#include "omsd.h"

typedef struct peer {
    char id[64];
    json_t *users;        /* {"userId": connections} */
    int64_t expires_ms;   /* monotonic */
    bool tombstoned;
} peer;

typedef struct omsd_presence {
    pthread_t thread;
    bool started;
    pthread_mutex_t lock;
    char *pending; /* the record to write next (service -> presence thread) */
    peer *peers;
    size_t npeers, cap;
    bool ready; /* the topic was read up to its end once */
    /* service thread */
    char *last; /* last users handed over */
    int64_t last_ms;
} omsd_presence;

static int64_t mono_ms(void)
{
    return (int64_t)(oms_mono_ns() / 1000000u);
}

static peer *find_peer(omsd_presence *P, const char *id)
{
    for (size_t i = 0; i < P->npeers; i++)
        if (strcmp(P->peers[i].id, id) == 0)
            return &P->peers[i];
    return NULL;
}

static void drop_peer(omsd_presence *P, size_t i)
{
    json_decref(P->peers[i].users);
    P->peers[i] = P->peers[--P->npeers];
}

/* A record of another instance (value NULL: a tombstone). */
static void on_record(omsd *d, omsd_presence *P, const rd_kafka_message_t *m)
{
    if (!m->key || m->key_len == 0 || m->key_len >= sizeof(((peer *)0)->id))
        return;
    char id[64];
    memcpy(id, m->key, m->key_len);
    id[m->key_len] = '\0';
    if (strcmp(id, d->instance_id) == 0)
        return;
    pthread_mutex_lock(&P->lock);
    peer *p = find_peer(P, id);
    if (!m->payload) {
        if (p)
            drop_peer(P, (size_t)(p - P->peers));
        pthread_mutex_unlock(&P->lock);
        return;
    }
    pthread_mutex_unlock(&P->lock);
    json_t *v = json_loadb(m->payload, m->len, 0, NULL);
    json_t *users = json_object_get(v, "users");
    if (!json_is_object(users)) {
        oms_log(d->log, OMS_LOG_WARN, "presence: record ignored (not {users: {...}})",
                OMS_LS("instance", id));
        json_decref(v);
        return;
    }
    /* how long it stays valid: expiry counted from when it was written */
    rd_kafka_timestamp_type_t tt;
    int64_t ts = rd_kafka_message_timestamp(m, &tt);
    int64_t age = ts > 0 ? oms_now_ms() - ts : 0;
    if (age < 0)
        age = 0;
    int64_t left = (int64_t)d->cfg.presence.expiry_s * 1000 - age;
    pthread_mutex_lock(&P->lock);
    p = find_peer(P, id);
    if (left <= 0) {
        if (p)
            drop_peer(P, (size_t)(p - P->peers));
    } else {
        if (!p && P->npeers == P->cap) {
            size_t cap = P->cap ? P->cap * 2 : 8;
            peer *np = realloc(P->peers, cap * sizeof *np);
            if (np) {
                P->peers = np;
                P->cap = cap;
            }
        }
        if (!p && P->npeers < P->cap) {
            p = &P->peers[P->npeers++];
            memset(p, 0, sizeof *p);
            snprintf(p->id, sizeof p->id, "%s", id);
        }
        if (p) {
            json_decref(p->users);
            p->users = json_incref(users);
            p->expires_ms = mono_ms() + left;
            p->tombstoned = false;
        }
    }
    pthread_mutex_unlock(&P->lock);
    json_decref(v);
}

static int ensure_topic(omsd *d, char *err, size_t errlen)
{
    oms_topic_spec spec;
    memset(&spec, 0, sizeof spec);
    spec.name = d->cfg.kafka.topic_presence;
    spec.partitions = 1;
    spec.replication_factor = -1; /* the cluster's default */
    spec.configs[0] = (oms_kv){"cleanup.policy", "compact"};
    spec.configs[1] = (oms_kv){"min.compaction.lag.ms", "0"};
    spec.configs[2] = (oms_kv){"segment.ms", "600000"};
    spec.nconfigs = 3;
    int result = 0;
    char errs[1][256];
    return oms_kafka_topics_create(d->cfg.kafka.brokers, d->cfg.kafka.props, d->cfg.kafka.nprops,
                                   &spec, 1, 10000, &result, errs, err, errlen);
}

static void produce(omsd *d, oms_kafka_producer *p, const char *key, const char *value)
{
    rd_kafka_t *rk = oms_kafka_producer_handle(p);
    rd_kafka_resp_err_t e = rd_kafka_producev(
        rk, RD_KAFKA_V_TOPIC(d->cfg.kafka.topic_presence), RD_KAFKA_V_KEY(key, strlen(key)),
        RD_KAFKA_V_VALUE((void *)value, value ? strlen(value) : 0),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    if (e)
        oms_log(d->log, OMS_LOG_WARN, "presence: cannot write", OMS_LS("error", rd_kafka_err2str(e)));
}

static void *presence_main(void *arg)
{
    omsd *d = arg;
    omsd_presence *P = d->presence;
    char err[512];
    oms_kv props[OMS_CONFIG_MAX_PROPS + 2];
    size_t np = 0;
    props[np++] = (oms_kv){"client.id", "omsd-presence"};
    for (size_t i = 0; i < d->cfg.kafka.nprops; i++)
        props[np++] = d->cfg.kafka.props[i];
    oms_kafka_producer *prod = NULL;
    oms_kafka_reader *r = NULL;
    int64_t retry_at = 0;
    while (!atomic_load(&d->threads_stop)) {
        if (!r) {
            if (mono_ms() < retry_at) {
                struct timespec ts = {0, 100000000};
                nanosleep(&ts, NULL);
                continue;
            }
            const char *one[1] = {d->cfg.kafka.topic_presence};
            if (ensure_topic(d, err, sizeof err) == OMS_OK &&
                (prod || (prod = oms_kafka_producer_new(d->cfg.kafka.brokers, props, np, NULL,
                                                        NULL, err, sizeof err))) &&
                (r = oms_kafka_reader_new(d->cfg.kafka.brokers, props, np, err, sizeof err)) &&
                oms_kafka_reader_assign(r, one, 1, -1, OMS_KAFKA_FROM_BEGINNING, false, 10000,
                                        err, sizeof err) >= 0) {
                oms_log(d->log, OMS_LOG_INFO, "presence shared",
                        OMS_LS("topic", d->cfg.kafka.topic_presence),
                        OMS_LS("instance", d->instance_id));
            } else {
                oms_log(d->log, OMS_LOG_WARN,
                        "presence: cannot use the topic; users online is this instance's "
                        "only until it can",
                        OMS_LS("topic", d->cfg.kafka.topic_presence), OMS_LS("error", err));
                if (r)
                    oms_kafka_reader_free(r);
                r = NULL;
                retry_at = mono_ms() + 5000;
                continue;
            }
        }
        pthread_mutex_lock(&P->lock);
        char *rec = P->pending;
        P->pending = NULL;
        pthread_mutex_unlock(&P->lock);
        if (rec) {
            produce(d, prod, d->instance_id, rec);
            free(rec);
        }
        oms_kafka_producer_poll(prod, 0);
        rd_kafka_message_t *m = oms_kafka_reader_poll(r, 100);
        if (m) {
            if (!m->err)
                on_record(d, P, m);
            else if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
                P->ready = true;
            rd_kafka_message_destroy(m);
        }
        /* instances gone silent: forgotten, their keys deleted */
        int64_t now = mono_ms();
        char gone[8][64];
        int ngone = 0;
        pthread_mutex_lock(&P->lock);
        for (size_t i = 0; i < P->npeers && ngone < 8; i++) {
            if (P->peers[i].expires_ms <= now && !P->peers[i].tombstoned) {
                P->peers[i].tombstoned = true;
                snprintf(gone[ngone++], sizeof gone[0], "%s", P->peers[i].id);
            }
        }
        pthread_mutex_unlock(&P->lock);
        for (int i = 0; i < ngone; i++) {
            oms_log(d->log, OMS_LOG_INFO, "presence: instance gone silent, forgotten",
                    OMS_LS("instance", gone[i]));
            produce(d, prod, gone[i], NULL);
        }
    }
    if (prod) {
        if (r) /* leaving cleanly: the others forget us at once */
            produce(d, prod, d->instance_id, NULL);
        oms_kafka_producer_free(prod, 2000);
    }
    if (r)
        oms_kafka_reader_free(r);
    return NULL;
}

int omsd_presence_start(omsd *d)
{
    omsd_presence *P = calloc(1, sizeof *P);
    if (!P)
        return OMS_ENOMEM;
    pthread_mutex_init(&P->lock, NULL);
    d->presence = P;
    if (!d->instance_id[0]) {
        char u[37];
        oms_uuid7(oms_now_ms(), u);
        snprintf(d->instance_id, sizeof d->instance_id, "omsd-%d-%s", d->cfg.server.port, u + 24);
    }
    if (pthread_create(&P->thread, NULL, presence_main, d) != 0)
        return OMS_EIO;
    P->started = true;
    return OMS_OK;
}

void omsd_presence_join(omsd *d)
{
    omsd_presence *P = d->presence;
    if (!P)
        return;
    if (P->started)
        pthread_join(P->thread, NULL);
    for (size_t i = 0; i < P->npeers; i++)
        json_decref(P->peers[i].users);
    free(P->peers);
    free(P->pending);
    free(P->last);
    pthread_mutex_destroy(&P->lock);
    free(P);
    d->presence = NULL;
}

void omsd_presence_publish(omsd *d, json_t *local)
{
    omsd_presence *P = d->presence;
    if (!P) {
        json_decref(local);
        return;
    }
    char *users = oms_json_dumps(local, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(local);
    if (!users)
        return;
    int64_t now = mono_ms();
    bool changed = !P->last || strcmp(P->last, users) != 0;
    if (!changed && now - P->last_ms < (int64_t)d->cfg.presence.interval_s * 1000) {
        free(users);
        return;
    }
    size_t n = strlen(users) + strlen(d->instance_id) + 96;
    char *rec = malloc(n);
    if (!rec) {
        free(users);
        return;
    }
    snprintf(rec, n, "{\"instance\":\"%s\",\"at\":%" PRId64 ",\"users\":%s}", d->instance_id,
             oms_now_ms(), users);
    free(P->last);
    P->last = users;
    P->last_ms = now;
    pthread_mutex_lock(&P->lock);
    free(P->pending);
    P->pending = rec;
    pthread_mutex_unlock(&P->lock);
}

void omsd_presence_merge(omsd *d, json_t *byuser)
{
    omsd_presence *P = d->presence;
    if (!P)
        return;
    int64_t now = mono_ms();
    pthread_mutex_lock(&P->lock);
    for (size_t i = 0; i < P->npeers; i++) {
        if (P->peers[i].expires_ms <= now)
            continue;
        const char *k;
        json_t *v;
        json_object_foreach(P->peers[i].users, k, v)
        {
            json_int_t add = json_integer_value(v);
            size_t kl = strlen(k);
            if (add <= 0 || add > 1000000000 || kl == 0 || kl > 18 ||
                strspn(k, "0123456789") != kl)
                continue; /* not {"userId": connections} */
            json_t *cur = json_object_get(byuser, k);
            json_object_set_new(byuser, k, json_integer(json_integer_value(cur) + add));
        }
    }
    pthread_mutex_unlock(&P->lock);
}

int omsd_presence_instances(omsd *d)
{
    omsd_presence *P = d->presence;
    if (!P)
        return 1;
    int64_t now = mono_ms();
    int n = 1;
    pthread_mutex_lock(&P->lock);
    for (size_t i = 0; i < P->npeers; i++)
        n += P->peers[i].expires_ms > now;
    pthread_mutex_unlock(&P->lock);
    return n;
}
