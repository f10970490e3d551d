/* test_client_lib.c: libshardex (libshardex/shardex.h) against real processes
 * (coordinator + 3 workers, P=8, R=3, min_isr=2, lease 1000 ms), through a
 * client given a dead address first and then the three workers:
 *  - Put, Get (with `after`), Delete round trip; a bad document refused with
 *    the server's message; a client of dead addresses only names them;
 *  - an index created, READY, queried LOCAL and GLOBAL with the Put tokens;
 *  - ClusterStatus;
 *  - the bulk writer: 5000 documents in batches of 200, 4 in flight, every
 *    token reported, then seen by queries; order per id across batches; a
 *    bad document stops it with the server's message;
 *  - retry rules, with the rpc fault layer: a Put whose reply is lost is not
 *    sent again, one never sent is; reads are retried; dead servers skipped;
 *  - a worker killed: the client still answers through the others.
 * The tests share one cluster and run in order (the last kills a worker).
 */
#include "checker.h"
#include "clock.h"
#include "cluster.h"
#include "fixture.h"
#include "harness.h"
#include "shardex.h"

#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define WAIT_MS 30000
#define P 8
#define DEAD_ADDR "127.0.0.1:1" /* nothing listens on port 1 */
#define NBULK 5000

typedef struct fx {
    sx_cluster *c;
    sx_client *cl;
    sx_token_set tokens; /* every acknowledged write so far */
} fx;

