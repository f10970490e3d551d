/* query.c: Shardex.Query on any worker (see query.h). The Index service
 * that answers its scans is ixservice.c.
 *
 * A query names an index and a match (a value, or an inclusive range with
 * open ends), both turned into one range of entry keys [start, end): keys
 * are enc(value) ++ enc(id), so the entries of one value are the keys that
 * start with enc(value). A page token is the last key returned (with the
 * index id, so that a token cannot page another index or a re-created one);
 * the next page starts just after it, which never skips or repeats a hit
 * while the data does not change.
 *
 * LOCAL: every log partition's leader scans its local index after the
 * `after` offsets of its partition are applied; GLOBAL: the owner of the one
 * term partition of an equality, or every term partition for a range, scans
 * after its watermarks reach the tokens. Each target returns up to `limit`
 * hits in key order; the merge keeps the first `limit`.
 */
#include "query.h"

#include "clock.h"
#include "fanout.h"
#include "hash.h"
#include "ixkey.h"
#include "ixservice.h"
#include "keys.h"
#include "log.h"
#include "sx_limits.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define REPL_SVC (&shardex__internal__v1__replication__descriptor)
#define PAGE_TOKEN_VERSION 1
/* MODE_UNSPECIFIED serves GLOBAL only from term partitions this fresh. */
#define AUTO_MAX_STALENESS_MS 1000

/* ---------------------------------------------------- Shardex.Query -- */

typedef struct plan {
    const Shardex__Internal__V1__IndexEntry *e; /* in the map held by the handler */
    sx_ix_def def;
    bool global;
    uint32_t P;
    Shardex__Internal__V1__ScanRequest *reqs; /* one per target */
    uint32_t *targets;                        /* p or t */
    size_t n;
    uint64_t attempt_ms; /* one attempt: about two leases, as the router's */
} plan;

static bool aim_local(void *arg, size_t i, const sx_partmap *m, sx_fanout_call *c, char *addr,
                      size_t cap, sx_err *err)
{
    plan *pl = arg;
    if (!sx_partmap_index(m, pl->def.id)) {
        /* Dropped since the query began: the partitions no longer hold it. */
        sx_err_set(err, SX_NOT_FOUND, "index \"%s\" was dropped", pl->def.name);
        return false;
    }
    return sx_fanout_aim_leaders(pl->targets, i, m, c, addr, cap, err);
}

static bool aim_term(void *arg, size_t i, const sx_partmap *m, sx_fanout_call *c, char *addr,
                     size_t cap, sx_err *err)
{
    plan *pl = arg;
    uint32_t t = pl->targets[i];
    const Shardex__Internal__V1__IndexEntry *e = sx_partmap_index(m, pl->def.id);
    if (!e || !sx_partmap_term(m, e, t)) {
        sx_err_set(err, SX_NOT_FOUND, "index \"%s\" was dropped", pl->def.name);
        return false;
    }
    sx_partmap_target tg;
    if (sx_partmap_term_target(m, e, t, &tg, err) != SX_OK)
        return false;
    ((Shardex__Internal__V1__ScanRequest *)c->req)->epoch = tg.epoch;
    snprintf(addr, cap, "%s", tg.address);
    snprintf(c->what, sizeof(c->what), "term partition %u of index \"%.64s\"", t, pl->def.name);
    return true;
}

static int key_cmp(const ProtobufCBinaryData *a, const ProtobufCBinaryData *b)
{
    size_t n = a->len < b->len ? a->len : b->len;
    int c = n ? memcmp(a->data, b->data, n) : 0;
    return c ? c : (a->len > b->len) - (a->len < b->len);
}

