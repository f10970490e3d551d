/* test_hash.c: the partitioning contract of hash.h, pinned.
 *
 * The vectors below were computed once and cross-checked against an
 * independent XXH64 written from the specification in another language, fed
 * the byte layout documented in hash.h. If one of these tests fails, documents
 * and terms would move to other partitions: fix the code, not the vectors.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <xxhash.h>

#include "hash.h"

static void test_xxh64_vectors(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        uint64_t h;
    } v[] = {
        {"", UINT64_C(0xEF46DB3751D8E999)}, /* the well-known XXH64 of nothing */
        {"a", UINT64_C(0xD24EC4F1A98C6E5B)},
        {"abc", UINT64_C(0x44BC2CF5AD770999)},
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        size_t n = strlen(v[i].s);
        assert_true(sx_hash64(v[i].s, n) == v[i].h);
        assert_true(XXH64(v[i].s, n, 0) == v[i].h); /* the library agrees */
    }
    assert_true(sx_hash64(NULL, 0) == UINT64_C(0xEF46DB3751D8E999));

    /* 100 bytes: past XXH64's 32-byte stripe, so the long path is pinned too. */
    char x[100];
    memset(x, 'x', sizeof(x));
    assert_true(sx_hash64(x, sizeof(x)) == UINT64_C(0x92F0DE5A88A3C094));
}

