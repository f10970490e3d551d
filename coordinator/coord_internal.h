/* coord_internal.h: the coordinator's state as its files share it (not a
 * public header: only coordinator/coord*.c include it).
 *
 * The files: coord.c (open and close, the map <-> state conversion, commit
 * and the shared snapshots, assignment), coord_members.c (registration,
 * heartbeats and leases, leave, tick, ISR changes, drain and remove),
 * coord_index.c (the index catalog, backfill, index and term reports, online
 * splits, hot-value salts), coord_status.c (ClusterStatus).
 *
 * Lock discipline: one mutex, sx_coord.mu, guards every field of sx_coord and
 * everything it points to (workers, parts, terms, indexes, cur), except:
 *   - set, lease_ms and meta, fixed once sx_coord_open returns, which
 *     sx_coord_get_settings, sx_coord_lease_ms and sx_coord_epoch read
 *     without it;
 *   - a published snapshot (snap), immutable and reference-counted: readers
 *     hold a reference, not the lock (sx_coord_map_acquire/_release);
 *   - meta's own calls: sx_meta_save runs under mu (fsync under the lock:
 *     changes are rare), sx_meta_status outside it (it may ask etcd).
 * Public entry points take mu; every function here ending in _locked expects
 * it held and never takes it. Under mu nothing calls out of the
 * coordinator but the metadata store and the log.
 */
#ifndef SX_COORD_INTERNAL_H
#define SX_COORD_INTERNAL_H

#include "clustermap.h"
#include "coord.h"
#include "meta.h"

#include <pthread.h>
#include <stdatomic.h>

/* A term partition owner's report, copied out of its heartbeat. */
typedef struct term_report {
    uint64_t index_id;
    uint32_t t;
    uint64_t epoch;
    bool ready;
    uint64_t *wm; /* [nwm] */
    size_t nwm;
    uint64_t oldest_as_of_ms;         /* wall clock; 0: not ready */
    uint64_t entries;                 /* as last counted by the owner */
    Shardex__V1__Value *median;       /* owned (sx_ixkey_value_dup); NULL: not counted or empty */
    double writes_per_s, reads_per_s; /* its load, as the owner measures it */
    /* Above --term-split-load in this report and every one before it from
     * this owner at this epoch since load_since_ms (when it was first). */
    bool load_above;
    uint64_t load_since_ms;
} term_report;

typedef struct worker {
    char *id;
    char *addr;
    bool alive;
    bool draining; /* stored: shardex worker drain */
    bool removed;  /* stored: shardex worker remove; cleared when it registers again */
    uint64_t incarnation;
    uint64_t lease_deadline_ms; /* volatile: not stored; fresh after a restart */
    uint64_t hb_seq;            /* volatile: the highest heartbeat number of this incarnation */
    uint64_t reg_nonce;         /* volatile: the nonce of the registration that made it; 0 none */
    bool heartbeated;           /* volatile: it heartbeated, so its process heard that answer */
    uint64_t known_version;     /* volatile: the map version its latest heartbeat had installed */
    Shardex__Internal__V1__ReplicaReport *reports; /* latest heartbeat's, volatile */
    size_t nreports;
    Shardex__Internal__V1__IndexReport *ixreports; /* latest, volatile */
    size_t nixreports;
    term_report *treports; /* latest, volatile */
    size_t ntreports;
} worker;
typedef struct index_entry {
    char *name;
    char *field;
    Shardex__V1__ValueType type;
    bool local, global;
    uint32_t term_partitions; /* resolved; 0 for an index that is not global */
    Shardex__V1__Partitioning partitioning;
    size_t nsplits;              /* RANGE: term_partitions - 1, fixed at creation */
    Shardex__V1__Value **splits; /* owned (sx_ixkey_value_dup) */
    Shardex__V1__IndexState state;
    uint64_t id;
    uint32_t first_term; /* first of its term partitions in terms[] */
    bool *backfilled;    /* [P] */
    /* Online splits (IndexEntry.splits), in seq order, owned: every one but
     * the last is done. Split k's shadows are term partitions
     * term_partitions + 2(k-1) and + 1. */
    Shardex__Internal__V1__IndexSplit **osplits;
    size_t nosplits;
    /* Salted hot values (IndexEntry.salts), in seq order, owned. */
    Shardex__Internal__V1__IndexSalt **osalts;
    size_t nosalts;
    /* Hot values as each partition's leader last counted them (volatile):
     * [P], allocated with the first report. */
    struct hot_part *hot;
    size_t hot_parts;
    double *salt_share; /* [nosalts]: the salted values' share when last measured */
    /* [nosalts]: the map version that recorded each (volatile: after a
     * restart, the version loaded, which every live worker reaches anew). */
    uint64_t *salt_announced;
} index_entry;
typedef struct snap {
    sx_coord_map pub;
    _Atomic int refs;
    Shardex__Internal__V1__ClusterMap *owned;
} snap;

