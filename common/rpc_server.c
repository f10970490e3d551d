/* rpc_server.c: the generic unary server over the gRPC C core.
 *
 * Life of a call (one sx_rpc_call context from request to reply):
 *
 *   POSTED   a request is posted for a registered method (or the generic
 *            catch-all) on one completion queue; counted in `live`.
 *   ARRIVED  the queue reports the match: a replacement request is posted at
 *            once (so the method always has one waiting), the payload that
 *            came with the call is unpacked, and the handler runs inline or on
 *            the pool. Unknown methods get UNIMPLEMENTED, undecodable bytes
 *            INVALID_ARGUMENT, without reaching a handler.
 *   REPLYING one batch: initial metadata, the message (on success), the
 *            status with details, and RECV_CLOSE_ON_SERVER.
 *   DONE     the batch completed (or the request failed at shutdown): the
 *            context is freed and `live` drops.
 *
 * A server-streaming call (rpc.h) starts RECV_CLOSE_ON_SERVER on its own
 * when it arrives, so that a client going away is noticed while the stream
 * is open; then sends its messages one batch at a time (gRPC allows one
 * SEND_MESSAGE in flight), queued in between, and its status last. Its
 * context is freed once every batch it started has completed and the handler
 * finished it (stream_state.refs). The server keeps the open streams in a
 * list, so that shutdown can tell their handlers (on_cancel) instead of
 * waiting out the grace period.
 *
 * A local call (sx_rpc_server_call_local) skips the network: it starts at
 * ARRIVED with a copy of the caller's request, runs the same handler on the
 * same pool, and its reply is a copy of the response handed to the caller's
 * completion, as the client's would be.
 *
 * Shutdown waits for `live` to reach zero while the queue threads still poll,
 * because starting a batch on a call whose queue is already shut down aborts
 * the process inside gRPC.
 */
#include "rpc_internal.h"

#include "clock.h"
#include "hmap.h"
#include "log.h"
#include "mem.h"
#include "pool.h"

#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Requests kept posted per method and queue: calls beyond these wait inside
 * gRPC until one is reposted, which happens as soon as one arrives. */
#define POSTED_PER_METHOD 4
#define METHOD_PATH_MAX 256

typedef struct method_entry {
    char path[METHOD_PATH_MAX];
    const ProtobufCMethodDescriptor *desc;
    sx_rpc_handler_cb fn;
    sx_rpc_exec exec;
    bool stream; /* server streaming */
    void *arg;
    void *handle; /* from grpc_server_register_method */
    /* Its metrics' children, looked up at the first answer with each status
     * (the family's lookup takes a lock; this does not). */
    _Atomic(sx_counter *) answered[SX_STATUS_COUNT];
    _Atomic(sx_histogram *) seconds;
} method_entry;

struct sx_rpc_server {
    char *listen;
    sx_rpc_tls tls; /* copied paths; tls.ca_file NULL: plaintext */
    bool has_tls;
    sx_rpc_authorize_cb authorize;
    void *authorize_arg;
    uint32_t max_calls_per_client; /* 0: none */
    uint32_t max_streams;          /* per connection; 0: gRPC's */
    uint64_t max_deadline_ms;      /* 0: none */
    pthread_mutex_t lim_mu;        /* inflight */
    sx_hmap inflight;              /* client key -> calls in flight (uintptr_t) */
    size_t max_message;
    uint64_t grace_ms;
    int ncq;
    int pool_threads;
    grpc_server *server;
    grpc_completion_queue **cqs; /* one per polling thread */
    pthread_t *threads;
    sx_pool *pool;    /* for SX_RPC_BLOCKING handlers */
    sx_pool *waiting; /* for SX_RPC_WAITING handlers */
    sx_pool *routing; /* for SX_RPC_ROUTING handlers */
    int wait_threads, routing_threads;
    method_entry *methods; /* stable once started */
    size_t nmethods, capmethods;
    int port;
    bool started;
    atomic_bool shutting_down; /* no more requests are posted */

    pthread_mutex_t mu;
    pthread_cond_t cv;
    size_t live;                 /* call contexts not yet freed, posted requests included */
    struct sx_rpc_call *streams; /* open streams (stream_state.prev/next), not yet finished */

    sx_metric_family *requests; /* NULL: no metrics */
    sx_metric_family *handling;
    _Atomic(sx_counter *) unknown_answered; /* calls of methods not served */
};

typedef struct done_fn {
    void (*fn)(void *);
    void *ptr;
    struct done_fn *next;
} done_fn;

/* A server-streaming call's state (see the top of this file), under mu. */
typedef struct stream_state {
    pthread_mutex_t mu;
    sx__rpc_tag sent;   /* a SEND_MESSAGE batch completed */
    sx__rpc_tag closed; /* RECV_CLOSE_ON_SERVER completed: the call is over for the client */
    int refs;           /* batches in flight, plus one until the handler finished */
    grpc_byte_buffer *queue[SX_RPC_STREAM_QUEUE]; /* waiting to be sent: a ring */
    size_t head, count;
    grpc_byte_buffer *in_flight; /* the message being sent; NULL: none */
    bool md_sent;                /* initial metadata went with a batch already */
    bool over;                   /* nothing more reaches the client */
    bool finished;               /* sx_rpc_call_finish was called */
    bool status_started;         /* the status batch is on its way */
    bool listed;                 /* in the server's open streams */
    sx_status fin_status;
    char *fin_msg;
    sx_rpc_cancel_cb on_cancel;
    void *cancel_arg;
    bool cancel_ran;
    struct sx_rpc_call *call;        /* the call it belongs to */
    struct sx_rpc_call *prev, *next; /* the server's open streams, under its mu */
} stream_state;

