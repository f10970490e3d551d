/* fsutil.h: small durable file operations for metadata files (port files,
 * worker ids): write whole or not at all (REPLICATION.md rule 8: temp file,
 * fsync, rename, fsync of the directory). Not for bulk data: that is LevelDB's.
 */
#ifndef SX_FSUTIL_H
#define SX_FSUTIL_H

#include "mem.h"
#include "status.h"

#include <stdbool.h>
#include <stddef.h>

/* Replaces path with data atomically and durably. */
sx_status sx_file_write_atomic(const char *path, const void *data, size_t len, sx_err *err);

/* Reads a whole file (at most max bytes) into out; *found false if it does not exist. */
sx_status sx_file_read(const char *path, size_t max, sx_buf *out, bool *found, sx_err *err);

/* mkdir -p with mode 0755. */
sx_status sx_mkdirs(const char *path, sx_err *err);

/* The bytes of the regular files directly in dir (not below its
 * subdirectories), as stat(2) gives their sizes: for a LevelDB store, its
 * tables, log, manifest and small files. 0 when dir cannot be read. Files
 * may come and go while it runs (a compaction): a best-effort figure. */
uint64_t sx_dir_bytes(const char *dir);

#endif
