/* sample.h: split points for a range-partitioned index, chosen by the tool
 * from the data before the index is created.
 *
 * Why the tool, before CreateIndex: every replica must route a value to the
 * same term partition, so the split points must be in the spec, fixed in the
 * coordinator's map, before any index_start marker is appended (docs/
 * indexes.md, "Range partitioning"). A sample taken here only affects how
 * evenly the values spread, never correctness, so it may be stale (writes go
 * on meanwhile) or partial (every `step`-th document).
 *
 * Not here: re-splitting a live index (designed in docs/indexes.md, not built).
 * Pure functions and one blocking helper; any thread.
 */
#ifndef SX_SAMPLE_H
#define SX_SAMPLE_H

#include "rpc.h"
#include "shardex/v1/shardex.pb-c.h"
#include "status.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Up to m - 1 split points from n sample values of one type (is_int), as the
 * m-quantiles of the sample: the value at rank t * n / m for t = 1..m-1 or,
 * when that repeats the point before or the smallest value (term partition 0
 * would be empty), the next larger value; fewer points when the sample runs
 * out of distinct values (a very common value fills a partition). vals is
 * sorted in place. Returns the count written to out (cap >= m - 1); each
 * out[i] is a deep copy the caller frees with sx_ixkey_value_free. */
size_t sx_sample_pick_splits(Shardex__V1__Value *vals, size_t n, bool is_int, uint32_t m,
                             Shardex__V1__Value **out, size_t cap);

typedef struct sx_sample_opts {
    const char *server;    /* a worker's HOST:PORT (its map says where the leaders are) */
    sx_rpc_client *client; /* borrowed; verify's kind (the internal services) */
    uint64_t timeout_ms;   /* per call */
    const char *field;
    bool is_int;
    uint32_t m;          /* term partitions wanted; 0: the cluster's default */
    uint32_t max_values; /* keep about this many values in all (0: 100000) */
} sx_sample_opts;

/* Reads every log partition's documents from its leader (WorkerAdmin.GetMap,
 * then ScanDocs), keeps the field's values of the index's type (every k-th to
 * stay near max_values), and fills spec->split_points (caller frees each with
 * sx_ixkey_value_free, then the array) and spec->n_split_points. Codes: those
 * of the calls (prefixed with what was asked); SX_FAILED_PRECONDITION "field
 * \"%s\": too few distinct values to split" when no point results. */
sx_status sx_sample_splits(const sx_sample_opts *o, Shardex__V1__IndexSpec *spec, sx_err *err);

#endif