struct sx_rpc_call {
    sx__rpc_tag arrived; /* the posted request matched a call (or failed) */
    sx__rpc_tag replied; /* the reply batch completed */
    sx_rpc_server *srv;
    method_entry *m; /* NULL: the generic catch-all request */
    int cq_index;
    grpc_call *call;
    gpr_timespec deadline;
    uint64_t wall_deadline_mono; /* SX__RPC_DEADLINE_KEY's, on our clock; 0: none sent */
    grpc_metadata_array md;
    grpc_byte_buffer *payload;
    grpc_call_details details; /* generic requests only */
    ProtobufCMessage *req;
    ProtobufCMessage *resp;
    const ProtobufCMessage *reply_with; /* sent instead of resp: sx_rpc_call_reply_with */
    grpc_byte_buffer *resp_bb;
    grpc_slice status_details;
    bool has_status_details;
    int cancelled;    /* from RECV_CLOSE_ON_SERVER: the client gave up */
    bool *defer_flag; /* set while the handler runs: where sx_rpc_call_defer reports */
    sx_arena arena;   /* response memory, freed after the reply */
    done_fn *on_done;
    sx_rpc_done_cb local_done; /* a local call (sx_rpc_server_call_local): its completion */
    void *local_arg;
    stream_state *stream;       /* a server-streaming call; NULL for unary ones */
    char *limit_key;            /* counted in srv->inflight under this client key; NULL: not */
    uint64_t cap_deadline_mono; /* arrival + max_deadline_ms; 0: none */
    uint64_t arrived_ns;        /* when it arrived (sx_clock_now_ns), for its handling time */
};

static void on_arrived(sx__rpc_tag *tag, bool ok);
static void on_replied(sx__rpc_tag *tag, bool ok);
static void dispatch(sx_rpc_call *ctx);

/* ------------------------------------------------------------ call memory -- */

void *sx_rpc_call_alloc(sx_rpc_call *call, size_t n)
{
    return sx_arena_alloc(&call->arena, n);
}

sx_arena *sx_rpc_call_arena(sx_rpc_call *call)
{
    return &call->arena;
}

char *sx_rpc_call_strdup(sx_rpc_call *call, const char *s)
{
    return sx_arena_strdup(&call->arena, s);
}

void sx_rpc_call_on_done(sx_rpc_call *call, void (*fn)(void *), void *ptr)
{
    done_fn *d = sx_malloc(sizeof(*d));
    d->fn = fn;
    d->ptr = ptr;
    d->next = call->on_done;
    call->on_done = d;
}

uint64_t sx_rpc_call_deadline_ms(const sx_rpc_call *call)
{
    uint64_t d = sx__rpc_deadline_to_ms(call->deadline);
    if (call->wall_deadline_mono && call->wall_deadline_mono < d)
        d = call->wall_deadline_mono;
    return call->cap_deadline_mono && call->cap_deadline_mono < d ? call->cap_deadline_mono : d;
}

/* The caller's wall-clock deadline (rpc_internal.h), if it sent one. */
static uint64_t wall_deadline_of(const grpc_metadata_array *md)
{
    for (size_t i = 0; i < md->count; i++) {
        if (!grpc_slice_str_cmp(md->metadata[i].key, SX__RPC_DEADLINE_KEY)) {
            char buf[24];
            size_t n = GRPC_SLICE_LENGTH(md->metadata[i].value);
            if (n == 0 || n >= sizeof(buf))
                return 0;
            memcpy(buf, GRPC_SLICE_START_PTR(md->metadata[i].value), n);
            buf[n] = '\0';
            char *end;
            unsigned long long v = strtoull(buf, &end, 10);
            return *end || v == 0 ? 0 : sx__rpc_wall_to_mono_ms(v);
        }
    }
    return 0;
}

uint64_t sx_rpc_call_deadline_or_default(const sx_rpc_call *call)
{
    uint64_t d = sx_rpc_call_deadline_ms(call);
    return d == UINT64_MAX ? sx_clock_now_ms() + SX_RPC_NO_DEADLINE_MS : d;
}

void sx_rpc_call_reply_with(sx_rpc_call *call, const ProtobufCMessage *msg)
{
    call->reply_with = msg;
}

const char *sx_rpc_call_method(const sx_rpc_call *call)
{
    return call->m ? call->m->path : "(unknown)";
}

/* ------------------------------------------------------------- lifecycle -- */

static void stream_state_free(stream_state *ss)
{
    if (!ss)
        return;
    for (size_t i = 0; i < ss->count; i++)
        grpc_byte_buffer_destroy(ss->queue[(ss->head + i) % SX_RPC_STREAM_QUEUE]);
    if (ss->in_flight)
        grpc_byte_buffer_destroy(ss->in_flight);
    free(ss->fin_msg);
    pthread_mutex_destroy(&ss->mu);
    free(ss);
}

static void uncount_client(sx_rpc_call *ctx);

static void call_free(sx_rpc_call *ctx)
{
    sx_rpc_server *srv = ctx->srv;
    uncount_client(ctx);
    stream_state_free(ctx->stream);
    for (done_fn *d = ctx->on_done, *next; d; d = next) {
        next = d->next;
        d->fn(d->ptr);
        free(d);
    }
    sx_arena_free(&ctx->arena);
    if (ctx->payload)
        grpc_byte_buffer_destroy(ctx->payload);
    if (ctx->resp_bb)
        grpc_byte_buffer_destroy(ctx->resp_bb);
    if (ctx->has_status_details)
        grpc_slice_unref(ctx->status_details);
    sx_rpc_free(ctx->req);
    free(ctx->resp); /* its fields live in the arena or elsewhere: never free_unpacked */
    grpc_metadata_array_destroy(&ctx->md);
    if (!ctx->m)
        grpc_call_details_destroy(&ctx->details);
    if (ctx->call)
        grpc_call_unref(ctx->call);
    free(ctx);

    pthread_mutex_lock(&srv->mu);
    if (--srv->live == 0)
        pthread_cond_broadcast(&srv->cv);
    pthread_mutex_unlock(&srv->mu);
}

/* Posts one request for m (NULL: the catch-all) on queue i. */
/* A new call context for m (NULL: the catch-all), counted in `live` until
 * call_free. */
static sx_rpc_call *call_new(sx_rpc_server *srv, method_entry *m)
{
    sx_rpc_call *ctx = sx_calloc(1, sizeof(*ctx));
    ctx->srv = srv;
    ctx->m = m;
    grpc_metadata_array_init(&ctx->md);
    pthread_mutex_lock(&srv->mu);
    srv->live++;
    pthread_mutex_unlock(&srv->mu);
    return ctx;
}

