/* fanout.c: see fanout.h. */
#include "fanout.h"

#include "clock.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define PAUSE_MS 50

typedef struct fan {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    size_t in_flight;
} fan;

static void on_done(sx_status st, const sx_err *err, ProtobufCMessage *resp, void *arg)
{
    sx_fanout_call *c = arg;
    fan *f = c->fan;
    pthread_mutex_lock(&f->mu);
    c->st = st;
    if (st == SX_OK)
        c->resp = resp;
    else if (err)
        c->err = *err;
    f->in_flight--;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

static bool retryable(sx_status st)
{
    return st == SX_ABORTED || st == SX_UNAVAILABLE || st == SX_DEADLINE_EXCEEDED ||
           st == SX_FAILED_PRECONDITION;
}

bool sx_fanout_aim_leaders(void *arg, size_t i, const sx_partmap *m, sx_fanout_call *c,
                           char *addr, size_t cap, sx_err *err)
{
    uint32_t p = ((const uint32_t *)arg)[i];
    sx_partmap_target t;
    if (sx_partmap_leader_target(m, p, &t, err) != SX_OK)
        return false;
    snprintf(addr, cap, "%s", t.address);
    snprintf(c->what, sizeof(c->what), "the leader of partition %u", p);
    return true;
}

sx_status sx_fanout_run(sx_rpc_client *rpc, sx_member *member,
                        const ProtobufCServiceDescriptor *svc, const char *method,
                        sx_fanout_call *calls, size_t n, sx_fanout_aim_fn aim, void *arg,
                        uint64_t deadline_ms, uint64_t attempt_ms, sx_err *err)
{
    fan f = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    for (size_t i = 0; i < n; i++) {
        calls[i].done = false;
        calls[i].resp = NULL;
        calls[i].addr[0] = '\0';
        calls[i].fan = &f;
    }
    for (;;) {
        sx_member_view v;
        sx_member_get_view(member, &v);
        const sx_partmap *m = v.map;
        uint64_t now = sx_clock_now_ms();
        for (size_t i = 0; i < n; i++) {
            sx_fanout_call *c = &calls[i];
            if (c->done)
                continue;
            sx_err_clear(&c->err);
            if (!m) {
                c->st = sx_err_set(&c->err, SX_UNAVAILABLE, "this worker has no cluster map yet");
                continue;
            }
            if (!aim(arg, i, m, c, c->addr, sizeof(c->addr), &c->err)) {
                c->st = c->err.code ? c->err.code : SX_UNAVAILABLE;
                continue;
            }
            uint64_t left = deadline_ms > now ? deadline_ms - now : 1;
            sx_rpc_call_opts o = {.timeout_ms = left < attempt_ms ? left : attempt_ms};
            pthread_mutex_lock(&f.mu);
            f.in_flight++;
            pthread_mutex_unlock(&f.mu);
            sx_rpc_invoke_async(rpc, c->addr, svc, method, c->req, &o, on_done, c);
        }
        sx_partmap_release(v.map);
        pthread_mutex_lock(&f.mu);
        while (f.in_flight > 0)
            pthread_cond_wait(&f.cv, &f.mu);
        pthread_mutex_unlock(&f.mu);
        bool again = false;
        uint64_t t = sx_clock_now_ms();
        for (size_t i = 0; i < n; i++) {
            sx_fanout_call *c = &calls[i];
            if (c->done)
                continue;
            if (c->st == SX_OK || !retryable(c->st) || t + PAUSE_MS >= deadline_ms)
                c->done = true;
            else
                again = true;
        }
        if (!again)
            break;
        sx_clock_sleep_ms(PAUSE_MS);
    }
    for (size_t i = 0; i < n; i++) {
        sx_fanout_call *c = &calls[i];
        if (c->st == SX_OK)
            continue;
        /* Given up on a target that moved: what a client sees is that the
         * cluster could not answer in time, not our internal refusal. */
        sx_err last = c->err;
        bool moved = c->st == SX_ABORTED || c->st == SX_FAILED_PRECONDITION;
        if (c->what[0] && c->addr[0])
            sx_err_set(&c->err, moved ? SX_UNAVAILABLE : c->st, "%s at %s: %s%s", c->what, c->addr,
                       last.msg, moved ? " (no answer before the deadline)" : "");
        else if (moved)
            sx_err_set(&c->err, SX_UNAVAILABLE, "%s (no answer before the deadline)", last.msg);
        *err = c->err;
        return c->err.code ? c->err.code : c->st;
    }
    return SX_OK;
}

void sx_fanout_free(sx_fanout_call *calls, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        sx_rpc_free(calls[i].resp);
        calls[i].resp = NULL;
    }
}
