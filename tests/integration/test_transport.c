/* Integration tests of the transport layer against real redis-servers:
 * name resolution on a real aredis_loop, TCP over IPv4 and IPv6, Unix
 * sockets, refused connections, and TLS with verification, host-name
 * checks, client certificates and protocol mismatches.
 *
 * The servers come from CTest fixtures (tests/CMakeLists.txt): standalone
 * (TCP and a unix socket), ipv6 (also listening on ::1 when the machine has
 * it), tls (TLS only, certificates from tests/support/make-certs.sh) and
 * tls_mutual (the same, but client certificates required). Transports are
 * driven either with poll() and a deadline, or through the loop the way the
 * client drives them. Every wait is bounded: a test can fail, never hang. */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "aredis/alloc.h"
#include "aredis/error.h"
#include "aredis/loop.h"
#include "aredis/resp.h"
#include "loop/loop.h"
#include "testenv.h"
#include "transport/transport.h"

#define DEADLINE_MS 10000

TestSuite(transport, .timeout = 60);

static void load(testenv_server *s, const char *name)
{
    cr_assert_eq(testenv_server_load(s, name), 0, "%s", testenv_errstr());
}

/* A configuration from a URL; the test fails on a parse error. */
static void config(aredis__config *cfg, const char *fmt, ...)
    AREDIS_PRINTF(2, 3);

