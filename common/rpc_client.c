/* rpc_client.c: unary calls over the gRPC C core, blocking and asynchronous,
 * with deadlines, retries of idempotent calls and the fault layer.
 *
 * One call is an `acall`. Its attempts follow the same steps whether a caller
 * thread waits for them (sx_rpc_invoke, on a pluck queue taken from a small
 * free list) or they run asynchronously (sx_rpc_invoke_async, on the client's
 * shared queue, completed by the poller thread):
 *
 *   plan    count the attempt, ask the fault layer, fix the attempt deadline
 *   delay   (faults) wait before sending
 *   send    one batch of six ops; or, by fault, fail at once or drop
 *   result  status, message and unpacked response; a dropped reply becomes
 *           DEADLINE_EXCEEDED at the attempt deadline
 *   retry   idempotent calls, on UNAVAILABLE or DEADLINE_EXCEEDED, after a
 *           capped, jittered backoff, while the whole deadline allows
 *
 * Asynchronous waits (fault delays, drops, backoff) sit on one timer list
 * served by the timer thread.
 */
#include "rpc_internal.h"

#include "clock.h"
#include "log.h"
#include "mem.h"

#include <grpc/grpc_security.h>
#include <grpc/support/time.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PATH_MAX_LEN 256
#define DEFAULT_MAX_ATTEMPTS 5
#define BACKOFF_BASE_MS 10
#define BACKOFF_CAP_MS 1000

typedef struct chan {
    char *addr;
    grpc_channel *ch;
} chan;

typedef struct acall acall;
struct acall {
    sx__rpc_tag tag; /* the wire batch of the current attempt completed */
    sx_rpc_client *c;
    char path[PATH_MAX_LEN];
    char *addr;
    grpc_channel *ch;
    const ProtobufCMessageDescriptor *out_desc;
    grpc_slice req; /* the packed request, reused by every attempt */
    uint64_t deadline_ms;
    uint64_t attempt_timeout_ms;
    uint32_t max_attempts;
    uint32_t attempt;
    bool idempotent;
    bool wait_for_ready;
    bool is_dup; /* a copy sent by the fault layer: its outcome is ignored */
    sx__fault_action action;
    uint64_t attempt_deadline_ms;

    /* wire state of the current attempt */
    grpc_call *call; /* guarded by c->mu for asynchronous calls (destroy cancels it) */
    grpc_byte_buffer *send_bb;
    grpc_metadata_array init_md, trail_md;
    grpc_metadata md[2]; /* SX__RPC_DEADLINE_KEY, and the client's token if it has one */
    grpc_byte_buffer *resp_bb;
    grpc_status_code status;
    grpc_slice details;

    /* outcome */
    sx_status st;
    sx_err err;
    ProtobufCMessage *resp;

    /* asynchronous calls only */
    sx_rpc_done_cb done;
    void *arg;
    acall *prev, *next; /* in-flight list */
    acall *timer_next;  /* timer list, sorted by timer_at */
    uint64_t timer_at;
    void (*timer_fn)(acall *a);
    uint64_t ticket; /* for sx_rpc_cancel; 0 for duplicates */
    bool cancelled;  /* under c->mu: sx_rpc_cancel asked */
};

struct sx_rpc_client {
    size_t max_message;
    grpc_channel_credentials *creds; /* for every channel: TLS or plaintext */
    char *auth_header;               /* "Bearer TOKEN"; NULL: no token */
    grpc_arg args[8];
    grpc_channel_args chan_args;
    _Atomic uint64_t jitter; /* splitmix64 counter for backoff jitter */

    pthread_mutex_t mu; /* everything below */
    chan *chans;
    size_t nchans, capchans;
    grpc_completion_queue **idle_cqs; /* pluck queues for blocking calls */
    size_t nidle, capidle;
    sx__faults *faults;

    grpc_completion_queue *cq; /* asynchronous calls */
    pthread_t poller;
    pthread_t timer_thread;
    pthread_cond_t timer_cv;
    acall *timers;
    bool timer_stop;
    acall *inflight; /* asynchronous calls not yet completed, duplicates included */
    size_t ninflight;
    uint64_t next_ticket;
    pthread_cond_t idle_cv;
    pthread_cond_t poll_cv; /* wakes the poller when asynchronous calls start */
    bool closing;
};

static void async_begin(acall *a);
static void async_attempt_done(acall *a);

