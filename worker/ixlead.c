/* ixlead.c: see ixlead.h. */
#include "ixlead.h"

#include "clock.h"
#include "crashpoint.h"
#include "log.h"
#include "pindex.h"
#include "plog.h"
#include "shardex/internal/v1/index.pb-c.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define INDEX_SVC (&shardex__internal__v1__index__descriptor)
#define COORD_SVC (&shardex__internal__v1__coordinator__descriptor)

#define LOOP_MS 20      /* the loop looks for work this often, and when woken (applies, answers) */
#define SHIP_INFLIGHT 4 /* batches in flight per stream */
#define SHIP_MAX_CHANGES 4096 /* about this many changes per batch (whole offsets) */
#define SHIP_IDLE_MS 250      /* an empty batch at least this often: staleness bound, idle cost */
/* A lost batch stalls its stream this long; a rebuild chunk (a bounded
 * number of entries, but read from the documents first) gets longer. */
#define SHIP_TIMEOUT_MS 1000
#define REBUILD_TIMEOUT_MS 10000
/* Entries per rebuild chunk (documents are not split). SHARDEX_REBUILD_CHUNK_ENTRIES
 * sets another, for tests that want many chunks from few documents. */
#define REBUILD_CHUNK_ENTRIES 8192
#define RETRY_MS 100
#define TRIM_EVERY_MS 1000
#define MARKER_TIMEOUT_MS 5000

typedef struct stream {
    uint32_t p;
    uint64_t id;
    uint32_t t;
    uint64_t leader_epoch;
    uint64_t owner_epoch;
    char addr[300];
    bool is_int;
    bool known;       /* acked is the owner's watermark */
    uint64_t acked;   /* the owner's watermark, as last told */
    uint64_t sent;    /* highest up_to in flight or acknowledged */
    uint64_t trimmed; /* the outbox's floor: trimmed up to here (ours, or a former leadership's) */
    int inflight;     /* batches of this generation in flight */
    int calls;        /* calls in flight, of any generation: the stream lives until 0 */
    uint64_t gen;     /* raised at every rewind: older answers are ignored */
    uint64_t last_send_ms, retry_at_ms, last_trim_ms;
    /* A rebuild in chunks (acked below the outbox floor; docs/indexes.md
     * "Trimming"): the cursor holds a snapshot of the documents and its
     * applied offset; chunk k + 1 is read and sent only once k is applied.
     * The loop thread owns rb; answers set rb_abort (start again from chunk
     * 0 with a new id: an error, a refusal, a new owner) or rb_done. */
    sx_pindex_rebuild_cursor *rb;
    sx_replica_store *rb_store; /* a reference to the store rb reads (replica.h) */
    uint64_t rb_id;
    uint32_t rb_chunk; /* the next chunk to send */
    bool rb_abort, rb_done;
    bool seen; /* visited by this round of the loop */
    struct stream *next;
} stream;

typedef struct part {
    uint64_t epoch;
    bool marker_inflight;
    uint64_t marker_upto; /* last offset of markers written; ask again once applied */
    uint64_t *reported;   /* index ids reported backfilled at this epoch */
    size_t nreported;
    bool reporting; /* a report is in flight (one at a time) */
    uint64_t last_retired_trim_ms;
} part;

struct sx_ixlead {
    sx_ixlead_opts o;
    sx_replica_set *replicas; /* borrowed, from start */
    sx_membership *member;    /* borrowed, from start */
    bool running;             /* the loop thread was started and not joined */
    char *worker_id, *coordinator;
    pthread_mutex_t mu; /* streams, parts, stop, inflight */
    pthread_cond_t cv;
    stream *streams;
    part *parts;
    uint32_t nparts;
    int inflight; /* calls in flight, for stop */
    bool stop;
    bool kicked;          /* work arrived since the loop last looked */
    size_t rebuild_chunk; /* entries per rebuild chunk */
    pthread_t thread;
};

/* ------------------------------------------------------------- helpers -- */

static stream *find_stream(sx_ixlead *l, uint32_t p, uint64_t id, uint32_t t)
{
    for (stream *s = l->streams; s; s = s->next)
        if (s->p == p && s->id == id && s->t == t)
            return s;
    return NULL;
}

static void rewind_locked(stream *s)
{
    s->gen++;
    s->sent = s->acked;
    s->inflight = 0; /* answers of older generations no longer count */
}

/* -------------------------------------------------------------- markers -- */

typedef struct marker_ctx {
    sx_ixlead *l;
    uint32_t p;
    uint64_t epoch;
    ProtobufCBinaryData *ops;
    size_t n;
} marker_ctx;

