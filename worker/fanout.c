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

/* One fan-out's rendezvous. Heap-allocated and counted: an attempt that
 * loses a race (a hedge's slower twin) or was given up at its deadline may
 * complete after the fan-out returned, and must still find the mutex. */
typedef struct fan {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* monotonic: waits are bounded by deadlines and hedge times */
    int refs;          /* under mu: the fan-out, and each attempt not yet freed */
    bool over;         /* under mu: the fan-out returned; late answers are dropped */
    uint64_t bound;    /* the round's attempt deadline (monotonic ms) */
    uint64_t hedge_at; /* the round's hedge time; UINT64_MAX: no hedges */
} fan;

/* One attempt of one call in one round: to the call's target (the primary)
 * or to its hedge target, by RPC or here. Whoever settles it first (its
 * completion, or the fan-out giving a local attempt up at its deadline)
 * reports; the last of the two references frees it. */
typedef struct attempt {
    fan *f;
    sx_fanout_call *c; /* used only while !f->over */
    bool hedge;
    bool local;
    bool live; /* under f->mu: neither answered nor given up */
    int refs;  /* under f->mu */
    uint64_t deadline_ms;
    uint64_t ticket;  /* an RPC's, for sx_rpc_cancel (0: none yet, or local) */
    bool cancel_sent; /* under f->mu */
} attempt;

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

static void fan_release_locked(fan *f, bool *last)
{
    *last = --f->refs == 0;
}

static void fan_free(fan *f)
{
    pthread_mutex_destroy(&f->mu);
    pthread_cond_destroy(&f->cv);
    free(f);
}

/* Drops one reference to a (f->mu held); *last_fan when f must be freed
 * once the mutex is released. */
static void attempt_release_locked(attempt *a, bool *last_fan)
{
    *last_fan = false;
    if (--a->refs == 0) {
        fan_release_locked(a->f, last_fan);
        free(a);
    }
}

static bool hedgeable(const sx_fanout *fo, const sx_fanout_call *c)
{
    return fo->hedge_aim && c->hedge_req;
}

/* A call whose attempts are all over, and whose hedge will not be sent, is
 * settled for the round: its outcome is its primary's (or, when no primary
 * was sent, its hedge's). f->mu held. */
static void maybe_settle_locked(fan *f, sx_fanout_call *c)
{
    if (c->settled)
        return;
    for (int k = 0; k < 2; k++)
        if (c->att[k] && ((attempt *)c->att[k])->live)
            return;
    if (c->hedge_due) /* the primary is over: the hedge goes now (wait_round) */
        return;
    c->settled = true;
    if (!c->primary_sent && c->hedge_sent) {
        c->st = c->hedge_st;
        c->err = c->hedge_err;
    }
    pthread_cond_broadcast(&f->cv);
}

/* Attempt a ended with st (resp on SX_OK, ours to keep or free); f->mu held.
 * Returns whether resp was kept. */
static bool record_locked(attempt *a, sx_status st, const sx_err *err, ProtobufCMessage *resp)
{
    fan *f = a->f;
    if (f->over || !a->live)
        return false;
    a->live = false;
    sx_fanout_call *c = a->c;
    if (c->settled)
        return false; /* the other attempt won */
    if (st == SX_OK) {
        c->st = SX_OK;
        c->resp = resp;
        c->hedged = a->hedge;
        c->settled = true;
        c->hedge_due = false;
        pthread_cond_broadcast(&f->cv);
        return true;
    }
    if (a->hedge) {
        c->hedge_st = st;
        if (err)
            c->hedge_err = *err;
        else
            sx_err_set(&c->hedge_err, st, "%s", sx_status_name(st));
    } else {
        c->st = st;
        if (err)
            c->err = *err;
    }
    maybe_settle_locked(f, c);
    return false;
}

static void attempt_done_cb(sx_status st, const sx_err *err, ProtobufCMessage *resp, void *arg)
{
    attempt *a = arg;
    fan *f = a->f;
    bool last = false;
    pthread_mutex_lock(&f->mu);
    bool kept = record_locked(a, st, err, resp);
    attempt_release_locked(a, &last);
    pthread_mutex_unlock(&f->mu);
    if (!kept)
        sx_rpc_free(resp);
    if (last)
        fan_free(f);
}

/* Gives up the local attempts past their deadline (f->mu held); returns the
 * earliest deadline of those still running, UINT64_MAX when none. An RPC
 * ends at its deadline by itself. */
static uint64_t expire_here_locked(sx_fanout_call *calls, size_t n, uint64_t now)
{
    uint64_t next = UINT64_MAX;
    for (size_t i = 0; i < n; i++) {
        for (int k = 0; k < 2; k++) {
            attempt *a = calls[i].att[k];
            if (!a || !a->local || !a->live)
                continue;
            if (a->deadline_ms > now) {
                next = a->deadline_ms < next ? a->deadline_ms : next;
            } else {
                sx_err e;
                sx_err_set(&e, SX_DEADLINE_EXCEEDED, HERE_DEADLINE_MSG);
                record_locked(a, SX_DEADLINE_EXCEEDED, &e, NULL);
            }
        }
    }
    return next;
}

