/* clustermap.h: who leads, follows and owns what, and the pure function that
 * decides it.
 *
 * The coordinator keeps the authoritative map; workers keep the copy they last
 * heard. This module is pure data and pure functions (no I/O, no clock, no
 * locks): the same input always gives the same output, so assignment is unit-
 * and property-tested without processes.
 *
 * Workers are referred to by their index in the coordinator's registry, which
 * only grows (a dead worker keeps its index; a restarted worker with the same
 * stable id gets the same index back). Ties are always broken by the lowest
 * worker index, then the lowest partition number.
 *
 * Log partition invariants (checked by sx_clustermap_check):
 *   - replicas are distinct workers, at most SX_MAX_REPLICAS;
 *   - isr is a subset of replicas; it is empty only for a partition never
 *     assigned (isr_version 0, no replicas either) or for one whose every
 *     in-sync replica lost its store (isr_version > 0, leader -1);
 *   - elr (eligible leaders) is a subset of replicas disjoint from isr;
 *   - leader is -1 or a member of isr;
 *   - epoch and isr_version only grow.
 * And, kept by the functions below (sx_clustermap_check has no min_isr):
 *   - elr is empty whenever isr has min_isr members or more.
 *
 * Eligible leaders (Kafka's ELR, KIP-966). Nothing commits while the isr has
 * fewer than min_isr members (REPLICATION.md rule 4), and every commit needs
 * every isr member. So members that leave an isr which is then below min_isr
 * hold every committed entry, and go on holding them until the isr is back at
 * min_isr: they are kept in elr (and among the replicas, dead or alive). A
 * replica that lost its store (sx_clustermap_store_lost) leaves isr and elr,
 * even as the isr's last member, so it never leads with what is left; it
 * returns to the isr only by catching up (a leader's isr change). When the
 * isr is empty a live elr member is elected (it becomes the isr); when elr is
 * empty too, no replica is known to hold the committed entries and the
 * partition stays without a leader until an operator decides.
 */
#ifndef SX_CLUSTERMAP_H
#define SX_CLUSTERMAP_H

#include "status.h"

#include <stdbool.h>
#include <stdint.h>

/* Largest replication factor supported. */
#define SX_MAX_REPLICAS 7

/* One log partition's assignment. */
typedef struct sx_log_part {
    uint64_t epoch;       /* raised whenever the leader changes (to -1 too) */
    uint64_t isr_version; /* raised whenever isr changes: compare-and-set for ISR requests */
    int32_t leader;       /* worker index, or -1: no live in-sync replica, unavailable */
    uint32_t nreplicas;
    int32_t replicas[SX_MAX_REPLICAS]; /* worker indices, distinct, in the order added */
    uint32_t nisr;
    int32_t isr[SX_MAX_REPLICAS]; /* in-sync replicas: a subset of replicas */
    uint32_t nelr;
    int32_t elr[SX_MAX_REPLICAS]; /* eligible leaders: replicas outside isr, see above */
    /* A replica move in flight ("Moves" below): move_to was added to take
     * move_from's place; move_from leaves once move_to is in the isr. Both are
     * replicas while moving; meaningless otherwise. */
    bool moving;
    int32_t move_from;
    int32_t move_to;
} sx_log_part;

/* One term partition of one global index (the coordinator lays the term
 * partitions of every global index out in one flat array). */
typedef struct sx_term_part {
    uint64_t epoch; /* raised whenever the owner changes (to -1 too) */
    int32_t owner;  /* worker index, or -1: unowned */
    bool retired;   /* split and swapped out (docs/indexes.md): never owned, owner -1 */
} sx_term_part;

typedef struct sx_assign_settings {
    uint32_t replication; /* R: a partition gets min(R, live workers) replicas */
    uint32_t min_isr;     /* writes need this many in-sync replicas (the elr rule) */
    /* Add-then-drop moves ("Moves" below). false: step 4 moves isr members
     * directly, as the first planner did (kept for its tests and the fuzzer;
     * the coordinator always moves). */
    bool moves;
    uint32_t max_moves; /* with moves: moves in flight at once, cluster-wide (0: none start) */
    /* Per worker [nworkers], or NULL for none. A draining worker (alive)
     * gets nothing new and, with moves, every replica, leadership and term
     * partition moves off it. A removed worker is gone for good: treated as
     * dead, and it leaves every replica set, isr and elr ("Removed" below). */
    const bool *draining;
    const bool *removed;
} sx_assign_settings;

