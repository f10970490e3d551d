/* test_chaos_judge.c: the chaos workload's history lines and checkers
 * (wl_history.h, wl_judge.h) without a cluster: a history written as text,
 * documents and query answers made up, and each violation kind provoked. */
#include "wl_history.h"
#include "wl_judge.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* One writer, run t, keys t-k1 (put ok, overwrite ok, overwrite unknown, overwrite
 * fail), t-k2 (put ok, delete ok), t-k3 (put unknown only), t-k4 (bad, refused). */
static const char *const lines[] = {
    "# sx_chaos_workload history 1 run=t seed=7 writers=1 keys=4 groups=4 index=ix t0=100",
    "0 1 put t-k1 v1 100 101 ok 3:10 OK -",
    "0 2 overwrite t-k1 v2 102 103 ok 3:11 OK -",
    "0 3 overwrite t-k1 v3 104 900 unknown - DEADLINE_EXCEEDED Put via a:1: deadline",
    "0 4 overwrite t-k1 v4 901 902 fail - UNAVAILABLE Put via a:1: failed to connect to all "
    "addresses",
    "0 5 put t-k2 v5 903 904 ok 5:1 OK -",
    "0 6 delete t-k2 - 905 906 ok 5:2 OK -",
    "0 7 put t-k3 v7 907 3000 unknown - UNAVAILABLE x; 1 of 1 documents may not have been written",
    "0 8 bad t-k4 v8 3001 3002 fail - INVALID_ARGUMENT docs[0]: empty name",
    "# end t1=5000",
};

static void load(sx_history *h)
{
    memset(h, 0, sizeof(*h));
    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
        char buf[256];
        snprintf(buf, sizeof(buf), "%s", lines[i]);
        sx_err err = {0};
        assert_int_equal(sx_hist_parse_line(h, buf, &err), SX_OK);
    }
}

/* Records a Get of key k: found with v (and the right g), or not found. */
static void read_doc(sx_judge *j, const sx_history *h, const char *k, const char *v)
{
    size_t i = 0;
    while (strcmp(sx_judge_key(j, i), k) != 0)
        i++;
    Shardex__V1__GetResponse r = SHARDEX__V1__GET_RESPONSE__INIT;
    Shardex__V1__Document *d = NULL;
    if (v) {
        char g[32];
        d = sx_doc_new(k);
        sx_doc_add_str(d, "v", v);
        sx_doc_add_str(d, "g", sx_hist_group(v, h->groups, g, sizeof(g)));
        r.found = true;
        r.doc = d;
    }
    sx_judge_doc(j, i, &r);
    sx_doc_free(d);
}

static void test_history_lines(void **state)
{
    (void)state;
    sx_history h;
    load(&h);
    assert_string_equal(h.run, "t");
    assert_int_equal(h.seed, 7);
    assert_int_equal(h.t1_ms, 5000);
    assert_int_equal(h.n, 8);
    assert_int_equal(h.ops[1].kind, SX_HIST_OVERWRITE);
    assert_int_equal(h.ops[1].offset, 11);
    assert_null(h.ops[5].value);
    assert_string_equal(h.ops[2].msg, "Put via a:1: deadline");
    char line[256];
    sx_hist_format(&h.ops[6], line, sizeof(line));
    char want[256];
    snprintf(want, sizeof(want), "%s\n", lines[7]);
    assert_string_equal(line, want);
    sx_err err = {0};
    char bad[] = "0 9 put t-k1 v9 1 2 ok - OK -"; /* ok without a token */
    assert_int_equal(sx_hist_parse_line(&h, bad, &err), SX_INVALID_ARGUMENT);
    sx_hist_free(&h);
}

/* Final states: allowed ones pass, the others are A or U. */
static void test_final_states(void **state)
{
    (void)state;
    static const struct {
        const char *k1, *k2, *k3;
        char kind; /* expected violation on t-k1/t-k2/t-k3, or 0 */
    } cases[] = {
        {"v2", NULL, NULL, 0},    /* last ok states */
        {"v3", NULL, "v7", 0},    /* later unknown ones */
        {"v1", NULL, NULL, 'A'},  /* an overwritten value: the ok write of v2 lost */
        {"v4", NULL, NULL, 'A'},  /* a failed write applied */
        {NULL, NULL, NULL, 'A'},  /* t-k1 gone */
        {"v2", "v5", NULL, 'A'},  /* the ok delete of t-k2 lost */
        {"v2", NULL, "zzz", 'U'}, /* never written */
        {"v2", NULL, "v5", 'U'},  /* written to another key */
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        sx_history h;
        load(&h);
        sx_judge *j = sx_judge_create(&h);
        assert_int_equal(sx_judge_nkeys(j), 4);
        read_doc(j, &h, "t-k1", cases[c].k1);
        read_doc(j, &h, "t-k2", cases[c].k2);
        read_doc(j, &h, "t-k3", cases[c].k3);
        read_doc(j, &h, "t-k4", NULL);
        sx_judge_check_docs(j);
        size_t a = sx_judge_count(j, SX_JUDGE_A), u = sx_judge_count(j, SX_JUDGE_U);
        if (a + u != (cases[c].kind ? 1u : 0u) || (cases[c].kind == 'U') != (u == 1))
            fail_msg("case %zu: A=%zu U=%zu, want %c", c, a, u,
                     cases[c].kind ? cases[c].kind : '-');
        assert_int_equal(sx_judge_exit_code(j), cases[c].kind ? 1 : 0);
        sx_judge_free(j);
        sx_hist_free(&h);
    }
}

