/* modelfx.c: the model fixture of index tests (modelfx.h). */
#include "modelfx.h"

#include "checker.h"
#include "clock.h"
#include "fixture.h"
#include "hash.h"

#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* ---------------------------------------------------------------- fixture -- */

int sx_mfx_setup(void **state, const sx_cluster_opts *opts)
{
    sx_mfx *f = SX_FX_STATE_NEW(sx_mfx, opts, SX_MFX_WRITE_MS);
    if (!f)
        return -1;
    f->model = sx_model_create();
    pthread_mutex_init(&f->mu, NULL);
    *state = f;
    return 0;
}

int sx_mfx_teardown(void **state)
{
    sx_mfx *f = *state;
    sx_fx_cluster_end(f->c);
    sx_model_destroy(f->model);
    pthread_mutex_destroy(&f->mu);
    free(f);
    return 0;
}

void sx_mfx_seed_test(uint64_t *rng, uint64_t seed, const char *name)
{
    *rng = seed ^ sx_hash64(name, strlen(name));
    fprintf(stderr, "%s: seed=%" PRIu64 " (SHARDEX_TEST_SEED replays)\n", name, seed);
}

sx_mfx_addr sx_mfx_pick(sx_mfx *f, uint64_t *s)
{
    return sx_mfx_pick_running(f->c, &f->mu, s);
}

sx_mfx_addr sx_mfx_pick_running(sx_cluster *c, pthread_mutex_t *mu, uint64_t *s)
{
    sx_mfx_addr a;
    pthread_mutex_lock(mu);
    for (;;) {
        uint32_t i = (uint32_t)(sx_fx_rnd(s) % c->nworkers);
        if (c->worker_pid[i] > 0) {
            memcpy(a.s, c->worker_addr[i], sizeof(a.s));
            break;
        }
    }
    pthread_mutex_unlock(mu);
    return a;
}

void sx_mfx_random_id(uint64_t *s, const char *prefix, uint32_t nids, char (*ids)[SX_QID], size_t i)
{
    bool dup;
    do {
        snprintf(ids[i], SX_QID, "%s-%03u", prefix, (unsigned)(sx_fx_rnd(s) % nids));
        dup = false;
        for (size_t j = 0; j < i; j++)
            dup |= strcmp(ids[i], ids[j]) == 0;
    } while (dup);
}

bool sx_mfx_transient(sx_status st)
{
    return st == SX_UNAVAILABLE || st == SX_DEADLINE_EXCEEDED;
}

/* ----------------------------------------------------------------- writes -- */

bool sx_mfx_write(sx_mfx *f, uint64_t *s, const sx_qdoc *docs, const char (*ids)[SX_QID], size_t k,
                  sx_qtokens *toks, char *why, size_t cap)
{
    const char *idp[8];
    assert_true(k <= 8);
    for (size_t i = 0; !docs && i < k; i++)
        idp[i] = ids[i];
    uint64_t end = sx_clock_now_ms() + SX_MFX_WRITE_MS;
    for (;;) {
        memset(toks, 0, sizeof(*toks));
        sx_mfx_addr via = sx_mfx_pick(f, s);
        sx_err err = {0};
        sx_status st = docs ? sx_q_put(f->c, via.s, docs, k, 4000, toks, NULL, &err)
                            : sx_q_delete(f->c, via.s, idp, k, 4000, toks, NULL, &err);
        if (st == SX_OK)
            break;
        if (!sx_mfx_transient(st) || sx_clock_now_ms() >= end) {
            snprintf(why, cap, "%s through %s: %s: %s", docs ? "Put" : "Delete", via.s,
                     sx_status_name(st), err.msg);
            return false;
        }
    }
    pthread_mutex_lock(&f->mu);
    for (size_t i = 0; i < k; i++) {
        if (docs)
            sx_model_put(f->model, &docs[i]);
        else
            sx_model_delete(f->model, ids[i]);
    }
    for (uint32_t p = 0; p < SX_QTOKENS_MAX; p++)
        if (toks->off[p] > f->tokens.off[p])
            f->tokens.off[p] = toks->off[p];
    f->writes++;
    pthread_mutex_unlock(&f->mu);
    return true;
}

