/* router.c: the client contract's Put, Delete and Get on any worker.
 *
 * A write is validated whole before anything is sent, grouped by log
 * partition (p = xxh64(id) mod P) and each group sent to its partition's
 * leader as one Replication.Write, all groups at once, through one fan-out
 * with the writes policy (fanout.h): a group refused because the leadership
 * moved (ABORTED), or whose leader cannot be reached, is retried against the
 * leader of the next map until the call's deadline; a group refused for lack
 * of in-sync replicas is retried briefly, then fails with UNAVAILABLE. A
 * group whose leader is this worker goes straight to the local replica
 * (write_here_cb), not by RPC to ourselves. Tokens come back in request order.
 * When some groups fail the call fails with the first failure's status and
 * names the ids that may not have been written; retrying the same documents
 * is safe (a document's content is the same, its version rises).
 *
 * Get is one fan-out call with the reads policy to the leader's
 * Replication.Read.
 */
#include "router.h"

#include "clock.h"
#include "fanout.h"
#include "hash.h"
#include "log.h"
#include "validate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REPL_SVC (&shardex__internal__v1__replication__descriptor)

/* A write acknowledged: its latency, in seconds (service.h). */
static void observe_since(sx_histogram *h, uint64_t start_ns)
{
    sx_histogram_observe(h, (double)(sx_clock_now_ns() - start_ns) / 1e9);
}

/* ------------------------------------------------- writes led here -- */

/* A write to a partition this worker leads, handed straight to its replica
 * (no RPC to ourselves). The ops are copied in: the replica borrows them until
 * done runs, which may be after the fan-out gave the attempt up at its
 * deadline and the client's call, whose arena held them, ended. */
typedef struct here_write {
    sx_rpc_done_cb done;
    void *done_arg;
    ProtobufCBinaryData ops[]; /* then the ops' bytes */
} here_write;

/* Answers as Replication.Write would: a WriteResponse of the offsets. */
static void here_write_done_cb(void *arg, sx_status st, const sx_err *err, const uint64_t *offsets,
                               size_t n)
{
    here_write *hw = arg;
    ProtobufCMessage *resp = NULL;
    if (st == SX_OK) {
        Shardex__Internal__V1__WriteResponse wr = SHARDEX__INTERNAL__V1__WRITE_RESPONSE__INIT;
        wr.offsets = (uint64_t *)offsets;
        wr.n_offsets = n;
        resp = sx_rpc_copy(wr.base.descriptor, &wr.base); /* what sx_rpc_free takes */
    }
    hw->done(st, err, resp, hw->done_arg);
    free(hw);
}

/* The fan-out's local executor for Replication.Write (sx_fanout_local_cb). */
static void write_here_cb(void *arg, const ProtobufCMessage *reqm, uint64_t deadline_ms,
                          sx_rpc_done_cb done, void *done_arg)
{
    sx_worker_ctx *w = arg;
    const Shardex__Internal__V1__WriteRequest *req = (const void *)reqm;
    size_t head = sizeof(here_write) + req->n_ops * sizeof(ProtobufCBinaryData), bytes = 0;
    for (size_t i = 0; i < req->n_ops; i++)
        bytes += req->ops[i].len;
    here_write *hw = sx_malloc(head + bytes);
    hw->done = done;
    hw->done_arg = done_arg;
    uint8_t *data = (uint8_t *)hw + head;
    for (size_t i = 0; i < req->n_ops; i++) {
        hw->ops[i] = (ProtobufCBinaryData){req->ops[i].len, data};
        if (req->ops[i].len)
            memcpy(data, req->ops[i].data, req->ops[i].len);
        data += req->ops[i].len;
    }
    sx_replica_write(w->replicas, req->partition, hw->ops, req->n_ops, deadline_ms,
                     here_write_done_cb, hw);
}

/* ------------------------------------------------------------ routing -- */

/* A write split by partition: one Replication.Write per partition that has
 * ops, in partition order, each op's position in the request kept. */
