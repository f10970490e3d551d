/* replay.c: see replay.h. A replay keeps each alive document as the LogOp
 * that put it (unpacked), deleted ids as tombstones (for
 * sx_replay_touched), and the active indexes in start order. */
#include "replay.h"

#include "hmap.h"
#include "keys.h"

#include "shardex/internal/v1/replication.pb-c.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ================================================================ replay == */

typedef struct doc_rec {
    uint64_t version;                 /* the put that wrote it; 0: deleted */
    uint64_t touched;                 /* the last put or delete of the id */
    Shardex__Internal__V1__LogOp *op; /* owned; op->put is the document; NULL: deleted */
} doc_rec;

typedef struct active_ix {
    Shardex__Internal__V1__LogOp *op; /* owned: its index_start */
    sx_ixkey_def def;                 /* borrows op's strings, and splits */
    /* index_split markers applied, in seq order (owned; def.layout). */
    Shardex__Internal__V1__IndexSplit **splits;
    size_t nsplits;
    /* index_salt markers applied, in seq order, from = their offset (owned;
     * def.salts). */
    Shardex__Internal__V1__IndexSalt **salts;
    size_t nsalts;
} active_ix;

static void active_free(active_ix *a)
{
    shardex__internal__v1__log_op__free_unpacked(a->op, NULL);
    for (size_t i = 0; i < a->nsplits; i++)
        shardex__internal__v1__index_split__free_unpacked(a->splits[i], NULL);
    free(a->splits);
    for (size_t i = 0; i < a->nsalts; i++)
        shardex__internal__v1__index_salt__free_unpacked(a->salts[i], NULL);
    free(a->salts);
}

/* An index_salt marker at offset, by the apply path's rules (worker/pindex.c,
 * observe_salt): the next seq is added with from = offset; anything else is
 * a no-op. Takes sa (from lop) when it keeps it: true. */
static bool salt_applies(const sx_ixkey_def *d, size_t nsalts,
                         const Shardex__Internal__V1__IndexSalt *sa)
{
    if (!d->global || sa->seq != nsalts + 1 || !sa->value || sa->ways < 2 ||
        sa->n_terms != sa->ways)
        return false;
    for (size_t i = 0; i < sa->n_terms; i++)
        if (sa->terms[i] >= sx_ixkey_term_count(d))
            return false;
    return true;
}

static bool apply_salt(active_ix *a, Shardex__Internal__V1__IndexSalt *sa, uint64_t offset)
{
    if (!salt_applies(&a->def, a->nsalts, sa))
        return false;
    sa->from = offset;
    a->salts = sx_realloc(a->salts, (a->nsalts + 1) * sizeof(*a->salts));
    a->salts[a->nsalts++] = sa;
    a->def.salts = a->salts;
    a->def.nsalts = a->nsalts;
    return true;
}

/* An index_split marker, by the apply path's rules (worker/pindex.c,
 * observe_split): the next seq (not done) is added and marks the one before
 * done; done marks an applied split done; anything else is a no-op. Takes
 * sp (from lop) when it keeps it: true. */
static bool apply_split(active_ix *a, Shardex__Internal__V1__IndexSplit *sp)
{
    if (!a->def.global || !a->def.range || !sp->at)
        return false;
    if (sp->seq >= 1 && sp->seq <= a->nsplits) {
        if (sp->done)
            a->splits[sp->seq - 1]->done = true;
        return false;
    }
    if (sp->seq != a->nsplits + 1 || sp->done || sp->lo != sx_ixkey_term_count(&a->def) ||
        sp->hi != sp->lo + 1)
        return false;
    if (a->nsplits)
        a->splits[a->nsplits - 1]->done = true;
    a->splits = sx_realloc(a->splits, (a->nsplits + 1) * sizeof(*a->splits));
    a->splits[a->nsplits++] = sp;
    a->def.layout = a->splits;
    a->def.nlayout = a->nsplits;
    return true;
}

static bool same_salt(const Shardex__Internal__V1__IndexSalt *a,
                      const Shardex__Internal__V1__IndexSalt *b, sx_buf *ba, sx_buf *bb)
{
    ba->len = bb->len = 0;
    sx_buf_reserve(ba, shardex__internal__v1__index_salt__get_packed_size(a) + 1);
    sx_buf_reserve(bb, shardex__internal__v1__index_salt__get_packed_size(b) + 1);
    ba->len = shardex__internal__v1__index_salt__pack(a, ba->data);
    bb->len = shardex__internal__v1__index_salt__pack(b, bb->data);
    return ba->len == bb->len && memcmp(ba->data, bb->data, ba->len) == 0;
}

struct sx_replay {
    uint32_t partition;
    uint64_t pos;  /* last offset applied */
    sx_hmap docs;  /* id -> doc_rec; deleted ids stay (op NULL) to answer touched */
    size_t alive;  /* doc_recs with an op */
    active_ix *ix; /* active indexes in start order */
    size_t nix, ixcap;
};

static void log_op_free(Shardex__Internal__V1__LogOp *op)
{
    if (op)
        shardex__internal__v1__log_op__free_unpacked(op, NULL);
}

static void doc_rec_free(void *p)
{
    doc_rec *d = p;
    if (d)
        log_op_free(d->op);
    free(d);
}

sx_replay *sx_replay_create(uint32_t partition)
{
    sx_replay *r = sx_calloc(1, sizeof(*r));
    r->partition = partition;
    return r;
}

void sx_replay_destroy(sx_replay *r)
{
    if (!r)
        return;
    sx_hmap_free(&r->docs, doc_rec_free);
    for (size_t i = 0; i < r->nix; i++)
        active_free(&r->ix[i]);
    free(r->ix);
    free(r);
}

