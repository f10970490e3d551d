/* rpc_stream.c: client streams over the gRPC C core (rpc.h, "client
 * streams"): one call whose messages go both ways, for etcd's lease
 * keepalive and watch, and any other streaming method.
 *
 * A stream owns a completion queue and a thread polling it; every batch it
 * starts carries one of four tags, and the thread runs the tag's callback:
 *
 *   start   SEND_INITIAL_METADATA, started at open; holds the send slot
 *   send    one SEND_MESSAGE or SEND_CLOSE_FROM_CLIENT at a time, from a queue
 *   recv    RECV_INITIAL_METADATA + RECV_MESSAGE, then RECV_MESSAGE alone,
 *           restarted after on_msg returns, until a NULL message or failure
 *   status  RECV_STATUS_ON_CLIENT, started at open
 *
 * The end is decided once, on the stream's thread, when the status has
 * arrived, the receive loop is over and no batch is in flight: then on_end
 * runs and no batch is ever started again (a batch started after the queue
 * shut down would abort the process), so the thread may shut the queue down
 * and exit. Not here: unary calls (rpc_client.c), the fault layer.
 */
#include "rpc_internal.h"

#include "clock.h"
#include "log.h"
#include "mem.h"

#include <grpc/support/time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PATH_MAX_LEN 256

/* The stream whose thread this is (NULL on other threads): destroy from a
 * stream's own callback must not join its own thread. */
static _Thread_local struct sx_rpc_stream *current_stream;

typedef struct sendq {
    grpc_byte_buffer *bb; /* NULL: the half-close */
    struct sendq *next;
} sendq;

struct sx_rpc_stream {
    sx__rpc_tag start_tag, send_tag, recv_tag, status_tag;
    grpc_completion_queue *cq; /* this stream's alone */
    grpc_call *call;
    pthread_t thread;
    char path[PATH_MAX_LEN];
    const ProtobufCMessageDescriptor *in_desc, *out_desc;
    sx_rpc_stream_msg_cb on_msg;
    sx_rpc_stream_end_cb on_end;
    void *arg;

    /* Batch buffers: each touched only by its batch's starter and, once it
     * completed, by the stream's thread. */
    grpc_metadata *md; /* sent metadata, kept until the start batch completes */
    size_t nmd;
    grpc_metadata_array init_md, trail_md;
    grpc_byte_buffer *recv_bb;
    grpc_byte_buffer *send_bb;
    grpc_status_code status;
    grpc_slice details;
    bool first_recv; /* the next receive also takes the initial metadata */

    pthread_mutex_t mu; /* everything below, and every grpc_call_start_batch */
    sendq *q_head, *q_tail;
    size_t nq;
    bool send_busy;     /* the start batch or a send batch is in flight */
    bool half_closed;   /* close_send was called */
    bool cancelled;     /* sx_rpc_stream_cancel was called */
    bool status_in;     /* RECV_STATUS_ON_CLIENT completed */
    bool recv_over;     /* the receive loop will start nothing more */
    int inflight;       /* batches started and not completed */
    bool ended;         /* on_end decided: no batch starts any more */
    bool self_free;     /* destroyed from its own callback: its thread frees it */
    sx_status local_st; /* an end decided on this side (cancel, undecodable message) */
    sx_err local_err;
};

/* ----------------------------------------------------------------- sends -- */

static void drop_queue_locked(sx_rpc_stream *s)
{
    while (s->q_head) {
        sendq *q = s->q_head;
        s->q_head = q->next;
        if (q->bb)
            grpc_byte_buffer_destroy(q->bb);
        free(q);
    }
    s->q_tail = NULL;
    s->nq = 0;
}

