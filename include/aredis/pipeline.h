/* Pipelines and MULTI/EXEC transactions, with WATCH.
 *
 *     aredis_pipeline *p = aredis_pipeline_new(c, 1);     (1: MULTI ... EXEC)
 *     aredis_pipeline_command(p, "SET %s %s", "foo", "bar");
 *     aredis_pipeline_command(p, "INCR %s", "hits");
 *     aredis_pipeline_execute(p, on_done, ud);
 *
 *     static void on_done(aredis_pipeline *p, const aredis_reply *r, void *ud)
 *     {
 *         if (r->type == AREDIS_REPLY_ERROR)          (the whole batch failed)
 *             fprintf(stderr, "%s: %s\n", aredis_err_name(r->code), r->str);
 *         else                                        (one element per command)
 *             for (size_t i = 0; i < r->len; i++) use(&r->element[i]);
 *     }
 *
 * A pipeline buffers commands and sends them together. Its completion
 * callback runs exactly once per successful aredis_pipeline_execute(),
 * later, from the loop, with EITHER a reply of type AREDIS_REPLY_ARRAY
 * holding every command's reply in order (a server error for one command
 * stays in its slot as an AREDIS_REPLY_ERROR element with code
 * AREDIS_ESERVER) OR one AREDIS_REPLY_ERROR for the whole batch:
 *
 *   AREDIS_ESERVER     a transaction was refused: "EXECABORT: command 2
 *                      (SET) failed: ERR wrong number of arguments ..." names
 *                      the first command (counted from 0) the server refused
 *                      to queue; "MULTI failed: ..." when MULTI itself was.
 *   AREDIS_EWATCH      a watched key changed: EXEC returned null and the
 *                      transaction did not run.
 *   AREDIS_EUNKNOWN, AREDIS_ECLOSED, AREDIS_ETIMEDOUT, AREDIS_ECANCELED, ...
 *                      the client-side failure of a command (connection
 *                      lost, deadline, client freed: see errors.md). For a
 *                      plain pipeline the message names the first failed
 *                      command ("command 3 (GET): ..."); for a transaction
 *                      the code is EXEC's, so AREDIS_ECLOSED means the
 *                      transaction did not run and AREDIS_EUNKNOWN that it
 *                      may have.
 *   AREDIS_ENOMEM      out of memory after part of the batch was sent.
 *
 * Transactions go out as MULTI, the commands, EXEC, in one write, on the
 * client's shared connection (no other caller's command can come in
 * between: they are submitted together on the loop thread). Every part is
 * submitted with AREDIS_CMD_TOGETHER, so a connection lost half-way never
 * replays the rest of the block outside its MULTI, and a deadline never
 * takes one part out alone: the block is written whole or not at all.
 * Plain pipelines are not re-sent either, unless aredis_pipeline_opts.retry
 * allows it; their commands are independent, so one that times out before
 * it was written is never sent, whatever the retry policy.
 *
 * WATCH: aredis_pipeline_watch() borrows an exclusive connection from the
 * client's pool and sends WATCH on it. From then the pipeline is in
 * immediate mode: aredis_pipeline_immediate() sends a command at once on
 * that connection (to read what the transaction depends on), until
 * aredis_pipeline_multi() starts buffering; aredis_pipeline_execute() then
 * sends MULTI ... EXEC on the same connection, and the connection goes back
 * to the pool when the batch completes. aredis_pipeline_reset() and
 * aredis_pipeline_free() send UNWATCH and give it back early.
 *
 * Reuse: once its callback has started, a pipeline is empty again and may
 * queue and execute a new batch (from inside the callback too), as after
 * aredis_pipeline_reset().
 *
 * Lifetime: a pipeline is bound to its client: free every pipeline before
 * freeing the client (freeing the client first completes whatever the
 * pipeline had in flight with AREDIS_ECANCELED; after that only
 * aredis_pipeline_free() may be called on it, in the same loop turn).
 *
 * Threads: a pipeline belongs to its client's loop thread, like the
 * client. Re-entrancy: every callback may queue, execute, reset or free the
 * pipeline it is given.
 *
 * Layering: pipelines are written against the public client API only
 * (client.h), so they behave the same on every topology. */