static size_t find_ix(const sx_replay *r, uint64_t id)
{
    for (size_t i = 0; i < r->nix; i++)
        if (r->ix[i].def.id == id)
            return i;
    return SIZE_MAX;
}

/* The record of id, created (as never seen) if missing. */
static doc_rec *doc_slot(sx_replay *r, const char *id)
{
    void **slot = sx_hmap_upsert(&r->docs, id, strlen(id), NULL);
    if (!*slot)
        *slot = sx_calloc(1, sizeof(doc_rec));
    return *slot;
}

sx_status sx_replay_apply(sx_replay *r, uint64_t offset, const uint8_t *op, size_t len, sx_err *err)
{
    if (offset != r->pos + 1)
        return sx_err_set(err, SX_INVALID_ARGUMENT,
                          "partition %u: offset %" PRIu64 " given at position %" PRIu64,
                          r->partition, offset, r->pos);
    Shardex__Internal__V1__LogOp *lop = shardex__internal__v1__log_op__unpack(NULL, len, op);
    if (!lop)
        return sx_err_set(err, SX_DATA_LOSS, "partition %u: log entry %" PRIu64 " does not decode",
                          r->partition, offset);
    bool keep = false; /* lop now belongs to the replay */
    switch (lop->op_case) {
    case SHARDEX__INTERNAL__V1__LOG_OP__OP_PUT: {
        doc_rec *d = doc_slot(r, lop->put->id ? lop->put->id : "");
        if (d->op)
            log_op_free(d->op);
        else
            r->alive++;
        d->op = lop;
        d->version = d->touched = offset;
        keep = true;
        break;
    }
    case SHARDEX__INTERNAL__V1__LOG_OP__OP_DELETE: {
        doc_rec *d = doc_slot(r, lop->delete_ ? lop->delete_ : "");
        if (d->op) {
            log_op_free(d->op);
            d->op = NULL;
            d->version = 0;
            r->alive--;
        }
        d->touched = offset;
        break;
    }
    case SHARDEX__INTERNAL__V1__LOG_OP__OP_INDEX_START: {
        const Shardex__Internal__V1__IndexStart *s = lop->index_start;
        if (!s->spec)
            goto fail; /* the apply path refuses it too */
        if (find_ix(r, s->index_id) != SIZE_MAX)
            break;
        if (r->nix == r->ixcap) {
            r->ixcap = r->ixcap ? 2 * r->ixcap : 4;
            r->ix = sx_realloc(r->ix, r->ixcap * sizeof(*r->ix));
        }
        active_ix *a = &r->ix[r->nix++];
        memset(a, 0, sizeof(*a));
        a->op = lop;
        sx_ixkey_def_from_spec(&a->def, s->index_id, s->spec);
        keep = true;
        break;
    }
    case SHARDEX__INTERNAL__V1__LOG_OP__OP_INDEX_DROP: {
        size_t i = find_ix(r, lop->index_drop);
        if (i == SIZE_MAX)
            break;
        active_free(&r->ix[i]);
        memmove(&r->ix[i], &r->ix[i + 1], (r->nix - i - 1) * sizeof(*r->ix));
        r->nix--;
        break;
    }
    case SHARDEX__INTERNAL__V1__LOG_OP__OP_INDEX_SPLIT: {
        size_t i = find_ix(r, lop->index_split->index_id);
        if (i != SIZE_MAX && apply_split(&r->ix[i], lop->index_split)) {
            lop->index_split = NULL; /* the split is the index's now */
            lop->op_case = SHARDEX__INTERNAL__V1__LOG_OP__OP__NOT_SET;
        }
        break;
    }
    case SHARDEX__INTERNAL__V1__LOG_OP__OP_INDEX_SALT: {
        size_t i = find_ix(r, lop->index_salt->index_id);
        if (i != SIZE_MAX && apply_salt(&r->ix[i], lop->index_salt, offset)) {
            lop->index_salt = NULL; /* the salt is the index's now */
            lop->op_case = SHARDEX__INTERNAL__V1__LOG_OP__OP__NOT_SET;
        }
        break;
    }
    default:
        goto fail;
    }
    if (!keep)
        log_op_free(lop);
    r->pos = offset;
    return SX_OK;
fail:
    log_op_free(lop);
    return sx_err_set(err, SX_DATA_LOSS, "partition %u: log entry %" PRIu64 " holds no operation",
                      r->partition, offset);
}

uint64_t sx_replay_position(const sx_replay *r)
{
    return r->pos;
}

const sx_ixkey_def *sx_replay_index(const sx_replay *r, uint64_t index_id,
                                    const Shardex__V1__IndexSpec **spec)
{
    size_t i = find_ix(r, index_id);
    if (i == SIZE_MAX)
        return NULL;
    if (spec)
        *spec = r->ix[i].op->index_start->spec;
    return &r->ix[i].def;
}

bool sx_replay_doc_entries(const sx_ixkey_def *d, const char *id, size_t n,
                           const Shardex__V1__Document *doc, uint64_t version,
                           sx_replay_entry_cb fn, void *arg)
{
    bool termed = d->global && d->term_partitions > 0;
    sx_buf vals = {0}, key = {0};
    size_t cap = doc->n_fields ? doc->n_fields : 1;
    size_t *offs = sx_malloc(cap * sizeof(*offs)), *lens = sx_malloc(cap * sizeof(*lens));
    bool mis = false;
    size_t nv = sx_ixkey_doc_values(d, doc, &vals, offs, lens, cap, &mis);
    for (size_t i = 0; i < nv; i++) {
        const uint8_t *v = vals.data + offs[i];
        sx_buf_append(&key, v, lens[i]);
        sx_key_append_str(&key, id, n);
        uint32_t ts[2] = {0, 0};
        size_t nt = termed ? sx_ixkey_terms_of(d, v, lens[i], id, n, version, ts) : 1;
        if (fn)
            fn(arg, key.data, key.len, ts[0], version);
        if (fn && nt == 2) /* during a split, also its parent's */
            fn(arg, key.data, key.len, ts[1] | SX_REPLAY_ALSO, version);
        key.len = 0;
    }
    free(offs);
    free(lens);
    sx_buf_free(&vals);
    sx_buf_free(&key);
    return mis;
}

