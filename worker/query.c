/* query.c: Shardex.Query on any worker, see query.h: plan (qplan.h), run,
 * merge.
 *
 * Run: every target of the plan is scanned at once through the fan-out
 * (sx_fanout_exec with the reads policy), each call re-aimed from the newest
 * map (a leader or owner that moved, an index dropped meanwhile). Each target
 * returns up to `limit` hits in key order; the merge keeps the first `limit`
 * by key, and when more remain anywhere the next page token is the last key
 * kept. In auto mode a GLOBAL run the term partitions cannot answer is run
 * again LOCAL (qplan.h). GLOBAL with include_docs then reads each hit's
 * document from its leader.
 *
 * Answers that say how complete they are (LOCAL; docs/architecture.md,
 * "Budgets, partial answers and hedged reads"): with a budget the scans end
 * at its end and the partitions that did not answer are named missing (the
 * page token then keeps one position per partition, qplan.h); with
 * max_staleness_ms a slow leader's scan is hedged to a follower
 * (aim_follower), the first answer winning.
 *
 * Documents travel as the bytes they are stored as, from the store to the
 * client: scans and ReadMany return them packed, and the answer is the
 * QueryResponse's wire twin (wire.proto) holding them as bytes, so a page of
 * a thousand documents is not parsed and packed again here.
 *
 * Not here: what a scan does on the target (ixservice.h), the retry policy
 * (fanout.h).
 */
#include "query.h"

#include "clock.h"
#include "fanout.h"
#include "hash.h"
#include "log.h"
#include "qplan.h"
#include "shardex/internal/v1/index.pb-c.h"
#include "shardex/internal/v1/wire.pb-c.h"

#include <stdio.h>
#include <string.h>

#define INDEX_SVC (&shardex__internal__v1__index__descriptor)
#define REPL_SVC (&shardex__internal__v1__replication__descriptor)

/* One run of a plan. */
typedef struct run_ctx {
    sx_worker_ctx *w;
    sx_rpc_call *call;
    const sx_qplan *pl;
    uint64_t deadline;        /* the query's, monotonic */
    uint64_t budget_deadline; /* the budget's end (the deadline without one) */
    uint64_t attempt_ms;      /* one attempt: about two leases, as the router's */
} run_ctx;

static bool aim_local(void *arg, size_t i, const sx_partmap *m, sx_fanout_call *c, char *addr,
                      size_t cap, sx_err *err)
{
    const sx_qplan *pl = arg;
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
    const sx_qplan *pl = arg;
    uint32_t t = pl->targets[i];
    const Shardex__Internal__V1__IndexEntry *e = sx_partmap_index(m, pl->def.id);
    const Shardex__Internal__V1__TermPartition *tp = e ? sx_partmap_term(m, e, t) : NULL;
    if (!tp) {
        sx_err_set(err, SX_NOT_FOUND, "index \"%s\" was dropped", pl->def.name);
        return false;
    }
    if (tp->retired) {
        /* Split and swapped out since the plan was made: no call of this run
         * counts; the query is planned again on the newest map. */
        atomic_store(&((sx_qplan *)pl)->retired, true);
        sx_err_set(err, SX_NOT_FOUND, "term partition %u of index \"%s\" was split", t,
                   pl->def.name);
        return false;
    }
    sx_partmap_target tg;
    if (sx_partmap_term_target(m, e, t, &tg, err) != SX_OK)
        return false;
    ((Shardex__Internal__V1__ScanRequest *)c->req)->epoch = tg.epoch;
    snprintf(addr, cap, "%s", tg.address);
    c->self = tg.worker == sx_partmap_self(m);
    snprintf(c->what, sizeof(c->what), "term partition %u of index \"%.64s\"", t, pl->def.name);
    return true;
}

/* The hedge of a LOCAL scan: a follower of the partition, this worker when
 * it holds one (no network), else the first live replica that does not lead,
 * in-sync ones first. */
