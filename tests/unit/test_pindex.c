/* test_pindex.c: unit tests for pindex.h on a real plog in a temp directory.
 *
 * Every test appends packed LogOps (puts, deletes, index_start and index_drop
 * markers) to a plog opened with the pindex as its observer and applies them.
 * Each operation also goes into a small model kept here (the documents, and
 * for every index the outbox it must hold, restated from pindex.h), and the
 * checks compare the local scan, the digest, the outbox, its floor, rebuilds
 * and the catalog against it. Keys and term partitions in the model are built
 * with common/keys.h and common/hash.h directly, not with common/ixkey.
 * The randomized test takes its seed from SHARDEX_TEST_SEED, else the clock,
 * and prints it (seed=N).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the four above, which it needs */

#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fixture.h"
#include "harness.h"
#include "hash.h"
#include "ixkey.h"
#include "keys.h"
#include "pindex.h"
#include "plog.h"
#include "store.h"

#include "shardex/internal/v1/index.pb-c.h"
#include "shardex/internal/v1/replication.pb-c.h"
#include "shardex/v1/shardex.pb-c.h"

static unsigned long long seed;
static uint64_t rng_state;

/* splitmix64 (fixture.h) on this file's stream. */
static uint64_t rnd(void)
{
    return sx_fx_rnd(&rng_state);
}

static uint64_t rnd_below(uint64_t n)
{
    return n ? rnd() % n : 0;
}

/* ------------------------------------------------------------- the model -- */

enum {
    KEYMAX = 64,   /* an entry key in these tests */
    MAXIDS = 512,  /* documents */
    MAXF = 8,      /* fields of one document */
    MAXIX = 6,     /* indexes */
    MAXT = 8,      /* term partitions of one index */
    MAXENT = 1024, /* entries of one index */
};

typedef struct mfield {
    char name[12];
    bool is_int;
    int64_t i;
    char s[16];
} mfield;

typedef struct mdoc {
    char id[12];
    bool present;
    uint64_t version;
    size_t nf;
    mfield f[MAXF];
} mdoc;

/* One index entry (or, with t, the term partition it maps to). */
typedef struct ment {
    uint8_t key[KEYMAX];
    size_t len;
    uint64_t version;
    uint32_t t;
    char id[12];
    mfield val;
} ment;

typedef struct mchange {
    uint64_t offset;
    bool remove;
    uint64_t version;
    uint32_t t;
    uint8_t key[KEYMAX];
    size_t len;
} mchange;

typedef struct mix {
    uint64_t id;
    char name[12], field[12];
    bool is_int, local, global;
    uint32_t m;
    bool active;
    uint64_t start;
    mchange *out; /* the outbox it must hold, in offset order */
    size_t nout, capout;
    uint64_t floor[MAXT];
} mix;

typedef struct model {
    mdoc docs[MAXIDS];
    size_t ndocs;
    mix ix[MAXIX];
    size_t nix;
    uint64_t offset; /* the last offset appended */
} model;

static int key_cmp(const uint8_t *a, size_t la, const uint8_t *b, size_t lb)
{
    int c = memcmp(a, b, la < lb ? la : lb);
    return c ? c : (la > lb) - (la < lb);
}

static int ment_cmp(const void *a, const void *b)
{
    const ment *x = a, *y = b;
    return key_cmp(x->key, x->len, y->key, y->len);
}

static int mchange_cmp(const void *a, const void *b)
{
    const mchange *x = a, *y = b;
    if (x->offset != y->offset)
        return x->offset < y->offset ? -1 : 1;
    return key_cmp(x->key, x->len, y->key, y->len);
}

static uint32_t m_term(const mix *x, const mfield *v)
{
    if (!x->global || x->m == 0)
        return 0;
    return v->is_int ? sx_term_partition_of_int(x->name, v->i, x->m)
                     : sx_term_partition_of_str(x->name, v->s, strlen(v->s), x->m);
}

static void enc_value(sx_buf *b, const mfield *v)
{
    if (v->is_int)
        sx_key_append_i64(b, v->i);
    else
        sx_key_append_str(b, v->s, strlen(v->s));
}

/* The distinct entries doc d gives index x, sorted; *mistyped as pindex.h. */
static size_t m_doc_entries(const mix *x, const mdoc *d, ment *out, bool *mistyped)
{
    size_t n = 0;
    bool mis = false;
    for (size_t i = 0; d->present && i < d->nf; i++) {
        const mfield *f = &d->f[i];
        if (strcmp(f->name, x->field) != 0)
            continue;
        if (f->is_int != x->is_int) {
            mis = true;
            continue;
        }
        sx_buf b = {0};
        enc_value(&b, f);
        sx_key_append_str(&b, d->id, strlen(d->id));
        assert_true(b.len <= KEYMAX);
        ment *e = &out[n];
        memset(e, 0, sizeof(*e));
        memcpy(e->key, b.data, b.len);
        e->len = b.len;
        e->version = d->version;
        e->t = m_term(x, f);
        snprintf(e->id, sizeof(e->id), "%s", d->id);
        e->val = *f;
        sx_buf_free(&b);
        bool dup = false;
        for (size_t j = 0; j < n; j++)
            dup = dup || ment_cmp(&out[j], e) == 0;
        if (!dup)
            n++;
    }
    qsort(out, n, sizeof(*out), ment_cmp);
    if (mistyped)
        *mistyped = mis;
    return n;
}

/* Every entry of x over the present documents, sorted by key. */
static size_t m_index(const model *m, const mix *x, ment *out)
{
    size_t n = 0;
    for (size_t i = 0; i < m->ndocs; i++) {
        n += m_doc_entries(x, &m->docs[i], out + n, NULL);
        assert_true(n + MAXF <= MAXENT);
    }
    qsort(out, n, sizeof(*out), ment_cmp);
    return n;
}

static uint64_t m_mistyped(const model *m, const mix *x)
{
    uint64_t n = 0;
    ment tmp[MAXF];
    for (size_t i = 0; i < m->ndocs; i++) {
        bool mis = false;
        m_doc_entries(x, &m->docs[i], tmp, &mis);
        n += mis;
    }
    return n;
}

static void m_emit(mix *x, uint64_t offset, bool remove, const ment *e, uint64_t version)
{
    if (!x->global)
        return;
    if (x->nout == x->capout) {
        x->capout = x->capout ? 2 * x->capout : 64;
        x->out = realloc(x->out, x->capout * sizeof(*x->out));
        assert_non_null(x->out);
    }
    mchange *c = &x->out[x->nout++];
    memset(c, 0, sizeof(*c));
    c->offset = offset;
    c->remove = remove;
    c->version = version;
    c->t = e->t;
    memcpy(c->key, e->key, e->len);
    c->len = e->len;
}

static mdoc *m_doc(model *m, const char *id)
{
    for (size_t i = 0; i < m->ndocs; i++)
        if (strcmp(m->docs[i].id, id) == 0)
            return &m->docs[i];
    assert_true(m->ndocs < MAXIDS);
    mdoc *d = &m->docs[m->ndocs++];
    memset(d, 0, sizeof(*d));
    snprintf(d->id, sizeof(d->id), "%s", id);
    return d;
}

static mix *m_ix(model *m, uint64_t id)
{
    for (size_t i = 0; i < m->nix; i++)
        if (m->ix[i].id == id)
            return &m->ix[i];
    return NULL;
}

/* A put (nd->present) or a delete (!nd->present) of nd->id at the next offset. */
static void m_write(model *m, const mdoc *nd)
{
    uint64_t o = ++m->offset;
    mdoc *d = m_doc(m, nd->id);
    for (size_t i = 0; i < m->nix; i++) {
        mix *x = &m->ix[i];
        if (!x->active)
            continue;
        ment old[MAXF], nw[MAXF];
        size_t no = m_doc_entries(x, d, old, NULL);
        size_t nn = m_doc_entries(x, nd, nw, NULL);
        for (size_t k = 0; k < no; k++) {
            bool kept = false;
            for (size_t j = 0; j < nn; j++)
                kept = kept || ment_cmp(&old[k], &nw[j]) == 0;
            if (!kept)
                m_emit(x, o, true, &old[k], o);
        }
        for (size_t j = 0; j < nn; j++)
            m_emit(x, o, false, &nw[j], o);
    }
    *d = *nd;
    d->version = nd->present ? o : 0;
}

static void m_start(model *m, const mix *spec)
{
    uint64_t o = ++m->offset;
    mix *x = m_ix(m, spec->id);
    if (x && x->active)
        return; /* a repeated marker is a no-op */
    if (!x) {
        assert_true(m->nix < MAXIX);
        x = &m->ix[m->nix++];
    }
    free(x->out);
    *x = *spec;
    x->out = NULL;
    x->nout = x->capout = 0;
    memset(x->floor, 0, sizeof(x->floor));
    x->active = true;
    x->start = o;
    /* The backfill writes no outbox: a global index's outboxes start at
     * the marker (their floor), and its term partitions are rebuilt. */
    for (uint32_t t = 0; x->global && t < x->m; t++)
        x->floor[t] = o;
}

static void m_drop(model *m, uint64_t id)
{
    ++m->offset;
    mix *x = m_ix(m, id);
    if (!x || !x->active)
        return;
    x->active = false;
    x->nout = 0;
    memset(x->floor, 0, sizeof(x->floor));
}

static void m_trim(model *m, uint64_t id, uint32_t t, uint64_t upto)
{
    mix *x = m_ix(m, id);
    assert_non_null(x);
    size_t k = 0;
    for (size_t i = 0; i < x->nout; i++)
        if (!(x->out[i].t == t && x->out[i].offset <= upto))
            x->out[k++] = x->out[i];
    x->nout = k;
    x->floor[t] = upto;
}

static void m_free(model *m)
{
    for (size_t i = 0; i < m->nix; i++)
        free(m->ix[i].out);
}

/* A document from "name=str name:int ..." (an empty str after '=' is ""). */
static mdoc D(const char *id, const char *fields)
{
    mdoc d;
    memset(&d, 0, sizeof(d));
    snprintf(d.id, sizeof(d.id), "%s", id);
    d.present = true;
    const char *p = fields;
    while (*p) {
        while (*p == ' ')
            p++;
        if (!*p)
            break;
        assert_true(d.nf < MAXF);
        mfield *f = &d.f[d.nf++];
        size_t n = strcspn(p, "=:");
        assert_true(p[n] && n < sizeof(f->name));
        memcpy(f->name, p, n);
        f->is_int = p[n] == ':';
        p += n + 1;
        size_t vl = strcspn(p, " ");
        char tmp[32];
        assert_true(vl < sizeof(tmp));
        memcpy(tmp, p, vl);
        tmp[vl] = '\0';
        if (f->is_int) {
            f->i = strtoll(tmp, NULL, 10);
        } else {
            assert_true(vl < sizeof(f->s));
            memcpy(f->s, tmp, vl + 1);
        }
        p += vl;
    }
    return d;
}

static mix SPEC(uint64_t id, const char *name, const char *field, bool is_int, bool local,
                bool global, uint32_t m)
{
    mix x;
    memset(&x, 0, sizeof(x));
    x.id = id;
    snprintf(x.name, sizeof(x.name), "%s", name);
    snprintf(x.field, sizeof(x.field), "%s", field);
    x.is_int = is_int;
    x.local = local;
    x.global = global;
    x.m = m;
    return x;
}

/* --------------------------------------------------------------- fixture -- */

typedef struct fixture {
    char dir[PATH_MAX];    /* the mkdtemp directory */
    char db[PATH_MAX + 8]; /* dir/p: the plog's store */
    sx_plog *p;
    sx_pindex *ix;
    model m;
} fixture;

/* Opens the partition as the worker does: the plog with the indexes as the
 * observer of its applies, then the indexes' catalog from its store. */
