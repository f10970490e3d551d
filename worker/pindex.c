/* pindex.c: see pindex.h. */
#include "pindex.h"

#include "clock.h"
#include "crashpoint.h"
#include "keys.h"
#include "log.h"
#include "sx_limits.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    TAG_IX = 'I',
    TAG_MIS = 'N',
    TAG_LOCAL = 'X',
    TAG_OUT = 'O',
    TAG_FLOOR = 'F',
    TAG_SPLIT = 'S',
    TAG_SALT = 'H',
    TAG_FILL = 'B'
};

/* The backfill of one index on this replica (pindex.h, "backfill"), as its
 * 'B' row holds it. */
enum { FILL_RUNNING = 1, FILL_DONE = 2 };
typedef struct fill {
    bool running;   /* documents as of start - 1 not all indexed yet */
    uint64_t done;  /* documents the chunks passed (indexed or skipped as newer) */
    uint64_t total; /* documents when the backfill counted them (about those at C) */
    uint32_t seq;   /* the next outbox record's seq at offset start */
    bool has_last;  /* a chunk ran: last is the last id it passed */
    sx_buf last;    /* raw id bytes */
    uint64_t t0_ms; /* rate: the first chunk of this process, and done then */
    uint64_t done0;
} fill;

typedef struct ix {
    sx_ixkey_def def;
    Shardex__V1__IndexSpec *spec; /* owned; def borrows its strings */
    uint64_t start;
    uint64_t mistyped;
    int64_t delta; /* of mistyped, in the batch being applied */
    /* Outbox changes of the batch being applied, per term partition, packed
     * (see "outbox records" below); NULL until the index's first change. */
    sx_buf *out;
    uint64_t *out_last; /* [t]: the offset of out[t]'s last change */
    uint32_t nout;      /* entries of out and out_last */
    /* Online splits applied (index_split markers), in seq order, owned;
     * def.layout points here. */
    Shardex__Internal__V1__IndexSplit **splits;
    size_t nsplits;
    /* Salts applied (index_salt markers, from = their offset), in seq order,
     * owned; def.salts points here. */
    Shardex__Internal__V1__IndexSalt **salts;
    size_t nsalts;
    /* Values written lately (global only; sx_pindex_hot), under pi->mu. */
    struct hot_sketch *hot;
    fill fill;
} ix;

/* A Misra-Gries sketch of value keys: any value with more than
 * window / (SLOTS + 1) of the changes holds a slot. */
typedef struct hot_sketch {
    sx_buf key[SX_PINDEX_HOT_SLOTS]; /* enc(value); len 0: free */
    uint64_t count[SX_PINDEX_HOT_SLOTS];
    uint64_t window;
} hot_sketch;

struct sx_pindex {
    sx_plog_observer obs; /* what the plog's applies call: observe_* below */
    sx_plog *log;
    sx_store *store;
    uint32_t p;
    pthread_mutex_t mu; /* cat and ncat, for readers; the applier writes under it */
    ix *cat;
    size_t ncat;
    /* The batch being applied (applier only). */
    ix pending_start; /* spec != NULL: a started index, for end() */
    uint64_t pending_drop;
    Shardex__Internal__V1__IndexSplit *pending_split; /* a split marker, for end() */
    Shardex__Internal__V1__IndexSalt *pending_salt;   /* a salt marker, for end() */
    bool batch_touched;
    uint32_t out_seq; /* outbox records written in the batch */
    sx_buf k, v, vals;
};

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

/* ------------------------------------------------------------------ keys -- */

static void key_id(sx_buf *b, uint8_t tag, uint64_t id)
{
    b->len = 0;
    sx_key_append_u8(b, tag);
    sx_key_append_u64(b, id);
}

static void key_id_t(sx_buf *b, uint8_t tag, uint64_t id, uint32_t t)
{
    key_id(b, tag, id);
    sx_key_append_u32(b, t);
}

static bool read_u64(const uint8_t *v, size_t n, size_t at, uint64_t *out)
{
    sx_key_reader r;
    if (n < at + 8)
        return false;
    sx_key_reader_init(&r, v + at, 8);
    return sx_key_read_u64(&r, out);
}

/* ------------------------------------------------------------- catalog -- */

static void outbox_free(ix *x)
{
    for (uint32_t t = 0; x->out && t < x->nout; t++)
        sx_buf_free(&x->out[t]);
    free(x->out);
    free(x->out_last);
    x->out = NULL;
    x->out_last = NULL;
    x->nout = 0;
}

static void ix_free(ix *x)
{
    outbox_free(x);
    for (size_t i = 0; i < x->nsplits; i++)
        shardex__internal__v1__index_split__free_unpacked(x->splits[i], &pb_allocator);
    free(x->splits);
    for (size_t i = 0; i < x->nsalts; i++)
        shardex__internal__v1__index_salt__free_unpacked(x->salts[i], &pb_allocator);
    free(x->salts);
    if (x->hot) {
        for (size_t i = 0; i < SX_PINDEX_HOT_SLOTS; i++)
            sx_buf_free(&x->hot->key[i]);
        free(x->hot);
    }
    sx_buf_free(&x->fill.last);
    if (x->spec)
        shardex__v1__index_spec__free_unpacked(x->spec, &pb_allocator);
    memset(x, 0, sizeof(*x));
}

static bool ix_init(ix *x, uint64_t id, uint64_t start, const uint8_t *spec, size_t n)
{
    memset(x, 0, sizeof(*x));
    x->spec = shardex__v1__index_spec__unpack(&pb_allocator, n, spec);
    if (!x->spec || !x->spec->name || !x->spec->field ||
        (x->spec->global && x->spec->term_partitions == 0))
        return false; /* the coordinator resolves M: 0 here is a corrupt spec */
    sx_ixkey_def_from_spec(&x->def, id, x->spec);
    x->start = start;
    return true;
}

static ix *find_locked(sx_pindex *pi, uint64_t id)
{
    for (size_t i = 0; i < pi->ncat; i++)
        if (pi->cat[i].def.id == id)
            return &pi->cat[i];
    return NULL;
}

static void info_of(const ix *x, sx_pindex_info *o)
{
    *o = (sx_pindex_info){.id = x->def.id,
                          .start = x->start,
                          .mistyped = x->mistyped,
                          .local = x->def.local,
                          .global = x->def.global,
                          .is_int = x->def.is_int,
                          .term_partitions = x->def.term_partitions,
                          .term_count = sx_ixkey_term_count(&x->def),
                          .nsplits = (uint32_t)x->nsplits,
                          .last_split_done = x->nsplits && x->splits[x->nsplits - 1]->done,
                          .nsalts = (uint32_t)x->nsalts,
                          .filling = x->fill.running,
                          .fill_done = x->fill.done,
                          .fill_total = x->fill.total};
    uint64_t ms = x->fill.t0_ms ? sx_clock_now_ms() - x->fill.t0_ms : 0;
    if (x->fill.running && ms >= 1000)
        o->fill_rate = (double)(x->fill.done - x->fill.done0) * 1000.0 / (double)ms;
}

sx_pindex_info *sx_pindex_list(sx_pindex *pi, size_t *n)
{
    pthread_mutex_lock(&pi->mu);
    *n = pi->ncat;
    sx_pindex_info *out = sx_malloc((pi->ncat + 1) * sizeof(*out));
    for (size_t i = 0; i < pi->ncat; i++)
        info_of(&pi->cat[i], &out[i]);
    pthread_mutex_unlock(&pi->mu);
    return out;
}

bool sx_pindex_find(sx_pindex *pi, uint64_t id, sx_pindex_info *out)
{
    pthread_mutex_lock(&pi->mu);
    ix *x = find_locked(pi, id);
    if (x)
        info_of(x, out);
    pthread_mutex_unlock(&pi->mu);
    return x != NULL;
}

/* --------------------------------------------------------------- apply -- */

/* A document's sorted distinct value keys for d: offs/lens into vals. */
typedef struct values {
    size_t n;
    size_t offs[SX_DOC_FIELDS_MAX];
    size_t lens[SX_DOC_FIELDS_MAX];
    bool mistyped;
} values;

static int vcmp(const sx_buf *a, const values *va, size_t i, const sx_buf *b, const values *vb,
                size_t j)
{
    size_t la = va->lens[i], lb = vb->lens[j];
    int c = memcmp(a->data + va->offs[i], b->data + vb->offs[j], la < lb ? la : lb);
    return c ? c : (la > lb) - (la < lb);
}

static void entry_key(sx_buf *k, const uint8_t *vkey, size_t vlen, const char *id, size_t id_len)
{
    sx_buf_append(k, vkey, vlen);
    sx_key_append_str(k, id, id_len);
}

/* Outbox records. The changes a batch makes to one term partition t of one
 * index are packed into one record, written when the batch is sealed (or
 * when the record reaches OUTBOX_RECORD_BYTES), so that a batch of a
 * thousand documents writes, and its trim deletes, a few records per index
 * instead of one per change:
 *
 *   key    'O' u64 id u32 t u64 last u32 seq   last: the offset of its last
 *          change; seq: counts the batch's records, so that records ending at
 *          the same offset (a backfill's) keep their order
 *   value  u8 OUTBOX_PACKED, then per change in offset order:
 *          u64 offset, u8 remove, u64 version, u32 n, n bytes of entry key
 *
 * Records of different replicas may cut the same changes at different
 * offsets (each replica batches its applies as they come), so a reader
 * starts at the first record ending after `after` and skips the changes at
 * or below it. A record written before packing (one change, the offset in
 * its key) has a first byte of 0 or 1 (its remove flag) and is read as
 * such. */
