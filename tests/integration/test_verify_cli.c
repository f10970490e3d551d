/* test_verify_cli.c: the `shardex verify` command against real processes
 * (coordinator + 3 workers, P=8, R=3, min_isr=2, lease 1000 ms), with indexes
 * color (string, local and global) and size (int, local) over ~300 documents,
 * some multi-valued, written before and after the indexes were created, some
 * updated and deleted:
 *  a. a healthy cluster: exit 0, and --json gives a report that parses, with
 *     every replica of every partition checked and no difference;
 *  b. one local index entry deleted from a follower's store while its worker
 *     is down (kill -9, edit, restart): exit 1, one MISSING line naming the
 *     entry, the partition and the replica, the same in --json;
 *  c. the command line: a bad flag exits 2, --help exits 0, an unreachable
 *     server exits 3 within the deadline.
 * The cases share one cluster and run in order (b leaves a difference).
 */
#include "checker.h"
#include "clock.h"
#include "cluster.h"
#include "fixture.h"
#include "fsutil.h"
#include "harness.h"
#include "ixkey.h"
#include "keys.h"
#include "query.h"
#include "shardex/internal/v1/index.pb-c.h"
#include "store.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#define WAIT_MS 30000
/* How long one run of the tool may take before the test gives up on it. */
#define CLI_MS 60000
#define P 8
#define R 3
#define NDOCS 300

static const char *const COLORS[] = {"amber", "blue", "green", "red", "teal", "violet"};
#define NCOLORS (sizeof(COLORS) / sizeof(COLORS[0]))

static const sx_qindex COLOR = {.name = "color", .field = "color", .local = true, .global = true};
static const sx_qindex SIZE = {.name = "size", .field = "size", .is_int = true, .local = true};

typedef struct fx {
    sx_cluster *c;
} fx;

/* ------------------------------------------------------------ the tool -- */

/* Runs `shardex ARGS...` (args NULL-terminated) with its stdout and stderr in
 * files under dir, and waits for it (sx_h_run_free the result). */
static sx_h_run run_cli(const char *dir, const char *const *args)
{
    char bin[512], outf[512], errf[512];
    sx_cluster_bin("client/shardex", bin, sizeof(bin));
    snprintf(outf, sizeof(outf), "%s/cli.out", dir);
    snprintf(errf, sizeof(errf), "%s/cli.err", dir);
    char *argv[32] = {bin};
    size_t n = 1;
    for (; args[n - 1] && n < 31; n++)
        argv[n] = (char *)args[n - 1];
    argv[n] = NULL;
    sx_h_run r = sx_h_run_wait(argv, NULL, NULL, outf, errf, CLI_MS);
    if (getenv("SHARDEX_TEST_VERBOSE")) /* every run's output */
        sx_h_run_print(args[0], &r);
    return r;
}

/* The report of `shardex --server ADDR verify --json` (json_decref it). */
static json_t *verify_json(fx *f, const char *addr, int want_code)
{
    const char *args[] = {"--server", addr, "verify", "--json", "--max-diffs", "0", NULL};
    sx_h_run r = run_cli(f->c->dir, args);
    if (r.code != want_code) {
        sx_h_run_print("verify --json", &r);
        SX_FX_FAIL(f->c, "verify --json exited %d, not %d", r.code, want_code);
    }
    json_error_t jerr;
    json_t *root = json_loads(r.out, 0, &jerr);
    if (!root) {
        sx_h_run_print("verify --json", &r);
        SX_FX_FAIL(f->c, "verify --json: not JSON: %s (line %d)", jerr.text, jerr.line);
    }
    fprintf(stderr, "verify --json via %s: exit %d in %" PRIu64 " ms\n", addr, r.code, r.ms);
    sx_h_run_free(&r);
    return root;
}

static uint64_t jnum(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    assert_true(json_is_integer(v));
    return (uint64_t)json_integer_value(v);
}

