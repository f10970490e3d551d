/* plog.c: one partition replica's log, epoch table, commit and applied
 * offsets and applied documents, in one LevelDB (key layout in plog.h).
 *
 * Memory mirrors the durable state every call needs (leo, last epoch, epoch
 * table, applied, commit), and changes only after the batch that makes it
 * durable has been written: a failed write leaves both as they were. Two
 * mutexes: `mu` orders every write and is held across its I/O (an apply batch
 * with an index backfill in it can hold it for seconds); `pub_mu` guards the
 * mirror for the getters, and a writer (holding mu) takes it only to change
 * memory, so that heartbeats, Status and the replication driver read offsets
 * and epochs without ever waiting for a write. What the protocol relies on
 * (appends asked to sync, epoch rows, truncations) is fsynced; applies are
 * not, since documents are re-derived from the durable log after a crash and
 * the applied offset travels in the same batch as what it applied.
 * Not here: what to append, where to truncate, what is committed (replica.c).
 */
#include "plog.h"

#include "crashpoint.h"
#include "hash.h"
#include "keys.h"
#include "log.h"
#include "metrics.h"

#include "shardex/internal/v1/replication.pb-c.h"
#include "shardex/v1/shardex.pb-c.h"

#include <assert.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* Key tags (plog.h). */
#define TAG_LOG 'L'   /* u64 offset -> u64 epoch, packed LogOp */
#define TAG_EPOCH 'E' /* u64 epoch -> u64 start offset */
#define TAG_DOC 'D'   /* str id -> u64 version, packed Document */

/* The 'M' keys: the tag, then the name's bytes (no string encoding). */
static const char APPLIED_KEY[] = "Mapplied";
static const char COMMIT_KEY[] = "Mcommit";
/* The first offset the log holds once trimmed (absent: 1), written in the
 * same batch as the deletions that trimmed it. */
static const char START_KEY[] = "Mstart";
/* Written last, synced, into a store built from a snapshot (worker/psnap.c):
 * present, the store is whole; absent, the copy was cut short. */
static const char SNAPSHOT_KEY[] = "Msnapshot";

/* A trim deletes at most this many entries per batch: the mutex (and so
 * appends and applies) waits for one batch at a time, and each batch moves
 * the start with its deletions, so a crash between batches leaves a log that
 * starts at the last batch's start. */
#define TRIM_BATCH_ENTRIES 4096
/* After this many entries trimmed, the trimmed range is compacted: LevelDB
 * keeps deleted entries (and the documents' overwritten versions in the same
 * files) on disk until a compaction merges their files, which under steady
 * overwrites of a small live set is far later than the retention asks. */
#define TRIM_COMPACT_ENTRIES 65536

/* One apply batch holds at most this many entries or about this many bytes
 * of ops, so that a long catch-up neither builds a huge batch nor holds the
 * mutex (and so appends) for long. */
#define APPLY_MAX_ENTRIES 1000
#define APPLY_MAX_BYTES ((size_t)4 << 20)
/* Slots of the per-batch overlay of documents; a power of two >= twice
 * APPLY_MAX_ENTRIES, so that probing stays short. */
#define OVERLAY_SLOTS 2048

struct sx_plog {
    sx_store *store;
    uint32_t partition;
    char *dir;          /* for messages */
    pthread_mutex_t mu; /* orders every write; held across its I/O */
    /* The fields below change only with mu and pub_mu both held (pub_mu just
     * for the change in memory); code holding mu reads them freely, getters
     * hold pub_mu only. */
    pthread_mutex_t pub_mu;
    uint64_t leo;           /* last offset in the log; 0 when empty */
    uint64_t start;         /* first offset held (1 until trimmed); <= applied when trimmed */
    uint64_t compacted;     /* start as of the last compaction of the trimmed range (mu) */
    uint64_t last_epoch;    /* epoch of the entry at leo */
    sx_epoch_start *epochs; /* ascending epoch, non-decreasing start_offset */
    size_t nepochs, cap_epochs;
    uint64_t applied;         /* <= leo */
    uint64_t commit;          /* highest commit offset recorded; may exceed leo */
    uint64_t appends;         /* batches appended since open (one fsync each when synced) */
    uint64_t appended;        /* entries appended since open */
    sx_plog_observer obs;     /* what applies feed; zero when nothing */
    sx_counter *docs_applied; /* opts->docs_applied */
};

/* protobuf-c allocates through this so that NULL from an unpack means "does
 * not decode", never "out of memory" (sx_malloc aborts on OOM). */
static void *pb_alloc(void *data, size_t size)
{
    (void)data;
    return sx_malloc(size);
}

static void pb_free(void *data, void *ptr)
{
    (void)data;
    free(ptr);
}

static ProtobufCAllocator pb_allocator = {.alloc = pb_alloc, .free = pb_free};

/* ---- encoding ---- */

static void key_u64(sx_buf *k, uint8_t tag, uint64_t v)
{
    sx_buf_reset(k);
    sx_buf_push(k, tag);
    sx_key_append_u64(k, v);
}

static void doc_key(sx_buf *k, const char *id, size_t id_len)
{
    sx_buf_reset(k);
    sx_buf_push(k, TAG_DOC);
    sx_key_append_str(k, id, id_len);
}

static void val_u64(sx_buf *v, uint64_t x)
{
    sx_buf_reset(v);
    sx_key_append_u64(v, x);
}

/* A 'tag u64' key; false if k is anything else. */
static bool parse_key_u64(const void *k, size_t len, uint8_t tag, uint64_t *out)
{
    sx_key_reader r;
    uint8_t t;
    sx_key_reader_init(&r, k, len);
    return sx_key_read_u8(&r, &t) && t == tag && sx_key_read_u64(&r, out) && sx_key_reader_done(&r);
}

/* A value that starts with a u64: the number, and where the rest begins.
 * exact: nothing may follow it. */
static bool parse_val_u64(const void *v, size_t len, bool exact, uint64_t *out, size_t *rest)
{
    sx_key_reader r;
    sx_key_reader_init(&r, v, len);
    if (!sx_key_read_u64(&r, out) || (exact && !sx_key_reader_done(&r)))
        return false;
    if (rest)
        *rest = r.pos;
    return true;
}

/* ---- the epoch table in memory ---- */

/* Epoch of offset by the table: the last row starting at or before it (a row
 * with an empty range shares its start with the next row, which wins). 0 when
 * no row starts at or before offset. */
static uint64_t table_epoch_at(const sx_epoch_start *t, size_t n, uint64_t offset)
{
    size_t lo = 0, hi = n; /* answer: rows [0, lo) start <= offset */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (t[mid].start_offset <= offset)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo ? t[lo - 1].epoch : 0;
}

static uint64_t max_epoch_locked(const sx_plog *p)
{
    return p->nepochs ? p->epochs[p->nepochs - 1].epoch : 0;
}

