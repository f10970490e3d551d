/* test_qplan.c: unit tests for qplan.h through its public header: every
 * refusal and its message (the client sees them verbatim), the key ranges of
 * eq and range on string and int indexes, page tokens, the mode table, and
 * the targets and scan requests of each mode. No network, no clock: plans
 * are made against hand-built index entries and one small map. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the four above, which it needs */

#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "keys.h"
#include "qplan.h"
#include "rpc.h"
#include "sx_limits.h"

#define NP 4 /* log partitions of every plan here */
#define NM 3 /* term partitions of the global indexes here */

typedef Shardex__Internal__V1__IndexEntry ientry;
typedef Shardex__V1__QueryRequest qreq;

/* ------------------------------------------------------------ fixtures -- */

/* An index entry: id 9, named `name`, on field f, of the given shape. */
typedef struct ix {
    Shardex__V1__IndexSpec spec;
    ientry e;
} ix;

static void ix_init(ix *x, const char *name, bool is_int, bool local, bool global,
                    Shardex__V1__IndexState state)
{
    shardex__v1__index_spec__init(&x->spec);
    x->spec.name = (char *)name;
    x->spec.field = "f";
    x->spec.type = is_int ? SHARDEX__V1__VALUE_TYPE__VALUE_TYPE_INT
                          : SHARDEX__V1__VALUE_TYPE__VALUE_TYPE_STRING;
    x->spec.local = local;
    x->spec.global = global;
    x->spec.term_partitions = global ? NM : 0;
    shardex__internal__v1__index_entry__init(&x->e);
    x->e.spec = &x->spec;
    x->e.state = state;
    x->e.id = 9;
}

/* A request and the values it points to. */
typedef struct q {
    qreq r;
    Shardex__V1__Value eq, min, max;
    Shardex__V1__Range range;
    Shardex__V1__WriteToken tok[2];
    Shardex__V1__WriteToken *tokp[2];
} q;

static void q_init(q *x, const char *index)
{
    shardex__v1__query_request__init(&x->r);
    shardex__v1__value__init(&x->eq);
    shardex__v1__value__init(&x->min);
    shardex__v1__value__init(&x->max);
    shardex__v1__range__init(&x->range);
    x->r.index = (char *)index;
}

static void set_s(Shardex__V1__Value *v, const char *s)
{
    v->kind_case = SHARDEX__V1__VALUE__KIND_S;
    v->s = (char *)s;
}

static void set_i(Shardex__V1__Value *v, int64_t i)
{
    v->kind_case = SHARDEX__V1__VALUE__KIND_I;
    v->i = i;
}

static void q_eq_s(q *x, const char *s)
{
    set_s(&x->eq, s);
    x->r.match_case = SHARDEX__V1__QUERY_REQUEST__MATCH_EQ;
    x->r.eq = &x->eq;
}

static void q_eq_i(q *x, int64_t i)
{
    set_i(&x->eq, i);
    x->r.match_case = SHARDEX__V1__QUERY_REQUEST__MATCH_EQ;
    x->r.eq = &x->eq;
}

/* A range with open ends: min and max set only when their kind is. */
static void q_range(q *x)
{
    x->range.min = x->min.kind_case ? &x->min : NULL;
    x->range.max = x->max.kind_case ? &x->max : NULL;
    x->r.match_case = SHARDEX__V1__QUERY_REQUEST__MATCH_RANGE;
    x->r.range = &x->range;
}

static void q_after(q *x, uint32_t p0, uint32_t p1)
{
    for (int i = 0; i < 2; i++) {
        shardex__v1__write_token__init(&x->tok[i]);
        x->tok[i].partition = i ? p1 : p0;
        x->tok[i].offset = 100 + (uint64_t)i;
        x->tokp[i] = &x->tok[i];
    }
    x->r.after = x->tokp;
    x->r.n_after = 2;
}

/* Plans r against e and expects code and (when code is not SX_OK) exactly msg. */
static void expect_plan(const qreq *r, const ientry *e, sx_status code, const char *msg,
                        sx_arena *arena, sx_qplan *pl)
{
    sx_err err = {0};
    sx_status st = sx_qplan_make_index(r, e, NP, arena, pl, &err);
    if (st != code)
        fail_msg("status %s (%s), expected %s", sx_status_name(st), err.msg, sx_status_name(code));
    if (code != SX_OK)
        assert_string_equal(err.msg, msg);
}

static ProtobufCBinaryData bin(const sx_buf *b)
{
    return (ProtobufCBinaryData){b->len, b->data};
}

/* The entry key (value, id) of a string or int value. */
static void entry_key_s(sx_buf *b, const char *v, const char *id)
{
    b->len = 0;
    sx_key_append_str(b, v, strlen(v));
    sx_key_append_str(b, id, strlen(id));
}

static void entry_key_i(sx_buf *b, int64_t v, const char *id)
{
    b->len = 0;
    sx_key_append_i64(b, v);
    sx_key_append_str(b, id, strlen(id));
}

/* key in [pl->start, pl->end), empty ends open. */
static bool in_range(const sx_qplan *pl, const sx_buf *key)
{
    ProtobufCBinaryData k = bin(key);
    if (pl->start.len && sx_qplan_key_cmp(&k, &pl->start) < 0)
        return false;
    return !pl->end.len || sx_qplan_key_cmp(&k, &pl->end) < 0;
}

/* ---------------------------------------------------------- refusals -- */