static void marker_done(void *arg, sx_status st, const sx_err *err, const uint64_t *offsets,
                        size_t n)
{
    marker_ctx *c = arg;
    sx_ixlead *l = c->l;
    pthread_mutex_lock(&l->mu);
    part *pt = &l->parts[c->p];
    pt->marker_inflight = false;
    if (st == SX_OK && n)
        pt->marker_upto = offsets[n - 1];
    l->inflight--;
    l->kicked = true;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
    if (st != SX_OK)
        SX_LOG(SX_LOG_WARN, "ixlead", "partition=%u index markers not written: %s", c->p,
               err ? err->msg : "");
    for (size_t i = 0; i < c->n; i++)
        free(c->ops[i].data);
    free(c->ops);
    free(c);
}

static ProtobufCBinaryData pack_op(const Shardex__Internal__V1__LogOp *op)
{
    ProtobufCBinaryData b = {.len = shardex__internal__v1__log_op__get_packed_size(op)};
    b.data = sx_malloc(b.len + 1);
    shardex__internal__v1__log_op__pack(op, b.data);
    return b;
}

/* Split markers (docs/indexes.md "Online split"): the map's splits this
 * partition has not applied, and `done` for a split the map swapped in that
 * is not marked done here (the parent then gets nothing more). At most one
 * of each per index and pass: a pass ends when its markers are applied. */
static void split_markers(marker_ctx *c, const Shardex__Internal__V1__ClusterMap *m,
                          const sx_pindex_info *active, size_t na)
{
    for (size_t k = 0; k < na; k++) {
        const Shardex__Internal__V1__IndexEntry *e = NULL;
        for (size_t i = 0; i < m->n_indexes && !e; i++)
            if (m->indexes[i]->id == active[k].id)
                e = m->indexes[i];
        if (!e || !e->n_splits || !active[k].global)
            continue;
        const Shardex__Internal__V1__IndexSplit *sp = NULL;
        bool done = false;
        uint32_t have = active[k].nsplits;
        if (have && have <= e->n_splits && e->splits[have - 1]->done &&
            !active[k].last_split_done) {
            sp = e->splits[have - 1];
            done = true;
        } else if (have < e->n_splits) {
            sp = e->splits[have];
        }
        if (!sp)
            continue;
        c->ops = sx_realloc(c->ops, (c->n + 2) * sizeof(*c->ops));
        Shardex__Internal__V1__IndexSplit copy = *sp;
        copy.done = done;
        Shardex__Internal__V1__LogOp op = SHARDEX__INTERNAL__V1__LOG_OP__INIT;
        op.op_case = SHARDEX__INTERNAL__V1__LOG_OP__OP_INDEX_SPLIT;
        op.index_split = &copy;
        c->ops[c->n++] = pack_op(&op);
    }
}

/* Salt markers (docs/indexes.md "Hot values"): the map's salts this
 * partition has not applied, in seq order (each is applied alone in its
 * batch, in log order, so several may go in one pass). */
static void salt_markers(marker_ctx *c, const Shardex__Internal__V1__ClusterMap *m,
                         const sx_pindex_info *active, size_t na)
{
    for (size_t k = 0; k < na; k++) {
        const Shardex__Internal__V1__IndexEntry *e = NULL;
        for (size_t i = 0; i < m->n_indexes && !e; i++)
            if (m->indexes[i]->id == active[k].id)
                e = m->indexes[i];
        if (!e || !active[k].global)
            continue;
        /* Only active salts, in order: every worker's map has it then, so
         * every query plans with its salt set (coord_index.c). */
        for (size_t i = active[k].nsalts; i < e->n_salts && e->salts[i]->active; i++) {
            c->ops = sx_realloc(c->ops, (c->n + 2) * sizeof(*c->ops));
            Shardex__Internal__V1__LogOp op = SHARDEX__INTERNAL__V1__LOG_OP__INIT;
            op.op_case = SHARDEX__INTERNAL__V1__LOG_OP__OP_INDEX_SALT;
            op.index_salt = e->salts[i];
            c->ops[c->n++] = pack_op(&op);
        }
    }
}

