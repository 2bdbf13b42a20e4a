/* test_postoken.c — pkg/gateway/postoken: position tokens and process ids. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/oms.h"
#include "gateway/postoken.h"

static const char *const topics[3] = {"oms.orders", "oms.inventory", "oms.notifications"};
static const unsigned char secret[] = "a secret of thirty-two bytes, ok";

static oms_postoken *key(void)
{
    char err[128];
    oms_postoken *k = oms_postoken_new(secret, sizeof secret - 1, topics, 3, err, sizeof err);
    assert_non_null(k);
    return k;
}

static void test_roundtrip(void **state)
{
    (void)state;
    oms_postoken *k = key();
    int np[3] = {6, 6, 6};
    int64_t vec[18], back[18];
    for (int i = 0; i < 18; i++)
        vec[i] = i % 5 == 0 ? -1 : 1000 + i * 37;
    vec[3] = INT64_MAX;
    vec[4] = 0;
    char tok[512];
    int n = oms_postoken_encode(k, 3, np, vec, tok, sizeof tok);
    assert_true(n > 0);
    assert_int_equal((size_t)n, strlen(tok));
    assert_true((size_t)n <= oms_postoken_max_len(18));
    assert_int_equal(tok[0], '3');
    for (int i = 1; i < n; i++)
        assert_non_null(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
                               tok[i]));
    unsigned cls = 9;
    assert_int_equal(oms_postoken_decode(k, tok, (size_t)n, &cls, np, back), OMS_OK);
    assert_int_equal(cls, 3);
    for (int i = 0; i < 18; i++)
        assert_int_equal(back[i], vec[i]);
    /* the class digit is the receiver's subscriptions, outside the MAC */
    tok[0] = '1';
    assert_int_equal(oms_postoken_decode(k, tok, (size_t)n, &cls, np, back), OMS_OK);
    assert_int_equal(cls, 1);
    oms_postoken_free(k);
}

static void test_compact(void **state)
{
    (void)state;
    oms_postoken *k = key();
    int np[3] = {6, 6, 6};
    int64_t vec[18];
    for (int i = 0; i < 18; i++)
        vec[i] = 1500000 + (i * 7919) % 300;
    char tok[512];
    int n = oms_postoken_encode(k, 0, np, vec, tok, sizeof tok);
    assert_true(n > 0);
    /* 18 partitions of seven-digit offsets: far less than "topic:p:o" x 18 */
    if (n > 80)
        fail_msg("token of %d characters: %s", n, tok);
    oms_postoken_free(k);
}

