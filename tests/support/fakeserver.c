/* fakeserver: a scripted, hostile imitation of a Redis server (test tool).
 *
 *   fakeserver --port-file F --script NAME [--then normal] [--max-seconds N]
 *              [--hold-ms N] [--bulk-len N] [--stream-bytes N]
 *              [--stray-delay-ms N] [--port P] [--verbose]
 *
 * Scripts: hugearray (*4294967295), hugebulk ($9999999999), deep (100000
 * nested *1), manynils (*1000000 and as many 3-byte nulls), endlessbulk (a
 * --bulk-len bulk, default 400 MB, of which only --stream-bytes, default
 * 2 MB, ever arrive, slowly), garbage (@#!), stray (+UNSOLICITED,
 * --stray-delay-ms after the handshake, before any command), silent (the
 * handshake, then nothing), silent-accept (not even the handshake), push (a
 * RESP3 push after the handshake, then normal: a control case for stray),
 * hello-ok (+OK to HELLO), stray-hello
 * (+UNSOLICITED, then HELLO's map), hello-stray (HELLO's map, then
 * +UNSOLICITED in the same write), normal; the three hello scripts say
 * nothing more on that connection. --hold-ms closes a hostile connection
 * that long after its bytes (default: never).
 *
 * It listens on 127.0.0.1 (an OS-chosen port, written to F once it
 * listens), answers each connection's handshake as Redis 7 would (HELLO 3,
 * AUTH, SELECT, CLIENT ..., PING), then answers the first other command
 * with the script's hostile bytes, so the client's protocol-error paths
 * can be driven by a real socket. With --then normal only the first
 * connection is hostile and later ones behave (PING -> PONG, ECHO -> its
 * argument, anything else -> OK), so a test can watch the client recover.
 *
 * It is bounded in every way: it exits after --max-seconds, buffers little,
 * binds loopback only and refuses peers that are not loopback. Test code:
 * never part of the library, and it uses nothing from it. */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum {
    MAX_CONNS = 64,
    IN_CAP = 64 * 1024,        /* commands are small; more is discarded */
    OUT_CAP = 4 * 1024 * 1024, /* never queue more than this per conn */
    STREAM_CHUNK = 16 * 1024,
    STREAM_TICK_MS = 10,
    MAX_ARGS = 8,
};

typedef enum {
    S_HUGEARRAY,
    S_HUGEBULK,
    S_DEEP,
    S_MANYNILS,
    S_ENDLESSBULK,
    S_GARBAGE,
    S_STRAY,
    S_SILENT,
    S_SILENT_ACCEPT,
    S_PUSH,
    S_HELLO_OK,
    S_STRAY_HELLO,
    S_HELLO_STRAY,
    S_NORMAL,
} script_kind;

static const char *const script_names[] = {
    "hugearray", "hugebulk",    "deep",        "manynils",      "endlessbulk",
    "garbage",   "stray",       "silent",      "silent-accept", "push",
    "hello-ok",  "stray-hello", "hello-stray", "normal",
};

static struct {
    script_kind script;
    int then_normal;
    long max_seconds;
    long hold_ms;           /* close a hostile conn this long after its bytes */
    long long bulk_len;     /* endlessbulk: the declared length */
    long long stream_bytes; /* endlessbulk: how much of it is ever sent */
    long stray_delay_ms;
    int verbose;
} opt = {
    .script = S_NORMAL,
    .max_seconds = 60,
    .hold_ms = -1,
    .bulk_len = 400LL * 1024 * 1024,
    .stream_bytes = 2LL * 1024 * 1024,
    .stray_delay_ms = 100,
};

typedef struct conn {
    int fd;
    int id;
    script_kind script; /* S_NORMAL once the script is spent or not ours */
    int fired;          /* the hostile bytes have been queued */
    char in[IN_CAP];
    size_t inlen;
    char *out;
    size_t outlen, outcap, outoff;
    long long stream_left; /* endlessbulk bytes still to send */
    long long next_tick;   /* when to queue the next stream chunk */
    long long stray_at;    /* when to send the stray reply; 0: none */
    long long close_at;    /* hold deadline; 0: none */
    int close_after_flush; /* QUIT */
} conn;

static conn *conns[MAX_CONNS];
static int nconns_total;

static void logf_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void logf_(const char *fmt, ...)
{
    if (!opt.verbose)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "fakeserver[%ld]: ", (long)getpid());
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "fakeserver: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static long long parse_num(const char *s, const char *what)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < 0)
        die("bad number '%s' for %s", s, what);
    return v;
}

