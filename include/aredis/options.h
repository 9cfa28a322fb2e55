/* Client options: where to connect and how.
 *
 * Fill an aredis_options with designated initialisers; every member left
 * zero takes its documented default. A URL, when given, is parsed first and
 * the explicit members override what it says:
 *
 *   redis://[user[:password]@]host[:port][/db][?option=value&...]
 *   rediss://...                         (TLS)
 *   unix:///path/to/redis.sock[?db=N&...]
 *   redis+sentinel://[user[:password]@]s1[:p1],s2[:p2],.../service[?...]
 *   rediss+sentinel://...                (TLS to the sentinels and servers)
 *   redis+cluster://[user[:password]@]h1[:p1],h2[:p2],...[/0][?...]
 *   rediss+cluster://...                 (a Redis Cluster by its seeds)
 *
 * URL query options: db, client_name, protocol (2|3), connect_timeout,
 * command_timeout (both in ms, or with a unit: 250ms, 2s), keepalive
 * (seconds of idle, 0 = off), tls_ca_file, tls_ca_dir, tls_cert_file,
 * tls_key_file, tls_sni, tls_insecure (yes: skip verification).
 * Sentinel URLs also take role (master|replica), sentinel_username,
 * sentinel_password, sentinel_tls (yes|no), sentinel_timeout,
 * failover_wait (a duration; 0: none) and replica_fallback (yes|no); the user
 * information before the sentinels' addresses is for the data servers, and
 * a sentinel's port defaults to 26379.
 * Cluster URLs also take read_from (primary|replica|prefer-replica|any|
 * nearest), max_redirects, refresh_period (0 = off), lazy (yes|no) and
 * cross_slot (split|refuse): see aredis_cluster_options.
 * Percent-escapes (%40 for '@') are decoded in the user, password and path.
 *
 * Strings are copied by aredis_client_new(): the struct and what it points
 * to may be freed as soon as it returns. */
#ifndef AREDIS_OPTIONS_H
#define AREDIS_OPTIONS_H

#include <stddef.h>
#include <stdint.h>

#include "export.h"
#include "resp.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct aredis_tls_options {
    /** Use TLS (also set by a rediss:// URL). */
    int enabled;
    /** PEM bundle / hashed directory of trusted CAs; both NULL means the
     * system's default store. */
    const char *ca_file;
    const char *ca_dir;
    /** Client certificate and its private key (PEM), for mutual TLS. */
    const char *cert_file;
    const char *key_file;
    /** Server name for SNI and the host-name check; default: the host. */
    const char *sni;
    /** Skip certificate and host-name verification. Dangerous: anyone on
     * the path can impersonate the server. Off by default. */
    int insecure_skip_verify;
} aredis_tls_options;

/** Which server of a sentinel-managed group a client talks to. */
#define AREDIS_SENTINEL_MASTER 0
#define AREDIS_SENTINEL_REPLICA 1

typedef struct aredis_sentinel_options {
    /** "host[:port],host[:port],..." of the sentinels (port 26379 by
     * default; "[::1]:26379" for IPv6). Setting it (or a redis+sentinel://
     * URL) makes the client sentinel-managed. */
    const char *addrs;
    /** The name the sentinels monitor the group under (their "master
     * name"); required with addrs. */
    const char *service;
    /** AREDIS_SENTINEL_MASTER (default) or AREDIS_SENTINEL_REPLICA. */
    int role;
    /** ACL user and password for the sentinels, separate from the data
     * servers' username and password. */
    const char *username;
    const char *password;
    /** TLS to the sentinels: 0 follows tls.enabled, 1 on, -1 off. The TLS
     * files of `tls` serve both. */
    int tls;
    /** Deadline of one sentinel's answer during discovery, in ms
     * (default 250); the next sentinel is asked after it. */
    int64_t timeout_ms;
    /** How long commands for the master wait for it while it is down or a
     * failover is in progress, in ms (default 10000; AREDIS_NO_WAIT: not
     * at all). Meanwhile they are held, not sent and not failed; when no
     * master is back in time they fail with AREDIS_ENOMASTER, whose
     * message names the cause. Also bounds the write fence of a graceful
     * failover (docs/guide/sentinel.md). */
    int64_t failover_wait_ms;
    /** role=replica: send to the master while no replica is healthy
     * (default 0: such commands fail with AREDIS_ECLOSED, "no server is
     * known for this command"). */
    int replica_fallback;
} aredis_sentinel_options;

/** aredis_sentinel_options.failover_wait_ms: fail at once. */
#define AREDIS_NO_WAIT (-1)

/** Where a cluster client sends read-only commands
 * (aredis_cluster_options.read_from). Writes always go to the primary. */
#define AREDIS_READ_PRIMARY 0 /* the slot's primary (default) */
#define AREDIS_READ_REPLICA \
    1 /* its replicas in turn; the primary when none is up */
#define AREDIS_READ_ANY 2     /* its primary and replicas in turn */
#define AREDIS_READ_NEAREST 3 /* the one with the lowest measured latency */

/** Multi-key commands whose keys live in several slots
 * (aredis_cluster_options.cross_slot). */
#define AREDIS_CROSS_SLOT_SPLIT 0  /* split per slot, reassembled (default) */
#define AREDIS_CROSS_SLOT_REFUSE 1 /* refused before sending (CROSSSLOT) */

