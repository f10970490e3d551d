/* bfthrottle.h: how fast an index backfill may go (worker/backfill.c), as a
 * pure controller: no clock, no threads. The backfill thread feeds it the p99
 * of the worker's foreground writes over the last window (the ones it routed
 * and the ones it led as a log partition's leader: sx_bfthrottle_read) and takes from it
 * the size of the next chunk and the pause before it.
 *
 * AIMD, as TCP does for the same trade (throughput against others' latency):
 *   p99 above the target  chunk halves (not below min), pause doubles (from
 *                         PAUSE_STEP, up to max_pause_ms);
 *   p99 within it, or no  chunk grows by max/8 (up to max), pause halves
 *   writes in the window  (to 0 below 1 ms).
 * A target of 0 is unthrottled: chunk max, no pause, whatever the p99.
 */
#ifndef SX_BFTHROTTLE_H
#define SX_BFTHROTTLE_H

#include "metrics.h"

#include <stddef.h>
#include <stdint.h>

typedef struct sx_bfthrottle {
    double target_s; /* bound on the foreground p99; 0: unthrottled */
    uint32_t min_chunk, max_chunk;
    uint64_t max_pause_ms;
    uint32_t chunk;    /* documents in the next chunk */
    uint64_t pause_ms; /* before the next chunk */
} sx_bfthrottle;

/* Starts at a quarter of max_chunk (max_chunk when unthrottled), no pause.
 * min_chunk is raised to 1 and max_chunk to min_chunk when below. */
void sx_bfthrottle_init(sx_bfthrottle *t, double target_s, uint32_t min_chunk, uint32_t max_chunk,
                        uint64_t max_pause_ms);

/* One window's verdict: p99 in seconds, negative when the window had no
 * foreground writes. */
void sx_bfthrottle_update(sx_bfthrottle *t, double p99);

/* The q-quantile (0 < q <= 1) of the observations between two reads of a
 * histogram with nb bucket bounds (upper, ascending; counts have nb + 1
 * entries, the last +Inf, not cumulative): the bound of the bucket it falls
 * in (the last bound, doubled, for +Inf). Negative when no observation. */
double sx_bfthrottle_quantile(const double *bounds, size_t nb, const uint64_t *before,
                              const uint64_t *after, double q);

/* The controller's input, read: the bucket counts of the n watched
 * histograms (NULL ones skipped; those whose bounds differ from the first's,
 * or more than cap - 1 of them, too), summed into counts (cap entries).
 * Returns the number of bounds (0: none watched) and points *bounds at them.
 * The backfill watches the writes this worker routes (shardex_write_ack_seconds)
 * and those it leads for other routers (shardex_lead_write_seconds). */
#define SX_BFTHROTTLE_BUCKETS_MAX 32 /* a histogram of more bounds is not read */

size_t sx_bfthrottle_read(sx_histogram *const *watch, size_t n, uint64_t *counts, size_t cap,
                          const double **bounds);

#endif
