/* test_ixkey.c: routing a value to its term partition through an online
 * split layout (common/ixkey.h): sx_ixkey_term_of follows the splits in
 * order, sx_ixkey_terms_of also names an unfinished last split's parent,
 * sx_ixkey_layout_order lists the serving partitions in value order with
 * their lower bounds (checked against term_of on every value of a range, and
 * on seeded random layouts), and sx_ixkey_check_split refuses what the
 * coordinator must refuse, naming the field.
 *
 * Salting (docs/indexes.md "Hot values"): sx_ixkey_plan_salt picks t0 and
 * the next partitions (hash: (t0 + i) mod M; range: the next serving ones in
 * value order, wrapping) and refuses what the coordinator must refuse;
 * sx_ixkey_terms_of sends an entry of version >= the salt's `from` to its
 * id's slot's partition, an older one to t0, through later splits too;
 * sx_ixkey_term_of (queries) keeps t0, sx_ixkey_salt_terms lists the set.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "fixture.h"
#include "ixkey.h"
#include "keys.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static Shardex__V1__Value ival(int64_t i)
{
    Shardex__V1__Value v = SHARDEX__V1__VALUE__INIT;
    v.kind_case = SHARDEX__V1__VALUE__KIND_I;
    v.i = i;
    return v;
}

/* An int range index with split points 100, 200, 300 (M = 4) and room for
 * splits. */
typedef struct rig {
    Shardex__V1__Value pts[3];
    Shardex__V1__Value *pp[3];
    Shardex__V1__Value at[32];
    Shardex__Internal__V1__IndexSplit sp[32];
    Shardex__Internal__V1__IndexSplit *spp[32];
    sx_ixkey_def d;
} rig;

static void rig_init(rig *r)
{
    memset(r, 0, sizeof(*r));
    for (int i = 0; i < 3; i++) {
        r->pts[i] = ival(100 * (i + 1));
        r->pp[i] = &r->pts[i];
    }
    r->d = (sx_ixkey_def){.id = 1,
                          .name = "r",
                          .field = "n",
                          .is_int = true,
                          .global = true,
                          .term_partitions = 4,
                          .range = true,
                          .nsplits = 3,
                          .splits = r->pp,
                          .layout = r->spp};
}

/* Adds a split of t at `at` (not done; the one before becomes done). */
static void rig_split(rig *r, uint32_t t, int64_t at)
{
    size_t k = r->d.nlayout;
    assert_true(k < 32);
    if (k)
        r->sp[k - 1].done = true;
    shardex__internal__v1__index_split__init(&r->sp[k]);
    r->at[k] = ival(at);
    r->sp[k].seq = (uint32_t)k + 1;
    r->sp[k].term = t;
    r->sp[k].at = &r->at[k];
    r->sp[k].lo = sx_ixkey_term_count(&r->d);
    r->sp[k].hi = r->sp[k].lo + 1;
    r->spp[k] = &r->sp[k];
    r->d.nlayout = k + 1;
}

static size_t terms(const rig *r, int64_t v, uint32_t out[2])
{
    sx_buf b = {0};
    sx_key_append_i64(&b, v);
    sx_key_append_str(&b, "id-1", 4); /* anything after the value is ignored */
    size_t n = sx_ixkey_terms_of(&r->d, b.data, b.len, "id-1", 4, 1, out);
    uint32_t one = sx_ixkey_term_of(&r->d, b.data, b.len);
    assert_int_equal(one, out[0]);
    sx_buf_free(&b);
    return n;
}

/* term_of(v) is the serving partition whose [lower, next lower) holds v. */
static void check_order(const rig *r, int64_t from, int64_t to)
{
    uint32_t count = sx_ixkey_term_count(&r->d);
    uint32_t order[64];
    const Shardex__V1__Value *lower[64];
    assert_true(count <= 64);
    size_t n = sx_ixkey_layout_order(&r->d, order, lower);
    assert_int_equal(n, r->d.term_partitions + r->d.nlayout);
    assert_null(lower[0]);
    for (size_t k = 2; k < n; k++) /* increasing: the order is the values' */
        assert_true(lower[k]->i > lower[k - 1]->i);
    for (int64_t v = from; v <= to; v++) {
        size_t k = 0;
        while (k + 1 < n && lower[k + 1]->i <= v)
            k++;
        uint32_t got[2];
        terms(r, v, got);
        if (got[0] != order[k])
            fail_msg("value %" PRId64 ": term_of %u, the layout says %u", v, got[0], order[k]);
    }
}

