/* log.c: the logger behind SX_LOG. */
#include "log.h"

#include <ctype.h>
#include <jansson.h>
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
static _Atomic int log_format = SX_LOG_TEXT;

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

void sx_log_set_level(sx_log_level level)
{
    atomic_store(&log_level, (int)level);
}

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

void sx_log_set_process(const char *name)
{
    log_process = name;
}

void sx_log_set_format(sx_log_format format)
{
    atomic_store(&log_format, (int)format);
}

bool sx_log_format_parse(const char *name, sx_log_format *out)
{
    if (strcmp(name, "text") == 0)
        *out = SX_LOG_TEXT;
    else if (strcmp(name, "json") == 0)
        *out = SX_LOG_JSON;
    else
        return false;
    return true;
}

static const char *const fixed_fields[] = {"time", "level", "process", "pid", "component", "msg"};

/* Adds each key=value of msg to o (see log.h). */
static void add_fields(json_t *o, const char *msg)
{
    char key[64], val[1024];
    for (const char *p = msg; *p;) {
        while (*p == ' ')
            p++;
        size_t k = 0;
        while ((isalnum((unsigned char)p[k]) || p[k] == '_' || p[k] == '-') && k < sizeof(key) - 1)
            k++;
        if (k == 0 || p[k] != '=') { /* not a field: skip the word */
            while (*p && *p != ' ')
                p++;
            continue;
        }
        memcpy(key, p, k);
        key[k] = '\0';
        p += k + 1;
        size_t v = 0;
        bool quoted = *p == '"';
        if (quoted)
            for (p++; *p && *p != '"'; p++) {
                if (*p == '\\' && p[1])
                    p++;
                if (v < sizeof(val) - 1)
                    val[v++] = *p;
            }
        else
            for (; *p && *p != ' '; p++)
                if (v < sizeof(val) - 1)
                    val[v++] = *p;
        if (quoted && *p == '"')
            p++;
        val[v] = '\0';
        bool fixed = false;
        for (size_t i = 0; i < sizeof(fixed_fields) / sizeof(fixed_fields[0]); i++)
            fixed = fixed || strcmp(key, fixed_fields[i]) == 0;
        if (fixed)
            continue;
        bool digits = v > 0 && v < 19;
        for (size_t i = 0; digits && i < v; i++)
            digits = isdigit((unsigned char)val[i]);
        json_object_set_new(o, key,
                            digits ? json_integer(strtoll(val, NULL, 10)) : json_stringn(val, v));
    }
}

/* The JSON line of an event (log.h), NUL-terminated, malloc'd; NULL on OOM. */
static char *json_line(const char *time, const char *level, const char *component, const char *msg)
{
    json_t *o = json_object();
    json_object_set_new(o, "time", json_string(time));
    json_object_set_new(o, "level", json_string(level));
    if (log_process) {
        json_object_set_new(o, "process", json_string(log_process));
        json_object_set_new(o, "pid", json_integer(getpid()));
    }
    json_object_set_new(o, "component", json_string(component));
    /* Not UTF-8 (a name from the network): jansson refuses it, say so. */
    json_t *m = json_string(msg);
    json_object_set_new(o, "msg", m ? m : json_string("(not UTF-8)"));
    add_fields(o, msg);
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    return s;
}

void sx_log_write(sx_log_level level, const char *component, const char *fmt, ...)
{
    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    const char *lname = level_names[level <= SX_LOG_OFF ? level : SX_LOG_ERROR];
    if (atomic_load(&log_format) == SX_LOG_JSON) {
        char time[40], msg[1536];
        snprintf(time, sizeof(time), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 ts.tv_nsec / 1000000L);
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        char *s = json_line(time, lname, component, msg);
        if (s) {
            size_t len = strlen(s);
            s[len] = '\n'; /* json_dumps leaves room: its NUL */
            ssize_t w = write(STDERR_FILENO, s, len + 1);
            (void)w;
            free(s);
        }
        return;
    }
    int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000L, lname);
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
