/* serve.h — `oms-producer serve`: the order and inventory services as an
 * HTTP JSON API. The parts:
 *   serve.c        the command: options, start-up, the libwebsockets HTTP side
 *   serve_state.c  the state (orders, stock) folded from the topics by a
 *                  follower thread, and publishing events (wait for the
 *                  acknowledgement, then for the fold to see them)
 *   serve_api.c    routes, authentication, validation and the domain rules
 * The log is the source of truth: the state changes only when the follower
 * reads an event back from Kafka, whoever wrote it. */
#ifndef OMS_PRODUCER_SERVE_H
#define OMS_PRODUCER_SERVE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "auth/auth.h"
#include "events/events.h"
#include "kafka/kafka.h"
#include "log/log.h"

#define SV_MAX_PARTITIONS 1024
#define SV_BODY_MAX (64u * 1024u) /* request bodies over this are refused with 413 */

typedef oms_order_item sv_item;

typedef struct sv_order {
    char *order_id;
    char *alias_id;
    int64_t user_id;
    char status[16];
    double total;
    sv_item *items;
    size_t nitems;
    int64_t created_at, updated_at; /* epoch ms */
    struct sv_order *next;          /* hash chain */
} sv_order;

typedef struct sv_product {
    int64_t id;
    char *name;
    int32_t quantity;
    int32_t threshold;
    char status[16];
    int64_t updated_at;
    struct sv_product *next;
} sv_product;

/* One event to publish, and what its delivery report said. */
typedef struct sv_pub {
    oms_event *ev;
    bool done;
    rd_kafka_resp_err_t err;
    int kind; /* oms_topic_kind */
    int32_t partition;
    int64_t offset;
} sv_pub;

typedef struct serve {
    oms_config cfg;
    oms_logger *log;
    oms_events *events;
    oms_wire_format format;             /* --format */
    uint32_t schema_ids[OMS_EV__COUNT]; /* confluent: registered ids by type */
    oms_auth *auth;
    oms_kafka_producer *kp;
    oms_kafka_reader *reader;
    const char *topics[OMS_TOPIC__COUNT];
    pthread_t follower;
    bool follower_started;
    /* the state, guarded by lock; cond signals every applied batch */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    sv_order **orders;
    size_t orders_cap, norders;
    sv_product **products;
    size_t products_cap, nproducts;
    int64_t next_offset[2][SV_MAX_PARTITIONS]; /* [orders|inventory][partition]: applied below */
    int64_t start_high[2][SV_MAX_PARTITIONS];  /* log end at start (-1: unknown) */
    int nparts[2];
    bool caught_up;    /* the state holds the whole log as of start */
    uint64_t applied, undecodable;
    /* HTTP */
    struct lws_context *ctx;
    uint8_t *encbuf; /* SV_ENCODE_MAX bytes: the HTTP thread encodes events here */
    uint64_t requests, published;
} serve;

#define SV_ENCODE_MAX (1u << 20)

/* ---- serve_state.c ---- */

/* Start following the orders and inventory topics from the beginning (the
 * reader must be created). 0 or -1 + errbuf. */
int sv_state_start(serve *s, char *errbuf, size_t errlen);
/* Block until the state caught up with the log as it was at start, or
 * timeout_ms passes. 0 or OMS_ETIMEDOUT. */
int sv_state_wait_ready(serve *s, int timeout_ms);
/* Stop the follower and free the state. */
void sv_state_stop(serve *s);

/* Under s->lock. NULL when unknown. */
sv_order *sv_order_find(serve *s, const char *order_id);
sv_product *sv_product_find(serve *s, int64_t product_id);

/* Publish the n events (in this order; per key the order holds), wait for
 * every acknowledgement, then until the follower applied them (bounded).
 * Called without the lock. 0, or OMS_EKAFKA with errbuf when Kafka did not
 * acknowledge every event. */
int sv_publish(serve *s, oms_event *evs, size_t n, char *errbuf, size_t errlen);
/* The producer's delivery callback (msg_opaque is the sv_pub). */
void sv_on_delivery(void *ctx, void *msg_opaque, rd_kafka_resp_err_t err, const char *topic,
                    int32_t partition, int64_t offset, int64_t timestamp);

/* ---- serve_api.c ---- */

typedef struct sv_request {
    const char *method;
    const char *path;
    const char *authorization; /* "" when absent; NULL when too long to read */
    const char *content_type;  /* "" when absent */
    const char *body;
    size_t body_len;
} sv_request;

typedef struct sv_response {
    int status;
    char *body; /* malloc'd JSON */
    size_t len;
    const char *allow; /* for 405 */
} sv_response;

void sv_api_handle(serve *s, const sv_request *req, sv_response *resp);
/* {"error": {"code", "message", "field"?}} */
void sv_api_error(sv_response *resp, int status, const char *code, const char *field,
                  const char *fmt, ...) __attribute__((format(printf, 5, 6)));

#endif
