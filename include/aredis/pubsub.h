/* Publish/subscribe.
 *
 *     aredis_pubsub *ps = aredis_pubsub_new(client, NULL);
 *     aredis_pubsub_subscribe(ps, "news", on_news, ud);   // a handler
 *     aredis_pubsub_psubscribe(ps, "log.*", NULL, NULL);  // queued instead
 *     aredis_pubsub_get_message(ps, 1000, on_message, ud);
 *
 * On a RESP3 server the first pubsub of a client lives on the client's
 * shared connection: messages arrive as push frames and ordinary commands
 * keep working beside them. On RESP2 (or for further pubsubs of the same
 * client) it takes an exclusive connection from the pool, never one beyond
 * pool_max: with all of them in use it waits, without a deadline, until
 * one is given back, and subscribes then.
 *
 * After a reconnection every subscription is made again, with the same
 * handlers, before anything else is delivered, and one message of kind
 * AREDIS_PUBSUB_RESUBSCRIBED tells the program so. Messages published
 * while the connection was down are lost: Redis pub/sub keeps nothing.
 *
 * A message passed to a handler or callback is borrowed for the call;
 * aredis_pubsub_poll() returns an owned one (aredis_pubsub_message_free).
 * Threads: like the client, a pubsub belongs to its loop's thread; see
 * aredis_pubsub_thread_start() for a pubsub that runs on a thread of its
 * own. */
#ifndef AREDIS_PUBSUB_H
#define AREDIS_PUBSUB_H

#include <stddef.h>
#include <stdint.h>

#include "client.h"
#include "export.h"
#include "options.h"
#include "sync.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum aredis_pubsub_kind {
    AREDIS_PUBSUB_MESSAGE = 1,
    AREDIS_PUBSUB_PMESSAGE,
    AREDIS_PUBSUB_SMESSAGE,
    AREDIS_PUBSUB_SUBSCRIBE,
    AREDIS_PUBSUB_UNSUBSCRIBE,
    AREDIS_PUBSUB_PSUBSCRIBE,
    AREDIS_PUBSUB_PUNSUBSCRIBE,
    AREDIS_PUBSUB_SSUBSCRIBE,
    AREDIS_PUBSUB_SUNSUBSCRIBE,
    /** Every subscription was made again after a reconnection. */
    AREDIS_PUBSUB_RESUBSCRIBED,
} aredis_pubsub_kind;

typedef struct aredis_pubsub_message {
    int kind; /* aredis_pubsub_kind */
    /** The channel (NULL for PUNSUBSCRIBE/PSUBSCRIBE and RESUBSCRIBED). */
    const char *channel;
    size_t channel_len;
    /** PMESSAGE, PSUBSCRIBE, PUNSUBSCRIBE: the pattern; else NULL. */
    const char *pattern;
    size_t pattern_len;
    /** MESSAGE, PMESSAGE, SMESSAGE: the payload (binary safe). */
    const char *data;
    size_t data_len;
    /** Confirmations: the number of subscriptions now held. */
    long long count;
} aredis_pubsub_message;

typedef struct aredis_pubsub aredis_pubsub;

/** A handler for one channel or pattern. The message is borrowed. */
typedef void (*aredis_pubsub_handler)(aredis_pubsub *ps,
                                      const aredis_pubsub_message *m, void *ud);

typedef struct aredis_pubsub_options {
    /** Do not deliver subscribe/unsubscribe confirmations at all. */
    int ignore_subscribe_messages;
    /** Receives AREDIS_PUBSUB_RESUBSCRIBED (which belongs to no channel);
     * without it, that message is queued like any other. */
    aredis_pubsub_handler event_handler;
    void *event_ud;
} aredis_pubsub_options;

/** Create a pubsub on a client. \param o NULL for defaults (copied).
 * \return an owned pubsub for aredis_pubsub_free(), or NULL when out of
 *         memory or the client is being freed. \since 0.1 */
AREDIS_API aredis_pubsub *aredis_pubsub_new(aredis_client *c,
                                            const aredis_pubsub_options *o);

/** Leave every subscription and free. Waiting get_message calls complete
 * with AREDIS_ECANCELED (from the loop). NULL is a no-op. \since 0.1 */
AREDIS_API void aredis_pubsub_free(aredis_pubsub *ps);

/** Subscribe to a channel (SUBSCRIBE), a pattern (PSUBSCRIBE) or a shard
 * channel (SSUBSCRIBE, Redis 7). handler NULL means: queue its messages for
 * aredis_pubsub_get_message()/poll(). Subscribing again replaces the
 * handler. \return 0, AREDIS_EINVAL (empty name), AREDIS_ENOMEM,
 * AREDIS_ESTATE. \since 0.1 */
AREDIS_API int aredis_pubsub_subscribe(aredis_pubsub *ps, const char *channel,
                                       aredis_pubsub_handler handler, void *ud);
AREDIS_API int aredis_pubsub_psubscribe(aredis_pubsub *ps, const char *pattern,
                                        aredis_pubsub_handler handler,
                                        void *ud);
AREDIS_API int aredis_pubsub_ssubscribe(aredis_pubsub *ps, const char *channel,
                                        aredis_pubsub_handler handler,
                                        void *ud);