typedef struct plan {
    size_t ngroups;
    uint32_t *parts;                           /* [ngroups]: the aim's argument */
    Shardex__Internal__V1__WriteRequest *reqs; /* [ngroups] */
    size_t **pos;                              /* [ngroups][n ops]: positions in the request */
    sx_fanout_call *calls;                     /* [ngroups] */
} plan;

/* Groups ops by partition, keeping request order inside each group. */
static void plan_groups(sx_arena *a, const char *const *ids, ProtobufCBinaryData *ops, size_t n,
                        uint32_t P, plan *pl)
{
    uint32_t *part_of = sx_arena_alloc(a, (n + 1) * sizeof(*part_of));
    size_t *count = sx_arena_alloc(a, P * sizeof(*count));
    size_t *group_of = sx_arena_alloc(a, P * sizeof(*group_of));
    for (size_t i = 0; i < n; i++) {
        part_of[i] = sx_partition_of(ids[i], strlen(ids[i]), P);
        count[part_of[i]]++;
    }
    pl->ngroups = 0;
    for (uint32_t p = 0; p < P; p++)
        if (count[p] > 0)
            group_of[p] = pl->ngroups++;
    pl->parts = sx_arena_alloc(a, pl->ngroups * sizeof(*pl->parts));
    pl->reqs = sx_arena_alloc(a, pl->ngroups * sizeof(*pl->reqs));
    pl->pos = sx_arena_alloc(a, pl->ngroups * sizeof(*pl->pos));
    pl->calls = sx_arena_alloc(a, pl->ngroups * sizeof(*pl->calls));
    for (uint32_t p = 0; p < P; p++) {
        if (count[p] == 0)
            continue;
        size_t g = group_of[p];
        pl->parts[g] = p;
        shardex__internal__v1__write_request__init(&pl->reqs[g]);
        pl->reqs[g].partition = p;
        pl->reqs[g].ops = sx_arena_alloc(a, count[p] * sizeof(ProtobufCBinaryData));
        pl->pos[g] = sx_arena_alloc(a, count[p] * sizeof(size_t));
        pl->calls[g].req = &pl->reqs[g].base;
    }
    for (size_t i = 0; i < n; i++) {
        size_t g = group_of[part_of[i]];
        Shardex__Internal__V1__WriteRequest *r = &pl->reqs[g];
        pl->pos[g][r->n_ops] = i;
        r->ops[r->n_ops++] = ops[i];
    }
}

/* Fills tokens[pos] for group g's committed ops; false (with the call's
 * status and error set) when the leader's answer does not fit the request. */
static bool take_tokens(sx_arena *a, plan *pl, size_t g, Shardex__V1__WriteToken **tokens)
{
    sx_fanout_call *c = &pl->calls[g];
    const Shardex__Internal__V1__WriteResponse *wr = (const void *)c->resp;
    size_t n = pl->reqs[g].n_ops;
    uint32_t p = pl->parts[g];
    if (wr->n_offsets != n) {
        c->st = sx_err_set(&c->err, SX_INTERNAL,
                           "partition %u: leader returned %zu offsets for %zu operations", p,
                           wr->n_offsets, n);
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        Shardex__V1__WriteToken *t = sx_arena_alloc(a, sizeof(*t));
        shardex__v1__write_token__init(t);
        t->partition = p;
        t->offset = wr->offsets[i];
        tokens[pl->pos[g][i]] = t;
    }
    return true;
}

/* The error of a write that did not fully succeed: the first failed group's
 * (in partition order), and the ids that may not have been written. */
static sx_status lost_error(const sx_err *first, const char *const *ids, size_t n,
                            Shardex__V1__WriteToken **tokens, size_t lost, sx_err *err)
{
    char list[160] = "";
    size_t used = 0, shown = 0;
    for (size_t i = 0; i < n && used < sizeof(list) - 40; i++) {
        if (tokens[i])
            continue;
        int k =
            snprintf(list + used, sizeof(list) - used, "%s\"%.24s\"", shown ? ", " : "", ids[i]);
        used += (size_t)k;
        shown++;
    }
    return sx_err_set(err, first->code, "%s; %zu of %zu documents may not have been written: %s%s",
                      first->msg, lost, n, list, shown < lost ? ", ..." : "");
}

