/* The application cache: values computed by the program, kept in Redis
 * under names derived from what they were computed from.
 *
 *     aredis_cache *cache = aredis_cache_new(c, &(aredis_cache_opts){
 *                               .app = "shop", .ttl_ms = 60000,
 *                               .codec = AREDIS_CACHE_ZSTD}, &st);
 *     aredis_cache_param p[] = {{"page", "2", 0}, {"sort", "price", 0}};
 *     aredis_cache_set(cache, "listing", p, 2, html, html_len, 0, NULL,
 *                      NULL);
 *     aredis_cache_get(cache, "listing", p, 2, on_got, ud);
 *
 *     static void on_got(aredis_cache *k, const aredis_cache_result *r,
 *                        void *ud)
 *     {
 *         if (r->status == AREDIS_CACHE_HIT) use(r->data, r->len);
 *         else if (r->status == AREDIS_CACHE_MISS) recompute();
 *         else fprintf(stderr, "%s\n", r->errmsg);   (a negative aredis_err)
 *     }
 *
 * Identity. An entry is named `<app>:<key>`, or `<app>:<key>:<hash>` when
 * the call has parameters, where <hash> is the SHA-1 (40 hex digits) of the
 * parameters sorted by name and value: the same parameters in any order
 * name the same entry. aredis_cache_opts.params_hash replaces that hash.
 *
 * Payload. The stored string starts with one header byte naming how the
 * rest is encoded (AREDIS_CACHE_HEADER_*: raw, zlib, zstd or lz4), so a
 * reader never guesses. Values of at least compress_min bytes are
 * compressed with the cache's codec (kept raw when that does not make them
 * smaller). A stored string whose header is unknown, or that fails to
 * decompress, or whose codec this build lacks, is an error
 * (AREDIS_ECORRUPT, or AREDIS_ENOTSUP for a codec not built), never handed
 * out as raw bytes. An optional serializer turns program values into bytes
 * and back.
 *
 * Herd mode (the Python library's HerdCache), when herd_timeout_ms > 0:
 * after an entry's TTL passes, exactly one reader is told to recompute it
 * (AREDIS_CACHE_RECOMPUTE) and every other reader gets the old value
 * (AREDIS_CACHE_STALE) until the recomputed value is set or the herd
 * timeout passes. The key's Redis TTL is the TTL plus the herd timeout, and
 * the "first reader recomputes" decision is taken atomically by a Lua
 * script on the server (its clock, one key), so two readers can never both
 * be chosen. See docs/guide/cache.md.
 *
 * Completion rule: every call that returns 0 runs its callback exactly
 * once, later, from the loop, with a non-NULL result; a call that returns a
 * negative code never runs it. cb may be NULL to ignore the outcome.
 *
 * Written only against the public client API, so a cache works on every
 * topology the client supports: every command names one key (batches are
 * pipelines of single-key commands, never MGET or a multi-key DEL).
 *
 * Threads: as for the client (client.h). The blocking forms run the loop of
 * the cache's client, so they are for caches made on an aredis_sync's
 * client (aredis_sync_client()). */
#ifndef AREDIS_CACHE_H
#define AREDIS_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "client.h"
#include "export.h"
#include "sync.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct aredis_cache aredis_cache;

/** Compression codecs (aredis_cache_opts.codec). */
typedef enum aredis_cache_codec {
    AREDIS_CACHE_NONE = 0, /* never compress */
    AREDIS_CACHE_ZLIB = 1, /* zlib (deflate), level 6 unless codec_level */
    AREDIS_CACHE_ZSTD = 2, /* Zstandard, level 3 unless codec_level */
    AREDIS_CACHE_LZ4 = 3,  /* LZ4 block format */
} aredis_cache_codec;

/** The header byte of a stored payload: AREDIS_CACHE_HEADER_BASE + codec
 * (0xA0 raw, 0xA1 zlib, 0xA2 zstd, 0xA3 lz4). After a compressed header
 * comes the uncompressed length (LEB128), then the compressed bytes. */
#define AREDIS_CACHE_HEADER_BASE 0xA0

/** One parameter of a call. value is binary safe through len (0 means
 * strlen(value)). */
