/* test_limits.c: a worker's limits (issue 16; --max-calls-per-client,
 * --max-message-size, --max-deadline; docs/security.md) against real
 * processes: a coordinator and one worker, the worker restarted with
 * SHARDEX_MAX_CALLS_PER_CLIENT=4, SHARDEX_MAX_MESSAGE_SIZE=1MiB and
 * SHARDEX_MAX_DEADLINE=1s in its environment (the flags' variables).
 *
 * A flood: client A (a connection of its own) starts 40 Gets at once, each
 * waiting for an offset that never comes, with a 20 s deadline. At most 4 are
 * in flight for it: the rest are refused at once with RESOURCE_EXHAUSTED, and
 * those let in end with DEADLINE_EXCEEDED after the worker's 1 s, not the
 * client's 20 s. Meanwhile client B (another connection) reads: every one of
 * its calls is answered (its latency is printed, not judged). A request past
 * the message limit is RESOURCE_EXHAUSTED, and the worker serves on.
 */
#include "clock.h"
#include "cluster.h"
#include "fixture.h"
#include "harness.h"
#include "query.h"
#include "shardex/v1/shardex.pb-c.h"

#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define WAIT_MS 30000
#define FLOOD 40
#define LIMIT 4
#define FLOOD_DEADLINE_MS 20000
#define SHARDEX (&shardex__v1__shardex__descriptor)

/* Worker 0 itself knows it joined (its map and lease): the coordinator's map
 * says it is alive as soon as it registered, a moment before the worker has
 * read the answer and would serve a Get. */
static bool joined(void *arg)
{
    Shardex__Internal__V1__WorkerStatusResponse *s = sx_cluster_worker_status(arg, 0);
    bool ok = s && s->lease_valid && s->map_version > 0;
    sx_rpc_free(s ? &s->base : NULL);
    return ok;
}

static int setup(void **state)
{
    sx_cluster_opts o = {.workers = 1, .partitions = 2, .replication = 1, .min_isr = 1};
    sx_cluster *c = calloc(1, sizeof(*c));
    *state = c;
    if (!sx_cluster_start(c, &o))
        return -1;
    sx_cluster_kill_worker(c, 0);
    static const char *const env[] = {"SHARDEX_MAX_CALLS_PER_CLIENT=4",
                                      "SHARDEX_MAX_MESSAGE_SIZE=1MiB", "SHARDEX_MAX_DEADLINE=1s",
                                      NULL};
    return sx_cluster_start_worker_env(c, 0, env) && sx_cluster_wait_alive(c, 0, WAIT_MS) &&
                   sx_h_wait_for(joined, c, WAIT_MS)
               ? 0
               : -1;
}

/* A client of its own connection; over TLS (SHARDEX_TEST_TLS=1) one of its
 * own identity with that role (a node's calls are not limited). */
static sx_rpc_client *own_client(sx_cluster *c, const char *role, const char *name)
{
    char cert[400], key[400], ca[400];
    sx_rpc_tls tls = {cert, key, ca};
    if (c->opts.tls) {
        assert_true(sx_cluster_certs(c->certs, (const char *const[]){"client", role, name, NULL}));
        snprintf(cert, sizeof(cert), "%s/%s.pem", c->certs, name);
        snprintf(key, sizeof(key), "%s/%s.key", c->certs, name);
        snprintf(ca, sizeof(ca), "%s/ca.pem", c->certs);
    }
    sx_rpc_client_opts o = {
        .faults = "", .max_message_bytes = 8u << 20, .tls = c->opts.tls ? &tls : NULL};
    sx_rpc_client *rpc = NULL;
    assert_int_equal(sx_rpc_client_create(&o, &rpc, NULL), SX_OK);
    return rpc;
}

/* ----------------------------------------------------------------- flood -- */

typedef struct flood {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
    int refused, expired, other;
    uint64_t slowest_expired_ms;
    char other_msg[256];
    uint64_t t0;
} flood;

static void flood_done(sx_status st, const sx_err *err, ProtobufCMessage *resp, void *arg)
{
    flood *fl = arg;
    sx_rpc_free(resp);
    pthread_mutex_lock(&fl->mu);
    uint64_t ms = sx_clock_now_ms() - fl->t0;
    if (st == SX_RESOURCE_EXHAUSTED) {
        fl->refused++;
    } else if (st == SX_DEADLINE_EXCEEDED) {
        fl->expired++;
        if (ms > fl->slowest_expired_ms)
            fl->slowest_expired_ms = ms;
    } else if (fl->other++ == 0) {
        snprintf(fl->other_msg, sizeof(fl->other_msg), "%s: %s", sx_status_name(st),
                 err ? err->msg : "(answered)");
    }
    fl->done++;
    pthread_cond_broadcast(&fl->cv);
    pthread_mutex_unlock(&fl->mu);
}

static void get_request(Shardex__V1__GetRequest *req, Shardex__V1__WriteToken *tok,
                        Shardex__V1__WriteToken **toks, const char *id, bool wait)
{
    *req = (Shardex__V1__GetRequest)SHARDEX__V1__GET_REQUEST__INIT;
    req->id = (char *)id;
    if (!wait)
        return;
    /* An offset no partition reaches: the read waits for it until its deadline. */
    for (uint32_t p = 0; p < 2; p++) {
        tok[p] = (Shardex__V1__WriteToken)SHARDEX__V1__WRITE_TOKEN__INIT;
        tok[p].partition = p;
        tok[p].offset = 1000000000;
        toks[p] = &tok[p];
    }
    req->after = toks;
    req->n_after = 2;
}

