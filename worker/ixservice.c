/* ixservice.c: the Index service between workers, see ixservice.h. One file
 * for the four methods rather than one beside each store: Digest serves both
 * kinds of partition, and the table of the service reads best in one place. */
#include "ixservice.h"

#include "pindex.h"
#include "replica.h"
#include "tstore.h"

sx_status sx_ixservice_ship(sx_rpc_call *call, const ProtobufCMessage *reqm,
                            ProtobufCMessage *respm, void *arg, sx_err *err)
{
    (void)call;
    sx_worker_ctx *w = arg;
    return sx_tstore_ship(w->terms, (const void *)reqm, (void *)respm, err);
}

sx_status sx_ixservice_scan_term(sx_rpc_call *call, const ProtobufCMessage *reqm,
                                 ProtobufCMessage *respm, void *arg, sx_err *err)
{
    sx_worker_ctx *w = arg;
    return sx_tstore_scan(w->terms, (const void *)reqm, sx_rpc_call_deadline_or_default(call),
                          sx_rpc_call_arena(call), (void *)respm, err);
}

/* The highest `after` offset of the scanned partition (0: none). */
static uint64_t after_of(const Shardex__Internal__V1__ScanRequest *req)
{
    uint64_t after = 0;
    for (size_t i = 0; i < req->n_after; i++)
        if (req->after[i]->partition == req->partition && req->after[i]->offset > after)
            after = req->after[i]->offset;
    return after;
}

/* An index not (yet) started on this replica: the querying worker retries. */
static sx_status scan_index(const sx_replica_view *v, const Shardex__Internal__V1__ScanRequest *req,
                            sx_arena *arena, Shardex__Internal__V1__ScanResponse *resp, sx_err *err)
{
    sx_status st = sx_pindex_scan(v->ix, req, arena, resp, err);
    if (st == SX_NOT_FOUND) {
        /* The router found the index in its map: this partition has not
         * applied its marker yet (or the map is older than a drop). Either
         * passes: the router retries until its deadline. */
        sx_err why = *err;
        st = sx_err_set(err, SX_UNAVAILABLE, "%s", why.msg);
    }
    return st;
}

/* A hedged scan on a replica that does not lead (sx_replica_wait_follower). */
static sx_status scan_follower(sx_rpc_call *call, sx_worker_ctx *w,
                               const Shardex__Internal__V1__ScanRequest *req,
                               Shardex__Internal__V1__ScanResponse *resp, sx_err *err)
{
    uint64_t stale = 0;
    sx_status st = sx_replica_wait_follower(w->replicas, req->partition, after_of(req),
                                            req->follower_max_staleness_ms,
                                            sx_rpc_call_deadline_or_default(call), &stale, err);
    sx_replica_view v;
    if (st == SX_OK && !sx_replica_get_view(w->replicas, req->partition, &v))
        st = sx_err_set(err, SX_ABORTED, "partition %u: not hosted on this worker", req->partition);
    if (st != SX_OK)
        return st;
    /* The snapshot is taken after the bound was: it holds at least as much. */
    st = scan_index(&v, req, sx_rpc_call_arena(call), resp, err);
    sx_replica_view_release(&v);
    resp->staleness_ms = stale;
    resp->follower = true;
    return st;
}

sx_status sx_ixservice_scan_local(sx_rpc_call *call, const ProtobufCMessage *reqm,
                                  ProtobufCMessage *respm, void *arg, sx_err *err)
{
    sx_worker_ctx *w = arg;
    const Shardex__Internal__V1__ScanRequest *req = (const void *)reqm;
    Shardex__Internal__V1__ScanResponse *resp = (void *)respm;
    sx_replica_view v;
    if (req->follower_max_staleness_ms && sx_replica_get_view(w->replicas, req->partition, &v)) {
        bool leading = v.leading;
        sx_replica_view_release(&v);
        if (!leading)
            return scan_follower(call, w, req, resp, err);
    }
    uint64_t after = after_of(req);
    sx_status st = sx_replica_wait_applied(w->replicas, req->partition, after,
                                           sx_rpc_call_deadline_or_default(call), err);
    if (st != SX_OK)
        return st;
    if (!sx_replica_get_view(w->replicas, req->partition, &v) || !v.leading) {
        sx_replica_view_release(&v);
        return sx_err_set(err, SX_ABORTED, "partition %u: this worker does not lead it now",
                          req->partition);
    }
    st = scan_index(&v, req, sx_rpc_call_arena(call), resp, err);
    sx_replica_view_release(&v);
    resp->staleness_ms = v.stale_ms;
    return st;
}

sx_status sx_ixservice_digest(sx_rpc_call *call, const ProtobufCMessage *reqm,
                              ProtobufCMessage *respm, void *arg, sx_err *err)
{
    sx_worker_ctx *w = arg;
    const Shardex__Internal__V1__DigestRequest *req = (const void *)reqm;
    if (req->term)
        return sx_tstore_digest(w->terms, req, sx_rpc_call_arena(call), (void *)respm, err);
    sx_replica_view v;
    if (!sx_replica_get_view(w->replicas, req->partition, &v))
        return sx_err_set(err, SX_NOT_FOUND, "partition %u is not hosted on this worker",
                          req->partition);
    sx_status st = sx_pindex_digest(v.ix, req, sx_rpc_call_arena(call), (void *)respm, err);
    sx_replica_view_release(&v);
    return st;
}
