/* daemon.h: what every shardex daemon's main does the same way: signals go to
 * the main thread only, the bound port goes to a port file, its state goes to
 * the service manager, its log takes the same flags. */
#ifndef SX_DAEMON_H
#define SX_DAEMON_H

#include "flags.h"
#include "status.h"

#include <stdint.h>

/* The logging flags of every daemon, rows of its flag table for a config
 * struct cfg_type with `const char *log_level, *log_format` (defaults "info"
 * and "text"); sx_daemon_set_logging applies them once parsed. */
extern const char *const sx_daemon_log_levels[];
extern const char *const sx_daemon_log_formats[];
/* clang-format off */
#define SX_DAEMON_LOG_FLAGS(cfg_type)                                                              \
    {.name = "log-level", .type = SX_FLAG_CHOICE,                                                  \
     .offset = SX_FLAG_OFFSET(cfg_type, log_level, const char *),                                  \
     .choices = sx_daemon_log_levels, .help = "log threshold", .env = "SHARDEX_LOG_LEVEL"},        \
    {.name = "log-format", .type = SX_FLAG_CHOICE,                                                 \
     .offset = SX_FLAG_OFFSET(cfg_type, log_format, const char *),                                 \
     .choices = sx_daemon_log_formats,                                                             \
     .help = "log lines as text, or as one JSON object each with the message's key=value "        \
             "pairs as fields"}
/* clang-format on */
void sx_daemon_set_logging(const char *level, const char *format);

/* Blocks SIGTERM, SIGINT and SIGPIPE in the calling thread (and in every
 * thread it starts afterwards): call first thing in main. */
void sx_daemon_block_signals(void);

/* Waits up to timeout_ms for SIGTERM or SIGINT; returns it, or 0 on timeout. */
int sx_daemon_wait_signal(uint64_t timeout_ms);

/* Writes "PORT\n" to path atomically (tests poll for it). */
sx_status sx_daemon_write_port_file(const char *path, int port, sx_err *err);

/* Tells the service manager this daemon's state (systemd's sd_notify, for
 * Type=notify units): newline-separated assignments such as "READY=1",
 * "STOPPING=1", "STATUS=text", printf-style. Nothing when no manager asked
 * (NOTIFY_SOCKET unset); a failure to send is logged, never fatal. */
void sx_daemon_notify(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
