/* TCP (IPv4, IPv6) and Unix stream transports (transport layer).
 *
 * A non-blocking socket with the configuration's options, a non-blocking
 * connect finished by handshake(), and recv/send (sendmsg to gather) for
 * the byte stream.
 * With cfg->blocking_reads (the blocking facade) the connected socket is
 * switched to blocking mode, every ordinary call passes MSG_DONTWAIT, and
 * read_wait() alone blocks, bounded by SO_RCVTIMEO.
 * aredis__transport_connect() is the one entry point of the layer: with
 * cfg->tls it hands the connecting socket to tls.c.
 *
 * Nothing here blocks or sleeps, and no write can raise SIGPIPE
 * (MSG_NOSIGNAL): the library must not kill a program whose server went
 * away. This file does not touch the loop; the caller watches the fd. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "aredis/error.h"
#include "transport/transport.h"
#include "transport/transport_int.h"
#include "util/alloc.h"
#include "util/msg.h"

typedef struct tcp_transport {
    aredis__transport base;
    /* The connect() is still in flight: handshake() has not seen it end. */
    unsigned char connecting;
    /* cfg->blocking_reads without TLS: the socket becomes blocking once
     * connected (`blocking`), and read_wait() may wait in recv(). */
    unsigned char want_blocking, blocking;
    /* The peer is a socket path (peer.path), not an address. */
    unsigned char is_unix;
    /* SO_RCVTIMEO as last set, in ms (0: none, a wait without limit). */
    int rcvtimeo_ms;
    /* Who we talk to, named only in messages (aredis__tcp_peer): the
     * address, or the socket path (the configuration's, which outlives
     * every transport made from it). Kept raw: an idle connection does
     * not carry its text. */
    union {
        struct sockaddr sa;
        struct sockaddr_in in4;
        struct sockaddr_in6 in6;
        const char *path;
    } peer;
} tcp_transport;
_Static_assert(sizeof(void *) != 8 || sizeof(tcp_transport) <= 72,
               "a transport per connection: keep it in an 80-byte block");

/* The error code for a failed connect, whether connect() said so at once
 * or SO_ERROR said so later. A missing socket file means nobody listens,
 * just like a closed port. */
static int connect_code(int e)
{
    switch (e) {
    case ECONNREFUSED:
    case ENOENT:
        return AREDIS_ECONNREFUSED;
    case ETIMEDOUT:
        return AREDIS_ETIMEDOUT;
    default:
        return AREDIS_EIO;
    }
}

/* The error code for a failed read or write. A reset, a broken pipe and a
 * keepalive that gave up all mean the peer is gone. */
static int io_code(int e)
{
    switch (e) {
    case ECONNRESET:
    case EPIPE:
    case ENOTCONN:
    case ETIMEDOUT:
        return AREDIS_ECLOSED;
    default:
        return AREDIS_EIO;
    }
}

const char *aredis__tcp_peer(const aredis__transport *bt, char *buf)
{
    const tcp_transport *t = (const tcp_transport *)bt;
    char ip[INET6_ADDRSTRLEN];
    if (t->is_unix) {
        snprintf(buf, AREDIS__PEER_MAX, "%s", t->peer.path);
    } else if (t->peer.sa.sa_family == AF_INET) {
        inet_ntop(AF_INET, &t->peer.in4.sin_addr, ip, sizeof ip);
        snprintf(buf, AREDIS__PEER_MAX, "%s:%u", ip,
                 (unsigned)ntohs(t->peer.in4.sin_port));
    } else {
        inet_ntop(AF_INET6, &t->peer.in6.sin6_addr, ip, sizeof ip);
        snprintf(buf, AREDIS__PEER_MAX, "[%s]:%u", ip,
                 (unsigned)ntohs(t->peer.in6.sin6_port));
    }
    return buf;
}

char *aredis__transport_errbuf(aredis__transport *t)
{
    if (t->errbuf == NULL) {
        t->errbuf = aredis__malloc(AREDIS__ERRMSG_MAX);
        if (t->errbuf == NULL) {
            t->errmsg = "out of memory (describing a transport error)";
            return NULL;
        }
        t->errbuf[0] = '\0';
    }
    t->errmsg = t->errbuf;
    return t->errbuf;
}

