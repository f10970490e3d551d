/* fanout.c: see fanout.h. Rounds of attempts (RPCs or local executions),
 * waited for together; the policy decides what goes again and how failures
 * are reported. */
#include "fanout.h"

#include "clock.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BIT(st) (1u << (st))
/* What a local attempt given up at its deadline says: gRPC's words for an
 * RPC's, so that a client cannot tell where the leader was. */
#define HERE_DEADLINE_MSG "Deadline Exceeded"

/* CANCELLED is retried like UNAVAILABLE: an attempt's only canceller is the
 * peer, a node that stopped (gRPC cancels the calls a stopping server had
 * not answered), and the next map names another. This process's own client
 * is destroyed only after its server, so never under a fan-out. */

const sx_fanout_policy sx_fanout_reads = {
    .retry_ms =
        {
            [SX_ABORTED] = SX_FANOUT_UNTIL_DEADLINE,
            [SX_UNAVAILABLE] = SX_FANOUT_UNTIL_DEADLINE,
            [SX_CANCELLED] = SX_FANOUT_UNTIL_DEADLINE,
            [SX_DEADLINE_EXCEEDED] = SX_FANOUT_UNTIL_DEADLINE,
            [SX_FAILED_PRECONDITION] = SX_FANOUT_UNTIL_DEADLINE,
        },
    .pause_ms = 50,
    .unavailable_mask = BIT(SX_ABORTED) | BIT(SX_FAILED_PRECONDITION),
    .unavailable_note = " (no answer before the deadline)",
    .name_target = true,
};

const sx_fanout_policy sx_fanout_writes = {
    .retry_ms =
        {
            [SX_ABORTED] = SX_FANOUT_UNTIL_DEADLINE,
            [SX_UNAVAILABLE] = SX_FANOUT_UNTIL_DEADLINE,
            [SX_CANCELLED] = SX_FANOUT_UNTIL_DEADLINE,
            [SX_UNIMPLEMENTED] = SX_FANOUT_UNTIL_DEADLINE,
            [SX_DEADLINE_EXCEEDED] = SX_FANOUT_UNTIL_DEADLINE,
            [SX_FAILED_PRECONDITION] = SX_FANOUT_ISR_RETRY_MS,
        },
    .pause_ms = 50,
    .unavailable_mask = BIT(SX_ABORTED) | BIT(SX_FAILED_PRECONDITION),
};

/* One fan-out's rendezvous: the caller waits until no attempt is in flight. */
typedef struct fan {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* monotonic: waits are bounded by local attempts' deadlines */
    size_t in_flight;
} fan;

/* A local attempt, shared by the fan-out (which gives it up at its deadline)
 * and the executor's completion (which may come later, or before the
 * executor returns). Whoever settles it first reports; the last reference
 * frees it. */
typedef struct here {
    atomic_int refs;
    atomic_bool settled;
    sx_fanout_call *c; /* used only by the one that settles */
    uint64_t deadline_ms;
} here;

/* --------------------------------------------------------------- policy -- */

bool sx_fanout_retries(const sx_fanout_policy *p, sx_status st, uint64_t start_ms, uint64_t now_ms,
                       uint64_t deadline_ms)
{
    if (st == SX_OK || (unsigned)st >= SX_STATUS_COUNT || p->retry_ms[st] == 0)
        return false;
    if (p->retry_ms[st] != SX_FANOUT_UNTIL_DEADLINE && now_ms >= start_ms + p->retry_ms[st])
        return false;
    return now_ms + p->pause_ms < deadline_ms;
}

sx_status sx_fanout_report(const sx_fanout_policy *p, sx_fanout_call *c)
{
    sx_err last = c->err;
    bool moved = (unsigned)c->st < SX_STATUS_COUNT && (p->unavailable_mask & BIT(c->st));
    sx_status st = moved ? SX_UNAVAILABLE : c->st;
    const char *note = moved && p->unavailable_note ? p->unavailable_note : "";
    if (p->name_target && c->what[0] && c->addr[0])
        return sx_err_set(&c->err, st, "%s at %s: %s%s", c->what, c->addr, last.msg, note);
    if (moved)
        return sx_err_set(&c->err, st, "%s%s", last.msg, note);
    c->err.code = st;
    return st;
}

/* ---------------------------------------------------------- completions -- */

static void rpc_done_cb(sx_status st, const sx_err *err, ProtobufCMessage *resp, void *arg)
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

