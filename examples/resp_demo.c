/* resp_demo: talk to a Redis server with aredis's protocol layer only.
 *
 * The async client is not there yet, so this program brings its own plain
 * blocking POSIX socket. It encodes commands with aredis_write_fmt() and
 * aredis_write_argv(), reads replies with an aredis_reader (recv() goes
 * straight into the reader's buffer through aredis_reader_prepare() and
 * aredis_reader_commit()), and prints every reply as a tree. It switches to
 * RESP3 with HELLO 3 half-way, so maps, pushes and friends show up too.
 *
 *   resp_demo [redis://host:port]     (default: $REDIS_URL, else
 *                                      redis://127.0.0.1:6379)
 *
 * It writes a few keys under "aredis:demo:" and deletes them at the end. */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <aredis/aredis.h>

/* ------------------------------------------------------------------------
 * URL and socket
 * ------------------------------------------------------------------------ */

/* Parse "redis://host[:port][/db]" or "redis://[v6addr]:port" minimally:
 * only host and port are used. Returns 0 or -1. */
static int parse_url(const char *url, char *host, size_t hcap, char *port,
                     size_t pcap)
{
    const char *p = url;
    if (strncmp(p, "redis://", 8) != 0)
        return -1;
    p += 8;
    if (strchr(p, '@') != NULL)
        return -1; /* credentials: not for this demo */
    const char *hend;
    if (*p == '[') { /* [::1]:6379 */
        p++;
        hend = strchr(p, ']');
        if (hend == NULL)
            return -1;
    } else {
        hend = p + strcspn(p, ":/");
    }
    size_t hlen = (size_t)(hend - p);
    if (hlen == 0 || hlen >= hcap)
        return -1;
    memcpy(host, p, hlen);
    host[hlen] = '\0';
    p = hend + (*hend == ']');
    const char *pstart = "6379";
    size_t plen = 4;
    if (*p == ':') {
        p++;
        plen = strspn(p, "0123456789");
        pstart = p;
        if (plen == 0 || (p[plen] != '\0' && p[plen] != '/'))
            return -1;
    } else if (*p != '\0' && *p != '/') {
        return -1;
    }
    if (plen >= pcap)
        return -1;
    memcpy(port, pstart, plen);
    port[plen] = '\0';
    return 0;
}

/* A blocking TCP connection with 5 s send/receive timeouts, so the demo
 * cannot hang on a server that stops answering. */
static int connect_tcp(const char *host, const char *port)
{
    struct addrinfo hints, *res, *ai;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "resp_demo: %s: %s\n", host, gai_strerror(rc));
        return -1;
    }
    int fd = -1;
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
        if (fd < 0)
            continue;
        struct timeval tv = {.tv_sec = 5, .tv_usec = 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            break;
        close(fd);
        fd = -1;
    }
    if (fd < 0)
        fprintf(stderr, "resp_demo: connect to %s:%s: %s\n", host, port,
                strerror(errno));
    freeaddrinfo(res);
    return fd;
}

static int send_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            fprintf(stderr, "resp_demo: send: %s\n", strerror(errno));
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * Printing
 * ------------------------------------------------------------------------ */

/* Print bytes with C escapes, so \r\n and binary data stay visible. */
static void print_escaped(const char *s, size_t len, size_t max)
{
    for (size_t i = 0; i < len && i < max; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '\r')
            fputs("\\r", stdout);
        else if (ch == '\n')
            fputs("\\n", stdout);
        else if (ch == '"' || ch == '\\')
            printf("\\%c", ch);
        else if (ch < 0x20 || ch >= 0x7f)
            printf("\\x%02x", ch);
        else
            putchar(ch);
    }
    if (len > max)
        printf("... (%zu bytes)", len);
}

static void print_quoted(const char *s, size_t len)
{
    putchar('"');
    print_escaped(s, len, 200);
    putchar('"');
}

static void print_reply(const aredis_reply *r, int indent);

/* Print a scalar reply on the current line; returns 0 for an aggregate,
 * which it leaves to print_reply(). */
static int print_scalar(const aredis_reply *r)
{
    switch (r->type) {
    case AREDIS_REPLY_STRING:
        print_quoted(r->str, r->len);
        return 1;
    case AREDIS_REPLY_STATUS:
        printf("(status) %s", r->str);
        return 1;
    case AREDIS_REPLY_ERROR:
        printf("(error) %s", r->str);
        return 1;
    case AREDIS_REPLY_INTEGER:
        printf("(integer) %lld", r->integer);
        return 1;
    case AREDIS_REPLY_NIL:
        fputs("(nil)", stdout);
        return 1;
    case AREDIS_REPLY_DOUBLE: /* the server's own text: no rounding noise */
        printf("(double) %s", r->str);
        return 1;
    case AREDIS_REPLY_BOOL:
        fputs(r->integer ? "(true)" : "(false)", stdout);
        return 1;
    case AREDIS_REPLY_BIGNUM:
        printf("(big number) %s", r->str);
        return 1;
    case AREDIS_REPLY_VERB:
        printf("(verbatim %s) ", r->vformat);
        print_quoted(r->str, r->len);
        return 1;
    case AREDIS_REPLY_ARRAY:
    case AREDIS_REPLY_SET:
    case AREDIS_REPLY_PUSH:
    case AREDIS_REPLY_MAP:
    case AREDIS_REPLY_ATTR:
        return 0;
    default:
        printf("(unknown type %d)", r->type);
        return 1;
    }
}

