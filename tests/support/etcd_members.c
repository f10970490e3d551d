/* etcd_members.c: etcd members as processes, for tests and benchmarks. */
#include "etcd_members.h"

#include "clock.h"
#include "harness.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define ATTEMPTS 5
#define CALL_MS 1000 /* each readiness read */

int sx_etcdm_free_port(void)
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

/* Spawns member i with the set's --initial-cluster. With a data directory
 * that holds a member already, etcd ignores the initial-cluster flags and
 * rejoins as what it was. */
static void spawn(sx_etcdm_set *ec, uint32_t i)
{
    sx_etcdm *m = &ec->m[i];
    char curl[64], purl[64];
    snprintf(curl, sizeof(curl), "http://127.0.0.1:%d", m->client_port);
    snprintf(purl, sizeof(purl), "http://127.0.0.1:%d", m->peer_port);
    char *argv[] = {"/usr/bin/etcd", "--name", m->name, "--data-dir", m->data,
                    "--listen-client-urls", curl, "--advertise-client-urls", curl,
                    "--listen-peer-urls", purl, "--initial-advertise-peer-urls", purl,
                    "--initial-cluster", ec->initial, "--initial-cluster-state", "new",
                    "--initial-cluster-token", ec->token,
                    /* as deploy/local-cluster.sh: a member that comes back does not
                     * depose the raft leader (which cost the leading coordinator its
                     * lease, main's 589f904) */
                    "--pre-vote", "--logger", "zap", "--log-level", "warn", NULL};
    m->pid = sx_h_spawn(argv, m->log);
}

static void close_clients(sx_etcdm_set *ec)
{
    for (uint32_t i = 0; i < ec->n; i++) {
        sx_etcd_close(ec->m[i].etcd);
        ec->m[i].etcd = NULL;
    }
    sx_etcd_close(ec->etcd);
    ec->etcd = NULL;
}

/* Names, ports, directories and clients of a fresh attempt. False if no
 * port could be found or a client not made. */
static bool plan(sx_etcdm_set *ec, const char *tag, int attempt)
{
    ec->initial[0] = ec->endpoints[0] = '\0';
    snprintf(ec->token, sizeof(ec->token), "sx-%s-%d-%d", tag, (int)getpid(), attempt);
    for (uint32_t i = 0; i < ec->n; i++) {
        sx_etcdm *m = &ec->m[i];
        snprintf(m->name, sizeof(m->name), "%s-m%u", ec->token, i);
        snprintf(m->data, sizeof(m->data), "%s/m%u.a%d", ec->dir, i, attempt);
        snprintf(m->log, sizeof(m->log), "%s/m%u.log", ec->dir, i);
        m->client_port = sx_etcdm_free_port();
        m->peer_port = sx_etcdm_free_port();
        if (m->client_port <= 0 || m->peer_port <= 0)
            return false;
        snprintf(m->addr, sizeof(m->addr), "127.0.0.1:%d", m->client_port);
        size_t il = strlen(ec->initial), el = strlen(ec->endpoints);
        snprintf(ec->initial + il, sizeof(ec->initial) - il, "%s%s=http://127.0.0.1:%d",
                 i ? "," : "", m->name, m->peer_port);
        snprintf(ec->endpoints + el, sizeof(ec->endpoints) - el, "%s%s", i ? "," : "", m->addr);
        sx_etcd_opts o = {.endpoints = m->addr, .timeout_ms = CALL_MS};
        if (sx_etcd_open(&o, &m->etcd, NULL) != SX_OK)
            return false;
    }
    sx_etcd_opts o = {.endpoints = ec->endpoints, .timeout_ms = 2000};
    return sx_etcd_open(&o, &ec->etcd, NULL) == SX_OK;
}

bool sx_etcdm_start(sx_etcdm_set *ec, uint32_t n, const char *tag, uint64_t timeout_ms)
{
    memset(ec, 0, sizeof(*ec));
    if (n < 1 || n > SX_ETCDM_MAX)
        return false;
    ec->n = n;
    sx_h_tmpdir(ec->dir, sizeof(ec->dir), tag);
    for (int attempt = 0; attempt < ATTEMPTS; attempt++) {
        if (!plan(ec, tag, attempt)) {
            close_clients(ec);
            continue;
        }
        for (uint32_t i = 0; i < n; i++)
            spawn(ec, i);
        if (sx_etcdm_wait(ec, timeout_ms))
            return true;
        /* A port taken in between (a member exits), or too slow: again, afresh. */
        fprintf(stderr, "etcd (%u members) did not come up on %s (attempt %d)\n", n, ec->endpoints,
                attempt);
        sx_etcdm_dump_logs(ec, 10);
        sx_etcdm_kill_all(ec);
        close_clients(ec);
    }
    return false;
}

void sx_etcdm_kill(sx_etcdm_set *ec, uint32_t i)
{
    if (ec->m[i].pid > 0)
        sx_h_kill9(ec->m[i].pid);
    ec->m[i].pid = 0;
}

void sx_etcdm_stop(sx_etcdm_set *ec, uint32_t i, uint64_t timeout_ms)
{
    if (ec->m[i].pid > 0)
        sx_h_stop(ec->m[i].pid, timeout_ms);
    ec->m[i].pid = 0;
}

void sx_etcdm_restart(sx_etcdm_set *ec, uint32_t i)
{
    if (ec->m[i].pid <= 0)
        spawn(ec, i);
}

/* Every running member answers a read, or one has exited (then the wait
 * stops early; the caller sees it by sx_h_alive). */
static bool all_answer(void *arg)
{
    sx_etcdm_set *ec = arg;
    for (uint32_t i = 0; i < ec->n; i++) {
        sx_etcdm *m = &ec->m[i];
        if (m->pid <= 0)
            continue;
        if (!sx_h_alive(m->pid))
            return true;
        sx_etcd_range *r = NULL;
        sx_status st = sx_etcd_get(m->etcd, "/ready", false, &r, NULL);
        sx_etcd_range_free(r);
        if (st != SX_OK)
            return false;
    }
    return true;
}

bool sx_etcdm_wait(sx_etcdm_set *ec, uint64_t timeout_ms)
{
    bool answered = sx_h_wait_for(all_answer, ec, timeout_ms);
    bool alive = true;
    for (uint32_t i = 0; i < ec->n; i++) {
        if (ec->m[i].pid > 0 && !sx_h_alive(ec->m[i].pid)) { /* reaped */
            fprintf(stderr, "etcd member %u (%s) exited\n", i, ec->m[i].addr);
            ec->m[i].pid = 0;
            alive = false;
        }
    }
    return answered && alive;
}

void sx_etcdm_dump_logs(const sx_etcdm_set *ec, int lines)
{
    for (uint32_t i = 0; i < ec->n; i++) {
        fprintf(stderr, "--- %s (%s, pid %d)\n", ec->m[i].log, ec->m[i].addr, (int)ec->m[i].pid);
        sx_h_dump_log(ec->m[i].log, lines);
    }
}

void sx_etcdm_kill_all(sx_etcdm_set *ec)
{
    for (uint32_t i = 0; i < ec->n; i++)
        sx_etcdm_kill(ec, i);
}

void sx_etcdm_destroy(sx_etcdm_set *ec)
{
    sx_etcdm_kill_all(ec);
    close_clients(ec);
    if (ec->dir[0])
        sx_h_tmpdir_done(ec->dir);
    ec->dir[0] = '\0';
}
