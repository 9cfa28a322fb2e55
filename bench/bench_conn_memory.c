/* Memory per idle connection: N clients connected, each having answered one
 * PING, then idle; what they cost in heap (malloc'd bytes in use) and in
 * resident memory, divided by N. aredis (N clients on one built-in loop)
 * against hiredis async (N contexts on one libevent base), one
 * implementation per process so neither sees the other's memory.
 *
 * Resident memory is counted in two parts. rss is the process's private
 * (anonymous) resident growth: heap pages, static data, stacks, whatever
 * either client touches of its own. code is the file-backed growth:
 * pages of code and read-only data mapped the first time they run, which
 * the kernel maps in 64 KB windows (fault-around). That part is not a
 * cost of connections and does not count the same for both: hiredis and
 * libevent are shared libraries whose code is mapped at load (by their
 * initializers) and by event_base_new(), before the measurement starts,
 * while aredis is linked into this program and its code is mapped as
 * the first connection runs it; it is printed apart, for the record.
 *
 *   bench_conn_memory --impl aredis|hiredis --clients N [--port P]
 *                     [--host H] [--idle-ms MS]
 *
 * --idle-ms keeps the loop running that long after the last PONG before
 * measuring (connections that shrink when idle get the chance to). With
 * --commands K, each client then runs K PINGs one after the other, all
 * clients at once, and the CPU time (user + system) per command is
 * reported too: what many connections cost the loop per command. Prints
 * one line: impl, clients, heap, private resident and code bytes per
 * connection, and ns of CPU per command. bench/conn_memory.sh runs both against
 * a throwaway server. */
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "aredis/aredis.h"

static struct {
    const char *impl;
    const char *host;
    int port;
    int clients;
    int idle_ms;
    int commands;
} cfg = {"aredis", "127.0.0.1", 6379, 100, 0, 0};

static int replies;
static int failures;
static long long sent, target; /* the --commands phase */

static double cpu_ns(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ((double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec) * 1e9 +
           ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) * 1e3;
}

static void die(const char *msg)
{
    fprintf(stderr, "bench_conn_memory: %s\n", msg);
    exit(1);
}

