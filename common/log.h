/* log.h: one line per event on stderr, `key=value` fields.
 *
 *   SX_LOG(SX_LOG_INFO, "rpc", "listening addr=%s port=%d", host, port);
 *
 * prints `2026-11-25T16:05:01.123Z INFO rpc: listening addr=... port=...`, or
 * in the JSON format (sx_log_set_format, --log-format json) one object a line:
 * {"time":"2026-11-25T16:05:01.123Z","level":"INFO","process":"worker",
 *  "pid":7,"component":"rpc","msg":"listening addr=... port=...",
 *  "addr":"...","port":7100}
 * where every key=value of the message is a field too (a value of digits is
 * a number; "double-quoted" values with \" escapes are taken whole; keys
 * that name the fixed fields are left in msg only).
 * The level threshold is process-wide, set once at start (from --log-level or
 * SHARDEX_LOG_LEVEL); every thread may log. Lines are written with one write(2)
 * so that lines from different threads and processes do not interleave.
 */
#ifndef SX_LOG_H
#define SX_LOG_H

#include <stdbool.h>

typedef enum {
    SX_LOG_DEBUG = 0, /* detail for developers */
    SX_LOG_INFO = 1,  /* normal events an operator may want to see */
    SX_LOG_WARN = 2,  /* something is wrong but the process carries on */
    SX_LOG_ERROR = 3, /* an operation failed */
    SX_LOG_OFF = 4,   /* nothing is logged */
} sx_log_level;

/* Sets the threshold below which lines are dropped. Default: SX_LOG_INFO, or
 * the level named by the SHARDEX_LOG_LEVEL environment variable. */
void sx_log_set_level(sx_log_level level);
sx_log_level sx_log_get_level(void);

/* Parses "debug", "info", "warn", "error", "off". Returns false if unknown. */
bool sx_log_level_parse(const char *name, sx_log_level *out);

typedef enum { SX_LOG_TEXT = 0, SX_LOG_JSON = 1 } sx_log_format;

/* Sets the line format, process-wide (default: text). */
void sx_log_set_format(sx_log_format format);
/* Parses "text" or "json". Returns false if unknown. */
bool sx_log_format_parse(const char *name, sx_log_format *out);

/* Tags every line with `name[pid]` (e.g. the daemon name). Borrowed; keep it alive. */
void sx_log_set_process(const char *name);

void sx_log_write(sx_log_level level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define SX_LOG(level, component, ...)                                                              \
    do {                                                                                           \
        if ((level) >= sx_log_get_level())                                                         \
            sx_log_write((level), (component), __VA_ARGS__);                                       \
    } while (0)

#endif
