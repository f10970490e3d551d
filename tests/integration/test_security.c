/* test_security.c: who may call what on a TLS cluster (issue 16; common/
 * auth.h, docs/security.md), against real processes: a coordinator and one
 * worker serving with TLS (the harness's node certificate) and a tokens file.
 *
 * Each identity is a client of its own (sx_rpc_client with its TLS options
 * and token) calling the worker and the coordinator:
 * - a plaintext client, and a client whose certificate another CA signed,
 *   do not get through the handshake (UNAVAILABLE) and change nothing;
 * - no certificate and no token: UNAUTHENTICATED; the health check is open;
 * - tokens: read may Get and Query and ListIndexes but not Put nor
 *   CreateIndex (PERMISSION_DENIED, nothing written); write may Put; admin
 *   may CreateIndex (a range one without split points too: the worker
 *   samples the data as a node); an unknown or expired token is
 *   UNAUTHENTICATED;
 * - client certificates (spiffe://shardex/client/ROLE/NAME) alike, and even
 *   an admin one may not call the internal services (Replication,
 *   WorkerAdmin.SetFaults, Coordinator): PERMISSION_DENIED;
 * - a token added to the file counts once the daemons get SIGHUP.
 */
#include "auth.h"
#include "cluster.h"
#include "fixture.h"
#include "fsutil.h"
#include "grpc/health/v1/health.pb-c.h"
#include "harness.h"
#include "query.h"
#include "shardex/internal/v1/coordinator.pb-c.h"
#include "shardex/internal/v1/replication.pb-c.h"
#include "shardex/internal/v1/worker.pb-c.h"
#include "shardex/v1/shardex.pb-c.h"

#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define WAIT_MS 30000
#define SHARDEX (&shardex__v1__shardex__descriptor)

typedef struct fx {
    sx_cluster *c;
    char dir[256];    /* tokens file, the other CA */
    char tokens[300]; /* the daemons' --auth-tokens (SHARDEX_AUTH_TOKENS) */
} fx;

static const char READ_TOKEN[] = "read-token-0123456789abcdef";
static const char WRITE_TOKEN[] = "write-token-0123456789abcdef";
static const char ADMIN_TOKEN[] = "admin-token-0123456789abcdef";
static const char EXPIRED_TOKEN[] = "expired-token-0123456789abcdef";
static const char LATE_TOKEN[] = "late-token-0123456789abcdef";

static int setup(void **state)
{
    fx *f = calloc(1, sizeof(*f));
    sx_h_tmpdir(f->dir, sizeof(f->dir), "security");
    snprintf(f->tokens, sizeof(f->tokens), "%s/tokens", f->dir);
    char text[1024];
    int n = snprintf(text, sizeof(text),
                     "# test tokens\nreader read %s\nwriter write %s\nadmin admin %s\n"
                     "old read %s 2001-01-01T00:00:00Z\n",
                     READ_TOKEN, WRITE_TOKEN, ADMIN_TOKEN, EXPIRED_TOKEN);
    if (sx_file_write_atomic(f->tokens, text, (size_t)n, NULL) != SX_OK)
        return -1;
    /* The daemons take it from their environment (the flag's variable), and
     * limits low enough to see (nodes are exempt from them). */
    setenv("SHARDEX_AUTH_TOKENS", f->tokens, 1);
    setenv("SHARDEX_MAX_CALLS_PER_CLIENT", "4", 1);
    setenv("SHARDEX_MAX_DEADLINE", "3s", 1);
    sx_cluster_opts o = {
        .workers = 1, .partitions = 2, .replication = 1, .min_isr = 1, .tls = true};
    f->c = calloc(1, sizeof(*f->c));
    bool ok = sx_cluster_start(f->c, &o);
    unsetenv("SHARDEX_AUTH_TOKENS");
    unsetenv("SHARDEX_MAX_CALLS_PER_CLIENT");
    unsetenv("SHARDEX_MAX_DEADLINE");
    *state = f;
    return ok ? 0 : -1;
}

