/* test_keys.c: unit tests for keys.h (order-preserving key encoding).
 *
 * Round trips, the exact bytes of each format, a randomized property test that
 * encoded order equals value order, and malformed input for the reader. The
 * random tests take their seed from SHARDEX_TEST_SEED, else from the clock,
 * and print it (seed=N) so that a failure can be replayed.
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

#include "clock.h"
#include "fixture.h"
#include "keys.h"

#define PROPERTY_ROUNDS 20000
#define MAX_STR 20

static unsigned long long seed;
static uint64_t rng_state;

/* splitmix64 (fixture.h) on this file's stream. */
static uint64_t rnd(void)
{
    return sx_fx_rnd(&rng_state);
}

static int sign(int c)
{
    return (c > 0) - (c < 0);
}

/* Bytewise order, the shorter first on a tie: how LevelDB compares keys. */
static int bytes_cmp(const void *a, size_t alen, const void *b, size_t blen)
{
    size_t n = alen < blen ? alen : blen;
    int c = n ? memcmp(a, b, n) : 0;
    if (c)
        return sign(c);
    return (alen > blen) - (alen < blen);
}

static int buf_cmp(const sx_buf *a, const sx_buf *b)
{
    return bytes_cmp(a->data, a->len, b->data, b->len);
}

static int i64_cmp(int64_t a, int64_t b)
{
    return (a > b) - (a < b);
}

typedef struct rstr {
    uint8_t b[MAX_STR];
    size_t n;
} rstr;

/* Strings over a small alphabet heavy in 0x00, 0x01 and 0xFF, so that equal
 * prefixes, embedded zeros and escape look-alikes are common. */
static void rand_str(rstr *s)
{
    static const uint8_t alphabet[] = {0x00, 0x00, 0x01, 0x02, 0xFE, 0xFF, 0xFF, 'a', 'b'};
    s->n = (size_t)(rnd() % (MAX_STR + 1));
    bool any_byte = rnd() % 4 == 0;
    for (size_t i = 0; i < s->n; i++)
        s->b[i] = any_byte ? (uint8_t)rnd() : alphabet[rnd() % sizeof(alphabet)];
}

static int64_t rand_i64(void)
{
    static const int64_t special[] = {INT64_MIN, INT64_MIN + 1, -256, -255,          -1,       0,
                                      1,         255,           256,  INT64_MAX - 1, INT64_MAX};
    switch (rnd() % 3) {
    case 0:
        return special[rnd() % (sizeof(special) / sizeof(special[0]))];
    case 1:
        return (int64_t)(rnd() % 7) - 3;
    default:
        return (int64_t)(rnd() >> 1) * ((rnd() & 1) ? -1 : 1);
    }
}

static void print_hex(const char *label, const sx_buf *b)
{
    char line[3 * 64 + 1] = "";
    for (size_t i = 0; i < b->len && i < 64; i++)
        snprintf(line + 3 * i, 4, "%02x ", b->data[i]);
    print_error("%s (%zu bytes): %s\n", label, b->len, line);
}

/* Fails the test, printing both encodings and the seed, unless the encodings
 * compare as the values do. */
static void check_order(const char *what, const sx_buf *ea, const sx_buf *eb, int natural)
{
    if (sign(buf_cmp(ea, eb)) == sign(natural))
        return;
    print_error("%s: encoded order differs from value order (natural %d), seed=%llu\n", what,
                sign(natural), seed);
    print_hex("a", ea);
    print_hex("b", eb);
    fail();
}

static void enc_str(sx_buf *b, const void *s, size_t n)
{
    sx_buf_reset(b);
    sx_key_append_str(b, s, n);
}

static void assert_bytes(const sx_buf *b, const void *want, size_t n)
{
    assert_int_equal(b->len, n);
    assert_memory_equal(b->data, want, n);
}

static void test_str_exact_bytes(void **state)
{
    (void)state;
    sx_buf b = {0};
    enc_str(&b, NULL, 0);
    assert_bytes(&b, "\x00\x01", 2);
    enc_str(&b, "a", 1);
    assert_bytes(&b, "a\x00\x01", 3);
    enc_str(&b, "a\0", 2);
    assert_bytes(&b, "a\x00\xff\x00\x01", 5);
    enc_str(&b, "\0\0", 2);
    assert_bytes(&b, "\x00\xff\x00\xff\x00\x01", 6);
    enc_str(&b, "\xff\x01", 2); /* only 0x00 is escaped */
    assert_bytes(&b, "\xff\x01\x00\x01", 4);
    sx_buf_free(&b);
}

