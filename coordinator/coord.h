/* coord.h: the coordinator's state machine: settings, the worker registry
 * with leases, the assignment of log and term partitions, the index catalog.
 *
 * Every change is written to the metadata store (synced) before it becomes
 * visible: a new map version is announced only once it is durable, so the map
 * version and every epoch only go up, across restarts. Time comes in as an
 * argument (monotonic milliseconds), so tests can drive leases.
 *
 * Leases (docs/architecture.md, "Leases"): the worker steps down lease_ms after
 * sending the last call it heard answered (REPLICATION.md rule 9). Every reply
 * may be that answer, so a heartbeat received at t keeps the worker alive
 * until t + lease_ms + a margin; but a heartbeat saying that the worker has
 * heard no answer for over two leases is refused (it renews nothing), and the
 * worker's lease is then judged as the worker itself sees it: it ended lease_ms
 * after (t - unanswered_ms), and it is dead a margin later. Time the
 * coordinator itself did not run (down, or paused: a gap between ticks much
 * longer than opts.tick_ms) is never held against a worker: after it, every
 * worker known alive gets a fresh lease before anyone is judged.
 *
 * Thread-safe: one mutex inside; fsync happens under it (changes are rare).
 */
#ifndef SX_COORD_H
#define SX_COORD_H

#include "mem.h"
#include "shardex/internal/v1/coordinator.pb-c.h"
#include "shardex/v1/shardex.pb-c.h"
#include "status.h"
#include "sx_limits.h" /* SX_MAX_TERM_PARTITIONS */

#include <stdbool.h>
#include <stdint.h>

/* Limits on cluster settings. */
#define SX_MAX_PARTITIONS 4096
/* Replica moves in flight at once unless opts say otherwise (--max-moves). */
#define SX_COORD_DEFAULT_MAX_MOVES 2
#define SX_COORD_MAX_MOVES_LIMIT 64
/* Index names and fields: 1..128 bytes. */
#define SX_INDEX_NAME_MAX 128

typedef struct sx_coord sx_coord;

typedef struct sx_coord_settings {
    uint32_t partitions;  /* P */
    uint32_t replication; /* R */
    uint32_t min_isr;
    uint32_t term_partitions; /* M */
} sx_coord_settings;

typedef struct sx_coord_opts {
    const char *data_dir; /* the embedded metadata store, unless meta is given */
    struct sx_meta *meta; /* an open metadata store (etcd: meta.h), taken over; NULL: data_dir */
    const char *address;  /* where it serves (ClusterStatus names it); may be NULL */
    sx_coord_settings settings; /* used when the data directory is new */
    /* Which settings the operator gave explicitly: those must match what is
     * stored; the others are taken from the store. */
    bool given_partitions, given_replication, given_min_isr, given_term_partitions;
    uint32_t lease_ms;
    /* How often the caller runs sx_coord_tick (the pause rule); 0: the rule is off. */
    uint32_t tick_ms;
    /* Replica moves in flight at once, cluster-wide (clustermap.h "Moves");
     * 0: SX_COORD_DEFAULT_MAX_MOVES. Not stored: a restart may change it. */
    uint32_t max_moves;
    /* Split a range index's term partition online once its owner counts
     * more entries than this (docs/indexes.md "Online split"); 0: never.
     * Not stored. */
    uint64_t term_split_entries;
    /* Split one also once its load (its owner's writes_per_s + reads_per_s,
     * TermReport) has stayed above term_split_load in every report for
     * term_split_load_window_ms (docs/indexes.md "Online split"); 0: never.
     * Either trigger starts a split. Not stored. */
    uint64_t term_split_load;
    uint64_t term_split_load_window_ms;
    uint32_t hot_value_ways; /* --hot-value-ways: a salt's ways when not given (0: default) */
    /* Salt a value of a global index by itself once its share of the index's
     * recent changes (its partitions' leaders' counts) reaches this, out of
     * at least hot_value_min_changes changes (docs/indexes.md "Hot values");
     * 0: never. Not stored. */
    double hot_value_share;
    uint64_t hot_value_min_changes;
} sx_coord_opts;

