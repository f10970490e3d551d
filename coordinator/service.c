/* service.c: RPC handlers of the coordinator: unpack, call coord.c, fill the
 * response. Maps in responses are shared snapshots, released after the reply. */
#include "service.h"

#include "clock.h"
#include "shardex/internal/v1/coordinator.pb-c.h"
#include "shardex/v1/shardex.pb-c.h"

static void attach_map(sx_rpc_call *call, sx_coord_map *map,
                       Shardex__Internal__V1__ClusterMap **slot)
{
    if (!map)
        return;
    *slot = (Shardex__Internal__V1__ClusterMap *)map->msg; /* read-only until released */
    sx_rpc_call_on_done(call, sx_coord_map_release, map);
}

static sx_status on_register(sx_rpc_call *call, const ProtobufCMessage *reqm,
                             ProtobufCMessage *respm, void *arg, sx_err *err)
{
    sx_coord *c = arg;
    const Shardex__Internal__V1__RegisterRequest *req = (const void *)reqm;
    Shardex__Internal__V1__RegisterResponse *resp = (void *)respm;
    sx_coord_map *map = NULL;
    sx_status st = sx_coord_register_ex(
        c, req->worker_id, req->address, req->nonce, req->lost_partitions, req->n_lost_partitions,
        sx_clock_now_ms(), &resp->index, &resp->incarnation, &map, err);
    if (st != SX_OK)
        return st;
    resp->lease_ms = map->msg->lease_ms;
    attach_map(call, map, &resp->map);
    return SX_OK;
}

static sx_status on_heartbeat(sx_rpc_call *call, const ProtobufCMessage *reqm,
                              ProtobufCMessage *respm, void *arg, sx_err *err)
{
    sx_coord *c = arg;
    const Shardex__Internal__V1__HeartbeatRequest *req = (const void *)reqm;
    Shardex__Internal__V1__HeartbeatResponse *resp = (void *)respm;
    sx_coord_map *map = NULL;
    sx_coord_heard heard = {.seq = req->seq, .unanswered_ms = req->unanswered_ms};
    sx_status st =
        sx_coord_heartbeat_heard(c, req->worker_id, req->incarnation, &heard, req->map_version,
                                 req->replicas, req->n_replicas, sx_clock_now_ms(), &map, err);
    if (st != SX_OK)
        return st;
    sx_coord_index_reports(c, req->worker_id, req->indexes, req->n_indexes, req->terms,
                           req->n_terms);
    resp->lease_ms = sx_coord_lease_ms(c);
    attach_map(call, map, &resp->map);
    return SX_OK;
}

static sx_status on_change_isr(sx_rpc_call *call, const ProtobufCMessage *reqm,
                               ProtobufCMessage *respm, void *arg, sx_err *err)
{
    sx_coord *c = arg;
    const Shardex__Internal__V1__ChangeIsrRequest *req = (const void *)reqm;
    Shardex__Internal__V1__ChangeIsrResponse *resp = (void *)respm;
    sx_coord_map *map = NULL;
    sx_coord_isr_change ch = {.partition = req->partition,
                              .epoch = req->epoch,
                              .isr_version = req->isr_version,
                              .isr = req->isr,
                              .nisr = req->n_isr,
                              .incarnations = req->incarnations,
                              .nincarnations = req->n_incarnations};
    sx_status st = sx_coord_change_isr(c, req->worker_id, &ch, &map, err);
    if (st != SX_OK)
        return st;
    resp->map_version = map->msg->version;
    resp->partition = map->msg->partitions[req->partition];
    sx_rpc_call_on_done(call, sx_coord_map_release, map);
    return SX_OK;
}

static sx_status on_report_backfill(sx_rpc_call *call, const ProtobufCMessage *reqm,
                                    ProtobufCMessage *respm, void *arg, sx_err *err)
{
    (void)call;
    const Shardex__Internal__V1__ReportBackfillRequest *req = (const void *)reqm;
    Shardex__Internal__V1__ReportBackfillResponse *resp = (void *)respm;
    return sx_coord_report_backfill(arg, req->worker_id, req->index_id, req->partition, req->epoch,
                                    &resp->state, err);
}

