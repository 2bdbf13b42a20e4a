/* test_sim_rules.c — pkg/sim: the domain rules the simulator and
 * `oms-producer serve` share (order transitions, stock statuses). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "sim/sim.h"

static void test_statuses(void **state)
{
    (void)state;
    const char *want[] = {"created", "confirmed", "shipped", "delivered", "cancelled"};
    for (int i = 0; i < OMS_SIM_ORDER_STATUS_COUNT; i++) {
        assert_string_equal(oms_sim_order_statuses[i], want[i]);
        assert_true(oms_sim_order_status_known(want[i]));
    }
    assert_false(oms_sim_order_status_known("lost"));
    assert_false(oms_sim_order_status_known("Created"));
    assert_false(oms_sim_order_status_known(""));
    assert_false(oms_sim_order_status_known(NULL));
}

static void test_transitions(void **state)
{
    (void)state;
    /* exactly these five moves are legal */
    const char *legal[][2] = {{"created", "confirmed"},   {"confirmed", "shipped"},
                              {"shipped", "delivered"},   {"created", "cancelled"},
                              {"confirmed", "cancelled"}};
    int n_ok = 0;
    for (int f = 0; f < OMS_SIM_ORDER_STATUS_COUNT; f++) {
        for (int t = 0; t < OMS_SIM_ORDER_STATUS_COUNT; t++) {
            const char *from = oms_sim_order_statuses[f], *to = oms_sim_order_statuses[t];
            bool want = false;
            for (size_t i = 0; i < sizeof legal / sizeof legal[0]; i++)
                want |= strcmp(legal[i][0], from) == 0 && strcmp(legal[i][1], to) == 0;
            assert_int_equal(oms_sim_order_transition_ok(from, to), want);
            n_ok += want;
        }
    }
    assert_int_equal(n_ok, 5);
    assert_false(oms_sim_order_transition_ok("created", "lost"));
    assert_false(oms_sim_order_transition_ok(NULL, "created"));
}

static void test_stock_status(void **state)
{
    (void)state;
    assert_string_equal(oms_sim_stock_status(12, 9, 10), "low_stock");
    assert_string_equal(oms_sim_stock_status(12, 10, 10), "low_stock");
    assert_string_equal(oms_sim_stock_status(12, 11, 10), "in_stock");
    assert_string_equal(oms_sim_stock_status(3, 0, 10), "out_of_stock");
    assert_string_equal(oms_sim_stock_status(0, 0, 0), "out_of_stock");
    assert_string_equal(oms_sim_stock_status(9, 12, 10), "restocked");
    assert_string_equal(oms_sim_stock_status(0, 12, 10), "restocked");
    assert_string_equal(oms_sim_stock_status(0, 5, 10), "low_stock");
    assert_string_equal(oms_sim_stock_status(11, 40, 10), "in_stock");
    assert_int_equal(OMS_SIM_DEFAULT_THRESHOLD, 10);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_statuses),
        cmocka_unit_test(test_transitions),
        cmocka_unit_test(test_stock_status),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