/* Opens or creates the coordinator's state in opts->data_dir. Fails with
 * SX_FAILED_PRECONDITION naming the setting when an explicit setting differs
 * from the stored one, SX_INVALID_ARGUMENT for settings out of range. */
sx_status sx_coord_open(const sx_coord_opts *opts, uint64_t now_ms, sx_coord **out, sx_err *err);
void sx_coord_close(sx_coord *c); /* accepts NULL */

/* Where it serves, once known (ClusterStatus names it). */
void sx_coord_set_address(sx_coord *c, const char *address);

/* The epoch of this coordinator as a leader (the metadata store's: 0 for
 * the embedded one), carried by every map and answer it gives workers. */
uint64_t sx_coord_epoch(const sx_coord *c);

/* The lease workers are given now. */
uint32_t sx_coord_lease_ms(const sx_coord *c);

/* The effective settings (stored ones after a restart). */
sx_coord_settings sx_coord_get_settings(const sx_coord *c);

/* A durable map version, shared read-only: acquire, read msg, release (from
 * any thread; the release signature fits sx_rpc_call_on_done). */
typedef struct sx_coord_map {
    const Shardex__Internal__V1__ClusterMap *msg;
} sx_coord_map;
sx_coord_map *sx_coord_map_acquire(sx_coord *c);
void sx_coord_map_release(void *map);

/* Registers (or re-registers) worker `id` at `address`: it becomes alive with a
 * new incarnation and a fresh lease, and assignment runs. *map is acquired.
 * A worker registering again leaves every ISR that keeps another live member
 * (the elr rule of clustermap.h applies). */
sx_status sx_coord_register(sx_coord *c, const char *id, const char *address, uint64_t now_ms,
                            int32_t *index, uint64_t *incarnation, sx_coord_map **map, sx_err *err);

/* sx_coord_register for a worker that found the stores of partitions
 * lost[0..nlost) corrupt or missing when it started (partitions >= P are
 * ignored): it leaves their ISR and eligible leaders even as the last member
 * (sx_clustermap_store_lost), so it never leads with what is left; a partition
 * left with an empty ISR waits for an eligible replica, and with none has no
 * leader until an operator decides (logged as an error). */
sx_status sx_coord_register_lost(sx_coord *c, const char *id, const char *address,
                                 const uint32_t *lost, size_t nlost, uint64_t now_ms,
                                 int32_t *index, uint64_t *incarnation, sx_coord_map **map,
                                 sx_err *err);
/* sx_coord_register from a worker process that drew `nonce` (0: none). A
 * retry, i.e. the same nonce as the registration that made the current
 * incarnation, from the same address, while that incarnation is alive and has
 * not heartbeated yet (so its process never heard the answer), gets the same
 * index and incarnation and a fresh lease, and changes nothing else: no epoch
 * is raised, no map version published. */
sx_status sx_coord_register_nonce(sx_coord *c, const char *id, const char *address, uint64_t nonce,
                                  uint64_t now_ms, int32_t *index, uint64_t *incarnation,
                                  sx_coord_map **map, sx_err *err);

/* Both: a registration from a process that drew `nonce` (0: none) and found
 * the stores of lost[0..nlost) lost. A retry (as in sx_coord_register_nonce)
 * changes nothing, lost stores included: the first attempt handled them. */
sx_status sx_coord_register_ex(sx_coord *c, const char *id, const char *address, uint64_t nonce,
                               const uint32_t *lost, size_t nlost, uint64_t now_ms, int32_t *index,
                               uint64_t *incarnation, sx_coord_map **map, sx_err *err);

/* A worker that stops on purpose leaves: (id, incarnation) is declared dead
 * now, its leaderships and term partitions go to others (as when a lease
 * expires), and *map is acquired with the result. The worker stopped acting
 * on its lease before asking, so nothing waits for the lease to run out. A
 * repeated call for a worker already gone answers the current map.
 * SX_FAILED_PRECONDITION for an unknown worker or another incarnation. */
sx_status sx_coord_leave(sx_coord *c, const char *id, uint64_t incarnation, sx_coord_map **map,
                         sx_err *err);

