/* test_replication.c: the write path and failover with real processes
 * (coordinator + 3 workers, P=8, R=3, min_isr=2, lease 1000 ms):
 *  - Put/Delete/Get through any worker, tokens, bad input refused with the
 *    log unchanged;
 *  - seeded rounds of "write concurrently, kill -9 a worker (often a leader),
 *    keep writing, restart it": every acknowledged write stays readable with
 *    its content, versions seen with `after` tokens never go below what was
 *    acknowledged;
 *  - a paused leader acknowledges nothing once replaced;
 *  - a new worker's replicas catch up from nothing.
 * Every test ends by comparing every replica's log and documents
 * (checker.h). SHARDEX_TEST_SEED replays a run; SHARDEX_CHAOS_ROUNDS sets the
 * number of rounds (default 20).
 */
#include "checker.h"
#include "clock.h"
#include "cluster.h"
#include "docs.h"
#include "fixture.h"
#include "harness.h"
#include "hash.h"
#include "query.h"
#include "shardex/internal/v1/replication.pb-c.h"
#include "shardex/v1/shardex.pb-c.h"

#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define SHARDEX_SVC (&shardex__v1__shardex__descriptor)
#define WAIT_MS 30000

static uint64_t seed;

static int setup(void **state)
{
    sx_cluster_opts o = {.workers = 3};
    *state = sx_cluster_start_settled(&o, WAIT_MS);
    return *state ? 0 : -1;
}

static int teardown(void **state)
{
    sx_cluster *c = *state;
    sx_cluster_stop(c);
    free(c);
    return 0;
}

/* --------------------------------------------------------------- helpers -- */

static uint32_t any_running(sx_cluster *c, uint64_t *s)
{
    for (;;) {
        uint32_t i = (uint32_t)(sx_fx_rnd(s) % c->nworkers);
        if (c->worker_pid[i] > 0)
            return i;
    }
}

/* Per-partition log ends of every live replica, for "nothing was written". */
static void log_ends(sx_cluster *c, uint64_t *out /* [workers][8] */)
{
    memset(out, 0, sizeof(uint64_t) * SX_TEST_MAX_WORKERS * 8);
    for (uint32_t i = 0; i < c->nworkers; i++) {
        Shardex__Internal__V1__WorkerStatusResponse *s = sx_cluster_worker_status(c, i);
        for (size_t k = 0; s && k < s->n_replicas; k++)
            out[i * 8 + s->replicas[k]->partition] = s->replicas[k]->log_end_offset;
        sx_rpc_free(s ? &s->base : NULL);
    }
}

/* ------------------------------------------------------------------ tests -- */

