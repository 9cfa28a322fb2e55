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
 * built-in loop that runs only inside these calls. Every reply it returns
 * is OWNED by the caller (free it with aredis_reply_free()); failures come
 * back as error replies exactly as in the asynchronous API.
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

/** Send a command (printf-like, see aredis_write_fmt()) and wait for it.
 * \return an OWNED reply, never NULL except when out of memory; a bad
 *         format gives an error reply with code AREDIS_EFORMAT. \since 0.1 */
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

/** Close the connection and free everything. NULL is a no-op. \since 0.1 */
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
