/* test_tstore.c: unit tests for tstore.h against a real LevelDB on disk.
 *
 * Each test gets its own mkdtemp directory (removed by the teardown) and goes
 * through the header: ownership from hand-made cluster maps, shipped batches
 * (replays and overlaps skipped, gaps refused, rebuilds only at watermark 0,
 * rebuilds in chunks, resumed by no restart,
 * stale leader epochs and foreign partitions refused), scans (order, paging,
 * limits, ranges, waiting for tokens, staleness), digests against one computed
 * by hand, wipes when ownership moves or an index is dropped (checked by
 * opening the store underneath with common/store.h), restarts, and leftovers
 * of an interrupted wipe; the load it reports (changes streamed, scans).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the four above, which it needs */

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "fixture.h"
#include "harness.h"
#include "hash.h"
#include "ixkey.h"
#include "keys.h"
#include "rate.h"
#include "store.h"
#include "tstore.h"

#include "shardex/internal/v1/coordinator.pb-c.h"
#include "shardex/internal/v1/index.pb-c.h"
#include "shardex/v1/shardex.pb-c.h"

#define IDX 5        /* the string index most tests use */
#define IDX_INT 7    /* an int index */
#define EPOCH 3      /* the owner epoch of the first map */
#define NPART 2      /* log partitions */
#define ME 0         /* this worker's index in the maps */
#define OTHER 1      /* another worker */
#define MAX_CHG 1000 /* changes in one test batch */

/* ---- fixture ---- */