static void hits_of(sx_judge_hits *hits, const char *const *ids, const char *value)
{
    for (size_t i = 0; ids[i]; i++)
        sx_judge_hits_add(hits, ids[i], value);
}

/* Queries: exact answers pass; missing, extra, duplicate hits and another
 * mode are L, G and D. */
static void test_queries(void **state)
{
    (void)state;
    sx_history h;
    load(&h);
    sx_judge *j = sx_judge_create(&h);
    read_doc(j, &h, "t-k1", "v2");
    read_doc(j, &h, "t-k2", NULL);
    read_doc(j, &h, "t-k3", "v7");
    read_doc(j, &h, "t-k4", NULL);
    sx_judge_check_docs(j);
    sx_judge_query *q = NULL;
    size_t n = sx_judge_queries(j, 100, &q);
    /* v2, v7 (current), v1 v3 v4 v5 v8 (older), g0..g3 */
    assert_int_equal(n, 2 + 5 + 4);
    assert_string_equal(q[0].index, "ix_v");
    assert_string_equal(q[0].value, "v2");
    assert_string_equal(q[n - 1].index, "ix_g");
    const Shardex__V1__Mode L = SHARDEX__V1__MODE__MODE_LOCAL, G = SHARDEX__V1__MODE__MODE_GLOBAL;
    sx_judge_hits good = {0}, dup = {0}, stale = {0}, none = {0}, other = {0};
    hits_of(&good, (const char *[]){"t-k1", NULL}, "v2");
    hits_of(&dup, (const char *[]){"t-k1", "t-k1", NULL}, "v2");
    hits_of(&stale, (const char *[]){"t-k1", NULL}, "v1");
    sx_judge_query_result(j, &q[0], L, L, &good);
    sx_judge_query_result(j, &q[0], G, G, &good);
    assert_int_equal(sx_judge_exit_code(j), 0);
    sx_judge_query_result(j, &q[0], G, G, &dup);
    assert_int_equal(sx_judge_count(j, SX_JUDGE_D), 1);
    sx_judge_query_result(j, &q[0], L, L, &none); /* t-k1 missing */
    assert_int_equal(sx_judge_count(j, SX_JUDGE_L), 1);
    sx_judge_query old = q[0];
    old.value = "v1";
    sx_judge_query_result(j, &old, G, G, &stale); /* a stale entry */
    assert_int_equal(sx_judge_count(j, SX_JUDGE_G), 1);
    sx_judge_query_result(j, &q[0], L, G, &good); /* served in another mode */
    assert_int_equal(sx_judge_count(j, SX_JUDGE_L), 2);
    hits_of(&other, (const char *[]){"t-k1", "u-k9", NULL}, "v2"); /* another run's: ignored */
    sx_judge_query_result(j, &q[0], G, G, &other);
    assert_int_equal(sx_judge_count(j, SX_JUDGE_U), 0);
    hits_of(&other, (const char *[]){"t-k9", NULL}, "v2"); /* this run's, never written */
    sx_judge_query_result(j, &q[0], G, G, &other);
    assert_int_equal(sx_judge_count(j, SX_JUDGE_U), 1);
    assert_int_equal(sx_judge_exit_code(j), 1);
    sx_judge_hits_free(&good);
    sx_judge_hits_free(&dup);
    sx_judge_hits_free(&stale);
    sx_judge_hits_free(&other);
    free(q);
    sx_judge_free(j);
    sx_hist_free(&h);
}

/* E alone (could not check) gives exit 3; the table and availability print. */
static void test_report(void **state)
{
    (void)state;
    sx_history h;
    load(&h);
    sx_judge *j = sx_judge_create(&h);
    sx_judge_add(j, SX_JUDGE_E, "t-k1", "Get: %s", "deadline");
    assert_int_equal(sx_judge_exit_code(j), 3);
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    sx_judge_print(j, 0, out);
    sx_judge_print_availability(&h, 6, out);
    fclose(out);
    assert_non_null(strstr(buf, "E    t-k1"));
    assert_non_null(strstr(buf, "E=1 total=1"));
    /* writer 0: 8 ops, 4 ok, 2 fail, 2 unknown; longest gap: 906 -> end 5000 */
    assert_non_null(strstr(buf, "     8      4      2        2     50.0%           4094"));
    /* partition 3: acks at 101 and 103, then nothing to 5000; partition 0:
     * none from 100 to 5000; anywhere: acks at 101, 103, 904, 906 */
    char line[64];
    snprintf(line, sizeof(line), "%-9u %14u\n", 3u, 4897u);
    assert_non_null(strstr(buf, line));
    assert_non_null(
        strstr(buf, "availability: writer-gap-ms=4094 partition-gap-ms=4900 cluster-gap-ms=4094"));
    free(buf);
    sx_judge_free(j);
    sx_hist_free(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_history_lines),
        cmocka_unit_test(test_final_states),
        cmocka_unit_test(test_queries),
        cmocka_unit_test(test_report),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
