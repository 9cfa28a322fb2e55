/* TLS over a TCP or Unix transport, with OpenSSL 3 (transport layer).
 *
 * The TLS transport owns the connecting socket transport beneath it:
 * handshake() first finishes that connect, then drives SSL_do_handshake()
 * without blocking. OpenSSL reads and writes the socket through a small BIO
 * of our own rather than a socket BIO, because OpenSSL's writes with
 * write(2) and a vanished server would raise SIGPIPE in the program.
 *
 * Security defaults: TLS 1.2 or newer, the server's certificate verified
 * against the configured CAs (else the system store), and its name checked
 * against the host (or tls_sni): DNS names with SSL_set1_host(), address
 * literals against the certificate's IP SANs. tls_insecure turns all of
 * that off. Nothing here may prompt: a key with a passphrase fails. */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "aredis/error.h"
#include "transport/transport.h"
#include "transport/transport_int.h"
#include "util/alloc.h"
#include "util/msg.h"

/* Small pieces of a writev are copied into one buffer of this size (the
 * largest TLS record's payload), so a pipeline of tiny commands becomes
 * one record rather than one record per command. */
#define TLS_COALESCE 16384

enum tls_state {
    TLS_ST_CONNECT,   /* the socket's connect is in flight */
    TLS_ST_HANDSHAKE, /* SSL_do_handshake() has not finished */
    TLS_ST_OPEN,
    TLS_ST_FAILED, /* handshake failed; handshake() repeats the error */
};

typedef struct tls_transport {
    aredis__transport base;
    aredis__transport *inner;
    SSL *ssl;
    enum tls_state state;
    int failed_code;
    /* A fatal TLS error happened: OpenSSL forbids SSL_shutdown() then. */
    int fatal;
    /* errno of the BIO's last failed send/recv, for SSL_ERROR_SYSCALL. */
    int io_errno;
} tls_transport;

/* The oldest queued OpenSSL error (usually the root cause), as text, and
 * an empty queue afterwards. */
static const char *ssl_errtext(char *buf, size_t len, const char *dflt)
{
    unsigned long e = ERR_get_error();
    if (e == 0)
        snprintf(buf, len, "%s", dflt);
    else
        ERR_error_string_n(e, buf, len);
    ERR_clear_error();
    return buf;
}

/* ------------------------------------------------------------------------
 * The BIO: plain send/recv on the transport's descriptor
 * ------------------------------------------------------------------------ */

