/* test_coord.c: unit tests for coord.h, the coordinator's state machine.
 *
 * Each test gets its own mkdtemp directory with a real LevelDB metadata store
 * (removed by the teardown); no network, no processes, no sleeping: time is an
 * argument, so leases are driven by hand. Every test runs twice: on the
 * embedded store (group "leveldb") and on etcd (group "etcd", names ending in
 * "/etcd"): one etcd member for the group, each test's store under a cluster
 * name of its own, opened and campaigned for (and won) at every open; closing
 * resigns, so a reopen wins again at once, as a new leader whose map is one
 * version on (reopened). The etcd group is left out, said
 * so, when /usr/bin/etcd is missing. After every step the tests check that
 * the map version, every log partition's epoch and isr_version and every term
 * partition's epoch never went down (reopen included), and that the published
 * map keeps its invariants (leaders are live isr members, isr within replicas).
 * Covered: settings and their checks, reopen, registration, heartbeats, leases,
 * ISR changes, eligible leaders and workers that lost partition stores, the
 * index catalog with backfill, ClusterStatus, and a seeded random walk over
 * all of it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the four above, which it needs */

#include <ctype.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clustermap.h"
#include "coord.h"
#include "fixture.h"
#include "harness.h"
#include "hash.h"
#include "log.h"
#include "meta.h"

/* The lease every test uses (the coordinator adds its margin). */
#define LEASE 1000u
/* Largest P and number of term partitions the tracker follows. */
#define MAXP 16
#define MAXTERMS 8192
/* Term partitions a test copies out of the map. */
#define COPYTERMS 64
/* Room for a partition's replicas (the map allows 7). */
#define MAXR 8

/* The worker ids most tests register, in index order. */
static const char *const abc[3] = {"a", "b", "c"};

typedef Shardex__Internal__V1__ClusterMap cmap;
typedef Shardex__Internal__V1__LogPartition lpart;

/* The highest epoch seen for term partition t of index index_id. */
typedef struct term_seen {
    uint64_t index_id;
    uint32_t t;
    uint64_t epoch;
} term_seen;

/* The etcd group's member, started by its group setup; NULL in the other. */
static sx_fx_etcd *etcd_member;

typedef struct fixture {
    char dir[PATH_MAX]; /* the mkdtemp directory, the coordinator's data_dir */
    bool etcd;          /* the metadata is in etcd_member, under a cluster named by data_dir */
    sx_coord_opts opts;
    sx_coord *c;
    uint64_t version;           /* highest map version seen */
    uint64_t epoch[MAXP];       /* highest epoch seen per log partition */
    uint64_t isr_version[MAXP]; /* highest isr_version seen per log partition */
    term_seen terms[MAXTERMS];  /* highest epoch seen per (index id, term partition) */
    size_t nterms;
} fixture;

#define CHECK_OK(expr, errp)                                                                       \
    do {                                                                                           \
        sx_status st_ = (expr);                                                                    \
        if (st_ != SX_OK)                                                                          \
            fail_msg("%s: %s: %s", #expr, sx_status_name(st_), (errp)->msg);                       \
    } while (0)

/* st and err carry code, and err's message contains `needle`. */
#define CHECK_FAIL(st, errp, want, needle)                                                         \
    do {                                                                                           \
        sx_status st2_ = (st);                                                                     \
        if (st2_ != (want))                                                                        \
            fail_msg("expected %s, got %s: %s", sx_status_name(want), sx_status_name(st2_),        \
                     (errp)->msg);                                                                 \
        assert_int_equal((errp)->code, (want));                                                    \
        if (!strstr((errp)->msg, (needle)))                                                        \
            fail_msg("message \"%s\" does not mention \"%s\"", (errp)->msg, (needle));             \
    } while (0)

/* ---------------------------------------------------------------- fixture -- */

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    if (!f)
        return -1;
    sx_h_tmpdir(f->dir, sizeof(f->dir), "coord");
    f->opts.data_dir = f->dir;
    f->opts.settings =
        (sx_coord_settings){.partitions = 4, .replication = 3, .min_isr = 2, .term_partitions = 4};
    f->opts.given_partitions = f->opts.given_replication = true;
    f->opts.given_min_isr = f->opts.given_term_partitions = true;
    f->opts.lease_ms = LEASE;
    *state = f;
    return 0;
}

/* setup, for the etcd group. */
static int setup_etcd(void **state)
{
    int rc = setup(state);
    if (rc == 0)
        ((fixture *)*state)->etcd = true;
    return rc;
}

static int group_setup_etcd(void **state)
{
    (void)state;
    etcd_member = calloc(1, sizeof(*etcd_member));
    if (!etcd_member || !sx_h_etcd_start(etcd_member, "coord-etcd")) {
        free(etcd_member);
        etcd_member = NULL;
        return -1;
    }
    return 0;
}

static int group_teardown_etcd(void **state)
{
    (void)state;
    sx_h_etcd_stop(etcd_member);
    free(etcd_member);
    etcd_member = NULL;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    sx_coord_close(f->c);
    sx_h_tmpdir_done(f->dir);
    free(f);
    return 0;
}

/* ------------------------------------------------------------- the tracker -- */

static bool has(const int32_t *set, size_t n, int32_t w)
{
    for (size_t i = 0; i < n; i++)
        if (set[i] == w)
            return true;
    return false;
}

static term_seen *seen_term(fixture *f, uint64_t index_id, uint32_t t)
{
    for (size_t i = 0; i < f->nterms; i++)
        if (f->terms[i].index_id == index_id && f->terms[i].t == t)
            return &f->terms[i];
    assert_true(f->nterms < MAXTERMS);
    f->terms[f->nterms] = (term_seen){.index_id = index_id, .t = t, .epoch = 0};
    return &f->terms[f->nterms++];
}

/* Checks the current map against everything seen so far and its invariants. */
static void track(fixture *f)
{
    sx_coord_map *m = sx_coord_map_acquire(f->c);
    const cmap *msg = m->msg;
    if (msg->version < f->version)
        fail_msg("map version went down: %" PRIu64 " after %" PRIu64, msg->version, f->version);
    f->version = msg->version;
    assert_true(msg->n_partitions <= MAXP);
    for (size_t p = 0; p < msg->n_partitions; p++) {
        const lpart *lp = msg->partitions[p];
        if (lp->epoch < f->epoch[p])
            fail_msg("partition %zu: epoch went down: %" PRIu64 " after %" PRIu64, p, lp->epoch,
                     f->epoch[p]);
        if (lp->isr_version < f->isr_version[p])
            fail_msg("partition %zu: isr_version went down: %" PRIu64 " after %" PRIu64, p,
                     lp->isr_version, f->isr_version[p]);
        f->epoch[p] = lp->epoch;
        f->isr_version[p] = lp->isr_version;
        for (size_t k = 0; k < lp->n_isr; k++)
            assert_true(has(lp->replicas, lp->n_replicas, lp->isr[k]));
        /* Eligible leaders: replicas outside the isr, only while it is below min_isr. */
        for (size_t k = 0; k < lp->n_elr; k++) {
            assert_true(has(lp->replicas, lp->n_replicas, lp->elr[k]));
            assert_false(has(lp->isr, lp->n_isr, lp->elr[k]));
        }
        if (lp->n_elr > 0 && lp->n_isr >= msg->settings->min_isr)
            fail_msg("partition %zu: %zu eligible leaders beside %zu isr members", p, lp->n_elr,
                     lp->n_isr);
        for (size_t k = 0; k < lp->n_replicas; k++)
            assert_true(lp->replicas[k] >= 0 && (size_t)lp->replicas[k] < msg->n_workers);
        if (lp->leader >= 0) {
            assert_true(has(lp->isr, lp->n_isr, lp->leader));
            assert_true((size_t)lp->leader < msg->n_workers);
            if (!msg->workers[lp->leader]->alive)
                fail_msg("partition %zu: leader %d is dead", p, lp->leader);
        } else {
            assert_int_equal(lp->leader, -1);
        }
    }
    size_t nterms = 0;
    for (size_t i = 0; i < msg->n_indexes; i++) {
        const Shardex__Internal__V1__IndexEntry *e = msg->indexes[i];
        if (!e->spec->global) {
            assert_int_equal(e->spec->term_partitions, 0);
            continue;
        }
        assert_true(e->spec->term_partitions >= 1);
        uint32_t count = e->spec->term_partitions + 2 * (uint32_t)e->n_splits; /* online splits */
        assert_true((size_t)e->first_term + count <= msg->n_terms);
        nterms += count;
        for (uint32_t t = 0; t < count; t++) {
            const Shardex__Internal__V1__TermPartition *tp = msg->terms[e->first_term + t];
            if (tp->retired) /* swapped out by a split: never owned again */
                assert_int_equal(tp->owner, -1);
            term_seen *s = seen_term(f, e->id, t);
            if (tp->epoch < s->epoch)
                fail_msg("index %s term %u: epoch went down: %" PRIu64 " after %" PRIu64,
                         e->spec->name, t, tp->epoch, s->epoch);
            s->epoch = tp->epoch;
            if (tp->owner >= 0) {
                assert_true((size_t)tp->owner < msg->n_workers);
                assert_true(msg->workers[tp->owner]->alive);
            }
        }
    }
    assert_int_equal(nterms, msg->n_terms);
    sx_coord_map_release(m);
}

/* ---------------------------------------------------------------- helpers -- */

/* The metadata store of data directory dir: its LevelDB, or on etcd the
 * cluster named after dir (each test's own), campaigned for: the test's
 * coordinator closed the last one it held, so the campaign wins at once. */
static sx_status meta_open(fixture *f, const char *dir, sx_meta **out, sx_err *err)
{
    if (!f->etcd)
        return sx_meta_open(dir, out, err);
    char cluster[PATH_MAX];
    snprintf(cluster, sizeof(cluster), "%s", dir);
    for (char *p = cluster; *p; p++)
        if (*p == '/')
            *p = '_';
    sx_meta_etcd_opts o = {
        .endpoints = etcd_member->addr, .cluster = cluster, .self = "test", .ttl_s = 2};
    sx_status st = sx_meta_open_etcd(&o, out, err);
    bool won = false;
    char leader[128] = "";
    if (st == SX_OK)
        st = sx_meta_campaign(*out, &won, leader, sizeof(leader), err);
    if (st == SX_OK && !won)
        st = sx_err_set(err, SX_FAILED_PRECONDITION, "etcd campaign lost to \"%s\"", leader);
    if (st != SX_OK) {
        sx_meta_close(*out);
        *out = NULL;
    }
    return st;
}

/* sx_coord_open on f's metadata store (o->data_dir's; the store is taken
 * over, even when the open fails). */
static sx_status coord_open(fixture *f, const sx_coord_opts *o, uint64_t now, sx_coord **out,
                            sx_err *err)
{
    sx_coord_opts with = *o;
    if (f->etcd) {
        sx_status st = meta_open(f, o->data_dir, &with.meta, err);
        if (st != SX_OK)
            fail_msg("etcd metadata for %s: %s: %s", o->data_dir, sx_status_name(st), err->msg);
    }
    return sx_coord_open(&with, now, out, err);
}

static void open_at(fixture *f, uint64_t now)
{
    sx_err err = {0};
    assert_null(f->c);
    CHECK_OK(coord_open(f, &f->opts, now, &f->c, &err), &err);
    assert_non_null(f->c);
    track(f);
}

static void reopen_at(fixture *f, uint64_t now)
{
    sx_coord_close(f->c);
    f->c = NULL;
    open_at(f, now);
}

static uint64_t version_of(fixture *f)
{
    sx_coord_map *m = sx_coord_map_acquire(f->c);
    uint64_t v = m->msg->version;
    sx_coord_map_release(m);
    return v;
}

/* ChangeIsr as a leader that verified every member's current process. */
static sx_status change_isr(fixture *f, const char *id, uint32_t p, uint64_t epoch,
                            uint64_t isr_version, const int32_t *isr, size_t n, sx_coord_map **out,
                            sx_err *err)
{
    uint64_t inc[SX_MAX_REPLICAS + 1] = {0};
    sx_coord_map *m = sx_coord_map_acquire(f->c);
    for (size_t i = 0; i < n && i <= SX_MAX_REPLICAS; i++)
        if (isr[i] >= 0 && (size_t)isr[i] < m->msg->n_workers)
            inc[i] = m->msg->workers[isr[i]]->incarnation;
    sx_coord_map_release(m);
    sx_coord_isr_change ch = {.partition = p,
                              .epoch = epoch,
                              .isr_version = isr_version,
                              .isr = isr,
                              .nisr = n,
                              .incarnations = inc,
                              .nincarnations = n};
    return sx_coord_change_isr(f->c, id, &ch, out, err);
}

/* A copy of log partition p as the current map has it. */
typedef struct part_copy {
    uint64_t epoch, isr_version;
    int32_t leader;
    size_t nreplicas, nisr, nelr;
    int32_t replicas[MAXR], isr[MAXR], elr[MAXR];
} part_copy;

static part_copy part_of(fixture *f, uint32_t p)
{
    sx_coord_map *m = sx_coord_map_acquire(f->c);
    assert_true(p < m->msg->n_partitions);
    const lpart *lp = m->msg->partitions[p];
    part_copy pc = {.epoch = lp->epoch,
                    .isr_version = lp->isr_version,
                    .leader = lp->leader,
                    .nreplicas = lp->n_replicas,
                    .nisr = lp->n_isr,
                    .nelr = lp->n_elr};
    assert_true(lp->n_replicas <= MAXR && lp->n_isr <= MAXR && lp->n_elr <= MAXR);
    if (lp->n_replicas) /* the arrays are NULL when empty */
        memcpy(pc.replicas, lp->replicas, lp->n_replicas * sizeof(int32_t));
    if (lp->n_isr)
        memcpy(pc.isr, lp->isr, lp->n_isr * sizeof(int32_t));
    if (lp->n_elr)
        memcpy(pc.elr, lp->elr, lp->n_elr * sizeof(int32_t));
    sx_coord_map_release(m);
    return pc;
}

static bool worker_alive(fixture *f, int32_t w)
{
    sx_coord_map *m = sx_coord_map_acquire(f->c);
    assert_true(w >= 0 && (size_t)w < m->msg->n_workers);
    bool alive = m->msg->workers[w]->alive;
    sx_coord_map_release(m);
    return alive;
}

/* Registers id at now; returns its index, its incarnation in *inc. */
static int32_t reg(fixture *f, const char *id, uint64_t now, uint64_t *inc)
{
    char addr[128];
    snprintf(addr, sizeof(addr), "%s.test:7000", id);
    int32_t index = -2;
    uint64_t incarnation = 0;
    sx_coord_map *m = NULL;
    sx_err err = {0};
    uint64_t before = f->version;
    CHECK_OK(sx_coord_register(f->c, id, addr, now, &index, &incarnation, &m, &err), &err);
    assert_non_null(m);
    assert_true(m->msg->version > before);
    assert_true(index >= 0 && (size_t)index < m->msg->n_workers);
    const Shardex__Internal__V1__WorkerEntry *w = m->msg->workers[index];
    assert_string_equal(w->id, id);
    assert_string_equal(w->address, addr);
    assert_true(w->alive);
    assert_int_equal(w->incarnation, incarnation);
    sx_coord_map_release(m);
    track(f);
    if (inc)
        *inc = incarnation;
    return index;
}

/* reg for a worker that lost the stores of partitions lost[0..nlost). */
static int32_t reg_lost(fixture *f, const char *id, const uint32_t *lost, size_t nlost,
                        uint64_t now, uint64_t *inc)
{
    char addr[128];
    snprintf(addr, sizeof(addr), "%s.test:7000", id);
    int32_t index = -2;
    uint64_t incarnation = 0;
    sx_coord_map *m = NULL;
    sx_err err = {0};
    CHECK_OK(
        sx_coord_register_lost(f->c, id, addr, lost, nlost, now, &index, &incarnation, &m, &err),
        &err);
    assert_non_null(m);
    assert_true(m->msg->workers[index]->alive);
    sx_coord_map_release(m);
    track(f);
    if (inc)
        *inc = incarnation;
    return index;
}

/* Reports for partitions 0..n-1: log_end 100+p, applied 90+p, commit 80+p. */
static Shardex__Internal__V1__ReplicaReport g_reports[MAXP];
static Shardex__Internal__V1__ReplicaReport *g_report_ptrs[MAXP];

static void init_reports(void)
{
    for (uint32_t p = 0; p < MAXP; p++) {
        shardex__internal__v1__replica_report__init(&g_reports[p]);
        g_reports[p].partition = p;
        g_reports[p].log_end_offset = 100 + p;
        g_reports[p].applied_offset = 90 + p;
        g_reports[p].commit_offset = 80 + p;
        g_report_ptrs[p] = &g_reports[p];
    }
}

/* A heartbeat that knows the current version: must succeed without a map. */
static void hb(fixture *f, const char *id, uint64_t inc, uint64_t now, size_t nreports)
{
    static sx_coord_map sentinel;
    sx_coord_map *m = &sentinel; /* must be overwritten */
    sx_err err = {0};
    CHECK_OK(
        sx_coord_heartbeat(f->c, id, inc, version_of(f), g_report_ptrs, nreports, now, &m, &err),
        &err);
    assert_null(m);
    track(f);
}

static void tick(fixture *f, uint64_t now)
{
    sx_coord_tick(f->c, now);
    track(f);
}

/* Has each partition's leader put every replica in its isr (leadership may move
 * as isrs grow, so the map is read again after each change). */
static void grow_isrs(fixture *f)
{
    for (int round = 0; round < 64 * MAXP; round++) {
        sx_coord_map *m = sx_coord_map_acquire(f->c);
        const lpart *lp = NULL;
        uint32_t p = 0;
        for (p = 0; p < m->msg->n_partitions; p++) {
            lp = m->msg->partitions[p];
            if (lp->leader >= 0 && lp->n_isr < lp->n_replicas)
                break;
        }
        if (p == m->msg->n_partitions) {
            sx_coord_map_release(m);
            return;
        }
        sx_coord_map *after = NULL;
        sx_err err = {0};
        CHECK_OK(change_isr(f, m->msg->workers[lp->leader]->id, p, lp->epoch, lp->isr_version,
                            lp->replicas, lp->n_replicas, &after, &err),
                 &err);
        assert_non_null(after);
        sx_coord_map_release(after);
        sx_coord_map_release(m);
        track(f);
    }
    fail_msg("isrs did not settle");
}

/* True if flag occurs in msg as a whole word ("--partitions" does not match
 * inside "--term-partitions"). */
static bool names_flag(const char *msg, const char *flag)
{
    size_t n = strlen(flag);
    for (const char *p = strstr(msg, flag); p; p = strstr(p + 1, flag)) {
        bool start = p == msg || !(isalnum((unsigned char)p[-1]) || p[-1] == '-');
        bool end = !(isalnum((unsigned char)p[n]) || p[n] == '-');
        if (start && end)
            return true;
    }
    return false;
}

static Shardex__V1__IndexSpec spec_of(const char *name, const char *field,
                                      Shardex__V1__ValueType type, bool local, bool global,
                                      uint32_t term_partitions)
{
    Shardex__V1__IndexSpec s;
    shardex__v1__index_spec__init(&s);
    s.name = (char *)name;
    s.field = (char *)field;
    s.type = type;
    s.local = local;
    s.global = global;
    s.term_partitions = term_partitions;
    return s;
}

#define STRING_T SHARDEX__V1__VALUE_TYPE__VALUE_TYPE_STRING
#define INT_T SHARDEX__V1__VALUE_TYPE__VALUE_TYPE_INT
#define BUILDING SHARDEX__V1__INDEX_STATE__INDEX_STATE_BUILDING
#define READY SHARDEX__V1__INDEX_STATE__INDEX_STATE_READY

