/* peers_loop.h: one closed-loop window of bench_peers: N caller threads, each
 * running one operation after another (a batch of documents, or a query with
 * every page of its answer) for a warm-up that is not counted, then a timed
 * window. Each operation that completes inside the window is timed from the
 * caller's view into a histogram. The window is stretched, up to 20 times
 * its length, until at least as many operations as callers completed in it:
 * never empty, however slow an operation. The CPU of this process and of the server
 * under test is read at the window's edges.
 *
 * The same loop drives PostgreSQL and shardex, so that what differs between
 * two windows is the system, not the load generator. Not here: what an
 * operation does (peers_work.h).
 */
#ifndef SX_PEERS_LOOP_H
#define SX_PEERS_LOOP_H

#include "benchlib.h"

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The most callers a window runs (client threads; PostgreSQL connections). */
#define PEERS_MAX_CALLERS 64

/* One operation by caller `caller` (0..callers-1), on a caller's own thread.
 * Returns false with why filled (a call that failed, an answer of the wrong
 * size) to end the window and the run. */
typedef bool (*peers_op_cb)(void *arg, int caller, char *why, size_t cap);

/* The CPU time of the server under test, microseconds (any thread). */
typedef uint64_t (*peers_cpu_cb)(void *arg);

typedef struct peers_window {
    int callers;
    double warmup_s, seconds;
    peers_op_cb op;
    void *op_arg;
    peers_cpu_cb server_cpu;
    void *cpu_arg;
    const volatile sig_atomic_t *stop; /* set by a signal: the window ends early */
} peers_window;

typedef struct peers_result {
    uint64_t ops;       /* operations completed inside the timed window */
    uint64_t t_ns;      /* the timed window's length */
    uint64_t self_us;   /* this process's CPU in the window */
    uint64_t server_us; /* the server's CPU in the window */
    sx_bench_hist h;    /* latency of each operation counted, ns */
    bool failed;        /* an operation failed: why says which and how */
    char why[1024];
} peers_result;

/* Runs the window; *r is overwritten. Returns !r->failed. Main thread. */
bool peers_loop_run(const peers_window *w, peers_result *r);

#endif
