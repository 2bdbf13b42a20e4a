/* test_events.c — pkg/events (types, JSON shapes, codec), pkg/sim and the
 * helpers of pkg/common. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <math.h>

#include "avro/avro_internal.h"
#include "events/events.h"
#include "events/events_internal.h"
#include "json/json.h"
#include "sim/sim.h"

static const char *const samples[OMS_EV__COUNT] = {
    [OMS_EV_ORDER_CREATED] =
        "{\"orderId\":\"123\",\"aliasId\":\"ORDER-2023-001\",\"userId\":1,\"totalAmount\":99.99,"
        "\"status\":\"created\",\"traceId\":\"t-1\",\"items\":[{\"productId\":101,\"productName\":"
        "\"Test Product\",\"quantity\":2,\"price\":49.995},{\"productId\":7,\"quantity\":1,"
        "\"price\":0}]}",
    [OMS_EV_ORDER_STATUS_CHANGED] =
        "{\"orderId\":\"123\",\"aliasId\":\"ORDER-2023-001\",\"userId\":\"1\",\"status\":"
        "\"shipped\",\"previousStatus\":\"confirmed\",\"message\":\"on its way\"}",
    [OMS_EV_INVENTORY_CHANGED] = "{\"productId\":101,\"productName\":\"Test Product\","
                                 "\"quantity\":5,\"threshold\":10,\"status\":\"low_stock\","
                                 "\"delta\":-3}",
    [OMS_EV_USER_NOTIFICATION] = "{\"userId\":42,\"title\":\"Hi\",\"message\":\"Grüße ✓\","
                                 "\"data\":{\"orderId\":\"123\",\"n\":[1,2]}}",
    [OMS_EV_SYSTEM_NOTIFICATION] = "{\"title\":\"Maintenance\",\"message\":\"at 22:00\","
                                   "\"severity\":\"warning\"}",
};

static oms_events *codec;

static int setup(void **state)
{
    (void)state;
    char err[512];
    codec = oms_events_new(NULL, err, sizeof err);
    if (!codec)
        fprintf(stderr, "oms_events_new: %s\n", err);
    return codec ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    oms_events_free(codec);
    return 0;
}

static void load_sample(oms_event_type t, oms_event *ev)
{
    char err[512] = "";
    json_t *j = json_loads(samples[t], 0, NULL);
    assert_non_null(j);
    int rc = oms_event_from_json(j, t, ev, err, sizeof err);
    json_decref(j);
    if (rc)
        fail_msg("from_json(%s): %s", oms_event_type_name(t), err);
    assert_int_equal(oms_event_fill_envelope(ev, "test"), 0);
    assert_int_equal(oms_event_validate(ev, err, sizeof err), 0);
}

/* The event as the Avro JSON the generic encoder takes: optional unions
 * explicit, data as text. */
static json_t *avro_shape(const oms_event *ev)
{
    json_t *j = oms_event_to_json(ev);
    static const char *const optional[] = {"traceId", "previousStatus", "message", "data"};
    for (size_t i = 0; i < OMS_ARRAY_LEN(optional); i++) {
        json_t *v = json_object_get(j, optional[i]);
        if (!v)
            json_object_set_new(j, optional[i], json_null());
    }
    if (ev->data_json)
        json_object_set_new(j, "data", json_string(ev->data_json));
    /* members the record does not have are dropped by the schema check below */
    return j;
}

static void test_hand_encoder_matches_generic(void **state)
{
    (void)state;
    for (int t = 0; t < OMS_EV__COUNT; t++) {
        oms_event ev;
        load_sample((oms_event_type)t, &ev);
        uint8_t hand[4096], gen[4096];
        size_t hn = 0, gn = 0;
        char err[512] = "";
        assert_int_equal(oms_event_encode(codec, &ev, hand, sizeof hand, &hn, err, sizeof err), 0);
        const oms_avro_schema *ws = oms_events_writer_schema(codec, (oms_event_type)t);
        json_t *j = avro_shape(&ev);
        /* drop members a type's schema lacks (e.g. message on a created order is there,
         * previousStatus is not) */
        json_t *schema = json_loads(oms_avro_schema_text(ws), 0, NULL);
        json_t *clean = json_object();
        size_t i;
        json_t *f;
        json_array_foreach(json_object_get(schema, "fields"), i, f)
        {
            const char *name = json_string_value(json_object_get(f, "name"));
            json_t *v = json_object_get(j, name);
            json_object_set(clean, name, v ? v : json_null());
        }
        int rc = oms_avro_encode_json(ws, clean, gen, sizeof gen, &gn, err, sizeof err);
        if (rc)
            fail_msg("generic encode of %s: %s", oms_event_type_name((oms_event_type)t), err);
        assert_int_equal(hn, gn + OMS_AVRO_SOE_HEADER_LEN);
        assert_memory_equal(hand + OMS_AVRO_SOE_HEADER_LEN, gen, gn);
        uint8_t hdr[OMS_AVRO_SOE_HEADER_LEN];
        oms_avro_soe_header(oms_avro_schema_fingerprint(ws), hdr);
        assert_memory_equal(hand, hdr, sizeof hdr);
        assert_int_equal(hand[0], 0xC3);
        assert_int_equal(hand[1], 0x01);
        json_decref(clean);
        json_decref(schema);
        json_decref(j);
        oms_event_clear(&ev);
    }
}

static void test_round_trip_every_type(void **state)
{
    (void)state;
    for (int t = 0; t < OMS_EV__COUNT; t++) {
        oms_event ev, back;
        load_sample((oms_event_type)t, &ev);
        uint8_t buf[4096];
        size_t n = 0;
        char err[512] = "";
        assert_int_equal(oms_event_encode(codec, &ev, buf, sizeof buf, &n, err, sizeof err), 0);
        int rc = oms_event_decode(codec, buf, n, &back, err, sizeof err);
        if (rc)
            fail_msg("decode %s: %s", oms_event_type_name((oms_event_type)t), err);
        json_t *a = oms_event_to_json(&ev), *b = oms_event_to_json(&back);
        if (!json_equal(a, b)) {
            char *sa = json_dumps(a, 0), *sb = json_dumps(b, 0);
            fail_msg("round trip differs:\n%s\n%s", sa, sb);
        }
        json_decref(a);
        json_decref(b);
        oms_event_clear(&back);
        oms_event_clear(&ev);
    }
}

static void test_encode_small_buffer(void **state)
{
    (void)state;
    oms_event ev;
    load_sample(OMS_EV_ORDER_CREATED, &ev);
    uint8_t buf[4096];
    size_t n = 0, full = 0;
    char err[256];
    assert_int_equal(oms_event_encode(codec, &ev, buf, sizeof buf, &full, err, sizeof err), 0);
    for (size_t cap = 0; cap < full; cap++)
        assert_int_equal(oms_event_encode(codec, &ev, buf, cap, &n, err, sizeof err), OMS_ERANGE);
    oms_event_clear(&ev);
}

static void test_decode_truncated_and_corrupt(void **state)
{
    (void)state;
    oms_event ev, out;
    load_sample(OMS_EV_ORDER_CREATED, &ev);
    uint8_t buf[4096];
    size_t n = 0;
    char err[256];
    assert_int_equal(oms_event_encode(codec, &ev, buf, sizeof buf, &n, err, sizeof err), 0);
    for (size_t len = 0; len < n; len++) {
        err[0] = '\0';
        int rc = oms_event_decode(codec, buf, len, &out, err, sizeof err);
        assert_true(rc < 0);
        assert_true(err[0] != '\0');
    }
    /* bad marker */
    uint8_t bad[4096];
    memcpy(bad, buf, n);
    bad[0] = 0x07;
    assert_int_equal(oms_event_decode(codec, bad, n, &out, err, sizeof err), OMS_EMAGIC);
    assert_non_null(strstr(err, "unknown wire format: first byte 07"));
    /* 00 is the Confluent framing: without a registry, its id is unknown */
    bad[0] = 0x00;
    assert_int_equal(oms_event_decode(codec, bad, n, &out, err, sizeof err), OMS_ENOTFOUND);
    assert_non_null(strstr(err, "no schema registry configured"));
    memcpy(bad, buf, n);
    bad[1] = 0x02;
    assert_int_equal(oms_event_decode(codec, bad, n, &out, err, sizeof err), OMS_EMAGIC);
    /* unknown fingerprint */
    memcpy(bad, buf, n);
    bad[5] ^= 0xFF;
    assert_int_equal(oms_event_decode(codec, bad, n, &out, err, sizeof err), OMS_ENOTFOUND);
    /* trailing garbage */
    memcpy(bad, buf, n);
    bad[n] = 0x00;
    assert_true(oms_event_decode(codec, bad, n + 1, &out, err, sizeof err) < 0);
    /* random corruption never crashes */
    uint64_t seed = 12345;
    for (int i = 0; i < 20000; i++) {
        memcpy(bad, buf, n);
        for (int k = 0; k < 3; k++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            size_t at = OMS_AVRO_SOE_HEADER_LEN + (seed >> 33) % (n - OMS_AVRO_SOE_HEADER_LEN);
            bad[at] = (uint8_t)(seed >> 17);
        }
        if (oms_event_decode(codec, bad, n, &out, err, sizeof err) == OMS_OK)
            oms_event_clear(&out);
    }
    oms_event_clear(&ev);
}