static void post_request(sx_rpc_server *srv, method_entry *m, int i)
{
    sx_rpc_call *ctx = call_new(srv, m);
    ctx->arrived.cb = on_arrived;
    ctx->replied.cb = on_replied;
    ctx->cq_index = i;
    if (!m)
        grpc_call_details_init(&ctx->details);

    grpc_completion_queue *cq = srv->cqs[i];
    grpc_call_error rc;
    if (m)
        rc = grpc_server_request_registered_call(srv->server, m->handle, &ctx->call, &ctx->deadline,
                                                 &ctx->md, &ctx->payload, cq, cq, &ctx->arrived);
    else
        rc = grpc_server_request_call(srv->server, &ctx->call, &ctx->details, &ctx->md, cq, cq,
                                      &ctx->arrived);
    if (rc != GRPC_CALL_OK) {
        SX_LOG(SX_LOG_ERROR, "rpc", "cannot post request method=%s grpc_error=%d",
               m ? m->path : "*", (int)rc);
        call_free(ctx);
    }
}

/* A local call's reply: the caller's completion, after the call is freed
 * (what the response borrowed is copied first). */
static void local_reply(sx_rpc_call *ctx, sx_status status, const char *msg)
{
    sx_err err = {0};
    ProtobufCMessage *resp = NULL;
    if (status == SX_OK)
        resp = sx_rpc_copy(ctx->m->desc->output, ctx->reply_with ? ctx->reply_with : ctx->resp);
    else
        sx_err_set(&err, status, "%s", msg ? msg : sx_status_name(status));
    sx_rpc_done_cb done = ctx->local_done;
    void *arg = ctx->local_arg;
    call_free(ctx);
    done(status, status == SX_OK ? NULL : &err, resp, arg);
}

/* ---------------------------------------------------------------- metrics -- */

/* The child of *slot, looked up once: racing threads find the same child. */
static sx_counter *answered_child(sx_rpc_server *srv, _Atomic(sx_counter *) *slot, const char *path,
                                  sx_status status)
{
    sx_counter *c = atomic_load_explicit(slot, memory_order_acquire);
    if (c)
        return c;
    /* "/shardex.v1.Shardex/Put" -> service "shardex.v1.Shardex", method "Put". */
    char service[METHOD_PATH_MAX];
    snprintf(service, sizeof(service), "%s", path[0] == '/' ? path + 1 : path);
    char *slash = strchr(service, '/');
    const char *method = slash ? slash + 1 : service;
    if (slash)
        *slash = '\0';
    c = sx_metric_counter(srv->requests,
                          (const char *[]){slash ? service : "", method, sx_status_name(status)});
    atomic_store_explicit(slot, c, memory_order_release);
    return c;
}

/* Counts an answered call and its handling time (rpc.h, sx_rpc_server_opts). */
static void count_reply(sx_rpc_call *ctx, sx_status status)
{
    sx_rpc_server *srv = ctx->srv;
    if (!srv->requests)
        return;
    if ((unsigned)status >= SX_STATUS_COUNT)
        status = SX_UNKNOWN;
    method_entry *m = ctx->m;
    if (!m) {
        /* Not the client's path as a label: a scan of made-up names would
         * make a series each. */
        sx_counter_inc(
            answered_child(srv, &srv->unknown_answered, "(unknown)/(unknown)", SX_UNIMPLEMENTED));
        return;
    }
    sx_counter_inc(answered_child(srv, &m->answered[status], m->path, status));
    sx_histogram *h = atomic_load_explicit(&m->seconds, memory_order_acquire);
    if (!h) {
        char service[METHOD_PATH_MAX];
        snprintf(service, sizeof(service), "%s", m->path + 1);
        char *slash = strchr(service, '/');
        *slash = '\0';
        h = sx_metric_histogram(srv->handling, (const char *[]){service, slash + 1});
        atomic_store_explicit(&m->seconds, h, memory_order_release);
    }
    if (ctx->arrived_ns)
        sx_histogram_observe(h, (double)(sx_clock_now_ns() - ctx->arrived_ns) / 1e9);
}

/* Sends the reply: the message when status is SX_OK, then the status. */
static void call_reply(sx_rpc_call *ctx, sx_status status, const char *msg)
{
    count_reply(ctx, status);
    if (ctx->local_done) {
        local_reply(ctx, status, msg);
        return;
    }
    grpc_op ops[4];
    memset(ops, 0, sizeof(ops));
    size_t n = 0;
    ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
    if (status == SX_OK) {
        ctx->resp_bb = sx__rpc_pack(ctx->reply_with ? ctx->reply_with : ctx->resp);
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        ops[n++].data.send_message.send_message = ctx->resp_bb;
    }
    ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[n].data.send_status_from_server.status = (grpc_status_code)sx_status_grpc_code(status);
    if (msg && msg[0]) {
        ctx->status_details = grpc_slice_from_copied_string(msg);
        ctx->has_status_details = true;
        ops[n].data.send_status_from_server.status_details = &ctx->status_details;
    }
    n++;
    ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    ops[n++].data.recv_close_on_server.cancelled = &ctx->cancelled;
    grpc_call_error rc = grpc_call_start_batch(ctx->call, ops, n, &ctx->replied, NULL);
    if (rc != GRPC_CALL_OK) {
        SX_LOG(SX_LOG_ERROR, "rpc", "cannot send reply method=%s grpc_error=%d",
               sx_rpc_call_method(ctx), (int)rc);
        call_free(ctx);
    }
}

static void stream_finish(sx_rpc_call *ctx, sx_status status, const char *msg);

void sx_rpc_call_finish(sx_rpc_call *call, sx_status status, const sx_err *err)
{
    const char *msg = err && err->msg[0] ? err->msg : NULL;
    if (status != SX_OK && !msg)
        msg = sx_status_name(status);
    if (call->stream) {
        count_reply(call, status); /* a stream counts once, with the status it ends with */
        stream_finish(call, status, msg);
    } else
        call_reply(call, status, msg);
}

void sx_rpc_call_defer(sx_rpc_call *call)
{
    if (call->defer_flag)
        *call->defer_flag = true;
}

