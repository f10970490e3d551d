/* router.c: the client contract's Put, Delete and Get on any worker.
 *
 * A write is validated whole before anything is sent, grouped by log
 * partition (p = xxh64(id) mod P) and each group sent to its partition's
 * leader as one Replication.Write, all groups in flight at once. A group
 * refused because the leadership moved (ABORTED), or whose leader cannot be
 * reached, is retried against the leader of the next map until the call's
 * deadline; a group refused for lack of in-sync replicas fails at once with
 * UNAVAILABLE. Tokens come back in request order. When some groups fail the
 * call fails with the first failure's status and names the ids that may not
 * have been written; retrying the same documents is safe (a document's
 * content is the same, its version rises).
 */
#include "router.h"

#include "clock.h"
#include "fanout.h"
#include "hash.h"
#include "log.h"
#include "validate.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define REPL_SVC (&shardex__internal__v1__replication__descriptor)
/* Pause before retrying groups whose leader moved: about a heartbeat. */
#define REROUTE_PAUSE_MS 50

typedef struct group {
    uint32_t p;
    size_t n;
    size_t *pos;              /* positions in the request */
    ProtobufCBinaryData *ops; /* packed LogOps */
    bool done;                /* committed, or failed for good */
    bool in_flight;
    sx_status st;
    sx_err err;
} group;

typedef struct route {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int in_flight;
    Shardex__V1__WriteToken **tokens; /* [n docs] */
    sx_arena *arena;
} route;

typedef struct sent {
    route *rt;
    group *g;
} sent;

static void on_write_done(sx_status st, const sx_err *err, ProtobufCMessage *resp, void *arg)
{
    sent *s = arg;
    route *rt = s->rt;
    group *g = s->g;
    pthread_mutex_lock(&rt->mu);
    g->in_flight = false;
    g->st = st;
    if (st == SX_OK) {
        const Shardex__Internal__V1__WriteResponse *wr = (const void *)resp;
        if (wr->n_offsets != g->n) {
            g->st = SX_INTERNAL;
            sx_err_set(&g->err, SX_INTERNAL,
                       "partition %u: leader returned %zu offsets for %zu "
                       "operations",
                       g->p, wr->n_offsets, g->n);
        } else {
            for (size_t i = 0; i < g->n; i++) {
                Shardex__V1__WriteToken *t = sx_arena_alloc(rt->arena, sizeof(*t));
                shardex__v1__write_token__init(t);
                t->partition = g->p;
                t->offset = wr->offsets[i];
                rt->tokens[g->pos[i]] = t;
            }
        }
        g->done = true;
    } else {
        g->err = *err;
    }
    rt->in_flight--;
    pthread_cond_broadcast(&rt->cv);
    pthread_mutex_unlock(&rt->mu);
    sx_rpc_free(resp);
}

/* How long a refusal for too few in-sync replicas is retried: long enough
 * for a leader with a stale map (it just handed leadership on) to hear of the
 * new one, short enough that a real shortage is reported promptly. */
#define ISR_RETRY_MS 600

/* Whether a failed group may be sent again (nothing was appended, or
 * appending twice is harmless: same content, a higher version). A timed-out
 * attempt is retried too while the call's own deadline allows. */
static bool retryable(sx_status st)
{
    return st == SX_ABORTED || st == SX_UNAVAILABLE || st == SX_UNIMPLEMENTED ||
           st == SX_DEADLINE_EXCEEDED;
}

/* Sends every group to its leader until all are done or the deadline passes.
 * ids[i] names op i for error messages. */