/* Children of an aggregate, one per line, numbered; a map's as k => v. */
static void print_children(const aredis_reply *r, int indent)
{
    int is_map = r->type == AREDIS_REPLY_MAP || r->type == AREDIS_REPLY_ATTR;
    size_t step = is_map ? 2 : 1;
    for (size_t i = 0; i + step - 1 < r->len; i += step) {
        printf("%*s%zu) ", indent, "", i / step + 1);
        if (is_map) {
            /* Keys are nearly always strings; an aggregate key gets its
             * own lines, and the value follows after "=>". */
            if (print_scalar(&r->element[i]))
                fputs(" => ", stdout);
            else {
                print_reply(&r->element[i], indent + 4);
                printf("%*s=> ", indent + 4, "");
            }
            print_reply(&r->element[i + 1], indent + 4);
        } else {
            print_reply(&r->element[i], indent + 4);
        }
    }
}

/* Print one reply starting at the current position, ending the line:
 * scalars on one line, aggregates as a header line and then their
 * children, indented. Attributes (RESP3 |) come first. */
static void print_reply(const aredis_reply *r, int indent)
{
    if (r->attrs != NULL) {
        fputs("(attributes)\n", stdout);
        print_children(r->attrs, indent + 2);
        printf("%*s", indent, "");
    }
    if (print_scalar(r)) {
        putchar('\n');
        return;
    }
    int is_map = r->type == AREDIS_REPLY_MAP || r->type == AREDIS_REPLY_ATTR;
    size_t n = is_map ? r->len / 2 : r->len;
    printf("(%s, %zu %s)\n", aredis_reply_type_name(r->type), n,
           is_map ? (n == 1 ? "pair" : "pairs")
                  : (n == 1 ? "element" : "elements"));
    print_children(r, indent + 2);
}

/* ------------------------------------------------------------------------
 * Request / reply
 * ------------------------------------------------------------------------ */

typedef struct demo {
    int fd;
    aredis_reader *rd;
    aredis_buf out;
} demo;

/* Read one reply: recv() straight into the reader's buffer until a whole
 * reply is there. Shows the raw bytes of each read. */
static const aredis_reply *read_reply(demo *d)
{
    for (;;) {
        const aredis_reply *r;
        int rc = aredis_reader_get_reply(d->rd, &r);
        if (rc == 1)
            return r;
        if (rc < 0) {
            fprintf(stderr, "resp_demo: protocol error: %s\n",
                    aredis_reader_errstr(d->rd));
            return NULL;
        }
        size_t avail;
        char *p = aredis_reader_prepare(d->rd, 4096, &avail);
        if (p == NULL) {
            fprintf(stderr, "resp_demo: reader: %s\n",
                    aredis_strerror(aredis_reader_error(d->rd)));
            return NULL;
        }
        ssize_t n = recv(d->fd, p, avail, 0);
        if (n < 0 && errno == EINTR) {
            aredis_reader_commit(d->rd, 0);
            continue;
        }
        if (n <= 0) {
            fprintf(stderr, "resp_demo: recv: %s\n",
                    n == 0 ? "server closed the connection" : strerror(errno));
            aredis_reader_commit(d->rd, 0);
            return NULL;
        }
        fputs("   <- ", stdout);
        print_escaped(p, (size_t)n, 120);
        putchar('\n');
        aredis_reader_commit(d->rd, (size_t)n);
    }
}

/* Send what is encoded in d->out, then read and print `count` replies. */
static int flush_and_print(demo *d, const char *what, int count)
{
    printf("\n>> %s\n   -> ", what);
    print_escaped(d->out.data, d->out.len, 120);
    putchar('\n');
    int rc = send_all(d->fd, d->out.data, d->out.len);
    d->out.len = 0; /* keep the memory for the next command */
    if (rc != 0)
        return -1;
    for (int i = 0; i < count; i++) {
        const aredis_reply *r = read_reply(d);
        if (r == NULL)
            return -1;
        fputs("   ", stdout);
        print_reply(r, 3);
    }
    return 0;
}

/* Encode one command with the printf-like writer and run it. */
static int run_fmt(demo *d, const char *what, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = aredis_write_vfmt(&d->out, fmt, ap);
    va_end(ap);
    if (rc != 0) {
        fprintf(stderr, "resp_demo: encoding \"%s\": %s\n", fmt,
                aredis_strerror(rc));
        return -1;
    }
    return flush_and_print(d, what, 1);
}