static void *writer_main(void *arg)
{
    sx_mfx *f = arg;
    uint64_t s = f->rng ^ 0x9e3779b97f4a7c15ull; /* a stream of its own */
    char why[512];
    for (;;) {
        pthread_mutex_lock(&f->mu);
        bool stop = f->stop;
        pthread_mutex_unlock(&f->mu);
        if (stop)
            break;
        if (!f->write_fn(f, &s, why, sizeof(why))) {
            pthread_mutex_lock(&f->mu);
            snprintf(f->fail, sizeof(f->fail), "writer: %s", why);
            pthread_mutex_unlock(&f->mu);
            break;
        }
    }
    return NULL;
}

void sx_mfx_writer_start(sx_mfx *f, sx_mfx_write_fn fn)
{
    f->write_fn = fn;
    pthread_create(&f->writer, NULL, writer_main, f);
}

void sx_mfx_writer_stop(sx_mfx *f)
{
    pthread_mutex_lock(&f->mu);
    f->stop = true;
    pthread_mutex_unlock(&f->mu);
    pthread_join(f->writer, NULL);
    f->stop = false;
    if (f->fail[0])
        SX_FX_FAIL(f->c, "%s", f->fail);
    fprintf(stderr, "  %" PRIu64 " writes acknowledged\n", f->writes);
}

/* ---------------------------------------------------------------- indexes -- */

void sx_mfx_create_index(sx_mfx *f, const sx_qindex *ix, uint64_t timeout_ms)
{
    sx_err err = {0};
    sx_status st = sx_q_create_index(f->c, sx_mfx_pick(f, &f->rng).s, ix, &err);
    if (st != SX_OK)
        SX_FX_FAIL(f->c, "CreateIndex %s: %s: %s", ix->name, sx_status_name(st), err.msg);
    if (!sx_q_wait_ready(f->c, sx_mfx_pick(f, &f->rng).s, ix->name, timeout_ms))
        SX_FX_FAIL(f->c, "index %s did not become READY", ix->name);
}

/* ---------------------------------------------------------------- queries -- */

void sx_mfx_query_all(sx_mfx *f, const sx_qreq *q, sx_qpages *pg)
{
    sx_mfx_query_all_in(f->c, &f->mu, &f->rng, true, NULL, q, pg);
}

void sx_mfx_query_all_in(sx_cluster *c, pthread_mutex_t *mu, uint64_t *rng, bool retry,
                         uint64_t *retries, const sx_qreq *q, sx_qpages *pg)
{
    uint64_t end = sx_clock_now_ms() + SX_MFX_QUERY_MS;
    char d[160];
    for (;;) {
        sx_err err = {0};
        sx_mfx_addr via = sx_mfx_pick_running(c, mu, rng);
        sx_status st = sx_q_query_all(c, via.s, q, pg, &err);
        if (st == SX_OK)
            return;
        sx_qhits_free(&pg->hits);
        if (!retry || !sx_mfx_transient(st) || sx_clock_now_ms() >= end)
            SX_FX_FAIL(c, "query %s through %s: %s: %s", sx_qreq_fmt(q, d, sizeof(d)), via.s,
                       sx_status_name(st), err.msg);
        if (retries)
            (*retries)++;
    }
}

void sx_mfx_expect_model(sx_mfx *f, const char *field, bool is_int, const sx_qreq *q,
                         const sx_qhits *got)
{
    sx_qhits want = {0};
    char why[256], d[160];
    sx_model_expect(f->model, field, is_int, &q->match, &want);
    bool ok = sx_qhits_equal(got, &want, why, sizeof(why));
    sx_qhits_free(&want);
    if (!ok)
        SX_FX_FAIL(f->c, "query %s: %s", sx_qreq_fmt(q, d, sizeof(d)), why);
}

uint32_t sx_mfx_check_query(sx_mfx *f, const char *field, bool is_int, const sx_qreq *q)
{
    sx_qpages pg;
    sx_mfx_query_all(f, q, &pg);
    sx_mfx_expect_model(f, field, is_int, q, &pg.hits);
    sx_qhits_free(&pg.hits);
    return pg.contacted;
}

void sx_mfx_check_matches(sx_mfx *f, const sx_qindex *ix, const sx_qmatch *ms, size_t n)
{
    for (size_t i = 0; i < n; i++)
        for (uint32_t limit = 7; limit <= 1000; limit += 993) {
            sx_qreq q = {.index = ix->name,
                         .match = ms[i],
                         .mode = SHARDEX__V1__MODE__MODE_GLOBAL,
                         .limit = limit,
                         .after = &f->tokens};
            sx_mfx_check_query(f, ix->field, ix->is_int, &q);
        }
}

