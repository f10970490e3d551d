/* test_coord_failover.c: three coordinators on a three-member etcd cluster
 * (issue 13), against real processes, under a steady write load: 3 writer
 * threads, each a Put of a fresh id every PACE_MS through libshardex with a
 * deadline, every outcome recorded (issue and answer times, status).
 *
 *   fencing       the leader is paused (SIGSTOP) past its etcd lease; a
 *                 follower takes over and writes go on; resumed, the old one
 *                 stops leading without writing anything (it steps down and
 *                 follows, or exits 1 and, started again, follows). etcd's
 *                 history of /shardex/t/, read with a watch from revision 1,
 *                 shows exactly one leader at a time: the leader key only
 *                 created when absent, every put of the map made while a
 *                 leader key existed with the coordinator_epoch of that
 *                 leader key, and map versions never going back.
 *   kill9         three rounds of kill -9 of the leader, a new one waited
 *                 for, the killed one started again (it follows); the
 *                 longest stretch with no acknowledged write is printed per
 *                 round (never asserted: tests assert no time).
 *   quorum        one etcd member killed: a coordinator leads on, and a
 *                 worker killed then is declared dead; a second member
 *                 killed (no quorum): within the metadata lease no
 *                 coordinator answers as the leader, followers keep running
 *                 (the test restarts an exited coordinator, as a supervisor
 *                 would); writes go on while the workers' leases last, then
 *                 fail, each with an error; the members back: a coordinator
 *                 leads again, every worker heartbeats, writes succeed.
 *
 * After each case every acknowledged document reads back, the replicas agree
 * (checker.h) and `shardex verify` is clean. Which coordinators exited, and
 * when, is checked last (check_exits), so that the data checks run first.
 */
#include "checker.h"
#include "clock.h"
#include "fixture.h"
#include "harness.h"
#include "mem.h"
#include "shardex.h"
#include "shardex/internal/v1/coordinator.pb-c.h"

#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>

#define NWORKERS 3
#define NCOORDS 3
#define NWRITERS 3
#define PARTITIONS 4
#define WORKER_LEASE_MS 1500
#define META_LEASE_MS 2000 /* --metadata-lease 2s */
#define PACE_MS 20         /* between one writer's writes */
#define PUT_MS 5000        /* a write's deadline */
#define WAIT_MS 30000      /* anything that should happen */
#define KILL_ROUNDS 3
#define FAILS_KEPT 16
#define CLUSTER "t"

/* ================================================================ load === */

typedef struct wrec {
    uint64_t issue_ms, done_ms;
    sx_status st;
} wrec;

typedef struct writer {
    struct load *L;
    uint32_t no;
    pthread_t th;
    wrec *r; /* r[k]: the write of id (no, k); read by the test after the join */
    size_t n, cap;
    size_t nfail, nsilent; /* failed; failed with no message */
    char fails[FAILS_KEPT][300];
} writer;

typedef struct load {
    uint64_t t0_ms; /* when it started: failures are printed relative to it */
    sx_client *client;
    atomic_bool stop;
    _Atomic uint64_t acked, failed, last_ack_ms;
    writer w[NWRITERS];
} load;

static void doc_id(char *buf, size_t cap, uint32_t writer_no, size_t k)
{
    snprintf(buf, cap, "fo%u-%07zu", writer_no, k);
}

static void *writer_main(void *arg)
{
    writer *w = arg;
    load *L = w->L;
    for (size_t k = 0; !atomic_load(&L->stop); k++) {
        char id[32];
        doc_id(id, sizeof(id), w->no, k);
        Shardex__V1__Document *d = sx_doc_new(id);
        sx_doc_add_int(d, "k", (int64_t)k);
        wrec r = {.issue_ms = sx_clock_now_ms()};
        sx_err err = {0};
        r.st = sx_client_put(L->client, &d, 1, NULL, &err);
        r.done_ms = sx_clock_now_ms();
        sx_doc_free(d);
        if (r.st == SX_OK) {
            atomic_fetch_add(&L->acked, 1);
            atomic_store(&L->last_ack_ms, r.done_ms);
        } else {
            atomic_fetch_add(&L->failed, 1);
            w->nsilent += err.msg[0] == '\0';
            if (w->nfail < FAILS_KEPT)
                snprintf(w->fails[w->nfail], sizeof(w->fails[0]),
                         "%s at %" PRIu64 " ms of the load: %s %s", id, r.done_ms - L->t0_ms,
                         sx_status_name(r.st), err.msg);
            w->nfail++;
        }
        if (w->n == w->cap) {
            w->cap = w->cap ? 2 * w->cap : 1024;
            w->r = sx_realloc(w->r, w->cap * sizeof(*w->r));
        }
        w->r[w->n++] = r;
        sx_clock_sleep_ms(PACE_MS);
    }
    return NULL;
}

/* Writers through the first nservers workers of c (libshardex moves a call
 * to the next one when a worker refuses the connection). */
static void load_start(load *L, sx_cluster *c, uint32_t nservers)
{
    const char *servers[NWORKERS];
    for (uint32_t i = 0; i < nservers; i++)
        servers[i] = c->worker_addr[i];
    sx_client_opts o = {.servers = servers, .nservers = nservers, .timeout_ms = PUT_MS};
    assert_int_equal(sx_client_open(&o, &L->client, NULL), SX_OK);
    L->t0_ms = sx_clock_now_ms();
    for (uint32_t i = 0; i < NWRITERS; i++) {
        L->w[i].L = L;
        L->w[i].no = i;
        pthread_create(&L->w[i].th, NULL, writer_main, &L->w[i]);
    }
}

