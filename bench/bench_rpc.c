/* bench_rpc: unary calls per second and CPU per call of the rpc layer
 * (common/rpc*.c) against a minimal echo written directly on the gRPC C core,
 * measured alternately in the same run (see BENCHMARKING.md).
 *
 *   bench_rpc [--rounds N] [--seconds S] [--warmup S] [--inflight N]
 *             [--payload BYTES] [--raw-posted N] [--pin]   (--help: with defaults)
 *
 * This orchestrator starts four processes, all this binary again:
 *
 *   --serve layer   sx_rpc_server with the test Echo service (as echo_server)
 *   --serve raw     one registered method on the bare core, one queue thread,
 *                   replying with the bytes it received
 *   --client layer  sx_rpc_invoke / sx_rpc_invoke_async
 *   --client raw    6-op batches on the bare core: a reused pluck queue for the
 *                   sequential caller, one queue thread for calls in flight
 *
 * Each client measures on command (a byte on its stdin; a `result` back on its
 * stdout): a warm-up, then a window in which calls, wall time, the client's CPU
 * (getrusage) and its server's CPU (utime + stime from /proc/PID/stat) are taken
 * as deltas, and each call's latency goes into a log-bucketed histogram. Two
 * modes: one sequential caller, and N calls in flight (closed loop: each
 * completion issues the next call). Per round the orchestrator runs layer and
 * raw alternately (A B, then B A in the next round) so that drift on a shared
 * machine falls on both, then reports medians and per-round ratios as Markdown
 * on stdout (progress on stderr).
 *
 * Separate client processes matter: a thread of one client idling inside
 * grpc_completion_queue_next would take the other's network events.
 * Both servers have one completion-queue thread and receive the same bytes (a
 * packed EchoRequest) on the same method path; both clients give every call a
 * 5 s deadline and disable gRPC's retries. --pin puts the clients on CPU 0 and
 * the servers on CPU 1 (on 2 cores, unpinned runs flip between the processes
 * sharing a core or not, and the figures with them).
 */
#include "benchlib.h"
#include "clock.h"
#include "daemon.h"
#include "echo_service.h"
#include "harness.h"
#include "log.h"
#include "rpc.h"

#include <errno.h>
#include <fcntl.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define ECHO_PATH "/shardex.testing.v1.Echo/Echo"
#define CALL_TIMEOUT_MS 5000 /* both clients: every call has a deadline */
#define MAX_INFLIGHT 4096

static char g_tmpdir[256]; /* the orchestrator's directory, removed at exit */

static void remove_tmpdir(void)
{
    if (g_tmpdir[0])
        sx_h_rmtree(g_tmpdir);
}

static void die(const char *what)
{
    fprintf(stderr, "bench_rpc: %s\n", what);
    exit(1);
}

static void pin_to_cpu(int cpu)
{
    if (cpu < 0)
        return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof(set), &set) != 0)
        perror("sched_setaffinity");
}

/* Returns on SIGTERM or SIGINT, which sx_daemon_block_signals blocked before
 * any thread started, so that this thread is the one that takes them; the
 * one-second timeout only bounds each wait, it stops nothing. */
static void wait_stop_signal(void)
{
    while (sx_daemon_wait_signal(1000) == 0) {
    }
}

/* ============================================================ servers ===== */

/* ---- the layer: exactly what echo_server runs ---- */

static int serve_layer(const char *port_file)
{
    sx_daemon_block_signals();
    sx_log_set_process("bench_rpc-layer");
    sx_echo_state state = {0};
    sx_rpc_server_opts opts = {.listen = "127.0.0.1:0", .cq_threads = 1};
    sx_rpc_server *srv = NULL;
    sx_err err = {0};
    if (sx_rpc_server_create(&opts, &srv, &err) != SX_OK ||
        sx_echo_service_add(srv, &state, &err) != SX_OK ||
        sx_rpc_server_start(srv, &err) != SX_OK) {
        fprintf(stderr, "bench_rpc layer server: %s\n", err.msg);
        sx_rpc_server_destroy(srv);
        return 1;
    }
    if (sx_daemon_write_port_file(port_file, sx_rpc_server_port(srv), &err) != SX_OK) {
        fprintf(stderr, "bench_rpc layer server: %s\n", err.msg);
        sx_rpc_server_destroy(srv);
        return 1;
    }
    wait_stop_signal();
    fprintf(stderr, "layer server: stopping after %llu calls\n",
            (unsigned long long)atomic_load(&state.calls));
    sx_rpc_server_destroy(srv);
    sx_rpc_wait_shutdown(2000);
    return 0;
}

/* ---- the raw baseline: one registered method, one queue, one thread ---- */

typedef struct raw_server {
    grpc_server *server;
    grpc_completion_queue *cq;
    void *method;
    atomic_bool stopping; /* no new requests are posted */
    atomic_long live;     /* contexts not yet freed (posted requests included) */
    uint64_t calls;       /* touched by the queue thread only */
} raw_server;

