/* crashpoint.c: see crashpoint.h. */
#include "crashpoint.h"

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

void sx__crash_point(const char *name)
{
    if (strcmp(name, point) != 0)
        return;
    if (atomic_fetch_add(&hits, 1) + 1 < point_after)
        return;
    SX_LOG(SX_LOG_WARN, "crash", "dying at crash point name=%s", name);
    _exit(SX_CRASH_EXIT);
}
