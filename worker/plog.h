/* plog.h: one log partition replica's storage: the log, its epoch table, its
 * commit and applied offsets, and the documents applied from it, all in one
 * LevelDB (through common/store). No networking and no protocol decisions:
 * the replication code (replica.c) decides what to append or truncate; this
 * module keeps the rules that make the storage itself safe.
 *
 * Key layout (every key starts with a one-byte tag; numbers are big-endian
 * through common/keys.h so that LevelDB order is offset order):
 *   'L' u64 offset        -> u64 epoch, then the packed LogOp       (the log)
 *   'E' u64 epoch         -> u64 start offset                       (epoch table)
 *   'M' "applied"         -> u64 applied offset, written in the same batch as what it applied
 *   'M' "commit"          -> u64 highest commit offset known, written with applied
 *   'M' "start"           -> u64 first offset the log holds (absent: 1), written in the
 *                            batch that deletes the entries below it (sx_plog_trim)
 *   'M' "snapshot"        -> u64 A: the store was installed from a snapshot at A and
 *                            the copy is whole (written last; see sx_plog_snapshot_seal)
 *                            ('M' keys are the tag then the name's bytes, no string encoding)
 *   'D' str id            -> u64 version, then the packed shardex.v1.Document
 *
 * Rules kept here (REPLICATION.md):
 *   - offsets start at 1 and are contiguous; an entry's epoch is never below
 *     the previous entry's (rule 1), and the epoch table gets (epoch, first
 *     offset) in the same batch as the first entry of a new epoch;
 *   - truncation below the applied offset is a bug: sx_plog_truncate aborts
 *     the process loudly (rule 6);
 *   - apply only what is at or below both the commit offset given and the
 *     local log end (rule 7), in order, atomically with the applied offset;
 *   - trimming (log retention) removes entries from the start up to a floor
 *     that never passes the applied offset: what goes is already in the
 *     documents and indexes. The epoch table stays whole (a row per epoch),
 *     so epochs of trimmed offsets, common prefixes and truncation points
 *     are answered as before; only the entries' bytes are gone.
 *
 * Durability: the store's policy is not to sync; append syncs when asked,
 * begin_epoch and truncate always do, apply never does (documents are
 * re-derived from the durable log, and applied travels with them). A failed
 * write changes nothing in memory or on disk and returns the store's status;
 * after a failed fsync LevelDB refuses every later write, and the caller
 * treats it as fatal (rule 8).
 *
 * Thread-safety: every function may be called from any thread; an internal
 * mutex orders appends, truncations and applies, and is held across their
 * I/O (an apply batch with an index backfill in it: seconds). The getters of
 * offsets, epochs and counters (sx_plog_leo ... sx_plog_epochs,
 * sx_plog_counters) never wait for it: they read the state as of the last
 * write that completed. sx_plog_read and sx_plog_snapshot do wait for the
 * write in progress. Reads of documents go straight to LevelDB and see
 * applied state only.
 */
#ifndef SX_PLOG_H
#define SX_PLOG_H

#include "mem.h"
#include "shardex/internal/v1/replication.pb-c.h"
#include "status.h"
#include "store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct sx_plog sx_plog;

/* An epoch and the first offset written in it. */
typedef struct sx_epoch_start {
    uint64_t epoch;
    uint64_t start_offset;
} sx_epoch_start;

/* One log entry: its epoch and the packed shardex.internal.v1.LogOp. */
typedef struct sx_log_entry {
    uint64_t epoch;
    const uint8_t *op;
    size_t op_len;
} sx_log_entry;

struct sx_plog_observer;

typedef struct sx_plog_opts {
    sx_store_cache *cache;     /* shared block cache, borrowed; NULL: a private one */
    size_t write_buffer_bytes; /* 0: store default */
    /* What every apply feeds (see sx_plog_observer below); borrowed for the
     * plog's life; NULL: nothing but the documents. */
    const struct sx_plog_observer *observer;
    /* Puts and deletes applied to the documents are added here once their
     * batch is written (metrics.h; borrowed; NULL: not counted). */
    struct sx_counter *docs_applied;
} sx_plog_opts;

