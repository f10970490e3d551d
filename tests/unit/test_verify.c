/* test_verify.c: unit tests for client/replay.h and client/verify.h, with no
 * network.
 *
 * Logs are built by hand as packed LogOps from `top` rows. An oracle written
 * here, independent of replay.c and of ixkey's sx_ixkey_doc_values (it encodes
 * values and picks term partitions itself), says what every index holds at
 * every position. The replay must agree with it, and with entries written out
 * by hand, on a fixed history (multi-valued fields, updates that change
 * values, deletes, re-created ids, index_start in the middle, a second start,
 * index_drop, a mistyped value) and on random ones. The entry and document
 * diffs are checked on hand-made differences. Then sx_verify_run runs against a
 * fake cluster (two workers each holding a replica of both log partitions, a
 * local+global and a local index) whose served views come from the oracle,
 * each replica at its own position: clean, and with faults injected on a
 * leader, a follower or a term partition's owner.
 * Randomized tests take their seed from SHARDEX_TEST_SEED, else the clock,
 * and print it (seed=N).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the four above, which it needs */

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fixture.h"
#include "hash.h"
#include "keys.h"
#include "replay.h"
#include "verify.h"

#include "shardex/internal/v1/coordinator.pb-c.h"
#include "shardex/internal/v1/index.pb-c.h"
#include "shardex/internal/v1/replication.pb-c.h"

static unsigned long long seed;
static uint64_t rng_state;

/* splitmix64 (fixture.h) on this file's stream. */
static uint64_t rnd(void)
{
    return sx_fx_rnd(&rng_state);
}

static uint64_t rnd_below(uint64_t n)
{
    return n ? rnd() % n : 0;
}

/* ---- log rows ---- */

enum { OP_PUT, OP_DEL, OP_START, OP_DROP, OP_JUNK, OP_EMPTY };

typedef struct tfield {
    const char *name;
    bool is_int;
    const char *s;
    int64_t i;
} tfield;

#define MAXF 6

/* One log entry as the tests write it. */
typedef struct top {
    int kind;
    const char *id; /* put, delete */
    tfield f[MAXF]; /* put */
    size_t nf;
    uint64_t ix; /* start, drop */
    const char *name, *field;
    bool is_int, local, global;
    uint32_t m;
} top;

#define S(n, v)                                                                                    \
    {                                                                                              \
        .name = n, .s = v                                                                          \
    }
#define I(n, v)                                                                                    \
    {                                                                                              \
        .name = n, .is_int = true, .i = v                                                          \
    }
#define PUT(idv, ...)                                                                              \
    {                                                                                              \
        .kind = OP_PUT, .id = idv, .f = {__VA_ARGS__},                                             \
        .nf = sizeof((tfield[]){__VA_ARGS__}) / sizeof(tfield)                                     \
    }
#define DEL(idv)                                                                                   \
    {                                                                                              \
        .kind = OP_DEL, .id = idv                                                                  \
    }
#define START(x, nm, fl, isint, loc, glob, mm)                                                     \
    {                                                                                              \
        .kind = OP_START, .ix = x, .name = nm, .field = fl, .is_int = isint, .local = loc,         \
        .global = glob, .m = mm                                                                    \
    }
#define DROP(x)                                                                                    \
    {                                                                                              \
        .kind = OP_DROP, .ix = x                                                                   \
    }
#define JUNK                                                                                       \
    {                                                                                              \
        .kind = OP_JUNK                                                                            \
    }

/* Index 7: "color", strings, local and global over 3 term partitions.
 * Index 8: "n", ints, local. */
#define START7 START(7, "color", "color", false, true, true, 3)
#define START8 START(8, "n", "n", true, true, false, 0)

typedef struct docbuf {
    Shardex__V1__Document d;
    Shardex__V1__Field f[MAXF];
    Shardex__V1__Field *fp[MAXF];
    Shardex__V1__Value v[MAXF];
} docbuf;

static void doc_of(const top *o, docbuf *b)
{
    shardex__v1__document__init(&b->d);
    for (size_t i = 0; i < o->nf; i++) {
        shardex__v1__value__init(&b->v[i]);
        if (o->f[i].is_int) {
            b->v[i].kind_case = SHARDEX__V1__VALUE__KIND_I;
            b->v[i].i = o->f[i].i;
        } else {
            b->v[i].kind_case = SHARDEX__V1__VALUE__KIND_S;
            b->v[i].s = (char *)o->f[i].s;
        }
        shardex__v1__field__init(&b->f[i]);
        b->f[i].name = (char *)o->f[i].name;
        b->f[i].value = &b->v[i];
        b->fp[i] = &b->f[i];
    }
    b->d.id = (char *)o->id;
    b->d.n_fields = o->nf;
    b->d.fields = b->fp;
}

static void spec_of(const top *o, Shardex__V1__IndexSpec *s)
{
    shardex__v1__index_spec__init(s);
    s->name = (char *)o->name;
    s->field = (char *)o->field;
    s->type = o->is_int ? SHARDEX__V1__VALUE_TYPE__VALUE_TYPE_INT
                        : SHARDEX__V1__VALUE_TYPE__VALUE_TYPE_STRING;
    s->local = o->local;
    s->global = o->global;
    s->term_partitions = o->m;
}

/* The packed LogOp of o into out (replacing its contents). */
static void pack_top(const top *o, sx_buf *out)
{
    Shardex__Internal__V1__LogOp op = SHARDEX__INTERNAL__V1__LOG_OP__INIT;
    Shardex__Internal__V1__IndexStart st = SHARDEX__INTERNAL__V1__INDEX_START__INIT;
    Shardex__V1__IndexSpec sp;
    docbuf db;
    sx_buf_reset(out);
    switch (o->kind) {
    case OP_PUT:
        doc_of(o, &db);
        op.op_case = SHARDEX__INTERNAL__V1__LOG_OP__OP_PUT;
        op.put = &db.d;
        break;
    case OP_DEL:
        op.op_case = SHARDEX__INTERNAL__V1__LOG_OP__OP_DELETE;
        op.delete_ = (char *)o->id;
        break;
    case OP_START:
        spec_of(o, &sp);
        st.index_id = o->ix;
        st.spec = &sp;
        op.op_case = SHARDEX__INTERNAL__V1__LOG_OP__OP_INDEX_START;
        op.index_start = &st;
        break;
    case OP_DROP:
        op.op_case = SHARDEX__INTERNAL__V1__LOG_OP__OP_INDEX_DROP;
        op.index_drop = o->ix;
        break;
    case OP_JUNK:
        sx_buf_append(out, "\xff\xff\xff", 3);
        return;
    default:
        break; /* OP_EMPTY: a LogOp without an operation */
    }
    size_t n = shardex__internal__v1__log_op__get_packed_size(&op);
    sx_buf_reserve(out, n);
    out->len = shardex__internal__v1__log_op__pack(&op, out->data);
}

/* Applies log[0..n) to r, offsets 1..n. */
static void apply_all(sx_replay *r, const top *log, size_t n)
{
    sx_buf b = {0};
    sx_err err = {0};
    for (size_t i = 0; i < n; i++) {
        pack_top(&log[i], &b);
        assert_int_equal(sx_replay_apply(r, sx_replay_position(r) + 1, b.data, b.len, &err), SX_OK);
    }
    sx_buf_free(&b);
}

static void apply_one(sx_replay *r, const top *o)
{
    apply_all(r, o, 1);
}

/* ---- the oracle ---- */

#define OMAX 64

typedef struct odoc {
    const char *id;
    uint64_t version;
    const top *put;
} odoc;

typedef struct ostate {
    odoc docs[OMAX];
    size_t ndocs;
    const top *ix[8];
    size_t nix;
} ostate;

/* The state after log[0..pos) (JUNK and EMPTY rows change nothing). */
static void oracle_at(const top *log, size_t n, uint64_t pos, ostate *st)
{
    memset(st, 0, sizeof(*st));
    for (size_t k = 0; k < pos && k < n; k++) {
        const top *o = &log[k];
        size_t i = 0;
        switch (o->kind) {
        case OP_PUT:
        case OP_DEL:
            while (i < st->ndocs && strcmp(st->docs[i].id, o->id) != 0)
                i++;
            if (o->kind == OP_PUT) {
                assert_true(i < OMAX);
                st->docs[i] = (odoc){o->id, k + 1, o};
                st->ndocs += i == st->ndocs;
            } else if (i < st->ndocs) {
                st->docs[i] = st->docs[--st->ndocs];
            }
            break;
        case OP_START:
        case OP_DROP:
            while (i < st->nix && st->ix[i]->ix != o->ix)
                i++;
            if (o->kind == OP_START && i == st->nix)
                st->ix[st->nix++] = o;
            else if (o->kind == OP_DROP && i < st->nix)
                st->ix[i] = st->ix[--st->nix];
            break;
        default:
            break;
        }
    }
}

/* The entries index ix holds in st (of term partition t only, when t >= 0),
 * added to l with partition p. False when the index is not active. */
static bool oracle_entries(const ostate *st, uint64_t ix, int64_t t, int32_t p,
                           sx_replay_entries *l)
{
    const top *s = NULL;
    for (size_t i = 0; i < st->nix; i++)
        if (st->ix[i]->ix == ix)
            s = st->ix[i];
    if (!s)
        return false;
    for (size_t d = 0; d < st->ndocs; d++) {
        const top *o = st->docs[d].put;
        const tfield *seen[MAXF];
        size_t nseen = 0;
        for (size_t f = 0; f < o->nf; f++) {
            const tfield *v = &o->f[f];
            if (strcmp(v->name, s->field) != 0 || v->is_int != s->is_int)
                continue;
            bool dup = false;
            for (size_t k = 0; k < nseen; k++)
                dup |= v->is_int ? seen[k]->i == v->i : strcmp(seen[k]->s, v->s) == 0;
            if (dup)
                continue;
            seen[nseen++] = v;
            uint32_t term = 0;
            sx_buf key = {0};
            if (v->is_int) {
                sx_key_append_i64(&key, v->i);
                if (s->global)
                    term = sx_term_partition_of_int(s->name, v->i, s->m);
            } else {
                sx_key_append_str(&key, v->s, strlen(v->s));
                if (s->global)
                    term = sx_term_partition_of_str(s->name, v->s, strlen(v->s), s->m);
            }
            sx_key_append_str(&key, o->id, strlen(o->id));
            if (t < 0 || (int64_t)term == t)
                sx_replay_entries_add(l, key.data, key.len, st->docs[d].version, p);
            sx_buf_free(&key);
        }
    }
    return true;
}

/* ---- helpers ---- */

typedef struct collect {
    sx_replay_entries *l;
    int64_t t;
    int32_t p;
} collect;

static void collect_cb(void *arg, const uint8_t *key, size_t len, uint32_t term, uint64_t version)
{
    collect *c = arg;
    if (c->t < 0 || (int64_t)term == c->t)
        sx_replay_entries_add(c->l, key, len, version, c->p);
}

/* The replay's entries of ix (term t, or all); false when inactive. */
static bool replay_list(const sx_replay *r, uint64_t ix, int64_t t, sx_replay_entries *l)
{
    collect c = {l, t, 0};
    return sx_replay_each_entry(r, ix, collect_cb, &c, NULL, NULL);
}

static void assert_same(sx_replay_entries *a, sx_replay_entries *b)
{
    sx_replay_entries_sort(a);
    sx_replay_entries_sort(b);
    assert_int_equal(a->n, b->n);
    assert_int_equal(sx_replay_entries_diff(a, b, NULL, NULL), 0);
    assert_true(sx_replay_entries_digest(a) == sx_replay_entries_digest(b));
}

/* Adds the entry (string value, id) -> version to l. */
static void add_s(sx_replay_entries *l, const char *value, const char *id, uint64_t version)
{
    sx_buf k = {0};
    sx_key_append_str(&k, value, strlen(value));
    sx_key_append_str(&k, id, strlen(id));
    sx_replay_entries_add(l, k.data, k.len, version, 0);
    sx_buf_free(&k);
}

static void add_i(sx_replay_entries *l, int64_t value, const char *id, uint64_t version)
{
    sx_buf k = {0};
    sx_key_append_i64(&k, value);
    sx_key_append_str(&k, id, strlen(id));
    sx_replay_entries_add(l, k.data, k.len, version, 0);
    sx_buf_free(&k);
}

/* The replay's entries of ix equal the listed ones, and its digest theirs. */
static void expect_entries(const sx_replay *r, uint64_t ix, sx_replay_entries *want)
{
    sx_replay_entries got = {0};
    assert_true(replay_list(r, ix, -1, &got));
    assert_same(&got, want);
    uint64_t digest = 0, count = 0;
    assert_true(sx_replay_digest(r, ix, -1, &digest, &count));
    assert_int_equal(count, want->n);
    assert_true(digest == sx_replay_entries_digest(want));
    sx_replay_entries_free(&got);
    sx_replay_entries_free(want);
}

/* Replay and oracle agree on every index and term partition at this position. */
static void agree_with_oracle(const sx_replay *r, const top *log, size_t n)
{
    ostate st;
    oracle_at(log, n, sx_replay_position(r), &st);
    assert_int_equal(sx_replay_doc_count(r), st.ndocs);
    for (size_t d = 0; d < st.ndocs; d++) {
        uint64_t v = 0;
        assert_true(sx_replay_doc(r, st.docs[d].id, strlen(st.docs[d].id), &v, NULL));
        assert_int_equal(v, st.docs[d].version);
    }
    static const uint64_t ids[] = {7, 8};
    for (size_t i = 0; i < 2; i++) {
        uint64_t total = 0, total_count = 0;
        for (int64_t t = -1; t < 3; t++) {
            sx_replay_entries want = {0}, got = {0};
            bool a = oracle_entries(&st, ids[i], t, 0, &want);
            assert_int_equal(replay_list(r, ids[i], t, &got), a);
            assert_int_equal(sx_replay_index(r, ids[i], NULL) != NULL, a);
            assert_same(&got, &want);
            uint64_t digest, count;
            assert_int_equal(sx_replay_digest(r, ids[i], t, &digest, &count), a);
            assert_true(digest == sx_replay_entries_digest(&want));
            assert_int_equal(count, want.n);
            if (t >= 0) {
                total += digest;
                total_count += count;
            }
            sx_replay_entries_free(&want);
            sx_replay_entries_free(&got);
        }
        if (ids[i] == 7 && sx_replay_index(r, 7, NULL)) {
            uint64_t digest, count;
            sx_replay_digest(r, 7, -1, &digest, &count);
            assert_true(digest == total); /* the term partitions split the index */
            assert_int_equal(count, total_count);
        }
    }
}

/* ---- replay ---- */

static const top history[] = {
    /* 1 */ PUT("a", S("color", "red"), S("color", "blue"), I("n", 1)),
    /* 2 */ PUT("b", S("color", "red")),
    /* 3 */ START7,
    /* 4 */ PUT("c", S("color", "green"), I("color", 5)),
    /* 5 */ PUT("a", S("color", "blue"), S("color", "blue"), I("n", 2)),
    /* 6 */ DEL("b"),
    /* 7 */ START8,
    /* 8 */ PUT("b", S("color", "yellow"), I("n", -3)),
    /* 9 */ START(7, "color", "color", false, true, true, 5), /* active already: nothing */
    /* 10 */ DROP(7),
    /* 11 */ PUT("d", S("color", "red")),
    /* 12 */ DROP(99),
    /* 13 */ DEL("zz"),
    /* 14 */ PUT("c", I("n", 7), S("n", "seven")),
};
#define NHISTORY (sizeof(history) / sizeof(history[0]))