/* Appends the markers that bring p's active indexes to the map's catalog. */
static void reconcile_markers(sx_ixlead *l, uint32_t p, const sx_replica_view *v,
                              const sx_partmap *pm, const sx_pindex_info *active, size_t na)
{
    pthread_mutex_lock(&l->mu);
    part *pt = &l->parts[p];
    bool busy = pt->marker_inflight || v->applied < pt->marker_upto;
    pthread_mutex_unlock(&l->mu);
    if (busy)
        return;
    const Shardex__Internal__V1__ClusterMap *m = sx_partmap_msg(pm);
    marker_ctx *c = sx_calloc(1, sizeof(*c));
    c->ops = sx_calloc(m->n_indexes + na + 1, sizeof(*c->ops));
    for (size_t i = 0; i < m->n_indexes; i++) {
        const Shardex__Internal__V1__IndexEntry *e = m->indexes[i];
        bool have = false;
        for (size_t k = 0; k < na; k++)
            have |= active[k].id == e->id;
        if (have || !e->spec)
            continue;
        Shardex__Internal__V1__IndexStart s = SHARDEX__INTERNAL__V1__INDEX_START__INIT;
        s.index_id = e->id;
        s.spec = e->spec;
        Shardex__Internal__V1__LogOp op = SHARDEX__INTERNAL__V1__LOG_OP__INIT;
        op.op_case = SHARDEX__INTERNAL__V1__LOG_OP__OP_INDEX_START;
        op.index_start = &s;
        c->ops[c->n++] = pack_op(&op);
    }
    for (size_t k = 0; k < na; k++) {
        if (sx_partmap_index(pm, active[k].id))
            continue;
        Shardex__Internal__V1__LogOp op = SHARDEX__INTERNAL__V1__LOG_OP__INIT;
        op.op_case = SHARDEX__INTERNAL__V1__LOG_OP__OP_INDEX_DROP;
        op.index_drop = active[k].id;
        c->ops[c->n++] = pack_op(&op);
    }
    split_markers(c, m, active, na);
    salt_markers(c, m, active, na);
    if (c->n == 0) {
        free(c->ops);
        free(c);
        return;
    }
    c->l = l;
    c->p = p;
    pthread_mutex_lock(&l->mu);
    pt->marker_inflight = true;
    l->inflight++;
    pthread_mutex_unlock(&l->mu);
    SX_LOG(SX_LOG_INFO, "ixlead", "partition=%u appending %zu index marker(s)", p, c->n);
    sx_replica_write(l->replicas, p, c->ops, c->n, sx_clock_now_ms() + MARKER_TIMEOUT_MS,
                     marker_done, c);
}

/* ------------------------------------------------------------- shipping -- */

typedef struct ship_ctx {
    sx_ixlead *l;
    stream *s;
    uint64_t gen;
    uint64_t up_to;
    bool probe;
    bool rebuild, rb_last; /* a rebuild chunk; the last one */
    sx_arena arena;
} ship_ctx;

static void ship_done(sx_status st, const sx_err *err, ProtobufCMessage *resp, void *arg)
{
    ship_ctx *c = arg;
    sx_ixlead *l = c->l;
    pthread_mutex_lock(&l->mu);
    stream *s = c->s;
    s->calls--;
    if (c->gen == s->gen) {
        s->inflight--;
        if (st == SX_OK) {
            const Shardex__Internal__V1__ShipResponse *r = (const void *)resp;
            /* The owner's word is the truth; a refusal may even lower it
             * (an owner that lost an unsynced tail), and we resend from it. */
            if (!s->known || r->watermark > s->acked || (!r->applied && !c->probe))
                s->acked = r->watermark;
            s->known = true;
            if (s->sent < s->acked)
                s->sent = s->acked;
            if (!r->applied && !c->probe && r->watermark < c->up_to)
                rewind_locked(s); /* a gap or a refused rebuild: resend from the watermark */
            if (c->rebuild && !r->applied)
                s->rb_abort = true; /* another rebuild, or an owner that restarted */
            else if (c->rebuild && c->rb_last)
                s->rb_done = true;
        } else {
            if (st != SX_CANCELLED)
                SX_LOG(SX_LOG_DEBUG, "ixlead",
                       "partition=%u index=%" PRIu64 " t=%u ship to %s "
                       "failed: %s",
                       s->p, s->id, s->t, s->addr, err ? err->msg : "");
            s->known = s->known && st != SX_FAILED_PRECONDITION;
            rewind_locked(s);
            s->retry_at_ms = sx_clock_now_ms() + RETRY_MS;
            s->rb_abort |= c->rebuild; /* applied or not, unknown: from chunk 0 again */
        }
    } else if (c->rebuild) {
        s->rb_abort = true; /* the stream was rewound or reset meanwhile */
    }
    l->inflight--;
    l->kicked = true; /* a window slot is free */
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
    sx_rpc_free(resp);
    sx_arena_free(&c->arena);
    free(c);
}

static void send_ship(sx_ixlead *l, stream *s, ship_ctx *c, Shardex__Internal__V1__ShipRequest *req)
{
    char addr[300];
    memcpy(addr, s->addr, sizeof(addr));
    sx_rpc_call_opts o = {.timeout_ms = req->rebuild ? REBUILD_TIMEOUT_MS : SHIP_TIMEOUT_MS};
    sx_rpc_invoke_async(l->o.rpc, addr, INDEX_SVC, "Ship", &req->base, &o, ship_done, c);
}

