/* metrics.c: the Prometheus registry (metrics.h).
 *
 * Layout: the registry holds families in a list (registration order, which is
 * the order they are rendered in); a family holds its children in a list
 * (creation order) and an index from their rendered label set to the child.
 * Values are atomics: counters a uint64_t, gauges and sums the bits of a
 * double (updated with compare-and-swap), histogram buckets a uint64_t each,
 * not cumulative (rendering sums them, and takes _count as the sum, so that
 * the +Inf bucket and _count always agree even while observations land).
 *
 * Locks: the registry's mutex guards the family list and the collectors and
 * is held across a scrape (one at a time); each family's mutex (taken after
 * the registry's) guards its children and the samples a scrape collects.
 * Updates take none.
 */
#include "metrics.h"

#include "hmap.h"

#include <assert.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const double sx_metrics_latency_buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                             0.1,    0.25,  0.5,    1,     2.5,  5,     10};
const size_t sx_metrics_latency_nbuckets =
    sizeof(sx_metrics_latency_buckets) / sizeof(sx_metrics_latency_buckets[0]);

struct sx_counter {
    _Atomic uint64_t v;
};

struct sx_gauge {
    _Atomic uint64_t bits; /* a double's bits */
};

struct sx_histogram {
    const double *bounds; /* the family's */
    size_t n;
    _Atomic uint64_t sum_bits;
    _Atomic uint64_t counts[]; /* n + 1: the last is +Inf; not cumulative */
};

typedef struct child {
    struct child *next;
    char *labels; /* rendered: `a="x",b="y"` (escaped), "" with no labels */
    sx_counter counter;
    sx_gauge gauge;
    sx_histogram *hist;
} child;

struct sx_metric_family {
    struct sx_metric_family *next;
    sx_metric_type type;
    bool collected;
    char *name;
    char *help;
    char *labels[SX_METRICS_MAX_LABELS];
    size_t nlabels;
    double *bounds;
    size_t nbounds;
    pthread_mutex_t mu;
    sx_hmap index; /* rendered labels -> child; for collected families, -> (void *)1 */
    child *children, **tail;
    sx_buf samples; /* collected: this scrape's sample lines */
};

typedef struct collector {
    struct collector *next;
    sx_metrics_collect_cb fn;
    void *arg;
    void (*free_arg)(void *);
} collector;

struct sx_metrics {
    pthread_mutex_t mu; /* families, collectors; held across a scrape */
    sx_metric_family *families, **tail;
    collector *collectors, **ctail;
};

struct sx_metrics_scrape {
    sx_metrics *m;
    sx_buf key; /* scratch */
};

/* ----------------------------------------------------------------- text -- */

static void buf_str(sx_buf *b, const char *s)
{
    sx_buf_append(b, s, strlen(s));
}

void sx_metrics_escape_label(sx_buf *out, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\')
            buf_str(out, "\\\\");
        else if (*s == '"')
            buf_str(out, "\\\"");
        else if (*s == '\n')
            buf_str(out, "\\n");
        else
            sx_buf_push(out, (uint8_t)*s);
    }
}

/* HELP text escapes only \ and newline. */
static void escape_help(sx_buf *out, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\')
            buf_str(out, "\\\\");
        else if (*s == '\n')
            buf_str(out, "\\n");
        else
            sx_buf_push(out, (uint8_t)*s);
    }
}

void sx_metrics_format_double(sx_buf *out, double v)
{
    char s[40];
    if (isnan(v))
        snprintf(s, sizeof(s), "NaN");
    else if (isinf(v))
        snprintf(s, sizeof(s), v > 0 ? "+Inf" : "-Inf");
    else if (v == floor(v) && fabs(v) < 9007199254740992.0) /* 2^53: exact as an integer */
        snprintf(s, sizeof(s), "%.0f", v);
    else {
        /* The shortest of %.15g..%.17g that reads back as v: "0.1", not
         * "0.10000000000000001". */
        for (int prec = 15; prec <= 17; prec++) {
            snprintf(s, sizeof(s), "%.*g", prec, v);
            if (strtod(s, NULL) == v)
                break;
        }
    }
    buf_str(out, s);
}