/* ---- output ------------------------------------------------------------- */

/* Queue bytes for a connection. Over OUT_CAP the connection is closed: a
 * client that does not read is not worth buffering for. */
static int out_add(conn *c, const void *p, size_t n)
{
    if (c->outlen + n > OUT_CAP)
        return -1;
    if (c->outlen + n > c->outcap) {
        size_t cap = c->outcap ? c->outcap : 4096;
        while (cap < c->outlen + n)
            cap *= 2;
        char *q = realloc(c->out, cap);
        if (q == NULL)
            return -1;
        c->out = q;
        c->outcap = cap;
    }
    memcpy(c->out + c->outlen, p, n);
    c->outlen += n;
    return 0;
}

static int out_str(conn *c, const char *s)
{
    return out_add(c, s, strlen(s));
}

static void conn_close(int slot, const char *why)
{
    conn *c = conns[slot];
    logf_("conn %d closed: %s", c->id, why);
    close(c->fd);
    free(c->out);
    free(c);
    conns[slot] = NULL;
}

/* Write what is queued; -1 when the peer has gone. */
static int out_flush(conn *c)
{
    while (c->outoff < c->outlen) {
        ssize_t n = send(c->fd, c->out + c->outoff, c->outlen - c->outoff,
                         MSG_NOSIGNAL);
        if (n > 0) {
            c->outoff += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        return -1;
    }
    c->outoff = c->outlen = 0;
    return 0;
}

/* ---- the scripts ----------------------------------------------------------
 */

static void arm_hold(conn *c)
{
    if (opt.hold_ms >= 0)
        c->close_at = now_ms() + opt.hold_ms;
}

/* Queue the script's hostile bytes in answer to the first real command. */
static int fire(conn *c)
{
    char line[64];
    int rc = 0;
    c->fired = 1;
    logf_("conn %d: firing script %s", c->id, script_names[c->script]);
    switch (c->script) {
    case S_HUGEARRAY:
        rc = out_str(c, "*4294967295\r\n");
        break;
    case S_HUGEBULK:
        rc = out_str(c, "$9999999999\r\n");
        break;
    case S_DEEP:
        /* 100000 nested one-element arrays that never reach a leaf. */
        for (int i = 0; i < 100000 && rc == 0; i++)
            rc = out_add(c, "*1\r\n", 4);
        break;
    case S_MANYNILS:
        /* A complete, valid reply of 3 MB whose million nodes would take
         * 16 times its size in a reader that does not bound them. */
        rc = out_str(c, "*1000000\r\n");
        for (int i = 0; i < 1000000 && rc == 0; i++)
            rc = out_add(c, "_\r\n", 3);
        break;
    case S_GARBAGE:
        rc = out_str(c, "@#!\r\n");
        break;
    case S_ENDLESSBULK:
        /* A length the reader accepts, then a trickle that never reaches
         * it: the client must neither wait forever nor reserve what the
         * header promised. */
        snprintf(line, sizeof line, "$%lld\r\n", opt.bulk_len);
        rc = out_str(c, line);
        c->stream_left = opt.stream_bytes < opt.bulk_len ? opt.stream_bytes
                                                         : opt.bulk_len - 1;
        c->next_tick = now_ms();
        return rc; /* the hold starts once the stream ends */
    default:
        break;
    }
    arm_hold(c);
    return rc;
}

static int is_handshake(const char *name)
{
    return strcasecmp(name, "HELLO") == 0 || strcasecmp(name, "AUTH") == 0 ||
           strcasecmp(name, "SELECT") == 0 || strcasecmp(name, "CLIENT") == 0 ||
           strcasecmp(name, "PING") == 0;
}

static int answer_handshake(conn *c, int argc, char **argv)
{
    const char *name = argv[0];
    if (strcasecmp(name, "HELLO") == 0) {
        /* A RESP3 map shaped like Redis 7's, trimmed to what a client
         * may look at (RESP3.md, "Map type"). */
        static const char map[] = "%3\r\n+server\r\n+fake\r\n+version\r\n"
                                  "+7.0.0\r\n+proto\r\n:3\r\n";
        static const char stray[] = "+UNSOLICITED\r\n";
        switch (c->script) {
        case S_HELLO_OK:
            c->fired = 1;
            arm_hold(c);
            return out_str(c, "+OK\r\n");
        case S_STRAY_HELLO:
            c->fired = 1;
            arm_hold(c);
            return out_str(c, stray) || out_str(c, map);
        case S_HELLO_STRAY:
            c->fired = 1;
            arm_hold(c);
            return out_str(c, map) || out_str(c, stray);
        default:
            return out_str(c, map);
        }
    }
    if (strcasecmp(name, "PING") == 0) {
        if (argc > 1) {
            char hdr[32];
            size_t n = strlen(argv[1]);
            snprintf(hdr, sizeof hdr, "$%zu\r\n", n);
            return out_str(c, hdr) || out_add(c, argv[1], n) ||
                   out_str(c, "\r\n");
        }
        return out_str(c, "+PONG\r\n");
    }
    return out_str(c, "+OK\r\n");
}

static int answer_normal(conn *c, int argc, char **argv)
{
    if (is_handshake(argv[0]))
        return answer_handshake(c, argc, argv);
    if (strcasecmp(argv[0], "ECHO") == 0 && argc > 1) {
        char hdr[32];
        size_t n = strlen(argv[1]);
        snprintf(hdr, sizeof hdr, "$%zu\r\n", n);
        return out_str(c, hdr) || out_add(c, argv[1], n) || out_str(c, "\r\n");
    }
    if (strcasecmp(argv[0], "QUIT") == 0)
        c->close_after_flush = 1;
    return out_str(c, "+OK\r\n");
}

/* One command from the client; -1 closes the connection. */
static int on_command(conn *c, int argc, char **argv)
{
    if (argc == 0)
        return 0;
    if (c->script == S_NORMAL)
        return answer_normal(c, argc, argv);
    if (c->fired)
        return 0; /* the script is all this connection says */
    if (is_handshake(argv[0])) {
        if (c->script == S_STRAY || c->script == S_PUSH)
            c->stray_at = now_ms() + opt.stray_delay_ms;
        return answer_handshake(c, argc, argv);
    }
    switch (c->script) {
    case S_SILENT:
        c->fired = 1;
        arm_hold(c);
        return 0;
    case S_STRAY:
    case S_PUSH:
        /* A command came before the stray reply (or push): answer it,
         * the stray bytes still follow on their timer. */
        return answer_normal(c, argc, argv);
    default:
        return fire(c);
    }
}

/* ---- input: RESP arrays of bulk strings, or inline commands -----------------
 */

/* Parse one command at the front of the buffer, NUL-terminating its
 * arguments in place. \return bytes consumed, 0 if incomplete, -1 bad. */
static long parse_command(char *buf, size_t len, int *argc, char **argv)
{
    char *end = buf + len, *p = buf;
    *argc = 0;
    if (len == 0)
        return 0;
    if (*p != '*') {
        char *nl = memchr(p, '\n', len);
        if (nl == NULL)
            return 0;
        *nl = '\0';
        if (nl > p && nl[-1] == '\r')
            nl[-1] = '\0';
        for (char *tok = p; *tok != '\0';) {
            while (*tok == ' ')
                *tok++ = '\0';
            if (*tok == '\0')
                break;
            if (*argc < MAX_ARGS)
                argv[(*argc)++] = tok;
            while (*tok != '\0' && *tok != ' ')
                tok++;
        }
        return (long)(nl + 1 - buf);
    }
    char *nl = memchr(p, '\n', len);
    if (nl == NULL)
        return 0;
    long n = strtol(p + 1, NULL, 10);
    if (n < 0 || n > 1024)
        return -1;
    p = nl + 1;
    for (long i = 0; i < n; i++) {
        if (p >= end)
            return 0;
        if (*p != '$')
            return -1;
        nl = memchr(p, '\n', (size_t)(end - p));
        if (nl == NULL)
            return 0;
        long blen = strtol(p + 1, NULL, 10);
        if (blen < 0 || blen > IN_CAP)
            return -1;
        p = nl + 1;
        if (end - p < blen + 2)
            return 0;
        p[blen] = '\0'; /* overwrites the CR */
        if (*argc < MAX_ARGS)
            argv[(*argc)++] = p;
        p += blen + 2;
    }
    return (long)(p - buf);
}

/* Read and answer what arrived; -1 when the connection is done. */
static int on_readable(conn *c)
{
    if (c->inlen == sizeof c->in)
        c->inlen = 0; /* an oversized command: forget it */
    ssize_t n = recv(c->fd, c->in + c->inlen, sizeof c->in - c->inlen, 0);
    if (n == 0)
        return -1;
    if (n < 0)
        return (errno == EINTR || errno == EAGAIN) ? 0 : -1;
    if (c->script == S_SILENT_ACCEPT)
        return 0; /* read and ignored, so the client never blocks writing */
    c->inlen += (size_t)n;
    size_t off = 0;
    for (;;) {
        int argc = 0;
        char *argv[MAX_ARGS];
        long used = parse_command(c->in + off, c->inlen - off, &argc, argv);
        if (used < 0)
            return -1;
        if (used == 0)
            break;
        off += (size_t)used;
        if (on_command(c, argc, argv) != 0)
            return -1;
    }
    memmove(c->in, c->in + off, c->inlen - off);
    c->inlen -= off;
    return 0;
}

/* Timers: the stray reply, the endless stream and the hold deadline. */
static int on_tick(conn *c, long long now)
{
    if (c->stray_at != 0 && now >= c->stray_at) {
        c->stray_at = 0;
        if (c->script == S_PUSH) {
            /* Out-of-band data a client must take (RESP3.md, "Push
             * type"); afterwards this connection behaves normally. */
            logf_("conn %d: sending a push message", c->id);
            c->script = S_NORMAL;
            return out_str(c, ">2\r\n+invalidate\r\n*1\r\n+somekey\r\n");
        }
        c->fired = 1;
        logf_("conn %d: sending the stray reply", c->id);
        if (out_str(c, "+UNSOLICITED\r\n") != 0)
            return -1;
        arm_hold(c);
    }
    if (c->stream_left > 0 && now >= c->next_tick && c->outlen < 65536) {
        char chunk[STREAM_CHUNK];
        size_t n = c->stream_left < STREAM_CHUNK ? (size_t)c->stream_left
                                                 : STREAM_CHUNK;
        memset(chunk, 'x', n);
        if (out_add(c, chunk, n) != 0)
            return -1;
        c->stream_left -= (long long)n;
        c->next_tick = now + STREAM_TICK_MS;
        if (c->stream_left == 0) {
            logf_("conn %d: stream done", c->id);
            arm_hold(c);
        }
    }
    if (c->close_at != 0 && now >= c->close_at)
        return -1;
    return 0;
}

static long long conn_next_timer(const conn *c)
{
    long long t = 0;
    if (c->stray_at != 0)
        t = c->stray_at;
    if (c->stream_left > 0 && (t == 0 || c->next_tick < t))
        t = c->next_tick;
    if (c->close_at != 0 && (t == 0 || c->close_at < t))
        t = c->close_at;
    return t;
}

/* ---- setup ------------------------------------------------------------------
 */

static int listen_loopback(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die("socket: %s", strerror(errno));
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((uint16_t)*port);
    socklen_t len = sizeof a;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 64) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0)
        die("listen on 127.0.0.1:%d: %s", *port, strerror(errno));
    *port = ntohs(a.sin_port);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

