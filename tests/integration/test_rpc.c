/* test_rpc.c: the rpc layer over real loopback sockets, server and client in
 * one process: round trips under concurrency, deadlines, handler errors,
 * message limits, undecodable and unknown calls, retries, the fault layer, and
 * shutdown with calls in flight (run under ASan too: label `asan`).
 */
#include "clock.h"
#include "echo_service.h"
#include "rpc.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>

typedef Shardex__Testing__V1__EchoRequest EchoRequest;
typedef Shardex__Testing__V1__EchoResponse EchoResponse;
typedef Shardex__Testing__V1__FailRequest FailRequest;
#define ECHO_SVC (&shardex__testing__v1__echo__descriptor)

typedef struct fixture {
    sx_echo_state state;
    sx_rpc_server *srv;
    sx_rpc_client *cli;
    char addr[64];
} fixture;

static fixture *fixture_new(size_t max_message, int pool_threads)
{
    fixture *f = calloc(1, sizeof(*f));
    sx_err err = {0};
    sx_rpc_server_opts so = {.listen = "127.0.0.1:0",
                             .max_message_bytes = max_message,
                             .pool_threads = pool_threads,
                             .shutdown_grace_ms = 200};
    assert_int_equal(sx_rpc_server_create(&so, &f->srv, &err), SX_OK);
    assert_int_equal(sx_echo_service_add(f->srv, &f->state, &err), SX_OK);
    assert_int_equal(sx_rpc_server_start(f->srv, &err), SX_OK);
    snprintf(f->addr, sizeof(f->addr), "127.0.0.1:%d", sx_rpc_server_port(f->srv));
    sx_rpc_client_opts co = {.faults = ""}; /* ignore SHARDEX_FAULTS from the environment */
    assert_int_equal(sx_rpc_client_create(&co, &f->cli, &err), SX_OK);
    return f;
}

static void fixture_free(fixture *f)
{
    sx_rpc_client_destroy(f->cli);
    sx_rpc_server_destroy(f->srv);
    free(f);
}

static int setup(void **state)
{
    *state = fixture_new(64 * 1024, 4);
    return 0;
}

static int teardown(void **state)
{
    fixture_free(*state);
    return 0;
}

static sx_status echo_call(fixture *f, const char *method, const char *payload, uint32_t sleep_ms,
                           const sx_rpc_call_opts *opts, EchoResponse **out, sx_err *err)
{
    EchoRequest req = SHARDEX__TESTING__V1__ECHO_REQUEST__INIT;
    req.payload.data = (uint8_t *)payload;
    req.payload.len = strlen(payload);
    req.sleep_ms = sleep_ms;
    ProtobufCMessage *resp = NULL;
    sx_status st = sx_rpc_invoke(f->cli, f->addr, ECHO_SVC, method, &req.base, &resp, opts, err);
    if (out)
        *out = (EchoResponse *)resp;
    else
        sx_rpc_free(resp);
    return st;
}

/* ------------------------------------------------------------ round trips -- */

static void test_echo_round_trip(void **state)
{
    fixture *f = *state;
    EchoResponse *resp = NULL;
    sx_err err = {0};
    assert_int_equal(echo_call(f, "Echo", "hello", 0, NULL, &resp, &err), SX_OK);
    assert_non_null(resp);
    assert_int_equal(resp->payload.len, 5);
    assert_memory_equal(resp->payload.data, "hello", 5);
    assert_int_equal(resp->calls, 1);
    sx_rpc_free(&resp->base);

    /* An empty message is a valid message. */
    assert_int_equal(echo_call(f, "Echo", "", 0, NULL, &resp, &err), SX_OK);
    assert_int_equal(resp->payload.len, 0);
    sx_rpc_free(&resp->base);
}

typedef struct caller_arg {
    fixture *f;
    int id;
    int calls;
    int bad;
} caller_arg;

static void *caller_main(void *p)
{
    caller_arg *a = p;
    for (int i = 0; i < a->calls; i++) {
        char payload[64];
        snprintf(payload, sizeof(payload), "caller-%d-call-%d", a->id, i);
        EchoResponse *resp = NULL;
        sx_err err = {0};
        /* Every tenth call goes through the blocking pool. */
        const char *method = i % 10 == 0 ? "Sleep" : "Echo";
        if (echo_call(a->f, method, payload, 0, NULL, &resp, &err) != SX_OK ||
            resp->payload.len != strlen(payload) ||
            memcmp(resp->payload.data, payload, resp->payload.len) != 0)
            a->bad++;
        sx_rpc_free(resp ? &resp->base : NULL);
    }
    return NULL;
}

