/* peers_loop.c: the closed-loop window (peers_loop.h). An operation is
 * counted when it completes while the window is open, whenever it started
 * (as bench_write and bench_index count), so that the window holds as many
 * operations as the callers finished in it.
 */
#include "peers_loop.h"

#include "clock.h"
#include "mem.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A window waiting for its first completions lasts at most this many times --seconds. */
#define MAX_STRETCH 20

typedef struct loop {
    const peers_window *w;
    peers_result *r;
    atomic_int phase; /* sx_bench_phase */
    atomic_uint_fast64_t ops;
    pthread_mutex_t mu; /* r->h, r->failed, r->why */
} loop;

typedef struct caller {
    loop *L;
    int idx;
} caller;

static void fail(loop *L, const char *why)
{
    pthread_mutex_lock(&L->mu);
    if (!L->r->failed) {
        L->r->failed = true;
        snprintf(L->r->why, sizeof(L->r->why), "%s", why);
    }
    pthread_mutex_unlock(&L->mu);
    atomic_store(&L->phase, SX_BENCH_STOP);
}

static void *caller_main(void *arg)
{
    caller *c = arg;
    loop *L = c->L;
    sx_bench_hist *h = sx_calloc(1, sizeof(*h)); /* merged once: no lock per operation */
    char why[1024];
    while (atomic_load(&L->phase) != SX_BENCH_STOP && !*L->w->stop) {
        uint64_t t0 = sx_clock_now_ns();
        why[0] = '\0';
        if (!L->w->op(L->w->op_arg, c->idx, why, sizeof(why))) {
            fail(L, why);
            break;
        }
        uint64_t t1 = sx_clock_now_ns();
        if (atomic_load(&L->phase) == SX_BENCH_MEASURE) {
            sx_bench_hist_add(h, t1 - t0);
            atomic_fetch_add(&L->ops, 1);
        }
    }
    pthread_mutex_lock(&L->mu);
    sx_bench_hist_merge(&L->r->h, h);
    pthread_mutex_unlock(&L->mu);
    free(h);
    return NULL;
}

/* Sleeps ms, in slices, unless the window was stopped meanwhile. */
static void wait_phase(loop *L, uint64_t ms)
{
    uint64_t end = sx_clock_now_ms() + ms;
    while (sx_clock_now_ms() < end && atomic_load(&L->phase) != SX_BENCH_STOP && !*L->w->stop)
        sx_clock_sleep_ms(end - sx_clock_now_ms() < 20 ? end - sx_clock_now_ms() : 20);
}

bool peers_loop_run(const peers_window *w, peers_result *r)
{
    memset(r, 0, sizeof(*r));
    loop L = {.w = w, .r = r};
    atomic_init(&L.phase, SX_BENCH_WARMUP);
    atomic_init(&L.ops, 0);
    pthread_mutex_init(&L.mu, NULL);
    caller *c = sx_calloc((size_t)w->callers, sizeof(*c));
    pthread_t *th = sx_calloc((size_t)w->callers, sizeof(*th));
    for (int i = 0; i < w->callers; i++) {
        c[i] = (caller){.L = &L, .idx = i};
        pthread_create(&th[i], NULL, caller_main, &c[i]);
    }
    wait_phase(&L, (uint64_t)(w->warmup_s * 1000));
    uint64_t t0 = sx_clock_now_ns(), s0 = sx_clock_cpu_us();
    uint64_t k0 = w->server_cpu(w->cpu_arg);
    int expect = SX_BENCH_WARMUP;
    atomic_compare_exchange_strong(&L.phase, &expect, SX_BENCH_MEASURE);
    wait_phase(&L, (uint64_t)(w->seconds * 1000));
    /* Slow operations (a transaction of 1000 documents on a busy machine):
     * at least one completion per caller, so that no window is empty. */
    uint64_t cap_ms = (uint64_t)(w->seconds * 1000) * MAX_STRETCH;
    while (atomic_load(&L.ops) < (uint64_t)w->callers &&
           atomic_load(&L.phase) == SX_BENCH_MEASURE && !*w->stop &&
           (sx_clock_now_ns() - t0) / 1000000 < cap_ms)
        sx_clock_sleep_ms(2);
    expect = SX_BENCH_MEASURE;
    atomic_compare_exchange_strong(&L.phase, &expect, SX_BENCH_STOP);
    uint64_t t1 = sx_clock_now_ns(), s1 = sx_clock_cpu_us();
    uint64_t k1 = w->server_cpu(w->cpu_arg);
    r->ops = atomic_load(&L.ops);
    for (int i = 0; i < w->callers; i++)
        pthread_join(th[i], NULL);
    r->t_ns = t1 - t0;
    r->self_us = s1 - s0;
    r->server_us = k1 > k0 ? k1 - k0 : 0;
    free(th);
    free(c);
    pthread_mutex_destroy(&L.mu);
    if (!r->failed && *w->stop) {
        r->failed = true;
        snprintf(r->why, sizeof(r->why), "interrupted");
    }
    return !r->failed;
}
