/* Interface of the transport layer to the client: byte streams over TCP,
 * Unix sockets and TLS, a non-blocking connect, name resolution off the
 * loop thread, and URL parsing into a resolved configuration.
 *
 * This layer and the loop are the only code that touches file descriptors.
 * Nothing here blocks: every call either completes at once or says which
 * readiness (AREDIS_EV_READ / AREDIS_EV_WRITE) it waits for. */
#ifndef AREDIS_TRANSPORT_TRANSPORT_H
#define AREDIS_TRANSPORT_TRANSPORT_H

#include <netdb.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "aredis/loop.h"
#include "aredis/options.h"

/* ---- configuration --------------------------------------------------- */

/* A server address from a list (the sentinels); host owned. */
typedef struct aredis__endpoint {
    char *host;
    int port;
} aredis__endpoint;

/* The most seeds a cluster URL may list. */
#define AREDIS__MAX_SEEDS 64

/* The options only a TLS, cluster or sentinel client uses, and reply
 * limits other than the defaults; a plain client's configuration has none
 * (more == NULL). */
typedef struct aredis__config_more {
    aredis_reader_limits limits; /* all 0: the reader's defaults */
    char *tls_ca_file, *tls_ca_dir, *tls_cert_file, *tls_key_file, *tls_sni;
    /* A Redis Cluster: its seeds in the URL's order, at least one (host
     * and port are the first seed's). */
    aredis__endpoint *seeds;
    size_t nseeds;
    int64_t cluster_refresh_ms; /* < 0: no periodic refresh */
    /* Sentinel-managed (redis+sentinel:// or sentinel.addrs): nsentinels
     * > 0. The config's host and port are then unused: the sentinels name
     * the data servers. */
    aredis__endpoint *sentinels;
    size_t nsentinels;
    char *sentinel_service;
    char *sentinel_username, *sentinel_password;
    int64_t sentinel_timeout_ms;       /* per sentinel, > 0 */
    int64_t sentinel_failover_wait_ms; /* resolved: >= 0 (0: none) */
    int tls_insecure;
    int cluster_read_from;         /* AREDIS_READ_* */
    int cluster_max_redirects;     /* > 0 */
    int cluster_lazy;              /* 0 or 1 */
    int cluster_cross_slot;        /* AREDIS_CROSS_SLOT_* */
    int sentinel_role;             /* AREDIS_SENTINEL_MASTER or _REPLICA */
    int sentinel_tls;              /* resolved: 0 or 1 */
    int sentinel_replica_fallback; /* 0 or 1 */
} aredis__config_more;

/* Options after URL parsing and defaults, with every string owned.
 * Every client keeps one: the members are grouped by size (pointers and
 * 64-bit values, then ints, then bytes), so that the struct has no
 * padding, and what most clients leave alone is in `more`. */
typedef struct aredis__config {
    char *host; /* NULL for a unix socket */
    char *path; /* unix socket, or NULL */
    char *username, *password, *client_name;
    int64_t connect_timeout_ms; /* < 0: none */
    int64_t command_timeout_ms; /* 0: none */
    /* Resilience, filled by the client from aredis_options (defaults
     * applied there): the disconnected queue, retries and the exclusive
     * pool (the ints below too). Reconnection's are the connections'
     * (conn.h). */
    int64_t max_queued;
    int64_t pool_wait_ms, pool_idle_ms;
    /* Set when tls, cluster or more->nsentinels is, or a reply limit (and
     * then never NULL), else NULL. */
    aredis__config_more *more;

    int port;
    int db;
    int keepalive_idle_s, keepalive_interval_s, keepalive_count;
    int pool_max;
    /* 0 or 1 unless said otherwise. */
    uint8_t protocol; /* 0 (RESP3, RESP2 fallback), 2 or 3 */
    uint8_t nodelay;
    uint8_t normalize_resp2;
    uint8_t tls;
    /* Set by the blocking facade, whose private loop runs only while a call
     * waits: a plain TCP or Unix socket is left in blocking mode once
     * connected (every ordinary call still passes MSG_DONTWAIT), so the
     * loop may wait for a reply inside vt->read_wait() instead of polling
     * first. Ignored with TLS. */
    uint8_t blocking_reads;
    uint8_t queue_full; /* AREDIS_QUEUE_* */
    uint8_t retry_read_only;
    /* A Redis Cluster (a redis+cluster:// or rediss+cluster:// URL): 1,
     * with more->seeds; 0 for a single server. */
    uint8_t cluster;
} aredis__config;

/* cfg->more, or one with every member 0 or NULL when cfg has none. */
static inline const aredis__config_more *aredis__config_more_of(
    const aredis__config *cfg)
{
    static const aredis__config_more none;
    return cfg->more != NULL ? cfg->more : &none;
}