static void test_str_round_trip(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        size_t n;
    } cases[] = {{"", 0},           {"\0", 1},     {"\0\0\0", 3}, {"a", 1},
                 {"a\0b", 3},       {"\0\x01", 2}, {"\0\xff", 2}, {"\xff\xff", 2},
                 {"\x01\0\x01", 3}, {"hello", 5},  {"ab\0", 3}};
    sx_buf enc = {0}, dec = {0};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        enc_str(&enc, cases[i].s, cases[i].n);
        sx_key_reader r;
        sx_key_reader_init(&r, enc.data, enc.len);
        sx_buf_reset(&dec);
        assert_true(sx_key_read_str(&r, &dec));
        assert_true(sx_key_reader_done(&r));
        assert_int_equal(dec.len, cases[i].n);
        if (cases[i].n)
            assert_memory_equal(dec.data, cases[i].s, cases[i].n);
    }
    /* Every byte value, appended to out after what it already holds. */
    uint8_t all[256];
    for (size_t i = 0; i < 256; i++)
        all[i] = (uint8_t)i;
    enc_str(&enc, all, sizeof(all));
    sx_key_reader r;
    sx_key_reader_init(&r, enc.data, enc.len);
    sx_buf_reset(&dec);
    sx_buf_append(&dec, "pre", 3);
    assert_true(sx_key_read_str(&r, &dec));
    assert_true(sx_key_reader_done(&r));
    assert_int_equal(dec.len, 3 + 256);
    assert_memory_equal(dec.data, "pre", 3);
    assert_memory_equal(dec.data + 3, all, 256);
    /* NULL out skips the string. */
    sx_key_reader_init(&r, enc.data, enc.len);
    assert_true(sx_key_read_str(&r, NULL));
    assert_true(sx_key_reader_done(&r));
    sx_buf_free(&enc);
    sx_buf_free(&dec);
}

static void test_int_exact_bytes_and_round_trip(void **state)
{
    (void)state;
    sx_buf b = {0};
    sx_key_append_i64(&b, 0);
    assert_bytes(&b, "\x80\0\0\0\0\0\0\0", 8);
    sx_buf_reset(&b);
    sx_key_append_i64(&b, -1);
    assert_bytes(&b, "\x7f\xff\xff\xff\xff\xff\xff\xff", 8);
    sx_buf_reset(&b);
    sx_key_append_i64(&b, INT64_MIN);
    assert_bytes(&b, "\0\0\0\0\0\0\0\0", 8);
    sx_buf_reset(&b);
    sx_key_append_i64(&b, INT64_MAX);
    assert_bytes(&b, "\xff\xff\xff\xff\xff\xff\xff\xff", 8);
    sx_buf_reset(&b);
    sx_key_append_u64(&b, UINT64_C(0x0102030405060708));
    sx_key_append_u32(&b, 0x090a0b0c);
    sx_key_append_u8(&b, 0x0d);
    assert_bytes(&b, "\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d", 13);

    static const int64_t vals[] = {INT64_MIN, INT64_MIN + 1, -2,       -1, 0, 1,
                                   2,         INT64_MAX - 1, INT64_MAX};
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
        sx_buf_reset(&b);
        sx_key_append_i64(&b, vals[i]);
        sx_key_append_u64(&b, (uint64_t)vals[i]);
        sx_key_append_u32(&b, (uint32_t)vals[i]);
        sx_key_append_u8(&b, (uint8_t)vals[i]);
        sx_key_reader r;
        sx_key_reader_init(&r, b.data, b.len);
        int64_t v;
        uint64_t u64;
        uint32_t u32;
        uint8_t u8;
        assert_true(sx_key_read_i64(&r, &v));
        assert_true(sx_key_read_u64(&r, &u64));
        assert_true(sx_key_read_u32(&r, &u32));
        assert_true(sx_key_read_u8(&r, &u8));
        assert_true(sx_key_reader_done(&r));
        assert_true(v == vals[i]);
        assert_true(u64 == (uint64_t)vals[i]);
        assert_true(u32 == (uint32_t)vals[i]);
        assert_true(u8 == (uint8_t)vals[i]);
    }
    sx_buf_free(&b);
}

