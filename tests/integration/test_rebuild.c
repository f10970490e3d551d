/* test_rebuild.c: term partitions rebuilt in chunks (docs/indexes.md
 * "Trimming") against real processes: 4 workers, P=2, R=2, min_isr 1, a
 * global index color over 2 term partitions, NDOCS documents; every worker
 * with SHARDEX_REBUILD_CHUNK_ENTRIES=CHUNK (a rebuild of a share takes
 * several chunks) and the delay point rebuild-chunk (each chunk waits, so a
 * rebuild lasts long enough to be interrupted).
 *
 *  - the owner of the larger term partition killed: a new owner is given it
 *    and rebuilt by the leaders in chunks; seen mid-rebuild (a share with
 *    entries, its watermark still 0), that new owner is killed -9 too; both
 *    come back; GLOBAL queries answer right again, and `shardex verify` is
 *    clean. A chunked rebuild that never finished must leave nothing behind.
 */
#include "checker.h"
#include "clock.h"
#include "cluster.h"
#include "fixture.h"
#include "harness.h"
#include "query.h"
#include "rpc.h"

#include "shardex/internal/v1/index.pb-c.h"

#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define P 2
#define M 2
#define NDOCS 300
#define CHUNK "10"
#define WAIT_MS 30000

static const char *const COLORS[] = {"amber", "blue", "green"};
#define NCOLORS 3
static const sx_qindex COLOR = {
    .name = "color", .field = "color", .global = true, .term_partitions = M};

typedef struct fx {
    sx_cluster *c;
    sx_model *model;
} fx;

/* The GLOBAL answer of every color equals the model's. */
static bool global_right(void *arg)
{
    fx *f = arg;
    for (int i = 0; i < NCOLORS; i++) {
        sx_qreq q = {.index = "color",
                     .match = {.eq = sx_qval_str(COLORS[i])},
                     .mode = SHARDEX__V1__MODE__MODE_GLOBAL,
                     .limit = 1000,
                     .timeout_ms = 3000};
        sx_qpages got = {0};
        sx_qhits want = {0};
        sx_err err = {0};
        uint32_t via = (uint32_t)i % f->c->nworkers;
        while (f->c->worker_pid[via] <= 0)
            via = (via + 1) % f->c->nworkers;
        sx_status st = sx_q_query_all(f->c, f->c->worker_addr[via], &q, &got, &err);
        sx_model_expect(f->model, "color", false, &q.match, &want);
        char why[256] = "";
        bool ok = st == SX_OK && sx_qhits_equal(&got.hits, &want, why, sizeof(why));
        if (st == SX_OK && !ok) /* wrong, not unavailable: never allowed */
            SX_FX_FAIL(f->c, "GLOBAL color=%s answered wrong: %s", COLORS[i], why);
        sx_qhits_free(&got.hits);
        sx_qhits_free(&want);
        if (!ok)
            return false;
    }
    return true;
}

/* The test worker running as map index w; -1 when none. */
static int worker_of(const fx *f, const Shardex__Internal__V1__ClusterMap *m, int32_t w)
{
    for (uint32_t i = 0; i < f->c->nworkers; i++)
        if (sx_cluster_index_of(m, f->c, i) == w)
            return (int)i;
    return -1;
}

/* Term partition t's digest from its owner in m (entries counted, the
 * lowest watermark); false when it cannot be asked. */
static bool term_digest(fx *f, const Shardex__Internal__V1__ClusterMap *m, uint32_t t,
                        uint64_t *count, uint64_t *min_wm)
{
    const Shardex__Internal__V1__IndexEntry *ix = NULL;
    for (size_t i = 0; i < m->n_indexes; i++)
        if (strcmp(m->indexes[i]->spec->name, "color") == 0)
            ix = m->indexes[i];
    if (!ix)
        return false;
    const Shardex__Internal__V1__TermPartition *tp = m->terms[ix->first_term + t];
    int w = worker_of(f, m, tp->owner);
    if (w < 0 || f->c->worker_pid[w] <= 0)
        return false;
    Shardex__Internal__V1__DigestRequest req = SHARDEX__INTERNAL__V1__DIGEST_REQUEST__INIT;
    req.index_id = ix->id;
    req.partition = t;
    req.term = true;
    req.epoch = tp->epoch;
    Shardex__Internal__V1__DigestResponse *resp = NULL;
    sx_rpc_call_opts o = {.timeout_ms = 2000};
    sx_err err = {0};
    if (sx_rpc_invoke(f->c->rpc, f->c->worker_addr[w], &shardex__internal__v1__index__descriptor,
                      "Digest", &req.base, (ProtobufCMessage **)&resp, &o, &err) != SX_OK)
        return false;
    bool ok = resp->active && resp->n_watermarks == P;
    *count = resp->count;
    *min_wm = UINT64_MAX;
    for (size_t p = 0; ok && p < resp->n_watermarks; p++)
        *min_wm = resp->watermarks[p] < *min_wm ? resp->watermarks[p] : *min_wm;
    sx_rpc_free(&resp->base);
    return ok;
}

typedef struct owner_arg {
    fx *f;
    uint32_t t;
    int32_t old; /* map index of the owner replaced */
    int32_t now; /* out: the new owner */
    int worker;  /* out: its test worker */
    uint64_t n;  /* out: entries it holds */
} owner_arg;

/* t has a new, live owner that holds part of a rebuild: entries, and a
 * watermark still 0 (the last chunk not applied). */