#define OUTBOX_PACKED 2
#define OUTBOX_RECORD_BYTES (256u << 10)

static void outbox_write(sx_pindex *pi, sx_batch *b, ix *x, uint32_t t)
{
    key_id_t(&pi->k, TAG_OUT, x->def.id, t);
    sx_key_append_u64(&pi->k, x->out_last[t]);
    sx_key_append_u32(&pi->k, pi->out_seq++);
    sx_batch_put(b, pi->k.data, pi->k.len, x->out[t].data, x->out[t].len);
    x->out[t].len = 0;
}

static void outbox_add(sx_pindex *pi, sx_batch *b, ix *x, uint32_t t, bool remove,
                       const uint8_t *vkey, size_t vlen, const char *id, size_t id_len,
                       uint64_t offset, uint64_t version)
{
    if (!x->out) {
        x->nout = sx_ixkey_term_count(&x->def);
        x->out = sx_calloc(x->nout, sizeof(*x->out));
        x->out_last = sx_calloc(x->nout, sizeof(*x->out_last));
    }
    sx_buf *o = &x->out[t];
    if (o->len == 0)
        sx_key_append_u8(o, OUTBOX_PACKED);
    sx_key_append_u64(o, offset);
    sx_key_append_u8(o, remove);
    sx_key_append_u64(o, version);
    pi->v.len = 0;
    entry_key(&pi->v, vkey, vlen, id, id_len);
    sx_key_append_u32(o, (uint32_t)pi->v.len);
    sx_buf_append(o, pi->v.data, pi->v.len);
    x->out_last[t] = offset;
    if (o->len >= OUTBOX_RECORD_BYTES)
        outbox_write(pi, b, x, t);
}

/* Writes x's pending outbox records into b. */
static void outbox_seal(sx_pindex *pi, sx_batch *b, ix *x)
{
    for (uint32_t t = 0; x->out && t < x->nout; t++)
        if (x->out[t].len)
            outbox_write(pi, b, x, t);
}

/* Forgets x's pending outbox records (a batch discarded). */
static void outbox_discard(ix *x)
{
    for (uint32_t t = 0; x->out && t < x->nout; t++)
        x->out[t].len = 0;
}

/* Writes index id's outbox floor of term partition t: the outbox of t holds
 * nothing at or below offset, so a term partition acknowledged below it is
 * rebuilt from a snapshot (ixlead.c). */
static void write_floor(sx_pindex *pi, sx_batch *b, uint64_t id, uint32_t t, uint64_t offset)
{
    key_id_t(&pi->k, TAG_FLOOR, id, t);
    pi->v.len = 0;
    sx_key_append_u64(&pi->v, offset);
    sx_batch_put(b, pi->k.data, pi->k.len, pi->v.data, pi->v.len);
}

/* Adds one index change to batch: the local entry, and the outbox unless
 * a backfill chunk (local_only: a new index's term partitions are rebuilt
 * from a snapshot, not shipped from the marker's offset). Its term
 * partitions are those of an entry of route_version (ixkey.h: a salted
 * value's entry lives by its version). */
static void change_to(sx_pindex *pi, sx_batch *b, ix *x, bool remove, const uint8_t *vkey,
                      size_t vlen, const char *id, size_t id_len, uint64_t offset, uint64_t version,
                      uint64_t route_version, bool local_only)
{
    if (x->def.local) {
        key_id(&pi->k, TAG_LOCAL, x->def.id);
        entry_key(&pi->k, vkey, vlen, id, id_len);
        if (remove) {
            sx_batch_delete(b, pi->k.data, pi->k.len);
        } else {
            pi->v.len = 0;
            sx_key_append_u64(&pi->v, version);
            sx_batch_put(b, pi->k.data, pi->k.len, pi->v.data, pi->v.len);
        }
    }
    if (x->def.global && !local_only) {
        /* During a split, a change of the parent's range goes to the parent
         * and to the shadow that owns its value (ixkey.h). */
        uint32_t ts[2];
        size_t nt = sx_ixkey_terms_of(&x->def, vkey, vlen, id, id_len, route_version, ts);
        for (size_t i = 0; i < nt; i++)
            outbox_add(pi, b, x, ts[i], remove, vkey, vlen, id, id_len, offset, version);
    }
}

/* Counts a written value (applier; under pi->mu for sx_pindex_hot). */
static void hot_count(sx_pindex *pi, ix *x, const uint8_t *vkey, size_t vlen)
{
    pthread_mutex_lock(&pi->mu);
    if (!x->hot)
        x->hot = sx_calloc(1, sizeof(*x->hot));
    hot_sketch *h = x->hot;
    if (++h->window >= SX_PINDEX_HOT_WINDOW) {
        h->window /= 2; /* recent writes weigh most */
        for (size_t i = 0; i < SX_PINDEX_HOT_SLOTS; i++)
            h->count[i] /= 2;
    }
    size_t free_slot = SIZE_MAX;
    for (size_t i = 0; i < SX_PINDEX_HOT_SLOTS; i++) {
        if (h->count[i] && h->key[i].len == vlen && memcmp(h->key[i].data, vkey, vlen) == 0) {
            h->count[i]++;
            pthread_mutex_unlock(&pi->mu);
            return;
        }
        if (!h->count[i] && free_slot == SIZE_MAX)
            free_slot = i;
    }
    if (free_slot != SIZE_MAX) {
        h->key[free_slot].len = 0;
        sx_buf_append(&h->key[free_slot], vkey, vlen);
        h->count[free_slot] = 1;
    } else {
        for (size_t i = 0; i < SX_PINDEX_HOT_SLOTS; i++)
            h->count[i]--; /* Misra-Gries: every counter pays for the newcomer */
    }
    pthread_mutex_unlock(&pi->mu);
}

size_t sx_pindex_hot(sx_pindex *pi, uint64_t id, size_t max, sx_arena *arena,
                     Shardex__V1__Value **vals_out, uint64_t *counts, uint64_t *window)
{
    size_t n = 0;
    *window = 0;
    pthread_mutex_lock(&pi->mu);
    ix *x = find_locked(pi, id);
    hot_sketch *h = x ? x->hot : NULL;
    if (h) {
        *window = h->window;
        bool used[SX_PINDEX_HOT_SLOTS] = {0};
        while (n < max) {
            size_t best = SIZE_MAX;
            for (size_t i = 0; i < SX_PINDEX_HOT_SLOTS; i++)
                if (!used[i] && h->count[i] && (best == SIZE_MAX || h->count[i] > h->count[best]))
                    best = i;
            if (best == SIZE_MAX)
                break;
            used[best] = true;
            Shardex__V1__Value v;
            sx_buf sbuf = {0}, idb = {0};
            /* enc(value) alone: split_key wants an id after it; give it one. */
            sx_buf k = {0};
            sx_buf_append(&k, h->key[best].data, h->key[best].len);
            sx_key_append_str(&k, "", 0);
            if (sx_ixkey_split_key(x->def.is_int, k.data, k.len, &v, &sbuf, &idb)) {
                Shardex__V1__Value *o = sx_arena_alloc(arena, sizeof(*o));
                *o = v;
                if (v.kind_case == SHARDEX__V1__VALUE__KIND_S)
                    o->s = sx_arena_strdup(arena, v.s ? v.s : "");
                vals_out[n] = o;
                counts[n++] = h->count[best];
            }
            sx_buf_free(&k);
            sx_buf_free(&sbuf);
            sx_buf_free(&idb);
        }
    }
    pthread_mutex_unlock(&pi->mu);
    return n;
}

static void change(sx_pindex *pi, sx_batch *b, ix *x, bool remove, const uint8_t *vkey, size_t vlen,
                   const char *id, size_t id_len, uint64_t offset, uint64_t version)
{
    change_to(pi, b, x, remove, vkey, vlen, id, id_len, offset, version, version, false);
}

/* A value the document keeps across an overwrite: its entry is rewritten
 * where the new version routes it; when a salt moved it (the old entry,
 * written before the salt's marker, lives in the value's own partition), the
 * old partitions get a remove. Only salted values can move. */
static void move_kept(sx_pindex *pi, sx_batch *b, ix *x, const uint8_t *vkey, size_t vlen,
                      const char *id, size_t id_len, uint64_t offset, uint64_t old_version)
{
    if (!x->def.global || !x->def.nsalts)
        return;
    uint32_t was[2], now[2];
    size_t nw = sx_ixkey_terms_of(&x->def, vkey, vlen, id, id_len, old_version, was);
    size_t nn = sx_ixkey_terms_of(&x->def, vkey, vlen, id, id_len, offset, now);
    for (size_t i = 0; i < nw; i++) {
        bool kept = false;
        for (size_t k = 0; k < nn; k++)
            kept |= now[k] == was[i];
        if (!kept)
            outbox_add(pi, b, x, was[i], true, vkey, vlen, id, id_len, offset, offset);
    }
}

static void write_mistyped(sx_pindex *pi, sx_batch *b, const ix *x)
{
    key_id(&pi->k, TAG_MIS, x->def.id);
    pi->v.len = 0;
    sx_key_append_u64(&pi->v, (uint64_t)((int64_t)x->mistyped + x->delta));
    sx_batch_put(b, pi->k.data, pi->k.len, pi->v.data, pi->v.len);
}

