/* tstore.c: the term partitions this worker owns (key layout, states and
 * rules in tstore.h).
 *
 * Memory holds, per term partition, its state and a mirror of its 'W' rows
 * (watermarks, leader epochs, as_of), under one mutex: Ship decides from the
 * mirror and updates it only after its batch is written, so the mirror never
 * runs ahead of the store. One thread does the wipes, so that a map change
 * costs the membership thread no I/O. Not here: who ships what (the log
 * partitions' leaders), routing queries (the router).
 */
#include "tstore.h"

#include "clock.h"
#include "crashpoint.h"
#include "hash.h"
#include "ixkey.h"
#include "keys.h"
#include "log.h"
#include "rate.h"
#include "sx_limits.h"

#include "shardex/v1/shardex.pb-c.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Key tags (tstore.h). */
#define TAG_SERVE 'S' /* u64 index_id u32 t -> u64 epoch, u8 is_int, u32 P */
#define TAG_WM                                                                                     \
    'W' /* u64 index_id u32 t u32 p -> u64 wm, u64 leader epoch, u64 as_of_ms [, rebuild] */
#define TAG_ENTRY 'T' /* u64 index_id u32 t ++ entry key -> u64 version */

/* Length of a 'tag u64 u32' prefix. */
#define TERM_PREFIX_LEN 13
/* Deletes per wipe batch, so that a large partition is not one huge batch. */
#define WIPE_CHUNK 10000
/* A scan waiting for a token re-checks at least this often (ms). */
#define WAIT_SLICE_MS 100
/* After a failed wipe the thread tries again after this long (ms). */
#define WIPE_RETRY_MS 1000
/* The largest P believed from the disk or a map (it sizes allocations). */
#define P_MAX 65536

/* One term partition (index_id, t) held here: owned (SERVING or WIPING in
 * tstore.h's diagram) or LEAVING (not owned, a wipe due). */
/* A chunked rebuild of one log partition's share in progress: id 0: none. */
typedef struct rb_state {
    uint64_t id;
    uint32_t next; /* the chunk expected next */
} rb_state;

typedef struct term {
    uint64_t index_id;
    uint32_t t;
    uint64_t epoch; /* the owner epoch (from the map or the 'S' row); when owned */
    bool owned;     /* false: LEAVING, removed once wiped */
    bool serving;   /* the store holds exactly this epoch's state: 'S' row, its own keys only */
    bool wipe;      /* a wipe is due (serving is false) */
    uint64_t gen;   /* raised whenever owned or epoch changes: a wipe that ran meanwhile is stale */
    uint64_t seen;  /* the on_map pass that last found it owned */
    bool is_int;    /* the index's value type */
    uint32_t P;   /* log partitions; the arrays below have P entries (0 and NULL if never owned) */
    uint64_t *wm; /* mirror of the 'W' rows, valid while serving */
    uint64_t *leader_epoch;
    uint64_t *as_of;
    rb_state *rb; /* a chunked rebuild of p in progress (mirror of the 'W' row) */
    /* Counted now and then for the coordinator's splits (COUNT_EVERY_MS):
     * entries, and the key of the middle one (empty: none). */
    uint64_t counted_ms, entries;
    sx_buf median;
    /* Its load at this epoch, for the coordinator's --term-split-load:
     * changes applied from shipping streams (not rebuilds: those copy what
     * exists, which is not load on it) and scans served. */
    sx_rate writes, reads;
} term;

/* A serving term partition's entries are counted (a scan) at most this
 * often, one term partition per heartbeat report. */
#define COUNT_EVERY_MS 5000

struct sx_tstore {
    sx_store *store;
    char *dir;              /* for messages */
    pthread_mutex_t mu;     /* guards everything below and orders Ship's writes */
    pthread_cond_t shipped; /* broadcast when a watermark rises or ownership changes */
    pthread_cond_t work;    /* the wipe thread: a wipe is due, or stop */
    pthread_cond_t idle;    /* broadcast when the wipe thread finds nothing to do */
    term **terms;           /* sorted by (index_id, t) */
    size_t nterms, cap_terms;
    uint64_t map_version; /* of the last map installed */
    uint64_t pass;        /* on_map passes, for term.seen */
    bool wiping;          /* the thread is wiping now (unlocked) */
    bool stop;
    bool thread_started;
    pthread_t thread;
};

/* ---- encoding ---- */

static void key_term(sx_buf *k, uint8_t tag, uint64_t index_id, uint32_t t)
{
    sx_buf_reset(k);
    sx_buf_push(k, tag);
    sx_key_append_u64(k, index_id);
    sx_key_append_u32(k, t);
}

static void key_wm(sx_buf *k, uint64_t index_id, uint32_t t, uint32_t p)
{
    key_term(k, TAG_WM, index_id, t);
    sx_key_append_u32(k, p);
}

static void val_serve(sx_buf *v, uint64_t epoch, bool is_int, uint32_t P)
{
    sx_buf_reset(v);
    sx_key_append_u64(v, epoch);
    sx_key_append_u8(v, is_int ? 1 : 0);
    sx_key_append_u32(v, P);
}

/* A rebuild in progress adds its id and next chunk (rows without them: none). */
static void val_wm(sx_buf *v, uint64_t wm, uint64_t leader_epoch, uint64_t as_of, rb_state rb)
{
    sx_buf_reset(v);
    sx_key_append_u64(v, wm);
    sx_key_append_u64(v, leader_epoch);
    sx_key_append_u64(v, as_of);
    if (rb.id) {
        sx_key_append_u64(v, rb.id);
        sx_key_append_u32(v, rb.next);
    }
}

/* The (index_id, t) a key of tag starts with; the reader is left after them. */
static bool parse_term_prefix(sx_key_reader *r, const void *k, size_t len, uint8_t tag,
                              uint64_t *index_id, uint32_t *t)
{
    uint8_t got;
    sx_key_reader_init(r, k, len);
    return sx_key_read_u8(r, &got) && got == tag && sx_key_read_u64(r, index_id) &&
           sx_key_read_u32(r, t);
}

static bool parse_u64_exact(const void *v, size_t len, uint64_t *out)
{
    sx_key_reader r;
    sx_key_reader_init(&r, v, len);
    return sx_key_read_u64(&r, out) && sx_key_reader_done(&r);
}

static bool parse_wm_val(const void *v, size_t len, uint64_t *wm, uint64_t *le, uint64_t *as_of,
                         rb_state *rb)
{
    sx_key_reader r;
    sx_key_reader_init(&r, v, len);
    *rb = (rb_state){0};
    if (!sx_key_read_u64(&r, wm) || !sx_key_read_u64(&r, le) || !sx_key_read_u64(&r, as_of))
        return false;
    if (sx_key_reader_done(&r))
        return true;
    return sx_key_read_u64(&r, &rb->id) && sx_key_read_u32(&r, &rb->next) && sx_key_reader_done(&r);
}

/* ---- the table ---- */

static int term_cmp(uint64_t ia, uint32_t ta, uint64_t ib, uint32_t tb)
{
    if (ia != ib)
        return ia < ib ? -1 : 1;
    return ta < tb ? -1 : ta > tb;
}

/* The term partition (index_id, t), or NULL; *pos gets where it is or would
 * go (pos may be NULL). */