/* The fixed history, with what each position must hold written out by hand. */
static void test_replay_history(void **state)
{
    (void)state;
    sx_replay *r = sx_replay_create(0);
    sx_replay_entries want = {0};
    uint64_t count, mistyped;

    apply_all(r, history, 2);
    assert_null(sx_replay_index(r, 7, NULL));
    assert_false(sx_replay_each_entry(r, 7, NULL, NULL, &count, NULL));
    assert_int_equal(count, 0);

    apply_one(r, &history[2]); /* 3: backfilled from the documents as of 2 */
    add_s(&want, "blue", "a", 1);
    add_s(&want, "red", "a", 1);
    add_s(&want, "red", "b", 2);
    expect_entries(r, 7, &want);

    apply_one(r, &history[3]); /* 4: c with a mistyped value */
    add_s(&want, "blue", "a", 1);
    add_s(&want, "red", "a", 1);
    add_s(&want, "red", "b", 2);
    add_s(&want, "green", "c", 4);
    expect_entries(r, 7, &want);
    assert_true(sx_replay_each_entry(r, 7, NULL, NULL, &count, &mistyped));
    assert_int_equal(count, 4);
    assert_int_equal(mistyped, 1);

    apply_one(r, &history[4]); /* 5: a loses red; blue twice is one entry */
    add_s(&want, "blue", "a", 5);
    add_s(&want, "green", "c", 4);
    add_s(&want, "red", "b", 2);
    expect_entries(r, 7, &want);

    apply_one(r, &history[5]); /* 6: b deleted */
    add_s(&want, "blue", "a", 5);
    add_s(&want, "green", "c", 4);
    expect_entries(r, 7, &want);

    apply_all(r, &history[6], 2); /* 7: index 8 from the documents as of 6; 8: b again */
    add_s(&want, "blue", "a", 5);
    add_s(&want, "green", "c", 4);
    add_s(&want, "yellow", "b", 8);
    expect_entries(r, 7, &want);
    add_i(&want, 2, "a", 5);
    add_i(&want, -3, "b", 8);
    expect_entries(r, 8, &want);

    apply_one(r, &history[8]); /* 9: a second start changes nothing */
    const Shardex__V1__IndexSpec *spec = NULL;
    const sx_ixkey_def *d = sx_replay_index(r, 7, &spec);
    assert_non_null(d);
    assert_int_equal(d->term_partitions, 3);
    assert_int_equal(spec->term_partitions, 3);
    assert_string_equal(d->field, "color");
    add_s(&want, "blue", "a", 5);
    add_s(&want, "green", "c", 4);
    add_s(&want, "yellow", "b", 8);
    expect_entries(r, 7, &want);

    apply_one(r, &history[9]); /* 10: dropped */
    assert_null(sx_replay_index(r, 7, NULL));
    assert_false(sx_replay_each_entry(r, 7, NULL, NULL, &count, NULL));

    apply_all(r, &history[10], 4); /* 11..14: no-op drop and delete; c replaced */
    assert_int_equal(sx_replay_position(r), 14);
    add_i(&want, 2, "a", 5);
    add_i(&want, -3, "b", 8);
    add_i(&want, 7, "c", 14);
    expect_entries(r, 8, &want);
    assert_true(sx_replay_each_entry(r, 8, NULL, NULL, &count, &mistyped));
    assert_int_equal(mistyped, 1); /* c's n = "seven" */

    assert_int_equal(sx_replay_doc_count(r), 4);
    uint64_t v = 0;
    const Shardex__V1__Document *doc = NULL;
    assert_true(sx_replay_doc(r, "c", 1, &v, &doc));
    assert_int_equal(v, 14);
    assert_int_equal(doc->n_fields, 2);
    assert_false(sx_replay_doc(r, "zz", 2, NULL, NULL));
    assert_int_equal(sx_replay_touched(r, "b", 1), 8);
    assert_int_equal(sx_replay_touched(r, "zz", 2), 13);
    assert_int_equal(sx_replay_touched(r, "nope", 4), 0);
    sx_replay_destroy(r);

    /* The oracle agrees at every position. */
    r = sx_replay_create(0);
    agree_with_oracle(r, history, NHISTORY);
    for (size_t i = 0; i < NHISTORY; i++) {
        apply_one(r, &history[i]);
        agree_with_oracle(r, history, NHISTORY);
    }
    sx_replay_destroy(r);
}

/* Entries the apply path refuses are refused here too, changing nothing. */
static void test_replay_refuses(void **state)
{
    (void)state;
    sx_replay *r = sx_replay_create(3);
    apply_all(r, history, 3);
    sx_buf b = {0};
    sx_err err = {0};
    static const top junk = JUNK, empty = {.kind = OP_EMPTY};
    pack_top(&junk, &b);
    assert_int_equal(sx_replay_apply(r, 4, b.data, b.len, &err), SX_DATA_LOSS);
    assert_non_null(strstr(err.msg, "partition 3"));
    assert_non_null(strstr(err.msg, "entry 4"));
    pack_top(&empty, &b);
    assert_int_equal(sx_replay_apply(r, 4, b.data, b.len, &err), SX_DATA_LOSS);

    /* An index_start without a spec. */
    Shardex__Internal__V1__IndexStart st = SHARDEX__INTERNAL__V1__INDEX_START__INIT;
    st.index_id = 9;
    Shardex__Internal__V1__LogOp op = SHARDEX__INTERNAL__V1__LOG_OP__INIT;
    op.op_case = SHARDEX__INTERNAL__V1__LOG_OP__OP_INDEX_START;
    op.index_start = &st;
    sx_buf_reset(&b);
    sx_buf_reserve(&b, shardex__internal__v1__log_op__get_packed_size(&op));
    b.len = shardex__internal__v1__log_op__pack(&op, b.data);
    assert_int_equal(sx_replay_apply(r, 4, b.data, b.len, &err), SX_DATA_LOSS);

    /* Offsets in order only. */
    pack_top(&history[3], &b);
    assert_int_equal(sx_replay_apply(r, 5, b.data, b.len, &err), SX_INVALID_ARGUMENT);
    assert_int_equal(sx_replay_apply(r, 3, b.data, b.len, &err), SX_INVALID_ARGUMENT);

    assert_int_equal(sx_replay_position(r), 3);
    agree_with_oracle(r, history, NHISTORY);
    assert_int_equal(sx_replay_apply(r, 4, b.data, b.len, &err), SX_OK);
    agree_with_oracle(r, history, NHISTORY);
    sx_buf_free(&b);
    sx_replay_destroy(r);
}

static const char *const rid[] = {"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l"};
static const char *const rval[] = {"red", "green", "blue", "", "\xc3\xbc", "a b"};

/* Random histories: the replay agrees with the oracle at every position. */
static void test_replay_random(void **state)
{
    (void)state;
    rng_state = seed;
    enum { ROUNDS = 40, LEN = 120 };
    top *log = calloc(LEN, sizeof(*log));
    for (int round = 0; round < ROUNDS; round++) {
        for (size_t i = 0; i < LEN; i++) {
            top *o = &log[i];
            memset(o, 0, sizeof(*o));
            uint64_t k = rnd_below(100);
            if (k < 60) {
                o->kind = OP_PUT;
                o->id = rid[rnd_below(12)];
                o->nf = rnd_below(MAXF + 1);
                for (size_t f = 0; f < o->nf; f++) {
                    uint64_t w = rnd_below(10);
                    o->f[f].name = w < 6 ? "color" : w < 9 ? "n" : "other";
                    o->f[f].is_int = (w >= 6) != (rnd_below(8) == 0); /* some mistyped */
                    o->f[f].s = rval[rnd_below(6)];
                    o->f[f].i = (int64_t)rnd_below(5) - 2;
                }
            } else if (k < 85) {
                o->kind = OP_DEL;
                o->id = rid[rnd_below(12)];
            } else if (k < 94) {
                *o = rnd_below(2) ? (top)START7 : (top)START8;
            } else {
                *o = (top)DROP(7 + rnd_below(2));
            }
        }
        sx_replay *r = sx_replay_create(0);
        for (size_t i = 0; i < LEN; i++) {
            apply_one(r, &log[i]);
            agree_with_oracle(r, log, LEN);
        }
        sx_replay_destroy(r);
    }
    free(log);
}

/* ---- diffs ---- */

typedef struct seen_diff {
    sx_replay_kind kind;
    char what[64];
    uint64_t expected, served;
} seen_diff;

typedef struct seen {
    seen_diff d[16];
    size_t n;
} seen;

static void entry_diff_cb(void *arg, sx_replay_kind kind, const sx_replay_entry *e,
                          const sx_replay_entry *s)
{
    seen *x = arg;
    assert_true(x->n < 16);
    const sx_replay_entry *any = e ? e : s;
    Shardex__V1__Value v;
    sx_buf sb = {0}, id = {0};
    assert_true(sx_ixkey_split_key(false, any->key, any->len, &v, &sb, &id));
    seen_diff *d = &x->d[x->n++];
    d->kind = kind;
    snprintf(d->what, sizeof(d->what), "%s/%.*s", v.s, (int)id.len, (const char *)id.data);
    d->expected = e ? e->version : 0;
    d->served = s ? s->version : 0;
    sx_buf_free(&sb);
    sx_buf_free(&id);
}

static void test_entries_diff(void **state)
{
    (void)state;
    sx_replay_entries want = {0}, got = {0};
    add_s(&want, "red", "k1", 1);
    add_s(&want, "red", "k2", 2);
    add_s(&want, "red", "k3", 3);
    add_s(&want, "blue", "k0", 9);
    add_s(&got, "red", "k4", 4);
    add_s(&got, "red", "k2", 5);
    add_s(&got, "red", "k1", 1);
    add_s(&got, "blue", "k0", 9);
    add_s(&got, "blue", "k0", 9); /* twice */
    sx_replay_entries_sort(&want);
    sx_replay_entries_sort(&got);
    seen x = {0};
    assert_int_equal(sx_replay_entries_diff(&want, &got, entry_diff_cb, &x), 4);
    assert_int_equal(x.d[0].kind, SX_REPLAY_EXTRA); /* the second blue/k0 */
    assert_string_equal(x.d[0].what, "blue/k0");
    assert_int_equal(x.d[1].kind, SX_REPLAY_WRONG_VERSION);
    assert_string_equal(x.d[1].what, "red/k2");
    assert_int_equal(x.d[1].expected, 2);
    assert_int_equal(x.d[1].served, 5);
    assert_int_equal(x.d[2].kind, SX_REPLAY_MISSING);
    assert_string_equal(x.d[2].what, "red/k3");
    assert_int_equal(x.d[2].expected, 3);
    assert_int_equal(x.d[3].kind, SX_REPLAY_EXTRA);
    assert_string_equal(x.d[3].what, "red/k4");
    assert_int_equal(x.d[3].served, 4);
    assert_int_equal(sx_replay_entries_diff(&want, &want, NULL, NULL), 0);
    sx_replay_entries empty = {0};
    assert_int_equal(sx_replay_entries_diff(&want, &empty, NULL, NULL), 4);
    assert_int_equal(sx_replay_entries_diff(&empty, &got, NULL, NULL), 5);
    assert_true(sx_replay_entries_digest(&empty) == 0);
    assert_string_equal(sx_replay_kind_name(SX_REPLAY_WRONG_VERSION), "WRONG-VERSION");
    sx_replay_entries_free(&want);
    sx_replay_entries_free(&got);
}

static void doc_diff_cb(void *arg, sx_replay_kind kind, const char *id, uint64_t expected,
                        uint64_t served)
{
    seen *x = arg;
    assert_true(x->n < 16);
    seen_diff *d = &x->d[x->n++];
    d->kind = kind;
    snprintf(d->what, sizeof(d->what), "%s", id);
    d->expected = expected;
    d->served = served;
}

/* A StoredDoc of o at version. */
static Shardex__Internal__V1__StoredDoc *stored(const top *o, uint64_t version, docbuf *db)
{
    Shardex__Internal__V1__StoredDoc *sd = calloc(1, sizeof(*sd));
    shardex__internal__v1__stored_doc__init(sd);
    doc_of(o, db);
    sd->doc = &db->d;
    sd->version = version;
    return sd;
}

static void test_docs_diff(void **state)
{
    (void)state;
    sx_replay *r = sx_replay_create(0);
    apply_all(r, history, 5); /* a@5, b@2, c@4 */
    static const top a_other = PUT("a", S("color", "blue"), I("n", 2));
    static const top x_doc = PUT("x", S("color", "red"));
    docbuf db[6];
    Shardex__Internal__V1__StoredDoc *docs[6];
    docs[0] = stored(&a_other, 5, &db[0]);    /* same version, other fields */
    docs[1] = stored(&history[1], 3, &db[1]); /* b at 3, not 2 */
    docs[2] = stored(&x_doc, 1, &db[2]);      /* not in the log */
    docs[3] = stored(&history[1], 2, &db[3]); /* b twice */
    seen x = {0};
    assert_int_equal(sx_replay_docs_diff(r, docs, 4, doc_diff_cb, &x), 5);
    assert_int_equal(x.d[0].kind, SX_REPLAY_WRONG_CONTENT);
    assert_string_equal(x.d[0].what, "a");
    assert_int_equal(x.d[1].kind, SX_REPLAY_WRONG_VERSION);
    assert_string_equal(x.d[1].what, "b");
    assert_int_equal(x.d[1].expected, 2);
    assert_int_equal(x.d[1].served, 3);
    assert_int_equal(x.d[2].kind, SX_REPLAY_EXTRA);
    assert_string_equal(x.d[2].what, "x");
    assert_int_equal(x.d[3].kind, SX_REPLAY_EXTRA);
    assert_string_equal(x.d[3].what, "b");
    assert_int_equal(x.d[4].kind, SX_REPLAY_MISSING);
    assert_string_equal(x.d[4].what, "c");
    assert_int_equal(x.d[4].expected, 4);

    /* The same documents as the log: nothing. */
    free(docs[0]);
    docs[0] = stored(&history[4], 5, &db[0]);
    docs[4] = stored(&history[3], 4, &db[4]);
    Shardex__Internal__V1__StoredDoc *same[3] = {docs[4], docs[3], docs[0]};
    assert_int_equal(sx_replay_docs_diff(r, same, 3, NULL, NULL), 0);
    for (int i = 0; i < 5; i++)
        free(docs[i]);
    sx_replay_destroy(r);
}

/* ---- a fake cluster ---- */

#define FP 2 /* log partitions */
#define FM 3 /* term partitions of index 7 */
#define FW 2 /* workers: each hosts a replica of every partition */

static const top flog0[] = {
    /* 1 */ PUT("a", S("color", "red"), S("color", "blue"), I("n", 1)),
    /* 2 */ PUT("b", S("color", "red")),
    /* 3 */ START7,
    /* 4 */ PUT("c", S("color", "green"), I("color", 5)),
    /* 5 */ PUT("a", S("color", "blue"), S("color", "blue"), I("n", 2)),
    /* 6 */ DEL("b"),
    /* 7 */ START8,
    /* 8 */ PUT("b", S("color", "yellow"), I("n", -3)),
    /* 9 */ PUT("e", S("color", "red")),
};
static const top flog1[] = {
    /* 1 */ PUT("x", S("color", "red")),
    /* 2 */ START7,
    /* 3 */ PUT("y", S("color", "blue"), S("color", "violet")),
    /* 4 */ DEL("x"),
    /* 5 */ PUT("x", S("color", "teal")),
    /* 6 */ START8,
    /* 7 */ DROP(8),
    /* 8 */ PUT("z", I("n", 4)),
};

static const char *const fid[FW] = {"w0", "w1"};
static const char *const faddr[FW] = {"w0:1", "w1:1"};
static const int32_t fowner[FM] = {0, 1, 0};

typedef struct fake fake;
/* Changes the sorted entries a view serves: a local index of log partition
 * `part` on worker w, or term partition `part` (term, w = -1). */
typedef void (*mutate_fn)(fake *f, bool term, uint32_t part, int32_t w, uint64_t index,
                          sx_replay_entries *l);

/* The log of each partition is the leader's; every replica w of p serves
 * its documents and local indexes as of its own applied[p][w]. */
struct fake {
    top log[FP][16];
    size_t nlog[FP];
    uint64_t applied[FP][FW];  /* position of w's local digests and scans of p */
    uint64_t applied2[FP][FW]; /* position of w's later local digests; 0: applied */
    uint64_t scan_at[FP][FW];  /* w's scan's documents come from here; 0: applied */
    uint64_t wm[FM][FP];       /* index 7's watermarks */
    uint64_t start[FP];        /* the leader's log starts here (trimmed before); 0: at 1 */
    /* one stored document planted wrong in one replica's scan */
    const char *bad_id;   /* NULL: none */
    uint32_t bad_p;       /* of this partition */
    int32_t bad_w;        /* on this worker */
    uint64_t bad_version; /* served with this version; 0: its own */
    bool bad_content;     /* its first int field + 1 */
    int32_t leader[FP];
    int32_t replicas[FP][FW]; /* the map's replicas of p */
    size_t nreplicas[FP];
    const char *owner_down; /* owner address that answers UNAVAILABLE */
    const char *map_name7;  /* the map's name of index 7; NULL: "color" */
    bool first_digest_off;  /* the leader's first local digest of index 7 at p=1 is wrong */
    bool map_down;          /* GetMap answers UNAVAILABLE */
    int32_t replica_down;   /* p=0's replica on this worker answers UNAVAILABLE; -1: none */
    const char *slow;       /* address every call to which runs out its deadline */
    int slow_calls;
    mutate_fn mutate;
    int local_calls[FP][FW];
    int calls;
};