static void create_ok(fixture *f, const char *name, bool local, bool global, uint32_t tp)
{
    Shardex__V1__IndexSpec s = spec_of(name, "field", STRING_T, local, global, tp);
    sx_arena a = {0};
    Shardex__V1__IndexInfo *info = NULL;
    sx_err err = {0};
    CHECK_OK(sx_coord_create_index(f->c, &s, &a, &info, &err), &err);
    assert_non_null(info);
    assert_string_equal(info->spec->name, name);
    assert_int_equal(info->state, BUILDING);
    sx_arena_free(&a);
    track(f);
}

/* The map's entry of index `name` (copied), found = false if absent. */
typedef struct index_copy {
    bool found;
    uint64_t id;
    uint32_t first_term, term_partitions;
    bool local, global;
    Shardex__V1__IndexState state;
    size_t nbackfilled;
} index_copy;

static index_copy index_of(fixture *f, const char *name)
{
    index_copy ic = {0};
    sx_coord_map *m = sx_coord_map_acquire(f->c);
    for (size_t i = 0; i < m->msg->n_indexes; i++) {
        const Shardex__Internal__V1__IndexEntry *e = m->msg->indexes[i];
        if (strcmp(e->spec->name, name) == 0)
            ic = (index_copy){.found = true,
                              .id = e->id,
                              .first_term = e->first_term,
                              .term_partitions = e->spec->term_partitions,
                              .local = e->spec->local,
                              .global = e->spec->global,
                              .state = e->state,
                              .nbackfilled = e->n_backfilled};
    }
    sx_coord_map_release(m);
    return ic;
}

/* The term partitions' (epoch, owner) of the map, copied. */
typedef struct terms_copy {
    size_t n;
    uint64_t epoch[COPYTERMS];
    int32_t owner[COPYTERMS];
} terms_copy;

static void terms_of(fixture *f, terms_copy *out)
{
    sx_coord_map *m = sx_coord_map_acquire(f->c);
    assert_true(m->msg->n_terms <= COPYTERMS);
    out->n = m->msg->n_terms;
    for (size_t t = 0; t < out->n; t++) {
        out->epoch[t] = m->msg->terms[t]->epoch;
        out->owner[t] = m->msg->terms[t]->owner;
    }
    sx_coord_map_release(m);
}

/* Term partition t of an index moved from `from` to `to`: it is the same
 * partition (same owner and epoch) unless its epoch rose. */
static void same_term(const terms_copy *before, uint32_t from, const terms_copy *after, uint32_t to)
{
    assert_true(from < before->n && to < after->n);
    if (after->epoch[to] == before->epoch[from])
        assert_int_equal(after->owner[to], before->owner[from]);
    else
        assert_true(after->epoch[to] > before->epoch[from]);
}

static const Shardex__V1__IndexInfo *find_info(Shardex__V1__IndexInfo **v, size_t n,
                                               const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i]->spec->name, name) == 0)
            return v[i];
    return NULL;
}

/* The map packed, to compare two maps byte for byte. */
/* The current map packed, less its version and coordinator epoch: the tests
 * check the version on its own (reopened), and on etcd every open names a
 * new epoch. */
static uint8_t *pack_map(fixture *f, size_t *len)
{
    sx_coord_map *m = sx_coord_map_acquire(f->c);
    cmap copy = *m->msg; /* shallow: packing only reads it */
    copy.version = 0;
    copy.coordinator_epoch = 0;
    *len = shardex__internal__v1__cluster_map__get_packed_size(&copy);
    uint8_t *buf = malloc(*len + 1);
    assert_non_null(buf);
    shardex__internal__v1__cluster_map__pack(&copy, buf);
    sx_coord_map_release(m);
    return buf;
}

/* The version an open of a store at version v publishes when nothing else
 * changes: v itself on the embedded store (a restart changes nothing); on
 * etcd every open is a new leader (a won campaign, a new epoch), which
 * publishes the stored map as the next version, naming itself. */
static uint64_t reopened(const fixture *f, uint64_t v)
{
    return f->etcd ? v + 1 : v;
}

/* ------------------------------------------------------------------ tests -- */

static void test_fresh_open(void **state)
{
    fixture *f = *state;
    f->opts.settings = (sx_coord_settings){8, 3, 2, 4};
    open_at(f, 1000);
    sx_coord_settings s = sx_coord_get_settings(f->c);
    assert_int_equal(s.partitions, 8);
    assert_int_equal(s.replication, 3);
    assert_int_equal(s.min_isr, 2);
    assert_int_equal(s.term_partitions, 4);

    sx_coord_map *m = sx_coord_map_acquire(f->c);
    const cmap *msg = m->msg;
    assert_true(msg->version >= 1);
    assert_non_null(msg->settings);
    assert_int_equal(msg->settings->partitions, 8);
    assert_int_equal(msg->settings->replication, 3);
    assert_int_equal(msg->settings->min_isr, 2);
    assert_int_equal(msg->settings->term_partitions, 4);
    assert_true(strlen(msg->settings->cluster_id) > 0);
    assert_int_equal(msg->lease_ms, LEASE);
    assert_int_equal(msg->n_partitions, 8);
    for (size_t p = 0; p < 8; p++) {
        assert_int_equal(msg->partitions[p]->leader, -1);
        assert_int_equal(msg->partitions[p]->n_replicas, 0);
        assert_int_equal(msg->partitions[p]->n_isr, 0);
    }
    assert_int_equal(msg->n_workers, 0);
    assert_int_equal(msg->n_terms, 0);
    assert_int_equal(msg->n_indexes, 0);
    uint64_t v = msg->version;
    sx_coord_map_release(m);

    /* Two acquisitions of an unchanged state are the same version. */
    assert_int_equal(version_of(f), v);
    /* Nothing happens on a tick without workers. */
    tick(f, 1000000);
    assert_int_equal(version_of(f), v);

    sx_arena a = {0};
    Shardex__V1__ListIndexesResponse list = SHARDEX__V1__LIST_INDEXES_RESPONSE__INIT;
    sx_coord_list_indexes(f->c, &a, &list);
    assert_int_equal(list.n_indexes, 0);
    Shardex__V1__ClusterStatusResponse st = SHARDEX__V1__CLUSTER_STATUS_RESPONSE__INIT;
    sx_coord_status(f->c, 1000, &a, &st);
    assert_int_equal(st.partitions, 8);
    assert_int_equal(st.replication, 3);
    assert_int_equal(st.min_isr, 2);
    assert_int_equal(st.map_version, v);
    assert_int_equal(st.n_workers, 0);
    assert_int_equal(st.n_log_partitions, 8);
    for (size_t p = 0; p < 8; p++) {
        assert_int_equal(st.log_partitions[p]->partition, p);
        assert_string_equal(st.log_partitions[p]->leader, "");
        assert_false(st.log_partitions[p]->available);
    }
    assert_int_equal(st.n_term_partitions, 0);
    assert_int_equal(st.n_indexes, 0);
    sx_arena_free(&a);
}

