/* echo_service.c: handlers of the test Echo service. */
#include "echo_service.h"

#include "clock.h"

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

static const sx_rpc_method echo_methods[] = {
    {"Echo", echo, SX_RPC_INLINE},
    {"Sleep", sleep_echo, SX_RPC_BLOCKING},
    {"Fail", fail, SX_RPC_INLINE},
    {"Deadline", deadline_echo, SX_RPC_INLINE},
};

sx_status sx_echo_service_add(sx_rpc_server *s, sx_echo_state *state, sx_err *err)
{
    return sx_rpc_server_add_service(s, &shardex__testing__v1__echo__descriptor, echo_methods,
                                     sizeof(echo_methods) / sizeof(echo_methods[0]), state, err);
}
