/* service.c: RPC handlers of the coordinator: unpack, call coord.c, fill the
 * response. Maps in responses are shared snapshots, released after the reply.
 * Every call passes one gate first (the front, below): only a coordinator
 * that surely leads answers. */
#include "service.h"

#include "clock.h"
#include "mem.h"

#include "shardex/internal/v1/coordinator.pb-c.h"
#include "shardex/v1/shardex.pb-c.h"
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
    resp->coordinator_epoch = sx_coord_epoch(c);
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
                           req->n_terms, sx_clock_now_ms());
    resp->lease_ms = sx_coord_lease_ms(c);
    resp->coordinator_epoch = sx_coord_epoch(c);
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
    resp->coordinator_epoch = sx_coord_epoch(c);
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
    resp->coordinator_epoch = sx_coord_epoch(arg);
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
    Shardex__Internal__V1__LeaveResponse *resp = (void *)respm;
    resp->coordinator_epoch = sx_coord_epoch(arg);
    sx_status st = sx_coord_leave(arg, req->worker_id, req->incarnation, &map, err);
    if (st == SX_OK)
        attach_map(call, map, &resp->map);
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
    sx_coord_control_status(arg, sx_rpc_call_arena(call), (void *)respm);
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

static sx_status on_drain_worker(sx_rpc_call *call, const ProtobufCMessage *reqm,
                                 ProtobufCMessage *respm, void *arg, sx_err *err)
{
    const Shardex__V1__DrainWorkerRequest *req = (const void *)reqm;
    Shardex__V1__DrainWorkerResponse *resp = (void *)respm;
    return sx_coord_drain(arg, req->worker_id, req->cancel, sx_clock_now_ms(),
                          sx_rpc_call_arena(call), &resp->worker, err);
}

static sx_status on_remove_worker(sx_rpc_call *call, const ProtobufCMessage *reqm,
                                  ProtobufCMessage *respm, void *arg, sx_err *err)
{
    const Shardex__V1__RemoveWorkerRequest *req = (const void *)reqm;
    Shardex__V1__RemoveWorkerResponse *resp = (void *)respm;
    return sx_coord_remove(arg, req->worker_id, req->force, sx_rpc_call_arena(call),
                           &resp->lost_partitions, &resp->n_lost_partitions, err);
}

static sx_status on_split_index(sx_rpc_call *call, const ProtobufCMessage *reqm,
                                ProtobufCMessage *respm, void *arg, sx_err *err)
{
    const Shardex__V1__SplitIndexRequest *req = (const void *)reqm;
    Shardex__V1__SplitIndexResponse *resp = (void *)respm;
    return sx_coord_split_index(arg, req->name, req->term_partition, req->at,
                                sx_rpc_call_arena(call), &resp->index, err);
}

static sx_status on_salt_index(sx_rpc_call *call, const ProtobufCMessage *reqm,
                               ProtobufCMessage *respm, void *arg, sx_err *err)
{
    const Shardex__V1__SaltIndexRequest *req = (const void *)reqm;
    Shardex__V1__SaltIndexResponse *resp = (void *)respm;
    return sx_coord_salt_index(arg, req->name, req->value, req->ways, sx_rpc_call_arena(call),
                               &resp->index, err);
}

static const sx_rpc_method shardex_methods[] = {
    {"ClusterStatus", on_cluster_status, SX_RPC_BLOCKING}, /* asks each etcd member */
    {"CreateIndex", on_create_index, SX_RPC_BLOCKING},
    {"DropIndex", on_drop_index, SX_RPC_BLOCKING},
    {"ListIndexes", on_list_indexes, SX_RPC_INLINE},
    {"DrainWorker", on_drain_worker, SX_RPC_BLOCKING},   /* fsync */
    {"RemoveWorker", on_remove_worker, SX_RPC_BLOCKING}, /* fsync */
    {"SplitIndex", on_split_index, SX_RPC_BLOCKING},     /* fsync */
    {"SaltIndex", on_salt_index, SX_RPC_BLOCKING},       /* fsync */
};

/* ----------------------------------------------------------------- front -- */

#define NMETHODS(t) (sizeof(t) / sizeof((t)[0]))

struct sx_coord_front {
    _Atomic(sx_meta *) meta;   /* c's, set with it: NULL for the embedded store */
    _Atomic(sx_coord *) coord; /* NULL while following */
    atomic_int active;         /* calls between the gate and their answer (front_follow waits) */
    pthread_mutex_t mu;
    char leader[300]; /* who leads, as last seen while following ("" unknown) */
    /* The tables served: every method's handler is gate(), which finds the
     * real one by the call's method name. */
    sx_rpc_method gated_coordinator[NMETHODS(coordinator_methods)];
    sx_rpc_method gated_shardex[NMETHODS(shardex_methods)];
};