static void test_open_rejects_invalid_settings(void **state)
{
    fixture *f = *state;
    static const struct {
        sx_coord_settings s;
        const char *flag;
    } cases[] = {
        {{0, 3, 2, 4}, "--partitions"},
        {{SX_MAX_PARTITIONS + 1, 3, 2, 4}, "--partitions"},
        {{8, 0, 1, 4}, "--replication"},
        {{8, 8, 2, 4}, "--replication"},
        {{8, 3, 0, 4}, "--min-isr"},
        {{8, 3, 4, 4}, "--min-isr"},
        {{8, 1, 2, 4}, "--min-isr"},
        {{8, 3, 2, 0}, "--term-partitions"},
        {{8, 3, 2, SX_MAX_TERM_PARTITIONS + 1}, "--term-partitions"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        f->opts.settings = cases[i].s;
        sx_coord *c = NULL;
        sx_err err = {0};
        sx_status st = coord_open(f, &f->opts, 1000, &c, &err);
        if (st != SX_INVALID_ARGUMENT)
            fail_msg("case %zu: expected INVALID_ARGUMENT, got %s: %s", i, sx_status_name(st),
                     err.msg);
        assert_int_equal(err.code, SX_INVALID_ARGUMENT);
        assert_null(c);
        if (!names_flag(err.msg, cases[i].flag))
            fail_msg("case %zu: \"%s\" does not name %s", i, err.msg, cases[i].flag);
    }
    /* Nothing was stored by the failures: a valid open creates the cluster. */
    f->opts.settings = (sx_coord_settings){8, 3, 2, 4};
    open_at(f, 1000);
    assert_int_equal(sx_coord_get_settings(f->c).partitions, 8);

    /* The limits themselves are accepted. */
    static const sx_coord_settings edges[] = {
        {SX_MAX_PARTITIONS, 7, 7, SX_MAX_TERM_PARTITIONS},
        {1, 1, 1, 1},
    };
    for (size_t i = 0; i < 2; i++) {
        char sub[PATH_MAX + 16];
        snprintf(sub, sizeof(sub), "%s/edge%zu", f->dir, i);
        assert_int_equal(mkdir(sub, 0700), 0);
        sx_coord_opts o = f->opts;
        o.data_dir = sub;
        o.settings = edges[i];
        sx_coord *c = NULL;
        sx_err err = {0};
        CHECK_OK(coord_open(f, &o, 1000, &c, &err), &err);
        sx_coord_settings got = sx_coord_get_settings(c);
        assert_memory_equal(&got, &edges[i], sizeof(got));
        sx_coord_map *m = sx_coord_map_acquire(c);
        assert_int_equal(m->msg->n_partitions, edges[i].partitions);
        sx_coord_map_release(m);
        sx_coord_close(c);
    }
}

static void test_reopen_keeps_settings_and_map(void **state)
{
    fixture *f = *state;
    init_reports();
    open_at(f, 1000);
    uint64_t inc[3];
    reg(f, "a", 1000, &inc[0]);
    reg(f, "b", 1000, &inc[1]);
    reg(f, "c", 1000, &inc[2]);
    grow_isrs(f);
    create_ok(f, "g", false, true, 0);
    create_ok(f, "l", true, false, 0);
    hb(f, "a", inc[0], 1200, 4);
    uint64_t v = version_of(f);
    size_t len1 = 0, len2 = 0;
    uint8_t *before = pack_map(f, &len1);

    /* Not given: every setting comes from the store, whatever opts say. */
    f->opts.settings = (sx_coord_settings){0, 0, 0, 0};
    f->opts.given_partitions = f->opts.given_replication = false;
    f->opts.given_min_isr = f->opts.given_term_partitions = false;
    reopen_at(f, 50000);
    sx_coord_settings s = sx_coord_get_settings(f->c);
    assert_int_equal(s.partitions, 4);
    assert_int_equal(s.replication, 3);
    assert_int_equal(s.min_isr, 2);
    assert_int_equal(s.term_partitions, 4);
    v = reopened(f, v);
    assert_int_equal(version_of(f), v);
    uint8_t *after = pack_map(f, &len2);
    assert_int_equal(len1, len2);
    assert_memory_equal(before, after, len1); /* a restart changes nothing */
    free(after);

    /* Given and equal: accepted; still the same map. */
    f->opts.settings = (sx_coord_settings){4, 3, 2, 4};
    f->opts.given_partitions = f->opts.given_replication = true;
    f->opts.given_min_isr = f->opts.given_term_partitions = true;
    reopen_at(f, 60000);
    v = reopened(f, v);
    assert_int_equal(version_of(f), v);
    after = pack_map(f, &len2);
    assert_int_equal(len1, len2);
    assert_memory_equal(before, after, len1);
    free(after);
    free(before);

    /* The workers are the same registrations: their incarnations are current. */
    hb(f, "a", inc[0], 60100, 0);
    hb(f, "b", inc[1], 60100, 0);
    hb(f, "c", inc[2], 60100, 0);
    /* Incarnations keep growing across the restart. */
    uint64_t again = 0;
    assert_int_equal(reg(f, "b", 60200, &again), 1);
    assert_true(again > inc[0] && again > inc[1] && again > inc[2]);
}

/* A stored map whose index lost its spec (found by fuzz_clustermap): the
 * coordinator refuses to start on it, DATA_LOSS naming the index, instead of
 * following a NULL pointer. */
static void test_reopen_refuses_index_without_spec(void **state)
{
    fixture *f = *state;
    open_at(f, 1000);
    reg(f, "a", 1000, NULL);
    create_ok(f, "g", false, true, 0);
    sx_coord_close(f->c);
    f->c = NULL;

    sx_err err = {0};
    sx_meta *meta = NULL;
    Shardex__Internal__V1__ClusterMap *m = NULL;
    CHECK_OK(meta_open(f, f->opts.data_dir, &meta, &err), &err);
    CHECK_OK(sx_meta_load(meta, &m, &err), &err);
    assert_int_equal(m->n_indexes, 1);
    uint64_t id = m->indexes[0]->id;
    Shardex__V1__IndexSpec *spec = m->indexes[0]->spec;
    m->indexes[0]->spec = NULL;
    size_t n = protobuf_c_message_get_packed_size(&m->base);
    uint8_t *buf = malloc(n);
    protobuf_c_message_pack(&m->base, buf);
    m->indexes[0]->spec = spec; /* freed with the map */
    CHECK_OK(sx_meta_save(meta, buf, n, &err), &err);
    free(buf);
    sx_meta_close(meta);

    sx_coord *c = NULL;
    assert_int_equal(coord_open(f, &f->opts, 2000, &c, &err), SX_DATA_LOSS);
    assert_null(c);
    char want[64];
    snprintf(want, sizeof(want), "stored index %" PRIu64 " has no spec", id);
    assert_non_null(strstr(err.msg, want));
    protobuf_c_message_free_unpacked(&m->base, NULL);
}

/* BUG (coord.c, sx_coord_open on an existing store): a restart with another
 * lease_ms republishes the stored version number with a different lease_ms in
 * it, so one version names two different maps and a worker that knows that
 * version is never sent the new lease (heartbeat answers "no news"). */
static void test_reopen_with_other_lease_publishes_new_version(void **state)
{
    fixture *f = *state;
    open_at(f, 1000);
    uint64_t inc = 0;
    reg(f, "a", 1000, &inc);
    uint64_t v = version_of(f);
    f->opts.lease_ms = LEASE / 2;
    reopen_at(f, 5000);
    sx_coord_map *m = sx_coord_map_acquire(f->c);
    uint32_t lease = m->msg->lease_ms;
    uint64_t v2 = m->msg->version;
    sx_coord_map_release(m);
    assert_int_equal(lease, LEASE / 2); /* the coordinator now judges by the new lease */
    if (v2 == v)
        fail_msg("BUG: map version %" PRIu64 " republished with lease_ms %u (was %u)", v, lease,
                 LEASE);
    /* A worker that knew the old version must be told. */
    sx_err err = {0};
    m = NULL;
    CHECK_OK(sx_coord_heartbeat(f->c, "a", inc, v, NULL, 0, 5100, &m, &err), &err);
    assert_non_null(m);
    assert_int_equal(m->msg->lease_ms, LEASE / 2);
    sx_coord_map_release(m);
}

static void test_reopen_refuses_changed_settings(void **state)
{
    fixture *f = *state;
    open_at(f, 1000);
    reg(f, "a", 1000, NULL);
    uint64_t v = version_of(f);
    sx_coord_close(f->c);
    f->c = NULL;

    static const struct {
        sx_coord_settings s;
        int which; /* the one setting given */
        const char *flag;
    } cases[] = {
        {{8, 3, 2, 4}, 0, "--partitions"},
        {{4, 2, 2, 4}, 1, "--replication"},
        {{4, 3, 1, 4}, 2, "--min-isr"},
        {{4, 3, 2, 5}, 3, "--term-partitions"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        sx_coord_opts o = f->opts;
        o.settings = cases[i].s;
        o.given_partitions = cases[i].which == 0;
        o.given_replication = cases[i].which == 1;
        o.given_min_isr = cases[i].which == 2;
        o.given_term_partitions = cases[i].which == 3;
        sx_coord *c = NULL;
        sx_err err = {0};
        sx_status st = coord_open(f, &o, 2000, &c, &err);
        if (st != SX_FAILED_PRECONDITION)
            fail_msg("case %zu: expected FAILED_PRECONDITION, got %s: %s", i, sx_status_name(st),
                     err.msg);
        assert_int_equal(err.code, SX_FAILED_PRECONDITION);
        assert_null(c);
        if (!names_flag(err.msg, cases[i].flag))
            fail_msg("case %zu: \"%s\" does not name %s", i, err.msg, cases[i].flag);
        /* All four given, only one differing: still named. */
        o.given_partitions = o.given_replication = o.given_min_isr = true;
        o.given_term_partitions = true;
        err = (sx_err){0};
        st = coord_open(f, &o, 2000, &c, &err);
        assert_int_equal(st, SX_FAILED_PRECONDITION);
        assert_null(c);
        if (!names_flag(err.msg, cases[i].flag))
            fail_msg("case %zu (all given): \"%s\" does not name %s", i, err.msg, cases[i].flag);
    }

    /* Not given: taken from the store, even when opts hold other values. */
    f->opts.settings = (sx_coord_settings){8, 1, 1, 9};
    f->opts.given_partitions = f->opts.given_replication = false;
    f->opts.given_min_isr = f->opts.given_term_partitions = false;
    open_at(f, 3000);
    sx_coord_settings s = sx_coord_get_settings(f->c);
    assert_int_equal(s.partitions, 4);
    assert_int_equal(s.replication, 3);
    assert_int_equal(s.min_isr, 2);
    assert_int_equal(s.term_partitions, 4);
    /* The refused opens left the store as it was. */
    assert_int_equal(version_of(f), reopened(f, v));
    sx_coord_map *m = sx_coord_map_acquire(f->c);
    assert_int_equal(m->msg->n_partitions, 4);
    assert_int_equal(m->msg->n_workers, 1);
    assert_string_equal(m->msg->workers[0]->id, "a");
    sx_coord_map_release(m);

    /* One given and equal, the others not given (and different): accepted. */
    f->opts.settings = (sx_coord_settings){4, 7, 7, 1};
    f->opts.given_partitions = true;
    reopen_at(f, 4000);
    s = sx_coord_get_settings(f->c);
    assert_int_equal(s.replication, 3);
    assert_int_equal(s.term_partitions, 4);
}

static void test_register_workers(void **state)
{
    fixture *f = *state;
    open_at(f, 1000);
    uint64_t ia, ib, ic;
    uint64_t v0 = version_of(f);
    assert_int_equal(reg(f, "a", 1000, &ia), 0);
    assert_int_equal(reg(f, "b", 1001, &ib), 1);
    assert_int_equal(reg(f, "c", 1002, &ic), 2);
    assert_true(ia < ib && ib < ic);
    assert_true(version_of(f) >= v0 + 3);

    sx_coord_map *m = sx_coord_map_acquire(f->c);
    assert_int_equal(m->msg->n_workers, 3);
    for (size_t p = 0; p < m->msg->n_partitions; p++) {
        const lpart *lp = m->msg->partitions[p];
        assert_int_equal(lp->n_replicas, 3); /* min(R, live workers) */
        assert_true(lp->leader >= 0);
        assert_true(lp->n_isr >= 1);
    }
    sx_coord_map_release(m);

    /* Re-registration: same index, higher incarnation, new address. */
    int32_t index = -1;
    uint64_t ib2 = 0;
    sx_err err = {0};
    m = NULL;
    CHECK_OK(sx_coord_register(f->c, "b", "moved.test:7001", 1100, &index, &ib2, &m, &err), &err);
    assert_int_equal(index, 1);
    assert_true(ib2 > ic);
    assert_int_equal(m->msg->n_workers, 3);
    assert_string_equal(m->msg->workers[1]->address, "moved.test:7001");
    assert_int_equal(m->msg->workers[1]->incarnation, ib2);
    assert_true(m->msg->workers[1]->alive);
    sx_coord_map_release(m);
    track(f);

    /* The old incarnation must register again; the new one heartbeats. */
    uint64_t v = version_of(f);
    m = NULL;
    CHECK_FAIL(sx_coord_heartbeat(f->c, "b", ib, v, NULL, 0, 1200, &m, &err), &err,
               SX_FAILED_PRECONDITION, "register");
    assert_null(m);
    hb(f, "b", ib2, 1200, 0);
    CHECK_FAIL(sx_coord_heartbeat(f->c, "zz", 1, v, NULL, 0, 1200, &m, &err), &err,
               SX_FAILED_PRECONDITION, "zz");
    assert_null(m);

    /* Bad ids and addresses change nothing. */
    char longid[66];
    memset(longid, 'x', 65);
    longid[65] = '\0';
    CHECK_FAIL(sx_coord_register(f->c, "", "h:1", 1300, &index, &ib2, &m, &err), &err,
               SX_INVALID_ARGUMENT, "worker_id");
    CHECK_FAIL(sx_coord_register(f->c, longid, "h:1", 1300, &index, &ib2, &m, &err), &err,
               SX_INVALID_ARGUMENT, "worker_id");
    CHECK_FAIL(sx_coord_register(f->c, "d", "", 1300, &index, &ib2, &m, &err), &err,
               SX_INVALID_ARGUMENT, "address");
    assert_int_equal(version_of(f), v);
    m = sx_coord_map_acquire(f->c);
    assert_int_equal(m->msg->n_workers, 3);
    sx_coord_map_release(m);
    longid[64] = '\0'; /* 64 bytes: the longest accepted */
    assert_int_equal(reg(f, longid, 1300, NULL), 3);
}

static void test_heartbeat_sends_map_only_when_changed(void **state)
{
    fixture *f = *state;
    open_at(f, 1000);
    uint64_t inc = 0;
    reg(f, "a", 1000, &inc);
    uint64_t v = version_of(f);
    sx_err err = {0};
    sx_coord_map *m = NULL;

    CHECK_OK(sx_coord_heartbeat(f->c, "a", inc, v, NULL, 0, 1100, &m, &err), &err);
    assert_null(m);
    CHECK_OK(sx_coord_heartbeat(f->c, "a", inc, v - 1, NULL, 0, 1200, &m, &err), &err);
    assert_non_null(m);
    assert_int_equal(m->msg->version, v);
    sx_coord_map_release(m);
    CHECK_OK(sx_coord_heartbeat(f->c, "a", inc, 0, NULL, 0, 1300, &m, &err), &err);
    assert_non_null(m);
    assert_int_equal(m->msg->version, v);
    sx_coord_map_release(m);

    create_ok(f, "ix", true, false, 0);
    uint64_t v2 = version_of(f);
    assert_true(v2 > v);
    CHECK_OK(sx_coord_heartbeat(f->c, "a", inc, v, NULL, 0, 1400, &m, &err), &err);
    assert_non_null(m);
    assert_int_equal(m->msg->version, v2);
    assert_int_equal(m->msg->n_indexes, 1);
    sx_coord_map_release(m);
    CHECK_OK(sx_coord_heartbeat(f->c, "a", inc, v2, NULL, 0, 1500, &m, &err), &err);
    assert_null(m);
    track(f);
}

static void test_lease_expiry_moves_leadership(void **state)
{
    fixture *f = *state;
    f->opts.settings = (sx_coord_settings){8, 3, 2, 4};
    open_at(f, 10000);
    uint64_t inc[3];
    reg(f, "a", 10000, &inc[0]);
    reg(f, "b", 10000, &inc[1]);
    reg(f, "c", 10000, &inc[2]);
    grow_isrs(f);
    create_ok(f, "g", false, true, 6);

    part_copy before[8];
    int c_leads = 0;
    for (uint32_t p = 0; p < 8; p++) {
        before[p] = part_of(f, p);
        assert_int_equal(before[p].nisr, 3);
        c_leads += before[p].leader == 2;
    }
    if (c_leads == 0)
        fail_msg("setup: worker c leads no partition after the isrs grew");

    for (int k = 0; k < 3; k++)
        hb(f, abc[k], inc[k], 10500, 0);
    hb(f, "a", inc[0], 11000, 0);
    hb(f, "b", inc[1], 11000, 0);
    uint64_t v = version_of(f);
    /* c's own lease ends at 10500 + LEASE; the coordinator waits longer. */
    tick(f, 10500 + LEASE);
    assert_int_equal(version_of(f), v);
    for (int32_t w = 0; w < 3; w++)
        assert_true(worker_alive(f, w));
    hb(f, "a", inc[0], 11500, 0);
    hb(f, "b", inc[1], 11500, 0);
    hb(f, "a", inc[0], 12000, 0);
    hb(f, "b", inc[1], 12000, 0);

    tick(f, 10500 + 2 * LEASE); /* past c's lease and any margin below a lease */
    assert_true(version_of(f) > v);
    assert_true(worker_alive(f, 0));
    assert_true(worker_alive(f, 1));
    assert_false(worker_alive(f, 2));
    for (uint32_t p = 0; p < 8; p++) {
        part_copy now = part_of(f, p);
        assert_true(now.leader == 0 || now.leader == 1);
        assert_false(has(now.isr, now.nisr, 2)); /* live isr members remained */
        if (before[p].leader == 2) {
            assert_true(now.epoch > before[p].epoch);
            assert_true(has(before[p].isr, before[p].nisr, now.leader));
        } else if (now.leader != before[p].leader) {
            assert_true(now.epoch > before[p].epoch);
        }
    }
    /* Term partitions are owned by live workers only (checked by track). */

    sx_arena a = {0};
    Shardex__V1__ClusterStatusResponse st = SHARDEX__V1__CLUSTER_STATUS_RESPONSE__INIT;
    sx_coord_status(f->c, 12500, &a, &st);
    assert_int_equal(st.n_workers, 3);
    assert_true(st.workers[0]->alive && st.workers[1]->alive);
    assert_false(st.workers[2]->alive);
    assert_int_equal(st.workers[2]->lease_remaining_ms, 0);
    assert_true(st.workers[0]->lease_remaining_ms > 0);
    sx_arena_free(&a);

    /* The dead incarnation is refused; c comes back under the same index. */
    sx_err err = {0};
    sx_coord_map *m = NULL;
    CHECK_FAIL(sx_coord_heartbeat(f->c, "c", inc[2], version_of(f), NULL, 0, 12600, &m, &err), &err,
               SX_FAILED_PRECONDITION, "register");
    uint64_t inc_c2 = 0;
    assert_int_equal(reg(f, "c", 12600, &inc_c2), 2);
    assert_true(inc_c2 > inc[2]);
    assert_true(worker_alive(f, 2));
}

static void test_lease_last_isr_member_dies(void **state)
{
    fixture *f = *state;
    f->opts.settings = (sx_coord_settings){4, 3, 1, 4};
    open_at(f, 1000);
    uint64_t inc[3];
    reg(f, "a", 1000, &inc[0]);
    reg(f, "b", 1000, &inc[1]);
    reg(f, "c", 1000, &inc[2]);
    /* Replicas added after the first are not in sync: a alone is in the isr. */
    part_copy before[4];
    for (uint32_t p = 0; p < 4; p++) {
        before[p] = part_of(f, p);
        assert_int_equal(before[p].leader, 0);
        assert_int_equal(before[p].nisr, 1);
        assert_int_equal(before[p].isr[0], 0);
    }
    hb(f, "b", inc[1], 2000, 0);
    hb(f, "c", inc[2], 2000, 0);
    tick(f, 1000 + 2 * LEASE);
    assert_false(worker_alive(f, 0));
    for (uint32_t p = 0; p < 4; p++) {
        part_copy now = part_of(f, p);
        /* Only the last recorded isr may lead (rule 5): nobody does. */
        assert_int_equal(now.leader, -1);
        assert_true(now.epoch > before[p].epoch);
        assert_int_equal(now.nisr, 1);
        assert_int_equal(now.isr[0], 0);
        before[p] = now;
    }
    sx_arena a = {0};
    Shardex__V1__ClusterStatusResponse st = SHARDEX__V1__CLUSTER_STATUS_RESPONSE__INIT;
    sx_coord_status(f->c, 3000, &a, &st);
    for (uint32_t p = 0; p < 4; p++) {
        assert_string_equal(st.log_partitions[p]->leader, "");
        assert_false(st.log_partitions[p]->available);
    }
    sx_arena_free(&a);

    /* a comes back: it leads again, at a new epoch. */
    reg(f, "a", 3100, NULL);
    for (uint32_t p = 0; p < 4; p++) {
        part_copy now = part_of(f, p);
        assert_int_equal(now.leader, 0);
        assert_true(now.epoch > before[p].epoch);
    }
}

static void test_restart_gives_fresh_leases(void **state)
{
    fixture *f = *state;
    open_at(f, 1000);
    uint64_t inc[3];
    reg(f, "a", 1000, &inc[0]);
    reg(f, "b", 1000, &inc[1]);
    reg(f, "c", 1000, &inc[2]);
    grow_isrs(f);
    hb(f, "a", inc[0], 1800, 0);
    hb(f, "b", inc[1], 1800, 0);
    tick(f, 1000 + 2 * LEASE); /* c's lease ran out; a's and b's did not */
    assert_false(worker_alive(f, 2));
    assert_true(worker_alive(f, 0) && worker_alive(f, 1));
    uint64_t v = version_of(f);

    /* Restart long after every lease ran out: nobody is judged yet. */
    const uint64_t r = 100000;
    reopen_at(f, r);
    v = reopened(f, v);
    assert_int_equal(version_of(f), v);
    assert_true(worker_alive(f, 0) && worker_alive(f, 1));
    assert_false(worker_alive(f, 2)); /* dead before, dead after */
    sx_err err = {0};
    sx_coord_map *m = NULL;
    CHECK_FAIL(sx_coord_heartbeat(f->c, "c", inc[2], v, NULL, 0, r, &m, &err), &err,
               SX_FAILED_PRECONDITION, "register");
    assert_null(m);
    tick(f, r);
    tick(f, r + LEASE - 1);
    assert_int_equal(version_of(f), v);
    assert_true(worker_alive(f, 0) && worker_alive(f, 1));

    /* The leases run from the restart: a renews, b does not. */
    hb(f, "a", inc[0], r + LEASE, 0);
    tick(f, r + LEASE);
    assert_int_equal(version_of(f), v);
    tick(f, r + 2 * LEASE - 1);
    assert_true(version_of(f) > v);
    assert_true(worker_alive(f, 0));
    assert_false(worker_alive(f, 1));

    /* After a restart with a smaller clock (a new boot) as well. */
    v = version_of(f);
    reopen_at(f, 10);
    v = reopened(f, v);
    assert_int_equal(version_of(f), v);
    tick(f, 10 + LEASE - 1);
    assert_int_equal(version_of(f), v);
    assert_true(worker_alive(f, 0));
    tick(f, 10 + 2 * LEASE);
    assert_false(worker_alive(f, 0));
}

/* Issue 11, bug 6: a member is taken into an ISR only as the process the
 * leader verified; a restarted (or dead) one has proven nothing. */
static void test_change_isr_needs_verified_processes(void **state)
{
    fixture *f = *state;
    open_at(f, 1000);
    uint64_t inc[3];
    reg(f, "a", 1000, &inc[0]);
    reg(f, "b", 1000, &inc[1]);
    reg(f, "c", 1000, &inc[2]);
    part_copy p0 = part_of(f, 0);
    assert_int_equal(p0.leader, 0);
    const int32_t ab[2] = {0, 1}, all3[3] = {0, 1, 2};
    sx_err err = {0};
    sx_coord_map *m = NULL;
    CHECK_OK(change_isr(f, "a", 0, p0.epoch, p0.isr_version, ab, 2, &m, &err), &err);
    sx_coord_map_release(m);
    m = NULL;

    /* c restarts after a's session with it caught up: a's request names the
     * old process. */
    uint64_t c_new = 0;
    reg(f, "c", 1100, &c_new);
    assert_true(c_new != inc[2]);
    part_copy p1 = part_of(f, 0); /* balancing may have handed it on */
    assert_true(p1.leader >= 0 && p1.leader < 2);
    const char *leader = p1.leader == 0 ? "a" : "b";
    uint64_t v = version_of(f);
    sx_coord_isr_change ch = {.partition = 0,
                              .epoch = p1.epoch,
                              .isr_version = p1.isr_version,
                              .isr = all3,
                              .nisr = 3,
                              .incarnations = inc,
                              .nincarnations = 3};
    CHECK_FAIL(sx_coord_change_isr(f->c, leader, &ch, &m, &err), &err, SX_FAILED_PRECONDITION,
               "incarnation");
    assert_null(m);
    /* One incarnation per member, or nothing changes. */
    ch.nincarnations = 2;
    CHECK_FAIL(sx_coord_change_isr(f->c, leader, &ch, &m, &err), &err, SX_INVALID_ARGUMENT,
               "incarnations");
    ch.incarnations = NULL;
    ch.nincarnations = 0;
    CHECK_FAIL(sx_coord_change_isr(f->c, leader, &ch, &m, &err), &err, SX_INVALID_ARGUMENT,
               "incarnations");
    assert_int_equal(version_of(f), v);

    /* The current process, verified: taken. */
    uint64_t now_inc[3] = {inc[0], inc[1], c_new};
    ch.incarnations = now_inc;
    ch.nincarnations = 3;
    CHECK_OK(sx_coord_change_isr(f->c, leader, &ch, &m, &err), &err);
    assert_int_equal(m->msg->partitions[0]->n_isr, 3);
    sx_coord_map_release(m);
    m = NULL;

    /* A dead member is never taken in. */
    part_copy p2 = part_of(f, 0);
    ch.epoch = p2.epoch;
    ch.isr_version = p2.isr_version;
    for (uint64_t t = 1200; t <= 4000; t += 100) { /* only the leader heartbeats */
        assert_int_equal(sx_coord_heartbeat(f->c, leader, inc[p1.leader], 0, NULL, 0, t, &m, &err),
                         SX_OK);
        sx_coord_map_release(m);
        m = NULL;
        sx_coord_tick(f->c, t);
    }
    part_copy p3 = part_of(f, 0);
    assert_int_equal(p3.leader, p1.leader);
    ch.epoch = p3.epoch;
    ch.isr_version = p3.isr_version;
    CHECK_FAIL(sx_coord_change_isr(f->c, leader, &ch, &m, &err), &err, SX_FAILED_PRECONDITION,
               "dead");
    assert_null(m);
}

static void test_change_isr(void **state)
{
    fixture *f = *state;
    open_at(f, 1000);
    reg(f, "a", 1000, NULL);
    reg(f, "b", 1000, NULL);
    reg(f, "c", 1000, NULL);
    part_copy p0 = part_of(f, 0);
    assert_int_equal(p0.leader, 0);
    assert_int_equal(p0.nreplicas, 3);
    uint64_t v = version_of(f);
    sx_err err = {0};
    sx_coord_map *m = NULL;
    const int32_t all[3] = {0, 1, 2};
    const int32_t ab[2] = {0, 1};

    /* Only the current leader may change its partition's isr. */
    CHECK_FAIL(change_isr(f, "b", 0, p0.epoch, p0.isr_version, all, 3, &m, &err), &err,
               SX_FAILED_PRECONDITION, "b");
    assert_null(m);
    CHECK_FAIL(change_isr(f, "zz", 0, p0.epoch, p0.isr_version, all, 3, &m, &err), &err,
               SX_FAILED_PRECONDITION, "zz");
    /* Stale (or future) epoch and isr_version are refused. */
    CHECK_FAIL(change_isr(f, "a", 0, p0.epoch + 1, p0.isr_version, all, 3, &m, &err), &err,
               SX_FAILED_PRECONDITION, "epoch");
    if (p0.epoch > 0)
        CHECK_FAIL(change_isr(f, "a", 0, p0.epoch - 1, p0.isr_version, all, 3, &m, &err), &err,
                   SX_FAILED_PRECONDITION, "epoch");
    CHECK_FAIL(change_isr(f, "a", 0, p0.epoch, p0.isr_version + 1, all, 3, &m, &err), &err,
               SX_FAILED_PRECONDITION, "isr_version");
    if (p0.isr_version > 0)
        CHECK_FAIL(change_isr(f, "a", 0, p0.epoch, p0.isr_version - 1, all, 3, &m, &err), &err,
                   SX_FAILED_PRECONDITION, "isr_version");
    /* Bad sets and partitions. */
    const int32_t no_leader[2] = {1, 2};
    const int32_t stranger[2] = {0, 7};
    assert_int_equal(change_isr(f, "a", 0, p0.epoch, p0.isr_version, no_leader, 2, &m, &err),
                     SX_INVALID_ARGUMENT);
    assert_int_equal(change_isr(f, "a", 0, p0.epoch, p0.isr_version, stranger, 2, &m, &err),
                     SX_INVALID_ARGUMENT);
    assert_int_equal(change_isr(f, "a", 0, p0.epoch, p0.isr_version, NULL, 0, &m, &err),
                     SX_INVALID_ARGUMENT);
    CHECK_FAIL(change_isr(f, "a", 4, p0.epoch, p0.isr_version, all, 3, &m, &err), &err,
               SX_INVALID_ARGUMENT, "partition");
    assert_null(m);
    assert_int_equal(version_of(f), v);
    track(f);

    /* Success: isr replaced, isr_version and version up, the map returned. */
    CHECK_OK(change_isr(f, "a", 0, p0.epoch, p0.isr_version, ab, 2, &m, &err), &err);
    assert_non_null(m);
    uint64_t v1 = m->msg->version;
    assert_true(v1 > v);
    assert_int_equal(v1, version_of(f));
    assert_int_equal(m->msg->partitions[0]->isr_version, p0.isr_version + 1);
    assert_int_equal(m->msg->partitions[0]->n_isr, 2);
    assert_true(has(m->msg->partitions[0]->isr, 2, 0) && has(m->msg->partitions[0]->isr, 2, 1));
    sx_coord_map_release(m);
    m = NULL;
    track(f);

    /* The same request again is stale (compare-and-set). */
    CHECK_FAIL(change_isr(f, "a", 0, p0.epoch, p0.isr_version, all, 3, &m, &err), &err,
               SX_FAILED_PRECONDITION, "0");
    assert_int_equal(version_of(f), v1);

    /* Whoever leads now (leadership may have moved to b) can grow it. */
    part_copy p1 = part_of(f, 0);
    assert_true(p1.leader == 0 || p1.leader == 1);
    const char *leader = p1.leader == 0 ? "a" : "b";
    const char *other = p1.leader == 0 ? "b" : "a";
    CHECK_FAIL(change_isr(f, other, 0, p1.epoch, p1.isr_version, all, 3, &m, &err), &err,
               SX_FAILED_PRECONDITION, other);
    CHECK_OK(change_isr(f, leader, 0, p1.epoch, p1.isr_version, all, 3, &m, &err), &err);
    sx_coord_map_release(m);
    track(f);
    part_copy p2 = part_of(f, 0);
    assert_int_equal(p2.isr_version, p0.isr_version + 2);
    assert_int_equal(p2.nisr, 3);

    /* Durable across a restart. */
    uint64_t v2 = version_of(f);
    reopen_at(f, 5000);
    part_copy p3 = part_of(f, 0);
    assert_int_equal(version_of(f), reopened(f, v2));
    assert_int_equal(p3.isr_version, p2.isr_version);
    assert_int_equal(p3.epoch, p2.epoch);
    assert_int_equal(p3.leader, p2.leader);
    assert_int_equal(p3.nisr, 3);
    assert_memory_equal(p3.isr, p2.isr, 3 * sizeof(int32_t));
}

static void test_index_catalog(void **state)
{
    fixture *f = *state;
    f->opts.settings = (sx_coord_settings){4, 2, 1, 4};
    open_at(f, 1000);
    reg(f, "a", 1000, NULL);
    reg(f, "b", 1000, NULL);
    sx_err err = {0};
    sx_arena a = {0};
    Shardex__V1__IndexInfo *info = NULL;

    /* term_partitions 0: the cluster default M. */
    Shardex__V1__IndexSpec s = spec_of("by_city", "city", STRING_T, false, true, 0);
    CHECK_OK(sx_coord_create_index(f->c, &s, &a, &info, &err), &err);
    assert_string_equal(info->spec->name, "by_city");
    assert_string_equal(info->spec->field, "city");
    assert_int_equal(info->spec->type, STRING_T);
    assert_false(info->spec->local);
    assert_true(info->spec->global);
    assert_int_equal(info->spec->term_partitions, 4);
    assert_int_equal(info->state, BUILDING);
    track(f);
    index_copy city = index_of(f, "by_city");
    assert_true(city.found && city.id >= 1);
    assert_int_equal(city.first_term, 0);
    assert_int_equal(city.term_partitions, 4);
    assert_int_equal(city.state, BUILDING);
    terms_copy tc;
    terms_of(f, &tc);
    assert_int_equal(tc.n, 4);
    for (size_t t = 0; t < 4; t++)
        assert_true(tc.owner[t] == 0 || tc.owner[t] == 1);

    /* LOCAL only: no term partitions, whatever was asked. */
    s = spec_of("loc", "age", INT_T, true, false, 9);
    CHECK_OK(sx_coord_create_index(f->c, &s, &a, &info, &err), &err);
    assert_int_equal(info->spec->term_partitions, 0);
    assert_int_equal(info->spec->type, INT_T);
    assert_true(info->spec->local && !info->spec->global);
    track(f);
    index_copy loc = index_of(f, "loc");
    assert_int_equal(loc.term_partitions, 0);
    assert_true(loc.id > city.id);
    terms_of(f, &tc);
    assert_int_equal(tc.n, 4);

    create_ok(f, "g2", true, true, 3);
    create_ok(f, "g3", false, true, 0);
    index_copy g2 = index_of(f, "g2"), g3 = index_of(f, "g3");
    assert_int_equal(g2.first_term, 4);
    assert_int_equal(g2.term_partitions, 3);
    assert_int_equal(g3.first_term, 7);
    assert_int_equal(g3.term_partitions, 4);
    terms_of(f, &tc);
    assert_int_equal(tc.n, 11);

    /* Duplicates are refused whatever the rest of the spec. */
    uint64_t v = version_of(f);
    s = spec_of("by_city", "other", INT_T, true, false, 0);
    CHECK_FAIL(sx_coord_create_index(f->c, &s, &a, &info, &err), &err, SX_ALREADY_EXISTS,
               "by_city");
    assert_null(info);
    assert_int_equal(version_of(f), v);

    Shardex__V1__ListIndexesResponse list = SHARDEX__V1__LIST_INDEXES_RESPONSE__INIT;
    sx_coord_list_indexes(f->c, &a, &list);
    assert_int_equal(list.n_indexes, 4);
    const char *names[] = {"by_city", "loc", "g2", "g3"};
    for (size_t i = 0; i < 4; i++) {
        const Shardex__V1__IndexInfo *x = find_info(list.indexes, list.n_indexes, names[i]);
        assert_non_null(x);
        assert_int_equal(x->state, BUILDING);
    }
    assert_string_equal(find_info(list.indexes, list.n_indexes, "loc")->spec->field, "age");

    /* Dropping the first global index shifts the others' term partitions. */
    terms_copy t0;
    terms_of(f, &t0);
    CHECK_OK(sx_coord_drop_index(f->c, "by_city", &err), &err);
    track(f);
    assert_true(version_of(f) > v);
    assert_false(index_of(f, "by_city").found);
    g2 = index_of(f, "g2");
    g3 = index_of(f, "g3");
    assert_int_equal(g2.first_term, 0);
    assert_int_equal(g3.first_term, 3);
    terms_copy t1;
    terms_of(f, &t1);
    assert_int_equal(t1.n, 7);
    for (uint32_t t = 0; t < 3; t++)
        same_term(&t0, 4 + t, &t1, 0 + t);
    for (uint32_t t = 0; t < 4; t++)
        same_term(&t0, 7 + t, &t1, 3 + t);

    /* Dropping one in the middle: the one after it moves down. */
    create_ok(f, "g4", false, true, 2); /* terms 7..8 */
    assert_int_equal(index_of(f, "g4").first_term, 7);
    terms_of(f, &t0);
    CHECK_OK(sx_coord_drop_index(f->c, "g3", &err), &err);
    track(f);
    assert_int_equal(index_of(f, "g2").first_term, 0);
    assert_int_equal(index_of(f, "g4").first_term, 3);
    terms_of(f, &t1);
    assert_int_equal(t1.n, 5);
    for (uint32_t t = 0; t < 3; t++)
        same_term(&t0, t, &t1, t);
    for (uint32_t t = 0; t < 2; t++)
        same_term(&t0, 7 + t, &t1, 3 + t);

    /* Unknown, and already dropped. */
    v = version_of(f);
    CHECK_FAIL(sx_coord_drop_index(f->c, "by_city", &err), &err, SX_NOT_FOUND, "by_city");
    CHECK_FAIL(sx_coord_drop_index(f->c, "nope", &err), &err, SX_NOT_FOUND, "nope");
    assert_int_equal(version_of(f), v);

    /* A LOCAL index leaves the term partitions alone. */
    CHECK_OK(sx_coord_drop_index(f->c, "loc", &err), &err);
    track(f);
    terms_of(f, &t1);
    assert_int_equal(t1.n, 5);
    assert_int_equal(index_of(f, "g4").first_term, 3);

    /* A recreated name is a new index: new id, at the end of the terms. */
    s = spec_of("by_city", "city", STRING_T, true, true, 0);
    CHECK_OK(sx_coord_create_index(f->c, &s, &a, &info, &err), &err);
    track(f);
    index_copy city2 = index_of(f, "by_city");
    assert_true(city2.id > index_of(f, "g4").id);
    assert_true(city2.id > city.id);
    assert_int_equal(city2.first_term, 5);
    assert_int_equal(city2.term_partitions, 4);
    assert_int_equal(city2.state, BUILDING);

    /* The catalog survives a restart. */
    list = (Shardex__V1__ListIndexesResponse)SHARDEX__V1__LIST_INDEXES_RESPONSE__INIT;
    sx_coord_list_indexes(f->c, &a, &list);
    assert_int_equal(list.n_indexes, 3);
    index_copy ig2 = index_of(f, "g2"), ig4 = index_of(f, "g4");
    reopen_at(f, 9000);
    Shardex__V1__ListIndexesResponse list2 = SHARDEX__V1__LIST_INDEXES_RESPONSE__INIT;
    sx_coord_list_indexes(f->c, &a, &list2);
    assert_int_equal(list2.n_indexes, 3);
    for (size_t i = 0; i < list.n_indexes; i++) {
        const Shardex__V1__IndexInfo *x = list.indexes[i];
        const Shardex__V1__IndexInfo *y = find_info(list2.indexes, list2.n_indexes, x->spec->name);
        assert_non_null(y);
        assert_string_equal(y->spec->field, x->spec->field);
        assert_int_equal(y->spec->type, x->spec->type);
        assert_int_equal(y->spec->local, x->spec->local);
        assert_int_equal(y->spec->global, x->spec->global);
        assert_int_equal(y->spec->term_partitions, x->spec->term_partitions);
        assert_int_equal(y->state, x->state);
    }
    index_copy r2 = index_of(f, "g2"), r4 = index_of(f, "g4"), rc = index_of(f, "by_city");
    assert_int_equal(r2.id, ig2.id);
    assert_int_equal(r4.id, ig4.id);
    assert_int_equal(r4.first_term, 3);
    assert_int_equal(rc.id, city2.id);
    assert_int_equal(rc.first_term, 5);
    sx_arena_free(&a);
}

/* The split points of index `name` in the current map, as "v1,v2,..." ints. */
static void splits_of(fixture *f, const char *name, char *out, size_t cap, bool *range)
{
    out[0] = '\0';
    *range = false;
    sx_coord_map *m = sx_coord_map_acquire(f->c);
    for (size_t i = 0; i < m->msg->n_indexes; i++) {
        const Shardex__V1__IndexSpec *s = m->msg->indexes[i]->spec;
        if (strcmp(s->name, name) != 0)
            continue;
        *range = s->partitioning == SHARDEX__V1__PARTITIONING__PARTITIONING_RANGE;
        for (size_t k = 0; k < s->n_split_points; k++)
            snprintf(out + strlen(out), cap - strlen(out), "%s%lld", k ? "," : "",
                     (long long)s->split_points[k]->i);
    }
    sx_coord_map_release(m);
}

/* A range-partitioned index: M is the split points plus one, and the points
 * are kept in the map (which every worker, and the index_start marker, takes
 * them from) across a restart; bad partitionings are refused. */
static void test_index_range_partitioning(void **state)
{
    fixture *f = *state;
    f->opts.settings = (sx_coord_settings){4, 2, 1, 4};
    open_at(f, 1000);
    reg(f, "a", 1000, NULL);
    Shardex__V1__Value v[4];
    Shardex__V1__Value *vp[4];
    int64_t pts[4] = {10, 20, 30, 25};
    for (int i = 0; i < 4; i++) {
        shardex__v1__value__init(&v[i]);
        v[i].kind_case = SHARDEX__V1__VALUE__KIND_I;
        v[i].i = pts[i];
        vp[i] = &v[i];
    }
    sx_arena a = {0};
    sx_err err = {0};
    Shardex__V1__IndexInfo *info = NULL;
    Shardex__V1__IndexSpec s = spec_of("r", "n", INT_T, true, true, 0);
    s.partitioning = SHARDEX__V1__PARTITIONING__PARTITIONING_RANGE;
    s.n_split_points = 3;
    s.split_points = vp;
    CHECK_OK(sx_coord_create_index(f->c, &s, &a, &info, &err), &err);
    assert_int_equal(info->spec->term_partitions, 4);
    assert_int_equal(info->spec->n_split_points, 3);
    track(f);
    char got[64];
    bool range;
    splits_of(f, "r", got, sizeof(got), &range);
    assert_true(range);
    assert_string_equal(got, "10,20,30");
    reopen_at(f, 2000);
    splits_of(f, "r", got, sizeof(got), &range);
    assert_true(range);
    assert_string_equal(got, "10,20,30");
    assert_int_equal(index_of(f, "r").term_partitions, 4);
    /* No points with one term partition: it owns every value (what a worker
     * sends for an empty cluster, worker/sample.h). */
    s = spec_of("r1", "n", INT_T, true, true, 1);
    s.partitioning = SHARDEX__V1__PARTITIONING__PARTITIONING_RANGE;
    CHECK_OK(sx_coord_create_index(f->c, &s, &a, &info, &err), &err);
    assert_int_equal(info->spec->term_partitions, 1);
    assert_int_equal(info->spec->n_split_points, 0);
    assert_int_equal(info->spec->partitioning, SHARDEX__V1__PARTITIONING__PARTITIONING_RANGE);

    struct {
        size_t n, from;
        Shardex__V1__ValueType type;
        bool global;
        uint32_t tp;
        Shardex__V1__Partitioning how;
        const char *needle;
    } bad[] = {
        {0, 0, INT_T, true, 0, SHARDEX__V1__PARTITIONING__PARTITIONING_RANGE, "required"},
        {0, 0, INT_T, true, 3, SHARDEX__V1__PARTITIONING__PARTITIONING_RANGE, "required"},
        {2, 2, INT_T, true, 0, SHARDEX__V1__PARTITIONING__PARTITIONING_RANGE, "not above"},
        {1, 0, STRING_T, true, 0, SHARDEX__V1__PARTITIONING__PARTITIONING_RANGE, "not a string"},
        {1, 0, INT_T, false, 0, SHARDEX__V1__PARTITIONING__PARTITIONING_RANGE, "GLOBAL"},
        {1, 0, INT_T, true, 5, SHARDEX__V1__PARTITIONING__PARTITIONING_RANGE,
         "spec.term_partitions"},
        {1, 0, INT_T, true, 0, SHARDEX__V1__PARTITIONING__PARTITIONING_HASH, "only for"},
    };
    uint64_t ver = version_of(f);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        s = spec_of("bad", "n", bad[i].type, true, bad[i].global, bad[i].tp);
        s.partitioning = bad[i].how;
        s.n_split_points = bad[i].n;
        s.split_points = vp + bad[i].from; /* from 2: 30 then 25 */
        info = NULL;
        sx_status st = sx_coord_create_index(f->c, &s, &a, &info, &err);
        if (st != SX_INVALID_ARGUMENT || !strstr(err.msg, bad[i].needle))
            fail_msg("case %zu: %s \"%s\", expected INVALID_ARGUMENT with %s", i,
                     sx_status_name(st), err.msg, bad[i].needle);
        assert_null(info);
    }
    assert_int_equal(version_of(f), ver);
    sx_arena_free(&a);
}

/* ------------------------------------------------------------ online split -- */

static Shardex__V1__Value ival(int64_t i)
{
    Shardex__V1__Value v = SHARDEX__V1__VALUE__INIT;
    v.kind_case = SHARDEX__V1__VALUE__KIND_I;
    v.i = i;
    return v;
}

/* The map's record of index `name`'s splits and its term partitions. */
typedef struct split_view {
    uint64_t id;
    size_t nsplits;
    uint32_t term[4], lo[4], hi[4];
    bool done[4];
    int64_t at[4];
    uint32_t nterms; /* term partition numbers (spec's plus two per split) */
    int32_t owner[16];
    uint64_t epoch[16];
    bool retired[16];
} split_view;

static split_view split_view_of(fixture *f, const char *name)
{
    split_view v = {0};
    sx_coord_map *m = sx_coord_map_acquire(f->c);
    for (size_t i = 0; i < m->msg->n_indexes; i++) {
        const Shardex__Internal__V1__IndexEntry *e = m->msg->indexes[i];
        if (strcmp(e->spec->name, name) != 0)
            continue;
        v.id = e->id;
        v.nsplits = e->n_splits;
        assert_true(e->n_splits <= 4);
        for (size_t k = 0; k < e->n_splits; k++) {
            assert_int_equal(e->splits[k]->seq, k + 1);
            v.term[k] = e->splits[k]->term;
            v.lo[k] = e->splits[k]->lo;
            v.hi[k] = e->splits[k]->hi;
            v.done[k] = e->splits[k]->done;
            v.at[k] = e->splits[k]->at->i;
        }
        v.nterms = e->spec->term_partitions + 2 * (uint32_t)e->n_splits;
        assert_true(v.nterms <= 16 && e->first_term + v.nterms <= m->msg->n_terms);
        for (uint32_t t = 0; t < v.nterms; t++) {
            v.owner[t] = m->msg->terms[e->first_term + t]->owner;
            v.epoch[t] = m->msg->terms[e->first_term + t]->epoch;
            v.retired[t] = m->msg->terms[e->first_term + t]->retired;
        }
    }
    sx_coord_map_release(m);
    return v;
}

/* A heartbeat's index reports, received at now_ms, from the owner of term
 * partition t of v: ready, at its epoch, with entries, a median and a load. */
static void report_term_load(fixture *f, const split_view *v, uint32_t t, bool ready,
                             uint64_t entries, int64_t median, double writes, double reads,
                             uint64_t now_ms)
{
    Shardex__Internal__V1__TermReport r = SHARDEX__INTERNAL__V1__TERM_REPORT__INIT;
    Shardex__V1__Value med = ival(median);
    uint64_t wm[4] = {7, 7, 7, 7};
    r.index_id = v->id;
    r.term_partition = t;
    r.epoch = v->epoch[t];
    r.ready = ready;
    r.n_watermarks = 4;
    r.watermarks = wm;
    r.entries = entries;
    r.median = &med;
    r.writes_per_s = writes;
    r.reads_per_s = reads;
    Shardex__Internal__V1__TermReport *rp = &r;
    assert_true(v->owner[t] >= 0 && v->owner[t] < 3);
    sx_coord_index_reports(f->c, abc[v->owner[t]], NULL, 0, &rp, 1, now_ms);
    track(f);
}

/* The same without load. */
static void report_term(fixture *f, const split_view *v, uint32_t t, bool ready, uint64_t entries,
                        int64_t median)
{
    report_term_load(f, v, t, ready, entries, median, 0, 0, 2000);
}

/* The salts of index `name` in the current map: values (string index) and
 * terms, as "v:t,t,t;..". */
static void salts_of(fixture *f, const char *name, char *out, size_t cap)
{
    out[0] = '\0';
    sx_coord_map *m = sx_coord_map_acquire(f->c);
    for (size_t i = 0; i < m->msg->n_indexes; i++) {
        const Shardex__Internal__V1__IndexEntry *e = m->msg->indexes[i];
        if (strcmp(e->spec->name, name) != 0)
            continue;
        for (size_t k = 0; k < e->n_salts; k++) {
            assert_int_equal(e->salts[k]->seq, k + 1);
            assert_int_equal(e->salts[k]->from, 0);
            snprintf(out + strlen(out), cap - strlen(out), "%s%s:", k ? ";" : "",
                     e->salts[k]->value->s);
            for (size_t j = 0; j < e->salts[k]->n_terms; j++)
                snprintf(out + strlen(out), cap - strlen(out), "%s%u", j ? "," : "",
                         e->salts[k]->terms[j]);
        }
    }
    sx_coord_map_release(m);
}

/* Whether index name's first salt is active in the map. */
static bool salt_active(fixture *f, const char *name)
{
    sx_coord_map *m = sx_coord_map_acquire(f->c);
    bool active = false;
    for (size_t i = 0; i < m->msg->n_indexes; i++)
        if (strcmp(m->msg->indexes[i]->spec->name, name) == 0 && m->msg->indexes[i]->n_salts)
            active = m->msg->indexes[i]->salts[0]->active;
    sx_coord_map_release(m);
    return active;
}

/* SaltIndex: refusals name the field and the limit; a salt is recorded in
 * one new map version with t0 and the next partitions (hash: (t0 + i) mod
 * M), the ways defaulting to --hot-value-ways capped at M; index info shows
 * it; it survives a restart and goes with the index. */
static void test_index_salt(void **state)
{
    fixture *f = *state;
    f->opts.settings = (sx_coord_settings){4, 2, 1, 4};
    f->opts.hot_value_ways = 3;
    open_at(f, 1000);
    uint64_t inc_a = 0, inc_b = 0;
    reg(f, "a", 1000, &inc_a);
    reg(f, "b", 1000, &inc_b);
    grow_isrs(f);
    create_ok(f, "h", false, true, 4);
    create_ok(f, "l", true, false, 0);
    sx_arena a = {0};
    sx_err err = {0};
    Shardex__V1__IndexInfo *info = NULL;
    Shardex__V1__Value hot = SHARDEX__V1__VALUE__INIT, num = ival(3);
    hot.kind_case = SHARDEX__V1__VALUE__KIND_S;
    hot.s = "maint@debian";
    CHECK_FAIL(sx_coord_salt_index(f->c, "nope", &hot, 2, &a, &info, &err), &err, SX_NOT_FOUND,
               "nope");
    CHECK_FAIL(sx_coord_salt_index(f->c, "l", &hot, 2, &a, &info, &err), &err, SX_INVALID_ARGUMENT,
               "name: index \"l\" is not GLOBAL");
    CHECK_FAIL(sx_coord_salt_index(f->c, "h", &num, 2, &a, &info, &err), &err, SX_INVALID_ARGUMENT,
               "value: not a string");
    CHECK_FAIL(sx_coord_salt_index(f->c, "h", NULL, 2, &a, &info, &err), &err, SX_INVALID_ARGUMENT,
               "value: not a string");
    CHECK_FAIL(sx_coord_salt_index(f->c, "h", &hot, 1, &a, &info, &err), &err, SX_INVALID_ARGUMENT,
               "ways: 1 is not in [2, 4]");
    CHECK_FAIL(sx_coord_salt_index(f->c, "h", &hot, 5, &a, &info, &err), &err, SX_INVALID_ARGUMENT,
               "ways: 5 is not in [2, 4]");
    char got[128];
    salts_of(f, "h", got, sizeof(got));
    assert_string_equal(got, ""); /* refusals write nothing */

    uint64_t ver = version_of(f);
    CHECK_OK(sx_coord_salt_index(f->c, "h", &hot, 0, &a, &info, &err), &err);
    assert_int_equal(version_of(f), ver + 1);
    assert_int_equal(info->n_hot_values, 1);
    assert_string_equal(info->hot_values[0]->value->s, "maint@debian");
    assert_int_equal(info->hot_values[0]->ways, 3); /* --hot-value-ways */
    uint32_t t0 = sx_term_partition_of_str("h", hot.s, strlen(hot.s), 4);
    char want[128];
    snprintf(want, sizeof(want), "maint@debian:%u,%u,%u", t0, (t0 + 1) % 4, (t0 + 2) % 4);
    salts_of(f, "h", got, sizeof(got));
    assert_string_equal(got, want);
    CHECK_FAIL(sx_coord_salt_index(f->c, "h", &hot, 2, &a, &info, &err), &err, SX_INVALID_ARGUMENT,
               "value: already salted");
    /* Active (leaders append the marker) only once every live worker has
     * installed a map with it: a heartbeat from a, then from b. */
    uint64_t recorded = version_of(f);
    assert_false(salt_active(f, "h"));
    sx_coord_map *m = NULL;
    CHECK_OK(sx_coord_heartbeat(f->c, "a", inc_a, recorded, NULL, 0, 1100, &m, &err), &err);
    assert_null(m);
    assert_false(salt_active(f, "h"));
    CHECK_OK(sx_coord_heartbeat(f->c, "b", inc_b, recorded - 1, NULL, 0, 1100, &m, &err), &err);
    sx_coord_map_release(m);
    assert_false(salt_active(f, "h")); /* b had not installed it yet */
    CHECK_OK(sx_coord_heartbeat(f->c, "b", inc_b, recorded, NULL, 0, 1200, &m, &err), &err);
    assert_true(salt_active(f, "h"));
    assert_true(version_of(f) > recorded);
    sx_coord_map_release(m);
    track(f);
    Shardex__V1__Value other = hot;
    other.s = "x";
    CHECK_OK(sx_coord_salt_index(f->c, "h", &other, 4, &a, &info, &err), &err);
    assert_int_equal(info->n_hot_values, 2);

    reopen_at(f, 2000);
    salts_of(f, "h", got, sizeof(got));
    assert_non_null(strstr(got, want));
    assert_non_null(strstr(got, ";x:"));
    Shardex__V1__ListIndexesResponse lr = SHARDEX__V1__LIST_INDEXES_RESPONSE__INIT;
    sx_coord_list_indexes(f->c, &a, &lr);
    size_t shown = 0;
    for (size_t i = 0; i < lr.n_indexes; i++)
        if (strcmp(lr.indexes[i]->spec->name, "h") == 0)
            shown = lr.indexes[i]->n_hot_values;
    assert_int_equal(shown, 2);
    CHECK_OK(sx_coord_drop_index(f->c, "h", &err), &err);
    create_ok(f, "h", false, true, 4);
    salts_of(f, "h", got, sizeof(got));
    assert_string_equal(got, ""); /* a re-created index starts unsalted */
    sx_arena_free(&a);
}

/* Each partition's leader reports `window` changes of index `id` with
 * value x counted cx times and y cy times (reports of one worker go in one
 * call, as a heartbeat sends them). */
static void hot_reports(fixture *f, uint64_t id, uint64_t window, uint64_t cx, uint64_t cy)
{
    Shardex__V1__Value x = SHARDEX__V1__VALUE__INIT, y = SHARDEX__V1__VALUE__INIT;
    x.kind_case = y.kind_case = SHARDEX__V1__VALUE__KIND_S;
    x.s = "x";
    y.s = "y";
    Shardex__Internal__V1__HotCount hc[4][2];
    Shardex__Internal__V1__HotCount *hp[4][2];
    Shardex__Internal__V1__IndexReport r[4];
    for (uint32_t p = 0; p < 4; p++) {
        shardex__internal__v1__index_report__init(&r[p]);
        r[p].index_id = id;
        r[p].partition = p;
        r[p].window_changes = window;
        for (int k = 0; k < 2; k++) {
            shardex__internal__v1__hot_count__init(&hc[p][k]);
            hc[p][k].value = k ? &y : &x;
            hc[p][k].changes = k ? cy : cx;
            hp[p][k] = &hc[p][k];
        }
        r[p].n_hot = 2;
        r[p].hot = hp[p];
    }
    for (int32_t w = 0; w < 3; w++) {
        Shardex__Internal__V1__IndexReport *mine[4];
        size_t n = 0;
        for (uint32_t p = 0; p < 4; p++)
            if (part_of(f, p).leader == w)
                mine[n++] = &r[p];
        sx_coord_index_reports(f->c, abc[w], mine, n, NULL, 0, 2000);
    }
    track(f);
}

static size_t nsalts_of(fixture *f, const char *name)
{
    sx_coord_map *m = sx_coord_map_acquire(f->c);
    size_t n = 0;
    for (size_t i = 0; i < m->msg->n_indexes; i++)
        if (strcmp(m->msg->indexes[i]->spec->name, name) == 0)
            n = m->msg->indexes[i]->n_salts;
    sx_coord_map_release(m);
    return n;
}

/* --hot-value-share: a value is salted by itself once its share of the
 * index's counted changes (the sum over its partitions' leaders) reaches the
 * threshold out of at least --hot-value-min-changes, with --hot-value-ways;
 * not below either, not while building, not twice; ListIndexes shows the
 * share. */
static void test_hot_value_detection(void **state)
{
    fixture *f = *state;
    f->opts.settings = (sx_coord_settings){4, 2, 1, 4};
    f->opts.hot_value_share = 0.25;
    f->opts.hot_value_min_changes = 100;
    f->opts.hot_value_ways = 2;
    open_at(f, 1000);
    reg(f, "a", 1000, NULL);
    reg(f, "b", 1000, NULL);
    grow_isrs(f);
    create_ok(f, "h", false, true, 4);
    create_ok(f, "g", false, true, 4);
    index_copy ic = index_of(f, "h"), ig = index_of(f, "g");
    hot_reports(f, ic.id, 100, 90, 0); /* 0.9, but still building */
    assert_int_equal(nsalts_of(f, "h"), 0);
    /* Each partition's latest report counts: settle them below first. */
    hot_reports(f, ic.id, 100, 20, 10);
    sx_err err = {0};
    Shardex__V1__IndexState is;
    for (uint32_t p = 0; p < 4; p++) {
        part_copy pc = part_of(f, p);
        CHECK_OK(sx_coord_report_backfill(f->c, abc[pc.leader], ic.id, p, pc.epoch, &is, &err),
                 &err);
        CHECK_OK(sx_coord_report_backfill(f->c, abc[pc.leader], ig.id, p, pc.epoch, &is, &err),
                 &err);
    }
    assert_int_equal(is, READY);
    hot_reports(f, ig.id, 20, 19, 0); /* 0.95 of 80 changes: too few */
    assert_int_equal(nsalts_of(f, "g"), 0);
    hot_reports(f, ic.id, 100, 20, 10); /* x: 80 of 400 = 0.2 */
    assert_int_equal(nsalts_of(f, "h"), 0);
    hot_reports(f, ic.id, 100, 30, 10); /* x: 120 of 400 = 0.3 */
    assert_int_equal(nsalts_of(f, "h"), 1);
    hot_reports(f, ic.id, 100, 40, 30); /* x again (salted), y 0.3: salted too */
    assert_int_equal(nsalts_of(f, "h"), 2);
    hot_reports(f, ic.id, 100, 40, 30);
    assert_int_equal(nsalts_of(f, "h"), 2);
    sx_arena a = {0};
    Shardex__V1__ListIndexesResponse lr = SHARDEX__V1__LIST_INDEXES_RESPONSE__INIT;
    sx_coord_list_indexes(f->c, &a, &lr);
    const Shardex__V1__IndexInfo *info = NULL;
    for (size_t i = 0; i < lr.n_indexes; i++)
        if (strcmp(lr.indexes[i]->spec->name, "h") == 0)
            info = lr.indexes[i];
    assert_non_null(info);
    assert_int_equal(info->n_hot_values, 2);
    assert_string_equal(info->hot_values[0]->value->s, "x");
    assert_int_equal(info->hot_values[0]->ways, 2);
    assert_true(info->hot_values[0]->share > 0.39 && info->hot_values[0]->share < 0.41);
    assert_true(info->hot_values[1]->share > 0.29 && info->hot_values[1]->share < 0.31);
    sx_arena_free(&a);
}

/* The split state machine: refused while building, recorded with shadows
 * owned, one at a time, swapped once both shadows' owners report them ready
 * (the parent retired and unowned in the same version), kept across a
 * restart, started by itself above --term-split-entries, and dropped with the
 * index. */
static void test_index_split(void **state)
{
    fixture *f = *state;
    f->opts.settings = (sx_coord_settings){4, 2, 1, 4};
    open_at(f, 1000);
    reg(f, "a", 1000, NULL);
    reg(f, "b", 1000, NULL);
    grow_isrs(f);
    Shardex__V1__Value v[3] = {ival(10), ival(20), ival(30)};
    Shardex__V1__Value *vp[3] = {&v[0], &v[1], &v[2]};
    Shardex__V1__IndexSpec s = spec_of("r", "n", INT_T, false, true, 0);
    s.partitioning = SHARDEX__V1__PARTITIONING__PARTITIONING_RANGE;
    s.n_split_points = 3;
    s.split_points = vp;
    sx_arena a = {0};
    sx_err err = {0};
    Shardex__V1__IndexInfo *info = NULL;
    CHECK_OK(sx_coord_create_index(f->c, &s, &a, &info, &err), &err);
    create_ok(f, "h", false, true, 2);
    track(f);
    uint32_t terms_before = (uint32_t)index_of(f, "h").first_term;
    Shardex__V1__Value at = ival(15);
    CHECK_FAIL(sx_coord_split_index(f->c, "r", 1, &at, &a, &info, &err), &err,
               SX_FAILED_PRECONDITION, "still building");
    index_copy ic = index_of(f, "r");
    Shardex__V1__IndexState is;
    for (uint32_t p = 0; p < 4; p++) {
        part_copy pc = part_of(f, p);
        CHECK_OK(sx_coord_report_backfill(f->c, abc[pc.leader], ic.id, p, pc.epoch, &is, &err),
                 &err);
    }
    assert_int_equal(is, READY);
    CHECK_FAIL(sx_coord_split_index(f->c, "h", 0, &at, &a, &info, &err), &err, SX_INVALID_ARGUMENT,
               "not range-partitioned");
    CHECK_FAIL(sx_coord_split_index(f->c, "nope", 0, &at, &a, &info, &err), &err, SX_NOT_FOUND,
               "nope");
    CHECK_FAIL(sx_coord_split_index(f->c, "r", 4, &at, &a, &info, &err), &err, SX_INVALID_ARGUMENT,
               "term_partition: 4");
    Shardex__V1__Value out = ival(25), edge = ival(10), str = SHARDEX__V1__VALUE__INIT;
    str.kind_case = SHARDEX__V1__VALUE__KIND_S;
    str.s = "x";
    CHECK_FAIL(sx_coord_split_index(f->c, "r", 1, &out, &a, &info, &err), &err, SX_INVALID_ARGUMENT,
               "at: outside");
    CHECK_FAIL(sx_coord_split_index(f->c, "r", 1, &edge, &a, &info, &err), &err,
               SX_INVALID_ARGUMENT, "at: outside");
    CHECK_FAIL(sx_coord_split_index(f->c, "r", 1, &str, &a, &info, &err), &err, SX_INVALID_ARGUMENT,
               "at: not a int");
    CHECK_FAIL(sx_coord_split_index(f->c, "r", 1, NULL, &a, &info, &err), &err,
               SX_FAILED_PRECONDITION, "no median");

    uint64_t ver = version_of(f);
    CHECK_OK(sx_coord_split_index(f->c, "r", 1, &at, &a, &info, &err), &err);
    track(f);
    assert_true(version_of(f) > ver);
    assert_int_equal(info->splits_in_progress, 1);
    split_view sv = split_view_of(f, "r");
    assert_int_equal(sv.nsplits, 1);
    assert_int_equal(sv.term[0], 1);
    assert_int_equal(sv.lo[0], 4);
    assert_int_equal(sv.hi[0], 5);
    assert_false(sv.done[0]);
    assert_int_equal(sv.at[0], 15);
    assert_int_equal(sv.nterms, 6);
    for (uint32_t t = 0; t < 6; t++)
        assert_true(sv.owner[t] >= 0 && !sv.retired[t]); /* the shadows are owned at once */
    /* The other index's term partitions moved up by two, each the same. */
    assert_int_equal(index_of(f, "h").first_term, terms_before + 2);
    CHECK_FAIL(sx_coord_split_index(f->c, "r", 2, &v[2], &a, &info, &err), &err,
               SX_FAILED_PRECONDITION, "in progress");

    /* One shadow ready, the other not (or reported at another epoch): no swap. */
    ver = version_of(f);
    report_term(f, &sv, 4, true, 3, 12);
    report_term(f, &sv, 5, false, 0, 0);
    split_view stale = sv;
    stale.epoch[5]++;
    report_term(f, &stale, 5, true, 3, 17);
    assert_int_equal(version_of(f), ver);
    assert_false(split_view_of(f, "r").done[0]);
    /* Both ready: one version swaps them in and retires t1. */
    report_term(f, &sv, 5, true, 3, 17);
    assert_int_equal(version_of(f), ver + 1);
    split_view after = split_view_of(f, "r");
    assert_true(after.done[0]);
    assert_true(after.retired[1]);
    assert_int_equal(after.owner[1], -1);
    assert_true(after.epoch[1] > sv.epoch[1]);
    Shardex__V1__ListIndexesResponse l = SHARDEX__V1__LIST_INDEXES_RESPONSE__INIT;
    sx_coord_list_indexes(f->c, &a, &l);
    const Shardex__V1__IndexInfo *ri = find_info(l.indexes, l.n_indexes, "r");
    assert_non_null(ri);
    uint32_t want[] = {0, 4, 5, 2, 3};
    int64_t bounds[] = {10, 15, 20, 30};
    assert_int_equal(ri->n_term_layout, 5);
    assert_int_equal(ri->n_layout_bounds, 4);
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(ri->term_layout[i], want[i]);
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(ri->layout_bounds[i]->i, bounds[i]);
    assert_int_equal(ri->splits_done, 1);
    assert_int_equal(ri->splits_in_progress, 0);
    /* Retired: never owned again, not split again. */
    CHECK_FAIL(sx_coord_split_index(f->c, "r", 1, &at, &a, &info, &err), &err, SX_INVALID_ARGUMENT,
               "term_partition: 1");

    /* Kept across a restart; above --term-split-entries a split starts by
     * itself at the reported median (not below it, nor on a retired one). */
    f->opts.term_split_entries = 100;
    reopen_at(f, 2000); /* the workers keep their roles, with fresh leases */
    sv = split_view_of(f, "r");
    assert_true(sv.done[0] && sv.retired[1] && sv.owner[1] == -1);
    ver = version_of(f);
    report_term(f, &sv, 5, true, 100, 17);
    assert_int_equal(version_of(f), ver);
    report_term(f, &sv, 5, true, 101, 17);
    sv = split_view_of(f, "r");
    assert_int_equal(sv.nsplits, 2);
    assert_int_equal(sv.term[1], 5);
    assert_int_equal(sv.at[1], 17);
    assert_int_equal(sv.lo[1], 6);
    assert_false(sv.done[1]);

    /* Dropped with every term partition it had. */
    CHECK_OK(sx_coord_drop_index(f->c, "r", &err), &err);
    track(f);
    assert_int_equal(index_of(f, "h").first_term, 0);
    sx_arena_free(&a);
}

/* A READY range index `name` on n, split at 10, 20 and 30 (t1 = [10, 20)). */
static void create_ready_range(fixture *f, const char *name)
{
    Shardex__V1__Value v[3] = {ival(10), ival(20), ival(30)};
    Shardex__V1__Value *vp[3] = {&v[0], &v[1], &v[2]};
    Shardex__V1__IndexSpec s = spec_of(name, "n", INT_T, false, true, 0);
    s.partitioning = SHARDEX__V1__PARTITIONING__PARTITIONING_RANGE;
    s.n_split_points = 3;
    s.split_points = vp;
    sx_arena a = {0};
    sx_err err = {0};
    Shardex__V1__IndexInfo *info = NULL;
    CHECK_OK(sx_coord_create_index(f->c, &s, &a, &info, &err), &err);
    track(f);
    index_copy ic = index_of(f, name);
    Shardex__V1__IndexState is = SHARDEX__V1__INDEX_STATE__INDEX_STATE_BUILDING;
    for (uint32_t p = 0; p < 4; p++) {
        part_copy pc = part_of(f, p);
        CHECK_OK(sx_coord_report_backfill(f->c, abc[pc.leader], ic.id, p, pc.epoch, &is, &err),
                 &err);
    }
    assert_int_equal(is, READY);
    sx_arena_free(&a);
}

/* Term partition t of index `name` as ClusterStatus shows it. */
static void status_load(fixture *f, const char *name, uint32_t t, uint64_t *entries, double *writes,
                        double *reads)
{
    sx_arena a = {0};
    Shardex__V1__ClusterStatusResponse st = SHARDEX__V1__CLUSTER_STATUS_RESPONSE__INIT;
    sx_coord_status(f->c, 20000, &a, &st);
    bool found = false;
    for (size_t i = 0; i < st.n_term_partitions; i++) {
        const Shardex__V1__TermPartitionStatus *ts = st.term_partitions[i];
        if (strcmp(ts->index, name) != 0 || ts->term_partition != t)
            continue;
        *entries = ts->entries;
        *writes = ts->writes_per_s;
        *reads = ts->reads_per_s;
        found = true;
    }
    sx_arena_free(&a);
    assert_true(found);
}

/* Split k of v done: both shadows reported ready, at once by a worker
 * that owns both (one report replaces a worker's others). */
static void swap_shadows(fixture *f, const split_view *v, size_t k, uint64_t now_ms)
{
    uint32_t lo = v->lo[k], hi = v->hi[k];
    Shardex__V1__Value med = ival(0);
    uint64_t wm[4] = {7, 7, 7, 7};
    Shardex__Internal__V1__TermReport r[2];
    for (int i = 0; i < 2; i++) {
        shardex__internal__v1__term_report__init(&r[i]);
        r[i].index_id = v->id;
        r[i].term_partition = i ? hi : lo;
        r[i].epoch = v->epoch[r[i].term_partition];
        r[i].ready = true;
        r[i].n_watermarks = 4;
        r[i].watermarks = wm;
        r[i].median = &med;
    }
    if (v->owner[lo] == v->owner[hi]) {
        Shardex__Internal__V1__TermReport *rp[2] = {&r[0], &r[1]};
        sx_coord_index_reports(f->c, abc[v->owner[lo]], NULL, 0, rp, 2, now_ms);
    } else {
        for (int i = 0; i < 2; i++) {
            Shardex__Internal__V1__TermReport *rp = &r[i];
            sx_coord_index_reports(f->c, abc[v->owner[i ? hi : lo]], NULL, 0, &rp, 1, now_ms);
        }
    }
    track(f);
    assert_true(split_view_of(f, "r").done[k]);
}

/* --term-split-load: a term partition splits at its median once its
 * owner's reports have shown a load (writes + reads per second) above the
 * limit for the window, unbroken at one epoch. A load at the limit is not
 * above it, a dip below starts the run again, a median that cannot split
 * (at t's lower bound) is skipped as for the size trigger, and one split at
 * a time. ClusterStatus shows entries and load. With --term-split-entries
 * set too, either trigger starts a split. */
static void test_index_split_load(void **state)
{
    fixture *f = *state;
    f->opts.settings = (sx_coord_settings){4, 2, 1, 4};
    f->opts.term_split_load = 100;
    f->opts.term_split_load_window_ms = 3000;
    open_at(f, 1000);
    reg(f, "a", 1000, NULL);
    reg(f, "b", 1000, NULL);
    grow_isrs(f);
    create_ready_range(f, "r");
    split_view sv = split_view_of(f, "r");
    uint64_t ver = version_of(f);

    /* Not numbers >= 0 (a worker's bug): no load at all. */
    report_term_load(f, &sv, 1, true, 8, 15, NAN, INFINITY, 1000);
    report_term_load(f, &sv, 1, true, 8, 15, -1e9, INFINITY, 9000);
    uint64_t entries = 0;
    double w = -1, r = -1;
    status_load(f, "r", 1, &entries, &w, &r);
    assert_true(w == 0 && r == 0);
    report_term_load(f, &sv, 1, true, 8, 15, 50, 40, 10000); /* 90: below */
    report_term_load(f, &sv, 1, true, 8, 15, 60, 40, 10500); /* 100: at, not above */
    report_term_load(f, &sv, 1, true, 8, 15, 80, 30, 13600); /* above from here */
    report_term_load(f, &sv, 1, true, 8, 15, 0, 110, 15000); /* 1.4 s of 3 */
    report_term_load(f, &sv, 1, true, 8, 15, 20, 50, 15500); /* a dip: the run ends */
    report_term_load(f, &sv, 1, true, 8, 15, 200, 0, 16000); /* a new run */
    report_term_load(f, &sv, 1, true, 8, 15, 200, 0, 18000);
    report_term_load(f, &sv, 1, true, 8, 15, 200, 0, 18999);
    assert_int_equal(version_of(f), ver);
    assert_int_equal(split_view_of(f, "r").nsplits, 0);
    status_load(f, "r", 1, &entries, &w, &r);
    assert_int_equal(entries, 8);
    assert_true(w == 200 && r == 0);
    /* Above at its lower bound: nothing to split at, however long. */
    report_term_load(f, &sv, 1, true, 8, 10, 200, 0, 19000);
    assert_int_equal(version_of(f), ver);
    /* 3 s above: a split at the median. */
    report_term_load(f, &sv, 1, true, 8, 15, 200, 0, 19001);
    assert_true(version_of(f) > ver);
    split_view after = split_view_of(f, "r");
    assert_int_equal(after.nsplits, 1);
    assert_int_equal(after.term[0], 1);
    assert_int_equal(after.at[0], 15);
    assert_false(after.done[0]);
    /* One at a time: t2 loaded for long waits for the swap. */
    report_term_load(f, &after, 2, true, 8, 25, 0, 500, 20000);
    report_term_load(f, &after, 2, true, 8, 25, 0, 500, 30000);
    assert_int_equal(split_view_of(f, "r").nsplits, 1);
    swap_shadows(f, &after, 0, 30500);
    /* After it, t2 splits once its owner's run lasts the window. */
    report_term_load(f, &after, 2, true, 8, 25, 0, 500, 31000);
    report_term_load(f, &after, 2, true, 8, 25, 0, 500, 34000);
    after = split_view_of(f, "r");
    assert_int_equal(after.nsplits, 2);
    assert_int_equal(after.term[1], 2);
    assert_int_equal(after.at[1], 25);
    swap_shadows(f, &after, 1, 34500);

    /* Both triggers: many entries and no load split, and so does load
     * with few entries. */
    f->opts.term_split_entries = 100;
    reopen_at(f, 40000);
    after = split_view_of(f, "r");
    report_term_load(f, &after, 3, true, 101, 35, 0, 0, 40500);
    after = split_view_of(f, "r");
    assert_int_equal(after.nsplits, 3);
    assert_int_equal(after.term[2], 3);
    swap_shadows(f, &after, 2, 41000);
    report_term_load(f, &after, 0, true, 5, 5, 300, 0, 42000);
    report_term_load(f, &after, 0, true, 5, 5, 300, 0, 45000);
    after = split_view_of(f, "r");
    assert_int_equal(after.nsplits, 4);
    assert_int_equal(after.term[3], 0);
    assert_int_equal(after.at[3], 5);
}

static void test_index_invalid_specs(void **state)
{
    fixture *f = *state;
    open_at(f, 1000);
    reg(f, "a", 1000, NULL);
    char long_name[SX_INDEX_NAME_MAX + 2];
    memset(long_name, 'n', SX_INDEX_NAME_MAX + 1);
    long_name[SX_INDEX_NAME_MAX + 1] = '\0';
    const struct {
        Shardex__V1__IndexSpec s;
        const char *needle;
    } cases[] = {
        {spec_of("", "f", STRING_T, true, false, 0), "spec.name"},
        {spec_of("has space", "f", STRING_T, true, false, 0), "spec.name"},
        {spec_of("a/b", "f", STRING_T, true, false, 0), "spec.name"},
        {spec_of("caf\xc3\xa9", "f", STRING_T, true, false, 0), "spec.name"},
        {spec_of(long_name, "f", STRING_T, true, false, 0), "spec.name"},
        {spec_of("ok", "", STRING_T, true, false, 0), "spec.field"},
        {spec_of("ok", long_name, STRING_T, true, false, 0), "spec.field"},
        {spec_of("ok", "f", SHARDEX__V1__VALUE_TYPE__VALUE_TYPE_UNSPECIFIED, true, false, 0),
         "spec.type"},
        {spec_of("ok", "f", (Shardex__V1__ValueType)99, true, false, 0), "spec.type"},
        {spec_of("ok", "f", STRING_T, false, false, 0), "LOCAL"},
        {spec_of("ok", "f", STRING_T, false, true, SX_MAX_TERM_PARTITIONS + 1),
         "spec.term_partitions"},
    };
    uint64_t v = version_of(f);
    sx_arena a = {0};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        static Shardex__V1__IndexInfo sentinel;
        Shardex__V1__IndexInfo *info = &sentinel; /* must be overwritten */
        sx_err err = {0};
        sx_status st = sx_coord_create_index(f->c, &cases[i].s, &a, &info, &err);
        if (st != SX_INVALID_ARGUMENT)
            fail_msg("case %zu: expected INVALID_ARGUMENT, got %s", i, sx_status_name(st));
        assert_null(info);
        if (!strstr(err.msg, cases[i].needle))
            fail_msg("case %zu: \"%s\" does not mention %s", i, err.msg, cases[i].needle);
    }
    sx_err err = {0};
    Shardex__V1__IndexInfo *info = NULL;
    CHECK_FAIL(sx_coord_create_index(f->c, NULL, &a, &info, &err), &err, SX_INVALID_ARGUMENT,
               "spec");
    assert_int_equal(version_of(f), v);
    Shardex__V1__ListIndexesResponse list = SHARDEX__V1__LIST_INDEXES_RESPONSE__INIT;
    sx_coord_list_indexes(f->c, &a, &list);
    assert_int_equal(list.n_indexes, 0);

    /* The limits themselves and every allowed character are accepted. */
    long_name[SX_INDEX_NAME_MAX] = '\0';
    create_ok(f, long_name, true, false, 0);
    create_ok(f, "aZ09_-.x", false, true, SX_MAX_TERM_PARTITIONS);
    Shardex__V1__IndexSpec s = spec_of("longfield", long_name, INT_T, true, false, 0);
    CHECK_OK(sx_coord_create_index(f->c, &s, &a, &info, &err), &err);
    track(f);
    sx_arena_free(&a);
}

