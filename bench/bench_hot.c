/* bench_hot: what salting one hot value of a GLOBAL index changes (issue 17,
 * "hot values"; docs/indexes.md "Hot values"): the rate at which its entries
 * become indexed under a steady writer, the write acknowledgements, the
 * read-your-writes wait and the equality query latency, unsalted against
 * salted in alternating windows of the same run (BENCHMARKING.md).
 *
 *   bench_hot [--rounds N] [--seconds S] [--callers N] [--workers N]
 *             [--cpu-quota Q] [--ids N]   (--help: each with its default)
 *
 * The subject: per configuration a fresh cluster started through
 * tests/support/cluster.h (a coordinator and --workers workers as processes
 * on loopback, P=8, R=3 with min_isr 2 or R=1, settled) with two GLOBAL-only
 * hash indexes of M=8 term partitions: "m_plain" on the int field m and
 * "m_salt" on the int field s, the value HOT of s salted over K=8 (the
 * default ways, every term partition) before anything is written. A window
 * of the unsalted variant writes documents {m: HOT}, one of the salted
 * {s: HOT}, each from its own pool of ids, so each window changes one index
 * only, every change of which is of the one hot value: unsalted, all go to
 * one term partition on one owner; salted, to 8 spread over the owners by a
 * hash of the id. With 8 workers every worker leads one log partition,
 * follows two and owns one term partition of each index: the same work,
 * but for the hot value's.
 *
 * Configurations, in this order: "uncapped", R=3 (every process shares the
 * machine's cores); "capped", R=3: each worker in a cgroup v1 cpu group of
 * its own with a CFS quota of --cpu-quota of a core (10 ms periods), which
 * models small machines of their own: the owner of the hot value's term
 * partition is limited to its own share, as on a separate machine, while
 * the load generator keeps the rest of the cores; and capped, R=1, where a
 * worker has only its own leaders' log work (1/N of it, about a machine's
 * share in a cluster of 3N with R=3), so the owner's indexing is a larger
 * part of its work, as on a larger cluster. Capping needs root and the
 * cgroup v1 cpu controller at /sys/fs/cgroup/cpu; without them the capped
 * configurations are skipped, and the report says why. The groups
 * (shardex-bench-hot.PID.wN) are removed on every exit path this process
 * controls; bench/run.sh also removes empty leftovers.
 *
 * A window: --callers closed-loop threads put batches of 50 for --seconds
 * (each batch through the next worker), while a probe thread asks an eq
 * query on HOT with the tokens of every put acknowledged so far and times
 * its answer (read-your-writes wait: how far the term partitions lag), one
 * probe after another, at most every 50 ms. When the writers stop, an eq
 * query with every token waits until the term partitions have every change:
 * acked docs/s = docs / (start to the last acknowledgement), indexed docs/s
 * = docs / (start to that answer), catch-up = the time after the last
 * acknowledgement. Then 100 eq queries on HOT (limit 100, no token) on the
 * quiet cluster. Worker CPU (/proc) over the writing part of the window,
 * in cores and per acknowledged document: the owner of the hot value's term
 * partition (unsalted) against the mean of the others, which shows whether
 * it is the bottleneck and how much of its work salting can spread.
 * Markdown on stdout, progress on stderr.
 */
#include "benchlib.h"
#include "clock.h"
#include "cluster.h"
#include "ixkey.h"
#include "mem.h"
#include "query.h"
#include "rpc.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PARTITIONS 8
#define SETTLE_MS 60000
#define M 8
#define WAYS 8 /* the coordinator's default --hot-value-ways, every term partition */
#define HOT 4242
#define BATCH 50
#define NQ 100
#define MAX_ROUNDS 50
#define MAX_CALLERS 64
#define PROBE_EVERY_MS 50
#define CG_ROOT "/sys/fs/cgroup/cpu"
#define CG_PERIOD_US 10000 /* short periods: a capped worker is slow, not paused for 70 ms */

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

typedef struct params {
    uint32_t rounds;
    const char *seconds;
    uint32_t callers;
    uint32_t workers;
    const char *cpu_quota;
    uint32_t ids;
} params;

/* The two variants, measured alternately on the same cluster. */
typedef struct variant {
    const char *label;
    const char *index;
    const char *field;
    char idp; /* the first letter of its ids */
} variant;