/* ------------------------------------------------------------- attempts -- */

/* Starts call c's attempt (its hedge when hedge), bounded by f->bound, here
 * or by RPC. Called without f->mu: a completion may run before it returns. */
static void start_attempt(const sx_fanout *fo, fan *f, sx_fanout_call *c, bool hedge, uint64_t now)
{
    bool self = hedge ? c->hedge_self : c->self;
    attempt *a = sx_calloc(1, sizeof(*a));
    *a = (attempt){.f = f,
                   .c = c,
                   .hedge = hedge,
                   .local = self && (fo->local || fo->here),
                   .live = true,
                   .refs = 2,
                   .deadline_ms = f->bound};
    pthread_mutex_lock(&f->mu);
    f->refs++;
    c->att[hedge] = a;
    if (hedge)
        c->hedge_sent = true;
    else
        c->primary_sent = true;
    pthread_mutex_unlock(&f->mu);
    const ProtobufCMessage *req = hedge ? c->hedge_req : c->req;
    if (a->local) {
        if (fo->local)
            fo->local(fo->local_arg, req, f->bound, attempt_done_cb, a);
        else
            sx_rpc_server_call_local(fo->here, fo->svc, fo->method, req, f->bound, attempt_done_cb,
                                     a);
        return;
    }
    uint64_t ticket = 0;
    sx_rpc_call_opts o = {.timeout_ms = f->bound > now ? f->bound - now : 1, .ticket = &ticket};
    sx_rpc_invoke_async(fo->rpc, hedge ? c->hedge_addr : c->addr, fo->svc, fo->method, req, &o,
                        attempt_done_cb, a);
    /* a is alive: the fan-out's reference holds it until the round ends. */
    pthread_mutex_lock(&f->mu);
    a->ticket = ticket;
    pthread_mutex_unlock(&f->mu);
}

/* Aims and sends the hedges of calls[i] for i in due (nd of them). Called
 * without f->mu. */
static void start_hedges(const sx_fanout *fo, fan *f, sx_fanout_call *calls, const size_t *due,
                         size_t nd)
{
    sx_partmap *m = fo->map(fo->map_arg);
    uint64_t now = sx_clock_now_ms();
    for (size_t k = 0; k < nd; k++) {
        sx_fanout_call *c = &calls[due[k]];
        sx_err e = {0};
        c->hedge_self = false;
        if (m &&
            fo->hedge_aim(fo->aim_arg, due[k], m, c, c->hedge_addr, sizeof(c->hedge_addr), &e)) {
            start_attempt(fo, f, c, true, now);
            continue;
        }
        pthread_mutex_lock(&f->mu);
        c->hedge_st = e.code ? e.code : SX_UNAVAILABLE;
        c->hedge_err = e;
        if (!m)
            sx_err_set(&c->hedge_err, SX_UNAVAILABLE, "this worker has no cluster map yet");
        maybe_settle_locked(f, c);
        pthread_mutex_unlock(&f->mu);
    }
    sx_partmap_release(m);
}

/* The calls whose hedge is due now (f->mu held): unsettled, with a hedge
 * still to send, and either the hedge time passed or the primary is over
 * (failed fast, or had no target). Clears their hedge_due and returns how
 * many went to due. */
static size_t hedges_due_locked(fan *f, sx_fanout_call *calls, size_t n, uint64_t now, size_t *due)
{
    size_t nd = 0;
    for (size_t i = 0; i < n; i++) {
        sx_fanout_call *c = &calls[i];
        if (c->done || c->settled || !c->hedge_due)
            continue;
        attempt *p = c->att[0];
        if (now >= f->hedge_at || !p || !p->live) {
            c->hedge_due = false;
            due[nd++] = i;
        }
    }
    return nd;
}

/* The tickets of RPC attempts that lost to their twin and still run (f->mu
 * held), marked as cancelled; how many went to out (room for 2n). */
static size_t losers_locked(sx_fanout_call *calls, size_t n, uint64_t *out)
{
    size_t nl = 0;
    for (size_t i = 0; i < n; i++) {
        if (!calls[i].settled)
            continue;
        for (int k = 0; k < 2; k++) {
            attempt *a = calls[i].att[k];
            if (a && a->live && !a->local && a->ticket && !a->cancel_sent) {
                a->cancel_sent = true;
                out[nl++] = a->ticket;
            }
        }
    }
    return nl;
}

/* Waits until every call of the round is settled, sending hedges when due
 * and cancelling the RPCs that lost to their twin. */