static void test_backfill(void **state)
{
    fixture *f = *state;
    f->opts.settings = (sx_coord_settings){4, 2, 1, 2};
    open_at(f, 1000);
    reg(f, "a", 1000, NULL);
    reg(f, "b", 1000, NULL);
    grow_isrs(f);
    create_ok(f, "g", true, true, 0);
    index_copy g = index_of(f, "g");
    const char *ids[2] = {"a", "b"};
    sx_err err = {0};
    Shardex__V1__IndexState is = SHARDEX__V1__INDEX_STATE__INDEX_STATE_UNSPECIFIED;

    for (uint32_t p = 0; p < 4; p++) {
        part_copy pc = part_of(f, p);
        assert_true(pc.leader == 0 || pc.leader == 1);
        const char *leader = ids[pc.leader], *other = ids[1 - pc.leader];
        uint64_t v = version_of(f);
        CHECK_FAIL(sx_coord_report_backfill(f->c, other, g.id, p, pc.epoch, &is, &err), &err,
                   SX_FAILED_PRECONDITION, other);
        CHECK_FAIL(sx_coord_report_backfill(f->c, leader, g.id, p, pc.epoch + 1, &is, &err), &err,
                   SX_FAILED_PRECONDITION, leader);
        if (pc.epoch > 0)
            CHECK_FAIL(sx_coord_report_backfill(f->c, leader, g.id, p, pc.epoch - 1, &is, &err),
                       &err, SX_FAILED_PRECONDITION, leader);
        CHECK_FAIL(sx_coord_report_backfill(f->c, "zz", g.id, p, pc.epoch, &is, &err), &err,
                   SX_FAILED_PRECONDITION, "zz");
        CHECK_FAIL(sx_coord_report_backfill(f->c, leader, g.id + 1000, p, pc.epoch, &is, &err),
                   &err, SX_NOT_FOUND, "1");
        CHECK_FAIL(sx_coord_report_backfill(f->c, leader, g.id, 4, pc.epoch, &is, &err), &err,
                   SX_INVALID_ARGUMENT, "partition");
        assert_int_equal(version_of(f), v);
        assert_int_equal(index_of(f, "g").nbackfilled, p);

        CHECK_OK(sx_coord_report_backfill(f->c, leader, g.id, p, pc.epoch, &is, &err), &err);
        track(f);
        assert_int_equal(is, p < 3 ? BUILDING : READY);
        assert_int_equal(index_of(f, "g").state, is);
        assert_int_equal(index_of(f, "g").nbackfilled, p + 1);
        if (p == 1) /* what was reported survives a restart */
            reopen_at(f, 2000);
    }
    /* A repeated report is harmless. */
    uint64_t v = version_of(f);
    part_copy pc = part_of(f, 0);
    is = SHARDEX__V1__INDEX_STATE__INDEX_STATE_UNSPECIFIED;
    CHECK_OK(sx_coord_report_backfill(f->c, ids[pc.leader], g.id, 0, pc.epoch, &is, &err), &err);
    assert_int_equal(is, READY);
    assert_int_equal(version_of(f), v);

    sx_arena a = {0};
    Shardex__V1__ListIndexesResponse list = SHARDEX__V1__LIST_INDEXES_RESPONSE__INIT;
    sx_coord_list_indexes(f->c, &a, &list);
    assert_int_equal(list.n_indexes, 1);
    assert_int_equal(list.indexes[0]->state, READY);
    reopen_at(f, 3000);
    list = (Shardex__V1__ListIndexesResponse)SHARDEX__V1__LIST_INDEXES_RESPONSE__INIT;
    sx_coord_list_indexes(f->c, &a, &list);
    assert_int_equal(list.indexes[0]->state, READY);

    /* Dropped: its id is unknown; recreated: a new id, BUILDING again. */
    CHECK_OK(sx_coord_drop_index(f->c, "g", &err), &err);
    track(f);
    CHECK_FAIL(sx_coord_report_backfill(f->c, ids[pc.leader], g.id, 0, pc.epoch, &is, &err), &err,
               SX_NOT_FOUND, "dropped");
    create_ok(f, "g", true, false, 0);
    index_copy g2 = index_of(f, "g");
    assert_true(g2.id > g.id);
    assert_int_equal(g2.state, BUILDING);
    assert_int_equal(g2.nbackfilled, 0);
    sx_arena_free(&a);
}

