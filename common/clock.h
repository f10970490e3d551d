/* clock.h: time for shardex. Monotonic time for deadlines, leases and
 * measurements; wall-clock time only for humans and staleness bounds.
 * Thread-safe. Tests that need control of time use their own seam in the module
 * under test (pass "now" in) rather than a global fake clock.
 */
#ifndef SX_CLOCK_H
#define SX_CLOCK_H

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

#endif