typedef struct aredis_cache_param {
    const char *name;
    const char *value;
    size_t len;
} aredis_cache_param;

/** Where a serializer writes its bytes (see aredis_cache_append()). */
typedef struct aredis_cache_out aredis_cache_out;

/** Append n bytes to a serializer's output. \return 0 or AREDIS_ENOMEM.
 * \since 0.1 */
AREDIS_API int aredis_cache_append(aredis_cache_out *out, const void *data,
                                   size_t n);

/** A serializer: program values to bytes and back. */
typedef struct aredis_cache_serializer {
    /** Write the bytes of (value, len) with aredis_cache_append().
     * \return 0, or a negative aredis_err that the set call returns. */
    int (*serialize)(const void *value, size_t len, aredis_cache_out *out,
                     void *ud);
    /** Rebuild a value from data[0..len) (borrowed for the call) into
     * *value, which then belongs to the callback that receives it.
     * \return 0, or a negative aredis_err (reported with status set to it;
     *         AREDIS_ECORRUPT is the usual one). */
    int (*deserialize)(const char *data, size_t len, void **value, void *ud);
    void *ud;
} aredis_cache_serializer;

/** The longest text a params_hash function may produce. */
#define AREDIS_CACHE_HASH_MAX 128

/** Replace the default hash of a call's parameters: write at most
 * AREDIS_CACHE_HASH_MAX bytes to out. Called only when nparams > 0.
 * \return the number of bytes written, or a negative aredis_err that the
 *         call returns. */
typedef int (*aredis_cache_hash_fn)(const aredis_cache_param *params,
                                    size_t nparams, char *out, void *ud);

/** Pass as a ttl_ms for "no expiry", whatever the cache's default. */
#define AREDIS_CACHE_NO_TTL (-1)

/** A cache's options; zero-initialise and set what you need. Strings are
 * copied by aredis_cache_new(). */
typedef struct aredis_cache_opts {
    /** Prefix of every entry's name (required, non-empty): the cache's
     * namespace, and what aredis_cache_delete_pattern() is confined to. */
    const char *app;
    /** Default TTL in ms of aredis_cache_set() calls that pass 0 (0 here:
     * no expiry). */
    int64_t ttl_ms;
    /** One of aredis_cache_codec; AREDIS_CACHE_NONE by default. Asking for
     * one this build lacks fails aredis_cache_new() with AREDIS_ENOTSUP
     * (see aredis_cache_codec_available()). */
    int codec;
    /** Codec level (0: the codec's default; ignored by lz4). */
    int codec_level;
    /** Compress values of at least this many bytes (0: 256). */
    size_t compress_min;
    /** Refuse to decompress a payload declaring more than this many bytes
     * (0: 512 MiB, Redis's largest string). */
    size_t max_value_len;
    /** Herd mode: > 0 turns the cache into a HerdCache with this herd
     * timeout (see the top of this file). */
    int64_t herd_timeout_ms;
    /** Optional serializer (copied); NULL stores the caller's bytes. */
    const aredis_cache_serializer *serializer;
    /** Optional replacement for the parameters' hash, and its ud. */
    aredis_cache_hash_fn params_hash;
    void *params_hash_ud;
    /** Deadline of each command in ms, as aredis_cmd_opts.timeout_ms. */
    int64_t timeout_ms;
} aredis_cache_opts;

/** Outcome of a get (aredis_cache_result.status), besides a negative
 * aredis_err for a failure. */
#define AREDIS_CACHE_MISS 0      /* no such entry */
#define AREDIS_CACHE_HIT 1       /* a fresh value */
#define AREDIS_CACHE_STALE 2     /* herd: expired, another reader recomputes */
#define AREDIS_CACHE_RECOMPUTE 3 /* herd: expired, this caller recomputes */

