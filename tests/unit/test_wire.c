/* test_wire.c — pkg/events' wire formats (issue #17): telling single-object,
 * Confluent and JSON records apart, the Confluent decoder with registry
 * writers (the current schema, one with an added and one with a removed
 * optional field, JSON schemas, unusable ones), and strict JSON records.
 * The registry is stood in for by a lookup table here; pkg/registry itself
 * is tested in test_registry.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "avro/embedded.h"
#include "events/events.h"
#include "json/json.h"

static oms_events *codec;

/* the lookup's table: id -> writer (NULL: unknown), plus an "unavailable" id */
#define NIDS 8
static oms_events_writer *writers[NIDS];
static const uint32_t ID_DOWN = 99;
static int lookups;

static int lookup(void *ctx, uint32_t id, const oms_events_writer **out, char *errbuf,
                  size_t errlen)
{
    (void)ctx;
    lookups++;
    if (id == ID_DOWN) {
        oms_errf(errbuf, errlen, "registry down");
        return OMS_EAGAIN;
    }
    if (id >= NIDS || !writers[id]) {
        oms_errf(errbuf, errlen, "unknown to the schema registry");
        return OMS_ENOTFOUND;
    }
    *out = writers[id];
    return OMS_OK;
}

static const char *embedded(const char *file)
{
    for (const oms_embedded_schema *es = oms_embedded_schemas; es->file; es++)
        if (strcmp(es->file, file) == 0)
            return es->text;
    return NULL;
}

/* OrderStatusChanged with one more optional field (2) or without "message" (3) */
static char *osc_variant(int v)
{
    json_t *j = json_loads(embedded("order_status_changed.v1.avsc"), 0, NULL);
    json_t *fields = json_object_get(j, "fields");
    if (v == 2) {
        json_array_append_new(fields, json_pack("{s:s,s:[s,s],s:n}", "name", "channel", "type",
                                                "null", "string", "default"));
    } else {
        for (size_t i = 0; i < json_array_size(fields); i++)
            if (strcmp(json_string_value(json_object_get(json_array_get(fields, i), "name")),
                       "message") == 0)
                json_array_remove(fields, i);
    }
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return s;
}

static int setup(void **state)
{
    (void)state;
    char err[512];
    codec = oms_events_new(NULL, err, sizeof err);
    if (!codec)
        return -1;
    writers[1] = oms_events_writer_new(codec, embedded("order_status_changed.v1.avsc"), NULL);
    char *v2 = osc_variant(2), *v3 = osc_variant(3);
    writers[2] = oms_events_writer_new(codec, v2, "AVRO");
    writers[3] = oms_events_writer_new(codec, v3, "AVRO");
    free(v2);
    free(v3);
    writers[4] = oms_events_writer_new(codec, "{\"type\":\"object\"}", "JSON");
    writers[5] = oms_events_writer_new(codec, "{\"type\":\"record\",\"name\":\"x.Y\",\"fields\":[]}",
                                       NULL);
    writers[6] = oms_events_writer_new(codec, "syntax error", "PROTOBUF");
    writers[7] = oms_events_writer_new(codec, embedded("inventory_changed.v1.avsc"), NULL);
    oms_events_set_lookup(codec, lookup, NULL, NULL);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    for (int i = 0; i < NIDS; i++)
        oms_events_writer_free(writers[i]);
    oms_events_free(codec);
    return 0;
}

static void status_event(oms_event *ev)
{
    memset(ev, 0, sizeof *ev);
    ev->type = OMS_EV_ORDER_STATUS_CHANGED;
    strcpy(ev->event_id, "01890a5d-ac96-774b-bcce-b302099a8057");
    ev->occurred_at = 1700000000123;
    ev->source = "orders";
    ev->order_id = "o-1";
    ev->alias_id = "A-1";
    ev->user_id = 7;
    ev->status = "shipped";
    ev->previous_status = "confirmed";
    ev->message = "on its way";
}

static void assert_same(const oms_event *a, const oms_event *b)
{
    json_t *ja = oms_event_to_json(a), *jb = oms_event_to_json(b);
    if (!json_equal(ja, jb)) {
        char *sa = json_dumps(ja, JSON_SORT_KEYS), *sb = json_dumps(jb, JSON_SORT_KEYS);
        fail_msg("events differ:\n  %s\n  %s", sa, sb);
    }
    json_decref(ja);
    json_decref(jb);
}

