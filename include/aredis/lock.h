/* Distributed locks over Redis: a token in a key, released and extended
 * only by its holder, with waiters woken by a release notification.
 *
 *     aredis_lock *l = aredis_lock_new(c, "orders", &(aredis_lock_options){
 *                          .ttl_ms = 5000, .fence = 1}, NULL);
 *     aredis_lock_acquire(l, 2000, on_acquired, ud);   (wait up to 2 s)
 *
 *     static void on_acquired(aredis_lock *l, int status, void *ud)
 *     {
 *         if (status != 0) return;            (AREDIS_ETIMEDOUT, ...)
 *         use(aredis_lock_fence(l), aredis_lock_validity_ms(l));
 *         aredis_lock_release(l, NULL, NULL);
 *     }
 *
 * What it guarantees, and nothing more (docs/guide/locks.md):
 *  - at most one holder per Redis master while the key lives, against any
 *    number of clients, as long as no failover happens (replicated mode
 *    narrows that gap: an acquire succeeds only once a majority of the
 *    replicas acknowledged it);
 *  - release and extend act only if the key still holds this handle's
 *    random token, atomically (a Lua script);
 *  - the validity returned is the TTL minus the time the successful attempt
 *    took; the optional fencing token grows with every acquisition.
 * No Redis lock protects a resource from a holder paused past its TTL
 * (a GC pause, a stopped VM): only a resource that checks the fencing
 * token does.
 *
 * Keys: the lock lives at `{name}` (the name in a hash tag, so every key
 * of the lock is in one cluster slot), or at `name` itself when the name
 * already carries a hash tag. Beside it: `<key>:fence` (the fencing
 * counter, never expires), `<key>:queue` and `<key>:qtime` (fair mode's
 * waiters, expiring), and the channel `<key>:released` on which releases
 * are published. Every handle of one lock name must use the same mode.
 *
 * Completion: every call that returns 0 runs its callback exactly once,
 * later, from the loop; one that returns a negative code never runs it.
 * Status codes given to callbacks:
 *   0                  done
 *   AREDIS_EBUSY       acquire with timeout 0: someone else holds it
 *   AREDIS_ETIMEDOUT   acquire: still held by someone else at the deadline
 *   AREDIS_ELOCKLOST   release/extend: the key no longer holds our token
 *                      (it expired, and maybe someone else took it)
 *   AREDIS_EPOOL       replicated acquire: no exclusive connection became
 *                      free within the client's pool_wait_ms (it did not
 *                      say whether the lock is held)
 *   AREDIS_ENOREPLICAS replicated acquire: too few replicas acknowledged
 *                      in time; the key was deleted again
 *   AREDIS_EUNKNOWN    the connection was lost after the command was sent:
 *                      whether it ran is not known (after an acquire, the
 *                      key is deleted again if it turns out to be ours)
 *   AREDIS_ECANCELED   the handle or the client was freed meanwhile
 *   other codes        the command's own failure (errors.md)
 *
 * Lifetime: free every handle before its client. Freeing the client first
 * completes what the handle had in flight with AREDIS_ECANCELED; after
 * that only aredis_lock_free() may be called, from that callback or in the
 * same loop turn.
 *
 * Threads: a handle belongs to its client's loop thread, like the client.
 * Layering: written against the public client API only (client.h,
 * pubsub.h, script.h), so it behaves the same on every topology. */
#ifndef AREDIS_LOCK_H
#define AREDIS_LOCK_H

#include <stdint.h>

#include "client.h"
#include "export.h"
#include "sync.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct aredis_lock aredis_lock;

/** Completion of an acquire, release or extend, and the watchdog's report
 * of a lost lock. \param status 0 or a negative aredis_err (see above). */
typedef void (*aredis_lock_cb)(aredis_lock *l, int status, void *ud);

typedef struct aredis_lock_options {
    /** Time to live of the key in ms (default 10000). */
    int64_t ttl_ms;
    /** While waiting, retry at least this often (ms), in case no release
     * notification comes (the holder's key expired, or the notification
     * was lost with a connection). Default 100, or the acquire's timeout
     * when that is shorter; set explicitly longer than an acquire's
     * timeout, the acquire is refused (AREDIS_EINVAL). */
    int64_t poll_ms;
    /** FIFO tickets: waiters queue on the server, and the lock goes to the
     * oldest live waiter, so a releaser cannot take it back at once. */
    int fair;
    /** Fencing token: the acquire also increments `<key>:fence`, in the
     * same script; aredis_lock_fence() returns the value. */
    int fence;
    /** Replicated mode: the number of replicas behind the master. Each
     * acquire is followed by WAIT floor(replicas/2)+1 on the same
     * connection and fails (the key deleted again) when fewer replicas
     * acknowledged within wait_timeout_ms. 0: off. */
    int replicas;
    /** Replicated mode: WAIT's timeout in ms (default 100; must be below
     * ttl_ms). */
    int64_t wait_timeout_ms;
    /** Keep the lock while held: extend it to ttl_ms every ttl_ms / 3.
     * When the lock is lost (the key no longer ours, or no extension
     * succeeded before the validity ran out) on_lost runs once. Needs the
     * loop to run while the lock is held. */
    int watchdog;
    aredis_lock_cb on_lost;
    void *lost_ud;
} aredis_lock_options;

/** What the last acquire did (aredis_lock_stats()). */
typedef struct aredis_lock_stats {
    int attempts; /* attempts sent, the first one included */
    int wakeups;  /* retries caused by a release notification */
    int polls;    /* retries caused by the poll_ms fallback */
} aredis_lock_stats;