static int teardown(void **state)
{
    fx *f = *state;
    sx_cluster_kill_all(f->c);
    sx_cluster_stop(f->c);
    free(f->c);
    sx_h_tmpdir_done(f->dir);
    free(f);
    return 0;
}

/* A client as one identity: the cluster's CA (or none: plaintext), a client
 * certificate of certs_dir/name (NULL: none), a token (NULL: none). */
static sx_rpc_client *client_as(const char *ca, const char *certs_dir, const char *name,
                                const char *token)
{
    char cert[400], key[400];
    sx_rpc_tls tls = {.ca_file = ca};
    if (name) {
        snprintf(cert, sizeof(cert), "%s/%s.pem", certs_dir, name);
        snprintf(key, sizeof(key), "%s/%s.key", certs_dir, name);
        tls.cert_file = cert;
        tls.key_file = key;
    }
    sx_rpc_client_opts o = {.faults = "", .tls = ca ? &tls : NULL, .token = token};
    sx_rpc_client *rpc = NULL;
    sx_err err = {0};
    if (sx_rpc_client_create(&o, &rpc, &err) != SX_OK)
        fail_msg("client: %s", err.msg);
    return rpc;
}

static const char *cluster_ca(const fx *f, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s/ca.pem", f->c->certs);
    return buf;
}

static sx_status call(sx_rpc_client *rpc, const char *addr, const ProtobufCServiceDescriptor *svc,
                      const char *method, const ProtobufCMessage *req, sx_err *err)
{
    ProtobufCMessage *resp = NULL;
    sx_rpc_call_opts o = {.timeout_ms = 5000};
    sx_status st = sx_rpc_invoke(rpc, addr, svc, method, req, &resp, &o, err);
    sx_rpc_free(resp);
    return st;
}

static sx_status put(sx_rpc_client *rpc, const char *addr, const char *id, sx_err *err)
{
    return sx_q_put_one(rpc, addr, id, "x", 5000, err);
}

static sx_status get(sx_rpc_client *rpc, const char *addr, const char *id, bool *found, sx_err *err)
{
    Shardex__V1__GetRequest req = SHARDEX__V1__GET_REQUEST__INIT;
    req.id = (char *)id;
    ProtobufCMessage *resp = NULL;
    sx_rpc_call_opts o = {.timeout_ms = 5000};
    sx_status st = sx_rpc_invoke(rpc, addr, SHARDEX, "Get", &req.base, &resp, &o, err);
    if (st == SX_OK && found)
        *found = ((Shardex__V1__GetResponse *)resp)->found;
    sx_rpc_free(resp);
    return st;
}

static sx_status create_index(sx_rpc_client *rpc, const char *addr, const char *name, sx_err *err)
{
    Shardex__V1__IndexSpec spec = SHARDEX__V1__INDEX_SPEC__INIT;
    spec.name = (char *)name;
    spec.field = (char *)"v";
    spec.type = SHARDEX__V1__VALUE_TYPE__VALUE_TYPE_STRING;
    spec.local = true;
    Shardex__V1__CreateIndexRequest req = SHARDEX__V1__CREATE_INDEX_REQUEST__INIT;
    req.spec = &spec;
    return call(rpc, addr, SHARDEX, "CreateIndex", &req.base, err);
}

static sx_status list_indexes(sx_rpc_client *rpc, const char *addr, sx_err *err)
{
    Shardex__V1__ListIndexesRequest req = SHARDEX__V1__LIST_INDEXES_REQUEST__INIT;
    return call(rpc, addr, SHARDEX, "ListIndexes", &req.base, err);
}

static sx_status health(sx_rpc_client *rpc, const char *addr, sx_err *err)
{
    Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    return call(rpc, addr, &grpc__health__v1__health__descriptor, "Check", &req.base, err);
}

