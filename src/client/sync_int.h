/* Private to the blocking facade (src/client/sync*.c) and to the blocking
 * forms built on it (the extras' *_sync.c, lock.c): the handle, its call
 * in progress, and the one function that runs a private loop while a call
 * waits.
 *
 * A blocking call is: check the handle may be used (aredis__sync_begin),
 * submit the asynchronous call with a callback that lands its outcome in
 * the handle, run the loop until that callback ran (aredis__sync_wait).
 * Everything a callback writes lives in the handle, never on the caller's
 * stack: if a wait ever had to be abandoned, a late callback still finds
 * valid memory (until aredis_sync_free(), whose aredis_client_free()
 * completes every command). */
#ifndef AREDIS_CLIENT_SYNC_INT_H
#define AREDIS_CLIENT_SYNC_INT_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "aredis/client.h"
#include "aredis/loop.h"
#include "aredis/pipeline.h"
#include "aredis/pubsub.h"
#include "aredis/sync.h"

/* The call in progress: one at a time per handle (sync.h). */
typedef struct aredis__sync_waiter {
    int done;
    int abandoned;       /* its wait gave up: drop what arrives */
    int status;          /* for calls that end with a code */
    aredis_reply *reply; /* for calls that end with a reply: an owned copy */
} aredis__sync_waiter;

/* One pipelined command (sync_more.c). */
typedef struct aredis__sync_slot aredis__sync_slot;

struct aredis_sync {
    aredis_loop *loop;
    aredis_client *client;
    aredis__sync_waiter w;
    /* A wait was abandoned (an internal error): its callback may still
     * land in w, so no further call may use the handle. */
    int broken;
    /* Commands appended with aredis_sync_append*(), in submission order:
     * a ring of n slots from head; slots are recycled through `spare`,
     * each keeping the block its reply was copied into. `lent` is the slot
     * whose reply aredis_sync_get_reply() returned last. */
    struct {
        aredis__sync_slot **ring;
        size_t cap, head, n;
        aredis__sync_slot *spare;
        aredis__sync_slot *lent;
    } pipe;
    /* The message aredis_sync_pubsub_get_message() returned last, and the
     * buffer its strings are copied into (reused). */
    struct {
        aredis_pubsub_message m;
        char *buf;
        size_t cap;
    } msg;
    /* aredis_sync_transaction() in progress: the helper's callbacks set
     * wake, with `due` (a body to run) or done (and its owned result). */
    struct {
        int active, wake, done;
        aredis_pipeline *due;
        aredis_reply *result;
    } tx;
};

/* Run the loop until done(arg) holds (checked before each turn), or until
 * deadline_ms (aredis__now_ms() clock; < 0: none).
 * Returns 0 once done(arg) holds; AREDIS_ETIMEDOUT at the deadline;
 * AREDIS_EBUSY when called from one of the loop's own callbacks (a
 * blocking call made from a handler that runs inside another one);
 * AREDIS_ESTATE when the loop has nothing left to wait for, so done(arg)
 * can never come to hold; or the loop's own error. */
int aredis__sync_wait(aredis_loop *loop, int (*done)(const void *arg),
                      const void *arg, int64_t deadline_ms);

/* The deadline for aredis__sync_wait() timeout_ms from now; -1 for a
 * negative timeout (none). */
int64_t aredis__sync_deadline(int64_t timeout_ms);

/* aredis__sync_wait() until *flag is non-zero. */
int aredis__sync_wait_flag(aredis_loop *loop, const int *flag,
                           int64_t deadline_ms);

/* Start a call: 0, with s->w cleared; AREDIS_EBUSY from a callback of the
 * handle's loop; AREDIS_ESTATE after an abandoned wait. */
int aredis__sync_begin(aredis_sync *s);

/* The message for an error of aredis__sync_begin() (NULL for another
 * code). */
const char *aredis__sync_why(int e);

/* Wait for s->w.done. 0, or the wait's error (s->w then abandoned and
 * the handle marked broken). */
int aredis__sync_wait_call(aredis_sync *s);

/* A callback's part: keep an owned copy of r in w (unless abandoned). */
void aredis__sync_land(aredis__sync_waiter *w, const aredis_reply *r);

/* aredis_reply_cb that lands in the waiter given as ud. */
void aredis__sync_on_reply(aredis_client *c, const aredis_reply *r, void *ud);

/* The end of a call that returns a reply: when e (what the submit
 * returned) is 0, wait and return the landed reply; else an error reply
 * for e. Owned; NULL only when out of memory. */
aredis_reply *aredis__sync_reply(aredis_sync *s, int e);

/* An owned error reply (code, a copy of msg; msg NULL for
 * aredis_strerror(code)), NULL only when out of memory. */
aredis_reply *aredis__sync_error(int code, const char *msg);

/* The facade's own submit: a format and va_list, or an argument vector,
 * with per-command options (o may be NULL), waited for. */
aredis_reply *aredis__sync_call(aredis_sync *s, const aredis_cmd_opts *o,
                                const char *fmt, va_list *ap, int argc,
                                const char *const *argv, const size_t *argvlen);

/* Release what sync_more.c keeps in the handle (after the loop is freed:
 * no callback can land any more). */
void aredis__sync_more_free(aredis_sync *s);

#endif /* AREDIS_CLIENT_SYNC_INT_H */
