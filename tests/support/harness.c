/* harness.c: process control for integration tests. */
#include "harness.h"

#include "clock.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

void sx_h_tmpdir(char *out, size_t cap, const char *tag)
{
    const char *base = getenv("TMPDIR");
    snprintf(out, cap, "%s/shardex-%s-XXXXXX", base && base[0] ? base : "/tmp", tag);
    if (!mkdtemp(out)) {
        perror("mkdtemp");
        abort();
    }
}

void sx_h_rmtree(const char *dir)
{
    pid_t pid = fork();
    if (pid == 0) {
        execlp("rm", "rm", "-rf", "--", dir, (char *)NULL);
        _exit(127);
    }
    int st;
    waitpid(pid, &st, 0);
}

pid_t sx_h_spawn(char *const argv[], const char *log_path)
{
    return sx_h_spawn_env(argv, log_path, NULL);
}

pid_t sx_h_spawn_env(char *const argv[], const char *log_path, const char *const *env)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        abort();
    }
    if (pid == 0) {
        /* Die with the test, whatever kills it. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, STDOUT_FILENO);
            dup2(fd, STDERR_FILENO);
            close(fd);
        }
        for (size_t i = 0; env && env[i]; i++) {
            const char *eq = strchr(env[i], '=');
            if (!eq || eq == env[i])
                continue;
            char name[256];
            size_t n =
                (size_t)(eq - env[i]) < sizeof(name) - 1 ? (size_t)(eq - env[i]) : sizeof(name) - 1;
            memcpy(name, env[i], n);
            name[n] = '\0';
            setenv(name, eq + 1, 1);
        }
        execv(argv[0], argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    return pid;
}

bool sx_h_wait_for(bool (*cond)(void *arg), void *arg, uint64_t timeout_ms)
{
    uint64_t end = sx_clock_now_ms() + timeout_ms;
    uint64_t pause_ms = 1;
    for (;;) {
        if (cond(arg))
            return true;
        if (sx_clock_now_ms() >= end)
            return cond(arg);
        sx_clock_sleep_ms(pause_ms);
        if (pause_ms < 50)
            pause_ms *= 2;
    }
}

bool sx_h_alive(pid_t pid)
{
    int st;
    pid_t r = waitpid(pid, &st, WNOHANG);
    return r == 0;
}

typedef struct port_wait {
    const char *path;
    pid_t pid;
    int port;
    bool died;
} port_wait;

static bool port_ready(void *arg)
{
    port_wait *w = arg;
    if (!sx_h_alive(w->pid)) {
        w->died = true;
        return true;
    }
    FILE *f = fopen(w->path, "r");
    if (!f)
        return false;
    int port = -1;
    int n = fscanf(f, "%d", &port);
    fclose(f);
    if (n == 1 && port > 0) {
        w->port = port;
        return true;
    }
    return false;
}

int sx_h_wait_port_file(const char *path, pid_t pid, uint64_t timeout_ms)
{
    port_wait w = {.path = path, .pid = pid, .port = -1};
    if (!sx_h_wait_for(port_ready, &w, timeout_ms) || w.died)
        return -1;
    return w.port;
}

static void reap(pid_t pid)
{
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
}

int sx_h_wait_exit(pid_t pid, uint64_t timeout_ms)
{
    uint64_t end = sx_clock_now_ms() + timeout_ms;
    for (;;) {
        int st = 0;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return st;
        if (r < 0 && errno != EINTR)
            return -1;
        if (sx_clock_now_ms() >= end)
            return -1;
        sx_clock_sleep_ms(5);
    }
}

void sx_h_kill9(pid_t pid)
{
    kill(pid, SIGKILL);
    reap(pid);
}

void sx_h_pause(pid_t pid)
{
    kill(pid, SIGSTOP);
    int st;
    waitpid(pid, &st, WUNTRACED);
}

void sx_h_resume(pid_t pid)
{
    kill(pid, SIGCONT);
}

void sx_h_signal_stop(pid_t pid)
{
    kill(pid, SIGCONT);
    kill(pid, SIGTERM);
}

int sx_h_stop(pid_t pid, uint64_t timeout_ms)
{
    kill(pid, SIGCONT);
    kill(pid, SIGTERM);
    uint64_t end = sx_clock_now_ms() + timeout_ms;
    int st = 0;
    for (;;) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return st;
        if (r < 0)
            return -1;
        if (sx_clock_now_ms() >= end) {
            kill(pid, SIGKILL);
            reap(pid);
            return -1;
        }
        sx_clock_sleep_ms(5);
    }
}

void sx_h_dump_log(const char *path, int lines)
{
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "tail -n %d '%s' >&2", lines, path);
    int rc = system(cmd);
    (void)rc;
}