/* The document id is absent, as the node (the harness's client) reads it. */
static void assert_not_written(fx *f, const char *id)
{
    bool found = true;
    sx_err err = {0};
    sx_rpc_client *node = f->c->rpc;
    if (get(node, f->c->worker_addr[0], id, &found, &err) != SX_OK)
        SX_FX_FAIL(f->c, "Get %s as the node: %s", id, err.msg);
    if (found)
        SX_FX_FAIL(f->c, "%s was written by a call that was refused", id);
}

#define EXPECT(f, got, want, err, what)                                                            \
    do {                                                                                           \
        sx_status g_ = (got);                                                                      \
        if (g_ != (want))                                                                          \
            SX_FX_FAIL((f)->c, "%s: %s (%s), expected %s", (what), sx_status_name(g_), (err).msg,  \
                       sx_status_name(want));                                                      \
    } while (0)

static void test_transport(void **state)
{
    fx *f = *state;
    const char *w = f->c->worker_addr[0];
    sx_err err = {0};
    /* Plaintext against a TLS listener: no handshake, no call. */
    sx_rpc_client *plain = client_as(NULL, NULL, NULL, NULL);
    EXPECT(f, put(plain, w, "sec-plain", &err), SX_UNAVAILABLE, err, "plaintext Put");
    EXPECT(f, health(plain, w, &err), SX_UNAVAILABLE, err, "plaintext health check");
    sx_rpc_client_destroy(plain);
    /* A certificate from another CA (an admin one, even): the worker does
     * not accept it. */
    char other[300], ca[400];
    snprintf(other, sizeof(other), "%s/other-ca", f->dir);
    assert_true(sx_cluster_certs(other, (const char *const[]){"ca", NULL}));
    assert_true(sx_cluster_certs(other, (const char *const[]){"client", "admin", "mallory", NULL}));
    sx_rpc_client *foreign = client_as(cluster_ca(f, ca, sizeof(ca)), other, "mallory", NULL);
    EXPECT(f, put(foreign, w, "sec-foreign", &err), SX_UNAVAILABLE, err,
           "Put with another CA's certificate");
    sx_rpc_client_destroy(foreign);
    assert_not_written(f, "sec-plain");
    assert_not_written(f, "sec-foreign");
}

