/* events.h — the domain events of DESIGN §2: a typed struct, validation,
 * the JSON shapes (the event's own fields, and the RealTimeEvent frames of
 * DESIGN §3.1), keys and topics, and Avro single-object encode/decode.
 *
 * Pure: no Kafka, no sockets. The encoder is hand-written for the current
 * schema of each type (it runs for every produced event); a unit test keeps
 * it byte-identical to the generic encoder of pkg/avro. Decoding has two
 * paths with one outcome: records written with exactly the schemas the
 * encoder writes are read by a hand-written reader straight into the struct
 * (the replay/fan-out hot path); any other known schema version goes through
 * the schema store and is resolved to the current one (the generic path:
 * pkg/avro -> jansson -> oms_event_from_json -> oms_event_validate). Both
 * accept and reject the same records and give the same events; the unit
 * tests hold the fast path to the generic one. Likewise the WebSocket frame
 * is written by a hand-made JSON writer whose output is byte-identical to the
 * jansson-built reference (oms_event_frame_json_generic). */
#ifndef OMS_EVENTS_H
#define OMS_EVENTS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "avro/avro.h"
#include "common/oms.h"

typedef enum {
    OMS_EV_ORDER_CREATED = 0,
    OMS_EV_ORDER_STATUS_CHANGED,
    OMS_EV_INVENTORY_CHANGED,
    OMS_EV_USER_NOTIFICATION,
    OMS_EV_SYSTEM_NOTIFICATION,
    OMS_EV__COUNT
} oms_event_type;

/* Which topic (by role; names come from the config) carries a type. */
typedef enum {
    OMS_TOPIC_ORDERS = 0,
    OMS_TOPIC_INVENTORY,
    OMS_TOPIC_NOTIFICATIONS,
    OMS_TOPIC__COUNT
} oms_topic_kind;

typedef struct oms_order_item {
    int64_t product_id;
    char *product_name;
    int32_t quantity;
    double price;
} oms_order_item;

/* One event. Which fields are meaningful depends on type (see schemas/).
 * Strings are NUL-terminated; optional ones may be NULL. Events filled by
 * oms_event_from_json()/oms_event_decode() own their strings and are freed
 * with oms_event_clear(); an event built by hand with borrowed strings must
 * not be cleared.
 * Ownership comes in two forms: arena == NULL (from_json, the generic
 * decoder): every string and items are separate allocations; arena != NULL
 * (the fast decoder): all strings and the items array live in that one block.
 * Either way treat a decoded event's strings as read-only and release the
 * event only with oms_event_clear() (do not free or replace single fields). */
typedef struct oms_event {
    oms_event_type type;
    char event_id[37];   /* UUIDv7 text */
    int64_t occurred_at; /* epoch milliseconds */
    char *source;
    char *trace_id; /* optional */
    /* orders */
    char *order_id;
    char *alias_id;
    int64_t user_id; /* also UserNotification */
    char *status;    /* also InventoryChanged */
    char *previous_status; /* optional */
    double total_amount;
    oms_order_item *items;
    size_t nitems;
    char *message; /* optional for orders; required for notifications */
    /* inventory */
    int64_t product_id;
    char *product_name;
    int32_t quantity;
    int32_t threshold;
    int32_t delta;
    /* notifications */
    char *title;
    char *severity;  /* SystemNotification: info|warning|critical */
    char *data_json; /* optional JSON text (object) */
    void *arena;     /* when not NULL: the one block holding every string and items */
} oms_event;

/* "OrderCreated", ... */
const char *oms_event_type_name(oms_event_type t);
/* Accepts "OrderCreated", "order-created", "order_created", "order.created"
 * (case-insensitive). Returns 0 or OMS_ENOTFOUND. */
int oms_event_type_parse(const char *s, oms_event_type *out);
/* The status values of a topic's events (orders: created, confirmed, ...;
 * inventory: in_stock, low_stock, ...), NULL-terminated; NULL for others. */
const char *const *oms_event_statuses(oms_topic_kind kind);
/* Full Avro name, "oms.events.OrderCreated". */
const char *oms_event_schema_name(oms_event_type t);
oms_topic_kind oms_event_topic_kind(oms_event_type t);

/* The record key of DESIGN §2 (orderId, productId, userId or "*") into buf.
 * Returns the length, or OMS_ERANGE when buf is too small. */
int oms_event_key(const oms_event *ev, char *buf, size_t buflen);

/* Check required fields and allowed values. 0 or OMS_EINVAL + errbuf naming
 * the field ("status: must be one of in_stock, low_stock, ..."). */
int oms_event_validate(const oms_event *ev, char *errbuf, size_t errlen);

/* Fill what a producer may leave out: eventId (new UUIDv7) when empty,
 * occurredAt (now) when 0, source (a copy of default_source) when NULL.
 * For owning events. Returns 0 or OMS_ENOMEM. */
int oms_event_fill_envelope(oms_event *ev, const char *default_source);

