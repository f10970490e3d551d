/* verify.c: see verify.h.
 *
 * The run keeps the served answers in `check`s (one per view: the documents of
 * one replica of a log partition, a local index in one replica, a term
 * partition of a global index), replays each log partition once per phase
 * (from its leader, for the checks of all its replicas) with a sorted list of
 * `probe`s (position, check) to stop at, and turns what differs into `diff`
 * rows of the result, which the printers read.
 */
#include "verify.h"

#include "flags.h"
#include "hash.h"
#include "hmap.h"
#include "partmap.h"
#include "rpc.h"

#include "shardex/internal/v1/coordinator.pb-c.h"
#include "shardex/internal/v1/index.pb-c.h"
#include "shardex/internal/v1/replication.pb-c.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* Entries per ReadLog call unless the options say otherwise. */
#define VFY_LOG_PAGE 5000u
/* Receive limit of the tool's client: digests with entries and log pages are large. */
#define VFY_MAX_MESSAGE (64u * 1024 * 1024)
/* Differences kept for the report unless --max-diffs says otherwise. */
#define VFY_DEFAULT_MAX_DIFFS 1000u

/* =================================================================== run == */

/* Every kind of difference the report names: X(enum, human, json, class). */
#define DIFF_KINDS(X)                                                                              \
    X(D_MISSING, "MISSING", "missing", CLS_MISSING)                                                \
    X(D_EXTRA, "EXTRA", "extra", CLS_EXTRA)                                                        \
    X(D_WRONG_VERSION, "WRONG-VERSION", "wrong_version", CLS_WRONG)                                \
    X(D_WRONG_CONTENT, "WRONG-CONTENT", "wrong_content", CLS_WRONG)                                \
    X(D_NOT_SHIPPED, "NOT-SHIPPED", "not_shipped", CLS_OTHER)                                      \
    X(D_WRONG_ACTIVE, "WRONG-ACTIVE", "wrong_active", CLS_OTHER)                                   \
    X(D_DIGEST, "DIGEST", "digest", CLS_OTHER)                                                     \
    X(D_BAD_ANSWER, "BAD-ANSWER", "bad_answer", CLS_OTHER)                                         \
    X(D_BAD_LOG, "BAD-LOG", "bad_log", CLS_OTHER)                                                  \
    X(D_SHORT_LOG, "SHORT-LOG", "short_log", CLS_OTHER)                                            \
    X(D_SPEC, "SPEC-MISMATCH", "spec_mismatch", CLS_OTHER)                                         \
    X(D_DIVERGED, "DIVERGED", "diverged", CLS_OTHER)                                               \
    X(D_SALT_ROW, "SALT-ROW", "salt_row", CLS_OTHER)

/* Summary classes. */
enum { CLS_MISSING, CLS_EXTRA, CLS_WRONG, CLS_OTHER };

typedef enum {
#define DK_ENUM(e, human, json, cls) e,
    DIFF_KINDS(DK_ENUM)
#undef DK_ENUM
} diff_kind;

static const struct {
    const char *human, *json;
    int cls;
} diff_kinds[] = {
#define DK_ROW(e, human, json, cls) {human, json, cls},
    DIFF_KINDS(DK_ROW)
#undef DK_ROW
};

/* sx_replay_kind and the first four diff kinds are the same list. */
static diff_kind from_vfy_kind(sx_replay_kind k)
{
    switch (k) {
    case SX_REPLAY_MISSING:
        return D_MISSING;
    case SX_REPLAY_EXTRA:
        return D_EXTRA;
    case SX_REPLAY_WRONG_VERSION:
        return D_WRONG_VERSION;
    case SX_REPLAY_WRONG_CONTENT:
        return D_WRONG_CONTENT;
    }
    return D_BAD_ANSWER;
}

/* One difference of the report. Strings owned. */
typedef struct diff {
    size_t check; /* position in result->checks */
    diff_kind kind;
    bool entry; /* an index entry or a document: id (and value, for entries) are set */
    bool has_value, value_int;
    int64_t vi;
    char *vs; /* string value, vs_len bytes, NUL-terminated */
    size_t vs_len;
    char *id; /* NUL-terminated */
    size_t id_len;
    uint64_t version;          /* MISSING: expected; EXTRA: served */
    uint64_t expected, served; /* WRONG-*: both */
    int32_t from;              /* log partition the entry comes from; -1: not known */
    char *detail;              /* the other kinds: what differs; DIVERGED: how */
} diff;

typedef enum { CK_DOCS, CK_LOCAL, CK_GLOBAL } ck_kind;

/* One served view and what the log says it must hold. */
typedef struct check {
    ck_kind kind;
    const Shardex__Internal__V1__IndexEntry *ix; /* from the map; NULL for documents */
    sx_ixkey_def def;                            /* from the map's spec */
    uint32_t part;                               /* p (documents, local) or t (global) */
    int32_t worker;   /* the map's worker index: a replica of p / the owner of t; -1 none */
    const char *wid;  /* that worker's id, from the map ("" when it has none) */
    const char *addr; /* that worker's address, from the map; NULL: none */
    bool leader;      /* documents, local: the replica on p's leader */
    uint64_t epoch;   /* global: the owner's epoch */
    /* served */
    Shardex__Internal__V1__DigestResponse *dg0;    /* first digest answer */
    Shardex__Internal__V1__DigestResponse *dg;     /* with entries, when they were asked */
    Shardex__Internal__V1__ScanDocsResponse *scan; /* until compared */
    uint64_t at;    /* local, documents: the replica's applied offset, the view's position */
    uint64_t ndocs; /* documents: served */
    /* expected, at the view's position(s) */
    bool exp_active;
    uint64_t exp_digest, exp_count;
    uint64_t exp0_digest, exp0_count; /* the first pass's, when entries were asked */
    uint64_t exp_docs;
    sx_replay_entries exp; /* when collect */
    bool collect;
    bool probe; /* taking part in the current replay pass */
    bool stop;  /* compared no further (failed, or its log is unusable) */
    /* trimmed logs (docs/indexes.md "Verify"): what the retained log cannot
     * determine is left out of the comparison and counted here */
    uint64_t carried;  /* documents: served from before the log start (checked against the
                          leader's copy only) */
    bool below;        /* documents: the position is below the log start: not checked */
    bool trimmed;      /* documents: checked against a retained log (no expected count) */
    sx_hmap unknown;   /* index views: ids whose state at the position is not determined */
    uint64_t nunknown; /* their count */
    bool *excl_part;   /* index views: log partitions not recomputed at all (nparts); NULL */
    uint64_t nexcl_parts;
    uint64_t nsplit_unknown; /* of those: a split's position against the log start not known */
    uint64_t nsalt_unknown;  /* of those: a salted index's marker offsets not listed */
    uint64_t excluded;       /* served entries left out (of unknown ids or excluded partitions) */
    uint64_t ndiffs;
    char *error; /* could not be compared: why */
} check;

struct sx_verify_result {
    const sx_verify_opts *o; /* during sx_verify_run */
    char **dead;             /* addresses that ran out a deadline: not asked again */
    size_t ndead, deadcap;
    char *server;
    Shardex__Internal__V1__ClusterMap *map;
    uint32_t nparts; /* P */
    sx_rlog **rlogs; /* [P]: the retained log of each trimmed partition, read once; else NULL */
    const char **rlog_from; /* [P]: the address it was read from */
    check *checks;
    size_t nchecks;
    diff *diffs; /* the first max_diffs differences */
    size_t ndiffs, capdiffs, max_diffs;
    sx_verify_summary sum;
};

static void diff_free(diff *d)
{
    free(d->vs);
    free(d->id);
    free(d->detail);
}

/* Counts d against c and keeps it if there is room; takes d's strings. */
static void note_diff(sx_verify_result *r, check *c, diff *d)
{
    d->check = (size_t)(c - r->checks);
    c->ndiffs++;
    r->sum.diffs++;
    switch (diff_kinds[d->kind].cls) {
    case CLS_MISSING:
        r->sum.missing++;
        break;
    case CLS_EXTRA:
        r->sum.extra++;
        break;
    case CLS_WRONG:
        r->sum.wrong++;
        break;
    default:
        r->sum.other++;
    }
    if (r->max_diffs && r->ndiffs >= r->max_diffs) {
        diff_free(d);
        return;
    }
    if (r->ndiffs == r->capdiffs) {
        r->capdiffs = r->capdiffs ? 2 * r->capdiffs : 64;
        r->diffs = sx_realloc(r->diffs, r->capdiffs * sizeof(*r->diffs));
    }
    r->diffs[r->ndiffs++] = *d;
}

static void note_other(sx_verify_result *r, check *c, diff_kind kind, int32_t from, const char *fmt,
                       ...) __attribute__((format(printf, 5, 6)));

static void note_other(sx_verify_result *r, check *c, diff_kind kind, int32_t from, const char *fmt,
                       ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    diff d = {.kind = kind, .from = from, .detail = sx_malloc((size_t)n + 1)};
    va_start(ap, fmt);
    vsnprintf(d.detail, (size_t)n + 1, fmt, ap);
    va_end(ap);
    note_diff(r, c, &d);
}