/* Every replica of p at position `at`. */
static void at_all(fake *f, uint32_t p, uint64_t at)
{
    for (int w = 0; w < FW; w++)
        f->applied[p][w] = at;
}

static void fake_init(fake *f)
{
    memset(f, 0, sizeof(*f));
    memcpy(f->log[0], flog0, sizeof(flog0));
    memcpy(f->log[1], flog1, sizeof(flog1));
    f->nlog[0] = sizeof(flog0) / sizeof(flog0[0]);
    f->nlog[1] = sizeof(flog1) / sizeof(flog1[0]);
    for (uint32_t p = 0; p < FP; p++) {
        at_all(f, p, f->nlog[p]);
        f->leader[p] = (int32_t)p;
        /* The map lists w0 first, for p=1 too: its leader w1 is asked first anyway. */
        for (int32_t w = 0; w < FW; w++)
            f->replicas[p][w] = w;
        f->nreplicas[p] = FW;
    }
    f->replica_down = -1;
    static const uint64_t wm[FM][FP] = {{9, 8}, {7, 5}, {9, 3}};
    memcpy(f->wm, wm, sizeof(wm));
}

/* A message as the rpc layer returns it (freed with sx_rpc_free). */
static ProtobufCMessage *reunpack(const ProtobufCMessage *m)
{
    return sx_rpc_copy(m->descriptor, m);
}

static ProtobufCMessage *fake_map(const fake *f)
{
    Shardex__Internal__V1__ClusterSettings set = SHARDEX__INTERNAL__V1__CLUSTER_SETTINGS__INIT;
    set.partitions = FP;
    set.term_partitions = FM;
    Shardex__Internal__V1__WorkerEntry w[FW], *wp[FW];
    for (int i = 0; i < FW; i++) {
        shardex__internal__v1__worker_entry__init(&w[i]);
        w[i].id = (char *)fid[i];
        w[i].address = (char *)faddr[i];
        w[i].alive = true;
        wp[i] = &w[i];
    }
    Shardex__Internal__V1__LogPartition lp[FP], *lpp[FP];
    int32_t reps[FP][FW];
    memcpy(reps, f->replicas, sizeof(reps));
    for (int p = 0; p < FP; p++) {
        shardex__internal__v1__log_partition__init(&lp[p]);
        lp[p].leader = f->leader[p];
        lp[p].epoch = 3;
        lp[p].n_replicas = f->nreplicas[p];
        lp[p].replicas = reps[p];
        lpp[p] = &lp[p];
    }
    Shardex__Internal__V1__TermPartition tp[FM], *tpp[FM];
    for (int t = 0; t < FM; t++) {
        shardex__internal__v1__term_partition__init(&tp[t]);
        tp[t].owner = fowner[t];
        tp[t].epoch = 5 + (uint64_t)t;
        tpp[t] = &tp[t];
    }
    static const top s7 = START7, s8 = START8;
    Shardex__V1__IndexSpec sp[2];
    spec_of(&s7, &sp[0]);
    spec_of(&s8, &sp[1]);
    if (f->map_name7)
        sp[0].name = (char *)f->map_name7;
    Shardex__Internal__V1__IndexEntry ix[2], *ixp[2];
    for (int i = 0; i < 2; i++) {
        shardex__internal__v1__index_entry__init(&ix[i]);
        ix[i].spec = &sp[i];
        ix[i].id = 7 + (uint64_t)i;
        ix[i].state = SHARDEX__V1__INDEX_STATE__INDEX_STATE_READY;
        ixp[i] = &ix[i];
    }
    Shardex__Internal__V1__ClusterMap m = SHARDEX__INTERNAL__V1__CLUSTER_MAP__INIT;
    m.version = 42;
    m.settings = &set;
    m.n_workers = FW;
    m.workers = wp;
    m.n_partitions = FP;
    m.partitions = lpp;
    m.n_terms = FM;
    m.terms = tpp;
    m.n_indexes = 2;
    m.indexes = ixp;
    return reunpack(&m.base);
}

static ProtobufCMessage *digest_answer(const sx_replay_entries *l, bool active, bool entries,
                                       uint64_t applied, const uint64_t *wm, size_t nwm)
{
    Shardex__Internal__V1__DigestResponse r = SHARDEX__INTERNAL__V1__DIGEST_RESPONSE__INIT;
    r.digest = sx_replay_entries_digest(l);
    r.count = l->n;
    r.applied_offset = applied;
    r.active = active;
    r.n_watermarks = nwm;
    r.watermarks = (uint64_t *)wm;
    Shardex__Internal__V1__DigestEntry *e = calloc(l->n + 1, sizeof(*e));
    Shardex__Internal__V1__DigestEntry **ep = calloc(l->n + 1, sizeof(*ep));
    if (entries) {
        for (size_t i = 0; i < l->n; i++) {
            shardex__internal__v1__digest_entry__init(&e[i]);
            e[i].key.data = (uint8_t *)l->v[i].key;
            e[i].key.len = l->v[i].len;
            e[i].version = l->v[i].version;
            ep[i] = &e[i];
        }
        r.n_entries = l->n;
        r.entries = ep;
    }
    ProtobufCMessage *out = reunpack(&r.base);
    free(e);
    free(ep);
    return out;
}

/* The worker at addr, which must host a replica of p. */
static int32_t replica_at(const fake *f, const char *addr, uint32_t p)
{
    assert_true(p < FP);
    for (size_t i = 0; i < f->nreplicas[p]; i++)
        if (strcmp(addr, faddr[f->replicas[p][i]]) == 0)
            return f->replicas[p][i];
    fail_msg("%s asked about p=%u, which it does not host", addr, p);
    return -1;
}

static sx_status fake_digest(fake *f, const char *addr,
                             const Shardex__Internal__V1__DigestRequest *req,
                             ProtobufCMessage **resp, sx_err *err)
{
    sx_replay_entries l = {0};
    ostate st;
    if (!req->term) {
        uint32_t p = req->partition;
        int32_t w = replica_at(f, addr, p);
        if (p == 0 && w == f->replica_down)
            return sx_err_set(err, SX_UNAVAILABLE, "%s is down", addr);
        uint64_t pos =
            f->local_calls[p][w]++ && f->applied2[p][w] ? f->applied2[p][w] : f->applied[p][w];
        oracle_at(f->log[p], f->nlog[p], pos, &st);
        bool active = oracle_entries(&st, req->index_id, -1, (int32_t)p, &l);
        sx_replay_entries_sort(&l);
        if (f->mutate)
            f->mutate(f, false, p, w, req->index_id, &l);
        *resp = digest_answer(&l, active, req->entries, pos, NULL, 0);
        if (f->first_digest_off && p == 1 && w == f->leader[p] && req->index_id == 7 &&
            f->local_calls[p][w] == 1)
            ((Shardex__Internal__V1__DigestResponse *)*resp)->digest ^= 1;
        sx_replay_entries_free(&l);
        return SX_OK;
    }
    uint32_t t = req->partition;
    assert_int_equal(req->index_id, 7);
    assert_true(t < FM);
    assert_string_equal(addr, faddr[fowner[t]]);
    assert_int_equal(req->epoch, 5 + t);
    if (f->owner_down && strcmp(addr, f->owner_down) == 0)
        return sx_err_set(err, SX_UNAVAILABLE, "%s is down", addr);
    for (uint32_t p = 0; p < FP; p++) {
        oracle_at(f->log[p], f->nlog[p], f->wm[t][p], &st);
        if (f->wm[t][p])
            oracle_entries(&st, 7, t, (int32_t)p, &l);
    }
    sx_replay_entries_sort(&l);
    if (f->mutate)
        f->mutate(f, true, t, -1, 7, &l);
    *resp = digest_answer(&l, true, req->entries, 0, f->wm[t], FP);
    sx_replay_entries_free(&l);
    return SX_OK;
}

/* As the worker answers: from_offset 0 reads from the log's start, below
 * the start is OUT_OF_RANGE. */
static sx_status fake_read_log(const fake *f, const char *addr,
                               const Shardex__Internal__V1__ReadLogRequest *req,
                               ProtobufCMessage **resp, sx_err *err)
{
    uint32_t p = req->partition;
    assert_true(p < FP);
    assert_string_equal(addr, faddr[f->leader[p]]); /* the log is read from the leader only */
    assert_true(req->max_entries > 0);
    uint64_t start = f->start[p] ? f->start[p] : 1;
    uint64_t from = req->from_offset ? req->from_offset : start;
    if (from < start)
        return sx_err_set(err, SX_OUT_OF_RANGE, "offset %" PRIu64 " is below the log start", from);
    Shardex__Internal__V1__ReadLogResponse r = SHARDEX__INTERNAL__V1__READ_LOG_RESPONSE__INIT;
    r.log_start_offset = start;
    Shardex__Internal__V1__AppendEntry e[16], *ep[16];
    sx_buf b[16] = {{0}};
    for (uint64_t o = from; o <= f->nlog[p] && r.n_entries < req->max_entries; o++) {
        size_t i = r.n_entries++;
        shardex__internal__v1__append_entry__init(&e[i]);
        pack_top(&f->log[p][o - 1], &b[i]);
        e[i].epoch = 1;
        e[i].op.data = b[i].data;
        e[i].op.len = b[i].len;
        ep[i] = &e[i];
    }
    r.entries = ep;
    r.log_end_offset = f->nlog[p];
    *resp = reunpack(&r.base);
    for (int i = 0; i < 16; i++)
        sx_buf_free(&b[i]);
    return SX_OK;
}

static sx_status fake_scan(const fake *f, const char *addr, uint32_t p, ProtobufCMessage **resp,
                           sx_err *err)
{
    int32_t w = replica_at(f, addr, p);
    if (p == 0 && w == f->replica_down)
        return sx_err_set(err, SX_UNAVAILABLE, "%s is down", addr);
    ostate st;
    oracle_at(f->log[p], f->nlog[p], f->scan_at[p][w] ? f->scan_at[p][w] : f->applied[p][w], &st);
    Shardex__Internal__V1__ScanDocsResponse r = SHARDEX__INTERNAL__V1__SCAN_DOCS_RESPONSE__INIT;
    docbuf db[OMAX];
    Shardex__Internal__V1__StoredDoc sd[OMAX], *sdp[OMAX];
    for (size_t i = 0; i < st.ndocs; i++) {
        shardex__internal__v1__stored_doc__init(&sd[i]);
        doc_of(st.docs[i].put, &db[i]);
        sd[i].doc = &db[i].d;
        sd[i].version = st.docs[i].version;
        sdp[i] = &sd[i];
        if (f->bad_id && f->bad_p == p && f->bad_w == w && strcmp(f->bad_id, st.docs[i].id) == 0) {
            if (f->bad_version)
                sd[i].version = f->bad_version;
            for (size_t k = 0; f->bad_content && k < db[i].d.n_fields; k++)
                if (db[i].v[k].kind_case == SHARDEX__V1__VALUE__KIND_I) {
                    db[i].v[k].i++;
                    break;
                }
        }
    }
    r.n_docs = st.ndocs;
    r.docs = sdp;
    r.applied_offset = f->applied[p][w];
    *resp = reunpack(&r.base);
    return SX_OK;
}

static sx_status fake_call(void *arg, const char *addr, const ProtobufCServiceDescriptor *svc,
                           const char *method, const ProtobufCMessage *req, ProtobufCMessage **resp,
                           sx_err *err)
{
    fake *f = arg;
    f->calls++;
    *resp = NULL;
    if (f->slow && strcmp(addr, f->slow) == 0) {
        f->slow_calls++;
        return sx_err_set(err, SX_DEADLINE_EXCEEDED, "deadline exceeded");
    }
    if (strcmp(method, "Digest") == 0) {
        assert_ptr_equal(svc, &shardex__internal__v1__index__descriptor);
        return fake_digest(f, addr, (const void *)req, resp, err);
    }
    assert_ptr_equal(svc, &shardex__internal__v1__worker_admin__descriptor);
    if (strcmp(method, "GetMap") == 0 && f->map_down)
        return sx_err_set(err, SX_UNAVAILABLE, "connection refused");
    if (strcmp(method, "GetMap") == 0)
        *resp = fake_map(f);
    else if (strcmp(method, "ReadLog") == 0)
        return fake_read_log(f, addr, (const void *)req, resp, err);
    else if (strcmp(method, "ScanDocs") == 0)
        return fake_scan(f, addr, ((const Shardex__Internal__V1__ScanDocsRequest *)req)->partition,
                         resp, err);
    else
        fail_msg("unexpected method %s", method);
    return SX_OK;
}

static sx_verify_result *run_fake(fake *f, uint32_t page, sx_verify_summary *s)
{
    sx_verify_opts o = {.server = "w0:1", .call = fake_call, .call_arg = f, .log_page = page};
    sx_verify_result *r = NULL;
    sx_err err = {0};
    assert_int_equal(sx_verify_run(&o, &r, &err), SX_OK);
    sx_verify_result_summary(r, s);
    return r;
}

/* The report as text (caller frees). */
static char *report(const sx_verify_result *r)
{
    char *text = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&text, &len);
    assert_non_null(m);
    sx_verify_result_print(r, m);
    fclose(m);
    return text;
}

static void expect_line(const char *text, const char *line)
{
    if (getenv("SHARDEX_TEST_VERBOSE"))
        printf("---- expecting \"%s\" in:\n%s", line, text);
    if (!strstr(text, line))
        fail_msg("no line \"%s\" in the report:\n%s", line, text);
}

/* Per replica (2 per partition): 2 document checks and 2 local indexes x 2
 * partitions; and 3 term partitions. */
#define FCHECKS (FW * (FP + 2 * FP) + FM)
/* The checks of one replica of one partition: its documents and 2 local indexes. */
#define FREPLICA 3

static void test_run_clean(void **state)
{
    (void)state;
    static const uint32_t pages[] = {0, 1, 2, 4};
    for (size_t i = 0; i < 4; i++) {
        fake f;
        fake_init(&f);
        sx_verify_summary s;
        sx_verify_result *r = run_fake(&f, pages[i], &s);
        char *text = report(r);
        if (s.ok != FCHECKS)
            fail_msg("%s", text);
        assert_int_equal(s.checks, FCHECKS);
        assert_int_equal(s.diffs, 0);
        assert_int_equal(sx_verify_result_exit_code(r), SX_EXIT_OK);
        expect_line(text, "local  idx=color p=0 replica=w0@w0:1 at=9 entries=4 ok\n"
                          "local  idx=color p=0 replica=w1@w1:1 at=9 entries=4 ok\n");
        expect_line(text, "local  idx=n p=1 replica=w1@w1:1 at=8 entries=0 inactive ok\n");
        expect_line(text, "global idx=color t=1 wm=5..7 ");
        /* p=1: the leader first, though the map lists it second */
        expect_line(text, "docs   p=1 replica=w1@w1:1 at=8 docs=3 ok\n"
                          "docs   p=1 replica=w0@w0:1 at=8 docs=3 ok\n");
        expect_line(text, "summary: 15 checks: 15 ok, 0 different, 0 failed; 0 differences");
        free(text);
        sx_verify_result_free(r);
    }
    /* Views at earlier positions than the log's end. */
    fake f;
    fake_init(&f);
    at_all(&f, 0, 4);
    at_all(&f, 1, 0);
    sx_verify_summary s;
    sx_verify_result *r = run_fake(&f, 3, &s);
    assert_int_equal(s.ok, FCHECKS);
    char *text = report(r);
    expect_line(text, "local  idx=color p=0 replica=w0@w0:1 at=4 entries=4 ok\n");
    expect_line(text, "local  idx=color p=1 replica=w1@w1:1 at=0 entries=0 inactive ok\n");
    free(text);
    sx_verify_result_free(r);
}

/* Local index color at p=0 on its leader loses blue/a, serves green/c at a
 * wrong version and an entry the log never implied. */