static sx_status open_both(fixture *f, sx_err *err)
{
    f->ix = sx_pindex_create();
    sx_plog_opts po = {.observer = sx_pindex_observer(f->ix)};
    sx_status st = sx_plog_open(f->db, 3, &po, &f->p, err);
    return st == SX_OK ? sx_pindex_load(f->ix, f->p, err) : st;
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    if (!f)
        return -1;
    sx_h_tmpdir(f->dir, sizeof(f->dir), "pindex");
    snprintf(f->db, sizeof(f->db), "%s/p", f->dir);
    sx_err err = {0};
    if (open_both(f, &err) != SX_OK) {
        fprintf(stderr, "open: %s\n", err.msg);
        sx_plog_close(f->p);
        sx_pindex_close(f->ix);
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    sx_plog_close(f->p);
    sx_pindex_close(f->ix);
    m_free(&f->m);
    sx_h_tmpdir_done(f->dir);
    free(f);
    return 0;
}

/* Closes both and opens them again from disk. */
static void reopen(fixture *f)
{
    sx_err err = {0};
    sx_plog_close(f->p);
    sx_pindex_close(f->ix);
    f->ix = NULL;
    f->p = NULL;
    assert_int_equal(open_both(f, &err), SX_OK);
}

static void append_op(fixture *f, const Shardex__Internal__V1__LogOp *op)
{
    sx_buf b = {0};
    sx_buf_reserve(&b, shardex__internal__v1__log_op__get_packed_size(op) + 1);
    b.len = shardex__internal__v1__log_op__pack(op, b.data);
    sx_err err = {0};
    sx_log_entry e = {.epoch = 1, .op = b.data, .op_len = b.len};
    assert_int_equal(sx_plog_append(f->p, &e, 1, false, &err), SX_OK);
    sx_buf_free(&b);
    assert_int_equal(sx_plog_leo(f->p), f->m.offset);
}

static void do_put(fixture *f, mdoc d)
{
    Shardex__V1__Value vals[MAXF];
    Shardex__V1__Field flds[MAXF];
    Shardex__V1__Field *fp[MAXF];
    for (size_t i = 0; i < d.nf; i++) {
        shardex__v1__value__init(&vals[i]);
        if (d.f[i].is_int) {
            vals[i].kind_case = SHARDEX__V1__VALUE__KIND_I;
            vals[i].i = d.f[i].i;
        } else {
            vals[i].kind_case = SHARDEX__V1__VALUE__KIND_S;
            vals[i].s = d.f[i].s;
        }
        shardex__v1__field__init(&flds[i]);
        flds[i].name = d.f[i].name;
        flds[i].value = &vals[i];
        fp[i] = &flds[i];
    }
    Shardex__V1__Document doc = SHARDEX__V1__DOCUMENT__INIT;
    doc.id = d.id;
    doc.n_fields = d.nf;
    doc.fields = fp;
    Shardex__Internal__V1__LogOp op = SHARDEX__INTERNAL__V1__LOG_OP__INIT;
    op.op_case = SHARDEX__INTERNAL__V1__LOG_OP__OP_PUT;
    op.put = &doc;
    m_write(&f->m, &d);
    append_op(f, &op);
}

static void do_del(fixture *f, const char *id)
{
    Shardex__Internal__V1__LogOp op = SHARDEX__INTERNAL__V1__LOG_OP__INIT;
    op.op_case = SHARDEX__INTERNAL__V1__LOG_OP__OP_DELETE;
    op.delete_ = (char *)id;
    mdoc d;
    memset(&d, 0, sizeof(d));
    snprintf(d.id, sizeof(d.id), "%s", id);
    m_write(&f->m, &d);
    append_op(f, &op);
}

static void do_start(fixture *f, mix spec)
{
    Shardex__V1__IndexSpec s = SHARDEX__V1__INDEX_SPEC__INIT;
    s.name = spec.name;
    s.field = spec.field;
    s.type = spec.is_int ? SHARDEX__V1__VALUE_TYPE__VALUE_TYPE_INT
                         : SHARDEX__V1__VALUE_TYPE__VALUE_TYPE_STRING;
    s.local = spec.local;
    s.global = spec.global;
    s.term_partitions = spec.m;
    Shardex__Internal__V1__IndexStart is = SHARDEX__INTERNAL__V1__INDEX_START__INIT;
    is.index_id = spec.id;
    is.spec = &s;
    Shardex__Internal__V1__LogOp op = SHARDEX__INTERNAL__V1__LOG_OP__INIT;
    op.op_case = SHARDEX__INTERNAL__V1__LOG_OP__OP_INDEX_START;
    op.index_start = &is;
    m_start(&f->m, &spec);
    append_op(f, &op);
}

static void do_drop(fixture *f, uint64_t id)
{
    Shardex__Internal__V1__LogOp op = SHARDEX__INTERNAL__V1__LOG_OP__INIT;
    op.op_case = SHARDEX__INTERNAL__V1__LOG_OP__OP_INDEX_DROP;
    op.index_drop = id;
    m_drop(&f->m, id);
    append_op(f, &op);
}

/* Backfills in chunks of `chunk` documents until none is running. */
static void backfill_all(fixture *f, size_t chunk)
{
    sx_err err = {0};
    for (;;) {
        sx_pindex_step step;
        sx_status st = sx_pindex_backfill_step(f->ix, chunk, &step, &err);
        if (st != SX_OK)
            fail_msg("backfill step: %s", err.msg);
        if (!step.index_id)
            break;
    }
}

/* Applies, then backfills what the applied markers started (as the worker's
 * backfill thread would), so that the model's "indexed at the marker" holds. */
static void apply_to(fixture *f, uint64_t commit)
{
    sx_err err = {0};
    uint64_t applied = sx_plog_applied(f->p);
    for (;;) {
        /* Up to the next index marker first: the model puts every document
         * of the marker's time at its offset, which a backfill that ran
         * after later writes would skip (test_backfill_interleaved). */
        uint64_t upto = commit;
        for (size_t i = 0; i < f->m.nix; i++)
            if (f->m.ix[i].start > applied && f->m.ix[i].start < upto)
                upto = f->m.ix[i].start;
        sx_status st = sx_plog_apply(f->p, upto, &applied, &err);
        if (st != SX_OK)
            fail_msg("apply to %" PRIu64 ": %s", upto, err.msg);
        backfill_all(f, 3);
        if (upto == commit || applied < upto)
            break;
    }
    assert_int_equal(applied, commit < f->m.offset ? commit : f->m.offset);
}

static void apply_all(fixture *f)
{
    apply_to(f, f->m.offset);
}

/* -------------------------------------------------------------- checks -- */

/* sx_pindex_list into a caller's array: copies up to cap, returns how many. */
static size_t list_into(sx_pindex *ix, sx_pindex_info *out, size_t cap)
{
    size_t n = 0;
    sx_pindex_info *all = sx_pindex_list(ix, &n);
    if (out)
        memcpy(out, all, (n < cap ? n : cap) * sizeof(*out));
    free(all);
    return n;
}

/* The catalog: exactly the model's active indexes, with their start,
 * mistyped count and spec. */
static void check_catalog(fixture *f)
{
    sx_pindex_info list[MAXIX];
    size_t n = list_into(f->ix, list, MAXIX);
    size_t active = 0;
    for (size_t i = 0; i < f->m.nix; i++) {
        const mix *x = &f->m.ix[i];
        sx_pindex_info info;
        memset(&info, 0, sizeof(info));
        bool found = sx_pindex_find(f->ix, x->id, &info);
        if (found != x->active)
            fail_msg("index %" PRIu64 ": found=%d, model active=%d", x->id, found, x->active);
        if (!x->active)
            continue;
        active++;
        assert_int_equal(info.id, x->id);
        assert_int_equal(info.start, x->start);
        assert_int_equal(info.mistyped, m_mistyped(&f->m, x));
        assert_int_equal(info.local, x->local);
        assert_int_equal(info.global, x->global);
        assert_int_equal(info.is_int, x->is_int);
        assert_int_equal(info.term_partitions, x->m);
        bool listed = false;
        for (size_t j = 0; j < n && j < MAXIX; j++)
            listed = listed || list[j].id == x->id;
        assert_true(listed);
    }
    assert_int_equal(n, active);
}

static void scan_req(Shardex__Internal__V1__ScanRequest *req, uint64_t id, uint32_t limit)
{
    shardex__internal__v1__scan_request__init(req);
    req->index_id = id;
    req->limit = limit;
}

/* The local scan, in pages of `page` (0: one page of every entry), equals
 * the model's entries in key order; NOT_FOUND when it holds none here. */
static void check_local(fixture *f, const mix *x, uint32_t page)
{
    sx_err err = {0};
    sx_arena a = {0};
    Shardex__Internal__V1__ScanRequest req;
    Shardex__Internal__V1__ScanResponse resp = SHARDEX__INTERNAL__V1__SCAN_RESPONSE__INIT;
    scan_req(&req, x->id, page ? page : MAXENT + 1);
    if (!x->active || !x->local) {
        assert_int_equal(sx_pindex_scan(f->ix, &req, &a, &resp, &err), SX_NOT_FOUND);
        sx_arena_free(&a);
        return;
    }
    ment *want = calloc(MAXENT, sizeof(*want));
    assert_non_null(want);
    size_t nw = m_index(&f->m, x, want);
    size_t got = 0;
    sx_buf start = {0};
    for (;;) {
        shardex__internal__v1__scan_response__init(&resp);
        req.start.data = start.data;
        req.start.len = start.len;
        sx_status st = sx_pindex_scan(f->ix, &req, &a, &resp, &err);
        if (st != SX_OK)
            fail_msg("scan index %" PRIu64 ": %s", x->id, err.msg);
        assert_true(resp.n_hits <= req.limit);
        for (size_t i = 0; i < resp.n_hits; i++, got++) {
            const Shardex__Internal__V1__ScanHit *h = resp.hits[i];
            if (got >= nw)
                fail_msg("index %" PRIu64 ": more entries than the model's %zu", x->id, nw);
            const ment *w = &want[got];
            if (key_cmp(h->key.data, h->key.len, w->key, w->len) != 0)
                fail_msg("index %" PRIu64 " entry %zu: key differs (got id %s, want id %s)", x->id,
                         got, h->id, w->id);
            assert_int_equal(h->version, w->version);
            assert_string_equal(h->id, w->id);
            assert_non_null(h->value);
            if (x->is_int) {
                assert_int_equal(h->value->kind_case, SHARDEX__V1__VALUE__KIND_I);
                assert_int_equal(h->value->i, w->val.i);
            } else {
                assert_int_equal(h->value->kind_case, SHARDEX__V1__VALUE__KIND_S);
                assert_string_equal(h->value->s, w->val.s);
            }
        }
        if (!resp.more)
            break;
        assert_int_equal(resp.n_hits, req.limit);
        /* The next page starts right after the last key (keys are
         * self-delimiting, so key ++ 0x00 is its successor). */
        const Shardex__Internal__V1__ScanHit *last = resp.hits[resp.n_hits - 1];
        sx_buf_reset(&start);
        sx_buf_append(&start, last->key.data, last->key.len);
        sx_buf_push(&start, 0);
    }
    if (got != nw)
        fail_msg("index %" PRIu64 ": %zu local entries, the model has %zu", x->id, got, nw);
    sx_buf_free(&start);
    sx_arena_free(&a);
    free(want);
}

/* The digest (with and without entries) equals one computed over the
 * model's entries. */
static void check_digest(fixture *f, const mix *x)
{
    sx_err err = {0};
    sx_arena a = {0};
    ment *want = calloc(MAXENT, sizeof(*want));
    assert_non_null(want);
    size_t nw = x->active && x->local ? m_index(&f->m, x, want) : 0;
    uint64_t dg = 0;
    for (size_t i = 0; i < nw; i++)
        dg = sx_ixkey_digest_add(dg, want[i].key, want[i].len, want[i].version);
    for (int entries = 0; entries < 2; entries++) {
        Shardex__Internal__V1__DigestRequest req = SHARDEX__INTERNAL__V1__DIGEST_REQUEST__INIT;
        Shardex__Internal__V1__DigestResponse resp = SHARDEX__INTERNAL__V1__DIGEST_RESPONSE__INIT;
        req.index_id = x->id;
        req.partition = 3;
        req.entries = entries;
        assert_int_equal(sx_pindex_digest(f->ix, &req, &a, &resp, &err), SX_OK);
        assert_int_equal(resp.applied_offset, f->m.offset);
        assert_int_equal(resp.active, x->active);
        assert_int_equal(resp.count, nw);
        assert_true(resp.digest == dg);
        assert_int_equal(resp.n_entries, entries ? nw : 0);
        for (size_t i = 0; i < resp.n_entries; i++) {
            assert_int_equal(key_cmp(resp.entries[i]->key.data, resp.entries[i]->key.len,
                                     want[i].key, want[i].len),
                             0);
            assert_int_equal(resp.entries[i]->version, want[i].version);
        }
    }
    sx_arena_free(&a);
    free(want);
}

/* Every change of (x, t) in (after, upto] read in one call. */
static size_t read_all(fixture *f, uint64_t id, uint32_t t, uint64_t after, uint64_t upto,
                       sx_arena *a, Shardex__Internal__V1__Change ***out)
{
    sx_err err = {0};
    size_t n = 99;
    uint64_t covered = 0;
    sx_status st =
        sx_pindex_outbox_read(f->ix, id, t, after, upto, SIZE_MAX, a, out, &n, &covered, &err);
    if (st != SX_OK)
        fail_msg("outbox_read %" PRIu64 "/%u: %s", id, t, err.msg);
    assert_int_equal(covered, upto);
    for (size_t i = 1; i < n; i++)
        assert_true((*out)[i - 1]->offset <= (*out)[i]->offset);
    for (size_t i = 0; i < n; i++)
        assert_true((*out)[i]->offset > after && (*out)[i]->offset <= upto);
    return n;
}

/* The outbox of every t, read whole, equals the model's (as a list in
 * offset order; changes of one offset compared as a set), and so does its
 * floor. An index that is not active or not global holds none. */
static void check_outbox(fixture *f, const mix *x)
{
    sx_arena a = {0};
    uint32_t m = x->global ? x->m : MAXT;
    for (uint32_t t = 0; t < m; t++) {
        Shardex__Internal__V1__Change **out = NULL;
        size_t n = read_all(f, x->id, t, 0, f->m.offset, &a, &out);
        size_t nw = 0;
        mchange *want = calloc(x->nout + 1, sizeof(*want));
        mchange *got = calloc(n + 1, sizeof(*got));
        assert_true(want && got);
        for (size_t i = 0; x->active && i < x->nout; i++)
            if (x->out[i].t == t)
                want[nw++] = x->out[i];
        for (size_t i = 0; i < n; i++) {
            got[i].offset = out[i]->offset;
            got[i].remove = out[i]->remove;
            got[i].version = out[i]->version;
            assert_true(out[i]->key.len <= KEYMAX);
            memcpy(got[i].key, out[i]->key.data, out[i]->key.len);
            got[i].len = out[i]->key.len;
        }
        qsort(want, nw, sizeof(*want), mchange_cmp);
        qsort(got, n, sizeof(*got), mchange_cmp);
        if (n != nw)
            fail_msg("index %" PRIu64 " t=%u: %zu outbox changes, the model has %zu", x->id, t, n,
                     nw);
        for (size_t i = 0; i < n; i++) {
            if (mchange_cmp(&got[i], &want[i]) != 0 || got[i].remove != want[i].remove ||
                got[i].version != want[i].version)
                fail_msg("index %" PRIu64 " t=%u change %zu: got offset=%" PRIu64
                         " remove=%d version=%" PRIu64 ", want offset=%" PRIu64
                         " remove=%d version=%" PRIu64,
                         x->id, t, i, got[i].offset, got[i].remove, got[i].version, want[i].offset,
                         want[i].remove, want[i].version);
        }
        assert_int_equal(sx_pindex_outbox_floor(f->ix, x->id, t), x->active ? x->floor[t] : 0);
        free(want);
        free(got);
    }
    sx_arena_free(&a);
}

/* A rebuild of every t gives exactly the model's entries of t as puts at the
 * applied offset; FAILED_PRECONDITION for an index not global here. */
static void check_rebuild(fixture *f, const mix *x)
{
    sx_err err = {0};
    sx_arena a = {0};
    Shardex__Internal__V1__Change **out = NULL;
    size_t n = 0;
    uint64_t at = 0;
    if (!x->active || !x->global) {
        assert_int_equal(sx_pindex_rebuild(f->ix, x->id, 0, &a, &out, &n, &at, &err),
                         SX_FAILED_PRECONDITION);
        sx_arena_free(&a);
        return;
    }
    ment *all = calloc(MAXENT, sizeof(*all));
    ment *want = calloc(MAXENT, sizeof(*want));
    assert_true(all && want);
    size_t na = m_index(&f->m, x, all);
    for (uint32_t t = 0; t < x->m; t++) {
        size_t nw = 0;
        for (size_t i = 0; i < na; i++)
            if (all[i].t == t)
                want[nw++] = all[i];
        assert_int_equal(sx_pindex_rebuild(f->ix, x->id, t, &a, &out, &n, &at, &err), SX_OK);
        assert_int_equal(at, f->m.offset);
        assert_int_equal(n, nw);
        ment *got = calloc(n + 1, sizeof(*got));
        assert_non_null(got);
        for (size_t i = 0; i < n; i++) {
            assert_false(out[i]->remove);
            assert_int_equal(out[i]->offset, at);
            assert_true(out[i]->key.len <= KEYMAX);
            memcpy(got[i].key, out[i]->key.data, out[i]->key.len);
            got[i].len = out[i]->key.len;
            got[i].version = out[i]->version;
        }
        qsort(got, n, sizeof(*got), ment_cmp);
        for (size_t i = 0; i < n; i++) {
            assert_int_equal(ment_cmp(&got[i], &want[i]), 0);
            assert_int_equal(got[i].version, want[i].version);
        }
        free(got);
    }
    free(all);
    free(want);
    sx_arena_free(&a);
}

/* Everything, after applying every entry appended. */
static void check_all(fixture *f)
{
    assert_int_equal(sx_plog_applied(f->p), f->m.offset);
    check_catalog(f);
    for (size_t i = 0; i < f->m.nix; i++) {
        const mix *x = &f->m.ix[i];
        check_local(f, x, 0);
        check_local(f, x, 3);
        check_digest(f, x);
        check_outbox(f, x);
        check_rebuild(f, x);
    }
}

/* ---------------------------------------------------------------- tests -- */

/* The term partition of a change's key, through ixkey (to cross-check the
 * model's, computed with hash.h). */
static uint32_t term_of_change(const mix *x, const Shardex__Internal__V1__Change *c)
{
    sx_ixkey_def d = {.id = x->id,
                      .name = x->name,
                      .field = x->field,
                      .is_int = x->is_int,
                      .local = x->local,
                      .global = x->global,
                      .term_partitions = x->m};
    Shardex__V1__Value v;
    sx_buf sbuf = {0}, id = {0}, vkey = {0};
    assert_true(sx_ixkey_split_key(x->is_int, c->key.data, c->key.len, &v, &sbuf, &id));
    assert_true(sx_ixkey_append_value(&vkey, x->is_int, &v));
    uint32_t t = sx_ixkey_term_of(&d, vkey.data, vkey.len);
    sx_buf_free(&sbuf);
    sx_buf_free(&id);
    sx_buf_free(&vkey);
    return t;
}

/* Documents first, then index_start in the middle of what one apply call
 * covers: the backfill sees exactly the documents before the marker. */
static void test_backfill(void **state)
{
    fixture *f = *state;
    sx_err err = {0};
    do_put(f, D("a", "color=red color=blue"));
    do_put(f, D("b", "color=green"));
    do_put(f, D("c", "size:3"));
    do_put(f, D("d", "color:5"));               /* mistyped */
    do_put(f, D("e", "color=red color=red"));   /* one entry */
    do_put(f, D("h", "color= size:1 color:2")); /* "" indexed, and mistyped */
    apply_all(f);
    assert_int_equal(list_into(f->ix, NULL, 0), 0);

    do_put(f, D("f", "color=blue"));
    do_put(f, D("b", "color=green color=yellow"));
    mix spec = SPEC(11, "color", "color", false, true, true, 4);
    do_start(f, spec); /* offset 9: the apply call starts at 7 */
    assert_int_equal(f->m.offset, 9);
    do_put(f, D("g", "color=red"));
    do_put(f, D("a", "color=blue"));
    do_del(f, "d");
    assert_false(sx_pindex_find(f->ix, 11, &(sx_pindex_info){0}));
    apply_all(f);

    sx_pindex_info info;
    assert_int_equal(list_into(f->ix, &info, 1), 1);
    assert_int_equal(info.id, 11);
    assert_int_equal(info.start, 9);
    assert_int_equal(info.mistyped, 1); /* d, deleted at 12, and h */
    assert_true(info.local && info.global && !info.is_int);
    assert_int_equal(info.term_partitions, 4);

    /* The backfill puts nothing in the outbox: every t's floor is the
     * marker's offset (its term partitions are rebuilt from a snapshot),
     * and the outbox holds only the changes after it. */
    sx_arena a = {0};
    const mix *x = m_ix(&f->m, 11);
    size_t after9 = 0;
    for (uint32_t t = 0; t < 4; t++) {
        Shardex__Internal__V1__Change **out = NULL;
        size_t n = read_all(f, 11, t, 0, sx_plog_applied(f->p), &a, &out);
        for (size_t i = 0; i < n; i++) {
            assert_int_equal(term_of_change(x, out[i]), t);
            assert_true(out[i]->offset > 9);
        }
        after9 += n;
        assert_int_equal(sx_pindex_outbox_floor(f->ix, 11, t), 9);
    }
    assert_int_equal(after9, 3); /* g{red} at 10; a: red removed, blue at 11; d had none */
    sx_arena_free(&a);

    /* Local: (value, id, version) in key order. */
    static const struct {
        const char *v, *id;
        uint64_t version;
    } want[] = {{"", "h", 6},    {"blue", "a", 11}, {"blue", "f", 7},  {"green", "b", 8},
                {"red", "e", 5}, {"red", "g", 10},  {"yellow", "b", 8}};
    Shardex__Internal__V1__ScanRequest req;
    Shardex__Internal__V1__ScanResponse resp = SHARDEX__INTERNAL__V1__SCAN_RESPONSE__INIT;
    scan_req(&req, 11, 0);
    req.include_docs = true;
    assert_int_equal(sx_pindex_scan(f->ix, &req, &a, &resp, &err), SX_OK);
    assert_int_equal(resp.n_hits, 7);
    assert_false(resp.more);
    for (size_t i = 0; i < 7; i++) {
        assert_string_equal(resp.hits[i]->value->s, want[i].v);
        assert_string_equal(resp.hits[i]->id, want[i].id);
        assert_int_equal(resp.hits[i]->version, want[i].version);
        /* The document as stored: packed, as the client will read it. */
        Shardex__V1__Document *d =
            shardex__v1__document__unpack(NULL, resp.hits[i]->doc.len, resp.hits[i]->doc.data);
        assert_non_null(d);
        assert_string_equal(d->id, want[i].id);
        shardex__v1__document__free_unpacked(d, NULL);
    }
    sx_arena_free(&a);
    check_all(f);
    reopen(f);
    check_all(f);
}

/* index_start first in its batch (offset 1, an empty store), then updates,
 * duplicates, deletes, re-creation and mistyped values, applied one by one
 * and in one go, across a restart. */
static void test_live_apply(void **state)
{
    fixture *f = *state;
    do_start(f, SPEC(11, "color", "color", false, true, true, 4));
    apply_all(f);
    check_all(f);
    sx_pindex_info info;
    const mdoc steps[] = {
        D("a", "color=red"),
        D("a", "color=red color=blue"),              /* red rewritten with the new version */
        D("a", "color=blue color=green color=blue"), /* red removed; blue once */
        D("b", "color=red other=x"),
        {.id = "b"}, /* delete */
        D("b", "color=green"),
        D("c", "color:5"), /* mistyped: 1 */
        D("c", "color:5 color=x"),
        D("d", "color:1 color:2"), /* mistyped: 2 */
    };
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        if (steps[i].present)
            do_put(f, steps[i]);
        else
            do_del(f, steps[i].id);
        apply_all(f);
        check_all(f);
    }
    assert_true(sx_pindex_find(f->ix, 11, &info));
    assert_int_equal(info.mistyped, 2);
    reopen(f);
    assert_true(sx_pindex_find(f->ix, 11, &info));
    assert_int_equal(info.mistyped, 2);
    check_all(f);

    do_put(f, D("c", "color=x")); /* mistyped: 1 */
    apply_all(f);
    assert_true(sx_pindex_find(f->ix, 11, &info));
    assert_int_equal(info.mistyped, 1);
    check_all(f);

    /* Several at once, and a delete of a missing id. */
    do_del(f, "d"); /* mistyped: 0 */
    do_del(f, "zz");
    do_put(f, D("d", "color=red"));
    do_put(f, D("a", ""));
    do_put(f, D("c", "color:9")); /* mistyped: 1 */
    do_del(f, "c");               /* 0 */
    do_put(f, D("e", "color:3")); /* 1 */
    apply_all(f);
    assert_true(sx_pindex_find(f->ix, 11, &info));
    assert_int_equal(info.mistyped, 1);
    check_all(f);
    reopen(f);
    assert_true(sx_pindex_find(f->ix, 11, &info));
    assert_int_equal(info.mistyped, 1);
    check_all(f);
    do_put(f, D("e", "color=z"));
    apply_all(f);
    assert_true(sx_pindex_find(f->ix, 11, &info));
    assert_int_equal(info.mistyped, 0);
    check_all(f);
}