static void test_route_through_splits(void **state)
{
    (void)state;
    rig r;
    rig_init(&r);
    uint32_t t[2];
    assert_int_equal(terms(&r, 150, t), 1);
    assert_int_equal(t[0], 1);
    assert_int_equal(sx_ixkey_term_count(&r.d), 4);
    check_order(&r, -50, 450);

    /* t1 = [100, 200) splits at 150 into 4 = [100, 150) and 5 = [150, 200):
     * while it is not done, a change of t1's range goes to t1 too. */
    rig_split(&r, 1, 150);
    assert_int_equal(sx_ixkey_term_count(&r.d), 6);
    assert_int_equal(terms(&r, 149, t), 2);
    assert_int_equal(t[0], 4);
    assert_int_equal(t[1], 1);
    assert_int_equal(terms(&r, 150, t), 2);
    assert_int_equal(t[0], 5);
    assert_int_equal(t[1], 1);
    assert_int_equal(terms(&r, 100, t), 2);
    assert_int_equal(t[0], 4);
    assert_int_equal(terms(&r, 99, t), 1); /* outside t1: t0 alone */
    assert_int_equal(t[0], 0);
    assert_int_equal(terms(&r, 200, t), 1);
    assert_int_equal(t[0], 2);
    check_order(&r, -50, 450);

    /* Done: t1 gets nothing more. */
    r.sp[0].done = true;
    assert_int_equal(terms(&r, 120, t), 1);
    assert_int_equal(t[0], 4);

    /* A shadow splits again (5 at 175 into 6, 7): the parent named during
     * it is 5, never the retired 1. */
    rig_split(&r, 5, 175);
    assert_int_equal(terms(&r, 180, t), 2);
    assert_int_equal(t[0], 7);
    assert_int_equal(t[1], 5);
    assert_int_equal(terms(&r, 160, t), 2);
    assert_int_equal(t[0], 6);
    assert_int_equal(t[1], 5);
    assert_int_equal(terms(&r, 120, t), 1);
    assert_int_equal(t[0], 4);
    check_order(&r, -50, 450);
    /* The layout a query uses leaves the unfinished split out. */
    r.d.nlayout = 1;
    assert_int_equal(terms(&r, 180, t), 1);
    assert_int_equal(t[0], 5);
}

/* Seeded random layouts: every value routes to the partition the order says. */
static void test_random_layouts(void **state)
{
    (void)state;
    uint64_t s = sx_fx_seed();
    for (int round = 0; round < 50; round++) {
        rig r;
        rig_init(&r);
        int nsplits = (int)(sx_fx_rnd(&s) % 10);
        for (int k = 0; k < nsplits; k++) {
            uint32_t order[64];
            const Shardex__V1__Value *lower[64];
            size_t n = sx_ixkey_layout_order(&r.d, order, lower);
            size_t pick = sx_fx_rnd(&s) % n;
            int64_t lo = lower[pick] ? lower[pick]->i : -100;
            int64_t hi = pick + 1 < n ? lower[pick + 1]->i : 500;
            if (hi - lo < 2)
                continue;
            int64_t at = lo + 1 + (int64_t)(sx_fx_rnd(&s) % (uint64_t)(hi - lo - 1));
            char msg[200];
            Shardex__V1__Value v = ival(at);
            if (!sx_ixkey_check_split(&r.d, order[pick], &v, msg, sizeof(msg)))
                fail_msg("round %d: a split at %" PRId64 " inside (%" PRId64 ", %" PRId64
                         ") refused: %s",
                         round, at, lo, hi, msg);
            rig_split(&r, order[pick], at);
        }
        if (r.d.nlayout)
            r.sp[r.d.nlayout - 1].done = sx_fx_rnd(&s) % 2;
        check_order(&r, -120, 520);
    }
}

static void expect_refused(const rig *r, uint32_t t, const Shardex__V1__Value *at,
                           const char *needle)
{
    char msg[200] = "";
    if (sx_ixkey_check_split(&r->d, t, at, msg, sizeof(msg)) || !strstr(msg, needle))
        fail_msg("split of %u: \"%s\", expected a refusal with \"%s\"", t, msg, needle);
}

