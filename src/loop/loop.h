/* Interface of the loop layer to the layers above (client, transport).
 *
 * Every watcher, timer and wake-up the library uses goes through these
 * wrappers, which dispatch to the loop's aredis_loop_ops. The loop also
 * owns a queue of deferred calls: work that must run "soon, from the loop,
 * never inside the API call that caused it" (completions of cancelled
 * commands, the final release of a freed client). */
#ifndef AREDIS_LOOP_LOOP_H
#define AREDIS_LOOP_LOOP_H

#include <stddef.h>
#include <stdint.h>

#include "aredis/loop.h"

/* A deferred call, embedded in its owner (no allocation per defer). */
typedef struct aredis__defer {
    struct aredis__defer *next, *prev; /* in the loop's queue while queued */
    aredis_event_cb cb;
    void *arg;
    int queued;
} aredis__defer;

int aredis__loop_io_start(aredis_loop *l, int fd, aredis_io_cb cb, void *arg,
                          void **handle);
int aredis__loop_io_update(aredis_loop *l, void *handle, int events);
void aredis__loop_io_stop(aredis_loop *l, void *handle);
int aredis__loop_timer_start(aredis_loop *l, aredis_event_cb cb, void *arg,
                             void **handle);
int aredis__loop_timer_set(aredis_loop *l, void *handle, int64_t ms);
void aredis__loop_timer_stop(aredis_loop *l, void *handle);
int aredis__loop_wake_start(aredis_loop *l, aredis_event_cb cb, void *arg,
                            void **handle);
void aredis__loop_wake(aredis_loop *l, void *handle);
void aredis__loop_wake_stop(aredis_loop *l, void *handle);

/* A watcher's own wait (built-in loop only): read from the descriptor,
 * waiting at most timeout_ms (-1: no limit) inside the call, and handle
 * what arrived as the io callback would. Returns 1 when something was
 * handled, 0 when the time ran out, < 0 when it cannot wait now (the loop
 * then polls as usual). */
typedef int (*aredis__io_wait_cb)(void *arg, int timeout_ms);

/* Give a watcher its own wait. When that watcher is the only one with an
 * interest, the interest is reading and nothing else can end a wait (no
 * wake source started), the built-in loop calls cb instead of its
 * backend's wait: a reply costs one read, not a poll and a read. NULL
 * removes it. AREDIS_ENOTSUP on a custom loop (nothing changes). */
int aredis__loop_io_set_wait(aredis_loop *l, void *handle,
                             aredis__io_wait_cb cb);

/* A passive wake source may wait for the end of a watcher's own wait (a
 * blocking read) before its callback runs: it does not keep the loop from
 * using one. For sources that are rarely or never signalled while the
 * loop waits (the thread-safe submission of a blocking handle's client).
 * No-op on a custom loop. */
void aredis__loop_wake_set_passive(aredis_loop *l, void *handle, int on);

/* Built-in loop: run the deferred calls before waiting rather than after
 * (a command is written before the loop looks at the sockets). For a loop
 * whose owner classifies a close found after a write by evidence (the
 * blocking facade): the look before the write is then a system call that
 * proves nothing more. No-op on a custom loop. */
void aredis__loop_set_write_first(aredis_loop *l, int on);

/* Spare objects an idle connection or client gave back, kept by the loop
 * for the next one that needs one: an idle connection holds no reader
 * and an idle client no command record, yet a program that runs one
 * command at a time allocates nothing per command. A few per kind at
 * most (the rest are freed by their owners). */
enum {
    AREDIS__SPARE_READER, /* an aredis_reader holding nothing */
    AREDIS__SPARE_CMD,    /* a client's command record */
    AREDIS__SPARE_KINDS
};

/* A spare object of this kind, now the caller's, or NULL. */
void *aredis__loop_spare_take(aredis_loop *l, int kind);

/* Keep obj for a later take: 0, or -1 when the cache is full (obj stays
 * the caller's). free_fn frees it if the loop is freed first. */
int aredis__loop_spare_put(aredis_loop *l, int kind, void *obj,
                           void (*free_fn)(void *));

/* The same for plain memory blocks (aredis__malloc'd, an idle
 * connection's output buffer, a client's encoding area): take gives the
 * largest block kept (its size in *cap), now the caller's, or NULL; put
 * keeps a block (0), or leaves it the caller's: 1 when it is larger than
 * the cache keeps (a few KB: its owner had a burst, and may keep it for
 * the next one), -1 when the cache is full (the owner frees it). */
void *aredis__loop_spare_block_take(aredis_loop *l, size_t *cap);
int aredis__loop_spare_block_put(aredis_loop *l, void *block, size_t cap);

/* Queue d to run cb(arg) on the loop thread soon. Idempotent while queued.
 * Loop thread only. */
void aredis__loop_defer(aredis_loop *l, aredis__defer *d, aredis_event_cb cb,
                        void *arg);
/* Remove d from the queue if it is queued. O(1). */
void aredis__loop_undefer(aredis_loop *l, aredis__defer *d);

/* 1 while the loop is dispatching (inside aredis_loop_run/run_once or a
 * drain): code running now is a callback of the loop, which may not run it
 * again (aredis_loop_run_once() answers AREDIS_EBUSY). */
int aredis__loop_busy(const aredis_loop *l);

/* Monotonic clock in milliseconds (CLOCK_MONOTONIC). */
int64_t aredis__now_ms(void);

#endif /* AREDIS_LOOP_LOOP_H */
