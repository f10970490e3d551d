/* crashpoint.h: named places where a test can make a process die, to stage
 * the crashes of REPLICATION.md's table (e.g. after a follower received
 * entries but before it made them durable), or make a thread wait (delay
 * points, below).
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

#define SX_CRASH_POINT(name)                                                                       \
    do {                                                                                           \
        if (sx__crash_points_on)                                                                   \
            sx__crash_point(name);                                                                 \
    } while (0)

/* Reads SHARDEX_CRASH_POINT; call once at start (daemons do). */
void sx_crash_points_init(void);

/* Names the calling thread's role for the crash points it reaches until the
 * next call (NULL: none): with scope "leader", SHARDEX_CRASH_POINT=
 * "leader/plog-trim-batch" dies only where a leader reaches plog-trim-batch,
 * while "plog-trim-batch" still dies in any role. For places shared by roles
 * (the storage) that a test must crash in one of them. scope is borrowed
 * (a string literal). */
void sx_crash_scope(const char *scope);

/* Delay points: named places where a test can make a thread sleep, to hold
 * what it holds there for long (e.g. a partition's lock inside an index
 * backfill) without building a large data set.
 *
 *   SX_DELAY_POINT("backfill-scan");
 *
 * sleeps ms milliseconds each time it is reached when the environment
 * variable SHARDEX_DELAY_POINT is "name:ms". Off unless set: the check costs
 * one branch on a cached flag. */
extern bool sx__delay_points_on;
void sx__delay_point(const char *name);

#define SX_DELAY_POINT(name)                                                                       \
    do {                                                                                           \
        if (sx__delay_points_on)                                                                   \
            sx__delay_point(name);                                                                 \
    } while (0)

/* Reads SHARDEX_DELAY_POINT; call once at start (the worker does). */
void sx_delay_points_init(void);

#endif
