/* test_bfthrottle.c: the backfill's throttle (worker/bfthrottle.h): AIMD
 * between min and max chunk and pause, unthrottled at target 0, and the
 * quantile of a histogram's window. */
#include "bfthrottle.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

static void test_unthrottled(void **state)
{
    (void)state;
    sx_bfthrottle t;
    sx_bfthrottle_init(&t, 0, 10, 1000, 500);
    assert_int_equal(t.chunk, 1000);
    sx_bfthrottle_update(&t, 5.0); /* however slow the writes */
    assert_int_equal(t.chunk, 1000);
    assert_int_equal(t.pause_ms, 0);
}

static void test_over_backs_off_to_bounds(void **state)
{
    (void)state;
    sx_bfthrottle t;
    sx_bfthrottle_init(&t, 0.05, 10, 1000, 500);
    assert_int_equal(t.chunk, 250);
    uint32_t was = t.chunk;
    sx_bfthrottle_update(&t, 0.1);
    assert_int_equal(t.chunk, was / 2);
    assert_int_equal(t.pause_ms, 5);
    for (int i = 0; i < 40; i++) {
        uint64_t p = t.pause_ms;
        sx_bfthrottle_update(&t, 0.1);
        assert_true(t.pause_ms >= p); /* never eases while over */
    }
    assert_int_equal(t.chunk, 10);
    assert_int_equal(t.pause_ms, 500);
}

static void test_under_recovers(void **state)
{
    (void)state;
    sx_bfthrottle t;
    sx_bfthrottle_init(&t, 0.05, 10, 1000, 500);
    for (int i = 0; i < 20; i++)
        sx_bfthrottle_update(&t, 1.0);
    /* Within the bound (or no writes at all): additive increase, the pause
     * halves, both reach their ends and stay. */
    uint32_t c = t.chunk;
    sx_bfthrottle_update(&t, 0.05);
    assert_int_equal(t.chunk, c + 125);
    assert_int_equal(t.pause_ms, 250);
    for (int i = 0; i < 20; i++)
        sx_bfthrottle_update(&t, i % 2 ? -1 : 0.01);
    assert_int_equal(t.chunk, 1000);
    assert_int_equal(t.pause_ms, 0);
}

static void test_bounds_fixed_up(void **state)
{
    (void)state;
    sx_bfthrottle t;
    sx_bfthrottle_init(&t, 0.05, 0, 0, 100);
    assert_int_equal(t.min_chunk, 1);
    assert_int_equal(t.max_chunk, 1);
    assert_int_equal(t.chunk, 1);
    sx_bfthrottle_update(&t, 1);
    assert_int_equal(t.chunk, 1);
}

static void test_quantile(void **state)
{
    (void)state;
    const double b[] = {0.001, 0.01, 0.1};
    uint64_t before[4] = {5, 5, 5, 5};
    uint64_t same[4] = {5, 5, 5, 5};
    assert_true(sx_bfthrottle_quantile(b, 3, before, same, 0.99) < 0);
    /* 98 fast, 1 at 10 ms, 1 at 100 ms: p99 is the 99th = 10 ms bucket. */
    uint64_t after[4] = {5 + 98, 5 + 1, 5 + 1, 5};
    assert_true(sx_bfthrottle_quantile(b, 3, before, after, 0.99) == 0.01);
    assert_true(sx_bfthrottle_quantile(b, 3, before, after, 1.0) == 0.1);
    assert_true(sx_bfthrottle_quantile(b, 3, before, after, 0.5) == 0.001);
    /* Past the last bound. */
    uint64_t slow[4] = {5, 5, 5, 5 + 3};
    assert_true(sx_bfthrottle_quantile(b, 3, before, slow, 0.99) == 0.2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unthrottled),    cmocka_unit_test(test_over_backs_off_to_bounds),
        cmocka_unit_test(test_under_recovers), cmocka_unit_test(test_bounds_fixed_up),
        cmocka_unit_test(test_quantile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