static void run_handler(void *arg)
{
    sx_rpc_call *ctx = arg;
    sx_err err = {0};
    if (ctx->stream) { /* open until some thread finishes it */
        sx_status st = ctx->m->fn(ctx, ctx->req, NULL, ctx->m->arg, &err);
        if (st != SX_OK)
            sx_rpc_call_finish(ctx, st, &err);
        return;
    }
    bool deferred = false;
    ctx->defer_flag = &deferred;
    sx_status st = ctx->m->fn(ctx, ctx->req, ctx->resp, ctx->m->arg, &err);
    if (deferred)
        return; /* ctx may already be gone: another thread owns the reply */
    ctx->defer_flag = NULL;
    if (st != SX_OK && !err.msg[0])
        sx_err_set(&err, st, "%s", sx_status_name(st));
    if (st != SX_OK)
        SX_LOG(SX_LOG_DEBUG, "rpc", "handler failed method=%s status=%s msg=\"%s\"", ctx->m->path,
               sx_status_name(st), err.msg);
    sx_rpc_call_finish(ctx, st, &err);
}

/* The value of property `name` of an auth context, copied into buf; false
 * when it has none. */
static bool auth_property(grpc_auth_context *ac, const char *name, char *buf, size_t cap)
{
    grpc_auth_property_iterator it = grpc_auth_context_find_properties_by_name(ac, name);
    const grpc_auth_property *p = grpc_auth_property_iterator_next(&it);
    if (!p || p->value_length == 0 || p->value_length >= cap)
        return false;
    memcpy(buf, p->value, p->value_length);
    buf[p->value_length] = '\0';
    return true;
}

/* Counts ctx against its client's calls in flight (ctx->limit_key); false
 * when that client already has srv->max_calls_per_client. */
static bool count_client(sx_rpc_call *ctx, const char *key)
{
    sx_rpc_server *srv = ctx->srv;
    size_t n = strlen(key);
    pthread_mutex_lock(&srv->lim_mu);
    bool created = false;
    void **slot = sx_hmap_upsert(&srv->inflight, key, n, &created);
    uintptr_t calls = created ? 0 : (uintptr_t)*slot;
    bool ok = calls < srv->max_calls_per_client;
    if (ok)
        *slot = (void *)(calls + 1);
    else if (created)
        sx_hmap_remove(&srv->inflight, key, n, NULL);
    pthread_mutex_unlock(&srv->lim_mu);
    if (ok)
        ctx->limit_key = sx_strdup(key);
    return ok;
}

static void uncount_client(sx_rpc_call *ctx)
{
    if (!ctx->limit_key)
        return;
    sx_rpc_server *srv = ctx->srv;
    size_t n = strlen(ctx->limit_key);
    pthread_mutex_lock(&srv->lim_mu);
    void *v = NULL;
    if (sx_hmap_get(&srv->inflight, ctx->limit_key, n, &v)) {
        if ((uintptr_t)v <= 1)
            sx_hmap_remove(&srv->inflight, ctx->limit_key, n, NULL);
        else
            sx_hmap_put(&srv->inflight, ctx->limit_key, n, (void *)((uintptr_t)v - 1), NULL);
    }
    pthread_mutex_unlock(&srv->lim_mu);
    free(ctx->limit_key);
    ctx->limit_key = NULL;
}

/* Who sent ctx (its certificate's identity, its token, its address), as far
 * as the server needs to know: the buffers hold the strings peer points to. */
static void peer_of(sx_rpc_call *ctx, sx_rpc_peer *peer, char *id, size_t idcap, char *token,
                    size_t tokcap)
{
    *peer = (sx_rpc_peer){0};
    grpc_auth_context *ac = grpc_call_auth_context(ctx->call);
    if (ac) {
        char kind[32];
        peer->tls =
            auth_property(ac, GRPC_TRANSPORT_SECURITY_TYPE_PROPERTY_NAME, kind, sizeof(kind)) &&
            strcmp(kind, GRPC_SSL_TRANSPORT_SECURITY_TYPE) == 0;
        if (peer->tls && (auth_property(ac, GRPC_PEER_SPIFFE_ID_PROPERTY_NAME, id, idcap) ||
                          auth_property(ac, GRPC_X509_CN_PROPERTY_NAME, id, idcap)))
            peer->cert_id = id;
        grpc_auth_context_release(ac);
    }
    for (size_t i = 0; i < ctx->md.count; i++) {
        const grpc_metadata *m = &ctx->md.metadata[i];
        size_t n = GRPC_SLICE_LENGTH(m->value);
        const char *v = (const char *)GRPC_SLICE_START_PTR(m->value);
        if (!grpc_slice_str_cmp(m->key, "authorization") && n > 7 && n - 7 < tokcap &&
            strncasecmp(v, "Bearer ", 7) == 0) {
            memcpy(token, v + 7, n - 7);
            token[n - 7] = '\0';
            peer->token = token;
        }
    }
}

/* Whether ctx may go on to its handler: the server's authorize callback lets
 * its peer call its method, and that client has room for one more call in
 * flight. A refused call is answered here (msg: scratch space). Also cuts
 * the call's deadline to the server's longest. */
static bool admit_call(sx_rpc_call *ctx, char *msg, size_t cap)
{
    sx_rpc_server *srv = ctx->srv;
    if (srv->max_deadline_ms)
        ctx->cap_deadline_mono = sx_clock_now_ms() + srv->max_deadline_ms;
    if (!srv->authorize && !srv->max_calls_per_client)
        return true;
    char id[512] = "", token[1024] = "";
    sx_rpc_peer peer = {0};
    if (srv->authorize) /* without it a client is its connection: no identity to read */
        peer_of(ctx, &peer, id, sizeof(id), token, sizeof(token));
    char *addr = grpc_call_get_peer(ctx->call);
    peer.address = addr;
    sx_err err = {0};
    sx_status st =
        srv->authorize ? srv->authorize(srv->authorize_arg, &peer, ctx->m->path, &err) : SX_OK;
    const char *client = peer.client[0] ? peer.client : peer.cert_id ? peer.cert_id : addr;
    if (st == SX_OK && srv->max_calls_per_client && !peer.unlimited && !count_client(ctx, client))
        st = sx_err_set(&err, SX_RESOURCE_EXHAUSTED,
                        "%s: %u calls in flight from %s already, the most one client may have "
                        "(max-calls-per-client)",
                        ctx->m->path, srv->max_calls_per_client, client);
    gpr_free(addr);
    explicit_bzero(token, sizeof(token));
    if (st == SX_OK)
        return true;
    snprintf(msg, cap, "%s", err.msg[0] ? err.msg : sx_status_name(st));
    SX_LOG(SX_LOG_DEBUG, "rpc", "refused method=%s status=%s msg=\"%s\"", ctx->m->path,
           sx_status_name(st), msg);
    call_reply(ctx, st, msg);
    return false;
}

