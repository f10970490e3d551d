/* echo_service.c: handlers of the test Echo service. */
#include "echo_service.h"

#include "clock.h"

#include <pthread.h>
#include <stdlib.h>

static sx_status echo(sx_rpc_call *call, const ProtobufCMessage *req, ProtobufCMessage *resp,
                      void *arg, sx_err *err)
{
    (void)call;
    (void)err;
    sx_echo_state *st = arg;
    const Shardex__Testing__V1__EchoRequest *in = (const void *)req;
    Shardex__Testing__V1__EchoResponse *out = (void *)resp;
    out->payload = in->payload; /* borrowed: req outlives the reply's packing */
    out->calls = atomic_fetch_add(&st->calls, 1) + 1;
    return SX_OK;
}

static sx_status sleep_echo(sx_rpc_call *call, const ProtobufCMessage *req, ProtobufCMessage *resp,
                            void *arg, sx_err *err)
{
    sx_echo_state *st = arg;
    const Shardex__Testing__V1__EchoRequest *in = (const void *)req;
    atomic_fetch_add(&st->sleeping, 1);
    sx_clock_sleep_ms(in->sleep_ms);
    atomic_fetch_sub(&st->sleeping, 1);
    return echo(call, req, resp, arg, err);
}

static sx_status deadline_echo(sx_rpc_call *call, const ProtobufCMessage *req,
                               ProtobufCMessage *resp, void *arg, sx_err *err)
{
    uint64_t d = sx_rpc_call_deadline_ms(call), now = sx_clock_now_ms();
    ((Shardex__Testing__V1__EchoResponse *)resp)->deadline_left_ms = d > now ? d - now : 0;
    return echo(call, req, resp, arg, err);
}

static sx_status fail(sx_rpc_call *call, const ProtobufCMessage *req, ProtobufCMessage *resp,
                      void *arg, sx_err *err)
{
    (void)call;
    (void)resp;
    (void)arg;
    const Shardex__Testing__V1__FailRequest *in = (const void *)req;
    return sx_err_set(err, (sx_status)in->code, "%s", in->message);
}

/* ---------------------------------------------------------------- Count -- */

/* One Count stream: its thread sends, the rpc layer may end it (on_cancel). */
typedef struct counter {
    sx_rpc_call *call;
    sx_echo_state *st;
    const Shardex__Testing__V1__CountRequest *req; /* borrowed from the call */
    _Atomic int ended;                             /* 0, or the status on_cancel gave */
} counter;

static void counter_cancel(void *arg, sx_status why)
{
    atomic_store(&((counter *)arg)->ended, (int)why);
}

static void *counter_main(void *arg)
{
    counter *k = arg;
    sx_status st = SX_OK;
    for (uint32_t i = 1; k->req->count == 0 || i <= k->req->count;) {
        if ((st = (sx_status)atomic_load(&k->ended)) != SX_OK)
            break;
        Shardex__Testing__V1__EchoResponse m = SHARDEX__TESTING__V1__ECHO_RESPONSE__INIT;
        m.payload = k->req->payload;
        m.calls = i;
        sx_status s = sx_rpc_call_send(k->call, &m.base);
        if (s == SX_RESOURCE_EXHAUSTED) { /* the client reads slower: wait for room */
            sx_clock_sleep_ms(1);
            continue;
        }
        if (s != SX_OK) { /* over: on_cancel says why, or is about to */
            sx_clock_sleep_ms(1);
            continue;
        }
        i++;
        if (k->req->interval_ms)
            sx_clock_sleep_ms(k->req->interval_ms);
    }
    _Atomic uint64_t *outcome = st == SX_OK            ? &k->st->streams_completed
                                : st == SX_UNAVAILABLE ? &k->st->streams_unavailable
                                                       : &k->st->streams_cancelled;
    atomic_fetch_add(outcome, 1);
    atomic_fetch_sub(&k->st->streams_open, 1);
    sx_err err = {0};
    if (st != SX_OK)
        sx_err_set(&err, st, "the stream ended after the client left or the server stopped");
    sx_rpc_call_finish(k->call, st, &err);
    free(k);
    return NULL;
}

static sx_status count(sx_rpc_call *call, const ProtobufCMessage *req, ProtobufCMessage *resp,
                       void *arg, sx_err *err)
{
    (void)resp;
    counter *k = calloc(1, sizeof(*k));
    if (!k)
        return sx_err_set(err, SX_RESOURCE_EXHAUSTED, "out of memory");
    k->call = call;
    k->st = arg;
    k->req = (const void *)req;
    atomic_init(&k->ended, 0);
    atomic_fetch_add(&k->st->streams_open, 1);
    sx_rpc_call_on_cancel(call, counter_cancel, k);
    pthread_t t;
    if (pthread_create(&t, NULL, counter_main, k) != 0) {
        atomic_fetch_sub(&k->st->streams_open, 1);
        free(k);
        return sx_err_set(err, SX_RESOURCE_EXHAUSTED, "cannot start a stream thread");
    }
    pthread_detach(t);
    return SX_OK;
}

static sx_status stream_stats(sx_rpc_call *call, const ProtobufCMessage *req,
                              ProtobufCMessage *resp, void *arg, sx_err *err)
{
    (void)call;
    (void)req;
    (void)err;
    sx_echo_state *st = arg;
    Shardex__Testing__V1__StreamStatsResponse *out = (void *)resp;
    out->open = atomic_load(&st->streams_open);
    out->completed = atomic_load(&st->streams_completed);
    out->cancelled = atomic_load(&st->streams_cancelled);
    out->unavailable = atomic_load(&st->streams_unavailable);
    return SX_OK;
}

static const sx_rpc_method echo_methods[] = {
    {"Echo", echo, SX_RPC_INLINE},   {"Sleep", sleep_echo, SX_RPC_BLOCKING},
    {"Fail", fail, SX_RPC_INLINE},   {"Deadline", deadline_echo, SX_RPC_INLINE},
    {"Count", count, SX_RPC_STREAM}, {"StreamStats", stream_stats, SX_RPC_INLINE},
};

sx_status sx_echo_service_add(sx_rpc_server *s, sx_echo_state *state, sx_err *err)
{
    return sx_rpc_server_add_service(s, &shardex__testing__v1__echo__descriptor, echo_methods,
                                     sizeof(echo_methods) / sizeof(echo_methods[0]), state, err);
}