/* A rebuild is in flight already (another batch than c's): c is dropped. */
static bool rebuilding_elsewhere(sx_ixlead *l, stream *s, ship_ctx *c)
{
    pthread_mutex_lock(&l->mu);
    bool busy = s->inflight > 1;
    if (busy) {
        s->inflight--;
        s->calls--;
        l->inflight--;
    }
    pthread_mutex_unlock(&l->mu);
    if (busy)
        free(c);
    return busy;
}

/* A rebuild id: another one for every attempt, of every leader. */
static uint64_t new_rebuild_id(void)
{
    static atomic_uint_fast64_t counter;
    uint64_t n = atomic_fetch_add(&counter, 1) + 1;
    uint64_t id = sx_clock_wall_ms() << 20 ^ (uint64_t)getpid() << 44 ^ n;
    return id ? id : n;
}

/* Ends s's rebuild cursor (its snapshot), then lets its store go. */
static void rebuild_end(stream *s)
{
    sx_pindex_rebuild_end(s->rb);
    sx_replica_store_unref(s->rb_store);
    s->rb = NULL;
    s->rb_store = NULL;
}

/* Ends s's rebuild cursor once its rebuild is done or given up. Loop thread. */
static void rebuild_settle(sx_ixlead *l, stream *s)
{
    pthread_mutex_lock(&l->mu);
    stream old = {0};
    if (s->rb_abort || s->rb_done) {
        old.rb = s->rb;
        old.rb_store = s->rb_store;
        s->rb = NULL;
        s->rb_store = NULL;
        s->rb_abort = s->rb_done = false;
    }
    pthread_mutex_unlock(&l->mu);
    rebuild_end(&old);
}

/* The next chunk of s's rebuild into req (a new rebuild when none is in
 * progress). */
static sx_status rebuild_chunk(sx_ixlead *l, stream *s, const sx_replica_view *v, ship_ctx *c,
                               Shardex__Internal__V1__ShipRequest *req, sx_err *err)
{
    uint64_t at;
    if (!s->rb) {
        sx_status st = sx_pindex_rebuild_begin(v->ix, s->id, s->t, &s->rb, &at, err);
        if (st != SX_OK)
            return st;
        s->rb_store = sx_replica_store_ref(v->store); /* the cursor outlives the view */
        s->rb_id = new_rebuild_id();
        s->rb_chunk = 0;
        SX_LOG(SX_LOG_INFO, "ixlead",
               "partition=%u index=%" PRIu64 " t=%u rebuilding owner %s at %" PRIu64
               " in chunks of %zu entries (rebuild %" PRIx64 ")",
               s->p, s->id, s->t, s->addr, at, l->rebuild_chunk, s->rb_id);
    }
    SX_DELAY_POINT("rebuild-chunk"); /* tests: a rebuild slow enough to interrupt */
    size_t n = 0;
    bool last = false;
    sx_status st =
        sx_pindex_rebuild_next(s->rb, l->rebuild_chunk, &c->arena, &req->changes, &n, &last, err);
    if (st != SX_OK) {
        rebuild_end(s);
        return st;
    }
    req->n_changes = n;
    req->rebuild = true;
    req->rebuild_id = s->rb_id;
    req->rebuild_chunk = s->rb_chunk++;
    req->rebuild_last = last;
    req->prev_offset = 0;
    req->up_to_offset = sx_pindex_rebuild_at(s->rb);
    c->rebuild = true;
    c->rb_last = last;
    if (last)
        SX_LOG(SX_LOG_INFO, "ixlead",
               "partition=%u index=%" PRIu64 " t=%u rebuild %" PRIx64 ": last chunk %u sent", s->p,
               s->id, s->t, s->rb_id, req->rebuild_chunk);
    return SX_OK;
}

/* One step of stream s: at most one batch sent. A new index needs no hold
 * while its backfill runs here: its marker sets the outbox floor to its
 * offset C and its chunks write no outbox, so a term partition below C is
 * rebuilt from a snapshot at an applied offset >= C (which reads the
 * documents, whatever the local backfill's progress), and the outbox after
 * it holds only the live changes (docs/indexes.md "Backfill in chunks"). */
