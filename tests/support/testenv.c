/* Test environment helpers for integration tests (tests/support).
 *
 * Reads the state files written by tests/support/redis-server.sh and
 * implements a small blocking loopback client on top of the public protocol
 * API. Every wait goes through poll() with a deadline taken from the
 * monotonic clock, so no call can block a test forever. Also the fixtures
 * the integration tests share: free ports, URLs, private servers started
 * by the script (whose directory AREDIS_TEST_SUPPORT_DIR names). Test code
 * only: it is linked into integration tests, never into the library. */
#include "testenv.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "aredis/error.h"

#ifndef AREDIS_TEST_SUPPORT_DIR
#error "AREDIS_TEST_SUPPORT_DIR must name tests/support"
#endif

/* Per thread: the fault tests sample CLIENT LIST from a thread of their own. */
static _Thread_local char g_err[1024];

void testenv_set_err(const char *fmt, ...)
{
    char buf[sizeof g_err];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    memcpy(g_err, buf, sizeof g_err);
}

const char *testenv_errstr(void)
{
    return g_err;
}

int testenv_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    if (port < 0)
        testenv_set_err("no free loopback port: %s", strerror(errno));
    return port;
}

int testenv_listener(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        listen(fd, 8) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0) {
        *port = ntohs(a.sin_port);
        return fd;
    }
    testenv_set_err("no loopback listener: %s", strerror(errno));
    if (fd >= 0)
        close(fd);
    return -1;
}

char *testenv_url(char *buf, size_t cap, const testenv_server *s, int db)
{
    snprintf(buf, cap, "redis://127.0.0.1:%d/%d", s->port, db);
    return buf;
}

/* Run <script> <verb> <name> [args] (redis-server.sh, redis-cluster.sh);
 * the script stops a server whose owner exits: make that this process, not
 * the shell system() starts. */
static int run_script(const char *script, const char *verb, const char *name,
                      const char *args)
{
    char logp[300], cmd[3072];
    const char *tmp = getenv("TMPDIR");
    snprintf(logp, sizeof logp, "%s/aredis-script-%ld.log",
             tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp", (long)getpid());
    snprintf(cmd, sizeof cmd,
             "AREDIS_TEST_OWNER_PID=%ld bash '%s/%s' %s '%s' "
             "%s >'%s' 2>&1",
             (long)getpid(), AREDIS_TEST_SUPPORT_DIR, script, verb, name,
             args != NULL ? args : "", logp);
    int rc = system(cmd);
    if (rc != 0) {
        char tail[700] = "";
        FILE *f = fopen(logp, "r");
        if (f != NULL) {
            size_t n = fread(tail, 1, sizeof tail - 1, f);
            tail[n] = '\0';
            fclose(f);
        }
        testenv_set_err("%s %s %s failed (%d): %s", script, verb, name, rc,
                        tail);
    }
    unlink(logp);
    return rc == 0 ? 0 : -1;
}

int testenv_script(const char *verb, const char *name, const char *args)
{
    return run_script("redis-server.sh", verb, name, args);
}

int testenv_private_start(testenv_server *s, const char *tag, const char *extra)
{
    char name[64];
    snprintf(name, sizeof name, "%s-%ld", tag, (long)getpid());
    if (testenv_script("start", name, extra) != 0)
        return -1;
    return testenv_server_load(s, name);
}

int testenv_private_stop(const testenv_server *s)
{
    return testenv_script("stop", s->name, NULL);
}

int testenv_private_cluster_start(testenv_server *s, const char *tag,
                                  const char *extra)
{
    char name[64];
    snprintf(name, sizeof name, "%s-%ld", tag, (long)getpid());
    if (run_script("redis-cluster.sh", "start", name, extra) != 0)
        return -1;
    return testenv_server_load(s, name);
}

int testenv_private_cluster_stop(const testenv_server *s)
{
    return run_script("redis-cluster.sh", "stop", s->name, NULL);
}

int testenv_state_ports(const char *name, const char *key, int *ports, int max)
{
    const char *dir = getenv("AREDIS_TEST_STATE_DIR");
    if (dir == NULL) {
        testenv_set_err("AREDIS_TEST_STATE_DIR is not set");
        return -1;
    }
    char path[512], line[2048];
    snprintf(path, sizeof path, "%s/%s.state", dir, name);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        testenv_set_err("%s: %s", path, strerror(errno));
        return -1;
    }
    size_t klen = strlen(key);
    int n = -1;
    while (n < 0 && fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, key, klen) != 0 || line[klen] != '=')
            continue;
        n = 0;
        for (char *p = line + klen + 1; *p != '\0' && *p != '\n';) {
            char *colon = strchr(p, ':');
            if (colon == NULL || n == max)
                break;
            ports[n++] = (int)strtol(colon + 1, &p, 10);
            if (*p == ',')
                p++;
        }
    }
    fclose(f);
    if (n < 0)
        testenv_set_err("%s: no %s= line", path, key);
    return n;
}

