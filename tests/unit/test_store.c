/* test_store.c: unit tests for store.h against a real LevelDB on disk.
 *
 * Each test gets its own mkdtemp directory (removed by the teardown) and
 * asserts behaviour: open modes and their codes, get/put/delete, atomic and
 * durable batches, iterator bounds in both directions, snapshots, a shared
 * cache, destroy_files. Keys are plain byte strings; no key encoding here.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the four above, which it needs */

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fixture.h"
#include "harness.h"
#include "store.h"

typedef struct fixture {
    char dir[PATH_MAX];     /* the mkdtemp directory */
    char db[PATH_MAX + 8];  /* dir/db: the store (not created by the fixture) */
    char db2[PATH_MAX + 8]; /* dir/db2: a second store */
} fixture;

/* A byte-string literal with its length, 0x00 and 0xFF bytes included. */
typedef struct bytes {
    const char *p;
    size_t n;
} bytes;
/* BI for static initializers, B in expressions. */
/* clang-format off */
#define BI(lit) {(lit), sizeof(lit) - 1}
/* clang-format on */
#define B(lit) ((bytes)BI(lit))

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    if (!f)
        return -1;
    sx_h_tmpdir(f->dir, sizeof(f->dir), "store");
    snprintf(f->db, sizeof(f->db), "%s/db", f->dir);
    snprintf(f->db2, sizeof(f->db2), "%s/db2", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    sx_h_tmpdir_done(f->dir);
    free(f);
    return 0;
}

static bool path_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static void put(sx_store *s, bytes k, bytes v)
{
    sx_err err = {0};
    assert_int_equal(sx_store_put(s, k.p, k.n, v.p, v.n, SX_SYNC_DEFAULT, &err), SX_OK);
}

/* Asserts that k holds want at snap, or is missing when want.p is NULL. */
static void expect_get(sx_store *s, const sx_snapshot *snap, bytes k, bytes want)
{
    sx_buf val = {0};
    sx_buf_append(&val, "stale", 5);
    bool found = !want.p; /* the opposite of what we expect, to see it set */
    sx_err err = {0};
    assert_int_equal(sx_store_get(s, snap, k.p, k.n, &val, &found, &err), SX_OK);
    if (!want.p) {
        assert_false(found);
        assert_int_equal(val.len, 5); /* untouched when missing */
    } else {
        assert_true(found);
        assert_int_equal(val.len, want.n);
        if (want.n)
            assert_memory_equal(val.data, want.p, want.n);
    }
    sx_buf_free(&val);
}

static const bytes MISSING = {NULL, 0};

static void expect_key(const sx_iter *it, bytes want, size_t index)
{
    if (!sx_iter_valid(it))
        fail_msg("iterator ended before key %zu", index);
    size_t n;
    const void *k = sx_iter_key(it, &n);
    if (n != want.n || memcmp(k, want.p, n) != 0)
        fail_msg("key %zu differs (length %zu, want %zu)", index, n, want.n);
}

/* Walks it forward from where it is and asserts it yields exactly want. */
static void expect_forward(sx_iter *it, const bytes *want, size_t n)
{
    for (size_t i = 0; i < n; i++, sx_iter_next(it))
        expect_key(it, want[i], i);
    assert_false(sx_iter_valid(it));
    /* Past the end, prev does not step back into the bounds. */
    sx_iter_prev(it);
    assert_false(sx_iter_valid(it));
    sx_err err = {0};
    assert_int_equal(sx_iter_status(it, &err), SX_OK);
}

/* From seek_last, walks it backward and asserts it yields want reversed. */
static void expect_backward(sx_iter *it, const bytes *want, size_t n)
{
    sx_iter_seek_last(it);
    for (size_t i = n; i-- > 0; sx_iter_prev(it))
        expect_key(it, want[i], i);
    assert_false(sx_iter_valid(it));
    /* Exhausted stays exhausted, in either direction, until a seek. */
    sx_iter_prev(it);
    assert_false(sx_iter_valid(it));
    sx_iter_next(it);
    assert_false(sx_iter_valid(it));
}