/* What one sx_assign call changed (for logs and stickiness tests). */
typedef struct sx_assign_changes {
    uint32_t leader_changes;   /* partitions whose leader changed */
    uint32_t replicas_added;   /* (partition, worker) pairs added */
    uint32_t replicas_removed; /* (partition, worker) pairs removed */
    uint32_t isr_changes;      /* partitions whose isr changed */
    uint32_t owner_changes;    /* term partitions whose owner changed */
    uint32_t unavailable;      /* log partitions left without a leader */
    uint32_t moves_started;    /* add-then-drop moves begun (a replica added) */
    uint32_t moves_finished;   /* moves whose source replica was dropped */
    uint32_t moves_in_flight;  /* partitions moving after the call */
} sx_assign_changes;

/* Computes the next assignment from the previous one, in place.
 *
 * alive[w] says whether worker w (0 <= w < nworkers) holds a lease. Steps, in
 * this order, each deterministic:
 *  1. Deaths. A dead worker leaves the isr of every partition where a live isr
 *     member remains (the elr rule applies: sx_clustermap_track_elr); where
 *     none remains the isr is kept as it is (only those replicas may lead
 *     again: rule 5 of REPLICATION.md) and the leader becomes -1. Dead
 *     replicas outside the kept isr and the elr are removed.
 *  2. Leaders. A live leader in the isr stays. Otherwise the live isr member
 *     leading the fewest partitions becomes leader; when the isr is empty
 *     (every member lost its store), the live elr member leading the fewest,
 *     which becomes the isr and leaves the elr. Epoch rises on any change.
 *  3. Fill. Each partition gets min(R, live workers) live replicas: missing ones
 *     are the live workers with the fewest replicas. Added replicas are not in
 *     the isr (they must catch up first), except in a partition that never had
 *     an isr (nisr == 0): there the log is empty, so every replica is in sync
 *     and the first leader is chosen as in step 2.
 *  4. Balance replicas. While the most loaded live worker holds more than one
 *     replica more than the least loaded, move one replica from most to least
 *     loaded, never the leader's, never the last isr member and never an elr
 *     member; non-isr replicas move first.
 *  5. Balance leaders. While leader counts of live workers differ by more than
 *     one, hand leadership to a less-loaded live isr member (epoch rises). Only
 *     isr members may lead, so leaders balance as far as the isr allows.
 *  6. Term partitions. An owner that is dead or -1 is replaced by the live worker
 *     owning the fewest; then owners are balanced the same way (epoch rises on
 *     every change). With no live worker, owners become -1.
 * Anything not forced by these steps stays as it was (sticky).
 *
 * How the steps choose (where the rules above leave a choice, or cannot all
 * hold at once):
 *  - R is clamped to 1..SX_MAX_REPLICAS. A partition whose kept isr holds d
 *    dead workers gets at most SX_MAX_REPLICAS - d live replicas.
 *  - Step 3 also trims: a partition holding more than min(R, live workers) live
 *    replicas (R lowered, or a kept isr came back after step 3 had filled
 *    around it) drops the surplus, non-isr first, then from the most loaded
 *    worker, never the leader, and an elr member only when nothing else can
 *    go. Step 3 fills unavailable partitions too; their new replicas catch up
 *    once an isr (or elr) member is back.
 *  - Step 3 breaks ties among the least loaded by the fewest partitions shared
 *    with the partition's other replicas, then the lowest index, so that a
 *    worker's partitions have different partners and its death spreads
 *    leadership and new replicas over many workers.
 *  - Steps 4 and 5 first move what this call assigned (a replica just added, a
 *    leadership just handed over: moving it again costs nothing), then, in
 *    step 4, non-isr replicas before isr members. When no (most, least) pair
 *    has a direct move they may use a chain (a's replica of p1 to b, b's
 *    replica of p2 to c; likewise for leadership): a loses one, c gains one,
 *    b keeps its load. A chain of moves that each cost a change has at most
 *    two hops. A handover in step 5 can free a replica for step 4, so step 4
 *    runs again after a step 5 that moved anything.
 *  - Balance is thus "as far as the pins allow": step 4 never moves a leader's
 *    replica and only isr members lead. With R = 1 every replica is its
 *    leader's, so without moves (settings.moves false) a joining worker gets
 *    no log replica until a death frees one; with moves it gets its share by
 *    add-then-drop (below), which copies the log before dropping anything.
 *  - A death normally changes replicas only in the partitions the dead worker
 *    held; when the least loaded survivors already sit in all of those, step 4
 *    moves one other replica to restore balance.
 *  - A partition's epoch (isr_version) rises by exactly one in a call that
 *    leaves its leader (its isr, as a set) different from the input; a term
 *    partition's epoch likewise for its owner. changes holds the net
 *    differences from the input and may be NULL.
 *  - The input must pass sx_clustermap_check.
 *
 * Moves (settings.moves; the coordinator's planner). Step 4 then moves only
 * replicas that hold nothing committed (added in this call, or outside the
 * isr and the elr). An in-sync replica of partition p moves from worker a to
 * worker b in three map versions or more, never below min_isr:
 *  1. start: b is added as a replica outside the isr (moving, a -> b); p holds
 *     one replica more than its target (R + 1 at most: a partition may hold
 *     R + 1 replicas while it moves). Only while fewer than max_moves
 *     partitions are moving.
 *  2. b catches up and its leader adds it to the isr (sx_clustermap_change_isr,
 *     REPLICATION.md rule 3); the coordinator assigns again.
 *  3. finish, once b is in the isr (or a is outside isr and elr, so holds
 *     nothing that counts) and the isr without a still has min_isr members:
 *     if a leads, leadership goes to the isr member (not a) leading the
 *     fewest, epoch + 1; a is dropped from replicas and isr in the same call.
 *     Every committed entry is on every isr member (rule 4), b among them, so
 *     nothing committed is lost, and the isr stays at min_isr or above.
 * A move whose source or target dies, or is removed, is cancelled (what is
 * left is an ordinary replica set; steps 1 and 3 mend it). A move starts,
 * after steps 1-4, for (first) each in-sync replica on a draining worker, then
 * while the replica loads of the live workers that are not draining, counting
 * every move as finished, differ by two or more: from the most to the least
 * loaded, a replica that is not the leader's first, the lowest partition
 * first; the target is the least loaded worker outside p's replicas (ties as
 * step 3). Non-isr replicas of a draining worker move directly. Leaders
 * then balance as step 5 (a move that finished made its target eligible),
 * and leadership leaves a draining worker wherever a live isr member that is
 * not draining exists. Each move lowers the sum of squared planned loads, so
 * with nothing else changing the map settles, and a balanced map starts no
 * move (sticky).
 *
 * Removed workers (settings.removed) leave replicas, isr and elr first, in
 * every mode. The coordinator refuses to remove the only holder of committed
 * entries (sx_clustermap_sole_holder) unless forced; a partition whose every
 * holder was removed takes its remaining replicas as its isr (they may miss
 * committed entries: what --force loses) or, with none, starts over empty
 * (its new replicas are in sync from the start, as for a new partition). */