static void fail_check(check *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void fail_check(check *c, const char *fmt, ...)
{
    c->stop = true;
    if (c->error)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    c->error = sx_malloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(c->error, (size_t)n + 1, fmt, ap);
    va_end(ap);
}

static const char *worker_addr(const Shardex__Internal__V1__ClusterMap *m, int32_t w)
{
    if (w < 0 || (size_t)w >= m->n_workers || !m->workers[w] || !m->workers[w]->address ||
        !*m->workers[w]->address)
        return NULL;
    return m->workers[w]->address;
}

static const char *worker_id(const Shardex__Internal__V1__ClusterMap *m, int32_t w)
{
    if (w < 0 || (size_t)w >= m->n_workers || !m->workers[w] || !m->workers[w]->id)
        return "";
    return m->workers[w]->id;
}

static const char *leader_addr(const Shardex__Internal__V1__ClusterMap *m, uint32_t p)
{
    return m->partitions[p] ? worker_addr(m, m->partitions[p]->leader) : NULL;
}

static const Shardex__Internal__V1__DigestResponse *last_digest(const check *c)
{
    return c->dg ? c->dg : c->dg0;
}

/* Whether the view leaves something out (a trimmed log did not determine it). */
static bool has_exclusions(const check *c)
{
    return c->nunknown || c->nexcl_parts;
}

/* ----------------------------------------------------- phase 1: served -- */

static sx_status call_at(const sx_verify_opts *o, const char *addr,
                         const ProtobufCServiceDescriptor *svc, const char *method,
                         const ProtobufCMessage *req, void *resp, sx_err *err)
{
    ProtobufCMessage **out = resp;
    *out = NULL;
    return o->call(o->call_arg, addr, svc, method, req, out, err);
}

/* A call of the run. An address that let a call run out its deadline is not
 * asked again (a paused or cut-off node would cost a deadline per call). */
static sx_status call(sx_verify_result *r, const char *addr, const ProtobufCServiceDescriptor *svc,
                      const char *method, const ProtobufCMessage *req, void *resp, sx_err *err)
{
    for (size_t i = 0; i < r->ndead; i++) {
        if (strcmp(r->dead[i], addr) == 0) {
            *(ProtobufCMessage **)resp = NULL;
            return sx_err_set(err, SX_DEADLINE_EXCEEDED,
                              "not asked: %s did not answer an earlier call in time", addr);
        }
    }
    sx_status st = call_at(r->o, addr, svc, method, req, resp, err);
    if (st == SX_DEADLINE_EXCEEDED) {
        if (r->ndead == r->deadcap) {
            r->deadcap = r->deadcap ? 2 * r->deadcap : 4;
            r->dead = sx_realloc(r->dead, r->deadcap * sizeof(*r->dead));
        }
        r->dead[r->ndead++] = sx_strdup(addr);
    }
    return st;
}

static sx_status get_map(const sx_verify_opts *o, Shardex__Internal__V1__ClusterMap **map,
                         sx_err *err)
{
    Shardex__Internal__V1__GetMapRequest req = SHARDEX__INTERNAL__V1__GET_MAP_REQUEST__INIT;
    sx_status st = call_at(o, o->server, &shardex__internal__v1__worker_admin__descriptor, "GetMap",
                           &req.base, map, err);
    if (st == SX_UNIMPLEMENTED) {
        sx_err_clear(err);
        st = call_at(o, o->server, &shardex__internal__v1__coordinator__descriptor, "GetMap",
                     &req.base, map, err);
    }
    if (st != SX_OK)
        return sx_err_prefix(err, "GetMap from %s", o->server);
    const Shardex__Internal__V1__ClusterMap *m = *map;
    if (!m->settings || m->settings->partitions == 0 || m->n_partitions != m->settings->partitions)
        return sx_err_set(err, SX_FAILED_PRECONDITION,
                          "GetMap from %s: the map has no partitions yet (%zu of %u)", o->server,
                          m->n_partitions, m->settings ? m->settings->partitions : 0);
    return SX_OK;
}

static const char *check_kind_name(ck_kind k)
{
    return k == CK_DOCS ? "docs" : k == CK_LOCAL ? "local" : "global";
}

static sx_status ask_digest(sx_verify_result *r, check *c, bool entries,
                            Shardex__Internal__V1__DigestResponse **out)
{
    Shardex__Internal__V1__DigestRequest req = SHARDEX__INTERNAL__V1__DIGEST_REQUEST__INIT;
    req.index_id = c->ix->id;
    req.partition = c->part;
    req.term = c->kind == CK_GLOBAL;
    req.entries = entries;
    req.epoch = c->epoch;
    sx_err err = {0};
    sx_status st =
        call(r, c->addr, &shardex__internal__v1__index__descriptor, "Digest", &req.base, out, &err);
    if (st != SX_OK)
        fail_check(c, "Digest%s from %s: %s: %s", entries ? " with entries" : "", c->addr,
                   sx_status_name(st), err.msg);
    return st;
}

/* A term partition's answer: owned, and one watermark per log partition. */
static bool global_answer_ok(sx_verify_result *r, check *c,
                             const Shardex__Internal__V1__DigestResponse *dg)
{
    if (!dg->active) {
        fail_check(c,
                   "%s does not own the term partition at epoch %" PRIu64
                   " (the map moved: run verify again)",
                   c->addr, c->epoch);
        return false;
    }
    if (dg->n_watermarks != r->nparts) {
        fail_check(c, "the answer has %zu watermarks, the map %u log partitions", dg->n_watermarks,
                   r->nparts);
        return false;
    }
    return true;
}

/* The replica's documents, at one snapshot taken with its applied offset. */
static void ask_docs(sx_verify_result *r, check *c)
{
    sx_err err = {0};
    Shardex__Internal__V1__ScanDocsRequest req = SHARDEX__INTERNAL__V1__SCAN_DOCS_REQUEST__INIT;
    req.partition = c->part;
    sx_status st = call(r, c->addr, &shardex__internal__v1__worker_admin__descriptor, "ScanDocs",
                        &req.base, &c->scan, &err);
    if (st != SX_OK) {
        fail_check(c, "ScanDocs from %s: %s: %s", c->addr, sx_status_name(st), err.msg);
        return;
    }
    c->at = c->scan->applied_offset;
    c->ndocs = c->scan->n_docs;
}

static void ask_served(sx_verify_result *r, check *c)
{
    const Shardex__Internal__V1__ClusterMap *m = r->map;
    if (c->kind != CK_GLOBAL) {
        if (c->worker < 0) {
            fail_check(c, "partition %u has no replica", c->part);
            return;
        }
        if (!c->addr) {
            fail_check(c, "partition %u: replica worker %d has no address in the map", c->part,
                       (int)c->worker);
            return;
        }
        if (c->kind == CK_DOCS)
            ask_docs(r, c);
        else if (ask_digest(r, c, false, &c->dg0) == SX_OK)
            c->at = c->dg0->applied_offset;
        return;
    }
    size_t slot = (size_t)c->ix->first_term + c->part;
    if (slot >= m->n_terms || !m->terms[slot]) {
        fail_check(c, "the map has no term partition %u (terms[%zu])", c->part, slot);
        return;
    }
    c->epoch = m->terms[slot]->epoch;
    c->worker = m->terms[slot]->owner;
    c->wid = worker_id(m, c->worker);
    c->addr = worker_addr(m, c->worker);
    if (!c->addr) {
        fail_check(c, "term partition %u has no owner", c->part);
        return;
    }
    if (ask_digest(r, c, false, &c->dg0) != SX_OK || !global_answer_ok(r, c, c->dg0))
        return;
    for (uint32_t p = 0; p < r->nparts; p++)
        if (c->dg0->watermarks[p] == 0)
            note_other(r, c, D_NOT_SHIPPED, (int32_t)p,
                       "p=%u has shipped nothing to it (watermark 0): the index is incomplete", p);
}

static check *add_check(sx_verify_result *r, size_t *cap, ck_kind kind,
                        const Shardex__Internal__V1__IndexEntry *ix, uint32_t part, int32_t worker)
{
    if (r->nchecks == *cap) {
        *cap = *cap ? 2 * *cap : 16;
        r->checks = sx_realloc(r->checks, *cap * sizeof(*r->checks));
    }
    check *c = &r->checks[r->nchecks++];
    *c = (check){.kind = kind, .ix = ix, .part = part, .worker = worker, .wid = ""};
    if (ix)
        sx_ixkey_def_from_spec(&c->def, ix->id, ix->spec);
    return c;
}

/* The workers holding a replica of p: the leader first, then the other
 * replicas in the map's order, each once; -1 alone when there are none. */
static size_t replicas_of(const Shardex__Internal__V1__ClusterMap *m, uint32_t p, int32_t **out)
{
    const Shardex__Internal__V1__LogPartition *lp = m->partitions[p];
    size_t n = 0, cap = (lp ? lp->n_replicas : 0) + 1;
    int32_t *w = sx_malloc(cap * sizeof(*w));
    if (lp && lp->leader >= 0)
        w[n++] = lp->leader;
    for (size_t i = 0; lp && i < lp->n_replicas; i++) {
        bool seen = lp->replicas[i] < 0;
        for (size_t k = 0; k < n && !seen; k++)
            seen = w[k] == lp->replicas[i];
        if (!seen)
            w[n++] = lp->replicas[i];
    }
    if (n == 0)
        w[n++] = -1;
    *out = w;
    return n;
}

static void add_replica_checks(sx_verify_result *r, size_t *cap, ck_kind kind,
                               const Shardex__Internal__V1__IndexEntry *ix, uint32_t p)
{
    const Shardex__Internal__V1__ClusterMap *m = r->map;
    int32_t *w;
    size_t n = replicas_of(m, p, &w);
    for (size_t i = 0; i < n; i++) {
        check *c = add_check(r, cap, kind, ix, p, w[i]);
        c->wid = worker_id(m, w[i]);
        c->addr = worker_addr(m, w[i]);
        c->leader = w[i] >= 0 && m->partitions[p] && w[i] == m->partitions[p]->leader;
    }
    free(w);
}

/* Documents of every replica of every partition, then each local index
 * partition by partition (every replica, the leader's first), then each
 * global index term partition by term partition. */
static void plan(sx_verify_result *r)
{
    const Shardex__Internal__V1__ClusterMap *m = r->map;
    size_t cap = 0;
    for (uint32_t p = 0; p < r->nparts; p++)
        add_replica_checks(r, &cap, CK_DOCS, NULL, p);
    for (size_t i = 0; i < m->n_indexes; i++) {
        const Shardex__Internal__V1__IndexEntry *ix = m->indexes[i];
        if (ix && ix->spec && ix->spec->local)
            for (uint32_t p = 0; p < r->nparts; p++)
                add_replica_checks(r, &cap, CK_LOCAL, ix, p);
    }
    for (size_t i = 0; i < m->n_indexes; i++) {
        const Shardex__Internal__V1__IndexEntry *ix = m->indexes[i];
        if (ix && ix->spec && ix->spec->global)
            for (uint32_t t = 0; t < sx_partmap_term_count(ix); t++)
                if (ix->first_term + t < m->n_terms && !m->terms[ix->first_term + t]->retired)
                    add_check(r, &cap, CK_GLOBAL, ix, t, -1); /* retired by a split: gone */
    }
}

/* ------------------------------------------------- phases 2, 3: replay -- */

/* Order of probes at one position. */
typedef enum { PR_DOCS, PR_INDEX } probe_kind;

typedef struct probe {
    uint64_t at; /* the position to stop at */
    probe_kind kind;
    check *c;
    bool done; /* an index probe handled with others of its index */
} probe;

static int probe_cmp(const void *a, const void *b)
{
    const probe *x = a, *y = b;
    if (x->at != y->at)
        return x->at < y->at ? -1 : 1;
    if (x->kind != y->kind)
        return x->kind < y->kind ? -1 : 1;
    return (x->c > y->c) - (x->c < y->c);
}

/* One partition's replay pass. */
typedef struct pass {
    sx_verify_result *r;
    uint32_t p;
    sx_replay *rp;
    uint64_t *spec_seen; /* indexes whose log spec was compared with the map's */
    size_t nspec, specap;
    bool check_specs;
} pass;

/* Where one index's entries go at one position. */
typedef struct sink {
    check **locals; /* the replicas of p whose local index is at this position */
    size_t nlocals;
    check **terms; /* by term partition; NULL where not asked */
    uint32_t nterms;
    uint32_t p;
} sink;

static void sink_add(check *c, const uint8_t *key, size_t len, uint64_t version, uint32_t p)
{
    c->exp_digest = sx_ixkey_digest_add(c->exp_digest, key, len, version);
    c->exp_count++;
    if (c->collect)
        sx_replay_entries_add(&c->exp, key, len, version, (int32_t)p);
}

static void sink_cb(void *arg, const uint8_t *key, size_t len, uint32_t term, uint64_t version)
{
    sink *s = arg;
    bool also = (term & SX_REPLAY_ALSO) != 0; /* the same entry, for a split's parent */
    term &= ~SX_REPLAY_ALSO;
    for (size_t i = 0; !also && i < s->nlocals; i++)
        sink_add(s->locals[i], key, len, version, s->p);
    if (term < s->nterms && s->terms[term])
        sink_add(s->terms[term], key, len, version, s->p);
}

static bool spec_equal(const Shardex__V1__IndexSpec *a, const Shardex__V1__IndexSpec *b)
{
    return strcmp(a->name ? a->name : "", b->name ? b->name : "") == 0 &&
           strcmp(a->field ? a->field : "", b->field ? b->field : "") == 0 && a->type == b->type &&
           a->local == b->local && a->global == b->global &&
           a->term_partitions == b->term_partitions;
}

/* The log's spec of an index against the map's, once per partition and pass. */
static void compare_spec(pass *x, check *c, const Shardex__V1__IndexSpec *logspec)
{
    if (!x->check_specs)
        return;
    for (size_t i = 0; i < x->nspec; i++)
        if (x->spec_seen[i] == c->ix->id)
            return;
    if (x->nspec == x->specap) {
        x->specap = x->specap ? 2 * x->specap : 4;
        x->spec_seen = sx_realloc(x->spec_seen, x->specap * sizeof(*x->spec_seen));
    }
    x->spec_seen[x->nspec++] = c->ix->id;
    const Shardex__V1__IndexSpec *ms = c->ix->spec;
    if (!spec_equal(ms, logspec))
        note_other(x->r, c, D_SPEC, (int32_t)x->p,
                   "p=%u started it as name=%s field=%s type=%d local=%d global=%d "
                   "term_partitions=%u; the map has name=%s field=%s type=%d local=%d global=%d "
                   "term_partitions=%u",
                   x->p, logspec->name, logspec->field, logspec->type, logspec->local,
                   logspec->global, logspec->term_partitions, ms->name, ms->field, ms->type,
                   ms->local, ms->global, ms->term_partitions);
}

/* Evaluates every index probe of pr[k]'s index in pr[k..n) (all at the
 * current position) with one pass over the documents. */
static void eval_index(pass *x, probe *pr, size_t k, size_t n)
{
    uint64_t id = pr[k].c->ix->id;
    const Shardex__V1__IndexSpec *logspec = NULL;
    const sx_ixkey_def *ld = sx_replay_index(x->rp, id, &logspec);
    sink s = {.p = x->p, .locals = sx_malloc((n - k) * sizeof(*s.locals))};
    for (size_t q = k; q < n; q++) {
        check *c = pr[q].c;
        if (pr[q].kind != PR_INDEX || pr[q].done || c->ix->id != id)
            continue;
        pr[q].done = true;
        if (c->stop)
            continue;
        if (ld)
            compare_spec(x, c, logspec);
        if (c->kind == CK_LOCAL) {
            c->exp_active = ld != NULL;
            s.locals[s.nlocals++] = c;
            continue;
        }
        if (!s.terms) {
            s.nterms = sx_partmap_term_count(c->ix); /* a split's too */
            s.terms = sx_calloc(s.nterms ? s.nterms : 1, sizeof(*s.terms));
        }
        if (c->part < s.nterms)
            s.terms[c->part] = c;
    }
    if (ld && (s.nlocals || s.terms))
        sx_replay_each_entry(x->rp, id, sink_cb, &s, NULL, NULL);
    free(s.locals);
    free(s.terms);
}

typedef struct docs_ctx {
    sx_verify_result *r;
    check *c;
} docs_ctx;

static void docs_diff_cb(void *arg, sx_replay_kind kind, const char *id, uint64_t expected,
                         uint64_t served)
{
    docs_ctx *x = arg;
    diff d = {.kind = from_vfy_kind(kind),
              .entry = true,
              .id = sx_strdup(id),
              .id_len = strlen(id),
              .from = (int32_t)x->c->part,
              .version = kind == SX_REPLAY_MISSING ? expected : served,
              .expected = expected,
              .served = served};
    note_diff(x->r, x->c, &d);
}

typedef struct salt_ctx {
    sx_verify_result *r;
    check *c;
} salt_ctx;

static void salt_diff_cb(void *arg, const char *what)
{
    salt_ctx *x = arg;
    note_other(x->r, x->c, D_SALT_ROW, (int32_t)x->c->part, "%s", what);
}

/* The scan against the replay at the scan's own position (exact: ScanDocs
 * reads the documents and the applied offset at one snapshot). */
static void eval_docs(pass *x, check *c)
{
    c->exp_docs = sx_replay_doc_count(x->rp);
    docs_ctx dx = {x->r, c};
    sx_replay_docs_diff(x->rp, c->scan->docs, c->scan->n_docs, docs_diff_cb, &dx);
    if (c->scan->salts_listed) { /* what trimmed logs will be checked by */
        salt_ctx sx = {x->r, c};
        sx_replay_salts_check(x->rp, c->scan->salts, c->scan->n_salts, salt_diff_cb, &sx);
    }
    sx_rpc_free(&c->scan->base);
    c->scan = NULL;
}

/* Evaluates the probes at the current position, from pr[i]; returns the
 * first probe past it. */
static size_t eval_at(pass *x, probe *pr, size_t i, size_t n)
{
    uint64_t pos = sx_replay_position(x->rp);
    size_t j = i;
    while (j < n && pr[j].at == pos)
        j++;
    for (size_t k = i; k < j; k++) {
        if (pr[k].c->stop)
            continue;
        if (pr[k].kind == PR_DOCS)
            eval_docs(x, pr[k].c);
        else if (!pr[k].done)
            eval_index(x, pr, k, j);
    }
    return j;
}

/* The log cannot take the replay to the rest of the probes: a difference
 * for each check still waiting (once), which is then compared no further. */
static void stop_rest(sx_verify_result *r, probe *pr, size_t n, diff_kind kind, int32_t p,
                      const char *msg)
{
    for (size_t i = 0; i < n; i++) {
        check *c = pr[i].c;
        if (c->stop)
            continue;
        c->stop = true;
        note_other(r, c, kind, p, "%s", msg);
    }
}

/* The leader's log ends at `end`, below the rest of the probes: each check
 * still waiting names a position (an applied offset, a watermark) that the
 * log never reached, which is a difference of that view. */
static void short_rest(sx_verify_result *r, probe *pr, size_t n, uint32_t p, uint64_t end,
                       const char *addr)
{
    for (size_t i = 0; i < n; i++) {
        check *c = pr[i].c;
        if (c->stop)
            continue;
        c->stop = true;
        note_other(r, c, D_SHORT_LOG, (int32_t)p,
                   "the leader's log of p=%u ends at %" PRIu64 " (read from %s), below position "
                   "%" PRIu64 " that this view names",
                   p, end, addr, pr[i].at);
    }
}

static void fail_rest(probe *pr, size_t n, const char *msg)
{
    for (size_t i = 0; i < n; i++)
        fail_check(pr[i].c, "%s", msg);
}

/* ------------------------------------------------------ trimmed logs -- */

/* A partition whose log retention trimmed its head is checked against its
 * retained log [S, E] and the replicas' documents (docs/indexes.md "Verify"):
 * the log is read once (kept in r->rlogs[p] for the second pass), documents
 * are compared with the log and with the leader's copy, index views are
 * recomputed from a replica's documents carried to their position through
 * the log, and what cannot be determined is counted, never compared. */

/* Reads p's log from its start (ReadLog from_offset 0): false when it starts
 * at 1 (the full replay applies); true when trimmed, with r->rlogs[p] made
 * and holding that first page; a call that fails fails the probes (true). */
static bool log_trimmed(sx_verify_result *r, uint32_t p, const char *addr, probe *pr, size_t n)
{
    Shardex__Internal__V1__ReadLogRequest req = SHARDEX__INTERNAL__V1__READ_LOG_REQUEST__INIT;
    req.partition = p;
    req.max_entries = r->o->log_page ? r->o->log_page : VFY_LOG_PAGE;
    Shardex__Internal__V1__ReadLogResponse *resp = NULL;
    sx_err err = {0};
    sx_status st = call(r, addr, &shardex__internal__v1__worker_admin__descriptor, "ReadLog",
                        &req.base, &resp, &err);
    if (st != SX_OK) {
        char msg[SX_ERR_MSG_MAX + 160];
        snprintf(msg, sizeof(msg), "ReadLog p=%u from its start from %s: %s: %s", p, addr,
                 sx_status_name(st), err.msg);
        fail_rest(pr, n, msg);
        return true;
    }
    bool trimmed = resp->log_start_offset > 1;
    if (trimmed) {
        sx_rlog *l = sx_rlog_create(p, resp->log_start_offset);
        r->rlogs[p] = l;
        r->rlog_from[p] = addr;
        for (size_t k = 0; k < resp->n_entries && st == SX_OK; k++) {
            const Shardex__Internal__V1__AppendEntry *e = resp->entries[k];
            st = sx_rlog_append(l, sx_rlog_end(l) + 1, e ? e->op.data : NULL, e ? e->op.len : 0,
                                &err);
        }
        if (st != SX_OK)
            stop_rest(r, pr, n, D_BAD_LOG, (int32_t)p, err.msg);
    }
    sx_rpc_free(&resp->base);
    return trimmed;
}

/* Extends p's retained log to `need` (or the log's end). False, with the
 * probes stopped or failed, when a page cannot be read or applied. */
static bool read_rlog(sx_verify_result *r, uint32_t p, const char *addr, uint64_t need, probe *pr,
                      size_t n)
{
    sx_rlog *l = r->rlogs[p];
    uint32_t page = r->o->log_page ? r->o->log_page : VFY_LOG_PAGE;
    while (sx_rlog_end(l) < need) {
        uint64_t from = sx_rlog_end(l) + 1;
        Shardex__Internal__V1__ReadLogRequest req = SHARDEX__INTERNAL__V1__READ_LOG_REQUEST__INIT;
        req.partition = p;
        req.from_offset = from;
        req.max_entries = page;
        Shardex__Internal__V1__ReadLogResponse *resp = NULL;
        sx_err err = {0};
        sx_status st = call(r, addr, &shardex__internal__v1__worker_admin__descriptor, "ReadLog",
                            &req.base, &resp, &err);
        if (st != SX_OK) {
            char msg[SX_ERR_MSG_MAX + 200];
            snprintf(msg, sizeof(msg), "ReadLog p=%u from=%" PRIu64 " from %s: %s: %s%s", p, from,
                     addr, sx_status_name(st), err.msg,
                     st == SX_OUT_OF_RANGE ? " (trimmed while read: run verify again)" : "");
            fail_rest(pr, n, msg);
            return false;
        }
        size_t got = resp->n_entries;
        for (size_t k = 0; k < got && st == SX_OK; k++) {
            const Shardex__Internal__V1__AppendEntry *e = resp->entries[k];
            st = sx_rlog_append(l, from + k, e ? e->op.data : NULL, e ? e->op.len : 0, &err);
        }
        sx_rpc_free(&resp->base);
        if (st != SX_OK) {
            stop_rest(r, pr, n, D_BAD_LOG, (int32_t)p, err.msg);
            return false;
        }
        if (got == 0)
            break;
    }
    return true;
}

/* A replica's documents usable to recompute from: scanned, at a position
 * within the retained log. */
static bool docs_usable(const check *d, const sx_rlog *l)
{
    return d && d->kind == CK_DOCS && d->scan && !d->error && d->at + 1 >= sx_rlog_start(l) &&
           d->at <= sx_rlog_end(l);
}

/* The documents of p on worker w (-1: on the leader, the first asked). */
static check *docs_check(sx_verify_result *r, uint32_t p, int32_t w)
{
    for (size_t i = 0; i < r->nchecks; i++) {
        check *c = &r->checks[i];
        if (c->kind == CK_DOCS && c->part == p && (w < 0 || c->worker == w))
            return c;
    }
    return NULL;
}

typedef struct cross_ctx {
    sx_verify_result *r;
    check *c, *ref;
} cross_ctx;

static void cross_cb(void *arg, sx_replay_kind kind, const char *id, uint64_t expected,
                     uint64_t served)
{
    cross_ctx *x = arg;
    diff d = {.kind = D_DIVERGED,
              .entry = true,
              .id = sx_strdup(id),
              .id_len = strlen(id),
              .from = (int32_t)x->c->part,
              .version = served,
              .expected = expected,
              .served = served,
              .detail = sx_strdup(sx_replay_kind_name(kind))};
    note_diff(x->r, x->c, &d);
}

static bool salt_equal(const Shardex__Internal__V1__IndexSalt *a,
                       const Shardex__Internal__V1__IndexSalt *b)
{
    size_t n = shardex__internal__v1__index_salt__get_packed_size(a);
    if (n != shardex__internal__v1__index_salt__get_packed_size(b))
        return false;
    uint8_t *pa = sx_malloc(2 * n + 1);
    shardex__internal__v1__index_salt__pack(a, pa);
    shardex__internal__v1__index_salt__pack(b, pa + n);
    bool eq = memcmp(pa, pa + n, n) == 0;
    free(pa);
    return eq;
}

/* The rows of `of` below the log start, each against the same salt in
 * `in`: the log cannot tell where those markers were, but every replica
 * applied the same log, so their rows must agree (DIVERGED on c). */
static void salts_cross_side(sx_verify_result *r, const sx_rlog *l, check *c,
                             const Shardex__Internal__V1__ScanDocsResponse *of,
                             const Shardex__Internal__V1__ScanDocsResponse *in, bool of_c)
{
    for (size_t i = 0; i < of->n_salts; i++) {
        const Shardex__Internal__V1__IndexSalt *a = of->salts[i], *b = NULL;
        if (!a || a->from >= sx_rlog_start(l))
            continue;
        for (size_t k = 0; k < in->n_salts && !b; k++)
            if (in->salts[k] && in->salts[k]->index_id == a->index_id &&
                in->salts[k]->seq == a->seq)
                b = in->salts[k];
        if (b && salt_equal(a, b))
            continue;
        if (b && !of_c)
            continue; /* told once, from c's side */
        note_other(r, c, D_DIVERGED, (int32_t)c->part,
                   "salt seq %u of index %" PRIu64 ": applied at %" PRIu64 " %s, %s %s", a->seq,
                   a->index_id, a->from, of_c ? "here" : "on the leader's replica",
                   b ? "another salt row" : "no salt row",
                   of_c ? "on the leader's replica" : "here");
    }
}

static void eval_salts_trimmed(sx_verify_result *r, const sx_rlog *l, check *c, const check *ref)
{
    if (!c->scan->salts_listed)
        return;
    salt_ctx sx = {r, c};
    sx_rlog_salts_check(l, c->scan->salts, c->scan->n_salts, c->at, salt_diff_cb, &sx);
    if (ref != c && docs_usable(ref, l) && ref->scan->salts_listed) {
        salts_cross_side(r, l, c, c->scan, ref->scan, true);
        salts_cross_side(r, l, c, ref->scan, c->scan, false);
    }
}

static void eval_docs_trimmed(sx_verify_result *r, const sx_rlog *l, check *c)
{
    c->trimmed = true;
    if (c->at + 1 < sx_rlog_start(l)) {
        c->below = true; /* outside the ISR, behind the log's start: nothing to compare with */
        c->carried = c->ndocs;
        return;
    }
    docs_ctx dx = {r, c};
    sx_rlog_docs_diff(l, c->scan->docs, c->scan->n_docs, c->at, docs_diff_cb, &dx, &c->carried);
    check *ref = docs_check(r, c->part, -1);
    if (ref != c && docs_usable(ref, l)) {
        cross_ctx cx = {r, c, ref};
        sx_rlog_docs_cross(l, ref->scan->docs, ref->scan->n_docs, ref->at, c->scan->docs,
                           c->scan->n_docs, c->at, cross_cb, &cx);
    }
    eval_salts_trimmed(r, l, c, ref);
}

typedef struct tsink {
    check *c;
    const sx_ixkey_def *def;
    uint32_t p;
} tsink;

static void tsink_entry_cb(void *arg, const uint8_t *key, size_t len, uint32_t term,
                           uint64_t version)
{
    tsink *s = arg;
    bool also = (term & SX_REPLAY_ALSO) != 0; /* the same entry, for a split's parent */
    if (s->c->kind == CK_GLOBAL ? (term & ~SX_REPLAY_ALSO) != s->c->part : also)
        return;
    sink_add(s->c, key, len, version, s->p);
}

static void tsink_doc_cb(void *arg, const char *id, size_t n, uint64_t version,
                         const Shardex__V1__Document *doc)
{
    tsink *s = arg;
    sx_replay_doc_entries(s->def, id, n, doc, version, tsink_entry_cb, s);
}

static void tsink_unknown_cb(void *arg, const char *id, size_t n)
{
    tsink *s = arg;
    bool created;
    sx_hmap_upsert(&s->c->unknown, id, n, &created);
    s->c->nunknown += created;
}

/* The split (seq) of c's index that made term partition t: 0 for one of the
 * index's first M. */
static uint32_t split_of(const check *c, uint32_t t)
{
    uint32_t m = c->def.term_partitions;
    return t < m ? 0 : (t - m) / 2 + 1;
}

/* An offset at or below which split seq's first marker is in p's log, from
 * the served views: a shadow of split seq or a later one has wm[p] at or
 * after that split's marker (its first shipment from p is a rebuild at or
 * after it, docs/indexes.md "Online split"), and the later splits' markers
 * come after seq's. The lowest such watermark; 0: none. */
static uint64_t split_bound(const sx_verify_result *r, const check *c, uint32_t seq, uint32_t p)
{
    uint64_t b = 0;
    for (size_t i = 0; i < r->nchecks; i++) {
        const check *o = &r->checks[i];
        if (o->kind != CK_GLOBAL || o->ix != c->ix || o->error || split_of(o, o->part) < seq)
            continue;
        const Shardex__Internal__V1__DigestResponse *dg = last_digest(o);
        if (!dg || dg->n_watermarks != r->nparts || dg->watermarks[p] == 0)
            continue;
        b = !b || dg->watermarks[p] < b ? dg->watermarks[p] : b;
    }
    return b;
}

/* What term partition c->part of a split index holds from p at `at`, with
 * the split records of the map (every split the map records was appended as
 * a marker to p's log; a trimmed log may hold none of them): 1 the values
 * of its range in the map's layout, 0 nothing (the split that makes it is
 * not applied at `at`, or its own split is done there), -1 not determined.
 * Only the split that made it matters (a split elsewhere moves no value of
 * its range; while its own split is in progress it keeps its range). */
static int split_term_state(const sx_verify_result *r, const sx_rlog *l, const check *c, uint32_t p,
                            uint64_t at)
{
    uint32_t k = split_of(c, c->part);
    if (k) {
        int a = sx_rlog_split_applied(l, c->ix->id, k, at, split_bound(r, c, k, p));
        if (a <= 0)
            return a;
    }
    /* Its own split (the map's last, not done: a done one retired it): done
     * at `at` only by a marker held (a done marker follows the swap, after
     * the parent's last shipment, so it is above wm = at >= start - 1). */
    for (size_t i = 0; i < c->ix->n_splits; i++) {
        const Shardex__Internal__V1__IndexSplit *sp = c->ix->splits[i];
        if (sp && sp->term == c->part && sx_rlog_split_done(l, c->ix->id, sp->seq, at))
            return 0;
    }
    return 1;
}

/* p's part of c is left out whole, and said so. */
static void exclude_part(sx_verify_result *r, check *c, uint32_t p)
{
    if (!c->excl_part)
        c->excl_part = sx_calloc(r->nparts, sizeof(*c->excl_part));
    c->nexcl_parts += !c->excl_part[p];
    c->excl_part[p] = true;
    if (c->kind == CK_LOCAL)
        c->exp_active = last_digest(c)->active;
}

/* p's entries of one index view at position at, recomputed from a replica's
 * documents (the same replica's for a local index, else the leader's). */
static void eval_index_trimmed(pass *x, const sx_rlog *l, check *c, uint64_t at)
{
    sx_verify_result *r = x->r;
    check *base = c->kind == CK_LOCAL ? docs_check(r, x->p, c->worker) : NULL;
    if (!docs_usable(base, l))
        base = docs_check(r, x->p, -1);
    if (at + 1 < sx_rlog_start(l) || !docs_usable(base, l)) {
        exclude_part(r, c, x->p); /* nothing determines p's part of this view */
        return;
    }
    /* A salted index's term partitions route by the salt markers' offsets in
     * p's log, which may be below its start: the base replica's salt rows
     * (ScanDocs, at its position) give them, the retained log the markers
     * after (docs/indexes.md "Salts on a trimmed log"). The rows rather than
     * the map: every replica writes them with the marker's apply and routes
     * by them, snapshots copy them, and ScanDocs reads them at the snapshot
     * of the documents recomputed from; the map would need a report per
     * salt per log partition that can lag the log. Used whenever listed,
     * whatever the map says: a salt recorded after the map was read may be
     * applied by now. A replica that does not list them leaves p's part of a
     * salted index out, counted. */
    bool rows = c->kind == CK_GLOBAL && base->scan->salts_listed;
    if (c->kind == CK_GLOBAL && c->ix->n_salts > 0 && !rows) {
        if (!c->excl_part || !c->excl_part[x->p])
            c->nsalt_unknown++;
        exclude_part(r, c, x->p);
        return;
    }
    /* A split index's term partitions route by the splits in effect at `at`,
     * whose markers may be below the log's start (docs/indexes.md "Verify on
     * trimmed logs"): the map's records, placed by what the log holds. */
    bool split = c->kind == CK_GLOBAL && c->ix->n_splits > 0;
    int st = split ? split_term_state(r, l, c, x->p, at) : 1;
    if (st < 0) {
        if (!c->excl_part || !c->excl_part[x->p])
            c->nsplit_unknown++;
        exclude_part(r, c, x->p);
        return;
    }
    if (st == 0)
        return; /* nothing of p's at `at` */
    sx_ixkey_def def;
    const Shardex__V1__IndexSpec *spec = NULL;
    int act = sx_rlog_index(l, c->ix->id, at, &def, &spec);
    if (act == 1)
        compare_spec(x, c, spec);
    if (act < 0) { /* started before the log's start: the view's own word, the map's spec */
        def = c->def;
        act = c->kind == CK_LOCAL ? last_digest(c)->active : 1;
    }
    if (c->kind == CK_LOCAL)
        c->exp_active = act;
    if (!act)
        return;
    if (split) { /* the map's splits, every one (see split_term_state) */
        def.nlayout = c->ix->n_splits;
        def.layout = c->ix->splits;
    }
    Shardex__Internal__V1__IndexSalt **salts = NULL;
    if (rows) {
        size_t n =
            sx_rlog_salts_at(l, &def, base->scan->salts, base->scan->n_salts, base->at, at, &salts);
        if (n == SIZE_MAX) { /* malformed rows: a SALT-ROW difference of the replica */
            if (!c->excl_part || !c->excl_part[x->p])
                c->nsalt_unknown++;
            exclude_part(r, c, x->p);
            return;
        }
        def.salts = salts;
        def.nsalts = n;
    }
    tsink s = {c, &def, x->p};
    sx_rlog_docs_at(l, base->scan->docs, base->scan->n_docs, base->at, at, tsink_doc_cb, &s,
                    tsink_unknown_cb, &s);
    free(salts);
}

static void trimmed_partition(sx_verify_result *r, uint32_t p, const char *addr, probe *pr,
                              size_t n, bool check_specs)
{
    uint64_t need = 0;
    for (size_t i = 0; i < n; i++)
        need = pr[i].at > need ? pr[i].at : need;
    for (size_t i = 0; i < r->nchecks; i++) {
        const check *d = &r->checks[i];
        if (d->kind == CK_DOCS && d->part == p && d->scan && d->at > need)
            need = d->at;
    }
    if (!r->rlogs[p] || !read_rlog(r, p, addr, need, pr, n))
        return;
    const sx_rlog *l = r->rlogs[p];
    pass x = {.r = r, .p = p, .check_specs = check_specs};
    for (size_t i = 0; i < n; i++) {
        check *c = pr[i].c;
        if (c->stop)
            continue;
        if (pr[i].at > sx_rlog_end(l)) {
            short_rest(r, pr + i, 1, p, sx_rlog_end(l), addr);
            continue;
        }
        if (pr[i].kind == PR_DOCS)
            eval_docs_trimmed(r, l, c);
        else
            eval_index_trimmed(&x, l, c, pr[i].at);
    }
    free(x.spec_seen);
}

/* Replays partition p from offset 1, stopping at every probe (sorted here). */
static void replay_partition(sx_verify_result *r, uint32_t p, probe *pr, size_t n, bool check_specs)
{
    qsort(pr, n, sizeof(*pr), probe_cmp);
    const char *addr = leader_addr(r->map, p);
    if (!addr) {
        char msg[128];
        snprintf(msg, sizeof(msg), "partition %u has no leader to read its log from", p);
        fail_rest(pr, n, msg);
        return;
    }
    if (r->rlogs[p] || log_trimmed(r, p, addr, pr, n)) {
        trimmed_partition(r, p, addr, pr, n, check_specs);
        return;
    }
    pass x = {.r = r, .p = p, .rp = sx_replay_create(p), .check_specs = check_specs};
    size_t i = eval_at(&x, pr, 0, n);
    uint32_t page = r->o->log_page ? r->o->log_page : VFY_LOG_PAGE;
    bool stop = false;
    while (i < n && !stop) {
        uint64_t from = sx_replay_position(x.rp) + 1;
        Shardex__Internal__V1__ReadLogRequest req = SHARDEX__INTERNAL__V1__READ_LOG_REQUEST__INIT;
        req.partition = p;
        req.from_offset = from;
        req.max_entries = page;
        Shardex__Internal__V1__ReadLogResponse *resp = NULL;
        sx_err err = {0};
        sx_status st = call(r, addr, &shardex__internal__v1__worker_admin__descriptor, "ReadLog",
                            &req.base, &resp, &err);
        if (st != SX_OK) {
            char msg[SX_ERR_MSG_MAX + 160];
            snprintf(msg, sizeof(msg), "ReadLog p=%u from=%" PRIu64 " from %s: %s: %s", p, from,
                     addr, sx_status_name(st), err.msg);
            fail_rest(pr + i, n - i, msg);
            break;
        }
        if (resp->n_entries == 0)
            short_rest(r, pr + i, n - i, p, from - 1, addr);
        for (size_t k = 0; k < resp->n_entries && i < n; k++) {
            const Shardex__Internal__V1__AppendEntry *e = resp->entries[k];
            st = sx_replay_apply(x.rp, from + k, e ? e->op.data : NULL, e ? e->op.len : 0, &err);
            if (st != SX_OK) {
                stop_rest(r, pr + i, n - i, D_BAD_LOG, (int32_t)p, err.msg);
                stop = true;
                break;
            }
            i = eval_at(&x, pr, i, n);
        }
        stop = stop || resp->n_entries == 0;
        sx_rpc_free(&resp->base);
    }
    free(x.spec_seen);
    sx_replay_destroy(x.rp);
}

static void add_probe(probe **pr, size_t *n, size_t *cap, uint64_t at, probe_kind kind, check *c)
{
    if (*n == *cap) {
        *cap = *cap ? 2 * *cap : 32;
        *pr = sx_realloc(*pr, *cap * sizeof(**pr));
    }
    (*pr)[(*n)++] = (probe){.at = at, .kind = kind, .c = c};
}

/* One pass over every log partition for the checks marked probe. */
static void replay_all(sx_verify_result *r, bool check_specs)
{
    probe *pr = NULL;
    size_t cap = 0;
    for (uint32_t p = 0; p < r->nparts; p++) {
        size_t n = 0;
        for (size_t i = 0; i < r->nchecks; i++) {
            check *c = &r->checks[i];
            if (!c->probe || c->stop)
                continue;
            if (c->kind == CK_DOCS && c->part == p) {
                add_probe(&pr, &n, &cap, c->at, PR_DOCS, c);
            } else if (c->kind == CK_LOCAL && c->part == p) {
                add_probe(&pr, &n, &cap, c->at, PR_INDEX, c);
            } else if (c->kind == CK_GLOBAL) {
                const Shardex__Internal__V1__DigestResponse *dg = c->dg ? c->dg : c->dg0;
                if (dg->watermarks[p] > 0)
                    add_probe(&pr, &n, &cap, dg->watermarks[p], PR_INDEX, c);
            }
        }
        if (n)
            replay_partition(r, p, pr, n, check_specs);
    }
    free(pr);
}

/* ---------------------------------------------------- phase 3: entries -- */

typedef struct ediff_ctx {
    sx_verify_result *r;
    check *c;
} ediff_ctx;

static void ediff_cb(void *arg, sx_replay_kind kind, const sx_replay_entry *e,
                     const sx_replay_entry *s)
{
    ediff_ctx *x = arg;
    check *c = x->c;
    const sx_replay_entry *any = e ? e : s;
    diff d = {.kind = from_vfy_kind(kind), .from = -1};
    Shardex__V1__Value v;
    sx_buf sbuf = {0}, id = {0};
    if (sx_ixkey_split_key(c->def.is_int, any->key, any->len, &v, &sbuf, &id)) {
        d.entry = d.has_value = true;
        d.value_int = c->def.is_int;
        if (d.value_int) {
            d.vi = v.i;
        } else {
            d.vs_len = sbuf.len - 1; /* split_key NUL-terminates */
            d.vs = sx_memdup(sbuf.data, sbuf.len);
        }
        d.id_len = id.len;
        d.id = sx_malloc(id.len + 1);
        memcpy(d.id, id.data, id.len);
        d.id[id.len] = '\0';
    } else {
        d.detail = sx_malloc(2 * any->len + 32);
        size_t w = (size_t)sprintf(d.detail, "undecodable key=");
        for (size_t i = 0; i < any->len; i++)
            w += (size_t)sprintf(d.detail + w, "%02x", any->key[i]);
    }
    if (e)
        d.from = e->partition;
    else if (c->kind == CK_LOCAL)
        d.from = (int32_t)c->part;
    else if (d.entry)
        d.from = (int32_t)sx_partition_of(d.id, d.id_len, x->r->nparts);
    d.version = e ? e->version : s->version;
    d.expected = e ? e->version : 0;
    d.served = s ? s->version : 0;
    sx_buf_free(&sbuf);
    sx_buf_free(&id);
    note_diff(x->r, c, &d);
}

/* Digests compared: a view that differs is asked again with its entries. */
static void compare_digests(sx_verify_result *r)
{
    for (size_t i = 0; i < r->nchecks; i++) {
        check *c = &r->checks[i];
        c->probe = false;
        if (c->stop || c->kind == CK_DOCS)
            continue;
        const Shardex__Internal__V1__DigestResponse *dg = c->dg0;
        if (c->kind == CK_LOCAL && (bool)dg->active != c->exp_active)
            note_other(r, c, D_WRONG_ACTIVE, (int32_t)c->part,
                       "served %s at %" PRIu64 ", the log has it %s",
                       dg->active ? "active" : "inactive", c->at,
                       c->exp_active ? "active" : "inactive");
        if (dg->digest == c->exp_digest && dg->count == c->exp_count && !has_exclusions(c))
            continue;
        if (ask_digest(r, c, true, &c->dg) != SX_OK)
            continue;
        if (c->kind == CK_GLOBAL) {
            if (!global_answer_ok(r, c, c->dg))
                continue;
            for (uint32_t p = 0; p < r->nparts; p++)
                if (c->dg->watermarks[p] == 0 && c->dg0->watermarks[p] != 0)
                    note_other(r, c, D_NOT_SHIPPED, (int32_t)p,
                               "p=%u has shipped nothing to it (watermark 0, was %" PRIu64 ")", p,
                               c->dg0->watermarks[p]);
        } else {
            c->at = c->dg->applied_offset;
        }
        c->probe = c->collect = true;
        c->exp0_digest = c->exp_digest;
        c->exp0_count = c->exp_count;
        c->exp_digest = c->exp_count = 0;
        c->exp_active = false;
        /* recomputed at the new positions */
        sx_hmap_free(&c->unknown, NULL);
        c->nunknown = c->nexcl_parts = c->nsplit_unknown = c->nsalt_unknown = 0;
        free(c->excl_part);
        c->excl_part = NULL;
    }
}

/* Whether a served entry is of an id (or a log partition) the view leaves out. */
static bool excluded_entry(const sx_verify_result *r, const check *c, const uint8_t *key,
                           size_t len)
{
    Shardex__V1__Value v;
    sx_buf sbuf = {0}, id = {0};
    bool out = false;
    if (sx_ixkey_split_key(c->def.is_int, key, len, &v, &sbuf, &id)) {
        uint32_t p = c->kind == CK_LOCAL ? c->part : sx_partition_of(id.data, id.len, r->nparts);
        out = (c->excl_part && p < r->nparts && c->excl_part[p]) ||
              sx_hmap_get(&c->unknown, id.len ? (const char *)id.data : "", id.len, NULL);
    }
    sx_buf_free(&sbuf);
    sx_buf_free(&id);
    return out;
}

static void compare_entries(sx_verify_result *r)
{
    for (size_t i = 0; i < r->nchecks; i++) {
        check *c = &r->checks[i];
        if (!c->probe || c->stop)
            continue;
        const Shardex__Internal__V1__DigestResponse *dg = c->dg;
        sx_replay_entries got = {0}, kept = {0};
        for (size_t k = 0; k < dg->n_entries; k++) {
            const Shardex__Internal__V1__DigestEntry *e = dg->entries[k];
            if (!e)
                continue;
            sx_replay_entries_add(&got, e->key.data, e->key.len, e->version, -1);
            if (has_exclusions(c) && excluded_entry(r, c, e->key.data, e->key.len))
                c->excluded++;
            else
                sx_replay_entries_add(&kept, e->key.data, e->key.len, e->version, -1);
        }
        sx_replay_entries_sort(&kept);
        sx_replay_entries_sort(&c->exp);
        uint64_t before = c->ndiffs;
        ediff_ctx x = {r, c};
        size_t n = sx_replay_entries_diff(&c->exp, &kept, ediff_cb, &x);
        sx_replay_entries_sort(&got);
        if (got.n != dg->count || sx_replay_entries_digest(&got) != dg->digest)
            note_other(r, c, D_BAD_ANSWER, -1,
                       "the answer's %zu entries do not give its own count %" PRIu64
                       " and digest %016" PRIx64,
                       got.n, dg->count, dg->digest);
        sx_replay_entries_free(&kept);
        /* with exclusions the first digest was never expected to agree */
        if (n == 0 && c->ndiffs == before && !has_exclusions(c))
            note_other(r, c, D_DIGEST, -1,
                       "the first answer had count %" PRIu64 " digest %016" PRIx64
                       " where the log gives count %" PRIu64 " digest %016" PRIx64
                       "; its entries, asked again, agree with the log",
                       c->dg0->count, c->dg0->digest, c->exp0_count, c->exp0_digest);
        sx_replay_entries_free(&got);
    }
    for (size_t i = 0; i < r->nchecks; i++)
        sx_replay_entries_free(&r->checks[i].exp);
}

sx_status sx_verify_run(const sx_verify_opts *o, sx_verify_result **out, sx_err *err)
{
    *out = NULL;
    Shardex__Internal__V1__ClusterMap *map = NULL;
    sx_status st = get_map(o, &map, err);
    if (st != SX_OK) {
        sx_rpc_free(map ? &map->base : NULL);
        return st;
    }
    sx_verify_result *r = sx_calloc(1, sizeof(*r));
    r->server = sx_strdup(o->server);
    r->map = map;
    r->nparts = map->settings->partitions;
    r->max_diffs = o->max_diffs;
    r->o = o;
    r->rlogs = sx_calloc(r->nparts, sizeof(*r->rlogs));
    r->rlog_from = sx_calloc(r->nparts, sizeof(*r->rlog_from));
    plan(r);
    /* 1: every served view before any log */
    for (size_t i = 0; i < r->nchecks; i++)
        ask_served(r, &r->checks[i]);
    /* 2: each log once, to every position named */
    for (size_t i = 0; i < r->nchecks; i++)
        r->checks[i].probe = !r->checks[i].stop;
    replay_all(r, true);
    /* 3: the entries of what differs, against the log at their positions */
    compare_digests(r);
    replay_all(r, false);
    compare_entries(r);
    r->o = NULL;
    *out = r;
    return SX_OK;
}

/* ================================================================ report == */

void sx_verify_result_summary(const sx_verify_result *r, sx_verify_summary *s)
{
    *s = r->sum;
    s->checks = r->nchecks;
    s->ok = s->different = s->failed = 0;
    for (uint32_t p = 0; r->rlogs && p < r->nparts; p++)
        s->trimmed += r->rlogs[p] != NULL;
    for (size_t i = 0; i < r->nchecks; i++) {
        const check *c = &r->checks[i];
        s->carried += c->carried;
        s->undetermined += c->nunknown;
        s->excluded += c->excluded;
        s->unrecomputed += c->nexcl_parts;
        s->split_unknown += c->nsplit_unknown;
        s->salt_unknown += c->nsalt_unknown;
        if (r->checks[i].error)
            s->failed++;
        else if (r->checks[i].ndiffs)
            s->different++;
        else
            s->ok++;
    }
}

int sx_verify_result_exit_code(const sx_verify_result *r)
{
    sx_verify_summary s;
    sx_verify_result_summary(r, &s);
    return s.diffs ? SX_EXIT_DIFFERENT : s.failed ? SX_EXIT_UNAVAILABLE : SX_EXIT_OK;
}

static const char *index_name(const check *c)
{
    return c->ix && c->ix->spec && c->ix->spec->name ? c->ix->spec->name : "";
}

/* A string between double quotes, with '"', '\' and control bytes escaped. */
static void put_quoted(FILE *out, const char *s, size_t n)
{
    fputc('"', out);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\')
            fprintf(out, "\\%c", ch);
        else if (ch < 0x20 || ch == 0x7f)
            fprintf(out, "\\x%02x", ch);
        else
            fputc(ch, out);
    }
    fputc('"', out);
}