typedef struct count_acc {
    sx_replay_entry_cb fn;
    void *arg;
    uint64_t n;
} count_acc;

static void count_cb(void *arg, const uint8_t *key, size_t len, uint32_t term, uint64_t version)
{
    count_acc *a = arg;
    a->n += (term & SX_REPLAY_ALSO) == 0; /* entries, not their second term partition */
    if (a->fn)
        a->fn(a->arg, key, len, term, version);
}

bool sx_replay_each_entry(const sx_replay *r, uint64_t index_id, sx_replay_entry_cb fn, void *arg,
                          uint64_t *count, uint64_t *mistyped)
{
    size_t ai = find_ix(r, index_id);
    count_acc acc = {fn, arg, 0};
    uint64_t bad = 0;
    if (ai != SIZE_MAX) {
        size_t pos = 0, idlen;
        const char *id;
        void *val;
        while (sx_hmap_next(&r->docs, &pos, &id, &idlen, &val)) {
            const doc_rec *rec = val;
            if (rec->op)
                bad += sx_replay_doc_entries(&r->ix[ai].def, id, idlen, rec->op->put, rec->version,
                                             count_cb, &acc);
        }
    }
    if (count)
        *count = acc.n;
    if (mistyped)
        *mistyped = bad;
    return ai != SIZE_MAX;
}

typedef struct digest_acc {
    int64_t term; /* < 0: every term */
    uint64_t digest, count;
} digest_acc;

static void digest_cb(void *arg, const uint8_t *key, size_t len, uint32_t term, uint64_t version)
{
    digest_acc *a = arg;
    if (a->term < 0 ? (term & SX_REPLAY_ALSO) != 0 : (int64_t)(term & ~SX_REPLAY_ALSO) != a->term)
        return;
    a->digest = sx_ixkey_digest_add(a->digest, key, len, version);
    a->count++;
}

bool sx_replay_digest(const sx_replay *r, uint64_t index_id, int64_t term, uint64_t *digest,
                      uint64_t *count)
{
    digest_acc a = {.term = term};
    bool active = sx_replay_each_entry(r, index_id, digest_cb, &a, NULL, NULL);
    *digest = a.digest;
    *count = a.count;
    return active;
}

size_t sx_replay_salts_check(const sx_replay *r, Shardex__Internal__V1__IndexSalt *const *rows,
                             size_t nrows, sx_replay_salt_diff_cb fn, void *arg)
{
    size_t nd = 0;
    char msg[256];
    sx_buf ba = {0}, bb = {0};
    for (size_t i = 0; i < r->nix; i++) {
        const active_ix *a = &r->ix[i];
        for (size_t k = 0; k < a->nsalts; k++) {
            const Shardex__Internal__V1__IndexSalt *want = a->salts[k], *got = NULL;
            for (size_t j = 0; j < nrows && !got; j++)
                if (rows[j] && rows[j]->index_id == want->index_id && rows[j]->seq == want->seq)
                    got = rows[j];
            if (got && same_salt(want, got, &ba, &bb))
                continue;
            if (got)
                snprintf(msg, sizeof(msg),
                         "salt seq %u of index %" PRIu64 ": the row says applied at %" PRIu64
                         ", the log at %" PRIu64 "%s",
                         want->seq, want->index_id, got->from, want->from,
                         got->from == want->from ? " (other fields differ)" : "");
            else
                snprintf(msg, sizeof(msg),
                         "salt seq %u of index %" PRIu64 " applied at %" PRIu64 " has no salt row",
                         want->seq, want->index_id, want->from);
            nd++;
            if (fn)
                fn(arg, msg);
        }
    }
    for (size_t j = 0; j < nrows; j++) {
        const Shardex__Internal__V1__IndexSalt *got = rows[j];
        if (!got)
            continue;
        size_t i = find_ix(r, got->index_id);
        bool known = i != SIZE_MAX && got->seq >= 1 && got->seq <= r->ix[i].nsalts;
        if (known)
            continue;
        snprintf(msg, sizeof(msg),
                 "salt row seq %u of index %" PRIu64 " (at %" PRIu64 ") that the log never applied",
                 got->seq, got->index_id, got->from);
        nd++;
        if (fn)
            fn(arg, msg);
    }
    sx_buf_free(&ba);
    sx_buf_free(&bb);
    return nd;
}

size_t sx_replay_doc_count(const sx_replay *r)
{
    return r->alive;
}

bool sx_replay_doc(const sx_replay *r, const char *id, size_t n, uint64_t *version,
                   const Shardex__V1__Document **doc)
{
    void *v;
    if (!sx_hmap_get(&r->docs, id, n, &v) || !((doc_rec *)v)->op)
        return false;
    const doc_rec *d = v;
    if (version)
        *version = d->version;
    if (doc)
        *doc = d->op->put;
    return true;
}

uint64_t sx_replay_touched(const sx_replay *r, const char *id, size_t n)
{
    void *v;
    return sx_hmap_get(&r->docs, id, n, &v) ? ((doc_rec *)v)->touched : 0;
}

/* ========================================================= lists, diffs == */

const char *sx_replay_kind_name(sx_replay_kind kind)
{
    switch (kind) {
    case SX_REPLAY_MISSING:
        return "MISSING";
    case SX_REPLAY_EXTRA:
        return "EXTRA";
    case SX_REPLAY_WRONG_VERSION:
        return "WRONG-VERSION";
    case SX_REPLAY_WRONG_CONTENT:
        return "WRONG-CONTENT";
    }
    return "UNKNOWN";
}