static bool name_ok(const char *s, bool colon)
{
    if (!s || !*s || (s[0] >= '0' && s[0] <= '9'))
        return false;
    for (const char *p = s; *p; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || (colon && c == ':')))
            return false;
    }
    return true;
}

/* `a="x",b="y"` for label names names[0..n) and values values[0..n). */
static void render_labels(sx_buf *out, char *const *names, size_t n, const char *const *values)
{
    for (size_t i = 0; i < n; i++) {
        if (i)
            sx_buf_push(out, ',');
        buf_str(out, names[i]);
        buf_str(out, "=\"");
        sx_metrics_escape_label(out, values[i] ? values[i] : "");
        sx_buf_push(out, '"');
    }
}

static double bits_double(uint64_t b)
{
    double d;
    memcpy(&d, &b, sizeof(d));
    return d;
}

static uint64_t double_bits(double d)
{
    uint64_t b;
    memcpy(&b, &d, sizeof(b));
    return b;
}

/* ------------------------------------------------------------- registry -- */

sx_metrics *sx_metrics_create(void)
{
    sx_metrics *m = sx_calloc(1, sizeof(*m));
    pthread_mutex_init(&m->mu, NULL);
    m->tail = &m->families;
    m->ctail = &m->collectors;
    return m;
}

static void family_free(sx_metric_family *f)
{
    for (child *c = f->children, *next; c; c = next) {
        next = c->next;
        free(c->hist);
        free(c->labels);
        free(c);
    }
    sx_hmap_free(&f->index, NULL);
    sx_buf_free(&f->samples);
    for (size_t i = 0; i < f->nlabels; i++)
        free(f->labels[i]);
    pthread_mutex_destroy(&f->mu);
    free(f->bounds);
    free(f->name);
    free(f->help);
    free(f);
}

void sx_metrics_destroy(sx_metrics *m)
{
    if (!m)
        return;
    for (sx_metric_family *f = m->families, *next; f; f = next) {
        next = f->next;
        family_free(f);
    }
    for (collector *c = m->collectors, *next; c; c = next) {
        next = c->next;
        if (c->free_arg)
            c->free_arg(c->arg);
        free(c);
    }
    pthread_mutex_destroy(&m->mu);
    free(m);
}

/* Whether f has this shape (a name registered again must keep it). */
static bool same_shape(const sx_metric_family *f, sx_metric_type type, bool collected,
                       const char *const *labels, size_t nlabels, const double *buckets,
                       size_t nbuckets)
{
    if (f->type != type || f->collected != collected || f->nlabels != nlabels)
        return false;
    for (size_t i = 0; i < nlabels; i++)
        if (strcmp(f->labels[i], labels[i]) != 0)
            return false;
    if (type == SX_METRIC_HISTOGRAM) {
        if (f->nbounds != nbuckets)
            return false;
        for (size_t i = 0; i < nbuckets; i++)
            if (f->bounds[i] != buckets[i])
                return false;
    }
    return true;
}

static sx_metric_family *family_new(sx_metrics *m, sx_metric_type type, bool collected,
                                    const char *name, const char *help, const char *const *labels,
                                    size_t nlabels, const double *buckets, size_t nbuckets)
{
    if (!m)
        return NULL;
    /* Names come from the code, not from input: a bad one is a bug, caught
     * in every build (asserts vanish with NDEBUG). */
    bool ok = name_ok(name, true) && strncmp(name, "__", 2) != 0 &&
              nlabels <= SX_METRICS_MAX_LABELS && (type == SX_METRIC_HISTOGRAM) == (nbuckets > 0) &&
              nbuckets <= SX_METRICS_MAX_BUCKETS && !(collected && type == SX_METRIC_HISTOGRAM);
    for (size_t i = 0; ok && i < nlabels; i++)
        ok = name_ok(labels[i], false) && strncmp(labels[i], "__", 2) != 0 &&
             (type != SX_METRIC_HISTOGRAM || strcmp(labels[i], "le") != 0);
    for (size_t i = 0; ok && i < nbuckets; i++)
        ok = isfinite(buckets[i]) && (i == 0 || buckets[i - 1] < buckets[i]);
    if (!ok) {
        fprintf(stderr, "metrics: bad metric family %s\n", name ? name : "(null)");
        abort();
    }

    pthread_mutex_lock(&m->mu);
    for (sx_metric_family *f = m->families; f; f = f->next) {
        if (strcmp(f->name, name) == 0) {
            if (!same_shape(f, type, collected, labels, nlabels, buckets, nbuckets)) {
                fprintf(stderr, "metrics: %s registered again with another shape\n", name);
                abort();
            }
            pthread_mutex_unlock(&m->mu);
            return f;
        }
    }
    sx_metric_family *f = sx_calloc(1, sizeof(*f));
    f->type = type;
    f->collected = collected;
    f->name = sx_strdup(name);
    f->help = sx_strdup(help ? help : "");
    f->nlabels = nlabels;
    for (size_t i = 0; i < nlabels; i++)
        f->labels[i] = sx_strdup(labels[i]);
    if (nbuckets) {
        f->bounds = sx_malloc(nbuckets * sizeof(double));
        memcpy(f->bounds, buckets, nbuckets * sizeof(double));
        f->nbounds = nbuckets;
    }
    pthread_mutex_init(&f->mu, NULL);
    f->tail = &f->children;
    *m->tail = f;
    m->tail = &f->next;
    pthread_mutex_unlock(&m->mu);
    return f;
}

