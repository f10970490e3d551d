/* wl_check.c: `sx_chaos_workload check`: the driver of the checkers. Waits
 * for a settled cluster (when asked), reads every key of the history with its
 * ok tokens as `after`, queries the indexes in MODE_LOCAL and MODE_GLOBAL
 * after every partition's commit offset, hands all of it to the judge
 * (wl_judge.h), runs `shardex verify` (when asked), and prints.
 *
 * It reads only: a check can be run again, and against a cluster that is
 * still taking writes it would report their effects as violations.
 */
#include "wl.h"

#include "clock.h"
#include "mem.h"
#include "wl_history.h"
#include "wl_judge.h"

#include <inttypes.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

/* Hits per query page (the contract allows up to 10000). */
#define PAGE_LIMIT 500
/* Between two looks at the cluster while settling. */
#define SETTLE_POLL_MS 200
/* How long a settled status must keep the same commit offsets: longer than a
 * worker's report interval (a quarter of the lease: 4 s leases and below). */
#define SETTLE_QUIET_MS 1000

extern char **environ;

/* ---------------------------------------------------------------- settle -- */

/* Every log partition led, available, every replica (R of them) in the ISR
 * and applied up to the commit offset. Adds the commits into *digest. */
static bool logs_settled(const Shardex__V1__ClusterStatusResponse *s, uint64_t *digest, char *why,
                         size_t cap)
{
    for (size_t i = 0; i < s->n_log_partitions; i++) {
        const Shardex__V1__LogPartitionStatus *p = s->log_partitions[i];
        size_t in_sync = 0, applied = 0;
        for (size_t r = 0; r < p->n_replicas; r++) {
            in_sync += p->replicas[r]->in_sync;
            applied += p->replicas[r]->applied_offset == p->commit_offset;
        }
        *digest = *digest * 1000003u + p->commit_offset;
        if (!p->leader[0] || !p->available || in_sync < s->replication || in_sync < p->n_replicas ||
            applied < p->n_replicas)
            return snprintf(why, cap,
                            "partition %u: leader \"%s\", ISR %zu of %zu (R=%u), %zu applied to "
                            "commit %" PRIu64,
                            p->partition, p->leader, in_sync, p->n_replicas, s->replication,
                            applied, p->commit_offset),
                   false;
    }
    return true;
}

static bool ours(const char *name, const char *prefix)
{
    size_t n = strlen(prefix);
    return strncmp(name, prefix, n) == 0 && name[n] == '_';
}

/* Both indexes READY; each of their term partitions owned, ready, caught up. */
static bool indexes_settled(const Shardex__V1__ClusterStatusResponse *s, const char *prefix,
                            char *why, size_t cap)
{
    for (size_t i = 0; i < s->n_term_partitions; i++) {
        const Shardex__V1__TermPartitionStatus *t = s->term_partitions[i];
        if (ours(t->index, prefix) && (!t->owner[0] || !t->ready || t->lag_offsets))
            return snprintf(why, cap, "index %s term partition %u: owner \"%s\", %s, lag %" PRIu64,
                            t->index, t->term_partition, t->owner, t->ready ? "ready" : "not ready",
                            t->lag_offsets),
                   false;
    }
    size_t n = 0;
    for (size_t i = 0; i < s->n_indexes; i++) {
        const Shardex__V1__IndexInfo *x = s->indexes[i];
        if (!x->spec || !ours(x->spec->name, prefix))
            continue;
        n++;
        if (x->state != SHARDEX__V1__INDEX_STATE__INDEX_STATE_READY)
            return snprintf(why, cap, "index %s is not READY", x->spec->name), false;
    }
    if (n < 2)
        return snprintf(why, cap, "%zu of the indexes %s_v, %s_g exist", n, prefix, prefix), false;
    return true;
}

/* Polls ClusterStatus until it shows a settled cluster (logs_settled,
 * indexes_settled) with the same commit offsets for SETTLE_QUIET_MS (the
 * status is what workers last reported), or settle_ms passes: then an E
 * violation. */
