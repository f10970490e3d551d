/* adminservice.c: see adminservice.h. WorkerAdmin answers are built here
 * from the plain data the modules return (replica.h, membership.h). */
#include "adminservice.h"

#include "clock.h"
#include "hash.h"
#include "sample.h"
#include "shardex/internal/v1/worker.pb-c.h"
#include "shardex/v1/shardex.pb-c.h"
#include "sx_limits.h"

#include <string.h>

/* Longest a forwarded call may take. */
#define FORWARD_TIMEOUT_MS 10000
/* Longest the sample of a CreateIndex without split points may take: a
 * scan of every log partition on its leader. */
#define SAMPLE_TIMEOUT_MS 50000

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

/* ScanDocs collects into the call's arena, growing the list by doubling.
 * With `sample`, a reservoir (Vitter's algorithm R) keeps a uniform sample
 * whatever the partition's size, its choices a hash of the count so that
 * the same store gives the same sample; with `field`, only the documents
 * holding it count, each decoded aside and copied as that field's value. */
typedef struct scan_ctx {
    sx_arena *arena;
    Shardex__Internal__V1__ScanDocsResponse *out;
    size_t cap;
    uint32_t sample;   /* 0: every document */
    const char *field; /* NULL: whole documents */
    uint64_t seen;     /* documents offered to the sample */
    bool bad;          /* a stored document did not decode */
} scan_ctx;

/* Where the next document goes: the end of the list, a sampled slot, or
 * nowhere (false). */
static bool slot_for(scan_ctx *sc, size_t *slot)
{
    uint64_t seen = sc->seen++;
    *slot = sc->out->n_docs;
    if (!sc->sample || sc->out->n_docs < sc->sample)
        return true;
    *slot = sx_hash64(&seen, sizeof(seen)) % (seen + 1);
    return *slot < sc->sample;
}

static void put_doc(scan_ctx *sc, size_t slot, Shardex__V1__Document *doc, uint64_t version)
{
    if (slot == sc->out->n_docs && sc->out->n_docs == sc->cap) {
        size_t cap = sc->cap ? 2 * sc->cap : 256;
        Shardex__Internal__V1__StoredDoc **next = sx_arena_alloc(sc->arena, cap * sizeof(*next));
        if (sc->cap)
            memcpy(next, sc->out->docs, sc->cap * sizeof(*next));
        sc->out->docs = next;
        sc->cap = cap;
    }
    Shardex__Internal__V1__StoredDoc *d = sx_arena_alloc(sc->arena, sizeof(*d));
    shardex__internal__v1__stored_doc__init(d);
    d->version = version;
    d->doc = doc;
    sc->out->docs[slot] = d;
    if (slot == sc->out->n_docs)
        sc->out->n_docs++;
}

/* The first value of doc's field sc->field alone, copied into the arena (one
 * value and no id: an answer's size is then bounded by the sample's count,
 * sample.h); NULL when doc has no value of it. */
static Shardex__V1__Document *project(scan_ctx *sc, const Shardex__V1__Document *doc)
{
    for (size_t i = 0; i < doc->n_fields; i++) {
        const Shardex__V1__Field *f = doc->fields[i];
        if (!f->value || f->value->kind_case == SHARDEX__V1__VALUE__KIND__NOT_SET ||
            strcmp(f->name, sc->field) != 0)
            continue;
        Shardex__V1__Document *o = sx_arena_alloc(sc->arena, sizeof(*o));
        shardex__v1__document__init(o);
        Shardex__V1__Field *g = sx_arena_alloc(sc->arena, sizeof(*g));
        shardex__v1__field__init(g);
        g->name = sx_arena_strdup(sc->arena, f->name);
        g->value = sx_arena_memdup(sc->arena, f->value, sizeof(*f->value));
        if (f->value->kind_case == SHARDEX__V1__VALUE__KIND_S)
            g->value->s = sx_arena_strdup(sc->arena, f->value->s);
        o->fields = sx_arena_memdup(sc->arena, &g, sizeof(g));
        o->n_fields = 1;
        return o;
    }
    return NULL;
}

