/* test_plog.c: unit tests for plog.h against a real LevelDB on disk.
 *
 * Each test gets its own mkdtemp directory (removed by the teardown) and goes
 * through the header only: append and read, the epoch table and begin_epoch,
 * recovery on reopen, truncation (and the abort below the applied offset, in
 * a forked child), apply with its hook and batches, corrupt entries, and
 * sx_plog_common_prefix on hand-made cases (KIP-101 and KIP-279 shapes) and on
 * simulated leader histories checked against comparing the logs entry by
 * entry. Randomized tests take their seed from SHARDEX_TEST_SEED, else the
 * clock, and print it (seed=N); each test restarts the generator from it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the four above, which it needs */

#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "crashpoint.h"
#include "fixture.h"
#include "harness.h"
#include "plog.h"
#include "psnap.h"

#include "shardex/internal/v1/replication.pb-c.h"
#include "shardex/v1/shardex.pb-c.h"

static unsigned long long seed;
static uint64_t rng_state;

/* splitmix64 (fixture.h) on this file's stream. */
static uint64_t rnd(void)
{
    return sx_fx_rnd(&rng_state);
}

static uint64_t rnd_below(uint64_t n)
{
    return n ? rnd() % n : 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- fixture ---- */

typedef struct fixture {
    char dir[PATH_MAX];    /* the mkdtemp directory */
    char db[PATH_MAX + 8]; /* dir/p: the plog's store */
    sx_plog *p;            /* open on db unless a test closed it */
    sx_plog_observer obs;  /* what p was opened with */
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    if (!f)
        return -1;
    sx_h_tmpdir(f->dir, sizeof(f->dir), "plog");
    snprintf(f->db, sizeof(f->db), "%s/p", f->dir);
    sx_err err = {0};
    if (sx_plog_open(f->db, 7, NULL, &f->p, &err) != SX_OK) {
        fprintf(stderr, "open: %s\n", err.msg);
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    sx_plog_close(f->p);
    sx_h_tmpdir_done(f->dir);
    free(f);
    return 0;
}

static void reopen(fixture *f)
{
    sx_err err = {0};
    sx_plog_close(f->p);
    f->p = NULL;
    sx_plog_opts po = {.observer = &f->obs};
    assert_int_equal(sx_plog_open(f->db, 7, &po, &f->p, &err), SX_OK);
}

/* sx_plog_apply with cb (NULL: nothing) as the observer's entry callback:
 * the plog takes its observer when it opens, so another one reopens it. */
static sx_status apply_with(fixture *f, uint64_t commit, sx_plog_entry_cb cb, void *arg,
                            uint64_t *applied, sx_err *err)
{
    if (f->obs.entry != cb || f->obs.arg != arg) {
        f->obs = (sx_plog_observer){.arg = arg, .entry = cb};
        reopen(f);
    }
    return sx_plog_apply(f->p, commit, applied, err);
}

/* ---- building entries ---- */

/* A packed LogOp that puts the document {id, fields: n = <n>}. */
static void op_put(sx_buf *out, const char *id, int64_t n)
{
    Shardex__V1__Value v = SHARDEX__V1__VALUE__INIT;
    v.kind_case = SHARDEX__V1__VALUE__KIND_I;
    v.i = n;
    Shardex__V1__Field fld = SHARDEX__V1__FIELD__INIT;
    fld.name = "n";
    fld.value = &v;
    Shardex__V1__Field *fields[] = {&fld};
    Shardex__V1__Document d = SHARDEX__V1__DOCUMENT__INIT;
    d.id = (char *)id;
    d.n_fields = 1;
    d.fields = fields;
    Shardex__Internal__V1__LogOp op = SHARDEX__INTERNAL__V1__LOG_OP__INIT;
    op.op_case = SHARDEX__INTERNAL__V1__LOG_OP__OP_PUT;
    op.put = &d;
    sx_buf_reset(out);
    size_t len = shardex__internal__v1__log_op__get_packed_size(&op);
    sx_buf_reserve(out, len);
    out->len = shardex__internal__v1__log_op__pack(&op, out->data);
}

static void op_del(sx_buf *out, const char *id)
{
    Shardex__Internal__V1__LogOp op = SHARDEX__INTERNAL__V1__LOG_OP__INIT;
    op.op_case = SHARDEX__INTERNAL__V1__LOG_OP__OP_DELETE;
    op.delete_ = (char *)id;
    sx_buf_reset(out);
    size_t len = shardex__internal__v1__log_op__get_packed_size(&op);
    sx_buf_reserve(out, len + 1);
    out->len = shardex__internal__v1__log_op__pack(&op, out->data);
}

static void append1(sx_plog *p, uint64_t epoch, const sx_buf *op)
{
    sx_err err = {0};
    sx_log_entry e = {.epoch = epoch, .op = op->data, .op_len = op->len};
    assert_int_equal(sx_plog_append(p, &e, 1, false, &err), SX_OK);
}

static void append_put(sx_plog *p, uint64_t epoch, const char *id, int64_t n)
{
    sx_buf b = {0};
    op_put(&b, id, n);
    append1(p, epoch, &b);
    sx_buf_free(&b);
}

static void append_del(sx_plog *p, uint64_t epoch, const char *id)
{
    sx_buf b = {0};
    op_del(&b, id);
    append1(p, epoch, &b);
    sx_buf_free(&b);
}

/* The n field of a packed Document, checking its id; -1 for NULL. */
static int64_t doc_n(const uint8_t *doc, size_t len, const char *id, size_t id_len)
{
    if (!doc)
        return -1;
    Shardex__V1__Document *d = shardex__v1__document__unpack(NULL, len, doc);
    assert_non_null(d);
    assert_int_equal(strlen(d->id), id_len);
    assert_memory_equal(d->id, id, id_len);
    assert_int_equal(d->n_fields, 1);
    assert_string_equal(d->fields[0]->name, "n");
    int64_t n = d->fields[0]->value->i;
    shardex__v1__document__free_unpacked(d, NULL);
    return n;
}

/* The document id as applied: its n (-1: not found) and version. */
static int64_t get_n(sx_plog *p, const char *id, uint64_t *version)
{
    sx_buf doc = {0};
    sx_err err = {0};
    bool found = true;
    uint64_t v = 12345;
    assert_int_equal(sx_plog_get_doc(p, id, strlen(id), &found, &v, &doc, &err), SX_OK);
    int64_t n = found ? doc_n(doc.data, doc.len, id, strlen(id)) : -1;
    if (version)
        *version = found ? v : 0;
    sx_buf_free(&doc);
    return n;
}

static void assert_epochs(sx_plog *p, const sx_epoch_start *want, size_t n)
{
    sx_epoch_start got[32];
    assert_int_equal(sx_plog_epochs(p, got, 32), n);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(got[i].epoch, want[i].epoch);
        assert_int_equal(got[i].start_offset, want[i].start_offset);
    }
}

/* ---- append, read, epochs ---- */

static void test_empty(void **state)
{
    fixture *f = *state;
    sx_err err = {0};
    uint64_t e = 99;
    sx_arena a = {0};
    sx_log_entry out[4];
    size_t n = 99;
    assert_int_equal(sx_plog_partition(f->p), 7);
    assert_int_equal(sx_plog_leo(f->p), 0);
    assert_int_equal(sx_plog_last_epoch(f->p), 0);
    assert_int_equal(sx_plog_max_epoch(f->p), 0);
    assert_int_equal(sx_plog_applied(f->p), 0);
    assert_int_equal(sx_plog_commit(f->p), 0);
    assert_int_equal(sx_plog_epochs(f->p, NULL, 0), 0);
    assert_int_equal(sx_plog_epoch_at(f->p, 0, &e, &err), SX_OK);
    assert_int_equal(e, 0);
    assert_int_equal(sx_plog_epoch_at(f->p, 1, &e, &err), SX_OUT_OF_RANGE);
    assert_int_equal(sx_plog_read(f->p, 1, 4, 1000, &a, out, &n, &err), SX_OK);
    assert_int_equal(n, 0);
    assert_int_equal(sx_plog_read(f->p, 2, 4, 1000, &a, out, &n, &err), SX_OUT_OF_RANGE);
    assert_int_equal(sx_plog_read(f->p, 0, 4, 1000, &a, out, &n, &err), SX_INVALID_ARGUMENT);
    assert_int_equal(sx_plog_append(f->p, NULL, 0, true, &err), SX_OK);
    assert_int_equal(sx_plog_truncate(f->p, 0, &err), SX_OK);
    uint64_t applied = 99;
    assert_int_equal(apply_with(f, 10, NULL, NULL, &applied, &err), SX_OK);
    assert_int_equal(applied, 0);
    assert_int_equal(sx_plog_commit(f->p), 10);
    sx_arena_free(&a);
}

static void test_append_read(void **state)
{
    fixture *f = *state;
    sx_err err = {0};
    static const char *ops[] = {"a", "bb", "", "dddd", "eeeee"};
    sx_log_entry in[5] = {
        {1, (const uint8_t *)ops[0], 1}, {1, (const uint8_t *)ops[1], 2},
        {1, (const uint8_t *)ops[2], 0}, {3, (const uint8_t *)ops[3], 4},
        {3, (const uint8_t *)ops[4], 5},
    };
    assert_int_equal(sx_plog_append(f->p, in, 3, true, &err), SX_OK);
    assert_int_equal(sx_plog_append(f->p, in + 3, 2, false, &err), SX_OK);
    assert_int_equal(sx_plog_leo(f->p), 5);
    assert_int_equal(sx_plog_last_epoch(f->p), 3);
    assert_int_equal(sx_plog_max_epoch(f->p), 3);
    assert_epochs(f->p, (sx_epoch_start[]){{1, 1}, {3, 4}}, 2);
    static const uint64_t want_epoch[] = {0, 1, 1, 1, 3, 3};
    for (uint64_t o = 0; o <= 5; o++) {
        uint64_t e = 99;
        assert_int_equal(sx_plog_epoch_at(f->p, o, &e, &err), SX_OK);
        assert_int_equal(e, want_epoch[o]);
    }

    sx_arena a = {0};
    sx_log_entry out[8];
    size_t n = 0;
    for (uint64_t from = 1; from <= 6; from++) {
        assert_int_equal(sx_plog_read(f->p, from, 8, 1 << 20, &a, out, &n, &err), SX_OK);
        assert_int_equal(n, 6 - from);
        for (size_t i = 0; i < n; i++) {
            assert_int_equal(out[i].epoch, in[from - 1 + i].epoch);
            assert_int_equal(out[i].op_len, in[from - 1 + i].op_len);
            if (out[i].op_len)
                assert_memory_equal(out[i].op, in[from - 1 + i].op, out[i].op_len);
        }
    }
    /* max_entries, then max_bytes: at least one entry even when it is larger. */
    assert_int_equal(sx_plog_read(f->p, 2, 2, 1 << 20, &a, out, &n, &err), SX_OK);
    assert_int_equal(n, 2);
    assert_int_equal(sx_plog_read(f->p, 4, 8, 1, &a, out, &n, &err), SX_OK);
    assert_int_equal(n, 1);
    assert_int_equal(out[0].op_len, 4);
    assert_int_equal(sx_plog_read(f->p, 1, 8, 3, &a, out, &n, &err), SX_OK);
    assert_int_equal(n, 3); /* 1 + 2 + 0 bytes */
    assert_int_equal(sx_plog_read(f->p, 1, 0, 100, &a, out, &n, &err), SX_OK);
    assert_int_equal(n, 0);
    assert_int_equal(sx_plog_read(f->p, 7, 8, 100, &a, out, &n, &err), SX_OUT_OF_RANGE);
    assert_int_equal(sx_plog_epoch_at(f->p, 6, &(uint64_t){0}, &err), SX_OUT_OF_RANGE);
    sx_arena_free(&a);
}

static void test_begin_epoch(void **state)
{
    fixture *f = *state;
    sx_err err = {0};
    sx_buf op = {0};
    op_put(&op, "x", 1);
    /* Before any entry: the epoch starts at 1. */
    assert_int_equal(sx_plog_begin_epoch(f->p, 2, &err), SX_OK);
    assert_epochs(f->p, (sx_epoch_start[]){{2, 1}}, 1);
    assert_int_equal(sx_plog_max_epoch(f->p), 2);
    assert_int_equal(sx_plog_last_epoch(f->p), 0);
    assert_int_equal(sx_plog_leo(f->p), 0);
    append1(f->p, 2, &op);
    append1(f->p, 2, &op);
    assert_epochs(f->p, (sx_epoch_start[]){{2, 1}}, 1); /* no duplicate row */

    assert_int_equal(sx_plog_begin_epoch(f->p, 4, &err), SX_OK);
    assert_epochs(f->p, (sx_epoch_start[]){{2, 1}, {4, 3}}, 2);
    assert_int_equal(sx_plog_last_epoch(f->p), 2);
    assert_int_equal(sx_plog_max_epoch(f->p), 4);
    assert_int_equal(sx_plog_begin_epoch(f->p, 4, &err), SX_OK); /* already there */
    assert_epochs(f->p, (sx_epoch_start[]){{2, 1}, {4, 3}}, 2);
    assert_int_equal(sx_plog_begin_epoch(f->p, 3, &err), SX_FAILED_PRECONDITION);
    assert_int_equal(sx_plog_begin_epoch(f->p, 2, &err), SX_FAILED_PRECONDITION);
    assert_int_equal(sx_plog_begin_epoch(f->p, 0, &err), SX_INVALID_ARGUMENT);
    /* A demoted leader that began 4 and 5 and wrote nothing takes entries of
     * epoch 3 from a newer leader: the empty rows go, in the same batch. */
    assert_int_equal(sx_plog_begin_epoch(f->p, 5, &err), SX_OK);
    assert_epochs(f->p, (sx_epoch_start[]){{2, 1}, {4, 3}, {5, 3}}, 3);
    sx_log_entry e3[] = {{3, op.data, op.len}, {6, op.data, op.len}};
    assert_int_equal(sx_plog_append(f->p, e3, 2, true, &err), SX_OK);
    assert_epochs(f->p, (sx_epoch_start[]){{2, 1}, {3, 3}, {6, 4}}, 3);
    assert_int_equal(sx_plog_max_epoch(f->p), 6);
    reopen(f);
    assert_epochs(f->p, (sx_epoch_start[]){{2, 1}, {3, 3}, {6, 4}}, 3);
    assert_int_equal(sx_plog_truncate(f->p, 2, &err), SX_OK);
    assert_int_equal(sx_plog_begin_epoch(f->p, 4, &err), SX_OK);
    append1(f->p, 4, &op);
    append1(f->p, 4, &op);
    assert_epochs(f->p, (sx_epoch_start[]){{2, 1}, {4, 3}}, 2);
    assert_int_equal(sx_plog_leo(f->p), 4);
    assert_int_equal(sx_plog_last_epoch(f->p), 4);
    /* Below the last entry's epoch is still refused. */
    sx_log_entry e2 = {2, op.data, op.len};
    assert_int_equal(sx_plog_append(f->p, &e2, 1, true, &err), SX_INVALID_ARGUMENT);

    reopen(f);
    assert_epochs(f->p, (sx_epoch_start[]){{2, 1}, {4, 3}}, 2);
    /* A begun epoch survives a restart even with nothing written in it. */
    assert_int_equal(sx_plog_begin_epoch(f->p, 6, &err), SX_OK);
    reopen(f);
    assert_epochs(f->p, (sx_epoch_start[]){{2, 1}, {4, 3}, {6, 5}}, 3);
    assert_int_equal(sx_plog_last_epoch(f->p), 4);
    assert_int_equal(sx_plog_max_epoch(f->p), 6);
    sx_buf_free(&op);
}

static void test_append_rejects(void **state)
{
    fixture *f = *state;
    sx_err err = {0};
    sx_buf op = {0};
    op_put(&op, "x", 1);
    append1(f->p, 2, &op);
    sx_log_entry bad[][3] = {
        {{2, op.data, op.len}, {3, op.data, op.len}, {2, op.data, op.len}}, /* decreasing */
        {{1, op.data, op.len}, {2, op.data, op.len}, {2, op.data, op.len}}, /* below the log's */
        {{2, op.data, op.len}, {0, op.data, op.len}, {2, op.data, op.len}}, /* epoch 0 */
        {{2, op.data, op.len}, {2, NULL, 3}, {2, op.data, op.len}},         /* no bytes */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err = (sx_err){0};
        assert_int_equal(sx_plog_append(f->p, bad[i], 3, true, &err), SX_INVALID_ARGUMENT);
        assert_true(err.msg[0] != '\0');
        assert_int_equal(sx_plog_leo(f->p), 1);
        assert_epochs(f->p, (sx_epoch_start[]){{2, 1}}, 1);
    }
    reopen(f);
    assert_int_equal(sx_plog_leo(f->p), 1);
    assert_int_equal(sx_plog_last_epoch(f->p), 2);
    assert_epochs(f->p, (sx_epoch_start[]){{2, 1}}, 1);
    sx_arena a = {0};
    sx_log_entry out[4];
    size_t n = 0;
    assert_int_equal(sx_plog_read(f->p, 1, 4, 1 << 20, &a, out, &n, &err), SX_OK);
    assert_int_equal(n, 1);
    sx_arena_free(&a);
    sx_buf_free(&op);
}

/* ---- reopen ---- */

static void test_reopen(void **state)
{
    fixture *f = *state;
    sx_err err = {0};
    append_put(f->p, 1, "a", 1);
    append_put(f->p, 1, "b", 2);
    append_put(f->p, 3, "a", 3);
    append_put(f->p, 3, "c", 4);
    assert_int_equal(sx_plog_begin_epoch(f->p, 5, &err), SX_OK);
    uint64_t applied = 0;
    assert_int_equal(apply_with(f, 3, NULL, NULL, &applied, &err), SX_OK);
    assert_int_equal(applied, 3);
    reopen(f);
    assert_int_equal(sx_plog_leo(f->p), 4);
    assert_int_equal(sx_plog_last_epoch(f->p), 3);
    assert_int_equal(sx_plog_max_epoch(f->p), 5);
    assert_int_equal(sx_plog_applied(f->p), 3);
    assert_int_equal(sx_plog_commit(f->p), 3);
    assert_epochs(f->p, (sx_epoch_start[]){{1, 1}, {3, 3}, {5, 5}}, 3);
    uint64_t v;
    assert_int_equal(get_n(f->p, "a", &v), 3);
    assert_int_equal(v, 3);
    assert_int_equal(get_n(f->p, "b", &v), 2);
    assert_int_equal(v, 2);
    assert_int_equal(get_n(f->p, "c", NULL), -1); /* appended, not applied */
    /* The log carries on where it was. */
    append_put(f->p, 5, "d", 5);
    assert_int_equal(apply_with(f, 100, NULL, NULL, &applied, &err), SX_OK);
    assert_int_equal(applied, 5);
    reopen(f);
    assert_int_equal(sx_plog_applied(f->p), 5);
    assert_int_equal(sx_plog_commit(f->p), 100);
    assert_int_equal(get_n(f->p, "c", NULL), 4);
    assert_int_equal(get_n(f->p, "d", &v), 5);
    assert_int_equal(v, 5);
}

/* ---- truncate ---- */

static void test_truncate(void **state)
{
    fixture *f = *state;
    sx_err err = {0};
    /* 1-3 in epoch 1, 4-7 in epoch 2, 8-10 in epoch 4. */
    for (int i = 1; i <= 10; i++)
        append_put(f->p, i <= 3 ? 1 : i <= 7 ? 2 : 4, "x", i);
    assert_int_equal(apply_with(f, 2, NULL, NULL, NULL, &err), SX_OK);
    assert_epochs(f->p, (sx_epoch_start[]){{1, 1}, {2, 4}, {4, 8}}, 3);

    assert_int_equal(sx_plog_truncate(f->p, 11, &err), SX_OK); /* beyond leo: nothing */
    assert_int_equal(sx_plog_leo(f->p), 10);
    assert_int_equal(sx_plog_truncate(f->p, 8, &err), SX_OK);
    assert_int_equal(sx_plog_leo(f->p), 8);
    assert_int_equal(sx_plog_last_epoch(f->p), 4);
    assert_epochs(f->p, (sx_epoch_start[]){{1, 1}, {2, 4}, {4, 8}}, 3);
    assert_int_equal(sx_plog_truncate(f->p, 6, &err), SX_OK);
    assert_int_equal(sx_plog_leo(f->p), 6);
    assert_int_equal(sx_plog_last_epoch(f->p), 2);
    assert_int_equal(sx_plog_max_epoch(f->p), 2);
    assert_epochs(f->p, (sx_epoch_start[]){{1, 1}, {2, 4}}, 2);

    sx_arena a = {0};
    sx_log_entry out[16];
    size_t n = 0;
    assert_int_equal(sx_plog_read(f->p, 1, 16, 1 << 20, &a, out, &n, &err), SX_OK);
    assert_int_equal(n, 6);
    assert_int_equal(sx_plog_read(f->p, 7, 16, 1 << 20, &a, out, &n, &err), SX_OK);
    assert_int_equal(n, 0);
    assert_int_equal(sx_plog_read(f->p, 8, 16, 1 << 20, &a, out, &n, &err), SX_OUT_OF_RANGE);

    /* A new epoch continues right after; a lower one may now follow 2 again. */
    append_put(f->p, 3, "x", 70);
    assert_epochs(f->p, (sx_epoch_start[]){{1, 1}, {2, 4}, {3, 7}}, 3);
    reopen(f);
    assert_int_equal(sx_plog_leo(f->p), 7);
    assert_int_equal(sx_plog_last_epoch(f->p), 3);
    assert_epochs(f->p, (sx_epoch_start[]){{1, 1}, {2, 4}, {3, 7}}, 3);
    assert_int_equal(sx_plog_read(f->p, 7, 16, 1 << 20, &a, out, &n, &err), SX_OK);
    assert_int_equal(n, 1);
    assert_int_equal(out[0].epoch, 3);

    /* Truncating at leo drops a begun epoch nothing was written in, so that an
     * older leader's entries may follow (a demoted leader joining a new one). */
    assert_int_equal(sx_plog_begin_epoch(f->p, 5, &err), SX_OK);
    assert_int_equal(sx_plog_truncate(f->p, 7, &err), SX_OK);
    assert_epochs(f->p, (sx_epoch_start[]){{1, 1}, {2, 4}, {3, 7}}, 3);
    assert_int_equal(sx_plog_max_epoch(f->p), 3);
    reopen(f);
    assert_int_equal(sx_plog_max_epoch(f->p), 3);

    /* Down to the applied offset is allowed. */
    assert_int_equal(sx_plog_truncate(f->p, 2, &err), SX_OK);
    assert_int_equal(sx_plog_leo(f->p), 2);
    assert_epochs(f->p, (sx_epoch_start[]){{1, 1}}, 1);
    reopen(f);
    assert_int_equal(sx_plog_leo(f->p), 2);
    assert_int_equal(sx_plog_applied(f->p), 2);
    assert_int_equal(get_n(f->p, "x", NULL), 2);
    sx_arena_free(&a);
}

static void test_truncate_to_zero(void **state)
{
    fixture *f = *state;
    sx_err err = {0};
    assert_int_equal(sx_plog_begin_epoch(f->p, 1, &err), SX_OK);
    append_put(f->p, 1, "x", 1);
    append_put(f->p, 2, "x", 2);
    assert_int_equal(sx_plog_truncate(f->p, 0, &err), SX_OK);
    assert_int_equal(sx_plog_leo(f->p), 0);
    assert_int_equal(sx_plog_last_epoch(f->p), 0);
    assert_int_equal(sx_plog_epochs(f->p, NULL, 0), 0);
    reopen(f);
    assert_int_equal(sx_plog_leo(f->p), 0);
    assert_int_equal(sx_plog_epochs(f->p, NULL, 0), 0);
    append_put(f->p, 1, "x", 3);
    assert_epochs(f->p, (sx_epoch_start[]){{1, 1}}, 1);
}

static void test_truncate_below_applied_aborts(void **state)
{
    fixture *f = *state;
    sx_err err = {0};
    for (int i = 1; i <= 5; i++)
        append_put(f->p, 1, "x", i);
    assert_int_equal(apply_with(f, 4, NULL, NULL, NULL, &err), SX_OK);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* No cmocka here: only the call under test, then a plain exit. */
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0)
            dup2(null, STDERR_FILENO);
        sx_plog_truncate(f->p, 3, NULL);
        _exit(0);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGABRT);
    /* The parent's log is untouched, and truncating to applied still works. */
    assert_int_equal(sx_plog_leo(f->p), 5);
    reopen(f);
    assert_int_equal(sx_plog_leo(f->p), 5);
    assert_int_equal(sx_plog_truncate(f->p, 4, &err), SX_OK);
    assert_int_equal(sx_plog_leo(f->p), 4);
}