static void on_arrived(sx__rpc_tag *tag, bool ok)
{
    sx_rpc_call *ctx = SX__CONTAINER_OF(tag, sx_rpc_call, arrived);
    sx_rpc_server *srv = ctx->srv;
    if (!ok) { /* the server is shutting down: the request was never matched */
        call_free(ctx);
        return;
    }
    if (!atomic_load(&srv->shutting_down))
        post_request(srv, ctx->m, ctx->cq_index);
    if (srv->requests)
        ctx->arrived_ns = sx_clock_now_ns();
    ctx->wall_deadline_mono = wall_deadline_of(&ctx->md);

    char msg[SX_ERR_MSG_MAX];
    if (!ctx->m) {
        char *method = grpc_slice_to_c_string(ctx->details.method);
        snprintf(msg, sizeof(msg), "unknown method %s", method);
        gpr_free(method);
        call_reply(ctx, SX_UNIMPLEMENTED, msg);
        return;
    }
    if (!admit_call(ctx, msg, sizeof(msg)))
        return;
    const ProtobufCMethodDescriptor *d = ctx->m->desc;
    if (!ctx->payload) {
        snprintf(msg, sizeof(msg), "%s: the call carries no request message", ctx->m->path);
        call_reply(ctx, SX_INVALID_ARGUMENT, msg);
        return;
    }
    ctx->req = sx__rpc_unpack(d->input, ctx->payload);
    if (!ctx->req) {
        snprintf(msg, sizeof(msg), "%s: the request is not a valid %s message", ctx->m->path,
                 d->input->name);
        call_reply(ctx, SX_INVALID_ARGUMENT, msg);
        return;
    }
    dispatch(ctx);
}

static void stream_open(sx_rpc_call *ctx);

/* Runs ctx's handler where its method says (ctx->req is set). */
static void dispatch(sx_rpc_call *ctx)
{
    sx_rpc_server *srv = ctx->srv;
    const ProtobufCMethodDescriptor *d = ctx->m->desc;
    if (ctx->m->stream) {
        stream_open(ctx);
    } else {
        ctx->resp = sx_calloc(1, d->output->sizeof_message);
        d->output->message_init(ctx->resp);
    }
    if (ctx->m->exec == SX_RPC_BLOCKING || ctx->m->exec == SX_RPC_STREAM)
        sx_pool_submit(srv->pool, run_handler, ctx);
    else if (ctx->m->exec == SX_RPC_WAITING)
        sx_pool_submit(srv->waiting, run_handler, ctx);
    else if (ctx->m->exec == SX_RPC_ROUTING)
        sx_pool_submit(srv->routing, run_handler, ctx);
    else
        run_handler(ctx);
}

static void on_replied(sx__rpc_tag *tag, bool ok)
{
    (void)ok; /* a failed reply means the client went away: nothing to do */
    call_free(SX__CONTAINER_OF(tag, sx_rpc_call, replied));
}

/* ------------------------------------------------------------- streaming -- */

/* Drops one reference of ctx's stream (ss->mu held, released here); frees
 * the call at the last. */
static void stream_unref_unlock(sx_rpc_call *ctx)
{
    stream_state *ss = ctx->stream;
    bool last = --ss->refs == 0;
    pthread_mutex_unlock(&ss->mu);
    if (last)
        call_free(ctx);
}

/* Starts one batch of ctx's stream (ss->mu held): initial metadata first if
 * no batch carried it yet. A refused batch completes nothing. */
static bool stream_batch_locked(sx_rpc_call *ctx, grpc_op *op, sx__rpc_tag *tag)
{
    stream_state *ss = ctx->stream;
    grpc_op ops[2];
    memset(ops, 0, sizeof(ops));
    size_t n = 0;
    if (!ss->md_sent)
        ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[n++] = *op;
    grpc_call_error rc = grpc_call_start_batch(ctx->call, ops, n, tag, NULL);
    if (rc != GRPC_CALL_OK) {
        SX_LOG(SX_LOG_ERROR, "rpc", "cannot start a stream batch method=%s grpc_error=%d",
               sx_rpc_call_method(ctx), (int)rc);
        return false;
    }
    ss->md_sent = true;
    ss->refs++;
    return true;
}

static void stream_send_locked(sx_rpc_call *ctx, grpc_byte_buffer *bb)
{
    stream_state *ss = ctx->stream;
    grpc_op op = {.op = GRPC_OP_SEND_MESSAGE};
    op.data.send_message.send_message = bb;
    ss->in_flight = bb;
    if (!stream_batch_locked(ctx, &op, &ss->sent)) {
        grpc_byte_buffer_destroy(bb);
        ss->in_flight = NULL;
        ss->over = true;
    }
}

static void stream_status_locked(sx_rpc_call *ctx)
{
    stream_state *ss = ctx->stream;
    ss->status_started = true;
    grpc_op op = {.op = GRPC_OP_SEND_STATUS_FROM_SERVER};
    op.data.send_status_from_server.status = (grpc_status_code)sx_status_grpc_code(ss->fin_status);
    if (ss->fin_msg && ss->fin_msg[0]) {
        ctx->status_details = grpc_slice_from_copied_string(ss->fin_msg);
        ctx->has_status_details = true;
        op.data.send_status_from_server.status_details = &ctx->status_details;
    }
    stream_batch_locked(ctx, &op, &ctx->replied);
}

/* The rest of the stream after a send completed or the client left: the
 * next queued message, or the status once the handler finished. */
static void stream_next_locked(sx_rpc_call *ctx)
{
    stream_state *ss = ctx->stream;
    if (ss->in_flight)
        return;
    if (ss->over) {
        for (; ss->count; ss->count--, ss->head = (ss->head + 1) % SX_RPC_STREAM_QUEUE)
            grpc_byte_buffer_destroy(ss->queue[ss->head]);
    } else if (ss->count) {
        grpc_byte_buffer *bb = ss->queue[ss->head];
        ss->head = (ss->head + 1) % SX_RPC_STREAM_QUEUE;
        ss->count--;
        stream_send_locked(ctx, bb);
        return;
    }
    if (ss->finished && !ss->status_started)
        stream_status_locked(ctx);
}

