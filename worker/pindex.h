/* pindex.h: the indexes of one log partition replica, derived from its log.
 *
 * The observer of its partition's plog (sx_plog_opts.observer), so
 * everything here is written in the same LevelDB batch as the documents and
 * the applied offset it derives from:
 *
 *   marker index_start(id, spec) at offset C: the index becomes active in this
 *       partition, in the state "backfilling" (below);
 *   put / delete at offset o: for every active index, the entries of the old
 *       document's values that the new one lacks are removed and every value
 *       of the new one is (re)written with version o; a global index records
 *       the same changes in its outbox, per term partition, at offset o;
 *   marker index_drop(id): everything the index holds here is removed;
 *   marker index_split(id, seq, t, at, lo, hi) at offset C (range indexes,
 *       docs/indexes.md "Online split"): from C a change of t's range goes to
 *       t and to lo or hi in the outbox (sx_ixkey_terms_of); lo's and hi's
 *       outboxes start at C (their floor), so a leader rebuilds them from a
 *       snapshot; the marker again with done: t gets nothing more.
 *
 * Every replica applies the same log, so every replica holds the same local
 * entries and the same outbox: a new leader resumes shipping from its own.
 *
 * Backfill, in chunks (docs/indexes.md, "Backfill in chunks"). States of an
 * index on one replica, in its 'B' row:
 *
 *   RUNNING(cursor)  written with the catalog row by the marker at C (cursor:
 *                    none), and for a global index every term partition's
 *                    outbox floor 'F' = C: its term partitions are rebuilt
 *                    from a snapshot at an applied offset >= C (ixlead.c).
 *                    Each sx_pindex_backfill_step (the worker's backfill
 *                    thread) takes the plog's mutex, passes up to max
 *                    documents in id order after the cursor, indexes those
 *                    whose version is <= C (local entries and the mistyped
 *                    count; no outbox), and writes them with the new cursor
 *                    in one batch; applies run between chunks. A restart
 *                    resumes from the durable cursor.
 *   DONE             the chunk that reached the last document.
 *
 * Why exact: a document written after C was indexed by the apply path (and
 * the chunk skips it: its version is > C); one deleted after C is absent; one
 * untouched since C has version <= C and is indexed by the chunk that passes
 * it. While RUNNING, local scans are refused (UNAVAILABLE); the term
 * partitions do not depend on it (their rebuild reads the documents).
 *
 * Key layout in the plog's store (numbers big-endian via common/keys.h):
 *   'I' u64 id                         -> u64 start offset C, packed IndexSpec
 *   'N' u64 id                         -> u64 documents with a mistyped value
 *   'X' u64 id ++ entry key            -> u64 version        (local index)
 *   'O' u64 id u32 t u64 last u32 seq  -> the changes of one batch to t, packed (outbox;
 *                                         pindex.c, "outbox records")
 *   'F' u64 id u32 t                   -> u64 offset up to which the outbox was trimmed
 *                                         (or started: an index_start or split marker's)
 *   'S' u64 id u32 seq                 -> packed IndexSplit, as applied (done when marked)
 *   'H' u64 id u32 seq                 -> packed IndexSalt, from = its marker's offset here
 *   'B' u64 id                         -> backfill state and cursor (pindex.c, write_fill;
 *                                         absent: done, before chunked backfills)
 * (entry key: common/ixkey.h.)
 *
 * Thread-safety: the observer runs on the applying thread under the plog's mutex,
 * and so does a backfill chunk (sx_plog_run_locked);
 * every other function may be called from any thread and reads at a LevelDB
 * snapshot or through the catalog's own mutex.
 */
#ifndef SX_PINDEX_H
#define SX_PINDEX_H

#include "ixkey.h"
#include "mem.h"
#include "plog.h"
#include "shardex/internal/v1/index.pb-c.h"
#include "status.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct sx_pindex sx_pindex;