static bool aim_follower(void *arg, size_t i, const sx_partmap *m, sx_fanout_call *c, char *addr,
                         size_t cap, sx_err *err)
{
    const sx_qplan *pl = arg;
    uint32_t p = pl->targets[i];
    const Shardex__Internal__V1__LogPartition *lp = sx_partmap_part(m, p);
    int32_t self = sx_partmap_self(m), leader = sx_partmap_leader(m, p), pick = -1;
    if (!lp)
        return sx_err_set(err, SX_UNAVAILABLE, "partition %u: not in the map", p) == SX_OK;
    if (self >= 0 && self != leader && sx_partmap_hosts(m, p, self))
        pick = self;
    for (int pass = 0; pick < 0 && pass < 2; pass++) {
        for (size_t k = 0; pick < 0 && k < lp->n_replicas; k++) {
            int32_t w = lp->replicas[k];
            const Shardex__Internal__V1__WorkerEntry *we = sx_partmap_worker(m, w);
            if (w != leader && we && we->alive && (pass == 1 || sx_partmap_in_isr(m, p, w)))
                pick = w;
        }
    }
    if (pick < 0) {
        sx_err_set(err, SX_UNAVAILABLE, "partition %u: no live follower to hedge to", p);
        return false;
    }
    snprintf(addr, cap, "%s", sx_partmap_worker(m, pick)->address);
    c->hedge_self = pick == self;
    return true;
}

/* A call's scan, NULL when it did not answer (a partial answer's missing
 * partition). */
static const Shardex__Internal__V1__ScanResponse *scan_resp(const sx_fanout_call *c)
{
    return c->st == SX_OK ? (const void *)c->resp : NULL;
}

/* The call whose next hit (at pos) has the smallest key; SIZE_MAX when
 * every call's hits are used up. n is at most a few dozen. */
static size_t next_best(const sx_fanout_call *calls, size_t n, const size_t *pos)
{
    size_t best = SIZE_MAX;
    const ProtobufCBinaryData *best_key = NULL;
    for (size_t i = 0; i < n; i++) {
        const Shardex__Internal__V1__ScanResponse *r = scan_resp(&calls[i]);
        if (r && pos[i] < r->n_hits &&
            (!best_key || sx_qplan_key_cmp(&r->hits[pos[i]]->key, best_key) < 0)) {
            best = i;
            best_key = &r->hits[pos[i]]->key;
        }
    }
    return best;
}

typedef Shardex__Internal__V1__WireQueryResponse answer; /* a QueryResponse on the wire */

static Shardex__Internal__V1__WireHit *client_hit(sx_arena *arena,
                                                  const Shardex__Internal__V1__ScanHit *h)
{
    Shardex__Internal__V1__WireHit *o = sx_arena_alloc(arena, sizeof(*o));
    shardex__internal__v1__wire_hit__init(o);
    o->id = sx_arena_strdup(arena, h->id);
    Shardex__V1__Value *v = sx_arena_alloc(arena, sizeof(*v));
    *v = *h->value;
    if (v->kind_case == SHARDEX__V1__VALUE__KIND_S)
        v->s = sx_arena_strdup(arena, v->s);
    o->value = v;
    o->doc = h->doc; /* borrowed: the scan responses are freed when the call ends */
    return o;
}

/* The next page's token after a page whose last hit is last (NULL: none):
 * a plain one while every partition stands at that key; else one position
 * per partition (qplan.h), a missing partition staying where it stood. */
static ProtobufCBinaryData next_token(sx_arena *arena, const sx_qplan *pl,
                                      const sx_fanout_call *calls,
                                      const Shardex__Internal__V1__ScanHit *last)
{
    ProtobufCBinaryData *pos = sx_arena_alloc(arena, (pl->P + 1) * sizeof(*pos));
    bool same = last != NULL;
    for (uint32_t p = 0; p < pl->P; p++) {
        pos[p] = pl->pos[p];
        /* An answering partition returned every hit of its up to last. */
        if (scan_resp(&calls[p]) && last &&
            (!pos[p].len || sx_qplan_key_cmp(&last->key, &pos[p]) > 0))
            pos[p] = last->key;
        same &= pos[p].len == last->key.len && !memcmp(pos[p].data, last->key.data, pos[p].len);
    }
    if (same)
        return sx_qplan_token(arena, pl->def.id, &last->key);
    return sx_qplan_positions_token(arena, pl->def.id, pl->P, pos);
}