/* -------------------------------------------------------------- channels -- */

static grpc_channel *get_channel(sx_rpc_client *c, const char *addr)
{
    pthread_mutex_lock(&c->mu);
    for (size_t i = 0; i < c->nchans; i++) {
        if (strcmp(c->chans[i].addr, addr) == 0) {
            grpc_channel *ch = c->chans[i].ch;
            pthread_mutex_unlock(&c->mu);
            return ch;
        }
    }
    if (c->nchans == c->capchans) {
        c->capchans = c->capchans ? 2 * c->capchans : 8;
        c->chans = sx_realloc(c->chans, c->capchans * sizeof(*c->chans));
    }
    grpc_channel *ch = grpc_channel_create(addr, c->creds, &c->chan_args);
    c->chans[c->nchans].addr = sx_strdup(addr);
    c->chans[c->nchans].ch = ch;
    c->nchans++;
    pthread_mutex_unlock(&c->mu);
    return ch;
}

grpc_channel *sx__rpc_client_channel(sx_rpc_client *c, const char *addr)
{
    return get_channel(c, addr);
}

const char *sx__rpc_client_auth_header(const sx_rpc_client *c)
{
    return c->auth_header;
}

static grpc_completion_queue *take_cq(sx_rpc_client *c)
{
    grpc_completion_queue *cq = NULL;
    pthread_mutex_lock(&c->mu);
    if (c->nidle > 0)
        cq = c->idle_cqs[--c->nidle];
    pthread_mutex_unlock(&c->mu);
    return cq ? cq : grpc_completion_queue_create_for_pluck(NULL);
}

static void give_cq(sx_rpc_client *c, grpc_completion_queue *cq)
{
    pthread_mutex_lock(&c->mu);
    if (c->nidle == c->capidle) {
        c->capidle = c->capidle ? 2 * c->capidle : 8;
        c->idle_cqs = sx_realloc(c->idle_cqs, c->capidle * sizeof(*c->idle_cqs));
    }
    c->idle_cqs[c->nidle++] = cq;
    pthread_mutex_unlock(&c->mu);
}

/* ----------------------------------------------------------------- calls -- */

static acall *acall_new(sx_rpc_client *c, const char *addr, const ProtobufCServiceDescriptor *svc,
                        const char *method, const ProtobufCMessage *req,
                        const sx_rpc_call_opts *opts, sx_err *err)
{
    const ProtobufCMethodDescriptor *md =
        protobuf_c_service_descriptor_get_method_by_name(svc, method);
    if (!md) {
        sx_err_set(err, SX_UNIMPLEMENTED, "rpc: %s has no method %s", svc->name, method);
        return NULL;
    }
    if (req->descriptor != md->input) {
        sx_err_set(err, SX_INVALID_ARGUMENT, "rpc: %s/%s takes %s, not %s", svc->name, method,
                   md->input->name, req->descriptor->name);
        return NULL;
    }
    acall *a = sx_calloc(1, sizeof(*a));
    if (!sx__rpc_method_path(svc, method, a->path, sizeof(a->path))) {
        free(a);
        sx_err_set(err, SX_INVALID_ARGUMENT, "rpc: method path too long");
        return NULL;
    }
    static const sx_rpc_call_opts zero;
    if (!opts)
        opts = &zero;
    a->c = c;
    a->addr = sx_strdup(addr);
    a->ch = get_channel(c, addr);
    a->out_desc = md->output;
    size_t n = protobuf_c_message_get_packed_size(req);
    a->req = grpc_slice_malloc(n);
    protobuf_c_message_pack(req, GRPC_SLICE_START_PTR(a->req));
    uint64_t timeout = opts->timeout_ms ? opts->timeout_ms : SX_RPC_DEFAULT_TIMEOUT_MS;
    a->deadline_ms = sx_clock_now_ms() + timeout;
    a->attempt_timeout_ms = opts->attempt_timeout_ms ? opts->attempt_timeout_ms : timeout;
    a->idempotent = opts->idempotent;
    a->max_attempts =
        opts->idempotent ? (opts->max_attempts ? opts->max_attempts : DEFAULT_MAX_ATTEMPTS) : 1;
    a->wait_for_ready = opts->wait_for_ready;
    return a;
}

static void acall_free(acall *a)
{
    grpc_slice_unref(a->req);
    sx_rpc_free(a->resp);
    free(a->addr);
    free(a);
}