typedef struct fixture {
    char dir[PATH_MAX];    /* the mkdtemp directory */
    char db[PATH_MAX + 8]; /* dir/terms: the store */
    sx_tstore *ts;         /* open on db unless a test closed it */
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    if (!f)
        return -1;
    sx_h_tmpdir(f->dir, sizeof(f->dir), "tstore");
    snprintf(f->db, sizeof(f->db), "%s/terms", f->dir);
    sx_err err = {0};
    if (sx_tstore_open(f->db, NULL, 0, &f->ts, &err) != SX_OK) {
        fprintf(stderr, "open: %s\n", err.msg);
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    sx_tstore_close(f->ts);
    sx_h_tmpdir_done(f->dir);
    free(f);
    return 0;
}

static void reopen(fixture *f)
{
    sx_err err = {0};
    sx_tstore_close(f->ts);
    f->ts = NULL;
    assert_int_equal(sx_tstore_open(f->db, NULL, 0, &f->ts, &err), SX_OK);
}

/* ---- maps ---- */

#define MAP_INDEXES 4
#define MAP_TERMS 32

typedef struct testmap {
    Shardex__Internal__V1__ClusterMap map;
    Shardex__Internal__V1__ClusterSettings settings;
    Shardex__V1__IndexSpec spec[MAP_INDEXES];
    Shardex__Internal__V1__IndexEntry ie[MAP_INDEXES];
    Shardex__Internal__V1__IndexEntry *iep[MAP_INDEXES];
    Shardex__Internal__V1__TermPartition tp[MAP_TERMS];
    Shardex__Internal__V1__TermPartition *tpp[MAP_TERMS];
} testmap;

static void map_init(testmap *m, uint64_t version)
{
    memset(m, 0, sizeof(*m));
    shardex__internal__v1__cluster_map__init(&m->map);
    shardex__internal__v1__cluster_settings__init(&m->settings);
    m->settings.partitions = NPART;
    m->map.version = version;
    m->map.settings = &m->settings;
    m->map.indexes = m->iep;
    m->map.terms = m->tpp;
}

/* Adds a global index of M term partitions: owners[t] at epochs[t]. */
static void map_add(testmap *m, uint64_t id, bool is_int, uint32_t M, const int32_t *owners,
                    const uint64_t *epochs)
{
    size_t i = m->map.n_indexes++;
    assert_true(i < MAP_INDEXES && m->map.n_terms + M <= MAP_TERMS);
    shardex__v1__index_spec__init(&m->spec[i]);
    m->spec[i].name = "ix";
    m->spec[i].field = "f";
    m->spec[i].type = is_int ? SHARDEX__V1__VALUE_TYPE__VALUE_TYPE_INT
                             : SHARDEX__V1__VALUE_TYPE__VALUE_TYPE_STRING;
    m->spec[i].global = true;
    m->spec[i].term_partitions = M;
    shardex__internal__v1__index_entry__init(&m->ie[i]);
    m->ie[i].spec = &m->spec[i];
    m->ie[i].id = id;
    m->ie[i].first_term = (uint32_t)m->map.n_terms;
    m->iep[i] = &m->ie[i];
    for (uint32_t t = 0; t < M; t++) {
        size_t k = m->map.n_terms++;
        shardex__internal__v1__term_partition__init(&m->tp[k]);
        m->tp[k].owner = owners[t];
        m->tp[k].epoch = epochs[t];
        m->tpp[k] = &m->tp[k];
    }
}

/* Map `version` where this worker owns term 0 (of 2) of IDX at epoch. */
static void install(fixture *f, uint64_t version, uint64_t epoch)
{
    testmap m;
    map_init(&m, version);
    int32_t owners[] = {ME, OTHER};
    uint64_t epochs[] = {epoch, EPOCH};
    map_add(&m, IDX, false, 2, owners, epochs);
    sx_tstore_on_map(f->ts, &m.map, ME);
    sx_tstore_wait_wipes(f->ts);
}

/* ---- keys ---- */

static void key_s(sx_buf *b, const char *value, const char *id)
{
    sx_buf_reset(b);
    sx_key_append_str(b, value, strlen(value));
    sx_key_append_str(b, id, strlen(id));
}

static void key_i(sx_buf *b, int64_t value, const char *id)
{
    sx_buf_reset(b);
    sx_key_append_i64(b, value);
    sx_key_append_str(b, id, strlen(id));
}

/* ---- ship batches ---- */

typedef struct shipb {
    Shardex__Internal__V1__ShipRequest req;
    Shardex__Internal__V1__Change ch[MAX_CHG];
    Shardex__Internal__V1__Change *chp[MAX_CHG];
    sx_buf keys[MAX_CHG];
} shipb;

static shipb *sb_new(uint64_t index_id, uint64_t owner_epoch, uint32_t p, uint64_t leader_epoch,
                     uint64_t prev, uint64_t up_to)
{
    shipb *s = calloc(1, sizeof(*s));
    assert_non_null(s);
    shardex__internal__v1__ship_request__init(&s->req);
    s->req.index_id = index_id;
    s->req.term_partition = 0;
    s->req.owner_epoch = owner_epoch;
    s->req.partition = p;
    s->req.leader_epoch = leader_epoch;
    s->req.partitions = NPART;
    s->req.prev_offset = prev;
    s->req.up_to_offset = up_to;
    s->req.changes = s->chp;
    return s;
}

static void sb_free(shipb *s)
{
    for (size_t i = 0; i < MAX_CHG; i++)
        sx_buf_free(&s->keys[i]);
    free(s);
}

static Shardex__Internal__V1__Change *sb_add(shipb *s, bool remove, uint64_t version,
                                             uint64_t offset)
{
    size_t i = s->req.n_changes++;
    assert_true(i < MAX_CHG);
    shardex__internal__v1__change__init(&s->ch[i]);
    s->ch[i].remove = remove;
    s->ch[i].version = version;
    s->ch[i].offset = offset;
    s->chp[i] = &s->ch[i];
    return &s->ch[i];
}

static void sb_put(shipb *s, const char *value, const char *id, uint64_t version, uint64_t offset)
{
    size_t i = s->req.n_changes;
    Shardex__Internal__V1__Change *c = sb_add(s, false, version, offset);
    key_s(&s->keys[i], value, id);
    c->key.data = s->keys[i].data;
    c->key.len = s->keys[i].len;
}

static void sb_put_i(shipb *s, int64_t value, const char *id, uint64_t version, uint64_t offset)
{
    size_t i = s->req.n_changes;
    Shardex__Internal__V1__Change *c = sb_add(s, false, version, offset);
    key_i(&s->keys[i], value, id);
    c->key.data = s->keys[i].data;
    c->key.len = s->keys[i].len;
}

static void sb_del(shipb *s, const char *value, const char *id, uint64_t offset)
{
    size_t i = s->req.n_changes;
    Shardex__Internal__V1__Change *c = sb_add(s, true, 0, offset);
    key_s(&s->keys[i], value, id);
    c->key.data = s->keys[i].data;
    c->key.len = s->keys[i].len;
}

/* Ships s; *wm and *applied from the response (untouched on error). */
static sx_status sb_ship(fixture *f, shipb *s, uint64_t *wm, bool *applied)
{
    Shardex__Internal__V1__ShipResponse resp = SHARDEX__INTERNAL__V1__SHIP_RESPONSE__INIT;
    sx_err err = {0};
    sx_status st = sx_tstore_ship(f->ts, &s->req, &resp, &err);
    if (st == SX_OK) {
        if (wm)
            *wm = resp.watermark;
        if (applied)
            *applied = resp.applied;
    }
    return st;
}

/* Ships s, which must succeed with watermark wm and applied; frees it. */
static void ship_ok(fixture *f, shipb *s, uint64_t wm, bool applied)
{
    uint64_t got_wm = 12345;
    bool got_applied = !applied;
    assert_int_equal(sb_ship(f, s, &got_wm, &got_applied), SX_OK);
    assert_int_equal(got_wm, wm);
    assert_int_equal(got_applied, applied);
    sb_free(s);
}

/* An empty batch (prev, up_to] of p at leader epoch 1 and owner epoch EPOCH. */
static void ship_empty(fixture *f, uint32_t p, uint64_t prev, uint64_t up_to)
{
    ship_ok(f, sb_new(IDX, EPOCH, p, 1, prev, up_to), up_to, true);
}

/* ---- digests and scans ---- */

typedef struct want {
    const char *value;
    const char *id;
    uint64_t version;
} want;

/* Checks term 0 of IDX at epoch: entries exactly `w` (in key order), and
 * digest, count and watermarks as the store reports them. */
static void check_digest(fixture *f, uint64_t epoch, const want *w, size_t n, const uint64_t *wms)
{
    Shardex__Internal__V1__DigestRequest req = SHARDEX__INTERNAL__V1__DIGEST_REQUEST__INIT;
    req.index_id = IDX;
    req.partition = 0;
    req.term = true;
    req.entries = true;
    req.epoch = epoch;
    Shardex__Internal__V1__DigestResponse resp = SHARDEX__INTERNAL__V1__DIGEST_RESPONSE__INIT;
    sx_arena arena = {0};
    sx_err err = {0};
    assert_int_equal(sx_tstore_digest(f->ts, &req, &arena, &resp, &err), SX_OK);
    assert_true(resp.active);
    sx_buf k = {0};
    uint64_t digest = 0;
    for (size_t i = 0; i < n; i++) {
        key_s(&k, w[i].value, w[i].id);
        digest = sx_ixkey_digest_add(digest, k.data, k.len, w[i].version);
    }
    assert_int_equal(resp.count, n);
    assert_int_equal(resp.digest, digest);
    assert_int_equal(resp.n_entries, n);
    for (size_t i = 0; i < n; i++) {
        key_s(&k, w[i].value, w[i].id);
        assert_int_equal(resp.entries[i]->key.len, k.len);
        assert_memory_equal(resp.entries[i]->key.data, k.data, k.len);
        assert_int_equal(resp.entries[i]->version, w[i].version);
    }
    assert_int_equal(resp.n_watermarks, NPART);
    for (size_t p = 0; p < NPART; p++)
        assert_int_equal(resp.watermarks[p], wms[p]);
    sx_buf_free(&k);
    sx_arena_free(&arena);
}

static void scan_req(Shardex__Internal__V1__ScanRequest *req, uint64_t index_id, uint64_t epoch)
{
    shardex__internal__v1__scan_request__init(req);
    req->index_id = index_id;
    req->partition = 0;
    req->epoch = epoch;
    req->partitions = NPART;
}

static sx_status scan(fixture *f, const Shardex__Internal__V1__ScanRequest *req,
                      uint64_t deadline_ms, sx_arena *arena,
                      Shardex__Internal__V1__ScanResponse *resp, sx_err *err)
{
    shardex__internal__v1__scan_response__init(resp);
    return sx_tstore_scan(f->ts, req, deadline_ms, arena, resp, err);
}

/* Keys of every entry of (index_id, t) in the store under f->db, which must be
 * closed, with this tag ('S', 'W', 'T'). */
static size_t raw_count(fixture *f, uint8_t tag, uint64_t index_id, uint32_t t)
{
    sx_store *s = sx_fx_store_open(f->db, NULL);
    sx_err err = {0};
    sx_buf prefix = {0};
    sx_buf_push(&prefix, tag);
    sx_key_append_u64(&prefix, index_id);
    sx_key_append_u32(&prefix, t);
    sx_iter *it = sx_store_iter_prefix(s, NULL, prefix.data, prefix.len);
    size_t n = 0;
    for (; sx_iter_valid(it); sx_iter_next(it))
        n++;
    assert_int_equal(sx_iter_status(it, &err), SX_OK);
    sx_iter_destroy(it);
    sx_store_close(s);
    sx_buf_free(&prefix);
    return n;
}

static size_t raw_all(fixture *f, uint64_t index_id, uint32_t t)
{
    return raw_count(f, 'S', index_id, t) + raw_count(f, 'W', index_id, t) +
           raw_count(f, 'T', index_id, t);
}

/* ---- tests ---- */

static void test_own_and_report(void **state)
{
    fixture *f = *state;
    sx_arena arena = {0};
    Shardex__Internal__V1__TermReport **r = NULL;
    assert_int_equal(sx_tstore_reports(f->ts, &arena, &r), 0);
    install(f, 1, EPOCH);
    assert_int_equal(sx_tstore_reports(f->ts, &arena, &r), 1);
    assert_int_equal(r[0]->index_id, IDX);
    assert_int_equal(r[0]->term_partition, 0);
    assert_int_equal(r[0]->epoch, EPOCH);
    assert_false(r[0]->ready);
    assert_int_equal(r[0]->n_watermarks, NPART);
    assert_int_equal(r[0]->watermarks[0], 0);
    assert_int_equal(r[0]->watermarks[1], 0);
    ship_empty(f, 0, 0, 4);
    assert_int_equal(sx_tstore_reports(f->ts, &arena, &r), 1);
    assert_false(r[0]->ready);
    ship_empty(f, 1, 0, 9);
    assert_int_equal(sx_tstore_reports(f->ts, &arena, &r), 1);
    assert_true(r[0]->ready);
    assert_int_equal(r[0]->watermarks[0], 4);
    assert_int_equal(r[0]->watermarks[1], 9);
    sx_arena_free(&arena);
}

/* This term partition's load as its report says. */
static void report_load(fixture *f, double *writes, double *reads)
{
    sx_arena arena = {0};
    Shardex__Internal__V1__TermReport **r = NULL;
    assert_int_equal(sx_tstore_reports(f->ts, &arena, &r), 1);
    *writes = r[0]->writes_per_s;
    *reads = r[0]->reads_per_s;
    sx_arena_free(&arena);
}

/* The load reported (common/rate.h, a 5 s time constant: n events weigh at
 * most n / 5 per second): changes a stream applied, not a rebuild's nor
 * those below the watermark; scans served, not refused ones; both back to 0
 * at a new owner epoch. Only upper bounds on time: decay only lowers. */
static void test_load_report(void **state)
{
    fixture *f = *state;
    const double tau_s = SX_RATE_TAU_MS_DEFAULT / 1000.0;
    double w = -1, r = -1;
    install(f, 1, EPOCH);
    report_load(f, &w, &r);
    assert_true(w == 0 && r == 0);
    shipb *s = sb_new(IDX, EPOCH, 0, 1, 0, 50);
    s->req.rebuild = true;
    sb_put(s, "a", "d1", 7, 7);
    sb_put(s, "b", "d2", 40, 40);
    ship_ok(f, s, 50, true);
    ship_empty(f, 1, 0, 9);
    report_load(f, &w, &r);
    assert_true(w == 0 && r == 0);
    s = sb_new(IDX, EPOCH, 0, 1, 48, 52);
    sb_put(s, "z", "d9", 49, 49); /* below the watermark: skipped */
    sb_put(s, "c", "d3", 51, 51);
    sb_del(s, "a", "d1", 52);
    ship_ok(f, s, 52, true);
    report_load(f, &w, &r);
    assert_true(w > 0 && w <= 2 / tau_s + 1e-9);
    assert_true(r == 0);

    Shardex__Internal__V1__ScanRequest req;
    scan_req(&req, IDX, EPOCH + 1); /* not the owner epoch: refused */
    Shardex__Internal__V1__ScanResponse resp;
    sx_arena arena = {0};
    sx_err err = {0};
    assert_int_equal(scan(f, &req, UINT64_MAX, &arena, &resp, &err), SX_FAILED_PRECONDITION);
    report_load(f, &w, &r);
    assert_true(r == 0);
    scan_req(&req, IDX, EPOCH);
    assert_int_equal(scan(f, &req, UINT64_MAX, &arena, &resp, &err), SX_OK);
    assert_int_equal(resp.n_hits, 2);
    report_load(f, &w, &r);
    assert_true(r > 0 && r <= 1 / tau_s + 1e-9);
    sx_arena_free(&arena);

    install(f, 2, EPOCH + 1); /* moved back to me at a new epoch: wiped, unloaded */
    report_load(f, &w, &r);
    assert_true(w == 0 && r == 0);
}

static void test_ship_exactly_once(void **state)
{
    fixture *f = *state;
    install(f, 1, EPOCH);
    shipb *s = sb_new(IDX, EPOCH, 0, 1, 0, 3);
    sb_put(s, "a", "d1", 1, 1);
    sb_put(s, "b", "d2", 2, 2);
    sb_put(s, "c", "d3", 3, 3);
    ship_ok(f, s, 3, true);
    want w1[] = {{"a", "d1", 1}, {"b", "d2", 2}, {"c", "d3", 3}};
    uint64_t wm1[] = {3, 0};
    check_digest(f, EPOCH, w1, 3, wm1);

    /* The same batch again (a retry after a lost answer): nothing changes. */
    s = sb_new(IDX, EPOCH, 0, 1, 0, 3);
    sb_put(s, "a", "d1", 1, 1);
    sb_del(s, "b", "d2", 2); /* would remove b if replayed */
    sb_put(s, "c", "d3", 3, 3);
    ship_ok(f, s, 3, true);
    check_digest(f, EPOCH, w1, 3, wm1);

    /* An overlapping batch (a new leader resending from an older offset):
     * the change at 3 is skipped, those after it apply. */
    s = sb_new(IDX, EPOCH, 0, 2, 2, 5);
    sb_put(s, "c", "d3", 77, 3);
    sb_del(s, "a", "d1", 4);
    sb_put(s, "d", "d4", 5, 5);
    sb_put(s, "e", "d4", 5, 5); /* two entries from one offset */
    ship_ok(f, s, 5, true);
    s = sb_new(IDX, EPOCH, 1, 1, 0, 10);
    sb_put(s, "a", "x", 10, 10);
    ship_ok(f, s, 10, true);
    want w2[] = {{"a", "x", 10}, {"b", "d2", 2}, {"c", "d3", 3}, {"d", "d4", 5}, {"e", "d4", 5}};
    uint64_t wm2[] = {5, 10};
    check_digest(f, EPOCH, w2, 5, wm2);

    /* A gap: prev_offset above the watermark is not applied, the answer says
     * where to resend from. */
    s = sb_new(IDX, EPOCH, 0, 2, 7, 9);
    sb_put(s, "f", "d5", 8, 8);
    ship_ok(f, s, 5, false);
    check_digest(f, EPOCH, w2, 5, wm2);

    /* An idle batch raises the watermark. */
    ship_ok(f, sb_new(IDX, EPOCH, 0, 2, 5, 12), 12, true);
    uint64_t wm3[] = {12, 10};
    check_digest(f, EPOCH, w2, 5, wm3);
    /* A batch entirely below the watermark is accepted and changes nothing. */
    s = sb_new(IDX, EPOCH, 0, 2, 3, 6);
    sb_put(s, "z", "z", 6, 6);
    ship_ok(f, s, 12, true);
    check_digest(f, EPOCH, w2, 5, wm3);
}

/* The k-th id ("p<p>-<n>") that lives in log partition p of NPART. */
static const char *id_in(uint32_t p, int k, char *buf, size_t cap)
{
    for (int n = 0;; n++) {
        snprintf(buf, cap, "p%u-%d", p, n);
        if (sx_partition_of(buf, strlen(buf), NPART) == p && k-- == 0)
            return buf;
    }
}

static void test_rebuild(void **state)
{
    fixture *f = *state;
    char a[32], b[32], c[32], q[32], r[32];
    id_in(0, 0, a, sizeof(a));
    id_in(0, 1, b, sizeof(b));
    id_in(0, 2, c, sizeof(c));
    id_in(1, 0, q, sizeof(q));
    id_in(1, 1, r, sizeof(r));
    install(f, 1, EPOCH);
    shipb *s = sb_new(IDX, EPOCH, 0, 1, 0, 50);
    s->req.rebuild = true;
    sb_put(s, "a", a, 7, 7);
    sb_put(s, "b", b, 40, 40);
    ship_ok(f, s, 50, true);
    /* A retry of the same rebuild is not applied: not above wm[p]. */
    s = sb_new(IDX, EPOCH, 0, 1, 0, 50);
    s->req.rebuild = true;
    sb_put(s, "zz", c, 45, 45);
    ship_ok(f, s, 50, false);
    /* The live changes after the snapshot follow. */
    s = sb_new(IDX, EPOCH, 0, 1, 50, 52);
    sb_put(s, "c", c, 51, 51);
    ship_ok(f, s, 52, true);
    /* p = 1 shipped up to 3 (one entry); a rebuild of it at 9 (its leader
     * trimmed past 3) replaces p = 1's share, and only p = 1's. */
    s = sb_new(IDX, EPOCH, 1, 1, 0, 3);
    sb_put(s, "x", q, 2, 2);
    ship_ok(f, s, 3, true);
    s = sb_new(IDX, EPOCH, 1, 1, 0, 9);
    s->req.rebuild = true;
    sb_put(s, "y", r, 8, 8);
    ship_ok(f, s, 9, true);
    /* A rebuild at or below the watermark is stale: not applied. */
    s = sb_new(IDX, EPOCH, 1, 1, 0, 9);
    s->req.rebuild = true;
    sb_put(s, "q", q, 1, 1);
    ship_ok(f, s, 9, false);
    want w[] = {{"a", a, 7}, {"b", b, 40}, {"c", c, 51}, {"y", r, 8}};
    uint64_t wm[] = {52, 9};
    check_digest(f, EPOCH, w, 4, wm);
}

/* A chunk of rebuild `id` of p at up_to. */
static shipb *chunk(uint32_t p, uint64_t up_to, uint64_t id, uint32_t k, bool last)
{
    shipb *s = sb_new(IDX, EPOCH, p, 1, 0, up_to);
    s->req.rebuild = true;
    s->req.rebuild_id = id;
    s->req.rebuild_chunk = k;
    s->req.rebuild_last = last;
    return s;
}

/* Scans of term 0 answer UNAVAILABLE (a share being rebuilt). */
static void scan_unavailable(fixture *f)
{
    Shardex__Internal__V1__ScanRequest req;
    scan_req(&req, IDX, EPOCH);
    Shardex__Internal__V1__ScanResponse resp;
    sx_arena arena = {0};
    sx_err err = {0};
    assert_int_equal(scan(f, &req, UINT64_MAX, &arena, &resp, &err), SX_UNAVAILABLE);
    sx_arena_free(&arena);
}

/* Rebuilds in chunks: applied in order without moving the watermark (scans
 * wait), resends answered, gaps and other rebuilds refused, the last chunk
 * sets it; a new rebuild, a restart, or live shipping from 0 wipes an
 * unfinished one. */
static void test_rebuild_chunks(void **state)
{
    fixture *f = *state;
    char a[32], b[32], c[32], q[32], r[32];
    id_in(0, 0, a, sizeof(a));
    id_in(0, 1, b, sizeof(b));
    id_in(0, 2, c, sizeof(c));
    id_in(1, 0, q, sizeof(q));
    id_in(1, 1, r, sizeof(r));
    install(f, 1, EPOCH);
    ship_empty(f, 1, 0, 4); /* p = 1 at 4, so that only p = 0 keeps scans waiting */

    shipb *s = chunk(0, 50, 77, 0, false);
    sb_put(s, "a", a, 7, 50);
    ship_ok(f, s, 0, true);
    scan_unavailable(f);
    s = chunk(0, 50, 77, 1, false);
    sb_put(s, "b", b, 40, 50);
    ship_ok(f, s, 0, true);
    /* a resend of chunk 1 (its answer was lost): answered, not applied twice */
    s = chunk(0, 50, 77, 1, false);
    sb_put(s, "zz", b, 41, 50);
    ship_ok(f, s, 0, true);
    /* a gap, and a chunk of another rebuild: not applied */
    s = chunk(0, 50, 77, 3, true);
    sb_put(s, "zz", c, 45, 50);
    ship_ok(f, s, 0, false);
    s = chunk(0, 50, 78, 2, true);
    sb_put(s, "zz", c, 45, 50);
    ship_ok(f, s, 0, false);
    /* live shipping waits for the rebuild: prev 50 is above wm 0 */
    s = sb_new(IDX, EPOCH, 0, 1, 50, 51);
    sb_put(s, "zz", c, 51, 51);
    ship_ok(f, s, 0, false);
    uint64_t wm0[] = {0, 4};
    want w0[] = {{"a", a, 7}, {"b", b, 40}};
    check_digest(f, EPOCH, w0, 2, wm0);
    scan_unavailable(f);
    s = chunk(0, 50, 77, 2, true);
    sb_put(s, "c", c, 45, 50);
    ship_ok(f, s, 50, true);
    uint64_t wm1[] = {50, 4};
    want w1[] = {{"a", a, 7}, {"b", b, 40}, {"c", c, 45}};
    check_digest(f, EPOCH, w1, 3, wm1);

    /* A rebuild over p = 1's share at 4: the share goes with chunk 0, the
     * watermark drops to 0 until the last chunk. */
    s = sb_new(IDX, EPOCH, 1, 1, 4, 6);
    sb_put(s, "x", q, 5, 5);
    ship_ok(f, s, 6, true);
    s = chunk(1, 9, 90, 0, false);
    sb_put(s, "y", r, 8, 9);
    ship_ok(f, s, 0, true);
    scan_unavailable(f);
    uint64_t wm2[] = {50, 0};
    want w2[] = {{"a", a, 7}, {"b", b, 40}, {"c", c, 45}, {"y", r, 8}};
    check_digest(f, EPOCH, w2, 4, wm2);
    /* ... interrupted by a restart: the partial share is wiped, and the
     * rebuild is not resumed */
    reopen(f);
    install(f, 1, EPOCH);
    check_digest(f, EPOCH, w1, 3, wm2);
    s = chunk(1, 9, 90, 1, true);
    sb_put(s, "x", q, 5, 9);
    ship_ok(f, s, 0, false);
    /* A new rebuild wipes an unfinished one. */
    s = chunk(1, 9, 91, 0, false);
    sb_put(s, "y", r, 8, 9);
    ship_ok(f, s, 0, true);
    s = chunk(1, 10, 92, 0, true);
    sb_put(s, "x", q, 5, 10);
    ship_ok(f, s, 10, true);
    uint64_t wm3[] = {50, 10};
    want w3[] = {{"a", a, 7}, {"b", b, 40}, {"c", c, 45}, {"x", q, 5}};
    check_digest(f, EPOCH, w3, 4, wm3);
    /* A rebuild a new leader gave up for live shipping from 0 (its outbox
     * was never trimmed): the partial share goes first. */
    s = chunk(1, 12, 93, 0, false);
    sb_put(s, "y", r, 8, 12);
    ship_ok(f, s, 0, true);
    s = sb_new(IDX, EPOCH, 1, 2, 0, 11);
    sb_put(s, "x", q, 5, 5);
    sb_put(s, "w", r, 11, 11);
    ship_ok(f, s, 11, true);
    uint64_t wm4[] = {50, 11};
    want w4[] = {{"a", a, 7}, {"b", b, 40}, {"c", c, 45}, {"w", r, 11}, {"x", q, 5}};
    check_digest(f, EPOCH, w4, 5, wm4);
    /* rebuild_chunk without rebuild_id is refused */
    s = chunk(1, 12, 0, 1, true);
    s->req.leader_epoch = 2;
    uint64_t wm;
    bool applied;
    assert_int_equal(sb_ship(f, s, &wm, &applied), SX_INVALID_ARGUMENT);
    sb_free(s);
}

static void test_refusals(void **state)
{
    fixture *f = *state;
    install(f, 1, EPOCH);
    ship_ok(f, sb_new(IDX, EPOCH, 0, 5, 0, 2), 2, true);
    /* An older leader of p is fenced off; the same or a newer one is not. */
    shipb *s = sb_new(IDX, EPOCH, 0, 4, 2, 3);
    assert_int_equal(sb_ship(f, s, NULL, NULL), SX_FAILED_PRECONDITION);
    sb_free(s);
    ship_ok(f, sb_new(IDX, EPOCH, 0, 5, 2, 3), 3, true);
    /* A gap still records the newer leader epoch. */
    ship_ok(f, sb_new(IDX, EPOCH, 0, 7, 9, 10), 3, false);
    s = sb_new(IDX, EPOCH, 0, 6, 3, 4);
    assert_int_equal(sb_ship(f, s, NULL, NULL), SX_FAILED_PRECONDITION);
    sb_free(s);
    /* Other epochs, term partitions and indexes are not owned here. */
    s = sb_new(IDX, EPOCH + 1, 0, 9, 3, 4);
    assert_int_equal(sb_ship(f, s, NULL, NULL), SX_FAILED_PRECONDITION);
    s->req.owner_epoch = EPOCH;
    s->req.term_partition = 1;
    assert_int_equal(sb_ship(f, s, NULL, NULL), SX_FAILED_PRECONDITION);
    s->req.term_partition = 0;
    s->req.index_id = IDX + 1;
    assert_int_equal(sb_ship(f, s, NULL, NULL), SX_FAILED_PRECONDITION);
    s->req.index_id = IDX;
    /* Malformed batches. */
    s->req.partition = NPART;
    assert_int_equal(sb_ship(f, s, NULL, NULL), SX_INVALID_ARGUMENT);
    s->req.partition = 0;
    s->req.partitions = NPART + 1;
    assert_int_equal(sb_ship(f, s, NULL, NULL), SX_INVALID_ARGUMENT);
    s->req.partitions = NPART;
    s->req.type = SHARDEX__V1__VALUE_TYPE__VALUE_TYPE_INT;
    assert_int_equal(sb_ship(f, s, NULL, NULL), SX_INVALID_ARGUMENT);
    s->req.type = SHARDEX__V1__VALUE_TYPE__VALUE_TYPE_STRING;
    sb_put(s, "a", "x", 5, 5); /* beyond up_to_offset */
    assert_int_equal(sb_ship(f, s, NULL, NULL), SX_INVALID_ARGUMENT);
    s->ch[0].offset = 3; /* not above prev_offset */
    assert_int_equal(sb_ship(f, s, NULL, NULL), SX_INVALID_ARGUMENT);
    s->ch[0].offset = 4;
    s->ch[0].key.len = 3; /* cut inside the value */
    assert_int_equal(sb_ship(f, s, NULL, NULL), SX_INVALID_ARGUMENT);
    s->ch[0].key.len = s->keys[0].len;
    s->req.prev_offset = 5; /* above up_to_offset */
    assert_int_equal(sb_ship(f, s, NULL, NULL), SX_INVALID_ARGUMENT);
    s->req.prev_offset = 3;
    ship_ok(f, s, 4, true);
    want w[] = {{"a", "x", 5}};
    uint64_t wm[] = {4, 0};
    check_digest(f, EPOCH, w, 1, wm);
}

static void test_scan(void **state)
{
    fixture *f = *state;
    install(f, 1, EPOCH);
    Shardex__Internal__V1__ScanRequest req;
    Shardex__Internal__V1__ScanResponse resp;
    sx_arena arena = {0};
    sx_err err = {0};
    scan_req(&req, IDX, EPOCH);

    /* 150 entries shipped in a shuffled order of keys. */
    enum { N = 150 };
    int perm[N];
    for (int i = 0; i < N; i++)
        perm[i] = i;
    srand(42);
    for (int i = N - 1; i > 0; i--) {
        int j = rand() % (i + 1), x = perm[i];
        perm[i] = perm[j];
        perm[j] = x;
    }
    shipb *s = sb_new(IDX, EPOCH, 0, 1, 0, N);
    char vals[N][8], ids[N][8];
    for (int i = 0; i < N; i++) {
        snprintf(vals[i], sizeof(vals[i]), "v%03d", perm[i]);
        snprintf(ids[i], sizeof(ids[i]), "id%03d", perm[i]);
        sb_put(s, vals[i], ids[i], (uint64_t)i + 1, (uint64_t)i + 1);
    }
    ship_ok(f, s, N, true);
    /* Log partition 1 has not shipped: the term partition is not complete. */
    assert_int_equal(scan(f, &req, UINT64_MAX, &arena, &resp, &err), SX_UNAVAILABLE);
    assert_non_null(strstr(err.msg, "being rebuilt"));
    ship_empty(f, 1, 0, 1);

    /* limit 0: 100. */
    assert_int_equal(scan(f, &req, UINT64_MAX, &arena, &resp, &err), SX_OK);
    assert_int_equal(resp.n_hits, 100);
    assert_true(resp.more);
    char want_v[16], want_id[16];
    for (size_t i = 0; i < resp.n_hits; i++) {
        snprintf(want_v, sizeof(want_v), "v%03zu", i);
        snprintf(want_id, sizeof(want_id), "id%03zu", i);
        assert_string_equal(resp.hits[i]->value->s, want_v);
        assert_string_equal(resp.hits[i]->id, want_id);
        sx_buf k = {0};
        key_s(&k, want_v, want_id);
        assert_int_equal(resp.hits[i]->key.len, k.len);
        assert_memory_equal(resp.hits[i]->key.data, k.data, k.len);
        sx_buf_free(&k);
        int orig = -1;
        for (int j = 0; j < N; j++)
            if (perm[j] == (int)i)
                orig = j;
        assert_int_equal(resp.hits[i]->version, (uint64_t)orig + 1);
    }

    /* Pages of 7, each starting just after the last key of the one before. */
    sx_buf start = {0};
    size_t seen = 0;
    for (;;) {
        req.limit = 7;
        req.start.data = start.data;
        req.start.len = start.len;
        assert_int_equal(scan(f, &req, UINT64_MAX, &arena, &resp, &err), SX_OK);
        for (size_t i = 0; i < resp.n_hits; i++) {
            snprintf(want_v, sizeof(want_v), "v%03zu", seen + i);
            assert_string_equal(resp.hits[i]->value->s, want_v);
        }
        seen += resp.n_hits;
        if (!resp.more)
            break;
        assert_int_equal(resp.n_hits, 7);
        const ProtobufCBinaryData *last = &resp.hits[resp.n_hits - 1]->key;
        sx_buf_reset(&start);
        sx_buf_append(&start, last->data, last->len);
        sx_buf_push(&start, 0);
    }
    assert_int_equal(seen, N);
    /* Exactly a page's worth left: more is false. */
    req.limit = 150;
    req.start.len = 0;
    assert_int_equal(scan(f, &req, UINT64_MAX, &arena, &resp, &err), SX_OK);
    assert_int_equal(resp.n_hits, 150);
    assert_false(resp.more);

    /* A range [enc("v010"), enc("v020")): values v010 .. v019. */
    sx_buf lo = {0}, hi = {0};
    sx_key_append_str(&lo, "v010", 4);
    sx_key_append_str(&hi, "v020", 4);
    req.limit = 0;
    req.start.data = lo.data;
    req.start.len = lo.len;
    req.end.data = hi.data;
    req.end.len = hi.len;
    assert_int_equal(scan(f, &req, UINT64_MAX, &arena, &resp, &err), SX_OK);
    assert_int_equal(resp.n_hits, 10);
    assert_false(resp.more);
    assert_string_equal(resp.hits[0]->value->s, "v010");
    assert_string_equal(resp.hits[9]->value->s, "v019");
    /* Only an end bound. */
    req.start.len = 0;
    req.limit = 5;
    assert_int_equal(scan(f, &req, UINT64_MAX, &arena, &resp, &err), SX_OK);
    assert_int_equal(resp.n_hits, 5);
    assert_true(resp.more);
    assert_string_equal(resp.hits[0]->value->s, "v000");
    /* An empty range. */
    req.start.data = hi.data;
    req.start.len = hi.len;
    req.end.data = lo.data;
    req.end.len = lo.len;
    assert_int_equal(scan(f, &req, UINT64_MAX, &arena, &resp, &err), SX_OK);
    assert_int_equal(resp.n_hits, 0);
    assert_false(resp.more);

    /* Not owned at that epoch, or at all; a wrong shape. */
    scan_req(&req, IDX, EPOCH + 1);
    assert_int_equal(scan(f, &req, UINT64_MAX, &arena, &resp, &err), SX_FAILED_PRECONDITION);
    scan_req(&req, IDX, EPOCH);
    req.partition = 1;
    assert_int_equal(scan(f, &req, UINT64_MAX, &arena, &resp, &err), SX_FAILED_PRECONDITION);
    scan_req(&req, IDX, EPOCH);
    req.partitions = 3;
    assert_int_equal(scan(f, &req, UINT64_MAX, &arena, &resp, &err), SX_INVALID_ARGUMENT);
    scan_req(&req, IDX, EPOCH);
    req.type = SHARDEX__V1__VALUE_TYPE__VALUE_TYPE_INT;
    assert_int_equal(scan(f, &req, UINT64_MAX, &arena, &resp, &err), SX_INVALID_ARGUMENT);
    sx_buf_free(&start);
    sx_buf_free(&lo);
    sx_buf_free(&hi);
    sx_arena_free(&arena);
}

static void test_scan_int(void **state)
{
    fixture *f = *state;
    testmap m;
    map_init(&m, 1);
    int32_t owners[] = {ME};
    uint64_t epochs[] = {EPOCH};
    map_add(&m, IDX_INT, true, 1, owners, epochs);
    sx_tstore_on_map(f->ts, &m.map, ME);
    sx_tstore_wait_wipes(f->ts);
    shipb *s = sb_new(IDX_INT, EPOCH, 0, 1, 0, 4);
    s->req.type = SHARDEX__V1__VALUE_TYPE__VALUE_TYPE_INT;
    sb_put_i(s, 100, "a", 1, 1);
    sb_put_i(s, -5, "b", 2, 2);
    sb_put_i(s, 3, "c", 3, 3);
    sb_put_i(s, INT64_MIN, "d", 4, 4);
    ship_ok(f, s, 4, true);
    /* A string key does not decode as an int entry key. */
    s = sb_new(IDX_INT, EPOCH, 0, 1, 4, 5);
    sb_put(s, "x", "y", 5, 5);
    assert_int_equal(sb_ship(f, s, NULL, NULL), SX_INVALID_ARGUMENT);
    sb_free(s);
    s = sb_new(IDX_INT, EPOCH, 1, 1, 0, 1);
    ship_ok(f, s, 1, true);

    Shardex__Internal__V1__ScanRequest req;
    Shardex__Internal__V1__ScanResponse resp;
    sx_arena arena = {0};
    sx_err err = {0};
    scan_req(&req, IDX_INT, EPOCH);
    req.type = SHARDEX__V1__VALUE_TYPE__VALUE_TYPE_INT;
    assert_int_equal(scan(f, &req, UINT64_MAX, &arena, &resp, &err), SX_OK);
    assert_int_equal(resp.n_hits, 4);
    int64_t want_v[] = {INT64_MIN, -5, 3, 100};
    const char *want_id[] = {"d", "b", "c", "a"};
    uint64_t want_ver[] = {4, 2, 3, 1};
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(resp.hits[i]->value->kind_case, SHARDEX__V1__VALUE__KIND_I);
        assert_true(resp.hits[i]->value->i == want_v[i]);
        assert_string_equal(resp.hits[i]->id, want_id[i]);
        assert_int_equal(resp.hits[i]->version, want_ver[i]);
    }
    sx_arena_free(&arena);
}