/* Written then renamed, so a reader never sees a partial number. */
static void write_port_file(const char *path, int port)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (f == NULL || fprintf(f, "%d\n", port) < 0 || fclose(f) != 0)
        die("cannot write %s: %s", tmp, strerror(errno));
    if (rename(tmp, path) != 0)
        die("cannot rename %s: %s", tmp, strerror(errno));
}

static void on_accept(int lfd)
{
    for (;;) {
        struct sockaddr_in peer;
        socklen_t plen = sizeof peer;
        int fd = accept(lfd, (struct sockaddr *)&peer, &plen);
        if (fd < 0)
            return;
        /* Bound to 127.0.0.1 this cannot happen; checked anyway, so the
         * tool never answers anything but loopback. */
        if (peer.sin_family != AF_INET ||
            (ntohl(peer.sin_addr.s_addr) >> 24) != 127) {
            close(fd);
            continue;
        }
        int slot = -1;
        for (int i = 0; i < MAX_CONNS && slot < 0; i++)
            if (conns[i] == NULL)
                slot = i;
        conn *c = slot < 0 ? NULL : calloc(1, sizeof *c);
        if (c == NULL) {
            close(fd);
            continue;
        }
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        c->fd = fd;
        c->id = ++nconns_total;
        c->script = (opt.then_normal && c->id > 1) ? S_NORMAL : opt.script;
        if (c->script == S_SILENT_ACCEPT)
            arm_hold(c);
        conns[slot] = c;
        logf_("conn %d accepted (%s)", c->id, script_names[c->script]);
    }
}

