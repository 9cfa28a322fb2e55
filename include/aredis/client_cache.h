/* Server-assisted client-side caching: replies of read commands kept in
 * the program's memory, invalidated by the server (CLIENT TRACKING).
 *
 *     aredis_ccache *cc = aredis_ccache_new(c, &(aredis_ccache_opts){
 *                             .max_entries = 10000}, &st);
 *     aredis_ccache_command(cc, on_reply, ud, "GET %s", key);
 *
 * A read through the cache is answered from memory when the cache holds
 * its reply (a hit: one hash look-up, the stored reply handed out by
 * reference, no copy) and otherwise sent to the server like any command
 * (a miss), its reply then stored. The server remembers what this client
 * read and tells it when a key changes; the entry goes at once. Commands
 * the cache does not handle pass through to the client unchanged, so a
 * program may send everything through it.
 *
 * What is cached: the replies of the read commands named in
 * aredis_ccache_opts.commands (default: GET alone), chosen from a fixed
 * list of deterministic single-key reads whose key is their first
 * argument (see AREDIS_CCACHE_COMMANDS below; MGET and other multi-key
 * reads are not cached). Error replies are never stored.
 *
 * Guarantees. The cache never hands out a reply the client has been told
 * is invalid, and never stores one that may have been invalidated while
 * it was on the way: tracking is on for a connection before any read
 * whose reply is stored is sent on it (it is part of every handshake), a
 * reply is stored only if no invalidation of its key, no flush and no
 * reconnection happened while it was in flight, and everything is flushed
 * when the shared connection drops or reconnects, when the server sends a
 * flush (FLUSHALL, FLUSHDB, its tracking table full) and, in REDIRECT
 * mode, when the connection that carries the invalidations drops.
 * Invalidations travel like replies, so a write acknowledged to another
 * client may still be on its way: after aredis_ccache_sync() completes,
 * every cached read is fresh with respect to every write acknowledged
 * before the call. A key's expiry reaches the cache when the server
 * deletes the key (on access or by its active expiry cycle).
 *
 * Protocols. On RESP3 the invalidations are push messages on the shared
 * connection. On RESP2 (a server or a client that speaks only that, or
 * aredis_ccache_opts.redirect) the cache opens a connection of its own
 * from the client's pool, subscribes it to __redis__:invalidate and
 * redirects the shared connection's invalidations there (CLIENT TRACKING
 * ON REDIRECT <id>); while that connection is down nothing is cached.
 * CLIENT TRACKING needs Redis 6.0 or later; an older server refuses it and
 * the cache becomes a pass-through (AREDIS_CCACHE_UNSUPPORTED).
 *
 * Completion rule: a submit that returns 0 runs its callback exactly once,
 * later, from the loop, with a non-NULL reply borrowed for the call (a
 * hit's reply is the stored one: do not keep it, copy it with
 * aredis_reply_dup()). A call that returns a negative code never runs it.
 *
 * One cache per client, on the standalone topology. Threads: as for the
 * client (client.h). See docs/guide/client-side-caching.md. */
#ifndef AREDIS_CLIENT_CACHE_H
#define AREDIS_CLIENT_CACHE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "client.h"
#include "export.h"

