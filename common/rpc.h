/* rpc.h: unary RPC over the gRPC C core, with protobuf-c messages.
 *
 * There is no C code generator for gRPC services, so this module is the one
 * generic path: a server dispatches from a table built against protobuf-c's
 * service descriptors (receive -> unpack -> handler -> pack -> status), and a
 * client calls any method of any descriptor by name. Only rpc*.c include
 * grpc/grpc.h; handlers and callers see protobuf-c messages and sx_err.
 *
 * Streams: a server may serve methods that return a stream (server
 * streaming, below); a client may open a stream to any method (client
 * streams, below: client, server or bidirectional streaming, as the method
 * is declared), which is how the etcd client keeps leases and watches.
 *
 * Security: with sx_rpc_tls set, servers listen with TLS and verify the
 * certificates clients present against a CA, clients verify the server's and
 * present their own; an authorize callback decides each call from who the
 * peer is (its certificate's identity, a bearer token) before any handler
 * runs. Without it, plaintext and everyone may call everything.
 *
 * Status mapping: a handler's sx_status goes out as the gRPC status of the same
 * number and its sx_err message as the status details; a client gets both back
 * exactly. Transport failures arrive as the statuses gRPC gives them
 * (UNAVAILABLE when nothing listens, DEADLINE_EXCEEDED at the deadline).
 */
#ifndef SX_RPC_H
#define SX_RPC_H

