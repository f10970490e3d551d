/* peers_pgwork.c: the PostgreSQL side of bench_peers' work (peers_pgwork.h). */
#include "peers_pgwork.h"

#include "mem.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SIZE_EXPR "((body->>'" PEERS_F_SIZE "')::bigint)"
#define ID_CAP 300

static const char *const schema[] = {
    "CREATE TABLE docs (id text PRIMARY KEY, body jsonb NOT NULL)",
    "CREATE INDEX docs_maintainer ON docs ((body->>'" PEERS_F_MAINTAINER "'))",
    "CREATE INDEX docs_section ON docs ((body->>'" PEERS_F_SECTION "'))",
    "CREATE INDEX docs_size ON docs (" SIZE_EXPR ")",
};

/* The statement of each query kind: prepared under its own name, so that
 * PostgreSQL's plan cache treats the typical and the hot value apart. */
static const char *const stmt_name[PEERS_NQ] = {"q_typical", "q_hot", "q_range"};

static bool exec_ok(PGconn *c, const char *sql, char *why, size_t cap)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    if (!ok)
        snprintf(why, cap, "PostgreSQL: %s: %s", sql, PQresultErrorMessage(r));
    PQclear(r);
    return ok;
}

static bool prepare(PGconn *c, const char *name, const char *sql, int nparams, char *why,
                    size_t cap)
{
    PGresult *r = PQprepare(c, name, sql, nparams, NULL);
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok)
        snprintf(why, cap, "PostgreSQL: PREPARE %s: %s", name, PQresultErrorMessage(r));
    PQclear(r);
    return ok;
}

/* "INSERT INTO docs (id, body) VALUES ($1, $2), ..." for n rows. */
static char *insert_sql(size_t n)
{
    sx_buf b = {0};
    const char head[] = "INSERT INTO docs (id, body) VALUES ";
    sx_buf_append(&b, head, sizeof(head) - 1);
    for (size_t i = 0; i < n; i++) {
        char row[64];
        int k = snprintf(row, sizeof(row), "%s($%zu, $%zu)", i ? ", " : "", 2 * i + 1, 2 * i + 2);
        sx_buf_append(&b, row, (size_t)k);
    }
    sx_buf_push(&b, '\0');
    return (char *)b.data;
}

static bool prepare_all(peers_pgwork *w, PGconn *c, const peers_query *qs, char *why, size_t cap)
{
    const char *cols = w->fetch_docs ? "id, body" : "id";
    char sql[512];
    for (int k = 0; k < PEERS_NQ; k++) {
        if (qs[k].kind == PEERS_Q_RANGE)
            snprintf(sql, sizeof(sql), "SELECT %s FROM docs WHERE " SIZE_EXPR " BETWEEN $1 AND $2",
                     cols);
        else
            snprintf(sql, sizeof(sql),
                     "SELECT %s FROM docs WHERE body->>'" PEERS_F_MAINTAINER "' = $1", cols);
        if (!prepare(c, stmt_name[qs[k].kind], sql, qs[k].kind == PEERS_Q_RANGE ? 2 : 1, why, cap))
            return false;
    }
    if (w->how != PEERS_PG_INSERT)
        return true;
    char *ins = insert_sql(w->batch);
    bool ok = prepare(c, "ins", ins, (int)(2 * w->batch), why, cap);
    free(ins);
    return ok;
}

bool peers_pgwork_open(peers_pgwork *w, const peers_pg *pg, int nconn, const peers_query *qs,
                       char *why, size_t cap)
{
    for (int i = 0; i < nconn; i++) {
        PGconn *c = peers_pg_connect(pg, why, cap);
        if (!c)
            return false;
        w->conn[w->nconn++] = c;
        if (i == 0)
            for (size_t k = 0; k < sizeof(schema) / sizeof(schema[0]); k++)
                if (!exec_ok(c, schema[k], why, cap))
                    return false;
        if (!prepare_all(w, c, qs, why, cap))
            return false;
    }
    return true;
}

void peers_pgwork_close(peers_pgwork *w)
{
    for (int i = 0; i < w->nconn; i++)
        PQfinish(w->conn[i]);
    for (int i = 0; i < PEERS_MAX_CALLERS; i++)
        sx_buf_free(&w->buf[i]);
    w->nconn = 0;
}

/* s (NUL-terminated) as a field of COPY's text format: backslashes doubled,
 * and the JSON has no raw control characters left to escape. */
static void copy_field(sx_buf *b, const char *s)
{
    for (const char *p = s; *p; p++) {
        if (*p == '\\' || *p == '\t' || *p == '\n' || *p == '\r')
            sx_buf_push(b, '\\');
        sx_buf_push(b, (uint8_t)(*p == '\t' ? 't' : *p == '\n' ? 'n' : *p == '\r' ? 'r' : *p));
    }
}