static const variant variants[2] = {
    {.label = "unsalted (one term partition)", .index = "m_plain", .field = "m", .idp = 'p'},
    {.label = "salted over K=8", .index = "m_salt", .field = "s", .idp = 's'},
};

/* What one variant measured in one configuration. */
typedef struct result {
    double acked[MAX_ROUNDS], indexed[MAX_ROUNDS], catchup_ms[MAX_ROUNDS];
    double owner[MAX_ROUNDS], others[MAX_ROUNDS];       /* cores: the hot owner, the others' mean */
    double owner_us[MAX_ROUNDS], others_us[MAX_ROUNDS]; /* the same, CPU us per acked doc */
    sx_bench_hist ryw;                                  /* read-your-writes probes */
    sx_bench_hist eq;                                   /* eq on HOT, quiet */
    uint32_t contacted;
    uint64_t probe_failed, eq_failed;
} result;

static uint64_t rnd(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void tokens_merge(sx_qtokens *into, const sx_qtokens *t)
{
    for (int i = 0; i < SX_QTOKENS_MAX; i++)
        if (t->off[i] > into->off[i])
            into->off[i] = t->off[i];
}

/* ------------------------------------------------------------- cgroups -- */

/* The cpu groups this process made, for cg_remove on every exit path. */
static char g_cg_dir[SX_TEST_MAX_WORKERS][128];
static uint32_t g_cg_n;

static bool write_file(const char *dir, const char *file, const char *text, char *why, size_t cap)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", dir, file);
    FILE *f = fopen(path, "w");
    if (!f) {
        snprintf(why, cap, "%s: %s", path, strerror(errno));
        return false;
    }
    bool ok = fputs(text, f) >= 0;
    ok = (fclose(f) == 0) && ok; /* cgroup files report a refused value at the flush */
    if (!ok)
        snprintf(why, cap, "%s: writing \"%s\": %s", path, text, strerror(errno));
    return ok;
}

/* Moves every process still in each group back to the root group and removes
 * the groups (a group with processes cannot be removed). Idempotent. */
static void cg_remove(void)
{
    for (uint32_t i = 0; i < g_cg_n; i++) {
        char path[256], line[32], why[300];
        snprintf(path, sizeof(path), "%s/cgroup.procs", g_cg_dir[i]);
        FILE *f = fopen(path, "r");
        while (f && fgets(line, sizeof(line), f))
            write_file(CG_ROOT, "cgroup.procs", line, why, sizeof(why));
        if (f)
            fclose(f);
        if (rmdir(g_cg_dir[i]) != 0 && errno != ENOENT)
            fprintf(stderr, "bench_hot: rmdir %s: %s\n", g_cg_dir[i], strerror(errno));
    }
    g_cg_n = 0;
}

/* Why capping cannot run here ("" when it can). */
static void cg_check(char *why, size_t cap)
{
    why[0] = '\0';
    if (geteuid() != 0)
        snprintf(why, cap, "not root (cgroups need it)");
    else if (access(CG_ROOT "/cpu.cfs_quota_us", W_OK) != 0)
        snprintf(why, cap, "no cgroup v1 cpu controller at " CG_ROOT " (%s)", strerror(errno));
}

/* Puts each worker of c in a cpu group of its own with quota `share` of a
 * core: false with why on failure (the groups made so far are removed). */
static bool cg_cap(const sx_cluster *c, double share, char *why, size_t cap)
{
    for (uint32_t i = 0; i < c->nworkers; i++) {
        char *dir = g_cg_dir[g_cg_n];
        snprintf(dir, sizeof(g_cg_dir[0]), CG_ROOT "/shardex-bench-hot.%d.w%u", (int)getpid(), i);
        if (mkdir(dir, 0755) != 0) {
            snprintf(why, cap, "mkdir %s: %s", dir, strerror(errno));
            cg_remove();
            return false;
        }
        g_cg_n++;
        char v[32];
        snprintf(v, sizeof(v), "%d", CG_PERIOD_US);
        bool ok = write_file(dir, "cpu.cfs_period_us", v, why, cap);
        snprintf(v, sizeof(v), "%d", (int)(share * CG_PERIOD_US + 0.5));
        ok = ok && write_file(dir, "cpu.cfs_quota_us", v, why, cap);
        /* cgroup.procs moves every thread of the process, not just this one. */
        snprintf(v, sizeof(v), "%d", (int)c->worker_pid[i]);
        ok = ok && write_file(dir, "cgroup.procs", v, why, cap);
        if (!ok) {
            cg_remove();
            return false;
        }
    }
    return true;
}