static void config(aredis__config *cfg, const char *fmt, ...)
{
    char url[1024], err[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(url, sizeof url, fmt, ap);
    va_end(ap);
    aredis_options o = {.url = url};
    int rc = aredis__config_from_options(cfg, &o, err, sizeof err);
    cr_assert_eq(rc, 0, "%s: %s", url, err);
}

static void addr_v4(struct sockaddr_storage *ss, socklen_t *len, int port)
{
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    memset(ss, 0, sizeof *ss);
    s4->sin_family = AF_INET;
    s4->sin_port = htons((uint16_t)port);
    s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    *len = sizeof *s4;
}

/* The test's own server and its IPv4 loopback address. */
static void own_server(testenv_server *s, struct sockaddr_storage *ss,
                       socklen_t *len)
{
    load(s, NULL);
    addr_v4(ss, len, s->port);
}

/* ------------------------------------------------------------------------
 * Driving a transport with poll(), every wait bounded
 * ------------------------------------------------------------------------ */

static void wait_for(aredis__transport *t, int want, long long deadline)
{
    long long left = deadline - testenv_now_ms();
    cr_assert_gt(left, 0, "timed out waiting for the %s transport",
                 t->vt->name);
    struct pollfd p = {.fd = t->fd,
                       .events = want == AREDIS__WANT_READ ? POLLIN : POLLOUT,
                       .revents = 0};
    int n = poll(&p, 1, (int)left);
    cr_assert_geq(n, 0, "poll: %s", strerror(errno));
}

/* Finish the connect (and TLS handshake): 0 or the error. */
static int handshake(aredis__transport *t)
{
    long long deadline = testenv_now_ms() + DEADLINE_MS;
    for (;;) {
        int rc = t->vt->handshake(t);
        if (rc != AREDIS__WANT_READ && rc != AREDIS__WANT_WRITE)
            return rc;
        wait_for(t, rc, deadline);
    }
}

/* Connect and finish the handshake; *t is NULL when either fails, and the
 * message is in err. */
static int dial(const aredis__config *cfg, const struct sockaddr *sa,
                socklen_t len, aredis__transport **t, char *err, size_t cap)
{
    int rc = aredis__transport_connect(cfg, sa, len, t, err, cap);
    if (rc != 0) {
        cr_assert_null(*t);
        return rc;
    }
    cr_assert_not_null(*t);
    rc = handshake(*t);
    if (rc != 0) {
        snprintf(err, cap, "%s", (*t)->errmsg);
        (*t)->vt->close(*t);
        *t = NULL;
    }
    return rc;
}

static aredis__transport *dial_ok(const aredis__config *cfg,
                                  const struct sockaddr *sa, socklen_t len)
{
    aredis__transport *t = NULL;
    char err[256];
    int rc = dial(cfg, sa, len, &t, err, sizeof err);
    cr_assert_eq(rc, 0, "connect failed: %s (%s)", aredis_err_name(rc), err);
    return t;
}

/* Write every byte of iov[0..n), as a client does: resend what was not
 * written, with the same bytes first. Returns 0 or the error. */
static int write_all(aredis__transport *t, struct iovec *iov, int n)
{
    long long deadline = testenv_now_ms() + DEADLINE_MS;
    while (n > 0) {
        ssize_t w = t->vt->writev(t, iov, n);
        if (w == AREDIS__WANT_READ || w == AREDIS__WANT_WRITE) {
            wait_for(t, (int)w, deadline);
            continue;
        }
        if (w < 0)
            return (int)w;
        cr_assert_gt(w, 0, "writev wrote nothing");
        size_t left = (size_t)w;
        while (n > 0 && left >= iov->iov_len) {
            left -= iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (char *)iov->iov_base + left;
            iov->iov_len -= left;
        }
    }
    return 0;
}

/* Read until the reader has a reply. 1 with *out set, 0 at end of stream,
 * or a negative error from the transport. */
static int read_reply(aredis__transport *t, aredis_reader *rd,
                      const aredis_reply **out)
{
    long long deadline = testenv_now_ms() + DEADLINE_MS;
    for (;;) {
        int rc = aredis_reader_get_reply(rd, out);
        cr_assert_geq(rc, 0, "reader: %s", aredis_reader_errstr(rd));
        if (rc == 1)
            return 1;
        size_t avail = 0;
        char *p = aredis_reader_prepare(rd, 16384, &avail);
        cr_assert_not_null(p);
        ssize_t n = t->vt->read(t, p, avail);
        aredis_reader_commit(rd, n > 0 ? (size_t)n : 0);
        /* Only after WANT_READ may we wait: TLS can hold decrypted bytes
         * that the descriptor does not show. */
        if (n == AREDIS__WANT_READ || n == AREDIS__WANT_WRITE)
            wait_for(t, (int)n, deadline);
        else if (n <= 0)
            return (int)n;
    }
}

static void expect_status(const aredis_reply *r, const char *s)
{
    cr_assert_eq(r->type, AREDIS_REPLY_STATUS, "reply type %s: %.*s",
                 aredis_reply_type_name(r->type), (int)r->len,
                 r->str ? r->str : "");
    cr_assert_eq(r->len, strlen(s));
    cr_assert(memcmp(r->str, s, r->len) == 0, "got %.*s", (int)r->len, r->str);
}

/* PING, written in two pieces to go through writev's gathering, then the
 * +PONG read back. */
static void ping_pong(aredis__transport *t)
{
    aredis_buf b;
    aredis_buf_init(&b);
    const char *argv[] = {"PING"};
    cr_assert_eq(aredis_write_argv(&b, 1, argv, NULL), 0);
    struct iovec iov[2] = {{b.data, 5}, {b.data + 5, b.len - 5}};
    cr_assert_eq(write_all(t, iov, 2), 0, "write: %s", t->errmsg);
    aredis_buf_cleanup(&b);

    aredis_reader *rd = aredis_reader_new(NULL);
    const aredis_reply *r = NULL;
    int rc = read_reply(t, rd, &r);
    cr_assert_eq(rc, 1, "read: %d %s", rc, t->errmsg);
    expect_status(r, "PONG");
    aredis_reader_free(rd);
}

/* n PINGs encoded into the empty buffer *b, one iovec each (the caller
 * frees the array). */
static struct iovec *pings(aredis_buf *b, int n)
{
    const char *pv[] = {"PING"};
    cr_assert_eq(aredis_write_argv(b, 1, pv, NULL), 0);
    size_t one = b->len;
    for (int i = 1; i < n; i++)
        cr_assert_eq(aredis_write_argv(b, 1, pv, NULL), 0);
    struct iovec *many = calloc((size_t)n, sizeof *many);
    cr_assert_not_null(many);
    for (int i = 0; i < n; i++)
        many[i] = (struct iovec){b->data + (size_t)i * one, one};
    return many;
}

/* A value far larger than a socket buffer or a TLS record, in odd-sized
 * pieces, then 2000 pipelined PINGs as 2000 pieces (beyond IOV_MAX): the
 * short writes and the resends are exercised for real. */
static void big_traffic(aredis__transport *t)
{
    enum { VAL = 300000, PINGS = 2000 };
    char key[64];
    testenv_key(key, sizeof key, t->vt->name);
    char *val = malloc(VAL);
    cr_assert_not_null(val);
    for (size_t i = 0; i < VAL; i++)
        val[i] = (char)('a' + i % 23);

    aredis_buf b;
    aredis_buf_init(&b);
    const char *argv[] = {"SET", key, val};
    size_t lens[] = {3, strlen(key), VAL};
    cr_assert_eq(aredis_write_argv(&b, 3, argv, lens), 0);
    const char *gv[] = {"GET", key};
    cr_assert_eq(aredis_write_argv(&b, 2, gv, NULL), 0);
    struct iovec iov[4];
    size_t cut[] = {0, 7, 1000, 180001, b.len};
    for (int i = 0; i < 4; i++)
        iov[i] = (struct iovec){b.data + cut[i], cut[i + 1] - cut[i]};
    cr_assert_eq(write_all(t, iov, 4), 0, "write: %s", t->errmsg);

    aredis_reader *rd = aredis_reader_new(NULL);
    const aredis_reply *r = NULL;
    cr_assert_eq(read_reply(t, rd, &r), 1, "%s", t->errmsg);
    expect_status(r, "OK");
    cr_assert_eq(read_reply(t, rd, &r), 1, "%s", t->errmsg);
    cr_assert_eq(r->type, AREDIS_REPLY_STRING);
    cr_assert_eq(r->len, (size_t)VAL);
    cr_assert(memcmp(r->str, val, VAL) == 0, "GET returned other bytes");

    aredis_buf_cleanup(&b);
    struct iovec *many = pings(&b, PINGS);
    cr_assert_eq(write_all(t, many, PINGS), 0, "write: %s", t->errmsg);
    for (int i = 0; i < PINGS; i++) {
        cr_assert_eq(read_reply(t, rd, &r), 1, "PONG %d: %s", i, t->errmsg);
        expect_status(r, "PONG");
    }
    free(many);
    aredis_buf_cleanup(&b);
    aredis_reader_free(rd);
    free(val);
}

/* Advance iov[*off..] past w written bytes. */
static void consume(struct iovec *iov, int *off, size_t w)
{
    while (w > 0) {
        struct iovec *v = &iov[*off];
        size_t take = w < v->iov_len ? w : v->iov_len;
        v->iov_base = (char *)v->iov_base + take;
        v->iov_len -= take;
        w -= take;
        if (v->iov_len == 0)
            (*off)++;
    }
}

/* The server sleeps (DEBUG SLEEP) while we flood it through a small send
 * buffer, so writev must say WANT_WRITE. Every call, the retries included,
 * offers what is still unwritten plus a few more commands, the way a
 * client queues new commands while a write is pending: over TLS this is
 * the "same bytes first, at least as many" retry rule. All replies must
 * come back in order. */
static void write_retry_with_more_data(aredis__transport *t)
{
    enum { PINGS = 60000, STEP = 64 };
    int small = 4096;
    cr_assert_eq(setsockopt(t->fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof small),
                 0);
    aredis_buf b;
    aredis_buf_init(&b);
    const char *sleep_argv[] = {"DEBUG", "SLEEP", "0.3"};
    cr_assert_eq(aredis_write_argv(&b, 3, sleep_argv, NULL), 0);
    struct iovec iov = {b.data, b.len};
    cr_assert_eq(write_all(t, &iov, 1), 0, "%s", t->errmsg);
    aredis_buf_cleanup(&b);

    struct iovec *many = pings(&b, PINGS);

    int off = 0, queued = 0, wants = 0;
    long long deadline = testenv_now_ms() + DEADLINE_MS;
    while (off < PINGS) {
        queued = queued + STEP > PINGS ? PINGS : queued + STEP;
        ssize_t w = t->vt->writev(t, &many[off], queued - off);
        if (w == AREDIS__WANT_READ || w == AREDIS__WANT_WRITE) {
            wants++;
            wait_for(t, (int)w, deadline);
            continue;
        }
        cr_assert_gt(w, 0, "writev: %zd %s", w, t->errmsg);
        consume(many, &off, (size_t)w);
    }
    cr_assert_gt(wants, 0, "the socket never filled up");

    aredis_reader *rd = aredis_reader_new(NULL);
    const aredis_reply *r;
    cr_assert_eq(read_reply(t, rd, &r), 1, "%s", t->errmsg);
    expect_status(r, "OK");
    for (int i = 0; i < PINGS; i++) {
        cr_assert_eq(read_reply(t, rd, &r), 1, "PONG %d: %s", i, t->errmsg);
        expect_status(r, "PONG");
    }
    cr_log_info("%s: %d writes had to wait", t->vt->name, wants);
    aredis_reader_free(rd);
    free(many);
    aredis_buf_cleanup(&b);
}

static int get_int_opt(int fd, int level, int name)
{
    int v = -1;
    socklen_t len = sizeof v;
    cr_assert_eq(getsockopt(fd, level, name, &v, &len), 0);
    return v;
}

/* ------------------------------------------------------------------------
 * Resolution on a real loop
 * ------------------------------------------------------------------------ */

#define MAX_ADDRS 8

typedef struct resolved {
    int calls;
    int status;
    char msg[256];
    int n;
    struct sockaddr_storage addr[MAX_ADDRS];
    socklen_t len[MAX_ADDRS];
} resolved;

static void on_resolved(void *arg, int status, const struct addrinfo *ai,
                        const char *errmsg)
{
    resolved *r = arg;
    r->calls++;
    r->status = status;
    snprintf(r->msg, sizeof r->msg, "%s", errmsg ? errmsg : "");
    if (status == 0)
        cr_assert_not_null(ai);
    for (; ai != NULL && r->n < MAX_ADDRS; ai = ai->ai_next) {
        cr_assert_eq(ai->ai_socktype, SOCK_STREAM);
        memcpy(&r->addr[r->n], ai->ai_addr, ai->ai_addrlen);
        r->len[r->n++] = ai->ai_addrlen;
    }
}

static void on_expired(void *arg)
{
    *(int *)arg = 1;
}

/* Run the loop until *done is non-zero or ms pass. A timer keeps the loop
 * alive meanwhile (a pending wake-up alone does not) and is the deadline.
 * Returns 1 when done. */
static int run_until(aredis_loop *l, const int *done, int ms)
{
    int expired = 0;
    void *timer = NULL;
    cr_assert_eq(aredis__loop_timer_start(l, on_expired, &expired, &timer), 0);
    cr_assert_eq(aredis__loop_timer_set(l, timer, ms), 0);
    while (!*done && !expired)
        cr_assert_geq(aredis_loop_run_once(l, ms), 0);
    aredis__loop_timer_stop(l, timer);
    return *done != 0;
}

static void resolve(aredis_loop *l, const char *host, int port, resolved *r)
{
    aredis__resolve *req = NULL;
    memset(r, 0, sizeof *r);
    cr_assert_eq(aredis__resolve_start(l, host, port, on_resolved, r, &req), 0);
    cr_assert_not_null(req);
    cr_assert_eq(r->calls, 0, "the callback ran inside resolve_start()");
    cr_assert(run_until(l, &r->calls, DEADLINE_MS), "%s never resolved", host);
    /* Nothing else may arrive later. */
    int never = 0;
    run_until(l, &never, 50);
    cr_assert_eq(r->calls, 1, "%s: %d callbacks", host, r->calls);
}

static int port_of(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)ss)->sin_port);
    return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
}