static void start_batch_locked(sx_rpc_stream *s, grpc_op *ops, size_t n, sx__rpc_tag *tag)
{
    grpc_call_error rc = grpc_call_start_batch(s->call, ops, n, tag, NULL);
    if (rc != GRPC_CALL_OK) {
        /* Only misuse of the API gets here (two ops of a kind in flight). */
        SX_LOG(SX_LOG_ERROR, "rpc", "cannot start stream batch method=%s grpc_error=%d", s->path,
               (int)rc);
        abort();
    }
    s->inflight++;
}

/* Starts the next queued send if the slot is free and the stream still sends. */
static void pump_locked(sx_rpc_stream *s)
{
    if (s->send_busy || !s->q_head)
        return;
    if (s->ended || s->status_in || s->cancelled) {
        drop_queue_locked(s);
        return;
    }
    sendq *q = s->q_head;
    s->q_head = q->next;
    if (!s->q_head)
        s->q_tail = NULL;
    s->nq--;
    grpc_op op;
    memset(&op, 0, sizeof(op));
    if (q->bb) {
        op.op = GRPC_OP_SEND_MESSAGE;
        op.data.send_message.send_message = q->bb;
    } else {
        op.op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    }
    s->send_bb = q->bb;
    free(q);
    s->send_busy = true;
    start_batch_locked(s, &op, 1, &s->send_tag);
}

static sx_status enqueue(sx_rpc_stream *s, grpc_byte_buffer *bb)
{
    pthread_mutex_lock(&s->mu);
    if (s->ended || s->status_in || s->cancelled || s->half_closed) {
        pthread_mutex_unlock(&s->mu);
        if (bb)
            grpc_byte_buffer_destroy(bb);
        return SX_CANCELLED;
    }
    if (bb && s->nq >= SX_RPC_STREAM_QUEUE) {
        pthread_mutex_unlock(&s->mu);
        grpc_byte_buffer_destroy(bb);
        return SX_RESOURCE_EXHAUSTED;
    }
    sendq *q = sx_calloc(1, sizeof(*q));
    q->bb = bb;
    if (s->q_tail)
        s->q_tail->next = q;
    else
        s->q_head = q;
    s->q_tail = q;
    s->nq++;
    if (!bb)
        s->half_closed = true;
    pump_locked(s);
    pthread_mutex_unlock(&s->mu);
    return SX_OK;
}

sx_status sx_rpc_stream_send(sx_rpc_stream *s, const ProtobufCMessage *msg)
{
    if (msg->descriptor != s->in_desc)
        return SX_INVALID_ARGUMENT;
    return enqueue(s, sx__rpc_pack(msg));
}

sx_status sx_rpc_stream_close_send(sx_rpc_stream *s)
{
    return enqueue(s, NULL);
}

void sx_rpc_stream_cancel(sx_rpc_stream *s)
{
    pthread_mutex_lock(&s->mu);
    if (!s->cancelled && !s->ended) {
        s->cancelled = true;
        if (!s->status_in && s->local_st == SX_OK) {
            s->local_st = SX_CANCELLED;
            sx_err_set(&s->local_err, SX_CANCELLED, "%s: stream cancelled by the client", s->path);
        }
        drop_queue_locked(s);
        grpc_call_cancel(s->call, NULL);
    }
    pthread_mutex_unlock(&s->mu);
}

/* ---------------------------------------------------- completions (thread) -- */

static void on_start(sx__rpc_tag *tag, bool ok)
{
    (void)ok; /* a failure shows in the status */
    sx_rpc_stream *s = SX__CONTAINER_OF(tag, sx_rpc_stream, start_tag);
    pthread_mutex_lock(&s->mu);
    s->inflight--;
    s->send_busy = false;
    pump_locked(s);
    pthread_mutex_unlock(&s->mu);
}

static void on_send(sx__rpc_tag *tag, bool ok)
{
    sx_rpc_stream *s = SX__CONTAINER_OF(tag, sx_rpc_stream, send_tag);
    pthread_mutex_lock(&s->mu);
    s->inflight--;
    s->send_busy = false;
    if (s->send_bb)
        grpc_byte_buffer_destroy(s->send_bb);
    s->send_bb = NULL;
    if (!ok) /* the call is failing: what waits will not go; the status says why */
        drop_queue_locked(s);
    pump_locked(s);
    pthread_mutex_unlock(&s->mu);
}