void sx_replay_entries_add(sx_replay_entries *l, const uint8_t *key, size_t len, uint64_t version,
                           int32_t partition)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->v = sx_realloc(l->v, l->cap * sizeof(*l->v));
    }
    l->v[l->n++] = (sx_replay_entry){
        .key = sx_arena_memdup(&l->keys, key, len),
        .len = len,
        .version = version,
        .partition = partition,
    };
}

static int key_cmp(const sx_replay_entry *x, const sx_replay_entry *y)
{
    size_t n = x->len < y->len ? x->len : y->len;
    int c = n ? memcmp(x->key, y->key, n) : 0;
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

static int entry_cmp(const void *a, const void *b)
{
    const sx_replay_entry *x = a, *y = b;
    int c = key_cmp(x, y);
    return c ? c : (x->version > y->version) - (x->version < y->version);
}

void sx_replay_entries_sort(sx_replay_entries *l)
{
    if (l->n > 1)
        qsort(l->v, l->n, sizeof(*l->v), entry_cmp);
}

uint64_t sx_replay_entries_digest(const sx_replay_entries *l)
{
    uint64_t d = 0;
    for (size_t i = 0; i < l->n; i++)
        d = sx_ixkey_digest_add(d, l->v[i].key, l->v[i].len, l->v[i].version);
    return d;
}

void sx_replay_entries_free(sx_replay_entries *l)
{
    free(l->v);
    sx_arena_free(&l->keys);
    *l = (sx_replay_entries){0};
}

size_t sx_replay_entries_diff(const sx_replay_entries *expected, const sx_replay_entries *served,
                              sx_replay_diff_cb fn, void *arg)
{
    size_t i = 0, j = 0, n = 0;
    while (i < expected->n || j < served->n) {
        const sx_replay_entry *e = i < expected->n ? &expected->v[i] : NULL;
        const sx_replay_entry *s = j < served->n ? &served->v[j] : NULL;
        int c = !e ? 1 : !s ? -1 : key_cmp(e, s);
        if (c < 0) {
            if (fn)
                fn(arg, SX_REPLAY_MISSING, e, NULL);
            i++;
            n++;
        } else if (c > 0) {
            if (fn)
                fn(arg, SX_REPLAY_EXTRA, NULL, s);
            j++;
            n++;
        } else {
            if (e->version != s->version) {
                if (fn)
                    fn(arg, SX_REPLAY_WRONG_VERSION, e, s);
                n++;
            }
            i++;
            j++;
        }
    }
    return n;
}

static bool same_doc(const Shardex__V1__Document *a, const Shardex__V1__Document *b, sx_buf *ba,
                     sx_buf *bb)
{
    size_t na = shardex__v1__document__get_packed_size(a);
    size_t nb = shardex__v1__document__get_packed_size(b);
    if (na != nb)
        return false;
    sx_buf_reset(ba);
    sx_buf_reset(bb);
    sx_buf_reserve(ba, na);
    sx_buf_reserve(bb, nb);
    shardex__v1__document__pack(a, ba->data);
    shardex__v1__document__pack(b, bb->data);
    return na == 0 || memcmp(ba->data, bb->data, na) == 0;
}

size_t sx_replay_docs_diff(const sx_replay *r, Shardex__Internal__V1__StoredDoc *const *docs,
                           size_t n, sx_replay_doc_diff_cb fn, void *arg)
{
    sx_hmap seen = {0};
    sx_buf ba = {0}, bb = {0};
    size_t nd = 0;
    for (size_t i = 0; i < n; i++) {
        const Shardex__Internal__V1__StoredDoc *sd = docs[i];
        const Shardex__V1__Document *got = sd ? sd->doc : NULL;
        const char *id = got && got->id ? got->id : "";
        uint64_t sv = sd ? sd->version : 0, ev = 0;
        bool first = false;
        sx_hmap_upsert(&seen, id, strlen(id), &first);
        const Shardex__V1__Document *want = NULL;
        sx_replay_kind kind;
        if (!got || !first || !sx_replay_doc(r, id, strlen(id), &ev, &want))
            kind = SX_REPLAY_EXTRA;
        else if (ev != sv)
            kind = SX_REPLAY_WRONG_VERSION;
        else if (!same_doc(want, got, &ba, &bb))
            kind = SX_REPLAY_WRONG_CONTENT;
        else
            continue;
        if (fn)
            fn(arg, kind, id, kind == SX_REPLAY_EXTRA ? 0 : ev, sv);
        nd++;
    }
    size_t pos = 0;
    const char *id;
    size_t idlen;
    void *val;
    while (sx_hmap_next(&r->docs, &pos, &id, &idlen, &val)) {
        const doc_rec *d = val;
        if (!d->op || sx_hmap_get(&seen, id, idlen, NULL))
            continue;
        if (fn)
            fn(arg, SX_REPLAY_MISSING, id, d->version, 0);
        nd++;
    }
    sx_buf_free(&ba);
    sx_buf_free(&bb);
    sx_hmap_free(&seen, NULL);
    return nd;
}

/* ========================================================= retained log == */

/* The offsets of one id's ops in the retained log, ascending. */
typedef struct id_ops {
    uint64_t *v;
    size_t n, cap;
} id_ops;

struct sx_rlog {
    uint32_t partition;
    uint64_t start;
    Shardex__Internal__V1__LogOp **ops; /* ops[o - start], owned */
    size_t n, cap;
    sx_hmap ids;    /* id -> id_ops */
    uint64_t *ixev; /* offsets of index starts and drops, ascending */
    size_t nixev, ixcap;
    uint64_t *spev; /* offsets of split markers, ascending */
    size_t nspev, spcap;
    uint64_t *saev; /* offsets of salt markers, ascending (each marker's from = its offset) */
    size_t nsaev, sacap;
};

static void id_ops_free(void *p)
{
    id_ops *o = p;
    if (o)
        free(o->v);
    free(o);
}

sx_rlog *sx_rlog_create(uint32_t partition, uint64_t start)
{
    sx_rlog *l = sx_calloc(1, sizeof(*l));
    l->partition = partition;
    l->start = start ? start : 1;
    return l;
}

void sx_rlog_destroy(sx_rlog *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++)
        log_op_free(l->ops[i]);
    free(l->ops);
    sx_hmap_free(&l->ids, id_ops_free);
    free(l->ixev);
    free(l->spev);
    free(l->saev);
    free(l);
}