static int run_demo(demo *d)
{
    static const char bin[] = "binary\0safe\r\nvalue";
    const char *argv[] = {"SET", "aredis:demo:greeting", "hello, world"};

    if (run_fmt(d, "PING", "PING") != 0)
        return -1;

    /* The argv writer: lengths from strlen() when argvlen is NULL. */
    if (aredis_write_argv(&d->out, 3, argv, NULL) != 0 ||
        flush_and_print(d,
                        "SET aredis:demo:greeting \"hello, world\" "
                        "(aredis_write_argv)",
                        1) != 0)
        return -1;
    if (run_fmt(d, "GET aredis:demo:greeting", "GET %s",
                "aredis:demo:greeting") != 0)
        return -1;

    /* %b takes a pointer and a length: binary safe. */
    if (run_fmt(d, "SET aredis:demo:bin <18 bytes with \\0 and \\r\\n>",
                "SET aredis:demo:bin %b", bin, sizeof bin - 1) != 0 ||
        run_fmt(d, "GET aredis:demo:bin", "GET aredis:demo:bin") != 0)
        return -1;

    if (run_fmt(d, "DEL aredis:demo:counter", "DEL aredis:demo:counter") != 0 ||
        run_fmt(d, "INCRBY aredis:demo:counter 41", "INCRBY %s %d",
                "aredis:demo:counter", 41) != 0)
        return -1;

    /* A pipeline: three commands in one write, then three replies. */
    for (int i = 0; i < 3; i++)
        if (aredis_write_fmt(&d->out, "INCR aredis:demo:counter") != 0)
            return -1;
    if (flush_and_print(d, "pipeline: INCR x3 in one write", 3) != 0)
        return -1;

    if (run_fmt(d, "GET aredis:demo:missing (a null)",
                "GET aredis:demo:missing") != 0 ||
        run_fmt(d, "NOSUCHCOMMAND (an error reply)", "NOSUCHCOMMAND") != 0)
        return -1;

    if (run_fmt(d, "HSET aredis:demo:hash (RESP2)",
                "HSET aredis:demo:hash name aredis lang C layer %s",
                "protocol") != 0 ||
        run_fmt(d, "HGETALL aredis:demo:hash (RESP2: a flat array)",
                "HGETALL aredis:demo:hash") != 0)
        return -1;

    /* RESP3 from here on: the same commands now answer with typed data. */
    if (run_fmt(d, "HELLO 3 (switch to RESP3)", "HELLO 3") != 0 ||
        run_fmt(d, "HGETALL aredis:demo:hash (RESP3: a map)",
                "HGETALL aredis:demo:hash") != 0 ||
        run_fmt(d, "CONFIG GET maxmemory* (a map)", "CONFIG GET %s",
                "maxmemory*") != 0 ||
        run_fmt(d, "SADD aredis:demo:set a b c",
                "SADD aredis:demo:set a b c") != 0 ||
        run_fmt(d, "SMEMBERS aredis:demo:set", "SMEMBERS aredis:demo:set") !=
            0 ||
        run_fmt(d, "ZADD aredis:demo:z", "ZADD aredis:demo:z %f pi %d one",
                3.14159, 1) != 0 ||
        run_fmt(d, "ZSCORE aredis:demo:z pi (a double)",
                "ZSCORE aredis:demo:z pi") != 0 ||
        run_fmt(d, "GET aredis:demo:missing (RESP3 null)",
                "GET aredis:demo:missing") != 0)
        return -1;

    return run_fmt(d, "DEL the demo keys", "DEL %s %s %s %s %s %s",
                   "aredis:demo:greeting", "aredis:demo:bin",
                   "aredis:demo:counter", "aredis:demo:hash", "aredis:demo:set",
                   "aredis:demo:z");
}

int main(int argc, char **argv)
{
    const char *url = argc > 1 ? argv[1] : getenv("REDIS_URL");
    if (url == NULL || *url == '\0')
        url = "redis://127.0.0.1:6379";
    char host[256], port[16];
    if (parse_url(url, host, sizeof host, port, sizeof port) != 0) {
        fprintf(stderr,
                "resp_demo: cannot use URL '%s' (expected "
                "redis://host:port)\n",
                url);
        return 2;
    }

    printf("aredis %s protocol demo: connecting to %s port %s\n",
           aredis_version_string(), host, port);
    demo d = {.fd = connect_tcp(host, port), .rd = NULL};
    if (d.fd < 0)
        return 1;
    d.rd = aredis_reader_new(NULL);
    aredis_buf_init(&d.out);
    int rc = d.rd != NULL ? run_demo(&d) : -1;
    aredis_buf_cleanup(&d.out);
    aredis_reader_free(d.rd);
    close(d.fd);
    puts(rc == 0 ? "\ndone." : "\nfailed.");
    return rc == 0 ? 0 : 1;
}