/* -------------------------------------------------------------- window -- */

typedef struct window {
    sx_cluster *c;
    const params *p;
    const variant *v;
    uint32_t pool; /* ids of this variant */
    _Atomic bool stop;
    pthread_mutex_t mu; /* the fields below */
    sx_qtokens toks;    /* of every put acknowledged so far */
    uint64_t docs, failed;
    uint64_t last_ack_ns;
    char err[256];
    result *r;
} window;

typedef struct caller {
    window *w;
    uint32_t k;
    uint64_t rng;
    pthread_t t;
} caller;

static void *caller_main(void *arg)
{
    caller *k = arg;
    window *w = k->w;
    sx_qdoc *docs = sx_calloc(BATCH, sizeof(*docs));
    for (uint32_t n = k->k; !atomic_load(&w->stop) && !g_stop; n++) {
        for (int i = 0; i < BATCH; i++) {
            memset(&docs[i], 0, sizeof(docs[i]));
            snprintf(docs[i].id, sizeof(docs[i].id), "%c-%07u", w->v->idp,
                     (unsigned)(rnd(&k->rng) % w->pool));
            sx_qdoc_add(&docs[i], w->v->field, sx_qval_int(HOT));
        }
        sx_qtokens t = {0};
        sx_err err = {0};
        sx_status st = sx_q_put(w->c, w->c->worker_addr[n % w->c->nworkers], docs, BATCH, 30000, &t,
                                NULL, &err);
        uint64_t now = sx_clock_now_ns();
        pthread_mutex_lock(&w->mu);
        if (st == SX_OK) {
            tokens_merge(&w->toks, &t);
            w->docs += BATCH;
            w->last_ack_ns = now;
        } else {
            w->failed++;
            snprintf(w->err, sizeof(w->err), "%s", err.msg);
        }
        pthread_mutex_unlock(&w->mu);
    }
    free(docs);
    return NULL;
}

/* An eq query on HOT in index through worker via (mod their number); with after, it waits for those
 * writes. */
static sx_status eq_query(sx_cluster *c, const char *index, uint32_t via, const sx_qtokens *after,
                          uint32_t limit, uint32_t *contacted, sx_err *err)
{
    sx_qreq q = {.index = index,
                 .match = {.eq = sx_qval_int(HOT)},
                 .mode = SHARDEX__V1__MODE__MODE_GLOBAL,
                 .limit = limit,
                 .after = after,
                 .timeout_ms = 120000};
    Shardex__V1__QueryResponse *resp = NULL;
    sx_status st = sx_q_query(c, c->worker_addr[via % c->nworkers], &q, NULL, &resp, err);
    if (st == SX_OK && contacted)
        *contacted = resp->partitions_contacted;
    if (resp)
        sx_rpc_free(&resp->base);
    return st;
}

static void *probe_main(void *arg)
{
    window *w = arg;
    for (uint32_t n = 0; !atomic_load(&w->stop) && !g_stop; n++) {
        uint64_t s = sx_clock_now_ns();
        pthread_mutex_lock(&w->mu);
        sx_qtokens t = w->toks;
        pthread_mutex_unlock(&w->mu);
        sx_err err = {0};
        if (eq_query(w->c, w->v->index, n, &t, 1, NULL, &err) == SX_OK)
            sx_bench_hist_add(&w->r->ryw, sx_clock_now_ns() - s);
        else
            w->r->probe_failed++;
        uint64_t took_ms = (sx_clock_now_ns() - s) / 1000000;
        if (took_ms < PROBE_EVERY_MS)
            sx_clock_sleep_ms(PROBE_EVERY_MS - took_ms);
    }
    return NULL;
}

static void worker_cpu(const sx_cluster *c, uint64_t *us)
{
    for (uint32_t i = 0; i < c->nworkers; i++)
        us[i] = sx_bench_proc_cpu_us(c->worker_pid[i], NULL);
}