static void test_forgery(void **state)
{
    (void)state;
    oms_postoken *k = key();
    int np[3] = {2, 1, 3};
    int64_t vec[6] = {10, 20, 30, 40, 50, 60}, back[6];
    char tok[256];
    int n = oms_postoken_encode(k, 1, np, vec, tok, sizeof tok);
    assert_true(n > 0);
    /* every one-character edit after the class digit is refused */
    for (int i = 1; i < n; i++) {
        char t2[256];
        memcpy(t2, tok, (size_t)n + 1);
        t2[i] = t2[i] == 'A' ? 'B' : 'A';
        int rc = oms_postoken_decode(k, t2, (size_t)n, NULL, np, back);
        if (rc == OMS_OK)
            fail_msg("edit at %d accepted: %s", i, t2);
    }
    /* truncated, extended, empty, bad class, bad characters */
    assert_int_not_equal(oms_postoken_decode(k, tok, (size_t)n - 1, NULL, np, back), OMS_OK);
    char longer[300];
    snprintf(longer, sizeof longer, "%sAAAA", tok);
    assert_int_not_equal(oms_postoken_decode(k, longer, strlen(longer), NULL, np, back), OMS_OK);
    assert_int_equal(oms_postoken_decode(k, "", 0, NULL, np, back), OMS_EINVAL);
    assert_int_equal(oms_postoken_decode(k, "9AAAA", 5, NULL, np, back), OMS_EINVAL);
    /* the class is one lowercase hex digit: 'f' (all four bits) reads back,
     * 'A' or 'g' are no class */
    char t4[256];
    memcpy(t4, tok, (size_t)n + 1);
    t4[0] = 'f';
    unsigned c4 = 0;
    assert_int_equal(oms_postoken_decode(k, t4, (size_t)n, &c4, np, back), OMS_OK);
    assert_int_equal(c4, 15);
    t4[0] = 'A';
    assert_int_equal(oms_postoken_decode(k, t4, (size_t)n, NULL, np, back), OMS_EINVAL);
    t4[0] = 'g';
    assert_int_equal(oms_postoken_decode(k, t4, (size_t)n, NULL, np, back), OMS_EINVAL);
    char t5[256];
    assert_true(oms_postoken_encode(k, 12, np, vec, t5, sizeof t5) > 0);
    assert_int_equal(t5[0], 'c');
    assert_int_equal(oms_postoken_encode(k, 16, np, vec, t5, sizeof t5), OMS_EINVAL);
    assert_int_equal(oms_postoken_decode(k, "0oms.orders:0:5", 15, NULL, np, back), OMS_EINVAL);
    /* another secret, or other topics */
    char err[128];
    const unsigned char other[] = "another secret of thirty-two byt";
    oms_postoken *k2 = oms_postoken_new(other, sizeof other - 1, topics, 3, err, sizeof err);
    assert_int_equal(oms_postoken_decode(k2, tok, (size_t)n, NULL, np, back), OMS_EDENIED);
    const char *const t3[3] = {"x.orders", "oms.inventory", "oms.notifications"};
    oms_postoken *k3 = oms_postoken_new(secret, sizeof secret - 1, t3, 3, err, sizeof err);
    assert_int_equal(oms_postoken_decode(k3, tok, (size_t)n, NULL, np, back), OMS_EDENIED);
    /* signed, but for another partition layout */
    int np2[3] = {2, 2, 3};
    assert_int_equal(oms_postoken_decode(k, tok, (size_t)n, NULL, np2, back), OMS_ENOTFOUND);
    oms_postoken_free(k2);
    oms_postoken_free(k3);
    oms_postoken_free(k);
}

static void test_bad_args(void **state)
{
    (void)state;
    char err[128] = "";
    assert_null(oms_postoken_new((const unsigned char *)"short", 5, topics, 3, err, sizeof err));
    assert_non_null(strstr(err, "16 bytes"));
    assert_null(oms_postoken_new(secret, sizeof secret - 1, topics, 0, err, sizeof err));
    oms_postoken *k = key();
    int np[3] = {1, 1, 1};
    int64_t bad[3] = {0, -2, 0};
    char tok[128];
    assert_int_equal(oms_postoken_encode(k, 0, np, bad, tok, sizeof tok), OMS_EINVAL);
    int64_t ok[3] = {0, 1, 2};
    assert_int_equal(oms_postoken_encode(k, 16, np, ok, tok, sizeof tok), OMS_EINVAL);
    assert_int_equal(oms_postoken_encode(k, 0, np, ok, tok, 8), OMS_ERANGE);
    oms_postoken_free(k);
}

static void test_pid(void **state)
{
    (void)state;
    oms_postoken *k = key();
    char a[OMS_POSTOKEN_PID_LEN + 1], b[OMS_POSTOKEN_PID_LEN + 1];
    assert_int_equal(oms_postoken_pid_new(k, 42, a), OMS_OK);
    assert_int_equal(oms_postoken_pid_new(k, 42, b), OMS_OK);
    assert_int_equal(strlen(a), OMS_POSTOKEN_PID_LEN);
    assert_string_not_equal(a, b);
    assert_int_equal(oms_postoken_pid_check(k, a, 42), OMS_OK);
    assert_int_equal(oms_postoken_pid_check(k, a, 43), OMS_EDENIED);
    a[3] = a[3] == 'A' ? 'B' : 'A';
    assert_int_not_equal(oms_postoken_pid_check(k, a, 42), OMS_OK);
    assert_int_equal(oms_postoken_pid_check(k, "short", 42), OMS_EINVAL);
    assert_int_equal(oms_postoken_pid_check(k, NULL, 42), OMS_EINVAL);
    oms_postoken_free(k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip), cmocka_unit_test(test_compact),
        cmocka_unit_test(test_forgery),   cmocka_unit_test(test_bad_args),
        cmocka_unit_test(test_pid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