/* Build a configuration from options (URL first, members override).
 * Returns 0, AREDIS_EURL / AREDIS_EINVAL with a message naming what is
 * wrong written to err (errlen bytes, always NUL-terminated), or
 * AREDIS_ENOMEM. On failure cfg holds nothing to free. */
int aredis__config_from_options(aredis__config *cfg, const aredis_options *o,
                                char *err, size_t errlen);
void aredis__config_cleanup(aredis__config *cfg);

/* ---- name resolution -------------------------------------------------- */

typedef struct aredis__resolve aredis__resolve;
/* Called on the loop thread with the addresses (owned by the request,
 * valid during the call) or an error (AREDIS_ERESOLVE with a message). */
typedef void (*aredis__resolve_cb)(void *arg, int status,
                                   const struct addrinfo *ai,
                                   const char *errmsg);

/* Resolve host:port without blocking the loop. Numeric addresses complete
 * without a thread; names are resolved on a short-lived thread that wakes
 * the loop. cb runs exactly once, from the loop, unless cancelled. */
int aredis__resolve_start(aredis_loop *loop, const char *host, int port,
                          aredis__resolve_cb cb, void *arg,
                          aredis__resolve **out);
/* Cancel: cb will not run. Safe until cb has started. */
void aredis__resolve_cancel(aredis__resolve *r);

/* An IPv4 or IPv6 address literal needs no lookup: 1 with its address in
 * *ss (*len bytes), else 0. A caller that connects to literals this way
 * allocates nothing to resolve them. */
int aredis__resolve_literal(const char *host, int port,
                            struct sockaddr_storage *ss, socklen_t *len);

/* ---- streams ---------------------------------------------------------- */

typedef struct aredis__transport aredis__transport;

/* Results of the I/O calls besides byte counts and negative errors. */
#define AREDIS__WANT_READ (-1000)
#define AREDIS__WANT_WRITE (-1001)

typedef struct aredis__transport_vtbl {
    const char *name; /* "tcp", "unix", "tls" */
    /* Drive a connect/handshake. 0 when done; AREDIS__WANT_READ/WRITE to
     * wait; a negative aredis_err with a message in t->errmsg. */
    int (*handshake)(aredis__transport *t);
    /* Bytes read (> 0), 0 at end of stream, WANT_*, or an error. */
    ssize_t (*read)(aredis__transport *t, char *buf, size_t n);
    /* Bytes written (> 0), WANT_*, or an error. */
    ssize_t (*writev)(aredis__transport *t, const struct iovec *iov, int n);
    /* Optional (NULL: not supported): read like `read`, but wait up to
     * timeout_ms (-1: no limit) for bytes to arrive, inside the call;
     * AREDIS__WANT_READ when the time ran out (possibly early: the caller
     * checks its timers and calls again). Only on a transport opened with
     * cfg->blocking_reads; one that cannot wait returns AREDIS_ENOTSUP
     * before touching the socket. */
    ssize_t (*read_wait)(aredis__transport *t, char *buf, size_t n,
                         int timeout_ms);
    /* Optional (NULL: no evidence): how many bytes of the stream written
     * so far the peer's TCP has acknowledged (TCP_INFO). 0 and *acked
     * set, or a negative error when the system cannot say. After the
     * peer's FIN, bytes beyond it never reached the peer before it
     * closed: the server cannot have read them. */
    int (*acked)(aredis__transport *t, uint64_t *acked);
    /* Close the descriptor and free t. */
    void (*close)(aredis__transport *t);
} aredis__transport_vtbl;

struct aredis__transport {
    const aredis__transport_vtbl *vt;
    int fd;
    /* Why the last call failed ("" until one did): errbuf, allocated by
     * the first failure (an idle connection's transport carries no room
     * for a message), or a static text when that allocation failed. */
    const char *errmsg;
    char *errbuf;
};

/* Start a non-blocking connect to one resolved address (TCP) with the
 * config's socket options, or to cfg->path (Unix). The transport returned
 * has the descriptor; drive vt->handshake() on writability until it
 * returns 0. With cfg->tls, the TLS handshake is part of that. Errors:
 * AREDIS_ECONNREFUSED, AREDIS_EIO, AREDIS_ETLS, AREDIS_ENOMEM, with a
 * message in err. */
int aredis__transport_connect(const aredis__config *cfg,
                              const struct sockaddr *addr, socklen_t addrlen,
                              aredis__transport **out, char *err,
                              size_t errlen);

#endif /* AREDIS_TRANSPORT_TRANSPORT_H */
