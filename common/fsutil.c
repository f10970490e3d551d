/* fsutil.c: atomic file writes, whole-file reads, mkdir -p. */
#include "fsutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static sx_status sys_err(sx_err *err, const char *what, const char *path)
{
    return sx_err_set(err, SX_INTERNAL, "%s %s: %s", what, path, strerror(errno));
}

sx_status sx_file_write_atomic(const char *path, const void *data, size_t len, sx_err *err)
{
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return sys_err(err, "create", tmp);
    const char *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t n = write(fd, p, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            sys_err(err, "write", tmp);
            goto fail;
        }
        p += n;
        left -= (size_t)n;
    }
    if (fsync(fd) != 0) {
        sys_err(err, "fsync", tmp);
        goto fail;
    }
    close(fd);
    fd = -1;
    if (rename(tmp, path) != 0) {
        sys_err(err, "rename", tmp);
        goto fail;
    }
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s", path);
    int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        int rc = fsync(dfd);
        close(dfd);
        if (rc != 0)
            return sys_err(err, "fsync directory of", path);
    }
    return SX_OK;
fail:
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    return err ? err->code : SX_INTERNAL;
}

sx_status sx_file_read(const char *path, size_t max, sx_buf *out, bool *found, sx_err *err)
{
    *found = false;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return SX_OK;
        return sys_err(err, "open", path);
    }
    sx_buf_reset(out);
    char chunk[4096];
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            close(fd);
            return sys_err(err, "read", path);
        }
        if (n == 0)
            break;
        if (out->len + (size_t)n > max) {
            close(fd);
            return sx_err_set(err, SX_OUT_OF_RANGE, "%s: larger than %zu bytes", path, max);
        }
        sx_buf_append(out, chunk, (size_t)n);
    }
    close(fd);
    *found = true;
    return SX_OK;
}

sx_status sx_mkdirs(const char *path, sx_err *err)
{
    char buf[4096];
    snprintf(buf, sizeof(buf), "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return sys_err(err, "mkdir", buf);
        *p = '/';
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST)
        return sys_err(err, "mkdir", buf);
    return SX_OK;
}

uint64_t sx_dir_bytes(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    uint64_t total = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        struct stat st;
        if (e->d_name[0] == '.' || fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
            continue; /* ".", "..", or removed meanwhile */
        if (S_ISREG(st.st_mode))
            total += (uint64_t)st.st_size;
    }
    closedir(d);
    return total;
}