static int bio_write(BIO *b, const char *buf, int len)
{
    tls_transport *t = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    ssize_t n;
    do {
        n = send(t->base.fd, buf, (size_t)len, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    if (n >= 0)
        return (int)n;
    if (errno == EAGAIN || errno == EWOULDBLOCK)
        BIO_set_retry_write(b);
    else
        t->io_errno = errno;
    return -1;
}

static int bio_read(BIO *b, char *buf, int len)
{
    tls_transport *t = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    ssize_t n;
    do {
        n = recv(t->base.fd, buf, (size_t)len, 0);
    } while (n < 0 && errno == EINTR);
    if (n >= 0)
        return (int)n;
    if (errno == EAGAIN || errno == EWOULDBLOCK)
        BIO_set_retry_read(b);
    else
        t->io_errno = errno;
    return -1;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)b;
    (void)num;
    (void)ptr;
    /* Writes go straight to the socket, so there is never anything to
     * flush; every other control is unsupported. */
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static BIO_METHOD *g_bio_method;
static pthread_once_t g_bio_once = PTHREAD_ONCE_INIT;

static void bio_method_init(void)
{
    BIO_METHOD *m =
        BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "aredis");
    if (m == NULL)
        return;
    if (!BIO_meth_set_write(m, bio_write) || !BIO_meth_set_read(m, bio_read) ||
        !BIO_meth_set_ctrl(m, bio_ctrl)) {
        BIO_meth_free(m);
        return;
    }
    /* Lives as long as the process, like OpenSSL's own methods. */
    g_bio_method = m;
}

/* ------------------------------------------------------------------------
 * Context
 * ------------------------------------------------------------------------ */

/* Never ask for a passphrase: OpenSSL's default would read the terminal. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return 0;
}

static int load_trust(SSL_CTX *c, const aredis__config *cfg, char *err,
                      size_t errlen)
{
    char text[200];
    if (cfg->more->tls_insecure) {
        SSL_CTX_set_verify(c, SSL_VERIFY_NONE, NULL);
        return 0;
    }
    SSL_CTX_set_verify(c, SSL_VERIFY_PEER, NULL);
    /* OpenSSL looks into a CA directory only during a handshake, and takes
     * one it cannot read for an empty one: the failure would read "self-
     * signed certificate" or "unable to get local issuer certificate". */
    const char *dir = cfg->more->tls_ca_dir;
    struct stat sb;
    int bad = 0;
    if (dir != NULL && stat(dir, &sb) != 0)
        bad = errno;
    else if (dir != NULL && !S_ISDIR(sb.st_mode))
        bad = ENOTDIR;
    if (bad != 0)
        return aredis__msgc(err, errlen, AREDIS_ETLS,
                            "TLS: cannot use the CA directory '%s': %s", dir,
                            strerror(bad));
    if (cfg->more->tls_ca_file != NULL || cfg->more->tls_ca_dir != NULL) {
        if (SSL_CTX_load_verify_locations(c, cfg->more->tls_ca_file,
                                          cfg->more->tls_ca_dir) != 1)
            return aredis__msgc(
                err, errlen, AREDIS_ETLS, "TLS: cannot load the CA %s '%s': %s",
                cfg->more->tls_ca_file ? "file" : "directory",
                cfg->more->tls_ca_file ? cfg->more->tls_ca_file
                                       : cfg->more->tls_ca_dir,
                ssl_errtext(text, sizeof text, "unknown error"));
    } else if (SSL_CTX_set_default_verify_paths(c) != 1) {
        return aredis__msgc(err, errlen, AREDIS_ETLS,
                            "TLS: cannot load the system's CA store: %s",
                            ssl_errtext(text, sizeof text, "unknown error"));
    }
    return 0;
}

static int load_client_cert(SSL_CTX *c, const aredis__config *cfg, char *err,
                            size_t errlen)
{
    char text[200];
    if (cfg->more->tls_cert_file == NULL)
        return 0;
    /* A key in the certificate's own file is common: use it then. */
    const char *key = cfg->more->tls_key_file ? cfg->more->tls_key_file
                                              : cfg->more->tls_cert_file;
    if (SSL_CTX_use_certificate_chain_file(c, cfg->more->tls_cert_file) != 1)
        return aredis__msgc(err, errlen, AREDIS_ETLS,
                            "TLS: cannot load the certificate '%s': %s",
                            cfg->more->tls_cert_file,
                            ssl_errtext(text, sizeof text, "unknown error"));
    if (SSL_CTX_use_PrivateKey_file(c, key, SSL_FILETYPE_PEM) != 1)
        return aredis__msgc(err, errlen, AREDIS_ETLS,
                            "TLS: cannot load the private key '%s': %s", key,
                            ssl_errtext(text, sizeof text, "unknown error"));
    if (SSL_CTX_check_private_key(c) != 1)
        return aredis__msgc(err, errlen, AREDIS_ETLS,
                            "TLS: the private key '%s' does not match the "
                            "certificate '%s'",
                            key, cfg->more->tls_cert_file);
    return 0;
}

/* The context is an SSL_CTX under another name, so that its own reference
 * count does the sharing: SSL_new() takes a reference, SSL_free() drops
 * it. */
