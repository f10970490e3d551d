/* checker.c: replica logs and documents compared through WorkerAdmin. */
#include "checker.h"

#include "clock.h"
#include "harness.h"
#include "mem.h"
#include "shardex/internal/v1/replication.pb-c.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define ADMIN_SVC (&shardex__internal__v1__worker_admin__descriptor)

typedef Shardex__Internal__V1__WorkerStatusResponse WorkerStatus;
typedef Shardex__Internal__V1__ReplicaState ReplicaState;

static uint32_t test_worker_of(sx_cluster *c, const Shardex__Internal__V1__ClusterMap *m, int32_t w)
{
    for (uint32_t i = 0; i < c->nworkers; i++)
        if (sx_cluster_index_of(m, c, i) == w)
            return i;
    return UINT32_MAX;
}

static const ReplicaState *state_of(const WorkerStatus *s, uint32_t p)
{
    for (size_t k = 0; s && k < s->n_replicas; k++)
        if (s->replicas[k]->partition == p)
            return s->replicas[k];
    return NULL;
}

/* Every partition settled: leader live, ISR = replicas, offsets equal. */
static bool settled(void *arg)
{
    sx_cluster *c = arg;
    Shardex__Internal__V1__ClusterMap *m = sx_cluster_map(c);
    if (!m)
        return false;
    WorkerStatus *st[SX_TEST_MAX_WORKERS] = {0};
    for (uint32_t i = 0; i < c->nworkers; i++)
        if (c->worker_pid[i] > 0)
            st[i] = sx_cluster_worker_status(c, i);
    bool ok = true;
    /* Every worker has heard the latest map. */
    for (uint32_t i = 0; i < c->nworkers && ok; i++)
        ok = c->worker_pid[i] <= 0 || (st[i] && st[i]->map_version == m->version);
    for (size_t p = 0; p < m->n_partitions && ok; p++) {
        const Shardex__Internal__V1__LogPartition *lp = m->partitions[p];
        ok = lp->leader >= 0 && lp->n_isr == lp->n_replicas;
        uint32_t li = ok ? test_worker_of(c, m, lp->leader) : UINT32_MAX;
        const ReplicaState *ls = li < c->nworkers ? state_of(st[li], (uint32_t)p) : NULL;
        ok = ok && ls && strcmp(ls->role, "leader") == 0 && ls->epoch == lp->epoch &&
             ls->commit_offset == ls->log_end_offset && ls->applied_offset == ls->commit_offset;
        for (size_t k = 0; ok && k < lp->n_replicas; k++) {
            uint32_t fi = test_worker_of(c, m, lp->replicas[k]);
            const ReplicaState *fs = fi < c->nworkers ? state_of(st[fi], (uint32_t)p) : NULL;
            ok = fs && fs->log_end_offset == ls->log_end_offset &&
                 fs->applied_offset == ls->commit_offset;
        }
    }
    for (uint32_t i = 0; i < c->nworkers; i++)
        sx_rpc_free(st[i] ? &st[i]->base : NULL);
    sx_rpc_free(&m->base);
    return ok;
}

static Shardex__Internal__V1__ReadLogResponse *read_log(sx_cluster *c, uint32_t i, uint32_t p,
                                                        uint64_t from)
{
    Shardex__Internal__V1__ReadLogRequest req = SHARDEX__INTERNAL__V1__READ_LOG_REQUEST__INIT;
    req.partition = p;
    req.from_offset = from;
    req.max_entries = 5000;
    ProtobufCMessage *resp = NULL;
    sx_rpc_call_opts o = {.timeout_ms = 10000, .idempotent = true};
    if (sx_rpc_invoke(c->rpc, c->worker_addr[i], ADMIN_SVC, "ReadLog", &req.base, &resp, &o,
                      NULL) != SX_OK)
        return NULL;
    return (void *)resp;
}

/* A replica's whole log as (epoch, op) pairs, offsets start..start+n-1
 * (start is 1 unless log retention trimmed it). */
typedef struct log_copy {
    uint64_t start;
    size_t n;
    uint64_t *epoch;
    ProtobufCBinaryData *op;
    Shardex__Internal__V1__ReadLogResponse **chunks;
    size_t nchunks;
} log_copy;