static void test_tokens(void **state)
{
    fx *f = *state;
    const char *w = f->c->worker_addr[0], *coord = f->c->coord_addr;
    char ca[400];
    cluster_ca(f, ca, sizeof(ca));
    sx_err err = {0};

    sx_rpc_client *anon = client_as(ca, NULL, NULL, NULL);
    EXPECT(f, get(anon, w, "sec-x", NULL, &err), SX_UNAUTHENTICATED, err, "Get without identity");
    EXPECT(f, health(anon, w, &err), SX_OK, err, "health check without identity");
    EXPECT(f, health(anon, coord, &err), SX_OK, err, "coordinator health check without identity");
    sx_rpc_client_destroy(anon);

    sx_rpc_client *reader = client_as(ca, NULL, NULL, READ_TOKEN);
    EXPECT(f, get(reader, w, "sec-x", NULL, &err), SX_OK, err, "Get with a read token");
    EXPECT(f, list_indexes(reader, w, &err), SX_OK, err, "ListIndexes with a read token");
    EXPECT(f, put(reader, w, "sec-read", &err), SX_PERMISSION_DENIED, err, "Put with a read token");
    assert_non_null(strstr(err.msg, "write"));
    EXPECT(f, create_index(reader, w, "sec_ix_read", &err), SX_PERMISSION_DENIED, err,
           "CreateIndex with a read token");
    sx_rpc_client_destroy(reader);
    assert_not_written(f, "sec-read");

    sx_rpc_client *writer = client_as(ca, NULL, NULL, WRITE_TOKEN);
    EXPECT(f, put(writer, w, "sec-write", &err), SX_OK, err, "Put with a write token");
    EXPECT(f, create_index(writer, w, "sec_ix_write", &err), SX_PERMISSION_DENIED, err,
           "CreateIndex with a write token");
    sx_rpc_client_destroy(writer);

    sx_rpc_client *admin = client_as(ca, NULL, NULL, ADMIN_TOKEN);
    EXPECT(f, create_index(admin, w, "sec_ix_admin", &err), SX_OK, err,
           "CreateIndex with an admin token");
    /* A range index without split points: the worker samples the data as
     * itself (a node), not as the admin, who may not call WorkerAdmin. */
    EXPECT(f, sx_q_put_one(admin, w, "sec-admin-b", "b", 5000, &err), SX_OK, err,
           "Put with an admin token");
    Shardex__V1__IndexSpec spec = SHARDEX__V1__INDEX_SPEC__INIT;
    spec.name = "sec_ix_range";
    spec.field = "v";
    spec.type = SHARDEX__V1__VALUE_TYPE__VALUE_TYPE_STRING;
    spec.global = true;
    spec.partitioning = SHARDEX__V1__PARTITIONING__PARTITIONING_RANGE;
    spec.term_partitions = 2;
    Shardex__V1__CreateIndexRequest cr = SHARDEX__V1__CREATE_INDEX_REQUEST__INIT;
    cr.spec = &spec;
    ProtobufCMessage *resp = NULL;
    sx_rpc_call_opts co = {.timeout_ms = 5000};
    EXPECT(f, sx_rpc_invoke(admin, w, SHARDEX, "CreateIndex", &cr.base, &resp, &co, &err), SX_OK,
           err, "CreateIndex of a range index without split points with an admin token");
    const Shardex__V1__IndexSpec *got = ((Shardex__V1__CreateIndexResponse *)resp)->index->spec;
    if (got->n_split_points != 1 || strcmp(got->split_points[0]->s, "x") != 0)
        SX_FX_FAIL(f->c, "sec_ix_range: %zu split points, want one at x (values b, x)",
                   got->n_split_points);
    sx_rpc_free(resp);
    Shardex__Internal__V1__GetMapRequest gm = SHARDEX__INTERNAL__V1__GET_MAP_REQUEST__INIT;
    EXPECT(f,
           call(admin, coord, &shardex__internal__v1__coordinator__descriptor, "GetMap", &gm.base,
                &err),
           SX_PERMISSION_DENIED, err, "Coordinator.GetMap with an admin token");
    sx_rpc_client_destroy(admin);

    sx_rpc_client *unknown = client_as(ca, NULL, NULL, "nobody-knows-this-token-0123");
    EXPECT(f, get(unknown, w, "sec-x", NULL, &err), SX_UNAUTHENTICATED, err, "an unknown token");
    sx_rpc_client_destroy(unknown);
    sx_rpc_client *expired = client_as(ca, NULL, NULL, EXPIRED_TOKEN);
    EXPECT(f, get(expired, w, "sec-x", NULL, &err), SX_UNAUTHENTICATED, err, "an expired token");
    assert_non_null(strstr(err.msg, "expired"));
    sx_rpc_client_destroy(expired);
}

