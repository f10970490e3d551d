/* sample.h: split points for a range-partitioned index, chosen from a sample
 * of the data by the worker that receives a CreateIndex without them, before
 * it forwards the call to the coordinator (adminservice.c).
 *
 * Why before the coordinator: every replica must route a value to the same
 * term partition, so the split points must be in the spec, fixed in the
 * coordinator's map, before any index_start marker is appended (docs/
 * indexes.md, "Range partitioning"). A sample taken here only affects how
 * evenly the values spread, never correctness, so it may be stale (writes go
 * on meanwhile) or partial (a uniform sample of each log partition).
 *
 * Not here: re-splitting a live index (the online split, coordinator/coord_index.c).
 * Pure functions and one blocking helper; any thread.
 */
#ifndef SX_SAMPLE_H
#define SX_SAMPLE_H

#include "membership.h"
#include "rpc.h"
#include "shardex/v1/shardex.pb-c.h"
#include "status.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Values of the field kept in all, about: quantiles within a fraction of a
 * percent of the data's. Each log partition gives the same count (ids hash
 * to partitions, so they hold about as many documents each). */
#define SX_SAMPLE_VALUES 100000
/* Bytes one log partition's sample may take on the wire, under the 4 MiB a
 * worker's client receives by default (SX_RPC_DEFAULT_MAX_MESSAGE). */
#define SX_SAMPLE_PARTITION_BYTES (3u * 1024 * 1024)

/* Up to m - 1 split points from n sample values of one type (is_int), as the
 * m-quantiles of the sample: the value at rank t * n / m for t = 1..m-1 or,
 * when that repeats the point before or the smallest value (term partition 0
 * would be empty), the next larger value; fewer points when the sample runs
 * out of distinct values (a very common value fills a partition). vals is
 * sorted in place. Returns the count written to out (at most cap); each
 * out[i] is a deep copy the caller frees with sx_ixkey_value_free. */
size_t sx_sample_pick_splits(Shardex__V1__Value *vals, size_t n, bool is_int, uint32_t m,
                             Shardex__V1__Value **out, size_t cap);

/* Documents to ask of each of `partitions` log partitions so that all of
 * them come to about SX_SAMPLE_VALUES and no answer passes
 * SX_SAMPLE_PARTITION_BYTES, however long the values (at least 1). */
uint32_t sx_sample_per_partition(uint32_t partitions, size_t field_len, bool is_int);

typedef struct sx_sample_opts {
    sx_rpc_client *rpc;    /* borrowed: calls to the leaders */
    sx_rpc_server *here;   /* borrowed: runs the calls aimed at this worker; NULL: by RPC */
    sx_membership *member; /* borrowed: the maps the calls are aimed from */
    uint64_t deadline_ms;  /* every call ends by then (sx_clock_now_ms) */
} sx_sample_opts;

/* Fills spec's split points from the data, for spec->field of spec->type and
 * M = spec->term_partitions (0: the map's default): asks every log
 * partition's leader at once for a sample of the documents holding the
 * field (WorkerAdmin.ScanDocs with sample and field, through sx_fanout_run:
 * retried where the leader moved), keeps the values of the index's type and
 * takes their M-quantiles (sx_sample_pick_splits). Sets
 * spec->term_partitions to the points + 1: 1, with no points, when M is 1 or
 * no two distinct values exist yet (an empty cluster; the index then grows
 * by online splits). spec->split_points is the caller's: free it with
 * sx_sample_free. Codes: SX_UNAVAILABLE before this worker has a map; those
 * of the fan-out, its message prefixed with "sampling field \"F\": ". */
sx_status sx_sample_splits(const sx_sample_opts *o, Shardex__V1__IndexSpec *spec, sx_err *err);

/* Frees the split points sx_sample_splits set (each and the array). */
void sx_sample_free(Shardex__V1__IndexSpec *spec);

#endif