static bool fetch_log(sx_cluster *c, uint32_t i, uint32_t p, log_copy *out)
{
    memset(out, 0, sizeof(*out));
    for (;;) {
        /* From 0 first: the log's start, whatever retention left. */
        Shardex__Internal__V1__ReadLogResponse *r =
            read_log(c, i, p, out->nchunks ? out->start + out->n : 0);
        if (!r)
            return false;
        if (out->nchunks == 0)
            out->start = r->log_start_offset ? r->log_start_offset : 1;
        out->chunks = sx_realloc(out->chunks, (out->nchunks + 1) * sizeof(*out->chunks));
        out->chunks[out->nchunks++] = r;
        out->epoch = sx_realloc(out->epoch, (out->n + r->n_entries + 1) * sizeof(uint64_t));
        out->op = sx_realloc(out->op, (out->n + r->n_entries + 1) * sizeof(*out->op));
        for (size_t k = 0; k < r->n_entries; k++) {
            out->epoch[out->n] = r->entries[k]->epoch;
            out->op[out->n] = r->entries[k]->op;
            out->n++;
        }
        if (r->n_entries == 0 || out->start + out->n - 1 >= r->log_end_offset)
            return true;
    }
}

static void free_log(log_copy *l)
{
    for (size_t k = 0; k < l->nchunks; k++)
        sx_rpc_free(&l->chunks[k]->base);
    free(l->chunks);
    free(l->epoch);
    free(l->op);
}

typedef struct idoff {
    const char *id;
    uint64_t off;
    Shardex__Internal__V1__LogOp *op;
} idoff;

static int idoff_cmp(const void *a, const void *b)
{
    const idoff *x = a, *y = b;
    int c = strcmp(x->id, y->id);
    return c ? c : (x->off < y->off ? -1 : x->off > y->off);
}

/* A replica's documents equal the leader's, byte for byte and version for
 * version, at the same applied offset: what can be checked once log
 * retention removed the log's beginning (no replay from offset 1). */
static bool docs_match_leader(sx_cluster *c, uint32_t i, uint32_t li, uint32_t p, char *why,
                              size_t cap)
{
    Shardex__Internal__V1__ScanDocsRequest req = SHARDEX__INTERNAL__V1__SCAN_DOCS_REQUEST__INIT;
    req.partition = p;
    ProtobufCMessage *resp[2] = {NULL, NULL};
    uint32_t who[2] = {i, li};
    sx_rpc_call_opts o = {.timeout_ms = 10000, .idempotent = true};
    bool ok = true;
    for (int k = 0; k < 2 && ok; k++)
        if (sx_rpc_invoke(c->rpc, c->worker_addr[who[k]], ADMIN_SVC, "ScanDocs", &req.base,
                          &resp[k], &o, NULL) != SX_OK) {
            snprintf(why, cap, "worker %u partition %u: ScanDocs failed", who[k], p);
            ok = false;
        }
    Shardex__Internal__V1__ScanDocsResponse *a = (void *)resp[0], *b = (void *)resp[1];
    if (ok && (a->applied_offset != b->applied_offset || a->n_docs != b->n_docs)) {
        snprintf(why, cap,
                 "worker %u partition %u: %zu documents at applied %" PRIu64
                 ", the leader %zu at %" PRIu64,
                 i, p, a->n_docs, a->applied_offset, b->n_docs, b->applied_offset);
        ok = false;
    }
    for (size_t d = 0; ok && d < a->n_docs; d++) {
        size_t x = protobuf_c_message_get_packed_size(&a->docs[d]->base);
        size_t y = protobuf_c_message_get_packed_size(&b->docs[d]->base);
        uint8_t *bx = sx_malloc(x + 1), *by = sx_malloc(y + 1);
        protobuf_c_message_pack(&a->docs[d]->base, bx);
        protobuf_c_message_pack(&b->docs[d]->base, by);
        if (x != y || memcmp(bx, by, x) != 0) {
            snprintf(why, cap, "worker %u partition %u: document %s differs from the leader's", i,
                     p, a->docs[d]->doc ? a->docs[d]->doc->id : "?");
            ok = false;
        }
        free(bx);
        free(by);
    }
    sx_rpc_free(resp[0]);
    sx_rpc_free(resp[1]);
    return ok;
}

