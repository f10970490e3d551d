/* test_sample.c: unit tests for worker/sample.h's pure part, the choice of
 * split points from a sample (quantiles, repeated values, too few values,
 * strings in key order) and the size of each log partition's sample. The
 * RPC part runs in test_range_auto (a range index created without split
 * points, through a worker). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the four above, which it needs */

#include "ixkey.h"
#include "sample.h"
#include "sx_limits.h"

#include <stdio.h>
#include <string.h>

static void ints(Shardex__V1__Value *v, const int64_t *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        shardex__v1__value__init(&v[i]);
        v[i].kind_case = SHARDEX__V1__VALUE__KIND_I;
        v[i].i = x[i];
    }
}

/* The points as "a,b,c", freed. */
static void fmt_free(Shardex__V1__Value **out, size_t n, char *buf, size_t cap)
{
    buf[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(buf);
        if (out[i]->kind_case == SHARDEX__V1__VALUE__KIND_I)
            snprintf(buf + l, cap - l, "%s%lld", i ? "," : "", (long long)out[i]->i);
        else
            snprintf(buf + l, cap - l, "%s%s", i ? "," : "", out[i]->s);
        sx_ixkey_value_free(out[i]);
    }
}

static void test_quantiles(void **state)
{
    (void)state;
    Shardex__V1__Value v[100];
    Shardex__V1__Value *out[8];
    int64_t x[100];
    for (int i = 0; i < 100; i++)
        x[i] = (int64_t)((i * 37) % 100); /* 0..99, shuffled */
    ints(v, x, 100);
    char buf[128];
    size_t n = sx_sample_pick_splits(v, 100, true, 4, out, 8);
    fmt_free(out, n, buf, sizeof(buf));
    assert_string_equal(buf, "25,50,75");
    /* Repeated values: a rank that repeats the point before, or the smallest
     * value, moves to the next larger value; M shrinks when they run out. */
    int64_t y[10] = {7, 7, 7, 7, 7, 7, 7, 7, 9, 9};
    ints(v, y, 10);
    n = sx_sample_pick_splits(v, 10, true, 4, out, 8);
    fmt_free(out, n, buf, sizeof(buf));
    assert_string_equal(buf, "9");
    ints(v, y, 8); /* one distinct value: nothing to split */
    assert_int_equal(sx_sample_pick_splits(v, 8, true, 4, out, 8), 0);
    assert_int_equal(sx_sample_pick_splits(v, 0, true, 4, out, 8), 0);
}

static void test_strings(void **state)
{
    (void)state;
    const char *s[6] = {"pear", "apple", "m", "ma", "zebra", "b"};
    Shardex__V1__Value v[6];
    Shardex__V1__Value *out[4];
    for (int i = 0; i < 6; i++) {
        shardex__v1__value__init(&v[i]);
        v[i].kind_case = SHARDEX__V1__VALUE__KIND_S;
        v[i].s = (char *)s[i];
    }
    /* Sorted: apple b m ma pear zebra; ranks 2, 4 of 6 for M=3. */
    char buf[128];
    size_t n = sx_sample_pick_splits(v, 6, false, 3, out, 4);
    fmt_free(out, n, buf, sizeof(buf));
    assert_string_equal(buf, "m,pear");
}

/* The documents asked of each log partition: about SX_SAMPLE_VALUES in all,
 * fewer when the worst case of one answer (every string value at its longest)
 * would pass SX_SAMPLE_PARTITION_BYTES. */
static void test_per_partition(void **state)
{
    (void)state;
    assert_int_equal(sx_sample_per_partition(16, 4, true), SX_SAMPLE_VALUES / 16 + 1);
    assert_int_equal(sx_sample_per_partition(0, 4, true),
                     SX_SAMPLE_PARTITION_BYTES / (4 + 10 + 32));
    for (uint32_t p = 1; p <= 4096; p *= 4) {
        uint32_t n = sx_sample_per_partition(p, SX_FIELD_NAME_MAX_BYTES, false);
        assert_true(n >= 1 && n <= SX_SAMPLE_VALUES / p + 1);
        assert_true((uint64_t)n * (SX_FIELD_NAME_MAX_BYTES + SX_STRING_VALUE_MAX_BYTES) <
                    SX_SAMPLE_PARTITION_BYTES);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quantiles),
        cmocka_unit_test(test_strings),
        cmocka_unit_test(test_per_partition),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