/* Whether x's backfill passed id (id order is the documents' key order:
 * bytewise, a prefix first). */
static bool fill_passed(const ix *x, const char *id, size_t id_len)
{
    if (!x->fill.has_last)
        return false;
    size_t n = x->fill.last.len;
    int c = memcmp(id, x->fill.last.data, id_len < n ? id_len : n);
    return c < 0 || (c == 0 && id_len <= n);
}

static void observe_entry(void *arg, sx_batch *b, uint64_t offset, const char *id, size_t id_len,
                          const uint8_t *old_doc, size_t old_len, uint64_t old_version,
                          const uint8_t *new_doc, size_t new_len)
{
    sx_pindex *pi = arg;
    if (pi->ncat == 0)
        return;
    pi->batch_touched = true;
    Shardex__V1__Document *od =
        old_doc ? shardex__v1__document__unpack(&pb_allocator, old_len, old_doc) : NULL;
    Shardex__V1__Document *nd =
        new_doc ? shardex__v1__document__unpack(&pb_allocator, new_len, new_doc) : NULL;
    sx_buf ob = {0};
    values ov, nv;
    for (size_t i = 0; i < pi->ncat; i++) {
        ix *x = &pi->cat[i];
        ov.n = od ? sx_ixkey_doc_values(&x->def, od, &ob, ov.offs, ov.lens, SX_DOC_FIELDS_MAX,
                                        &ov.mistyped)
                  : 0;
        /* An old document of a backfill still running counts only when
         * something indexed it: this path (written after the marker) or a
         * chunk that passed it. Its entries are removed either way: removing
         * one that was never written is harmless. */
        if (!od || (x->fill.running && old_version <= x->start && !fill_passed(x, id, id_len)))
            ov.mistyped = false;
        nv.n = nd ? sx_ixkey_doc_values(&x->def, nd, &pi->vals, nv.offs, nv.lens, SX_DOC_FIELDS_MAX,
                                        &nv.mistyped)
                  : 0;
        if (!nd)
            nv.mistyped = false;
        /* Removed: old values the new document lacks (both lists sorted). */
        size_t j = 0;
        for (size_t k = 0; k < ov.n; k++) {
            while (j < nv.n && vcmp(&pi->vals, &nv, j, &ob, &ov, k) < 0)
                j++;
            if (j < nv.n && vcmp(&pi->vals, &nv, j, &ob, &ov, k) == 0) {
                move_kept(pi, b, x, ob.data + ov.offs[k], ov.lens[k], id, id_len, offset,
                          old_version);
                continue;
            }
            change_to(pi, b, x, true, ob.data + ov.offs[k], ov.lens[k], id, id_len, offset, offset,
                      old_version, false);
        }
        for (size_t k = 0; k < nv.n; k++) {
            change(pi, b, x, false, pi->vals.data + nv.offs[k], nv.lens[k], id, id_len, offset,
                   offset);
            if (x->def.global)
                hot_count(pi, x, pi->vals.data + nv.offs[k], nv.lens[k]);
        }
        if (ov.mistyped != nv.mistyped) {
            x->delta += nv.mistyped ? 1 : -1;
            write_mistyped(pi, b, x);
        }
    }
    sx_buf_free(&ob);
    if (od)
        shardex__v1__document__free_unpacked(od, &pb_allocator);
    if (nd)
        shardex__v1__document__free_unpacked(nd, &pb_allocator);
}

/* The 'B' row of index id: f with last as its cursor, into b. Value: u8
 * FILL_RUNNING or FILL_DONE, u64 done, u64 total, u32 seq, u8 has_last, then
 * the last id's raw bytes. */
static void write_fill(sx_pindex *pi, sx_batch *b, uint64_t id, const fill *f, const sx_buf *last)
{
    key_id(&pi->k, TAG_FILL, id);
    pi->v.len = 0;
    sx_key_append_u8(&pi->v, f->running ? FILL_RUNNING : FILL_DONE);
    sx_key_append_u64(&pi->v, f->done);
    sx_key_append_u64(&pi->v, f->total);
    sx_key_append_u32(&pi->v, f->seq);
    sx_key_append_u8(&pi->v, f->has_last);
    sx_buf_append(&pi->v, last->data, last->len);
    sx_batch_put(b, pi->k.data, pi->k.len, pi->v.data, pi->v.len);
}

/* Reads a 'B' row into f; false when malformed. */
static bool read_fill(const uint8_t *v, size_t n, fill *f)
{
    sx_key_reader r;
    uint8_t state, has_last;
    sx_key_reader_init(&r, v, n);
    if (!sx_key_read_u8(&r, &state) || !sx_key_read_u64(&r, &f->done) ||
        !sx_key_read_u64(&r, &f->total) || !sx_key_read_u32(&r, &f->seq) ||
        !sx_key_read_u8(&r, &has_last) || (state != FILL_RUNNING && state != FILL_DONE) ||
        has_last > 1)
        return false;
    f->running = state == FILL_RUNNING;
    f->has_last = has_last;
    f->last.len = 0;
    sx_buf_append(&f->last, r.p + r.pos, r.len - r.pos);
    return true;
}

/* Deletes every key with the given prefix, into batch. */
static sx_status delete_prefix(sx_pindex *pi, sx_batch *b, const sx_buf *prefix, sx_err *err)
{
    sx_iter *it = sx_store_iter_prefix(pi->store, NULL, prefix->data, prefix->len);
    for (; sx_iter_valid(it); sx_iter_next(it)) {
        size_t kl;
        const void *k = sx_iter_key(it, &kl);
        sx_batch_delete(b, k, kl);
    }
    sx_status st = sx_iter_status(it, err);
    sx_iter_destroy(it);
    return st;
}

/* Split rows: 'S' u64 id u32 seq -> packed IndexSplit (done as last marked). */
static void write_split(sx_pindex *pi, sx_batch *b, const Shardex__Internal__V1__IndexSplit *sp)
{
    key_id_t(&pi->k, TAG_SPLIT, sp->index_id, sp->seq);
    pi->v.len = 0;
    size_t n = shardex__internal__v1__index_split__get_packed_size(sp);
    sx_buf_reserve(&pi->v, n);
    pi->v.len = shardex__internal__v1__index_split__pack(sp, pi->v.data);
    sx_batch_put(b, pi->k.data, pi->k.len, pi->v.data, pi->v.len);
}

static Shardex__Internal__V1__IndexSplit *split_dup(const Shardex__Internal__V1__IndexSplit *sp)
{
    size_t n = shardex__internal__v1__index_split__get_packed_size(sp);
    uint8_t *buf = sx_malloc(n + 1);
    shardex__internal__v1__index_split__pack(sp, buf);
    Shardex__Internal__V1__IndexSplit *o =
        shardex__internal__v1__index_split__unpack(&pb_allocator, n, buf);
    free(buf);
    return o;
}

/* index_split (docs/indexes.md, "Online split"). A new split (seq = the
 * next) marks the one before done, records itself, and starts the shadows'
 * outboxes at this offset (their floor), so that a leader rebuilds them from
 * a snapshot at or after it; done = true marks an applied split done. Any
 * other marker (a repeat, a seq out of order, another index) is a no-op:
 * leaders append them again after a change of leadership. The catalog
 * changes in end(), once the batch is written (the marker is alone in it). */
static sx_status observe_split(sx_pindex *pi, sx_batch *b, uint64_t offset,
                               const Shardex__Internal__V1__IndexSplit *sp, sx_err *err)
{
    ix *x = find_locked(pi, sp->index_id);
    if (!x || !x->def.global || !x->def.range)
        return SX_OK;
    if (sp->seq >= 1 && sp->seq <= x->nsplits) {
        Shardex__Internal__V1__IndexSplit *cur = x->splits[sp->seq - 1];
        if (!sp->done || cur->done)
            return SX_OK;
    } else if (sp->seq != x->nsplits + 1 || sp->done) {
        return SX_OK;
    } else {
        uint32_t count = sx_ixkey_term_count(&x->def);
        if (!sp->at || sp->lo != count || sp->hi != count + 1)
            return sx_err_set(err, SX_DATA_LOSS,
                              "partition %u: split marker at %" PRIu64 " of index %" PRIu64
                              " is malformed",
                              pi->p, offset, sp->index_id);
        if (x->nsplits && !x->splits[x->nsplits - 1]->done) {
            Shardex__Internal__V1__IndexSplit *prev = split_dup(x->splits[x->nsplits - 1]);
            prev->done = true;
            write_split(pi, b, prev);
            shardex__internal__v1__index_split__free_unpacked(prev, &pb_allocator);
        }
        for (uint32_t t = sp->lo; t <= sp->hi; t++)
            write_floor(pi, b, x->def.id, t, offset);
    }
    Shardex__Internal__V1__IndexSplit *rec = split_dup(sp);
    write_split(pi, b, rec);
    pi->pending_split = rec;
    SX_LOG(SX_LOG_INFO, "index",
           "partition=%u index=%" PRIu64 " split seq=%u term=%u into %u,%u%s at=%" PRIu64, pi->p,
           sp->index_id, sp->seq, sp->term, sp->lo, sp->hi, sp->done ? " done" : "", offset);
    return SX_OK;
}