/* Pages of about max changes end at offset boundaries and together make the
 * whole outbox. */
static void test_outbox_paging(void **state)
{
    fixture *f = *state;
    sx_err err = {0};
    char id[8];
    for (int i = 0; i < 30; i++) {
        snprintf(id, sizeof(id), "d%02d", i);
        do_put(f, D(id, i % 2 ? "k=a k=b" : "k=c"));
    }
    do_start(f, SPEC(5, "k", "k", false, false, true, 2)); /* global only */
    for (int i = 0; i < 20; i++) {
        snprintf(id, sizeof(id), "d%02d", i % 7);
        char fl[64];
        snprintf(fl, sizeof(fl), "k=v%d k=w%d k=x%d", i, i % 3, i % 5);
        do_put(f, D(id, fl));
    }
    apply_all(f);
    check_all(f);
    uint64_t applied = sx_plog_applied(f->p);
    sx_arena a = {0};
    for (uint32_t t = 0; t < 2; t++) {
        Shardex__Internal__V1__Change **all = NULL;
        size_t nall = read_all(f, 5, t, 0, applied, &a, &all);
        assert_true(nall > 20);
        static const size_t maxes[] = {1, 2, 3, 4, 7, 16, 1000};
        for (size_t mi = 0; mi < sizeof(maxes) / sizeof(maxes[0]); mi++) {
            size_t max = maxes[mi], seen = 0;
            uint64_t after = 0;
            int calls = 0;
            for (;;) {
                Shardex__Internal__V1__Change **out = NULL;
                size_t n = 0;
                uint64_t covered = 0;
                assert_int_equal(sx_pindex_outbox_read(f->ix, 5, t, after, applied, max, &a, &out,
                                                       &n, &covered, &err),
                                 SX_OK);
                assert_true(++calls < 1000);
                assert_true(covered > after && covered <= applied);
                assert_true(seen + n <= nall);
                for (size_t i = 0; i < n; i++) {
                    /* The same changes, in the same order, as the whole read. */
                    assert_int_equal(out[i]->offset, all[seen + i]->offset);
                    assert_int_equal(out[i]->remove, all[seen + i]->remove);
                    assert_int_equal(out[i]->version, all[seen + i]->version);
                    assert_int_equal(key_cmp(out[i]->key.data, out[i]->key.len,
                                             all[seen + i]->key.data, all[seen + i]->key.len),
                                     0);
                    assert_true(out[i]->offset > after && out[i]->offset <= covered);
                }
                seen += n;
                if (covered < applied) {
                    /* Stopped early: at the end of an offset, after max was
                     * reached with it and not before it. */
                    assert_true(n >= max);
                    assert_int_equal(out[n - 1]->offset, covered);
                    assert_true(seen < nall);
                    assert_true(all[seen]->offset > covered);
                    size_t before = 0;
                    while (before < n && out[before]->offset != covered)
                        before++;
                    assert_true(before < max);
                } else {
                    assert_int_equal(seen, nall);
                    break;
                }
                after = covered;
            }
            assert_int_equal(seen, nall);
        }
        /* A bounded upto, and an empty range. */
        uint64_t mid = applied - 7;
        size_t nmid = 0;
        while (nmid < nall && all[nmid]->offset <= mid)
            nmid++;
        Shardex__Internal__V1__Change **out = NULL;
        assert_int_equal(read_all(f, 5, t, 0, mid, &a, &out), nmid);
        assert_int_equal(read_all(f, 5, t, mid, applied, &a, &out), nall - nmid);
        size_t n = 9;
        uint64_t covered = 0;
        assert_int_equal(
            sx_pindex_outbox_read(f->ix, 5, t, mid, mid, 1, &a, &out, &n, &covered, &err), SX_OK);
        assert_int_equal(n, 0);
        assert_int_equal(covered, mid);
        /* Nothing for an index that does not exist here. */
        assert_int_equal(read_all(f, 6, t, 0, applied, &a, &out), 0);
    }
    sx_arena_free(&a);
}