int aredis__tls_ctx_new(const aredis__config *cfg, aredis__tls_ctx **out,
                        char *err, size_t errlen)
{
    char text[200];
    *out = NULL;
    ERR_clear_error();
    SSL_CTX *c = SSL_CTX_new(TLS_client_method());
    if (c == NULL)
        return aredis__msgc(err, errlen, AREDIS_ETLS,
                            "TLS: cannot create a context: %s",
                            ssl_errtext(text, sizeof text, "out of memory"));
    /* TLS 1.0 and 1.1 are deprecated (RFC 8996); Redis 6+ speaks 1.2+. */
    SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
    SSL_CTX_set_mode(c, SSL_MODE_ENABLE_PARTIAL_WRITE |
                            SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_options(c, SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_default_passwd_cb(c, no_passphrase);
    int rc = load_trust(c, cfg, err, errlen);
    if (rc == 0)
        rc = load_client_cert(c, cfg, err, errlen);
    if (rc != 0) {
        SSL_CTX_free(c);
        ERR_clear_error();
        return rc;
    }
    *out = (aredis__tls_ctx *)c;
    return 0;
}

void aredis__tls_ctx_release(aredis__tls_ctx *ctx)
{
    SSL_CTX_free((SSL_CTX *)ctx);
}

/* ------------------------------------------------------------------------
 * The vtable
 * ------------------------------------------------------------------------ */

static const char *peer_of(const tls_transport *t, char *buf)
{
    return aredis__tcp_peer(t->inner, buf);
}

/* Why a handshake failed, in the most useful words available: the
 * verification result names the certificate problem exactly. */
static int handshake_failed(tls_transport *t, int sslerr)
{
    char pb[AREDIS__PEER_MAX];
    char text[120];
    long vr = SSL_get_verify_result(t->ssl);
    int code = AREDIS_ETLS;
    t->fatal = 1;
    if (vr != X509_V_OK) {
        ERR_clear_error();
        aredis__msgc(
            aredis__transport_errbuf(&t->base), AREDIS__ERRMSG_MAX, code,
            "TLS handshake with %s failed: certificate verify failed: %s",
            peer_of(t, pb), X509_verify_cert_error_string(vr));
    } else if (sslerr == SSL_ERROR_SYSCALL || sslerr == SSL_ERROR_ZERO_RETURN ||
               ERR_GET_REASON(ERR_peek_error()) ==
                   SSL_R_UNEXPECTED_EOF_WHILE_READING) {
        ERR_clear_error();
        aredis__msgc(aredis__transport_errbuf(&t->base), AREDIS__ERRMSG_MAX,
                     code, "TLS handshake with %s failed: %s", peer_of(t, pb),
                     t->io_errno ? strerror(t->io_errno)
                                 : "the server closed the connection");
    } else {
        aredis__msgc(aredis__transport_errbuf(&t->base), AREDIS__ERRMSG_MAX,
                     code, "TLS handshake with %s failed: %s", peer_of(t, pb),
                     ssl_errtext(text, sizeof text, "unknown error"));
    }
    t->state = TLS_ST_FAILED;
    t->failed_code = code;
    return code;
}

static int tls_handshake(aredis__transport *bt)
{
    tls_transport *t = (tls_transport *)bt;
    if (t->state == TLS_ST_OPEN)
        return 0;
    if (t->state == TLS_ST_FAILED)
        return t->failed_code;
    if (t->state == TLS_ST_CONNECT) {
        int rc = t->inner->vt->handshake(t->inner);
        if (rc == AREDIS__WANT_READ || rc == AREDIS__WANT_WRITE)
            return rc;
        if (rc != 0) {
            aredis__msgc(aredis__transport_errbuf(bt), AREDIS__ERRMSG_MAX, rc,
                         "%s", t->inner->errmsg);
            t->state = TLS_ST_FAILED;
            t->failed_code = rc;
            return rc;
        }
        t->state = TLS_ST_HANDSHAKE;
    }
    ERR_clear_error();
    t->io_errno = 0;
    int r = SSL_do_handshake(t->ssl);
    if (r == 1) {
        t->state = TLS_ST_OPEN;
        return 0;
    }
    int e = SSL_get_error(t->ssl, r);
    if (e == SSL_ERROR_WANT_READ)
        return AREDIS__WANT_READ;
    if (e == SSL_ERROR_WANT_WRITE)
        return AREDIS__WANT_WRITE;
    return handshake_failed(t, e);
}

/* A failed SSL_read/SSL_write that is not a "try again": map it. Returns
 * 0 for an end of stream, else a negative aredis_err. */
static int io_failed(tls_transport *t, int sslerr, const char *what)
{
    char pb[AREDIS__PEER_MAX];
    char text[120];
    if (sslerr == SSL_ERROR_ZERO_RETURN) /* close_notify: a clean end */
        return 0;
    t->fatal = 1;
    if (sslerr == SSL_ERROR_SYSCALL && t->io_errno != 0) {
        int e = t->io_errno;
        int code =
            (e == ECONNRESET || e == EPIPE || e == ETIMEDOUT || e == ENOTCONN)
                ? AREDIS_ECLOSED
                : AREDIS_EIO;
        ERR_clear_error();
        return aredis__msgc(aredis__transport_errbuf(&t->base),
                            AREDIS__ERRMSG_MAX, code, "%s %s: %s", what,
                            peer_of(t, pb), strerror(e));
    }
    /* The server closed the socket without a close_notify, as Redis does
     * when it kills a client. RESP frames itself, so a cut reply cannot
     * pass for a whole one: treat it as an ordinary end of stream. */
    if (sslerr == SSL_ERROR_SYSCALL || ERR_GET_REASON(ERR_peek_error()) ==
                                           SSL_R_UNEXPECTED_EOF_WHILE_READING) {
        ERR_clear_error();
        return 0;
    }
    return aredis__msgc(aredis__transport_errbuf(&t->base), AREDIS__ERRMSG_MAX,
                        AREDIS_ETLS, "TLS %s %s: %s", what, peer_of(t, pb),
                        ssl_errtext(text, sizeof text, "unknown error"));
}

/* Records already decrypted inside OpenSSL do not make the descriptor
 * readable, so a read keeps going while SSL_pending() says some are left:
 * when it returns fewer bytes than asked, nothing is held back here and
 * the next bytes can only come with readability. */
static ssize_t tls_read(aredis__transport *bt, char *buf, size_t n)
{
    char pb[AREDIS__PEER_MAX];
    tls_transport *t = (tls_transport *)bt;
    if (t->state != TLS_ST_OPEN)
        return aredis__msgc(
            aredis__transport_errbuf(bt), AREDIS__ERRMSG_MAX, AREDIS_ESTATE,
            "TLS read from %s before the handshake finished", peer_of(t, pb));
    size_t got = 0;
    while (got < n) {
        size_t want = n - got;
        ERR_clear_error();
        t->io_errno = 0;
        int r =
            SSL_read(t->ssl, buf + got, want > INT_MAX ? INT_MAX : (int)want);
        if (r > 0) {
            got += (size_t)r;
            if (SSL_pending(t->ssl) <= 0)
                break;
            continue;
        }
        int e = SSL_get_error(t->ssl, r);
        if (got > 0) {
            /* Deliver what we have; a lasting condition (end of stream,
             * an error) shows again on the next call. */
            ERR_clear_error();
            break;
        }
        if (e == SSL_ERROR_WANT_READ)
            return AREDIS__WANT_READ;
        if (e == SSL_ERROR_WANT_WRITE)
            return AREDIS__WANT_WRITE;
        return io_failed(t, e, "read from");
    }
    return (ssize_t)got;
}

/* SSL_write() takes one buffer. A first piece of a full record or more is
 * written in place; smaller pieces are gathered into one record. A retry
 * after WANT_WRITE gets the same bytes first and at least as many
 * (callers resend what was not written, perhaps with more after it), which
 * is all OpenSSL asks with SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER. */
static ssize_t tls_writev(aredis__transport *bt, const struct iovec *iov, int n)
{
    char pb[AREDIS__PEER_MAX];
    tls_transport *t = (tls_transport *)bt;
    char gather[TLS_COALESCE];
    if (t->state != TLS_ST_OPEN)
        return aredis__msgc(
            aredis__transport_errbuf(bt), AREDIS__ERRMSG_MAX, AREDIS_ESTATE,
            "TLS write to %s before the handshake finished", peer_of(t, pb));
    int i = 0;
    while (i < n && iov[i].iov_len == 0)
        i++;
    if (i == n)
        return 0;
    const char *p = iov[i].iov_base;
    size_t len = iov[i].iov_len;
    if (len < TLS_COALESCE && i + 1 < n) {
        len = 0;
        for (; i < n && len < TLS_COALESCE; i++) {
            size_t take = iov[i].iov_len;
            if (take > TLS_COALESCE - len)
                take = TLS_COALESCE - len;
            memcpy(gather + len, iov[i].iov_base, take);
            len += take;
        }
        p = gather;
    }
    ERR_clear_error();
    t->io_errno = 0;
    int w = SSL_write(t->ssl, p, len > INT_MAX ? INT_MAX : (int)len);
    if (w > 0)
        return w;
    int e = SSL_get_error(t->ssl, w);
    if (e == SSL_ERROR_WANT_READ)
        return AREDIS__WANT_READ;
    if (e == SSL_ERROR_WANT_WRITE)
        return AREDIS__WANT_WRITE;
    int rc = io_failed(t, e, "write to");
    if (rc == 0) /* the peer said goodbye: nothing more can be written */
        rc = aredis__msgc(aredis__transport_errbuf(bt), AREDIS__ERRMSG_MAX,
                          AREDIS_ECLOSED,
                          "write to %s: the server closed the TLS connection",
                          peer_of(t, pb));
    return rc;
}

static void tls_close(aredis__transport *bt)
{
    tls_transport *t = (tls_transport *)bt;
    if (t == NULL)
        return;
    if (t->ssl != NULL) {
        /* One non-blocking try at a close_notify; never wait for the
         * server's. */
        if (t->state == TLS_ST_OPEN && !t->fatal)
            SSL_shutdown(t->ssl);
        SSL_free(t->ssl);
        ERR_clear_error();
    }
    if (t->inner != NULL)
        t->inner->vt->close(t->inner);
    aredis__free(t->base.errbuf);
    aredis__free(t);
}

/* No read_wait (OpenSSL reads the socket itself) and no acknowledgement
 * count (TLS records do not map onto the command bytes). */
static const aredis__transport_vtbl tls_vtbl = {
    .name = "tls",
    .handshake = tls_handshake,
    .read = tls_read,
    .writev = tls_writev,
    .read_wait = NULL,
    .acked = NULL,
    .close = tls_close,
};

/* ------------------------------------------------------------------------
 * Wrapping a socket
 * ------------------------------------------------------------------------ */

static int is_ip_literal(const char *s)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

/* SNI and the name the certificate must carry. */
static int set_peer_name(tls_transport *t, const aredis__config *cfg, char *err,
                         size_t errlen)
{
    const char *name = cfg->more->tls_sni ? cfg->more->tls_sni : cfg->host;
    if (name == NULL) /* a Unix socket with no tls_sni: no name to check */
        return 0;
    int ip = is_ip_literal(name);
    /* RFC 6066 section 3: SNI carries DNS names only, never addresses. */
    if (!ip && SSL_set_tlsext_host_name(t->ssl, name) != 1)
        goto fail;
    if (cfg->more->tls_insecure)
        return 0;
    if (ip) {
        if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), name) != 1)
            goto fail;
    } else {
        SSL_set_hostflags(t->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        if (SSL_set1_host(t->ssl, name) != 1)
            goto fail;
    }
    return 0;
fail:;
    char text[120];
    return aredis__msgc(err, errlen, AREDIS_ETLS,
                        "TLS: cannot use '%s' as the server name: %s", name,
                        ssl_errtext(text, sizeof text, "unknown error"));
}

