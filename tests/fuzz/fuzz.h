/* fuzz.h: what the libFuzzer targets of tests/fuzz share: the entry point's
 * prototype and a check that stops the run when a property fails (libFuzzer
 * then keeps the input as a crash, as for a sanitizer report). README.md says
 * how to run the targets and keep a crash as a regression input. */
#ifndef SX_FUZZ_H
#define SX_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A property that must hold for every input: prints the condition and aborts
 * when it does not. */
#define SX_FUZZ_CHECK(cond)                                                                        \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__, __LINE__, #cond);            \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* The rows of fuzz_requests.c: the first byte of its inputs picks one (the
 * message the rest is). Append-only: the seeds in corpus/requests/ name their
 * message by this number. */
enum {
    SX_FUZZ_ROW_PUT,
    SX_FUZZ_ROW_DELETE,
    SX_FUZZ_ROW_GET,
    SX_FUZZ_ROW_QUERY,
    SX_FUZZ_ROW_CREATE_INDEX,
    SX_FUZZ_ROW_DROP_INDEX,
    SX_FUZZ_ROW_LIST_INDEXES,
    SX_FUZZ_ROW_CLUSTER_STATUS,
    SX_FUZZ_ROW_REGISTER,
    SX_FUZZ_ROW_HEARTBEAT,
    SX_FUZZ_ROW_CHANGE_ISR,
    SX_FUZZ_ROW_REPORT_BACKFILL,
    SX_FUZZ_ROW_GET_MAP,
    SX_FUZZ_ROW_SHIP,
    SX_FUZZ_ROW_SCAN,
    SX_FUZZ_ROW_DIGEST,
    SX_FUZZ_ROW_APPEND,
    SX_FUZZ_ROW_WRITE,
    SX_FUZZ_ROW_READ,
    SX_FUZZ_ROW_READ_MANY,
    SX_FUZZ_ROW_WORKER_STATUS,
    SX_FUZZ_ROW_READ_LOG,
    SX_FUZZ_ROW_SCAN_DOCS,
    SX_FUZZ_ROW_SET_FAULTS,
    SX_FUZZ_ROW_LOG_OP,
    SX_FUZZ_ROW_LEAVE,
    SX_FUZZ_ROW_HEALTH_CHECK,
    SX_FUZZ_ROW_REFRESH_MAP,
    SX_FUZZ_ROW_DRAIN_WORKER,
    SX_FUZZ_ROW_REMOVE_WORKER,
    SX_FUZZ_ROW_SNAPSHOT,
    SX_FUZZ_ROW_SPLIT_INDEX,
    SX_FUZZ_ROW_SALT_INDEX,
    SX_FUZZ_ROWS
};

#endif