/** Leave a channel, pattern or shard channel; NULL leaves all of that
 * kind. \return 0, AREDIS_ENOMEM, AREDIS_ESTATE. \since 0.1 */
AREDIS_API int aredis_pubsub_unsubscribe(aredis_pubsub *ps,
                                         const char *channel);
AREDIS_API int aredis_pubsub_punsubscribe(aredis_pubsub *ps,
                                          const char *pattern);
AREDIS_API int aredis_pubsub_sunsubscribe(aredis_pubsub *ps,
                                          const char *channel);

/** The next queued message, asynchronously: cb runs exactly once, from the
 * loop, with the message (borrowed for the call) and status 0; or with
 * NULL and AREDIS_ETIMEDOUT after timeout_ms (< 0: no limit); or with NULL
 * and AREDIS_ECANCELED when the pubsub or its client is freed (in either
 * order). \return 0, AREDIS_EINVAL (cb NULL), AREDIS_ENOMEM, AREDIS_ESTATE
 * (the pubsub or its client is being freed). \since 0.1 */
typedef void (*aredis_pubsub_message_cb)(aredis_pubsub *ps,
                                         const aredis_pubsub_message *m,
                                         int status, void *ud);
AREDIS_API int aredis_pubsub_get_message(aredis_pubsub *ps, int64_t timeout_ms,
                                         aredis_pubsub_message_cb cb, void *ud);

/** Non-blocking: the oldest queued message, OWNED (free it with
 * aredis_pubsub_message_free()), or NULL when none (or ps is NULL).
 * \since 0.1 */
AREDIS_API aredis_pubsub_message *aredis_pubsub_poll(aredis_pubsub *ps);
AREDIS_API void aredis_pubsub_message_free(aredis_pubsub_message *m);

/** \return the number of channels + patterns + shard channels held (0
 * for NULL). \since 0.1 */
AREDIS_API size_t aredis_pubsub_subscriptions(const aredis_pubsub *ps);

/** \return the client the pubsub belongs to (NULL for NULL). \since 0.1 */
AREDIS_API aredis_client *aredis_pubsub_client(const aredis_pubsub *ps);

/** The next queued message on the blocking facade (sync.h), for a pubsub
 * created on aredis_sync_client(s): waits on the facade's private loop
 * (handlers of other channels run meanwhile) up to timeout_ms (< 0: no
 * limit; 0: only a message already received).
 *
 *     aredis_pubsub *ps = aredis_pubsub_new(aredis_sync_client(s), NULL);
 *     aredis_pubsub_subscribe(ps, "news", NULL, NULL);
 *     const aredis_pubsub_message *m;
 *     while (aredis_sync_pubsub_get_message(s, ps, 1000, &m) == 0)
 *         ... (the SUBSCRIBE confirmation first, then the messages)
 *
 * \param out receives a message BORROWED from the handle: valid until the
 *        next aredis_sync_pubsub_get_message() on s or aredis_sync_free(s);
 *        NULL unless 0 is returned.
 * \return 0; AREDIS_ETIMEDOUT when none came in time; AREDIS_EINVAL (ps of
 *         another client, out NULL); AREDIS_ENOMEM; AREDIS_EBUSY from a
 *         callback inside a blocking call; otherwise as
 *         aredis_pubsub_get_message(). \since 0.1 */
AREDIS_API int aredis_sync_pubsub_get_message(
    aredis_sync *s, aredis_pubsub *ps, int64_t timeout_ms,
    const aredis_pubsub_message **out);

/* ---- a pubsub on a thread of its own ------------------------------------ */

typedef struct aredis_pubsub_thread aredis_pubsub_thread;

/** One subscription for aredis_pubsub_thread_start(). */
typedef struct aredis_pubsub_sub {
    int kind; /* AREDIS_PUBSUB_SUBSCRIBE, _PSUBSCRIBE or _SSUBSCRIBE */
    const char *name;
    aredis_pubsub_handler handler; /* required */
    void *ud;
} aredis_pubsub_sub;

/** Start a thread with its own loop, client and pubsub, subscribe, and
 * dispatch handlers on that thread until aredis_pubsub_thread_stop().
 * Every subscription must have a handler (nothing would read a queue).
 * \param opts client options (copied) \param subs,n the subscriptions
 * (copied) \param st optional: why NULL was returned.
 * \return an owned handle, or NULL: AREDIS_EINVAL (no subscription, or one
 *         without a handler or a name, or of another kind), a bad option,
 *         AREDIS_ENOMEM. \since 0.1 */
AREDIS_API aredis_pubsub_thread *aredis_pubsub_thread_start(
    const aredis_options *opts, const aredis_pubsub_sub *subs, size_t n,
    aredis_status *st);

/** Stop the thread (its handlers have all returned when this returns) and
 * free everything. Call from any thread but the pubsub's own. NULL is a
 * no-op. \since 0.1 */
AREDIS_API void aredis_pubsub_thread_stop(aredis_pubsub_thread *t);

#ifdef __cplusplus
}
#endif

#endif /* AREDIS_PUBSUB_H */
