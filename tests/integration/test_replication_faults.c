/* test_replication_faults.c: the Kafka failures of REPLICATION.md's table,
 * staged against real processes (coordinator + 3 workers, P=8, R=3,
 * min_isr=2, lease 1000 ms): crash points, kill -9, SIGSTOP and the rpc fault
 * layer (WorkerAdmin.SetFaults on a worker changes its outgoing calls). Every
 * test asserts what a client sees (acknowledged writes readable with their
 * tokens as `after`, refusals with the right status) and ends with
 * sx_check_replicas (logs identical up to the commit offset, epochs included,
 * documents = replay of the log).
 *
 * shardex pushes: the leader sends Append(entries, its commit offset) to each
 * follower, and learns the follower's log end from the reply. Kafka's
 * follower fetches and learns the HW from the fetch response. The rows are
 * adapted as follows.
 *
 * Row 1 (KIP-101, follower truncates to a stale HW): the follower's replies
 * are dropped (drop_reply on the leader), so it holds W durably while the
 * commit it knows stays below W; it is killed in that state, W is then
 * acknowledged (the coordinator drops the dead follower from the ISR). It is
 * restarted while the leader cannot reach anyone (Append drop=1 on the
 * leader: nothing can repair it), so its log as recovered is checked on its
 * own: it must still hold W. Then, as soon as it is back in the ISR, the
 * leader is killed and the third replica SIGSTOPped, which leaves it the only
 * live ISR member: it must be elected, its log must hold every acknowledged
 * entry at its offset, and everything must be readable.
 *
 * Row 2 (KIP-101, the unsynced replica comes back first and leads): the
 * follower dies at "follower-before-append" while W is being replicated. The
 * coordinator is SIGSTOPped from before W until every replica is down, so that
 * W cannot be acknowledged (no ISR shrink possible) and the three deaths are
 * judged in one tick, i.e. the follower stays in the kept ISR. With three
 * replicas "both crashed" means every replica holding W is down: the leader
 * and the other follower are killed. The follower restarts first, without the
 * crash point: the test reads the ISR the coordinator kept and asserts
 * accordingly: in it, the follower must lead (and with min_isr=2 alone its
 * writes fail with UNAVAILABLE naming min_isr); outside it (the deaths were
 * judged apart), nothing may be elected until an ISR member returns. After
 * the other follower returns, a write succeeds; when the follower led, it lands
 * at W's offset in a newer epoch (a different entry at the same offset), W is
 * gone, and the checker proves everyone truncated it.
 *
 * Row 4 (KIP-320, stale appends after a leader change): the fault layer's
 * delay is bounded by the attempt deadline (1 s for Append) and a call past
 * its deadline is never delivered, and kill -9 of the leader kills its pending
 * calls with it; so the old leader is kept alive but deposed instead: its
 * Appends are dropped (W reaches only its own log) and its Heartbeats and
 * ChangeIsr calls too, so the coordinator elects another leader while the old
 * one still believes it leads. Once both followers know the new epoch, its
 * Appends (and its ChangeIsr calls, which the coordinator refuses) are let
 * through ("the delayed appends arrive"): the followers must refuse them (the
 * old leader gets fenced), their logs hold no entry of the old epoch beyond
 * the new leader's, and nothing the old leader holds is acknowledged.
 *
 * Row 5 (KAFKA-14704, a demoted leader applies an HW past its divergence):
 * the same deposed leader holds W at offsets k..; the new leader commits X at
 * the same offsets; then the old leader rejoins and is sent commit offsets
 * past k while its log still holds W: W must never reach its documents.
 *
 * Row 7 (a partitioned leader shrinks the ISR to itself): the leader's Appends
 * are dropped (it still reaches the coordinator). The followers are cut one
 * after the other, so that each step is asserted: cut from one, a Put is not
 * acknowledged, and the commit offset does not move, until the coordinator's
 * map no longer has that follower in the ISR; cut from both, the ISR becomes
 * {leader} and stays so, and writes fail with UNAVAILABLE naming min_isr, with
 * the commit offset still (once a bug: an unreachable follower was re-admitted;
 * see test_row7_cut_from_all_refuses_writes).
 * Healed, the ISR expands and writes succeed. A shrink request that failed
 * (coordinator unreachable) is asked again. And a paused old leader's
 * ChangeIsr (sent by the test with its worker id and old epoch) is refused
 * with FAILED_PRECONDITION.
 *
 * Row 8 (Jepsen 2013, min_isr): both followers of a partition are SIGSTOPped:
 * a Put before the coordinator notices ends in DEADLINE_EXCEEDED, after it in
 * UNAVAILABLE naming min_isr; the leader's commit offset (WorkerAdmin.Status)
 * does not move; resumed, writes succeed.
 *
 * Row 9 (Jepsen on NATS): the three workers are killed at once and restarted:
 * every acknowledged write survives (fsync before the acknowledgement). Then a
 * stopped follower's newest LevelDB write-ahead log gets one byte flipped near
 * its start, with over 64 KiB of records after it, so that recovery (which, with
 * LevelDB's paranoid checks off, skips the rest of a corrupt 32 KiB block)
 * would leave a hole rather than a shorter log. Expected, and now true: the
 * store refuses to open (paranoid checks), the replica is set aside and copied
 * again from the leader, and a restarted worker is out of the ISR until it has
 * caught up, so it is never electable with a hole.
 *
 * Messages that say "KNOWN BUG" name bugs these tests found (fixed since); they
 * stay as regression tests.
 * SHARDEX_TEST_FILTER=<cmocka pattern> runs some tests only.
 */
#include "checker.h"
#include "clock.h"
#include "cluster.h"
#include "docs.h"
#include "fixture.h"
#include "harness.h"
#include "hash.h"
#include "shardex/internal/v1/coordinator.pb-c.h"
#include "shardex/internal/v1/replication.pb-c.h"
#include "shardex/internal/v1/worker.pb-c.h"
#include "shardex/v1/shardex.pb-c.h"

#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>

#define SHARDEX_SVC (&shardex__v1__shardex__descriptor)
#define COORD_SVC (&shardex__internal__v1__coordinator__descriptor)
#define ADMIN_SVC (&shardex__internal__v1__worker_admin__descriptor)
#define WAIT_MS 30000
#define NONE UINT32_MAX
#define NDOCS 8
#define BIT(i) (1u << (i))

typedef Shardex__Internal__V1__ClusterMap ClusterMap;

/* ------------------------------------------------------------ fixtures -- */

static int setup(void **state)
{
    /* On etcd, an etcd lease that outlasts the coordinator's pause in row 2
     * (1.55 s): there it must wake up leading, not deposed (test_coord_etcd). */
    sx_cluster_opts o = {.workers = 3, .metadata_lease_s = 10};
    *state = sx_cluster_start_settled(&o, WAIT_MS);
    return *state ? 0 : -1;
}

static int teardown(void **state)
{
    sx_cluster *c = *state;
    /* kill -9: the data is thrown away, and a graceful stop costs each process
     * its shutdown grace (about 9 s a test). */
    sx_cluster_kill_all(c);
    sx_cluster_stop(c);
    free(c);
    return 0;
}

/* ----------------------------------------------------------- documents -- */

/* Acknowledged writes, to read back at the end. */
typedef struct acked {
    char id[64];
    char text[64];
    uint32_t partition;
    uint64_t offset;
} acked;

typedef struct ack_log {
    acked a[128];
    size_t n;
} ack_log;

/* Records a successful Put's tokens; returns the lowest and highest offset. */
static void record(ack_log *log, const sx_doc_spec *d, size_t n, const Shardex__V1__PutResponse *pr,
                   uint64_t *first, uint64_t *last)
{
    uint64_t lo = UINT64_MAX, hi = 0;
    assert_int_equal(pr->n_tokens, n);
    for (size_t i = 0; i < n; i++) {
        const Shardex__V1__WriteToken *t = pr->tokens[i];
        lo = t->offset < lo ? t->offset : lo;
        hi = t->offset > hi ? t->offset : hi;
        if (log->n < sizeof(log->a) / sizeof(log->a[0])) {
            acked *a = &log->a[log->n++];
            memcpy(a->id, d[i].id, sizeof(a->id));
            memcpy(a->text, d[i].text, sizeof(a->text));
            a->partition = t->partition;
            a->offset = t->offset;
        }
    }
    if (first)
        *first = lo;
    if (last)
        *last = hi;
}