sx_status sx_mfx_contacted(sx_mfx *f, uint32_t i, const sx_qreq *q, uint32_t *contacted,
                           sx_err *err)
{
    Shardex__V1__QueryResponse *r = NULL;
    sx_status st = sx_q_query(f->c, f->c->worker_addr[i], q, NULL, &r, err);
    if (st != SX_OK)
        return st;
    *contacted = r->partitions_contacted;
    sx_rpc_free(&r->base);
    return SX_OK;
}

bool sx_mfx_query_has(sx_mfx *f, const sx_qreq *q, const char *id)
{
    sx_qpages pg;
    sx_mfx_query_all(f, q, &pg);
    bool seen = false;
    for (size_t k = 0; k < pg.hits.n; k++)
        seen |= strcmp(pg.hits.h[k].id, id) == 0;
    sx_qhits_free(&pg.hits);
    return seen;
}

sx_qmatch sx_mfx_int_range(int64_t lo, int64_t hi)
{
    sx_qmatch m = {.range = true};
    if (lo >= 0) {
        m.has_min = true;
        m.min = sx_qval_int(lo);
    }
    if (hi >= 0) {
        m.has_max = true;
        m.max = sx_qval_int(hi);
    }
    return m;
}

bool sx_mfx_next_page(sx_mfx *f, const sx_qreq *q, sx_mfx_pager *p)
{
    Shardex__V1__QueryResponse *r = NULL;
    sx_err err = {0};
    sx_status st =
        sx_q_query(f->c, sx_mfx_pick(f, &f->rng).s, q, p->pages ? &p->tok : NULL, &r, &err);
    if (st != SX_OK)
        SX_FX_FAIL(f->c, "page %d: %s: %s", p->pages, sx_status_name(st), err.msg);
    for (size_t i = 0; i < r->n_hits; i++) {
        sx_qhit h = {0};
        snprintf(h.id, sizeof(h.id), "%s", r->hits[i]->id);
        h.v = sx_qval_int(r->hits[i]->value->i);
        sx_qhits_push(&p->got, &h);
    }
    p->pages++;
    bool last = r->next_page_token.len == 0;
    free(p->buf);
    p->buf = malloc(r->next_page_token.len + 1);
    if (!last)
        memcpy(p->buf, r->next_page_token.data, r->next_page_token.len);
    p->tok = (ProtobufCBinaryData){r->next_page_token.len, p->buf};
    sx_rpc_free(&r->base);
    return !last;
}

void sx_mfx_pager_free(sx_mfx_pager *p)
{
    free(p->buf);
    sx_qhits_free(&p->got);
    *p = (sx_mfx_pager){0};
}

void sx_mfx_verify(sx_mfx *f)
{
    SX_FX_VERIFY(f->c, 120000);
}

/* ---------------------------------------------------------------- workers -- */

void sx_mfx_kill_worker(sx_mfx *f, int32_t i, const char *what)
{
    if (i < 0)
        SX_FX_FAIL(f->c, "no worker is %s", what);
    fprintf(stderr, "  kill -9 worker %d (%s)\n", i, what);
    pthread_mutex_lock(&f->mu);
    sx_cluster_kill_worker(f->c, (uint32_t)i);
    pthread_mutex_unlock(&f->mu);
}

void sx_mfx_restart_worker(sx_mfx *f, int32_t i, uint64_t timeout_ms)
{
    pthread_mutex_lock(&f->mu);
    bool ok = sx_cluster_start_worker(f->c, (uint32_t)i);
    pthread_mutex_unlock(&f->mu);
    if (!ok || !sx_cluster_wait_alive(f->c, (uint32_t)i, timeout_ms))
        SX_FX_FAIL(f->c, "worker %d did not come back", i);
}

int32_t sx_mfx_term_owner(sx_mfx *f, const char *name, uint32_t t)
{
    Shardex__Internal__V1__ClusterMap *m = sx_cluster_map(f->c);
    if (!m)
        SX_FX_FAIL(f->c, "no map");
    int32_t who = -1;
    for (size_t i = 0; i < m->n_indexes; i++) {
        const Shardex__Internal__V1__IndexEntry *e = m->indexes[i];
        if (strcmp(e->spec->name, name) != 0 || e->first_term + t >= m->n_terms)
            continue;
        int32_t o = m->terms[e->first_term + t]->owner;
        for (uint32_t k = 0; k < f->c->nworkers; k++)
            if (sx_cluster_index_of(m, f->c, k) == o)
                who = (int32_t)k;
    }
    sx_rpc_free(&m->base);
    return who;
}
