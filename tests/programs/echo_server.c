/* echo_server: serves the test Echo service, for the Python interop test and
 * the rpc benchmark. Stops gracefully on SIGTERM or SIGINT.
 *
 *   echo_server --listen 127.0.0.1:0 --port-file FILE [--cq-threads N]
 *               [--pool-threads N] [--max-message BYTES]
 */
#include "echo_service.h"
#include "log.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

static int write_port_file(const char *path, int port)
{
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -1;
    fprintf(f, "%d\n", port);
    if (fclose(f) != 0)
        return -1;
    return rename(tmp, path); /* readers see the whole number or nothing */
}

int main(int argc, char **argv)
{
    sx_rpc_server_opts opts = {.listen = "127.0.0.1:0"};
    const char *port_file = NULL;
    static const struct option longopts[] = {
        {"listen", required_argument, NULL, 'l'},
        {"port-file", required_argument, NULL, 'p'},
        {"cq-threads", required_argument, NULL, 'c'},
        {"pool-threads", required_argument, NULL, 't'},
        {"max-message", required_argument, NULL, 'm'},
        {NULL, 0, NULL, 0},
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (ch) {
        case 'l': opts.listen = optarg; break;
        case 'p': port_file = optarg; break;
        case 'c': opts.cq_threads = atoi(optarg); break;
        case 't': opts.pool_threads = atoi(optarg); break;
        case 'm': opts.max_message_bytes = (size_t)atol(optarg); break;
        default:
            fprintf(stderr, "usage: %s --listen HOST:PORT [--port-file FILE] [--cq-threads N] "
                            "[--pool-threads N] [--max-message BYTES]\n", argv[0]);
            return 2;
        }
    }
    sx_log_set_process("echo_server");
    /* Signals go to the main thread only: block them before threads start. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    sx_echo_state state = {0};
    sx_rpc_server *srv = NULL;
    sx_err err = {0};
    if (sx_rpc_server_create(&opts, &srv, &err) != SX_OK ||
        sx_echo_service_add(srv, &state, &err) != SX_OK ||
        sx_rpc_server_start(srv, &err) != SX_OK) {
        fprintf(stderr, "echo_server: %s\n", err.msg);
        sx_rpc_server_destroy(srv);
        return 1;
    }
    if (port_file && write_port_file(port_file, sx_rpc_server_port(srv)) != 0) {
        fprintf(stderr, "echo_server: cannot write %s\n", port_file);
        sx_rpc_server_destroy(srv);
        return 1;
    }
    int sig = 0;
    sigwait(&set, &sig);
    SX_LOG(SX_LOG_INFO, "echo", "stopping signal=%d calls=%llu", sig,
           (unsigned long long)atomic_load(&state.calls));
    sx_rpc_server_destroy(srv);
    sx_rpc_wait_shutdown(2000);
    return 0;
}
