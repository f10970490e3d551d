/* test_rate.c: the decaying event rate (common/rate.h), driven by the
 * clock passed in: zero until events, the EWMA's rise toward a steady rate
 * and its decay by e every tau, a burst worth n / tau, no decay backwards
 * when calls come with an earlier time, and another tau. */
#include "rate.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#define T0 1000000u /* an arbitrary monotonic start */

static void near(double got, double want, double tol)
{
    if (fabs(got - want) > tol)
        fail_msg("rate %.4f, want %.4f +- %.4f", got, want, tol);
}

/* 1 event every `every_ms` from `from` for `ms`; returns the end time. */
static uint64_t stream(sx_rate *r, uint64_t from, uint64_t ms, uint64_t every_ms)
{
    uint64_t t = from;
    for (; t < from + ms; t += every_ms)
        sx_rate_add(r, 1, t);
    return t;
}

static void test_zero(void **state)
{
    (void)state;
    sx_rate r = {0};
    assert_true(sx_rate_get(&r, 0) == 0);
    assert_true(sx_rate_get(&r, T0) == 0);
    sx_rate_add(&r, 0, T0);
    assert_true(sx_rate_get(&r, T0 + 5) == 0);
}

/* 100 events/s: 1 - 1/e of it after one tau, all of it (within the
 * granularity of single events) after many, and 1/e of that a tau after the
 * stream stops. */
static void test_rise_and_decay(void **state)
{
    (void)state;
    const double tau = SX_RATE_TAU_MS_DEFAULT;
    sx_rate r = {0};
    uint64_t t = stream(&r, T0, SX_RATE_TAU_MS_DEFAULT, 10);
    near(sx_rate_get(&r, t), 100 * (1 - exp(-1)), 1.0);
    t = stream(&r, t, 8 * SX_RATE_TAU_MS_DEFAULT, 10);
    double full = sx_rate_get(&r, t);
    near(full, 100, 1.0);
    near(sx_rate_get(&r, t + SX_RATE_TAU_MS_DEFAULT), full / M_E, 0.01);
    near(sx_rate_get(&r, t + (uint64_t)(tau * 0.5)), full * exp(-0.5), 0.01);
    /* Reading does not change it. */
    near(sx_rate_get(&r, t), full, 1e-9);
    /* Hours idle: nothing left, and no NaN. */
    double idle = sx_rate_get(&r, t + 3600u * 1000u * 24u);
    assert_true(idle >= 0 && idle < 1e-9);
}

/* n events at once weigh n / tau, then decay like the rest. */
static void test_burst(void **state)
{
    (void)state;
    sx_rate r = {0};
    sx_rate_add(&r, 500, T0);
    near(sx_rate_get(&r, T0), 500.0 / (SX_RATE_TAU_MS_DEFAULT / 1000.0), 1e-9);
    sx_rate_add(&r, 500, T0 + SX_RATE_TAU_MS_DEFAULT);
    near(sx_rate_get(&r, T0 + SX_RATE_TAU_MS_DEFAULT), 100 / M_E + 100, 1e-6);
}

/* An update with an earlier time than the last (another thread's clock
 * read) adds its events undecayed and does not move time back. */
static void test_earlier_time(void **state)
{
    (void)state;
    sx_rate r = {0};
    sx_rate_add(&r, 10, T0 + 2000);
    sx_rate_add(&r, 10, T0 + 1000);
    assert_int_equal(r.at_ms, T0 + 2000);
    near(sx_rate_get(&r, T0 + 2000), 20.0 / 5, 1e-9);
    near(sx_rate_get(&r, T0), 20.0 / 5, 1e-9); /* no growth backwards either */
}

/* Another tau: the same stream rises faster with a shorter one. */
static void test_tau(void **state)
{
    (void)state;
    sx_rate fast = {.tau_ms = 1000}, slow = {.tau_ms = 20000};
    uint64_t t = stream(&fast, T0, 2000, 20);
    stream(&slow, T0, 2000, 20);
    near(sx_rate_get(&fast, t), 50 * (1 - exp(-2)), 1.0);
    near(sx_rate_get(&slow, t), 50 * (1 - exp(-0.1)), 0.5);
    assert_true(sx_rate_get(&fast, t) > 2 * sx_rate_get(&slow, t));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_zero),  cmocka_unit_test(test_rise_and_decay),
        cmocka_unit_test(test_burst), cmocka_unit_test(test_earlier_time),
        cmocka_unit_test(test_tau),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
