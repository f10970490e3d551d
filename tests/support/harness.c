/* harness.c: process control for integration tests. */
#include "harness.h"

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

/* ------------------------------------------------------------ etcd member -- */

/* Another process may take the port before etcd binds it; sx_h_etcd_start
 * then tries again with new ports. */
int sx_h_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    int port = -1;
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
        port = ntohs(sa.sin_port);
    close(fd);
    return port;
}

/* Answers a Range, or has exited (then the wait stops early too). */
static bool etcd_answers(void *arg)
{
    sx_h_etcd *m = arg;
    if (!sx_h_alive(m->pid))
        return true;
    sx_etcd_range *r = NULL;
    sx_status st = sx_etcd_get(m->etcd, "/ready", false, &r, NULL);
    sx_etcd_range_free(r);
    return st == SX_OK;
}

/* One try on ports cport (clients) and pport (peers): true when it answers. */
static bool etcd_try(sx_h_etcd *m, const char *tag, int attempt, int cport, int pport)
{
    char name[64], data[300], curl[64], purl[64], cluster[128];
    snprintf(name, sizeof(name), "sx-%s-%d-%d", tag, (int)getpid(), attempt);
    snprintf(data, sizeof(data), "%s/data%d", m->dir, attempt);
    snprintf(curl, sizeof(curl), "http://127.0.0.1:%d", cport);
    snprintf(purl, sizeof(purl), "http://127.0.0.1:%d", pport);
    snprintf(cluster, sizeof(cluster), "%s=%s", name, purl);
    char *argv[] = {"/usr/bin/etcd",
                    "--name",
                    name,
                    "--data-dir",
                    data,
                    "--listen-client-urls",
                    curl,
                    "--advertise-client-urls",
                    curl,
                    "--listen-peer-urls",
                    purl,
                    "--initial-advertise-peer-urls",
                    purl,
                    "--initial-cluster",
                    cluster,
                    "--initial-cluster-state",
                    "new",
                    "--initial-cluster-token",
                    name,
                    "--logger",
                    "zap",
                    "--log-level",
                    "warn",
                    NULL};
    snprintf(m->addr, sizeof(m->addr), "127.0.0.1:%d", cport);
    sx_etcd_opts eo = {.endpoints = m->addr, .timeout_ms = 1000};
    if (sx_etcd_open(&eo, &m->etcd, NULL) != SX_OK)
        return false;
    m->pid = sx_h_spawn(argv, m->log);
    bool answered = sx_h_wait_for(etcd_answers, m, 20000);
    bool alive = sx_h_alive(m->pid); /* reaps it if it exited */
    if (answered && alive)
        return true;
    /* A port taken in between (etcd exits), or too slow: again, afresh. */
    fprintf(stderr, "etcd did not come up on %s (attempt %d)\n", m->addr, attempt);
    sx_h_dump_log(m->log, 10);
    if (alive)
        sx_h_kill9(m->pid);
    m->pid = 0;
    sx_etcd_close(m->etcd);
    m->etcd = NULL;
    return false;
}

bool sx_h_etcd_start(sx_h_etcd *m, const char *tag)
{
    memset(m, 0, sizeof(*m));
    sx_h_tmpdir(m->dir, sizeof(m->dir), tag);
    snprintf(m->log, sizeof(m->log), "%s/etcd.log", m->dir);
    for (int attempt = 0; attempt < 5; attempt++) {
        int cport = sx_h_free_port(), pport = sx_h_free_port();
        if (cport > 0 && pport > 0 && etcd_try(m, tag, attempt, cport, pport))
            return true;
    }
    fprintf(stderr, "etcd did not start\n");
    sx_h_etcd_stop(m);
    return false;
}

void sx_h_etcd_stop(sx_h_etcd *m)
{
    sx_etcd_close(m->etcd);
    if (m->pid > 0)
        sx_h_kill9(m->pid);
    if (m->dir[0])
        sx_h_tmpdir_done(m->dir);
    memset(m, 0, sizeof(*m));
}
