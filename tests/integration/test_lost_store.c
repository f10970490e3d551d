/* test_lost_store.c: a replica that lost its partition store must never lead
 * with what is left (issue 11, bug 1; Kafka's KIP-966 and KAFKA-18106).
 *
 * Real processes: coordinator + 3 workers, P=1, R=3, min_isr=2, lease 1000 ms.
 * The story, once with the leader's partition directory deleted and once with
 * its store corrupted (CURRENT overwritten: LevelDB's open fails with
 * Corruption, so the worker sets the store aside):
 *
 *   W is written (ISR {L, F1, F2}); F1 is killed (ISR {L, F2}); W2 is written,
 *   so that only L and F2 hold it; F2 is killed (ISR {L}: below min_isr,
 *   nothing commits any more, F2 holds every committed entry); L is killed;
 *   L's store is lost; L restarts.
 *
 *   L must not lead with its empty store: a Get of W or W2 through L finds
 *   the document or fails (UNAVAILABLE, or DEADLINE_EXCEEDED when the answer
 *   and the client's deadline cross), never "not found". F1 restarts: it lacks
 *   W2, so it must not lead either. F2 restarts: it holds every committed
 *   entry and is elected; L and F1 copy from it. Nobody aborts (a follower
 *   asked to truncate below its applied offset would), every acknowledged write
 *   reads back, the replicas agree (checker.h) and `shardex verify` passes.
 *
 * The corrupted variant also restarts the coordinator while the partition
 * waits for F2: who may still lead must survive that.
 *
 * SHARDEX_TEST_FILTER=<cmocka pattern> runs one variant only.
 */
#include "checker.h"
#include "clock.h"
#include "cluster.h"
#include "docs.h"
#include "fixture.h"
#include "harness.h"
#include "shardex/internal/v1/coordinator.pb-c.h"
#include "shardex/v1/shardex.pb-c.h"

#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define SHARDEX_SVC (&shardex__v1__shardex__descriptor)
#define WAIT_MS 20000
#define NONE UINT32_MAX
#define NDOCS 4
#define BIT(i) (1u << (i))
/* A Get of a partition without a leader retries until its deadline. */
#define GET_MS 1500

typedef Shardex__Internal__V1__ClusterMap ClusterMap;

static int setup(void **state)
{
    sx_cluster_opts o = {.workers = 3, .partitions = 1, .replication = 3, .min_isr = 2};
    *state = sx_cluster_start_settled(&o, WAIT_MS);
    return *state ? 0 : -1;
}

/* ------------------------------------------------------------ the map -- */

typedef sx_cluster_part_view part_view;

/* Partition 0, the one under test. */
static part_view view_of(sx_cluster *c)
{
    return sx_cluster_part_view_of(c, 0);
}

typedef struct waitc {
    sx_cluster *c;
    uint32_t i;
    uint32_t mask;
} waitc;

/* The ISR is exactly mask, with a live leader. */
static bool isr_is(void *arg)
{
    waitc *w = arg;
    part_view v = view_of(w->c);
    uint32_t n = 0;
    for (uint32_t m = w->mask; m; m &= m - 1)
        n++;
    return v.ok && v.leader_alive && v.isr_mask == w->mask && v.nisr == n;
}

/* None of mask is alive and nobody leads. */
static bool all_dead(void *arg)
{
    waitc *w = arg;
    part_view v = view_of(w->c);
    return v.ok && (v.alive_mask & w->mask) == 0 && v.leader == NONE;
}

static bool is_alive(void *arg)
{
    waitc *w = arg;
    part_view v = view_of(w->c);
    return v.ok && (v.alive_mask & BIT(w->i)) != 0;
}

/* A live leader with at least min_isr (2) ISR members: writes can commit. */
static bool writable(void *arg)
{
    waitc *w = arg;
    part_view v = view_of(w->c);
    return v.ok && v.leader_alive && v.nisr >= 2;
}

/* ------------------------------------------------------------ documents -- */

typedef struct acked {
    char id[64];
    char text[64];
    uint64_t offset;
} acked;

typedef struct ack_log {
    acked a[64];
    size_t n;
} ack_log;

static void docs_named(const char *tag, sx_doc_spec *d, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        snprintf(d[k].id, sizeof(d[k].id), "%.40s-%zu", tag, k);
        snprintf(d[k].text, sizeof(d[k].text), "%.40s text %zu", tag, k);
        d[k].n = (int64_t)k;
        d[k].pad = NULL;
    }
}

