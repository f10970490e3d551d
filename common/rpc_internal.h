/* rpc_internal.h: what rpc_server.c, rpc_client.c, rpc_stream.c and rpc_fault.c share.
 * Not a public interface. */
#ifndef SX_RPC_INTERNAL_H
#define SX_RPC_INTERNAL_H

#include "rpc.h"

#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <pthread.h>

/* Every tag placed on a completion queue starts with one of these: the thread
 * polling the queue calls cb(tag, ok). One loop serves every kind of event. */
typedef struct sx__rpc_tag {
    void (*cb)(struct sx__rpc_tag *tag, bool ok);
} sx__rpc_tag;

/* Thread body polling one completion queue (arg) until it shuts down,
 * dispatching every event to its tag's callback. */
void *sx__rpc_poll_main(void *arg);

#define SX__CONTAINER_OF(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* Serializes msg into a new byte buffer (caller destroys it). */
grpc_byte_buffer *sx__rpc_pack(const ProtobufCMessage *msg);

/* The PEM files of tls, read whole and NUL-terminated (free each): *ca
 * always, *cert and *key when cert_file is set (need_cert: it must be).
 * SX_INVALID_ARGUMENT naming the flag-like field and file otherwise. */
sx_status sx__rpc_tls_read(const sx_rpc_tls *tls, bool need_cert, char **ca, char **cert,
                           char **key, sx_err *err);

/* Unpacks bb as a message of desc; NULL if the bytes are not one. The result is
 * freed with sx_rpc_free. bb is not consumed. */
ProtobufCMessage *sx__rpc_unpack(const ProtobufCMessageDescriptor *desc, grpc_byte_buffer *bb);

/* Writes "/<service>/<method>" into buf; false if it does not fit. */
bool sx__rpc_method_path(const ProtobufCServiceDescriptor *svc, const char *method, char *buf,
                         size_t cap);

/* Converts between monotonic milliseconds and gRPC's clock; UINT64_MAX is infinity. */
gpr_timespec sx__rpc_deadline_from_ms(uint64_t mono_ms);
uint64_t sx__rpc_deadline_to_ms(gpr_timespec t);

/* Every call this layer makes carries its deadline as wall-clock time too, in
 * this metadata key (decimal milliseconds since the Unix epoch). gRPC's own
 * grpc-timeout is relative: a request held up on the way (TCP retransmitting
 * through a partition, then healed) arrives with its whole timeout again, and
 * a write the client gave up on long ago could be appended after the client's
 * later writes. The server takes the earlier of the two deadlines. Clocks are
 * assumed synchronized (NTP); with an offset of e, a request is dropped up to
 * e early or late. A client that sends no such key (grpcio, grpcurl) gets the
 * relative deadline alone. */
#define SX__RPC_DEADLINE_KEY "sx-deadline-unix-ms"

/* The monotonic deadline (sx_clock_now_ms's clock) that wall-clock deadline
 * wall_ms means now: now if it has passed. */
uint64_t sx__rpc_wall_to_mono_ms(uint64_t wall_ms);

/* What rpc_stream.c borrows from a client (rpc_client.c): the channel to
 * addr, made on first use and shared with unary calls (owned by the client,
 * valid until it is destroyed; thread-safe), and the value of the
 * `authorization` header its calls carry (NULL: none; constant). */
grpc_channel *sx__rpc_client_channel(sx_rpc_client *c, const char *addr);
const char *sx__rpc_client_auth_header(const sx_rpc_client *c);

/* ----------------------------------------------------------- fault layer -- */

typedef enum {
    SX__FAULT_NONE = 0,
    SX__FAULT_FAIL,       /* answer fail_code without sending */
    SX__FAULT_DROP,       /* send nothing; DEADLINE_EXCEEDED at the attempt deadline */
    SX__FAULT_DROP_REPLY, /* send; discard the reply; DEADLINE_EXCEEDED at the deadline */
    SX__FAULT_DUP,        /* send twice */
} sx__fault_kind;

typedef struct sx__fault_action {
    sx__fault_kind kind;
    sx_status fail_code;
    uint64_t delay_ms; /* before sending (applies to any kind) */
} sx__fault_action;

typedef struct sx__faults sx__faults;

/* Parses spec into a new rule set (NULL for an empty spec, which is not an error). */
sx_status sx__faults_parse(const char *spec, sx__faults **out, sx_err *err);
void sx__faults_free(sx__faults *f);

/* Decides what happens to one attempt of `path` to `addr`. Thread-safe. */
sx__fault_action sx__faults_decide(sx__faults *f, const char *path, const char *addr);
void sx__faults_stats(sx__faults *f, sx_rpc_fault_stats *out);

#endif
