/* test_router.c — the router visits exactly the connections that
 * oms_session_wants() accepts, through adds, subscription changes and
 * removals in random order. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "gateway/router.h"

#define N 600

typedef struct fake {
    oms_session s;
    oms_route rt;
    int in;
    int hits;
} fake;

static void on_hit(void *conn, void *ud)
{
    (void)ud;
    ((fake *)conn)->hits++;
}

static uint64_t rng = 0x1234567;
static uint32_t rnd(uint32_t n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng % n);
}

static void check_all(oms_router *r, fake *f)
{
    for (int t = 0; t < OMS_EV__COUNT; t++) {
        for (int64_t uid = 0; uid <= 25; uid++) {
            for (int i = 0; i < N; i++)
                f[i].hits = 0;
            size_t n = oms_router_dispatch(r, (oms_event_type)t, uid, on_hit, NULL);
            size_t want = 0;
            for (int i = 0; i < N; i++) {
                int expect = f[i].in && oms_session_wants(&f[i].s, (oms_event_type)t, uid);
                want += (size_t)expect;
                if (f[i].hits != expect)
                    fail_msg("type %d user %lld: conn %d (role %d, user %lld, subs %u) hit %d "
                             "times, expected %d",
                             t, (long long)uid, i, f[i].s.who.role, (long long)f[i].s.who.user_id,
                             f[i].s.subs, f[i].hits, expect);
            }
            assert_int_equal(n, want);
        }
    }
}

static void test_router_matches_wants(void **state)
{
    (void)state;
    oms_router *r = oms_router_new();
    fake *f = calloc(N, sizeof *f);
    for (int i = 0; i < N; i++) {
        oms_principal p = {0};
        p.role = (oms_role)rnd(OMS_ROLE__COUNT);
        p.user_id = p.role == OMS_ROLE_SERVICE ? 0 : 1 + rnd(25);
        oms_session_init(&f[i].s, &p, 100, 0);
    }
    for (int round = 0; round < 6000; round++) {
        int i = (int)rnd(N);
        switch (rnd(3)) {
        case 0:
            if (!f[i].in) {
                assert_int_equal(oms_router_add(r, &f[i].rt, &f[i], &f[i].s), 0);
                f[i].in = 1;
            }
            break;
        case 1:
            f[i].s.subs = rnd(4);
            if (f[i].in)
                assert_int_equal(oms_router_update(r, &f[i].rt, &f[i].s), 0);
            break;
        default:
            if (f[i].in) {
                oms_router_remove(r, &f[i].rt);
                f[i].in = 0;
            }
        }
        if (round % 500 == 0)
            check_all(r, f);
    }
    check_all(r, f);
    size_t in = 0;
    for (int i = 0; i < N; i++)
        in += f[i].in && f[i].s.who.role != OMS_ROLE_SERVICE;
    assert_int_equal(oms_router_size(r), in);
    oms_router_free(r);
    free(f);
}

static void test_router_many_users_grow(void **state)
{
    (void)state;
    oms_router *r = oms_router_new();
    enum { M = 5000 };
    fake *f = calloc(M, sizeof *f);
    for (int i = 0; i < M; i++) {
        oms_principal p = {.user_id = 1000 + i, .role = OMS_ROLE_CUSTOMER};
        oms_session_init(&f[i].s, &p, 100, 0);
        f[i].s.subs = OMS_SUB_ORDERS;
        assert_int_equal(oms_router_add(r, &f[i].rt, &f[i], &f[i].s), 0);
    }
    for (int i = 0; i < M; i += 97) {
        size_t n = oms_router_dispatch(r, OMS_EV_ORDER_CREATED, 1000 + i, on_hit, NULL);
        assert_int_equal(n, 1);
        assert_int_equal(f[i].hits, 1);
        assert_int_equal(oms_router_dispatch(r, OMS_EV_USER_NOTIFICATION, 1000 + i, on_hit, NULL),
                         1);
    }
    assert_int_equal(oms_router_dispatch(r, OMS_EV_ORDER_CREATED, 99, on_hit, NULL), 0);
    assert_int_equal(oms_router_dispatch(r, OMS_EV_SYSTEM_NOTIFICATION, 0, on_hit, NULL), M);
    for (int i = 0; i < M; i++)
        oms_router_remove(r, &f[i].rt);
    assert_int_equal(oms_router_size(r), 0);
    oms_router_remove(r, &f[0].rt); /* twice: no-op */
    oms_router_free(r);
    free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_router_matches_wants),
        cmocka_unit_test(test_router_many_users_grow),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
