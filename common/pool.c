/* pool.c: the thread pool behind sx_pool. A mutex-protected FIFO of tasks. */
#include "pool.h"

#include "mem.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct task {
    sx_pool_task_cb fn;
    void *arg;
    struct task *next;
} task;

struct sx_pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    task *head, *tail; /* FIFO of queued tasks */
    bool stopping;     /* set by destroy: threads exit once the queue is empty */
    int nthreads;
    pthread_t *threads;
};

static void *pool_main(void *arg)
{
    sx_pool *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->head && !p->stopping)
            pthread_cond_wait(&p->cv, &p->mu);
        task *t = p->head;
        if (!t)
            break; /* stopping and drained */
        p->head = t->next;
        if (!p->head)
            p->tail = NULL;
        pthread_mutex_unlock(&p->mu);
        t->fn(t->arg);
        free(t);
        pthread_mutex_lock(&p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

sx_pool *sx_pool_create(int threads, const char *name)
{
    sx_pool *p = sx_calloc(1, sizeof(*p));
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->nthreads = threads > 0 ? threads : 1;
    p->threads = sx_calloc((size_t)p->nthreads, sizeof(pthread_t));
    for (int i = 0; i < p->nthreads; i++) {
        int rc = pthread_create(&p->threads[i], NULL, pool_main, p);
        if (rc != 0) {
            fprintf(stderr, "shardex: pool %s: cannot start thread: %s\n", name, strerror(rc));
            abort();
        }
        if (name) {
            char tname[16];
            snprintf(tname, sizeof(tname), "%.10s-%u", name, (unsigned)i % 1000u);
            pthread_setname_np(p->threads[i], tname);
        }
    }
    return p;
}

void sx_pool_submit(sx_pool *p, sx_pool_task_cb fn, void *arg)
{
    task *t = sx_malloc(sizeof(*t));
    t->fn = fn;
    t->arg = arg;
    t->next = NULL;
    pthread_mutex_lock(&p->mu);
    if (p->tail)
        p->tail->next = t;
    else
        p->head = t;
    p->tail = t;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

void sx_pool_destroy(sx_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stopping = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->nthreads; i++)
        pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p->threads);
    free(p);
}