static void test_digest_requests(void **state)
{
    fixture *f = *state;
    Shardex__Internal__V1__DigestRequest req = SHARDEX__INTERNAL__V1__DIGEST_REQUEST__INIT;
    Shardex__Internal__V1__DigestResponse resp = SHARDEX__INTERNAL__V1__DIGEST_RESPONSE__INIT;
    sx_arena arena = {0};
    sx_err err = {0};
    req.index_id = IDX;
    req.term = true;
    /* Not owned: inactive, nothing else. */
    assert_int_equal(sx_tstore_digest(f->ts, &req, &arena, &resp, &err), SX_OK);
    assert_false(resp.active);
    assert_int_equal(resp.count, 0);
    install(f, 1, EPOCH);
    req.epoch = EPOCH + 1;
    assert_int_equal(sx_tstore_digest(f->ts, &req, &arena, &resp, &err), SX_FAILED_PRECONDITION);
    req.epoch = 0; /* any */
    assert_int_equal(sx_tstore_digest(f->ts, &req, &arena, &resp, &err), SX_OK);
    assert_true(resp.active);
    assert_int_equal(resp.n_watermarks, NPART);
    req.term = false;
    assert_int_equal(sx_tstore_digest(f->ts, &req, &arena, &resp, &err), SX_INVALID_ARGUMENT);
    req.term = true;
    req.partition = 1; /* owned by the other worker */
    shardex__internal__v1__digest_response__init(&resp);
    assert_int_equal(sx_tstore_digest(f->ts, &req, &arena, &resp, &err), SX_OK);
    assert_false(resp.active);
    sx_arena_free(&arena);
}