/* mu and pub_mu held (or the plog not yet shared, in open). */
static void push_epoch(sx_plog *p, uint64_t epoch, uint64_t start)
{
    if (p->nepochs == p->cap_epochs) {
        p->cap_epochs = p->cap_epochs ? 2 * p->cap_epochs : 16;
        p->epochs = sx_realloc(p->epochs, p->cap_epochs * sizeof(*p->epochs));
    }
    p->epochs[p->nepochs++] = (sx_epoch_start){.epoch = epoch, .start_offset = start};
}

/* ---- recovery ---- */

/* The epoch stored with the entry at offset; a missing or short entry is
 * SX_DATA_LOSS. */
static sx_status entry_epoch(sx_plog *p, uint64_t offset, sx_buf *key, sx_buf *val, uint64_t *epoch,
                             sx_err *err)
{
    bool found = false;
    key_u64(key, TAG_LOG, offset);
    sx_status st = sx_store_get(p->store, NULL, key->data, key->len, val, &found, err);
    if (st != SX_OK)
        return st;
    if (!found)
        return sx_err_set(err, SX_DATA_LOSS, "plog %s: log entry %" PRIu64 " is missing", p->dir,
                          offset);
    if (!parse_val_u64(val->data, val->len, false, epoch, NULL))
        return sx_err_set(err, SX_DATA_LOSS, "plog %s: log entry %" PRIu64 " is truncated", p->dir,
                          offset);
    return SX_OK;
}

/* leo and the epoch of the last entry from the 'L' keys; the first must be
 * the recorded start (1 unless trimmed). */
static sx_status recover_log(sx_plog *p, sx_err *err)
{
    const char tag = TAG_LOG;
    sx_iter *it = sx_store_iter_prefix(p->store, NULL, &tag, 1);
    sx_status st = SX_OK;
    if (sx_iter_valid(it)) {
        size_t klen, vlen;
        uint64_t first;
        const void *k = sx_iter_key(it, &klen);
        if (!parse_key_u64(k, klen, TAG_LOG, &first) || first != p->start) {
            st = sx_err_set(err, SX_DATA_LOSS, "plog %s: the log does not start at offset %" PRIu64,
                            p->dir, p->start);
            goto done;
        }
        sx_iter_seek_last(it);
        k = sx_iter_key(it, &klen);
        const void *v = sx_iter_value(it, &vlen);
        if (!sx_iter_valid(it) || !parse_key_u64(k, klen, TAG_LOG, &p->leo) ||
            !parse_val_u64(v, vlen, false, &p->last_epoch, NULL)) {
            st = sx_iter_status(it, err);
            if (st == SX_OK)
                st = sx_err_set(err, SX_DATA_LOSS, "plog %s: the last log entry is malformed",
                                p->dir);
            goto done;
        }
    } else if (p->start > 1) {
        /* Installed from a snapshot and nothing appended since: the log
         * holds no entry and continues at start (its epoch comes from the
         * table, once it is read). */
        p->leo = p->start - 1;
    }
    st = sx_iter_status(it, err);
done:
    sx_iter_destroy(it);
    return st;
}

static sx_status recover_epochs(sx_plog *p, sx_err *err)
{
    const char tag = TAG_EPOCH;
    sx_iter *it = sx_store_iter_prefix(p->store, NULL, &tag, 1);
    sx_status st = SX_OK;
    for (; sx_iter_valid(it); sx_iter_next(it)) {
        size_t klen, vlen;
        uint64_t epoch, start;
        const void *k = sx_iter_key(it, &klen);
        const void *v = sx_iter_value(it, &vlen);
        if (!parse_key_u64(k, klen, TAG_EPOCH, &epoch) ||
            !parse_val_u64(v, vlen, true, &start, NULL)) {
            st = sx_err_set(err, SX_DATA_LOSS, "plog %s: malformed epoch-table row", p->dir);
            goto done;
        }
        push_epoch(p, epoch, start);
    }
    st = sx_iter_status(it, err);
done:
    sx_iter_destroy(it);
    return st;
}

static sx_status recover_meta(sx_plog *p, const char *key, uint64_t *out, sx_buf *val, sx_err *err)
{
    bool found = false;
    *out = 0;
    sx_status st = sx_store_get(p->store, NULL, key, strlen(key), val, &found, err);
    if (st != SX_OK || !found)
        return st;
    if (!parse_val_u64(val->data, val->len, true, out, NULL))
        return sx_err_set(err, SX_DATA_LOSS, "plog %s: malformed %s", p->dir, key + 1);
    return SX_OK;
}

/* What recovery checks, cheaply (O(epochs) point reads, not a scan of the
 * log): the log starts at 1 (recover_log); the epoch table is ordered, starts
 * at 1 and stays within leo + 1; both ends of every non-empty epoch range hold
 * entries of that epoch; the last entry's epoch is the table's; applied <= leo.
 * A hole strictly inside one epoch's range is not found here but by
 * sx_plog_read and sx_plog_apply, which check that offsets are contiguous. */
static sx_status check_recovered(sx_plog *p, sx_err *err)
{
    sx_buf key = {0}, val = {0};
    sx_status st = SX_OK;
    const sx_epoch_start *t = p->epochs;
    size_t n = p->nepochs;
    for (size_t i = 0; i < n; i++) {
        bool ordered = t[i].epoch > 0 && t[i].start_offset > 0 && t[i].start_offset <= p->leo + 1 &&
                       (i == 0 || t[i].start_offset >= t[i - 1].start_offset);
        if (!ordered) {
            st = sx_err_set(err, SX_DATA_LOSS,
                            "plog %s: epoch table row epoch=%" PRIu64 " start=%" PRIu64
                            " is out of order (leo=%" PRIu64 ")",
                            p->dir, t[i].epoch, t[i].start_offset, p->leo);
            goto done;
        }
    }
    if (p->leo > 0 && (n == 0 || t[0].start_offset != 1)) {
        st = sx_err_set(err, SX_DATA_LOSS, "plog %s: the epoch table does not cover offset 1",
                        p->dir);
        goto done;
    }
    if (table_epoch_at(t, n, p->leo) != p->last_epoch) {
        st = sx_err_set(err, SX_DATA_LOSS,
                        "plog %s: last entry has epoch %" PRIu64 ", the epoch table says %" PRIu64,
                        p->dir, p->last_epoch, table_epoch_at(t, n, p->leo));
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        uint64_t start = t[i].start_offset;
        uint64_t end = i + 1 < n ? t[i + 1].start_offset - 1 : p->leo;
        if (end > p->leo)
            end = p->leo;
        if (start < p->start)
            start = p->start; /* trimmed: the table stays whole, the entries do not */
        if (end < start)
            continue; /* an epoch begun but not written in, or trimmed away */
        uint64_t offs[2] = {start, end};
        for (int j = 0; j < 2; j++) {
            uint64_t e;
            st = entry_epoch(p, offs[j], &key, &val, &e, err);
            if (st != SX_OK)
                goto done;
            if (e != t[i].epoch) {
                st = sx_err_set(err, SX_DATA_LOSS,
                                "plog %s: entry %" PRIu64 " has epoch %" PRIu64
                                ", the epoch table says %" PRIu64,
                                p->dir, offs[j], e, t[i].epoch);
                goto done;
            }
        }
    }
    /* A log installed from a snapshot at applied A holds no entry and starts
     * at A + 1 (leo = A): the documents hold everything up to A. */
    bool installed = p->start > 1 && p->start == p->leo + 1 && p->applied == p->leo;
    if (p->start > 1 && !installed && (p->start > p->applied || p->start > p->leo)) {
        /* A trim never passes the applied offset (sx_plog_trim): the
         * documents hold everything the missing entries said. */
        st = sx_err_set(err, SX_DATA_LOSS,
                        "plog %s: the log starts at %" PRIu64 ", above applied %" PRIu64
                        " or leo %" PRIu64,
                        p->dir, p->start, p->applied, p->leo);
        goto done;
    }
    if (p->applied > p->leo)
        st = sx_err_set(err, SX_DATA_LOSS,
                        "plog %s: applied offset %" PRIu64 " is beyond the log end %" PRIu64,
                        p->dir, p->applied, p->leo);
done:
    sx_buf_free(&key);
    sx_buf_free(&val);
    return st;
}

