/* wl_run.c: `sx_chaos_workload run`: writer threads that put, overwrite and
 * delete their own keys, one document per call, through libshardex, and record
 * each operation with its outcome in the history (wl_history.h).
 *
 * Each writer draws its choices (key, kind) from its own splitmix64 stream,
 * seeded by the run's seed and its number, so that the same seed makes the
 * same choices whatever the cluster answers. Values are unique per operation
 * (TAG-wW-opM), so a value read names the one operation that wrote it.
 * Writers never resend a write: each call is one operation with one outcome.
 */
#include "wl.h"

#include "clock.h"
#include "flags.h"
#include "mem.h"
#include "wl_history.h"

#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* How long run waits for its indexes to be READY. */
#define INDEX_WAIT_MS 60000

/* Set by SIGINT and SIGTERM: writers finish the operation they are in, so
 * that the history holds every operation that was sent. */
static volatile sig_atomic_t stop_requested;

typedef struct run_ctx {
    const sx_wl_cfg *cfg;
    sx_client *cl;
    const char *run; /* the tag */
    uint64_t seed;
    uint64_t deadline_ms;
    FILE *hist;
    pthread_mutex_t mu;       /* hist */
    bool write_failed;        /* a history line could not be written (under mu) */
    _Atomic uint64_t outs[3]; /* operations by outcome */
} run_ctx;

typedef struct writer {
    run_ctx *ctx;
    pthread_t thread;
    uint32_t id;
    uint64_t rnd;  /* splitmix64 state */
    uint64_t nops; /* operations made */
    bool *put;     /* per key: the writer's last choice on it was a Put (labels only) */
} writer;

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

/* Whether a failed write is proved not applied, by libshardex's rules
 * (shardex.h, "Servers, attempts and retries"): the request was invalid, or
 * no server processed it (no connection could be made, the worker had not
 * joined, or the rpc fault layer never sent it). The library applies the same
 * test (client.c, not_sent) but does not export it, so this mirrors it on the
 * message after the library's "Put via ADDR[ (attempt N)]: " prefix. */
static sx_hist_outcome classify(sx_status st, const sx_err *e)
{
    static const char *const not_sent[] = {
        "failed to connect to all addresses",
        "DNS resolution failed",
        "this worker has not joined the cluster yet",
    };
    if (st == SX_OK)
        return SX_HIST_OK;
    /* A worker that forwarded to leaders says so whatever the code. */
    if (strstr(e->msg, "may not have been written"))
        return SX_HIST_UNKNOWN;
    if (st == SX_INVALID_ARGUMENT)
        return SX_HIST_FAIL;
    if (st != SX_UNAVAILABLE)
        return SX_HIST_UNKNOWN;
    if (strstr(e->msg, ": fault injected: call failed"))
        return SX_HIST_FAIL;
    const char *m = strstr(e->msg, ": ");
    m = m ? m + 2 : e->msg;
    for (size_t i = 0; i < sizeof(not_sent) / sizeof(not_sent[0]); i++)
        if (strncmp(m, not_sent[i], strlen(not_sent[i])) == 0)
            return SX_HIST_FAIL;
    return SX_HIST_UNKNOWN;
}

/* Draws the writer's next operation: op->kind, and the key number. */
static uint32_t choose(writer *w, sx_hist_op *op)
{
    const sx_wl_cfg *cfg = w->ctx->cfg;
    uint64_t r = splitmix(&w->rnd);
    uint32_t k = (uint32_t)(r % cfg->keys), pct = (uint32_t)((r >> 32) % 100);
    if (pct < cfg->bad_pct) {
        op->kind = SX_HIST_BAD;
    } else if (pct < cfg->bad_pct + cfg->delete_pct) {
        op->kind = SX_HIST_DELETE;
        w->put[k] = false;
    } else {
        op->kind = w->put[k] ? SX_HIST_OVERWRITE : SX_HIST_PUT;
        w->put[k] = true;
    }
    return k;
}

/* Makes the call of op (key, value, kind set) and fills its outcome. */
static void perform(writer *w, sx_hist_op *op, sx_err *err)
{
    Shardex__V1__WriteToken tok = SHARDEX__V1__WRITE_TOKEN__INIT;
    sx_status st;
    op->start_ms = sx_clock_now_ms();
    if (op->kind == SX_HIST_DELETE) {
        st = sx_client_delete(w->ctx->cl, &op->key, 1, &tok, err);
    } else {
        char g[32];
        Shardex__V1__Document *doc = sx_doc_new(op->key);
        sx_doc_add_str(doc, "v", op->value);
        sx_doc_add_str(doc, "g", sx_hist_group(op->value, w->ctx->cfg->groups, g, sizeof(g)));
        if (op->kind == SX_HIST_BAD)
            sx_doc_add_str(doc, "", "field names are never empty");
        st = sx_client_put(w->ctx->cl, &doc, 1, &tok, err);
        sx_doc_free(doc);
    }
    op->end_ms = sx_clock_now_ms();
    op->outcome = classify(st, err);
    op->has_token = st == SX_OK;
    op->partition = tok.partition;
    op->offset = tok.offset;
    op->status = sx_status_name(st);
    op->msg = st == SX_OK ? "" : err->msg;
}