sx_metric_family *sx_metrics_family(sx_metrics *m, sx_metric_type type, const char *name,
                                    const char *help, const char *const *labels, size_t nlabels,
                                    const double *buckets, size_t nbuckets)
{
    return family_new(m, type, false, name, help, labels, nlabels, buckets, nbuckets);
}

sx_metric_family *sx_metrics_collected(sx_metrics *m, sx_metric_type type, const char *name,
                                       const char *help, const char *const *labels, size_t nlabels)
{
    return family_new(m, type, true, name, help, labels, nlabels, NULL, 0);
}

/* The child of f for values, created when new. */
static child *child_of(sx_metric_family *f, const char *const *values)
{
    sx_buf key = {0};
    render_labels(&key, f->labels, f->nlabels, values);
    sx_buf_push(&key, '\0');
    pthread_mutex_lock(&f->mu);
    bool created = false;
    void **slot = sx_hmap_upsert(&f->index, key.data, key.len - 1, &created);
    if (created) {
        child *c = sx_calloc(1, sizeof(*c));
        c->labels = (char *)key.data; /* the buffer's NUL-terminated text, kept */
        key = (sx_buf){0};
        if (f->type == SX_METRIC_HISTOGRAM) {
            c->hist = sx_calloc(1, sizeof(*c->hist) + (f->nbounds + 1) * sizeof(_Atomic uint64_t));
            c->hist->bounds = f->bounds;
            c->hist->n = f->nbounds;
        }
        *slot = c;
        *f->tail = c;
        f->tail = &c->next;
    }
    child *c = *slot;
    pthread_mutex_unlock(&f->mu);
    sx_buf_free(&key);
    return c;
}

sx_counter *sx_metric_counter(sx_metric_family *f, const char *const *values)
{
    if (!f)
        return NULL;
    assert(f->type == SX_METRIC_COUNTER && !f->collected);
    if (f->type != SX_METRIC_COUNTER || f->collected)
        return NULL;
    return &child_of(f, values)->counter;
}

sx_gauge *sx_metric_gauge(sx_metric_family *f, const char *const *values)
{
    if (!f)
        return NULL;
    assert(f->type == SX_METRIC_GAUGE && !f->collected);
    if (f->type != SX_METRIC_GAUGE || f->collected)
        return NULL;
    return &child_of(f, values)->gauge;
}

sx_histogram *sx_metric_histogram(sx_metric_family *f, const char *const *values)
{
    if (!f)
        return NULL;
    assert(f->type == SX_METRIC_HISTOGRAM);
    if (f->type != SX_METRIC_HISTOGRAM)
        return NULL;
    return child_of(f, values)->hist;
}

sx_counter *sx_metrics_counter(sx_metrics *m, const char *name, const char *help)
{
    return sx_metric_counter(sx_metrics_family(m, SX_METRIC_COUNTER, name, help, NULL, 0, NULL, 0),
                             NULL);
}