static void describe_peer(tcp_transport *t, const struct sockaddr *sa,
                          const char *path)
{
    t->is_unix = path != NULL;
    if (path != NULL)
        t->peer.path = path;
    else if (sa->sa_family == AF_INET)
        memcpy(&t->peer.in4, sa, sizeof t->peer.in4);
    else if (sa->sa_family == AF_INET6)
        memcpy(&t->peer.in6, sa, sizeof t->peer.in6);
}

/* ------------------------------------------------------------------------
 * The vtable
 * ------------------------------------------------------------------------ */

/* The connect is done. One fcntl per connection buys a wait for a reply
 * at no extra system call (read_wait). A socket that refuses stays
 * non-blocking: the loop then polls as it does for everyone else. */
static int connected(tcp_transport *t)
{
    t->connecting = 0;
    if (t->want_blocking && !t->blocking) {
        int fl = fcntl(t->base.fd, F_GETFL);
        t->blocking =
            fl >= 0 && fcntl(t->base.fd, F_SETFL, fl & ~O_NONBLOCK) == 0;
    }
    return 0;
}

static int tcp_handshake(aredis__transport *bt)
{
    char pb[AREDIS__PEER_MAX];
    tcp_transport *t = (tcp_transport *)bt;
    if (!t->connecting)
        return connected(t);
    /* Only writability says the connect ended; SO_ERROR alone reads 0
     * while it is still in flight. A zero-timeout poll never blocks. */
    struct pollfd p = {.fd = bt->fd, .events = POLLOUT, .revents = 0};
    int n;
    do {
        n = poll(&p, 1, 0);
    } while (n < 0 && errno == EINTR);
    if (n == 0)
        return AREDIS__WANT_WRITE;
    int e = 0;
    socklen_t len = sizeof e;
    if (n < 0 || getsockopt(bt->fd, SOL_SOCKET, SO_ERROR, &e, &len) != 0)
        e = errno;
    if (e == EINPROGRESS || e == EALREADY)
        return AREDIS__WANT_WRITE;
    if (e != 0)
        return aredis__msgc(aredis__transport_errbuf(bt), AREDIS__ERRMSG_MAX,
                            connect_code(e), "connect to %s: %s",
                            aredis__tcp_peer(&t->base, pb), strerror(e));
    return connected(t);
}

static ssize_t read_error(aredis__transport *bt, int e)
{
    char pb[AREDIS__PEER_MAX];
    return aredis__msgc(aredis__transport_errbuf(bt), AREDIS__ERRMSG_MAX,
                        io_code(e), "read from %s: %s",
                        aredis__tcp_peer(bt, pb), strerror(e));
}

static ssize_t tcp_read(aredis__transport *bt, char *buf, size_t n)
{
    for (;;) {
        ssize_t r = recv(bt->fd, buf, n, MSG_DONTWAIT);
        if (r >= 0)
            return r;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return AREDIS__WANT_READ;
        return read_error(bt, errno);
    }
}

/* Make SO_RCVTIMEO fit a wait of timeout_ms (-1: none). A limit that is
 * already no longer than the wait and at least half of it is kept: a wait
 * that ends early costs a loop turn, a setsockopt per call would cost a
 * system call per command for a program with a constant deadline. */