/* A Put that must be acknowledged. */
static void must_put(sx_cluster *c, uint32_t via, const sx_doc_spec *d, size_t n, ack_log *log,
                     uint64_t *first, uint64_t *last)
{
    sx_err err = {0};
    Shardex__V1__PutResponse *pr = NULL;
    sx_status st = sx_docs_put(c, via, d, n, 15000, &pr, &err);
    if (st != SX_OK)
        SX_FX_FAIL(c, "put via worker %u: %s (%s)", via, sx_status_name(st), err.msg);
    record(log, d, n, pr, first, last);
    sx_rpc_free(&pr->base);
}

static uint32_t running_worker(const sx_cluster *c, size_t k)
{
    for (uint32_t j = 0; j < c->nworkers; j++) {
        uint32_t i = (uint32_t)((k + j) % c->nworkers);
        if (c->worker_pid[i] > 0)
            return i;
    }
    return 0;
}

/* Every acknowledged write is readable, with `after` = its token, through any
 * running worker, with its content and at least its version. */
static void verify_acked(sx_cluster *c, const ack_log *log)
{
    for (size_t k = 0; k < log->n; k++) {
        const acked *a = &log->a[k];
        Shardex__V1__WriteToken t = SHARDEX__V1__WRITE_TOKEN__INIT;
        t.partition = a->partition;
        t.offset = a->offset;
        Shardex__V1__GetResponse *g = NULL;
        sx_err err = {0};
        uint32_t via = running_worker(c, k);
        sx_status st = sx_docs_get(c, via, a->id, &t, &g, &err);
        if (st != SX_OK)
            SX_FX_FAIL(c, "acknowledged %s (partition %u offset %" PRIu64 "): get via %u: %s",
                       a->id, a->partition, a->offset, via, err.msg);
        if (!g->found)
            SX_FX_FAIL(c, "acknowledged %s (partition %u offset %" PRIu64 ") is gone", a->id,
                       a->partition, a->offset);
        if (g->version->offset < a->offset || strcmp(sx_doc_text(g->doc), a->text) != 0)
            SX_FX_FAIL(c, "acknowledged %s at %" PRIu64 " reads as version %" PRIu64 " \"%s\"",
                       a->id, a->offset, g->version->offset, sx_doc_text(g->doc));
        sx_rpc_free(&g->base);
    }
}

/* None of these documents exists (they were never acknowledged, and the
 * history that held them was truncated). */
static void assert_absent(sx_cluster *c, const sx_doc_spec *d, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        Shardex__V1__GetResponse *g = NULL;
        sx_err err = {0};
        uint32_t via = running_worker(c, i);
        if (sx_docs_get(c, via, d[i].id, NULL, &g, &err) != SX_OK)
            SX_FX_FAIL(c, "get %s via %u: %s", d[i].id, via, err.msg);
        if (g->found)
            SX_FX_FAIL(c,
                       "%s was never acknowledged and its history was truncated, yet it reads as "
                       "version %" PRIu64,
                       d[i].id, g->version->offset);
        sx_rpc_free(&g->base);
    }
}

/* --------------------------------------------------- what the map says -- */

typedef sx_cluster_part_view part_view;

/* ---------------------------------------------- what a worker believes -- */

typedef struct rstate {
    bool ok;
    char role[16];
    uint64_t epoch, leo, commit, applied;
    bool fenced;
} rstate;

static rstate state_of(sx_cluster *c, uint32_t i, uint32_t p)
{
    rstate r = {0};
    Shardex__Internal__V1__WorkerStatusResponse *s = sx_cluster_worker_status(c, i);
    for (size_t k = 0; s && k < s->n_replicas; k++) {
        const Shardex__Internal__V1__ReplicaState *rs = s->replicas[k];
        if (rs->partition != p)
            continue;
        r.ok = true;
        snprintf(r.role, sizeof(r.role), "%s", rs->role);
        r.epoch = rs->epoch;
        r.leo = rs->log_end_offset;
        r.commit = rs->commit_offset;
        r.applied = rs->applied_offset;
        r.fenced = rs->fenced;
    }
    sx_rpc_free(s ? &s->base : NULL);
    return r;
}

static Shardex__Internal__V1__ReadLogResponse *read_log(sx_cluster *c, uint32_t i, uint32_t p,
                                                        uint64_t from)
{
    Shardex__Internal__V1__ReadLogRequest req = SHARDEX__INTERNAL__V1__READ_LOG_REQUEST__INIT;
    req.partition = p;
    req.from_offset = from;
    req.max_entries = 1000;
    ProtobufCMessage *resp = NULL;
    sx_rpc_call_opts o = {.timeout_ms = 5000, .idempotent = true};
    sx_err err = {0};
    if (sx_rpc_invoke(c->rpc, c->worker_addr[i], ADMIN_SVC, "ReadLog", &req.base, &resp, &o,
                      &err) != SX_OK)
        SX_FX_FAIL(c, "ReadLog worker %u partition %u: %s", i, p, err.msg);
    return (void *)resp;
}

/* The id a log entry puts (NULL for a delete); *op is to be freed. */
static const char *put_id(const Shardex__Internal__V1__AppendEntry *e,
                          Shardex__Internal__V1__LogOp **op)
{
    *op = shardex__internal__v1__log_op__unpack(NULL, e->op.len, e->op.data);
    if (!*op || (*op)->op_case != SHARDEX__INTERNAL__V1__LOG_OP__OP_PUT)
        return NULL;
    return (*op)->put->id;
}

/* Worker i's log of p holds every acknowledged write of p at its offset. */
static void assert_log_holds(sx_cluster *c, uint32_t i, uint32_t p, const ack_log *log)
{
    for (size_t k = 0; k < log->n; k++) {
        const acked *a = &log->a[k];
        if (a->partition != p)
            continue;
        Shardex__Internal__V1__ReadLogResponse *r = read_log(c, i, p, a->offset);
        Shardex__Internal__V1__LogOp *op = NULL;
        const char *id = r->n_entries ? put_id(r->entries[0], &op) : NULL;
        if (!id || strcmp(id, a->id) != 0)
            SX_FX_FAIL(c,
                       "worker %u partition %u: acknowledged %s at offset %" PRIu64
                       " is not in its log (log end %" PRIu64 ", entry there puts %s)",
                       i, p, a->id, a->offset, r->log_end_offset, id ? id : "nothing");
        if (op)
            shardex__internal__v1__log_op__free_unpacked(op, NULL);
        sx_rpc_free(&r->base);
    }
}

/* Epochs of worker i's log of p from offset `from` on: every entry's epoch must
 * be at least min_epoch. Returns the number of entries seen. */
static size_t assert_no_entry_below(sx_cluster *c, uint32_t i, uint32_t p, uint64_t from,
                                    uint64_t min_epoch)
{
    Shardex__Internal__V1__ReadLogResponse *r = read_log(c, i, p, from);
    size_t n = r->n_entries;
    for (size_t k = 0; k < n; k++)
        if (r->entries[k]->epoch < min_epoch)
            SX_FX_FAIL(c,
                       "worker %u partition %u: offset %" PRIu64 " holds an entry of epoch %" PRIu64
                       " (a stale leader's) although it knows epoch %" PRIu64,
                       i, p, from + k, r->entries[k]->epoch, min_epoch);
    sx_rpc_free(&r->base);
    return n;
}

/* Whether worker i's applied documents of p include any of d. */
static bool store_has_any(sx_cluster *c, uint32_t i, uint32_t p, const sx_doc_spec *d, size_t n,
                          const char **which)
{
    Shardex__Internal__V1__ScanDocsRequest req = SHARDEX__INTERNAL__V1__SCAN_DOCS_REQUEST__INIT;
    req.partition = p;
    ProtobufCMessage *resp = NULL;
    sx_rpc_call_opts o = {.timeout_ms = 5000};
    if (sx_rpc_invoke(c->rpc, c->worker_addr[i], ADMIN_SVC, "ScanDocs", &req.base, &resp, &o,
                      NULL) != SX_OK)
        return false;
    const Shardex__Internal__V1__ScanDocsResponse *sd = (void *)resp;
    bool found = false;
    for (size_t k = 0; k < sd->n_docs && !found; k++)
        for (size_t j = 0; j < n && !found; j++)
            if (strcmp(sd->docs[k]->doc->id, d[j].id) == 0) {
                found = true;
                *which = d[j].id;
            }
    sx_rpc_free(resp);
    return found;
}

