/* modelfx.h: the fixture of integration tests that write documents at random
 * and check an index's answers against an in-test model (query.h): a settled
 * cluster, the model of what was acknowledged, the latest write tokens, the
 * test's seeded stream, writes retried through running workers until
 * acknowledged and then applied to the model, a writer thread, and queries
 * retried through running workers and compared with the model.
 *
 * It is what test_hot_values.c, test_range_split.c and test_range_auto.c had
 * each written again (test_indexes.c, with a fixture of its own, uses the
 * _running/_in forms); what differs between them (the documents, the matches
 * checked, the protocol under test) stays in the tests. Failures fail the
 * running test (SX_FX_FAIL, with the daemons' logs), so only cmocka tests
 * link it.
 *
 * Threads: mu guards model, tokens, writes and which workers run (a test
 * kills and restarts workers under mu while the writer thread picks them).
 * Every function runs on the test's thread except sx_mfx_pick and
 * sx_mfx_write, which the writer thread calls too.
 */
#ifndef SX_TEST_MODELFX_H
#define SX_TEST_MODELFX_H

#include "cluster.h"
#include "query.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* How long a write or a query is retried on a transient error. */
#define SX_MFX_WRITE_MS 30000
#define SX_MFX_QUERY_MS 60000

typedef struct sx_mfx sx_mfx;

/* One write of the writer thread (documents chosen from *s); false with why
 * when it could not be written. */
typedef bool (*sx_mfx_write_fn)(sx_mfx *f, uint64_t *s, char *why, size_t cap);

struct sx_mfx {
    sx_cluster *c;
    sx_model *model;
    sx_qtokens tokens;  /* latest acknowledged offset per log partition */
    uint64_t rng;       /* the test's stream (sx_mfx_seed_test) */
    pthread_mutex_t mu; /* model, tokens, writes, the cluster's running workers */
    uint64_t writes;    /* acknowledged writes (under mu) */
    /* The writer thread (sx_mfx_writer_start): */
    bool stop;      /* it stops (under mu) */
    char fail[512]; /* its failure, if any (under mu) */
    sx_mfx_write_fn write_fn;
    pthread_t writer;
};

/* A cmocka setup: starts a settled cluster with opts (sx_cluster_start_settled,
 * SX_MFX_WRITE_MS) and sets *state to a fixture with an empty model; -1 when
 * the cluster did not settle. rng is 0 until the test seeds it. */
int sx_mfx_setup(void **state, const sx_cluster_opts *opts);
/* A cmocka teardown: kill -9 of every process (everything was checked), the
 * directory removed, the fixture freed. */
int sx_mfx_teardown(void **state);

/* *rng = seed ^ hash(name), and "NAME: seed=N (SHARDEX_TEST_SEED replays)"
 * on stderr: each test draws from its own stream of the run's seed. */
void sx_mfx_seed_test(uint64_t *rng, uint64_t seed, const char *name);

/* A worker's address, copied under mu; a struct, so that pick(...).s lives
 * until the end of the call it is passed to. */
typedef struct sx_mfx_addr {
    char s[64];
} sx_mfx_addr;

/* A running worker drawn from *s (under mu). */
sx_mfx_addr sx_mfx_pick(sx_mfx *f, uint64_t *s);
/* The same for a test with a fixture of its own: a running worker of c,
 * drawn from *s, under mu (which guards which of c's workers run). */
sx_mfx_addr sx_mfx_pick_running(sx_cluster *c, pthread_mutex_t *mu, uint64_t *s);

/* ids[i] = "PREFIX-NNN", NNN drawn from *s below nids, again until it differs
 * from ids[0..i): the ids of one write are distinct. */
void sx_mfx_random_id(uint64_t *s, const char *prefix, uint32_t nids, char (*ids)[SX_QID],
                      size_t i);

/* Errors that a failure in progress explains (no live leader or owner, a
 * deadline): retried. */
bool sx_mfx_transient(sx_status st);

/* Puts docs[0..k) (docs not NULL) or deletes ids[0..k) (docs NULL), k <= 8
 * with distinct ids, through workers drawn from *s, each call 4 s, retried
 * on transient errors for up to SX_MFX_WRITE_MS; then applies it to the model
 * and merges its tokens into f->tokens (under mu). *toks: this write's
 * tokens. False with why when it was refused or not acknowledged in time. */