/** What a callback receives; every pointer is borrowed until it returns. */
typedef struct aredis_cache_result {
    /** get: AREDIS_CACHE_MISS/HIT/STALE/RECOMPUTE; other calls: 0; or a
     * negative aredis_err (AREDIS_ECORRUPT, AREDIS_ENOTSUP, a client-side
     * failure, AREDIS_ESERVER...). */
    int status;
    /** get with a value (HIT, STALE, RECOMPUTE): the bytes after
     * decompression (the serializer's bytes when there is one). */
    const char *data;
    size_t len;
    /** get with a serializer: the deserialized value, OWNED by the
     * callback from then on (NULL otherwise). */
    void *value;
    /** exist: 1 or 0; ttl: ms left, -1 without expiry, -2 no entry (a herd
     * entry's TTL includes the herd timeout); delete, delete_pattern: the
     * number of keys deleted. */
    long long integer;
    /** With a negative status: what went wrong; "" otherwise. */
    const char *errmsg;
    /** get_many, set_many: one result per entry, in order (status 0 here
     * when the batch as a whole succeeded; the batch's own status is
     * negative only when it failed as a whole). */
    const struct aredis_cache_result *items;
    size_t nitems;
} aredis_cache_result;

/** A cache call's completion. \param k the cache \param r never NULL. */
typedef void (*aredis_cache_cb)(aredis_cache *k, const aredis_cache_result *r,
                                void *ud);

/** One entry of a batch. */
typedef struct aredis_cache_entry {
    const char *key;
    const aredis_cache_param *params;
    size_t nparams;
    /** set_many: the value (as for aredis_cache_set()) and its TTL. */
    const void *value;
    size_t len;
    int64_t ttl_ms;
} aredis_cache_entry;

/** \return 1 when this build can use the codec, else 0. \since 0.1 */
AREDIS_API int aredis_cache_codec_available(int codec);

/** Create a cache over a client.
 * \param c the client (borrowed; must outlive the cache).
 * \param o the options (copied); app is required.
 * \param st optional: the code and a message when NULL is returned:
 *        AREDIS_EINVAL (no app, a negative value, unknown codec),
 *        AREDIS_ENOTSUP (a codec not built in), AREDIS_ENOMEM.
 * \return an owned cache for aredis_cache_free(), or NULL. \since 0.1 */
AREDIS_API aredis_cache *aredis_cache_new(aredis_client *c,
                                          const aredis_cache_opts *o,
                                          aredis_status *st);

/** Free a cache. Calls in flight still complete, each exactly once (the
 * cache pointer they receive must then only be compared, not used); the
 * memory goes with the last of them. NULL is a no-op. \since 0.1 */
AREDIS_API void aredis_cache_free(aredis_cache *k);

/** \return the client of the cache (NULL for NULL). \since 0.1 */
AREDIS_API aredis_client *aredis_cache_client(const aredis_cache *k);

/** Write the name of an entry (the identity) to out, NUL-terminated, if
 * it fits. \return its length (which may exceed cap: then nothing useful
 * was written), or a negative aredis_err (from params_hash, AREDIS_EINVAL
 * for a NULL key, AREDIS_ENOMEM). \since 0.1 */
AREDIS_API long aredis_cache_identity(aredis_cache *k, const char *key,
                                      const aredis_cache_param *params,
                                      size_t nparams, char *out, size_t cap);

/* Every call below: key is a C string (required); params may be NULL when
 * nparams is 0. Returns 0 (cb runs exactly once), AREDIS_EINVAL (NULL key,
 * NULL params with nparams > 0), AREDIS_ENOMEM, an error of the hash
 * function or serializer, or the client's submit error. */

/** Read an entry: GET (herd mode: the herd script). \since 0.1 */
AREDIS_API int aredis_cache_get(aredis_cache *k, const char *key,
                                const aredis_cache_param *params,
                                size_t nparams, aredis_cache_cb cb, void *ud);

/** Store an entry: SET with PX. \param value,len the bytes to store, or
 * with a serializer what is passed to it. \param ttl_ms > 0, 0 for the
 * cache's default, AREDIS_CACHE_NO_TTL for none. \since 0.1 */
AREDIS_API int aredis_cache_set(aredis_cache *k, const char *key,
                                const aredis_cache_param *params,
                                size_t nparams, const void *value, size_t len,
                                int64_t ttl_ms, aredis_cache_cb cb, void *ud);

/** Does the entry exist? (result.integer 1 or 0). \since 0.1 */
AREDIS_API int aredis_cache_exist(aredis_cache *k, const char *key,
                                  const aredis_cache_param *params,
                                  size_t nparams, aredis_cache_cb cb, void *ud);