#ifndef AREDIS_PIPELINE_H
#define AREDIS_PIPELINE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "client.h"
#include "export.h"
#include "reply.h"
#include "sync.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct aredis_pipeline aredis_pipeline;

/** A pipeline's completion (execute, watch, immediate commands).
 * \param p the pipeline (valid during the call) \param r the reply, never
 * NULL, borrowed until the callback returns (aredis_reply_dup() keeps it)
 * \param ud the ud given with the call that scheduled it. */
typedef void (*aredis_pipeline_cb)(aredis_pipeline *p, const aredis_reply *r,
                                   void *ud);

/** aredis_pipeline_opts.retry: never re-send after a lost connection (the
 * default). */
#define AREDIS_PIPELINE_RETRY_NONE 0
/** Plain pipelines: the client's ordinary rules (a command not yet written
 * is sent on the next connection; a written one only when read-only and
 * the client has retry_read_only). */
#define AREDIS_PIPELINE_RETRY_UNSENT 1
/** Plain pipelines: every command is idempotent (AREDIS_CMD_IDEMPOTENT)
 * and may be sent again even when it was written. */
#define AREDIS_PIPELINE_RETRY_ALL 2

/** Options of a pipeline, applied to every command it sends. */
typedef struct aredis_pipeline_opts {
    /** Per-command deadline in ms, as aredis_cmd_opts.timeout_ms (0: the
     * client's command_timeout_ms, < 0: none). Not applied on a WATCH
     * connection, which has no per-command options (the client's default
     * applies there). */
    int64_t timeout_ms;
    /** One of AREDIS_PIPELINE_RETRY_*. Transactions are never re-sent and
     * refuse any other value. */
    int retry;
} aredis_pipeline_opts;

/** Create an empty pipeline.
 * \param c the client (borrowed; must outlive the pipeline).
 * \param transaction 1: execute wraps the batch in MULTI ... EXEC; 0: a
 *        plain pipeline (aredis_pipeline_multi() or a WATCH still make one
 *        execute a transaction).
 * \return an owned pipeline for aredis_pipeline_free(), or NULL when out
 *         of memory or c is NULL. \since 0.1 */
AREDIS_API aredis_pipeline *aredis_pipeline_new(aredis_client *c,
                                                int transaction);

/** Set the options (copied) for the batches executed from now on.
 * \return 0; AREDIS_EINVAL for an unknown retry value, or a retry other
 *         than NONE on a transaction pipeline. \since 0.1 */
AREDIS_API int aredis_pipeline_set_opts(aredis_pipeline *p,
                                        const aredis_pipeline_opts *o);

/** Free a pipeline. NULL is a no-op; so is freeing twice.
 *  - Never executed, or completed: everything is released at once and no
 *    callback runs.
 *  - Watching: UNWATCH is sent and the connection goes back to the pool
 *    when it is answered.
 *  - With callbacks pending (an execute, a watch, immediate commands):
 *    each still runs exactly once, with its real outcome when its command
 *    was already sent and with AREDIS_ECANCELED when it was not (a batch
 *    still loading its scripts, a watch still waiting for a connection);
 *    inside them the pipeline may only be passed to
 *    aredis_pipeline_client(). The memory is released after the last one.
 * May be called from any of the pipeline's callbacks. A pipeline owned by
 * aredis_transaction() is freed by the helper: this is a no-op on it.
 * \since 0.1 */
AREDIS_API void aredis_pipeline_free(aredis_pipeline *p);

/** \return the client the pipeline was created on. \since 0.1 */
AREDIS_API aredis_client *aredis_pipeline_client(const aredis_pipeline *p);

/** \return the number of commands queued for the next execute.
 * \since 0.1 */
AREDIS_API size_t aredis_pipeline_size(const aredis_pipeline *p);

