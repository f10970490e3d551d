/* bench_backfill: what an index backfill in chunks (worker/pindex.h) costs the
 * writes that run beside it, throttled (--backfill-max-write-p99, its default
 * 50ms) and unthrottled (0), against the same writes with no backfill in the
 * same run (BENCHMARKING.md: a same-run baseline, alternating order), and
 * with a tight bound (5ms) that the throttle must act on.
 *
 *   bench_backfill [--docs N] [--base-seconds S] [--repeat N]
 *
 * Each configuration starts its own cluster through tests/support/cluster.h
 * (a coordinator and one worker on loopback, P=1, R=1: one partition holds
 * every document, so the backfill and the writes share one plog), loads
 * --docs documents (Puts of 1000), then one caller overwrites random
 * documents one Put at a time: first --base-seconds with no backfill (the
 * baseline window), then while index "bench" (kept local and global) is
 * created and backfilled (M = 4), until ListIndexes says READY. Measured: the
 * backfill's rate (documents / time from CreateIndex to READY, which includes
 * up to a heartbeat of reporting), and the write latency p50 / p99 / p99.9 of
 * each window, whose p99 ratio is the figure. Markdown on stdout, progress on
 * stderr.
 */
#include "benchlib.h"
#include "clock.h"
#include "cluster.h"
#include "docs.h"
#include "log.h"
#include "query.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LOAD_BATCH 1000
#define READY_MS 600000
#define NCFG 3

typedef struct result {
    double backfill_s, rate;
    sx_bench_hist base, during;
    uint64_t writes;
} result;

typedef struct writer {
    sx_cluster *c;
    uint32_t ndocs;
    atomic_int phase; /* 0 baseline, 1 during the backfill, 2 stop */
    sx_bench_hist hist[2];
    uint64_t writes, rng;
    pthread_t thread;
} writer;

static void nap_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void *writer_main(void *arg)
{
    writer *w = arg;
    int phase;
    while ((phase = atomic_load(&w->phase)) < 2) {
        w->rng ^= w->rng << 13;
        w->rng ^= w->rng >> 7;
        w->rng ^= w->rng << 17;
        sx_doc_spec d = {0};
        snprintf(d.id, sizeof(d.id), "bf-%07u", (uint32_t)(w->rng % w->ndocs));
        snprintf(d.text, sizeof(d.text), "t%u", (uint32_t)((w->rng >> 32) % 1000));
        d.n = (int64_t)w->writes;
        sx_err err = {0};
        uint64_t t0 = sx_clock_now_ns();
        if (sx_docs_put(w->c, 0, &d, 1, 15000, NULL, &err) != SX_OK) {
            fprintf(stderr, "bench_backfill: put: %s\n", err.msg);
            continue;
        }
        sx_bench_hist_add(&w->hist[phase], sx_clock_now_ns() - t0);
        w->writes++;
    }
    return NULL;
}

static bool load(sx_cluster *c, uint32_t ndocs)
{
    sx_doc_spec *d = calloc(LOAD_BATCH, sizeof(*d));
    for (uint32_t i = 0; i < ndocs; i += LOAD_BATCH) {
        uint32_t n = ndocs - i < LOAD_BATCH ? ndocs - i : LOAD_BATCH;
        for (uint32_t k = 0; k < n; k++) {
            snprintf(d[k].id, sizeof(d[k].id), "bf-%07u", i + k);
            snprintf(d[k].text, sizeof(d[k].text), "t%u", (i + k) % 1000);
            d[k].n = i + k;
        }
        sx_err err = {0};
        if (sx_docs_put(c, 0, d, n, 60000, NULL, &err) != SX_OK) {
            fprintf(stderr, "bench_backfill: load: %s\n", err.msg);
            free(d);
            return false;
        }
    }
    free(d);
    return true;
}

static bool ready(sx_cluster *c)
{
    Shardex__V1__ListIndexesResponse *l = NULL;
    sx_err err = {0};
    bool ok = false;
    if (sx_q_list_indexes(c, c->worker_addr[0], &l, &err) == SX_OK) {
        const Shardex__V1__IndexInfo *ix = sx_q_find_index(l, "bench");
        ok = ix && ix->state == SHARDEX__V1__INDEX_STATE__INDEX_STATE_READY;
    }
    sx_rpc_free(l ? &l->base : NULL);
    return ok;
}

