/* daemon.c: signal handling and port files for daemons. */
#include "daemon.h"

#include "fsutil.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static void stop_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
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