#define N(a) (sizeof(a) / sizeof((a)[0]))

static void test_open_create_and_reopen(void **state)
{
    fixture *f = *state;
    sx_store *s = sx_fx_store_open(f->db, NULL);
    assert_true(path_exists(f->db));
    put(s, B("a"), B("1"));
    sx_store_close(s);

    sx_store_opts opts = {.no_create = true};
    s = sx_fx_store_open(f->db, &opts);
    expect_get(s, NULL, B("a"), B("1"));
    sx_store_close(s);
    sx_store_close(NULL);
}

static void test_open_no_create_missing(void **state)
{
    fixture *f = *state;
    sx_store_opts opts = {.no_create = true};
    sx_store *s = (sx_store *)&opts; /* must be reset to NULL */
    sx_err err = {0};
    assert_int_equal(sx_store_open(f->db, &opts, &s, &err), SX_NOT_FOUND);
    assert_null(s);
    assert_int_equal(err.code, SX_NOT_FOUND);
    assert_non_null(strstr(err.msg, f->db));
    /* LevelDB would leave a directory with LOCK and LOG behind; we do not. */
    assert_false(path_exists(f->db));
}

static void test_open_error_if_exists(void **state)
{
    fixture *f = *state;
    sx_store_opts opts = {.error_if_exists = true};
    sx_store *s = sx_fx_store_open(f->db, &opts); /* new: fine */
    put(s, B("k"), B("v"));
    sx_store_close(s);

    sx_err err = {0};
    s = NULL;
    assert_int_equal(sx_store_open(f->db, &opts, &s, &err), SX_ALREADY_EXISTS);
    assert_null(s);
    assert_int_equal(err.code, SX_ALREADY_EXISTS);
    s = sx_fx_store_open(f->db, NULL); /* and untouched */
    expect_get(s, NULL, B("k"), B("v"));
    sx_store_close(s);
}

static void test_open_errors_mapped(void **state)
{
    fixture *f = *state;
    sx_store *s = sx_fx_store_open(f->db, NULL);

    /* A second handle on an open store: LevelDB's lock, an I/O error. */
    sx_store *again = NULL;
    sx_err err = {0};
    assert_int_equal(sx_store_open(f->db, NULL, &again, &err), SX_INTERNAL);
    assert_null(again);
    char prefix[PATH_MAX + 32];
    snprintf(prefix, sizeof(prefix), "store: %s: ", f->db);
    assert_memory_equal(err.msg, prefix, strlen(prefix));
    sx_store_close(s);

    /* A CURRENT file LevelDB cannot parse is corruption. */
    char current[PATH_MAX + 16];
    snprintf(current, sizeof(current), "%s/CURRENT", f->db);
    FILE *fp = fopen(current, "w");
    assert_non_null(fp);
    fputs("garbage-without-newline", fp);
    assert_int_equal(fclose(fp), 0);
    sx_err_clear(&err);
    assert_int_equal(sx_store_open(f->db, NULL, &again, &err), SX_DATA_LOSS);
    assert_null(again);
    assert_memory_equal(err.msg, prefix, strlen(prefix));
}

