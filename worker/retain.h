/* retain.h: how many of a log's newest entries --log-retention keeps at
 * least, beyond what the replicas still need (repcore.h's floor): the most of
 * a count (--log-retention-entries), a size (--log-retention SIZE, counted at
 * the mean size of the entries this leadership appended) and a duration
 * (--log-retention DURATION, from marks of when offsets were appended). Pure:
 * the leader's replica feeds it its appends and the wall clock.
 *
 * What it cannot tell keeps the whole log: a size before any entry was
 * appended in this leadership, a duration before any mark is that old (a new
 * leader does not know when its predecessors appended; it keeps their entries
 * until its own marks age).
 *
 * Marks: at most SX_RETAIN_MARKS, at most one per max(1 s, duration /
 * (SX_RETAIN_MARKS / 2)), so they span twice the duration; when full the
 * oldest goes (which only keeps more). Not thread-safe: the replica's mutex.
 */
#ifndef SX_RETAIN_H
#define SX_RETAIN_H

#include <stdint.h>

#define SX_RETAIN_MARKS 512

typedef struct sx_retain {
    uint64_t entries, bytes, ms; /* the minimums asked for; 0: none */
    uint64_t led_entries, led_bytes;
    struct {
        uint64_t offset, wall_ms;
    } marks[SX_RETAIN_MARKS];
    uint32_t nmarks;
    /* The last entry appended, and when: once that is the duration old,
     * every entry is (an idle log keeps none by time, whatever came after
     * the newest mark). */
    uint64_t last_offset, last_wall_ms;
} sx_retain;

/* A new leadership: what was appended before is not known. */
void sx_retain_reset(sx_retain *r);

/* n entries of bytes in all were appended from offset first at wall_ms. */
void sx_retain_appended(sx_retain *r, uint64_t first, uint64_t n, uint64_t bytes, uint64_t wall_ms);

/* Entries to keep at least, of a log ending at leo (may be leo: all). */
uint64_t sx_retain_keep(const sx_retain *r, uint64_t leo, uint64_t wall_ms);

#endif
