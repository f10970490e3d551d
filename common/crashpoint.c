/* crashpoint.c: see crashpoint.h. */
#include "crashpoint.h"

#include "clock.h"
#include "log.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

bool sx__crash_points_on;
static char point[128];
static long point_after = 1;
static atomic_long hits;

void sx_crash_points_init(void)
{
    const char *env = getenv("SHARDEX_CRASH_POINT");
    if (!env || !env[0])
        return;
    const char *colon = strchr(env, ':');
    size_t n = colon ? (size_t)(colon - env) : strlen(env);
    if (n >= sizeof(point))
        n = sizeof(point) - 1;
    memcpy(point, env, n);
    point[n] = '\0';
    if (colon)
        point_after = atol(colon + 1) > 0 ? atol(colon + 1) : 1;
    sx__crash_points_on = true;
    SX_LOG(SX_LOG_WARN, "crash", "crash point armed name=%s after=%ld", point, point_after);
}

static _Thread_local const char *scope;

void sx_crash_scope(const char *s)
{
    scope = s;
}

/* point is name, or scope/name with the calling thread's scope. */
static bool point_is(const char *name)
{
    if (strcmp(name, point) == 0)
        return true;
    size_t n = scope ? strlen(scope) : 0;
    return n && strncmp(point, scope, n) == 0 && point[n] == '/' &&
           strcmp(point + n + 1, name) == 0;
}

void sx__crash_point(const char *name)
{
    if (!point_is(name))
        return;
    if (atomic_fetch_add(&hits, 1) + 1 < point_after)
        return;
    SX_LOG(SX_LOG_WARN, "crash", "dying at crash point name=%s", name);
    _exit(SX_CRASH_EXIT);
}

bool sx__delay_points_on;
static char delay_point[128];
static uint64_t delay_ms;

void sx_delay_points_init(void)
{
    const char *env = getenv("SHARDEX_DELAY_POINT");
    const char *colon = env ? strchr(env, ':') : NULL;
    if (!colon || colon == env || atol(colon + 1) <= 0) {
        if (env && env[0])
            SX_LOG(SX_LOG_ERROR, "delay", "SHARDEX_DELAY_POINT=%s ignored: want name:ms", env);
        return;
    }
    size_t n = (size_t)(colon - env);
    if (n >= sizeof(delay_point))
        n = sizeof(delay_point) - 1;
    memcpy(delay_point, env, n);
    delay_point[n] = '\0';
    delay_ms = (uint64_t)atol(colon + 1);
    sx__delay_points_on = true;
    SX_LOG(SX_LOG_WARN, "delay", "delay point armed name=%s ms=%llu", delay_point,
           (unsigned long long)delay_ms);
}

void sx__delay_point(const char *name)
{
    if (strcmp(name, delay_point) != 0)
        return;
    SX_LOG(SX_LOG_WARN, "delay", "delaying at delay point name=%s ms=%llu", name,
           (unsigned long long)delay_ms);
    sx_clock_sleep_ms(delay_ms);
}
