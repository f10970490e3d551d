/* rpc.c: pieces shared by the rpc server and client: message packing straight
 * into gRPC slices, method paths, deadline conversion, process shutdown. */
#include "rpc_internal.h"

#include "clock.h"
#include "fsutil.h"
#include "mem.h"

#include <grpc/byte_buffer_reader.h>
#include <grpc/support/time.h>
#include <stdalign.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

grpc_byte_buffer *sx__rpc_pack(const ProtobufCMessage *msg)
{
    size_t n = protobuf_c_message_get_packed_size(msg);
    grpc_slice slice = grpc_slice_malloc(n);
    protobuf_c_message_pack(msg, GRPC_SLICE_START_PTR(slice));
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&slice, 1);
    grpc_slice_unref(slice);
    return bb;
}

/* PEM files are small: a chain of a few certificates. */
#define PEM_MAX (1u << 20)

static sx_status read_pem(const char *what, const char *path, char **out, sx_err *err)
{
    *out = NULL;
    sx_buf b = {0};
    bool found = false;
    sx_err e = {0};
    sx_status st = sx_file_read(path, PEM_MAX, &b, &found, &e);
    if (st == SX_OK && !found)
        st = sx_err_set(err, SX_INVALID_ARGUMENT, "tls %s: %s: no such file", what, path);
    else if (st != SX_OK)
        st = sx_err_set(err, SX_INVALID_ARGUMENT, "tls %s: %s", what, e.msg);
    else if (!memmem(b.data, b.len, "-----BEGIN ", 11))
        st = sx_err_set(err, SX_INVALID_ARGUMENT, "tls %s: %s: not PEM (no -----BEGIN line)", what,
                        path);
    if (st == SX_OK) {
        *out = sx_malloc(b.len + 1);
        memcpy(*out, b.data, b.len);
        (*out)[b.len] = '\0';
    }
    sx_buf_free(&b);
    return st;
}

sx_status sx__rpc_tls_read(const sx_rpc_tls *tls, bool need_cert, char **ca, char **cert,
                           char **key, sx_err *err)
{
    *ca = *cert = *key = NULL;
    if (!tls->ca_file)
        return sx_err_set(err, SX_INVALID_ARGUMENT, "tls: a CA file is required");
    if ((need_cert || tls->key_file) && !tls->cert_file)
        return sx_err_set(err, SX_INVALID_ARGUMENT, "tls: a certificate file is required%s",
                          tls->key_file ? " with the key file" : "");
    if (tls->cert_file && !tls->key_file)
        return sx_err_set(err, SX_INVALID_ARGUMENT, "tls: the certificate needs its key file");
    sx_status st = read_pem("ca", tls->ca_file, ca, err);
    if (st == SX_OK && tls->cert_file)
        st = read_pem("cert", tls->cert_file, cert, err);
    if (st == SX_OK && tls->cert_file)
        st = read_pem("key", tls->key_file, key, err);
    if (st != SX_OK) {
        free(*ca);
        free(*cert);
        free(*key);
        *ca = *cert = *key = NULL;
    }
    return st;
}

/* A message this layer unpacks lives in an arena of its own, behind a
 * header: freeing it is a few free()s of whole chunks instead of one per
 * field and string (a page of a thousand hits with their documents is tens
 * of thousands of small allocations, and freeing them cost more than
 * decoding them). protobuf-c allocates the top-level message first, so the
 * first allocation reserves the header in front of it. */
#define UNPACKED_MAGIC 0x5358756e7061636bull /* "SXunpack" */
typedef struct unpacked {
    sx_arena arena; /* every chunk, this header's included */
    uint64_t magic;
    alignas(max_align_t) unsigned char msg[];
} unpacked;

static void *unpack_alloc(void *data, size_t n)
{
    sx_arena *a = data;
    if (!a->chunks) {
        unpacked *u = sx_arena_alloc(a, sizeof(*u) + n);
        return u->msg;
    }
    return sx_arena_alloc(a, n);
}

static void unpack_free(void *data, void *p)
{
    (void)data;
    (void)p; /* with the arena */
}