static void wait_round(const sx_fanout *fo, fan *f, sx_fanout_call *calls, size_t n)
{
    size_t *due = sx_malloc((n + 1) * sizeof(*due));
    uint64_t *losers = sx_malloc((2 * n + 1) * sizeof(*losers));
    pthread_mutex_lock(&f->mu);
    for (;;) {
        uint64_t now = sx_clock_now_ms();
        uint64_t next = expire_here_locked(calls, n, now);
        size_t nd = hedges_due_locked(f, calls, n, now, due);
        size_t nl = fo->hedge_aim ? losers_locked(calls, n, losers) : 0;
        if (nd || nl) {
            pthread_mutex_unlock(&f->mu);
            for (size_t k = 0; k < nl; k++)
                sx_rpc_cancel(fo->rpc, losers[k]); /* its late answer is dropped anyway */
            start_hedges(fo, f, calls, due, nd);
            pthread_mutex_lock(&f->mu);
            continue;
        }
        bool all = true, hedges_to_come = false;
        for (size_t i = 0; i < n; i++) {
            sx_fanout_call *c = &calls[i];
            if (c->done || c->settled)
                continue;
            all = false;
            hedges_to_come |= c->hedge_due;
        }
        if (all)
            break;
        if (hedges_to_come && f->hedge_at < next)
            next = f->hedge_at;
        if (next == UINT64_MAX)
            pthread_cond_wait(&f->cv, &f->mu);
        else if (next > now)
            sx_cond_wait_ms(&f->cv, &f->mu, next - now);
    }
    /* The round's references: attempts still running (a hedge's loser, an
     * RPC past its winner) complete on their own and are dropped then, not
     * counted in the next round, which reuses the calls. */
    bool last = false;
    for (size_t i = 0; i < n; i++) {
        for (int k = 0; k < 2; k++) {
            attempt *a = calls[i].att[k];
            if (a) {
                a->live = false;
                attempt_release_locked(a, &last);
            }
            calls[i].att[k] = NULL;
        }
    }
    pthread_mutex_unlock(&f->mu);
    free(due);
    free(losers);
    (void)last; /* the fan-out's own reference keeps f alive here */
}

/* Aims every call not done at the newest map and starts its attempt; a call
 * without a target now has that as its outcome for the round. */
static void start_round(const sx_fanout *fo, fan *f, sx_fanout_call *calls, size_t n,
                        uint64_t deadline_ms)
{
    sx_partmap *m = fo->map(fo->map_arg);
    uint64_t now = sx_clock_now_ms();
    uint64_t one = fo->policy->attempt_ms;
    if (one == 0 && m)
        one = sx_partmap_attempt_ms(m);
    uint64_t left = deadline_ms > now ? deadline_ms - now : 1;
    pthread_mutex_lock(&f->mu);
    f->bound = now + (left < one ? left : one);
    f->hedge_at = fo->hedge_aim ? now + fo->hedge_ms : UINT64_MAX;
    for (size_t i = 0; i < n; i++) {
        sx_fanout_call *c = &calls[i];
        if (c->done)
            continue;
        c->settled = c->primary_sent = c->hedge_sent = c->hedged = false;
        c->hedge_due = hedgeable(fo, c);
        c->hedge_st = SX_OK;
        sx_err_clear(&c->hedge_err);
    }
    pthread_mutex_unlock(&f->mu);
    for (size_t i = 0; i < n; i++) {
        sx_fanout_call *c = &calls[i];
        if (c->done)
            continue;
        sx_err_clear(&c->err);
        c->self = false;
        if (!m)
            c->st = sx_err_set(&c->err, SX_UNAVAILABLE, "this worker has no cluster map yet");
        else if (!fo->aim(fo->aim_arg, i, m, c, c->addr, sizeof(c->addr), &c->err))
            c->st = c->err.code ? c->err.code : SX_UNAVAILABLE;
        else {
            start_attempt(fo, f, c, false, now);
            continue;
        }
        pthread_mutex_lock(&f->mu);
        maybe_settle_locked(f, c); /* no primary: its hedge (if any) goes at once */
        pthread_mutex_unlock(&f->mu);
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
    fan *f = sx_calloc(1, sizeof(*f));
    pthread_mutex_init(&f->mu, NULL);
    sx_cond_init_monotonic(&f->cv);
    f->refs = 1; /* the fan-out's */
    for (size_t i = 0; i < n; i++) {
        calls[i].done = false;
        calls[i].resp = NULL;
        calls[i].addr[0] = '\0';
        calls[i].hedge_addr[0] = '\0';
        calls[i].att[0] = calls[i].att[1] = NULL;
    }
    uint64_t start = sx_clock_now_ms();
    for (;;) {
        start_round(fo, f, calls, n, deadline_ms);
        wait_round(fo, f, calls, n);
        if (!settle_round(fo->policy, calls, n, start, deadline_ms))
            break;
        if (fo->stale && map_stale(calls, n))
            fo->stale(fo->map_arg);
        sx_clock_sleep_ms(fo->policy->pause_ms);
    }
    bool last = false;
    pthread_mutex_lock(&f->mu);
    f->over = true;
    fan_release_locked(f, &last);
    pthread_mutex_unlock(&f->mu);
    if (last)
        fan_free(f);
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
