/* query.c: index calls, paging and the model of what an index answers (query.h). */
#include "query.h"

#include "harness.h"
#include "hmap.h"
#include "mem.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SHARDEX_SVC (&shardex__v1__shardex__descriptor)
#define DEFAULT_TIMEOUT_MS 10000
#define MAX_PAGES 100000

sx_qval sx_qval_int(int64_t i)
{
    sx_qval v = {.is_int = true, .i = i};
    return v;
}

sx_qval sx_qval_str(const char *s)
{
    sx_qval v = {.is_int = false};
    snprintf(v.s, sizeof(v.s), "%s", s);
    return v;
}

void sx_qdoc_add(sx_qdoc *d, const char *name, sx_qval v)
{
    assert(d->n < SX_QDOC_FIELDS);
    sx_qfield *f = &d->f[d->n++];
    snprintf(f->name, sizeof(f->name), "%s", name);
    f->v = v;
}

const char *sx_qval_fmt(const sx_qval *v, char *buf, size_t cap)
{
    if (v->is_int)
        snprintf(buf, cap, "%" PRId64, v->i);
    else
        snprintf(buf, cap, "\"%s\"", v->s);
    return buf;
}

void sx_qtokens_add(sx_qtokens *t, const Shardex__V1__WriteToken *tok)
{
    assert(tok && tok->partition < SX_QTOKENS_MAX);
    if (tok->offset > t->off[tok->partition])
        t->off[tok->partition] = tok->offset;
}

/* ------------------------------------------------------------- documents -- */

/* Protobuf views of test documents: everything points into the sx_qdocs. */
typedef struct pb_docs {
    Shardex__V1__Document *d;
    Shardex__V1__Document **dp;
    Shardex__V1__Field *f;
    Shardex__V1__Field **fp;
    Shardex__V1__Value *v;
} pb_docs;

static void to_value(Shardex__V1__Value *o, const sx_qval *v)
{
    shardex__v1__value__init(o);
    if (v->is_int) {
        o->kind_case = SHARDEX__V1__VALUE__KIND_I;
        o->i = v->i;
    } else {
        o->kind_case = SHARDEX__V1__VALUE__KIND_S;
        o->s = (char *)v->s;
    }
}

static void pb_docs_make(pb_docs *p, const sx_qdoc *docs, size_t n)
{
    p->d = sx_calloc(n ? n : 1, sizeof(*p->d));
    p->dp = sx_calloc(n ? n : 1, sizeof(*p->dp));
    p->f = sx_calloc(n * SX_QDOC_FIELDS + 1, sizeof(*p->f));
    p->fp = sx_calloc(n * SX_QDOC_FIELDS + 1, sizeof(*p->fp));
    p->v = sx_calloc(n * SX_QDOC_FIELDS + 1, sizeof(*p->v));
    for (size_t i = 0; i < n; i++) {
        shardex__v1__document__init(&p->d[i]);
        p->d[i].id = (char *)docs[i].id;
        size_t base = i * SX_QDOC_FIELDS;
        for (uint32_t k = 0; k < docs[i].n; k++) {
            shardex__v1__field__init(&p->f[base + k]);
            p->f[base + k].name = (char *)docs[i].f[k].name;
            to_value(&p->v[base + k], &docs[i].f[k].v);
            p->f[base + k].value = &p->v[base + k];
            p->fp[base + k] = &p->f[base + k];
        }
        p->d[i].n_fields = docs[i].n;
        p->d[i].fields = &p->fp[base];
        p->dp[i] = &p->d[i];
    }
}

static void pb_docs_free(pb_docs *p)
{
    free(p->d);
    free(p->dp);
    free(p->f);
    free(p->fp);
    free(p->v);
}