static bool scan_one(void *arg, const char *id, size_t id_len, uint64_t version, const uint8_t *doc,
                     size_t len)
{
    (void)id;
    (void)id_len;
    scan_ctx *sc = arg;
    size_t slot;
    if (!sc->field) {
        if (!slot_for(sc, &slot))
            return true;
        ProtobufCAllocator alloc = sx_arena_pb_allocator(sc->arena);
        Shardex__V1__Document *d = shardex__v1__document__unpack(&alloc, len, doc);
        if (d)
            put_doc(sc, slot, d, version);
        sc->bad |= !d;
        return d != NULL;
    }
    Shardex__V1__Document *d = shardex__v1__document__unpack(NULL, len, doc);
    Shardex__V1__Document *o = d ? project(sc, d) : NULL;
    if (o && slot_for(sc, &slot))
        put_doc(sc, slot, o, version);
    if (!d) {
        sc->bad = true;
        return false;
    }
    shardex__v1__document__free_unpacked(d, NULL);
    return true;
}

sx_status sx_adminservice_scan_docs(sx_rpc_call *call, const ProtobufCMessage *reqm,
                                    ProtobufCMessage *respm, void *arg, sx_err *err)
{
    sx_worker_ctx *w = arg;
    const Shardex__Internal__V1__ScanDocsRequest *req = (const void *)reqm;
    Shardex__Internal__V1__ScanDocsResponse *out = (void *)respm;
    scan_ctx sc = {.arena = sx_rpc_call_arena(call),
                   .out = out,
                   .sample = req->sample,
                   .field = req->field && *req->field ? req->field : NULL};
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

/* Calls `method` of the coordinator's Shardex service with req, answering
 * resp with its response, within the call's deadline. */
static sx_status forward(sx_worker_ctx *w, sx_rpc_call *call, const char *method,
                         const ProtobufCMessage *req, ProtobufCMessage *resp, sx_err *err)
{
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

/* One handler for every call that the coordinator answers: the same method,
 * the same request, the response handed back as it came. */
sx_status sx_adminservice_forward(sx_rpc_call *call, const ProtobufCMessage *req,
                                  ProtobufCMessage *resp, void *arg, sx_err *err)
{
    const char *path = sx_rpc_call_method(call);
    return forward(arg, call, strrchr(path, '/') + 1, req, resp, err);
}

/* A spec whose split points this worker chooses: range-partitioned, GLOBAL,
 * without points, of a type and a count the coordinator would take (anything
 * else goes to the coordinator as it came, for its refusal). */
static bool needs_sample(const Shardex__V1__IndexSpec *s)
{
    return s && s->partitioning == SHARDEX__V1__PARTITIONING__PARTITIONING_RANGE && s->global &&
           !s->n_split_points && s->field && *s->field &&
           s->term_partitions <= SX_MAX_TERM_PARTITIONS &&
           (s->type == SHARDEX__V1__VALUE_TYPE__VALUE_TYPE_INT ||
            s->type == SHARDEX__V1__VALUE_TYPE__VALUE_TYPE_STRING);
}

sx_status sx_adminservice_create_index(sx_rpc_call *call, const ProtobufCMessage *reqm,
                                       ProtobufCMessage *respm, void *arg, sx_err *err)
{
    sx_worker_ctx *w = arg;
    const Shardex__V1__CreateIndexRequest *req = (const void *)reqm;
    if (!needs_sample(req->spec))
        return forward(w, call, "CreateIndex", reqm, respm, err);
    if (!w->member)
        return sx_err_set(err, SX_UNAVAILABLE, "this worker has not joined the cluster yet");
    /* The sample leaves the forward its share of the call's time. */
    uint64_t now = sx_clock_now_ms(), deadline = sx_rpc_call_deadline_ms(call);
    uint64_t left = deadline > now ? deadline - now : 0;
    if (left > FORWARD_TIMEOUT_MS + SAMPLE_TIMEOUT_MS)
        left = FORWARD_TIMEOUT_MS + SAMPLE_TIMEOUT_MS;
    sx_sample_opts so = {.rpc = w->rpc,
                         .here = w->srv,
                         .member = w->member,
                         .deadline_ms = now + left * SAMPLE_TIMEOUT_MS /
                                                  (FORWARD_TIMEOUT_MS + SAMPLE_TIMEOUT_MS)};
    Shardex__V1__IndexSpec spec = *req->spec;
    Shardex__V1__CreateIndexRequest fwd = *req;
    fwd.spec = &spec;
    sx_status st = sx_sample_splits(&so, &spec, err);
    if (st == SX_OK)
        st = forward(w, call, "CreateIndex", &fwd.base, respm, err);
    sx_sample_free(&spec);
    return st;
}
