/* test_notify.c: what the daemons tell a service manager (systemd's
 * sd_notify protocol, for Type=notify units), against the real binaries. PID 1
 * here is not systemd, so the test plays the manager: a datagram socket whose
 * path goes to the process in NOTIFY_SOCKET.
 *
 * - A worker says READY=1 only once it serves and holds a lease (registered,
 *   heartbeats answered), with a STATUS naming its address and id; on SIGTERM
 *   it says STOPPING=1 and exits 0.
 * - The coordinator says READY=1 once it listens, with its port; STOPPING=1 on
 *   SIGTERM.
 */
#include "clock.h"
#include "cluster.h"
#include "harness.h"

#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#define WAIT_MS 30000 /* generous: the machine is shared with the build */

/* The manager's end: a datagram socket bound at path. */
static int manager_socket(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    assert_true(strlen(path) < sizeof(a.sun_path));
    strcpy(a.sun_path, path);
    unlink(path);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    return fd;
}

/* Reads notifications into out (cap bytes, appended, NUL-terminated) until
 * one contains `want` or timeout_ms passes; returns that one's start or NULL. */
static const char *await(int fd, const char *want, char *out, size_t cap, uint64_t timeout_ms)
{
    uint64_t end = sx_clock_now_ms() + timeout_ms;
    size_t used = strlen(out);
    for (uint64_t now; (now = sx_clock_now_ms()) < end;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, (int)(end - now)) <= 0)
            continue;
        char msg[1024];
        ssize_t n = recv(fd, msg, sizeof(msg) - 1, 0);
        if (n <= 0)
            continue;
        msg[n] = '\0';
        if (used + (size_t)n + 2 < cap) {
            char *at = out + used;
            used += (size_t)snprintf(at, cap - used, "%s\n", msg);
            if (strstr(msg, want))
                return at;
        }
    }
    return NULL;
}

static void test_worker_ready_once_registered_then_stopping(void **state)
{
    (void)state;
    sx_cluster c;
    sx_cluster_opts o = {.workers = 2, .partitions = 2, .replication = 1, .min_isr = 1};
    assert_true(sx_cluster_start(&c, &o));
    char sock[512], env[600];
    snprintf(sock, sizeof(sock), "%s/notify.sock", c.dir);
    int fd = manager_socket(sock);
    snprintf(env, sizeof(env), "NOTIFY_SOCKET=%s", sock);
    const char *const envs[] = {env, NULL};

    sx_cluster_kill_worker(&c, 1);
    assert_true(sx_cluster_start_worker_env(&c, 1, envs));
    char seen[4096] = "";
    const char *ready = await(fd, "READY=1", seen, sizeof(seen), WAIT_MS);
    if (!ready)
        fail_msg("no READY=1 from the worker; it said:\n%s", seen);
    /* Ready means registered with a lease: the coordinator counts it alive. */
    assert_true(sx_cluster_wait_alive(&c, 1, WAIT_MS));
    char status[256];
    snprintf(status, sizeof(status), "STATUS=serving on %s as worker %s", c.worker_addr[1],
             c.worker_id[1]);
    if (!strstr(ready, status))
        fail_msg("READY came without \"%s\":\n%s", status, ready);

    assert_int_equal(kill(c.worker_pid[1], SIGTERM), 0);
    if (!await(fd, "STOPPING=1", seen, sizeof(seen), WAIT_MS))
        fail_msg("no STOPPING=1 after SIGTERM; the worker said:\n%s", seen);
    int ws = sx_h_wait_exit(c.worker_pid[1], WAIT_MS);
    assert_true(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
    c.worker_pid[1] = 0;
    close(fd);
    sx_cluster_kill_all(&c);
    sx_cluster_stop(&c);
}

static void test_coordinator_ready_once_listening_then_stopping(void **state)
{
    (void)state;
    char dir[256], data[512], portf[512], logf[512], sock[512], env[600], bin[512];
    sx_h_tmpdir(dir, sizeof(dir), "notify");
    snprintf(data, sizeof(data), "%s/coord", dir);
    snprintf(portf, sizeof(portf), "%s/coord.port", dir);
    snprintf(logf, sizeof(logf), "%s/coord.log", dir);
    snprintf(sock, sizeof(sock), "%s/notify.sock", dir);
    snprintf(env, sizeof(env), "NOTIFY_SOCKET=%s", sock);
    int fd = manager_socket(sock);
    const char *const envs[] = {env, NULL};
    sx_cluster_bin("coordinator/shardex-coordinator", bin, sizeof(bin));
    char *argv[] = {bin, "--listen", "127.0.0.1:0", "--data-dir", data, "--port-file", portf, NULL};
    pid_t pid = sx_h_spawn_env(argv, logf, envs);
    int port = sx_h_wait_port_file(portf, pid, WAIT_MS);
    assert_true(port > 0);
    char seen[4096] = "";
    const char *ready = await(fd, "READY=1", seen, sizeof(seen), WAIT_MS);
    if (!ready)
        fail_msg("no READY=1 from the coordinator; it said:\n%s", seen);
    char status[64];
    snprintf(status, sizeof(status), "STATUS=serving on port %d", port);
    assert_non_null(strstr(ready, status));

    assert_int_equal(kill(pid, SIGTERM), 0);
    if (!await(fd, "STOPPING=1", seen, sizeof(seen), WAIT_MS))
        fail_msg("no STOPPING=1 after SIGTERM; the coordinator said:\n%s", seen);
    int ws = sx_h_wait_exit(pid, WAIT_MS);
    assert_true(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
    close(fd);
    sx_h_tmpdir_done(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_worker_ready_once_registered_then_stopping),
        cmocka_unit_test(test_coordinator_ready_once_listening_then_stopping),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