static void on_stream_sent(sx__rpc_tag *tag, bool ok)
{
    stream_state *ss = SX__CONTAINER_OF(tag, stream_state, sent);
    pthread_mutex_lock(&ss->mu);
    grpc_byte_buffer_destroy(ss->in_flight);
    ss->in_flight = NULL;
    if (!ok)
        ss->over = true; /* the client is gone */
    stream_next_locked(ss->call);
    stream_unref_unlock(ss->call);
}

static void on_stream_replied(sx__rpc_tag *tag, bool ok)
{
    (void)ok;
    sx_rpc_call *ctx = SX__CONTAINER_OF(tag, sx_rpc_call, replied);
    pthread_mutex_lock(&ctx->stream->mu);
    stream_unref_unlock(ctx);
}

/* Ends the stream for the client (ss->mu held, released here): nothing more
 * is sent but the status, and the handler hears why unless it finished. */
static void stream_over_unlock(sx_rpc_call *ctx, sx_status why)
{
    stream_state *ss = ctx->stream;
    ss->over = true;
    stream_next_locked(ctx);
    sx_rpc_cancel_cb fn = NULL;
    if (!ss->finished && ss->on_cancel && !ss->cancel_ran) {
        ss->cancel_ran = true;
        fn = ss->on_cancel;
    }
    void *arg = ss->cancel_arg;
    pthread_mutex_unlock(&ss->mu);
    if (fn)
        fn(arg, why);
}

static void on_stream_closed(sx__rpc_tag *tag, bool ok)
{
    (void)ok;
    stream_state *ss = SX__CONTAINER_OF(tag, stream_state, closed);
    sx_rpc_call *ctx = ss->call;
    pthread_mutex_lock(&ss->mu);
    /* This batch's reference keeps ctx while the handler hears of it. */
    stream_over_unlock(ctx, atomic_load(&ctx->srv->shutting_down) ? SX_UNAVAILABLE : SX_CANCELLED);
    pthread_mutex_lock(&ss->mu);
    stream_unref_unlock(ctx);
}

/* Before the handler runs: the state, the server's list, and the wait for
 * the client to leave. */
static void stream_open(sx_rpc_call *ctx)
{
    stream_state *ss = sx_calloc(1, sizeof(*ss));
    pthread_mutex_init(&ss->mu, NULL);
    ss->call = ctx;
    ss->sent.cb = on_stream_sent;
    ss->closed.cb = on_stream_closed;
    ctx->replied.cb = on_stream_replied;
    ss->refs = 1; /* the handler's, until sx_rpc_call_finish */
    ctx->stream = ss;
    sx_rpc_server *srv = ctx->srv;
    pthread_mutex_lock(&srv->mu);
    ss->next = srv->streams;
    if (srv->streams)
        srv->streams->stream->prev = ctx;
    srv->streams = ctx;
    ss->listed = true;
    pthread_mutex_unlock(&srv->mu);
    grpc_op op = {.op = GRPC_OP_RECV_CLOSE_ON_SERVER};
    op.data.recv_close_on_server.cancelled = &ctx->cancelled;
    pthread_mutex_lock(&ss->mu);
    if (grpc_call_start_batch(ctx->call, &op, 1, &ss->closed, NULL) == GRPC_CALL_OK)
        ss->refs++;
    else
        ss->over = true;
    pthread_mutex_unlock(&ss->mu);
}

static void stream_unlist(sx_rpc_call *ctx)
{
    sx_rpc_server *srv = ctx->srv;
    stream_state *ss = ctx->stream;
    pthread_mutex_lock(&srv->mu);
    if (ss->listed) {
        if (ss->prev)
            ss->prev->stream->next = ss->next;
        else
            srv->streams = ss->next;
        if (ss->next)
            ss->next->stream->prev = ss->prev;
        ss->listed = false;
    }
    pthread_mutex_unlock(&srv->mu);
}

static void stream_finish(sx_rpc_call *ctx, sx_status status, const char *msg)
{
    stream_unlist(ctx);
    stream_state *ss = ctx->stream;
    pthread_mutex_lock(&ss->mu);
    if (ss->finished) { /* a contract breach: once only */
        pthread_mutex_unlock(&ss->mu);
        SX_LOG(SX_LOG_ERROR, "rpc", "stream finished twice method=%s", sx_rpc_call_method(ctx));
        return;
    }
    ss->finished = true;
    ss->fin_status = status;
    ss->fin_msg = msg ? sx_strdup(msg) : NULL;
    stream_next_locked(ctx);
    stream_unref_unlock(ctx); /* the handler's reference */
}

sx_status sx_rpc_call_send(sx_rpc_call *call, const ProtobufCMessage *msg)
{
    stream_state *ss = call->stream;
    if (!ss)
        return SX_FAILED_PRECONDITION; /* not a stream: a caller's bug */
    pthread_mutex_lock(&ss->mu);
    sx_status st = SX_OK;
    if (ss->over || ss->finished)
        st = SX_CANCELLED;
    else if (!ss->in_flight)
        stream_send_locked(call, sx__rpc_pack(msg));
    else if (ss->count == SX_RPC_STREAM_QUEUE)
        st = SX_RESOURCE_EXHAUSTED;
    else
        ss->queue[(ss->head + ss->count++) % SX_RPC_STREAM_QUEUE] = sx__rpc_pack(msg);
    pthread_mutex_unlock(&ss->mu);
    return st;
}

void sx_rpc_call_on_cancel(sx_rpc_call *call, sx_rpc_cancel_cb fn, void *arg)
{
    stream_state *ss = call->stream;
    if (!ss)
        return;
    pthread_mutex_lock(&ss->mu);
    ss->on_cancel = fn;
    ss->cancel_arg = arg;
    if (ss->over) { /* it ended before the handler registered: tell it now */
        stream_over_unlock(call, SX_CANCELLED);
        return;
    }
    pthread_mutex_unlock(&ss->mu);
}

/* At shutdown: every open stream ends for its client, and its handler hears
 * so (and finishes it), instead of the grace period running out on it. */