static void test_put_get_delete_and_bad_input(void **state)
{
    sx_cluster *c = *state;
    enum { N = 200 };
    sx_doc_spec *docs = calloc(N, sizeof(*docs));
    for (int i = 0; i < N; i++) {
        snprintf(docs[i].id, sizeof(docs[i].id), "doc-%d", i);
        snprintf(docs[i].text, sizeof(docs[i].text), "text of %d", i);
        docs[i].n = i;
    }
    sx_err err = {0};
    Shardex__V1__PutResponse *pr = NULL;
    sx_status st = sx_docs_put(c, 0, docs, N, 10000, &pr, &err);
    if (st != SX_OK)
        SX_FX_FAIL(c, "put: %s", err.msg);
    assert_int_equal(pr->n_tokens, N);
    /* Read through another worker: content, and version = the token. */
    for (int i = 0; i < N; i++) {
        Shardex__V1__GetResponse *g = NULL;
        assert_int_equal(sx_docs_get(c, (uint32_t)(i % 3), docs[i].id, NULL, &g, &err), SX_OK);
        assert_true(g->found);
        assert_string_equal(sx_doc_text(g->doc), docs[i].text);
        assert_int_equal(g->version->partition, pr->tokens[i]->partition);
        assert_int_equal(g->version->offset, pr->tokens[i]->offset);
        sx_rpc_free(&g->base);
    }
    /* Delete some; they are gone, the rest stay. */
    Shardex__V1__DeleteRequest dr = SHARDEX__V1__DELETE_REQUEST__INIT;
    char *ids[10];
    for (int i = 0; i < 10; i++)
        ids[i] = docs[i].id;
    dr.ids = ids;
    dr.n_ids = 10;
    ProtobufCMessage *resp = NULL;
    sx_rpc_call_opts o = {.timeout_ms = 10000};
    assert_int_equal(
        sx_rpc_invoke(c->rpc, c->worker_addr[1], SHARDEX_SVC, "Delete", &dr.base, &resp, &o, &err),
        SX_OK);
    Shardex__V1__DeleteResponse *del = (void *)resp;
    assert_int_equal(del->n_tokens, 10);
    Shardex__V1__GetResponse *g = NULL;
    assert_int_equal(sx_docs_get(c, 2, docs[3].id, del->tokens[3], &g, &err), SX_OK);
    assert_false(g->found);
    sx_rpc_free(&g->base);
    sx_rpc_free(resp);

    /* Bad input of every kind: INVALID_ARGUMENT, and no log moves. */
    uint64_t before[SX_TEST_MAX_WORKERS * 8], after[SX_TEST_MAX_WORKERS * 8];
    SX_FX_CHECK_REPLICAS(c, WAIT_MS);
    log_ends(c, before);
    sx_doc_spec bad[2];
    memcpy(&bad[0], &docs[50], sizeof(bad[0]));
    memset(&bad[1], 0, sizeof(bad[1])); /* empty id, after a good document */
    assert_int_equal(sx_docs_put(c, 0, bad, 2, 5000, NULL, &err), SX_INVALID_ARGUMENT);
    assert_non_null(strstr(err.msg, "docs[1]"));
    char long_id[300];
    memset(long_id, 'x', sizeof(long_id) - 1);
    long_id[sizeof(long_id) - 1] = '\0';
    Shardex__V1__PutRequest empty = SHARDEX__V1__PUT_REQUEST__INIT;
    assert_int_equal(
        sx_rpc_invoke(c->rpc, c->worker_addr[2], SHARDEX_SVC, "Put", &empty.base, &resp, &o, &err),
        SX_INVALID_ARGUMENT);
    Shardex__V1__GetRequest gr = SHARDEX__V1__GET_REQUEST__INIT;
    gr.id = long_id;
    assert_int_equal(
        sx_rpc_invoke(c->rpc, c->worker_addr[2], SHARDEX_SVC, "Get", &gr.base, &resp, &o, &err),
        SX_INVALID_ARGUMENT);
    assert_non_null(strstr(err.msg, "256"));
    char *bad_ids[2] = {"fine", "\xff\xfe"};
    dr.ids = bad_ids;
    dr.n_ids = 2;
    assert_int_equal(
        sx_rpc_invoke(c->rpc, c->worker_addr[1], SHARDEX_SVC, "Delete", &dr.base, &resp, &o, &err),
        SX_INVALID_ARGUMENT);
    assert_non_null(strstr(err.msg, "UTF-8"));
    log_ends(c, after);
    assert_memory_equal(before, after, sizeof(before));
    sx_rpc_free(&pr->base);
    free(docs);
    SX_FX_CHECK_REPLICAS(c, WAIT_MS);
}

/* Writers for the chaos test. */
typedef struct acked {
    char id[48];
    char text[48];
    uint32_t partition;
    uint64_t offset;
} acked;

typedef struct writers {
    sx_cluster *c;
    pthread_mutex_t mu;
    bool stop;
    acked *log;
    size_t n, cap;
    uint64_t attempts, failures;
    uint64_t bad_reads; /* a read with `after` that saw less than acknowledged */
    char bad_msg[256];
} writers;

typedef struct writer_arg {
    writers *w;
    int id;
    uint64_t seed;
} writer_arg;

