/* cli.h: what main.c hands every subcommand of the `shardex` tool.
 *
 * main.c parses the flags that come before the command (--server,
 * --timeout-ms, --json, --log-level), then calls the command's function with
 * the rest of argv, whose argv[0] is the command name. A command parses its
 * own flags with common/flags.h and may repeat --server, --timeout-ms and
 * --json, which then default to the values here. Exit codes are the same for
 * every command; `shardex --help` lists them.
 */
#ifndef SX_CLI_H
#define SX_CLI_H

#include <stdbool.h>
#include <stdint.h>

/* Exit codes of the shardex tool (X(name, value, meaning), printed by --help). */
#define SX_EXIT_MAP(X)                                                                             \
    X(OK, 0, "done (verify: everything served equals the log)")                                    \
    X(DIFFERENT, 1, "verify found a difference; status --check found an alarm")                    \
    X(USAGE, 2, "bad command line")                                                                \
    X(UNAVAILABLE, 3, "the cluster could not be reached or could not answer in time")              \
    X(NOT_FOUND, 4, "not found: get of a missing id, an unknown index")                            \
    X(REFUSED, 5, "refused by the server: a bad value, a wrong type, an index that exists...")

enum {
#define SX__EXIT_ENUM(name, value, meaning) SX_EXIT_##name = value,
    SX_EXIT_MAP(SX__EXIT_ENUM)
#undef SX__EXIT_ENUM
};

/* Default address of --server: a worker's default --listen. */
#define SX_CLI_DEFAULT_SERVER "127.0.0.1:7100"
/* Default deadline of one call, in milliseconds. */
#define SX_CLI_DEFAULT_TIMEOUT_MS 10000u

typedef struct sx_cli {
    const char *prog;        /* "shardex", for messages */
    const char *server;      /* the first HOST:PORT of server_list, for single-address commands */
    const char *server_list; /* --server as given, else SHARDEX_SERVER, else the default:
                                one or several HOST:PORT separated by commas (checked) */
    uint64_t timeout_ms;     /* deadline of each call */
    bool json;               /* global --json: print one JSON object for scripts */
    /* TLS and authentication (docs/security.md), NULL when not given: the
     * workers' CA, this client's certificate and key, a bearer token. */
    const char *tls_ca, *tls_cert, *tls_key, *token;
} sx_cli;

/* A subcommand: returns the process exit code. Called once, from main's
 * thread; argv[0] is the command name; argv points into the process's argv. */
typedef int (*sx_cli_cmd_cb)(const sx_cli *cli, int argc, char **argv);

#endif
