/* bench_lock: lock figures against a real redis-server (bench/lock.sh).
 *
 *   bench_lock --port P --mode cycles  [--n N] [--w W] [--impl aredis|hiredis]
 *   bench_lock --port P --mode handoff [--n REPS]
 *   bench_lock --port P --mode contend [--n N] [--procs K] [--fair 0|1]
 *
 * cycles   N acquire + release cycles with W locks in flight (W handles on
 *          distinct names, one aredis client on the built-in loop, each
 *          handle acquiring again as soon as its release is answered).
 *          --impl hiredis does the reference instead: 2 PINGs per cycle,
 *          W chains in flight, hiredis async on libevent (blocking hiredis
 *          for W = 1); --impl aredis-ping the same with aredis, to tell
 *          the lock's own cost from the library's. Prints "cycles/s".
 * handoff  REPS times: client A holds, client B waits (poll interval 60 s,
 *          so only the release notification can wake it), A releases;
 *          the time from A's release call to B's callback, p50 and max.
 * contend  K processes x N increments of a plain key (GET, SET) under the
 *          lock through the blocking facade, with fencing; checks the
 *          count and that the fencing tokens grew in acquisition order;
 *          prints the longest wait and how far apart the processes
 *          finished. */
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "aredis/aredis.h"
#include "bench.h"

static struct {
    int port;
    const char *mode;
    const char *impl;
    long n;
    int w;
    int procs;
    int fair;
} cfg = {0, "cycles", "aredis", 100000, 1, 4, 0};

__attribute__((format(printf, 1, 2))) static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "bench_lock: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(1);
}

static aredis_client *client(aredis_loop *loop)
{
    aredis_status st;
    aredis_client *c = aredis_client_new(
        loop, &(aredis_options){.host = "127.0.0.1", .port = cfg.port}, &st);
    if (c == NULL)
        die("%s", st.msg);
    return c;
}

/* ---- cycles ------------------------------------------------------------- */

static long cycles_left, cycles_done, chains_live;

static void cycle_acquired(aredis_lock *l, int status, void *ud);

static void cycle_released(aredis_lock *l, int status, void *ud)
{
    if (status != 0)
        die("release: %s", aredis_strerror(status));
    cycles_done++;
    if (cycles_left > 0) {
        cycles_left--;
        if (aredis_lock_acquire(l, 0, cycle_acquired, ud) != 0)
            die("acquire refused");
    } else {
        chains_live--;
    }
}

static void cycle_acquired(aredis_lock *l, int status, void *ud)
{
    if (status != 0)
        die("acquire: %s", aredis_strerror(status));
    if (aredis_lock_release(l, cycle_released, ud) != 0)
        die("release refused");
}

static void run_cycles_aredis(void)
{
    aredis_loop *loop = aredis_loop_new();
    aredis_client *c = client(loop);
    aredis_lock **locks = calloc((size_t)cfg.w, sizeof *locks);
    for (int i = 0; i < cfg.w; i++) {
        char name[64];
        snprintf(name, sizeof name, "bench:lock:%ld:%d", (long)getpid(), i);
        locks[i] = aredis_lock_new(c, name, NULL, NULL);
    }
    /* Warm up: connect, load the release script. */
    cycles_left = 0;
    chains_live = 1;
    aredis_lock_acquire(locks[0], 0, cycle_acquired, NULL);
    while (chains_live > 0)
        aredis_loop_run_once(loop, -1);
    cycles_done = 0;
    cycles_left = cfg.n - cfg.w;
    chains_live = cfg.w;
    double t0 = bench_now_s();
    for (int i = 0; i < cfg.w; i++)
        aredis_lock_acquire(locks[i], 0, cycle_acquired, NULL);
    while (chains_live > 0)
        aredis_loop_run_once(loop, -1);
    double t = bench_now_s() - t0;
    printf("cycles impl=aredis-lock w=%d n=%ld cycles/s=%.0f\n", cfg.w,
           cycles_done, (double)cycles_done / t);
    for (int i = 0; i < cfg.w; i++)
        aredis_lock_free(locks[i]);
    free(locks);
    aredis_client_free(c);
    aredis_loop_free(loop);
}

