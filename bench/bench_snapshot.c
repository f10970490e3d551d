/* bench_snapshot: how long a new replica takes to catch up, from a snapshot
 * of its leader's store (log retention on, `--log-retention min`) against a
 * copy of the whole log (retention off, the baseline), for several log
 * lengths and live data sizes (issue 14), in the same run, alternately
 * (BENCHMARKING.md).
 *
 *   bench_snapshot [--sizes DOCSxROUNDS,...] [--repeat N]
 *
 * For each size and configuration: a fresh cluster (a coordinator and 3
 * workers on loopback, P=2, R=3, min_isr 2, lease 1000 ms) through
 * tests/support/cluster.h; DOCS documents (about 240 bytes each) written
 * ROUNDS times (so the log holds about DOCS x ROUNDS / P entries per
 * partition with retention off, and DOCS / P live documents); worker 2 is
 * then killed, its partition stores removed (so it comes back empty, as a
 * new replica does: its stores are reported lost and it copies everything),
 * and restarted. Measured: milliseconds from the restart until the
 * coordinator's map has worker 2 in the ISR of every partition (which
 * includes the worker's start and registration, the same in both rows).
 * The run fails (exit 1) if a sampled document does not read back or the
 * replicas disagree afterwards. Markdown on stdout, progress on stderr.
 */
#include "checker.h"
#include "clock.h"
#include "cluster.h"
#include "docs.h"
#include "log.h"
#include "mem.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define P 2
#define BATCH 50
#define PAD_BYTES 200
#define SETTLE_MS 120000
#define MAX_SIZES 8
#define MAX_REPEAT 9

static bool put_round(sx_cluster *c, uint32_t ndocs, uint32_t round)
{
    static char pad[PAD_BYTES + 1];
    memset(pad, 'p', PAD_BYTES);
    sx_doc_spec d[BATCH];
    for (uint32_t i = 0; i < ndocs; i += BATCH) {
        uint32_t n = ndocs - i < BATCH ? ndocs - i : BATCH;
        for (uint32_t k = 0; k < n; k++) {
            memset(&d[k], 0, sizeof(d[k]));
            snprintf(d[k].id, sizeof(d[k].id), "snap-%u", i + k);
            snprintf(d[k].text, sizeof(d[k].text), "round %u", round);
            d[k].n = round;
            d[k].pad = pad;
        }
        sx_status st = SX_UNAVAILABLE;
        for (uint32_t t = 0; t < 5 && st != SX_OK; t++) {
            sx_err err = {0};
            st = sx_docs_put(c, (i / BATCH + t) % c->nworkers, d, n, 15000, NULL, &err);
            if (st != SX_OK)
                fprintf(stderr, "bench_snapshot: put: %s\n", err.msg);
        }
        if (st != SX_OK)
            return false;
    }
    return true;
}

static bool in_no_isr(sx_cluster *c, uint32_t w)
{
    for (uint32_t p = 0; p < P; p++) {
        sx_cluster_part_view v = sx_cluster_part_view_of(c, p);
        if (!v.ok || (v.isr_mask & (1u << w)))
            return false;
    }
    return true;
}

static bool in_every_isr(sx_cluster *c, uint32_t w)
{
    for (uint32_t p = 0; p < P; p++) {
        sx_cluster_part_view v = sx_cluster_part_view_of(c, p);
        if (!v.ok || !(v.isr_mask & (1u << w)))
            return false;
    }
    return true;
}

