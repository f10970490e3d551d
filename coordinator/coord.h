/* coord.h: the coordinator's state machine: settings, the worker registry
 * with leases, the assignment of log and term partitions, the index catalog.
 *
 * Every change is written to the metadata store (synced) before it becomes
 * visible: a new map version is announced only once it is durable, so the map
 * version and every epoch only go up, across restarts. Time comes in as an
 * argument (monotonic milliseconds), so tests can drive leases.
 *
 * Leases: a worker's lease runs lease_ms + a margin from the last heartbeat the
 * coordinator received; the worker itself steps down lease_ms after the last
 * heartbeat it sent that was answered, which is earlier (REPLICATION.md rule 9).
 * After a restart every worker known alive gets a fresh lease before anyone is
 * judged.
 *
 * Thread-safe: one mutex inside; fsync happens under it (changes are rare).
 */
#ifndef SX_COORD_H
#define SX_COORD_H

#include "mem.h"
#include "shardex/internal/v1/coordinator.pb-c.h"
#include "shardex/v1/shardex.pb-c.h"
#include "status.h"

#include <stdbool.h>
#include <stdint.h>

/* Limits on cluster settings. */
#define SX_MAX_PARTITIONS 4096
#define SX_MAX_TERM_PARTITIONS 4096
/* Index names and fields: 1..128 bytes. */
#define SX_INDEX_NAME_MAX 128

typedef struct sx_coord sx_coord;

typedef struct sx_coord_settings {
    uint32_t partitions;      /* P */
    uint32_t replication;     /* R */
    uint32_t min_isr;
    uint32_t term_partitions; /* M */
} sx_coord_settings;

typedef struct sx_coord_opts {
    const char *data_dir;
    sx_coord_settings settings; /* used when the data directory is new */
    /* Which settings the operator gave explicitly: those must match what is
     * stored; the others are taken from the store. */
    bool given_partitions, given_replication, given_min_isr, given_term_partitions;
    uint32_t lease_ms;
} sx_coord_opts;

/* Opens or creates the coordinator's state in opts->data_dir. Fails with
 * SX_FAILED_PRECONDITION naming the setting when an explicit setting differs
 * from the stored one, SX_INVALID_ARGUMENT for settings out of range. */
sx_status sx_coord_open(const sx_coord_opts *opts, uint64_t now_ms, sx_coord **out, sx_err *err);
void sx_coord_close(sx_coord *c); /* accepts NULL */

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
                            int32_t *index, uint64_t *incarnation, sx_coord_map **map,
                            sx_err *err);

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

/* Renews the lease of (id, incarnation) and records its replica reports.
 * *map is acquired when the current version differs from known_version, else
 * NULL. SX_FAILED_PRECONDITION when the worker must register again. */
/* The index layer's part of a heartbeat (volatile, like replica reports):
 * leaders' per-index counts and owners' term partition watermarks. */
void sx_coord_index_reports(sx_coord *c, const char *id,
                            Shardex__Internal__V1__IndexReport *const *ix, size_t nix,
                            Shardex__Internal__V1__TermReport *const *terms, size_t nterms);

sx_status sx_coord_heartbeat(sx_coord *c, const char *id, uint64_t incarnation,
                             uint64_t known_version,
                             Shardex__Internal__V1__ReplicaReport *const *reports, size_t nreports,
                             uint64_t now_ms, sx_coord_map **map, sx_err *err);

/* Declares workers whose lease ran out dead and reassigns. Call periodically. */
void sx_coord_tick(sx_coord *c, uint64_t now_ms);

/* A leader's compare-and-set of its partition's ISR (see sx_clustermap_change_isr).
 * On success *map (acquired) holds the new version. */
sx_status sx_coord_change_isr(sx_coord *c, const char *id, uint32_t partition, uint64_t epoch,
                              uint64_t isr_version, const int32_t *isr, size_t nisr,
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

/* Fills the client contract's ClusterStatus from the map and the latest
 * replica reports; everything is allocated in arena. */
void sx_coord_status(sx_coord *c, uint64_t now_ms, sx_arena *arena,
                     Shardex__V1__ClusterStatusResponse *out);

#endif