sx_status sx_q_put(sx_cluster *c, const char *addr, const sx_qdoc *docs, size_t n,
                   uint64_t timeout_ms, sx_qtokens *tokens, Shardex__V1__PutResponse **out,
                   sx_err *err)
{
    pb_docs p;
    pb_docs_make(&p, docs, n);
    Shardex__V1__PutRequest req = SHARDEX__V1__PUT_REQUEST__INIT;
    req.docs = p.dp;
    req.n_docs = n;
    ProtobufCMessage *resp = NULL;
    sx_rpc_call_opts o = {.timeout_ms = timeout_ms};
    sx_status st = sx_rpc_invoke(c->rpc, addr, SHARDEX_SVC, "Put", &req.base, &resp, &o, err);
    pb_docs_free(&p);
    Shardex__V1__PutResponse *pr = (void *)resp;
    if (st == SX_OK && pr->n_tokens != n)
        st = sx_err_set(err, SX_INTERNAL, "Put: %zu tokens for %zu documents", pr->n_tokens, n);
    for (size_t i = 0; st == SX_OK && tokens && i < pr->n_tokens; i++)
        sx_qtokens_add(tokens, pr->tokens[i]);
    if (out && st == SX_OK)
        *out = pr;
    else
        sx_rpc_free(resp);
    return st;
}

sx_status sx_q_delete(sx_cluster *c, const char *addr, const char *const *ids, size_t n,
                      uint64_t timeout_ms, sx_qtokens *tokens, Shardex__V1__DeleteResponse **out,
                      sx_err *err)
{
    Shardex__V1__DeleteRequest req = SHARDEX__V1__DELETE_REQUEST__INIT;
    req.ids = (char **)ids;
    req.n_ids = n;
    ProtobufCMessage *resp = NULL;
    sx_rpc_call_opts o = {.timeout_ms = timeout_ms};
    sx_status st = sx_rpc_invoke(c->rpc, addr, SHARDEX_SVC, "Delete", &req.base, &resp, &o, err);
    Shardex__V1__DeleteResponse *dr = (void *)resp;
    if (st == SX_OK && dr->n_tokens != n)
        st = sx_err_set(err, SX_INTERNAL, "Delete: %zu tokens for %zu ids", dr->n_tokens, n);
    for (size_t i = 0; st == SX_OK && tokens && i < dr->n_tokens; i++)
        sx_qtokens_add(tokens, dr->tokens[i]);
    if (out && st == SX_OK)
        *out = dr;
    else
        sx_rpc_free(resp);
    return st;
}

/* --------------------------------------------------------------- indexes -- */

sx_status sx_q_create_index(sx_cluster *c, const char *addr, const sx_qindex *ix, sx_err *err)
{
    Shardex__V1__IndexSpec spec = SHARDEX__V1__INDEX_SPEC__INIT;
    spec.name = (char *)ix->name;
    spec.field = (char *)ix->field;
    spec.type = ix->is_int ? SHARDEX__V1__VALUE_TYPE__VALUE_TYPE_INT
                           : SHARDEX__V1__VALUE_TYPE__VALUE_TYPE_STRING;
    spec.local = ix->local;
    spec.global = ix->global;
    spec.term_partitions = ix->term_partitions;
    Shardex__V1__Value v[8], *vp[8];
    for (size_t i = 0; i < ix->nsplits && i < 8; i++) {
        to_value(&v[i], &ix->splits[i]);
        vp[i] = &v[i];
    }
    if (ix->nsplits || ix->range) {
        spec.partitioning = SHARDEX__V1__PARTITIONING__PARTITIONING_RANGE;
        spec.n_split_points = ix->nsplits < 8 ? ix->nsplits : 8;
        spec.split_points = vp;
    }
    Shardex__V1__CreateIndexRequest req = SHARDEX__V1__CREATE_INDEX_REQUEST__INIT;
    req.spec = &spec;
    ProtobufCMessage *resp = NULL;
    sx_rpc_call_opts o = {.timeout_ms = DEFAULT_TIMEOUT_MS};
    sx_status st =
        sx_rpc_invoke(c->rpc, addr, SHARDEX_SVC, "CreateIndex", &req.base, &resp, &o, err);
    sx_rpc_free(resp);
    return st;
}