/* k-way merge of the plan's sorted scan responses into resp: the first `limit`
 * hits, the next page token, staleness (the worst target's) and mode. A LOCAL
 * call that did not answer (budget) makes the answer partial: its partition
 * is named missing, and the token keeps its position. */
static void merge(sx_arena *arena, const sx_qplan *pl, const sx_fanout_call *calls, answer *resp)
{
    size_t *pos = sx_arena_alloc(arena, pl->n * sizeof(*pos));
    bool more = false;
    uint64_t stale = 0;
    resp->missing_partitions = sx_arena_alloc(arena, (pl->n + 1) * sizeof(uint32_t));
    resp->follower_partitions = sx_arena_alloc(arena, (pl->n + 1) * sizeof(uint32_t));
    for (size_t i = 0; i < pl->n; i++) {
        pos[i] = 0;
        const Shardex__Internal__V1__ScanResponse *r = scan_resp(&calls[i]);
        if (!r) {
            resp->missing_partitions[resp->n_missing_partitions++] = pl->targets[i];
            continue;
        }
        if (calls[i].hedged)
            resp->follower_partitions[resp->n_follower_partitions++] = pl->targets[i];
        more |= r->more;
        if (r->staleness_ms > stale)
            stale = r->staleness_ms;
    }
    resp->partial = resp->n_missing_partitions > 0;
    resp->hits = sx_arena_alloc(arena, (pl->limit + 1) * sizeof(*resp->hits));
    const Shardex__Internal__V1__ScanHit *last = NULL;
    for (size_t best; (best = next_best(calls, pl->n, pos)) != SIZE_MAX;) {
        if (resp->n_hits == pl->limit) {
            more = true;
            break;
        }
        const Shardex__Internal__V1__ScanHit *h = scan_resp(&calls[best])->hits[pos[best]++];
        /* One key from two term partitions: a salted value's entry moving
         * from its own partition to its slot's, each read at its own
         * watermark (docs/indexes.md "Hot values"). Once is enough. */
        if (last && sx_qplan_key_cmp(&h->key, &last->key) == 0)
            continue;
        last = h;
        resp->hits[resp->n_hits++] = client_hit(arena, last);
    }
    if (!pl->global && (resp->partial || pl->positional) && (more || resp->partial))
        resp->next_page_token = next_token(arena, pl, calls, last);
    else if (more && last)
        resp->next_page_token = sx_qplan_token(arena, pl->def.id, &last->key);
    resp->staleness_ms = stale;
    resp->partitions_contacted = (uint32_t)pl->n;
    resp->mode = pl->global ? SHARDEX__V1__MODE__MODE_GLOBAL : SHARDEX__V1__MODE__MODE_LOCAL;
}

/* With a budget, what a call that did not answer in time may fail with and
 * leave the answer partial: the cluster could not answer (no leader, a
 * refusal retried to the end) or not in time. Anything else (the index was
 * dropped, bad input) fails the query. */
static bool may_be_missing(sx_status st)
{
    return st == SX_UNAVAILABLE || st == SX_DEADLINE_EXCEEDED;
}

/* Runs the plan's scans: each to its target, LOCAL ones hedged to a
 * follower when the plan accepts follower reads, all within the budget. */
static sx_status scan_all(const run_ctx *q, sx_fanout_call *calls, uint64_t deadline, sx_err *err)
{
    const sx_qplan *pl = q->pl;
    sx_arena *arena = sx_rpc_call_arena(q->call);
    bool hedge = !pl->global && pl->max_staleness_ms > 0;
    Shardex__Internal__V1__ScanRequest *hreqs =
        hedge ? sx_arena_alloc(arena, pl->n * sizeof(*hreqs)) : NULL;
    for (size_t i = 0; i < pl->n; i++) {
        calls[i].req = &pl->reqs[i].base;
        if (hedge) {
            hreqs[i] = pl->reqs[i];
            hreqs[i].follower_max_staleness_ms = pl->max_staleness_ms;
            calls[i].hedge_req = &hreqs[i].base;
        }
    }
    sx_fanout_policy p = sx_fanout_reads;
    p.attempt_ms = q->attempt_ms;
    sx_fanout fo = {.rpc = q->w->rpc,
                    .here = q->w->srv,
                    .map = sx_fanout_member_map_cb,
                    .map_arg = q->w->member,
                    .stale = sx_fanout_member_stale_cb,
                    .svc = INDEX_SVC,
                    .method = pl->global ? "ScanTerm" : "ScanLocal",
                    .aim = pl->global ? aim_term : aim_local,
                    .aim_arg = (void *)pl,
                    .policy = &p,
                    .hedge_aim = hedge ? aim_follower : NULL,
                    .hedge_ms = pl->hedge_ms};
    return sx_fanout_exec(&fo, calls, pl->n, deadline, err);
}