/* "local  idx=color p=3 replica=w-1@127.0.0.1:7101", "global idx=color t=2",
 * "docs   p=3 replica=w-1@127.0.0.1:7101" (pad: the kinds aligned, for check
 * lines). A replica is named by its worker's id and address in the map. */
static void put_label(FILE *out, const check *c, bool pad)
{
    const char *k = check_kind_name(c->kind);
    fprintf(out, pad ? "%-6s" : "%s", k);
    if (c->kind != CK_DOCS)
        fprintf(out, " idx=%s", index_name(c));
    fprintf(out, c->kind == CK_GLOBAL ? " t=%u" : " p=%u", c->part);
    if (c->kind == CK_GLOBAL || c->worker < 0)
        return;
    fputs(" replica=", out);
    if (*c->wid)
        fprintf(out, "%s@", c->wid);
    if (c->addr)
        fputs(c->addr, out);
    else
        fprintf(out, "worker%d", (int)c->worker);
}

static bool wm_range(const sx_verify_result *r, const Shardex__Internal__V1__DigestResponse *dg,
                     uint64_t *lo, uint64_t *hi)
{
    if (!dg || dg->n_watermarks != r->nparts || r->nparts == 0)
        return false;
    *lo = UINT64_MAX;
    *hi = 0;
    for (size_t p = 0; p < dg->n_watermarks; p++) {
        *lo = dg->watermarks[p] < *lo ? dg->watermarks[p] : *lo;
        *hi = dg->watermarks[p] > *hi ? dg->watermarks[p] : *hi;
    }
    return true;
}

