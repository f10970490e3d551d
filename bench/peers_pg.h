/* peers_pg.h: a private PostgreSQL server for bench_peers, the peer a user
 * would pick instead of shardex (BENCHMARKING.md, "PostgreSQL").
 *
 * Life of one server:
 *   peers_pg_sweep   removes what crashed runs left: a directory whose
 *                    benchmark process is gone (its postmaster, if still up,
 *                    gets an immediate shutdown first);
 *   peers_pg_start   mkdtemp DIR under $TMPDIR (or /tmp), owned by the
 *                    `postgres` user when we are root; `initdb` DIR/data
 *                    (trust auth for local connections, UTF8, C.UTF-8); the
 *                    server listens only on a Unix socket in DIR
 *                    (listen_addresses = ''), with the default durability
 *                    (fsync on, synchronous_commit on, written out in
 *                    postgresql.conf so that the run shows it); `pg_ctl start -w`;
 *   peers_pg_stop    `pg_ctl stop -m fast` (SIGQUIT, then SIGKILL, when that
 *                    fails), then removes DIR. Idempotent: main calls it on
 *                    every way out, atexit included.
 * As root, initdb, pg_ctl and so the postmaster run as `postgres` (runuser).
 * Every command's output goes to a log file in DIR, printed to stderr when the
 * command fails, before DIR goes.
 *
 * Not here: the schema and the work (peers_pgwork.h). Main thread only, but
 * for peers_pg_cpu_us and peers_pg_connect (any thread).
 */
#ifndef SX_PEERS_PG_H
#define SX_PEERS_PG_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct peers_pg {
    char dir[200];    /* the temporary directory: socket, logs, data/ */
    char bindir[256]; /* initdb, pg_ctl */
    bool as_postgres; /* root: commands run as the postgres user */
    bool created;     /* dir exists and is ours to remove */
    bool started;     /* pg_ctl start succeeded: stop it */
    pid_t postmaster; /* from data/postmaster.pid once started */
    char version[64]; /* the server's version, once connected */
} peers_pg;

/* Where initdb and pg_ctl are: bindir if given, else `pg_config --bindir`,
 * else /usr/lib/postgresql/15/bin. */
typedef struct peers_pg_opts {
    const char *bindir;
} peers_pg_opts;

/* Removes the directories of crashed runs (see above); says so on stderr. */
void peers_pg_sweep(void);

/* Creates, initialises and starts a server into *pg (zeroed first). False
 * with why when a step fails (its log already printed); the caller still
 * calls peers_pg_stop, which removes whatever was made. */
bool peers_pg_start(const peers_pg_opts *opts, peers_pg *pg, char *why, size_t cap);

/* Stops the server and removes its directory; accepts a zeroed or stopped one. */
void peers_pg_stop(peers_pg *pg);

/* A connection to the server's postgres database as its superuser; NULL with
 * why on failure. Caller closes it with PQfinish. */
PGconn *peers_pg_connect(const peers_pg *pg, char *why, size_t cap);

/* CPU of the postmaster and every process below it (backends, checkpointer,
 * WAL writer, autovacuum), microseconds (sx_bench_proc_tree_cpu_us). */
uint64_t peers_pg_cpu_us(const peers_pg *pg);

#endif