uint64_t sx_rlog_start(const sx_rlog *l)
{
    return l->start;
}

uint64_t sx_rlog_end(const sx_rlog *l)
{
    return l->start + l->n - 1;
}

static const char *op_id(const Shardex__Internal__V1__LogOp *op)
{
    const char *id =
        op->op_case == SHARDEX__INTERNAL__V1__LOG_OP__OP_PUT ? op->put->id : op->delete_;
    return id ? id : "";
}

sx_status sx_rlog_append(sx_rlog *l, uint64_t offset, const uint8_t *op, size_t len, sx_err *err)
{
    if (offset != sx_rlog_end(l) + 1)
        return sx_err_set(err, SX_INVALID_ARGUMENT,
                          "partition %u: offset %" PRIu64 " given at position %" PRIu64,
                          l->partition, offset, sx_rlog_end(l));
    Shardex__Internal__V1__LogOp *lop = shardex__internal__v1__log_op__unpack(NULL, len, op);
    if (!lop)
        return sx_err_set(err, SX_DATA_LOSS, "partition %u: log entry %" PRIu64 " does not decode",
                          l->partition, offset);
    switch (lop->op_case) {
    case SHARDEX__INTERNAL__V1__LOG_OP__OP_PUT:
    case SHARDEX__INTERNAL__V1__LOG_OP__OP_DELETE: {
        const char *id = op_id(lop);
        void **slot = sx_hmap_upsert(&l->ids, id, strlen(id), NULL);
        if (!*slot)
            *slot = sx_calloc(1, sizeof(id_ops));
        id_ops *o = *slot;
        if (o->n == o->cap) {
            o->cap = o->cap ? 2 * o->cap : 2;
            o->v = sx_realloc(o->v, o->cap * sizeof(*o->v));
        }
        o->v[o->n++] = offset;
        break;
    }
    case SHARDEX__INTERNAL__V1__LOG_OP__OP_INDEX_SPLIT:
        /* Evidence of where a split took effect (sx_rlog_split_applied). */
        if (!lop->index_split)
            goto fail;
        if (l->nspev == l->spcap) {
            l->spcap = l->spcap ? 2 * l->spcap : 4;
            l->spev = sx_realloc(l->spev, l->spcap * sizeof(*l->spev));
        }
        l->spev[l->nspev++] = offset;
        break;
    case SHARDEX__INTERNAL__V1__LOG_OP__OP_INDEX_SALT:
        /* Continues the replicas' salt rows past their position
         * (sx_rlog_salts_at), and checks them (sx_rlog_salts_check). */
        if (!lop->index_salt)
            goto fail;
        lop->index_salt->from = offset;
        if (l->nsaev == l->sacap) {
            l->sacap = l->sacap ? 2 * l->sacap : 4;
            l->saev = sx_realloc(l->saev, l->sacap * sizeof(*l->saev));
        }
        l->saev[l->nsaev++] = offset;
        break;
    case SHARDEX__INTERNAL__V1__LOG_OP__OP_INDEX_START:
    case SHARDEX__INTERNAL__V1__LOG_OP__OP_INDEX_DROP:
        if (lop->op_case == SHARDEX__INTERNAL__V1__LOG_OP__OP_INDEX_START &&
            !lop->index_start->spec)
            goto fail;
        if (l->nixev == l->ixcap) {
            l->ixcap = l->ixcap ? 2 * l->ixcap : 4;
            l->ixev = sx_realloc(l->ixev, l->ixcap * sizeof(*l->ixev));
        }
        l->ixev[l->nixev++] = offset;
        break;
    default:
        goto fail;
    }
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->ops = sx_realloc(l->ops, l->cap * sizeof(*l->ops));
    }
    l->ops[l->n++] = lop;
    return SX_OK;
fail:
    log_op_free(lop);
    return sx_err_set(err, SX_DATA_LOSS, "partition %u: log entry %" PRIu64 " holds no operation",
                      l->partition, offset);
}

/* The offset of id's last op at or below at; 0 when none. */
static uint64_t last_op(const sx_rlog *l, const char *id, size_t n, uint64_t at)
{
    void *v;
    if (!sx_hmap_get(&l->ids, id, n, &v))
        return 0;
    const id_ops *o = v;
    size_t lo = 0, hi = o->n; /* the first offset above at */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (o->v[mid] <= at)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo ? o->v[lo - 1] : 0;
}

sx_rlog_state sx_rlog_doc(const sx_rlog *l, const char *id, size_t n, uint64_t at,
                          uint64_t *version, const Shardex__V1__Document **doc)
{
    uint64_t o = last_op(l, id, n, at);
    if (!o)
        return SX_RLOG_UNTOUCHED;
    const Shardex__Internal__V1__LogOp *op = l->ops[o - l->start];
    if (op->op_case != SHARDEX__INTERNAL__V1__LOG_OP__OP_PUT)
        return SX_RLOG_DELETED;
    if (version)
        *version = o;
    if (doc)
        *doc = op->put;
    return SX_RLOG_PUT;
}