static void *writer_main(void *p)
{
    writer_arg *a = p;
    writers *w = a->w;
    uint64_t s = a->seed;
    for (uint64_t seq = 0;; seq++) {
        pthread_mutex_lock(&w->mu);
        bool stop = w->stop;
        pthread_mutex_unlock(&w->mu);
        if (stop)
            break;
        enum { B = 10 };
        sx_doc_spec docs[B];
        memset(docs, 0, sizeof(docs));
        for (int i = 0; i < B; i++) {
            /* Fresh ids, and a small set written again and again. */
            if (i < 8)
                snprintf(docs[i].id, sizeof(docs[i].id), "w%d-%" PRIu64 "-%d", a->id, seq, i);
            else
                snprintf(docs[i].id, sizeof(docs[i].id), "hot-%d-%d", a->id, i);
            snprintf(docs[i].text, sizeof(docs[i].text), "w%d seq %" PRIu64, a->id, seq);
            docs[i].n = (int64_t)seq;
        }
        uint32_t via = any_running(w->c, &s);
        sx_err err = {0};
        Shardex__V1__PutResponse *pr = NULL;
        sx_status st = sx_docs_put(w->c, via, docs, B, 4000, &pr, &err);
        pthread_mutex_lock(&w->mu);
        w->attempts++;
        if (st == SX_OK) {
            for (int i = 0; i < B; i++) {
                if (w->n == w->cap) {
                    w->cap = w->cap ? 2 * w->cap : 1024;
                    w->log = realloc(w->log, w->cap * sizeof(*w->log));
                }
                acked *k = &w->log[w->n++];
                snprintf(k->id, sizeof(k->id), "%s", docs[i].id);
                snprintf(k->text, sizeof(k->text), "%s", docs[i].text);
                k->partition = pr->tokens[i]->partition;
                k->offset = pr->tokens[i]->offset;
            }
        } else {
            w->failures++;
        }
        pthread_mutex_unlock(&w->mu);
        if (st == SX_OK) {
            /* Read-your-writes through another worker: never below what was acknowledged. */
            Shardex__V1__GetResponse *g = NULL;
            uint32_t rv = any_running(w->c, &s);
            if (sx_docs_get(w->c, rv, docs[9].id, pr->tokens[9], &g, &err) == SX_OK &&
                (!g->found || g->version->offset < pr->tokens[9]->offset)) {
                pthread_mutex_lock(&w->mu);
                w->bad_reads++;
                snprintf(w->bad_msg, sizeof(w->bad_msg),
                         "%s: acknowledged at %" PRIu64 ", read version %" PRIu64, docs[9].id,
                         pr->tokens[9]->offset, g->found ? g->version->offset : 0);
                pthread_mutex_unlock(&w->mu);
            }
            sx_rpc_free(g ? &g->base : NULL);
        }
        sx_rpc_free(pr ? &pr->base : NULL);
    }
    return NULL;
}

/* Every partition has a live leader and all its replicas in the ISR. */
static bool isr_whole(void *arg)
{
    Shardex__Internal__V1__ClusterMap *m = sx_cluster_map(arg);
    if (!m)
        return false;
    bool ok = true;
    for (size_t p = 0; p < m->n_partitions; p++) {
        const Shardex__Internal__V1__LogPartition *lp = m->partitions[p];
        ok &= lp->leader >= 0 && m->workers[lp->leader]->alive && lp->n_isr == lp->n_replicas &&
              lp->n_replicas == 3;
    }
    sx_rpc_free(&m->base);
    return ok;
}

