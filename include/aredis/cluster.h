/* Redis Cluster helpers.
 *
 * A cluster splits the key space into 16384 hash slots. A key's slot is
 * CRC16 (XMODEM) of the key modulo 16384, except that when the key holds
 * a hash tag - a '{' followed later by a '}' with at least one byte
 * between them - only the bytes between the first '{' and the first '}'
 * after it are hashed. So "{user:1}:name" and "{user:1}:mail" share a
 * slot, and can be used together in one multi-key command, transaction or
 * script. An empty tag ("{}x") or an unclosed one ("{x") does not count:
 * the whole key is hashed then.
 *
 *     unsigned slot = aredis_cluster_keyslot("{user:1}:name", 13);
 *
 * The result equals what the server's CLUSTER KEYSLOT answers. */
#ifndef AREDIS_CLUSTER_H
#define AREDIS_CLUSTER_H

#include <stdarg.h>
#include <stddef.h>

#include "client.h"
#include "export.h"
#include "sync.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The number of hash slots of a Redis Cluster. */
#define AREDIS_CLUSTER_SLOTS 16384

/* The hash slot (0 to AREDIS_CLUSTER_SLOTS - 1) of the len bytes at key,
 * which may hold any byte, NUL included. key may be NULL when len is 0. */
AREDIS_API unsigned aredis_cluster_keyslot(const void *key, size_t len);

/* ---- Fan-out: commands a cluster client sends to several nodes ------------
 *
 * A cluster client (redis+cluster:// URL or aredis_options.cluster) routes
 * each command by its first key's slot. What it does with the others is
 * declared per command in the library's command table:
 *
 *  - Multi-key commands whose keys span slots - MGET, MSET, DEL, EXISTS,
 *    UNLINK, TOUCH - are split into one command per slot, sent together,
 *    and the replies reassembled into the one a single server gives: MGET's
 *    array in the caller's order, MSET's OK, the integer sum for DEL,
 *    EXISTS (a repeated key counts twice, as on one server), UNLINK and
 *    TOUCH. This is NOT atomic: another client may see some slots' part
 *    done and not yet the others', and when a part fails the caller gets
 *    that part's error reply as it is, while the other parts may have
 *    been applied. With
 *    aredis_cluster_options.cross_slot = AREDIS_CROSS_SLOT_REFUSE they fail
 *    instead, before anything is sent, with AREDIS_EINVAL and a message
 *    starting "CROSSSLOT". Keys sharing a {hash tag} are in one slot and go
 *    as one command either way.
 *  - Other multi-key commands (SUNIONSTORE, RENAME, BLPOP k1 k2, EVAL with
 *    several keys...) are never split: they go to their first key's slot,
 *    where the server refuses keys over several slots (an AREDIS_ESERVER
 *    error, "CROSSSLOT ...").
 *  - Keyless commands whose meaning spans the key space go to every
 *    primary, in parallel, and the replies are merged: KEYS (the keys of
 *    all), DBSIZE (the sum), FLUSHALL and FLUSHDB (OK when all say OK),
 *    SCRIPT LOAD (the SHA when all agree), SCRIPT EXISTS (1 where every
 *    primary has it), SCRIPT FLUSH, FUNCTION LOAD/DELETE/FLUSH/RESTORE,
 *    RANDOMKEY (a key from the first primary that has one), PUBSUB
 *    SHARDCHANNELS.
 *  - Commands about the servers themselves go to every node (primaries and
 *    known replicas) and their reply is a MAP from "host:port" to that
 *    node's reply: INFO, CONFIG GET, TIME, PING, LASTSAVE, ROLE. CONFIG
 *    SET, CONFIG RESETSTAT and CONFIG REWRITE reach every node (OK when
 *    all say OK). PUBSUB CHANNELS (without repeats), NUMSUB and NUMPAT
 *    (summed) merge every node's view, since a classic subscriber may be
 *    connected to any node.
 *  - Commands whose meaning depends on the node or the connection are
 *    refused with AREDIS_ENOTSUP: SCAN (use aredis_scan(), which walks
 *    every primary), MULTI, EXEC, DISCARD, UNWATCH (use a transaction
 *    pipeline, aredis_transaction() or aredis_client_acquire_key()), WAIT,
 *    WAITAOF, MOVE, SWAPDB, MONITOR, READONLY, READWRITE, SAVE, BGSAVE,
 *    BGREWRITEAOF, SHUTDOWN, FAILOVER, REPLICAOF, SLAVEOF, DEBUG, SCRIPT
 *    KILL. Send them to a node with aredis_node_command().
 *  - Any other keyless command (ECHO, PUBLISH, CLUSTER ..., COMMAND, EVAL
 *    with no keys...) goes to one node: its result does not depend on which.
 *  - A command the library does not know (a module's, a newer server's) is
 *    looked up once per client with COMMAND INFO, from the loop, while the
 *    commands naming it wait (within their deadline); its key
 *    specifications then give its first key, hence its slot. One whose keys
 *    they cannot place (a module that finds its keys itself) goes to any
 *    node, which answers MOVED (followed) or runs it; one the server does
 *    not know either gets the server's error.
 *
 * A merged reply whose part failed is that part's error, its message
 * prefixed with the node's "host:port: ".
 *
 * Every part is an ordinary command: it has the client's command deadline,
 * follows MOVED and ASK, and the caller's callback runs exactly once, when
 * the last part has completed. A fan-out over nodes asked before the
 * client has its first slot map waits for it (a few seconds at most, or
 * the per-call timeout_ms of an *_opts form when shorter, then
 * AREDIS_ETIMEDOUT). A client of one server (standalone or sentinel)
 * sends every command as it is: none of this costs it anything. */