static sx_status change_isr(sx_cluster *c, const char *worker_id, uint32_t p, uint64_t epoch,
                            uint64_t isr_version, int32_t *isr, size_t n, sx_err *err)
{
    Shardex__Internal__V1__ChangeIsrRequest req = SHARDEX__INTERNAL__V1__CHANGE_ISR_REQUEST__INIT;
    req.worker_id = (char *)worker_id;
    req.partition = p;
    req.epoch = epoch;
    req.isr_version = isr_version;
    req.isr = isr;
    req.n_isr = n;
    ProtobufCMessage *resp = NULL;
    sx_rpc_call_opts o = {.timeout_ms = 5000};
    sx_status st =
        sx_rpc_invoke(c->rpc, c->coord_addr, COORD_SVC, "ChangeIsr", &req.base, &resp, &o, err);
    sx_rpc_free(resp);
    return st;
}

/* The first line of worker i's log holding needle, into out. */
static bool log_line(const sx_cluster *c, uint32_t i, const char *needle, char *out, size_t cap)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/w%u.log", c->dir, i);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    char line[2048];
    bool found = false;
    while (!found && fgets(line, sizeof(line), f))
        if ((found = strstr(line, needle) != NULL)) {
            line[strcspn(line, "\n")] = '\0';
            snprintf(out, cap, "%s", strstr(line, needle));
        }
    fclose(f);
    return found;
}

static bool log_contains(const sx_cluster *c, uint32_t i, const char *needle)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/w%u.log", c->dir, i);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    char line[2048];
    bool found = false;
    while (!found && fgets(line, sizeof(line), f))
        found = strstr(line, needle) != NULL;
    fclose(f);
    return found;
}

/* ------------------------------------------------------------- waiting -- */

typedef struct waitc {
    sx_cluster *c;
    uint32_t p;
    uint32_t i;     /* a test worker */
    uint32_t mask;  /* test workers */
    uint64_t value; /* an epoch or an offset */
    const char *text;
} waitc;

/* p has a live leader other than i, at an epoch above value. */
static bool leader_moved(void *arg)
{
    waitc *w = arg;
    part_view v = sx_cluster_part_view_of(w->c, w->p);
    return v.ok && v.leader != NONE && v.leader != w->i && v.leader_alive && v.epoch > w->value;
}

/* p is led by i (alive). */
static bool leader_is(void *arg)
{
    waitc *w = arg;
    part_view v = sx_cluster_part_view_of(w->c, w->p);
    return v.ok && v.leader == w->i && v.leader_alive;
}

/* p's ISR is exactly mask, with a live leader. */
static bool isr_is(void *arg)
{
    waitc *w = arg;
    part_view v = sx_cluster_part_view_of(w->c, w->p);
    uint32_t n = 0;
    for (uint32_t m = w->mask; m; m &= m - 1)
        n++;
    return v.ok && v.leader_alive && v.isr_mask == w->mask && v.nisr == n;
}

static bool isr_has(void *arg)
{
    waitc *w = arg;
    part_view v = sx_cluster_part_view_of(w->c, w->p);
    return v.ok && (v.isr_mask & BIT(w->i)) != 0;
}

/* p has a live leader and at least `value` ISR members. */
static bool writable(void *arg)
{
    waitc *w = arg;
    part_view v = sx_cluster_part_view_of(w->c, w->p);
    return v.ok && v.leader_alive && v.nisr >= w->value;
}

/* None of mask is alive in the map. */
static bool all_dead(void *arg)
{
    waitc *w = arg;
    part_view v = sx_cluster_part_view_of(w->c, w->p);
    return v.ok && (v.alive_mask & w->mask) == 0;
}

static bool is_alive(void *arg)
{
    waitc *w = arg;
    part_view v = sx_cluster_part_view_of(w->c, w->p);
    return v.ok && (v.alive_mask & BIT(w->i)) != 0;
}

/* Worker i's replica of p: log end at least value. */
static bool leo_reaches(void *arg)
{
    waitc *w = arg;
    rstate r = state_of(w->c, w->i, w->p);
    return r.ok && r.leo >= w->value;
}

/* Worker i hosts p in the role `text` at epoch >= value. */
static bool role_at(void *arg)
{
    waitc *w = arg;
    rstate r = state_of(w->c, w->i, w->p);
    return r.ok && strcmp(r.role, w->text) == 0 && r.epoch >= w->value;
}

static bool fenced(void *arg)
{
    waitc *w = arg;
    rstate r = state_of(w->c, w->i, w->p);
    return r.ok && r.fenced;
}

static bool logged(void *arg)
{
    waitc *w = arg;
    return log_contains(w->c, w->i, w->text);
}

/* ----------------------------------------------------- background Puts -- */

typedef struct bg_put {
    sx_cluster *c;
    uint32_t via;
    sx_doc_spec d[NDOCS];
    uint64_t timeout_ms;
    uint64_t took_ms;
    sx_status st;
    sx_err err;
    Shardex__V1__PutResponse *resp;
    atomic_bool done;
    pthread_t th;
} bg_put;

static void *bg_main(void *arg)
{
    bg_put *b = arg;
    uint64_t t0 = sx_clock_now_ms();
    b->st = sx_docs_put(b->c, b->via, b->d, NDOCS, b->timeout_ms, &b->resp, &b->err);
    b->took_ms = sx_clock_now_ms() - t0;
    atomic_store(&b->done, true);
    return NULL;
}

static bg_put *bg_start(sx_cluster *c, uint32_t via, uint32_t p, const char *tag,
                        uint64_t timeout_ms)
{
    bg_put *b = calloc(1, sizeof(*b));
    b->c = c;
    b->via = via;
    b->timeout_ms = timeout_ms;
    sx_docs_for_partition(c, p, tag, b->d, NDOCS);
    atomic_init(&b->done, false);
    pthread_create(&b->th, NULL, bg_main, b);
    return b;
}

static void bg_join(bg_put *b)
{
    pthread_join(b->th, NULL);
}

static void bg_free(bg_put *b)
{
    sx_rpc_free(b->resp ? &b->resp->base : NULL);
    free(b);
}

/* --------------------------------------------------------------- row 1 -- */

static void test_row1_restarted_follower_keeps_acked_tail(void **state)
{
    sx_cluster *c = *state;
    const uint32_t p = 0;
    part_view v = sx_cluster_part_view_of(c, p);
    assert_true(v.ok && v.leader != NONE);
    const uint32_t L = v.leader, F = (L + 1) % 3, G = (L + 2) % 3;
    ack_log *acks = calloc(1, sizeof(*acks));
    sx_doc_spec base[NDOCS];
    sx_docs_for_partition(c, p, "r1-base", base, NDOCS);
    uint64_t base_last = 0;
    must_put(c, G, base, NDOCS, acks, NULL, &base_last);

    /* F persists W, but its replies are lost: the leader cannot count it, and
     * the commit offset F knows stays below W. */
    char spec[256];
    snprintf(spec, sizeof(spec), "method=Append,peer=%s,drop_reply=1", c->worker_addr[F]);
    assert_true(sx_cluster_set_faults(c, L, spec));
    bg_put *w = bg_start(c, G, p, "r1-w", 20000);
    waitc wc = {.c = c, .p = p, .i = F, .value = base_last + NDOCS};
    bool f_has_w = sx_h_wait_for(leo_reaches, &wc, WAIT_MS);
    rstate f1 = state_of(c, F, p);
    bool acked_early = atomic_load(&w->done);
    sx_cluster_kill_worker(c, F); /* kill -9 with W durable and its commit stale */
    bg_join(w);
    if (!f_has_w)
        SX_FX_FAIL(c, "follower %u never received W (log end %" PRIu64 ")", F, f1.leo);
    if (acked_early)
        SX_FX_FAIL(c, "W was acknowledged while an ISR follower had not acknowledged it: %s",
                   sx_status_name(w->st));
    assert_true(f1.commit < base_last + 1); /* the KIP-101 state: entries past the known HW */
    if (w->st != SX_OK)
        SX_FX_FAIL(c, "W was not acknowledged once the follower died: %s", w->err.msg);
    uint64_t w_last = 0;
    record(acks, w->d, NDOCS, w->resp, NULL, &w_last);
    bg_free(w);
    v = sx_cluster_part_view_of(c, p);
    assert_true((v.isr_mask & BIT(F)) == 0); /* acknowledged only without F in the ISR */
    /* What F held past its commit offset is committed now (the router may have
     * sent W twice: its first attempt timed out while F was still in the ISR). */
    assert_true(state_of(c, L, p).commit >= f1.leo && w_last >= f1.leo);

    /* Restart F while the leader reaches nobody: its log as recovered, alone. */
    assert_true(sx_cluster_set_faults(c, L, "method=Append,drop=1"));
    assert_true(sx_cluster_start_worker(c, F));
    waitc fr = {.c = c, .p = p, .i = F, .value = 0, .text = "follower"};
    SX_FX_WAIT(c, role_at, &fr, WAIT_MS,
               "timed out waiting until the restarted follower hosts the partition");
    rstate f2 = state_of(c, F, p);
    if (f2.leo < f1.leo)
        SX_FX_FAIL(c,
                   "the restarted follower truncated its log to %" PRIu64 " (it held %" PRIu64
                   ", commit %" PRIu64 "): rule 6, truncation must not use the HW",
                   f2.leo, f1.leo, f1.commit);
    assert_true(sx_cluster_set_faults(c, L, ""));

    /* As soon as F is back in the ISR the leader dies and G stops: F is the
     * only live ISR member left, and is elected. */
    SX_FX_WAIT(c, isr_has, &wc, WAIT_MS,
               "timed out waiting until the restarted follower is back in the ISR");
    sx_cluster_kill_worker(c, L);
    sx_h_pause(c->worker_pid[G]);
    waitc fl = {.c = c, .p = p, .i = F};
    bool elected = sx_h_wait_for(leader_is, &fl, WAIT_MS);
    sx_h_resume(c->worker_pid[G]);
    if (!elected)
        SX_FX_FAIL(c, "the follower, sole live ISR member, was not elected");
    /* What it leads with: every acknowledged entry at its offset. */
    assert_log_holds(c, F, p, acks);
    waitc two = {.c = c, .p = p, .mask = BIT(F) | BIT(G)};
    SX_FX_WAIT(c, isr_is, &two, WAIT_MS,
               "timed out waiting until the resumed replica rejoins the new leader's ISR");
    verify_acked(c, acks);
    sx_doc_spec after[NDOCS];
    sx_docs_for_partition(c, p, "r1-after", after, NDOCS);
    must_put(c, G, after, NDOCS, acks, NULL, NULL);
    assert_true(sx_cluster_start_worker(c, L));
    SX_FX_CHECK_REPLICAS(c, WAIT_MS);
    verify_acked(c, acks);
    free(acks);
}