static void test_chaos_kill_rounds(void **state)
{
    sx_cluster *c = *state;
    int rounds = getenv("SHARDEX_CHAOS_ROUNDS") ? atoi(getenv("SHARDEX_CHAOS_ROUNDS")) : 20;
    uint64_t s = seed;
    fprintf(stderr, "chaos: seed=%" PRIu64 " rounds=%d (SHARDEX_TEST_SEED replays)\n", seed,
            rounds);
    /* Indexes on the writers' fields, so that the kills also hit index
     * shipping, term partition owners and their rebuilds: `shardex verify`
     * checks them at the end. */
    static const sx_qindex ixs[] = {
        {.name = "chaos-text", .field = "text", .local = true, .global = true},
        {.name = "chaos-n", .field = "n", .is_int = true, .local = true, .global = true}};
    for (size_t i = 0; i < sizeof(ixs) / sizeof(ixs[0]); i++) {
        sx_err err = {0};
        if (sx_q_create_index(c, c->worker_addr[0], &ixs[i], &err) != SX_OK)
            fail_msg("create index %s: %s", ixs[i].name, err.msg);
        if (!sx_q_wait_ready(c, c->worker_addr[0], ixs[i].name, WAIT_MS))
            fail_msg("index %s did not become READY", ixs[i].name);
    }
    writers w = {.c = c, .mu = PTHREAD_MUTEX_INITIALIZER};
    enum { WRITERS = 3 };
    pthread_t th[WRITERS];
    writer_arg args[WRITERS];
    for (int i = 0; i < WRITERS; i++) {
        args[i] = (writer_arg){&w, i, sx_fx_rnd(&s)};
        pthread_create(&th[i], NULL, writer_main, &args[i]);
    }
    char failure[256] = "";
    for (int r = 0; r < rounds; r++) {
        /* Often a leader: the worker leading the most partitions. */
        uint32_t victim = (uint32_t)(sx_fx_rnd(&s) % c->nworkers);
        if (sx_fx_rnd(&s) % 3 != 0) {
            Shardex__Internal__V1__ClusterMap *m = sx_cluster_map(c);
            if (m) {
                int32_t p = (int32_t)(sx_fx_rnd(&s) % m->n_partitions);
                int32_t leader = m->partitions[p]->leader;
                for (uint32_t i = 0; i < c->nworkers; i++)
                    if (sx_cluster_index_of(m, c, i) == leader)
                        victim = i;
                sx_rpc_free(&m->base);
            }
        }
        sx_clock_sleep_ms(100 + sx_fx_rnd(&s) % 300); /* writes flow */
        sx_cluster_kill_worker(c, victim);
        sx_clock_sleep_ms(200 + sx_fx_rnd(&s) % 1200); /* keep writing while it is gone */
        if (!sx_cluster_start_worker(c, victim) || !sx_cluster_wait_alive(c, victim, WAIT_MS)) {
            snprintf(failure, sizeof(failure), "round %d: worker %u did not come back", r, victim);
            break;
        }
        /* Let it catch up before the next round, so that the ISR is whole again
         * (logs are compared once the writers stop). */
        if (!sx_h_wait_for(isr_whole, c, WAIT_MS)) {
            snprintf(failure, sizeof(failure),
                     "round %d (seed %" PRIu64 "): the ISR did not become whole again", r, seed);
            break;
        }
    }
    /* Writers stop before anything can fail: they use the cluster. */
    pthread_mutex_lock(&w.mu);
    w.stop = true;
    pthread_mutex_unlock(&w.mu);
    for (int i = 0; i < WRITERS; i++)
        pthread_join(th[i], NULL);
    if (failure[0])
        SX_FX_FAIL(c, "%s", failure);
    fprintf(stderr, "chaos: %" PRIu64 " puts, %" PRIu64 " failed, %zu documents acknowledged\n",
            w.attempts, w.failures, w.n);
    if (w.bad_reads)
        fail_msg("read-your-writes broken %" PRIu64 " times, e.g. %s", w.bad_reads, w.bad_msg);
    assert_true(w.n > 0);

    /* Every acknowledged write is readable with its content (fresh ids) or
     * with a version at least the acknowledged one (ids written again). */
    for (size_t k = 0; k < w.n; k++) {
        acked *a = &w.log[k];
        Shardex__V1__WriteToken t = SHARDEX__V1__WRITE_TOKEN__INIT;
        t.partition = a->partition;
        t.offset = a->offset;
        Shardex__V1__GetResponse *g = NULL;
        sx_err err = {0};
        if (sx_docs_get(c, (uint32_t)(k % c->nworkers), a->id, &t, &g, &err) != SX_OK)
            fail_msg("get %s: %s", a->id, err.msg);
        if (!g->found)
            fail_msg("acknowledged %s (partition %u offset %" PRIu64 ") is gone", a->id,
                     a->partition, a->offset);
        if (strncmp(a->id, "hot-", 4) != 0) {
            assert_int_equal(g->version->offset, a->offset);
            assert_string_equal(sx_doc_text(g->doc), a->text);
        } else {
            assert_true(g->version->offset >= a->offset);
        }
        sx_rpc_free(&g->base);
    }
    free(w.log);
    SX_FX_CHECK_REPLICAS(c, WAIT_MS);
    /* Term partitions moved by the last kill may still be rebuilding (verify
     * says NOT-SHIPPED): a difference that stays is a failure. */
    char why[256] = "";
    bool ok = false;
    for (int i = 0; i < 15 && !(ok = sx_check_verify(c, 60000, why, sizeof(why))); i++)
        sx_clock_sleep_ms(1000);
    if (!ok)
        fail_msg("after chaos: %s", why);
}

