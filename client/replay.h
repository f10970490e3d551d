/* replay.h: what a log partition implies, recomputed in memory, and the
 * comparisons `shardex verify` makes with it. No I/O: the tests drive it with
 * hand-built logs.
 *
 *   replay   one log partition applied op by op: the documents, the indexes
 *            active, and every index entry, at the current position. The
 *            rules are the apply path's (worker/plog.c, docs/indexes.md):
 *              put       replaces the document with that id; version = offset
 *              delete    removes it (a missing id: nothing)
 *              index_start {id, spec}: from this offset on the index is active,
 *                        holding the entries of every document alive (a second
 *                        start of an active id: nothing)
 *              index_drop id: the index is no longer active (inactive: nothing)
 *              index_split {id, seq, t, at, lo, hi, done}: as worker/pindex.c
 *                        applies it, so that an entry's term partitions are
 *                        those the outbox gave it at this position
 *                        (sx_ixkey_terms_of: during a split, the parent too)
 *              index_salt {id, seq, value, ways, terms}: the next seq is
 *                        applied with from = its offset, as worker/pindex.c
 *                        does (an entry of a version >= from goes to its
 *                        slot's partition)
 *            An active index d holds, for every alive document and every
 *            distinct value from sx_ixkey_doc_values, the entry
 *            key = value key ++ enc(id) -> the document's version; a global
 *            index's entry belongs to term partition sx_ixkey_term_of.
 *   lists    entry lists and the merge that names missing, extra and
 *            wrong-version entries; the same for documents.
 *
 * Entries are recomputed from scratch at each position asked about, not kept
 * up to date op by op as the apply path does: slower, and unable to share the
 * apply path's incremental bugs. Single-threaded: one thread per replay or list.
 */
#ifndef SX_REPLAY_H
#define SX_REPLAY_H

#include "ixkey.h"
#include "mem.h"
#include "status.h"

#include "shardex/internal/v1/worker.pb-c.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ----------------------------------------------------------------- replay -- */

typedef struct sx_replay sx_replay;

/* An empty replay of log partition `partition`, at position 0. Caller
 * destroys with sx_replay_destroy (accepts NULL). */
sx_replay *sx_replay_create(uint32_t partition);
void sx_replay_destroy(sx_replay *r);

/* Applies the packed LogOp at offset, which must be position + 1
 * (SX_INVALID_ARGUMENT otherwise). SX_DATA_LOSS, naming the partition and the
 * offset, when the op does not decode or holds no operation (as the apply
 * path refuses it). On error the replay is unchanged. op is not kept. */
sx_status sx_replay_apply(sx_replay *r, uint64_t offset, const uint8_t *op, size_t len,
                          sx_err *err);

/* The last offset applied (0 at first). */
uint64_t sx_replay_position(const sx_replay *r);

/* Index index_id as the log started it, if it is active at the current
 * position: its definition (and its spec, if spec is not NULL), borrowed until
 * the next apply. NULL when not active. */
const sx_ixkey_def *sx_replay_index(const sx_replay *r, uint64_t index_id,
                                    const Shardex__V1__IndexSpec **spec);

/* One index entry: key (value key ++ enc(id), borrowed for the call), the
 * term partition it belongs to (0 for an index that is not global) and the
 * version of its document. */
typedef void (*sx_replay_entry_cb)(void *arg, const uint8_t *key, size_t len, uint32_t term,
                                   uint64_t version);
/* Or'ed into `term` when the callback names the same entry again, for a
 * second term partition that also holds it (a split's parent, until the
 * split is done): not a new entry. */
#define SX_REPLAY_ALSO 0x80000000u

/* Calls fn (may be NULL) for every entry index_id holds at the current
 * position, in no particular order. Returns false (and calls nothing) when
 * the index is not active. *count (may be NULL): the entries; *mistyped (may
 * be NULL): the alive documents with a value of the other type in the field. */
bool sx_replay_each_entry(const sx_replay *r, uint64_t index_id, sx_replay_entry_cb fn, void *arg,
                          uint64_t *count, uint64_t *mistyped);

/* The digest (sum of sx_ixkey_digest_add over entries) and count of index_id's
 * entries at the current position, of term partition `term` only when term
 * >= 0, else of all. False (0 and 0) when the index is not active. */
bool sx_replay_digest(const sx_replay *r, uint64_t index_id, int64_t term, uint64_t *digest,
                      uint64_t *count);