static void start_recv_locked(sx_rpc_stream *s)
{
    grpc_op ops[2];
    memset(ops, 0, sizeof(ops));
    size_t n = 0;
    if (s->first_recv) {
        ops[n].op = GRPC_OP_RECV_INITIAL_METADATA;
        ops[n].data.recv_initial_metadata.recv_initial_metadata = &s->init_md;
        n++;
        s->first_recv = false;
    }
    ops[n].op = GRPC_OP_RECV_MESSAGE;
    ops[n].data.recv_message.recv_message = &s->recv_bb;
    n++;
    s->recv_bb = NULL;
    start_batch_locked(s, ops, n, &s->recv_tag);
}

static void on_recv(sx__rpc_tag *tag, bool ok)
{
    sx_rpc_stream *s = SX__CONTAINER_OF(tag, sx_rpc_stream, recv_tag);
    grpc_byte_buffer *bb = s->recv_bb;
    s->recv_bb = NULL;
    ProtobufCMessage *msg = NULL;
    if (ok && bb) {
        msg = sx__rpc_unpack(s->out_desc, bb);
        if (!msg) {
            pthread_mutex_lock(&s->mu);
            if (!s->status_in && s->local_st == SX_OK) {
                s->local_st = SX_INTERNAL;
                sx_err_set(&s->local_err, SX_INTERNAL,
                           "%s: the server sent a message that is not a %s", s->path,
                           s->out_desc->name);
            }
            grpc_call_cancel(s->call, NULL);
            pthread_mutex_unlock(&s->mu);
        }
    }
    if (bb)
        grpc_byte_buffer_destroy(bb);
    pthread_mutex_lock(&s->mu);
    bool deliver = msg && !s->cancelled;
    pthread_mutex_unlock(&s->mu);
    if (deliver && s->on_msg)
        s->on_msg(s->arg, msg);
    else
        sx_rpc_free(msg);
    pthread_mutex_lock(&s->mu);
    s->inflight--;
    /* The next message is asked for only now, after on_msg returned: a slow
     * reader holds the server back through flow control. */
    if (msg && !s->cancelled)
        start_recv_locked(s);
    else
        s->recv_over = true;
    pthread_mutex_unlock(&s->mu);
}

static void on_status(sx__rpc_tag *tag, bool ok)
{
    (void)ok; /* RECV_STATUS_ON_CLIENT always completes with the outcome */
    sx_rpc_stream *s = SX__CONTAINER_OF(tag, sx_rpc_stream, status_tag);
    pthread_mutex_lock(&s->mu);
    s->inflight--;
    s->status_in = true;
    drop_queue_locked(s);
    pthread_mutex_unlock(&s->mu);
}

/* Whether the stream just ended; if so, tells on_end. Stream thread only. */
static bool maybe_end(sx_rpc_stream *s)
{
    pthread_mutex_lock(&s->mu);
    bool end = !s->ended && s->status_in && s->recv_over && s->inflight == 0;
    if (end)
        s->ended = true;
    pthread_mutex_unlock(&s->mu);
    if (!end)
        return false;
    sx_err err = {0};
    sx_status st;
    if (s->local_st != SX_OK) {
        st = s->local_st;
        err = s->local_err;
    } else {
        st = sx_status_from_grpc_code((int)s->status);
        err.code = st;
        size_t n = GRPC_SLICE_LENGTH(s->details);
        if (n == 0 && st != SX_OK) {
            snprintf(err.msg, sizeof(err.msg), "%s", sx_status_name(st));
        } else {
            if (n >= sizeof(err.msg))
                n = sizeof(err.msg) - 1;
            memcpy(err.msg, GRPC_SLICE_START_PTR(s->details), n);
            err.msg[n] = '\0';
        }
    }
    if (s->on_end)
        s->on_end(s->arg, st, &err);
    return true;
}

