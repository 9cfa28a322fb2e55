/* Client benchmark: one aredis client against hiredis and a raw socket,
 * talking to a real redis-server over loopback.
 *
 *   bench_client --mode seq  --impl IMPL --n N [--host H] [--port P] [--db D]
 *   bench_client --mode pipe --impl IMPL --n N --w W [...]
 *
 * seq: N sequential awaited `KEYS *` on an empty database (emptied first
 * with FLUSHDB on a separate connection), one connection, and the wall
 * time includes the first connect and the handshake. IMPL is aredis
 * (built-in loop, each callback sends the next command), aredis-uv (the
 * same on libuv through the header-only adapter), aredis-sync (the
 * blocking facade), hiredis (redisCommand), hiredis-libevent
 * (redisAsyncCommand chained from its callback) or raw (one write() and
 * one read() per command, no library: the floor).
 *
 * pipe: N SET then N GET of 16-byte values on keys cycling over 10000
 * names, W commands in flight, each completion issuing the next. IMPL is
 * aredis (aredis_commandv), aredis-uv, or hiredis-libevent
 * (redisAsyncCommandArgv). The connection is made before the measured part;
 * wall time and getrusage(RUSAGE_SELF) user+sys CPU are taken around it.
 *
 * Every reply is checked (KEYS: an empty array, SET: OK, GET: the value);
 * any mismatch or error exits non-zero. Each run prints one line of
 * key=value pairs; bench/client.sh runs the matrix and prints the tables.
 * This is a program, not a test: nothing here asserts timing. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <uv.h>

#include "aredis/adapters/libuv.h"
#include "aredis/aredis.h"
#include "bench.h"

#define NKEYS 10000
#define VLEN 16

/* ------------------------------------------------------------------------
 * Options, clocks and failure
 * ------------------------------------------------------------------------ */

typedef struct config {
    const char *mode;
    const char *impl;
    const char *host;
    int port;
    int db;
    long n;
    long w;
} config;

static config cfg = {NULL, NULL, "127.0.0.1", 6379, 9, 0, 1};

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)))
__attribute__((noreturn));

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "bench_client: %s %s: ", cfg.mode ? cfg.mode : "",
            cfg.impl ? cfg.impl : "");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

/* User and system CPU seconds of this process so far. */
static void cpu_s(double *user, double *sys)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        die("getrusage: %s", strerror(errno));
    *user = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6;
    *sys = (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

/* ------------------------------------------------------------------------
 * Raw blocking socket helpers: the floor, and FLUSHDB outside the timing
 * ------------------------------------------------------------------------ */

static int raw_connect(void)
{
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)cfg.port);
    if (inet_pton(AF_INET, cfg.host, &sa.sin_addr) != 1)
        die("--host must be an IPv4 address, not %s", cfg.host);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        die("socket: %s", strerror(errno));
    int one = 1;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0)
        die("TCP_NODELAY: %s", strerror(errno));
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0)
        die("connect %s:%d: %s", cfg.host, cfg.port, strerror(errno));
    return fd;
}

static void write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            die("write: %s", w < 0 ? strerror(errno) : "0 bytes");
        p += w;
        n -= (size_t)w;
    }
}

/* Read exactly strlen(want) bytes and insist they are `want`. */
static void read_expect(int fd, const char *want)
{
    char buf[256];
    size_t n = strlen(want), got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            die("read: %s", r < 0 ? strerror(errno) : "server closed");
        got += (size_t)r;
    }
    if (memcmp(buf, want, n) != 0)
        die("unexpected reply %.*s (wanted %s)", (int)n, buf, want);
}

/* "*2\r\n$6\r\nSELECT\r\n$<len>\r\n<db>\r\n" */
static size_t encode_select(char *out, size_t cap)
{
    char db[16];
    int dl = snprintf(db, sizeof db, "%d", cfg.db);
    int n = snprintf(out, cap, "*2\r\n$6\r\nSELECT\r\n$%d\r\n%s\r\n", dl, db);
    return (size_t)n;
}

