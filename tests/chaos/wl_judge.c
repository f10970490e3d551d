/* wl_judge.c: the chaos workload's checkers (wl_judge.h): per key, the final
 * state against the history; per query, the hits against the documents.
 * Sizes are those of a test (thousands of keys): queries compare against
 * every key, which is quadratic and plenty fast there.
 */
#include "wl_judge.h"

#include "hmap.h"
#include "mem.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static const char kind_letter[SX_JUDGE_KINDS] = {'A', 'U', 'L', 'G', 'D', 'V', 'E'};

/* One key: its operations and what was read. */
typedef struct key_rec {
    const char *key; /* borrowed from the history */
    size_t *ops;     /* indices into h->ops, in the writer's order */
    size_t n, cap;
    bool read;  /* a Get answered */
    bool found; /* ... and found the document */
    char *v;    /* its fields v and g (NULL: missing or not a string) */
    char *g;
} key_rec;

typedef struct violation {
    sx_judge_kind kind;
    char *subject;
    char *detail;
} violation;

struct sx_judge {
    const sx_history *h;
    key_rec *keys;
    size_t nkeys;
    sx_hmap key_ix;   /* key -> index + 1 */
    sx_hmap value_op; /* put value -> op index + 1 */
    char **groups;    /* "g0" .. "g<groups-1>" */
    violation *viol;
    size_t nviol, capviol;
};

/* ------------------------------------------------------------ create/free -- */

static int by_writer_op(const void *a, const void *b, void *arg)
{
    const sx_hist_op *ops = arg, *x = &ops[*(const size_t *)a], *y = &ops[*(const size_t *)b];
    if (x->writer != y->writer)
        return x->writer < y->writer ? -1 : 1;
    return x->op < y->op ? -1 : x->op > y->op;
}

static void add_op(sx_judge *j, size_t i)
{
    const sx_hist_op *op = &j->h->ops[i];
    bool created;
    void **slot = sx_hmap_upsert(&j->key_ix, op->key, strlen(op->key), &created);
    if (created) {
        j->keys = sx_realloc(j->keys, (j->nkeys + 1) * sizeof(*j->keys));
        j->keys[j->nkeys] = (key_rec){.key = op->key};
        *slot = (void *)(uintptr_t)++j->nkeys;
    }
    key_rec *k = &j->keys[(uintptr_t)*slot - 1];
    if (k->n == k->cap) {
        k->cap = k->cap ? 2 * k->cap : 8;
        k->ops = sx_realloc(k->ops, k->cap * sizeof(*k->ops));
    }
    k->ops[k->n++] = i;
    if (op->value)
        sx_hmap_put(&j->value_op, op->value, strlen(op->value), (void *)(uintptr_t)(i + 1), NULL);
}

sx_judge *sx_judge_create(const sx_history *h)
{
    sx_judge *j = sx_calloc(1, sizeof(*j));
    j->h = h;
    for (size_t i = 0; i < h->n; i++)
        add_op(j, i);
    for (size_t k = 0; k < j->nkeys; k++)
        qsort_r(j->keys[k].ops, j->keys[k].n, sizeof(size_t), by_writer_op, h->ops);
    j->groups = sx_calloc(h->groups + 1, sizeof(*j->groups));
    for (uint32_t g = 0; g < h->groups; g++) {
        char name[16];
        snprintf(name, sizeof(name), "g%u", g);
        j->groups[g] = sx_strdup(name);
    }
    return j;
}

void sx_judge_free(sx_judge *j)
{
    if (!j)
        return;
    for (size_t k = 0; k < j->nkeys; k++) {
        free(j->keys[k].ops);
        free(j->keys[k].v);
        free(j->keys[k].g);
    }
    for (size_t i = 0; i < j->nviol; i++) {
        free(j->viol[i].subject);
        free(j->viol[i].detail);
    }
    for (uint32_t g = 0; g < j->h->groups; g++)
        free(j->groups[g]);
    free(j->groups);
    free(j->keys);
    free(j->viol);
    sx_hmap_free(&j->key_ix, NULL);
    sx_hmap_free(&j->value_op, NULL);
    free(j);
}