static void print_check(FILE *out, const sx_verify_result *r, const check *c)
{
    const Shardex__Internal__V1__DigestResponse *dg = last_digest(c);
    bool compared = !c->error && !c->stop;
    put_label(out, c, true);
    if (c->kind == CK_DOCS && !c->error) {
        fprintf(out, " at=%" PRIu64 " docs=%" PRIu64, c->at, c->ndocs);
        if (compared && c->ndiffs && !c->trimmed)
            fprintf(out, " expected=%" PRIu64, c->exp_docs);
    } else if (dg) {
        uint64_t lo, hi;
        if (c->kind == CK_LOCAL)
            fprintf(out, " at=%" PRIu64, c->at);
        else if (wm_range(r, dg, &lo, &hi))
            fprintf(out, " wm=%" PRIu64 "..%" PRIu64, lo, hi);
        fprintf(out, " entries=%" PRIu64, dg->count);
        if (compared && c->ndiffs && c->exp_count != dg->count)
            fprintf(out, " expected=%" PRIu64, c->exp_count);
        if (c->kind == CK_LOCAL && !dg->active)
            fputs(" inactive", out);
    }
    if (c->carried)
        fprintf(out, " carried=%" PRIu64, c->carried);
    if (c->below)
        fputs(" below-log-start", out);
    if (c->nunknown)
        fprintf(out, " undetermined=%" PRIu64, c->nunknown);
    if (c->excluded)
        fprintf(out, " excluded=%" PRIu64, c->excluded);
    if (c->nexcl_parts)
        fprintf(out, " unrecomputed-partitions=%" PRIu64, c->nexcl_parts);
    if (c->nsplit_unknown)
        fprintf(out, " split-undetermined=%" PRIu64, c->nsplit_unknown);
    if (c->nsalt_unknown)
        fprintf(out, " salt-undetermined=%" PRIu64, c->nsalt_unknown);
    if (c->error)
        fprintf(out, " FAILED: %s\n", c->error);
    else if (c->ndiffs)
        fprintf(out, " DIFFERENT (%" PRIu64 ")\n", c->ndiffs);
    else
        fputs(" ok\n", out);
}