static void test_format_detection(void **state)
{
    (void)state;
    const uint8_t soe[] = {0xC3, 0x01, 1, 2}, conf[] = {0, 0, 0, 0, 1}, js[] = " \n{}",
                  bad[] = {0xC3, 0x02}, other[] = "[1]";
    assert_int_equal(oms_event_wire_format(soe, sizeof soe), OMS_WIRE_SOE);
    assert_int_equal(oms_event_wire_format(conf, sizeof conf), OMS_WIRE_CONFLUENT);
    assert_int_equal(oms_event_wire_format(js, 3), OMS_WIRE_JSON);
    assert_int_equal(oms_event_wire_format(bad, sizeof bad), OMS_WIRE_UNKNOWN);
    assert_int_equal(oms_event_wire_format(other, 3), OMS_WIRE_UNKNOWN);
    assert_int_equal(oms_event_wire_format(NULL, 0), OMS_WIRE_UNKNOWN);
    oms_wire_format f;
    assert_int_equal(oms_wire_format_parse("Confluent", &f), OMS_OK);
    assert_int_equal(f, OMS_WIRE_CONFLUENT);
    assert_int_equal(oms_wire_format_parse("protobuf", &f), OMS_EINVAL);
    assert_string_equal(oms_wire_format_name(OMS_WIRE_JSON), "json");
}

/* The current schema (fast reader) gives what single-object gives. */
static void test_confluent_round_trip(void **state)
{
    (void)state;
    oms_event ev, a, b;
    status_event(&ev);
    uint8_t soe[1024], conf[1024];
    size_t ns = 0, nc = 0;
    char err[512] = "";
    assert_int_equal(oms_event_encode(codec, &ev, soe, sizeof soe, &ns, err, sizeof err), 0);
    assert_int_equal(
        oms_event_encode_confluent(codec, &ev, 1, conf, sizeof conf, &nc, err, sizeof err), 0);
    assert_int_equal(nc, ns - 5);
    assert_int_equal(conf[0], 0);
    assert_int_equal(conf[4], 1);
    assert_memory_equal(conf + 5, soe + 10, nc - 5);
    assert_int_equal(oms_event_decode(codec, soe, ns, &a, err, sizeof err), 0);
    int rc = oms_event_decode(codec, conf, nc, &b, err, sizeof err);
    if (rc)
        fail_msg("decode: %s", err);
    assert_same(&a, &b);
    assert_same(&ev, &b);
    oms_event_clear(&a);
    oms_event_clear(&b);
    /* too small a buffer */
    assert_int_equal(oms_event_encode_confluent(codec, &ev, 1, conf, 20, &nc, err, sizeof err),
                     OMS_ERANGE);
    /* the dispatcher */
    assert_int_equal(oms_event_encode_wire(codec, OMS_WIRE_CONFLUENT, NULL, &ev, conf,
                                           sizeof conf, &nc, err, sizeof err),
                     OMS_EINVAL);
}

/* Writers with an added and a removed optional field resolve to the reader. */
static void test_confluent_resolution(void **state)
{
    (void)state;
    assert_null(oms_events_writer_error(writers[2]));
    assert_null(oms_events_writer_error(writers[3]));
    oms_event ev, back;
    status_event(&ev);
    for (int v = 2; v <= 3; v++) {
        /* write the body with pkg/avro's generic encoder and the variant schema */
        char *text = osc_variant(v);
        char err[512] = "";
        oms_avro_schema *s = oms_avro_schema_parse(text, err, sizeof err);
        assert_non_null(s);
        json_t *j = oms_event_to_json(&ev);
        json_object_set_new(j, "traceId", json_null());
        if (v == 2)
            json_object_set_new(j, "channel", json_string("web"));
        else
            json_object_del(j, "message");
        uint8_t buf[1024];
        size_t n = 0;
        buf[0] = 0;
        buf[1] = buf[2] = buf[3] = 0;
        buf[4] = (uint8_t)v;
        int rc = oms_avro_encode_json(s, j, buf + 5, sizeof buf - 5, &n, err, sizeof err);
        if (rc)
            fail_msg("encode v%d: %s", v, err);
        rc = oms_event_decode(codec, buf, n + 5, &back, err, sizeof err);
        if (rc)
            fail_msg("decode v%d: %s", v, err);
        assert_string_equal(back.status, "shipped");
        assert_string_equal(back.order_id, "o-1");
        if (v == 2)
            assert_string_equal(back.message, "on its way");
        else
            assert_null(back.message); /* the reader's default */
        /* a body cut short: the error names the id and the field */
        oms_event_clear(&back);
        assert_int_not_equal(oms_event_decode(codec, buf, n, &back, err, sizeof err), 0);
        char want[32];
        snprintf(want, sizeof want, "schema id %d: ", v);
        assert_non_null(strstr(err, want));
        json_decref(j);
        oms_avro_schema_free(s);
        free(text);
    }
}