/** Time to live of the entry in ms (result.integer, as PTTL). \since 0.1 */
AREDIS_API int aredis_cache_ttl(aredis_cache *k, const char *key,
                                const aredis_cache_param *params,
                                size_t nparams, aredis_cache_cb cb, void *ud);

/** Delete the entry (result.integer: 1 or 0). \since 0.1 */
AREDIS_API int aredis_cache_delete(aredis_cache *k, const char *key,
                                   const aredis_cache_param *params,
                                   size_t nparams, aredis_cache_cb cb,
                                   void *ud);

/** Delete the entries whose name matches `<app>:<pattern>` (pattern is a
 * glob; the app prefix is escaped, so it matches only itself): SCAN with
 * MATCH, and one DEL per key found, so a cluster never sees a multi-key
 * DEL and nothing is sent when nothing matches. result.integer: the number
 * deleted. \param count SCAN's COUNT hint (0: the server's default).
 * On a cluster, SCAN walks every primary in turn (scan.h).
 * \return 0; AREDIS_EINVAL (NULL pattern, negative count); AREDIS_ENOMEM;
 *         the client's error. \since 0.1 */
AREDIS_API int aredis_cache_delete_pattern(aredis_cache *k, const char *pattern,
                                           long long count, aredis_cache_cb cb,
                                           void *ud);

/** Read n entries in one round trip (a pipeline of single-key reads).
 * result.items[i] is entry i's outcome as for aredis_cache_get(); status
 * is 0, or negative when the whole batch failed (then no items).
 * \return as aredis_cache_get(), plus AREDIS_EINVAL for n == 0 or a NULL
 *         entries. \since 0.1 */
AREDIS_API int aredis_cache_get_many(aredis_cache *k,
                                     const aredis_cache_entry *entries,
                                     size_t n, aredis_cache_cb cb, void *ud);

/** Store n entries in one round trip (a pipeline of SETs); items[i] has
 * status 0 or entry i's error. Errors as aredis_cache_get_many().
 * \since 0.1 */
AREDIS_API int aredis_cache_set_many(aredis_cache *k,
                                     const aredis_cache_entry *entries,
                                     size_t n, aredis_cache_cb cb, void *ud);

/* ---- blocking form ------------------------------------------------------
 * The same calls on a cache made over aredis_sync_client(s): each runs the
 * private loop until its callback ran and returns an OWNED copy of the
 * result (free it with aredis_cache_result_free(); a deserialized value in
 * it or its items belongs to the caller, who frees it). NULL only when out
 * of memory. A call refused at once comes back as a result with that
 * negative status. */

/** Free a result returned by an aredis_sync_cache_* call (not the values
 * deserialized into it). NULL is a no-op. \since 0.1 */
AREDIS_API void aredis_cache_result_free(aredis_cache_result *r);

AREDIS_API aredis_cache_result *aredis_sync_cache_get(
    aredis_cache *k, const char *key, const aredis_cache_param *params,
    size_t nparams);
AREDIS_API aredis_cache_result *aredis_sync_cache_set(
    aredis_cache *k, const char *key, const aredis_cache_param *params,
    size_t nparams, const void *value, size_t len, int64_t ttl_ms);
AREDIS_API aredis_cache_result *aredis_sync_cache_exist(
    aredis_cache *k, const char *key, const aredis_cache_param *params,
    size_t nparams);
AREDIS_API aredis_cache_result *aredis_sync_cache_ttl(
    aredis_cache *k, const char *key, const aredis_cache_param *params,
    size_t nparams);
AREDIS_API aredis_cache_result *aredis_sync_cache_delete(
    aredis_cache *k, const char *key, const aredis_cache_param *params,
    size_t nparams);
AREDIS_API aredis_cache_result *aredis_sync_cache_delete_pattern(
    aredis_cache *k, const char *pattern, long long count);
AREDIS_API aredis_cache_result *aredis_sync_cache_get_many(
    aredis_cache *k, const aredis_cache_entry *entries, size_t n);
AREDIS_API aredis_cache_result *aredis_sync_cache_set_many(
    aredis_cache *k, const aredis_cache_entry *entries, size_t n);

#ifdef __cplusplus
}
#endif

#endif /* AREDIS_CACHE_H */
