/* partmap.h: one version of the cluster map as a worker reads it.
 *
 * The coordinator sends the map as a ClusterMap message; this is the typed,
 * immutable view every worker module uses instead of the raw message. It is
 * built once when a map is installed (sx_partmap_create checks the
 * invariants the lookups rely on, so the lookups themselves never index out
 * of range), shared by reference counting, and never changes: a newer map is
 * a new view. "Who leads p", "is that me", "who owns term partition t of
 * index i", "the index named n" and the time one call attempt may take are
 * answered here and only here.
 *
 * Pure data: no I/O, no clock, no locks. Any thread may use a view it holds
 * a reference to.
 */
#ifndef SX_PARTMAP_H
#define SX_PARTMAP_H

#include "ixkey.h"
#include "shardex/internal/v1/coordinator.pb-c.h"
#include "status.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct sx_partmap sx_partmap;

/* The lease a map that names none stands for. */
#define SX_PARTMAP_DEFAULT_LEASE_MS 2000

/* Where one call goes: a worker, its address, and the epoch the map gives
 * the partition it is called for. address lives as long as the map. */
typedef struct sx_partmap_target {
    int32_t worker;
    const char *address;
    uint64_t epoch;
} sx_partmap_target;

/* Builds the view of map for the worker whose stable id is self_id (NULL or
 * absent from the map: the view has no self). Takes ownership of `owner`,
 * the unpacked message that holds map (freed with sx_rpc_free when the last
 * reference goes; it may be map itself); on failure owner is freed too.
 * SX_INVALID_ARGUMENT, naming what is wrong, for a map that breaks the
 * invariants: P equal to the number of log partitions, worker indexes in
 * range, at most SX_MAX_REPLICAS replicas, an ISR within the replicas, an
 * index's term partitions within the map's. Returns one reference. */
sx_status sx_partmap_create(ProtobufCMessage *owner, const Shardex__Internal__V1__ClusterMap *map,
                            const char *self_id, sx_partmap **out, sx_err *err);

/* A new reference (returns pm); NULL passes through. */
sx_partmap *sx_partmap_acquire(sx_partmap *pm);
/* Drops one reference; the last frees the view and its message. Accepts
 * NULL. Takes void * so that it serves as a release callback. */
void sx_partmap_release(void *pm);

/* The message the view was built from, borrowed while the reference is. */
const Shardex__Internal__V1__ClusterMap *sx_partmap_msg(const sx_partmap *pm);

uint64_t sx_partmap_version(const sx_partmap *pm);
/* P, fixed at cluster creation. */
uint32_t sx_partmap_partitions(const sx_partmap *pm);
uint32_t sx_partmap_min_isr(const sx_partmap *pm);
/* The workers' lease (SX_PARTMAP_DEFAULT_LEASE_MS when the map names none). */
uint32_t sx_partmap_lease_ms(const sx_partmap *pm);
/* How long one attempt of a call to a partition's leader or a term
 * partition's owner may wait: two leases, long enough for a slow follower to
 * be dropped from the ISR, short enough to move on from a target that
 * stopped (paused, cut off) once the map has. */
uint64_t sx_partmap_attempt_ms(const sx_partmap *pm);

/* This worker's index in the map, -1 when it is not in it. */
int32_t sx_partmap_self(const sx_partmap *pm);
/* Worker w, NULL when out of range. */
const Shardex__Internal__V1__WorkerEntry *sx_partmap_worker(const sx_partmap *pm, int32_t w);
/* Index of the worker with stable id `id`, -1 when absent. */
int32_t sx_partmap_worker_named(const sx_partmap *pm, const char *id);

/* Log partition p, NULL when p >= P. */
const Shardex__Internal__V1__LogPartition *sx_partmap_part(const sx_partmap *pm, uint32_t p);
/* p's leader, -1 when it has none (or p >= P). */
int32_t sx_partmap_leader(const sx_partmap *pm, uint32_t p);
/* Whether this worker is p's leader in the map (the lease is not the map's
 * business: the caller checks it). */
bool sx_partmap_leads(const sx_partmap *pm, uint32_t p);
bool sx_partmap_hosts(const sx_partmap *pm, uint32_t p, int32_t w);
bool sx_partmap_in_isr(const sx_partmap *pm, uint32_t p, int32_t w);
/* Whether worker w (>= 0) may delete its store of p: pm names it neither
 * among p's replicas nor in its ISR or ELR, whose members may be elected
 * (their data may hold acknowledged writes). False for an unknown p. Whether
 * pm is new enough to act on is the caller's (worker/replica.c). */
bool sx_partmap_may_drop(const sx_partmap *pm, uint32_t p, int32_t w);
/* Where to send a call for p: its leader, alive. SX_UNAVAILABLE ("partition
 * 3 has no live leader") otherwise. */
sx_status sx_partmap_leader_target(const sx_partmap *pm, uint32_t p, sx_partmap_target *out,
                                   sx_err *err);

/* Index entries by id and by name; NULL when absent (or without a spec). */
const Shardex__Internal__V1__IndexEntry *sx_partmap_index(const sx_partmap *pm, uint64_t id);
const Shardex__Internal__V1__IndexEntry *sx_partmap_index_named(const sx_partmap *pm,
                                                                const char *name);
/* Whether m's index entries are as coordinator/coord_index.c makes them: term
 * partitions within the map's, splits and salts well formed (routing trusts
 * them). sx_partmap_create checks this; the coordinator checks it on the map
 * it loads, so that it never sends a map every worker would refuse. */
sx_status sx_partmap_check_indexes(const Shardex__Internal__V1__ClusterMap *m, sx_err *err);
/* The term partition numbers e uses: spec.term_partitions plus 2 per split
 * (coordinator.proto, IndexEntry.splits). */
uint32_t sx_partmap_term_count(const Shardex__Internal__V1__IndexEntry *e);
/* e's routing (borrowing from e): with every split of the map (done_only
 * false: the outbox's view once the markers are applied) or only those done
 * (the layout queries plan against: shadows not yet swapped in are not
 * read). */
void sx_partmap_def(const Shardex__Internal__V1__IndexEntry *e, bool done_only, sx_ixkey_def *d);
/* Term partition t of index e (an entry of this map), NULL when t is not
 * one of its term partitions. */
const Shardex__Internal__V1__TermPartition *
sx_partmap_term(const sx_partmap *pm, const Shardex__Internal__V1__IndexEntry *e, uint32_t t);
/* Where to send a call for term partition t of index e: its owner, alive,
 * with the term partition's epoch. SX_NOT_FOUND when t is not one of e's
 * term partitions, SX_UNAVAILABLE when it has no live owner. */
sx_status sx_partmap_term_target(const sx_partmap *pm, const Shardex__Internal__V1__IndexEntry *e,
                                 uint32_t t, sx_partmap_target *out, sx_err *err);

#endif