static void end_streams(sx_rpc_server *srv)
{
    for (;;) {
        pthread_mutex_lock(&srv->mu);
        sx_rpc_call *ctx = srv->streams;
        stream_state *ss = ctx ? ctx->stream : NULL;
        if (ss) { /* out of the list, kept alive by a reference meanwhile */
            srv->streams = ss->next;
            if (ss->next)
                ss->next->stream->prev = NULL;
            ss->listed = false;
            pthread_mutex_lock(&ss->mu);
            ss->refs++;
            pthread_mutex_unlock(&ss->mu);
        }
        pthread_mutex_unlock(&srv->mu);
        if (!ctx)
            return;
        pthread_mutex_lock(&ss->mu);
        stream_over_unlock(ctx, SX_UNAVAILABLE);
        pthread_mutex_lock(&ss->mu);
        stream_unref_unlock(ctx);
    }
}

/* ---------------------------------------------------------------- server -- */

sx_status sx_rpc_server_create(const sx_rpc_server_opts *opts, sx_rpc_server **out, sx_err *err)
{
    *out = NULL;
    if (!opts || !opts->listen || !opts->listen[0])
        return sx_err_set(err, SX_INVALID_ARGUMENT, "rpc server: listen address is required");
    sx_rpc_server *s = sx_calloc(1, sizeof(*s));
    s->listen = sx_strdup(opts->listen);
    s->max_message = opts->max_message_bytes ? opts->max_message_bytes : SX_RPC_DEFAULT_MAX_MESSAGE;
    s->grace_ms = opts->shutdown_grace_ms ? opts->shutdown_grace_ms : 2000;
    s->ncq = opts->cq_threads > 0 ? opts->cq_threads : 1;
    s->pool_threads = opts->pool_threads > 0 ? opts->pool_threads : 8;
    s->wait_threads = opts->wait_threads > 0 ? opts->wait_threads : s->pool_threads;
    s->routing_threads = opts->routing_threads > 0 ? opts->routing_threads : s->pool_threads;
    if (opts->tls) {
        s->has_tls = true;
        s->tls.cert_file = opts->tls->cert_file ? sx_strdup(opts->tls->cert_file) : NULL;
        s->tls.key_file = opts->tls->key_file ? sx_strdup(opts->tls->key_file) : NULL;
        s->tls.ca_file = opts->tls->ca_file ? sx_strdup(opts->tls->ca_file) : NULL;
    }
    s->authorize = opts->authorize;
    s->authorize_arg = opts->authorize_arg;
    s->max_calls_per_client = opts->max_calls_per_client;
    s->max_streams = opts->max_streams_per_connection;
    s->max_deadline_ms = opts->max_deadline_ms;
    pthread_mutex_init(&s->lim_mu, NULL);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    atomic_init(&s->shutting_down, false);
    static const char *const req_labels[] = {"service", "method", "code"};
    s->requests = sx_metrics_family(
        opts->metrics, SX_METRIC_COUNTER, "shardex_rpc_server_requests_total",
        "RPCs answered by this server (calls it makes to itself included), by service, method "
        "and status code; errors are the codes other than OK",
        req_labels, 3, NULL, 0);
    s->handling = sx_metrics_family(
        opts->metrics, SX_METRIC_HISTOGRAM, "shardex_rpc_server_handling_seconds",
        "Time from a call's arrival to its answer being sent, by service and method", req_labels, 2,
        sx_metrics_latency_buckets, sx_metrics_latency_nbuckets);
    *out = s;
    return SX_OK;
}

sx_status sx_rpc_server_add_service(sx_rpc_server *s, const ProtobufCServiceDescriptor *svc,
                                    const sx_rpc_method *methods, size_t count, void *arg,
                                    sx_err *err)
{
    if (s->started)
        return sx_err_set(err, SX_FAILED_PRECONDITION, "rpc server: add_service after start");
    for (size_t i = 0; i < count; i++) {
        const ProtobufCMethodDescriptor *d =
            protobuf_c_service_descriptor_get_method_by_name(svc, methods[i].name);
        if (!d)
            return sx_err_set(err, SX_INVALID_ARGUMENT, "rpc server: %s has no method %s",
                              svc->name, methods[i].name);
    }
    for (size_t i = 0; i < count; i++) {
        if (s->nmethods == s->capmethods) {
            s->capmethods = s->capmethods ? 2 * s->capmethods : 16;
            s->methods = sx_realloc(s->methods, s->capmethods * sizeof(*s->methods));
        }
        method_entry *m = &s->methods[s->nmethods++];
        memset(m, 0, sizeof(*m));
        m->desc = protobuf_c_service_descriptor_get_method_by_name(svc, methods[i].name);
        if (!sx__rpc_method_path(svc, methods[i].name, m->path, sizeof(m->path)))
            return sx_err_set(err, SX_INVALID_ARGUMENT, "rpc server: method name too long");
        m->fn = methods[i].fn;
        m->exec = methods[i].exec;
        m->stream = methods[i].exec == SX_RPC_STREAM;
        m->arg = arg;
    }
    return SX_OK;
}

