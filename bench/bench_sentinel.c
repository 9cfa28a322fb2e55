/* The Sentinel benchmark (bench/sentinel.sh runs it): one scenario on a
 * throwaway set-up that tests/support/redis-sentinel.sh started (1 master,
 * replicas, 3 sentinels), printing one line of figures:
 *
 *   s1  kill -9 of the master while writing 500 SET/s: the first +switch-
 *       master after the kill, the first acknowledged write after it, and
 *       how many writes failed (failover_wait default); a second client
 *       writes as many SETs marked AREDIS_CMD_IDEMPOTENT (s1-s3);
 *   s2  SENTINEL FAILOVER while writing 500 SET/s: writes acknowledged
 *       and then missing on the new master, in all and after the switch;
 *   s3  SIGSTOP of the master while writing: as s1, plus acked-but-lost;
 *   s4  the first SET of a new client with sentinel 1 paused (SIGSTOP),
 *       then with it killed;
 *   s5  1000 reads with role=replica over 2 replicas (the split), then
 *       kill -9 of one replica: read errors from +sdown + 1 s on.
 *
 *   bench_sentinel SCENARIO STATE_FILE
 *
 * The time of +switch-master (and +sdown) comes from the benchmark's own
 * subscription on a sentinel, not from the client under test. Public API
 * only. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* kill, clock_gettime */
#endif
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <aredis/aredis.h>

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void die(const char *what)
{
    fprintf(stderr, "bench_sentinel: %s\n", what);
    exit(1);
}

/* ---- the set-up's state file --------------------------------------------- */

static char state[4096];

/* The file after a newline, so every key is found as "\nkey=". */
static void state_load(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        die("cannot open the state file");
    state[0] = '\n';
    size_t n = fread(state + 1, 1, sizeof state - 2, f);
    state[n + 1] = '\0';
    fclose(f);
}

static void value(const char *key, char *buf, size_t cap)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\n%s=", key);
    const char *p = strstr(state, pat);
    if (p == NULL)
        die(key);
    p += strlen(pat);
    size_t n = strcspn(p, "\n");
    snprintf(buf, cap, "%.*s", (int)n, p);
}

/* The i-th number after a ':' or at the start of each comma item. */
static int nth(const char *list, int i, int after_colon)
{
    const char *p = list;
    for (; i > 0 && p != NULL; i--)
        if ((p = strchr(p, ',')) != NULL)
            p++;
    if (p == NULL)
        die("short list");
    if (after_colon && (p = strchr(p, ':')) != NULL)
        p++;
    return p != NULL ? atoi(p) : 0;
}

/* ---- events from our own subscription --------------------------------------
 */

typedef struct evwatch {
    aredis_client *c;
    aredis_pubsub *ps;
    int subscribed;
    long long switch_at, sdown_at;
} evwatch;

static void ev_cb(aredis_pubsub *ps, const aredis_pubsub_message *m, void *ud)
{
    (void)ps;
    evwatch *w = ud;
    if (m->kind == AREDIS_PUBSUB_PSUBSCRIBE)
        w->subscribed = 1;
    if (m->kind != AREDIS_PUBSUB_PMESSAGE)
        return;
    if (m->channel_len == 14 && memcmp(m->channel, "+switch-master", 14) == 0 &&
        w->switch_at == 0)
        w->switch_at = now_ms();
    if (m->channel_len == 6 && memcmp(m->channel, "+sdown", 6) == 0 &&
        m->data_len > 6 && memcmp(m->data, "slave ", 6) == 0 &&
        w->sdown_at == 0)
        w->sdown_at = now_ms();
}

static void run_until(aredis_loop *loop, const int *flag, int ms)
{
    for (long long end = now_ms() + ms; !*flag && now_ms() < end;)
        aredis_loop_run_once(loop, 5);
}