/* ---- trim (log retention) ---- */

/* Trimming removes entries below min(floor, applied) and nothing else: reads
 * below the start are OUT_OF_RANGE, epochs of trimmed offsets still come from
 * the whole epoch table, documents are untouched, and the start survives a
 * reopen, with appends, applies and truncations (down to applied) going on. */
static void test_trim(void **state)
{
    fixture *f = *state;
    sx_err err = {0};
    for (int i = 1; i <= 10; i++)
        append_put(f->p, i <= 4 ? 1 : 3, i % 2 ? "a" : "b", i);
    uint64_t applied = 0, removed = 99;
    assert_int_equal(apply_with(f, 7, NULL, NULL, &applied, &err), SX_OK);
    assert_int_equal(applied, 7);
    assert_int_equal(sx_plog_start(f->p), 1);
    /* A floor above applied stops at applied: the entry at applied stays. */
    assert_int_equal(sx_plog_trim(f->p, 100, &removed, &err), SX_OK);
    assert_int_equal(removed, 6);
    assert_int_equal(sx_plog_start(f->p), 7);
    assert_int_equal(sx_plog_leo(f->p), 10);
    assert_int_equal(sx_plog_trim(f->p, 5, &removed, &err), SX_OK); /* below: no-op */
    assert_int_equal(removed, 0);
    sx_arena a = {0};
    sx_log_entry out[16];
    size_t n = 0;
    assert_int_equal(sx_plog_read(f->p, 6, 16, 1 << 20, &a, out, &n, &err), SX_OUT_OF_RANGE);
    assert_int_equal(sx_plog_read(f->p, 7, 16, 1 << 20, &a, out, &n, &err), SX_OK);
    assert_int_equal(n, 4);
    uint64_t e = 0;
    assert_int_equal(sx_plog_epoch_at(f->p, 2, &e, &err), SX_OK);
    assert_int_equal(e, 1);
    assert_epochs(f->p, (sx_epoch_start[]){{1, 1}, {3, 5}}, 2);
    assert_int_equal(get_n(f->p, "a", NULL), 7);
    assert_int_equal(get_n(f->p, "b", NULL), 6);
    reopen(f);
    assert_int_equal(sx_plog_start(f->p), 7);
    assert_int_equal(sx_plog_leo(f->p), 10);
    assert_int_equal(sx_plog_applied(f->p), 7);
    assert_int_equal(sx_plog_truncate(f->p, 8, &err), SX_OK);
    append_put(f->p, 4, "a", 11);
    assert_int_equal(apply_with(f, 9, NULL, NULL, &applied, &err), SX_OK);
    assert_int_equal(applied, 9);
    assert_int_equal(get_n(f->p, "a", NULL), 11);
    assert_int_equal(sx_plog_trim(f->p, 9, &removed, &err), SX_OK);
    assert_int_equal(removed, 2);
    reopen(f);
    assert_int_equal(sx_plog_start(f->p), 9);
    assert_int_equal(sx_plog_leo(f->p), 9);
    assert_int_equal(sx_plog_read(f->p, 9, 16, 1 << 20, &a, out, &n, &err), SX_OK);
    assert_int_equal(n, 1);
    assert_int_equal(out[0].epoch, 4);
    sx_arena_free(&a);
}

