/* store.h: an ordered key-value store on disk (LevelDB underneath).
 *
 * The only door to LevelDB: no other file includes leveldb/c.h. Keys and values
 * are byte strings ordered by memcmp (shorter first on a tie), which is the
 * order keys.h encodes into. A store is one directory; a process may open many
 * (one per partition), so the block cache can be shared and open files are
 * bounded by sx_store_opts.
 *
 * Not here: key encoding (keys.h), replication, anything about partitions.
 *
 * Threads: an sx_store is safe to use from many threads at once (get, put,
 * delete, write, snapshots, creating iterators); open, close and
 * destroy_files must not race with other calls on the same store. An sx_batch
 * or sx_iter belongs to one thread at a time. A cache is thread-safe.
 *
 * Errors: LevelDB's are mapped to statuses with the message
 * "store: <path>: <LevelDB's message>": corruption gives SX_DATA_LOSS, I/O
 * errors (a store locked by another handle or process included) SX_INTERNAL.
 * A missing key is not an error (found = false, SX_OK).
 */
#ifndef SX_STORE_H
#define SX_STORE_H

#include <stdbool.h>
#include <stddef.h>

#include "mem.h"
#include "status.h"

typedef struct sx_store sx_store;
typedef struct sx_store_cache sx_store_cache; /* an LRU block cache shared by many stores */
typedef struct sx_snapshot sx_snapshot;
typedef struct sx_batch sx_batch;
typedef struct sx_iter sx_iter;

/* Creates a cache of about `bytes` of uncompressed blocks. Never NULL (aborts
 * on OOM). Destroy it only after every store that uses it is closed. */
sx_store_cache *sx_store_cache_create(size_t bytes);
void sx_store_cache_destroy(sx_store_cache *c); /* accepts NULL */

/* Durability of one write. */
typedef enum {
    SX_SYNC_DEFAULT = 0, /* the store's policy, sx_store_opts.sync */
    SX_SYNC_YES,         /* fsync the log before returning */
    SX_SYNC_NO,          /* return once the OS has the bytes (lost on power failure) */
} sx_sync;

typedef struct sx_store_opts {
    sx_store_cache *cache; /* shared cache, borrowed; NULL: a private cache of block_cache_bytes */
    size_t block_cache_bytes;  /* 0: 8 MiB */
    size_t write_buffer_bytes; /* 0: 4 MiB */
    int max_open_files;        /* 0: 64 (many stores per process: keep descriptors bounded) */
    bool sync;                 /* policy: true = every write fsyncs unless it says SX_SYNC_NO */
    bool error_if_exists;      /* fail if the store exists */
    bool no_create;            /* fail if the store does not exist */
} sx_store_opts;               /* valid when zeroed */

/* Opens (creating unless opts->no_create) the store in directory path; the
 * parent directory must exist. opts may be NULL (all defaults). On SX_OK,
 * *out is the caller's, to close with sx_store_close; otherwise *out is NULL.
 * Codes: SX_NOT_FOUND (no_create and no store at path; nothing is created),
 * SX_ALREADY_EXISTS (error_if_exists and a store is there), SX_DATA_LOSS
 * (corrupt), SX_INTERNAL (I/O, including a store already open elsewhere). */
sx_status sx_store_open(const char *path, const sx_store_opts *opts, sx_store **out, sx_err *err);

/* Closes the store, waiting for background compaction of it. Every iterator
 * and snapshot of it must be gone. Accepts NULL. */
void sx_store_close(sx_store *s);

/* Deletes the files of the store at path and its directory (if nothing else
 * is in it). The store must be closed (else SX_INTERNAL: it is locked). A path
 * with no store is SX_OK. */
sx_status sx_store_destroy_files(const char *path, sx_err *err);

/* Reads key k at snap (NULL: the latest data). Found: *found = true and the
 * value replaces val's contents. Missing: SX_OK, *found = false, val untouched.
 * Error: the mapped status, *found = false. */