static term *find_locked(sx_tstore *ts, uint64_t index_id, uint32_t t, size_t *pos)
{
    size_t lo = 0, hi = ts->nterms;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = term_cmp(ts->terms[mid]->index_id, ts->terms[mid]->t, index_id, t);
        if (c == 0) {
            lo = mid;
            break;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (pos)
        *pos = lo;
    if (lo < ts->nterms && ts->terms[lo]->index_id == index_id && ts->terms[lo]->t == t)
        return ts->terms[lo];
    return NULL;
}

/* Adds (index_id, t), not owned and not serving, at pos (from find_locked). */
static term *insert_locked(sx_tstore *ts, size_t pos, uint64_t index_id, uint32_t t)
{
    if (ts->nterms == ts->cap_terms) {
        ts->cap_terms = ts->cap_terms ? 2 * ts->cap_terms : 16;
        ts->terms = sx_realloc(ts->terms, ts->cap_terms * sizeof(*ts->terms));
    }
    term *e = sx_calloc(1, sizeof(*e));
    e->index_id = index_id;
    e->t = t;
    memmove(ts->terms + pos + 1, ts->terms + pos, (ts->nterms - pos) * sizeof(*ts->terms));
    ts->terms[pos] = e;
    ts->nterms++;
    return e;
}

static void term_free(term *e)
{
    if (!e)
        return;
    free(e->wm);
    free(e->leader_epoch);
    free(e->as_of);
    free(e->rb);
    sx_buf_free(&e->median);
    free(e);
}

static void remove_locked(sx_tstore *ts, term *e)
{
    size_t pos;
    if (find_locked(ts, e->index_id, e->t, &pos) != e)
        return;
    memmove(ts->terms + pos, ts->terms + pos + 1, (ts->nterms - pos - 1) * sizeof(*ts->terms));
    ts->nterms--;
    term_free(e);
}

/* Sizes the arrays for P log partitions, all zero. */
static void reset_arrays(term *e, uint32_t P)
{
    if (e->P != P || !e->wm) {
        free(e->wm);
        free(e->leader_epoch);
        free(e->as_of);
        free(e->rb);
        e->P = P;
        e->wm = sx_calloc(P ? P : 1, sizeof(uint64_t));
        e->leader_epoch = sx_calloc(P ? P : 1, sizeof(uint64_t));
        e->as_of = sx_calloc(P ? P : 1, sizeof(uint64_t));
        e->rb = sx_calloc(P ? P : 1, sizeof(rb_state));
        return;
    }
    memset(e->wm, 0, P * sizeof(uint64_t));
    memset(e->leader_epoch, 0, P * sizeof(uint64_t));
    memset(e->as_of, 0, P * sizeof(uint64_t));
    memset(e->rb, 0, P * sizeof(rb_state));
}

/* Marks e as owned at epoch (WIPING): serving stops at once. */
static void own_locked(term *e, uint64_t epoch, bool is_int, uint32_t P)
{
    e->owned = true;
    e->epoch = epoch;
    e->is_int = is_int;
    e->serving = false;
    e->wipe = true;
    e->gen++;
    reset_arrays(e, P);
    e->counted_ms = e->entries = 0;
    sx_buf_reset(&e->median);
    e->writes = e->reads = (sx_rate){0}; /* a new owner epoch starts unloaded */
}

/* ---- checks shared by Ship, Scan and Digest ---- */

/* SX_OK when e is owned at epoch and serving. */
static sx_status check_serving_locked(const term *e, uint64_t index_id, uint32_t t, uint64_t epoch,
                                      sx_err *err)
{
    if (!e || !e->owned)
        return sx_err_set(err, SX_FAILED_PRECONDITION,
                          "worker does not own term partition %" PRIu32 " of index %" PRIu64
                          " at epoch %" PRIu64 " (not at all)",
                          t, index_id, epoch);
    if (e->epoch != epoch)
        return sx_err_set(err, SX_FAILED_PRECONDITION,
                          "worker does not own term partition %" PRIu32 " of index %" PRIu64
                          " at epoch %" PRIu64 " (it owns it at epoch %" PRIu64 ")",
                          t, index_id, epoch, e->epoch);
    if (!e->serving)
        return sx_err_set(err, SX_UNAVAILABLE,
                          "term partition %" PRIu32 " of index %" PRIu64
                          " is being rebuilt: its data of an earlier owner epoch is being wiped",
                          t, index_id);
    return SX_OK;
}

/* The request's P (0: not given) and value type must be the partition's. */
static sx_status check_shape(const term *e, uint32_t partitions, Shardex__V1__ValueType type,
                             sx_err *err)
{
    if (partitions != 0 && partitions != e->P)
        return sx_err_set(err, SX_INVALID_ARGUMENT,
                          "term partition %" PRIu32 " of index %" PRIu64
                          ": the request says %" PRIu32 " log partitions, it has %" PRIu32,
                          e->t, e->index_id, partitions, e->P);
    bool is_int = type == SHARDEX__V1__VALUE_TYPE__VALUE_TYPE_INT;
    if (type != SHARDEX__V1__VALUE_TYPE__VALUE_TYPE_UNSPECIFIED && is_int != e->is_int)
        return sx_err_set(err, SX_INVALID_ARGUMENT,
                          "term partition %" PRIu32 " of index %" PRIu64
                          ": the request's value type is not the index's",
                          e->t, e->index_id);
    return SX_OK;
}

/* ---- open and close ---- */

/* Loads the 'S' rows: each is owned and serving at its epoch. */
static sx_status load_serving(sx_tstore *ts, sx_err *err)
{
    const char tag = TAG_SERVE;
    sx_iter *it = sx_store_iter_prefix(ts->store, NULL, &tag, 1);
    sx_status st = SX_OK;
    for (; sx_iter_valid(it); sx_iter_next(it)) {
        size_t klen, vlen;
        const void *k = sx_iter_key(it, &klen);
        const void *v = sx_iter_value(it, &vlen);
        sx_key_reader r, rv;
        uint64_t index_id, epoch;
        uint32_t t, P;
        uint8_t is_int;
        sx_key_reader_init(&rv, v, vlen);
        if (!parse_term_prefix(&r, k, klen, TAG_SERVE, &index_id, &t) || !sx_key_reader_done(&r) ||
            !sx_key_read_u64(&rv, &epoch) || !sx_key_read_u8(&rv, &is_int) ||
            !sx_key_read_u32(&rv, &P) || !sx_key_reader_done(&rv) || is_int > 1 || P == 0 ||
            P > P_MAX) {
            st = sx_err_set(err, SX_DATA_LOSS, "tstore %s: malformed ownership row", ts->dir);
            break;
        }
        size_t pos;
        find_locked(ts, index_id, t, &pos); /* keys are unique and in order: always absent */
        term *e = insert_locked(ts, pos, index_id, t);
        own_locked(e, epoch, is_int, P);
        e->serving = true;
        e->wipe = false;
    }
    if (st == SX_OK)
        st = sx_iter_status(it, err);
    sx_iter_destroy(it);
    return st;
}

/* A term partition with keys here but no 'S' row (an interrupted wipe): LEAVING. */
static void orphan_locked(sx_tstore *ts, uint64_t index_id, uint32_t t)
{
    size_t pos;
    if (find_locked(ts, index_id, t, &pos))
        return;
    term *e = insert_locked(ts, pos, index_id, t);
    e->wipe = true;
    SX_LOG(SX_LOG_INFO, "tstore", "wiping leftovers index=%" PRIu64 " term=%" PRIu32, index_id, t);
}

/* Loads the 'W' rows into the mirrors of serving partitions; others are orphans. */
static sx_status load_watermarks(sx_tstore *ts, sx_err *err)
{
    const char tag = TAG_WM;
    sx_iter *it = sx_store_iter_prefix(ts->store, NULL, &tag, 1);
    sx_status st = SX_OK;
    for (; sx_iter_valid(it); sx_iter_next(it)) {
        size_t klen, vlen;
        const void *k = sx_iter_key(it, &klen);
        const void *v = sx_iter_value(it, &vlen);
        sx_key_reader r;
        uint64_t index_id, wm, le, as_of;
        uint32_t t, p;
        rb_state rb;
        if (!parse_term_prefix(&r, k, klen, TAG_WM, &index_id, &t) || !sx_key_read_u32(&r, &p) ||
            !sx_key_reader_done(&r) || !parse_wm_val(v, vlen, &wm, &le, &as_of, &rb)) {
            st = sx_err_set(err, SX_DATA_LOSS, "tstore %s: malformed watermark row", ts->dir);
            break;
        }
        term *e = find_locked(ts, index_id, t, NULL);
        if (!e) {
            orphan_locked(ts, index_id, t);
            continue;
        }
        if (!e->serving)
            continue; /* an orphan found before */
        if (p >= e->P) {
            st = sx_err_set(err, SX_DATA_LOSS,
                            "tstore %s: watermark of log partition %" PRIu32
                            " in term partition %" PRIu32 " of index %" PRIu64
                            ", which has %" PRIu32,
                            ts->dir, p, t, index_id, e->P);
            break;
        }
        e->wm[p] = wm;
        e->leader_epoch[p] = le;
        e->as_of[p] = as_of;
        e->rb[p] = rb;
    }
    if (st == SX_OK)
        st = sx_iter_status(it, err);
    sx_iter_destroy(it);
    return st;
}

/* Finds the term partitions that have 'T' keys but no 'S' row, one seek per
 * partition (not a scan of the entries). */
static sx_status find_entry_orphans(sx_tstore *ts, sx_err *err)
{
    const char tag = TAG_ENTRY;
    sx_buf next = {0};
    sx_iter *it = sx_store_iter_prefix(ts->store, NULL, &tag, 1);
    sx_status st = SX_OK;
    while (sx_iter_valid(it)) {
        size_t klen;
        const void *k = sx_iter_key(it, &klen);
        sx_key_reader r;
        uint64_t index_id;
        uint32_t t;
        if (!parse_term_prefix(&r, k, klen, TAG_ENTRY, &index_id, &t)) {
            st = sx_err_set(err, SX_DATA_LOSS, "tstore %s: malformed entry key", ts->dir);
            break;
        }
        if (!find_locked(ts, index_id, t, NULL))
            orphan_locked(ts, index_id, t);
        if (!sx_key_prefix_successor(k, TERM_PREFIX_LEN, &next))
            break; /* cannot happen: the tag is not 0xFF */
        sx_iter_seek(it, next.data, next.len);
    }
    if (st == SX_OK)
        st = sx_iter_status(it, err);
    sx_iter_destroy(it);
    sx_buf_free(&next);
    return st;
}

static void *wipe_main(void *arg);
static sx_status delete_share(sx_tstore *ts, const term *e, uint32_t p, sx_batch *b, sx_err *err);

/* A rebuild that a restart interrupted is wiped (its sender starts again
 * from chunk 0): p's entries deleted, wm[p] stays 0. */
static sx_status drop_partial_rebuilds(sx_tstore *ts, sx_err *err)
{
    sx_status st = SX_OK;
    sx_buf key = {0}, val = {0};
    for (size_t i = 0; i < ts->nterms && st == SX_OK; i++) {
        term *e = ts->terms[i];
        for (uint32_t p = 0; e->serving && p < e->P && st == SX_OK; p++) {
            if (!e->rb[p].id)
                continue;
            SX_LOG(SX_LOG_INFO, "tstore",
                   "index=%" PRIu64 " term=%u partition=%u wiping an unfinished rebuild",
                   e->index_id, e->t, p);
            sx_batch *b = sx_batch_create();
            st = delete_share(ts, e, p, b, err);
            e->rb[p] = (rb_state){0};
            e->wm[p] = 0;
            key_wm(&key, e->index_id, e->t, p);
            val_wm(&val, 0, e->leader_epoch[p], e->as_of[p], e->rb[p]);
            sx_batch_put(b, key.data, key.len, val.data, val.len);
            if (st == SX_OK)
                st = sx_store_write(ts->store, b, SX_SYNC_NO, err);
            sx_batch_destroy(b);
        }
    }
    sx_buf_free(&key);
    sx_buf_free(&val);
    return st;
}

sx_status sx_tstore_open(const char *dir, sx_store_cache *cache, size_t write_buffer_bytes,
                         sx_tstore **out, sx_err *err)
{
    *out = NULL;
    sx_tstore *ts = sx_calloc(1, sizeof(*ts));
    ts->dir = sx_strdup(dir);
    pthread_mutex_init(&ts->mu, NULL);
    sx_cond_init_monotonic(&ts->shipped);
    sx_cond_init_monotonic(&ts->work);
    sx_cond_init_monotonic(&ts->idle);
    /* Not synced (tstore.h): a lost tail is shipped again. */
    sx_store_opts so = {.cache = cache, .write_buffer_bytes = write_buffer_bytes};
    sx_status st = sx_store_open(dir, &so, &ts->store, err);
    if (st == SX_OK)
        st = load_serving(ts, err);
    if (st == SX_OK)
        st = load_watermarks(ts, err);
    if (st == SX_OK)
        st = find_entry_orphans(ts, err);
    if (st == SX_OK)
        st = drop_partial_rebuilds(ts, err);
    if (st != SX_OK)
        goto fail;
    if (pthread_create(&ts->thread, NULL, wipe_main, ts) != 0) {
        st = sx_err_set(err, SX_INTERNAL, "tstore %s: cannot start the wipe thread", dir);
        goto fail;
    }
    ts->thread_started = true;
    size_t owned = 0;
    for (size_t i = 0; i < ts->nterms; i++)
        owned += ts->terms[i]->owned;
    SX_LOG(SX_LOG_INFO, "tstore", "opened dir=%s owned=%zu leftovers=%zu", dir, owned,
           ts->nterms - owned);
    *out = ts;
    return SX_OK;
fail:
    sx_tstore_close(ts);
    return st;
}

void sx_tstore_close(sx_tstore *ts)
{
    if (!ts)
        return;
    if (ts->thread_started) {
        pthread_mutex_lock(&ts->mu);
        ts->stop = true;
        pthread_cond_broadcast(&ts->work);
        pthread_cond_broadcast(&ts->idle);
        pthread_mutex_unlock(&ts->mu);
        pthread_join(ts->thread, NULL);
    }
    sx_store_close(ts->store);
    for (size_t i = 0; i < ts->nterms; i++)
        term_free(ts->terms[i]);
    free(ts->terms);
    pthread_cond_destroy(&ts->shipped);
    pthread_cond_destroy(&ts->work);
    pthread_cond_destroy(&ts->idle);
    pthread_mutex_destroy(&ts->mu);
    free(ts->dir);
    free(ts);
}

/* ---- wiping ---- */

static bool stopping(sx_tstore *ts)
{
    pthread_mutex_lock(&ts->mu);
    bool s = ts->stop;
    pthread_mutex_unlock(&ts->mu);
    return s;
}

/* Deletes every key that starts with prefix, WIPE_CHUNK per batch. */
static sx_status wipe_prefix(sx_tstore *ts, const sx_buf *prefix, uint64_t *n, sx_err *err)
{
    sx_iter *it = sx_store_iter_prefix(ts->store, NULL, prefix->data, prefix->len);
    sx_batch *b = sx_batch_create();
    sx_status st = SX_OK;
    for (; sx_iter_valid(it); sx_iter_next(it)) {
        size_t klen;
        const void *k = sx_iter_key(it, &klen);
        sx_batch_delete(b, k, klen);
        if (sx_batch_count(b) < WIPE_CHUNK)
            continue;
        st = sx_store_write(ts->store, b, SX_SYNC_NO, err);
        if (st != SX_OK)
            break;
        *n += sx_batch_count(b);
        sx_batch_clear(b);
        if (stopping(ts)) {
            st = sx_err_set(err, SX_CANCELLED, "tstore %s: closing", ts->dir);
            break;
        }
    }
    if (st == SX_OK)
        st = sx_iter_status(it, err);
    if (st == SX_OK && sx_batch_count(b) > 0) {
        st = sx_store_write(ts->store, b, SX_SYNC_NO, err);
        if (st == SX_OK)
            *n += sx_batch_count(b);
    }
    sx_batch_destroy(b);
    sx_iter_destroy(it);
    return st;
}

/* Deletes the 'S' row first (so that a crash from here on leaves an orphan,
 * never an 'S' row over partial data), then every 'W' and 'T' key. */
static sx_status wipe_keys(sx_tstore *ts, uint64_t index_id, uint32_t t, uint64_t *n, sx_err *err)
{
    sx_buf key = {0};
    key_term(&key, TAG_SERVE, index_id, t);
    sx_status st = sx_store_delete(ts->store, key.data, key.len, SX_SYNC_NO, err);
    if (st == SX_OK) {
        key_term(&key, TAG_WM, index_id, t);
        st = wipe_prefix(ts, &key, n, err);
    }
    if (st == SX_OK) {
        key_term(&key, TAG_ENTRY, index_id, t);
        st = wipe_prefix(ts, &key, n, err);
    }
    sx_buf_free(&key);
    return st;
}

static term *first_due_locked(sx_tstore *ts)
{
    for (size_t i = 0; i < ts->nterms; i++)
        if (ts->terms[i]->wipe)
            return ts->terms[i];
    return NULL;
}

/* The wipe thread: takes a due partition, wipes it without the mutex, then
 * (if nothing changed it meanwhile) writes its 'S' row and serves it, or
 * forgets it when it is not owned. Only this thread removes table entries. */
static void *wipe_main(void *arg)
{
    sx_tstore *ts = arg;
    sx_buf key = {0}, val = {0};
    pthread_mutex_lock(&ts->mu);
    while (!ts->stop) {
        term *e = first_due_locked(ts);
        if (!e) {
            pthread_cond_broadcast(&ts->idle);
            pthread_cond_wait(&ts->work, &ts->mu);
            continue;
        }
        uint64_t index_id = e->index_id, gen = e->gen;
        uint32_t t = e->t;
        ts->wiping = true;
        pthread_mutex_unlock(&ts->mu);
        sx_err err = {0};
        uint64_t n = 0;
        sx_status st = wipe_keys(ts, index_id, t, &n, &err);
        pthread_mutex_lock(&ts->mu);
        ts->wiping = false;
        if (st == SX_CANCELLED)
            break;
        e = find_locked(ts, index_id, t, NULL);
        if (st != SX_OK) {
            SX_LOG(SX_LOG_ERROR, "tstore", "wipe failed index=%" PRIu64 " term=%" PRIu32 ": %s",
                   index_id, t, err.msg);
            sx_cond_wait_ms(&ts->work, &ts->mu, WIPE_RETRY_MS);
            continue;
        }
        if (!e || e->gen != gen)
            continue; /* changed meanwhile: wipe again */
        if (!e->owned) {
            SX_LOG(SX_LOG_INFO, "tstore", "wiped index=%" PRIu64 " term=%" PRIu32 " keys=%" PRIu64,
                   index_id, t, n);
            remove_locked(ts, e);
            continue;
        }
        key_term(&key, TAG_SERVE, index_id, t);
        val_serve(&val, e->epoch, e->is_int, e->P);
        st = sx_store_put(ts->store, key.data, key.len, val.data, val.len, SX_SYNC_NO, &err);
        if (st != SX_OK) {
            SX_LOG(SX_LOG_ERROR, "tstore",
                   "cannot record ownership index=%" PRIu64 " term=%" PRIu32 ": %s", index_id, t,
                   err.msg);
            sx_cond_wait_ms(&ts->work, &ts->mu, WIPE_RETRY_MS);
            continue;
        }
        reset_arrays(e, e->P);
        e->wipe = false;
        e->serving = true;
        SX_LOG(SX_LOG_INFO, "tstore",
               "serving index=%" PRIu64 " term=%" PRIu32 " epoch=%" PRIu64 " wiped_keys=%" PRIu64,
               index_id, t, e->epoch, n);
        pthread_cond_broadcast(&ts->shipped);
    }
    ts->wiping = false;
    pthread_cond_broadcast(&ts->idle);
    pthread_mutex_unlock(&ts->mu);
    sx_buf_free(&key);
    sx_buf_free(&val);
    return NULL;
}

void sx_tstore_wait_wipes(sx_tstore *ts)
{
    pthread_mutex_lock(&ts->mu);
    while (!ts->stop && (ts->wiping || first_due_locked(ts)))
        pthread_cond_wait(&ts->idle, &ts->mu);
    pthread_mutex_unlock(&ts->mu);
}

/* ---- ownership ---- */

void sx_tstore_on_map(sx_tstore *ts, const Shardex__Internal__V1__ClusterMap *map, int32_t me)
{
    if (!map || me < 0)
        return;
    pthread_mutex_lock(&ts->mu);
    if (map->version < ts->map_version) {
        pthread_mutex_unlock(&ts->mu);
        return;
    }
    ts->map_version = map->version;
    uint64_t pass = ++ts->pass;
    uint32_t P = map->settings ? map->settings->partitions : 0;
    bool due = false;
    for (size_t i = 0; i < map->n_indexes; i++) {
        const Shardex__Internal__V1__IndexEntry *ie = map->indexes[i];
        if (!ie || !ie->spec || !ie->spec->global)
            continue;
        bool is_int = ie->spec->type == SHARDEX__V1__VALUE_TYPE__VALUE_TYPE_INT;
        uint32_t nt = ie->spec->term_partitions + 2 * (uint32_t)ie->n_splits; /* split ones too */
        for (uint32_t t = 0; t < nt; t++) {
            size_t k = (size_t)ie->first_term + t;
            if (k >= map->n_terms || !map->terms[k]) {
                SX_LOG(SX_LOG_WARN, "tstore",
                       "map version=%" PRIu64 " lacks term partitions of index=%" PRIu64,
                       map->version, ie->id);
                break;
            }
            const Shardex__Internal__V1__TermPartition *tp = map->terms[k];
            if (tp->owner != me)
                continue;
            if (P == 0 || P > P_MAX) {
                SX_LOG(SX_LOG_WARN, "tstore", "map version=%" PRIu64 " has partitions=%" PRIu32,
                       map->version, P);
                continue;
            }
            size_t pos;
            term *e = find_locked(ts, ie->id, t, &pos);
            if (!e)
                e = insert_locked(ts, pos, ie->id, t);
            e->seen = pass;
            if (e->owned && e->epoch == tp->epoch)
                continue;
            SX_LOG(SX_LOG_INFO, "tstore",
                   "owning index=%" PRIu64 " term=%" PRIu32 " epoch=%" PRIu64
                   " (was %s epoch=%" PRIu64 "): wiping first",
                   ie->id, t, tp->epoch, e->owned ? "owned" : "not owned", e->epoch);
            own_locked(e, tp->epoch, is_int, P);
            due = true;
        }
    }
    for (size_t i = 0; i < ts->nterms; i++) {
        term *e = ts->terms[i];
        if (e->seen == pass || !e->owned)
            continue;
        SX_LOG(SX_LOG_INFO, "tstore",
               "disowning index=%" PRIu64 " term=%" PRIu32 " epoch=%" PRIu64 ": wiping",
               e->index_id, e->t, e->epoch);
        e->owned = false;
        e->serving = false;
        e->wipe = true;
        e->gen++;
        due = true;
    }
    if (due) {
        pthread_cond_signal(&ts->work);
        pthread_cond_broadcast(&ts->shipped); /* scans waiting on a token re-check ownership */
    }
    pthread_mutex_unlock(&ts->mu);
}

/* ---- Ship ---- */

/* Checks the changes' keys and offsets (ship contract in tstore.h). */
static sx_status check_changes(const term *e, const Shardex__Internal__V1__ShipRequest *req,
                               sx_err *err)
{
    sx_buf sbuf = {0}, id = {0};
    sx_status st = SX_OK;
    uint64_t last = req->prev_offset;
    if (!req->rebuild && req->prev_offset > req->up_to_offset)
        return sx_err_set(err, SX_INVALID_ARGUMENT,
                          "ship: prev_offset %" PRIu64 " is above up_to_offset %" PRIu64,
                          req->prev_offset, req->up_to_offset);
    for (size_t i = 0; i < req->n_changes; i++) {
        const Shardex__Internal__V1__Change *c = req->changes[i];
        Shardex__V1__Value v;
        id.len = 0;
        if (!c || !sx_ixkey_split_key(e->is_int, c->key.data, c->key.len, &v, &sbuf, &id)) {
            st = sx_err_set(err, SX_INVALID_ARGUMENT,
                            "ship: change %zu has a key that is not an entry key of index %" PRIu64,
                            i, e->index_id);
            break;
        }
        if (req->rebuild)
            continue;
        if (c->offset <= req->prev_offset || c->offset > req->up_to_offset || c->offset < last) {
            st = sx_err_set(err, SX_INVALID_ARGUMENT,
                            "ship: change %zu has offset %" PRIu64 ", not in order within (%" PRIu64
                            ", %" PRIu64 "]",
                            i, c->offset, req->prev_offset, req->up_to_offset);
            break;
        }
        last = c->offset;
    }
    sx_buf_free(&sbuf);
    sx_buf_free(&id);
    return st;
}

/* Deletes, into b, every entry of e whose document lives in log partition p. */
static sx_status delete_share(sx_tstore *ts, const term *e, uint32_t p, sx_batch *b, sx_err *err)
{
    sx_buf prefix = {0}, sbuf = {0}, id = {0};
    key_term(&prefix, TAG_ENTRY, e->index_id, e->t);
    sx_iter *it = sx_store_iter_prefix(ts->store, NULL, prefix.data, prefix.len);
    sx_status st = SX_OK;
    for (; sx_iter_valid(it); sx_iter_next(it)) {
        size_t kl;
        const uint8_t *k = sx_iter_key(it, &kl);
        Shardex__V1__Value v;
        sx_buf_reset(&id);
        if (!sx_ixkey_split_key(e->is_int, k + prefix.len, kl - prefix.len, &v, &sbuf, &id)) {
            st = sx_err_set(err, SX_DATA_LOSS,
                            "tstore %s: an entry of index %" PRIu64 " term %u is malformed",
                            ts->dir, e->index_id, e->t);
            break;
        }
        if (sx_partition_of(id.data, id.len, e->P) == p)
            sx_batch_delete(b, k, kl);
    }
    if (st == SX_OK)
        st = sx_iter_status(it, err);
    sx_iter_destroy(it);
    sx_buf_free(&prefix);
    sx_buf_free(&sbuf);
    sx_buf_free(&id);
    return st;
}

static void add_change(sx_batch *b, sx_buf *key, const term *e,
                       const Shardex__Internal__V1__Change *c, sx_buf *val)
{
    key_term(key, TAG_ENTRY, e->index_id, e->t);
    sx_buf_append(key, c->key.data, c->key.len);
    if (c->remove) {
        sx_batch_delete(b, key->data, key->len);
        return;
    }
    sx_buf_reset(val);
    sx_key_append_u64(val, c->version);
    sx_batch_put(b, key->data, key->len, val->data, val->len);
}

/* What a rebuild chunk does to p's share (the contract in tstore.h): into
 * b the deletions it starts with; *applied, and *put when its changes are to
 * be written; the watermark and rebuild state after it. */
static sx_status rebuild_step(sx_tstore *ts, const term *e, uint32_t p,
                              const Shardex__Internal__V1__ShipRequest *req, sx_batch *b,
                              bool *applied, bool *put, uint64_t *new_wm, rb_state *new_rb,
                              sx_err *err)
{
    const uint64_t wm = e->wm[p];
    const rb_state rb = e->rb[p];
    if (req->rebuild_id == 0 && req->rebuild_chunk != 0)
        return sx_err_set(err, SX_INVALID_ARGUMENT,
                          "ship: rebuild_chunk %u without rebuild_id (a rebuild in one chunk)",
                          req->rebuild_chunk);
    if (req->rebuild_chunk == 0) {
        if (wm != 0 && req->up_to_offset <= wm)
            return SX_OK; /* stale: this owner has more */
        if (wm != 0 || rb.id != 0) {
            /* A share at a watermark (its leader trimmed past what this owner
             * has: a leadership that shipped less than an earlier one
             * trimmed), or a rebuild that never finished: the rebuild is the
             * whole of p's share at up_to, so p's entries go first. */
            sx_status st = delete_share(ts, e, p, b, err);
            if (st != SX_OK)
                return st;
            SX_LOG(SX_LOG_WARN, "tstore",
                   "index=%" PRIu64 " term=%u partition=%u rebuild at %" PRIu64
                   " replaces a share at watermark %" PRIu64 "%s",
                   e->index_id, e->t, p, req->up_to_offset, wm,
                   rb.id ? " and an unfinished rebuild" : "");
        }
    } else if (rb.id != req->rebuild_id || req->rebuild_chunk > rb.next) {
        return SX_OK; /* not the rebuild in progress, or a gap: the sender starts again */
    } else if (req->rebuild_chunk < rb.next) {
        *applied = true; /* a resend of a chunk applied already */
        return SX_OK;
    }
    *applied = *put = true;
    if (req->rebuild_last || req->rebuild_id == 0) {
        *new_wm = req->up_to_offset;
        *new_rb = (rb_state){0};
    } else {
        *new_wm = 0; /* not at any watermark until the last chunk: scans wait */
        *new_rb = (rb_state){req->rebuild_id, req->rebuild_chunk + 1};
    }
    return SX_OK;
}

sx_status sx_tstore_ship(sx_tstore *ts, const Shardex__Internal__V1__ShipRequest *req,
                         Shardex__Internal__V1__ShipResponse *resp, sx_err *err)
{
    const uint32_t p = req->partition;
    sx_buf key = {0}, val = {0};
    sx_batch *b = NULL;
    pthread_mutex_lock(&ts->mu);
    term *e = find_locked(ts, req->index_id, req->term_partition, NULL);
    sx_status st =
        check_serving_locked(e, req->index_id, req->term_partition, req->owner_epoch, err);
    if (st == SX_OK)
        st = check_shape(e, req->partitions, req->type, err);
    if (st != SX_OK)
        goto done;
    if (p >= e->P) {
        st = sx_err_set(err, SX_INVALID_ARGUMENT,
                        "ship: log partition %" PRIu32 " does not exist (P=%" PRIu32 ")", p, e->P);
        goto done;
    }
    if (req->leader_epoch < e->leader_epoch[p]) {
        st = sx_err_set(err, SX_FAILED_PRECONDITION,
                        "ship: leader epoch %" PRIu64 " of log partition %" PRIu32
                        " is older than %" PRIu64 ", already seen by term partition %" PRIu32
                        " of index %" PRIu64,
                        req->leader_epoch, p, e->leader_epoch[p], e->t, e->index_id);
        goto done;
    }
    st = check_changes(e, req, err);
    if (st != SX_OK)
        goto done;

    const uint64_t wm = e->wm[p], le = e->leader_epoch[p], as_of = e->as_of[p];
    const rb_state rb = e->rb[p];
    uint64_t new_wm = wm;
    rb_state new_rb = rb;
    bool applied = false;
    uint64_t streamed = 0; /* changes of a shipping stream written (its load) */
    b = sx_batch_create();
    if (req->rebuild) {
        bool put = false;
        st = rebuild_step(ts, e, p, req, b, &applied, &put, &new_wm, &new_rb, err);
        if (st != SX_OK)
            goto done;
        for (size_t i = 0; put && i < req->n_changes; i++)
            add_change(b, &key, e, req->changes[i], &val);
    } else if (req->prev_offset <= wm) {
        applied = true;
        if (rb.id) {
            /* A rebuild its sender gave up (a new leader ships from wm 0
             * instead): its partial entries go first. */
            st = delete_share(ts, e, p, b, err);
            if (st != SX_OK)
                goto done;
            new_rb = (rb_state){0};
        }
        for (size_t i = 0; i < req->n_changes; i++)
            if (req->changes[i]->offset > wm) {
                add_change(b, &key, e, req->changes[i], &val);
                streamed++;
            }
        if (req->up_to_offset > wm)
            new_wm = req->up_to_offset;
    }
    uint64_t new_le = req->leader_epoch > le ? req->leader_epoch : le;
    uint64_t new_as_of = applied && req->as_of_ms > as_of ? req->as_of_ms : as_of;
    bool rb_moved = new_rb.id != rb.id || new_rb.next != rb.next;
    if (sx_batch_count(b) > 0 || new_wm != wm || new_le != le || new_as_of != as_of || rb_moved) {
        key_wm(&key, e->index_id, e->t, p);
        val_wm(&val, new_wm, new_le, new_as_of, new_rb);
        sx_batch_put(b, key.data, key.len, val.data, val.len);
        st = sx_store_write(ts->store, b, SX_SYNC_NO, err);
        if (st != SX_OK)
            goto done;
        e->wm[p] = new_wm;
        e->leader_epoch[p] = new_le;
        e->as_of[p] = new_as_of;
        e->rb[p] = new_rb;
        if (streamed)
            sx_rate_add(&e->writes, streamed, sx_clock_now_ms());
        if (new_rb.id)
            SX_CRASH_POINT("tstore-rebuild-chunk"); /* a rebuild left unfinished */
        if (new_wm != wm || new_as_of != as_of)
            pthread_cond_broadcast(&ts->shipped);
    }
    resp->watermark = new_wm;
    resp->applied = applied;
done:
    pthread_mutex_unlock(&ts->mu);
    sx_batch_destroy(b);
    sx_buf_free(&key);
    sx_buf_free(&val);
    return st;
}

/* ---- Scan ---- */

/* Everything Scan decides under the mutex: the checks, the wait for the
 * tokens and the staleness, then a snapshot (*snap) of what they saw. */
static sx_status scan_prepare_locked(sx_tstore *ts, const Shardex__Internal__V1__ScanRequest *req,
                                     uint64_t deadline_ms, const sx_snapshot **snap, bool *is_int,
                                     uint64_t *staleness, sx_err *err)
{
    const uint32_t t = req->partition;
    for (;;) {
        term *e = find_locked(ts, req->index_id, t, NULL);
        sx_status st = check_serving_locked(e, req->index_id, t, req->epoch, err);
        if (st == SX_OK)
            st = check_shape(e, req->partitions, req->type, err);
        if (st != SX_OK)
            return st;
        for (uint32_t p = 0; p < e->P; p++)
            if (e->wm[p] == 0)
                return sx_err_set(err, SX_UNAVAILABLE,
                                  "term partition %" PRIu32 " of index %" PRIu64
                                  " is being rebuilt: log partition %" PRIu32
                                  " has not shipped to it yet",
                                  t, req->index_id, p);
        const Shardex__V1__WriteToken *behind = NULL;
        for (size_t i = 0; i < req->n_after && !behind; i++) {
            const Shardex__V1__WriteToken *tok = req->after[i];
            if (!tok)
                continue;
            if (tok->partition >= e->P)
                return sx_err_set(err, SX_INVALID_ARGUMENT,
                                  "scan: token of log partition %" PRIu32
                                  ", which does not exist (P=%" PRIu32 ")",
                                  tok->partition, e->P);
            if (e->wm[tok->partition] < tok->offset)
                behind = tok;
        }
        if (behind) {
            uint64_t now = sx_clock_now_ms();
            if (now >= deadline_ms)
                return sx_err_set(
                    err, SX_DEADLINE_EXCEEDED,
                    "term partition %" PRIu32 " of index %" PRIu64 ": log partition %" PRIu32
                    " has not shipped up to offset %" PRIu64 " in time (watermark %" PRIu64 ")",
                    t, req->index_id, behind->partition, behind->offset, e->wm[behind->partition]);
            uint64_t left = deadline_ms - now;
            sx_cond_wait_ms(&ts->shipped, &ts->mu, left < WAIT_SLICE_MS ? left : WAIT_SLICE_MS);
            continue; /* the table may have changed: look it up again */
        }
        uint64_t oldest = UINT64_MAX;
        for (uint32_t p = 0; p < e->P; p++)
            if (e->as_of[p] < oldest)
                oldest = e->as_of[p];
        uint64_t wall = sx_clock_wall_ms();
        *staleness = wall > oldest ? wall - oldest : 0;
        if (req->max_staleness_ms > 0 && *staleness > req->max_staleness_ms)
            return sx_err_set(err, SX_UNAVAILABLE,
                              "term partition %" PRIu32 " of index %" PRIu64 " is %" PRIu64
                              " ms stale (at most %" PRIu64 " asked)",
                              t, req->index_id, *staleness, req->max_staleness_ms);
        *is_int = e->is_int;
        *snap = sx_store_snapshot(ts->store);
        sx_rate_add(&e->reads, 1, sx_clock_now_ms());
        return SX_OK;
    }
}

sx_status sx_tstore_scan(sx_tstore *ts, const Shardex__Internal__V1__ScanRequest *req,
                         uint64_t deadline_ms, sx_arena *arena,
                         Shardex__Internal__V1__ScanResponse *resp, sx_err *err)
{
    const sx_snapshot *snap = NULL;
    bool is_int = false;
    uint64_t staleness = 0;
    pthread_mutex_lock(&ts->mu);
    sx_status st = scan_prepare_locked(ts, req, deadline_ms, &snap, &is_int, &staleness, err);
    pthread_mutex_unlock(&ts->mu);
    if (st != SX_OK)
        return st;

    size_t limit = req->limit ? req->limit : SX_QUERY_LIMIT_DEFAULT;
    if (limit > SX_QUERY_LIMIT_MAX)
        limit = SX_QUERY_LIMIT_MAX;
    sx_buf lo = {0}, hi = {0}, prefix = {0}, sbuf = {0}, id = {0};
    key_term(&prefix, TAG_ENTRY, req->index_id, req->partition);
    sx_buf_append(&lo, prefix.data, prefix.len);
    sx_buf_append(&lo, req->start.data, req->start.len);
    if (req->end.len > 0) {
        sx_buf_append(&hi, prefix.data, prefix.len);
        sx_buf_append(&hi, req->end.data, req->end.len);
    } else {
        sx_key_prefix_successor(prefix.data, prefix.len, &hi); /* the tag is not 0xFF */
    }
    sx_iter *it = sx_store_iter_range(ts->store, snap, lo.data, lo.len, hi.data, hi.len);
    Shardex__Internal__V1__ScanHit **hits = sx_arena_alloc(arena, limit * sizeof(*hits));
    size_t n = 0;
    for (; n < limit && sx_iter_valid(it); sx_iter_next(it)) {
        size_t klen, vlen;
        const uint8_t *k = sx_iter_key(it, &klen);
        const void *v = sx_iter_value(it, &vlen);
        Shardex__V1__Value val;
        uint64_t version;
        id.len = 0;
        if (!parse_u64_exact(v, vlen, &version) ||
            !sx_ixkey_split_key(is_int, k + prefix.len, klen - prefix.len, &val, &sbuf, &id)) {
            st = sx_err_set(err, SX_DATA_LOSS,
                            "tstore %s: malformed entry in term partition %" PRIu32
                            " of index %" PRIu64,
                            ts->dir, req->partition, req->index_id);
            break;
        }
        Shardex__Internal__V1__ScanHit *h = sx_arena_alloc(arena, sizeof(*h));
        shardex__internal__v1__scan_hit__init(h);
        h->key.len = klen - prefix.len;
        h->key.data = sx_arena_memdup(arena, k + prefix.len, h->key.len);
        h->id = sx_arena_strdup(arena, (const char *)id.data);
        h->value = sx_arena_alloc(arena, sizeof(*h->value));
        *h->value = val;
        if (val.kind_case == SHARDEX__V1__VALUE__KIND_S)
            h->value->s = sx_arena_strdup(arena, val.s);
        h->version = version;
        hits[n++] = h;
    }
    if (st == SX_OK) {
        resp->more = sx_iter_valid(it);
        if (!resp->more)
            st = sx_iter_status(it, err);
    }
    if (st == SX_OK) {
        resp->hits = hits;
        resp->n_hits = n;
        resp->staleness_ms = staleness;
    }
    sx_iter_destroy(it);
    sx_store_release_snapshot(ts->store, snap);
    sx_buf_free(&lo);
    sx_buf_free(&hi);
    sx_buf_free(&prefix);
    sx_buf_free(&sbuf);
    sx_buf_free(&id);
    return st;
}

/* ---- Digest ---- */

/* The 'W' rows of (index_id, t) at snap into wm (P entries, zeroed first). */
static sx_status read_watermarks(sx_tstore *ts, const sx_snapshot *snap, uint64_t index_id,
                                 uint32_t t, uint32_t P, uint64_t *wm, sx_err *err)
{
    sx_buf prefix = {0};
    key_term(&prefix, TAG_WM, index_id, t);
    sx_iter *it = sx_store_iter_prefix(ts->store, snap, prefix.data, prefix.len);
    sx_status st = SX_OK;
    memset(wm, 0, P * sizeof(*wm));
    for (; sx_iter_valid(it); sx_iter_next(it)) {
        size_t klen, vlen;
        const void *k = sx_iter_key(it, &klen);
        const void *v = sx_iter_value(it, &vlen);
        sx_key_reader r;
        uint64_t id2, w, le, as_of;
        uint32_t t2, p;
        rb_state rb;
        if (!parse_term_prefix(&r, k, klen, TAG_WM, &id2, &t2) || !sx_key_read_u32(&r, &p) ||
            !sx_key_reader_done(&r) || p >= P || !parse_wm_val(v, vlen, &w, &le, &as_of, &rb)) {
            st = sx_err_set(err, SX_DATA_LOSS, "tstore %s: malformed watermark row", ts->dir);
            break;
        }
        wm[p] = w;
    }
    if (st == SX_OK)
        st = sx_iter_status(it, err);
    sx_iter_destroy(it);
    sx_buf_free(&prefix);
    return st;
}

sx_status sx_tstore_digest(sx_tstore *ts, const Shardex__Internal__V1__DigestRequest *req,
                           sx_arena *arena, Shardex__Internal__V1__DigestResponse *resp,
                           sx_err *err)
{
    if (!req->term)
        return sx_err_set(err, SX_INVALID_ARGUMENT, "digest: a term partition store needs term");
    const uint32_t t = req->partition;
    pthread_mutex_lock(&ts->mu);
    term *e = find_locked(ts, req->index_id, t, NULL);
    if (!e || !e->owned) {
        pthread_mutex_unlock(&ts->mu);
        resp->active = false;
        return SX_OK;
    }
    if (req->epoch != 0 && req->epoch != e->epoch) {
        uint64_t epoch = e->epoch;
        pthread_mutex_unlock(&ts->mu);
        return sx_err_set(err, SX_FAILED_PRECONDITION,
                          "worker does not own term partition %" PRIu32 " of index %" PRIu64
                          " at epoch %" PRIu64 " (it owns it at epoch %" PRIu64 ")",
                          t, req->index_id, req->epoch, epoch);
    }
    const uint32_t P = e->P;
    const bool serving = e->serving;
    const sx_snapshot *snap = serving ? sx_store_snapshot(ts->store) : NULL;
    pthread_mutex_unlock(&ts->mu);

    resp->active = true;
    resp->n_watermarks = P;
    resp->watermarks = sx_arena_alloc(arena, (P ? P : 1) * sizeof(uint64_t));
    if (!serving)
        return SX_OK; /* the state the wipe leads to: empty, every watermark 0 */
    sx_status st = read_watermarks(ts, snap, req->index_id, t, P, resp->watermarks, err);
    sx_buf prefix = {0};
    key_term(&prefix, TAG_ENTRY, req->index_id, t);
    sx_iter *it = sx_store_iter_prefix(ts->store, snap, prefix.data, prefix.len);
    Shardex__Internal__V1__DigestEntry **entries = NULL;
    size_t n = 0, cap = 0;
    uint64_t digest = 0, count = 0;
    for (; st == SX_OK && sx_iter_valid(it); sx_iter_next(it)) {
        size_t klen, vlen;
        const uint8_t *k = sx_iter_key(it, &klen);
        const void *v = sx_iter_value(it, &vlen);
        uint64_t version;
        if (!parse_u64_exact(v, vlen, &version)) {
            st = sx_err_set(err, SX_DATA_LOSS,
                            "tstore %s: malformed entry in term partition %" PRIu32
                            " of index %" PRIu64,
                            ts->dir, t, req->index_id);
            break;
        }
        digest = sx_ixkey_digest_add(digest, k + prefix.len, klen - prefix.len, version);
        count++;
        if (!req->entries)
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 256;
            entries = sx_realloc(entries, cap * sizeof(*entries));
        }
        Shardex__Internal__V1__DigestEntry *de = sx_arena_alloc(arena, sizeof(*de));
        shardex__internal__v1__digest_entry__init(de);
        de->key.len = klen - prefix.len;
        de->key.data = sx_arena_memdup(arena, k + prefix.len, de->key.len);
        de->version = version;
        entries[n++] = de;
    }
    if (st == SX_OK)
        st = sx_iter_status(it, err);
    if (st == SX_OK) {
        resp->digest = digest;
        resp->count = count;
        if (n > 0) {
            resp->entries = sx_arena_memdup(arena, entries, n * sizeof(*entries));
            resp->n_entries = n;
        }
    }
    free(entries);
    sx_iter_destroy(it);
    sx_store_release_snapshot(ts->store, snap);
    sx_buf_free(&prefix);
    return st;
}