/* Opens (creating if missing) the replica of `partition` in directory dir
 * (the store's own directory; its parent must exist). opts may be NULL.
 * Recovers leo, the epoch table, commit and applied from disk. SX_DATA_LOSS
 * when, by checks that cost O(epochs) point reads and no scan: the log does
 * not start at its start (1 untrimmed); the epoch table is out of order, does not cover offset 1,
 * or disagrees with the entries at both ends of an epoch's range or with the
 * last entry; or applied is above leo. A hole strictly inside an epoch's
 * range is found later, by sx_plog_read and sx_plog_apply (SX_DATA_LOSS).
 * A trimmed log must start at its recorded start, at or below applied; a
 * log installed from a snapshot may hold no entry, starting at applied + 1. */
sx_status sx_plog_open(const char *dir, uint32_t partition, const sx_plog_opts *opts, sx_plog **out,
                       sx_err *err);
void sx_plog_close(sx_plog *p); /* accepts NULL */

uint32_t sx_plog_partition(const sx_plog *p);
uint64_t sx_plog_leo(sx_plog *p);        /* last offset in the log; 0 when empty */
uint64_t sx_plog_last_epoch(sx_plog *p); /* epoch of the entry at leo; 0 when empty */
uint64_t sx_plog_max_epoch(sx_plog *p);  /* highest epoch in the epoch table; 0 when empty */
uint64_t sx_plog_applied(sx_plog *p);
uint64_t sx_plog_start(sx_plog *p);  /* first offset held: 1 until trimmed */
uint64_t sx_plog_commit(sx_plog *p); /* highest commit offset recorded */

/* The epoch of the entry at offset (1..leo); offset 0 has epoch 0.
 * SX_OUT_OF_RANGE beyond leo. */
sx_status sx_plog_epoch_at(sx_plog *p, uint64_t offset, uint64_t *epoch, sx_err *err);

/* Copies up to cap entries of the epoch table, ascending by epoch; returns
 * how many there are in all. */
size_t sx_plog_epochs(sx_plog *p, sx_epoch_start *out, size_t cap);

/* A new leader at `epoch` records (epoch, leo + 1) before its first append
 * (rule 1), synced. SX_FAILED_PRECONDITION if a higher epoch is in the table
 * (checked first); otherwise a no-op if epoch is already there (it is the
 * highest). Epoch 0 is SX_INVALID_ARGUMENT. */
sx_status sx_plog_begin_epoch(sx_plog *p, uint64_t epoch, sx_err *err);

/* Appends n entries at leo + 1 ... leo + n in one batch (synced when sync).
 * Each entry's epoch must be > 0 and >= the previous one's (the first: the
 * last entry's), and op may be NULL only when op_len is 0: SX_INVALID_ARGUMENT
 * otherwise, nothing written. A new epoch gets its epoch-table row in the same
 * batch (unless begin_epoch recorded it already). Rows of epochs above the
 * first entry's, which can only be epochs begun here and not written in (a
 * demoted leader now following one with older entries), are removed in the
 * same batch. n == 0 is a no-op. Bytes are copied. */
sx_status sx_plog_append(sx_plog *p, const sx_log_entry *entries, size_t n, bool sync, sx_err *err);

/* Removes every entry above offset and every epoch-table row starting above
 * it; synced. offset > leo is a no-op; offset == leo removes only the rows of
 * epochs begun and not written in. A recorded commit above offset is lowered
 * to offset (and a warning logged: a correct protocol never truncates a
 * committed entry). offset < applied is a bug: it logs an error and calls
 * abort(), writing nothing. */
sx_status sx_plog_truncate(sx_plog *p, uint64_t offset, sx_err *err);

/* Log retention: removes the entries below min(floor, applied), from the
 * start up, in batches of a few thousand that each move the start with their
 * deletions (atomic; not synced, see plog.c); *removed (may be NULL) gets how
 * many went. A floor at or below the start is a no-op. The mutex is taken per
 * batch, so appends and applies interleave. A kill -9 between (or inside)
 * batches leaves a log that starts where the last written batch put it. */
sx_status sx_plog_trim(sx_plog *p, uint64_t floor, uint64_t *removed, sx_err *err);

/* LevelDB keeps trimmed entries (and the overwritten documents in the same
 * files) on disk until a compaction merges their files, which under steady
 * overwrites comes far later than the retention asks. So once 65,536 more
 * entries were trimmed (sx_plog_compact_due, cheap), the range below the
 * start is compacted (sx_plog_compact_trimmed: a no-op unless due; seconds on
 * a large store, without the mutex, so writes go on beside it; the caller
 * runs it off the write path, replica.c's compaction job). */
bool sx_plog_compact_due(sx_plog *p);
void sx_plog_compact_trimmed(sx_plog *p);