static void flush_db(void)
{
    char cmd[128];
    size_t n = encode_select(cmd, sizeof cmd);
    static const char flush[] = "*1\r\n$7\r\nFLUSHDB\r\n";
    memcpy(cmd + n, flush, sizeof flush - 1);
    int fd = raw_connect();
    write_all(fd, cmd, n + sizeof flush - 1);
    read_expect(fd, "+OK\r\n+OK\r\n");
    close(fd);
}

static const char keys_cmd[] = "*2\r\n$4\r\nKEYS\r\n$1\r\n*\r\n";

static void seq_raw(void)
{
    char sel[128];
    size_t sl = encode_select(sel, sizeof sel);
    double t0 = bench_now_s();
    int fd = raw_connect();
    write_all(fd, sel, sl);
    read_expect(fd, "+OK\r\n");
    for (long i = 0; i < cfg.n; i++) {
        /* One write and (almost always) one read per command. */
        write_all(fd, keys_cmd, sizeof keys_cmd - 1);
        read_expect(fd, "*0\r\n");
    }
    double t1 = bench_now_s();
    close(fd);
    printf("mode=seq impl=raw n=%ld wall_s=%.6f us_per_op=%.3f\n", cfg.n,
           t1 - t0, (t1 - t0) * 1e6 / (double)cfg.n);
}

/* ------------------------------------------------------------------------
 * The pipelined workload, shared by every implementation
 * ------------------------------------------------------------------------ */

static char keys[NKEYS][16];
static size_t key_len[NKEYS];
static char vals[NKEYS][VLEN + 1];

static void make_keys(void)
{
    for (int k = 0; k < NKEYS; k++) {
        key_len[k] = (size_t)snprintf(keys[k], sizeof keys[k], "bench:%05d", k);
        snprintf(vals[k], sizeof vals[k], "v%015d", k);
    }
}

typedef struct pipe_state {
    long total; /* 2N: N SET then N GET */
    long issued, done;
    double t0, t1;
    double u0, u1, s0, s1; /* user and system CPU at t0 and t1 */
} pipe_state;

static pipe_state ps;

/* Command number i: SET for i < N, GET afterwards; its key index. */
static int cmd_key(long i, int *is_set)
{
    *is_set = i < cfg.n;
    return (int)((*is_set ? i : i - cfg.n) % NKEYS);
}

static void pipe_begin(void)
{
    ps.total = 2 * cfg.n;
    ps.issued = ps.done = 0;
    cpu_s(&ps.u0, &ps.s0);
    ps.t0 = bench_now_s();
}

static void pipe_end(void)
{
    ps.t1 = bench_now_s();
    cpu_s(&ps.u1, &ps.s1);
}

static void pipe_report(void)
{
    double wall = ps.t1 - ps.t0, user = ps.u1 - ps.u0, sys = ps.s1 - ps.s0;
    double cpu = user + sys;
    printf("mode=pipe impl=%s n=%ld w=%ld ops=%ld wall_s=%.6f ops_s=%.0f "
           "user_s=%.6f sys_s=%.6f cpu_s=%.6f cpu_s_per_M=%.4f\n",
           cfg.impl, cfg.n, cfg.w, ps.total, wall, (double)ps.total / wall,
           user, sys, cpu, cpu * 1e6 / (double)ps.total);
}

/* ------------------------------------------------------------------------
 * aredis, on the built-in loop or on libuv
 * ------------------------------------------------------------------------ */

typedef struct aloop {
    aredis_loop *loop;
    uv_loop_t uv;
    int is_uv;
} aloop;

static aloop al;

static void aloop_init(int is_uv)
{
    al.is_uv = is_uv;
    if (is_uv) {
        if (uv_loop_init(&al.uv) != 0)
            die("uv_loop_init failed");
        al.loop = aredis_loop_uv(&al.uv);
    } else {
        al.loop = aredis_loop_new();
    }
    if (al.loop == NULL)
        die("cannot create the aredis loop");
}

