/* test_sentry.c — pkg/sentry: DSN parsing, the auth header and endpoint,
 * event ids, envelopes and their gzip. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "sentry/sentry.h"

static void test_dsn_ok(void **state)
{
    oms_sentry_dsn d;
    char err[256], buf[512];
    assert_int_equal(oms_sentry_dsn_parse("https://abc123@o1.ingest.sentry.io/42", "SENTRY_DSN", &d,
                                          err, sizeof err),
                     0);
    assert_string_equal(d.scheme, "https");
    assert_string_equal(d.public_key, "abc123");
    assert_string_equal(d.secret_key, "");
    assert_string_equal(d.host, "o1.ingest.sentry.io");
    assert_int_equal(d.port, 0);
    assert_string_equal(d.path, "");
    assert_string_equal(d.project_id, "42");
    assert_true(oms_sentry_envelope_url(&d, buf, sizeof buf) > 0);
    assert_string_equal(buf, "https://o1.ingest.sentry.io/api/42/envelope/");
    assert_true(oms_sentry_auth_header(&d, "omsd/1.0", buf, sizeof buf) > 0);
    assert_string_equal(buf, "Sentry sentry_version=7, sentry_client=omsd/1.0, sentry_key=abc123");
    oms_sentry_dsn_describe(&d, buf, sizeof buf);
    assert_string_equal(buf, "https://o1.ingest.sentry.io project 42");

    /* port, a path prefix, a legacy secret, a trailing slash */
    assert_int_equal(oms_sentry_dsn_parse("http://pub:sec@127.0.0.1:9000/sentry/7/", "X", &d, err,
                                          sizeof err),
                     0);
    assert_int_equal(d.port, 9000);
    assert_string_equal(d.path, "/sentry");
    assert_string_equal(d.secret_key, "sec");
    assert_string_equal(d.project_id, "7");
    oms_sentry_envelope_url(&d, buf, sizeof buf);
    assert_string_equal(buf, "http://127.0.0.1:9000/sentry/api/7/envelope/");
    oms_sentry_auth_header(&d, "c/1", buf, sizeof buf);
    assert_non_null(strstr(buf, "sentry_secret=sec"));
    oms_sentry_dsn_describe(&d, buf, sizeof buf);
    assert_null(strstr(buf, "pub"));
    assert_null(strstr(buf, "sec"));

    assert_int_equal(oms_sentry_dsn_parse("https://k@[::1]:8000/3", "X", &d, err, sizeof err), 0);
    assert_string_equal(d.host, "[::1]");
    assert_int_equal(d.port, 8000);
}

static void test_dsn_bad(void **state)
{
    static const struct {
        const char *dsn, *why;
    } bad[] = {
        {"", "empty"},
        {"ftp://k@h/1", "expected https://"},
        {"https://h/1", "no public key"},
        {"https://@h/1", "public key"},
        {"https://k@h", "no project id"},
        {"https://k@h/", "no project id"},
        {"https://k@h/abc", "must be a number"},
        {"https://k@h:0/1", "port"},
        {"https://k@h:99999/1", "port"},
        {"https://k@h:x/1", "port"},
        {"https://k@/1", "no host"},
        {"https://k@h/1?x=1", "must be a number"},
        {"https://k y@h/1", "space"},
        {"https://k\r\n@h/1", "control"},
        {"https://k@h!/1", "host"},
        {"https://k@[::1/1", "IPv6"},
    };
    for (size_t i = 0; i < OMS_ARRAY_LEN(bad); i++) {
        oms_sentry_dsn d;
        char err[256] = "";
        assert_int_equal(oms_sentry_dsn_parse(bad[i].dsn, "SENTRY_DSN", &d, err, sizeof err),
                         OMS_EINVAL);
        if (!strstr(err, bad[i].why))
            fail_msg("dsn '%s': message '%s' lacks '%s'", bad[i].dsn, err, bad[i].why);
        assert_non_null(strstr(err, "SENTRY_DSN"));
    }
    /* the key never appears in a message */
    oms_sentry_dsn d;
    char err[256];
    assert_int_equal(oms_sentry_dsn_parse("https://supersecretkey@h/notanumber", "X", &d, err,
                                          sizeof err),
                     OMS_EINVAL);
    assert_null(strstr(err, "supersecretkey"));
}