static void load_stop(load *L)
{
    if (!L->client)
        return;
    atomic_store(&L->stop, true);
    for (uint32_t i = 0; i < NWRITERS; i++)
        pthread_join(L->w[i].th, NULL);
    sx_client_close(L->client);
    L->client = NULL;
}

static void load_free(load *L)
{
    load_stop(L);
    for (uint32_t i = 0; i < NWRITERS; i++)
        free(L->w[i].r);
}

typedef struct acks_after {
    load *L;
    uint64_t base, want;
} acks_after;

/* `want` more writes acknowledged than at `base`. */
static bool acks_grew(void *arg)
{
    acks_after *a = arg;
    return atomic_load(&a->L->acked) >= a->base + a->want;
}

static int cmp_u64(const void *x, const void *y)
{
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return a < b ? -1 : a > b;
}

/* The longest interval in [from, to] with no write acknowledged (the ends
 * count as edges when no acknowledgement falls there). After load_stop. */
static uint64_t longest_gap(const load *L, uint64_t from, uint64_t to)
{
    size_t n = 0;
    for (uint32_t i = 0; i < NWRITERS; i++)
        n += L->w[i].n;
    uint64_t *t = sx_calloc(n + 2, sizeof(*t));
    size_t k = 0;
    t[k++] = from;
    t[k++] = to;
    for (uint32_t i = 0; i < NWRITERS; i++)
        for (size_t j = 0; j < L->w[i].n; j++)
            if (L->w[i].r[j].st == SX_OK && L->w[i].r[j].done_ms > from &&
                L->w[i].r[j].done_ms < to)
                t[k++] = L->w[i].r[j].done_ms;
    qsort(t, k, sizeof(*t), cmp_u64);
    uint64_t best = 0;
    for (size_t j = 1; j < k; j++)
        if (t[j] - t[j - 1] > best)
            best = t[j] - t[j - 1];
    free(t);
    return best;
}

/* Failed writes by status, printed; fails the test if one came without an
 * error message (an error nobody could act on). */
static void report_failures(sx_cluster *c, const load *L, const char *when)
{
    size_t failed = 0, silent = 0, acked = 0, by[64] = {0};
    for (uint32_t i = 0; i < NWRITERS; i++) {
        failed += L->w[i].nfail;
        silent += L->w[i].nsilent;
        for (size_t j = 0; j < L->w[i].n; j++) {
            acked += L->w[i].r[j].st == SX_OK;
            if (L->w[i].r[j].st != SX_OK && (unsigned)L->w[i].r[j].st < 64)
                by[L->w[i].r[j].st]++;
        }
    }
    fprintf(stderr, "%s: %zu writes acknowledged, %zu failed", when, acked, failed);
    for (unsigned s = 0; s < 64; s++)
        if (by[s])
            fprintf(stderr, ", %s %zu", sx_status_name((sx_status)s), by[s]);
    fprintf(stderr, "\n");
    for (uint32_t i = 0; i < NWRITERS; i++)
        for (size_t j = 0; j < L->w[i].nfail && j < 3; j++)
            fprintf(stderr, "  failed: %s\n", L->w[i].fails[j]);
    if (silent)
        SX_FX_FAIL(c, "%zu failed writes came without an error message", silent);
}

/* ============================================================= fixture === */

/* A coordinator's exit, as the test saw it (supervise). */
typedef struct coord_exit {
    uint32_t k;
    pid_t pid;
    int status;
    bool was_leader; /* the leader key named it when it was last found */
    uint64_t at_ms;
} coord_exit;

typedef struct fx {
    sx_etcdm_set ec;
    sx_cluster *c;
    load L;
    bool restart_exited; /* supervise restarts an exited coordinator */
    int leader;          /* the last one found, -1: none */
    coord_exit exits[64];
    size_t nexits;
    uint64_t last_restart_ms[NCOORDS];
} fx;

static int setup(void **state)
{
    *state = sx_calloc(1, sizeof(fx));
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    load_free(&f->L);
    if (f->c) {
        sx_cluster_kill_all(f->c);
        sx_cluster_stop(f->c);
        free(f->c);
    }
    sx_etcdm_destroy(&f->ec);
    free(f);
    return 0;
}

static void dump(fx *f)
{
    sx_etcdm_dump_logs(&f->ec, 8);
}

#define FAIL(f, ...)                                                                               \
    do {                                                                                           \
        dump(f);                                                                                   \
        SX_FX_FAIL((f)->c, __VA_ARGS__);                                                           \
    } while (0)