/* --------------------------------------------------------------- row 2 -- */

static void test_row2_unsynced_follower_restarts_first(void **state)
{
    sx_cluster *c = *state;
    const uint32_t P = c->opts.partitions;
    part_view v = sx_cluster_part_view_of(c, P - 1);
    assert_true(v.ok && v.leader != NONE);
    const uint32_t F = (v.leader + 1) % 3;
    ack_log *acks = calloc(1, sizeof(*acks));
    sx_doc_spec base[NDOCS], wdocs[NDOCS], x1[NDOCS], x2[NDOCS];
    /* Every partition gets its base now: F must receive no entries once its
     * crash point is armed, and which partition F will follow is known only
     * after it rejoined (balancing may hand it some leaderships then). */
    uint64_t *base_last = calloc(P, sizeof(*base_last));
    for (uint32_t q = 0; q < P; q++) {
        sx_docs_for_partition(c, q, "r2-base", base, NDOCS);
        must_put(c, v.leader, base, NDOCS, acks, NULL, &base_last[q]);
    }

    /* F dies the next time it receives entries, before writing them. */
    sx_cluster_kill_worker(c, F);
    static const char *const crash[] = {"SHARDEX_CRASH_POINT=follower-before-append", NULL};
    assert_true(sx_cluster_start_worker_env(c, F, crash));
    SX_FX_CHECK_REPLICAS(c, WAIT_MS); /* whole again, and nothing sent F entries */
    /* The partition: the last one F follows (not leads) in the settled map. */
    uint32_t p = P;
    for (uint32_t q = P; q-- > 0 && p == P;) {
        v = sx_cluster_part_view_of(c, q);
        if (v.ok && v.leader != NONE && v.leader != F)
            p = q;
    }
    if (p == P)
        SX_FX_FAIL(c, "the restarted worker %u leads every partition", F);
    const uint32_t L = v.leader, G = 3 - L - F;
    sx_docs_for_partition(c, p, "r2-w", wdocs, NDOCS);
    sx_docs_for_partition(c, p, "r2-x1", x1, NDOCS);
    sx_docs_for_partition(c, p, "r2-x2", x2, NDOCS);
    const uint64_t k = base_last[p] + 1; /* where W goes */
    free(base_last);
    pid_t fpid = c->worker_pid[F];

    /* The coordinator stands still: no ISR change, one judgement of all deaths. */
    sx_h_pause(c->coord_pid);
    const uint64_t paused_at = sx_clock_now_ms();
    sx_err err = {0};
    sx_status st = sx_docs_put(c, L, wdocs, NDOCS, 700, NULL, &err);
    int ws = sx_h_wait_exit(fpid, 10000);
    if (ws != -1)
        c->worker_pid[F] = 0;
    waitc gw = {.c = c, .p = p, .i = G, .value = k + NDOCS - 1};
    bool g_has_w = sx_h_wait_for(leo_reaches, &gw, 5000);
    rstate l1 = state_of(c, L, p);
    sx_cluster_kill_worker(c, L);
    sx_cluster_kill_worker(c, G);
    /* Every lease (and the coordinator's margin) runs out while it is stopped,
     * so that it judges the three deaths at once when it wakes. */
    uint64_t expired_at = paused_at + c->opts.lease_ms + c->opts.lease_ms / 4 + 300;
    while (sx_clock_now_ms() < expired_at)
        sx_clock_sleep_ms(expired_at - sx_clock_now_ms());
    sx_h_resume(c->coord_pid);
    if (st == SX_OK)
        SX_FX_FAIL(c, "W was acknowledged without the follower and without an ISR change");
    if (ws == -1 || !WIFEXITED(ws) || WEXITSTATUS(ws) != 86)
        SX_FX_FAIL(c, "the follower did not stop at follower-before-append (status %d)", ws);
    assert_true(g_has_w);
    assert_true(l1.leo >= k + NDOCS - 1 && l1.commit < k); /* appended, not committed */

    waitc dead = {.c = c, .p = p, .mask = BIT(L) | BIT(F) | BIT(G)};
    SX_FX_WAIT(c, all_dead, &dead, WAIT_MS,
               "timed out waiting until the coordinator declares all three workers dead");
    part_view kept = sx_cluster_part_view_of(c, p);
    assert_int_equal(kept.leader_w, -1);
    const bool f_in = (kept.isr_mask & BIT(F)) != 0, g_in = (kept.isr_mask & BIT(G)) != 0;
    fprintf(stderr, "row 2: the coordinator kept isr {%s%s%s} for partition %u\n",
            kept.isr_mask & BIT(L) ? " leader" : "", f_in ? " unsynced-follower" : "",
            g_in ? " other-follower" : "", p);

    /* The unsynced follower comes back first. */
    assert_true(sx_cluster_start_worker(c, F));
    waitc fa = {.c = c, .p = p, .i = F};
    SX_FX_WAIT(c, is_alive, &fa, WAIT_MS, "timed out waiting until the follower registers again");
    if (f_in) {
        /* In the last ISR: it may lead (rule 5), but alone it commits nothing. */
        SX_FX_WAIT(c, leader_is, &fa, WAIT_MS,
                   "timed out waiting until the follower, in the kept ISR, is elected");
        st = sx_docs_put(c, F, x1, NDOCS, 5000, NULL, &err);
        if (st != SX_UNAVAILABLE || !strstr(err.msg, "min_isr"))
            SX_FX_FAIL(c,
                       "a write with the ISR {follower}: %s (%s), want UNAVAILABLE naming min_isr",
                       sx_status_name(st), err.msg);
    } else {
        /* Outside it: never elected. (The router retries "no live leader"
         * until the call's deadline, so the client may see that first.) */
        st = sx_docs_put(c, F, x1, NDOCS, 3000, NULL, &err);
        if (st != SX_UNAVAILABLE && st != SX_DEADLINE_EXCEEDED)
            SX_FX_FAIL(c, "a write with no ISR member alive: %s (%s), want UNAVAILABLE",
                       sx_status_name(st), err.msg);
        v = sx_cluster_part_view_of(c, p);
        if (v.leader_w != -1)
            SX_FX_FAIL(c, "a replica outside the kept ISR was elected (rule 5)");
    }
    assert_true(sx_cluster_start_worker(c, G));
    if (!f_in && !g_in)
        assert_true(sx_cluster_start_worker(c, L));
    waitc wr = {.c = c, .p = p, .value = 2};
    SX_FX_WAIT(c, writable, &wr, WAIT_MS,
               "timed out waiting until the partition has a leader and min_isr in-sync replicas");
    /* Balancing may hand the leadership to G (which holds W) as soon as it is
     * in the ISR; F normally keeps it. */
    part_view before = sx_cluster_part_view_of(c, p);
    uint64_t x2_first = 0;
    must_put(c, G, x2, NDOCS, acks, &x2_first, NULL);
    part_view after = sx_cluster_part_view_of(c, p);
    const bool f_wrote =
        f_in && before.leader == F && after.leader == F && before.epoch == after.epoch;
    if (f_wrote && x2_first != k)
        SX_FX_FAIL(c, "the new leader wrote at %" PRIu64 ", want W's offset %" PRIu64, x2_first, k);
    if (!f_wrote)
        fprintf(stderr, "row 2: X2 was written by worker %u, not the unsynced follower %u\n",
                after.leader, F);
    if (c->worker_pid[L] <= 0)
        assert_true(sx_cluster_start_worker(c, L));
    SX_FX_CHECK_REPLICAS(c, WAIT_MS);
    verify_acked(c, acks);
    if (f_wrote) /* a different entry at W's offset, in a newer epoch, on every replica */
        assert_absent(c, wdocs, NDOCS);
    free(acks);
}