/* Replays log entries 1..applied and compares with the documents stored. */
static bool docs_match_replay(sx_cluster *c, uint32_t i, uint32_t p, const log_copy *l, char *why,
                              size_t cap)
{
    Shardex__Internal__V1__ScanDocsRequest req = SHARDEX__INTERNAL__V1__SCAN_DOCS_REQUEST__INIT;
    req.partition = p;
    ProtobufCMessage *resp = NULL;
    sx_rpc_call_opts o = {.timeout_ms = 10000, .idempotent = true};
    if (sx_rpc_invoke(c->rpc, c->worker_addr[i], ADMIN_SVC, "ScanDocs", &req.base, &resp, &o,
                      NULL) != SX_OK) {
        snprintf(why, cap, "worker %u partition %u: ScanDocs failed", i, p);
        return false;
    }
    Shardex__Internal__V1__ScanDocsResponse *sd = (void *)resp;
    uint64_t upto = sd->applied_offset;
    if (upto > l->n) {
        snprintf(why, cap, "worker %u partition %u: applied %" PRIu64 " beyond its log %zu", i, p,
                 upto, l->n);
        sx_rpc_free(resp);
        return false;
    }
    /* Every write of 1..upto, sorted by (id, offset): the last of each id wins. */
    idoff *w = sx_calloc(upto + 1, sizeof(*w));
    bool ok = true;
    for (uint64_t off = 1; off <= upto; off++) {
        w[off - 1].op =
            shardex__internal__v1__log_op__unpack(NULL, l->op[off - 1].len, l->op[off - 1].data);
        if (!w[off - 1].op) {
            snprintf(why, cap, "worker %u partition %u: entry %" PRIu64 " does not decode", i, p,
                     off);
            ok = false;
            w[off - 1].id = "";
            continue;
        }
        /* Index markers touch no document: they sort as id "" (no id is empty). */
        bool put = w[off - 1].op->op_case == SHARDEX__INTERNAL__V1__LOG_OP__OP_PUT;
        bool del = w[off - 1].op->op_case == SHARDEX__INTERNAL__V1__LOG_OP__OP_DELETE;
        w[off - 1].id = put ? w[off - 1].op->put->id : del ? w[off - 1].op->delete_ : "";
        w[off - 1].off = off;
    }
    qsort(w, upto, sizeof(*w), idoff_cmp);
    size_t live = 0;
    for (size_t k = 0; ok && k < upto; k++) {
        if (k + 1 < upto && strcmp(w[k].id, w[k + 1].id) == 0)
            continue; /* not the last write of this id */
        if (!w[k].op || w[k].op->op_case != SHARDEX__INTERNAL__V1__LOG_OP__OP_PUT)
            continue; /* deleted */
        live++;
        const Shardex__Internal__V1__StoredDoc *found = NULL;
        for (size_t d = 0; d < sd->n_docs && !found; d++)
            if (strcmp(sd->docs[d]->doc->id, w[k].id) == 0)
                found = sd->docs[d];
        if (!found || found->version != w[k].off) {
            snprintf(why, cap,
                     "worker %u partition %u: document %s: stored version %" PRIu64
                     ", the log's last write is at %" PRIu64,
                     i, p, w[k].id, found ? found->version : 0, w[k].off);
            ok = false;
            break;
        }
        size_t a = protobuf_c_message_get_packed_size(&found->doc->base);
        size_t b = protobuf_c_message_get_packed_size(&w[k].op->put->base);
        uint8_t *x = sx_malloc(a + 1), *y = sx_malloc(b + 1);
        protobuf_c_message_pack(&found->doc->base, x);
        protobuf_c_message_pack(&w[k].op->put->base, y);
        if (a != b || memcmp(x, y, a) != 0) {
            snprintf(why, cap, "worker %u partition %u: document %s differs from the log", i, p,
                     w[k].id);
            ok = false;
        }
        free(x);
        free(y);
    }
    if (ok && live != sd->n_docs) {
        snprintf(why, cap, "worker %u partition %u: %zu documents stored, the log implies %zu", i,
                 p, sd->n_docs, live);
        ok = false;
    }
    for (size_t k = 0; k < upto; k++)
        if (w[k].op)
            shardex__internal__v1__log_op__free_unpacked(w[k].op, NULL);
    free(w);
    sx_rpc_free(resp);
    return ok;
}