/* Scans every target of the plan and merges into resp. */
static sx_status run_plan(sx_worker_ctx *w, sx_rpc_call *call, plan *pl, uint32_t limit,
                          uint64_t deadline, Shardex__V1__QueryResponse *resp, sx_err *err)
{
    sx_arena *arena = sx_rpc_call_arena(call);
    sx_fanout_call *calls = sx_arena_alloc(arena, pl->n * sizeof(*calls));
    for (size_t i = 0; i < pl->n; i++)
        calls[i].req = &pl->reqs[i].base;
    sx_status st = sx_fanout_run(
        w->rpc, w->member, SX_IXSERVICE_DESCRIPTOR, pl->global ? "ScanTerm" : "ScanLocal", calls,
        pl->n, pl->global ? aim_term : aim_local, pl, deadline, pl->attempt_ms, err);
    if (st != SX_OK) {
        sx_fanout_free(calls, pl->n);
        return st;
    }
    /* k-way merge of sorted lists: n is at most a few dozen. */
    size_t *pos = sx_arena_alloc(arena, pl->n * sizeof(*pos));
    bool more = false;
    uint64_t stale = 0;
    for (size_t i = 0; i < pl->n; i++) {
        const Shardex__Internal__V1__ScanResponse *r = (const void *)calls[i].resp;
        more |= r->more;
        if (r->staleness_ms > stale)
            stale = r->staleness_ms;
    }
    resp->hits = sx_arena_alloc(arena, (limit + 1) * sizeof(*resp->hits));
    const Shardex__Internal__V1__ScanHit *last = NULL;
    for (;;) {
        size_t best = SIZE_MAX;
        for (size_t i = 0; i < pl->n; i++) {
            const Shardex__Internal__V1__ScanResponse *r = (const void *)calls[i].resp;
            if (pos[i] < r->n_hits &&
                (best == SIZE_MAX ||
                 key_cmp(&r->hits[pos[i]]->key,
                         &((const Shardex__Internal__V1__ScanResponse *)calls[best].resp)
                              ->hits[pos[best]]
                              ->key) < 0))
                best = i;
        }
        if (best == SIZE_MAX)
            break;
        if (resp->n_hits == limit) {
            more = true;
            break;
        }
        const Shardex__Internal__V1__ScanResponse *r = (const void *)calls[best].resp;
        const Shardex__Internal__V1__ScanHit *h = r->hits[pos[best]++];
        Shardex__V1__Hit *o = sx_arena_alloc(arena, sizeof(*o));
        shardex__v1__hit__init(o);
        o->id = sx_arena_strdup(arena, h->id);
        Shardex__V1__Value *v = sx_arena_alloc(arena, sizeof(*v));
        *v = *h->value;
        if (v->kind_case == SHARDEX__V1__VALUE__KIND_S)
            v->s = sx_arena_strdup(arena, v->s);
        o->value = v;
        o->doc = h->doc; /* moved below: responses are freed at the end of the call */
        resp->hits[resp->n_hits++] = o;
        last = h;
    }
    if (more && last) {
        sx_buf tok = {0};
        sx_key_append_u8(&tok, PAGE_TOKEN_VERSION);
        sx_key_append_u64(&tok, pl->def.id);
        sx_buf_append(&tok, last->key.data, last->key.len);
        resp->next_page_token.data = sx_arena_memdup(arena, tok.data, tok.len);
        resp->next_page_token.len = tok.len;
        sx_buf_free(&tok);
    }
    resp->staleness_ms = stale;
    resp->partitions_contacted = (uint32_t)pl->n;
    resp->mode = pl->global ? SHARDEX__V1__MODE__MODE_GLOBAL : SHARDEX__V1__MODE__MODE_LOCAL;
    /* Documents and hits stay owned by the responses until the call ends. */
    for (size_t i = 0; i < pl->n; i++)
        sx_rpc_call_on_done(call, (void (*)(void *))sx_rpc_free, calls[i].resp);
    return SX_OK;
}

/* Documents for GLOBAL hits: one Read per hit, all in flight at once. */
static sx_status fetch_docs(sx_worker_ctx *w, sx_rpc_call *call, uint32_t P,
                            Shardex__V1__QueryResponse *resp, uint64_t deadline,
                            uint64_t attempt_ms, sx_err *err)
{
    size_t n = resp->n_hits;
    if (n == 0)
        return SX_OK;
    sx_arena *arena = sx_rpc_call_arena(call);
    sx_fanout_call *calls = sx_arena_alloc(arena, n * sizeof(*calls));
    Shardex__Internal__V1__ReadRequest *reqs = sx_arena_alloc(arena, n * sizeof(*reqs));
    uint32_t *parts = sx_arena_alloc(arena, n * sizeof(*parts));
    for (size_t i = 0; i < n; i++) {
        shardex__internal__v1__read_request__init(&reqs[i]);
        reqs[i].id = resp->hits[i]->id;
        reqs[i].partition = parts[i] = sx_partition_of(reqs[i].id, strlen(reqs[i].id), P);
        calls[i].req = &reqs[i].base;
    }
    sx_status st = sx_fanout_run(w->rpc, w->member, REPL_SVC, "Read", calls, n,
                                 sx_fanout_aim_leaders, parts, deadline, attempt_ms, err);
    if (st == SX_OK) {
        for (size_t i = 0; i < n; i++) {
            const Shardex__V1__GetResponse *g = (const void *)calls[i].resp;
            resp->hits[i]->doc = g->found ? g->doc : NULL;
            sx_rpc_call_on_done(call, (void (*)(void *))sx_rpc_free, calls[i].resp);
        }
    } else {
        sx_fanout_free(calls, n);
    }
    return st;
}

static bool value_ok(const Shardex__V1__Value *v, bool is_int)
{
    return v && v->kind_case == (is_int ? SHARDEX__V1__VALUE__KIND_I : SHARDEX__V1__VALUE__KIND_S);
}

