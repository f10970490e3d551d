/* replica.h: the log replicas a worker hosts, and the driver of the
 * replication protocol between a partition's leader and its followers
 * (REPLICATION.md). The protocol's decisions (commit point, fencing, what an
 * Append does, when to shrink or expand the ISR, role changes) are made by
 * the pure core in repcore.h; this module runs them: threads, locks, the
 * log's I/O, the RPCs and the clock.
 *
 * Roles follow the cluster map: for each partition this worker is a replica
 * of, it is the LEADER (the map names it, at an epoch) or a FOLLOWER.
 *
 * Leader of p at epoch E:
 *   become   records (E, leo + 1) in the epoch table (synced) before any
 *            append; starts from the commit offset it had persisted (it does
 *            not treat its own leo as committed); starts one session per
 *            follower and the append thread.
 *   write    admitted only with a valid lease, as leader in the map, not
 *            fenced, and with at least min_isr members in the ISR; queued;
 *            the append thread takes everything queued (group commit: one
 *            batch, one fsync) and assigns consecutive offsets.
 *   session  per follower: first a probe (its prev = our leo); on mismatch the
 *            follower's epoch table gives the common prefix; then entries
 *            from there, in order, with our commit offset. `match` is what the
 *            follower verifiably holds in this epoch.
 *   commit   hw = min(leo, match of every ISR and pending follower), only
 *            while the ISR has min_isr members and every such follower has
 *            synced in this epoch; hw only rises. Committed entries are
 *            applied, then the writes waiting on them are answered.
 *   lag      a session whose ISR follower has not acknowledged for the lag
 *            timeout while behind asks the coordinator to drop it from the ISR
 *            (compare-and-set at our epoch); until that is accepted, nothing
 *            commits without it (rule 3).
 *   expand   after an acknowledgement, a session asks the coordinator to add
 *            the followers that caught up (rule 3, see repcore.h); from the
 *            moment it asks, commits wait for them too (pending), and the
 *            membership is asked to fetch the new map at once.
 *   reads    Read and ScanLocal (sx_replica_read, sx_replica_wait_applied)
 *            wait until the commit offset reached the end of the log as the
 *            epoch began and that is applied (sx_repcore_serving): entries
 *            there may have been acknowledged by an earlier leader although
 *            the commit offset persisted here lags them (rule 7).
 *   fenced   a follower that knows a newer epoch refuses us: we stop
 *            admitting writes and fail those waiting, until the map moves us.
 *
 * Follower of p:
 *   append   refuses epochs below the highest it knows; checks that the entry
 *            at prev has prev's epoch (else answers mismatch with its epoch
 *            table); skips entries it already has, truncates at the first
 *            conflicting one, appends the rest (synced per --fsync); records
 *            how far it is verified in the current epoch.
 *   apply    up to min(leader's commit, verified), never beyond (rule 7).
 *
 * Role changes come from maps, handled on a manager thread so that the
 * membership thread never waits for a replication call.
 *
 * Stores at start (issue 11): sx_replica_create, before the worker
 * registers, opens every partition store it finds or once created
 * (pstores.h), with LevelDB's paranoid checks. A store that opens is held for
 * the replica the map will name. One that was created and is now missing or
 * corrupt is lost: a corrupt one is set aside (pNNNN.corrupt-<ms>), and the
 * worker tells the coordinator at registration (sx_replica_lost), which takes
 * it out of that partition's ISR even as the last member, so that it never
 * leads with an empty or partial log; the empty store it then copies the log
 * into is made only once the map arrives, after registering. Any other
 * failure to open a store stops the start.
 */
#ifndef SX_REPLICA_H
#define SX_REPLICA_H

#include "membership.h"
#include "metrics.h"
#include "plog.h"
#include "repcore.h"
#include "rpc.h"
#include "shardex/internal/v1/coordinator.pb-c.h"
#include "shardex/internal/v1/replication.pb-c.h"
#include "shardex/v1/shardex.pb-c.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct sx_replica_set sx_replica_set;

typedef enum {
    SX_FSYNC_BATCH = 0,  /* one fsync per group of concurrent writes (default) */
    SX_FSYNC_ALWAYS = 1, /* one fsync per write request */
    SX_FSYNC_NEVER = 2,  /* leave it to the OS: acknowledged writes can be lost on a crash */
} sx_fsync_mode;