sx_status sx_plog_open(const char *dir, uint32_t partition, const sx_plog_opts *opts, sx_plog **out,
                       sx_err *err)
{
    static const sx_plog_opts defaults = {0};
    if (!opts)
        opts = &defaults;
    *out = NULL;
    sx_buf val = {0};
    sx_plog *p = sx_calloc(1, sizeof(*p));
    p->partition = partition;
    p->dir = sx_strdup(dir);
    if (opts->observer)
        p->obs = *opts->observer;
    p->docs_applied = opts->docs_applied;
    pthread_mutex_init(&p->mu, NULL);
    pthread_mutex_init(&p->pub_mu, NULL);
    /* Sync per write: the policy is off so that apply batches skip fsync. */
    sx_store_opts so = {.cache = opts->cache, .write_buffer_bytes = opts->write_buffer_bytes};
    sx_status st = sx_store_open(dir, &so, &p->store, err);
    if (st == SX_OK)
        st = recover_meta(p, START_KEY, &p->start, &val, err);
    if (p->start == 0)
        p->start = 1;
    p->compacted = p->start;
    if (st == SX_OK)
        st = recover_log(p, err);
    if (st == SX_OK)
        st = recover_epochs(p, err);
    if (st == SX_OK && p->leo + 1 == p->start && p->leo > 0)
        p->last_epoch =
            table_epoch_at(p->epochs, p->nepochs, p->leo); /* no entry to read it from */
    if (st == SX_OK)
        st = recover_meta(p, APPLIED_KEY, &p->applied, &val, err);
    if (st == SX_OK)
        st = recover_meta(p, COMMIT_KEY, &p->commit, &val, err);
    if (st == SX_OK)
        st = check_recovered(p, err);
    if (st != SX_OK)
        goto fail;
    sx_buf_free(&val);
    *out = p;
    return SX_OK;
fail:
    sx_buf_free(&val);
    sx_plog_close(p);
    return st;
}

void sx_plog_close(sx_plog *p)
{
    if (!p)
        return;
    sx_store_close(p->store);
    pthread_mutex_destroy(&p->mu);
    pthread_mutex_destroy(&p->pub_mu);
    free(p->epochs);
    free(p->dir);
    free(p);
}

/* ---- state ---- */

uint32_t sx_plog_partition(const sx_plog *p)
{
    return p->partition;
}

/* Each getter reads under pub_mu, never mu: it waits for no write. */
uint64_t sx_plog_leo(sx_plog *p)
{
    pthread_mutex_lock(&p->pub_mu);
    uint64_t v = p->leo;
    pthread_mutex_unlock(&p->pub_mu);
    return v;
}

uint64_t sx_plog_last_epoch(sx_plog *p)
{
    pthread_mutex_lock(&p->pub_mu);
    uint64_t v = p->last_epoch;
    pthread_mutex_unlock(&p->pub_mu);
    return v;
}

uint64_t sx_plog_max_epoch(sx_plog *p)
{
    pthread_mutex_lock(&p->pub_mu);
    uint64_t v = max_epoch_locked(p);
    pthread_mutex_unlock(&p->pub_mu);
    return v;
}

uint64_t sx_plog_start(sx_plog *p)
{
    pthread_mutex_lock(&p->pub_mu);
    uint64_t v = p->start;
    pthread_mutex_unlock(&p->pub_mu);
    return v;
}

uint64_t sx_plog_applied(sx_plog *p)
{
    pthread_mutex_lock(&p->pub_mu);
    uint64_t v = p->applied;
    pthread_mutex_unlock(&p->pub_mu);
    return v;
}

uint64_t sx_plog_commit(sx_plog *p)
{
    pthread_mutex_lock(&p->pub_mu);
    uint64_t v = p->commit;
    pthread_mutex_unlock(&p->pub_mu);
    return v;
}

sx_status sx_plog_epoch_at(sx_plog *p, uint64_t offset, uint64_t *epoch, sx_err *err)
{
    sx_status st = SX_OK;
    pthread_mutex_lock(&p->pub_mu);
    if (offset > p->leo)
        st = sx_err_set(err, SX_OUT_OF_RANGE,
                        "plog %s: offset %" PRIu64 " is beyond the log end %" PRIu64, p->dir,
                        offset, p->leo);
    else
        *epoch = offset == 0 ? 0 : table_epoch_at(p->epochs, p->nepochs, offset);
    pthread_mutex_unlock(&p->pub_mu);
    return st;
}

size_t sx_plog_epochs(sx_plog *p, sx_epoch_start *out, size_t cap)
{
    pthread_mutex_lock(&p->pub_mu);
    size_t n = p->nepochs;
    if (cap > 0 && n > 0)
        memcpy(out, p->epochs, (cap < n ? cap : n) * sizeof(*out));
    pthread_mutex_unlock(&p->pub_mu);
    return n;
}

/* ---- writing the log ---- */