static void evwatch_start(evwatch *w, aredis_loop *loop, int port)
{
    memset(w, 0, sizeof *w);
    w->c = aredis_client_new(
        loop, &(aredis_options){.host = "127.0.0.1", .port = port}, NULL);
    w->ps = w->c != NULL ? aredis_pubsub_new(w->c, NULL) : NULL;
    if (w->ps == NULL || aredis_pubsub_psubscribe(w->ps, "*", ev_cb, w) != 0)
        die("cannot subscribe to a sentinel");
    run_until(loop, &w->subscribed, 5000);
    if (!w->subscribed)
        die("no PSUBSCRIBE confirmation");
}

static void evwatch_stop(evwatch *w)
{
    aredis_pubsub_free(w->ps);
    aredis_client_free(w->c);
}

/* ---- a writer: SET <prefix>:<i> <i>, 500/s ---------------------------------
 */

enum { CAP = 30000 };

typedef struct writer {
    aredis_client *c;
    char prefix[64];
    long long done_at[CAP];
    unsigned char ok[CAP];
    int n, calls, acked, failed, unknown;
    const long long *switch_at;
    long long first_ok_after;
} writer;

static writer W;

static void w_cb(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    int i = (int)(intptr_t)ud;
    W.calls++;
    W.done_at[i] = now_ms();
    if (r->type == AREDIS_REPLY_ERROR) {
        W.failed++;
        W.unknown += r->code == AREDIS_EUNKNOWN;
        return;
    }
    W.ok[i] = 1;
    W.acked++;
    if (*W.switch_at != 0 && W.first_ok_after == 0 &&
        W.done_at[i] >= *W.switch_at)
        W.first_ok_after = W.done_at[i];
}

static void w_send(void)
{
    if (W.n >= CAP)
        die("too many writes");
    int i = W.n++;
    if (aredis_command(W.c, w_cb, (void *)(intptr_t)i, "SET %s:%d %d", W.prefix,
                       i, i) != 0)
        die("submit failed");
}

/* A second client writes the same way, each SET marked idempotent: the
 * retry policy lets those in flight on the old master be sent again to the
 * new one. Counted only. */
static struct {
    aredis_client *c;
    int n, calls, failed;
} I;

static void i_cb(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    (void)ud;
    I.calls++;
    I.failed += r->type == AREDIS_REPLY_ERROR;
}

static void i_send(void)
{
    aredis_cmd_opts o = {.flags = AREDIS_CMD_IDEMPOTENT};
    if (aredis_command_opts(I.c, &o, i_cb, NULL, "SET %s:i%d %d", W.prefix, I.n,
                            I.n) != 0)
        die("submit failed");
    I.n++;
}

static void w_drain(aredis_loop *loop, int ms)
{
    for (long long end = now_ms() + ms;
         (W.calls < W.n || I.calls < I.n) && now_ms() < end;)
        aredis_loop_run_once(loop, 5);
    if (W.calls != W.n || I.calls != I.n)
        die("writes did not complete");
}

/* Write every 2 ms until 500 ms past the switch or 30 s. */
static void pump(aredis_loop *loop, const evwatch *ev)
{
    long long t0 = now_ms(), next = t0;
    while (now_ms() - t0 < 30000 &&
           (ev->switch_at == 0 || now_ms() - ev->switch_at < 500)) {
        if (now_ms() >= next) {
            w_send();
            i_send();
            next += 2;
        }
        aredis_loop_run_once(loop, 1);
    }
    if (ev->switch_at == 0)
        die("no +switch-master in 30 s");
}

static int got;
static long long int_val;

static void reply_cb(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    (void)ud;
    int_val = r->type == AREDIS_REPLY_INTEGER ? r->integer : -1;
    got++;
}

static void addr_cb(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    if (r->type == AREDIS_REPLY_ARRAY && r->len == 2)
        *(int *)ud = atoi(r->element[1].str);
    got++;
}

/* The new master's port as sentinel 3 names it, once it moved. */
static int new_master(aredis_loop *loop, const char *sentinels, int old)
{
    aredis_client *s = aredis_client_new(
        loop,
        &(aredis_options){.host = "127.0.0.1", .port = nth(sentinels, 2, 1)},
        NULL);
    int port = old;
    for (long long end = now_ms() + 10000; port == old && now_ms() < end;) {
        got = 0;
        aredis_command(s, addr_cb, &port, "SENTINEL GET-MASTER-ADDR-BY-NAME %s",
                       "mymaster");
        run_until(loop, &got, 2000);
        if (port == old)
            for (long long t = now_ms() + 50; now_ms() < t;)
                aredis_loop_run_once(loop, 10);
    }
    aredis_client_free(s);
    return port;
}