static void aloop_run(void)
{
    if (al.is_uv) {
        uv_run(&al.uv, UV_RUN_DEFAULT);
        return;
    }
    int e = aredis_loop_run(al.loop);
    if (e != 0)
        die("aredis_loop_run: %s", aredis_strerror(e));
}

static void aloop_stop(void)
{
    if (al.is_uv)
        uv_stop(&al.uv);
    else
        aredis_loop_stop(al.loop);
}

/* Every client must have been freed and its release run (aloop_run). */
static void aloop_free(void)
{
    aredis_loop_free(al.loop);
    if (al.is_uv) {
        /* libuv closes handles asynchronously: let the closes finish. */
        uv_run(&al.uv, UV_RUN_DEFAULT);
        if (uv_loop_close(&al.uv) != 0)
            die("uv_loop_close: handles left open");
    }
}

static aredis_client *aredis_open(void)
{
    aredis_status st;
    aredis_client *c = aredis_client_new(
        al.loop,
        &(aredis_options){.host = cfg.host, .port = cfg.port, .db = cfg.db},
        &st);
    if (c == NULL)
        die("aredis_client_new: %s", st.msg);
    return c;
}

static void check_aredis_error(const aredis_reply *r)
{
    if (r->type == AREDIS_REPLY_ERROR)
        die("error reply %s: %.*s", aredis_err_name(r->code), (int)r->len,
            r->str);
}

static long seq_done;
static double seq_t0, seq_t1;

static void seq_print(void)
{
    printf("mode=seq impl=%s n=%ld wall_s=%.6f us_per_op=%.3f\n", cfg.impl,
           cfg.n, seq_t1 - seq_t0, (seq_t1 - seq_t0) * 1e6 / (double)cfg.n);
}

static void on_keys_aredis(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)ud;
    check_aredis_error(r);
    if (r->type != AREDIS_REPLY_ARRAY || r->len != 0)
        die("KEYS: wanted an empty array, got %s of %zu",
            aredis_reply_type_name(r->type), r->len);
    if (++seq_done < cfg.n) {
        int e = aredis_command(c, on_keys_aredis, NULL, "KEYS *");
        if (e != 0)
            die("aredis_command: %s", aredis_strerror(e));
        return;
    }
    seq_t1 = bench_now_s();
    /* The loop returns once the client's release has run. */
    aredis_client_free(c);
}

static void seq_aredis(int is_uv)
{
    aloop_init(is_uv);
    seq_t0 = bench_now_s();
    aredis_client *c = aredis_open();
    int e = aredis_command(c, on_keys_aredis, NULL, "KEYS *");
    if (e != 0)
        die("aredis_command: %s", aredis_strerror(e));
    aloop_run();
    if (seq_done != cfg.n)
        die("loop ended after %ld of %ld replies", seq_done, cfg.n);
    aloop_free();
    seq_print();
}

static void seq_aredis_sync(void)
{
    seq_t0 = bench_now_s();
    aredis_status st;
    aredis_sync *s = aredis_sync_connect(
        &(aredis_options){.host = cfg.host, .port = cfg.port, .db = cfg.db},
        &st);
    if (s == NULL)
        die("aredis_sync_connect: %s", st.msg);
    for (long i = 0; i < cfg.n; i++) {
        aredis_reply *r = aredis_sync_command(s, "KEYS *");
        if (r == NULL)
            die("aredis_sync_command: out of memory");
        check_aredis_error(r);
        if (r->type != AREDIS_REPLY_ARRAY || r->len != 0)
            die("KEYS: wanted an empty array, got %s of %zu",
                aredis_reply_type_name(r->type), r->len);
        aredis_reply_free(r);
    }
    seq_t1 = bench_now_s();
    aredis_sync_free(s);
    seq_print();
}