sx_status sx_q_drop_index(sx_cluster *c, const char *addr, const char *name, sx_err *err)
{
    Shardex__V1__DropIndexRequest req = SHARDEX__V1__DROP_INDEX_REQUEST__INIT;
    req.name = (char *)name;
    ProtobufCMessage *resp = NULL;
    sx_rpc_call_opts o = {.timeout_ms = DEFAULT_TIMEOUT_MS};
    sx_status st = sx_rpc_invoke(c->rpc, addr, SHARDEX_SVC, "DropIndex", &req.base, &resp, &o, err);
    sx_rpc_free(resp);
    return st;
}

sx_status sx_q_list_indexes(sx_cluster *c, const char *addr, Shardex__V1__ListIndexesResponse **out,
                            sx_err *err)
{
    Shardex__V1__ListIndexesRequest req = SHARDEX__V1__LIST_INDEXES_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    sx_rpc_call_opts o = {.timeout_ms = DEFAULT_TIMEOUT_MS, .idempotent = true};
    sx_status st =
        sx_rpc_invoke(c->rpc, addr, SHARDEX_SVC, "ListIndexes", &req.base, &resp, &o, err);
    *out = (void *)resp;
    return st;
}

const Shardex__V1__IndexInfo *sx_q_find_index(const Shardex__V1__ListIndexesResponse *l,
                                              const char *name)
{
    for (size_t i = 0; l && i < l->n_indexes; i++)
        if (l->indexes[i]->spec && strcmp(l->indexes[i]->spec->name, name) == 0)
            return l->indexes[i];
    return NULL;
}

typedef struct ready_wait {
    sx_cluster *c;
    const char *addr;
    const char *name;
} ready_wait;

static bool ready_cond(void *arg)
{
    ready_wait *r = arg;
    Shardex__V1__ListIndexesResponse *l = NULL;
    if (sx_q_list_indexes(r->c, r->addr, &l, NULL) != SX_OK)
        return false;
    const Shardex__V1__IndexInfo *ix = sx_q_find_index(l, r->name);
    bool ok = ix && ix->state == SHARDEX__V1__INDEX_STATE__INDEX_STATE_READY;
    sx_rpc_free(&l->base);
    return ok;
}

bool sx_q_wait_ready(sx_cluster *c, const char *addr, const char *name, uint64_t timeout_ms)
{
    ready_wait r = {c, addr, name};
    return sx_h_wait_for(ready_cond, &r, timeout_ms);
}

/* ----------------------------------------------------------------- query -- */

sx_status sx_q_query(sx_cluster *c, const char *addr, const sx_qreq *q,
                     const ProtobufCBinaryData *page_token, Shardex__V1__QueryResponse **out,
                     sx_err *err)
{
    Shardex__V1__QueryRequest req = SHARDEX__V1__QUERY_REQUEST__INIT;
    Shardex__V1__Value eq, min, max;
    Shardex__V1__Range range = SHARDEX__V1__RANGE__INIT;
    req.index = (char *)q->index;
    if (q->match.range) {
        req.match_case = SHARDEX__V1__QUERY_REQUEST__MATCH_RANGE;
        if (q->match.has_min) {
            to_value(&min, &q->match.min);
            range.min = &min;
        }
        if (q->match.has_max) {
            to_value(&max, &q->match.max);
            range.max = &max;
        }
        req.range = &range;
    } else {
        req.match_case = SHARDEX__V1__QUERY_REQUEST__MATCH_EQ;
        to_value(&eq, &q->match.eq);
        req.eq = &eq;
    }
    req.mode = q->mode;
    req.limit = q->limit;
    if (page_token)
        req.page_token = *page_token;
    req.include_docs = q->include_docs;
    req.budget_ms = q->budget_ms;
    req.max_staleness_ms = q->max_staleness_ms;
    req.hedge_after_ms = q->hedge_after_ms;
    Shardex__V1__WriteToken toks[SX_QTOKENS_MAX];
    Shardex__V1__WriteToken *tp[SX_QTOKENS_MAX];
    for (uint32_t p = 0; q->after && p < SX_QTOKENS_MAX; p++) {
        if (!q->after->off[p])
            continue;
        shardex__v1__write_token__init(&toks[req.n_after]);
        toks[req.n_after].partition = p;
        toks[req.n_after].offset = q->after->off[p];
        tp[req.n_after] = &toks[req.n_after];
        req.n_after++;
    }
    req.after = tp;
    ProtobufCMessage *resp = NULL;
    sx_rpc_call_opts o = {.timeout_ms = q->timeout_ms ? q->timeout_ms : DEFAULT_TIMEOUT_MS};
    sx_status st = sx_rpc_invoke(c->rpc, addr, SHARDEX_SVC, "Query", &req.base, &resp, &o, err);
    *out = (void *)resp;
    return st;
}