static void test_client_certificates(void **state)
{
    fx *f = *state;
    const char *w = f->c->worker_addr[0], *coord = f->c->coord_addr;
    char ca[400];
    cluster_ca(f, ca, sizeof(ca));
    sx_err err = {0};
    assert_true(
        sx_cluster_certs(f->c->certs, (const char *const[]){"client", "read", "rita", NULL}));
    assert_true(
        sx_cluster_certs(f->c->certs, (const char *const[]){"client", "write", "walt", NULL}));
    assert_true(
        sx_cluster_certs(f->c->certs, (const char *const[]){"client", "admin", "ada", NULL}));

    sx_rpc_client *rita = client_as(ca, f->c->certs, "rita", NULL);
    EXPECT(f, get(rita, w, "sec-x", NULL, &err), SX_OK, err, "Get with a read certificate");
    EXPECT(f, put(rita, w, "sec-rita", &err), SX_PERMISSION_DENIED, err,
           "Put with a read certificate");
    sx_rpc_client_destroy(rita);
    assert_not_written(f, "sec-rita");

    sx_rpc_client *walt = client_as(ca, f->c->certs, "walt", NULL);
    EXPECT(f, put(walt, w, "sec-walt", &err), SX_OK, err, "Put with a write certificate");
    sx_rpc_client_destroy(walt);

    /* An admin client is still no node: the internal services refuse it. */
    sx_rpc_client *ada = client_as(ca, f->c->certs, "ada", NULL);
    EXPECT(f, create_index(ada, w, "sec_ix_ada", &err), SX_OK, err,
           "CreateIndex with an admin certificate");
    Shardex__Internal__V1__SetFaultsRequest sf = SHARDEX__INTERNAL__V1__SET_FAULTS_REQUEST__INIT;
    sf.spec = (char *)"seed=1;fail=1";
    EXPECT(
        f,
        call(ada, w, &shardex__internal__v1__worker_admin__descriptor, "SetFaults", &sf.base, &err),
        SX_PERMISSION_DENIED, err, "WorkerAdmin.SetFaults with an admin certificate");
    Shardex__Internal__V1__ReadRequest rr = SHARDEX__INTERNAL__V1__READ_REQUEST__INIT;
    rr.id = (char *)"sec-walt";
    EXPECT(f, call(ada, w, &shardex__internal__v1__replication__descriptor, "Read", &rr.base, &err),
           SX_PERMISSION_DENIED, err, "Replication.Read with an admin certificate");
    Shardex__Internal__V1__GetMapRequest gm = SHARDEX__INTERNAL__V1__GET_MAP_REQUEST__INIT;
    EXPECT(
        f,
        call(ada, coord, &shardex__internal__v1__coordinator__descriptor, "GetMap", &gm.base, &err),
        SX_PERMISSION_DENIED, err, "Coordinator.GetMap with an admin certificate");
    sx_rpc_client_destroy(ada);
}

typedef struct late_arg {
    fx *f;
    sx_rpc_client *rpc;
} late_arg;

static bool late_token_accepted(void *arg)
{
    late_arg *a = arg;
    sx_err err = {0};
    return get(a->rpc, a->f->c->worker_addr[0], "sec-x", NULL, &err) == SX_OK;
}

/* ------------------------------------------------ limits per token holder -- */

typedef struct tally {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done, refused, expired, other;
} tally;

static void tally_done(sx_status st, const sx_err *err, ProtobufCMessage *resp, void *arg)
{
    (void)err;
    tally *t = arg;
    sx_rpc_free(resp);
    pthread_mutex_lock(&t->mu);
    t->refused += st == SX_RESOURCE_EXHAUSTED;
    t->expired += st == SX_DEADLINE_EXCEEDED;
    t->other += st != SX_RESOURCE_EXHAUSTED && st != SX_DEADLINE_EXCEEDED;
    t->done++;
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
}

/* One token over two connections is one client: 12 waiting Gets, 6 on each,
 * against max-calls-per-client 4 get at most 4 in (each held to the 3 s
 * max-deadline), where two connections counted apart would let in 8. */
