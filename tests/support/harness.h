/* harness.h: start, stop and watch real processes from integration tests,
 * and the temporary directories of unit tests.
 *
 * Each test gets a fresh mkdtemp directory; processes are started with their
 * output in a log file there, die with the test (PR_SET_PDEATHSIG), and are
 * waited for by polling with a timeout, never by sleeping and hoping.
 */
#ifndef SX_TEST_HARNESS_H
#define SX_TEST_HARNESS_H

#include "etcd.h"
#include "etcd_members.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Creates a fresh directory under $TMPDIR (or /tmp) into out (cap >= 64). */
void sx_h_tmpdir(char *out, size_t cap, const char *tag);

/* Removes a directory tree (rm -rf). */
void sx_h_rmtree(const char *dir);

/* Ends a test's sx_h_tmpdir directory: removes it (sx_h_rmtree), or keeps it
 * and names it on stderr when the environment has SHARDEX_KEEP_TEST_DIR set. */
void sx_h_tmpdir_done(const char *dir);

/* Starts argv[0] (a path) with argv, stdout and stderr appended to log_path.
 * Returns the pid; aborts the test process if fork fails. */
pid_t sx_h_spawn(char *const argv[], const char *log_path);

/* sx_h_spawn with extra environment variables for that process only: env is a
 * NULL-terminated list of "NAME=value" strings (NULL: none), set in the child
 * between fork and exec. */
pid_t sx_h_spawn_env(char *const argv[], const char *log_path, const char *const *env);

/* What one run of a program did (sx_h_run_wait). */
typedef struct sx_h_run {
    int code;    /* exit status; -1: killed by a signal or ran past the timeout */
    char *out;   /* stdout, NUL-terminated (sx_h_run_free) */
    char *err;   /* stderr, NUL-terminated (sx_h_run_free) */
    uint64_t ms; /* wall time */
} sx_h_run;

/* Runs argv[0] (a path) with argv to its end: stdin from in_path (NULL:
 * /dev/null), stdout and stderr into the files out_path and err_path
 * (truncated first), env as in sx_h_spawn_env; after timeout_ms it is killed
 * (code -1). The files are read back into the result, which the caller frees
 * with sx_h_run_free. An exec failure is exit code 127. */
sx_h_run sx_h_run_wait(char *const argv[], const char *in_path, const char *const *env,
                       const char *out_path, const char *err_path, uint64_t timeout_ms);

/* Prints a run's exit, time, stdout and stderr to stderr, headed by what. */
void sx_h_run_print(const char *what, const sx_h_run *r);

/* Frees a run's output; accepts a zeroed run. */
void sx_h_run_free(sx_h_run *r);

/* Polls until cond(arg) is true or timeout_ms passes; returns the last value. */
bool sx_h_wait_for(bool (*cond)(void *arg), void *arg, uint64_t timeout_ms);

/* Waits for a port file (written whole by the process; one older than a
 * second before the call is an earlier run's and ignored) and returns the
 * port, or -1 after timeout_ms or if pid exits without writing it. A
 * process that wrote it and died since is not reaped: its status stays for
 * the caller (a crash point just after serving). */
int sx_h_wait_port_file(const char *path, pid_t pid, uint64_t timeout_ms);

/* Asks pid to stop (SIGCONT, SIGTERM) without waiting; sx_h_stop waits. */
void sx_h_signal_stop(pid_t pid);

/* Signals and reaps. sx_h_kill9 and sx_h_stop wait for the process to be gone. */
void sx_h_kill9(pid_t pid);
void sx_h_pause(pid_t pid);
void sx_h_resume(pid_t pid);
/* SIGTERM, then SIGKILL after timeout_ms; returns the exit status as waitpid gives it. */
int sx_h_stop(pid_t pid, uint64_t timeout_ms);

/* Waits up to timeout_ms for pid to exit on its own and reaps it; returns the
 * exit status as waitpid gives it, or -1 if it is still running (not signalled). */
int sx_h_wait_exit(pid_t pid, uint64_t timeout_ms);

/* True if pid has not exited (reaps it if it has). */
bool sx_h_alive(pid_t pid);

/* Prints the last lines of a log file to stderr, for failed tests. */
void sx_h_dump_log(const char *path, int lines);

/* A loopback TCP port free now (bound with port 0 and released), or -1. */
int sx_h_free_port(void);

/* One etcd member of its own (/usr/bin/etcd) in a temporary directory, on
 * loopback ports found free (tried again with others when it cannot bind):
 * a one-member set of etcd_members.h, with its fields at hand. Valid when
 * zeroed: sx_h_etcd_stop does nothing then. */
typedef struct sx_h_etcd {
    char dir[256], log[300];
    char addr[64]; /* client address, host:port */
    pid_t pid;     /* 0: not running (a test that kills it itself sets 0) */
    sx_etcd *etcd; /* a client of it alone (borrowed from members) */
    sx_etcdm_set members;
} sx_h_etcd;

/* Starts it and waits until it answers; false (after printing its log) when
 * it did not come up, with everything it made removed again. */
bool sx_h_etcd_start(sx_h_etcd *m, const char *tag);
/* kill -9, the directory removed; m is zeroed, so a second stop does nothing. */
void sx_h_etcd_stop(sx_h_etcd *m);

#endif