/* max 0 reads nothing but must not claim less than `after` as covered. */
static void test_outbox_read_max0(void **state)
{
    fixture *f = *state;
    sx_err err = {0};
    do_start(f, SPEC(5, "k", "k", false, false, true, 1));
    for (int i = 0; i < 6; i++)
        do_put(f, D("x", i % 2 ? "k=a" : "k=b"));
    apply_all(f);
    sx_arena a = {0};
    Shardex__Internal__V1__Change **out = NULL;
    size_t n = 9;
    uint64_t covered = 0;
    assert_int_equal(sx_pindex_outbox_read(f->ix, 5, 0, 3, 7, 0, &a, &out, &n, &covered, &err),
                     SX_OK);
    if (covered < 3 || covered > 7)
        fail_msg("outbox_read(after=3, upto=7, max=0): covered=%" PRIu64
                 " is outside [after, upto] (n=%zu)",
                 covered, n);
    for (size_t i = 0; i < n; i++)
        assert_true(out[i]->offset > 3 && out[i]->offset <= covered);
    sx_arena_free(&a);
}

static void test_trim(void **state)
{
    fixture *f = *state;
    sx_err err = {0};
    mix spec = SPEC(7, "color", "color", false, true, true, 3);
    do_put(f, D("a", "color=red color=blue color=x"));
    do_put(f, D("b", "color=green color=y"));
    do_start(f, spec);
    char id[8], fl[64];
    for (int i = 0; i < 24; i++) {
        snprintf(id, sizeof(id), "d%d", i % 5);
        snprintf(fl, sizeof(fl), "color=c%d color=e%d", i, i % 4);
        if (i % 6 == 5)
            do_del(f, id);
        else
            do_put(f, D(id, fl));
    }
    apply_all(f);
    check_all(f);
    uint64_t applied = sx_plog_applied(f->p);
    sx_arena a = {0};
    Shardex__Internal__V1__Change **all = NULL, **out = NULL;
    size_t nall = read_all(f, 7, 0, 0, applied, &a, &all);
    uint64_t upto = 12;
    size_t keep = 0;
    for (size_t i = 0; i < nall; i++)
        keep += all[i]->offset > upto;
    assert_true(keep > 0 && keep < nall);
    size_t other = read_all(f, 7, 1, 0, applied, &a, &out);

    assert_int_equal(sx_pindex_outbox_trim(f->ix, 7, 0, upto, &err), SX_OK);
    m_trim(&f->m, 7, 0, upto);
    assert_int_equal(sx_pindex_outbox_floor(f->ix, 7, 0), upto);
    assert_int_equal(sx_pindex_outbox_floor(f->ix, 7, 1), 3); /* the marker's */
    assert_int_equal(read_all(f, 7, 0, 0, applied, &a, &out), keep);
    for (size_t i = 0; i < keep; i++)
        assert_true(out[i]->offset > upto);
    assert_int_equal(read_all(f, 7, 1, 0, applied, &a, &out), other);
    check_all(f);
    reopen(f);
    assert_int_equal(sx_pindex_outbox_floor(f->ix, 7, 0), upto);
    check_all(f);

    /* Later changes are kept; trimming all of it leaves an empty outbox. */
    do_put(f, D("a", "color=q"));
    do_put(f, D("z", "color=r color=s color=t color=u"));
    apply_all(f);
    check_all(f);
    assert_int_equal(sx_pindex_outbox_trim(f->ix, 7, 2, f->m.offset, &err), SX_OK);
    m_trim(&f->m, 7, 2, f->m.offset);
    assert_int_equal(read_all(f, 7, 2, 0, f->m.offset, &a, &out), 0);
    do_put(f, D("a", "color=q color=v color=w color=o color=p"));
    apply_all(f);
    check_all(f);
    /* A trim of an index that is not here changes nothing. */
    assert_int_equal(sx_pindex_outbox_trim(f->ix, 8, 0, 5, &err), SX_OK);
    assert_int_equal(sx_pindex_outbox_floor(f->ix, 8, 0), 0);
    sx_arena_free(&a);
}

/* A rebuild is the entries of t at the applied offset, with the documents'
 * versions (not the marker's offset), and refused when not global here. */
static void test_rebuild(void **state)
{
    fixture *f = *state;
    sx_err err = {0};
    do_put(f, D("a", "n:1 n:-2"));
    do_put(f, D("b", "n:3"));
    do_start(f, SPEC(3, "n", "n", true, true, true, 4));
    do_start(f, SPEC(4, "nl", "n", true, true, false, 0)); /* local only */
    do_put(f, D("c", "n:3 n:4 n:5"));
    do_put(f, D("a", "n:-2 n:9"));
    do_del(f, "b");
    apply_all(f);
    check_all(f);
    sx_arena a = {0};
    Shardex__Internal__V1__Change **out = NULL;
    size_t n = 0, total = 0;
    uint64_t at = 0;
    for (uint32_t t = 0; t < 4; t++) {
        assert_int_equal(sx_pindex_rebuild(f->ix, 3, t, &a, &out, &n, &at, &err), SX_OK);
        assert_int_equal(at, 7);
        for (size_t i = 0; i < n; i++)
            assert_int_equal(term_of_change(m_ix(&f->m, 3), out[i]), t);
        total += n;
    }
    assert_int_equal(total, 5); /* a{-2,9} c{3,4,5} */
    assert_int_equal(sx_pindex_rebuild(f->ix, 4, 0, &a, &out, &n, &at, &err),
                     SX_FAILED_PRECONDITION);
    assert_int_equal(sx_pindex_rebuild(f->ix, 99, 0, &a, &out, &n, &at, &err),
                     SX_FAILED_PRECONDITION);

    /* In chunks of at most one entry, at the snapshot of begin (a write
     * after it is not seen): every t's entries again, documents whole. */
    total = 0;
    sx_pindex_rebuild_cursor *cur[4];
    for (uint32_t t = 0; t < 4; t++) {
        assert_int_equal(sx_pindex_rebuild_begin(f->ix, 3, t, &cur[t], &at, &err), SX_OK);
        assert_int_equal(at, 7);
    }
    do_put(f, D("d", "n:1 n:2 n:3 n:4 n:5 n:6 n:7 n:8"));
    apply_all(f);
    for (uint32_t t = 0; t < 4; t++) {
        sx_pindex_rebuild_cursor *rc = cur[t];
        bool last = false;
        int chunks = 0;
        while (!last) {
            assert_int_equal(sx_pindex_rebuild_next(rc, 1, &a, &out, &n, &last, &err), SX_OK);
            assert_true(n <= 3); /* c may have all three of its values in one t */
            for (size_t i = 0; i < n; i++) {
                assert_int_equal(term_of_change(m_ix(&f->m, 3), out[i]), t);
                assert_int_equal(out[i]->offset, 7);
            }
            total += n;
            chunks++;
            assert_true(chunks <= 4); /* three documents, then the end */
        }
        assert_int_equal(sx_pindex_rebuild_at(rc), 7);
        sx_pindex_rebuild_end(rc);
    }
    assert_int_equal(total, 5);
    sx_pindex_rebuild_cursor *rc = NULL;
    assert_int_equal(sx_pindex_rebuild_begin(f->ix, 4, 0, &rc, &at, &err), SX_FAILED_PRECONDITION);
    assert_null(rc);
    sx_arena_free(&a);
}