static void test_confluent_errors(void **state)
{
    (void)state;
    oms_event ev;
    char err[512];
    const uint8_t short_hdr[] = {0, 0, 1};
    assert_int_equal(oms_event_decode(codec, short_hdr, sizeof short_hdr, &ev, err, sizeof err),
                     OMS_ETRUNC);
    uint8_t rec[] = {0, 0, 0, 0, 0, 2, 'x'};
    /* the registry cannot be asked: not final */
    rec[4] = ID_DOWN;
    assert_int_equal(oms_event_decode(codec, rec, sizeof rec, &ev, err, sizeof err), OMS_EAGAIN);
    assert_non_null(strstr(err, "schema id 99: registry down"));
    /* unknown id */
    rec[4] = 0;
    assert_int_equal(oms_event_decode(codec, rec, sizeof rec, &ev, err, sizeof err),
                     OMS_ENOTFOUND);
    assert_non_null(strstr(err, "schema id 0: unknown"));
    /* not an oms event; an unsupported schema type */
    rec[4] = 5;
    assert_int_equal(oms_event_decode(codec, rec, sizeof rec, &ev, err, sizeof err), OMS_ESCHEMA);
    assert_non_null(strstr(err, "'x.Y' is not an oms event"));
    rec[4] = 6;
    assert_int_equal(oms_event_decode(codec, rec, sizeof rec, &ev, err, sizeof err), OMS_ESCHEMA);
    assert_non_null(strstr(err, "PROTOBUF is not supported"));
    /* a schema of another type than the body: the body does not match */
    uint8_t conf[1024];
    size_t n = 0;
    oms_event se;
    status_event(&se);
    assert_int_equal(
        oms_event_encode_confluent(codec, &se, 7, conf, sizeof conf, &n, err, sizeof err), 0);
    assert_int_not_equal(oms_event_decode(codec, conf, n, &ev, err, sizeof err), 0);
    assert_non_null(strstr(err, "schema id 7: "));
    /* an incompatible writer: the reason comes with the record */
    oms_events_writer *w = oms_events_writer_new(
        codec,
        "{\"type\":\"record\",\"name\":\"OrderStatusChanged\",\"namespace\":\"oms.events\","
        "\"fields\":[{\"name\":\"orderId\",\"type\":\"long\"}]}",
        NULL);
    assert_non_null(oms_events_writer_error(w));
    assert_non_null(strstr(oms_events_writer_error(w), "cannot be resolved"));
    oms_events_writer_free(w);
}