/* The argument vectors of command i (static: valid until the next call,
 * and aredis copies them at submit). */
static const char *cmd_argv[3];
static size_t cmd_argvlen[3];

static int build_cmd(long i)
{
    int is_set, k = cmd_key(i, &is_set);
    cmd_argv[0] = is_set ? "SET" : "GET";
    cmd_argvlen[0] = 3;
    cmd_argv[1] = keys[k];
    cmd_argvlen[1] = key_len[k];
    cmd_argv[2] = vals[k];
    cmd_argvlen[2] = VLEN;
    return is_set ? 3 : 2;
}

static void on_pipe_aredis(aredis_client *c, const aredis_reply *r, void *ud);

static void issue_aredis(aredis_client *c)
{
    long i = ps.issued++;
    int argc = build_cmd(i);
    int e = aredis_commandv(c, on_pipe_aredis, (void *)(intptr_t)i, argc,
                            cmd_argv, cmd_argvlen);
    if (e != 0)
        die("aredis_commandv: %s", aredis_strerror(e));
}

static void on_pipe_aredis(aredis_client *c, const aredis_reply *r, void *ud)
{
    long i = (long)(intptr_t)ud;
    int is_set, k = cmd_key(i, &is_set);
    check_aredis_error(r);
    if (is_set) {
        if (r->type != AREDIS_REPLY_STATUS || r->len != 2 ||
            memcmp(r->str, "OK", 2) != 0)
            die("SET: wanted OK, got %s", aredis_reply_type_name(r->type));
    } else if (r->type != AREDIS_REPLY_STRING || r->len != VLEN ||
               memcmp(r->str, vals[k], VLEN) != 0) {
        die("GET %s: wrong value (%s of %zu)", keys[k],
            aredis_reply_type_name(r->type), r->len);
    }
    if (++ps.done == ps.total) {
        pipe_end();
        aredis_client_free(c);
        return;
    }
    if (ps.issued < ps.total)
        issue_aredis(c);
}

static void on_ping_aredis(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    (void)ud;
    check_aredis_error(r);
    aloop_stop();
}

static void pipe_aredis(int is_uv)
{
    aloop_init(is_uv);
    aredis_client *c = aredis_open();
    /* Connect and handshake outside the measured part. */
    int e = aredis_command(c, on_ping_aredis, NULL, "PING");
    if (e != 0)
        die("aredis_command: %s", aredis_strerror(e));
    aloop_run();
    pipe_begin();
    for (long i = 0; i < cfg.w && ps.issued < ps.total; i++)
        issue_aredis(c);
    aloop_run();
    if (ps.done != ps.total)
        die("loop ended after %ld of %ld replies", ps.done, ps.total);
    aloop_free();
    pipe_report();
}

/* ------------------------------------------------------------------------
 * hiredis: blocking, and asynchronous on libevent
 * ------------------------------------------------------------------------ */

static void check_keys_hiredis(const redisReply *r)
{
    if (r == NULL)
        die("no reply");
    if (r->type == REDIS_REPLY_ERROR)
        die("error reply: %s", r->str);
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 0)
        die("KEYS: wanted an empty array, got type %d of %zu", r->type,
            r->elements);
}

static void check_ok_hiredis(const redisReply *r, const char *what)
{
    if (r == NULL || r->type != REDIS_REPLY_STATUS || strcmp(r->str, "OK"))
        die("%s: wanted OK, got %s", what,
            r == NULL ? "nothing"
            : r->str  ? r->str
                      : "another type");
}

static void seq_hiredis(void)
{
    seq_t0 = bench_now_s();
    redisContext *c = redisConnect(cfg.host, cfg.port);
    if (c == NULL || c->err)
        die("redisConnect: %s", c ? c->errstr : "out of memory");
    redisReply *r = redisCommand(c, "SELECT %d", cfg.db);
    check_ok_hiredis(r, "SELECT");
    freeReplyObject(r);
    for (long i = 0; i < cfg.n; i++) {
        r = redisCommand(c, "KEYS *");
        if (r == NULL)
            die("redisCommand: %s", c->errstr);
        check_keys_hiredis(r);
        freeReplyObject(r);
    }
    seq_t1 = bench_now_s();
    redisFree(c);
    seq_print();
}