/* Digests of an unknown index, a global-only one and a local one. */
static void test_digest(void **state)
{
    fixture *f = *state;
    sx_err err = {0};
    do_start(f, SPEC(1, "color", "color", false, true, false, 0));
    do_start(f, SPEC(2, "g", "color", false, false, true, 2));
    do_put(f, D("a", "color=red color=blue"));
    do_put(f, D("b", "color=red"));
    apply_all(f);
    check_all(f);
    sx_arena a = {0};
    Shardex__Internal__V1__DigestRequest req = SHARDEX__INTERNAL__V1__DIGEST_REQUEST__INIT;
    Shardex__Internal__V1__DigestResponse resp = SHARDEX__INTERNAL__V1__DIGEST_RESPONSE__INIT;
    req.index_id = 1;
    req.entries = true;
    assert_int_equal(sx_pindex_digest(f->ix, &req, &a, &resp, &err), SX_OK);
    assert_int_equal(resp.count, 3);
    assert_int_equal(resp.n_entries, 3);
    assert_true(resp.active);
    assert_int_equal(resp.applied_offset, 4);
    /* By hand: blue/a@3, red/a@3, red/b@4. */
    sx_buf k = {0};
    uint64_t dg = 0;
    static const struct {
        const char *v, *id;
        uint64_t ver;
    } e[] = {{"blue", "a", 3}, {"red", "a", 3}, {"red", "b", 4}};
    for (size_t i = 0; i < 3; i++) {
        sx_buf_reset(&k);
        sx_key_append_str(&k, e[i].v, strlen(e[i].v));
        sx_key_append_str(&k, e[i].id, strlen(e[i].id));
        dg = sx_ixkey_digest_add(dg, k.data, k.len, e[i].ver);
        assert_int_equal(
            key_cmp(resp.entries[i]->key.data, resp.entries[i]->key.len, k.data, k.len), 0);
        assert_int_equal(resp.entries[i]->version, e[i].ver);
    }
    assert_true(resp.digest == dg);
    sx_buf_free(&k);
    for (uint64_t id = 2; id <= 3; id++) {
        Shardex__Internal__V1__DigestResponse r2 = SHARDEX__INTERNAL__V1__DIGEST_RESPONSE__INIT;
        req.index_id = id;
        assert_int_equal(sx_pindex_digest(f->ix, &req, &a, &r2, &err), SX_OK);
        assert_int_equal(r2.count, 0);
        assert_true(r2.digest == 0);
        assert_int_equal(r2.active, id == 2);
    }
    sx_arena_free(&a);
}

/* Keys of index id with tag in the store: none may survive a drop. */
static size_t keys_of(fixture *f, uint8_t tag, uint64_t id)
{
    sx_buf p = {0};
    sx_key_append_u8(&p, tag);
    sx_key_append_u64(&p, id);
    sx_iter *it = sx_store_iter_prefix(sx_plog_store(f->p), NULL, p.data, p.len);
    size_t n = 0;
    for (; sx_iter_valid(it); sx_iter_next(it))
        n++;
    sx_iter_destroy(it);
    sx_buf_free(&p);
    return n;
}

/* An apply batch packs its outbox changes into one record per term
 * partition (pindex.c, "outbox records"), and a record written before
 * packing (one change, its offset in the key) is still read. */
static void test_outbox_records(void **state)
{
    fixture *f = *state;
    sx_err err = {0};
    mix spec = SPEC(5, "k", "k", false, false, true, 2);
    do_start(f, spec);
    char id[16], fl[32];
    for (int i = 0; i < 300; i++) {
        snprintf(id, sizeof(id), "d%d", i % 200);
        snprintf(fl, sizeof(fl), "k=v%d", i % 7);
        do_put(f, D(id, fl));
    }
    apply_all(f);
    check_all(f);
    uint64_t applied = sx_plog_applied(f->p);
    sx_arena a = {0};
    Shardex__Internal__V1__Change **out = NULL;
    size_t changes =
        read_all(f, 5, 0, 0, applied, &a, &out) + read_all(f, 5, 1, 0, applied, &a, &out);
    size_t records = keys_of(f, 'O', 5);
    if (changes < 300 || records * 10 > changes)
        fail_msg("%zu outbox changes in %zu records: want at least 10 changes a record", changes,
                 records);

    /* The old layout: 'O' id t offset seq -> u8 remove, u64 version, entry key. */
    sx_buf k = {0}, v = {0};
    sx_key_append_u8(&k, 'O');
    sx_key_append_u64(&k, 5);
    sx_key_append_u32(&k, 1);
    sx_key_append_u64(&k, applied + 1);
    sx_key_append_u32(&k, 0);
    sx_key_append_u8(&v, 1);
    sx_key_append_u64(&v, 77);
    sx_buf_append(&v, "entry", 5);
    assert_int_equal(
        sx_store_put(sx_plog_store(f->p), k.data, k.len, v.data, v.len, SX_SYNC_NO, &err), SX_OK);
    assert_int_equal(read_all(f, 5, 1, applied, applied + 1, &a, &out), 1);
    assert_true(out[0]->remove);
    assert_int_equal(out[0]->version, 77);
    assert_int_equal(out[0]->offset, applied + 1);
    assert_int_equal(out[0]->key.len, 5);
    assert_memory_equal(out[0]->key.data, "entry", 5);
    sx_buf_free(&k);
    sx_buf_free(&v);
    sx_arena_free(&a);
}

static void test_drop(void **state)
{
    fixture *f = *state;
    sx_err err = {0};
    mix color = SPEC(11, "color", "color", false, true, true, 4);
    mix n = SPEC(12, "n", "n", true, true, true, 2);
    do_put(f, D("a", "color=red n:1 color:4"));
    do_put(f, D("b", "color=blue n:-1"));
    do_start(f, color);
    do_start(f, n);
    do_put(f, D("c", "color=red n:2"));
    apply_all(f);
    check_all(f);
    assert_int_equal(sx_pindex_outbox_trim(f->ix, 11, 1, 3, &err), SX_OK);
    m_trim(&f->m, 11, 1, 3);
    check_all(f);
    static const uint8_t tags[] = {'I', 'N', 'X', 'O', 'F'};
    for (size_t i = 0; i < sizeof(tags); i++)
        assert_true(keys_of(f, tags[i], 11) > 0);

    /* A second start of an active id, even with another spec: nothing. */
    do_start(f, SPEC(11, "other", "n", true, false, true, 3));
    do_put(f, D("d", "color=green"));
    apply_all(f);
    check_all(f);
    sx_pindex_info info;
    assert_true(sx_pindex_find(f->ix, 11, &info));
    assert_int_equal(info.start, 3);
    assert_false(info.is_int);

    /* A drop of an unknown id: nothing. */
    do_drop(f, 77);
    apply_all(f);
    check_all(f);

    /* Drop in the middle of what one apply covers. */
    do_put(f, D("e", "color=red"));
    do_drop(f, 11);
    do_put(f, D("f", "color=red n:5"));
    apply_all(f);
    check_all(f);
    assert_false(sx_pindex_find(f->ix, 11, &info));
    assert_int_equal(list_into(f->ix, &info, 1), 1);
    assert_int_equal(info.id, 12);
    for (size_t i = 0; i < sizeof(tags); i++)
        if (keys_of(f, tags[i], 11) != 0)
            fail_msg("tag %c of the dropped index: %zu keys left", tags[i],
                     keys_of(f, tags[i], 11));
    assert_true(keys_of(f, 'X', 12) > 0);
    sx_arena a = {0};
    Shardex__Internal__V1__ScanRequest req;
    Shardex__Internal__V1__ScanResponse resp = SHARDEX__INTERNAL__V1__SCAN_RESPONSE__INIT;
    scan_req(&req, 11, 0);
    assert_int_equal(sx_pindex_scan(f->ix, &req, &a, &resp, &err), SX_NOT_FOUND);
    sx_arena_free(&a);
    reopen(f);
    check_all(f);

    /* The same id started again is a new index, backfilled. */
    do_start(f, color);
    apply_all(f);
    check_all(f);
    assert_true(sx_pindex_find(f->ix, 11, &info));
    assert_int_equal(info.start, f->m.offset);
    assert_int_equal(info.mistyped, 1);
    do_drop(f, 12);
    do_drop(f, 12);
    apply_all(f);
    check_all(f);
    reopen(f);
    check_all(f);
}

/* An int index orders negatives first; [start, end) from sx_ixkey_append_value. */
static void test_int_range(void **state)
{
    fixture *f = *state;
    sx_err err = {0};
    do_start(f, SPEC(9, "n", "n", true, true, false, 0));
    do_put(f, D("a", "n:-100 n:7"));
    do_put(f, D("b", "n:-5 n:0"));
    do_put(f, D("c", "n:-1 n:1"));
    do_put(f, D("d", "n:1 n:-5"));
    do_put(f, D("e", "n:-9223372036854775808 n:9223372036854775807"));
    do_put(f, D("g", "n:0 n=zero"));
    apply_all(f);
    check_all(f);

    sx_arena a = {0};
    Shardex__Internal__V1__ScanRequest req;
    Shardex__Internal__V1__ScanResponse resp = SHARDEX__INTERNAL__V1__SCAN_RESPONSE__INIT;
    scan_req(&req, 9, 0);
    assert_int_equal(sx_pindex_scan(f->ix, &req, &a, &resp, &err), SX_OK);
    assert_int_equal(resp.n_hits, 11);
    assert_int_equal(resp.hits[0]->value->i, INT64_MIN);
    assert_int_equal(resp.hits[10]->value->i, INT64_MAX);
    for (size_t i = 1; i < resp.n_hits; i++) {
        int64_t p = resp.hits[i - 1]->value->i, c = resp.hits[i]->value->i;
        assert_true(p < c || (p == c && strcmp(resp.hits[i - 1]->id, resp.hits[i]->id) < 0));
    }

    /* [-5, 1): -5/b -5/d -1/c 0/b 0/g. */
    static const struct {
        int64_t v;
        const char *id;
    } want[] = {{-5, "b"}, {-5, "d"}, {-1, "c"}, {0, "b"}, {0, "g"}};
    sx_buf s = {0}, e = {0};
    Shardex__V1__Value v = SHARDEX__V1__VALUE__INIT;
    v.kind_case = SHARDEX__V1__VALUE__KIND_I;
    v.i = -5;
    assert_true(sx_ixkey_append_value(&s, true, &v));
    v.i = 1;
    assert_true(sx_ixkey_append_value(&e, true, &v));
    scan_req(&req, 9, 0);
    req.start.data = s.data;
    req.start.len = s.len;
    req.end.data = e.data;
    req.end.len = e.len;
    shardex__internal__v1__scan_response__init(&resp);
    assert_int_equal(sx_pindex_scan(f->ix, &req, &a, &resp, &err), SX_OK);
    assert_int_equal(resp.n_hits, 5);
    assert_false(resp.more);
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(resp.hits[i]->value->i, want[i].v);
        assert_string_equal(resp.hits[i]->id, want[i].id);
    }
    /* The same with limit 2: a page and more. */
    req.limit = 2;
    shardex__internal__v1__scan_response__init(&resp);
    assert_int_equal(sx_pindex_scan(f->ix, &req, &a, &resp, &err), SX_OK);
    assert_int_equal(resp.n_hits, 2);
    assert_true(resp.more);
    /* Only an end: the negatives. */
    req.limit = 0;
    req.start.len = 0;
    req.start.data = NULL;
    sx_buf_reset(&e);
    v.i = 0;
    assert_true(sx_ixkey_append_value(&e, true, &v));
    req.end.data = e.data;
    req.end.len = e.len;
    shardex__internal__v1__scan_response__init(&resp);
    assert_int_equal(sx_pindex_scan(f->ix, &req, &a, &resp, &err), SX_OK);
    assert_int_equal(resp.n_hits, 5); /* MIN, -100, -5 x2, -1 */
    for (size_t i = 0; i < resp.n_hits; i++)
        assert_true(resp.hits[i]->value->i < 0);
    /* Only a start: from 1 on. */
    req.end.len = 0;
    req.end.data = NULL;
    sx_buf_reset(&s);
    v.i = 1;
    assert_true(sx_ixkey_append_value(&s, true, &v));
    req.start.data = s.data;
    req.start.len = s.len;
    shardex__internal__v1__scan_response__init(&resp);
    assert_int_equal(sx_pindex_scan(f->ix, &req, &a, &resp, &err), SX_OK);
    assert_int_equal(resp.n_hits, 4); /* 1/c 1/d 7/a MAX/e */
    assert_int_equal(resp.hits[0]->value->i, 1);
    assert_int_equal(resp.hits[3]->value->i, INT64_MAX);
    /* A string value is not an int index's: no key. */
    Shardex__V1__Value sv = SHARDEX__V1__VALUE__INIT;
    sv.kind_case = SHARDEX__V1__VALUE__KIND_S;
    sv.s = "x";
    sx_buf_reset(&s);
    assert_false(sx_ixkey_append_value(&s, true, &sv));
    assert_int_equal(s.len, 0);
    sx_buf_free(&s);
    sx_buf_free(&e);
    sx_arena_free(&a);
}