static void test_move_away_and_drop_wipe(void **state)
{
    fixture *f = *state;
    /* Two indexes: IDX (term 0 mine) and IDX + 1 (both terms mine). */
    testmap m;
    map_init(&m, 5);
    int32_t o1[] = {ME, OTHER}, o2[] = {ME, ME};
    uint64_t e1[] = {EPOCH, EPOCH}, e2[] = {1, 1};
    map_add(&m, IDX, false, 2, o1, e1);
    map_add(&m, IDX + 1, false, 2, o2, e2);
    sx_tstore_on_map(f->ts, &m.map, ME);
    sx_tstore_wait_wipes(f->ts);
    sx_arena arena = {0};
    Shardex__Internal__V1__TermReport **r = NULL;
    assert_int_equal(sx_tstore_reports(f->ts, &arena, &r), 3);
    shipb *s = sb_new(IDX, EPOCH, 0, 1, 0, 2);
    sb_put(s, "a", "d1", 1, 1);
    sb_put(s, "b", "d2", 2, 2);
    ship_ok(f, s, 2, true);
    ship_empty(f, 1, 0, 1);
    for (uint32_t t = 0; t < 2; t++) {
        s = sb_new(IDX + 1, 1, 0, 1, 0, 1);
        s->req.term_partition = t;
        sb_put(s, "k", "d", 1, 1);
        ship_ok(f, s, 1, true);
    }

    /* An older map is ignored. */
    testmap old;
    map_init(&old, 4);
    sx_tstore_on_map(f->ts, &old.map, ME);
    assert_int_equal(sx_tstore_reports(f->ts, &arena, &r), 3);

    /* IDX term 0 moves to the other worker, IDX + 1 is dropped: refused at
     * once, before the wipe has run. */
    map_init(&m, 6);
    int32_t o3[] = {OTHER, OTHER};
    uint64_t e3[] = {EPOCH + 1, EPOCH};
    map_add(&m, IDX, false, 2, o3, e3);
    sx_tstore_on_map(f->ts, &m.map, ME);
    s = sb_new(IDX, EPOCH, 0, 1, 2, 3);
    assert_int_equal(sb_ship(f, s, NULL, NULL), SX_FAILED_PRECONDITION);
    sb_free(s);
    Shardex__Internal__V1__ScanRequest req;
    Shardex__Internal__V1__ScanResponse resp;
    sx_err err = {0};
    scan_req(&req, IDX, EPOCH);
    assert_int_equal(scan(f, &req, UINT64_MAX, &arena, &resp, &err), SX_FAILED_PRECONDITION);
    assert_non_null(strstr(err.msg, "does not own term partition 0 of index 5 at epoch 3"));
    assert_int_equal(sx_tstore_reports(f->ts, &arena, &r), 0);
    sx_tstore_wait_wipes(f->ts);
    sx_tstore_close(f->ts);
    f->ts = NULL;
    assert_int_equal(raw_all(f, IDX, 0), 0);
    assert_int_equal(raw_all(f, IDX + 1, 0), 0);
    assert_int_equal(raw_all(f, IDX + 1, 1), 0);
    reopen(f);
    assert_int_equal(sx_tstore_reports(f->ts, &arena, &r), 0);
    sx_arena_free(&arena);
}