static void test_get_put_delete(void **state)
{
    fixture *f = *state;
    sx_store *s = sx_fx_store_open(f->db, NULL);
    sx_err err = {0};

    expect_get(s, NULL, B("missing"), MISSING);
    put(s, B("k"), B("v1"));
    expect_get(s, NULL, B("k"), B("v1"));
    put(s, B("k"), B("value two"));
    expect_get(s, NULL, B("k"), B("value two"));

    /* Empty values and keys, zero and 0xFF bytes, are ordinary data. */
    put(s, B("empty"), B(""));
    expect_get(s, NULL, B("empty"), B(""));
    put(s, B(""), B("empty key"));
    expect_get(s, NULL, B(""), B("empty key"));
    put(s, B("a\0b"), B("\0\xff"));
    expect_get(s, NULL, B("a\0b"), B("\0\xff"));
    expect_get(s, NULL, B("a"), MISSING);

    assert_int_equal(sx_store_delete(s, "k", 1, SX_SYNC_YES, &err), SX_OK);
    expect_get(s, NULL, B("k"), MISSING);
    assert_int_equal(sx_store_delete(s, "k", 1, SX_SYNC_NO, &err), SX_OK); /* again: fine */
    assert_int_equal(sx_store_put(s, "s", 1, "y", 1, SX_SYNC_YES, &err), SX_OK);
    assert_int_equal(sx_store_put(s, "n", 1, "n", 1, SX_SYNC_NO, &err), SX_OK);
    sx_store_close(s);

    /* Every write reached the log: a reopen sees them. */
    sx_store_opts opts = {.sync = true, .no_create = true};
    s = sx_fx_store_open(f->db, &opts);
    expect_get(s, NULL, B("k"), MISSING);
    expect_get(s, NULL, B("empty"), B(""));
    expect_get(s, NULL, B("a\0b"), B("\0\xff"));
    expect_get(s, NULL, B("s"), B("y"));
    expect_get(s, NULL, B("n"), B("n"));
    put(s, B("policy"), B("synced")); /* SX_SYNC_DEFAULT under a sync policy */
    expect_get(s, NULL, B("policy"), B("synced"));
    sx_store_close(s);
}

/* The batch used by the batch tests: over a = old, d = dead, c = old. */
static sx_batch *make_batch(void)
{
    sx_batch *b = sx_batch_create();
    sx_batch_put(b, "a", 1, "new", 3);
    sx_batch_put(b, "b", 1, "1", 1);
    sx_batch_delete(b, "d", 1);
    sx_batch_put(b, "c", 1, "1", 1);
    sx_batch_delete(b, "c", 1); /* later operations win */
    sx_batch_put(b, "e", 1, "1", 1);
    assert_int_equal(sx_batch_count(b), 6);
    return b;
}

static void expect_before_batch(sx_store *s, const sx_snapshot *snap)
{
    expect_get(s, snap, B("a"), B("old"));
    expect_get(s, snap, B("b"), MISSING);
    expect_get(s, snap, B("c"), B("old"));
    expect_get(s, snap, B("d"), B("dead"));
    expect_get(s, snap, B("e"), MISSING);
}

static void expect_after_batch(sx_store *s, const sx_snapshot *snap)
{
    expect_get(s, snap, B("a"), B("new"));
    expect_get(s, snap, B("b"), B("1"));
    expect_get(s, snap, B("c"), MISSING);
    expect_get(s, snap, B("d"), MISSING);
    expect_get(s, snap, B("e"), B("1"));
}

static void test_batch_atomic(void **state)
{
    fixture *f = *state;
    sx_store *s = sx_fx_store_open(f->db, NULL);
    sx_err err = {0};
    put(s, B("a"), B("old"));
    put(s, B("c"), B("old"));
    put(s, B("d"), B("dead"));

    sx_batch *b = make_batch();
    const sx_snapshot *before = sx_store_snapshot(s);
    assert_int_equal(sx_store_write(s, b, SX_SYNC_YES, &err), SX_OK);
    const sx_snapshot *after = sx_store_snapshot(s);
    /* No view sees part of the batch: before is all old, after all new. */
    expect_before_batch(s, before);
    expect_after_batch(s, after);
    expect_after_batch(s, NULL);
    sx_store_release_snapshot(s, before);
    sx_store_release_snapshot(s, after);

    /* Writing leaves the batch as it was; clear empties it; an empty write is fine. */
    assert_int_equal(sx_batch_count(b), 6);
    sx_batch_clear(b);
    assert_int_equal(sx_batch_count(b), 0);
    assert_int_equal(sx_store_write(s, b, SX_SYNC_DEFAULT, &err), SX_OK);
    sx_batch_destroy(b);
    sx_batch_destroy(NULL);
    sx_store_close(s);

    s = sx_fx_store_open(f->db, NULL);
    expect_after_batch(s, NULL);
    sx_store_close(s);
}