static void mutate_local(fake *f, bool term, uint32_t part, int32_t w, uint64_t index,
                         sx_replay_entries *l)
{
    if (term || part != 0 || w != f->leader[0] || index != 7 || l->n < 2)
        return;
    memmove(&l->v[0], &l->v[1], (l->n - 1) * sizeof(l->v[0]));
    l->n--;
    l->v[0].version += 100;
    add_s(l, "zzz", "q", 3);
}

static void test_run_entry_diffs(void **state)
{
    (void)state;
    fake f;
    fake_init(&f);
    f.mutate = mutate_local;
    sx_verify_summary s;
    sx_verify_result *r = run_fake(&f, 0, &s);
    char *text = report(r);
    assert_int_equal(s.diffs, 3);
    assert_int_equal(s.missing, 1);
    assert_int_equal(s.extra, 1);
    assert_int_equal(s.wrong, 1);
    assert_int_equal(s.different, 1);
    assert_int_equal(s.ok, FCHECKS - 1);
    assert_int_equal(sx_verify_result_exit_code(r), SX_EXIT_DIFFERENT);
    expect_line(text, "local  idx=color p=0 replica=w0@w0:1 at=9 entries=4 DIFFERENT (3)\n"
                      "MISSING       local idx=color p=0 replica=w0@w0:1 value=\"blue\" id=\"a\" "
                      "version=5\n"
                      "WRONG-VERSION local idx=color p=0 replica=w0@w0:1 value=\"green\" id=\"c\" "
                      "served=104 expected=4\n"
                      "EXTRA         local idx=color p=0 replica=w0@w0:1 value=\"zzz\" id=\"q\" "
                      "version=3\n"
                      "local  idx=color p=0 replica=w1@w1:1 at=9 entries=4 ok\n");
    expect_line(text, "3 differences (1 missing, 1 extra, 1 wrong, 0 other)");

    char *js = sx_verify_result_json(r);
    json_error_t jerr;
    json_t *root = json_loads(js, 0, &jerr);
    assert_non_null(root);
    assert_int_equal(json_integer_value(json_object_get(root, "exit")), 1);
    json_t *sum = json_object_get(root, "summary");
    assert_int_equal(json_integer_value(json_object_get(sum, "missing")), 1);
    assert_int_equal(json_array_size(json_object_get(root, "checks")), FCHECKS);
    json_t *d0 = json_array_get(json_object_get(root, "differences"), 0);
    assert_string_equal(json_string_value(json_object_get(d0, "kind")), "missing");
    assert_string_equal(json_string_value(json_object_get(d0, "check")), "local");
    assert_string_equal(json_string_value(json_object_get(d0, "index")), "color");
    assert_string_equal(json_string_value(json_object_get(d0, "value")), "blue");
    assert_string_equal(json_string_value(json_object_get(d0, "id")), "a");
    assert_int_equal(json_integer_value(json_object_get(d0, "version")), 5);
    assert_int_equal(json_integer_value(json_object_get(d0, "partition")), 0);
    assert_string_equal(json_string_value(json_object_get(d0, "worker")), "w0");
    assert_string_equal(json_string_value(json_object_get(d0, "address")), "w0:1");
    assert_string_equal(json_string_value(json_object_get(d0, "role")), "leader");
    json_decref(root);
    free(js);
    free(text);
    sx_verify_result_free(r);

    /* At most one difference kept, all three counted. */
    sx_verify_opts o = {.server = "w0:1", .call = fake_call, .call_arg = &f, .max_diffs = 1};
    sx_err err = {0};
    assert_int_equal(sx_verify_run(&o, &r, &err), SX_OK);
    sx_verify_result_summary(r, &s);
    assert_int_equal(s.diffs, 3);
    text = report(r);
    expect_line(text, "the first 1 shown");
    assert_null(strstr(text, "EXTRA "));
    free(text);
    sx_verify_result_free(r);
}

/* Term partition 0 serves its first entry at a wrong version. */
static void mutate_term(fake *f, bool term, uint32_t part, int32_t w, uint64_t index,
                        sx_replay_entries *l)
{
    (void)f;
    (void)index;
    assert_true(term == (w < 0));
    if (term && part == 0 && l->n)
        l->v[0].version++;
}

static void test_run_global(void **state)
{
    (void)state;
    fake f;
    fake_init(&f);
    f.mutate = mutate_term;
    sx_verify_summary s;
    sx_verify_result *r = run_fake(&f, 0, &s);
    char *text = report(r);
    assert_int_equal(s.diffs, 1);
    assert_int_equal(s.wrong, 1);
    expect_line(text, "WRONG-VERSION global idx=color t=0 value=");
    expect_line(text, " (from p=");
    free(text);
    sx_verify_result_free(r);

    /* p=0 has not shipped to t=1 yet. */
    fake_init(&f);
    f.wm[1][0] = 0;
    r = run_fake(&f, 0, &s);
    text = report(r);
    assert_int_equal(s.diffs, 1);
    assert_int_equal(s.other, 1);
    assert_int_equal(sx_verify_result_exit_code(r), SX_EXIT_DIFFERENT);
    expect_line(text, "NOT-SHIPPED   global idx=color t=1 p=0 has shipped nothing");
    free(text);
    sx_verify_result_free(r);

    /* t=1's owner is down: that check fails, the others pass. */
    fake_init(&f);
    f.owner_down = "w1:1";
    r = run_fake(&f, 0, &s);
    text = report(r);
    assert_int_equal(s.failed, 1);
    assert_int_equal(s.ok, FCHECKS - 1);
    assert_int_equal(sx_verify_result_exit_code(r), SX_EXIT_UNAVAILABLE);
    expect_line(text, "global idx=color t=1 FAILED: Digest from w1:1: UNAVAILABLE: w1:1 is down");
    free(text);
    sx_verify_result_free(r);

    /* The map and the log disagree on the index's spec. */
    fake_init(&f);
    f.map_name7 = "colour";
    r = run_fake(&f, 0, &s);
    assert_int_equal(s.diffs, 2); /* once per log partition */
    assert_int_equal(s.other, 2);
    assert_int_equal(sx_verify_result_exit_code(r), SX_EXIT_DIFFERENT);
    text = report(r);
    expect_line(text,
                "SPEC-MISMATCH global idx=colour t=1 p=0 started it as name=color field=color");
    free(text);
    sx_verify_result_free(r);
}

static void test_run_docs(void **state)
{
    (void)state;
    /* The leader's scan holds writes after its applied offset (8 and 9):
     * the scan and its offset come from one snapshot, so they differ. */
    fake f;
    fake_init(&f);
    f.applied[0][0] = 7;
    f.scan_at[0][0] = 9;
    sx_verify_summary s;
    sx_verify_result *r = run_fake(&f, 0, &s);
    char *text = report(r);
    assert_int_equal(s.diffs, 2);
    assert_int_equal(s.extra, 2);
    assert_int_equal(s.ok, FCHECKS - 1);
    expect_line(text, "docs   p=0 replica=w0@w0:1 at=7 docs=4 expected=2 DIFFERENT (2)\n"
                      "EXTRA         docs p=0 replica=w0@w0:1 id=\"b\" version=8\n"
                      "EXTRA         docs p=0 replica=w0@w0:1 id=\"e\" version=9\n"
                      "docs   p=0 replica=w1@w1:1 at=9 docs=4 ok\n");
    free(text);
    sx_verify_result_free(r);

    /* A scan behind its own applied offset: a@5 b@2 c@4 served as of 9. */
    fake_init(&f);
    f.scan_at[0][0] = 5;
    r = run_fake(&f, 0, &s);
    text = report(r);
    assert_int_equal(s.diffs, 2);
    assert_int_equal(s.missing, 1);
    assert_int_equal(s.wrong, 1);
    expect_line(text, "WRONG-VERSION docs p=0 replica=w0@w0:1 id=\"b\" served=2 expected=8\n");
    expect_line(text, "MISSING       docs p=0 replica=w0@w0:1 id=\"e\" version=9\n");
    free(text);
    sx_verify_result_free(r);
}

/* The local index color at p=0 on the follower w1 lacks its first entry. */
static void mutate_follower(fake *f, bool term, uint32_t part, int32_t w, uint64_t index,
                            sx_replay_entries *l)
{
    (void)f;
    if (term || part != 0 || w != 1 || index != 7 || l->n == 0)
        return;
    memmove(&l->v[0], &l->v[1], (l->n - 1) * sizeof(l->v[0]));
    l->n--;
}

static void test_run_followers(void **state)
{
    (void)state;
    /* A follower's local index differs; its leader's does not. */
    fake f;
    fake_init(&f);
    f.mutate = mutate_follower;
    sx_verify_summary s;
    sx_verify_result *r = run_fake(&f, 0, &s);
    char *text = report(r);
    assert_int_equal(s.diffs, 1);
    assert_int_equal(s.missing, 1);
    assert_int_equal(s.different, 1);
    assert_int_equal(s.ok, FCHECKS - 1);
    assert_int_equal(sx_verify_result_exit_code(r), SX_EXIT_DIFFERENT);
    expect_line(text,
                "local  idx=color p=0 replica=w0@w0:1 at=9 entries=4 ok\n"
                "local  idx=color p=0 replica=w1@w1:1 at=9 entries=3 expected=4 DIFFERENT (1)\n"
                "MISSING       local idx=color p=0 replica=w1@w1:1 value=\"blue\" id=\"a\" "
                "version=5\n");
    char *js = sx_verify_result_json(r);
    json_error_t jerr;
    json_t *root = json_loads(js, 0, &jerr);
    assert_non_null(root);
    json_t *d0 = json_array_get(json_object_get(root, "differences"), 0);
    assert_string_equal(json_string_value(json_object_get(d0, "kind")), "missing");
    assert_string_equal(json_string_value(json_object_get(d0, "worker")), "w1");
    assert_string_equal(json_string_value(json_object_get(d0, "address")), "w1:1");
    assert_string_equal(json_string_value(json_object_get(d0, "role")), "follower");
    assert_int_equal(json_integer_value(json_object_get(d0, "partition")), 0);
    assert_int_equal(json_integer_value(json_object_get(d0, "index_id")), 7);
    json_decref(root);
    free(js);
    free(text);
    sx_verify_result_free(r);

    /* A follower behind its leader is compared at its own position. */
    fake_init(&f);
    f.applied[0][1] = 4;
    r = run_fake(&f, 2, &s);
    text = report(r);
    assert_int_equal(s.ok, FCHECKS);
    expect_line(text, "docs   p=0 replica=w1@w1:1 at=4 docs=3 ok\n");
    expect_line(text, "local  idx=color p=0 replica=w1@w1:1 at=4 entries=4 ok\n");
    expect_line(text, "local  idx=n p=0 replica=w1@w1:1 at=4 entries=0 inactive ok\n");
    free(text);
    sx_verify_result_free(r);

    /* A follower's documents differ from the log at its position. */
    fake_init(&f);
    f.applied[1][0] = 5;
    f.scan_at[1][0] = 3;
    r = run_fake(&f, 0, &s);
    text = report(r);
    assert_int_equal(s.diffs, 1);
    expect_line(text, "docs   p=1 replica=w0@w0:1 at=5 docs=2 expected=2 DIFFERENT (1)\n"
                      "WRONG-VERSION docs p=1 replica=w0@w0:1 id=\"x\" served=1 expected=5\n");
    free(text);
    sx_verify_result_free(r);

    /* A follower that has applied past the end of the leader's log. */
    fake_init(&f);
    f.applied[0][1] = 11;
    r = run_fake(&f, 0, &s);
    text = report(r);
    assert_int_equal(s.diffs, FREPLICA);
    assert_int_equal(s.other, FREPLICA);
    assert_int_equal(s.different, FREPLICA);
    assert_int_equal(s.ok, FCHECKS - FREPLICA);
    assert_int_equal(sx_verify_result_exit_code(r), SX_EXIT_DIFFERENT);
    expect_line(text, "SHORT-LOG     local idx=color p=0 replica=w1@w1:1 the leader's log of p=0 "
                      "ends at 9 (read from w0:1), below position 11 that this view names\n");
    expect_line(text, "docs   p=0 replica=w1@w1:1 at=11 docs=4 DIFFERENT (1)\n");
    free(text);
    sx_verify_result_free(r);

    /* A follower that cannot be reached: its checks fail, the rest pass. */
    fake_init(&f);
    f.replica_down = 1;
    r = run_fake(&f, 0, &s);
    text = report(r);
    assert_int_equal(s.failed, FREPLICA);
    assert_int_equal(s.ok, FCHECKS - FREPLICA);
    assert_int_equal(sx_verify_result_exit_code(r), SX_EXIT_UNAVAILABLE);
    expect_line(
        text, "docs   p=0 replica=w1@w1:1 FAILED: ScanDocs from w1:1: UNAVAILABLE: w1:1 is down\n");
    expect_line(text, "local  idx=n p=0 replica=w1@w1:1 FAILED: Digest from w1:1: UNAVAILABLE: "
                      "w1:1 is down\n");
    free(text);
    sx_verify_result_free(r);

    /* ... unless a difference was found elsewhere. */
    f.mutate = mutate_local;
    r = run_fake(&f, 0, &s);
    assert_int_equal(s.failed, FREPLICA);
    assert_int_equal(s.diffs, 3);
    assert_int_equal(sx_verify_result_exit_code(r), SX_EXIT_DIFFERENT);
    sx_verify_result_free(r);
}

static void test_run_moving_digests(void **state)
{
    (void)state;
    /* The first answer's digest is wrong; asked again, its entries are right. */
    fake f;
    fake_init(&f);
    f.first_digest_off = true;
    sx_verify_summary s;
    sx_verify_result *r = run_fake(&f, 0, &s);
    char *text = report(r);
    assert_int_equal(s.diffs, 1);
    assert_int_equal(s.other, 1);
    expect_line(text,
                "DIGEST        local idx=color p=1 replica=w1@w1:1 the first answer had count 3");
    free(text);
    sx_verify_result_free(r);

    /* The leader's view moves from 6 to 9 between the two answers: the
     * entries are compared with the log at 9. */
    fake_init(&f);
    f.applied[0][0] = 6;
    f.applied2[0][0] = 9;
    f.mutate = mutate_local;
    r = run_fake(&f, 0, &s);
    text = report(r);
    assert_int_equal(s.diffs, 3);
    expect_line(text, "local  idx=color p=0 replica=w0@w0:1 at=9 entries=4 DIFFERENT (3)\n"
                      "MISSING       local idx=color p=0 replica=w0@w0:1 value=\"blue\" id=\"a\" "
                      "version=5\n");
    free(text);
    sx_verify_result_free(r);
}

/* ---- trimmed logs ---- */

/* A retained log of flog0 from offset `start` on. */
static sx_rlog *rlog_of(const top *log, size_t n, uint64_t start)
{
    sx_rlog *l = sx_rlog_create(0, start);
    sx_buf b = {0};
    sx_err err = {0};
    for (uint64_t o = start; o <= n; o++) {
        b.len = 0;
        pack_top(&log[o - 1], &b);
        assert_int_equal(sx_rlog_append(l, o, b.data, b.len, &err), SX_OK);
    }
    sx_buf_free(&b);
    return l;
}

/* The served documents of log[0..pos) as a scan answers them (caller frees
 * each with free(), the docbufs in db). */
static size_t scan_of(const top *log, size_t n, uint64_t pos, docbuf *db,
                      Shardex__Internal__V1__StoredDoc **out)
{
    ostate st;
    oracle_at(log, n, pos, &st);
    for (size_t i = 0; i < st.ndocs; i++)
        out[i] = stored(st.docs[i].put, st.docs[i].version, &db[i]);
    return st.ndocs;
}

typedef struct seen_docs {
    char ids[16][8];
    uint64_t versions[16];
    size_t n;
    char unknown[16][8];
    size_t nu;
} seen_docs;

static void seen_doc_cb(void *arg, const char *id, size_t n, uint64_t version,
                        const Shardex__V1__Document *doc)
{
    seen_docs *x = arg;
    assert_non_null(doc);
    assert_true(x->n < 16 && n < 8);
    memcpy(x->ids[x->n], id, n);
    x->ids[x->n][n] = '\0';
    x->versions[x->n++] = version;
}

static void seen_unknown_cb(void *arg, const char *id, size_t n)
{
    seen_docs *x = arg;
    assert_true(x->nu < 16 && n < 8);
    memcpy(x->unknown[x->nu], id, n);
    x->unknown[x->nu++][n] = '\0';
}