/* The coordinator that answers now, or NULL with err saying who leads. A
 * leader on etcd answers only while its lease is surely alive: after that a
 * follower may lead, and an answer (a renewed worker lease, a map) from a
 * deposed leader would be one too many. */
static sx_coord *leading(sx_coord_front *f, sx_err *err)
{
    sx_coord *c = atomic_load(&f->coord);
    sx_meta *meta = atomic_load(&f->meta);
    if (c && (!meta || sx_meta_leading(meta, sx_clock_now_ms())))
        return c;
    pthread_mutex_lock(&f->mu);
    char leader[sizeof(f->leader)];
    snprintf(leader, sizeof(leader), "%s", c ? "" : f->leader);
    pthread_mutex_unlock(&f->mu);
    sx_err_not_leader(err, leader);
    return NULL;
}

/* leading(), counted as in use until sx_coord_front_exit: counted before c
 * is read, so that a demotion waits for this use to end. */
static sx_coord *enter(sx_coord_front *f, sx_err *err)
{
    atomic_fetch_add(&f->active, 1);
    return leading(f, err);
}

static const sx_rpc_method *real_method(const char *path)
{
    const char *name = strrchr(path, '/');
    name = name ? name + 1 : path;
    for (size_t i = 0; i < NMETHODS(coordinator_methods); i++)
        if (strcmp(coordinator_methods[i].name, name) == 0)
            return &coordinator_methods[i];
    for (size_t i = 0; i < NMETHODS(shardex_methods); i++)
        if (strcmp(shardex_methods[i].name, name) == 0)
            return &shardex_methods[i];
    return NULL;
}

static sx_status gate(sx_rpc_call *call, const ProtobufCMessage *req, ProtobufCMessage *resp,
                      void *arg, sx_err *err)
{
    sx_coord_front *f = arg;
    const sx_rpc_method *m = real_method(sx_rpc_call_method(call));
    if (!m)
        return sx_err_set(err, SX_UNIMPLEMENTED, "%s", sx_rpc_call_method(call));
    sx_coord *c = enter(f, err);
    sx_status st = c ? m->fn(call, req, resp, c, err) : err->code;
    sx_coord_front_exit(f);
    return st;
}

sx_coord *sx_coord_front_enter(sx_coord_front *f)
{
    sx_err err = {0};
    return enter(f, &err);
}

void sx_coord_front_exit(sx_coord_front *f)
{
    atomic_fetch_sub(&f->active, 1);
}

sx_coord_front *sx_coord_front_create(void)
{
    sx_coord_front *f = sx_calloc(1, sizeof(*f));
    atomic_init(&f->meta, NULL);
    atomic_init(&f->coord, NULL);
    atomic_init(&f->active, 0);
    pthread_mutex_init(&f->mu, NULL);
    for (size_t i = 0; i < NMETHODS(coordinator_methods); i++)
        f->gated_coordinator[i] =
            (sx_rpc_method){coordinator_methods[i].name, gate, coordinator_methods[i].exec};
    for (size_t i = 0; i < NMETHODS(shardex_methods); i++)
        f->gated_shardex[i] =
            (sx_rpc_method){shardex_methods[i].name, gate, shardex_methods[i].exec};
    return f;
}

void sx_coord_front_follow(sx_coord_front *f, const char *leader)
{
    pthread_mutex_lock(&f->mu);
    snprintf(f->leader, sizeof(f->leader), "%s", leader ? leader : "");
    pthread_mutex_unlock(&f->mu);
    if (!atomic_load(&f->coord))
        return;
    /* A leader steps down: no call reaches c from now on, and those that
     * did are answered before c may be closed. */
    atomic_store(&f->coord, NULL);
    while (atomic_load(&f->active) > 0)
        nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
    atomic_store(&f->meta, NULL);
}

void sx_coord_front_lead(sx_coord_front *f, sx_coord *c, sx_meta *meta)
{
    atomic_store(&f->meta, meta); /* first: c is never seen without it */
    atomic_store(&f->coord, c);
}

bool sx_coord_front_leading(sx_coord_front *f)
{
    sx_err err = {0};
    return leading(f, &err) != NULL;
}

void sx_coord_front_destroy(sx_coord_front *f)
{
    if (!f)
        return;
    pthread_mutex_destroy(&f->mu);
    free(f);
}

sx_status sx_coord_service_add(sx_rpc_server *srv, sx_coord_front *f, sx_err *err)
{
    sx_status st =
        sx_rpc_server_add_service(srv, &shardex__internal__v1__coordinator__descriptor,
                                  f->gated_coordinator, NMETHODS(f->gated_coordinator), f, err);
    if (st == SX_OK)
        st = sx_rpc_server_add_service(srv, &shardex__v1__shardex__descriptor, f->gated_shardex,
                                       NMETHODS(f->gated_shardex), f, err);
    return st;
}