sx_status sx_plog_begin_epoch(sx_plog *p, uint64_t epoch, sx_err *err)
{
    if (epoch == 0)
        return sx_err_set(err, SX_INVALID_ARGUMENT, "plog %s: epoch 0 cannot be begun", p->dir);
    sx_buf key = {0}, val = {0};
    sx_status st = SX_OK;
    pthread_mutex_lock(&p->mu);
    uint64_t max = max_epoch_locked(p);
    if (epoch < max) {
        st =
            sx_err_set(err, SX_FAILED_PRECONDITION,
                       "plog %s: cannot begin epoch %" PRIu64 ": epoch %" PRIu64 " is in the table",
                       p->dir, epoch, max);
    } else if (epoch > max) {
        key_u64(&key, TAG_EPOCH, epoch);
        val_u64(&val, p->leo + 1);
        st = sx_store_put(p->store, key.data, key.len, val.data, val.len, SX_SYNC_YES, err);
        if (st == SX_OK) {
            pthread_mutex_lock(&p->pub_mu);
            push_epoch(p, epoch, p->leo + 1);
            pthread_mutex_unlock(&p->pub_mu);
        }
    }
    pthread_mutex_unlock(&p->mu);
    sx_buf_free(&key);
    sx_buf_free(&val);
    return st;
}

sx_status sx_plog_append(sx_plog *p, const sx_log_entry *entries, size_t n, bool sync, sx_err *err)
{
    if (n == 0)
        return SX_OK;
    sx_buf key = {0}, val = {0};
    sx_batch *b = NULL;
    sx_epoch_start *rows = NULL; /* rows this batch adds, pushed once it is written */
    size_t nrows = 0;
    sx_status st = SX_OK;
    pthread_mutex_lock(&p->mu);
    uint64_t prev = p->last_epoch;
    for (size_t i = 0; i < n; i++) {
        if (entries[i].epoch == 0 || entries[i].epoch < prev ||
            (!entries[i].op && entries[i].op_len)) {
            st = sx_err_set(err, SX_INVALID_ARGUMENT,
                            "plog %s: entry %zu of the append has epoch %" PRIu64
                            " after epoch %" PRIu64 " (or no op)",
                            p->dir, i, entries[i].epoch, prev);
            goto fail;
        }
        prev = entries[i].epoch;
    }
    b = sx_batch_create();
    rows = sx_malloc(n * sizeof(*rows));
    /* Rows above the first entry's epoch can only be epochs begun here and
     * not written in (an entry of theirs would be above last_epoch): this
     * replica led them, wrote nothing and now follows a leader whose log has
     * older entries next. They hold no entries, so they go, in this batch,
     * keeping the table in offset order. */
    size_t keep = p->nepochs;
    while (keep > 0 && p->epochs[keep - 1].epoch > entries[0].epoch) {
        keep--;
        assert(p->epochs[keep].start_offset == p->leo + 1);
        key_u64(&key, TAG_EPOCH, p->epochs[keep].epoch);
        sx_batch_delete(b, key.data, key.len);
    }
    uint64_t max = keep ? p->epochs[keep - 1].epoch : 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t off = p->leo + 1 + i;
        if (entries[i].epoch > max) {
            max = entries[i].epoch;
            rows[nrows++] = (sx_epoch_start){.epoch = max, .start_offset = off};
            key_u64(&key, TAG_EPOCH, max);
            val_u64(&val, off);
            sx_batch_put(b, key.data, key.len, val.data, val.len);
        }
        key_u64(&key, TAG_LOG, off);
        val_u64(&val, entries[i].epoch);
        sx_buf_append(&val, entries[i].op, entries[i].op_len);
        sx_batch_put(b, key.data, key.len, val.data, val.len);
    }
    st = sx_store_write(p->store, b, sync ? SX_SYNC_YES : SX_SYNC_NO, err);
    if (st != SX_OK)
        goto fail;
    pthread_mutex_lock(&p->pub_mu);
    p->nepochs = keep;
    for (size_t i = 0; i < nrows; i++)
        push_epoch(p, rows[i].epoch, rows[i].start_offset);
    p->leo += n;
    p->last_epoch = entries[n - 1].epoch;
    p->appends++;
    p->appended += n;
    pthread_mutex_unlock(&p->pub_mu);
fail:
    pthread_mutex_unlock(&p->mu);
    free(rows);
    sx_batch_destroy(b);
    sx_buf_free(&key);
    sx_buf_free(&val);
    return st;
}

sx_status sx_plog_truncate(sx_plog *p, uint64_t offset, sx_err *err)
{
    sx_buf key = {0}, val = {0};
    sx_batch *b = sx_batch_create();
    sx_status st = SX_OK;
    pthread_mutex_lock(&p->mu);
    if (offset < p->applied) {
        /* Applied documents (and indexes) would keep entries the log no
         * longer has: the replication code broke rule 6 or 7. Stop before
         * anything is served from that state. */
        SX_LOG(SX_LOG_ERROR, "plog",
               "truncation below the applied offset partition=%" PRIu32 " offset=%" PRIu64
               " applied=%" PRIu64 " leo=%" PRIu64 " dir=%s",
               p->partition, offset, p->applied, p->leo, p->dir);
        abort();
    }
    if (offset > p->leo)
        goto done;
    for (uint64_t o = offset + 1; o <= p->leo; o++) {
        key_u64(&key, TAG_LOG, o);
        sx_batch_delete(b, key.data, key.len);
    }
    /* Starts are non-decreasing, so the rows to drop are a suffix. */
    size_t keep = p->nepochs;
    while (keep > 0 && p->epochs[keep - 1].start_offset > offset)
        keep--;
    for (size_t i = keep; i < p->nepochs; i++) {
        key_u64(&key, TAG_EPOCH, p->epochs[i].epoch);
        sx_batch_delete(b, key.data, key.len);
    }
    uint64_t commit = p->commit;
    if (commit > offset) {
        /* Entries up to a commit offset are never truncated by a correct
         * protocol; keeping the old value would call the entries that replace
         * them committed. */
        SX_LOG(SX_LOG_WARN, "plog",
               "truncation below the recorded commit offset partition=%" PRIu32 " offset=%" PRIu64
               " commit=%" PRIu64,
               p->partition, offset, commit);
        commit = offset;
        val_u64(&val, commit);
        sx_batch_put(b, COMMIT_KEY, strlen(COMMIT_KEY), val.data, val.len);
    }
    if (sx_batch_count(b) == 0)
        goto done;
    st = sx_store_write(p->store, b, SX_SYNC_YES, err);
    if (st != SX_OK)
        goto done;
    pthread_mutex_lock(&p->pub_mu);
    p->leo = offset;
    p->nepochs = keep;
    p->last_epoch = offset ? table_epoch_at(p->epochs, p->nepochs, offset) : 0;
    p->commit = commit;
    pthread_mutex_unlock(&p->pub_mu);
done:
    pthread_mutex_unlock(&p->mu);
    sx_batch_destroy(b);
    sx_buf_free(&key);
    sx_buf_free(&val);
    return st;
}

/* One batch of a trim: entries [start, upto) go and the start becomes upto,
 * atomically. Not synced: a batch lost in a crash leaves the entries and the
 * old start, a consistent log, and LevelDB recovers a prefix of its writes,
 * so a later batch (or apply) never survives an earlier one's loss. mu held. */