static struct event_base *evb;

static void on_connect_hiredis(const redisAsyncContext *ac, int status)
{
    if (status != REDIS_OK)
        die("connect: %s", ac->errstr);
}

static void on_select_hiredis(redisAsyncContext *ac, void *reply, void *pd)
{
    (void)ac;
    (void)pd;
    check_ok_hiredis(reply, "SELECT");
}

static redisAsyncContext *hiredis_async_open(void)
{
    redisAsyncContext *ac = redisAsyncConnect(cfg.host, cfg.port);
    if (ac == NULL || ac->err)
        die("redisAsyncConnect: %s", ac ? ac->errstr : "out of memory");
    if (redisLibeventAttach(ac, evb) != REDIS_OK)
        die("redisLibeventAttach failed");
    redisAsyncSetConnectCallback(ac, on_connect_hiredis);
    /* Queued until the connection is up, and pipelined with whatever is
     * submitted next, as hiredis users write it. */
    if (redisAsyncCommand(ac, on_select_hiredis, NULL, "SELECT %d", cfg.db) !=
        REDIS_OK)
        die("redisAsyncCommand: %s", ac->errstr);
    return ac;
}

static void on_keys_hiredis(redisAsyncContext *ac, void *reply, void *pd)
{
    (void)pd;
    if (reply == NULL)
        die("no reply: %s", ac->errstr);
    check_keys_hiredis(reply);
    if (++seq_done < cfg.n) {
        if (redisAsyncCommand(ac, on_keys_hiredis, NULL, "KEYS *") != REDIS_OK)
            die("redisAsyncCommand: %s", ac->errstr);
        return;
    }
    seq_t1 = bench_now_s();
    redisAsyncDisconnect(ac);
}

static void seq_hiredis_libevent(void)
{
    evb = event_base_new();
    if (evb == NULL)
        die("event_base_new failed");
    seq_t0 = bench_now_s();
    redisAsyncContext *ac = hiredis_async_open();
    if (redisAsyncCommand(ac, on_keys_hiredis, NULL, "KEYS *") != REDIS_OK)
        die("redisAsyncCommand: %s", ac->errstr);
    event_base_dispatch(evb);
    if (seq_done != cfg.n)
        die("loop ended after %ld of %ld replies", seq_done, cfg.n);
    event_base_free(evb);
    seq_print();
}

static void on_pipe_hiredis(redisAsyncContext *ac, void *reply, void *pd);

static void issue_hiredis(redisAsyncContext *ac)
{
    long i = ps.issued++;
    int argc = build_cmd(i);
    if (redisAsyncCommandArgv(ac, on_pipe_hiredis, (void *)(intptr_t)i, argc,
                              cmd_argv, cmd_argvlen) != REDIS_OK)
        die("redisAsyncCommandArgv: %s", ac->errstr);
}

static void on_pipe_hiredis(redisAsyncContext *ac, void *reply, void *pd)
{
    long i = (long)(intptr_t)pd;
    int is_set, k = cmd_key(i, &is_set);
    redisReply *r = reply;
    if (r == NULL)
        die("no reply: %s", ac->errstr);
    if (r->type == REDIS_REPLY_ERROR)
        die("error reply: %s", r->str);
    if (is_set)
        check_ok_hiredis(r, "SET");
    else if (r->type != REDIS_REPLY_STRING || r->len != VLEN ||
             memcmp(r->str, vals[k], VLEN) != 0)
        die("GET %s: wrong value (type %d)", keys[k], r->type);
    if (++ps.done == ps.total) {
        pipe_end();
        redisAsyncDisconnect(ac);
        return;
    }
    if (ps.issued < ps.total)
        issue_hiredis(ac);
}