/* Calls fn for every entry document doc (id, n bytes; version) has in index
 * d, by the same rule as sx_replay_each_entry; true when a field of d's name
 * held a value of the other type (the document counts as mistyped). */
bool sx_replay_doc_entries(const sx_ixkey_def *d, const char *id, size_t n,
                           const Shardex__V1__Document *doc, uint64_t version,
                           sx_replay_entry_cb fn, void *arg);

/* One salt row that the log contradicts: what, NUL-terminated, borrowed. */
typedef void (*sx_replay_salt_diff_cb)(void *arg, const char *what);

/* A replica's salt rows[nrows] (ScanDocs' salts) at the current position:
 * each must be a salt the replay applied (same index, seq, from = its
 * marker's offset, and fields), and each salt applied to an active index
 * must be among them. fn (may be NULL) for each difference; returns their
 * number. */
size_t sx_replay_salts_check(const sx_replay *r, Shardex__Internal__V1__IndexSalt *const *rows,
                             size_t nrows, sx_replay_salt_diff_cb fn, void *arg);

/* Documents alive at the current position. */
size_t sx_replay_doc_count(const sx_replay *r);

/* The document id (n bytes) at the current position: true with its version
 * and the document (borrowed until the next apply; either may be NULL) when
 * alive, false when not. */
bool sx_replay_doc(const sx_replay *r, const char *id, size_t n, uint64_t *version,
                   const Shardex__V1__Document **doc);

/* The offset of the last put or delete of id at or below the current
 * position; 0 when the log never named it. */
uint64_t sx_replay_touched(const sx_replay *r, const char *id, size_t n);

/* ---------------------------------------------------------- lists, diffs -- */

/* What a comparison found. */
typedef enum {
    SX_REPLAY_MISSING,       /* expected, not served */
    SX_REPLAY_EXTRA,         /* served, not expected */
    SX_REPLAY_WRONG_VERSION, /* both, with different versions */
    SX_REPLAY_WRONG_CONTENT, /* documents: same version, different fields */
} sx_replay_kind;

/* "MISSING", "EXTRA", "WRONG-VERSION", "WRONG-CONTENT". Static. */
const char *sx_replay_kind_name(sx_replay_kind kind);

typedef struct sx_replay_entry {
    const uint8_t *key; /* owned by the list */
    size_t len;
    uint64_t version;
    int32_t partition; /* the log partition it comes from; -1: not known */
} sx_replay_entry;

/* A list of entries. Valid when zeroed; free with sx_replay_entries_free. */
typedef struct sx_replay_entries {
    sx_replay_entry *v;
    size_t n, cap;
    sx_arena keys; /* the keys' bytes */
} sx_replay_entries;

/* Appends a copy of key. */
void sx_replay_entries_add(sx_replay_entries *l, const uint8_t *key, size_t len, uint64_t version,
                           int32_t partition);
/* Sorts by key (bytewise, the store's order), then version. */
void sx_replay_entries_sort(sx_replay_entries *l);
/* The digest of the list, as the served side computes it. */
uint64_t sx_replay_entries_digest(const sx_replay_entries *l);
void sx_replay_entries_free(sx_replay_entries *l);

/* One difference between entry lists: expected is NULL for EXTRA, served for
 * MISSING; both borrowed for the call. */
typedef void (*sx_replay_diff_cb)(void *arg, sx_replay_kind kind, const sx_replay_entry *expected,
                                  const sx_replay_entry *served);

/* Merges two sorted lists and calls fn (may be NULL) for each difference in
 * key order. A key listed twice on one side and once on the other leaves one
 * copy as a difference. Returns the number of differences. */
size_t sx_replay_entries_diff(const sx_replay_entries *expected, const sx_replay_entries *served,
                              sx_replay_diff_cb fn, void *arg);

/* One difference between documents: id (NUL-terminated) and the versions
 * (0 where a side has none). Borrowed for the call. */
typedef void (*sx_replay_doc_diff_cb)(void *arg, sx_replay_kind kind, const char *id,
                                      uint64_t expected, uint64_t served);

/* Compares n served documents (a ScanDocs answer, any order) with the replay
 * at its current position and calls fn (may be NULL) for each difference:
 * served ids first, in the order given (a served id listed twice is EXTRA
 * the second time), then the missing ones. WRONG_CONTENT compares the packed
 * documents. Returns the number of differences. */