static const char *jstr(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

/* Checks of kind `kind` in the report, each with a worker for docs/local. */
static size_t count_checks(json_t *root, const char *kind)
{
    size_t n = 0, i;
    json_t *ck;
    json_array_foreach(json_object_get(root, "checks"), i, ck)
    {
        if (strcmp(jstr(ck, "check"), kind) != 0)
            continue;
        n++;
        if (strcmp(kind, "global") != 0) {
            assert_true(*jstr(ck, "worker"));
            assert_true(*jstr(ck, "address"));
        }
    }
    return n;
}

/* -------------------------------------------------------------- fixture -- */

static void doc_of(int i, int round, sx_qdoc *d)
{
    memset(d, 0, sizeof(*d));
    snprintf(d->id, sizeof(d->id), "d-%03d", i);
    int k = i + 7 * round;
    if (i % 13 != 0)
        sx_qdoc_add(d, "color", sx_qval_str(COLORS[k % NCOLORS]));
    if (i % 5 == 0) /* multi-valued, and a repeated value */
        sx_qdoc_add(d, "color", sx_qval_str(COLORS[(k + 2) % NCOLORS]));
    if (i % 35 == 0)
        sx_qdoc_add(d, "color", sx_qval_str(COLORS[k % NCOLORS]));
    if (i % 11 != 0)
        sx_qdoc_add(d, "size", sx_qval_int(k % 40 - 10));
    if (i % 6 == 0)
        sx_qdoc_add(d, "size", sx_qval_int(1000 + k));
    if (i % 17 == 0) /* mistyped: not indexed */
        sx_qdoc_add(d, "size", sx_qval_str("big"));
}

static void put_range(fx *f, int from, int to, int round)
{
    sx_qdoc docs[50];
    for (int i = from; i < to;) {
        size_t n = 0;
        for (; i < to && n < 50; i++)
            doc_of(i, round, &docs[n++]);
        sx_err err = {0};
        if (sx_q_put(f->c, f->c->worker_addr[(unsigned)i % 3], docs, n, 10000, NULL, NULL, &err) !=
            SX_OK)
            SX_FX_FAIL(f->c, "put: %s", err.msg);
    }
}

static void create_ready(fx *f, const sx_qindex *ix)
{
    sx_err err = {0};
    if (sx_q_create_index(f->c, f->c->worker_addr[0], ix, &err) != SX_OK)
        SX_FX_FAIL(f->c, "CreateIndex %s: %s", ix->name, err.msg);
    if (!sx_q_wait_ready(f->c, f->c->worker_addr[1], ix->name, WAIT_MS))
        SX_FX_FAIL(f->c, "index %s not READY in %d ms", ix->name, WAIT_MS);
}

/* Every term partition of every global index owned, at the map's epoch,
 * and shipped to by every log partition (wm > 0): until then verify would
 * rightly report NOT-SHIPPED (a new owner starts empty and is rebuilt). */
static bool terms_complete(void *arg)
{
    sx_cluster *c = arg;
    Shardex__Internal__V1__ClusterMap *m = sx_cluster_map(c);
    if (!m)
        return false;
    bool ok = true;
    for (size_t i = 0; i < m->n_indexes && ok; i++) {
        const Shardex__Internal__V1__IndexEntry *ix = m->indexes[i];
        for (uint32_t t = 0; ix->spec->global && t < ix->spec->term_partitions && ok; t++) {
            size_t slot = (size_t)ix->first_term + t;
            ok = slot < m->n_terms;
            int32_t owner = ok ? m->terms[slot]->owner : -1;
            ok = owner >= 0 && (size_t)owner < m->n_workers;
            if (!ok)
                break;
            Shardex__Internal__V1__DigestRequest req = SHARDEX__INTERNAL__V1__DIGEST_REQUEST__INIT;
            req.index_id = ix->id;
            req.partition = t;
            req.term = true;
            req.epoch = m->terms[slot]->epoch;
            ProtobufCMessage *resp = NULL;
            sx_rpc_call_opts o = {.timeout_ms = 2000};
            ok = sx_rpc_invoke(c->rpc, m->workers[owner]->address,
                               &shardex__internal__v1__index__descriptor, "Digest", &req.base,
                               &resp, &o, NULL) == SX_OK;
            const Shardex__Internal__V1__DigestResponse *d = (const void *)resp;
            ok = ok && d->active && d->n_watermarks == m->settings->partitions;
            for (size_t p = 0; ok && p < d->n_watermarks; p++)
                ok = d->watermarks[p] > 0;
            sx_rpc_free(resp);
        }
    }
    sx_rpc_free(&m->base);
    return ok;
}

/* Log partitions settled (every replica applied its leader's commit, logs
 * and documents equal) and term partitions complete. */
static void settle(fx *f)
{
    char why[512] = "";
    if (!sx_check_replicas(f->c, WAIT_MS, why, sizeof(why)))
        SX_FX_FAIL(f->c, "replicas differ or did not settle: %s", why);
    SX_FX_WAIT(f->c, terms_complete, f->c, WAIT_MS,
               "term partitions not all owned and shipped to in %d ms", WAIT_MS);
}

static int setup(void **state)
{
    uint64_t t0 = sx_clock_now_ms();
    sx_cluster_opts o = {.workers = 3, .partitions = P, .replication = R};
    fx *f = calloc(1, sizeof(*f));
    f->c = sx_cluster_start_settled(&o, WAIT_MS);
    if (!f->c) {
        free(f);
        return -1;
    }
    *state = f;
    /* Documents before the indexes (backfilled), then after (applied). */
    put_range(f, 0, NDOCS / 2, 0);
    create_ready(f, &COLOR);
    create_ready(f, &SIZE);
    put_range(f, NDOCS / 2, NDOCS, 0);
    put_range(f, 0, NDOCS / 10, 1); /* updates that change values */
    const char *gone[] = {"d-003", "d-050", "d-151", "d-222", "d-299"};
    sx_err err = {0};
    if (sx_q_delete(f->c, f->c->worker_addr[2], gone, 5, 10000, NULL, NULL, &err) != SX_OK)
        SX_FX_FAIL(f->c, "delete: %s", err.msg);
    settle(f);
    fprintf(stderr, "fixture ready in %" PRIu64 " ms\n", sx_clock_now_ms() - t0);
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    uint64_t t0 = sx_clock_now_ms();
    sx_cluster_stop(f->c);
    fprintf(stderr, "cluster stopped in %" PRIu64 " ms\n", sx_clock_now_ms() - t0);
    free(f->c);
    free(f);
    return 0;
}

/* ---------------------------------------------------------------- cases -- */

/* a. Nothing differs; every replica is checked. */
static void test_verify_clean(void **state)
{
    fx *f = *state;
    json_t *root = verify_json(f, f->c->worker_addr[0], 0);
    json_t *sum = json_object_get(root, "summary");
    uint64_t checks = jnum(sum, "checks");
    if (checks == 0 || jnum(sum, "ok") != checks || jnum(sum, "differences") != 0 ||
        jnum(sum, "failed") != 0) {
        char *s = json_dumps(sum, 0);
        SX_FX_FAIL(f->c, "verify: %s", s);
    }
    assert_int_equal(jnum(root, "exit"), 0);
    assert_int_equal(jnum(root, "partitions"), P);
    assert_int_equal(json_array_size(json_object_get(root, "checks")), checks);
    assert_int_equal(json_array_size(json_object_get(root, "differences")), 0);
    /* Documents and both local indexes on every replica of every partition. */
    assert_int_equal(count_checks(root, "docs"), P * R);
    assert_int_equal(count_checks(root, "local"), 2 * P * R);
    assert_true(count_checks(root, "global") > 0);
    json_decref(root);

    /* The same through the coordinator (the map from Coordinator.GetMap),
     * as lines. */
    const char *args[] = {"--server", f->c->coord_addr, "verify", NULL};
    sx_h_run r = run_cli(f->c->dir, args);
    if (r.code != 0 || !strstr(r.out, " 0 differences") || !strstr(r.out, " replica=")) {
        sx_h_run_print("verify", &r);
        SX_FX_FAIL(f->c, "verify through the coordinator exited %d", r.code);
    }
    fprintf(stderr, "verify via the coordinator: exit 0 in %" PRIu64 " ms\n", r.ms);
    sx_h_run_free(&r);
}

/* The stopped worker's replica of p has applied its leader's commit. */
typedef struct caught_up {
    fx *f;
    uint32_t w; /* test worker */
    uint32_t p;
} caught_up;

static const Shardex__Internal__V1__ReplicaState *
replica_state(const Shardex__Internal__V1__WorkerStatusResponse *s, uint32_t p)
{
    for (size_t k = 0; s && k < s->n_replicas; k++)
        if (s->replicas[k]->partition == p)
            return s->replicas[k];
    return NULL;
}

static bool caught_up_cond(void *arg)
{
    caught_up *cu = arg;
    sx_cluster *c = cu->f->c;
    Shardex__Internal__V1__ClusterMap *m = sx_cluster_map(c);
    if (!m)
        return false;
    bool ok = false;
    int32_t lw = m->partitions[cu->p]->leader;
    for (uint32_t i = 0; i < c->nworkers && lw >= 0; i++) {
        if (sx_cluster_index_of(m, c, i) != lw)
            continue;
        Shardex__Internal__V1__WorkerStatusResponse *ls = sx_cluster_worker_status(c, i);
        Shardex__Internal__V1__WorkerStatusResponse *ws = sx_cluster_worker_status(c, cu->w);
        const Shardex__Internal__V1__ReplicaState *l = replica_state(ls, cu->p);
        const Shardex__Internal__V1__ReplicaState *w = replica_state(ws, cu->p);
        ok = l && w && strcmp(l->role, "leader") == 0 && l->commit_offset > 0 &&
             w->applied_offset == l->commit_offset;
        sx_rpc_free(ls ? &ls->base : NULL);
        sx_rpc_free(ws ? &ws->base : NULL);
    }
    sx_rpc_free(&m->base);
    return ok;
}

/* The entry deleted behind the cluster's back. */
typedef struct victim {
    uint64_t index_id;
    char index[16];
    bool is_int;
    int64_t vi;
    char vs[64];
    char id[64];
} victim;

/* Deletes the first local index entry of the stopped worker w's replica of
 * p, straight from its store; says which it was. */
static void delete_one_entry(fx *f, uint32_t w, uint32_t p,
                             const Shardex__Internal__V1__ClusterMap *m, victim *out)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/w%u/partitions/p%04u", f->c->dir, w, p);
    sx_store_opts so = {.no_create = true};
    sx_store *s = NULL;
    sx_err err = {0};
    if (sx_store_open(path, &so, &s, &err) != SX_OK)
        SX_FX_FAIL(f->c, "open %s: %s", path, err.msg);
    sx_iter *it = sx_store_iter_prefix(s, NULL, "X", 1);
    assert_true(sx_iter_valid(it));
    size_t kl = 0;
    const uint8_t *k = sx_iter_key(it, &kl);
    assert_true(kl > 9);
    uint8_t key[512];
    assert_true(kl <= sizeof(key));
    memcpy(key, k, kl);
    sx_iter_destroy(it);

    memset(out, 0, sizeof(*out));
    sx_key_reader kr;
    sx_key_reader_init(&kr, key + 1, 8);
    assert_true(sx_key_read_u64(&kr, &out->index_id));
    const Shardex__Internal__V1__IndexEntry *ix = NULL;
    for (size_t i = 0; i < m->n_indexes; i++)
        if (m->indexes[i]->id == out->index_id)
            ix = m->indexes[i];
    if (!ix)
        SX_FX_FAIL(f->c, "index id %" PRIu64 " of the entry is not in the map", out->index_id);
    snprintf(out->index, sizeof(out->index), "%s", ix->spec->name);
    out->is_int = ix->spec->type == SHARDEX__V1__VALUE_TYPE__VALUE_TYPE_INT;
    Shardex__V1__Value v;
    sx_buf sbuf = {0}, id = {0};
    assert_true(sx_ixkey_split_key(out->is_int, key + 9, kl - 9, &v, &sbuf, &id));
    if (out->is_int)
        out->vi = v.i;
    else
        snprintf(out->vs, sizeof(out->vs), "%s", v.s);
    snprintf(out->id, sizeof(out->id), "%.*s", (int)id.len, (const char *)id.data);
    sx_buf_free(&sbuf);
    sx_buf_free(&id);

    if (sx_store_delete(s, key, kl, SX_SYNC_YES, &err) != SX_OK)
        SX_FX_FAIL(f->c, "delete from %s: %s", path, err.msg);
    sx_store_close(s);
}

