/* retain.c: see retain.h. */
#include "retain.h"

#include <string.h>

void sx_retain_reset(sx_retain *r)
{
    r->led_entries = r->led_bytes = 0;
    r->nmarks = 0;
    r->last_offset = r->last_wall_ms = 0;
}

void sx_retain_appended(sx_retain *r, uint64_t first, uint64_t n, uint64_t bytes, uint64_t wall_ms)
{
    r->led_entries += n;
    r->led_bytes += bytes;
    if (!r->ms || n == 0)
        return;
    r->last_offset = first + n - 1;
    r->last_wall_ms = wall_ms;
    uint64_t every = r->ms / (SX_RETAIN_MARKS / 2);
    if (every < 1000)
        every = 1000;
    if (r->nmarks && wall_ms < r->marks[r->nmarks - 1].wall_ms + every)
        return;
    if (r->nmarks == SX_RETAIN_MARKS) {
        memmove(r->marks, r->marks + 1, (SX_RETAIN_MARKS - 1) * sizeof(r->marks[0]));
        r->nmarks--;
    }
    r->marks[r->nmarks].offset = first;
    r->marks[r->nmarks].wall_ms = wall_ms;
    r->nmarks++;
}

uint64_t sx_retain_keep(const sx_retain *r, uint64_t leo, uint64_t wall_ms)
{
    uint64_t keep = r->entries;
    if (r->bytes) {
        uint64_t by_size = leo;
        if (r->led_entries && r->led_bytes) {
            uint64_t mean = r->led_bytes / r->led_entries;
            by_size = r->bytes / (mean ? mean : 1);
        }
        if (by_size > keep)
            keep = by_size;
    }
    if (r->ms) {
        /* The newest mark at least the duration old: what precedes it is
         * older than that and may go. */
        uint64_t by_time = leo;
        if (r->last_offset && r->last_wall_ms + r->ms <= wall_ms)
            by_time = leo - (r->last_offset < leo ? r->last_offset : leo);
        else
            for (uint32_t i = r->nmarks; i-- > 0;)
                if (r->marks[i].wall_ms + r->ms <= wall_ms) {
                    by_time = leo + 1 - r->marks[i].offset;
                    break;
                }
        if (by_time > keep)
            keep = by_time;
    }
    return keep < leo ? keep : leo;
}