static void test_status(void **state)
{
    fixture *f = *state;
    init_reports();
    f->opts.settings = (sx_coord_settings){4, 3, 2, 2};
    open_at(f, 1000);
    uint64_t inc[3];
    reg(f, "a", 1000, &inc[0]);
    reg(f, "b", 1000, &inc[1]);
    reg(f, "c", 1000, &inc[2]);
    grow_isrs(f);
    create_ok(f, "g", false, true, 0);
    create_ok(f, "l", true, false, 0);
    for (int k = 0; k < 3; k++)
        hb(f, abc[k], inc[k], 1500, 4);
    hb(f, "a", inc[0], 2400, 4);
    hb(f, "b", inc[1], 2400, 4);
    tick(f, 1500 + 2 * LEASE); /* c dies */
    assert_false(worker_alive(f, 2));

    sx_arena a = {0};
    for (int round = 0; round < 2; round++) {
        uint64_t now = round == 0 ? 3600 : 9000;
        Shardex__V1__ClusterStatusResponse st = SHARDEX__V1__CLUSTER_STATUS_RESPONSE__INIT;
        sx_coord_status(f->c, now, &a, &st);
        sx_coord_map *m = sx_coord_map_acquire(f->c);
        const cmap *msg = m->msg;
        assert_int_equal(st.partitions, 4);
        assert_int_equal(st.replication, 3);
        assert_int_equal(st.min_isr, 2);
        assert_int_equal(st.map_version, msg->version);

        assert_int_equal(st.n_workers, 3);
        for (size_t w = 0; w < 3; w++) {
            assert_string_equal(st.workers[w]->id, msg->workers[w]->id);
            assert_string_equal(st.workers[w]->address, msg->workers[w]->address);
            assert_int_equal(st.workers[w]->alive, w < 2);
        }
        assert_int_equal(st.workers[2]->lease_remaining_ms, 0);
        assert_true(st.workers[0]->lease_remaining_ms > 0);
        assert_true(st.workers[0]->lease_remaining_ms <= 2 * LEASE);

        assert_int_equal(st.n_log_partitions, 4);
        for (uint32_t p = 0; p < 4; p++) {
            const Shardex__V1__LogPartitionStatus *ps = st.log_partitions[p];
            const lpart *lp = msg->partitions[p];
            assert_int_equal(ps->partition, p);
            assert_int_equal(ps->epoch, lp->epoch);
            assert_true(lp->leader >= 0);
            assert_string_equal(ps->leader, msg->workers[lp->leader]->id);
            assert_int_equal(ps->available, lp->n_isr >= 2);
            assert_int_equal(ps->n_replicas, lp->n_replicas);
            for (size_t k = 0; k < lp->n_replicas; k++) {
                assert_string_equal(ps->replicas[k]->worker_id, msg->workers[lp->replicas[k]]->id);
                assert_int_equal(ps->replicas[k]->in_sync,
                                 has(lp->isr, lp->n_isr, lp->replicas[k]));
                if (round == 0) { /* reports are not kept across a restart */
                    assert_int_equal(ps->replicas[k]->log_end_offset, 100 + p);
                    assert_int_equal(ps->replicas[k]->applied_offset, 90 + p);
                }
            }
            if (round == 0)
                assert_int_equal(ps->commit_offset, 80 + p);
        }

        assert_int_equal(st.n_term_partitions, 2);
        index_copy g = index_of(f, "g");
        for (uint32_t t = 0; t < 2; t++) {
            const Shardex__V1__TermPartitionStatus *ts = st.term_partitions[t];
            const Shardex__Internal__V1__TermPartition *tp = msg->terms[g.first_term + t];
            assert_string_equal(ts->index, "g");
            assert_int_equal(ts->term_partition, t);
            assert_int_equal(ts->epoch, tp->epoch);
            assert_true(tp->owner == 0 || tp->owner == 1);
            assert_string_equal(ts->owner, msg->workers[tp->owner]->id);
        }
        assert_int_equal(st.n_indexes, 2);
        const Shardex__V1__IndexInfo *gi = find_info(st.indexes, st.n_indexes, "g");
        const Shardex__V1__IndexInfo *li = find_info(st.indexes, st.n_indexes, "l");
        assert_non_null(gi);
        assert_non_null(li);
        assert_true(gi->spec->global && !gi->spec->local);
        assert_int_equal(gi->spec->term_partitions, 2);
        assert_true(li->spec->local && !li->spec->global);
        assert_int_equal(gi->state, BUILDING);
        sx_coord_map_release(m);
        if (round == 0)
            reopen_at(f, 8500);
    }
    sx_arena_free(&a);
}