static void h_ping(redisAsyncContext *ac, void *rv, void *priv)
{
    if (rv == NULL)
        die("hiredis: %s", ac->errstr);
    intptr_t second = (intptr_t)priv;
    if (!second) {
        redisAsyncCommand(ac, h_ping, (void *)(intptr_t)1, "PING");
        return;
    }
    cycles_done++;
    if (cycles_left > 0) {
        cycles_left--;
        redisAsyncCommand(ac, h_ping, (void *)(intptr_t)0, "PING");
    } else if (--chains_live == 0) {
        redisAsyncDisconnect(ac);
    }
}

static void run_cycles_hiredis(void)
{
    double t0, t;
    if (cfg.w == 1) {
        redisContext *rc = redisConnect("127.0.0.1", cfg.port);
        if (rc == NULL || rc->err)
            die("redisConnect failed");
        freeReplyObject(redisCommand(rc, "PING"));
        t0 = bench_now_s();
        for (long i = 0; i < cfg.n; i++) {
            freeReplyObject(redisCommand(rc, "PING"));
            freeReplyObject(redisCommand(rc, "PING"));
        }
        t = bench_now_s() - t0;
        redisFree(rc);
        cycles_done = cfg.n;
    } else {
        struct event_base *base = event_base_new();
        redisAsyncContext *ac = redisAsyncConnect("127.0.0.1", cfg.port);
        if (ac == NULL || ac->err)
            die("redisAsyncConnect failed");
        redisLibeventAttach(ac, base);
        cycles_done = 0;
        cycles_left = cfg.n - cfg.w;
        chains_live = cfg.w;
        t0 = bench_now_s();
        for (int i = 0; i < cfg.w; i++)
            redisAsyncCommand(ac, h_ping, (void *)(intptr_t)0, "PING");
        event_base_dispatch(base);
        t = bench_now_s() - t0;
        event_base_free(base);
    }
    printf("cycles impl=hiredis-2ping w=%d n=%ld cycles/s=%.0f\n", cfg.w,
           cycles_done, (double)cycles_done / t);
}

/* aredis itself doing the reference: 2 PINGs per cycle, W chains. */
static void a_ping(aredis_client *c, const aredis_reply *r, void *ud)
{
    if (r->type == AREDIS_REPLY_ERROR)
        die("PING: %s", r->str);
    if (ud == NULL) {
        aredis_command(c, a_ping, (void *)1, "PING");
        return;
    }
    cycles_done++;
    if (cycles_left > 0) {
        cycles_left--;
        aredis_command(c, a_ping, NULL, "PING");
    } else {
        chains_live--;
    }
}

static void run_cycles_aredis_ping(void)
{
    aredis_loop *loop = aredis_loop_new();
    aredis_client *c = client(loop);
    cycles_left = 0;
    chains_live = 1;
    aredis_command(c, a_ping, NULL, "PING");
    while (chains_live > 0)
        aredis_loop_run_once(loop, -1);
    cycles_done = 0;
    cycles_left = cfg.n - cfg.w;
    chains_live = cfg.w;
    double t0 = bench_now_s();
    for (int i = 0; i < cfg.w; i++)
        aredis_command(c, a_ping, NULL, "PING");
    while (chains_live > 0)
        aredis_loop_run_once(loop, -1);
    double t = bench_now_s() - t0;
    printf("cycles impl=aredis-2ping w=%d n=%ld cycles/s=%.0f\n", cfg.w,
           cycles_done, (double)cycles_done / t);
    aredis_client_free(c);
    aredis_loop_free(loop);
}

/* ---- hand-off ----------------------------------------------------------- */

typedef struct done {
    int calls, status;
    double at;
} done;

static void on_done(aredis_lock *l, int status, void *ud)
{
    (void)l;
    done *d = ud;
    d->calls++;
    d->status = status;
    d->at = bench_now_s();
}