typedef struct sx_replica_opts {
    const char *data_dir; /* partitions live in data_dir/partitions/pNNNN */
    const char *worker_id;
    const char *coordinator; /* for ISR changes */
    sx_rpc_client *rpc;      /* borrowed */
    sx_membership *member;   /* borrowed: lease; may be attached later */
    sx_fsync_mode fsync;
    size_t write_buffer_bytes; /* each partition store's memtable; 0: the store's default */
    uint32_t lag_timeout_ms;   /* 0: the lease */
    /* Log retention (docs/architecture.md): unless off, a leader announces
     * a floor SX_REPCORE_TRIM_MARGIN below what every replica it feeds
     * applied, and keeps at least the last `entries`, about the newest
     * `bytes` of entries (by the mean size of the entries it appended) and
     * the entries it appended in the last `ms` (0: no such minimum). A
     * replica the log cannot feed any more is sent to a snapshot. */
    bool log_retention_off;
    uint64_t log_retention_entries;
    uint64_t log_retention_bytes;
    uint64_t log_retention_ms;
    /* The pipeline's next stage: runs (on a replica thread, no lock held; it
     * must not block) whenever a leader applied newly committed entries, so
     * that the index layer ships them at once. It may run until
     * sx_replica_destroy returns. NULL: nothing. */
    void (*on_applied)(void *arg);
    void *on_applied_arg;
    /* Counts the documents (puts and deletes) every hosted replica applies
     * (shardex_documents_applied_total). Borrowed; NULL: not counted. */
    sx_metrics *metrics;
} sx_replica_opts;

/* Opens the stores found under data_dir (see "Stores at start" above) and
 * starts the manager. Fails, with a message naming the partition, when a
 * store cannot be opened for another reason than corruption, or the record
 * of created stores is unreadable. */
sx_status sx_replica_create(const sx_replica_opts *opts, sx_replica_set **out, sx_err *err);
void sx_replica_destroy(sx_replica_set *r); /* accepts NULL */

/* The partitions whose store was found lost by sx_replica_create, ascending;
 * borrowed for r's lifetime. For the registration (sx_membership_opts). */
const uint32_t *sx_replica_lost(const sx_replica_set *r, size_t *n);

/* The membership gives the lease; it is started after the replicas (it calls
 * into them), so it is attached once running. */
void sx_replica_attach_member(sx_replica_set *r, sx_membership *member);

/* For a worker that stops on purpose, once it admits no new write (its
 * lease counts as lost: sx_membership_stop_leading): waits until every write
 * it accepted as a leader has been answered, or until deadline_ms
 * (monotonic). Returns how many are still unanswered then. */
size_t sx_replica_wait_idle(sx_replica_set *r, uint64_t deadline_ms);

/* A newer map arrived: roles are reconciled on the manager thread. */
void sx_replica_on_map(sx_replica_set *r, sx_partmap *map);

/* Heartbeat reports: one per hosted replica. Fills at most cap and returns
 * how many replicas are hosted in all (more than cap: call again with room
 * for them; the number only grows). Any thread. */
size_t sx_replica_reports(void *r, Shardex__Internal__V1__ReplicaReport *out, size_t cap);

/* Leader: appends ops (packed LogOps, borrowed until done runs) to p and calls
 * done once they are committed and applied (offsets, one per op) or failed:
 * SX_ABORTED when this worker does not lead p (the router retries elsewhere),
 * SX_FAILED_PRECONDITION when the ISR is below min_isr, SX_DEADLINE_EXCEEDED
 * at deadline_ms (the ops may still commit later). done runs on a replica
 * thread, or before this returns when the write is refused at once. */
typedef void (*sx_replica_write_done_cb)(void *arg, sx_status st, const sx_err *err,
                                         const uint64_t *offsets, size_t n);
void sx_replica_write(sx_replica_set *r, uint32_t p, ProtobufCBinaryData *ops, size_t n,
                      uint64_t deadline_ms, sx_replica_write_done_cb done, void *arg);

/* Follower: handles a leader's Append. Response arrays are allocated in arena. */
sx_status sx_replica_append(sx_replica_set *r, const Shardex__Internal__V1__AppendRequest *req,
                            Shardex__Internal__V1__AppendResponse *resp, sx_arena *arena,
                            sx_err *err);

/* Leader: the next chunk of a snapshot of p's store (Replication.Snapshot,
 * psnap.h). SX_FAILED_PRECONDITION unless this worker leads p at req->epoch
 * with a lease; sx_psnap_serve's codes. Arrays allocated in arena. */