/* etcd (3 members), 3 coordinators, 3 workers, settled (every ISR whole). */
static void start(fx *f)
{
    sx_fx_etcd_cluster_start(&f->ec, 3, "failover-etcd");
    f->c = sx_calloc(1, sizeof(*f->c));
    sx_cluster_opts o = {.workers = NWORKERS,
                         .partitions = PARTITIONS,
                         .replication = 3,
                         .min_isr = 2,
                         .lease_ms = WORKER_LEASE_MS,
                         .etcd_endpoints = f->ec.endpoints,
                         .coordinators = NCOORDS,
                         .etcd_cluster = CLUSTER,
                         .metadata_lease_s = META_LEASE_MS / 1000};
    if (!sx_cluster_start(f->c, &o))
        FAIL(f, "the cluster did not start");
    f->leader = sx_cluster_find_leader(f->c, WAIT_MS);
    SX_FX_CHECK_REPLICAS(f->c, WAIT_MS);
    fprintf(stderr, "cluster up: etcd %s, coordinators %s, coordinator %d leads\n", f->ec.endpoints,
            f->c->coords_list, f->leader);
}

/* Notes every coordinator that exited since the last call and, with
 * restart_exited, starts it again at most once a second (a supervisor with
 * a back-off): from then on it must follow. */
static void supervise(fx *f)
{
    sx_cluster *c = f->c;
    for (uint32_t k = 0; k < c->ncoords; k++) {
        if (c->coords_pid[k] <= 0) {
            uint64_t now = sx_clock_now_ms();
            if (f->restart_exited && now >= f->last_restart_ms[k] + 1000) {
                sx_cluster_start_coord(c, k);
                f->last_restart_ms[k] = now;
            }
            continue;
        }
        int st = sx_h_wait_exit(c->coords_pid[k], 0);
        if (st == -1)
            continue;
        if (f->nexits < sizeof(f->exits) / sizeof(f->exits[0]))
            f->exits[f->nexits++] =
                (coord_exit){k, c->coords_pid[k], st, f->leader == (int)k, sx_clock_now_ms()};
        c->coords_pid[k] = 0;
        fprintf(stderr, "coordinator %u exited (%s %d)%s\n", k, WIFEXITED(st) ? "status" : "signal",
                WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st),
                f->leader == (int)k ? ", it was the leader" : "");
    }
}

/* The status supervise saw process pid exit with, -1: none. */
static int exit_status_of(fx *f, pid_t pid)
{
    for (size_t i = 0; i < f->nexits; i++)
        if (f->exits[i].pid == pid)
            return f->exits[i].status;
    return -1;
}

/* Polls cond (and supervises) every 50 ms for up to timeout_ms. */
static bool until(fx *f, bool (*cond)(fx *f, void *arg), void *arg, uint64_t timeout_ms)
{
    uint64_t end = sx_clock_now_ms() + timeout_ms;
    for (;;) {
        supervise(f);
        if (cond(f, arg))
            return true;
        if (sx_clock_now_ms() >= end)
            return false;
        sx_clock_sleep_ms(50);
    }
}

/* A coordinator other than *(int *)arg leads (by etcd's record) and answers. */
static bool other_leads(fx *f, void *arg)
{
    int not_k = *(int *)arg;
    int k = sx_cluster_find_leader(f->c, 0);
    if (k >= 0)
        f->leader = k;
    return k >= 0 && k != not_k;
}

static bool some_leads(fx *f, void *arg)
{
    (void)arg;
    int k = sx_cluster_find_leader(f->c, 0);
    if (k >= 0)
        f->leader = k;
    return k >= 0;
}

/* Coordinator *(uint32_t *)arg follows (sx_cluster_coord_follows). */
static bool follows(fx *f, void *arg)
{
    return sx_cluster_coord_follows(f->c, *(uint32_t *)arg);
}

/* Coordinator *(uint32_t *)arg follows, or has exited (supervise saw it). */
static bool follows_or_exited(fx *f, void *arg)
{
    return f->c->coords_pid[*(uint32_t *)arg] <= 0 || follows(f, arg);
}

typedef struct worker_state {
    uint32_t i;
    bool alive;
} worker_state;

/* The leader's map says worker i is alive (or dead, as asked). */
static bool worker_is(fx *f, void *arg)
{
    worker_state *w = arg;
    sx_cluster *c = f->c;
    if (!some_leads(f, NULL))
        return false;
    Shardex__Internal__V1__ClusterMap *m = sx_cluster_map(c);
    if (!m)
        return false;
    int32_t x = sx_cluster_index_of(m, c, w->i);
    bool ok = x >= 0 && m->workers[x]->alive == w->alive;
    sx_rpc_free(&m->base);
    return ok;
}

static void wait_acks(fx *f, uint64_t want, const char *what)
{
    acks_after a = {&f->L, atomic_load(&f->L.acked), want};
    if (!sx_h_wait_for(acks_grew, &a, WAIT_MS))
        FAIL(f, "writes did not go on (%s): %" PRIu64 " acknowledged in all", what,
             atomic_load(&f->L.acked));
}

/* Every acknowledged document reads back (Get through libshardex, from every
 * live worker in turn), the replicas agree and `shardex verify` is clean. */