Test(transport, resolve_ipv4_literal_then_ping)
{
    testenv_server s;
    load(&s, NULL);
    aredis_loop *l = aredis_loop_new();
    cr_assert_not_null(l);
    resolved r;
    resolve(l, "127.0.0.1", s.port, &r);
    cr_assert_eq(r.status, 0, "%s", r.msg);
    cr_assert_eq(r.n, 1);
    cr_assert_eq(r.addr[0].ss_family, AF_INET);
    cr_assert_eq(port_of(&r.addr[0]), s.port);

    aredis__config cfg;
    config(&cfg, "redis://127.0.0.1:%d", s.port);
    aredis__transport *t =
        dial_ok(&cfg, (struct sockaddr *)&r.addr[0], r.len[0]);
    cr_assert_str_eq(t->vt->name, "tcp");
    ping_pong(t);
    t->vt->close(t);
    aredis__config_cleanup(&cfg);
    aredis_loop_free(l);
}

Test(transport, resolve_ipv6_literal)
{
    aredis_loop *l = aredis_loop_new();
    resolved r;
    resolve(l, "::1", 6390, &r);
    cr_assert_eq(r.status, 0, "%s", r.msg);
    cr_assert_eq(r.n, 1);
    cr_assert_eq(r.addr[0].ss_family, AF_INET6);
    cr_assert_eq(port_of(&r.addr[0]), 6390);
    aredis_loop_free(l);
}

Test(transport, resolve_localhost_then_ping)
{
    testenv_server s;
    load(&s, NULL);
    aredis_loop *l = aredis_loop_new();
    resolved r;
    resolve(l, "localhost", s.port, &r);
    cr_assert_eq(r.status, 0, "%s", r.msg);
    cr_assert_geq(r.n, 1);

    /* The server listens on 127.0.0.1 only, and "localhost" may list ::1
     * first: try the addresses in order, as the client does. */
    aredis__config cfg;
    config(&cfg, "redis://localhost:%d", s.port);
    int found_v4 = 0, connected = 0;
    for (int i = 0; i < r.n && !connected; i++) {
        cr_assert_eq(port_of(&r.addr[i]), s.port);
        found_v4 |= r.addr[i].ss_family == AF_INET;
        aredis__transport *t = NULL;
        char err[256];
        if (dial(&cfg, (struct sockaddr *)&r.addr[i], r.len[i], &t, err,
                 sizeof err) != 0)
            continue;
        ping_pong(t);
        t->vt->close(t);
        connected = 1;
    }
    cr_assert(found_v4, "localhost has no IPv4 address");
    cr_assert(connected, "no address of localhost accepted a connection");
    aredis__config_cleanup(&cfg);
    aredis_loop_free(l);
}

Test(transport, resolve_failure_names_the_host)
{
    /* An empty label makes the resolver refuse the name locally, so no
     * query leaves the machine (no DNS traffic from tests). */
    aredis_loop *l = aredis_loop_new();
    resolved r;
    resolve(l, "no..such..host", 6379, &r);
    cr_assert_eq(r.status, AREDIS_ERESOLVE);
    cr_assert_eq(r.n, 0);
    cr_assert(strstr(r.msg, "resolve no..such..host: ") == r.msg, "%s", r.msg);
    cr_assert_gt(strlen(r.msg), strlen("resolve no..such..host: "));
    aredis_loop_free(l);
}

Test(transport, resolve_bad_arguments)
{
    aredis_loop *l = aredis_loop_new();
    resolved r = {0};
    aredis__resolve *req = (aredis__resolve *)&r;
    cr_assert_eq(aredis__resolve_start(l, NULL, 1, on_resolved, &r, &req),
                 AREDIS_EINVAL);
    cr_assert_null(req);
    cr_assert_eq(aredis__resolve_start(l, "h", 70000, on_resolved, &r, &req),
                 AREDIS_EINVAL);
    aredis__resolve_cancel(NULL);
    aredis_loop_free(l);
}