static void test_request_refusals(void **state)
{
    (void)state;
    sx_arena a = {0};
    sx_qplan pl;
    ix x;
    ix_init(&x, "by_name", false, true, false, SHARDEX__V1__INDEX_STATE__INDEX_STATE_READY);
    q r;
    q_init(&r, NULL);
    q_eq_s(&r, "bob");
    expect_plan(&r.r, &x.e, SX_INVALID_ARGUMENT, "index: required", &a, &pl);
    r.r.index = "";
    expect_plan(&r.r, &x.e, SX_INVALID_ARGUMENT, "index: required", &a, &pl);
    r.r.index = "by_name";
    r.r.limit = SX_QUERY_LIMIT_MAX + 1;
    expect_plan(&r.r, &x.e, SX_INVALID_ARGUMENT, "limit: 10001 is above 10000", &a, &pl);
    r.r.limit = SX_QUERY_LIMIT_MAX;
    expect_plan(&r.r, &x.e, SX_OK, NULL, &a, &pl);
    assert_int_equal(pl.limit, SX_QUERY_LIMIT_MAX);
    r.r.limit = 0;
    expect_plan(&r.r, &x.e, SX_OK, NULL, &a, &pl);
    assert_int_equal(pl.limit, SX_QUERY_LIMIT_DEFAULT);
    assert_int_equal(pl.reqs[0].limit, SX_QUERY_LIMIT_DEFAULT);
    r.r.match_case = SHARDEX__V1__QUERY_REQUEST__MATCH__NOT_SET;
    r.r.eq = NULL;
    expect_plan(&r.r, &x.e, SX_INVALID_ARGUMENT, "match: set eq or range", &a, &pl);
    /* The first fault is the answer: a missing index before a bad limit. */
    r.r.index = NULL;
    r.r.limit = SX_QUERY_LIMIT_MAX + 1;
    expect_plan(&r.r, &x.e, SX_INVALID_ARGUMENT, "index: required", &a, &pl);
    sx_arena_free(&a);
}

static void test_type_refusals(void **state)
{
    (void)state;
    sx_arena a = {0};
    sx_qplan pl;
    ix s, i;
    ix_init(&s, "by_name", false, true, false, SHARDEX__V1__INDEX_STATE__INDEX_STATE_READY);
    ix_init(&i, "by_age", true, true, false, SHARDEX__V1__INDEX_STATE__INDEX_STATE_READY);
    q r;
    q_init(&r, "by_name");
    q_eq_i(&r, 3);
    expect_plan(&r.r, &s.e, SX_INVALID_ARGUMENT, "eq: index \"by_name\" holds string values", &a,
                &pl);
    r.r.index = "by_age";
    q_eq_s(&r, "3");
    expect_plan(&r.r, &i.e, SX_INVALID_ARGUMENT, "eq: index \"by_age\" holds int values", &a, &pl);
    r.r.eq->kind_case = SHARDEX__V1__VALUE__KIND__NOT_SET;
    expect_plan(&r.r, &i.e, SX_INVALID_ARGUMENT, "eq: index \"by_age\" holds int values", &a, &pl);
    r.r.eq = NULL;
    expect_plan(&r.r, &i.e, SX_INVALID_ARGUMENT, "eq: index \"by_age\" holds int values", &a, &pl);

    q_init(&r, "by_age");
    set_s(&r.min, "a");
    set_s(&r.max, "b");
    q_range(&r);
    expect_plan(&r.r, &i.e, SX_INVALID_ARGUMENT, "range.min: index \"by_age\" holds int values", &a,
                &pl);
    set_i(&r.min, 1);
    expect_plan(&r.r, &i.e, SX_INVALID_ARGUMENT, "range.max: index \"by_age\" holds int values", &a,
                &pl);
    set_i(&r.max, 2);
    expect_plan(&r.r, &i.e, SX_OK, NULL, &a, &pl);
    r.r.index = "by_name";
    expect_plan(&r.r, &s.e, SX_INVALID_ARGUMENT, "range.min: index \"by_name\" holds string values",
                &a, &pl);
    sx_arena_free(&a);
}

static void test_after_refusals(void **state)
{
    (void)state;
    sx_arena a = {0};
    sx_qplan pl;
    ix x;
    ix_init(&x, "by_name", false, true, false, SHARDEX__V1__INDEX_STATE__INDEX_STATE_READY);
    q r;
    q_init(&r, "by_name");
    q_eq_s(&r, "bob");
    q_after(&r, 0, NP);
    expect_plan(&r.r, &x.e, SX_INVALID_ARGUMENT, "after[1].partition: 4 is not below 4 partitions",
                &a, &pl);
    q_after(&r, NP - 1, 0);
    expect_plan(&r.r, &x.e, SX_OK, NULL, &a, &pl);
    /* Every scan waits for the tokens (each target picks its own). */
    for (size_t i = 0; i < pl.n; i++) {
        assert_int_equal(pl.reqs[i].n_after, 2);
        assert_ptr_equal(pl.reqs[i].after, r.r.after);
    }
    sx_arena_free(&a);
}

/* A map of NP log partitions on one worker with "by_name" (local string) and
 * "by_tag" (global int, NM term partitions), packed and unpacked so that the
 * view owns its memory as a received one does. */