/* Reads entries from offset `from` on (from >= 1), at most max_entries and
 * about max_bytes of ops (at least one entry if any), into out (cap
 * max_entries); entry bytes are allocated in arena (op is NULL when op_len
 * is 0). *n receives the count: 0 when from == leo + 1. from == 0 is
 * SX_INVALID_ARGUMENT, from > leo + 1 or below the start (trimmed)
 * SX_OUT_OF_RANGE, a missing entry
 * SX_DATA_LOSS. Sees the log as of the call, even if it is truncated during
 * it. */
sx_status sx_plog_read(sx_plog *p, uint64_t from, size_t max_entries, size_t max_bytes,
                       sx_arena *arena, sx_log_entry *out, size_t *n, sx_err *err);

/* The largest offset at which two logs agree, given each side's epoch table
 * and log end: logs that hold the same epoch at the same offset hold the same
 * entries up to it, so this is the highest offset inside an epoch both have,
 * within both logs (0 if none). Pure. Both tables ascending by epoch with
 * non-decreasing start offsets, as sx_plog_epochs gives them: a table from the
 * network is checked by the caller (a bad one gives a wrong answer, never a
 * crash). */
uint64_t sx_plog_common_prefix(const sx_epoch_start *a, size_t na, uint64_t leo_a,
                               const sx_epoch_start *b, size_t nb, uint64_t leo_b);

/* What the plog's apply feeds: the observer a plog is opened with (the
 * index layer, worker/pindex.c, in the worker), called with the plog's mutex
 * held (it must not call into the same plog, except sx_plog_scan_docs_locked
 * from `marker`):
 *   entry   per applied put or delete, before its batch is written: adds the
 *           derived changes to the same batch. old_doc/new_doc are packed
 *           Documents or NULL (new_doc NULL: a delete; both NULL: a delete of
 *           a missing id), borrowed for the call; old_doc reflects earlier
 *           entries of the same batch, and old_version is the offset that
 *           wrote it (0 without one): where a salted value's old entry lives
 *           depends on it (docs/indexes.md "Hot values");
 *   marker  an index marker (LogOp index_start / index_drop / index_split / index_salt). A marker
 * is applied alone in its batch, so the store holds exactly the documents as of offset - 1; it adds
 * what it derives to batch. An error stops the apply (nothing of the batch is written); seal once
 * the batch's entries and markers were observed, just before it is written: adds what the observer
 * gathered over the batch (the index layer packs its outbox changes this way); end     after every
 * batch that called entry or marker: written tells whether the batch reached the store (false: it
 * was discarded and the same entries will be seen again, so keep state only in the batch until
 * then). Any of them may be NULL; markers are applied as no-ops without `marker`. */
typedef void (*sx_plog_entry_cb)(void *arg, sx_batch *batch, uint64_t offset, const char *id,
                                 size_t id_len, const uint8_t *old_doc, size_t old_len,
                                 uint64_t old_version, const uint8_t *new_doc, size_t new_len);
typedef struct sx_plog_observer {
    void *arg;
    sx_plog_entry_cb entry;
    sx_status (*marker)(void *arg, sx_batch *batch, uint64_t offset,
                        const Shardex__Internal__V1__LogOp *op, sx_err *err);
    void (*seal)(void *arg, sx_batch *batch);
    void (*end)(void *arg, bool written);
} sx_plog_observer;

/* The plog's store, for the index layer's own keys (tags 'I' 'X' 'O' 'F' 'N' 'S'
 * are theirs; plog owns 'L' 'E' 'M' 'D'). */
sx_store *sx_plog_store(sx_plog *p);

/* sx_plog_scan_docs for the observer's marker, which already holds the mutex: scans
 * the store as it is (no snapshot is needed: nothing else writes). */
sx_status sx_plog_scan_docs_locked(sx_plog *p,
                                   bool (*fn)(void *arg, const char *id, size_t id_len,
                                              uint64_t version, const uint8_t *doc, size_t len),
                                   void *arg, sx_err *err);

/* Calls fn(arg, err) holding the mutex that orders appends, truncations and
 * applies, and returns what it returns: the index layer's chunked backfill
 * (worker/pindex.c) reads and writes its chunk with no apply in between. fn
 * must not call into p except the document reads, which take no lock. */
sx_status sx_plog_run_locked(sx_plog *p, sx_status (*fn)(void *arg, sx_err *err), void *arg,
                             sx_err *err);

/* A snapshot of sx_plog_store(p) and the applied offset it holds, taken
 * together; release it with sx_store_release_snapshot. */