typedef struct raw_server_call {
    raw_server *s;
    bool replying; /* false: the posted request; true: the reply batch */
    grpc_call *call;
    gpr_timespec deadline;
    grpc_metadata_array md;
    grpc_byte_buffer *payload;
    int cancelled;
} raw_server_call;

static void raw_post(raw_server *s)
{
    raw_server_call *c = calloc(1, sizeof(*c));
    if (!c)
        abort();
    c->s = s;
    grpc_metadata_array_init(&c->md);
    atomic_fetch_add(&s->live, 1);
    grpc_call_error rc = grpc_server_request_registered_call(
        s->server, s->method, &c->call, &c->deadline, &c->md, &c->payload, s->cq, s->cq, c);
    if (rc != GRPC_CALL_OK) {
        fprintf(stderr, "raw server: request_registered_call: %d\n", (int)rc);
        abort();
    }
}

static void raw_server_call_free(raw_server_call *c)
{
    if (c->payload)
        grpc_byte_buffer_destroy(c->payload);
    grpc_metadata_array_destroy(&c->md);
    if (c->call)
        grpc_call_unref(c->call);
    atomic_fetch_sub(&c->s->live, 1);
    free(c);
}

static void *raw_server_main(void *arg)
{
    raw_server *s = arg;
    for (;;) {
        grpc_event ev = grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN)
            break;
        if (ev.type != GRPC_OP_COMPLETE)
            continue;
        raw_server_call *c = ev.tag;
        if (c->replying || !ev.success) { /* reply sent, or request failed at shutdown */
            raw_server_call_free(c);
            continue;
        }
        if (!atomic_load(&s->stopping))
            raw_post(s);
        s->calls++;
        /* The reply: the received bytes themselves, then status OK. */
        grpc_op ops[4];
        memset(ops, 0, sizeof(ops));
        size_t n = 0;
        ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
        if (c->payload) {
            ops[n].op = GRPC_OP_SEND_MESSAGE;
            ops[n++].data.send_message.send_message = c->payload;
        }
        ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
        ops[n++].data.send_status_from_server.status =
            c->payload ? GRPC_STATUS_OK : GRPC_STATUS_INVALID_ARGUMENT;
        ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
        ops[n++].data.recv_close_on_server.cancelled = &c->cancelled;
        c->replying = true;
        if (grpc_call_start_batch(c->call, ops, n, c, NULL) != GRPC_CALL_OK)
            raw_server_call_free(c);
    }
    return NULL;
}