static void test_many_concurrent_callers(void **state)
{
    fixture *f = *state;
    enum { THREADS = 8, CALLS = 300 };
    pthread_t th[THREADS];
    caller_arg args[THREADS];
    for (int i = 0; i < THREADS; i++) {
        args[i] = (caller_arg){.f = f, .id = i, .calls = CALLS};
        pthread_create(&th[i], NULL, caller_main, &args[i]);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(args[i].bad, 0);
    }
    assert_int_equal(atomic_load(&f->state.calls), THREADS * CALLS);
}

typedef struct async_batch {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int pending;
    int ok;
    int bad;
    int status_count[SX_STATUS_COUNT];
} async_batch;

typedef struct async_one {
    async_batch *b;
    char payload[32];
} async_one;

static void async_done(sx_status st, const sx_err *err, ProtobufCMessage *resp, void *arg)
{
    (void)err;
    async_one *one = arg;
    async_batch *b = one->b;
    const EchoResponse *r = (const void *)resp;
    bool good = st == SX_OK && r && r->payload.len == strlen(one->payload) &&
                memcmp(r->payload.data, one->payload, r->payload.len) == 0;
    sx_rpc_free(resp);
    pthread_mutex_lock(&b->mu);
    b->status_count[st]++;
    if (good)
        b->ok++;
    else if (st == SX_OK)
        b->bad++;
    b->pending--;
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
}

static void batch_wait_below(async_batch *b, int limit)
{
    pthread_mutex_lock(&b->mu);
    while (b->pending > limit)
        pthread_cond_wait(&b->cv, &b->mu);
    pthread_mutex_unlock(&b->mu);
}

static void async_send(fixture *f, async_batch *b, async_one *one, const char *method,
                       uint32_t sleep_ms, const sx_rpc_call_opts *opts)
{
    EchoRequest req = SHARDEX__TESTING__V1__ECHO_REQUEST__INIT;
    req.payload.data = (uint8_t *)one->payload;
    req.payload.len = strlen(one->payload);
    req.sleep_ms = sleep_ms;
    one->b = b;
    pthread_mutex_lock(&b->mu);
    b->pending++;
    pthread_mutex_unlock(&b->mu);
    sx_rpc_invoke_async(f->cli, f->addr, ECHO_SVC, method, &req.base, opts, async_done, one);
}

static void test_async_many_in_flight(void **state)
{
    fixture *f = *state;
    enum { CALLS = 3000, IN_FLIGHT = 64 };
    async_batch b = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    async_one *ones = calloc(CALLS, sizeof(*ones));
    for (int i = 0; i < CALLS; i++) {
        batch_wait_below(&b, IN_FLIGHT - 1);
        snprintf(ones[i].payload, sizeof(ones[i].payload), "async-%d", i);
        async_send(f, &b, &ones[i], "Echo", 0, NULL);
    }
    batch_wait_below(&b, 0);
    assert_int_equal(b.ok, CALLS);
    assert_int_equal(b.bad, 0);
    free(ones);
}

/* ------------------------------------------------------------ local calls -- */

/* One sx_rpc_server_call_local, waited for. */
typedef struct local_wait {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    sx_status st;
    sx_err err;
    ProtobufCMessage *resp;
} local_wait;