static void check_data(fx *f)
{
    sx_cluster *c = f->c;
    const char *servers[NWORKERS];
    size_t ns = 0;
    for (uint32_t i = 0; i < c->nworkers; i++)
        if (c->worker_pid[i] > 0)
            servers[ns++] = c->worker_addr[i];
    sx_client_opts o = {.servers = servers, .nservers = ns, .timeout_ms = 10000};
    sx_client *cl = NULL;
    assert_int_equal(sx_client_open(&o, &cl, NULL), SX_OK);
    size_t checked = 0;
    for (uint32_t i = 0; i < NWRITERS; i++) {
        for (size_t k = 0; k < f->L.w[i].n; k++) {
            if (f->L.w[i].r[k].st != SX_OK)
                continue;
            char id[32];
            doc_id(id, sizeof(id), i, k);
            Shardex__V1__GetResponse *g = NULL;
            sx_err err = {0};
            sx_status st = sx_client_get(cl, id, NULL, 0, &g, &err);
            bool found = st == SX_OK && g->found;
            sx_client_free(g);
            if (!found) {
                sx_client_close(cl);
                FAIL(f, "acknowledged %s does not read back: %s %s", id, sx_status_name(st),
                     err.msg);
            }
            checked++;
        }
    }
    sx_client_close(cl);
    fprintf(stderr, "%zu acknowledged documents read back\n", checked);
    SX_FX_CHECK_REPLICAS(c, WAIT_MS);
    char why[512] = "";
    if (!sx_check_verify(c, 120000, why, sizeof(why)))
        FAIL(f, "verify: %s", why);
}

/* ============================================================ history === */

/* What etcd recorded under /shardex/t/, in revision order. */
typedef struct hev {
    int64_t revision, create_revision, version;
    bool deleted, leader, map, marker;
    char value[64]; /* the leader key's: an address */
    uint64_t map_version;
    uint64_t hash;  /* of the map's bytes (FNV-1a) */
    bool has_epoch; /* the map has coordinator_epoch (the lead's change (c)) */
    uint64_t epoch;
} hev;

typedef struct history {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    hev *ev;
    size_t n, cap;
    bool marker, ended;
    char leader_key[128], map_key[128], marker_key[128];
} history;

/* The map's coordinator_epoch, looked up by name in the generated code (the
 * test was written before the field landed; false if it is missing). */
static bool map_epoch(const Shardex__Internal__V1__ClusterMap *m, uint64_t *epoch)
{
    const ProtobufCFieldDescriptor *fd = protobuf_c_message_descriptor_get_field_by_name(
        &shardex__internal__v1__cluster_map__descriptor, "coordinator_epoch");
    if (!fd || fd->type != PROTOBUF_C_TYPE_UINT64 || fd->label == PROTOBUF_C_LABEL_REPEATED)
        return false;
    memcpy(epoch, (const char *)m + fd->offset, sizeof(*epoch));
    return true;
}

static void on_hist_event(void *arg, const sx_etcd_event *e)
{
    history *h = arg;
    hev v = {.revision = e->revision,
             .create_revision = e->kv.create_revision,
             .version = e->kv.version,
             .deleted = e->deleted};
    v.leader = strcmp(e->kv.key, h->leader_key) == 0;
    v.map = strcmp(e->kv.key, h->map_key) == 0;
    v.marker = strcmp(e->kv.key, h->marker_key) == 0;
    if (v.leader && !e->deleted)
        snprintf(v.value, sizeof(v.value), "%.*s", (int)e->kv.value_len, (const char *)e->kv.value);
    if (v.map && !e->deleted) {
        v.hash = UINT64_C(0xcbf29ce484222325);
        for (size_t i = 0; i < e->kv.value_len; i++)
            v.hash = (v.hash ^ e->kv.value[i]) * UINT64_C(0x100000001b3);
        Shardex__Internal__V1__ClusterMap *m =
            shardex__internal__v1__cluster_map__unpack(NULL, e->kv.value_len, e->kv.value);
        if (m) {
            v.map_version = m->version;
            v.has_epoch = map_epoch(m, &v.epoch);
            protobuf_c_message_free_unpacked(&m->base, NULL);
        } else {
            v.map_version = UINT64_MAX; /* does not decode: fails the check */
        }
    }
    pthread_mutex_lock(&h->mu);
    if (h->n == h->cap) {
        h->cap = h->cap ? 2 * h->cap : 256;
        h->ev = sx_realloc(h->ev, h->cap * sizeof(*h->ev));
    }
    h->ev[h->n++] = v;
    h->marker |= v.marker;
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
}

static void on_hist_end(void *arg, sx_status st, const sx_err *err)
{
    history *h = arg;
    if (st != SX_CANCELLED)
        fprintf(stderr, "history watch ended: %s %s\n", sx_status_name(st), err ? err->msg : "");
    pthread_mutex_lock(&h->mu);
    h->ended = true;
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
}

/* Reads the whole history of /shardex/t/ into h: a watch from revision 1
 * until a marker key, put now, comes through. Fails the test if it does not. */