size_t sx_replay_docs_diff(const sx_replay *r, Shardex__Internal__V1__StoredDoc *const *docs,
                           size_t n, sx_replay_doc_diff_cb fn, void *arg);

/* ------------------------------------------------------ retained log -- */

/* A log partition trimmed by log retention holds only [start, end]: what it
 * said before start is gone. An rlog keeps that retained part in memory and
 * answers what it determines, with the served documents of a replica (a
 * ScanDocs answer at position a >= start - 1) as the only other witness:
 *
 *   the state of id at position w (start - 1 <= w <= end) is
 *     the result of id's last op in [start, w]           when there is one;
 *     else the served state at a, when id has no op between a and w
 *          (the served document carries over unchanged);
 *     else not determined (id changed between w and a, and what it was at
 *          w was written before start).
 *   a served document is, against the log at its own position a: exactly its
 *   last op's result when id has an op in [start, a] (version = that op's
 *   offset); else "carried" from before start, and then its version must be
 *   below start. Carried documents are compared only with another replica's.
 *   an index is active at w when its last start or drop in [start, w] is a
 *   start; with neither, not determined by the log.
 *
 * Single-threaded. */
typedef struct sx_rlog sx_rlog;

/* An empty retained log of partition `partition` whose first offset is start
 * (>= 1). Caller destroys with sx_rlog_destroy (accepts NULL). */
sx_rlog *sx_rlog_create(uint32_t partition, uint64_t start);
void sx_rlog_destroy(sx_rlog *l);

/* Appends the packed LogOp at offset, which must be end + 1; the same checks
 * and errors as sx_replay_apply. */
sx_status sx_rlog_append(sx_rlog *l, uint64_t offset, const uint8_t *op, size_t len, sx_err *err);

uint64_t sx_rlog_start(const sx_rlog *l);
/* The last offset held; start - 1 while empty. */
uint64_t sx_rlog_end(const sx_rlog *l);

/* What the retained log says of one id at a position. */
typedef enum {
    SX_RLOG_UNTOUCHED, /* no op of id in [start, at] */
    SX_RLOG_PUT,       /* the last op put it: *version, *doc (borrowed) */
    SX_RLOG_DELETED,   /* the last op deleted it */
} sx_rlog_state;

/* The state of id (n bytes) at position at (clamped to end); version and doc
 * may be NULL. */
sx_rlog_state sx_rlog_doc(const sx_rlog *l, const char *id, size_t n, uint64_t at,
                          uint64_t *version, const Shardex__V1__Document **doc);

/* Whether id has an op in (lo, hi] (either order of the two bounds). */
bool sx_rlog_changed(const sx_rlog *l, const char *id, size_t n, uint64_t lo, uint64_t hi);

/* Index index_id at position at: 1 active (*def and *spec, either may be
 * NULL, borrowed from the log), 0 inactive, -1 not determined by the log. */
int sx_rlog_index(const sx_rlog *l, uint64_t index_id, uint64_t at, sx_ixkey_def *def,
                  const Shardex__V1__IndexSpec **spec);

/* Split `seq` of index index_id at position at (start - 1 <= at <= end), as
 * the retained log and one outside bound determine it: 1 applied (its first
 * marker, not done, is at or below at), 0 not applied, -1 not determined.
 * The markers of one index are in seq order in a log (a leader appends split
 * k + 1 only once k is applied; a repeat of k, after a write that timed out,
 * comes before k + 1), so:
 *   applied   when a marker of seq (not done) is held at or below at, or one
 *             that implies it (seq done, a later seq);
 *   not       when a marker of an earlier seq is held before any of seq:
 *             seq's first marker is then the one held, or past the end;
 *   applied   when bound (> 0: an offset its first marker is known to be at
 *             or below; verify takes a shadow's watermark, docs/indexes.md)
 *             is within the log and no marker of seq is held up to bound:
 *             the first one is below start;
 *   else not determined (below start, or past what was read, or a marker
 *   held above at may repeat one below start). */
int sx_rlog_split_applied(const sx_rlog *l, uint64_t index_id, uint32_t seq, uint64_t at,
                          uint64_t bound);

/* Whether split seq of index_id is done at position at by a marker held in
 * [start, at]: its done marker or one of a later seq. */