static sx_status trim_batch_locked(sx_plog *p, uint64_t upto, sx_err *err)
{
    sx_buf key = {0}, val = {0};
    sx_batch *b = sx_batch_create();
    for (uint64_t o = p->start; o < upto; o++) {
        key_u64(&key, TAG_LOG, o);
        sx_batch_delete(b, key.data, key.len);
    }
    val_u64(&val, upto);
    sx_batch_put(b, START_KEY, strlen(START_KEY), val.data, val.len);
    sx_status st = sx_store_write(p->store, b, SX_SYNC_NO, err);
    if (st == SX_OK) {
        pthread_mutex_lock(&p->pub_mu);
        p->start = upto;
        pthread_mutex_unlock(&p->pub_mu);
    }
    sx_batch_destroy(b);
    sx_buf_free(&key);
    sx_buf_free(&val);
    return st;
}

bool sx_plog_compact_due(sx_plog *p)
{
    pthread_mutex_lock(&p->mu);
    bool due = p->start - p->compacted >= TRIM_COMPACT_ENTRIES;
    pthread_mutex_unlock(&p->mu);
    return due;
}

/* Compacts everything below the start once TRIM_COMPACT_ENTRIES more were
 * trimmed: from the first key of the store (the documents' 'D' keys sort
 * before 'L', and their overwritten versions share files with the log) to
 * the start's log key. Without the mutex: LevelDB compacts beside writes. */
void sx_plog_compact_trimmed(sx_plog *p)
{
    pthread_mutex_lock(&p->mu);
    uint64_t start = p->start;
    bool due = start - p->compacted >= TRIM_COMPACT_ENTRIES;
    if (due)
        p->compacted = start;
    pthread_mutex_unlock(&p->mu);
    if (!due)
        return;
    sx_buf hi = {0};
    key_u64(&hi, TAG_LOG, start);
    sx_store_compact_range(p->store, NULL, 0, hi.data, hi.len);
    sx_buf_free(&hi);
}

sx_status sx_plog_trim(sx_plog *p, uint64_t floor, uint64_t *removed, sx_err *err)
{
    sx_status st = SX_OK;
    uint64_t gone = 0;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        /* Never past the applied offset: what goes must already be in the
         * documents and indexes, and the entry at applied stays so that the
         * log is never empty once it held something (leo is its last key). */
        uint64_t upto = floor < p->applied ? floor : p->applied;
        if (upto <= p->start) {
            pthread_mutex_unlock(&p->mu);
            break;
        }
        if (upto - p->start > TRIM_BATCH_ENTRIES)
            upto = p->start + TRIM_BATCH_ENTRIES;
        uint64_t from = p->start;
        st = trim_batch_locked(p, upto, err);
        pthread_mutex_unlock(&p->mu);
        if (st != SX_OK)
            break;
        gone += upto - from;
        /* Tests kill -9 here: the store holds a log starting at upto. */
        SX_CRASH_POINT("plog-trim-batch");
    }
    if (removed)
        *removed = gone;
    return st;
}

sx_status sx_plog_read(sx_plog *p, uint64_t from, size_t max_entries, size_t max_bytes,
                       sx_arena *arena, sx_log_entry *out, size_t *n, sx_err *err)
{
    *n = 0;
    if (from == 0)
        return sx_err_set(err, SX_INVALID_ARGUMENT, "plog %s: offsets start at 1", p->dir);
    sx_buf lo = {0}, hi = {0};
    sx_iter *it = NULL;
    sx_status st = SX_OK;
    pthread_mutex_lock(&p->mu);
    uint64_t leo = p->leo, start = p->start;
    if (from < start) {
        pthread_mutex_unlock(&p->mu);
        return sx_err_set(err, SX_OUT_OF_RANGE,
                          "plog %s: read from %" PRIu64 " is below the log start %" PRIu64
                          " (trimmed)",
                          p->dir, from, start);
    }
    if (from <= leo && max_entries > 0) {
        /* Created under the mutex: the iterator sees the log as of leo. */
        key_u64(&lo, TAG_LOG, from);
        key_u64(&hi, TAG_LOG, leo + 1);
        it = sx_store_iter_range(p->store, NULL, lo.data, lo.len, hi.data, hi.len);
    }
    pthread_mutex_unlock(&p->mu);
    if (from > leo + 1) {
        st = sx_err_set(err, SX_OUT_OF_RANGE,
                        "plog %s: read from %" PRIu64 " is beyond the log end %" PRIu64, p->dir,
                        from, leo);
        goto done;
    }
    if (!it)
        goto done;
    uint64_t next = from;
    size_t count = 0, bytes = 0;
    for (; count < max_entries && sx_iter_valid(it); sx_iter_next(it)) {
        size_t klen, vlen, rest;
        uint64_t off, epoch;
        const void *k = sx_iter_key(it, &klen);
        const uint8_t *v = sx_iter_value(it, &vlen);
        if (!parse_key_u64(k, klen, TAG_LOG, &off) || off != next ||
            !parse_val_u64(v, vlen, false, &epoch, &rest)) {
            st = sx_err_set(err, SX_DATA_LOSS,
                            "plog %s: log entry %" PRIu64 " is missing or malformed", p->dir, next);
            goto done;
        }
        size_t len = vlen - rest;
        if (count > 0 && bytes + len > max_bytes)
            break;
        out[count].epoch = epoch;
        out[count].op = len ? sx_arena_memdup(arena, v + rest, len) : NULL;
        out[count].op_len = len;
        bytes += len;
        count++;
        next++;
    }
    st = sx_iter_status(it, err);
    if (st == SX_OK && !sx_iter_valid(it) && count < max_entries && next <= leo)
        st = sx_err_set(err, SX_DATA_LOSS, "plog %s: log entry %" PRIu64 " is missing", p->dir,
                        next);
    if (st == SX_OK)
        *n = count;
done:
    sx_iter_destroy(it);
    sx_buf_free(&lo);
    sx_buf_free(&hi);
    return st;
}

/* Why this is right: an epoch has one leader, which appends in order, and a
 * replica takes an entry only at the offset the leader gave it, after its
 * entry before matched the leader's. So two logs holding the same epoch at the
 * same offset hold the same entries up to it (log matching), and the common
 * prefix is the largest offset where both have the same epoch: within each
 * epoch both logs have, the end of the shorter of the two ranges, when the
 * ranges meet. An epoch one side never saw (KIP-279) or a tail of an old epoch
 * on one side (KIP-101) only shortens ranges; it never makes different entries
 * look the same. Both tables must be ascending by epoch with non-decreasing
 * starts, as sx_plog_epochs gives them (the caller checks one from the wire). */
