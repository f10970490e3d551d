/* clock.h: time for shardex. Monotonic time for deadlines, leases and
 * measurements; wall-clock time only for humans and staleness bounds.
 * Thread-safe. Tests that need control of time use their own seam in the module
 * under test (pass "now" in) rather than a global fake clock.
 */
#ifndef SX_CLOCK_H
#define SX_CLOCK_H

#include <pthread.h>
#include <stdint.h>

/* Monotonic time (CLOCK_MONOTONIC) in nanoseconds, microseconds, milliseconds. */
uint64_t sx_clock_now_ns(void);
uint64_t sx_clock_now_us(void);
uint64_t sx_clock_now_ms(void);

/* Wall-clock time (CLOCK_REALTIME) in milliseconds since the Unix epoch. */
uint64_t sx_clock_wall_ms(void);

/* Sleeps for ms milliseconds (restarting after signals). */
void sx_clock_sleep_ms(uint64_t ms);

/* CPU time (user + system) this process has used, in microseconds. */
uint64_t sx_clock_cpu_us(void);

/* Condition variables timed on the monotonic clock, so that a wall-clock
 * step never stretches or cuts a wait: init one with sx_cond_init_monotonic,
 * then sx_cond_wait_ms waits on it (mu held) for at most ms milliseconds. */
void sx_cond_init_monotonic(pthread_cond_t *cv);
void sx_cond_wait_ms(pthread_cond_t *cv, pthread_mutex_t *mu, uint64_t ms);

#endif