void sx_qhits_push(sx_qhits *l, const sx_qhit *h)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->h = sx_realloc(l->h, l->cap * sizeof(*l->h));
    }
    l->h[l->n++] = *h;
}

void sx_qhits_free(sx_qhits *l)
{
    free(l->h);
    memset(l, 0, sizeof(*l));
}

static void from_value(sx_qval *o, const Shardex__V1__Value *v)
{
    memset(o, 0, sizeof(*o));
    if (!v)
        snprintf(o->s, sizeof(o->s), "<unset>");
    else if (v->kind_case == SHARDEX__V1__VALUE__KIND_I)
        *o = sx_qval_int(v->i);
    else if (v->kind_case == SHARDEX__V1__VALUE__KIND_S)
        *o = sx_qval_str(v->s);
    else
        snprintf(o->s, sizeof(o->s), "<no kind>");
}

sx_status sx_q_query_all(sx_cluster *c, const char *addr, const sx_qreq *q, sx_qpages *out,
                         sx_err *err)
{
    memset(out, 0, sizeof(*out));
    out->docs_ok = true;
    sx_buf token = {0};
    sx_status st = SX_OK;
    for (;;) {
        Shardex__V1__QueryResponse *r = NULL;
        ProtobufCBinaryData pt = {token.len, token.data};
        st = sx_q_query(c, addr, q, out->pages ? &pt : NULL, &r, err);
        if (st != SX_OK)
            break;
        if (out->pages == 0) {
            out->mode = r->mode;
            out->contacted = r->partitions_contacted;
        } else if (r->mode != out->mode || r->partitions_contacted > out->contacted) {
            out->mixed = true;
        } else if (r->partitions_contacted < out->contacted) {
            out->shrank = true; /* resumed past some range partitions */
        }
        out->pages++;
        for (size_t i = 0; i < r->n_hits; i++) {
            sx_qhit h;
            memset(&h, 0, sizeof(h));
            snprintf(h.id, sizeof(h.id), "%s", r->hits[i]->id);
            from_value(&h.v, r->hits[i]->value);
            sx_qhits_push(&out->hits, &h);
            if (q->include_docs &&
                (!r->hits[i]->doc || strcmp(r->hits[i]->doc->id, r->hits[i]->id) != 0))
                out->docs_ok = false;
        }
        sx_buf_reset(&token);
        sx_buf_append(&token, r->next_page_token.data, r->next_page_token.len);
        sx_rpc_free(&r->base);
        if (token.len == 0)
            break;
        if (out->pages >= MAX_PAGES) {
            st = sx_err_set(err, SX_INTERNAL, "query: more than %d pages", MAX_PAGES);
            break;
        }
    }
    sx_buf_free(&token);
    return st;
}