uint64_t sx_plog_common_prefix(const sx_epoch_start *a, size_t na, uint64_t leo_a,
                               const sx_epoch_start *b, size_t nb, uint64_t leo_b)
{
    uint64_t best = 0;
    size_t i = 0, j = 0;
    while (i < na && j < nb) {
        if (a[i].epoch < b[j].epoch) {
            i++;
            continue;
        }
        if (a[i].epoch > b[j].epoch) {
            j++;
            continue;
        }
        uint64_t end_a = i + 1 < na ? a[i + 1].start_offset - 1 : leo_a;
        uint64_t end_b = j + 1 < nb ? b[j + 1].start_offset - 1 : leo_b;
        end_a = end_a < leo_a ? end_a : leo_a;
        end_b = end_b < leo_b ? end_b : leo_b;
        uint64_t lo = a[i].start_offset > b[j].start_offset ? a[i].start_offset : b[j].start_offset;
        uint64_t hi = end_a < end_b ? end_a : end_b;
        if (lo <= hi && hi > best)
            best = hi;
        i++;
        j++;
    }
    return best;
}

/* ---- apply ---- */

/* What this batch did to a document so far, so that a later entry for the
 * same id within the batch sees it as its old document. */
typedef struct overlay_slot {
    const char *id; /* NULL: the slot is free */
    size_t id_len;
    const uint8_t *doc; /* the packed Document; NULL: deleted */
    size_t doc_len;
    uint64_t version; /* the offset that wrote doc */
} overlay_slot;

/* Scratch for apply, reused across batches. */
typedef struct apply_ctx {
    sx_buf key, val, old;
    sx_batch *batch;
    sx_arena arena; /* overlay ids and documents of the current batch */
    overlay_slot *slots;
} apply_ctx;

/* The slot of id: where it is, or the free slot where it goes. A batch has at
 * most APPLY_MAX_ENTRIES ids, so a free slot always exists. */
static overlay_slot *overlay_find(apply_ctx *c, const char *id, size_t id_len)
{
    size_t mask = OVERLAY_SLOTS - 1;
    for (size_t i = (size_t)sx_hash64(id, id_len) & mask;; i = (i + 1) & mask) {
        overlay_slot *s = &c->slots[i];
        if (!s->id || (s->id_len == id_len && memcmp(s->id, id, id_len) == 0))
            return s;
    }
}

/* The document before this entry (*old NULL: none), from the overlay or else
 * the store; c->key holds the document's key. */
static sx_status old_doc(sx_plog *p, apply_ctx *c, const overlay_slot *s, const uint8_t **old,
                         size_t *old_len, uint64_t *old_version, sx_err *err)
{
    *old = NULL;
    *old_len = 0;
    *old_version = 0;
    if (s->id) {
        *old = s->doc;
        *old_len = s->doc_len;
        *old_version = s->doc ? s->version : 0;
        return SX_OK;
    }
    bool found = false;
    sx_status st = sx_store_get(p->store, NULL, c->key.data, c->key.len, &c->old, &found, err);
    if (st != SX_OK || !found)
        return st;
    uint64_t version;
    size_t rest;
    if (!parse_val_u64(c->old.data, c->old.len, false, &version, &rest))
        return sx_err_set(err, SX_DATA_LOSS, "plog %s: a stored document is malformed", p->dir);
    *old = c->old.data + rest;
    *old_len = c->old.len - rest;
    *old_version = version;
    return SX_OK;
}

/* Adds the entry at offset to c->batch and tells the observer. *bad: the entry
 * itself cannot be applied (SX_DATA_LOSS), as opposed to a store failure. */
/* What apply_entry did with an entry. */
enum { ENTRY_APPLIED, ENTRY_MARKER_NEXT, ENTRY_MARKER_DONE };

static sx_status apply_entry(sx_plog *p, apply_ctx *c, uint64_t offset, const uint8_t *op,
                             size_t op_len, bool first, bool *bad, int *what, sx_err *err)
{
    *bad = false;
    *what = ENTRY_APPLIED;
    Shardex__Internal__V1__LogOp *lop =
        shardex__internal__v1__log_op__unpack(&pb_allocator, op_len, op);
    if (!lop) {
        *bad = true;
        return sx_err_set(err, SX_DATA_LOSS, "plog %s: log entry %" PRIu64 " does not decode",
                          p->dir, offset);
    }
    sx_status st = SX_OK;
    const Shardex__V1__Document *doc = NULL;
    const char *id;
    if (lop->op_case == SHARDEX__INTERNAL__V1__LOG_OP__OP_PUT && lop->put) {
        doc = lop->put;
        id = doc->id;
    } else if (lop->op_case == SHARDEX__INTERNAL__V1__LOG_OP__OP_DELETE && lop->delete_) {
        id = lop->delete_;
    } else if ((lop->op_case == SHARDEX__INTERNAL__V1__LOG_OP__OP_INDEX_START && lop->index_start &&
                lop->index_start->spec) ||
               lop->op_case == SHARDEX__INTERNAL__V1__LOG_OP__OP_INDEX_DROP ||
               (lop->op_case == SHARDEX__INTERNAL__V1__LOG_OP__OP_INDEX_SPLIT &&
                lop->index_split) ||
               (lop->op_case == SHARDEX__INTERNAL__V1__LOG_OP__OP_INDEX_SALT && lop->index_salt)) {
        /* A marker is applied alone in its batch, on the documents as of the
         * offset before it: end the batch before it unless it comes first. */
        if (!first) {
            *what = ENTRY_MARKER_NEXT;
        } else {
            *what = ENTRY_MARKER_DONE;
            if (p->obs.marker)
                st = p->obs.marker(p->obs.arg, c->batch, offset, lop, err);
        }
        goto done;
    } else {
        *bad = true;
        st = sx_err_set(err, SX_DATA_LOSS, "plog %s: log entry %" PRIu64 " holds no operation",
                        p->dir, offset);
        goto done;
    }
    size_t id_len = strlen(id);
    overlay_slot *s = overlay_find(c, id, id_len);
    const uint8_t *old;
    size_t old_len;
    uint64_t old_version;
    doc_key(&c->key, id, id_len);
    st = old_doc(p, c, s, &old, &old_len, &old_version, err);
    if (st != SX_OK)
        goto done;
    const uint8_t *new_doc = NULL;
    size_t new_len = 0;
    if (doc) {
        val_u64(&c->val, offset); /* the version */
        new_len = shardex__v1__document__get_packed_size(doc);
        sx_buf_reserve(&c->val, new_len);
        new_doc = c->val.data + c->val.len;
        c->val.len += shardex__v1__document__pack(doc, c->val.data + c->val.len);
        sx_batch_put(c->batch, c->key.data, c->key.len, c->val.data, c->val.len);
    } else {
        sx_batch_delete(c->batch, c->key.data, c->key.len);
    }
    if (p->obs.entry)
        p->obs.entry(p->obs.arg, c->batch, offset, id, id_len, old, old_len, old_version, new_doc,
                     new_len);
    if (!s->id) {
        s->id = sx_arena_memdup(&c->arena, id, id_len);
        s->id_len = id_len;
    }
    s->doc = new_doc ? sx_arena_memdup(&c->arena, new_doc, new_len) : NULL;
    s->doc_len = new_len;
    s->version = offset;
done:
    shardex__internal__v1__log_op__free_unpacked(lop, &pb_allocator);
    return st;
}

