/* test_json.c — pkg/json: oms_json_dumps() is json_dumps() byte for byte
 * but for the digits of reals, which are the shortest that read back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/oms.h"
#include "json/json.h"

static uint64_t rng_state = 0x2545F4914F6CDD1Dull;

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

/* Both serializers on j with flags: the same text, or both refuse. */
static void assert_same_dump(const json_t *j, size_t flags)
{
    char *a = oms_json_dumps(j, flags), *b = json_dumps(j, flags);
    if ((a == NULL) != (b == NULL) || (a && strcmp(a, b) != 0))
        fail_msg("flags %#zx:\n oms_json_dumps: %s\n json_dumps:     %s", flags,
                 a ? a : "(null)", b ? b : "(null)");
    free(a);
    free(b);
}

/* Pieces of strings: ASCII, what must be escaped, what ENSURE_ASCII and
 * ESCAPE_SLASH change, 2- to 4-byte UTF-8 (U+1F600 needs a surrogate pair
 * as \u escapes), DEL (never escaped) and NUL (only via json_stringn). */
static const char *const pieces[] = {"a", "Z", " ", "\"", "\\", "/", "\b", "\f", "\n", "\r",
                                     "\t", "\x01", "\x1f", "\x7f", "\xc3\xa9", "\xe2\x9c\x93",
                                     "\xf0\x9f\x98\x80", "\xef\xbf\xbf", "k9"};

static size_t random_text(char *buf, size_t cap)
{
    size_t n = 0, want = rnd_below(8);
    for (size_t i = 0; i < want; i++) {
        const char *p = pieces[rnd_below(OMS_ARRAY_LEN(pieces))];
        size_t l = strlen(p);
        if (n + l + 2 > cap)
            break;
        memcpy(buf + n, p, l);
        n += l;
        if (rnd_below(16) == 0)
            buf[n++] = '\0'; /* an embedded NUL */
    }
    buf[n] = '\0';
    return n;
}

/* Reals whose "%.17g" is also their shortest form (dyadic fractions with
 * few digits, integers), so jansson's text is the reference for them too. */
static double exact_real(void)
{
    switch (rnd_below(4)) {
    case 0: return (double)(int64_t)(rnd64() % 2001 - 1000) / 8;
    case 1: return (double)rnd_below(1u << 20);
    case 2: return ldexp(1.0, (int)rnd_below(70) - 20); /* 2^-20 has 14 digits */
    default: return rnd64() & 1 ? 0.0 : -0.0;
    }
}

static json_t *random_json(int depth)
{
    char buf[128];
    switch (rnd_below(depth > 4 ? 6 : 8)) {
    case 0: return json_integer((json_int_t)(rnd64() >> rnd_below(64)) * (rnd64() & 1 ? 1 : -1));
    case 1: {
        size_t n = random_text(buf, sizeof buf);
        return json_stringn(buf, n);
    }
    case 2: return json_null();
    case 3: return json_real(exact_real());
    case 4: return json_true();
    case 5: return json_false();
    case 6: {
        json_t *a = json_array();
        for (size_t i = rnd_below(5); i > 0; i--)
            json_array_append_new(a, random_json(depth + 1));
        return a;
    }
    default: {
        json_t *o = json_object();
        for (size_t i = rnd_below(6); i > 0; i--) {
            size_t n = random_text(buf, sizeof buf);
            json_object_setn_new(o, buf, n, random_json(depth + 1));
        }
        return o;
    }
    }
}

static void test_matches_jansson(void **state)
{
    (void)state;
    static const size_t flag_sets[] = {
        JSON_COMPACT,
        0,
        JSON_COMPACT | JSON_SORT_KEYS,
        JSON_INDENT(2),
        JSON_INDENT(4) | JSON_SORT_KEYS,
        JSON_INDENT(31) | JSON_COMPACT,
        JSON_COMPACT | JSON_ENSURE_ASCII,
        JSON_ESCAPE_SLASH | JSON_ENSURE_ASCII | JSON_INDENT(1),
        JSON_COMPACT | JSON_EMBED,
        JSON_INDENT(3) | JSON_EMBED | JSON_SORT_KEYS,
        JSON_COMPACT | JSON_REAL_PRECISION(15),
    };
    for (int i = 0; i < 20000; i++) {
        json_t *j = random_json(0);
        size_t flags = flag_sets[rnd_below(OMS_ARRAY_LEN(flag_sets))];
        assert_same_dump(j, flags);
        assert_same_dump(j, flags | JSON_ENCODE_ANY);
        json_decref(j);
    }
}

