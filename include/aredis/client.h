/* The client: one API for commands, whatever the server topology.
 *
 *     aredis_loop *loop = aredis_loop_new();
 *     aredis_client *c = aredis_client_new(loop, &(aredis_options){
 *                            .url = "redis://127.0.0.1:6379/0"}, NULL);
 *     aredis_command(c, on_reply, ud, "SET %s %b", key, val, vlen);
 *     aredis_loop_run(loop);
 *
 * Completion rule: a submit call that returns 0 runs its callback exactly
 * once, later, from the loop, and always with a non-NULL reply. Failures
 * (timeout, lost connection, refused connect, client freed) arrive as a
 * reply of type AREDIS_REPLY_ERROR whose `code` says what happened; errors
 * sent by the server have code AREDIS_ESERVER and keep the server's text.
 * A submit call that returns a negative code never runs the callback.
 *
 * The reply passed to a callback is borrowed until the callback returns
 * (see reply.h); aredis_reply_dup() keeps a copy.
 *
 * Threads: a client belongs to the thread running its loop. Every function
 * here must be called on that thread.
 *
 * Re-entrancy: callbacks may submit commands and may free or close the
 * client; the free then takes effect when the callback returns.
 *
 * Ending: aredis_client_free() cancels what is in flight;
 * aredis_client_close() lets it complete first (see both). */
#ifndef AREDIS_CLIENT_H
#define AREDIS_CLIENT_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "export.h"
#include "loop.h"
#include "options.h"
#include "reply.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct aredis_client aredis_client;

/** A command's completion. \param c the client (valid during the call)
 * \param r the reply, never NULL, borrowed \param ud the submit's ud. */
typedef void (*aredis_reply_cb)(aredis_client *c, const aredis_reply *r,
                                void *ud);

/** Room for an error message returned by a constructor. */
typedef struct aredis_status {
    int code;
    char msg[192];
} aredis_status;

/** Create a client bound to a loop and start connecting in the background.
 * Commands may be submitted at once; they are sent when the connection is
 * ready, or fail with the connect error.
 * \param loop the loop the client runs on (borrowed; must outlive it).
 * \param opts options (copied, see options.h); NULL for 127.0.0.1:6379.
 * \param st optional: receives the error code and a message naming what is
 *           wrong (bad URL, bad option) when NULL is returned.
 * \return an owned client for aredis_client_free(), or NULL. \since 0.1 */
AREDIS_API aredis_client *aredis_client_new(aredis_loop *loop,
                                            const aredis_options *opts,
                                            aredis_status *st);

/** Free a client now. Every command still pending completes with an error
 * reply of code AREDIS_ECANCELED, from the loop (on its next turn, or in
 * aredis_loop_free()), even one whose reply was about to arrive; the
 * memory is released after those callbacks. May be called from inside a
 * callback, and after aredis_client_close() as long as the client has not
 * been released yet (see there). NULL is a no-op. To let the replies
 * arrive first, use aredis_client_close(). \since 0.1 */
AREDIS_API void aredis_client_free(aredis_client *c);

/** Close a client gracefully, as hiredis's redisAsyncDisconnect() does:
 * new submissions are refused from now on (aredis_command() and the other
 * submit calls, aredis_client_acquire(), commands on a borrowed connection,
 * the thread-safe calls: AREDIS_ESTATE), every command submitted before
 * completes by its usual rules -- with its real reply, or its deadline,
 * connection failure or reconnect limit -- and once the last of them has
 * completed the client frees itself as aredis_client_free() would, so a
 * loop with nothing else to do returns from aredis_loop_run().
 *
 * Which one: aredis_client_free() for "stop now, whatever is in flight"
 * (shutdown on an error, a deadline of your own); aredis_client_close() for
 * "finish what I asked, then go" (a program whose last command is a write
 * it must not lose). A closing client waits as long as its commands do:
 * with reconnect_max_attempts = -1 and no command deadline, a command waits
 * for as long as the server is down.
 *
 * Ownership: from this call the client belongs to itself; it is released
 * on a later loop turn, after the last completion callback has returned
 * (aredis_client_set_data()'s free function runs then, which is how a
 * program can learn it). Until that last callback has returned the client
 * may still be used for everything but submitting: aredis_client_free()
 * cancels what is left; a second aredis_client_close() is a no-op. After
 * it, the pointer must not be used.
 *
 * Still released with the client, not waited for: pub/sub objects and
 * their subscriptions (free them first), an exclusive connection still
 * borrowed with nothing in flight (give it back first), and
 * aredis_client_acquire() calls still waiting for a connection (they
 * complete with AREDIS_ECANCELED). Commands other threads handed to
 * aredis_command_ts() before the close are submitted and waited for.
 *
 * Threads: the loop thread only, like every call but the *_ts ones. May be
 * called from inside a callback (also from the completion of the last
 * pending command). No callback runs inside this call. NULL is a no-op.
 * \since 0.1 */