/* The version seen of id; 0: not seen. */
static uint64_t seen_version(const seen_docs *x, const char *id)
{
    for (size_t i = 0; i < x->n; i++)
        if (strcmp(x->ids[i], id) == 0)
            return x->versions[i];
    return 0;
}

/* flog0 trimmed before 5: what it determines, written out by hand. */
static void test_rlog(void **state)
{
    (void)state;
    size_t n = sizeof(flog0) / sizeof(flog0[0]);
    sx_rlog *l = rlog_of(flog0, n, 5);
    assert_int_equal(sx_rlog_start(l), 5);
    assert_int_equal(sx_rlog_end(l), 9);
    sx_err err = {0};
    assert_int_equal(sx_rlog_append(l, 11, (const uint8_t *)"", 0, &err), SX_INVALID_ARGUMENT);

    uint64_t v = 0;
    assert_int_equal(sx_rlog_doc(l, "a", 1, 9, &v, NULL), SX_RLOG_PUT);
    assert_int_equal(v, 5);
    assert_int_equal(sx_rlog_doc(l, "a", 1, 4, NULL, NULL), SX_RLOG_UNTOUCHED);
    assert_int_equal(sx_rlog_doc(l, "b", 1, 7, NULL, NULL), SX_RLOG_DELETED);
    assert_int_equal(sx_rlog_doc(l, "b", 1, 8, &v, NULL), SX_RLOG_PUT);
    assert_int_equal(v, 8);
    assert_int_equal(sx_rlog_doc(l, "c", 1, 9, NULL, NULL), SX_RLOG_UNTOUCHED);
    assert_true(sx_rlog_changed(l, "e", 1, 9, 7));
    assert_false(sx_rlog_changed(l, "e", 1, 4, 8));
    assert_false(sx_rlog_changed(l, "b", 1, 8, 9));
    /* index 7 started at 3, before the start: the log does not say; 8 at 7 */
    assert_int_equal(sx_rlog_index(l, 7, 9, NULL, NULL), -1);
    assert_int_equal(sx_rlog_index(l, 8, 6, NULL, NULL), -1);
    sx_ixkey_def def;
    assert_int_equal(sx_rlog_index(l, 8, 7, &def, NULL), 1);
    assert_int_equal(def.id, 8);
    assert_true(def.is_int);

    /* The leader's documents at 9 carried back to 7 and 4: e changed after
     * 7 and was not there before 5 that the log shows: not determined; c is
     * carried through; b is deleted at 7. */
    docbuf db[OMAX];
    Shardex__Internal__V1__StoredDoc *docs[OMAX];
    size_t nd = scan_of(flog0, n, 9, db, docs);
    seen_docs x = {0};
    assert_int_equal(sx_rlog_docs_at(l, docs, nd, 9, 7, seen_doc_cb, &x, seen_unknown_cb, &x), 1);
    assert_int_equal(x.n, 2);
    assert_int_equal(seen_version(&x, "a"), 5);
    assert_int_equal(seen_version(&x, "c"), 4);
    assert_string_equal(x.unknown[0], "e");
    memset(&x, 0, sizeof(x));
    /* at 4 (the position before the start) everything the log touched is unknown */
    assert_int_equal(sx_rlog_docs_at(l, docs, nd, 9, 4, seen_doc_cb, &x, seen_unknown_cb, &x), 3);
    assert_int_equal(x.n, 1);
    assert_int_equal(seen_version(&x, "c"), 4);
    /* forward from the documents at 4 (a b c): the log decides a, b, e */
    docbuf db4[OMAX];
    Shardex__Internal__V1__StoredDoc *docs4[OMAX];
    size_t nd4 = scan_of(flog0, n, 4, db4, docs4);
    memset(&x, 0, sizeof(x));
    assert_int_equal(sx_rlog_docs_at(l, docs4, nd4, 4, 9, seen_doc_cb, &x, seen_unknown_cb, &x), 0);
    assert_int_equal(x.n, 4);
    assert_int_equal(seen_version(&x, "b"), 8);
    assert_int_equal(seen_version(&x, "e"), 9);

    /* The documents against the log: clean, c carried. */
    uint64_t carried = 0;
    assert_int_equal(sx_rlog_docs_diff(l, docs, nd, 9, NULL, NULL, &carried), 0);
    assert_int_equal(carried, 1);
    assert_int_equal(sx_rlog_docs_cross(l, docs4, nd4, 4, docs, nd, 9, NULL, NULL), 0);

    /* Planted: a's content (touched by the log), c's version (carried, at or
     * above the start), e missing; and a replica whose carried c differs. */
    seen d = {0};
    docs[0]->doc->fields[2]->value->i = 99; /* a: n 2 -> 99 */
    size_t ci = 0, ei = 0;
    for (size_t i = 0; i < nd; i++) {
        if (strcmp(docs[i]->doc->id, "c") == 0)
            ci = i;
        if (strcmp(docs[i]->doc->id, "e") == 0)
            ei = i;
    }
    assert_string_equal(docs[0]->doc->id, "a");
    docs[ci]->version = 6;
    Shardex__Internal__V1__StoredDoc *e = docs[ei];
    docs[ei] = docs[nd - 1];
    assert_int_equal(sx_rlog_docs_diff(l, docs, nd - 1, 9, doc_diff_cb, &d, &carried), 3);
    assert_int_equal(carried, 0);
    assert_int_equal(d.d[0].kind, SX_REPLAY_WRONG_CONTENT);
    assert_string_equal(d.d[0].what, "a");
    assert_int_equal(d.d[1].kind, SX_REPLAY_WRONG_VERSION);
    assert_string_equal(d.d[1].what, "c");
    assert_int_equal(d.d[1].expected, 0);
    assert_int_equal(d.d[2].kind, SX_REPLAY_MISSING);
    assert_string_equal(d.d[2].what, "e");
    /* against the documents at 4: only c (a and e changed between) */
    memset(&d, 0, sizeof(d));
    assert_int_equal(sx_rlog_docs_cross(l, docs4, nd4, 4, docs, nd - 1, 9, doc_diff_cb, &d), 1);
    assert_int_equal(d.d[0].kind, SX_REPLAY_WRONG_VERSION);
    assert_string_equal(d.d[0].what, "c");
    assert_int_equal(d.d[0].expected, 4);
    docs[ei] = e;
    for (size_t i = 0; i < nd; i++)
        free(docs[i]);
    for (size_t i = 0; i < nd4; i++)
        free(docs4[i]);
    sx_rlog_destroy(l);
}

static void trim_fake(fake *f)
{
    fake_init(f);
    f->start[0] = 5; /* p=0 keeps 5..9, p=1 keeps 4..8 */
    f->start[1] = 4;
}

/* Term entries of "a" (p=0, last put at 5, inside the retained log) served
 * at a wrong version. */
static void mutate_term_a(fake *f, bool term, uint32_t part, int32_t w, uint64_t index,
                          sx_replay_entries *l)
{
    (void)f;
    (void)part;
    (void)w;
    (void)index;
    for (size_t i = 0; term && i < l->n; i++) {
        Shardex__V1__Value v;
        sx_buf sb = {0}, id = {0};
        assert_true(sx_ixkey_split_key(false, l->v[i].key, l->v[i].len, &v, &sb, &id));
        if (id.len == 1 && id.data[0] == 'a')
            l->v[i].version++;
        sx_buf_free(&sb);
        sx_buf_free(&id);
    }
}

static void test_run_trimmed(void **state)
{
    (void)state;
    /* Clean: every view agrees with the retained log; what it cannot say
     * is counted. t=1 is at p=0's 7 and p=1's 5 (e, z changed after, first
     * seen in the retained log: not determined); t=2 at p=1's 3 (x and z,
     * both changed after 3). c (p=0) and
     * y (p=1) are carried from before the start on each replica. */
    static const uint32_t pages[] = {0, 1, 3};
    for (size_t i = 0; i < 3; i++) {
        fake f;
        trim_fake(&f);
        sx_verify_summary s;
        sx_verify_result *r = run_fake(&f, pages[i], &s);
        char *text = report(r);
        if (s.ok != FCHECKS)
            fail_msg("%s", text);
        assert_int_equal(s.diffs, 0);
        assert_int_equal(s.trimmed, 2);
        assert_int_equal(s.carried, 4);
        assert_int_equal(s.undetermined, 4);
        assert_int_equal(s.unrecomputed, 0);
        assert_int_equal(sx_verify_result_exit_code(r), SX_EXIT_OK);
        expect_line(text, "log    p=0 trimmed: starts at 5, read to 9 from w0:1\n"
                          "log    p=1 trimmed: starts at 4, read to 8 from w1:1\n");
        expect_line(text, "docs   p=0 replica=w0@w0:1 at=9 docs=4 carried=1 ok\n");
        expect_line(text, "global idx=color t=2 wm=3..9 ");
        expect_line(text, " undetermined=2 ");
        expect_line(text, "; 2 trimmed logs: 4 documents from before the log start");
        char *json = sx_verify_result_json(r);
        assert_non_null(strstr(json, "\"trimmed_logs\": ["));
        assert_non_null(strstr(json, "\"undetermined\": 4"));
        free(json);
        free(text);
        sx_verify_result_free(r);
    }

    /* A term entry of a document the retained log determines, wrong. */
    fake f;
    trim_fake(&f);
    f.mutate = mutate_term_a;
    sx_verify_summary s;
    sx_verify_result *r = run_fake(&f, 0, &s);
    char *text = report(r);
    assert_int_equal(s.diffs, 1);
    assert_int_equal(s.wrong, 1);
    expect_line(text, "WRONG-VERSION global idx=color t=");
    expect_line(text, " id=\"a\" served=6 expected=5 (from p=0)\n");
    free(text);
    sx_verify_result_free(r);

    /* The follower's copy of c, written before the start, differs in a
     * field no index reads: only the leader's copy can tell. */
    trim_fake(&f);
    f.bad_id = "c";
    f.bad_p = 0;
    f.bad_w = 1;
    f.bad_content = true;
    r = run_fake(&f, 0, &s);
    text = report(r);
    assert_int_equal(s.diffs, 1);
    expect_line(text, "docs   p=0 replica=w1@w1:1 at=9 docs=4 carried=1 DIFFERENT (1)\n"
                      "DIVERGED      docs p=0 replica=w1@w1:1 id=\"c\" WRONG-CONTENT served=4 "
                      "leader's=4\n");
    free(text);
    sx_verify_result_free(r);

    /* ... at a version the retained log does not give it; its local index
     * entry (recomputed from its documents) carries the wrong version too. */
    trim_fake(&f);
    f.bad_id = "c";
    f.bad_p = 0;
    f.bad_w = 1;
    f.bad_version = 6;
    r = run_fake(&f, 0, &s);
    text = report(r);
    assert_int_equal(s.diffs, 3);
    expect_line(text, "WRONG-VERSION docs p=0 replica=w1@w1:1 id=\"c\" served=6 expected=0\n"
                      "DIVERGED      docs p=0 replica=w1@w1:1 id=\"c\" WRONG-VERSION served=6 "
                      "leader's=4\n");
    expect_line(text, "WRONG-VERSION local idx=color p=0 replica=w1@w1:1 value=\"green\" id=\"c\" "
                      "served=4 expected=6\n");
    free(text);
    sx_verify_result_free(r);

    /* The leader's a, written inside the retained log, differs from it. */
    trim_fake(&f);
    f.bad_id = "a";
    f.bad_p = 0;
    f.bad_w = 0;
    f.bad_content = true;
    r = run_fake(&f, 0, &s);
    text = report(r);
    /* the follower is compared with the leader's copy, the indexes with the
     * log's (a is the log's to say) */
    expect_line(text, "WRONG-CONTENT docs p=0 replica=w0@w0:1 id=\"a\" version=5\n");
    expect_line(text, "DIVERGED      docs p=0 replica=w1@w1:1 id=\"a\" WRONG-CONTENT served=5 "
                      "leader's=5\n");
    assert_int_equal(s.wrong, 1);
    assert_int_equal(s.diffs, 2);
    free(text);
    sx_verify_result_free(r);

    /* A position below the log start: p=1's follower (w0) at 2. Nothing to
     * compare with: said so, not a difference. (A term partition's view
     * below the start is left out by the id's partition, sx_partition_of,
     * which this fake's ids do not follow: the integration test has it.) */
    trim_fake(&f);
    f.applied[1][0] = 2;
    r = run_fake(&f, 0, &s);
    text = report(r);
    if (s.diffs)
        fail_msg("%s", text);
    assert_int_equal(s.unrecomputed, 2); /* w0's two local indexes of p=1 */
    expect_line(text, "docs   p=1 replica=w0@w0:1 at=2 docs=1 carried=1 below-log-start ok\n");
    expect_line(text, "local  idx=color p=1 replica=w0@w0:1 at=2 entries=1 excluded=1 "
                      "unrecomputed-partitions=1 ok\n");
    free(text);
    sx_verify_result_free(r);

    /* Untrimmed partitions keep the full replay: only p=1 trimmed. */
    fake_init(&f);
    f.start[1] = 4;
    r = run_fake(&f, 0, &s);
    assert_int_equal(s.trimmed, 1);
    assert_int_equal(s.diffs, 0);
    assert_int_equal(s.undetermined, 3); /* z at t=1, x and z at t=2 */
    sx_verify_result_free(r);
}

static void test_run_unavailable_and_bad_logs(void **state)
{
    (void)state;
    /* p=1 has no leader: the checks of both its replicas fail, and every
     * term partition (which needs p=1's log). */
    fake f;
    fake_init(&f);
    f.leader[1] = -1;
    sx_verify_summary s;
    sx_verify_result *r = run_fake(&f, 0, &s);
    char *text = report(r);
    assert_int_equal(s.failed, FW * FREPLICA + FM);
    assert_int_equal(s.ok, FW * FREPLICA);
    assert_int_equal(sx_verify_result_exit_code(r), SX_EXIT_UNAVAILABLE);
    expect_line(text, "docs   p=1 replica=w0@w0:1 FAILED: partition 1 has no leader to read its "
                      "log from\n");
    expect_line(text, "global idx=color t=0 wm=8..9 entries=2 FAILED: partition 1 has no leader to "
                      "read its log from\n");
    free(text);
    sx_verify_result_free(r);

    /* ... nor any replica. */
    fake_init(&f);
    f.leader[1] = -1;
    f.nreplicas[1] = 0;
    r = run_fake(&f, 0, &s);
    text = report(r);
    assert_int_equal(s.checks, FCHECKS - FREPLICA);
    assert_int_equal(s.failed, FREPLICA + FM);
    expect_line(text, "docs   p=1 FAILED: partition 1 has no replica\n");
    free(text);
    sx_verify_result_free(r);

    /* w1 (leader of p=1, follower of p=0, owner of t=1) runs out the
     * deadline: asked once. Only w0's replica of p=0 can be compared. */
    fake_init(&f);
    f.slow = "w1:1";
    r = run_fake(&f, 0, &s);
    text = report(r);
    assert_int_equal(f.slow_calls, 1);
    assert_int_equal(s.ok, FREPLICA);
    assert_int_equal(s.failed, FCHECKS - FREPLICA);
    assert_int_equal(sx_verify_result_exit_code(r), SX_EXIT_UNAVAILABLE);
    expect_line(text, "docs   p=0 replica=w1@w1:1 FAILED: ScanDocs from w1:1: DEADLINE_EXCEEDED: "
                      "deadline exceeded\n");
    expect_line(text,
                "local  idx=color p=1 replica=w1@w1:1 FAILED: Digest from w1:1: "
                "DEADLINE_EXCEEDED: not asked: w1:1 did not answer an earlier call in time\n");
    free(text);
    sx_verify_result_free(r);

    /* Entry 3 of p=1 does not decode: every view past it differs. */
    fake_init(&f);
    f.log[1][2] = (top)JUNK;
    r = run_fake(&f, 0, &s);
    text = report(r);
    assert_int_equal(sx_verify_result_exit_code(r), SX_EXIT_DIFFERENT);
    assert_int_equal(s.ok, FW * FREPLICA); /* p=0's documents and local indexes */
    expect_line(
        text, "BAD-LOG       docs p=1 replica=w1@w1:1 partition 1: log entry 3 does not decode\n");
    free(text);
    sx_verify_result_free(r);

    /* The views name a position the log does not reach. */
    fake_init(&f);
    at_all(&f, 0, 12);
    r = run_fake(&f, 0, &s);
    text = report(r);
    assert_int_equal(sx_verify_result_exit_code(r), SX_EXIT_DIFFERENT);
    expect_line(text, "SHORT-LOG     docs p=0 replica=w0@w0:1 the leader's log of p=0 ends at 9 "
                      "(read from w0:1), below position 12");
    assert_int_equal(s.ok, FW * FREPLICA + FM); /* p=1's checks and the term partitions */
    free(text);
    sx_verify_result_free(r);

    /* No map at all. */
    fake_init(&f);
    f.map_down = true;
    sx_verify_opts o = {.server = "w0:1", .call = fake_call, .call_arg = &f};
    sx_err err = {0};
    r = NULL;
    assert_int_equal(sx_verify_run(&o, &r, &err), SX_UNAVAILABLE);
    assert_null(r);
    assert_non_null(strstr(err.msg, "GetMap from w0:1"));
    sx_verify_result_free(r);
}

