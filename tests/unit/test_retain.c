/* test_retain.c: unit tests for retain.h, what --log-retention keeps at least
 * beyond what the replicas need: by count, by size at the mean entry size, by
 * duration from marks (what cannot be dated or sized keeps the whole log),
 * the marks' spacing and their bound. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the four above, which it needs */

#include "retain.h"

#include <string.h>

static void test_count_and_nothing(void **state)
{
    (void)state;
    sx_retain r;
    memset(&r, 0, sizeof(r));
    assert_int_equal(sx_retain_keep(&r, 5000, 0), 0); /* min: the replicas' floor alone */
    r.entries = 700;
    assert_int_equal(sx_retain_keep(&r, 5000, 0), 700);
    assert_int_equal(sx_retain_keep(&r, 300, 0), 300); /* never more than the log */
}

static void test_size(void **state)
{
    (void)state;
    sx_retain r;
    memset(&r, 0, sizeof(r));
    r.bytes = 100000;
    r.entries = 10;
    /* Nothing appended in this leadership: the mean is unknown, keep all. */
    assert_int_equal(sx_retain_keep(&r, 5000, 0), 5000);
    sx_retain_appended(&r, 4001, 100, 25000, 0); /* mean 250 bytes */
    assert_int_equal(sx_retain_keep(&r, 5000, 0), 400);
    sx_retain_appended(&r, 4101, 100, 75000, 0); /* mean 500 bytes */
    assert_int_equal(sx_retain_keep(&r, 5000, 0), 200);
    r.entries = 300; /* the most of the minimums */
    assert_int_equal(sx_retain_keep(&r, 5000, 0), 300);
    sx_retain_reset(&r);
    assert_int_equal(sx_retain_keep(&r, 5000, 0), 5000);
}

static void test_duration(void **state)
{
    (void)state;
    sx_retain r;
    memset(&r, 0, sizeof(r));
    r.ms = 60000;
    const uint64_t t0 = 1000000;
    /* No mark yet: nothing can be dated, keep all. */
    assert_int_equal(sx_retain_keep(&r, 100, t0), 100);
    sx_retain_appended(&r, 101, 10, 1000, t0);         /* mark (101, t0) */
    sx_retain_appended(&r, 111, 10, 1000, t0 + 500);   /* within a second: no mark */
    sx_retain_appended(&r, 121, 10, 1000, t0 + 1000);  /* mark (121, t0 + 1 s) */
    sx_retain_appended(&r, 131, 10, 1000, t0 + 30000); /* mark (131, t0 + 30 s) */
    assert_int_equal(r.nmarks, 3);
    /* Before any mark is a minute old, entries below 101 cannot be dated. */
    assert_int_equal(sx_retain_keep(&r, 140, t0 + 59999), 140);
    /* From t0 + 60 s what precedes 101 is older than the minute. */
    assert_int_equal(sx_retain_keep(&r, 140, t0 + 60000), 40);
    assert_int_equal(sx_retain_keep(&r, 140, t0 + 61000), 20);
    assert_int_equal(sx_retain_keep(&r, 140, t0 + 89999), 20);
    /* Idle since t0 + 30 s: from t0 + 90 s every entry is a minute old,
     * also the ones after the newest mark (appended after it, but no later
     * than the last append). */
    assert_int_equal(sx_retain_keep(&r, 140, t0 + 90000), 0);
    /* The largest of the minimums wins. */
    r.entries = 25;
    assert_int_equal(sx_retain_keep(&r, 140, t0 + 95000), 25);
    /* A new leadership knows nothing: the whole log again. */
    r.entries = 0;
    sx_retain_reset(&r);
    assert_int_equal(sx_retain_keep(&r, 140, t0 + 95000), 140);
}

static void test_marks_bounded(void **state)
{
    (void)state;
    sx_retain r;
    memset(&r, 0, sizeof(r));
    r.ms = 7ull * 24 * 3600 * 1000; /* 7 days: a mark per 7d / 256 */
    uint64_t every = r.ms / (SX_RETAIN_MARKS / 2);
    uint64_t t = 0, off = 1;
    for (int i = 0; i < 3 * SX_RETAIN_MARKS; i++, t += every, off += 5)
        sx_retain_appended(&r, off, 5, 500, t);
    assert_int_equal(r.nmarks, SX_RETAIN_MARKS);
    /* The oldest went: the first mark is that of the batch 2 * MARKS in. */
    assert_int_equal(r.marks[0].offset, 1 + 5 * 2 * SX_RETAIN_MARKS);
    /* The marks span twice the duration, so the duration is still answered. */
    uint64_t leo = off - 1, now = t;
    uint64_t keep = sx_retain_keep(&r, leo, now);
    assert_true(keep < leo);
    assert_true(keep >= (SX_RETAIN_MARKS / 2) * 5);
    assert_true(keep <= (SX_RETAIN_MARKS / 2 + 1) * 5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_count_and_nothing),
        cmocka_unit_test(test_size),
        cmocka_unit_test(test_duration),
        cmocka_unit_test(test_marks_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