/* ---- Nodes: enumerate them, send a command to one or to each -------------
 *
 * A cluster client routes each command by its key's slot, and sends the
 * commands whose meaning spans the cluster to every node itself (see
 * "Fan-out" below). For the rest - administration, a per-node statistic,
 * a command the library refuses on a cluster - a program names the node.
 * Ownership: nothing here lends memory; addresses are copied into the
 * caller's structs, replies are borrowed for the callback as usual.
 * These functions work on every client: on one server (standalone or
 * sentinel-managed) there is one node, a primary.
 *
 * Nodes are named by address, copied out: a node may leave the cluster
 * (failover, resharding) at any time, so no handle to one is ever lent. */

/** \return 1 when c is a cluster client (its commands are routed by
 * slot), else 0. \since 0.2 */
AREDIS_API int aredis_client_is_cluster(const aredis_client *c);

/** Kinds of node, for aredis_client_nodes() and aredis_nodes_command(). */
#define AREDIS_NODES_PRIMARIES 1 /* the primaries serving slots */
#define AREDIS_NODES_REPLICAS 2  /* their replicas, as far as known */
#define AREDIS_NODES_ALL 3       /* both */

/** One node's address (a copy: the caller's to keep). */
typedef struct aredis_node_addr {
    char host[256]; /* host name or address; "" for a unix socket */
    int port;
    int primary; /* 1: a primary, 0: a replica */
} aredis_node_addr;

/** The nodes of a kind, as the client knows them now (a cluster client:
 * from its slot map; none before the first map has arrived).
 * \param which AREDIS_NODES_PRIMARIES, _REPLICAS or _ALL.
 * \param out filled with up to max addresses (may be NULL when max is 0).
 * \return how many such nodes there are, possibly more than max: call
 *         again with a larger array to get them all. Loop thread only.
 * \since 0.2 */
AREDIS_API size_t aredis_client_nodes(aredis_client *c, int which,
                                      aredis_node_addr *out, size_t max);

/** Which primary serves a slot, as the client's slot map says now (on one
 * server: that server), and how far the same answer goes, so that a
 * program can walk the map run by run:
 *
 *     for (unsigned s = 0, last; s < AREDIS_CLUSTER_SLOTS; s = last + 1)
 *         if (aredis_client_slot_primary(c, s, &node, &last) == 1)
 *             ... slots s to last are node's ...
 *
 * \param out filled with the primary's address when there is one.
 * \param last optional: set to the last slot from slot on with the same
 *        answer (the same primary, or none).
 * \return 1 with *out filled; 0 when no node serves the slot (no map
 *         yet, or a slot the cluster leaves unserved); AREDIS_EINVAL (c
 *         or out NULL, slot out of range). Loop thread only. \since 0.2 */
AREDIS_API int aredis_client_slot_primary(aredis_client *c, unsigned slot,
                                          aredis_node_addr *out,
                                          unsigned *last);

/** Send a command to the node at host:port (one aredis_client_nodes()
 * listed) on its shared connection, or, for a blocking command, on one of
 * its exclusive connections. The command is not routed and not
 * redirected: a MOVED or ASK reply is delivered as it is. Same formats,
 * rules and completion guarantee as aredis_command().
 * \return 0 (cb runs exactly once, from the loop), AREDIS_EINVAL when the
 *         client knows no node at that address, or aredis_command()'s
 *         errors. \since 0.2 */
AREDIS_API int aredis_node_command(aredis_client *c, const char *host, int port,
                                   aredis_reply_cb cb, void *ud,
                                   const char *fmt, ...);
AREDIS_API int aredis_node_commandv(aredis_client *c, const char *host,
                                    int port, aredis_reply_cb cb, void *ud,
                                    int argc, const char *const *argv,
                                    const size_t *argvlen);

/** aredis_node_command() and aredis_node_commandv() with per-command
 * options, like aredis_command_opts(): o (may be NULL: none) is read
 * during the call and not kept. o->timeout_ms is the command's deadline
 * (> 0: instead of the client's command_timeout_ms, < 0: none; past it the
 * callback gets AREDIS_ETIMEDOUT); o->flags are AREDIS_CMD_* flags
 * (AREDIS_CMD_IDEMPOTENT: sent again on the node's next connection if
 * this one is lost). Returns as aredis_node_command(). \since 0.2 */