/* ------------------------------------------------------------ online split -- */

static void apply_packed(sx_replay *r, const Shardex__Internal__V1__LogOp *op)
{
    sx_buf b = {0};
    sx_buf_reserve(&b, shardex__internal__v1__log_op__get_packed_size(op) + 1);
    b.len = shardex__internal__v1__log_op__pack(op, b.data);
    sx_err err = {0};
    assert_int_equal(sx_replay_apply(r, sx_replay_position(r) + 1, b.data, b.len, &err), SX_OK);
    sx_buf_free(&b);
}

static void put_n(sx_replay *r, const char *id, int64_t n)
{
    Shardex__V1__Value v = SHARDEX__V1__VALUE__INIT;
    v.kind_case = SHARDEX__V1__VALUE__KIND_I;
    v.i = n;
    Shardex__V1__Field fl = SHARDEX__V1__FIELD__INIT;
    fl.name = "n";
    fl.value = &v;
    Shardex__V1__Field *fp = &fl;
    Shardex__V1__Document d = SHARDEX__V1__DOCUMENT__INIT;
    d.id = (char *)id;
    d.n_fields = 1;
    d.fields = &fp;
    Shardex__Internal__V1__LogOp op = SHARDEX__INTERNAL__V1__LOG_OP__INIT;
    op.op_case = SHARDEX__INTERNAL__V1__LOG_OP__OP_PUT;
    op.put = &d;
    apply_packed(r, &op);
}

static void split_op(sx_replay *r, uint32_t seq, uint32_t t, int64_t at, uint32_t lo, bool done)
{
    Shardex__V1__Value v = SHARDEX__V1__VALUE__INIT;
    v.kind_case = SHARDEX__V1__VALUE__KIND_I;
    v.i = at;
    Shardex__Internal__V1__IndexSplit sp = SHARDEX__INTERNAL__V1__INDEX_SPLIT__INIT;
    sp.index_id = 9;
    sp.seq = seq;
    sp.term = t;
    sp.at = &v;
    sp.lo = lo;
    sp.hi = lo + 1;
    sp.done = done;
    Shardex__Internal__V1__LogOp op = SHARDEX__INTERNAL__V1__LOG_OP__INIT;
    op.op_case = SHARDEX__INTERNAL__V1__LOG_OP__OP_INDEX_SPLIT;
    op.index_split = &sp;
    apply_packed(r, &op);
}

static uint64_t count_in(const sx_replay *r, int64_t t)
{
    uint64_t digest = 0, count = 0;
    assert_true(sx_replay_digest(r, 9, t, &digest, &count));
    return count;
}

/* Split markers in the replay route as the outbox does: during a split an
 * entry of the parent's range is in the parent and in its shadow (each
 * entry once in the whole), after `done` in the shadow only; repeats and
 * markers out of order change nothing. */
static void test_replay_split(void **state)
{
    (void)state;
    sx_replay *r = sx_replay_create(0);
    put_n(r, "a", 50);
    put_n(r, "b", 150);
    Shardex__V1__Value pts[2] = {SHARDEX__V1__VALUE__INIT, SHARDEX__V1__VALUE__INIT};
    Shardex__V1__Value *pp[2] = {&pts[0], &pts[1]};
    for (int i = 0; i < 2; i++) {
        pts[i].kind_case = SHARDEX__V1__VALUE__KIND_I;
        pts[i].i = 100 * (i + 1);
    }
    Shardex__V1__IndexSpec s = SHARDEX__V1__INDEX_SPEC__INIT;
    s.name = "r";
    s.field = "n";
    s.type = SHARDEX__V1__VALUE_TYPE__VALUE_TYPE_INT;
    s.global = true;
    s.term_partitions = 3;
    s.partitioning = SHARDEX__V1__PARTITIONING__PARTITIONING_RANGE;
    s.n_split_points = 2;
    s.split_points = pp;
    Shardex__Internal__V1__IndexStart is = SHARDEX__INTERNAL__V1__INDEX_START__INIT;
    is.index_id = 9;
    is.spec = &s;
    Shardex__Internal__V1__LogOp op = SHARDEX__INTERNAL__V1__LOG_OP__INIT;
    op.op_case = SHARDEX__INTERNAL__V1__LOG_OP__OP_INDEX_START;
    op.index_start = &is;
    apply_packed(r, &op);
    assert_int_equal(count_in(r, 1), 1);
    split_op(r, 2, 1, 155, 5, false); /* out of order */
    split_op(r, 1, 1, 155, 3, false);
    split_op(r, 1, 1, 155, 3, false); /* a repeat */
    put_n(r, "e", 160);
    assert_int_equal(count_in(r, -1), 3);
    assert_int_equal(count_in(r, 0), 1);
    assert_int_equal(count_in(r, 1), 2); /* b, e: still t1's */
    assert_int_equal(count_in(r, 3), 1); /* b */
    assert_int_equal(count_in(r, 4), 1); /* e */
    split_op(r, 1, 1, 155, 3, true);
    assert_int_equal(count_in(r, -1), 3);
    assert_int_equal(count_in(r, 1), 0);
    assert_int_equal(count_in(r, 3), 1);
    assert_int_equal(count_in(r, 4), 1);
    sx_replay_destroy(r);
}

/* ---- online splits on a trimmed log ---- */

/* Index 9 "r": ints of field "n", range-partitioned at 100 and 200 (M = 3),
 * split online twice: split 1 takes t1 = [100, 200) to 3 = [100, 155) and
 * 4 = [155, 200), done; split 2 takes 3 to 5 = [100, 120) and 6 =
 * [120, 155), in progress (t3 still serves). One log partition, one worker. */
#define SQ_TERMS 7

typedef struct sop {
    char kind; /* 'p' put, 'd' delete, 's' index_start, 'x' split */
    const char *id;
    int64_t n;              /* put: the value; split: at */
    uint32_t seq, term, lo; /* split */
    bool done;              /* split */
} sop;

static const sop sqlog[] = {
    {'p', "d0", 50, 0, 0, 0, false},  /* 1 */
    {'p', "d1", 150, 0, 0, 0, false}, /* 2 */
    {'s', NULL, 0, 0, 0, 0, false},   /* 3 */
    {'p', "d2", 160, 0, 0, 0, false}, /* 4 */
    {'x', NULL, 155, 1, 1, 3, false}, /* 5 */
    {'p', "d3", 115, 0, 0, 0, false}, /* 6 */
    {'p', "d1", 170, 0, 0, 0, false}, /* 7 */
    {'x', NULL, 155, 1, 1, 3, true},  /* 8 */
    {'x', NULL, 120, 2, 3, 5, false}, /* 9 */
    {'p', "d4", 110, 0, 0, 0, false}, /* 10 */
    {'p', "d5", 250, 0, 0, 0, false}, /* 11 */
    {'d', "d2", 0, 0, 0, 0, false},   /* 12 */
    {'p', "d6", 140, 0, 0, 0, false}, /* 13 */
    {'p', "d0", 125, 0, 0, 0, false}, /* 14 */
    {'x', NULL, 120, 2, 3, 5, false}, /* 15: a repeat (a write that timed out) */
};
#define SQ_N (sizeof(sqlog) / sizeof(sqlog[0]))
static const char *const sq_ids[] = {"d0", "d1", "d2", "d3", "d4", "d5", "d6"};

typedef struct sq_fake {
    uint64_t start;        /* the log starts here */
    uint64_t wm[SQ_TERMS]; /* watermark of each term partition (retired t1: unused) */
    uint64_t end;          /* the log's end and the replica's applied offset */
    int32_t bad_term;      /* this term partition serves d1's entry with a wrong version */
} sq_fake;

typedef struct sq_vals {
    Shardex__V1__Value v[3];
    Shardex__V1__Value *pv[2];
    Shardex__V1__IndexSpec spec;
} sq_vals;

static void sq_spec(sq_vals *b)
{
    for (int i = 0; i < 3; i++) {
        shardex__v1__value__init(&b->v[i]);
        b->v[i].kind_case = SHARDEX__V1__VALUE__KIND_I;
    }
    b->v[0].i = 100;
    b->v[1].i = 200;
    b->pv[0] = &b->v[0];
    b->pv[1] = &b->v[1];
    shardex__v1__index_spec__init(&b->spec);
    b->spec.name = "r";
    b->spec.field = "n";
    b->spec.type = SHARDEX__V1__VALUE_TYPE__VALUE_TYPE_INT;
    b->spec.global = true;
    b->spec.term_partitions = 3;
    b->spec.partitioning = SHARDEX__V1__PARTITIONING__PARTITIONING_RANGE;
    b->spec.n_split_points = 2;
    b->spec.split_points = b->pv;
}

static void sq_split(const sop *o, Shardex__Internal__V1__IndexSplit *sp, Shardex__V1__Value *at)
{
    shardex__v1__value__init(at);
    at->kind_case = SHARDEX__V1__VALUE__KIND_I;
    at->i = o->n;
    shardex__internal__v1__index_split__init(sp);
    sp->index_id = 9;
    sp->seq = o->seq;
    sp->term = o->term;
    sp->at = at;
    sp->lo = o->lo;
    sp->hi = o->lo + 1;
    sp->done = o->done;
}

/* Log entry o (1-based) packed. */
static void sq_pack(uint64_t o, sx_buf *b)
{
    const sop *x = &sqlog[o - 1];
    Shardex__Internal__V1__LogOp op = SHARDEX__INTERNAL__V1__LOG_OP__INIT;
    Shardex__V1__Value v = SHARDEX__V1__VALUE__INIT, at;
    Shardex__V1__Field fl = SHARDEX__V1__FIELD__INIT, *fp = &fl;
    Shardex__V1__Document d = SHARDEX__V1__DOCUMENT__INIT;
    Shardex__Internal__V1__IndexStart is = SHARDEX__INTERNAL__V1__INDEX_START__INIT;
    Shardex__Internal__V1__IndexSplit sp;
    sq_vals sv;
    if (x->kind == 'p') {
        v.kind_case = SHARDEX__V1__VALUE__KIND_I;
        v.i = x->n;
        fl.name = "n";
        fl.value = &v;
        d.id = (char *)x->id;
        d.n_fields = 1;
        d.fields = &fp;
        op.op_case = SHARDEX__INTERNAL__V1__LOG_OP__OP_PUT;
        op.put = &d;
    } else if (x->kind == 'd') {
        op.op_case = SHARDEX__INTERNAL__V1__LOG_OP__OP_DELETE;
        op.delete_ = (char *)x->id;
    } else if (x->kind == 's') {
        sq_spec(&sv);
        is.index_id = 9;
        is.spec = &sv.spec;
        op.op_case = SHARDEX__INTERNAL__V1__LOG_OP__OP_INDEX_START;
        op.index_start = &is;
    } else {
        sq_split(x, &sp, &at);
        op.op_case = SHARDEX__INTERNAL__V1__LOG_OP__OP_INDEX_SPLIT;
        op.index_split = &sp;
    }
    sx_buf_reset(b);
    sx_buf_reserve(b, shardex__internal__v1__log_op__get_packed_size(&op) + 1);
    b->len = shardex__internal__v1__log_op__pack(&op, b->data);
}

/* The whole log replayed to `at` (the truth the fake serves). */
static sx_replay *sq_replay(uint64_t at)
{
    sx_replay *r = sx_replay_create(0);
    sx_buf b = {0};
    sx_err err = {0};
    for (uint64_t o = 1; o <= at; o++) {
        sq_pack(o, &b);
        assert_int_equal(sx_replay_apply(r, o, b.data, b.len, &err), SX_OK);
    }
    sx_buf_free(&b);
    return r;
}

typedef struct sq_collect {
    uint32_t t;
    sx_replay_entries *l;
} sq_collect;

static void sq_collect_cb(void *arg, const uint8_t *key, size_t len, uint32_t term,
                          uint64_t version)
{
    sq_collect *c = arg;
    if ((term & ~SX_REPLAY_ALSO) == c->t)
        sx_replay_entries_add(c->l, key, len, version, -1);
}

static ProtobufCMessage *sq_map(void)
{
    Shardex__Internal__V1__ClusterSettings set = SHARDEX__INTERNAL__V1__CLUSTER_SETTINGS__INIT;
    set.partitions = 1;
    set.term_partitions = 3;
    Shardex__Internal__V1__WorkerEntry w = SHARDEX__INTERNAL__V1__WORKER_ENTRY__INIT, *wp = &w;
    w.id = "w-0";
    w.address = "w0:1";
    w.alive = true;
    int32_t rep = 0;
    Shardex__Internal__V1__LogPartition lp = SHARDEX__INTERNAL__V1__LOG_PARTITION__INIT, *lpp = &lp;
    lp.leader = 0;
    lp.epoch = 3;
    lp.n_replicas = 1;
    lp.replicas = &rep;
    Shardex__Internal__V1__TermPartition tp[SQ_TERMS], *tpp[SQ_TERMS];
    for (int t = 0; t < SQ_TERMS; t++) {
        shardex__internal__v1__term_partition__init(&tp[t]);
        tp[t].owner = t == 1 ? -1 : 0;
        tp[t].epoch = 10 + (uint64_t)t;
        tp[t].retired = t == 1;
        tpp[t] = &tp[t];
    }
    sq_vals sv;
    sq_spec(&sv);
    /* The map's records are the markers' (the leaders copy them). */
    Shardex__Internal__V1__IndexSplit sp[2], *spp[2] = {&sp[0], &sp[1]};
    Shardex__V1__Value at[2];
    sq_split(&sqlog[7], &sp[0], &at[0]); /* split 1, done */
    sq_split(&sqlog[8], &sp[1], &at[1]); /* split 2, in progress */
    Shardex__Internal__V1__IndexEntry ix = SHARDEX__INTERNAL__V1__INDEX_ENTRY__INIT, *ixp = &ix;
    ix.spec = &sv.spec;
    ix.id = 9;
    ix.state = SHARDEX__V1__INDEX_STATE__INDEX_STATE_READY;
    ix.n_splits = 2;
    ix.splits = spp;
    Shardex__Internal__V1__ClusterMap m = SHARDEX__INTERNAL__V1__CLUSTER_MAP__INIT;
    m.version = 50;
    m.settings = &set;
    m.n_workers = 1;
    m.workers = &wp;
    m.n_partitions = 1;
    m.partitions = &lpp;
    m.n_terms = SQ_TERMS;
    m.terms = tpp;
    m.n_indexes = 1;
    m.indexes = &ixp;
    return reunpack(&m.base);
}

static sx_status sq_digest(const sq_fake *f, const Shardex__Internal__V1__DigestRequest *req,
                           ProtobufCMessage **resp)
{
    assert_true(req->term); /* index 9 is global only */
    assert_int_equal(req->index_id, 9);
    uint32_t t = req->partition;
    assert_true(t < SQ_TERMS && t != 1); /* a retired term partition is not asked */
    assert_int_equal(req->epoch, 10 + t);
    sx_replay *r = sq_replay(f->wm[t]);
    sx_replay_entries l = {0};
    sq_collect c = {t, &l};
    assert_true(sx_replay_each_entry(r, 9, sq_collect_cb, &c, NULL, NULL));
    sx_replay_entries_sort(&l);
    for (size_t i = 0; (int32_t)t == f->bad_term && i < l.n; i++) {
        Shardex__V1__Value v;
        sx_buf sb = {0}, id = {0};
        assert_true(sx_ixkey_split_key(true, l.v[i].key, l.v[i].len, &v, &sb, &id));
        if (id.len == 2 && memcmp(id.data, "d1", 2) == 0)
            l.v[i].version += 1000; /* planted: a version d1 never had */
        sx_buf_free(&sb);
        sx_buf_free(&id);
    }
    *resp = digest_answer(&l, true, req->entries, 0, &f->wm[t], 1);
    sx_replay_entries_free(&l);
    sx_replay_destroy(r);
    return SX_OK;
}