/* ---- readers during apply ---- */

typedef struct reader {
    fixture *f;
    volatile int stop; /* set by the main thread after its last apply */
    size_t reads;
    char bad[256]; /* the first inconsistency seen (cmocka asserts only on the main thread) */
} reader;

static void *reader_main(void *arg)
{
    reader *r = arg;
    sx_err err = {0};
    while (!r->bad[0]) {
        int stop = __atomic_load_n(&r->stop, __ATOMIC_ACQUIRE);
        sx_arena a = {0};
        Shardex__Internal__V1__DigestRequest req = SHARDEX__INTERNAL__V1__DIGEST_REQUEST__INIT;
        Shardex__Internal__V1__DigestResponse resp = SHARDEX__INTERNAL__V1__DIGEST_RESPONSE__INIT;
        req.index_id = 1;
        Shardex__Internal__V1__Change **out = NULL;
        size_t n = 0;
        uint64_t at = 0;
        if (sx_pindex_digest(r->f->ix, &req, &a, &resp, &err) != SX_OK)
            snprintf(r->bad, sizeof(r->bad), "digest: %s", err.msg);
        else if (resp.active ? resp.count + 1 != resp.applied_offset : resp.count != 0)
            snprintf(r->bad, sizeof(r->bad),
                     "digest: active=%d count=%" PRIu64 " at applied=%" PRIu64, resp.active,
                     resp.count, resp.applied_offset);
        else if (sx_pindex_find(r->f->ix, 1, &(sx_pindex_info){0})) {
            sx_status st = sx_pindex_rebuild(r->f->ix, 1, 0, &a, &out, &n, &at, &err);
            if (st != SX_OK)
                snprintf(r->bad, sizeof(r->bad), "rebuild: %s", err.msg);
            else if (n + 1 != at)
                snprintf(r->bad, sizeof(r->bad), "rebuild: %zu entries at %" PRIu64, n, at);
        }
        sx_arena_free(&a);
        __atomic_fetch_add(&r->reads, 1, __ATOMIC_RELEASE);
        if (stop)
            break;
    }
    return NULL;
}

/* Digests and rebuilds taken while batches are applied see one position:
 * index 1 starts at offset 1 and every later offset adds one entry, so the
 * count is always the applied offset minus one. */
static void test_readers_during_apply(void **state)
{
    fixture *f = *state;
    reader r = {.f = f};
    pthread_t th;
    rng_state = seed ^ 0x7ead;
    do_start(f, SPEC(1, "color", "color", false, true, true, 1));
    char id[16];
    for (int i = 0; i < 400; i++) {
        snprintf(id, sizeof(id), "d%03d", i);
        do_put(f, D(id, "color=c"));
    }
    assert_int_equal(pthread_create(&th, NULL, reader_main, &r), 0);
    while (sx_plog_applied(f->p) < f->m.offset && !r.bad[0]) {
        /* Let a read start, then apply while it runs. */
        size_t seen = __atomic_load_n(&r.reads, __ATOMIC_ACQUIRE);
        while (__atomic_load_n(&r.reads, __ATOMIC_ACQUIRE) == seen && !r.bad[0])
            sched_yield();
        apply_to(f, sx_plog_applied(f->p) + 1 + rnd_below(3));
    }
    __atomic_store_n(&r.stop, 1, __ATOMIC_RELEASE);
    assert_int_equal(pthread_join(th, NULL), 0);
    if (r.bad[0])
        fail_msg("%s", r.bad);
    print_message("readers: %zu reads during apply\n", r.reads);
    check_all(f);
}

/* ---- in a child process: what must not bring the process down ---- */

/* Runs fn(f) in a forked child (stderr to /dev/null, address space capped at
 * what it has plus 1 GiB, killed after 60 s) and returns its wait status. */
static int in_child(fixture *f, int (*fn)(fixture *f))
{
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* No cmocka here (its handlers would turn a crash into a return
         * with the plog's mutex held): the calls under test, then exit. */
        static const int sigs[] = {SIGABRT, SIGBUS, SIGFPE, SIGILL, SIGSEGV};
        for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
            signal(sigs[i], SIG_DFL);
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0)
            dup2(null, STDERR_FILENO);
        unsigned long pages = 0;
        FILE *statm = fopen("/proc/self/statm", "r");
        if (statm && fscanf(statm, "%lu", &pages) == 1) {
            struct rlimit rl;
            if (getrlimit(RLIMIT_AS, &rl) == 0) {
                rlim_t cap = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + ((rlim_t)1 << 30);
                if (rl.rlim_max == RLIM_INFINITY || cap < rl.rlim_max)
                    rl.rlim_cur = cap;
                setrlimit(RLIMIT_AS, &rl);
            }
        }
        if (statm)
            fclose(statm);
        _exit(fn(f));
    }
    int status = 0;
    for (int i = 0; i < 6000; i++) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        assert_true(r >= 0);
        if (r == pid)
            return status;
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    kill(pid, SIGKILL);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    fail_msg("the child did not finish in 60 s");
    return status;
}

