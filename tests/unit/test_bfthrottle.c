/* test_bfthrottle.c: the backfill's throttle (worker/bfthrottle.h): AIMD
 * between min and max chunk and pause, unthrottled at target 0, and the
 * quantile of a histogram's window. */
#include "bfthrottle.h"
#include "metrics.h"

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

/* The controller's input is the p99 of every watched histogram's window
 * summed: writes led here for other routers (Replication.Write) slow the
 * backfill as much as the writes this worker routed. Routed writes fast, led
 * writes slow: with the led ones watched the p99 is over the 50 ms target
 * and the chunk halves; without them (the routed ones only) it would grow. */
static void test_read_watches_led_writes(void **state)
{
    (void)state;
    sx_metrics *m = sx_metrics_create();
    sx_histogram *put = sx_metrics_histogram(m, "put_s", "put", sx_metrics_latency_buckets,
                                             sx_metrics_latency_nbuckets);
    sx_histogram *del = sx_metrics_histogram(m, "del_s", "del", sx_metrics_latency_buckets,
                                             sx_metrics_latency_nbuckets);
    sx_histogram *led = sx_metrics_histogram(m, "led_s", "led", sx_metrics_latency_buckets,
                                             sx_metrics_latency_nbuckets);
    sx_histogram *const all[4] = {put, del, NULL, led}; /* a NULL entry is skipped */
    sx_histogram *const routed[2] = {put, del};
    enum { CAP = SX_BFTHROTTLE_BUCKETS_MAX + 1 };
    uint64_t before_all[CAP], after_all[CAP], before_r[CAP], after_r[CAP];
    const double *bounds = NULL, *bounds_r = NULL;
    size_t nb = sx_bfthrottle_read(all, 4, before_all, CAP, &bounds);
    assert_int_equal(nb, sx_metrics_latency_nbuckets);
    assert_int_equal(sx_bfthrottle_read(routed, 2, before_r, CAP, &bounds_r), nb);
    for (int i = 0; i < 90; i++)
        sx_histogram_observe(i % 2 ? put : del, 0.002);
    for (int i = 0; i < 10; i++)
        sx_histogram_observe(led, 0.4);
    sx_bfthrottle_read(all, 4, after_all, CAP, &bounds);
    sx_bfthrottle_read(routed, 2, after_r, CAP, &bounds_r);
    uint64_t total = 0;
    for (size_t k = 0; k <= nb; k++)
        total += after_all[k] - before_all[k];
    assert_int_equal(total, 100);
    double p99 = sx_bfthrottle_quantile(bounds, nb, before_all, after_all, 0.99);
    double p99_routed = sx_bfthrottle_quantile(bounds_r, nb, before_r, after_r, 0.99);
    assert_true(p99 >= 0.4);
    assert_true(p99_routed >= 0 && p99_routed < 0.05);

    sx_bfthrottle t, t_routed;
    sx_bfthrottle_init(&t, 0.05, 10, 1000, 500);
    sx_bfthrottle_init(&t_routed, 0.05, 10, 1000, 500);
    sx_bfthrottle_update(&t, p99);
    sx_bfthrottle_update(&t_routed, p99_routed);
    assert_int_equal(t.chunk, 125);
    assert_true(t.pause_ms > 0);
    assert_int_equal(t_routed.chunk, 375);
    assert_int_equal(t_routed.pause_ms, 0);

    /* Bounds that differ from the first's are not summed in. */
    sx_histogram *odd = sx_metrics_histogram(m, "odd_s", "odd", (const double[]){0.5, 1}, 2);
    sx_histogram_observe(odd, 0.7);
    sx_histogram *const mixed[2] = {put, odd};
    uint64_t c[CAP];
    assert_int_equal(sx_bfthrottle_read(mixed, 2, c, CAP, &bounds), nb);
    total = 0;
    for (size_t k = 0; k <= nb; k++)
        total += c[k];
    assert_int_equal(total, 45);
    sx_metrics_destroy(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unthrottled),    cmocka_unit_test(test_over_backs_off_to_bounds),
        cmocka_unit_test(test_under_recovers), cmocka_unit_test(test_bounds_fixed_up),
        cmocka_unit_test(test_quantile),       cmocka_unit_test(test_read_watches_led_writes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