static void plan_attempt(acall *a)
{
    a->attempt++;
    pthread_mutex_lock(&a->c->mu);
    a->action = sx__faults_decide(a->c->faults, a->path, a->addr);
    pthread_mutex_unlock(&a->c->mu);
    uint64_t now = sx_clock_now_ms();
    a->attempt_deadline_ms = now + a->attempt_timeout_ms;
    if (a->attempt_deadline_ms > a->deadline_ms)
        a->attempt_deadline_ms = a->deadline_ms;
    sx_rpc_free(a->resp);
    a->resp = NULL;
    sx_err_clear(&a->err);
    a->st = SX_OK;
}

static void set_outcome(acall *a, sx_status st, const char *detail)
{
    a->st = st;
    sx_err_set(&a->err, st, "%s: %s", a->path, detail);
    sx_rpc_free(a->resp);
    a->resp = NULL;
}

/* Starts the wire batch of the current attempt on cq with tag. */
static void wire_start(acall *a, grpc_completion_queue *cq)
{
    grpc_slice method = grpc_slice_from_copied_string(a->path);
    a->call = grpc_channel_create_call(a->ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq, method, NULL,
                                       sx__rpc_deadline_from_ms(a->attempt_deadline_ms), NULL);
    grpc_slice_unref(method);
    grpc_metadata_array_init(&a->init_md);
    grpc_metadata_array_init(&a->trail_md);
    a->send_bb = grpc_raw_byte_buffer_create(&a->req, 1);
    a->resp_bb = NULL;
    a->details = grpc_empty_slice();
    char wall[24];
    uint64_t now = sx_clock_now_ms(),
             left = a->attempt_deadline_ms > now ? a->attempt_deadline_ms - now : 0;
    int n = snprintf(wall, sizeof(wall), "%llu", (unsigned long long)(sx_clock_wall_ms() + left));
    memset(a->md, 0, sizeof(a->md));
    a->md[0].key = grpc_slice_from_static_string(SX__RPC_DEADLINE_KEY);
    a->md[0].value = grpc_slice_from_copied_buffer(wall, (size_t)n);
    size_t nmd = 1;
    if (a->c->auth_header) {
        a->md[1].key = grpc_slice_from_static_string("authorization");
        a->md[1].value = grpc_slice_from_static_string(a->c->auth_header);
        nmd++;
    }
    grpc_op ops[6];
    memset(ops, 0, sizeof(ops));
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[0].data.send_initial_metadata.count = nmd;
    ops[0].data.send_initial_metadata.metadata = a->md;
    if (a->wait_for_ready)
        ops[0].flags = GRPC_INITIAL_METADATA_WAIT_FOR_READY;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = a->send_bb;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &a->init_md;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &a->resp_bb;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &a->trail_md;
    ops[5].data.recv_status_on_client.status = &a->status;
    ops[5].data.recv_status_on_client.status_details = &a->details;
    grpc_call_error rc = grpc_call_start_batch(a->call, ops, 6, &a->tag, NULL);
    if (rc != GRPC_CALL_OK) {
        /* Only misuse gets here; report it as the call's outcome. */
        SX_LOG(SX_LOG_ERROR, "rpc", "cannot start call method=%s grpc_error=%d", a->path, (int)rc);
        abort();
    }
}

/* Reads the outcome of the completed batch and releases its wire state. */
static grpc_call *wire_finish(acall *a)
{
    if (a->status == GRPC_STATUS_OK) {
        if (!a->resp_bb) {
            set_outcome(a, SX_INTERNAL, "the reply carries no message");
        } else {
            a->resp = sx__rpc_unpack(a->out_desc, a->resp_bb);
            a->st = SX_OK;
            if (!a->resp)
                set_outcome(a, SX_INTERNAL, "the reply is not a valid response message");
        }
    } else {
        sx_status st = sx_status_from_grpc_code((int)a->status);
        a->st = st;
        a->err.code = st;
        size_t n = GRPC_SLICE_LENGTH(a->details);
        if (n == 0) {
            snprintf(a->err.msg, sizeof(a->err.msg), "%s", sx_status_name(st));
        } else {
            if (n >= sizeof(a->err.msg))
                n = sizeof(a->err.msg) - 1;
            memcpy(a->err.msg, GRPC_SLICE_START_PTR(a->details), n);
            a->err.msg[n] = '\0';
        }
    }
    grpc_slice_unref(a->details);
    grpc_slice_unref(a->md[0].value); /* md[1]'s is static */
    grpc_metadata_array_destroy(&a->init_md);
    grpc_metadata_array_destroy(&a->trail_md);
    if (a->resp_bb)
        grpc_byte_buffer_destroy(a->resp_bb);
    grpc_byte_buffer_destroy(a->send_bb);
    a->resp_bb = NULL;
    a->send_bb = NULL;
    grpc_call *call = a->call;
    return call; /* the caller unrefs it (asynchronous calls under the lock) */
}