static void settle(sx_client *cl, sx_judge *j, const char *prefix, uint64_t settle_ms)
{
    uint64_t t0 = sx_clock_now_ms(), since = 0, last = 0;
    char why[256] = "no answer yet";
    for (;;) {
        Shardex__V1__ClusterStatusResponse *s = NULL;
        sx_err err = {0};
        uint64_t digest = 0, now = sx_clock_now_ms();
        bool ok = false;
        if (sx_client_status(cl, &s, &err) == SX_OK)
            ok = logs_settled(s, &digest, why, sizeof(why)) &&
                 indexes_settled(s, prefix, why, sizeof(why));
        else
            snprintf(why, sizeof(why), "ClusterStatus: %s", err.msg);
        sx_client_free(s);
        if (!ok || !since || digest != last)
            since = ok ? now : 0;
        last = digest;
        if (since && now - since >= SETTLE_QUIET_MS) {
            printf("settled after %" PRIu64 " ms\n", now - t0);
            return;
        }
        if (now - t0 >= settle_ms) {
            sx_judge_add(j, SX_JUDGE_E, "cluster", "not settled after %" PRIu64 " ms: %s", now - t0,
                         ok ? "commit offsets still moving" : why);
            return;
        }
        sx_clock_sleep_ms(SETTLE_POLL_MS);
    }
}

/* ----------------------------------------------------------------- reads -- */

/* Adds every log partition's commit offset (as last reported) to all, and
 * writes the address of a live worker (for verify) into addr, or "".
 * Returns the number of log partitions (0: no status). */
static uint32_t add_commits(sx_client *cl, sx_judge *j, sx_token_set *all, char *addr, size_t cap)
{
    Shardex__V1__ClusterStatusResponse *s = NULL;
    sx_err err = {0};
    addr[0] = '\0';
    if (sx_client_status(cl, &s, &err) != SX_OK) {
        sx_judge_add(j, SX_JUDGE_E, "cluster", "ClusterStatus: %s", err.msg);
        return 0;
    }
    uint32_t partitions = (uint32_t)s->n_log_partitions;
    for (size_t i = 0; i < s->n_log_partitions; i++) {
        Shardex__V1__WriteToken t = SHARDEX__V1__WRITE_TOKEN__INIT;
        t.partition = s->log_partitions[i]->partition;
        t.offset = s->log_partitions[i]->commit_offset;
        if (t.offset)
            sx_token_set_add(all, &t);
    }
    for (size_t i = 0; i < s->n_workers && !addr[0]; i++)
        if (s->workers[i]->alive)
            snprintf(addr, cap, "%s", s->workers[i]->address);
    sx_client_free(s);
    return partitions;
}

/* Gets every key after its ok tokens and the commit offsets in all (a token
 * set: the highest offset per partition counts); adds the ok tokens and each
 * document's version to all, so that the queries see every write the reads
 * saw, unknown ones included. */
static void read_docs(sx_client *cl, sx_judge *j, sx_token_set *all)
{
    for (size_t i = 0; i < sx_judge_nkeys(j); i++) {
        sx_token_set ts = {0};
        sx_judge_key_tokens(j, i, &ts);
        for (size_t t = 0; t < all->n; t++)
            sx_token_set_add(&ts, all->ptrs[t]);
        Shardex__V1__GetResponse *r = NULL;
        sx_err err = {0};
        if (sx_client_get(cl, sx_judge_key(j, i), ts.ptrs, ts.n, &r, &err) == SX_OK) {
            sx_judge_doc(j, i, r);
            if (r->found && r->version)
                sx_token_set_add(&ts, r->version);
        } else {
            sx_judge_add(j, SX_JUDGE_E, sx_judge_key(j, i), "Get: %s", err.msg);
        }
        for (size_t t = 0; t < ts.n; t++)
            sx_token_set_add(all, ts.ptrs[t]);
        sx_client_free(r);
        sx_token_set_free(&ts);
    }
}

/* Every page of one query into hits; *served: the mode the pages said. */
static sx_status query_all(sx_client *cl, const sx_judge_query *q, Shardex__V1__Mode mode,
                           const sx_token_set *after, sx_judge_hits *hits,
                           Shardex__V1__Mode *served, sx_err *err)
{
    Shardex__V1__Value eq = SHARDEX__V1__VALUE__INIT;
    eq.kind_case = SHARDEX__V1__VALUE__KIND_S;
    eq.s = (char *)q->value;
    Shardex__V1__QueryRequest req = SHARDEX__V1__QUERY_REQUEST__INIT;
    req.index = (char *)q->index;
    req.match_case = SHARDEX__V1__QUERY_REQUEST__MATCH_EQ;
    req.eq = &eq;
    req.mode = mode;
    req.limit = PAGE_LIMIT;
    req.after = after->ptrs;
    req.n_after = after->n;
    uint8_t *page = NULL;
    sx_status st;
    do {
        Shardex__V1__QueryResponse *r = NULL;
        st = sx_client_query(cl, &req, &r, err);
        if (st != SX_OK)
            break;
        for (size_t i = 0; i < r->n_hits; i++) {
            const Shardex__V1__Value *v = r->hits[i]->value;
            bool s = v && v->kind_case == SHARDEX__V1__VALUE__KIND_S;
            sx_judge_hits_add(hits, r->hits[i]->id, s ? v->s : NULL);
        }
        *served = r->mode;
        free(page); /* the request's token: no longer needed */
        size_t len = r->next_page_token.len;
        page = len ? sx_memdup(r->next_page_token.data, len) : NULL;
        req.page_token = (ProtobufCBinaryData){.len = len, .data = page};
        sx_client_free(r);
    } while (req.page_token.len);
    free(page);
    return st;
}