typedef struct leader_wait {
    sx_cluster *c;
    uint32_t p;
    uint64_t old_epoch;
    int32_t old_leader;
} leader_wait;

static bool moved(void *arg)
{
    leader_wait *lw = arg;
    Shardex__Internal__V1__ClusterMap *m = sx_cluster_map(lw->c);
    if (!m)
        return false;
    const Shardex__Internal__V1__LogPartition *lp = m->partitions[lw->p];
    bool ok = lp->leader >= 0 && lp->leader != lw->old_leader && lp->epoch > lw->old_epoch;
    sx_rpc_free(&m->base);
    return ok;
}

static void test_paused_leader_acknowledges_nothing(void **state)
{
    sx_cluster *c = *state;
    sx_doc_spec d[20];
    memset(d, 0, sizeof(d));
    for (int i = 0; i < 20; i++) {
        snprintf(d[i].id, sizeof(d[i].id), "pre-%d", i);
        snprintf(d[i].text, sizeof(d[i].text), "before the pause");
        d[i].n = i;
    }
    sx_err err = {0};
    assert_int_equal(sx_docs_put(c, 0, d, 20, 10000, NULL, &err), SX_OK);
    SX_FX_CHECK_REPLICAS(c, WAIT_MS);
    Shardex__Internal__V1__ClusterMap *m = sx_cluster_map(c);
    leader_wait lw = {.c = c,
                      .p = 0,
                      .old_epoch = m->partitions[0]->epoch,
                      .old_leader = m->partitions[0]->leader};
    uint32_t old = UINT32_MAX;
    for (uint32_t i = 0; i < c->nworkers; i++)
        if (sx_cluster_index_of(m, c, i) == lw.old_leader)
            old = i;
    sx_rpc_free(&m->base);
    assert_true(old < c->nworkers);
    /* It takes writes while it leads. */
    assert_int_equal(sx_docs_write_direct(c, old, 0, &err), SX_OK);

    sx_h_pause(c->worker_pid[old]);
    assert_true(sx_h_wait_for(moved, &lw, WAIT_MS));
    /* Writes go on through the others. */
    uint32_t other = (old + 1) % c->nworkers;
    if (sx_docs_put(c, other, d, 20, 10000, NULL, &err) != SX_OK)
        SX_FX_FAIL(c, "put while the old leader is paused: %s", err.msg);
    sx_h_resume(c->worker_pid[old]);

    /* From the moment it wakes until it is a follower again (after which the
     * coordinator may legitimately make it lead at a new epoch), nothing sent
     * to it for partition 0 is acknowledged. */
    uint64_t end = sx_clock_now_ms() + WAIT_MS;
    int tries = 0;
    bool follower = false;
    while (!follower && sx_clock_now_ms() < end) {
        Shardex__Internal__V1__WorkerStatusResponse *s = sx_cluster_worker_status(c, old);
        for (size_t k = 0; s && k < s->n_replicas; k++)
            if (s->replicas[k]->partition == 0)
                follower = strcmp(s->replicas[k]->role, "leader") != 0 ||
                           s->replicas[k]->epoch > lw.old_epoch;
        sx_rpc_free(s ? &s->base : NULL);
        if (follower)
            break;
        if (sx_docs_write_direct(c, old, 0, &err) == SX_OK)
            fail_msg("the replaced leader acknowledged a write at its old epoch (try %d)", tries);
        tries++;
    }
    assert_true(follower);
    /* It is a follower again, and everything agrees. */
    SX_FX_CHECK_REPLICAS(c, WAIT_MS);
}

static void test_new_follower_catches_up(void **state)
{
    sx_cluster *c = *state;
    enum { N = 600 };
    sx_doc_spec *docs = calloc(N, sizeof(*docs));
    for (int i = 0; i < N; i++) {
        snprintf(docs[i].id, sizeof(docs[i].id), "cat-%d", i);
        snprintf(docs[i].text, sizeof(docs[i].text), "catch up %d", i);
        docs[i].n = i;
    }
    sx_err err = {0};
    for (int i = 0; i < N; i += 100)
        assert_int_equal(sx_docs_put(c, 0, docs + i, 100, 10000, NULL, &err), SX_OK);
    /* A fourth worker joins: assignment gives it replicas, which start empty. */
    c->nworkers = 4;
    assert_true(sx_cluster_start_worker(c, 3));
    SX_FX_CHECK_REPLICAS(c, WAIT_MS);
    Shardex__Internal__V1__WorkerStatusResponse *s = sx_cluster_worker_status(c, 3);
    assert_non_null(s);
    assert_true(s->n_replicas > 0);
    uint64_t held = 0;
    for (size_t k = 0; k < s->n_replicas; k++)
        held += s->replicas[k]->log_end_offset;
    assert_true(held > 0);
    sx_rpc_free(&s->base);
    free(docs);
}

