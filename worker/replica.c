/* replica.c: leader and follower sides of log replication (see replica.h for
 * the protocol). Threads: one manager (role changes from maps), and for each
 * partition this worker leads, one appender (group commit, apply, answering
 * writes) and one session per follower (shipping entries, tracking `match`).
 * Each replica's state is guarded by its own mutex; nothing holds it across
 * an RPC or an fsync of another replica.
 */
#include "replica.h"

#include "clock.h"
#include "clustermap.h"
#include "crashpoint.h"
#include "fsutil.h"
#include "log.h"
#include "mem.h"
#include "pindex.h"
#include "plog.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define REPL_SVC (&shardex__internal__v1__replication__descriptor)
#define COORD_SVC (&shardex__internal__v1__coordinator__descriptor)

/* Limits of one append batch and one replication message. */
#define BATCH_MAX_OPS 10000
#define BATCH_MAX_BYTES (4u << 20)
/* An idle session still sends this often, so followers learn the commit offset. */
#define SESSION_IDLE_MS 200
#define APPEND_TIMEOUT_MS 1000
#define RETRY_MS 100
/* How often an ISR shrink is asked again while the follower still lags. */
#define SHRINK_RETRY_MS 500

enum { ROLE_NONE = 0, ROLE_FOLLOWER, ROLE_LEADER };

typedef struct pending {
    ProtobufCBinaryData *ops;
    size_t n;
    uint64_t deadline_ms;
    sx_write_done_fn done;
    void *arg;
    uint64_t first; /* first offset, once appended */
    struct pending *next;
} pending;

typedef struct replica replica;

typedef struct session {
    replica *r;
    int32_t follower;
    uint64_t incarnation; /* the follower's process: what we know holds for it alone */
    char addr[300];
    uint64_t match; /* the follower holds our log up to here, verified in this epoch */
    bool synced;    /* match is known */
    uint64_t last_ack_ms;
    uint64_t sent_commit;
    uint64_t last_send_ms;
    uint64_t shrink_asked_ms; /* last time we asked to drop this follower; 0: not asked */
    bool stop;
    pthread_t thread;
} session;

struct replica {
    sx_replicas *owner;
    uint32_t p;
    sx_plog *log;
    sx_pindex *ix; /* its indexes: hooks on log */
    pthread_mutex_t mu;
    pthread_cond_t cv; /* appends, acks, applies, stops */

    /* from the map */
    int role;
    uint64_t epoch; /* the map's epoch of p */
    uint64_t isr_version;
    int32_t isr[SX_MAX_REPLICAS];
    uint32_t nisr;
    uint32_t min_isr;
    /* Followers we asked the coordinator to add to the ISR and it may have:
     * until the map says, they count for commits as if they were in it (the
     * "maximal ISR"): otherwise we could commit without a replica the
     * coordinator already considers in sync, and elect it without those
     * entries (REPLICATION.md rule 3, KAFKA-7128). */
    int32_t pending[SX_MAX_REPLICAS];
    uint32_t npending;

    /* leader */
    uint64_t hw;
    uint64_t epoch_start; /* first offset of our epoch */
    bool fenced;          /* a follower knows a newer epoch */
    bool stop;
    pending *queue, *queue_tail;     /* not yet appended */
    pending *waiting, *waiting_tail; /* appended, in offset order */
    session *sessions[SX_MAX_REPLICAS];
    uint32_t nsessions;
    pthread_t appender;
    bool appender_running;

    /* follower */
    uint64_t known_epoch;    /* highest epoch any leader has shown us */
    uint64_t verified;       /* our log matches the leader's up to here, in verified_epoch */
    uint64_t verified_epoch; /* the epoch whose leader verified it */
    uint64_t leader_commit;  /* as last heard, for reports */

    uint64_t fresh_ms; /* monotonic: when applied last reached the commit offset */
};

struct sx_replicas {
    char *data_dir;
    char *worker_id;
    char *coordinator;
    sx_rpc_client *rpc;
    sx_member *member;
    sx_fsync_mode fsync;
    uint32_t lag_timeout_ms;
    sx_store_cache *cache;

    pthread_mutex_t mu; /* reps, nparts, next_map, stop */
    pthread_cond_t cv;
    replica **reps; /* [nparts], NULL until hosted */
    int32_t me;     /* this worker's index in the last map applied; -1 before */
    uint32_t nparts;
    sx_partmap *next_map; /* held; handed to the manager */
    bool stop;
    pthread_t manager;
    void (*on_applied)(void *arg); /* the next stage: see sx_replicas_opts */
    void *on_applied_arg;
};

static sx_member *member_of(sx_replicas *rs)
{
    pthread_mutex_lock(&rs->mu);
    sx_member *m = rs->member;
    pthread_mutex_unlock(&rs->mu);
    return m;
}

/* Whether this worker's lease is valid, as its membership says now. */
static bool lease_valid(sx_replicas *rs)
{
    sx_member *m = member_of(rs);
    if (!m)
        return false;
    sx_member_view v;
    sx_member_get_view(m, &v);
    sx_partmap_release(v.map);
    return v.lease_valid;
}

void sx_replicas_attach_member(sx_replicas *rs, sx_member *member)
{
    pthread_mutex_lock(&rs->mu);
    rs->member = member;
    pthread_mutex_unlock(&rs->mu);
}

/* -------------------------------------------------------- answering writes -- */

/* Completed or failed writes are answered outside the replica's lock. */
typedef struct done_list {
    pending *head;
} done_list;

static void finish_all(done_list *dl, sx_status st, const sx_err *err)
{
    for (pending *w = dl->head, *next; w; w = next) {
        next = w->next;
        uint64_t *offsets = NULL;
        if (st == SX_OK) {
            offsets = sx_malloc((w->n + 1) * sizeof(*offsets));
            for (size_t i = 0; i < w->n; i++)
                offsets[i] = w->first + i;
        }
        w->done(w->arg, st, err, offsets, st == SX_OK ? w->n : 0);
        free(offsets);
        free(w);
    }
    dl->head = NULL;
}

/* Moves every queued and waiting write into dl (to fail them). */
static void take_all_locked(replica *r, done_list *dl)
{
    pending **tail = &dl->head;
    while (*tail)
        tail = &(*tail)->next;
    *tail = r->waiting;
    while (*tail)
        tail = &(*tail)->next;
    *tail = r->queue;
    r->waiting = r->waiting_tail = NULL;
    r->queue = r->queue_tail = NULL;
}