static void local_done(sx_status st, const sx_err *err, ProtobufCMessage *resp, void *arg)
{
    local_wait *w = arg;
    pthread_mutex_lock(&w->mu);
    w->st = st;
    if (err)
        w->err = *err;
    w->resp = resp;
    w->done = true;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static sx_status local_call(fixture *f, const char *method, const char *payload, uint32_t sleep_ms,
                            uint64_t timeout_ms, EchoResponse **out, sx_err *err)
{
    local_wait w = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    /* The request is the caller's stack: the call must not keep it. */
    char buf[64];
    snprintf(buf, sizeof(buf), "%s", payload);
    EchoRequest req = SHARDEX__TESTING__V1__ECHO_REQUEST__INIT;
    req.payload.data = (uint8_t *)buf;
    req.payload.len = strlen(buf);
    req.sleep_ms = sleep_ms;
    sx_rpc_server_call_local(f->srv, ECHO_SVC, method, &req.base, sx_clock_now_ms() + timeout_ms,
                             local_done, &w);
    memset(buf, 'x', sizeof(buf));
    pthread_mutex_lock(&w.mu);
    while (!w.done)
        pthread_cond_wait(&w.cv, &w.mu);
    pthread_mutex_unlock(&w.mu);
    *err = w.err;
    *out = (EchoResponse *)w.resp;
    return w.st;
}

/* A node calling itself: the same handler, no network, a standalone answer,
 * errors and deadlines as a client would see them. */
static void test_local_call(void **state)
{
    fixture *f = *state;
    EchoResponse *resp = NULL;
    sx_err err = {0};
    assert_int_equal(local_call(f, "Echo", "hello", 0, 1000, &resp, &err), SX_OK);
    assert_non_null(resp);
    assert_int_equal(resp->payload.len, 5);
    assert_memory_equal(resp->payload.data, "hello", 5);
    assert_int_equal(resp->calls, 1); /* the server's own handler counted it */
    sx_rpc_free(&resp->base);

    /* The handler sees the deadline given. */
    assert_int_equal(local_call(f, "Deadline", "", 0, 300, &resp, &err), SX_OK);
    assert_true(resp->deadline_left_ms <= 300 && resp->deadline_left_ms > 0);
    sx_rpc_free(&resp->base);

    FailRequest fr = SHARDEX__TESTING__V1__FAIL_REQUEST__INIT;
    fr.code = SX_FAILED_PRECONDITION;
    fr.message = "refused here";
    local_wait w = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    sx_rpc_server_call_local(f->srv, ECHO_SVC, "Fail", &fr.base, sx_clock_now_ms() + 1000,
                             local_done, &w);
    pthread_mutex_lock(&w.mu);
    while (!w.done)
        pthread_cond_wait(&w.cv, &w.mu);
    pthread_mutex_unlock(&w.mu);
    assert_int_equal(w.st, SX_FAILED_PRECONDITION);
    assert_null(w.resp);
    assert_string_equal(w.err.msg, "refused here");

    assert_int_equal(local_call(f, "NoSuchMethod", "", 0, 1000, &resp, &err), SX_UNIMPLEMENTED);
    assert_null(resp);
    assert_non_null(strstr(err.msg, "NoSuchMethod"));
}

/* ----------------------------------------------------------------- errors -- */

static void test_deadline_exceeded(void **state)
{
    fixture *f = *state;
    sx_rpc_call_opts opts = {.timeout_ms = 100};
    sx_err err = {0};
    uint64_t t0 = sx_clock_now_ms();
    assert_int_equal(echo_call(f, "Sleep", "slow", 1000, &opts, NULL, &err), SX_DEADLINE_EXCEEDED);
    assert_int_equal(err.code, SX_DEADLINE_EXCEEDED);
    /* The call returned at its deadline, not when the handler finished. */
    assert_true(sx_clock_now_ms() - t0 < 900);
}

/* A raw gRPC core call to Echo/Deadline with a 5 s grpc-timeout and, when
 * wall_ms is not 0, the rpc layer's wall-clock deadline (rpc_internal.h) set
 * to wall_ms: returns the time left the handler saw. */
static uint64_t raw_deadline_left(fixture *f, uint64_t wall_ms)
{
    grpc_channel_credentials *cr = grpc_insecure_credentials_create();
    grpc_channel *ch = grpc_channel_create(f->addr, cr, NULL);
    grpc_channel_credentials_release(cr);
    grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
    gpr_timespec dl =
        gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(5000, GPR_TIMESPAN));
    grpc_slice method = grpc_slice_from_static_string("/shardex.testing.v1.Echo/Deadline");
    grpc_call *call =
        grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq, method, NULL, dl, NULL);
    EchoRequest req = SHARDEX__TESTING__V1__ECHO_REQUEST__INIT;
    uint8_t packed[16];
    size_t n = shardex__testing__v1__echo_request__pack(&req, packed);
    grpc_slice body = grpc_slice_from_copied_buffer((const char *)packed, n);
    grpc_byte_buffer *send = grpc_raw_byte_buffer_create(&body, 1), *recv = NULL;
    grpc_slice_unref(body);
    char wall[24];
    snprintf(wall, sizeof(wall), "%llu", (unsigned long long)wall_ms);
    grpc_metadata md = {.key = grpc_slice_from_static_string("sx-deadline-unix-ms"),
                        .value = grpc_slice_from_static_string(wall)};
    grpc_metadata_array init_md, trail_md;
    grpc_metadata_array_init(&init_md);
    grpc_metadata_array_init(&trail_md);
    grpc_status_code status = GRPC_STATUS_UNKNOWN;
    grpc_slice details = grpc_empty_slice();
    grpc_op ops[6];
    memset(ops, 0, sizeof(ops));
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[0].data.send_initial_metadata.count = wall_ms ? 1 : 0;
    ops[0].data.send_initial_metadata.metadata = &md;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = send;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &init_md;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &recv;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &trail_md;
    ops[5].data.recv_status_on_client.status = &status;
    ops[5].data.recv_status_on_client.status_details = &details;
    assert_int_equal(grpc_call_start_batch(call, ops, 6, (void *)1, NULL), GRPC_CALL_OK);
    grpc_event ev =
        grpc_completion_queue_pluck(cq, (void *)1, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    assert_true(ev.success);
    assert_int_equal(status, GRPC_STATUS_OK);
    assert_non_null(recv);
    grpc_byte_buffer_reader reader;
    assert_true(grpc_byte_buffer_reader_init(&reader, recv));
    grpc_slice all = grpc_byte_buffer_reader_readall(&reader);
    grpc_byte_buffer_reader_destroy(&reader);
    EchoResponse *resp = shardex__testing__v1__echo_response__unpack(NULL, GRPC_SLICE_LENGTH(all),
                                                                     GRPC_SLICE_START_PTR(all));
    assert_non_null(resp);
    uint64_t left = resp->deadline_left_ms;
    shardex__testing__v1__echo_response__free_unpacked(resp, NULL);
    grpc_slice_unref(all);
    grpc_slice_unref(details);
    grpc_byte_buffer_destroy(send);
    grpc_byte_buffer_destroy(recv);
    grpc_metadata_array_destroy(&init_md);
    grpc_metadata_array_destroy(&trail_md);
    grpc_call_unref(call);
    grpc_channel_destroy(ch);
    grpc_completion_queue_shutdown(cq);
    while (grpc_completion_queue_pluck(cq, NULL, gpr_inf_past(GPR_CLOCK_REALTIME), NULL).type !=
           GRPC_QUEUE_SHUTDOWN)
        ;
    grpc_completion_queue_destroy(cq);
    return left;
}