static void test_reopen(void **state)
{
    fixture *f = *state;
    install(f, 1, EPOCH);
    shipb *s = sb_new(IDX, EPOCH, 0, 4, 0, 2);
    sb_put(s, "a", "d1", 1, 1);
    sb_put(s, "b", "d2", 2, 2);
    ship_ok(f, s, 2, true);
    ship_empty(f, 1, 0, 6);
    want w[] = {{"a", "d1", 1}, {"b", "d2", 2}};
    uint64_t wm[] = {2, 6};

    /* A restart keeps ownership, data, watermarks and leader epochs, before
     * any map and after one at the same epoch. */
    reopen(f);
    sx_tstore_wait_wipes(f->ts);
    check_digest(f, EPOCH, w, 2, wm);
    s = sb_new(IDX, EPOCH, 0, 3, 2, 3);
    assert_int_equal(sb_ship(f, s, NULL, NULL), SX_FAILED_PRECONDITION);
    sb_free(s);
    sx_arena arena = {0};
    Shardex__Internal__V1__TermReport **r = NULL;
    assert_int_equal(sx_tstore_reports(f->ts, &arena, &r), 1);
    assert_true(r[0]->ready);
    install(f, 1, EPOCH);
    check_digest(f, EPOCH, w, 2, wm);
    Shardex__Internal__V1__ScanRequest req;
    Shardex__Internal__V1__ScanResponse resp;
    sx_err err = {0};
    scan_req(&req, IDX, EPOCH);
    assert_int_equal(scan(f, &req, UINT64_MAX, &arena, &resp, &err), SX_OK);
    assert_int_equal(resp.n_hits, 2);

    /* A new epoch for this worker wipes: the leaders rebuild it from 0. */
    install(f, 2, EPOCH + 1);
    s = sb_new(IDX, EPOCH, 0, 4, 2, 3);
    assert_int_equal(sb_ship(f, s, NULL, NULL), SX_FAILED_PRECONDITION);
    sb_free(s);
    uint64_t zero[] = {0, 0};
    check_digest(f, EPOCH + 1, NULL, 0, zero);
    assert_int_equal(sx_tstore_reports(f->ts, &arena, &r), 1);
    assert_int_equal(r[0]->epoch, EPOCH + 1);
    assert_false(r[0]->ready);
    s = sb_new(IDX, EPOCH + 1, 0, 1, 0, 3); /* leader epochs were wiped too */
    s->req.rebuild = true;
    sb_put(s, "c", "d3", 3, 3);
    ship_ok(f, s, 3, true);
    want w2[] = {{"c", "d3", 3}};
    uint64_t wm2[] = {3, 0};
    check_digest(f, EPOCH + 1, w2, 1, wm2);
    reopen(f);
    check_digest(f, EPOCH + 1, w2, 1, wm2);
    sx_arena_free(&arena);
}

