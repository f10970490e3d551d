/* replica.c: the driver of log replication (see replica.h for the contract,
 * repcore.h for the protocol's decisions). Threads: one manager (role changes
 * from maps), and for each partition this worker leads, one appender (group
 * commit, apply, answering writes) and one session per follower (shipping
 * entries, asking the coordinator for ISR changes). This file owns the
 * threads, locks, clocks, RPCs and the log's I/O; what to do next is asked of
 * the replica's sx_repcore. Each replica's state is guarded by its own mutex;
 * nothing holds it across an RPC, an fsync of another replica or an apply
 * (which can hold the plog's lock for seconds: an index backfill), so the
 * heartbeat's reports, Status and views, which take it, never wait long.
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
#include "psnap.h"
#include "pstores.h"
#include "retain.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define REPL_SVC (&shardex__internal__v1__replication__descriptor)
#define COORD_SVC (&shardex__internal__v1__coordinator__descriptor)

/* Limits of one append batch and one replication message. */
#define BATCH_MAX_OPS 10000
#define BATCH_MAX_BYTES (4u << 20)
#define SEND_MAX_ENTRIES 2000
#define APPEND_TIMEOUT_MS 1000
#define RETRY_MS 100
/* A follower sent to a snapshot is sent an Append this often until it has
 * installed it (a few bytes each). */
#define STUCK_RETRY_MS 50
/* Timeouts of our ChangeIsr calls: a shrink is asked again soon anyway. */
#define SHRINK_TIMEOUT_MS 500
#define EXPAND_TIMEOUT_MS 1000
/* Entries and bytes one WorkerAdmin.ReadLog answers at most. */
#define READ_LOG_MAX_ENTRIES 10000
#define READ_LOG_MAX_BYTES (8u << 20)
/* One Snapshot call (a chunk of about SX_PSNAP_CHUNK_BYTES). */
#define SNAPSHOT_CALL_MS 10000

typedef struct pending {
    ProtobufCBinaryData *ops;
    size_t n;
    uint64_t deadline_ms;
    sx_replica_write_done_cb done;
    void *arg;
    uint64_t first; /* first offset, once appended */
    struct pending *next;
} pending;

typedef struct replica replica;

typedef struct session {
    replica *r;
    uint32_t slot;    /* its peer in r->core */
    int32_t follower; /* for logs */
    const char *addr; /* borrowed from r->lead_map */
    bool stop;
    /* The stamp of the follower's last answer (its clock; 0 after a failed
     * call): echoed in the next Append, see "follower reads" below. */
    uint64_t echo_ms;
    bool below_start; /* said once: the follower needs entries trimmed here */
    bool stuck;       /* the last send could not read the entries it needs (trimmed) */
    pthread_t thread;
} session;

struct replica {
    sx_replica_set *owner;
    uint32_t p;
    /* Its store, with the replica's own reference (sx_replica_store). Set
     * under mu; NULL only while a snapshot's store replaces the old one
     * (installing) or once the replica is dropped. A leader's never changes:
     * become_leader waits for an install, and a drop stops leading first. */
    sx_replica_store *st;
    bool dropped;          /* no longer in the map: its store is deleted (drop_replica) */
    replica *next_dropped; /* on owner->dropped */
    pthread_mutex_t mu;
    pthread_cond_t cv; /* appends, acks, applies, stops */

    sx_repcore core; /* role, epoch, ISR, commit point, peers: the protocol's state */

    /* leader */
    sx_partmap *lead_map; /* the map this leadership started from: peers' addresses */
    bool stop;
    pending *queue, *queue_tail;        /* not yet appended */
    pending *waiting, *waiting_tail;    /* appended, in offset order */
    session *sessions[SX_MAX_REPLICAS]; /* one per peer of core, same slots */
    uint32_t nsessions;
    pthread_t appender;
    bool appender_running;

    uint64_t fresh_ms;  /* monotonic: when applied last reached the commit offset */
    uint64_t log_floor; /* leader: the floor announced with every Append (retention) */
    uint64_t trimmed;   /* entries this process removed from the log (retention) */
    sx_retain retain;   /* leader: what --log-retention keeps at least (retain.h) */

    /* follower */
    bool applying; /* an Append applies without mu: the next Append waits for it */
    /* Follower reads (monotonic, this process's clock): every write
     * acknowledged before this instant is applied here; 0: not known. */
    uint64_t sure_ms;

    /* Snapshot install (psnap.h): one fetch thread at a time, started by an
     * Append that says the leader no longer holds what we need. */
    bool snap_running; /* the thread runs (joined by the next start or destroy) */
    bool snap_started; /* a thread was started: join it */
    bool installing;   /* the swap is in progress: Appends are refused meanwhile */
    pthread_t snap_thread;
};

struct sx_replica_set {
    char *data_dir;
    char *worker_id;
    char *coordinator;
    sx_rpc_client *rpc;
    sx_membership *member;
    sx_fsync_mode fsync;
    uint32_t lag_timeout_ms;
    /* Log retention (sx_replica_opts) */
    bool log_retention_off;
    uint64_t log_retention_entries, log_retention_bytes, log_retention_ms;
    size_t write_buffer_bytes;
    sx_store_cache *cache;

    pthread_mutex_t mu; /* reps, nparts, next_map, stop, member */
    pthread_cond_t cv;
    replica **reps; /* [nparts], NULL until hosted */
    uint32_t nparts;
    sx_partmap *next_map; /* held; handed to the manager */
    /* Manager thread only: the last map applied (held), and the partitions
     * it hosts here whose store waits for a retired one (apply_map). */
    sx_partmap *applied;
    bool *pending; /* [nparts] */
    bool stop;
    pthread_t manager;
    bool manager_started;
    void (*on_applied)(void *arg); /* the next stage: see sx_replica_opts */
    void *on_applied_arg;
    sx_counter *docs_applied; /* every partition's plog adds to it; NULL: metrics off */

    /* The stores found at start (creation, then the manager thread only). */
    uint64_t started_ms; /* monotonic: an echo_ms from before is not ours (follower reads) */
    sx_pstores *stores;  /* which stores were ever created: see pstores.h */
    sx_plog **held_log;  /* [nheld]: opened at start, not yet a replica's */
    sx_pindex **held_ix; /* [nheld] */
    uint32_t nheld;
    uint32_t *lost; /* partitions whose store was lost, found at start */
    size_t nlost;

    sx_psnap_server *snaps; /* snapshots this worker serves as a leader */

    /* Store lifetimes (sx_replica_store), under mu: stores retired and not
     * yet closed (a new store of their partition waits for them), and the
     * replicas dropped from the map (freed with the set: a thread that
     * looked one up before the drop may still take its lock). */
    sx_replica_store *retired;
    pthread_cond_t closed; /* a retired store closed */
    bool reopen;           /* a retired store closed: the manager retries pending opens */
    replica *dropped;
    uint64_t newest_map; /* the newest map version applied (drops need one at least as new) */
    uint64_t snapshots_installed, stores_dropped; /* since the process started */

    /* The compaction job (compact_main): stores whose trimmed range is due
     * for a compaction (sx_plog_compact_due), each with a reference, under
     * mu; run off the append thread and the Append handler. */
    sx_replica_store *compact_q;
    pthread_cond_t compact_cv;
    pthread_t compactor;
    bool compactor_started;
};

/* ------------------------------------------------------------- stores -- */

struct sx_replica_store {
    sx_replica_set *rs;
    uint32_t p;
    sx_plog *log;
    sx_pindex *ix;                 /* its indexes: the observer of log's applies */
    atomic_uint_fast32_t refs;     /* the replica's, and one per reader */
    bool retired;                  /* set once, under rs->mu: on rs->retired */
    char *doomed;                  /* retired: its directory, deleted once closed; NULL: kept */
    struct sx_replica_store *next; /* on rs->retired */
    struct sx_replica_store *compact_next; /* on rs->compact_q (rs->mu) */
    bool compact_queued;                   /* rs->mu */
};

static sx_replica_store *store_new(sx_replica_set *rs, uint32_t p, sx_plog *log, sx_pindex *ix)
{
    sx_replica_store *s = sx_calloc(1, sizeof(*s));
    s->rs = rs;
    s->p = p;
    s->log = log;
    s->ix = ix;
    atomic_init(&s->refs, 1);
    return s;
}

sx_replica_store *sx_replica_store_ref(sx_replica_store *s)
{
    atomic_fetch_add(&s->refs, 1);
    return s;
}

/* The last reference: snapshots served from it end, the plog closes (then
 * its observer), a retired store's directory goes, and whoever waits for
 * the partition's next store is woken. */
static void store_close(sx_replica_store *s)
{
    sx_replica_set *rs = s->rs;
    sx_psnap_server_drop(rs->snaps, s->log);
    sx_plog_close(s->log);
    sx_pindex_close(s->ix);
    sx_err err = {0};
    if (s->doomed && sx_store_destroy_files(s->doomed, &err) != SX_OK)
        SX_LOG(SX_LOG_WARN, "replica", "partition=%u store %s not deleted: %s", s->p, s->doomed,
               err.msg);
    else if (s->doomed)
        SX_LOG(SX_LOG_INFO, "replica", "partition=%u store %s closed and deleted", s->p, s->doomed);
    if (s->retired) {
        pthread_mutex_lock(&rs->mu);
        for (sx_replica_store **pp = &rs->retired; *pp; pp = &(*pp)->next)
            if (*pp == s) {
                *pp = s->next;
                break;
            }
        pthread_cond_broadcast(&rs->closed);
        rs->reopen = true; /* the manager, not this reader, opens the next store */
        pthread_cond_broadcast(&rs->cv);
        pthread_mutex_unlock(&rs->mu);
    }
    free(s->doomed);
    free(s);
}

void sx_replica_store_unref(sx_replica_store *s)
{
    if (s && atomic_fetch_sub(&s->refs, 1) == 1)
        store_close(s);
}

/* Retires s, which its replica no longer names (so nobody takes a new
 * reference from it): doomed (taken; NULL: kept) is deleted once the last
 * reader lets go. Drops the replica's reference. */
static void store_retire(sx_replica_store *s, char *doomed)
{
    sx_replica_set *rs = s->rs;
    pthread_mutex_lock(&rs->mu);
    s->retired = true;
    s->doomed = doomed;
    s->next = rs->retired;
    rs->retired = s;
    pthread_mutex_unlock(&rs->mu);
    sx_replica_store_unref(s);
}

/* Whether a retired store of p is still open: LevelDB refuses to open a
 * store whose path this process holds open, so p's next store waits for the
 * readers of the last one. */
static bool retired_open(sx_replica_set *rs, uint32_t p)
{
    pthread_mutex_lock(&rs->mu);
    bool open = false;
    for (sx_replica_store *s = rs->retired; s && !open; s = s->next)
        open = s->p == p;
    pthread_mutex_unlock(&rs->mu);
    return open;
}

/* Waits until no retired store of p is open (above), bounded by the readers'
 * deadlines: for p's own thread only (a snapshot swap), never the manager,
 * which serves every partition (apply_map). */
static void wait_retired(sx_replica_set *rs, uint32_t p)
{
    pthread_mutex_lock(&rs->mu);
    for (;;) {
        bool open = false;
        for (sx_replica_store *s = rs->retired; s && !open; s = s->next)
            open = s->p == p;
        if (!open)
            break;
        pthread_cond_wait(&rs->closed, &rs->mu);
    }
    pthread_mutex_unlock(&rs->mu);
}

static sx_membership *member_of(sx_replica_set *rs)
{
    pthread_mutex_lock(&rs->mu);
    sx_membership *m = rs->member;
    pthread_mutex_unlock(&rs->mu);
    return m;
}

/* Whether this worker's lease is valid, as its membership says now. */
static bool lease_valid(sx_replica_set *rs)
{
    sx_membership *m = member_of(rs);
    if (!m)
        return false;
    sx_membership_view v;
    sx_membership_get_view(m, &v);
    sx_partmap_release(v.map);
    return v.lease_valid;
}

void sx_replica_attach_member(sx_replica_set *rs, sx_membership *member)
{
    pthread_mutex_lock(&rs->mu);
    rs->member = member;
    pthread_mutex_unlock(&rs->mu);
}