static void test_composite_round_trip(void **state)
{
    (void)state;
    sx_buf b = {0}, s1 = {0}, s2 = {0};
    sx_key_append_u8(&b, 7);
    sx_key_append_str(&b, "ix\0name", 7);
    sx_key_append_i64(&b, -42);
    sx_key_append_str(&b, "", 0);
    sx_key_append_u32(&b, 3);
    sx_key_append_u64(&b, UINT64_MAX);

    sx_key_reader r;
    sx_key_reader_init(&r, b.data, b.len);
    uint8_t tag;
    int64_t v;
    uint32_t u32;
    uint64_t u64;
    assert_true(sx_key_read_u8(&r, &tag));
    assert_true(sx_key_read_str(&r, &s1));
    assert_true(sx_key_read_i64(&r, &v));
    assert_false(sx_key_reader_done(&r));
    assert_true(sx_key_read_str(&r, &s2));
    assert_true(sx_key_read_u32(&r, &u32));
    assert_true(sx_key_read_u64(&r, &u64));
    assert_true(sx_key_reader_done(&r));
    assert_int_equal(tag, 7);
    assert_bytes(&s1, "ix\0name", 7);
    assert_true(v == -42);
    assert_int_equal(s2.len, 0);
    assert_int_equal(u32, 3);
    assert_true(u64 == UINT64_MAX);
    /* Reading past the end fails. */
    assert_false(sx_key_read_u8(&r, &tag));
    sx_buf_free(&b);
    sx_buf_free(&s1);
    sx_buf_free(&s2);
}

/* The orderings the format exists for, spelled out. */
static void test_order_examples(void **state)
{
    (void)state;
    sx_buf a = {0}, b = {0};
    static const struct {
        const char *lo;
        size_t lon;
        const char *hi;
        size_t hin;
    } str_pairs[] = {{"", 0, "\0", 1},       {"a", 1, "a\0", 2},     {"a\0", 2, "ab", 2},
                     {"a", 1, "ab", 2},      {"a\0", 2, "a\x01", 2}, {"a\0\xff", 3, "a\x01", 2},
                     {"\xfe", 1, "\xff", 1}, {"a", 1, "a\xff", 2}};
    for (size_t i = 0; i < sizeof(str_pairs) / sizeof(str_pairs[0]); i++) {
        enc_str(&a, str_pairs[i].lo, str_pairs[i].lon);
        enc_str(&b, str_pairs[i].hi, str_pairs[i].hin);
        check_order("string example", &a, &b, -1);
    }
    /* ("a","z") < ("ab","a"): the first component decides. */
    enc_str(&a, "a", 1);
    sx_key_append_str(&a, "z", 1);
    enc_str(&b, "ab", 2);
    sx_key_append_str(&b, "a", 1);
    check_order("composite example", &a, &b, -1);
    /* ("a", 5) < ("a\0", -5): a string sorts before its extensions. */
    enc_str(&a, "a", 1);
    sx_key_append_i64(&a, 5);
    enc_str(&b, "a\0", 2);
    sx_key_append_i64(&b, -5);
    check_order("composite example", &a, &b, -1);
    sx_buf_free(&a);
    sx_buf_free(&b);
}

/* For random pairs of each shape: sign(compare(encodings)) equals
 * sign(compare(values)), and every encoding decodes back to its values. */