/* One window of variant v in round `round`; false on a failure (printed). */
static bool run_window(sx_cluster *c, const params *p, double seconds, const variant *v, result *r,
                       int round, uint64_t seed, uint32_t owner)
{
    window w = {.c = c, .p = p, .v = v, .pool = p->ids, .r = r};
    atomic_init(&w.stop, false);
    pthread_mutex_init(&w.mu, NULL);
    caller *ks = sx_calloc(p->callers, sizeof(*ks));
    uint64_t cpu0[SX_TEST_MAX_WORKERS], cpu1[SX_TEST_MAX_WORKERS];
    worker_cpu(c, cpu0);
    uint64_t t0 = sx_clock_now_ns();
    for (uint32_t i = 0; i < p->callers; i++) {
        ks[i] = (caller){.w = &w, .k = i, .rng = seed ^ ((uint64_t)i * 7919u)};
        pthread_create(&ks[i].t, NULL, caller_main, &ks[i]);
    }
    pthread_t probe;
    pthread_create(&probe, NULL, probe_main, &w);
    sx_clock_sleep_ms((uint64_t)(seconds * 1000));
    atomic_store(&w.stop, true);
    for (uint32_t i = 0; i < p->callers; i++)
        pthread_join(ks[i].t, NULL);
    worker_cpu(c, cpu1);
    uint64_t t_ack = w.last_ack_ns;
    sx_err err = {0};
    bool ok = w.failed == 0 && w.docs > 0;
    if (!ok)
        fprintf(stderr, "bench_hot: %s: %" PRIu64 " puts failed: %s\n", v->label, w.failed, w.err);
    ok = ok && eq_query(c, v->index, 0, &w.toks, 1, NULL, &err) == SX_OK;
    uint64_t t_idx = sx_clock_now_ns();
    pthread_join(probe, NULL);
    if (ok) {
        r->acked[round] = (double)w.docs / ((double)(t_ack - t0) / 1e9);
        r->indexed[round] = (double)w.docs / ((double)(t_idx - t0) / 1e9);
        r->catchup_ms[round] = (double)(t_idx - t_ack) / 1e6;
        double span = (double)(t_ack - t0) / 1e3, rest = 0;
        for (uint32_t i = 0; i < c->nworkers; i++)
            if (i != owner)
                rest += (double)(cpu1[i] - cpu0[i]);
        rest /= (double)(c->nworkers - 1);
        double own = (double)(cpu1[owner] - cpu0[owner]);
        r->owner[round] = own / span;
        r->others[round] = rest / span;
        r->owner_us[round] = own / (double)w.docs;
        r->others_us[round] = rest / (double)w.docs;
        for (int i = 0; i < NQ && !g_stop; i++) {
            uint64_t s = sx_clock_now_ns();
            if (eq_query(c, v->index, (uint32_t)i, NULL, 100, &r->contacted, &err) == SX_OK)
                sx_bench_hist_add(&r->eq, sx_clock_now_ns() - s);
            else
                r->eq_failed++;
        }
        fprintf(stderr,
                "bench_hot: round %d %-30s acked %.0f/s indexed %.0f/s catch-up %.0f ms, "
                "hot owner %.2f cores, others %.2f\n",
                round + 1, v->label, r->acked[round], r->indexed[round], r->catchup_ms[round],
                r->owner[round], r->others[round]);
    } else if (err.msg[0]) {
        fprintf(stderr, "bench_hot: %s: query with the tokens: %s\n", v->label, err.msg);
    }
    free(ks);
    pthread_mutex_destroy(&w.mu);
    return ok && !g_stop;
}

/* --------------------------------------------------------------- setup -- */

/* The test index of the worker owning the term partition HOT routes to
 * unsalted in index `name` (for a salted index: its salt's first
 * partition), or SX_CLUSTER_NONE. */
static uint32_t hot_owner(sx_cluster *c, const char *name)
{
    Shardex__Internal__V1__ClusterMap *m = sx_cluster_map(c);
    uint32_t owner = SX_CLUSTER_NONE;
    for (size_t i = 0; m && i < m->n_indexes; i++) {
        const Shardex__Internal__V1__IndexEntry *e = m->indexes[i];
        if (strcmp(e->spec->name, name) != 0)
            continue;
        sx_ixkey_def d;
        sx_ixkey_def_from_spec(&d, e->id, e->spec);
        Shardex__V1__Value v = SHARDEX__V1__VALUE__INIT;
        v.kind_case = SHARDEX__V1__VALUE__KIND_I;
        v.i = HOT;
        sx_buf b = {0};
        if (sx_ixkey_append_value(&b, true, &v)) {
            size_t t = e->first_term + sx_ixkey_term_of(&d, b.data, b.len);
            if (t < m->n_terms && m->terms[t]->owner >= 0)
                owner = sx_cluster_test_index(c, m, m->terms[t]->owner);
        }
        sx_buf_free(&b);
    }
    if (m)
        sx_rpc_free(&m->base);
    return owner;
}