/* gRPC's grpc-timeout is relative: a request held up on the way arrives with
 * its whole timeout again. The rpc layer sends the deadline as wall-clock time
 * too and the server keeps the earlier one (found by the partition-failure
 * suite: a write held up by a flapping partition was appended after the
 * client's later write of the same document). */
static void test_wall_clock_deadline_bounds_the_call(void **state)
{
    fixture *f = *state;
    /* Without the key: grpc-timeout alone (5 s; gRPC rounds its timeout up). */
    uint64_t left = raw_deadline_left(f, 0);
    assert_true(left > 3000 && left <= 5100);
    /* A wall-clock deadline 200 ms away: the earlier one counts. */
    left = raw_deadline_left(f, sx_clock_wall_ms() + 200);
    assert_true(left <= 200);
    /* Already past when the request arrives (held up longer than its
     * deadline): nothing left, whatever grpc-timeout says. */
    assert_int_equal(raw_deadline_left(f, sx_clock_wall_ms() - 1000), 0);
    /* A wall-clock deadline later than grpc-timeout's: grpc-timeout counts. */
    left = raw_deadline_left(f, sx_clock_wall_ms() + 60000);
    assert_true(left > 3000 && left <= 5100);
    /* The rpc client sends it: a 300 ms call sees at most 300 ms. */
    sx_rpc_call_opts opts = {.timeout_ms = 300};
    EchoResponse *resp = NULL;
    sx_err err = {0};
    assert_int_equal(echo_call(f, "Deadline", "", 0, &opts, &resp, &err), SX_OK);
    assert_true(resp->deadline_left_ms <= 300 && resp->deadline_left_ms > 0);
    sx_rpc_free(&resp->base);
}

static void test_handler_error_reaches_client(void **state)
{
    fixture *f = *state;
    FailRequest req = SHARDEX__TESTING__V1__FAIL_REQUEST__INIT;
    req.code = SX_FAILED_PRECONDITION;
    req.message = "index \"by_section\" is BUILDING; ask again with mode=LOCAL";
    ProtobufCMessage *resp = NULL;
    sx_err err = {0};
    assert_int_equal(sx_rpc_invoke(f->cli, f->addr, ECHO_SVC, "Fail", &req.base, &resp, NULL, &err),
                     SX_FAILED_PRECONDITION);
    assert_null(resp);
    assert_int_equal(err.code, SX_FAILED_PRECONDITION);
    assert_string_equal(err.msg, req.message);

    /* Every status travels intact. */
    for (int code = 1; code < SX_STATUS_COUNT; code++) {
        req.code = (uint32_t)code;
        req.message = "m";
        assert_int_equal(
            sx_rpc_invoke(f->cli, f->addr, ECHO_SVC, "Fail", &req.base, &resp, NULL, &err), code);
    }
}

static void test_oversized_message_refused(void **state)
{
    fixture *f = *state; /* server limit: 64 KiB */
    size_t n = 100 * 1024;
    char *big = malloc(n + 1);
    memset(big, 'x', n);
    big[n] = '\0';
    sx_err err = {0};
    assert_int_equal(echo_call(f, "Echo", big, 0, NULL, NULL, &err), SX_RESOURCE_EXHAUSTED);
    assert_int_equal(atomic_load(&f->state.calls), 0); /* never reached the handler */
    /* Just under the limit passes. */
    big[60 * 1024] = '\0';
    assert_int_equal(echo_call(f, "Echo", big, 0, NULL, NULL, &err), SX_OK);
    free(big);
}

/* A copy of the Echo service descriptor, renamed or with a method's input
 * type swapped, so that the client sends what the server does not expect. */
typedef struct mutant {
    ProtobufCServiceDescriptor svc;
    ProtobufCMethodDescriptor methods[8]; /* room for the Echo service's */
} mutant;

