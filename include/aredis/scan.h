/* SCAN iterators: walk a keyspace, a set, a hash or a sorted set without
 * ever seeing a cursor.
 *
 *     static int on_key(aredis_client *c, const aredis_scan_elem *e,
 *                       void *ud) { printf("%.*s\n", (int)e->len, e->str);
 *                                   return 0; }
 *     static void on_done(aredis_client *c, int status,
 *                         const aredis_reply *err, void *ud) { ... }
 *
 *     aredis_scan(c, &(aredis_scan_opts){.match = "user:*", .count = 500},
 *                 NULL, on_key, on_done, ud);
 *
 * The iterator sends SCAN (or SSCAN, HSCAN, ZSCAN) again and again, feeding
 * each reply's cursor into the next call, until the server says the walk is
 * over (cursor 0). What Redis guarantees, and so what this gives you: every
 * element present for the whole walk is returned at least once; an element
 * may be returned more than once, and one added or removed during the walk
 * may or may not be. A batch may be empty (MATCH and TYPE filter after the
 * server has picked the batch); empty batches are not reported.
 *
 * Written only against the public client API, so it runs on every topology
 * the client supports. On a cluster client a keyspace SCAN walks every
 * primary in turn, a cursor per node, and follows the cluster when it
 * changes during the walk: when a node no longer serves the slots it had
 * (a failover, CLUSTER FAILOVER, a node killed or removed), whether it was
 * being walked or not yet, its slots are walked on the nodes that serve
 * them now, from cursor 0. The guarantee stays the same - every key
 * present for the whole walk is returned at least once - and more keys
 * may come twice: those the old node had returned already, and all of a
 * new node's keys when it also had slots of its own. A call that fails on
 * a node the client still takes for the slots' primary (killed, not yet
 * replaced) waits, as a command for those slots would, until the client
 * learns who serves them (within timeout_ms, or the client's retry
 * budget), then that node's part starts over from cursor 0; only when
 * nobody takes over, or a node fails the same part three times, does the
 * walk end with the error. SSCAN, HSCAN and ZSCAN go to their key's
 * primary.
 *
 * Threads: as for the client (client.h); the blocking form as for
 * aredis_sync (sync.h). */
#ifndef AREDIS_SCAN_H
#define AREDIS_SCAN_H

#include <stddef.h>
#include <stdint.h>

#include "client.h"
#include "export.h"
#include "reply.h"
#include "sync.h"