/* Build from JSON in the event's own shape (the fields of schemas/, camelCase).
 * `type` is the type to expect; the object's "type" member, when present,
 * must agree. Unknown members are an error (typos must not pass silently).
 * eventId/occurredAt/source may be absent (fill them with
 * oms_event_fill_envelope). Returns 0 or OMS_EINVAL with errbuf. */
int oms_event_from_json(const json_t *obj, oms_event_type type, oms_event *out, char *errbuf,
                        size_t errlen);

/* The event's own fields as JSON (the Avro record's shape). New reference. */
json_t *oms_event_to_json(const oms_event *ev);

/* Free the strings and items of ev (or its arena) and zero it. */
void oms_event_clear(oms_event *ev);

/* ---- the WebSocket shapes (DESIGN §3.1) ------------------------------------- */

/* Server event name: order_update, inventory_update, user_notification,
 * system_notification. */
const char *oms_event_ws_name(oms_event_type t);
/* RealTimeEvent.type: order_status, inventory_update, user_specific,
 * system_notification. */
const char *oms_event_rt_type(oms_event_type t);

/* The RealTimeEvent object {type, data, userId?, timestamp, id}: data holds
 * the payload (eventId, eventType, the type's fields, timestamp; a
 * notification's data JSON parsed back into an object). position is the
 * stream position "TOPIC:PARTITION:OFFSET" (may be NULL: then no id). */
json_t *oms_event_realtime(const oms_event *ev, const char *position);

/* The whole frame {"event": NAME, "data": RealTimeEvent} as compact JSON
 * text (malloc'd, NUL-terminated, caller frees); *len gets its length. NULL
 * on ENOMEM. The text is byte for byte oms_json_dumps(JSON_COMPACT) of
 * {"event": NAME, "data": oms_event_realtime(ev, position)}. */
char *oms_event_frame_json(const oms_event *ev, const char *position, size_t *len);

/* A growing text buffer: start it zeroed, free(b.p) when done. p is kept
 * NUL-terminated after every append (when not NULL). */
typedef struct oms_buf {
    char *p;
    size_t len, cap;
} oms_buf;

/* Make room for n more bytes (plus a NUL). 0 or OMS_ENOMEM. */
int oms_buf_reserve(oms_buf *b, size_t n);

/* Append the frame of oms_event_frame_json() to b (no newline): the hot
 * path of replay and the fan-out, with no allocation once b is big enough.
 * 0 or OMS_ENOMEM (b is then as it was). */
int oms_event_frame_append(const oms_event *ev, const char *position, oms_buf *b);

/* The jansson-built frame: the reference the fast writer is held to, and
 * its fallback for what it does not write itself (data that is not compact
 * JSON, strings that are not UTF-8, non-finite numbers, unknown types). */
char *oms_event_frame_json_generic(const oms_event *ev, const char *position, size_t *len);

/* ---- Avro ----------------------------------------------------------------- */

typedef struct oms_events oms_events;

/* A codec context: the schema store (embedded schemas, plus the .avsc files
 * of extra_schema_dir when not NULL/empty) and the writer schema of each
 * type. NULL + errbuf on error. */
oms_events *oms_events_new(const char *extra_schema_dir, char *errbuf, size_t errlen);
void oms_events_free(oms_events *e);
const oms_avro_store *oms_events_store(const oms_events *e);
/* The schema the encoder writes for type t (borrowed). */
const oms_avro_schema *oms_events_writer_schema(const oms_events *e, oms_event_type t);

/* Encode ev in single-object encoding into out. Returns 0 and *written,
 * OMS_ERANGE when cap is too small, OMS_EINVAL when ev does not validate. */
int oms_event_encode(const oms_events *e, const oms_event *ev, uint8_t *out, size_t cap,
                     size_t *written, char *errbuf, size_t errlen);

/* Decode a record into ev (owning; oms_event_clear it), whatever its wire
 * format (DESIGN §2, told apart by the first bytes, see
 * oms_event_wire_format()):
 *   - C3 01: Avro single-object encoding, writer schema by fingerprint;
 *   - 00 + 4-byte big-endian id: the Confluent framing, writer schema from
 *     the schema registry (oms_events_set_lookup; none set: OMS_ENOTFOUND),
 *     an Avro body, or a JSON body when the registered schema is a JSON one;
 *   - a JSON object (first non-blank byte '{'): the fields of the Avro
 *     schemas, "type" naming the event type, validated as strictly
 *     (oms_event_decode_json_record).
 * Returns 0, or the codec's error (OMS_ETRUNC, OMS_EMAGIC, OMS_ENOTFOUND,
 * OMS_EINVAL, OMS_ESCHEMA) with errbuf; ev is zeroed on error. Those are
 * final: the record is bad (the caller copies it to the DLQ). One more,
 * OMS_EAGAIN, is not: the record's writer schema is not cached and the
 * registry cannot be asked now (down, retrying with backoff); the caller
 * keeps the record and tries it again later, in order.
 * Records written with a schema oms_events_fast_decode() is true for are
 * read by the hand-written reader (one allocation per event); the others go
 * the generic way. Same return code, same message, same event either way. */