sx_gauge *sx_metrics_gauge(sx_metrics *m, const char *name, const char *help)
{
    return sx_metric_gauge(sx_metrics_family(m, SX_METRIC_GAUGE, name, help, NULL, 0, NULL, 0),
                           NULL);
}

sx_histogram *sx_metrics_histogram(sx_metrics *m, const char *name, const char *help,
                                   const double *buckets, size_t nbuckets)
{
    return sx_metric_histogram(
        sx_metrics_family(m, SX_METRIC_HISTOGRAM, name, help, NULL, 0, buckets, nbuckets), NULL);
}

/* -------------------------------------------------------------- updates -- */

void sx_counter_add(sx_counter *c, uint64_t n)
{
    if (c)
        atomic_fetch_add_explicit(&c->v, n, memory_order_relaxed);
}

void sx_gauge_set(sx_gauge *g, double v)
{
    if (g)
        atomic_store_explicit(&g->bits, double_bits(v), memory_order_relaxed);
}

/* Adds delta to the double whose bits are at a. */
static void add_double(_Atomic uint64_t *a, double delta)
{
    uint64_t old = atomic_load_explicit(a, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(a, &old, double_bits(bits_double(old) + delta),
                                                  memory_order_relaxed, memory_order_relaxed)) {
    }
}

void sx_gauge_add(sx_gauge *g, double delta)
{
    if (g)
        add_double(&g->bits, delta);
}

void sx_histogram_observe(sx_histogram *h, double v)
{
    if (!h || isnan(v))
        return;
    size_t i = 0;
    while (i < h->n && v > h->bounds[i])
        i++;
    atomic_fetch_add_explicit(&h->counts[i], 1, memory_order_relaxed);
    add_double(&h->sum_bits, v);
}

uint64_t sx_counter_value(const sx_counter *c)
{
    return c ? atomic_load_explicit(&c->v, memory_order_relaxed) : 0;
}

double sx_gauge_value(const sx_gauge *g)
{
    return g ? bits_double(atomic_load_explicit(&g->bits, memory_order_relaxed)) : 0;
}

uint64_t sx_histogram_count(const sx_histogram *h)
{
    uint64_t n = 0;
    for (size_t i = 0; h && i <= h->n; i++)
        n += atomic_load_explicit(&h->counts[i], memory_order_relaxed);
    return n;
}

size_t sx_histogram_counts(const sx_histogram *h, const double **bounds, uint64_t *counts,
                           size_t cap)
{
    *bounds = NULL;
    if (!h)
        return 0;
    *bounds = h->bounds;
    for (size_t i = 0; i <= h->n && i < cap; i++)
        counts[i] = atomic_load_explicit(&h->counts[i], memory_order_relaxed);
    return h->n;
}

/* ----------------------------------------------------------- collectors -- */

void sx_metrics_add_collector(sx_metrics *m, sx_metrics_collect_cb fn, void *arg,
                              void (*free_arg)(void *))
{
    if (!m) {
        if (free_arg)
            free_arg(arg);
        return;
    }
    collector *c = sx_calloc(1, sizeof(*c));
    c->fn = fn;
    c->arg = arg;
    c->free_arg = free_arg;
    pthread_mutex_lock(&m->mu);
    *m->ctail = c;
    m->ctail = &c->next;
    pthread_mutex_unlock(&m->mu);
}

void sx_metrics_sample(sx_metrics_scrape *s, sx_metric_family *f, const char *const *values,
                       double v)
{
    if (!s || !f)
        return;
    assert(f->collected);
    sx_buf_reset(&s->key);
    render_labels(&s->key, f->labels, f->nlabels, values);
    pthread_mutex_lock(&f->mu);
    bool created = false;
    void **slot = sx_hmap_upsert(&f->index, s->key.data, s->key.len, &created);
    if (created) {
        *slot = (void *)1;
        buf_str(&f->samples, f->name);
        if (f->nlabels) {
            sx_buf_push(&f->samples, '{');
            sx_buf_append(&f->samples, s->key.data, s->key.len);
            sx_buf_push(&f->samples, '}');
        }
        sx_buf_push(&f->samples, ' ');
        sx_metrics_format_double(&f->samples, v);
        sx_buf_push(&f->samples, '\n');
    }
    pthread_mutex_unlock(&f->mu);
}