/* Issue 11 through the coordinator (P=1, R=3, min_isr=2): the follower that
 * left the ISR last, when it fell below min_isr, is eligible; the leader comes
 * back without its store and may not lead; the first follower (it missed
 * commits) may not either; the eligible one does. All of it survives a
 * restart of the coordinator. */
static void test_lost_store_elects_the_eligible(void **state)
{
    fixture *f = *state;
    f->opts.settings = (sx_coord_settings){1, 3, 2, 4};
    open_at(f, 1000);
    uint64_t inc[3];
    for (int k = 0; k < 3; k++)
        reg(f, abc[k], 1000, &inc[k]);
    grow_isrs(f);
    part_copy p0 = part_of(f, 0);
    assert_int_equal(p0.nisr, 3);
    const int32_t l = p0.leader, f1 = (l + 1) % 3, f2 = (l + 2) % 3;

    /* f1's lease runs out: the ISR {l, f2} is at min_isr, f1 is not eligible. */
    hb(f, abc[l], inc[l], 2000, 0);
    hb(f, abc[f2], inc[f2], 2000, 0);
    tick(f, 2300);
    p0 = part_of(f, 0);
    assert_false(worker_alive(f, f1));
    assert_int_equal(p0.nisr, 2);
    assert_int_equal(p0.nelr, 0);
    /* then f2's: the ISR {l} is below min_isr, f2 holds every commit. */
    hb(f, abc[l], inc[l], 3000, 0);
    tick(f, 3300);
    p0 = part_of(f, 0);
    assert_false(worker_alive(f, f2));
    assert_int_equal(p0.leader, l);
    assert_int_equal(p0.nisr, 1);
    assert_int_equal(p0.nelr, 1);
    assert_int_equal(p0.elr[0], f2);
    /* then l's. */
    tick(f, 4300);
    assert_false(worker_alive(f, l));
    assert_int_equal(part_of(f, 0).leader, -1);

    /* l returns without its store of partition 0 (partitions beyond P are
     * ignored): not in the ISR, not leading. */
    const uint32_t lost[2] = {0, 7};
    reg_lost(f, abc[l], lost, 2, 5000, &inc[l]);
    p0 = part_of(f, 0);
    assert_int_equal(p0.leader, -1);
    assert_int_equal(p0.nisr, 0);
    assert_int_equal(p0.nelr, 1);
    assert_int_equal(p0.elr[0], f2);
    assert_true(has(p0.replicas, p0.nreplicas, l));
    sx_arena a = {0};
    Shardex__V1__ClusterStatusResponse st = SHARDEX__V1__CLUSTER_STATUS_RESPONSE__INIT;
    sx_coord_status(f->c, 5000, &a, &st);
    assert_false(st.log_partitions[0]->available);
    assert_string_equal(st.log_partitions[0]->leader, "");
    sx_arena_free(&a);

    /* Durable: a restarted coordinator knows who may lead. */
    uint64_t v = version_of(f);
    reopen_at(f, 5100);
    assert_int_equal(version_of(f), reopened(f, v));
    part_copy again = part_of(f, 0);
    assert_int_equal(again.nisr, 0);
    assert_int_equal(again.isr_version, p0.isr_version);
    assert_int_equal(again.nelr, 1);
    assert_int_equal(again.elr[0], f2);

    /* f1 returns (its store intact): it missed commits, it may not lead. */
    reg(f, abc[f1], 5200, &inc[f1]);
    assert_int_equal(part_of(f, 0).leader, -1);
    /* f2 returns: it leads, in a new epoch, as the ISR. */
    reg(f, abc[f2], 5300, &inc[f2]);
    part_copy led = part_of(f, 0);
    assert_int_equal(led.leader, f2);
    assert_true(led.epoch > p0.epoch);
    assert_int_equal(led.nisr, 1);
    assert_int_equal(led.isr[0], f2);
    assert_int_equal(led.nelr, 0);
    /* l and f1 catch up through the leader, as anyone would. */
    grow_isrs(f);
    assert_int_equal(part_of(f, 0).nisr, 3);
}