static void test_flood_from_one_client_spares_the_others(void **state)
{
    sx_cluster *c = *state;
    const char *w = c->worker_addr[0];
    sx_rpc_client *a = own_client(c, "read", "flooder"), *b = own_client(c, "read", "bystander");
    sx_err err = {0};
    Shardex__V1__GetRequest req;
    Shardex__V1__WriteToken tok[2], *toks[2];
    /* B's connection is up before the flood. */
    get_request(&req, tok, toks, "lim-b", false);
    ProtobufCMessage *resp = NULL;
    sx_rpc_call_opts bo = {.timeout_ms = 10000};
    if (sx_rpc_invoke(b, w, SHARDEX, "Get", &req.base, &resp, &bo, &err) != SX_OK)
        SX_FX_FAIL(c, "B's first Get: %s", err.msg);
    sx_rpc_free(resp);

    flood fl = {.mu = PTHREAD_MUTEX_INITIALIZER, .t0 = sx_clock_now_ms()};
    pthread_cond_init(&fl.cv, NULL);
    get_request(&req, tok, toks, "lim-a", true);
    sx_rpc_call_opts ao = {.timeout_ms = FLOOD_DEADLINE_MS};
    for (int i = 0; i < FLOOD; i++)
        sx_rpc_invoke_async(a, w, SHARDEX, "Get", &req.base, &ao, flood_done, &fl);

    /* B reads while A's calls hold their slots. */
    int b_calls = 0;
    uint64_t b_max = 0, b_sum = 0;
    get_request(&req, tok, toks, "lim-b", false);
    for (;;) {
        pthread_mutex_lock(&fl.mu);
        bool flooding = fl.done < FLOOD;
        pthread_mutex_unlock(&fl.mu);
        if (!flooding && b_calls >= 20)
            break;
        uint64_t t = sx_clock_now_ms();
        if (sx_rpc_invoke(b, w, SHARDEX, "Get", &req.base, &resp, &bo, &err) != SX_OK)
            SX_FX_FAIL(c, "client B's Get %d during A's flood: %s: %s", b_calls,
                       sx_status_name(err.code), err.msg);
        sx_rpc_free(resp);
        uint64_t ms = sx_clock_now_ms() - t;
        b_sum += ms;
        b_max = ms > b_max ? ms : b_max;
        b_calls++;
        sx_clock_sleep_ms(10);
    }
    pthread_mutex_lock(&fl.mu);
    while (fl.done < FLOOD)
        pthread_cond_wait(&fl.cv, &fl.mu);
    pthread_mutex_unlock(&fl.mu);
    fprintf(stderr,
            "flood of %d from A: %d refused (RESOURCE_EXHAUSTED), %d cut at the worker's "
            "deadline (slowest after %" PRIu64 " ms); B: %d Gets answered, mean %" PRIu64
            " ms, max %" PRIu64 " ms\n",
            FLOOD, fl.refused, fl.expired, fl.slowest_expired_ms, b_calls,
            b_calls ? b_sum / (uint64_t)b_calls : 0, b_max);
    if (fl.other)
        SX_FX_FAIL(c, "%d of A's calls ended otherwise, the first: %s", fl.other, fl.other_msg);
    if (fl.refused == 0 || fl.expired < LIMIT)
        SX_FX_FAIL(c, "A's flood: %d refused, %d let in: the limit of %d did not act", fl.refused,
                   fl.expired, LIMIT);
    /* Let in, they ended at the worker's max-deadline, far before their own. */
    if (fl.slowest_expired_ms >= FLOOD_DEADLINE_MS / 2)
        SX_FX_FAIL(c, "a call let in lasted %" PRIu64 " ms: max-deadline (1 s) did not cut it",
                   fl.slowest_expired_ms);
    pthread_cond_destroy(&fl.cv);
    sx_rpc_client_destroy(a);
    sx_rpc_client_destroy(b);
}

static void test_message_limit(void **state)
{
    sx_cluster *c = *state;
    const char *w = c->worker_addr[0];
    sx_rpc_client *b = own_client(c, "write", "writer");
    size_t n = 2u << 20;
    char *big = malloc(n + 1);
    memset(big, 'x', n);
    big[n] = '\0';
    sx_err err = {0};
    sx_status st = sx_q_put_one(b, w, "lim-big", big, 10000, &err);
    free(big);
    ProtobufCMessage *resp = NULL;
    sx_rpc_call_opts o = {.timeout_ms = 10000};
    if (st != SX_RESOURCE_EXHAUSTED)
        SX_FX_FAIL(c, "a 2 MiB Put to a worker with max-message-size 1MiB: %s (%s)",
                   sx_status_name(st), err.msg);
    Shardex__V1__GetRequest get = SHARDEX__V1__GET_REQUEST__INIT;
    get.id = (char *)"lim-big";
    if (sx_rpc_invoke(b, w, SHARDEX, "Get", &get.base, &resp, &o, &err) != SX_OK)
        SX_FX_FAIL(c, "Get after the refused Put: %s", err.msg);
    if (((Shardex__V1__GetResponse *)resp)->found)
        SX_FX_FAIL(c, "the refused Put was written");
    sx_rpc_free(resp);
    sx_rpc_client_destroy(b);
}

int main(void)
{
    sx_fx_seed();
    sx_fx_filter_from_env();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flood_from_one_client_spares_the_others),
        cmocka_unit_test(test_message_limit),
    };
    return cmocka_run_group_tests(tests, setup, sx_fx_cluster_teardown);
}