sx_status sx_store_get(sx_store *s, const sx_snapshot *snap, const void *k, size_t klen,
                       sx_buf *val, bool *found, sx_err *err);

/* Writes or deletes one key (deleting a missing key is SX_OK). Codes: SX_OK,
 * SX_INTERNAL, SX_DATA_LOSS. k and v are copied. */
sx_status sx_store_put(sx_store *s, const void *k, size_t klen, const void *v, size_t vlen,
                       sx_sync sync, sx_err *err);
sx_status sx_store_delete(sx_store *s, const void *k, size_t klen, sx_sync sync, sx_err *err);

/* Compacts the keys in [lo, hi) (NULL: from the first / to the last key)
 * now, in the calling thread: the files holding them are merged, so deleted
 * and overwritten values there stop taking disk space (LevelDB would
 * otherwise keep them until its own compactions reach them). Writes and
 * reads go on meanwhile. Slow: seconds for large ranges. */
void sx_store_compact_range(sx_store *s, const void *lo, size_t lo_len, const void *hi,
                            size_t hi_len);

/* Write batches: puts and deletes that sx_store_write applies atomically and
 * in order (a later operation on the same key wins). The caller owns a batch;
 * it copies keys and values, and writing it leaves it unchanged (clear it to
 * reuse it). Create never returns NULL; destroy accepts NULL. */
sx_batch *sx_batch_create(void);
void sx_batch_destroy(sx_batch *b);
void sx_batch_put(sx_batch *b, const void *k, size_t klen, const void *v, size_t vlen);
void sx_batch_delete(sx_batch *b, const void *k, size_t klen);
void sx_batch_clear(sx_batch *b);
size_t sx_batch_count(const sx_batch *b); /* operations added since create or clear */

/* Applies every operation of b, or none of them. Codes as sx_store_put. */
sx_status sx_store_write(sx_store *s, sx_batch *b, sx_sync sync, sx_err *err);

/* A consistent read view of s as of now. Never NULL. Release it with
 * sx_store_release_snapshot on the same store, after destroying the iterators
 * that use it, and soon: it keeps old data from being compacted away. */
const sx_snapshot *sx_store_snapshot(sx_store *s);
void sx_store_release_snapshot(sx_store *s, const sx_snapshot *snap);

/* Iterators over the keys in [start, end) (end NULL: no upper bound; slen 0:
 * from the first key), or over the keys that start with prefix (plen 0: all),
 * at snap (NULL: the data as of creation; later writes are not seen either
 * way). Bounds are copied. The iterator starts at the first key within its
 * bounds. Never NULL; the caller destroys it with sx_iter_destroy before
 * closing the store. */
sx_iter *sx_store_iter_range(sx_store *s, const sx_snapshot *snap, const void *start, size_t slen,
                             const void *end, size_t elen);
sx_iter *sx_store_iter_prefix(sx_store *s, const sx_snapshot *snap, const void *prefix,
                              size_t plen);

/* True when the iterator is at a key within its bounds (false once it has
 * moved past either bound, run out of keys, or hit an error). */
bool sx_iter_valid(const sx_iter *it);

/* Move to the next / previous key. No-ops when the iterator is not valid:
 * re-position it with a seek. */
void sx_iter_next(sx_iter *it);
void sx_iter_prev(sx_iter *it);

/* Positions at the first key >= k within the bounds (a k below start means
 * start), or at the last key within the bounds. */
void sx_iter_seek(sx_iter *it, const void *k, size_t klen);
void sx_iter_seek_last(sx_iter *it);

/* The current key / value, borrowed until the iterator moves or is destroyed.
 * When not valid: NULL and *len = 0. */
const void *sx_iter_key(const sx_iter *it, size_t *len);
const void *sx_iter_value(const sx_iter *it, size_t *len);

/* SX_OK, or the mapped LevelDB error that stopped iteration (check it once
 * sx_iter_valid turns false, to tell the end from a failure). */
sx_status sx_iter_status(const sx_iter *it, sx_err *err);

void sx_iter_destroy(sx_iter *it); /* accepts NULL */

#endif