static void must_put(sx_cluster *c, uint32_t via, const char *tag, ack_log *log)
{
    sx_doc_spec d[NDOCS];
    docs_named(tag, d, NDOCS);
    sx_err err = {0};
    Shardex__V1__PutResponse *pr = NULL;
    sx_status st = sx_docs_put(c, via, d, NDOCS, 15000, &pr, &err);
    if (st != SX_OK)
        SX_FX_FAIL(c, "put %s via worker %u: %s (%s)", tag, via, sx_status_name(st), err.msg);
    assert_int_equal(pr->n_tokens, NDOCS);
    for (size_t i = 0; i < NDOCS && log->n < sizeof(log->a) / sizeof(log->a[0]); i++) {
        acked *a = &log->a[log->n++];
        memcpy(a->id, d[i].id, sizeof(a->id));
        memcpy(a->text, d[i].text, sizeof(a->text));
        a->offset = pr->tokens[i]->offset;
    }
    sx_rpc_free(&pr->base);
}

/* Get of a through worker via with a deadline of ms, after a's token when
 * with_token (else a plain read, as by a client that kept no token). */
static sx_status get_acked(sx_cluster *c, uint32_t via, const acked *a, bool with_token,
                           uint64_t ms, Shardex__V1__GetResponse **out, sx_err *err)
{
    Shardex__V1__WriteToken t = SHARDEX__V1__WRITE_TOKEN__INIT;
    t.partition = 0;
    t.offset = a->offset;
    Shardex__V1__WriteToken *after[1] = {&t};
    Shardex__V1__GetRequest req = SHARDEX__V1__GET_REQUEST__INIT;
    req.id = (char *)a->id;
    if (with_token) {
        req.after = after;
        req.n_after = 1;
    }
    ProtobufCMessage *resp = NULL;
    sx_rpc_call_opts o = {.timeout_ms = ms};
    sx_status st =
        sx_rpc_invoke(c->rpc, c->worker_addr[via], SHARDEX_SVC, "Get", &req.base, &resp, &o, err);
    *out = (void *)resp;
    return st;
}

/* Fails unless g holds a's content at a's version or later. */
static void assert_reads(sx_cluster *c, uint32_t via, const acked *a,
                         const Shardex__V1__GetResponse *g)
{
    if (!g->found)
        SX_FX_FAIL(c,
                   "acknowledged %s (offset %" PRIu64 ") reads as not found through worker %u: "
                   "a replica that lost its store answered",
                   a->id, a->offset, via);
    if (g->version->offset < a->offset || strcmp(sx_doc_text(g->doc), a->text) != 0)
        SX_FX_FAIL(c, "acknowledged %s at %" PRIu64 " reads as version %" PRIu64 " \"%s\"", a->id,
                   a->offset, g->version->offset, sx_doc_text(g->doc));
}

/* While the partition may have no leader: the first document of each
 * acknowledged Put reads back through via (a plain Get, no token), or the
 * read fails for want of a leader; never "not found". */
static void reads_or_unavailable(sx_cluster *c, uint32_t via, const ack_log *log)
{
    for (size_t k = 0; k < log->n; k += NDOCS) {
        Shardex__V1__GetResponse *g = NULL;
        sx_err err = {0};
        sx_status st = get_acked(c, via, &log->a[k], false, GET_MS, &g, &err);
        if (st == SX_OK)
            assert_reads(c, via, &log->a[k], g);
        else if (st != SX_UNAVAILABLE && st != SX_DEADLINE_EXCEEDED)
            SX_FX_FAIL(c, "get %s through worker %u: %s (%s), want the document or UNAVAILABLE",
                       log->a[k].id, via, sx_status_name(st), err.msg);
        else
            fprintf(stderr, "lost store: get %s through worker %u: %s (%s)\n", log->a[k].id, via,
                    sx_status_name(st), err.msg);
        sx_rpc_free(g ? &g->base : NULL);
    }
}

/* Every acknowledged write reads back through every worker. */
static void verify_acked(sx_cluster *c, const ack_log *log)
{
    for (size_t k = 0; k < log->n; k++) {
        uint32_t via = (uint32_t)(k % c->nworkers);
        Shardex__V1__GetResponse *g = NULL;
        sx_err err = {0};
        sx_status st = get_acked(c, via, &log->a[k], true, 10000, &g, &err);
        if (st != SX_OK)
            SX_FX_FAIL(c, "acknowledged %s: get through worker %u: %s (%s)", log->a[k].id, via,
                       sx_status_name(st), err.msg);
        assert_reads(c, via, &log->a[k], g);
        sx_rpc_free(&g->base);
    }
}

/* -------------------------------------------------------- losing a store -- */

typedef enum { DELETE_DIR, CORRUPT_STORE } damage;