static bool copy_rows(peers_pgwork *w, int caller, uint64_t seq, size_t n, char *why, size_t cap)
{
    PGconn *c = w->conn[caller];
    sx_buf *b = &w->buf[caller];
    sx_buf_reset(b);
    char id[ID_CAP];
    for (size_t i = 0; i < n; i++) {
        const peers_doc *d = peers_data_nth(w->data, seq + i, id, sizeof(id));
        copy_field(b, id);
        sx_buf_push(b, '\t');
        copy_field(b, d->json);
        sx_buf_push(b, '\n');
    }
    PGresult *r = PQexec(c, "COPY docs (id, body) FROM STDIN");
    bool ok = PQresultStatus(r) == PGRES_COPY_IN;
    PQclear(r);
    ok = ok && PQputCopyData(c, (const char *)b->data, (int)b->len) == 1 &&
         PQputCopyEnd(c, NULL) == 1;
    bool done_ok = ok;
    while ((r = PQgetResult(c)) != NULL) {
        done_ok = done_ok && PQresultStatus(r) == PGRES_COMMAND_OK &&
                  strtoull(PQcmdTuples(r), NULL, 10) == n;
        PQclear(r);
    }
    if (!done_ok)
        snprintf(why, cap, "PostgreSQL: COPY of %zu rows from document %" PRIu64 ": %s", n, seq,
                 PQerrorMessage(c));
    return done_ok;
}

static bool insert_rows(peers_pgwork *w, int caller, uint64_t seq, size_t n, char *why, size_t cap)
{
    const char **vals = sx_calloc(2 * n, sizeof(*vals));
    char(*ids)[ID_CAP] = sx_calloc(n, sizeof(*ids));
    for (size_t i = 0; i < n; i++) {
        vals[2 * i + 1] = peers_data_nth(w->data, seq + i, ids[i], ID_CAP)->json;
        vals[2 * i] = ids[i];
    }
    PGresult *r;
    if (n == w->batch) {
        r = PQexecPrepared(w->conn[caller], "ins", (int)(2 * n), vals, NULL, NULL, 0);
    } else { /* the preload's last, short transaction */
        char *sql = insert_sql(n);
        r = PQexecParams(w->conn[caller], sql, (int)(2 * n), NULL, vals, NULL, NULL, 0);
        free(sql);
    }
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok)
        snprintf(why, cap, "PostgreSQL: INSERT of %zu rows from document %" PRIu64 ": %s", n, seq,
                 PQresultErrorMessage(r));
    PQclear(r);
    free(ids);
    free(vals);
    return ok;
}

static bool write_rows(peers_pgwork *w, int caller, uint64_t seq, size_t n, char *why, size_t cap)
{
    return w->how == PEERS_PG_COPY ? copy_rows(w, caller, seq, n, why, cap)
                                   : insert_rows(w, caller, seq, n, why, cap);
}

bool peers_pgwork_preload(peers_pgwork *w, char *why, size_t cap)
{
    uint64_t n = w->data->n;
    for (uint64_t seq = 0; seq < n; seq += w->batch)
        if (!write_rows(w, 0, seq, n - seq < w->batch ? (size_t)(n - seq) : w->batch, why, cap))
            return false;
    atomic_store(&w->next_seq, n);
    return exec_ok(w->conn[0], "VACUUM ANALYZE docs", why, cap);
}

bool peers_pgwork_ingest(void *arg, int caller, char *why, size_t cap)
{
    peers_pgwork *w = arg;
    uint64_t seq = atomic_fetch_add(&w->next_seq, w->batch);
    return write_rows(w, caller, seq, w->batch, why, cap);
}

bool peers_pgwork_query(void *arg, int caller, char *why, size_t cap)
{
    peers_pgwork *w = arg;
    const peers_query *q = w->q;
    size_t v = q->kind == PEERS_Q_RANGE ? 0 : (w->turn[caller]++ + (size_t)caller) % q->nvalues;
    char lo[32], hi[32];
    snprintf(lo, sizeof(lo), "%" PRId64, q->lo);
    snprintf(hi, sizeof(hi), "%" PRId64, q->hi);
    const char *range[2] = {lo, hi}, *eq[1] = {q->kind == PEERS_Q_RANGE ? NULL : q->values[v]};
    PGresult *r =
        PQexecPrepared(w->conn[caller], stmt_name[q->kind], q->kind == PEERS_Q_RANGE ? 2 : 1,
                       q->kind == PEERS_Q_RANGE ? range : eq, NULL, NULL, 0);
    bool ok = PQresultStatus(r) == PGRES_TUPLES_OK;
    size_t rows = ok ? (size_t)PQntuples(r) : 0;
    if (!ok)
        snprintf(why, cap, "PostgreSQL: %s: %s", q->name, PQresultErrorMessage(r));
    else if (rows != q->expected[v])
        snprintf(why, cap, "PostgreSQL: %s%s%s%s: %zu rows, but the data has %zu", q->name,
                 eq[0] ? " \"" : "", eq[0] ? eq[0] : "", eq[0] ? "\"" : "", rows, q->expected[v]);
    PQclear(r);
    return ok && rows == q->expected[v];
}

long long peers_pgwork_rows(peers_pgwork *w)
{
    PGresult *r = PQexec(w->conn[0], "SELECT count(*) FROM docs");
    long long n = PQresultStatus(r) == PGRES_TUPLES_OK ? atoll(PQgetvalue(r, 0, 0)) : -1;
    PQclear(r);
    return n;
}
