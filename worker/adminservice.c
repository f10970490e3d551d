/* adminservice.c: see adminservice.h. WorkerAdmin answers are built here
 * from the plain data the modules return (replica.h, membership.h). */
#include "adminservice.h"

#include "clock.h"
#include "shardex/internal/v1/worker.pb-c.h"
#include "shardex/v1/shardex.pb-c.h"

#include <string.h>

/* Longest a forwarded call may take. */
#define FORWARD_TIMEOUT_MS 10000

/* Every hosted replica's state, as WorkerAdmin reports it. */
static size_t replica_states(sx_rpc_call *call, sx_replica_set *replicas,
                             Shardex__Internal__V1__ReplicaState ***out)
{
    sx_replica_state *sts = NULL;
    size_t cap = 0, n;
    while ((n = sx_replica_states(replicas, sts, cap)) > cap) {
        cap = n + 8;
        sts = sx_rpc_call_alloc(call, cap * sizeof(*sts));
    }
    *out = sx_rpc_call_alloc(call, (n + 1) * sizeof(**out));
    for (size_t i = 0; i < n; i++) {
        Shardex__Internal__V1__ReplicaState *st = sx_rpc_call_alloc(call, sizeof(*st));
        shardex__internal__v1__replica_state__init(st);
        st->partition = sts[i].partition;
        st->role = (char *)sx_repcore_role_name(sts[i].role);
        st->epoch = sts[i].epoch;
        st->log_end_offset = sts[i].log_end_offset;
        st->commit_offset = sts[i].commit_offset;
        st->applied_offset = sts[i].applied_offset;
        st->fenced = sts[i].fenced;
        st->appends = sts[i].appends;
        st->appended_entries = sts[i].appended_entries;
        st->log_start_offset = sts[i].log_start_offset;
        st->trimmed_entries = sts[i].trimmed_entries;
        (*out)[i] = st;
    }
    return n;
}

sx_status sx_adminservice_status(sx_rpc_call *call, const ProtobufCMessage *reqm,
                                 ProtobufCMessage *respm, void *arg, sx_err *err)
{
    (void)reqm;
    (void)err;
    sx_worker_ctx *w = arg;
    Shardex__Internal__V1__WorkerStatusResponse *resp = (void *)respm;
    sx_membership_view v;
    sx_membership_get_view(w->member, &v);
    resp->worker_id = (char *)w->worker_id;
    resp->index = v.index;
    resp->incarnation = v.incarnation;
    resp->lease_valid = v.lease_valid;
    resp->ms_since_heartbeat = v.ms_since_ok;
    if (v.map) {
        uint32_t P = sx_partmap_partitions(v.map);
        resp->map_version = sx_partmap_version(v.map);
        resp->leading = sx_rpc_call_alloc(call, (P + 1) * sizeof(uint32_t));
        resp->following = sx_rpc_call_alloc(call, (P + 1) * sizeof(uint32_t));
        for (uint32_t p = 0; p < P && v.index >= 0; p++) {
            bool leads = sx_partmap_leader(v.map, p) == v.index;
            /* Without a valid lease this worker leads nothing, whatever the map says. */
            if (leads && v.lease_valid)
                resp->leading[resp->n_leading++] = p;
            else if (!leads && sx_partmap_hosts(v.map, p, v.index))
                resp->following[resp->n_following++] = p;
        }
    }
    sx_partmap_release(v.map);
    resp->n_replicas = replica_states(call, w->replicas, &resp->replicas);
    sx_replica_counts(w->replicas, &resp->snapshots_installed, &resp->stores_dropped);
    return SX_OK;
}

sx_status sx_adminservice_read_log(sx_rpc_call *call, const ProtobufCMessage *reqm,
                                   ProtobufCMessage *respm, void *arg, sx_err *err)
{
    sx_worker_ctx *w = arg;
    const Shardex__Internal__V1__ReadLogRequest *req = (const void *)reqm;
    Shardex__Internal__V1__ReadLogResponse *out = (void *)respm;
    sx_replica_log lg;
    sx_status st = sx_replica_read_log(w->replicas, req->partition, req->from_offset,
                                       req->max_entries, sx_rpc_call_arena(call), &lg, err);
    if (st != SX_OK)
        return st;
    out->entries = sx_rpc_call_alloc(call, (lg.n + 1) * sizeof(*out->entries));
    for (size_t i = 0; i < lg.n; i++) {
        Shardex__Internal__V1__AppendEntry *e = sx_rpc_call_alloc(call, sizeof(*e));
        shardex__internal__v1__append_entry__init(e);
        e->epoch = lg.entries[i].epoch;
        e->op.data = (uint8_t *)lg.entries[i].op;
        e->op.len = lg.entries[i].op_len;
        out->entries[i] = e;
    }
    out->n_entries = lg.n;
    out->log_end_offset = lg.log_end_offset;
    out->log_start_offset = lg.log_start_offset;
    out->epochs = sx_rpc_call_alloc(call, (lg.nepochs + 1) * sizeof(*out->epochs));
    for (size_t i = 0; i < lg.nepochs; i++) {
        Shardex__Internal__V1__EpochStart *e = sx_rpc_call_alloc(call, sizeof(*e));
        shardex__internal__v1__epoch_start__init(e);
        e->epoch = lg.epochs[i].epoch;
        e->start_offset = lg.epochs[i].start_offset;
        out->epochs[i] = e;
    }
    out->n_epochs = lg.nepochs;
    return SX_OK;
}

/* ScanDocs collects into the call's arena, growing the list by doubling. */
typedef struct scan_ctx {
    sx_arena *arena;
    Shardex__Internal__V1__ScanDocsResponse *out;
    size_t cap;
    bool bad; /* a stored document did not decode */
} scan_ctx;