static void print_diff(FILE *out, const sx_verify_result *r, const diff *d)
{
    const check *c = &r->checks[d->check];
    fprintf(out, "%-13s ", diff_kinds[d->kind].human);
    put_label(out, c, false);
    if (!d->entry) {
        fprintf(out, " %s\n", d->detail ? d->detail : "");
        return;
    }
    if (d->has_value) {
        fputs(" value=", out);
        if (d->value_int)
            fprintf(out, "%" PRId64, d->vi);
        else
            put_quoted(out, d->vs, d->vs_len);
    }
    fputs(" id=", out);
    put_quoted(out, d->id, d->id_len);
    if (d->kind == D_DIVERGED)
        fprintf(out, " %s served=%" PRIu64 " leader's=%" PRIu64, d->detail, d->served, d->expected);
    else if (d->kind == D_WRONG_VERSION)
        fprintf(out, " served=%" PRIu64 " expected=%" PRIu64, d->served, d->expected);
    else
        fprintf(out, " version=%" PRIu64, d->version);
    if (c->kind == CK_GLOBAL && d->from >= 0)
        fprintf(out, " (from p=%d)", (int)d->from);
    fputc('\n', out);
}

/* Kept differences grouped by check, each group in the order found. */
static int diff_order(const void *a, const void *b)
{
    const diff *x = *(const diff *const *)a, *y = *(const diff *const *)b;
    if (x->check != y->check)
        return x->check < y->check ? -1 : 1;
    return (x > y) - (x < y);
}