int aredis__tls_wrap(aredis__tls_ctx *ctx, const aredis__config *cfg,
                     aredis__transport *inner, aredis__transport **out,
                     char *err, size_t errlen)
{
    char text[120];
    *out = NULL;
    pthread_once(&g_bio_once, bio_method_init);
    tls_transport *t = aredis__calloc(1, sizeof *t);
    if (t == NULL || g_bio_method == NULL) {
        aredis__free(t);
        inner->vt->close(inner);
        return aredis__msgc(err, errlen, AREDIS_ENOMEM, "out of memory");
    }
    t->base.vt = &tls_vtbl;
    t->base.fd = inner->fd;
    t->base.errmsg = "";
    t->inner = inner;
    t->state = TLS_ST_CONNECT;

    int rc = AREDIS_ETLS;
    ERR_clear_error();
    t->ssl = SSL_new((SSL_CTX *)ctx);
    BIO *bio = t->ssl ? BIO_new(g_bio_method) : NULL;
    if (bio == NULL) {
        rc = aredis__msgc(err, errlen, AREDIS_ETLS,
                          "TLS: cannot set up the connection: %s",
                          ssl_errtext(text, sizeof text, "out of memory"));
        goto fail;
    }
    BIO_set_data(bio, t);
    BIO_set_init(bio, 1);
    SSL_set_bio(t->ssl, bio, bio);
    SSL_set_connect_state(t->ssl);
    if ((rc = set_peer_name(t, cfg, err, errlen)) != 0)
        goto fail;
    *out = &t->base;
    return 0;
fail:
    tls_close(&t->base);
    return rc;
}