static void record(run_ctx *ctx, const sx_hist_op *op)
{
    char line[1024];
    sx_hist_format(op, line, sizeof(line));
    pthread_mutex_lock(&ctx->mu);
    if (fputs(line, ctx->hist) == EOF || fflush(ctx->hist) != 0)
        ctx->write_failed = true;
    pthread_mutex_unlock(&ctx->mu);
    atomic_fetch_add(&ctx->outs[op->outcome], 1);
}

static void *writer_main(void *arg)
{
    writer *w = arg;
    run_ctx *ctx = w->ctx;
    while (!stop_requested && sx_clock_now_ms() < ctx->deadline_ms) {
        sx_hist_op op = {.writer = w->id, .op = ++w->nops};
        char key[96], value[96];
        uint32_t k = choose(w, &op);
        snprintf(key, sizeof(key), "%s-w%u-k%u", ctx->run, w->id, k);
        snprintf(value, sizeof(value), "%s-w%u-op%" PRIu64, ctx->run, w->id, op.op);
        op.key = key;
        op.value = op.kind == SX_HIST_DELETE ? NULL : value;
        sx_err err = {0};
        perform(w, &op, &err);
        record(ctx, &op);
        if (ctx->cfg->pause_ms)
            sx_clock_sleep_ms(ctx->cfg->pause_ms);
    }
    return NULL;
}

/* ---------------------------------------------------------------- indexes -- */

/* 1: index `name` exists on `field`, 0: it does not exist, -1: it exists on
 * another field (err says so) or the list failed. *ready: it is READY. */
static int index_state(sx_client *cl, const char *name, const char *field, bool *ready, sx_err *err)
{
    Shardex__V1__ListIndexesResponse *r = NULL;
    if (sx_client_list_indexes(cl, &r, err) != SX_OK)
        return -1;
    int found = 0;
    for (size_t i = 0; i < r->n_indexes && !found; i++) {
        const Shardex__V1__IndexInfo *x = r->indexes[i];
        if (!x->spec || strcmp(x->spec->name, name) != 0)
            continue;
        found = strcmp(x->spec->field, field) == 0 ? 1 : -1;
        if (found < 0)
            sx_err_set(err, SX_FAILED_PRECONDITION, "index %s exists on field %s, not %s", name,
                       x->spec->field, field);
        *ready = x->state == SHARDEX__V1__INDEX_STATE__INDEX_STATE_READY;
    }
    sx_client_free(r);
    return found;
}

/* Creates index <prefix>_<field> (LOCAL and GLOBAL, strings) unless it exists,
 * and waits until it is READY. */
static sx_status ensure_index(sx_client *cl, const char *prefix, const char *field, sx_err *err)
{
    char name[80];
    snprintf(name, sizeof(name), "%s_%s", prefix, field);
    uint64_t until = sx_clock_now_ms() + INDEX_WAIT_MS;
    bool ready = false;
    int have;
    while ((have = index_state(cl, name, field, &ready, err)) != 1 || !ready) {
        if (have < 0 && err->code == SX_FAILED_PRECONDITION)
            return err->code;
        if (sx_clock_now_ms() > until)
            return sx_err_set(err, SX_UNAVAILABLE, "index %s: not READY after %d ms (%s)", name,
                              INDEX_WAIT_MS, have == 1 ? "BUILDING" : err->msg);
        if (have == 0) {
            Shardex__V1__IndexSpec spec = SHARDEX__V1__INDEX_SPEC__INIT;
            spec.name = name;
            spec.field = (char *)field;
            spec.type = SHARDEX__V1__VALUE_TYPE__VALUE_TYPE_STRING;
            spec.local = spec.global = true;
            sx_err e = {0}; /* ALREADY_EXISTS or a failure: the next list tells */
            sx_client_create_index(cl, &spec, NULL, &e);
        }
        sx_clock_sleep_ms(100);
    }
    return SX_OK;
}

/* ------------------------------------------------------------------- run -- */

/* The seed from cfg (decimal or 0x hex), or from the clock. */
static bool parse_seed(const char *s, uint64_t *out)
{
    if (!s || !*s) {
        *out = sx_clock_wall_ms() * 1000003u ^ sx_clock_now_ns();
        return true;
    }
    char *end;
    *out = strtoull(s, &end, 0);
    return *end == '\0';
}

