/* fuzz_avro.c — the Avro single-object decoder: pkg/events oms_event_decode
 * (the hand-written fast reader where it applies) held to
 * oms_event_decode_generic (pkg/avro store, resolution, jansson, from_json,
 * validate): same return code, same message, same event for every input.
 * An accepted event must also give byte-identical frames from the fast
 * JSON writer and the jansson one, and encode and decode back to itself.
 * The Apache Avro test schema (tests/data/avro/messageV1) goes through
 * oms_avro_store_decode as well, and what it reads must encode and read
 * back as the same value.
 *
 * Input: byte 0 picks the header: 0..N-1 the single-object header of the
 * N-th schema of the event store (then the rest is the body), 0xFE the
 * test schema's header (the rest through oms_avro_store_decode), other
 * values: the rest is the whole record (header included). */
#include <math.h>
#include <string.h>

#include "avro/avro.h"
#include "events/events.h"
#include "fuzz.h"

static oms_events *g_ev;
static oms_avro_store *g_test_store;
static uint64_t g_test_fp;

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = calloc(1, 1 << 16);
    size_t n = fread(buf, 1, (1 << 16) - 1, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (g_ev)
        return 0;
    char err[512];
    g_ev = oms_events_new(NULL, err, sizeof err);
    if (!g_ev) {
        fprintf(stderr, "fuzz_avro: oms_events_new: %s\n", err);
        abort();
    }
    /* run from the repository root (make fuzz, the tests) */
    char *text = read_text("tests/data/avro/messageV1/test_schema.avsc");
    if (text) {
        g_test_store = oms_avro_store_new();
        oms_avro_schema *s = oms_avro_schema_parse(text, err, sizeof err);
        if (!s || oms_avro_store_add(g_test_store, text, "test_schema.avsc", err, sizeof err)) {
            fprintf(stderr, "fuzz_avro: test schema: %s\n", err);
            abort();
        }
        g_test_fp = oms_avro_schema_fingerprint(s);
        oms_avro_schema_free(s);
        free(text);
    }
    return 0;
}

