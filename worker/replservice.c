/* replservice.c: see replservice.h. */
#include "replservice.h"

#include "clock.h"
#include "sx_limits.h"

#include <string.h>

/* Replication.Write: answered when committed and applied, holding no thread. */
typedef struct write_ctx {
    sx_rpc_call *call;
    Shardex__Internal__V1__WriteResponse *resp;
    sx_histogram *lat; /* shardex_lead_write_seconds (NULL: metrics off) */
    uint64_t start_ns;
} write_ctx;

static void write_done(void *arg, sx_status st, const sx_err *err, const uint64_t *offsets,
                       size_t n)
{
    write_ctx *wc = arg;
    if (st == SX_OK) {
        wc->resp->offsets = sx_rpc_call_alloc(wc->call, (n + 1) * sizeof(uint64_t));
        memcpy(wc->resp->offsets, offsets, n * sizeof(uint64_t));
        wc->resp->n_offsets = n;
        sx_histogram_observe(wc->lat, (double)(sx_clock_now_ns() - wc->start_ns) / 1e9);
    }
    sx_rpc_call_finish(wc->call, st, err);
}

sx_status sx_replservice_write(sx_rpc_call *call, const ProtobufCMessage *reqm,
                               ProtobufCMessage *respm, void *arg, sx_err *err)
{
    (void)err;
    sx_worker_ctx *w = arg;
    const Shardex__Internal__V1__WriteRequest *req = (const void *)reqm;
    write_ctx *wc = sx_rpc_call_alloc(call, sizeof(*wc));
    wc->call = call;
    wc->resp = (void *)respm;
    wc->lat = w->m.lead_write;
    wc->start_ns = sx_clock_now_ns();
    sx_rpc_call_defer(call);
    uint64_t deadline = sx_rpc_call_deadline_or_default(call);
    sx_replica_write(w->replicas, req->partition, req->ops, req->n_ops, deadline, write_done, wc);
    return SX_OK;
}

sx_status sx_replservice_append(sx_rpc_call *call, const ProtobufCMessage *reqm,
                                ProtobufCMessage *respm, void *arg, sx_err *err)
{
    sx_worker_ctx *w = arg;
    return sx_replica_append(w->replicas, (const void *)reqm, (void *)respm,
                             sx_rpc_call_arena(call), err);
}

sx_status sx_replservice_read(sx_rpc_call *call, const ProtobufCMessage *reqm,
                              ProtobufCMessage *respm, void *arg, sx_err *err)
{
    sx_worker_ctx *w = arg;
    const Shardex__Internal__V1__ReadRequest *req = (const void *)reqm;
    uint64_t deadline = sx_rpc_call_deadline_or_default(call);
    return sx_replica_read(w->replicas, req->partition, req->id, req->after_offset, deadline,
                           sx_rpc_call_arena(call), (void *)respm, err);
}

sx_status sx_replservice_read_many(sx_rpc_call *call, const ProtobufCMessage *reqm,
                                   ProtobufCMessage *respm, void *arg, sx_err *err)
{
    sx_worker_ctx *w = arg;
    const Shardex__Internal__V1__ReadManyRequest *req = (const void *)reqm;
    Shardex__Internal__V1__ReadManyResponse *resp = (void *)respm;
    if (req->n_ids > SX_REQUEST_DOCS_MAX)
        return sx_err_set(err, SX_INVALID_ARGUMENT, "ids: %zu given; at most %d per call",
                          req->n_ids, SX_REQUEST_DOCS_MAX);
    sx_arena *arena = sx_rpc_call_arena(call);
    resp->docs = sx_arena_alloc(arena, (req->n_ids + 1) * sizeof(*resp->docs));
    sx_status st =
        sx_replica_read_many(w->replicas, req->partition, req->ids, req->n_ids, req->after_offset,
                             sx_rpc_call_deadline_or_default(call), arena, resp->docs, err);
    if (st == SX_OK)
        resp->n_docs = req->n_ids;
    return st;
}

sx_status sx_replservice_snapshot(sx_rpc_call *call, const ProtobufCMessage *reqm,
                                  ProtobufCMessage *respm, void *arg, sx_err *err)
{
    sx_worker_ctx *w = arg;
    return sx_replica_snapshot(w->replicas, (const void *)reqm, (void *)respm,
                               sx_rpc_call_arena(call), err);
}