bool sx_check_replicas(sx_cluster *c, uint64_t timeout_ms, char *why, size_t cap)
{
    if (!sx_h_wait_for(settled, c, timeout_ms)) {
        snprintf(why, cap, "the cluster did not settle within %" PRIu64 " ms", timeout_ms);
        return false;
    }
    Shardex__Internal__V1__ClusterMap *m = sx_cluster_map(c);
    if (!m) {
        snprintf(why, cap, "no map");
        return false;
    }
    bool ok = true;
    for (uint32_t p = 0; p < m->n_partitions && ok; p++) {
        const Shardex__Internal__V1__LogPartition *lp = m->partitions[p];
        uint32_t li = test_worker_of(c, m, lp->leader);
        log_copy lead;
        if (li >= c->nworkers || !fetch_log(c, li, p, &lead)) {
            snprintf(why, cap, "partition %u: cannot read the leader's log", p);
            ok = false;
            break;
        }
        for (size_t k = 0; ok && k < lp->n_replicas; k++) {
            uint32_t fi = test_worker_of(c, m, lp->replicas[k]);
            log_copy f;
            if (fi >= c->nworkers || !fetch_log(c, fi, p, &f)) {
                snprintf(why, cap, "partition %u: cannot read a replica's log", p);
                ok = false;
                break;
            }
            uint64_t fend = f.start + f.n - 1, lend = lead.start + lead.n - 1;
            if (fend != lend) {
                snprintf(why, cap,
                         "partition %u: worker %u's log ends at %" PRIu64 ", the leader's %" PRIu64,
                         p, fi, fend, lend);
                ok = false;
            }
            /* Where both still hold entries (retention may have trimmed
             * them to different starts). */
            uint64_t from = f.start > lead.start ? f.start : lead.start;
            for (uint64_t o = from; ok && o <= fend; o++) {
                size_t a = (size_t)(o - f.start), b = (size_t)(o - lead.start);
                if (f.epoch[a] != lead.epoch[b] || f.op[a].len != lead.op[b].len ||
                    memcmp(f.op[a].data, lead.op[b].data, f.op[a].len) != 0) {
                    snprintf(why, cap,
                             "partition %u: worker %u differs from the leader at offset "
                             "%" PRIu64 " (epoch %" PRIu64 " vs %" PRIu64 ")",
                             p, fi, o, f.epoch[a], lead.epoch[b]);
                    ok = false;
                }
            }
            if (ok && f.start == 1)
                ok = docs_match_replay(c, fi, p, &f, why, cap);
            else if (ok)
                ok = docs_match_leader(c, fi, li, p, why, cap);
            free_log(&f);
        }
        free_log(&lead);
    }
    sx_rpc_free(&m->base);
    return ok;
}

sx_cluster *sx_cluster_start_settled(const sx_cluster_opts *opts, uint64_t timeout_ms)
{
    sx_cluster *c = sx_calloc(1, sizeof(*c));
    char why[256] = "the processes did not start";
    if (sx_cluster_start(c, opts) && sx_check_replicas(c, timeout_ms, why, sizeof(why)))
        return c;
    fprintf(stderr, "cluster start: %s\n", why);
    sx_cluster_dump_logs(c);
    sx_cluster_stop(c);
    free(c);
    return NULL;
}

bool sx_check_verify(sx_cluster *c, uint64_t timeout_ms, char *why, size_t cap)
{
    char bin[512], logf[600];
    sx_cluster_bin("client/shardex", bin, sizeof(bin));
    if (access(bin, X_OK) != 0) {
        snprintf(why, cap, "%s is not built", bin);
        return false;
    }
    uint32_t via = 0;
    while (via < c->nworkers && c->worker_pid[via] <= 0)
        via++;
    if (via == c->nworkers) {
        snprintf(why, cap, "no worker is running");
        return false;
    }
    snprintf(logf, sizeof(logf), "%s/verify.log", c->dir);
    char *argv[] = {bin, "--server", c->worker_addr[via], "verify", NULL};
    /* Exit 3: a view could not be read as asked (the map moved, a log was
     * trimmed while read): verify says to run it again, so do, until the
     * deadline. Differences (exit 1) are final. */
    uint64_t deadline = sx_clock_now_ms() + timeout_ms;
    int status;
    for (;;) {
        uint64_t now = sx_clock_now_ms();
        pid_t pid = sx_h_spawn(argv, logf);
        status = sx_h_wait_exit(pid, deadline > now ? deadline - now : 1);
        if (status == -1)
            sx_h_kill9(pid);
        if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 3 ||
            sx_clock_now_ms() + 500 >= deadline)
            break;
        sx_clock_sleep_ms(500);
    }
    if (status == -1) {
        sx_h_dump_log(logf, 40);
        snprintf(why, cap, "shardex verify did not finish in %" PRIu64 " ms", timeout_ms);
        return false;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        sx_h_dump_log(logf, 40);
        snprintf(why, cap, "shardex verify found differences or failed (status %d)", status);
        return false;
    }
    return true;
}