/* Scans every target of the plan and merges into resp (untouched on
 * failure). With a budget (LOCAL), the partitions that did not answer
 * within it are missing from a partial answer instead of failing it. */
static sx_status run(const run_ctx *q, answer *resp, sx_err *err)
{
    const sx_qplan *pl = q->pl;
    sx_arena *arena = sx_rpc_call_arena(q->call);
    sx_fanout_call *calls = sx_arena_alloc(arena, pl->n * sizeof(*calls));
    memset(calls, 0, pl->n * sizeof(*calls));
    sx_status st = scan_all(q, calls, q->budget_deadline, err);
    if (st != SX_OK && pl->budget_ms && !pl->global) {
        st = SX_OK;
        for (size_t i = 0; i < pl->n && st == SX_OK; i++)
            if (calls[i].st != SX_OK && !may_be_missing(calls[i].st)) {
                st = calls[i].st;
                *err = calls[i].err;
            }
        if (st == SX_OK)
            sx_err_clear(err);
    }
    if (st != SX_OK) {
        sx_fanout_free(calls, pl->n);
        return st;
    }
    merge(arena, pl, calls, resp);
    /* Documents and hits stay owned by the responses until the call ends. */
    for (size_t i = 0; i < pl->n; i++)
        if (calls[i].resp)
            sx_rpc_call_on_done(q->call, (void (*)(void *))sx_rpc_free, calls[i].resp);
    return SX_OK;
}

/* Documents for GLOBAL hits: one ReadMany per log partition that holds
 * some, all in flight at once (one Read per hit cost a page of 100 hits 100
 * internal calls). */
static sx_status fetch_docs(const run_ctx *q, answer *resp, sx_err *err)
{
    size_t n = resp->n_hits, P = q->pl->P;
    if (n == 0)
        return SX_OK;
    sx_arena *arena = sx_rpc_call_arena(q->call);
    uint32_t *part_of = sx_arena_alloc(arena, n * sizeof(*part_of));
    size_t *count = sx_arena_alloc(arena, P * sizeof(*count));
    memset(count, 0, P * sizeof(*count));
    for (size_t i = 0; i < n; i++) {
        const char *id = resp->hits[i]->id;
        part_of[i] = sx_partition_of(id, strlen(id), (uint32_t)P);
        count[part_of[i]]++;
    }
    /* One request per partition with hits; slot[p] is its call. */
    size_t *slot = sx_arena_alloc(arena, P * sizeof(*slot)), ncalls = 0;
    uint32_t *parts = sx_arena_alloc(arena, P * sizeof(*parts));
    Shardex__Internal__V1__ReadManyRequest *reqs = sx_arena_alloc(arena, P * sizeof(*reqs));
    for (size_t p = 0; p < P; p++) {
        if (!count[p])
            continue;
        slot[p] = ncalls;
        parts[ncalls] = (uint32_t)p;
        shardex__internal__v1__read_many_request__init(&reqs[ncalls]);
        reqs[ncalls].partition = (uint32_t)p;
        reqs[ncalls].ids = sx_arena_alloc(arena, count[p] * sizeof(char *));
        ncalls++;
    }
    for (size_t i = 0; i < n; i++) {
        Shardex__Internal__V1__ReadManyRequest *r = &reqs[slot[part_of[i]]];
        r->ids[r->n_ids++] = resp->hits[i]->id;
    }
    sx_fanout_call *calls = sx_arena_alloc(arena, ncalls * sizeof(*calls));
    memset(calls, 0, ncalls * sizeof(*calls));
    for (size_t c = 0; c < ncalls; c++)
        calls[c].req = &reqs[c].base;
    sx_status st =
        sx_fanout_run(q->w->rpc, q->w->srv, q->w->member, REPL_SVC, "ReadMany", calls, ncalls,
                      sx_fanout_aim_leaders, parts, q->deadline, q->attempt_ms, err);
    if (st != SX_OK) {
        sx_fanout_free(calls, ncalls);
        return st;
    }
    size_t *next = sx_arena_alloc(arena, ncalls * sizeof(*next));
    memset(next, 0, ncalls * sizeof(*next));
    for (size_t c = 0; c < ncalls; c++) {
        const Shardex__Internal__V1__ReadManyResponse *r = (const void *)calls[c].resp;
        if (r->n_docs != reqs[c].n_ids) {
            sx_fanout_free(calls, ncalls);
            return sx_err_set(err, SX_INTERNAL,
                              "ReadMany of partition %u: %zu documents for %zu ids", parts[c],
                              r->n_docs, reqs[c].n_ids);
        }
    }
    for (size_t i = 0; i < n; i++) {
        size_t c = slot[part_of[i]];
        const Shardex__Internal__V1__ReadManyResponse *r = (const void *)calls[c].resp;
        const Shardex__Internal__V1__PackedDoc *g = r->docs[next[c]++];
        if (g->found)
            resp->hits[i]->doc = g->doc; /* borrowed: the responses are freed when the call ends */
    }
    for (size_t c = 0; c < ncalls; c++)
        sx_rpc_call_on_done(q->call, (void (*)(void *))sx_rpc_free, calls[c].resp);
    return SX_OK;
}

