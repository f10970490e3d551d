/* test_metrics.c: unit tests for metrics.h.
 *
 * The exposition text exactly as rendered (HELP and TYPE lines, label
 * escaping, float formatting), histogram buckets (cumulative, le="+Inf",
 * _sum, _count), labelled families and their children, collectors (samples
 * grouped under their family, gone at the next scrape when not given again),
 * families registered twice, the NULL registry (metrics off), and counters
 * updated from several threads at once. The HTTP endpoint and promtool are
 * tested by tests/integration/test_metrics_scrape.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the four above, which it needs */

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

/* The registry rendered, NUL-terminated; caller frees. */
static char *render(sx_metrics *m)
{
    sx_buf b = {0};
    sx_metrics_render(m, &b);
    sx_buf_push(&b, '\0');
    return (char *)b.data;
}

static void test_counter_and_gauge(void **state)
{
    (void)state;
    sx_metrics *m = sx_metrics_create();
    sx_counter *c = sx_metrics_counter(m, "shardex_things_total", "Things done.");
    sx_gauge *g = sx_metrics_gauge(m, "shardex_level", "A level, in units.");
    sx_counter_inc(c);
    sx_counter_add(c, 41);
    sx_gauge_set(g, 2.5);
    sx_gauge_add(g, -3);
    assert_int_equal(sx_counter_value(c), 42);
    char *text = render(m);
    assert_string_equal(text, "# HELP shardex_things_total Things done.\n"
                              "# TYPE shardex_things_total counter\n"
                              "shardex_things_total 42\n"
                              "# HELP shardex_level A level, in units.\n"
                              "# TYPE shardex_level gauge\n"
                              "shardex_level -0.5\n");
    free(text);
    sx_metrics_destroy(m);
}

static void test_labels_escaped(void **state)
{
    (void)state;
    sx_metrics *m = sx_metrics_create();
    const char *names[] = {"method", "code"};
    sx_metric_family *f = sx_metrics_family(m, SX_METRIC_COUNTER, "shardex_requests_total",
                                            "Help with a \\ and a\nnewline.", names, 2, NULL, 0);
    sx_counter *a = sx_metric_counter(f, (const char *[]){"Put", "OK"});
    sx_counter *b = sx_metric_counter(f, (const char *[]){"a\"b\\c\nd", "UNAVAILABLE"});
    /* The same label values are the same child. */
    assert_ptr_equal(a, sx_metric_counter(f, (const char *[]){"Put", "OK"}));
    assert_ptr_not_equal(a, b);
    sx_counter_add(a, 3);
    sx_counter_inc(b);
    char *text = render(m);
    assert_string_equal(text, "# HELP shardex_requests_total Help with a \\\\ and a\\nnewline.\n"
                              "# TYPE shardex_requests_total counter\n"
                              "shardex_requests_total{method=\"Put\",code=\"OK\"} 3\n"
                              "shardex_requests_total{method=\"a\\\"b\\\\c\\nd\","
                              "code=\"UNAVAILABLE\"} 1\n");
    free(text);
    sx_metrics_destroy(m);
}