/* A synced batch survives its writer dying without closing the store: the
 * child writes and _exits, skipping leveldb_close and every destructor. */
static void test_batch_survives_writer_death(void **state)
{
    fixture *f = *state;
    sx_store *s = sx_fx_store_open(f->db, NULL);
    put(s, B("a"), B("old"));
    put(s, B("c"), B("old"));
    put(s, B("d"), B("dead"));
    sx_store_close(s);

    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        sx_store *cs = NULL;
        if (sx_store_open(f->db, NULL, &cs, NULL) != SX_OK)
            _exit(2);
        sx_batch *b = make_batch();
        if (sx_store_write(cs, b, SX_SYNC_YES, NULL) != SX_OK)
            _exit(3);
        _exit(0);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);

    s = sx_fx_store_open(f->db, NULL);
    expect_after_batch(s, NULL);
    sx_store_close(s);
}

/* Keys in order, for the iteration tests. */
static const bytes RANGE_KEYS[] = {BI("a"), BI("b"), BI("b\0"), BI("ba"), BI("c"), BI("d")};

static sx_store *open_with(const char *path, const bytes *keys, size_t n)
{
    sx_store *s = sx_fx_store_open(path, NULL);
    for (size_t i = 0; i < n; i++)
        put(s, keys[i], B("v"));
    return s;
}

static void test_iter_range(void **state)
{
    fixture *f = *state;
    sx_store *s = open_with(f->db, RANGE_KEYS, N(RANGE_KEYS));

    /* The iterator copies its bounds: these die right after creation. */
    char *start = strdup("b"), *end = strdup("c");
    sx_iter *it = sx_store_iter_range(s, NULL, start, 1, end, 1);
    memset(start, 'z', 1);
    memset(end, 'a', 1);
    free(start);
    free(end);
    const bytes b_to_c[] = {B("b"), B("b\0"), B("ba")}; /* includes start, excludes end */
    expect_forward(it, b_to_c, N(b_to_c));
    sx_iter_next(it); /* no-op past the end */
    assert_false(sx_iter_valid(it));
    size_t len = 99;
    assert_null(sx_iter_key(it, &len));
    assert_int_equal(len, 0);
    assert_null(sx_iter_value(it, &len));

    expect_backward(it, b_to_c, N(b_to_c)); /* stops above "a" */

    /* Seeks stay within bounds. */
    sx_iter_seek(it, "a", 1); /* below start: start */
    expect_key(it, B("b"), 0);
    sx_iter_seek(it, "b\x01", 2);
    expect_key(it, B("ba"), 0);
    const void *v = sx_iter_value(it, &len);
    assert_int_equal(len, 1);
    assert_memory_equal(v, "v", 1);
    sx_iter_seek(it, "bb", 2); /* next key is "c", outside */
    assert_false(sx_iter_valid(it));
    sx_iter_seek(it, "c", 1);
    assert_false(sx_iter_valid(it));
    sx_iter_destroy(it);

    /* Unbounded above; seek_last is the last key of the store. */
    it = sx_store_iter_range(s, NULL, "c", 1, NULL, 0);
    const bytes c_on[] = {B("c"), B("d")};
    expect_forward(it, c_on, N(c_on));
    expect_backward(it, c_on, N(c_on));
    sx_iter_destroy(it);

    /* Unbounded below. */
    it = sx_store_iter_range(s, NULL, NULL, 0, "b", 1);
    const bytes below_b[] = {B("a")};
    expect_forward(it, below_b, N(below_b));
    expect_backward(it, below_b, N(below_b));
    sx_iter_destroy(it);

    /* An end past every key: seek_last falls back to the store's last key. */
    it = sx_store_iter_range(s, NULL, "b\0", 2, "zz", 2);
    const bytes b0_on[] = {B("b\0"), B("ba"), B("c"), B("d")};
    expect_forward(it, b0_on, N(b0_on));
    expect_backward(it, b0_on, N(b0_on));
    sx_iter_destroy(it);

    /* Empty ranges: [c, c), [x, "") and a start past every key. */
    it = sx_store_iter_range(s, NULL, "c", 1, "c", 1);
    expect_forward(it, NULL, 0);
    expect_backward(it, NULL, 0);
    sx_iter_destroy(it);
    it = sx_store_iter_range(s, NULL, "b", 1, "", 0);
    expect_forward(it, NULL, 0);
    expect_backward(it, NULL, 0);
    sx_iter_destroy(it);
    it = sx_store_iter_range(s, NULL, "e", 1, NULL, 0);
    expect_forward(it, NULL, 0);
    expect_backward(it, NULL, 0);
    sx_iter_destroy(it);

    /* Everything. */
    it = sx_store_iter_range(s, NULL, NULL, 0, NULL, 0);
    expect_forward(it, RANGE_KEYS, N(RANGE_KEYS));
    expect_backward(it, RANGE_KEYS, N(RANGE_KEYS));
    sx_iter_destroy(it);
    sx_iter_destroy(NULL);
    sx_store_close(s);
}