ProtobufCMessage *sx_rpc_unpack(const ProtobufCMessageDescriptor *desc, size_t len,
                                const uint8_t *data)
{
    sx_arena a = {0};
    ProtobufCAllocator alloc = {.alloc = unpack_alloc, .free = unpack_free, .allocator_data = &a};
    ProtobufCMessage *m = protobuf_c_message_unpack(desc, &alloc, len, data);
    if (!m) {
        sx_arena_free(&a);
        return NULL;
    }
    unpacked *u = SX__CONTAINER_OF(m, unpacked, msg);
    u->arena = a;
    u->magic = UNPACKED_MAGIC;
    return m;
}

ProtobufCMessage *sx_rpc_copy(const ProtobufCMessageDescriptor *desc, const ProtobufCMessage *msg)
{
    size_t n = protobuf_c_message_get_packed_size(msg);
    uint8_t *buf = sx_malloc(n ? n : 1);
    protobuf_c_message_pack(msg, buf);
    ProtobufCMessage *m = sx_rpc_unpack(desc, n, buf);
    free(buf);
    if (!m)
        abort(); /* out of memory: the bytes are ours and valid */
    return m;
}

ProtobufCMessage *sx__rpc_unpack(const ProtobufCMessageDescriptor *desc, grpc_byte_buffer *bb)
{
    grpc_byte_buffer_reader reader;
    if (!grpc_byte_buffer_reader_init(&reader, bb))
        return NULL;
    /* One slice in the common case, so this is a reference, not a copy. */
    grpc_slice all = grpc_byte_buffer_reader_readall(&reader);
    grpc_byte_buffer_reader_destroy(&reader);
    ProtobufCMessage *m = sx_rpc_unpack(desc, GRPC_SLICE_LENGTH(all), GRPC_SLICE_START_PTR(all));
    grpc_slice_unref(all);
    return m;
}

void sx_rpc_free(ProtobufCMessage *msg)
{
    if (!msg)
        return;
    unpacked *u = SX__CONTAINER_OF(msg, unpacked, msg);
    if (u->magic != UNPACKED_MAGIC)
        abort(); /* not from sx_rpc_unpack: a bug */
    u->magic = 0;
    sx_arena a = u->arena; /* the header goes with its chunk */
    sx_arena_free(&a);
}

bool sx__rpc_method_path(const ProtobufCServiceDescriptor *svc, const char *method, char *buf,
                         size_t cap)
{
    int n = snprintf(buf, cap, "/%s/%s", svc->name, method);
    return n > 0 && (size_t)n < cap;
}

gpr_timespec sx__rpc_deadline_from_ms(uint64_t mono_ms)
{
    if (mono_ms == UINT64_MAX)
        return gpr_inf_future(GPR_CLOCK_MONOTONIC);
    uint64_t now = sx_clock_now_ms();
    uint64_t left = mono_ms > now ? mono_ms - now : 0;
    /* gRPC's monotonic clock has its own origin: express the deadline relative to now. */
    return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                        gpr_time_from_millis((int64_t)left, GPR_TIMESPAN));
}

uint64_t sx__rpc_deadline_to_ms(gpr_timespec t)
{
    if (gpr_time_cmp(t, gpr_inf_future(t.clock_type)) == 0)
        return UINT64_MAX;
    gpr_timespec now = gpr_now(t.clock_type);
    int64_t left = gpr_time_to_millis(gpr_time_sub(t, now));
    uint64_t mono = sx_clock_now_ms();
    return left <= 0 ? mono : mono + (uint64_t)left;
}

uint64_t sx__rpc_wall_to_mono_ms(uint64_t wall_ms)
{
    uint64_t wall = sx_clock_wall_ms(), mono = sx_clock_now_ms();
    return wall_ms <= wall ? mono : mono + (wall_ms - wall);
}

void *sx__rpc_poll_main(void *arg)
{
    grpc_completion_queue *cq = arg;
    for (;;) {
        grpc_event ev = grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN)
            break;
        if (ev.type == GRPC_OP_COMPLETE) {
            sx__rpc_tag *tag = ev.tag;
            tag->cb(tag, ev.success != 0);
        }
    }
    return NULL;
}

void sx_rpc_wait_shutdown(uint64_t timeout_ms)
{
    uint64_t end = sx_clock_now_ms() + timeout_ms;
    while (grpc_is_initialized() && sx_clock_now_ms() < end)
        sx_clock_sleep_ms(5);
}