AREDIS_API void aredis_client_close(aredis_client *c);

/** Safe to send again if the connection drops before its reply: it is
 * re-sent on the new connection instead of failing "outcome unknown". */
#define AREDIS_CMD_IDEMPOTENT 1u
/** Never send this command on a later connection, even when it never
 * reached the server: if its connection is lost it fails with
 * AREDIS_ECLOSED (not sent) or AREDIS_EUNKNOWN (sent). It says nothing
 * about a deadline: one that passes before the command was written still
 * takes it out (see aredis_cmd_opts.timeout_ms). \since 0.1 */
#define AREDIS_CMD_NO_RESEND 2u
/** A part of a whole with the commands submitted next to it, like the
 * parts of MULTI ... EXEC: its deadline never takes it out unwritten (it
 * is written with the others, its late reply dropped), so the whole goes
 * to the server or none of it does. Implies AREDIS_CMD_NO_RESEND: a part
 * is never re-sent alone on a later connection either. \since 0.1 */
#define AREDIS_CMD_TOGETHER 4u

/** Per-command options for the *_opts submit forms. */
typedef struct aredis_cmd_opts {
    /** Deadline in ms: > 0 overrides the client's command_timeout_ms,
     * < 0 means none, 0 keeps the client's default. A command that times
     * out before any of its bytes were written is never sent (its message
     * ends in "(not sent)"), unless the commands around it depend on it
     * (AREDIS_CMD_TOGETHER, CLIENT REPLY, a borrowed connection); one that
     * times out after may still run (docs/guide/commands.md,
     * "Deadlines"). */
    int64_t timeout_ms;
    /** AREDIS_CMD_* flags. */
    unsigned flags;
} aredis_cmd_opts;

/** Submit a command from a printf-like format (see aredis_write_fmt() in
 * resp.h for the conversions). cb may be NULL to ignore the reply.
 * \return 0 (cb will run exactly once); AREDIS_EFORMAT or AREDIS_EINVAL for
 *         a bad format or argument; AREDIS_ENOMEM; AREDIS_ESTATE when the
 *         client is being freed or closed. \since 0.1 */
AREDIS_API int aredis_command(aredis_client *c, aredis_reply_cb cb, void *ud,
                              const char *fmt, ...);

/** va_list form of aredis_command(). \since 0.1 */
AREDIS_API int aredis_vcommand(aredis_client *c, aredis_reply_cb cb, void *ud,
                               const char *fmt, va_list ap);

/** Submit a command from an argument vector (binary safe; argvlen NULL
 * means strlen). Errors as aredis_command(). \since 0.1 */
AREDIS_API int aredis_commandv(aredis_client *c, aredis_reply_cb cb, void *ud,
                               int argc, const char *const *argv,
                               const size_t *argvlen);

/** aredis_command() with per-command options (may be NULL). \since 0.1 */
AREDIS_API int aredis_command_opts(aredis_client *c, const aredis_cmd_opts *o,
                                   aredis_reply_cb cb, void *ud,
                                   const char *fmt, ...);

/** va_list form of aredis_command_opts(). \since 0.1 */
AREDIS_API int aredis_vcommand_opts(aredis_client *c, const aredis_cmd_opts *o,
                                    aredis_reply_cb cb, void *ud,
                                    const char *fmt, va_list ap);

/** aredis_commandv() with per-command options (may be NULL). \since 0.1 */
AREDIS_API int aredis_commandv_opts(aredis_client *c, const aredis_cmd_opts *o,
                                    aredis_reply_cb cb, void *ud, int argc,
                                    const char *const *argv,
                                    const size_t *argvlen);

/** RESP3 push messages that are not command replies (client tracking
 * invalidations, ...) go to this handler; without one they are dropped.
 * The reply is borrowed for the call. \since 0.1 */
typedef void (*aredis_push_cb)(aredis_client *c, const aredis_reply *push,
                               void *ud);
AREDIS_API void aredis_client_set_push_handler(aredis_client *c,
                                               aredis_push_cb cb, void *ud);

/** Scratch memory for reply hooks: valid until the callback that receives
 * the hook's result returns. */
typedef struct aredis_reply_arena aredis_reply_arena;

/** \return n zeroed nodes from the arena, or NULL when out of memory. */
AREDIS_API aredis_reply *aredis_arena_nodes(aredis_reply_arena *a, size_t n);
/** \return a NUL-terminated copy of s[0..n) in the arena, or NULL. */
AREDIS_API char *aredis_arena_strndup(aredis_reply_arena *a, const char *s,
                                      size_t n);

/** A reply hook reshapes the reply of one command before its callback.
 * \param r the reply as received (borrowed) \param a scratch memory for
 * the new nodes \return the reply to deliver (r itself, or nodes from a);
 * NULL delivers r unchanged. Hooks run for server replies and server
 * errors, never for client-side failures. */