/* Acknowledged writes missing on the server at port (*after: those acked
 * after the switch). */
static int acked_but_lost(aredis_loop *loop, int port, long long switch_at,
                          int *after)
{
    aredis_client *m = aredis_client_new(
        loop, &(aredis_options){.host = "127.0.0.1", .port = port}, NULL);
    int lost = 0;
    *after = 0;
    for (int i = 0; i < W.n; i++) {
        if (!W.ok[i])
            continue;
        got = 0;
        aredis_command(m, reply_cb, NULL, "EXISTS %s:%d", W.prefix, i);
        run_until(loop, &got, 2000);
        if (int_val == 0) {
            lost++;
            *after += W.done_at[i] >= switch_at;
        }
    }
    aredis_client_free(m);
    return lost;
}

/* ---- scenarios -------------------------------------------------------------
 */

static char sentinels[256], master[64], url[512];

static aredis_client *client(aredis_loop *loop, const char *u)
{
    aredis_status st;
    aredis_client *c =
        aredis_client_new(loop, &(aredis_options){.url = u}, &st);
    if (c == NULL)
        die(st.msg);
    return c;
}

static void warm(aredis_loop *loop)
{
    for (int i = 0; i < 50; i++)
        w_send();
    w_drain(loop, 10000);
}

static int failover(aredis_loop *loop, const char *which)
{
    char buf[64];
    evwatch ev;
    evwatch_start(&ev, loop, nth(sentinels, 1, 1));
    W.c = client(loop, url);
    I.c = client(loop, url);
    W.switch_at = &ev.switch_at;
    snprintf(W.prefix, sizeof W.prefix, "bench-%s-%d", which, (int)time(NULL));
    warm(loop);
    long long t0 = now_ms();
    if (strcmp(which, "s2") == 0) {
        aredis_client *s =
            aredis_client_new(loop,
                              &(aredis_options){.host = "127.0.0.1",
                                                .port = nth(sentinels, 1, 1)},
                              NULL);
        got = 0;
        aredis_command(s, reply_cb, NULL, "SENTINEL FAILOVER mymaster");
        run_until(loop, &got, 2000);
        aredis_client_free(s);
    } else {
        value("master_pid", buf, sizeof buf);
        kill(atoi(buf), strcmp(which, "s1") == 0 ? SIGKILL : SIGSTOP);
    }
    pump(loop, &ev);
    if (strcmp(which, "s3") == 0)
        kill(atoi(buf), SIGCONT);
    w_drain(loop, 15000);
    int port = new_master(loop, sentinels, nth(master, 0, 1)), after = 0;
    int lost = acked_but_lost(loop, port, ev.switch_at, &after);
    printf("%s: switch_ms=%lld first_ok_after_switch_ms=%lld writes=%d "
           "acked=%d failed=%d unknown=%d acked_but_lost=%d "
           "lost_after_switch=%d idempotent_writes=%d idempotent_failed=%d\n",
           which, ev.switch_at - t0,
           W.first_ok_after ? W.first_ok_after - ev.switch_at : -1, W.n,
           W.acked, W.failed, W.unknown, lost, after, I.n, I.failed);
    aredis_client_free(W.c);
    aredis_client_free(I.c);
    evwatch_stop(&ev);
    return 0;
}

static int first_set_ms(aredis_loop *loop)
{
    got = 0;
    long long t0 = now_ms();
    aredis_client *c = client(loop, url);
    aredis_command(c, reply_cb, NULL, "SET bench-s4 x");
    run_until(loop, &got, 10000);
    long long ms = now_ms() - t0;
    aredis_client_free(c);
    return got ? (int)ms : -1;
}