/* A trim longer than one batch, stopped dead (_exit in a forked child) at the
 * crash point between batches, leaves a store that opens with a start at a
 * batch boundary, every entry from there readable, the documents whole; the
 * trim then finishes. */
static void test_trim_killed(void **state)
{
    fixture *f = *state;
    sx_err err = {0};
    enum { N = 10000, PER = 500 };
    sx_buf ops[PER];
    sx_log_entry e[PER];
    memset(ops, 0, sizeof(ops));
    for (int i = 0; i < N; i += PER) {
        for (int j = 0; j < PER; j++) {
            op_put(&ops[j], (i + j) % 2 ? "a" : "b", i + j + 1);
            e[j] = (sx_log_entry){.epoch = 1, .op = ops[j].data, .op_len = ops[j].len};
        }
        assert_int_equal(sx_plog_append(f->p, e, PER, false, &err), SX_OK);
    }
    for (int j = 0; j < PER; j++)
        sx_buf_free(&ops[j]);
    assert_int_equal(apply_with(f, N, NULL, NULL, NULL, &err), SX_OK);
    sx_plog_close(f->p);
    f->p = NULL;
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        setenv("SHARDEX_CRASH_POINT", "plog-trim-batch", 1);
        sx_crash_points_init();
        sx_plog *p = NULL;
        if (sx_plog_open(f->db, 7, NULL, &p, NULL) != SX_OK)
            _exit(3);
        sx_plog_trim(p, N, NULL, NULL);
        _exit(0); /* the crash point did not fire */
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status)); /* _exit at the crash point: what kill -9 leaves */
    assert_int_equal(WEXITSTATUS(status), SX_CRASH_EXIT);
    reopen(f);
    uint64_t start = sx_plog_start(f->p);
    print_message("trim killed after its first batch: start=%llu\n", (unsigned long long)start);
    assert_true(start > 1 && start < N);
    assert_int_equal((start - 1) % 4096, 0);
    assert_int_equal(sx_plog_leo(f->p), N);
    sx_arena a = {0};
    sx_log_entry out[512];
    size_t n = 0, total = 0;
    for (uint64_t from = start; from <= N; from += n) {
        assert_int_equal(sx_plog_read(f->p, from, 512, 1 << 20, &a, out, &n, &err), SX_OK);
        assert_true(n > 0);
        total += n;
        sx_arena_free(&a);
    }
    assert_int_equal(total, N - start + 1);
    assert_int_equal(get_n(f->p, "a", NULL), N);
    assert_int_equal(get_n(f->p, "b", NULL), N - 1);
    uint64_t removed = 0;
    assert_int_equal(sx_plog_trim(f->p, N, &removed, &err), SX_OK);
    assert_int_equal(removed, N - start);
    reopen(f);
    assert_int_equal(sx_plog_start(f->p), N);
}