static void here_release(here *h)
{
    if (atomic_fetch_sub(&h->refs, 1) == 1)
        free(h);
}

static void here_done_cb(sx_status st, const sx_err *err, ProtobufCMessage *resp, void *arg)
{
    here *h = arg;
    if (!atomic_exchange(&h->settled, true))
        rpc_done_cb(st, err, resp, h->c); /* the fan-out still waits for this call */
    else
        sx_rpc_free(resp); /* given up at its deadline */
    here_release(h);
}

/* Gives up the local attempts past their deadline (f->mu held); returns the
 * earliest deadline of those still running, UINT64_MAX when none. */
static uint64_t expire_here_locked(fan *f, sx_fanout_call *calls, size_t n, uint64_t now)
{
    uint64_t next = UINT64_MAX;
    for (size_t i = 0; i < n; i++) {
        here *h = calls[i].here;
        if (!h || atomic_load(&h->settled))
            continue;
        if (h->deadline_ms > now) {
            next = h->deadline_ms < next ? h->deadline_ms : next;
        } else if (!atomic_exchange(&h->settled, true)) {
            calls[i].st = sx_err_set(&calls[i].err, SX_DEADLINE_EXCEEDED, HERE_DEADLINE_MSG);
            f->in_flight--;
        }
    }
    return next;
}

/* Waits until every attempt of the round answered or was given up. */
static void wait_round(fan *f, sx_fanout_call *calls, size_t n)
{
    pthread_mutex_lock(&f->mu);
    while (f->in_flight > 0) {
        uint64_t now = sx_clock_now_ms();
        uint64_t next = expire_here_locked(f, calls, n, now);
        if (f->in_flight == 0)
            break;
        if (next == UINT64_MAX)
            pthread_cond_wait(&f->cv, &f->mu);
        else
            sx_cond_wait_ms(&f->cv, &f->mu, next - now);
    }
    pthread_mutex_unlock(&f->mu);
    for (size_t i = 0; i < n; i++) {
        if (calls[i].here)
            here_release(calls[i].here);
        calls[i].here = NULL;
    }
}

/* ------------------------------------------------------------- attempts -- */

/* Starts call c's attempt, bounded by deadline_ms, here or by RPC. */
static void start_attempt(const sx_fanout *fo, fan *f, sx_fanout_call *c, uint64_t now,
                          uint64_t deadline_ms)
{
    pthread_mutex_lock(&f->mu);
    f->in_flight++;
    pthread_mutex_unlock(&f->mu);
    if (c->self && (fo->local || fo->here)) {
        here *h = sx_calloc(1, sizeof(*h));
        atomic_init(&h->refs, 2);
        atomic_init(&h->settled, false);
        h->c = c;
        h->deadline_ms = deadline_ms;
        c->here = h;
        if (fo->local)
            fo->local(fo->local_arg, c->req, deadline_ms, here_done_cb, h);
        else
            sx_rpc_server_call_local(fo->here, fo->svc, fo->method, c->req, deadline_ms,
                                     here_done_cb, h);
        return;
    }
    sx_rpc_call_opts o = {.timeout_ms = deadline_ms - now};
    sx_rpc_invoke_async(fo->rpc, c->addr, fo->svc, fo->method, c->req, &o, rpc_done_cb, c);
}

/* Aims every call not done at the newest map and starts its attempt; a call
 * without a target now has that as its outcome for the round. */
static void start_round(const sx_fanout *fo, fan *f, sx_fanout_call *calls, size_t n,
                        uint64_t deadline_ms)
{
    sx_partmap *m = fo->map(fo->map_arg);
    uint64_t now = sx_clock_now_ms();
    uint64_t attempt = fo->policy->attempt_ms;
    if (attempt == 0 && m)
        attempt = sx_partmap_attempt_ms(m);
    uint64_t left = deadline_ms > now ? deadline_ms - now : 1;
    uint64_t bound = now + (left < attempt ? left : attempt);
    for (size_t i = 0; i < n; i++) {
        sx_fanout_call *c = &calls[i];
        if (c->done)
            continue;
        sx_err_clear(&c->err);
        c->self = false;
        if (!m) {
            c->st = sx_err_set(&c->err, SX_UNAVAILABLE, "this worker has no cluster map yet");
            continue;
        }
        if (!fo->aim(fo->aim_arg, i, m, c, c->addr, sizeof(c->addr), &c->err)) {
            c->st = c->err.code ? c->err.code : SX_UNAVAILABLE;
            continue;
        }
        start_attempt(fo, f, c, now, bound);
    }
    sx_partmap_release(m);
}

