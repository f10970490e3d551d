/* test_rpc_stream.c: client streams of the rpc layer (sx_rpc_stream_*)
 * against the echo_server program as a real process: every message of a
 * server stream in order, cancel mid-stream (the server sees it), a deadline,
 * the server stopping or killed, many streams at once, bad opens, and a
 * stream destroyed from its own callback. The bidirectional part (etcd's
 * keepalive and watch) is in test_etcd.c. Runs under ASan too (label asan).
 */
#include "clock.h"
#include "fixture.h"
#include "harness.h"
#include "rpc.h"
#include "shardex/testing/v1/echo.pb-c.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define ECHO_SVC (&shardex__testing__v1__echo__descriptor)
typedef Shardex__Testing__V1__EchoResponse EchoResponse;

/* ---------------------------------------------------------- echo_server -- */

typedef struct server {
    char dir[256], log[300], addr[64];
    pid_t pid;
} server;

static void server_start(server *sv)
{
    sx_h_tmpdir(sv->dir, sizeof(sv->dir), "rpcstream");
    char port_file[300];
    snprintf(port_file, sizeof(port_file), "%s/port", sv->dir);
    snprintf(sv->log, sizeof(sv->log), "%s/echo.log", sv->dir);
    char *argv[] = {SX_BUILD_DIR "/tests/echo_server",
                    "--listen",
                    "127.0.0.1:0",
                    "--port-file",
                    port_file,
                    NULL};
    sv->pid = sx_h_spawn(argv, sv->log);
    int port = sx_h_wait_port_file(port_file, sv->pid, 10000);
    if (port <= 0) {
        sx_h_dump_log(sv->log, 40);
        fail_msg("echo_server did not start");
    }
    snprintf(sv->addr, sizeof(sv->addr), "127.0.0.1:%d", port);
}

static void server_done(server *sv)
{
    if (sv->pid > 0)
        sx_h_kill9(sv->pid);
    sv->pid = 0;
    sx_h_tmpdir_done(sv->dir);
}

typedef struct fixture {
    server sv;
    sx_rpc_client *cli;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    server_start(&f->sv);
    sx_rpc_client_opts co = {.faults = ""};
    sx_err err = {0};
    assert_int_equal(sx_rpc_client_create(&co, &f->cli, &err), SX_OK);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    sx_rpc_client_destroy(f->cli);
    server_done(&f->sv);
    free(f);
    return 0;
}

/* --------------------------------------------- what one stream received -- */

typedef struct rx {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t n;        /* messages */
    uint64_t last;     /* calls of the last one */
    bool out_of_order; /* calls was not last + 1 */
    bool bad_payload;
    char payload[32];
    int ends; /* on_end runs */
    sx_status st;
    sx_err err;
    sx_rpc_stream *destroy_at; /* destroyed from on_msg at message `destroy_after` */
    uint64_t destroy_after;
} rx;

static void rx_init(rx *r, const char *payload)
{
    memset(r, 0, sizeof(*r));
    pthread_mutex_init(&r->mu, NULL);
    sx_cond_init_monotonic(&r->cv);
    snprintf(r->payload, sizeof(r->payload), "%s", payload);
}

static void rx_free(rx *r)
{
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
}

static void rx_msg(void *arg, ProtobufCMessage *msg)
{
    rx *r = arg;
    EchoResponse *m = (EchoResponse *)msg;
    pthread_mutex_lock(&r->mu);
    if (m->calls != r->last + 1)
        r->out_of_order = true;
    if (m->payload.len != strlen(r->payload) ||
        (m->payload.len && memcmp(m->payload.data, r->payload, m->payload.len) != 0))
        r->bad_payload = true;
    r->last = m->calls;
    r->n++;
    bool destroy = r->destroy_at && r->n == r->destroy_after;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    sx_rpc_free(msg);
    if (destroy)
        sx_rpc_stream_destroy(r->destroy_at);
}