static int fit_rcvtimeo(tcp_transport *t, int timeout_ms)
{
    int want = timeout_ms < 0 ? 0 : timeout_ms;
    if (t->rcvtimeo_ms == want ||
        (want > 0 && t->rcvtimeo_ms > 0 && t->rcvtimeo_ms <= want &&
         t->rcvtimeo_ms >= want / 2))
        return 0;
    struct timeval tv = {.tv_sec = want / 1000,
                         .tv_usec = (suseconds_t)(want % 1000) * 1000};
    if (setsockopt(t->base.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0)
        return -1;
    t->rcvtimeo_ms = want;
    return 0;
}

static ssize_t tcp_read_wait(aredis__transport *bt, char *buf, size_t n,
                             int timeout_ms)
{
    tcp_transport *t = (tcp_transport *)bt;
    if (!t->blocking || t->connecting)
        return AREDIS_ENOTSUP;
    if (timeout_ms == 0)
        return tcp_read(bt, buf, n);
    if (fit_rcvtimeo(t, timeout_ms) != 0)
        return AREDIS_ENOTSUP;
    ssize_t r = recv(bt->fd, buf, n, 0);
    if (r >= 0)
        return r;
    /* The limit (EAGAIN) or a signal (EINTR): the caller's loop looks at
     * its timers and waits again. */
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
        return AREDIS__WANT_READ;
    return read_error(bt, errno);
}

static int tcp_acked(aredis__transport *bt, uint64_t *acked)
{
    return aredis__tcp_bytes_acked(bt->fd, acked);
}

static ssize_t tcp_writev(aredis__transport *bt, const struct iovec *iov, int n)
{
    char pb[AREDIS__PEER_MAX];
    if (n <= 0)
        return 0;
    struct msghdr msg;
    memset(&msg, 0, sizeof msg);
    /* More than IOV_MAX pieces is a short write, which callers handle. */
    msg.msg_iov = (struct iovec *)iov;
    msg.msg_iovlen = (size_t)(n > IOV_MAX ? IOV_MAX : n);
    for (;;) {
        /* One piece (the connection's output buffer, every time) goes
         * through send(): the kernel then copies no message header and
         * imports no vector, a cost paid per command at low load. */
        ssize_t w = n == 1 ? send(bt->fd, iov[0].iov_base, iov[0].iov_len,
                                  MSG_NOSIGNAL | MSG_DONTWAIT)
                           : sendmsg(bt->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w >= 0)
            return w;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return AREDIS__WANT_WRITE;
        int e = errno;
        return aredis__msgc(aredis__transport_errbuf(bt), AREDIS__ERRMSG_MAX,
                            io_code(e), "write to %s: %s",
                            aredis__tcp_peer(bt, pb), strerror(e));
    }
}

static void tcp_close(aredis__transport *bt)
{
    if (bt == NULL)
        return;
    if (bt->fd >= 0)
        close(bt->fd);
    aredis__free(bt->errbuf);
    aredis__free(bt);
}

static const aredis__transport_vtbl tcp_vtbl = {
    .name = "tcp",
    .handshake = tcp_handshake,
    .read = tcp_read,
    .writev = tcp_writev,
    .read_wait = tcp_read_wait,
    .acked = tcp_acked,
    .close = tcp_close,
};

/* A Unix socket needs no acknowledgement count: a write to one whose peer
 * has closed fails (EPIPE), so the bytes are known unsent. */
static const aredis__transport_vtbl unix_vtbl = {
    .name = "unix",
    .handshake = tcp_handshake,
    .read = tcp_read,
    .writev = tcp_writev,
    .read_wait = tcp_read_wait,
    .acked = NULL,
    .close = tcp_close,
};

/* ------------------------------------------------------------------------
 * Connecting
 * ------------------------------------------------------------------------ */

static int set_int_opt(tcp_transport *t, int level, int name, const char *what,
                       int val, char *err, size_t errlen)
{
    char pb[AREDIS__PEER_MAX];
    if (setsockopt(t->base.fd, level, name, &val, sizeof val) == 0)
        return 0;
    int e = errno;
    return aredis__msgc(err, errlen, AREDIS_EIO, "setsockopt(%s) for %s: %s",
                        what, aredis__tcp_peer(&t->base, pb), strerror(e));
}

static int set_tcp_options(tcp_transport *t, const aredis__config *cfg,
                           char *err, size_t errlen)
{
    int rc = 0;
    if (cfg->nodelay)
        rc = set_int_opt(t, IPPROTO_TCP, TCP_NODELAY, "TCP_NODELAY", 1, err,
                         errlen);
    if (rc != 0 || cfg->keepalive_idle_s <= 0)
        return rc;
    /* The kernel's defaults (2 hours idle) are useless for noticing a dead
     * server, so the configured values are always set together. */
    if ((rc = set_int_opt(t, SOL_SOCKET, SO_KEEPALIVE, "SO_KEEPALIVE", 1, err,
                          errlen)) != 0 ||
        (rc = set_int_opt(t, IPPROTO_TCP, TCP_KEEPIDLE, "TCP_KEEPIDLE",
                          cfg->keepalive_idle_s, err, errlen)) != 0)
        return rc;
    if (cfg->keepalive_interval_s > 0 &&
        (rc = set_int_opt(t, IPPROTO_TCP, TCP_KEEPINTVL, "TCP_KEEPINTVL",
                          cfg->keepalive_interval_s, err, errlen)) != 0)
        return rc;
    if (cfg->keepalive_count > 0)
        rc = set_int_opt(t, IPPROTO_TCP, TCP_KEEPCNT, "TCP_KEEPCNT",
                         cfg->keepalive_count, err, errlen);
    return rc;
}

/* Socket, options and a connect() that is either done or in flight. */
static int open_socket(tcp_transport *t, const aredis__config *cfg,
                       const struct sockaddr *addr, socklen_t addrlen,
                       char *err, size_t errlen)
{
    char pb[AREDIS__PEER_MAX];
    t->base.fd =
        socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (t->base.fd < 0) {
        int e = errno;
        return aredis__msgc(err, errlen, AREDIS_EIO, "socket for %s: %s",
                            aredis__tcp_peer(&t->base, pb), strerror(e));
    }
    if (addr->sa_family != AF_UNIX) {
        int rc = set_tcp_options(t, cfg, err, errlen);
        if (rc != 0)
            return rc;
    }
    if (connect(t->base.fd, addr, addrlen) == 0)
        return 0;
    /* EINTR: a non-blocking connect carries on in the background. */
    if (errno == EINPROGRESS || errno == EINTR) {
        t->connecting = 1;
        return 0;
    }
    int e = errno;
    return aredis__msgc(err, errlen, connect_code(e), "connect to %s: %s",
                        aredis__tcp_peer(&t->base, pb), strerror(e));
}

static int wrap_tls(const aredis__config *cfg, tcp_transport *t,
                    aredis__transport **out, char *err, size_t errlen)
{
#ifdef AREDIS_HAVE_TLS
    aredis__tls_ctx *ctx = NULL;
    int rc = aredis__tls_ctx_new(cfg, &ctx, err, errlen);
    if (rc != 0) {
        tcp_close(&t->base);
        return rc;
    }
    rc = aredis__tls_wrap(ctx, cfg, &t->base, out, err, errlen);
    aredis__tls_ctx_release(ctx);
    return rc;
#else
    (void)cfg;
    (void)out;
    tcp_close(&t->base);
    return aredis__msgc(err, errlen, AREDIS_ENOTSUP,
                        "TLS was asked for, but this aredis was built without "
                        "TLS support");
#endif
}

int aredis__transport_connect(const aredis__config *cfg,
                              const struct sockaddr *addr, socklen_t addrlen,
                              aredis__transport **out, char *err, size_t errlen)
{
    struct sockaddr_un sun;
    *out = NULL;
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (cfg->path != NULL) {
        size_t n = strlen(cfg->path);
        if (n == 0 || n >= sizeof sun.sun_path)
            return aredis__msgc(err, errlen, AREDIS_EINVAL,
                                "unix socket path of %zu bytes (1 to %zu)", n,
                                sizeof sun.sun_path - 1);
        memset(&sun, 0, sizeof sun);
        sun.sun_family = AF_UNIX;
        memcpy(sun.sun_path, cfg->path, n + 1);
        addr = (const struct sockaddr *)&sun;
        addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
    } else if (addr == NULL ||
               (addr->sa_family != AF_INET && addr->sa_family != AF_INET6)) {
        return aredis__msgc(err, errlen, AREDIS_EINVAL,
                            "connect: no IPv4 or IPv6 address given");
    }

    tcp_transport *t = aredis__calloc(1, sizeof *t);
    if (t == NULL)
        return aredis__msgc(err, errlen, AREDIS_ENOMEM, "out of memory");
    t->base.vt = cfg->path != NULL ? &unix_vtbl : &tcp_vtbl;
    t->base.fd = -1;
    t->base.errmsg = "";
    t->want_blocking = cfg->blocking_reads && !cfg->tls;
    describe_peer(t, addr, cfg->path);

    int rc = open_socket(t, cfg, addr, addrlen, err, errlen);
    if (rc != 0) {
        tcp_close(&t->base);
        return rc;
    }
    if (cfg->tls)
        return wrap_tls(cfg, t, out, err, errlen);
    *out = &t->base;
    return 0;
}
