/* The blocking facade: call a command, get its reply.
 *
 *     aredis_status st;
 *     aredis_sync *s = aredis_sync_connect(&(aredis_options){
 *                          .url = "redis://127.0.0.1:6379"}, &st);
 *     aredis_reply *r = aredis_sync_command(s, "INCR %s", "counter");
 *     printf("%lld\n", r->integer);
 *     aredis_reply_free(r);
 *     aredis_sync_free(s);
 *
 * It is the same client as the asynchronous API, driven by a private
 * built-in loop that runs only inside these calls. Failures come back as
 * error replies exactly as in the asynchronous API.
 *
 * Ownership of replies. A call that sends one command and waits for it
 * (aredis_sync_command*, and the blocking forms of the extras: pipeline
 * execute, transaction, script) returns an OWNED reply: free it with
 * aredis_reply_free(). aredis_sync_get_reply(), which reads the replies of
 * pipelined commands one by one, returns a BORROWED one (const): the handle
 * keeps it, valid until the next aredis_sync_get_reply() or
 * aredis_sync_free(), and reuses its storage for later replies; copy it
 * with aredis_reply_dup() to keep it longer.
 *
 * Pipelining, as hiredis's redisAppendCommand() and redisGetReply():
 *
 *     aredis_sync_append(s, "SET %s %s", "a", "1");
 *     aredis_sync_append(s, "INCR %s", "n");
 *     const aredis_reply *r1 = aredis_sync_get_reply(s);   (SET's reply)
 *     const aredis_reply *r2 = aredis_sync_get_reply(s);   (INCR's reply)
 *
 * Appended commands go out together when a call next waits (the first
 * aredis_sync_get_reply() or any other blocking call); each completes
 * exactly once and its reply is kept until it is read, in the order the
 * commands were appended. Commands a blocking call sends meanwhile are
 * queued behind them and do not disturb that order.
 *
 * Callbacks (pub/sub handlers, a stream consumer's on_entry) run inside
 * the blocking call that waits. They must not make blocking calls on the
 * same handle: those return AREDIS_EBUSY at once. They may use the
 * asynchronous API on aredis_sync_client().
 *
 * Threads: an aredis_sync may be used by one thread at a time. */
#ifndef AREDIS_SYNC_H
#define AREDIS_SYNC_H

#include <stdarg.h>
#include <stddef.h>

#include "client.h"
#include "export.h"
#include "options.h"
#include "reply.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct aredis_sync aredis_sync;

/** Connect and complete the handshake before returning.
 * \param opts as for aredis_client_new() (copied); NULL for 127.0.0.1:6379.
 * \param st optional: the error code and message when NULL is returned
 *           (bad URL, connection refused, wrong password, timeout...).
 * \return an owned handle for aredis_sync_free(), or NULL. \since 0.1 */
AREDIS_API aredis_sync *aredis_sync_connect(const aredis_options *opts,
                                            aredis_status *st);

/** Connect over TCP to host:port and complete the handshake:
 * aredis_sync_connect() with only the host and the port set.
 * \param host a name or an address literal; NULL for "127.0.0.1"
 * \param port 0 for 6379 \param st optional, as aredis_sync_connect().
 * \return an owned handle, or NULL. \since 0.1 */
AREDIS_API aredis_sync *aredis_sync_connect_host(const char *host, int port,
                                                 aredis_status *st);

/** Send a command (printf-like, see aredis_write_fmt()) and wait for it.
 * \return an OWNED reply, never NULL except when out of memory; a bad
 *         format gives an error reply with code AREDIS_EFORMAT; a call
 *         made from a callback inside another blocking call on the same
 *         handle, one with code AREDIS_EBUSY. \since 0.1 */
AREDIS_API aredis_reply *aredis_sync_command(aredis_sync *s, const char *fmt,
                                             ...);

/** va_list form of aredis_sync_command(). \since 0.1 */
AREDIS_API aredis_reply *aredis_sync_vcommand(aredis_sync *s, const char *fmt,
                                              va_list ap);

