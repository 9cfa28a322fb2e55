/* faultproxy: a TCP proxy that injects network faults on command (test tool).
 *
 *   faultproxy --listen-port-file F --target 127.0.0.1:PORT
 *              --control-port-file C [--max-seconds N] [--max-buffer BYTES]
 *
 * Clients connect to the listen port (OS-chosen, written to F); each
 * connection is relayed to the target. "up" is client -> server, "down"
 * server -> client. The control port (written to C) takes one command per
 * line and answers one line, "OK ..." or "ERR ...":
 *
 *   delay MS [up|down|both]   hold each chunk MS ms before passing it on
 *   drop on|off               blackhole: connections stay, bytes vanish
 *   pause on|off [up|down]    hold bytes; deliver them in order on "off"
 *   cut                       reset every connection (RST, not FIN)
 *   cutafter N [up|down]      cut once N more bytes have gone that way
 *                             (down when not given)
 *   refuse on|off             accept new connections and reset them
 *   reset                     clear every fault (held bytes are released)
 *   stats                     OK conns=N total=N up=B down=B cuts=N
 *   quit                      OK, then exit
 *
 * One thread, one poll() loop: byte order is kept in each direction under
 * any delay. Loopback only: a non-loopback target is refused at start-up,
 * and the proxy binds 127.0.0.1. It buffers at most --max-buffer bytes per
 * direction of a connection (it stops reading beyond that) and exits by
 * itself after --max-seconds. Test code; it uses nothing from the library. */
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
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { MAX_PAIRS = 128, MAX_CTL = 8, CHUNK = 16384, CTL_LINE = 256 };
enum { UP = 0, DOWN = 1 };

/* Bytes in transit in one direction, each chunk due at a time. */
typedef struct chunk {
    struct chunk *next;
    long long due;
    size_t len, off;
    char data[];
} chunk;

typedef struct dir {
    chunk *head, *tail;
    size_t queued;
    long long last_due; /* due times never go backwards: order is kept */
    int eof;            /* the source has finished sending */
    int shut;           /* the destination has been half-closed */
} dir;

/* One relayed connection: cfd faces the client, sfd the server. */
typedef struct pair {
    int cfd, sfd;
    int connecting; /* sfd's connect() has not completed */
    dir d[2];       /* d[UP]: cfd -> sfd; d[DOWN]: sfd -> cfd */
} pair;

typedef struct ctl {
    int fd;
    char line[CTL_LINE];
    size_t len;
} ctl;

static struct {
    long long delay[2];
    int drop;
    int pause[2];
    int refuse;
    long long cutafter[2]; /* per direction; -1: off */
} fault = {.cutafter = {-1, -1}};

static struct {
    unsigned long long up, down, total, cuts;
} stats;

static pair *pairs[MAX_PAIRS];
static ctl *ctls[MAX_CTL];
static struct sockaddr_in target;
static size_t max_buffer = 64u * 1024 * 1024;
static int quit_requested;

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "faultproxy: ");
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

