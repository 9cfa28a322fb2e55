/* Streams: typed views over stream replies, and a consumer-group helper.
 *
 * Every stream command (XADD, XRANGE, XREAD, XREADGROUP, XACK, XCLAIM,
 * XAUTOCLAIM, XPENDING, XINFO...) is sent with the ordinary command API;
 * XREAD and XREADGROUP with BLOCK go to an exclusive connection by
 * themselves. What this header adds is what spares real work:
 *
 *  - views (aredis_stream_entry, aredis_stream_read...) that walk the
 *    nested replies of XRANGE, XREAD, XREADGROUP, XCLAIM, XAUTOCLAIM and
 *    XPENDING the same way on RESP2 (arrays) and RESP3 (XREAD answers a
 *    MAP of stream name to entries). They allocate nothing: every pointer
 *    in a view points into the reply it was taken from, so a view is valid
 *    exactly as long as that reply (the callback for a borrowed reply,
 *    until aredis_reply_free() for an owned one);
 *
 *  - aredis_stream_consumer: reads a stream as one consumer of a group
 *    (XREADGROUP ... BLOCK), hands each entry to a callback, acknowledges
 *    the entries it accepts (XACK), and periodically takes over entries
 *    that other consumers left pending too long (XAUTOCLAIM).
 *
 * Built only on the public client API, so it works on every topology.
 *
 * Threads: the view functions are pure and may be called from any thread
 * on a reply that thread may read. A consumer belongs to its client's loop
 * thread. */
#ifndef AREDIS_STREAM_H
#define AREDIS_STREAM_H

#include <stddef.h>
#include <stdint.h>

#include "client.h"
#include "export.h"
#include "loop.h"
#include "reply.h"
#include "sync.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- views ------------------------------------------------------------- */

/** One stream entry: its id and its field/value pairs, as views into the
 * reply it was parsed from. */
typedef struct aredis_stream_entry {
    /** The entry id, "<ms>-<seq>". */
    const char *id;
    size_t idlen;
    /** Number of field/value pairs. */
    size_t nfields;
    /** 2 * nfields replies: field 0, value 0, field 1, value 1, ...;
     * NULL when nfields is 0. */
    const aredis_reply *fields;
    /** 1 when the server named the entry but it no longer exists (a
     * pending entry deleted with XDEL: fields are nil in XREADGROUP's
     * history and XCLAIM replies), or when the reply held only the id
     * (XCLAIM/XAUTOCLAIM ... JUSTID); nfields is then 0. */
    int id_only;
} aredis_stream_entry;

/** Parse one entry: [id, [field, value, ...]] (or [id, nil] for a
 * deleted entry, or a bare id string as JUSTID replies have).
 * \param r the entry reply (borrowed or owned); \param out the view.
 * \return 0, or AREDIS_EPROTO when r is not shaped like an entry, or
 *         AREDIS_EINVAL for a NULL argument. \since 0.1 */
AREDIS_API int aredis_stream_entry_parse(const aredis_reply *r,
                                         aredis_stream_entry *out);

/** Parse the i-th entry of an entry list: the reply of XRANGE, XREVRANGE
 * and XCLAIM, the entries of one stream of an XREAD reply
 * (aredis_stream_read.entries), or of an XAUTOCLAIM reply.
 * \return 0; AREDIS_EINVAL when entries is not an array or i >= its
 *         length; AREDIS_EPROTO as aredis_stream_entry_parse(). \since 0.1 */
AREDIS_API int aredis_stream_entry_at(const aredis_reply *entries, size_t i,
                                      aredis_stream_entry *out);

/** Find a field's value in an entry (the first one if a field repeats).
 * \param name/len the field, compared byte for byte.
 * \return the value (borrowed like the entry's reply), or NULL when the
 *         entry has no such field. \since 0.1 */
AREDIS_API const aredis_reply *aredis_stream_entry_field(
    const aredis_stream_entry *e, const char *name, size_t len);

/** One stream of an XREAD / XREADGROUP reply. */
typedef struct aredis_stream_read {
    /** The stream's key. */
    const char *name;
    size_t namelen;
    /** Its entries (an ARRAY; walk with aredis_stream_entry_at()) and how
     * many there are. */
    const aredis_reply *entries;
    size_t nentries;
} aredis_stream_read;

