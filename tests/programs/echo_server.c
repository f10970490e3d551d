/* echo_server: serves the test Echo service, for the Python interop test and
 * the rpc benchmark. Stops gracefully on SIGTERM or SIGINT.
 *
 *   echo_server --listen 127.0.0.1:0 --port-file FILE [--cq-threads N]
 *               [--pool-threads N] [--max-message BYTES]
 */
#include "daemon.h"
#include "echo_service.h"
#include "log.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

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
        case 'l':
            opts.listen = optarg;
            break;
        case 'p':
            port_file = optarg;
            break;
        case 'c':
            opts.cq_threads = atoi(optarg);
            break;
        case 't':
            opts.pool_threads = atoi(optarg);
            break;
        case 'm':
            opts.max_message_bytes = (size_t)atol(optarg);
            break;
        default:
            fprintf(stderr,
                    "usage: %s --listen HOST:PORT [--port-file FILE] [--cq-threads N] "
                    "[--pool-threads N] [--max-message BYTES]\n",
                    argv[0]);
            return 2;
        }
    }
    sx_log_set_process("echo_server");
    /* Signals go to the main thread only: block them before threads start. */
    sx_daemon_block_signals();

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
    if (port_file && sx_daemon_write_port_file(port_file, sx_rpc_server_port(srv), &err) != SX_OK) {
        fprintf(stderr, "echo_server: %s\n", err.msg);
        sx_rpc_server_destroy(srv);
        return 1;
    }
    int sig;
    while ((sig = sx_daemon_wait_signal(1000)) == 0) {
    }
    SX_LOG(SX_LOG_INFO, "echo", "stopping signal=%d calls=%llu", sig,
           (unsigned long long)atomic_load(&state.calls));
    sx_rpc_server_destroy(srv);
    sx_rpc_wait_shutdown(2000);
    return 0;
}