static void test_limit_counts_a_token_over_connections(void **state)
{
    fx *f = *state;
    char ca[400];
    cluster_ca(f, ca, sizeof(ca));
    sx_rpc_client *c1 = client_as(ca, NULL, NULL, READ_TOKEN);
    sx_rpc_client *c2 = client_as(ca, NULL, NULL, READ_TOKEN);
    Shardex__V1__WriteToken tok[2], *toks[2];
    for (uint32_t p = 0; p < 2; p++) {
        tok[p] = (Shardex__V1__WriteToken)SHARDEX__V1__WRITE_TOKEN__INIT;
        tok[p].partition = p;
        tok[p].offset = 1000000000; /* never reached: the read waits out its deadline */
        toks[p] = &tok[p];
    }
    Shardex__V1__GetRequest req = SHARDEX__V1__GET_REQUEST__INIT;
    req.id = (char *)"sec-wait";
    req.after = toks;
    req.n_after = 2;
    tally t = {.mu = PTHREAD_MUTEX_INITIALIZER};
    pthread_cond_init(&t.cv, NULL);
    sx_rpc_call_opts o = {.timeout_ms = 20000};
    for (int i = 0; i < 12; i++)
        sx_rpc_invoke_async(i % 2 ? c2 : c1, f->c->worker_addr[0], SHARDEX, "Get", &req.base, &o,
                            tally_done, &t);
    pthread_mutex_lock(&t.mu);
    while (t.done < 12)
        pthread_cond_wait(&t.cv, &t.mu);
    pthread_mutex_unlock(&t.mu);
    fprintf(stderr, "one token, two connections: %d refused, %d let in, %d other\n", t.refused,
            t.expired, t.other);
    if (t.other || t.expired > 4 || t.refused < 8)
        SX_FX_FAIL(f->c,
                   "12 waiting Gets with one token over two connections: %d let in, %d "
                   "refused, %d other; the limit is 4 per token holder",
                   t.expired, t.refused, t.other);
    pthread_cond_destroy(&t.cv);
    sx_rpc_client_destroy(c1);
    sx_rpc_client_destroy(c2);
}

typedef struct log_arg {
    fx *f;
    const char *text;
} log_arg;

/* The worker's log has text. */
static bool worker_logged(void *arg)
{
    log_arg *a = arg;
    char path[400];
    snprintf(path, sizeof(path), "%s/w0.log", a->f->c->dir);
    sx_buf b = {0};
    bool found = false;
    bool has = sx_file_read(path, 64u << 20, &b, &found, NULL) == SX_OK && found &&
               memmem(b.data, b.len, a->text, strlen(a->text));
    sx_buf_free(&b);
    return has;
}

static void test_tokens_reload_on_sighup(void **state)
{
    fx *f = *state;
    char ca[400];
    cluster_ca(f, ca, sizeof(ca));
    sx_err err = {0};
    sx_rpc_client *late = client_as(ca, NULL, NULL, LATE_TOKEN);
    EXPECT(f, get(late, f->c->worker_addr[0], "sec-x", NULL, &err), SX_UNAUTHENTICATED, err,
           "a token not yet in the file");
    /* A bad file is refused whole: the tokens in force stay. */
    const char bad[] = "reader read short\n";
    assert_int_equal(sx_file_write_atomic(f->tokens, bad, sizeof(bad) - 1, NULL), SX_OK);
    kill(f->c->worker_pid[0], SIGHUP);
    log_arg la = {f, "tokens not reloaded"};
    SX_FX_WAIT(f->c, worker_logged, &la, WAIT_MS, "the worker did not refuse the bad tokens file");
    sx_rpc_client *writer = client_as(ca, NULL, NULL, WRITE_TOKEN);
    char text[1024];
    int n =
        snprintf(text, sizeof(text), "writer write %s\nlate read %s\n", WRITE_TOKEN, LATE_TOKEN);
    /* The worker read the bad file (or will): the old tokens still work. */
    EXPECT(f, put(writer, f->c->worker_addr[0], "sec-after-bad", &err), SX_OK, err,
           "the write token after a bad tokens file");
    assert_int_equal(sx_file_write_atomic(f->tokens, text, (size_t)n, NULL), SX_OK);
    kill(f->c->worker_pid[0], SIGHUP);
    late_arg a = {f, late};
    SX_FX_WAIT(f->c, late_token_accepted, &a, WAIT_MS,
               "the token added to the file was not accepted after SIGHUP");
    sx_rpc_client_destroy(writer);
    sx_rpc_client_destroy(late);
}

int main(void)
{
    sx_fx_seed();
    sx_fx_filter_from_env();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_transport),
        cmocka_unit_test(test_tokens),
        cmocka_unit_test(test_client_certificates),
        cmocka_unit_test(test_limit_counts_a_token_over_connections),
        cmocka_unit_test(test_tokens_reload_on_sighup),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