static sx_partmap *small_map(void)
{
    Shardex__Internal__V1__ClusterSettings set = SHARDEX__INTERNAL__V1__CLUSTER_SETTINGS__INIT;
    set.partitions = NP;
    Shardex__Internal__V1__WorkerEntry w = SHARDEX__INTERNAL__V1__WORKER_ENTRY__INIT;
    Shardex__Internal__V1__WorkerEntry *wp = &w;
    w.id = "w-a";
    w.address = "127.0.0.1:1";
    w.alive = true;
    Shardex__Internal__V1__LogPartition lp[NP], *lpp[NP];
    int32_t rep = 0;
    for (int p = 0; p < NP; p++) {
        shardex__internal__v1__log_partition__init(&lp[p]);
        lp[p].replicas = lp[p].isr = &rep;
        lp[p].n_replicas = lp[p].n_isr = 1;
        lpp[p] = &lp[p];
    }
    Shardex__Internal__V1__TermPartition tp[NM], *tpp[NM];
    for (int t = 0; t < NM; t++) {
        shardex__internal__v1__term_partition__init(&tp[t]);
        tpp[t] = &tp[t];
    }
    ix x[2];
    ientry *ep[2] = {&x[0].e, &x[1].e};
    ix_init(&x[0], "by_name", false, true, false, SHARDEX__V1__INDEX_STATE__INDEX_STATE_READY);
    ix_init(&x[1], "by_tag", true, false, true, SHARDEX__V1__INDEX_STATE__INDEX_STATE_READY);
    x[1].e.id = 12;
    Shardex__Internal__V1__ClusterMap m = SHARDEX__INTERNAL__V1__CLUSTER_MAP__INIT;
    m.settings = &set;
    m.workers = &wp;
    m.n_workers = 1;
    m.partitions = lpp;
    m.n_partitions = NP;
    m.terms = tpp;
    m.n_terms = NM;
    m.indexes = ep;
    m.n_indexes = 2;
    size_t n = protobuf_c_message_get_packed_size(&m.base);
    uint8_t *buf = malloc(n + 1);
    protobuf_c_message_pack(&m.base, buf);
    Shardex__Internal__V1__ClusterMap *out =
        (void *)sx_rpc_unpack(&shardex__internal__v1__cluster_map__descriptor, n, buf);
    free(buf);
    assert_non_null(out);
    sx_partmap *pm = NULL;
    sx_err err = {0};
    assert_int_equal(sx_partmap_create(&out->base, out, "w-a", &pm, &err), SX_OK);
    return pm;
}

static void test_map_refusals(void **state)
{
    (void)state;
    sx_arena a = {0};
    sx_qplan pl;
    sx_err err = {0};
    q r;
    q_init(&r, "by_tag");
    q_eq_i(&r, 7);
    assert_int_equal(sx_qplan_make(&r.r, NULL, &a, &pl, &err), SX_UNAVAILABLE);
    assert_string_equal(err.msg, "this worker has not joined the cluster yet");
    /* The request is checked before the map. */
    r.r.limit = SX_QUERY_LIMIT_MAX + 1;
    assert_int_equal(sx_qplan_make(&r.r, NULL, &a, &pl, &err), SX_INVALID_ARGUMENT);
    r.r.limit = 0;

    sx_partmap *pm = small_map();
    r.r.index = "nope";
    assert_int_equal(sx_qplan_make(&r.r, pm, &a, &pl, &err), SX_NOT_FOUND);
    assert_string_equal(err.msg, "index \"nope\" does not exist");
    r.r.index = "by_tag";
    assert_int_equal(sx_qplan_make(&r.r, pm, &a, &pl, &err), SX_OK);
    sx_partmap_release(pm); /* the plan holds nothing of the map */
    assert_int_equal(pl.P, NP);
    assert_int_equal(pl.def.id, 12);
    assert_string_equal(pl.def.name, "by_tag");
    assert_string_equal(pl.def.field, "f");
    assert_true(pl.global);
    assert_int_equal(pl.n, 1);
    assert_int_equal(pl.targets[0], sx_term_partition_of_int("by_tag", 7, NM));
    sx_arena_free(&a);
}

/* -------------------------------------------------------- key ranges -- */

static void test_ranges_string(void **state)
{
    (void)state;
    sx_arena a = {0};
    sx_qplan pl;
    sx_buf want = {0}, succ = {0}, k = {0};
    ix x;
    ix_init(&x, "by_name", false, true, false, SHARDEX__V1__INDEX_STATE__INDEX_STATE_READY);
    q r;
    q_init(&r, "by_name");
    q_eq_s(&r, "bob");
    expect_plan(&r.r, &x.e, SX_OK, NULL, &a, &pl);
    sx_key_append_str(&want, "bob", 3);
    assert_true(sx_key_prefix_successor(want.data, want.len, &succ));
    assert_int_equal(sx_qplan_key_cmp(&pl.start, &(ProtobufCBinaryData){want.len, want.data}), 0);
    assert_int_equal(sx_qplan_key_cmp(&pl.end, &(ProtobufCBinaryData){succ.len, succ.data}), 0);
    entry_key_s(&k, "bob", "d1");
    assert_true(in_range(&pl, &k));
    entry_key_s(&k, "bob", "");
    assert_true(in_range(&pl, &k));
    entry_key_s(&k, "bobby", "d1"); /* a longer value is another value */
    assert_false(in_range(&pl, &k));
    entry_key_s(&k, "bo", "d1");
    assert_false(in_range(&pl, &k));

    /* Range [b, d] inclusive, then with each end open. */
    q_init(&r, "by_name");
    set_s(&r.min, "b");
    set_s(&r.max, "d");
    q_range(&r);
    expect_plan(&r.r, &x.e, SX_OK, NULL, &a, &pl);
    const char *inside[] = {"b", "c", "czz", "d"}, *outside[] = {"a", "azz", "da", "e"};
    for (int i = 0; i < 4; i++) {
        entry_key_s(&k, inside[i], "d1");
        assert_true(in_range(&pl, &k));
        entry_key_s(&k, outside[i], "d1");
        assert_false(in_range(&pl, &k));
    }
    r.min.kind_case = SHARDEX__V1__VALUE__KIND__NOT_SET;
    q_range(&r);
    expect_plan(&r.r, &x.e, SX_OK, NULL, &a, &pl);
    assert_int_equal(pl.start.len, 0);
    assert_true(pl.end.len > 0);
    entry_key_s(&k, "", "d1");
    assert_true(in_range(&pl, &k));
    set_s(&r.min, "b");
    r.max.kind_case = SHARDEX__V1__VALUE__KIND__NOT_SET;
    q_range(&r);
    expect_plan(&r.r, &x.e, SX_OK, NULL, &a, &pl);
    assert_true(pl.start.len > 0);
    assert_int_equal(pl.end.len, 0);
    entry_key_s(&k, "zzzz", "d1");
    assert_true(in_range(&pl, &k));
    r.min.kind_case = SHARDEX__V1__VALUE__KIND__NOT_SET;
    q_range(&r);
    expect_plan(&r.r, &x.e, SX_OK, NULL, &a, &pl);
    assert_int_equal(pl.start.len, 0);
    assert_int_equal(pl.end.len, 0);
    r.r.range = NULL; /* a range case without its message: the same */
    expect_plan(&r.r, &x.e, SX_OK, NULL, &a, &pl);
    assert_int_equal(pl.start.len + pl.end.len, 0);
    /* Every scan gets the range. */
    for (size_t i = 0; i < pl.n; i++)
        assert_int_equal(pl.reqs[i].start.len + pl.reqs[i].end.len, 0);
    sx_buf_free(&want);
    sx_buf_free(&succ);
    sx_buf_free(&k);
    sx_arena_free(&a);
}