static void stream_step(sx_ixlead *l, stream *s, const sx_replica_view *v, uint32_t P)
{
    rebuild_settle(l, s);
    uint64_t now = sx_clock_now_ms();
    pthread_mutex_lock(&l->mu);
    uint64_t upto = v->applied;
    bool idle = now - s->last_send_ms >= SHIP_IDLE_MS;
    /* a rebuild sends its next chunk as soon as the previous one is applied */
    bool rebuilding = s->known && s->acked < s->trimmed;
    bool go =
        s->inflight < SHIP_INFLIGHT && now >= s->retry_at_ms &&
        (!s->known || rebuilding ? s->inflight == 0 : (s->sent < upto || (idle && !s->inflight)));
    if (!go) {
        pthread_mutex_unlock(&l->mu);
        return;
    }
    ship_ctx *c = sx_calloc(1, sizeof(*c));
    c->l = l;
    c->s = s;
    c->gen = s->gen;
    Shardex__Internal__V1__ShipRequest req = SHARDEX__INTERNAL__V1__SHIP_REQUEST__INIT;
    req.index_id = s->id;
    req.term_partition = s->t;
    req.owner_epoch = s->owner_epoch;
    req.partition = s->p;
    req.leader_epoch = s->leader_epoch;
    req.partitions = P;
    req.type = s->is_int ? SHARDEX__V1__VALUE_TYPE__VALUE_TYPE_INT
                         : SHARDEX__V1__VALUE_TYPE__VALUE_TYPE_STRING;
    uint64_t after = s->sent, acked = s->acked, floor = s->trimmed;
    bool known = s->known;
    s->inflight++;
    s->calls++;
    s->last_send_ms = now;
    l->inflight++;
    pthread_mutex_unlock(&l->mu);

    sx_err err = {0};
    sx_status st = SX_OK;
    uint64_t covered = after;
    if (!known) {
        c->probe = true; /* carries nothing: up_to 0 is at or below any watermark */
    } else if (acked < floor) {
        if (rebuilding_elsewhere(l, s, c)) /* one chunk in flight at a time */
            return;
        st = rebuild_chunk(l, s, v, c, &req, &err);
    } else {
        size_t n = 0;
        st = sx_pindex_outbox_read(v->ix, s->id, s->t, after, upto, SHIP_MAX_CHANGES, &c->arena,
                                   &req.changes, &n, &covered, &err);
        req.n_changes = n;
        req.prev_offset = after;
        req.up_to_offset = covered > after ? covered : after;
        if (covered >= v->applied && v->stale_ms == 0)
            req.as_of_ms = sx_clock_wall_ms();
    }
    c->up_to = req.up_to_offset;
    if (st != SX_OK) {
        SX_LOG(SX_LOG_ERROR, "ixlead",
               "partition=%u index=%" PRIu64 " t=%u cannot read the "
               "outbox: %s",
               s->p, s->id, s->t, err.msg);
        pthread_mutex_lock(&l->mu);
        s->inflight--;
        s->calls--;
        s->retry_at_ms = now + RETRY_MS;
        l->inflight--;
        pthread_mutex_unlock(&l->mu);
        sx_arena_free(&c->arena);
        free(c);
        return;
    }
    if (!c->probe) {
        pthread_mutex_lock(&l->mu);
        if (c->gen == s->gen && req.up_to_offset > s->sent)
            s->sent = req.up_to_offset;
        pthread_mutex_unlock(&l->mu);
    }
    send_ship(l, s, c, &req);
}

/* Trims what the owner acknowledged, now and then. */
static void stream_trim(sx_ixlead *l, stream *s, const sx_replica_view *v)
{
    uint64_t now = sx_clock_now_ms();
    pthread_mutex_lock(&l->mu);
    bool go = s->known && s->acked > s->trimmed && now - s->last_trim_ms >= TRIM_EVERY_MS;
    uint64_t upto = s->acked;
    if (go)
        s->last_trim_ms = now;
    pthread_mutex_unlock(&l->mu);
    if (!go)
        return;
    sx_err err = {0};
    if (sx_pindex_outbox_trim(v->ix, s->id, s->t, upto, &err) != SX_OK) {
        SX_LOG(SX_LOG_WARN, "ixlead", "partition=%u outbox trim failed: %s", s->p, err.msg);
        return;
    }
    pthread_mutex_lock(&l->mu);
    s->trimmed = upto;
    pthread_mutex_unlock(&l->mu);
}

static stream *get_stream(sx_ixlead *l, uint32_t p, uint64_t id, uint32_t t, uint64_t epoch,
                          const Shardex__Internal__V1__TermPartition *tp, const sx_partmap *m,
                          bool is_int, sx_pindex *ix)
{
    pthread_mutex_lock(&l->mu);
    stream *s = find_stream(l, p, id, t);
    if (!s) {
        s = sx_calloc(1, sizeof(*s));
        s->p = p;
        s->id = id;
        s->t = t;
        s->next = l->streams;
        l->streams = s;
    }
    const Shardex__Internal__V1__WorkerEntry *owner = sx_partmap_worker(m, tp->owner);
    const char *addr = owner ? owner->address : "";
    if (s->leader_epoch != epoch || s->owner_epoch != tp->epoch || strcmp(s->addr, addr) != 0) {
        /* A new term or owner: learn its watermark before shipping. */
        s->leader_epoch = epoch;
        s->owner_epoch = tp->epoch;
        snprintf(s->addr, sizeof(s->addr), "%s", addr);
        s->known = false;
        s->acked = s->sent = 0;
        s->trimmed = sx_pindex_outbox_floor(ix, id, t); /* changes only by our trims from here */
        s->retry_at_ms = 0;
        s->rb_abort = true; /* a rebuild for the former owner or term starts again */
        rewind_locked(s);
    }
    s->is_int = is_int;
    s->seen = true;
    pthread_mutex_unlock(&l->mu);
    return s;
}