static void test_check_split(void **state)
{
    (void)state;
    rig r;
    rig_init(&r);
    Shardex__V1__Value in = ival(150), low = ival(100), high = ival(200), out = ival(50);
    Shardex__V1__Value str = SHARDEX__V1__VALUE__INIT;
    str.kind_case = SHARDEX__V1__VALUE__KIND_S;
    str.s = "x";
    char msg[200];
    assert_true(sx_ixkey_check_split(&r.d, 1, &in, msg, sizeof(msg)));
    expect_refused(&r, 1, &low, "at: outside");  /* lo would own nothing */
    expect_refused(&r, 1, &high, "at: outside"); /* that is t2's */
    expect_refused(&r, 1, &out, "at: outside");
    expect_refused(&r, 1, &str, "at: not a int");
    expect_refused(&r, 1, NULL, "at: not a int");
    expect_refused(&r, 4, &in, "term_partition: 4");
    Shardex__V1__Value first = ival(-1000000), last = ival(1000000);
    assert_true(sx_ixkey_check_split(&r.d, 0, &first, msg, sizeof(msg))); /* open ends */
    assert_true(sx_ixkey_check_split(&r.d, 3, &last, msg, sizeof(msg)));
    rig_split(&r, 1, 150);
    expect_refused(&r, 1, &in, "term_partition: 1"); /* split: no longer serving */
    Shardex__V1__Value inlo = ival(120);
    assert_true(sx_ixkey_check_split(&r.d, 4, &inlo, msg, sizeof(msg)));
    expect_refused(&r, 4, &in, "at: outside");
    r.d.range = false;
    expect_refused(&r, 0, &in, "not range-partitioned");
}

/* Routes (value v, id) at version through d. */
static size_t entry_terms(const sx_ixkey_def *d, int64_t v, const char *id, uint64_t version,
                          uint32_t out[2])
{
    sx_buf b = {0};
    sx_key_append_i64(&b, v);
    size_t n = sx_ixkey_terms_of(d, b.data, b.len, id, strlen(id), version, out);
    sx_buf_free(&b);
    return n;
}

static uint32_t value_term(const sx_ixkey_def *d, int64_t v)
{
    sx_buf b = {0};
    sx_key_append_i64(&b, v);
    uint32_t t = sx_ixkey_term_of(d, b.data, b.len);
    sx_buf_free(&b);
    return t;
}

static void test_salt_hash(void **state)
{
    (void)state;
    sx_ixkey_def d = {
        .id = 2, .name = "h", .field = "n", .is_int = true, .global = true, .term_partitions = 8};
    Shardex__V1__Value hot = ival(7);
    uint32_t t0 = value_term(&d, 7), terms[4];
    char msg[200];
    assert_true(sx_ixkey_plan_salt(&d, &hot, 4, terms, msg, sizeof(msg)));
    for (uint32_t i = 0; i < 4; i++)
        assert_int_equal(terms[i], (t0 + i) % 8);
    Shardex__Internal__V1__IndexSalt sa = SHARDEX__INTERNAL__V1__INDEX_SALT__INIT;
    Shardex__Internal__V1__IndexSalt *sp = &sa;
    sa.seq = 1;
    sa.value = &hot;
    sa.ways = sa.n_terms = 4;
    sa.terms = terms;
    sa.from = 100;
    d.salts = &sp;
    d.nsalts = 1;
    unsigned per[8] = {0};
    for (int i = 0; i < 400; i++) {
        char id[16];
        snprintf(id, sizeof(id), "doc-%d", i);
        uint32_t out[2];
        assert_int_equal(entry_terms(&d, 7, id, 99, out), 1);
        assert_int_equal(out[0], t0); /* written before the marker: where it was */
        assert_int_equal(entry_terms(&d, 7, id, 100, out), 1);
        uint32_t j = sx_ixkey_salt_slot(id, strlen(id), 4);
        assert_int_equal(out[0], terms[j]);
        per[out[0]]++;
        uint32_t again[2];
        entry_terms(&d, 7, id, 5000, again);
        assert_int_equal(again[0], out[0]); /* the id, not the version, picks the slot */
        entry_terms(&d, 8, id, 5000, again);
        assert_int_equal(again[0], value_term(&d, 8)); /* another value: not salted */
    }
    for (uint32_t i = 0; i < 4; i++) /* 400 ids over 4 slots: each gets a share */
        if (per[terms[i]] < 50)
            fail_msg("slot %u got %u of 400 ids", i, per[terms[i]]);
    assert_int_equal(value_term(&d, 7), t0); /* queries add the salt set themselves */
    uint32_t set[4];
    assert_int_equal(sx_ixkey_salt_terms(&d, &sa, set), 4);
    for (uint32_t i = 0; i < 4; i++)
        assert_int_equal(set[i], terms[i]);
    assert_ptr_equal(sx_ixkey_salt_of(&d, &hot), &sa);
    Shardex__V1__Value other = ival(8);
    assert_null(sx_ixkey_salt_of(&d, &other));
}