typedef struct aredis_cluster_options {
    /** "host[:port],host[:port],..." of some of the cluster's nodes (port
     * 6379 by default; "[::1]:7000" for IPv6). Setting it (or a
     * redis+cluster:// URL) makes the client a cluster client. */
    const char *seeds;
    /** AREDIS_READ_PRIMARY (default), _REPLICA, _ANY or _NEAREST. */
    int read_from;
    /** MOVED/ASK redirects one command may follow before it fails
     * (default 5). */
    int max_redirects;
    /** Refresh the slot map this often, in ms, besides the refreshes that
     * MOVED, CLUSTERDOWN and a lost node trigger (default 5000; < 0:
     * never). */
    int64_t refresh_period_ms;
    /** 1: connect and fetch the slot map with the first command; 0
     * (default): at once, from the loop, when the client is created.
     * Either way, the first commands wait for the map. */
    int lazy;
    /** AREDIS_CROSS_SLOT_SPLIT (default) or AREDIS_CROSS_SLOT_REFUSE. */
    int cross_slot;
} aredis_cluster_options;

typedef struct aredis_options {
    /** A redis://, rediss:// or unix:// URL; NULL to use the members.
     * redis+cluster://h1:p1,h2:p2 or rediss+cluster://: a Redis Cluster
     * given by seed nodes (docs/guide/connecting.md). */
    const char *url;
    /** Host name or address literal (default "127.0.0.1"), and port
     * (default 6379). */
    const char *host;
    int port;
    /** Unix socket path; takes precedence over host/port. */
    const char *path;
    /** ACL user (NULL: "default" when a password is set) and password. */
    const char *username;
    const char *password;
    /** Database selected on every connect (default 0). */
    int db;
    /** CLIENT SETNAME on every connect; NULL for none. */
    const char *client_name;
    /** 0: try HELLO 3, fall back to RESP2; 2 or 3 to insist on one. */
    int protocol;
    /** Connect + handshake deadline in ms (default 5000; <0: none). */
    int64_t connect_timeout_ms;
    /** Default per-command deadline in ms (default 0: none). For a
     * blocking command (BLPOP, BLMOVE, BZPOPMIN, BLMPOP, WAIT, WAITAOF,
     * XREAD/XREADGROUP BLOCK...) it is a margin added to the command's own
     * timeout argument, so BLPOP key 2 with 100 here gets 2,100 ms: the
     * server's nil comes first, and a stalled server still fails it with
     * AREDIS_ETIMEDOUT. A blocking command without a limit (BLPOP key 0)
     * gets no deadline from this option; give it a per-call one
     * (aredis_cmd_opts.timeout_ms, the whole deadline) to bound it.
     * A command that times out before any of its bytes were written is
     * never sent; one that times out after may still run. */
    int64_t command_timeout_ms;
    /** TCP keepalive: idle seconds before probes (0: off), probe interval
     * (default 10 s) and count (default 3). */
    int keepalive_idle_s;
    int keepalive_interval_s;
    int keepalive_count;
    /** Leave Nagle's algorithm on (TCP_NODELAY is set by default). */
    int tcp_nagle;
    /** Reshape RESP2 replies into their RESP3 forms (HGETALL and CONFIG
     * GET as maps, ZRANGE ... WITHSCORES as pairs with doubles, ...), so a
     * program sees the same types from Redis 5 and Redis 7. */
    int normalize_resp2;
    aredis_tls_options tls;
    /** Limits applied to the server's replies (see aredis_reader_limits). */
    aredis_reader_limits limits;

    /* ---- resilience (see docs/guide/resilience.md) ---------------------- */

    /** Reconnection after a lost or failed connection: attempts per outage
     * (0: the default, 3; -1: forever; AREDIS_NO_RECONNECT: never). A lost
     * connection that was working is retried at once; after a failed
     * attempt the wait grows (capped exponential backoff with jitter)
     * from reconnect_initial_ms (default 100) up to reconnect_max_ms
     * (default 5000). When the attempts of an outage are spent, commands
     * waiting for the connection fail with the last error (a command that
     * had been written before, kept to be re-sent, with AREDIS_EUNKNOWN);
     * the next command starts a new round. */
    int reconnect_max_attempts;
    int64_t reconnect_initial_ms;
    int64_t reconnect_max_ms;
    /** Commands accepted while disconnected (default 100000; -1: no bound).
     * When full: AREDIS_QUEUE_FAIL (default) completes new commands at once
     * with AREDIS_EBUSY; AREDIS_QUEUE_WAIT accepts them anyway, and they
     * fail at their own deadline if the connection is not back by then. */
    int64_t max_queued;
    int queue_full;
    /** Re-send commands that were written but not answered when a
     * connection dropped, if they are read-only (GET, MGET, HGETALL...).
     * Others fail with AREDIS_EUNKNOWN unless marked idempotent per call
     * (AREDIS_CMD_IDEMPOTENT). Off by default: never re-send silently. */
    int retry_read_only;
    /** Exclusive connections (blocking commands but WAIT and WAITAOF,
     * which stay on the connection of the writes they wait for; a
     * pipeline's WATCH; borrowed connections): at most pool_max (default 8) per
     * server; a caller waits pool_wait_ms for one (default 5000, then
     * AREDIS_EPOOL); idle ones close after pool_idle_ms (default 60000). */
    int pool_max;
    int64_t pool_wait_ms;
    int64_t pool_idle_ms;

    /** A sentinel-managed group (see aredis_sentinel_options). */
    aredis_sentinel_options sentinel;
    /** A Redis Cluster (see aredis_cluster_options). */
    aredis_cluster_options cluster;
} aredis_options;

#define AREDIS_NO_RECONNECT (-2)
#define AREDIS_QUEUE_FAIL 0
#define AREDIS_QUEUE_WAIT 1

#ifdef __cplusplus
}
#endif

#endif /* AREDIS_OPTIONS_H */