/* A worker restarting with its store intact leaves an ISR that keeps a live
 * member; below min_isr it stays eligible. When the remaining member then
 * comes back without its store, the eligible one leads at once. */
static void test_restart_intact_stays_eligible(void **state)
{
    fixture *f = *state;
    f->opts.settings = (sx_coord_settings){1, 3, 2, 4};
    open_at(f, 1000);
    uint64_t inc[3];
    for (int k = 0; k < 3; k++)
        reg(f, abc[k], 1000, &inc[k]);
    grow_isrs(f);
    const int32_t l = part_of(f, 0).leader, x = (l + 1) % 3; /* the third dies */
    hb(f, abc[l], inc[l], 2000, 0);
    hb(f, abc[x], inc[x], 2000, 0);
    tick(f, 2300); /* y dies: ISR {l, x} */
    assert_int_equal(part_of(f, 0).nisr, 2);
    reg(f, abc[x], 2400, &inc[x]); /* x restarts, intact: ISR {l}, x eligible */
    part_copy p0 = part_of(f, 0);
    assert_int_equal(p0.leader, l);
    assert_int_equal(p0.nisr, 1);
    assert_int_equal(p0.nelr, 1);
    assert_int_equal(p0.elr[0], x);
    /* l restarts without its store while x is alive: x leads. */
    const uint32_t lost[1] = {0};
    reg_lost(f, abc[l], lost, 1, 2500, &inc[l]);
    p0 = part_of(f, 0);
    assert_int_equal(p0.leader, x);
    assert_int_equal(p0.nisr, 1);
    assert_int_equal(p0.nelr, 0);
    /* A lost store of a replica outside the ISR and the ELR changes nothing. */
    uint64_t v = version_of(f);
    reg_lost(f, abc[l], lost, 1, 2600, &inc[l]);
    part_copy same = part_of(f, 0);
    assert_true(version_of(f) > v);
    assert_int_equal(same.leader, x);
    assert_int_equal(same.epoch, p0.epoch);
    assert_int_equal(same.isr_version, p0.isr_version);
}

/* min_isr 1: the last ISR member alone commits, nobody else is eligible.
 * When it comes back without its store, the partition stays without a
 * leader, whoever is alive; its other partitions lead again as before. */
static void test_lost_store_without_eligible_stays_unavailable(void **state)
{
    fixture *f = *state;
    f->opts.settings = (sx_coord_settings){2, 3, 1, 4};
    open_at(f, 1000);
    uint64_t inc[3];
    for (int k = 0; k < 3; k++)
        reg(f, abc[k], 1000, &inc[k]);
    /* Replicas added after the first are not in sync: a alone is in the ISR. */
    for (uint32_t p = 0; p < 2; p++)
        assert_int_equal(part_of(f, p).isr[0], 0);
    hb(f, "b", inc[1], 2000, 0);
    hb(f, "c", inc[2], 2000, 0);
    tick(f, 2300);
    assert_false(worker_alive(f, 0));
    const uint32_t lost[1] = {1};
    reg_lost(f, "a", lost, 1, 2400, &inc[0]);
    part_copy p0 = part_of(f, 0), p1 = part_of(f, 1);
    assert_int_equal(p0.leader, 0);
    assert_int_equal(p1.leader, -1);
    assert_int_equal(p1.nisr, 0);
    assert_int_equal(p1.nelr, 0);
    for (int k = 0; k < 3; k++)
        hb(f, abc[k], inc[k], 3000, 0);
    tick(f, 3000);
    reopen_at(f, 3100);
    reg(f, "b", 3200, &inc[1]);
    p1 = part_of(f, 1);
    assert_int_equal(p1.leader, -1);
    assert_int_equal(p1.nisr, 0);
    assert_int_equal(p1.nreplicas, 3);
    /* Nobody can ask to grow it: it has no leader. */
    sx_err err = {0};
    sx_coord_map *m = NULL;
    const int32_t b_only[1] = {1};
    CHECK_FAIL(change_isr(f, "b", 1, p1.epoch, p1.isr_version, b_only, 1, &m, &err), &err,
               SX_FAILED_PRECONDITION, "partition 1");
}

/* A leader's ISR changes keep the ELR: members dropped below min_isr become
 * eligible, growing back to min_isr ends their eligibility. */
static void test_change_isr_keeps_the_elr(void **state)
{
    fixture *f = *state;
    f->opts.settings = (sx_coord_settings){1, 3, 2, 4};
    open_at(f, 1000);
    for (int k = 0; k < 3; k++)
        reg(f, abc[k], 1000, NULL);
    grow_isrs(f);
    part_copy p0 = part_of(f, 0);
    const int32_t l = p0.leader;
    sx_err err = {0};
    sx_coord_map *m = NULL;
    CHECK_OK(change_isr(f, abc[l], 0, p0.epoch, p0.isr_version, &l, 1, &m, &err), &err);
    sx_coord_map_release(m);
    track(f);
    part_copy shrunk = part_of(f, 0);
    assert_int_equal(shrunk.nisr, 1);
    assert_int_equal(shrunk.nelr, 2); /* both held every commit: they were in the ISR */
    const int32_t two[2] = {l, (l + 1) % 3};
    CHECK_OK(change_isr(f, abc[l], 0, shrunk.epoch, shrunk.isr_version, two, 2, &m, &err), &err);
    sx_coord_map_release(m);
    track(f);
    part_copy grown = part_of(f, 0);
    assert_int_equal(grown.nisr, 2);
    assert_int_equal(grown.nelr, 0);
}

/* A seeded random walk over every operation: after each step the tracker
 * checks that no version or epoch went down and that the map is consistent.
 * SX_TEST_SEED replays a failure. */
static void test_random_walk_never_goes_back(void **state)
{
    fixture *f = *state;
    unsigned seed = 20251125u;
    const char *env = getenv("SX_TEST_SEED");
    if (env && *env)
        seed = (unsigned)strtoul(env, NULL, 10);
    print_message("test_random_walk_never_goes_back seed=%u\n", seed);
    srand(seed);
    f->opts.settings = (sx_coord_settings){6, 3, 2, 3};
    uint64_t now = 1000;
    open_at(f, now);
    static const char *const ids[4] = {"w0", "w1", "w2", "w3"};
    static const char *const names[3] = {"i0", "i1", "i2"};
    uint64_t inc[4] = {0};
    sx_arena a = {0};
    for (int step = 0; step < 300; step++) {
        sx_err err = {0};
        sx_coord_map *m = NULL;
        int op = rand() % 10;
        int w = rand() % 4;
        switch (op) {
        case 0:
            reg(f, ids[w], now, &inc[w]);
            break;
        case 1:
        case 2:
            for (int k = 0; k < 4; k++)
                if (inc[k] &&
                    sx_coord_heartbeat(f->c, ids[k], inc[k], 0, NULL, 0, now, &m, &err) == SX_OK)
                    sx_coord_map_release(m);
            track(f);
            break;
        case 3:
            now += (uint64_t)(rand() % (int)(LEASE * 3 / 2));
            tick(f, now);
            break;
        case 4: {
            /* The leader grows or shrinks one partition's isr. */
            uint32_t p = (uint32_t)(rand() % 6);
            part_copy pc = part_of(f, p);
            if (pc.leader < 0)
                break;
            bool grow = rand() % 2;
            const int32_t *set = grow ? pc.replicas : &pc.leader;
            size_t n = grow ? pc.nreplicas : 1;
            sx_coord_map *mm = sx_coord_map_acquire(f->c);
            char id[8];
            snprintf(id, sizeof(id), "%s", mm->msg->workers[pc.leader]->id);
            sx_coord_map_release(mm);
            CHECK_OK(change_isr(f, id, p, pc.epoch, pc.isr_version, set, n, &m, &err), &err);
            sx_coord_map_release(m);
            track(f);
            break;
        }
        case 5: {
            Shardex__V1__IndexSpec s =
                spec_of(names[w % 3], "f", STRING_T, rand() % 2, true, (uint32_t)(rand() % 4));
            Shardex__V1__IndexInfo *info = NULL;
            sx_status st = sx_coord_create_index(f->c, &s, &a, &info, &err);
            assert_true(st == SX_OK || st == SX_ALREADY_EXISTS);
            track(f);
            break;
        }
        case 6: {
            sx_status st = sx_coord_drop_index(f->c, names[w % 3], &err);
            assert_true(st == SX_OK || st == SX_NOT_FOUND);
            track(f);
            break;
        }
        case 7: {
            index_copy ic = index_of(f, names[w % 3]);
            uint32_t p = (uint32_t)(rand() % 6);
            part_copy pc = part_of(f, p);
            if (!ic.found || pc.leader < 0)
                break;
            sx_coord_map *mm = sx_coord_map_acquire(f->c);
            char id[8];
            snprintf(id, sizeof(id), "%s", mm->msg->workers[pc.leader]->id);
            sx_coord_map_release(mm);
            Shardex__V1__IndexState is = 0;
            CHECK_OK(sx_coord_report_backfill(f->c, id, ic.id, p, pc.epoch, &is, &err), &err);
            track(f);
            break;
        }
        case 8:
            if (rand() % 4 == 0)
                reopen_at(f, now);
            break;
        default:
            now += 100;
            break;
        }
    }
    sx_arena_free(&a);
}

/* ------------------------------------------------------- lease arithmetic -- */

/* A heartbeat that says what its worker heard; returns its status. */
static sx_status beat(fixture *f, const char *id, uint64_t inc, uint64_t seq, uint64_t unanswered,
                      uint64_t now, sx_err *err)
{
    sx_coord_heard h = {.seq = seq, .unanswered_ms = unanswered};
    sx_coord_map *m = NULL;
    sx_status st =
        sx_coord_heartbeat_heard(f->c, id, inc, &h, version_of(f), NULL, 0, now, &m, err);
    sx_coord_map_release(m);
    track(f);
    return st;
}

static void beat_ok(fixture *f, const char *id, uint64_t inc, uint64_t seq, uint64_t unanswered,
                    uint64_t now)
{
    sx_err err = {0};
    CHECK_OK(beat(f, id, inc, seq, unanswered, now, &err), &err);
}

/* Registers id with a nonce at now; returns its index, its incarnation in *inc. */
static int32_t reg_nonce(fixture *f, const char *id, uint64_t nonce, uint64_t now, uint64_t *inc)
{
    char addr[128];
    snprintf(addr, sizeof(addr), "%s.test:7000", id);
    int32_t index = -2;
    sx_coord_map *m = NULL;
    sx_err err = {0};
    CHECK_OK(sx_coord_register_nonce(f->c, id, addr, nonce, now, &index, inc, &m, &err), &err);
    assert_non_null(m);
    assert_true(m->msg->workers[index]->alive);
    assert_int_equal(m->msg->workers[index]->incarnation, *inc);
    sx_coord_map_release(m);
    track(f);
    return index;
}

/* Issue 11, bug 5: a coordinator stopped past a lease (SIGSTOP) woke up and
 * ticked before it read the heartbeats queued meanwhile: every worker was
 * declared dead at once. A gap between ticks much longer than the tick is
 * the coordinator's own pause: everyone gets a fresh lease, as after a
 * restart, and the leases run again from there. */
static void test_pause_gives_fresh_leases(void **state)
{
    fixture *f = *state;
    const uint64_t T = LEASE / 10;
    f->opts.tick_ms = (uint32_t)T;
    f->opts.settings = (sx_coord_settings){8, 3, 2, 4};
    uint64_t now = 10000, inc[3], seq = 0;
    open_at(f, now);
    for (int k = 0; k < 3; k++)
        reg(f, abc[k], now, &inc[k]);
    grow_isrs(f);
    for (; now < 12000; now += T) {
        if (now % (LEASE / 4) == 0)
            for (int k = 0; k < 3; k++)
                beat_ok(f, abc[k], inc[k], ++seq, LEASE / 4, now);
        tick(f, now);
    }
    uint64_t v = version_of(f);
    part_copy before[8];
    for (uint32_t p = 0; p < 8; p++)
        before[p] = part_of(f, p);

    /* Stopped for three leases; it ticks before reading any heartbeat. */
    now += 3 * LEASE;
    tick(f, now);
    for (int32_t w = 0; w < 3; w++)
        assert_true(worker_alive(f, w));
    assert_int_equal(version_of(f), v);
    /* The heartbeats sent meanwhile say their workers heard nothing for over
     * three leases: the coordinator's own pause is not held against them. */
    for (int k = 0; k < 3; k++)
        beat_ok(f, abc[k], inc[k], ++seq, 3 * LEASE + LEASE / 4, now + 1);

    /* The leases run from the resume: c falls silent and dies a lease and the
     * margin later, not before; a and b carry on. */
    const uint64_t r = now;
    for (now = r + T; now <= r + 2 * LEASE; now += T) {
        if (now % (LEASE / 4) == 0)
            for (int k = 0; k < 2; k++)
                beat_ok(f, abc[k], inc[k], ++seq, LEASE / 4, now);
        tick(f, now);
        if (now <= r + 1 + LEASE + LEASE / 4)
            assert_true(worker_alive(f, 2));
    }
    assert_true(worker_alive(f, 0) && worker_alive(f, 1));
    assert_false(worker_alive(f, 2));
    for (uint32_t p = 0; p < 8; p++) {
        part_copy pc = part_of(f, p);
        if (before[p].leader != 2)
            assert_int_equal(pc.epoch, before[p].epoch); /* nothing moved but c's */
    }

    /* A pause noticed by a heartbeat, before any tick: the same. */
    v = version_of(f);
    now += 5 * LEASE;
    beat_ok(f, "a", inc[0], ++seq, 5 * LEASE, now);
    tick(f, now + 1);
    assert_true(worker_alive(f, 0) && worker_alive(f, 1));
    assert_int_equal(version_of(f), v);

    /* Late ticks are no pause: a gap of twice the tick changes nothing. */
    for (uint64_t end = now + 2 * LEASE; now < end; now += 2 * T) {
        if (now % (LEASE / 4) < 2 * T)
            beat_ok(f, "a", inc[0], ++seq, LEASE / 4, now);
        tick(f, now);
    }
    assert_true(worker_alive(f, 0));
    assert_false(worker_alive(f, 1)); /* b fell silent after the pause */
}

/* Issue 11, bug 2: heartbeat replies lost one way. The worker steps down a
 * lease after the last call it heard answered; the coordinator used to renew
 * on every heartbeat it received, so it kept the worker leading for as long
 * as the loss lasted. The heartbeat now says how long its worker has gone
 * without an answer: past two leases it is refused, and the worker's lease is
 * judged as the worker sees it (a lease after that answered call was sent). */
static void test_unanswered_worker_loses_its_lease(void **state)
{
    fixture *f = *state;
    f->opts.settings = (sx_coord_settings){8, 3, 2, 4};
    open_at(f, 10000);
    uint64_t inc[3];
    for (int k = 0; k < 3; k++)
        reg(f, abc[k], 10000, &inc[k]);
    grow_isrs(f);
    part_copy before[8];
    int c_leads = 0;
    for (uint32_t p = 0; p < 8; p++) {
        before[p] = part_of(f, p);
        c_leads += before[p].leader == 2;
    }
    if (c_leads == 0)
        fail_msg("setup: worker c leads no partition after the isrs grew");

    /* c heard its registration answered at 10000, then nothing: it sends at
     * the worker's pace (a lease/2 timeout, then lease/4). a and b are fine. */
    static const uint64_t sends[4] = {10250, 11000, 11750, 12500};
    uint64_t seq_ab = 0;
    for (int i = 0; i < 3; i++) {
        beat_ok(f, "c", inc[2], (uint64_t)i + 1, sends[i] - 10000, sends[i]);
        beat_ok(f, "a", inc[0], ++seq_ab, LEASE / 4, sends[i]);
        beat_ok(f, "b", inc[1], ++seq_ab, LEASE / 4, sends[i]);
        tick(f, sends[i] + 100);
        /* Each of these answers may still be heard: c stays alive. */
        assert_true(worker_alive(f, 2));
    }
    /* Two leases and a half unanswered: refused; its own lease ended at 11000,
     * so it is dead at the next tick. */
    sx_err err = {0};
    CHECK_FAIL(beat(f, "c", inc[2], 4, sends[3] - 10000, sends[3], &err), &err,
               SX_FAILED_PRECONDITION, "no answer");
    beat_ok(f, "a", inc[0], ++seq_ab, LEASE / 4, sends[3]);
    beat_ok(f, "b", inc[1], ++seq_ab, LEASE / 4, sends[3]);
    tick(f, sends[3] + 1);
    assert_false(worker_alive(f, 2));
    assert_true(worker_alive(f, 0) && worker_alive(f, 1));
    for (uint32_t p = 0; p < 8; p++) {
        part_copy now = part_of(f, p);
        assert_true(now.leader == 0 || now.leader == 1);
        if (before[p].leader == 2)
            assert_true(now.epoch > before[p].epoch);
    }
    /* Its next heartbeats are those of a dead incarnation. */
    CHECK_FAIL(beat(f, "c", inc[2], 5, 3000, 13250, &err), &err, SX_FAILED_PRECONDITION,
               "register again");
}

/* Answers heard again in time keep the lease; a late or duplicated heartbeat
 * (numbered at or below one already heard) decides nothing. */
static void test_late_heartbeat_decides_nothing(void **state)
{
    fixture *f = *state;
    open_at(f, 1000);
    uint64_t inc = 0;
    reg(f, "a", 1000, &inc);
    /* Lost answers, then one heard: unanswered goes back to a heartbeat period. */
    beat_ok(f, "a", inc, 1, 250, 1250);
    beat_ok(f, "a", inc, 2, 1000, 2000);
    beat_ok(f, "a", inc, 3, 1750, 2750);
    beat_ok(f, "a", inc, 4, 250, 3000);
    tick(f, 3000 + LEASE);
    assert_true(worker_alive(f, 0));
    /* A late copy of an old heartbeat that heard nothing for ages: ignored, not refused. */
    beat_ok(f, "a", inc, 2, 10 * LEASE, 3100);
    beat_ok(f, "a", inc, 4, 10 * LEASE, 3100);
    tick(f, 3100);
    assert_true(worker_alive(f, 0));
    /* Nor does it renew: the lease still runs from heartbeat 4 at 3000. */
    beat_ok(f, "a", inc, 4, 0, 4000);
    tick(f, 3000 + LEASE + LEASE / 4);
    assert_true(worker_alive(f, 0));
    tick(f, 3000 + LEASE + LEASE / 4 + 1);
    assert_false(worker_alive(f, 0));
}

/* After a restart, the time the coordinator was down is not held against
 * anyone's unanswered time either. */