/* Runs every query of the judge in both modes. */
static void run_queries(sx_client *cl, sx_judge *j, const sx_token_set *after, uint32_t sample)
{
    static const Shardex__V1__Mode modes[] = {SHARDEX__V1__MODE__MODE_LOCAL,
                                              SHARDEX__V1__MODE__MODE_GLOBAL};
    sx_judge_query *q = NULL;
    size_t n = sx_judge_queries(j, sample, &q);
    for (size_t i = 0; i < n; i++) {
        for (size_t m = 0; m < 2; m++) {
            sx_judge_hits hits = {0};
            Shardex__V1__Mode served = modes[m];
            sx_err err = {0};
            if (query_all(cl, &q[i], modes[m], after, &hits, &served, &err) == SX_OK)
                sx_judge_query_result(j, &q[i], modes[m], served, &hits);
            else
                sx_judge_add(j, SX_JUDGE_E, q[i].index, "Query %s=\"%s\" mode %s: %s", q[i].index,
                             q[i].value, m ? "GLOBAL" : "LOCAL", err.msg);
            sx_judge_hits_free(&hits);
        }
    }
    printf("queries: %zu values, LOCAL and GLOBAL\n", n);
    free(q);
}

/* ---------------------------------------------------------------- verify -- */

/* Runs `bin --server addr verify` (its report on this process's stdout) and
 * adds a V violation when it exits non-zero. */
static void run_verify(sx_judge *j, const char *bin, const char *addr)
{
    char *argv[] = {(char *)bin, "--server", (char *)addr, "verify", NULL};
    pid_t pid;
    fflush(stdout);
    int rc = posix_spawn(&pid, bin, NULL, NULL, argv, environ);
    if (rc != 0) {
        sx_judge_add(j, SX_JUDGE_V, "verify", "%s could not be started: %s", bin, strerror(rc));
        return;
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0)
        ;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        sx_judge_add(j, SX_JUDGE_V, "verify", "`%s --server %s verify` %s %d", bin, addr,
                     WIFEXITED(status) ? "exited" : "was killed by signal",
                     WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
}

/* ----------------------------------------------------------------- check -- */

int sx_wl_check(const sx_wl_cfg *cfg)
{
    sx_history h;
    sx_err err = {0};
    if (sx_hist_read(cfg->history, &h, &err) != SX_OK) {
        fprintf(stderr, "sx_chaos_workload check: %s\n", err.msg);
        return SX_WL_EXIT_IO;
    }
    sx_client *cl = NULL;
    if (sx_wl_client_open(cfg, &cl, &err) != SX_OK) {
        fprintf(stderr, "sx_chaos_workload check: %s\n", err.msg);
        sx_hist_free(&h);
        return SX_WL_EXIT_USAGE;
    }
    printf("history: %zu operations, run=%s seed=%" PRIu64 " writers=%u\n", h.n, h.run, h.seed,
           h.writers);
    sx_judge *j = sx_judge_create(&h);
    if (cfg->settle_ms)
        settle(cl, j, h.index, cfg->settle_ms);
    sx_token_set all = {0};
    char addr[256];
    uint32_t partitions = add_commits(cl, j, &all, addr, sizeof(addr));
    read_docs(cl, j, &all);
    sx_judge_check_docs(j);
    printf("documents: %zu keys read\n", sx_judge_nkeys(j));
    run_queries(cl, j, &all, cfg->sample);
    if (cfg->verify) {
        if (!addr[0]) /* no live worker in the status: the first of --servers */
            snprintf(addr, sizeof(addr), "%.*s", (int)strcspn(cfg->servers, ","), cfg->servers);
        run_verify(j, cfg->verify, addr);
    }
    sx_judge_print(j, cfg->max_rows, stdout);
    sx_judge_print_availability(&h, partitions, stdout);
    int code = sx_judge_exit_code(j);
    sx_token_set_free(&all);
    sx_judge_free(j);
    sx_client_close(cl);
    sx_hist_free(&h);
    return code;
}