sx_status sx_query_on_query(sx_rpc_call *call, const ProtobufCMessage *reqm,
                            ProtobufCMessage *respm, void *arg, sx_err *err)
{
    const Shardex__V1__QueryRequest *req = (const void *)reqm;
    (void)respm; /* the answer is its wire twin */
    uint64_t start_ns = sx_clock_now_ns();
    sx_arena *arena = sx_rpc_call_arena(call);
    answer *resp = sx_arena_alloc(arena, sizeof(*resp));
    shardex__internal__v1__wire_query_response__init(resp);
    sx_qplan pl;
    run_ctx q = {.w = arg, .call = call, .pl = &pl};
    q.deadline = sx_rpc_call_deadline_or_default(call);
    q.budget_deadline = q.deadline;
    if (req->budget_ms && start_ns / 1000000 + req->budget_ms < q.deadline)
        q.budget_deadline = start_ns / 1000000 + req->budget_ms;
    sx_status st;
    /* A plan names the term partitions of one map version; one retired by a
     * split meanwhile makes the run fail at once, and the query is planned
     * again on the newer map (a page token is a key: the page stays exact). */
    for (int plans = 0;; plans++) {
        sx_membership_view mv;
        sx_membership_get_view(q.w->member, &mv);
        st = sx_qplan_make(req, mv.map, arena, &pl, err);
        if (st == SX_OK)
            q.attempt_ms = sx_partmap_attempt_ms(mv.map);
        sx_partmap_release(mv.map); /* the plan holds nothing of it; each call re-aims */
        if (st != SX_OK)
            return st;
        st = run(&q, resp, err);
        if (st == SX_OK || !atomic_load(&pl.retired) || plans == 3)
            break;
        sx_err_clear(err);
        shardex__internal__v1__wire_query_response__init(resp);
    }
    if (st != SX_OK && sx_qplan_falls_back(&pl, st)) {
        SX_LOG(SX_LOG_DEBUG, "query", "index=%s global unavailable, serving LOCAL: %s", req->index,
               err->msg);
        sx_err_clear(err);
        sx_qplan_go_local(&pl, arena);
        st = run(&q, resp, err);
    }
    if (st == SX_OK && pl.global && pl.include_docs)
        st = fetch_docs(&q, resp, err);
    if (st == SX_OK) {
        sx_rpc_call_reply_with(call, &resp->base);
        sx_histogram_observe(pl.global ? q.w->m.query_global : q.w->m.query_local,
                             (double)(sx_clock_now_ns() - start_ns) / 1e9);
        if (resp->partial)
            sx_counter_inc(q.w->m.query_partial);
        sx_counter_add(q.w->m.follower_scans, resp->n_follower_partitions);
    }
    return st;
}