#ifdef __cplusplus
extern "C" {
#endif

/** The read commands a cache can hold, for aredis_ccache_opts.commands.
 * All are deterministic and name one key, their first argument. */
#define AREDIS_CCACHE_COMMANDS                                               \
    "GET GETRANGE STRLEN GETBIT BITCOUNT BITPOS EXISTS TYPE HGET HMGET "     \
    "HGETALL HKEYS HVALS HLEN HEXISTS HSTRLEN LRANGE LLEN LINDEX LPOS "      \
    "SMEMBERS SISMEMBER SMISMEMBER SCARD ZRANGE ZRANGEBYSCORE ZRANGEBYLEX "  \
    "ZREVRANGE ZREVRANGEBYSCORE ZREVRANGEBYLEX ZSCORE ZMSCORE ZCARD ZCOUNT " \
    "ZLEXCOUNT ZRANK ZREVRANK XLEN XRANGE XREVRANGE GEOPOS GEODIST GEOHASH"

typedef struct aredis_ccache aredis_ccache;

/** Tracking modes (CLIENT TRACKING's options). */
typedef enum aredis_ccache_mode {
    /** The server remembers the keys this connection read. */
    AREDIS_CCACHE_DEFAULT = 0,
    /** Broadcast: invalidations for every key under the prefixes, read or
     * not; only keys under a prefix are cached (every key without one). */
    AREDIS_CCACHE_BCAST = 1,
    /** Only reads sent through the cache are tracked (each is preceded by
     * CLIENT CACHING YES); other reads on the connection cost the server
     * nothing. */
    AREDIS_CCACHE_OPTIN = 2,
    /** Every read is tracked (as DEFAULT; CLIENT CACHING NO is the
     * program's to send). */
    AREDIS_CCACHE_OPTOUT = 3,
} aredis_ccache_mode;

/** Where the cache stands (aredis_ccache_get_state()). */
typedef enum aredis_ccache_state {
    /** Tracking is not confirmed yet: reads go to the server. */
    AREDIS_CCACHE_STARTING = 1,
    /** Hits are served and misses stored. */
    AREDIS_CCACHE_ACTIVE = 2,
    /** REDIRECT mode, the invalidation connection is down: reads go to
     * the server until it is back. */
    AREDIS_CCACHE_SUSPENDED = 3,
    /** The server refused CLIENT TRACKING: a pass-through for good. */
    AREDIS_CCACHE_UNSUPPORTED = 4,
} aredis_ccache_state;

typedef struct aredis_ccache_opts {
    /** Bounds of the store: entries (default 10000) and bytes (default
     * 64 MiB: each entry counts its reply, its command and its key). The
     * least recently used entries go first. */
    size_t max_entries;
    size_t max_bytes;
    /** The commands to cache, from AREDIS_CCACHE_COMMANDS (any case);
     * NULL: GET alone. */
    const char *const *commands;
    size_t ncommands;
    /** An aredis_ccache_mode; with BCAST, the key prefixes (none: every
     * key). */
    int mode;
    const char *const *prefixes;
    size_t nprefixes;
    /** Use REDIRECT to a connection of the cache's own even when the
     * shared connection speaks RESP3 (RESP2 uses it always). */
    int redirect;
} aredis_ccache_opts;

typedef struct aredis_ccache_stats {
    uint64_t hits;          /** reads answered from memory */
    uint64_t misses;        /** cacheable reads sent to the server */
    uint64_t evictions;     /** entries dropped to stay within bounds */
    uint64_t invalidations; /** entries dropped by a key's invalidation */
    uint64_t flushes;       /** whole-cache flushes (loss, FLUSHALL...) */
    uint64_t not_stored;    /** replies dropped: invalidated in flight */
    size_t entries;         /** entries held now */
    size_t bytes;           /** their accounted size */
} aredis_ccache_stats;

/** Create the client's cache and turn tracking on (at once when the
 * shared connection is up, else in its next handshake).
 * \param c the client (borrowed; free the cache first).
 * \param o options, copied; NULL for the defaults.
 * \param st optional: why NULL was returned.
 * \return an owned cache for aredis_ccache_free(), or NULL: AREDIS_EINVAL
 *         (a command not in AREDIS_CCACHE_COMMANDS, a bad mode, prefixes
 *         without BCAST), AREDIS_ESTATE (the client is closing, or has a
 *         cache already), AREDIS_ENOTSUP (a cluster client),
 *         AREDIS_ENOMEM. \since 0.1 */
AREDIS_API aredis_ccache *aredis_ccache_new(aredis_client *c,
                                            const aredis_ccache_opts *o,
                                            aredis_status *st);

/** Turn tracking off, close the invalidation connection and free the
 * memory. Reads still on their way complete as usual (their replies are
 * not stored); hits not delivered yet are delivered. May be called from a
 * callback. NULL is a no-op. \since 0.1 */
AREDIS_API void aredis_ccache_free(aredis_ccache *cc);

/** A command through the cache: a hit or a miss when it is cacheable,
 * else passed to aredis_command() unchanged. The argument forms and
 * errors are aredis_command()'s / aredis_commandv()'s; AREDIS_ESTATE once
 * the client is gone. \since 0.1 */
AREDIS_API int aredis_ccache_command(aredis_ccache *cc, aredis_reply_cb cb,
                                     void *ud, const char *fmt, ...);
AREDIS_API int aredis_ccache_commandv(aredis_ccache *cc, aredis_reply_cb cb,
                                      void *ud, int argc,
                                      const char *const *argv,
                                      const size_t *argvlen);

/** The completion of aredis_ccache_sync(): status 0, or the error that
 * failed the PING (the cache was flushed then). */
typedef void (*aredis_ccache_sync_cb)(aredis_ccache *cc, int status, void *ud);

/** Wait for the invalidations of every write acknowledged before this
 * call: a PING on the connection that carries them (the shared one, or
 * the cache's own in REDIRECT mode). Once cb runs, a cached read is
 * fresh with respect to those writes. cb runs exactly once, from the loop.
 * \return 0, AREDIS_EINVAL (cb NULL), AREDIS_ENOMEM, AREDIS_ESTATE.
 * \since 0.1 */
AREDIS_API int aredis_ccache_sync(aredis_ccache *cc, aredis_ccache_sync_cb cb,
                                  void *ud);

/** Drop every entry now. \since 0.1 */
AREDIS_API void aredis_ccache_flush(aredis_ccache *cc);

/** Drop the entries of one key now (a write of the program's own, whose
 * invalidation is still on its way). \since 0.1 */
AREDIS_API void aredis_ccache_invalidate(aredis_ccache *cc, const char *key,
                                         size_t len);

/** \return an aredis_ccache_state; AREDIS_EINVAL for NULL. \since 0.1 */
AREDIS_API int aredis_ccache_get_state(const aredis_ccache *cc);

/** Counters since creation, and the current size (all 0 for a NULL
 * cache; nothing is written when out is NULL). \since 0.1 */
AREDIS_API void aredis_ccache_get_stats(const aredis_ccache *cc,
                                        aredis_ccache_stats *out);

#ifdef __cplusplus
}
#endif

#endif /* AREDIS_CLIENT_CACHE_H */
