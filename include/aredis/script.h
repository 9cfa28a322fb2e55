/* Lua scripts: EVALSHA with a transparent fallback when the server does not
 * have the script.
 *
 *     aredis_script *mul = aredis_script_new(src, strlen(src));
 *     const char *keys[] = {"foo"}, *args[] = {"5"};
 *     aredis_script_eval(c, mul, on_reply, ud, 1, keys, 1, args);
 *
 * A script object holds the source and its SHA-1, computed locally. It is
 * not bound to a client: the same object may be evaluated on any number of
 * clients. aredis_script_eval() sends EVALSHA; when the server answers
 * NOSCRIPT (never loaded, or SCRIPT FLUSH), it sends SCRIPT LOAD and then
 * EVALSHA once more, and the callback gets that second answer: the caller
 * sees one command and one callback. Errors raised by the script keep the
 * server's message ("ERR user_script:1: ...", code AREDIS_ESERVER).
 *
 * In a pipeline, aredis_pipeline_script() queues EVALSHA, and execute
 * loads the scripts the batch uses before sending it (see pipeline.h).
 *
 * Redis 7 functions need nothing of their own: FUNCTION LOAD and FCALL are
 * ordinary commands (aredis_command(c, cb, ud, "FCALL %s 1 %s", ...)).
 *
 * Threads: a script is immutable once created; it may be used from several
 * threads at once, and freed from any thread (the last reference, which
 * may belong to a command in flight, releases it). */
#ifndef AREDIS_SCRIPT_H
#define AREDIS_SCRIPT_H

#include <stddef.h>

#include "client.h"
#include "export.h"
#include "pipeline.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct aredis_script aredis_script;

/** Create a script from its Lua source.
 * \param src,len the source (binary safe; copied).
 * \return an owned script for aredis_script_free(), or NULL when out of
 *         memory or src is NULL with len > 0. \since 0.1 */
AREDIS_API aredis_script *aredis_script_new(const char *src, size_t len);

/** Drop the caller's reference. Commands and pipelines using the script
 * keep their own, so it may be freed right after aredis_script_eval() or
 * aredis_pipeline_script(). NULL is a no-op. \since 0.1 */
AREDIS_API void aredis_script_free(aredis_script *s);

/** \return the SHA-1 of the source: 40 lower-case hex digits,
 * NUL-terminated, valid as long as the script ("" for NULL). \since 0.1 */
AREDIS_API const char *aredis_script_sha(const aredis_script *s);

/** \return the source (NUL-terminated; *len, when not NULL, gets its
 * length), valid as long as the script ("" and 0 for NULL). \since 0.1 */
AREDIS_API const char *aredis_script_source(const aredis_script *s,
                                            size_t *len);

/** Evaluate a script: EVALSHA sha nkeys keys... args..., with the
 * NOSCRIPT fallback described above.
 * \param keys,args C strings (copied at once); NULL when the count is 0.
 * \param cb gets the script's reply, or the error: the script's own
 *        (AREDIS_ESERVER), SCRIPT LOAD's when the script does not compile,
 *        or a client-side failure. Runs exactly once. May be NULL.
 * \return 0; AREDIS_EINVAL (NULL script, negative count, NULL key or
 *         argument); AREDIS_ENOMEM; or the client's submit error.
 * \since 0.1 */
AREDIS_API int aredis_script_eval(aredis_client *c, aredis_script *s,
                                  aredis_reply_cb cb, void *ud, int nkeys,
                                  const char *const *keys, int nargs,
                                  const char *const *args);

/** Binary-safe aredis_script_eval(): keylens and arglens give the lengths
 * (either may be NULL for strlen). \since 0.1 */
AREDIS_API int aredis_script_evalv(aredis_client *c, aredis_script *s,
                                   aredis_reply_cb cb, void *ud, int nkeys,
                                   const char *const *keys,
                                   const size_t *keylens, int nargs,
                                   const char *const *args,
                                   const size_t *arglens);

/** Queue EVALSHA of a script in a pipeline (its reply takes one slot, as
 * any command). The pipeline keeps a reference to the script and loads it
 * before the batch is sent, once per execute however often it is queued.
 * \return as aredis_pipeline_command(), plus AREDIS_EINVAL for a NULL
 *         script or bad keys/args. \since 0.1 */
AREDIS_API int aredis_pipeline_script(aredis_pipeline *p, aredis_script *s,
                                      int nkeys, const char *const *keys,
                                      int nargs, const char *const *args);

/** Binary-safe aredis_pipeline_script(). \since 0.1 */
AREDIS_API int aredis_pipeline_scriptv(aredis_pipeline *p, aredis_script *s,
                                       int nkeys, const char *const *keys,
                                       const size_t *keylens, int nargs,
                                       const char *const *args,
                                       const size_t *arglens);

/** aredis_script_eval() on the blocking facade (sync.h), waited for.
 * \return an OWNED reply (aredis_reply_free()): the script's reply or the
 *         error its callback would get; an error reply with the code
 *         aredis_script_eval() returned when nothing was sent. NULL only
 *         when out of memory. \since 0.1 */
AREDIS_API aredis_reply *aredis_sync_script_eval(aredis_sync *s,
                                                 aredis_script *sc, int nkeys,
                                                 const char *const *keys,
                                                 int nargs,
                                                 const char *const *args);

/** Binary-safe aredis_sync_script_eval(). \since 0.1 */
AREDIS_API aredis_reply *aredis_sync_script_evalv(
    aredis_sync *s, aredis_script *sc, int nkeys, const char *const *keys,
    const size_t *keylens, int nargs, const char *const *args,
    const size_t *arglens);

#ifdef __cplusplus
}
#endif

#endif /* AREDIS_SCRIPT_H */