void sx_assign(const sx_assign_settings *s, const bool *alive, uint32_t nworkers,
               sx_log_part *parts, uint32_t nparts, sx_term_part *terms, uint32_t nterms,
               sx_assign_changes *changes);

/* A leader's request to change the isr of a partition, applied only if epoch
 * and isr_version match the current ones (compare-and-set) and the new isr is a
 * non-empty subset of replicas containing the leader. On success the isr is
 * replaced, its members leave the elr, and isr_version rises (the caller
 * then applies the rest of the elr rule: sx_clustermap_track_elr). SX_FAILED_PRECONDITION (stale
 * epoch or version) or SX_INVALID_ARGUMENT (bad set, including a worker listed twice), with a
 * message, otherwise. A partition without a leader refuses every change with
 * SX_FAILED_PRECONDITION: no leader can ask, and its isr is the one rule 5 elects from. */
sx_status sx_clustermap_change_isr(sx_log_part *part, uint64_t epoch, uint64_t isr_version,
                                   const int32_t *isr, uint32_t nisr, sx_err *err);

/* The elr rule, after part's isr changed from old_isr[0..old_nisr) to
 * part->isr (a leader's change, deaths, a re-registration): members now in
 * the isr leave elr; with at least min_isr members in the isr, elr empties
 * (commits may now happen without its members); otherwise every member of the
 * old isr that left it and is still a replica joins elr. Members of elr no
 * longer among the replicas leave it. Changes neither epoch nor isr_version.
 * A member that lost its store must not go through this: see below. */
void sx_clustermap_track_elr(sx_log_part *part, const int32_t *old_isr, uint32_t old_nisr,
                             uint32_t min_isr);

/* Worker w lost its store of this partition (it restarted and found it
 * corrupt or missing): it leaves isr and elr, even as the isr's last member
 * (isr_version rises when the isr changed), and stops leading (leader -1,
 * epoch rises). It stays a replica, to copy the log again. Returns whether w
 * was in isr or elr. */
bool sx_clustermap_store_lost(sx_log_part *part, int32_t w);

/* Checks the invariants above for every partition and that every worker index
 * is below nworkers; SX_INTERNAL with a message naming the partition if not. */
sx_status sx_clustermap_check(const sx_log_part *parts, uint32_t nparts, const sx_term_part *terms,
                              uint32_t nterms, uint32_t nworkers, sx_err *err);

/* True if w is in part's isr or elr and nobody else is: dropping w would
 * drop the last copy known to hold every committed entry. */
bool sx_clustermap_sole_holder(const sx_log_part *part, int32_t w);

/* True if w is among the n workers of set. */
bool sx_clustermap_has(const int32_t *set, uint32_t n, int32_t w);

#endif
