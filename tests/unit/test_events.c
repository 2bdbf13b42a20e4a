/* test_events.c — pkg/events (types, JSON shapes, codec), pkg/sim and the
 * helpers of pkg/common. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "events/events.h"
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
    bad[0] = 0x00;
    assert_int_equal(oms_event_decode(codec, bad, n, &out, err, sizeof err), OMS_EMAGIC);
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
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