static void read_history(fx *f, history *h)
{
    snprintf(h->leader_key, sizeof(h->leader_key), "/shardex/%s/leader", CLUSTER);
    snprintf(h->map_key, sizeof(h->map_key), "/shardex/%s/map", CLUSTER);
    snprintf(h->marker_key, sizeof(h->marker_key), "/shardex/%s/zz-test-history-end", CLUSTER);
    char prefix[64];
    snprintf(prefix, sizeof(prefix), "/shardex/%s/", CLUSTER);
    sx_etcd_watch_opts wo = {.key = prefix,
                             .prefix = true,
                             .start_revision = 1,
                             .on_event = on_hist_event,
                             .on_end = on_hist_end,
                             .arg = h};
    sx_etcd_watch *w = NULL;
    sx_err err = {0};
    if (sx_etcd_watch_start(f->ec.etcd, &wo, &w, NULL, &err) != SX_OK)
        FAIL(f, "history watch: %s", err.msg);
    if (sx_etcd_put(f->ec.etcd, h->marker_key, "end", 3, 0, NULL, &err) != SX_OK)
        FAIL(f, "history marker: %s", err.msg);
    pthread_mutex_lock(&h->mu);
    uint64_t end = sx_clock_now_ms() + WAIT_MS;
    while (!h->marker && !h->ended && sx_clock_now_ms() < end) {
        pthread_mutex_unlock(&h->mu);
        sx_clock_sleep_ms(20);
        pthread_mutex_lock(&h->mu);
    }
    bool complete = h->marker;
    pthread_mutex_unlock(&h->mu);
    sx_etcd_watch_stop(w); /* no callback runs after this */
    sx_etcd_delete(f->ec.etcd, h->marker_key, false, NULL, NULL, NULL);
    if (!complete)
        FAIL(f, "the history watch did not reach the marker");
}

/* The walk through the history: who leads at each revision. */
typedef struct judge {
    bool present;       /* a leader key exists */
    bool first_of_term; /* no map put yet under it */
    int64_t epoch;      /* its create revision */
    char who[64];
    uint64_t last_version, last_hash;
    size_t terms, puts;
    char why[300]; /* the first break, "" while none */
} judge;

static void judge_leader(judge *j, const hev *e)
{
    if (e->deleted) {
        if (!j->present)
            snprintf(j->why, sizeof(j->why),
                     "revision %" PRId64 ": leader key deleted while absent", e->revision);
        j->present = false;
        fprintf(stderr, "history: revision %" PRId64 " leader key of %s gone\n", e->revision,
                j->who);
        return;
    }
    if (j->present || e->version != 1 || e->create_revision != e->revision)
        snprintf(j->why, sizeof(j->why),
                 "revision %" PRId64 ": leader key put (version %" PRId64
                 ") while %s held it (epoch %" PRId64 ")",
                 e->revision, e->version, j->who, j->epoch);
    j->present = j->first_of_term = true;
    j->epoch = e->revision;
    snprintf(j->who, sizeof(j->who), "%s", e->value);
    j->terms++;
    fprintf(stderr, "history: revision %" PRId64 " %s leads (epoch %" PRId64 ")\n", e->revision,
            j->who, j->epoch);
}

static void judge_map(judge *j, const hev *e)
{
    if (e->deleted) {
        snprintf(j->why, sizeof(j->why), "revision %" PRId64 ": the map was deleted", e->revision);
        return;
    }
    j->puts++;
    if (!j->present)
        snprintf(j->why, sizeof(j->why),
                 "revision %" PRId64 ": map version %" PRIu64 " put with no leader", e->revision,
                 e->map_version);
    else if (e->map_version == UINT64_MAX)
        snprintf(j->why, sizeof(j->why), "revision %" PRId64 ": the map does not decode",
                 e->revision);
    else if (e->map_version < j->last_version ||
             (e->map_version == j->last_version && !(j->first_of_term && e->hash == j->last_hash)))
        snprintf(j->why, sizeof(j->why),
                 "revision %" PRId64 ": map version %" PRIu64 " after %" PRIu64 " (a stale writer)",
                 e->revision, e->map_version, j->last_version);
    else if (!e->has_epoch)
        snprintf(j->why, sizeof(j->why),
                 "revision %" PRId64 ": map version %" PRIu64 " has no coordinator_epoch",
                 e->revision, e->map_version);
    else if (e->epoch != (uint64_t)j->epoch)
        snprintf(j->why, sizeof(j->why),
                 "revision %" PRId64 ": map version %" PRIu64 " carries coordinator_epoch %" PRIu64
                 " under leader %s of epoch %" PRId64,
                 e->revision, e->map_version, e->epoch, j->who, j->epoch);
    j->first_of_term = false;
    j->last_version = e->map_version;
    j->last_hash = e->hash;
}

/* Reads the whole history of /shardex/t/ and checks that there was exactly
 * one leader at a time and that every map was written by the leader of the
 * moment: the leader key created only when absent (version 1, created by
 * that very revision) and deleted only when present; every put of the map
 * while a leader key existed, carrying that key's create revision as its
 * coordinator_epoch; map versions rising (a new leader may save the map it
 * adopted again, same bytes). Returns the number of leader terms. */
static size_t check_history(fx *f)
{
    history h = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    read_history(f, &h);
    judge j = {0};
    for (size_t i = 0; i < h.n && !j.why[0]; i++) {
        if (h.ev[i].leader)
            judge_leader(&j, &h.ev[i]);
        else if (h.ev[i].map)
            judge_map(&j, &h.ev[i]);
    }
    free(h.ev);
    fprintf(stderr,
            "history: %zu leader terms, %zu map puts, each with its leader's epoch; last map "
            "version %" PRIu64 "\n",
            j.terms, j.puts, j.last_version);
    if (j.why[0])
        FAIL(f, "etcd's history breaks one-leader-at-a-time: %s", j.why);
    return j.terms;
}

