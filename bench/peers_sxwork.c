/* peers_sxwork.c: the shardex side of bench_peers' work (peers_sxwork.h). */
#include "peers_sxwork.h"

#include "benchlib.h"
#include "clock.h"
#include "mem.h"
#include "sx_limits.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SHARDEX_SVC (&shardex__v1__shardex__descriptor)
#define NWORKERS 3
#define LEASE_MS 2000
#define SETTLE_MS 60000
#define READY_MS 60000
#define CAUGHT_UP_MS 60000
#define CALL_MS 30000
#define RETRY_FOR_MS 60000 /* a failing call is made again for this long */
#define RETRY_PAUSE_MS 50
#define FAILURES_SHOWN 5 /* per target, on stderr */

/* The demo's indexes (deploy/demo.sh). */
static const struct {
    const char *name, *field;
    Shardex__V1__ValueType type;
} indexes[] = {
    {"maintainer", PEERS_F_MAINTAINER, SHARDEX__V1__VALUE_TYPE__VALUE_TYPE_STRING},
    {"section", PEERS_F_SECTION, SHARDEX__V1__VALUE_TYPE__VALUE_TYPE_STRING},
    {"installed-size", PEERS_F_SIZE, SHARDEX__V1__VALUE_TYPE__VALUE_TYPE_INT},
};
#define NINDEXES (sizeof(indexes) / sizeof(indexes[0]))

static bool create_indexes(peers_sxtarget *t, char *why, size_t cap)
{
    for (size_t i = 0; i < NINDEXES; i++) {
        Shardex__V1__IndexSpec spec = SHARDEX__V1__INDEX_SPEC__INIT;
        spec.name = (char *)indexes[i].name;
        spec.field = (char *)indexes[i].field;
        spec.type = indexes[i].type;
        spec.local = true;
        spec.global = true; /* term partitions: the cluster default (P) */
        sx_err err = {0};
        if (sx_client_create_index(t->lib, &spec, NULL, &err) != SX_OK) {
            snprintf(why, cap, "shardex R=%u: CreateIndex %s: %s", t->R, spec.name, err.msg);
            return false;
        }
    }
    return true;
}

static bool wait_ready(peers_sxtarget *t, const volatile sig_atomic_t *stop, char *why, size_t cap)
{
    uint64_t t0 = sx_clock_now_ms();
    while (sx_clock_now_ms() - t0 < READY_MS && !*stop) {
        Shardex__V1__ListIndexesResponse *r = NULL;
        size_t ready = 0;
        if (sx_client_list_indexes(t->lib, &r, NULL) == SX_OK)
            for (size_t i = 0; i < r->n_indexes; i++)
                ready += r->indexes[i]->state == SHARDEX__V1__INDEX_STATE__INDEX_STATE_READY;
        sx_client_free(r);
        if (ready >= NINDEXES)
            return true;
        sx_clock_sleep_ms(100);
    }
    snprintf(why, cap, "shardex R=%u: the indexes were not READY after %d s", t->R,
             READY_MS / 1000);
    return false;
}

bool peers_sx_start(peers_sxtarget *t, uint32_t P, uint32_t R, sx_rpc_client *rpc,
                    const volatile sig_atomic_t *stop, char *why, size_t cap)
{
    t->R = R;
    t->rpc = rpc;
    t->stop = stop;
    sx_cluster_opts o = {.workers = NWORKERS,
                         .partitions = P,
                         .replication = R,
                         .min_isr = R >= 3 ? 2 : 1,
                         .lease_ms = LEASE_MS};
    char label[32];
    snprintf(label, sizeof(label), "R=%u", R);
    t->started = true; /* even a failed start leaves processes and a directory */
    if (!sx_bench_cluster_start(&t->c, &o, SETTLE_MS, "bench_peers", label, label)) {
        snprintf(why, cap, "the shardex %s cluster did not start (see above)", label);
        return false;
    }
    const char *servers[NWORKERS];
    for (int i = 0; i < NWORKERS; i++)
        servers[i] = t->c.worker_addr[i];
    sx_client_opts co = {.servers = servers, .nservers = NWORKERS, .timeout_ms = CALL_MS};
    sx_err err = {0};
    if (sx_client_open(&co, &t->lib, &err) != SX_OK) {
        snprintf(why, cap, "libshardex: %s", err.msg);
        return false;
    }
    if (!create_indexes(t, why, cap) || !wait_ready(t, stop, why, cap))
        return false;
    uint64_t k0 = sx_bench_cluster_cpu_us(&t->c), t0 = sx_clock_now_us();
    sx_clock_sleep_ms(1000);
    t->idle_cores =
        (double)(sx_bench_cluster_cpu_us(&t->c) - k0) / (double)(sx_clock_now_us() - t0);
    return true;
}