static size_t heap_in_use(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

/* Resident bytes: private (anonymous) and file-backed (shared). */
typedef struct resident {
    size_t rss, code;
} resident;

static resident resident_now(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, pages = 0, shared = 0;
    if (f == NULL)
        die("cannot open /proc/self/statm");
    if (fscanf(f, "%lu %lu %lu", &size, &pages, &shared) != 3)
        die("cannot read /proc/self/statm");
    fclose(f);
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    return (resident){(pages - shared) * page, shared * page};
}

static resident resident_since(resident r0)
{
    resident r = resident_now();
    return (resident){r.rss - r0.rss, r.code - r0.code};
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- aredis ------------------------------------------------------------- */

static void on_pong(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    (void)ud;
    if (r->type == AREDIS_REPLY_ERROR)
        failures++;
    replies++;
}

static void on_pong_again(aredis_client *c, const aredis_reply *r, void *ud)
{
    on_pong(c, r, ud);
    if (sent < target) {
        sent++;
        if (aredis_command(c, on_pong_again, NULL, "PING") != 0)
            die("aredis_command failed");
    }
}

static void run_aredis(size_t *heap, resident *rss, double *cpu)
{
    aredis_loop *loop = aredis_loop_new();
    if (loop == NULL)
        die("aredis_loop_new failed");
    char url[128];
    snprintf(url, sizeof url, "redis://%s:%d/0", cfg.host, cfg.port);
    aredis_client **v = calloc((size_t)cfg.clients, sizeof *v);
    if (v == NULL)
        die("out of memory");
    /* The array and the loop are not the connections' cost. */
    size_t heap0 = heap_in_use();
    resident rss0 = resident_now();
    for (int i = 0; i < cfg.clients; i++) {
        v[i] = aredis_client_new(loop, &(aredis_options){.url = url}, NULL);
        if (v[i] == NULL)
            die("aredis_client_new failed");
        if (aredis_command(v[i], on_pong, NULL, "PING") != 0)
            die("aredis_command failed");
    }
    while (replies < cfg.clients)
        aredis_loop_run_once(loop, 1000);
    int64_t until = now_ms() + cfg.idle_ms;
    while (now_ms() < until)
        aredis_loop_run_once(loop, (int)(until - now_ms()));
    *heap = heap_in_use() - heap0;
    *rss = resident_since(rss0);
    if (cfg.commands > 0) {
        replies = 0;
        target = (long long)cfg.clients * cfg.commands;
        double t0 = cpu_ns();
        for (int i = 0; i < cfg.clients; i++) {
            sent++;
            if (aredis_command(v[i], on_pong_again, NULL, "PING") != 0)
                die("aredis_command failed");
        }
        while (replies < target)
            aredis_loop_run_once(loop, 1000);
        *cpu = (cpu_ns() - t0) / (double)target;
    }
    for (int i = 0; i < cfg.clients; i++)
        aredis_client_free(v[i]);
    aredis_loop_run_once(loop, 0);
    aredis_loop_free(loop);
    free(v);
}

/* ---- hiredis async on libevent ------------------------------------------ */

static void on_pong_hiredis(redisAsyncContext *ac, void *reply, void *pd)
{
    (void)ac;
    (void)pd;
    redisReply *r = reply;
    if (r == NULL || r->type == REDIS_REPLY_ERROR)
        failures++;
    replies++;
    if (pd != NULL && sent < target) {
        sent++;
        if (redisAsyncCommand(ac, on_pong_hiredis, pd, "PING") != REDIS_OK)
            die("redisAsyncCommand failed");
    }
}

static void on_idle_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    event_base_loopbreak(arg);
}

static void run_hiredis(size_t *heap, resident *rss, double *cpu)
{
    struct event_base *evb = event_base_new();
    if (evb == NULL)
        die("event_base_new failed");
    redisAsyncContext **v = calloc((size_t)cfg.clients, sizeof *v);
    if (v == NULL)
        die("out of memory");
    size_t heap0 = heap_in_use();
    resident rss0 = resident_now();
    for (int i = 0; i < cfg.clients; i++) {
        v[i] = redisAsyncConnect(cfg.host, cfg.port);
        if (v[i] == NULL || v[i]->err)
            die("redisAsyncConnect failed");
        redisLibeventAttach(v[i], evb);
        if (redisAsyncCommand(v[i], on_pong_hiredis, NULL, "PING") != REDIS_OK)
            die("redisAsyncCommand failed");
    }
    while (replies < cfg.clients)
        event_base_loop(evb, EVLOOP_ONCE);
    if (cfg.idle_ms > 0) {
        struct event *t = evtimer_new(evb, on_idle_timer, evb);
        struct timeval tv = {cfg.idle_ms / 1000, (cfg.idle_ms % 1000) * 1000};
        evtimer_add(t, &tv);
        event_base_dispatch(evb);
        event_free(t);
    }
    *heap = heap_in_use() - heap0;
    *rss = resident_since(rss0);
    if (cfg.commands > 0) {
        replies = 0;
        target = (long long)cfg.clients * cfg.commands;
        double t0 = cpu_ns();
        for (int i = 0; i < cfg.clients; i++) {
            sent++;
            if (redisAsyncCommand(v[i], on_pong_hiredis, &cfg, "PING") !=
                REDIS_OK)
                die("redisAsyncCommand failed");
        }
        while (replies < target)
            event_base_loop(evb, EVLOOP_ONCE);
        *cpu = (cpu_ns() - t0) / (double)target;
    }
    for (int i = 0; i < cfg.clients; i++)
        redisAsyncFree(v[i]);
    event_base_free(evb);
    free(v);
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i += 2) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (val == NULL)
            die("every option takes a value");
        if (strcmp(a, "--impl") == 0)
            cfg.impl = val;
        else if (strcmp(a, "--host") == 0)
            cfg.host = val;
        else if (strcmp(a, "--port") == 0)
            cfg.port = atoi(val);
        else if (strcmp(a, "--clients") == 0)
            cfg.clients = atoi(val);
        else if (strcmp(a, "--idle-ms") == 0)
            cfg.idle_ms = atoi(val);
        else if (strcmp(a, "--commands") == 0)
            cfg.commands = atoi(val);
        else
            die("unknown option");
    }
    if (cfg.clients <= 0)
        die("--clients must be positive");
    size_t heap = 0;
    resident rss = {0, 0};
    double cpu = 0;
    if (strcmp(cfg.impl, "aredis") == 0)
        run_aredis(&heap, &rss, &cpu);
    else if (strcmp(cfg.impl, "hiredis") == 0)
        run_hiredis(&heap, &rss, &cpu);
    else
        die("--impl aredis|hiredis");
    if (failures > 0)
        die("some PINGs failed");
    size_t n = (size_t)cfg.clients;
    printf("%-7s clients=%d heap_per_conn=%zu rss_per_conn=%zu "
           "code_per_conn=%zu",
           cfg.impl, cfg.clients, heap / n, rss.rss / n, rss.code / n);
    if (cfg.commands > 0)
        printf(" cpu_ns_per_cmd=%.0f", cpu);
    printf("\n");
    return 0;
}