/* Applies one batch: from applied + 1, at most APPLY_MAX_ENTRIES entries or
 * about APPLY_MAX_BYTES of ops, up to min(commit, leo), with applied and
 * commit in the same batch. An entry that cannot be applied ends the batch:
 * the entries before it are written, then its SX_DATA_LOSS is returned. A
 * store failure writes nothing. *done: nothing is left to apply. */
static sx_status apply_batch_locked(sx_plog *p, apply_ctx *c, uint64_t commit, bool *done,
                                    sx_err *err)
{
    uint64_t target = commit < p->leo ? commit : p->leo;
    uint64_t new_commit = commit > p->commit ? commit : p->commit;
    sx_status st = SX_OK;
    *done = true;
    if (p->applied >= target) {
        if (new_commit == p->commit)
            return SX_OK;
        val_u64(&c->val, new_commit);
        st = sx_store_put(p->store, COMMIT_KEY, strlen(COMMIT_KEY), c->val.data, c->val.len,
                          SX_SYNC_NO, err);
        if (st == SX_OK) {
            pthread_mutex_lock(&p->pub_mu);
            p->commit = new_commit;
            pthread_mutex_unlock(&p->pub_mu);
        }
        return st;
    }
    sx_batch_clear(c->batch);
    sx_arena_free(&c->arena);
    memset(c->slots, 0, OVERLAY_SLOTS * sizeof(*c->slots));
    uint64_t from = p->applied + 1;
    uint64_t last =
        target - p->applied > APPLY_MAX_ENTRIES ? p->applied + APPLY_MAX_ENTRIES : target;
    key_u64(&c->key, TAG_LOG, from);
    key_u64(&c->val, TAG_LOG, last + 1);
    sx_iter *it =
        sx_store_iter_range(p->store, NULL, c->key.data, c->key.len, c->val.data, c->val.len);
    uint64_t next = from;
    size_t bytes = 0;
    uint64_t docs = 0; /* puts and deletes in the batch */
    bool bad = false;
    for (; bytes < APPLY_MAX_BYTES && sx_iter_valid(it); sx_iter_next(it)) {
        size_t klen, vlen, rest;
        uint64_t off, epoch;
        const void *k = sx_iter_key(it, &klen);
        const uint8_t *v = sx_iter_value(it, &vlen);
        if (!parse_key_u64(k, klen, TAG_LOG, &off) || off != next ||
            !parse_val_u64(v, vlen, false, &epoch, &rest)) {
            bad = true;
            st = sx_err_set(err, SX_DATA_LOSS,
                            "plog %s: log entry %" PRIu64 " is missing or malformed", p->dir, next);
            break;
        }
        int what;
        st = apply_entry(p, c, off, v + rest, vlen - rest, next == from, &bad, &what, err);
        if (st != SX_OK || what == ENTRY_MARKER_NEXT)
            break;
        bytes += vlen;
        next++;
        docs += what == ENTRY_APPLIED;
        if (what == ENTRY_MARKER_DONE)
            break;
    }
    if (st == SX_OK && !sx_iter_valid(it)) {
        st = sx_iter_status(it, err);
        if (st == SX_OK && next <= last) {
            bad = true;
            st = sx_err_set(err, SX_DATA_LOSS, "plog %s: log entry %" PRIu64 " is missing", p->dir,
                            next);
        }
    }
    sx_iter_destroy(it);
    bool observed = next > from || (st != SX_OK && p->obs.marker);
    if (st != SX_OK && !bad) {
        if (observed && p->obs.end)
            p->obs.end(p->obs.arg, false);
        return st;
    }
    if (next - 1 > p->applied || new_commit != p->commit) {
        val_u64(&c->val, next - 1);
        sx_batch_put(c->batch, APPLIED_KEY, strlen(APPLIED_KEY), c->val.data, c->val.len);
        val_u64(&c->val, new_commit);
        sx_batch_put(c->batch, COMMIT_KEY, strlen(COMMIT_KEY), c->val.data, c->val.len);
        if (observed && p->obs.seal)
            p->obs.seal(p->obs.arg, c->batch);
        /* Not synced: the log is, and this batch is re-derived from it. */
        sx_status wst = sx_store_write(p->store, c->batch, SX_SYNC_NO, err);
        if (observed && p->obs.end)
            p->obs.end(p->obs.arg, wst == SX_OK);
        if (wst != SX_OK)
            return wst;
        sx_counter_add(p->docs_applied, docs);
        pthread_mutex_lock(&p->pub_mu);
        p->applied = next - 1;
        p->commit = new_commit;
        pthread_mutex_unlock(&p->pub_mu);
    } else if (observed && p->obs.end) {
        p->obs.end(p->obs.arg, false);
    }
    if (st != SX_OK)
        return st;
    *done = p->applied >= target;
    return SX_OK;
}

sx_status sx_plog_apply(sx_plog *p, uint64_t commit, uint64_t *applied, sx_err *err)
{
    apply_ctx c = {.batch = sx_batch_create(),
                   .slots = sx_calloc(OVERLAY_SLOTS, sizeof(overlay_slot))};
    sx_status st;
    bool done = false;
    do {
        /* One batch per hold of the mutex, so that appends interleave with a
         * long catch-up; a truncation in between only moves leo, never below
         * applied. */
        pthread_mutex_lock(&p->mu);
        st = apply_batch_locked(p, &c, commit, &done, err);
        if (applied)
            *applied = p->applied;
        pthread_mutex_unlock(&p->mu);
    } while (st == SX_OK && !done);
    sx_batch_destroy(c.batch);
    sx_arena_free(&c.arena);
    free(c.slots);
    sx_buf_free(&c.key);
    sx_buf_free(&c.val);
    sx_buf_free(&c.old);
    return st;
}

/* ---- documents ---- */

sx_status sx_plog_get_doc_at(sx_plog *p, const sx_snapshot *snap, const char *id, size_t id_len,
                             bool *found, uint64_t *version, sx_buf *doc, sx_err *err)
{
    sx_buf key = {0};
    bool f = false;
    *found = false;
    doc_key(&key, id, id_len);
    sx_status st = sx_store_get(p->store, snap, key.data, key.len, doc, &f, err);
    sx_buf_free(&key);
    if (st != SX_OK || !f)
        return st;
    uint64_t v;
    size_t rest;
    if (!parse_val_u64(doc->data, doc->len, false, &v, &rest))
        return sx_err_set(err, SX_DATA_LOSS, "plog %s: a stored document is malformed", p->dir);
    memmove(doc->data, doc->data + rest, doc->len - rest);
    doc->len -= rest;
    if (version)
        *version = v;
    *found = true;
    return SX_OK;
}