static void wait_for(aredis_loop *loop, done *d)
{
    while (!d->calls)
        aredis_loop_run_once(loop, -1);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void run_handoff(void)
{
    aredis_loop *loop = aredis_loop_new();
    aredis_client *c1 = client(loop), *c2 = client(loop);
    char name[64];
    snprintf(name, sizeof name, "bench:handoff:%ld", (long)getpid());
    aredis_lock *a = aredis_lock_new(c1, name, NULL, NULL);
    aredis_lock *b = aredis_lock_new(
        c2, name, &(aredis_lock_options){.poll_ms = 60000}, NULL);
    long reps = cfg.n;
    double *ms = calloc((size_t)reps, sizeof *ms);
    int polls = 0;
    for (long i = 0; i < reps; i++) {
        done d = {0};
        aredis_lock_acquire(a, 0, on_done, &d);
        wait_for(loop, &d);
        if (d.status != 0)
            die("A: %s", aredis_strerror(d.status));
        done db = {0};
        aredis_lock_acquire(b, 120000, on_done, &db);
        aredis_lock_stats st = {0};
        while (st.attempts < 2) {
            aredis_loop_run_once(loop, -1);
            aredis_lock_get_stats(b, &st);
        }
        /* Let B settle into its wait. */
        double settle = bench_now_s() + 0.005;
        while (bench_now_s() < settle)
            aredis_loop_run_once(loop, 1);
        double t0 = bench_now_s();
        aredis_lock_release(a, NULL, NULL);
        wait_for(loop, &db);
        if (db.status != 0)
            die("B: %s", aredis_strerror(db.status));
        ms[i] = (db.at - t0) * 1000;
        aredis_lock_get_stats(b, &st);
        polls += st.polls;
        d = (done){0};
        aredis_lock_release(b, on_done, &d);
        wait_for(loop, &d);
    }
    qsort(ms, (size_t)reps, sizeof *ms, cmp_double);
    printf("handoff reps=%ld p50_ms=%.3f max_ms=%.3f polls=%d\n", reps,
           ms[reps / 2], ms[reps - 1], polls);
    free(ms);
    aredis_lock_free(a);
    aredis_lock_free(b);
    aredis_client_free(c1);
    aredis_client_free(c2);
    aredis_loop_free(loop);
}

/* ---- contention ----------------------------------------------------------
 */

typedef struct report {
    double max_wait_ms, done_ms;
    long failures;
} report;

static void contend_child(const char *name, const char *counter,
                          const char *list, int fd)
{
    report rep = {0};
    aredis_sync *s = aredis_sync_connect(
        &(aredis_options){.host = "127.0.0.1", .port = cfg.port}, NULL);
    if (s == NULL)
        die("connect failed");
    aredis_lock *l = aredis_sync_lock_new(
        s, name, &(aredis_lock_options){.fence = 1, .fair = cfg.fair}, NULL);
    double start = bench_now_s();
    for (long i = 0; i < cfg.n; i++) {
        double t0 = bench_now_s();
        if (aredis_sync_lock_acquire(l, 30000) != 0) {
            rep.failures++;
            continue;
        }
        double w = (bench_now_s() - t0) * 1000;
        if (w > rep.max_wait_ms)
            rep.max_wait_ms = w;
        aredis_reply *r = aredis_sync_command(s, "GET %s", counter);
        long long v = r->type == AREDIS_REPLY_STRING ? atoll(r->str) : 0;
        aredis_reply_free(r);
        aredis_reply_free(
            aredis_sync_command(s, "SET %s %lld", counter, v + 1));
        aredis_reply_free(aredis_sync_command(s, "RPUSH %s %lld", list,
                                              aredis_lock_fence(l)));
        if (aredis_sync_lock_release(l) != 0)
            rep.failures++;
    }
    rep.done_ms = (bench_now_s() - start) * 1000;
    if (write(fd, &rep, sizeof rep) != (ssize_t)sizeof rep)
        die("write");
    aredis_lock_free(l);
    aredis_sync_free(s);
}

static void run_contend(void)
{
    char name[64], counter[96], list[96];
    snprintf(name, sizeof name, "bench:contend:%ld", (long)getpid());
    snprintf(counter, sizeof counter, "%s:n", name);
    snprintf(list, sizeof list, "%s:fences", name);
    int fds[2];
    if (pipe(fds) != 0)
        die("pipe");
    fflush(NULL);
    for (int p = 0; p < cfg.procs; p++) {
        pid_t pid = fork();
        if (pid < 0)
            die("fork");
        if (pid == 0) {
            close(fds[0]);
            contend_child(name, counter, list, fds[1]);
            _exit(0);
        }
    }
    close(fds[1]);
    double max_wait = 0, first = 1e18, last = 0;
    long failures = 0;
    for (int p = 0; p < cfg.procs; p++) {
        report rep;
        if (read(fds[0], &rep, sizeof rep) != (ssize_t)sizeof rep)
            die("a child died");
        failures += rep.failures;
        if (rep.max_wait_ms > max_wait)
            max_wait = rep.max_wait_ms;
        if (rep.done_ms < first)
            first = rep.done_ms;
        if (rep.done_ms > last)
            last = rep.done_ms;
    }
    while (wait(NULL) > 0)
        ;
    aredis_sync *s = aredis_sync_connect(
        &(aredis_options){.host = "127.0.0.1", .port = cfg.port}, NULL);
    aredis_reply *r = aredis_sync_command(s, "GET %s", counter);
    long long count = r->type == AREDIS_REPLY_STRING ? atoll(r->str) : -1;
    aredis_reply_free(r);
    r = aredis_sync_command(s, "LRANGE %s 0 -1", list);
    long increasing = 1;
    for (size_t i = 1; i < r->len; i++)
        if (atoll(r->element[i - 1].str) >= atoll(r->element[i].str))
            increasing = 0;
    size_t tokens = r->len;
    aredis_reply_free(r);
    aredis_reply_free(aredis_sync_command(s, "DEL %s %s", counter, list));
    aredis_sync_free(s);
    printf("contend procs=%d n=%ld fair=%d count=%lld expected=%ld "
           "tokens=%zu increasing=%ld failures=%ld max_wait_ms=%.1f "
           "finish_ms=%.0f..%.0f spread_pct=%.1f\n",
           cfg.procs, cfg.n, cfg.fair, count, cfg.procs * cfg.n, tokens,
           increasing, failures, max_wait, first, last,
           100.0 * (last - first) / last);
}

int main(int argc, char **argv)
{
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (strcmp(k, "--port") == 0)
            cfg.port = atoi(v);
        else if (strcmp(k, "--mode") == 0)
            cfg.mode = v;
        else if (strcmp(k, "--impl") == 0)
            cfg.impl = v;
        else if (strcmp(k, "--n") == 0)
            cfg.n = atol(v);
        else if (strcmp(k, "--w") == 0)
            cfg.w = atoi(v);
        else if (strcmp(k, "--procs") == 0)
            cfg.procs = atoi(v);
        else if (strcmp(k, "--fair") == 0)
            cfg.fair = atoi(v);
        else
            die("unknown option %s", k);
    }
    if (cfg.port <= 0 || cfg.n <= 0 || cfg.w <= 0 || cfg.w > cfg.n)
        die("usage: bench_lock --port P --mode cycles|handoff|contend ...");
    if (strcmp(cfg.mode, "cycles") == 0 && strcmp(cfg.impl, "hiredis") == 0)
        run_cycles_hiredis();
    else if (strcmp(cfg.mode, "cycles") == 0 &&
             strcmp(cfg.impl, "aredis-ping") == 0)
        run_cycles_aredis_ping();
    else if (strcmp(cfg.mode, "cycles") == 0)
        run_cycles_aredis();
    else if (strcmp(cfg.mode, "handoff") == 0)
        run_handoff();
    else if (strcmp(cfg.mode, "contend") == 0)
        run_contend();
    else
        die("unknown mode %s", cfg.mode);
    return 0;
}