static sx_status sq_read_log(const sq_fake *f, const Shardex__Internal__V1__ReadLogRequest *req,
                             ProtobufCMessage **resp, sx_err *err)
{
    uint64_t from = req->from_offset ? req->from_offset : f->start;
    if (from < f->start)
        return sx_err_set(err, SX_OUT_OF_RANGE, "offset %" PRIu64 " is below the log start", from);
    Shardex__Internal__V1__ReadLogResponse r = SHARDEX__INTERNAL__V1__READ_LOG_RESPONSE__INIT;
    r.log_start_offset = f->start;
    r.log_end_offset = f->end;
    Shardex__Internal__V1__AppendEntry e[SQ_N], *ep[SQ_N];
    sx_buf b[SQ_N] = {{0}};
    for (uint64_t o = from; o <= f->end && r.n_entries < req->max_entries; o++) {
        size_t i = r.n_entries++;
        shardex__internal__v1__append_entry__init(&e[i]);
        sq_pack(o, &b[i]);
        e[i].epoch = 1;
        e[i].op.data = b[i].data;
        e[i].op.len = b[i].len;
        ep[i] = &e[i];
    }
    r.entries = ep;
    *resp = reunpack(&r.base);
    for (size_t i = 0; i < SQ_N; i++)
        sx_buf_free(&b[i]);
    return SX_OK;
}

static sx_status sq_scan(const sq_fake *f, ProtobufCMessage **resp)
{
    sx_replay *r = sq_replay(f->end);
    Shardex__Internal__V1__ScanDocsResponse sr = SHARDEX__INTERNAL__V1__SCAN_DOCS_RESPONSE__INIT;
    Shardex__Internal__V1__StoredDoc sd[7], *sdp[7];
    for (size_t i = 0; i < 7; i++) {
        const Shardex__V1__Document *d;
        uint64_t v;
        if (!sx_replay_doc(r, sq_ids[i], 2, &v, &d))
            continue;
        shardex__internal__v1__stored_doc__init(&sd[sr.n_docs]);
        sd[sr.n_docs].doc = (Shardex__V1__Document *)d;
        sd[sr.n_docs].version = v;
        sdp[sr.n_docs] = &sd[sr.n_docs];
        sr.n_docs++;
    }
    sr.docs = sdp;
    sr.applied_offset = f->end;
    *resp = reunpack(&sr.base);
    sx_replay_destroy(r);
    return SX_OK;
}

static sx_status sq_call(void *arg, const char *addr, const ProtobufCServiceDescriptor *svc,
                         const char *method, const ProtobufCMessage *req, ProtobufCMessage **resp,
                         sx_err *err)
{
    const sq_fake *f = arg;
    (void)svc;
    *resp = NULL;
    assert_string_equal(addr, "w0:1");
    if (strcmp(method, "GetMap") == 0)
        *resp = sq_map();
    else if (strcmp(method, "Digest") == 0)
        return sq_digest(f, (const void *)req, resp);
    else if (strcmp(method, "ReadLog") == 0)
        return sq_read_log(f, (const void *)req, resp, err);
    else if (strcmp(method, "ScanDocs") == 0)
        return sq_scan(f, resp);
    else
        fail_msg("unexpected method %s", method);
    return SX_OK;
}

static sx_verify_result *sq_run(sq_fake *f, sx_verify_summary *s)
{
    sx_verify_opts o = {.server = "w0:1", .call = sq_call, .call_arg = f, .log_page = 4};
    sx_verify_result *r = NULL;
    sx_err err = {0};
    assert_int_equal(sx_verify_run(&o, &r, &err), SX_OK);
    sx_verify_result_summary(r, s);
    return r;
}

/* The retained log places a split by what it holds (hand-worked cases). */
static void test_rlog_split(void **state)
{
    (void)state;
    sx_buf b = {0};
    sx_err err = {0};
    /* Held from 6: split 1's marker is below, its done marker at 8, split 2
     * at 9, and its repeat at 15. */
    sx_rlog *l = sx_rlog_create(0, 6);
    for (uint64_t o = 6; o <= SQ_N; o++) {
        sq_pack(o, &b);
        assert_int_equal(sx_rlog_append(l, o, b.data, b.len, &err), SX_OK);
    }
    /* split 1: applied from the done marker (8) on; before, only a bound
     * (a shadow's watermark within the log) says it was below 6 */
    assert_int_equal(sx_rlog_split_applied(l, 9, 1, 8, 0), 1);
    assert_int_equal(sx_rlog_split_applied(l, 9, 1, 7, 0), -1);
    assert_int_equal(sx_rlog_split_applied(l, 9, 1, 7, 7), 1);
    assert_int_equal(sx_rlog_split_applied(l, 9, 1, 5, 14), 1);
    assert_int_equal(sx_rlog_split_applied(l, 9, 1, 7, 99), -1); /* bound past what was read */
    /* split 2: its marker at 9 follows split 1's done marker at 8: it is
     * the first, whatever the bound says */
    assert_int_equal(sx_rlog_split_applied(l, 9, 2, 8, 6), 0);
    assert_int_equal(sx_rlog_split_applied(l, 9, 2, 9, 0), 1);
    assert_int_equal(sx_rlog_split_applied(l, 9, 2, 14, 0), 1);
    /* split 3: not held, split 2 is: not applied anywhere read */
    assert_int_equal(sx_rlog_split_applied(l, 9, 3, 15, 0), 0);
    /* another index: nothing held, nothing determined without a bound */
    assert_int_equal(sx_rlog_split_applied(l, 10, 1, 15, 0), -1);
    assert_false(sx_rlog_split_done(l, 9, 1, 7));
    assert_true(sx_rlog_split_done(l, 9, 1, 8));
    assert_false(sx_rlog_split_done(l, 9, 2, 15));
    sx_rlog_destroy(l);

    /* Held from 15: only the repeat of split 2. At 14 it may be the first
     * marker or a repeat of one below: a bound below 15 says which. */
    l = sx_rlog_create(0, 15);
    sq_pack(15, &b);
    assert_int_equal(sx_rlog_append(l, 15, b.data, b.len, &err), SX_OK);
    assert_int_equal(sx_rlog_split_applied(l, 9, 2, 14, 0), -1);
    assert_int_equal(sx_rlog_split_applied(l, 9, 2, 14, 15), -1);
    assert_int_equal(sx_rlog_split_applied(l, 9, 2, 14, 14), 1);
    assert_int_equal(sx_rlog_split_applied(l, 9, 1, 14, 0), -1);
    assert_int_equal(sx_rlog_split_applied(l, 9, 2, 15, 0), 1);
    assert_int_equal(sx_rlog_split_applied(l, 9, 1, 15, 0), 1); /* split 2 implies split 1 */
    sx_rlog_destroy(l);
    sx_buf_free(&b);
}

/* A split index on a log trimmed past its split markers (and its
 * index_start): every serving term partition, the two splits' shadows and
 * the parent of the one in progress included, is recomputed from the
 * leader's documents with the map's split records, at whatever start; a
 * wrong entry planted in a shadow is found. */
static void test_run_trimmed_split(void **state)
{
    (void)state;
    static const uint64_t starts[] = {1, 4, 6, 9, 10, 12, 15};
    for (size_t i = 0; i < sizeof(starts) / sizeof(starts[0]); i++) {
        sq_fake f = {.start = starts[i], .end = SQ_N, .bad_term = -1};
        static const uint64_t wm[SQ_TERMS] = {15, 0, 13, 12, 15, 14, 15};
        memcpy(f.wm, wm, sizeof(wm));
        for (int t = 0; t < SQ_TERMS; t++) /* at or above start - 1, as the log hold keeps them */
            f.wm[t] = t == 1 ? 0 : f.wm[t] < f.start - 1 ? f.start - 1 : f.wm[t];
        sx_verify_summary s;
        sx_verify_result *r = sq_run(&f, &s);
        char *text = report(r);
        if (getenv("SHARDEX_TEST_VERBOSE"))
            printf("start=%" PRIu64 ":\n%s", f.start, text);
        assert_int_equal(s.checks, 1 + SQ_TERMS - 1); /* documents, 6 serving term partitions */
        if (s.ok != s.checks)
            fail_msg("start=%" PRIu64 ": not clean:\n%s", f.start, text);
        assert_int_equal(s.trimmed, f.start > 1);
        assert_int_equal(s.unrecomputed, 0); /* checked, not left out */
        assert_int_equal(s.split_unknown, 0);
        /* what each holds, as the full replay gives it */
        expect_line(text, "global idx=r t=3 ");
        expect_line(text, "entries=1 ok"); /* t4: d1 */
        sx_verify_result_free(r);
        free(text);

        f.bad_term = 4; /* a shadow of the done split */
        r = sq_run(&f, &s);
        text = report(r);
        if (s.wrong != 1 || s.diffs != 1)
            fail_msg("start=%" PRIu64 ": the planted entry not found alone:\n%s", f.start, text);
        expect_line(text,
                    "WRONG-VERSION global idx=r t=4 value=170 id=\"d1\" served=1007 expected=7");
        sx_verify_result_free(r);
        free(text);
    }
    /* Where the log holds split 2's marker (9) after split 1's done marker
     * (8), the log places it, above a bound: t5 at watermark 8 holds
     * nothing yet, and is expected to. */
    sq_fake f = {.start = 6, .end = SQ_N, .bad_term = -1};
    static const uint64_t wm[SQ_TERMS] = {15, 0, 13, 12, 15, 8, 15};
    memcpy(f.wm, wm, sizeof(wm));
    sx_verify_summary s;
    sx_verify_result *r = sq_run(&f, &s);
    char *text = report(r);
    if (s.ok != s.checks || s.unrecomputed)
        fail_msg("not clean:\n%s", text);
    expect_line(text, "global idx=r t=5 wm=8..8 entries=0 ok");
    sx_verify_result_free(r);
    free(text);
}

/* ---- salted values on a trimmed log ---- */

/* Index 7 "by": strings of field "v", hash-partitioned over M = 4, global
 * only; "hot" salted over 2 ways at offset 6 (repeated at 9). One log
 * partition, one worker. a (version 1) stays in the value's own partition;
 * the hot documents written at or after 6 go to their slot's. */
#define SA_TERMS 4
#define SA_SALT_AT 6

typedef struct saop {
    char kind; /* 'p' put, 'd' delete, 's' index_start, 'h' salt marker */
    const char *id, *v;
} saop;

static const saop salog[] = {
    {'p', "a", "hot"},  /* 1 */
    {'p', "b", "hot"},  /* 2 */
    {'s', NULL, NULL},  /* 3 */
    {'p', "c", "hot"},  /* 4 */
    {'p', "d", "cold"}, /* 5 */
    {'h', NULL, NULL},  /* 6: the salt */
    {'p', "e", "hot"},  /* 7 */
    {'p', "b", "hot"},  /* 8: b moves to its slot's partition */
    {'h', NULL, NULL},  /* 9: a repeat (a new leader appends it again) */
    {'p', "f", "hot"},  /* 10 */
    {'d', "c", NULL},   /* 11 */
    {'p', "g", "hot"},  /* 12 */
};
#define SA_N (sizeof(salog) / sizeof(salog[0]))
static const char *const sa_ids[] = {"a", "b", "c", "d", "e", "f", "g"};

typedef struct sa_fake {
    uint64_t start;        /* the log starts here */
    uint64_t scan_at;      /* the replica's applied offset (ScanDocs) */
    uint64_t wm[SA_TERMS]; /* watermark of each term partition */
    bool unlisted;         /* ScanDocs does not list its salt rows (an older worker) */
    uint64_t row_from;     /* the salt row's from; 0: SA_SALT_AT, as applied */
    bool bad_b;            /* the term partition holding b serves it with a wrong version */
} sa_fake;

typedef struct sa_vals {
    Shardex__V1__IndexSpec spec;
    Shardex__V1__Value hot;
    uint32_t terms[2];
    Shardex__Internal__V1__IndexSalt salt;
} sa_vals;

/* The spec, and the salt as the coordinator plans it (from = 0, active). */
static void sa_vals_init(sa_vals *b)
{
    shardex__v1__index_spec__init(&b->spec);
    b->spec.name = "by";
    b->spec.field = "v";
    b->spec.type = SHARDEX__V1__VALUE_TYPE__VALUE_TYPE_STRING;
    b->spec.global = true;
    b->spec.term_partitions = SA_TERMS;
    shardex__v1__value__init(&b->hot);
    b->hot.kind_case = SHARDEX__V1__VALUE__KIND_S;
    b->hot.s = "hot";
    sx_ixkey_def d;
    sx_ixkey_def_from_spec(&d, 7, &b->spec);
    char msg[128];
    assert_true(sx_ixkey_plan_salt(&d, &b->hot, 2, b->terms, msg, sizeof(msg)));
    shardex__internal__v1__index_salt__init(&b->salt);
    b->salt.index_id = 7;
    b->salt.seq = 1;
    b->salt.value = &b->hot;
    b->salt.ways = 2;
    b->salt.n_terms = 2;
    b->salt.terms = b->terms;
    b->salt.active = true;
}

static void sa_pack(uint64_t o, sx_buf *b)
{
    const saop *x = &salog[o - 1];
    Shardex__Internal__V1__LogOp op = SHARDEX__INTERNAL__V1__LOG_OP__INIT;
    Shardex__V1__Value v = SHARDEX__V1__VALUE__INIT;
    Shardex__V1__Field fl = SHARDEX__V1__FIELD__INIT, *fp = &fl;
    Shardex__V1__Document d = SHARDEX__V1__DOCUMENT__INIT;
    Shardex__Internal__V1__IndexStart is = SHARDEX__INTERNAL__V1__INDEX_START__INIT;
    sa_vals sv;
    sa_vals_init(&sv);
    if (x->kind == 'p') {
        v.kind_case = SHARDEX__V1__VALUE__KIND_S;
        v.s = (char *)x->v;
        fl.name = "v";
        fl.value = &v;
        d.id = (char *)x->id;
        d.n_fields = 1;
        d.fields = &fp;
        op.op_case = SHARDEX__INTERNAL__V1__LOG_OP__OP_PUT;
        op.put = &d;
    } else if (x->kind == 'd') {
        op.op_case = SHARDEX__INTERNAL__V1__LOG_OP__OP_DELETE;
        op.delete_ = (char *)x->id;
    } else if (x->kind == 's') {
        is.index_id = 7;
        is.spec = &sv.spec;
        op.op_case = SHARDEX__INTERNAL__V1__LOG_OP__OP_INDEX_START;
        op.index_start = &is;
    } else {
        op.op_case = SHARDEX__INTERNAL__V1__LOG_OP__OP_INDEX_SALT;
        op.index_salt = &sv.salt;
    }
    sx_buf_reset(b);
    sx_buf_reserve(b, shardex__internal__v1__log_op__get_packed_size(&op) + 1);
    b->len = shardex__internal__v1__log_op__pack(&op, b->data);
}

static sx_replay *sa_replay(uint64_t at)
{
    sx_replay *r = sx_replay_create(0);
    sx_buf b = {0};
    sx_err err = {0};
    for (uint64_t o = 1; o <= at; o++) {
        sa_pack(o, &b);
        assert_int_equal(sx_replay_apply(r, o, b.data, b.len, &err), SX_OK);
    }
    sx_buf_free(&b);
    return r;
}

