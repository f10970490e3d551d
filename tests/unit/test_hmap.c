/* test_hmap.c: unit tests for hmap.h.
 *
 * Basic operations on keys that are not C strings (empty, with 0x00 bytes),
 * then random sequences of puts, upserts, gets and removes checked against a
 * plain array after every step, through growth and many backward shifts
 * (few distinct keys, so probe runs collide and wrap). The random test takes
 * its seed from SHARDEX_TEST_SEED, else the clock, and prints it (seed=N).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the four above, which it needs */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fixture.h"
#include "hmap.h"

static unsigned long long seed;
static uint64_t rng_state;

/* splitmix64 (fixture.h) on this file's stream. */
static uint64_t rnd(void)
{
    return sx_fx_rnd(&rng_state);
}

static void test_basics(void **state)
{
    (void)state;
    sx_hmap m = {0};
    void *v = NULL;
    assert_false(sx_hmap_get(&m, "a", 1, &v));
    assert_false(sx_hmap_remove(&m, "a", 1, &v));
    size_t pos = 0;
    assert_false(sx_hmap_next(&m, &pos, NULL, NULL, NULL));

    int one = 1, two = 2, three = 3;
    assert_false(sx_hmap_put(&m, "a", 1, &one, NULL));
    assert_false(sx_hmap_put(&m, "", 0, &two, NULL));       /* the empty key */
    assert_false(sx_hmap_put(&m, "a\0b", 3, &three, NULL)); /* not a C string */
    assert_int_equal(sx_hmap_len(&m), 3);
    assert_true(sx_hmap_get(&m, "", 0, &v));
    assert_ptr_equal(v, &two);
    assert_true(sx_hmap_get(&m, "a\0b", 3, &v));
    assert_ptr_equal(v, &three);
    assert_true(sx_hmap_get(&m, "a", 1, NULL));
    assert_false(sx_hmap_get(&m, "a\0", 2, NULL));

    void *old = NULL;
    assert_true(sx_hmap_put(&m, "a", 1, &two, &old)); /* replaces */
    assert_ptr_equal(old, &one);
    bool created = true;
    void **slot = sx_hmap_upsert(&m, "a", 1, &created);
    assert_false(created);
    assert_ptr_equal(*slot, &two);
    slot = sx_hmap_upsert(&m, "new", 3, &created);
    assert_true(created);
    assert_null(*slot);
    *slot = &one;
    assert_true(sx_hmap_get(&m, "new", 3, &v));
    assert_ptr_equal(v, &one);

    /* Iteration gives every key once, NUL-terminated. */
    size_t n = 0, klen;
    const char *key;
    pos = 0;
    while (sx_hmap_next(&m, &pos, &key, &klen, &v)) {
        assert_int_equal(key[klen], '\0');
        n++;
    }
    assert_int_equal(n, 4);

    assert_true(sx_hmap_remove(&m, "", 0, &v));
    assert_ptr_equal(v, &two);
    assert_false(sx_hmap_get(&m, "", 0, NULL));
    assert_int_equal(sx_hmap_len(&m), 3);
    sx_hmap_free(&m, NULL);
    assert_int_equal(sx_hmap_len(&m), 0);
    sx_hmap_free(&m, NULL); /* a zeroed map again */
}

static int freed;

static void count_free(void *p)
{
    free(p);
    freed++;
}

#define KEYS 300

static void test_random(void **state)
{
    (void)state;
    rng_state = seed;
    for (int round = 0; round < 20; round++) {
        sx_hmap m = {0};
        int *model[KEYS] = {0}; /* model[k]: the value of key k, or NULL */
        size_t live = 0;
        size_t range = 1 + (size_t)(rnd() % KEYS);
        for (int step = 0; step < 3000; step++) {
            size_t k = (size_t)(rnd() % range);
            char key[16];
            int klen = snprintf(key, sizeof(key), "k%zu", k);
            void *v = NULL;
            switch (rnd() % 4) {
            case 0: { /* put */
                int *val = malloc(sizeof(*val));
                *val = step;
                void *old = NULL;
                assert_int_equal(sx_hmap_put(&m, key, (size_t)klen, val, &old), model[k] != NULL);
                assert_ptr_equal(old, model[k]);
                free(old);
                live += model[k] == NULL;
                model[k] = val;
                break;
            }
            case 1: { /* upsert */
                bool created;
                void **slot = sx_hmap_upsert(&m, key, (size_t)klen, &created);
                assert_int_equal(created, model[k] == NULL);
                if (created) {
                    int *val = malloc(sizeof(*val));
                    *val = -step;
                    *slot = model[k] = val;
                    live++;
                }
                break;
            }
            case 2: /* remove */
                assert_int_equal(sx_hmap_remove(&m, key, (size_t)klen, &v), model[k] != NULL);
                if (model[k]) {
                    assert_ptr_equal(v, model[k]);
                    free(model[k]);
                    model[k] = NULL;
                    live--;
                }
                break;
            default: /* get */
                assert_int_equal(sx_hmap_get(&m, key, (size_t)klen, &v), model[k] != NULL);
                if (model[k])
                    assert_ptr_equal(v, model[k]);
            }
            assert_int_equal(sx_hmap_len(&m), live);
        }
        /* Every key of the model is found; iteration sees exactly them. */
        for (size_t k = 0; k < range; k++) {
            char key[16];
            int klen = snprintf(key, sizeof(key), "k%zu", k);
            void *v = NULL;
            assert_int_equal(sx_hmap_get(&m, key, (size_t)klen, &v), model[k] != NULL);
            if (model[k])
                assert_ptr_equal(v, model[k]);
        }
        size_t pos = 0, n = 0, klen;
        const char *key;
        void *v;
        while (sx_hmap_next(&m, &pos, &key, &klen, &v)) {
            size_t k = (size_t)strtoul(key + 1, NULL, 10);
            assert_ptr_equal(model[k], v);
            n++;
        }
        assert_int_equal(n, live);
        freed = 0;
        sx_hmap_free(&m, count_free);
        assert_int_equal(freed, (int)live);
    }
}

int main(void)
{
    seed = sx_fx_seed();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basics),
        cmocka_unit_test(test_random),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