/* How the map spreads the work over the workers, as "leaders a-b,
 * replicas a-b, term partitions a-b per worker" (fewest - most), into buf:
 * the owner's extra work is the hot value's only when these are even. */
static void layout_of(sx_cluster *c, char *buf, size_t cap)
{
    uint32_t lead[SX_TEST_MAX_WORKERS] = {0}, rep[SX_TEST_MAX_WORKERS] = {0},
             own[SX_TEST_MAX_WORKERS] = {0};
    Shardex__Internal__V1__ClusterMap *m = sx_cluster_map(c);
    for (size_t p = 0; m && p < m->n_partitions; p++) {
        const Shardex__Internal__V1__LogPartition *lp = m->partitions[p];
        uint32_t i = lp->leader >= 0 ? sx_cluster_test_index(c, m, lp->leader) : SX_CLUSTER_NONE;
        if (i < c->nworkers)
            lead[i]++;
        for (size_t k = 0; k < lp->n_replicas; k++)
            if ((i = sx_cluster_test_index(c, m, lp->replicas[k])) < c->nworkers)
                rep[i]++;
    }
    for (size_t t = 0; m && t < m->n_terms; t++) {
        uint32_t i = m->terms[t]->owner >= 0 ? sx_cluster_test_index(c, m, m->terms[t]->owner)
                                             : SX_CLUSTER_NONE;
        if (i < c->nworkers)
            own[i]++;
    }
    if (m)
        sx_rpc_free(&m->base);
    uint32_t lo[3] = {UINT32_MAX, UINT32_MAX, UINT32_MAX}, hi[3] = {0};
    for (uint32_t i = 0; i < c->nworkers; i++) {
        uint32_t v[3] = {lead[i], rep[i], own[i]};
        for (int k = 0; k < 3; k++) {
            lo[k] = v[k] < lo[k] ? v[k] : lo[k];
            hi[k] = v[k] > hi[k] ? v[k] : hi[k];
        }
    }
    snprintf(buf, cap,
             "leads %u-%u log partitions, holds %u-%u replicas, owns %u-%u term partitions", lo[0],
             hi[0], lo[1], hi[1], lo[2], hi[2]);
}

/* Whether the map's first salt of index `name` is active. */
static bool salt_active(sx_cluster *c, const char *name)
{
    Shardex__Internal__V1__ClusterMap *m = sx_cluster_map(c);
    bool active = false;
    for (size_t i = 0; m && i < m->n_indexes; i++)
        if (strcmp(m->indexes[i]->spec->name, name) == 0 && m->indexes[i]->n_salts)
            active = m->indexes[i]->salts[0]->active;
    if (m)
        sx_rpc_free(&m->base);
    return active;
}

/* Creates both indexes, salts HOT of the salted one and waits until the salt
 * is active and every worker's eq on HOT reads WAYS partitions. */
static bool setup_indexes(sx_cluster *c)
{
    sx_err err = {0};
    for (int k = 0; k < 2; k++) {
        sx_qindex ix = {.name = variants[k].index,
                        .field = variants[k].field,
                        .is_int = true,
                        .global = true,
                        .term_partitions = M};
        if (sx_q_create_index(c, c->worker_addr[0], &ix, &err) != SX_OK ||
            !sx_q_wait_ready(c, c->worker_addr[0], ix.name, SETTLE_MS)) {
            fprintf(stderr, "bench_hot: create index %s: %s\n", ix.name, err.msg);
            return false;
        }
    }
    Shardex__V1__SaltIndexRequest req = SHARDEX__V1__SALT_INDEX_REQUEST__INIT;
    Shardex__V1__Value v = SHARDEX__V1__VALUE__INIT;
    v.kind_case = SHARDEX__V1__VALUE__KIND_I;
    v.i = HOT;
    req.name = (char *)variants[1].index;
    req.value = &v;
    req.ways = WAYS;
    ProtobufCMessage *resp = NULL;
    sx_rpc_call_opts o = {.timeout_ms = 10000};
    if (sx_rpc_invoke(c->rpc, c->worker_addr[0], &shardex__v1__shardex__descriptor, "SaltIndex",
                      &req.base, &resp, &o, &err) != SX_OK) {
        fprintf(stderr, "bench_hot: salt: %s\n", err.msg);
        return false;
    }
    sx_rpc_free(resp);
    uint64_t t0 = sx_clock_now_ms();
    while (!g_stop && sx_clock_now_ms() - t0 < SETTLE_MS) {
        bool done = salt_active(c, variants[1].index);
        for (uint32_t i = 0; done && i < c->nworkers; i++) {
            uint32_t n = 0;
            done = eq_query(c, variants[1].index, i, NULL, 1, &n, &err) == SX_OK && n == WAYS;
        }
        if (done)
            return true;
        sx_clock_sleep_ms(10); /* a bench may wait: no test asserts on it */
    }
    fprintf(stderr, "bench_hot: the salt was not active in %d ms\n", SETTLE_MS);
    return false;
}