bool sx_mfx_write(sx_mfx *f, uint64_t *s, const sx_qdoc *docs, const char (*ids)[SX_QID], size_t k,
                  sx_qtokens *toks, char *why, size_t cap);

/* Starts a thread that calls fn with a stream of its own until
 * sx_mfx_writer_stop, or until fn fails. */
void sx_mfx_writer_start(sx_mfx *f, sx_mfx_write_fn fn);
/* Stops and joins it; fails the test with its failure, if any, else prints
 * how many writes were acknowledged. The writer may be started again. */
void sx_mfx_writer_stop(sx_mfx *f);

/* CreateIndex through a running worker, then waits up to timeout_ms until it
 * is READY (asked through another draw); fails the test otherwise. */
void sx_mfx_create_index(sx_mfx *f, const sx_qindex *ix, uint64_t timeout_ms);

/* Every page of q through a running worker, retried on transient errors for
 * up to SX_MFX_QUERY_MS; fails the test otherwise. sx_qhits_free pg->hits. */
void sx_mfx_query_all(sx_mfx *f, const sx_qreq *q, sx_qpages *pg);

/* The same for a test with a fixture of its own: through running workers of
 * c (sx_mfx_pick_running), retried only while `retry`, each retry counted in
 * *retries (may be NULL). */
void sx_mfx_query_all_in(sx_cluster *c, pthread_mutex_t *mu, uint64_t *rng, bool retry,
                         uint64_t *retries, const sx_qreq *q, sx_qpages *pg);

/* Fails the test unless got equals the model's hits of q->match on an index
 * of `field` typed is_int. */
void sx_mfx_expect_model(sx_mfx *f, const char *field, bool is_int, const sx_qreq *q,
                         const sx_qhits *got);

/* q (every page, sx_mfx_query_all) equals the model; the first page's
 * partitions_contacted is returned. */
uint32_t sx_mfx_check_query(sx_mfx *f, const char *field, bool is_int, const sx_qreq *q);

/* Each of ms[0..n) on index ix, GLOBAL, paged by 7 and by 1000, after the
 * latest tokens: equal to the model. */
void sx_mfx_check_matches(sx_mfx *f, const sx_qindex *ix, const sx_qmatch *ms, size_t n);

/* q's first page through worker i alone: *contacted (set on success) is
 * its partitions_contacted. The call's status, its message in err. */
sx_status sx_mfx_contacted(sx_mfx *f, uint32_t i, const sx_qreq *q, uint32_t *contacted,
                           sx_err *err);

/* True when q (every page) has a hit with that id. */
bool sx_mfx_query_has(sx_mfx *f, const sx_qreq *q, const char *id);

/* An int range over non-negative values; lo or hi < 0: open at that end. */
sx_qmatch sx_mfx_int_range(int64_t lo, int64_t hi);

/* A query read page by page, with whatever the test does between pages. */
typedef struct sx_mfx_pager {
    sx_qhits got; /* every page's hits (int values) so far */
    int pages;
    ProtobufCBinaryData tok; /* the next page's token, in buf */
    uint8_t *buf;
} sx_mfx_pager;

/* The next page of q through a running worker; fails the test on an error.
 * Returns false once it was the last. Free with sx_mfx_pager_free. */
bool sx_mfx_next_page(sx_mfx *f, const sx_qreq *q, sx_mfx_pager *p);
void sx_mfx_pager_free(sx_mfx_pager *p);

/* `shardex verify` (every index recomputed from the logs, 120 s); fails the
 * test when it is not clean (SX_FX_VERIFY). */
void sx_mfx_verify(sx_mfx *f);

/* kill -9 of worker i (under mu); fails the test when i < 0 (no worker is
 * `what`). */
void sx_mfx_kill_worker(sx_mfx *f, int32_t i, const char *what);
/* Starts worker i again (under mu) and waits until the map calls it alive. */
void sx_mfx_restart_worker(sx_mfx *f, int32_t i, uint64_t timeout_ms);

/* The test index of the worker that owns term partition t of index `name`
 * in the coordinator's map, -1 when none. */
int32_t sx_mfx_term_owner(sx_mfx *f, const char *name, uint32_t t);

#endif