void sx_judge_add(sx_judge *j, sx_judge_kind kind, const char *subject, const char *fmt, ...)
{
    char detail[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    if (j->nviol == j->capviol) {
        j->capviol = j->capviol ? 2 * j->capviol : 16;
        j->viol = sx_realloc(j->viol, j->capviol * sizeof(*j->viol));
    }
    j->viol[j->nviol++] = (violation){kind, sx_strdup(subject), sx_strdup(detail)};
}

/* ------------------------------------------------------------- documents -- */

size_t sx_judge_nkeys(const sx_judge *j)
{
    return j->nkeys;
}

const char *sx_judge_key(const sx_judge *j, size_t i)
{
    return j->keys[i].key;
}

void sx_judge_key_tokens(const sx_judge *j, size_t i, sx_token_set *ts)
{
    for (size_t k = 0; k < j->keys[i].n; k++) {
        const sx_hist_op *op = &j->h->ops[j->keys[i].ops[k]];
        if (op->outcome != SX_HIST_OK || !op->has_token)
            continue;
        Shardex__V1__WriteToken t = SHARDEX__V1__WRITE_TOKEN__INIT;
        t.partition = op->partition;
        t.offset = op->offset;
        sx_token_set_add(ts, &t);
    }
}

static char *str_field(const Shardex__V1__Document *d, const char *name)
{
    const Shardex__V1__Value *v = sx_doc_field(d, name);
    return v && v->kind_case == SHARDEX__V1__VALUE__KIND_S ? sx_strdup(v->s) : NULL;
}

void sx_judge_doc(sx_judge *j, size_t i, const Shardex__V1__GetResponse *r)
{
    key_rec *k = &j->keys[i];
    k->read = true;
    k->found = r->found && r->doc;
    if (k->found) {
        k->v = str_field(r->doc, "v");
        k->g = str_field(r->doc, "g");
    }
}

/* The op of a put value, or NULL. */
static const sx_hist_op *op_of_value(const sx_judge *j, const char *value)
{
    void *v;
    if (!value || !sx_hmap_get(&j->value_op, value, strlen(value), &v))
        return NULL;
    return &j->h->ops[(uintptr_t)v - 1];
}

/* Whether op's effect (its value, or not found for a delete) is what was read. */
static bool op_matches(const sx_hist_op *op, const key_rec *k)
{
    if (op->kind == SX_HIST_DELETE)
        return !k->found;
    return k->found && k->v && strcmp(op->value, k->v) == 0;
}

/* The position in k->ops of the last ok operation, or -1. */
static long last_ok(const sx_judge *j, const key_rec *k)
{
    long last = -1;
    for (size_t i = 0; i < k->n; i++)
        if (j->h->ops[k->ops[i]].outcome == SX_HIST_OK)
            last = (long)i;
    return last;
}

/* Whether the state read is allowed (see A in wl_judge.h). */
static bool state_allowed(const sx_judge *j, const key_rec *k, long last)
{
    if (last < 0 ? !k->found : op_matches(&j->h->ops[k->ops[last]], k))
        return true;
    for (size_t i = (size_t)(last + 1); i < k->n; i++) {
        const sx_hist_op *op = &j->h->ops[k->ops[i]];
        if (op->outcome == SX_HIST_UNKNOWN && op_matches(op, k))
            return true;
    }
    return false;
}

/* U: the value read is not a value some writer put on this key, or its g
 * field does not go with it. True when it reported one. */
static bool check_written(sx_judge *j, const key_rec *k)
{
    if (!k->found)
        return false;
    const sx_hist_op *op = op_of_value(j, k->v);
    char g[32];
    if (!k->v)
        sx_judge_add(j, SX_JUDGE_U, k->key, "document without a string field v");
    else if (!op)
        sx_judge_add(j, SX_JUDGE_U, k->key, "read v=\"%s\", which no writer wrote", k->v);
    else if (strcmp(op->key, k->key) != 0)
        sx_judge_add(j, SX_JUDGE_U, k->key, "read v=\"%s\", which was written to key %s", k->v,
                     op->key);
    else if (!k->g || strcmp(k->g, sx_hist_group(k->v, j->h->groups, g, sizeof(g))) != 0)
        sx_judge_add(j, SX_JUDGE_U, k->key, "read g=\"%s\" with v=\"%s\", which has g=\"%s\"",
                     k->g ? k->g : "(none)", k->v, g);
    else
        return false;
    return true;
}

/* An A violation with why the state read is not allowed. */
static void report_state(sx_judge *j, const key_rec *k, long last)
{
    char want[160] = "not found (no ok operation)";
    if (last >= 0) {
        const sx_hist_op *o = &j->h->ops[k->ops[last]];
        if (o->value)
            snprintf(want, sizeof(want), "v=\"%s\" of ok op %" PRIu64, o->value, o->op);
        else
            snprintf(want, sizeof(want), "not found (ok delete op %" PRIu64 ")", o->op);
    }
    const sx_hist_op *got = k->found ? op_of_value(j, k->v) : NULL;
    if (!k->found)
        sx_judge_add(j, SX_JUDGE_A, k->key, "not found; want %s: an acknowledged write lost", want);
    else if (got->outcome == SX_HIST_FAIL)
        sx_judge_add(j, SX_JUDGE_A, k->key,
                     "read v=\"%s\" of op %" PRIu64 ", which failed (%s); want %s", k->v, got->op,
                     got->status, want);
    else
        sx_judge_add(j, SX_JUDGE_A, k->key,
                     "read v=\"%s\" of %s op %" PRIu64 "; want %s: acknowledged write lost or "
                     "an older write applied late",
                     k->v, sx_hist_outcome_name(got->outcome), got->op, want);
}

void sx_judge_check_docs(sx_judge *j)
{
    for (size_t i = 0; i < j->nkeys; i++) {
        const key_rec *k = &j->keys[i];
        for (size_t o = 0; o < k->n; o++) {
            const sx_hist_op *op = &j->h->ops[k->ops[o]];
            if (op->kind == SX_HIST_BAD && op->outcome == SX_HIST_OK)
                sx_judge_add(j, SX_JUDGE_A, k->key,
                             "op %" PRIu64 " (a Put with an invalid field) was acknowledged",
                             op->op);
        }
        if (!k->read || check_written(j, k))
            continue;
        long last = last_ok(j, k);
        if (!state_allowed(j, k, last))
            report_state(j, k, last);
    }
}

/* --------------------------------------------------------------- queries -- */

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void add_query(sx_judge_query **q, size_t *n, size_t *cap, const char *index,
                      const char *field, const char *value)
{
    if (*n == *cap) {
        *cap = *cap ? 2 * *cap : 64;
        *q = sx_realloc(*q, *cap * sizeof(**q));
    }
    sx_judge_query *x = &(*q)[(*n)++];
    snprintf(x->index, sizeof(x->index), "%s_%s", index, field);
    snprintf(x->field, sizeof(x->field), "%s", field);
    x->value = value;
}

/* Put values of the history that their key (read back) does not hold now,
 * shuffled by the seed. */
static size_t old_values(const sx_judge *j, const char ***out)
{
    const char **v = sx_calloc(j->h->n + 1, sizeof(*v));
    size_t n = 0;
    for (size_t i = 0; i < j->h->n; i++) {
        const sx_hist_op *op = &j->h->ops[i];
        void *ki;
        if (!op->value || !sx_hmap_get(&j->key_ix, op->key, strlen(op->key), &ki))
            continue;
        const key_rec *k = &j->keys[(uintptr_t)ki - 1];
        if (k->read && !(k->found && k->v && strcmp(k->v, op->value) == 0))
            v[n++] = op->value;
    }
    uint64_t s = j->h->seed;
    for (size_t i = n; i > 1; i--) {
        size_t r = (size_t)(splitmix(&s) % i);
        const char *t = v[i - 1];
        v[i - 1] = v[r];
        v[r] = t;
    }
    *out = v;
    return n;
}

size_t sx_judge_queries(const sx_judge *j, uint32_t sample, sx_judge_query **out)
{
    sx_judge_query *q = NULL;
    size_t n = 0, cap = 0;
    for (size_t i = 0; i < j->nkeys; i++)
        if (j->keys[i].found && j->keys[i].v)
            add_query(&q, &n, &cap, j->h->index, "v", j->keys[i].v);
    const char **old;
    size_t nold = old_values(j, &old);
    for (size_t i = 0; i < nold && i < sample; i++)
        add_query(&q, &n, &cap, j->h->index, "v", old[i]);
    free(old);
    for (uint32_t g = 0; g < j->h->groups; g++)
        add_query(&q, &n, &cap, j->h->index, "g", j->groups[g]);
    *out = q;
    return n;
}

void sx_judge_hits_add(sx_judge_hits *h, const char *id, const char *value)
{
    if (h->n == h->cap) {
        h->cap = h->cap ? 2 * h->cap : 64;
        h->ids = sx_realloc(h->ids, h->cap * sizeof(*h->ids));
        h->values = sx_realloc(h->values, h->cap * sizeof(*h->values));
    }
    h->ids[h->n] = sx_arena_strdup(&h->arena, id ? id : "");
    h->values[h->n] = value ? sx_arena_strdup(&h->arena, value) : NULL;
    h->n++;
}

void sx_judge_hits_free(sx_judge_hits *h)
{
    free(h->ids);
    free(h->values);
    sx_arena_free(&h->arena);
    memset(h, 0, sizeof(*h));
}

/* The value of field ("v" or "g") that key k holds now, or NULL. */
static const char *current(const key_rec *k, const char *field)
{
    return !k->read || !k->found ? NULL : field[0] == 'v' ? k->v : k->g;
}

/* Judges hit i of a query, if it is a document of this run (its id starts
 * with the run's tag): D for a second hit on it, U for an id not in the
 * history, L/G for a hit with another value or on a document whose current
 * value is not q's. Marks it in seen. */
static void check_hit(sx_judge *j, const sx_judge_query *q, sx_judge_kind lg,
                      const sx_judge_hits *hits, size_t i, sx_hmap *seen)
{
    const char *id = hits->ids[i], *hv = hits->values[i];
    size_t rl = strlen(j->h->run);
    if (strncmp(id, j->h->run, rl) != 0 || id[rl] != '-')
        return; /* another run's document (g values are shared by runs) */
    bool created;
    void **slot = sx_hmap_upsert(seen, id, strlen(id), &created);
    if (!created) {
        sx_judge_add(j, SX_JUDGE_D, id, "%s=\"%s\": hit %zu times", q->index, q->value,
                     (size_t)(uintptr_t)*slot + 1);
        *slot = (void *)((uintptr_t)*slot + 1);
        return;
    }
    *slot = (void *)(uintptr_t)1;
    void *ki;
    if (!sx_hmap_get(&j->key_ix, id, strlen(id), &ki)) {
        sx_judge_add(j, SX_JUDGE_U, id, "%s=\"%s\": a hit on a document no writer wrote", q->index,
                     q->value);
        return;
    }
    const key_rec *k = &j->keys[(uintptr_t)ki - 1];
    if (!k->read)
        return; /* its Get failed: E already, nothing to compare with */
    const char *cur = current(k, q->field);
    if (!hv || strcmp(hv, q->value) != 0)
        sx_judge_add(j, lg, id, "%s=\"%s\": a hit with value \"%s\"", q->index, q->value,
                     hv ? hv : "(not a string)");
    else if (!cur || strcmp(cur, q->value) != 0)
        sx_judge_add(j, lg, id, "%s=\"%s\": extra hit (stale entry); the document has %s", q->index,
                     q->value, cur ? cur : "none (deleted)");
}

static const char *mode_name(Shardex__V1__Mode m)
{
    const ProtobufCEnumValue *v =
        protobuf_c_enum_descriptor_get_value(&shardex__v1__mode__descriptor, (int)m);
    return v ? v->name : "?";
}

void sx_judge_query_result(sx_judge *j, const sx_judge_query *q, Shardex__V1__Mode asked,
                           Shardex__V1__Mode served, const sx_judge_hits *hits)
{
    sx_judge_kind lg = asked == SHARDEX__V1__MODE__MODE_GLOBAL ? SX_JUDGE_G : SX_JUDGE_L;
    if (served != asked)
        sx_judge_add(j, lg, q->index, "%s=\"%s\": served in %s, asked %s", q->index, q->value,
                     mode_name(served), mode_name(asked));
    sx_hmap seen = {0};
    for (size_t i = 0; i < hits->n; i++)
        check_hit(j, q, lg, hits, i, &seen);
    for (size_t i = 0; i < j->nkeys; i++) {
        const key_rec *k = &j->keys[i];
        const char *cur = current(k, q->field);
        if (cur && strcmp(cur, q->value) == 0 && !sx_hmap_get(&seen, k->key, strlen(k->key), NULL))
            sx_judge_add(j, lg, k->key, "%s=\"%s\": missing hit; the document has that value",
                         q->index, q->value);
    }
    sx_hmap_free(&seen, NULL);
}

/* ---------------------------------------------------------------- report -- */

size_t sx_judge_count(const sx_judge *j, sx_judge_kind kind)
{
    size_t n = 0;
    for (size_t i = 0; i < j->nviol; i++)
        n += j->viol[i].kind == kind;
    return n;
}

void sx_judge_print(const sx_judge *j, size_t max_rows, FILE *out)
{
    if (j->nviol)
        fprintf(out, "%-4s %-28s %s\n", "KIND", "SUBJECT", "DETAIL");
    for (size_t i = 0; i < j->nviol && (!max_rows || i < max_rows); i++)
        fprintf(out, "%-4c %-28s %s\n", kind_letter[j->viol[i].kind], j->viol[i].subject,
                j->viol[i].detail);
    if (max_rows && j->nviol > max_rows)
        fprintf(out, "... and %zu more\n", j->nviol - max_rows);
    fprintf(out, "violations:");
    for (int k = 0; k < SX_JUDGE_KINDS; k++)
        fprintf(out, " %c=%zu", kind_letter[k], sx_judge_count(j, (sx_judge_kind)k));
    fprintf(out, " total=%zu\n", j->nviol);
}

int sx_judge_exit_code(const sx_judge *j)
{
    size_t errors = sx_judge_count(j, SX_JUDGE_E);
    if (j->nviol > errors)
        return 1;
    return errors ? 3 : 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

enum { ANY = -1, BY_WRITER = 0, BY_PARTITION = 1 };

/* The longest time without an acknowledged operation among the ops of one
 * writer (BY_WRITER), of one partition (BY_PARTITION: the ok token's), or of
 * any (ANY): from the run's start, between two acknowledgements (sorted: the
 * writers' lines interleave), to the run's end (its trailer, else the last
 * operation's end). */
static uint64_t longest_gap(const sx_history *h, int by, uint32_t id)
{
    uint64_t *t = sx_malloc((h->n + 1) * sizeof(*t));
    uint64_t first = h->t0_ms, last = h->t0_ms;
    size_t n = 0;
    for (size_t i = 0; i < h->n; i++) {
        const sx_hist_op *op = &h->ops[i];
        if (!first || op->start_ms < first)
            first = op->start_ms;
        if (op->end_ms > last)
            last = op->end_ms;
        bool mine = by == ANY || (by == BY_WRITER && op->writer == id) ||
                    (by == BY_PARTITION && op->has_token && op->partition == id);
        if (mine && op->outcome == SX_HIST_OK)
            t[n++] = op->end_ms;
    }
    qsort(t, n, sizeof(*t), cmp_u64);
    uint64_t prev = h->t0_ms ? h->t0_ms : first, end = h->t1_ms ? h->t1_ms : last, gap = 0;
    t[n++] = end;
    for (size_t i = 0; i < n; i++) {
        if (t[i] > prev && t[i] - prev > gap)
            gap = t[i] - prev;
        if (t[i] > prev)
            prev = t[i];
    }
    free(t);
    return gap;
}

/* One writer's line (see sx_judge_print_availability). */
static uint64_t writer_figures(const sx_history *h, uint32_t w, FILE *out)
{
    size_t n = 0, by[3] = {0};
    for (size_t i = 0; i < h->n; i++) {
        if (h->ops[i].writer == w) {
            n++;
            by[h->ops[i].outcome]++;
        }
    }
    uint64_t gap = longest_gap(h, BY_WRITER, w);
    double not_ok = n ? 100.0 * (double)(by[SX_HIST_FAIL] + by[SX_HIST_UNKNOWN]) / (double)n : 0;
    fprintf(out, "%-6u %6zu %6zu %6zu %8zu %8.1f%% %14" PRIu64 "\n", w, n, by[SX_HIST_OK],
            by[SX_HIST_FAIL], by[SX_HIST_UNKNOWN], not_ok, gap);
    return gap;
}

void sx_judge_print_availability(const sx_history *h, uint32_t partitions, FILE *out)
{
    fprintf(out, "%-6s %6s %6s %6s %8s %9s %14s\n", "WRITER", "OPS", "OK", "FAIL", "UNKNOWN",
            "NOT-OK", "LONGEST-GAP-MS");
    uint64_t wmax = 0, pmax = 0;
    for (uint32_t w = 0; w < h->writers; w++) {
        uint64_t g = writer_figures(h, w, out);
        wmax = g > wmax ? g : wmax;
    }
    if (partitions) {
        fprintf(out, "%-9s %14s\n", "PARTITION", "LONGEST-GAP-MS");
        for (uint32_t p = 0; p < partitions; p++) {
            uint64_t g = longest_gap(h, BY_PARTITION, p);
            fprintf(out, "%-9u %14" PRIu64 "\n", p, g);
            pmax = g > pmax ? g : pmax;
        }
    }
    fprintf(out,
            "availability: writer-gap-ms=%" PRIu64 " partition-gap-ms=%" PRIu64
            " cluster-gap-ms=%" PRIu64 "\n",
            wmax, pmax, longest_gap(h, ANY, 0));
}