/* b. One local index entry of a follower gone: found, and named. */
static void test_verify_finds_a_missing_local_entry(void **state)
{
    fx *f = *state;
    sx_cluster *c = f->c;
    /* A worker and a partition it follows. */
    Shardex__Internal__V1__ClusterMap *m = sx_cluster_map(c);
    assert_non_null(m);
    uint32_t w = 2, p = UINT32_MAX;
    int32_t mw = sx_cluster_index_of(m, c, w);
    /* The last such partition: leaderships handed back to a returning
     * worker tend to be the low-numbered ones (ties go to the lowest). */
    for (uint32_t q = 0; q < m->n_partitions; q++) {
        const Shardex__Internal__V1__LogPartition *lp = m->partitions[q];
        for (size_t k = 0; k < lp->n_replicas && lp->leader != mw; k++)
            if (lp->replicas[k] == mw)
                p = q;
    }
    if (p == UINT32_MAX)
        SX_FX_FAIL(f->c, "worker %u follows no partition", w);

    sx_cluster_kill_worker(c, w);
    victim v;
    delete_one_entry(f, w, p, m, &v);
    sx_rpc_free(&m->base);
    m = NULL;
    char value[80];
    if (v.is_int)
        snprintf(value, sizeof(value), "%" PRId64, v.vi);
    else
        snprintf(value, sizeof(value), "\"%s\"", v.vs);
    fprintf(stderr, "deleted from w%u's replica of p=%u: idx=%s (id %" PRIu64 ") value=%s id=%s\n",
            w, p, v.index, v.index_id, value, v.id);

    /* Back in the isr, w often gets leaderships handed back, p's among
     * them: then it is restarted again (which repairs nothing either), a few
     * times at most, so that the difference is usually a follower's. */
    bool follows = false;
    for (int round = 0; round < 4 && !follows; round++) {
        if (round > 0)
            sx_cluster_kill_worker(c, w);
        if (!sx_cluster_start_worker(c, w))
            SX_FX_FAIL(f->c, "worker %u did not restart", w);
        settle(f);
        caught_up cu = {f, w, p};
        SX_FX_WAIT(f->c, caught_up_cond, &cu, WAIT_MS,
                   "w%u's replica of p=%u did not apply its leader's commit", w, p);
        m = sx_cluster_map(c);
        assert_non_null(m);
        follows = m->partitions[p]->leader != sx_cluster_index_of(m, c, w);
        sx_rpc_free(&m->base);
        fprintf(stderr, "restart %d: w%u %s p=%u\n", round + 1, w, follows ? "follows" : "leads",
                p);
    }

    /* Lines. */
    const char *args[] = {"--server", c->worker_addr[0], "verify", NULL};
    sx_h_run r = run_cli(c->dir, args);
    char want[256];
    snprintf(want, sizeof(want),
             "MISSING       local idx=%s p=%u replica=%s@%s value=%s id=\"%s\" ", v.index, p,
             c->worker_id[w], c->worker_addr[w], value, v.id);
    if (r.code != 1 || !strstr(r.out, want) || !strstr(r.out, " 1 differences (1 missing")) {
        sx_h_run_print("verify", &r);
        SX_FX_FAIL(f->c, "verify exited %d; expected exit 1 and the line \"%s\"", r.code, want);
    }
    fprintf(stderr, "verify: exit 1 in %" PRIu64 " ms\n", r.ms);
    sx_h_run_free(&r);

    /* JSON. */
    json_t *root = verify_json(f, c->worker_addr[1], 1);
    json_t *sum = json_object_get(root, "summary");
    assert_int_equal(jnum(sum, "differences"), 1);
    assert_int_equal(jnum(sum, "missing"), 1);
    assert_int_equal(jnum(sum, "different"), 1);
    assert_int_equal(jnum(sum, "failed"), 0);
    json_t *d = json_array_get(json_object_get(root, "differences"), 0);
    assert_non_null(d);
    assert_string_equal(jstr(d, "kind"), "missing");
    assert_string_equal(jstr(d, "check"), "local");
    assert_string_equal(jstr(d, "index"), v.index);
    assert_int_equal(jnum(d, "index_id"), v.index_id);
    assert_int_equal(jnum(d, "partition"), p);
    assert_string_equal(jstr(d, "worker"), c->worker_id[w]);
    assert_string_equal(jstr(d, "address"), c->worker_addr[w]);
    assert_string_equal(jstr(d, "role"), follows ? "follower" : "leader");
    assert_string_equal(jstr(d, "id"), v.id);
    if (v.is_int)
        assert_int_equal(json_integer_value(json_object_get(d, "value")), v.vi);
    else
        assert_string_equal(jstr(d, "value"), v.vs);
    json_decref(root);
}