/* -------------------------------------------------------- rows 4 and 5 -- */

typedef struct deposed {
    uint32_t p, L, F, G, N; /* N: the new leader */
    uint64_t e, e2;         /* old and new epoch */
    uint64_t k;             /* first offset of W, held by L only */
    sx_doc_spec w[NDOCS];
} deposed;

#define CUT_OFF "method=ChangeIsr,drop=1;method=Heartbeat,drop=1"

/* The leader of p appends W that no follower receives, and loses the
 * coordinator while it stays alive, believing it leads: another leader is
 * elected and both followers learn the new epoch. */
static void depose_leader(sx_cluster *c, uint32_t p, const char *tag, ack_log *acks, deposed *d)
{
    part_view v = sx_cluster_part_view_of(c, p);
    assert_true(v.ok && v.leader != NONE);
    d->p = p;
    d->L = v.leader;
    d->F = (d->L + 1) % 3;
    d->G = (d->L + 2) % 3;
    d->e = v.epoch;
    char t[64];
    snprintf(t, sizeof(t), "%.30s-base", tag);
    sx_doc_spec base[NDOCS];
    sx_docs_for_partition(c, p, t, base, NDOCS);
    uint64_t base_last = 0;
    must_put(c, d->F, base, NDOCS, acks, NULL, &base_last);
    d->k = base_last + 1;
    snprintf(t, sizeof(t), "%.30s-w", tag);
    sx_docs_for_partition(c, p, t, d->w, NDOCS);

    assert_true(sx_cluster_set_faults(c, d->L, "method=Append,drop=1;" CUT_OFF));
    sx_err err = {0};
    sx_status st = sx_docs_put(c, d->L, d->w, NDOCS, 500, NULL, &err);
    if (st == SX_OK)
        SX_FX_FAIL(c, "W was acknowledged by a leader that reaches no follower");
    waitc lw = {.c = c, .p = p, .i = d->L, .value = d->k + NDOCS - 1};
    SX_FX_WAIT(c, leo_reaches, &lw, WAIT_MS, "timed out waiting until the leader appended W");
    assert_true(state_of(c, d->F, p).leo == base_last);
    assert_true(state_of(c, d->G, p).leo == base_last);

    waitc mv = {.c = c, .p = p, .i = d->L, .value = d->e};
    SX_FX_WAIT(c, leader_moved, &mv, WAIT_MS, "timed out waiting until another leader is elected");
    v = sx_cluster_part_view_of(c, p);
    d->N = v.leader;
    d->e2 = v.epoch;
    waitc kf = {
        .c = c, .p = p, .i = d->F, .value = d->e2, .text = d->N == d->F ? "leader" : "follower"};
    SX_FX_WAIT(c, role_at, &kf, WAIT_MS,
               "timed out waiting until the first follower knows the new epoch");
    waitc kg = {
        .c = c, .p = p, .i = d->G, .value = d->e2, .text = d->N == d->G ? "leader" : "follower"};
    SX_FX_WAIT(c, role_at, &kg, WAIT_MS,
               "timed out waiting until the second follower knows the new epoch");
    rstate ls = state_of(c, d->L, p);
    assert_string_equal(ls.role, "leader"); /* it heard nothing */
    assert_int_equal(ls.epoch, d->e);
    assert_false(ls.fenced);
}

static void test_row4_stale_leader_appends_refused(void **state)
{
    sx_cluster *c = *state;
    ack_log *acks = calloc(1, sizeof(*acks));
    deposed d;
    depose_leader(c, 1, "r4", acks, &d);

    /* Its appends of the old epoch now reach the followers, late. Its ChangeIsr
     * calls reach the coordinator too, which refuses them at once (it no longer
     * leads): while they time out, its sessions do nothing but ask again. */
    assert_true(sx_cluster_set_faults(c, d.L, "method=Heartbeat,drop=1"));
    waitc fz = {.c = c, .p = d.p, .i = d.L};
    SX_FX_WAIT(
        c, fenced, &fz, WAIT_MS,
        "timed out waiting until a follower that knows the new epoch refuses the old leader");
    /* Refused, not appended: no entry of the old epoch past the new leader's log. */
    rstate n = state_of(c, d.N, d.p);
    assert_true(n.leo == d.k - 1);
    uint32_t fol[2] = {d.F, d.G};
    for (int j = 0; j < 2; j++) {
        rstate f = state_of(c, fol[j], d.p);
        if (f.leo != n.leo)
            SX_FX_FAIL(c,
                       "worker %u: log end %" PRIu64
                       " after the stale appends, the new leader's %" PRIu64,
                       fol[j], f.leo, n.leo);
        assert_no_entry_below(c, fol[j], d.p, d.k, d.e2);
    }
    sx_err err = {0};
    sx_status st = sx_docs_write_direct(c, d.L, d.p, &err);
    if (st == SX_OK)
        SX_FX_FAIL(c, "the fenced old leader acknowledged a write");

    /* Healed: it follows, and W (never acknowledged) is truncated by the next write. */
    assert_true(sx_cluster_set_faults(c, d.L, ""));
    waitc lf = {.c = c, .p = d.p, .i = d.L, .value = d.e2, .text = "follower"};
    SX_FX_WAIT(c, role_at, &lf, WAIT_MS, "timed out waiting until the old leader follows");
    sx_doc_spec x[NDOCS];
    sx_docs_for_partition(c, d.p, "r4-x", x, NDOCS);
    uint64_t x_first = 0;
    must_put(c, d.F, x, NDOCS, acks, &x_first, NULL);
    /* Balancing may hand the leadership back to the old leader as soon as it
     * is in the ISR again, before any write truncated its tail: W (never
     * acknowledged: its outcome was unknown) is then in a leader's log and
     * commits with that leader's new epoch, whole, before X. Legal; what this
     * row forbids, appends of the stale epoch while fenced, was checked above. */
    part_view now = sx_cluster_part_view_of(c, d.p);
    const bool w_kept = x_first == d.k + NDOCS && now.epoch > d.e2;
    if (!w_kept)
        assert_int_equal(x_first, d.k);
    else
        fprintf(stderr, "row 4: the old leader led again (epoch %" PRIu64 ") and committed W\n",
                now.epoch);
    SX_FX_CHECK_REPLICAS(c, WAIT_MS);
    if (!w_kept)
        assert_no_entry_below(c, d.L, d.p, d.k, d.e2);
    verify_acked(c, acks);
    if (!w_kept)
        assert_absent(c, d.w, NDOCS);
    free(acks);
}

