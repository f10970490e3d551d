/* daemon.c: signal handling, port files and service-manager notifications
 * for daemons. */
#include "daemon.h"

#include "auth.h"

#include "flags.h"
#include "fsutil.h"
#include "log.h"

#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <time.h>

const char *const sx_daemon_log_levels[] = {"debug", "info", "warn", "error", NULL};
const char *const sx_daemon_log_formats[] = {"text", "json", NULL};

void sx_daemon_set_logging(const char *level, const char *format)
{
    sx_log_level l = SX_LOG_INFO;
    sx_log_level_parse(level, &l);
    sx_log_set_level(l);
    sx_log_format f = SX_LOG_TEXT;
    sx_log_format_parse(format, &f);
    sx_log_set_format(f);
}

static void stop_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGHUP);
}

void sx_daemon_block_signals(void)
{
    sigset_t set;
    stop_signals(&set);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
}

int sx_daemon_wait_signal(uint64_t timeout_ms)
{
    sigset_t set;
    stop_signals(&set);
    struct timespec ts = {.tv_sec = (time_t)(timeout_ms / 1000),
                          .tv_nsec = (long)(timeout_ms % 1000) * 1000000L};
    int sig = sigtimedwait(&set, NULL, &ts);
    return sig > 0 ? sig : 0;
}

sx_status sx_daemon_write_port_file(const char *path, int port, sx_err *err)
{
    char buf[32];
    int n = snprintf(buf, sizeof(buf), "%d\n", port);
    return sx_file_write_atomic(path, buf, (size_t)n, err);
}

void sx_daemon_notify(const char *fmt, ...)
{
    char state[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(state, sizeof(state), fmt, ap);
    va_end(ap);
    int rc = sd_notify(0, state); /* 0: no NOTIFY_SOCKET, nobody asked */
    if (rc < 0)
        SX_LOG(SX_LOG_WARN, "daemon", "cannot notify the service manager: %s", strerror(-rc));
}

sx_status sx_daemon_security(const char *cert, const char *key, const char *ca, const char *tokens,
                             struct sx_rpc_tls *tls, bool *on, struct sx_auth **auth, sx_err *err)
{
    *on = false;
    *auth = NULL;
    int given = (cert != NULL) + (key != NULL) + (ca != NULL);
    if (given == 0 && !tokens)
        return SX_OK;
    if (given == 0)
        return sx_err_set(err, SX_INVALID_ARGUMENT,
                          "auth-tokens needs tls-cert, tls-key and tls-ca: tokens sent in "
                          "plaintext can be read by anyone on the way");
    if (given != 3)
        return sx_err_set(err, SX_INVALID_ARGUMENT,
                          "tls-cert, tls-key and tls-ca: all three or none (%s%s%s missing)",
                          cert ? "" : "tls-cert ", key ? "" : "tls-key ", ca ? "" : "tls-ca");
    *tls = (sx_rpc_tls){.cert_file = cert, .key_file = key, .ca_file = ca};
    sx_status st = sx_auth_create(tokens, auth, err);
    if (st != SX_OK)
        return st;
    *on = true;
    SX_LOG(SX_LOG_INFO, "daemon", "tls on cert=%s ca=%s tokens=%zu tokens_file=%s", cert, ca,
           sx_auth_tokens(*auth), tokens ? tokens : "(none)");
    return SX_OK;
}

void sx_daemon_reload(struct sx_auth *auth)
{
    if (!auth)
        return;
    sx_err err = {0};
    if (sx_auth_reload(auth, &err) == SX_OK)
        SX_LOG(SX_LOG_INFO, "daemon", "tokens reloaded tokens=%zu", sx_auth_tokens(auth));
    else
        SX_LOG(SX_LOG_ERROR, "daemon", "tokens not reloaded, the old ones stay: %s", err.msg);
}

void sx_daemon_advertise(const char *listen, const char *advertise, int port, char *out, size_t cap)
{
    if (advertise) {
        snprintf(out, cap, "%s", advertise);
        return;
    }
    char host[256];
    sx_hostport_parse(listen, host, sizeof(host), NULL, NULL);
    bool wildcard = strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0;
    if (strchr(host, ':') && !wildcard)
        snprintf(out, cap, "[%s]:%d", host, port);
    else
        snprintf(out, cap, "%s:%d", wildcard ? "127.0.0.1" : host, port);
}