/* ---- apply ---- */

typedef struct hook_call {
    uint64_t offset;
    char id[16];
    int64_t old_n; /* -1: no document */
    int64_t new_n;
    uint64_t old_version; /* the offset that wrote the old document; 0: none */
} hook_call;

typedef struct hook_rec {
    hook_call calls[64];
    size_t n;
} hook_rec;

static void record_cb(void *arg, sx_batch *batch, uint64_t offset, const char *id, size_t id_len,
                      const uint8_t *old_doc, size_t old_len, uint64_t old_version,
                      const uint8_t *new_doc, size_t new_len)
{
    hook_rec *r = arg;
    assert_non_null(batch);
    assert_true(r->n < 64);
    assert_true(id_len < 16);
    hook_call *c = &r->calls[r->n++];
    c->offset = offset;
    memcpy(c->id, id, id_len);
    c->id[id_len] = '\0';
    c->old_n = doc_n(old_doc, old_len, id, id_len);
    c->new_n = doc_n(new_doc, new_len, id, id_len);
    c->old_version = old_version;
}

/* 1 put a=1, 2 put b=2, 3 put a=3, 4 del b, 5 put b=5, 6 del c (missing),
 * 7 put c=7, 8 put a=8; epochs 1 (1-4) and 2 (5-8). */
static void append_script(sx_plog *p)
{
    append_put(p, 1, "a", 1);
    append_put(p, 1, "b", 2);
    append_put(p, 1, "a", 3);
    append_del(p, 1, "b");
    append_put(p, 2, "b", 5);
    append_del(p, 2, "c");
    append_put(p, 2, "c", 7);
    append_put(p, 2, "a", 8);
}

static const hook_call script_calls[] = {
    {1, "a", -1, 1, 0}, {2, "b", -1, 2, 0},  {3, "a", 1, 3, 1},  {4, "b", 2, -1, 2},
    {5, "b", -1, 5, 0}, {6, "c", -1, -1, 0}, {7, "c", -1, 7, 0}, {8, "a", 3, 8, 3},
};

static void assert_calls(const hook_rec *r, size_t from, size_t to)
{
    assert_int_equal(r->n, to - from);
    for (size_t i = 0; i < r->n; i++) {
        const hook_call *w = &script_calls[from + i];
        assert_int_equal(r->calls[i].offset, w->offset);
        assert_string_equal(r->calls[i].id, w->id);
        assert_int_equal(r->calls[i].old_n, w->old_n);
        assert_int_equal(r->calls[i].new_n, w->new_n);
        assert_int_equal(r->calls[i].old_version, w->old_version);
    }
}

typedef struct scan_rec {
    char ids[8][16];
    uint64_t versions[8];
    int64_t ns[8];
    size_t n;
    size_t stop_after; /* 0: never */
} scan_rec;

static bool scan_cb(void *arg, const char *id, size_t id_len, uint64_t version, const uint8_t *doc,
                    size_t len)
{
    scan_rec *s = arg;
    assert_true(s->n < 8 && id_len < 16);
    assert_int_equal(id[id_len], '\0');
    memcpy(s->ids[s->n], id, id_len + 1);
    s->versions[s->n] = version;
    s->ns[s->n] = doc_n(doc, len, id, id_len);
    s->n++;
    return !(s->stop_after && s->n == s->stop_after);
}

/* The whole script in one apply: later entries for an id in the same batch see
 * the earlier ones as their old documents. */
static void test_apply_one_batch(void **state)
{
    fixture *f = *state;
    sx_err err = {0};
    hook_rec r = {0};
    append_script(f->p);
    uint64_t applied = 0;
    assert_int_equal(apply_with(f, 8, record_cb, &r, &applied, &err), SX_OK);
    assert_int_equal(applied, 8);
    assert_calls(&r, 0, 8);
    uint64_t v;
    assert_int_equal(get_n(f->p, "a", &v), 8);
    assert_int_equal(v, 8);
    assert_int_equal(get_n(f->p, "b", &v), 5);
    assert_int_equal(v, 5);
    assert_int_equal(get_n(f->p, "c", &v), 7);
    assert_int_equal(v, 7);
    assert_int_equal(sx_plog_commit(f->p), 8);
    scan_rec s = {0};
    assert_int_equal(sx_plog_scan_docs(f->p, scan_cb, &s, &err), SX_OK);
    assert_int_equal(s.n, 3);
    assert_string_equal(s.ids[0], "a");
    assert_string_equal(s.ids[1], "b");
    assert_string_equal(s.ids[2], "c");
    assert_int_equal(s.versions[0], 8);
    assert_int_equal(s.ns[2], 7);
    scan_rec s2 = {.stop_after = 2};
    assert_int_equal(sx_plog_scan_docs(f->p, scan_cb, &s2, &err), SX_OK);
    assert_int_equal(s2.n, 2);
    /* Resuming after an id (present or not): the ids strictly after it. */
    scan_rec s3 = {0};
    assert_int_equal(sx_plog_scan_docs_after(f->p, NULL, "a", 1, scan_cb, &s3, &err), SX_OK);
    assert_int_equal(s3.n, 2);
    assert_string_equal(s3.ids[0], "b");
    scan_rec s4 = {0};
    assert_int_equal(sx_plog_scan_docs_after(f->p, NULL, "bb", 2, scan_cb, &s4, &err), SX_OK);
    assert_int_equal(s4.n, 1);
    assert_string_equal(s4.ids[0], "c");
    scan_rec s5 = {0};
    assert_int_equal(sx_plog_scan_docs_after(f->p, NULL, "c", 1, scan_cb, &s5, &err), SX_OK);
    assert_int_equal(s5.n, 0);
}

/* Step by step, with a commit beyond leo and a commit that goes back. */
static void test_apply_steps(void **state)
{
    fixture *f = *state;
    sx_err err = {0};
    hook_rec r = {0};
    uint64_t applied = 99;
    append_script(f->p);
    assert_int_equal(apply_with(f, 0, record_cb, &r, &applied, &err), SX_OK);
    assert_int_equal(applied, 0);
    assert_int_equal(r.n, 0);

    assert_int_equal(apply_with(f, 3, record_cb, &r, &applied, &err), SX_OK);
    assert_int_equal(applied, 3);
    assert_calls(&r, 0, 3);
    uint64_t v;
    assert_int_equal(get_n(f->p, "a", &v), 3);
    assert_int_equal(v, 3);
    assert_int_equal(get_n(f->p, "b", &v), 2); /* the delete at 4 is not applied */
    scan_rec s = {0};
    assert_int_equal(sx_plog_scan_docs(f->p, scan_cb, &s, &err), SX_OK);
    assert_int_equal(s.n, 2);

    r.n = 0;
    assert_int_equal(apply_with(f, 4, record_cb, &r, &applied, &err), SX_OK);
    assert_calls(&r, 3, 4);
    assert_int_equal(get_n(f->p, "b", NULL), -1);

    /* Commit beyond leo applies to leo and is recorded as given. */
    r.n = 0;
    assert_int_equal(apply_with(f, 100, record_cb, &r, &applied, &err), SX_OK);
    assert_int_equal(applied, 8);
    assert_calls(&r, 4, 8);
    assert_int_equal(sx_plog_commit(f->p), 100);
    assert_int_equal(get_n(f->p, "b", &v), 5); /* re-created after its delete */
    assert_int_equal(v, 5);

    /* A lower commit neither applies nor lowers the recorded one. */
    append_put(f->p, 2, "d", 9);
    r.n = 0;
    assert_int_equal(apply_with(f, 5, record_cb, &r, &applied, &err), SX_OK);
    assert_int_equal(applied, 8);
    assert_int_equal(r.n, 0);
    assert_int_equal(sx_plog_commit(f->p), 100);
    reopen(f);
    assert_int_equal(sx_plog_applied(f->p), 8);
    assert_int_equal(sx_plog_commit(f->p), 100);
    assert_int_equal(get_n(f->p, "d", NULL), -1);
    assert_int_equal(apply_with(f, 100, record_cb, &r, &applied, &err), SX_OK);
    assert_int_equal(applied, 9);
    assert_int_equal(r.n, 1);
    assert_int_equal(get_n(f->p, "d", &v), 9);
    assert_int_equal(v, 9);
    assert_int_equal(get_n(f->p, "a", &v), 8);
}

/* A hook that checks each call against a model of the documents. */
typedef struct model_hook {
    int64_t docs[7]; /* n of doc "k<i>", -1 when absent */
    uint64_t next;   /* the offset of the next call */
    size_t calls;
} model_hook;