/* Every GLOBAL answer has its count: the global indexes caught up. */
static bool caught_up(peers_sxtarget *t, const peers_data *d, const peers_query *qs, size_t n,
                      char *why, size_t cap)
{
    peers_sxwork *w = sx_calloc(1, sizeof(*w));
    *w = (peers_sxwork){
        .t = t, .data = d, .mode = SHARDEX__V1__MODE__MODE_GLOBAL, .page = SX_QUERY_LIMIT_MAX};
    bool ok = false;
    uint64_t t0 = sx_clock_now_ms();
    while (!ok && sx_clock_now_ms() - t0 < CAUGHT_UP_MS) {
        ok = true;
        for (size_t i = 0; i < n && ok; i++) {
            w->q = &qs[i];
            for (size_t v = 0; v < (qs[i].nvalues ? qs[i].nvalues : 1) && ok; v++)
                ok = peers_sxwork_query(w, 0, why, cap);
        }
        if (!ok)
            sx_clock_sleep_ms(200);
    }
    peers_sxwork_free(w);
    free(w);
    return ok;
}

bool peers_sx_preload(peers_sxtarget *t, const peers_data *d, size_t batch, const peers_query *qs,
                      size_t n, char *why, size_t cap)
{
    sx_bulk_opts bo = {.batch_docs = batch, .max_inflight = 4};
    sx_bulk *b = NULL;
    sx_err err = {0};
    sx_status st = sx_bulk_open(t->lib, &bo, &b, &err);
    for (size_t i = 0; i < d->n && st == SX_OK; i++)
        st = sx_bulk_put(b, d->d[i].doc, &err);
    sx_status cst = sx_bulk_close(b, st == SX_OK ? &err : NULL);
    if (st == SX_OK)
        st = cst;
    if (st != SX_OK) {
        snprintf(why, cap, "shardex R=%u: loading the catalogue: %s", t->R, err.msg);
        return false;
    }
    atomic_store(&t->next_seq, d->n);
    bool ok = caught_up(t, d, qs, n, why, cap);
    atomic_store(&t->retries, 0); /* what the windows' calls retry is what is reported */
    t->first_failure[0] = '\0';
    return ok;
}

void peers_sx_signal(peers_sxtarget *t)
{
    if (t->started)
        sx_bench_cluster_signal(&t->c);
}

void peers_sx_stop(peers_sxtarget *t)
{
    sx_client_close(t->lib);
    t->lib = NULL;
    if (t->started && t->c.dir[0])
        sx_cluster_stop(&t->c);
    t->started = false;
}

uint64_t peers_sx_cpu_us(void *arg)
{
    return sx_bench_cluster_cpu_us(&((peers_sxtarget *)arg)->c);
}

/* ---------------------------------------------------------------- ingest -- */

/* Counts a failed call (what) and says whether to make it again: not after
 * RETRY_FOR_MS since t0, nor once the run is stopping. */
static bool retry(peers_sxtarget *t, uint64_t t0, const char *what)
{
    uint64_t n = atomic_fetch_add(&t->retries, 1);
    if (n == 0)
        snprintf(t->first_failure, sizeof(t->first_failure), "%s", what);
    if (n < FAILURES_SHOWN)
        fprintf(stderr, "bench_peers: %s; trying again\n", what);
    if (sx_clock_now_ms() - t0 >= RETRY_FOR_MS || *t->stop)
        return false;
    sx_clock_sleep_ms(RETRY_PAUSE_MS);
    return true;
}