Test(transport, resolve_cancel_literal_and_name)
{
    aredis_loop *l = aredis_loop_new();
    resolved r1 = {0}, r2 = {0}, r3 = {0};
    aredis__resolve *a = NULL, *b = NULL, *c = NULL;
    cr_assert_eq(aredis__resolve_start(l, "127.0.0.1", 1, on_resolved, &r1, &a),
                 0);
    cr_assert_eq(aredis__resolve_start(l, "localhost", 1, on_resolved, &r2, &b),
                 0);
    cr_assert_eq(aredis__resolve_start(l, "localhost", 1, on_resolved, &r3, &c),
                 0);
    /* At once: the thread is most likely still looking up. */
    aredis__resolve_cancel(a);
    aredis__resolve_cancel(b);
    /* After the thread is surely done and has woken the loop, but before
     * the loop ran: the wake-up must be dropped. */
    usleep(300 * 1000);
    aredis__resolve_cancel(c);
    int never = 0;
    run_until(l, &never, 300);
    cr_assert_eq(r1.calls + r2.calls + r3.calls, 0);
    aredis_loop_free(l);
}

/* Many lookups at once, every other one cancelled: each survivor completes
 * exactly once, and no cancelled one ever calls back. */
Test(transport, resolve_many_concurrent)
{
    enum { N = 40 };
    aredis_loop *l = aredis_loop_new();
    static resolved rs[N];
    aredis__resolve *reqs[N];
    for (int i = 0; i < N; i++)
        cr_assert_eq(aredis__resolve_start(l, i % 4 ? "localhost" : "::1",
                                           1000 + i, on_resolved, &rs[i],
                                           &reqs[i]),
                     0);
    for (int i = 0; i < N; i += 2)
        aredis__resolve_cancel(reqs[i]);
    long long deadline = testenv_now_ms() + DEADLINE_MS;
    int done = 0;
    while (!done && testenv_now_ms() < deadline) {
        int never = 0;
        run_until(l, &never, 20);
        done = 1;
        for (int i = 1; i < N; i += 2)
            done &= rs[i].calls == 1;
    }
    for (int i = 0; i < N; i++) {
        cr_assert_eq(rs[i].calls, i % 2, "request %d: %d callbacks", i,
                     rs[i].calls);
        if (i % 2) {
            cr_assert_eq(rs[i].status, 0, "%s", rs[i].msg);
            cr_assert_eq(port_of(&rs[i].addr[0]), 1000 + i);
        }
    }
    aredis_loop_free(l);
}

/* Cancelling from inside the callback is harmless. */
static void cancel_in_cb(void *arg, int status, const struct addrinfo *ai,
                         const char *errmsg)
{
    (void)status;
    (void)ai;
    (void)errmsg;
    void **slot = arg;
    aredis__resolve_cancel(slot[0]);
    slot[1] = (void *)1;
}

Test(transport, resolve_cancel_inside_callback)
{
    aredis_loop *l = aredis_loop_new();
    const char *hosts[] = {"127.0.0.1", "localhost"};
    for (int i = 0; i < 2; i++) {
        void *slot[2] = {NULL, NULL};
        aredis__resolve *req = NULL;
        cr_assert_eq(
            aredis__resolve_start(l, hosts[i], 1, cancel_in_cb, slot, &req), 0);
        slot[0] = req;
        int done = 0;
        long long deadline = testenv_now_ms() + DEADLINE_MS;
        while (slot[1] == NULL && testenv_now_ms() < deadline)
            run_until(l, &done, 20);
        cr_assert_not_null(slot[1], "%s never resolved", hosts[i]);
    }
    aredis_loop_free(l);
}

/* Allocation failure: the Nth allocation fails while one call runs. */
static long g_fail_at, g_count;
static int g_failing;

static void *t_malloc(size_t n)
{
    return g_failing && ++g_count == g_fail_at ? NULL : malloc(n);
}

static void *t_calloc(size_t c, size_t n)
{
    return g_failing && ++g_count == g_fail_at ? NULL : calloc(c, n);
}

static void *t_realloc(void *p, size_t n)
{
    return g_failing && ++g_count == g_fail_at ? NULL : realloc(p, n);
}

static void fail_nth(long n)
{
    static const aredis_allocator a = {t_malloc, t_calloc, t_realloc, free};
    cr_assert_eq(aredis_set_allocator(&a), 0);
    g_fail_at = n;
    g_count = 0;
    g_failing = 1;
}

static void fail_none(void)
{
    g_failing = 0;
}

Test(transport, resolve_out_of_memory)
{
    const char *hosts[] = {"127.0.0.1", "localhost"};
    for (int h = 0; h < 2; h++) {
        int ok = 0;
        for (long n = 1; n < 20 && !ok; n++) {
            aredis_loop *l = aredis_loop_new();
            cr_assert_not_null(l);
            resolved r = {0};
            aredis__resolve *req = NULL;
            fail_nth(n);
            int rc =
                aredis__resolve_start(l, hosts[h], 1, on_resolved, &r, &req);
            fail_none();
            if (rc == 0) {
                cr_assert_gt(n, 1);
                cr_assert(run_until(l, &r.calls, DEADLINE_MS));
                cr_assert_eq(r.status, 0, "%s", r.msg);
                ok = 1;
            } else {
                cr_assert_eq(rc, AREDIS_ENOMEM, "%s, allocation %ld: %s",
                             hosts[h], n, aredis_err_name(rc));
                cr_assert_null(req);
                int never = 0;
                run_until(l, &never, 20);
                cr_assert_eq(r.calls, 0, "a failed start called back");
            }
            aredis_loop_free(l);
        }
        cr_assert(ok, "%s: never succeeded", hosts[h]);
    }
    aredis_set_allocator(NULL);
}

/* ------------------------------------------------------------------------
 * TCP and Unix
 * ------------------------------------------------------------------------ */