static void rx_end(void *arg, sx_status st, const sx_err *err)
{
    rx *r = arg;
    pthread_mutex_lock(&r->mu);
    r->ends++;
    r->st = st;
    r->err = *err;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

/* Waits until r has n messages (or ended, when n is 0); false at timeout. */
static bool rx_wait(rx *r, uint64_t n, uint64_t timeout_ms)
{
    uint64_t until = sx_clock_now_ms() + timeout_ms;
    pthread_mutex_lock(&r->mu);
    while ((n ? r->n < n && !r->ends : !r->ends) && sx_clock_now_ms() < until)
        sx_cond_wait_ms(&r->cv, &r->mu, 50);
    bool ok = n ? r->n >= n : r->ends > 0;
    pthread_mutex_unlock(&r->mu);
    return ok;
}

/* Opens a Count stream (the request sent, the sending side closed). */
static sx_rpc_stream *count_open(sx_rpc_client *cli, const char *addr, rx *r, uint32_t count,
                                 uint32_t interval_ms, uint64_t timeout_ms)
{
    sx_rpc_stream_opts o = {.timeout_ms = timeout_ms, .on_msg = rx_msg, .on_end = rx_end, .arg = r};
    sx_rpc_stream *s = NULL;
    sx_err err = {0};
    assert_int_equal(sx_rpc_stream_open(cli, addr, ECHO_SVC, "Count", &o, &s, &err), SX_OK);
    Shardex__Testing__V1__CountRequest req = SHARDEX__TESTING__V1__COUNT_REQUEST__INIT;
    req.count = count;
    req.interval_ms = interval_ms;
    req.payload.data = (uint8_t *)r->payload;
    req.payload.len = strlen(r->payload);
    assert_int_equal(sx_rpc_stream_send(s, &req.base), SX_OK);
    assert_int_equal(sx_rpc_stream_close_send(s), SX_OK);
    /* Half-closed: nothing more goes. */
    assert_int_equal(sx_rpc_stream_send(s, &req.base), SX_CANCELLED);
    return s;
}

static Shardex__Testing__V1__StreamStatsResponse *stats(fixture *f)
{
    Shardex__Testing__V1__StreamStatsRequest req = SHARDEX__TESTING__V1__STREAM_STATS_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    sx_err err = {0};
    assert_int_equal(
        sx_rpc_invoke(f->cli, f->sv.addr, ECHO_SVC, "StreamStats", &req.base, &resp, NULL, &err),
        SX_OK);
    return (Shardex__Testing__V1__StreamStatsResponse *)resp;
}

typedef struct stats_want {
    fixture *f;
    uint64_t cancelled, completed;
} stats_want;

static bool stats_reached(void *arg)
{
    stats_want *w = arg;
    Shardex__Testing__V1__StreamStatsResponse *s = stats(w->f);
    bool ok = s->cancelled >= w->cancelled && s->completed >= w->completed && s->open == 0;
    sx_rpc_free(&s->base);
    return ok;
}

/* ----------------------------------------------------------------- tests -- */

static void test_every_message_in_order(void **state)
{
    fixture *f = *state;
    rx r;
    rx_init(&r, "in-order");
    sx_rpc_stream *s = count_open(f->cli, f->sv.addr, &r, 500, 0, 10000);
    assert_true(rx_wait(&r, 0, 10000));
    sx_rpc_stream_destroy(s);
    assert_int_equal(r.ends, 1);
    assert_int_equal(r.st, SX_OK);
    assert_int_equal(r.n, 500);
    assert_false(r.out_of_order);
    assert_false(r.bad_payload);
    stats_want w = {.f = f, .completed = 1};
    assert_true(sx_h_wait_for(stats_reached, &w, 5000));
    rx_free(&r);
}

static void test_cancel_mid_stream(void **state)
{
    fixture *f = *state;
    rx r;
    rx_init(&r, "cancel");
    sx_rpc_stream *s = count_open(f->cli, f->sv.addr, &r, 0, 5, 0); /* forever, no deadline */
    assert_true(rx_wait(&r, 5, 10000));
    sx_rpc_stream_cancel(s);
    sx_rpc_stream_cancel(s); /* idempotent */
    assert_true(rx_wait(&r, 0, 10000));
    assert_int_equal(r.st, SX_CANCELLED);
    uint64_t n = r.n;
    sx_rpc_stream_destroy(s);
    assert_int_equal(r.ends, 1);
    assert_int_equal(r.n, n); /* nothing after the end */
    assert_false(r.out_of_order);
    /* The server's handler was told and ended its stream as cancelled. */
    stats_want w = {.f = f, .cancelled = 1};
    assert_true(sx_h_wait_for(stats_reached, &w, 5000));
    rx_free(&r);
}

static void test_deadline(void **state)
{
    fixture *f = *state;
    rx r;
    rx_init(&r, "deadline");
    uint64_t t0 = sx_clock_now_ms();
    sx_rpc_stream *s = count_open(f->cli, f->sv.addr, &r, 0, 10, 300);
    assert_true(rx_wait(&r, 0, 10000));
    uint64_t took = sx_clock_now_ms() - t0;
    sx_rpc_stream_destroy(s);
    assert_int_equal(r.st, SX_DEADLINE_EXCEEDED);
    assert_true(r.n > 0);
    assert_true(took >= 250 && took < 3000);
    stats_want w = {.f = f, .cancelled = 1};
    assert_true(sx_h_wait_for(stats_reached, &w, 5000));
    rx_free(&r);
}

/* A server that stops (SIGTERM: it ends its streams UNAVAILABLE) and one
 * killed (the connection drops: gRPC says UNAVAILABLE). */
static void server_goes(fixture *f, bool kill9)
{
    server sv = {0};
    server_start(&sv);
    rx r;
    rx_init(&r, "stop");
    sx_rpc_stream *s = count_open(f->cli, sv.addr, &r, 0, 5, 0);
    assert_true(rx_wait(&r, 3, 10000));
    if (kill9)
        sx_h_kill9(sv.pid);
    else
        assert_int_equal(sx_h_stop(sv.pid, 10000), 0); /* exit 0 */
    sv.pid = 0;
    assert_true(rx_wait(&r, 0, 10000));
    assert_int_equal(r.st, SX_UNAVAILABLE);
    sx_rpc_stream_destroy(s);
    assert_int_equal(r.ends, 1);
    server_done(&sv);
    rx_free(&r);
}

static void test_server_stops(void **state)
{
    server_goes(*state, false);
}

static void test_server_killed(void **state)
{
    server_goes(*state, true);
}

static void test_nothing_listening(void **state)
{
    fixture *f = *state;
    server sv = {0};
    server_start(&sv);
    char addr[64];
    snprintf(addr, sizeof(addr), "%s", sv.addr);
    server_done(&sv); /* a port nobody listens on now */
    rx r;
    rx_init(&r, "nobody");
    sx_rpc_stream *s = count_open(f->cli, addr, &r, 3, 0, 0);
    assert_true(rx_wait(&r, 0, 10000));
    assert_int_equal(r.st, SX_UNAVAILABLE);
    assert_int_equal(r.n, 0);
    assert_int_equal(
        sx_rpc_stream_send(
            s, &(Shardex__Testing__V1__CountRequest)SHARDEX__TESTING__V1__COUNT_REQUEST__INIT.base),
        SX_CANCELLED);
    sx_rpc_stream_destroy(s);
    rx_free(&r);
}

static void test_many_streams(void **state)
{
    fixture *f = *state;
    enum { STREAMS = 40, COUNT = 50 };
    rx *r = calloc(STREAMS, sizeof(*r));
    sx_rpc_stream **s = calloc(STREAMS, sizeof(*s));
    for (int i = 0; i < STREAMS; i++) {
        char p[32];
        snprintf(p, sizeof(p), "stream-%d", i);
        rx_init(&r[i], p);
        s[i] = count_open(f->cli, f->sv.addr, &r[i], COUNT, 1, 20000);
    }
    for (int i = 0; i < STREAMS; i++) {
        assert_true(rx_wait(&r[i], 0, 20000));
        sx_rpc_stream_destroy(s[i]);
        assert_int_equal(r[i].st, SX_OK);
        assert_int_equal(r[i].n, COUNT);
        assert_false(r[i].out_of_order);
        assert_false(r[i].bad_payload);
        rx_free(&r[i]);
    }
    free(r);
    free(s);
}

static void test_bad_opens(void **state)
{
    fixture *f = *state;
    sx_rpc_stream *s = (sx_rpc_stream *)1;
    sx_err err = {0};
    assert_int_equal(sx_rpc_stream_open(f->cli, f->sv.addr, ECHO_SVC, "Nope", NULL, &s, &err),
                     SX_UNIMPLEMENTED);
    assert_null(s);
    sx_rpc_metadata bad[] = {{"Upper-Case", "x"}};
    sx_rpc_stream_opts o = {.metadata = bad, .nmetadata = 1};
    assert_int_equal(sx_rpc_stream_open(f->cli, f->sv.addr, ECHO_SVC, "Count", &o, &s, &err),
                     SX_INVALID_ARGUMENT);
    /* Good metadata goes; a message of the wrong type does not. */
    sx_rpc_metadata good[] = {{"hasleader", "true"}};
    rx r;
    rx_init(&r, "");
    o = (sx_rpc_stream_opts){
        .metadata = good, .nmetadata = 1, .on_msg = rx_msg, .on_end = rx_end, .arg = &r};
    assert_int_equal(sx_rpc_stream_open(f->cli, f->sv.addr, ECHO_SVC, "Count", &o, &s, &err),
                     SX_OK);
    Shardex__Testing__V1__EchoRequest wrong = SHARDEX__TESTING__V1__ECHO_REQUEST__INIT;
    assert_int_equal(sx_rpc_stream_send(s, &wrong.base), SX_INVALID_ARGUMENT);
    Shardex__Testing__V1__CountRequest req = SHARDEX__TESTING__V1__COUNT_REQUEST__INIT;
    req.count = 2;
    assert_int_equal(sx_rpc_stream_send(s, &req.base), SX_OK);
    assert_true(rx_wait(&r, 0, 10000));
    assert_int_equal(r.st, SX_OK);
    assert_int_equal(r.n, 2);
    sx_rpc_stream_destroy(s);
    sx_rpc_stream_destroy(NULL);
    rx_free(&r);
}

static void test_destroy_from_callback(void **state)
{
    fixture *f = *state;
    rx r;
    rx_init(&r, "self");
    r.destroy_after = 3;
    sx_rpc_stream_opts o = {.on_msg = rx_msg, .on_end = rx_end, .arg = &r};
    sx_err err = {0};
    sx_rpc_stream *s = NULL;
    pthread_mutex_lock(&r.mu); /* destroy_at is set before any message is handled */
    assert_int_equal(sx_rpc_stream_open(f->cli, f->sv.addr, ECHO_SVC, "Count", &o, &s, &err),
                     SX_OK);
    r.destroy_at = s;
    pthread_mutex_unlock(&r.mu);
    Shardex__Testing__V1__CountRequest req = SHARDEX__TESTING__V1__COUNT_REQUEST__INIT;
    req.interval_ms = 5;
    req.payload.data = (uint8_t *)"self";
    req.payload.len = 4;
    assert_int_equal(sx_rpc_stream_send(s, &req.base), SX_OK);
    /* The stream frees itself on its thread; on_end still runs, once. */
    assert_true(rx_wait(&r, 0, 10000));
    assert_int_equal(r.st, SX_CANCELLED);
    assert_int_equal(r.n, 3);
    stats_want w = {.f = f, .cancelled = 1};
    assert_true(sx_h_wait_for(stats_reached, &w, 5000));
    rx_free(&r);
}

int main(void)
{
    sx_fx_filter_from_env();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_every_message_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_mid_stream, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deadline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_stops, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_killed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nothing_listening, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_streams, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_opens, setup, teardown),
        cmocka_unit_test_setup_teardown(test_destroy_from_callback, setup, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    sx_rpc_wait_shutdown(5000);
    return rc;
}
