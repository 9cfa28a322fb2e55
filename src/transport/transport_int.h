/* Private to the transport folder: how tcp.c hands a connected socket to
 * tls.c, and the TLS context that a caller could build once per
 * configuration and reuse for every connection.
 *
 * Layers above use transport/transport.h only. */
#ifndef AREDIS_TRANSPORT_TRANSPORT_INT_H
#define AREDIS_TRANSPORT_TRANSPORT_INT_H

#include <stddef.h>
#include <stdint.h>

#include "transport/transport.h"

/* Room for a transport's error message, and for a peer's name. */
#define AREDIS__ERRMSG_MAX 160
#define AREDIS__PEER_MAX 116

/* "127.0.0.1:6379", "[::1]:6379" or the socket path: the peer of a TCP or
 * Unix transport, for messages, written to buf (AREDIS__PEER_MAX bytes),
 * which is returned. */
const char *aredis__tcp_peer(const aredis__transport *t, char *buf);

/* The buffer for t's error message (AREDIS__ERRMSG_MAX bytes), allocated
 * at the first failure and freed by close, with t->errmsg pointing to it;
 * NULL when out of memory (t->errmsg then says so). */
char *aredis__transport_errbuf(aredis__transport *t);

/* TCP_INFO's count of bytes the peer acknowledged on socket fd
 * (tcpinfo.c, apart because <linux/tcp.h> and <netinet/tcp.h> cannot
 * meet in one file). 0 and *acked, or AREDIS_ENOTSUP where the system
 * has no such count. */
int aredis__tcp_bytes_acked(int fd, uint64_t *acked);

#ifdef AREDIS_HAVE_TLS

/* An SSL_CTX built from a configuration's tls_* settings: protocol
 * versions, trusted CAs, verification mode, client certificate. Shared by
 * reference count; every transport made from it holds a reference. */
typedef struct aredis__tls_ctx aredis__tls_ctx;

/* Build a context. Errors: AREDIS_ETLS (unreadable CA, certificate or key;
 * a key that does not match its certificate) or AREDIS_ENOMEM, with a
 * message in err. */
int aredis__tls_ctx_new(const aredis__config *cfg, aredis__tls_ctx **out,
                        char *err, size_t errlen);
/* Drop the caller's reference. NULL is a no-op. */
void aredis__tls_ctx_release(aredis__tls_ctx *ctx);

/* Wrap a freshly connecting TCP or Unix transport in TLS. On success the
 * TLS transport owns `inner` (its descriptor becomes the TLS transport's)
 * and takes its own reference on ctx. On failure inner is closed too.
 * The host name checked and sent as SNI is cfg->tls_sni, else cfg->host.
 * Errors: AREDIS_ETLS, AREDIS_ENOMEM. */
int aredis__tls_wrap(aredis__tls_ctx *ctx, const aredis__config *cfg,
                     aredis__transport *inner, aredis__transport **out,
                     char *err, size_t errlen);

#endif /* AREDIS_HAVE_TLS */

#endif /* AREDIS_TRANSPORT_TRANSPORT_INT_H */