/* A term partition retired by a split: no stream; what the outbox still
 * gives it until the split's done marker is trimmed now and then. */
static void retired_trim(sx_ixlead *l, uint32_t p, uint64_t id, uint32_t t,
                         const sx_replica_view *v)
{
    uint64_t now = sx_clock_now_ms();
    pthread_mutex_lock(&l->mu);
    part *pt = &l->parts[p];
    bool go = now - pt->last_retired_trim_ms >= TRIM_EVERY_MS;
    pthread_mutex_unlock(&l->mu);
    if (!go || sx_pindex_outbox_floor(v->ix, id, t) >= v->applied)
        return;
    sx_err err = {0};
    if (sx_pindex_outbox_trim(v->ix, id, t, v->applied, &err) != SX_OK)
        SX_LOG(SX_LOG_WARN, "ixlead", "partition=%u outbox trim failed: %s", p, err.msg);
    pthread_mutex_lock(&l->mu);
    pt->last_retired_trim_ms = now;
    pthread_mutex_unlock(&l->mu);
}

/* ------------------------------------------------------------- backfill -- */

static bool reported(part *pt, uint64_t id)
{
    for (size_t i = 0; i < pt->nreported; i++)
        if (pt->reported[i] == id)
            return true;
    return false;
}

typedef struct report_ctx {
    sx_ixlead *l;
    uint32_t p;
    uint64_t index_id;
    uint64_t epoch;
    size_t coord_pos; /* the coordinator asked (sx_membership_coordinator_pos) */
} report_ctx;

static void report_done(sx_status st, const sx_err *err, ProtobufCMessage *resp, void *arg)
{
    report_ctx *c = arg;
    sx_ixlead *l = c->l;
    sx_err e2 = {0};
    if (err)
        e2 = *err;
    if (l->member) /* a follower or a deposed coordinator: the next report goes elsewhere */
        sx_membership_answered(l->member, c->coord_pos, &st, &e2, &resp);
    err = &e2;
    sx_rpc_free(resp);
    if (st != SX_OK)
        SX_LOG(SX_LOG_WARN, "ixlead",
               "partition=%u backfill report of index %" PRIu64 " failed: %s", c->p, c->index_id,
               err ? err->msg : "");
    else
        SX_LOG(SX_LOG_INFO, "ixlead", "partition=%u index=%" PRIu64 " backfill reported", c->p,
               c->index_id);
    pthread_mutex_lock(&l->mu);
    part *pt = &l->parts[c->p];
    pt->reporting = false;
    if (st == SX_OK && pt->epoch == c->epoch) {
        pt->reported = sx_realloc(pt->reported, (pt->nreported + 1) * sizeof(*pt->reported));
        pt->reported[pt->nreported++] = c->index_id;
    }
    l->inflight--;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
    free(c);
}

static void maybe_report(sx_ixlead *l, uint32_t p, const sx_replica_view *v,
                         const Shardex__Internal__V1__IndexEntry *e, const sx_pindex_info *info)
{
    if (e->state != SHARDEX__V1__INDEX_STATE__INDEX_STATE_BUILDING)
        return;
    for (size_t i = 0; i < e->n_backfilled; i++)
        if (e->backfilled[i] == p)
            return;
    if (v->applied < info->start || info->filling)
        return; /* not started, or its backfill still runs here */
    pthread_mutex_lock(&l->mu);
    part *pt = &l->parts[p];
    bool done = pt->reporting || reported(pt, e->id);
    for (uint32_t t = 0; !done && info->global && t < info->term_partitions; t++) {
        stream *s = find_stream(l, p, e->id, t);
        done = !s || !s->known || s->acked < info->start; /* not yet: "done" means skip */
    }
    if (!done) {
        pt->reporting = true;
        l->inflight++;
    }
    pthread_mutex_unlock(&l->mu);
    if (done)
        return;
    Shardex__Internal__V1__ReportBackfillRequest req =
        SHARDEX__INTERNAL__V1__REPORT_BACKFILL_REQUEST__INIT;
    req.worker_id = (char *)l->worker_id;
    req.index_id = e->id;
    req.partition = p;
    req.epoch = v->epoch;
    report_ctx *c = sx_calloc(1, sizeof(*c));
    *c = (report_ctx){l, p, e->id, v->epoch, 0};
    const char *coord = l->coordinator;
    if (l->member) {
        c->coord_pos = sx_membership_coordinator_pos(l->member);
        coord = sx_membership_coordinator(l->member);
    }
    /* Asynchronous: a coordinator that is down must not stall shipping. */
    sx_rpc_call_opts o = {.timeout_ms = 2000};
    sx_rpc_invoke_async(l->o.rpc, coord, COORD_SVC, "ReportBackfill", &req.base, &o, report_done,
                        c);
}

