/* backfill.h: the worker's backfill thread: runs the chunks of every index
 * backfill of every replica it hosts (leaders and followers alike:
 * worker/pindex.h, "Backfill, in chunks"), one chunk at a time, round-robin
 * over partitions, at the pace the throttle (bfthrottle.h) sets from the p99
 * of the worker's foreground writes. One thread per worker, not per
 * partition: the backfill is background work and competes for the same
 * disk as the writes it must not slow.
 *
 * Between chunks it holds no lock; a chunk holds its partition's plog mutex
 * for its documents only. It does not decide what is complete for the
 * cluster: the shipper (ixlead.c) rebuilds a global index's term partitions
 * from snapshots (the chunks write no outbox), and reports the partition
 * done after the chunk that finishes and the term partitions' acknowledgement.
 *
 * Thread-safety: create, start, stop and destroy from the main thread.
 */
#ifndef SX_BACKFILL_H
#define SX_BACKFILL_H

#include "metrics.h"
#include "replica.h"

#include <stdint.h>

typedef struct sx_backfill sx_backfill;

#define SX_BACKFILL_WATCH_MAX 4

typedef struct sx_backfill_opts {
    uint64_t max_write_p99_ms; /* throttle's bound; 0: unthrottled */
    uint32_t max_chunk;        /* documents per chunk at most; 0: SX_BACKFILL_CHUNK_DEFAULT */
    /* The foreground write latencies the throttle watches (sharing one set of
     * bounds: sx_bfthrottle_read), borrowed for the thread's life; NULL
     * entries are skipped. The worker's: Put and Delete acknowledgements it
     * routed, and the Replication.Write calls it led for other routers. */
    sx_histogram *watch[SX_BACKFILL_WATCH_MAX];
} sx_backfill_opts;

#define SX_BACKFILL_CHUNK_DEFAULT 1000

sx_backfill *sx_backfill_create(const sx_backfill_opts *opts);
/* Starts the thread over replicas (borrowed until stop). */
void sx_backfill_start(sx_backfill *b, sx_replica_set *replicas);
/* Joins the thread after its chunk in progress; then nothing calls into the
 * replicas. Accepts NULL and a backfill never started. */
void sx_backfill_stop(sx_backfill *b);
void sx_backfill_destroy(sx_backfill *b); /* stops first; accepts NULL */

#endif