#ifdef __cplusplus
extern "C" {
#endif

/** What to walk. */
typedef enum aredis_scan_kind {
    AREDIS_SCAN_KEYS = 0, /* SCAN: the keys of the client's database */
    AREDIS_SCAN_SET = 1,  /* SSCAN key: the members of a set */
    AREDIS_SCAN_HASH = 2, /* HSCAN key: field/value pairs of a hash */
    AREDIS_SCAN_ZSET = 3, /* ZSCAN key: member/score pairs of a sorted set */
} aredis_scan_kind;

/** What to walk and how. Zero-initialise and set what you need; every
 * string is copied when the walk starts. */
typedef struct aredis_scan_opts {
    /** One of aredis_scan_kind (default AREDIS_SCAN_KEYS). */
    int kind;
    /** SSCAN/HSCAN/ZSCAN: the key (required); binary safe through keylen,
     * where 0 means strlen(key). Must be NULL for AREDIS_SCAN_KEYS. */
    const char *key;
    size_t keylen;
    /** MATCH: a glob-style pattern (C string), or NULL for everything. */
    const char *match;
    /** COUNT: how much work the server does per call (a hint, not an exact
     * batch size); 0 for the server's default (10). */
    long long count;
    /** TYPE (SCAN only): "string", "list", "set", "zset", "hash",
     * "stream"...; NULL for every type. */
    const char *type;
    /** Deadline of each SCAN call in ms, as aredis_cmd_opts.timeout_ms
     * (0: the client's default), in both the asynchronous walk and the
     * blocking iterator; on a cluster client also of the PING that waits
     * for the slot map and of the wait for a failed node's successor. */
    int64_t timeout_ms;
} aredis_scan_opts;

/** One element of a batch, as views into the batch's reply. */
typedef struct aredis_scan_elem {
    /** The key (SCAN), member (SSCAN, ZSCAN) or field (HSCAN). */
    const char *str;
    size_t len;
    /** HSCAN: the value; ZSCAN: the score as the server wrote it; NULL and
     * 0 for SCAN and SSCAN. */
    const char *value;
    size_t vlen;
    /** ZSCAN: the score (may be inf or -inf); 0 otherwise. */
    double score;
} aredis_scan_elem;

/** How a walk ended (the `status` of aredis_scan_done_cb), besides a
 * negative aredis_err for a failure. */
#define AREDIS_SCAN_FINISHED 0 /* the server reported the end of the walk */
#define AREDIS_SCAN_STOPPED 1  /* a callback returned non-zero */

/** Called once per non-empty batch.
 * \param elements the batch as the server sent it: an ARRAY of keys or
 *        members (SCAN, SSCAN), or of field, value, field, value...
 *        (HSCAN) or member, score, ... (ZSCAN, scores as strings); borrowed
 *        until the callback returns.
 * \return 0 to go on, non-zero to stop the walk (the done callback then
 *         gets AREDIS_SCAN_STOPPED and no element callback runs for this
 *         batch). */
typedef int (*aredis_scan_batch_cb)(aredis_client *c,
                                    const aredis_reply *elements, void *ud);

/** Called once per element (per pair for HSCAN and ZSCAN), after the
 * batch callback of its batch.
 * \param e views borrowed until the callback returns.
 * \return 0 to go on, non-zero to stop at once (the rest of the batch is
 *         skipped). */
typedef int (*aredis_scan_elem_cb)(aredis_client *c, const aredis_scan_elem *e,
                                   void *ud);

/** Called exactly once when the walk ends.
 * \param status AREDIS_SCAN_FINISHED, AREDIS_SCAN_STOPPED, or a negative
 *        aredis_err: AREDIS_ESERVER (the server refused a call, e.g.
 *        WRONGTYPE), AREDIS_EPROTO (a reply not shaped like a SCAN reply),
 *        or a client-side failure (AREDIS_ETIMEDOUT, AREDIS_ECANCELED when
 *        the client is freed, AREDIS_ESTATE when the client was being freed
 *        as the next call was due, AREDIS_ENOMEM...).
 * \param err for a negative status, the error reply (type
 *        AREDIS_REPLY_ERROR, its text in str/len), borrowed for the call;
 *        NULL otherwise. */
typedef void (*aredis_scan_done_cb)(aredis_client *c, int status,
                                    const aredis_reply *err, void *ud);

/** Walk a keyspace, set, hash or sorted set asynchronously.
 *
 * The first call is submitted at once; each later one from the previous
 * reply's callback. Callbacks run on the loop thread, never inside this
 * call. Freeing the client during the walk ends it with AREDIS_ECANCELED
 * (or AREDIS_ESTATE), through the done callback, like any command.
 *
 * \param c the client (borrowed; must outlive the walk, which it does by
 *        the completion rule of client.h).
 * \param opts what to walk (copied); NULL walks every key.
 * \param batch per-batch callback, or NULL.
 * \param element per-element callback, or NULL. At least one of batch and
 *        element must be given.
 * \param done completion callback, or NULL; runs exactly once when this
 *        returns 0.
 * \param ud passed to every callback.
 * \return 0 (done will run exactly once); AREDIS_EINVAL for bad options
 *         (unknown kind, missing key, a key for SCAN, TYPE on a key walk,
 *         negative count, no batch and no element callback);
 *         AREDIS_ENOMEM; AREDIS_ESTATE when the client is being freed.
 *         On error no callback runs. \since 0.1 */
AREDIS_API int aredis_scan(aredis_client *c, const aredis_scan_opts *opts,
                           aredis_scan_batch_cb batch,
                           aredis_scan_elem_cb element,
                           aredis_scan_done_cb done, void *ud);

/* ---- blocking form ------------------------------------------------------ */

/** An iterator on the blocking facade. */
typedef struct aredis_sync_scan aredis_sync_scan;

/** Create an iterator; no command is sent until the first
 * aredis_sync_scan_next().
 * \param s the blocking handle (borrowed; free the iterator before it).
 * \param opts as for aredis_scan() (copied); NULL walks every key.
 * \param st optional: the error code and a message when NULL is returned
 *        (AREDIS_EINVAL for bad options as listed for aredis_scan(),
 *        AREDIS_ENOMEM).
 * \return an owned iterator for aredis_sync_scan_free(), or NULL.
 * \since 0.1 */
AREDIS_API aredis_sync_scan *aredis_sync_scan_new(aredis_sync *s,
                                                  const aredis_scan_opts *opts,
                                                  aredis_status *st);

/** Get the next element, sending SCAN calls as needed.
 * \param out receives views that are OWNED BY THE ITERATOR: valid until the
 *        next aredis_sync_scan_next() or aredis_sync_scan_free() on it.
 *        Copy what you keep.
 * \return 1 with *out filled; 0 at the end of the walk; a negative
 *         aredis_err on failure (as for aredis_scan_done_cb, message from
 *         aredis_sync_scan_errmsg()). An error is sticky: every later call
 *         returns it again. \since 0.1 */
AREDIS_API int aredis_sync_scan_next(aredis_sync_scan *it,
                                     aredis_scan_elem *out);

/** \return the message of the error aredis_sync_scan_next() returned (the
 *          server's text for AREDIS_ESERVER), or "" when there was none;
 *          valid until aredis_sync_scan_free(). \since 0.1 */
AREDIS_API const char *aredis_sync_scan_errmsg(const aredis_sync_scan *it);

/** Free an iterator, finished or not. NULL is a no-op. \since 0.1 */
AREDIS_API void aredis_sync_scan_free(aredis_sync_scan *it);

#ifdef __cplusplus
}
#endif

#endif /* AREDIS_SCAN_H */