static int val_cmp(const sx_qval *a, const sx_qval *b)
{
    if (a->is_int != b->is_int)
        return a->is_int ? -1 : 1;
    if (a->is_int)
        return (a->i > b->i) - (a->i < b->i);
    return strcmp(a->s, b->s);
}

static int hit_cmp(const void *x, const void *y)
{
    const sx_qhit *a = x, *b = y;
    int c = val_cmp(&a->v, &b->v);
    return c ? c : strcmp(a->id, b->id);
}

bool sx_qhits_equal(const sx_qhits *got, const sx_qhits *want, char *why, size_t cap)
{
    size_t n = got->n < want->n ? got->n : want->n;
    for (size_t i = 0; i < n; i++) {
        if (hit_cmp(&got->h[i], &want->h[i]) == 0)
            continue;
        char a[48], b[48];
        snprintf(why, cap, "hit %zu: got (%s, %s), want (%s, %s); %zu hits, want %zu", i,
                 sx_qval_fmt(&got->h[i].v, a, sizeof(a)), got->h[i].id,
                 sx_qval_fmt(&want->h[i].v, b, sizeof(b)), want->h[i].id, got->n, want->n);
        return false;
    }
    if (got->n == want->n)
        return true;
    char a[48];
    const sx_qhit *first = got->n > want->n ? &got->h[n] : &want->h[n];
    snprintf(why, cap, "%zu hits, want %zu; first %s: (%s, %s)", got->n, want->n,
             got->n > want->n ? "extra" : "missing", sx_qval_fmt(&first->v, a, sizeof(a)),
             first->id);
    return false;
}

static const char *mode_name(Shardex__V1__Mode m)
{
    switch (m) {
    case SHARDEX__V1__MODE__MODE_LOCAL:
        return "LOCAL";
    case SHARDEX__V1__MODE__MODE_GLOBAL:
        return "GLOBAL";
    default:
        return "UNSPECIFIED";
    }
}

const char *sx_qreq_fmt(const sx_qreq *q, char *buf, size_t cap)
{
    char a[48], b[48];
    unsigned tokens = 0;
    for (uint32_t p = 0; q->after && p < SX_QTOKENS_MAX; p++)
        tokens += q->after->off[p] != 0;
    if (!q->match.range)
        snprintf(buf, cap, "%s == %s, %s, limit %u, %u tokens", q->index,
                 sx_qval_fmt(&q->match.eq, a, 48), mode_name(q->mode), q->limit, tokens);
    else
        snprintf(buf, cap, "%s in %s%s, %s%s, %s, limit %u, %u tokens", q->index,
                 q->match.has_min ? "[" : "(",
                 q->match.has_min ? sx_qval_fmt(&q->match.min, a, 48) : "-inf",
                 q->match.has_max ? sx_qval_fmt(&q->match.max, b, 48) : "+inf",
                 q->match.has_max ? "]" : ")", mode_name(q->mode), q->limit, tokens);
    return buf;
}

bool sx_qdoc_equal_pb(const sx_qdoc *d, const Shardex__V1__Document *pb)
{
    if (!pb || !pb->id || strcmp(pb->id, d->id) != 0 || pb->n_fields != d->n)
        return false;
    for (uint32_t k = 0; k < d->n; k++) {
        const Shardex__V1__Field *f = pb->fields[k];
        sx_qval v;
        from_value(&v, f->value);
        if (!f->name || strcmp(f->name, d->f[k].name) != 0 || val_cmp(&v, &d->f[k].v) != 0)
            return false;
    }
    return true;
}

/* ----------------------------------------------------------------- model -- */

struct sx_model {
    sx_hmap docs; /* id -> sx_qdoc * */
};

sx_model *sx_model_create(void)
{
    return sx_calloc(1, sizeof(sx_model));
}

void sx_model_destroy(sx_model *m)
{
    if (!m)
        return;
    sx_hmap_free(&m->docs, free);
    free(m);
}