static void model_cb(void *arg, sx_batch *batch, uint64_t offset, const char *id, size_t id_len,
                     const uint8_t *old_doc, size_t old_len, uint64_t old_version,
                     const uint8_t *new_doc, size_t new_len)
{
    model_hook *m = arg;
    (void)batch;
    (void)old_version;
    assert_int_equal(offset, m->next);
    assert_int_equal(id_len, 2);
    int k = id[1] - '0';
    assert_int_equal(doc_n(old_doc, old_len, id, id_len), m->docs[k]);
    m->docs[k] = doc_n(new_doc, new_len, id, id_len);
    m->next++;
    m->calls++;
}

/* Enough entries to need several batches (and one sync append per 100). */
static void test_apply_many(void **state)
{
    fixture *f = *state;
    sx_err err = {0};
    enum { N = 10000, PER = 100 };
    sx_buf ops[PER];
    sx_log_entry e[PER];
    memset(ops, 0, sizeof(ops));
    double t0 = now_s();
    for (int i = 0; i < N; i += PER) {
        for (int j = 0; j < PER; j++) {
            int o = i + j + 1;
            char id[3] = {'k', (char)('0' + o % 7), 0};
            if (o % 5 == 0)
                op_del(&ops[j], id);
            else
                op_put(&ops[j], id, o);
            e[j] = (sx_log_entry){
                .epoch = 1 + (uint64_t)o / 2500, .op = ops[j].data, .op_len = ops[j].len};
        }
        assert_int_equal(sx_plog_append(f->p, e, PER, true, &err), SX_OK);
    }
    double t1 = now_s();
    model_hook m = {.next = 1};
    for (int k = 0; k < 7; k++)
        m.docs[k] = -1;
    uint64_t applied = 0;
    assert_int_equal(apply_with(f, 7777, model_cb, &m, &applied, &err), SX_OK);
    assert_int_equal(applied, 7777);
    assert_int_equal(apply_with(f, N, model_cb, &m, &applied, &err), SX_OK);
    double t2 = now_s();
    assert_int_equal(applied, N);
    assert_int_equal(m.calls, N);
    assert_epochs(f->p, (sx_epoch_start[]){{1, 1}, {2, 2500}, {3, 5000}, {4, 7500}, {5, 10000}}, 5);
    reopen(f);
    double t3 = now_s();
    assert_int_equal(sx_plog_leo(f->p), N);
    assert_int_equal(sx_plog_applied(f->p), N);
    for (int k = 0; k < 7; k++) {
        char id[3] = {'k', (char)('0' + k), 0};
        uint64_t v = 0;
        assert_int_equal(get_n(f->p, id, &v), m.docs[k]);
        if (m.docs[k] >= 0)
            assert_int_equal(v, (uint64_t)m.docs[k]);
    }
    sx_arena a = {0};
    sx_log_entry out[512];
    size_t n = 0, total = 0;
    for (uint64_t from = 1; from <= N; from += n) {
        assert_int_equal(sx_plog_read(f->p, from, 512, 64 << 10, &a, out, &n, &err), SX_OK);
        assert_true(n > 0);
        total += n;
        sx_arena_free(&a);
    }
    double t4 = now_s();
    assert_int_equal(total, N);
    print_message("plog: append %d entries sync=true in batches of %d: %.3f s; apply: %.3f s; "
                  "reopen: %.4f s; read all: %.3f s\n",
                  N, PER, t1 - t0, t2 - t1, t3 - t2, t4 - t3);
    for (int j = 0; j < PER; j++)
        sx_buf_free(&ops[j]);
}

/* A corrupt op stops apply at the entry before it, with SX_DATA_LOSS, every
 * time; truncating it away (down to applied) lets apply go on. */
static void test_apply_corrupt(void **state)
{
    fixture *f = *state;
    sx_err err = {0};
    rng_state = seed;
    append_put(f->p, 1, "a", 1);
    append_put(f->p, 1, "b", 2);
    /* Field number 0 never decodes, whatever follows. */
    uint8_t junk[33] = {0x07};
    for (size_t i = 1; i < sizeof(junk); i++)
        junk[i] = (uint8_t)rnd();
    sx_log_entry bad = {1, junk, sizeof(junk)};
    assert_int_equal(sx_plog_append(f->p, &bad, 1, true, &err), SX_OK);
    append_put(f->p, 1, "c", 4);

    hook_rec r = {0};
    uint64_t applied = 0;
    assert_int_equal(apply_with(f, 10, record_cb, &r, &applied, &err), SX_DATA_LOSS);
    assert_non_null(strstr(err.msg, "entry 3 "));
    assert_int_equal(applied, 2);
    assert_int_equal(sx_plog_applied(f->p), 2);
    assert_int_equal(r.n, 2);
    assert_int_equal(get_n(f->p, "b", NULL), 2);
    assert_int_equal(get_n(f->p, "c", NULL), -1);
    assert_int_equal(apply_with(f, 10, record_cb, &r, &applied, &err), SX_DATA_LOSS);
    assert_int_equal(applied, 2);
    reopen(f);
    assert_int_equal(sx_plog_applied(f->p), 2);
    assert_int_equal(sx_plog_commit(f->p), 10);
    assert_int_equal(apply_with(f, 10, NULL, NULL, &applied, &err), SX_DATA_LOSS);

    /* An op that decodes but holds nothing is no better. */
    assert_int_equal(sx_plog_truncate(f->p, 2, &err), SX_OK);
    assert_int_equal(sx_plog_commit(f->p), 2); /* lowered: those entries are gone */
    sx_log_entry empty = {1, NULL, 0};
    assert_int_equal(sx_plog_append(f->p, &empty, 1, false, &err), SX_OK);
    assert_int_equal(apply_with(f, 10, NULL, NULL, &applied, &err), SX_DATA_LOSS);
    assert_int_equal(applied, 2);
    assert_int_equal(sx_plog_commit(f->p), 10); /* recorded even though nothing applied */

    assert_int_equal(sx_plog_truncate(f->p, 2, &err), SX_OK);
    append_put(f->p, 2, "c", 3);
    assert_int_equal(apply_with(f, 10, NULL, NULL, &applied, &err), SX_OK);
    assert_int_equal(applied, 3);
    assert_int_equal(get_n(f->p, "c", NULL), 3);
}

/* Documents are what was applied, never what is only appended. */
static void test_docs_applied_only(void **state)
{
    fixture *f = *state;
    sx_err err = {0};
    append_put(f->p, 1, "x", 1);
    append_put(f->p, 1, "y", 2);
    scan_rec s = {0};
    assert_int_equal(get_n(f->p, "x", NULL), -1);
    assert_int_equal(sx_plog_scan_docs(f->p, scan_cb, &s, &err), SX_OK);
    assert_int_equal(s.n, 0);
    assert_int_equal(apply_with(f, 1, NULL, NULL, NULL, &err), SX_OK);
    assert_int_equal(get_n(f->p, "x", NULL), 1);
    assert_int_equal(get_n(f->p, "y", NULL), -1);
    assert_int_equal(sx_plog_scan_docs(f->p, scan_cb, &s, &err), SX_OK);
    assert_int_equal(s.n, 1);
    /* get_doc leaves doc alone when the id is missing. */
    sx_buf doc = {0};
    sx_buf_append(&doc, "keep", 4);
    bool found = true;
    assert_int_equal(sx_plog_get_doc(f->p, "y", 1, &found, NULL, &doc, &err), SX_OK);
    assert_false(found);
    assert_int_equal(doc.len, 4);
    sx_buf_free(&doc);
}

/* Appends and applies from two threads (and reads): nothing lost, in order. */
typedef struct writer_arg {
    sx_plog *p;
    int batches;
} writer_arg;

static void *writer_main(void *arg)
{
    writer_arg *w = arg;
    sx_buf ops[10];
    sx_log_entry e[10];
    memset(ops, 0, sizeof(ops));
    for (int b = 0; b < w->batches; b++) {
        for (int j = 0; j < 10; j++) {
            op_put(&ops[j], "k", b * 10 + j + 1);
            e[j] = (sx_log_entry){1, ops[j].data, ops[j].len};
        }
        if (sx_plog_append(w->p, e, 10, false, NULL) != SX_OK)
            abort();
    }
    for (int j = 0; j < 10; j++)
        sx_buf_free(&ops[j]);
    return NULL;
}

static void test_threads(void **state)
{
    fixture *f = *state;
    sx_err err = {0};
    writer_arg w = {f->p, 200};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, writer_main, &w), 0);
    uint64_t applied = 0, prev = 0;
    sx_arena a = {0};
    sx_log_entry out[64];
    size_t n;
    while (applied < 2000) {
        assert_int_equal(apply_with(f, sx_plog_leo(f->p), NULL, NULL, &applied, &err), SX_OK);
        assert_true(applied >= prev);
        prev = applied;
        if (applied > 0) {
            assert_int_equal(sx_plog_read(f->p, applied, 64, 1 << 20, &a, out, &n, &err), SX_OK);
            assert_true(n >= 1);
            sx_arena_free(&a);
            uint64_t v;
            assert_int_equal(get_n(f->p, "k", &v), (int64_t)applied);
            assert_int_equal(v, applied);
        }
    }
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(sx_plog_leo(f->p), 2000);
}

/* ---- common prefix ---- */

typedef struct cp_case {
    const char *name;
    sx_epoch_start a[4];
    size_t na;
    uint64_t leo_a;
    sx_epoch_start b[4];
    size_t nb;
    uint64_t leo_b;
    uint64_t want;
} cp_case;

