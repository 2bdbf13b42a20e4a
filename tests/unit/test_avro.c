/* test_avro.c — unit tests for pkg/avro: canonical form and fingerprints
 * against Apache Avro's vectors, single-object encoding, the binary codec,
 * schema resolution, hostile input, the schema store, and a cross-check
 * against avro-c (libavro 1.11). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <avro.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "avro/avro.h"

#define ERRLEN 512

/* ---- helpers ---------------------------------------------------------------------------- */

static const char *testdata_dir(void)
{
    const char *d = getenv("OMS_TESTDATA");
    return d && *d ? d : "tests/data";
}

static char *slurp(const char *path, size_t *len_out)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s: %s (run from the project root or set OMS_TESTDATA)", path,
                 strerror(errno));
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    assert_non_null(buf);
    size_t k;
    while ((k = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += k;
        if (cap - len - 1 == 0) {
            cap *= 2;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
    }
    fclose(f);
    buf[len] = '\0';
    if (len_out)
        *len_out = len;
    return buf;
}

static oms_avro_schema *must_parse(const char *json)
{
    char err[ERRLEN] = "";
    oms_avro_schema *s = oms_avro_schema_parse(json, err, sizeof err);
    if (!s)
        fail_msg("schema parse failed: %s\nschema: %s", err, json);
    return s;
}

static json_t *must_json(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
    if (!j)
        fail_msg("bad test JSON %s: %s", text, e.text);
    return j;
}

static void assert_json_eq(const json_t *got, const char *expected)
{
    json_t *exp = must_json(expected);
    if (!json_equal((json_t *)got, exp)) {
        char *g = json_dumps(got, JSON_ENCODE_ANY | JSON_COMPACT);
        print_error("expected %s\n     got %s\n", expected, g ? g : "(null)");
        free(g);
        json_decref(exp);
        fail();
    }
    json_decref(exp);
}

/* Encode value with schema; returns the byte count. */
static size_t must_encode(const oms_avro_schema *s, const json_t *v, uint8_t *buf, size_t cap)
{
    char err[ERRLEN] = "";
    size_t n = 0;
    int rc = oms_avro_encode_json(s, v, buf, cap, &n, err, sizeof err);
    if (rc)
        fail_msg("encode failed (%d): %s", rc, err);
    return n;
}

static json_t *must_decode(const oms_avro_schema *w, const oms_avro_schema *r, const uint8_t *buf,
                           size_t len)
{
    char err[ERRLEN] = "";
    json_t *out = NULL;
    int rc = oms_avro_decode_json(w, r, buf, len, &out, err, sizeof err);
    if (rc)
        fail_msg("decode failed (%d): %s", rc, err);
    assert_non_null(out);
    return out;
}

/* Decode expecting failure with code `code`; errbuf must be non-empty and,
 * when `needle` is given, contain it. */
static void expect_decode_error(const oms_avro_schema *w, const oms_avro_schema *r,
                                const uint8_t *buf, size_t len, int code, const char *needle)
{
    char err[ERRLEN] = "";
    json_t *out = (json_t *)1;
    int rc = oms_avro_decode_json(w, r, buf, len, &out, err, sizeof err);
    if (rc == 0) {
        char *g = json_dumps(out, JSON_ENCODE_ANY);
        print_error("unexpected success: %s\n", g);
        free(g);
        json_decref(out);
        fail();
    }
    assert_null(out);
    assert_true(err[0] != '\0');
    if (code && rc != code)
        fail_msg("expected code %d, got %d: %s", code, rc, err);
    if (needle && !strstr(err, needle))
        fail_msg("error '%s' does not contain '%s'", err, needle);
}

/* value -> bytes -> value must give the same JSON, and re-encoding the
 * decoded value the same bytes. */
static void roundtrip(const char *schema_json, const char *value_json)
{
    oms_avro_schema *s = must_parse(schema_json);
    json_t *v = must_json(value_json);
    uint8_t buf[8192], buf2[8192];
    size_t n = must_encode(s, v, buf, sizeof buf);
    json_t *d = must_decode(s, s, buf, n);
    assert_json_eq(d, value_json);
    size_t n2 = must_encode(s, d, buf2, sizeof buf2);
    assert_int_equal(n, n2);
    assert_memory_equal(buf, buf2, n);
    /* NULL reader means "same as writer" */
    json_t *d2 = must_decode(s, NULL, buf, n);
    assert_true(json_equal(d, d2));
    json_decref(d2);
    json_decref(d);
    json_decref(v);
    oms_avro_schema_free(s);
}

/* ---- 1. Parsing Canonical Form and fingerprints (Apache Avro vectors) -------------------- */

typedef struct {
    char *input, *canonical, *fingerprint;
} vector_case;

static void check_vector(const vector_case *vc, int number)
{
    assert_non_null(vc->input);
    if (!vc->canonical)
        fail_msg("case %d has no canonical form", number);
    char err[ERRLEN] = "";
    oms_avro_schema *s = oms_avro_schema_parse(vc->input, err, sizeof err);
    if (!s)
        fail_msg("case %03d: parse failed: %s\ninput: %s", number, err, vc->input);
    if (strcmp(oms_avro_schema_canonical(s), vc->canonical) != 0)
        fail_msg("case %03d: canonical form\n  expected %s\n       got %s", number, vc->canonical,
                 oms_avro_schema_canonical(s));
    /* the fingerprint is of the canonical form's bytes */
    assert_true(oms_avro_schema_fingerprint(s) ==
                oms_avro_crc64(vc->canonical, strlen(vc->canonical)));
    if (vc->fingerprint) {
        errno = 0;
        char *end;
        long long fp = strtoll(vc->fingerprint, &end, 10);
        assert_int_equal(errno, 0);
        assert_true(*end == '\0');
        if (oms_avro_schema_fingerprint(s) != (uint64_t)fp)
            fail_msg("case %03d: fingerprint expected %lld (0x%016" PRIx64 "), got 0x%016" PRIx64,
                     number, fp, (uint64_t)fp, oms_avro_schema_fingerprint(s));
    }
    oms_avro_schema_free(s);
}

static void test_schema_vectors(void **state)
{
    (void)state;
    char path[1024];
    snprintf(path, sizeof path, "%s/avro/schema-tests.txt", testdata_dir());
    char *text = slurp(path, NULL);
    int cases = 0, fingerprints = 0;
    vector_case cur = {0};
    /* strtok_r would merge empty lines, which matter inside here-docs: split by hand */
    char *p = text;
    while (*p) {
        char *nl = strchr(p, '\n');
        char *line = p;
        p = nl ? nl + 1 : p + strlen(p);
        if (nl)
            *nl = '\0';
        if (strncmp(line, "<<", 2) != 0)
            continue; /* comments, case numbers, blank lines */
        char *label = line + 2;
        char *sp = strchr(label, ' ');
        char *value;
        if (sp) {
            *sp = '\0';
            value = strdup(sp + 1);
        } else {
            /* multi-line here-doc: lines up to one equal to the label */
            size_t cap = 256, len = 0;
            value = malloc(cap);
            assert_non_null(value);
            value[0] = '\0';
            bool closed = false;
            while (*p) {
                char *nl2 = strchr(p, '\n');
                char *l2 = p;
                p = nl2 ? nl2 + 1 : p + strlen(p);
                if (nl2)
                    *nl2 = '\0';
                if (strcmp(l2, label) == 0) {
                    closed = true;
                    break;
                }
                size_t k = strlen(l2);
                while (len + k + 2 > cap) {
                    cap *= 2;
                    value = realloc(value, cap);
                    assert_non_null(value);
                }
                if (len)
                    value[len++] = '\n';
                memcpy(value + len, l2, k + 1);
                len += k;
            }
            if (!closed)
                fail_msg("unterminated here-doc <<%s", label);
        }
        assert_non_null(value);
        if (strcmp(label, "INPUT") == 0) {
            if (cur.input) {
                check_vector(&cur, cases - 1);
                free(cur.input);
                free(cur.canonical);
                free(cur.fingerprint);
                cur = (vector_case){0};
            }
            cur.input = value;
            cases++;
        } else if (strcmp(label, "canonical") == 0) {
            assert_null(cur.canonical);
            cur.canonical = value;
        } else if (strcmp(label, "fingerprint") == 0) {
            assert_null(cur.fingerprint);
            cur.fingerprint = value;
            fingerprints++;
        } else {
            free(value);
            fail_msg("unknown section <<%s", label);
        }
    }
    if (cur.input) {
        check_vector(&cur, cases - 1);
        free(cur.input);
        free(cur.canonical);
        free(cur.fingerprint);
    }
    free(text);
    assert_int_equal(cases, 34);
    assert_int_equal(fingerprints, 26);
}

static void test_crc64_basics(void **state)
{
    (void)state;
    assert_true(oms_avro_crc64("", 0) == 0xc15d213aa4d7a795ULL);
    assert_true(oms_avro_crc64("\"int\"", 5) == 0x7275d51a3f395c8fULL);
}

/* ---- 2. single-object encoding ---------------------------------------------------------- */

static void test_soe_int_header(void **state)
{
    (void)state;
    oms_avro_schema *s = must_parse("\"int\"");
    uint8_t h[OMS_AVRO_SOE_HEADER_LEN];
    oms_avro_soe_header(oms_avro_schema_fingerprint(s), h);
    const uint8_t want[] = {0xC3, 0x01, 0x8F, 0x5C, 0x39, 0x3F, 0x1A, 0xD5, 0x75, 0x72};
    assert_memory_equal(h, want, sizeof want);
    uint64_t fp = 0;
    const uint8_t *body = NULL;
    size_t blen = 99;
    assert_int_equal(oms_avro_soe_parse(h, sizeof h, &fp, &body, &blen), 0);
    assert_true(fp == 0x7275d51a3f395c8fULL);
    assert_ptr_equal(body, h + 10);
    assert_int_equal(blen, 0);
    assert_string_equal(oms_avro_schema_name(s), "int");
    oms_avro_schema_free(s);
}

static void test_soe_message_v1(void **state)
{
    (void)state;
    char path[1024];
    size_t slen, mlen;
    snprintf(path, sizeof path, "%s/avro/messageV1/test_schema.avsc", testdata_dir());
    char *schema_text = slurp(path, &slen);
    snprintf(path, sizeof path, "%s/avro/messageV1/test_message.bin", testdata_dir());
    uint8_t *msg = (uint8_t *)slurp(path, &mlen);
    assert_int_equal(mlen, 38);

    oms_avro_schema *s = must_parse(schema_text);
    assert_string_equal(oms_avro_schema_name(s), "org.apache.avro.TestMessage");
    assert_string_equal(oms_avro_schema_text(s), schema_text);
    assert_string_equal(oms_avro_schema_canonical(s),
                        "{\"name\":\"org.apache.avro.TestMessage\",\"type\":\"record\",\"fields\":["
                        "{\"name\":\"id\",\"type\":\"long\"},{\"name\":\"name\",\"type\":"
                        "\"string\"},{\"name\":\"tags\",\"type\":{\"type\":\"array\",\"items\":"
                        "\"string\"}}]}");
    assert_true(oms_avro_schema_fingerprint(s) == 0x3df542a2f8e12da9ULL);

    uint64_t fp;
    const uint8_t *body;
    size_t blen;
    assert_int_equal(oms_avro_soe_parse(msg, mlen, &fp, &body, &blen), 0);
    assert_true(fp == oms_avro_schema_fingerprint(s));
    assert_int_equal(blen, 28);
    json_t *v = must_decode(s, s, body, blen);
    assert_json_eq(v, "{\"id\":42,\"name\":\"Bill\",\"tags\":[\"dog_lover\",\"cat_hater\"]}");

    /* re-encode: header + body byte-identical */
    uint8_t out[64];
    oms_avro_soe_header(oms_avro_schema_fingerprint(s), out);
    size_t n = must_encode(s, v, out + 10, sizeof out - 10);
    assert_int_equal(n + 10, mlen);
    assert_memory_equal(out, msg, mlen);

    /* through the store too */
    oms_avro_store *st = oms_avro_store_new();
    char err[ERRLEN];
    assert_int_equal(oms_avro_store_add(st, schema_text, "test_schema.avsc", err, sizeof err), 0);
    json_t *v2 = NULL;
    const oms_avro_schema *w = NULL;
    assert_int_equal(oms_avro_store_decode(st, msg, mlen, &v2, &w, err, sizeof err), 0);
    assert_non_null(w);
    assert_true(oms_avro_schema_fingerprint(w) == fp);
    assert_true(json_equal(v, v2));
    json_decref(v2);
    oms_avro_store_free(st);

    json_decref(v);
    oms_avro_schema_free(s);
    free(schema_text);
    free(msg);
}

/* ---- 3. round trips ------------------------------------------------------------------- */

static void test_roundtrip_primitives(void **state)
{
    (void)state;
    roundtrip("\"null\"", "null");
    roundtrip("\"boolean\"", "true");
    roundtrip("\"boolean\"", "false");
    roundtrip("\"int\"", "0");
    roundtrip("\"int\"", "-1");
    roundtrip("\"int\"", "2147483647");
    roundtrip("\"int\"", "-2147483648");
    roundtrip("\"long\"", "9223372036854775807");
    roundtrip("\"long\"", "-9223372036854775808");
    roundtrip("\"long\"", "1234567890123");
    roundtrip("\"float\"", "1.5");
    roundtrip("\"float\"", "-0.25");
    roundtrip("\"double\"", "3.141592653589793");
    roundtrip("\"double\"", "-1e300");
    roundtrip("\"string\"", "\"\"");
    roundtrip("\"string\"", "\"h\\u00e9llo w\\u00f6rld \\u20ac \\ud83d\\ude00\"");
    roundtrip("\"string\"", "\"nul\\u0000inside\"");
    roundtrip("\"bytes\"", "\"\"");
    roundtrip("\"bytes\"", "\"\\u0000\\u0001\\u007f\\u0080\\u00ff\"");
    roundtrip("{\"type\":\"long\",\"logicalType\":\"timestamp-millis\"}", "1700000000000");

    /* exact bytes for a few values */
    oms_avro_schema *s = must_parse("\"long\"");
    uint8_t buf[16];
    json_t *v = json_integer(INT64_MIN);
    size_t n = must_encode(s, v, buf, sizeof buf);
    const uint8_t min_enc[] = {0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01};
    assert_int_equal(n, 10);
    assert_memory_equal(buf, min_enc, 10);
    json_decref(v);
    v = json_integer(-64);
    n = must_encode(s, v, buf, sizeof buf);
    assert_int_equal(n, 1);
    assert_int_equal(buf[0], 0x7F);
    json_decref(v);
    oms_avro_schema_free(s);

    /* float/double accept JSON integers on encode */
    s = must_parse("\"double\"");
    v = json_integer(3);
    n = must_encode(s, v, buf, sizeof buf);
    json_t *d = must_decode(s, NULL, buf, n);
    assert_json_eq(d, "3.0");
    json_decref(d);
    json_decref(v);
    oms_avro_schema_free(s);

    /* bytes map to code points: 0xff is U+00FF (C3 BF in UTF-8) */
    s = must_parse("\"bytes\"");
    const uint8_t raw[] = {0x04, 0x00, 0xFF};
    d = must_decode(s, s, raw, sizeof raw);
    assert_int_equal(json_string_length(d), 3);
    assert_memory_equal(json_string_value(d), "\x00\xC3\xBF", 3);
    json_decref(d);
    oms_avro_schema_free(s);
}

static const char *all_types_schema =
    "{\"type\":\"record\",\"name\":\"All\",\"namespace\":\"oms.test\",\"fields\":["
    "{\"name\":\"n\",\"type\":\"null\"},"
    "{\"name\":\"b\",\"type\":\"boolean\"},"
    "{\"name\":\"i\",\"type\":\"int\"},"
    "{\"name\":\"l\",\"type\":\"long\"},"
    "{\"name\":\"f\",\"type\":\"float\"},"
    "{\"name\":\"d\",\"type\":\"double\"},"
    "{\"name\":\"by\",\"type\":\"bytes\"},"
    "{\"name\":\"s\",\"type\":\"string\"},"
    "{\"name\":\"e\",\"type\":{\"type\":\"enum\",\"name\":\"Color\",\"symbols\":[\"RED\",\"GREEN\","
    "\"BLUE\"]}},"
    "{\"name\":\"fx\",\"type\":{\"type\":\"fixed\",\"name\":\"Four\",\"size\":4}},"
    "{\"name\":\"a\",\"type\":{\"type\":\"array\",\"items\":\"int\"}},"
    "{\"name\":\"ea\",\"type\":{\"type\":\"array\",\"items\":\"string\"}},"
    "{\"name\":\"m\",\"type\":{\"type\":\"map\",\"values\":\"long\"}},"
    "{\"name\":\"u\",\"type\":[\"null\",\"string\",\"Color\"]},"
    "{\"name\":\"u2\",\"type\":[\"null\",\"string\",\"Color\"]},"
    "{\"name\":\"r\",\"type\":{\"type\":\"record\",\"name\":\"Inner\",\"fields\":["
    "{\"name\":\"x\",\"type\":\"int\"},{\"name\":\"c\",\"type\":\"Color\"},"
    "{\"name\":\"deep\",\"type\":{\"type\":\"array\",\"items\":{\"type\":\"map\",\"values\":"
    "\"Four\"}}}]}}"
    "]}";

static const char *all_types_value =
    "{\"n\":null,\"b\":true,\"i\":-123456,\"l\":9007199254740993,\"f\":0.5,\"d\":-2.5e-10,"
    "\"by\":\"\\u0000ab\\u00ff\",\"s\":\"caf\\u00e9 \\u65e5\\u672c\",\"e\":\"GREEN\","
    "\"fx\":\"ab\\u00c0\\u0001\",\"a\":[1,-2,3,2147483647],\"ea\":[],"
    "\"m\":{\"x\":1,\"y\":-9223372036854775808},\"u\":\"text\",\"u2\":null,"
    "\"r\":{\"x\":7,\"c\":\"BLUE\",\"deep\":[{\"k\":\"wxyz\"},{}]}}";

static void test_roundtrip_complex(void **state)
{
    (void)state;
    roundtrip(all_types_schema, all_types_value);
    roundtrip("{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"A\",\"B\"]}", "\"B\"");
    roundtrip("{\"type\":\"fixed\",\"name\":\"F0\",\"size\":0}", "\"\"");
    roundtrip("{\"type\":\"array\",\"items\":\"null\"}", "[null,null,null]");
    roundtrip("{\"type\":\"array\",\"items\":{\"type\":\"array\",\"items\":\"long\"}}",
              "[[],[1],[2,3]]");
    roundtrip("{\"type\":\"map\",\"values\":[\"null\",\"double\"]}",
              "{\"a\":null,\"b\":1.25,\"\\u00e9\":2.0}");
    roundtrip("[\"null\",\"int\",\"string\"]", "null");
    roundtrip("[\"null\",\"int\",\"string\"]", "5");
    roundtrip("[\"null\",\"int\",\"string\"]", "\"five\"");
    /* union of two records: the branch is chosen by the value's fields */
    const char *two_records =
        "[{\"type\":\"record\",\"name\":\"A\",\"fields\":[{\"name\":\"a\",\"type\":\"int\"}]},"
        "{\"type\":\"record\",\"name\":\"B\",\"fields\":[{\"name\":\"b\",\"type\":\"string\"}]}]";
    roundtrip(two_records, "{\"a\":1}");
    roundtrip(two_records, "{\"b\":\"x\"}");
    /* an int that does not fit goes to the long branch */
    roundtrip("[\"int\",\"long\"]", "4000000000");

    /* union branch index on the wire */
    oms_avro_schema *s = must_parse("[\"null\",\"int\",\"string\"]");
    json_t *v = json_string("a");
    uint8_t buf[16];
    size_t n = must_encode(s, v, buf, sizeof buf);
    const uint8_t want[] = {0x04, 0x02, 'a'};
    assert_int_equal(n, 3);
    assert_memory_equal(buf, want, 3);
    json_decref(v);
    oms_avro_schema_free(s);
}

static void test_roundtrip_recursive(void **state)
{
    (void)state;
    const char *list = "{\"type\":\"record\",\"name\":\"LongList\",\"fields\":["
                       "{\"name\":\"value\",\"type\":\"long\"},"
                       "{\"name\":\"next\",\"type\":[\"null\",\"LongList\"]}]}";
    roundtrip(list, "{\"value\":1,\"next\":{\"value\":2,\"next\":{\"value\":3,\"next\":null}}}");
    const char *tree = "{\"type\":\"record\",\"name\":\"Tree\",\"namespace\":\"t\",\"fields\":["
                       "{\"name\":\"label\",\"type\":\"string\"},"
                       "{\"name\":\"kids\",\"type\":{\"type\":\"array\",\"items\":\"t.Tree\"}}]}";
    roundtrip(tree, "{\"label\":\"root\",\"kids\":[{\"label\":\"a\",\"kids\":[]},"
                    "{\"label\":\"b\",\"kids\":[{\"label\":\"c\",\"kids\":[]}]}]}");
    oms_avro_schema *s = must_parse(tree);
    assert_string_equal(oms_avro_schema_canonical(s),
                        "{\"name\":\"t.Tree\",\"type\":\"record\",\"fields\":[{\"name\":\"label\","
                        "\"type\":\"string\"},{\"name\":\"kids\",\"type\":{\"type\":\"array\","
                        "\"items\":\"t.Tree\"}}]}");
    oms_avro_schema_free(s);
}

/* Arrays and maps written in several blocks, with negative counts
 * (count followed by the block's byte size), as other writers may do. */
static void test_decode_blocks(void **state)
{
    (void)state;
    oms_avro_schema *s = must_parse("{\"type\":\"array\",\"items\":\"int\"}");
    /* block of 2: [1,2]; block of -1 with size 1: [3]; end */
    const uint8_t arr[] = {0x04, 0x02, 0x04, 0x01, 0x02, 0x06, 0x00};
    json_t *v = must_decode(s, s, arr, sizeof arr);
    assert_json_eq(v, "[1,2,3]");
    json_decref(v);
    /* our encoder writes one block */
    v = must_json("[1,2,3]");
    uint8_t buf[32];
    size_t n = must_encode(s, v, buf, sizeof buf);
    const uint8_t one_block[] = {0x06, 0x02, 0x04, 0x06, 0x00};
    assert_int_equal(n, sizeof one_block);
    assert_memory_equal(buf, one_block, n);
    json_decref(v);
    /* empty array is a single 0 */
    v = must_json("[]");
    n = must_encode(s, v, buf, sizeof buf);
    assert_int_equal(n, 1);
    assert_int_equal(buf[0], 0);
    json_decref(v);
    oms_avro_schema_free(s);

    s = must_parse("{\"type\":\"map\",\"values\":\"string\"}");
    /* block -2 (size 8): a->"x", b->"y"; block 1: c->"z"; end */
    const uint8_t map[] = {0x03, 0x10, 0x02, 'a', 0x02, 'x', 0x02, 'b', 0x02, 'y',
                           0x02, 0x02, 'c', 0x02, 'z', 0x00};
    v = must_decode(s, s, map, sizeof map);
    assert_json_eq(v, "{\"a\":\"x\",\"b\":\"y\",\"c\":\"z\"}");
    json_decref(v);
    oms_avro_schema_free(s);

    /* a record whose skipped field is a multi-block array with byte sizes */
    oms_avro_schema *w = must_parse(
        "{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"skip\",\"type\":{\"type\":"
        "\"array\",\"items\":\"string\"}},{\"name\":\"keep\",\"type\":\"int\"}]}");
    oms_avro_schema *r = must_parse(
        "{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"keep\",\"type\":\"int\"}]}");
    const uint8_t rec[] = {0x03, 0x08, 0x02, 'p', 0x02, 'q', 0x02, 0x02, 'r', 0x00, 0x54};
    v = must_decode(w, r, rec, sizeof rec);
    assert_json_eq(v, "{\"keep\":42}");
    json_decref(v);
    oms_avro_schema_free(w);
    oms_avro_schema_free(r);
}

static void expect_encode_error(const char *schema_json, const char *value_json, int code,
                                const char *needle)
{
    oms_avro_schema *s = must_parse(schema_json);
    json_t *v = must_json(value_json);
    uint8_t buf[256];
    size_t n = 77;
    char err[ERRLEN] = "";
    int rc = oms_avro_encode_json(s, v, buf, sizeof buf, &n, err, sizeof err);
    assert_int_equal(rc, code);
    assert_int_equal(n, 0);
    assert_true(err[0] != '\0');
    if (needle && !strstr(err, needle))
        fail_msg("error '%s' does not contain '%s'", err, needle);
    json_decref(v);
    oms_avro_schema_free(s);
}

static void test_encode_errors(void **state)
{
    (void)state;
    const char *order = "{\"type\":\"record\",\"name\":\"Order\",\"fields\":["
                        "{\"name\":\"items\",\"type\":{\"type\":\"array\",\"items\":{\"type\":"
                        "\"record\",\"name\":\"Item\",\"fields\":[{\"name\":\"quantity\","
                        "\"type\":\"int\"}]}}}]}";
    expect_encode_error(order,
                        "{\"items\":[{\"quantity\":1},{\"quantity\":2},{\"quantity\":\"x\"}]}",
                        OMS_EINVAL, "field 'items[2].quantity': expected int, got string");
    expect_encode_error("\"int\"", "2147483648", OMS_EINVAL, "out of range for int");
    expect_encode_error("\"long\"", "1.5", OMS_EINVAL, "expected long, got real");
    expect_encode_error("\"string\"", "1", OMS_EINVAL, "expected string, got integer");
    expect_encode_error("{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"A\"]}", "\"Z\"",
                        OMS_EINVAL, "not a symbol");
    expect_encode_error("{\"type\":\"fixed\",\"name\":\"F\",\"size\":2}", "\"abc\"", OMS_EINVAL,
                        "needs 2 bytes");
    expect_encode_error("\"bytes\"", "\"\\u20ac\"", OMS_EINVAL, "above U+00FF");
    expect_encode_error("[\"null\",\"int\"]", "\"s\"", OMS_EINVAL, "expected one of null|int");
    expect_encode_error("{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"a\",\"type\":"
                        "\"int\"}]}",
                        "{}", OMS_EINVAL, "field 'a': missing");
    expect_encode_error("{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"a\",\"type\":"
                        "\"int\"}]}",
                        "{\"a\":1,\"zz\":2}", OMS_EINVAL, "unknown field 'zz'");
    expect_encode_error("{\"type\":\"map\",\"values\":\"int\"}", "{\"k\":null}", OMS_EINVAL,
                        "field '[\"k\"]': expected int, got null");
    expect_encode_error("\"float\"", "1e300", OMS_EINVAL, "out of range for float");

    /* buffer too small -> OMS_ERANGE, and a bigger one works */
    oms_avro_schema *s = must_parse("\"string\"");
    json_t *v = json_string("hello world");
    uint8_t buf[64];
    size_t n = 0;
    char err[ERRLEN] = "";
    assert_int_equal(oms_avro_encode_json(s, v, buf, 5, &n, err, sizeof err), OMS_ERANGE);
    assert_int_equal(oms_avro_encode_json(s, v, NULL, 0, &n, err, sizeof err), OMS_ERANGE);
    assert_int_equal(oms_avro_encode_json(s, v, buf, sizeof buf, &n, err, sizeof err), 0);
    assert_int_equal(n, 12);
    json_decref(v);
    oms_avro_schema_free(s);

    /* a missing field with a default is encoded with the default */
    s = must_parse("{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"a\",\"type\":"
                   "\"int\",\"default\":7},{\"name\":\"u\",\"type\":[\"null\",\"int\"],"
                   "\"default\":null}]}");
    v = must_json("{}");
    n = must_encode(s, v, buf, sizeof buf);
    json_t *d = must_decode(s, s, buf, n);
    assert_json_eq(d, "{\"a\":7,\"u\":null}");
    json_decref(d);
    json_decref(v);
    oms_avro_schema_free(s);
}

/* ---- 4. resolution -------------------------------------------------------------------- */

static const char *order_v1 =
    "{\"type\":\"record\",\"name\":\"Order\",\"namespace\":\"oms.t\",\"fields\":["
    "{\"name\":\"id\",\"type\":\"long\"},"
    "{\"name\":\"legacy\",\"type\":{\"type\":\"array\",\"items\":{\"type\":\"map\",\"values\":"
    "\"string\"}}},"
    "{\"name\":\"qty\",\"type\":\"int\"},"
    "{\"name\":\"px\",\"type\":\"int\"},"
    "{\"name\":\"amt\",\"type\":\"long\"},"
    "{\"name\":\"ratio\",\"type\":\"float\"},"
    "{\"name\":\"s\",\"type\":\"string\"},"
    "{\"name\":\"raw\",\"type\":\"bytes\"},"
    "{\"name\":\"old_note\",\"type\":[\"null\",\"string\"]}"
    "]}";

static const char *order_v2 =
    "{\"type\":\"record\",\"name\":\"Order\",\"namespace\":\"oms.t\",\"fields\":["
    "{\"name\":\"id\",\"type\":\"long\"},"
    "{\"name\":\"qty\",\"type\":\"long\"},"
    "{\"name\":\"px\",\"type\":\"double\"},"
    "{\"name\":\"amt\",\"type\":\"float\"},"
    "{\"name\":\"ratio\",\"type\":\"double\"},"
    "{\"name\":\"s\",\"type\":\"bytes\"},"
    "{\"name\":\"raw\",\"type\":\"string\"},"
    "{\"name\":\"note\",\"type\":[\"null\",\"string\"],\"default\":null},"
    "{\"name\":\"currency\",\"type\":\"string\",\"default\":\"EUR\"},"
    "{\"name\":\"version\",\"type\":\"int\",\"default\":2},"
    "{\"name\":\"meta\",\"type\":{\"type\":\"record\",\"name\":\"Meta\",\"fields\":["
    "{\"name\":\"src\",\"type\":\"string\",\"default\":\"web\"},"
    "{\"name\":\"n\",\"type\":\"int\"}]},\"default\":{\"n\":1}},"
    "{\"name\":\"tags\",\"type\":{\"type\":\"array\",\"items\":\"string\"},\"default\":[\"a\","
    "\"b\"]},"
    "{\"name\":\"weight\",\"type\":\"double\",\"default\":0},"
    "{\"name\":\"blob\",\"type\":\"bytes\",\"default\":\"\\u00ff\"},"
    "{\"name\":\"side\",\"type\":{\"type\":\"enum\",\"name\":\"Side\",\"symbols\":[\"BUY\","
    "\"SELL\"]},\"default\":\"SELL\"},"
    "{\"name\":\"opt\",\"type\":[\"int\",\"null\"],\"default\":5}"
    "]}";

static const char *order_v1_value =
    "{\"id\":1,\"legacy\":[{\"k\":\"v\"},{}],\"qty\":5,\"px\":7,\"amt\":3,\"ratio\":0.5,"
    "\"s\":\"hi\",\"raw\":\"ok\",\"old_note\":\"gone\"}";

static void test_resolution_defaults_and_promotions(void **state)
{
    (void)state;
    oms_avro_schema *w = must_parse(order_v1);
    oms_avro_schema *r = must_parse(order_v2);
    json_t *v = must_json(order_v1_value);
    uint8_t buf[256];
    size_t n = must_encode(w, v, buf, sizeof buf);
    json_t *d = must_decode(w, r, buf, n);
    assert_json_eq(d, "{\"id\":1,\"qty\":5,\"px\":7.0,\"amt\":3.0,\"ratio\":0.5,\"s\":\"hi\","
                      "\"raw\":\"ok\",\"note\":null,\"currency\":\"EUR\",\"version\":2,"
                      "\"meta\":{\"src\":\"web\",\"n\":1},\"tags\":[\"a\",\"b\"],"
                      "\"weight\":0.0,\"blob\":\"\\u00ff\",\"side\":\"SELL\",\"opt\":5}");
    /* keys come out in reader order */
    void *it = json_object_iter(d);
    const char *order[] = {"id", "qty", "px", "amt", "ratio", "s", "raw", "note"};
    for (size_t i = 0; i < OMS_ARRAY_LEN(order); i++, it = json_object_iter_next(d, it))
        assert_string_equal(json_object_iter_key(it), order[i]);
    /* the result encodes with the reader schema */
    uint8_t buf2[256];
    must_encode(r, d, buf2, sizeof buf2);
    char err[ERRLEN];
    assert_int_equal(oms_avro_check_compatible(w, r, err, sizeof err), 0);
    json_decref(d);

    /* defaults are fresh copies: mutating one result does not affect the next */
    d = must_decode(w, r, buf, n);
    json_array_append_new(json_object_get(d, "tags"), json_string("mutated"));
    json_decref(d);
    d = must_decode(w, r, buf, n);
    assert_int_equal(json_array_size(json_object_get(d, "tags")), 2);
    json_decref(d);

    json_decref(v);
    oms_avro_schema_free(w);
    oms_avro_schema_free(r);
}

static void resolve_one(const char *wjson, const char *rjson, const char *value,
                        const char *expected)
{
    oms_avro_schema *w = must_parse(wjson);
    oms_avro_schema *r = must_parse(rjson);
    json_t *v = must_json(value);
    uint8_t buf[256];
    size_t n = must_encode(w, v, buf, sizeof buf);
    json_t *d = must_decode(w, r, buf, n);
    assert_json_eq(d, expected);
    json_decref(d);
    json_decref(v);
    oms_avro_schema_free(w);
    oms_avro_schema_free(r);
}

static void resolve_fail(const char *wjson, const char *rjson, const char *value, int code,
                         const char *needle)
{
    oms_avro_schema *w = must_parse(wjson);
    oms_avro_schema *r = must_parse(rjson);
    json_t *v = must_json(value);
    uint8_t buf[256];
    size_t n = must_encode(w, v, buf, sizeof buf);
    expect_decode_error(w, r, buf, n, code, needle);
    json_decref(v);
    oms_avro_schema_free(w);
    oms_avro_schema_free(r);
}

static void test_resolution_promotions(void **state)
{
    (void)state;
    resolve_one("\"int\"", "\"long\"", "-7", "-7");
    resolve_one("\"int\"", "\"float\"", "16777217", "16777216.0"); /* rounded to float */
    resolve_one("\"int\"", "\"double\"", "16777217", "16777217.0");
    resolve_one("\"long\"", "\"float\"", "3", "3.0");
    resolve_one("\"long\"", "\"double\"", "-9007199254740992", "-9007199254740992.0");
    resolve_one("\"float\"", "\"double\"", "0.75", "0.75");
    /* string -> bytes gives the raw UTF-8 bytes */
    resolve_one("\"string\"", "\"bytes\"", "\"\\u00e9\"", "\"\\u00c3\\u00a9\"");
    resolve_one("\"bytes\"", "\"string\"", "\"abc\"", "\"abc\"");
    resolve_one("{\"type\":\"array\",\"items\":\"int\"}",
                "{\"type\":\"array\",\"items\":\"double\"}", "[1,2]", "[1.0,2.0]");
    resolve_one("{\"type\":\"map\",\"values\":\"int\"}", "{\"type\":\"map\",\"values\":\"long\"}",
                "{\"a\":1}", "{\"a\":1}");
    /* bytes that are not UTF-8 cannot become a string */
    resolve_fail("\"bytes\"", "\"string\"", "\"\\u00ff\"", OMS_EINVAL, "invalid UTF-8");
    /* no demotion */
    resolve_fail("\"long\"", "\"int\"", "1", OMS_ESCHEMA,
                 "cannot read writer type long as reader type int");
    resolve_fail("\"double\"", "\"float\"", "1.0", OMS_ESCHEMA, NULL);
    resolve_fail("\"string\"", "\"int\"", "\"1\"", OMS_ESCHEMA, NULL);
}

static void test_resolution_unions(void **state)
{
    (void)state;
    /* writer non-union -> reader union: exact branch, or a promotable one */
    resolve_one("\"string\"", "[\"null\",\"string\"]", "\"x\"", "\"x\"");
    resolve_one("\"int\"", "[\"null\",\"long\",\"int\"]", "3", "3"); /* exact "int" preferred */
    resolve_one("\"int\"", "[\"null\",\"double\"]", "3", "3.0");
    resolve_fail("\"boolean\"", "[\"null\",\"int\"]", "true", OMS_ESCHEMA, "no branch");
    /* writer union -> reader non-union: the written branch must resolve */
    resolve_one("[\"null\",\"int\"]", "\"int\"", "5", "5");
    resolve_one("[\"null\",\"int\"]", "\"long\"", "5", "5");
    resolve_fail("[\"null\",\"int\"]", "\"int\"", "null", OMS_ESCHEMA,
                 "cannot read writer type null as reader type int");
    /* union -> union, branches reordered */
    resolve_one("[\"int\",\"string\"]", "[\"string\",\"null\",\"long\"]", "\"s\"", "\"s\"");
    resolve_one("[\"int\",\"string\"]", "[\"string\",\"null\",\"long\"]", "9", "9");
    /* records inside unions */
    resolve_one("[\"null\",{\"type\":\"record\",\"name\":\"P\",\"fields\":[{\"name\":\"a\","
                "\"type\":\"int\"}]}]",
                "[\"null\",{\"type\":\"record\",\"name\":\"P\",\"fields\":[{\"name\":\"a\","
                "\"type\":\"long\"},{\"name\":\"b\",\"type\":\"string\",\"default\":\"d\"}]}]",
                "{\"a\":1}", "{\"a\":1,\"b\":\"d\"}");
    char err[ERRLEN];
    oms_avro_schema *w = must_parse("[\"null\",\"int\"]");
    oms_avro_schema *r = must_parse("\"int\"");
    assert_int_equal(oms_avro_check_compatible(w, r, err, sizeof err), OMS_ESCHEMA);
    assert_true(err[0] != '\0');
    assert_int_equal(oms_avro_check_compatible(r, w, err, sizeof err), 0);
    oms_avro_schema_free(w);
    oms_avro_schema_free(r);
}

static void test_resolution_enums(void **state)
{
    (void)state;
    const char *w3 = "{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"A\",\"B\",\"C\"]}";
    const char *r2 = "{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"B\",\"A\"]}";
    const char *r2d = "{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"B\",\"A\",\"UNKNOWN\"],"
                      "\"default\":\"UNKNOWN\"}";
    resolve_one(w3, r2, "\"A\"", "\"A\""); /* by name, not index */
    resolve_fail(w3, r2, "\"C\"", OMS_ESCHEMA, "symbol 'C'");
    resolve_one(w3, r2d, "\"C\"", "\"UNKNOWN\"");
    resolve_one(w3, r2d, "\"B\"", "\"B\"");
    char err[ERRLEN];
    oms_avro_schema *w = must_parse(w3), *r = must_parse(r2), *rd = must_parse(r2d);
    assert_int_equal(oms_avro_check_compatible(w, r, err, sizeof err), OMS_ESCHEMA);
    assert_int_equal(oms_avro_check_compatible(w, rd, err, sizeof err), 0);
    oms_avro_schema_free(w);
    oms_avro_schema_free(r);
    oms_avro_schema_free(rd);
    /* a different enum name does not resolve */
    resolve_fail(w3, "{\"type\":\"enum\",\"name\":\"Other\",\"symbols\":[\"A\"]}", "\"A\"",
                 OMS_ESCHEMA, NULL);
}

static void test_resolution_missing_default(void **state)
{
    (void)state;
    const char *w = "{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"a\",\"type\":"
                    "\"int\"}]}";
    const char *r = "{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"a\",\"type\":"
                    "\"int\"},{\"name\":\"x\",\"type\":\"string\"}]}";
    resolve_fail(w, r, "{\"a\":1}", OMS_ESCHEMA, "'x'");
    oms_avro_schema *ws = must_parse(w), *rs = must_parse(r);
    char err[ERRLEN] = "";
    assert_int_equal(oms_avro_check_compatible(ws, rs, err, sizeof err), OMS_ESCHEMA);
    assert_non_null(strstr(err, "'x'"));
    /* the other way round is fine: the writer's extra field is skipped */
    assert_int_equal(oms_avro_check_compatible(rs, ws, err, sizeof err), 0);
    oms_avro_schema_free(ws);
    oms_avro_schema_free(rs);
    resolve_one(r, w, "{\"a\":1,\"x\":\"dropped\"}", "{\"a\":1}");
    /* records with different names do not resolve */
    resolve_fail(w, "{\"type\":\"record\",\"name\":\"S\",\"fields\":[]}", "{\"a\":1}", OMS_ESCHEMA,
                 NULL);
}

static void test_resolution_aliases(void **state)
{
    (void)state;
    const char *w = "{\"type\":\"record\",\"name\":\"Old\",\"namespace\":\"oms.t\",\"fields\":["
                    "{\"name\":\"qty\",\"type\":\"int\"},{\"name\":\"px\",\"type\":\"double\"}]}";
    const char *r = "{\"type\":\"record\",\"name\":\"New\",\"namespace\":\"oms.t\","
                    "\"aliases\":[\"Old\"],\"fields\":["
                    "{\"name\":\"price\",\"type\":\"double\",\"aliases\":[\"px\"]},"
                    "{\"name\":\"quantity\",\"type\":\"long\",\"aliases\":[\"qty\"]}]}";
    resolve_one(w, r, "{\"qty\":3,\"px\":1.5}", "{\"price\":1.5,\"quantity\":3}");
    oms_avro_schema *ws = must_parse(w), *rs = must_parse(r);
    char err[ERRLEN];
    assert_int_equal(oms_avro_check_compatible(ws, rs, err, sizeof err), 0);
    oms_avro_schema_free(ws);
    oms_avro_schema_free(rs);
}

static void test_resolution_recursive(void **state)
{
    (void)state;
    const char *w = "{\"type\":\"record\",\"name\":\"L\",\"fields\":[{\"name\":\"v\",\"type\":"
                    "\"int\"},{\"name\":\"next\",\"type\":[\"null\",\"L\"]}]}";
    const char *r = "{\"type\":\"record\",\"name\":\"L\",\"fields\":[{\"name\":\"v\",\"type\":"
                    "\"long\"},{\"name\":\"next\",\"type\":[\"null\",\"L\"]},{\"name\":\"tag\","
                    "\"type\":\"string\",\"default\":\"t\"}]}";
    resolve_one(w, r, "{\"v\":1,\"next\":{\"v\":2,\"next\":null}}",
                "{\"v\":1,\"next\":{\"v\":2,\"next\":null,\"tag\":\"t\"},\"tag\":\"t\"}");
    oms_avro_schema *ws = must_parse(w), *rs = must_parse(r);
    char err[ERRLEN];
    assert_int_equal(oms_avro_check_compatible(ws, rs, err, sizeof err), 0);
    oms_avro_schema_free(ws);
    oms_avro_schema_free(rs);
}

/* ---- 5. corrupt input --------------------------------------------------------------------- */

static void test_corrupt_truncation(void **state)
{
    (void)state;
    oms_avro_schema *s = must_parse(all_types_schema);
    oms_avro_schema *w1 = must_parse(order_v1), *r2 = must_parse(order_v2);
    json_t *v = must_json(all_types_value);
    json_t *v1 = must_json(order_v1_value);
    uint8_t buf[512], buf1[512];
    size_t n = must_encode(s, v, buf, sizeof buf);
    size_t n1 = must_encode(w1, v1, buf1, sizeof buf1);
    assert_true(n > 50);
    for (size_t len = 0; len < n; len++) {
        /* copy to an exact-size heap block so ASan sees any over-read */
        uint8_t *p = malloc(len ? len : 1);
        memcpy(p, buf, len);
        expect_decode_error(s, s, p, len, 0, NULL);
        free(p);
    }
    for (size_t len = 0; len < n1; len++) {
        uint8_t *p = malloc(len ? len : 1);
        memcpy(p, buf1, len);
        expect_decode_error(w1, r2, p, len, 0, NULL);
        free(p);
    }
    /* a cut inside a string says how much was needed */
    oms_avro_schema *str = must_parse("{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":"
                                      "\"a\",\"type\":\"string\"}]}");
    const uint8_t cut[] = {0x0A, 'a', 'b', 'c'};
    expect_decode_error(str, str, cut, sizeof cut, OMS_ETRUNC,
                        "field 'a': truncated: need 5 bytes for string at offset 1, 3 left");
    oms_avro_schema_free(str);
    json_decref(v);
    json_decref(v1);
    oms_avro_schema_free(s);
    oms_avro_schema_free(w1);
    oms_avro_schema_free(r2);
}

static void test_corrupt_soe(void **state)
{
    (void)state;
    oms_avro_schema *s = must_parse("\"string\"");
    oms_avro_store *st = oms_avro_store_new();
    char err[ERRLEN] = "";
    assert_int_equal(oms_avro_store_add(st, "\"string\"", NULL, err, sizeof err), 0);
    uint8_t msg[16];
    oms_avro_soe_header(oms_avro_schema_fingerprint(s), msg);
    msg[10] = 0x04;
    msg[11] = 'o';
    msg[12] = 'k';
    json_t *out = NULL;
    assert_int_equal(oms_avro_store_decode(st, msg, 13, &out, NULL, err, sizeof err), 0);
    assert_json_eq(out, "\"ok\"");
    json_decref(out);

    uint8_t bad[16];
    uint64_t fp;
    const uint8_t *body;
    size_t blen;
    /* marker byte 0 */
    memcpy(bad, msg, 13);
    bad[0] = 0xC2;
    assert_int_equal(oms_avro_soe_parse(bad, 13, &fp, &body, &blen), OMS_EMAGIC);
    err[0] = '\0';
    assert_int_equal(oms_avro_store_decode(st, bad, 13, &out, NULL, err, sizeof err), OMS_EMAGIC);
    assert_null(out);
    assert_non_null(strstr(err, "c2 01"));
    /* version byte */
    memcpy(bad, msg, 13);
    bad[1] = 0x02;
    assert_int_equal(oms_avro_soe_parse(bad, 13, &fp, &body, &blen), OMS_EMAGIC);
    assert_int_equal(oms_avro_store_decode(st, bad, 13, &out, NULL, err, sizeof err), OMS_EMAGIC);
    /* truncated header at every length */
    for (size_t len = 0; len < OMS_AVRO_SOE_HEADER_LEN; len++) {
        uint8_t *p = malloc(len ? len : 1);
        memcpy(p, msg, len);
        assert_int_equal(oms_avro_soe_parse(p, len, &fp, &body, &blen), OMS_ETRUNC);
        err[0] = '\0';
        assert_int_equal(oms_avro_store_decode(st, p, len, &out, NULL, err, sizeof err),
                         OMS_ETRUNC);
        assert_true(err[0] != '\0');
        free(p);
    }
    /* fingerprint byte corrupted -> unknown fingerprint, shown in hex */
    memcpy(bad, msg, 13);
    bad[5] ^= 0x40;
    err[0] = '\0';
    assert_int_equal(oms_avro_store_decode(st, bad, 13, &out, NULL, err, sizeof err),
                     OMS_ENOTFOUND);
    char hex[32];
    uint64_t badfp = oms_avro_schema_fingerprint(s) ^ ((uint64_t)0x40 << 24);
    snprintf(hex, sizeof hex, "0x%016" PRIx64, badfp);
    if (!strstr(err, hex))
        fail_msg("'%s' does not show %s", err, hex);
    /* truncated payload */
    err[0] = '\0';
    assert_int_equal(oms_avro_store_decode(st, msg, 12, &out, NULL, err, sizeof err), OMS_ETRUNC);
    assert_true(err[0] != '\0');
    oms_avro_store_free(st);
    oms_avro_schema_free(s);
}

static void test_corrupt_values(void **state)
{
    (void)state;
    oms_avro_schema *str = must_parse("\"string\"");
    oms_avro_schema *byt = must_parse("\"bytes\"");
    oms_avro_schema *lng = must_parse("\"long\"");
    oms_avro_schema *in = must_parse("\"int\"");
    oms_avro_schema *un = must_parse("[\"null\",\"int\"]");
    oms_avro_schema *en = must_parse("{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"A\"]}");
    oms_avro_schema *bo = must_parse("\"boolean\"");
    oms_avro_schema *dbl = must_parse("\"double\"");
    oms_avro_schema *arr = must_parse("{\"type\":\"array\",\"items\":\"int\"}");
    oms_avro_schema *nul_arr = must_parse("{\"type\":\"array\",\"items\":\"null\"}");
    oms_avro_schema *map = must_parse("{\"type\":\"map\",\"values\":\"int\"}");

    const uint8_t neg_len[] = {0x01, 'a'}; /* length -1 */
    expect_decode_error(str, NULL, neg_len, sizeof neg_len, OMS_EINVAL, "negative length -1");
    expect_decode_error(byt, NULL, neg_len, sizeof neg_len, OMS_EINVAL, "negative length");
    const uint8_t huge_len[] = {0xFE, 0xFF, 0xFF, 0xFF, 0x0F, 'a', 'b'}; /* 2^31-1 */
    expect_decode_error(str, NULL, huge_len, sizeof huge_len, OMS_ETRUNC, "need 2147483647 bytes");
    expect_decode_error(byt, NULL, huge_len, sizeof huge_len, OMS_ETRUNC, NULL);
    const uint8_t bad_utf8[] = {0x08, 'a', 0xC3, 0x28, 'b'};
    expect_decode_error(str, NULL, bad_utf8, sizeof bad_utf8, OMS_EINVAL,
                        "invalid UTF-8 in string at offset 2");
    const uint8_t overlong[] = {0x04, 0xC0, 0x80}; /* overlong NUL */
    expect_decode_error(str, NULL, overlong, sizeof overlong, OMS_EINVAL, "invalid UTF-8");
    const uint8_t surrogate[] = {0x06, 0xED, 0xA0, 0x80};
    expect_decode_error(str, NULL, surrogate, sizeof surrogate, OMS_EINVAL, "invalid UTF-8");
    const uint8_t union_idx[] = {0x04, 0x02};
    expect_decode_error(un, NULL, union_idx, sizeof union_idx, OMS_EINVAL, "union index 2");
    const uint8_t union_neg[] = {0x01, 0x02};
    expect_decode_error(un, NULL, union_neg, sizeof union_neg, OMS_EINVAL, "union index -1");
    const uint8_t enum_idx[] = {0x02};
    expect_decode_error(en, NULL, enum_idx, sizeof enum_idx, OMS_EINVAL, "enum index 1");
    const uint8_t trailing[] = {0x02, 0x00};
    expect_decode_error(in, NULL, trailing, sizeof trailing, OMS_EINVAL,
                        "trailing garbage: 1 bytes");
    const uint8_t varint11[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00};
    expect_decode_error(lng, NULL, varint11, sizeof varint11, OMS_EINVAL, "longer than 10 bytes");
    const uint8_t varint_ovf[] = {0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x02};
    expect_decode_error(lng, NULL, varint_ovf, sizeof varint_ovf, OMS_EINVAL, "overflows");
    const uint8_t int_ovf[] = {0x80, 0x80, 0x80, 0x80, 0x10}; /* 2^31 */
    expect_decode_error(in, NULL, int_ovf, sizeof int_ovf, OMS_EINVAL, "does not fit an int");
    const uint8_t bool_bad[] = {0x02};
    expect_decode_error(bo, NULL, bool_bad, sizeof bool_bad, OMS_EINVAL, "invalid boolean");
    const uint8_t nan[] = {0, 0, 0, 0, 0, 0, 0xF8, 0x7F};
    expect_decode_error(dbl, NULL, nan, sizeof nan, OMS_EINVAL, "NaN");
    const uint8_t arr_huge[] = {0xFE, 0xFF, 0xFF, 0xFF, 0x0F, 0x02};
    expect_decode_error(arr, NULL, arr_huge, sizeof arr_huge, OMS_ETRUNC, "cannot fit");
    /* block count INT64_MIN cannot be negated */
    const uint8_t arr_min[] = {0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01};
    expect_decode_error(arr, NULL, arr_min, sizeof arr_min, OMS_EINVAL, "block count");
    const uint8_t arr_bigsize[] = {0x01, 0x7E, 0x02, 0x00}; /* block of 63 bytes, 2 left */
    expect_decode_error(arr, NULL, arr_bigsize, sizeof arr_bigsize, OMS_ETRUNC,
                        "block of 63 bytes");
    const uint8_t arr_negsize[] = {0x01, 0x7F, 0x02, 0x00};
    expect_decode_error(arr, NULL, arr_negsize, sizeof arr_negsize, OMS_EINVAL,
                        "negative array block size");
    /* 2^62 nulls cost no bytes: capped */
    const uint8_t nulls[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01, 0x00};
    expect_decode_error(nul_arr, NULL, nulls, sizeof nulls, OMS_EINVAL, "zero-size items");
    const uint8_t map_key[] = {0x02, 0x02, 0xFF, 0x02, 0x00};
    expect_decode_error(map, NULL, map_key, sizeof map_key, OMS_EINVAL, "invalid UTF-8 in map key");
    const uint8_t empty[] = {0};
    expect_decode_error(in, NULL, empty, 0, OMS_ETRUNC, NULL);

    oms_avro_schema *all[] = {str, byt, lng, in, un, en, bo, dbl, arr, nul_arr, map};
    for (size_t i = 0; i < OMS_ARRAY_LEN(all); i++)
        oms_avro_schema_free(all[i]);
}

static void test_corrupt_depth(void **state)
{
    (void)state;
    /* recursive through arrays: each level is a record and an array */
    oms_avro_schema *tree = must_parse(
        "{\"type\":\"record\",\"name\":\"N\",\"fields\":[{\"name\":\"kids\",\"type\":{\"type\":"
        "\"array\",\"items\":\"N\"}}]}");
    uint8_t buf[4096];
    for (int levels = 10; levels <= 1000; levels *= 10) {
        size_t n = 0;
        for (int i = 0; i < levels; i++)
            buf[n++] = 0x02; /* one child */
        for (int i = 0; i <= levels; i++)
            buf[n++] = 0x00; /* innermost empty array, then each block end */
        char err[ERRLEN] = "";
        json_t *out = NULL;
        int rc = oms_avro_decode_json(tree, tree, buf, n, &out, err, sizeof err);
        if (levels == 10) {
            assert_int_equal(rc, 0);
            json_decref(out);
        } else {
            assert_int_equal(rc, OMS_EINVAL);
            assert_non_null(strstr(err, "nested deeper"));
            assert_null(out);
        }
    }
    oms_avro_schema_free(tree);

    /* recursive through a union: a linked list 10000 deep */
    oms_avro_schema *list = must_parse(
        "{\"type\":\"record\",\"name\":\"L\",\"fields\":[{\"name\":\"next\",\"type\":[\"null\","
        "\"L\"]}]}");
    uint8_t *deep = malloc(10001);
    memset(deep, 0x02, 10000);
    deep[10000] = 0x00;
    expect_decode_error(list, NULL, deep, 10001, OMS_EINVAL, "nested deeper");
    free(deep);
    /* skipping a deep writer field is bounded too */
    oms_avro_schema *wrap_w = must_parse(
        "{\"type\":\"record\",\"name\":\"W\",\"fields\":[{\"name\":\"l\",\"type\":{\"type\":"
        "\"record\",\"name\":\"L\",\"fields\":[{\"name\":\"next\",\"type\":[\"null\",\"L\"]}]}}]}");
    oms_avro_schema *wrap_r = must_parse("{\"type\":\"record\",\"name\":\"W\",\"fields\":[]}");
    deep = malloc(201);
    memset(deep, 0x02, 200);
    deep[200] = 0x00;
    expect_decode_error(wrap_w, wrap_r, deep, 201, OMS_EINVAL, "nested deeper");
    free(deep);
    oms_avro_schema_free(wrap_w);
    oms_avro_schema_free(wrap_r);

    /* encoding a too-deep value is refused as well */
    json_t *v = json_null();
    for (int i = 0; i < 100; i++) {
        json_t *o = json_object();
        json_object_set_new(o, "next", v);
        v = o;
    }
    uint8_t out[1024];
    size_t n;
    char err[ERRLEN] = "";
    assert_int_equal(oms_avro_encode_json(list, v, out, sizeof out, &n, err, sizeof err),
                     OMS_EINVAL);
    assert_non_null(strstr(err, "deeper"));
    json_decref(v);
    oms_avro_schema_free(list);

    /* schemas nested too deeply are rejected at parse time */
    char *sj = malloc(100 * 40);
    size_t o = 0;
    for (int i = 0; i < 100; i++)
        o += (size_t)sprintf(sj + o, "{\"type\":\"array\",\"items\":");
    o += (size_t)sprintf(sj + o, "\"int\"");
    for (int i = 0; i < 100; i++)
        sj[o++] = '}';
    sj[o] = '\0';
    err[0] = '\0';
    assert_null(oms_avro_schema_parse(sj, err, sizeof err));
    assert_non_null(strstr(err, "deeper"));
    free(sj);
}

static uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static void test_fuzz_mutations(void **state)
{
    (void)state;
    oms_avro_schema *s = must_parse(all_types_schema);
    oms_avro_schema *w1 = must_parse(order_v1), *r2 = must_parse(order_v2);
    json_t *v = must_json(all_types_value), *v1 = must_json(order_v1_value);
    uint8_t good[512], good1[512];
    size_t n = must_encode(s, v, good, sizeof good);
    size_t n1 = must_encode(w1, v1, good1, sizeof good1);
    uint64_t seed = 0x9E3779B97F4A7C15ULL;
    int ok = 0, failed = 0;
    for (int iter = 0; iter < 20000; iter++) {
        bool resolve = iter & 1;
        const uint8_t *src = resolve ? good1 : good;
        size_t len = resolve ? n1 : n;
        uint8_t *m = malloc(len);
        memcpy(m, src, len);
        int flips = 1 + (int)(xorshift(&seed) % 4);
        for (int k = 0; k < flips; k++) {
            size_t pos = xorshift(&seed) % len;
            switch (xorshift(&seed) % 3) {
            case 0: m[pos] ^= (uint8_t)(1u << (xorshift(&seed) % 8)); break;
            case 1: m[pos] = (uint8_t)xorshift(&seed); break;
            default: m[pos] = (uint8_t)(xorshift(&seed) % 2 ? 0xFF : 0x80); break;
            }
        }
        size_t mlen = len;
        if (xorshift(&seed) % 8 == 0)
            mlen = xorshift(&seed) % len; /* also truncate */
        /* exact-size copy so ASan catches any read past the end */
        uint8_t *in = malloc(mlen ? mlen : 1);
        memcpy(in, m, mlen);
        free(m);
        char err[ERRLEN] = "";
        json_t *out = NULL;
        int rc = resolve ? oms_avro_decode_json(w1, r2, in, mlen, &out, err, sizeof err)
                         : oms_avro_decode_json(s, s, in, mlen, &out, err, sizeof err);
        if (rc == 0) {
            ok++;
            /* whatever decodes must encode again with the reader schema */
            uint8_t re[2048];
            size_t rn;
            int erc = oms_avro_encode_json(resolve ? r2 : s, out, re, sizeof re, &rn, err,
                                           sizeof err);
            if (erc)
                fail_msg("iteration %d: decoded value does not re-encode: %s", iter, err);
            json_decref(out);
        } else {
            failed++;
            assert_null(out);
            assert_true(err[0] != '\0');
            assert_true(rc == OMS_EINVAL || rc == OMS_ETRUNC || rc == OMS_ESCHEMA);
        }
        free(in);
    }
    print_message("fuzz: %d decoded, %d rejected\n", ok, failed);
    assert_true(failed > 1000);
    json_decref(v);
    json_decref(v1);
    oms_avro_schema_free(s);
    oms_avro_schema_free(w1);
    oms_avro_schema_free(r2);
}

/* ---- 6. cross-check with avro-c ---------------------------------------------------------- */

static const char *xc_schema =
    "{\"type\":\"record\",\"name\":\"Order\",\"namespace\":\"oms.xc\",\"fields\":["
    "{\"name\":\"id\",\"type\":\"long\"},"
    "{\"name\":\"qty\",\"type\":\"int\"},"
    "{\"name\":\"price\",\"type\":\"double\"},"
    "{\"name\":\"ratio\",\"type\":\"float\"},"
    "{\"name\":\"ok\",\"type\":\"boolean\"},"
    "{\"name\":\"sym\",\"type\":\"string\"},"
    "{\"name\":\"raw\",\"type\":\"bytes\"},"
    "{\"name\":\"side\",\"type\":{\"type\":\"enum\",\"name\":\"Side\",\"symbols\":[\"BUY\","
    "\"SELL\"]}},"
    "{\"name\":\"tag\",\"type\":{\"type\":\"fixed\",\"name\":\"Tag\",\"size\":4}},"
    "{\"name\":\"legs\",\"type\":{\"type\":\"array\",\"items\":\"int\"}},"
    "{\"name\":\"attrs\",\"type\":{\"type\":\"map\",\"values\":\"string\"}},"
    "{\"name\":\"note\",\"type\":[\"null\",\"string\"]},"
    "{\"name\":\"none\",\"type\":[\"null\",\"string\"]},"
    "{\"name\":\"inner\",\"type\":{\"type\":\"record\",\"name\":\"Inner\",\"fields\":["
    "{\"name\":\"a\",\"type\":\"int\"},{\"name\":\"big\",\"type\":\"long\"}]}}"
    "]}";

static avro_value_t xc_field(avro_value_t *rec, const char *name)
{
    avro_value_t f;
    if (avro_value_get_by_name(rec, name, &f, NULL) != 0)
        fail_msg("avro-c: no field %s: %s", name, avro_strerror());
    return f;
}

static void test_avroc_to_ours(void **state)
{
    (void)state;
    avro_schema_t as;
    assert_int_equal(avro_schema_from_json_length(xc_schema, strlen(xc_schema), &as), 0);
    avro_value_iface_t *iface = avro_generic_class_from_schema(as);
    assert_non_null(iface);
    avro_value_t rec, f, e;
    assert_int_equal(avro_generic_value_new(iface, &rec), 0);
    f = xc_field(&rec, "id");
    assert_int_equal(avro_value_set_long(&f, INT64_MIN + 1), 0);
    f = xc_field(&rec, "qty");
    assert_int_equal(avro_value_set_int(&f, -300), 0);
    f = xc_field(&rec, "price");
    assert_int_equal(avro_value_set_double(&f, 101.25), 0);
    f = xc_field(&rec, "ratio");
    assert_int_equal(avro_value_set_float(&f, 0.125f), 0);
    f = xc_field(&rec, "ok");
    assert_int_equal(avro_value_set_boolean(&f, 1), 0);
    f = xc_field(&rec, "sym");
    assert_int_equal(avro_value_set_string(&f, "\xC3\xA9t\xC3\xA9"), 0);
    f = xc_field(&rec, "raw");
    assert_int_equal(avro_value_set_bytes(&f, "\x00\x80\xff", 3), 0);
    f = xc_field(&rec, "side");
    assert_int_equal(avro_value_set_enum(&f, 1), 0);
    f = xc_field(&rec, "tag");
    assert_int_equal(avro_value_set_fixed(&f, "ab\x01\xfe", 4), 0);
    f = xc_field(&rec, "legs");
    for (int i = 0; i < 3; i++) {
        assert_int_equal(avro_value_append(&f, &e, NULL), 0);
        assert_int_equal(avro_value_set_int(&e, i * 1000), 0);
    }
    f = xc_field(&rec, "attrs");
    assert_int_equal(avro_value_add(&f, "venue", &e, NULL, NULL), 0);
    assert_int_equal(avro_value_set_string(&e, "XPAR"), 0);
    assert_int_equal(avro_value_add(&f, "desk", &e, NULL, NULL), 0);
    assert_int_equal(avro_value_set_string(&e, "d1"), 0);
    f = xc_field(&rec, "note");
    assert_int_equal(avro_value_set_branch(&f, 1, &e), 0);
    assert_int_equal(avro_value_set_string(&e, "hello"), 0);
    f = xc_field(&rec, "none");
    assert_int_equal(avro_value_set_branch(&f, 0, &e), 0);
    assert_int_equal(avro_value_set_null(&e), 0);
    f = xc_field(&rec, "inner");
    e = xc_field(&f, "a");
    assert_int_equal(avro_value_set_int(&e, 7), 0);
    e = xc_field(&f, "big");
    assert_int_equal(avro_value_set_long(&e, INT64_MAX), 0);

    char buf[1024];
    avro_writer_t wr = avro_writer_memory(buf, sizeof buf);
    assert_int_equal(avro_value_write(wr, &rec), 0);
    size_t n = (size_t)avro_writer_tell(wr);
    avro_writer_free(wr);
    avro_value_decref(&rec);
    avro_value_iface_decref(iface);
    avro_schema_decref(as);

    oms_avro_schema *s = must_parse(xc_schema);
    json_t *v = must_decode(s, s, (const uint8_t *)buf, n);
    assert_json_eq(v, "{\"id\":-9223372036854775807,\"qty\":-300,\"price\":101.25,"
                      "\"ratio\":0.125,\"ok\":true,\"sym\":\"\\u00e9t\\u00e9\","
                      "\"raw\":\"\\u0000\\u0080\\u00ff\",\"side\":\"SELL\","
                      "\"tag\":\"ab\\u0001\\u00fe\",\"legs\":[0,1000,2000],"
                      "\"attrs\":{\"venue\":\"XPAR\",\"desk\":\"d1\"},\"note\":\"hello\","
                      "\"none\":null,\"inner\":{\"a\":7,\"big\":9223372036854775807}}");
    /* our encoder produces the same bytes (avro-c writes one block per
     * array/map, keys in insertion order, like us) */
    uint8_t ours[1024];
    size_t on = must_encode(s, v, ours, sizeof ours);
    assert_int_equal(on, n);
    assert_memory_equal(ours, buf, n);
    json_decref(v);
    oms_avro_schema_free(s);
}

static void test_ours_to_avroc(void **state)
{
    (void)state;
    oms_avro_schema *s = must_parse(xc_schema);
    json_t *v = must_json(
        "{\"id\":1234567890123,\"qty\":42,\"price\":-0.5,\"ratio\":2.5,\"ok\":false,"
        "\"sym\":\"\\u65e5\\u672c\",\"raw\":\"\\u00ff\\u0000\",\"side\":\"BUY\","
        "\"tag\":\"WXYZ\",\"legs\":[-1,2147483647],\"attrs\":{\"k\":\"v\"},\"note\":null,"
        "\"none\":\"x\",\"inner\":{\"a\":-2147483648,\"big\":-9223372036854775808}}");
    uint8_t buf[1024];
    size_t n = must_encode(s, v, buf, sizeof buf);
    json_decref(v);
    oms_avro_schema_free(s);

    avro_schema_t as;
    assert_int_equal(avro_schema_from_json_length(xc_schema, strlen(xc_schema), &as), 0);
    avro_value_iface_t *iface = avro_generic_class_from_schema(as);
    avro_value_t rec, f, e, br;
    assert_int_equal(avro_generic_value_new(iface, &rec), 0);
    avro_reader_t rd = avro_reader_memory((const char *)buf, (int64_t)n);
    if (avro_value_read(rd, &rec) != 0)
        fail_msg("avro-c cannot read our encoding: %s", avro_strerror());
    avro_reader_free(rd);

    int64_t l;
    int32_t i;
    double d;
    float fl;
    int b;
    const char *str;
    const void *bytes;
    size_t sz;
    f = xc_field(&rec, "id");
    avro_value_get_long(&f, &l);
    assert_true(l == 1234567890123LL);
    f = xc_field(&rec, "qty");
    avro_value_get_int(&f, &i);
    assert_int_equal(i, 42);
    f = xc_field(&rec, "price");
    avro_value_get_double(&f, &d);
    assert_true(d == -0.5);
    f = xc_field(&rec, "ratio");
    avro_value_get_float(&f, &fl);
    assert_true(fl == 2.5f);
    f = xc_field(&rec, "ok");
    avro_value_get_boolean(&f, &b);
    assert_int_equal(b, 0);
    f = xc_field(&rec, "sym");
    avro_value_get_string(&f, &str, &sz);
    assert_int_equal(sz, 7); /* avro-c counts the NUL */
    assert_string_equal(str, "\xE6\x97\xA5\xE6\x9C\xAC");
    f = xc_field(&rec, "raw");
    avro_value_get_bytes(&f, &bytes, &sz);
    assert_int_equal(sz, 2);
    assert_memory_equal(bytes, "\xff\x00", 2);
    f = xc_field(&rec, "side");
    avro_value_get_enum(&f, &b);
    assert_int_equal(b, 0);
    f = xc_field(&rec, "tag");
    avro_value_get_fixed(&f, &bytes, &sz);
    assert_int_equal(sz, 4);
    assert_memory_equal(bytes, "WXYZ", 4);
    f = xc_field(&rec, "legs");
    avro_value_get_size(&f, &sz);
    assert_int_equal(sz, 2);
    avro_value_get_by_index(&f, 1, &e, NULL);
    avro_value_get_int(&e, &i);
    assert_int_equal(i, INT32_MAX);
    f = xc_field(&rec, "attrs");
    avro_value_get_size(&f, &sz);
    assert_int_equal(sz, 1);
    assert_int_equal(avro_value_get_by_name(&f, "k", &e, NULL), 0);
    avro_value_get_string(&e, &str, &sz);
    assert_string_equal(str, "v");
    f = xc_field(&rec, "note");
    avro_value_get_discriminant(&f, &b);
    assert_int_equal(b, 0);
    f = xc_field(&rec, "none");
    avro_value_get_discriminant(&f, &b);
    assert_int_equal(b, 1);
    avro_value_get_current_branch(&f, &br);
    avro_value_get_string(&br, &str, &sz);
    assert_string_equal(str, "x");
    f = xc_field(&rec, "inner");
    e = xc_field(&f, "a");
    avro_value_get_int(&e, &i);
    assert_int_equal(i, INT32_MIN);
    e = xc_field(&f, "big");
    avro_value_get_long(&e, &l);
    assert_true(l == INT64_MIN);

    avro_value_decref(&rec);
    avro_value_iface_decref(iface);
    avro_schema_decref(as);
}

/* ---- 7. schema store ---------------------------------------------------------------------- */

static void test_store_basics(void **state)
{
    (void)state;
    char err[ERRLEN] = "";
    oms_avro_store *st = oms_avro_store_new();
    assert_non_null(st);
    assert_int_equal(oms_avro_store_count(st), 0);
    assert_null(oms_avro_store_latest(st, "oms.t.Order"));
    assert_int_equal(oms_avro_store_add(st, order_v1, "v1", err, sizeof err), 0);
    assert_int_equal(oms_avro_store_add(st, order_v1, "v1 again", err, sizeof err), 0);
    assert_int_equal(oms_avro_store_count(st), 1);
    /* same canonical form, different spelling: still a no-op */
    oms_avro_schema *v1 = must_parse(order_v1);
    assert_int_equal(oms_avro_store_add(st, "\"string\"", NULL, err, sizeof err), 0);
    assert_int_equal(oms_avro_store_add(st, "{\"type\":\"string\"}", NULL, err, sizeof err), 0);
    assert_int_equal(oms_avro_store_count(st), 2);
    const oms_avro_schema *g = oms_avro_store_get(st, oms_avro_schema_fingerprint(v1));
    assert_non_null(g);
    assert_string_equal(oms_avro_schema_canonical(g), oms_avro_schema_canonical(v1));
    assert_ptr_equal(oms_avro_store_latest(st, "oms.t.Order"), g);
    assert_int_equal(oms_avro_store_add(st, order_v2, "v2", err, sizeof err), 0);
    assert_int_equal(oms_avro_store_count(st), 3);
    const oms_avro_schema *latest = oms_avro_store_latest(st, "oms.t.Order");
    assert_non_null(latest);
    assert_true(latest != g);
    assert_non_null(strstr(oms_avro_schema_text(latest), "currency"));
    assert_ptr_equal(oms_avro_store_at(st, 0), g);
    assert_ptr_equal(oms_avro_store_at(st, 2), latest);
    assert_null(oms_avro_store_at(st, 3));
    assert_null(oms_avro_store_get(st, 12345));
    assert_null(oms_avro_store_latest(st, "Order"));
    /* re-adding v1 does not make it the latest */
    assert_int_equal(oms_avro_store_add(st, order_v1, "v1", err, sizeof err), 0);
    assert_ptr_equal(oms_avro_store_latest(st, "oms.t.Order"), latest);
    /* bad schema: error names the origin */
    err[0] = '\0';
    assert_int_equal(oms_avro_store_add(st, "{\"type\":\"nope\"}", "bad.avsc", err, sizeof err),
                     OMS_ESCHEMA);
    assert_non_null(strstr(err, "bad.avsc"));
    assert_int_equal(oms_avro_store_count(st), 3);

    /* v1 + SOE header -> decoded in v2's shape */
    json_t *v = must_json(order_v1_value);
    uint8_t buf[256];
    oms_avro_soe_header(oms_avro_schema_fingerprint(v1), buf);
    size_t n = must_encode(v1, v, buf + 10, sizeof buf - 10);
    json_t *out = NULL;
    const oms_avro_schema *w = NULL;
    assert_int_equal(oms_avro_store_decode(st, buf, n + 10, &out, &w, err, sizeof err), 0);
    assert_ptr_equal(w, g);
    assert_json_eq(out, "{\"id\":1,\"qty\":5,\"px\":7.0,\"amt\":3.0,\"ratio\":0.5,\"s\":\"hi\","
                        "\"raw\":\"ok\",\"note\":null,\"currency\":\"EUR\",\"version\":2,"
                        "\"meta\":{\"src\":\"web\",\"n\":1},\"tags\":[\"a\",\"b\"],"
                        "\"weight\":0.0,\"blob\":\"\\u00ff\",\"side\":\"SELL\",\"opt\":5}");
    json_decref(out);
    /* unknown fingerprint */
    oms_avro_soe_header(0x0123456789abcdefULL, buf);
    err[0] = '\0';
    assert_int_equal(oms_avro_store_decode(st, buf, n + 10, &out, &w, err, sizeof err),
                     OMS_ENOTFOUND);
    assert_null(out);
    assert_null(w);
    assert_non_null(strstr(err, "0x0123456789abcdef"));
    json_decref(v);
    oms_avro_schema_free(v1);
    oms_avro_store_free(st);

    /* nothing compiled in for the unit test binary is required, but loading
     * what is there must work */
    st = oms_avro_store_new();
    int rc = oms_avro_store_load_embedded(st, err, sizeof err);
    if (rc < 0)
        fail_msg("embedded schemas: %s", err);
    assert_int_equal((size_t)rc, oms_avro_store_count(st));
    oms_avro_store_free(st);
}

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void remove_file(const char *dir, const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    unlink(path);
}

static void test_store_load_dir(void **state)
{
    (void)state;
    char dir[] = "/tmp/oms_test_avro_XXXXXX";
    assert_non_null(mkdtemp(dir));
    /* written in reverse order: loading must sort by name */
    write_file(dir, "order.v2.avsc", order_v2);
    write_file(dir, "order.v1.avsc", order_v1);
    write_file(dir, "notes.txt", "not a schema");
    char err[ERRLEN] = "";
    oms_avro_store *st = oms_avro_store_new();
    int rc = oms_avro_store_load_dir(st, dir, err, sizeof err);
    if (rc < 0)
        fail_msg("load_dir: %s", err);
    assert_int_equal(rc, 2);
    assert_int_equal(oms_avro_store_count(st), 2);
    assert_non_null(strstr(oms_avro_schema_text(oms_avro_store_at(st, 0)), "legacy"));
    const oms_avro_schema *latest = oms_avro_store_latest(st, "oms.t.Order");
    assert_ptr_equal(latest, oms_avro_store_at(st, 1));
    assert_non_null(strstr(oms_avro_schema_text(latest), "currency"));
    /* loading again adds nothing */
    assert_int_equal(oms_avro_store_load_dir(st, dir, err, sizeof err), 0);

    /* a bad file: the error names it */
    write_file(dir, "zz-broken.avsc", "{\"type\":\"record\",\"name\":\"X\",\"fields\":[");
    err[0] = '\0';
    rc = oms_avro_store_load_dir(st, dir, err, sizeof err);
    assert_true(rc < 0);
    assert_non_null(strstr(err, "zz-broken.avsc"));
    oms_avro_store_free(st);

    st = oms_avro_store_new();
    err[0] = '\0';
    assert_true(oms_avro_store_load_dir(st, "/nonexistent/oms", err, sizeof err) < 0);
    assert_true(err[0] != '\0');
    oms_avro_store_free(st);

    remove_file(dir, "order.v1.avsc");
    remove_file(dir, "order.v2.avsc");
    remove_file(dir, "notes.txt");
    remove_file(dir, "zz-broken.avsc");
    assert_int_equal(rmdir(dir), 0);
}

/* ---- 8. schema parse errors --------------------------------------------------------------- */

static void expect_parse_error(const char *json, const char *needle)
{
    char err[ERRLEN] = "";
    oms_avro_schema *s = oms_avro_schema_parse(json, err, sizeof err);
    if (s) {
        oms_avro_schema_free(s);
        fail_msg("schema unexpectedly accepted: %s", json);
    }
    if (!err[0])
        fail_msg("empty error for %s", json);
    if (needle && !strstr(err, needle))
        fail_msg("error '%s' does not contain '%s' (schema %s)", err, needle, json);
}

#define REC(fields) "{\"type\":\"record\",\"name\":\"R\",\"fields\":[" fields "]}"

static void test_schema_parse_errors(void **state)
{
    (void)state;
    expect_parse_error("{\"type\":", "invalid JSON");
    expect_parse_error("", "invalid JSON");
    expect_parse_error("42", "not integer");
    expect_parse_error("\"integer\"", "unknown type 'integer'");
    expect_parse_error(REC("{\"name\":\"a\",\"type\":\"Nope\"}"),
                       "record 'R' field 'a': unknown type 'Nope'");
    expect_parse_error("{\"type\":\"record\",\"fields\":[]}", "without a \"name\"");
    expect_parse_error("{\"type\":\"record\",\"name\":\"R\"}", "fields");
    expect_parse_error(REC("{\"name\":\"a\",\"type\":\"int\"},{\"name\":\"a\",\"type\":\"long\"}"),
                       "duplicate field 'a'");
    expect_parse_error(REC("{\"name\":\"a\",\"type\":\"int\",\"default\":\"x\"}"),
                       "field 'a': invalid default: expected int, got string");
    expect_parse_error(REC("{\"name\":\"a\",\"type\":\"int\",\"default\":4294967296}"),
                       "out of range");
    expect_parse_error(REC("{\"name\":\"a\",\"type\":[\"null\",\"string\"],\"default\":\"x\"}"),
                       "expected null, got string");
    expect_parse_error(REC("{\"name\":\"a\",\"type\":{\"type\":\"record\",\"name\":\"S\","
                           "\"fields\":[{\"name\":\"b\",\"type\":\"int\"}]},\"default\":{}}"),
                       "lacks field 'b'");
    expect_parse_error(REC("{\"name\":\"a\",\"type\":\"bytes\",\"default\":\"\\u20ac\"}"),
                       "above U+00FF");
    expect_parse_error("[\"int\",\"int\"]", "twice");
    expect_parse_error("[\"null\",{\"type\":\"array\",\"items\":\"int\"},{\"type\":\"array\","
                       "\"items\":\"long\"}]",
                       "twice");
    expect_parse_error("[\"null\",[\"int\",\"string\"]]", "nested unions");
    expect_parse_error("{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"A\",\"1B\"]}",
                       "invalid symbol");
    expect_parse_error("{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"A\",\"A\"]}",
                       "duplicate symbol");
    expect_parse_error("{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"A\"],\"default\":\"B\"}",
                       "default");
    expect_parse_error("{\"type\":\"enum\",\"name\":\"E\"}", "symbols");
    expect_parse_error("{\"type\":\"fixed\",\"name\":\"F\"}", "size");
    expect_parse_error("{\"type\":\"fixed\",\"name\":\"F\",\"size\":-1}", "size");
    expect_parse_error("{\"type\":\"array\"}", "items");
    expect_parse_error("{\"type\":\"map\"}", "values");
    expect_parse_error("{\"type\":\"record\",\"name\":\"a-b\",\"fields\":[]}",
                       "invalid record name");
    expect_parse_error("{\"type\":\"record\",\"name\":\"int\",\"fields\":[]}", "primitive");
    expect_parse_error(REC("{\"name\":\"x\",\"type\":{\"type\":\"record\",\"name\":\"R\","
                           "\"fields\":[]}}"),
                       "redefinition of 'R'");
    expect_parse_error(REC("{\"name\":\"9x\",\"type\":\"int\"}"), "invalid field name");
    expect_parse_error(REC("{\"name\":\"x\"}"), "without \"type\"");
    expect_parse_error(REC("{\"name\":\"x\",\"type\":\"int\",\"order\":\"sideways\"}"), "order");
    expect_parse_error("{\"logicalType\":\"uuid\"}", "without \"type\"");
    expect_parse_error("{\"type\":\"record\",\"name\":\"R\",\"namespace\":\"1a\",\"fields\":[]}",
                       "namespace");
    /* duplicate keys are ambiguous */
    expect_parse_error("{\"type\":\"string\",\"type\":\"int\"}", "invalid JSON");
    /* a NULL errbuf is allowed */
    assert_null(oms_avro_schema_parse("[", NULL, 0));
}

static void test_schema_names(void **state)
{
    (void)state;
    /* nested definitions inherit the enclosing namespace; references work
     * unqualified (same namespace), qualified, and to the null namespace */
    oms_avro_schema *s = must_parse(
        "{\"type\":\"record\",\"name\":\"Outer\",\"namespace\":\"a.b\",\"fields\":["
        "{\"name\":\"e\",\"type\":{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"X\"]}},"
        "{\"name\":\"e2\",\"type\":\"E\"},"
        "{\"name\":\"e3\",\"type\":\"a.b.E\"},"
        "{\"name\":\"f\",\"type\":{\"type\":\"fixed\",\"name\":\"F\",\"namespace\":\"\","
        "\"size\":2}},"
        "{\"name\":\"f2\",\"type\":\"F\"},"
        "{\"name\":\"g\",\"type\":{\"type\":\"record\",\"name\":\"c.G\",\"fields\":["
        "{\"name\":\"h\",\"type\":{\"type\":\"enum\",\"name\":\"H\",\"symbols\":[\"Y\"]}}]}},"
        "{\"name\":\"h2\",\"type\":\"c.H\"},"
        "{\"name\":\"o\",\"type\":[\"null\",\"Outer\"]},"
        "{\"name\":\"ts\",\"type\":{\"type\":\"long\",\"logicalType\":\"timestamp-millis\"}}"
        "]}");
    assert_string_equal(oms_avro_schema_name(s), "a.b.Outer");
    assert_string_equal(
        oms_avro_schema_canonical(s),
        "{\"name\":\"a.b.Outer\",\"type\":\"record\",\"fields\":["
        "{\"name\":\"e\",\"type\":{\"name\":\"a.b.E\",\"type\":\"enum\",\"symbols\":[\"X\"]}},"
        "{\"name\":\"e2\",\"type\":\"a.b.E\"},{\"name\":\"e3\",\"type\":\"a.b.E\"},"
        "{\"name\":\"f\",\"type\":{\"name\":\"F\",\"type\":\"fixed\",\"size\":2}},"
        "{\"name\":\"f2\",\"type\":\"F\"},"
        "{\"name\":\"g\",\"type\":{\"name\":\"c.G\",\"type\":\"record\",\"fields\":["
        "{\"name\":\"h\",\"type\":{\"name\":\"c.H\",\"type\":\"enum\",\"symbols\":[\"Y\"]}}]}},"
        "{\"name\":\"h2\",\"type\":\"c.H\"},"
        "{\"name\":\"o\",\"type\":[\"null\",\"a.b.Outer\"]},"
        "{\"name\":\"ts\",\"type\":\"long\"}]}");
    oms_avro_schema_free(s);
    /* "H" is not visible unqualified from a.b */
    expect_parse_error("{\"type\":\"record\",\"name\":\"Outer\",\"namespace\":\"a.b\",\"fields\":["
                       "{\"name\":\"g\",\"type\":{\"type\":\"record\",\"name\":\"c.G\",\"fields\":"
                       "[{\"name\":\"h\",\"type\":{\"type\":\"enum\",\"name\":\"H\",\"symbols\":"
                       "[\"Y\"]}}]}},{\"name\":\"h2\",\"type\":\"H\"}]}",
                       "unknown type 'H'");
    /* valid defaults of many types parse */
    s = must_parse(REC("{\"name\":\"a\",\"type\":\"boolean\",\"default\":false},"
                       "{\"name\":\"b\",\"type\":\"long\",\"default\":-1},"
                       "{\"name\":\"c\",\"type\":\"float\",\"default\":1.5},"
                       "{\"name\":\"d\",\"type\":{\"type\":\"map\",\"values\":\"int\"},"
                       "\"default\":{\"x\":1}},"
                       "{\"name\":\"e\",\"type\":{\"type\":\"fixed\",\"name\":\"F\",\"size\":1},"
                       "\"default\":\"\\u00ff\"},"
                       "{\"name\":\"f\",\"type\":\"null\",\"default\":null},"
                       "{\"name\":\"g\",\"type\":[\"string\",\"null\"],\"default\":\"s\"}"));
    uint8_t buf[64];
    json_t *v = must_json("{}");
    size_t n = must_encode(s, v, buf, sizeof buf);
    json_t *d = must_decode(s, s, buf, n);
    assert_json_eq(d, "{\"a\":false,\"b\":-1,\"c\":1.5,\"d\":{\"x\":1},\"e\":\"\\u00ff\","
                      "\"f\":null,\"g\":\"s\"}");
    json_decref(d);
    json_decref(v);
    oms_avro_schema_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc64_basics),
        cmocka_unit_test(test_schema_vectors),
        cmocka_unit_test(test_soe_int_header),
        cmocka_unit_test(test_soe_message_v1),
        cmocka_unit_test(test_roundtrip_primitives),
        cmocka_unit_test(test_roundtrip_complex),
        cmocka_unit_test(test_roundtrip_recursive),
        cmocka_unit_test(test_decode_blocks),
        cmocka_unit_test(test_encode_errors),
        cmocka_unit_test(test_resolution_defaults_and_promotions),
        cmocka_unit_test(test_resolution_promotions),
        cmocka_unit_test(test_resolution_unions),
        cmocka_unit_test(test_resolution_enums),
        cmocka_unit_test(test_resolution_missing_default),
        cmocka_unit_test(test_resolution_aliases),
        cmocka_unit_test(test_resolution_recursive),
        cmocka_unit_test(test_corrupt_truncation),
        cmocka_unit_test(test_corrupt_soe),
        cmocka_unit_test(test_corrupt_values),
        cmocka_unit_test(test_corrupt_depth),
        cmocka_unit_test(test_fuzz_mutations),
        cmocka_unit_test(test_avroc_to_ours),
        cmocka_unit_test(test_ours_to_avroc),
        cmocka_unit_test(test_store_basics),
        cmocka_unit_test(test_store_load_dir),
        cmocka_unit_test(test_schema_parse_errors),
        cmocka_unit_test(test_schema_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