/* Installs an applied split record into x (applier, under pi->mu). */
static void install_split(ix *x, Shardex__Internal__V1__IndexSplit *rec)
{
    if (rec->seq <= x->nsplits) {
        shardex__internal__v1__index_split__free_unpacked(x->splits[rec->seq - 1], &pb_allocator);
        x->splits[rec->seq - 1] = rec;
    } else {
        if (x->nsplits)
            x->splits[x->nsplits - 1]->done = true;
        x->splits = sx_realloc(x->splits, (x->nsplits + 1) * sizeof(*x->splits));
        x->splits[x->nsplits++] = rec;
        outbox_free(x); /* sized by the term count, which grew (empty between batches) */
    }
    x->def.layout = x->splits;
    x->def.nlayout = x->nsplits;
}

/* Salt rows: 'H' u64 id u32 seq -> packed IndexSalt (from: its offset). */
static Shardex__Internal__V1__IndexSalt *salt_dup(const Shardex__Internal__V1__IndexSalt *sa)
{
    size_t n = shardex__internal__v1__index_salt__get_packed_size(sa);
    uint8_t *buf = sx_malloc(n + 1);
    shardex__internal__v1__index_salt__pack(sa, buf);
    Shardex__Internal__V1__IndexSalt *o =
        shardex__internal__v1__index_salt__unpack(&pb_allocator, n, buf);
    free(buf);
    return o;
}

/* Whether a salt record can be routed by: its terms exist and one per way. */
static bool salt_ok(const ix *x, const Shardex__Internal__V1__IndexSalt *sa)
{
    bool ok = sa->value && sa->ways >= 2 && sa->n_terms == sa->ways;
    for (size_t i = 0; ok && i < sa->n_terms; i++)
        ok = sa->terms[i] < sx_ixkey_term_count(&x->def);
    return ok;
}

/* index_salt (docs/indexes.md, "Hot values"): the next seq is recorded with
 * from = this offset; from here on an entry of the value written at or after
 * it routes to its slot's partition. Nothing moves now: entries written
 * before stay in the value's own partition until changed. A repeat or a seq
 * out of order is a no-op (leaders append markers again after a change of
 * leadership). The catalog changes in end(). */
static sx_status observe_salt(sx_pindex *pi, sx_batch *b, uint64_t offset,
                              const Shardex__Internal__V1__IndexSalt *sa, sx_err *err)
{
    ix *x = find_locked(pi, sa->index_id);
    if (!x || !x->def.global || sa->seq != x->nsalts + 1)
        return SX_OK;
    if (!salt_ok(x, sa))
        return sx_err_set(err, SX_DATA_LOSS,
                          "partition %u: salt marker at %" PRIu64 " of index %" PRIu64
                          " is malformed",
                          pi->p, offset, sa->index_id);
    Shardex__Internal__V1__IndexSalt *rec = salt_dup(sa);
    rec->from = offset;
    key_id_t(&pi->k, TAG_SALT, rec->index_id, rec->seq);
    size_t n = shardex__internal__v1__index_salt__get_packed_size(rec);
    sx_buf_reserve(&pi->v, n);
    pi->v.len = shardex__internal__v1__index_salt__pack(rec, pi->v.data);
    sx_batch_put(b, pi->k.data, pi->k.len, pi->v.data, pi->v.len);
    pi->pending_salt = rec;
    SX_LOG(SX_LOG_INFO, "index", "partition=%u index=%" PRIu64 " salt seq=%u ways=%u at=%" PRIu64,
           pi->p, sa->index_id, sa->seq, sa->ways, offset);
    return SX_OK;
}

static void install_salt(ix *x, Shardex__Internal__V1__IndexSalt *rec)
{
    x->salts = sx_realloc(x->salts, (x->nsalts + 1) * sizeof(*x->salts));
    x->salts[x->nsalts++] = rec;
    x->def.salts = x->salts;
    x->def.nsalts = x->nsalts;
}

static sx_status observe_marker(void *arg, sx_batch *b, uint64_t offset,
                                const Shardex__Internal__V1__LogOp *op, sx_err *err)
{
    sx_pindex *pi = arg;
    pi->batch_touched = true;
    if (op->op_case == SHARDEX__INTERNAL__V1__LOG_OP__OP_INDEX_START) {
        const Shardex__Internal__V1__IndexStart *s = op->index_start;
        if (find_locked(pi, s->index_id))
            return SX_OK; /* started already: a repeated marker is a no-op */
        size_t n = shardex__v1__index_spec__get_packed_size(s->spec);
        uint8_t *packed = sx_malloc(n + 1);
        shardex__v1__index_spec__pack(s->spec, packed);
        ix x;
        bool ok = ix_init(&x, s->index_id, offset, packed, n);
        if (!ok) {
            free(packed);
            ix_free(&x);
            return sx_err_set(err, SX_DATA_LOSS,
                              "partition %u: index marker at %" PRIu64 " has no usable spec", pi->p,
                              offset);
        }
        key_id(&pi->k, TAG_IX, s->index_id);
        pi->v.len = 0;
        sx_key_append_u64(&pi->v, offset);
        sx_buf_append(&pi->v, packed, n);
        free(packed);
        sx_batch_put(b, pi->k.data, pi->k.len, pi->v.data, pi->v.len);
        /* The backfill itself runs in chunks, off the apply path
         * (sx_pindex_backfill_step): here only its state, durable with the
         * catalog row, so that a restart (or a copied store) resumes it. */
        x.fill.running = true;
        write_fill(pi, b, x.def.id, &x.fill, &x.fill.last);
        write_mistyped(pi, b, &x);
        /* A global index's outboxes start here (docs/indexes.md, "Backfill
         * in chunks"): its chunks write no outbox, so every term partition
         * is below the floor and its leader rebuilds it in chunks from a
         * snapshot at an applied offset >= C. The same rows on every
         * replica: they come from the log. */
        for (uint32_t t = 0; x.def.global && t < sx_ixkey_term_count(&x.def); t++)
            write_floor(pi, b, x.def.id, t, offset);
        pi->pending_start = x;
        SX_LOG(SX_LOG_INFO, "index",
               "partition=%u index started id=%" PRIu64 " name=%s at=%" PRIu64 " backfilling",
               pi->p, s->index_id, x.def.name, offset);
        return SX_OK;
    }
    if (op->op_case == SHARDEX__INTERNAL__V1__LOG_OP__OP_INDEX_SPLIT)
        return observe_split(pi, b, offset, op->index_split, err);
    if (op->op_case == SHARDEX__INTERNAL__V1__LOG_OP__OP_INDEX_SALT)
        return observe_salt(pi, b, offset, op->index_salt, err);
    uint64_t id = op->index_drop;
    if (!find_locked(pi, id))
        return SX_OK;
    static const uint8_t tags[] = {TAG_IX,    TAG_MIS,   TAG_LOCAL, TAG_OUT,
                                   TAG_FLOOR, TAG_SPLIT, TAG_SALT,  TAG_FILL};
    for (size_t i = 0; i < sizeof(tags); i++) {
        key_id(&pi->k, tags[i], id);
        sx_buf prefix = {0};
        sx_buf_append(&prefix, pi->k.data, pi->k.len);
        sx_status st = delete_prefix(pi, b, &prefix, err);
        sx_buf_free(&prefix);
        if (st != SX_OK)
            return st;
    }
    pi->pending_drop = id;
    SX_LOG(SX_LOG_INFO, "index", "partition=%u index dropped id=%" PRIu64 " at=%" PRIu64, pi->p, id,
           offset);
    return SX_OK;
}

/* Before the batch is written: the outbox records it packed. */
static void observe_seal(void *arg, sx_batch *b)
{
    sx_pindex *pi = arg;
    for (size_t i = 0; i < pi->ncat; i++)
        outbox_seal(pi, b, &pi->cat[i]);
    if (pi->pending_start.spec)
        outbox_seal(pi, b, &pi->pending_start);
}

static void observe_end(void *arg, bool written)
{
    sx_pindex *pi = arg;
    if (!pi->batch_touched)
        return;
    pthread_mutex_lock(&pi->mu);
    pi->out_seq = 0;
    for (size_t i = 0; i < pi->ncat; i++) {
        outbox_discard(&pi->cat[i]); /* sealed into the batch, or discarded with it */
        if (written)
            pi->cat[i].mistyped = (uint64_t)((int64_t)pi->cat[i].mistyped + pi->cat[i].delta);
        pi->cat[i].delta = 0;
    }
    if (pi->pending_start.spec) {
        if (written) {
            pi->cat = sx_realloc(pi->cat, (pi->ncat + 1) * sizeof(*pi->cat));
            pi->cat[pi->ncat++] = pi->pending_start;
        } else {
            ix_free(&pi->pending_start);
        }
        memset(&pi->pending_start, 0, sizeof(pi->pending_start));
    }
    if (pi->pending_split) {
        ix *x = written ? find_locked(pi, pi->pending_split->index_id) : NULL;
        if (x)
            install_split(x, pi->pending_split);
        else
            shardex__internal__v1__index_split__free_unpacked(pi->pending_split, &pb_allocator);
        pi->pending_split = NULL;
    }
    if (pi->pending_salt) {
        ix *x = written ? find_locked(pi, pi->pending_salt->index_id) : NULL;
        if (x)
            install_salt(x, pi->pending_salt);
        else
            shardex__internal__v1__index_salt__free_unpacked(pi->pending_salt, &pb_allocator);
        pi->pending_salt = NULL;
    }
    if (pi->pending_drop) {
        ix *x = written ? find_locked(pi, pi->pending_drop) : NULL;
        if (x) {
            ix_free(x);
            *x = pi->cat[--pi->ncat];
        }
        pi->pending_drop = 0;
    }
    pi->batch_touched = false;
    pthread_mutex_unlock(&pi->mu);
}

