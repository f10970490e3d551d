/* harness.c: process control for integration tests. */
#include "harness.h"

#include "etcd_members.h"

#include "clock.h"
#include "fsutil.h"
#include "mem.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
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

void sx_h_tmpdir_done(const char *dir)
{
    if (!getenv("SHARDEX_KEEP_TEST_DIR"))
        sx_h_rmtree(dir);
    else
        fprintf(stderr, "kept %s\n", dir);
}

pid_t sx_h_spawn(char *const argv[], const char *log_path)
{
    return sx_h_spawn_env(argv, log_path, NULL);
}

/* Forks argv[0] with stdin from in_path (NULL: inherited), stdout to out_path
 * and stderr to err_path (the same path: one file; append or truncate) and the
 * extra environment env; the child dies with the test. Aborts if fork fails. */
static pid_t spawn_io(char *const argv[], const char *in_path, const char *out_path,
                      const char *err_path, bool append, const char *const *env)
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
        if (in_path) {
            int fd = open(in_path, O_RDONLY);
            if (fd < 0 || dup2(fd, STDIN_FILENO) < 0)
                _exit(127);
            close(fd);
        }
        int flags = O_WRONLY | O_CREAT | (append ? O_APPEND : O_TRUNC);
        int fd = open(out_path, flags, 0644);
        if (fd >= 0) {
            dup2(fd, STDOUT_FILENO);
            if (strcmp(out_path, err_path) == 0)
                dup2(fd, STDERR_FILENO);
            close(fd);
        }
        if (strcmp(out_path, err_path) != 0) {
            fd = open(err_path, flags, 0644);
            if (fd >= 0) {
                dup2(fd, STDERR_FILENO);
                close(fd);
            }
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

pid_t sx_h_spawn_env(char *const argv[], const char *log_path, const char *const *env)
{
    return spawn_io(argv, NULL, log_path, log_path, true, env);
}

/* A whole file as a NUL-terminated string ("" if it cannot be read). */
static char *slurp(const char *path)
{
    sx_buf b = {0};
    bool found = false;
    sx_file_read(path, 64u << 20, &b, &found, NULL);
    char *s = sx_malloc(b.len + 1);
    if (b.len)
        memcpy(s, b.data, b.len);
    s[b.len] = '\0';
    sx_buf_free(&b);
    return s;
}

sx_h_run sx_h_run_wait(char *const argv[], const char *in_path, const char *const *env,
                       const char *out_path, const char *err_path, uint64_t timeout_ms)
{
    sx_h_run r = {.code = -1};
    uint64_t t0 = sx_clock_now_ms();
    pid_t pid = spawn_io(argv, in_path ? in_path : "/dev/null", out_path, err_path, false, env);
    int st = sx_h_wait_exit(pid, timeout_ms);
    r.ms = sx_clock_now_ms() - t0;
    if (st == -1)
        sx_h_kill9(pid);
    else if (WIFEXITED(st))
        r.code = WEXITSTATUS(st);
    r.out = slurp(out_path);
    r.err = slurp(err_path);
    return r;
}

void sx_h_run_print(const char *what, const sx_h_run *r)
{
    fprintf(stderr, "---- %s: exit %d in %" PRIu64 " ms\n---- stdout:\n%s---- stderr:\n%s", what,
            r->code, r->ms, r->out, r->err);
}

void sx_h_run_free(sx_h_run *r)
{
    free(r->out);
    free(r->err);
    r->out = r->err = NULL;
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
    time_t since; /* a port file older than this is an earlier run's */
} port_wait;

/* The port file first, then whether the process lives: a daemon that wrote
 * its port file has started, even if it died since (a test's crash point
 * just after serving), and is then not reaped here, so that the test can
 * read its exit status. */
static bool port_ready(void *arg)
{
    port_wait *w = arg;
    struct stat sb;
    FILE *f = stat(w->path, &sb) == 0 && sb.st_mtime >= w->since ? fopen(w->path, "r") : NULL;
    if (f) {
        int port = -1;
        int n = fscanf(f, "%d", &port);
        fclose(f);
        if (n == 1 && port > 0) {
            w->port = port;
            return true;
        }
    }
    if (!sx_h_alive(w->pid)) {
        w->died = true;
        return true;
    }
    return false;
}

int sx_h_wait_port_file(const char *path, pid_t pid, uint64_t timeout_ms)
{
    /* A second of slack for the file system's clock against ours. */
    port_wait w = {.path = path, .pid = pid, .port = -1, .since = time(NULL) - 1};
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

/* ------------------------------------------------------------ etcd member -- */

int sx_h_free_port(void)
{
    return sx_etcdm_free_port();
}

bool sx_h_etcd_start(sx_h_etcd *m, const char *tag)
{
    memset(m, 0, sizeof(*m));
    if (!sx_etcdm_start(&m->members, 1, tag, 20000)) {
        fprintf(stderr, "etcd did not start\n");
        sx_etcdm_destroy(&m->members);
        memset(m, 0, sizeof(*m));
        return false;
    }
    const sx_etcdm *one = &m->members.m[0];
    snprintf(m->dir, sizeof(m->dir), "%s", m->members.dir);
    snprintf(m->log, sizeof(m->log), "%s", one->log);
    snprintf(m->addr, sizeof(m->addr), "%s", one->addr);
    m->pid = one->pid;
    m->etcd = one->etcd;
    return true;
}

void sx_h_etcd_stop(sx_h_etcd *m)
{
    if (!m->members.n)
        return;                   /* zeroed: never started, or stopped already */
    m->members.m[0].pid = m->pid; /* 0 when the test killed it itself */
    sx_etcdm_destroy(&m->members);
    memset(m, 0, sizeof(*m));
}