static void test_common_prefix_cases(void **state)
{
    (void)state;
    static const cp_case cases[] = {
        {"identical", {{1, 1}, {2, 5}}, 2, 10, {{1, 1}, {2, 5}}, 2, 10, 10},
        {"follower shorter", {{1, 1}, {2, 5}}, 2, 10, {{1, 1}, {2, 5}}, 2, 7, 7},
        {"follower behind an epoch", {{1, 1}, {2, 5}}, 2, 10, {{1, 1}}, 1, 3, 3},
        {"follower at an epoch's end", {{1, 1}, {2, 5}}, 2, 10, {{1, 1}}, 1, 4, 4},
        /* KIP-101: the follower kept a tail of epoch 1 (5, 6) that the new
         * leader of epoch 2 never had; they agree up to 4. */
        {"divergent tail in an old epoch", {{1, 1}, {2, 5}}, 2, 8, {{1, 1}}, 1, 6, 4},
        /* KIP-279: a never saw epoch 2; b never saw epoch 3. Epoch 1 is
         * [1, 5] on a and [1, 3] on b. */
        {"missed middle epoch", {{1, 1}, {3, 6}}, 2, 8, {{1, 1}, {2, 4}}, 2, 7, 3},
        {"missed middle epoch, later",
         {{1, 1}, {2, 4}, {4, 7}},
         3,
         9,
         {{1, 1}, {2, 4}, {3, 6}},
         3,
         8,
         5},
        {"both empty", {{0, 0}}, 0, 0, {{0, 0}}, 0, 0, 0},
        {"one empty", {{1, 1}}, 1, 5, {{0, 0}}, 0, 0, 0},
        {"begun, nothing written", {{1, 1}}, 1, 0, {{1, 1}}, 1, 4, 0},
        {"no shared epoch", {{2, 1}}, 1, 3, {{1, 1}}, 1, 3, 0},
        {"begun epoch on one side", {{1, 1}, {2, 4}}, 2, 3, {{1, 1}, {2, 4}}, 2, 6, 3},
        {"empty epoch range", {{1, 1}, {2, 3}, {3, 3}}, 3, 5, {{1, 1}, {2, 3}}, 2, 4, 2},
        {"shared last epoch", {{1, 1}, {3, 3}, {5, 9}}, 3, 12, {{1, 1}, {3, 3}, {5, 9}}, 3, 9, 9},
        /* Not from a real history, but the rules still hold: a shared epoch
         * that is empty on one side proves nothing, and ranges end at leo. */
        {"shared epoch empty on one side", {{2, 1}, {3, 4}}, 2, 3, {{1, 1}, {3, 4}}, 2, 6, 0},
        {"rows beyond leo", {{1, 1}, {2, 10}}, 2, 5, {{1, 1}}, 1, 8, 5},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const cp_case *c = &cases[i];
        uint64_t ab = sx_plog_common_prefix(c->a, c->na, c->leo_a, c->b, c->nb, c->leo_b);
        uint64_t ba = sx_plog_common_prefix(c->b, c->nb, c->leo_b, c->a, c->na, c->leo_a);
        if (ab != c->want || ba != c->want)
            fail_msg("%s: got %llu / %llu, want %llu", c->name, (unsigned long long)ab,
                     (unsigned long long)ba, (unsigned long long)c->want);
    }
}

/* A model replica: per offset the epoch and a unique id of the entry (what
 * makes two entries the same), and the epoch table as plog keeps it. */
#define MLOG 512
#define MROWS 160

typedef struct mrep {
    uint64_t ep[MLOG + 1];
    uint64_t uid[MLOG + 1];
    uint64_t len;
    sx_epoch_start rows[MROWS];
    size_t nrows;
} mrep;

static uint64_t m_max_epoch(const mrep *r)
{
    return r->nrows ? r->rows[r->nrows - 1].epoch : 0;
}

static void m_append(mrep *r, uint64_t epoch, uint64_t uid)
{
    assert_true(r->len < MLOG && r->nrows < MROWS);
    while (r->nrows && r->rows[r->nrows - 1].epoch > epoch) /* begun, never written */
        r->nrows--;
    r->len++;
    r->ep[r->len] = epoch;
    r->uid[r->len] = uid;
    if (epoch > m_max_epoch(r))
        r->rows[r->nrows++] = (sx_epoch_start){epoch, r->len};
}

static void m_begin(mrep *r, uint64_t epoch)
{
    assert_true(r->nrows < MROWS);
    if (epoch > m_max_epoch(r))
        r->rows[r->nrows++] = (sx_epoch_start){epoch, r->len + 1};
}

static void m_truncate(mrep *r, uint64_t off)
{
    if (off > r->len)
        return;
    r->len = off;
    while (r->nrows && r->rows[r->nrows - 1].start_offset > off)
        r->nrows--;
}

/* The truth: the longest run of identical entries from offset 1. */
static uint64_t m_brute(const mrep *a, const mrep *b)
{
    uint64_t o = 0;
    while (o < a->len && o < b->len && a->uid[o + 1] == b->uid[o + 1])
        o++;
    return o;
}

/* The reference the epoch-table answer should match: the largest offset at
 * which both logs hold the same epoch, comparing offset by offset. */
static uint64_t m_by_epoch(const mrep *a, const mrep *b)
{
    uint64_t best = 0;
    for (uint64_t o = 1; o <= a->len && o <= b->len; o++)
        if (a->ep[o] == b->ep[o])
            best = o;
    return best;
}

/* The next step of a leader history over n replicas: appends on the leader,
 * followers reconciling (truncate to where they agree, which may be skipped
 * when that is their end, as a follower that finds no conflict does; then
 * copy some),
 * followers losing an unsynced tail, failovers to any replica (the old leader
 * sometimes losing its tail first). Returns what it did, for a real plog to
 * repeat: kind 0 append (epoch, uid count k), 1 reconcile r to t (unless
 * no_trunc) then copy k, 2 r loses its tail down to t, 3 r begins epoch. */
typedef struct step {
    int kind;
    int r;
    uint64_t t, k, epoch, uid0;
    bool no_trunc;
} step;

typedef struct history {
    mrep *reps;
    int n;
    int leader;
    uint64_t epoch;
    uint64_t next_uid;
} history;

static int hist_step(history *h, step *out, int *nout)
{
    *nout = 0;
    mrep *L = &h->reps[h->leader];
    uint64_t x = rnd_below(10);
    int f = (h->leader + 1 + (int)rnd_below((uint64_t)h->n - 1)) % h->n;
    mrep *F = &h->reps[f];
    if (x < 4) {
        uint64_t k = 1 + rnd_below(4);
        if (L->len + k > MLOG)
            return 0;
        out[(*nout)++] = (step){0, h->leader, 0, k, h->epoch, h->next_uid, false};
        for (uint64_t i = 0; i < k; i++)
            m_append(L, h->epoch, h->next_uid++);
    } else if (x < 7) {
        uint64_t t = m_brute(F, L);
        uint64_t k = rnd_below(L->len - t + 1);
        bool no_trunc = t == F->len && rnd_below(2);
        out[(*nout)++] = (step){1, f, t, k, 0, 0, no_trunc};
        if (!no_trunc)
            m_truncate(F, t);
        for (uint64_t i = 1; i <= k; i++)
            m_append(F, L->ep[t + i], L->uid[t + i]);
    } else if (x < 8) {
        uint64_t t = F->len - rnd_below(F->len < 3 ? F->len + 1 : 4);
        out[(*nout)++] = (step){2, f, t, 0, 0, 0, false};
        m_truncate(F, t);
    } else {
        if (rnd_below(2)) {
            uint64_t t = L->len - rnd_below(L->len < 2 ? L->len + 1 : 3);
            out[(*nout)++] = (step){2, h->leader, t, 0, 0, 0, false};
            m_truncate(L, t);
        }
        h->epoch++;
        h->leader = (int)rnd_below((uint64_t)h->n);
        out[(*nout)++] = (step){3, h->leader, 0, 0, h->epoch, 0, false};
        m_begin(&h->reps[h->leader], h->epoch);
    }
    return *nout;
}

/* Pairs checked where the logs diverge before the shorter one ends, and
 * where one diverges in an epoch the other skipped: the interesting ones. */
static size_t diverged, missed_epoch;

static bool has_epoch(const mrep *r, uint64_t e)
{
    for (size_t i = 0; i < r->nrows; i++)
        if (r->rows[i].epoch == e)
            return true;
    return false;
}

static void check_pairs(const history *h, int hist, int stepno)
{
    for (int i = 0; i < h->n; i++)
        for (int j = 0; j < h->n; j++) {
            const mrep *a = &h->reps[i], *b = &h->reps[j];
            uint64_t want = m_brute(a, b);
            uint64_t ref = m_by_epoch(a, b);
            uint64_t got =
                sx_plog_common_prefix(a->rows, a->nrows, a->len, b->rows, b->nrows, b->len);
            if (want < a->len && want < b->len)
                diverged++;
            if (want < a->len && want < b->len && !has_epoch(b, a->ep[want + 1]) &&
                a->ep[want + 1] < b->ep[b->len])
                missed_epoch++; /* KIP-279: b went past an epoch a wrote in */
            if (got != want || ref != want)
                fail_msg("history %d step %d replicas %d,%d: common_prefix=%llu by_epoch=%llu "
                         "brute=%llu seed=%llu",
                         hist, stepno, i, j, (unsigned long long)got, (unsigned long long)ref,
                         (unsigned long long)want, seed);
        }
}

static void test_common_prefix_random(void **state)
{
    (void)state;
    rng_state = seed;
    for (int hist = 0; hist < 300; hist++) {
        mrep *reps = calloc(3, sizeof(*reps));
        assert_non_null(reps);
        history h = {reps, 2 + (int)rnd_below(2), 0, 1, 1};
        h.leader = (int)rnd_below((uint64_t)h.n);
        m_begin(&reps[h.leader], 1);
        int steps = 20 + (int)rnd_below(100);
        for (int s = 0; s < steps; s++) {
            step st[2];
            int n;
            hist_step(&h, st, &n);
            check_pairs(&h, hist, s);
        }
        free(reps);
    }
    print_message("common_prefix: %zu diverging pairs, %zu past a skipped epoch\n", diverged,
                  missed_epoch);
    assert_true(diverged > 100 && missed_epoch > 10);
}

