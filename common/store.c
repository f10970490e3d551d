/* store.c: sx_store on LevelDB's C API (the only file that includes it).
 *
 * Handles wrap LevelDB's, except snapshots, which are LevelDB's own pointer
 * cast to sx_snapshot (no allocation per snapshot). Every call that can fail
 * passes LevelDB a fresh NULL error pointer and frees what comes back, so no
 * LevelDB string outlives the call that produced it.
 *
 * Not here: bounds on key and value sizes (callers check input from the
 * network before it gets this far); a bloom filter policy (not set: gets of
 * missing keys read a block each).
 */
#include "store.h"

#include <errno.h>
#include <leveldb/c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define DEFAULT_CACHE_BYTES ((size_t)8 << 20)
#define DEFAULT_WRITE_BUFFER_BYTES ((size_t)4 << 20)
/* LevelDB raises anything below 74 to 74 (64 table files plus its own 10). */
#define DEFAULT_MAX_OPEN_FILES 64

struct sx_store_cache {
    leveldb_cache_t *cache;
};

struct sx_store {
    leveldb_t *db;
    leveldb_cache_t *own_cache;    /* private cache; NULL when opts.cache was shared */
    leveldb_filterpolicy_t *bloom; /* lookups of absent keys (index checks) skip most blocks */
    /* Options LevelDB only reads, so every thread shares them. */
    leveldb_writeoptions_t *wo_sync;
    leveldb_writeoptions_t *wo_nosync;
    leveldb_readoptions_t *ro_latest;
    bool sync;  /* the policy for SX_SYNC_DEFAULT */
    char *path; /* for error messages */
};

struct sx_batch {
    leveldb_writebatch_t *wb;
    size_t count; /* LevelDB's C API cannot count a batch */
};

struct sx_iter {
    const sx_store *s;
    leveldb_iterator_t *it;
    uint8_t *start; /* inclusive lower bound, owned; slen 0: none */
    size_t slen;
    uint8_t *end; /* exclusive upper bound, owned; NULL: none */
    size_t elen;
};

/* Maps a LevelDB error string to a status and frees it. LevelDB's messages
 * start with the kind of its Status ("Corruption: ", "IO error: ", ...); the
 * two open-time conditions are told apart by their fixed wording in 1.23, and
 * sx_store_open checks for them itself first anyway. A "NotFound: " that
 * reaches here is a missing file (a key lookup never reports one), so it is
 * an I/O error like the rest. */
static sx_status map_error(const char *path, char *lerr, sx_err *err)
{
    sx_status code = SX_INTERNAL;
    if (strncmp(lerr, "Corruption: ", 12) == 0)
        code = SX_DATA_LOSS;
    else if (strstr(lerr, "does not exist (create_if_missing is false)"))
        code = SX_NOT_FOUND;
    else if (strstr(lerr, "exists (error_if_exists is true)"))
        code = SX_ALREADY_EXISTS;
    else if (strncmp(lerr, "Invalid argument: ", 18) == 0)
        code = SX_INVALID_ARGUMENT;
    else if (strncmp(lerr, "Not implemented: ", 17) == 0)
        code = SX_UNIMPLEMENTED;
    sx_err_set(err, code, "store: %s: %s", path, lerr);
    leveldb_free(lerr);
    return code;
}

/* memcmp order with the shorter key first on a tie: LevelDB's bytewise order. */
static int key_cmp(const void *a, size_t alen, const void *b, size_t blen)
{
    size_t n = alen < blen ? alen : blen;
    int c = n ? memcmp(a, b, n) : 0;
    if (c != 0)
        return c;
    return alen < blen ? -1 : alen > blen ? 1 : 0;
}

/* The same rule as sx_key_prefix_successor, repeated here because the store
 * sits below the key encoding and must not depend on it. Returns the length
 * of the successor written to out (room for n bytes), 0 when there is none. */
static size_t prefix_successor(const uint8_t *p, size_t n, uint8_t *out)
{
    while (n > 0 && p[n - 1] == 0xFF)
        n--;
    if (n == 0)
        return 0;
    memcpy(out, p, n);
    out[n - 1]++;
    return n;
}

sx_store_cache *sx_store_cache_create(size_t bytes)
{
    sx_store_cache *c = sx_malloc(sizeof(*c));
    c->cache = leveldb_cache_create_lru(bytes);
    return c;
}

