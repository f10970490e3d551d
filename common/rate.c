/* rate.c: a decaying event rate (rate.h). */
#include "rate.h"

#include <math.h>

static double tau_s(const sx_rate *r)
{
    return (double)(r->tau_ms ? r->tau_ms : SX_RATE_TAU_MS_DEFAULT) / 1000.0;
}

/* per_s decayed from at_ms to now_ms (no decay backwards in time). */
static double decayed(const sx_rate *r, uint64_t now_ms)
{
    if (r->per_s == 0 || now_ms <= r->at_ms)
        return r->per_s;
    return r->per_s * exp(-((double)(now_ms - r->at_ms) / 1000.0) / tau_s(r));
}

void sx_rate_add(sx_rate *r, uint64_t n, uint64_t now_ms)
{
    r->per_s = decayed(r, now_ms) + (double)n / tau_s(r);
    if (now_ms > r->at_ms)
        r->at_ms = now_ms;
}

double sx_rate_get(const sx_rate *r, uint64_t now_ms)
{
    return decayed(r, now_ms);
}
