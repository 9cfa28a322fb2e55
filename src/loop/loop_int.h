/* Private to the loop layer (src/loop/) and its unit tests.
 *
 * loop.c (the aredis_loop wrapper) drives the built-in loop in builtin.c
 * through the functions below; the layers above see only loop/loop.h and
 * never include this file. Tests include it to pick a backend and to look
 * at a timer's deadline. */
#ifndef AREDIS_LOOP_LOOP_INT_H
#define AREDIS_LOOP_LOOP_INT_H

#include <stdint.h>

#include "loop/loop.h"

/* ---- the built-in loop (builtin.c) ------------------------------------ */

typedef struct aredis__builtin aredis__builtin;

/* The operations of the built-in loop; impl is an aredis__builtin. Its
 * `free` member destroys the loop and every source still started on it. */
extern const aredis_loop_ops aredis__builtin_ops;

/* Create a built-in loop: epoll and an eventfd on Linux, unless force_poll
 * is set, which selects poll(2) and a pipe (the portable path) so that both
 * can be tested on one machine. Returns 0 with *out set, AREDIS_ENOMEM, or
 * AREDIS_EIO when the system refuses a descriptor. */
int aredis__builtin_new(int force_poll, aredis__builtin **out);

/* Wait at most timeout_ms (-1: no limit) for the next event, shortened to
 * the earliest armed timer, then dispatch the ready watchers, the wake
 * callbacks and the expired timers. Returns 0, or AREDIS_EIO/AREDIS_ENOMEM
 * when the system's wait call fails (never for EINTR). */
int aredis__builtin_poll(aredis__builtin *b, int timeout_ms);

/* Set or clear (NULL) a watcher's own wait (loop.h,
 * aredis__loop_io_set_wait). */
void aredis__builtin_io_set_wait(aredis__builtin *b, void *handle,
                                 aredis__io_wait_cb cb);

/* Mark a wake source passive or not (loop.h,
 * aredis__loop_wake_set_passive). */
void aredis__builtin_wake_set_passive(aredis__builtin *b, void *handle, int on);

/* 1 when a watcher has a nonzero interest or a timer is armed. Wake
 * sources do not count: they cannot be told from "nothing left to do". */
int aredis__builtin_alive(const aredis__builtin *b);

/* 1 when a wake source is started: another thread may end a wait. */
int aredis__builtin_wakeable(const aredis__builtin *b);

/* "epoll" or "poll". */
const char *aredis__builtin_backend(const aredis__builtin *b);

/* The absolute deadline (aredis__now_ms() clock) of a built-in timer, or
 * -1 when it is disarmed. */
int64_t aredis__builtin_timer_deadline(const void *handle);

/* ---- wrapper helpers for tests (loop.c) ------------------------------- */

/* aredis_loop_new() with the backend chosen by the caller instead of the
 * AREDIS_LOOP_BACKEND environment variable. NULL when out of memory or
 * descriptors. */
aredis_loop *aredis__loop_new_builtin(int force_poll);

/* The built-in backend's name, or NULL for a custom loop. */
const char *aredis__loop_backend(const aredis_loop *l);

/* aredis__builtin_timer_deadline() through the wrapper; -1 on a custom
 * loop. */
int64_t aredis__loop_timer_deadline(const aredis_loop *l, const void *handle);

/* How many times the built-in loop has waited (one per iteration of
 * aredis_loop_run, one per aredis_loop_run_once); 0 on a custom loop.
 * Tests count iterations over an idle period: a loop that spins shows up
 * as thousands. */
uint64_t aredis__loop_iterations(const aredis_loop *l);

#endif /* AREDIS_LOOP_LOOP_INT_H */