char *testenv_key(char *buf, size_t cap, const char *suffix)
{
    snprintf(buf, cap, "aredis:test:%ld:%s", (long)getpid(), suffix);
    return buf;
}

int64_t testenv_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------------------
 * State files
 * ------------------------------------------------------------------------ */

/* Copy a value into a fixed field; fails when it does not fit. */
static int copy_field(char *dst, size_t cap, const char *val, const char *key,
                      const char *path)
{
    size_t n = strlen(val);
    if (n >= cap) {
        testenv_set_err("%s: value of '%s' is too long (%zu bytes)", path, key,
                        n);
        return -1;
    }
    memcpy(dst, val, n + 1);
    return 0;
}

static int parse_long(const char *val, long *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(val, &end, 10);
    if (errno != 0 || end == val || *end != '\0')
        return -1;
    *out = v;
    return 0;
}

static int is_loopback(const char *host)
{
    return strncmp(host, "127.", 4) == 0 || strcmp(host, "::1") == 0 ||
           strcmp(host, "localhost") == 0;
}

static int parse_line(testenv_server *s, char *line, const char *path)
{
    line[strcspn(line, "\r\n")] = '\0';
    char *eq = strchr(line, '=');
    if (eq == NULL)
        return 0; /* blank or foreign line: ignored */
    *eq = '\0';
    const char *key = line, *val = eq + 1;
    long v = 0;

    if (strcmp(key, "name") == 0)
        return copy_field(s->name, sizeof s->name, val, key, path);
    if (strcmp(key, "host") == 0)
        return copy_field(s->host, sizeof s->host, val, key, path);
    if (strcmp(key, "unixsocket") == 0)
        return copy_field(s->unixsocket, sizeof s->unixsocket, val, key, path);
    if (strcmp(key, "dir") == 0)
        return copy_field(s->dir, sizeof s->dir, val, key, path);
    if (strcmp(key, "log") == 0)
        return copy_field(s->log, sizeof s->log, val, key, path);
    if (strcmp(key, "port") == 0) {
        if (parse_long(val, &v) != 0 || v < 0 || v > 65535) {
            testenv_set_err("%s: bad port '%s'", path, val);
            return -1;
        }
        s->port = (int)v;
    } else if (strcmp(key, "pid") == 0) {
        if (parse_long(val, &v) != 0 || v <= 0) {
            testenv_set_err("%s: bad pid '%s'", path, val);
            return -1;
        }
        s->pid = v;
    }
    return 0; /* other keys are for the scripts */
}