static void mutant_init(mutant *m, const char *name)
{
    m->svc = *ECHO_SVC;
    assert_true(ECHO_SVC->n_methods <= sizeof(m->methods) / sizeof(m->methods[0]));
    memcpy(m->methods, ECHO_SVC->methods, ECHO_SVC->n_methods * sizeof(m->methods[0]));
    m->svc.methods = m->methods;
    if (name)
        m->svc.name = name;
}

static void test_undecodable_request_is_invalid_argument(void **state)
{
    fixture *f = *state;
    mutant m;
    mutant_init(&m, NULL);
    /* Send a FailRequest {code: 5} to Echo: field 1 arrives as a varint where
     * EchoRequest has bytes, which no EchoRequest encoding contains. */
    for (unsigned i = 0; i < m.svc.n_methods; i++)
        if (strcmp(m.methods[i].name, "Echo") == 0)
            m.methods[i].input = &shardex__testing__v1__fail_request__descriptor;
    FailRequest req = SHARDEX__TESTING__V1__FAIL_REQUEST__INIT;
    req.code = 5;
    ProtobufCMessage *resp = NULL;
    sx_err err = {0};
    assert_int_equal(sx_rpc_invoke(f->cli, f->addr, &m.svc, "Echo", &req.base, &resp, NULL, &err),
                     SX_INVALID_ARGUMENT);
    assert_non_null(strstr(err.msg, "not a valid shardex.testing.v1.EchoRequest"));
    assert_int_equal(atomic_load(&f->state.calls), 0);
}

static void test_unknown_method_is_unimplemented(void **state)
{
    fixture *f = *state;
    mutant m;
    mutant_init(&m, "shardex.testing.v1.NoSuchService");
    EchoRequest req = SHARDEX__TESTING__V1__ECHO_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    sx_err err = {0};
    uint64_t t0 = sx_clock_now_ms();
    sx_rpc_call_opts opts = {.timeout_ms = 3000};
    assert_int_equal(sx_rpc_invoke(f->cli, f->addr, &m.svc, "Echo", &req.base, &resp, &opts, &err),
                     SX_UNIMPLEMENTED);
    assert_non_null(strstr(err.msg, "/shardex.testing.v1.NoSuchService/Echo"));
    /* Answered at once, not at the deadline. */
    assert_true(sx_clock_now_ms() - t0 < 2000);

    /* A method the client does not know fails before anything is sent. */
    assert_int_equal(sx_rpc_invoke(f->cli, f->addr, ECHO_SVC, "Nope", &req.base, &resp, NULL, &err),
                     SX_UNIMPLEMENTED);
}

static sx_status ok_handler(sx_rpc_call *call, const ProtobufCMessage *req, ProtobufCMessage *resp,
                            void *arg, sx_err *err)
{
    (void)call;
    (void)req;
    (void)resp;
    (void)arg;
    (void)err;
    return SX_OK;
}

static void test_method_left_out_of_table_is_unimplemented(void **state)
{
    (void)state;
    /* A server that serves only Echo of the Echo service. */
    static sx_echo_state st;
    sx_rpc_server *srv = NULL;
    sx_rpc_client *cli = NULL;
    sx_err err = {0};
    sx_rpc_server_opts so = {.listen = "127.0.0.1:0"};
    assert_int_equal(sx_rpc_server_create(&so, &srv, &err), SX_OK);
    /* Unknown names are refused when the table is added. */
    sx_rpc_method bad[] = {{"NoSuchMethod", NULL, SX_RPC_INLINE}};
    assert_int_equal(sx_rpc_server_add_service(srv, ECHO_SVC, bad, 1, &st, &err),
                     SX_INVALID_ARGUMENT);
    sx_rpc_method only_fail[] = {{"Fail", ok_handler, SX_RPC_INLINE}};
    assert_int_equal(sx_rpc_server_add_service(srv, ECHO_SVC, only_fail, 1, &st, &err), SX_OK);
    assert_int_equal(sx_rpc_server_start(srv, &err), SX_OK);
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", sx_rpc_server_port(srv));
    sx_rpc_client_opts co = {.faults = ""};
    assert_int_equal(sx_rpc_client_create(&co, &cli, &err), SX_OK);
    EchoRequest req = SHARDEX__TESTING__V1__ECHO_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    assert_int_equal(sx_rpc_invoke(cli, addr, ECHO_SVC, "Echo", &req.base, &resp, NULL, &err),
                     SX_UNIMPLEMENTED);
    FailRequest freq = SHARDEX__TESTING__V1__FAIL_REQUEST__INIT;
    assert_int_equal(sx_rpc_invoke(cli, addr, ECHO_SVC, "Fail", &freq.base, &resp, NULL, &err),
                     SX_OK);
    sx_rpc_free(resp);
    sx_rpc_client_destroy(cli);
    sx_rpc_server_destroy(srv);
}