static void test_event_id(void **state)
{
    char id[33], id2[33];
    oms_sentry_event_id("01939B2C-7D4E-7A3B-8C9D-0123456789AB", id);
    assert_string_equal(id, "01939b2c7d4e7a3b8c9d0123456789ab");
    oms_sentry_event_id("digest-x", id);
    oms_sentry_event_id("digest-x", id2);
    assert_string_equal(id, id2);
    assert_int_equal(strlen(id), 32);
    oms_sentry_event_id("digest-y", id2);
    assert_string_not_equal(id, id2);
    /* almost a UUID is hashed, not copied */
    oms_sentry_event_id("01939b2c-7d4e-7a3b-8c9d-0123456789ag", id);
    assert_string_not_equal(id, "01939b2c7d4e7a3b8c9d0123456789ag");
}

static void test_envelope(void **state)
{
    json_t *tags = json_pack("{s:s,s:s}", "orderId", "o-1", "aliasId", "ORDER-1");
    json_t *extra = json_pack("{s:f}", "total", 12.5);
    oms_sentry_event ev = {.event_id = "0123456789abcdef0123456789abcdef",
                           .level = "info",
                           .message = "Order creation alert triggered for order ORDER-1",
                           .environment = "test",
                           .tags = tags,
                           .extra = extra,
                           .timestamp_ms = 1764979200123};
    char *env;
    size_t len;
    assert_int_equal(oms_sentry_envelope(&ev, 1764979200999, &env, &len), 0);
    assert_int_equal(strlen(env), len);
    /* three lines: envelope header, item header, event */
    char *l1 = env, *l2 = strchr(l1, '\n') + 1, *l3 = strchr(l2, '\n') + 1;
    assert_true(l3 > l2 && l2 > l1);
    json_t *h = json_loadb(l1, (size_t)(l2 - l1 - 1), 0, NULL);
    assert_non_null(h);
    assert_string_equal(json_string_value(json_object_get(h, "event_id")), ev.event_id);
    assert_string_equal(json_string_value(json_object_get(h, "sent_at")), "2025-12-06T00:00:00.999Z");
    json_t *ih = json_loadb(l2, (size_t)(l3 - l2 - 1), 0, NULL);
    assert_string_equal(json_string_value(json_object_get(ih, "type")), "event");
    size_t blen = (size_t)json_integer_value(json_object_get(ih, "length"));
    assert_int_equal(blen + 1, len - (size_t)(l3 - env));
    json_t *e = json_loadb(l3, blen, 0, NULL);
    assert_non_null(e);
    assert_string_equal(json_string_value(json_object_get(e, "level")), "info");
    assert_string_equal(json_string_value(json_object_get(json_object_get(e, "message"), "formatted")),
                        ev.message);
    assert_string_equal(json_string_value(json_object_get(json_object_get(e, "tags"), "aliasId")),
                        "ORDER-1");
    assert_true(json_real_value(json_object_get(json_object_get(e, "extra"), "total")) == 12.5);
    assert_string_equal(json_string_value(json_object_get(e, "timestamp")), "2025-12-06T00:00:00.123Z");
    assert_string_equal(json_string_value(json_object_get(e, "environment")), "test");
    json_decref(h);
    json_decref(ih);
    json_decref(e);

    /* gzip round trip */
    unsigned char *gz;
    size_t gzlen;
    assert_int_equal(oms_sentry_gzip(env, len, &gz, &gzlen), 0);
    assert_true(gz[0] == 0x1f && gz[1] == 0x8b);
    unsigned char *back = malloc(len + 16);
    z_stream z = {0};
    assert_int_equal(inflateInit2(&z, 15 + 16), Z_OK);
    z.next_in = gz;
    z.avail_in = (uInt)gzlen;
    z.next_out = back;
    z.avail_out = (uInt)(len + 16);
    assert_int_equal(inflate(&z, Z_FINISH), Z_STREAM_END);
    assert_int_equal(z.total_out, len);
    assert_memory_equal(back, env, len);
    inflateEnd(&z);
    free(back);
    free(gz);
    free(env);

    /* refused: a bad event id, a bad level, a tag that is not a string */
    ev.event_id = "0123";
    assert_int_equal(oms_sentry_envelope(&ev, 0, &env, &len), OMS_EINVAL);
    ev.event_id = "0123456789ABCDEF0123456789abcdef";
    assert_int_equal(oms_sentry_envelope(&ev, 0, &env, &len), OMS_EINVAL);
    ev.event_id = "0123456789abcdef0123456789abcdef";
    ev.level = "loud";
    assert_int_equal(oms_sentry_envelope(&ev, 0, &env, &len), OMS_EINVAL);
    ev.level = "error";
    json_object_set_new(tags, "n", json_integer(1));
    assert_int_equal(oms_sentry_envelope(&ev, 0, &env, &len), OMS_EINVAL);
    json_decref(tags);
    json_decref(extra);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dsn_ok),
        cmocka_unit_test(test_dsn_bad),
        cmocka_unit_test(test_event_id),
        cmocka_unit_test(test_envelope),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