struct sx_coord {
    pthread_mutex_t mu; /* guards all below but set, lease_ms and meta: see the top */
    sx_coord_settings set;
    char *cluster_id;
    uint32_t lease_ms;
    uint32_t max_moves;          /* replica moves in flight at once (sx_assign_settings) */
    uint64_t term_split_entries; /* split a term partition above this many entries (0: never) */
    uint64_t term_split_load;    /* ... or above this many ops/s (0: never) ... */
    uint64_t term_split_load_window_ms; /* ... for this long */
    uint32_t hot_value_ways;            /* a salt's ways when not given (0: the default) */
    double hot_value_share;             /* salt a value above this share of changes (0: never) */
    uint64_t hot_value_min_changes;     /* ... out of at least this many */
    uint64_t margin_ms;                 /* the coordinator waits this much longer than the worker */
    /* The lease rules (coord.h, docs/architecture.md "Leases"), all volatile: */
    uint64_t unanswered_max_ms;        /* a worker unanswered longer is refused: two leases */
    uint32_t tick_ms;                  /* how often sx_coord_tick runs; 0: unknown */
    uint64_t pause_ms;                 /* a gap between ticks longer than this: we did not run */
    uint64_t last_tick_ms;             /* the last tick (or open, or the end of a pause) */
    uint64_t down_from_ms, down_to_ms; /* the last stretch we did not run (down or paused) */
    sx_meta *meta;
    char *address; /* this coordinator's, for ClusterStatus */
    worker *workers;
    uint32_t nworkers;
    sx_log_part *parts; /* [P] */
    sx_term_part *terms;
    uint32_t nterms;
    index_entry *indexes;
    uint32_t nindexes;
    uint64_t version;
    uint64_t next_incarnation;
    uint64_t next_index_id;
    snap *cur; /* the durable map of `version` */
};

/* Term partition numbers e uses (retired ones included). */
static inline uint32_t ix_terms(const index_entry *e)
{
    return e->term_partitions + 2 * (uint32_t)e->nosplits;
}

/* ------------------------------------------------------------- coord.c -- */

/* Makes the current state durable and visible as a new version (version + 1,
 * stored synced, then published); aborts the process when it cannot store. */
void sx__coord_commit_locked(sx_coord *c, const char *why);

/* The current snapshot with one more reference (the caller releases it). */
sx_coord_map *sx__coord_acquire_locked(sx_coord *c);

/* Runs assignment on the current liveness; true if it changed anything
 * (the caller commits). */
bool sx__coord_assign_locked(sx_coord *c);

/* Worker id's index in c->workers, or -1. */
int32_t sx__coord_find_worker_locked(const sx_coord *c, const char *id);

/* Logs, loudly, that partition p's ISR lost every store, and who may still lead. */
void sx__coord_report_isr_lost_locked(const sx_coord *c, uint32_t p);

/* ----------------------------------------------------- coord_members.c -- */

/* Derives margin_ms, unanswered_max_ms and pause_ms from lease_ms and tick_ms. */
void sx__coord_lease_rules_locked(sx_coord *c);

/* Every worker known alive: a lease as if it had just heartbeated at now_ms. */
void sx__coord_fresh_leases_locked(sx_coord *c, uint64_t now_ms);

/* ------------------------------------------------------- coord_index.c -- */

/* Frees wk's index and term reports and empties them. */
void sx__coord_clear_index_reports(worker *wk);

/* Frees what e owns (not e itself). */
void sx__coord_index_free(index_entry *e);

/* e as the stored map holds it, in arena a; borrows e's strings, splits and
 * salts, so it is packed before e changes. */
Shardex__Internal__V1__IndexEntry *sx__coord_index_msg(const sx_coord *c, const index_entry *e,
                                                       sx_arena *a);

/* Fills e (zeroed) from stored entry o of map m, for c's partitions;
 * SX_DATA_LOSS when o is not valid in m. What it filled before failing,
 * sx__coord_index_free frees. */
sx_status sx__coord_index_load(sx_coord *c, index_entry *e,
                               const Shardex__Internal__V1__IndexEntry *o,
                               const Shardex__Internal__V1__ClusterMap *m, sx_err *err);

/* e as ListIndexes and ClusterStatus show it, allocated in a. */
Shardex__V1__IndexInfo *sx__coord_info_of(const sx_coord *c, const index_entry *e, sx_arena *a);

/* Turns recorded salts active once every live worker has installed the map
 * version that recorded them (commits if any did). */
void sx__coord_salts_activate_locked(sx_coord *c, uint64_t now_ms);

/* ------------------------------------------------------ coord_status.c -- */

/* Worker w as ClusterStatus shows it, with what it holds, allocated in a. */
Shardex__V1__WorkerStatus *sx__coord_worker_status_locked(const sx_coord *c, uint32_t w,
                                                          uint64_t now_ms, sx_arena *a);

#endif