/* Catch-up milliseconds of an emptied worker 2, or -1 on failure. */
static double run_one(bool retention, uint32_t ndocs, uint32_t rounds)
{
    setenv("SHARDEX_LOG_RETENTION", retention ? "min" : "off", 1);
    unsetenv("SHARDEX_LOG_RETENTION_ENTRIES");
    sx_cluster_opts o = {.workers = 3, .partitions = P, .replication = 3, .lease_ms = 1000};
    sx_cluster *c = sx_cluster_start_settled(&o, SETTLE_MS);
    if (!c)
        return -1;
    double ms = -1;
    bool ok = true;
    for (uint32_t r = 1; r <= rounds && ok; r++)
        ok = put_round(c, ndocs, r);
    char why[256] = "";
    if (ok && !sx_check_replicas(c, SETTLE_MS, why, sizeof(why))) {
        fprintf(stderr, "bench_snapshot: replicas before: %s\n", why);
        ok = false;
    }
    if (ok) {
        sx_cluster_kill_worker(c, 2);
        char cmd[700];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s/w2/partitions'", c->dir);
        ok = system(cmd) == 0;
        /* Out of every ISR first (the leaders drop it after the lag
         * timeout): in it, it would count as caught up at once. */
        uint64_t t = sx_clock_now_ms();
        while (ok && !in_no_isr(c, 2)) {
            ok = sx_clock_now_ms() - t < SETTLE_MS;
            sx_clock_sleep_ms(10);
        }
    }
    uint64_t t0 = sx_clock_now_ms();
    if (ok)
        ok = sx_cluster_start_worker(c, 2);
    while (ok && !in_every_isr(c, 2)) {
        if (sx_clock_now_ms() - t0 > SETTLE_MS) {
            fprintf(stderr, "bench_snapshot: worker 2 did not catch up\n");
            ok = false;
        }
        sx_clock_sleep_ms(10);
    }
    if (ok)
        ms = (double)(sx_clock_now_ms() - t0);
    if (ok && !sx_check_replicas(c, SETTLE_MS, why, sizeof(why))) {
        fprintf(stderr, "bench_snapshot: replicas after: %s\n", why);
        ms = -1;
    }
    for (uint32_t i = 0; ms >= 0 && i < ndocs; i += 97) {
        char id[32], want[32];
        snprintf(id, sizeof(id), "snap-%u", i);
        snprintf(want, sizeof(want), "round %u", rounds);
        Shardex__V1__GetResponse *g = NULL;
        sx_err err = {0};
        if (sx_docs_get(c, 2, id, NULL, &g, &err) != SX_OK || !g->found ||
            strcmp(sx_doc_text(g->doc), want) != 0) {
            fprintf(stderr, "bench_snapshot: %s does not read back as '%s'\n", id, want);
            ms = -1;
        }
        sx_rpc_free(g ? &g->base : NULL);
    }
    sx_cluster_stop(c);
    free(c);
    return ms;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    const char *sizes = "2000x5,2000x25,10000x5";
    uint32_t repeat = 1;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--sizes") == 0)
            sizes = argv[i + 1];
        else if (strcmp(argv[i], "--repeat") == 0)
            repeat = (uint32_t)strtoul(argv[i + 1], NULL, 10);
        else {
            fprintf(stderr, "usage: bench_snapshot [--sizes DOCSxROUNDS,...] [--repeat N]\n");
            return 2;
        }
    }
    uint32_t docs[MAX_SIZES], rounds[MAX_SIZES], n = 0;
    for (const char *s = sizes; *s && n < MAX_SIZES;) {
        char *end;
        docs[n] = (uint32_t)strtoul(s, &end, 10);
        if (*end != 'x')
            return 2;
        rounds[n] = (uint32_t)strtoul(end + 1, &end, 10);
        if (!docs[n] || !rounds[n] || (*end && *end != ','))
            return 2;
        n++;
        s = *end ? end + 1 : end;
    }
    if (n == 0 || repeat == 0 || repeat > MAX_REPEAT)
        return 2;
    sx_log_set_level(SX_LOG_WARN);
    printf("A new replica (worker 2 emptied and restarted) catching up on P=%d partitions, R=3, "
           "documents of about %u bytes; %u repeat(s), medians:\n\n",
           P, PAD_BYTES + 40, repeat);
    printf("| live documents | writes | log per partition, retention off (entries) | live "
           "data per replica | catch-up, full log copy (ms) | catch-up, snapshot (ms) | "
           "snapshot / full log |\n|---|---|---|---|---|---|---|\n");
    for (uint32_t z = 0; z < n; z++) {
        double t[2][MAX_REPEAT];
        for (uint32_t k = 0; k < repeat; k++)
            for (int j = 0; j < 2; j++) {
                int cfg = (k % 2) ? 1 - j : j; /* alternate which goes first */
                fprintf(stderr, "bench_snapshot: %ux%u repeat %u, %s\n", docs[z], rounds[z], k + 1,
                        cfg ? "snapshot" : "full log");
                t[cfg][k] = run_one(cfg == 1, docs[z], rounds[z]);
                if (t[cfg][k] < 0)
                    return 1;
            }
        qsort(t[0], repeat, sizeof(double), cmp_double);
        qsort(t[1], repeat, sizeof(double), cmp_double);
        double full = t[0][repeat / 2], snap = t[1][repeat / 2];
        uint64_t writes = (uint64_t)docs[z] * rounds[z];
        printf("| %u | %" PRIu64 " | %" PRIu64 " | %.1f MiB | %.0f | %.0f | %.2f |\n", docs[z],
               writes, writes / P, (double)docs[z] * (PAD_BYTES + 40) / (1 << 20), full, snap,
               full > 0 ? snap / full : 0);
    }
    return 0;
}