static void test_order_property(void **state)
{
    (void)state;
    sx_buf ea = {0}, eb = {0}, dec = {0};
    for (int round = 0; round < PROPERTY_ROUNDS; round++) {
        rstr sa, sb;
        rand_str(&sa);
        /* Half the time b starts like a, so long shared prefixes get tested. */
        if (rnd() & 1) {
            sb = sa;
            sb.n = (size_t)(rnd() % (MAX_STR + 1));
            for (size_t i = sa.n; i < sb.n; i++)
                sb.b[i] = (uint8_t)(rnd() % 3 == 0 ? 0 : rnd());
        } else {
            rand_str(&sb);
        }
        int64_t ia = rand_i64(), ib = (rnd() % 4 == 0) ? ia : rand_i64();
        int scmp = bytes_cmp(sa.b, sa.n, sb.b, sb.n);

        enc_str(&ea, sa.b, sa.n);
        enc_str(&eb, sb.b, sb.n);
        check_order("str", &ea, &eb, scmp);

        sx_buf_reset(&ea);
        sx_buf_reset(&eb);
        sx_key_append_i64(&ea, ia);
        sx_key_append_i64(&eb, ib);
        check_order("i64", &ea, &eb, i64_cmp(ia, ib));

        uint64_t ua = (uint64_t)ia, ub = (uint64_t)ib;
        sx_buf_reset(&ea);
        sx_buf_reset(&eb);
        sx_key_append_u64(&ea, ua);
        sx_key_append_u32(&ea, (uint32_t)ub);
        sx_key_append_u64(&eb, ub);
        sx_key_append_u32(&eb, (uint32_t)ua);
        int ucmp = (ua > ub) - (ua < ub);
        if (ucmp == 0)
            ucmp = ((uint32_t)ub > (uint32_t)ua) - ((uint32_t)ub < (uint32_t)ua);
        check_order("(u64,u32)", &ea, &eb, ucmp);

        /* (str, i64) */
        enc_str(&ea, sa.b, sa.n);
        sx_key_append_i64(&ea, ia);
        enc_str(&eb, sb.b, sb.n);
        sx_key_append_i64(&eb, ib);
        check_order("(str,i64)", &ea, &eb, scmp ? scmp : i64_cmp(ia, ib));

        sx_key_reader r;
        int64_t v;
        sx_key_reader_init(&r, ea.data, ea.len);
        sx_buf_reset(&dec);
        assert_true(sx_key_read_str(&r, &dec));
        assert_true(sx_key_read_i64(&r, &v));
        assert_true(sx_key_reader_done(&r));
        assert_int_equal(bytes_cmp(dec.data, dec.len, sa.b, sa.n), 0);
        assert_true(v == ia);

        /* (i64, str) */
        sx_buf_reset(&ea);
        sx_buf_reset(&eb);
        sx_key_append_i64(&ea, ia);
        sx_key_append_str(&ea, sa.b, sa.n);
        sx_key_append_i64(&eb, ib);
        sx_key_append_str(&eb, sb.b, sb.n);
        int icmp = i64_cmp(ia, ib);
        check_order("(i64,str)", &ea, &eb, icmp ? icmp : scmp);

        sx_key_reader_init(&r, eb.data, eb.len);
        sx_buf_reset(&dec);
        assert_true(sx_key_read_i64(&r, &v));
        assert_true(sx_key_read_str(&r, &dec));
        assert_true(sx_key_reader_done(&r));
        assert_int_equal(bytes_cmp(dec.data, dec.len, sb.b, sb.n), 0);
        assert_true(v == ib);

        /* (str, str): a string must not run into the next component. */
        enc_str(&ea, sa.b, sa.n);
        sx_key_append_str(&ea, sb.b, sb.n);
        enc_str(&eb, sb.b, sb.n);
        sx_key_append_str(&eb, sa.b, sa.n);
        check_order("(str,str)", &ea, &eb, scmp);
    }
    sx_buf_free(&ea);
    sx_buf_free(&eb);
    sx_buf_free(&dec);
}

/* Decodes (u8, str, i64) from an exactly-sized heap copy, so that the
 * sanitizer sees any read past the end. */
static bool decode_schema(const uint8_t *p, size_t n)
{
    uint8_t *copy = malloc(n ? n : 1);
    assert_non_null(copy);
    if (n)
        memcpy(copy, p, n);
    sx_key_reader r;
    sx_key_reader_init(&r, copy, n);
    sx_buf s = {0};
    uint8_t tag;
    int64_t v;
    bool ok = sx_key_read_u8(&r, &tag) && sx_key_read_str(&r, &s) && sx_key_read_i64(&r, &v) &&
              sx_key_reader_done(&r);
    sx_buf_free(&s);
    free(copy);
    return ok;
}