static bool str_eq(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static bool dbl_eq(double a, double b)
{
    return memcmp(&a, &b, sizeof a) == 0 || (a == b);
}

/* Field by field; returns the first field that differs or NULL. */
static const char *event_diff(const oms_event *a, const oms_event *b)
{
#define S(f) if (!str_eq(a->f, b->f)) return #f
#define I(f) if (a->f != b->f) return #f
    I(type);
    if (strcmp(a->event_id, b->event_id) != 0)
        return "event_id";
    I(occurred_at);
    S(source);
    S(trace_id);
    S(order_id);
    S(alias_id);
    I(user_id);
    S(status);
    S(previous_status);
    if (!dbl_eq(a->total_amount, b->total_amount))
        return "total_amount";
    I(nitems);
    for (size_t i = 0; i < a->nitems; i++) {
        if (a->items[i].product_id != b->items[i].product_id ||
            !str_eq(a->items[i].product_name, b->items[i].product_name) ||
            a->items[i].quantity != b->items[i].quantity ||
            !dbl_eq(a->items[i].price, b->items[i].price))
            return "items";
    }
    S(message);
    I(product_id);
    S(product_name);
    I(quantity);
    I(threshold);
    I(delta);
    S(title);
    S(severity);
    S(data_json);
    return NULL;
#undef S
#undef I
}

static void check_event(const oms_event *ev)
{
    /* the fast JSON writer against jansson's */
    size_t fl = 0, gl = 0;
    char *fast = oms_event_frame_json(ev, "oms.orders:3:42", &fl);
    char *gen = oms_event_frame_json_generic(ev, "oms.orders:3:42", &gl);
    FUZZ_CHECK(fast && gen, "a frame could not be written");
    FUZZ_CHECK(fl == gl && memcmp(fast, gen, fl) == 0, "frames differ:\n  fast    %s\n  generic %s",
               fast, gen);
    free(fast);
    free(gen);
    /* encode and decode back */
    uint8_t *buf = malloc(1 << 17);
    size_t n = 0;
    char err[512];
    int rc = oms_event_encode(g_ev, ev, buf, 1 << 17, &n, err, sizeof err);
    FUZZ_CHECK(rc == OMS_OK, "a decoded event does not encode: %s", err);
    oms_event back;
    rc = oms_event_decode(g_ev, buf, n, &back, err, sizeof err);
    FUZZ_CHECK(rc == OMS_OK, "a re-encoded event does not decode: %s", err);
    const char *d = event_diff(ev, &back);
    FUZZ_CHECK(!d, "round trip changed %s", d);
    oms_event_clear(&back);
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!g_ev)
        LLVMFuzzerInitialize(NULL, NULL);
    if (size < 1)
        return 0;
    const oms_avro_store *st = oms_events_store(g_ev);
    size_t nschemas = oms_avro_store_count(st);
    uint8_t *rec = malloc(size + OMS_AVRO_SOE_HEADER_LEN);
    size_t len;
    bool test_schema = data[0] == 0xFE && g_test_store;
    if (data[0] < nschemas || test_schema) {
        uint64_t fp = test_schema ? g_test_fp
                                  : oms_avro_schema_fingerprint(oms_avro_store_at(st, data[0]));
        oms_avro_soe_header(fp, rec);
        memcpy(rec + OMS_AVRO_SOE_HEADER_LEN, data + 1, size - 1);
        len = OMS_AVRO_SOE_HEADER_LEN + size - 1;
    } else {
        memcpy(rec, data + 1, size - 1);
        len = size - 1;
    }
    /* exact-size copy so reads past the end are caught */
    uint8_t *exact = malloc(len ? len : 1);
    memcpy(exact, rec, len);
    free(rec);

    char err[512];
    if (test_schema) {
        json_t *out = NULL;
        const oms_avro_schema *w = NULL;
        int rc = oms_avro_store_decode(g_test_store, exact, len, &out, &w, err, sizeof err);
        FUZZ_CHECK((rc == OMS_OK) == (out != NULL), "rc %d with out %p", rc, (void *)out);
        if (out) {
            /* what was read encodes, and reads back as the same value (the
             * bytes may differ: Avro allows non-minimal varints and any
             * split of arrays and maps into blocks) */
            uint8_t *buf = malloc(2 * len + 64);
            size_t n = 0;
            int erc = oms_avro_encode_json(w, out, buf, 2 * len + 64, &n, err, sizeof err);
            FUZZ_CHECK(erc == OMS_OK, "decoded value does not encode: %s", err);
            json_t *again = NULL;
            erc = oms_avro_decode_json(w, w, buf, n, &again, err, sizeof err);
            FUZZ_CHECK(erc == OMS_OK, "re-encoded value does not decode: %s", err);
            FUZZ_CHECK(json_equal(out, again), "the value changed in a round trip");
            json_decref(again);
            free(buf);
            json_decref(out);
        }
        free(exact);
        return 0;
    }

    oms_event a, b;
    char erra[512], errb[512];
    erra[0] = errb[0] = '\0';
    if (len > 0 && exact[0] != OMS_AVRO_SOE_MAGIC0) {
        /* the Confluent and JSON formats: fuzz_wire holds them to their
         * references; the generic path here knows single-object only */
        if (oms_event_decode(g_ev, exact, len, &a, erra, sizeof erra) == OMS_OK)
            oms_event_clear(&a);
        free(exact);
        return 0;
    }
    int ra = oms_event_decode(g_ev, exact, len, &a, erra, sizeof erra);
    int rb = oms_event_decode_generic(g_ev, exact, len, &b, errb, sizeof errb);
    FUZZ_CHECK(ra == rb, "fast path rc %d (%s), generic rc %d (%s)", ra, ra ? erra : "",
               rb, rb ? errb : "");
    if (ra != OMS_OK) {
        FUZZ_CHECK(strcmp(erra, errb) == 0, "messages differ:\n  fast    %s\n  generic %s", erra,
                   errb);
    } else {
        const char *d = event_diff(&a, &b);
        FUZZ_CHECK(!d, "fast and generic events differ in %s", d);
        check_event(&a);
    }
    oms_event_clear(&a);
    oms_event_clear(&b);
    free(exact);
    return 0;
}
