/* rate.h: a decaying event rate (events per second), for load that is read
 * at arbitrary moments (a heartbeat's term reports) rather than per window.
 *
 * It is an exponentially weighted moving average in continuous time: each
 * event weighs exp(-age / tau) and the rate is the weighted count over tau.
 * A steady stream of r events/s read T after it started gives
 * r * (1 - exp(-T / tau)); once it stops the rate falls by e every tau.
 * Why not a sliding window: two numbers per meter instead of a ring of
 * buckets, an update that is one multiply under a lock the caller already
 * holds, and a reading that moves smoothly rather than in steps as buckets
 * fall out; "sustained" is decided by whoever reads it (the coordinator's
 * --term-split-load-window), not here.
 *
 * A value type: no allocation, not thread-safe (the caller's lock guards it).
 * Time comes in as an argument (monotonic ms, sx_clock_now_ms), so tests
 * drive it without sleeping. A zeroed sx_rate is valid (rate 0, tau the
 * default).
 */
#ifndef SX_RATE_H
#define SX_RATE_H

#include <stdint.h>

/* The time constant when none is given: long enough to smooth over many
 * heartbeats (every lease/4), short enough that a term partition's load is
 * visible within seconds of its start. */
#define SX_RATE_TAU_MS_DEFAULT 5000u

typedef struct sx_rate {
    uint64_t tau_ms; /* the time constant; 0: SX_RATE_TAU_MS_DEFAULT */
    double per_s;    /* the rate as of at_ms */
    uint64_t at_ms;  /* the last update; 0 with per_s 0: never */
} sx_rate;

/* Counts n events at now_ms. A now_ms earlier than the last update (two
 * threads reading the clock in one order and locking in the other) counts
 * as that update's time. */
void sx_rate_add(sx_rate *r, uint64_t n, uint64_t now_ms);

/* The rate at now_ms, in events per second (decayed since the last update). */
double sx_rate_get(const sx_rate *r, uint64_t now_ms);

#endif