/* Sends each partition's ops to its leader (through the fan-out, with the
 * writes policy; straight to the replica when this worker leads) until all
 * are committed, fail for good or the deadline passes. ids[i] names op i for
 * error messages. Tokens come back in request order. */
static sx_status route_ops(sx_worker_ctx *w, sx_rpc_call *call, const char *const *ids,
                           ProtobufCBinaryData *ops, size_t n,
                           Shardex__V1__WriteToken ***tokens_out, sx_err *err)
{
    sx_arena *a = sx_rpc_call_arena(call);
    sx_membership_view v;
    sx_membership_get_view(w->member, &v);
    uint32_t P = v.map ? sx_partmap_partitions(v.map) : 0;
    sx_partmap_release(v.map);
    if (P == 0)
        return sx_err_set(err, SX_UNAVAILABLE, "this worker has not joined the cluster yet");
    plan pl;
    plan_groups(a, ids, ops, n, P, &pl);
    sx_fanout fo = {.rpc = w->rpc,
                    .map = sx_fanout_member_map_cb,
                    .map_arg = w->member,
                    .stale = sx_fanout_member_stale_cb,
                    .svc = REPL_SVC,
                    .method = "Write",
                    .aim = sx_fanout_aim_leaders,
                    .aim_arg = pl.parts,
                    .local = write_here_cb,
                    .local_arg = w,
                    .policy = &sx_fanout_writes};
    sx_fanout_exec(&fo, pl.calls, pl.ngroups, sx_rpc_call_deadline_or_default(call), NULL);

    Shardex__V1__WriteToken **tokens = sx_arena_alloc(a, (n + 1) * sizeof(*tokens));
    const sx_err *first = NULL;
    size_t lost = 0;
    for (size_t g = 0; g < pl.ngroups; g++) {
        sx_fanout_call *c = &pl.calls[g];
        if (c->st == SX_OK && take_tokens(a, &pl, g, tokens))
            continue;
        first = first ? first : &c->err;
        lost += pl.reqs[g].n_ops;
    }
    sx_fanout_free(pl.calls, pl.ngroups);
    if (!first) {
        *tokens_out = tokens;
        return SX_OK;
    }
    return lost_error(first, ids, n, tokens, lost, err);
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
    uint64_t start_ns = sx_clock_now_ns();
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
    if (st == SX_OK) {
        resp->n_tokens = req->n_docs;
        observe_since(((sx_worker_ctx *)arg)->m.put_ack, start_ns);
    }
    return st;
}

sx_status sx_router_delete(sx_rpc_call *call, const ProtobufCMessage *reqm, ProtobufCMessage *respm,
                           void *arg, sx_err *err)
{
    const Shardex__V1__DeleteRequest *req = (const void *)reqm;
    Shardex__V1__DeleteResponse *resp = (void *)respm;
    uint64_t start_ns = sx_clock_now_ns();
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
    if (st == SX_OK) {
        resp->n_tokens = req->n_ids;
        observe_since(((sx_worker_ctx *)arg)->m.delete_ack, start_ns);
    }
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
    sx_membership_view v;
    sx_membership_get_view(w->member, &v);
    uint32_t P = v.map ? sx_partmap_partitions(v.map) : 0;
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
    sx_fanout fo = {.rpc = w->rpc,
                    .here = w->srv,
                    .map = sx_fanout_member_map_cb,
                    .map_arg = w->member,
                    .stale = sx_fanout_member_stale_cb,
                    .svc = REPL_SVC,
                    .method = "Read",
                    .aim = sx_fanout_aim_leaders,
                    .aim_arg = &p,
                    .policy = &sx_fanout_reads};
    st = sx_fanout_exec(&fo, &c, 1, sx_rpc_call_deadline_or_default(call), err);
    if (st != SX_OK)
        return st;
    memcpy(respm, c.resp, c.resp->descriptor->sizeof_message);
    sx_rpc_call_on_done(call, (void (*)(void *))sx_rpc_free, c.resp);
    return SX_OK;
}