/* GetMap answers OK at coordinator k (it serves as a leader). */
static bool answers_as_leader(sx_cluster *c, uint32_t k)
{
    if (c->coords_pid[k] <= 0)
        return false;
    Shardex__Internal__V1__GetMapRequest req = SHARDEX__INTERNAL__V1__GET_MAP_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    sx_rpc_call_opts o = {.timeout_ms = 300};
    sx_status st =
        sx_rpc_invoke(c->rpc, c->coords_addr[k], &shardex__internal__v1__coordinator__descriptor,
                      "GetMap", &req.base, &resp, &o, NULL);
    sx_rpc_free(resp);
    return st == SX_OK;
}

/* ============================================================== cases === */

/* The clock has passed *(uint64_t *)arg (supervising meanwhile). */
static bool time_passed(fx *f, void *arg)
{
    (void)f;
    return sx_clock_now_ms() >= *(uint64_t *)arg;
}

/* The leader paused past its etcd lease; a follower takes over; the old one
 * resumed writes nothing and exits 1. */
static void test_fencing(void **state)
{
    fx *f = *state;
    start(f);
    sx_cluster *c = f->c;
    load_start(&f->L, c, NWORKERS);
    wait_acks(f, 50, "before the pause");

    int old = f->leader;
    int64_t old_epoch = 0;
    assert_int_equal(sx_cluster_leader_key(c, &old_epoch), old);
    pid_t old_pid = c->coords_pid[old];
    char old_addr[64];
    snprintf(old_addr, sizeof(old_addr), "%s", c->coords_addr[old]);
    uint64_t t_pause = sx_clock_now_ms();
    sx_h_pause(old_pid);
    fprintf(stderr, "paused leader %d (%s, epoch %" PRId64 ")\n", old, old_addr, old_epoch);

    if (!until(f, other_leads, &old, WAIT_MS))
        FAIL(f, "no other coordinator took over from the paused leader");
    int64_t new_epoch = 0;
    int now_k = sx_cluster_leader_key(c, &new_epoch);
    uint64_t t_new = sx_clock_now_ms();
    fprintf(stderr, "coordinator %d leads %" PRIu64 " ms after the pause (epoch %" PRId64 ")\n",
            now_k, t_new - t_pause, new_epoch);
    if (now_k == old || new_epoch <= old_epoch)
        FAIL(f, "the leader key names %d with epoch %" PRId64 " (old %d, %" PRId64 ")", now_k,
             new_epoch, old, old_epoch);
    /* The takeover needed the old lease to run out: 2 s after its last
     * renewal, which may have come up to a third of it before the pause. */
    if (t_new - t_pause < META_LEASE_MS / 2)
        FAIL(f, "a follower led %" PRIu64 " ms after the pause: before the lease could expire",
             t_new - t_pause);
    wait_acks(f, 50, "under the new leader");
    /* Paused well past its lease (2 s + a margin) before it runs again. */
    uint64_t resume_at = t_pause + META_LEASE_MS + 1500;
    until(f, time_passed, &resume_at, WAIT_MS);

    uint64_t ack_before = atomic_load(&f->L.acked);
    uint32_t k = (uint32_t)old;
    sx_h_resume(old_pid);
    /* From the moment it runs again it answers nothing as the leader. */
    for (uint64_t end = sx_clock_now_ms() + 1000; sx_clock_now_ms() < end;)
        if (answers_as_leader(c, k))
            FAIL(f, "the resumed old leader answered GetMap as the leader");
    /* It stops leading: it steps down and follows in the same process (main
     * since 9c6a735), or exits 1 (crash-only) and is started again. */
    if (!until(f, follows_or_exited, &k, WAIT_MS))
        FAIL(f, "the resumed old leader neither follows nor exits");
    int st = exit_status_of(f, old_pid);
    if (st == -1) {
        fprintf(stderr, "the resumed old leader stepped down and follows in the same process\n");
    } else {
        fprintf(stderr, "the resumed old leader exited (%s %d)\n",
                WIFEXITED(st) ? "status" : "signal",
                WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 1)
            FAIL(f, "the resumed old leader exited with waitpid status %d, not 1", st);
        sx_cluster_start_coord(c, k);
        if (!until(f, follows, &k, WAIT_MS))
            FAIL(f, "the restarted old leader does not follow");
    }
    if (sx_cluster_leader_key(c, NULL) != now_k)
        FAIL(f, "the leader changed when the old one resumed");
    wait_acks(f, 50, "after the old leader resumed");
    fprintf(stderr, "writes went on: %" PRIu64 " acknowledged since the resume\n",
            atomic_load(&f->L.acked) - ack_before);
    load_stop(&f->L);
    report_failures(c, &f->L, "fencing");
    size_t terms = check_history(f);
    if (terms < 2)
        FAIL(f, "etcd recorded %zu leader terms: no takeover", terms);
    check_data(f);
}