/* ------------------------------------------------------------ rendering -- */

static void render_header(sx_buf *out, const sx_metric_family *f)
{
    static const char *const types[] = {"counter", "gauge", "histogram"};
    buf_str(out, "# HELP ");
    buf_str(out, f->name);
    sx_buf_push(out, ' ');
    escape_help(out, f->help);
    buf_str(out, "\n# TYPE ");
    buf_str(out, f->name);
    sx_buf_push(out, ' ');
    buf_str(out, types[f->type]);
    sx_buf_push(out, '\n');
}

/* name + suffix, its labels (and one more, extra="value", when extra is set),
 * then value: one sample line. */
static void sample_head(sx_buf *out, const char *name, const char *suffix, const char *labels,
                        const char *extra)
{
    buf_str(out, name);
    buf_str(out, suffix);
    if (labels[0] || extra) {
        sx_buf_push(out, '{');
        buf_str(out, labels);
        if (extra) {
            if (labels[0])
                sx_buf_push(out, ',');
            buf_str(out, extra);
        }
        sx_buf_push(out, '}');
    }
    sx_buf_push(out, ' ');
}

static void render_histogram(sx_buf *out, const char *name, const child *c)
{
    const sx_histogram *h = c->hist;
    uint64_t cum = 0;
    sx_buf le = {0};
    for (size_t i = 0; i <= h->n; i++) {
        cum += atomic_load_explicit(&h->counts[i], memory_order_relaxed);
        sx_buf_reset(&le);
        buf_str(&le, "le=\"");
        if (i < h->n)
            sx_metrics_format_double(&le, h->bounds[i]);
        else
            buf_str(&le, "+Inf");
        buf_str(&le, "\"");
        sx_buf_push(&le, '\0');
        sample_head(out, name, "_bucket", c->labels, (const char *)le.data);
        char n[24];
        snprintf(n, sizeof(n), "%" PRIu64 "\n", cum);
        buf_str(out, n);
    }
    sx_buf_free(&le);
    sample_head(out, name, "_sum", c->labels, NULL);
    sx_metrics_format_double(out,
                             bits_double(atomic_load_explicit(&h->sum_bits, memory_order_relaxed)));
    sx_buf_push(out, '\n');
    sample_head(out, name, "_count", c->labels, NULL);
    char n[24];
    snprintf(n, sizeof(n), "%" PRIu64 "\n", cum); /* equal to the +Inf bucket, always */
    buf_str(out, n);
}

static void render_family(sx_buf *out, sx_metric_family *f)
{
    render_header(out, f);
    pthread_mutex_lock(&f->mu);
    if (f->collected) {
        sx_buf_append(out, f->samples.data, f->samples.len);
        sx_buf_reset(&f->samples);
        sx_hmap_free(&f->index, NULL); /* next scrape starts empty */
        pthread_mutex_unlock(&f->mu);
        return;
    }
    for (const child *c = f->children; c; c = c->next) {
        if (f->type == SX_METRIC_HISTOGRAM) {
            render_histogram(out, f->name, c);
            continue;
        }
        sample_head(out, f->name, "", c->labels, NULL);
        if (f->type == SX_METRIC_COUNTER) {
            char n[24];
            snprintf(n, sizeof(n), "%" PRIu64, sx_counter_value(&c->counter));
            buf_str(out, n);
        } else {
            sx_metrics_format_double(out, sx_gauge_value(&c->gauge));
        }
        sx_buf_push(out, '\n');
    }
    pthread_mutex_unlock(&f->mu);
}

void sx_metrics_render(sx_metrics *m, sx_buf *out)
{
    if (!m)
        return;
    /* Held throughout: one scrape at a time, and the lists stay as they are
     * (collectors do not register, per their contract). */
    pthread_mutex_lock(&m->mu);
    sx_metrics_scrape s = {.m = m};
    for (collector *c = m->collectors; c; c = c->next)
        c->fn(c->arg, &s);
    sx_buf_free(&s.key);
    for (sx_metric_family *f = m->families; f; f = f->next)
        render_family(out, f);
    pthread_mutex_unlock(&m->mu);
}