static peers_sxscratch *scratch(peers_sxwork *w, int caller)
{
    peers_sxscratch *s = &w->s[caller];
    if (!s->docs) {
        s->docs = sx_calloc(w->batch, sizeof(*s->docs));
        s->ptrs = sx_calloc(w->batch, sizeof(*s->ptrs));
        s->ids = sx_calloc(w->batch, sizeof(*s->ids));
    }
    return s;
}

void peers_sxwork_free(peers_sxwork *w)
{
    for (int i = 0; i < PEERS_MAX_CALLERS; i++) {
        free(w->s[i].docs);
        free(w->s[i].ptrs);
        free(w->s[i].ids);
        memset(&w->s[i], 0, sizeof(w->s[i]));
    }
}

/* The plain client's next worker. */
static const char *next_addr(peers_sxtarget *t)
{
    return t->c.worker_addr[atomic_fetch_add(&t->next_worker, 1) % t->c.nworkers];
}

static bool put_plain(peers_sxwork *w, Shardex__V1__Document **docs, size_t n, sx_err *err)
{
    Shardex__V1__PutRequest req = SHARDEX__V1__PUT_REQUEST__INIT;
    req.docs = docs;
    req.n_docs = n;
    sx_rpc_call_opts o = {.timeout_ms = CALL_MS};
    ProtobufCMessage *resp = NULL;
    if (sx_rpc_invoke(w->t->rpc, next_addr(w->t), SHARDEX_SVC, "Put", &req.base, &resp, &o, err) !=
        SX_OK)
        return false;
    size_t got = ((const Shardex__V1__PutResponse *)resp)->n_tokens;
    sx_rpc_free(resp);
    if (got != n)
        sx_err_set(err, SX_INTERNAL, "%zu write tokens for %zu documents", got, n);
    return got == n;
}

bool peers_sxwork_ingest(void *arg, int caller, char *why, size_t cap)
{
    peers_sxwork *w = arg;
    peers_sxscratch *s = scratch(w, caller);
    uint64_t seq = atomic_fetch_add(&w->t->next_seq, w->batch);
    for (size_t i = 0; i < w->batch; i++) {
        s->docs[i] = *peers_data_nth(w->data, seq + i, s->ids[i], sizeof(s->ids[i]))->doc;
        s->docs[i].id = s->ids[i];
        s->ptrs[i] = &s->docs[i];
    }
    uint64_t t0 = sx_clock_now_ms();
    for (;;) {
        sx_err err = {0};
        bool ok = w->lib ? sx_client_put(w->t->lib, s->ptrs, w->batch, NULL, &err) == SX_OK
                         : put_plain(w, s->ptrs, w->batch, &err);
        if (ok)
            return true;
        snprintf(why, cap, "shardex R=%u (%s): Put of %zu documents from %" PRIu64 ": %s", w->t->R,
                 w->lib ? "libshardex" : "plain gRPC", w->batch, seq, err.msg);
        if (!retry(w->t, t0, why))
            return false;
    }
}

/* --------------------------------------------------------------- queries -- */

static const char *mode_name(Shardex__V1__Mode m)
{
    return m == SHARDEX__V1__MODE__MODE_GLOBAL  ? "GLOBAL"
           : m == SHARDEX__V1__MODE__MODE_LOCAL ? "LOCAL"
                                                : "unspecified";
}

/* One page, by the chosen client. */
static bool query_page(peers_sxwork *w, const Shardex__V1__QueryRequest *req,
                       Shardex__V1__QueryResponse **out, sx_err *err)
{
    if (w->lib)
        return sx_client_query(w->t->lib, req, out, err) == SX_OK;
    sx_rpc_call_opts o = {.timeout_ms = CALL_MS};
    ProtobufCMessage *resp = NULL;
    bool ok = sx_rpc_invoke(w->t->rpc, next_addr(w->t), SHARDEX_SVC, "Query", &req->base, &resp, &o,
                            err) == SX_OK;
    *out = (Shardex__V1__QueryResponse *)resp;
    return ok;
}

static void free_page(peers_sxwork *w, Shardex__V1__QueryResponse *r)
{
    if (w->lib)
        sx_client_free(r);
    else
        sx_rpc_free(r ? &r->base : NULL);
}