static void test_row5_demoted_leader_applies_nothing_uncommitted(void **state)
{
    sx_cluster *c = *state;
    ack_log *acks = calloc(1, sizeof(*acks));
    deposed d;
    depose_leader(c, 2, "r5", acks, &d);

    /* The new leader commits X at W's offsets. */
    sx_doc_spec x[NDOCS];
    sx_docs_for_partition(c, d.p, "r5-x", x, NDOCS);
    uint64_t x_first = 0, x_last = 0;
    must_put(c, d.N, x, NDOCS, acks, &x_first, &x_last);
    assert_int_equal(x_first, d.k);
    assert_true(state_of(c, d.N, d.p).commit >= x_last);

    /* The old leader rejoins; the commit offsets it hears are past the
     * divergence while its log still holds W there. Watch its documents. */
    assert_true(sx_cluster_set_faults(c, d.L, ""));
    const char *bad = NULL;
    uint64_t end = sx_clock_now_ms() + WAIT_MS;
    bool caught_up = false;
    while (!caught_up && sx_clock_now_ms() < end) {
        if (store_has_any(c, d.L, d.p, d.w, NDOCS, &bad))
            SX_FX_FAIL(c, "the demoted leader applied %s, which was never committed (rule 7)", bad);
        if (!sx_h_alive(c->worker_pid[d.L])) {
            c->worker_pid[d.L] = 0;
            SX_FX_FAIL(c, "the demoted leader died while rejoining");
        }
        rstate l = state_of(c, d.L, d.p);
        caught_up = l.ok && strcmp(l.role, "follower") == 0 && l.applied >= x_last;
        sx_clock_sleep_ms(5);
    }
    if (!caught_up)
        SX_FX_FAIL(c, "the demoted leader did not catch up");
    assert_false(store_has_any(c, d.L, d.p, d.w, NDOCS, &bad));
    SX_FX_CHECK_REPLICAS(c, WAIT_MS);
    verify_acked(c, acks);
    assert_absent(c, d.w, NDOCS);
    free(acks);
}

/* --------------------------------------------------------------- row 7 -- */

typedef struct cut {
    uint32_t p, L, F, G;
    uint64_t c0; /* commit before the cut */
} cut;

/* Cuts the leader of p from its follower F (Appends dropped; it still reaches
 * the coordinator) and writes W1 through it: W1 must not commit, nor be
 * acknowledged, before the coordinator's map has F out of the ISR. */
static void cut_one_follower(sx_cluster *c, uint32_t p, const char *tag, ack_log *acks, cut *k)
{
    part_view v = sx_cluster_part_view_of(c, p);
    assert_true(v.ok && v.leader != NONE);
    k->p = p;
    k->L = v.leader;
    k->F = (k->L + 1) % 3;
    k->G = (k->L + 2) % 3;
    const uint32_t L = k->L, F = k->F, G = k->G;
    char t[64];
    snprintf(t, sizeof(t), "%.30s-base", tag);
    sx_doc_spec base[NDOCS];
    sx_docs_for_partition(c, p, t, base, NDOCS);
    must_put(c, L, base, NDOCS, acks, NULL, NULL);
    k->c0 = state_of(c, L, p).commit;
    const part_view v0 = sx_cluster_part_view_of(c, p);
    assert_int_equal(v0.isr_mask, BIT(L) | BIT(F) | BIT(G));

    char spec[256];
    snprintf(spec, sizeof(spec), "method=Append,peer=%s,drop=1", c->worker_addr[F]);
    assert_true(sx_cluster_set_faults(c, L, spec));
    snprintf(t, sizeof(t), "%.30s-w1", tag);
    bg_put *w1 = bg_start(c, L, p, t, 20000);
    bool early = false;
    uint64_t early_commit = 0;
    while (!atomic_load(&w1->done)) {
        rstate l = state_of(c, L, p);
        part_view m = sx_cluster_part_view_of(c, p); /* read after: the map only moves forward */
        if (l.ok && l.commit > k->c0 && (m.isr_mask & BIT(F)) && m.isr_version == v0.isr_version) {
            early = true;
            early_commit = l.commit;
        }
        sx_clock_sleep_ms(10);
    }
    bg_join(w1);
    if (early)
        SX_FX_FAIL(c,
                   "the commit offset moved to %" PRIu64 " while the coordinator still had the cut "
                   "follower in the ISR (rule 3)",
                   early_commit);
    if (w1->st != SX_OK)
        SX_FX_FAIL(c, "W1 was not acknowledged after the shrink: %s", w1->err.msg);
    v = sx_cluster_part_view_of(c, p);
    assert_true((v.isr_mask & BIT(F)) == 0 && (v.isr_mask & BIT(G)) &&
                v.isr_version > v0.isr_version);
    record(acks, w1->d, NDOCS, w1->resp, NULL, NULL);
    fprintf(stderr, "row 7: W1 acknowledged after %" PRIu64 " ms, once the ISR shrank\n",
            w1->took_ms);
    bg_free(w1);
}

/* Clears the leader's faults; the ISR becomes whole and a write succeeds. */
static void heal_cut(sx_cluster *c, const cut *k, const char *tag, ack_log *acks)
{
    assert_true(sx_cluster_set_faults(c, k->L, ""));
    waitc whole = {.c = c, .p = k->p, .mask = BIT(k->L) | BIT(k->F) | BIT(k->G)};
    SX_FX_WAIT(c, isr_is, &whole, WAIT_MS, "timed out waiting until the followers rejoin the ISR");
    sx_doc_spec w[NDOCS];
    sx_docs_for_partition(c, k->p, tag, w, NDOCS);
    uint64_t last = 0;
    must_put(c, k->F, w, NDOCS, acks, NULL, &last);
    assert_true(state_of(c, k->L, k->p).commit >= last);
    SX_FX_CHECK_REPLICAS(c, WAIT_MS);
    verify_acked(c, acks);
}

static void test_row7_cut_leader_needs_the_coordinator(void **state)
{
    sx_cluster *c = *state;
    ack_log *acks = calloc(1, sizeof(*acks));
    cut k;
    cut_one_follower(c, 3, "r7", acks, &k);
    heal_cut(c, &k, "r7-after", acks);
    free(acks);
}

/* Regression test of a bug it found (fixed: caught-up now needs a recent ack):
 * cut from both followers,
 * the leader drops the second one from the ISR and re-adds it 50-250 ms later
 * although it is still unreachable, then drops it again about a second later,
 * and so on: the expansion check (now sx_repcore_expand; then the replica's
 * caught_up, called by membership) judged it by the leader's last knowledge of its log, s->synced
 * && s->match >= max(hw, epoch_start - 1), and the last follower dropped for lagging always has
 * match == hw: the hw stalled on it, and with the ISR below min_isr it no longer moves. While it is
 * back in the ISR, writes are admitted and time out (DEADLINE_EXCEEDED) instead of failing at once
 * with UNAVAILABLE, the coordinator believes an unreachable replica is in sync, and every flap is a
 * new map version. */
static void test_row7_cut_from_all_refuses_writes(void **state)
{
    sx_cluster *c = *state;
    ack_log *acks = calloc(1, sizeof(*acks));
    cut k;
    cut_one_follower(c, 3, "r7a", acks, &k);
    const uint32_t L = k.L, p = k.p;

    /* Cut from both: the ISR must become {L}, and min_isr refuse writes. */
    const uint64_t c1 = state_of(c, L, p).commit;
    assert_true(sx_cluster_set_faults(c, L, "method=Append,drop=1"));
    sx_doc_spec w2[NDOCS], w3[NDOCS];
    sx_docs_for_partition(c, p, "r7a-w2", w2, NDOCS);
    sx_docs_for_partition(c, p, "r7a-w3", w3, NDOCS);
    sx_err err = {0};
    sx_status st = sx_docs_put(c, L, w2, NDOCS, 10000, NULL, &err);
    if (st != SX_UNAVAILABLE && st != SX_DEADLINE_EXCEEDED)
        SX_FX_FAIL(c, "W2 with the leader cut off: %s (%s)", sx_status_name(st), err.msg);
    waitc alone = {.c = c, .p = p, .mask = BIT(L)};
    SX_FX_WAIT(c, isr_is, &alone, WAIT_MS, "timed out waiting until the ISR shrinks to the leader");
    /* ... and stays so while the followers are unreachable. */
    uint64_t until = sx_clock_now_ms() + 2500, readded = 0;
    for (uint64_t t0 = sx_clock_now_ms(); !readded && sx_clock_now_ms() < until;
         sx_clock_sleep_ms(20)) {
        part_view v = sx_cluster_part_view_of(c, p);
        if (v.ok && v.isr_mask != BIT(L))
            readded = sx_clock_now_ms() - t0;
    }
    if (readded)
        SX_FX_FAIL(c,
                   "KNOWN BUG: an unreachable follower re-entered the ISR %" PRIu64 " ms after the "
                   "leader dropped it (the expansion check trusts the stale match == hw); the ISR "
                   "flaps and writes time out instead of failing with UNAVAILABLE",
                   readded);
    for (uint32_t via = 0; via < 3; via++) {
        st = sx_docs_put(c, via, w3, NDOCS, 5000, NULL, &err);
        if (st != SX_UNAVAILABLE || !strstr(err.msg, "min_isr"))
            SX_FX_FAIL(c,
                       "a write via %u with the ISR {leader}: %s (%s), want UNAVAILABLE naming "
                       "min_isr",
                       via, sx_status_name(st), err.msg);
    }
    rstate l2 = state_of(c, L, p);
    if (l2.commit != c1)
        SX_FX_FAIL(c,
                   "the commit offset moved from %" PRIu64 " to %" PRIu64 " with the ISR {leader}",
                   c1, l2.commit);
    assert_true(l2.leo > c1); /* W2 was appended, not committed */
    heal_cut(c, &k, "r7a-after", acks);
    free(acks);
}