static void test_validation_errors(void **state)
{
    (void)state;
    static const struct {
        oms_event_type t;
        const char *json;
        const char *expect;
    } cases[] = {
        {OMS_EV_ORDER_CREATED, "{\"aliasId\":\"A\",\"userId\":1,\"totalAmount\":1}", "orderId"},
        {OMS_EV_ORDER_CREATED, "{\"orderId\":\"1\",\"aliasId\":\"A\",\"userId\":1}", "totalAmount"},
        {OMS_EV_ORDER_CREATED,
         "{\"orderId\":\"1\",\"aliasId\":\"A\",\"userId\":1,\"totalAmount\":1,\"colour\":1}",
         "colour: unknown field"},
        {OMS_EV_ORDER_CREATED,
         "{\"orderId\":\"1\",\"aliasId\":\"A\",\"userId\":1,\"totalAmount\":1,\"items\":[{"
         "\"productId\":1,\"quantity\":\"x\",\"price\":1}]}",
         "items[0].quantity"},
        {OMS_EV_ORDER_CREATED, "{\"orderId\":\"1\",\"aliasId\":\"A\",\"userId\":\"x\","
                               "\"totalAmount\":1}",
         "userId"},
        {OMS_EV_ORDER_STATUS_CHANGED, "{\"orderId\":\"1\",\"aliasId\":\"A\",\"userId\":1}",
         "status"},
        {OMS_EV_INVENTORY_CHANGED,
         "{\"productId\":1,\"productName\":\"p\",\"quantity\":1,\"threshold\":1,\"status\":\"x\"}",
         "status: must be one of in_stock"},
        {OMS_EV_INVENTORY_CHANGED,
         "{\"productId\":1,\"productName\":\"p\",\"quantity\":3000000000,\"threshold\":1,"
         "\"status\":\"in_stock\"}",
         "quantity"},
        {OMS_EV_USER_NOTIFICATION, "{\"userId\":1,\"title\":\"t\",\"message\":\"m\",\"data\":3}",
         "data"},
        {OMS_EV_SYSTEM_NOTIFICATION, "{\"title\":\"t\",\"message\":\"m\",\"type\":\"OrderCreated\"}",
         "type"},
    };
    for (size_t i = 0; i < OMS_ARRAY_LEN(cases); i++) {
        json_t *j = json_loads(cases[i].json, 0, NULL);
        assert_non_null(j);
        oms_event ev;
        char err[256] = "";
        int rc = oms_event_from_json(j, cases[i].t, &ev, err, sizeof err);
        if (rc == OMS_OK) {
            oms_event_fill_envelope(&ev, "t");
            rc = oms_event_validate(&ev, err, sizeof err);
            oms_event_clear(&ev);
        }
        json_decref(j);
        if (rc != OMS_EINVAL || !strstr(err, cases[i].expect))
            fail_msg("case %zu: rc=%d err='%s', expected '%s'", i, rc, err, cases[i].expect);
    }
}

static void test_realtime_frame(void **state)
{
    (void)state;
    oms_event ev;
    load_sample(OMS_EV_ORDER_STATUS_CHANGED, &ev);
    ev.occurred_at = 1700000000123;
    size_t len = 0;
    char *s = oms_event_frame_json(&ev, "oms.orders:3:1042", &len);
    assert_non_null(s);
    assert_int_equal(len, strlen(s));
    json_t *f = json_loads(s, 0, NULL);
    assert_non_null(f);
    assert_string_equal(json_string_value(json_object_get(f, "event")), "order_update");
    json_t *rt = json_object_get(f, "data");
    assert_string_equal(json_string_value(json_object_get(rt, "type")), "order_status");
    assert_string_equal(json_string_value(json_object_get(rt, "id")), "oms.orders:3:1042");
    assert_string_equal(json_string_value(json_object_get(rt, "timestamp")),
                        "2023-11-14T22:13:20.123Z");
    assert_int_equal(json_integer_value(json_object_get(rt, "userId")), 1);
    json_t *d = json_object_get(rt, "data");
    assert_string_equal(json_string_value(json_object_get(d, "orderId")), "123");
    assert_string_equal(json_string_value(json_object_get(d, "aliasId")), "ORDER-2023-001");
    assert_string_equal(json_string_value(json_object_get(d, "status")), "shipped");
    assert_string_equal(json_string_value(json_object_get(d, "eventType")), "OrderStatusChanged");
    assert_string_equal(json_string_value(json_object_get(d, "eventId")), ev.event_id);
    json_decref(f);
    free(s);
    oms_event_clear(&ev);

    /* notifications: data parsed back into an object; system has no userId */
    load_sample(OMS_EV_USER_NOTIFICATION, &ev);
    json_t *u = oms_event_realtime(&ev, NULL);
    assert_string_equal(json_string_value(json_object_get(u, "type")), "user_specific");
    assert_null(json_object_get(u, "id"));
    json_t *data = json_object_get(json_object_get(u, "data"), "data");
    assert_true(json_is_object(data));
    assert_string_equal(json_string_value(json_object_get(data, "orderId")), "123");
    json_decref(u);
    oms_event_clear(&ev);
    load_sample(OMS_EV_SYSTEM_NOTIFICATION, &ev);
    json_t *sys = oms_event_realtime(&ev, "oms.notifications:0:0");
    assert_null(json_object_get(sys, "userId"));
    assert_string_equal(json_string_value(json_object_get(sys, "type")), "system_notification");
    json_decref(sys);
    oms_event_clear(&ev);
}

static void test_types_and_keys(void **state)
{
    (void)state;
    oms_event_type t;
    assert_int_equal(oms_event_type_parse("order-created", &t), 0);
    assert_int_equal(t, OMS_EV_ORDER_CREATED);
    assert_int_equal(oms_event_type_parse("INVENTORY_CHANGED", &t), 0);
    assert_int_equal(t, OMS_EV_INVENTORY_CHANGED);
    assert_int_equal(oms_event_type_parse("SystemNotification", &t), 0);
    assert_int_equal(t, OMS_EV_SYSTEM_NOTIFICATION);
    assert_int_equal(oms_event_type_parse("Nope", &t), OMS_ENOTFOUND);
    static const char *const keys[OMS_EV__COUNT] = {"123", "123", "101", "42", "*"};
    for (int i = 0; i < OMS_EV__COUNT; i++) {
        oms_event ev;
        load_sample((oms_event_type)i, &ev);
        char k[64];
        assert_int_equal(oms_event_key(&ev, k, sizeof k), (int)strlen(keys[i]));
        assert_string_equal(k, keys[i]);
        char tiny[2];
        if (strlen(keys[i]) >= 2)
            assert_int_equal(oms_event_key(&ev, tiny, sizeof tiny), OMS_ERANGE);
        oms_event_clear(&ev);
    }
    assert_int_equal(oms_event_topic_kind(OMS_EV_ORDER_STATUS_CHANGED), OMS_TOPIC_ORDERS);
    assert_int_equal(oms_event_topic_kind(OMS_EV_INVENTORY_CHANGED), OMS_TOPIC_INVENTORY);
    assert_int_equal(oms_event_topic_kind(OMS_EV_USER_NOTIFICATION), OMS_TOPIC_NOTIFICATIONS);
}

/* type, key and payload without eventId/occurredAt */
static char *sim_signature(const oms_event *ev)
{
    json_t *j = oms_event_to_json(ev);
    json_object_del(j, "eventId");
    json_object_del(j, "occurredAt");
    char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(j);
    return s;
}

static void test_sim_deterministic(void **state)
{
    (void)state;
    oms_sim_opts o = {42, 30, 10, "sim"};
    oms_sim *a = oms_sim_new(&o), *b = oms_sim_new(&o);
    o.seed = 43;
    oms_sim *c = oms_sim_new(&o);
    int differ = 0;
    for (int i = 0; i < 5000; i++) {
        char *sa = sim_signature(oms_sim_next(a, 1000 + i));
        char *sb = sim_signature(oms_sim_next(b, 999999 + i));
        char *sc = sim_signature(oms_sim_next(c, 1000 + i));
        assert_string_equal(sa, sb);
        differ += strcmp(sa, sc) != 0;
        free(sa);
        free(sb);
        free(sc);
    }
    assert_true(differ > 100);
    oms_sim_free(a);
    oms_sim_free(b);
    oms_sim_free(c);
}

static int status_rank(const char *s)
{
    static const char *const order[] = {"created", "confirmed", "shipped", "delivered"};
    for (int i = 0; i < 4; i++)
        if (strcmp(s, order[i]) == 0)
            return i;
    return strcmp(s, "cancelled") == 0 ? 9 : -1;
}

