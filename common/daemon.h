/* daemon.h: what every shardex daemon's main does the same way: signals go to
 * the main thread only, the bound port goes to a port file, its state goes to
 * the service manager, its log takes the same flags. */
#ifndef SX_DAEMON_H
#define SX_DAEMON_H

#include "flags.h"
#include "status.h"

#include <stdbool.h>
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

/* The security flags of every daemon, rows of its flag table for a config
 * struct with `const char *tls_cert, *tls_key, *tls_ca, *auth_tokens`;
 * sx_daemon_security applies them once parsed (docs/security.md). */
/* clang-format off */
#define SX_DAEMON_TLS_FLAGS(cfg_type)                                                              \
    {.name = "tls-cert", .type = SX_FLAG_STRING,                                                   \
     .offset = SX_FLAG_OFFSET(cfg_type, tls_cert, const char *), .metavar = "FILE",                \
     .help = "this node's certificate chain (PEM; deploy/certs.sh node): with tls-key and "       \
             "tls-ca, its listener takes TLS only and its calls to other nodes present it"},       \
    {.name = "tls-key", .type = SX_FLAG_STRING,                                                    \
     .offset = SX_FLAG_OFFSET(cfg_type, tls_key, const char *), .metavar = "FILE",                 \
     .help = "the private key of tls-cert (PEM)"},                                                 \
    {.name = "tls-ca", .type = SX_FLAG_STRING,                                                     \
     .offset = SX_FLAG_OFFSET(cfg_type, tls_ca, const char *), .metavar = "FILE",                  \
     .help = "the CA (PEM) whose certificates nodes and clients must present"},                    \
    {.name = "auth-tokens", .type = SX_FLAG_STRING,                                                \
     .offset = SX_FLAG_OFFSET(cfg_type, auth_tokens, const char *), .metavar = "FILE",             \
     .help = "clients' bearer tokens and roles, a `NAME ROLE TOKEN [EXPIRES]` line each; "         \
             "read again on SIGHUP; needs TLS (docs/security.md)"}
/* clang-format on */

/* The limits of every daemon's server (docs/security.md), rows of its flag
 * table for a config struct with `uint64_t max_message_size,
 * max_deadline_ms; uint32_t max_streams, max_calls_per_client` (defaults
 * set by the daemon). */
/* clang-format off */
#define SX_DAEMON_LIMIT_FLAGS(cfg_type)                                                            \
    {.name = "max-message-size", .type = SX_FLAG_SIZE,                                             \
     .offset = SX_FLAG_OFFSET(cfg_type, max_message_size, uint64_t),                               \
     .min = 64u << 10, .max = 1u << 30,                                                            \
     .help = "the largest request it accepts; a larger one is refused with RESOURCE_EXHAUSTED"},   \
    {.name = "max-streams-per-connection", .type = SX_FLAG_UINT32,                                 \
     .offset = SX_FLAG_OFFSET(cfg_type, max_streams, uint32_t), .min = 1, .max = 1000000,          \
     .help = "calls one connection may have open at once (HTTP/2 streams); more wait for room"},  \
    {.name = "max-calls-per-client", .type = SX_FLAG_UINT32,                                       \
     .offset = SX_FLAG_OFFSET(cfg_type, max_calls_per_client, uint32_t), .min = 1,                 \
     .max = 1000000,                                                                               \
     .help = "calls in flight from one client (its certificate, else its token's holder, else "  \
             "its connection; nodes are not limited): one more is refused with "                 \
             "RESOURCE_EXHAUSTED"},                      \
    {.name = "max-deadline", .type = SX_FLAG_DURATION_MS,                                          \
     .offset = SX_FLAG_OFFSET(cfg_type, max_deadline_ms, uint64_t), .min = 100, .max = 86400000,   \
     .help = "the longest a call may take here: a later deadline, or none, is cut to it"}
/* clang-format on */

/* Security from those flags. All three TLS files given: *on is set, *tls
 * points at them, and *auth (sx_auth_destroy) decides every call with the
 * tokens file read; none given (and no tokens): plaintext, everyone may call
 * everything, *auth NULL. Only some, or tokens without TLS:
 * SX_INVALID_ARGUMENT naming the flags. The files themselves are read when
 * the server starts and the client is created. */
struct sx_auth;
struct sx_rpc_tls;
sx_status sx_daemon_security(const char *cert, const char *key, const char *ca, const char *tokens,
                             struct sx_rpc_tls *tls, bool *on, struct sx_auth **auth, sx_err *err);

/* SIGHUP's work: reads the tokens file again (auth may be NULL: nothing),
 * logging what came of it; a bad file keeps the tokens in force. */
void sx_daemon_reload(struct sx_auth *auth);

/* Blocks SIGTERM, SIGINT, SIGHUP and SIGPIPE in the calling thread (and in
 * every thread it starts afterwards): call first thing in main. */
void sx_daemon_block_signals(void);

/* Waits up to timeout_ms for SIGTERM, SIGINT or SIGHUP; returns it, or 0 on
 * timeout. */
int sx_daemon_wait_signal(uint64_t timeout_ms);

/* Writes "PORT\n" to path atomically (tests poll for it). */
sx_status sx_daemon_write_port_file(const char *path, int port, sx_err *err);

/* The address other nodes use to reach this daemon: advertise when given,
 * else listen with the bound port (127.0.0.1 for a wildcard host, brackets
 * for an IPv6 one). */
void sx_daemon_advertise(const char *listen, const char *advertise, int port, char *out,
                         size_t cap);

/* Tells the service manager this daemon's state (systemd's sd_notify, for
 * Type=notify units): newline-separated assignments such as "READY=1",
 * "STOPPING=1", "STATUS=text", printf-style. Nothing when no manager asked
 * (NOTIFY_SOCKET unset); a failure to send is logged, never fatal. */
void sx_daemon_notify(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