sx_status sx_replica_snapshot(sx_replica_set *r, const Shardex__Internal__V1__SnapshotRequest *req,
                              Shardex__Internal__V1__SnapshotResponse *resp, sx_arena *arena,
                              sx_err *err);

/* Leader: reads a document once after_offset is applied and this leader
 * serves reads (as sx_replica_wait_applied). SX_ABORTED when not the leader.
 * The document is unpacked into arena-owned memory. */
sx_status sx_replica_read(sx_replica_set *r, uint32_t p, const char *id, uint64_t after_offset,
                          uint64_t deadline_ms, sx_arena *arena, Shardex__V1__GetResponse *resp,
                          sx_err *err);

/* sx_replica_read of n ids at once (ReadMany), waited for once: out[i] (n
 * slots; arena-owned) is ids[i]'s document as stored (packed, not parsed:
 * the store checks what it reads), for a caller that passes it on. */
sx_status sx_replica_read_many(sx_replica_set *r, uint32_t p, char *const *ids, size_t n,
                               uint64_t after_offset, uint64_t deadline_ms, sx_arena *arena,
                               Shardex__Internal__V1__PackedDoc **out, sx_err *err);

/* Leader: waits until after_offset is applied and this leader serves reads
 * (its log as its epoch began is committed and applied, sx_repcore_serving),
 * up to deadline_ms: then SX_UNAVAILABLE while it does not serve yet, else
 * SX_DEADLINE_EXCEEDED (both retryable). SX_ABORTED when this worker does not
 * lead p. */
sx_status sx_replica_wait_applied(sx_replica_set *r, uint32_t p, uint64_t after_offset,
                                  uint64_t deadline_ms, sx_err *err);

/* Follower reads (a hedged query's scan, docs/architecture.md): waits until
 * after_offset is applied on this replica of p, whatever its role, and its
 * view provably lacks no write acknowledged more than max_stale_ms ago, up
 * to deadline_ms. *stale_ms is that bound at return (UINT64_MAX: unknown).
 *
 * How a follower knows: each AppendResponse carries its clock (stamp_ms);
 * the leader echoes the last stamp it received in the next Append (echo_ms)
 * together with its commit offset, and only while it serves reads under its
 * lease. A follower that has applied that commit offset holds every write
 * acknowledged before the echoed instant (the leader read its commit after
 * receiving the stamp, and acknowledges a write only once committed), so
 * its view is at most now - echo_ms stale on its own clock: no clock is
 * compared across machines. An idle leader still sends every
 * SX_REPCORE_IDLE_MS, so a healthy follower's bound stays around that plus
 * a round trip.
 *
 * It waits for freshness only until half the time left, at most two idle
 * intervals (a healthy follower is fresh again by the next Append), so that
 * a refusal reaches the caller before its deadline.
 *
 * Codes: SX_ABORTED p not hosted here; SX_DEADLINE_EXCEEDED after_offset not
 * applied in time; SX_FAILED_PRECONDITION still too stale (or unknown) when
 * it stops waiting for freshness, the message saying how stale. Waits for
 * applies: WAITING. */
sx_status sx_replica_wait_follower(sx_replica_set *r, uint32_t p, uint64_t after_offset,
                                   uint64_t max_stale_ms, uint64_t deadline_ms, uint64_t *stale_ms,
                                   sx_err *err);

/* A reference to one partition store: its log and the indexes that
 * observe it. The replica holds one while it uses the store; every reader
 * that uses a store outside the replica's lock holds one too (a view, the
 * index layer's rebuild cursor, WorkerAdmin's scans). Whoever drops the
 * last reference closes the store, and deletes its directory when it was
 * retired (replaced by a snapshot, or its replica dropped from the map).
 * A retired store takes no new references: a snapshot's store opens only
 * once the old one is closed (LevelDB locks a store by its path within a
 * process, and the live store has one path, pNNNN), and so does a store
 * made again for a partition given back to this worker. Any thread. */
typedef struct sx_replica_store sx_replica_store;
/* Another reference to s (held already by the caller). */
sx_replica_store *sx_replica_store_ref(sx_replica_store *s);
/* Drops a reference; the last one closes (and maybe deletes) the store, on
 * the caller's thread. Accepts NULL. */
void sx_replica_store_unref(sx_replica_store *s);

/* One hosted replica as it is now, for the index layer, with a reference
 * to its store (log and ix are the store's): release it with
 * sx_replica_view_release, soon (a swap or a drop waits for it). */
