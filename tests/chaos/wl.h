/* wl.h: the two commands of sx_chaos_workload (the partition-failure suite's
 * workload and checkers), and what they share.
 *
 *   run    writers put, overwrite and delete their own keys through libshardex
 *          for a while, whatever fails, and record every operation in the
 *          history (wl_history.h). Meant to run while nodes are killed and
 *          the network is cut.
 *   check  after the faults are healed: reads every key and queries the
 *          indexes back, judges them against the history (wl_judge.h), runs
 *          `shardex verify` when asked, prints the violations and the
 *          availability figures.
 *
 *   faults replaces the rpc fault layer's rules of workers (lossy, slow,
 *          duplicating links: the lab has no netem).
 *
 * Not here: killing, pausing and cutting (the caller does: tests, deploy/lab.sh,
 * run.sh), or judging linearizability of concurrent writers to one key (each
 * key has one writer; see wl_judge.h for what is checked).
 */
#ifndef SX_WL_H
#define SX_WL_H

#include "shardex.h"

#include <stdbool.h>
#include <stdint.h>

/* Exit codes of sx_chaos_workload. */
#define SX_WL_EXIT_OK 0          /* run: done; check: no violation */
#define SX_WL_EXIT_VIOLATION 1   /* check: a violation (A, U, L, G, D or V) */
#define SX_WL_EXIT_USAGE 2       /* bad command line */
#define SX_WL_EXIT_UNAVAILABLE 3 /* could not set up or could not check (E only) */
#define SX_WL_EXIT_IO 4          /* the history could not be written or read */

/* Both commands' settings, filled from the flags (sx_chaos_workload.c). */
typedef struct sx_wl_cfg {
    const char *servers; /* worker addresses, comma-separated */
    const char *history; /* the history file */
    uint64_t timeout_ms; /* deadline of every call */
    /* run */
    uint32_t seconds;    /* how long the writers write */
    uint32_t writers;    /* writer threads */
    uint32_t keys;       /* keys per writer */
    uint32_t groups;     /* distinct values of field g */
    const char *seed;    /* decimal or 0x hex; NULL or "": from the clock */
    const char *run;     /* tag in keys and values; NULL: from the clock */
    const char *index;   /* index names: <index>_v and <index>_g */
    uint64_t pause_ms;   /* between two operations of a writer */
    uint32_t delete_pct; /* share of deletes */
    uint32_t bad_pct;    /* share of Puts the server must refuse */
    /* check */
    uint64_t settle_ms; /* wait for a settled cluster first; 0: do not wait */
    uint32_t sample;    /* older values queried (they must hit nothing) */
    const char *verify; /* path of the shardex tool: run its verify; NULL: not */
    uint32_t max_rows;  /* violations printed; 0: all */
    /* faults */
    const char *spec; /* fault rules (rpc.h syntax); "": none */
} sx_wl_cfg;

/* The commands; each returns the program's exit code (SX_WL_EXIT_*). */
int sx_wl_run(const sx_wl_cfg *cfg);
int sx_wl_check(const sx_wl_cfg *cfg);
int sx_wl_faults(const sx_wl_cfg *cfg);

/* A client of cfg->servers with cfg->timeout_ms (close with sx_client_close). */
sx_status sx_wl_client_open(const sx_wl_cfg *cfg, sx_client **out, sx_err *err);

#endif