bool sx_rlog_changed(const sx_rlog *l, const char *id, size_t n, uint64_t lo, uint64_t hi)
{
    if (lo > hi) {
        uint64_t t = lo;
        lo = hi;
        hi = t;
    }
    return last_op(l, id, n, hi) > lo;
}

int sx_rlog_index(const sx_rlog *l, uint64_t index_id, uint64_t at, sx_ixkey_def *def,
                  const Shardex__V1__IndexSpec **spec)
{
    for (size_t i = l->nixev; i-- > 0;) {
        if (l->ixev[i] > at)
            continue;
        const Shardex__Internal__V1__LogOp *op = l->ops[l->ixev[i] - l->start];
        if (op->op_case == SHARDEX__INTERNAL__V1__LOG_OP__OP_INDEX_DROP) {
            if (op->index_drop == index_id)
                return 0;
            continue;
        }
        if (op->index_start->index_id != index_id)
            continue;
        /* A second start of an active index changes nothing: the first one
         * in the retained log still decides, unless a drop came between. */
        const Shardex__Internal__V1__LogOp *first = op;
        for (size_t k = i; k-- > 0;) {
            const Shardex__Internal__V1__LogOp *e = l->ops[l->ixev[k] - l->start];
            if (e->op_case == SHARDEX__INTERNAL__V1__LOG_OP__OP_INDEX_DROP &&
                e->index_drop == index_id)
                break;
            if (e->op_case == SHARDEX__INTERNAL__V1__LOG_OP__OP_INDEX_START &&
                e->index_start->index_id == index_id)
                first = e;
        }
        if (def)
            sx_ixkey_def_from_spec(def, index_id, first->index_start->spec);
        if (spec)
            *spec = first->index_start->spec;
        return 1;
    }
    return -1;
}

int sx_rlog_split_applied(const sx_rlog *l, uint64_t index_id, uint32_t seq, uint64_t at,
                          uint64_t bound)
{
    uint64_t first = 0; /* the first not-done marker of seq held */
    uint64_t later = 0; /* the first marker saying seq was applied before it */
    for (size_t i = 0; i < l->nspev && !first; i++) {
        const Shardex__Internal__V1__IndexSplit *sp = l->ops[l->spev[i] - l->start]->index_split;
        if (sp->index_id != index_id)
            continue;
        if (sp->seq == seq && !sp->done)
            first = l->spev[i];
        else if (!later && (sp->seq > seq || (sp->seq == seq && sp->done)))
            later = l->spev[i];
    }
    if ((first && first <= at) || (later && later <= at))
        return 1;
    /* A marker of an earlier split held before any of seq: seq was not
     * applied there, so its first marker is `first`, or past the end: not
     * applied at `at` either. */
    uint64_t lim = first && later ? (first < later ? first : later) : first ? first : later;
    for (size_t i = 0; i < l->nspev; i++) {
        uint64_t o = l->spev[i];
        const Shardex__Internal__V1__IndexSplit *sp = l->ops[o - l->start]->index_split;
        if (lim && o >= lim)
            break;
        if (sp->index_id == index_id && sp->seq < seq)
            return 0;
    }
    /* The first marker is at or below bound and none is held in
     * [start, bound]: it is below start (`first` above bound is a repeat). */
    if (bound && bound <= sx_rlog_end(l) && (!first || bound < first))
        return 1;
    return -1;
}

bool sx_rlog_split_done(const sx_rlog *l, uint64_t index_id, uint32_t seq, uint64_t at)
{
    for (size_t i = 0; i < l->nspev && l->spev[i] <= at; i++) {
        const Shardex__Internal__V1__IndexSplit *sp = l->ops[l->spev[i] - l->start]->index_split;
        if (sp->index_id == index_id && (sp->seq > seq || (sp->seq == seq && sp->done)))
            return true;
    }
    return false;
}

static const Shardex__Internal__V1__IndexSalt *held_salt(const sx_rlog *l, size_t i)
{
    return l->ops[l->saev[i] - l->start]->index_salt;
}

/* Rows of index id with from <= upto, in the order given: n, or SIZE_MAX
 * when they are not seq 1, 2, ... (out may be NULL). */
static size_t rows_of(Shardex__Internal__V1__IndexSalt *const *rows, size_t nrows, uint64_t id,
                      uint64_t upto, Shardex__Internal__V1__IndexSalt **out)
{
    size_t n = 0;
    for (size_t i = 0; i < nrows; i++) {
        if (!rows[i] || rows[i]->index_id != id || rows[i]->from > upto)
            continue;
        if (rows[i]->seq != n + 1)
            return SIZE_MAX;
        if (out)
            out[n] = rows[i];
        n++;
    }
    return n;
}

size_t sx_rlog_salts_at(const sx_rlog *l, const sx_ixkey_def *d,
                        Shardex__Internal__V1__IndexSalt *const *rows, size_t nrows, uint64_t a,
                        uint64_t w, Shardex__Internal__V1__IndexSalt ***out)
{
    *out = NULL;
    size_t n = rows_of(rows, nrows, d->id, a < w ? a : w, NULL);
    if (n == SIZE_MAX)
        return SIZE_MAX;
    Shardex__Internal__V1__IndexSalt **v = sx_malloc((n + l->nsaev + 1) * sizeof(*v));
    rows_of(rows, nrows, d->id, a < w ? a : w, v);
    for (size_t i = 0; i < l->nsaev && l->saev[i] <= w; i++) {
        const Shardex__Internal__V1__IndexSalt *sa = held_salt(l, i);
        if (l->saev[i] > a && sa->index_id == d->id && salt_applies(d, n, sa))
            v[n++] = (Shardex__Internal__V1__IndexSalt *)sa;
    }
    *out = v;
    return n;
}