static void test_restart_forgives_unanswered_downtime(void **state)
{
    fixture *f = *state;
    open_at(f, 1000);
    uint64_t inc = 0;
    reg(f, "a", 1000, &inc);
    beat_ok(f, "a", inc, 1, 250, 1250);
    reopen_at(f, 1250 + 10 * LEASE);
    /* Nothing answered since 1250, but the coordinator was down. */
    beat_ok(f, "a", inc, 2, 10 * LEASE + 100, 1250 + 10 * LEASE + 100);
    tick(f, 1250 + 10 * LEASE + 100 + LEASE);
    assert_true(worker_alive(f, 0));
    /* From the restart on, it counts. */
    sx_err err = {0};
    CHECK_FAIL(beat(f, "a", inc, 3, 10 * LEASE + 100 + 2 * LEASE + 1,
                    1250 + 10 * LEASE + 100 + 2 * LEASE + 1, &err),
               &err, SX_FAILED_PRECONDITION, "no answer");
    tick(f, 1250 + 10 * LEASE + 100 + 2 * LEASE + 1);
    assert_false(worker_alive(f, 0));
}

/* A simulated worker at the membership thread's pace (a lease/2 timeout, then
 * lease/4 until the next send) against the coordinator, with a network delay
 * and requests and replies lost at random; then, from `cut` on, every reply
 * lost (or, in one round of three, every request). Whatever happens, the
 * coordinator never declares it dead before its own lease (a lease after the
 * send of the last heartbeat it heard answered, answers heard after the death
 * included) has ended plus the margin; and from `cut` on it is dead within
 * three leases. Both daemons' clocks are this one. */
typedef struct simw {
    uint64_t inc, seq;
    uint64_t last_ok; /* send time of the last call it heard answered */
    bool busy;        /* a call is in flight: */
    uint64_t sent;    /* its send time, */
    uint64_t arrive;  /* its arrival at the coordinator, */
    uint64_t answer;  /* its reply's arrival, */
    bool lost_req, lost_reply, refused;
    uint64_t next_send; /* when idle */
    bool stopped;       /* heard a refusal: it would register again */
} simw;

static void sim_step(fixture *f, simw *w, uint64_t now, uint64_t seed, uint64_t *rng,
                     uint32_t loss_req, uint32_t loss_reply, int cut_mode)
{
    const uint64_t timeout = LEASE / 2;
    if (w->stopped)
        return;
    if (!w->busy && now >= w->next_send) {
        w->busy = true;
        w->sent = now;
        w->seq++;
        w->arrive = now + sx_fx_rnd(rng) % 40;
        w->answer = w->arrive + sx_fx_rnd(rng) % 40;
        w->lost_req = cut_mode == 2 || (cut_mode == 0 && sx_fx_rnd(rng) % 100 < loss_req);
        w->lost_reply = cut_mode != 0 || sx_fx_rnd(rng) % 100 < loss_reply;
        w->refused = false;
    }
    if (!w->busy)
        return;
    if (now == w->arrive && !w->lost_req) {
        sx_err err = {0};
        sx_status st = beat(f, "c", w->inc, w->seq, w->sent - w->last_ok, now, &err);
        if (st != SX_OK && st != SX_FAILED_PRECONDITION)
            fail_msg("seed=%" PRIu64 ": heartbeat: %s", seed, err.msg);
        w->refused = st != SX_OK;
    }
    bool heard = now == w->answer && !w->lost_req && !w->lost_reply && now < w->sent + timeout;
    if (heard || now >= w->sent + timeout) {
        if (heard && w->refused)
            w->stopped = true;
        else if (heard)
            w->last_ok = w->sent;
        w->busy = false;
        w->next_send = now + LEASE / 4;
    }
}

static void test_lease_never_ends_before_the_workers(void **state)
{
    fixture *f = *state;
    f->opts.settings = (sx_coord_settings){8, 3, 2, 4};
    f->opts.tick_ms = LEASE / 10;
    const uint64_t margin = LEASE / 4;
    uint64_t seed = sx_fx_seed(), rng = seed;
    uint64_t now = 10000, inc[2], seq_ab = 0;
    open_at(f, now);
    reg(f, "a", now, &inc[0]);
    reg(f, "b", now, &inc[1]);
    for (int round = 0; round < 12; round++) {
        simw w = {.last_ok = now, .next_send = now + LEASE / 4};
        int32_t ci = reg(f, "c", now, &w.inc);
        uint32_t loss_req = (uint32_t)(sx_fx_rnd(&rng) % 30);
        uint32_t loss_reply = (uint32_t)(sx_fx_rnd(&rng) % 60);
        const uint64_t cut = now + 2000 + sx_fx_rnd(&rng) % 4000;
        uint64_t died = 0;
        for (; now < cut + 4 * LEASE || w.busy; now++) {
            if (now % (LEASE / 4) == 0) {
                beat_ok(f, "a", inc[0], ++seq_ab, LEASE / 4, now);
                beat_ok(f, "b", inc[1], ++seq_ab, LEASE / 4, now);
            }
            sim_step(f, &w, now, seed, &rng, loss_req, loss_reply,
                     now < cut        ? 0
                     : round % 3 == 2 ? 2
                                      : 1);
            if (now % (LEASE / 10) == 0) {
                tick(f, now);
                if (!died && !worker_alive(f, ci))
                    died = now;
            }
        }
        if (!died)
            fail_msg("seed=%" PRIu64 " round %d: never declared dead", seed, round);
        if (died <= w.last_ok + LEASE + margin)
            fail_msg("seed=%" PRIu64 " round %d: declared dead at %" PRIu64
                     ", its own lease ran until %" PRIu64 " (margin %" PRIu64 ")",
                     seed, round, died, w.last_ok + LEASE, margin);
        if (died > cut + 3 * LEASE)
            fail_msg("seed=%" PRIu64 " round %d: %s from %" PRIu64 ", declared dead at %" PRIu64,
                     seed, round, round % 3 == 2 ? "silent" : "every reply lost", cut, died);
    }
}

/* Issue 11, bug 2 (its second half): a lost RegisterWorker answer made the
 * worker register again every ~2 s, each time a new incarnation, new epochs
 * and its term partitions wiped. A retry from the same process (the same
 * nonce) before any heartbeat of the incarnation it made gets that same
 * incarnation back and changes nothing. */
/* Workers held by worker w in the current map: replicas, leaderships, terms. */
static uint32_t held_by(fixture *f, int32_t w)
{
    sx_coord_map *m = sx_coord_map_acquire(f->c);
    uint32_t n = 0;
    for (size_t p = 0; p < m->msg->n_partitions; p++) {
        const lpart *lp = m->msg->partitions[p];
        n += has(lp->replicas, lp->n_replicas, w) + (lp->leader == w);
    }
    for (size_t t = 0; t < m->msg->n_terms; t++)
        n += m->msg->terms[t]->owner == w;
    sx_coord_map_release(m);
    return n;
}

/* A drain moves everything off a worker through add-then-drop moves (as the
 * isr grows), is stored, and is undone by cancel; unknown ids are NOT_FOUND. */
static void test_drain_worker(void **state)
{
    fixture *f = *state;
    open_at(f, 1000);
    reg(f, "a", 1000, NULL);
    reg(f, "b", 1000, NULL);
    reg(f, "c", 1000, NULL);
    reg(f, "d", 1000, NULL);
    create_ok(f, "g", false, true, 0);
    grow_isrs(f);
    sx_arena a = {0};
    sx_err err = {0};
    Shardex__V1__WorkerStatus *ws = NULL;
    CHECK_FAIL(sx_coord_drain(f->c, "nobody", false, 1000, &a, &ws, &err), &err, SX_NOT_FOUND,
               "nobody");
    CHECK_FAIL(sx_coord_drain(f->c, "", false, 1000, &a, &ws, &err), &err, SX_INVALID_ARGUMENT,
               "worker_id");
    CHECK_OK(sx_coord_drain(f->c, "d", false, 1000, &a, &ws, &err), &err);
    track(f);
    assert_true(ws->draining);
    assert_int_equal(ws->leaders, 0); /* leaderships leave at once */
    assert_int_equal(ws->term_partitions, 0);
    for (int i = 0; i < 16 && held_by(f, 3); i++)
        grow_isrs(f); /* each round of catch-up finishes moves and starts others */
    assert_int_equal(held_by(f, 3), 0);
    CHECK_OK(sx_coord_drain(f->c, "d", false, 1000, &a, &ws, &err), &err);
    assert_true(ws->drained);
    Shardex__V1__ClusterStatusResponse st = SHARDEX__V1__CLUSTER_STATUS_RESPONSE__INIT;
    sx_coord_status(f->c, 1000, &a, &st);
    assert_true(st.workers[3]->drained);
    assert_int_equal(st.n_moves, 0);
    assert_int_equal(st.max_moves, SX_COORD_DEFAULT_MAX_MOVES);
    reopen_at(f, 2000); /* stored */
    CHECK_OK(sx_coord_drain(f->c, "d", true, 2000, &a, &ws, &err), &err);
    track(f);
    assert_false(ws->draining);
    for (int i = 0; i < 16; i++)
        grow_isrs(f);
    assert_true(held_by(f, 3) > 0); /* balancing gave it its share back */
    sx_arena_free(&a);
}

/* Remove: refused for a live worker and for the only holder (naming the
 * partitions) unless forced; the removed worker is in no replica set, and
 * registering again it starts empty. */
static void test_remove_worker(void **state)
{
    fixture *f = *state;
    f->opts.settings = (sx_coord_settings){4, 1, 1, 4};
    open_at(f, 1000);
    uint64_t inc[2];
    reg(f, "a", 1000, &inc[0]);
    reg(f, "b", 1000, &inc[1]);
    grow_isrs(f);
    for (int i = 0; i < 8; i++)
        grow_isrs(f); /* R=1: moves give b its two partitions */
    sx_arena a = {0};
    sx_err err = {0};
    uint32_t *lost = NULL;
    size_t nlost = 0;
    CHECK_FAIL(sx_coord_remove(f->c, "b", false, &a, &lost, &nlost, &err), &err,
               SX_FAILED_PRECONDITION, "\"b\" is alive");
    CHECK_FAIL(sx_coord_remove(f->c, "zz", false, &a, &lost, &nlost, &err), &err, SX_NOT_FOUND,
               "zz");
    CHECK_FAIL(sx_coord_remove(f->c, "", false, &a, &lost, &nlost, &err), &err, SX_INVALID_ARGUMENT,
               "worker_id");
    hb(f, "a", inc[0], 1000 + LEASE, 0);
    tick(f, 1000 + 2 * LEASE); /* b dies */
    assert_false(worker_alive(f, 1));
    assert_true(held_by(f, 1) > 0); /* R=1: its partitions wait for it */
    CHECK_FAIL(sx_coord_remove(f->c, "b", false, &a, &lost, &nlost, &err), &err,
               SX_FAILED_PRECONDITION, "only replica");
    CHECK_OK(sx_coord_remove(f->c, "b", true, &a, &lost, &nlost, &err), &err);
    track(f);
    assert_int_equal(nlost, 2);
    assert_int_equal(held_by(f, 1), 0);
    for (uint32_t p = 0; p < 4; p++)
        assert_int_equal(part_of(f, p).leader, 0);
    CHECK_OK(sx_coord_remove(f->c, "b", false, &a, &lost, &nlost, &err), &err); /* again: OK */
    Shardex__V1__WorkerStatus *ws = NULL;
    CHECK_FAIL(sx_coord_drain(f->c, "b", false, 3000, &a, &ws, &err), &err, SX_FAILED_PRECONDITION,
               "removed");
    reopen_at(f, 4000);
    Shardex__V1__ClusterStatusResponse st = SHARDEX__V1__CLUSTER_STATUS_RESPONSE__INIT;
    sx_coord_status(f->c, 4000, &a, &st);
    assert_true(st.workers[1]->removed);
    assert_int_equal(reg(f, "b", 4000, NULL), 1); /* a new, empty worker, same index */
    assert_false(worker_alive(f, 1) == false);
    sx_arena_free(&a);
}

static void test_register_retry_is_idempotent(void **state)
{
    fixture *f = *state;
    f->opts.settings = (sx_coord_settings){8, 3, 2, 4};
    open_at(f, 1000);
    uint64_t inc[3], again = 0;
    for (int k = 0; k < 3; k++)
        assert_int_equal(reg_nonce(f, abc[k], 100 + (uint64_t)k, 1000, &inc[k]), k);
    grow_isrs(f);
    create_ok(f, "g", false, true, 6);
    /* c registers again (a new process: another nonce), so that it leads some
     * partitions in a fresh incarnation; then its answer is lost. */
    uint64_t v0 = version_of(f);
    assert_int_equal(reg_nonce(f, "c", 7, 1100, &inc[2]), 2);
    assert_true(version_of(f) > v0);
    grow_isrs(f);
    uint64_t v = version_of(f);
    part_copy before[8];
    for (uint32_t p = 0; p < 8; p++)
        before[p] = part_of(f, p);
    terms_copy tb, ta;
    terms_of(f, &tb);

    /* The retries, each within the lease the previous one gave. */
    for (uint64_t t = 1700; t <= 4500; t += 700) {
        assert_int_equal(reg_nonce(f, "c", 7, t, &again), 2);
        assert_int_equal(again, inc[2]);
        beat_ok(f, "a", inc[0], t, LEASE / 4, t);
        beat_ok(f, "b", inc[1], t, LEASE / 4, t);
        tick(f, t + 100);
        assert_true(worker_alive(f, 2));
    }
    assert_int_equal(version_of(f), v);
    for (uint32_t p = 0; p < 8; p++) {
        part_copy now = part_of(f, p);
        assert_int_equal(now.epoch, before[p].epoch);
        assert_int_equal(now.isr_version, before[p].isr_version);
        assert_int_equal(now.leader, before[p].leader);
    }
    terms_of(f, &ta);
    assert_int_equal(ta.n, tb.n);
    for (size_t t = 0; t < ta.n; t++) {
        assert_int_equal(ta.epoch[t], tb.epoch[t]);
        assert_int_equal(ta.owner[t], tb.owner[t]);
    }

    /* Once the incarnation heartbeated, its process heard it: the same nonce
     * registering again is a new registration, as are another nonce, no
     * nonce, another address, and a dead incarnation. */
    beat_ok(f, "c", inc[2], 1, LEASE / 4, 4600);
    uint64_t prev = inc[2];
    assert_int_equal(reg_nonce(f, "c", 7, 4700, &again), 2);
    assert_true(again > prev);
    assert_true(version_of(f) > v);
    prev = again;
    assert_int_equal(reg_nonce(f, "c", 8, 4710, &again), 2);
    assert_true(again > prev);
    prev = again;
    assert_int_equal(reg_nonce(f, "c", 0, 4720, &again), 2);
    assert_true(again > prev);
    prev = again;
    assert_int_equal(reg_nonce(f, "c", 0, 4730, &again), 2);
    assert_true(again > prev);
    prev = again;
    int32_t index = -1;
    sx_coord_map *m = NULL;
    sx_err err = {0};
    assert_int_equal(reg_nonce(f, "c", 9, 4740, &prev), 2);
    CHECK_OK(
        sx_coord_register_nonce(f->c, "c", "moved.test:7001", 9, 4750, &index, &again, &m, &err),
        &err);
    sx_coord_map_release(m);
    track(f);
    assert_true(again > prev);
    prev = again;
    beat_ok(f, "a", inc[0], 10000, LEASE / 4, 4750 + LEASE);
    beat_ok(f, "b", inc[1], 10000, LEASE / 4, 4750 + LEASE);
    tick(f, 4750 + LEASE + LEASE / 4 + 1);
    assert_false(worker_alive(f, 2));
    m = NULL;
    CHECK_OK(sx_coord_register_nonce(f->c, "c", "moved.test:7001", 9, 4750 + 2 * LEASE, &index,
                                     &again, &m, &err),
             &err);
    sx_coord_map_release(m);
    track(f);
    assert_true(again > prev);
    assert_true(worker_alive(f, 2));
}

/* BUG (coord.c load_locked, line ~246): reopening a store whose partitions have
 * no replicas yet (no worker ever registered) calls memcpy(lp->replicas, NULL,
 * 0), undefined behaviour that the SX_SANITIZE build (UBSan, halt on error)
 * aborts on. Passes in a normal build; kept last because the abort ends the run. */
static void test_reopen_before_any_worker(void **state)
{
    fixture *f = *state;
    open_at(f, 1000);
    uint64_t v = version_of(f);
    size_t len1 = 0, len2 = 0;
    uint8_t *before = pack_map(f, &len1);
    reopen_at(f, 2000);
    assert_int_equal(version_of(f), reopened(f, v));
    uint8_t *after = pack_map(f, &len2);
    assert_int_equal(len1, len2);
    assert_memory_equal(before, after, len1);
    free(before);
    free(after);
    assert_int_equal(reg(f, "a", 2000, NULL), 0);
}

int main(void)
{
    if (!getenv("SHARDEX_LOG_LEVEL"))
        sx_log_set_level(SX_LOG_OFF);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fresh_open, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_rejects_invalid_settings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen_keeps_settings_and_map, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen_refuses_index_without_spec, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen_with_other_lease_publishes_new_version, setup,
                                        teardown), /* fails: BUG, see the test */
        cmocka_unit_test_setup_teardown(test_reopen_refuses_changed_settings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_register_workers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_heartbeat_sends_map_only_when_changed, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_lease_expiry_moves_leadership, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lease_last_isr_member_dies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_gives_fresh_leases, setup, teardown),
        cmocka_unit_test_setup_teardown(test_change_isr, setup, teardown),
        cmocka_unit_test_setup_teardown(test_change_isr_needs_verified_processes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lost_store_elects_the_eligible, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_intact_stays_eligible, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lost_store_without_eligible_stays_unavailable, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_change_isr_keeps_the_elr, setup, teardown),
        cmocka_unit_test_setup_teardown(test_index_catalog, setup, teardown),
        cmocka_unit_test_setup_teardown(test_index_invalid_specs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_index_range_partitioning, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backfill, setup, teardown),
        cmocka_unit_test_setup_teardown(test_index_split, setup, teardown),
        cmocka_unit_test_setup_teardown(test_index_split_load, setup, teardown),
        cmocka_unit_test_setup_teardown(test_index_salt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hot_value_detection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_status, setup, teardown),
        cmocka_unit_test_setup_teardown(test_random_walk_never_goes_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pause_gives_fresh_leases, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unanswered_worker_loses_its_lease, setup, teardown),
        cmocka_unit_test_setup_teardown(test_late_heartbeat_decides_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_forgives_unanswered_downtime, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lease_never_ends_before_the_workers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_register_retry_is_idempotent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drain_worker, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remove_worker, setup, teardown),
        /* aborts under SX_SANITIZE: BUG, see the test */
        cmocka_unit_test_setup_teardown(test_reopen_before_any_worker, setup, teardown),
    };
    enum { NTESTS = sizeof(tests) / sizeof(tests[0]) };
    int failed = cmocka_run_group_tests_name("leveldb", tests, NULL, NULL);
    if (access("/usr/bin/etcd", X_OK) != 0) {
        fprintf(stderr, "no /usr/bin/etcd: the etcd group is left out\n");
        return failed;
    }
    /* The same tests on etcd, named so. */
    struct CMUnitTest on_etcd[NTESTS];
    char names[NTESTS][96];
    for (size_t i = 0; i < NTESTS; i++) {
        on_etcd[i] = tests[i];
        snprintf(names[i], sizeof(names[i]), "%s/etcd", tests[i].name);
        on_etcd[i].name = names[i];
        on_etcd[i].setup_func = setup_etcd;
    }
    failed += cmocka_run_group_tests_name("etcd", on_etcd, group_setup_etcd, group_teardown_etcd);
    return failed;
}