static void test_ranges_int(void **state)
{
    (void)state;
    sx_arena a = {0};
    sx_qplan pl;
    sx_buf k = {0};
    ix x;
    ix_init(&x, "by_age", true, true, false, SHARDEX__V1__INDEX_STATE__INDEX_STATE_READY);
    q r;
    q_init(&r, "by_age");
    q_eq_i(&r, -5);
    expect_plan(&r.r, &x.e, SX_OK, NULL, &a, &pl);
    assert_int_equal(pl.start.len, 8);
    entry_key_i(&k, -5, "d1");
    assert_true(in_range(&pl, &k));
    entry_key_i(&k, -4, "d1");
    assert_false(in_range(&pl, &k));
    entry_key_i(&k, -6, "d1");
    assert_false(in_range(&pl, &k));

    q_init(&r, "by_age");
    set_i(&r.min, -3);
    set_i(&r.max, 7);
    q_range(&r);
    expect_plan(&r.r, &x.e, SX_OK, NULL, &a, &pl);
    const int64_t inside[] = {-3, 0, 7}, outside[] = {INT64_MIN, -4, 8};
    for (int i = 0; i < 3; i++) {
        entry_key_i(&k, inside[i], "d1");
        assert_true(in_range(&pl, &k));
        entry_key_i(&k, outside[i], "d1");
        assert_false(in_range(&pl, &k));
    }
    /* Open ends. */
    r.min.kind_case = SHARDEX__V1__VALUE__KIND__NOT_SET;
    q_range(&r);
    expect_plan(&r.r, &x.e, SX_OK, NULL, &a, &pl);
    assert_int_equal(pl.start.len, 0);
    entry_key_i(&k, INT64_MIN, "d1");
    assert_true(in_range(&pl, &k));
    set_i(&r.min, -3);
    r.max.kind_case = SHARDEX__V1__VALUE__KIND__NOT_SET;
    q_range(&r);
    expect_plan(&r.r, &x.e, SX_OK, NULL, &a, &pl);
    assert_int_equal(pl.end.len, 0);
    entry_key_i(&k, INT64_MAX, "d1");
    assert_true(in_range(&pl, &k));
    /* INT64_MAX encodes as all 0xFF: no key is past its prefix, the end is open. */
    set_i(&r.max, INT64_MAX);
    q_range(&r);
    expect_plan(&r.r, &x.e, SX_OK, NULL, &a, &pl);
    assert_int_equal(pl.end.len, 0);
    assert_true(in_range(&pl, &k));
    sx_buf_free(&k);
    sx_arena_free(&a);
}

/* -------------------------------------------------------- page tokens -- */

static void test_page_token_round_trip(void **state)
{
    (void)state;
    sx_arena a = {0};
    sx_err err = {0};
    sx_buf k = {0};
    entry_key_s(&k, "bob", "d7");
    ProtobufCBinaryData tok = sx_qplan_token(&a, 9, &(ProtobufCBinaryData){k.len, k.data});
    assert_int_equal(tok.len, 1 + 8 + k.len);
    assert_int_equal(tok.data[0], SX_QPLAN_TOKEN_VERSION);
    assert_int_equal(tok.data[8], 9); /* u64 big-endian */
    ProtobufCBinaryData last = {0};
    assert_int_equal(sx_qplan_token_read(&tok, 9, "by_name", &last, &err), SX_OK);
    assert_int_equal(last.len, k.len);
    assert_memory_equal(last.data, k.data, k.len);

    assert_int_equal(sx_qplan_token_read(&tok, 10, "by_name", &last, &err), SX_INVALID_ARGUMENT);
    assert_string_equal(err.msg,
                        "page_token: belongs to another index (or \"by_name\" was re-created)");

    /* Malformed: empty, another version, a truncated id, no key. */
    uint8_t bad[1 + 8 + 1];
    memcpy(bad, tok.data, sizeof(bad));
    size_t lens[] = {0, sizeof(bad), 5, 9};
    for (int i = 0; i < 4; i++) {
        bad[0] = i == 1 ? SX_QPLAN_TOKEN_VERSION + 1 : SX_QPLAN_TOKEN_VERSION;
        sx_err_clear(&err);
        ProtobufCBinaryData b = {lens[i], bad};
        assert_int_equal(sx_qplan_token_read(&b, 9, "by_name", &last, &err), SX_INVALID_ARGUMENT);
        assert_string_equal(err.msg, "page_token: malformed");
    }
    sx_buf_free(&k);
    sx_arena_free(&a);
}