void sx_store_cache_destroy(sx_store_cache *c)
{
    if (!c)
        return;
    leveldb_cache_destroy(c->cache);
    free(c);
}

/* 1: a store is at path, 0: none, -1: cannot tell (LevelDB will say). The
 * check mirrors LevelDB's own (a CURRENT file) and runs before leveldb_open
 * because LevelDB creates the directory, a LOCK and a LOG even when told not
 * to create the store. */
static int store_exists(const char *path)
{
    size_t n = strlen(path) + sizeof("/CURRENT");
    char *current = sx_malloc(n);
    snprintf(current, n, "%s/CURRENT", path);
    struct stat st;
    int rc = stat(current, &st) == 0 ? 1 : (errno == ENOENT || errno == ENOTDIR) ? 0 : -1;
    free(current);
    return rc;
}

sx_status sx_store_open(const char *path, const sx_store_opts *opts, sx_store **out, sx_err *err)
{
    static const sx_store_opts defaults;
    if (!opts)
        opts = &defaults;
    *out = NULL;

    int exists = store_exists(path);
    if (opts->no_create && exists == 0)
        return sx_err_set(err, SX_NOT_FOUND, "store: %s: does not exist", path);
    if (opts->error_if_exists && exists == 1)
        return sx_err_set(err, SX_ALREADY_EXISTS, "store: %s: already exists", path);

    sx_store *s = sx_calloc(1, sizeof(*s));
    s->path = sx_strdup(path);
    s->sync = opts->sync;
    s->wo_sync = leveldb_writeoptions_create();
    leveldb_writeoptions_set_sync(s->wo_sync, 1);
    s->wo_nosync = leveldb_writeoptions_create();
    leveldb_writeoptions_set_sync(s->wo_nosync, 0);
    s->ro_latest = leveldb_readoptions_create();
    /* Every block read from a table file is checked against its CRC (blocks
     * in the cache were checked when read): a corrupt table is an error,
     * never data. Readers above can pass stored bytes on without parsing
     * them to find out. */
    leveldb_readoptions_set_verify_checksums(s->ro_latest, 1);

    leveldb_cache_t *cache = opts->cache ? opts->cache->cache : NULL;
    if (!cache) {
        s->own_cache = leveldb_cache_create_lru(opts->block_cache_bytes ? opts->block_cache_bytes
                                                                        : DEFAULT_CACHE_BYTES);
        cache = s->own_cache;
    }
    /* LevelDB copies the options at open; only the cache must outlive the db. */
    leveldb_options_t *lo = leveldb_options_create();
    leveldb_options_set_create_if_missing(lo, !opts->no_create);
    leveldb_options_set_error_if_exists(lo, opts->error_if_exists);
    leveldb_options_set_cache(lo, cache);
    /* Corruption (a torn or flipped log record) fails the open instead of
     * being skipped: a replica with a hole must never be served (rule 8). */
    leveldb_options_set_paranoid_checks(lo, 1);
    s->bloom = leveldb_filterpolicy_create_bloom(10);
    leveldb_options_set_filter_policy(lo, s->bloom);
    leveldb_options_set_write_buffer_size(
        lo, opts->write_buffer_bytes ? opts->write_buffer_bytes : DEFAULT_WRITE_BUFFER_BYTES);
    leveldb_options_set_max_open_files(lo, opts->max_open_files ? opts->max_open_files
                                                                : DEFAULT_MAX_OPEN_FILES);
    char *lerr = NULL;
    s->db = leveldb_open(lo, path, &lerr);
    leveldb_options_destroy(lo);
    if (lerr) { /* s->db is NULL */
        sx_status rc = map_error(path, lerr, err);
        sx_store_close(s);
        return rc;
    }
    *out = s;
    return SX_OK;
}

void sx_store_close(sx_store *s)
{
    if (!s)
        return;
    if (s->db)
        leveldb_close(s->db);
    /* After the db: it holds blocks in the cache until closed. */
    if (s->own_cache)
        leveldb_cache_destroy(s->own_cache);
    if (s->bloom)
        leveldb_filterpolicy_destroy(s->bloom);
    leveldb_writeoptions_destroy(s->wo_sync);
    leveldb_writeoptions_destroy(s->wo_nosync);
    leveldb_readoptions_destroy(s->ro_latest);
    free(s->path);
    free(s);
}

