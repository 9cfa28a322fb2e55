/* Event loops: the built-in one, and the seam that adapters implement.
 *
 * aredis does no I/O of its own accord: it asks a loop to watch sockets,
 * to fire a timer and to wake it from another thread. The built-in loop
 * (epoll on Linux, poll elsewhere) needs nothing else; the header-only
 * adapters in <aredis/adapters/...> let aredis run inside an application's
 * libuv, libevent or libev loop. Any other loop can be used by filling an
 * aredis_loop_ops table.
 *
 * Threads: a loop and everything bound to it belong to the thread that runs
 * it. Only the `wake` operation may be called from other threads. */
#ifndef AREDIS_LOOP_H
#define AREDIS_LOOP_H

#include <stdint.h>

#include "export.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct aredis_loop aredis_loop;

/** Interest and readiness flags for a file descriptor. */
#define AREDIS_EV_READ 1
#define AREDIS_EV_WRITE 2

/** Called by the loop when a watched descriptor is ready; `events` is a
 * mask of AREDIS_EV_READ / AREDIS_EV_WRITE. */
typedef void (*aredis_io_cb)(void *arg, int events);
/** Called by the loop when a timer expires, or when woken. */
typedef void (*aredis_event_cb)(void *arg);

/** What aredis needs from an event loop. `impl` is the adapter's own
 * pointer given to aredis_loop_new_custom(). Every operation is called on
 * the loop's thread except `wake`. Operations must be idempotent (setting
 * the interest a watcher already has is harmless) and must never invoke a
 * callback from inside the operation itself.
 *
 * Each start function stores the adapter's state for the new source in
 * *handle and returns 0, or a negative aredis_err (AREDIS_ENOMEM...).
 * After the matching stop, no callback runs for that source. */
typedef struct aredis_loop_ops {
    int (*io_start)(void *impl, int fd, aredis_io_cb cb, void *arg,
                    void **handle);
    /** Set the interest mask (0 = none, the watcher stays registered). */
    int (*io_update)(void *impl, void *handle, int events);
    void (*io_stop)(void *impl, void *handle);
    int (*timer_start)(void *impl, aredis_event_cb cb, void *arg,
                       void **handle);
    /** Arm the one-shot timer `ms` milliseconds from now, replacing any
     * earlier arming; ms < 0 disarms it. */
    int (*timer_set)(void *impl, void *handle, int64_t ms);
    void (*timer_stop)(void *impl, void *handle);
    int (*wake_start)(void *impl, aredis_event_cb cb, void *arg, void **handle);
    /** Thread-safe: make the wake callback run soon on the loop thread.
     * Several wakes may coalesce into one callback. */
    void (*wake)(void *impl, void *handle);
    void (*wake_stop)(void *impl, void *handle);
    /** Called once by aredis_loop_free(); may be NULL. */
    void (*free)(void *impl);
} aredis_loop_ops;

/** Create the built-in loop.
 * \return an owned loop for aredis_loop_free(), or NULL when out of memory
 *         or out of file descriptors. \since 0.1 */
AREDIS_API aredis_loop *aredis_loop_new(void);

/** Wrap another event loop.
 * \param ops the operations; copied. \param impl passed to every op.
 * \return an owned loop, or NULL when out of memory. aredis_loop_run() and
 *         friends return AREDIS_ENOTSUP on it: run the application's own
 *         loop instead. \since 0.1 */
AREDIS_API aredis_loop *aredis_loop_new_custom(const aredis_loop_ops *ops,
                                               void *impl);

/** Run the built-in loop until aredis_loop_stop() is called or nothing is
 * left to wait for (no watched socket with interest, no armed timer, no
 * pending completion).
 * \return 0, AREDIS_ENOTSUP for a custom loop, AREDIS_EBUSY when called
 *         from inside the loop's own callback, AREDIS_EINVAL for NULL.
 *         \since 0.1 */
AREDIS_API int aredis_loop_run(aredis_loop *loop);

/** Wait at most timeout_ms (-1: no limit, 0: poll) for events and
 * dispatch them once.
 * \return 1 when something is still being waited for, 0 when idle, or an
 *         error as aredis_loop_run(). \since 0.1 */
AREDIS_API int aredis_loop_run_once(aredis_loop *loop, int timeout_ms);

/** Make aredis_loop_run() return after the current iteration. Call it
 * from the loop's thread. \since 0.1 */
AREDIS_API void aredis_loop_stop(aredis_loop *loop);

/** Free a loop. Completions still pending on it (from freed clients) run
 * first, so nothing leaks. Free every client bound to it before. NULL is a
 * no-op. \since 0.1 */
AREDIS_API void aredis_loop_free(aredis_loop *loop);

/** A user pointer carried by the loop, with an optional destructor called
 * by aredis_loop_free(). \since 0.1 */
AREDIS_API void aredis_loop_set_data(aredis_loop *loop, void *data,
                                     void (*free_fn)(void *));
AREDIS_API void *aredis_loop_get_data(const aredis_loop *loop);

/** A one-shot timer for applications, on any loop (built-in or custom). */
typedef struct aredis_timer aredis_timer;

/** Create a stopped timer. \param cb runs on the loop thread when the
 * timer expires \return an owned timer for aredis_timer_free(), or NULL
 * when out of memory. \since 0.1 */
AREDIS_API aredis_timer *aredis_timer_new(aredis_loop *loop, aredis_event_cb cb,
                                          void *arg);

/** Fire once, ms milliseconds from now (0: on the next loop turn),
 * replacing an earlier start. \return 0 or a negative aredis_err.
 * \since 0.1 */
AREDIS_API int aredis_timer_start(aredis_timer *t, int64_t ms);

/** Cancel a started timer; its callback will not run. \since 0.1 */
AREDIS_API void aredis_timer_stop(aredis_timer *t);

/** Stop and free. May be called from the timer's own callback. NULL is a
 * no-op. \since 0.1 */
AREDIS_API void aredis_timer_free(aredis_timer *t);

#ifdef __cplusplus
}
#endif

#endif /* AREDIS_LOOP_H */