AREDIS_API int aredis_node_command_opts(aredis_client *c,
                                        const aredis_cmd_opts *o,
                                        const char *host, int port,
                                        aredis_reply_cb cb, void *ud,
                                        const char *fmt, ...);
AREDIS_API int aredis_node_commandv_opts(aredis_client *c,
                                         const aredis_cmd_opts *o,
                                         const char *host, int port,
                                         aredis_reply_cb cb, void *ud, int argc,
                                         const char *const *argv,
                                         const size_t *argvlen);

/** Send a command to every node of a kind, in parallel, and get one reply:
 * a MAP from "host:port" (a STRING) to that node's reply (an ERROR value
 * for a node that failed or timed out). On a cluster client that does not
 * have its slot map yet, the command waits for it (a few seconds at most,
 * then AREDIS_ETIMEDOUT). Each node's command has the client's
 * command_timeout_ms (see aredis_nodes_command_opts() for another).
 * \return 0 (cb runs exactly once, from the loop), AREDIS_EINVAL for a
 *         bad which, or aredis_command()'s errors. \since 0.2 */
AREDIS_API int aredis_nodes_command(aredis_client *c, int which,
                                    aredis_reply_cb cb, void *ud,
                                    const char *fmt, ...);
AREDIS_API int aredis_nodes_commandv(aredis_client *c, int which,
                                     aredis_reply_cb cb, void *ud, int argc,
                                     const char *const *argv,
                                     const size_t *argvlen);

/** aredis_nodes_command() and aredis_nodes_commandv() with per-command
 * options o (may be NULL: none; read during the call, not kept), which
 * every node's command gets as aredis_node_command_opts() says. A
 * timeout_ms > 0 also bounds the wait for the slot map when it is
 * shorter. Returns as aredis_nodes_command(). \since 0.2 */
AREDIS_API int aredis_nodes_command_opts(aredis_client *c,
                                         const aredis_cmd_opts *o, int which,
                                         aredis_reply_cb cb, void *ud,
                                         const char *fmt, ...);
AREDIS_API int aredis_nodes_commandv_opts(aredis_client *c,
                                          const aredis_cmd_opts *o, int which,
                                          aredis_reply_cb cb, void *ud,
                                          int argc, const char *const *argv,
                                          const size_t *argvlen);

/** The blocking facade's forms of aredis_node_commandv() and
 * aredis_nodes_commandv(): same rules as aredis_sync_commandv() (the
 * reply is owned: free it with aredis_reply_free(); an error reply for a
 * failure, AREDIS_EINVAL for an unknown node; NULL only when out of
 * memory). \since 0.2 */
AREDIS_API aredis_reply *aredis_sync_node_commandv(aredis_sync *s,
                                                   const char *host, int port,
                                                   int argc,
                                                   const char *const *argv,
                                                   const size_t *argvlen);
AREDIS_API aredis_reply *aredis_sync_nodes_commandv(aredis_sync *s, int which,
                                                    int argc,
                                                    const char *const *argv,
                                                    const size_t *argvlen);

/** The blocking facade's forms of aredis_node_commandv_opts() and
 * aredis_nodes_commandv_opts() (o may be NULL; read during the call, not
 * kept): a command past its deadline comes back as an error reply with
 * code AREDIS_ETIMEDOUT. Otherwise as aredis_sync_node_commandv().
 * \since 0.2 */
AREDIS_API aredis_reply *aredis_sync_node_commandv_opts(
    aredis_sync *s, const aredis_cmd_opts *o, const char *host, int port,
    int argc, const char *const *argv, const size_t *argvlen);
AREDIS_API aredis_reply *aredis_sync_nodes_commandv_opts(
    aredis_sync *s, const aredis_cmd_opts *o, int which, int argc,
    const char *const *argv, const size_t *argvlen);

/** Borrow an exclusive connection (aredis_client_acquire()) to the primary
 * serving a slot, or a key's slot: the connection for WATCH ... MULTI ...
 * EXEC on keys of that slot. On one server it is the server's. A cluster
 * client without a slot map yet waits for it. The connection stays on
 * that node: if the slot moves meanwhile, its commands get MOVED errors
 * (delivered, not followed), and the transaction fails rather than run
 * elsewhere.
 * \return 0 (cb runs exactly once, from the loop), AREDIS_EINVAL (slot
 *         out of range, key NULL with len > 0, cb NULL), AREDIS_ENOMEM,
 *         AREDIS_ESTATE (the client is closing). \since 0.2 */
AREDIS_API int aredis_client_acquire_slot(aredis_client *c, unsigned slot,
                                          aredis_acquire_cb cb, void *ud);
AREDIS_API int aredis_client_acquire_key(aredis_client *c, const void *key,
                                         size_t len, aredis_acquire_cb cb,
                                         void *ud);

#ifdef __cplusplus
}
#endif

#endif /* AREDIS_CLUSTER_H */
