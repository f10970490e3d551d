/* pstores.c: the record of created partition stores (see pstores.h): a
 * bitmap in memory, the whole file rewritten atomically on each addition
 * (a few per worker's lifetime). */
#include "pstores.h"

#include "fsutil.h"
#include "mem.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FILE_NAME "partition-stores"
/* Longest file read back: every partition, six bytes a line, with room. */
#define FILE_MAX ((size_t)(SX_PSTORES_MAX_PARTITION + 1) * 8)

struct sx_pstores {
    char *path;  /* data_dir/partition-stores */
    char *parts; /* data_dir/partitions */
    bool *rec;   /* [SX_PSTORES_MAX_PARTITION + 1] */
};

/* Parses a partition number: digits only, at most SX_PSTORES_MAX_PARTITION. */
static bool parse_partition(const char *s, size_t n, uint32_t *out)
{
    if (n == 0 || n > 5)
        return false;
    uint32_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (uint32_t)(s[i] - '0');
    }
    if (v > SX_PSTORES_MAX_PARTITION)
        return false;
    *out = v;
    return true;
}

static sx_status parse_file(sx_pstores *s, const sx_buf *b, sx_err *err)
{
    const char *d = (const char *)b->data;
    size_t i = 0, line = 1;
    while (i < b->len) {
        size_t j = i;
        while (j < b->len && d[j] != '\n')
            j++;
        uint32_t p = 0;
        if (j == b->len || !parse_partition(d + i, j - i, &p))
            return sx_err_set(err, SX_DATA_LOSS, "%s: line %zu is not a partition number", s->path,
                              line);
        s->rec[p] = true;
        i = j + 1;
        line++;
    }
    return SX_OK;
}

sx_status sx_pstores_open(const char *data_dir, sx_pstores **out, sx_err *err)
{
    *out = NULL;
    sx_pstores *s = sx_calloc(1, sizeof(*s));
    size_t n = strlen(data_dir) + sizeof(FILE_NAME) + 2;
    s->path = sx_malloc(n);
    snprintf(s->path, n, "%s/%s", data_dir, FILE_NAME);
    n = strlen(data_dir) + sizeof("/partitions");
    s->parts = sx_malloc(n);
    snprintf(s->parts, n, "%s/partitions", data_dir);
    s->rec = sx_calloc(SX_PSTORES_MAX_PARTITION + 1, sizeof(*s->rec));
    sx_buf b = {0};
    bool found = false;
    sx_status st = sx_file_read(s->path, FILE_MAX, &b, &found, err);
    if (st == SX_OK && found)
        st = parse_file(s, &b, err);
    sx_buf_free(&b);
    if (st != SX_OK) {
        sx_pstores_close(s);
        return st;
    }
    *out = s;
    return SX_OK;
}

void sx_pstores_close(sx_pstores *s)
{
    if (!s)
        return;
    free(s->rec);
    free(s->parts);
    free(s->path);
    free(s);
}

bool sx_pstores_has(const sx_pstores *s, uint32_t p)
{
    return p <= SX_PSTORES_MAX_PARTITION && s->rec[p];
}

/* Rewrites the file as rec, with p set to `want`; memory follows on success. */
static sx_status write_with(sx_pstores *s, uint32_t p, bool want, sx_err *err)
{
    sx_buf b = {0};
    char line[16];
    for (uint32_t q = 0; q <= SX_PSTORES_MAX_PARTITION; q++) {
        if (q == p ? !want : !s->rec[q])
            continue;
        int k = snprintf(line, sizeof(line), "%u\n", q);
        sx_buf_append(&b, line, (size_t)k);
    }
    sx_status st = sx_file_write_atomic(s->path, b.data, b.len, err);
    sx_buf_free(&b);
    if (st == SX_OK)
        s->rec[p] = want;
    return st;
}

sx_status sx_pstores_add(sx_pstores *s, uint32_t p, sx_err *err)
{
    if (p > SX_PSTORES_MAX_PARTITION)
        return sx_err_set(err, SX_INVALID_ARGUMENT, "partition %u is above %u", p,
                          SX_PSTORES_MAX_PARTITION);
    return s->rec[p] ? SX_OK : write_with(s, p, true, err);
}

sx_status sx_pstores_remove(sx_pstores *s, uint32_t p, sx_err *err)
{
    if (p > SX_PSTORES_MAX_PARTITION || !s->rec[p])
        return SX_OK;
    return write_with(s, p, false, err);
}

sx_status sx_pstores_candidates(const sx_pstores *s, uint32_t **out, size_t *n, sx_err *err)
{
    *out = NULL;
    *n = 0;
    bool *want = sx_memdup(s->rec, (SX_PSTORES_MAX_PARTITION + 1) * sizeof(*want));
    DIR *d = opendir(s->parts);
    if (!d && errno != ENOENT) {
        int e = errno;
        free(want);
        return sx_err_set(err, SX_INTERNAL, "cannot list %s: %s", s->parts, strerror(e));
    }
    for (struct dirent *de; d && (de = readdir(d)) != NULL;) {
        uint32_t p = 0;
        if (de->d_name[0] == 'p' && parse_partition(de->d_name + 1, strlen(de->d_name + 1), &p))
            want[p] = true;
    }
    if (d)
        closedir(d);
    size_t count = 0;
    for (uint32_t p = 0; p <= SX_PSTORES_MAX_PARTITION; p++)
        count += want[p];
    if (count > 0) {
        *out = sx_malloc(count * sizeof(**out));
        for (uint32_t p = 0; p <= SX_PSTORES_MAX_PARTITION; p++)
            if (want[p])
                (*out)[(*n)++] = p;
    }
    free(want);
    return SX_OK;
}