int oms_event_decode(const oms_events *e, const uint8_t *buf, size_t len, oms_event *ev,
                     char *errbuf, size_t errlen);

/* The generic path alone (schema store, resolution, jansson, from_json,
 * validate): the reference for the tests. Same contract as above. */
int oms_event_decode_generic(const oms_events *e, const uint8_t *buf, size_t len, oms_event *ev,
                             char *errbuf, size_t errlen);

/* ---- wire formats and the schema registry ------------------------------------ */

typedef enum {
    OMS_WIRE_SOE = 0,   /* Avro single-object encoding (C3 01 + fingerprint) */
    OMS_WIRE_CONFLUENT, /* 00 + 4-byte big-endian schema id + body */
    OMS_WIRE_JSON,      /* a JSON object */
    OMS_WIRE_UNKNOWN
} oms_wire_format;

#define OMS_CONFLUENT_MAGIC 0x00
#define OMS_CONFLUENT_HEADER_LEN 5

/* What the first bytes of a record say its format is. */
oms_wire_format oms_event_wire_format(const uint8_t *buf, size_t len);
/* "soe", "confluent", "json". */
const char *oms_wire_format_name(oms_wire_format f);
/* Accepts the names above (case-insensitive). 0 or OMS_EINVAL. */
int oms_wire_format_parse(const char *s, oms_wire_format *out);

/* A writer schema from a registry, prepared once for decoding: its event
 * type, whether the fast reader applies, and whether it resolves against
 * the reader schema of that type (the latest of the store). */
typedef struct oms_events_writer oms_events_writer;

/* Prepare the schema text a registry returned for an id. schema_type is the
 * registry's "schemaType" (NULL or "AVRO", "JSON"; others are refused).
 * A schema that cannot be used (does not parse, is no oms event, does not
 * resolve) still gives a writer: records written with it fail with
 * OMS_ESCHEMA and the reason. NULL only when out of memory. */
oms_events_writer *oms_events_writer_new(const oms_events *e, const char *schema_text,
                                         const char *schema_type);
void oms_events_writer_free(oms_events_writer *w);
/* NULL when usable, else why not (owned by w). */
const char *oms_events_writer_error(const oms_events_writer *w);

/* Finds the writer of a Confluent schema id: 0 and *out (which must stay
 * valid as long as the oms_events), OMS_ENOTFOUND (the registry does not
 * know the id), or OMS_EAGAIN (not cached, the registry cannot be asked
 * now), with errbuf. Called from any thread that decodes. */
typedef int (*oms_events_lookup_fn)(void *ctx, uint32_t id, const oms_events_writer **out,
                                    char *errbuf, size_t errlen);

/* Where Confluent-framed records find their writer schemas (the schema
 * registry client, pkg/registry). Set it before decoding starts. When
 * ctx_free is not NULL, e owns ctx: oms_events_free() calls ctx_free(ctx). */
void oms_events_set_lookup(oms_events *e, oms_events_lookup_fn fn, void *ctx,
                           void (*ctx_free)(void *));

/* A JSON record (the bytes of one JSON object) into ev: the field names of
 * the Avro schemas, "type" required and naming the event type, "eventId",
 * "occurredAt" (epoch ms or RFC 3339) and "source" required, unknown members
 * refused; then oms_event_validate(). 0, or OMS_EINVAL with errbuf naming
 * the field. */
int oms_event_decode_json_record(const uint8_t *buf, size_t len, oms_event *ev, char *errbuf,
                                 size_t errlen);

/* Encode ev as a JSON record (compact, NUL-free) into out. Same contract as
 * oms_event_encode. */
int oms_event_encode_json_record(const oms_event *ev, uint8_t *out, size_t cap, size_t *written,
                                 char *errbuf, size_t errlen);

/* Encode ev in the Confluent framing with schema id (registered for ev's
 * writer schema, oms_events_writer_schema()). Same contract as
 * oms_event_encode. */
int oms_event_encode_confluent(const oms_events *e, const oms_event *ev, uint32_t schema_id,
                               uint8_t *out, size_t cap, size_t *written, char *errbuf,
                               size_t errlen);

/* Encode ev in format f: oms_event_encode, oms_event_encode_confluent with
 * ids[ev->type] (ids may be NULL for the other formats) or
 * oms_event_encode_json_record. Same contract. */
int oms_event_encode_wire(const oms_events *e, oms_wire_format f, const uint32_t *ids,
                          const oms_event *ev, uint8_t *out, size_t cap, size_t *written,
                          char *errbuf, size_t errlen);

/* Whether records of type t written with its writer schema take the fast
 * path: the writer schema is the one the hand reader was written for and no
 * newer version of it is loaded (the generic path would then resolve). */
bool oms_events_fast_decode(const oms_events *e, oms_event_type t);

#endif