static void test_page_token_in_plan(void **state)
{
    (void)state;
    sx_arena a = {0};
    sx_qplan pl;
    sx_buf k = {0}, next = {0};
    ix x;
    ix_init(&x, "by_name", false, true, false, SHARDEX__V1__INDEX_STATE__INDEX_STATE_READY);
    q r;
    q_init(&r, "by_name");
    set_s(&r.min, "b");
    q_range(&r);
    /* A page that ended at ("c", "d7") resumes just after it. */
    entry_key_s(&k, "c", "d7");
    r.r.page_token = sx_qplan_token(&a, 9, &(ProtobufCBinaryData){k.len, k.data});
    expect_plan(&r.r, &x.e, SX_OK, NULL, &a, &pl);
    assert_false(in_range(&pl, &k));
    sx_buf_append(&next, k.data, k.len);
    sx_buf_push(&next, 0);
    assert_true(in_range(&pl, &next));
    entry_key_s(&next, "c", "d8");
    assert_true(in_range(&pl, &next));
    /* A token before the range leaves its start. */
    entry_key_s(&k, "a", "d1");
    r.r.page_token = sx_qplan_token(&a, 9, &(ProtobufCBinaryData){k.len, k.data});
    expect_plan(&r.r, &x.e, SX_OK, NULL, &a, &pl);
    entry_key_s(&k, "b", "");
    assert_true(in_range(&pl, &k));
    /* Refusals, through the plan. */
    r.r.page_token = sx_qplan_token(&a, 8, &(ProtobufCBinaryData){k.len, k.data});
    expect_plan(&r.r, &x.e, SX_INVALID_ARGUMENT,
                "page_token: belongs to another index (or \"by_name\" was re-created)", &a, &pl);
    r.r.page_token = (ProtobufCBinaryData){3, (uint8_t *)"xyz"};
    expect_plan(&r.r, &x.e, SX_INVALID_ARGUMENT, "page_token: malformed", &a, &pl);
    /* A bad token is reported before a bad `after`. */
    q_after(&r, 0, NP);
    expect_plan(&r.r, &x.e, SX_INVALID_ARGUMENT, "page_token: malformed", &a, &pl);
    sx_buf_free(&k);
    sx_buf_free(&next);
    sx_arena_free(&a);
}

/* A partial page's token: one position per log partition; each scan starts
 * after its own, a partition never read starts at the range's start, and the
 * plan is LOCAL even in auto mode. */
static void test_positions_token(void **state)
{
    (void)state;
    sx_arena a = {0};
    sx_qplan pl;
    sx_err err = {0};
    sx_buf k1 = {0}, k3 = {0};
    ix x;
    ix_init(&x, "by_name", false, true, true, SHARDEX__V1__INDEX_STATE__INDEX_STATE_READY);
    q r;
    q_init(&r, "by_name");
    set_s(&r.min, "b");
    q_range(&r);
    entry_key_s(&k1, "c", "d7");
    entry_key_s(&k3, "e", "d2");
    ProtobufCBinaryData pos[NP] = {{0}};
    pos[1] = bin(&k1);
    pos[2] = bin(&k1);
    pos[3] = bin(&k3); /* partition 0 did not answer yet */
    r.r.page_token = sx_qplan_positions_token(&a, 9, NP, pos);
    assert_int_equal(r.r.page_token.data[0], SX_QPLAN_TOKEN_POSITIONS);
    ProtobufCBinaryData *back = NULL;
    assert_int_equal(sx_qplan_positions_read(&r.r.page_token, 9, "by_name", NP, &a, &back, &err),
                     SX_OK);
    assert_int_equal(back[0].len, 0);
    assert_memory_equal(back[3].data, k3.data, k3.len);
    expect_plan(&r.r, &x.e, SX_OK, NULL, &a, &pl); /* auto, READY and GLOBAL: still LOCAL */
    assert_false(pl.global);
    assert_int_equal(pl.n, NP);
    assert_true(pl.positional);
    ProtobufCBinaryData k1b = bin(&k1), k3b = bin(&k3);
    assert_int_equal(sx_qplan_key_cmp(&pl.reqs[0].start, &pl.start), 0); /* the range's start */
    assert_true(sx_qplan_key_cmp(&pl.reqs[1].start, &k1b) > 0);          /* just after k1 */
    assert_int_equal(pl.reqs[1].start.len, k1.len + 1);
    assert_true(sx_qplan_key_cmp(&pl.reqs[3].start, &k3b) > 0);
    /* Refusals: GLOBAL asked, another P, another index, truncated. */
    r.r.mode = SHARDEX__V1__MODE__MODE_GLOBAL;
    expect_plan(&r.r, &x.e, SX_INVALID_ARGUMENT,
                "page_token: continues a partial LOCAL answer; query LOCAL", &a, &pl);
    r.r.mode = SHARDEX__V1__MODE__MODE_LOCAL;
    r.r.page_token = sx_qplan_positions_token(&a, 9, NP - 1, pos);
    expect_plan(&r.r, &x.e, SX_INVALID_ARGUMENT,
                "page_token: made for 3 partitions, the cluster has 4", &a, &pl);
    r.r.page_token = sx_qplan_positions_token(&a, 8, NP, pos);
    expect_plan(&r.r, &x.e, SX_INVALID_ARGUMENT,
                "page_token: belongs to another index (or \"by_name\" was re-created)", &a, &pl);
    r.r.page_token = sx_qplan_positions_token(&a, 9, NP, pos);
    r.r.page_token.len -= 1;
    expect_plan(&r.r, &x.e, SX_INVALID_ARGUMENT, "page_token: malformed", &a, &pl);
    sx_buf_free(&k1);
    sx_buf_free(&k3);
    sx_arena_free(&a);
}