/* Every page of req: the hits in *hits; false with err on a failed call or
 * an answer that is not what was asked (mode, missing documents). */
static bool all_pages(peers_sxwork *w, Shardex__V1__QueryRequest *req, size_t *hits, sx_err *err)
{
    Shardex__V1__QueryResponse *prev = NULL, *r = NULL;
    bool ok = true;
    *hits = 0;
    do {
        r = NULL; /* a failed call leaves no page */
        ok = query_page(w, req, &r, err);
        free_page(w, prev); /* req->page_token pointed into it */
        prev = r;
        if (!ok)
            break;
        for (size_t i = 0; i < r->n_hits && w->fetch_docs && ok; i++) {
            if (!r->hits[i]->doc) {
                sx_err_set(err, SX_INTERNAL, "hit %s came without its document", r->hits[i]->id);
                ok = false;
            }
        }
        if (ok && r->mode != w->mode) {
            sx_err_set(err, SX_INTERNAL, "answered in mode %s", mode_name(r->mode));
            ok = false;
        }
        *hits += r->n_hits;
        req->page_token = r->next_page_token;
    } while (ok && r->next_page_token.len > 0);
    free_page(w, prev);
    return ok;
}

bool peers_sxwork_query(void *arg, int caller, char *why, size_t cap)
{
    peers_sxwork *w = arg;
    const peers_query *q = w->q;
    size_t v = q->kind == PEERS_Q_RANGE ? 0 : (w->turn[caller]++ + (size_t)caller) % q->nvalues;
    Shardex__V1__Value eq = SHARDEX__V1__VALUE__INIT, lo = SHARDEX__V1__VALUE__INIT,
                       hi = SHARDEX__V1__VALUE__INIT;
    Shardex__V1__Range range = SHARDEX__V1__RANGE__INIT;
    Shardex__V1__QueryRequest req = SHARDEX__V1__QUERY_REQUEST__INIT;
    if (q->kind == PEERS_Q_RANGE) {
        lo.kind_case = hi.kind_case = SHARDEX__V1__VALUE__KIND_I;
        lo.i = q->lo;
        hi.i = q->hi;
        range.min = &lo;
        range.max = &hi;
        req.index = "installed-size";
        req.match_case = SHARDEX__V1__QUERY_REQUEST__MATCH_RANGE;
        req.range = &range;
    } else {
        eq.kind_case = SHARDEX__V1__VALUE__KIND_S;
        eq.s = q->values[v];
        req.index = "maintainer";
        req.match_case = SHARDEX__V1__QUERY_REQUEST__MATCH_EQ;
        req.eq = &eq;
    }
    req.mode = w->mode;
    req.limit = w->page;
    req.include_docs = w->fetch_docs;
    size_t hits = 0;
    sx_err err = {0};
    uint64_t t0 = sx_clock_now_ms();
    bool ok;
    while (!(ok = all_pages(w, &req, &hits, &err)) && err.code != SX_INTERNAL) {
        snprintf(why, cap, "shardex R=%u (%s, %s): %s: %s", w->t->R,
                 w->lib ? "libshardex" : "plain gRPC", mode_name(w->mode), q->name, err.msg);
        if (!retry(w->t, t0, why))
            return false;
        req.page_token = (ProtobufCBinaryData){0}; /* from the first page again */
        memset(&err, 0, sizeof(err));
    }
    if (ok && hits == q->expected[v])
        return true;
    char what[512], got[SX_ERR_MSG_MAX + 64];
    snprintf(what, sizeof(what), "shardex R=%u (%s, %s): %s%s%s%s", w->t->R,
             w->lib ? "libshardex" : "plain gRPC", mode_name(w->mode), q->name,
             q->kind == PEERS_Q_RANGE ? "" : " \"", q->kind == PEERS_Q_RANGE ? "" : q->values[v],
             q->kind == PEERS_Q_RANGE ? "" : "\"");
    if (ok)
        snprintf(got, sizeof(got), "%zu hits, but the data has %zu", hits, q->expected[v]);
    else
        snprintf(got, sizeof(got), "%s", err.msg);
    snprintf(why, cap, "%s: %s", what, got);
    return false;
}