typedef const aredis_reply *(*aredis_reply_hook)(aredis_client *c,
                                                 const aredis_reply *r,
                                                 aredis_reply_arena *a,
                                                 void *ud);

/** Register (or, with hook NULL, remove) a hook for a command name,
 * matched case-insensitively against the first argument of later
 * submissions. A user hook replaces the built-in RESP2 normalisation of
 * that command.
 * \return 0, AREDIS_EINVAL for an empty name, AREDIS_ENOMEM. \since 0.1 */
AREDIS_API int aredis_client_set_reply_hook(aredis_client *c,
                                            const char *command,
                                            aredis_reply_hook hook, void *ud);

/** Connection state changes, for logging and health checks. */
typedef enum aredis_conn_event_type {
    AREDIS_CONN_CONNECTED = 1,    /* handshake done; commands flow */
    AREDIS_CONN_DISCONNECTED = 2, /* lost or failed; code/message say why */
    AREDIS_CONN_RECONNECTING = 3, /* next attempt in delay_ms */
} aredis_conn_event_type;

typedef struct aredis_conn_event {
    int type;         /* aredis_conn_event_type */
    int code;         /* DISCONNECTED: the aredis_err */
    const char *msg;  /* DISCONNECTED: why; borrowed for the call */
    int64_t delay_ms; /* RECONNECTING: wait before the attempt */
    int attempt;      /* RECONNECTING: 1 for the first retry of an outage */
    int exclusive;    /* the event is about an exclusive connection */
} aredis_conn_event;

typedef void (*aredis_conn_event_cb)(aredis_client *c,
                                     const aredis_conn_event *ev, void *ud);

/** Be told of connection state changes (NULL to stop). \since 0.1 */
AREDIS_API void aredis_client_set_event_handler(aredis_client *c,
                                                aredis_conn_event_cb cb,
                                                void *ud);

/** Thread-safe submit: the one entry point other threads may call. The
 * command is encoded at once (so its arguments may be freed on return) and
 * handed to the loop thread, which is woken; cb runs on the loop thread.
 * The client must stay alive until every such call has returned.
 * \return as aredis_command(). \since 0.1 */
AREDIS_API int aredis_command_ts(aredis_client *c, aredis_reply_cb cb, void *ud,
                                 const char *fmt, ...);
AREDIS_API int aredis_commandv_ts(aredis_client *c, aredis_reply_cb cb,
                                  void *ud, int argc, const char *const *argv,
                                  const size_t *argvlen);

/** An exclusive connection borrowed from the client's pool: commands sent
 * on it run on their own connection, in order, with no other caller's
 * commands in between (WATCH ... EXEC, long sequences). */
typedef struct aredis_exclusive aredis_exclusive;

/** Called when an exclusive connection is available (status 0, x set) or
 * could not be had within pool_wait_ms (AREDIS_EPOOL) or at all (the
 * connect error; x NULL). */
typedef void (*aredis_acquire_cb)(aredis_client *c, aredis_exclusive *x,
                                  int status, void *ud);

/** Borrow an exclusive connection. cb runs exactly once, from the loop.
 * \return 0, AREDIS_ENOMEM or AREDIS_ESTATE. \since 0.1 */
AREDIS_API int aredis_client_acquire(aredis_client *c, aredis_acquire_cb cb,
                                     void *ud);

/** Submit on a borrowed connection; same rules as aredis_command().
 * \since 0.1 */
AREDIS_API int aredis_exclusive_command(aredis_exclusive *x, aredis_reply_cb cb,
                                        void *ud, const char *fmt, ...);
AREDIS_API int aredis_exclusive_commandv(aredis_exclusive *x,
                                         aredis_reply_cb cb, void *ud, int argc,
                                         const char *const *argv,
                                         const size_t *argvlen);

/** Give the connection back. One with replies still unread is closed,
 * never reused (those commands complete with AREDIS_ECANCELED).
 * \since 0.1 */
AREDIS_API void aredis_exclusive_release(aredis_exclusive *x);

/* The getters below take a NULL client as one with nothing: 0 or NULL
 * (aredis_client_set_data() on NULL does nothing). */

/** \return the protocol in use: 2 or 3, or 0 before the first handshake.
 * \since 0.1 */
AREDIS_API int aredis_client_protocol(const aredis_client *c);

/** \return the loop the client runs on (borrowed). \since 0.1 */
AREDIS_API aredis_loop *aredis_client_loop(const aredis_client *c);

/** \return the number of commands submitted whose callback has not run
 * yet. \since 0.1 */
AREDIS_API size_t aredis_client_pending(const aredis_client *c);

/** A user pointer carried by the client, with an optional destructor run by
 * the final release. \since 0.1 */
AREDIS_API void aredis_client_set_data(aredis_client *c, void *data,
                                       void (*free_fn)(void *));
AREDIS_API void *aredis_client_get_data(const aredis_client *c);

#ifdef __cplusplus
}
#endif

#endif /* AREDIS_CLIENT_H */