static void test_reader_malformed(void **state)
{
    (void)state;
    sx_key_reader r;
    sx_buf out = {0};
    int64_t v = 99;
    uint64_t u64 = 99;
    uint32_t u32 = 99;
    uint8_t u8 = 99;

    /* Truncated integers: false, nothing consumed, outputs untouched. */
    sx_key_reader_init(&r, "\x80\0\0\0\0\0\0", 7);
    assert_false(sx_key_read_i64(&r, &v));
    assert_false(sx_key_read_u64(&r, &u64));
    assert_int_equal(r.pos, 0);
    assert_true(v == 99 && u64 == 99);
    sx_key_reader_init(&r, "\0\0\0", 3);
    assert_false(sx_key_read_u32(&r, &u32));
    assert_int_equal(u32, 99);
    sx_key_reader_init(&r, NULL, 0);
    assert_false(sx_key_read_u8(&r, &u8));
    assert_false(sx_key_read_str(&r, &out));
    assert_true(sx_key_reader_done(&r));

    static const struct {
        const char *what;
        const char *p;
        size_t n;
    } bad_strs[] = {
        {"unterminated", "abc", 3},
        {"escape at the end", "abc\0", 4},
        {"escaped zero, then the end", "a\0\xff", 3},
        {"bad escape 0x02", "a\0\x02\0\x01", 5},
        {"bad escape 0x00", "a\0\0\0\x01", 5},
        {"bad escape 0xfe", "\0\xfe", 2},
    };
    for (size_t i = 0; i < sizeof(bad_strs) / sizeof(bad_strs[0]); i++) {
        sx_buf_reset(&out);
        sx_buf_append(&out, "keep", 4);
        sx_key_reader_init(&r, bad_strs[i].p, bad_strs[i].n);
        if (sx_key_read_str(&r, &out))
            fail_msg("accepted a malformed string: %s", bad_strs[i].what);
        assert_int_equal(r.pos, 0);
        assert_bytes(&out, "keep", 4); /* partial output rolled back */
        assert_false(sx_key_read_str(&r, NULL));
    }

    /* Trailing bytes after a complete key are left for reader_done to catch. */
    sx_key_reader_init(&r, "\x05", 1);
    assert_true(sx_key_read_u8(&r, &u8));
    assert_true(sx_key_reader_done(&r));
    sx_key_reader_init(&r, "\x05\x06", 2);
    assert_true(sx_key_read_u8(&r, &u8));
    assert_false(sx_key_reader_done(&r));

    /* Every strict prefix of a valid key fails to decode; the whole succeeds. */
    sx_buf key = {0};
    sx_key_append_u8(&key, 1);
    sx_key_append_str(&key, "a\0\xff\0b", 5);
    sx_key_append_i64(&key, -3);
    for (size_t n = 0; n < key.len; n++)
        assert_false(decode_schema(key.data, n));
    assert_true(decode_schema(key.data, key.len));

    /* Random bytes never crash the reader (the sanitizer build checks bounds). */
    for (int round = 0; round < 2000; round++) {
        uint8_t junk[24];
        size_t n = (size_t)(rnd() % sizeof(junk));
        for (size_t i = 0; i < n; i++)
            junk[i] = (uint8_t)(rnd() % 4 == 0 ? 0 : rnd());
        (void)decode_schema(junk, n);
    }
    sx_buf_free(&key);
    sx_buf_free(&out);
}

static bool starts_with(const rstr *k, const rstr *p)
{
    return k->n >= p->n && (p->n == 0 || memcmp(k->b, p->b, p->n) == 0);
}

static void test_prefix_successor(void **state)
{
    (void)state;
    sx_buf out = {0};
    assert_true(sx_key_prefix_successor("abc", 3, &out));
    assert_bytes(&out, "abd", 3);
    assert_true(sx_key_prefix_successor("a\xff\xff", 3, &out));
    assert_bytes(&out, "b", 1);
    assert_true(sx_key_prefix_successor("\x01\xfe\xff", 3, &out));
    assert_bytes(&out, "\x01\xff", 2);
    assert_true(sx_key_prefix_successor("\0", 1, &out));
    assert_bytes(&out, "\x01", 1);
    sx_buf_append(&out, "junk", 4);
    assert_false(sx_key_prefix_successor("\xff\xff", 2, &out));
    assert_int_equal(out.len, 0);
    assert_false(sx_key_prefix_successor(NULL, 0, &out));
    assert_int_equal(out.len, 0);

    /* Random check of "smallest key above every key with the prefix": keys
     * with the prefix sort below it, keys above the prefix without it do not. */
    for (int round = 0; round < PROPERTY_ROUNDS; round++) {
        rstr p, k;
        rand_str(&p);
        p.n %= 4;
        rand_str(&k);
        if (rnd() & 1) { /* make k start with p */
            if (k.n < p.n)
                k.n = p.n;
            memcpy(k.b, p.b, p.n);
        }
        bool has = sx_key_prefix_successor(p.b, p.n, &out);
        if (starts_with(&k, &p)) {
            if (has && bytes_cmp(k.b, k.n, out.data, out.len) >= 0)
                fail_msg("a key with the prefix sorts at or above the successor, seed=%llu", seed);
        } else if (bytes_cmp(k.b, k.n, p.b, p.n) > 0) {
            if (!has || bytes_cmp(k.b, k.n, out.data, out.len) < 0)
                fail_msg("a key above the prefix without it sorts below the successor, "
                         "seed=%llu",
                         seed);
        }
    }
    sx_buf_free(&out);
}

int main(void)
{
    seed = sx_fx_seed();
    rng_state = seed;

    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_str_exact_bytes),
        cmocka_unit_test(test_str_round_trip),
        cmocka_unit_test(test_int_exact_bytes_and_round_trip),
        cmocka_unit_test(test_composite_round_trip),
        cmocka_unit_test(test_order_examples),
        cmocka_unit_test(test_order_property),
        cmocka_unit_test(test_reader_malformed),
        cmocka_unit_test(test_prefix_successor),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