static void test_leftovers_wiped_on_open(void **state)
{
    fixture *f = *state;
    install(f, 1, EPOCH);
    ship_empty(f, 0, 0, 1);
    sx_tstore_close(f->ts);
    f->ts = NULL;
    /* Keys of partitions with no 'S' row: what a crash mid-wipe leaves. */
    sx_store *st = sx_fx_store_open(f->db, NULL);
    sx_err err = {0};
    sx_buf k = {0}, v = {0};
    for (int i = 0; i < 3; i++) {
        sx_buf_reset(&k);
        sx_buf_push(&k, 'T');
        sx_key_append_u64(&k, 9);
        sx_key_append_u32(&k, 0);
        char id[4] = {'a', (char)('0' + i), 0};
        sx_key_append_str(&k, "v", 1);
        sx_key_append_str(&k, id, strlen(id));
        sx_buf_reset(&v);
        sx_key_append_u64(&v, 1);
        assert_int_equal(sx_store_put(st, k.data, k.len, v.data, v.len, SX_SYNC_NO, &err), SX_OK);
    }
    sx_buf_reset(&k);
    sx_buf_push(&k, 'W');
    sx_key_append_u64(&k, 9);
    sx_key_append_u32(&k, 1);
    sx_key_append_u32(&k, 0);
    sx_buf_reset(&v);
    sx_key_append_u64(&v, 4);
    sx_key_append_u64(&v, 1);
    sx_key_append_u64(&v, 0);
    assert_int_equal(sx_store_put(st, k.data, k.len, v.data, v.len, SX_SYNC_NO, &err), SX_OK);
    sx_store_close(st);
    sx_buf_free(&k);
    sx_buf_free(&v);
    assert_int_equal(raw_all(f, 9, 0), 3);

    reopen(f);
    sx_tstore_wait_wipes(f->ts);
    sx_arena arena = {0};
    Shardex__Internal__V1__TermReport **r = NULL;
    assert_int_equal(sx_tstore_reports(f->ts, &arena, &r), 1); /* only IDX term 0 */
    sx_arena_free(&arena);
    sx_tstore_close(f->ts);
    f->ts = NULL;
    assert_int_equal(raw_all(f, 9, 0), 0);
    assert_int_equal(raw_all(f, 9, 1), 0);
    assert_int_equal(raw_count(f, 'S', IDX, 0), 1);
    assert_int_equal(raw_count(f, 'W', IDX, 0), 1);
}

