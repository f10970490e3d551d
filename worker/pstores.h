/* pstores.h: which partition stores this worker has created, kept durably in
 * DATA/partition-stores, so that a start can tell a store that was lost
 * (created once, now missing or corrupt) from one that was never made.
 *
 * Why (issue 11): a replica that lost the store of partition p holds none of
 * what it acknowledged there; it tells the coordinator when it registers,
 * which takes it out of p's ISR even as the last member, so that it never
 * leads with what is left. A missing directory alone says too little: a
 * worker may die between registering and creating the store of a partition
 * it was just given (a fresh partition starts with every replica in the ISR
 * and an empty log), and calling that "lost" would leave the partition with
 * nobody allowed to lead it. So:
 *
 *   recorded      the store was created; it may hold acknowledged entries.
 *                 Missing or corrupt now: lost.
 *   not recorded  no store was ever used: nothing was acknowledged from it.
 *
 * The replica set creates a store, records it (sx_pstores_add: temp file,
 * fsync, rename, fsync of the directory), and only then appends to it; a
 * crash between the two leaves a store that is not recorded, which the next
 * start finds, opens and records.
 *
 * File format: one partition number per line, decimal, ascending. Not a
 * protocol: only this module reads it.
 *
 * Threads: no lock inside; the replica set calls it from its creation and its
 * manager thread only.
 */
#ifndef SX_PSTORES_H
#define SX_PSTORES_H

#include "status.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Partitions above this are refused (the coordinator allows 4096). */
#define SX_PSTORES_MAX_PARTITION 65535u

typedef struct sx_pstores sx_pstores;

/* Reads data_dir/partition-stores; a missing file records nothing.
 * SX_DATA_LOSS naming the file when it is malformed (the worker cannot tell
 * what it lost: it must not start). Caller closes *out. */
sx_status sx_pstores_open(const char *data_dir, sx_pstores **out, sx_err *err);
void sx_pstores_close(sx_pstores *s); /* accepts NULL */

/* Whether partition p's store was recorded as created. */
bool sx_pstores_has(const sx_pstores *s, uint32_t p);

/* Records p durably; SX_OK at once when it is recorded already. An I/O error
 * leaves the record as it was. */
sx_status sx_pstores_add(sx_pstores *s, uint32_t p, sx_err *err);

/* Forgets p durably, before its store is deleted (a replica the map no
 * longer gives this worker): a crash between the two leaves a store that is
 * not recorded, which the next start opens and records again, never a
 * recorded store missing (lost). SX_OK when p is not recorded. */
sx_status sx_pstores_remove(sx_pstores *s, uint32_t p, sx_err *err);

/* The partitions a start must look at: every recorded one and every one with
 * a directory data_dir/partitions/pNNNN (stores set aside as pNNNN.<suffix>
 * are not), ascending, each once. *out (caller frees; NULL when *n is 0). */
sx_status sx_pstores_candidates(const sx_pstores *s, uint32_t **out, size_t *n, sx_err *err);

#endif
