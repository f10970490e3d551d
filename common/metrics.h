/* metrics.h: a small Prometheus registry: counters, gauges and fixed-bucket
 * histograms, alone or in labelled families, rendered in the text exposition
 * format 0.0.4 (HELP and TYPE lines, label values escaped).
 *
 * Two ways to give a value:
 *  - instruments: a counter, gauge or histogram the code updates as things
 *    happen (a request answered, a latency observed). Updates are lock-free
 *    atomics; finding a labelled child takes the family's mutex, so hot paths
 *    look their children up once and keep the pointer (children live as long
 *    as the registry).
 *  - collectors: a callback that runs when /metrics is read and gives the
 *    samples of families it declared (sx_metrics_collected), for state that
 *    already lives elsewhere (a replica's offsets, the coordinator's map):
 *    nothing is updated on the way, and a series vanishes when its thing does.
 *
 * Names follow Prometheus rules (metric [a-zA-Z_:][a-zA-Z0-9_:]*, label
 * [a-zA-Z_][a-zA-Z0-9_]*, no "__" prefix, no "le" on histograms); a bad name
 * or a family registered twice with another shape is a programming error
 * (assert). Every function accepts a NULL registry, family or instrument and
 * then does nothing (returns NULL): code runs the same with metrics off.
 *
 * Not here: the HTTP endpoint (metrics_http.h), summaries, exemplars,
 * timestamps, the OpenMetrics format.
 */
#ifndef SX_METRICS_H
#define SX_METRICS_H

#include "mem.h"

#include <stddef.h>
#include <stdint.h>

typedef struct sx_metrics sx_metrics;
typedef struct sx_metric_family sx_metric_family;
typedef struct sx_counter sx_counter;
typedef struct sx_gauge sx_gauge;
typedef struct sx_histogram sx_histogram;
typedef struct sx_metrics_scrape sx_metrics_scrape;

/* A family's type, which is its TYPE line. */
typedef enum {
    SX_METRIC_COUNTER,   /* only goes up (from 0 at process start); name ends in _total */
    SX_METRIC_GAUGE,     /* any value, up and down */
    SX_METRIC_HISTOGRAM, /* observations counted in fixed cumulative buckets, plus sum and count */
} sx_metric_type;

/* Labels a family may have. */
#define SX_METRICS_MAX_LABELS 4
/* Buckets a histogram may have (besides +Inf). */
#define SX_METRICS_MAX_BUCKETS 32

/* Upper bounds in seconds for request latencies: 0.5 ms to 10 s. */
extern const double sx_metrics_latency_buckets[];
extern const size_t sx_metrics_latency_nbuckets;

/* A new, empty registry; free with sx_metrics_destroy. */
sx_metrics *sx_metrics_create(void);

/* Frees the registry and every family and instrument in it (pointers to them
 * dangle afterwards). Nothing may use it any more: stop the HTTP endpoint
 * first. Accepts NULL. */
void sx_metrics_destroy(sx_metrics *m);

/* A family of instruments: name, help (one line of text), type, label names
 * (labels[0..nlabels); 0 for an unlabelled family, which has exactly one
 * child, of no labels) and, for a histogram, bucket upper bounds (strictly
 * increasing, finite; +Inf is implied). Registering a name again with the
 * same type and labels returns the family already there, so that two users
 * of a shared registry (two servers) share it. Strings are copied. Any
 * thread. */
sx_metric_family *sx_metrics_family(sx_metrics *m, sx_metric_type type, const char *name,
                                    const char *help, const char *const *labels, size_t nlabels,
                                    const double *buckets, size_t nbuckets);

/* The child of f for the label values values[0..f's nlabels) (any bytes; they
 * are escaped when rendered), created at 0 when new. The child lives as long
 * as the registry: keep it. Takes f's mutex: not for every event of a hot
 * path. Each returns NULL when f is of another type (asserted). Any thread. */
sx_counter *sx_metric_counter(sx_metric_family *f, const char *const *values);
sx_gauge *sx_metric_gauge(sx_metric_family *f, const char *const *values);
sx_histogram *sx_metric_histogram(sx_metric_family *f, const char *const *values);