static const diff **sorted_diffs(const sx_verify_result *r)
{
    const diff **v = sx_malloc((r->ndiffs + 1) * sizeof(*v));
    for (size_t i = 0; i < r->ndiffs; i++)
        v[i] = &r->diffs[i];
    qsort(v, r->ndiffs, sizeof(*v), diff_order);
    return v;
}

void sx_verify_result_print(const sx_verify_result *r, FILE *out)
{
    fprintf(out, "verify server=%s map_version=%" PRIu64 " partitions=%u indexes=%zu\n", r->server,
            r->map->version, r->nparts, r->map->n_indexes);
    for (uint32_t p = 0; p < r->nparts; p++)
        if (r->rlogs[p])
            fprintf(out,
                    "log    p=%u trimmed: starts at %" PRIu64 ", read to %" PRIu64 " from %s\n", p,
                    sx_rlog_start(r->rlogs[p]), sx_rlog_end(r->rlogs[p]), r->rlog_from[p]);
    const diff **v = sorted_diffs(r);
    size_t k = 0;
    for (size_t i = 0; i < r->nchecks; i++) {
        print_check(out, r, &r->checks[i]);
        for (; k < r->ndiffs && v[k]->check == i; k++)
            print_diff(out, r, v[k]);
    }
    free(v);
    sx_verify_summary s;
    sx_verify_result_summary(r, &s);
    fprintf(out,
            "summary: %zu checks: %zu ok, %zu different, %zu failed; %" PRIu64
            " differences (%" PRIu64 " missing, %" PRIu64 " extra, %" PRIu64 " wrong, %" PRIu64
            " other)",
            s.checks, s.ok, s.different, s.failed, s.diffs, s.missing, s.extra, s.wrong, s.other);
    if (s.diffs > r->ndiffs)
        fprintf(out, "; the first %zu shown (--max-diffs)", r->ndiffs);
    if (s.trimmed)
        fprintf(out,
                "; %zu trimmed logs: %" PRIu64 " documents from before the log start checked "
                "against the leader's only, %" PRIu64 " ids (%" PRIu64
                " served entries) and %zu partition views (%zu of them for a split's place, "
                "%zu for salt offsets not listed) not determined, not compared",
                s.trimmed, s.carried, s.undetermined, s.excluded, s.unrecomputed, s.split_unknown,
                s.salt_unknown);
    fputc('\n', out);
}