Test(transport, tcp_options_and_big_traffic)
{
    testenv_server s;
    struct sockaddr_storage ss;
    socklen_t len;
    own_server(&s, &ss, &len);

    aredis__config cfg;
    config(&cfg, "redis://127.0.0.1:%d?keepalive=7", s.port);
    aredis__transport *t = dial_ok(&cfg, (struct sockaddr *)&ss, len);
    cr_assert_eq(get_int_opt(t->fd, IPPROTO_TCP, TCP_NODELAY), 1);
    cr_assert_eq(get_int_opt(t->fd, SOL_SOCKET, SO_KEEPALIVE), 1);
    cr_assert_eq(get_int_opt(t->fd, IPPROTO_TCP, TCP_KEEPIDLE), 7);
    cr_assert_eq(get_int_opt(t->fd, IPPROTO_TCP, TCP_KEEPINTVL), 10);
    cr_assert_eq(get_int_opt(t->fd, IPPROTO_TCP, TCP_KEEPCNT), 3);
    big_traffic(t);
    t->vt->close(t);
    aredis__config_cleanup(&cfg);

    /* Nagle left on, no keepalive. */
    aredis_options o = {.port = s.port, .tcp_nagle = 1};
    char err[256];
    cr_assert_eq(aredis__config_from_options(&cfg, &o, err, sizeof err), 0);
    t = dial_ok(&cfg, (struct sockaddr *)&ss, len);
    cr_assert_eq(get_int_opt(t->fd, IPPROTO_TCP, TCP_NODELAY), 0);
    cr_assert_eq(get_int_opt(t->fd, SOL_SOCKET, SO_KEEPALIVE), 0);
    ping_pong(t);
    t->vt->close(t);
    aredis__config_cleanup(&cfg);
}

Test(transport, tcp_write_retry_with_more_data)
{
    testenv_server s;
    struct sockaddr_storage ss;
    socklen_t len;
    own_server(&s, &ss, &len);
    aredis__config cfg;
    config(&cfg, "redis://127.0.0.1:%d", s.port);
    aredis__transport *t = dial_ok(&cfg, (struct sockaddr *)&ss, len);
    write_retry_with_more_data(t);
    t->vt->close(t);
    aredis__config_cleanup(&cfg);
}

Test(transport, unix_socket)
{
    testenv_server s;
    load(&s, NULL);
    cr_assert_neq(s.unixsocket[0], '\0', "the fixture has no unix socket");
    aredis__config cfg;
    config(&cfg, "unix://%s", s.unixsocket);
    aredis__transport *t = dial_ok(&cfg, NULL, 0);
    cr_assert_str_eq(t->vt->name, "unix");
    big_traffic(t);
    t->vt->close(t);
    aredis__config_cleanup(&cfg);
}

Test(transport, unix_socket_missing)
{
    aredis__config cfg;
    config(&cfg, "unix:///nonexistent-dir/redis.sock");
    aredis__transport *t = NULL;
    char err[256];
    int rc = dial(&cfg, NULL, 0, &t, err, sizeof err);
    cr_assert_eq(rc, AREDIS_ECONNREFUSED, "%s: %s", aredis_err_name(rc), err);
    cr_assert_str_eq(err, "connect to /nonexistent-dir/redis.sock: No such "
                          "file or directory");
    aredis__config_cleanup(&cfg);
}