/* One difference of sx_rlog_salts_check. */
static void salt_note(size_t *nd, sx_replay_salt_diff_cb fn, void *arg, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void salt_note(size_t *nd, sx_replay_salt_diff_cb fn, void *arg, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    (*nd)++;
    if (fn)
        fn(arg, msg);
}

/* The salts of one index taken so far while checking (sx_rlog_salts_check). */
typedef struct salt_count {
    uint64_t id;
    size_t n; /* SIZE_MAX: its rows are malformed, not followed */
} salt_count;

static salt_count *count_of(salt_count **v, size_t *n, uint64_t id,
                            Shardex__Internal__V1__IndexSalt *const *rows, size_t nrows,
                            uint64_t below)
{
    for (size_t i = 0; i < *n; i++)
        if ((*v)[i].id == id)
            return &(*v)[i];
    *v = sx_realloc(*v, (*n + 1) * sizeof(**v));
    (*v)[*n] = (salt_count){id, rows_of(rows, nrows, id, below, NULL)};
    return &(*v)[(*n)++];
}

size_t sx_rlog_salts_check(const sx_rlog *l, Shardex__Internal__V1__IndexSalt *const *rows,
                           size_t nrows, uint64_t a, sx_replay_salt_diff_cb fn, void *arg)
{
    size_t nd = 0, ncount = 0;
    salt_count *count = NULL;
    bool *matched = sx_calloc(nrows + 1, sizeof(*matched));
    sx_buf ba = {0}, bb = {0};
    for (size_t i = 0; i < nrows; i++) {
        const Shardex__Internal__V1__IndexSalt *row = rows[i];
        bool first = true; /* of its index: a malformed set is told once */
        for (size_t k = 0; row && k < i && first; k++)
            first = !rows[k] || rows[k]->index_id != row->index_id;
        if (row && first && rows_of(rows, nrows, row->index_id, UINT64_MAX, NULL) == SIZE_MAX)
            salt_note(&nd, fn, arg,
                      "salt rows of index %" PRIu64 " are not seq 1, 2, ... (seq %u at %" PRIu64
                      ")",
                      row->index_id, row->seq, row->from);
        else if (row && row->from > a)
            salt_note(&nd, fn, arg,
                      "salt seq %u of index %" PRIu64 " applied at %" PRIu64
                      ", past the replica's position %" PRIu64,
                      row->seq, row->index_id, row->from, a);
    }
    /* The rows below start as they are (only other replicas can say), then
     * the markers held up to a by the apply rule: each one taken must be
     * exactly a row. */
    for (size_t i = 0; i < l->nsaev && l->saev[i] <= a; i++) {
        uint64_t o = l->saev[i];
        const Shardex__Internal__V1__IndexSalt *sa = held_salt(l, i);
        salt_count *c = count_of(&count, &ncount, sa->index_id, rows, nrows, l->start - 1);
        sx_ixkey_def d;
        int act = sx_rlog_index(l, sa->index_id, o, &d, NULL);
        if (c->n == SIZE_MAX || sa->seq != c->n + 1 || act == 0 || (act == 1 && !d.global) ||
            sx_rlog_index(l, sa->index_id, a, NULL, NULL) == 0) /* dropped: rows gone */
            continue;
        c->n++;
        size_t j = 0;
        while (j < nrows &&
               !(rows[j] && rows[j]->index_id == sa->index_id && rows[j]->seq == sa->seq))
            j++;
        if (j == nrows) {
            salt_note(&nd, fn, arg,
                      "the log's salt marker seq %u of index %" PRIu64 " at %" PRIu64
                      " (the next of its index there) has no salt row",
                      sa->seq, sa->index_id, o);
            continue;
        }
        matched[j] = true;
        if (!same_salt(sa, rows[j], &ba, &bb))
            salt_note(&nd, fn, arg,
                      "salt seq %u of index %" PRIu64 ": the row says applied at %" PRIu64
                      ", the log at %" PRIu64 "%s",
                      sa->seq, sa->index_id, rows[j]->from, o,
                      rows[j]->from == o ? " (other fields differ)" : "");
    }
    for (size_t i = 0; i < nrows; i++) {
        const Shardex__Internal__V1__IndexSalt *row = rows[i];
        if (!row || matched[i] || row->from < l->start || row->from > a)
            continue;
        salt_note(&nd, fn, arg,
                  "salt seq %u of index %" PRIu64 " applied at %" PRIu64
                  ": the log takes no such marker there",
                  row->seq, row->index_id, row->from);
    }
    free(matched);
    free(count);
    sx_buf_free(&ba);
    sx_buf_free(&bb);
    return nd;
}

static const char *stored_id(const Shardex__Internal__V1__StoredDoc *sd)
{
    return sd && sd->doc && sd->doc->id ? sd->doc->id : "";
}

/* The served documents by id (the first of each id): id -> StoredDoc. */
static void index_stored(sx_hmap *m, Shardex__Internal__V1__StoredDoc *const *docs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!docs[i] || !docs[i]->doc)
            continue;
        const char *id = stored_id(docs[i]);
        bool created;
        void **slot = sx_hmap_upsert(m, id, strlen(id), &created);
        if (created)
            *slot = docs[i];
    }
}