/** \return 1 while the pipeline holds a WATCH (immediate mode, and after
 * aredis_pipeline_multi() until the batch completes), else 0. \since 0.1 */
AREDIS_API int aredis_pipeline_watching(const aredis_pipeline *p);

/** Queue a command from a printf-like format (see aredis_write_fmt() in
 * resp.h). The arguments are encoded at once: they may be freed on
 * return.
 * \return 0; AREDIS_EFORMAT or AREDIS_EINVAL for a bad format or argument;
 *         AREDIS_ENOMEM; AREDIS_ESTATE while a batch or a watch is in
 *         flight, or in immediate mode (use aredis_pipeline_immediate(),
 *         or aredis_pipeline_multi() first). \since 0.1 */
AREDIS_API int aredis_pipeline_command(aredis_pipeline *p, const char *fmt,
                                       ...);

/** va_list form of aredis_pipeline_command(). \since 0.1 */
AREDIS_API int aredis_pipeline_vcommand(aredis_pipeline *p, const char *fmt,
                                        va_list ap);

/** Queue a command from an argument vector (binary safe; argvlen NULL
 * means strlen). Copied at once. Errors as aredis_pipeline_command().
 * \since 0.1 */
AREDIS_API int aredis_pipeline_commandv(aredis_pipeline *p, int argc,
                                        const char *const *argv,
                                        const size_t *argvlen);

/** Send the queued commands. Scripts queued with aredis_pipeline_script()
 * are loaded first (one SCRIPT LOAD per distinct script, on the connection
 * the batch will use, answered before the batch is sent).
 * \param cb the completion (may be NULL to ignore it); see the top of this
 *        file for what it receives. Never called inside this function.
 * \return 0 (cb will run exactly once); AREDIS_EINVAL for an empty plain
 *         pipeline (nothing to send; a transaction may be empty) or a
 *         command the client refuses (SELECT, HELLO, RESET, the
 *         (P|S)(UN)SUBSCRIBE family: see commands.md and pubsub.md);
 *         AREDIS_ENOTSUP, in a transaction without WATCH, for a blocking
 *         command (BLPOP, XREAD BLOCK, ...: the client would route it to
 *         another connection than its MULTI; WAIT, which would not wait
 *         inside MULTI), for MULTI, EXEC,
 *         DISCARD and WATCH (they would break the batch's framing)
 *         and for what the server refuses inside MULTI (SAVE, SHUTDOWN);
 *         AREDIS_ESTATE while a batch or a watch is in flight, or on a
 *         pipeline owned by aredis_transaction() (use
 *         aredis_transaction_commit()); AREDIS_ENOMEM; or the client's
 *         submit error (AREDIS_ESTATE once the client is being freed). On
 *         error nothing was sent and the queue is kept. \since 0.1 */
AREDIS_API int aredis_pipeline_execute(aredis_pipeline *p,
                                       aredis_pipeline_cb cb, void *ud);

/** Empty the queue and leave immediate mode: a held WATCH connection gets
 * UNWATCH and goes back to the pool (asynchronously; the pipeline can be
 * used again at once, and a new watch borrows a connection of its own).
 * Immediate commands still in flight complete normally.
 * \return 0; AREDIS_ESTATE while a batch or a watch is in flight (the
 *         batch resets the pipeline itself when it completes), or on a
 *         pipeline owned by aredis_transaction(). \since 0.1 */
AREDIS_API int aredis_pipeline_reset(aredis_pipeline *p);

/** WATCH keys on an exclusive connection and enter immediate mode.
 * The first call borrows the connection (aredis_client_acquire(); it may
 * wait up to the client's pool_wait_ms); a later one, in immediate mode,
 * watches more keys on the same connection.
 * \param cb runs exactly once, from the loop, with WATCH's reply (status
 *        OK), or an error: AREDIS_EPOOL when no connection became free,
 *        the connection's failure, or a server error. After an error the
 *        pipeline is reset (not watching, connection given back).
 * \param nkeys at least 1 \param keys the keys, C strings (copied).
 * \return 0; AREDIS_EINVAL (no keys, a NULL key); AREDIS_ENOMEM;
 *         AREDIS_ESTATE while a batch or a watch is in flight, after
 *         aredis_pipeline_multi(), or when commands are already queued
 *         (watch first, then queue); or the client's error. \since 0.1 */