/* ----------------------------------------------------------------- loop -- */

/* The log of p is kept from just after the lowest watermark its term
 * partitions acknowledged (docs/indexes.md "Verify on trimmed logs"): a
 * stream whose owner has not answered yet holds it all; one at watermark 0
 * (a new owner) holds nothing, it is rebuilt from the documents. */
static void hold_log(sx_ixlead *l, uint32_t p)
{
    uint64_t hold = 0;
    pthread_mutex_lock(&l->mu);
    for (stream *s = l->streams; s; s = s->next) {
        if (s->p != p || !s->seen || !s->addr[0])
            continue;
        uint64_t h = !s->known ? 1 : s->acked ? s->acked + 1 : 0;
        if (h && (!hold || h < hold))
            hold = h;
    }
    pthread_mutex_unlock(&l->mu);
    sx_replica_hold_log(l->replicas, p, hold);
}

static void lead_partition(sx_ixlead *l, uint32_t p, const sx_replica_view *v, const sx_partmap *m)
{
    /* The map read for this pass must be the one that made us leader: an
     * older one lacks indexes created since, and would have us drop them. */
    if (!sx_partmap_leads(m, p) || sx_partmap_part(m, p)->epoch != v->epoch)
        return; /* the next pass has the newer map */
    uint32_t P = sx_partmap_partitions(m);
    pthread_mutex_lock(&l->mu);
    part *pt = &l->parts[p];
    if (pt->epoch != v->epoch) {
        pt->epoch = v->epoch;
        pt->nreported = 0;
        pt->marker_upto = 0;
    }
    pthread_mutex_unlock(&l->mu);
    size_t na = 0;
    sx_pindex_info *active = sx_pindex_list(v->ix, &na);
    reconcile_markers(l, p, v, m, active, na);
    for (size_t k = 0; k < na; k++) {
        const Shardex__Internal__V1__IndexEntry *e = sx_partmap_index(m, active[k].id);
        if (!e)
            continue;
        if (active[k].global && e->spec->global) {
            /* The term partitions this partition's outbox feeds: a split's
             * shadows only once its marker is applied here (their outbox
             * starts there, and the first shipment rebuilds them). */
            for (uint32_t t = 0; t < active[k].term_count; t++) {
                const Shardex__Internal__V1__TermPartition *tp = sx_partmap_term(m, e, t);
                if (!tp)
                    break;
                if (tp->retired) {
                    retired_trim(l, p, e->id, t, v);
                    continue;
                }
                stream *s = get_stream(l, p, e->id, t, v->epoch, tp, m, active[k].is_int, v->ix);
                if (!s->addr[0])
                    continue;
                stream_step(l, s, v, P);
                stream_trim(l, s, v);
            }
        }
        maybe_report(l, p, v, e, &active[k]);
    }
    free(active);
    hold_log(l, p);
}

static void *loop_main(void *arg)
{
    sx_ixlead *l = arg;
    for (;;) {
        pthread_mutex_lock(&l->mu);
        if (l->stop) {
            pthread_mutex_unlock(&l->mu);
            break;
        }
        for (stream *s = l->streams; s; s = s->next)
            s->seen = false;
        pthread_mutex_unlock(&l->mu);

        sx_membership_view mv;
        sx_membership_get_view(l->member, &mv);
        uint32_t P = mv.map ? sx_partmap_partitions(mv.map) : 0;
        if (P && !l->parts) {
            l->parts = sx_calloc(P, sizeof(*l->parts));
            l->nparts = P;
        }
        for (uint32_t p = 0; P && p < P && p < l->nparts; p++) {
            sx_replica_view v;
            if (sx_replica_get_view(l->replicas, p, &v) && v.leading)
                lead_partition(l, p, &v, mv.map);
            sx_replica_view_release(&v);
        }
        sx_partmap_release(mv.map);

        /* Streams of partitions no longer led or indexes gone: dropped once
         * nothing is in flight (a later leadership starts afresh). */
        pthread_mutex_lock(&l->mu);
        for (stream **sp = &l->streams; *sp;) {
            stream *s = *sp;
            if (!s->seen && s->calls == 0) {
                *sp = s->next;
                rebuild_end(s); /* its snapshot, and its store */
                free(s);
            } else {
                if (!s->seen)
                    rewind_locked(s); /* its answers no longer count */
                sp = &s->next;
            }
        }
        if (!l->stop && !l->kicked)
            sx_cond_wait_ms(&l->cv, &l->mu, LOOP_MS);
        l->kicked = false;
        pthread_mutex_unlock(&l->mu);
    }
    return NULL;
}

