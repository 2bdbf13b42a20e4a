/* test_wheel.c — pkg/gateway/wheel: O(1) timers swept per tick. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/oms.h"
#include "gateway/wheel.h"

typedef struct item {
    oms_wtimer t;
    int fired;
    int64_t fired_at;
    int64_t due_ms;
    struct item *victim; /* cancelled by this one's callback */
    int rearm_ms;        /* re-armed by its callback, once */
} item;

static oms_wheel *cur;
static int64_t now_ms;

static void on_fire(oms_wtimer *t)
{
    item *it = (item *)((char *)t - offsetof(item, t));
    it->fired++;
    it->fired_at = now_ms;
    if (it->victim)
        oms_wheel_cancel(cur, &it->victim->t);
    if (it->rearm_ms) {
        int ms = it->rearm_ms;
        it->rearm_ms = 0;
        it->due_ms = now_ms + ms;
        oms_wheel_arm(cur, &it->t, now_ms, ms, on_fire);
    }
}

static void run_to(oms_wheel *w, int64_t until, int64_t step)
{
    for (; now_ms < until;) {
        now_ms += step;
        oms_wheel_advance(w, now_ms);
    }
}

static void test_basics(void **state)
{
    (void)state;
    oms_wheel w;
    now_ms = 1000;
    assert_int_equal(oms_wheel_init(&w, 16, 100, now_ms), OMS_OK);
    cur = &w;
    item a = {0}, b = {0}, c = {0}, d = {0};
    oms_wheel_arm(&w, &a.t, now_ms, 250, on_fire);  /* 3 ticks */
    oms_wheel_arm(&w, &b.t, now_ms, 0, on_fire);    /* the next sweep */
    oms_wheel_arm(&w, &c.t, now_ms, 5000, on_fire); /* past the span of 1.6 s */
    oms_wheel_arm(&w, &d.t, now_ms, 300, on_fire);
    assert_int_equal(w.armed, 4);
    oms_wheel_cancel(&w, &d.t);
    oms_wheel_cancel(&w, &d.t); /* twice is fine */
    assert_false(oms_wtimer_armed(&d.t));
    run_to(&w, 1100, 100);
    assert_int_equal(b.fired, 1);
    assert_int_equal(a.fired, 0);
    run_to(&w, 1300, 100);
    assert_int_equal(a.fired, 1);
    assert_int_equal(a.fired_at, 1300);
    run_to(&w, 5900, 100);
    assert_int_equal(c.fired, 0);
    run_to(&w, 6000, 100);
    assert_int_equal(c.fired, 1);
    assert_int_equal(d.fired, 0);
    assert_int_equal(w.armed, 0);
    /* a callback cancels a timer of the same tick and re-arms itself */
    item x = {0}, y = {0};
    x.victim = &y;
    x.rearm_ms = 1600; /* a whole turn later: same slot */
    oms_wheel_arm(&w, &y.t, now_ms, 200, on_fire);
    oms_wheel_arm(&w, &x.t, now_ms, 200, on_fire); /* linked first: runs first */
    run_to(&w, 6200, 100);
    assert_int_equal(x.fired, 1);
    assert_int_equal(y.fired, 0);
    assert_true(oms_wtimer_armed(&x.t));
    run_to(&w, 7700, 100);
    assert_int_equal(x.fired, 1);
    run_to(&w, 7800, 100);
    assert_int_equal(x.fired, 2);
    /* a long pause: every due timer runs in one advance, in tick order */
    item p = {0}, q = {0};
    oms_wheel_arm(&w, &p.t, now_ms, 500, on_fire);
    oms_wheel_arm(&w, &q.t, now_ms, 3000, on_fire);
    now_ms += 10000;
    assert_int_equal(oms_wheel_advance(&w, now_ms), 2);
    assert_int_equal(p.fired + q.fired, 2);
    oms_wheel_free(&w);
}

/* Against a model: random arms, re-arms and cancels; each timer fires once
 * per arming, never before its due time and less than a tick after it. */
static void test_random(void **state)
{
    (void)state;
    enum { N = 2000 };
    oms_wheel w;
    now_ms = 0;
    assert_int_equal(oms_wheel_init(&w, 64, 10, 0), OMS_OK);
    cur = &w;
    item *its = calloc(N, sizeof *its);
    assert_non_null(its);
    for (int i = 0; i < N; i++)
        its[i].due_ms = -1; /* not armed */
    srand(7);
    int64_t expect_fires = 0, fires = 0;
    for (int step = 0; step < 3000; step++) {
        for (int k = 0; k < 5; k++) {
            item *it = &its[rand() % N];
            int op = rand() % 4;
            if (op == 0) {
                oms_wheel_cancel(&w, &it->t);
                it->due_ms = -1;
            } else {
                int delay = rand() % 2000;
                oms_wheel_arm(&w, &it->t, now_ms, delay, on_fire);
                it->due_ms = now_ms + delay;
            }
        }
        int before[N];
        for (int i = 0; i < N; i++)
            before[i] = its[i].fired;
        now_ms += 1 + rand() % 15;
        oms_wheel_advance(&w, now_ms);
        for (int i = 0; i < N; i++) {
            if (its[i].fired != before[i]) {
                assert_int_equal(its[i].fired, before[i] + 1);
                assert_true(its[i].due_ms >= 0);
                assert_true(its[i].fired_at >= its[i].due_ms);
                assert_true(its[i].fired_at < its[i].due_ms + 10 + 15);
                its[i].due_ms = -1;
                fires++;
            } else if (its[i].due_ms >= 0) {
                /* not fired: not due before the last tick swept */
                assert_true(its[i].due_ms > now_ms / 10 * 10);
            }
        }
    }
    for (int i = 0; i < N; i++)
        expect_fires += its[i].fired;
    assert_int_equal(fires, expect_fires);
    free(its);
    oms_wheel_free(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basics),
        cmocka_unit_test(test_random),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
