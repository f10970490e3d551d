/* verify.h: `shardex verify`, and the recomputation from the log it rests on.
 *
 * Everything a cluster serves is derived from its log partitions, so verify
 * reads every log partition, recomputes what every replica's documents and
 * local indexes and every term partition must hold at the positions those
 * views say they are at, and compares with what is served. Three layers,
 * each usable alone:
 *
 *   replay   one log partition applied op by op in memory: the documents, the
 *            indexes active, and every index entry, at the current position.
 *            The rules are the apply path's (worker/plog.c, docs/indexes.md):
 *              put       replaces the document with that id; version = offset
 *              delete    removes it (a missing id: nothing)
 *              index_start {id, spec}: from this offset on the index is active,
 *                        holding the entries of every document alive (a second
 *                        start of an active id: nothing)
 *              index_drop id: the index is no longer active (inactive: nothing)
 *            An active index d holds, for every alive document and every
 *            distinct value from sx_ixkey_doc_values, the entry
 *            key = value key ++ enc(id) -> the document's version; a global
 *            index's entry belongs to term partition sx_ixkey_term_of.
 *   lists    entry lists and the merge that names missing, extra and
 *            wrong-version entries; the same for documents.
 *   run      the check against a cluster, through a call function (the real
 *            one is sx_rpc_invoke; tests pass a fake cluster): see sx_verify_run.
 *
 * Not here: retrying a check that failed (run it again), paging ScanDocs
 * (one answer per partition, within the client's message limit).
 * Single-threaded: one thread per run.
 */
#ifndef SX_VERIFY_H
#define SX_VERIFY_H

#include "cli.h"
#include "replay.h"
#include "status.h"

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* -------------------------------------------------------------------- run -- */

/* Calls `method` of `svc` at addr and waits, with sx_rpc_invoke's contract:
 * on SX_OK *resp is the unpacked response, which verify frees with
 * sx_rpc_free (protobuf-c's default allocator); on error err says why. */
typedef sx_status (*sx_verify_call_cb)(void *arg, const char *addr,
                                       const ProtobufCServiceDescriptor *svc, const char *method,
                                       const ProtobufCMessage *req, ProtobufCMessage **resp,
                                       sx_err *err);

typedef struct sx_verify_opts {
    const char *server;     /* where to get the cluster map (a worker, or the coordinator) */
    sx_verify_call_cb call; /* required */
    void *call_arg;
    size_t max_diffs;  /* differences kept for the report (all are counted); 0: all */
    uint32_t log_page; /* entries per ReadLog call; 0: 5000 */
} sx_verify_opts;

typedef struct sx_verify_result sx_verify_result;

/* Runs the check:
 *  1. The map from opts->server (WorkerAdmin.GetMap, or Coordinator.GetMap
 *     where that is not implemented). Then the served views, before any log
 *     is read so that the logs cover every position they name (entries at or
 *     below a commit never change): per log partition p, from EVERY replica
 *     in the map (its leader first, then map.partitions[p].replicas), the
 *     Index.Digest of each local index and WorkerAdmin.ScanDocs, each at that
 *     replica's own applied offset (ScanDocs takes the documents and the
 *     offset at one snapshot); per term partition t of each global index,
 *     from its owner at its epoch, Index.Digest with the watermarks wm_t[p].
 *  2. Each log partition read from its leader (ReadLog pages) up to the
 *     highest position needed and replayed once, stopping at each position a
 *     view names: a replica's local index and documents at its applied
 *     offset, a term partition at wm_t[p] (wm_t[p] = 0 is a difference: p has
 *     not shipped yet). The leader's log covers every position a follower can
 *     have applied (followers apply only committed entries), so a position
 *     past its end is itself a difference (SHORT-LOG). Digests and documents
 *     are compared.
 *  3. Each index view whose digest, count or activity differs is asked again
 *     with its entries; the logs are replayed again to the positions of that
 *     answer, and the sorted lists are merged into missing, extra and
 *     wrong-version entries.
 * A log partition whose leader's log starts above 1 (log retention) is not
 * replayed: it is read once from its start S and checked as sx_rlog says
 * (replay.h): documents against the retained log and the leader's copy,
 * index views recomputed from a replica's documents carried through the
 * log; ids whose state the retained log cannot give are left out of the
 * comparison and counted in the result (never a difference). A split
 * index's term partitions route by the map's split records, each placed
 * against the retained log by sx_rlog_split_applied; where that is not
 * determined, the (term partition, log partition) pair is left out and
 * counted (split_unknown). A salted index's term partitions route by each
 * salt's marker offset in p's log, which the base replica's salt rows give
 * (ScanDocs lists them at its snapshot) and the retained log continues
 * (sx_rlog_salts_at); the rows are checked against the log and the leader's
 * replica (SALT-ROW, DIVERGED). A replica that does not list them leaves the
 * pair out, counted (salt_unknown).
 * A view that cannot be asked (its worker down, no leader to read the log
 * from, a deadline) is a failed check, the others go on. Returns SX_OK with
 * *out (free with sx_verify_result_free) whenever the map was had, even if
 * checks failed; otherwise the map call's error. */
sx_status sx_verify_run(const sx_verify_opts *opts, sx_verify_result **out, sx_err *err);

/* Counts of a run. */
typedef struct sx_verify_summary {
    size_t checks;    /* views compared: documents and local per replica, global per term */
    size_t ok;        /* equal to the log */
    size_t different; /* with differences */
    size_t failed;    /* could not be compared (an unreachable node, no leader, ...) */
    uint64_t diffs;   /* differences, all kinds */
    uint64_t missing; /* MISSING entries and documents */
    uint64_t extra;   /* EXTRA */
    uint64_t wrong;   /* WRONG-VERSION and WRONG-CONTENT */
    uint64_t other;   /* not shipped, wrong activity, digests, bad or short logs, specs,
                         replicas diverged */
    /* trimmed logs: what was left out, never silently */
    size_t trimmed;        /* log partitions read from a trimmed start */
    uint64_t carried;      /* documents from before a log start, checked against the leader's */
    uint64_t undetermined; /* ids left out of index views: state at the view's position unknown */
    uint64_t excluded;     /* served index entries left out (of those ids, or of partitions the
                              retained log could not recompute at all) */
    size_t unrecomputed;   /* (index view, log partition) pairs left out whole */
    size_t split_unknown;  /* of those: a split index's term partitions whose split's place
                              against the log start is not determined */
    size_t salt_unknown;   /* of those: a salted index's term partitions whose replica did not
                              list its salt rows (a worker from before ScanDocs listed them) */
} sx_verify_summary;

void sx_verify_result_summary(const sx_verify_result *r, sx_verify_summary *s);

/* SX_EXIT_DIFFERENT when a difference was found, else SX_EXIT_UNAVAILABLE
 * when a check could not be run, else SX_EXIT_OK. */
int sx_verify_result_exit_code(const sx_verify_result *r);

/* The report: one line per check, each followed by its differences, then a
 * summary line. */
void sx_verify_result_print(const sx_verify_result *r, FILE *out);

/* The report as one JSON object, NUL-terminated; caller frees with free(). */
char *sx_verify_result_json(const sx_verify_result *r);

void sx_verify_result_free(sx_verify_result *r); /* accepts NULL */

/* ---------------------------------------------------------------- command -- */

/* `shardex verify [--json] [--max-diffs N] [--server HOST:PORT] [--timeout-ms MS]` */
int sx_cli_verify(const sx_cli *cli, int argc, char **argv);

#endif