typedef struct sx_replica_view {
    struct sx_plog *log;
    struct sx_pindex *ix;
    sx_replica_store *store; /* the reference the view holds */
    bool leading;            /* leader in the map, with a lease, not fenced */
    uint64_t epoch;          /* the map's epoch of p */
    uint64_t commit;         /* leader: high watermark; follower: the leader's as last heard */
    uint64_t applied;
    /* 0 when applied reached commit and, a leader, it serves reads; else the
     * time since applied last reached the commit offset it knew (at least 1) */
    uint64_t stale_ms;
} sx_replica_view;

/* False (and nothing held) when p is not hosted here, or its store is
 * being replaced by a snapshot or dropped. */
bool sx_replica_get_view(sx_replica_set *r, uint32_t p, sx_replica_view *out);
/* Drops the view's reference (v->store set to NULL). Accepts a zeroed view. */
void sx_replica_view_release(sx_replica_view *v);

/* The index streams of p (this worker leading it) need its log from `from`
 * on; 0: nothing (sx_repcore_hold_for_indexes). Any thread. */
void sx_replica_hold_log(sx_replica_set *r, uint32_t p, uint64_t from);
/* P, once a map arrived (0 before). */
uint32_t sx_replica_partitions(sx_replica_set *r);

/* For WorkerAdmin (operators, checkers, tests), as plain data; the service
 * layer builds the messages. */

/* One hosted replica's role and offsets. */
typedef struct sx_replica_state {
    uint32_t partition;
    sx_repcore_role role;
    uint64_t epoch; /* the map's epoch of p */
    uint64_t log_end_offset;
    uint64_t commit_offset; /* leader: hw; follower: the leader's as last heard */
    uint64_t applied_offset;
    bool fenced;               /* a leader that learned of a newer epoch */
    uint64_t appends;          /* log batches written since the process started */
    uint64_t appended_entries; /* entries written since the process started */
    uint64_t log_start_offset; /* first offset the log holds: 1 until trimmed */
    uint64_t trimmed_entries;  /* removed by log retention since the process started */
} sx_replica_state;

/* Since the process started: stores replaced by a snapshot, and stores
 * deleted because the map no longer gives this worker their replica. */
void sx_replica_counts(sx_replica_set *r, uint64_t *snapshots_installed, uint64_t *stores_dropped);

/* Every hosted replica, by partition: fills at most cap and returns how many
 * are hosted in all (more than cap: call again with room; it only grows). */
size_t sx_replica_states(sx_replica_set *r, sx_replica_state *out, size_t cap);

/* Part of one replica's log and its whole epoch table, allocated in the
 * arena given (sx_replica_read_log: from 0 reads from the log's start). */
typedef struct sx_replica_log {
    sx_log_entry *entries; /* from the offset asked for on */
    size_t n;
    uint64_t log_end_offset;
    uint64_t log_start_offset; /* first offset held (1 until trimmed) */
    sx_epoch_start *epochs;    /* ascending */
    size_t nepochs;
} sx_replica_log;

/* Up to max entries (0 or above 10000: 10000; about 8 MiB) from offset from
 * (0: the log's start, 1 until trimmed). SX_NOT_FOUND when p is not hosted here; sx_plog_read's
 * codes. */
sx_status sx_replica_read_log(sx_replica_set *r, uint32_t p, uint64_t from, uint32_t max,
                              sx_arena *arena, sx_replica_log *out, sx_err *err);

/* What a scan read besides the documents, at the same snapshot. */
typedef struct sx_replica_scan_at {
    uint64_t applied;                         /* the snapshot's applied offset */
    Shardex__Internal__V1__IndexSalt **salts; /* sx_pindex_salts_at's rows, in the arena */
    size_t nsalts;
} sx_replica_scan_at;

/* Calls fn for each applied document of p in id order (packed Document and
 * its version, borrowed for the call; false stops), at one snapshot whose
 * applied offset and salt rows go to *at (the rows allocated in arena).
 * SX_NOT_FOUND when p is not hosted here. */
typedef bool (*sx_replica_doc_cb)(void *arg, const char *id, size_t id_len, uint64_t version,
                                  const uint8_t *doc, size_t len);
sx_status sx_replica_scan_docs(sx_replica_set *r, uint32_t p, sx_replica_doc_cb fn, void *arg,
                               sx_arena *arena, sx_replica_scan_at *at, sx_err *err);

#endif
