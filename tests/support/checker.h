/* checker.h: what must hold after any mix of failures heals, checked against
 * real processes: every replica of a partition holds the same log up to the
 * commit offset (epochs included), and every replica's documents equal a
 * replay of its log up to its applied offset.
 */
#ifndef SX_TEST_CHECKER_H
#define SX_TEST_CHECKER_H

#include "cluster.h"

#include <stdbool.h>
#include <stddef.h>

/* Waits (up to timeout_ms) until every partition has a live leader whose ISR
 * holds all its replicas, each with the leader's log end and applied at the
 * leader's commit; then compares logs and documents of every replica. On
 * failure writes a reason into why and returns false. */
bool sx_check_replicas(sx_cluster *c, uint64_t timeout_ms, char *why, size_t cap);

/* Runs `shardex --server <a live worker> verify` (every index and document
 * recomputed from the logs, client/verify.c) and waits up to timeout_ms; true
 * when it exits 0. On failure writes a reason into why (and prints the
 * verify's last lines). */
bool sx_check_verify(sx_cluster *c, uint64_t timeout_ms, char *why, size_t cap);

/* Starts a cluster (sx_cluster_start) and waits until it is settled as above,
 * so that writes find a whole ISR everywhere. Returns it (sx_cluster_stop and
 * free it), or NULL after printing why, with everything started stopped. */
sx_cluster *sx_cluster_start_settled(const sx_cluster_opts *opts, uint64_t timeout_ms);

#endif
