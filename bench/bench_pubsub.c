/* Pub/sub benchmark: one subscriber receiving N messages of 16 bytes,
 * aredis (pubsub on the shared RESP3 connection, or RESP2 with
 * --protocol 2) against hiredis async on libevent.
 *
 * The publisher is the same for both: a child process that writes
 * pre-encoded PUBLISH commands over a plain socket, pipelined in batches,
 * and reads their replies. Only the subscriber's CPU is measured
 * (getrusage of this process; the child's is not counted).
 *
 *   bench_pubsub --port P [--impl aredis|hiredis|both] [--n N]
 *                [--protocol 2|3]
 *
 * This is a program, not a test: nothing here asserts timing. */
#include <arpa/inet.h>
#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "aredis/aredis.h"
#include "bench.h"

static int port;
static long total = 1000000;
static const char channel[] = "bench:pubsub";

/* The publisher: N PUBLISH of a 16-byte payload, 1000 per write, then
 * read the 1000 replies (":1\r\n" each) before the next batch. */
static void publisher(long n)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0)
        _exit(1);
    char one[128];
    int len = snprintf(one, sizeof one,
                       "*3\r\n$7\r\nPUBLISH\r\n$%zu\r\n%s\r\n$16\r\n"
                       "0123456789abcdef\r\n",
                       strlen(channel), channel);
    enum { BATCH = 1000 };
    char *batch = malloc((size_t)len * BATCH);
    for (int i = 0; i < BATCH; i++)
        memcpy(batch + (size_t)i * (size_t)len, one, (size_t)len);
    char rbuf[65536];
    for (long sent = 0; sent < n; sent += BATCH) {
        long k = n - sent < BATCH ? n - sent : BATCH;
        size_t want = (size_t)k * (size_t)len, off = 0;
        while (off < want) {
            ssize_t w = write(fd, batch + off, want - off);
            if (w <= 0)
                _exit(1);
            off += (size_t)w;
        }
        long lines = 0;
        while (lines < k) {
            ssize_t r = read(fd, rbuf, sizeof rbuf);
            if (r <= 0)
                _exit(1);
            for (ssize_t i = 0; i < r; i++)
                lines += rbuf[i] == '\n';
        }
    }
    _exit(0);
}

static pid_t start_publisher(void)
{
    pid_t pid = fork();
    if (pid == 0)
        publisher(total);
    return pid;
}

typedef struct run {
    long received;
    double t0, c0, t1, c1;
    pid_t pub;
    int started;
} run;

/* ---- aredis ------------------------------------------------------------ */

static void ar_handler(aredis_pubsub *ps, const aredis_pubsub_message *m,
                       void *ud)
{
    (void)ps;
    run *r = ud;
    if (m->kind == AREDIS_PUBSUB_SUBSCRIBE && !r->started) {
        r->started = 1;
        r->t0 = bench_now_s();
        r->c0 = bench_cpu_s();
        r->pub = start_publisher();
        return;
    }
    if (m->kind == AREDIS_PUBSUB_MESSAGE && m->data_len == 16 &&
        ++r->received == total) {
        r->t1 = bench_now_s();
        r->c1 = bench_cpu_s();
    }
}

static int run_aredis(run *r, int protocol)
{
    char url[96];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d?protocol=%d", port,
             protocol);
    aredis_loop *loop = aredis_loop_new();
    aredis_status st;
    aredis_client *c =
        aredis_client_new(loop, &(aredis_options){.url = url}, &st);
    if (c == NULL) {
        fprintf(stderr, "aredis: %s\n", st.msg);
        return -1;
    }
    aredis_pubsub *ps = aredis_pubsub_new(c, NULL);
    aredis_pubsub_subscribe(ps, channel, ar_handler, r);
    while (r->received < total)
        if (aredis_loop_run_once(loop, 1000) < 0)
            return -1;
    aredis_pubsub_free(ps);
    aredis_client_free(c);
    aredis_loop_run(loop);
    aredis_loop_free(loop);
    return 0;
}

/* ---- hiredis async on libevent --------------------------------------- */

static void hi_on_message(redisAsyncContext *ac, void *reply, void *ud)
{
    run *r = ud;
    redisReply *m = reply;
    if (m == NULL || m->type != REDIS_REPLY_ARRAY || m->elements != 3)
        return;
    if (strcmp(m->element[0]->str, "subscribe") == 0 && !r->started) {
        r->started = 1;
        r->t0 = bench_now_s();
        r->c0 = bench_cpu_s();
        r->pub = start_publisher();
        return;
    }
    if (strcmp(m->element[0]->str, "message") == 0 &&
        m->element[2]->len == 16 && ++r->received == total) {
        r->t1 = bench_now_s();
        r->c1 = bench_cpu_s();
        redisAsyncDisconnect(ac);
    }
}

static int run_hiredis(run *r)
{
    struct event_base *base = event_base_new();
    redisAsyncContext *ac = redisAsyncConnect("127.0.0.1", port);
    if (ac == NULL || ac->err) {
        fprintf(stderr, "hiredis: cannot connect\n");
        return -1;
    }
    redisLibeventAttach(ac, base);
    redisAsyncCommand(ac, hi_on_message, r, "SUBSCRIBE %s", channel);
    event_base_dispatch(base);
    event_base_free(base);
    return r->received == total ? 0 : -1;
}

static void report(const char *name, run *r)
{
    int status = 0;
    if (r->pub > 0)
        waitpid(r->pub, &status, 0);
    double wall = r->t1 - r->t0, cpu = r->c1 - r->c0;
    printf("impl=%s n=%ld wall_s=%.3f msgs_per_s=%.0f sub_cpu_s=%.3f "
           "sub_cpu_ns_per_msg=%.1f publisher_ok=%d\n",
           name, total, wall, (double)total / wall, cpu,
           cpu * 1e9 / (double)total,
           WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

int main(int argc, char **argv)
{
    const char *impl = "both";
    int protocol = 3;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
            port = (int)strtol(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--impl") == 0 && i + 1 < argc)
            impl = argv[++i];
        else if (strcmp(argv[i], "--n") == 0 && i + 1 < argc)
            total = strtol(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--protocol") == 0 && i + 1 < argc)
            protocol = (int)strtol(argv[++i], NULL, 10);
        else {
            fprintf(stderr, "usage: bench_pubsub --port P [--impl "
                            "aredis|hiredis|both] [--n N] [--protocol 2|3]\n");
            return 2;
        }
    }
    if (port <= 0 || total <= 0)
        return 2;
    signal(SIGPIPE, SIG_IGN);
    double a_cpu = 0, h_cpu = 0, a_rate = 0, h_rate = 0;
    if (strcmp(impl, "hiredis") != 0) {
        run r = {0};
        if (run_aredis(&r, protocol) != 0)
            return 1;
        char name[32];
        snprintf(name, sizeof name, "aredis-resp%d", protocol);
        report(name, &r);
        a_cpu = r.c1 - r.c0;
        a_rate = (double)total / (r.t1 - r.t0);
    }
    if (strcmp(impl, "aredis") != 0) {
        run r = {0};
        if (run_hiredis(&r) != 0)
            return 1;
        report("hiredis-libevent", &r);
        h_cpu = r.c1 - r.c0;
        h_rate = (double)total / (r.t1 - r.t0);
    }
    if (a_cpu > 0 && h_cpu > 0)
        printf("ratio aredis/hiredis: msgs_per_s=%.3f sub_cpu_per_msg=%.3f\n",
               a_rate / h_rate, a_cpu / h_cpu);
    return 0;
}
