/* The transaction helper: WATCH, read, MULTI ... EXEC, retried while a
 * watched key changes under it.
 *
 *     static void got(aredis_pipeline *p, const aredis_reply *r, void *ud)
 *     {
 *         if (r->type == AREDIS_REPLY_ERROR) {
 *             aredis_transaction_abort(p, r->code, r->str);
 *             return;
 *         }
 *         long long v = r->type == AREDIS_REPLY_STRING ? atoll(r->str) : 0;
 *         aredis_pipeline_multi(p);
 *         aredis_pipeline_command(p, "SET %s %lld", "seq", v + 1);
 *         aredis_transaction_commit(p);
 *     }
 *     static void incr(aredis_pipeline *p, void *ud)   (the transaction body)
 *     {
 *         aredis_pipeline_immediate(p, got, ud, "GET %s", "seq");
 *     }
 *     const char *keys[] = {"seq"};
 *     aredis_transaction(c, NULL, incr, on_done, ud, 1, keys);
 *
 * (docs/guide/transactions.md has it as a complete program.)
 *
 * Each attempt takes a fresh pipeline state: the keys are watched on an
 * exclusive connection (see aredis_pipeline_watch()), then `fn` runs. It
 * may read in immediate mode (aredis_pipeline_immediate()), wait for other
 * things, and eventually, from any later callback, call
 * aredis_pipeline_multi(), queue commands and aredis_transaction_commit()
 * -- or give up with aredis_transaction_abort(). When EXEC finds that a
 * watched key changed, the helper waits delay_ms, watches again and calls
 * `fn` again, up to max_attempts attempts in all.
 *
 * `done` runs exactly once, from the loop: with EXEC's array of replies,
 * or with an error reply -- AREDIS_EWATCH when every attempt lost the race,
 * the code given to aredis_transaction_abort(), a failed WATCH (connection
 * trouble, AREDIS_EPOOL from the pool), or the batch errors of pipeline.h.
 * Only AREDIS_EWATCH is retried.
 *
 * Lifetime: the helper owns the pipeline it hands to `fn`; never free or
 * reset it. Free the client only once `done` has run: a client freed while
 * one of the transaction's commands is in flight completes it with
 * AREDIS_ECANCELED (a body that sees that error should abort), but one
 * freed while the body waits for something else, or during the pause
 * between attempts, leaves the helper holding a client that no longer
 * exists. Threads: the client's loop thread only. */
#ifndef AREDIS_TRANSACTION_H
#define AREDIS_TRANSACTION_H

#include <stdint.h>

#include "client.h"
#include "export.h"
#include "loop.h"
#include "pipeline.h"
#include "sync.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Options of aredis_transaction(); NULL or zeroed members for defaults. */
typedef struct aredis_transaction_opts {
    /** Attempts in all before giving up with AREDIS_EWATCH (0: 10). */
    int max_attempts;
    /** Wait between attempts, in ms (default 0: retry at once). */
    int64_t delay_ms;
    /** The loop the pause between attempts is timed on; NULL (the
     * default) for the client's own, aredis_client_loop(). */
    aredis_loop *loop;
} aredis_transaction_opts;

/** The transaction body, called once per attempt with the keys watched
 * and the pipeline in immediate mode. \param p the helper's pipeline,
 * valid until `done` runs \param ud aredis_transaction()'s ud. */
typedef void (*aredis_transaction_fn)(aredis_pipeline *p, void *ud);

/** Run `fn` as an optimistic transaction over the watched keys.
 * \param c the client \param o options (copied), or NULL
 * \param fn the body (required) \param done the completion (may be NULL)
 * \param ud passed to fn and done
 * \param nkeys at least 1 (with nothing watched there is nothing to retry:
 *        use a transaction pipeline) \param keys C strings, copied.
 * \return 0 (done will run exactly once; fn is never called inside this
 *         function); AREDIS_EINVAL (no fn, no keys, a negative option);
 *         AREDIS_ENOMEM; or the client's
 *         submit error. \since 0.1 */
AREDIS_API int aredis_transaction(aredis_client *c,
                                  const aredis_transaction_opts *o,
                                  aredis_transaction_fn fn,
                                  aredis_reply_cb done, void *ud, int nkeys,
                                  const char *const *keys);