static void stream_free(sx_rpc_stream *s)
{
    grpc_call_unref(s->call);
    grpc_completion_queue_destroy(s->cq);
    for (size_t i = 0; i < s->nmd; i++) {
        grpc_slice_unref(s->md[i].key);
        grpc_slice_unref(s->md[i].value);
    }
    free(s->md);
    grpc_metadata_array_destroy(&s->init_md);
    grpc_metadata_array_destroy(&s->trail_md);
    grpc_slice_unref(s->details);
    drop_queue_locked(s);
    pthread_mutex_destroy(&s->mu);
    free(s);
    grpc_shutdown();
}

static void *stream_main(void *arg)
{
    sx_rpc_stream *s = arg;
    current_stream = s;
    for (;;) {
        grpc_event ev =
            grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
        if (ev.type != GRPC_OP_COMPLETE)
            continue; /* the queue is shut down only below */
        sx__rpc_tag *tag = ev.tag;
        tag->cb(tag, ev.success != 0);
        if (maybe_end(s))
            break;
    }
    grpc_completion_queue_shutdown(s->cq);
    while (grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL).type !=
           GRPC_QUEUE_SHUTDOWN) {
    }
    pthread_mutex_lock(&s->mu);
    bool self_free = s->self_free;
    pthread_mutex_unlock(&s->mu);
    if (self_free) {
        pthread_detach(pthread_self());
        stream_free(s);
    }
    return NULL;
}

/* ------------------------------------------------------------------ open -- */

static void md_add(sx_rpc_stream *s, const char *key, const char *value)
{
    s->md[s->nmd].key = grpc_slice_from_copied_string(key);
    s->md[s->nmd].value = grpc_slice_from_copied_string(value);
    s->nmd++;
}

static sx_status check_metadata(const sx_rpc_stream_opts *o, sx_err *err)
{
    for (size_t i = 0; i < o->nmetadata; i++) {
        const sx_rpc_metadata *m = &o->metadata[i];
        if (!m->key || !m->value)
            return sx_err_set(err, SX_INVALID_ARGUMENT, "rpc: metadata %zu without key or value",
                              i);
        grpc_slice k = grpc_slice_from_static_string(m->key);
        grpc_slice v = grpc_slice_from_static_string(m->value);
        bool legal = grpc_header_key_is_legal(k) && !grpc_is_binary_header(k) &&
                     grpc_header_nonbin_value_is_legal(v) && m->key[0] != ':' &&
                     strncmp(m->key, "grpc-", 5) != 0;
        if (!legal)
            return sx_err_set(err, SX_INVALID_ARGUMENT,
                              "rpc: metadata key '%s' or its value is not allowed", m->key);
    }
    return SX_OK;
}

/* The metadata of the start batch: the deadline as wall-clock time (as unary
 * calls carry it: rpc_internal.h), the client's token, the caller's. */
static void build_metadata(sx_rpc_stream *s, sx_rpc_client *c, const sx_rpc_stream_opts *o)
{
    s->md = sx_calloc(o->nmetadata + 2, sizeof(*s->md));
    if (o->timeout_ms) {
        char wall[24];
        snprintf(wall, sizeof(wall), "%llu",
                 (unsigned long long)(sx_clock_wall_ms() + o->timeout_ms));
        md_add(s, SX__RPC_DEADLINE_KEY, wall);
    }
    const char *auth = sx__rpc_client_auth_header(c);
    if (auth)
        md_add(s, "authorization", auth);
    for (size_t i = 0; i < o->nmetadata; i++)
        md_add(s, o->metadata[i].key, o->metadata[i].value);
}