/* Opening a partition's indexes is three steps, because the plog takes its
 * observer when it opens and the indexes live in the plog's store:
 *   ix = sx_pindex_create();
 *   sx_plog_open(dir, p, &(sx_plog_opts){.observer = sx_pindex_observer(ix)}, &log, err);
 *   sx_pindex_load(ix, log, err);   (before the first apply)
 * Close the plog first, then the pindex. */
sx_pindex *sx_pindex_create(void);
/* The observer to open the partition's plog with; lives as long as pi. */
const sx_plog_observer *sx_pindex_observer(sx_pindex *pi);
/* Binds pi to log (opened with pi's observer) and loads the catalog from its
 * store. On failure, close both. */
sx_status sx_pindex_load(sx_pindex *pi, sx_plog *log, sx_err *err);
void sx_pindex_close(sx_pindex *pi); /* accepts NULL */

/* An active index as applied here. */
typedef struct sx_pindex_info {
    uint64_t id;
    uint64_t start;    /* offset of its index_start marker */
    uint64_t mistyped; /* documents with a value of the wrong type */
    bool local, global;
    bool is_int;
    uint32_t term_partitions;
    uint32_t term_count;  /* term partition numbers in use: M + 2 per split applied */
    uint32_t nsplits;     /* index_split markers applied */
    bool last_split_done; /* the last of them was marked done */
    uint32_t nsalts;      /* index_salt markers applied */
    bool filling;         /* its backfill is RUNNING here */
    uint64_t fill_done;   /* documents the backfill passed */
    uint64_t fill_total;  /* about the documents at its marker (0 until counted) */
    double fill_rate;     /* documents/s since this process began it (0: not known yet) */
} sx_pindex_info;

/* Every active index (*n of them), copied; the caller frees the array. */
sx_pindex_info *sx_pindex_list(sx_pindex *pi, size_t *n);
bool sx_pindex_find(sx_pindex *pi, uint64_t id, sx_pindex_info *out);

/* Hot values of global index id (docs/indexes.md "Hot values"): every
 * replica counts the values its applies write, in a Misra-Gries sketch of
 * SX_PINDEX_HOT_SLOTS values whose counts halve whenever the window reaches
 * SX_PINDEX_HOT_WINDOW changes (so they speak of recent writes). Fills up to
 * max of the most counted into values (in arena) and counts, and *window
 * with the changes the counts are out of. Returns how many. */
#define SX_PINDEX_HOT_SLOTS 16
#define SX_PINDEX_HOT_WINDOW 8192
size_t sx_pindex_hot(sx_pindex *pi, uint64_t id, size_t max, sx_arena *arena,
                     Shardex__V1__Value **vals_out, uint64_t *counts, uint64_t *window);
/* What one backfill step did. */
typedef struct sx_pindex_step {
    uint64_t index_id; /* the index it worked on; 0: no backfill is running here */
    size_t passed;     /* documents passed (indexed or skipped as written after C) */
    size_t indexed;    /* of which indexed */
    bool finished;     /* that was its last chunk */
} sx_pindex_step;

/* One chunk of the first index whose backfill is RUNNING: up to max_docs
 * documents after its cursor, written with the new cursor in one batch under
 * the plog's mutex (held for the chunk only). Before the first chunk it
 * counts the documents for progress (at a snapshot, without the mutex). An
 * index dropped meanwhile is skipped. Any thread but the applier; one caller
 * per pi at a time (the worker's backfill thread). */
sx_status sx_pindex_backfill_step(sx_pindex *pi, size_t max_docs, sx_pindex_step *out, sx_err *err);

/* Local entries of req->index_id in [req->start, req->end) (empty: open), at
 * most req->limit (0: 100), on one snapshot; documents from the same
 * snapshot when asked. NOT_FOUND when the index is not active here,
 * UNAVAILABLE (naming the progress) while it is backfilling. Does not wait
 * for `after` (the caller does). */
