/* echo_service.h: the shardex.testing.v1.Echo service, for tests and benchmarks
 * of the rpc layer (in-process and as the echo_server program). */
#ifndef SX_TEST_ECHO_SERVICE_H
#define SX_TEST_ECHO_SERVICE_H

#include "rpc.h"
#include "shardex/testing/v1/echo.pb-c.h"

#include <stdatomic.h>

/* State shared by the handlers; zero-initialise. */
typedef struct sx_echo_state {
    _Atomic uint64_t calls;    /* Echo and Sleep calls handled */
    _Atomic uint64_t sleeping; /* Sleep handlers running now */
    /* Count streams: open, and how those that ended did (StreamStats). */
    _Atomic uint64_t streams_open, streams_completed, streams_cancelled, streams_unavailable;
} sx_echo_state;

/* Adds the Echo service (Echo inline, Sleep on the pool, Fail, the Count
 * stream: a thread of its own per stream) to s. */
sx_status sx_echo_service_add(sx_rpc_server *s, sx_echo_state *state, sx_err *err);

#endif