static void test_row7_paused_leader_shrink_refused(void **state)
{
    sx_cluster *c = *state;
    const uint32_t p = 4;
    part_view v0 = sx_cluster_part_view_of(c, p);
    assert_true(v0.ok && v0.leader != NONE);
    const uint32_t L = v0.leader;
    ack_log *acks = calloc(1, sizeof(*acks));
    sx_doc_spec base[NDOCS];
    sx_docs_for_partition(c, p, "r7b-base", base, NDOCS);
    must_put(c, L, base, NDOCS, acks, NULL, NULL);

    sx_h_pause(c->worker_pid[L]);
    waitc mv = {.c = c, .p = p, .i = L, .value = v0.epoch};
    bool moved = sx_h_wait_for(leader_moved, &mv, WAIT_MS);
    part_view v1 = sx_cluster_part_view_of(c, p);
    /* What the old leader would send on waking: shrink to itself at its epoch. */
    int32_t self[1] = {v0.leader_w};
    sx_err err = {0};
    sx_status st1 = change_isr(c, c->worker_id[L], p, v0.epoch, v0.isr_version, self, 1, &err);
    char msg1[256];
    snprintf(msg1, sizeof(msg1), "%s", err.msg);
    /* Even with the current epoch and version it does not lead. */
    int32_t with_new[2] = {v0.leader_w, v1.leader_w};
    sx_status st2 = change_isr(c, c->worker_id[L], p, v1.epoch, v1.isr_version, with_new, 2, &err);
    part_view v2 = sx_cluster_part_view_of(c, p);
    sx_h_resume(c->worker_pid[L]);
    if (!moved)
        SX_FX_FAIL(c, "no new leader while the old one is paused");
    if (st1 != SX_FAILED_PRECONDITION)
        SX_FX_FAIL(c, "the paused old leader's shrink: %s (%s), want FAILED_PRECONDITION",
                   sx_status_name(st1), msg1);
    if (st2 != SX_FAILED_PRECONDITION)
        SX_FX_FAIL(c,
                   "the old leader's change at the current epoch: %s (%s), want "
                   "FAILED_PRECONDITION",
                   sx_status_name(st2), err.msg);
    assert_int_equal(v2.isr_version, v1.isr_version);
    assert_int_equal(v2.epoch, v1.epoch);
    sx_doc_spec after[NDOCS];
    sx_docs_for_partition(c, p, "r7b-after", after, NDOCS);
    must_put(c, running_worker(c, L + 1), after, NDOCS, acks, NULL, NULL);
    SX_FX_CHECK_REPLICAS(c, WAIT_MS);
    verify_acked(c, acks);
    free(acks);
}

/* A leader whose request to drop a lagging follower from the ISR fails
 * (coordinator unreachable for a moment, or a compare-and-set lost to a
 * concurrent ISR change) asks again while the follower stays unreachable;
 * otherwise the ISR keeps a dead weight: nothing commits, and writes are
 * admitted (the ISR looks big enough) and time out (fixed in 848194b). The
 * first requests fail (ChangeIsr dropped on the leader), the coordinator comes
 * back, and the shrink, then the write, must follow. */
static void test_row7_shrink_retried_after_refusal(void **state)
{
    sx_cluster *c = *state;
    const uint32_t p = 5;
    part_view v = sx_cluster_part_view_of(c, p);
    assert_true(v.ok && v.leader != NONE);
    const uint32_t L = v.leader, F = (L + 1) % 3;
    char spec[256], needle[128];
    snprintf(spec, sizeof(spec), "method=Append,peer=%s,drop=1;method=ChangeIsr,drop=1",
             c->worker_addr[F]);
    assert_true(sx_cluster_set_faults(c, L, spec));
    bg_put *w = bg_start(c, L, p, "r7c-w", 25000);
    int32_t fw = -1;
    ClusterMap *m = sx_cluster_map(c);
    assert_non_null(m);
    fw = sx_cluster_index_of(m, c, F);
    sx_rpc_free(&m->base);
    snprintf(needle, sizeof(needle), "partition=%u isr shrink refused follower=%d", p, fw);
    waitc lg = {.c = c, .i = L, .text = needle};
    bool asked = sx_h_wait_for(logged, &lg, WAIT_MS);
    /* The coordinator is reachable again; F is still cut off. */
    snprintf(spec, sizeof(spec), "method=Append,peer=%s,drop=1", c->worker_addr[F]);
    assert_true(sx_cluster_set_faults(c, L, spec));
    waitc out = {.c = c, .p = p, .mask = v.isr_mask & ~BIT(F)};
    bool shrunk = asked && sx_h_wait_for(isr_is, &out, 8000);
    if (!shrunk)
        assert_true(sx_cluster_set_faults(c, L, "")); /* let W finish before failing */
    bg_join(w);
    sx_status wst = w->st;
    uint64_t took = w->took_ms;
    bg_free(w);
    if (!asked)
        SX_FX_FAIL(c, "the leader never asked to drop the cut-off follower");
    if (!shrunk)
        SX_FX_FAIL(c,
                   "after a failed ChangeIsr the leader did not ask again to drop the "
                   "unreachable follower %u from partition %u's ISR; W hung until the fault was "
                   "cleared (%s after %" PRIu64 " ms)",
                   F, p, sx_status_name(wst), took);
    if (wst != SX_OK)
        SX_FX_FAIL(c, "W after the shrink: %s", sx_status_name(wst));
    assert_true(sx_cluster_set_faults(c, L, ""));
    SX_FX_CHECK_REPLICAS(c, WAIT_MS);
}

/* --------------------------------------------------------------- row 8 -- */

static void test_row8_min_isr_with_both_followers_stopped(void **state)
{
    sx_cluster *c = *state;
    const uint32_t p = 6;
    part_view v = sx_cluster_part_view_of(c, p);
    assert_true(v.ok && v.leader != NONE);
    const uint32_t L = v.leader, F = (L + 1) % 3, G = (L + 2) % 3;
    ack_log *acks = calloc(1, sizeof(*acks));
    sx_doc_spec base[NDOCS], w1[NDOCS], w2[NDOCS], w3[NDOCS], q[NDOCS];
    sx_docs_for_partition(c, p, "r8-base", base, NDOCS);
    sx_docs_for_partition(c, p, "r8-w1", w1, NDOCS);
    sx_docs_for_partition(c, p, "r8-w2", w2, NDOCS);
    sx_docs_for_partition(c, p, "r8-w3", w3, NDOCS);
    sx_docs_for_partition(c, (p + 1) % c->opts.partitions, "r8-q", q, NDOCS);
    must_put(c, L, base, NDOCS, acks, NULL, NULL);
    const uint64_t c0 = state_of(c, L, p).commit;

    sx_h_pause(c->worker_pid[F]);
    sx_h_pause(c->worker_pid[G]);
    /* Before the coordinator notices (a lease and a margin): the leader holds
     * the write, nothing commits, the client's deadline passes. */
    sx_err err = {0};
    sx_status st1 = sx_docs_put(c, L, w1, NDOCS, 800, NULL, &err);
    char msg1[256];
    snprintf(msg1, sizeof(msg1), "%s", err.msg);
    rstate l1 = state_of(c, L, p);
    /* After: the ISR is {L}; writes are refused at once. */
    waitc alone = {.c = c, .p = p, .mask = BIT(L)};
    bool shrank = sx_h_wait_for(isr_is, &alone, WAIT_MS);
    sx_status st2 = sx_docs_put(c, L, w2, NDOCS, 5000, NULL, &err);
    char msg2[256];
    snprintf(msg2, sizeof(msg2), "%s", err.msg);
    sx_status st3 =
        sx_docs_put(c, L, q, NDOCS, 5000, NULL, &err); /* another partition, same fate */
    sx_clock_sleep_ms(300);
    rstate l2 = state_of(c, L, p);
    sx_h_resume(c->worker_pid[F]);
    sx_h_resume(c->worker_pid[G]);
    if (st1 != SX_DEADLINE_EXCEEDED)
        SX_FX_FAIL(c, "a write before the coordinator noticed: %s (%s), want DEADLINE_EXCEEDED",
                   sx_status_name(st1), msg1);
    if (!shrank)
        SX_FX_FAIL(c, "the ISR did not shrink to the leader");
    if (st2 != SX_UNAVAILABLE || !strstr(msg2, "min_isr"))
        SX_FX_FAIL(c, "a write with the ISR {leader}: %s (%s), want UNAVAILABLE naming min_isr",
                   sx_status_name(st2), msg2);
    if (st3 != SX_UNAVAILABLE)
        SX_FX_FAIL(c, "a write to another partition: %s, want UNAVAILABLE", sx_status_name(st3));
    if (l1.commit != c0 || l2.commit != c0)
        SX_FX_FAIL(c,
                   "the commit offset moved from %" PRIu64 " to %" PRIu64 " then %" PRIu64
                   " with both followers stopped",
                   c0, l1.commit, l2.commit);
    assert_true(l1.leo > c0); /* W1 was appended and is held */

    waitc whole = {.c = c, .p = p, .mask = BIT(L) | BIT(F) | BIT(G)};
    SX_FX_WAIT(c, isr_is, &whole, WAIT_MS,
               "timed out waiting until the resumed followers rejoin the ISR");
    uint64_t w3_last = 0;
    must_put(c, L, w3, NDOCS, acks, NULL, &w3_last);
    assert_true(state_of(c, L, p).commit >= w3_last);
    SX_FX_CHECK_REPLICAS(c, WAIT_MS);
    verify_acked(c, acks);
    free(acks);
}