/* ---- reports ---- */

/* Counts (index_id, t)'s entries at a snapshot and finds its middle one:
 * two passes, without the mutex; kept if the term partition is still at gen. */
static void count_term(sx_tstore *ts, uint64_t index_id, uint32_t t, uint64_t gen, uint64_t now)
{
    sx_buf prefix = {0}, mid = {0};
    key_term(&prefix, TAG_ENTRY, index_id, t);
    const sx_snapshot *snap = sx_store_snapshot(ts->store);
    uint64_t n = 0;
    sx_iter *it = sx_store_iter_prefix(ts->store, snap, prefix.data, prefix.len);
    for (; sx_iter_valid(it); sx_iter_next(it))
        n++;
    sx_iter_destroy(it);
    it = sx_store_iter_prefix(ts->store, snap, prefix.data, prefix.len);
    for (uint64_t i = 0; sx_iter_valid(it); sx_iter_next(it), i++) {
        if (i == n / 2) {
            size_t kl;
            const uint8_t *k = sx_iter_key(it, &kl);
            sx_buf_append(&mid, k + prefix.len, kl - prefix.len);
            break;
        }
    }
    sx_iter_destroy(it);
    sx_store_release_snapshot(ts->store, snap);
    pthread_mutex_lock(&ts->mu);
    size_t pos;
    term *e = find_locked(ts, index_id, t, &pos);
    if (e && e->gen == gen) {
        e->counted_ms = now;
        e->entries = n;
        sx_buf_reset(&e->median);
        sx_buf_append(&e->median, mid.data, mid.len);
    }
    pthread_mutex_unlock(&ts->mu);
    sx_buf_free(&prefix);
    sx_buf_free(&mid);
}