sx_status sx_store_destroy_files(const char *path, sx_err *err)
{
    leveldb_options_t *lo = leveldb_options_create();
    char *lerr = NULL;
    leveldb_destroy_db(lo, path, &lerr);
    leveldb_options_destroy(lo);
    return lerr ? map_error(path, lerr, err) : SX_OK;
}

static const leveldb_writeoptions_t *write_opts(const sx_store *s, sx_sync sync)
{
    bool yes = sync == SX_SYNC_YES || (sync == SX_SYNC_DEFAULT && s->sync);
    return yes ? s->wo_sync : s->wo_nosync;
}

/* Read options for snap: the shared ones for the latest data, else fresh ones
 * the caller destroys (LevelDB copies what it needs out of them). */
static leveldb_readoptions_t *read_opts(const sx_store *s, const sx_snapshot *snap)
{
    if (!snap)
        return s->ro_latest;
    leveldb_readoptions_t *ro = leveldb_readoptions_create();
    leveldb_readoptions_set_verify_checksums(ro, 1);
    leveldb_readoptions_set_snapshot(ro, (const leveldb_snapshot_t *)snap);
    return ro;
}

static void read_opts_done(const sx_store *s, leveldb_readoptions_t *ro)
{
    if (ro != s->ro_latest)
        leveldb_readoptions_destroy(ro);
}

sx_status sx_store_get(sx_store *s, const sx_snapshot *snap, const void *k, size_t klen,
                       sx_buf *val, bool *found, sx_err *err)
{
    leveldb_readoptions_t *ro = read_opts(s, snap);
    char *lerr = NULL;
    size_t vlen = 0;
    /* A found empty value comes back as malloc(0), which glibc makes non-NULL,
     * so NULL without an error means missing. */
    char *v = leveldb_get(s->db, ro, k, klen, &vlen, &lerr);
    read_opts_done(s, ro);
    *found = false;
    if (lerr) {
        leveldb_free(v);
        return map_error(s->path, lerr, err);
    }
    if (!v)
        return SX_OK;
    sx_buf_reset(val);
    sx_buf_append(val, v, vlen);
    leveldb_free(v);
    *found = true;
    return SX_OK;
}

sx_status sx_store_put(sx_store *s, const void *k, size_t klen, const void *v, size_t vlen,
                       sx_sync sync, sx_err *err)
{
    char *lerr = NULL;
    leveldb_put(s->db, write_opts(s, sync), k, klen, v, vlen, &lerr);
    return lerr ? map_error(s->path, lerr, err) : SX_OK;
}

sx_status sx_store_delete(sx_store *s, const void *k, size_t klen, sx_sync sync, sx_err *err)
{
    char *lerr = NULL;
    leveldb_delete(s->db, write_opts(s, sync), k, klen, &lerr);
    return lerr ? map_error(s->path, lerr, err) : SX_OK;
}

void sx_store_compact_range(sx_store *s, const void *lo, size_t lo_len, const void *hi,
                            size_t hi_len)
{
    leveldb_compact_range(s->db, lo, lo ? lo_len : 0, hi, hi ? hi_len : 0);
}

sx_batch *sx_batch_create(void)
{
    sx_batch *b = sx_malloc(sizeof(*b));
    b->wb = leveldb_writebatch_create();
    b->count = 0;
    return b;
}

void sx_batch_destroy(sx_batch *b)
{
    if (!b)
        return;
    leveldb_writebatch_destroy(b->wb);
    free(b);
}

void sx_batch_put(sx_batch *b, const void *k, size_t klen, const void *v, size_t vlen)
{
    leveldb_writebatch_put(b->wb, k, klen, v, vlen);
    b->count++;
}

void sx_batch_delete(sx_batch *b, const void *k, size_t klen)
{
    leveldb_writebatch_delete(b->wb, k, klen);
    b->count++;
}

void sx_batch_clear(sx_batch *b)
{
    leveldb_writebatch_clear(b->wb);
    b->count = 0;
}

size_t sx_batch_count(const sx_batch *b)
{
    return b->count;
}

sx_status sx_store_write(sx_store *s, sx_batch *b, sx_sync sync, sx_err *err)
{
    char *lerr = NULL;
    leveldb_write(s->db, write_opts(s, sync), b->wb, &lerr);
    return lerr ? map_error(s->path, lerr, err) : SX_OK;
}