static const bytes PREFIX_KEYS[] = {
    BI("A"), BI("a\xfe"),    BI("a\xff"), BI("a\xff\0"),  BI("a\xff\xff"),  BI("a\xff\xff\x01"),
    BI("b"), BI("\xfe\xff"), BI("\xff"),  BI("\xff\xff"), BI("\xff\xff\0"),
};

static void expect_prefix(sx_store *s, bytes prefix, const bytes *want, size_t n)
{
    sx_iter *it = sx_store_iter_prefix(s, NULL, prefix.p, prefix.n);
    expect_forward(it, want, n);
    expect_backward(it, want, n);
    if (n) { /* seek into the middle and below the prefix */
        sx_iter_seek(it, want[n - 1].p, want[n - 1].n);
        expect_key(it, want[n - 1], n - 1);
        sx_iter_seek(it, "", 0);
        expect_key(it, want[0], 0);
    }
    sx_iter_destroy(it);
}

static void test_iter_prefix(void **state)
{
    fixture *f = *state;
    sx_store *s = open_with(f->db, PREFIX_KEYS, N(PREFIX_KEYS));

    const bytes a[] = {B("a\xfe"), B("a\xff"), B("a\xff\0"), B("a\xff\xff"), B("a\xff\xff\x01")};
    expect_prefix(s, B("a"), a, N(a)); /* excludes "A" below and "b" above */
    /* Prefixes ending in 0xFF: the bound is "b", found by dropping the 0xFFs. */
    expect_prefix(s, B("a\xff"), a + 1, N(a) - 1);
    expect_prefix(s, B("a\xff\xff"), a + 3, 2);
    /* All 0xFF: no upper bound, and backward stops at the prefix. */
    const bytes ff[] = {B("\xff"), B("\xff\xff"), B("\xff\xff\0")};
    expect_prefix(s, B("\xff"), ff, N(ff));
    expect_prefix(s, B("\xff\xff"), ff + 1, 2);
    expect_prefix(s, B("\xfe"), (const bytes[]){B("\xfe\xff")}, 1);
    expect_prefix(s, B("z"), NULL, 0);
    expect_prefix(s, B("a\xff\xff\x01\0"), NULL, 0);
    expect_prefix(s, B(""), PREFIX_KEYS, N(PREFIX_KEYS));

    /* The prefix buffer may go away. */
    char *p = strdup("a\xff");
    sx_iter *it = sx_store_iter_prefix(s, NULL, p, 2);
    free(p);
    expect_forward(it, a + 1, N(a) - 1);
    sx_iter_destroy(it);
    sx_store_close(s);
}