static void damage_store(sx_cluster *c, uint32_t i, damage how)
{
    char dir[512], path[600];
    snprintf(dir, sizeof(dir), "%s/w%u/partitions/p0000", c->dir, i);
    if (how == DELETE_DIR) {
        sx_h_rmtree(dir);
        fprintf(stderr, "lost store: deleted %s\n", dir);
        return;
    }
    /* No newline at the end: LevelDB's open reports Corruption. */
    snprintf(path, sizeof(path), "%s/CURRENT", dir);
    FILE *f = fopen(path, "wb");
    if (!f)
        SX_FX_FAIL(c, "cannot overwrite %s", path);
    fputs("MANIFEST-garbage", f);
    fclose(f);
    fprintf(stderr, "lost store: corrupted %s\n", path);
}

static void no_worker_exited(sx_cluster *c)
{
    for (uint32_t i = 0; i < c->nworkers; i++)
        if (c->worker_pid[i] > 0 && !sx_h_alive(c->worker_pid[i]))
            SX_FX_FAIL(c, "worker %u exited (aborted?)", i);
}

static void lost_store_story(sx_cluster *c, damage how)
{
    part_view v = view_of(c);
    assert_true(v.ok && v.leader != NONE);
    const uint32_t L = v.leader, F1 = (L + 1) % 3, F2 = (L + 2) % 3;
    ack_log *acks = calloc(1, sizeof(*acks));
    must_put(c, L, "w", acks);

    /* F1 goes: the ISR is {L, F2}, min_isr still met, W2 commits on both. */
    sx_cluster_kill_worker(c, F1);
    waitc two = {.c = c, .mask = BIT(L) | BIT(F2)};
    SX_FX_WAIT(c, isr_is, &two, WAIT_MS, "timed out waiting for the ISR {L, F2}");
    must_put(c, L, "w2", acks);

    /* F2 goes: the ISR is {L}, below min_isr: nothing commits any more. */
    sx_cluster_kill_worker(c, F2);
    waitc one = {.c = c, .mask = BIT(L)};
    SX_FX_WAIT(c, isr_is, &one, WAIT_MS, "timed out waiting for the ISR {L}");

    /* L goes, and loses its store; it comes back. */
    sx_cluster_kill_worker(c, L);
    waitc none = {.c = c, .mask = BIT(L) | BIT(F1) | BIT(F2)};
    SX_FX_WAIT(c, all_dead, &none, WAIT_MS, "timed out waiting until every worker is dead");
    damage_store(c, L, how);
    assert_true(sx_cluster_start_worker(c, L));
    waitc l_up = {.c = c, .i = L};
    SX_FX_WAIT(c, is_alive, &l_up, WAIT_MS, "timed out waiting until L registered again");
    reads_or_unavailable(c, L, acks);
    v = view_of(c);
    if (v.leader == L)
        SX_FX_FAIL(c, "worker %u lost its store and leads the partition (epoch %" PRIu64 ")", L,
                   v.epoch);

    if (how == CORRUPT_STORE) { /* who may lead is durable */
        assert_true(sx_cluster_restart_coordinator(c, NULL));
        SX_FX_WAIT(c, is_alive, &l_up, WAIT_MS, "timed out waiting for L after the restart");
    }

    /* F1 lacks W2: it must not lead either. */
    assert_true(sx_cluster_start_worker(c, F1));
    waitc f1_up = {.c = c, .i = F1};
    SX_FX_WAIT(c, is_alive, &f1_up, WAIT_MS, "timed out waiting until F1 registered again");
    reads_or_unavailable(c, F1, acks);
    v = view_of(c);
    if (v.leader == F1 || v.leader == L)
        SX_FX_FAIL(c, "worker %u leads without W2, which was acknowledged", v.leader);

    /* F2 holds everything committed: it leads, the others copy from it. */
    assert_true(sx_cluster_start_worker(c, F2));
    waitc ok = {.c = c};
    SX_FX_WAIT(c, writable, &ok, WAIT_MS, "timed out waiting until the partition is writable");
    v = view_of(c);
    if (v.leader != F2)
        SX_FX_FAIL(c, "worker %u leads, want %u (the last to leave the ISR)", v.leader, F2);
    must_put(c, F1, "w3", acks);
    no_worker_exited(c);
    SX_FX_CHECK_REPLICAS(c, WAIT_MS);
    verify_acked(c, acks);
    char why[256];
    if (!sx_check_verify(c, 60000, why, sizeof(why)))
        SX_FX_FAIL(c, "verify: %s", why);
    no_worker_exited(c);
    free(acks);
}

static void test_deleted_store_never_leads(void **state)
{
    lost_store_story(*state, DELETE_DIR);
}

static void test_corrupted_store_never_leads(void **state)
{
    lost_store_story(*state, CORRUPT_STORE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_deleted_store_never_leads, setup,
                                        sx_fx_cluster_teardown),
        cmocka_unit_test_setup_teardown(test_corrupted_store_never_leads, setup,
                                        sx_fx_cluster_teardown),
    };
    sx_fx_filter_from_env();
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    sx_rpc_wait_shutdown(5000);
    return rc;
}
