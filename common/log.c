/* log.c: the logger behind SX_LOG. */
#include "log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static _Atomic int log_level = -1; /* -1: not yet read from the environment */
static const char *log_process;

static const char *const level_names[] = {"DEBUG", "INFO", "WARN", "ERROR", "OFF"};

bool sx_log_level_parse(const char *name, sx_log_level *out)
{
    static const char *const lower[] = {"debug", "info", "warn", "error", "off"};
    for (int i = 0; i <= SX_LOG_OFF; i++) {
        if (strcasecmp(name, lower[i]) == 0) {
            *out = (sx_log_level)i;
            return true;
        }
    }
    return false;
}

void sx_log_set_level(sx_log_level level) { atomic_store(&log_level, (int)level); }

sx_log_level sx_log_get_level(void)
{
    int l = atomic_load(&log_level);
    if (l < 0) {
        sx_log_level parsed = SX_LOG_INFO;
        const char *env = getenv("SHARDEX_LOG_LEVEL");
        if (env && !sx_log_level_parse(env, &parsed))
            parsed = SX_LOG_INFO;
        l = (int)parsed;
        atomic_store(&log_level, l);
    }
    return (sx_log_level)l;
}

void sx_log_set_process(const char *name) { log_process = name; }

void sx_log_write(sx_log_level level, const char *component, const char *fmt, ...)
{
    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000L,
                     level_names[level <= SX_LOG_OFF ? level : SX_LOG_ERROR]);
    if (log_process)
        n += snprintf(line + n, sizeof(line) - (size_t)n, "%s[%d] ", log_process, (int)getpid());
    n += snprintf(line + n, sizeof(line) - (size_t)n, "%s: ", component);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m > 0 ? (size_t)m : 0);
    if (len > sizeof(line) - 2)
        len = sizeof(line) - 2; /* truncated: keep the line whole */
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w; /* nowhere to report a failed log write */
}