static void test_snapshots(void **state)
{
    fixture *f = *state;
    sx_store *s = sx_fx_store_open(f->db, NULL);
    put(s, B("k1"), B("v1"));
    put(s, B("k3"), B("v3"));

    const sx_snapshot *snap = sx_store_snapshot(s);
    assert_non_null(snap);
    sx_iter *latest_early = sx_store_iter_prefix(s, NULL, "k", 1); /* implicit view, now */
    put(s, B("k1"), B("v1b"));
    put(s, B("k2"), B("v2"));
    sx_err err = {0};
    assert_int_equal(sx_store_delete(s, "k3", 2, SX_SYNC_DEFAULT, &err), SX_OK);

    expect_get(s, snap, B("k1"), B("v1"));
    expect_get(s, snap, B("k2"), MISSING);
    expect_get(s, snap, B("k3"), B("v3"));
    expect_get(s, NULL, B("k1"), B("v1b"));
    expect_get(s, NULL, B("k2"), B("v2"));
    expect_get(s, NULL, B("k3"), MISSING);

    const bytes old[] = {B("k1"), B("k3")};
    sx_iter *at_snap = sx_store_iter_range(s, snap, "k", 1, "l", 1);
    sx_iter *later = sx_store_iter_prefix(s, snap, "k", 1); /* created after the writes */
    put(s, B("k4"), B("v4"));
    expect_forward(at_snap, old, N(old));
    sx_iter_seek(at_snap, "k1", 2);
    size_t len;
    const void *v = sx_iter_value(at_snap, &len);
    assert_int_equal(len, 2);
    assert_memory_equal(v, "v1", 2);
    expect_backward(later, old, N(old));
    expect_forward(latest_early, old, N(old));

    sx_iter *latest = sx_store_iter_prefix(s, NULL, "k", 1);
    const bytes now4[] = {B("k1"), B("k2"), B("k4")};
    expect_forward(latest, now4, N(now4));

    sx_iter_destroy(at_snap);
    sx_iter_destroy(later);
    sx_iter_destroy(latest_early);
    sx_iter_destroy(latest);
    sx_store_release_snapshot(s, snap);
    sx_store_close(s);
}

#define MANY 3000

static void many_key(char *buf, size_t size, int i)
{
    snprintf(buf, size, "key%05d", i);
}

/* Two stores on one small cache, with small write buffers so that the data
 * spreads over several table files and reads go through the cache. */
static void test_shared_cache(void **state)
{
    fixture *f = *state;
    sx_store_cache *cache = sx_store_cache_create(256 << 10);
    sx_store_opts opts = {.cache = cache, .write_buffer_bytes = 64 << 10, .max_open_files = 20};
    const char *paths[2] = {f->db, f->db2};
    char value[100];
    char key[16];
    for (int round = 0; round < 2; round++) { /* write, then reopen and read */
        sx_store *s[2];
        for (int j = 0; j < 2; j++)
            s[j] = sx_fx_store_open(paths[j], &opts);
        if (round == 0) {
            for (int i = 0; i < MANY; i++) {
                many_key(key, sizeof(key), i);
                for (int j = 0; j < 2; j++) {
                    memset(value, 'a' + j, sizeof(value));
                    put(s[j], (bytes){key, strlen(key)}, (bytes){value, sizeof(value)});
                }
            }
            put(s[0], B("only-in-0"), B("x"));
        }
        for (int j = 0; j < 2; j++) {
            memset(value, 'a' + j, sizeof(value));
            for (int i = 0; i < MANY; i += 7) {
                many_key(key, sizeof(key), i);
                expect_get(s[j], NULL, (bytes){key, strlen(key)}, (bytes){value, sizeof(value)});
            }
            /* A range across table files: exactly the keys in it, in order. */
            sx_iter *it = sx_store_iter_range(s[j], NULL, "key01000", 8, "key02000", 8);
            int count = 0;
            for (; sx_iter_valid(it); sx_iter_next(it), count++) {
                many_key(key, sizeof(key), 1000 + count);
                size_t len;
                const void *k = sx_iter_key(it, &len);
                assert_int_equal(len, strlen(key));
                assert_memory_equal(k, key, len);
            }
            assert_int_equal(count, 1000);
            sx_err err = {0};
            assert_int_equal(sx_iter_status(it, &err), SX_OK);
            sx_iter_destroy(it);
        }
        expect_get(s[0], NULL, B("only-in-0"), B("x"));
        expect_get(s[1], NULL, B("only-in-0"), MISSING);
        for (int j = 0; j < 2; j++)
            sx_store_close(s[j]);
    }
    sx_store_cache_destroy(cache);
    sx_store_cache_destroy(NULL);
}