AREDIS_API int aredis_pipeline_watch(aredis_pipeline *p, aredis_pipeline_cb cb,
                                     void *ud, int nkeys,
                                     const char *const *keys);

/** Immediate mode: send a command now on the WATCH connection, ahead of
 * the transaction (typically a read the transaction depends on).
 * \param cb gets its reply (may be NULL to ignore it); runs exactly once.
 * \return 0; AREDIS_ESTATE outside immediate mode (no WATCH yet, after
 *         aredis_pipeline_multi(), during a batch); format errors as
 *         aredis_pipeline_command(); AREDIS_ENOMEM. \since 0.1 */
AREDIS_API int aredis_pipeline_immediate(aredis_pipeline *p,
                                         aredis_pipeline_cb cb, void *ud,
                                         const char *fmt, ...);

/** va_list form of aredis_pipeline_immediate(). \since 0.1 */
AREDIS_API int aredis_pipeline_vimmediate(aredis_pipeline *p,
                                          aredis_pipeline_cb cb, void *ud,
                                          const char *fmt, va_list ap);

/** Argument-vector form of aredis_pipeline_immediate(). \since 0.1 */
AREDIS_API int aredis_pipeline_immediatev(aredis_pipeline *p,
                                          aredis_pipeline_cb cb, void *ud,
                                          int argc, const char *const *argv,
                                          const size_t *argvlen);

/** Start buffering the transaction: after a WATCH, leaves immediate mode;
 * on a fresh pipeline, makes the next execute a MULTI ... EXEC even if it
 * was created with transaction 0.
 * \return 0; AREDIS_ESTATE when called twice, while a batch or a watch is
 *         in flight, or when commands were queued before it without a
 *         WATCH. \since 0.1 */
AREDIS_API int aredis_pipeline_multi(aredis_pipeline *p);

/* ---- blocking forms ------------------------------------------------------
 * On the blocking facade (sync.h): p must have been created on
 * aredis_sync_client(s); each call waits on the facade's private loop. A
 * pipeline of another client gives AREDIS_EINVAL. */

/** aredis_pipeline_execute(), waited for.
 * \return an OWNED reply (aredis_reply_free()): what the completion
 *         callback would get (the ARRAY of replies, or the batch's error,
 *         see the top of this file), or an error reply with the code
 *         aredis_pipeline_execute() returned when nothing was sent. NULL
 *         only when out of memory. \since 0.1 */
AREDIS_API aredis_reply *aredis_sync_pipeline_execute(aredis_sync *s,
                                                      aredis_pipeline *p);

/** aredis_pipeline_watch(), waited for.
 * \return 0 once the keys are watched (the pipeline is in immediate
 *         mode); the error aredis_pipeline_watch() returned or its
 *         callback got (AREDIS_EPOOL when no pooled connection became
 *         free...). \since 0.1 */
AREDIS_API int aredis_sync_pipeline_watch(aredis_sync *s, aredis_pipeline *p,
                                          int nkeys, const char *const *keys);

/** aredis_pipeline_immediate(), waited for: a read on the WATCH
 * connection. \return an OWNED reply (an error reply with code
 * AREDIS_ESTATE outside immediate mode). \since 0.1 */
AREDIS_API aredis_reply *aredis_sync_pipeline_immediate(aredis_sync *s,
                                                        aredis_pipeline *p,
                                                        const char *fmt, ...);

/** Argument-vector form of aredis_sync_pipeline_immediate(). \since 0.1 */
AREDIS_API aredis_reply *aredis_sync_pipeline_immediatev(
    aredis_sync *s, aredis_pipeline *p, int argc, const char *const *argv,
    const size_t *argvlen);

#ifdef __cplusplus
}
#endif

#endif /* AREDIS_PIPELINE_H */