static uint64_t jitter_draw(sx_rpc_client *c)
{
    uint64_t z = atomic_fetch_add(&c->jitter, 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Whether to try again, and after how long: idempotent calls, transient
 * statuses, attempts and time left. Backoff doubles from BACKOFF_BASE_MS up to
 * BACKOFF_CAP_MS, with half of it random so that callers do not move in step. */
static bool retry_after(acall *a, uint64_t *delay_ms)
{
    if (a->st == SX_OK || !a->idempotent || a->is_dup || a->attempt >= a->max_attempts)
        return false;
    if (a->st != SX_UNAVAILABLE && a->st != SX_DEADLINE_EXCEEDED)
        return false;
    uint32_t shift = a->attempt < 10 ? a->attempt - 1 : 9;
    uint64_t cap = (uint64_t)BACKOFF_BASE_MS << shift;
    if (cap > BACKOFF_CAP_MS)
        cap = BACKOFF_CAP_MS;
    uint64_t d = cap / 2 + jitter_draw(a->c) % (cap / 2 + 1);
    if (sx_clock_now_ms() + d >= a->deadline_ms)
        return false;
    *delay_ms = d;
    return true;
}

static void sleep_until(uint64_t at_ms)
{
    uint64_t now = sx_clock_now_ms();
    if (at_ms > now)
        sx_clock_sleep_ms(at_ms - now);
}

static void send_duplicate(acall *a);

/* A fault delay that reached the attempt's deadline fails the attempt with
 * DEADLINE_EXCEEDED instead of sending it: a message that slow on a real
 * network arrives too late to be served, while one sent with a deadline less
 * than a millisecond away could still be answered by a fast handler. */
static void fail_if_delayed_past_deadline(acall *a)
{
    if (a->action.delay_ms && sx_clock_now_ms() >= a->attempt_deadline_ms) {
        a->action.kind = SX__FAULT_FAIL;
        a->action.fail_code = SX_DEADLINE_EXCEEDED;
    }
}

sx_status sx_rpc_invoke(sx_rpc_client *c, const char *addr, const ProtobufCServiceDescriptor *svc,
                        const char *method, const ProtobufCMessage *req, ProtobufCMessage **resp,
                        const sx_rpc_call_opts *opts, sx_err *err)
{
    *resp = NULL;
    acall *a = acall_new(c, addr, svc, method, req, opts, err);
    if (!a)
        return err ? err->code : SX_INVALID_ARGUMENT;
    grpc_completion_queue *cq = take_cq(c);
    for (;;) {
        plan_attempt(a);
        if (a->action.delay_ms) {
            uint64_t at = sx_clock_now_ms() + a->action.delay_ms;
            sleep_until(at < a->attempt_deadline_ms ? at : a->attempt_deadline_ms);
        }
        fail_if_delayed_past_deadline(a);
        switch (a->action.kind) {
        case SX__FAULT_FAIL:
            set_outcome(a, a->action.fail_code, "fault injected: call failed");
            break;
        case SX__FAULT_DROP:
            sleep_until(a->attempt_deadline_ms);
            set_outcome(a, SX_DEADLINE_EXCEEDED, "fault injected: request dropped");
            break;
        default:
            if (a->action.kind == SX__FAULT_DUP)
                send_duplicate(a);
            wire_start(a, cq);
            grpc_completion_queue_pluck(cq, &a->tag, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
            grpc_call_unref(wire_finish(a));
            a->call = NULL;
            if (a->action.kind == SX__FAULT_DROP_REPLY) {
                sleep_until(a->attempt_deadline_ms);
                set_outcome(a, SX_DEADLINE_EXCEEDED, "fault injected: reply dropped");
            }
        }
        uint64_t d;
        if (!retry_after(a, &d))
            break;
        sx_clock_sleep_ms(d);
    }
    give_cq(c, cq);
    sx_status st = a->st;
    if (st == SX_OK) {
        *resp = a->resp;
        a->resp = NULL;
    } else if (err) {
        *err = a->err;
    }
    acall_free(a);
    return st;
}

/* ---------------------------------------------------------- asynchronous -- */

static void timer_add(acall *a, uint64_t at_ms, void (*fn)(acall *))
{
    sx_rpc_client *c = a->c;
    a->timer_at = at_ms;
    a->timer_fn = fn;
    pthread_mutex_lock(&c->mu);
    acall **pp = &c->timers;
    while (*pp && (*pp)->timer_at <= at_ms)
        pp = &(*pp)->timer_next;
    a->timer_next = *pp;
    *pp = a;
    if (c->timers == a)
        pthread_cond_signal(&c->timer_cv);
    pthread_mutex_unlock(&c->mu);
}

static void *timer_main(void *arg)
{
    sx_rpc_client *c = arg;
    pthread_mutex_lock(&c->mu);
    while (!c->timer_stop) {
        acall *t = c->timers;
        if (!t) {
            pthread_cond_wait(&c->timer_cv, &c->mu);
            continue;
        }
        uint64_t now = sx_clock_now_ms();
        if (t->timer_at > now && !c->closing) {
            uint64_t ns = sx_clock_now_ns() + (t->timer_at - now) * 1000000ull;
            struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000ull),
                                  .tv_nsec = (long)(ns % 1000000000ull)};
            pthread_cond_timedwait(&c->timer_cv, &c->mu, &ts);
            continue;
        }
        c->timers = t->timer_next;
        pthread_mutex_unlock(&c->mu);
        t->timer_fn(t);
        pthread_mutex_lock(&c->mu);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

/* The poller sleeps on a condition variable while no asynchronous call is in
 * flight: a thread idling in grpc_completion_queue_next would otherwise take
 * the network events of blocking calls and hand them over with extra thread
 * switches (measured: 1.4x the client CPU of a sequential caller). */
static void *client_poll_main(void *arg)
{
    sx_rpc_client *c = arg;
    for (;;) {
        pthread_mutex_lock(&c->mu);
        while (c->ninflight == 0 && !c->closing)
            pthread_cond_wait(&c->poll_cv, &c->mu);
        pthread_mutex_unlock(&c->mu);
        gpr_timespec wake =
            gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(200, GPR_TIMESPAN));
        grpc_event ev = grpc_completion_queue_next(c->cq, wake, NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN)
            break;
        if (ev.type == GRPC_OP_COMPLETE) {
            sx__rpc_tag *tag = ev.tag;
            tag->cb(tag, ev.success != 0);
        }
    }
    return NULL;
}

static bool client_closing(sx_rpc_client *c)
{
    pthread_mutex_lock(&c->mu);
    bool closing = c->closing;
    pthread_mutex_unlock(&c->mu);
    return closing;
}

/* Whether a is to end now, and with what: the client closes (CANCELLED,
 * "client is shutting down") or its caller cancelled it (CANCELLED). Sets
 * the outcome when so. */
static bool ends_now(acall *a)
{
    pthread_mutex_lock(&a->c->mu);
    bool closing = a->c->closing, cancelled = a->cancelled;
    pthread_mutex_unlock(&a->c->mu);
    if (closing)
        set_outcome(a, SX_CANCELLED, "client is shutting down");
    else if (cancelled)
        set_outcome(a, SX_CANCELLED, "cancelled by the caller");
    return closing || cancelled;
}

/* Runs the callback (unless a duplicate) and forgets the call. */
static void async_complete(acall *a)
{
    sx_rpc_client *c = a->c;
    if (a->done) {
        ProtobufCMessage *resp = a->resp;
        a->resp = NULL;
        a->done(a->st, &a->err, resp, a->arg);
    }
    pthread_mutex_lock(&c->mu);
    if (a->prev)
        a->prev->next = a->next;
    else
        c->inflight = a->next;
    if (a->next)
        a->next->prev = a->prev;
    if (--c->ninflight == 0)
        pthread_cond_broadcast(&c->idle_cv);
    pthread_mutex_unlock(&c->mu);
    acall_free(a);
}

/* Adds a to the in-flight list; false (and a completes CANCELLED) when closing. */
static bool async_track(acall *a)
{
    sx_rpc_client *c = a->c;
    pthread_mutex_lock(&c->mu);
    a->prev = NULL;
    a->next = c->inflight;
    if (c->inflight)
        c->inflight->prev = a;
    c->inflight = a;
    if (c->ninflight++ == 0)
        pthread_cond_signal(&c->poll_cv);
    bool closing = c->closing;
    pthread_mutex_unlock(&c->mu);
    if (closing) {
        set_outcome(a, SX_CANCELLED, "client is shutting down");
        async_complete(a);
    }
    return !closing;
}

static void on_wire_done(sx__rpc_tag *tag, bool ok)
{
    (void)ok; /* the outcome is in the status */
    acall *a = SX__CONTAINER_OF(tag, acall, tag);
    pthread_mutex_lock(&a->c->mu);
    grpc_call *call = wire_finish(a);
    a->call = NULL;
    pthread_mutex_unlock(&a->c->mu);
    grpc_call_unref(call);
    if (a->is_dup) {
        async_complete(a);
        return;
    }
    if (a->action.kind == SX__FAULT_DROP_REPLY) {
        set_outcome(a, SX_DEADLINE_EXCEEDED, "fault injected: reply dropped");
        timer_add(a, a->attempt_deadline_ms, async_attempt_done);
        return;
    }
    async_attempt_done(a);
}

static void async_wire_start(acall *a)
{
    pthread_mutex_lock(&a->c->mu);
    if (a->c->closing || a->cancelled) {
        bool closing = a->c->closing;
        pthread_mutex_unlock(&a->c->mu);
        set_outcome(a, SX_CANCELLED,
                    closing ? "client is shutting down" : "cancelled by the caller");
        async_complete(a);
        return;
    }
    wire_start(a, a->c->cq);
    pthread_mutex_unlock(&a->c->mu);
}

/* The fault layer's duplicate: the same bytes as a separate call, outcome ignored. */
static void send_duplicate(acall *a)
{
    acall *d = sx_calloc(1, sizeof(*d));
    d->tag.cb = on_wire_done;
    d->c = a->c;
    memcpy(d->path, a->path, sizeof(d->path));
    d->addr = sx_strdup(a->addr);
    d->ch = a->ch;
    d->out_desc = a->out_desc;
    d->req = grpc_slice_ref(a->req);
    d->deadline_ms = d->attempt_deadline_ms = a->attempt_deadline_ms;
    d->max_attempts = 1;
    d->is_dup = true;
    if (async_track(d))
        async_wire_start(d);
}

static void async_fire(acall *a)
{
    if (ends_now(a)) {
        async_complete(a);
        return;
    }
    fail_if_delayed_past_deadline(a);
    switch (a->action.kind) {
    case SX__FAULT_FAIL:
        set_outcome(a, a->action.fail_code, "fault injected: call failed");
        async_attempt_done(a);
        return;
    case SX__FAULT_DROP:
        set_outcome(a, SX_DEADLINE_EXCEEDED, "fault injected: request dropped");
        timer_add(a, a->attempt_deadline_ms, async_attempt_done);
        return;
    default:
        if (a->action.kind == SX__FAULT_DUP)
            send_duplicate(a);
        async_wire_start(a);
    }
}

static void async_begin(acall *a)
{
    if (ends_now(a)) { /* cancelled during a retry's backoff */
        async_complete(a);
        return;
    }
    plan_attempt(a);
    if (a->action.delay_ms) {
        uint64_t at = sx_clock_now_ms() + a->action.delay_ms;
        timer_add(a, at < a->attempt_deadline_ms ? at : a->attempt_deadline_ms, async_fire);
    } else {
        async_fire(a);
    }
}

static void async_attempt_done(acall *a)
{
    uint64_t d;
    pthread_mutex_lock(&a->c->mu);
    bool cancelled = a->cancelled;
    pthread_mutex_unlock(&a->c->mu);
    if (cancelled && a->st != SX_OK)
        set_outcome(a, SX_CANCELLED, "cancelled by the caller");
    if (!cancelled && !client_closing(a->c) && retry_after(a, &d))
        timer_add(a, sx_clock_now_ms() + d, async_begin);
    else
        async_complete(a);
}

void sx_rpc_invoke_async(sx_rpc_client *c, const char *addr, const ProtobufCServiceDescriptor *svc,
                         const char *method, const ProtobufCMessage *req,
                         const sx_rpc_call_opts *opts, sx_rpc_done_cb done, void *arg)
{
    sx_err err = {0};
    acall *a = acall_new(c, addr, svc, method, req, opts, &err);
    if (!a) {
        done(err.code, &err, NULL, arg);
        return;
    }
    a->tag.cb = on_wire_done;
    a->done = done;
    a->arg = arg;
    pthread_mutex_lock(&c->mu);
    a->ticket = ++c->next_ticket;
    pthread_mutex_unlock(&c->mu);
    if (opts && opts->ticket)
        *opts->ticket = a->ticket;
    if (async_track(a))
        async_begin(a);
}

void sx_rpc_cancel(sx_rpc_client *c, uint64_t ticket)
{
    if (!c || !ticket)
        return;
    pthread_mutex_lock(&c->mu);
    acall *a = c->inflight;
    while (a && a->ticket != ticket)
        a = a->next;
    if (a && !a->cancelled) {
        a->cancelled = true;
        if (a->call) {
            grpc_call_cancel(a->call, NULL); /* completes on the poller, CANCELLED */
        } else {
            /* On the timer list (a fault delay or drop, a retry's backoff):
             * its step runs now and ends it. Otherwise it is between steps,
             * and the next one sees the flag. */
            acall **pp = &c->timers;
            while (*pp && *pp != a)
                pp = &(*pp)->timer_next;
            if (*pp) {
                *pp = a->timer_next;
                a->timer_at = 0;
                a->timer_next = c->timers;
                c->timers = a;
                pthread_cond_signal(&c->timer_cv);
            }
        }
    }
    pthread_mutex_unlock(&c->mu);
}

/* ---------------------------------------------------------------- client -- */

sx_status sx_rpc_client_create(const sx_rpc_client_opts *opts, sx_rpc_client **out, sx_err *err)
{
    static const sx_rpc_client_opts zero;
    if (!opts)
        opts = &zero;
    *out = NULL;
    const char *spec = opts->faults ? opts->faults : getenv("SHARDEX_FAULTS");
    sx__faults *faults = NULL;
    sx_status st = sx__faults_parse(spec, &faults, err);
    if (st != SX_OK)
        return st;
    char *ca = NULL, *cert = NULL, *key = NULL;
    if (opts->tls && (st = sx__rpc_tls_read(opts->tls, false, &ca, &cert, &key, err)) != SX_OK) {
        sx__faults_free(faults);
        return st;
    }
    if (opts->token && (!opts->token[0] || strpbrk(opts->token, " \t\r\n"))) {
        sx__faults_free(faults);
        free(ca);
        free(cert);
        free(key);
        return sx_err_set(err, SX_INVALID_ARGUMENT, "token: empty or with blanks");
    }
    if (faults)
        SX_LOG(SX_LOG_WARN, "rpc", "fault injection on faults=\"%s\"", spec);

    grpc_init();
    sx_rpc_client *c = sx_calloc(1, sizeof(*c));
    if (ca) {
        grpc_ssl_pem_key_cert_pair pair = {.private_key = key, .cert_chain = cert};
        c->creds = grpc_ssl_credentials_create(ca, cert ? &pair : NULL, NULL, NULL);
    } else {
        c->creds = grpc_insecure_credentials_create();
    }
    free(ca);
    free(cert);
    free(key);
    if (opts->token) {
        size_t n = strlen(opts->token) + sizeof("Bearer ");
        c->auth_header = sx_malloc(n);
        snprintf(c->auth_header, n, "Bearer %s", opts->token);
    }
    c->faults = faults;
    c->max_message = opts->max_message_bytes ? opts->max_message_bytes : SX_RPC_DEFAULT_MAX_MESSAGE;
    atomic_init(&c->jitter, sx_clock_now_ns() ^ (uint64_t)(uintptr_t)c);
    /* Our own retries are explicit; a restarted peer should be reconnected to
     * within a second rather than after gRPC's default backoff of up to 2
     * minutes. The "min reconnect backoff" is also the least time gRPC gives
     * one connection attempt (TCP, TLS handshake, the server's SETTINGS), not
     * a wait between attempts: at 100 ms, a TLS handshake with a busy peer
     * (sanitizers, a loaded machine) timed out attempt after attempt until
     * the call's deadline ("connection attempt timed out before receiving
     * SETTINGS frame"). A refused connection still fails at once and is
     * retried after the 100 ms..1 s backoff. */
    static const struct {
        const char *key;
        int value;
    } ints[] = {
        {GRPC_ARG_ENABLE_RETRIES, 0},
        {GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100},
        {GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 3000},
        {GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000},
        /* Peers are cluster members, never reached through an http_proxy
         * from the environment (which would answer for an unreachable one). */
        {GRPC_ARG_ENABLE_HTTP_PROXY, 0},
        /* Connections of their own: two clients in one process are two
         * clients to a server (its per-client limits), and one's trouble
         * does not stall the other. */
        {GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1},
    };
    size_t n = 0;
    for (; n < sizeof(ints) / sizeof(ints[0]); n++) {
        c->args[n].type = GRPC_ARG_INTEGER;
        c->args[n].key = (char *)ints[n].key;
        c->args[n].value.integer = ints[n].value;
    }
    c->args[n].type = GRPC_ARG_INTEGER;
    c->args[n].key = (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
    c->args[n].value.integer = (int)c->max_message;
    n++;
    c->chan_args.num_args = n;
    c->chan_args.args = c->args;

    pthread_mutex_init(&c->mu, NULL);
    pthread_condattr_t cattr;
    pthread_condattr_init(&cattr);
    pthread_condattr_setclock(&cattr, CLOCK_MONOTONIC);
    pthread_cond_init(&c->timer_cv, &cattr);
    pthread_condattr_destroy(&cattr);
    pthread_cond_init(&c->idle_cv, NULL);
    pthread_cond_init(&c->poll_cv, NULL);
    c->cq = grpc_completion_queue_create_for_next(NULL);
    pthread_create(&c->poller, NULL, client_poll_main, c);
    pthread_setname_np(c->poller, "rpc-client");
    pthread_create(&c->timer_thread, NULL, timer_main, c);
    pthread_setname_np(c->timer_thread, "rpc-timer");
    *out = c;
    return SX_OK;
}

sx_status sx_rpc_client_set_faults(sx_rpc_client *c, const char *spec, sx_err *err)
{
    sx__faults *f = NULL;
    sx_status st = sx__faults_parse(spec, &f, err);
    if (st != SX_OK)
        return st;
    pthread_mutex_lock(&c->mu);
    sx__faults *old = c->faults;
    c->faults = f;
    pthread_mutex_unlock(&c->mu);
    sx__faults_free(old);
    return SX_OK;
}

void sx_rpc_client_fault_stats(sx_rpc_client *c, sx_rpc_fault_stats *out)
{
    pthread_mutex_lock(&c->mu);
    sx__faults_stats(c->faults, out);
    pthread_mutex_unlock(&c->mu);
}

void sx_rpc_client_destroy(sx_rpc_client *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    c->closing = true;
    for (acall *a = c->inflight; a; a = a->next)
        if (a->call)
            grpc_call_cancel(a->call, NULL);
    pthread_cond_signal(&c->timer_cv); /* due or not, timers now fire at once */
    while (c->ninflight > 0)
        pthread_cond_wait(&c->idle_cv, &c->mu);
    c->timer_stop = true;
    pthread_cond_signal(&c->timer_cv);
    pthread_cond_signal(&c->poll_cv);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->timer_thread, NULL);
    grpc_completion_queue_shutdown(c->cq);
    pthread_join(c->poller, NULL);
    grpc_completion_queue_destroy(c->cq);
    for (size_t i = 0; i < c->nidle; i++) {
        grpc_completion_queue_shutdown(c->idle_cqs[i]);
        while (grpc_completion_queue_pluck(c->idle_cqs[i], NULL, gpr_inf_future(GPR_CLOCK_REALTIME),
                                           NULL)
                   .type != GRPC_QUEUE_SHUTDOWN) {
        }
        grpc_completion_queue_destroy(c->idle_cqs[i]);
    }
    for (size_t i = 0; i < c->nchans; i++) {
        grpc_channel_destroy(c->chans[i].ch);
        free(c->chans[i].addr);
    }
    sx__faults_free(c->faults);
    grpc_channel_credentials_release(c->creds);
    free(c->auth_header);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->timer_cv);
    pthread_cond_destroy(&c->idle_cv);
    pthread_cond_destroy(&c->poll_cv);
    free(c->idle_cqs);
    free(c->chans);
    free(c);
    grpc_shutdown();
}