/* The index layer's part of a heartbeat received at now_ms (volatile, like
 * replica reports): leaders' per-index counts and owners' term partition
 * watermarks, counts and loads. A term partition's load is judged over the
 * reports of its owner at one epoch: it has been above --term-split-load
 * since the first of an unbroken run of reports above it. */
void sx_coord_index_reports(sx_coord *c, const char *id,
                            Shardex__Internal__V1__IndexReport *const *ix, size_t nix,
                            Shardex__Internal__V1__TermReport *const *terms, size_t nterms,
                            uint64_t now_ms);

/* Renews the lease of (id, incarnation) and records its replica reports.
 * *map is acquired when the current version differs from known_version, else
 * NULL. SX_FAILED_PRECONDITION when the worker must register again. */
sx_status sx_coord_heartbeat(sx_coord *c, const char *id, uint64_t incarnation,
                             uint64_t known_version,
                             Shardex__Internal__V1__ReplicaReport *const *reports, size_t nreports,
                             uint64_t now_ms, sx_coord_map **map, sx_err *err);

/* What a heartbeat says about the answers its worker heard (HeartbeatRequest). */
typedef struct sx_coord_heard {
    uint64_t seq;           /* rising within the worker's process; 0: not numbered */
    uint64_t unanswered_ms; /* from the send of its last answered call to this send */
} sx_coord_heard;

/* sx_coord_heartbeat with what the worker heard (NULL: as {0, 0}, which is
 * what sx_coord_heartbeat passes). A heartbeat numbered at or below the
 * highest number heard from this incarnation (late, or a duplicate) renews
 * nothing and records no replica reports (*map as usual). One that has heard no answer
 * for more than two leases, not counting the time the coordinator did not
 * run, renews nothing either and fails with SX_FAILED_PRECONDITION: its lease
 * is judged from unanswered_ms alone (see the top of this file). */
sx_status sx_coord_heartbeat_heard(sx_coord *c, const char *id, uint64_t incarnation,
                                   const sx_coord_heard *heard, uint64_t known_version,
                                   Shardex__Internal__V1__ReplicaReport *const *reports,
                                   size_t nreports, uint64_t now_ms, sx_coord_map **map,
                                   sx_err *err);

/* Declares workers whose lease ran out dead and reassigns. Call periodically,
 * every opts.tick_ms. When the gap since the previous tick (or since open) is
 * longer than the pause limit (three ticks, and at least half a lease) the
 * coordinator itself did not run: every worker known alive gets a fresh lease
 * instead, as after a restart, and nobody is judged on that gap. Heartbeats
 * and registrations notice such a gap too, if they come first. */
void sx_coord_tick(sx_coord *c, uint64_t now_ms);

/* A leader's request to change its partition's ISR. */
typedef struct sx_coord_isr_change {
    uint32_t partition;
    uint64_t epoch;       /* the leader's: the partition's current one */
    uint64_t isr_version; /* the ISR it changes */
    const int32_t *isr;   /* the new ISR, worker indexes */
    size_t nisr;
    /* incarnations[i]: the process of isr[i] the leader verified (its own
     * for itself); one per member. A member that is no longer that live
     * process has proven nothing: the change is refused. */
    const uint64_t *incarnations;
    size_t nincarnations;
} sx_coord_isr_change;

/* A leader's compare-and-set of its partition's ISR (see
 * sx_clustermap_change_isr), by worker id. FAILED_PRECONDITION when id does
 * not lead the partition, the epoch or ISR version moved on, or a member is
 * not the live incarnation named; INVALID_ARGUMENT for a malformed request.
 * On success *map (acquired) holds the new version. */
sx_status sx_coord_change_isr(sx_coord *c, const char *id, const sx_coord_isr_change *ch,
                              sx_coord_map **map, sx_err *err);

/* Partition `partition`'s leader (at `epoch`) finished backfilling index
 * index_id. *state receives the index's state afterwards. */
sx_status sx_coord_report_backfill(sx_coord *c, const char *id, uint64_t index_id,
                                   uint32_t partition, uint64_t epoch,
                                   Shardex__V1__IndexState *state, sx_err *err);

/* Index catalog. Results are allocated in arena. */
sx_status sx_coord_create_index(sx_coord *c, const Shardex__V1__IndexSpec *spec, sx_arena *arena,
                                Shardex__V1__IndexInfo **info, sx_err *err);