sx_status sx_pindex_scan(sx_pindex *pi, const Shardex__Internal__V1__ScanRequest *req,
                         sx_arena *arena, Shardex__Internal__V1__ScanResponse *resp, sx_err *err);

/* Every salt row at snap (index id, then seq order; *n of them), unpacked
 * into arena: each salt applied here, with from = its marker's offset. The
 * rows are the record verify routes a salted index by on a log trimmed past
 * its markers (docs/indexes.md "Salts on a trimmed log"); snapshots copy
 * them with the rest of the store. Any thread. */
sx_status sx_pindex_salts_at(sx_pindex *pi, const sx_snapshot *snap, sx_arena *arena,
                             Shardex__Internal__V1__IndexSalt ***out, size_t *n, sx_err *err);

/* The local index's digest at one snapshot and its applied offset. */
sx_status sx_pindex_digest(sx_pindex *pi, const Shardex__Internal__V1__DigestRequest *req,
                           sx_arena *arena, Shardex__Internal__V1__DigestResponse *resp,
                           sx_err *err);

/* Outbox changes of (id, t) with offsets in (after, upto], whole offsets
 * only, stopping after the offset at which about max changes are reached.
 * *covered: the last offset the changes cover (upto when all were read).
 * Changes are allocated in arena. */
sx_status sx_pindex_outbox_read(sx_pindex *pi, uint64_t id, uint32_t t, uint64_t after,
                                uint64_t upto, size_t max, sx_arena *arena,
                                Shardex__Internal__V1__Change ***out, size_t *n, uint64_t *covered,
                                sx_err *err);

/* Removes the outbox changes of (id, t) at or below upto (acknowledged by
 * the term partition) and records upto as the floor: records that end at or
 * below it are deleted, and no read returns a change below it. */
sx_status sx_pindex_outbox_trim(sx_pindex *pi, uint64_t id, uint32_t t, uint64_t upto, sx_err *err);

/* The offset up to which the outbox of (id, t) was trimmed (0: never): a term
 * partition whose watermark is below it must be rebuilt from a snapshot. */
uint64_t sx_pindex_outbox_floor(sx_pindex *pi, uint64_t id, uint32_t t);

/* A rebuild of term partition t in chunks (docs/indexes.md "Trimming"):
 * begin takes a snapshot and its applied offset (*at, may be NULL), held
 * until end; each next gives the following entries of index id that map to
 * t (as the outbox routes at that snapshot, a split's parent included: the
 * splits applied by begin), as puts with offset *at, in document id order: at most max_entries
 * (0: no limit) unless one document alone has more (a document is never
 * split); *last when no document remains. Any thread, one at a time per
 * cursor; end (accepts NULL) before the pindex is closed. begin:
 * SX_FAILED_PRECONDITION when id is not a global index started here. */
typedef struct sx_pindex_rebuild_cursor sx_pindex_rebuild_cursor;
sx_status sx_pindex_rebuild_begin(sx_pindex *pi, uint64_t id, uint32_t t,
                                  sx_pindex_rebuild_cursor **out, uint64_t *at, sx_err *err);
sx_status sx_pindex_rebuild_next(sx_pindex_rebuild_cursor *rc, size_t max_entries, sx_arena *arena,
                                 Shardex__Internal__V1__Change ***out, size_t *n, bool *last,
                                 sx_err *err);
/* The applied offset the cursor's snapshot holds. */
uint64_t sx_pindex_rebuild_at(const sx_pindex_rebuild_cursor *rc);
void sx_pindex_rebuild_end(sx_pindex_rebuild_cursor *rc);

/* The whole rebuild in one: every entry of index id that maps to t, as
 * puts, at one snapshot; *at is that snapshot's applied offset. */
sx_status sx_pindex_rebuild(sx_pindex *pi, uint64_t id, uint32_t t, sx_arena *arena,
                            Shardex__Internal__V1__Change ***out, size_t *n, uint64_t *at,
                            sx_err *err);

#endif