/* ------------------------------------------------------------ backfill -- */

/* One chunk of one index's backfill (sx_pindex_backfill_step), run under the
 * plog's mutex: no apply runs meanwhile, so the store is read as it is. */
typedef struct chunk {
    sx_pindex *pi;
    uint64_t id;
    size_t max;       /* documents to pass */
    uint64_t counted; /* documents counted before the first chunk (0: keep total) */
    sx_batch *b;
    ix *x;
    size_t passed, indexed;
    bool more;     /* the scan stopped at max with documents left */
    bool finished; /* this chunk was the last */
    sx_buf last;
    sx_status st;
    sx_err *err;
} chunk;

static bool chunk_doc(void *arg, const char *id, size_t id_len, uint64_t version,
                      const uint8_t *doc, size_t len)
{
    chunk *c = arg;
    sx_pindex *pi = c->pi;
    if (c->passed == c->max) {
        c->more = true;
        return false;
    }
    c->passed++;
    c->last.len = 0;
    sx_buf_append(&c->last, id, id_len);
    /* Written after the marker: the apply path indexed it (the rule that
     * makes a backfill in chunks exact, docs/indexes.md). */
    if (version > c->x->start)
        return true;
    Shardex__V1__Document *d = shardex__v1__document__unpack(&pb_allocator, len, doc);
    if (!d) {
        c->st = sx_err_set(c->err, SX_DATA_LOSS, "partition %u: stored document %s does not decode",
                           pi->p, id);
        return false;
    }
    values nv;
    nv.n = sx_ixkey_doc_values(&c->x->def, d, &pi->vals, nv.offs, nv.lens, SX_DOC_FIELDS_MAX,
                               &nv.mistyped);
    for (size_t k = 0; k < nv.n; k++)
        change_to(pi, c->b, c->x, false, pi->vals.data + nv.offs[k], nv.lens[k], id, id_len,
                  c->x->start, version, version, true);
    if (nv.mistyped)
        c->x->delta++;
    c->indexed++;
    shardex__v1__document__free_unpacked(d, &pb_allocator);
    return true;
}

static sx_status chunk_locked(void *arg, sx_err *err)
{
    chunk *c = arg;
    sx_pindex *pi = c->pi;
    ix *x = find_locked(pi, c->id); /* the catalog changes only under this mutex */
    if (!x || !x->fill.running)
        return SX_OK; /* dropped, or finished by an earlier step */
    c->x = x;
    SX_DELAY_POINT("backfill-scan"); /* tests: a long chunk, under the plog's mutex */
    c->b = sx_batch_create();
    c->err = err;
    pi->out_seq = x->fill.seq; /* records at offset start follow the earlier chunks' */
    sx_status st = sx_plog_scan_docs_after(
        pi->log, NULL, x->fill.has_last ? (const char *)x->fill.last.data : NULL, x->fill.last.len,
        chunk_doc, c, err);
    if (st == SX_OK)
        st = c->st;
    /* The new state, written with the chunk: the cursor moves with what it
     * indexed, atomically. */
    fill nf = x->fill; /* shares x's last: read only */
    nf.done += c->passed;
    if (c->counted)
        nf.total = c->counted;
    nf.running = c->more;
    if (nf.total < nf.done || !nf.running)
        nf.total = nf.done; /* writes after the count: "about" */
    nf.has_last = x->fill.has_last || c->passed > 0;
    if (st == SX_OK) {
        outbox_seal(pi, c->b, x);
        nf.seq = pi->out_seq;
        write_mistyped(pi, c->b, x);
        write_fill(pi, c->b, x->def.id, &nf, c->passed ? &c->last : &x->fill.last);
        SX_CRASH_POINT("backfill-chunk");
        st = sx_store_write(pi->store, c->b, SX_SYNC_NO, err);
    }
    outbox_discard(x);
    pi->out_seq = 0;
    pthread_mutex_lock(&pi->mu);
    if (st == SX_OK) {
        x->mistyped = (uint64_t)((int64_t)x->mistyped + x->delta);
        x->fill.done = nf.done;
        x->fill.total = nf.total;
        x->fill.running = nf.running;
        x->fill.has_last = nf.has_last;
        x->fill.seq = nf.seq;
        if (c->passed) {
            sx_buf tmp = x->fill.last;
            x->fill.last = c->last;
            c->last = tmp;
        }
        c->finished = !nf.running;
    }
    x->delta = 0;
    pthread_mutex_unlock(&pi->mu);
    sx_batch_destroy(c->b);
    return st;
}

static bool count_doc(void *arg, const char *id, size_t id_len, uint64_t version,
                      const uint8_t *doc, size_t len)
{
    (void)id, (void)id_len, (void)version, (void)doc, (void)len;
    (*(uint64_t *)arg)++;
    return true;
}

sx_status sx_pindex_backfill_step(sx_pindex *pi, size_t max_docs, sx_pindex_step *out, sx_err *err)
{
    *out = (sx_pindex_step){0};
    uint64_t id = 0;
    bool first = false;
    pthread_mutex_lock(&pi->mu);
    for (size_t i = 0; i < pi->ncat; i++) {
        if (pi->cat[i].fill.running) {
            ix *x = &pi->cat[i];
            id = x->def.id;
            first = !x->fill.has_last;
            if (!x->fill.t0_ms) {
                x->fill.t0_ms = sx_clock_now_ms();
                x->fill.done0 = x->fill.done;
            }
            break;
        }
    }
    pthread_mutex_unlock(&pi->mu);
    if (!id)
        return SX_OK;
    chunk c = {.pi = pi, .id = id, .max = max_docs ? max_docs : 1};
    sx_status st = SX_OK;
    if (first) {
        /* The total, for progress only: counted at a snapshot, without the
         * lock, so it is about the documents at the marker. */
        const sx_snapshot *snap = sx_plog_snapshot(pi->log, &(uint64_t){0});
        st = sx_plog_scan_docs_at(pi->log, snap, count_doc, &c.counted, err);
        sx_store_release_snapshot(pi->store, snap);
    }
    if (st == SX_OK)
        st = sx_plog_run_locked(pi->log, chunk_locked, &c, err);
    sx_buf_free(&c.last);
    out->index_id = id;
    out->passed = c.passed;
    out->indexed = c.indexed;
    out->finished = c.finished;
    if (out->finished)
        SX_LOG(SX_LOG_INFO, "index", "partition=%u index=%" PRIu64 " backfill done", pi->p, id);
    return st;
}

/* ---------------------------------------------------------------- open -- */

/* The 'L' rows of x, in seq order. */
static sx_status load_splits(sx_pindex *pi, ix *x, sx_err *err)
{
    sx_buf prefix = {0};
    key_id(&prefix, TAG_SPLIT, x->def.id);
    sx_iter *it = sx_store_iter_prefix(pi->store, NULL, prefix.data, prefix.len);
    sx_status st = SX_OK;
    for (; sx_iter_valid(it); sx_iter_next(it)) {
        size_t vl;
        const uint8_t *v = sx_iter_value(it, &vl);
        Shardex__Internal__V1__IndexSplit *sp =
            shardex__internal__v1__index_split__unpack(&pb_allocator, vl, v);
        if (!sp || sp->seq != x->nsplits + 1 || !sp->at) {
            if (sp)
                shardex__internal__v1__index_split__free_unpacked(sp, &pb_allocator);
            st = sx_err_set(err, SX_DATA_LOSS,
                            "partition %u: a split row of index %" PRIu64 " is malformed", pi->p,
                            x->def.id);
            break;
        }
        x->splits = sx_realloc(x->splits, (x->nsplits + 1) * sizeof(*x->splits));
        x->splits[x->nsplits++] = sp;
    }
    if (st == SX_OK)
        st = sx_iter_status(it, err);
    sx_iter_destroy(it);
    sx_buf_free(&prefix);
    x->def.layout = x->splits;
    x->def.nlayout = x->nsplits;
    return st;
}

/* The 'H' rows of x, in seq order. */
static sx_status load_salts(sx_pindex *pi, ix *x, sx_err *err)
{
    sx_buf prefix = {0};
    key_id(&prefix, TAG_SALT, x->def.id);
    sx_iter *it = sx_store_iter_prefix(pi->store, NULL, prefix.data, prefix.len);
    sx_status st = SX_OK;
    for (; sx_iter_valid(it); sx_iter_next(it)) {
        size_t vl;
        const uint8_t *v = sx_iter_value(it, &vl);
        Shardex__Internal__V1__IndexSalt *sa =
            shardex__internal__v1__index_salt__unpack(&pb_allocator, vl, v);
        if (!sa || sa->seq != x->nsalts + 1 || !salt_ok(x, sa)) {
            if (sa)
                shardex__internal__v1__index_salt__free_unpacked(sa, &pb_allocator);
            st = sx_err_set(err, SX_DATA_LOSS,
                            "partition %u: a salt row of index %" PRIu64 " is malformed", pi->p,
                            x->def.id);
            break;
        }
        install_salt(x, sa);
    }
    if (st == SX_OK)
        st = sx_iter_status(it, err);
    sx_iter_destroy(it);
    sx_buf_free(&prefix);
    return st;
}