/** Ways to extend (aredis_lock_extend()). */
#define AREDIS_LOCK_EXTEND_ADD 0     /* TTL left + ms */
#define AREDIS_LOCK_EXTEND_REPLACE 1 /* TTL = ms */

/** Create a handle on the lock `name` for client c. Nothing is sent.
 * \param o options (copied); NULL for the defaults.
 * \param st optional: why NULL was returned.
 * \return an owned handle for aredis_lock_free(), or NULL: AREDIS_EINVAL
 *         (empty name, bad option), AREDIS_ENOMEM. \since 0.1 */
AREDIS_API aredis_lock *aredis_lock_new(aredis_client *c, const char *name,
                                        const aredis_lock_options *o,
                                        aredis_status *st);

/** Release a held lock in the background (fire and forget), stop the
 * watchdog, and free. A pending acquire completes with AREDIS_ECANCELED;
 * callbacks still to run must not call anything on the handle. NULL is a
 * no-op. \since 0.1 */
AREDIS_API void aredis_lock_free(aredis_lock *l);

/** Acquire: SET NX PX with a new random token (or the acquire script in
 * fair or fencing mode), then, while someone else holds it, wait for a
 * release notification or poll_ms, and retry; one last attempt is made at
 * the deadline. Never blocks the loop.
 * \param timeout_ms 0: one attempt (AREDIS_EBUSY when held); > 0: give up
 *        after that long (AREDIS_ETIMEDOUT); < 0: no limit.
 * \return 0; AREDIS_EINVAL (poll_ms set longer than timeout_ms);
 *         AREDIS_ESTATE (held already, or an acquire is in progress; a
 *         lock whose validity ran out is not held any more);
 *         AREDIS_ENOMEM; the client's submit error. \since 0.1 */
AREDIS_API int aredis_lock_acquire(aredis_lock *l, int64_t timeout_ms,
                                   aredis_lock_cb cb, void *ud);

/** Release: delete the key if it still holds our token, and publish the
 * release to waiters. cb may be NULL. After status 0 or AREDIS_ELOCKLOST
 * the handle no longer holds the lock; after AREDIS_EUNKNOWN it may be
 * released again.
 * \return 0; AREDIS_ENOTHELD (this handle has not acquired the lock, or
 *         released it already); AREDIS_ESTATE (an acquire is in
 *         progress); AREDIS_ENOMEM; the client's submit error.
 *         \since 0.1 */
AREDIS_API int aredis_lock_release(aredis_lock *l, aredis_lock_cb cb, void *ud);

/** Extend a held lock, if the key still holds our token: by ms on top of
 * the TTL left (AREDIS_LOCK_EXTEND_ADD) or to ms exactly
 * (AREDIS_LOCK_EXTEND_REPLACE). The validity is updated on success.
 * \return as aredis_lock_release(), plus AREDIS_EINVAL for ms <= 0 or an
 *         unknown how. \since 0.1 */
AREDIS_API int aredis_lock_extend(aredis_lock *l, int64_t ms, int how,
                                  aredis_lock_cb cb, void *ud);

/** \return 1 while this handle believes it holds the lock (acquired, not
 * released, not reported lost, its validity not run out), else 0.
 * \since 0.1 */
AREDIS_API int aredis_lock_held(const aredis_lock *l);

/** \return the ms of validity left now: the TTL minus the time since the
 * successful attempt (or extension) was sent; <= 0 when not held.
 * \since 0.1 */
AREDIS_API int64_t aredis_lock_validity_ms(const aredis_lock *l);

/** \return the fencing token of the current (or last) acquisition, or 0
 * without the fence option. \since 0.1 */
AREDIS_API long long aredis_lock_fence(const aredis_lock *l);

/** \return the random token of the current (or last) acquisition
 * (NUL-terminated hex, "" before the first), valid as long as the handle.
 * \since 0.1 */
AREDIS_API const char *aredis_lock_token(const aredis_lock *l);

/** \return the key the lock lives at (NUL-terminated). \since 0.1 */
AREDIS_API const char *aredis_lock_key(const aredis_lock *l);

/** \return the client the handle belongs to. \since 0.1 */
AREDIS_API aredis_client *aredis_lock_client(const aredis_lock *l);

/** Counters of the last acquire (current one while it runs). \since 0.1 */
AREDIS_API void aredis_lock_get_stats(const aredis_lock *l,
                                      aredis_lock_stats *st);

/* ---- the blocking facade ------------------------------------------------
 *
 *     aredis_lock *l = aredis_sync_lock_new(s, "orders", NULL, NULL);
 *     if (aredis_sync_lock_acquire(l, 2000) == 0) {
 *         ...
 *         aredis_sync_lock_release(l);
 *     }
 *     aredis_lock_free(l);            (before aredis_sync_free(s))
 *
 * The calls return the status the callback would get. The facade's loop
 * runs only inside its calls, so a watchdog cannot keep such a lock. */

/** A handle on the facade's client. \return as aredis_lock_new().
 * \since 0.1 */
AREDIS_API aredis_lock *aredis_sync_lock_new(aredis_sync *s, const char *name,
                                             const aredis_lock_options *o,
                                             aredis_status *st);

/** Acquire, release, extend and wait for the outcome. Only for handles
 * made by aredis_sync_lock_new() (AREDIS_EINVAL otherwise).
 * \return 0 or a negative aredis_err, as the asynchronous calls' return
 *         value or callback status. \since 0.1 */
AREDIS_API int aredis_sync_lock_acquire(aredis_lock *l, int64_t timeout_ms);
AREDIS_API int aredis_sync_lock_release(aredis_lock *l);
AREDIS_API int aredis_sync_lock_extend(aredis_lock *l, int64_t ms, int how);

#ifdef __cplusplus
}
#endif

#endif /* AREDIS_LOCK_H */