static void assert_child_ok(int status, const char *what)
{
    if (WIFSIGNALED(status))
        fail_msg("%s: the process died of signal %d (%s)", what, WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("%s: the process exited with %d", what, WEXITSTATUS(status));
}

static int scan_huge_limit(fixture *f)
{
    sx_err err = {0};
    sx_arena a = {0};
    Shardex__Internal__V1__ScanRequest req;
    Shardex__Internal__V1__ScanResponse resp = SHARDEX__INTERNAL__V1__SCAN_RESPONSE__INIT;
    scan_req(&req, 1, UINT32_MAX);
    sx_status st = sx_pindex_scan(f->ix, &req, &a, &resp, &err);
    int rc = st == SX_OK && resp.n_hits == 2 && !resp.more ? 0 : 1;
    sx_arena_free(&a);
    return rc;
}

/* ScanRequest.limit comes off the network (Index.ScanLocal passes it through
 * as it is): a scan of two entries with limit 2^32-1 must answer them, not
 * allocate room for 2^32 hits up front. */
static void test_scan_huge_limit(void **state)
{
    fixture *f = *state;
    do_start(f, SPEC(1, "color", "color", false, true, false, 0));
    do_put(f, D("a", "color=red"));
    do_put(f, D("b", "color=blue"));
    apply_all(f);
    check_all(f);
    assert_child_ok(in_child(f, scan_huge_limit), "sx_pindex_scan with limit UINT32_MAX");
}

static int apply_zero_m(fixture *f)
{
    sx_err err = {0};
    sx_status st = sx_plog_apply(f->p, f->m.offset, NULL, &err);
    sx_pindex_info info;
    return st != SX_OK && !sx_pindex_find(f->ix, 9, &info) ? 0 : 1;
}

/* A marker read from the log is input from disk: a global spec without
 * term partitions must stop the apply with a status (as a spec without a
 * name does), not crash every replica that applies it. */
static void test_marker_global_without_m(void **state)
{
    fixture *f = *state;
    do_put(f, D("a", "color=red"));
    apply_all(f);
    do_start(f, SPEC(9, "color", "color", false, true, true, 0));
    assert_child_ok(in_child(f, apply_zero_m), "applying index_start(global, term_partitions 0)");
}

/* ---- randomized ---- */

/* A term partition's owner as the shipper feeds it: entries by key, and the
 * offset up to which it has applied the outbox. */
typedef struct owner {
    ment *e;
    size_t n;
    uint64_t wm;
} owner;

static void owner_apply(owner *o, const Shardex__Internal__V1__Change *c)
{
    assert_true(c->key.len <= KEYMAX);
    size_t i = 0;
    while (i < o->n && key_cmp(o->e[i].key, o->e[i].len, c->key.data, c->key.len) != 0)
        i++;
    if (c->remove) {
        if (i < o->n)
            o->e[i] = o->e[--o->n];
        return;
    }
    if (i == o->n) {
        assert_true(o->n < MAXENT);
        o->n++;
    }
    memset(&o->e[i], 0, sizeof(o->e[i]));
    memcpy(o->e[i].key, c->key.data, c->key.len);
    o->e[i].len = c->key.len;
    o->e[i].version = c->version;
}

/* Ships (id, t) to its owner: a rebuild when the owner is below the floor,
 * then the outbox after its watermark, in pages. */
static void owner_ship(fixture *f, const mix *x, uint32_t t, owner *o)
{
    sx_err err = {0};
    sx_arena a = {0};
    Shardex__Internal__V1__Change **out = NULL;
    size_t n = 0;
    uint64_t applied = sx_plog_applied(f->p);
    if (o->wm < sx_pindex_outbox_floor(f->ix, x->id, t)) {
        uint64_t at = 0;
        assert_int_equal(sx_pindex_rebuild(f->ix, x->id, t, &a, &out, &n, &at, &err), SX_OK);
        o->n = 0;
        for (size_t i = 0; i < n; i++)
            owner_apply(o, out[i]);
        o->wm = at;
    }
    while (o->wm < applied) {
        uint64_t covered = 0;
        size_t max = 1 + rnd_below(20);
        assert_int_equal(sx_pindex_outbox_read(f->ix, x->id, t, o->wm, applied, max, &a, &out, &n,
                                               &covered, &err),
                         SX_OK);
        assert_true(covered > o->wm && covered <= applied);
        for (size_t i = 0; i < n; i++)
            owner_apply(o, out[i]);
        o->wm = covered;
    }
    sx_arena_free(&a);
}

/* The owner holds exactly the model's entries of t. */
static void owner_check(fixture *f, const mix *x, uint32_t t, const owner *o)
{
    ment *all = calloc(MAXENT, sizeof(*all));
    ment *got = calloc(MAXENT, sizeof(*got));
    assert_true(all && got);
    size_t na = m_index(&f->m, x, all), nw = 0;
    for (size_t i = 0; i < na; i++)
        if (all[i].t == t)
            all[nw++] = all[i];
    memcpy(got, o->e, o->n * sizeof(*got));
    qsort(got, o->n, sizeof(*got), ment_cmp);
    if (o->n != nw)
        fail_msg("index %" PRIu64 " t=%u: the replayed outbox holds %zu entries, the model %zu "
                 "(seed=%llu)",
                 x->id, t, o->n, nw, seed);
    for (size_t i = 0; i < nw; i++) {
        if (ment_cmp(&got[i], &all[i]) != 0 || got[i].version != all[i].version)
            fail_msg("index %" PRIu64 " t=%u entry %zu differs: want id %s version %" PRIu64
                     " (seed=%llu)",
                     x->id, t, i, all[i].id, all[i].version, seed);
    }
    free(all);
    free(got);
}

static void rnd_doc(mdoc *d, const char *id)
{
    static const char *colors[] = {"red", "green", "blue", "", "cyan", "a b", "zz", "red2"};
    static const int64_t ns[] = {-3, -2, -1, 0, 1, 2, INT64_MIN, INT64_MAX};
    memset(d, 0, sizeof(*d));
    snprintf(d->id, sizeof(d->id), "%s", id);
    d->present = true;
    size_t nc = rnd_below(4), nn = rnd_below(4);
    for (size_t i = 0; i < nc; i++) {
        mfield *fl = &d->f[d->nf++];
        snprintf(fl->name, sizeof(fl->name), "color");
        if (rnd_below(10) == 0) {
            fl->is_int = true;
            fl->i = (int64_t)rnd_below(3);
        } else {
            snprintf(fl->s, sizeof(fl->s), "%s", colors[rnd_below(8)]);
        }
    }
    for (size_t i = 0; i < nn; i++) {
        mfield *fl = &d->f[d->nf++];
        snprintf(fl->name, sizeof(fl->name), "n");
        if (rnd_below(10) == 0) {
            snprintf(fl->s, sizeof(fl->s), "s%d", (int)rnd_below(3));
        } else {
            fl->is_int = true;
            fl->i = ns[rnd_below(8)];
        }
    }
    if (rnd_below(4) == 0) {
        mfield *fl = &d->f[d->nf++];
        snprintf(fl->name, sizeof(fl->name), "other");
        snprintf(fl->s, sizeof(fl->s), "red");
    }
    /* Shuffle, so values come in any order. */
    for (size_t i = d->nf; i > 1; i--) {
        size_t j = rnd_below(i);
        mfield tmp = d->f[i - 1];
        d->f[i - 1] = d->f[j];
        d->f[j] = tmp;
    }
}

/* ------------------------------------------------------------ online split -- */

/* Appends an op the model does not follow (it only counts the offset). */
static void append_raw(fixture *f, const Shardex__Internal__V1__LogOp *op)
{
    f->m.offset++;
    append_op(f, op);
}

/* index_start of global int index 9, range-partitioned at 100 and 200. */
static void start_range(fixture *f)
{
    Shardex__V1__Value pts[2] = {SHARDEX__V1__VALUE__INIT, SHARDEX__V1__VALUE__INIT};
    Shardex__V1__Value *pp[2] = {&pts[0], &pts[1]};
    for (int i = 0; i < 2; i++) {
        pts[i].kind_case = SHARDEX__V1__VALUE__KIND_I;
        pts[i].i = 100 * (i + 1);
    }
    Shardex__V1__IndexSpec s = SHARDEX__V1__INDEX_SPEC__INIT;
    s.name = "r";
    s.field = "n";
    s.type = SHARDEX__V1__VALUE_TYPE__VALUE_TYPE_INT;
    s.global = true;
    s.term_partitions = 3;
    s.partitioning = SHARDEX__V1__PARTITIONING__PARTITIONING_RANGE;
    s.n_split_points = 2;
    s.split_points = pp;
    Shardex__Internal__V1__IndexStart is = SHARDEX__INTERNAL__V1__INDEX_START__INIT;
    is.index_id = 9;
    is.spec = &s;
    Shardex__Internal__V1__LogOp op = SHARDEX__INTERNAL__V1__LOG_OP__INIT;
    op.op_case = SHARDEX__INTERNAL__V1__LOG_OP__OP_INDEX_START;
    op.index_start = &is;
    append_raw(f, &op);
}

static void split_marker(fixture *f, uint32_t seq, uint32_t t, int64_t at, uint32_t lo, bool done)
{
    Shardex__V1__Value v = SHARDEX__V1__VALUE__INIT;
    v.kind_case = SHARDEX__V1__VALUE__KIND_I;
    v.i = at;
    Shardex__Internal__V1__IndexSplit sp = SHARDEX__INTERNAL__V1__INDEX_SPLIT__INIT;
    sp.index_id = 9;
    sp.seq = seq;
    sp.term = t;
    sp.at = &v;
    sp.lo = lo;
    sp.hi = lo + 1;
    sp.done = done;
    Shardex__Internal__V1__LogOp op = SHARDEX__INTERNAL__V1__LOG_OP__INIT;
    op.op_case = SHARDEX__INTERNAL__V1__LOG_OP__OP_INDEX_SPLIT;
    op.index_split = &sp;
    append_raw(f, &op);
}

/* The values of the puts (removes negated) among the outbox changes of t
 * in (after, applied], in order, as "v,-v,..". */
static void outbox_values(fixture *f, uint32_t t, uint64_t after, char *out, size_t cap)
{
    sx_arena a = {0};
    Shardex__Internal__V1__Change **ch = NULL;
    size_t n = read_all(f, 9, t, after, f->m.offset, &a, &ch);
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        sx_key_reader r;
        int64_t v = 0;
        sx_key_reader_init(&r, ch[i]->key.data, ch[i]->key.len);
        assert_true(sx_key_read_i64(&r, &v));
        snprintf(out + strlen(out), cap - strlen(out), "%s%s%lld", i ? "," : "",
                 ch[i]->remove ? "-" : "", (long long)v);
    }
    sx_arena_free(&a);
}

static size_t rebuild_count(fixture *f, uint32_t t)
{
    sx_arena a = {0};
    sx_err err = {0};
    Shardex__Internal__V1__Change **out = NULL;
    size_t n = 0;
    uint64_t at = 0;
    assert_int_equal(sx_pindex_rebuild(f->ix, 9, t, &a, &out, &n, &at, &err), SX_OK);
    assert_int_equal(at, f->m.offset);
    sx_arena_free(&a);
    return n;
}

/* index_split markers: from the marker, a change of t1's range goes to t1
 * and to the shadow owning its value; the shadows' outboxes start at the
 * marker (their floor); a rebuild selects as the outbox routes; repeated or
 * out-of-order markers change nothing; done stops t1's share; all of it
 * survives a reopen. */
static void test_split_markers(void **state)
{
    fixture *f = *state;
    do_put(f, D("a", "n:50"));
    do_put(f, D("b", "n:150"));
    do_put(f, D("c", "n:160"));
    start_range(f);
    apply_all(f);
    sx_pindex_info info;
    assert_true(sx_pindex_find(f->ix, 9, &info));
    assert_int_equal(info.term_count, 3);
    split_marker(f, 2, 1, 155, 3, false); /* out of order: nothing */
    split_marker(f, 1, 1, 155, 3, false);
    uint64_t c = f->m.offset;
    split_marker(f, 1, 1, 155, 3, false); /* a repeat: nothing */
    apply_all(f);
    assert_true(sx_pindex_find(f->ix, 9, &info));
    assert_int_equal(info.term_count, 5);
    assert_int_equal(info.nsplits, 1);
    assert_false(info.last_split_done);
    assert_int_equal(sx_pindex_outbox_floor(f->ix, 9, 3), c);
    assert_int_equal(sx_pindex_outbox_floor(f->ix, 9, 4), c);
    uint64_t after = f->m.offset;
    do_put(f, D("e", "n:152"));
    do_put(f, D("b", "n:170"));
    do_put(f, D("a", "n:60"));
    apply_all(f);
    char got[128];
    outbox_values(f, 1, after, got, sizeof(got));
    assert_string_equal(got, "152,-150,170");
    outbox_values(f, 3, 0, got, sizeof(got));
    assert_string_equal(got, "152,-150");
    outbox_values(f, 4, 0, got, sizeof(got));
    assert_string_equal(got, "170");
    outbox_values(f, 0, after, got, sizeof(got));
    assert_string_equal(got, "-50,60");
    /* Rebuilds: t1 = {b 170, c 160, e 152}, t3 = [100, 155) = {e}, t4 = {b, c}. */
    assert_int_equal(rebuild_count(f, 1), 3);
    assert_int_equal(rebuild_count(f, 3), 1);
    assert_int_equal(rebuild_count(f, 4), 2);

    reopen(f);
    split_marker(f, 1, 1, 155, 3, true);
    after = f->m.offset;
    do_put(f, D("g", "n:151"));
    apply_all(f);
    assert_true(sx_pindex_find(f->ix, 9, &info));
    assert_true(info.last_split_done);
    outbox_values(f, 1, after, got, sizeof(got));
    assert_string_equal(got, ""); /* retired: nothing more */
    outbox_values(f, 3, after, got, sizeof(got));
    assert_string_equal(got, "151");
    assert_int_equal(rebuild_count(f, 1), 0);

    /* A second split, of shadow 4 at 165: 5 and 6. */
    reopen(f);
    split_marker(f, 2, 4, 165, 5, false);
    after = f->m.offset;
    do_put(f, D("h", "n:168"));
    apply_all(f);
    assert_true(sx_pindex_find(f->ix, 9, &info));
    assert_int_equal(info.term_count, 7);
    outbox_values(f, 4, after, got, sizeof(got));
    assert_string_equal(got, "168");
    outbox_values(f, 6, 0, got, sizeof(got));
    assert_string_equal(got, "168");
    outbox_values(f, 1, after, got, sizeof(got));
    assert_string_equal(got, "");
    assert_int_equal(rebuild_count(f, 5), 1); /* c 160 */
    assert_int_equal(rebuild_count(f, 6), 2); /* b 170, h 168 */
}

static void salt_marker(fixture *f, uint32_t seq, int64_t value, const uint32_t *terms,
                        uint32_t ways)
{
    Shardex__V1__Value v = SHARDEX__V1__VALUE__INIT;
    v.kind_case = SHARDEX__V1__VALUE__KIND_I;
    v.i = value;
    Shardex__Internal__V1__IndexSalt sa = SHARDEX__INTERNAL__V1__INDEX_SALT__INIT;
    sa.index_id = 9;
    sa.seq = seq;
    sa.value = &v;
    sa.ways = ways;
    sa.n_terms = ways;
    sa.terms = (uint32_t *)terms;
    Shardex__Internal__V1__LogOp op = SHARDEX__INTERNAL__V1__LOG_OP__INIT;
    op.op_case = SHARDEX__INTERNAL__V1__LOG_OP__OP_INDEX_SALT;
    op.index_salt = &sa;
    append_raw(f, &op);
}

/* An id "s<k>" whose slot among 3 ways is `slot`, the `nth` such. */
static void id_in_slot(uint32_t slot, int nth, char *out, size_t cap)
{
    for (int k = 0;; k++) {
        snprintf(out, cap, "s%d", k);
        if (sx_ixkey_salt_slot(out, strlen(out), 3) == slot && nth-- == 0)
            return;
    }
}

/* The salt rows at a snapshot (what ScanDocs lists for verify): index 9's
 * salt seq 1 alone, from = its marker's offset. */
static void expect_salt_row(fixture *f, uint64_t from)
{
    sx_arena a = {0};
    sx_err err = {0};
    Shardex__Internal__V1__IndexSalt **rows = NULL;
    size_t n = 0;
    uint64_t applied = 0;
    const sx_snapshot *snap = sx_plog_snapshot(f->p, &applied);
    assert_int_equal(sx_pindex_salts_at(f->ix, snap, &a, &rows, &n, &err), SX_OK);
    sx_store_release_snapshot(sx_plog_store(f->p), snap);
    assert_int_equal(n, 1);
    assert_int_equal(rows[0]->index_id, 9);
    assert_int_equal(rows[0]->seq, 1);
    assert_int_equal(rows[0]->from, from);
    assert_int_equal(rows[0]->ways, 3);
    sx_arena_free(&a);
}