const sx_snapshot *sx_plog_snapshot(sx_plog *p, uint64_t *applied);
/* Applies entries applied+1 .. min(commit, leo) to the documents, in batches
 * (up to 1000 entries or about 4 MiB of ops, not synced), each batch also
 * recording applied and the highest commit given so far (a lower commit
 * neither applies nor lowers it), and what the observer derives. Returns the applied
 * offset in *applied (may be NULL), also on error. A put writes 'D' id ->
 * (offset, the Document re-packed); a delete removes 'D' id. An entry that
 * does not decode or holds no operation is SX_DATA_LOSS: the entries before
 * it are applied, it and those after are not (never skipped). The mutex is
 * taken per batch, so appends interleave with a long catch-up. Rule 7
 * (truncate first, then apply up to the leader's commit) is the caller's. */
sx_status sx_plog_apply(sx_plog *p, uint64_t commit, uint64_t *applied, sx_err *err);

/* Reads a document as applied: *found, its version (the offset that wrote
 * it; version may be NULL) and the packed Document into doc (replacing its
 * contents; untouched when not found). */
sx_status sx_plog_get_doc(sx_plog *p, const char *id, size_t id_len, bool *found, uint64_t *version,
                          sx_buf *doc, sx_err *err);

/* Calls fn for every applied document in id order (for checkers and
 * backfill), on a consistent view as of the call; stops early if fn returns
 * false. id (NUL-terminated, not counted in id_len) and doc are borrowed for
 * the call. fn may call into the plog. */
sx_status sx_plog_scan_docs(sx_plog *p,
                            bool (*fn)(void *arg, const char *id, size_t id_len, uint64_t version,
                                       const uint8_t *doc, size_t len),
                            void *arg, sx_err *err);

/* The same two reads at a snapshot of sx_plog_store(p) (NULL: the latest). */
sx_status sx_plog_get_doc_at(sx_plog *p, const sx_snapshot *snap, const char *id, size_t id_len,
                             bool *found, uint64_t *version, sx_buf *doc, sx_err *err);
sx_status sx_plog_scan_docs_at(sx_plog *p, const sx_snapshot *snap,
                               bool (*fn)(void *arg, const char *id, size_t id_len,
                                          uint64_t version, const uint8_t *doc, size_t len),
                               void *arg, sx_err *err);

/* sx_plog_scan_docs_at from the first id after `after` (after_len bytes;
 * NULL: from the first): a scan resumed in pieces at one snapshot (a chunked
 * term partition rebuild, worker/pindex.c), or on the store as it is under
 * sx_plog_run_locked (a backfill chunk). */
sx_status sx_plog_scan_docs_after(sx_plog *p, const sx_snapshot *snap, const char *after,
                                  size_t after_len,
                                  bool (*fn)(void *arg, const char *id, size_t id_len,
                                             uint64_t version, const uint8_t *doc, size_t len),
                                  void *arg, sx_err *err);

/* Snapshots (worker/psnap.c): a replica that needs entries its leader has
 * trimmed gets a copy of the leader's store at one applied offset A instead,
 * built by these rules so that it opens as a log that holds no entry and
 * starts at A + 1 (leo = applied = commit = A; the epoch table answers the
 * epoch of A, so the leader's next Append at prev A matches).
 *
 * keep: whether the leader's key k (value v) goes into a snapshot at applied:
 * not the log's entries, not the offsets the receiver writes itself, not the
 * epoch-table rows of epochs begun above A + 1; everything else (documents,
 * epoch table, the index layer's keys) does.
 * skip: for a key whose whole range is left out (the log), a key to seek to
 * past it (*next_len bytes, static); NULL otherwise.
 * seal: the receiver's last batch (synced): applied, commit, start and the
 * mark that the copy is whole.
 * complete: whether a store holds that mark (*applied: its A; may be NULL). */
bool sx_plog_snapshot_keep(const void *k, size_t klen, const void *v, size_t vlen,
                           uint64_t applied);
const void *sx_plog_snapshot_skip(const void *k, size_t klen, size_t *next_len);
void sx_plog_snapshot_seal(sx_batch *b, uint64_t applied);
sx_status sx_plog_snapshot_complete(sx_store *s, bool *complete, uint64_t *applied, sx_err *err);

/* Appends (batches) and entries appended since open: group commit shows as
 * fewer appends than entries. */
void sx_plog_counters(sx_plog *p, uint64_t *appends, uint64_t *entries);

#endif