/** \return the number of streams in an XREAD / XREADGROUP reply: the
 *          pairs of a RESP3 map or the elements of a RESP2 array; 0 for
 *          nil (BLOCK timed out, nothing new) and for any other type.
 *          \since 0.1 */
AREDIS_API size_t aredis_stream_read_count(const aredis_reply *r);

/** View the i-th stream of an XREAD / XREADGROUP reply.
 * \return 0; AREDIS_EINVAL when i >= aredis_stream_read_count(r);
 *         AREDIS_EPROTO when the reply is not shaped like one. \since 0.1 */
AREDIS_API int aredis_stream_read_at(const aredis_reply *r, size_t i,
                                     aredis_stream_read *out);

/** The reply of XAUTOCLAIM. */
typedef struct aredis_stream_autoclaim {
    /** The cursor for the next call: "0-0" when the pending list has been
     * walked to its end. */
    const char *next_id;
    size_t next_idlen;
    /** The claimed entries (ids only with JUSTID); walk with
     * aredis_stream_entry_at(). */
    const aredis_reply *entries;
    size_t nentries;
    /** Ids that were pending but no longer exist; the server has removed
     * them from the pending list (Redis 7.0+; NULL and 0 before). */
    const aredis_reply *deleted;
    size_t ndeleted;
} aredis_stream_autoclaim;

/** Parse an XAUTOCLAIM reply: [next-id, entries(, deleted-ids)].
 * \return 0, AREDIS_EPROTO, or AREDIS_EINVAL for a NULL argument.
 * \since 0.1 */
AREDIS_API int aredis_stream_autoclaim_parse(const aredis_reply *r,
                                             aredis_stream_autoclaim *out);

/** One entry of the extended form of XPENDING
 * (XPENDING key group [IDLE ms] start end count [consumer]). */
typedef struct aredis_stream_pending {
    const char *id;
    size_t idlen;
    /** The consumer that holds the entry. */
    const char *consumer;
    size_t consumerlen;
    /** Milliseconds since it was last delivered, and how many times it has
     * been delivered. */
    long long idle_ms;
    long long deliveries;
} aredis_stream_pending;

/** View the i-th entry of an extended XPENDING reply.
 * \return 0; AREDIS_EINVAL when r is not an array or i is out of range;
 *         AREDIS_EPROTO when the entry is not [id, consumer, idle, count].
 *         \since 0.1 */
AREDIS_API int aredis_stream_pending_at(const aredis_reply *r, size_t i,
                                        aredis_stream_pending *out);

/** Split an entry id "<ms>-<seq>" (or "<ms>", whose sequence is 0).
 * \param ms, seq receive the parts; either may be NULL.
 * \return 0, or AREDIS_EINVAL when id is not a valid id. \since 0.1 */
AREDIS_API int aredis_stream_id_parse(const char *id, size_t len, uint64_t *ms,
                                      uint64_t *seq);

/* ---- consumer-group helper ------------------------------------------------
 */

typedef struct aredis_stream_consumer aredis_stream_consumer;

/** Return values of aredis_stream_entry_cb. */
#define AREDIS_STREAM_ACCEPT 0 /* processed: acknowledge it (XACK) */
#define AREDIS_STREAM_REJECT 1 /* not processed: leave it pending */

/** Flag passed to aredis_stream_entry_cb: the entry was taken over from
 * another consumer (or left pending by this one) through XAUTOCLAIM rather
 * than read fresh. */
#define AREDIS_STREAM_CLAIMED 1u

/** Called for each entry delivered to the consumer.
 * \param e the entry, borrowed until the callback returns.
 * \param flags 0 or AREDIS_STREAM_CLAIMED.
 * \return AREDIS_STREAM_ACCEPT to acknowledge the entry, or
 *         AREDIS_STREAM_REJECT to leave it in the group's pending list,
 *         where a claim (by any consumer of the group, this one included)
 *         delivers it again once it has been idle claim_min_idle_ms. */