/* The same kind of history on three real plogs, which must keep the model's
 * epoch tables and logs through appends, begun epochs and truncations. */
static void test_plog_random_history(void **state)
{
    fixture *f = *state;
    sx_err err = {0};
    rng_state = seed ^ 0x5eed;
    enum { R = 3 };
    sx_plog *p[R] = {f->p, NULL, NULL};
    char path[PATH_MAX + 16];
    for (int i = 1; i < R; i++) {
        snprintf(path, sizeof(path), "%s/r%d", f->dir, i);
        assert_int_equal(sx_plog_open(path, 7, NULL, &p[i], &err), SX_OK);
    }
    mrep *reps = calloc(R, sizeof(*reps));
    assert_non_null(reps);
    history h = {reps, R, (int)rnd_below(R), 1, 1};
    m_begin(&reps[h.leader], 1);
    assert_int_equal(sx_plog_begin_epoch(p[h.leader], 1, &err), SX_OK);
    sx_log_entry e[MLOG];
    uint64_t uids[MLOG];
    for (int s = 0; s < 250; s++) {
        step st[2];
        int n;
        /* The leader's entries before the step, for copies. */
        mrep lead = reps[h.leader];
        hist_step(&h, st, &n);
        for (int i = 0; i < n; i++) {
            sx_plog *q = p[st[i].r];
            switch (st[i].kind) {
            case 0:
                for (uint64_t j = 0; j < st[i].k; j++) {
                    uids[j] = st[i].uid0 + j;
                    e[j] = (sx_log_entry){st[i].epoch, (const uint8_t *)&uids[j], 8};
                }
                assert_int_equal(sx_plog_append(q, e, st[i].k, rnd_below(4) == 0, &err), SX_OK);
                break;
            case 1:
                if (!st[i].no_trunc)
                    assert_int_equal(sx_plog_truncate(q, st[i].t, &err), SX_OK);
                for (uint64_t j = 0; j < st[i].k; j++) {
                    uids[j] = lead.uid[st[i].t + 1 + j];
                    e[j] = (sx_log_entry){lead.ep[st[i].t + 1 + j], (const uint8_t *)&uids[j], 8};
                }
                if (st[i].k)
                    assert_int_equal(sx_plog_append(q, e, st[i].k, false, &err), SX_OK);
                break;
            case 2:
                assert_int_equal(sx_plog_truncate(q, st[i].t, &err), SX_OK);
                break;
            default:
                assert_int_equal(sx_plog_begin_epoch(q, st[i].epoch, &err), SX_OK);
                break;
            }
        }
        sx_epoch_start rows[R][MROWS];
        size_t nrows[R];
        for (int i = 0; i < R; i++) {
            nrows[i] = sx_plog_epochs(p[i], rows[i], MROWS);
            assert_int_equal(sx_plog_leo(p[i]), reps[i].len);
            assert_int_equal(nrows[i], reps[i].nrows);
            assert_memory_equal(rows[i], reps[i].rows, nrows[i] * sizeof(sx_epoch_start));
        }
        for (int i = 0; i < R; i++)
            for (int j = 0; j < R; j++)
                assert_int_equal(sx_plog_common_prefix(rows[i], nrows[i], sx_plog_leo(p[i]),
                                                       rows[j], nrows[j], sx_plog_leo(p[j])),
                                 m_brute(&reps[i], &reps[j]));
    }
    /* Every entry, its epoch and epoch_at agree with the model, after a reopen. */
    sx_arena a = {0};
    sx_log_entry out[MLOG];
    for (int i = 0; i < R; i++) {
        sx_plog_close(p[i]);
        if (i == 0)
            snprintf(path, sizeof(path), "%s", f->db);
        else
            snprintf(path, sizeof(path), "%s/r%d", f->dir, i);
        assert_int_equal(sx_plog_open(path, 7, NULL, &p[i], &err), SX_OK);
        size_t n = 0;
        assert_int_equal(sx_plog_read(p[i], 1, MLOG, SIZE_MAX, &a, out, &n, &err), SX_OK);
        assert_int_equal(n, reps[i].len);
        for (size_t o = 1; o <= n; o++) {
            uint64_t uid, ep;
            assert_int_equal(out[o - 1].op_len, 8);
            memcpy(&uid, out[o - 1].op, 8);
            assert_int_equal(uid, reps[i].uid[o]);
            assert_int_equal(out[o - 1].epoch, reps[i].ep[o]);
            assert_int_equal(sx_plog_epoch_at(p[i], o, &ep, &err), SX_OK);
            assert_int_equal(ep, reps[i].ep[o]);
        }
        sx_arena_free(&a);
    }
    f->p = p[0];
    for (int i = 1; i < R; i++)
        sx_plog_close(p[i]);
    free(reps);
}

/* ---- snapshots (psnap.h) ---- */

/* Copies every chunk of a snapshot of p (max_bytes each) into a sealed store
 * at path; returns the snapshot's offset. between runs after the first chunk
 * (the source changes meanwhile: the copy must not see it). */
static uint64_t copy_snapshot(sx_plog *p, const char *path, uint32_t max_bytes,
                              void (*between)(void *), void *arg)
{
    sx_err err = {0};
    sx_psnap_server *srv = sx_psnap_server_create();
    sx_psnap_writer *w = NULL;
    assert_int_equal(sx_psnap_writer_open(path, &w, &err), SX_OK);
    Shardex__Internal__V1__SnapshotRequest req = SHARDEX__INTERNAL__V1__SNAPSHOT_REQUEST__INIT;
    req.partition = 7;
    req.epoch = 3;
    req.max_bytes = max_bytes;
    sx_buf cursor = {0};
    uint64_t at = 0;
    int chunks = 0;
    for (bool done = false; !done; chunks++) {
        sx_arena a = {0};
        Shardex__Internal__V1__SnapshotResponse resp =
            SHARDEX__INTERNAL__V1__SNAPSHOT_RESPONSE__INIT;
        req.cursor = (ProtobufCBinaryData){cursor.len, cursor.data};
        assert_int_equal(sx_psnap_serve(srv, p, 1000, &req, &resp, &a, &err), SX_OK);
        assert_true(resp.session != 0);
        if (req.session)
            assert_int_equal(resp.offset, at);
        req.session = resp.session;
        at = resp.offset;
        assert_int_equal(sx_psnap_writer_put(w, resp.pairs, resp.n_pairs, &err), SX_OK);
        for (size_t i = 0; i < resp.n_pairs; i++)
            assert_int_not_equal(resp.pairs[i]->key.data[0], 'L');
        sx_buf_reset(&cursor);
        sx_buf_append(&cursor, resp.next_cursor.data, resp.next_cursor.len);
        done = resp.done;
        sx_arena_free(&a);
        if (chunks == 0 && between)
            between(arg);
    }
    assert_true(chunks > 1 || max_bytes == 0);
    assert_int_equal(sx_psnap_server_sessions(srv), 0); /* done ends the session */
    assert_int_equal(sx_psnap_writer_seal(w, at, &err), SX_OK);
    sx_psnap_writer_close(w);
    sx_psnap_server_destroy(srv);
    sx_buf_free(&cursor);
    return at;
}

static void write_more(void *arg)
{
    sx_plog *p = arg;
    sx_err err = {0};
    append_put(p, 5, "a", 100);
    append_put(p, 5, "c", 101);
    assert_int_equal(sx_plog_apply(p, 12, NULL, &err), SX_OK);
}

/* A snapshot at applied 7 of a log with epochs 1 and 3 (and 5 begun above
 * it), copied in small chunks while the source moves on, opens as a log
 * that holds no entry and starts at 8: the documents as of 7, the epoch
 * table up to 7 (epoch_at(7) answers), appends and applies go on from 8,
 * and it reopens so. */
static void test_snapshot_install(void **state)
{
    fixture *f = *state;
    sx_err err = {0};
    for (int i = 1; i <= 10; i++)
        append_put(f->p, i <= 4 ? 1 : 3, i % 2 ? "a" : "b", i);
    uint64_t applied = 0;
    assert_int_equal(apply_with(f, 7, NULL, NULL, &applied, &err), SX_OK);
    assert_int_equal(sx_plog_trim(f->p, 5, NULL, &err), SX_OK);  /* a trimmed source */
    assert_int_equal(sx_plog_begin_epoch(f->p, 5, &err), SX_OK); /* (5, 11): above the copy's 7 */
    char snap[PATH_MAX + 32], live[PATH_MAX + 32];
    snprintf(snap, sizeof(snap), "%s/q.snap", f->dir);
    snprintf(live, sizeof(live), "%s/q", f->dir);
    assert_int_equal(copy_snapshot(f->p, snap, 16, write_more, f->p), 7);
    assert_int_equal(sx_plog_applied(f->p), 12); /* the source moved on meanwhile */
    assert_int_equal(sx_psnap_swap(live, &err), SX_OK);
    sx_plog *q = NULL;
    assert_int_equal(sx_plog_open(live, 7, NULL, &q, &err), SX_OK);
    assert_int_equal(sx_plog_start(q), 8);
    assert_int_equal(sx_plog_leo(q), 7);
    assert_int_equal(sx_plog_applied(q), 7);
    assert_int_equal(sx_plog_commit(q), 7);
    assert_int_equal(sx_plog_last_epoch(q), 3);
    assert_epochs(q, (sx_epoch_start[]){{1, 1}, {3, 5}}, 2);
    uint64_t e = 0;
    assert_int_equal(sx_plog_epoch_at(q, 7, &e, &err), SX_OK);
    assert_int_equal(e, 3);
    assert_int_equal(get_n(q, "a", NULL), 7);
    assert_int_equal(get_n(q, "b", NULL), 6);
    assert_int_equal(get_n(q, "c", NULL), -1);
    sx_arena a = {0};
    sx_log_entry out[4];
    size_t n = 9;
    assert_int_equal(sx_plog_read(q, 8, 4, 1 << 20, &a, out, &n, &err), SX_OK);
    assert_int_equal(n, 0);
    assert_int_equal(sx_plog_read(q, 7, 4, 1 << 20, &a, out, &n, &err), SX_OUT_OF_RANGE);
    /* A trim finds nothing to remove: the start is above applied. */
    uint64_t removed = 9;
    assert_int_equal(sx_plog_trim(q, 100, &removed, &err), SX_OK);
    assert_int_equal(removed, 0);
    append_put(q, 3, "a", 8);
    append_put(q, 5, "d", 9);
    assert_int_equal(sx_plog_apply(q, 9, &applied, &err), SX_OK);
    assert_int_equal(applied, 9);
    sx_plog_close(q);
    assert_int_equal(sx_plog_open(live, 7, NULL, &q, &err), SX_OK);
    assert_int_equal(sx_plog_start(q), 8);
    assert_int_equal(sx_plog_leo(q), 9);
    assert_int_equal(get_n(q, "a", NULL), 8);
    assert_int_equal(get_n(q, "d", NULL), 9);
    assert_epochs(q, (sx_epoch_start[]){{1, 1}, {3, 5}, {5, 9}}, 3);
    sx_plog_close(q);
    sx_arena_free(&a);
}

