/* status.h: the one status enum of shardex, and sx_err (a code plus a message).
 *
 * The enum, each value's name and its gRPC status code come from one X-macro
 * table, SX_STATUS_MAP. Values mirror gRPC's canonical codes so that a status
 * survives a round trip through the wire unchanged; the conversion itself lives
 * only in the rpc module. "Not found" from a store lookup is not an error: those
 * functions report it through an out-parameter and return SX_OK.
 */
#ifndef SX_STATUS_H
#define SX_STATUS_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

/* X(name, grpc code, description) */
#define SX_STATUS_MAP(X)                                                                           \
    X(OK, 0, "ok")                                                                                 \
    X(CANCELLED, 1, "cancelled")                                                                   \
    X(UNKNOWN, 2, "unknown error")                                                                 \
    X(INVALID_ARGUMENT, 3, "invalid argument")                                                     \
    X(DEADLINE_EXCEEDED, 4, "deadline exceeded")                                                   \
    X(NOT_FOUND, 5, "not found")                                                                   \
    X(ALREADY_EXISTS, 6, "already exists")                                                         \
    X(PERMISSION_DENIED, 7, "permission denied")                                                   \
    X(RESOURCE_EXHAUSTED, 8, "resource exhausted")                                                 \
    X(FAILED_PRECONDITION, 9, "failed precondition")                                               \
    X(ABORTED, 10, "aborted")                                                                      \
    X(OUT_OF_RANGE, 11, "out of range")                                                            \
    X(UNIMPLEMENTED, 12, "unimplemented")                                                          \
    X(INTERNAL, 13, "internal error")                                                              \
    X(UNAVAILABLE, 14, "unavailable")                                                              \
    X(DATA_LOSS, 15, "data loss")                                                                  \
    X(UNAUTHENTICATED, 16, "unauthenticated")

typedef enum {
#define SX__STATUS_ENUM(name, code, desc) SX_##name = code,
    SX_STATUS_MAP(SX__STATUS_ENUM)
#undef SX__STATUS_ENUM
} sx_status;

/* Number of distinct statuses; every valid sx_status is below it. */
#define SX_STATUS_COUNT 17

/* Room for one error message, including the terminating NUL. */
#define SX_ERR_MSG_MAX 256

/* An error: code plus a human-readable message naming what went wrong.
 * Valid when zeroed (SX_OK, empty message). */
typedef struct sx_err {
    sx_status code;
    char msg[SX_ERR_MSG_MAX];
} sx_err;

/* "INVALID_ARGUMENT" etc.; "STATUS_<n>" style fallback for unknown values is
 * not needed: unknown values give "UNKNOWN". Never NULL, static storage. */
const char *sx_status_name(sx_status s);

/* The gRPC canonical code of s (identical numbers, kept explicit for clarity). */
int sx_status_grpc_code(sx_status s);

/* The status for a gRPC code; codes outside the canonical set give SX_UNKNOWN. */
sx_status sx_status_from_grpc_code(int code);

/* Sets err (if not NULL) to code and a printf-formatted message, truncating to
 * SX_ERR_MSG_MAX. Returns code, so that callers can `return sx_err_set(...)`. */
sx_status sx_err_set(sx_err *err, sx_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
sx_status sx_err_vset(sx_err *err, sx_status code, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

/* Prepends "prefix: " to err's message, keeping its code. Returns err->code. */
sx_status sx_err_prefix(sx_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A follower coordinator's answer: FAILED_PRECONDITION "not the leading
 * coordinator; leader=ADDR" (leader "" or NULL: "leader=unknown"). Distinct
 * from the coordinator's other FAILED_PRECONDITION answers (a worker that
 * must register again), so callers tell them apart with sx_err_leader_hint. */
sx_status sx_err_not_leader(sx_err *err, const char *leader);

/* Whether err is such an answer; then leader (cap bytes) holds the address
 * named, or "" when the follower did not know. */
bool sx_err_leader_hint(const sx_err *err, char *leader, size_t cap);

/* Resets err to SX_OK with an empty message. Accepts NULL. */
void sx_err_clear(sx_err *err);

#endif