/* A loopback port nothing listens on. */
static int closed_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(s >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(s, (struct sockaddr *)&a, &len), 0);
    close(s);
    return ntohs(a.sin_port);
}

/* c. The command line and an unreachable server. */
static void test_verify_usage_and_unreachable(void **state)
{
    fx *f = *state;
    const char *dir = f->c->dir;

    const char *bogus[] = {"verify", "--bogus", NULL};
    sx_h_run r = run_cli(dir, bogus);
    if (r.code != 2 || !strstr(r.err, "--bogus")) {
        sx_h_run_print("verify --bogus", &r);
        fail_msg("verify --bogus exited %d", r.code);
    }
    sx_h_run_free(&r);

    const char *nocmd[] = {"nosuchcommand", NULL};
    r = run_cli(dir, nocmd);
    assert_int_equal(r.code, 2);
    sx_h_run_free(&r);

    const char *help[] = {"--help", NULL};
    r = run_cli(dir, help);
    if (r.code != 0 || !strstr(r.out, "usage: shardex") || !strstr(r.out, "verify")) {
        sx_h_run_print("--help", &r);
        fail_msg("--help exited %d", r.code);
    }
    sx_h_run_free(&r);

    const char *vhelp[] = {"verify", "--help", NULL};
    r = run_cli(dir, vhelp);
    if (r.code != 0 || !strstr(r.out, "usage: shardex verify") || !strstr(r.out, "--json")) {
        sx_h_run_print("verify --help", &r);
        fail_msg("verify --help exited %d", r.code);
    }
    sx_h_run_free(&r);

    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", closed_port());
    const char *down[] = {"--server", addr, "--timeout-ms", "2000", "verify", NULL};
    r = run_cli(dir, down);
    fprintf(stderr, "verify against a closed port: exit %d in %" PRIu64 " ms\n", r.code, r.ms);
    if (r.code != 3 || r.ms > 2000 + 1500 || !strstr(r.err, "GetMap from")) {
        sx_h_run_print("verify (closed port)", &r);
        fail_msg("verify against a closed port exited %d after %" PRIu64 " ms", r.code, r.ms);
    }
    sx_h_run_free(&r);

    /* The same with --json: the error as a JSON object on stdout. */
    const char *downj[] = {"--server", addr, "--timeout-ms", "2000", "verify", "--json", NULL};
    r = run_cli(dir, downj);
    json_error_t jerr;
    json_t *root = json_loads(r.out, 0, &jerr);
    if (r.code != 3 || !root) {
        sx_h_run_print("verify --json (closed port)", &r);
        fail_msg("verify --json against a closed port exited %d", r.code);
    }
    assert_int_equal(jnum(root, "exit"), 3);
    assert_true(*jstr(root, "error"));
    json_decref(root);
    sx_h_run_free(&r);
}

int main(void)
{
    uint64_t t0 = sx_clock_now_ms();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_verify_clean),
        cmocka_unit_test(test_verify_finds_a_missing_local_entry),
        cmocka_unit_test(test_verify_usage_and_unreachable),
    };
    int rc = cmocka_run_group_tests(tests, setup, teardown);
    sx_rpc_wait_shutdown(5000);
    fprintf(stderr, "test_verify_cli: %" PRIu64 " ms\n", sx_clock_now_ms() - t0);
    return rc;
}
