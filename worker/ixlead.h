/* ixlead.h: what a log partition's leader does for the indexes.
 *
 * One thread, for every partition this worker leads:
 *   markers   the map's index catalog is compared with the indexes active in
 *             the partition (sx_pindex); an index_start marker is appended
 *             for each new index and an index_drop for each dropped one, so
 *             that creation and drop sit at one offset of the log; likewise an
 *             index_split marker for each online split in the map the
 *             partition has not applied, and one with `done` once the map
 *             swapped the split in (docs/indexes.md "Online split"). Nothing is
 *             asked again until the markers written are applied (a repeated
 *             marker is a no-op anyway).
 *   shipping  per global index and term partition, a stream: it learns the
 *             owner's watermark (a Ship carrying nothing), then ships the
 *             outbox after it in batches that cover whole offsets, up to
 *             SHIP_INFLIGHT in flight, each (p, epoch, prev, up_to, changes);
 *             an empty batch when idle, so watermarks and staleness move.
 *             A failed or refused batch rewinds the stream to the owner's
 *             watermark. A watermark below the outbox's trimmed floor (a new,
 *             empty owner) gets a rebuild: every entry of the term partition
 *             at one snapshot, then the outbox after it. Acknowledged changes
 *             are trimmed from the outbox. A split's shadows get streams only
 *             once its marker is applied here (their outbox floor, the marker's
 *             offset, makes their first shipment a rebuild); a term partition
 *             the map retired gets none, and its outbox is trimmed. So does
 *             a new global index: its index_start marker sets every term
 *             partition's floor, and the backfill writes no outbox.
 *   backfill  once an index's marker is applied, its backfill is done here
 *             and (global) every term partition acknowledged it (a rebuild's
 *             watermark A >= C), the partition reports its backfill done to
 *             the coordinator (READY when every partition did).
 *
 * Followers ship nothing and keep their outbox whole (see docs/indexes.md).
 */
#ifndef SX_IXLEAD_H
#define SX_IXLEAD_H

#include "membership.h"
#include "replica.h"
#include "rpc.h"

typedef struct sx_ixlead sx_ixlead;

typedef struct sx_ixlead_opts {
    const char *worker_id;
    const char *coordinator;
    sx_rpc_client *rpc; /* borrowed */
} sx_ixlead_opts;

/* The shipper is created before the replicas, which wake it (sx_ixlead_kick
 * as their on_applied), and started once they and the membership exist:
 *   create -> start(replicas, member) -> stop -> (replicas destroyed) -> destroy */
sx_ixlead *sx_ixlead_create(const sx_ixlead_opts *opts);
void sx_ixlead_start(sx_ixlead *l, sx_replica_set *replicas, sx_membership *member);
/* A leader applied something: ship it now rather than at the next tick.
 * Takes the sx_ixlead as void * (an on_applied observer); never blocks; any
 * time between create and destroy. */
void sx_ixlead_kick(void *l);
/* Stops the loop and waits for calls in flight; accepts NULL or a shipper
 * never started. */
void sx_ixlead_stop(sx_ixlead *l);
void sx_ixlead_destroy(sx_ixlead *l); /* stops if needed; accepts NULL */

/* Heartbeat reports of led partitions' indexes (mistyped counts), allocated
 * in arena. */
size_t sx_ixlead_reports(sx_replica_set *replicas, sx_arena *arena,
                         Shardex__Internal__V1__IndexReport ***out);

#endif