/* A partition of more keys than one wipe batch holds is wiped entirely, and
 * a partition next to it in key order is left alone. */
static void test_wipe_large(void **state)
{
    fixture *f = *state;
    testmap m;
    map_init(&m, 1);
    int32_t owners[] = {ME, ME};
    uint64_t epochs[] = {EPOCH, EPOCH};
    map_add(&m, IDX, false, 2, owners, epochs);
    sx_tstore_on_map(f->ts, &m.map, ME);
    sx_tstore_wait_wipes(f->ts);
    enum { BATCHES = 25, PER = 1000 };
    char v[16], id[16];
    for (uint64_t b = 0; b < BATCHES; b++) {
        shipb *s = sb_new(IDX, EPOCH, 0, 1, b, b + 1);
        for (int i = 0; i < PER; i++) {
            snprintf(v, sizeof(v), "v%02d", (int)(b % 7));
            snprintf(id, sizeof(id), "id%05d", (int)(b * PER + (uint64_t)i));
            sb_put(s, v, id, b + 1, b + 1);
        }
        ship_ok(f, s, b + 1, true);
    }
    shipb *s = sb_new(IDX, EPOCH, 0, 1, 0, 1);
    s->req.term_partition = 1;
    sb_put(s, "a", "b", 1, 1);
    ship_ok(f, s, 1, true);
    /* Term 0 moves away, term 1 stays. */
    map_init(&m, 2);
    int32_t owners2[] = {OTHER, ME};
    map_add(&m, IDX, false, 2, owners2, epochs);
    sx_tstore_on_map(f->ts, &m.map, ME);
    sx_tstore_wait_wipes(f->ts);
    sx_tstore_close(f->ts);
    f->ts = NULL;
    assert_int_equal(raw_all(f, IDX, 0), 0);
    assert_int_equal(raw_count(f, 'T', IDX, 1), 1);
    assert_int_equal(raw_count(f, 'W', IDX, 1), 1);
    assert_int_equal(raw_count(f, 'S', IDX, 1), 1);
}