void sx_ixlead_kick(void *arg)
{
    sx_ixlead *l = arg;
    pthread_mutex_lock(&l->mu);
    l->kicked = true;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
}

sx_ixlead *sx_ixlead_create(const sx_ixlead_opts *opts)
{
    sx_ixlead *l = sx_calloc(1, sizeof(*l));
    l->o = *opts;
    l->worker_id = sx_strdup(opts->worker_id);
    l->coordinator = sx_strdup(opts->coordinator);
    const char *chunk = getenv("SHARDEX_REBUILD_CHUNK_ENTRIES"); /* a test knob */
    l->rebuild_chunk = chunk && atol(chunk) > 0 ? (size_t)atol(chunk) : REBUILD_CHUNK_ENTRIES;
    pthread_mutex_init(&l->mu, NULL);
    sx_cond_init_monotonic(&l->cv);
    return l;
}

void sx_ixlead_start(sx_ixlead *l, sx_replica_set *replicas, sx_membership *member)
{
    l->replicas = replicas;
    l->member = member;
    l->running = true;
    pthread_create(&l->thread, NULL, loop_main, l);
    pthread_setname_np(l->thread, "ixlead");
}

void sx_ixlead_stop(sx_ixlead *l)
{
    if (!l || !l->running)
        return;
    pthread_mutex_lock(&l->mu);
    l->stop = true;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
    pthread_join(l->thread, NULL);
    l->running = false;
    pthread_mutex_lock(&l->mu);
    while (l->inflight > 0)
        pthread_cond_wait(&l->cv, &l->mu);
    /* Rebuild snapshots are the replicas', which are destroyed next. */
    for (stream *s = l->streams; s; s = s->next)
        rebuild_end(s);
    pthread_mutex_unlock(&l->mu);
}

void sx_ixlead_destroy(sx_ixlead *l)
{
    if (!l)
        return;
    sx_ixlead_stop(l);
    while (l->streams) {
        stream *s = l->streams;
        l->streams = s->next;
        free(s);
    }
    for (uint32_t p = 0; p < l->nparts; p++)
        free(l->parts[p].reported);
    free(l->parts);
    free(l->worker_id);
    free(l->coordinator);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv);
    free(l);
}

size_t sx_ixlead_reports(sx_replica_set *replicas, sx_arena *arena,
                         Shardex__Internal__V1__IndexReport ***out)
{
    uint32_t P = sx_replica_partitions(replicas);
    size_t n = 0, cap = 0;
    *out = NULL;
    for (uint32_t p = 0; p < P; p++) {
        sx_replica_view v;
        if (!sx_replica_get_view(replicas, p, &v) || !v.leading) {
            sx_replica_view_release(&v);
            continue;
        }
        size_t na = 0;
        sx_pindex_info *active = sx_pindex_list(v.ix, &na);
        sx_replica_view_release(&v);
        for (size_t k = 0; k < na; k++) {
            if (n == cap) {
                cap = cap ? 2 * cap : 64;
                void *grown = sx_arena_alloc(arena, cap * sizeof(**out));
                if (n)
                    memcpy(grown, *out, n * sizeof(**out));
                *out = grown;
            }
            Shardex__Internal__V1__IndexReport *r = sx_arena_alloc(arena, sizeof(*r));
            shardex__internal__v1__index_report__init(r);
            r->index_id = active[k].id;
            r->partition = p;
            r->mistyped_docs = active[k].mistyped;
            r->backfilling = active[k].filling;
            r->backfill_done_docs = active[k].fill_done;
            r->backfill_total_docs = active[k].fill_total;
            r->backfill_docs_per_s = active[k].fill_rate;
            if (active[k].global) { /* hot values (docs/indexes.md "Hot values") */
                enum { TOP = 3 };
                Shardex__V1__Value *vals[TOP];
                uint64_t counts[TOP];
                size_t nh =
                    sx_pindex_hot(v.ix, active[k].id, TOP, arena, vals, counts, &r->window_changes);
                r->hot = sx_arena_alloc(arena, (nh + 1) * sizeof(*r->hot));
                for (size_t i = 0; i < nh; i++) {
                    Shardex__Internal__V1__HotCount *h = sx_arena_alloc(arena, sizeof(*h));
                    shardex__internal__v1__hot_count__init(h);
                    h->value = vals[i];
                    h->changes = counts[i];
                    r->hot[r->n_hot++] = h;
                }
            }
            (*out)[n++] = r;
        }
        free(active);
    }
    return n;
}