static void expect_salt_refused(const sx_ixkey_def *d, const Shardex__V1__Value *v, uint32_t ways,
                                const char *needle)
{
    uint32_t terms[64];
    char msg[200] = "";
    if (sx_ixkey_plan_salt(d, v, ways, terms, msg, sizeof(msg)) || !strstr(msg, needle))
        fail_msg("salt of %u ways: \"%s\", expected a refusal with \"%s\"", ways, msg, needle);
}

static void test_salt_range(void **state)
{
    (void)state;
    rig r;
    rig_init(&r);
    Shardex__V1__Value hot = ival(350);
    uint32_t terms[3];
    char msg[200];
    /* 350 is in t3, the last: the set wraps to t0 and t1. */
    assert_true(sx_ixkey_plan_salt(&r.d, &hot, 3, terms, msg, sizeof(msg)));
    assert_int_equal(terms[0], 3);
    assert_int_equal(terms[1], 0);
    assert_int_equal(terms[2], 1);
    Shardex__Internal__V1__IndexSalt sa = SHARDEX__INTERNAL__V1__INDEX_SALT__INIT;
    Shardex__Internal__V1__IndexSalt *sp = &sa;
    sa.seq = 1;
    sa.value = &hot;
    sa.ways = sa.n_terms = 3;
    sa.terms = terms;
    sa.from = 10;
    r.d.salts = &sp;
    r.d.nsalts = 1;
    expect_salt_refused(&r.d, &hot, 2, "value: already salted");
    /* A split of t1 at 150 after the salt: slot 2's entries (350, outside
     * t1's range) follow the split by value, to hi; while the split is
     * unfinished the parent gets them too. */
    rig_split(&r, 1, 150);
    const char *id = NULL;
    char buf[16];
    for (int i = 0; !id && i < 1000; i++) {
        snprintf(buf, sizeof(buf), "x%d", i);
        if (sx_ixkey_salt_slot(buf, strlen(buf), 3) == 2)
            id = buf;
    }
    assert_non_null(id);
    uint32_t out[2];
    assert_int_equal(entry_terms(&r.d, 350, id, 10, out), 2);
    assert_int_equal(out[0], r.sp[0].hi);
    assert_int_equal(out[1], 1);
    assert_int_equal(entry_terms(&r.d, 350, id, 9, out), 1);
    assert_int_equal(out[0], 3); /* before the salt: t0 */
    uint32_t set[3];
    assert_int_equal(sx_ixkey_salt_terms(&r.d, &sa, set), 3);
    assert_int_equal(set[2], r.sp[0].hi);
}

static void test_plan_salt_refusals(void **state)
{
    (void)state;
    rig r;
    rig_init(&r);
    Shardex__V1__Value v = ival(5);
    Shardex__V1__Value str = SHARDEX__V1__VALUE__INIT;
    str.kind_case = SHARDEX__V1__VALUE__KIND_S;
    str.s = "x";
    expect_salt_refused(&r.d, &v, 1, "ways: 1 is not in [2, 4]");
    expect_salt_refused(&r.d, &v, 5, "ways: 5 is not in [2, 4]");
    expect_salt_refused(&r.d, &str, 2, "value: not a int");
    expect_salt_refused(&r.d, NULL, 2, "value: not a int");
    rig_split(&r, 1, 150); /* five partitions serve */
    uint32_t terms[5];
    char msg[200];
    assert_true(sx_ixkey_plan_salt(&r.d, &v, 5, terms, msg, sizeof(msg)));
    r.d.global = false;
    expect_salt_refused(&r.d, &v, 2, "name: index \"r\" is not GLOBAL");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_route_through_splits), cmocka_unit_test(test_random_layouts),
        cmocka_unit_test(test_check_split),          cmocka_unit_test(test_salt_hash),
        cmocka_unit_test(test_salt_range),           cmocka_unit_test(test_plan_salt_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