static bool scan_one(void *arg, const char *id, size_t id_len, uint64_t version, const uint8_t *doc,
                     size_t len)
{
    (void)id;
    (void)id_len;
    scan_ctx *sc = arg;
    if (sc->out->n_docs == sc->cap) {
        size_t cap = sc->cap ? 2 * sc->cap : 256;
        Shardex__Internal__V1__StoredDoc **next = sx_arena_alloc(sc->arena, cap * sizeof(*next));
        if (sc->cap)
            memcpy(next, sc->out->docs, sc->cap * sizeof(*next));
        sc->out->docs = next;
        sc->cap = cap;
    }
    ProtobufCAllocator alloc = sx_arena_pb_allocator(sc->arena);
    Shardex__Internal__V1__StoredDoc *d = sx_arena_alloc(sc->arena, sizeof(*d));
    shardex__internal__v1__stored_doc__init(d);
    d->version = version;
    d->doc = shardex__v1__document__unpack(&alloc, len, doc);
    if (!d->doc) {
        sc->bad = true;
        return false;
    }
    sc->out->docs[sc->out->n_docs++] = d;
    return true;
}

sx_status sx_adminservice_scan_docs(sx_rpc_call *call, const ProtobufCMessage *reqm,
                                    ProtobufCMessage *respm, void *arg, sx_err *err)
{
    sx_worker_ctx *w = arg;
    const Shardex__Internal__V1__ScanDocsRequest *req = (const void *)reqm;
    Shardex__Internal__V1__ScanDocsResponse *out = (void *)respm;
    scan_ctx sc = {.arena = sx_rpc_call_arena(call), .out = out};
    sx_replica_scan_at at;
    sx_status st =
        sx_replica_scan_docs(w->replicas, req->partition, scan_one, &sc, sc.arena, &at, err);
    out->applied_offset = at.applied;
    out->salts = at.salts;
    out->n_salts = at.nsalts;
    out->salts_listed = st == SX_OK;
    if (st == SX_OK && sc.bad)
        st = sx_err_set(err, SX_DATA_LOSS, "partition %u: a stored document does not decode",
                        req->partition);
    return st;
}

sx_status sx_adminservice_set_faults(sx_rpc_call *call, const ProtobufCMessage *reqm,
                                     ProtobufCMessage *respm, void *arg, sx_err *err)
{
    (void)call;
    (void)respm;
    sx_worker_ctx *w = arg;
    const Shardex__Internal__V1__SetFaultsRequest *req = (const void *)reqm;
    if (!w->allow_faults)
        return sx_err_set(err, SX_FAILED_PRECONDITION,
                          "fault injection is off on this worker: start it with --allow-faults");
    return sx_rpc_client_set_faults(w->rpc, req->spec, err);
}

sx_status sx_adminservice_refresh_map(sx_rpc_call *call, const ProtobufCMessage *reqm,
                                      ProtobufCMessage *respm, void *arg, sx_err *err)
{
    (void)call;
    (void)respm;
    (void)err;
    sx_worker_ctx *w = arg;
    const Shardex__Internal__V1__RefreshMapRequest *req = (const void *)reqm;
    if (!w->member)
        return SX_OK; /* not joined yet: its registration brings the newest map */
    sx_membership_view v;
    sx_membership_get_view(w->member, &v);
    uint64_t have = v.map ? sx_partmap_version(v.map) : 0;
    sx_partmap_release(v.map);
    if (have < req->version)
        sx_membership_refresh(w->member);
    return SX_OK;
}

sx_status sx_adminservice_get_map(sx_rpc_call *call, const ProtobufCMessage *reqm,
                                  ProtobufCMessage *respm, void *arg, sx_err *err)
{
    (void)reqm;
    sx_worker_ctx *w = arg;
    sx_membership_view v;
    sx_membership_get_view(w->member, &v);
    if (!v.map)
        return sx_err_set(err, SX_UNAVAILABLE, "this worker has not joined the cluster yet");
    /* The top-level struct is copied; what it points to stays the shared map's
     * until the reply is sent. */
    const Shardex__Internal__V1__ClusterMap *m = sx_partmap_msg(v.map);
    memcpy(respm, m, m->base.descriptor->sizeof_message);
    sx_rpc_call_on_done(call, sx_partmap_release, v.map);
    return SX_OK;
}

/* One handler for every call that the coordinator answers: the same method,
 * the same request, the response handed back as it came. */
sx_status sx_adminservice_forward(sx_rpc_call *call, const ProtobufCMessage *req,
                                  ProtobufCMessage *resp, void *arg, sx_err *err)
{
    sx_worker_ctx *w = arg;
    const char *path = sx_rpc_call_method(call);
    const char *method = strrchr(path, '/') + 1;
    uint64_t deadline = sx_rpc_call_deadline_ms(call), now = sx_clock_now_ms();
    uint64_t left = deadline > now ? deadline - now : 1;
    sx_rpc_call_opts o = {.timeout_ms = left < FORWARD_TIMEOUT_MS ? left : FORWARD_TIMEOUT_MS};
    ProtobufCMessage *got = NULL;
    const ProtobufCServiceDescriptor *svc = &shardex__v1__shardex__descriptor;
    sx_status st = w->member
                       ? sx_membership_invoke(w->member, svc, method, req, &got, &o, err)
                       : sx_rpc_invoke(w->rpc, w->coordinator, svc, method, req, &got, &o, err);
    if (st != SX_OK)
        return st;
    /* Hand over the top-level struct; `got` keeps owning what it points to. */
    memcpy(resp, got, got->descriptor->sizeof_message);
    sx_rpc_call_on_done(call, (void (*)(void *))sx_rpc_free, got);
    return SX_OK;
}