/** Send this attempt's MULTI ... EXEC (what was queued after
 * aredis_pipeline_multi(); an empty transaction when nothing was). Call it
 * once per attempt, from fn or any later callback.
 * \return 0; AREDIS_EINVAL when p is not a helper's pipeline; AREDIS_ESTATE
 *         when this attempt already committed or aborted, or its WATCH is
 *         not in place; otherwise as aredis_pipeline_execute() (the
 *         attempt stays open: fix the cause or abort). \since 0.1 */
AREDIS_API int aredis_transaction_commit(aredis_pipeline *p);

/** Give up: UNWATCH, and `done` runs (from the loop, once UNWATCH is
 * answered) with an error reply of this code and message. When UNWATCH
 * cannot be sent at all (the client is being freed, out of memory), the
 * connection is given back as it is and `done` runs before this returns.
 * \param code a negative aredis_err, e.g. AREDIS_ECANCELED or the code of a
 *        read that failed \param msg copied; NULL for aredis_strerror(code).
 * \return 0; AREDIS_EINVAL (not a helper's pipeline, code >= 0);
 *         AREDIS_ESTATE when this attempt already committed or aborted.
 * \since 0.1 */
AREDIS_API int aredis_transaction_abort(aredis_pipeline *p, int code,
                                        const char *msg);

/** \return the attempt in progress, 1 for the first, or 0 when p is not a
 * helper's pipeline. \since 0.1 */
AREDIS_API int aredis_transaction_attempt(const aredis_pipeline *p);

/* ---- blocking form --------------------------------------------------------
 *
 *     static int incr(aredis_sync *s, aredis_pipeline *p, void *ud)
 *     {
 *         aredis_reply *r = aredis_sync_pipeline_immediate(s, p, "GET seq");
 *         if (r == NULL || r->type == AREDIS_REPLY_ERROR) {
 *             int code = r ? r->code : AREDIS_ENOMEM;
 *             aredis_reply_free(r);
 *             return code;                                 (give up)
 *         }
 *         long long v = r->type == AREDIS_REPLY_STRING ? atoll(r->str) : 0;
 *         aredis_reply_free(r);
 *         aredis_pipeline_multi(p);
 *         aredis_pipeline_command(p, "SET seq %lld", v + 1);
 *         return 0;                                        (commit)
 *     }
 *     aredis_reply *r = aredis_sync_transaction(s, NULL, incr, NULL, 1, keys);
 */

/** The body of aredis_sync_transaction(), called once per attempt with
 * the keys watched and p in immediate mode, outside the loop: it may make
 * blocking calls (aredis_sync_pipeline_immediate() to read on the WATCH
 * connection, any aredis_sync_* call but another transaction), then call
 * aredis_pipeline_multi() and queue the transaction's commands.
 * \return 0 to commit (MULTI, what was queued, EXEC); a negative
 *         aredis_err to give up: UNWATCH, and the transaction returns an
 *         error reply with that code. */
typedef int (*aredis_sync_transaction_fn)(aredis_sync *s, aredis_pipeline *p,
                                          void *ud);

/** aredis_transaction() on the blocking facade: the same attempts, retries
 * and pause, with a body that is called, and returns, like an ordinary
 * function.
 * \param o as for aredis_transaction(); its loop must be NULL (the
 *        facade's private loop times the pause).
 * \return an OWNED reply (aredis_reply_free()): EXEC's array, or an error
 *         reply -- what aredis_transaction()'s done callback would get (the
 *         body's code when it gave up, AREDIS_EWATCH when every attempt
 *         lost the race...), aredis_transaction()'s own error (AREDIS_EINVAL
 *         for a bad argument or a loop in o), or AREDIS_ESTATE when a
 *         transaction is already running on the handle (a body that starts
 *         another). NULL only when out of memory. \since 0.1 */
AREDIS_API aredis_reply *aredis_sync_transaction(
    aredis_sync *s, const aredis_transaction_opts *o,
    aredis_sync_transaction_fn fn, void *ud, int nkeys,
    const char *const *keys);

#ifdef __cplusplus
}
#endif

#endif /* AREDIS_TRANSACTION_H */