typedef struct gc_wait {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int pending, ok;
} gc_wait;

static void gc_done(sx_status st, const sx_err *err, ProtobufCMessage *resp, void *arg)
{
    (void)err;
    gc_wait *g = arg;
    sx_rpc_free(resp);
    pthread_mutex_lock(&g->mu);
    g->pending--;
    g->ok += st == SX_OK;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

static bool leader_counters(sx_cluster *c, uint32_t i, uint32_t p, uint64_t *appends,
                            uint64_t *entries)
{
    Shardex__Internal__V1__WorkerStatusResponse *s = sx_cluster_worker_status(c, i);
    bool found = false;
    for (size_t k = 0; s && k < s->n_replicas; k++) {
        if (s->replicas[k]->partition == p && strcmp(s->replicas[k]->role, "leader") == 0) {
            *appends = s->replicas[k]->appends;
            *entries = s->replicas[k]->appended_entries;
            found = true;
        }
    }
    sx_rpc_free(s ? &s->base : NULL);
    return found;
}

/* Concurrent writers to one partition share appends (and fsyncs). */
static void test_group_commit(void **state)
{
    sx_cluster *c = *state;
    Shardex__Internal__V1__ClusterMap *m = sx_cluster_map(c);
    uint32_t leader = UINT32_MAX;
    for (uint32_t i = 0; i < c->nworkers; i++)
        if (sx_cluster_index_of(m, c, i) == m->partitions[0]->leader)
            leader = i;
    sx_rpc_free(&m->base);
    assert_true(leader < c->nworkers);
    uint64_t a0 = 0, e0 = 0, a1 = 0, e1 = 0;
    assert_true(leader_counters(c, leader, 0, &a0, &e0));

    enum { N = 64 };
    static char ids[N][32];
    int made = 0;
    for (int k = 0; made < N; k++) {
        snprintf(ids[made], sizeof(ids[made]), "gc-%d", k);
        if (sx_partition_of(ids[made], strlen(ids[made]), 8) == 0)
            made++;
    }
    gc_wait g = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    Shardex__V1__Document docs[N];
    Shardex__V1__Document *dp[N];
    Shardex__V1__PutRequest req[N];
    sx_rpc_call_opts o = {.timeout_ms = 10000};
    g.pending = N;
    for (int i = 0; i < N; i++) {
        shardex__v1__document__init(&docs[i]);
        docs[i].id = ids[i];
        dp[i] = &docs[i];
        shardex__v1__put_request__init(&req[i]);
        req[i].docs = &dp[i];
        req[i].n_docs = 1;
        sx_rpc_invoke_async(c->rpc, c->worker_addr[leader], SHARDEX_SVC, "Put", &req[i].base, &o,
                            gc_done, &g);
    }
    pthread_mutex_lock(&g.mu);
    while (g.pending > 0)
        pthread_cond_wait(&g.cv, &g.mu);
    pthread_mutex_unlock(&g.mu);
    assert_int_equal(g.ok, N);
    assert_true(leader_counters(c, leader, 0, &a1, &e1));
    fprintf(stderr,
            "group commit: %d concurrent writes, %" PRIu64 " entries in %" PRIu64 " appends\n", N,
            e1 - e0, a1 - a0);
    assert_int_equal(e1 - e0, N);
    assert_true(a1 - a0 < N); /* shared, not one append (and fsync) per write */
    SX_FX_CHECK_REPLICAS(c, WAIT_MS);
}

int main(void)
{
    seed = sx_fx_seed();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_put_get_delete_and_bad_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_paused_leader_acknowledges_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_new_follower_catches_up, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chaos_kill_rounds, setup, teardown),
    };
    sx_fx_filter_from_env();
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    sx_rpc_wait_shutdown(5000);
    return rc;
}