static bool run_one(const char *p99_flag, uint32_t ndocs, double base_s, result *r)
{
    setenv("SHARDEX_BACKFILL_MAX_WRITE_P99", p99_flag, 1);
    sx_cluster c;
    sx_cluster_opts o = {.workers = 1, .partitions = 1, .replication = 1, .min_isr = 1};
    bool ok = sx_bench_cluster_start(&c, &o, 60000, "bench_backfill", p99_flag, p99_flag);
    unsetenv("SHARDEX_BACKFILL_MAX_WRITE_P99");
    ok = ok && load(&c, ndocs);
    writer w = {.c = &c, .ndocs = ndocs, .rng = 0x9e3779b97f4a7c15ull};
    if (ok) {
        pthread_create(&w.thread, NULL, writer_main, &w);
        nap_ms((long)(base_s * 1000));
        atomic_store(&w.phase, 1);
        sx_qindex ix = {
            .name = "bench", .field = "text", .local = true, .global = true, .term_partitions = 4};
        sx_err err = {0};
        uint64_t t0 = sx_clock_now_ms();
        ok = sx_q_create_index(&c, c.worker_addr[0], &ix, &err) == SX_OK;
        if (!ok)
            fprintf(stderr, "bench_backfill: create index: %s\n", err.msg);
        while (ok && !ready(&c)) {
            if (sx_clock_now_ms() - t0 > READY_MS) {
                fprintf(stderr, "bench_backfill: not READY in %d s\n", READY_MS / 1000);
                ok = false;
            }
            nap_ms(20);
        }
        r->backfill_s = (double)(sx_clock_now_ms() - t0) / 1000.0;
        atomic_store(&w.phase, 2);
        pthread_join(w.thread, NULL);
        r->rate = (double)ndocs / r->backfill_s;
        r->base = w.hist[0];
        r->during = w.hist[1];
        r->writes = w.writes;
        fprintf(stderr,
                "bench_backfill: %s: backfill %.1f s, write p99 %.2f ms before, %.2f ms during\n",
                p99_flag, r->backfill_s, sx_bench_hist_quantile(&r->base, 0.99) / 1e6,
                sx_bench_hist_quantile(&r->during, 0.99) / 1e6);
    }
    sx_bench_cluster_signal(&c);
    sx_cluster_stop(&c);
    return ok;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    uint32_t ndocs = 200000, repeat = 1;
    double base_s = 3;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--docs") == 0)
            ndocs = (uint32_t)strtoul(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--repeat") == 0)
            repeat = (uint32_t)strtoul(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--base-seconds") == 0)
            base_s = strtod(argv[i + 1], NULL);
        else {
            fprintf(stderr, "usage: bench_backfill [--docs N] [--base-seconds S] [--repeat N]\n");
            return 2;
        }
    }
    if (argc % 2 == 0 || repeat == 0 || repeat > 16 || ndocs == 0 || !(base_s > 0)) {
        fprintf(stderr, "usage: bench_backfill [--docs N] [--base-seconds S] [--repeat N] "
                        "(N > 0, repeat <= 16, S > 0)\n");
        return 2;
    }
    sx_bench_process_init("bench_backfill", NULL);
    sx_log_set_level(SX_LOG_WARN);
    /* The default bound, a tight one the throttle must act on, and none. */
    static const char *const flags[NCFG] = {"50ms", "5ms", "0"};
    static const char *const labels[NCFG] = {"50ms (default)", "5ms", "0 (unthrottled)"};
    static result res[NCFG][16];
    for (uint32_t k = 0; k < repeat; k++)
        for (int j = 0; j < NCFG; j++) {
            int cfg = (int)((j + k) % NCFG); /* rotate which goes first */
            if (!run_one(flags[cfg], ndocs, base_s, &res[cfg][k]))
                return 1;
        }
    printf("%u documents in one partition (P=1, R=1, one worker), one caller overwriting one "
           "document per Put throughout; %u repeat(s), medians; latency p50 / p99 / p99.9 in "
           "ms:\n\n",
           ndocs, repeat);
    printf("| `--backfill-max-write-p99` | backfill (s) | docs/s backfilled | writes, no backfill "
           "(baseline) | writes during the backfill | p99 during / p99 baseline |\n"
           "|---|---|---|---|---|---|\n");
    for (int cfg = 0; cfg < NCFG; cfg++) {
        double secs[16], rate[16], ratio[16];
        sx_bench_hist base = {0}, during = {0};
        for (uint32_t k = 0; k < repeat; k++) {
            secs[k] = res[cfg][k].backfill_s;
            rate[k] = res[cfg][k].rate;
            double b = sx_bench_hist_quantile(&res[cfg][k].base, 0.99);
            ratio[k] = b > 0 ? sx_bench_hist_quantile(&res[cfg][k].during, 0.99) / b : 0;
            sx_bench_hist_merge(&base, &res[cfg][k].base);
            sx_bench_hist_merge(&during, &res[cfg][k].during);
        }
        qsort(secs, repeat, sizeof(double), cmp_double);
        qsort(rate, repeat, sizeof(double), cmp_double);
        char lb[96], ld[96], rt[64];
        sx_bench_fmt_latency(&base, 1e6, 2, lb, sizeof(lb));
        sx_bench_fmt_latency(&during, 1e6, 2, ld, sizeof(ld));
        sx_bench_fmt_median_range(ratio, (int)repeat, 2, rt, sizeof(rt));
        printf("| %s | %.1f | %.0f | %s | %s | %s |\n", labels[cfg], secs[repeat / 2],
               rate[repeat / 2], lb, ld, rt);
    }
    return 0;
}