static int serve_raw(const char *port_file, int posted)
{
    sx_daemon_block_signals();
    grpc_init();
    raw_server s = {0};
    atomic_init(&s.stopping, false);
    atomic_init(&s.live, 0);
    s.server = grpc_server_create(NULL, NULL);
    s.cq = grpc_completion_queue_create_for_next(NULL);
    grpc_server_register_completion_queue(s.server, s.cq, NULL);
    s.method = grpc_server_register_method(s.server, ECHO_PATH, NULL,
                                           GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0);
    grpc_server_credentials *creds = grpc_insecure_server_credentials_create();
    int port = grpc_server_add_http2_port(s.server, "127.0.0.1:0", creds);
    grpc_server_credentials_release(creds);
    if (port <= 0)
        die("raw server: cannot listen");
    grpc_server_start(s.server);
    for (int i = 0; i < posted; i++)
        raw_post(&s);
    pthread_t th;
    pthread_create(&th, NULL, raw_server_main, &s);
    sx_err err = {0};
    if (sx_daemon_write_port_file(port_file, port, &err) != SX_OK)
        die(err.msg);

    wait_stop_signal();
    /* Shutdown (GRPC-CORE.md): stop posting; shutdown_and_notify with a grace
     * period, then cancel; wait for every context with the queue still polled;
     * only then shut the queue down. */
    atomic_store(&s.stopping, true);
    grpc_completion_queue *scq = grpc_completion_queue_create_for_pluck(NULL);
    int tag;
    grpc_server_shutdown_and_notify(s.server, scq, &tag);
    gpr_timespec grace =
        gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(2000, GPR_TIMESPAN));
    if (grpc_completion_queue_pluck(scq, &tag, grace, NULL).type == GRPC_QUEUE_TIMEOUT) {
        grpc_server_cancel_all_calls(s.server);
        grpc_completion_queue_pluck(scq, &tag, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    }
    while (atomic_load(&s.live) > 0)
        sx_clock_sleep_ms(1);
    grpc_completion_queue_shutdown(s.cq);
    pthread_join(th, NULL);
    grpc_server_destroy(s.server);
    grpc_completion_queue_destroy(s.cq);
    grpc_completion_queue_shutdown(scq);
    while (grpc_completion_queue_pluck(scq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
           GRPC_QUEUE_SHUTDOWN) {
    }
    grpc_completion_queue_destroy(scq);
    fprintf(stderr, "raw server: stopping after %llu calls\n", (unsigned long long)s.calls);
    grpc_shutdown();
    sx_rpc_wait_shutdown(2000);
    return 0;
}

/* ============================================================ clients ===== */

/* Shared by one in-flight measurement: counters are written by one completion
 * thread (the layer's client poller, or the raw client's queue thread). */
typedef struct loadgen {
    atomic_int phase;
    atomic_uint_fast64_t done; /* calls completed while measuring */
    atomic_int outstanding;    /* calls in flight */
    atomic_uint_fast64_t errors;
    sx_bench_hist *h;
} loadgen;

typedef struct bench {
    /* the request, as a message (layer) and as bytes (raw) */
    Shardex__Testing__V1__EchoRequest req;
    grpc_slice req_bytes;
    size_t payload;
    /* layer */
    sx_rpc_client *client;
    char layer_addr[64];
    /* raw */
    grpc_channel *raw_ch;
    void *raw_method; /* from grpc_channel_register_call */
    grpc_completion_queue *raw_pluck;
} bench;

static void count_completion(loadgen *g, uint64_t t0, bool ok)
{
    if (!ok)
        atomic_fetch_add(&g->errors, 1);
    if (atomic_load_explicit(&g->phase, memory_order_relaxed) == SX_BENCH_MEASURE) {
        sx_bench_hist_add(g->h, sx_clock_now_ns() - t0);
        atomic_fetch_add_explicit(&g->done, 1, memory_order_relaxed);
    }
}

/* ---- layer ---- */

static bool layer_call(bench *b)
{
    ProtobufCMessage *resp = NULL;
    sx_err err = {0};
    sx_status st = sx_rpc_invoke(b->client, b->layer_addr, &shardex__testing__v1__echo__descriptor,
                                 "Echo", &b->req.base, &resp, NULL, &err);
    bool ok =
        st == SX_OK && ((Shardex__Testing__V1__EchoResponse *)resp)->payload.len == b->payload;
    if (st != SX_OK)
        fprintf(stderr, "layer call: %s\n", err.msg);
    sx_rpc_free(resp);
    return ok;
}

typedef struct layer_slot {
    bench *b;
    loadgen *g;
    uint64_t t0;
} layer_slot;

static void layer_issue(layer_slot *s);

static void layer_done(sx_status st, const sx_err *err, ProtobufCMessage *resp, void *arg)
{
    layer_slot *s = arg;
    bool ok =
        st == SX_OK && ((Shardex__Testing__V1__EchoResponse *)resp)->payload.len == s->b->payload;
    if (st != SX_OK && atomic_load(&s->g->errors) < 5)
        fprintf(stderr, "layer async call: %s\n", err->msg);
    sx_rpc_free(resp);
    count_completion(s->g, s->t0, ok);
    if (atomic_load_explicit(&s->g->phase, memory_order_relaxed) != SX_BENCH_STOP)
        layer_issue(s);
    else
        atomic_fetch_sub(&s->g->outstanding, 1);
}

static void layer_issue(layer_slot *s)
{
    s->t0 = sx_clock_now_ns();
    sx_rpc_invoke_async(s->b->client, s->b->layer_addr, &shardex__testing__v1__echo__descriptor,
                        "Echo", &s->b->req.base, NULL, layer_done, s);
}

/* ---- raw ---- */

typedef struct raw_slot {
    bench *b;
    loadgen *g;
    uint64_t t0;
    grpc_call *call;
    grpc_byte_buffer *send, *recv;
    grpc_metadata_array init_md, trail_md;
    grpc_status_code status;
    grpc_slice details;
} raw_slot;

/* Starts one unary call: one batch of the six ops, tag = the slot. */
static void raw_start(raw_slot *s, grpc_completion_queue *cq)
{
    bench *b = s->b;
    gpr_timespec deadline = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                                         gpr_time_from_millis(CALL_TIMEOUT_MS, GPR_TIMESPAN));
    s->call = grpc_channel_create_registered_call(b->raw_ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq,
                                                  b->raw_method, deadline, NULL);
    s->send = grpc_raw_byte_buffer_create(&b->req_bytes, 1);
    s->recv = NULL;
    grpc_metadata_array_init(&s->init_md);
    grpc_metadata_array_init(&s->trail_md);
    s->details = grpc_empty_slice();
    grpc_op ops[6];
    memset(ops, 0, sizeof(ops));
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = s->send;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &s->init_md;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &s->recv;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &s->trail_md;
    ops[5].data.recv_status_on_client.status = &s->status;
    ops[5].data.recv_status_on_client.status_details = &s->details;
    if (grpc_call_start_batch(s->call, ops, 6, s, NULL) != GRPC_CALL_OK)
        die("raw client: grpc_call_start_batch failed");
}

/* Checks the outcome (status OK, the bytes sent came back) and releases the call. */
static bool raw_finish(raw_slot *s)
{
    bool ok = s->status == GRPC_STATUS_OK && s->recv &&
              grpc_byte_buffer_length(s->recv) == GRPC_SLICE_LENGTH(s->b->req_bytes);
    if (s->status != GRPC_STATUS_OK && (!s->g || atomic_load(&s->g->errors) < 5)) {
        char *d = grpc_slice_to_c_string(s->details);
        fprintf(stderr, "raw call: status %d: %s\n", (int)s->status, d);
        gpr_free(d);
    }
    if (s->recv)
        grpc_byte_buffer_destroy(s->recv);
    grpc_byte_buffer_destroy(s->send);
    grpc_metadata_array_destroy(&s->init_md);
    grpc_metadata_array_destroy(&s->trail_md);
    grpc_slice_unref(s->details);
    grpc_call_unref(s->call);
    s->call = NULL;
    return ok;
}

