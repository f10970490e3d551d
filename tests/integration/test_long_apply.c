/* test_long_apply.c: a worker keeps its lease, and answers WorkerAdmin.Status,
 * while a long apply holds a partition's lock (issue 11, bug 4), against real
 * processes (coordinator + 3 workers, P=4, R=3, min_isr=2, lease 1000 ms).
 *
 * An index backfill scans a partition's documents inside the apply of its
 * marker, under the partition's (plog) lock, and every replica applies it at
 * about the same time. Over 600,000 documents that took 3 s; the heartbeat
 * thread, which read the replicas' offsets through that lock, missed its lease
 * on every worker at once, and each was declared dead and registered again
 * (epochs raised, term partitions wiped). The delay point
 * SHARDEX_DELAY_POINT=backfill-scan:3000 makes every backfill take 3 s without
 * the documents. Creating an index must then leave every worker alive in the
 * same incarnation and every partition at the same epoch, answer Status
 * within half a lease throughout, and end with the index READY and complete.
 *
 * SHARDEX_TEST_FILTER=<cmocka pattern> runs some tests only.
 */
#include "checker.h"
#include "clock.h"
#include "cluster.h"
#include "docs.h"
#include "fixture.h"
#include "harness.h"
#include "hash.h"
#include "query.h"
#include "shardex/internal/v1/coordinator.pb-c.h"
#include "shardex/internal/v1/worker.pb-c.h"
#include "shardex/v1/shardex.pb-c.h"

#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define WAIT_MS 30000
#define NDOCS 8
#define DELAY_MS 3000
#define STATUS_MS 500 /* half a lease */
#define ADMIN_SVC (&shardex__internal__v1__worker_admin__descriptor)

typedef Shardex__Internal__V1__ClusterMap ClusterMap;

static int setup(void **state)
{
    /* Every worker the cluster starts inherits the delay point. */
    char spec[64];
    snprintf(spec, sizeof(spec), "backfill-scan:%d", DELAY_MS);
    setenv("SHARDEX_DELAY_POINT", spec, 1);
    sx_cluster_opts o = {.workers = 3, .partitions = 4};
    *state = sx_cluster_start_settled(&o, WAIT_MS);
    unsetenv("SHARDEX_DELAY_POINT");
    return *state ? 0 : -1;
}

/* What the map says of each test worker and each partition. */
typedef struct map_facts {
    bool ok;
    uint64_t version;
    uint64_t incarnation[SX_TEST_MAX_WORKERS];
    bool alive[SX_TEST_MAX_WORKERS];
    uint64_t epoch[16];
    uint32_t nparts;
} map_facts;

static map_facts facts_of(sx_cluster *c)
{
    map_facts f = {0};
    ClusterMap *m = sx_cluster_map(c);
    if (!m)
        return f;
    f.ok = true;
    f.version = m->version;
    for (uint32_t i = 0; i < c->nworkers; i++) {
        int32_t w = sx_cluster_index_of(m, c, i);
        if (w >= 0) {
            f.incarnation[i] = m->workers[w]->incarnation;
            f.alive[i] = m->workers[w]->alive;
        }
    }
    for (size_t p = 0; p < m->n_partitions && p < 16; p++)
        f.epoch[f.nparts++] = m->partitions[p]->epoch;
    sx_rpc_free(&m->base);
    return f;
}

/* Asks worker i for its Status with a deadline of STATUS_MS; returns how
 * long the answer took, or UINT64_MAX without one. */
static uint64_t status_ms(sx_cluster *c, uint32_t i)
{
    Shardex__Internal__V1__WorkerStatusRequest req =
        SHARDEX__INTERNAL__V1__WORKER_STATUS_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    sx_rpc_call_opts o = {.timeout_ms = STATUS_MS};
    uint64_t t0 = sx_clock_now_ms();
    sx_status st =
        sx_rpc_invoke(c->rpc, c->worker_addr[i], ADMIN_SVC, "Status", &req.base, &resp, &o, NULL);
    uint64_t ms = sx_clock_now_ms() - t0;
    sx_rpc_free(resp);
    return st == SX_OK ? ms : UINT64_MAX;
}

/* Whether file dir/name holds needle. */
static bool file_has(const sx_cluster *c, const char *name, const char *needle)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", c->dir, name);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    char line[2048];
    bool found = false;
    while (!found && fgets(line, sizeof(line), f))
        found = strstr(line, needle) != NULL;
    fclose(f);
    return found;
}