static void set_nonblock(int fd)
{
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

/* Close with an RST: SO_LINGER with a zero timeout discards what is unsent
 * and resets the peer, as a crashed host or a middlebox would. */
static void close_rst(int fd)
{
    if (fd < 0)
        return;
    struct linger l = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    close(fd);
}

static void dir_clear(dir *d)
{
    while (d->head != NULL) {
        chunk *n = d->head->next;
        free(d->head);
        d->head = n;
    }
    d->tail = NULL;
    d->queued = 0;
}

static void pair_free(int i, int rst)
{
    pair *p = pairs[i];
    if (rst) {
        close_rst(p->cfd);
        close_rst(p->sfd);
        stats.cuts++;
    } else {
        close(p->cfd);
        if (p->sfd >= 0)
            close(p->sfd);
    }
    dir_clear(&p->d[UP]);
    dir_clear(&p->d[DOWN]);
    free(p);
    pairs[i] = NULL;
}

static void cut_all(void)
{
    for (int i = 0; i < MAX_PAIRS; i++)
        if (pairs[i] != NULL)
            pair_free(i, 1);
}

/* ---- relaying ----------------------------------------------------------- */

static int dir_add(dir *d, const char *buf, size_t n, long long delay)
{
    chunk *c = malloc(sizeof *c + n);
    if (c == NULL)
        return -1;
    c->next = NULL;
    c->len = n;
    c->off = 0;
    memcpy(c->data, buf, n);
    long long due = now_ms() + delay;
    if (due < d->last_due)
        due = d->last_due;
    c->due = d->last_due = due;
    if (d->tail != NULL)
        d->tail->next = c;
    else
        d->head = c;
    d->tail = c;
    d->queued += n;
    return 0;
}

/* Read from src into direction `w`; -1 on a reset (the pair is cut). */
static int relay_in(pair *p, int w)
{
    int src = w == UP ? p->cfd : p->sfd;
    dir *d = &p->d[w];
    char buf[CHUNK];
    ssize_t n = recv(src, buf, sizeof buf, 0);
    if (n == 0) {
        d->eof = 1;
        return 0;
    }
    if (n < 0)
        return (errno == EAGAIN || errno == EINTR) ? 0 : -1;
    if (fault.drop)
        return 0;
    return dir_add(d, buf, (size_t)n, fault.delay[w]);
}

/* Write what is due in direction w; -1 when the pair must go. */
static int relay_out(pair *p, int w, long long now)
{
    int dst = w == UP ? p->sfd : p->cfd;
    dir *d = &p->d[w];
    if (p->connecting)
        return 0;
    while (!fault.pause[w] && d->head != NULL && d->head->due <= now) {
        chunk *c = d->head;
        size_t len = c->len - c->off;
        int cut_now = 0;
        if (fault.cutafter[w] >= 0 && (long long)len >= fault.cutafter[w]) {
            len = (size_t)fault.cutafter[w];
            cut_now = 1;
        }
        ssize_t n =
            len == 0 ? 0 : send(dst, c->data + c->off, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return 0;
            return -1;
        }
        c->off += (size_t)n;
        d->queued -= (size_t)n;
        if (w == UP)
            stats.up += (unsigned long long)n;
        else
            stats.down += (unsigned long long)n;
        if (fault.cutafter[w] >= 0) {
            fault.cutafter[w] -= n;
            if (cut_now && fault.cutafter[w] == 0) {
                fault.cutafter[w] = -1;
                return -2; /* the caller cuts everything */
            }
        }
        if ((size_t)n < len)
            return 0; /* the socket is full */
        if (c->off == c->len) {
            d->head = c->next;
            if (d->head == NULL)
                d->tail = NULL;
            free(c);
        }
    }
    /* Everything the source sent has been delivered: pass its FIN on. */
    if (d->eof && d->head == NULL && !d->shut) {
        shutdown(dst, SHUT_WR);
        d->shut = 1;
    }
    return 0;
}

static void on_accept(int lfd)
{
    for (;;) {
        int fd = accept(lfd, NULL, NULL);
        if (fd < 0)
            return;
        stats.total++;
        if (fault.refuse) {
            close_rst(fd);
            continue;
        }
        int slot = -1;
        for (int i = 0; i < MAX_PAIRS && slot < 0; i++)
            if (pairs[i] == NULL)
                slot = i;
        pair *p = slot < 0 ? NULL : calloc(1, sizeof *p);
        int sfd =
            p == NULL ? -1 : socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (sfd < 0) {
            free(p);
            close_rst(fd);
            continue;
        }
        set_nonblock(fd);
        set_nonblock(sfd);
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        setsockopt(sfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        p->cfd = fd;
        p->sfd = sfd;
        if (connect(sfd, (struct sockaddr *)&target, sizeof target) != 0) {
            if (errno != EINPROGRESS) {
                /* The target is down: the client sees a reset, as it
                 * would from a dead host's kernel. */
                close(sfd);
                close_rst(fd);
                free(p);
                continue;
            }
            p->connecting = 1;
        }
        pairs[slot] = p;
    }
}

static int on_connected(pair *p)
{
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(p->sfd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0)
        return -1;
    p->connecting = 0;
    return 0;
}

/* ---- control ------------------------------------------------------------ */

static int parse_onoff(const char *s, int *out)
{
    if (s != NULL && strcmp(s, "on") == 0)
        *out = 1;
    else if (s != NULL && strcmp(s, "off") == 0)
        *out = 0;
    else
        return -1;
    return 0;
}

/* Which directions an optional argument names: bit UP and/or bit DOWN. */
static int parse_dirs(const char *s)
{
    if (s == NULL || strcmp(s, "both") == 0)
        return 3;
    if (strcmp(s, "up") == 0)
        return 1 << UP;
    if (strcmp(s, "down") == 0)
        return 1 << DOWN;
    return -1;
}

static long long parse_count(const char *s)
{
    if (s == NULL)
        return -1;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < 0)
        return -1;
    return v;
}

static void ctl_reply(ctl *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void ctl_reply(ctl *c, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n > sizeof buf - 2)
        n = (int)sizeof buf - 2;
    buf[n++] = '\n';
    /* Replies are short and the peer waits for them: a blocking-style
     * send loop is fine here. */
    for (int off = 0; off < n;) {
        ssize_t w = send(c->fd, buf + off, (size_t)(n - off), MSG_NOSIGNAL);
        if (w <= 0)
            return;
        off += (int)w;
    }
}

/* Split a line into at most n words in place; missing words stay NULL. */
static void split_words(char *line, char **tok, int n)
{
    char *p = line;
    for (int i = 0; i < n; i++) {
        while (*p == ' ' || *p == '\t' || *p == '\r')
            p++;
        if (*p == '\0')
            return;
        tok[i] = p;
        while (*p != '\0' && *p != ' ' && *p != '\t' && *p != '\r')
            p++;
        if (*p != '\0')
            *p++ = '\0';
    }
}

static void ctl_command(ctl *c, char *line)
{
    char *tok[3] = {NULL, NULL, NULL};
    split_words(line, tok, 3);
    char *cmd = tok[0], *a1 = tok[1], *a2 = tok[2];
    int on = 0;
    if (cmd == NULL) {
        ctl_reply(c, "ERR empty command");
    } else if (strcmp(cmd, "delay") == 0) {
        long long ms = parse_count(a1);
        int dirs = parse_dirs(a2);
        if (ms < 0 || dirs < 0) {
            ctl_reply(c, "ERR usage: delay MS [up|down|both]");
            return;
        }
        for (int w = 0; w < 2; w++)
            if (dirs & (1 << w))
                fault.delay[w] = ms;
        ctl_reply(c, "OK");
    } else if (strcmp(cmd, "drop") == 0) {
        if (parse_onoff(a1, &on) != 0) {
            ctl_reply(c, "ERR expected on|off");
            return;
        }
        fault.drop = on;
        ctl_reply(c, "OK");
    } else if (strcmp(cmd, "pause") == 0) {
        int dirs = parse_dirs(a2);
        if (parse_onoff(a1, &on) != 0 || dirs < 0) {
            ctl_reply(c, "ERR usage: pause on|off [up|down]");
            return;
        }
        for (int w = 0; w < 2; w++)
            if (dirs & (1 << w))
                fault.pause[w] = on;
        ctl_reply(c, "OK");
    } else if (strcmp(cmd, "cut") == 0) {
        cut_all();
        ctl_reply(c, "OK");
    } else if (strcmp(cmd, "cutafter") == 0) {
        long long n = parse_count(a1);
        int dirs = a2 == NULL ? 1 << DOWN : parse_dirs(a2);
        if (n < 0 || (dirs != 1 << UP && dirs != 1 << DOWN)) {
            ctl_reply(c, "ERR usage: cutafter N [up|down]");
            return;
        }
        fault.cutafter[dirs == 1 << UP ? UP : DOWN] = n;
        ctl_reply(c, "OK");
    } else if (strcmp(cmd, "refuse") == 0) {
        if (parse_onoff(a1, &on) != 0) {
            ctl_reply(c, "ERR expected on|off");
            return;
        }
        fault.refuse = on;
        ctl_reply(c, "OK");
    } else if (strcmp(cmd, "reset") == 0) {
        memset(&fault, 0, sizeof fault);
        fault.cutafter[UP] = fault.cutafter[DOWN] = -1;
        ctl_reply(c, "OK");
    } else if (strcmp(cmd, "stats") == 0) {
        int conns = 0;
        for (int i = 0; i < MAX_PAIRS; i++)
            conns += pairs[i] != NULL;
        ctl_reply(c, "OK conns=%d total=%llu up=%llu down=%llu cuts=%llu",
                  conns, stats.total, stats.up, stats.down, stats.cuts);
    } else if (strcmp(cmd, "quit") == 0) {
        ctl_reply(c, "OK");
        quit_requested = 1;
    } else {
        ctl_reply(c, "ERR unknown command '%.64s'", cmd);
    }
}

/* -1 when the control connection is finished. */
static int ctl_readable(ctl *c)
{
    char buf[512];
    ssize_t n = recv(c->fd, buf, sizeof buf, 0);
    if (n == 0)
        return -1;
    if (n < 0)
        return (errno == EAGAIN || errno == EINTR) ? 0 : -1;
    for (ssize_t i = 0; i < n; i++) {
        if (buf[i] == '\n') {
            c->line[c->len] = '\0';
            ctl_command(c, c->line);
            c->len = 0;
        } else if (c->len + 1 < sizeof c->line) {
            c->line[c->len++] = buf[i];
        } else {
            ctl_reply(c, "ERR line too long");
            return -1;
        }
    }
    return 0;
}

/* ---- setup -----------------------------------------------------------------
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
    socklen_t len = sizeof a;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        listen(fd, 128) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0)
        die("listen on 127.0.0.1: %s", strerror(errno));
    *port = ntohs(a.sin_port);
    set_nonblock(fd);
    return fd;
}

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

/* HOST:PORT, HOST an IPv4 literal in 127.0.0.0/8: nothing else is ever
 * contacted. */
static void parse_target(const char *s)
{
    char host[64];
    const char *colon = strrchr(s, ':');
    if (colon == NULL || (size_t)(colon - s) >= sizeof host)
        die("bad --target '%s' (want 127.0.0.1:PORT)", s);
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    long long port = parse_count(colon + 1);
    memset(&target, 0, sizeof target);
    target.sin_family = AF_INET;
    if (inet_pton(AF_INET, host, &target.sin_addr) != 1)
        die("refusing non-loopback or non-literal address %s", host);
    if ((ntohl(target.sin_addr.s_addr) >> 24) != 127)
        die("refusing non-loopback address %s", host);
    if (port < 1 || port > 65535)
        die("bad port in --target '%s'", s);
    target.sin_port = htons((uint16_t)port);
}

static void usage(void)
{
    fprintf(stderr, "usage: faultproxy --listen-port-file F --target "
                    "127.0.0.1:PORT --control-port-file C [--max-seconds N] "
                    "[--max-buffer BYTES]\n");
    exit(2);
}

/* The earliest due chunk that is blocked only by time; 0 if none. */
static long long next_due(void)
{
    long long t = 0;
    for (int i = 0; i < MAX_PAIRS; i++) {
        pair *p = pairs[i];
        if (p == NULL)
            continue;
        for (int w = 0; w < 2; w++) {
            chunk *c = p->d[w].head;
            if (c != NULL && !fault.pause[w] && (t == 0 || c->due < t))
                t = c->due;
        }
    }
    return t;
}

int main(int argc, char **argv)
{
    const char *listen_file = NULL, *control_file = NULL, *target_s = NULL;
    long long max_seconds = 300;
    for (int i = 1; i < argc; i += 2) {
        if (i + 1 >= argc)
            usage();
        const char *a = argv[i], *v = argv[i + 1];
        if (strcmp(a, "--listen-port-file") == 0)
            listen_file = v;
        else if (strcmp(a, "--control-port-file") == 0)
            control_file = v;
        else if (strcmp(a, "--target") == 0)
            target_s = v;
        else if (strcmp(a, "--max-seconds") == 0)
            max_seconds = parse_count(v);
        else if (strcmp(a, "--max-buffer") == 0)
            max_buffer = (size_t)parse_count(v);
        else
            usage();
    }
    if (listen_file == NULL || control_file == NULL || target_s == NULL ||
        max_seconds < 0)
        usage();
    parse_target(target_s);
    signal(SIGPIPE, SIG_IGN);

    int lport = 0, cport = 0;
    int lfd = listen_loopback(&lport);
    int cfd = listen_loopback(&cport);
    write_port_file(control_file, cport);
    write_port_file(listen_file, lport); /* last: it means "ready" */
    long long end = now_ms() + max_seconds * 1000;

    while (!quit_requested && now_ms() < end) {
        struct pollfd pfd[2 + MAX_CTL + 2 * MAX_PAIRS];
        int kind[2 + MAX_CTL + 2 * MAX_PAIRS]; /* what each entry is */
        int n = 0;
        pfd[n] = (struct pollfd){.fd = lfd, .events = POLLIN};
        kind[n++] = -1;
        pfd[n] = (struct pollfd){.fd = cfd, .events = POLLIN};
        kind[n++] = -2;
        for (int i = 0; i < MAX_CTL; i++) {
            if (ctls[i] == NULL)
                continue;
            pfd[n] = (struct pollfd){.fd = ctls[i]->fd, .events = POLLIN};
            kind[n++] = 1000 + i;
        }
        long long now = now_ms();
        for (int i = 0; i < MAX_PAIRS; i++) {
            pair *p = pairs[i];
            if (p == NULL)
                continue;
            /* Stop reading a side whose bytes cannot be passed on yet
             * beyond max_buffer: TCP's own flow control then holds the
             * sender back. */
            short ce = 0, se = 0;
            if (!p->d[UP].eof && p->d[UP].queued < max_buffer)
                ce |= POLLIN;
            if (!p->connecting && !p->d[DOWN].eof &&
                p->d[DOWN].queued < max_buffer)
                se |= POLLIN;
            if (p->connecting)
                se |= POLLOUT;
            chunk *up = p->d[UP].head, *down = p->d[DOWN].head;
            if (!p->connecting && up != NULL && !fault.pause[UP] &&
                up->due <= now)
                se |= POLLOUT;
            if (down != NULL && !fault.pause[DOWN] && down->due <= now)
                ce |= POLLOUT;
            pfd[n] = (struct pollfd){.fd = p->cfd, .events = ce};
            kind[n++] = 2000 + 2 * i;
            pfd[n] = (struct pollfd){.fd = p->sfd, .events = se};
            kind[n++] = 2000 + 2 * i + 1;
        }
        long long wake = end, due = next_due();
        if (due != 0 && due < wake)
            wake = due;
        long long wait = wake - now;
        if (wait < 0)
            wait = 0;
        if (poll(pfd, (nfds_t)n, (int)wait) < 0 && errno != EINTR)
            die("poll: %s", strerror(errno));

        now = now_ms();
        int cut = 0;
        for (int k = 0; k < n; k++) {
            short re = pfd[k].revents;
            if (kind[k] == -1) {
                if (re & POLLIN)
                    on_accept(lfd);
            } else if (kind[k] == -2) {
                if (re & POLLIN) {
                    int fd = accept(cfd, NULL, NULL);
                    int slot = -1;
                    for (int i = 0; i < MAX_CTL && slot < 0 && fd >= 0; i++)
                        if (ctls[i] == NULL)
                            slot = i;
                    ctl *c = slot < 0 ? NULL : calloc(1, sizeof *c);
                    if (c == NULL) {
                        if (fd >= 0)
                            close(fd);
                    } else {
                        c->fd = fd;
                        ctls[slot] = c;
                    }
                }
            } else if (kind[k] < 2000) {
                ctl *c = ctls[kind[k] - 1000];
                if (c != NULL && (re & (POLLIN | POLLHUP | POLLERR)) &&
                    ctl_readable(c) != 0) {
                    close(c->fd);
                    free(c);
                    ctls[kind[k] - 1000] = NULL;
                }
            } else {
                int i = (kind[k] - 2000) / 2,
                    server_side = (kind[k] - 2000) % 2;
                pair *p = pairs[i];
                if (p == NULL || re == 0)
                    continue;
                int bad = 0;
                if (server_side && p->connecting &&
                    (re & (POLLOUT | POLLERR | POLLHUP)))
                    bad = on_connected(p) != 0;
                if (!bad && (re & (POLLIN | POLLHUP | POLLERR)))
                    bad = relay_in(p, server_side ? DOWN : UP) != 0;
                if (bad)
                    pair_free(i, 1); /* a reset on one side resets the other */
            }
        }
        /* Deliver what is due, in every pair, whether or not its socket
         * showed up in this poll round (timers make bytes due, too). */
        for (int i = 0; i < MAX_PAIRS && !cut; i++) {
            pair *p = pairs[i];
            if (p == NULL)
                continue;
            int r = relay_out(p, UP, now);
            if (r == 0)
                r = relay_out(p, DOWN, now);
            if (r == -2)
                cut = 1;
            else if (r != 0)
                pair_free(i, 1);
            else if (p->d[UP].shut && p->d[DOWN].shut)
                pair_free(i, 0);
        }
        if (cut)
            cut_all();
    }
    cut_all();
    for (int i = 0; i < MAX_CTL; i++)
        if (ctls[i] != NULL) {
            close(ctls[i]->fd);
            free(ctls[i]);
        }
    close(lfd);
    close(cfd);
    return 0;
}