/* A JSON string of n bytes; bytes that are not UTF-8 are written as \xNN. */
static json_t *json_bytes(const char *s, size_t n)
{
    json_t *j = json_stringn(s, n);
    if (j)
        return j;
    sx_buf b = {0};
    char hex[5];
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch >= 0x20 && ch < 0x7f) {
            sx_buf_push(&b, ch);
        } else {
            snprintf(hex, sizeof(hex), "\\x%02x", ch);
            sx_buf_append(&b, hex, 4);
        }
    }
    j = json_stringn(b.len ? (const char *)b.data : "", b.len);
    sx_buf_free(&b);
    return j;
}

static json_t *json_u64(uint64_t v)
{
    return json_integer((json_int_t)v);
}

static json_t *json_hex(uint64_t v)
{
    char b[24];
    snprintf(b, sizeof(b), "%016" PRIx64, v);
    return json_string(b);
}

static void json_where(json_t *o, const check *c)
{
    json_object_set_new(o, "check", json_string(check_kind_name(c->kind)));
    if (c->kind != CK_DOCS) {
        json_object_set_new(o, "index", json_bytes(index_name(c), strlen(index_name(c))));
        json_object_set_new(o, "index_id", json_u64(c->ix->id));
    }
    json_object_set_new(o, c->kind == CK_GLOBAL ? "term_partition" : "partition",
                        json_integer(c->part));
    /* The replica (documents, local) or the owner (global) asked. */
    if (c->worker >= 0)
        json_object_set_new(o, "worker", json_string(c->wid));
    if (c->addr)
        json_object_set_new(o, "address", json_string(c->addr));
    if (c->kind != CK_GLOBAL && c->worker >= 0)
        json_object_set_new(o, "role", json_string(c->leader ? "leader" : "follower"));
}

static json_t *json_check(const sx_verify_result *r, const check *c)
{
    json_t *o = json_object();
    json_where(o, c);
    json_object_set_new(o, "status",
                        json_string(c->error    ? "failed"
                                    : c->ndiffs ? "different"
                                                : "ok"));
    bool compared = !c->error && !c->stop;
    const Shardex__Internal__V1__DigestResponse *dg = last_digest(c);
    if (c->kind == CK_DOCS && !c->error) {
        json_object_set_new(o, "at", json_u64(c->at));
        json_object_set_new(o, "docs", json_u64(c->ndocs));
        if (compared && !c->trimmed)
            json_object_set_new(o, "expected_docs", json_u64(c->exp_docs));
    } else if (dg) {
        if (c->kind == CK_LOCAL) {
            json_object_set_new(o, "at", json_u64(c->at));
            json_object_set_new(o, "active", json_boolean(dg->active));
            if (compared)
                json_object_set_new(o, "expected_active", json_boolean(c->exp_active));
        } else {
            json_object_set_new(o, "epoch", json_u64(c->epoch));
            json_t *wm = json_array();
            for (size_t p = 0; p < dg->n_watermarks; p++)
                json_array_append_new(wm, json_u64(dg->watermarks[p]));
            json_object_set_new(o, "watermarks", wm);
        }
        json_object_set_new(o, "entries", json_u64(dg->count));
        json_object_set_new(o, "digest", json_hex(dg->digest));
        if (compared) {
            json_object_set_new(o, "expected_entries", json_u64(c->exp_count));
            json_object_set_new(o, "expected_digest", json_hex(c->exp_digest));
        }
    }
    json_object_set_new(o, "differences", json_u64(c->ndiffs));
    if (c->carried)
        json_object_set_new(o, "carried", json_u64(c->carried));
    if (c->below)
        json_object_set_new(o, "below_log_start", json_true());
    if (c->nunknown)
        json_object_set_new(o, "undetermined", json_u64(c->nunknown));
    if (c->excluded)
        json_object_set_new(o, "excluded_entries", json_u64(c->excluded));
    if (c->nexcl_parts)
        json_object_set_new(o, "unrecomputed_partitions", json_u64(c->nexcl_parts));
    if (c->nsplit_unknown)
        json_object_set_new(o, "split_undetermined", json_u64(c->nsplit_unknown));
    if (c->nsalt_unknown)
        json_object_set_new(o, "salt_undetermined", json_u64(c->nsalt_unknown));
    if (c->error)
        json_object_set_new(o, "error", json_bytes(c->error, strlen(c->error)));
    (void)r;
    return o;
}