sx_status sx_plog_get_doc(sx_plog *p, const char *id, size_t id_len, bool *found, uint64_t *version,
                          sx_buf *doc, sx_err *err)
{
    return sx_plog_get_doc_at(p, NULL, id, id_len, found, version, doc, err);
}

sx_store *sx_plog_store(sx_plog *p)
{
    return p->store;
}

const sx_snapshot *sx_plog_snapshot(sx_plog *p, uint64_t *applied)
{
    pthread_mutex_lock(&p->mu);
    const sx_snapshot *snap = sx_store_snapshot(p->store);
    *applied = p->applied;
    pthread_mutex_unlock(&p->mu);
    return snap;
}

sx_status sx_plog_scan_docs_locked(sx_plog *p,
                                   bool (*fn)(void *arg, const char *id, size_t id_len,
                                              uint64_t version, const uint8_t *doc, size_t len),
                                   void *arg, sx_err *err)
{
    return sx_plog_scan_docs(p, fn, arg, err); /* reads only: needs no lock either way */
}

sx_status sx_plog_scan_docs_at(sx_plog *p, const sx_snapshot *snap,
                               bool (*fn)(void *arg, const char *id, size_t id_len,
                                          uint64_t version, const uint8_t *doc, size_t len),
                               void *arg, sx_err *err)
{
    return sx_plog_scan_docs_after(p, snap, NULL, 0, fn, arg, err);
}

sx_status sx_plog_scan_docs_after(sx_plog *p, const sx_snapshot *snap, const char *after,
                                  size_t after_len,
                                  bool (*fn)(void *arg, const char *id, size_t id_len,
                                             uint64_t version, const uint8_t *doc, size_t len),
                                  void *arg, sx_err *err)
{
    const char tag = TAG_DOC;
    sx_iter *it = sx_store_iter_prefix(p->store, snap, &tag, 1);
    sx_buf id = {0};
    sx_status st = SX_OK;
    if (after) {
        sx_buf_push(&id, TAG_DOC);
        sx_key_append_str(&id, after, after_len);
        sx_iter_seek(it, id.data, id.len);
        size_t klen;
        const void *k = sx_iter_key(it, &klen);
        if (k && klen == id.len && memcmp(k, id.data, klen) == 0)
            sx_iter_next(it);
    }
    for (; sx_iter_valid(it); sx_iter_next(it)) {
        size_t klen, vlen, rest;
        uint64_t version;
        uint8_t t;
        sx_key_reader r;
        const void *k = sx_iter_key(it, &klen);
        const uint8_t *v = sx_iter_value(it, &vlen);
        sx_key_reader_init(&r, k, klen);
        sx_buf_reset(&id);
        if (!sx_key_read_u8(&r, &t) || !sx_key_read_str(&r, &id) || !sx_key_reader_done(&r) ||
            !parse_val_u64(v, vlen, false, &version, &rest)) {
            st = sx_err_set(err, SX_DATA_LOSS, "plog %s: a stored document is malformed", p->dir);
            goto done;
        }
        sx_buf_push(&id, 0); /* a terminator for callers' convenience, not counted */
        if (!fn(arg, (const char *)id.data, id.len - 1, version, v + rest, vlen - rest))
            goto done;
    }
    st = sx_iter_status(it, err);
done:
    sx_iter_destroy(it);
    sx_buf_free(&id);
    return st;
}

sx_status sx_plog_run_locked(sx_plog *p, sx_status (*fn)(void *arg, sx_err *err), void *arg,
                             sx_err *err)
{
    pthread_mutex_lock(&p->mu);
    sx_status st = fn(arg, err);
    pthread_mutex_unlock(&p->mu);
    return st;
}

sx_status sx_plog_scan_docs(sx_plog *p,
                            bool (*fn)(void *arg, const char *id, size_t id_len, uint64_t version,
                                       const uint8_t *doc, size_t len),
                            void *arg, sx_err *err)
{
    return sx_plog_scan_docs_at(p, NULL, fn, arg, err);
}

void sx_plog_counters(sx_plog *p, uint64_t *appends, uint64_t *entries)
{
    pthread_mutex_lock(&p->pub_mu);
    *appends = p->appends;
    *entries = p->appended;
    pthread_mutex_unlock(&p->pub_mu);
}

/* ---- snapshots (worker/psnap.c) ---- */

bool sx_plog_snapshot_keep(const void *k, size_t klen, const void *v, size_t vlen, uint64_t applied)
{
    const uint8_t *key = k;
    if (klen == 0 || key[0] == TAG_LOG)
        return false;
    if (key[0] == 'M') {
        static const char *const offsets[] = {APPLIED_KEY, COMMIT_KEY, START_KEY, SNAPSHOT_KEY};
        for (size_t i = 0; i < sizeof(offsets) / sizeof(*offsets); i++)
            if (klen == strlen(offsets[i]) && memcmp(k, offsets[i], klen) == 0)
                return false; /* the receiver writes its own (sx_plog_snapshot_seal) */
        return true;
    }
    uint64_t epoch, start;
    if (key[0] == TAG_EPOCH && parse_key_u64(k, klen, TAG_EPOCH, &epoch) &&
        parse_val_u64(v, vlen, true, &start, NULL))
        return start <= applied + 1; /* rows of epochs begun after the snapshot's offset go */
    return true;
}

const void *sx_plog_snapshot_skip(const void *k, size_t klen, size_t *next_len)
{
    static const char after_log[] = {TAG_LOG + 1};
    const uint8_t *key = k;
    if (klen > 0 && key[0] == TAG_LOG) {
        *next_len = 1;
        return after_log;
    }
    return NULL;
}

void sx_plog_snapshot_seal(sx_batch *b, uint64_t applied)
{
    sx_buf v = {0};
    val_u64(&v, applied);
    sx_batch_put(b, APPLIED_KEY, strlen(APPLIED_KEY), v.data, v.len);
    sx_batch_put(b, COMMIT_KEY, strlen(COMMIT_KEY), v.data, v.len);
    sx_batch_put(b, SNAPSHOT_KEY, strlen(SNAPSHOT_KEY), v.data, v.len);
    val_u64(&v, applied + 1);
    sx_batch_put(b, START_KEY, strlen(START_KEY), v.data, v.len);
    sx_buf_free(&v);
}

sx_status sx_plog_snapshot_complete(sx_store *s, bool *complete, uint64_t *applied, sx_err *err)
{
    sx_buf v = {0};
    *complete = false;
    sx_status st = sx_store_get(s, NULL, SNAPSHOT_KEY, strlen(SNAPSHOT_KEY), &v, complete, err);
    uint64_t a = 0;
    if (st == SX_OK && *complete && !parse_val_u64(v.data, v.len, true, &a, NULL))
        *complete = false; /* a torn value cannot be: treat it as cut short */
    if (applied)
        *applied = a;
    sx_buf_free(&v);
    return st;
}