static void start_call(sx_rpc_stream *s, bool wait_for_ready)
{
    grpc_op start;
    memset(&start, 0, sizeof(start));
    start.op = GRPC_OP_SEND_INITIAL_METADATA;
    start.data.send_initial_metadata.count = s->nmd;
    start.data.send_initial_metadata.metadata = s->md;
    if (wait_for_ready)
        start.flags = GRPC_INITIAL_METADATA_WAIT_FOR_READY;
    grpc_op status;
    memset(&status, 0, sizeof(status));
    status.op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    status.data.recv_status_on_client.trailing_metadata = &s->trail_md;
    status.data.recv_status_on_client.status = &s->status;
    status.data.recv_status_on_client.status_details = &s->details;
    pthread_mutex_lock(&s->mu);
    s->send_busy = true; /* messages wait until the metadata has gone */
    start_batch_locked(s, &start, 1, &s->start_tag);
    start_batch_locked(s, &status, 1, &s->status_tag);
    start_recv_locked(s);
    pthread_mutex_unlock(&s->mu);
}

sx_status sx_rpc_stream_open(sx_rpc_client *c, const char *addr,
                             const ProtobufCServiceDescriptor *svc, const char *method,
                             const sx_rpc_stream_opts *opts, sx_rpc_stream **out, sx_err *err)
{
    static const sx_rpc_stream_opts zero;
    if (!opts)
        opts = &zero;
    *out = NULL;
    const ProtobufCMethodDescriptor *md =
        protobuf_c_service_descriptor_get_method_by_name(svc, method);
    if (!md)
        return sx_err_set(err, SX_UNIMPLEMENTED, "rpc: %s has no method %s", svc->name, method);
    sx_status st = check_metadata(opts, err);
    if (st != SX_OK)
        return st;
    sx_rpc_stream *s = sx_calloc(1, sizeof(*s));
    if (!sx__rpc_method_path(svc, method, s->path, sizeof(s->path))) {
        free(s);
        return sx_err_set(err, SX_INVALID_ARGUMENT, "rpc: method path too long");
    }
    grpc_init(); /* the stream's own: it may outlive nothing, but gRPC must outlive it */
    s->start_tag.cb = on_start;
    s->send_tag.cb = on_send;
    s->recv_tag.cb = on_recv;
    s->status_tag.cb = on_status;
    s->in_desc = md->input;
    s->out_desc = md->output;
    s->on_msg = opts->on_msg;
    s->on_end = opts->on_end;
    s->arg = opts->arg;
    s->first_recv = true;
    s->details = grpc_empty_slice();
    grpc_metadata_array_init(&s->init_md);
    grpc_metadata_array_init(&s->trail_md);
    pthread_mutex_init(&s->mu, NULL);
    build_metadata(s, c, opts);
    s->cq = grpc_completion_queue_create_for_next(NULL);
    grpc_slice path = grpc_slice_from_copied_string(s->path);
    gpr_timespec deadline = opts->timeout_ms
                                ? sx__rpc_deadline_from_ms(sx_clock_now_ms() + opts->timeout_ms)
                                : gpr_inf_future(GPR_CLOCK_MONOTONIC);
    s->call = grpc_channel_create_call(sx__rpc_client_channel(c, addr), NULL,
                                       GRPC_PROPAGATE_DEFAULTS, s->cq, path, NULL, deadline, NULL);
    grpc_slice_unref(path);
    *out = s;
    start_call(s, opts->wait_for_ready);
    pthread_create(&s->thread, NULL, stream_main, s);
    pthread_setname_np(s->thread, "rpc-stream");
    return SX_OK;
}

void sx_rpc_stream_destroy(sx_rpc_stream *s)
{
    if (!s)
        return;
    sx_rpc_stream_cancel(s);
    if (current_stream == s) {
        pthread_mutex_lock(&s->mu);
        s->self_free = true;
        pthread_mutex_unlock(&s->mu);
        return;
    }
    pthread_join(s->thread, NULL);
    stream_free(s);
}