sx_status sx_pindex_salts_at(sx_pindex *pi, const sx_snapshot *snap, sx_arena *arena,
                             Shardex__Internal__V1__IndexSalt ***out, size_t *n, sx_err *err)
{
    *out = NULL;
    *n = 0;
    const uint8_t tag = TAG_SALT;
    ProtobufCAllocator alloc = sx_arena_pb_allocator(arena);
    size_t cap = 0;
    sx_iter *it = sx_store_iter_prefix(pi->store, snap, &tag, 1);
    sx_status st = SX_OK;
    for (; sx_iter_valid(it); sx_iter_next(it)) {
        size_t vl;
        const uint8_t *v = sx_iter_value(it, &vl);
        Shardex__Internal__V1__IndexSalt *sa =
            shardex__internal__v1__index_salt__unpack(&alloc, vl, v);
        if (!sa) {
            st = sx_err_set(err, SX_DATA_LOSS, "partition %u: a salt row does not decode", pi->p);
            break;
        }
        if (*n == cap) { /* few: at most 64 per index */
            cap = cap ? 2 * cap : 8;
            Shardex__Internal__V1__IndexSalt **grown = sx_arena_alloc(arena, cap * sizeof(*grown));
            if (*n)
                memcpy(grown, *out, *n * sizeof(*grown));
            *out = grown;
        }
        (*out)[(*n)++] = sa;
    }
    if (st == SX_OK)
        st = sx_iter_status(it, err);
    sx_iter_destroy(it);
    return st;
}

static sx_status load_catalog(sx_pindex *pi, sx_err *err)
{
    uint8_t tag = TAG_IX;
    sx_iter *it = sx_store_iter_prefix(pi->store, NULL, &tag, 1);
    sx_status st = SX_OK;
    for (; sx_iter_valid(it); sx_iter_next(it)) {
        size_t kl, vl;
        const uint8_t *k = sx_iter_key(it, &kl);
        const uint8_t *v = sx_iter_value(it, &vl);
        uint64_t id, start;
        ix x = {0};
        if (!read_u64(k, kl, 1, &id) || kl != 9 || !read_u64(v, vl, 0, &start) ||
            !ix_init(&x, id, start, v + 8, vl - 8)) {
            ix_free(&x);
            st = sx_err_set(err, SX_DATA_LOSS, "partition %u: an index catalog row is malformed",
                            pi->p);
            break;
        }
        key_id(&pi->k, TAG_MIS, id);
        bool found = false;
        st = sx_store_get(pi->store, NULL, pi->k.data, pi->k.len, &pi->v, &found, err);
        if (st != SX_OK)
            break;
        if (found)
            read_u64(pi->v.data, pi->v.len, 0, &x.mistyped);
        if (st == SX_OK)
            st = load_splits(pi, &x, err);
        if (st == SX_OK)
            st = load_salts(pi, &x, err);
        /* No 'B' row: started before backfills ran in chunks, complete. */
        key_id(&pi->k, TAG_FILL, id);
        if (st == SX_OK)
            st = sx_store_get(pi->store, NULL, pi->k.data, pi->k.len, &pi->v, &found, err);
        if (st == SX_OK && found && !read_fill(pi->v.data, pi->v.len, &x.fill))
            st = sx_err_set(err, SX_DATA_LOSS,
                            "partition %u: the backfill row of index %" PRIu64 " is malformed",
                            pi->p, id);
        if (st != SX_OK) {
            ix_free(&x);
            break;
        }
        if (x.fill.running)
            SX_LOG(SX_LOG_INFO, "index",
                   "partition=%u index=%" PRIu64 " backfill resumes done=%" PRIu64
                   " total=%" PRIu64,
                   pi->p, id, x.fill.done, x.fill.total);
        pi->cat = sx_realloc(pi->cat, (pi->ncat + 1) * sizeof(*pi->cat));
        pi->cat[pi->ncat++] = x;
    }
    if (st == SX_OK)
        st = sx_iter_status(it, err);
    sx_iter_destroy(it);
    return st;
}

sx_pindex *sx_pindex_create(void)
{
    sx_pindex *pi = sx_calloc(1, sizeof(*pi));
    pi->obs = (sx_plog_observer){.arg = pi,
                                 .entry = observe_entry,
                                 .marker = observe_marker,
                                 .seal = observe_seal,
                                 .end = observe_end};
    pthread_mutex_init(&pi->mu, NULL);
    return pi;
}

const sx_plog_observer *sx_pindex_observer(sx_pindex *pi)
{
    return &pi->obs;
}

sx_status sx_pindex_load(sx_pindex *pi, sx_plog *log, sx_err *err)
{
    pi->log = log;
    pi->store = sx_plog_store(log);
    pi->p = sx_plog_partition(log);
    return load_catalog(pi, err);
}

void sx_pindex_close(sx_pindex *pi)
{
    if (!pi)
        return;
    for (size_t i = 0; i < pi->ncat; i++)
        ix_free(&pi->cat[i]);
    free(pi->cat);
    ix_free(&pi->pending_start);
    if (pi->pending_split)
        shardex__internal__v1__index_split__free_unpacked(pi->pending_split, &pb_allocator);
    if (pi->pending_salt)
        shardex__internal__v1__index_salt__free_unpacked(pi->pending_salt, &pb_allocator);
    sx_buf_free(&pi->k);
    sx_buf_free(&pi->v);
    sx_buf_free(&pi->vals);
    pthread_mutex_destroy(&pi->mu);
    free(pi);
}

/* --------------------------------------------------------------- reads -- */

typedef struct snap_at {
    const sx_snapshot *snap;
    uint64_t applied;
} snap_at;

/* A snapshot and the applied offset it holds, taken together. */
static snap_at snapshot(sx_pindex *pi)
{
    snap_at s;
    s.snap = sx_plog_snapshot(pi->log, &s.applied);
    return s;
}

/* The document id at snap as stored (packed; empty when absent), copied
 * into arena. Not parsed: the store checks what it reads (store.c). */
static ProtobufCBinaryData doc_at(sx_pindex *pi, const sx_snapshot *snap, const char *id,
                                  sx_arena *arena, sx_err *err, sx_status *st)
{
    bool found = false;
    sx_buf doc = {0};
    ProtobufCBinaryData out = {0};
    *st = sx_plog_get_doc_at(pi->log, snap, id, strlen(id), &found, NULL, &doc, err);
    if (*st == SX_OK && found) {
        out.data = sx_arena_memdup(arena, doc.data, doc.len);
        out.len = doc.len;
    }
    sx_buf_free(&doc);
    return out;
}

sx_status sx_pindex_scan(sx_pindex *pi, const Shardex__Internal__V1__ScanRequest *req,
                         sx_arena *arena, Shardex__Internal__V1__ScanResponse *resp, sx_err *err)
{
    sx_pindex_info info;
    if (!sx_pindex_find(pi, req->index_id, &info) || !info.local)
        return sx_err_set(err, SX_NOT_FOUND,
                          "partition %u: index %" PRIu64 " has no local "
                          "entries here (not started, dropped, or global only)",
                          pi->p, req->index_id);
    if (info.filling) { /* never an answer silently incomplete */
        char name[128] = "";
        pthread_mutex_lock(&pi->mu);
        ix *x = find_locked(pi, req->index_id);
        if (x)
            snprintf(name, sizeof(name), "%s", x->def.name);
        pthread_mutex_unlock(&pi->mu);
        return sx_err_set(err, SX_UNAVAILABLE,
                          "index \"%s\" is still backfilling on partition %u (%" PRIu64
                          " of about %" PRIu64 " documents): ask again when it is READY",
                          name, pi->p, info.fill_done, info.fill_total);
    }
    /* The limit comes from the network: the hits array grows with what is
     * found, and no scan returns more than a query may ask for. */
    size_t limit = req->limit ? req->limit : SX_QUERY_LIMIT_DEFAULT;
    if (limit > SX_QUERY_LIMIT_MAX)
        limit = SX_QUERY_LIMIT_MAX;
    snap_at s = snapshot(pi);
    sx_buf start = {0}, end = {0}, id = {0}, sbuf = {0};
    key_id(&start, TAG_LOCAL, req->index_id);
    sx_buf_append(&start, req->start.data, req->start.len);
    key_id(&end, TAG_LOCAL, req->index_id);
    if (req->end.len) {
        sx_buf_append(&end, req->end.data, req->end.len);
    } else {
        sx_buf tmp = {0};
        sx_buf_append(&tmp, end.data, end.len);
        sx_key_prefix_successor(tmp.data, tmp.len, &end);
        sx_buf_free(&tmp);
    }
    sx_iter *it = sx_store_iter_range(pi->store, s.snap, start.data, start.len, end.data, end.len);
    resp->hits = sx_arena_alloc(arena, (limit + 1) * sizeof(*resp->hits));
    sx_status st = SX_OK;
    for (; sx_iter_valid(it); sx_iter_next(it)) {
        if (resp->n_hits == limit) {
            resp->more = true;
            break;
        }
        size_t kl, vl;
        const uint8_t *k = sx_iter_key(it, &kl);
        const uint8_t *v = sx_iter_value(it, &vl);
        Shardex__Internal__V1__ScanHit *h = sx_arena_alloc(arena, sizeof(*h));
        shardex__internal__v1__scan_hit__init(h);
        Shardex__V1__Value *val = sx_arena_alloc(arena, sizeof(*val));
        id.len = 0;
        if (kl < 9 || !sx_ixkey_split_key(info.is_int, k + 9, kl - 9, val, &sbuf, &id) ||
            !read_u64(v, vl, 0, &h->version)) {
            st = sx_err_set(err, SX_DATA_LOSS,
                            "partition %u: a local index entry of index %" PRIu64 " is malformed",
                            pi->p, req->index_id);
            break;
        }
        if (val->kind_case == SHARDEX__V1__VALUE__KIND_S)
            val->s = sx_arena_strdup(arena, val->s);
        h->value = val;
        h->id = sx_arena_strdup(arena, (const char *)id.data);
        h->key.data = sx_arena_memdup(arena, k + 9, kl - 9);
        h->key.len = kl - 9;
        if (req->include_docs) {
            h->doc = doc_at(pi, s.snap, h->id, arena, err, &st);
            if (st != SX_OK)
                break;
        }
        resp->hits[resp->n_hits++] = h;
    }
    if (st == SX_OK && !resp->more)
        st = sx_iter_status(it, err);
    sx_iter_destroy(it);
    sx_store_release_snapshot(pi->store, s.snap);
    sx_buf_free(&start);
    sx_buf_free(&end);
    sx_buf_free(&id);
    sx_buf_free(&sbuf);
    return st;
}

