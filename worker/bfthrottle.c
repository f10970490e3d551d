/* bfthrottle.c: see bfthrottle.h. */
#include "bfthrottle.h"

#include <string.h>

#define PAUSE_STEP_MS 5 /* the first pause when the p99 goes over */

void sx_bfthrottle_init(sx_bfthrottle *t, double target_s, uint32_t min_chunk, uint32_t max_chunk,
                        uint64_t max_pause_ms)
{
    if (min_chunk < 1)
        min_chunk = 1;
    if (max_chunk < min_chunk)
        max_chunk = min_chunk;
    *t = (sx_bfthrottle){.target_s = target_s > 0 ? target_s : 0,
                         .min_chunk = min_chunk,
                         .max_chunk = max_chunk,
                         .max_pause_ms = max_pause_ms};
    t->chunk = t->target_s > 0 ? max_chunk / 4 : max_chunk;
    if (t->chunk < min_chunk)
        t->chunk = min_chunk;
}

void sx_bfthrottle_update(sx_bfthrottle *t, double p99)
{
    if (t->target_s <= 0) {
        t->chunk = t->max_chunk;
        t->pause_ms = 0;
        return;
    }
    if (p99 > t->target_s) {
        t->chunk = t->chunk / 2 > t->min_chunk ? t->chunk / 2 : t->min_chunk;
        uint64_t p = t->pause_ms ? t->pause_ms * 2 : PAUSE_STEP_MS;
        t->pause_ms = p < t->max_pause_ms ? p : t->max_pause_ms;
        return;
    }
    uint32_t step = t->max_chunk / 8 ? t->max_chunk / 8 : 1;
    t->chunk = t->max_chunk - t->chunk > step ? t->chunk + step : t->max_chunk;
    t->pause_ms /= 2;
}

double sx_bfthrottle_quantile(const double *bounds, size_t nb, const uint64_t *before,
                              const uint64_t *after, double q)
{
    uint64_t total = 0;
    for (size_t i = 0; i <= nb; i++)
        total += after[i] - before[i];
    if (total == 0)
        return -1;
    /* The rank of the quantile, rounded up: p99 of 10 observations is the
     * 10th, of 1000 the 990th. */
    double want = q * (double)total;
    uint64_t rank = (uint64_t)want;
    if ((double)rank < want)
        rank++;
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (size_t i = 0; i < nb; i++) {
        seen += after[i] - before[i];
        if (seen >= rank)
            return bounds[i];
    }
    return nb ? bounds[nb - 1] * 2 : 0;
}

size_t sx_bfthrottle_read(sx_histogram *const *watch, size_t n, uint64_t *counts, size_t cap,
                          const double **bounds)
{
    memset(counts, 0, cap * sizeof(*counts));
    size_t nb = 0;
    *bounds = NULL;
    for (size_t i = 0; i < n; i++) {
        uint64_t c[SX_BFTHROTTLE_BUCKETS_MAX + 1];
        const double *bd;
        size_t k = sx_histogram_counts(watch[i], &bd, c, SX_BFTHROTTLE_BUCKETS_MAX + 1);
        if (!k || k >= cap || k > SX_BFTHROTTLE_BUCKETS_MAX ||
            (nb && (k != nb || memcmp(bd, *bounds, k * sizeof(*bd)) != 0)))
            continue;
        nb = k;
        *bounds = bd;
        for (size_t j = 0; j <= k; j++)
            counts[j] += c[j];
    }
    return nb;
}