static sx_status route_ops(sx_worker_ctx *w, sx_rpc_call *call, const char *const *ids,
                           ProtobufCBinaryData *ops, size_t n,
                           Shardex__V1__WriteToken ***tokens_out, sx_err *err)
{
    sx_arena *arena = sx_rpc_call_arena(call);
    sx_member_view v;
    sx_member_get_view(w->member, &v);
    uint32_t P = v.map ? sx_partmap_partitions(v.map) : 0;
    sx_partmap_release(v.map);
    if (P == 0)
        return sx_err_set(err, SX_UNAVAILABLE, "this worker has not joined the cluster yet");

    /* Group by partition, keeping request order inside each group. */
    group *groups = sx_arena_alloc(arena, P * sizeof(*groups));
    uint32_t *part_of = sx_arena_alloc(arena, (n + 1) * sizeof(*part_of));
    for (size_t i = 0; i < n; i++) {
        part_of[i] = sx_partition_of(ids[i], strlen(ids[i]), P);
        groups[part_of[i]].n++;
    }
    for (uint32_t p = 0; p < P; p++) {
        groups[p].p = p;
        groups[p].pos = sx_arena_alloc(arena, (groups[p].n + 1) * sizeof(size_t));
        groups[p].ops = sx_arena_alloc(arena, (groups[p].n + 1) * sizeof(ProtobufCBinaryData));
        groups[p].done = groups[p].n == 0;
        groups[p].n = 0;
    }
    for (size_t i = 0; i < n; i++) {
        group *g = &groups[part_of[i]];
        g->pos[g->n] = i;
        g->ops[g->n] = ops[i];
        g->n++;
    }

    route rt = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER, .arena = arena};
    rt.tokens = sx_arena_alloc(arena, (n + 1) * sizeof(*rt.tokens));
    sent *sends = sx_arena_alloc(arena, P * sizeof(*sends));
    uint64_t deadline = sx_rpc_call_deadline_or_default(call);
    uint64_t isr_retry_until = sx_clock_now_ms() + ISR_RETRY_MS;

    for (;;) {
        sx_member_get_view(w->member, &v);
        uint64_t now = sx_clock_now_ms();
        for (uint32_t p = 0; p < P; p++) {
            group *g = &groups[p];
            if (g->done)
                continue;
            sx_partmap_target leader;
            if (!v.map || sx_partmap_leader_target(v.map, p, &leader, &g->err) != SX_OK) {
                g->st = SX_UNAVAILABLE;
                if (!v.map)
                    sx_err_set(&g->err, SX_UNAVAILABLE, "partition %u has no live leader", p);
                continue;
            }
            Shardex__Internal__V1__WriteRequest req = SHARDEX__INTERNAL__V1__WRITE_REQUEST__INIT;
            req.partition = p;
            req.n_ops = g->n;
            req.ops = g->ops;
            sends[p] = (sent){&rt, g};
            uint64_t attempt = sx_partmap_attempt_ms(v.map);
            uint64_t left = deadline > now ? deadline - now : 1;
            sx_rpc_call_opts o = {.timeout_ms = left < attempt ? left : attempt};
            pthread_mutex_lock(&rt.mu);
            g->in_flight = true;
            rt.in_flight++;
            pthread_mutex_unlock(&rt.mu);
            sx_rpc_invoke_async(w->rpc, leader.address, REPL_SVC, "Write", &req.base, &o,
                                on_write_done, &sends[p]);
        }
        sx_partmap_release(v.map);
        pthread_mutex_lock(&rt.mu);
        while (rt.in_flight > 0)
            pthread_cond_wait(&rt.cv, &rt.mu);
        pthread_mutex_unlock(&rt.mu);

        bool again = false;
        for (uint32_t p = 0; p < P; p++) {
            group *g = &groups[p];
            if (g->done)
                continue;
            uint64_t t = sx_clock_now_ms();
            bool may = retryable(g->st) || (g->st == SX_FAILED_PRECONDITION && t < isr_retry_until);
            if (may && t + REROUTE_PAUSE_MS < deadline)
                again = true;
            else
                g->done = true; /* failed for good */
        }
        if (!again)
            break;
        sx_clock_sleep_ms(REROUTE_PAUSE_MS); /* let the next map arrive */
    }

    /* The first failure, in partition order, decides the status. */
    group *failed = NULL;
    size_t lost = 0;
    for (uint32_t p = 0; p < P; p++) {
        if (groups[p].st != SX_OK && groups[p].n > 0) {
            if (!failed)
                failed = &groups[p];
            lost += groups[p].n;
        }
    }
    if (!failed) {
        *tokens_out = rt.tokens;
        return SX_OK;
    }
    sx_status st = failed->st;
    if (st == SX_FAILED_PRECONDITION || st == SX_ABORTED)
        st = SX_UNAVAILABLE; /* what a client sees: the partition cannot take writes now */
    char list[160] = "";
    size_t used = 0, shown = 0;
    for (size_t i = 0; i < n && used < sizeof(list) - 40; i++) {
        if (rt.tokens[i])
            continue;
        int k =
            snprintf(list + used, sizeof(list) - used, "%s\"%.24s\"", shown ? ", " : "", ids[i]);
        used += (size_t)k;
        shown++;
    }
    sx_err_set(err, st, "%s; %zu of %zu documents may not have been written: %s%s", failed->err.msg,
               lost, n, list, shown < lost ? ", ..." : "");
    return st;
}

/* Packs one LogOp into arena memory. */
static ProtobufCBinaryData pack_op(sx_arena *a, const Shardex__Internal__V1__LogOp *op)
{
    ProtobufCBinaryData b;
    b.len = protobuf_c_message_get_packed_size(&op->base);
    b.data = sx_arena_alloc(a, b.len + 1);
    protobuf_c_message_pack(&op->base, b.data);
    return b;
}