/* Unlabelled instruments: a family of no labels, and its one child. */
sx_counter *sx_metrics_counter(sx_metrics *m, const char *name, const char *help);
sx_gauge *sx_metrics_gauge(sx_metrics *m, const char *name, const char *help);
sx_histogram *sx_metrics_histogram(sx_metrics *m, const char *name, const char *help,
                                   const double *buckets, size_t nbuckets);

/* Updates: lock-free, any thread. A counter only goes up. A histogram counts
 * v in the first bucket whose bound is >= v (+Inf past the last) and adds it
 * to the sum; NaN is ignored. */
void sx_counter_add(sx_counter *c, uint64_t n);
static inline void sx_counter_inc(sx_counter *c)
{
    sx_counter_add(c, 1);
}
void sx_gauge_set(sx_gauge *g, double v);
void sx_gauge_add(sx_gauge *g, double delta);
void sx_histogram_observe(sx_histogram *h, double v);

/* Current values, for tests. */
uint64_t sx_counter_value(const sx_counter *c);
double sx_gauge_value(const sx_gauge *g);
uint64_t sx_histogram_count(const sx_histogram *h);
/* h's bucket counts (not cumulative; the last is +Inf) into counts, up to
 * cap of them; returns how many buckets h has besides +Inf (0 for NULL) and
 * points *bounds at their upper bounds, which live as long as h. For a reader
 * that wants a quantile over a window (the backfill's throttle). */
size_t sx_histogram_counts(const sx_histogram *h, const double **bounds, uint64_t *counts,
                           size_t cap);

/* ------------------------------------------------------------- collectors -- */

/* A family whose samples only collectors give, at each scrape (counter or
 * gauge; no histograms). Same rules as sx_metrics_family, and a name is
 * either collected or not. */
sx_metric_family *sx_metrics_collected(sx_metrics *m, sx_metric_type type, const char *name,
                                       const char *help, const char *const *labels, size_t nlabels);

/* Runs at each scrape, on the scraping thread, while the registry's scrape
 * lock is held (one scrape at a time): gives the current samples with
 * sx_metrics_sample. It must not block for long (it delays the scrape only)
 * and must not call back into the registry but through s. */
typedef void (*sx_metrics_collect_cb)(void *arg, sx_metrics_scrape *s);

/* Adds a collector; arg must stay valid until the registry is destroyed or
 * nothing scrapes any more (stop the HTTP endpoint before freeing what a
 * collector reads). free_arg (NULL: none) runs on arg when the registry is
 * destroyed, for a collector's own state. Any thread. */
void sx_metrics_add_collector(sx_metrics *m, sx_metrics_collect_cb fn, void *arg,
                              void (*free_arg)(void *));

/* One sample of collected family f (from this registry) for label values
 * values[0..nlabels) and value v, in this scrape. Giving one label set twice
 * in a scrape keeps the first (a repeated series is not valid exposition). */
void sx_metrics_sample(sx_metrics_scrape *s, sx_metric_family *f, const char *const *values,
                       double v);

/* -------------------------------------------------------------- rendering -- */

/* Appends every family to out in the text exposition format 0.0.4 (content
 * type "text/plain; version=0.0.4"): families in registration order, each
 * with its HELP and TYPE lines and its children in creation order (a family
 * with no children yet, or a collected one given no samples, only those two
 * lines); histograms as cumulative _bucket lines with le ending in "+Inf",
 * then _sum and _count. Runs the collectors first. One scrape at a time;
 * any thread. */
void sx_metrics_render(sx_metrics *m, sx_buf *out);

/* Appends s with a label value's escapes (\ as \\, " as \", newline as \n). */
void sx_metrics_escape_label(sx_buf *out, const char *s);

/* Appends v as exposition writes a float: the shortest text that reads back
 * as v, "+Inf", "-Inf" or "NaN". */
void sx_metrics_format_double(sx_buf *out, double v);

#endif