static void on_ping_hiredis(redisAsyncContext *ac, void *reply, void *pd)
{
    (void)ac;
    (void)pd;
    redisReply *r = reply;
    if (r == NULL || r->type != REDIS_REPLY_STATUS)
        die("PING failed");
    event_base_loopbreak(evb);
}

static void pipe_hiredis_libevent(void)
{
    evb = event_base_new();
    if (evb == NULL)
        die("event_base_new failed");
    redisAsyncContext *ac = hiredis_async_open();
    if (redisAsyncCommand(ac, on_ping_hiredis, NULL, "PING") != REDIS_OK)
        die("redisAsyncCommand: %s", ac->errstr);
    event_base_dispatch(evb);
    pipe_begin();
    for (long i = 0; i < cfg.w && ps.issued < ps.total; i++)
        issue_hiredis(ac);
    event_base_dispatch(evb);
    if (ps.done != ps.total)
        die("loop ended after %ld of %ld replies", ps.done, ps.total);
    event_base_free(evb);
    pipe_report();
}

/* ------------------------------------------------------------------------
 * main
 * ------------------------------------------------------------------------ */

static void usage(void)
{
    fprintf(stderr, "usage: bench_client --mode seq --impl "
                    "aredis|aredis-uv|aredis-sync|hiredis|hiredis-libevent|raw "
                    "--n N\n"
                    "       bench_client --mode pipe --impl "
                    "aredis|aredis-uv|hiredis-libevent --n N --w W\n"
                    "       common: [--host IPV4] [--port P] [--db D] (default "
                    "127.0.0.1 6379 9)\n");
    exit(2);
}

static long parse_long(const char *s, long min)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min)
        usage();
    return v;
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc)
            usage();
        const char *v = argv[++i];
        if (strcmp(a, "--mode") == 0)
            cfg.mode = v;
        else if (strcmp(a, "--impl") == 0)
            cfg.impl = v;
        else if (strcmp(a, "--host") == 0)
            cfg.host = v;
        else if (strcmp(a, "--port") == 0)
            cfg.port = (int)parse_long(v, 1);
        else if (strcmp(a, "--db") == 0)
            cfg.db = (int)parse_long(v, 0);
        else if (strcmp(a, "--n") == 0)
            cfg.n = parse_long(v, 1);
        else if (strcmp(a, "--w") == 0)
            cfg.w = parse_long(v, 1);
        else
            usage();
    }
    if (cfg.mode == NULL || cfg.impl == NULL || cfg.n <= 0 || cfg.port > 65535)
        usage();
    /* Keys from other runs never matter: KEYS needs an empty database, and
     * the values a GET expects are the same in every run. */
    flush_db();
    if (strcmp(cfg.mode, "seq") == 0) {
        if (strcmp(cfg.impl, "aredis") == 0)
            seq_aredis(0);
        else if (strcmp(cfg.impl, "aredis-uv") == 0)
            seq_aredis(1);
        else if (strcmp(cfg.impl, "aredis-sync") == 0)
            seq_aredis_sync();
        else if (strcmp(cfg.impl, "hiredis") == 0)
            seq_hiredis();
        else if (strcmp(cfg.impl, "hiredis-libevent") == 0)
            seq_hiredis_libevent();
        else if (strcmp(cfg.impl, "raw") == 0)
            seq_raw();
        else
            usage();
    } else if (strcmp(cfg.mode, "pipe") == 0) {
        make_keys();
        if (strcmp(cfg.impl, "aredis") == 0)
            pipe_aredis(0);
        else if (strcmp(cfg.impl, "aredis-uv") == 0)
            pipe_aredis(1);
        else if (strcmp(cfg.impl, "hiredis-libevent") == 0)
            pipe_hiredis_libevent();
        else
            usage();
        flush_db();
    } else {
        usage();
    }
    return fflush(stdout) == 0 ? 0 : 1;
}