static void usage(void)
{
    fprintf(
        stderr,
        "usage: fakeserver --port-file F --script NAME [--then normal]\n"
        "       [--max-seconds N] [--hold-ms N] [--bulk-len N]\n"
        "       [--stream-bytes N] [--stray-delay-ms N] [--port P] "
        "[--verbose]\n"
        "scripts: hugearray hugebulk deep manynils endlessbulk garbage stray "
        "silent silent-accept push hello-ok stray-hello hello-stray "
        "normal\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *port_file = NULL;
    int port = 0, have_script = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--verbose") == 0) {
            opt.verbose = 1;
            continue;
        }
        if (v == NULL)
            usage();
        i++;
        if (strcmp(a, "--port-file") == 0) {
            port_file = v;
        } else if (strcmp(a, "--script") == 0) {
            size_t k = 0;
            while (k < sizeof script_names / sizeof *script_names &&
                   strcmp(script_names[k], v) != 0)
                k++;
            if (k == sizeof script_names / sizeof *script_names)
                die("unknown script '%s'", v);
            opt.script = (script_kind)k;
            have_script = 1;
        } else if (strcmp(a, "--then") == 0) {
            if (strcmp(v, "normal") != 0 && strcmp(v, "same") != 0)
                die("--then takes normal or same");
            opt.then_normal = strcmp(v, "normal") == 0;
        } else if (strcmp(a, "--max-seconds") == 0) {
            opt.max_seconds = (long)parse_num(v, a);
        } else if (strcmp(a, "--hold-ms") == 0) {
            opt.hold_ms = (long)parse_num(v, a);
        } else if (strcmp(a, "--bulk-len") == 0) {
            opt.bulk_len = parse_num(v, a);
        } else if (strcmp(a, "--stream-bytes") == 0) {
            opt.stream_bytes = parse_num(v, a);
        } else if (strcmp(a, "--stray-delay-ms") == 0) {
            opt.stray_delay_ms = (long)parse_num(v, a);
        } else if (strcmp(a, "--port") == 0) {
            port = (int)parse_num(v, a);
        } else {
            usage();
        }
    }
    if (port_file == NULL || !have_script || opt.bulk_len < 1)
        usage();
    signal(SIGPIPE, SIG_IGN);

    int lfd = listen_loopback(&port);
    write_port_file(port_file, port);
    long long end = now_ms() + opt.max_seconds * 1000;
    logf_("listening on 127.0.0.1:%d, script %s", port,
          script_names[opt.script]);

    while (now_ms() < end) {
        struct pollfd pfd[MAX_CONNS + 1];
        int slot_of[MAX_CONNS + 1];
        int n = 0;
        long long now = now_ms(), next = end;
        pfd[n].fd = lfd;
        pfd[n].events = POLLIN;
        slot_of[n++] = -1;
        for (int i = 0; i < MAX_CONNS; i++) {
            conn *c = conns[i];
            if (c == NULL)
                continue;
            pfd[n].fd = c->fd;
            pfd[n].events = POLLIN | (c->outlen > c->outoff ? POLLOUT : 0);
            slot_of[n++] = i;
            long long t = conn_next_timer(c);
            if (t != 0 && t < next)
                next = t;
        }
        long long wait = next - now;
        if (wait < 0)
            wait = 0;
        if (poll(pfd, (nfds_t)n, (int)wait) < 0 && errno != EINTR)
            die("poll: %s", strerror(errno));

        now = now_ms();
        for (int k = 0; k < n; k++) {
            if (slot_of[k] < 0) {
                if (pfd[k].revents & POLLIN)
                    on_accept(lfd);
                continue;
            }
            conn *c = conns[slot_of[k]];
            if (c == NULL)
                continue;
            int bad = 0;
            if (pfd[k].revents & (POLLIN | POLLHUP | POLLERR))
                bad = on_readable(c) != 0;
            if (!bad)
                bad = on_tick(c, now) != 0;
            if (!bad)
                bad = out_flush(c) != 0;
            if (!bad && c->close_after_flush && c->outlen == 0)
                bad = 1;
            if (bad)
                conn_close(slot_of[k], "done");
        }
    }
    logf_("--max-seconds reached, exiting");
    for (int i = 0; i < MAX_CONNS; i++)
        if (conns[i] != NULL)
            conn_close(i, "exit");
    close(lfd);
    return 0;
}