static void test_histogram(void **state)
{
    (void)state;
    sx_metrics *m = sx_metrics_create();
    /* Binary fractions, so that the sum is exact. */
    const double bounds[] = {0.125, 0.5, 1};
    const char *names[] = {"mode"};
    sx_metric_family *f = sx_metrics_family(m, SX_METRIC_HISTOGRAM, "shardex_query_seconds",
                                            "Query latency.", names, 1, bounds, 3);
    sx_histogram *h = sx_metric_histogram(f, (const char *[]){"local"});
    sx_histogram_observe(h, 0.0625);
    sx_histogram_observe(h, 0.125); /* on the bound: in that bucket (le is <=) */
    sx_histogram_observe(h, 0.75);
    sx_histogram_observe(h, 3);
    sx_histogram_observe(h, NAN); /* ignored */
    assert_int_equal(sx_histogram_count(h), 4);
    char *text = render(m);
    assert_string_equal(text, "# HELP shardex_query_seconds Query latency.\n"
                              "# TYPE shardex_query_seconds histogram\n"
                              "shardex_query_seconds_bucket{mode=\"local\",le=\"0.125\"} 2\n"
                              "shardex_query_seconds_bucket{mode=\"local\",le=\"0.5\"} 2\n"
                              "shardex_query_seconds_bucket{mode=\"local\",le=\"1\"} 3\n"
                              "shardex_query_seconds_bucket{mode=\"local\",le=\"+Inf\"} 4\n"
                              "shardex_query_seconds_sum{mode=\"local\"} 3.9375\n"
                              "shardex_query_seconds_count{mode=\"local\"} 4\n");
    free(text);
    sx_metrics_destroy(m);
}

/* An unlabelled histogram: bucket lines carry le alone, sum and count none. */
static void test_histogram_unlabelled(void **state)
{
    (void)state;
    sx_metrics *m = sx_metrics_create();
    sx_histogram *h = sx_metrics_histogram(m, "shardex_ack_seconds", "Ack latency.",
                                           sx_metrics_latency_buckets, sx_metrics_latency_nbuckets);
    char *text = render(m);
    /* A child with no observations renders every bucket at 0. */
    assert_non_null(strstr(text, "shardex_ack_seconds_bucket{le=\"0.0005\"} 0\n"));
    assert_non_null(strstr(text, "shardex_ack_seconds_bucket{le=\"+Inf\"} 0\n"));
    assert_non_null(strstr(text, "shardex_ack_seconds_sum 0\nshardex_ack_seconds_count 0\n"));
    free(text);
    sx_histogram_observe(h, 0.002);
    sx_histogram_observe(h, 20);
    text = render(m);
    assert_non_null(strstr(text, "shardex_ack_seconds_bucket{le=\"0.001\"} 0\n"
                                 "shardex_ack_seconds_bucket{le=\"0.0025\"} 1\n"));
    assert_non_null(strstr(text, "shardex_ack_seconds_bucket{le=\"10\"} 1\n"
                                 "shardex_ack_seconds_bucket{le=\"+Inf\"} 2\n"
                                 "shardex_ack_seconds_sum 20.002\n"
                                 "shardex_ack_seconds_count 2\n"));
    free(text);
    sx_metrics_destroy(m);
}

static void test_format_double(void **state)
{
    (void)state;
    struct {
        double v;
        const char *s;
    } cases[] = {{0, "0"},
                 {1, "1"},
                 {-7, "-7"},
                 {0.1, "0.1"},
                 {2.5e-4, "0.00025"},
                 {1e300, "1e+300"},
                 {INFINITY, "+Inf"},
                 {-INFINITY, "-Inf"},
                 {NAN, "NaN"},
                 {1.0 / 3, "0.3333333333333333"}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        sx_buf b = {0};
        sx_metrics_format_double(&b, cases[i].v);
        sx_buf_push(&b, '\0');
        assert_string_equal((char *)b.data, cases[i].s);
        sx_buf_free(&b);
    }
}

typedef struct things {
    sx_metric_family *offset, *up;
    int n; /* partitions to report */
} things;

static void collect_cb(void *arg, sx_metrics_scrape *s)
{
    things *t = arg;
    for (int p = 0; p < t->n; p++) {
        char ps[16];
        snprintf(ps, sizeof(ps), "%d", p);
        const char *v[] = {ps};
        /* Interleaved on purpose: the output still groups by family. */
        sx_metrics_sample(s, t->offset, v, 100 + p);
        sx_metrics_sample(s, t->up, NULL, 1);
    }
    if (t->n > 0)
        sx_metrics_sample(s, t->offset, (const char *[]){"0"}, 999); /* repeated: ignored */
}

