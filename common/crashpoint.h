/* crashpoint.h: named places where a test can make a process die, to stage
 * the crashes of REPLICATION.md's table (e.g. after a follower received
 * entries but before it made them durable).
 *
 *   SX_CRASH_POINT("follower-before-fsync");
 *
 * dies with _exit(86) when the environment variable SHARDEX_CRASH_POINT names
 * the point ("name" or "name:N" to die at the Nth time it is reached). Off
 * unless set: the check costs one branch on a cached flag.
 */
#ifndef SX_CRASHPOINT_H
#define SX_CRASHPOINT_H

#include <stdbool.h>

/* Exit status of a process stopped at a crash point. */
#define SX_CRASH_EXIT 86

extern bool sx__crash_points_on;
void sx__crash_point(const char *name);

#define SX_CRASH_POINT(name)                                                                 \
    do {                                                                                     \
        if (sx__crash_points_on)                                                             \
            sx__crash_point(name);                                                           \
    } while (0)

/* Reads SHARDEX_CRASH_POINT; call once at start (daemons do). */
void sx_crash_points_init(void);

#endif
