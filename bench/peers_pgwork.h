/* peers_pgwork.h: bench_peers' work on PostgreSQL, through libpq, as a C
 * program would do it: the table and its indexes, ingest in transactions of
 * `batch` rows (one COPY, or one multi-row INSERT, per transaction: autocommit
 * makes each statement its own transaction, flushed at commit), and the
 * queries as prepared statements whose every row (id and body, or id only) is
 * fetched, its count checked against the data.
 *
 *   CREATE TABLE docs (id text PRIMARY KEY, body jsonb NOT NULL);
 *   CREATE INDEX ON docs ((body->>'Maintainer'));
 *   CREATE INDEX ON docs ((body->>'Section'));
 *   CREATE INDEX ON docs (((body->>'Installed-Size')::bigint));
 *
 * One connection per caller, each used by its caller's thread only. The ops
 * are peers_op_cb (peers_loop.h).
 */
#ifndef SX_PEERS_PGWORK_H
#define SX_PEERS_PGWORK_H

#include "peers_data.h"
#include "peers_loop.h"
#include "peers_pg.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* How rows go in. */
typedef enum peers_pg_ingest {
    PEERS_PG_COPY,   /* COPY docs FROM STDIN, text format, `batch` rows */
    PEERS_PG_INSERT, /* INSERT INTO docs VALUES ($1,$2),... with `batch` rows, prepared */
} peers_pg_ingest;

typedef struct peers_pgwork {
    const peers_data *data;
    size_t batch;
    peers_pg_ingest how;
    bool fetch_docs;                 /* queries select the body too */
    PGconn *conn[PEERS_MAX_CALLERS]; /* one per caller, prepared */
    int nconn;
    atomic_uint_fast64_t next_seq;    /* the next document of the ingest stream */
    const peers_query *q;             /* what peers_pgwork_query asks */
    uint64_t turn[PEERS_MAX_CALLERS]; /* per caller: which value next */
    sx_buf buf[PEERS_MAX_CALLERS];    /* per caller: COPY data */
} peers_pgwork;

/* Creates the table and its indexes on a fresh server, then opens nconn
 * connections with the statements prepared (queries for every kind in qs).
 * False with why naming the statement and PostgreSQL's message. */
bool peers_pgwork_open(peers_pgwork *w, const peers_pg *pg, int nconn, const peers_query *qs,
                       char *why, size_t cap);
void peers_pgwork_close(peers_pgwork *w);

/* Writes the catalogue as it is (documents 0..n-1 of the stream) through
 * connection 0, then VACUUM ANALYZE, as a user does after a bulk load. */
bool peers_pgwork_preload(peers_pgwork *w, char *why, size_t cap);

/* One transaction of `batch` new documents of the stream. */
bool peers_pgwork_ingest(void *arg, int caller, char *why, size_t cap);

/* One query of w->q (the next of its values), every row fetched and counted. */
bool peers_pgwork_query(void *arg, int caller, char *why, size_t cap);

/* Rows in docs (for the report). -1 on error. */
long long peers_pgwork_rows(peers_pgwork *w);

#endif