static sx_status on_query(sx_rpc_call *call, const ProtobufCMessage *reqm, ProtobufCMessage *respm,
                          void *arg, sx_err *err)
{
    sx_worker_ctx *w = arg;
    const Shardex__V1__QueryRequest *req = (const void *)reqm;
    Shardex__V1__QueryResponse *resp = (void *)respm;
    sx_arena *arena = sx_rpc_call_arena(call);
    uint64_t deadline = sx_rpc_call_deadline_or_default(call);
    if (!req->index || !req->index[0])
        return sx_err_set(err, SX_INVALID_ARGUMENT, "index: required");
    if (req->limit > SX_QUERY_LIMIT_MAX)
        return sx_err_set(err, SX_INVALID_ARGUMENT, "limit: %u is above %u", req->limit,
                          SX_QUERY_LIMIT_MAX);
    uint32_t limit = req->limit ? req->limit : SX_QUERY_LIMIT_DEFAULT;
    if (req->match_case == SHARDEX__V1__QUERY_REQUEST__MATCH__NOT_SET)
        return sx_err_set(err, SX_INVALID_ARGUMENT, "match: set eq or range");

    sx_member_view mv;
    sx_member_get_view(w->member, &mv);
    sx_status st = SX_OK;
    plan pl = {0};
    sx_buf start = {0}, end = {0}, tmp = {0};
    uint32_t P = mv.map ? sx_partmap_partitions(mv.map) : 0;
    if (!P) {
        st = sx_err_set(err, SX_UNAVAILABLE, "this worker has not joined the cluster yet");
        goto out;
    }
    pl.e = sx_partmap_index_named(mv.map, req->index);
    if (!pl.e) {
        st = sx_err_set(err, SX_NOT_FOUND, "index \"%s\" does not exist", req->index);
        goto out;
    }
    sx_ix_def_from_spec(&pl.def, pl.e->id, pl.e->spec);
    pl.def.name = sx_arena_strdup(arena, pl.def.name); /* outlives the map */
    pl.def.field = sx_arena_strdup(arena, pl.def.field);
    pl.P = P;
    pl.attempt_ms = sx_partmap_attempt_ms(mv.map);
    const char *type = pl.def.is_int ? "int" : "string";

    /* The key range. */
    if (req->match_case == SHARDEX__V1__QUERY_REQUEST__MATCH_EQ) {
        if (!value_ok(req->eq, pl.def.is_int)) {
            st = sx_err_set(err, SX_INVALID_ARGUMENT, "eq: index \"%s\" holds %s values",
                            req->index, type);
            goto out;
        }
        sx_ix_append_value(&start, pl.def.is_int, req->eq);
        sx_key_prefix_successor(start.data, start.len, &end);
    } else {
        const Shardex__V1__Range *r = req->range;
        if (r && r->min && !value_ok(r->min, pl.def.is_int)) {
            st = sx_err_set(err, SX_INVALID_ARGUMENT, "range.min: index \"%s\" holds %s values",
                            req->index, type);
            goto out;
        }
        if (r && r->max && !value_ok(r->max, pl.def.is_int)) {
            st = sx_err_set(err, SX_INVALID_ARGUMENT, "range.max: index \"%s\" holds %s values",
                            req->index, type);
            goto out;
        }
        if (r && r->min)
            sx_ix_append_value(&start, pl.def.is_int, r->min);
        if (r && r->max) {
            sx_ix_append_value(&tmp, pl.def.is_int, r->max);
            sx_key_prefix_successor(tmp.data, tmp.len, &end);
        }
    }
    if (req->page_token.len) {
        sx_key_reader kr;
        uint8_t ver = 0;
        uint64_t id = 0;
        sx_key_reader_init(&kr, req->page_token.data, req->page_token.len);
        if (!sx_key_read_u8(&kr, &ver) || ver != PAGE_TOKEN_VERSION || !sx_key_read_u64(&kr, &id) ||
            kr.pos == kr.len) {
            st = sx_err_set(err, SX_INVALID_ARGUMENT, "page_token: malformed");
            goto out;
        }
        if (id != pl.def.id) {
            st = sx_err_set(err, SX_INVALID_ARGUMENT,
                            "page_token: belongs to another index (or \"%s\" was re-created)",
                            req->index);
            goto out;
        }
        /* Just after the last key returned. */
        tmp.len = 0;
        sx_buf_append(&tmp, kr.p + kr.pos, kr.len - kr.pos);
        sx_buf_push(&tmp, 0);
        if (key_cmp(&(ProtobufCBinaryData){tmp.len, tmp.data},
                    &(ProtobufCBinaryData){start.len, start.data}) > 0) {
            start.len = 0;
            sx_buf_append(&start, tmp.data, tmp.len);
        }
    }
    for (size_t i = 0; i < req->n_after; i++) {
        if (req->after[i]->partition >= P) {
            st = sx_err_set(err, SX_INVALID_ARGUMENT,
                            "after[%zu].partition: %u is not below %u partitions", i,
                            req->after[i]->partition, P);
            goto out;
        }
    }

    /* The mode. */
    bool want_global;
    if (req->mode == SHARDEX__V1__MODE__MODE_LOCAL) {
        if (!pl.def.local) {
            st = sx_err_set(err, SX_FAILED_PRECONDITION, "index \"%s\" is not kept LOCAL",
                            req->index);
            goto out;
        }
        want_global = false;
    } else if (req->mode == SHARDEX__V1__MODE__MODE_GLOBAL) {
        if (!pl.def.global) {
            st = sx_err_set(err, SX_FAILED_PRECONDITION, "index \"%s\" is not kept GLOBAL",
                            req->index);
            goto out;
        }
        want_global = true;
    } else {
        want_global = pl.def.global &&
                      (pl.e->state == SHARDEX__V1__INDEX_STATE__INDEX_STATE_READY || !pl.def.local);
    }
    bool auto_mode = req->mode == SHARDEX__V1__MODE__MODE_UNSPECIFIED;
    sx_partmap_release(mv.map);
    mv.map = NULL;

    for (int attempt = 0; attempt < 2; attempt++) {
        pl.global = want_global;
        pl.n = want_global ? (req->match_case == SHARDEX__V1__QUERY_REQUEST__MATCH_EQ
                                  ? 1
                                  : pl.def.term_partitions)
                           : P;
        pl.reqs = sx_arena_alloc(arena, pl.n * sizeof(*pl.reqs));
        pl.targets = sx_arena_alloc(arena, pl.n * sizeof(*pl.targets));
        for (size_t i = 0; i < pl.n; i++) {
            Shardex__Internal__V1__ScanRequest *s = &pl.reqs[i];
            shardex__internal__v1__scan_request__init(s);
            s->index_id = pl.def.id;
            s->type = pl.def.is_int ? SHARDEX__V1__VALUE_TYPE__VALUE_TYPE_INT
                                    : SHARDEX__V1__VALUE_TYPE__VALUE_TYPE_STRING;
            s->start = (ProtobufCBinaryData){start.len, start.data};
            s->end = (ProtobufCBinaryData){end.len, end.data};
            s->limit = limit;
            s->n_after = req->n_after;
            s->after = req->after;
            s->partitions = P;
            if (want_global) {
                pl.targets[i] = req->match_case == SHARDEX__V1__QUERY_REQUEST__MATCH_EQ
                                    ? sx_ix_term_of(&pl.def, start.data, start.len)
                                    : (uint32_t)i;
                s->partition = pl.targets[i];
                if (auto_mode && pl.def.local)
                    s->max_staleness_ms = AUTO_MAX_STALENESS_MS;
            } else {
                pl.targets[i] = (uint32_t)i;
                s->partition = (uint32_t)i;
                s->include_docs = req->include_docs;
            }
        }
        st = run_plan(w, call, &pl, limit, deadline, resp, err);
        if (st == SX_OK || !(auto_mode && want_global && pl.def.local) ||
            (st != SX_UNAVAILABLE && st != SX_DEADLINE_EXCEEDED))
            break;
        /* Auto mode: the global index is stale or being rebuilt: LOCAL answers. */
        SX_LOG(SX_LOG_DEBUG, "query", "index=%s global unavailable, serving LOCAL: %s", req->index,
               err->msg);
        sx_err_clear(err);
        want_global = false;
    }
    if (st == SX_OK && pl.global && req->include_docs)
        st = fetch_docs(w, call, P, resp, deadline, pl.attempt_ms, err);
    if (st == SX_OK && pl.global && !pl.def.local && auto_mode)
        resp->mode = SHARDEX__V1__MODE__MODE_GLOBAL;
out:
    sx_partmap_release(mv.map);
    sx_buf_free(&start);
    sx_buf_free(&end);
    sx_buf_free(&tmp);
    return st;
}

static const sx_rpc_method query_methods[] = {
    {"Query", on_query, SX_RPC_ROUTING},
};

sx_status sx_query_service_add(sx_rpc_server *srv, sx_worker_ctx *w, sx_err *err)
{
    size_t nix = 0;
    const sx_rpc_method *ix = sx_ixservice_methods(&nix);
    sx_status st = sx_rpc_server_add_service(srv, SX_IXSERVICE_DESCRIPTOR, ix, nix, w, err);
    if (st == SX_OK)
        st = sx_rpc_server_add_service(srv, &shardex__v1__shardex__descriptor, query_methods,
                                       sizeof(query_methods) / sizeof(query_methods[0]), w, err);
    return st;
}