static sx_status on_get_map(sx_rpc_call *call, const ProtobufCMessage *reqm,
                            ProtobufCMessage *respm, void *arg, sx_err *err)
{
    (void)reqm;
    (void)err;
    sx_coord_map *map = sx_coord_map_acquire(arg);
    /* The response is a ClusterMap itself: copy the top-level struct, share the rest. */
    *(Shardex__Internal__V1__ClusterMap *)respm = *map->msg;
    sx_rpc_call_on_done(call, sx_coord_map_release, map);
    return SX_OK;
}

static sx_status on_leave(sx_rpc_call *call, const ProtobufCMessage *reqm, ProtobufCMessage *respm,
                          void *arg, sx_err *err)
{
    const Shardex__Internal__V1__LeaveRequest *req = (const void *)reqm;
    sx_coord_map *map = NULL;
    sx_status st = sx_coord_leave(arg, req->worker_id, req->incarnation, &map, err);
    if (st == SX_OK)
        attach_map(call, map, &((Shardex__Internal__V1__LeaveResponse *)respm)->map);
    return st;
}

static const sx_rpc_method coordinator_methods[] = {
    {"RegisterWorker", on_register, SX_RPC_BLOCKING}, /* fsync */
    {"Heartbeat", on_heartbeat, SX_RPC_INLINE},
    {"ChangeIsr", on_change_isr, SX_RPC_BLOCKING},
    {"ReportBackfill", on_report_backfill, SX_RPC_BLOCKING},
    {"GetMap", on_get_map, SX_RPC_INLINE},
    {"LeaveWorker", on_leave, SX_RPC_BLOCKING}, /* fsync */
};

static sx_status on_cluster_status(sx_rpc_call *call, const ProtobufCMessage *reqm,
                                   ProtobufCMessage *respm, void *arg, sx_err *err)
{
    (void)reqm;
    (void)err;
    sx_coord_status(arg, sx_clock_now_ms(), sx_rpc_call_arena(call), (void *)respm);
    return SX_OK;
}

static sx_status on_create_index(sx_rpc_call *call, const ProtobufCMessage *reqm,
                                 ProtobufCMessage *respm, void *arg, sx_err *err)
{
    const Shardex__V1__CreateIndexRequest *req = (const void *)reqm;
    Shardex__V1__CreateIndexResponse *resp = (void *)respm;
    return sx_coord_create_index(arg, req->spec, sx_rpc_call_arena(call), &resp->index, err);
}

static sx_status on_drop_index(sx_rpc_call *call, const ProtobufCMessage *reqm,
                               ProtobufCMessage *respm, void *arg, sx_err *err)
{
    (void)call;
    (void)respm;
    const Shardex__V1__DropIndexRequest *req = (const void *)reqm;
    return sx_coord_drop_index(arg, req->name, err);
}

static sx_status on_list_indexes(sx_rpc_call *call, const ProtobufCMessage *reqm,
                                 ProtobufCMessage *respm, void *arg, sx_err *err)
{
    (void)reqm;
    (void)err;
    sx_coord_list_indexes(arg, sx_rpc_call_arena(call), (void *)respm);
    return SX_OK;
}

static const sx_rpc_method shardex_methods[] = {
    {"ClusterStatus", on_cluster_status, SX_RPC_INLINE},
    {"CreateIndex", on_create_index, SX_RPC_BLOCKING},
    {"DropIndex", on_drop_index, SX_RPC_BLOCKING},
    {"ListIndexes", on_list_indexes, SX_RPC_INLINE},
};

sx_status sx_coord_service_add(sx_rpc_server *srv, sx_coord *c, sx_err *err)
{
    sx_status st = sx_rpc_server_add_service(
        srv, &shardex__internal__v1__coordinator__descriptor, coordinator_methods,
        sizeof(coordinator_methods) / sizeof(coordinator_methods[0]), c, err);
    if (st == SX_OK)
        st =
            sx_rpc_server_add_service(srv, &shardex__v1__shardex__descriptor, shardex_methods,
                                      sizeof(shardex_methods) / sizeof(shardex_methods[0]), c, err);
    return st;
}