/* A loopback port nobody listens on: bound, then closed again. */
static int closed_port(int family)
{
    int fd = socket(family, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t len;
    if (family == AF_INET) {
        addr_v4(&ss, &len, 0);
    } else {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_addr = in6addr_loopback;
        len = sizeof *s6;
    }
    if (bind(fd, (struct sockaddr *)&ss, len) != 0) {
        close(fd);
        return -1;
    }
    len = sizeof ss;
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
    close(fd);
    return port_of(&ss);
}

Test(transport, connection_refused)
{
    int port = closed_port(AF_INET);
    cr_assert_gt(port, 0);
    struct sockaddr_storage ss;
    socklen_t len;
    addr_v4(&ss, &len, port);
    aredis__config cfg;
    config(&cfg, "redis://127.0.0.1:%d", port);
    aredis__transport *t = NULL;
    char err[256], want[128];
    int rc = dial(&cfg, (struct sockaddr *)&ss, len, &t, err, sizeof err);
    cr_assert_eq(rc, AREDIS_ECONNREFUSED, "%s: %s", aredis_err_name(rc), err);
    snprintf(want, sizeof want, "connect to 127.0.0.1:%d: Connection refused",
             port);
    cr_assert_str_eq(err, want);
    aredis__config_cleanup(&cfg);
}

Test(transport, connect_bad_arguments)
{
    aredis__config cfg;
    config(&cfg, "redis://127.0.0.1");
    aredis__transport *t = (aredis__transport *)&cfg;
    char err[128];
    cr_assert_eq(aredis__transport_connect(&cfg, NULL, 0, &t, err, sizeof err),
                 AREDIS_EINVAL);
    cr_assert_null(t);
    cr_assert(strstr(err, "no IPv4 or IPv6 address") != NULL, "%s", err);
    aredis__config_cleanup(&cfg);
}

Test(transport, connect_out_of_memory)
{
    testenv_server s;
    struct sockaddr_storage ss;
    socklen_t len;
    own_server(&s, &ss, &len);
    /* Plain TCP, then TLS over it: each allocation in turn fails. */
    const char *urls[] = {"redis", "rediss"};
    for (int u = 0; u < 2; u++) {
        aredis__config cfg;
        config(&cfg, "%s://127.0.0.1:%d?tls_insecure=yes", urls[u], s.port);
        int ok = 0;
        for (long n = 1; n < 20 && !ok; n++) {
            aredis__transport *t = NULL;
            char err[256];
            fail_nth(n);
            int rc = aredis__transport_connect(&cfg, (struct sockaddr *)&ss,
                                               len, &t, err, sizeof err);
            fail_none();
            if (rc == 0) {
                cr_assert_gt(n, 1);
                t->vt->close(t);
                ok = 1;
            } else {
                cr_assert_eq(rc, AREDIS_ENOMEM, "%s, allocation %ld: %s",
                             urls[u], n, err);
                cr_assert_str_eq(err, "out of memory");
                cr_assert_null(t);
            }
        }
        cr_assert(ok);
        aredis__config_cleanup(&cfg);
    }
    aredis_set_allocator(NULL);
}

/* Whether this machine can use ::1 at all. */
static int have_ipv6_loopback(void)
{
    return closed_port(AF_INET6) > 0;
}

Test(transport, ipv6_loopback)
{
    if (!have_ipv6_loopback()) {
        cr_skip_test("this machine has no usable ::1 (binding to it failed)");
    }
    int port = closed_port(AF_INET6);
    aredis__config cfg;
    config(&cfg, "redis://[::1]:%d", port);
    struct sockaddr_in6 s6;
    memset(&s6, 0, sizeof s6);
    s6.sin6_family = AF_INET6;
    s6.sin6_addr = in6addr_loopback;
    s6.sin6_port = htons((uint16_t)port);
    aredis__transport *t = NULL;
    char err[256], want[128];
    int rc = dial(&cfg, (struct sockaddr *)&s6, sizeof s6, &t, err, sizeof err);
    cr_assert_eq(rc, AREDIS_ECONNREFUSED, "%s", err);
    snprintf(want, sizeof want, "connect to [::1]:%d: Connection refused",
             port);
    cr_assert_str_eq(err, want);
    aredis__config_cleanup(&cfg);

    /* The ipv6 fixture listens on ::1 too (when the machine has it). */
    testenv_server s;
    load(&s, "ipv6");
    aredis_loop *l = aredis_loop_new();
    resolved r;
    resolve(l, "::1", s.port, &r);
    cr_assert_eq(r.status, 0, "%s", r.msg);
    config(&cfg, "redis://[::1]:%d", s.port);
    t = dial_ok(&cfg, (struct sockaddr *)&r.addr[0], r.len[0]);
    ping_pong(t);
    t->vt->close(t);
    aredis__config_cleanup(&cfg);
    aredis_loop_free(l);
}

/* ------------------------------------------------------------------------
 * Through the loop, as the client drives a transport
 * ------------------------------------------------------------------------ */

typedef struct flow {
    aredis_loop *loop;
    aredis__transport *t;
    void *io;
    int phase; /* 0 handshake, 1 write, 2 read, 3 done, -1 failed */
    aredis_buf out;
    size_t sent;
    aredis_reader *rd;
    int rc;
} flow;

static void flow_io(void *arg, int events);

static void flow_want(flow *f, int want)
{
    int ev = want == AREDIS__WANT_READ ? AREDIS_EV_READ : AREDIS_EV_WRITE;
    cr_assert_eq(aredis__loop_io_update(f->loop, f->io, ev), 0);
}

static void flow_finish(flow *f, int phase, int rc)
{
    f->phase = phase;
    f->rc = rc;
    cr_assert_eq(aredis__loop_io_update(f->loop, f->io, 0), 0);
}

static void flow_step(flow *f)
{
    for (;;) {
        if (f->phase == 0) {
            int rc = f->t->vt->handshake(f->t);
            if (rc == AREDIS__WANT_READ || rc == AREDIS__WANT_WRITE)
                return flow_want(f, rc);
            if (rc != 0)
                return flow_finish(f, -1, rc);
            f->phase = 1;
        } else if (f->phase == 1) {
            struct iovec iov = {f->out.data + f->sent, f->out.len - f->sent};
            ssize_t w = f->t->vt->writev(f->t, &iov, 1);
            if (w == AREDIS__WANT_READ || w == AREDIS__WANT_WRITE)
                return flow_want(f, (int)w);
            if (w < 0)
                return flow_finish(f, -1, (int)w);
            f->sent += (size_t)w;
            if (f->sent == f->out.len)
                f->phase = 2;
        } else if (f->phase == 2) {
            const aredis_reply *r;
            if (aredis_reader_get_reply(f->rd, &r) == 1) {
                expect_status(r, "PONG");
                return flow_finish(f, 3, 0);
            }
            size_t avail;
            char *p = aredis_reader_prepare(f->rd, 4096, &avail);
            ssize_t n = f->t->vt->read(f->t, p, avail);
            aredis_reader_commit(f->rd, n > 0 ? (size_t)n : 0);
            if (n == AREDIS__WANT_READ || n == AREDIS__WANT_WRITE)
                return flow_want(f, (int)n);
            if (n <= 0)
                return flow_finish(f, -1, n == 0 ? AREDIS_ECLOSED : (int)n);
        } else {
            return;
        }
    }
}

static void flow_io(void *arg, int events)
{
    (void)events;
    flow_step(arg);
}

/* Connect t's server, PING and read PONG with the loop's watchers only. */
static void ping_through_loop(aredis_loop *l, aredis__transport *t)
{
    flow f = {.loop = l, .t = t};
    aredis_buf_init(&f.out);
    const char *argv[] = {"PING"};
    cr_assert_eq(aredis_write_argv(&f.out, 1, argv, NULL), 0);
    f.rd = aredis_reader_new(NULL);
    cr_assert_eq(aredis__loop_io_start(l, t->fd, flow_io, &f, &f.io), 0);
    /* The connect ends with writability, as the contract says. */
    cr_assert_eq(aredis__loop_io_update(l, f.io, AREDIS_EV_WRITE), 0);
    int done = 0;
    long long deadline = testenv_now_ms() + DEADLINE_MS;
    while (f.phase >= 0 && f.phase < 3 && testenv_now_ms() < deadline)
        run_until(l, &done, 50);
    cr_assert_eq(f.phase, 3, "phase %d: %s %s", f.phase, aredis_err_name(f.rc),
                 t->errmsg);
    aredis__loop_io_stop(l, f.io);
    aredis_reader_free(f.rd);
    aredis_buf_cleanup(&f.out);
}

Test(transport, localhost_through_the_loop)
{
    testenv_server s;
    load(&s, NULL);
    aredis_loop *l = aredis_loop_new();
    resolved r;
    resolve(l, "localhost", s.port, &r);
    cr_assert_eq(r.status, 0, "%s", r.msg);
    int i = 0;
    while (i < r.n && r.addr[i].ss_family != AF_INET)
        i++;
    cr_assert_lt(i, r.n, "localhost has no IPv4 address");
    aredis__config cfg;
    config(&cfg, "redis://localhost:%d", s.port);
    aredis__transport *t = NULL;
    char err[256];
    cr_assert_eq(aredis__transport_connect(&cfg, (struct sockaddr *)&r.addr[i],
                                           r.len[i], &t, err, sizeof err),
                 0, "%s", err);
    ping_through_loop(l, t);
    t->vt->close(t);
    aredis__config_cleanup(&cfg);
    aredis_loop_free(l);
}

/* ------------------------------------------------------------------------
 * TLS
 * ------------------------------------------------------------------------ */

#ifdef AREDIS_TEST_TLS

static testenv_server g_tls;

static void tls_addr(const char *fixture, struct sockaddr_storage *ss,
                     socklen_t *len)
{
    load(&g_tls, fixture);
    addr_v4(ss, len, g_tls.port);
}

/* Dial the TLS fixture at 127.0.0.1 with the URL's query options (fmt is
 * appended after '?'); {ca} in it is not special: callers use g_tls.dir. */
static int tls_dial(const char *fixture, const char *query,
                    aredis__transport **t, char *err, size_t cap)
{
    struct sockaddr_storage ss;
    socklen_t len;
    tls_addr(fixture, &ss, &len);
    aredis__config cfg;
    config(&cfg, "rediss://127.0.0.1:%d?%s", g_tls.port, query);
    int rc = dial(&cfg, (struct sockaddr *)&ss, len, t, err, cap);
    aredis__config_cleanup(&cfg);
    return rc;
}

static const char *ca_query(const char *extra)
{
    static char q[600];
    load(&g_tls, "tls");
    snprintf(q, sizeof q, "tls_ca_file=%s/ca.crt%s", g_tls.dir, extra);
    return q;
}

Test(transport, tls_verified_by_ip_and_name)
{
    aredis__transport *t = NULL;
    char err[256];
    /* 127.0.0.1 against the certificate's IP SAN. */
    int rc = tls_dial("tls", ca_query(""), &t, err, sizeof err);
    cr_assert_eq(rc, 0, "%s: %s", aredis_err_name(rc), err);
    cr_assert_str_eq(t->vt->name, "tls");
    ping_pong(t);
    big_traffic(t);
    t->vt->close(t);
    /* "localhost" (SNI and DNS SAN) while connecting to 127.0.0.1. */
    rc = tls_dial("tls", ca_query("&tls_sni=localhost"), &t, err, sizeof err);
    cr_assert_eq(rc, 0, "%s: %s", aredis_err_name(rc), err);
    ping_pong(t);
    t->vt->close(t);
}

Test(transport, tls_write_retry_with_more_data)
{
    aredis__transport *t = NULL;
    char err[256];
    int rc = tls_dial("tls", ca_query(""), &t, err, sizeof err);
    cr_assert_eq(rc, 0, "%s: %s", aredis_err_name(rc), err);
    write_retry_with_more_data(t);
    t->vt->close(t);
}

Test(transport, tls_ca_directory)
{
    /* A hashed CA directory, as c_rehash/openssl rehash would make. */
    load(&g_tls, "tls");
    char cmd[2048], q[600];
    snprintf(cmd, sizeof cmd,
             "mkdir -p %s/cadir && cp %s/ca.crt %s/cadir/ && "
             "ln -sf ca.crt %s/cadir/$(openssl x509 -hash -noout -in "
             "%s/ca.crt).0",
             g_tls.dir, g_tls.dir, g_tls.dir, g_tls.dir, g_tls.dir);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    snprintf(q, sizeof q, "tls_ca_dir=%s/cadir", g_tls.dir);
    aredis__transport *t = NULL;
    char err[256];
    int rc = tls_dial("tls", q, &t, err, sizeof err);
    cr_assert_eq(rc, 0, "%s: %s", aredis_err_name(rc), err);
    ping_pong(t);
    t->vt->close(t);
}

Test(transport, tls_system_store_rejects_the_test_ca)
{
    aredis__transport *t = NULL;
    char err[256], want[128];
    int rc = tls_dial("tls", "", &t, err, sizeof err);
    cr_assert_eq(rc, AREDIS_ETLS, "%s: %s", aredis_err_name(rc), err);
    snprintf(want, sizeof want,
             "TLS handshake with 127.0.0.1:%d failed: certificate verify "
             "failed: ",
             g_tls.port);
    cr_assert(strstr(err, want) == err, "%s", err);
}

Test(transport, tls_wrong_host_name)
{
    aredis__transport *t = NULL;
    char err[256];
    int rc =
        tls_dial("tls", ca_query("&tls_sni=example.com"), &t, err, sizeof err);
    cr_assert_eq(rc, AREDIS_ETLS, "%s: %s", aredis_err_name(rc), err);
    cr_assert(strstr(err, "certificate verify failed: ") != NULL, "%s", err);
    cr_assert(strcasestr(err, "hostname mismatch") != NULL, "%s", err);
}

Test(transport, tls_wrong_ip_address)
{
    /* The configured host says 127.0.0.2 while we reach the server at
     * 127.0.0.1: the certificate's IP SANs do not list the former. */
    struct sockaddr_storage ss;
    socklen_t len;
    tls_addr("tls", &ss, &len);
    aredis__config cfg;
    config(&cfg, "rediss://127.0.0.2:%d?%s", g_tls.port, ca_query(""));
    aredis__transport *t = NULL;
    char err[256];
    int rc = dial(&cfg, (struct sockaddr *)&ss, len, &t, err, sizeof err);
    cr_assert_eq(rc, AREDIS_ETLS, "%s: %s", aredis_err_name(rc), err);
    cr_assert(strstr(err, "certificate verify failed: ") != NULL, "%s", err);
    cr_assert(strcasestr(err, "IP address mismatch") != NULL, "%s", err);
    aredis__config_cleanup(&cfg);
}

Test(transport, tls_insecure_skips_verification)
{
    aredis__transport *t = NULL;
    char err[256];
    int rc = tls_dial("tls", "tls_insecure=yes&tls_sni=example.com", &t, err,
                      sizeof err);
    cr_assert_eq(rc, 0, "%s: %s", aredis_err_name(rc), err);
    ping_pong(t);
    t->vt->close(t);
}

Test(transport, tls_bad_files)
{
    struct sockaddr_storage ss;
    socklen_t len;
    tls_addr("tls", &ss, &len);
    struct {
        const char *query;
        const char *msg;
    } cases[] = {
        {"tls_ca_file=/nonexistent/ca.crt",
         "TLS: cannot load the CA file '/nonexistent/ca.crt': "},
        /* Checked at once: OpenSSL would only fail the handshake, as if
         * the directory were empty ("self-signed certificate..."). */
        {"tls_ca_dir=/nonexistent",
         "TLS: cannot use the CA directory '/nonexistent': No such file or "
         "directory"},
        {"tls_ca_dir=/dev/null",
         "TLS: cannot use the CA directory '/dev/null': Not a directory"},
        {"tls_cert_file=/nonexistent/c.crt",
         "TLS: cannot load the certificate '/nonexistent/c.crt': "},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        aredis__config cfg;
        config(&cfg, "rediss://127.0.0.1:%d?%s", g_tls.port, cases[i].query);
        aredis__transport *t = NULL;
        char err[256];
        int rc = dial(&cfg, (struct sockaddr *)&ss, len, &t, err, sizeof err);
        aredis__config_cleanup(&cfg);
        cr_assert_eq(rc, AREDIS_ETLS, "%s: %s (%s)", cases[i].query,
                     aredis_err_name(rc), err);
        if (cases[i].msg != NULL)
            cr_assert(strstr(err, cases[i].msg) == err, "%s", err);
    }
    /* A key that is not the certificate's. */
    aredis__config cfg;
    config(&cfg,
           "rediss://127.0.0.1:%d?tls_cert_file=%s/client.crt"
           "&tls_key_file=%s/server.key",
           g_tls.port, g_tls.dir, g_tls.dir);
    aredis__transport *t = NULL;
    char err[256];
    int rc = dial(&cfg, (struct sockaddr *)&ss, len, &t, err, sizeof err);
    cr_assert_eq(rc, AREDIS_ETLS, "%s", err);
    cr_assert(strstr(err, "mismatch") || strstr(err, "does not match"), "%s",
              err);
    aredis__config_cleanup(&cfg);
}

Test(transport, tls_client_certificate)
{
    load(&g_tls, "tls_mutual");
    char q[1024];
    snprintf(q, sizeof q,
             "tls_ca_file=%s/ca.crt&tls_cert_file=%s/client.crt"
             "&tls_key_file=%s/client.key",
             g_tls.dir, g_tls.dir, g_tls.dir);
    aredis__transport *t = NULL;
    char err[256];
    int rc = tls_dial("tls_mutual", q, &t, err, sizeof err);
    cr_assert_eq(rc, 0, "%s: %s", aredis_err_name(rc), err);
    ping_pong(t);
    t->vt->close(t);

    /* Without one. In TLS 1.3 the client finishes its handshake before the
     * server has judged the (missing) certificate, so the refusal may
     * arrive with the first read instead. Either way: an error or an end
     * of stream, and no hang. */
    snprintf(q, sizeof q, "tls_ca_file=%s/ca.crt", g_tls.dir);
    rc = tls_dial("tls_mutual", q, &t, err, sizeof err);
    if (rc != 0) {
        cr_assert_eq(rc, AREDIS_ETLS, "%s: %s", aredis_err_name(rc), err);
        return;
    }
    aredis_buf b;
    aredis_buf_init(&b);
    const char *argv[] = {"PING"};
    cr_assert_eq(aredis_write_argv(&b, 1, argv, NULL), 0);
    struct iovec iov = {b.data, b.len};
    rc = write_all(t, &iov, 1);
    aredis_buf_cleanup(&b);
    if (rc == 0) {
        aredis_reader *rd = aredis_reader_new(NULL);
        const aredis_reply *r;
        rc = read_reply(t, rd, &r);
        aredis_reader_free(rd);
        cr_assert_leq(rc, 0, "the server answered a client without a cert");
        if (rc < 0)
            cr_assert(rc == AREDIS_ETLS || rc == AREDIS_ECLOSED, "%s: %s",
                      aredis_err_name(rc), t->errmsg);
        if (rc == AREDIS_ETLS)
            cr_assert(strstr(t->errmsg, "certificate"), "%s", t->errmsg);
    }
    cr_log_info("without a client certificate: %s (%s)", aredis_err_name(rc),
                t->errmsg);
    t->vt->close(t);
}

Test(transport, plaintext_client_to_tls_port)
{
    struct sockaddr_storage ss;
    socklen_t len;
    tls_addr("tls", &ss, &len);
    aredis__config cfg;
    config(&cfg, "redis://127.0.0.1:%d", g_tls.port);
    aredis__transport *t = dial_ok(&cfg, (struct sockaddr *)&ss, len);
    aredis_buf b;
    aredis_buf_init(&b);
    const char *argv[] = {"PING"};
    cr_assert_eq(aredis_write_argv(&b, 1, argv, NULL), 0);
    struct iovec iov = {b.data, b.len};
    int rc = write_all(t, &iov, 1);
    aredis_buf_cleanup(&b);
    if (rc == 0) {
        aredis_reader *rd = aredis_reader_new(NULL);
        const aredis_reply *r;
        rc = read_reply(t, rd, &r);
        aredis_reader_free(rd);
    }
    /* The server drops us: end of stream or a reset, never a reply. */
    cr_assert(rc == 0 || rc == AREDIS_ECLOSED, "%d %s", rc, t->errmsg);
    t->vt->close(t);
    aredis__config_cleanup(&cfg);
}

Test(transport, tls_client_to_plaintext_port)
{
    /* Redis reads the ClientHello as the start of an inline command and
     * waits for its end of line, which may never come: the handshake just
     * waits, and the client's connect deadline ends it. What must hold is
     * that it never passes for a TLS connection. */
    testenv_server s;
    struct sockaddr_storage ss;
    socklen_t len;
    own_server(&s, &ss, &len);
    aredis__config cfg;
    config(&cfg, "rediss://127.0.0.1:%d?tls_insecure=yes", s.port);
    aredis__transport *t = NULL;
    char err[256];
    cr_assert_eq(aredis__transport_connect(&cfg, (struct sockaddr *)&ss, len,
                                           &t, err, sizeof err),
                 0, "%s", err);
    long long deadline = testenv_now_ms() + 500;
    int rc;
    for (;;) {
        rc = t->vt->handshake(t);
        if (rc != AREDIS__WANT_READ && rc != AREDIS__WANT_WRITE)
            break;
        long long left = deadline - testenv_now_ms();
        if (left <= 0)
            break;
        struct pollfd p = {t->fd, rc == AREDIS__WANT_READ ? POLLIN : POLLOUT,
                           0};
        poll(&p, 1, (int)left);
    }
    cr_assert_neq(rc, 0, "a TLS handshake with a plaintext server succeeded");
    if (rc != AREDIS__WANT_READ) {
        cr_assert_eq(rc, AREDIS_ETLS, "%s: %s", aredis_err_name(rc), t->errmsg);
        cr_assert(strstr(t->errmsg, "TLS handshake with 127.0.0.1:") ==
                      t->errmsg,
                  "%s", t->errmsg);
    }
    t->vt->close(t);
    aredis__config_cleanup(&cfg);
}

Test(transport, tls_through_the_loop)
{
    struct sockaddr_storage ss;
    socklen_t len;
    tls_addr("tls", &ss, &len);
    aredis_loop *l = aredis_loop_new();
    aredis__config cfg;
    config(&cfg, "rediss://localhost:%d?%s", g_tls.port, ca_query(""));
    aredis__transport *t = NULL;
    char err[256];
    cr_assert_eq(aredis__transport_connect(&cfg, (struct sockaddr *)&ss, len,
                                           &t, err, sizeof err),
                 0, "%s", err);
    ping_through_loop(l, t);
    t->vt->close(t);
    aredis__config_cleanup(&cfg);
    aredis_loop_free(l);
}

#endif /* AREDIS_TEST_TLS */