/* --------------------------------------------------------------- row 9 -- */

/* The newest LevelDB write-ahead log of worker i's replica of p (the store
 * keeps recent writes there until it compacts). */
static bool newest_wal(const sx_cluster *c, uint32_t i, uint32_t p, char *out, size_t cap)
{
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "ls -t %s/w%u/partitions/p%04u/*.log 2>/dev/null | head -1", c->dir,
             i, p);
    FILE *f = popen(cmd, "r");
    if (!f)
        return false;
    bool ok = fgets(out, (int)cap, f) != NULL;
    pclose(f);
    if (ok)
        out[strcspn(out, "\n")] = '\0';
    return ok && out[0];
}

/* Flips one byte at `at` (a fraction of the file's size). */
static long flip_byte(const char *path, double at)
{
    FILE *f = fopen(path, "r+b");
    if (!f)
        return -1;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    long pos = (long)((double)size * at);
    fseek(f, pos, SEEK_SET);
    int ch = fgetc(f);
    fseek(f, pos, SEEK_SET);
    fputc(ch ^ 0x5a, f);
    fclose(f);
    return pos;
}

static void test_row9_kill_all_then_corrupt_a_replica(void **state)
{
    sx_cluster *c = *state;
    const uint32_t p = 0;
    part_view v = sx_cluster_part_view_of(c, p);
    assert_true(v.ok && v.leader != NONE);
    ack_log *acks = calloc(1, sizeof(*acks));
    for (int r = 0; r < 3; r++) {
        char tag[32];
        snprintf(tag, sizeof(tag), "r9-base%d", r);
        sx_doc_spec d[NDOCS];
        sx_docs_for_partition(c, p, tag, d, NDOCS);
        must_put(c, running_worker(c, (size_t)r), d, NDOCS, acks, NULL, NULL);
    }
    /* Every replica at once: what was acknowledged was durable. */
    for (uint32_t i = 0; i < 3; i++)
        sx_cluster_kill_worker(c, i);
    for (uint32_t i = 0; i < 3; i++)
        assert_true(sx_cluster_start_worker(c, i));
    SX_FX_CHECK_REPLICAS(c, WAIT_MS);
    verify_acked(c, acks);

    /* More writes, in the fresh write-ahead logs the restart began: a small one,
     * then over 64 KiB, so that they span several of LevelDB's 32 KiB log
     * blocks. Then one byte of a follower's log is flipped near the start. */
    v = sx_cluster_part_view_of(c, p);
    const uint32_t L = v.leader, V = (L + 1) % 3;
    static char pad[4097];
    memset(pad, 'x', sizeof(pad) - 1);
    for (int r = 0; r < 5; r++) {
        char tag[32];
        snprintf(tag, sizeof(tag), "r9-more%d", r);
        sx_doc_spec d[NDOCS];
        sx_docs_for_partition(c, p, tag, d, NDOCS);
        for (int k = 0; r > 0 && k < NDOCS; k++)
            d[k].pad = pad;
        must_put(c, L, d, NDOCS, acks, NULL, NULL);
    }
    SX_FX_CHECK_REPLICAS(c, WAIT_MS);
    const rstate before = state_of(c, V, p);
    sx_cluster_kill_worker(c, V);
    char wal[512];
    assert_true(newest_wal(c, V, p, wal, sizeof(wal)));
    long pos = flip_byte(wal, 0.01);
    fprintf(stderr, "row 9: flipped byte %ld of %s\n", pos, wal);
    assert_true(sx_cluster_start_worker(c, V));
    /* Expected: the corruption is detected and the replica repaired from the
     * others (or kept out of the ISR until it is); never in the ISR, and so
     * electable, with a hole. */
    waitc rep = {.c = c, .p = p, .i = V, .value = before.leo};
    bool repaired = sx_h_wait_for(leo_reaches, &rep, 15000);
    char problem[600] = "";
    part_view pv = sx_cluster_part_view_of(c, p);
    rstate vs = state_of(c, V, p);
    if (!vs.ok) {
        char needle[64], line[400] = "";
        snprintf(needle, sizeof(needle), "partition=%u cannot open", p);
        log_line(c, V, needle, line, sizeof(line));
        snprintf(problem, sizeof(problem), "it does not host the partition (%s)", line);
    } else if (!repaired) {
        snprintf(problem, sizeof(problem), "its log ends at %" PRIu64 ", the others' at %" PRIu64,
                 vs.leo, before.leo);
    } else {
        Shardex__Internal__V1__ReadLogRequest req = SHARDEX__INTERNAL__V1__READ_LOG_REQUEST__INIT;
        req.partition = p;
        req.max_entries = 10000;
        ProtobufCMessage *resp = NULL;
        sx_rpc_call_opts o = {.timeout_ms = 5000};
        sx_err err = {0};
        if (sx_rpc_invoke(c->rpc, c->worker_addr[V], ADMIN_SVC, "ReadLog", &req.base, &resp, &o,
                          &err) != SX_OK)
            snprintf(problem, sizeof(problem),
                     "its log has a hole (%s) under leo=%" PRIu64 " applied=%" PRIu64, err.msg,
                     vs.leo, vs.applied);
        sx_rpc_free(resp);
    }
    if (problem[0] && (pv.isr_mask & BIT(V))) {
        /* Rule 5 then lets it lead: the others die, it is the live ISR member. */
        sx_cluster_kill_worker(c, L);
        sx_cluster_kill_worker(c, (L + 2) % 3);
        waitc vl = {.c = c, .p = p, .i = V};
        bool led = sx_h_wait_for(leader_is, &vl, 10000);
        SX_FX_FAIL(c,
                   "KNOWN BUG: after one flipped byte in its write-ahead log (LevelDB skips a "
                   "corrupt block, paranoid checks off), worker %u restarted, stayed in partition "
                   "%u's ISR and %s, although %s",
                   V, p, led ? "was elected leader once the others died" : "(was not elected)",
                   problem);
    }
    if (problem[0])
        SX_FX_FAIL(c, "the corrupted replica was not repaired: %s", problem);
    SX_FX_CHECK_REPLICAS(c, WAIT_MS);
    rstate after = state_of(c, V, p);
    assert_true(after.leo >= before.leo);
    verify_acked(c, acks);
    free(acks);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_row1_restarted_follower_keeps_acked_tail, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_row2_unsynced_follower_restarts_first, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_row4_stale_leader_appends_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_row5_demoted_leader_applies_nothing_uncommitted, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_row7_cut_leader_needs_the_coordinator, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_row7_cut_from_all_refuses_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_row7_paused_leader_shrink_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_row7_shrink_retried_after_refusal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_row8_min_isr_with_both_followers_stopped, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_row9_kill_all_then_corrupt_a_replica, setup, teardown),
    };
    sx_fx_filter_from_env();
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    sx_rpc_wait_shutdown(5000);
    return rc;
}