static void test_nothing_listening_is_unavailable(void **state)
{
    fixture *f = *state;
    /* Bind a server, note its port, stop it: now nothing listens there. */
    sx_rpc_server *srv = NULL;
    sx_err err = {0};
    sx_rpc_server_opts so = {.listen = "127.0.0.1:0"};
    assert_int_equal(sx_rpc_server_create(&so, &srv, &err), SX_OK);
    assert_int_equal(sx_rpc_server_start(srv, &err), SX_OK);
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", sx_rpc_server_port(srv));
    sx_rpc_server_destroy(srv);

    EchoRequest req = SHARDEX__TESTING__V1__ECHO_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    sx_rpc_call_opts opts = {.timeout_ms = 3000};
    assert_int_equal(sx_rpc_invoke(f->cli, addr, ECHO_SVC, "Echo", &req.base, &resp, &opts, &err),
                     SX_UNAVAILABLE);
}

/* ---------------------------------------------------- retries and faults -- */

static void test_retry_only_idempotent(void **state)
{
    fixture *f = *state;
    sx_err err = {0};
    assert_int_equal(sx_rpc_client_set_faults(f->cli, "seed=3;method=Echo,fail=1", &err), SX_OK);
    sx_rpc_call_opts once = {.timeout_ms = 3000};
    assert_int_equal(echo_call(f, "Echo", "x", 0, &once, NULL, &err), SX_UNAVAILABLE);
    assert_non_null(strstr(err.msg, "fault injected"));
    sx_rpc_fault_stats fs;
    sx_rpc_client_fault_stats(f->cli, &fs);
    assert_int_equal(fs.failed, 1);

    sx_rpc_call_opts retry = {.timeout_ms = 5000, .idempotent = true, .max_attempts = 4};
    assert_int_equal(echo_call(f, "Echo", "x", 0, &retry, NULL, &err), SX_UNAVAILABLE);
    sx_rpc_client_fault_stats(f->cli, &fs);
    assert_int_equal(fs.failed, 1 + 4);

    /* Statuses other than UNAVAILABLE and DEADLINE_EXCEEDED are not retried. */
    assert_int_equal(
        sx_rpc_client_set_faults(f->cli, "method=Echo,fail=1,code=FAILED_PRECONDITION", &err),
        SX_OK);
    assert_int_equal(echo_call(f, "Echo", "x", 0, &retry, NULL, &err), SX_FAILED_PRECONDITION);
    sx_rpc_client_fault_stats(f->cli, &fs);
    assert_int_equal(fs.failed, 1);

    /* Half the attempts fail: idempotent calls get through, and the server saw
     * exactly one successful call per call made. */
    assert_int_equal(sx_rpc_client_set_faults(f->cli, "seed=11;method=Echo,fail=0.5", &err), SX_OK);
    retry.max_attempts = 20;
    for (int i = 0; i < 20; i++)
        assert_int_equal(echo_call(f, "Echo", "x", 0, &retry, NULL, &err), SX_OK);
    assert_int_equal(atomic_load(&f->state.calls), 20);
    sx_rpc_client_fault_stats(f->cli, &fs);
    assert_true(fs.failed > 0);
}