static void test_sim_coherent(void **state)
{
    (void)state;
    oms_sim_opts o = {7, 20, 8, "sim"};
    oms_sim *s = oms_sim_new(&o);
    int32_t stock[9];
    for (int i = 0; i < 9; i++)
        stock[i] = -1;
    json_t *orders = json_object(); /* orderId -> last status */
    int seen[OMS_EV__COUNT] = {0};
    int low = 0, out = 0, restocked = 0;
    for (int i = 0; i < 20000; i++) {
        const oms_event *ev = oms_sim_next(s, 1700000000000 + i);
        char err[256];
        if (oms_event_validate(ev, err, sizeof err))
            fail_msg("event %d invalid: %s", i, err);
        seen[ev->type]++;
        uint8_t buf[4096];
        size_t n;
        assert_int_equal(oms_event_encode(codec, ev, buf, sizeof buf, &n, err, sizeof err), 0);
        if (ev->type == OMS_EV_INVENTORY_CHANGED) {
            assert_true(ev->product_id >= 1 && ev->product_id <= 8);
            assert_true(ev->quantity >= 0);
            if (stock[ev->product_id] >= 0)
                assert_int_equal(stock[ev->product_id] + ev->delta, ev->quantity);
            stock[ev->product_id] = ev->quantity;
            low += strcmp(ev->status, "low_stock") == 0;
            out += strcmp(ev->status, "out_of_stock") == 0;
            restocked += strcmp(ev->status, "restocked") == 0;
            if (ev->quantity == 0)
                assert_string_equal(ev->status, "out_of_stock");
        } else if (ev->type == OMS_EV_ORDER_CREATED) {
            assert_null(json_object_get(orders, ev->order_id));
            assert_true(ev->nitems >= 1);
            json_object_set_new(orders, ev->order_id, json_string("created"));
        } else if (ev->type == OMS_EV_ORDER_STATUS_CHANGED) {
            json_t *prev = json_object_get(orders, ev->order_id);
            assert_non_null(prev);
            assert_string_equal(json_string_value(prev), ev->previous_status);
            int from = status_rank(ev->previous_status), to = status_rank(ev->status);
            assert_true(to == from + 1 || (to == 9 && from <= 1));
            json_object_set_new(orders, ev->order_id, json_string(ev->status));
        }
        assert_true(ev->user_id >= 0 && ev->user_id <= 20);
    }
    for (int t = 0; t < OMS_EV__COUNT; t++)
        assert_true(seen[t] > 0);
    assert_true(low > 0 && out > 0 && restocked > 0);
    json_decref(orders);
    oms_sim_free(s);
}

static void test_common_time_and_uuid(void **state)
{
    (void)state;
    char buf[32];
    oms_iso8601_ms(0, buf, sizeof buf);
    assert_string_equal(buf, "1970-01-01T00:00:00.000Z");
    oms_iso8601_ms(1700000000123, buf, sizeof buf);
    assert_string_equal(buf, "2023-11-14T22:13:20.123Z");
    int64_t ms;
    assert_int_equal(oms_parse_iso8601_ms("2023-11-14T22:13:20.123Z", &ms), 0);
    assert_int_equal(ms, 1700000000123);
    assert_int_equal(oms_parse_iso8601_ms("2023-11-14T23:13:20.123+01:00", &ms), 0);
    assert_int_equal(ms, 1700000000123);
    assert_int_equal(oms_parse_iso8601_ms("2024-02-29", &ms), 0);
    assert_int_equal(ms, 1709164800000);
    assert_int_equal(oms_parse_iso8601_ms("2023-13-01T00:00:00Z", &ms), OMS_EINVAL);
    assert_int_equal(oms_parse_iso8601_ms("yesterday", &ms), OMS_EINVAL);
    assert_int_equal(oms_parse_iso8601_ms("2023-11-14T22:13:20Zjunk", &ms), OMS_EINVAL);
    char u1[37], u2[37];
    oms_uuid7(1700000000123, u1);
    oms_uuid7(1700000000123, u2);
    assert_int_equal(strlen(u1), 36);
    assert_string_not_equal(u1, u2);
    assert_int_equal(u1[14], '7');
    assert_true(strchr("89ab", u1[19]) != NULL);
    assert_memory_equal(u1, "018bcfe5-687b", 13); /* 48-bit ms timestamp first */
}