size_t sx_rlog_docs_at(const sx_rlog *l, Shardex__Internal__V1__StoredDoc *const *docs, size_t n,
                       uint64_t a, uint64_t w, sx_rlog_doc_cb fn, void *arg,
                       sx_rlog_unknown_cb unknown, void *uarg)
{
    size_t nu = 0;
    sx_hmap served = {0};
    index_stored(&served, docs, n);
    /* Every id the log names at w, then the served ones it does not. */
    size_t pos = 0, idlen;
    const char *id;
    void *v;
    while (sx_hmap_next(&l->ids, &pos, &id, &idlen, &v)) {
        uint64_t ver;
        const Shardex__V1__Document *doc;
        sx_rlog_state st = sx_rlog_doc(l, id, idlen, w, &ver, &doc);
        if (st == SX_RLOG_PUT) {
            if (fn)
                fn(arg, id, idlen, ver, doc);
        } else if (st == SX_RLOG_UNTOUCHED && sx_rlog_changed(l, id, idlen, a, w)) {
            nu++;
            if (unknown)
                unknown(uarg, id, idlen);
        } else if (st == SX_RLOG_UNTOUCHED && sx_hmap_get(&served, id, idlen, &v)) {
            const Shardex__Internal__V1__StoredDoc *sd = v;
            if (fn)
                fn(arg, id, idlen, sd->version, sd->doc);
        }
    }
    pos = 0;
    while (sx_hmap_next(&served, &pos, &id, &idlen, &v)) {
        if (sx_hmap_get(&l->ids, id, idlen, NULL))
            continue;
        const Shardex__Internal__V1__StoredDoc *sd = v;
        if (fn)
            fn(arg, id, idlen, sd->version, sd->doc);
    }
    sx_hmap_free(&served, NULL);
    return nu;
}

size_t sx_rlog_docs_diff(const sx_rlog *l, Shardex__Internal__V1__StoredDoc *const *docs, size_t n,
                         uint64_t a, sx_replay_doc_diff_cb fn, void *arg, uint64_t *carried)
{
    sx_hmap seen = {0};
    sx_buf ba = {0}, bb = {0};
    size_t nd = 0;
    uint64_t nc = 0;
    for (size_t i = 0; i < n; i++) {
        const Shardex__Internal__V1__StoredDoc *sd = docs[i];
        const Shardex__V1__Document *got = sd ? sd->doc : NULL;
        const char *id = stored_id(sd);
        uint64_t sv = sd ? sd->version : 0, ev = 0;
        bool first = false;
        sx_hmap_upsert(&seen, id, strlen(id), &first);
        const Shardex__V1__Document *want = NULL;
        sx_rlog_state st = got ? sx_rlog_doc(l, id, strlen(id), a, &ev, &want) : SX_RLOG_DELETED;
        sx_replay_kind kind;
        if (!first || st == SX_RLOG_DELETED) {
            kind = SX_REPLAY_EXTRA;
        } else if (st == SX_RLOG_UNTOUCHED) {
            if (sv < l->start) {
                nc++;
                continue;
            }
            kind = SX_REPLAY_WRONG_VERSION; /* a version the log does not give id */
            ev = 0;
        } else if (ev != sv) {
            kind = SX_REPLAY_WRONG_VERSION;
        } else if (!same_doc(want, got, &ba, &bb)) {
            kind = SX_REPLAY_WRONG_CONTENT;
        } else {
            continue;
        }
        if (fn)
            fn(arg, kind, id, kind == SX_REPLAY_EXTRA ? 0 : ev, sv);
        nd++;
    }
    size_t pos = 0, idlen;
    const char *id;
    uint64_t ev;
    while (sx_hmap_next(&l->ids, &pos, &id, &idlen, NULL)) {
        if (sx_hmap_get(&seen, id, idlen, NULL) ||
            sx_rlog_doc(l, id, idlen, a, &ev, NULL) != SX_RLOG_PUT)
            continue;
        if (fn)
            fn(arg, SX_REPLAY_MISSING, id, ev, 0);
        nd++;
    }
    sx_buf_free(&ba);
    sx_buf_free(&bb);
    sx_hmap_free(&seen, NULL);
    if (carried)
        *carried = nc;
    return nd;
}

size_t sx_rlog_docs_cross(const sx_rlog *l, Shardex__Internal__V1__StoredDoc *const *ref,
                          size_t nref, uint64_t aref, Shardex__Internal__V1__StoredDoc *const *docs,
                          size_t n, uint64_t a, sx_replay_doc_diff_cb fn, void *arg)
{
    sx_hmap rm = {0}, dm = {0};
    sx_buf ba = {0}, bb = {0};
    index_stored(&rm, ref, nref);
    index_stored(&dm, docs, n);
    size_t nd = 0, pos = 0, idlen;
    const char *id;
    void *v, *w;
    while (sx_hmap_next(&dm, &pos, &id, &idlen, &v)) {
        if (sx_rlog_changed(l, id, idlen, aref, a))
            continue;
        const Shardex__Internal__V1__StoredDoc *sd = v;
        sx_replay_kind kind;
        uint64_t ev = 0;
        if (!sx_hmap_get(&rm, id, idlen, &w)) {
            kind = SX_REPLAY_EXTRA;
        } else if ((ev = ((const Shardex__Internal__V1__StoredDoc *)w)->version) != sd->version) {
            kind = SX_REPLAY_WRONG_VERSION;
        } else if (!same_doc(((const Shardex__Internal__V1__StoredDoc *)w)->doc, sd->doc, &ba,
                             &bb)) {
            kind = SX_REPLAY_WRONG_CONTENT;
        } else {
            continue;
        }
        if (fn)
            fn(arg, kind, id, ev, sd->version);
        nd++;
    }
    pos = 0;
    while (sx_hmap_next(&rm, &pos, &id, &idlen, &v)) {
        if (sx_hmap_get(&dm, id, idlen, NULL) || sx_rlog_changed(l, id, idlen, aref, a))
            continue;
        if (fn)
            fn(arg, SX_REPLAY_MISSING, id, ((const Shardex__Internal__V1__StoredDoc *)v)->version,
               0);
        nd++;
    }
    sx_buf_free(&ba);
    sx_buf_free(&bb);
    sx_hmap_free(&rm, NULL);
    sx_hmap_free(&dm, NULL);
    return nd;
}