/* -------------------------------------------------------------- commit -- */

/* hw = min(leo, match of every ISR follower), while the ISR is big enough and
 * every ISR follower has synced in this epoch (rules 3, 4). Only rises. */
static void update_hw_locked(replica *r)
{
    if (r->role != ROLE_LEADER || r->fenced || r->nisr < r->min_isr)
        return;
    uint64_t m = sx_plog_leo(r->log);
    pthread_mutex_lock(&r->owner->mu);
    int32_t me = r->owner->me; /* stable per worker id: set by apply_map */
    pthread_mutex_unlock(&r->owner->mu);
    for (uint32_t i = 0; i < r->nisr + r->npending; i++) {
        int32_t f = i < r->nisr ? r->isr[i] : r->pending[i - r->nisr];
        if (f == me)
            continue;
        session *s = NULL;
        for (uint32_t k = 0; k < r->nsessions; k++)
            if (r->sessions[k]->follower == f)
                s = r->sessions[k];
        if (!s || !s->synced)
            return;
        if (s->match < m)
            m = s->match;
    }
    if (m > r->hw) {
        r->hw = m;
        pthread_cond_broadcast(&r->cv);
    }
}

/* ------------------------------------------------------------- appender -- */

static void expire_locked(replica *r, uint64_t now, done_list *late)
{
    /* Only queued writes are dropped; appended ones stay until applied or the
     * leadership ends, but their callers are answered at their deadline. */
    pending **pp = &r->queue;
    r->queue_tail = NULL;
    while (*pp) {
        pending *w = *pp;
        if (w->deadline_ms <= now) {
            *pp = w->next;
            w->next = late->head;
            late->head = w;
        } else {
            r->queue_tail = w;
            pp = &w->next;
        }
    }
}