/* ---- fast paths against the generic ones ------------------------------------------------
 *
 * oms_event_decode() reads records of the current writer schemas with a
 * hand-written reader and oms_event_frame_json() writes the frame by hand.
 * The references are the generic decoder (pkg/avro -> jansson -> from_json
 * -> validate) and the jansson-built frame: same return code, same message,
 * same event, same frame bytes, for every input below. */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint64_t rnd64(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static size_t rnd_below(size_t n)
{
    return n ? (size_t)(rnd64() % n) : 0;
}

static bool str_same(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* Frames of ev: the fast writer and the jansson reference, byte for byte
 * (so also semantically: parsed, they are json_equal). */
static void assert_frames_equal(const oms_event *ev, const char *position)
{
    size_t fl = 0, gl = 0;
    char *f = oms_event_frame_json(ev, position, &fl);
    char *g = oms_event_frame_json_generic(ev, position, &gl);
    assert_non_null(f);
    assert_non_null(g);
    if (fl != gl || strcmp(f, g) != 0)
        fail_msg("frames differ:\n fast:    %s\n generic: %s", f, g);
    assert_int_equal(fl, strlen(f));
    json_t *a = json_loads(f, 0, NULL), *b = json_loads(g, 0, NULL);
    assert_non_null(a);
    assert_true(json_equal(a, b));
    json_decref(a);
    json_decref(b);
    /* appended after other text, into a buffer that has to grow */
    oms_buf buf = {0};
    assert_int_equal(oms_buf_reserve(&buf, 1), 0);
    memcpy(buf.p, "x", 2);
    buf.len = 1;
    assert_int_equal(oms_event_frame_append(ev, position, &buf), 0);
    assert_int_equal(buf.len, fl + 1);
    assert_memory_equal(buf.p + 1, f, fl + 1);
    free(buf.p);
    free(f);
    free(g);
}

static void assert_same_event(const oms_event *a, const oms_event *b)
{
    json_t *ja = oms_event_to_json(a), *jb = oms_event_to_json(b);
    if (!json_equal(ja, jb)) {
        char *sa = json_dumps(ja, JSON_COMPACT), *sb = json_dumps(jb, JSON_COMPACT);
        fail_msg("events differ:\n fast:    %s\n generic: %s", sa, sb);
    }
    json_decref(ja);
    json_decref(jb);
    assert_int_equal(a->type, b->type);
    assert_string_equal(a->event_id, b->event_id);
    assert_true(str_same(a->data_json, b->data_json));
    assert_int_equal(a->nitems, b->nitems);
    assert_true((a->items == NULL) == (b->items == NULL));
}

static int decoded_ok, decoded_err;

/* Decode buf both ways; they must agree on everything. Returns the code. */
static int decode_both(const uint8_t *buf, size_t len)
{
    oms_event fast, gen;
    char ef[512] = "", eg[512] = "";
    int rf = oms_event_decode(codec, buf, len, &fast, ef, sizeof ef);
    int rg = oms_event_decode_generic(codec, buf, len, &gen, eg, sizeof eg);
    if (rf != rg || strcmp(ef, eg) != 0)
        fail_msg("verdicts differ: fast %d '%s', generic %d '%s'", rf, ef, rg, eg);
    if (rf == OMS_OK) {
        decoded_ok++;
        assert_non_null(fast.arena); /* the fast path did run */
        assert_null(gen.arena);
        assert_same_event(&fast, &gen);
        assert_frames_equal(&fast, "oms.orders:3:1042");
        oms_event_clear(&fast);
        oms_event_clear(&gen);
        assert_null(fast.source);
    } else {
        decoded_err++;
        /* zeroed on error */
        assert_null(fast.source);
        assert_null(fast.arena);
        assert_int_equal(fast.event_id[0], 0);
    }
    return rf;
}

static void test_fast_decode_enabled(void **state)
{
    (void)state;
    for (int t = 0; t < OMS_EV__COUNT; t++)
        if (!oms_events_fast_decode(codec, (oms_event_type)t))
            fail_msg("fast decoding is off for %s: its writer schema changed without "
                     "fast_canonical[] and the reader in event_codec.c",
                     oms_event_type_name((oms_event_type)t));
    assert_false(oms_events_fast_decode(codec, OMS_EV__COUNT));
}

/* Simulated events of every type, encoded, decoded both ways. */
static void test_fast_decode_matches_generic(void **state)
{
    (void)state;
    int seen[OMS_EV__COUNT] = {0};
    for (uint64_t seed = 1; seed <= 4; seed++) {
        oms_sim_opts o = {seed, 40, 12, "sim"};
        oms_sim *s = oms_sim_new(&o);
        for (int i = 0; i < 2500; i++) {
            const oms_event *ev = oms_sim_next(s, 1700000000000 + i * 7);
            uint8_t buf[4096];
            size_t n = 0;
            char err[256];
            assert_int_equal(oms_event_encode(codec, ev, buf, sizeof buf, &n, err, sizeof err),
                             0);
            assert_int_equal(decode_both(buf, n), 0);
            /* the sim's own (borrowed-string) event frames the same both ways */
            assert_frames_equal(ev, i % 2 ? "t:0:1" : NULL);
            seen[ev->type]++;
        }
        oms_sim_free(s);
    }
    for (int t = 0; t < OMS_EV__COUNT; t++)
        assert_true(seen[t] > 20);
    /* the samples: items with a missing name, traceId, message, data */
    for (int t = 0; t < OMS_EV__COUNT; t++) {
        oms_event ev;
        load_sample((oms_event_type)t, &ev);
        uint8_t buf[4096];
        size_t n = 0;
        char err[256];
        assert_int_equal(oms_event_encode(codec, &ev, buf, sizeof buf, &n, err, sizeof err), 0);
        assert_int_equal(decode_both(buf, n), 0);
        oms_event_clear(&ev);
    }
}

/* Encoded records to mutate: one sample of each type, and simulated ones. */
static size_t corpus(uint8_t recs[][1024], size_t lens[], size_t max)
{
    size_t k = 0;
    for (int t = 0; t < OMS_EV__COUNT && k < max; t++) {
        oms_event ev;
        load_sample((oms_event_type)t, &ev);
        char err[256];
        assert_int_equal(oms_event_encode(codec, &ev, recs[k], 1024, &lens[k], err, sizeof err),
                         0);
        k++;
        oms_event_clear(&ev);
    }
    oms_sim_opts o = {99, 10, 5, "sim"};
    oms_sim *s = oms_sim_new(&o);
    while (k < max) {
        const oms_event *ev = oms_sim_next(s, 1700000000000);
        char err[256];
        assert_int_equal(oms_event_encode(codec, ev, recs[k], 1024, &lens[k], err, sizeof err),
                         0);
        k++;
    }
    oms_sim_free(s);
    return k;
}

static void test_fast_decode_truncations(void **state)
{
    (void)state;
    static uint8_t recs[40][1024];
    size_t lens[40];
    size_t n = corpus(recs, lens, 40);
    for (size_t r = 0; r < n; r++)
        for (size_t len = 0; len <= lens[r]; len++) {
            int rc = decode_both(recs[r], len);
            if (len == lens[r])
                assert_int_equal(rc, 0);
            else
                assert_true(rc < 0);
        }
}

/* Overwrite, insert or delete bytes, or plant long varints, anywhere in the
 * body (the header is kept so that the fast path is the one taken). */
static size_t mutate(uint8_t *b, size_t n, size_t cap)
{
    size_t body = OMS_AVRO_SOE_HEADER_LEN;
    int edits = 1 + (int)rnd_below(3);
    for (int e = 0; e < edits; e++) {
        size_t at = body + rnd_below(n > body ? n - body : 1);
        switch (rnd_below(8)) {
        case 0: /* a random byte */
        case 1:
            if (at < n)
                b[at] = (uint8_t)rnd64();
            break;
        case 2: /* a small varint: lengths, union indexes, counts */
            if (at < n)
                b[at] = (uint8_t)rnd_below(8);
            break;
        case 3: /* flip a bit */
            if (at < n)
                b[at] ^= (uint8_t)(1u << rnd_below(8));
            break;
        case 4: /* insert */
            if (n < cap) {
                memmove(b + at + 1, b + at, n - at);
                b[at] = (uint8_t)rnd64();
                n++;
            }
            break;
        case 5: /* delete */
            if (at < n) {
                memmove(b + at, b + at + 1, n - at - 1);
                n--;
            }
            break;
        case 6: { /* a long varint (9 to 11 bytes) */
            size_t k = 9 + rnd_below(3);
            if (n + k <= cap) {
                memmove(b + at + k, b + at, n - at);
                for (size_t i = 0; i < k; i++)
                    b[at + i] = (uint8_t)(i + 1 < k ? 0x80 | rnd64() : rnd_below(4));
                n += k;
            }
            break;
        }
        default: /* a byte that is not UTF-8, or a NUL, in a string */
            if (at < n)
                b[at] = (uint8_t[]){0x00, 0x80, 0xC0, 0xED, 0xF5, 0xFF, '"', '\\'}[rnd_below(8)];
            break;
        }
    }
    return n;
}

static void test_fast_decode_mutations(void **state)
{
    (void)state;
    static uint8_t recs[40][1024];
    size_t lens[40];
    size_t nrec = corpus(recs, lens, 40);
    decoded_ok = decoded_err = 0;
    uint8_t b[1100];
    for (int i = 0; i < 50000; i++) {
        size_t r = rnd_below(nrec);
        memcpy(b, recs[r], lens[r]);
        size_t n = mutate(b, lens[r], sizeof b);
        decode_both(b, n);
    }
    /* both outcomes were exercised */
    assert_true(decoded_ok > 500);
    assert_true(decoded_err > 10000);
}

/* ---- records written by hand, for the corners -------------------------------------------- */

typedef struct {
    uint8_t b[4096];
    size_t n;
} tbuf;

static void tb_bytes(tbuf *t, const void *p, size_t n)
{
    assert_true(t->n + n <= sizeof t->b);
    memcpy(t->b + t->n, p, n);
    t->n += n;
}

static void tb_long(tbuf *t, int64_t v)
{
    uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
    do {
        uint8_t c = (uint8_t)(z & 0x7F);
        z >>= 7;
        if (z)
            c |= 0x80;
        tb_bytes(t, &c, 1);
    } while (z);
}

static void tb_strn(tbuf *t, const char *s, size_t n)
{
    tb_long(t, (int64_t)n);
    tb_bytes(t, s, n);
}

static void tb_str(tbuf *t, const char *s)
{
    tb_strn(t, s, strlen(s));
}

static void tb_opt(tbuf *t, const char *s)
{
    if (!s) {
        tb_long(t, 0);
    } else {
        tb_long(t, 1);
        tb_str(t, s);
    }
}

static void tb_double(tbuf *t, double d)
{
    uint8_t x[8];
    uint64_t u;
    memcpy(&u, &d, 8);
    for (int i = 0; i < 8; i++)
        x[i] = (uint8_t)(u >> (8 * i));
    tb_bytes(t, x, 8);
}

static void tb_header(tbuf *t, oms_event_type type)
{
    t->n = 0;
    uint8_t h[OMS_AVRO_SOE_HEADER_LEN];
    oms_avro_soe_header(oms_avro_schema_fingerprint(oms_events_writer_schema(codec, type)), h);
    tb_bytes(t, h, sizeof h);
}

#define UUID "0190a5b2-7c3d-7e4f-8a9b-0c1d2e3f4a5b"

static void tb_envelope(tbuf *t, oms_event_type type, const char *source, const char *trace)
{
    tb_header(t, type);
    tb_str(t, UUID);
    tb_str(t, oms_event_type_name(type));
    tb_long(t, 1700000000123);
    tb_str(t, source);
    tb_opt(t, trace);
}

/* A UserNotification with these title and data. */
static int user_note(const char *title, size_t title_len, const char *data)
{
    tbuf t;
    tb_envelope(&t, OMS_EV_USER_NOTIFICATION, "svc", NULL);
    tb_long(&t, 42);
    tb_strn(&t, title, title_len);
    tb_str(&t, "message");
    tb_opt(&t, data);
    return decode_both(t.b, t.n);
}

static void test_fast_decode_strings(void **state)
{
    (void)state;
    /* escapes, control characters, non-ASCII: all pass, all framed alike */
    static const char *const ok[] = {
        "plain",
        "quote \" backslash \\ slash / done",
        "nl \n cr \r tab \t bs \b ff \f bell \x07 esc \x1b us \x1f del \x7f",
        "Gr\xc3\xbc\xc3\x9f\x65 \xe2\x9c\x93 \xf0\x9f\x98\x80 \xe2\x80\xa8 \xef\xbf\xbf",
        "\xf4\x8f\xbf\xbf max code point",
        "0123456789abcdef0123456789abcdef long enough for the word-at-a-time path \"x\"",
        "12345678\"2345678\\2345678\x01" "2345678\xc3\xa9",
    };
    for (size_t i = 0; i < OMS_ARRAY_LEN(ok); i++)
        assert_int_equal(user_note(ok[i], strlen(ok[i]), NULL), 0);
    /* a NUL ends the string as a C string (as json_string_value() does) */
    assert_int_equal(user_note("ab\0cd", 5, NULL), 0);
    assert_int_equal(user_note("\0abc", 4, NULL), OMS_EINVAL); /* empty title */
    /* not UTF-8: truncated, overlong, surrogate, above U+10FFFF, stray bytes */
    static const char *const bad[] = {"\xc3", "a\xc3(", "\xc0\x80", "\xe0\x80\x80",
                                      "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xf5\x80\x80\x80",
                                      "\x80", "abcdefgh\xff", "\xf0\x9f\x98"};
    for (size_t i = 0; i < OMS_ARRAY_LEN(bad); i++)
        assert_int_equal(user_note(bad[i], strlen(bad[i]), NULL), OMS_EINVAL);

    /* data: compact JSON is used as is; anything else goes by jansson */
    static const char *const data_ok[] = {
        "{}",
        "{\"orderId\":\"ord-1\"}",
        "{\"a\":1,\"b\":[true,false,null,-5,0,{\"c\":\"d\"}],\"e\":{}}",
        "{ \"a\" : 1 }",                                  /* spaces */
        "{\"a\":1.5,\"b\":1e300,\"c\":-0.0}",             /* reals */
        "{\"a\":\"\\u00e9\\/\\n\"}",                      /* escapes jansson rewrites */
        "{\"a\":\"q\\\"b\\\\\"}",                         /* the two it keeps */
        "{\"a\":1,\"a\":2}",                              /* a repeated key */
        "{\"a\":-0}",                                     /* -0 */
        "{\"n\":123456789012345678}",                     /* 18 digits */
        "{\"n\":1234567890123456789}",                    /* 19, still fits */
        "{\"a\":{\"b\":{\"c\":{\"d\":{\"e\":{\"f\":{\"g\":{\"h\":1}}}}}}}}",
        "{\"k\":\"Gr\xc3\xbc\xc3\x9f\x65\"}",
    };
    for (size_t i = 0; i < OMS_ARRAY_LEN(data_ok); i++)
        if (user_note("t", 1, data_ok[i]) != 0)
            fail_msg("data '%s' rejected", data_ok[i]);
    static const char *const data_bad[] = {
        "", "[1,2]", "3", "\"text\"", "{", "{\"a\":}", "{\"a\":1,}", "not json",
        "{\"a\":\"\\u0000\"}",                      /* NUL needs JSON_ALLOW_NUL */
        "{\"a\":\"\\ud800\"}",                      /* lone surrogate */
        "{\"a\":\"\x01\"}",                         /* raw control character */
        "{\"n\":12345678901234567890}",             /* too big for json_int_t */
        "{\"a\":1} x",
    };
    for (size_t i = 0; i < OMS_ARRAY_LEN(data_bad); i++)
        if (user_note("t", 1, data_bad[i]) != OMS_EINVAL)
            fail_msg("data '%s' accepted", data_bad[i]);
    /* deeper than the compact check goes: jansson decides */
    char deep[256] = "";
    for (int i = 0; i < 40; i++)
        strcat(deep, "{\"a\":");
    strcat(deep, "1");
    for (int i = 0; i < 40; i++)
        strcat(deep, "}");
    assert_int_equal(user_note("t", 1, deep), 0);
}

static void test_fast_decode_envelope(void **state)
{
    (void)state;
    tbuf t;
    /* the type member: any spelling oms_event_type_parse() takes, C-string cut */
    static const struct {
        const char *type;
        size_t len;
        int rc;
    } types[] = {
        {"SystemNotification", 18, 0},   {"system-notification", 19, 0},
        {"SYSTEM_NOTIFICATION", 19, 0},  {"system.notification", 19, 0},
        {"SystemNotification\0junk", 23, 0}, {"OrderCreated", 12, OMS_EINVAL},
        {"", 0, OMS_EINVAL},             {"SystemNotificationX", 19, OMS_EINVAL},
        {"S-y-s-t-e-m-N-o-t-i-f-i-c-a-t-i-o-n----------------------------------------------------"
         "------",
         92, 0},
    };
    for (size_t i = 0; i < OMS_ARRAY_LEN(types); i++) {
        tb_header(&t, OMS_EV_SYSTEM_NOTIFICATION);
        tb_str(&t, UUID);
        tb_strn(&t, types[i].type, types[i].len);
        tb_long(&t, 1700000000123);
        tb_str(&t, "svc");
        tb_opt(&t, NULL);
        tb_str(&t, "title");
        tb_str(&t, "message");
        tb_str(&t, "warning");
        tb_opt(&t, NULL);
        if (decode_both(t.b, t.n) != types[i].rc)
            fail_msg("type '%s': unexpected verdict", types[i].type);
    }
    /* eventId: 36 characters as a C string; the format is validate()'s */
    static const struct {
        const char *id;
        size_t len;
        int rc;
    } ids[] = {
        {UUID, 36, 0},
        {UUID "\0tail", 41, 0},
        {"0190a5b2\0-7c3d-7e4f-8a9b-0c1d2e3f4a5b", 37, OMS_EINVAL},
        {"0190A5B2-7C3D-7E4F-8A9B-0C1D2E3F4A5B", 36, 0},
        {"0190a5b2-7c3d-7e4f-8a9b-0c1d2e3f4a5g", 36, OMS_EINVAL},
        {"0190a5b2-7c3d-7e4f-8a9b_0c1d2e3f4a5b", 36, OMS_EINVAL},
        {"0190a5b2-7c3d-7e4f-8a9b-0c1d2e3f4a5", 35, OMS_EINVAL},
        {UUID "0", 37, OMS_EINVAL},
        {"", 0, OMS_EINVAL},
    };
    for (size_t i = 0; i < OMS_ARRAY_LEN(ids); i++) {
        tb_header(&t, OMS_EV_INVENTORY_CHANGED);
        tb_strn(&t, ids[i].id, ids[i].len);
        tb_str(&t, "InventoryChanged");
        tb_long(&t, 1700000000123);
        tb_str(&t, "svc");
        tb_opt(&t, "trace-1");
        tb_long(&t, 7);
        tb_str(&t, "Widget");
        tb_long(&t, 5);
        tb_long(&t, 10);
        tb_str(&t, "low_stock");
        tb_long(&t, -3);
        if (decode_both(t.b, t.n) != ids[i].rc)
            fail_msg("eventId %zu: unexpected verdict", i);
    }
    /* occurredAt, source, traceId, union indexes, varints, lengths */
    static const struct {
        int64_t occurred;
        const char *source;
        int64_t trace_branch;
        int rc;
    } env[] = {
        {1, "s", 0, 0},         {0, "s", 0, OMS_EINVAL},  {-5, "s", 0, OMS_EINVAL},
        {INT64_MAX, "s", 1, 0}, {1, "", 0, OMS_EINVAL},   {1, "s", 2, OMS_EINVAL},
        {1, "s", -1, OMS_EINVAL}, {INT64_MIN, "s", 0, OMS_EINVAL},
    };
    for (size_t i = 0; i < OMS_ARRAY_LEN(env); i++) {
        tb_header(&t, OMS_EV_SYSTEM_NOTIFICATION);
        tb_str(&t, UUID);
        tb_str(&t, "SystemNotification");
        tb_long(&t, env[i].occurred);
        tb_str(&t, env[i].source);
        tb_long(&t, env[i].trace_branch);
        if (env[i].trace_branch == 1)
            tb_str(&t, "t");
        tb_str(&t, "title");
        tb_str(&t, "message");
        tb_str(&t, "info");
        tb_opt(&t, "{\"x\":1}");
        if (decode_both(t.b, t.n) != env[i].rc)
            fail_msg("envelope %zu: unexpected verdict", i);
    }
    /* the severity and status vocabularies are validate()'s */
    tb_envelope(&t, OMS_EV_SYSTEM_NOTIFICATION, "s", NULL);
    tb_str(&t, "title");
    tb_str(&t, "message");
    tb_str(&t, "fatal");
    tb_opt(&t, NULL);
    assert_int_equal(decode_both(t.b, t.n), OMS_EINVAL);
    /* varints: 10 bytes is the most, and the 10th may only be 0 or 1 */
    static const uint8_t longs[][11] = {
        {0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01},       /* INT64_MAX */
        {0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x02},       /* overflow */
        {0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x81, 0x00}, /* 11 bytes */
        {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00},       /* padded 0 */
    };
    static const size_t longs_n[] = {10, 10, 11, 10};
    for (size_t i = 0; i < OMS_ARRAY_LEN(longs); i++) {
        tb_envelope(&t, OMS_EV_USER_NOTIFICATION, "s", NULL);
        tb_bytes(&t, longs[i], longs_n[i]); /* userId */
        tb_str(&t, "title");
        tb_str(&t, "message");
        tb_opt(&t, NULL);
        decode_both(t.b, t.n);
    }
    /* string lengths: negative, past the end */
    for (int64_t len = -3; len <= 3; len += 6) {
        tb_envelope(&t, OMS_EV_USER_NOTIFICATION, "s", NULL);
        tb_long(&t, 42);
        tb_long(&t, len > 0 ? 1000 : len);
        tb_str(&t, "xyz");
        assert_true(decode_both(t.b, t.n) < 0);
    }
    /* trailing bytes */
    tb_envelope(&t, OMS_EV_USER_NOTIFICATION, "s", NULL);
    tb_long(&t, 42);
    tb_str(&t, "title");
    tb_str(&t, "message");
    tb_opt(&t, NULL);
    tb_long(&t, 0);
    assert_int_equal(decode_both(t.b, t.n), OMS_EINVAL);
}

/* An OrderCreated with the given total and item prices, items written as
 * one block (count > 0), a negative-count block with its byte size, or
 * several blocks. */
static int order(double total, const double *prices, size_t n, int blocks, int64_t quantity)
{
    tbuf t;
    tb_envelope(&t, OMS_EV_ORDER_CREATED, "svc", NULL);
    tb_str(&t, "ord-1");
    tb_str(&t, "ORD-1");
    tb_long(&t, 3);
    tb_str(&t, "created");
    tb_double(&t, total);
    for (size_t i = 0; i < n;) {
        size_t k = blocks == 2 ? 1 : n;
        tbuf items = {.n = 0};
        for (size_t j = i; j < i + k; j++) {
            tb_long(&items, (int64_t)j + 1);
            tb_str(&items, j % 2 ? "Gadget \"2\"" : "");
            tb_long(&items, quantity);
            tb_double(&items, prices[j]);
        }
        if (blocks == 1) {
            tb_long(&t, -(int64_t)k);
            tb_long(&t, (int64_t)items.n);
        } else {
            tb_long(&t, (int64_t)k);
        }
        tb_bytes(&t, items.b, items.n);
        i += k;
    }
    tb_long(&t, 0);
    tb_opt(&t, "thanks");
    return decode_both(t.b, t.n);
}

static void test_fast_decode_numbers(void **state)
{
    (void)state;
    double prices[] = {0.1, 19.99, 1e-7, 123456789.125, 5e-324, 1.7976931348623157e308, -0.0,
                       1e21, 3.0, 0.30000000000000004};
    size_t np = OMS_ARRAY_LEN(prices);
    for (int blocks = 0; blocks < 3; blocks++) {
        assert_int_equal(order(99.99, prices, np, blocks, 2), 0);
        assert_int_equal(order(0, prices, 0, blocks, 2), 0);
    }
    /* NaN and infinities never reach JSON; negatives and bad quantities are
     * validate()'s */
    double specials[] = {NAN, INFINITY, -INFINITY, -1.0};
    for (size_t i = 0; i < OMS_ARRAY_LEN(specials); i++) {
        assert_true(order(specials[i], prices, 2, 0, 1) < 0);
        double p[2] = {1.0, specials[i]};
        assert_true(order(10, p, 2, 0, 1) < 0);
    }
    assert_int_equal(order(10, prices, 2, 0, 0), OMS_EINVAL);
    assert_int_equal(order(10, prices, 2, 0, (int64_t)INT32_MAX + 1), OMS_EINVAL);
    assert_int_equal(order(10, prices, 2, 0, INT32_MIN), OMS_EINVAL);
    /* block headers that lie */
    tbuf t;
    static const int64_t counts[] = {INT64_MIN, 1000000, -2};
    for (size_t i = 0; i < OMS_ARRAY_LEN(counts); i++) {
        tb_envelope(&t, OMS_EV_ORDER_CREATED, "svc", NULL);
        tb_str(&t, "ord-1");
        tb_str(&t, "ORD-1");
        tb_long(&t, 3);
        tb_str(&t, "created");
        tb_double(&t, 1);
        tb_long(&t, counts[i]);
        if (counts[i] == -2)
            tb_long(&t, -1); /* negative block size */
        tb_long(&t, 0);
        tb_opt(&t, NULL);
        assert_int_equal(decode_both(t.b, t.n), counts[i] == 1000000 ? OMS_ETRUNC : OMS_EINVAL);
    }
}

/* A newer version of a schema loaded from a directory: records of the old
 * writer must then be resolved, so that type leaves the fast path. */
static void test_fast_decode_off_with_newer_schema(void **state)
{
    (void)state;
    char dir[] = "/tmp/oms-test-schemas-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/inventory_changed.v2.avsc", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    /* delta widened to long: resolvable, same JSON members */
    fputs("{\"type\":\"record\",\"name\":\"InventoryChanged\",\"namespace\":\"oms.events\","
          "\"fields\":[{\"name\":\"eventId\",\"type\":\"string\"},{\"name\":\"type\",\"type\":"
          "\"string\"},{\"name\":\"occurredAt\",\"type\":\"long\"},{\"name\":\"source\",\"type\":"
          "\"string\"},{\"name\":\"traceId\",\"type\":[\"null\",\"string\"],\"default\":null},"
          "{\"name\":\"productId\",\"type\":\"long\"},{\"name\":\"productName\",\"type\":"
          "\"string\"},{\"name\":\"quantity\",\"type\":\"int\"},{\"name\":\"threshold\",\"type\":"
          "\"int\"},{\"name\":\"status\",\"type\":\"string\"},{\"name\":\"delta\",\"type\":"
          "\"long\",\"default\":0}]}",
          f);
    fclose(f);
    char err[512];
    oms_events *e = oms_events_new(dir, err, sizeof err);
    if (!e)
        fail_msg("oms_events_new: %s", err);
    for (int t = 0; t < OMS_EV__COUNT; t++)
        assert_int_equal(oms_events_fast_decode(e, (oms_event_type)t),
                         t != OMS_EV_INVENTORY_CHANGED);
    oms_event ev, back;
    load_sample(OMS_EV_INVENTORY_CHANGED, &ev);
    uint8_t buf[1024];
    size_t n;
    assert_int_equal(oms_event_encode(e, &ev, buf, sizeof buf, &n, err, sizeof err), 0);
    assert_int_equal(oms_event_decode(e, buf, n, &back, err, sizeof err), 0);
    assert_null(back.arena); /* the generic path */
    assert_int_equal(back.delta, -3);
    oms_event_clear(&back);
    oms_event_clear(&ev);
    oms_events_free(e);
    unlink(path);
    rmdir(dir);
}

/* Hand-built events the fast writer hands to jansson, or writes itself. */
static void test_fast_frame_corners(void **state)
{
    (void)state;
    oms_event ev;
    load_sample(OMS_EV_ORDER_CREATED, &ev);
    assert_frames_equal(&ev, NULL);
    assert_frames_equal(&ev, "a \"quoted\" \\ position\n");
    ev.total_amount = NAN; /* jansson drops the member */
    assert_frames_equal(&ev, "p");
    ev.total_amount = 1;
    ev.items[0].price = INFINITY; /* jansson drops the item */
    assert_frames_equal(&ev, "p");
    ev.items[0].price = 2;
    char *name = ev.items[0].product_name;
    ev.items[0].product_name = NULL; /* written as "" */
    assert_frames_equal(&ev, "p");
    ev.items[0].product_name = (char *)"bad \xff utf-8"; /* jansson refuses it */
    assert_frames_equal(&ev, "p");
    ev.items[0].product_name = name;
    char *oid = ev.order_id;
    ev.order_id = NULL; /* optional members left out */
    assert_frames_equal(&ev, "p");
    ev.order_id = (char *)"\xc3";
    assert_frames_equal(&ev, "p");
    ev.order_id = oid;
    assert_frames_equal(&ev, "bad position \xc0\x80");
    ev.occurred_at = 0;
    assert_frames_equal(&ev, "p");
    ev.occurred_at = -1; /* before 1970: the slow formatter */
    assert_frames_equal(&ev, "p");
    ev.occurred_at = INT64_C(253402300799999);
    assert_frames_equal(&ev, "p");
    ev.occurred_at = INT64_C(253402300800000); /* year 10000 */
    assert_frames_equal(&ev, "p");
    oms_event_type type = ev.type;
    ev.type = OMS_EV__COUNT; /* unknown type */
    assert_frames_equal(&ev, "p");
    ev.type = type;
    oms_event_clear(&ev);

    load_sample(OMS_EV_USER_NOTIFICATION, &ev);
    static const char *const datas[] = {"{\"a\":1}", "{ \"a\": 1 }", "[1]", "not json",
                                        "{\"a\":1.25}", "{\"a\":\"\\u00e9\"}", "bad \xff", "5"};
    char *keep = ev.data_json;
    for (size_t i = 0; i < OMS_ARRAY_LEN(datas); i++) {
        ev.data_json = (char *)datas[i];
        assert_frames_equal(&ev, "p");
    }
    ev.data_json = keep;
    char *title = ev.title, *message = ev.message;
    ev.title = ev.message = NULL;
    assert_frames_equal(&ev, "p");
    ev.title = title;
    ev.message = message;
    oms_event_clear(&ev);

    memset(&ev, 0, sizeof ev); /* nothing set at all */
    for (int t = 0; t < OMS_EV__COUNT; t++) {
        ev.type = (oms_event_type)t;
        assert_frames_equal(&ev, "p");
    }
    load_sample(OMS_EV_SYSTEM_NOTIFICATION, &ev);
    char *severity = ev.severity, *source = ev.source;
    ev.severity = NULL;
    assert_frames_equal(&ev, "p");
    ev.severity = (char *)"x";
    ev.source = (char *)"\x01\x02\x1f\x7f";
    ev.trace_id = (char *)"";
    assert_frames_equal(&ev, "p");
    ev.severity = severity;
    ev.source = source;
    ev.trace_id = NULL;
    oms_event_clear(&ev);
}

/* ---- the helpers against their references ----------------------------------------------- */

/* Significant digits of a number's text (sign, point, exponent and the
 * zeros before the first and after the last nonzero digit left out). */
static int sig_digits(const char *s)
{
    int n = 0, zeros = 0;
    bool started = false;
    for (; *s && *s != 'e'; s++) {
        if (*s < '0' || *s > '9')
            continue;
        if (*s == '0') {
            if (started)
                zeros++;
            continue;
        }
        n += zeros + 1;
        zeros = 0;
        started = true;
    }
    return n ? n : 1;
}

/* The printed form of d: reads back to d; has no more significant digits
 * than "%.{p}g" for the smallest p that reads back; keeps jansson's
 * notation (exponent form exactly where "%.17g" used it, ".0" on integral
 * values); is what the serializer writes; and the fast frame writer writes
 * the same bytes as the serializer-built reference. */
static void check_real(double d, bool frames)
{
    char a[OMS_JSON_REAL_MAX + 8];
    memset(a, 'X', sizeof a);
    size_t n = oms_json_fmt_real(d, a);
    if (n != strlen(a) || n >= OMS_JSON_REAL_MAX)
        fail_msg("real %a: length %zu for '%s'", d, n, a);
    char *end;
    double back = strtod(a, &end);
    if (*end || memcmp(&back, &d, sizeof d) != 0)
        fail_msg("real %a: '%s' reads back as %a", d, a, back);
    int p = 1;
    char g[64];
    for (; p < 17; p++) {
        snprintf(g, sizeof g, "%.*g", p, d);
        if (strtod(g, NULL) == d)
            break;
    }
    if (sig_digits(a) > p)
        fail_msg("real %a: '%s' is longer than %%.%dg", d, a, p);
    char j17[64];
    snprintf(j17, sizeof j17, "%.17g", d);
    if ((strchr(a, 'e') != NULL) != (strchr(j17, 'e') != NULL) ||
        strchr(a, '+') || (!strchr(a, 'e') && !strchr(a, '.')))
        fail_msg("real %a: '%s' is not in jansson's notation ('%s')", d, a, j17);
    json_t *r = json_real(d);
    char *b = oms_json_dumps(r, JSON_ENCODE_ANY);
    if (!b || strcmp(a, b) != 0)
        fail_msg("real %a: '%s', the serializer writes '%s'", d, a, b ? b : "(null)");
    free(b);
    json_decref(r);
    if (frames) {
        oms_event ev = {0};
        ev.type = OMS_EV_ORDER_CREATED;
        memcpy(ev.event_id, "e", 2);
        ev.order_id = (char *)"o";
        ev.total_amount = d;
        oms_order_item it = {.product_id = 1, .product_name = (char *)"p", .quantity = 1,
                             .price = -d};
        ev.items = &it;
        ev.nitems = 1;
        assert_frames_equal(&ev, NULL);
    }
}

static double bits_double(uint64_t u)
{
    double d;
    memcpy(&d, &u, 8);
    return d;
}

static void test_fmt_real_shortest(void **state)
{
    (void)state;
    static const struct {
        double v;
        const char *text;
    } fixed[] = {
        {755.32, "755.32"},
        {88.94, "88.94"},
        {0.1, "0.1"},
        {0.3, "0.3"},
        {0.1 + 0.2, "0.30000000000000004"},
        {1e21, "1e21"},
        {1e22, "1e22"},
        {5e-324, "5e-324"},
        {1.7976931348623157e308, "1.7976931348623157e308"},
        {2.2250738585072014e-308, "2.2250738585072014e-308"},
        {100.0, "100.0"},
        {0.0, "0.0"},
        {-0.0, "-0.0"},
        {-1.5, "-1.5"},
        {123456789012345680.0, "1.2345678901234568e17"},
        {1e16, "10000000000000000.0"},
        {1e17, "1e17"},
        {9007199254740993.0, "9007199254740992.0"},
        {1e-4, "0.0001"},
        {1e-5, "1e-5"},
        {1.5e-7, "1.5e-7"},
        {99.99, "99.99"},
        {49.995, "49.995"},
        {19.99, "19.99"},
        {1234567.89, "1234567.89"},
        {0.000123, "0.000123"},
        {2.5e-6, "2.5e-6"},
        {1.9073486328125e-06, "1.9073486328125e-6"},
        /* powers of two whose nearest 16-digit rounding lies below, in the
         * narrow half-gap, while the one above still reads back */
        {0x1p60, "1.152921504606847e18"},
        {0x1p122, "5.316911983139664e36"},
        {8.5070591730234616e37, "8.507059173023462e37"},
    };
    for (size_t i = 0; i < OMS_ARRAY_LEN(fixed); i++) {
        char a[OMS_JSON_REAL_MAX];
        oms_json_fmt_real(fixed[i].v, a);
        if (strcmp(a, fixed[i].text) != 0)
            fail_msg("real %a: '%s', expected '%s'", fixed[i].v, a, fixed[i].text);
        check_real(fixed[i].v, true);
    }
    for (int i = 0; i < 300000; i++) {
        double d;
        switch (i % 7) {
        case 0: /* any bit pattern */
            d = bits_double(rnd64());
            break;
        case 1: /* the exact range and a little beyond, every binary exponent alike */
            d = ldexp(1.0 + (double)(rnd64() >> 11) / 9007199254740992.0,
                      -23 + (int)rnd_below(155));
            break;
        case 2: /* money */
            d = (double)(int64_t)rnd_below(10000000000ull) / 100.0;
            break;
        case 3: /* short decimals at any scale */
            d = (double)rnd_below(1000000) * pow(10, (double)rnd_below(60) - 30);
            break;
        case 4: /* integers */
            d = (double)(rnd64() >> rnd_below(64));
            break;
        case 5: /* powers of two and their neighbours (the uneven gap) */
            d = ldexp(1.0, (int)rnd_below(2098) - 1074);
            if (rnd64() & 1)
                d = nextafter(d, rnd64() & 1 ? 0 : INFINITY);
            break;
        default: /* near powers of ten */
            d = nextafter(pow(10, (double)rnd_below(60) - 10), rnd64() & 1 ? 0 : INFINITY);
            break;
        }
        if (!isfinite(d))
            continue;
        if (rnd64() & 1)
            d = -d;
        check_real(d, i % 10 == 0);
    }
}

/* The frame of an order says 755.32 where it used to say 755.32000000000005,
 * both writers alike. */
static void test_frame_numbers_shortest(void **state)
{
    (void)state;
    oms_event ev;
    load_sample(OMS_EV_ORDER_CREATED, &ev);
    ev.total_amount = 755.32;
    ev.items[0].price = 88.94;
    ev.items[1].price = 100.0;
    char *f = oms_event_frame_json(&ev, "oms.orders:0:1", NULL);
    char *g = oms_event_frame_json_generic(&ev, "oms.orders:0:1", NULL);
    assert_non_null(strstr(f, "\"totalAmount\":755.32,"));
    assert_non_null(strstr(f, "\"price\":88.94}"));
    assert_non_null(strstr(f, "\"price\":100.0}"));
    assert_string_equal(f, g);
    free(f);
    free(g);
    oms_event_clear(&ev);
    /* notification data with reals in their shortest form is written as is
     * by the fast writer; any other spelling is rewritten to it */
    load_sample(OMS_EV_USER_NOTIFICATION, &ev);
    free(ev.data_json);
    ev.data_json = strdup("{\"amount\":755.32,\"rate\":0.1,\"n\":[1e21,-0.0]}");
    assert_true(oms_ev_json_is_compact_object(ev.data_json));
    f = oms_event_frame_json(&ev, NULL, NULL);
    assert_non_null(strstr(f, "\"data\":{\"amount\":755.32,\"rate\":0.1,\"n\":[1e21,-0.0]}"));
    free(f);
    assert_frames_equal(&ev, NULL);
    free(ev.data_json);
    ev.data_json = strdup("{\"amount\":755.320,\"rate\":1E-1,\"n\":[1e+21,0.0]}");
    assert_false(oms_ev_json_is_compact_object(ev.data_json));
    f = oms_event_frame_json(&ev, NULL, NULL);
    assert_non_null(strstr(f, "\"data\":{\"amount\":755.32,\"rate\":0.1,\"n\":[1e21,0.0]}"));
    free(f);
    assert_frames_equal(&ev, NULL);
    oms_event_clear(&ev);
}

static void test_fmt_iso8601_matches(void **state)
{
    (void)state;
    static const int64_t fixed[] = {0, 1, 999, 1000, 86399999, 86400000, 951782400000,
                                    951868799999, 4107542399999, 4107542400000,
                                    INT64_C(253402300799999)};
    for (int i = 0; i < 200000 + (int)OMS_ARRAY_LEN(fixed); i++) {
        int64_t ms = i < (int)OMS_ARRAY_LEN(fixed) ? fixed[i]
                                                    : (int64_t)rnd_below(INT64_C(253402300800000));
        char a[32], b[32];
        size_t n = oms_ev_fmt_iso8601_ms(ms, a);
        oms_iso8601_ms(ms, b, sizeof b);
        if (n != strlen(b) || strcmp(a, b) != 0)
            fail_msg("%" PRId64 ": '%s', expected '%s'", ms, a, b);
    }
    /* runs of consecutive milliseconds (the per-second cache), across
     * second, day and year boundaries, interleaved with other times */
    static const int64_t runs[] = {1700000000990, 1703980799990, 951868799990, 0};
    for (size_t r = 0; r < OMS_ARRAY_LEN(runs); r++)
        for (int64_t ms = runs[r]; ms < runs[r] + 25; ms++) {
            char a[32], b[32];
            oms_ev_fmt_iso8601_ms(ms, a);
            oms_iso8601_ms(ms, b, sizeof b);
            assert_string_equal(a, b);
            if (ms % 7 == 0) {
                oms_ev_fmt_iso8601_ms(ms + 86400000, a);
                oms_iso8601_ms(ms + 86400000, b, sizeof b);
                assert_string_equal(a, b);
            }
        }
    static const int64_t slow[] = {-1, -86400001, INT64_C(253402300800000), INT64_MAX / 1000};
    for (size_t i = 0; i < OMS_ARRAY_LEN(slow); i++) {
        char a[32], b[32];
        oms_ev_fmt_iso8601_ms(slow[i], a);
        oms_iso8601_ms(slow[i], b, sizeof b);
        assert_string_equal(a, b);
    }
}

static void check_utf8(const uint8_t *s, size_t n)
{
    size_t a = oms_ev_utf8_check(s, n), b = av_utf8_check(s, n);
    if (a != b)
        fail_msg("UTF-8 check of %zu bytes: %zu, pkg/avro says %zu", n, a, b);
}

static void test_utf8_check_matches_avro(void **state)
{
    (void)state;
    uint8_t s[32];
    for (unsigned a = 0; a < 256; a++) {
        s[0] = (uint8_t)a;
        check_utf8(s, 1);
        for (unsigned b = 0; b < 256; b++) {
            s[1] = (uint8_t)b;
            check_utf8(s, 2);
        }
    }
    for (unsigned a = 0xE0; a <= 0xEF; a++)
        for (unsigned b = 0; b < 256; b++)
            for (unsigned c = 0x70; c < 0xD0; c++) {
                s[0] = (uint8_t)a, s[1] = (uint8_t)b, s[2] = (uint8_t)c;
                check_utf8(s, 3);
            }
    /* 4-byte sequences and mixtures, at every alignment of the ASCII runs */
    static const uint8_t pieces[][4] = {{'a'},        {0xC3, 0xA9},       {0xE2, 0x9C, 0x93},
                                        {0xF0, 0x9F, 0x98, 0x80}, {0xF4, 0x8F, 0xBF, 0xBF},
                                        {0xF4, 0x90, 0x80, 0x80}, {0xED, 0xA0, 0x80},
                                        {0xC0, 0x80}, {0x80},    {0xFF},  {0}};
    static const size_t plen[] = {1, 2, 3, 4, 4, 4, 3, 2, 1, 1, 1};
    for (int i = 0; i < 200000; i++) {
        size_t n = 0;
        while (n < 24) {
            size_t k = rnd_below(OMS_ARRAY_LEN(pieces));
            if (rnd64() & 1)
                k = 0;
            memcpy(s + n, pieces[k], plen[k]);
            n += plen[k];
        }
        if (rnd64() % 4 == 0)
            s[rnd_below(n)] = (uint8_t)rnd64();
        check_utf8(s, rnd_below(n + 1));
    }
}

/* The compact check is sound: whenever it says yes, jansson reads an object
 * and the project's serializer writes back the very same text. */
static void check_compact_sound(const char *text)
{
    if (!oms_ev_json_is_compact_object(text))
        return;
    json_error_t je;
    json_t *j = json_loads(text, JSON_DECODE_ANY, &je);
    if (!j || !json_is_object(j))
        fail_msg("'%s' judged compact but jansson says: %s", text, j ? "not an object" : je.text);
    char *back = oms_json_dumps(j, JSON_COMPACT);
    if (strcmp(back, text) != 0)
        fail_msg("'%s' judged compact but oms_json_dumps writes '%s'", text, back);
    free(back);
    json_decref(j);
}

static json_t *random_json(int depth)
{
    switch (rnd_below(depth > 3 ? 5 : 7)) {
    case 0: return json_integer((json_int_t)(rnd64() >> rnd_below(64)) * (rnd64() & 1 ? 1 : -1));
    case 1: return json_string((const char *[]){"", "x", "a\"b", "c\\d", "\xc3\xa9", "t\n",
                                                 "/", "\x7f", "\x01", "k"}[rnd_below(10)]);
    case 2: return rnd64() & 1 ? json_true() : json_null();
    case 3:
        return json_real(rnd64() & 1 ? (double)rnd_below(1000) / 8
                                     : (double)(int64_t)(rnd64() % 2000001 - 1000000) / 100);
    case 4: return json_false();
    case 5: {
        json_t *a = json_array();
        for (size_t i = rnd_below(4); i > 0; i--)
            json_array_append_new(a, random_json(depth + 1));
        return a;
    }
    default: {
        json_t *o = json_object();
        for (size_t i = rnd_below(5); i > 0; i--) {
            char k[8];
            snprintf(k, sizeof k, "%c%s", (char)('a' + rnd_below(6)), rnd64() & 1 ? "\"" : "");
            json_object_set_new(o, k, random_json(depth + 1));
        }
        return o;
    }
    }
}

static void test_json_compact_check(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        bool compact;
    } cases[] = {
        {"{}", true},
        {"{\"a\":1}", true},
        {"{\"a\":[1,-2,0,true,false,null,\"s\",{},[]]}", true},
        {"{\"a\":\"q\\\"b\\\\c\"}", true},
        {"{\"\xc3\xa9\":\"\xe2\x9c\x93\"}", true},
        {"{\"n\":123456789012345678}", true},
        {"{\"n\":1234567890123456789}", false},
        {"{\"a\":-0}", false},
        {"{\"a\":01}", false},
        {"{\"a\":1.0}", true},
        {"{\"a\":1}", true},
        {"{\"a\":755.32}", true},
        {"{\"a\":[0.30000000000000004,-0.0,1e21,5e-324,1.5e-7,0.0001]}", true},
        {"{\"a\":1e5}", false},
        {"{\"a\":1.}", false},
        {"{\"a\":755.320}", false},
        {"{\"a\":755.32000000000005}", false},
        {"{\"a\":0.1e1}", false},
        {"{\"a\":1E21}", false},
        {"{\"a\":1e+21}", false},
        {"{\"a\":1e021}", false},
        {"{\"a\":1e400}", false},
        {"{\"a\":1e-400}", false},
        {"{\"a\":-0.00}", false},
        {"{\"a\":1.5-7}", false},
        {"{\"a\":1.5e-7-}", false},
        {"{\"a\":\"\\n\"}", false},
        {"{\"a\":\"\\/\"}", false},
        {"{\"a\":\"\\u0041\"}", false},
        {"{\"a\":\"\x01\"}", false},
        {"{\"a\":\"\xff\"}", false},
        {"{\"a\":1,\"a\":2}", false},
        {"{\"a\":1,\"b\":{\"a\":2}}", true},
        {"{ \"a\":1}", false},
        {"{\"a\" :1}", false},
        {"{\"a\":1}\n", false},
        {"[1]", false},
        {"\"s\"", false},
        {"", false},
        {"{", false},
        {"{\"a\":tru}", false},
        {"{\"a\":truex}", false},
        {"{\"a\":1,}", false},
        {"{\"a\":[1,]}", false},
        {"{\"a\"}", false},
    };
    for (size_t i = 0; i < OMS_ARRAY_LEN(cases); i++) {
        if (oms_ev_json_is_compact_object(cases[i].text) != cases[i].compact)
            fail_msg("'%s': expected %s", cases[i].text, cases[i].compact ? "compact" : "not");
        check_compact_sound(cases[i].text);
    }
    assert_false(oms_ev_json_is_compact_object(NULL));
    /* what the serializer writes compactly is recognized unless it has
     * escapes; and mutations of it never fool the check */
    int recognized = 0;
    for (int i = 0; i < 20000; i++) {
        json_t *o = json_object();
        for (size_t k = rnd_below(5); k > 0; k--) {
            char key[4] = {(char)('a' + rnd_below(8)), 0};
            json_object_set_new(o, key, random_json(1));
        }
        char *text = oms_json_dumps(o, JSON_COMPACT);
        check_compact_sound(text);
        recognized += oms_ev_json_is_compact_object(text);
        size_t n = strlen(text);
        for (int m = 0; m < 4 && n > 0; m++) {
            char *mut = strdup(text);
            mut[rnd_below(n)] = "{}[]\",:\\ 0-1.etfnx\xc3"[rnd_below(20)];
            check_compact_sound(mut);
            free(mut);
        }
        free(text);
        json_decref(o);
    }
    assert_true(recognized > 2000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hand_encoder_matches_generic),
        cmocka_unit_test(test_round_trip_every_type),
        cmocka_unit_test(test_encode_small_buffer),
        cmocka_unit_test(test_decode_truncated_and_corrupt),
        cmocka_unit_test(test_validation_errors),
        cmocka_unit_test(test_realtime_frame),
        cmocka_unit_test(test_types_and_keys),
        cmocka_unit_test(test_sim_deterministic),
        cmocka_unit_test(test_sim_coherent),
        cmocka_unit_test(test_common_time_and_uuid),
        cmocka_unit_test(test_fast_decode_enabled),
        cmocka_unit_test(test_fast_decode_matches_generic),
        cmocka_unit_test(test_fast_decode_truncations),
        cmocka_unit_test(test_fast_decode_mutations),
        cmocka_unit_test(test_fast_decode_strings),
        cmocka_unit_test(test_fast_decode_envelope),
        cmocka_unit_test(test_fast_decode_numbers),
        cmocka_unit_test(test_fast_decode_off_with_newer_schema),
        cmocka_unit_test(test_fast_frame_corners),
        cmocka_unit_test(test_fmt_real_shortest),
        cmocka_unit_test(test_frame_numbers_shortest),
        cmocka_unit_test(test_fmt_iso8601_matches),
        cmocka_unit_test(test_utf8_check_matches_avro),
        cmocka_unit_test(test_json_compact_check),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