static void test_refusals(void **state)
{
    (void)state;
    /* what json_dumps refuses, refused alike */
    assert_null(oms_json_dumps(NULL, JSON_COMPACT));
    assert_null(oms_json_dumps(NULL, JSON_ENCODE_ANY));
    json_t *s = json_string("x"), *i = json_integer(7), *r = json_real(0.5);
    assert_same_dump(s, JSON_COMPACT);
    assert_same_dump(s, JSON_COMPACT | JSON_ENCODE_ANY);
    assert_same_dump(i, JSON_COMPACT);
    assert_same_dump(i, JSON_ENCODE_ANY);
    assert_same_dump(r, JSON_COMPACT);
    assert_same_dump(r, JSON_ENCODE_ANY);
    assert_same_dump(json_null(), 0);
    assert_same_dump(json_true(), JSON_ENCODE_ANY);
    json_decref(s);
    json_decref(i);
    json_decref(r);
    /* a string that is not UTF-8 (only json_string_nocheck makes one) */
    json_t *bad = json_pack("{s:[o]}", "k", json_string_nocheck("a\xff"));
    assert_non_null(bad);
    assert_same_dump(bad, JSON_COMPACT);
    assert_null(oms_json_dumps(bad, JSON_COMPACT));
    json_decref(bad);
    /* a cycle */
    json_t *a = json_array(), *o = json_object();
    json_object_set(o, "a", a);
    json_array_append(a, o);
    assert_null(oms_json_dumps(a, JSON_COMPACT));
    assert_same_dump(o, JSON_COMPACT);
    json_array_clear(a);
    json_decref(a);
    json_decref(o);
    /* the same value twice is no cycle */
    json_t *leaf = json_array(), *twice = json_array();
    json_array_append(twice, leaf);
    json_array_append(twice, leaf);
    assert_same_dump(twice, JSON_COMPACT);
    json_decref(leaf);
    json_decref(twice);
}

static void test_reals_shortest(void **state)
{
    (void)state;
    json_t *j = json_pack("{s:f,s:[f,f,f,f,f,f],s:f,s:I}", "totalAmount", 755.32, "prices", 88.94,
                          100.0, -0.0, 1e21, 0.1 + 0.2, 5e-324, "max", 1.7976931348623157e308,
                          "id", (json_int_t)123456789012345678);
    assert_non_null(j);
    char *s = oms_json_dumps(j, JSON_COMPACT);
    assert_string_equal(s, "{\"totalAmount\":755.32,\"prices\":[88.94,100.0,-0.0,1e21,"
                           "0.30000000000000004,5e-324],\"max\":1.7976931348623157e308,"
                           "\"id\":123456789012345678}");
    free(s);
    /* JSON_REAL_PRECISION does not cut digits that are needed */
    s = oms_json_dumps(json_object_get(j, "prices"), JSON_COMPACT | JSON_REAL_PRECISION(15));
    assert_string_equal(s, "[88.94,100.0,-0.0,1e21,0.30000000000000004,5e-324]");
    free(s);
    /* and what it writes reads back to the same values */
    s = oms_json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_t *back = json_loads(s, 0, NULL);
    assert_non_null(back);
    assert_true(json_equal(back, j));
    json_decref(back);
    free(s);
    json_decref(j);
    /* a real that is integral stays a real */
    json_t *r = json_real(123456789012345680.0);
    s = oms_json_dumps(r, JSON_ENCODE_ANY);
    assert_string_equal(s, "1.2345678901234568e17");
    free(s);
    json_real_set(r, 1e16);
    s = oms_json_dumps(r, JSON_ENCODE_ANY);
    assert_string_equal(s, "10000000000000000.0");
    free(s);
    json_decref(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matches_jansson),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_reals_shortest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