const sx_snapshot *sx_store_snapshot(sx_store *s)
{
    return (const sx_snapshot *)leveldb_create_snapshot(s->db);
}

void sx_store_release_snapshot(sx_store *s, const sx_snapshot *snap)
{
    leveldb_release_snapshot(s->db, (const leveldb_snapshot_t *)snap);
}

/* Takes ownership of start and end (either may be NULL). */
static sx_iter *iter_new(sx_store *s, const sx_snapshot *snap, uint8_t *start, size_t slen,
                         uint8_t *end, size_t elen)
{
    sx_iter *it = sx_malloc(sizeof(*it));
    it->s = s;
    it->start = start;
    it->slen = slen;
    it->end = end;
    it->elen = elen;
    leveldb_readoptions_t *ro = read_opts(s, snap);
    it->it = leveldb_create_iterator(s->db, ro);
    read_opts_done(s, ro);
    if (it->slen)
        leveldb_iter_seek(it->it, (const char *)it->start, it->slen);
    else
        leveldb_iter_seek_to_first(it->it);
    return it;
}

sx_iter *sx_store_iter_range(sx_store *s, const sx_snapshot *snap, const void *start, size_t slen,
                             const void *end, size_t elen)
{
    uint8_t *sc = slen ? sx_memdup(start, slen) : NULL;
    /* An empty end is a real bound (nothing sorts below ""): keep a non-NULL
     * pointer for it. */
    uint8_t *ec = end ? sx_memdup(end, elen) : NULL;
    return iter_new(s, snap, sc, slen, ec, elen);
}

sx_iter *sx_store_iter_prefix(sx_store *s, const sx_snapshot *snap, const void *prefix, size_t plen)
{
    uint8_t *sc = plen ? sx_memdup(prefix, plen) : NULL;
    uint8_t *ec = sx_malloc(plen);
    size_t elen = plen ? prefix_successor(sc, plen, ec) : 0;
    if (elen == 0) { /* no successor: unbounded above */
        free(ec);
        ec = NULL;
    }
    return iter_new(s, snap, sc, plen, ec, elen);
}

bool sx_iter_valid(const sx_iter *it)
{
    if (!leveldb_iter_valid(it->it))
        return false;
    size_t klen;
    const char *k = leveldb_iter_key(it->it, &klen);
    if (it->slen && key_cmp(k, klen, it->start, it->slen) < 0)
        return false;
    if (it->end && key_cmp(k, klen, it->end, it->elen) >= 0)
        return false;
    return true;
}

void sx_iter_next(sx_iter *it)
{
    if (sx_iter_valid(it))
        leveldb_iter_next(it->it);
}

void sx_iter_prev(sx_iter *it)
{
    if (sx_iter_valid(it))
        leveldb_iter_prev(it->it);
}

void sx_iter_seek(sx_iter *it, const void *k, size_t klen)
{
    if (it->slen && key_cmp(k, klen, it->start, it->slen) < 0)
        leveldb_iter_seek(it->it, (const char *)it->start, it->slen);
    else
        leveldb_iter_seek(it->it, k, klen);
}

void sx_iter_seek_last(sx_iter *it)
{
    if (it->end) {
        /* The last key below end: step back from the first key >= end. */
        leveldb_iter_seek(it->it, (const char *)it->end, it->elen);
        if (leveldb_iter_valid(it->it)) {
            leveldb_iter_prev(it->it);
            return;
        }
    }
    leveldb_iter_seek_to_last(it->it);
}

const void *sx_iter_key(const sx_iter *it, size_t *len)
{
    if (!sx_iter_valid(it)) {
        *len = 0;
        return NULL;
    }
    return leveldb_iter_key(it->it, len);
}

const void *sx_iter_value(const sx_iter *it, size_t *len)
{
    if (!sx_iter_valid(it)) {
        *len = 0;
        return NULL;
    }
    return leveldb_iter_value(it->it, len);
}

sx_status sx_iter_status(const sx_iter *it, sx_err *err)
{
    char *lerr = NULL;
    leveldb_iter_get_error(it->it, &lerr);
    return lerr ? map_error(it->s->path, lerr, err) : SX_OK;
}

void sx_iter_destroy(sx_iter *it)
{
    if (!it)
        return;
    leveldb_iter_destroy(it->it);
    free(it->start);
    free(it->end);
    free(it);
}