/* --------------------------------------------------------------- mode -- */

typedef struct mode_row {
    bool local, global;
    Shardex__V1__IndexState state;
    Shardex__V1__Mode asked;
    sx_status code;
    bool chosen_global;
    const char *msg;
} mode_row;

#define BUILDING SHARDEX__V1__INDEX_STATE__INDEX_STATE_BUILDING
#define READY SHARDEX__V1__INDEX_STATE__INDEX_STATE_READY
#define ST_UNSET SHARDEX__V1__INDEX_STATE__INDEX_STATE_UNSPECIFIED
#define AUTO SHARDEX__V1__MODE__MODE_UNSPECIFIED
#define LOCAL SHARDEX__V1__MODE__MODE_LOCAL
#define GLOBAL SHARDEX__V1__MODE__MODE_GLOBAL

static const mode_row mode_table[] = {
    /* asked explicitly: the index must be kept so, whatever its state */
    {true, false, READY, LOCAL, SX_OK, false, NULL},
    {true, true, BUILDING, LOCAL, SX_OK, false, NULL},
    {false, true, READY, LOCAL, SX_FAILED_PRECONDITION, false, "index \"ix\" is not kept LOCAL"},
    {true, false, READY, GLOBAL, SX_FAILED_PRECONDITION, false, "index \"ix\" is not kept GLOBAL"},
    {false, true, BUILDING, GLOBAL, SX_OK, true, NULL},
    {true, true, BUILDING, GLOBAL, SX_OK, true, NULL},
    /* auto: GLOBAL when kept GLOBAL and READY, or when nothing else could answer */
    {true, false, READY, AUTO, SX_OK, false, NULL},
    {true, false, BUILDING, AUTO, SX_OK, false, NULL},
    {false, true, READY, AUTO, SX_OK, true, NULL},
    {false, true, BUILDING, AUTO, SX_OK, true, NULL},
    {true, true, READY, AUTO, SX_OK, true, NULL},
    {true, true, BUILDING, AUTO, SX_OK, false, NULL},
    {true, true, ST_UNSET, AUTO, SX_OK, false, NULL},
};

static void test_mode_table(void **state)
{
    (void)state;
    sx_arena a = {0};
    for (size_t i = 0; i < sizeof(mode_table) / sizeof(mode_table[0]); i++) {
        const mode_row *row = &mode_table[i];
        ix x;
        ix_init(&x, "ix", false, row->local, row->global, row->state);
        sx_ixkey_def def;
        sx_ixkey_def_from_spec(&def, 9, &x.spec);
        sx_err err = {0};
        bool global = !row->chosen_global;
        sx_status st = sx_qplan_mode(&def, row->state, row->asked, &global, &err);
        if (st != row->code || (st == SX_OK && global != row->chosen_global))
            fail_msg("row %zu: %s global=%d", i, sx_status_name(st), global);
        if (row->msg)
            assert_string_equal(err.msg, row->msg);
        /* The same through a whole plan. */
        q r;
        q_init(&r, "ix");
        q_eq_s(&r, "v");
        r.r.mode = row->asked;
        sx_qplan pl;
        expect_plan(&r.r, &x.e, row->code, row->msg, &a, &pl);
        if (row->code == SX_OK) {
            assert_int_equal(pl.global, row->chosen_global);
            assert_int_equal(pl.auto_mode, row->asked == AUTO);
        }
    }
    sx_arena_free(&a);
}

static void test_fallback(void **state)
{
    (void)state;
    sx_arena a = {0};
    sx_qplan pl;
    ix both, gonly;
    ix_init(&both, "ix", false, true, true, READY);
    ix_init(&gonly, "ix", false, false, true, READY);
    q r;
    q_init(&r, "ix");
    q_eq_s(&r, "v");
    r.r.include_docs = true;
    q_after(&r, 1, 2);
    expect_plan(&r.r, &both.e, SX_OK, NULL, &a, &pl);
    assert_true(pl.global);
    assert_int_equal(pl.reqs[0].max_staleness_ms, SX_QPLAN_AUTO_MAX_STALENESS_MS);
    assert_false(pl.reqs[0].include_docs); /* GLOBAL reads documents after the scan */
    assert_true(sx_qplan_falls_back(&pl, SX_UNAVAILABLE));
    assert_true(sx_qplan_falls_back(&pl, SX_DEADLINE_EXCEEDED));
    assert_false(sx_qplan_falls_back(&pl, SX_NOT_FOUND));
    assert_false(sx_qplan_falls_back(&pl, SX_INVALID_ARGUMENT));
    assert_false(sx_qplan_falls_back(&pl, SX_FAILED_PRECONDITION));

    sx_qplan_go_local(&pl, &a);
    assert_false(pl.global);
    assert_int_equal(pl.n, NP);
    for (uint32_t p = 0; p < NP; p++) {
        assert_int_equal(pl.targets[p], p);
        assert_int_equal(pl.reqs[p].partition, p);
        assert_true(pl.reqs[p].include_docs);
        assert_int_equal(pl.reqs[p].max_staleness_ms, 0);
        assert_int_equal(pl.reqs[p].n_after, 2);
        assert_ptr_equal(pl.reqs[p].after, r.r.after);
        assert_int_equal(pl.reqs[p].start.len, pl.start.len);
    }
    /* Once LOCAL, nothing further to fall back to. */
    assert_false(sx_qplan_falls_back(&pl, SX_UNAVAILABLE));

    /* Asked GLOBAL, or only GLOBAL kept: no fallback, no staleness bound. */
    r.r.mode = GLOBAL;
    expect_plan(&r.r, &both.e, SX_OK, NULL, &a, &pl);
    assert_int_equal(pl.reqs[0].max_staleness_ms, 0);
    assert_false(sx_qplan_falls_back(&pl, SX_UNAVAILABLE));
    r.r.mode = AUTO;
    expect_plan(&r.r, &gonly.e, SX_OK, NULL, &a, &pl);
    assert_true(pl.global);
    assert_int_equal(pl.reqs[0].max_staleness_ms, 0);
    assert_false(sx_qplan_falls_back(&pl, SX_UNAVAILABLE));
    sx_arena_free(&a);
}

