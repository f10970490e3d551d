/* pool.h: a fixed pool of threads running submitted tasks in FIFO order.
 *
 * Used where work may block (fsync, waiting for replicas) so that the threads
 * polling gRPC completion queues never do. Not a scheduler: no priorities, no
 * futures. Every function is thread-safe.
 */
#ifndef SX_POOL_H
#define SX_POOL_H

#include <stddef.h>

typedef struct sx_pool sx_pool;
typedef void (*sx_pool_task_cb)(void *arg);

/* Starts `threads` threads (at least 1) named `name` (shown by top -H, at most
 * 15 characters kept). Aborts if a thread cannot be started. */
sx_pool *sx_pool_create(int threads, const char *name);

/* Queues fn(arg); it runs on one of the pool's threads. Must not be called
 * after sx_pool_destroy has begun. */
void sx_pool_submit(sx_pool *p, sx_pool_task_cb fn, void *arg);

/* Runs every task already queued, then joins the threads and frees the pool.
 * Accepts NULL. Tasks may not submit to a pool being destroyed. */
void sx_pool_destroy(sx_pool *p);

#endif