/* The server's refusals: an unknown session, an expired one, too many open;
 * the writer's: a log entry, keys that do not ascend (nothing written). */
static void test_snapshot_refusals(void **state)
{
    fixture *f = *state;
    sx_err err = {0};
    append_put(f->p, 1, "a", 1);
    assert_int_equal(sx_plog_apply(f->p, 1, NULL, &err), SX_OK);
    sx_psnap_server *srv = sx_psnap_server_create();
    Shardex__Internal__V1__SnapshotRequest req = SHARDEX__INTERNAL__V1__SNAPSHOT_REQUEST__INIT;
    req.partition = 7;
    req.epoch = 1;
    req.max_bytes = 1;
    sx_arena a = {0};
    Shardex__Internal__V1__SnapshotResponse resp = SHARDEX__INTERNAL__V1__SNAPSHOT_RESPONSE__INIT;
    req.session = 42;
    assert_int_equal(sx_psnap_serve(srv, f->p, 1000, &req, &resp, &a, &err), SX_NOT_FOUND);
    assert_non_null(strstr(err.msg, "unknown or expired"));
    req.session = 0;
    uint64_t ids[SX_PSNAP_MAX_SESSIONS];
    for (int i = 0; i < SX_PSNAP_MAX_SESSIONS; i++) {
        assert_int_equal(sx_psnap_serve(srv, f->p, 1000, &req, &resp, &a, &err), SX_OK);
        assert_false(resp.done); /* one pair of several: the session stays */
        ids[i] = resp.session;
    }
    assert_int_equal(sx_psnap_serve(srv, f->p, 1000, &req, &resp, &a, &err), SX_RESOURCE_EXHAUSTED);
    req.session = ids[0];
    req.epoch = 2; /* another leadership: not this session */
    assert_int_equal(sx_psnap_serve(srv, f->p, 1000, &req, &resp, &a, &err), SX_NOT_FOUND);
    req.epoch = 1;
    assert_int_equal(sx_psnap_serve(srv, f->p, 1000 + SX_PSNAP_IDLE_MS / 2, &req, &resp, &a, &err),
                     SX_OK);
    /* The others were idle too long; the one used lives on. */
    assert_int_equal(sx_psnap_serve(srv, f->p, 1001 + SX_PSNAP_IDLE_MS, &req, &resp, &a, &err),
                     SX_OK);
    assert_int_equal(sx_psnap_server_sessions(srv), 1);
    req.session = ids[1];
    assert_int_equal(sx_psnap_serve(srv, f->p, 1002 + SX_PSNAP_IDLE_MS, &req, &resp, &a, &err),
                     SX_NOT_FOUND);
    /* A store about to close drops its sessions; idle ones go without a call. */
    sx_psnap_server_drop(srv, f->p);
    assert_int_equal(sx_psnap_server_sessions(srv), 0);
    req.session = 0;
    assert_int_equal(sx_psnap_serve(srv, f->p, 5000, &req, &resp, &a, &err), SX_OK);
    sx_psnap_server_expire(srv, 5000 + SX_PSNAP_IDLE_MS);
    assert_int_equal(sx_psnap_server_sessions(srv), 1);
    sx_psnap_server_expire(srv, 5001 + SX_PSNAP_IDLE_MS);
    assert_int_equal(sx_psnap_server_sessions(srv), 0);
    assert_int_equal(sx_psnap_serve(srv, f->p, 1000, &req, &resp, &a, &err), SX_OK);
    sx_psnap_server_destroy(srv); /* releases the open snapshot */

    char path[PATH_MAX + 32];
    snprintf(path, sizeof(path), "%s/w.snap", f->dir);
    sx_psnap_writer *w = NULL;
    assert_int_equal(sx_psnap_writer_open(path, &w, &err), SX_OK);
    Shardex__Internal__V1__SnapshotPair p1 = SHARDEX__INTERNAL__V1__SNAPSHOT_PAIR__INIT, p2 = p1;
    p1.key = (ProtobufCBinaryData){2, (uint8_t *)"Db"};
    p2.key = (ProtobufCBinaryData){2, (uint8_t *)"Da"};
    Shardex__Internal__V1__SnapshotPair *two[] = {&p1, &p2};
    assert_int_equal(sx_psnap_writer_put(w, two, 2, &err), SX_INVALID_ARGUMENT);
    assert_non_null(strstr(err.msg, "pairs[1].key: not above the previous key"));
    p2.key = (ProtobufCBinaryData){9, (uint8_t *)"L\0\0\0\0\0\0\0\1"};
    assert_int_equal(sx_psnap_writer_put(w, two, 2, &err), SX_INVALID_ARGUMENT);
    assert_non_null(strstr(err.msg, "pairs[1].key: a log entry"));
    assert_int_equal(sx_psnap_writer_put(w, two, 1, &err), SX_OK);
    assert_int_equal(sx_psnap_writer_put(w, two, 1, &err),
                     SX_INVALID_ARGUMENT); /* again: not above */
    sx_psnap_writer_close(w);
    sx_arena_free(&a);
}

static bool is_dir(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* The documents' count of a store at path opened as a plog (-1: a's n). */
static int64_t n_of_a(const char *path)
{
    sx_plog *q = NULL;
    sx_err err = {0};
    assert_int_equal(sx_plog_open(path, 7, NULL, &q, &err), SX_OK);
    int64_t n = get_n(q, "a", NULL);
    sx_plog_close(q);
    return n;
}

/* Each step of a swap a crash can stop at, then sx_psnap_recover: a copy
 * cut short is deleted and the live store kept; a sealed copy replaces the
 * live store whether or not the first rename happened; a lone .old goes
 * back in place. Every case leaves pNNNN only. */
static void test_snapshot_recover(void **state)
{
    fixture *f = *state;
    sx_err err = {0};
    append_put(f->p, 1, "a", 1);
    append_put(f->p, 1, "a", 2);
    assert_int_equal(sx_plog_apply(f->p, 2, NULL, &err), SX_OK);
    char parts[PATH_MAX + 16], live[PATH_MAX + 32], snap[PATH_MAX + 40], old[PATH_MAX + 40];
    snprintf(parts, sizeof(parts), "%s/partitions", f->dir);
    snprintf(live, sizeof(live), "%s/p0007", parts);
    snprintf(snap, sizeof(snap), "%s.snap", live);
    snprintf(old, sizeof(old), "%s.old", live);
    assert_int_equal(mkdir(parts, 0755), 0);
    assert_int_equal(sx_psnap_recover(f->dir, &err), SX_OK); /* nothing to do */
    for (int c = 0; c < 4; c++) {
        /* The live store: a = 1 (one entry applied). */
        sx_plog *q = NULL;
        assert_int_equal(sx_plog_open(live, 7, NULL, &q, &err), SX_OK);
        if (sx_plog_leo(q) == 0) {
            append_put(q, 1, "a", 1);
            assert_int_equal(sx_plog_apply(q, 1, NULL, &err), SX_OK);
        }
        sx_plog_close(q);
        if (c == 0) { /* cut short: never sealed */
            sx_psnap_writer *w = NULL;
            assert_int_equal(sx_psnap_writer_open(snap, &w, &err), SX_OK);
            sx_psnap_writer_close(w);
        } else if (c == 3) { /* the first rename only, the copy gone */
            assert_int_equal(rename(live, old), 0);
        } else {
            assert_int_equal(copy_snapshot(f->p, snap, 0, NULL, NULL), 2);
            if (c == 2)
                assert_int_equal(rename(live, old), 0);
        }
        assert_int_equal(sx_psnap_recover(f->dir, &err), SX_OK);
        assert_true(is_dir(live));
        assert_false(is_dir(snap));
        assert_false(is_dir(old));
        assert_int_equal(n_of_a(live), c == 1 || c == 2 ? 2 : 1);
        if (c == 1 || c == 2)
            assert_int_equal(sx_store_destroy_files(live, &err), SX_OK); /* next case: fresh */
    }
}

int main(void)
{
    seed = sx_fx_seed();

    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_append_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_begin_epoch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_append_rejects, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncate_to_zero, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncate_below_applied_aborts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trim, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trim_killed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_install, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_recover, setup, teardown),
        cmocka_unit_test_setup_teardown(test_apply_one_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_apply_steps, setup, teardown),
        cmocka_unit_test_setup_teardown(test_apply_many, setup, teardown),
        cmocka_unit_test_setup_teardown(test_apply_corrupt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_docs_applied_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_threads, setup, teardown),
        cmocka_unit_test(test_common_prefix_cases),
        cmocka_unit_test(test_common_prefix_random),
        cmocka_unit_test_setup_teardown(test_plog_random_history, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