/* ------------------------------------------------------------ targets -- */

static void expect_scan(const sx_qplan *pl, size_t i, uint32_t partition,
                        Shardex__V1__ValueType type)
{
    const Shardex__Internal__V1__ScanRequest *s = &pl->reqs[i];
    assert_int_equal(pl->targets[i], partition);
    assert_int_equal(s->partition, partition);
    assert_int_equal(s->index_id, 9);
    assert_int_equal(s->type, type);
    assert_int_equal(s->partitions, NP);
    assert_int_equal(s->limit, pl->limit);
    assert_int_equal(s->epoch, 0); /* set when aimed, from the map of the moment */
    assert_int_equal(sx_qplan_key_cmp(&s->start, &pl->start), 0);
    assert_int_equal(sx_qplan_key_cmp(&s->end, &pl->end), 0);
}

static void test_targets(void **state)
{
    (void)state;
    sx_arena a = {0};
    sx_qplan pl;
    ix s, i;
    ix_init(&s, "by_tag", false, true, true, READY);
    ix_init(&i, "by_num", true, true, true, READY);
    const Shardex__V1__ValueType STR = SHARDEX__V1__VALUE_TYPE__VALUE_TYPE_STRING;
    const Shardex__V1__ValueType INT = SHARDEX__V1__VALUE_TYPE__VALUE_TYPE_INT;
    q r;
    /* GLOBAL eq: the one term partition of the value. */
    const char *vals[] = {"red", "green", "blue", "", "x"};
    for (int k = 0; k < 5; k++) {
        q_init(&r, "by_tag");
        q_eq_s(&r, vals[k]);
        r.r.mode = GLOBAL;
        expect_plan(&r.r, &s.e, SX_OK, NULL, &a, &pl);
        assert_int_equal(pl.n, 1);
        expect_scan(&pl, 0, sx_term_partition_of_str("by_tag", vals[k], strlen(vals[k]), NM), STR);
    }
    for (int64_t v = -3; v <= 3; v++) {
        q_init(&r, "by_num");
        q_eq_i(&r, v * 1000003);
        r.r.mode = GLOBAL;
        expect_plan(&r.r, &i.e, SX_OK, NULL, &a, &pl);
        assert_int_equal(pl.n, 1);
        expect_scan(&pl, 0, sx_term_partition_of_int("by_num", v * 1000003, NM), INT);
    }
    /* GLOBAL range: all NM term partitions. */
    q_init(&r, "by_num");
    set_i(&r.min, 1);
    q_range(&r);
    r.r.mode = GLOBAL;
    r.r.limit = 7;
    expect_plan(&r.r, &i.e, SX_OK, NULL, &a, &pl);
    assert_int_equal(pl.n, NM);
    for (uint32_t t = 0; t < NM; t++)
        expect_scan(&pl, t, t, INT);
    /* LOCAL, eq or range: all NP log partitions, documents from the scan when asked. */
    r.r.mode = LOCAL;
    r.r.include_docs = true;
    expect_plan(&r.r, &i.e, SX_OK, NULL, &a, &pl);
    assert_int_equal(pl.n, NP);
    for (uint32_t p = 0; p < NP; p++) {
        expect_scan(&pl, p, p, INT);
        assert_true(pl.reqs[p].include_docs);
        assert_int_equal(pl.reqs[p].limit, 7);
    }
    q_init(&r, "by_tag");
    q_eq_s(&r, "red");
    r.r.mode = LOCAL;
    expect_plan(&r.r, &s.e, SX_OK, NULL, &a, &pl);
    assert_int_equal(pl.n, NP);
    for (uint32_t p = 0; p < NP; p++) {
        expect_scan(&pl, p, p, STR);
        assert_false(pl.reqs[p].include_docs);
    }
    sx_arena_free(&a);
}

/* A range-partitioned index routes by split points: eq to the partition that
 * owns the value, a range to only the partitions it meets, in value order, and
 * a page token's next page starts in the partition of its last key. */