void sx_model_put(sx_model *m, const sx_qdoc *d)
{
    void *old = NULL;
    if (sx_hmap_put(&m->docs, d->id, strlen(d->id), sx_memdup(d, sizeof(*d)), &old))
        free(old);
}

void sx_model_delete(sx_model *m, const char *id)
{
    void *old = NULL;
    if (sx_hmap_remove(&m->docs, id, strlen(id), &old))
        free(old);
}

const sx_qdoc *sx_model_get(const sx_model *m, const char *id)
{
    void *d = NULL;
    return sx_hmap_get(&m->docs, id, strlen(id), &d) ? d : NULL;
}

size_t sx_model_len(const sx_model *m)
{
    return sx_hmap_len(&m->docs);
}

static bool matches(const sx_qval *v, const sx_qmatch *mt)
{
    if (!mt->range)
        return val_cmp(v, &mt->eq) == 0;
    return (!mt->has_min || val_cmp(v, &mt->min) >= 0) &&
           (!mt->has_max || val_cmp(v, &mt->max) <= 0);
}

void sx_model_expect(const sx_model *m, const char *field, bool is_int, const sx_qmatch *match,
                     sx_qhits *out)
{
    out->n = 0;
    size_t pos = 0;
    void *val = NULL;
    while (sx_hmap_next(&m->docs, &pos, NULL, NULL, &val)) {
        const sx_qdoc *d = val;
        for (uint32_t k = 0; k < d->n; k++) {
            const sx_qfield *f = &d->f[k];
            if (strcmp(f->name, field) != 0 || f->v.is_int != is_int || !matches(&f->v, match))
                continue;
            bool seen = false; /* a value given twice is one hit */
            for (uint32_t j = 0; j < k && !seen; j++)
                seen = strcmp(d->f[j].name, field) == 0 && val_cmp(&d->f[j].v, &f->v) == 0;
            if (seen)
                continue;
            sx_qhit h;
            memset(&h, 0, sizeof(h));
            snprintf(h.id, sizeof(h.id), "%s", d->id);
            h.v = f->v;
            sx_qhits_push(out, &h);
        }
    }
    if (out->n > 1)
        qsort(out->h, out->n, sizeof(*out->h), hit_cmp);
}

uint64_t sx_model_mistyped(const sx_model *m, const char *field, bool is_int)
{
    uint64_t n = 0;
    size_t pos = 0;
    void *val = NULL;
    while (sx_hmap_next(&m->docs, &pos, NULL, NULL, &val)) {
        const sx_qdoc *d = val;
        for (uint32_t k = 0; k < d->n; k++) {
            if (strcmp(d->f[k].name, field) == 0 && d->f[k].v.is_int != is_int) {
                n++;
                break;
            }
        }
    }
    return n;
}

sx_status sx_q_put_one(sx_rpc_client *rpc, const char *addr, const char *id, const char *value,
                       uint64_t timeout_ms, sx_err *err)
{
    Shardex__V1__Value v = SHARDEX__V1__VALUE__INIT;
    v.kind_case = SHARDEX__V1__VALUE__KIND_S;
    v.s = (char *)value;
    Shardex__V1__Field fld = SHARDEX__V1__FIELD__INIT;
    fld.name = (char *)"v";
    fld.value = &v;
    Shardex__V1__Field *fp = &fld;
    Shardex__V1__Document d = SHARDEX__V1__DOCUMENT__INIT;
    d.id = (char *)id;
    d.fields = &fp;
    d.n_fields = 1;
    Shardex__V1__Document *dp = &d;
    Shardex__V1__PutRequest req = SHARDEX__V1__PUT_REQUEST__INIT;
    req.docs = &dp;
    req.n_docs = 1;
    ProtobufCMessage *resp = NULL;
    sx_rpc_call_opts o = {.timeout_ms = timeout_ms};
    sx_status st = sx_rpc_invoke(rpc, addr, SHARDEX_SVC, "Put", &req.base, &resp, &o, err);
    sx_rpc_free(resp);
    return st;
}