/* kill -9 of the leader, three rounds; writes go on; nothing is lost. */
static void test_kill9_rounds(void **state)
{
    fx *f = *state;
    start(f);
    sx_cluster *c = f->c;
    load_start(&f->L, c, NWORKERS);
    wait_acks(f, 50, "before the first kill");
    uint64_t t_kill[KILL_ROUNDS + 1], t_lead[KILL_ROUNDS];
    for (int r = 0; r < KILL_ROUNDS; r++) {
        int old = f->leader;
        t_kill[r] = sx_clock_now_ms();
        sx_cluster_kill_coord(c, (uint32_t)old);
        if (!until(f, other_leads, &old, WAIT_MS))
            FAIL(f, "round %d: no coordinator took over from %d", r + 1, old);
        t_lead[r] = sx_clock_now_ms();
        uint32_t k = (uint32_t)old;
        sx_cluster_start_coord(c, k);
        if (!until(f, follows, &k, WAIT_MS))
            FAIL(f, "round %d: the restarted coordinator %d does not follow", r + 1, old);
        wait_acks(f, 50, "after a takeover");
        fprintf(stderr, "round %d: killed %d, %d leads after %" PRIu64 " ms\n", r + 1, old,
                f->leader, t_lead[r] - t_kill[r]);
    }
    t_kill[KILL_ROUNDS] = sx_clock_now_ms();
    load_stop(&f->L);
    for (int r = 0; r < KILL_ROUNDS; r++)
        fprintf(stderr,
                "round %d: longest stretch with no acknowledged write %" PRIu64
                " ms (leader found after %" PRIu64 " ms)\n",
                r + 1, longest_gap(&f->L, t_kill[r], t_kill[r + 1]), t_lead[r] - t_kill[r]);
    report_failures(c, &f->L, "kill -9 rounds");
    for (size_t i = 0; i < f->nexits; i++)
        FAIL(f, "coordinator %u exited by itself (waitpid %d)", f->exits[i].k, f->exits[i].status);
    check_history(f);
    check_data(f);
}

typedef struct window {
    uint64_t until_ms;
    int leads; /* a coordinator seen answering as the leader, -1: none */
} window;

/* Until until_ms: notes any coordinator answering GetMap. */
static bool none_leads_until(fx *f, void *arg)
{
    window *w = arg;
    for (uint32_t k = 0; k < f->c->ncoords && w->leads < 0; k++)
        if (answers_as_leader(f->c, k))
            w->leads = (int)k;
    return sx_clock_now_ms() >= w->until_ms;
}

/* No coordinator answers GetMap. */
static bool nobody_leads(fx *f, void *arg)
{
    (void)arg;
    for (uint32_t k = 0; k < f->c->ncoords; k++)
        if (answers_as_leader(f->c, k))
            return false;
    return true;
}

static bool failures_after(fx *f, void *arg)
{
    uint64_t base = *(uint64_t *)arg;
    return atomic_load(&f->L.failed) > base;
}

/* The quorum case's times and the leader that lost etcd. */
typedef struct qloss {
    uint64_t t_m0;    /* the first member killed */
    uint64_t t_q;     /* the second: no quorum */
    uint64_t t_heal;  /* both started again */
    int leader;       /* the leader when the quorum went */
    pid_t leader_pid; /* its process */
    int leader_status;
} qloss;

/* One member down: a coordinator leads on (the same or another) and still
 * changes the map: worker 2, killed now, is declared dead. */
static void one_member_down(fx *f, qloss *q)
{
    int before = f->leader;
    q->t_m0 = sx_clock_now_ms();
    sx_etcdm_kill(&f->ec, 0);
    fprintf(stderr, "etcd member 0 killed (%s)\n", f->ec.m[0].addr);
    sx_cluster_kill_worker(f->c, 2);
    uint64_t t_w = sx_clock_now_ms();
    worker_state dead = {2, false};
    if (!until(f, worker_is, &dead, WAIT_MS))
        FAIL(f, "with one etcd member down, the dead worker 2 was not declared dead");
    fprintf(stderr,
            "one etcd member down: coordinator %d (%s before) declared worker 2 dead in %" PRIu64
            " ms\n",
            f->leader, before == f->leader ? "it led" : "another led", sx_clock_now_ms() - t_w);
    wait_acks(f, 50, "with one etcd member down");
}

/* A second member down: within the metadata lease (and a tick) nobody
 * leads, and for the workers' lease and more nobody does; the leader's
 * process exits (crash-only: its supervisor restarts it, and it follows);
 * writes go on while the partition leaders' leases last, then fail. */
static void no_quorum(fx *f, qloss *q)
{
    q->leader = f->leader;
    q->leader_pid = f->c->coords_pid[q->leader];
    uint64_t failed0 = atomic_load(&f->L.failed), acked0 = atomic_load(&f->L.acked);
    q->t_q = sx_clock_now_ms();
    sx_etcdm_kill(&f->ec, 1);
    fprintf(stderr, "etcd member 1 killed (%s): no quorum; coordinator %d led (pid %d)\n",
            f->ec.m[1].addr, q->leader, (int)q->leader_pid);
    if (!until(f, nobody_leads, NULL, META_LEASE_MS + 1000))
        FAIL(f, "without an etcd quorum coordinator %d still answers as the leader after %d ms",
             f->leader, META_LEASE_MS + 1000);
    fprintf(stderr, "no quorum: no coordinator answers as the leader %" PRIu64 " ms after\n",
            sx_clock_now_ms() - q->t_q);
    window w = {.until_ms = sx_clock_now_ms() + 2 * WORKER_LEASE_MS + 2000, .leads = -1};
    until(f, none_leads_until, &w, WAIT_MS);
    if (w.leads >= 0)
        FAIL(f, "coordinator %d answered as a leader without an etcd quorum", w.leads);
    /* The leader stopped leading: it follows in the same process (main since
     * 9c6a735), or exited 1 (crash-only: the supervisor starts it again). */
    q->leader_status = exit_status_of(f, q->leader_pid);
    fprintf(stderr, "no quorum: the old leader's process %s\n",
            q->leader_status == -1 ? "runs on (it follows)" : "exited");
    bool writes_failed = until(f, failures_after, &failed0, WAIT_MS);
    q->t_heal = sx_clock_now_ms();
    fprintf(stderr,
            "no quorum for %" PRIu64 " ms: %" PRIu64 " writes acknowledged, %" PRIu64
            " failed meanwhile%s\n",
            q->t_heal - q->t_q, atomic_load(&f->L.acked) - acked0,
            atomic_load(&f->L.failed) - failed0, writes_failed ? "" : " (none failed)");
}