/* index_salt markers (docs/indexes.md "Hot values"): value 150 of range
 * index 9 (t0 = 1) salted over t1, t2, t0. From the marker, an add goes to
 * its id's slot's partition; an entry written before the marker stays in t1
 * until changed, then moves (a remove to t1); one written after never goes
 * back; a rebuild selects by the entry's version as the outbox routes;
 * repeated and out-of-order markers change nothing; all of it survives a
 * reopen, and the salt row (from = the marker's offset) is listed at a
 * snapshot. */
static void test_salt_markers(void **state)
{
    fixture *f = *state;
    char old1[8], old0[8], old2[8], new1[8];
    id_in_slot(1, 0, old1, sizeof(old1)); /* slot 1: t2 */
    id_in_slot(0, 0, old0, sizeof(old0)); /* slot 0: t1 itself */
    id_in_slot(2, 0, old2, sizeof(old2)); /* slot 2: t0 */
    id_in_slot(1, 1, new1, sizeof(new1));
    do_put(f, D(old1, "n:150"));
    do_put(f, D(old0, "n:150"));
    do_put(f, D(old2, "n:150"));
    start_range(f);
    apply_all(f);
    const uint32_t terms[3] = {1, 2, 0};
    uint64_t marker = f->m.offset + 2; /* the one applied */
    salt_marker(f, 2, 150, terms, 3);  /* out of order: nothing */
    salt_marker(f, 1, 150, terms, 3);
    salt_marker(f, 1, 150, terms, 3); /* a repeat: nothing */
    apply_all(f);
    sx_pindex_info info;
    assert_true(sx_pindex_find(f->ix, 9, &info));
    assert_int_equal(info.nsalts, 1);
    assert_int_equal(info.term_count, 3); /* no new partitions */
    expect_salt_row(f, marker);
    uint64_t after = f->m.offset;
    do_put(f, D(old1, "n:150 m:1")); /* kept value, moves t1 -> t2 */
    do_put(f, D(old0, "n:150 m:1")); /* slot 0: stays in t1 */
    do_put(f, D(new1, "n:150"));     /* new: t2 only */
    apply_all(f);
    char got[128];
    outbox_values(f, 1, after, got, sizeof(got));
    assert_string_equal(got, "-150,150");
    outbox_values(f, 2, after, got, sizeof(got));
    assert_string_equal(got, "150,150");
    outbox_values(f, 0, after, got, sizeof(got));
    assert_string_equal(got, "");
    /* Rebuilds at this snapshot: t1 = {old0, old2 (before the marker)},
     * t2 = {old1, new1}, t0 = {}. */
    assert_int_equal(rebuild_count(f, 1), 2);
    assert_int_equal(rebuild_count(f, 2), 2);
    assert_int_equal(rebuild_count(f, 0), 0);

    reopen(f);
    after = f->m.offset;
    do_put(f, D(old1, "n:150 m:2")); /* written after the marker: no remove */
    do_del(f, old2);                 /* written before: removed from t1 */
    do_put(f, D(new1, "n:50"));      /* value changed: removed from t2, added to t0 */
    apply_all(f);
    outbox_values(f, 1, after, got, sizeof(got));
    assert_string_equal(got, "-150");
    outbox_values(f, 2, after, got, sizeof(got));
    assert_string_equal(got, "150,-150");
    outbox_values(f, 0, after, got, sizeof(got));
    assert_string_equal(got, "50");
    assert_true(sx_pindex_find(f->ix, 9, &info));
    assert_int_equal(info.nsalts, 1);
    expect_salt_row(f, marker);
    assert_int_equal(rebuild_count(f, 1), 1);
    assert_int_equal(rebuild_count(f, 2), 1);
    assert_int_equal(rebuild_count(f, 0), 1);
}

static void test_random(void **state)
{
    fixture *f = *state;
    sx_err err = {0};
    rng_state = seed;
    enum { STEPS = 1500, IDS = 50 };
    const mix specs[] = {
        SPEC(21, "color", "color", false, true, true, 4), SPEC(22, "n", "n", true, true, true, 3),
        SPEC(23, "hue", "color", false, false, true, 5), /* global only; dropped, restarted */
        SPEC(24, "nl", "n", true, true, false, 0),       /* local only */
    };
    uint64_t at[4];
    for (int i = 0; i < 4; i++)
        at[i] = rnd_below(STEPS / 2);
    uint64_t drop23 = at[2] + 1 + rnd_below(STEPS / 3), restart23 = drop23 + 1 + rnd_below(50);
    owner *owners = calloc(3 * MAXT, sizeof(*owners));
    assert_non_null(owners);
    for (size_t i = 0; i < 3 * MAXT; i++) {
        owners[i].e = calloc(MAXENT, sizeof(ment));
        assert_non_null(owners[i].e);
    }
    size_t checks = 0, reopens = 0, trims = 0;
    for (uint64_t s = 0; s < STEPS; s++) {
        for (int i = 0; i < 4; i++)
            if (at[i] == s)
                do_start(f, specs[i]);
        if (s == drop23 || s == restart23) {
            if (s == drop23)
                do_drop(f, 23);
            else
                do_start(f, specs[2]);
            for (uint32_t t = 0; t < MAXT; t++)
                owners[2 * MAXT + t].n = owners[2 * MAXT + t].wm = 0;
        }
        char id[8];
        snprintf(id, sizeof(id), "d%02d", (int)rnd_below(IDS));
        if (rnd_below(5) == 0) {
            do_del(f, id);
        } else {
            mdoc d;
            rnd_doc(&d, id);
            do_put(f, d);
        }
        uint64_t x = rnd_below(100);
        if (x < 12) {
            /* Apply part of what was appended, so batches start anywhere. */
            uint64_t applied = sx_plog_applied(f->p);
            apply_to(f, applied + rnd_below(f->m.offset - applied + 1));
        } else if (x < 16 || s == STEPS - 1) {
            apply_all(f);
            check_all(f);
            checks++;
            /* Ship, then the owner acknowledges and the outbox is trimmed. */
            for (int i = 0; i < 3; i++) {
                const mix *ix = m_ix(&f->m, specs[i].id);
                if (!ix || !ix->active)
                    continue;
                for (uint32_t t = 0; t < ix->m; t++) {
                    owner *o = &owners[(size_t)i * MAXT + t];
                    if (rnd_below(3) == 0)
                        o->n = o->wm = 0; /* a new owner: rebuilt if trimmed */
                    owner_ship(f, ix, t, o);
                    owner_check(f, ix, t, o);
                    if (rnd_below(2) == 0) {
                        uint64_t upto = rnd_below(o->wm + 1);
                        if (upto >= ix->floor[t]) {
                            assert_int_equal(sx_pindex_outbox_trim(f->ix, ix->id, t, upto, &err),
                                             SX_OK);
                            m_trim(&f->m, ix->id, t, upto);
                            trims++;
                        }
                    }
                }
            }
            check_all(f);
        } else if (x < 17) {
            if (rnd_below(2)) /* else what is left is applied after the restart */
                apply_all(f);
            reopen(f);
            reopens++;
        }
    }
    print_message("random: %" PRIu64 " offsets, %zu checks, %zu reopens, %zu trims\n", f->m.offset,
                  checks, reopens, trims);
    for (size_t i = 0; i < 3 * MAXT; i++)
        free(owners[i].e);
    free(owners);
}

/* A backfill in chunks with writes applied between them (puts, overwrites and
 * deletes on both sides of the cursor, mistyped values among them) and
 * reopens (the cursor is durable): while it runs a scan is refused and the
 * progress only rises; at the end the local index, the mistyped count, the
 * digest and the outbox replayed into each term partition equal the model's,
 * although the outbox at the marker's offset lacks what writes touched
 * first. */
static void test_backfill_interleaved(void **state)
{
    fixture *f = *state;
    sx_err err = {0};
    rng_state = seed;
    enum { IDS = 50 };
    const mix spec = SPEC(31, "color", "color", false, true, true, 4);
    for (int i = 0; i < IDS; i++) {
        char id[8];
        snprintf(id, sizeof(id), "d%02d", i);
        mdoc d;
        rnd_doc(&d, id);
        do_put(f, d);
    }
    apply_all(f);
    do_start(f, spec);
    assert_int_equal(sx_plog_apply(f->p, f->m.offset, NULL, &err), SX_OK);
    uint64_t last_done = 0;
    size_t steps = 0, reopens = 0;
    for (bool running = true; running; steps++) {
        for (uint64_t w = rnd_below(4); w > 0; w--) {
            char id[8];
            snprintf(id, sizeof(id), "d%02d", (int)rnd_below(IDS));
            if (rnd_below(5) == 0) {
                do_del(f, id);
            } else {
                mdoc d;
                rnd_doc(&d, id);
                do_put(f, d);
            }
        }
        assert_int_equal(sx_plog_apply(f->p, f->m.offset, NULL, &err), SX_OK);
        sx_pindex_info info;
        assert_true(sx_pindex_find(f->ix, spec.id, &info));
        assert_true(info.filling);
        assert_true(info.fill_done >= last_done);
        last_done = info.fill_done;
        sx_arena a = {0};
        Shardex__Internal__V1__ScanRequest req;
        Shardex__Internal__V1__ScanResponse resp = SHARDEX__INTERNAL__V1__SCAN_RESPONSE__INIT;
        scan_req(&req, spec.id, 10);
        assert_int_equal(sx_pindex_scan(f->ix, &req, &a, &resp, &err), SX_UNAVAILABLE);
        sx_arena_free(&a);
        if (rnd_below(8) == 0) {
            reopen(f);
            reopens++;
        }
        sx_pindex_step step;
        assert_int_equal(sx_pindex_backfill_step(f->ix, 1 + rnd_below(4), &step, &err), SX_OK);
        assert_int_equal(step.index_id, spec.id);
        running = !step.finished;
    }
    sx_pindex_info info;
    assert_true(sx_pindex_find(f->ix, spec.id, &info));
    assert_false(info.filling);
    assert_true(info.fill_done >= last_done && info.fill_total >= IDS / 2);
    print_message("interleaved: %zu chunks, %zu reopens, %" PRIu64 " offsets\n", steps, reopens,
                  f->m.offset);
    assert_true(steps > 10);
    const mix *x = m_ix(&f->m, spec.id);
    check_catalog(f);
    check_local(f, x, 0);
    check_local(f, x, 3);
    check_digest(f, x);
    owner o = {.e = calloc(MAXENT, sizeof(ment))};
    assert_non_null(o.e);
    for (uint32_t t = 0; t < x->m; t++) {
        o.n = o.wm = 0;
        owner_ship(f, x, t, &o);
        owner_check(f, x, t, &o);
    }
    free(o.e);
    /* Nothing left: a step is a no-op. */
    sx_pindex_step step;
    assert_int_equal(sx_pindex_backfill_step(f->ix, 10, &step, &err), SX_OK);
    assert_int_equal(step.index_id, 0);
}

int main(void)
{
    seed = sx_fx_seed();

    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_backfill, setup, teardown),
        cmocka_unit_test_setup_teardown(test_live_apply, setup, teardown),
        cmocka_unit_test_setup_teardown(test_outbox_paging, setup, teardown),
        cmocka_unit_test_setup_teardown(test_outbox_read_max0, setup, teardown),
        cmocka_unit_test_setup_teardown(test_split_markers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_salt_markers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trim, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rebuild, setup, teardown),
        cmocka_unit_test_setup_teardown(test_digest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_outbox_records, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_int_range, setup, teardown),
        cmocka_unit_test_setup_teardown(test_readers_during_apply, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scan_huge_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_marker_global_without_m, setup, teardown),
        cmocka_unit_test_setup_teardown(test_random, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backfill_interleaved, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