static void test_range_targets(void **state)
{
    (void)state;
    sx_arena a = {0};
    sx_qplan pl;
    const Shardex__V1__ValueType INT = SHARDEX__V1__VALUE_TYPE__VALUE_TYPE_INT;
    const Shardex__V1__ValueType STR = SHARDEX__V1__VALUE_TYPE__VALUE_TYPE_STRING;
    /* t0 < 0 <= t1 < 100 <= t2 < 200 <= t3 */
    Shardex__V1__Value iv[3], sv[2];
    Shardex__V1__Value *ivp[3], *svp[2];
    int64_t ipts[3] = {0, 100, 200};
    const char *spts[2] = {"g", "m"};
    for (int k = 0; k < 3; k++) {
        shardex__v1__value__init(&iv[k]);
        set_i(&iv[k], ipts[k]);
        ivp[k] = &iv[k];
    }
    for (int k = 0; k < 2; k++) {
        shardex__v1__value__init(&sv[k]);
        set_s(&sv[k], spts[k]);
        svp[k] = &sv[k];
    }
    ix i, s;
    ix_init(&i, "by_num", true, true, true, READY);
    i.spec.partitioning = SHARDEX__V1__PARTITIONING__PARTITIONING_RANGE;
    i.spec.term_partitions = 4;
    i.spec.n_split_points = 3;
    i.spec.split_points = ivp;
    ix_init(&s, "by_tag", false, true, true, READY);
    s.spec.partitioning = SHARDEX__V1__PARTITIONING__PARTITIONING_RANGE;
    s.spec.term_partitions = 3;
    s.spec.n_split_points = 2;
    s.spec.split_points = svp;
    q r;
    const struct {
        int64_t v;
        uint32_t t;
    } eqs[] = {{INT64_MIN, 0}, {-1, 0},  {0, 1},   {99, 1},
               {100, 2},       {199, 2}, {200, 3}, {INT64_MAX, 3}};
    for (size_t k = 0; k < sizeof(eqs) / sizeof(eqs[0]); k++) {
        q_init(&r, "by_num");
        q_eq_i(&r, eqs[k].v);
        r.r.mode = GLOBAL;
        expect_plan(&r.r, &i.e, SX_OK, NULL, &a, &pl);
        assert_int_equal(pl.n, 1);
        expect_scan(&pl, 0, eqs[k].t, INT);
    }
    /* Strings in key order: a prefix first ("m" < "ma"), "" first of all. */
    const struct {
        const char *v;
        uint32_t t;
    } seqs[] = {{"", 0}, {"f", 0}, {"fz", 0}, {"g", 1}, {"lzz", 1}, {"m", 2}, {"ma", 2}, {"z", 2}};
    for (size_t k = 0; k < sizeof(seqs) / sizeof(seqs[0]); k++) {
        q_init(&r, "by_tag");
        q_eq_s(&r, seqs[k].v);
        r.r.mode = GLOBAL;
        expect_plan(&r.r, &s.e, SX_OK, NULL, &a, &pl);
        assert_int_equal(pl.n, 1);
        expect_scan(&pl, 0, seqs[k].t, STR);
    }
    /* Ranges: [min, max], either end open (INT64_MIN/MAX here: unset). */
    const struct {
        bool has_min, has_max;
        int64_t min, max;
        uint32_t first, n;
    } rs[] = {
        {true, true, 10, 50, 1, 1},  {true, true, 50, 150, 1, 2}, {true, true, 0, 99, 1, 1},
        {true, true, -5, 250, 0, 4}, {false, true, 0, 99, 0, 2},  {true, false, 200, 0, 3, 1},
        {false, false, 0, 0, 0, 4},  {true, true, 150, 50, 2, 1}, /* empty: one, holding none */
    };
    for (size_t k = 0; k < sizeof(rs) / sizeof(rs[0]); k++) {
        q_init(&r, "by_num");
        if (rs[k].has_min)
            set_i(&r.min, rs[k].min);
        if (rs[k].has_max)
            set_i(&r.max, rs[k].max);
        q_range(&r);
        r.r.mode = GLOBAL;
        expect_plan(&r.r, &i.e, SX_OK, NULL, &a, &pl);
        if (pl.n != rs[k].n || pl.targets[0] != rs[k].first)
            fail_msg("range %zu: %zu targets from %u, expected %u from %u", k, pl.n, pl.targets[0],
                     rs[k].n, rs[k].first);
        for (uint32_t t = 0; t < rs[k].n; t++)
            expect_scan(&pl, t, rs[k].first + t, INT);
    }
    /* The next page of [-5, 250] after (150, "x"): partitions 2 and 3 only. */
    q_init(&r, "by_num");
    set_i(&r.min, -5);
    set_i(&r.max, 250);
    q_range(&r);
    r.r.mode = GLOBAL;
    sx_buf k = {0};
    entry_key_i(&k, 150, "x");
    r.r.page_token = sx_qplan_token(&a, 9, &(ProtobufCBinaryData){k.len, k.data});
    expect_plan(&r.r, &i.e, SX_OK, NULL, &a, &pl);
    assert_int_equal(pl.n, 2);
    expect_scan(&pl, 0, 2, INT);
    expect_scan(&pl, 1, 3, INT);
    sx_buf_free(&k);
    /* LOCAL ignores the partitioning: every log partition. */
    r.r.mode = LOCAL;
    expect_plan(&r.r, &i.e, SX_OK, NULL, &a, &pl);
    assert_int_equal(pl.n, NP);
    sx_arena_free(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_refusals),
        cmocka_unit_test(test_type_refusals),
        cmocka_unit_test(test_after_refusals),
        cmocka_unit_test(test_map_refusals),
        cmocka_unit_test(test_ranges_string),
        cmocka_unit_test(test_ranges_int),
        cmocka_unit_test(test_page_token_round_trip),
        cmocka_unit_test(test_page_token_in_plan),
        cmocka_unit_test(test_positions_token),
        cmocka_unit_test(test_mode_table),
        cmocka_unit_test(test_fallback),
        cmocka_unit_test(test_targets),
        cmocka_unit_test(test_range_targets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