typedef struct delayed_ship {
    fixture *f;
    uint64_t delay_ms;
    sx_status st;
} delayed_ship;

static void *ship_later(void *arg)
{
    delayed_ship *d = arg;
    sx_clock_sleep_ms(d->delay_ms);
    shipb *s = sb_new(IDX, EPOCH, 0, 1, 5, 10);
    d->st = sb_ship(d->f, s, NULL, NULL);
    sb_free(s);
    return NULL;
}

static void test_after_wait(void **state)
{
    fixture *f = *state;
    install(f, 1, EPOCH);
    ship_empty(f, 0, 0, 5);
    ship_empty(f, 1, 0, 5);
    Shardex__Internal__V1__ScanRequest req;
    Shardex__Internal__V1__ScanResponse resp;
    sx_arena arena = {0};
    sx_err err = {0};
    Shardex__V1__WriteToken tok = SHARDEX__V1__WRITE_TOKEN__INIT;
    Shardex__V1__WriteToken *toks[] = {&tok};
    scan_req(&req, IDX, EPOCH);
    req.after = toks;
    req.n_after = 1;
    tok.partition = 1;
    tok.offset = 5; /* reached */
    assert_int_equal(scan(f, &req, sx_clock_now_ms(), &arena, &resp, &err), SX_OK);

    /* Not reached in time. */
    tok.partition = 0;
    tok.offset = 10;
    uint64_t t0 = sx_clock_now_ms();
    assert_int_equal(scan(f, &req, t0 + 200, &arena, &resp, &err), SX_DEADLINE_EXCEEDED);
    assert_true(sx_clock_now_ms() - t0 >= 200);
    assert_non_null(strstr(err.msg, "log partition 0"));
    assert_non_null(strstr(err.msg, "offset 10"));
    assert_non_null(strstr(err.msg, "watermark 5"));

    /* Reached while waiting: a Ship wakes the scan. */
    delayed_ship d = {.f = f, .delay_ms = 100, .st = SX_UNKNOWN};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, ship_later, &d), 0);
    t0 = sx_clock_now_ms();
    assert_int_equal(scan(f, &req, t0 + 10000, &arena, &resp, &err), SX_OK);
    assert_true(sx_clock_now_ms() - t0 < 5000);
    pthread_join(th, NULL);
    assert_int_equal(d.st, SX_OK);

    /* A token of a log partition that does not exist. */
    tok.partition = NPART;
    assert_int_equal(scan(f, &req, t0 + 10000, &arena, &resp, &err), SX_INVALID_ARGUMENT);
    sx_arena_free(&arena);
}

static void test_staleness(void **state)
{
    fixture *f = *state;
    install(f, 1, EPOCH);
    uint64_t wall = sx_clock_wall_ms();
    shipb *s = sb_new(IDX, EPOCH, 0, 1, 0, 5);
    s->req.as_of_ms = wall - 10000;
    ship_ok(f, s, 5, true);
    Shardex__Internal__V1__ScanRequest req;
    Shardex__Internal__V1__ScanResponse resp;
    sx_arena arena = {0};
    sx_err err = {0};
    ship_empty(f, 1, 0, 5); /* no as_of: p = 1's is unknown */
    scan_req(&req, IDX, EPOCH);
    assert_int_equal(scan(f, &req, UINT64_MAX, &arena, &resp, &err), SX_OK);
    assert_true(resp.staleness_ms >= wall); /* unknown counts as the epoch */
    s = sb_new(IDX, EPOCH, 1, 1, 5, 6);
    s->req.as_of_ms = wall - 2000;
    ship_ok(f, s, 6, true);
    assert_int_equal(scan(f, &req, UINT64_MAX, &arena, &resp, &err), SX_OK);
    assert_true(resp.staleness_ms >= 10000 && resp.staleness_ms < 60000);
    req.max_staleness_ms = 5000;
    assert_int_equal(scan(f, &req, UINT64_MAX, &arena, &resp, &err), SX_UNAVAILABLE);
    assert_non_null(strstr(err.msg, "ms stale"));
    /* as_of only goes up, also with a later batch that says less. */
    s = sb_new(IDX, EPOCH, 0, 1, 5, 7);
    s->req.as_of_ms = sx_clock_wall_ms();
    ship_ok(f, s, 7, true);
    s = sb_new(IDX, EPOCH, 0, 1, 7, 8);
    s->req.as_of_ms = wall - 20000;
    ship_ok(f, s, 8, true);
    assert_int_equal(scan(f, &req, UINT64_MAX, &arena, &resp, &err), SX_OK);
    assert_true(resp.staleness_ms >= 2000 && resp.staleness_ms < 5000);
    sx_arena_free(&arena);
}

/* Map changes while ships and scans run on other threads: every call
 * answers, nothing crashes, and the final state is the last map's. */
typedef struct churn {
    fixture *f;
    atomic_int stop;
    uint64_t oks;
} churn;

static void *churn_ship(void *arg)
{
    churn *c = arg;
    uint64_t wm = 0;
    for (uint64_t epoch_try = 0; !c->stop; epoch_try++) {
        for (uint64_t e = EPOCH; e < EPOCH + 4 && !c->stop; e++) {
            shipb *s = sb_new(IDX, e, 0, 1, wm, wm + 1);
            sb_put(s, "v", "id", wm + 1, wm + 1);
            uint64_t got = 0;
            if (sb_ship(c->f, s, &got, NULL) == SX_OK) {
                c->oks++;
                wm = got;
            } else {
                wm = 0;
            }
            sb_free(s);
        }
    }
    return NULL;
}

static void test_churn(void **state)
{
    fixture *f = *state;
    churn c = {.f = f};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, churn_ship, &c), 0);
    for (uint64_t v = 1; v <= 40; v++) {
        testmap m;
        map_init(&m, v);
        int32_t owners[] = {v % 3 == 0 ? OTHER : ME, OTHER};
        uint64_t epochs[] = {EPOCH + v % 4, EPOCH};
        map_add(&m, IDX, false, 2, owners, epochs);
        sx_tstore_on_map(f->ts, &m.map, ME);
        sx_clock_sleep_ms(2);
    }
    c.stop = 1;
    pthread_join(th, NULL);
    sx_tstore_wait_wipes(f->ts);
    /* Map 40: owned at EPOCH + 0. */
    sx_arena arena = {0};
    Shardex__Internal__V1__TermReport **r = NULL;
    assert_int_equal(sx_tstore_reports(f->ts, &arena, &r), 1);
    assert_int_equal(r[0]->epoch, EPOCH);
    sx_arena_free(&arena);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_own_and_report, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_report, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ship_exactly_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rebuild, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rebuild_chunks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scan, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scan_int, setup, teardown),
        cmocka_unit_test_setup_teardown(test_digest_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_move_away_and_drop_wipe, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_leftovers_wiped_on_open, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wipe_large, setup, teardown),
        cmocka_unit_test_setup_teardown(test_after_wait, setup, teardown),
        cmocka_unit_test_setup_teardown(test_staleness, setup, teardown),
        cmocka_unit_test_setup_teardown(test_churn, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
