/* backfill.c: see backfill.h. */
#include "backfill.h"

#include "bfthrottle.h"
#include "clock.h"
#include "log.h"
#include "mem.h"
#include "pindex.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define IDLE_MS 100       /* nothing to backfill: look again this often */
#define WINDOW_MS 200     /* the throttle's window of foreground writes */
#define ERROR_MS 1000     /* a chunk failed: try again after this */
#define MAX_PAUSE_MS 1000 /* the throttle's longest pause between chunks */
#define MIN_CHUNK 10
#define BUCKETS_MAX SX_BFTHROTTLE_BUCKETS_MAX

struct sx_backfill {
    sx_backfill_opts o;
    sx_replica_set *replicas;
    pthread_t thread;
    bool running;
    pthread_mutex_t mu; /* stop */
    pthread_cond_t cv;
    bool stop;
    /* The loop's own (its thread only). */
    sx_bfthrottle th;
    uint32_t next; /* the partition to look at first */
    uint64_t window_ms;
    uint64_t before[BUCKETS_MAX + 1]; /* the watched counts at the window's start */
};

/* The watched histograms' counts, summed: *nb bounds into bounds. */
static void read_counts(sx_backfill *b, uint64_t *counts, const double **bounds, size_t *nb)
{
    *nb = sx_bfthrottle_read(b->o.watch, SX_BACKFILL_WATCH_MAX, counts, BUCKETS_MAX + 1, bounds);
}

/* At the end of a window: its p99 to the throttle. */
static void throttle_window(sx_backfill *b)
{
    uint64_t now = sx_clock_now_ms();
    if (now - b->window_ms < WINDOW_MS)
        return;
    uint64_t after[BUCKETS_MAX + 1];
    const double *bounds;
    size_t nb;
    read_counts(b, after, &bounds, &nb);
    double p99 = nb ? sx_bfthrottle_quantile(bounds, nb, b->before, after, 0.99) : -1;
    uint32_t was = b->th.chunk;
    sx_bfthrottle_update(&b->th, p99);
    if (b->th.chunk != was)
        SX_LOG(SX_LOG_DEBUG, "backfill", "throttle write_p99_ms=%.1f chunk=%u pause_ms=%" PRIu64,
               p99 * 1000, b->th.chunk, b->th.pause_ms);
    memcpy(b->before, after, sizeof(after));
    b->window_ms = now;
}

/* One chunk of the first partition from b->next with a backfill running;
 * false when none has one. *failed: a chunk failed. */
static bool one_chunk(sx_backfill *b, bool *failed)
{
    *failed = false;
    uint32_t P = sx_replica_partitions(b->replicas);
    for (uint32_t i = 0; i < P; i++) {
        uint32_t p = (b->next + i) % P;
        sx_replica_view v;
        if (!sx_replica_get_view(b->replicas, p, &v) || !v.ix) {
            sx_replica_view_release(&v);
            continue;
        }
        sx_pindex_step step;
        sx_err err = {0};
        sx_status st = sx_pindex_backfill_step(v.ix, b->th.chunk, &step, &err);
        sx_replica_view_release(&v); /* its store: a swap or a drop waits for it */
        if (st != SX_OK) {
            SX_LOG(SX_LOG_WARN, "backfill", "partition=%u index=%" PRIu64 " chunk failed: %s", p,
                   step.index_id, err.msg);
            *failed = true;
        }
        if (st != SX_OK || step.index_id) {
            b->next = (p + 1) % P; /* round-robin: each partition's backfill moves */
            return true;
        }
    }
    return false;
}

static void *loop_main(void *arg)
{
    sx_backfill *b = arg;
    const double *bounds;
    size_t nb;
    read_counts(b, b->before, &bounds, &nb);
    b->window_ms = sx_clock_now_ms();
    pthread_mutex_lock(&b->mu);
    while (!b->stop) {
        pthread_mutex_unlock(&b->mu);
        bool failed;
        bool worked = one_chunk(b, &failed);
        throttle_window(b);
        uint64_t wait = failed ? ERROR_MS : worked ? b->th.pause_ms : IDLE_MS;
        pthread_mutex_lock(&b->mu);
        if (wait && !b->stop)
            sx_cond_wait_ms(&b->cv, &b->mu, wait);
    }
    pthread_mutex_unlock(&b->mu);
    return NULL;
}

sx_backfill *sx_backfill_create(const sx_backfill_opts *opts)
{
    sx_backfill *b = sx_calloc(1, sizeof(*b));
    b->o = *opts;
    if (!b->o.max_chunk)
        b->o.max_chunk = SX_BACKFILL_CHUNK_DEFAULT;
    uint32_t min = b->o.max_chunk < MIN_CHUNK ? b->o.max_chunk : MIN_CHUNK;
    sx_bfthrottle_init(&b->th, (double)b->o.max_write_p99_ms / 1000.0, min, b->o.max_chunk,
                       MAX_PAUSE_MS);
    pthread_mutex_init(&b->mu, NULL);
    sx_cond_init_monotonic(&b->cv);
    return b;
}

void sx_backfill_start(sx_backfill *b, sx_replica_set *replicas)
{
    b->replicas = replicas;
    b->running = true;
    pthread_create(&b->thread, NULL, loop_main, b);
    pthread_setname_np(b->thread, "backfill");
}

void sx_backfill_stop(sx_backfill *b)
{
    if (!b || !b->running)
        return;
    pthread_mutex_lock(&b->mu);
    b->stop = true;
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
    pthread_join(b->thread, NULL);
    b->running = false;
}

void sx_backfill_destroy(sx_backfill *b)
{
    if (!b)
        return;
    sx_backfill_stop(b);
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->cv);
    free(b);
}