sx_status sx_pindex_digest(sx_pindex *pi, const Shardex__Internal__V1__DigestRequest *req,
                           sx_arena *arena, Shardex__Internal__V1__DigestResponse *resp,
                           sx_err *err)
{
    snap_at s = snapshot(pi);
    resp->applied_offset = s.applied;
    /* Active as of the snapshot: its catalog row, read in the snapshot. */
    sx_buf prefix = {0}, row = {0};
    key_id(&prefix, TAG_IX, req->index_id);
    bool active = false;
    sx_status st = sx_store_get(pi->store, s.snap, prefix.data, prefix.len, &row, &active, err);
    resp->active = active;
    sx_buf_free(&row);
    if (st != SX_OK) {
        sx_store_release_snapshot(pi->store, s.snap);
        sx_buf_free(&prefix);
        return st;
    }
    key_id(&prefix, TAG_LOCAL, req->index_id);
    sx_iter *it = sx_store_iter_prefix(pi->store, s.snap, prefix.data, prefix.len);
    size_t cap = 0;
    for (; sx_iter_valid(it); sx_iter_next(it)) {
        size_t kl, vl;
        const uint8_t *k = sx_iter_key(it, &kl);
        const uint8_t *v = sx_iter_value(it, &vl);
        uint64_t version;
        if (!read_u64(v, vl, 0, &version)) {
            st = sx_err_set(err, SX_DATA_LOSS, "partition %u: a local index entry is malformed",
                            pi->p);
            break;
        }
        resp->digest = sx_ixkey_digest_add(resp->digest, k + 9, kl - 9, version);
        resp->count++;
        if (req->entries) {
            if (resp->n_entries == cap) {
                cap = cap ? 2 * cap : 1024;
                void *grown = sx_arena_alloc(arena, cap * sizeof(*resp->entries));
                if (resp->n_entries)
                    memcpy(grown, resp->entries, resp->n_entries * sizeof(*resp->entries));
                resp->entries = grown;
            }
            Shardex__Internal__V1__DigestEntry *e = sx_arena_alloc(arena, sizeof(*e));
            shardex__internal__v1__digest_entry__init(e);
            e->key.data = sx_arena_memdup(arena, k + 9, kl - 9);
            e->key.len = kl - 9;
            e->version = version;
            resp->entries[resp->n_entries++] = e;
        }
    }
    if (st == SX_OK)
        st = sx_iter_status(it, err);
    sx_iter_destroy(it);
    sx_store_release_snapshot(pi->store, s.snap);
    sx_buf_free(&prefix);
    return st;
}

/* -------------------------------------------------------------- outbox -- */

/* What sx_pindex_outbox_read takes: changes in (after, upto], whole offsets
 * once max are taken. */
typedef struct outbox_reading {
    uint64_t after, upto;
    size_t max;
    sx_arena *arena;
    Shardex__Internal__V1__Change **out;
    size_t n, cap;
    uint64_t last;    /* offset of the last change taken */
    uint64_t covered; /* set when the reading ends before upto */
    bool stop;
} outbox_reading;

/* Takes one change if rd wants it; false once rd->stop. */
static bool outbox_take(outbox_reading *rd, uint64_t off, bool remove, uint64_t version,
                        const uint8_t *key, size_t key_len)
{
    if (off <= rd->after)
        return true;
    if (off > rd->upto) {
        rd->stop = true;
        return false;
    }
    if (rd->n > 0 && rd->n >= rd->max && off != rd->last) {
        rd->covered = rd->last; /* whole offsets only */
        rd->stop = true;
        return false;
    }
    if (rd->n == rd->cap) {
        rd->cap = rd->cap ? 2 * rd->cap : 256;
        void *grown = sx_arena_alloc(rd->arena, rd->cap * sizeof(*rd->out));
        if (rd->n)
            memcpy(grown, rd->out, rd->n * sizeof(*rd->out));
        rd->out = grown;
    }
    Shardex__Internal__V1__Change *c = sx_arena_alloc(rd->arena, sizeof(*c));
    shardex__internal__v1__change__init(c);
    c->remove = remove;
    c->version = version;
    c->key.data = sx_arena_memdup(rd->arena, key, key_len);
    c->key.len = key_len;
    c->offset = off;
    rd->out[rd->n++] = c;
    rd->last = off;
    return true;
}

/* Takes what rd wants of one outbox record (see "outbox records"); false
 * when the record is malformed. */
static bool outbox_take_record(outbox_reading *rd, const uint8_t *k, size_t kl, const uint8_t *v,
                               size_t vl)
{
    uint64_t last, version;
    if (kl != 1 + 8 + 4 + 8 + 4 || !read_u64(k, kl, 13, &last) || vl < 1)
        return false;
    if (v[0] != OUTBOX_PACKED) { /* one change, written before packing */
        if (v[0] > 1 || !read_u64(v, vl, 1, &version))
            return false;
        outbox_take(rd, last, v[0] != 0, version, v + 9, vl - 9);
        return true;
    }
    sx_key_reader r;
    sx_key_reader_init(&r, v + 1, vl - 1);
    while (!sx_key_reader_done(&r)) {
        uint64_t off;
        uint8_t remove;
        uint32_t n;
        if (!sx_key_read_u64(&r, &off) || !sx_key_read_u8(&r, &remove) || remove > 1 ||
            !sx_key_read_u64(&r, &version) || !sx_key_read_u32(&r, &n) || n > r.len - r.pos ||
            off > last)
            return false;
        const uint8_t *key = r.p + r.pos;
        r.pos += n;
        if (!outbox_take(rd, off, remove != 0, version, key, n))
            return true;
    }
    return true;
}

sx_status sx_pindex_outbox_read(sx_pindex *pi, uint64_t id, uint32_t t, uint64_t after,
                                uint64_t upto, size_t max, sx_arena *arena,
                                Shardex__Internal__V1__Change ***out, size_t *n, uint64_t *covered,
                                sx_err *err)
{
    *n = 0;
    *out = NULL;
    *covered = upto;
    /* A trim deletes whole records only: changes at or below the floor may
     * remain in a record that ends above it, and are not read. */
    uint64_t floor = sx_pindex_outbox_floor(pi, id, t);
    if (after < floor)
        after = floor;
    if (upto <= after)
        return SX_OK;
    outbox_reading rd = {.after = after, .upto = upto, .max = max, .arena = arena, .covered = upto};
    /* From the first record ending after `after`, to the end of (id, t): a
     * record ending past upto may begin at or below it. */
    sx_buf start = {0};
    key_id_t(&start, TAG_OUT, id, t);
    sx_iter *it = sx_store_iter_prefix(pi->store, NULL, start.data, start.len);
    sx_key_append_u64(&start, after + 1);
    sx_iter_seek(it, start.data, start.len);
    sx_status st = SX_OK;
    for (; !rd.stop && sx_iter_valid(it); sx_iter_next(it)) {
        size_t kl, vl;
        const uint8_t *k = sx_iter_key(it, &kl);
        const uint8_t *v = sx_iter_value(it, &vl);
        if (!outbox_take_record(&rd, k, kl, v, vl)) {
            st =
                sx_err_set(err, SX_DATA_LOSS, "partition %u: an outbox record is malformed", pi->p);
            break;
        }
    }
    if (st == SX_OK)
        st = sx_iter_status(it, err);
    sx_iter_destroy(it);
    sx_buf_free(&start);
    if (st == SX_OK) {
        *out = rd.out;
        *n = rd.n;
        *covered = rd.covered;
    }
    return st;
}

uint64_t sx_pindex_outbox_floor(sx_pindex *pi, uint64_t id, uint32_t t)
{
    sx_buf k = {0}, v = {0};
    key_id_t(&k, TAG_FLOOR, id, t);
    bool found = false;
    uint64_t floor = 0;
    sx_err err = {0};
    if (sx_store_get(pi->store, NULL, k.data, k.len, &v, &found, &err) == SX_OK && found)
        read_u64(v.data, v.len, 0, &floor);
    sx_buf_free(&k);
    sx_buf_free(&v);
    return floor;
}