static void test_destroy_files(void **state)
{
    fixture *f = *state;
    sx_err err = {0};
    sx_store *s = sx_fx_store_open(f->db, NULL);
    put(s, B("k"), B("v"));

    /* Not while open: LevelDB's lock refuses, and the data stays. */
    assert_int_equal(sx_store_destroy_files(f->db, &err), SX_INTERNAL);
    expect_get(s, NULL, B("k"), B("v"));
    sx_store_close(s);

    assert_int_equal(sx_store_destroy_files(f->db, &err), SX_OK);
    assert_false(path_exists(f->db));
    sx_store_opts opts = {.no_create = true};
    assert_int_equal(sx_store_open(f->db, &opts, &s, &err), SX_NOT_FOUND);
    /* Nothing there: nothing to do. */
    assert_int_equal(sx_store_destroy_files(f->db, &err), SX_OK);

    s = sx_fx_store_open(f->db, NULL); /* a fresh, empty store at the same path */
    expect_get(s, NULL, B("k"), MISSING);
    sx_store_close(s);
}

/* A byte flipped inside a table file's data is found when the block is
 * read (its CRC), by gets and iterators alike: an error, never other data. */
static void test_corrupt_table_block_is_data_loss(void **state)
{
    fixture *f = *state;
    sx_store *s = sx_fx_store_open(f->db, NULL);
    /* Values that do not compress, so the table holds their bytes as given. */
    char key[16], val[512];
    uint64_t x = 88172645463325252u;
    for (int i = 0; i < 200; i++) {
        for (size_t j = 0; j < sizeof(val); j++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            val[j] = (char)('a' + x % 26);
        }
        snprintf(key, sizeof(key), "k%04d", i);
        assert_int_equal(sx_store_put(s, key, strlen(key), val, sizeof(val), SX_SYNC_YES, NULL),
                         SX_OK);
    }
    sx_store_close(s);
    s = sx_fx_store_open(f->db, NULL); /* the log recovered into a table file */
    sx_store_close(s);

    char cmd[PATH_MAX + 64], table[PATH_MAX + 64];
    snprintf(cmd, sizeof(cmd), "ls %s/*.ldb", f->db);
    FILE *ls = popen(cmd, "r");
    assert_non_null(ls);
    assert_non_null(fgets(table, sizeof(table), ls));
    pclose(ls);
    table[strcspn(table, "\n")] = '\0';
    FILE *fp = fopen(table, "r+b");
    assert_non_null(fp);
    assert_int_equal(fseek(fp, 1000, SEEK_SET), 0); /* inside the first data block */
    int c = fgetc(fp);
    assert_int_equal(fseek(fp, 1000, SEEK_SET), 0);
    fputc(c ^ 0x01, fp);
    assert_int_equal(fclose(fp), 0);

    s = sx_fx_store_open(f->db, NULL);
    sx_err err = {0};
    sx_buf v = {0};
    bool found = false;
    assert_int_equal(sx_store_get(s, NULL, "k0001", 5, &v, &found, &err), SX_DATA_LOSS);
    assert_non_null(strstr(err.msg, "Corruption"));
    sx_iter *it = sx_store_iter_prefix(s, NULL, "k", 1);
    while (sx_iter_valid(it))
        sx_iter_next(it);
    assert_int_equal(sx_iter_status(it, &err), SX_DATA_LOSS);
    sx_iter_destroy(it);
    sx_buf_free(&v);
    sx_store_close(s);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_open_create_and_reopen),
        T(test_open_no_create_missing),
        T(test_open_error_if_exists),
        T(test_open_errors_mapped),
        T(test_get_put_delete),
        T(test_batch_atomic),
        T(test_batch_survives_writer_death),
        T(test_iter_range),
        T(test_iter_prefix),
        T(test_snapshots),
        T(test_shared_cache),
        T(test_destroy_files),
        T(test_corrupt_table_block_is_data_loss),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