int testenv_server_load(testenv_server *s, const char *name)
{
    char path[1024];
    memset(s, 0, sizeof *s);

    if (name == NULL) {
        const char *p = getenv("AREDIS_TEST_STATE");
        if (p == NULL || *p == '\0') {
            testenv_set_err(
                "AREDIS_TEST_STATE is not set: this test needs a server "
                "started by a CTest fixture. Run it through ctest "
                "(ctest -R <test>), or start one with "
                "tests/support/redis-server.sh start standalone and "
                "export AREDIS_TEST_STATE=<its .state file>");
            return -1;
        }
        snprintf(path, sizeof path, "%s", p);
    } else {
        const char *dir = getenv("AREDIS_TEST_STATE_DIR");
        if (dir == NULL || *dir == '\0') {
            testenv_set_err(
                "AREDIS_TEST_STATE_DIR is not set: run this test "
                "through ctest so that its fixtures start server '%s'",
                name);
            return -1;
        }
        snprintf(path, sizeof path, "%s/%s.state", dir, name);
    }

    FILE *f = fopen(path, "r");
    if (f == NULL) {
        testenv_set_err(
            "server state file %s: %s. The fixture that starts this "
            "server did not run or failed; see the server.*.start "
            "test's output",
            path, strerror(errno));
        return -1;
    }
    char line[1024];
    int rc = 0;
    while (rc == 0 && fgets(line, sizeof line, f) != NULL)
        rc = parse_line(s, line, path);
    fclose(f);
    if (rc != 0)
        return -1;

    if (s->host[0] == '\0' || (s->port == 0 && s->unixsocket[0] == '\0')) {
        testenv_set_err("%s: no host and port or unix socket in the state file",
                        path);
        return -1;
    }
    if (!is_loopback(s->host)) {
        testenv_set_err("%s: host '%s' is not a loopback address", path,
                        s->host);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * Blocking connection
 * ------------------------------------------------------------------------ */

/* Wait until fd is ready for `events` or the deadline passes. */
static int wait_fd(int fd, short events, long long deadline, const char *what)
{
    for (;;) {
        long long left = deadline - testenv_now_ms();
        if (left <= 0) {
            testenv_set_err("timed out waiting for %s", what);
            return -1;
        }
        struct pollfd p = {.fd = fd, .events = events, .revents = 0};
        int n = poll(&p, 1, (int)left);
        if (n > 0)
            return 0; /* ready, or an error the next call will report */
        if (n < 0 && errno != EINTR) {
            testenv_set_err("poll: %s", strerror(errno));
            return -1;
        }
    }
}

static int set_nonblocking(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* Connect a non-blocking socket to addr within the timeout; 0 or -1. */
static int connect_addr(testenv_conn *c, int family,
                        const struct sockaddr *addr, socklen_t addrlen,
                        const char *desc)
{
    c->fd = -1;
    c->reader = NULL;
    c->timeout_ms = TESTENV_DEFAULT_TIMEOUT_MS;

    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        testenv_set_err("socket: %s", strerror(errno));
        return -1;
    }
    if (set_nonblocking(fd) != 0) {
        testenv_set_err("fcntl: %s", strerror(errno));
        goto fail;
    }
    if (connect(fd, addr, addrlen) != 0) {
        if (errno != EINPROGRESS) {
            testenv_set_err("connect to %s: %s", desc, strerror(errno));
            goto fail;
        }
        if (wait_fd(fd, POLLOUT, testenv_now_ms() + c->timeout_ms, desc) != 0)
            goto fail;
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
            err = errno;
        if (err != 0) {
            testenv_set_err("connect to %s: %s", desc, strerror(err));
            goto fail;
        }
    }
    c->reader = aredis_reader_new(NULL);
    if (c->reader == NULL) {
        testenv_set_err("aredis_reader_new: out of memory");
        goto fail;
    }
    c->fd = fd;
    return 0;
fail:
    close(fd);
    return -1;
}

int testenv_connect(testenv_conn *c, const testenv_server *s)
{
    char port[16], desc[128];
    snprintf(port, sizeof port, "%d", s->port);
    snprintf(desc, sizeof desc, "%s:%d", s->host, s->port);
    c->fd = -1;
    c->reader = NULL;

    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int gai = getaddrinfo(s->host, port, &hints, &res);
    if (gai != 0 || res == NULL) {
        testenv_set_err("resolve %s: %s", desc, gai_strerror(gai));
        return -1;
    }
    int rc =
        connect_addr(c, res->ai_family, res->ai_addr, res->ai_addrlen, desc);
    freeaddrinfo(res);
    return rc;
}

int testenv_connect_unix(testenv_conn *c, const testenv_server *s)
{
    struct sockaddr_un sa;
    c->fd = -1;
    c->reader = NULL;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    size_t n = strlen(s->unixsocket);
    if (n == 0 || n >= sizeof sa.sun_path) {
        testenv_set_err("server '%s' has no usable unix socket path", s->name);
        return -1;
    }
    memcpy(sa.sun_path, s->unixsocket, n + 1);
    return connect_addr(c, AF_UNIX, (const struct sockaddr *)&sa,
                        (socklen_t)sizeof sa, s->unixsocket);
}

void testenv_close(testenv_conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    aredis_reader_free(c->reader);
    c->reader = NULL;
}

int testenv_send(testenv_conn *c, const void *data, size_t len)
{
    const char *p = data;
    long long deadline = testenv_now_ms() + c->timeout_ms;
    while (len > 0) {
        ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (wait_fd(c->fd, POLLOUT, deadline, "the socket to drain") != 0)
                return -1;
            continue;
        }
        testenv_set_err("send: %s", n < 0 ? strerror(errno) : "wrote nothing");
        return -1;
    }
    return 0;
}

int testenv_recv(testenv_conn *c, char *buf, size_t cap, size_t *n)
{
    long long deadline = testenv_now_ms() + c->timeout_ms;
    *n = 0;
    for (;;) {
        ssize_t r = recv(c->fd, buf, cap, 0);
        if (r > 0) {
            *n = (size_t)r;
            return 0;
        }
        if (r == 0) {
            testenv_set_err("the server closed the connection");
            return -1;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            testenv_set_err("recv: %s", strerror(errno));
            return -1;
        }
        if (wait_fd(c->fd, POLLIN, deadline, "data from the server") != 0)
            return -1;
    }
}

int testenv_read_reply(testenv_conn *c, const aredis_reply **out)
{
    long long deadline = testenv_now_ms() + c->timeout_ms;
    *out = NULL;
    for (;;) {
        /* A reply may already be buffered (pipelining). */
        int rc = aredis_reader_get_reply(c->reader, out);
        if (rc == 1)
            return 0;
        if (rc < 0) {
            testenv_set_err("reader failed: %s (%s)", aredis_err_name(rc),
                            aredis_reader_errstr(c->reader));
            return -1;
        }
        if (wait_fd(c->fd, POLLIN, deadline, "a reply") != 0)
            return -1;

        /* Read straight into the reader's own buffer. */
        size_t avail = 0;
        char *p = aredis_reader_prepare(c->reader, 16384, &avail);
        if (p == NULL) {
            testenv_set_err("aredis_reader_prepare failed: %s (%s)",
                            aredis_err_name(aredis_reader_error(c->reader)),
                            aredis_reader_errstr(c->reader));
            return -1;
        }
        ssize_t n = recv(c->fd, p, avail, 0);
        int saved = errno;
        aredis_reader_commit(c->reader, n > 0 ? (size_t)n : 0);
        if (n > 0)
            continue;
        if (n == 0) {
            testenv_set_err(
                "the server closed the connection before a complete "
                "reply (%zu bytes buffered)",
                aredis_reader_buffered(c->reader));
            return -1;
        }
        if (saved != EINTR && saved != EAGAIN && saved != EWOULDBLOCK) {
            testenv_set_err("recv: %s", strerror(saved));
            return -1;
        }
    }
}

/* Send an encoded command and read its reply; frees the buffer. */
static int send_and_read(testenv_conn *c, aredis_buf *b,
                         const aredis_reply **out)
{
    int rc = testenv_send(c, b->data, b->len);
    aredis_buf_cleanup(b);
    return rc == 0 ? testenv_read_reply(c, out) : -1;
}

int testenv_command(testenv_conn *c, const aredis_reply **out, const char *fmt,
                    ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = testenv_vcommand(c, out, fmt, ap);
    va_end(ap);
    return rc;
}

int testenv_vcommand(testenv_conn *c, const aredis_reply **out, const char *fmt,
                     va_list ap)
{
    aredis_buf b;
    aredis_buf_init(&b);
    int rc = aredis_write_vfmt(&b, fmt, ap);
    if (rc != 0) {
        testenv_set_err("aredis_write_vfmt(\"%s\"): %s", fmt,
                        aredis_err_name(rc));
        aredis_buf_cleanup(&b);
        return -1;
    }
    return send_and_read(c, &b, out);
}

int testenv_commandv(testenv_conn *c, const aredis_reply **out, int argc,
                     const char *const *argv, const size_t *argvlen)
{
    aredis_buf b;
    aredis_buf_init(&b);
    int rc = aredis_write_argv(&b, argc, argv, argvlen);
    if (rc != 0) {
        testenv_set_err("aredis_write_argv: %s", aredis_err_name(rc));
        aredis_buf_cleanup(&b);
        return -1;
    }
    return send_and_read(c, &b, out);
}