static void test_fault_drop_dup_delay(void **state)
{
    fixture *f = *state;
    sx_err err = {0};
    sx_rpc_call_opts opts = {.timeout_ms = 200};

    /* A dropped request never reaches the server. */
    assert_int_equal(sx_rpc_client_set_faults(f->cli, "method=Echo,drop=1", &err), SX_OK);
    uint64_t t0 = sx_clock_now_ms();
    assert_int_equal(echo_call(f, "Echo", "x", 0, &opts, NULL, &err), SX_DEADLINE_EXCEEDED);
    assert_true(sx_clock_now_ms() - t0 >= 190); /* lost, so only the deadline ends it */
    assert_int_equal(atomic_load(&f->state.calls), 0);

    /* A dropped reply: the server handled it, the caller never heard. */
    assert_int_equal(sx_rpc_client_set_faults(f->cli, "method=Echo,drop_reply=1", &err), SX_OK);
    assert_int_equal(echo_call(f, "Echo", "x", 0, &opts, NULL, &err), SX_DEADLINE_EXCEEDED);
    assert_int_equal(atomic_load(&f->state.calls), 1);

    /* A duplicate: the server sees the call twice, the caller one answer. */
    assert_int_equal(sx_rpc_client_set_faults(f->cli, "method=Echo,dup=1", &err), SX_OK);
    opts.timeout_ms = 3000;
    EchoResponse *resp = NULL;
    assert_int_equal(echo_call(f, "Echo", "x", 0, &opts, &resp, &err), SX_OK);
    sx_rpc_free(&resp->base);
    /* The duplicate is asynchronous: wait for the server to count it. */
    uint64_t end = sx_clock_now_ms() + 3000;
    while (atomic_load(&f->state.calls) < 3 && sx_clock_now_ms() < end)
        sx_clock_sleep_ms(1);
    assert_int_equal(atomic_load(&f->state.calls), 3);

    /* A delay holds the request back. */
    assert_int_equal(
        sx_rpc_client_set_faults(f->cli, "peer=*,method=Echo,delay=1,delay_ms=80-80", &err), SX_OK);
    t0 = sx_clock_now_ms();
    assert_int_equal(echo_call(f, "Echo", "x", 0, &opts, NULL, &err), SX_OK);
    assert_true(sx_clock_now_ms() - t0 >= 80);

    /* Rules for another peer or method leave calls alone. */
    assert_int_equal(
        sx_rpc_client_set_faults(f->cli, "peer=127.0.0.2:1,drop=1;method=Sleep,fail=1", &err),
        SX_OK);
    assert_int_equal(echo_call(f, "Echo", "x", 0, &opts, NULL, &err), SX_OK);

    /* Async calls go through the same faults. */
    assert_int_equal(sx_rpc_client_set_faults(f->cli, "method=Echo,drop=0.5,dup=0.5", &err), SX_OK);
    async_batch b = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    async_one ones[40];
    sx_rpc_call_opts short_opts = {.timeout_ms = 150};
    for (int i = 0; i < 40; i++) {
        snprintf(ones[i].payload, sizeof(ones[i].payload), "a%d", i);
        async_send(f, &b, &ones[i], "Echo", 0, &short_opts);
    }
    batch_wait_below(&b, 0);
    sx_rpc_fault_stats fs;
    sx_rpc_client_fault_stats(f->cli, &fs);
    assert_int_equal(b.ok, (int)fs.duplicated);
    assert_int_equal(b.status_count[SX_DEADLINE_EXCEEDED], (int)fs.dropped);
    assert_int_equal(fs.dropped + fs.duplicated, 40);
}

static void test_fault_seed_replays(void **state)
{
    fixture *f = *state;
    sx_err err = {0};
    sx_rpc_call_opts opts = {.timeout_ms = 50};
    int outcome[2][30];
    for (int run = 0; run < 2; run++) {
        assert_int_equal(
            sx_rpc_client_set_faults(f->cli, "seed=42;method=Echo,fail=0.3,code=ABORTED", &err),
            SX_OK);
        for (int i = 0; i < 30; i++)
            outcome[run][i] = echo_call(f, "Echo", "x", 0, &opts, NULL, &err);
    }
    assert_memory_equal(outcome[0], outcome[1], sizeof(outcome[0]));
    int aborted = 0;
    for (int i = 0; i < 30; i++)
        aborted += outcome[0][i] == SX_ABORTED;
    assert_true(aborted > 0 && aborted < 30);
}

static void test_bad_fault_spec(void **state)
{
    fixture *f = *state;
    sx_err err = {0};
    assert_int_equal(sx_rpc_client_set_faults(f->cli, "drop=2", &err), SX_INVALID_ARGUMENT);
    assert_non_null(strstr(err.msg, "drop=2"));
    assert_int_equal(sx_rpc_client_set_faults(f->cli, "color=red", &err), SX_INVALID_ARGUMENT);
    assert_non_null(strstr(err.msg, "color"));
    assert_int_equal(sx_rpc_client_set_faults(f->cli, "code=NOPE,fail=1", &err),
                     SX_INVALID_ARGUMENT);
    assert_int_equal(sx_rpc_client_set_faults(f->cli, "delay_ms=9-3", &err), SX_INVALID_ARGUMENT);
}

/* --------------------------------------------------------------- cancel -- */

/* sx_rpc_cancel ends a call waiting on a fault delay (never sent) and one on
 * the wire (its handler sleeping) with SX_CANCELLED, long before their
 * deadlines; cancelling a completed or unknown ticket does nothing. */