static replica *get_replica(sx_replica_set *rs, uint32_t p)
{
    pthread_mutex_lock(&rs->mu);
    replica *r = p < rs->nparts ? rs->reps[p] : NULL;
    pthread_mutex_unlock(&rs->mu);
    return r; /* replicas live as long as sx_replica_set, dropped ones too */
}

/* A reference to r's store for a reader outside r->mu (release it with
 * sx_replica_store_unref); NULL while it has none (installing, dropped). */
static sx_replica_store *acquire(replica *r)
{
    pthread_mutex_lock(&r->mu);
    sx_replica_store *s = r->st ? sx_replica_store_ref(r->st) : NULL;
    pthread_mutex_unlock(&r->mu);
    return s;
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

/* Fails every write of r with SX_ABORTED and msg; r->mu held, released
 * while the writes are answered. */
static void abort_writes_locked(replica *r, const char *msg)
{
    done_list dl = {0};
    take_all_locked(r, &dl);
    if (!dl.head)
        return;
    pthread_mutex_unlock(&r->mu);
    sx_err e;
    sx_err_set(&e, SX_ABORTED, "partition %u: %s", r->p, msg);
    finish_all(&dl, SX_ABORTED, &e);
    pthread_mutex_lock(&r->mu);
}

/* The commit point from the core; r->mu held. Wakes whoever waits on it. */
static void recommit_locked(replica *r)
{
    if (sx_repcore_update_hw(&r->core, sx_plog_leo(r->st->log)))
        pthread_cond_broadcast(&r->cv);
}

/* ------------------------------------------------------------- appender -- */

/* Answers queued writes whose deadline passed (appended ones stay until
 * applied or the leadership ends). r->mu held; returns whether it answered
 * any (released meanwhile). */
static bool fail_expired_locked(replica *r)
{
    uint64_t now = sx_clock_now_ms();
    done_list late = {0};
    pending **pp = &r->queue;
    r->queue_tail = NULL;
    while (*pp) {
        pending *w = *pp;
        if (w->deadline_ms <= now) {
            *pp = w->next;
            w->next = late.head;
            late.head = w;
        } else {
            r->queue_tail = w;
            pp = &w->next;
        }
    }
    if (!late.head)
        return false;
    pthread_mutex_unlock(&r->mu);
    sx_err e;
    sx_err_set(&e, SX_DEADLINE_EXCEEDED,
               "partition %u: deadline passed before the "
               "write was appended",
               r->p);
    finish_all(&late, SX_DEADLINE_EXCEEDED, &e);
    pthread_mutex_lock(&r->mu);
    return true;
}

/* Group commit: takes what is queued (up to the batch limits, one write
 * under --fsync always) off the queue; returns its first and last write and
 * the number of ops. r->mu held. */
static pending *take_batch_locked(replica *r, pending **last_out, size_t *nops_out)
{
    pending *batch = r->queue, *last = r->queue;
    size_t nops = last->n, bytes = 0;
    for (size_t i = 0; i < last->n; i++)
        bytes += last->ops[i].len;
    while (r->owner->fsync != SX_FSYNC_ALWAYS && last->next &&
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
    *last_out = last;
    *nops_out = nops;
    return batch;
}

/* Feeds --log-retention by size and time with a batch appended at first
 * (nops ops in the writes from batch on). r->mu held. */
static void note_appended_locked(replica *r, uint64_t first, size_t nops, const pending *batch)
{
    uint64_t bytes = 0;
    for (const pending *w = batch; w; w = w->next)
        for (size_t i = 0; i < w->n; i++)
            bytes += w->ops[i].len;
    sx_retain_appended(&r->retain, first, nops, bytes, sx_clock_wall_ms());
}

/* Appends one batch of queued writes at our epoch: one LevelDB batch, one
 * fsync. r->mu held, released during the write. */
static void append_queued_locked(replica *r)
{
    pending *last = NULL;
    size_t nops = 0;
    pending *batch = take_batch_locked(r, &last, &nops);
    uint64_t epoch = r->core.epoch;
    pthread_mutex_unlock(&r->mu);

    sx_log_entry *entries = sx_malloc(nops * sizeof(*entries));
    size_t k = 0;
    for (pending *w = batch; w; w = w->next)
        for (size_t i = 0; i < w->n; i++)
            entries[k++] = (sx_log_entry){epoch, w->ops[i].data, w->ops[i].len};
    uint64_t first = sx_plog_leo(r->st->log) + 1;
    sx_err err = {0};
    if (sx_plog_append(r->st->log, entries, nops, r->owner->fsync != SX_FSYNC_NEVER, &err) !=
        SX_OK) {
        /* Rule 8: never carry on after a failed write or fsync. */
        SX_LOG(SX_LOG_ERROR, "replica", "partition=%u append failed: %s; stopping", r->p, err.msg);
        abort();
    }
    free(entries);
    SX_CRASH_POINT("leader-after-append");
    pthread_mutex_lock(&r->mu);
    note_appended_locked(r, first, nops, batch);
    for (pending *w = batch; w; w = w->next) {
        w->first = first;
        first += w->n;
    }
    if (r->waiting_tail)
        r->waiting_tail->next = batch;
    else
        r->waiting = batch;
    r->waiting_tail = last;
    recommit_locked(r);
    pthread_cond_broadcast(&r->cv); /* sessions ship it */
}

/* Applies what is committed, answers the writes it covers and tells the
 * index layer. r->mu held, released meanwhile. */
static void apply_committed_locked(replica *r)
{
    sx_replica_set *rs = r->owner;
    uint64_t hw = r->core.hw, applied = 0;
    pthread_mutex_unlock(&r->mu);
    SX_CRASH_POINT("leader-before-apply");
    sx_err err = {0};
    if (sx_plog_apply(r->st->log, hw, &applied, &err) != SX_OK) {
        SX_LOG(SX_LOG_ERROR, "replica", "partition=%u apply failed: %s; stopping", r->p, err.msg);
        abort(); /* the log is corrupt: never serve what it cannot prove */
    }
    pthread_mutex_lock(&r->mu);
    if (applied >= r->core.hw)
        r->fresh_ms = sx_clock_now_ms();
    done_list ok = {0};
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
}

/* Queues s for the compaction job (once: a store queued already stays). */
static void compact_later(sx_replica_set *rs, sx_replica_store *s)
{
    pthread_mutex_lock(&rs->mu);
    if (!s->compact_queued && !rs->stop) {
        s->compact_queued = true;
        s->compact_next = rs->compact_q;
        rs->compact_q = sx_replica_store_ref(s);
        pthread_cond_signal(&rs->compact_cv);
    }
    pthread_mutex_unlock(&rs->mu);
}

/* The compaction job: compacts the trimmed range of each queued store, one
 * at a time. On a leader this used to run in the append thread, so writes
 * to the partition waited for it; LevelDB compacts beside writes, so here
 * they do not. A retired store's next store waits for the compaction that
 * holds it (its reference). */
static void *compact_main(void *arg)
{
    sx_replica_set *rs = arg;
    pthread_mutex_lock(&rs->mu);
    for (;;) {
        while (!rs->stop && !rs->compact_q)
            pthread_cond_wait(&rs->compact_cv, &rs->mu);
        if (rs->stop)
            break;
        sx_replica_store *s = rs->compact_q;
        rs->compact_q = s->compact_next;
        s->compact_queued = false;
        pthread_mutex_unlock(&rs->mu);
        uint64_t t0 = sx_clock_now_ms();
        sx_plog_compact_trimmed(s->log);
        /* Rare (every 65,536 trimmed entries): what a leader's writes once
         * waited for. */
        SX_LOG(SX_LOG_INFO, "replica", "partition=%u trimmed range compacted ms=%" PRIu64, s->p,
               sx_clock_now_ms() - t0);
        sx_replica_store_unref(s);
        pthread_mutex_lock(&rs->mu);
    }
    sx_replica_store *left = rs->compact_q;
    rs->compact_q = NULL;
    pthread_mutex_unlock(&rs->mu);
    while (left) {
        sx_replica_store *next = left->compact_next;
        sx_replica_store_unref(left);
        left = next;
    }
    return NULL;
}

/* Removes this replica's entries below floor (clipped to its applied by the
 * plog), once at least SX_REPCORE_TRIM_STEP of them can go. r->mu held,
 * released during the trim: it takes the plog's mutex per batch only, so
 * appends and applies go on. A failed write is fatal like any other (rule 8). */
static void trim_log_locked(replica *r, uint64_t floor, const char *role)
{
    if (!r->st || floor < sx_plog_start(r->st->log) + SX_REPCORE_TRIM_STEP)
        return;
    /* Its own reference: a follower's store may be dropped meanwhile. */
    sx_replica_store *s = sx_replica_store_ref(r->st);
    pthread_mutex_unlock(&r->mu);
    sx_err err = {0};
    uint64_t removed = 0;
    sx_crash_scope(role); /* tests: leader/plog-trim-batch, follower/... */
    sx_status st = sx_plog_trim(s->log, floor, &removed, &err);
    sx_crash_scope(NULL);
    if (st != SX_OK) {
        SX_LOG(SX_LOG_ERROR, "replica", "partition=%u log trim failed: %s; stopping", r->p,
               err.msg);
        abort();
    }
    if (sx_plog_compact_due(s->log))
        compact_later(r->owner, s);
    SX_LOG(SX_LOG_DEBUG, "replica",
           "partition=%u log trimmed removed=%" PRIu64 " start=%" PRIu64 " floor=%" PRIu64, r->p,
           removed, sx_plog_start(s->log), floor);
    sx_replica_store_unref(s); /* the last one, after a drop: closed here, without r->mu */
    pthread_mutex_lock(&r->mu);
    r->trimmed += removed;
}

/* A leader's floor, announced to followers with the next Appends, and its
 * own trim to it. r->mu held. */
static void retain_leader_locked(replica *r)
{
    sx_psnap_server_expire(r->owner->snaps, sx_clock_now_ms());
    if (r->owner->log_retention_off)
        return;
    uint64_t leo = sx_plog_leo(r->st->log);
    uint64_t keep = sx_retain_keep(&r->retain, leo, sx_clock_wall_ms());
    r->log_floor = sx_repcore_log_floor(&r->core, sx_plog_applied(r->st->log), leo, (int64_t)keep,
                                        sx_clock_now_ms());
    trim_log_locked(r, r->log_floor, "leader");
}

static void *appender_main(void *arg)
{
    replica *r = arg;
    pthread_mutex_lock(&r->mu);
    while (!r->stop) {
        if (fail_expired_locked(r))
            continue;
        if (r->queue && !r->core.fenced)
            append_queued_locked(r);
        else if (sx_plog_applied(r->st->log) < r->core.hw)
            apply_committed_locked(r);
        else {
            /* Idle: followers' answers may have raised the floor meanwhile. */
            retain_leader_locked(r);
            if (!r->stop && !r->queue && sx_plog_applied(r->st->log) >= r->core.hw)
                sx_cond_wait_ms(&r->cv, &r->mu, 50);
        }
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

/* ------------------------------------------------------------ ISR changes -- */

/* Asks the coordinator for ch (a compare-and-set at our epoch); *resp is
 * the answer on SX_OK (sx_rpc_free it). Called without r->mu. */
static sx_status change_isr(replica *r, const sx_repcore_isr_change *ch, uint64_t timeout_ms,
                            ProtobufCMessage **resp, sx_err *err)
{
    sx_replica_set *rs = r->owner;
    int32_t isr[SX_MAX_REPLICAS];
    uint64_t inc[SX_MAX_REPLICAS];
    memcpy(isr, ch->isr, ch->nisr * sizeof(*isr));
    memcpy(inc, ch->incarnations, ch->nisr * sizeof(*inc));
    Shardex__Internal__V1__ChangeIsrRequest req = SHARDEX__INTERNAL__V1__CHANGE_ISR_REQUEST__INIT;
    req.worker_id = rs->worker_id;
    req.partition = r->p;
    req.epoch = ch->epoch;
    req.isr_version = ch->isr_version;
    req.isr = isr;
    req.n_isr = ch->nisr;
    req.incarnations = inc;
    req.n_incarnations = ch->nisr;
    sx_rpc_call_opts o = {.timeout_ms = timeout_ms};
    sx_membership *m = member_of(rs);
    if (m)
        return sx_membership_invoke(m, COORD_SVC, "ChangeIsr", &req.base, resp, &o, err);
    return sx_rpc_invoke(rs->rpc, rs->coordinator, COORD_SVC, "ChangeIsr", &req.base, resp, &o,
                         err);
}

/* Takes the ISR the coordinator answered an accepted change with, and the
 * commit point that follows. r->mu held. */
static void take_isr_answer_locked(replica *r, const ProtobufCMessage *resp)
{
    const Shardex__Internal__V1__LogPartition *lp =
        ((const Shardex__Internal__V1__ChangeIsrResponse *)resp)->partition;
    if (!lp)
        return;
    sx_err err = {0};
    if (sx_repcore_isr_accepted(&r->core, lp->epoch, lp->isr_version, lp->isr, lp->n_isr, &err) !=
        SX_OK) {
        SX_LOG(SX_LOG_ERROR, "replica", "partition=%u coordinator's isr not taken: %s", r->p,
               err.msg);
        return;
    }
    recommit_locked(r);
}

/* Asks to drop s's follower (the core decided it lags). r->mu held, released
 * during the call. A refused request (a concurrent ISR change, a map we had
 * not seen) is asked again with whatever the map says by then. */
static void ask_shrink_locked(session *s, const sx_repcore_isr_change *ch)
{
    replica *r = s->r;
    pthread_mutex_unlock(&r->mu);
    ProtobufCMessage *resp = NULL;
    sx_err err = {0};
    sx_status st = change_isr(r, ch, SHRINK_TIMEOUT_MS, &resp, &err);
    if (st != SX_OK)
        SX_LOG(SX_LOG_WARN, "replica", "partition=%u isr shrink refused follower=%d: %s", r->p,
               s->follower, err.msg);
    else
        SX_LOG(SX_LOG_WARN, "replica", "partition=%u follower=%d dropped from the isr (lagging)",
               r->p, s->follower);
    pthread_mutex_lock(&r->mu);
    sx_repcore_shrink_answered(&r->core, s->slot, st == SX_OK, sx_clock_now_ms());
    if (st == SX_OK)
        take_isr_answer_locked(r, resp);
    sx_rpc_free(resp);
}

/* p's replicas in the newest map, for the incarnation check of expansion. */
static sx_repcore_newest newest_of(const sx_membership_view *v, uint32_t p,
                                   sx_repcore_replica named[SX_MAX_REPLICAS])
{
    sx_repcore_newest nw = {.lease_valid = v->lease_valid, .leader = -1, .replicas = named};
    const Shardex__Internal__V1__LogPartition *lp = v->map ? sx_partmap_part(v->map, p) : NULL;
    if (!lp || lp->n_replicas > SX_MAX_REPLICAS)
        return nw; /* names no one: nobody is asked in (the partmap refuses such maps) */
    nw.leader = lp->leader;
    for (size_t k = 0; k < lp->n_replicas; k++) {
        const Shardex__Internal__V1__WorkerEntry *w = sx_partmap_worker(v->map, lp->replicas[k]);
        if (w)
            named[nw.nreplicas++] =
                (sx_repcore_replica){lp->replicas[k], w->incarnation, w->address};
    }
    return nw;
}

/* Asks the coordinator to add the followers the core finds caught up (rule
 * 3); they count for commits from the moment the core chose them. r->mu
 * held, released while the membership is read and during the call. */
static void ask_expand_locked(replica *r)
{
    sx_membership *m = member_of(r->owner);
    if (!m)
        return;
    pthread_mutex_unlock(&r->mu);
    sx_membership_view v;
    sx_membership_get_view(m, &v);
    sx_repcore_replica named[SX_MAX_REPLICAS];
    sx_repcore_newest nw = newest_of(&v, r->p, named);
    pthread_mutex_lock(&r->mu);
    sx_repcore_isr_change ch;
    bool ask = sx_repcore_expand(&r->core, sx_clock_now_ms(), &nw, &ch);
    sx_partmap_release(v.map);
    if (!ask)
        return;
    pthread_mutex_unlock(&r->mu);
    ProtobufCMessage *resp = NULL;
    sx_err err = {0};
    sx_status st = change_isr(r, &ch, EXPAND_TIMEOUT_MS, &resp, &err);
    if (st == SX_OK) {
        SX_LOG(SX_LOG_INFO, "replica", "isr expanded partition=%u size=%u", r->p, ch.nisr);
        sx_membership_refresh(m); /* the map moved: fetch it now */
    } else
        SX_LOG(SX_LOG_DEBUG, "replica", "isr expansion refused partition=%u msg=\"%s\"", r->p,
               err.msg);
    pthread_mutex_lock(&r->mu);
    if (st == SX_OK)
        take_isr_answer_locked(r, resp);
    sx_rpc_free(resp);
}

/* -------------------------------------------------------------- sessions -- */

/* Sends step to s's follower: an Append at step's epoch after step.prev,
 * with up to SEND_MAX_ENTRIES entries from there when step.entries. *n gets
 * how many were sent, *resp the answer on SX_OK. Called without r->mu. */
static sx_status send_append(session *s, const sx_repcore_step *step, uint64_t echo_ms,
                             uint64_t floor, size_t *n, ProtobufCMessage **resp, sx_err *err)
{
    replica *r = s->r;
    sx_arena arena = {0};
    Shardex__Internal__V1__AppendRequest req = SHARDEX__INTERNAL__V1__APPEND_REQUEST__INIT;
    req.partition = r->p;
    req.epoch = step->epoch;
    req.leader_id = r->owner->worker_id;
    req.prev_offset = step->prev;
    req.commit_offset = step->commit;
    req.echo_ms = echo_ms;
    req.log_floor = floor;
    sx_plog_epoch_at(r->st->log, step->prev, &req.prev_epoch, NULL);
    sx_log_entry *entries = NULL;
    *n = 0;
    if (step->entries) {
        entries = sx_malloc(SEND_MAX_ENTRIES * sizeof(*entries));
        sx_err rerr = {0};
        s->stuck = sx_plog_read(r->st->log, step->prev + 1, SEND_MAX_ENTRIES, BATCH_MAX_BYTES,
                                &arena, entries, n, &rerr) == SX_OUT_OF_RANGE &&
                   step->prev + 1 < sx_plog_start(r->st->log);
        if (s->stuck) {
            /* Trimmed (log retention): the follower fetches a snapshot of
             * our store (Snapshot) and continues from its offset. */
            req.snapshot_needed = true;
            req.log_start = sx_plog_start(r->st->log);
            if (!s->below_start)
                SX_LOG(SX_LOG_INFO, "replica",
                       "partition=%u follower=%d needs offset=%" PRIu64
                       " below the log start=%" PRIu64 ": it is sent to a snapshot",
                       r->p, s->follower, step->prev + 1, req.log_start);
            s->below_start = true;
        } else {
            s->below_start = false;
        }
        req.entries = sx_arena_alloc(&arena, (*n + 1) * sizeof(*req.entries));
        for (size_t i = 0; i < *n; i++) {
            Shardex__Internal__V1__AppendEntry *e = sx_arena_alloc(&arena, sizeof(*e));
            shardex__internal__v1__append_entry__init(e);
            e->epoch = entries[i].epoch;
            e->op.data = (uint8_t *)entries[i].op;
            e->op.len = entries[i].op_len;
            req.entries[i] = e;
        }
        req.n_entries = *n;
    }
    sx_rpc_call_opts o = {.timeout_ms = APPEND_TIMEOUT_MS};
    sx_status st =
        sx_rpc_invoke(r->owner->rpc, s->addr, REPL_SVC, "Append", &req.base, resp, &o, err);
    free(entries);
    sx_arena_free(&arena);
    return st;
}

/* The follower's log differs at prev: the common prefix of both epoch
 * tables becomes its match. r->mu held. */
static void on_mismatch_locked(session *s, const Shardex__Internal__V1__AppendResponse *ar)
{
    replica *r = s->r;
    /* Whole tables on both sides: a cut table would make its last epoch seem
     * to run to the log end. */
    size_t no = 0;
    sx_epoch_start *ours = copy_epochs(r->st->log, NULL, &no);
    size_t nt = ar->n_epochs;
    sx_epoch_start *theirs = sx_malloc((nt + 1) * sizeof(*theirs));
    for (size_t i = 0; i < nt; i++)
        theirs[i] = (sx_epoch_start){ar->epochs[i]->epoch, ar->epochs[i]->start_offset};
    uint64_t match = sx_repcore_mismatched(&r->core, s->slot, ours, no, sx_plog_leo(r->st->log),
                                           theirs, nt, ar->log_end_offset);
    free(ours);
    free(theirs);
    SX_LOG(SX_LOG_INFO, "replica",
           "partition=%u follower=%d diverges after offset=%" PRIu64 " (its leo=%" PRIu64 ")", r->p,
           s->follower, match, ar->log_end_offset);
}

/* The follower knows a newer epoch: someone else leads now (rule 2). r->mu
 * held, released while the waiting writes are failed. */
static void on_fenced_locked(session *s, const sx_err *err)
{
    replica *r = s->r;
    if (sx_repcore_fence(&r->core))
        SX_LOG(SX_LOG_WARN, "replica",
               "partition=%u epoch=%" PRIu64 " fenced by "
               "follower=%d: %s",
               r->p, r->core.epoch, s->follower, err->msg);
    abort_writes_locked(r, "a newer leader exists");
}

/* What the follower answered step with (n entries sent). r->mu held. */
static void on_reply_locked(session *s, const sx_repcore_step *step, size_t n, sx_status st,
                            const ProtobufCMessage *resp, const sx_err *err, uint64_t now)
{
    replica *r = s->r;
    if (st == SX_OK) {
        const Shardex__Internal__V1__AppendResponse *ar = (const void *)resp;
        if (ar->mismatch) {
            on_mismatch_locked(s, ar);
            return;
        }
        s->echo_ms = ar->stamp_ms;
        sx_repcore_peer_applied(&r->core, s->slot, ar->applied_offset);
        if (sx_repcore_acked(&r->core, s->slot, step, n, now, sx_plog_leo(r->st->log)))
            pthread_cond_broadcast(&r->cv);
        if (sx_repcore_expand_due(&r->core, now))
            ask_expand_locked(r);
        return;
    }
    s->echo_ms = 0; /* the follower may be another process now: claim nothing */
    if (st == SX_FAILED_PRECONDITION)
        on_fenced_locked(s, err);
    sx_cond_wait_ms(&r->cv, &r->mu, RETRY_MS);
}

static void *session_main(void *arg)
{
    session *s = arg;
    replica *r = s->r;
    pthread_mutex_lock(&r->mu);
    while (!s->stop) {
        sx_repcore_step step;
        sx_repcore_session_step(&r->core, s->slot, sx_plog_leo(r->st->log), sx_clock_now_ms(),
                                &step);
        if (step.idle) {
            sx_cond_wait_ms(&r->cv, &r->mu, step.wait_ms);
            continue;
        }
        if (step.shrink)
            ask_shrink_locked(s, &step.change);
        /* The echo is a claim about step.commit (follower reads): it covers
         * every write acknowledged before the echoed stamp only while this
         * leader serves reads (its commit covers its predecessors' writes)
         * under its lease (no successor acknowledges anything yet). */
        uint64_t echo = sx_repcore_serving(&r->core, sx_plog_applied(r->st->log)) ? s->echo_ms : 0;
        uint64_t floor = r->log_floor;
        pthread_mutex_unlock(&r->mu);
        if (echo && !lease_valid(r->owner))
            echo = 0;
        ProtobufCMessage *resp = NULL;
        sx_err err = {0};
        size_t n = 0;
        sx_status st = send_append(s, &step, echo, floor, &n, &resp, &err);
        pthread_mutex_lock(&r->mu);
        uint64_t now = sx_clock_now_ms();
        sx_repcore_sent(&r->core, s->slot, now);
        if (!s->stop)
            on_reply_locked(s, &step, n, st, resp, &err, now);
        sx_rpc_free(resp);
        if (s->stuck && !s->stop) /* not a busy loop; soon enough to see it installed */
            sx_cond_wait_ms(&r->cv, &r->mu, STUCK_RETRY_MS);
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
    sx_repcore_unlead(&r->core);
    sx_partmap *held = r->lead_map;
    r->lead_map = NULL;
    done_list dl = {0};
    take_all_locked(r, &dl);
    r->stop = false;
    pthread_mutex_unlock(&r->mu);
    sx_partmap_release(held);
    sx_err e;
    sx_err_set(&e, SX_ABORTED, "partition %u: this worker no longer leads it", r->p);
    finish_all(&dl, SX_ABORTED, &e);
}

/* r->mu held. */
static void start_session_locked(replica *r, uint32_t slot)
{
    session *s = sx_calloc(1, sizeof(*s));
    s->r = r;
    s->slot = slot;
    s->follower = r->core.peers[slot].who.worker;
    s->addr = r->core.peers[slot].who.address;
    r->sessions[r->nsessions++] = s;
    pthread_create(&s->thread, NULL, session_main, s);
    pthread_setname_np(s->thread, "repl-session");
}

/* pm names this worker p's leader at cm's epoch (taken already). */
static void become_leader(replica *r, sx_partmap *pm, const sx_repcore_map *cm)
{
    sx_err err = {0};
    /* A snapshot being swapped in (never for an ISR member, which the
     * coordinator alone elects, but a map may be old): lead from the new
     * store, once it is open. */
    pthread_mutex_lock(&r->mu);
    while (r->installing)
        pthread_cond_wait(&r->cv, &r->mu);
    pthread_mutex_unlock(&r->mu);
    if (sx_plog_begin_epoch(r->st->log, cm->epoch, &err) != SX_OK) {
        SX_LOG(SX_LOG_ERROR, "replica", "partition=%u cannot lead at epoch=%" PRIu64 ": %s", r->p,
               cm->epoch, err.msg);
        return;
    }
    pthread_mutex_lock(&r->mu);
    uint64_t leo = sx_plog_leo(r->st->log);
    sx_repcore_lead(&r->core, cm, sx_plog_commit(r->st->log), sx_plog_applied(r->st->log), leo,
                    sx_clock_now_ms());
    r->log_floor = 0;            /* until this leadership has heard its followers */
    sx_retain_reset(&r->retain); /* what earlier leaderships appended, and when: not known */
    recommit_locked(r); /* alone in the ISR, the log is committed now: reads need not wait */
    uint64_t hw = r->core.hw;
    r->lead_map = sx_partmap_acquire(pm); /* the peers' addresses live in it */
    for (uint32_t k = 0; k < r->core.npeers; k++)
        start_session_locked(r, k);
    pthread_create(&r->appender, NULL, appender_main, r);
    pthread_setname_np(r->appender, "repl-append");
    r->appender_running = true;
    pthread_mutex_unlock(&r->mu);
    SX_LOG(SX_LOG_INFO, "replica",
           "partition=%u leading epoch=%" PRIu64 " leo=%" PRIu64 " commit=%" PRIu64, r->p,
           cm->epoch, leo, hw);
}

/* Opens p's log with its indexes as the observer of every apply: the
 * documents, local index entries and outbox of an offset are one batch. */
static sx_status open_partition(sx_replica_set *rs, const char *dir, uint32_t p, sx_plog **log,
                                sx_pindex **ix, sx_err *err)
{
    *ix = sx_pindex_create();
    sx_plog_opts po = {.cache = rs->cache,
                       .observer = sx_pindex_observer(*ix),
                       .write_buffer_bytes = rs->write_buffer_bytes,
                       .docs_applied = rs->docs_applied};
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

/* p's store directory, data_dir/partitions/pNNNN (caller frees). */
static char *partition_dir(const sx_replica_set *rs, uint32_t p)
{
    size_t cap = strlen(rs->data_dir) + 64;
    char *dir = sx_malloc(cap);
    snprintf(dir, cap, "%s/partitions/p%04u", rs->data_dir, p);
    return dir;
}

/* Moves a corrupt store out of the way (dir.corrupt-<wall ms>), kept for
 * inspection; false, logged, when the rename fails. */
static bool set_aside(const char *dir, uint32_t p, const char *why)
{
    size_t cap = strlen(dir) + 48;
    char *aside = sx_malloc(cap);
    snprintf(aside, cap, "%s.corrupt-%llu", dir, (unsigned long long)sx_clock_wall_ms());
    bool ok = rename(dir, aside) == 0;
    if (ok)
        SX_LOG(SX_LOG_ERROR, "replica", "partition=%u corrupt store moved to %s: %s", p, aside,
               why);
    else
        SX_LOG(SX_LOG_ERROR, "replica", "partition=%u corrupt store %s: %s; cannot move it: %s", p,
               dir, why, strerror(errno));
    free(aside);
    return ok;
}

/* Opens p's store and its indexes: the one opened at start if any, else from
 * disk (a corrupt store is set aside and started empty). A store not yet
 * recorded as created is recorded before anything is appended to it
 * (pstores.h). False, logged, when it cannot. Manager thread, once no
 * retired store of p is open (apply_map checks, and only the manager
 * retires a store of a partition without a replica). */
static bool open_log(sx_replica_set *rs, uint32_t p, sx_plog **log, sx_pindex **ix)
{
    if (p < rs->nheld && rs->held_log[p]) {
        *log = rs->held_log[p];
        *ix = rs->held_ix[p];
        rs->held_log[p] = NULL;
        rs->held_ix[p] = NULL;
        return true;
    }
    char *dir = partition_dir(rs, p);
    sx_err err = {0};
    sx_status st = open_partition(rs, dir, p, log, ix, &err);
    if (st == SX_DATA_LOSS) {
        /* Rule 8 and row 9: never serve a corrupt replica. Keep it aside for
         * inspection and start empty: registering again took this worker out
         * of every ISR it shared with a live member, so it copies the log from
         * the leader and rejoins only once caught up. (Stores found corrupt
         * at start never get here: they were reported lost, see scan_stores.) */
        if (set_aside(dir, p, err.msg)) {
            sx_err_clear(&err);
            st = open_partition(rs, dir, p, log, ix, &err);
        }
    }
    if (st == SX_OK && (st = sx_pstores_add(rs->stores, p, &err)) != SX_OK) {
        sx_plog_close(*log); /* then its observer */
        sx_pindex_close(*ix);
        *log = NULL;
        *ix = NULL;
    }
    if (st != SX_OK)
        SX_LOG(SX_LOG_ERROR, "replica", "partition=%u cannot open %s: %s", p, dir, err.msg);
    free(dir);
    return st == SX_OK;
}

/* ------------------------------------------------------ stores at start -- */

/* Whether dir holds a store (LevelDB's CURRENT file): 1 yes, 0 no (or no
 * dir), -1 cannot tell (errno). */
static int store_there(const char *dir)
{
    size_t n = strlen(dir) + sizeof("/CURRENT");
    char *current = sx_malloc(n);
    snprintf(current, n, "%s/CURRENT", dir);
    struct stat sb;
    int rc = stat(current, &sb) == 0 ? 1 : (errno == ENOENT || errno == ENOTDIR) ? 0 : -1;
    free(current);
    return rc;
}

static void note_lost(sx_replica_set *rs, uint32_t p)
{
    rs->lost = sx_realloc(rs->lost, (rs->nlost + 1) * sizeof(*rs->lost));
    rs->lost[rs->nlost++] = p;
}

static void hold(sx_replica_set *rs, uint32_t p, sx_plog *log, sx_pindex *ix)
{
    if (p >= rs->nheld) {
        uint32_t n = p + 1;
        rs->held_log = sx_realloc(rs->held_log, n * sizeof(*rs->held_log));
        rs->held_ix = sx_realloc(rs->held_ix, n * sizeof(*rs->held_ix));
        memset(rs->held_log + rs->nheld, 0, (n - rs->nheld) * sizeof(*rs->held_log));
        memset(rs->held_ix + rs->nheld, 0, (n - rs->nheld) * sizeof(*rs->held_ix));
        rs->nheld = n;
    }
    rs->held_log[p] = log;
    rs->held_ix[p] = ix;
}

/* One candidate of scan_stores. A store that opens is held for its replica
 * (and recorded); a recorded store that is missing or corrupt is lost (a
 * corrupt one is set aside, and a new one is made only once the coordinator
 * knows: after registering); an unrecorded directory without a store was
 * never used. Any other failure to open stops the start: the worker cannot
 * tell what it holds. */
static sx_status scan_store(sx_replica_set *rs, uint32_t p, sx_err *err)
{
    char *dir = partition_dir(rs, p);
    bool recorded = sx_pstores_has(rs->stores, p);
    sx_status st = SX_OK;
    int there = store_there(dir);
    sx_plog *log = NULL;
    sx_pindex *ix = NULL;
    if (there < 0) {
        st = sx_err_set(err, SX_INTERNAL, "partition %u: cannot look at %s: %s", p, dir,
                        strerror(errno));
    } else if (there == 0) {
        if (recorded) {
            SX_LOG(SX_LOG_ERROR, "replica",
                   "partition=%u store missing from %s: lost, the coordinator will hear of it", p,
                   dir);
            struct stat sb;
            if (stat(dir, &sb) == 0 && !set_aside(dir, p, "no store in the directory"))
                st = sx_err_set(err, SX_INTERNAL, "partition %u: cannot move %s aside", p, dir);
            note_lost(rs, p);
        }
    } else if ((st = open_partition(rs, dir, p, &log, &ix, err)) == SX_DATA_LOSS) {
        SX_LOG(SX_LOG_ERROR, "replica",
               "partition=%u corrupt store: lost, the coordinator will hear of it", p);
        char why[sizeof(err->msg)];
        snprintf(why, sizeof(why), "%s", err->msg);
        sx_err_clear(err);
        st = set_aside(dir, p, why)
                 ? SX_OK
                 : sx_err_set(err, SX_INTERNAL, "partition %u: cannot move %s aside", p, dir);
        note_lost(rs, p);
    } else if (st == SX_OK && (st = sx_pstores_add(rs->stores, p, err)) == SX_OK) {
        hold(rs, p, log, ix);
        log = NULL;
        ix = NULL;
    }
    sx_plog_close(log);
    sx_pindex_close(ix);
    free(dir);
    return st;
}

/* Before the worker registers: opens every partition store it holds (with
 * LevelDB's paranoid checks, so corruption shows now) and finds those it
 * lost, for the coordinator (issue 11: a replica that lost its store must
 * never lead with what is left). */
static sx_status scan_stores(sx_replica_set *rs, sx_err *err)
{
    uint32_t *cand = NULL;
    size_t n = 0;
    sx_err e = {0}; /* scan_store reads the message back */
    /* First the swaps of snapshot installs a crash cut short: finished or
     * undone, every store is back at pNNNN before anything looks for it. */
    sx_status st = sx_psnap_recover(rs->data_dir, &e);
    if (st == SX_OK)
        st = sx_pstores_open(rs->data_dir, &rs->stores, &e);
    if (st == SX_OK)
        st = sx_pstores_candidates(rs->stores, &cand, &n, &e);
    for (size_t i = 0; st == SX_OK && i < n; i++)
        st = scan_store(rs, cand[i], &e);
    free(cand);
    if (st != SX_OK)
        return sx_err_set(err, st, "%s", e.msg);
    SX_LOG(SX_LOG_INFO, "replica", "stores found=%zu lost=%zu", n, rs->nlost);
    return SX_OK;
}

const uint32_t *sx_replica_lost(const sx_replica_set *rs, size_t *n)
{
    *n = rs->nlost;
    return rs->lost;
}

static replica *open_replica(sx_replica_set *rs, uint32_t p)
{
    sx_plog *log = NULL;
    sx_pindex *ix = NULL;
    if (!open_log(rs, p, &log, &ix))
        return NULL;
    replica *r = sx_calloc(1, sizeof(*r));
    r->owner = rs;
    r->p = p;
    r->st = store_new(rs, p, log, ix);
    r->fresh_ms = sx_clock_now_ms();
    pthread_mutex_init(&r->mu, NULL);
    sx_cond_init_monotonic(&r->cv);
    sx_repcore_init(&r->core, sx_plog_max_epoch(log), rs->lag_timeout_ms);
    r->retain.entries = rs->log_retention_entries;
    r->retain.bytes = rs->log_retention_bytes;
    r->retain.ms = rs->log_retention_ms;
    return r;
}

/* p's entry of pm as the core reads it; reps receives the replicas (the
 * addresses stay pm's). False when pm holds more replicas than supported
 * (the partmap refuses such maps). */
static bool core_map_of(const sx_partmap *pm, uint32_t p, sx_repcore_replica *reps,
                        sx_repcore_map *out)
{
    const Shardex__Internal__V1__LogPartition *lp = sx_partmap_part(pm, p);
    if (!lp || lp->n_replicas > SX_MAX_REPLICAS || lp->n_isr > SX_MAX_REPLICAS)
        return false;
    const Shardex__Internal__V1__ClusterMap *m = sx_partmap_msg(pm);
    for (size_t k = 0; k < lp->n_replicas; k++) {
        const Shardex__Internal__V1__WorkerEntry *w = sx_partmap_worker(pm, lp->replicas[k]);
        reps[k] =
            (sx_repcore_replica){lp->replicas[k], w ? w->incarnation : 0, w ? w->address : NULL};
    }
    *out = (sx_repcore_map){
        .epoch = lp->epoch,
        .isr_version = lp->isr_version,
        .leader = lp->leader,
        .replicas = reps,
        .nreplicas = (uint32_t)lp->n_replicas,
        .isr = lp->isr,
        .nisr = (uint32_t)lp->n_isr,
        .min_isr = m->settings ? m->settings->min_isr : 1,
    };
    return true;
}

/* Reconciles r with p's entry cm of pm, as the core plans it. */
static void apply_part(replica *r, sx_partmap *pm, int32_t me, const sx_repcore_map *cm)
{
    pthread_mutex_lock(&r->mu);
    sx_repcore_map_plan plan = sx_repcore_plan_map(&r->core, me, cm);
    pthread_mutex_unlock(&r->mu);
    if (plan.stop_leading)
        stop_leading(r);
    pthread_mutex_lock(&r->mu);
    sx_err err = {0};
    sx_status st = sx_repcore_take_map(&r->core, me, cm, &err);
    pthread_mutex_unlock(&r->mu);
    if (st != SX_OK) {
        SX_LOG(SX_LOG_ERROR, "replica", "partition=%u map version=%" PRIu64 " not taken: %s", r->p,
               sx_partmap_version(pm), err.msg);
        return;
    }
    if (plan.lead) {
        become_leader(r, pm, cm);
    } else if (plan.recommit) {
        pthread_mutex_lock(&r->mu);
        recommit_locked(r); /* the isr may have shrunk: commit may move */
        pthread_mutex_unlock(&r->mu);
    }
}

/* Whether pm lets this worker (me) delete its store of p
 * (sx_partmap_may_drop), being at least as new as every map applied before:
 * an older map says nothing. */
static bool droppable(const sx_replica_set *rs, const sx_partmap *pm, uint32_t p, int32_t me)
{
    return sx_partmap_version(pm) >= rs->newest_map && sx_partmap_may_drop(pm, p, me);
}

/* Forgets p in the record of stores (pstores.h), first: a crash before the
 * deletion leaves a store the next start opens and the next map drops. */
static bool unrecord(sx_replica_set *rs, uint32_t p)
{
    sx_err err = {0};
    if (sx_pstores_remove(rs->stores, p, &err) == SX_OK)
        return true;
    SX_LOG(SX_LOG_ERROR, "replica", "partition=%u store kept: cannot update the record: %s", p,
           err.msg);
    return false;
}

/* The map no longer gives this worker a replica of r's partition (a move
 * dropped it, a remove): its store is retired and deleted once the last
 * reader lets go; a later assignment starts a fresh replica. Roles were
 * taken already (a leader stopped leading). Manager thread. */
static void drop_replica(sx_replica_set *rs, replica *r)
{
    if (!unrecord(rs, r->p))
        return;
    pthread_mutex_lock(&r->mu);
    r->dropped = true; /* a snapshot transfer gives up, and does not swap */
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    if (r->snap_started)
        pthread_join(r->snap_thread, NULL);
    r->snap_started = false;
    pthread_mutex_lock(&rs->mu);
    rs->reps[r->p] = NULL;
    r->next_dropped = rs->dropped;
    rs->dropped = r;
    rs->stores_dropped++;
    pthread_mutex_unlock(&rs->mu);
    pthread_mutex_lock(&r->mu);
    sx_replica_store *st = r->st;
    r->st = NULL;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    SX_LOG(SX_LOG_INFO, "replica", "partition=%u no longer hosted here: its store is deleted",
           r->p);
    store_retire(st, partition_dir(rs, r->p));
}

/* A store opened at start that the map does not give this worker: nobody
 * has read it, so it is closed and deleted at once. */
static void drop_held(sx_replica_set *rs, uint32_t p)
{
    if (!unrecord(rs, p))
        return;
    sx_plog_close(rs->held_log[p]); /* then its observer */
    sx_pindex_close(rs->held_ix[p]);
    rs->held_log[p] = NULL;
    rs->held_ix[p] = NULL;
    char *dir = partition_dir(rs, p);
    sx_err err = {0};
    if (sx_store_destroy_files(dir, &err) != SX_OK)
        SX_LOG(SX_LOG_WARN, "replica", "partition=%u store %s not deleted: %s", p, dir, err.msg);
    else
        SX_LOG(SX_LOG_INFO, "replica", "partition=%u not hosted here: its store %s is deleted", p,
               dir);
    pthread_mutex_lock(&rs->mu);
    rs->stores_dropped++;
    pthread_mutex_unlock(&rs->mu);
    free(dir);
}

/* Applies pm to every partition, or (only_pending) again to the partitions
 * left pending by the last map (pm): a partition this worker hosts anew
 * whose last store is retired but still open (a reader holds it, up to its
 * deadline) is left without a replica, as it was while being opened (not
 * serving, no vote, no lead, no acknowledgement), and retried when a
 * retired store closes (manager_main), so that the other partitions' role
 * changes do not wait for its readers. */
static void apply_map(sx_replica_set *rs, sx_partmap *pm, bool only_pending)
{
    uint32_t P = sx_partmap_partitions(pm);
    int32_t me = sx_partmap_self(pm);
    pthread_mutex_lock(&rs->mu);
    if (!rs->reps) {
        rs->nparts = P;
        rs->reps = sx_calloc(rs->nparts + 1, sizeof(*rs->reps));
        rs->pending = sx_calloc(rs->nparts + 1, sizeof(*rs->pending));
    }
    pthread_mutex_unlock(&rs->mu);
    for (uint32_t p = 0; p < rs->nparts && p < P; p++) {
        if (only_pending && !rs->pending[p])
            continue;
        rs->pending[p] = false;
        sx_repcore_replica reps[SX_MAX_REPLICAS];
        sx_repcore_map cm;
        if (!core_map_of(pm, p, reps, &cm)) {
            SX_LOG(SX_LOG_ERROR, "replica",
                   "partition=%u map version=%" PRIu64 " not taken: "
                   "more replicas than supported",
                   p, sx_partmap_version(pm));
            continue;
        }
        bool hosted = me >= 0 && sx_partmap_hosts(pm, p, me);
        replica *r = rs->reps[p];
        if (!r && !hosted) {
            if (p < rs->nheld && rs->held_log[p] && droppable(rs, pm, p, me))
                drop_held(rs, p);
            continue;
        }
        if (!r && retired_open(rs, p)) {
            rs->pending[p] = true;
            SX_LOG(SX_LOG_INFO, "replica",
                   "partition=%u store opens once the readers of its last one let go", p);
            continue;
        }
        if (!r) {
            r = open_replica(rs, p);
            if (!r)
                continue;
            pthread_mutex_lock(&rs->mu);
            rs->reps[p] = r;
            pthread_mutex_unlock(&rs->mu);
        }
        apply_part(r, pm, me, &cm);
        if (!hosted && droppable(rs, pm, p, me))
            drop_replica(rs, r);
    }
    if (sx_partmap_version(pm) > rs->newest_map)
        rs->newest_map = sx_partmap_version(pm);
}

static void *manager_main(void *arg)
{
    sx_replica_set *rs = arg;
    pthread_mutex_lock(&rs->mu);
    while (!rs->stop) {
        if (!rs->next_map && !(rs->reopen && rs->applied)) {
            pthread_cond_wait(&rs->cv, &rs->mu);
            continue;
        }
        /* A new map first: it decides every partition again. */
        sx_partmap *m = rs->next_map;
        rs->next_map = NULL;
        rs->reopen = false;
        pthread_mutex_unlock(&rs->mu);
        if (m) {
            apply_map(rs, m, false);
            sx_partmap_release(rs->applied);
            rs->applied = m;
        } else {
            apply_map(rs, rs->applied, true);
        }
        pthread_mutex_lock(&rs->mu);
    }
    pthread_mutex_unlock(&rs->mu);
    return NULL;
}

void sx_replica_on_map(sx_replica_set *rs, sx_partmap *map)
{
    pthread_mutex_lock(&rs->mu);
    sx_partmap_release(rs->next_map); /* superseded before the manager saw it */
    rs->next_map = sx_partmap_acquire(map);
    pthread_cond_signal(&rs->cv);
    pthread_mutex_unlock(&rs->mu);
}

/* ------------------------------------------------------------- reports -- */

size_t sx_replica_reports(void *arg, Shardex__Internal__V1__ReplicaReport *out, size_t cap)
{
    sx_replica_set *rs = arg;
    uint32_t P = sx_replica_partitions(rs);
    size_t n = 0;
    for (uint32_t p = 0; p < P; p++) {
        replica *r = get_replica(rs, p);
        sx_replica_store *s = r ? acquire(r) : NULL;
        if (!s)
            continue; /* a snapshot is swapped in: the next heartbeat reports it */
        if (n < cap) {
            shardex__internal__v1__replica_report__init(&out[n]);
            out[n].partition = p;
            out[n].log_end_offset = sx_plog_leo(s->log);
            out[n].applied_offset = sx_plog_applied(s->log);
            pthread_mutex_lock(&r->mu);
            out[n].commit_offset = sx_repcore_commit(&r->core);
            pthread_mutex_unlock(&r->mu);
        }
        sx_replica_store_unref(s);
        n++;
    }
    return n;
}

/* ----------------------------------------------------------- stopping -- */

static size_t count_pending(const pending *w)
{
    size_t n = 0;
    for (; w; w = w->next)
        n++;
    return n;
}

size_t sx_replica_wait_idle(sx_replica_set *rs, uint64_t deadline_ms)
{
    for (;;) {
        pthread_mutex_lock(&rs->mu);
        uint32_t nparts = rs->nparts;
        pthread_mutex_unlock(&rs->mu);
        size_t busy = 0;
        for (uint32_t p = 0; p < nparts; p++) {
            replica *r = get_replica(rs, p);
            if (!r)
                continue;
            pthread_mutex_lock(&r->mu);
            busy += count_pending(r->queue) + count_pending(r->waiting);
            pthread_mutex_unlock(&r->mu);
        }
        if (busy == 0 || sx_clock_now_ms() >= deadline_ms)
            return busy;
        /* Answers take a commit round and an apply: polling costs nothing here. */
        usleep(5000);
    }
}

/* ---------------------------------------------------------------- write -- */

void sx_replica_write(sx_replica_set *rs, uint32_t p, ProtobufCBinaryData *ops, size_t n,
                      uint64_t deadline_ms, sx_replica_write_done_cb done, void *arg)
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
    sx_status admit = sx_repcore_admit(&r->core);
    if (admit == SX_ABORTED || !lease || !r->appender_running) {
        pthread_mutex_unlock(&r->mu);
        sx_err_set(&err, SX_ABORTED, "partition %u: this worker does not lead it now", p);
        done(arg, err.code, &err, NULL, 0);
        return;
    }
    if (admit != SX_OK) {
        uint32_t nisr = r->core.nisr, min = r->core.min_isr;
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

/* Our log where a reaches: its end, the epoch at a's prev and at the entries
 * it overlaps. *ours holds those epochs (free it). r->mu held. */
static sx_repcore_local local_of(replica *r, const sx_repcore_append *a, uint64_t **ours)
{
    sx_repcore_local l = {.leo = sx_plog_leo(r->st->log)};
    *ours = NULL;
    if (a->prev_offset > l.leo)
        return l;
    l.prev_read = sx_plog_epoch_at(r->st->log, a->prev_offset, &l.prev_epoch, NULL) == SX_OK;
    uint64_t room = l.leo - a->prev_offset;
    l.nepochs = a->n < room ? a->n : (size_t)room;
    *ours = sx_malloc((l.nepochs + 1) * sizeof(**ours));
    for (size_t i = 0; i < l.nepochs; i++) {
        (*ours)[i] = 0; /* unreadable: a conflict */
        sx_plog_epoch_at(r->st->log, a->prev_offset + 1 + i, &(*ours)[i], NULL);
    }
    l.epochs = *ours;
    return l;
}

/* Our epoch table, for the leader to find the common prefix. */
static void answer_mismatch(replica *r, Shardex__Internal__V1__AppendResponse *resp,
                            sx_arena *arena)
{
    resp->mismatch = true;
    resp->log_end_offset = sx_plog_leo(r->st->log);
    size_t n = 0;
    sx_epoch_start *eps = copy_epochs(r->st->log, arena, &n);
    resp->epochs = sx_arena_alloc(arena, (n + 1) * sizeof(*resp->epochs));
    for (size_t i = 0; i < n; i++) {
        Shardex__Internal__V1__EpochStart *e = sx_arena_alloc(arena, sizeof(*e));
        shardex__internal__v1__epoch_start__init(e);
        e->epoch = eps[i].epoch;
        e->start_offset = eps[i].start_offset;
        resp->epochs[i] = e;
    }
    resp->n_epochs = n;
    resp->applied_offset = sx_plog_applied(r->st->log);
}

/* Runs an accepted plan: truncate, append, apply up to the bound the core
 * gives. r->mu held, released during the apply. */
static sx_status follow(replica *r, const Shardex__Internal__V1__AppendRequest *req,
                        const sx_repcore_append *a, const sx_repcore_append_plan *plan,
                        Shardex__Internal__V1__AppendResponse *resp, sx_err *err)
{
    /* r->st is set (sx_replica_append checked); its own reference, since mu
     * is released during the apply and a drop may take r->st meanwhile. */
    sx_replica_store *s = sx_replica_store_ref(r->st);
    sx_status st;
    if (plan->truncate && (st = sx_plog_truncate(s->log, plan->truncate_to, err)) != SX_OK) {
        sx_replica_store_unref(s);
        return st;
    }
    if (plan->append_from < a->n) {
        SX_CRASH_POINT("follower-before-append");
        size_t n = a->n - plan->append_from;
        sx_log_entry *es = sx_malloc(n * sizeof(*es));
        for (size_t k = 0; k < n; k++) {
            const Shardex__Internal__V1__AppendEntry *e = req->entries[plan->append_from + k];
            es[k] = (sx_log_entry){e->epoch, e->op.data, e->op.len};
        }
        st = sx_plog_append(s->log, es, n, r->owner->fsync != SX_FSYNC_NEVER, err);
        free(es);
        if (st == SX_INVALID_ARGUMENT) {
            sx_replica_store_unref(s);
            return st; /* entries the log's rules refuse: the sender's problem, nothing written */
        }
        if (st != SX_OK) {
            SX_LOG(SX_LOG_ERROR, "replica", "partition=%u append failed: %s; stopping", r->p,
                   err->msg);
            abort(); /* rule 8: a failed write or fsync is fatal */
        }
        SX_CRASH_POINT("follower-after-append");
    }
    uint64_t upto = sx_repcore_follow_done(&r->core, a);
    if (upto > sx_plog_applied(s->log)) {
        /* Without mu: an index backfill in the apply takes seconds, and the
         * heartbeat's reports, Status and views take mu. The next Append
         * waits (applying), so nothing truncates meanwhile; a leadership that
         * begins meanwhile appends above our leo and applies from its hw,
         * and everything up to upto is committed, so neither conflicts. */
        r->applying = true;
        pthread_mutex_unlock(&r->mu);
        st = sx_plog_apply(s->log, upto, NULL, err);
        pthread_mutex_lock(&r->mu);
        r->applying = false;
        pthread_cond_broadcast(&r->cv);
        if (st != SX_OK) {
            SX_LOG(SX_LOG_ERROR, "replica", "partition=%u apply failed: %s; stopping", r->p,
                   err->msg);
            abort();
        }
    }
    if (req->log_floor) {
        /* The leader's floor (retention): below it every replica it feeds
         * has applied. Without mu, and without holding the next Append back
         * (a trim may end in a compaction): the plog never trims past our
         * own applied, which only rises, and a truncation never goes below
         * it, so the two cannot meet. */
        trim_log_locked(r, req->log_floor, "follower");
    }
    uint64_t now = sx_clock_now_ms();
    if (sx_plog_applied(s->log) >= r->core.leader_commit)
        r->fresh_ms = now; /* as fresh as its leader said, a round trip ago */
    /* Follower reads: the leader read req->commit_offset after it received
     * our answer stamped echo_ms, so every write acknowledged before
     * echo_ms is at or below it; applied that far, we hold them all. An echo
     * outside [our start, now] is not one of our stamps. */
    if (req->echo_ms && sx_plog_applied(s->log) >= req->commit_offset &&
        req->echo_ms >= r->owner->started_ms && req->echo_ms <= now && req->echo_ms > r->sure_ms) {
        r->sure_ms = req->echo_ms;
        pthread_cond_broadcast(&r->cv); /* follower reads waiting for freshness */
    }
    resp->log_end_offset = sx_plog_leo(s->log);
    resp->applied_offset = sx_plog_applied(s->log);
    sx_replica_store_unref(s); /* dropped meanwhile: closes it (rarely, under mu) */
    return SX_OK;
}

/* ------------------------------------------------------------ snapshots -- */

/* p's leader as the newest map names it (not us): its address (copied into
 * addr) and epoch. False when there is none to ask. */
static bool leader_of(replica *r, char *addr, size_t cap, uint64_t *epoch)
{
    sx_membership *m = member_of(r->owner);
    if (!m)
        return false;
    sx_membership_view v;
    sx_membership_get_view(m, &v);
    bool ok = false;
    const Shardex__Internal__V1__LogPartition *lp = v.map ? sx_partmap_part(v.map, r->p) : NULL;
    if (lp && lp->leader >= 0 && lp->leader != sx_partmap_self(v.map)) {
        const Shardex__Internal__V1__WorkerEntry *w = sx_partmap_worker(v.map, lp->leader);
        if (w && w->address && w->address[0]) {
            snprintf(addr, cap, "%s", w->address);
            *epoch = lp->epoch;
            ok = true;
        }
    }
    sx_partmap_release(v.map);
    return ok;
}

/* The worker stops or the replica was dropped: a transfer gives up. */
static bool snap_stopping(replica *r)
{
    pthread_mutex_lock(&r->owner->mu);
    bool stop = r->owner->stop;
    pthread_mutex_unlock(&r->owner->mu);
    pthread_mutex_lock(&r->mu);
    stop |= r->dropped;
    pthread_mutex_unlock(&r->mu);
    return stop;
}

/* Copies the leader's snapshot into snapdir, chunk by chunk, and seals it;
 * *applied gets its offset. Every call has a deadline; a leader that dies
 * or changes midway fails the transfer (the next Append that asks for a
 * snapshot starts over, at whoever leads then). */
static sx_status fetch_snapshot(replica *r, const char *snapdir, uint64_t *applied, sx_err *err)
{
    char addr[256];
    uint64_t epoch = 0;
    if (!leader_of(r, addr, sizeof(addr), &epoch))
        return sx_err_set(err, SX_UNAVAILABLE, "partition %u: no leader to ask for a snapshot",
                          r->p);
    sx_psnap_writer *w = NULL;
    sx_status st = sx_psnap_writer_open(snapdir, &w, err);
    if (st != SX_OK)
        return st;
    Shardex__Internal__V1__SnapshotRequest req = SHARDEX__INTERNAL__V1__SNAPSHOT_REQUEST__INIT;
    req.partition = r->p;
    req.epoch = epoch;
    req.max_bytes = SX_PSNAP_CHUNK_BYTES;
    sx_buf cursor = {0};
    uint64_t pairs = 0, chunks = 0, at = 0;
    SX_LOG(SX_LOG_INFO, "replica", "partition=%u fetching a snapshot from %s epoch=%" PRIu64, r->p,
           addr, epoch);
    for (bool done = false; st == SX_OK && !done;) {
        if (snap_stopping(r)) {
            st = sx_err_set(err, SX_ABORTED, "partition %u: stopping", r->p);
            break;
        }
        req.cursor.data = cursor.data;
        req.cursor.len = cursor.len;
        ProtobufCMessage *respm = NULL;
        sx_rpc_call_opts o = {.timeout_ms = SNAPSHOT_CALL_MS};
        st = sx_rpc_invoke(r->owner->rpc, addr, REPL_SVC, "Snapshot", &req.base, &respm, &o, err);
        if (st != SX_OK)
            break;
        const Shardex__Internal__V1__SnapshotResponse *resp = (const void *)respm;
        if (req.session && (resp->session != req.session || resp->offset != at))
            st = sx_err_set(err, SX_INTERNAL, "partition %u: the leader changed sessions midway",
                            r->p);
        if (st == SX_OK)
            st = sx_psnap_writer_put(w, resp->pairs, resp->n_pairs, err);
        if (st == SX_OK) {
            req.session = resp->session;
            at = resp->offset;
            done = resp->done;
            pairs += resp->n_pairs;
            chunks++;
            sx_buf_reset(&cursor);
            sx_buf_append(&cursor, resp->next_cursor.data, resp->next_cursor.len);
        }
        sx_rpc_free(respm);
        /* Tests kill -9 here: a copy cut short, deleted at the next start. */
        SX_CRASH_POINT("snapshot-follower-chunk");
    }
    if (st == SX_OK)
        st = sx_psnap_writer_seal(w, at, err);
    sx_psnap_writer_close(w);
    sx_buf_free(&cursor);
    if (st == SX_OK) {
        *applied = at;
        SX_LOG(SX_LOG_INFO, "replica",
               "partition=%u snapshot fetched offset=%" PRIu64 " pairs=%" PRIu64 " chunks=%" PRIu64,
               r->p, at, pairs, chunks);
    }
    return st;
}

/* Replaces r's store by the sealed copy (psnap.h). Appends are refused
 * meanwhile (installing). The old store, renamed pNNNN.old by the swap (open
 * files survive a rename), is retired: readers holding it go on reading it,
 * the last one closes it and deletes pNNNN.old, and only then does the new
 * store open at pNNNN (LevelDB locks a store by its path within a process).
 * The replica is outside the ISR meanwhile (it was sent to a snapshot), so
 * the wait delays nobody's writes. Failures after the first rename are
 * fatal: the next start finishes the swap (sx_psnap_recover). */
static void swap_in(replica *r, const char *dir, uint64_t applied)
{
    sx_replica_set *rs = r->owner;
    SX_CRASH_POINT("snapshot-before-swap");
    sx_err err = {0};
    if (sx_psnap_swap(dir, &err) != SX_OK) {
        SX_LOG(SX_LOG_ERROR, "replica", "partition=%u snapshot swap failed: %s; stopping", r->p,
               err.msg);
        abort(); /* rule 8: the start after this finishes or undoes the swap */
    }
    pthread_mutex_lock(&r->mu);
    sx_replica_store *old = r->st;
    r->st = NULL; /* no new reader takes it */
    pthread_mutex_unlock(&r->mu);
    size_t cap = strlen(dir) + 8;
    char *olddir = sx_malloc(cap);
    snprintf(olddir, cap, "%s.old", dir);
    store_retire(old, olddir);
    wait_retired(rs, r->p);
    sx_plog *log = NULL;
    sx_pindex *ix = NULL;
    if (open_partition(rs, dir, r->p, &log, &ix, &err) != SX_OK) {
        SX_LOG(SX_LOG_ERROR, "replica", "partition=%u snapshot store does not open: %s; stopping",
               r->p, err.msg);
        abort();
    }
    pthread_mutex_lock(&r->mu);
    r->st = store_new(rs, r->p, log, ix);
    r->installing = false;
    r->fresh_ms = sx_clock_now_ms();
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    pthread_mutex_lock(&rs->mu);
    rs->snapshots_installed++;
    pthread_mutex_unlock(&rs->mu);
    SX_LOG(SX_LOG_INFO, "replica", "partition=%u installed a snapshot at offset=%" PRIu64, r->p,
           applied);
    SX_CRASH_POINT("snapshot-after-swap");
}

static void *snapshot_main(void *arg)
{
    replica *r = arg;
    sx_replica_set *rs = r->owner;
    char *dir = partition_dir(rs, r->p);
    size_t cap = strlen(dir) + 8;
    char *snapdir = sx_malloc(cap);
    snprintf(snapdir, cap, "%s.snap", dir);
    sx_err err = {0};
    uint64_t applied = 0;
    sx_status st = fetch_snapshot(r, snapdir, &applied, &err);
    bool swap = false;
    if (st == SX_OK) {
        /* Only a follower swaps its store, and only when the copy is ahead
         * of what it holds (an Append may have caught it up meanwhile). */
        pthread_mutex_lock(&r->mu);
        swap = !r->dropped && r->st && r->core.role != SX_REPCORE_LEADER &&
               applied > sx_plog_applied(r->st->log);
        if (swap) {
            r->installing = true;
            while (r->applying)
                pthread_cond_wait(&r->cv, &r->mu);
        }
        pthread_mutex_unlock(&r->mu);
    } else {
        SX_LOG(SX_LOG_WARN, "replica", "partition=%u snapshot not fetched: %s", r->p, err.msg);
    }
    if (swap)
        swap_in(r, dir, applied);
    else if (sx_store_destroy_files(snapdir, &err) != SX_OK)
        SX_LOG(SX_LOG_WARN, "replica", "partition=%u cannot delete %s: %s", r->p, snapdir, err.msg);
    pthread_mutex_lock(&r->mu);
    r->snap_running = false;
    pthread_mutex_unlock(&r->mu);
    free(snapdir);
    free(dir);
    return NULL;
}

/* The leader no longer holds what we need: fetch a snapshot on a thread of
 * its own (never in the Append handler), unless one runs. r->mu held. */
static void want_snapshot_locked(replica *r)
{
    if (r->snap_running)
        return;
    if (r->snap_started)
        pthread_join(r->snap_thread, NULL); /* finished: it cleared snap_running */
    r->snap_running = true;
    r->snap_started = true;
    pthread_create(&r->snap_thread, NULL, snapshot_main, r);
    pthread_setname_np(r->snap_thread, "repl-snapshot");
}

sx_status sx_replica_snapshot(sx_replica_set *rs, const Shardex__Internal__V1__SnapshotRequest *req,
                              Shardex__Internal__V1__SnapshotResponse *resp, sx_arena *arena,
                              sx_err *err)
{
    replica *r = get_replica(rs, req->partition);
    if (!r)
        return sx_err_set(err, SX_FAILED_PRECONDITION, "partition %u: not hosted here",
                          req->partition);
    bool lease = lease_valid(rs);
    pthread_mutex_lock(&r->mu);
    bool leads = lease && sx_repcore_leading(&r->core) && r->core.epoch == req->epoch && r->st;
    uint64_t epoch = r->core.epoch;
    sx_replica_store *s = leads ? sx_replica_store_ref(r->st) : NULL;
    pthread_mutex_unlock(&r->mu);
    if (!leads)
        return sx_err_set(err, SX_FAILED_PRECONDITION,
                          "partition %u: this worker does not lead it at epoch %" PRIu64
                          " (its epoch: %" PRIu64 ")",
                          req->partition, req->epoch, epoch);
    /* Tests hold a transfer here to kill its leader midway. */
    SX_DELAY_POINT("snapshot-serve");
    sx_status st = sx_psnap_serve(rs->snaps, s->log, sx_clock_now_ms(), req, resp, arena, err);
    sx_replica_store_unref(s); /* a session it left open ends when the store closes */
    /* Tests kill -9 here: the leader dies with a transfer open. */
    SX_CRASH_POINT("snapshot-leader-chunk");
    return st;
}

sx_status sx_replica_append(sx_replica_set *rs, const Shardex__Internal__V1__AppendRequest *req,
                            Shardex__Internal__V1__AppendResponse *resp, sx_arena *arena,
                            sx_err *err)
{
    replica *r = get_replica(rs, req->partition);
    if (!r)
        return sx_err_set(err, SX_UNAVAILABLE, "partition %u: not (yet) hosted here",
                          req->partition);
    uint64_t *epochs = sx_malloc((req->n_entries + 1) * sizeof(*epochs));
    for (size_t i = 0; i < req->n_entries; i++)
        epochs[i] = req->entries[i]->epoch;
    sx_repcore_append a = {req->epoch,         req->prev_offset, req->prev_epoch,
                           req->commit_offset, epochs,           req->n_entries};
    uint64_t *ours = NULL;
    sx_repcore_append_plan plan;
    sx_status st = SX_OK;
    pthread_mutex_lock(&r->mu);
    while (r->applying) /* one Append at a time, its apply included */
        pthread_cond_wait(&r->cv, &r->mu);
    if (r->installing || !r->st) {
        pthread_mutex_unlock(&r->mu);
        free(epochs);
        return sx_err_set(err, SX_UNAVAILABLE, "partition %u: %s", req->partition,
                          r->st ? "installing a snapshot" : "no longer hosted here");
    }
    sx_repcore_local l = local_of(r, &a, &ours);
    sx_repcore_follow_plan(&r->core, &a, &l, &plan);
    if (plan.verdict == SX_REPCORE_APPEND_ACCEPT &&
        req->prev_offset + 1 < sx_plog_start(r->st->log))
        /* After a snapshot install, the leader still sends from what we held
         * before: our epoch table and log end tell it where we are now. */
        plan.verdict = SX_REPCORE_APPEND_MISMATCH;
    if (plan.verdict != SX_REPCORE_APPEND_STALE && plan.verdict != SX_REPCORE_APPEND_LEADING &&
        req->snapshot_needed && sx_plog_leo(r->st->log) + 1 < req->log_start)
        want_snapshot_locked(r);
    if (plan.verdict == SX_REPCORE_APPEND_STALE)
        st = sx_err_set(err, SX_FAILED_PRECONDITION,
                        "partition %u: epoch %" PRIu64 " is stale; this replica knows %" PRIu64,
                        req->partition, req->epoch, plan.known_epoch);
    else if (plan.verdict == SX_REPCORE_APPEND_LEADING)
        st = sx_err_set(err, SX_UNAVAILABLE,
                        "partition %u: still leading epoch %" PRIu64 "; waiting for the map",
                        req->partition, plan.known_epoch);
    else if (plan.verdict == SX_REPCORE_APPEND_MISMATCH)
        answer_mismatch(r, resp, arena);
    else
        st = follow(r, req, &a, &plan, resp, err);
    resp->stamp_ms = sx_clock_now_ms(); /* after everything above: see echo_ms */
    pthread_mutex_unlock(&r->mu);
    free(ours);
    free(epochs);
    return st;
}

/* ----------------------------------------------------------------- read -- */

sx_status sx_replica_read_many(sx_replica_set *rs, uint32_t p, char *const *ids, size_t n,
                               uint64_t after_offset, uint64_t deadline_ms, sx_arena *arena,
                               Shardex__Internal__V1__PackedDoc **out, sx_err *err)
{
    sx_status st = sx_replica_wait_applied(rs, p, after_offset, deadline_ms, err);
    replica *r = st == SX_OK ? get_replica(rs, p) : NULL;
    sx_replica_store *s = r ? acquire(r) : NULL;
    if (st == SX_OK && !s)
        st = sx_err_set(err, SX_ABORTED, "partition %u: no longer hosted here", p);
    sx_buf doc = {0};
    for (size_t i = 0; st == SX_OK && i < n; i++) {
        bool found = false;
        out[i] = sx_arena_alloc(arena, sizeof(*out[i]));
        shardex__internal__v1__packed_doc__init(out[i]);
        st = sx_plog_get_doc(s->log, ids[i], strlen(ids[i]), &found, NULL, &doc, err);
        out[i]->found = found;
        if (st == SX_OK && found) {
            out[i]->doc.data = sx_arena_memdup(arena, doc.data, doc.len);
            out[i]->doc.len = doc.len;
        }
    }
    sx_buf_free(&doc);
    sx_replica_store_unref(s);
    return st;
}

sx_status sx_replica_read(sx_replica_set *rs, uint32_t p, const char *id, uint64_t after_offset,
                          uint64_t deadline_ms, sx_arena *arena, Shardex__V1__GetResponse *resp,
                          sx_err *err)
{
    sx_status st = sx_replica_wait_applied(rs, p, after_offset, deadline_ms, err);
    if (st != SX_OK)
        return st;
    replica *r = get_replica(rs, p);
    sx_replica_store *s = r ? acquire(r) : NULL;
    if (!s)
        return sx_err_set(err, SX_ABORTED, "partition %u: no longer hosted here", p);
    bool found = false;
    uint64_t version = 0;
    sx_buf doc = {0};
    st = sx_plog_get_doc(s->log, id, strlen(id), &found, &version, &doc, err);
    if (st == SX_OK && found) {
        ProtobufCAllocator alloc = sx_arena_pb_allocator(arena);
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
    sx_replica_store_unref(s);
    return st;
}

sx_status sx_replica_wait_applied(sx_replica_set *rs, uint32_t p, uint64_t after_offset,
                                  uint64_t deadline_ms, sx_err *err)
{
    replica *r = get_replica(rs, p);
    bool lease = lease_valid(rs);
    if (!r || !lease)
        return sx_err_set(err, SX_ABORTED, "partition %u: this worker does not lead it now", p);
    pthread_mutex_lock(&r->mu);
    for (;;) {
        if (!sx_repcore_leading(&r->core)) {
            pthread_mutex_unlock(&r->mu);
            return sx_err_set(err, SX_ABORTED, "partition %u: this worker does not lead it now", p);
        }
        uint64_t applied = sx_plog_applied(r->st->log);
        bool serving = sx_repcore_serving(&r->core, applied);
        if (applied >= after_offset && serving)
            break;
        uint64_t now = sx_clock_now_ms();
        if (now >= deadline_ms && !serving) {
            uint64_t start = r->core.epoch_start, hw = r->core.hw;
            pthread_mutex_unlock(&r->mu);
            return sx_err_set(err, SX_UNAVAILABLE,
                              "partition %u: the new leader has not yet committed and applied "
                              "its log up to offset %" PRIu64 ", where its epoch began "
                              "(commit %" PRIu64 ", applied %" PRIu64 ")",
                              p, start - 1, hw, applied);
        }
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

/* A follower's staleness bound now (r->mu held): UINT64_MAX when unknown. */
static uint64_t sure_stale_locked(const replica *r, uint64_t now)
{
    if (!r->sure_ms)
        return UINT64_MAX;
    return now > r->sure_ms ? now - r->sure_ms : 0;
}

sx_status sx_replica_wait_follower(sx_replica_set *rs, uint32_t p, uint64_t after_offset,
                                   uint64_t max_stale_ms, uint64_t deadline_ms, uint64_t *stale_ms,
                                   sx_err *err)
{
    replica *r = get_replica(rs, p);
    if (!r)
        return sx_err_set(err, SX_ABORTED, "partition %u: not hosted on this worker", p);
    sx_status st = SX_OK;
    /* Freshness comes with the next Append (at most an idle interval away)
     * or not soon: a refusal at half the time left still reaches the caller
     * before its deadline, for it to count the partition missing. */
    uint64_t start = sx_clock_now_ms();
    uint64_t left = deadline_ms > start ? deadline_ms - start : 0;
    uint64_t fresh_by =
        start + (left / 2 < 2 * SX_REPCORE_IDLE_MS ? left / 2 : 2 * SX_REPCORE_IDLE_MS);
    pthread_mutex_lock(&r->mu);
    for (;;) {
        uint64_t now = sx_clock_now_ms();
        uint64_t applied = r->st ? sx_plog_applied(r->st->log) : 0; /* none: installing */
        uint64_t stale = sure_stale_locked(r, now);
        *stale_ms = stale;
        if (applied >= after_offset && stale <= max_stale_ms)
            break;
        if (now >= fresh_by && stale > max_stale_ms)
            deadline_ms = now; /* refuse now, saying how stale */
        if (now >= deadline_ms && applied < after_offset && stale <= max_stale_ms) {
            st = sx_err_set(err, SX_DEADLINE_EXCEEDED,
                            "partition %u: offset %" PRIu64
                            " not applied on this follower in time (applied %" PRIu64 ")",
                            p, after_offset, applied);
            break;
        }
        if (now >= deadline_ms && stale == UINT64_MAX) {
            st = sx_err_set(err, SX_FAILED_PRECONDITION,
                            "partition %u: this follower cannot bound its staleness (no "
                            "commit heard from a serving leader yet)",
                            p);
            break;
        }
        if (now >= deadline_ms) {
            st = sx_err_set(err, SX_FAILED_PRECONDITION,
                            "partition %u: this follower may be %" PRIu64
                            " ms stale, above the %" PRIu64 " ms asked",
                            p, stale, max_stale_ms);
            break;
        }
        uint64_t wake = stale > max_stale_ms && fresh_by < deadline_ms ? fresh_by : deadline_ms;
        sx_cond_wait_ms(&r->cv, &r->mu, wake - now < 100 ? wake - now : 100);
    }
    pthread_mutex_unlock(&r->mu);
    return st;
}

bool sx_replica_get_view(sx_replica_set *rs, uint32_t p, sx_replica_view *out)
{
    replica *r = get_replica(rs, p);
    memset(out, 0, sizeof(*out));
    if (!r)
        return false;
    bool lease = lease_valid(rs);
    pthread_mutex_lock(&r->mu);
    if (!r->st) {
        pthread_mutex_unlock(&r->mu);
        return false;
    }
    out->store = sx_replica_store_ref(r->st);
    out->log = r->st->log;
    out->ix = r->st->ix;
    out->leading = lease && sx_repcore_leading(&r->core);
    out->epoch = r->core.epoch;
    out->commit = sx_repcore_commit(&r->core);
    out->applied = sx_plog_applied(r->st->log);
    /* A leader that does not serve yet may lack acknowledged writes whatever
     * its own hw says: never fresh (rule 7). */
    bool behind = out->applied < out->commit || (r->core.role == SX_REPCORE_LEADER &&
                                                 !sx_repcore_serving(&r->core, out->applied));
    uint64_t now = sx_clock_now_ms();
    out->stale_ms = !behind ? 0 : now > r->fresh_ms ? now - r->fresh_ms : 1;
    pthread_mutex_unlock(&r->mu);
    return true;
}

void sx_replica_view_release(sx_replica_view *v)
{
    sx_replica_store_unref(v->store);
    v->store = NULL;
}

void sx_replica_hold_log(sx_replica_set *rs, uint32_t p, uint64_t from)
{
    replica *r = get_replica(rs, p);
    if (!r)
        return;
    pthread_mutex_lock(&r->mu);
    sx_repcore_hold_for_indexes(&r->core, from);
    pthread_mutex_unlock(&r->mu);
}

uint32_t sx_replica_partitions(sx_replica_set *rs)
{
    pthread_mutex_lock(&rs->mu);
    uint32_t n = rs->nparts;
    pthread_mutex_unlock(&rs->mu);
    return n;
}

/* ---------------------------------------------------------------- admin -- */

size_t sx_replica_states(sx_replica_set *rs, sx_replica_state *out, size_t cap)
{
    uint32_t P = sx_replica_partitions(rs);
    size_t n = 0;
    for (uint32_t p = 0; p < P; p++) {
        replica *r = get_replica(rs, p);
        sx_replica_store *s = r ? acquire(r) : NULL;
        if (!s)
            continue;
        if (n < cap) {
            sx_replica_state *st = &out[n];
            memset(st, 0, sizeof(*st));
            st->partition = p;
            pthread_mutex_lock(&r->mu);
            st->role = r->core.role;
            st->epoch = r->core.epoch;
            st->commit_offset = sx_repcore_commit(&r->core);
            st->fenced = r->core.fenced;
            pthread_mutex_unlock(&r->mu);
            st->log_end_offset = sx_plog_leo(s->log);
            st->applied_offset = sx_plog_applied(s->log);
            sx_plog_counters(s->log, &st->appends, &st->appended_entries);
            st->log_start_offset = sx_plog_start(s->log);
            pthread_mutex_lock(&r->mu);
            st->trimmed_entries = r->trimmed;
            pthread_mutex_unlock(&r->mu);
        }
        sx_replica_store_unref(s);
        n++;
    }
    return n;
}

void sx_replica_counts(sx_replica_set *rs, uint64_t *snapshots_installed, uint64_t *stores_dropped)
{
    pthread_mutex_lock(&rs->mu);
    *snapshots_installed = rs->snapshots_installed;
    *stores_dropped = rs->stores_dropped;
    pthread_mutex_unlock(&rs->mu);
}

sx_status sx_replica_read_log(sx_replica_set *rs, uint32_t p, uint64_t from, uint32_t max,
                              sx_arena *arena, sx_replica_log *out, sx_err *err)
{
    replica *r = get_replica(rs, p);
    memset(out, 0, sizeof(*out));
    sx_replica_store *s = r ? acquire(r) : NULL;
    if (!s)
        return sx_err_set(err, SX_NOT_FOUND, "partition %u: not hosted here", p);
    if (max == 0 || max > READ_LOG_MAX_ENTRIES)
        max = READ_LOG_MAX_ENTRIES;
    out->entries = sx_arena_alloc(arena, max * sizeof(*out->entries));
    sx_status st;
    for (int tries = 0;; tries++) {
        /* 0: from the start, which a trim may move between the two calls. */
        out->log_start_offset = sx_plog_start(s->log);
        uint64_t at = from ? from : out->log_start_offset;
        st = sx_plog_read(s->log, at, max, READ_LOG_MAX_BYTES, arena, out->entries, &out->n, err);
        if (st != SX_OUT_OF_RANGE || from != 0 || tries == 3)
            break;
    }
    if (st == SX_OK) {
        out->log_end_offset = sx_plog_leo(s->log);
        out->epochs = copy_epochs(s->log, arena, &out->nepochs);
    }
    sx_replica_store_unref(s);
    return st;
}

sx_status sx_replica_scan_docs(sx_replica_set *rs, uint32_t p, sx_replica_doc_cb fn, void *arg,
                               sx_arena *arena, sx_replica_scan_at *at, sx_err *err)
{
    *at = (sx_replica_scan_at){0};
    replica *r = get_replica(rs, p);
    sx_replica_store *s = r ? acquire(r) : NULL;
    if (!s)
        return sx_err_set(err, SX_NOT_FOUND, "partition %u: not hosted here", p);
    /* The snapshot and the applied offset taken together: exactly that position. */
    const sx_snapshot *snap = sx_plog_snapshot(s->log, &at->applied);
    /* Tests hold a scan here across a snapshot swap of its store. */
    SX_DELAY_POINT("replica-scan-docs");
    sx_status st = sx_pindex_salts_at(s->ix, snap, arena, &at->salts, &at->nsalts, err);
    if (st == SX_OK)
        st = sx_plog_scan_docs_at(s->log, snap, fn, arg, err);
    sx_store_release_snapshot(sx_plog_store(s->log), snap);
    sx_replica_store_unref(s);
    return st;
}

/* ------------------------------------------------------------- lifecycle -- */

sx_status sx_replica_create(const sx_replica_opts *opts, sx_replica_set **out, sx_err *err)
{
    *out = NULL;
    sx_replica_set *rs = sx_calloc(1, sizeof(*rs));
    rs->data_dir = sx_strdup(opts->data_dir);
    rs->started_ms = sx_clock_now_ms();
    rs->worker_id = sx_strdup(opts->worker_id);
    rs->coordinator = sx_strdup(opts->coordinator);
    rs->rpc = opts->rpc;
    rs->member = opts->member;
    rs->fsync = opts->fsync;
    rs->write_buffer_bytes = opts->write_buffer_bytes;
    rs->lag_timeout_ms = opts->lag_timeout_ms ? opts->lag_timeout_ms : 2000;
    rs->log_retention_off = opts->log_retention_off;
    rs->log_retention_entries = opts->log_retention_entries;
    rs->log_retention_bytes = opts->log_retention_bytes;
    rs->log_retention_ms = opts->log_retention_ms;
    rs->on_applied = opts->on_applied;
    rs->on_applied_arg = opts->on_applied_arg;
    rs->docs_applied = sx_metrics_counter(
        opts->metrics, "shardex_documents_applied_total",
        "Documents (puts and deletes) applied to this worker's replicas, leaders and followers "
        "alike: with R replicas a write is applied R times across the cluster");
    rs->cache = sx_store_cache_create(32u << 20); /* shared by every partition's store */
    pthread_mutex_init(&rs->mu, NULL);
    pthread_cond_init(&rs->cv, NULL);
    pthread_cond_init(&rs->closed, NULL);
    pthread_cond_init(&rs->compact_cv, NULL);
    rs->snaps = sx_psnap_server_create();
    sx_status st = scan_stores(rs, err);
    if (st != SX_OK) {
        sx_replica_destroy(rs);
        return st;
    }
    pthread_create(&rs->manager, NULL, manager_main, rs);
    pthread_setname_np(rs->manager, "repl-manager");
    rs->manager_started = true;
    pthread_create(&rs->compactor, NULL, compact_main, rs);
    pthread_setname_np(rs->compactor, "repl-compact");
    rs->compactor_started = true;
    *out = rs;
    return SX_OK;
}

void sx_replica_destroy(sx_replica_set *rs)
{
    if (!rs)
        return;
    pthread_mutex_lock(&rs->mu);
    rs->stop = true;
    pthread_cond_broadcast(&rs->cv);
    pthread_cond_broadcast(&rs->compact_cv);
    pthread_mutex_unlock(&rs->mu);
    if (rs->manager_started)
        pthread_join(rs->manager, NULL);
    if (rs->compactor_started)
        pthread_join(rs->compactor, NULL); /* it ends a compaction under way first */
    sx_partmap_release(rs->next_map);
    sx_partmap_release(rs->applied);
    free(rs->pending);
    for (uint32_t p = 0; p < rs->nheld; p++) {
        sx_plog_close(rs->held_log[p]); /* then its observer */
        sx_pindex_close(rs->held_ix[p]);
    }
    free(rs->held_log);
    free(rs->held_ix);
    free(rs->lost);
    sx_pstores_close(rs->stores);
    for (uint32_t p = 0; p < rs->nparts; p++) {
        replica *r = rs->reps[p];
        if (r && r->snap_started)
            pthread_join(r->snap_thread, NULL); /* it sees rs->stop between calls */
    }
    for (uint32_t p = 0; p < rs->nparts; p++) {
        replica *r = rs->reps[p];
        if (!r)
            continue;
        if (r->core.role == SX_REPCORE_LEADER)
            stop_leading(r);
        sx_replica_store_unref(r->st); /* the last reference: readers are gone by now */
        pthread_mutex_destroy(&r->mu);
        pthread_cond_destroy(&r->cv);
        free(r);
    }
    while (rs->dropped) { /* their stores closed when they were dropped, or above */
        replica *r = rs->dropped;
        rs->dropped = r->next_dropped;
        pthread_mutex_destroy(&r->mu);
        pthread_cond_destroy(&r->cv);
        free(r);
    }
    if (rs->retired)
        SX_LOG(SX_LOG_WARN, "replica", "partition=%u a retired store is still held at exit",
               rs->retired->p);
    sx_psnap_server_destroy(rs->snaps); /* sessions of open stores ended as they closed */
    free(rs->reps);
    sx_store_cache_destroy(rs->cache);
    pthread_mutex_destroy(&rs->mu);
    pthread_cond_destroy(&rs->cv);
    pthread_cond_destroy(&rs->closed);
    pthread_cond_destroy(&rs->compact_cv);
    free(rs->data_dir);
    free(rs->worker_id);
    free(rs->coordinator);
    free(rs);
}