size_t sx_tstore_reports(sx_tstore *ts, sx_arena *arena, Shardex__Internal__V1__TermReport ***out)
{
    pthread_mutex_lock(&ts->mu);
    uint64_t now = sx_clock_now_ms();
    size_t n = 0;
    for (size_t i = 0; i < ts->nterms; i++)
        n += ts->terms[i]->owned;
    Shardex__Internal__V1__TermReport **r = sx_arena_alloc(arena, (n ? n : 1) * sizeof(*r));
    size_t j = 0;
    for (size_t i = 0; i < ts->nterms; i++) {
        const term *e = ts->terms[i];
        if (!e->owned)
            continue;
        Shardex__Internal__V1__TermReport *x = sx_arena_alloc(arena, sizeof(*x));
        shardex__internal__v1__term_report__init(x);
        x->index_id = e->index_id;
        x->term_partition = e->t;
        x->epoch = e->epoch;
        x->n_watermarks = e->P;
        x->watermarks = sx_arena_alloc(arena, (e->P ? e->P : 1) * sizeof(uint64_t));
        bool ready = e->serving;
        uint64_t oldest = UINT64_MAX;
        for (uint32_t p = 0; p < e->P; p++) {
            x->watermarks[p] = e->serving ? e->wm[p] : 0;
            ready = ready && x->watermarks[p] > 0;
            if (e->as_of[p] < oldest)
                oldest = e->as_of[p];
        }
        x->ready = ready;
        x->oldest_as_of_ms = ready && e->P ? oldest : 0;
        x->entries = e->entries;
        x->writes_per_s = sx_rate_get(&e->writes, now);
        x->reads_per_s = sx_rate_get(&e->reads, now);
        if (e->serving && e->median.len) {
            Shardex__V1__Value *v = sx_arena_alloc(arena, sizeof(*v));
            sx_buf sbuf = {0}, id = {0};
            if (sx_ixkey_split_key(e->is_int, e->median.data, e->median.len, v, &sbuf, &id)) {
                if (v->kind_case == SHARDEX__V1__VALUE__KIND_S)
                    v->s = sx_arena_strdup(arena, v->s);
                x->median = v;
            }
            sx_buf_free(&sbuf);
            sx_buf_free(&id);
        }
        r[j++] = x;
    }
    /* The serving term partition counted longest ago, if due. */
    uint64_t due_id = 0, gen = 0;
    uint32_t due_t = 0;
    bool due = false;
    uint64_t oldest_count = UINT64_MAX;
    for (size_t i = 0; i < ts->nterms; i++) {
        const term *e = ts->terms[i];
        if (e->owned && e->serving && now - e->counted_ms >= COUNT_EVERY_MS &&
            e->counted_ms < oldest_count) {
            oldest_count = e->counted_ms;
            due = true;
            due_id = e->index_id;
            due_t = e->t;
            gen = e->gen;
        }
    }
    pthread_mutex_unlock(&ts->mu);
    if (due)
        count_term(ts, due_id, due_t, gen, now);
    *out = r;
    return n;
}