#include "mem.h"
#include "metrics.h"
#include "status.h"

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Default receive limit of servers and clients (gRPC's own default). */
#define SX_RPC_DEFAULT_MAX_MESSAGE (4u * 1024 * 1024)
/* Deadline of a client call whose options leave it 0: every call has one. */
#define SX_RPC_DEFAULT_TIMEOUT_MS 5000u

/* ---------------------------------------------------------------- server -- */

typedef struct sx_rpc_server sx_rpc_server;
typedef struct sx_rpc_call sx_rpc_call; /* one call, as a handler sees it */

/* A handler. `req` is the unpacked request (borrowed until the reply is sent);
 * `resp` is a zero-initialised message of the method's output type, owned by
 * the call: fill it with memory from sx_rpc_call_alloc, memory that outlives the
 * call (such as parts of req), or memory registered with sx_rpc_call_on_done.
 * Return SX_OK to send resp, or an error (message in err) to send a status.
 * `arg` is the pointer given to sx_rpc_server_add_service. */
typedef sx_status (*sx_rpc_handler_cb)(sx_rpc_call *call, const ProtobufCMessage *req,
                                       ProtobufCMessage *resp, void *arg, sx_err *err);

typedef enum {
    SX_RPC_INLINE = 0,   /* runs on a completion-queue thread: must not block */
    SX_RPC_BLOCKING = 1, /* runs on the server's pool: may fsync; makes progress by itself */
    /* The next two run on pools of their own, so that handlers that wait can
     * never starve the work they wait for (calls that queue behind waiters
     * on a shared pool deadlock until their deadlines):
     *   WAITING  waits for progress made by BLOCKING handlers or other
     *            threads (a read waiting until an offset is applied);
     *   ROUTING  waits for other calls, possibly to this same server, of any
     *            kind but ROUTING (a router fanning out). */
    SX_RPC_WAITING = 2,
    SX_RPC_ROUTING = 3,
    /* A method that returns a stream (`returns (stream X)`, which protobuf-c's
     * descriptors do not say): its handler runs on the pool of BLOCKING ones
     * and opens the stream ("server streaming" below). */
    SX_RPC_STREAM = 4,
} sx_rpc_exec;

typedef struct sx_rpc_method {
    const char *name; /* method name as in the .proto, e.g. "Put" */
    sx_rpc_handler_cb fn;
    sx_rpc_exec exec;
} sx_rpc_method;

/* TLS: PEM files, read when a server starts or a client is created. */
typedef struct sx_rpc_tls {
    const char *cert_file; /* this process's certificate chain; a client may go without */
    const char *key_file;  /* its private key (with cert_file) */
    const char *ca_file;   /* the CA that signs the peers' certificates */
} sx_rpc_tls;

/* Who calls, as the server's authorize callback sees it (borrowed). */
typedef struct sx_rpc_peer {
    bool tls;            /* over TLS */
    const char *cert_id; /* the client certificate's SPIFFE id (a URI SAN), else its CN; NULL:
                          * no certificate (a verified one, the server checks it against its CA) */
    const char *token;   /* the bearer token of an `authorization: Bearer ...` header; NULL: none */
    const char *address; /* as gRPC names it, e.g. "ipv4:127.0.0.1:43210" */
    bool unlimited;      /* authorize sets it for peers whose calls are not limited (nodes) */
    char client[80];     /* authorize may name who calls are counted under (a token's holder);
                          * "": the certificate's identity, else the connection */
} sx_rpc_peer;

/* Decides whether peer may call method (the full path, e.g.
 * "/shardex.v1.Shardex/Put"): SX_OK, or the status to answer with
 * (UNAUTHENTICATED, PERMISSION_DENIED) and a message in err. Runs on a
 * completion-queue thread for every call, before its request is decoded:
 * must not block. */
typedef sx_status (*sx_rpc_authorize_cb)(void *arg, sx_rpc_peer *peer, const char *method,
                                         sx_err *err);

typedef struct sx_rpc_server_opts {
    const char *listen;            /* "host:port"; port 0 lets the kernel choose */
    int cq_threads;                /* threads polling completion queues; 0: 1 */
    int pool_threads;              /* threads for SX_RPC_BLOCKING handlers; 0: 8 */
    int wait_threads;              /* threads for SX_RPC_WAITING handlers; 0: pool_threads */
    int routing_threads;           /* threads for SX_RPC_ROUTING handlers; 0: pool_threads */
    size_t max_message_bytes;      /* receive limit; 0: SX_RPC_DEFAULT_MAX_MESSAGE */
    uint64_t shutdown_grace_ms;    /* calls in flight get this long at shutdown; 0: 2000 */
    const sx_rpc_tls *tls;         /* NULL: plaintext; else cert_file and key_file are required,
                                    * and client certificates are verified against ca_file */
    sx_rpc_authorize_cb authorize; /* NULL: every call is let through */
    void *authorize_arg;
    /* Limits, each 0 for none. A client past one gets RESOURCE_EXHAUSTED and
     * the others go on being served: */
    uint32_t max_calls_per_client;       /* calls in flight from one client: the certificate's
                                          * identity, else one connection; not for unlimited peers */
    uint32_t max_streams_per_connection; /* HTTP/2 streams open at once (gRPC queues more) */
    uint64_t max_deadline_ms;            /* handlers see at most this much time left (a longer or no
                                          * deadline is cut to it) */
    /* Where every answered call is counted, by service, method and status
     * (shardex_rpc_server_requests_total), and timed from arrival to reply
     * (shardex_rpc_server_handling_seconds); local calls too. Borrowed; must
     * outlive the server. NULL: not counted. */
    sx_metrics *metrics;
} sx_rpc_server_opts; /* valid when zeroed but for listen */

/* Creates a server (not yet listening). Caller destroys with sx_rpc_server_destroy. */
sx_status sx_rpc_server_create(const sx_rpc_server_opts *opts, sx_rpc_server **out, sx_err *err);

/* Serves `methods` of `svc` with `arg` passed to every handler. Call before
 * start. Every name must be a method of svc (else SX_INVALID_ARGUMENT); methods
 * of svc left out of the table, and unknown services, answer UNIMPLEMENTED. The
 * table and svc are borrowed until the server is destroyed. */
sx_status sx_rpc_server_add_service(sx_rpc_server *s, const ProtobufCServiceDescriptor *svc,
                                    const sx_rpc_method *methods, size_t count, void *arg,
                                    sx_err *err);

/* Binds and starts serving. SX_UNAVAILABLE if the address cannot be bound. */
sx_status sx_rpc_server_start(sx_rpc_server *s, sx_err *err);

/* The bound port (useful with port 0), valid after a successful start. */
int sx_rpc_server_port(const sx_rpc_server *s);

/* Graceful shutdown: stops accepting calls, lets calls in flight finish for the
 * grace period, cancels the rest, waits for every handler (blocking ones too:
 * they must honour their deadline), then frees. Accepts NULL. Not from a handler. */
void sx_rpc_server_destroy(sx_rpc_server *s);

/* Arena memory for the response, freed after the reply is sent. Aborts on OOM. */
void *sx_rpc_call_alloc(sx_rpc_call *call, size_t n);
char *sx_rpc_call_strdup(sx_rpc_call *call, const char *s);
/* The arena behind sx_rpc_call_alloc, for code that builds into an sx_arena. */
sx_arena *sx_rpc_call_arena(sx_rpc_call *call);

/* Runs fn(ptr) after the reply has been sent (to free what resp points into). */
void sx_rpc_call_on_done(sx_rpc_call *call, void (*fn)(void *), void *ptr);

/* The call's deadline in sx_clock_now_ms() terms; UINT64_MAX when it has none. */
uint64_t sx_rpc_call_deadline_ms(const sx_rpc_call *call);

/* How long a handler that waits gives a call whose client set no deadline:
 * such a client still gets an answer. */
#define SX_RPC_NO_DEADLINE_MS 30000
/* The call's deadline, or SX_RPC_NO_DEADLINE_MS from now when it has none. */
uint64_t sx_rpc_call_deadline_or_default(const sx_rpc_call *call);

/* The full method path, e.g. "/shardex.v1.Shardex/Put". Borrowed from the call. */
const char *sx_rpc_call_method(const sx_rpc_call *call);

/* Answers with msg instead of the handler's resp, when the handler succeeds:
 * msg is a message whose encoding is a valid encoding of the method's output
 * type (a wire twin with the same field numbers, such as one holding an
 * embedded message as its packed bytes; proto/shardex/internal/v1/wire.proto),
 * borrowed until the call ends (call memory). The client decodes the method's
 * output type, as always. */
void sx_rpc_call_reply_with(sx_rpc_call *call, const ProtobufCMessage *msg);

/* Deferred reply: a handler that calls sx_rpc_call_defer returns at once (its
 * return value is ignored) and some thread later calls sx_rpc_call_finish
 * exactly once with the outcome; until then req, resp and the call stay valid.
 * For waits (read-your-writes, replication) that should hold no thread. */
void sx_rpc_call_defer(sx_rpc_call *call);
void sx_rpc_call_finish(sx_rpc_call *call, sx_status status, const sx_err *err);

/* ------------------------------------------------------ server streaming -- */

/* A method served as SX_RPC_STREAM answers with any number of messages, then
 * a status. Its handler runs as any other, with resp NULL, and opens the
 * stream: returning SX_OK leaves it open, an error ends it at once with that
 * status. While it is open any thread may send (sx_rpc_call_send); it ends
 * when some thread calls sx_rpc_call_finish, exactly once, also after the
 * client went away. Until then the call and req stay valid. A local call
 * (sx_rpc_server_call_local) of such a method is UNIMPLEMENTED. */

/* Messages a stream holds for a client that reads slower than it is sent. */
#define SX_RPC_STREAM_QUEUE 64

/* Queues msg (packed before this returns: the caller keeps it) to be sent
 * after those queued before. SX_CANCELLED once the stream is over for the
 * client (it cancelled, its deadline passed, the server stops) or was
 * finished; SX_RESOURCE_EXHAUSTED when SX_RPC_STREAM_QUEUE messages wait. */
sx_status sx_rpc_call_send(sx_rpc_call *call, const ProtobufCMessage *msg);

/* The reason a stream ends before its handler finished it: SX_CANCELLED (the
 * client cancelled or its deadline passed) or SX_UNAVAILABLE (the server
 * begins to stop). */
typedef void (*sx_rpc_cancel_cb)(void *arg, sx_status why);

/* Runs fn(arg, why) once, on an rpc thread and never while the rpc layer
 * holds a lock, when the stream ends before sx_rpc_call_finish was called;
 * the handler should then finish it soon (a stopping server waits for that).
 * Register at most one, from the handler, before it returns SX_OK. */
void sx_rpc_call_on_cancel(sx_rpc_call *call, sx_rpc_cancel_cb fn, void *arg);

/* ---------------------------------------------------------------- client -- */

typedef struct sx_rpc_client sx_rpc_client;

typedef struct sx_rpc_client_opts {
    size_t max_message_bytes; /* receive limit; 0: SX_RPC_DEFAULT_MAX_MESSAGE */
    /* Fault rules in sx_rpc_faults_parse syntax; NULL: the SHARDEX_FAULTS
     * environment variable, if set. Off unless configured. */
    const char *faults;
    const sx_rpc_tls *tls; /* NULL: plaintext; else ca_file is required (the servers' CA) and
                            * cert_file/key_file are presented when given */
    const char *token;     /* sent with every call as `authorization: Bearer TOKEN`; NULL: none */
} sx_rpc_client_opts;

/* A client keeps one channel per peer address, reused by every call, and one
 * thread that completes asynchronous calls. Thread-safe: share one per process. */
sx_status sx_rpc_client_create(const sx_rpc_client_opts *opts, sx_rpc_client **out, sx_err *err);

/* Cancels calls in flight (their callbacks run with SX_CANCELLED), waits for
 * them, closes every channel. Accepts NULL. Not from a callback. */
void sx_rpc_client_destroy(sx_rpc_client *c);

typedef struct sx_rpc_call_opts {
    uint64_t timeout_ms;         /* whole call, retries included; 0: SX_RPC_DEFAULT_TIMEOUT_MS */
    uint64_t attempt_timeout_ms; /* one attempt; 0: the whole timeout */
    bool idempotent;             /* retry on UNAVAILABLE or DEADLINE_EXCEEDED */
    uint32_t max_attempts;       /* idempotent calls; 0: 5 */
    bool wait_for_ready;         /* wait for the peer to come up instead of failing fast */
    /* sx_rpc_invoke_async only: receives the call's ticket for sx_rpc_cancel
     * (before the call starts, so also when it completes at once). NULL: none. */
    uint64_t *ticket;
} sx_rpc_call_opts; /* valid when zeroed */

/* Calls `method` of `svc` at `addr` ("host:port") and waits. On SX_OK *resp is
 * the unpacked response, which the caller frees with sx_rpc_free. On error
 * *resp is NULL and err holds the status and the server's message. */
sx_status sx_rpc_invoke(sx_rpc_client *c, const char *addr, const ProtobufCServiceDescriptor *svc,
                        const char *method, const ProtobufCMessage *req, ProtobufCMessage **resp,
                        const sx_rpc_call_opts *opts, sx_err *err);

/* Completion of an asynchronous call: runs exactly once, on a client thread
 * (it must not block for long). resp is NULL unless status is SX_OK; the
 * callback owns it (sx_rpc_free). err is borrowed for the callback only. */
typedef void (*sx_rpc_done_cb)(sx_status status, const sx_err *err, ProtobufCMessage *resp,
                               void *arg);

/* Starts a call and returns at once; req is serialized before return. With an
 * unknown method, done runs with SX_UNIMPLEMENTED before this returns. */
void sx_rpc_invoke_async(sx_rpc_client *c, const char *addr, const ProtobufCServiceDescriptor *svc,
                         const char *method, const ProtobufCMessage *req,
                         const sx_rpc_call_opts *opts, sx_rpc_done_cb done, void *arg);

/* Cancels the asynchronous call with this ticket (sx_rpc_call_opts.ticket)
 * if it has not completed: its callback then runs soon with SX_CANCELLED
 * (or with the outcome it already had, if that came first), and no retry
 * follows. A request on the wire is cancelled in gRPC (the server's handler
 * sees a cancelled call, if it looks); one still waiting (a fault delay, a
 * backoff) is never sent. Unknown or completed tickets: nothing. Any thread,
 * also from a completion callback. */
void sx_rpc_cancel(sx_rpc_client *c, uint64_t ticket);

/* Runs `method` of `svc` on this server without the network, as if a client
 * had called it: a copy of req goes to the same handler on the same pool,
 * bounded by deadline_ms (monotonic), and done runs exactly once (on a pool
 * thread, or before this returns) with a standalone response (sx_rpc_free)
 * or the handler's error; SX_UNIMPLEMENTED for a method not served,
 * SX_UNAVAILABLE when the server is not serving. For a node calling itself:
 * no connection, no gRPC threads, no fault layer. */
void sx_rpc_server_call_local(sx_rpc_server *s, const ProtobufCServiceDescriptor *svc,
                              const char *method, const ProtobufCMessage *req, uint64_t deadline_ms,
                              sx_rpc_done_cb done, void *arg);

/* Frees a message this layer made: a response returned by sx_rpc_invoke or
 * given to a callback, or one from sx_rpc_unpack or sx_rpc_copy (anything
 * else aborts). Accepts NULL. */
void sx_rpc_free(ProtobufCMessage *msg);

/* Unpacks len bytes as a message of desc, as the layer unpacks what arrives:
 * the whole message in one arena of its own, freed with sx_rpc_free. NULL
 * when the bytes are not one. */
ProtobufCMessage *sx_rpc_unpack(const ProtobufCMessageDescriptor *desc, size_t len,
                                const uint8_t *data);

/* A standalone message of type desc equal to msg (of that type, or a wire
 * twin of it: sx_rpc_call_reply_with), packed and unpacked as if it had
 * crossed the network; freed with sx_rpc_free. */
ProtobufCMessage *sx_rpc_copy(const ProtobufCMessageDescriptor *desc, const ProtobufCMessage *msg);

/* ------------------------------------------------------------ fault layer -- */

/* The fault layer sits in the client: every call matching a rule may be
 * failed, dropped, duplicated or delayed, chosen by a PRNG seeded from the spec,
 * so that the same seed and the same sequence of calls replay the same faults.
 *
 * Spec: rules separated by ';', each a ','-separated list of key=value:
 *   seed=N            PRNG seed (a rule of its own; default 1)
 *   method=NAME       "Put", "/shardex.v1.Shardex/Put" or "*" (default: all)
 *   peer=HOST:PORT    only calls to this address (default: all)
 *   fail=F            fraction failed at once with `code`, nothing sent
 *   code=NAME         status for fail=, e.g. UNAVAILABLE (default)
 *   drop=F            request lost: nothing sent, DEADLINE_EXCEEDED at the attempt's deadline
 *   drop_reply=F      request delivered and handled, reply lost: DEADLINE_EXCEEDED
 *   dup=F             request sent twice; the second reply is ignored
 *   delay=F           fraction delayed by delay_ms before sending
 *   delay_ms=A-B      uniform delay in milliseconds (default 1-50)
 * Example: "seed=7;method=Ship,drop=0.1,dup=0.2;peer=127.0.0.1:7001,delay=1,delay_ms=5-20"
 * The first matching rule decides a call. */

/* Counters of what the fault layer did, for tests to assert faults happened. */
typedef struct sx_rpc_fault_stats {
    uint64_t calls;   /* attempts that matched some rule */
    uint64_t failed;  /* fail= */
    uint64_t dropped; /* drop= and drop_reply= */
    uint64_t duplicated;
    uint64_t delayed;
} sx_rpc_fault_stats;

/* Replaces the client's fault rules (NULL or "" clears them). On a bad spec
 * returns SX_INVALID_ARGUMENT naming the bad item, and keeps the old rules. */
sx_status sx_rpc_client_set_faults(sx_rpc_client *c, const char *spec, sx_err *err);
void sx_rpc_client_fault_stats(sx_rpc_client *c, sx_rpc_fault_stats *out);

/* -------------------------------------------------------- client streams -- */

/* A stream is one call to a method of any kind (client, server or
 * bidirectional streaming; nothing checks which) through a client's channel
 * to addr, with its TLS credentials and bearer token. The caller sends any
 * number of messages and may half-close; what the server sends arrives in
 * on_msg, then the end (status and message) in on_end, exactly once.
 *
 * Threads: each stream has a completion queue and a thread of its own, on
 * which every callback of that stream runs, one at a time, on_end last. A
 * callback may block (even on a unary call of the same client) and holds up
 * only its own stream: the next message is asked of gRPC only after on_msg
 * returns, so a slow reader slows its server through HTTP/2 flow control
 * and nothing piles up. Streams are few and long-lived (a lease keepalive, a
 * watch or two); thousands would want a shared queue instead.
 *
 * Life: open -> (send*, close_send?) -> end (server status, deadline,
 * cancel, connection lost) -> on_end -> destroy. Destroy every stream before
 * the client it was opened on. The fault layer does not apply to streams. */

typedef struct sx_rpc_stream sx_rpc_stream;

/* One message from the server, unpacked as the method's output type; the
 * callback owns it (sx_rpc_free). */
typedef void (*sx_rpc_stream_msg_cb)(void *arg, ProtobufCMessage *msg);

/* The end: st is SX_OK when the server ended the stream with OK, else the
 * status (the server's, DEADLINE_EXCEEDED, UNAVAILABLE when the connection
 * failed or was lost, CANCELLED after sx_rpc_stream_cancel, INTERNAL when a
 * message did not decode); err (borrowed for the call) holds the server's
 * message exactly, or the layer's. */
typedef void (*sx_rpc_stream_end_cb)(void *arg, sx_status st, const sx_err *err);

/* Extra request metadata (borrowed by sx_rpc_stream_open only): keys in
 * lower case, values printable ASCII, e.g. etcd's {"hasleader", "true"}. */
typedef struct sx_rpc_metadata {
    const char *key;
    const char *value;
} sx_rpc_metadata;

typedef struct sx_rpc_stream_opts {
    uint64_t timeout_ms; /* the whole stream; 0: no deadline (watches live long) */
    bool wait_for_ready; /* wait for the peer to come up instead of failing fast */
    const sx_rpc_metadata *metadata;
    size_t nmetadata;
    sx_rpc_stream_msg_cb on_msg; /* NULL: messages are dropped */
    sx_rpc_stream_end_cb on_end; /* NULL: nobody is told */
    void *arg;                   /* passed to both */
} sx_rpc_stream_opts;            /* valid when zeroed */

/* Opens a stream to `method` of `svc` at addr and returns at once (nothing
 * waits for the connection). *out is set before any callback can run; the
 * caller destroys it with sx_rpc_stream_destroy. SX_UNIMPLEMENTED for a method
 * svc does not have, SX_INVALID_ARGUMENT for bad metadata: no stream then, no
 * callback. A connection that cannot be made is an end (on_end: UNAVAILABLE,
 * or DEADLINE_EXCEEDED with wait_for_ready), not an error here. Any thread,
 * callbacks of other streams included; c must outlive the stream. */
sx_status sx_rpc_stream_open(sx_rpc_client *c, const char *addr,
                             const ProtobufCServiceDescriptor *svc, const char *method,
                             const sx_rpc_stream_opts *opts, sx_rpc_stream **out, sx_err *err);

/* Queues msg (of the method's input type: SX_INVALID_ARGUMENT otherwise;
 * packed before this returns, so the caller keeps it) to be sent after those
 * queued before; one SEND_MESSAGE is in flight at a time. SX_CANCELLED once
 * the stream has ended, was cancelled or was half-closed;
 * SX_RESOURCE_EXHAUSTED when SX_RPC_STREAM_QUEUE messages wait (the server
 * reads slower than this sends). Any thread, callbacks included. */
sx_status sx_rpc_stream_send(sx_rpc_stream *s, const ProtobufCMessage *msg);

/* Half-closes: after the messages queued, tells the server this side sends
 * no more (client streaming ends so; the server's messages keep coming).
 * SX_CANCELLED if the stream is over or already half-closed. Any thread. */
sx_status sx_rpc_stream_close_send(sx_rpc_stream *s);

/* Cancels the stream: gRPC tells the server (its handler sees a cancelled
 * call), no on_msg starts after this returns (one running may finish), and
 * on_end follows soon with SX_CANCELLED unless the stream had already ended.
 * Idempotent. Any thread, callbacks included. */
void sx_rpc_stream_cancel(sx_rpc_stream *s);

/* Cancels the stream if it has not ended, waits until on_end has returned,
 * and frees it. From the stream's own callback it only cancels, and the
 * stream is freed on its thread once its callbacks are done: nothing of s
 * may be used after this call either way. Accepts NULL. */
void sx_rpc_stream_destroy(sx_rpc_stream *s);

/* --------------------------------------------------------------- process -- */

/* gRPC cleans up after its last user asynchronously: call before exit so that
 * leak checkers see a clean process. Returns once gRPC is down or timeout_ms passed. */
void sx_rpc_wait_shutdown(uint64_t timeout_ms);

#endif