sx_status sx_rpc_server_start(sx_rpc_server *s, sx_err *err)
{
    if (s->started)
        return sx_err_set(err, SX_FAILED_PRECONDITION, "rpc server: already started");
    grpc_init();
    grpc_arg args[2];
    args[0].type = GRPC_ARG_INTEGER;
    args[0].key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
    args[0].value.integer = (int)s->max_message;
    grpc_channel_args cargs = {.num_args = 1, .args = args};
    if (s->max_streams) {
        args[1].type = GRPC_ARG_INTEGER;
        args[1].key = GRPC_ARG_MAX_CONCURRENT_STREAMS;
        args[1].value.integer = (int)s->max_streams;
        cargs.num_args = 2;
    }
    s->server = grpc_server_create(&cargs, NULL);
    s->cqs = sx_calloc((size_t)s->ncq, sizeof(*s->cqs));
    for (int i = 0; i < s->ncq; i++) {
        s->cqs[i] = grpc_completion_queue_create_for_next(NULL);
        grpc_server_register_completion_queue(s->server, s->cqs[i], NULL);
    }
    for (size_t i = 0; i < s->nmethods; i++)
        s->methods[i].handle = grpc_server_register_method(
            s->server, s->methods[i].path, NULL, GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0);
    grpc_server_credentials *creds = NULL;
    if (s->has_tls) {
        char *ca, *cert, *key;
        sx_status st = sx__rpc_tls_read(&s->tls, true, &ca, &cert, &key, err);
        if (st != SX_OK)
            return st;
        grpc_ssl_pem_key_cert_pair pair = {.private_key = key, .cert_chain = cert};
        /* Clients with a token have no certificate: one is verified when
         * presented, and authorize decides what either may call. */
        creds = grpc_ssl_server_credentials_create_ex(
            ca, &pair, 1, GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY, NULL);
        free(ca);
        free(cert);
        free(key);
    } else {
        creds = grpc_insecure_server_credentials_create();
    }
    s->port = grpc_server_add_http2_port(s->server, s->listen, creds);
    grpc_server_credentials_release(creds);
    if (s->port <= 0) {
        /* Never started: destroy leaves nothing behind. */
        return sx_err_set(err, SX_UNAVAILABLE, "rpc server: cannot listen on %s", s->listen);
    }
    grpc_server_start(s->server);
    s->started = true;
    s->pool = sx_pool_create(s->pool_threads, "rpc-pool");
    s->waiting = sx_pool_create(s->wait_threads, "rpc-wait");
    s->routing = sx_pool_create(s->routing_threads, "rpc-route");
    for (int i = 0; i < s->ncq; i++) {
        post_request(s, NULL, i);
        for (size_t j = 0; j < s->nmethods; j++)
            for (int k = 0; k < POSTED_PER_METHOD; k++)
                post_request(s, &s->methods[j], i);
    }
    s->threads = sx_calloc((size_t)s->ncq, sizeof(*s->threads));
    for (int i = 0; i < s->ncq; i++) {
        pthread_create(&s->threads[i], NULL, sx__rpc_poll_main, s->cqs[i]);
        pthread_setname_np(s->threads[i], "rpc-cq");
    }
    SX_LOG(SX_LOG_INFO, "rpc",
           "listening addr=%s port=%d cq_threads=%d pool_threads=%d "
           "max_message=%zu methods=%zu",
           s->listen, s->port, s->ncq, s->pool_threads, s->max_message, s->nmethods);
    return SX_OK;
}

void sx_rpc_server_call_local(sx_rpc_server *s, const ProtobufCServiceDescriptor *svc,
                              const char *method, const ProtobufCMessage *req, uint64_t deadline_ms,
                              sx_rpc_done_cb done, void *arg)
{
    sx_err err = {0};
    char path[METHOD_PATH_MAX] = "";
    method_entry *m = NULL;
    if (sx__rpc_method_path(svc, method, path, sizeof(path)))
        for (size_t i = 0; i < s->nmethods && !m; i++)
            if (strcmp(s->methods[i].path, path) == 0)
                m = &s->methods[i];
    if (!m || m->stream) {
        done(sx_err_set(&err, SX_UNIMPLEMENTED, "%s method %s/%s", m ? "streaming" : "unknown",
                        svc->name, method),
             &err, NULL, arg);
        return;
    }
    if (!s->started || atomic_load(&s->shutting_down)) {
        done(sx_err_set(&err, SX_UNAVAILABLE, "%s: the server is not serving", path), &err, NULL,
             arg);
        return;
    }
    sx_rpc_call *ctx = call_new(s, m);
    ctx->local_done = done;
    ctx->local_arg = arg;
    if (s->requests)
        ctx->arrived_ns = sx_clock_now_ns();
    ctx->deadline = sx__rpc_deadline_from_ms(deadline_ms);
    ctx->req = sx_rpc_copy(m->desc->input, req);
    dispatch(ctx);
}

int sx_rpc_server_port(const sx_rpc_server *s)
{
    return s->port;
}

static void drain_and_destroy_cq(grpc_completion_queue *cq)
{
    grpc_completion_queue_shutdown(cq);
    while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
           GRPC_QUEUE_SHUTDOWN) {
    }
    grpc_completion_queue_destroy(cq);
}

void sx_rpc_server_destroy(sx_rpc_server *s)
{
    if (!s)
        return;
    if (s->server) {
        if (s->started) {
            atomic_store(&s->shutting_down, true);
            grpc_completion_queue *scq = grpc_completion_queue_create_for_pluck(NULL);
            int shutdown_tag;
            grpc_server_shutdown_and_notify(s->server, scq, &shutdown_tag);
            end_streams(s); /* their handlers finish them: no waiting out the grace */
            gpr_timespec grace = sx__rpc_deadline_from_ms(sx_clock_now_ms() + s->grace_ms);
            grpc_event ev = grpc_completion_queue_pluck(scq, &shutdown_tag, grace, NULL);
            if (ev.type == GRPC_QUEUE_TIMEOUT) {
                SX_LOG(SX_LOG_WARN, "rpc", "shutdown grace of %llu ms over: cancelling calls",
                       (unsigned long long)s->grace_ms);
                grpc_server_cancel_all_calls(s->server);
                grpc_completion_queue_pluck(scq, &shutdown_tag, gpr_inf_future(GPR_CLOCK_REALTIME),
                                            NULL);
            }
            /* Every context must be released while the queues still poll. */
            pthread_mutex_lock(&s->mu);
            while (s->live > 0)
                pthread_cond_wait(&s->cv, &s->mu);
            pthread_mutex_unlock(&s->mu);
            sx_pool_destroy(s->routing);
            sx_pool_destroy(s->waiting);
            sx_pool_destroy(s->pool);
            for (int i = 0; i < s->ncq; i++)
                grpc_completion_queue_shutdown(s->cqs[i]);
            for (int i = 0; i < s->ncq; i++)
                pthread_join(s->threads[i], NULL);
            grpc_server_destroy(s->server);
            for (int i = 0; i < s->ncq; i++)
                grpc_completion_queue_destroy(s->cqs[i]);
            grpc_completion_queue_shutdown(scq);
            while (grpc_completion_queue_pluck(scq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL)
                       .type != GRPC_QUEUE_SHUTDOWN) {
            }
            grpc_completion_queue_destroy(scq);
        } else {
            grpc_server_destroy(s->server);
            for (int i = 0; i < s->ncq; i++)
                drain_and_destroy_cq(s->cqs[i]);
        }
        grpc_shutdown();
    }
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->lim_mu);
    sx_hmap_free(&s->inflight, NULL);
    free(s->threads);
    free(s->cqs);
    free(s->methods);
    free(s->listen);
    free((char *)s->tls.cert_file);
    free((char *)s->tls.key_file);
    free((char *)s->tls.ca_file);
    free(s);
}