sx_status sx_router_put(sx_rpc_call *call, const ProtobufCMessage *reqm, ProtobufCMessage *respm,
                        void *arg, sx_err *err)
{
    const Shardex__V1__PutRequest *req = (const void *)reqm;
    Shardex__V1__PutResponse *resp = (void *)respm;
    sx_status st = sx_validate_put(req, err);
    if (st != SX_OK)
        return st;
    sx_arena *a = sx_rpc_call_arena(call);
    const char **ids = sx_arena_alloc(a, req->n_docs * sizeof(*ids));
    ProtobufCBinaryData *ops = sx_arena_alloc(a, req->n_docs * sizeof(*ops));
    for (size_t i = 0; i < req->n_docs; i++) {
        Shardex__Internal__V1__LogOp op = SHARDEX__INTERNAL__V1__LOG_OP__INIT;
        op.op_case = SHARDEX__INTERNAL__V1__LOG_OP__OP_PUT;
        op.put = req->docs[i];
        ids[i] = req->docs[i]->id;
        ops[i] = pack_op(a, &op);
    }
    st = route_ops(arg, call, ids, ops, req->n_docs, &resp->tokens, err);
    if (st == SX_OK)
        resp->n_tokens = req->n_docs;
    return st;
}

sx_status sx_router_delete(sx_rpc_call *call, const ProtobufCMessage *reqm, ProtobufCMessage *respm,
                           void *arg, sx_err *err)
{
    const Shardex__V1__DeleteRequest *req = (const void *)reqm;
    Shardex__V1__DeleteResponse *resp = (void *)respm;
    sx_status st = sx_validate_delete(req, err);
    if (st != SX_OK)
        return st;
    sx_arena *a = sx_rpc_call_arena(call);
    ProtobufCBinaryData *ops = sx_arena_alloc(a, req->n_ids * sizeof(*ops));
    for (size_t i = 0; i < req->n_ids; i++) {
        Shardex__Internal__V1__LogOp op = SHARDEX__INTERNAL__V1__LOG_OP__INIT;
        op.op_case = SHARDEX__INTERNAL__V1__LOG_OP__OP_DELETE;
        op.delete_ = req->ids[i];
        ops[i] = pack_op(a, &op);
    }
    st = route_ops(arg, call, (const char *const *)req->ids, ops, req->n_ids, &resp->tokens, err);
    if (st == SX_OK)
        resp->n_tokens = req->n_ids;
    return st;
}

sx_status sx_router_get(sx_rpc_call *call, const ProtobufCMessage *reqm, ProtobufCMessage *respm,
                        void *arg, sx_err *err)
{
    sx_worker_ctx *w = arg;
    const Shardex__V1__GetRequest *req = (const void *)reqm;
    sx_status st = sx_validate_id(req->id, err);
    if (st != SX_OK)
        return st;
    uint64_t deadline = sx_rpc_call_deadline_or_default(call);
    sx_member_view v;
    sx_member_get_view(w->member, &v);
    uint32_t P = v.map ? sx_partmap_partitions(v.map) : 0;
    uint64_t attempt = v.map ? sx_partmap_attempt_ms(v.map) : 0;
    sx_partmap_release(v.map);
    if (P == 0)
        return sx_err_set(err, SX_UNAVAILABLE, "this worker has not joined the cluster yet");
    uint32_t p = sx_partition_of(req->id, strlen(req->id), P);
    uint64_t after = 0;
    for (size_t i = 0; i < req->n_after; i++) {
        if (req->after[i]->partition >= P)
            return sx_err_set(err, SX_INVALID_ARGUMENT,
                              "after[%zu].partition: %u is not below %u partitions", i,
                              req->after[i]->partition, P);
        if (req->after[i]->partition == p && req->after[i]->offset > after)
            after = req->after[i]->offset;
    }
    Shardex__Internal__V1__ReadRequest rr = SHARDEX__INTERNAL__V1__READ_REQUEST__INIT;
    rr.partition = p;
    rr.id = req->id;
    rr.after_offset = after;
    sx_fanout_call c = {.req = &rr.base};
    st = sx_fanout_run(w->rpc, w->member, REPL_SVC, "Read", &c, 1, sx_fanout_aim_leaders, &p,
                       deadline, attempt, err);
    if (st != SX_OK)
        return st;
    memcpy(respm, c.resp, c.resp->descriptor->sizeof_message);
    sx_rpc_call_on_done(call, (void (*)(void *))sx_rpc_free, c.resp);
    return SX_OK;
}