static ProtobufCMessage *sa_map(void)
{
    Shardex__Internal__V1__ClusterSettings set = SHARDEX__INTERNAL__V1__CLUSTER_SETTINGS__INIT;
    set.partitions = 1;
    set.term_partitions = SA_TERMS;
    Shardex__Internal__V1__WorkerEntry w = SHARDEX__INTERNAL__V1__WORKER_ENTRY__INIT, *wp = &w;
    w.id = "w-0";
    w.address = "w0:1";
    w.alive = true;
    int32_t rep = 0;
    Shardex__Internal__V1__LogPartition lp = SHARDEX__INTERNAL__V1__LOG_PARTITION__INIT, *lpp = &lp;
    lp.leader = 0;
    lp.epoch = 3;
    lp.n_replicas = 1;
    lp.replicas = &rep;
    Shardex__Internal__V1__TermPartition tp[SA_TERMS], *tpp[SA_TERMS];
    for (int t = 0; t < SA_TERMS; t++) {
        shardex__internal__v1__term_partition__init(&tp[t]);
        tp[t].owner = 0;
        tp[t].epoch = 10 + (uint64_t)t;
        tpp[t] = &tp[t];
    }
    sa_vals sv;
    sa_vals_init(&sv);
    Shardex__Internal__V1__IndexSalt *spp = &sv.salt; /* the map's record: no offset */
    Shardex__Internal__V1__IndexEntry ix = SHARDEX__INTERNAL__V1__INDEX_ENTRY__INIT, *ixp = &ix;
    ix.spec = &sv.spec;
    ix.id = 7;
    ix.state = SHARDEX__V1__INDEX_STATE__INDEX_STATE_READY;
    ix.n_salts = 1;
    ix.salts = &spp;
    Shardex__Internal__V1__ClusterMap m = SHARDEX__INTERNAL__V1__CLUSTER_MAP__INIT;
    m.version = 60;
    m.settings = &set;
    m.n_workers = 1;
    m.workers = &wp;
    m.n_partitions = 1;
    m.partitions = &lpp;
    m.n_terms = SA_TERMS;
    m.terms = tpp;
    m.n_indexes = 1;
    m.indexes = &ixp;
    return reunpack(&m.base);
}

/* Term partition t's entries at wm[t], from the whole log. */
static void sa_entries(uint64_t wm, uint32_t t, sx_replay_entries *l)
{
    sx_replay *r = sa_replay(wm);
    sq_collect c = {t, l};
    assert_true(sx_replay_each_entry(r, 7, sq_collect_cb, &c, NULL, NULL));
    sx_replay_entries_sort(l);
    sx_replay_destroy(r);
}

static bool key_of_id(const sx_replay_entry *e, const char *want)
{
    Shardex__V1__Value v;
    sx_buf sb = {0}, id = {0};
    assert_true(sx_ixkey_split_key(false, e->key, e->len, &v, &sb, &id));
    bool eq = id.len == strlen(want) && memcmp(id.data, want, id.len) == 0;
    sx_buf_free(&sb);
    sx_buf_free(&id);
    return eq;
}

static sx_status sa_digest(const sa_fake *f, const Shardex__Internal__V1__DigestRequest *req,
                           ProtobufCMessage **resp)
{
    assert_true(req->term);
    assert_int_equal(req->index_id, 7);
    uint32_t t = req->partition;
    assert_true(t < SA_TERMS);
    sx_replay_entries l = {0};
    sa_entries(f->wm[t], t, &l);
    for (size_t i = 0; f->bad_b && i < l.n; i++)
        if (key_of_id(&l.v[i], "b"))
            l.v[i].version += 1000; /* planted: a version b never had */
    *resp = digest_answer(&l, true, req->entries, 0, &f->wm[t], 1);
    sx_replay_entries_free(&l);
    return SX_OK;
}

static sx_status sa_read_log(const sa_fake *f, const Shardex__Internal__V1__ReadLogRequest *req,
                             ProtobufCMessage **resp, sx_err *err)
{
    uint64_t from = req->from_offset ? req->from_offset : f->start;
    if (from < f->start)
        return sx_err_set(err, SX_OUT_OF_RANGE, "offset %" PRIu64 " is below the log start", from);
    Shardex__Internal__V1__ReadLogResponse r = SHARDEX__INTERNAL__V1__READ_LOG_RESPONSE__INIT;
    r.log_start_offset = f->start;
    r.log_end_offset = SA_N;
    Shardex__Internal__V1__AppendEntry e[SA_N], *ep[SA_N];
    sx_buf b[SA_N] = {{0}};
    for (uint64_t o = from; o <= SA_N && r.n_entries < req->max_entries; o++) {
        size_t i = r.n_entries++;
        shardex__internal__v1__append_entry__init(&e[i]);
        sa_pack(o, &b[i]);
        e[i].epoch = 1;
        e[i].op.data = b[i].data;
        e[i].op.len = b[i].len;
        ep[i] = &e[i];
    }
    r.entries = ep;
    *resp = reunpack(&r.base);
    for (size_t i = 0; i < SA_N; i++)
        sx_buf_free(&b[i]);
    return SX_OK;
}

/* The replica's documents and salt rows at scan_at, as the worker lists
 * them (pindex rows: the marker applied, from = its offset). */
static sx_status sa_scan(const sa_fake *f, ProtobufCMessage **resp)
{
    sx_replay *r = sa_replay(f->scan_at);
    Shardex__Internal__V1__ScanDocsResponse sr = SHARDEX__INTERNAL__V1__SCAN_DOCS_RESPONSE__INIT;
    Shardex__Internal__V1__StoredDoc sd[7], *sdp[7];
    for (size_t i = 0; i < 7; i++) {
        const Shardex__V1__Document *d;
        uint64_t v;
        if (!sx_replay_doc(r, sa_ids[i], 1, &v, &d))
            continue;
        shardex__internal__v1__stored_doc__init(&sd[sr.n_docs]);
        sd[sr.n_docs].doc = (Shardex__V1__Document *)d;
        sd[sr.n_docs].version = v;
        sdp[sr.n_docs] = &sd[sr.n_docs];
        sr.n_docs++;
    }
    sr.docs = sdp;
    sr.applied_offset = f->scan_at;
    sa_vals sv;
    sa_vals_init(&sv);
    sv.salt.from = f->row_from ? f->row_from : SA_SALT_AT;
    Shardex__Internal__V1__IndexSalt *row = &sv.salt;
    sr.salts_listed = !f->unlisted;
    if (sr.salts_listed && f->scan_at >= SA_SALT_AT) {
        sr.n_salts = 1;
        sr.salts = &row;
    }
    *resp = reunpack(&sr.base);
    sx_replay_destroy(r);
    return SX_OK;
}

static sx_status sa_call(void *arg, const char *addr, const ProtobufCServiceDescriptor *svc,
                         const char *method, const ProtobufCMessage *req, ProtobufCMessage **resp,
                         sx_err *err)
{
    const sa_fake *f = arg;
    (void)svc;
    *resp = NULL;
    assert_string_equal(addr, "w0:1");
    if (strcmp(method, "GetMap") == 0)
        *resp = sa_map();
    else if (strcmp(method, "Digest") == 0)
        return sa_digest(f, (const void *)req, resp);
    else if (strcmp(method, "ReadLog") == 0)
        return sa_read_log(f, (const void *)req, resp, err);
    else if (strcmp(method, "ScanDocs") == 0)
        return sa_scan(f, resp);
    else
        fail_msg("unexpected method %s", method);
    return SX_OK;
}

static sx_verify_result *sa_run(sa_fake *f, sx_verify_summary *s, char **text)
{
    sx_verify_opts o = {.server = "w0:1", .call = sa_call, .call_arg = f, .log_page = 4};
    sx_verify_result *r = NULL;
    sx_err err = {0};
    assert_int_equal(sx_verify_run(&o, &r, &err), SX_OK);
    sx_verify_result_summary(r, s);
    *text = report(r);
    if (getenv("SHARDEX_TEST_VERBOSE"))
        printf("start=%" PRIu64 " scan_at=%" PRIu64 ":\n%s", f->start, f->scan_at, *text);
    return r;
}

/* The fake's watermarks: the salt's two partitions at the end, the others
 * at 9 and 5 (before the salt), none below start - 1 (the log hold). */
static void sa_watermarks(sa_fake *f)
{
    sa_vals sv;
    sa_vals_init(&sv);
    uint64_t other[2] = {9, 5};
    size_t k = 0;
    for (uint32_t t = 0; t < SA_TERMS; t++) {
        bool salted = t == sv.terms[0] || t == sv.terms[1];
        f->wm[t] = salted ? SA_N : other[k++];
        if (f->wm[t] < f->start - 1)
            f->wm[t] = f->start - 1;
    }
}

/* The test means something: the salt moved some of the hot entries out of
 * the value's own partition and left a (written before it) there. */
static void sa_routing_moves(void)
{
    sa_vals sv;
    sa_vals_init(&sv);
    sx_replay_entries own = {0}, moved = {0};
    sa_entries(SA_N, sv.terms[0], &own);
    sa_entries(SA_N, sv.terms[1], &moved);
    assert_true(moved.n > 0);
    bool has_a = false;
    for (size_t i = 0; i < own.n; i++)
        has_a = has_a || key_of_id(&own.v[i], "a");
    assert_true(has_a);
    sx_replay_entries_free(&own);
    sx_replay_entries_free(&moved);
}

static sx_rlog *sa_rlog(uint64_t start)
{
    sx_rlog *l = sx_rlog_create(0, start);
    sx_buf b = {0};
    sx_err err = {0};
    for (uint64_t o = start; o <= SA_N; o++) {
        sa_pack(o, &b);
        assert_int_equal(sx_rlog_append(l, o, b.data, b.len, &err), SX_OK);
    }
    sx_buf_free(&b);
    return l;
}

static size_t sa_salts_at(const sx_rlog *l, Shardex__Internal__V1__IndexSalt *row, uint64_t a,
                          uint64_t w, uint64_t *from)
{
    sa_vals sv;
    sa_vals_init(&sv);
    sx_ixkey_def d;
    sx_ixkey_def_from_spec(&d, 7, &sv.spec);
    Shardex__Internal__V1__IndexSalt **out = NULL;
    size_t n = sx_rlog_salts_at(l, &d, row ? &row : NULL, row ? 1 : 0, a, w, &out);
    *from = n == 1 ? out[0]->from : 0;
    free(out);
    return n;
}

/* The retained log continues a replica's salt rows and checks them
 * (hand-worked cases; the marker at 6, its repeat at 9). */
static void test_rlog_salt(void **state)
{
    (void)state;
    sa_vals sv;
    sa_vals_init(&sv);
    sv.salt.from = SA_SALT_AT;
    Shardex__Internal__V1__IndexSalt *row = &sv.salt;
    uint64_t from;
    sx_rlog *l = sa_rlog(4);
    /* the row, as far as the position asked */
    assert_int_equal(sa_salts_at(l, row, SA_N, 5, &from), 0);
    assert_int_equal(sa_salts_at(l, row, SA_N, 6, &from), 1);
    assert_int_equal(from, 6);
    /* a replica at 5 has no row: the marker held at 6 continues it, the
     * repeat at 9 does not */
    assert_int_equal(sa_salts_at(l, NULL, 5, SA_N, &from), 1);
    assert_int_equal(from, 6);
    assert_int_equal(sa_salts_at(l, NULL, 5, 5, &from), 0);
    /* the checks: right, missing, at an offset holding no marker, past a */
    assert_int_equal(sx_rlog_salts_check(l, &row, 1, SA_N, NULL, NULL), 0);
    assert_int_equal(sx_rlog_salts_check(l, NULL, 0, 5, NULL, NULL), 0);
    assert_int_equal(sx_rlog_salts_check(l, NULL, 0, SA_N, NULL, NULL), 1);
    assert_int_equal(sx_rlog_salts_check(l, &row, 1, 5, NULL, NULL), 1);
    sv.salt.from = 4;
    assert_int_equal(sx_rlog_salts_check(l, &row, 1, SA_N, NULL, NULL), 1);
    sv.salt.seq = 2; /* no seq 1 */
    assert_int_equal(sa_salts_at(l, row, SA_N, SA_N, &from), SIZE_MAX);
    sx_rlog_destroy(l);
    /* held from 7: the row is below the start (nothing to check it by),
     * and the repeat at 9 is not taken for the salt */
    sv.salt.seq = 1;
    sv.salt.from = SA_SALT_AT;
    l = sa_rlog(7);
    assert_int_equal(sx_rlog_salts_check(l, &row, 1, SA_N, NULL, NULL), 0);
    assert_int_equal(sa_salts_at(l, row, SA_N, SA_N, &from), 1);
    assert_int_equal(from, 6);
    assert_int_equal(sa_salts_at(l, row, 6, SA_N, &from), 1);
    assert_int_equal(from, 6);
    sx_rlog_destroy(l);
}

/* A salted index on a log trimmed at every place around its marker (and
 * its index_start), the replica scanned after the marker or before it: every
 * term partition is recomputed with the replica's salt row and the log's
 * markers, none left out; a wrong entry planted where b moved is found. */
static void test_run_trimmed_salt(void **state)
{
    (void)state;
    sa_routing_moves();
    static const uint64_t starts[] = {1, 3, 4, 6, 7, 9, 12};
    for (size_t i = 0; i < sizeof(starts) / sizeof(starts[0]); i++) {
        for (int before = 0; before < 2; before++) {
            /* scanned at 5: its rows hold no salt, the log's marker at 6 does */
            uint64_t scan_at = before ? SA_SALT_AT - 1 : SA_N;
            if (scan_at + 1 < starts[i])
                continue;
            sa_fake f = {.start = starts[i], .scan_at = scan_at};
            sa_watermarks(&f);
            sx_verify_summary s;
            char *text;
            sx_verify_result *r = sa_run(&f, &s, &text);
            assert_int_equal(s.checks, 1 + SA_TERMS);
            if (s.ok != s.checks || s.unrecomputed || s.salt_unknown)
                fail_msg("start=%" PRIu64 " scan_at=%" PRIu64 ": not clean, or left out:\n%s",
                         f.start, f.scan_at, text);
            assert_int_equal(s.trimmed, f.start > 1);
            sx_verify_result_free(r);
            free(text);

            f.bad_b = true;
            r = sa_run(&f, &s, &text);
            if (s.wrong != 1 || s.diffs != 1 || !strstr(text, "id=\"b\" served=1008 expected=8"))
                fail_msg("start=%" PRIu64 " scan_at=%" PRIu64
                         ": the planted entry not found alone:\n%s",
                         f.start, f.scan_at, text);
            sx_verify_result_free(r);
            free(text);
        }
    }
}

/* What cannot be known stays counted, and the salt rows are checked too:
 * a replica that does not list its rows leaves the salted index's part out
 * (salt-undetermined), never a difference; a row whose offset the log
 * contradicts is a SALT-ROW difference, full replay or trimmed. */
static void test_run_trimmed_salt_rows(void **state)
{
    (void)state;
    sa_fake f = {.start = 7, .scan_at = SA_N, .unlisted = true};
    sa_watermarks(&f);
    sx_verify_summary s;
    char *text;
    sx_verify_result *r = sa_run(&f, &s, &text);
    if (s.ok != s.checks || s.salt_unknown != SA_TERMS || s.unrecomputed != SA_TERMS)
        fail_msg("an unlisted replica's salted index not left out and counted:\n%s", text);
    expect_line(text, "salt-undetermined=1 ok");
    sx_verify_result_free(r);
    free(text);

    static const uint64_t starts[] = {1, 4};
    for (size_t i = 0; i < 2; i++) {
        f = (sa_fake){.start = starts[i], .scan_at = SA_N, .row_from = 4};
        sa_watermarks(&f);
        r = sa_run(&f, &s, &text);
        if (s.diffs < 1 || !strstr(text, "SALT-ROW      docs p=0"))
            fail_msg("start=%" PRIu64 ": the wrong salt row not found:\n%s", f.start, text);
        sx_verify_result_free(r);
        free(text);
    }
}

int main(void)
{
    seed = sx_fx_seed();

    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_replay_history),
        cmocka_unit_test(test_replay_refuses),
        cmocka_unit_test(test_replay_split),
        cmocka_unit_test(test_replay_random),
        cmocka_unit_test(test_entries_diff),
        cmocka_unit_test(test_docs_diff),
        cmocka_unit_test(test_run_clean),
        cmocka_unit_test(test_run_entry_diffs),
        cmocka_unit_test(test_run_global),
        cmocka_unit_test(test_run_docs),
        cmocka_unit_test(test_run_followers),
        cmocka_unit_test(test_run_moving_digests),
        cmocka_unit_test(test_run_unavailable_and_bad_logs),
        cmocka_unit_test(test_rlog),
        cmocka_unit_test(test_run_trimmed),
        cmocka_unit_test(test_rlog_split),
        cmocka_unit_test(test_run_trimmed_split),
        cmocka_unit_test(test_rlog_salt),
        cmocka_unit_test(test_run_trimmed_salt),
        cmocka_unit_test(test_run_trimmed_salt_rows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
