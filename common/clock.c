/* clock.c: monotonic and wall-clock time. */
#include "clock.h"

#include <errno.h>
#include <sys/resource.h>
#include <time.h>

static uint64_t read_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t sx_clock_now_ns(void)
{
    return read_ns(CLOCK_MONOTONIC);
}
uint64_t sx_clock_now_us(void)
{
    return read_ns(CLOCK_MONOTONIC) / 1000ull;
}
uint64_t sx_clock_now_ms(void)
{
    return read_ns(CLOCK_MONOTONIC) / 1000000ull;
}
uint64_t sx_clock_wall_ms(void)
{
    return read_ns(CLOCK_REALTIME) / 1000000ull;
}

void sx_clock_sleep_ms(uint64_t ms)
{
    struct timespec ts = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

uint64_t sx_clock_cpu_us(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000ull +
           (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

void sx_cond_init_monotonic(pthread_cond_t *cv)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(cv, &ca);
    pthread_condattr_destroy(&ca);
}

void sx_cond_wait_ms(pthread_cond_t *cv, pthread_mutex_t *mu, uint64_t ms)
{
    uint64_t ns = sx_clock_now_ns() + ms * 1000000ull;
    struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000ull),
                          .tv_nsec = (long)(ns % 1000000000ull)};
    pthread_cond_timedwait(cv, mu, &ts);
}