static bool mid_rebuild(void *arg)
{
    owner_arg *a = arg;
    Shardex__Internal__V1__ClusterMap *m = sx_cluster_map(a->f->c);
    if (!m)
        return false;
    a->now = m->terms[m->indexes[0]->first_term + a->t]->owner;
    a->worker = worker_of(a->f, m, a->now);
    uint64_t wm = 0;
    bool ok = a->now >= 0 && a->now != a->old && a->worker >= 0 &&
              term_digest(a->f, m, a->t, &a->n, &wm) && a->n > 0 && wm == 0;
    sx_rpc_free(&m->base);
    return ok;
}

static sx_h_run run_verify(fx *f)
{
    char bin[512], outf[512], errf[512];
    sx_cluster_bin("client/shardex", bin, sizeof(bin));
    snprintf(outf, sizeof(outf), "%s/verify.out", f->c->dir);
    snprintf(errf, sizeof(errf), "%s/verify.err", f->c->dir);
    char *argv[] = {bin, "--server", f->c->worker_addr[0], "verify", NULL};
    return sx_h_run_wait(argv, NULL, NULL, outf, errf, 60000);
}

static bool verify_clean(void *arg)
{
    fx *f = arg;
    sx_h_run r = run_verify(f);
    bool ok = r.code == 0;
    if (!ok && getenv("SHARDEX_TEST_VERBOSE"))
        sx_h_run_print("verify", &r);
    sx_h_run_free(&r);
    return ok;
}

static void test_owner_replaced_mid_rebuild(void **state)
{
    fx *f = *state;
    sx_cluster *c = f->c;
    sx_err err = {0};
    if (sx_q_create_index(c, c->worker_addr[0], &COLOR, &err) != SX_OK)
        SX_FX_FAIL(c, "CreateIndex: %s", err.msg);
    if (!sx_q_wait_ready(c, c->worker_addr[1], "color", WAIT_MS))
        SX_FX_FAIL(c, "color not READY");
    sx_qdoc docs[50];
    for (int i = 0; i < NDOCS;) {
        size_t n = 0;
        for (; i < NDOCS && n < 50; i++) {
            sx_qdoc *d = &docs[n++];
            memset(d, 0, sizeof(*d));
            snprintf(d->id, sizeof(d->id), "rb-%03d", i);
            sx_qdoc_add(d, "color", sx_qval_str(COLORS[i % NCOLORS]));
            sx_model_put(f->model, d);
        }
        if (sx_q_put(c, c->worker_addr[(unsigned)i % c->nworkers], docs, n, 10000, NULL, NULL,
                     &err) != SX_OK)
            SX_FX_FAIL(c, "put: %s", err.msg);
    }
    SX_FX_WAIT(c, global_right, f, WAIT_MS, "GLOBAL answers never complete");

    /* The term partition with more entries (several chunks per share). */
    Shardex__Internal__V1__ClusterMap *m = sx_cluster_map(c);
    assert_non_null(m);
    uint32_t t = 0;
    uint64_t most = 0;
    for (uint32_t k = 0; k < M; k++) {
        uint64_t n = 0, wm = 0;
        if (term_digest(f, m, k, &n, &wm) && n > most) {
            most = n;
            t = k;
        }
    }
    owner_arg a = {.f = f, .t = t, .old = m->terms[m->indexes[0]->first_term + t]->owner};
    int first = worker_of(f, m, a.old);
    sx_rpc_free(&m->base);
    assert_true(first >= 0);
    print_message("t=%u holds %" PRIu64 " entries (chunks of " CHUNK "): killing its owner w%d\n",
                  t, most, first);
    assert_true(most >= 6 * 10); /* several chunks for each of the P shares */
    sx_cluster_kill_worker(c, (uint32_t)first);

    SX_FX_WAIT(c, mid_rebuild, &a, WAIT_MS, "no new owner of t=%u was seen mid-rebuild", t);
    print_message("new owner w%d seen mid-rebuild with %" PRIu64 " entries: killing it\n", a.worker,
                  a.n);
    sx_cluster_kill_worker(c, (uint32_t)a.worker);
    uint64_t t0 = sx_clock_now_ms();
    assert_true(sx_cluster_start_worker(c, (uint32_t)first));
    assert_true(sx_cluster_start_worker(c, (uint32_t)a.worker));
    SX_FX_WAIT(c, global_right, f, WAIT_MS, "GLOBAL answers never right again");
    print_message("GLOBAL right again %" PRIu64 " ms after the second kill\n",
                  sx_clock_now_ms() - t0);
    SX_FX_WAIT(c, verify_clean, f, WAIT_MS, "verify never clean");
    if (getenv("SHARDEX_TEST_VERBOSE"))
        sx_cluster_dump_logs(c);
}

static int setup(void **state)
{
    setenv("SHARDEX_REBUILD_CHUNK_ENTRIES", CHUNK, 1); /* inherited by every worker */
    setenv("SHARDEX_DELAY_POINT", "rebuild-chunk:100", 1);
    fx *f = sx_calloc(1, sizeof(*f));
    sx_cluster_opts o = {.workers = 4, .partitions = P, .replication = 2, .min_isr = 1};
    f->c = sx_cluster_start_settled(&o, WAIT_MS);
    if (!f->c) {
        free(f);
        return -1;
    }
    f->model = sx_model_create();
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    sx_cluster_stop(f->c);
    free(f->c);
    sx_model_destroy(f->model);
    free(f);
    return 0;
}

int main(void)
{
    sx_fx_seed();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_owner_replaced_mid_rebuild, setup, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    sx_rpc_wait_shutdown(5000);
    return rc;
}