typedef int (*aredis_stream_entry_cb)(aredis_stream_consumer *sc,
                                      const aredis_stream_entry *e,
                                      unsigned flags, void *ud);

/** Called when a command of the consumer fails (the consumer goes on,
 * after retry_ms for a failed read).
 * \param err the error reply, borrowed for the call. Its code is
 *        AREDIS_ESERVER for a server error (NOGROUP...), or a client-side
 *        aredis_err. AREDIS_ECANCELED and AREDIS_ESTATE mean the client is
 *        gone: the consumer then stops sending (see
 *        aredis_stream_consumer_new()). */
typedef void (*aredis_stream_error_cb)(aredis_stream_consumer *sc,
                                       const aredis_reply *err, void *ud);

/** Called once when a stop has completed. */
typedef void (*aredis_stream_stopped_cb)(aredis_stream_consumer *sc, void *ud);

typedef struct aredis_stream_consumer_opts {
    /** Stream key, group and consumer name (required; C strings, copied). */
    const char *stream;
    const char *group;
    const char *consumer;
    /** XREADGROUP COUNT: entries per read (default 10). */
    long long count;
    /** XREADGROUP BLOCK in ms (default 2000). A stop completes once the
     * read in flight returns, so this bounds how long a stop takes. */
    long long block_ms;
    /** XAUTOCLAIM min-idle-time in ms: entries pending longer than this
     * in any consumer of the group are claimed and delivered again with
     * AREDIS_STREAM_CLAIMED. 0 (the default) never claims. */
    long long claim_min_idle_ms;
    /** How often to look for such entries (default claim_min_idle_ms);
     * the first look is made when the consumer starts. */
    long long claim_interval_ms;
    /** XAUTOCLAIM COUNT per call (default 100). */
    long long claim_count;
    /** Create the group (XGROUP CREATE ... MKSTREAM) when the consumer
     * starts, and again if a read finds it missing (NOGROUP); an existing
     * group (BUSYGROUP) is fine. create_id is the group's start id
     * (default "$": only entries added from now on). */
    int create_group;
    const char *create_id;
    /** Wait before reading again after a failed read (default 500 ms). */
    long long retry_ms;
    /** Entry callback (required), error callback (optional), and their
     * user data. */
    aredis_stream_entry_cb on_entry;
    aredis_stream_error_cb on_error;
    void *ud;
} aredis_stream_consumer_opts;

/** Counters, for monitoring and tests. */
typedef struct aredis_stream_consumer_stats {
    unsigned long long delivered; /* entries handed to on_entry */
    unsigned long long accepted;  /* of which accepted */
    unsigned long long claimed;   /* of which came through XAUTOCLAIM */
    unsigned long long acked;     /* entries the server confirmed acked */
    unsigned long long errors;    /* failed commands */
} aredis_stream_consumer_stats;

/** Create a stopped consumer.
 * \param c the client (borrowed). Free the consumer before the client.
 *        If the client is freed while a command of the consumer is in
 *        flight (normally its blocked read), the consumer notices (the
 *        command fails with AREDIS_ECANCELED), sends nothing more, and only
 *        aredis_stream_consumer_stop() and _free() remain valid; but one
 *        waiting out retry_ms has nothing in flight and cannot tell, so do
 *        not rely on it.
 * \param loop the loop the client runs on (borrowed; must outlive the
 *        consumer): the consumer keeps its claim and retry timers there.
 * \param opts copied. \param st optional: the code (AREDIS_EINVAL for a
 *        missing stream, group, consumer or on_entry, or a negative count,
 *        block or interval; AREDIS_ENOMEM) and a message when NULL is
 *        returned.
 * \return an owned consumer for aredis_stream_consumer_free(), or NULL.
 * \since 0.1 */
AREDIS_API aredis_stream_consumer *aredis_stream_consumer_new(
    aredis_client *c, aredis_loop *loop,
    const aredis_stream_consumer_opts *opts, aredis_status *st);

/** Start reading (and, when claiming, make a first claim pass). Callbacks
 * run on the loop thread, never inside this call. A stopped consumer may
 * be started again.
 * \return 0; AREDIS_ESTATE when it is already running or stopping, or its
 *         client is gone; AREDIS_ENOMEM. \since 0.1 */