static void test_cancel(void **state)
{
    fixture *f = *state;
    sx_err err = {0};
    assert_int_equal(
        sx_rpc_client_set_faults(f->cli, "method=Echo,delay=1,delay_ms=60000-60000", &err), SX_OK);
    async_batch b = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    async_one ones[3];
    uint64_t tickets[3] = {0};
    const char *methods[3] = {"Echo", "Sleep", "Sleep"};
    for (int i = 0; i < 3; i++) {
        sx_rpc_call_opts opts = {.timeout_ms = 60000, .idempotent = true, .ticket = &tickets[i]};
        snprintf(ones[i].payload, sizeof(ones[i].payload), "x%d", i);
        /* The Sleep's handler sleeps 2 s (not interruptible: the server waits
         * for it at teardown); cancelled, the call ends CANCELLED, not OK. */
        async_send(f, &b, &ones[i], methods[i], i == 2 ? 0 : 2000, &opts);
        assert_true(tickets[i] != 0);
    }
    /* The third (no sleep) completes; cancelling it afterwards does nothing. */
    batch_wait_below(&b, 2);
    assert_int_equal(b.ok, 1);
    sx_rpc_cancel(f->cli, tickets[2]);
    sx_rpc_cancel(f->cli, 987654321);
    /* The Sleep is on the wire once its handler sleeps. */
    uint64_t end = sx_clock_now_ms() + 10000;
    while (atomic_load(&f->state.sleeping) < 1 && sx_clock_now_ms() < end)
        sx_clock_sleep_ms(1);
    assert_int_equal(atomic_load(&f->state.sleeping), 1);
    sx_rpc_cancel(f->cli, tickets[0]);
    sx_rpc_cancel(f->cli, tickets[1]);
    sx_rpc_cancel(f->cli, tickets[1]); /* twice: harmless */
    batch_wait_below(&b, 0);           /* the delayed Echo would wait 60 s without its cancel */
    assert_int_equal(b.status_count[SX_CANCELLED], 2);
    assert_int_equal(b.ok, 1);
    assert_int_equal(sx_rpc_client_set_faults(f->cli, "", &err), SX_OK);
}

/* ------------------------------------------------------------- shutdown -- */

static void test_server_shutdown_with_calls_in_flight(void **state)
{
    (void)state;
    fixture *f = fixture_new(0, 4);
    enum { CALLS = 24 };
    async_batch b = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    async_one ones[CALLS];
    sx_rpc_call_opts opts = {.timeout_ms = 10000};
    for (int i = 0; i < CALLS; i++) {
        snprintf(ones[i].payload, sizeof(ones[i].payload), "s%d", i);
        async_send(f, &b, &ones[i], "Sleep", 300, &opts);
    }
    /* Wait until the pool is busy, then shut the server down under the calls. */
    uint64_t end = sx_clock_now_ms() + 5000;
    while (atomic_load(&f->state.sleeping) < 4 && sx_clock_now_ms() < end)
        sx_clock_sleep_ms(1);
    assert_int_equal(atomic_load(&f->state.sleeping), 4);
    uint64_t t0 = sx_clock_now_ms();
    sx_rpc_server_destroy(f->srv); /* grace 200 ms, then cancel */
    f->srv = NULL;
    uint64_t took = sx_clock_now_ms() - t0;
    /* Every call ended, none hung until its 10 s deadline. */
    batch_wait_below(&b, 0);
    assert_true(took < 8000);
    int ended = 0;
    for (int s = 0; s < SX_STATUS_COUNT; s++)
        ended += b.status_count[s];
    assert_int_equal(ended, CALLS);
    assert_int_equal(b.bad, 0);
    /* Some finished within the grace period; the rest got an error status. */
    assert_true(b.ok < CALLS);
    fixture_free(f);
}

static void test_client_destroy_with_calls_in_flight(void **state)
{
    (void)state;
    fixture *f = fixture_new(0, 2);
    enum { CALLS = 10 };
    async_batch b = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    async_one ones[CALLS];
    sx_rpc_call_opts opts = {.timeout_ms = 10000, .idempotent = true};
    sx_err err = {0};
    /* Some calls sit on the timer list (delayed), others on the wire. */
    assert_int_equal(
        sx_rpc_client_set_faults(f->cli, "method=Sleep,delay=0.5,delay_ms=5000-5000", &err), SX_OK);
    for (int i = 0; i < CALLS; i++) {
        snprintf(ones[i].payload, sizeof(ones[i].payload), "c%d", i);
        async_send(f, &b, &ones[i], "Sleep", 2000, &opts);
    }
    uint64_t t0 = sx_clock_now_ms();
    sx_rpc_client_destroy(f->cli);
    f->cli = NULL;
    assert_true(sx_clock_now_ms() - t0 < 1500);
    assert_int_equal(b.pending, 0);
    assert_int_equal(b.status_count[SX_CANCELLED], CALLS);
    fixture_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_echo_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_concurrent_callers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_async_many_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_local_call, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deadline_exceeded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wall_clock_deadline_bounds_the_call, setup, teardown),
        cmocka_unit_test_setup_teardown(test_handler_error_reaches_client, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oversized_message_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_undecodable_request_is_invalid_argument, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_unknown_method_is_unimplemented, setup, teardown),
        cmocka_unit_test(test_method_left_out_of_table_is_unimplemented),
        cmocka_unit_test_setup_teardown(test_nothing_listening_is_unavailable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry_only_idempotent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fault_drop_dup_delay, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fault_seed_replays, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_fault_spec, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
        cmocka_unit_test(test_server_shutdown_with_calls_in_flight),
        cmocka_unit_test(test_client_destroy_with_calls_in_flight),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    sx_rpc_wait_shutdown(5000);
    return rc;
}