static json_t *json_diff(const sx_verify_result *r, const diff *d)
{
    const check *c = &r->checks[d->check];
    json_t *o = json_object();
    json_object_set_new(o, "kind", json_string(diff_kinds[d->kind].json));
    json_where(o, c);
    if (d->entry) {
        if (d->has_value)
            json_object_set_new(o, "value",
                                d->value_int ? json_integer(d->vi) : json_bytes(d->vs, d->vs_len));
        json_object_set_new(o, "id", json_bytes(d->id, d->id_len));
        if (d->kind == D_DIVERGED)
            json_object_set_new(o, "how", json_string(d->detail));
        if (d->kind == D_WRONG_VERSION || d->kind == D_DIVERGED) {
            json_object_set_new(o, "served", json_u64(d->served));
            json_object_set_new(o, "expected", json_u64(d->expected));
        } else {
            json_object_set_new(o, "version", json_u64(d->version));
        }
    } else {
        json_object_set_new(
            o, "detail", json_bytes(d->detail ? d->detail : "", d->detail ? strlen(d->detail) : 0));
    }
    if (d->from >= 0)
        json_object_set_new(o, "from_partition", json_integer(d->from));
    return o;
}

char *sx_verify_result_json(const sx_verify_result *r)
{
    json_t *root = json_object();
    json_object_set_new(root, "server", json_string(r->server));
    json_object_set_new(root, "map_version", json_u64(r->map->version));
    json_object_set_new(root, "partitions", json_integer(r->nparts));
    json_t *trims = json_array();
    for (uint32_t p = 0; p < r->nparts; p++)
        if (r->rlogs[p])
            json_array_append_new(
                trims, json_pack("{s:i, s:I, s:I, s:s}", "partition", (int)p, "log_start",
                                 (json_int_t)sx_rlog_start(r->rlogs[p]), "read_to",
                                 (json_int_t)sx_rlog_end(r->rlogs[p]), "from", r->rlog_from[p]));
    json_object_set_new(root, "trimmed_logs", trims);
    json_t *checks = json_array();
    for (size_t i = 0; i < r->nchecks; i++)
        json_array_append_new(checks, json_check(r, &r->checks[i]));
    json_object_set_new(root, "checks", checks);
    json_t *diffs = json_array();
    const diff **v = sorted_diffs(r);
    for (size_t i = 0; i < r->ndiffs; i++)
        json_array_append_new(diffs, json_diff(r, v[i]));
    free(v);
    json_object_set_new(root, "differences", diffs);
    sx_verify_summary s;
    sx_verify_result_summary(r, &s);
    json_t *sum = json_object();
    json_object_set_new(sum, "checks", json_u64(s.checks));
    json_object_set_new(sum, "ok", json_u64(s.ok));
    json_object_set_new(sum, "different", json_u64(s.different));
    json_object_set_new(sum, "failed", json_u64(s.failed));
    json_object_set_new(sum, "differences", json_u64(s.diffs));
    json_object_set_new(sum, "differences_shown", json_u64(r->ndiffs));
    json_object_set_new(sum, "missing", json_u64(s.missing));
    json_object_set_new(sum, "extra", json_u64(s.extra));
    json_object_set_new(sum, "wrong", json_u64(s.wrong));
    json_object_set_new(sum, "other", json_u64(s.other));
    json_object_set_new(sum, "trimmed_logs", json_u64(s.trimmed));
    json_object_set_new(sum, "carried", json_u64(s.carried));
    json_object_set_new(sum, "undetermined", json_u64(s.undetermined));
    json_object_set_new(sum, "excluded_entries", json_u64(s.excluded));
    json_object_set_new(sum, "unrecomputed_partitions", json_u64(s.unrecomputed));
    json_object_set_new(sum, "split_undetermined", json_u64(s.split_unknown));
    json_object_set_new(sum, "salt_undetermined", json_u64(s.salt_unknown));
    json_object_set_new(root, "summary", sum);
    json_object_set_new(root, "exit", json_integer(sx_verify_result_exit_code(r)));
    char *text = json_dumps(root, JSON_INDENT(2));
    json_decref(root);
    if (!text) {
        fprintf(stderr, "shardex: out of memory writing JSON\n");
        abort();
    }
    return text;
}

void sx_verify_result_free(sx_verify_result *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->nchecks; i++) {
        check *c = &r->checks[i];
        sx_rpc_free(c->dg0 ? &c->dg0->base : NULL);
        sx_rpc_free(c->dg ? &c->dg->base : NULL);
        sx_rpc_free(c->scan ? &c->scan->base : NULL);
        sx_replay_entries_free(&c->exp);
        sx_hmap_free(&c->unknown, NULL);
        free(c->excl_part);
        free(c->error);
    }
    for (uint32_t p = 0; r->rlogs && p < r->nparts; p++)
        sx_rlog_destroy(r->rlogs[p]);
    free(r->rlogs);
    free(r->rlog_from);
    for (size_t i = 0; i < r->ndiffs; i++)
        diff_free(&r->diffs[i]);
    free(r->diffs);
    free(r->checks);
    for (size_t i = 0; i < r->ndead; i++)
        free(r->dead[i]);
    free(r->dead);
    sx_rpc_free(&r->map->base);
    free(r->server);
    free(r);
}

/* =============================================================== command == */

typedef struct verify_cfg {
    const char *server;
    uint64_t timeout_ms;
    bool json;
    uint32_t max_diffs;
} verify_cfg;

#define VOFF(m, t) SX_FLAG_OFFSET(verify_cfg, m, t)
static const sx_flag verify_flags[] = {
    {.name = "json",
     .type = SX_FLAG_BOOL,
     .offset = VOFF(json, bool),
     .help = "print one JSON object instead of lines"},
    {.name = "max-diffs",
     .type = SX_FLAG_UINT32,
     .offset = VOFF(max_diffs, uint32_t),
     .metavar = "N",
     .help = "differences to list (all are counted); 0: all"},
    {.name = "server",
     .short_name = 's',
     .type = SX_FLAG_HOSTPORT,
     .offset = VOFF(server, const char *),
     .help = "a worker (or the coordinator) to get the map from"},
    {.name = "timeout-ms",
     .type = SX_FLAG_DURATION_MS,
     .offset = VOFF(timeout_ms, uint64_t),
     .metavar = "MS",
     .help = "deadline of each call",
     .min = 1,
     .max = 3600000},
};

static const sx_flags_spec verify_spec = {
    .prog = "shardex verify",
    .synopsis = "[FLAGS]",
    .description =
        "Reads every log partition, recomputes what the documents and each local index of every "
        "replica (leader and followers) and each term partition of each global index must hold "
        "at the position it is served at, and compares with what the cluster serves. A log trimmed "
        "by "
        "log retention is checked against the part it keeps and the leader's copy of older "
        "documents; what that cannot determine is counted, not compared. Prints one "
        "line per check and one per "
        "difference (MISSING, EXTRA, WRONG-VERSION, ...). Exit status: 0 everything equal, 1 a "
        "difference, 2 bad usage, 3 the cluster could not be read (no leader, a node down, a "
        "deadline).",
    .flags = verify_flags,
    .count = sizeof(verify_flags) / sizeof(verify_flags[0]),
};

typedef struct rpc_call_arg {
    sx_rpc_client *client;
    uint64_t timeout_ms;
} rpc_call_arg;

static sx_status rpc_call(void *arg, const char *addr, const ProtobufCServiceDescriptor *svc,
                          const char *method, const ProtobufCMessage *req, ProtobufCMessage **resp,
                          sx_err *err)
{
    const rpc_call_arg *a = arg;
    /* Every call verify makes reads: safe to retry within the deadline. */
    sx_rpc_call_opts co = {.timeout_ms = a->timeout_ms, .idempotent = true};
    return sx_rpc_invoke(a->client, addr, svc, method, req, resp, &co, err);
}

int sx_cli_verify(const sx_cli *cli, int argc, char **argv)
{
    verify_cfg cfg = {
        .server = cli->server, .timeout_ms = cli->timeout_ms, .max_diffs = VFY_DEFAULT_MAX_DIFFS};
    verify_cfg defaults = cfg;
    bool help = false;
    sx_err err = {0};
    if (sx_flags_parse(&verify_spec, &cfg, argc, argv, &help, NULL, &err) != SX_OK) {
        fprintf(stderr, "%s verify: %s\nTry '%s verify --help'.\n", cli->prog, err.msg, cli->prog);
        return SX_EXIT_USAGE;
    }
    if (help) {
        sx_flags_usage(&verify_spec, &defaults, stdout);
        return SX_EXIT_OK;
    }
    /* verify reads the replicas' logs through the internal services: with
     * TLS it needs a node's certificate (docs/security.md). */
    sx_rpc_tls tls = {cli->tls_cert, cli->tls_key, cli->tls_ca};
    sx_rpc_client_opts co = {.max_message_bytes = VFY_MAX_MESSAGE,
                             .tls = cli->tls_ca ? &tls : NULL,
                             .token = cli->token};
    sx_rpc_client *client = NULL;
    if (sx_rpc_client_create(&co, &client, &err) != SX_OK) {
        fprintf(stderr, "%s verify: %s\n", cli->prog, err.msg);
        return err.code == SX_INVALID_ARGUMENT ? SX_EXIT_USAGE : SX_EXIT_UNAVAILABLE;
    }
    rpc_call_arg ca = {client, cfg.timeout_ms};
    sx_verify_opts o = {
        .server = cfg.server, .call = rpc_call, .call_arg = &ca, .max_diffs = cfg.max_diffs};
    sx_verify_result *r = NULL;
    int code;
    sx_status st = sx_verify_run(&o, &r, &err);
    if (st != SX_OK) {
        /* Refused (no node certificate, say) is not the cluster being down. */
        code = st == SX_PERMISSION_DENIED || st == SX_UNAUTHENTICATED ? SX_EXIT_REFUSED
                                                                      : SX_EXIT_UNAVAILABLE;
        if (cfg.json) {
            json_t *j = json_pack("{s:s, s:s, s:s, s:i}", "server", cfg.server, "status",
                                  sx_status_name(st), "error", err.msg, "exit", code);
            char *text = j ? json_dumps(j, JSON_INDENT(2)) : NULL;
            if (text)
                printf("%s\n", text);
            free(text);
            json_decref(j);
        } else {
            fprintf(stderr, "%s verify: %s: %s\n", cli->prog, sx_status_name(st), err.msg);
        }
    } else {
        code = sx_verify_result_exit_code(r);
        if (cfg.json) {
            char *text = sx_verify_result_json(r);
            printf("%s\n", text);
            free(text);
        } else {
            sx_verify_result_print(r, stdout);
        }
    }
    sx_verify_result_free(r);
    sx_rpc_client_destroy(client);
    sx_rpc_wait_shutdown(2000);
    fflush(stdout);
    return code;
}