static void test_collector(void **state)
{
    (void)state;
    sx_metrics *m = sx_metrics_create();
    const char *names[] = {"partition"};
    things t = {
        .offset =
            sx_metrics_collected(m, SX_METRIC_GAUGE, "shardex_offset", "An offset.", names, 1),
        .up = sx_metrics_collected(m, SX_METRIC_GAUGE, "shardex_up", "Up.", NULL, 0),
        .n = 2,
    };
    sx_metrics_add_collector(m, collect_cb, &t, NULL);
    char *text = render(m);
    assert_string_equal(text, "# HELP shardex_offset An offset.\n"
                              "# TYPE shardex_offset gauge\n"
                              "shardex_offset{partition=\"0\"} 100\n"
                              "shardex_offset{partition=\"1\"} 101\n"
                              "# HELP shardex_up Up.\n"
                              "# TYPE shardex_up gauge\n"
                              "shardex_up 1\n");
    free(text);
    t.n = 0; /* the partitions went away: so do their series */
    text = render(m);
    assert_string_equal(text, "# HELP shardex_offset An offset.\n"
                              "# TYPE shardex_offset gauge\n"
                              "# HELP shardex_up Up.\n"
                              "# TYPE shardex_up gauge\n");
    free(text);
    sx_metrics_destroy(m);
}

static void test_registered_twice(void **state)
{
    (void)state;
    sx_metrics *m = sx_metrics_create();
    const char *names[] = {"method"};
    sx_metric_family *a =
        sx_metrics_family(m, SX_METRIC_COUNTER, "shardex_x_total", "X.", names, 1, NULL, 0);
    sx_metric_family *b =
        sx_metrics_family(m, SX_METRIC_COUNTER, "shardex_x_total", "X.", names, 1, NULL, 0);
    assert_ptr_equal(a, b);
    sx_metrics_destroy(m);
}

/* Metrics off: a NULL registry gives NULL instruments, and they do nothing. */
static void test_null(void **state)
{
    (void)state;
    sx_counter *c = sx_metrics_counter(NULL, "shardex_x_total", "X.");
    assert_null(c);
    sx_counter_inc(c);
    sx_gauge_set(NULL, 1);
    sx_histogram_observe(NULL, 1);
    assert_null(sx_metric_counter(NULL, NULL));
    sx_metrics_add_collector(NULL, collect_cb, NULL, NULL);
    sx_buf b = {0};
    sx_metrics_render(NULL, &b);
    assert_int_equal(b.len, 0);
    sx_metrics_destroy(NULL);
}

typedef struct racer {
    sx_counter *c;
    sx_histogram *h;
} racer;

static void *race_main(void *arg)
{
    racer *r = arg;
    for (int i = 0; i < 100000; i++) {
        sx_counter_inc(r->c);
        sx_histogram_observe(r->h, 0.25);
    }
    return NULL;
}

/* Updates from four threads lose nothing (atomics, no lock). */
static void test_threads(void **state)
{
    (void)state;
    sx_metrics *m = sx_metrics_create();
    const double bounds[] = {1};
    racer r = {.c = sx_metrics_counter(m, "shardex_race_total", "Race."),
               .h = sx_metrics_histogram(m, "shardex_race_seconds", "Race.", bounds, 1)};
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, race_main, &r);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(sx_counter_value(r.c), 400000);
    char *text = render(m);
    assert_non_null(strstr(text, "shardex_race_seconds_bucket{le=\"1\"} 400000\n"));
    assert_non_null(strstr(text, "shardex_race_seconds_sum 100000\n"));
    free(text);
    sx_metrics_destroy(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counter_and_gauge), cmocka_unit_test(test_labels_escaped),
        cmocka_unit_test(test_histogram),         cmocka_unit_test(test_histogram_unlabelled),
        cmocka_unit_test(test_format_double),     cmocka_unit_test(test_collector),
        cmocka_unit_test(test_registered_twice),  cmocka_unit_test(test_null),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
