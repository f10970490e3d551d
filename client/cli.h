/* cli.h: what main.c hands every subcommand of the `shardex` tool.
 *
 * main.c parses the flags that come before the command (--server,
 * --timeout-ms, --log-level), then calls the command's function with the
 * rest of argv, whose argv[0] is the command name. A command parses its own
 * flags with common/flags.h and may repeat --server and --timeout-ms, which
 * then default to the values here. Exit codes are the same for every command.
 */
#ifndef SX_CLI_H
#define SX_CLI_H

#include <stdint.h>

/* Exit codes of the shardex tool. */
enum {
    SX_EXIT_OK = 0,          /* done; for verify: everything served equals the log */
    SX_EXIT_DIFFERENT = 1,   /* verify: a difference was found */
    SX_EXIT_USAGE = 2,       /* bad command line */
    SX_EXIT_UNAVAILABLE = 3, /* the cluster could not be reached or could not answer */
};

/* Default address of --server: a worker's default --listen. */
#define SX_CLI_DEFAULT_SERVER "127.0.0.1:7100"
/* Default deadline of one call, in milliseconds. */
#define SX_CLI_DEFAULT_TIMEOUT_MS 10000u

typedef struct sx_cli {
    const char *prog;    /* "shardex", for messages */
    const char *server;  /* HOST:PORT: --server, else SHARDEX_SERVER, else the default */
    uint64_t timeout_ms; /* deadline of each call */
} sx_cli;

/* A subcommand: returns the process exit code. Called once, from main's
 * thread; argv[0] is the command name; argv points into the process's argv. */
typedef int (*sx_cli_cmd_fn)(const sx_cli *cli, int argc, char **argv);

#endif
