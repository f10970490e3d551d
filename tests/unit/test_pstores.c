/* test_pstores.c: unit tests for pstores.h, the record of created partition
 * stores, in a mkdtemp directory: recording survives a reopen, the
 * candidates of a start are the records and the store directories (never a
 * set-aside one), a malformed record stops the start, and a removed
 * partition (a dropped replica) is no longer recorded after a reopen. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the four above, which it needs */

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fsutil.h"
#include "harness.h"
#include "pstores.h"

static int setup(void **state)
{
    char *dir = calloc(1, PATH_MAX);
    if (!dir)
        return -1;
    sx_h_tmpdir(dir, PATH_MAX, "pstores");
    *state = dir;
    return 0;
}

static int teardown(void **state)
{
    sx_h_tmpdir_done(*state);
    free(*state);
    return 0;
}

static void mkdir_in(const char *dir, const char *name)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    sx_err err = {0};
    assert_int_equal(sx_mkdirs(path, &err), SX_OK);
}

static sx_pstores *open_ok(const char *dir)
{
    sx_pstores *s = NULL;
    sx_err err = {0};
    sx_status st = sx_pstores_open(dir, &s, &err);
    if (st != SX_OK)
        fail_msg("open %s: %s", dir, err.msg);
    return s;
}

static void test_record_survives_reopen(void **state)
{
    const char *dir = *state;
    sx_pstores *s = open_ok(dir); /* no file yet: nothing recorded */
    assert_false(sx_pstores_has(s, 0));
    sx_err err = {0};
    assert_int_equal(sx_pstores_add(s, 7, &err), SX_OK);
    assert_int_equal(sx_pstores_add(s, 0, &err), SX_OK);
    assert_int_equal(sx_pstores_add(s, 7, &err), SX_OK); /* again: nothing to do */
    assert_int_equal(sx_pstores_add(s, SX_PSTORES_MAX_PARTITION + 1, &err), SX_INVALID_ARGUMENT);
    sx_pstores_close(s);
    s = open_ok(dir);
    assert_true(sx_pstores_has(s, 0) && sx_pstores_has(s, 7));
    assert_false(sx_pstores_has(s, 1) || sx_pstores_has(s, SX_PSTORES_MAX_PARTITION + 9));
    sx_pstores_close(s);
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/partition-stores", dir);
    sx_buf b = {0};
    bool found = false;
    assert_int_equal(sx_file_read(path, 100, &b, &found, &err), SX_OK);
    assert_true(found);
    assert_int_equal(b.len, 4);
    assert_memory_equal(b.data, "0\n7\n", 4);
    sx_buf_free(&b);
}

/* A replica dropped from the map is forgotten before its store is deleted:
 * after a reopen it is neither recorded nor a candidate, so a store made for
 * it later is fresh, not a lost one; the others stay. */
static void test_remove(void **state)
{
    const char *dir = *state;
    sx_pstores *s = open_ok(dir);
    sx_err err = {0};
    assert_int_equal(sx_pstores_add(s, 3, &err), SX_OK);
    assert_int_equal(sx_pstores_add(s, 5, &err), SX_OK);
    assert_int_equal(sx_pstores_remove(s, 3, &err), SX_OK);
    assert_int_equal(sx_pstores_remove(s, 3, &err), SX_OK); /* again: nothing to do */
    assert_int_equal(sx_pstores_remove(s, 9, &err), SX_OK); /* never recorded */
    assert_false(sx_pstores_has(s, 3));
    sx_pstores_close(s);
    s = open_ok(dir);
    assert_false(sx_pstores_has(s, 3));
    assert_true(sx_pstores_has(s, 5));
    uint32_t *cand = NULL;
    size_t n = 0;
    assert_int_equal(sx_pstores_candidates(s, &cand, &n, &err), SX_OK);
    assert_int_equal(n, 1);
    assert_int_equal(cand[0], 5);
    free(cand);
    assert_int_equal(sx_pstores_add(s, 3, &err), SX_OK); /* given back: recorded afresh */
    sx_pstores_close(s);
    s = open_ok(dir);
    assert_true(sx_pstores_has(s, 3) && sx_pstores_has(s, 5));
    sx_pstores_close(s);
}

static void test_candidates(void **state)
{
    const char *dir = *state;
    sx_pstores *s = open_ok(dir);
    uint32_t *c = NULL;
    size_t n = 9;
    sx_err err = {0};
    assert_int_equal(sx_pstores_candidates(s, &c, &n, &err), SX_OK); /* no partitions dir */
    assert_int_equal(n, 0);
    assert_null(c);
    mkdir_in(dir, "partitions/p0003");
    mkdir_in(dir, "partitions/p0001.corrupt-1234"); /* set aside: not a candidate */
    mkdir_in(dir, "partitions/p12x");
    mkdir_in(dir, "partitions/q0002");
    mkdir_in(dir, "partitions/p0010");
    assert_int_equal(sx_pstores_add(s, 5, &err), SX_OK); /* recorded, directory gone */
    assert_int_equal(sx_pstores_add(s, 3, &err), SX_OK);
    assert_int_equal(sx_pstores_candidates(s, &c, &n, &err), SX_OK);
    assert_int_equal(n, 3);
    assert_int_equal(c[0], 3);
    assert_int_equal(c[1], 5);
    assert_int_equal(c[2], 10);
    free(c);
    sx_pstores_close(s);
}

static void test_malformed_record_refused(void **state)
{
    const char *dir = *state;
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/partition-stores", dir);
    static const char *const bad[] = {"1\nx\n", "1\n2", "99999999\n", "\n", "-1\n"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        sx_err err = {0};
        assert_int_equal(sx_file_write_atomic(path, bad[i], strlen(bad[i]), &err), SX_OK);
        sx_pstores *s = NULL;
        assert_int_equal(sx_pstores_open(dir, &s, &err), SX_DATA_LOSS);
        assert_null(s);
        assert_non_null(strstr(err.msg, "partition-stores"));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_record_survives_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_candidates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remove, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_record_refused, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