bool sx_rlog_split_done(const sx_rlog *l, uint64_t index_id, uint32_t seq, uint64_t at);

/* Salts on a trimmed log (docs/indexes.md "Salts on a trimmed log"). A
 * salted index routes an entry of version o by each salt's marker offset C
 * in this log (o >= C: the salt's slot partition), and C may be below
 * start. Every replica records each salt it applies as a row with from = C
 * (worker/pindex.c) and ScanDocs lists them at the scan's position a, so:
 *   the salts of index d at position w are the rows (from <= min(a, w)) and
 *   then the markers held in (a, w] taken by the apply rule (the next seq of
 *   a global index; repeats and seqs out of order change nothing);
 *   the rows themselves are checked against what the log holds in
 *   [start, a]: from the rows below start, the markers held are taken by
 *   the apply rule, each one taken must be exactly a row (same seq, from =
 *   its offset), and every row from start on must be one taken. Rows below
 *   start can only be compared between replicas (verify.c). */

/* The salts of index d->id (d: its definition at w, for the apply rule) at
 * position w, from a replica's rows[nrows] at a (other indexes' rows are
 * skipped; both positions in [start - 1, end]), in seq order: *out (caller
 * frees the array; the salts borrowed from rows and l, for d->salts).
 * Returns their count; SIZE_MAX (and *out NULL) when d's rows are not
 * seq 1, 2, ... */
size_t sx_rlog_salts_at(const sx_rlog *l, const sx_ixkey_def *d,
                        Shardex__Internal__V1__IndexSalt *const *rows, size_t nrows, uint64_t a,
                        uint64_t w, Shardex__Internal__V1__IndexSalt ***out);

/* A replica's salt rows[nrows] at position a (start - 1 <= a <= end)
 * against the markers held in [start, a], as said above; fn (may be NULL)
 * for each difference. Returns their number. */
size_t sx_rlog_salts_check(const sx_rlog *l, Shardex__Internal__V1__IndexSalt *const *rows,
                           size_t nrows, uint64_t a, sx_replay_salt_diff_cb fn, void *arg);

/* A document state at a position: version and document borrowed. */
typedef void (*sx_rlog_doc_cb)(void *arg, const char *id, size_t n, uint64_t version,
                               const Shardex__V1__Document *doc);
/* An id whose state at the position asked is not determined. */
typedef void (*sx_rlog_unknown_cb)(void *arg, const char *id, size_t n);

/* The documents alive at position w, from the served documents docs[n] at
 * position a and the log by the rule above: fn for each alive one, unknown
 * (may be NULL) for each id not determined. Both positions must be in
 * [start - 1, end]. Returns the number of ids not determined. */
size_t sx_rlog_docs_at(const sx_rlog *l, Shardex__Internal__V1__StoredDoc *const *docs, size_t n,
                       uint64_t a, uint64_t w, sx_rlog_doc_cb fn, void *arg,
                       sx_rlog_unknown_cb unknown, void *uarg);

/* The served documents docs[n] at position a (start - 1 <= a <= end)
 * against the log, as sx_replay_docs_diff reports differences: an id with
 * an op in [start, a] must be exactly its result (EXTRA when deleted,
 * WRONG_VERSION, WRONG_CONTENT; MISSING when put and not served); a carried
 * one must have a version below start (WRONG_VERSION, expected 0). *carried
 * (may be NULL): the carried documents served. Returns the differences. */
size_t sx_rlog_docs_diff(const sx_rlog *l, Shardex__Internal__V1__StoredDoc *const *docs, size_t n,
                         uint64_t a, sx_replay_doc_diff_cb fn, void *arg, uint64_t *carried);

/* Two replicas' documents, ref[nref] at position aref and docs[n] at a (both
 * in [start - 1, end]): every id with no op between the two positions must
 * be the same in both (present in both with the same version and fields, or
 * in neither). fn gets MISSING (in ref only), EXTRA (in docs only),
 * WRONG_VERSION, WRONG_CONTENT, with expected = ref's version. Ids with an op
 * between are the log's to check. Returns the differences. */
size_t sx_rlog_docs_cross(const sx_rlog *l, Shardex__Internal__V1__StoredDoc *const *ref,
                          size_t nref, uint64_t aref, Shardex__Internal__V1__StoredDoc *const *docs,
                          size_t n, uint64_t a, sx_replay_doc_diff_cb fn, void *arg);

#endif