/* Marks done the calls that succeeded or go no further; true when some go
 * again. */
static bool settle_round(const sx_fanout_policy *p, sx_fanout_call *calls, size_t n,
                         uint64_t start_ms, uint64_t deadline_ms)
{
    bool again = false;
    uint64_t now = sx_clock_now_ms();
    for (size_t i = 0; i < n; i++) {
        sx_fanout_call *c = &calls[i];
        if (c->done)
            continue;
        if (sx_fanout_retries(p, c->st, start_ms, now, deadline_ms))
            again = true;
        else
            c->done = true;
    }
    return again;
}

/* Whether a call going again was refused in a way a newer map may fix. */
static bool map_stale(const sx_fanout_call *calls, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!calls[i].done && (calls[i].st == SX_ABORTED || calls[i].st == SX_UNAVAILABLE ||
                               calls[i].st == SX_CANCELLED))
            return true;
    return false;
}

/* ------------------------------------------------------------- fan-outs -- */

sx_status sx_fanout_exec(const sx_fanout *fo, sx_fanout_call *calls, size_t n, uint64_t deadline_ms,
                         sx_err *err)
{
    fan f = {.mu = PTHREAD_MUTEX_INITIALIZER};
    sx_cond_init_monotonic(&f.cv);
    for (size_t i = 0; i < n; i++) {
        calls[i].done = false;
        calls[i].resp = NULL;
        calls[i].addr[0] = '\0';
        calls[i].fan = &f;
        calls[i].here = NULL;
    }
    uint64_t start = sx_clock_now_ms();
    for (;;) {
        start_round(fo, &f, calls, n, deadline_ms);
        wait_round(&f, calls, n);
        if (!settle_round(fo->policy, calls, n, start, deadline_ms))
            break;
        if (fo->stale && map_stale(calls, n))
            fo->stale(fo->map_arg);
        sx_clock_sleep_ms(fo->policy->pause_ms);
    }
    pthread_cond_destroy(&f.cv);
    sx_status first = SX_OK;
    for (size_t i = 0; i < n; i++) {
        if (calls[i].st == SX_OK)
            continue;
        sx_status st = sx_fanout_report(fo->policy, &calls[i]);
        if (first == SX_OK) {
            first = st;
            if (err)
                *err = calls[i].err;
        }
    }
    return first;
}

sx_status sx_fanout_run(sx_rpc_client *rpc, sx_rpc_server *self_srv, sx_membership *member,
                        const ProtobufCServiceDescriptor *svc, const char *method,
                        sx_fanout_call *calls, size_t n, sx_fanout_aim_cb aim, void *arg,
                        uint64_t deadline_ms, uint64_t attempt_ms, sx_err *err)
{
    sx_fanout_policy p = sx_fanout_reads;
    p.attempt_ms = attempt_ms;
    sx_fanout fo = {.rpc = rpc,
                    .here = self_srv,
                    .map = sx_fanout_member_map_cb,
                    .map_arg = member,
                    .stale = sx_fanout_member_stale_cb,
                    .svc = svc,
                    .method = method,
                    .aim = aim,
                    .aim_arg = arg,
                    .policy = &p};
    return sx_fanout_exec(&fo, calls, n, deadline_ms, err);
}

sx_partmap *sx_fanout_member_map_cb(void *member)
{
    sx_membership_view v;
    sx_membership_get_view(member, &v);
    return v.map;
}

bool sx_fanout_aim_leaders(void *arg, size_t i, const sx_partmap *m, sx_fanout_call *c, char *addr,
                           size_t cap, sx_err *err)
{
    uint32_t p = ((const uint32_t *)arg)[i];
    sx_partmap_target t;
    if (sx_partmap_leader_target(m, p, &t, err) != SX_OK)
        return false;
    snprintf(addr, cap, "%s", t.address);
    snprintf(c->what, sizeof(c->what), "the leader of partition %u", p);
    c->self = sx_partmap_leads(m, p);
    return true;
}

void sx_fanout_free(sx_fanout_call *calls, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        sx_rpc_free(calls[i].resp);
        calls[i].resp = NULL;
    }
}

void sx_fanout_member_stale_cb(void *member)
{
    sx_membership_refresh(member);
}