/* -------------------------------------------------------------- report -- */

static void report_conf(const char *title, const params *p, result res[2], uint32_t owner,
                        const char *layout, bool capped)
{
    int n = (int)p->rounds;
    printf("**%s**: each worker %s; the hot value's term partition, unsalted, is on worker "
           "%u.\n\n",
           title, layout, owner);
    printf("| | acked docs/s | indexed docs/s | catch-up after the writes, ms | read-your-writes "
           "wait p50 / p99 / p99.9 ms (probes) | eq p50 / p99 / p99.9 ms, quiet (contacted) | "
           "CPU, cores: worker %u / each other (mean) | CPU us per doc: worker %u / each other |\n",
           owner, owner);
    printf("| --- | --- | --- | --- | --- | --- | --- | --- |\n");
    for (int k = 0; k < 2; k++) {
        result *r = &res[k];
        char a[64], ix[64], cu[64], ryw[64], eq[64];
        sx_bench_fmt_median_range(r->acked, n, 0, a, sizeof(a));
        sx_bench_fmt_median_range(r->indexed, n, 0, ix, sizeof(ix));
        sx_bench_fmt_median_range(r->catchup_ms, n, 0, cu, sizeof(cu));
        sx_bench_fmt_latency(&r->ryw, 1e6, 1, ryw, sizeof(ryw));
        sx_bench_fmt_latency(&r->eq, 1e6, 2, eq, sizeof(eq));
        printf(
            "| %s | %s | %s | %s | %s (%" PRIu64 ")%s | %s (%u)%s | %.2f / %.2f | %.0f / %.0f |\n",
            variants[k].label, a, ix, cu, ryw, r->ryw.count, r->probe_failed ? " + failed" : "", eq,
            r->contacted, r->eq_failed ? " + failed" : "", sx_bench_median(r->owner, n, NULL, NULL),
            sx_bench_median(r->others, n, NULL, NULL), sx_bench_median(r->owner_us, n, NULL, NULL),
            sx_bench_median(r->others_us, n, NULL, NULL));
    }
    double ra[MAX_ROUNDS], ri[MAX_ROUNDS], extra[MAX_ROUNDS];
    for (int i = 0; i < n; i++) {
        ra[i] = res[0].acked[i] > 0 ? res[1].acked[i] / res[0].acked[i] : 0;
        ri[i] = res[0].indexed[i] > 0 ? res[1].indexed[i] / res[0].indexed[i] : 0;
        extra[i] = res[0].others_us[i] > 0 ? res[0].owner_us[i] / res[0].others_us[i] : 0;
    }
    char rab[64], rib[64], exb[64];
    sx_bench_fmt_median_range(ra, n, 2, rab, sizeof(rab));
    sx_bench_fmt_median_range(ri, n, 2, rib, sizeof(rib));
    sx_bench_fmt_median_range(extra, n, 2, exb, sizeof(exb));
    double q[2][4];
    for (int k = 0; k < 2; k++) {
        q[k][0] = sx_bench_hist_quantile(&res[k].ryw, 0.5);
        q[k][1] = sx_bench_hist_quantile(&res[k].ryw, 0.99);
        q[k][2] = sx_bench_hist_quantile(&res[k].eq, 0.5);
        q[k][3] = sx_bench_hist_quantile(&res[k].eq, 0.99);
    }
#define RATIO(j) (q[0][j] > 0 ? q[1][j] / q[0][j] : 0)
    printf("| salted / unsalted | %s | %s | | %.2f / %.2f | %.2f / %.2f | | |\n\n", rab, rib,
           RATIO(0), RATIO(1), RATIO(2), RATIO(3));
#undef RATIO
    /* Capped, every worker runs at its quota, so CPU per document is the
     * quota over the rate for all of them and says nothing of the owner. */
    if (!capped)
        printf("Unsalted, worker %u spent %s times the CPU per document of each other worker "
               "(median (min - max) of rounds): the most salting can take off it, the ceiling of "
               "its write gain when that worker is the bottleneck.\n\n",
               owner, exb);
}