static void *appender_main(void *arg)
{
    replica *r = arg;
    sx_replicas *rs = r->owner;
    pthread_mutex_lock(&r->mu);
    while (!r->stop) {
        done_list late = {0}, ok = {0};
        expire_locked(r, sx_clock_now_ms(), &late);
        if (late.head) {
            pthread_mutex_unlock(&r->mu);
            sx_err e;
            sx_err_set(&e, SX_DEADLINE_EXCEEDED,
                       "partition %u: deadline passed before the "
                       "write was appended",
                       r->p);
            finish_all(&late, SX_DEADLINE_EXCEEDED, &e);
            pthread_mutex_lock(&r->mu);
            continue;
        }
        if (r->queue && !r->fenced) {
            /* Group commit: everything queued becomes one batch, one fsync. */
            pending *batch = r->queue, *last = r->queue;
            size_t nops = last->n, bytes = 0;
            for (size_t i = 0; i < last->n; i++)
                bytes += last->ops[i].len;
            while (rs->fsync != SX_FSYNC_ALWAYS && last->next &&
                   nops + last->next->n <= BATCH_MAX_OPS && bytes < BATCH_MAX_BYTES) {
                last = last->next;
                nops += last->n;
                for (size_t i = 0; i < last->n; i++)
                    bytes += last->ops[i].len;
            }
            r->queue = last->next;
            if (!r->queue)
                r->queue_tail = NULL;
            last->next = NULL;
            uint64_t epoch = r->epoch;
            pthread_mutex_unlock(&r->mu);

            sx_log_entry *entries = sx_malloc(nops * sizeof(*entries));
            size_t k = 0;
            for (pending *w = batch; w; w = w->next)
                for (size_t i = 0; i < w->n; i++)
                    entries[k++] = (sx_log_entry){epoch, w->ops[i].data, w->ops[i].len};
            uint64_t first = sx_plog_leo(r->log) + 1;
            sx_err err = {0};
            if (sx_plog_append(r->log, entries, nops, rs->fsync != SX_FSYNC_NEVER, &err) != SX_OK) {
                /* Rule 8: never carry on after a failed write or fsync. */
                SX_LOG(SX_LOG_ERROR, "replica", "partition=%u append failed: %s; stopping", r->p,
                       err.msg);
                abort();
            }
            free(entries);
            SX_CRASH_POINT("leader-after-append");
            pthread_mutex_lock(&r->mu);
            for (pending *w = batch; w; w = w->next) {
                w->first = first;
                first += w->n;
            }
            if (r->waiting_tail)
                r->waiting_tail->next = batch;
            else
                r->waiting = batch;
            r->waiting_tail = last;
            update_hw_locked(r);
            pthread_cond_broadcast(&r->cv); /* sessions ship it */
            continue;
        }
        uint64_t applied = sx_plog_applied(r->log);
        if (applied < r->hw) {
            uint64_t hw = r->hw;
            pthread_mutex_unlock(&r->mu);
            SX_CRASH_POINT("leader-before-apply");
            sx_err err = {0};
            if (sx_plog_apply(r->log, hw, &applied, &err) != SX_OK) {
                SX_LOG(SX_LOG_ERROR, "replica", "partition=%u apply failed: %s; stopping", r->p,
                       err.msg);
                abort(); /* the log is corrupt: never serve what it cannot prove */
            }
            pthread_mutex_lock(&r->mu);
            if (applied >= r->hw)
                r->fresh_ms = sx_clock_now_ms();
            pending **tail = &ok.head;
            while (r->waiting && r->waiting->first + r->waiting->n - 1 <= applied) {
                pending *w = r->waiting;
                r->waiting = w->next;
                w->next = NULL;
                *tail = w;
                tail = &w->next;
            }
            if (!r->waiting)
                r->waiting_tail = NULL;
            pthread_cond_broadcast(&r->cv); /* readers waiting for applied */
            pthread_mutex_unlock(&r->mu);
            if (rs->on_applied)
                rs->on_applied(rs->on_applied_arg);
            finish_all(&ok, SX_OK, NULL);
            pthread_mutex_lock(&r->mu);
            continue;
        }
        sx_cond_wait_ms(&r->cv, &r->mu, 50);
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

/* A consistent copy of a log's epoch table, in arena (or malloc'd when arena
 * is NULL): the table may grow between asking its size and copying it. */
static sx_epoch_start *copy_epochs(sx_plog *log, sx_arena *arena, size_t *n)
{
    for (;;) {
        size_t want = sx_plog_epochs(log, NULL, 0) + 4;
        sx_epoch_start *e =
            arena ? sx_arena_alloc(arena, want * sizeof(*e)) : sx_malloc(want * sizeof(*e));
        size_t got = sx_plog_epochs(log, e, want);
        if (got <= want) {
            *n = got;
            return e;
        }
        if (!arena)
            free(e);
    }
}

static void drop_pending_locked(replica *r, int32_t f)
{
    for (uint32_t i = 0; i < r->npending; i++) {
        if (r->pending[i] == f) {
            r->pending[i] = r->pending[--r->npending];
            return;
        }
    }
}

/* -------------------------------------------------------------- sessions -- */

static void ask_shrink(session *s, uint64_t epoch, uint64_t isr_version, const int32_t *isr,
                       uint32_t nisr)
{
    replica *r = s->r;
    sx_replicas *rs = r->owner;
    int32_t next[SX_MAX_REPLICAS];
    uint32_t n = 0;
    for (uint32_t i = 0; i < nisr; i++)
        if (isr[i] != s->follower)
            next[n++] = isr[i];
    Shardex__Internal__V1__ChangeIsrRequest req = SHARDEX__INTERNAL__V1__CHANGE_ISR_REQUEST__INIT;
    req.worker_id = rs->worker_id;
    req.partition = r->p;
    req.epoch = epoch;
    req.isr_version = isr_version;
    req.isr = next;
    req.n_isr = n;
    ProtobufCMessage *resp = NULL;
    sx_err err = {0};
    sx_rpc_call_opts o = {.timeout_ms = 500};
    sx_status st =
        sx_rpc_invoke(rs->rpc, rs->coordinator, COORD_SVC, "ChangeIsr", &req.base, &resp, &o, &err);
    if (st != SX_OK) {
        SX_LOG(SX_LOG_WARN, "replica", "partition=%u isr shrink refused follower=%d: %s", r->p,
               s->follower, err.msg);
        return;
    }
    Shardex__Internal__V1__ChangeIsrResponse *cr = (void *)resp;
    SX_LOG(SX_LOG_WARN, "replica", "partition=%u follower=%d dropped from the isr (lagging)", r->p,
           s->follower);
    pthread_mutex_lock(&r->mu);
    drop_pending_locked(r, s->follower);
    const Shardex__Internal__V1__LogPartition *lp = cr->partition;
    if (lp && lp->epoch == r->epoch && lp->isr_version > r->isr_version &&
        lp->n_isr <= SX_MAX_REPLICAS) {
        r->isr_version = lp->isr_version;
        r->nisr = (uint32_t)lp->n_isr;
        memcpy(r->isr, lp->isr, lp->n_isr * sizeof(int32_t));
        update_hw_locked(r);
    }
    pthread_mutex_unlock(&r->mu);
    sx_rpc_free(resp);
}

static void *session_main(void *arg)
{
    session *s = arg;
    replica *r = s->r;
    sx_replicas *rs = r->owner;
    sx_arena arena = {0};
    pthread_mutex_lock(&r->mu);
    s->last_ack_ms = sx_clock_now_ms();
    while (!s->stop) {
        uint64_t leo = sx_plog_leo(r->log), hw = r->hw, epoch = r->epoch;
        uint64_t now = sx_clock_now_ms();
        bool idle = s->synced && s->match >= leo && s->sent_commit == hw;
        if (idle && now - s->last_send_ms < SESSION_IDLE_MS) {
            sx_cond_wait_ms(&r->cv, &r->mu, SESSION_IDLE_MS - (now - s->last_send_ms));
            continue;
        }
        /* A follower in the ISR that lags too long is dropped through the coordinator. */
        bool in_isr = sx_clustermap_has(r->isr, r->nisr, s->follower) ||
                      sx_clustermap_has(r->pending, r->npending, s->follower);
        /* A refused request (a concurrent ISR change, a map we had not seen) is
         * asked again with whatever the map says by then. */
        if (in_isr && s->match < leo && now - s->last_ack_ms > rs->lag_timeout_ms &&
            now - s->shrink_asked_ms > SHRINK_RETRY_MS) {
            s->shrink_asked_ms = now;
            int32_t isr[SX_MAX_REPLICAS];
            uint32_t nisr = r->nisr;
            memcpy(isr, r->isr, sizeof(isr));
            uint64_t isr_version = r->isr_version;
            pthread_mutex_unlock(&r->mu);
            ask_shrink(s, epoch, isr_version, isr, nisr);
            pthread_mutex_lock(&r->mu);
            /* Count the retry interval from the answer, so that a slow or absent
             * coordinator still leaves time to keep shipping (and being fenced). */
            s->shrink_asked_ms = sx_clock_now_ms();
        }
        uint64_t prev = s->synced ? s->match : leo;
        pthread_mutex_unlock(&r->mu);

        Shardex__Internal__V1__AppendRequest req = SHARDEX__INTERNAL__V1__APPEND_REQUEST__INIT;
        req.partition = r->p;
        req.epoch = epoch;
        req.leader_id = rs->worker_id;
        req.prev_offset = prev;
        req.commit_offset = hw;
        sx_plog_epoch_at(r->log, prev, &req.prev_epoch, NULL);
        sx_log_entry *entries = NULL;
        size_t n = 0;
        if (s->synced && prev < leo) {
            entries = sx_malloc(2000 * sizeof(*entries));
            sx_plog_read(r->log, prev + 1, 2000, BATCH_MAX_BYTES, &arena, entries, &n, NULL);
            req.entries = sx_arena_alloc(&arena, (n + 1) * sizeof(*req.entries));
            for (size_t i = 0; i < n; i++) {
                Shardex__Internal__V1__AppendEntry *e = sx_arena_alloc(&arena, sizeof(*e));
                shardex__internal__v1__append_entry__init(e);
                e->epoch = entries[i].epoch;
                e->op.data = (uint8_t *)entries[i].op;
                e->op.len = entries[i].op_len;
                req.entries[i] = e;
            }
            req.n_entries = n;
        }
        ProtobufCMessage *resp = NULL;
        sx_err err = {0};
        sx_rpc_call_opts o = {.timeout_ms = APPEND_TIMEOUT_MS};
        sx_status st =
            sx_rpc_invoke(rs->rpc, s->addr, REPL_SVC, "Append", &req.base, &resp, &o, &err);
        free(entries);
        sx_arena_free(&arena);

        pthread_mutex_lock(&r->mu);
        s->last_send_ms = sx_clock_now_ms();
        if (s->stop) {
            sx_rpc_free(resp);
            break;
        }
        if (st == SX_OK) {
            Shardex__Internal__V1__AppendResponse *ar = (void *)resp;
            if (ar->mismatch) {
                /* Whole tables on both sides: a cut table would make its last
                 * epoch seem to run to the log end. */
                size_t no = 0;
                sx_epoch_start *ours = copy_epochs(r->log, NULL, &no);
                size_t nt = ar->n_epochs;
                sx_epoch_start *theirs = sx_malloc((nt + 1) * sizeof(*theirs));
                for (size_t i = 0; i < nt; i++)
                    theirs[i] = (sx_epoch_start){ar->epochs[i]->epoch, ar->epochs[i]->start_offset};
                s->match = sx_plog_common_prefix(ours, no, sx_plog_leo(r->log), theirs, nt,
                                                 ar->log_end_offset);
                free(ours);
                free(theirs);
                s->synced = true;
                SX_LOG(SX_LOG_INFO, "replica",
                       "partition=%u follower=%d diverges after offset=%" PRIu64
                       " (its leo=%" PRIu64 ")",
                       r->p, s->follower, s->match, ar->log_end_offset);
            } else {
                s->match = prev + n;
                s->synced = true;
                s->sent_commit = hw;
                s->last_ack_ms = s->last_send_ms;
                s->shrink_asked_ms = 0;
                update_hw_locked(r);
            }
        } else if (st == SX_FAILED_PRECONDITION) {
            /* The follower knows a newer epoch: someone else leads now (rule 2). */
            if (!r->fenced)
                SX_LOG(SX_LOG_WARN, "replica",
                       "partition=%u epoch=%" PRIu64 " fenced by "
                       "follower=%d: %s",
                       r->p, r->epoch, s->follower, err.msg);
            r->fenced = true;
            done_list dl = {0};
            take_all_locked(r, &dl);
            pthread_mutex_unlock(&r->mu);
            sx_err e;
            sx_err_set(&e, SX_ABORTED, "partition %u: a newer leader exists", r->p);
            finish_all(&dl, SX_ABORTED, &e);
            pthread_mutex_lock(&r->mu);
            sx_cond_wait_ms(&r->cv, &r->mu, RETRY_MS);
        } else {
            sx_cond_wait_ms(&r->cv, &r->mu, RETRY_MS);
        }
        sx_rpc_free(resp);
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

/* ---------------------------------------------------------------- roles -- */

static void stop_leading(replica *r)
{
    pthread_mutex_lock(&r->mu);
    r->stop = true;
    for (uint32_t i = 0; i < r->nsessions; i++)
        r->sessions[i]->stop = true;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    if (r->appender_running)
        pthread_join(r->appender, NULL);
    r->appender_running = false;
    for (uint32_t i = 0; i < r->nsessions; i++) {
        pthread_join(r->sessions[i]->thread, NULL);
        free(r->sessions[i]);
    }
    pthread_mutex_lock(&r->mu);
    r->nsessions = 0;
    done_list dl = {0};
    take_all_locked(r, &dl);
    r->stop = false;
    pthread_mutex_unlock(&r->mu);
    sx_err e;
    sx_err_set(&e, SX_ABORTED, "partition %u: this worker no longer leads it", r->p);
    finish_all(&dl, SX_ABORTED, &e);
}

static void start_session(replica *r, int32_t follower, const char *addr, uint64_t incarnation)
{
    session *s = sx_calloc(1, sizeof(*s));
    s->r = r;
    s->follower = follower;
    s->incarnation = incarnation;
    snprintf(s->addr, sizeof(s->addr), "%s", addr);
    r->sessions[r->nsessions++] = s;
    pthread_create(&s->thread, NULL, session_main, s);
    pthread_setname_np(s->thread, "repl-session");
}

static bool same_followers(const replica *r, const Shardex__Internal__V1__ClusterMap *m,
                           const Shardex__Internal__V1__LogPartition *lp, int32_t me)
{
    uint32_t n = 0;
    for (size_t k = 0; k < lp->n_replicas; k++) {
        int32_t f = lp->replicas[k];
        if (f == me)
            continue;
        n++;
        bool found = false;
        for (uint32_t i = 0; i < r->nsessions; i++)
            found |= r->sessions[i]->follower == f &&
                     r->sessions[i]->incarnation == m->workers[f]->incarnation &&
                     strcmp(r->sessions[i]->addr, m->workers[f]->address) == 0;
        if (!found)
            return false;
    }
    return n == r->nsessions;
}

static void become_leader(replica *r, const Shardex__Internal__V1__ClusterMap *m,
                          const Shardex__Internal__V1__LogPartition *lp, int32_t me)
{
    sx_err err = {0};
    if (sx_plog_begin_epoch(r->log, lp->epoch, &err) != SX_OK) {
        SX_LOG(SX_LOG_ERROR, "replica", "partition=%u cannot lead at epoch=%" PRIu64 ": %s", r->p,
               lp->epoch, err.msg);
        return;
    }
    pthread_mutex_lock(&r->mu);
    r->role = ROLE_LEADER;
    r->fenced = false;
    r->hw = sx_plog_commit(r->log); /* not our leo: rule 7 */
    if (r->hw < sx_plog_applied(r->log))
        r->hw = sx_plog_applied(r->log);
    r->epoch_start = sx_plog_leo(r->log) + 1;
    r->known_epoch = lp->epoch;
    for (size_t k = 0; k < lp->n_replicas; k++)
        if (lp->replicas[k] != me)
            start_session(r, lp->replicas[k], m->workers[lp->replicas[k]]->address,
                          m->workers[lp->replicas[k]]->incarnation);
    pthread_create(&r->appender, NULL, appender_main, r);
    pthread_setname_np(r->appender, "repl-append");
    r->appender_running = true;
    pthread_mutex_unlock(&r->mu);
    SX_LOG(SX_LOG_INFO, "replica",
           "partition=%u leading epoch=%" PRIu64 " leo=%" PRIu64 " commit=%" PRIu64, r->p,
           lp->epoch, sx_plog_leo(r->log), r->hw);
}

/* Opens p's log with its indexes as the observer of every apply: the
 * documents, local index entries and outbox of an offset are one batch. */
static sx_status open_partition(sx_replicas *rs, const char *dir, uint32_t p, sx_plog **log,
                                sx_pindex **ix, sx_err *err)
{
    *ix = sx_pindex_create();
    sx_plog_opts po = {.cache = rs->cache, .observer = sx_pindex_observer(*ix)};
    sx_status st = sx_mkdirs(dir, err);
    if (st == SX_OK)
        st = sx_plog_open(dir, p, &po, log, err);
    if (st == SX_OK && (st = sx_pindex_load(*ix, *log, err)) != SX_OK) {
        SX_LOG(SX_LOG_ERROR, "replica", "partition=%u cannot load its indexes: %s", p, err->msg);
        sx_plog_close(*log);
        *log = NULL;
    }
    if (st != SX_OK) {
        sx_pindex_close(*ix);
        *ix = NULL;
    }
    return st;
}

static replica *open_replica(sx_replicas *rs, uint32_t p)
{
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s/partitions/p%04u", rs->data_dir, p);
    sx_plog *log = NULL;
    sx_pindex *ix = NULL;
    sx_err err = {0};
    sx_status st = open_partition(rs, dir, p, &log, &ix, &err);
    if (st == SX_DATA_LOSS) {
        /* Rule 8 and row 9: never serve a corrupt replica. Keep it aside for
         * inspection and start empty: registering again took this worker out
         * of every ISR it shared with a live member, so it copies the log from
         * the leader and rejoins only once caught up. */
        char aside[4200];
        snprintf(aside, sizeof(aside), "%s.corrupt-%llu", dir,
                 (unsigned long long)sx_clock_wall_ms());
        SX_LOG(SX_LOG_ERROR, "replica",
               "partition=%u corrupt store, moved to %s and started "
               "empty: %s",
               p, aside, err.msg);
        if (rename(dir, aside) == 0) {
            sx_err_clear(&err);
            st = open_partition(rs, dir, p, &log, &ix, &err);
        }
    }
    if (st != SX_OK) {
        SX_LOG(SX_LOG_ERROR, "replica", "partition=%u cannot open %s: %s", p, dir, err.msg);
        return NULL;
    }
    replica *r = sx_calloc(1, sizeof(*r));
    r->owner = rs;
    r->p = p;
    r->log = log;
    r->ix = ix;
    r->fresh_ms = sx_clock_now_ms();
    pthread_mutex_init(&r->mu, NULL);
    sx_cond_init_monotonic(&r->cv);
    r->known_epoch = sx_plog_max_epoch(log);
    return r;
}

static void apply_map(sx_replicas *rs, const sx_partmap *pm)
{
    const Shardex__Internal__V1__ClusterMap *m = sx_partmap_msg(pm);
    int32_t me = sx_partmap_self(pm);
    pthread_mutex_lock(&rs->mu);
    rs->me = me;
    if (!rs->reps) {
        rs->nparts = (uint32_t)m->n_partitions;
        rs->reps = sx_calloc(rs->nparts + 1, sizeof(*rs->reps));
    }
    pthread_mutex_unlock(&rs->mu);
    for (uint32_t p = 0; p < rs->nparts && p < m->n_partitions; p++) {
        const Shardex__Internal__V1__LogPartition *lp = m->partitions[p];
        bool hosted = me >= 0 && sx_clustermap_has(lp->replicas, (uint32_t)lp->n_replicas, me);
        replica *r = rs->reps[p];
        if (!r && !hosted)
            continue;
        if (!r) {
            r = open_replica(rs, p);
            if (!r)
                continue;
            pthread_mutex_lock(&rs->mu);
            rs->reps[p] = r;
            pthread_mutex_unlock(&rs->mu);
        }
        int want = !hosted ? ROLE_NONE : lp->leader == me ? ROLE_LEADER : ROLE_FOLLOWER;
        bool relead = want == ROLE_LEADER && (r->role != ROLE_LEADER || r->epoch != lp->epoch ||
                                              !same_followers(r, m, lp, me));
        if (r->role == ROLE_LEADER && (want != ROLE_LEADER || relead))
            stop_leading(r);
        pthread_mutex_lock(&r->mu);
        bool new_epoch = r->epoch != lp->epoch;
        if (want != ROLE_LEADER)
            r->role = want;
        r->epoch = lp->epoch;
        if (lp->epoch > r->known_epoch && want != ROLE_LEADER)
            r->known_epoch = lp->epoch;
        r->isr_version = lp->isr_version;
        r->nisr = lp->n_isr <= SX_MAX_REPLICAS ? (uint32_t)lp->n_isr : 0;
        memcpy(r->isr, lp->isr, r->nisr * sizeof(int32_t));
        r->min_isr = m->settings ? m->settings->min_isr : 1;
        /* Pending additions end when the map shows them in the ISR, or when
         * they are no longer replicas; a new epoch starts with none. They
         * survive a restart of our sessions within the epoch: a request may
         * still be on its way to the coordinator. */
        if (new_epoch || want != ROLE_LEADER)
            r->npending = 0;
        for (uint32_t i = 0; i < r->npending;) {
            int32_t f = r->pending[i];
            if (sx_clustermap_has(r->isr, r->nisr, f) ||
                !sx_clustermap_has(lp->replicas, (uint32_t)lp->n_replicas, f))
                r->pending[i] = r->pending[--r->npending];
            else
                i++;
        }
        pthread_mutex_unlock(&r->mu);
        if (relead) {
            become_leader(r, m, lp, me);
        } else if (want == ROLE_LEADER) {
            pthread_mutex_lock(&r->mu);
            update_hw_locked(r); /* the isr may have shrunk: commit may move */
            pthread_mutex_unlock(&r->mu);
        }
    }
}

static void *manager_main(void *arg)
{
    sx_replicas *rs = arg;
    pthread_mutex_lock(&rs->mu);
    while (!rs->stop) {
        if (!rs->next_map) {
            pthread_cond_wait(&rs->cv, &rs->mu);
            continue;
        }
        sx_partmap *m = rs->next_map;
        rs->next_map = NULL;
        pthread_mutex_unlock(&rs->mu);
        apply_map(rs, m);
        sx_partmap_release(m);
        pthread_mutex_lock(&rs->mu);
    }
    pthread_mutex_unlock(&rs->mu);
    return NULL;
}

void sx_replicas_on_map(sx_replicas *rs, sx_partmap *map)
{
    pthread_mutex_lock(&rs->mu);
    sx_partmap_release(rs->next_map); /* superseded before the manager saw it */
    rs->next_map = sx_partmap_acquire(map);
    pthread_cond_signal(&rs->cv);
    pthread_mutex_unlock(&rs->mu);
}

/* -------------------------------------------------------------- lookups -- */

static replica *get_replica(sx_replicas *rs, uint32_t p)
{
    pthread_mutex_lock(&rs->mu);
    replica *r = p < rs->nparts ? rs->reps[p] : NULL;
    pthread_mutex_unlock(&rs->mu);
    return r; /* replicas live as long as sx_replicas */
}

bool sx_replicas_caught_up(void *arg, uint32_t p, int32_t follower, uint64_t incarnation)
{
    replica *r = get_replica(arg, p);
    if (!r)
        return false;
    bool ok = false;
    pthread_mutex_lock(&r->mu);
    if (r->role == ROLE_LEADER && !r->fenced) {
        uint64_t need = r->hw > r->epoch_start - 1 ? r->hw : r->epoch_start - 1;
        for (uint32_t i = 0; i < r->nsessions; i++) {
            session *s = r->sessions[i];
            /* Rule 3, on fresh knowledge: a follower that stopped answering
             * keeps the match it had, which would re-admit it at once. */
            /* ...and about the process the map names: a restarted follower's
             * new process has proven nothing yet. */
            if (s->follower == follower && s->incarnation == incarnation)
                ok = s->synced && s->match >= need &&
                     sx_clock_now_ms() - s->last_ack_ms <= r->owner->lag_timeout_ms / 2;
        }
        /* The caller asks the coordinator next: from now on commits wait for it. */
        if (ok && !sx_clustermap_has(r->pending, r->npending, follower) &&
            r->npending < SX_MAX_REPLICAS)
            r->pending[r->npending++] = follower;
    }
    pthread_mutex_unlock(&r->mu);
    return ok;
}

size_t sx_replicas_reports(void *arg, Shardex__Internal__V1__ReplicaReport *out, size_t cap)
{
    sx_replicas *rs = arg;
    size_t n = 0;
    for (uint32_t p = 0; p < rs->nparts && n < cap; p++) {
        replica *r = get_replica(rs, p);
        if (!r)
            continue;
        shardex__internal__v1__replica_report__init(&out[n]);
        out[n].partition = p;
        out[n].log_end_offset = sx_plog_leo(r->log);
        out[n].applied_offset = sx_plog_applied(r->log);
        pthread_mutex_lock(&r->mu);
        out[n].commit_offset = r->role == ROLE_LEADER ? r->hw : r->leader_commit;
        pthread_mutex_unlock(&r->mu);
        n++;
    }
    return n;
}

/* ---------------------------------------------------------------- write -- */

void sx_replicas_write(sx_replicas *rs, uint32_t p, ProtobufCBinaryData *ops, size_t n,
                       uint64_t deadline_ms, sx_write_done_fn done, void *arg)
{
    sx_err err = {0};
    replica *r = get_replica(rs, p);
    if (!r) {
        sx_err_set(&err, SX_ABORTED, "partition %u: not hosted by this worker", p);
        done(arg, err.code, &err, NULL, 0);
        return;
    }
    bool lease = lease_valid(rs);
    pthread_mutex_lock(&r->mu);
    if (r->role != ROLE_LEADER || r->fenced || !lease || !r->appender_running) {
        pthread_mutex_unlock(&r->mu);
        sx_err_set(&err, SX_ABORTED, "partition %u: this worker does not lead it now", p);
        done(arg, err.code, &err, NULL, 0);
        return;
    }
    if (r->nisr < r->min_isr) {
        uint32_t nisr = r->nisr, min = r->min_isr;
        pthread_mutex_unlock(&r->mu);
        sx_err_set(&err, SX_FAILED_PRECONDITION,
                   "partition %u has %u in-sync replica%s; writes need %u (min_isr)", p, nisr,
                   nisr == 1 ? "" : "s", min);
        done(arg, err.code, &err, NULL, 0);
        return;
    }
    pending *w = sx_calloc(1, sizeof(*w));
    w->ops = ops;
    w->n = n;
    w->deadline_ms = deadline_ms;
    w->done = done;
    w->arg = arg;
    if (r->queue_tail)
        r->queue_tail->next = w;
    else
        r->queue = w;
    r->queue_tail = w;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

/* --------------------------------------------------------------- append -- */

sx_status sx_replicas_append(sx_replicas *rs, const Shardex__Internal__V1__AppendRequest *req,
                             Shardex__Internal__V1__AppendResponse *resp, sx_arena *arena,
                             sx_err *err)
{
    replica *r = get_replica(rs, req->partition);
    if (!r)
        return sx_err_set(err, SX_UNAVAILABLE, "partition %u: not (yet) hosted here",
                          req->partition);
    pthread_mutex_lock(&r->mu);
    sx_status st = SX_OK;
    if (req->epoch < r->known_epoch || req->epoch < r->epoch) {
        st = sx_err_set(err, SX_FAILED_PRECONDITION,
                        "partition %u: epoch %" PRIu64 " is stale; this replica knows %" PRIu64,
                        req->partition, req->epoch,
                        r->known_epoch > r->epoch ? r->known_epoch : r->epoch);
        goto out;
    }
    if (r->role == ROLE_LEADER) {
        /* A newer leader exists and our map has not said so yet: stop taking
         * writes, and let the sender retry once the map has moved us. */
        r->fenced = true;
        st = sx_err_set(err, SX_UNAVAILABLE,
                        "partition %u: still leading epoch %" PRIu64 "; waiting for the map",
                        req->partition, r->epoch);
        goto out;
    }
    if (req->epoch > r->known_epoch)
        r->known_epoch = req->epoch;
    if (req->epoch != r->verified_epoch) {
        r->verified_epoch = req->epoch;
        r->verified = 0; /* nothing is verified in a new epoch until prev matches */
    }
    uint64_t leo = sx_plog_leo(r->log), prev_epoch = 0;
    if (req->prev_offset > leo ||
        sx_plog_epoch_at(r->log, req->prev_offset, &prev_epoch, NULL) != SX_OK ||
        prev_epoch != req->prev_epoch) {
        resp->mismatch = true;
        resp->log_end_offset = leo;
        size_t n = 0;
        sx_epoch_start *eps = copy_epochs(r->log, arena, &n);
        resp->epochs = sx_arena_alloc(arena, (n + 1) * sizeof(*resp->epochs));
        for (size_t i = 0; i < n; i++) {
            Shardex__Internal__V1__EpochStart *e = sx_arena_alloc(arena, sizeof(*e));
            shardex__internal__v1__epoch_start__init(e);
            e->epoch = eps[i].epoch;
            e->start_offset = eps[i].start_offset;
            resp->epochs[i] = e;
        }
        resp->n_epochs = n;
        resp->applied_offset = sx_plog_applied(r->log);
        goto out;
    }
    /* Skip what we already hold; truncate at the first conflict; append the rest. */
    size_t i = 0;
    for (; i < req->n_entries; i++) {
        uint64_t off = req->prev_offset + 1 + i, have = 0;
        if (off > leo)
            break;
        sx_plog_epoch_at(r->log, off, &have, NULL);
        if (have != req->entries[i]->epoch) {
            if ((st = sx_plog_truncate(r->log, off - 1, err)) != SX_OK)
                goto out;
            break;
        }
    }
    if (i < req->n_entries) {
        SX_CRASH_POINT("follower-before-append");
        size_t n = req->n_entries - i;
        sx_log_entry *es = sx_malloc(n * sizeof(*es));
        for (size_t k = 0; k < n; k++) {
            const Shardex__Internal__V1__AppendEntry *e = req->entries[i + k];
            es[k] = (sx_log_entry){e->epoch, e->op.data, e->op.len};
        }
        st = sx_plog_append(r->log, es, n, rs->fsync != SX_FSYNC_NEVER, err);
        free(es);
        if (st == SX_INVALID_ARGUMENT)
            goto out; /* entries the log's rules refuse: the sender's problem, nothing written */
        if (st != SX_OK) {
            SX_LOG(SX_LOG_ERROR, "replica", "partition=%u append failed: %s; stopping",
                   req->partition, err->msg);
            abort(); /* rule 8: a failed write or fsync is fatal */
        }
        SX_CRASH_POINT("follower-after-append");
    }
    uint64_t verified = req->prev_offset + req->n_entries;
    if (verified > r->verified)
        r->verified = verified;
    if (req->commit_offset > r->leader_commit)
        r->leader_commit = req->commit_offset;
    /* Rule 7: apply only what this leader committed and verified with us in
     * this epoch; a commit offset from another epoch says nothing about our tail. */
    uint64_t upto = req->commit_offset < r->verified ? req->commit_offset : r->verified;
    if (upto > sx_plog_applied(r->log) &&
        (st = sx_plog_apply(r->log, upto, NULL, err)) != SX_OK) {
        SX_LOG(SX_LOG_ERROR, "replica", "partition=%u apply failed: %s; stopping", req->partition,
               err->msg);
        abort();
    }
    resp->log_end_offset = sx_plog_leo(r->log);
    resp->applied_offset = sx_plog_applied(r->log);
out:
    pthread_mutex_unlock(&r->mu);
    return st;
}

/* ----------------------------------------------------------------- read -- */

static void *arena_alloc_cb(void *a, size_t n)
{
    return sx_arena_alloc(a, n);
}
static void arena_free_cb(void *a, void *p)
{
    (void)a;
    (void)p; /* freed with the arena */
}

sx_status sx_replicas_read(sx_replicas *rs, uint32_t p, const char *id, uint64_t after_offset,
                           uint64_t deadline_ms, sx_arena *arena, Shardex__V1__GetResponse *resp,
                           sx_err *err)
{
    sx_status st = sx_replicas_wait_applied(rs, p, after_offset, deadline_ms, err);
    if (st != SX_OK)
        return st;
    replica *r = get_replica(rs, p);
    bool found = false;
    uint64_t version = 0;
    sx_buf doc = {0};
    st = sx_plog_get_doc(r->log, id, strlen(id), &found, &version, &doc, err);
    if (st == SX_OK && found) {
        ProtobufCAllocator alloc = {arena_alloc_cb, arena_free_cb, arena};
        resp->doc = shardex__v1__document__unpack(&alloc, doc.len, doc.data);
        if (!resp->doc)
            st = sx_err_set(err, SX_DATA_LOSS, "partition %u: stored document %s does not decode",
                            p, id);
        resp->found = resp->doc != NULL;
        Shardex__V1__WriteToken *t = sx_arena_alloc(arena, sizeof(*t));
        shardex__v1__write_token__init(t);
        t->partition = p;
        t->offset = version;
        resp->version = t;
    }
    sx_buf_free(&doc);
    return st;
}

sx_status sx_replicas_wait_applied(sx_replicas *rs, uint32_t p, uint64_t after_offset,
                                   uint64_t deadline_ms, sx_err *err)
{
    replica *r = get_replica(rs, p);
    bool lease = lease_valid(rs);
    if (!r || !lease)
        return sx_err_set(err, SX_ABORTED, "partition %u: this worker does not lead it now", p);
    pthread_mutex_lock(&r->mu);
    for (;;) {
        if (r->role != ROLE_LEADER || r->fenced) {
            pthread_mutex_unlock(&r->mu);
            return sx_err_set(err, SX_ABORTED, "partition %u: this worker does not lead it now", p);
        }
        uint64_t applied = sx_plog_applied(r->log);
        if (applied >= after_offset)
            break;
        uint64_t now = sx_clock_now_ms();
        if (now >= deadline_ms) {
            pthread_mutex_unlock(&r->mu);
            return sx_err_set(err, SX_DEADLINE_EXCEEDED,
                              "partition %u: offset %" PRIu64
                              " not applied in time (applied %" PRIu64 ")",
                              p, after_offset, applied);
        }
        sx_cond_wait_ms(&r->cv, &r->mu, deadline_ms - now < 100 ? deadline_ms - now : 100);
    }
    pthread_mutex_unlock(&r->mu);
    return SX_OK;
}

bool sx_replicas_view(sx_replicas *rs, uint32_t p, sx_replica_view *out)
{
    replica *r = get_replica(rs, p);
    memset(out, 0, sizeof(*out));
    if (!r)
        return false;
    bool lease = lease_valid(rs);
    pthread_mutex_lock(&r->mu);
    out->log = r->log;
    out->ix = r->ix;
    out->leading = lease && r->role == ROLE_LEADER && !r->fenced;
    out->epoch = r->epoch;
    out->commit = r->role == ROLE_LEADER ? r->hw : r->leader_commit;
    out->applied = sx_plog_applied(r->log);
    uint64_t now = sx_clock_now_ms();
    out->stale_ms = out->applied >= out->commit || now < r->fresh_ms ? 0 : now - r->fresh_ms;
    pthread_mutex_unlock(&r->mu);
    return true;
}

uint32_t sx_replicas_partitions(sx_replicas *rs)
{
    pthread_mutex_lock(&rs->mu);
    uint32_t n = rs->nparts;
    pthread_mutex_unlock(&rs->mu);
    return n;
}

/* ---------------------------------------------------------------- admin -- */

size_t sx_replicas_states(sx_replicas *rs, sx_arena *arena,
                          Shardex__Internal__V1__ReplicaState ***out)
{
    static const char *const roles[] = {"none", "follower", "leader"};
    *out = sx_arena_alloc(arena, (rs->nparts + 1) * sizeof(**out));
    size_t n = 0;
    for (uint32_t p = 0; p < rs->nparts; p++) {
        replica *r = get_replica(rs, p);
        if (!r)
            continue;
        Shardex__Internal__V1__ReplicaState *st = sx_arena_alloc(arena, sizeof(*st));
        shardex__internal__v1__replica_state__init(st);
        st->partition = p;
        pthread_mutex_lock(&r->mu);
        st->role = (char *)roles[r->role];
        st->epoch = r->epoch;
        st->commit_offset = r->role == ROLE_LEADER ? r->hw : r->leader_commit;
        st->fenced = r->fenced;
        pthread_mutex_unlock(&r->mu);
        st->log_end_offset = sx_plog_leo(r->log);
        st->applied_offset = sx_plog_applied(r->log);
        sx_plog_counters(r->log, &st->appends, &st->appended_entries);
        (*out)[n++] = st;
    }
    return n;
}

sx_status sx_replicas_read_log(sx_replicas *rs, uint32_t p, uint64_t from, uint32_t max,
                               sx_arena *arena, Shardex__Internal__V1__ReadLogResponse *out,
                               sx_err *err)
{
    replica *r = get_replica(rs, p);
    if (!r)
        return sx_err_set(err, SX_NOT_FOUND, "partition %u: not hosted here", p);
    if (max == 0 || max > 10000)
        max = 10000;
    if (from == 0)
        from = 1;
    sx_log_entry *es = sx_arena_alloc(arena, max * sizeof(*es));
    size_t n = 0;
    sx_status st = sx_plog_read(r->log, from, max, 8u << 20, arena, es, &n, err);
    if (st != SX_OK)
        return st;
    out->entries = sx_arena_alloc(arena, (n + 1) * sizeof(*out->entries));
    for (size_t i = 0; i < n; i++) {
        Shardex__Internal__V1__AppendEntry *e = sx_arena_alloc(arena, sizeof(*e));
        shardex__internal__v1__append_entry__init(e);
        e->epoch = es[i].epoch;
        e->op.data = (uint8_t *)es[i].op;
        e->op.len = es[i].op_len;
        out->entries[i] = e;
    }
    out->n_entries = n;
    out->log_end_offset = sx_plog_leo(r->log);
    size_t ne = 0;
    sx_epoch_start *eps = copy_epochs(r->log, arena, &ne);
    out->epochs = sx_arena_alloc(arena, (ne + 1) * sizeof(*out->epochs));
    for (size_t i = 0; i < ne; i++) {
        Shardex__Internal__V1__EpochStart *e = sx_arena_alloc(arena, sizeof(*e));
        shardex__internal__v1__epoch_start__init(e);
        e->epoch = eps[i].epoch;
        e->start_offset = eps[i].start_offset;
        out->epochs[i] = e;
    }
    out->n_epochs = ne;
    return SX_OK;
}

typedef struct scan_ctx {
    sx_arena *arena;
    Shardex__Internal__V1__ScanDocsResponse *out;
    size_t cap;
    bool bad;
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
    ProtobufCAllocator alloc = {arena_alloc_cb, arena_free_cb, sc->arena};
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

sx_status sx_replicas_scan_docs(sx_replicas *rs, uint32_t p, sx_arena *arena,
                                Shardex__Internal__V1__ScanDocsResponse *out, sx_err *err)
{
    replica *r = get_replica(rs, p);
    if (!r)
        return sx_err_set(err, SX_NOT_FOUND, "partition %u: not hosted here", p);
    scan_ctx sc = {.arena = arena, .out = out};
    /* The snapshot and the applied offset taken together: exactly that position. */
    const sx_snapshot *snap = sx_plog_snapshot(r->log, &out->applied_offset);
    sx_status st = sx_plog_scan_docs_at(r->log, snap, scan_one, &sc, err);
    sx_store_release_snapshot(sx_plog_store(r->log), snap);
    if (st == SX_OK && sc.bad)
        st = sx_err_set(err, SX_DATA_LOSS, "partition %u: a stored document does not decode", p);
    return st;
}

/* ------------------------------------------------------------- lifecycle -- */

sx_status sx_replicas_create(const sx_replicas_opts *opts, sx_replicas **out, sx_err *err)
{
    (void)err;
    sx_replicas *rs = sx_calloc(1, sizeof(*rs));
    rs->data_dir = sx_strdup(opts->data_dir);
    rs->worker_id = sx_strdup(opts->worker_id);
    rs->coordinator = sx_strdup(opts->coordinator);
    rs->rpc = opts->rpc;
    rs->member = opts->member;
    rs->fsync = opts->fsync;
    rs->lag_timeout_ms = opts->lag_timeout_ms ? opts->lag_timeout_ms : 2000;
    rs->on_applied = opts->on_applied;
    rs->on_applied_arg = opts->on_applied_arg;
    rs->cache = sx_store_cache_create(32u << 20); /* shared by every partition's store */
    rs->me = -1;
    pthread_mutex_init(&rs->mu, NULL);
    pthread_cond_init(&rs->cv, NULL);
    pthread_create(&rs->manager, NULL, manager_main, rs);
    pthread_setname_np(rs->manager, "repl-manager");
    *out = rs;
    return SX_OK;
}

void sx_replicas_destroy(sx_replicas *rs)
{
    if (!rs)
        return;
    pthread_mutex_lock(&rs->mu);
    rs->stop = true;
    pthread_cond_broadcast(&rs->cv);
    pthread_mutex_unlock(&rs->mu);
    pthread_join(rs->manager, NULL);
    sx_partmap_release(rs->next_map);
    for (uint32_t p = 0; p < rs->nparts; p++) {
        replica *r = rs->reps[p];
        if (!r)
            continue;
        if (r->role == ROLE_LEADER)
            stop_leading(r);
        sx_plog_close(r->log); /* then its observer */
        sx_pindex_close(r->ix);
        pthread_mutex_destroy(&r->mu);
        pthread_cond_destroy(&r->cv);
        free(r);
    }
    free(rs->reps);
    sx_store_cache_destroy(rs->cache);
    pthread_mutex_destroy(&rs->mu);
    pthread_cond_destroy(&rs->cv);
    free(rs->data_dir);
    free(rs->worker_id);
    free(rs->coordinator);
    free(rs);
}