static int seed_startup(aredis_loop *loop)
{
    char buf[64];
    value("sentinel_pids", buf, sizeof buf);
    int pid = atoi(buf);
    kill(pid, SIGSTOP);
    int hung = first_set_ms(loop);
    kill(pid, SIGCONT);
    kill(pid, SIGKILL);
    for (long long t = now_ms() + 100; now_ms() < t;)
        aredis_loop_run_once(loop, 10);
    int dead = first_set_ms(loop);
    printf("s4: first_set_ms_sentinel1_hung=%d first_set_ms_sentinel1_dead=%d "
           "(sentinel_timeout default 250 ms)\n",
           hung, dead);
    return 0;
}

typedef struct split {
    int ports[4], counts[4], calls, errors;
} split;

static void port_cb(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    split *k = ud;
    k->calls++;
    if (r->type != AREDIS_REPLY_ARRAY && r->type != AREDIS_REPLY_MAP) {
        k->errors++;
        return;
    }
    int port = r->len == 2 ? atoi(r->element[1].str) : 0;
    for (int i = 0; i < 4; i++) {
        if (k->ports[i] == 0)
            k->ports[i] = port;
        if (k->ports[i] == port) {
            k->counts[i]++;
            return;
        }
    }
}

static void reads(aredis_loop *loop, aredis_client *c, split *k, int n)
{
    int want = k->calls + n;
    for (int i = 0; i < n; i++)
        aredis_command(c, port_cb, k, "CONFIG GET port");
    for (long long end = now_ms() + 10000; k->calls < want && now_ms() < end;)
        aredis_loop_run_once(loop, 5);
}

static int replicas(aredis_loop *loop)
{
    char u[600], buf[64];
    snprintf(u, sizeof u, "%s?role=replica", url);
    aredis_client *c = client(loop, u);
    evwatch ev;
    evwatch_start(&ev, loop, nth(sentinels, 0, 1));
    split w = {0}, k = {0}, before = {0}, after = {0};
    for (int i = 0; i < 50 && w.counts[1] == 0; i++)
        reads(loop, c, &w, 1);
    reads(loop, c, &k, 1000);
    value("replica_pids", buf, sizeof buf);
    kill(atoi(buf), SIGKILL);
    long long t_kill = now_ms(), next = t_kill;
    int sent = 0;
    while (now_ms() - t_kill < 15000 &&
           (ev.sdown_at == 0 || now_ms() - ev.sdown_at < 2000)) {
        if (now_ms() >= next) {
            split *t = ev.sdown_at != 0 && now_ms() >= ev.sdown_at + 1000
                           ? &after
                           : &before;
            aredis_command(c, port_cb, t, "CONFIG GET port");
            sent++;
            next += 2;
        }
        aredis_loop_run_once(loop, 1);
    }
    for (long long end = now_ms() + 5000;
         before.calls + after.calls < sent && now_ms() < end;)
        aredis_loop_run_once(loop, 5);
    printf("s5: split_%d=%d split_%d=%d of %d (errors %d); kill -9 of a "
           "replica: sdown_ms=%lld errors_before_sdown_plus_1s=%d of %d "
           "errors_after=%d of %d\n",
           k.ports[0], k.counts[0], k.ports[1], k.counts[1], k.calls, k.errors,
           ev.sdown_at ? ev.sdown_at - t_kill : -1, before.errors, before.calls,
           after.errors, after.calls);
    aredis_client_free(c);
    evwatch_stop(&ev);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 3)
        die("usage: bench_sentinel s1|s2|s3|s4|s5 STATE_FILE");
    state_load(argv[2]);
    value("sentinels", sentinels, sizeof sentinels);
    value("master", master, sizeof master);
    snprintf(url, sizeof url, "redis+sentinel://%s/mymaster", sentinels);
    aredis_loop *loop = aredis_loop_new();
    int rc;
    if (strcmp(argv[1], "s4") == 0)
        rc = seed_startup(loop);
    else if (strcmp(argv[1], "s5") == 0)
        rc = replicas(loop);
    else
        rc = failover(loop, argv[1]);
    for (int i = 0; i < 10; i++)
        aredis_loop_run_once(loop, 5);
    aredis_loop_free(loop);
    return rc;
}