/* ---------------------------------------------------------------- main -- */

#define OFF(m, t) SX_FLAG_OFFSET(params, m, t)
static const sx_flag flags[] = {
    {.name = "rounds",
     .type = SX_FLAG_UINT32,
     .offset = OFF(rounds, uint32_t),
     .help = "rounds per configuration, each a window of both variants (alternating order)",
     .min = 1,
     .max = MAX_ROUNDS},
    {.name = "seconds",
     .type = SX_FLAG_STRING,
     .offset = OFF(seconds, const char *),
     .metavar = "S",
     .help = "seconds of writing per window"},
    {.name = "callers",
     .type = SX_FLAG_UINT32,
     .offset = OFF(callers, uint32_t),
     .help = "closed-loop writer threads (batches of 50)",
     .min = 1,
     .max = MAX_CALLERS},
    {.name = "workers",
     .type = SX_FLAG_UINT32,
     .offset = OFF(workers, uint32_t),
     .help = "workers of each cluster",
     .min = 3,
     .max = SX_TEST_MAX_WORKERS},
    {.name = "cpu-quota",
     .type = SX_FLAG_STRING,
     .offset = OFF(cpu_quota, const char *),
     .metavar = "Q",
     .help = "the capped configuration's CPU per worker, a share of one core in (0, 1] "
             "(0: only the uncapped configuration)"},
    {.name = "ids",
     .type = SX_FLAG_UINT32,
     .offset = OFF(ids, uint32_t),
     .help = "ids each variant overwrites at random",
     .min = BATCH,
     .max = 10000000},
};
#undef OFF

static const sx_flags_spec spec = {
    .prog = "bench_hot",
    .synopsis = "[FLAGS]",
    .description = "Indexed and acknowledged writes per second, read-your-writes wait and eq-query "
                   "latency with one hot value of a GLOBAL index, unsalted against salted in "
                   "alternating windows, with every worker on the shared cores and with each "
                   "capped to a share of a core in a cgroup of its own (small machines). Markdown "
                   "on stdout (bench/run.sh puts it in docs/benchmarks.md), progress on stderr.",
    .flags = flags,
    .count = sizeof(flags) / sizeof(flags[0]),
};

/* One configuration on a fresh cluster: capped when quota > 0. Prints its
 * table, or for the capped one the reason it was skipped; false on failure. */
static bool run_conf(const params *p, double seconds, double quota, uint32_t replication)
{
    char title[200], why[300] = "";
    if (quota > 0) {
        cg_check(why, sizeof(why));
        if (why[0]) {
            fprintf(stderr, "bench_hot: capped configuration skipped: %s\n", why);
            printf("**Capped, R=%u**: skipped, %s.\n\n", replication, why);
            return true;
        }
        snprintf(title, sizeof(title),
                 "Capped, R=%u: each worker in a cgroup of its own with %.2f of a core "
                 "(cpu.cfs_quota_us %d per %d us), as %u small machines",
                 replication, quota, (int)(quota * CG_PERIOD_US + 0.5), CG_PERIOD_US, p->workers);
    } else {
        snprintf(title, sizeof(title),
                 "Uncapped, R=%u: every process on the machine's %ld shared cores", replication,
                 sysconf(_SC_NPROCESSORS_ONLN));
    }
    sx_cluster *c = sx_calloc(1, sizeof(*c));
    sx_cluster_opts co = {.workers = p->workers,
                          .partitions = PARTITIONS,
                          .replication = replication,
                          .min_isr = replication > 1 ? 2 : 1};
    static result res[2];
    memset(res, 0, sizeof(res));
    bool ok =
        sx_bench_cluster_start(c, &co, SETTLE_MS, "bench_hot", quota > 0 ? "capped" : "uncapped",
                               quota > 0 ? "capped" : "uncapped") &&
        setup_indexes(c);
    uint32_t owner = ok ? hot_owner(c, variants[0].index) : SX_CLUSTER_NONE;
    char layout[400] = "";
    if (ok)
        layout_of(c, layout, sizeof(layout));
    if (ok && owner == SX_CLUSTER_NONE) {
        fprintf(stderr, "bench_hot: no owner of the hot value's term partition in the map\n");
        ok = false;
    }
    if (ok && quota > 0 && !cg_cap(c, quota, why, sizeof(why))) {
        fprintf(stderr, "bench_hot: capping the workers: %s\n", why);
        ok = false;
    }
    for (uint32_t r = 0; ok && r < p->rounds; r++)
        for (int j = 0; ok && j < 2; j++) {
            int k = r % 2 ? 1 - j : j; /* alternate the order */
            ok = run_window(c, p, seconds, &variants[k], &res[k], (int)r,
                            0x407 + r * 2 + (uint64_t)k, owner);
        }
    if (ok) { /* leaderships move when a worker misses its lease: say so */
        char after[160];
        layout_of(c, after, sizeof(after));
        if (strcmp(after, layout) != 0) {
            char both[400];
            snprintf(both, sizeof(both), "%s at the start, %s at the end", layout, after);
            snprintf(layout, sizeof(layout), "%s", both);
        }
    }
    cg_remove(); /* before the stop: a capped worker drains slowly */
    sx_bench_cluster_signal(c);
    sx_cluster_stop(c);
    free(c);
    if (ok)
        report_conf(title, p, res, owner, layout, quota > 0);
    return ok;
}