static int setup(void **state)
{
    sx_cluster_opts o = {.workers = 3, .partitions = P};
    fx *f = SX_FX_STATE_NEW(fx, &o, WAIT_MS);
    if (!f)
        return -1;
    sx_cluster *c = f->c;
    const char *servers[4] = {DEAD_ADDR, c->worker_addr[0], c->worker_addr[1], c->worker_addr[2]};
    sx_client_opts co = {.servers = servers, .nservers = 4};
    sx_err err = {0};
    if (sx_client_open(&co, &f->cl, &err) != SX_OK) {
        fprintf(stderr, "sx_client_open: %s\n", err.msg);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    sx_client_close(f->cl);
    sx_token_set_free(&f->tokens);
    sx_fx_cluster_end(f->c);
    free(f);
    return 0;
}

#define CHECK_OK(f, call, err)                                                                     \
    do {                                                                                           \
        sx_status st_ = (call);                                                                    \
        if (st_ != SX_OK)                                                                          \
            SX_FX_FAIL((f)->c, "%s: %s: %s", #call, sx_status_name(st_), (err).msg);               \
    } while (0)

static const char *str_of(const Shardex__V1__Document *d, const char *name)
{
    const Shardex__V1__Value *v = sx_doc_field(d, name);
    return v && v->kind_case == SHARDEX__V1__VALUE__KIND_S ? v->s : "";
}

/* ------------------------------------------------------------------ tests -- */

static void test_put_get_delete(void **state)
{
    fx *f = *state;
    enum { N = 24 };
    Shardex__V1__Document *docs[N];
    for (int i = 0; i < N; i++) {
        char id[32], text[32];
        snprintf(id, sizeof(id), "rt-%d", i);
        snprintf(text, sizeof(text), "text of %d", i);
        docs[i] = sx_doc_new(id);
        sx_doc_add_str(docs[i], "text", text);
        sx_doc_add_int(docs[i], "n", i);
    }
    sx_err err = {0};
    Shardex__V1__WriteToken tok[N];
    /* One request, then one request per document: calls start at every
     * server of the rotation, the dead one included. */
    CHECK_OK(f, sx_client_put(f->cl, docs, N, tok, &err), err);
    for (int i = 0; i < N; i++) {
        CHECK_OK(f, sx_client_put(f->cl, &docs[i], 1, &tok[i], &err), err);
        assert_true(tok[i].partition < P);
        sx_token_set_add(&f->tokens, &tok[i]);
    }
    for (int i = 0; i < N; i++) {
        Shardex__V1__GetResponse *g = NULL;
        Shardex__V1__WriteToken *after = &tok[i];
        CHECK_OK(f, sx_client_get(f->cl, docs[i]->id, &after, 1, &g, &err), err);
        assert_true(g->found);
        assert_string_equal(str_of(g->doc, "text"), str_of(docs[i], "text"));
        assert_int_equal(g->version->partition, tok[i].partition);
        assert_int_equal(g->version->offset, tok[i].offset);
        sx_client_free(g);
    }
    /* Delete some; with their tokens they are gone, the others stay. */
    const char *ids[5];
    for (int i = 0; i < 5; i++)
        ids[i] = docs[i]->id;
    Shardex__V1__WriteToken dtok[5];
    CHECK_OK(f, sx_client_delete(f->cl, ids, 5, dtok, &err), err);
    for (int i = 0; i < 5; i++)
        sx_token_set_add(&f->tokens, &dtok[i]);
    for (int i = 0; i < N; i++) {
        Shardex__V1__GetResponse *g = NULL;
        CHECK_OK(f, sx_client_get(f->cl, docs[i]->id, f->tokens.ptrs, f->tokens.n, &g, &err), err);
        assert_int_equal(g->found, i >= 5);
        sx_client_free(g);
    }
    /* Not found is not an error. */
    Shardex__V1__GetResponse *g = NULL;
    CHECK_OK(f, sx_client_get(f->cl, "no-such-id", NULL, 0, &g, &err), err);
    assert_false(g->found);
    sx_client_free(g);
    for (int i = 0; i < N; i++)
        sx_doc_free(docs[i]);
}

static void test_bad_document(void **state)
{
    fx *f = *state;
    Shardex__V1__Document *docs[2] = {sx_doc_new("fine"), sx_doc_new("")};
    sx_doc_add_str(docs[0], "text", "ok");
    sx_err err = {0};
    sx_status st = sx_client_put(f->cl, docs, 2, NULL, &err);
    assert_int_equal(st, SX_INVALID_ARGUMENT);
    assert_int_equal(err.code, SX_INVALID_ARGUMENT);
    fprintf(stderr, "  bad document: %s\n", err.msg);
    assert_non_null(strstr(err.msg, "docs[1]: id is empty"));
    assert_non_null(strstr(err.msg, "256"));
    assert_non_null(strstr(err.msg, "Put via 127.0.0.1:")); /* the server that said so */
    assert_null(strstr(err.msg, DEAD_ADDR ":"));            /* not the dead one */
    /* Nothing of the request was written. */
    Shardex__V1__GetResponse *g = NULL;
    CHECK_OK(f, sx_client_get(f->cl, "fine", NULL, 0, &g, &err), err);
    assert_false(g->found);
    sx_client_free(g);
    sx_doc_free(docs[0]);
    sx_doc_free(docs[1]);

    /* A client of dead addresses only: UNAVAILABLE naming one, by the deadline. */
    const char *dead[2] = {DEAD_ADDR, "127.0.0.1:2"};
    sx_client_opts co = {.servers = dead, .nservers = 2, .timeout_ms = 600};
    sx_client *cl = NULL;
    assert_int_equal(sx_client_open(&co, &cl, &err), SX_OK);
    Shardex__V1__Document *d = sx_doc_new("x");
    st = sx_client_put(cl, &d, 1, NULL, &err);
    assert_int_equal(st, SX_UNAVAILABLE);
    fprintf(stderr, "  dead servers: %s\n", err.msg);
    assert_non_null(strstr(err.msg, "Put via 127.0.0.1:"));
    assert_non_null(strstr(err.msg, "attempt"));
    Shardex__V1__ListIndexesResponse *l = NULL;
    assert_int_equal(sx_client_list_indexes(cl, &l, &err), SX_UNAVAILABLE);
    assert_null(l);
    sx_doc_free(d);
    sx_client_close(cl);

    /* Options are checked. */
    sx_client_opts none = {0};
    assert_int_equal(sx_client_open(&none, &cl, &err), SX_INVALID_ARGUMENT);
    assert_null(cl);
}

/* Polls ListIndexes until `name` is READY. */
static bool wait_ready(fx *f, const char *name, uint64_t timeout_ms)
{
    uint64_t end = sx_clock_now_ms() + timeout_ms;
    do {
        Shardex__V1__ListIndexesResponse *l = NULL;
        sx_err err = {0};
        bool ready = false;
        if (sx_client_list_indexes(f->cl, &l, &err) == SX_OK) {
            for (size_t i = 0; i < l->n_indexes; i++)
                if (strcmp(l->indexes[i]->spec->name, name) == 0)
                    ready = l->indexes[i]->state == SHARDEX__V1__INDEX_STATE__INDEX_STATE_READY;
        }
        sx_client_free(l);
        if (ready)
            return true;
        sx_clock_sleep_ms(50);
    } while (sx_clock_now_ms() < end);
    return false;
}

/* Every hit of an equality query on "color" (one page of up to 10000). */
static Shardex__V1__QueryResponse *query_color(fx *f, const char *color, Shardex__V1__Mode mode,
                                               const sx_token_set *after)
{
    Shardex__V1__Value v = SHARDEX__V1__VALUE__INIT;
    v.kind_case = SHARDEX__V1__VALUE__KIND_S;
    v.s = (char *)color;
    Shardex__V1__QueryRequest q = SHARDEX__V1__QUERY_REQUEST__INIT;
    q.index = "color";
    q.match_case = SHARDEX__V1__QUERY_REQUEST__MATCH_EQ;
    q.eq = &v;
    q.mode = mode;
    q.limit = 10000;
    if (after) {
        q.after = after->ptrs;
        q.n_after = after->n;
    }
    Shardex__V1__QueryResponse *r = NULL;
    sx_err err = {0};
    CHECK_OK(f, sx_client_query(f->cl, &q, &r, &err), err);
    assert_int_equal(r->mode, mode);
    assert_int_equal(r->next_page_token.len, 0);
    return r;
}

static void test_index_and_query(void **state)
{
    fx *f = *state;
    Shardex__V1__IndexSpec spec = SHARDEX__V1__INDEX_SPEC__INIT;
    spec.name = "color";
    spec.field = "color";
    spec.type = SHARDEX__V1__VALUE_TYPE__VALUE_TYPE_STRING;
    spec.local = true;
    spec.global = true;
    sx_err err = {0};
    Shardex__V1__CreateIndexResponse *cr = NULL;
    CHECK_OK(f, sx_client_create_index(f->cl, &spec, &cr, &err), err);
    assert_string_equal(cr->index->spec->name, "color");
    sx_client_free(cr);
    /* The same name again: the coordinator's message comes back. */
    assert_int_equal(sx_client_create_index(f->cl, &spec, NULL, &err), SX_ALREADY_EXISTS);
    assert_non_null(strstr(err.msg, "already exists"));
    if (!wait_ready(f, "color", WAIT_MS))
        SX_FX_FAIL(f->c, "index color never became READY");

    enum { N = 30 };
    static const char *const colors[] = {"red", "green", "blue"};
    Shardex__V1__Document *docs[N];
    for (int i = 0; i < N; i++) {
        char id[32];
        snprintf(id, sizeof(id), "c-%02d", i);
        docs[i] = sx_doc_new(id);
        sx_doc_add_str(docs[i], "color", colors[i % 3]);
    }
    Shardex__V1__WriteToken tok[N];
    CHECK_OK(f, sx_client_put(f->cl, docs, N, tok, &err), err);
    sx_token_set after = {0};
    for (int i = 0; i < N; i++) {
        sx_token_set_add(&after, &tok[i]);
        sx_token_set_add(&f->tokens, &tok[i]);
    }
    assert_true(after.n <= P);
    for (size_t k = 1; k < after.n; k++)
        assert_true(after.ptrs[k - 1]->partition < after.ptrs[k]->partition);

    Shardex__V1__Mode modes[2] = {SHARDEX__V1__MODE__MODE_LOCAL, SHARDEX__V1__MODE__MODE_GLOBAL};
    for (int m = 0; m < 2; m++) {
        Shardex__V1__QueryResponse *r = query_color(f, "red", modes[m], &after);
        assert_int_equal(r->n_hits, N / 3);
        for (size_t i = 0; i < r->n_hits; i++) {
            char want[32];
            snprintf(want, sizeof(want), "c-%02zu", 3 * i); /* (value, id) order */
            assert_string_equal(r->hits[i]->id, want);
            assert_string_equal(r->hits[i]->value->s, "red");
        }
        if (modes[m] == SHARDEX__V1__MODE__MODE_LOCAL)
            assert_int_equal(r->partitions_contacted, P);
        else
            assert_int_equal(r->partitions_contacted, 1);
        sx_client_free(r);
    }
    /* An unknown index: NOT_FOUND with the server's message. */
    Shardex__V1__QueryRequest q = SHARDEX__V1__QUERY_REQUEST__INIT;
    Shardex__V1__Value v = SHARDEX__V1__VALUE__INIT;
    v.kind_case = SHARDEX__V1__VALUE__KIND_S;
    v.s = "x";
    q.index = "nope";
    q.match_case = SHARDEX__V1__QUERY_REQUEST__MATCH_EQ;
    q.eq = &v;
    Shardex__V1__QueryResponse *r = NULL;
    assert_int_equal(sx_client_query(f->cl, &q, &r, &err), SX_NOT_FOUND);
    assert_non_null(strstr(err.msg, "\"nope\""));
    assert_null(r);
    sx_token_set_free(&after);
    for (int i = 0; i < N; i++)
        sx_doc_free(docs[i]);
}

static void test_status(void **state)
{
    fx *f = *state;
    sx_err err = {0};
    Shardex__V1__ClusterStatusResponse *s = NULL;
    CHECK_OK(f, sx_client_status(f->cl, &s, &err), err);
    assert_int_equal(s->partitions, P);
    assert_int_equal(s->n_workers, 3);
    for (size_t i = 0; i < s->n_workers; i++)
        assert_true(s->workers[i]->alive);
    assert_int_equal(s->n_log_partitions, P);
    sx_client_free(s);
}

typedef struct bulk_seen {
    size_t batches, tokens, failed;
    size_t max_batch;
    sx_token_set after;
    char first_err[SX_ERR_MSG_MAX];
} bulk_seen;

static void on_batch(void *arg, const sx_bulk_result *r)
{
    bulk_seen *s = arg;
    s->batches++;
    if (r->n > s->max_batch)
        s->max_batch = r->n;
    if (r->status != SX_OK) {
        if (!s->failed++)
            snprintf(s->first_err, sizeof(s->first_err), "%s", r->err->msg);
        return;
    }
    for (size_t i = 0; i < r->n; i++) {
        assert_non_null(r->ids[i]);
        sx_token_set_add(&s->after, &r->tokens[i]);
        s->tokens++;
    }
}

static void test_bulk(void **state)
{
    fx *f = *state;
    bulk_seen seen = {0};
    sx_bulk_opts bo = {.batch_docs = 200, .max_inflight = 4, .done = on_batch, .arg = &seen};
    sx_bulk *b = NULL;
    sx_err err = {0};
    CHECK_OK(f, sx_bulk_open(f->cl, &bo, &b, &err), err);
    uint64_t t0 = sx_clock_now_ms();
    for (int i = 0; i < NBULK; i++) {
        char id[32];
        snprintf(id, sizeof(id), "bulk-%05d", i);
        Shardex__V1__Document *d = sx_doc_new(id);
        sx_doc_add_str(d, "color", "bulk");
        sx_doc_add_int(d, "n", i);
        CHECK_OK(f, sx_bulk_put(b, d, &err), err);
        sx_doc_free(d); /* the bulk copied it */
    }
    CHECK_OK(f, sx_bulk_close(b, &err), err);
    fprintf(stderr, "  bulk: %d documents in %" PRIu64 " ms, %zu batches\n", NBULK,
            sx_clock_now_ms() - t0, seen.batches);
    if (seen.failed)
        SX_FX_FAIL(f->c, "%zu batches failed, first: %s", seen.failed, seen.first_err);
    assert_int_equal(seen.tokens, NBULK);
    assert_int_equal(seen.batches, NBULK / 200);
    assert_int_equal(seen.max_batch, 200);

    Shardex__V1__Mode modes[2] = {SHARDEX__V1__MODE__MODE_LOCAL, SHARDEX__V1__MODE__MODE_GLOBAL};
    for (int m = 0; m < 2; m++) {
        Shardex__V1__QueryResponse *r = query_color(f, "bulk", modes[m], &seen.after);
        assert_int_equal(r->n_hits, NBULK);
        for (size_t i = 0; i < r->n_hits; i++) {
            char want[32];
            snprintf(want, sizeof(want), "bulk-%05zu", i);
            assert_string_equal(r->hits[i]->id, want);
        }
        sx_client_free(r);
    }
    for (size_t k = 0; k < seen.after.n; k++)
        sx_token_set_add(&f->tokens, seen.after.ptrs[k]);
    sx_token_set_free(&seen.after);
}

/* Put, delete, put again of the same ids in one bulk: operations on an id are
 * applied in the order added, even with several batches in flight. */
static void test_bulk_order_per_id(void **state)
{
    fx *f = *state;
    bulk_seen seen = {0};
    sx_bulk_opts bo = {.batch_docs = 7, .max_inflight = 4, .done = on_batch, .arg = &seen};
    sx_bulk *b = NULL;
    sx_err err = {0};
    CHECK_OK(f, sx_bulk_open(f->cl, &bo, &b, &err), err);
    enum { IDS = 10, ROUNDS = 6 };
    for (int r = 0; r < ROUNDS; r++) {
        for (int i = 0; i < IDS; i++) {
            char id[32], text[32];
            snprintf(id, sizeof(id), "ord-%d", i);
            if (r % 3 == 1 && i % 2 == 0) {
                CHECK_OK(f, sx_bulk_delete(b, id, &err), err);
                continue;
            }
            snprintf(text, sizeof(text), "round %d", r);
            Shardex__V1__Document *d = sx_doc_new(id);
            sx_doc_add_str(d, "text", text);
            CHECK_OK(f, sx_bulk_put(b, d, &err), err);
            sx_doc_free(d);
        }
    }
    CHECK_OK(f, sx_bulk_close(b, &err), err);
    assert_int_equal(seen.failed, 0);
    for (int i = 0; i < IDS; i++) {
        char id[32];
        snprintf(id, sizeof(id), "ord-%d", i);
        Shardex__V1__GetResponse *g = NULL;
        CHECK_OK(f, sx_client_get(f->cl, id, seen.after.ptrs, seen.after.n, &g, &err), err);
        assert_true(g->found);
        assert_string_equal(str_of(g->doc, "text"), "round 5");
        sx_client_free(g);
    }
    sx_token_set_free(&seen.after);

    /* A bad document stops the bulk: its batch fails with the server's
     * message, later puts are refused, close gives the first error. */
    seen = (bulk_seen){0};
    bo.batch_docs = 2;
    bo.max_inflight = 1;
    CHECK_OK(f, sx_bulk_open(f->cl, &bo, &b, &err), err);
    Shardex__V1__Document *good = sx_doc_new("bulk-good");
    Shardex__V1__Document *bad = sx_doc_new("");
    CHECK_OK(f, sx_bulk_put(b, good, &err), err);
    CHECK_OK(f, sx_bulk_put(b, bad, &err), err); /* fills the batch: sent */
    sx_status st = SX_OK;
    for (int i = 0; i < 100 && st == SX_OK; i++) /* the answer comes while more are added */
        st = sx_bulk_put(b, good, &err);
    assert_int_equal(st, SX_INVALID_ARGUMENT);
    assert_non_null(strstr(err.msg, "docs[1]: id is empty"));
    assert_int_equal(sx_bulk_close(b, &err), SX_INVALID_ARGUMENT);
    assert_non_null(strstr(err.msg, "docs[1]: id is empty"));
    assert_int_equal(seen.failed, seen.batches);
    assert_true(seen.batches >= 1);
    sx_doc_free(good);
    sx_doc_free(bad);
}

/* A client of the live workers with the rpc fault rules `faults` (rpc.h
 * syntax; the rpc layer reads SHARDEX_FAULTS when a client is created). */
static sx_client *faulty_client(fx *f, const char *faults, uint64_t timeout_ms,
                                uint64_t attempt_timeout_ms)
{
    const char *servers[3] = {f->c->worker_addr[0], f->c->worker_addr[1], f->c->worker_addr[2]};
    sx_client_opts co = {.servers = servers,
                         .nservers = 3,
                         .timeout_ms = timeout_ms,
                         .attempt_timeout_ms = attempt_timeout_ms};
    sx_client *cl = NULL;
    sx_err err = {0};
    setenv("SHARDEX_FAULTS", faults, 1);
    sx_status st = sx_client_open(&co, &cl, &err);
    unsetenv("SHARDEX_FAULTS");
    CHECK_OK(f, st, err);
    return cl;
}

/* Which failures are retried: writes only when nothing was sent, reads on
 * any transient failure, and a dead first server is skipped. */
static void test_retry_rules(void **state)
{
    fx *f = *state;
    sx_err err = {0};

    /* A Put whose reply is lost was written: it is not sent again. */
    sx_client *cl = faulty_client(f, "method=Put,drop_reply=1", 1500, 0);
    Shardex__V1__Document *d = sx_doc_new("lost-reply");
    sx_doc_add_str(d, "text", "once");
    sx_status st = sx_client_put(cl, &d, 1, NULL, &err);
    assert_int_equal(st, SX_DEADLINE_EXCEEDED);
    fprintf(stderr, "  lost reply: %s\n", err.msg);
    assert_null(strstr(err.msg, "(attempt"));
    Shardex__V1__GetResponse *g = NULL;
    CHECK_OK(f, sx_client_get(f->cl, "lost-reply", NULL, 0, &g, &err), err);
    assert_true(g->found);
    sx_client_free(g);
    sx_client_close(cl);

    /* A Put failed before it was sent is sent again, until the deadline. */
    cl = faulty_client(f, "method=Put,fail=1", 400, 0);
    st = sx_client_put(cl, &d, 1, NULL, &err);
    assert_int_equal(st, SX_UNAVAILABLE);
    fprintf(stderr, "  never sent: %s\n", err.msg);
    assert_non_null(strstr(err.msg, "(attempt"));
    sx_client_close(cl);

    /* Reads whose replies are lost half the time get through, on other
     * attempts (each cut short by attempt_timeout_ms). */
    cl = faulty_client(f, "seed=11;method=Get,drop_reply=0.5", 8000, 200);
    for (int i = 0; i < 10; i++) {
        CHECK_OK(f, sx_client_get(cl, "lost-reply", NULL, 0, &g, &err), err);
        assert_true(g->found);
        sx_client_free(g);
    }
    sx_client_close(cl);

    /* Two dead servers and a live one, fresh clients (no server known down,
     * a random start): every write goes through on the live one. */
    for (int i = 0; i < 8; i++) {
        const char *servers[3] = {DEAD_ADDR, "127.0.0.1:2", f->c->worker_addr[i % 3]};
        sx_client_opts co = {.servers = servers, .nservers = 3, .max_attempts = 3};
        CHECK_OK(f, sx_client_open(&co, &cl, &err), err);
        Shardex__V1__WriteToken tok;
        CHECK_OK(f, sx_client_put(cl, &d, 1, &tok, &err), err);
        sx_token_set_add(&f->tokens, &tok);
        sx_client_close(cl);
    }
    sx_doc_free(d);
}

static void test_kill_worker(void **state)
{
    fx *f = *state;
    sx_cluster_kill_worker(f->c, 0);
    sx_err err = {0};
    uint64_t t0 = sx_clock_now_ms();
    /* Reads first: they may meet the dead worker's connection going down. */
    for (int i = 0; i < 4; i++) {
        Shardex__V1__ClusterStatusResponse *s = NULL;
        CHECK_OK(f, sx_client_status(f->cl, &s, &err), err);
        assert_int_equal(s->n_workers, 3);
        sx_client_free(s);
    }
    for (int i = 5; i < 24; i++) {
        char id[32];
        snprintf(id, sizeof(id), "rt-%d", i);
        Shardex__V1__GetResponse *g = NULL;
        CHECK_OK(f, sx_client_get(f->cl, id, f->tokens.ptrs, f->tokens.n, &g, &err), err);
        assert_true(g->found);
        sx_client_free(g);
    }
    Shardex__V1__QueryResponse *r =
        query_color(f, "bulk", SHARDEX__V1__MODE__MODE_LOCAL, &f->tokens);
    assert_int_equal(r->n_hits, NBULK);
    sx_client_free(r);
    /* Writes go on through the others (partitions the dead worker led move). */
    Shardex__V1__Document *d = sx_doc_new("after-kill");
    sx_doc_add_str(d, "color", "late");
    Shardex__V1__WriteToken tok;
    CHECK_OK(f, sx_client_put(f->cl, &d, 1, &tok, &err), err);
    Shardex__V1__GetResponse *g = NULL;
    Shardex__V1__WriteToken *after = &tok;
    CHECK_OK(f, sx_client_get(f->cl, "after-kill", &after, 1, &g, &err), err);
    assert_true(g->found);
    assert_string_equal(str_of(g->doc, "color"), "late");
    sx_client_free(g);
    sx_doc_free(d);
    fprintf(stderr, "  after the kill: answered in %" PRIu64 " ms\n", sx_clock_now_ms() - t0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_get_delete),
        cmocka_unit_test(test_bad_document),
        cmocka_unit_test(test_index_and_query),
        cmocka_unit_test(test_status),
        cmocka_unit_test(test_bulk),
        cmocka_unit_test(test_bulk_order_per_id),
        cmocka_unit_test(test_retry_rules),
        cmocka_unit_test(test_kill_worker),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