static bool raw_call(bench *b)
{
    raw_slot s = {.b = b};
    raw_start(&s, b->raw_pluck);
    grpc_event ev =
        grpc_completion_queue_pluck(b->raw_pluck, &s, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    return raw_finish(&s) && ev.success;
}

typedef struct raw_run {
    grpc_completion_queue *cq;
    loadgen *g;
} raw_run;

static void *raw_client_main(void *arg)
{
    raw_run *r = arg;
    for (;;) {
        grpc_event ev = grpc_completion_queue_next(r->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN)
            break;
        if (ev.type != GRPC_OP_COMPLETE)
            continue;
        raw_slot *s = ev.tag;
        bool ok = raw_finish(s) && ev.success;
        count_completion(r->g, s->t0, ok);
        if (atomic_load_explicit(&r->g->phase, memory_order_relaxed) != SX_BENCH_STOP) {
            s->t0 = sx_clock_now_ns();
            raw_start(s, r->cq);
        } else {
            atomic_fetch_sub(&r->g->outstanding, 1);
        }
    }
    return NULL;
}

/* ======================================================== measurement ===== */

/* What a client process reports for one measurement window. */
typedef struct result {
    uint64_t calls;  /* completed in the window */
    uint64_t errors; /* failed calls, warm-up included */
    uint64_t t_ns;   /* window length */
    uint64_t cli_us; /* this client process's CPU in the window */
    uint64_t srv_us; /* the server process's CPU in the window */
    sx_bench_hist h; /* latency of each call timed in the window, ns */
} result;

typedef struct window {
    uint64_t t_ns, cli_us, srv_us;
} window;

static window snap(pid_t server)
{
    window w;
    w.t_ns = sx_clock_now_ns();
    w.cli_us = sx_clock_cpu_us();
    bool ok;
    w.srv_us = sx_bench_proc_cpu_us(server, &ok);
    if (!ok)
        die("cannot read a server's /proc/PID/stat");
    return w;
}

static void set_window(result *r, window a, window z)
{
    r->t_ns = z.t_ns - a.t_ns;
    r->cli_us = z.cli_us - a.cli_us;
    r->srv_us = z.srv_us - a.srv_us;
}

typedef struct params {
    int rounds;
    double seconds, warmup;
    int inflight;
    size_t payload;
    int raw_posted;
    bool pin;
} params;

/* One sequential caller: warm up, then time each call of the window. */
static void run_sequential(bench *b, bool layer, pid_t server, const params *p, result *r)
{
    uint64_t end = sx_clock_now_ns() + (uint64_t)(p->warmup * 1e9);
    while (sx_clock_now_ns() < end)
        if (!(layer ? layer_call(b) : raw_call(b)))
            r->errors++;
    window a = snap(server);
    end = a.t_ns + (uint64_t)(p->seconds * 1e9);
    for (uint64_t t = a.t_ns; t < end; r->calls++) {
        bool ok = layer ? layer_call(b) : raw_call(b);
        uint64_t t1 = sx_clock_now_ns();
        sx_bench_hist_add(&r->h, t1 - t);
        t = t1;
        if (!ok)
            r->errors++;
    }
    set_window(r, a, snap(server));
}

/* N calls kept in flight by the completion thread; the main thread only times. */
static void run_inflight(bench *b, bool layer, pid_t server, const params *p, result *r)
{
    loadgen g;
    atomic_init(&g.phase, SX_BENCH_WARMUP);
    atomic_init(&g.done, 0);
    atomic_init(&g.outstanding, p->inflight);
    atomic_init(&g.errors, 0);
    g.h = &r->h;
    layer_slot *ls = NULL;
    raw_slot *rs = NULL;
    raw_run rr = {0};
    pthread_t th;
    if (layer) {
        ls = calloc((size_t)p->inflight, sizeof(*ls));
        for (int i = 0; i < p->inflight; i++) {
            ls[i] = (layer_slot){.b = b, .g = &g};
            layer_issue(&ls[i]);
        }
    } else {
        rs = calloc((size_t)p->inflight, sizeof(*rs));
        rr.cq = grpc_completion_queue_create_for_next(NULL);
        rr.g = &g;
        pthread_create(&th, NULL, raw_client_main, &rr);
        for (int i = 0; i < p->inflight; i++) {
            rs[i] = (raw_slot){.b = b, .g = &g, .t0 = sx_clock_now_ns()};
            raw_start(&rs[i], rr.cq);
        }
    }
    sx_clock_sleep_ms((uint64_t)(p->warmup * 1000));
    atomic_store(&g.phase, SX_BENCH_MEASURE);
    window a = snap(server);
    sx_clock_sleep_ms((uint64_t)(p->seconds * 1000));
    atomic_store(&g.phase, SX_BENCH_STOP);
    window z = snap(server);
    r->calls = atomic_load(&g.done);
    while (atomic_load(&g.outstanding) > 0)
        sx_clock_sleep_ms(1);
    if (!layer) {
        grpc_completion_queue_shutdown(rr.cq);
        pthread_join(th, NULL);
        grpc_completion_queue_destroy(rr.cq);
    }
    free(ls);
    free(rs);
    r->errors += atomic_load(&g.errors);
    set_window(r, a, z);
}

static bool write_all(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

static bool read_all(int fd, void *buf, size_t n)
{
    char *p = buf;
    while (n > 0) {
        ssize_t r = read(fd, p, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return false;
        p += r;
        n -= (size_t)r;
    }
    return true;
}

static void make_request(bench *b, size_t payload)
{
    b->payload = payload;
    uint8_t *data = malloc(payload ? payload : 1);
    for (size_t i = 0; i < payload; i++)
        data[i] = (uint8_t)('a' + i % 26);
    b->req = (Shardex__Testing__V1__EchoRequest)SHARDEX__TESTING__V1__ECHO_REQUEST__INIT;
    b->req.payload.data = data;
    b->req.payload.len = payload;
}

/* A client process: one kind of client, one server; measures on command.
 * stdin: 's' (sequential window), 'i' (in-flight window), 'q' or EOF (exit).
 * stdout: one `result` per command. */
static int client_main(bool layer, const char *addr, pid_t server, const params *p)
{
    bench b = {0};
    make_request(&b, p->payload);
    if (layer) {
        sx_err err = {0};
        if (sx_rpc_client_create(NULL, &b.client, &err) != SX_OK)
            die(err.msg);
        snprintf(b.layer_addr, sizeof(b.layer_addr), "%s", addr);
    } else {
        grpc_init();
        size_t n = protobuf_c_message_get_packed_size(&b.req.base);
        b.req_bytes = grpc_slice_malloc(n);
        protobuf_c_message_pack(&b.req.base, GRPC_SLICE_START_PTR(b.req_bytes));
        /* The layer client's channel configuration that matters per call:
         * retries are the caller's business (GRPC_ARG_ENABLE_RETRIES 0). */
        grpc_arg arg = {
            .type = GRPC_ARG_INTEGER, .key = (char *)GRPC_ARG_ENABLE_RETRIES, .value.integer = 0};
        grpc_channel_args cargs = {.num_args = 1, .args = &arg};
        grpc_channel_credentials *creds = grpc_insecure_credentials_create();
        b.raw_ch = grpc_channel_create(addr, creds, &cargs);
        grpc_channel_credentials_release(creds);
        b.raw_method = grpc_channel_register_call(b.raw_ch, ECHO_PATH, NULL, NULL);
        b.raw_pluck = grpc_completion_queue_create_for_pluck(NULL);
    }
    /* Connect before the first window. */
    if (!(layer ? layer_call(&b) : raw_call(&b)))
        die("the first call failed");

    result *r = malloc(sizeof(*r));
    char cmd;
    while (read_all(STDIN_FILENO, &cmd, 1) && cmd != 'q') {
        memset(r, 0, sizeof(*r));
        if (cmd == 's')
            run_sequential(&b, layer, server, p, r);
        else
            run_inflight(&b, layer, server, p, r);
        if (!write_all(STDOUT_FILENO, r, sizeof(*r)))
            break;
    }
    free(r);
    if (layer) {
        sx_rpc_client_destroy(b.client);
    } else {
        grpc_completion_queue_shutdown(b.raw_pluck);
        while (
            grpc_completion_queue_pluck(b.raw_pluck, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL)
                .type != GRPC_QUEUE_SHUTDOWN) {
        }
        grpc_completion_queue_destroy(b.raw_pluck);
        grpc_channel_destroy(b.raw_ch);
        grpc_slice_unref(b.req_bytes);
        grpc_shutdown();
    }
    sx_rpc_wait_shutdown(2000);
    free(b.req.payload.data);
    return 0;
}

/* ======================================================= orchestrator ===== */

enum { C_LAYER_SEQ, C_RAW_SEQ, C_LAYER_INF, C_RAW_INF, NCONF };

static void conf_label(int c, int inflight, char *buf, size_t cap)
{
    const char *who = c == C_LAYER_SEQ || c == C_LAYER_INF ? "layer" : "raw core";
    if (c == C_LAYER_SEQ || c == C_RAW_SEQ)
        snprintf(buf, cap, "%s, 1 sequential caller", who);
    else
        snprintf(buf, cap, "%s, %d in flight", who, inflight);
}

static pid_t start_server(const char *self, const char *kind, const char *dir, const params *p,
                          int *port)
{
    char port_file[512], log_file[512], posted[16], cpu[16];
    snprintf(port_file, sizeof(port_file), "%s/%s.port", dir, kind);
    snprintf(log_file, sizeof(log_file), "%s/%s.log", dir, kind);
    snprintf(posted, sizeof(posted), "%d", p->raw_posted);
    snprintf(cpu, sizeof(cpu), "%d", p->pin ? 1 : -1);
    char *argv[] = {(char *)self, "--serve", (char *)kind, "--port-file", port_file,
                    "--posted",   posted,    "--cpu",      cpu,           NULL};
    pid_t pid = sx_h_spawn(argv, log_file);
    *port = sx_h_wait_port_file(port_file, pid, 10000);
    if (*port <= 0) {
        sx_h_dump_log(log_file, 20);
        die("a server did not start");
    }
    return pid;
}

typedef struct client_proc {
    pid_t pid;
    int to, from; /* command pipe, result pipe */
} client_proc;

/* Starts a client process with pipes on its stdin and stdout (stderr inherited).
 * This process has no threads and no gRPC, so fork is safe. */
static client_proc start_client(const char *self, const char *kind, int port, pid_t server,
                                const params *p)
{
    char addr[64], spid[16], cpu[16], secs[32], warm[32], infl[16], pay[32];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    snprintf(spid, sizeof(spid), "%d", (int)server);
    snprintf(cpu, sizeof(cpu), "%d", p->pin ? 0 : -1);
    snprintf(secs, sizeof(secs), "%.3f", p->seconds);
    snprintf(warm, sizeof(warm), "%.3f", p->warmup);
    snprintf(infl, sizeof(infl), "%d", p->inflight);
    snprintf(pay, sizeof(pay), "%zu", p->payload);
    char *argv[] = {(char *)self, "--client",   (char *)kind, "--addr",    addr, "--server-pid",
                    spid,         "--cpu",      cpu,          "--seconds", secs, "--warmup",
                    warm,         "--inflight", infl,         "--payload", pay,  NULL};
    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0)
        die("pipe");
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        die("fork");
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        dup2(in[0], STDIN_FILENO);
        dup2(out[1], STDOUT_FILENO);
        execv(self, argv);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    return (client_proc){.pid = pid, .to = in[1], .from = out[0]};
}

static void client_measure(client_proc *c, char cmd, result *r)
{
    if (!write_all(c->to, &cmd, 1) || !read_all(c->from, r, sizeof(*r)))
        die("a client process failed");
}

/* Ends a client: 'q', then its exit status (SIGKILL after timeout_ms). */
static int stop_client(client_proc *c, uint64_t timeout_ms)
{
    char q = 'q';
    write_all(c->to, &q, 1);
    close(c->to);
    close(c->from);
    uint64_t end = sx_clock_now_ms() + timeout_ms;
    int st = 0;
    while (waitpid(c->pid, &st, WNOHANG) == 0) {
        if (sx_clock_now_ms() >= end) {
            kill(c->pid, SIGKILL);
            waitpid(c->pid, &st, 0);
            return -1;
        }
        sx_clock_sleep_ms(5);
    }
    return st;
}

/* The flags as common/flags parses them; main turns them into params. The
 * orchestrator's flags come first; --serve and --client run this binary as
 * one of the processes the orchestrator starts (start_server, start_client). */
typedef struct opts {
    uint32_t rounds;
    const char *seconds, *warmup; /* decimal seconds */
    uint32_t inflight;
    uint32_t payload;
    uint32_t raw_posted;
    bool pin;
    const char *serve, *port_file, *client, *addr;
    int64_t server_pid;
    int64_t cpu;
} opts;

static const char *const kinds[] = {"layer", "raw", NULL};

#define OFF(m, t) SX_FLAG_OFFSET(opts, m, t)
static const sx_flag flags[] = {
    {.name = "rounds",
     .type = SX_FLAG_UINT32,
     .offset = OFF(rounds, uint32_t),
     .help = "rounds, each measuring layer and raw once per mode (the order alternates)",
     .min = 1,
     .max = 1000},
    {.name = "seconds",
     .type = SX_FLAG_STRING,
     .offset = OFF(seconds, const char *),
     .metavar = "S",
     .help = "seconds of each measured window (a decimal above 0)"},
    {.name = "warmup",
     .type = SX_FLAG_STRING,
     .offset = OFF(warmup, const char *),
     .metavar = "S",
     .help = "seconds of calls before each window, not counted (0 or more)"},
    {.name = "inflight",
     .type = SX_FLAG_UINT32,
     .offset = OFF(inflight, uint32_t),
     .help = "calls in flight in the second mode (closed loop)",
     .min = 1,
     .max = MAX_INFLIGHT},
    {.name = "payload",
     .type = SX_FLAG_UINT32,
     .offset = OFF(payload, uint32_t),
     .metavar = "BYTES",
     .help = "payload bytes of each EchoRequest"},
    {.name = "raw-posted",
     .type = SX_FLAG_UINT32,
     .offset = OFF(raw_posted, uint32_t),
     .help = "calls the raw server keeps requested on its completion queue",
     .min = 1,
     .max = 1024},
    {.name = "pin",
     .type = SX_FLAG_BOOL,
     .offset = OFF(pin, bool),
     .help = "clients on CPU 0, servers on CPU 1 (what bench/run.sh passes)"},
    {.name = "serve",
     .type = SX_FLAG_CHOICE,
     .offset = OFF(serve, const char *),
     .choices = kinds,
     .help = "(internal) be the layer or raw server; needs --port-file"},
    {.name = "port-file",
     .type = SX_FLAG_STRING,
     .offset = OFF(port_file, const char *),
     .metavar = "FILE",
     .help = "(internal, --serve) write the bound port here"},
    {.name = "posted",
     .type = SX_FLAG_UINT32,
     .offset = OFF(raw_posted, uint32_t),
     .help = "(internal, --serve raw) the same as --raw-posted",
     .min = 1,
     .max = 1024},
    {.name = "client",
     .type = SX_FLAG_CHOICE,
     .offset = OFF(client, const char *),
     .choices = kinds,
     .help = "(internal) be the layer or raw client; needs --addr, --server-pid"},
    {.name = "addr",
     .type = SX_FLAG_HOSTPORT,
     .offset = OFF(addr, const char *),
     .help = "(internal, --client) the server to call"},
    {.name = "server-pid",
     .type = SX_FLAG_INT,
     .offset = OFF(server_pid, int64_t),
     .metavar = "PID",
     .help = "(internal, --client) the server whose CPU time is measured",
     .min = 0,
     .max = INT_MAX},
    {.name = "cpu",
     .type = SX_FLAG_INT,
     .offset = OFF(cpu, int64_t),
     .help = "(internal) pin this process to CPU N (-1: no pinning)",
     .min = -1,
     .max = 1023},
};
#undef OFF

static const sx_flags_spec spec = {
    .prog = "bench_rpc",
    .synopsis = "[FLAGS]",
    .description = "Unary calls per second and CPU per call of the rpc layer (common/rpc*.c) "
                   "against a minimal echo on the bare gRPC C core, alternately in the same run, "
                   "each server and client its own process (this binary again, with the internal "
                   "flags). Markdown on stdout (bench/run.sh puts it in docs/benchmarks.md), "
                   "progress on stderr.",
    .flags = flags,
    .count = sizeof(flags) / sizeof(flags[0]),
};

int main(int argc, char **argv)
{
    const opts defaults = {.rounds = 5,
                           .seconds = "2",
                           .warmup = "0.3",
                           .inflight = 64,
                           .payload = 100,
                           .raw_posted = 4,
                           .cpu = -1};
    opts o = defaults;
    sx_bench_flags(&spec, &o, &defaults, argc, argv);
    params p = {.rounds = (int)o.rounds,
                .seconds = sx_bench_seconds(&spec, "seconds", o.seconds, false),
                .warmup = sx_bench_seconds(&spec, "warmup", o.warmup, true),
                .inflight = (int)o.inflight,
                .payload = o.payload,
                .raw_posted = (int)o.raw_posted,
                .pin = o.pin};
    if (o.serve) {
        if (!o.port_file)
            sx_bench_flag_error(&spec, "serve", "needs --port-file");
        pin_to_cpu((int)o.cpu);
        if (strcmp(o.serve, "layer") == 0)
            return serve_layer(o.port_file);
        return serve_raw(o.port_file, p.raw_posted);
    }
    if (o.client) {
        if (!o.addr || o.server_pid <= 0)
            sx_bench_flag_error(&spec, "client", "needs --addr and --server-pid");
        pin_to_cpu((int)o.cpu);
        return client_main(strcmp(o.client, "layer") == 0, o.addr, (pid_t)o.server_pid, &p);
    }

    /* The orchestrator: two servers, two clients, all separate processes. */
    signal(SIGPIPE, SIG_IGN);
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0)
        die("readlink /proc/self/exe");
    self[n] = '\0';
    char *dir = g_tmpdir;
    sx_h_tmpdir(g_tmpdir, sizeof(g_tmpdir), "bench-rpc");
    atexit(remove_tmpdir);
    int layer_port = 0, raw_port = 0;
    pid_t layer_pid = start_server(self, "layer", dir, &p, &layer_port);
    pid_t raw_pid = start_server(self, "raw", dir, &p, &raw_port);
    client_proc cl = start_client(self, "layer", layer_port, layer_pid, &p);
    client_proc cr = start_client(self, "raw", raw_port, raw_pid, &p);

    bench b = {0};
    make_request(&b, p.payload);
    size_t req_len = protobuf_c_message_get_packed_size(&b.req.base);
    free(b.req.payload.data);
    fprintf(stderr,
            "bench_rpc: %d rounds, %.1f s windows after %.1f s warm-up, payload %zu bytes "
            "(request %zu bytes), %d in flight, raw server posts %d requests%s\n",
            p.rounds, p.seconds, p.warmup, p.payload, req_len, p.inflight, p.raw_posted,
            p.pin ? ", clients pinned to CPU 0 and servers to CPU 1" : "");

    double *rate[NCONF], *srv[NCONF], *cli[NCONF];
    sx_bench_hist *hists[NCONF];
    for (int c = 0; c < NCONF; c++) {
        rate[c] = calloc((size_t)p.rounds, sizeof(double));
        srv[c] = calloc((size_t)p.rounds, sizeof(double));
        cli[c] = calloc((size_t)p.rounds, sizeof(double));
        hists[c] = calloc(1, sizeof(sx_bench_hist));
    }
    result *r = malloc(sizeof(*r));
    uint64_t errors = 0;
    for (int round = 0; round < p.rounds; round++) {
        /* A B in even rounds, B A in odd ones. */
        for (int mode = 0; mode < 2; mode++) {
            for (int k = 0; k < 2; k++) {
                bool layer = (k == 0) == (round % 2 == 0);
                int c = mode == 0 ? (layer ? C_LAYER_SEQ : C_RAW_SEQ)
                                  : (layer ? C_LAYER_INF : C_RAW_INF);
                client_measure(layer ? &cl : &cr, mode == 0 ? 's' : 'i', r);
                double calls = r->calls ? (double)r->calls : 1;
                rate[c][round] = (double)r->calls * 1e9 / (double)r->t_ns;
                srv[c][round] = (double)r->srv_us / calls;
                cli[c][round] = (double)r->cli_us / calls;
                sx_bench_hist_merge(hists[c], &r->h);
                errors += r->errors;
                char label[64];
                conf_label(c, p.inflight, label, sizeof(label));
                fprintf(stderr,
                        "round %d %-28s %8.0f calls/s  server %6.1f us/call  client %6.1f "
                        "us/call  p50 %.1f us p99 %.1f us\n",
                        round + 1, label, rate[c][round], srv[c][round], cli[c][round],
                        sx_bench_hist_quantile(&r->h, 0.5) / 1e3,
                        sx_bench_hist_quantile(&r->h, 0.99) / 1e3);
            }
        }
    }
    free(r);

    /* Every process must exit cleanly. */
    int st[4] = {stop_client(&cl, 10000), stop_client(&cr, 10000), sx_h_stop(layer_pid, 10000),
                 sx_h_stop(raw_pid, 10000)};
    bool clean = st[0] == 0 && st[1] == 0 && st[2] == 0 && st[3] == 0;
    if (!clean) {
        fprintf(stderr,
                "bench_rpc: a process did not exit cleanly (status: layer client %d, raw client "
                "%d, layer server %d, raw server %d)\n",
                st[0], st[1], st[2], st[3]);
        char log_file[512];
        snprintf(log_file, sizeof(log_file), "%s/layer.log", dir);
        sx_h_dump_log(log_file, 10);
        snprintf(log_file, sizeof(log_file), "%s/raw.log", dir);
        sx_h_dump_log(log_file, 10);
    }

    /* ---- the tables ---- */
    printf("Closed loop on loopback, %zu-byte payload (a %zu-byte EchoRequest), %d rounds of "
           "%.1f s windows after %.1f s warm-up, layer and raw alternating (A B, then B A); "
           "each client and each server is its own process%s. Medians over rounds; latency "
           "over all windows.\n\n",
           p.payload, req_len, p.rounds, p.seconds, p.warmup,
           p.pin ? "; clients pinned to CPU 0, servers to CPU 1" : "; no CPU pinning");
    printf("| configuration | calls/s | server CPU us/call | client CPU us/call | "
           "latency p50 / p99 / p99.9 us | calls timed |\n");
    printf("| --- | ---: | ---: | ---: | ---: | ---: |\n");
    for (int c = 0; c < NCONF; c++) {
        char label[64], lat[96];
        conf_label(c, p.inflight, label, sizeof(label));
        sx_bench_fmt_latency(hists[c], 1e3, 1, lat, sizeof(lat));
        printf("| %s | %.0f | %.1f | %.1f | %s | %llu |\n", label,
               sx_bench_median(rate[c], p.rounds, NULL, NULL),
               sx_bench_median(srv[c], p.rounds, NULL, NULL),
               sx_bench_median(cli[c], p.rounds, NULL, NULL), lat,
               (unsigned long long)hists[c]->count);
    }
    printf("\n| ratio layer / raw, median of rounds (min - max) | throughput | "
           "server CPU per call | client CPU per call |\n");
    printf("| --- | ---: | ---: | ---: |\n");
    double *v = calloc((size_t)p.rounds, sizeof(double));
    for (int mode = 0; mode < 2; mode++) {
        int a = mode == 0 ? C_LAYER_SEQ : C_LAYER_INF, z = mode == 0 ? C_RAW_SEQ : C_RAW_INF;
        if (mode == 0)
            printf("| 1 sequential caller");
        else
            printf("| %d in flight", p.inflight);
        double *num[3] = {rate[a], srv[a], cli[a]}, *den[3] = {rate[z], srv[z], cli[z]};
        for (int k = 0; k < 3; k++) {
            for (int i = 0; i < p.rounds; i++)
                v[i] = num[k][i] / den[k][i];
            char cell[96];
            sx_bench_fmt_median_range(v, p.rounds, 2, cell, sizeof(cell));
            printf(" | %s", cell);
        }
        printf(" |\n");
    }
    free(v);
    if (errors)
        printf("\n**%llu calls failed during the run: the figures are not valid.**\n",
               (unsigned long long)errors);
    for (int c = 0; c < NCONF; c++) {
        free(rate[c]);
        free(srv[c]);
        free(cli[c]);
        free(hists[c]);
    }
    return errors || !clean ? 1 : 0;
}