sx_status sx_pindex_outbox_trim(sx_pindex *pi, uint64_t id, uint32_t t, uint64_t upto, sx_err *err)
{
    sx_pindex_info info;
    if (!sx_pindex_find(pi, id, &info))
        return SX_OK; /* dropped meanwhile: its drop removed the outbox */
    sx_buf start = {0}, end = {0}, v = {0};
    key_id_t(&start, TAG_OUT, id, t);
    key_id_t(&end, TAG_OUT, id, t);
    sx_key_append_u64(&end, upto + 1);
    sx_batch *b = sx_batch_create();
    sx_iter *it = sx_store_iter_range(pi->store, NULL, start.data, start.len, end.data, end.len);
    for (; sx_iter_valid(it); sx_iter_next(it)) {
        size_t kl;
        const void *k = sx_iter_key(it, &kl);
        sx_batch_delete(b, k, kl);
    }
    sx_status st = sx_iter_status(it, err);
    sx_iter_destroy(it);
    if (st == SX_OK) {
        key_id_t(&start, TAG_FLOOR, id, t);
        sx_key_append_u64(&v, upto);
        sx_batch_put(b, start.data, start.len, v.data, v.len);
        st = sx_store_write(pi->store, b, SX_SYNC_NO, err);
    }
    sx_batch_destroy(b);
    sx_buf_free(&start);
    sx_buf_free(&end);
    sx_buf_free(&v);
    return st;
}

/* A rebuild in progress: the snapshot it reads (held until end), its applied
 * offset, and the last document id done. */
struct sx_pindex_rebuild_cursor {
    sx_pindex *pi;
    snap_at s;
    sx_ixkey_def def;
    Shardex__V1__IndexSpec *spec; /* owned: def borrows its strings */
    /* The splits applied at begin (owned; def.layout): a split marker is
     * applied with its batch, before the applied offset moves, so those of
     * the snapshot or one later, which routes alike for t (its parent keeps
     * its share until done). */
    Shardex__Internal__V1__IndexSplit **splits;
    size_t nsplits;
    /* The salts applied at begin (owned; def.salts), likewise: an entry
     * routes by its version, so a later salt does not move it. */
    Shardex__Internal__V1__IndexSalt **salts;
    size_t nsalts;
    uint32_t t;
    sx_buf after; /* the last document done; empty with !started */
    bool started, done;
};

/* One chunk being collected. */
typedef struct rebuild {
    sx_pindex_rebuild_cursor *rc;
    sx_arena *arena;
    Shardex__Internal__V1__Change **out;
    size_t n, cap, max;
    bool full; /* stopped at max: documents remain */
    sx_buf vals, key;
    sx_status st;
    sx_err *err;
} rebuild;

static bool rebuild_doc(void *arg, const char *id, size_t id_len, uint64_t version,
                        const uint8_t *doc, size_t len)
{
    rebuild *rb = arg;
    sx_pindex_rebuild_cursor *rc = rb->rc;
    if (rb->max && rb->n >= rb->max) {
        rb->full = true; /* this document starts the next chunk */
        return false;
    }
    Shardex__V1__Document *d = shardex__v1__document__unpack(&pb_allocator, len, doc);
    if (!d) {
        rb->st = sx_err_set(rb->err, SX_DATA_LOSS,
                            "partition %u: stored document %s does not "
                            "decode",
                            rc->pi->p, id);
        return false;
    }
    values nv;
    nv.n = sx_ixkey_doc_values(&rc->def, d, &rb->vals, nv.offs, nv.lens, SX_DOC_FIELDS_MAX,
                               &nv.mistyped);
    for (size_t k = 0; k < nv.n; k++) {
        const uint8_t *vk = rb->vals.data + nv.offs[k];
        uint32_t ts[2]; /* as the outbox routes (a split's parent included) */
        size_t nt = sx_ixkey_terms_of(&rc->def, vk, nv.lens[k], id, id_len, version, ts);
        if (ts[0] != rc->t && (nt < 2 || ts[1] != rc->t))
            continue;
        rb->key.len = 0;
        entry_key(&rb->key, vk, nv.lens[k], id, id_len);
        if (rb->n == rb->cap) {
            rb->cap = rb->cap ? 2 * rb->cap : 1024;
            void *grown = sx_arena_alloc(rb->arena, rb->cap * sizeof(*rb->out));
            if (rb->n)
                memcpy(grown, rb->out, rb->n * sizeof(*rb->out));
            rb->out = grown;
        }
        Shardex__Internal__V1__Change *c = sx_arena_alloc(rb->arena, sizeof(*c));
        shardex__internal__v1__change__init(c);
        c->key.data = sx_arena_memdup(rb->arena, rb->key.data, rb->key.len);
        c->key.len = rb->key.len;
        c->version = version;
        c->offset = rc->s.applied;
        rb->out[rb->n++] = c;
    }
    shardex__v1__document__free_unpacked(d, &pb_allocator);
    sx_buf_reset(&rc->after);
    sx_buf_append(&rc->after, id, id_len);
    rc->started = true;
    return true;
}

sx_status sx_pindex_rebuild_begin(sx_pindex *pi, uint64_t id, uint32_t t,
                                  sx_pindex_rebuild_cursor **out, uint64_t *at, sx_err *err)
{
    *out = NULL;
    sx_pindex_rebuild_cursor *rc = sx_calloc(1, sizeof(*rc));
    rc->pi = pi;
    rc->t = t;
    rc->s = snapshot(pi);
    pthread_mutex_lock(&pi->mu);
    ix *x = find_locked(pi, id);
    bool active = x && x->start <= rc->s.applied && x->def.global;
    if (active) {
        size_t len = shardex__v1__index_spec__get_packed_size(x->spec);
        uint8_t *packed = sx_malloc(len + 1);
        shardex__v1__index_spec__pack(x->spec, packed);
        rc->spec = shardex__v1__index_spec__unpack(&pb_allocator, len, packed);
        free(packed);
        sx_ixkey_def_from_spec(&rc->def, id, rc->spec);
        rc->nsplits = x->nsplits;
        rc->splits = sx_calloc(rc->nsplits + 1, sizeof(*rc->splits));
        for (size_t i = 0; i < rc->nsplits; i++)
            rc->splits[i] = split_dup(x->splits[i]);
        rc->def.layout = rc->splits;
        rc->def.nlayout = rc->nsplits;
        rc->nsalts = x->nsalts;
        rc->salts = sx_calloc(rc->nsalts + 1, sizeof(*rc->salts));
        for (size_t i = 0; i < rc->nsalts; i++)
            rc->salts[i] = salt_dup(x->salts[i]);
        rc->def.salts = rc->salts;
        rc->def.nsalts = rc->nsalts;
    }
    pthread_mutex_unlock(&pi->mu);
    if (!active) {
        sx_pindex_rebuild_end(rc);
        return sx_err_set(err, SX_FAILED_PRECONDITION,
                          "partition %u: global index %" PRIu64 " is not started here", pi->p, id);
    }
    if (at)
        *at = rc->s.applied;
    *out = rc;
    return SX_OK;
}

sx_status sx_pindex_rebuild_next(sx_pindex_rebuild_cursor *rc, size_t max_entries, sx_arena *arena,
                                 Shardex__Internal__V1__Change ***out, size_t *n, bool *last,
                                 sx_err *err)
{
    *out = NULL;
    *n = 0;
    *last = true;
    if (rc->done)
        return SX_OK;
    rebuild rb = {.rc = rc, .arena = arena, .max = max_entries, .err = err};
    sx_status st = sx_plog_scan_docs_after(rc->pi->log, rc->s.snap,
                                           rc->started ? (const char *)rc->after.data : NULL,
                                           rc->after.len, rebuild_doc, &rb, err);
    if (st == SX_OK)
        st = rb.st;
    if (st == SX_OK) {
        *out = rb.out;
        *n = rb.n;
        *last = rc->done = !rb.full;
    }
    sx_buf_free(&rb.vals);
    sx_buf_free(&rb.key);
    return st;
}

uint64_t sx_pindex_rebuild_at(const sx_pindex_rebuild_cursor *rc)
{
    return rc->s.applied;
}

void sx_pindex_rebuild_end(sx_pindex_rebuild_cursor *rc)
{
    if (!rc)
        return;
    if (rc->spec)
        shardex__v1__index_spec__free_unpacked(rc->spec, &pb_allocator);
    for (size_t i = 0; i < rc->nsplits; i++)
        shardex__internal__v1__index_split__free_unpacked(rc->splits[i], &pb_allocator);
    free(rc->splits);
    for (size_t i = 0; i < rc->nsalts; i++)
        shardex__internal__v1__index_salt__free_unpacked(rc->salts[i], &pb_allocator);
    free(rc->salts);
    sx_store_release_snapshot(rc->pi->store, rc->s.snap);
    sx_buf_free(&rc->after);
    free(rc);
}

sx_status sx_pindex_rebuild(sx_pindex *pi, uint64_t id, uint32_t t, sx_arena *arena,
                            Shardex__Internal__V1__Change ***out, size_t *n, uint64_t *at,
                            sx_err *err)
{
    *out = NULL;
    *n = 0;
    sx_pindex_rebuild_cursor *rc = NULL;
    sx_status st = sx_pindex_rebuild_begin(pi, id, t, &rc, at, err);
    bool last;
    if (st == SX_OK)
        st = sx_pindex_rebuild_next(rc, 0, arena, out, n, &last, err);
    sx_pindex_rebuild_end(rc);
    return st;
}