/* Both members back: a coordinator leads again, every worker (worker 2
 * started again) heartbeats, writes succeed. */
static void quorum_back(fx *f, qloss *q)
{
    sx_etcdm_restart(&f->ec, 0);
    sx_etcdm_restart(&f->ec, 1);
    if (!sx_etcdm_wait(&f->ec, WAIT_MS))
        FAIL(f, "etcd did not come back");
    fprintf(stderr, "etcd whole again after %" PRIu64 " ms\n", sx_clock_now_ms() - q->t_heal);
    if (!until(f, some_leads, NULL, WAIT_MS))
        FAIL(f, "no coordinator leads after etcd's quorum came back");
    fprintf(stderr, "coordinator %d leads %" PRIu64 " ms after the members restarted\n", f->leader,
            sx_clock_now_ms() - q->t_heal);
    if (!sx_cluster_start_worker(f->c, 2))
        FAIL(f, "worker 2 did not start again");
    for (uint32_t i = 0; i < NWORKERS; i++) {
        worker_state alive = {i, true};
        if (!until(f, worker_is, &alive, WAIT_MS))
            FAIL(f, "worker %u is not alive in the map after etcd came back", i);
    }
    wait_acks(f, 50, "after etcd came back");
}

/* What the writes saw from the quorum loss to its healing, after load_stop. */
static void report_no_quorum_writes(const load *L, const qloss *q)
{
    uint64_t last_ack = 0, first_fail = 0;
    for (uint32_t i = 0; i < NWRITERS; i++)
        for (size_t k = 0; k < L->w[i].n; k++) {
            const wrec *r = &L->w[i].r[k];
            if (r->done_ms < q->t_q || r->done_ms > q->t_heal)
                continue;
            if (r->st == SX_OK && r->done_ms > last_ack)
                last_ack = r->done_ms;
            if (r->st != SX_OK && (!first_fail || r->done_ms < first_fail))
                first_fail = r->done_ms;
        }
    fprintf(stderr,
            "no quorum: the last write acknowledged %" PRIu64 " ms after the quorum went, the "
            "first failure %" PRIu64 " ms after (0: none); the longest stretch with no "
            "acknowledged write from then until writes went on again: %" PRIu64 " ms\n",
            last_ack ? last_ack - q->t_q : 0, first_fail ? first_fail - q->t_q : 0,
            longest_gap(L, q->t_q, sx_clock_now_ms()));
}

/* What waited on the lead's change (b): no coordinator exits while etcd has
 * a quorum (a leader's keepalive moves to another member, a follower
 * retries); without one a follower never exits, and the leader either
 * follows on or (crash-only) exits with status 1. */
static void check_exits(fx *f, const qloss *q)
{
    for (size_t i = 0; i < f->nexits; i++) {
        const coord_exit *e = &f->exits[i];
        if (e->at_ms < q->t_q)
            FAIL(f,
                 "(b): coordinator %u (%s) exited (waitpid %d) %" PRIu64
                 " ms after one etcd member of three was killed, with the quorum held",
                 e->k, e->was_leader ? "the leader" : "a follower", e->status, e->at_ms - q->t_m0);
        if (e->pid != q->leader_pid)
            FAIL(f,
                 "(b): coordinator %u (a follower) exited (waitpid %d) %" PRIu64
                 " ms after etcd lost its quorum",
                 e->k, e->status, e->at_ms - q->t_q);
        if (!WIFEXITED(e->status) || WEXITSTATUS(e->status) != 1)
            FAIL(f, "the leader without quorum exited with waitpid status %d, not 1", e->status);
    }
}

/* etcd loses one member, then its quorum, then gets both back. Writes go
 * through workers 0 and 1 (worker 2 is killed on the way). */
static void test_quorum_loss(void **state)
{
    fx *f = *state;
    start(f);
    f->restart_exited = true;
    load_start(&f->L, f->c, 2);
    wait_acks(f, 50, "before etcd lost a member");
    qloss q = {0};
    one_member_down(f, &q);
    no_quorum(f, &q);
    quorum_back(f, &q);
    load_stop(&f->L);
    report_no_quorum_writes(&f->L, &q);
    report_failures(f->c, &f->L, "quorum loss");
    check_history(f);
    check_data(f);
    check_exits(f, &q);
}

int main(void)
{
    sx_fx_seed();
    sx_fx_filter_from_env();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fencing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kill9_rounds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_quorum_loss, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