sx_status sx_coord_drop_index(sx_coord *c, const char *name, sx_err *err);
void sx_coord_list_indexes(sx_coord *c, sx_arena *arena, Shardex__V1__ListIndexesResponse *out);

/* Shardex.SplitIndex: splits serving term partition t of range index `name`
 * at `at` (NULL or unset: the median its owner last reported) into two
 * shadows, recorded in a new map version (docs/indexes.md "Online split");
 * the swap follows from heartbeats (sx_coord_index_reports). *info (in
 * arena) is the index after. Codes: NOT_FOUND (no such index);
 * INVALID_ARGUMENT naming the field (not range-partitioned, t not serving,
 * at not of the index's type or not strictly inside t's range);
 * FAILED_PRECONDITION (a split in progress, the index still building, no
 * median known, the most term partitions reached). */
sx_status sx_coord_split_index(sx_coord *c, const char *name, uint32_t t,
                               const Shardex__V1__Value *at, sx_arena *arena,
                               Shardex__V1__IndexInfo **info, sx_err *err);

/* A salt's ways when neither the request nor --hot-value-ways says (capped
 * at the index's serving term partitions), and the most salts per index. */
#define SX_HOT_VALUE_WAYS_DEFAULT 8u
#define SX_MAX_SALTS_PER_INDEX 64u

/* Shardex.SaltIndex: spreads `value` of global index `name` over `ways` term
 * partitions (0: --hot-value-ways, capped at the serving ones), recorded in
 * a new map version (docs/indexes.md "Hot values"); each log partition's
 * leader appends the marker. *info (in arena) is the index after. Codes:
 * NOT_FOUND (no such index); INVALID_ARGUMENT naming the field (name: not
 * GLOBAL; value: not of the index's type, already salted; ways: not in
 * [2, serving term partitions]); FAILED_PRECONDITION (the most salted values
 * reached). */
sx_status sx_coord_salt_index(sx_coord *c, const char *name, const Shardex__V1__Value *value,
                              uint32_t ways, sx_arena *arena, Shardex__V1__IndexInfo **info,
                              sx_err *err);

/* Marks worker `id` draining (cancel: not draining) and reassigns: it gets
 * nothing new, and its replicas (add-then-drop), leaderships and term
 * partitions move off it, max_moves at a time. Stored. Idempotent. *out
 * (allocated in arena) is its status: drained once it holds nothing.
 * NOT_FOUND for an unknown id, FAILED_PRECONDITION for a removed one. */
sx_status sx_coord_drain(sx_coord *c, const char *id, bool cancel, uint64_t now_ms, sx_arena *arena,
                         Shardex__V1__WorkerStatus **out, sx_err *err);

/* Forgets dead worker `id` for good: it leaves every replica set, ISR and
 * ELR, its replicas are re-created elsewhere, and if it registers again it
 * is a new, empty worker. FAILED_PRECONDITION naming the worker when it is
 * alive, and, unless force, when it is the only replica known to hold a
 * partition's committed entries (sx_clustermap_sole_holder), naming those
 * partitions. With force those partitions continue from what their other
 * replicas hold (possibly missing acknowledged writes), or empty;
 * *lost and *nlost (allocated in arena) lists them. Removing a removed worker
 * again is OK and changes nothing. NOT_FOUND for an unknown id. */
sx_status sx_coord_remove(sx_coord *c, const char *id, bool force, sx_arena *arena, uint32_t **lost,
                          size_t *nlost, sx_err *err);

/* Fills the client contract's ClusterStatus from the map and the latest
 * replica reports; everything is allocated in arena. */
void sx_coord_status(sx_coord *c, uint64_t now_ms, sx_arena *arena,
                     Shardex__V1__ClusterStatusResponse *out);

/* Adds the control plane's part (metadata, coordinator_epoch, coordinators,
 * etcd_members) from the metadata store: with etcd it asks every member, up
 * to a second, so only for ClusterStatus itself (not for every metrics
 * scrape) and off the rpc threads that must not block. */
void sx_coord_control_status(sx_coord *c, sx_arena *arena, Shardex__V1__ClusterStatusResponse *out);

#endif