AREDIS_API int aredis_stream_consumer_start(aredis_stream_consumer *sc);

/** Stop: no new read or claim is sent. Entries the server already
 * delivered (by the read or claim in flight) are still handed to on_entry
 * and acknowledged, so a stop strands nothing in the pending list; then,
 * once every command of the consumer has completed, cb runs once, from
 * the loop (never inside this call). After cb no callback of the consumer
 * runs until it is started again. Stopping takes at most about block_ms.
 * \param cb may be NULL. \return 0 (cb will run once); AREDIS_ESTATE when
 *         the consumer is not running (never started, already stopping or
 *         stopped); AREDIS_ENOMEM. \since 0.1 */
AREDIS_API int aredis_stream_consumer_stop(aredis_stream_consumer *sc,
                                           aredis_stream_stopped_cb cb,
                                           void *ud);

/** Copy the consumer's counters. \since 0.1 */
AREDIS_API void aredis_stream_consumer_stats_get(
    const aredis_stream_consumer *sc, aredis_stream_consumer_stats *out);

/** \return the client the consumer was created on (NULL for NULL).
 * \since 0.1 */
AREDIS_API aredis_client *aredis_stream_consumer_client(
    const aredis_stream_consumer *sc);

/** Free a consumer, running or not. No callback of it runs after this
 * returns (a pending stop's cb is dropped). Commands still in flight
 * complete into the void; the memory is released when the last one has.
 * May be called from inside any callback of the consumer. NULL is a no-op.
 * \since 0.1 */
AREDIS_API void aredis_stream_consumer_free(aredis_stream_consumer *sc);

/* ---- blocking form ------------------------------------------------------
 *
 *     aredis_stream_consumer *sc = aredis_sync_stream_consumer_new(s, &o, &st);
 *     while (running)
 *         aredis_sync_stream_consumer_run(s, sc, 1000);  (on_entry runs here)
 *     aredis_sync_stream_consumer_stop(s, sc);
 *     aredis_stream_consumer_free(sc);
 *
 * The consumer's callbacks run inside aredis_sync_stream_consumer_run(), on
 * the facade's private loop. They must not make blocking calls on the same
 * handle (AREDIS_EBUSY); they may use the asynchronous API on
 * aredis_sync_client(s). */

/** aredis_stream_consumer_new() on the blocking facade (sync.h): on
 * aredis_sync_client(s) and its private loop. Free the consumer (stopped
 * or not) before the handle. \since 0.1 */
AREDIS_API aredis_stream_consumer *aredis_sync_stream_consumer_new(
    aredis_sync *s, const aredis_stream_consumer_opts *opts, aredis_status *st);

/** Start the consumer if it is stopped, then run the private loop until
 * on_entry was called during this call (for every entry of the batch that
 * came), or timeout_ms passed (< 0: no limit). Between calls the consumer
 * stays running: its read stays in flight, and what it brings is handed
 * over in the next call.
 * \return the number of entries handed to on_entry during the call (0 at
 *         the timeout); AREDIS_EINVAL (a consumer of another client);
 *         AREDIS_EBUSY from a callback inside a blocking call; AREDIS_ESTATE
 *         while it stops; AREDIS_ENOMEM. \since 0.1 */
AREDIS_API int aredis_sync_stream_consumer_run(aredis_sync *s,
                                               aredis_stream_consumer *sc,
                                               int64_t timeout_ms);

/** aredis_stream_consumer_stop(), waited for: the entries already
 * delivered are handed to on_entry and acknowledged first; it takes at
 * most about block_ms. \return 0; AREDIS_EINVAL; AREDIS_EBUSY; otherwise
 * as aredis_stream_consumer_stop() (AREDIS_ESTATE when not running).
 * \since 0.1 */
AREDIS_API int aredis_sync_stream_consumer_stop(aredis_sync *s,
                                                aredis_stream_consumer *sc);

#ifdef __cplusplus
}
#endif

#endif /* AREDIS_STREAM_H */