static void test_json_records(void **state)
{
    (void)state;
    oms_event ev, back;
    status_event(&ev);
    uint8_t buf[2048];
    size_t n = 0;
    char err[512] = "";
    assert_int_equal(oms_event_encode_json_record(&ev, buf, sizeof buf, &n, err, sizeof err), 0);
    assert_int_equal(oms_event_wire_format(buf, n), OMS_WIRE_JSON);
    int rc = oms_event_decode(codec, buf, n, &back, err, sizeof err);
    if (rc)
        fail_msg("decode: %s", err);
    assert_same(&ev, &back);
    oms_event_clear(&back);
    /* JSON in the Confluent framing (a JSON schema in the registry) */
    uint8_t conf[2048] = {0, 0, 0, 0, 4};
    memcpy(conf + 5, buf, n);
    rc = oms_event_decode(codec, conf, n + 5, &back, err, sizeof err);
    if (rc)
        fail_msg("decode json in confluent framing: %s", err);
    assert_same(&ev, &back);
    oms_event_clear(&back);

    static const struct {
        const char *json;
        int rc;
        const char *msg; /* in the error, NULL when rc == 0 */
    } cases[] = {
        /* RFC 3339 occurredAt, and ids as strings of digits */
        {"{\"eventId\":\"01890a5d-ac96-774b-bcce-b302099a8057\",\"type\":\"InventoryChanged\","
         "\"occurredAt\":\"2023-11-14T22:13:20.123Z\",\"source\":\"s\",\"productId\":5,"
         "\"productName\":\"P\",\"quantity\":1,\"threshold\":2,\"status\":\"low_stock\"}",
         0, NULL},
        {"{\"eventId\":\"01890a5d-ac96-774b-bcce-b302099a8057\",\"type\":\"InventoryChanged\","
         "\"occurredAt\":1,\"source\":\"s\",\"productId\":5,\"productName\":\"P\",\"quantity\":1,"
         "\"threshold\":2,\"status\":\"low_stock\",\"colour\":\"red\"}",
         OMS_EINVAL, "colour: unknown field"},
        {"{\"type\":\"InventoryChanged\",\"occurredAt\":1,\"source\":\"s\",\"productId\":5,"
         "\"productName\":\"P\",\"quantity\":1,\"threshold\":2,\"status\":\"low_stock\"}",
         OMS_EINVAL, "eventId: required"},
        {"{\"eventId\":\"01890a5d-ac96-774b-bcce-b302099a8057\",\"type\":\"InventoryChanged\","
         "\"source\":\"s\",\"productId\":5,\"productName\":\"P\",\"quantity\":1,\"threshold\":2,"
         "\"status\":\"low_stock\"}",
         OMS_EINVAL, "occurredAt: required"},
        {"{\"eventId\":\"01890a5d-ac96-774b-bcce-b302099a8057\",\"type\":\"InventoryChanged\","
         "\"occurredAt\":1,\"source\":\"s\",\"productName\":\"P\",\"quantity\":1,"
         "\"threshold\":2,\"status\":\"low_stock\"}",
         OMS_EINVAL, "productId: required"},
        {"{\"eventId\":\"01890a5d-ac96-774b-bcce-b302099a8057\",\"type\":\"InventoryChanged\","
         "\"timestamp\":1,\"occurredAt\":1,\"source\":\"s\",\"productId\":5,\"productName\":\"P\","
         "\"quantity\":1,\"threshold\":2,\"status\":\"low_stock\"}",
         OMS_EINVAL, "timestamp: unknown field"},
        {"{\"eventId\":\"x\",\"occurredAt\":1,\"source\":\"s\"}", OMS_EINVAL, "type: required"},
        {"{\"type\":\"Refund\"}", OMS_EINVAL, "unknown event type 'Refund'"},
        {"{\"type\":\"InventoryChanged\",\"type\":\"InventoryChanged\"}", OMS_EINVAL,
         "duplicate"},
        {"{\"type\":", OMS_EINVAL, "json record:"},
        {"{\"eventId\":\"01890a5d-ac96-774b-bcce-b302099a8057\",\"type\":\"InventoryChanged\","
         "\"occurredAt\":\"yesterday\",\"source\":\"s\",\"productId\":5,\"productName\":\"P\","
         "\"quantity\":1,\"threshold\":2,\"status\":\"low_stock\"}",
         OMS_EINVAL, "occurredAt: must be"},
        {"{\"eventId\":\"01890a5d-ac96-774b-bcce-b302099a8057\",\"type\":\"InventoryChanged\","
         "\"occurredAt\":1,\"source\":\"s\",\"productId\":5,\"productName\":\"P\",\"quantity\":1,"
         "\"threshold\":2,\"status\":\"sold\"}",
         OMS_EINVAL, "status: must be one of"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        err[0] = '\0';
        rc = oms_event_decode(codec, (const uint8_t *)cases[i].json, strlen(cases[i].json), &back,
                              err, sizeof err);
        if (rc != cases[i].rc || (cases[i].msg && !strstr(err, cases[i].msg)))
            fail_msg("case %zu: rc %d (want %d), error '%s' (want '%s')", i, rc, cases[i].rc, err,
                     cases[i].msg ? cases[i].msg : "");
        if (rc == 0) {
            assert_int_equal(back.occurred_at, 1700000000123);
            oms_event_clear(&back);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format_detection),
        cmocka_unit_test(test_confluent_round_trip),
        cmocka_unit_test(test_confluent_resolution),
        cmocka_unit_test(test_confluent_errors),
        cmocka_unit_test(test_json_records),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