static void test_index_backfill_keeps_every_lease(void **state)
{
    sx_cluster *c = *state;
    const uint32_t P = c->opts.partitions;
    sx_err err = {0};
    /* NDOCS documents in every partition, texts "la-p<p> text <k>". */
    for (uint32_t p = 0; p < P; p++) {
        sx_doc_spec d[NDOCS];
        size_t k = 0;
        for (uint32_t i = 0; k < NDOCS; i++) {
            char id[64];
            int len = snprintf(id, sizeof(id), "la-%u-%u", p, i);
            if (sx_partition_of(id, (size_t)len, P) != p)
                continue;
            memcpy(d[k].id, id, sizeof(id));
            snprintf(d[k].text, sizeof(d[k].text), "la-p%u text %zu", p, k);
            d[k].n = (int64_t)k;
            d[k].pad = NULL;
            k++;
        }
        if (sx_docs_put(c, p % c->nworkers, d, NDOCS, 15000, NULL, &err) != SX_OK)
            SX_FX_FAIL(c, "put partition %u: %s", p, err.msg);
    }
    map_facts before = facts_of(c);
    assert_true(before.ok);

    sx_qindex ix = {.name = "slow_ix", .field = "text", .local = true};
    uint64_t t0 = sx_clock_now_ms();
    if (sx_q_create_index(c, c->worker_addr[0], &ix, &err) != SX_OK)
        SX_FX_FAIL(c, "create index: %s", err.msg);
    /* While the backfills run (3 s each, every replica): Status answers. */
    uint64_t worst = 0;
    uint32_t worst_at = 0;
    bool ready = false;
    while (!ready && sx_clock_now_ms() - t0 < WAIT_MS) {
        for (uint32_t i = 0; i < c->nworkers; i++) {
            uint64_t ms = status_ms(c, i);
            if (ms > worst) {
                worst = ms;
                worst_at = i;
            }
        }
        ready = sx_q_wait_ready(c, c->worker_addr[0], "slow_ix", 100);
    }
    uint64_t took = sx_clock_now_ms() - t0;
    fprintf(stderr, "index READY after %" PRIu64 " ms; slowest Status %" PRIu64 " ms (worker %u)\n",
            took, worst, worst_at);
    for (uint32_t i = 0; i < c->nworkers; i++) {
        char name[32];
        snprintf(name, sizeof(name), "w%u.log", i);
        if (!file_has(c, name, "delaying at delay point name=backfill-scan"))
            SX_FX_FAIL(c, "worker %u never reached the backfill's delay point", i);
    }

    map_facts after = facts_of(c);
    assert_true(after.ok);
    for (uint32_t i = 0; i < c->nworkers; i++)
        if (!after.alive[i] || after.incarnation[i] != before.incarnation[i])
            SX_FX_FAIL(c,
                       "worker %u was declared dead during the backfill: alive %d, incarnation "
                       "%" PRIu64 " then %" PRIu64,
                       i, after.alive[i], before.incarnation[i], after.incarnation[i]);
    for (uint32_t p = 0; p < before.nparts; p++)
        if (after.epoch[p] != before.epoch[p])
            SX_FX_FAIL(c,
                       "partition %u changed leader during the backfill: epoch %" PRIu64
                       " then %" PRIu64,
                       p, before.epoch[p], after.epoch[p]);
    if (file_has(c, "coord.log", "worker dead"))
        SX_FX_FAIL(c, "the coordinator declared a worker dead during the backfill");
    if (worst == UINT64_MAX)
        SX_FX_FAIL(c, "worker %u did not answer Status within %d ms during the backfill", worst_at,
                   STATUS_MS);
    if (!ready)
        SX_FX_FAIL(c, "the index did not become READY in %d ms", WAIT_MS);

    /* Complete: every document, through a LOCAL query. */
    sx_qreq q = {.index = "slow_ix",
                 .match = {.range = true,
                           .has_min = true,
                           .has_max = true,
                           .min = sx_qval_str("la-p"),
                           .max = sx_qval_str("la-p~")},
                 .mode = SHARDEX__V1__MODE__MODE_LOCAL,
                 .limit = 1000};
    sx_qpages pages;
    if (sx_q_query_all(c, c->worker_addr[1], &q, &pages, &err) != SX_OK)
        SX_FX_FAIL(c, "query: %s", err.msg);
    size_t hits = pages.hits.n;
    sx_qhits_free(&pages.hits);
    if (hits != (size_t)P * NDOCS)
        SX_FX_FAIL(c, "the index holds %zu of %u documents", hits, P * NDOCS);
}

int main(void)
{
    sx_fx_seed();
    sx_fx_filter_from_env();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_index_backfill_keeps_every_lease, setup,
                                        sx_fx_cluster_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