static void test_partition_of_vectors(void **state)
{
    (void)state;
    static const struct {
        const char *id;
        uint64_t h;
        uint32_t p8, p256;
    } v[] = {
        {"doc-0", UINT64_C(0x3CA21F02FB9A1513), 3, 19},
        {"doc-1", UINT64_C(0x037FE13BD80C56AA), 2, 170},
        {"doc-42", UINT64_C(0x300B4FEDBA0FDFE2), 2, 226},
        {"user:1001", UINT64_C(0x85CAA85AE91FA802), 2, 2},
        {"", UINT64_C(0xEF46DB3751D8E999), 1, 153},
        {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", UINT64_C(0x569EA6843111EF03), 3, 3},
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        size_t n = strlen(v[i].id);
        assert_true(sx_hash64(v[i].id, n) == v[i].h);
        assert_int_equal(sx_partition_of(v[i].id, n, 8), v[i].p8);
        assert_int_equal(sx_partition_of(v[i].id, n, 256), v[i].p256);
        assert_int_equal(sx_partition_of(v[i].id, n, 1), 0);
        assert_int_equal(sx_partition_of(v[i].id, n, 7), (uint32_t)(v[i].h % 7));
    }
}

static void test_term_partition_vectors(void **state)
{
    (void)state;
    static const struct {
        const char *index;
        const char *s;
        size_t n;
        uint64_t h; /* XXH64 of index 00 's' s */
        uint32_t p8, p256;
    } sv[] = {
        {"color", "red", 3, UINT64_C(0x1EA6AD6323078E6F), 7, 111},
        {"color", "blue", 4, UINT64_C(0x9913EED59E352680), 0, 128},
        {"tags", "", 0, UINT64_C(0x5C3947C98DB4523F), 7, 63},
        {"tags", "a\0b", 3, UINT64_C(0xE37BCB48ACA5EB39), 1, 57}, /* an embedded NUL counts */
    };
    for (size_t i = 0; i < sizeof(sv) / sizeof(sv[0]); i++) {
        assert_int_equal(sx_term_partition_of_str(sv[i].index, sv[i].s, sv[i].n, 8), sv[i].p8);
        assert_int_equal(sx_term_partition_of_str(sv[i].index, sv[i].s, sv[i].n, 256), sv[i].p256);
        assert_int_equal(sx_term_partition_of_str(sv[i].index, sv[i].s, sv[i].n, 1000003),
                         (uint32_t)(sv[i].h % 1000003));
    }

    /* The layout spelled out, checked against the library directly. */
    static const uint8_t red[] = {'c', 'o', 'l', 'o', 'r', 0x00, 's', 'r', 'e', 'd'};
    assert_true(XXH64(red, sizeof(red), 0) == UINT64_C(0x1EA6AD6323078E6F));

    /* A term longer than the stack buffer: 300 bytes of 'x' in "title". */
    char x[300];
    memset(x, 'x', sizeof(x));
    assert_int_equal(sx_term_partition_of_str("title", x, sizeof(x), 8), 3);
    assert_int_equal(sx_term_partition_of_str("title", x, sizeof(x), 256), 227);
    assert_int_equal(sx_term_partition_of_str("title", x, sizeof(x), 1u << 31),
                     (uint32_t)(UINT64_C(0xA643A2650CCFB8E3) % (1u << 31)));

    static const struct {
        const char *index;
        int64_t v;
        uint64_t h; /* XXH64 of index 00 'i' v as 8 bytes big-endian */
        uint32_t p8, p256;
    } iv[] = {
        {"n", -1, UINT64_C(0xB64C54A181AF004B), 3, 75},
        {"n", 0, UINT64_C(0xE5AC00F7C6C08725), 5, 37},
        {"year", 2024, UINT64_C(0x829FCA1625E504D0), 0, 208},
        {"price", INT64_MIN, UINT64_C(0xCB3D6CEC4BD84F9E), 6, 158},
        {"price", INT64_MAX, UINT64_C(0xAEFCE6EEF5ABE186), 6, 134},
    };
    for (size_t i = 0; i < sizeof(iv) / sizeof(iv[0]); i++) {
        assert_int_equal(sx_term_partition_of_int(iv[i].index, iv[i].v, 8), iv[i].p8);
        assert_int_equal(sx_term_partition_of_int(iv[i].index, iv[i].v, 256), iv[i].p256);
        assert_int_equal(sx_term_partition_of_int(iv[i].index, iv[i].v, 1000003),
                         (uint32_t)(iv[i].h % 1000003));
    }
    static const uint8_t year[] = {'y', 'e', 'a', 'r', 0x00, 'i', 0, 0, 0, 0, 0, 0, 0x07, 0xE8};
    assert_true(XXH64(year, sizeof(year), 0) == UINT64_C(0x829FCA1625E504D0));
}

/* The tag keeps a string term and an int term with the same bytes apart, and
 * the 0x00 keeps ("ab", "c") apart from ("a", "bc"). */
static void test_term_layout_separates(void **state)
{
    (void)state;
    const uint32_t m = UINT32_MAX;
    uint8_t be2024[8] = {0, 0, 0, 0, 0, 0, 0x07, 0xE8};
    assert_int_not_equal(sx_term_partition_of_str("year", be2024, 8, m),
                         sx_term_partition_of_int("year", 2024, m));
    assert_int_not_equal(sx_term_partition_of_str("ab", "c", 1, m),
                         sx_term_partition_of_str("a", "bc", 2, m));
}

static void test_distribution(void **state)
{
    (void)state;
    enum { IDS = 100000, P = 8 };
    unsigned counts[P] = {0};
    for (int i = 0; i < IDS; i++) {
        char id[32];
        int n = snprintf(id, sizeof(id), "doc-%d", i);
        counts[sx_partition_of(id, (size_t)n, P)]++;
    }
    const double mean = (double)IDS / P;
    for (int p = 0; p < P; p++) {
        double dev = ((double)counts[p] - mean) / mean;
        if (dev < -0.05 || dev > 0.05)
            fail_msg("partition %d has %u ids, more than 5%% from the mean %.0f", p, counts[p],
                     mean);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_xxh64_vectors),          cmocka_unit_test(test_partition_of_vectors),
        cmocka_unit_test(test_term_partition_vectors), cmocka_unit_test(test_term_layout_separates),
        cmocka_unit_test(test_distribution),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