/** Argument-vector form (binary safe; argvlen NULL means strlen).
 * \return as aredis_sync_command(). \since 0.1 */
AREDIS_API aredis_reply *aredis_sync_commandv(aredis_sync *s, int argc,
                                              const char *const *argv,
                                              const size_t *argvlen);

/** aredis_sync_command() with per-command options (NULL for none): a
 * deadline (timeout_ms; a command past it comes back as an error reply
 * with code AREDIS_ETIMEDOUT) and AREDIS_CMD_* flags. \since 0.1 */
AREDIS_API aredis_reply *aredis_sync_command_opts(aredis_sync *s,
                                                  const aredis_cmd_opts *o,
                                                  const char *fmt, ...);

/** aredis_sync_commandv() with per-command options. \since 0.1 */
AREDIS_API aredis_reply *aredis_sync_commandv_opts(aredis_sync *s,
                                                   const aredis_cmd_opts *o,
                                                   int argc,
                                                   const char *const *argv,
                                                   const size_t *argvlen);

/** Pipelining: queue a command without waiting (printf-like). It is sent
 * when a call next waits; read its reply with aredis_sync_get_reply().
 * The arguments are encoded at once: they may be freed on return.
 * \return 0; AREDIS_EFORMAT or AREDIS_EINVAL for a bad format or
 *         argument, AREDIS_ENOMEM (nothing was queued then); AREDIS_EBUSY
 *         from a callback inside a blocking call; AREDIS_ESTATE after an
 *         internal error. \since 0.1 */
AREDIS_API int aredis_sync_append(aredis_sync *s, const char *fmt, ...);

/** va_list form of aredis_sync_append(). \since 0.1 */
AREDIS_API int aredis_sync_vappend(aredis_sync *s, const char *fmt, va_list ap);

/** Argument-vector form of aredis_sync_append() (binary safe; argvlen
 * NULL means strlen). \since 0.1 */
AREDIS_API int aredis_sync_appendv(aredis_sync *s, int argc,
                                   const char *const *argv,
                                   const size_t *argvlen);

/** aredis_sync_append() with per-command options (a deadline, flags).
 * \since 0.1 */
AREDIS_API int aredis_sync_append_opts(aredis_sync *s, const aredis_cmd_opts *o,
                                       const char *fmt, ...);

/** aredis_sync_appendv() with per-command options. \since 0.1 */
AREDIS_API int aredis_sync_appendv_opts(aredis_sync *s,
                                        const aredis_cmd_opts *o, int argc,
                                        const char *const *argv,
                                        const size_t *argvlen);

/** Wait for the reply of the oldest appended command not read yet.
 * \return a BORROWED reply, never NULL: valid until the next call of this
 *         function on s or aredis_sync_free(s) (aredis_reply_dup() keeps
 *         it). Its failures are error replies as for any command (a
 *         deadline: AREDIS_ETIMEDOUT, a lost connection...); with no
 *         appended command left to read, an error reply with code
 *         AREDIS_ESTATE; AREDIS_ENOMEM when its copy could not be made.
 * \since 0.1 */
AREDIS_API const aredis_reply *aredis_sync_get_reply(aredis_sync *s);

/** \return the number of appended commands whose reply has not been read
 * yet. \since 0.1 */
AREDIS_API size_t aredis_sync_pending(const aredis_sync *s);

/** Close the connection and free everything: the replies not read yet
 * too. NULL is a no-op. \since 0.1 */
AREDIS_API void aredis_sync_free(aredis_sync *s);

/** \return the client the facade drives (borrowed, freed with the
 * handle; NULL for NULL), for the extras built on the client API that offer
 * blocking calls (aredis_sync_lock_new(), the cache's aredis_sync_cache_*).
 * Its loop runs only inside the facade's calls: never run it yourself.
 * \since 0.1 */
AREDIS_API aredis_client *aredis_sync_client(const aredis_sync *s);

#ifdef __cplusplus
}
#endif

#endif /* AREDIS_SYNC_H */