int main(int argc, char **argv)
{
    const params defaults = {
        .rounds = 7, .seconds = "4", .callers = 8, .workers = 8, .cpu_quota = "0.15", .ids = 20000};
    params p = defaults;
    sx_bench_flags(&spec, &p, &defaults, argc, argv);
    double seconds = sx_bench_seconds(&spec, "seconds", p.seconds, false);
    char *end = NULL;
    double quota = strtod(p.cpu_quota, &end);
    if (!end || *end || !(quota >= 0 && quota <= 1))
        sx_bench_flag_error(&spec, "cpu-quota", "not a share of a core in [0, 1]");
    if (quota > 0 && quota * CG_PERIOD_US < 1000)
        sx_bench_flag_error(&spec, "cpu-quota",
                            "below 0.1 (the kernel's least quota is 1 ms per 10 ms)");
    /* Small machines beside a load generator that keeps up: if the workers'
     * quotas took the cores, the capped rows would measure the generator. */
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (quota * p.workers > (double)cores - 0.5) {
        char why[160];
        snprintf(why, sizeof(why),
                 "%u workers x %s leave the load generator less than half a core of %ld", p.workers,
                 p.cpu_quota, cores);
        sx_bench_flag_error(&spec, "cpu-quota", why);
    }
    sx_bench_process_init("bench_hot", on_signal);
    atexit(cg_remove);
    printf("Per configuration a fresh cluster: coordinator + %u workers, P=%d, R=3 with min_isr 2 "
           "(or R=1); two "
           "GLOBAL-only hash indexes of an int field with M=%d term partitions, the value of one "
           "salted over K=%d (the default ways) before any write. Alternating windows (order "
           "swapped every round), %u rounds: %s s of %u closed-loop writers putting batches of %d "
           "documents that all hold the one value, each variant overwriting its own %u ids, with a "
           "probe asking an eq query with every acknowledged token (read-your-writes wait) at most "
           "every %d ms; then an eq query with every token: indexed docs/s = docs / (start to its "
           "answer), catch-up = its wait after the last acknowledgement; then %d eq queries "
           "(limit 100, no token) on the quiet cluster. Worker CPU from /proc over the writing. "
           "Rates: median (min - max) of rounds; ratios: median (min - max) of the per-round "
           "ratios, latency ratios of the pooled quantiles.\n\n",
           p.workers, PARTITIONS, M, WAYS, p.rounds, p.seconds, p.callers, BATCH, p.ids,
           PROBE_EVERY_MS, NQ);
    fflush(stdout);
    /* R=3 is the deployment's; capped R=1 leaves each machine only its own
     * leaders' log work, 1/N of it, about what a machine of a cluster of
     * 3N with R=3 does (its leaders' and twice as many followers'), so the
     * owner's share of its work is what it would be on a larger cluster. */
    bool ok = run_conf(&p, seconds, 0, 3) && !g_stop;
    if (ok && quota > 0)
        ok = run_conf(&p, seconds, quota, 3) && !g_stop;
    if (ok && quota > 0)
        ok = run_conf(&p, seconds, quota, 1) && !g_stop;
    cg_remove();
    return ok ? 0 : 1;
}
