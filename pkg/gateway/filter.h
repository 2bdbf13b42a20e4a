/* filter.h — subscription filters (DESIGN §3.1, issue #20): a small
 * language on an event's fields, parsed and checked once, kept in a
 * normalized form, shared by reference.
 *
 * A filter is a JSON object, one member per field, all of which must match:
 *   "status": "shipped"                 equality
 *   "productId": [3, 17, 42]            set membership (any of)
 *   "quantity": {"lt": 10}              comparison: lt, lte, gt, gte
 *   "totalAmount": {"gte": 100, "lt": 500}
 * Fields of order events: eventType, orderId, aliasId, userId, status,
 * previousStatus, totalAmount, source. Of inventory events: eventType,
 * productId, productName, quantity, threshold, status, delta, source.
 * Comparisons apply to the numeric fields only; a field the event lacks
 * (previousStatus of an OrderCreated) matches nothing.
 *
 * Normalized form: members sorted by name; one value as a scalar, several as
 * a sorted array without duplicates; comparison bounds in the order gt, gte,
 * lt, lte, the tighter of gt/gte (lt/lte) kept; integral numbers written as
 * integers. Two filters that select the same events by the same terms have
 * the same text, which is what connections share their evaluation by.
 *
 * Pure: no sockets, no threads; a filter is immutable once parsed and its
 * reference count is atomic, so any thread may hold and match it. */
#ifndef OMS_GATEWAY_FILTER_H
#define OMS_GATEWAY_FILTER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "events/events.h"

typedef enum {
    OMS_FF_EVENT_TYPE = 0,
    OMS_FF_ORDER_ID,
    OMS_FF_ALIAS_ID,
    OMS_FF_USER_ID,
    OMS_FF_STATUS,
    OMS_FF_PREVIOUS_STATUS,
    OMS_FF_TOTAL_AMOUNT,
    OMS_FF_PRODUCT_ID,
    OMS_FF_PRODUCT_NAME,
    OMS_FF_QUANTITY,
    OMS_FF_THRESHOLD,
    OMS_FF_DELTA,
    OMS_FF_SOURCE,
    OMS_FF__COUNT
} oms_filter_field;

/* An event's filterable fields. Built borrowed (oms_filter_view_of: strings
 * point into the event) or owned (oms_filter_view_copy: one block, freed
 * with oms_filter_view_free). */
typedef struct oms_filter_view {
    oms_event_type type;
    unsigned present; /* bit (1u << field) per field the event has */
    const char *str[OMS_FF__COUNT];
    double num[OMS_FF__COUNT];
} oms_filter_view;

/* The view of ev (borrows its strings). */
void oms_filter_view_of(const oms_event *ev, oms_filter_view *out);
/* An owned copy of v in one allocation; NULL when out of memory. */
oms_filter_view *oms_filter_view_copy(const oms_filter_view *v);
void oms_filter_view_free(oms_filter_view *v);

/* Limits on what one filter may hold (server.filter_max_values,
 * server.filter_max_bytes). */
typedef struct oms_filter_limits {
    int max_values; /* values in all sets and bounds together */
    int max_bytes;  /* the normalized text */
} oms_filter_limits;
#define OMS_FILTER_MAX_VALUES 256
#define OMS_FILTER_MAX_BYTES 4096
/* A string value's longest length, in bytes. */
#define OMS_FILTER_MAX_STRING 256

typedef struct oms_filter oms_filter;

/* Parse spec (a JSON object; NULL or JSON null: no filter) for the events
 * of topic (orders or inventory); lim NULL: the defaults above. Returns 0
 * and *out (a new reference; NULL when spec selects everything: null or
 * {}), or OMS_EINVAL with errbuf naming the field ("quantity: 'lt' needs a
 * number"), or OMS_ENOMEM. */
int oms_filter_parse(const json_t *spec, oms_topic_kind topic, const oms_filter_limits *lim,
                     oms_filter **out, char *errbuf, size_t errlen);

oms_filter *oms_filter_ref(oms_filter *f);
void oms_filter_unref(oms_filter *f); /* NULL is fine */

/* The normalized text (compact JSON) and the same as JSON (new reference). */
const char *oms_filter_text(const oms_filter *f);
json_t *oms_filter_json(const oms_filter *f);
oms_topic_kind oms_filter_topic(const oms_filter *f);

/* Whether the event v passes every term of f. */
bool oms_filter_match(const oms_filter *f, const oms_filter_view *v);

/* ---- indexing: shared evaluation without testing every filter ---------------- */

/* The field a filter is best found by: one of its set (or equality) terms,
 * the most selective kind of field first (orderId, productId, aliasId,
 * userId, productName, status, ...). Returns false when f has no such term
 * (comparisons only): it must then be tested for every event. Otherwise
 * *field and its values' keys (*keys, *nkeys: distinct, owned by f). An
 * event can only match f when oms_filter_key(field, v) is one of them. */
bool oms_filter_pivot(const oms_filter *f, oms_filter_field *field, const uint64_t **keys,
                      size_t *nkeys);
/* The key of v's value of field (false when v lacks the field). */
bool oms_filter_key(oms_filter_field field, const oms_filter_view *v, uint64_t *key);

/* The field's name ("productId"). */
const char *oms_filter_field_name(oms_filter_field field);

#endif