/* Opens the history and writes its header. */
static bool open_history(run_ctx *ctx, uint64_t t0)
{
    ctx->hist = fopen(ctx->cfg->history, "w");
    if (!ctx->hist) {
        perror(ctx->cfg->history);
        return false;
    }
    sx_history h = {.seed = ctx->seed,
                    .writers = ctx->cfg->writers,
                    .keys = ctx->cfg->keys,
                    .groups = ctx->cfg->groups,
                    .t0_ms = t0};
    snprintf(h.run, sizeof(h.run), "%s", ctx->run);
    snprintf(h.index, sizeof(h.index), "%s", ctx->cfg->index);
    char line[512];
    sx_hist_format_header(&h, line, sizeof(line));
    fputs(line, ctx->hist);
    fprintf(ctx->hist, "# servers=%s timeout_ms=%" PRIu64 " delete_pct=%u bad_pct=%u\n",
            ctx->cfg->servers, ctx->cfg->timeout_ms, ctx->cfg->delete_pct, ctx->cfg->bad_pct);
    return fflush(ctx->hist) == 0;
}

/* Runs the writers to the deadline (or a signal) and waits for them. */
static void run_writers(run_ctx *ctx)
{
    uint32_t n = ctx->cfg->writers;
    writer *w = sx_calloc(n, sizeof(*w));
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    for (uint32_t i = 0; i < n; i++) {
        w[i] = (writer){.ctx = ctx, .id = i, .rnd = ctx->seed ^ (0x5851f42d4c957f2dull * (i + 1))};
        w[i].put = sx_calloc(ctx->cfg->keys, sizeof(bool));
        if (pthread_create(&w[i].thread, NULL, writer_main, &w[i]) != 0)
            abort();
    }
    for (uint32_t i = 0; i < n; i++) {
        pthread_join(w[i].thread, NULL);
        free(w[i].put);
    }
    free(w);
}

int sx_wl_run(const sx_wl_cfg *cfg)
{
    run_ctx ctx = {.cfg = cfg};
    char tag[32];
    if (!parse_seed(cfg->seed, &ctx.seed)) {
        fprintf(stderr, "sx_chaos_workload run: --seed: \"%s\" is not a number\n", cfg->seed);
        return SX_WL_EXIT_USAGE;
    }
    snprintf(tag, sizeof(tag), "r%" PRIx64, sx_clock_wall_ms());
    ctx.run = cfg->run && *cfg->run ? cfg->run : tag;
    printf("seed=%" PRIu64 " run=%s (--seed %" PRIu64 " makes the same choices)\n", ctx.seed,
           ctx.run, ctx.seed);
    fflush(stdout);
    sx_err err = {0};
    if (sx_wl_client_open(cfg, &ctx.cl, &err) != SX_OK ||
        ensure_index(ctx.cl, cfg->index, "v", &err) != SX_OK ||
        ensure_index(ctx.cl, cfg->index, "g", &err) != SX_OK) {
        fprintf(stderr, "sx_chaos_workload run: %s\n", err.msg);
        sx_client_close(ctx.cl);
        return SX_WL_EXIT_UNAVAILABLE;
    }
    uint64_t t0 = sx_clock_now_ms();
    ctx.deadline_ms = t0 + (uint64_t)cfg->seconds * 1000;
    pthread_mutex_init(&ctx.mu, NULL);
    int code = SX_WL_EXIT_IO;
    if (open_history(&ctx, t0)) {
        run_writers(&ctx);
        fprintf(ctx.hist, "# end t1=%" PRIu64 "\n", sx_clock_now_ms());
        code = ctx.write_failed || fflush(ctx.hist) != 0 ? SX_WL_EXIT_IO : SX_WL_EXIT_OK;
    }
    if (ctx.hist && fclose(ctx.hist) != 0)
        code = SX_WL_EXIT_IO;
    printf("operations: ok=%" PRIu64 " fail=%" PRIu64 " unknown=%" PRIu64 " in %.1f s%s\n",
           atomic_load(&ctx.outs[SX_HIST_OK]), atomic_load(&ctx.outs[SX_HIST_FAIL]),
           atomic_load(&ctx.outs[SX_HIST_UNKNOWN]), (double)(sx_clock_now_ms() - t0) / 1000.0,
           stop_requested ? " (stopped by a signal)" : "");
    pthread_mutex_destroy(&ctx.mu);
    sx_client_close(ctx.cl);
    return code;
}

sx_status sx_wl_client_open(const sx_wl_cfg *cfg, sx_client **out, sx_err *err)
{
    char *list = sx_strdup(cfg->servers ? cfg->servers : ""), *save = NULL;
    const char *servers[SX_CLIENT_MAX_SERVERS];
    size_t n = 0;
    sx_status st = SX_OK;
    for (char *s = strtok_r(list, ",", &save); s && st == SX_OK; s = strtok_r(NULL, ",", &save)) {
        if (n == SX_CLIENT_MAX_SERVERS)
            st = sx_err_set(err, SX_INVALID_ARGUMENT, "--servers: more than %d addresses",
                            SX_CLIENT_MAX_SERVERS);
        else if (sx_hostport_parse(s, NULL, 0, NULL, err) == SX_OK)
            servers[n++] = s;
        else
            st = sx_err_prefix(err, "--servers");
    }
    sx_client_opts o = {.servers = servers, .nservers = n, .timeout_ms = cfg->timeout_ms};
    if (st == SX_OK)
        st = sx_client_open(&o, out, err); /* copies the addresses */
    free(list);
    return st;
}
