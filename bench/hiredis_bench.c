/* hiredis_bench: aredis-benchmark's work done with Debian's hiredis, for
 * bench/compare.sh.
 *
 *   hiredis_bench [the options of aredis-benchmark, minus --url, --tls
 *                  and --sync]
 *
 * The options, the commands (keys, values, ratios), the latency histogram
 * and the reports are aredis-benchmark's own (tools/bm/), so the two
 * programs differ only in the client: here hiredis's asynchronous API on
 * libevent (redisAsyncCommandArgv), each connection keeping -P commands in
 * flight, every completion sending the next one, as aredis-benchmark does
 * on its built-in loop. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "bm/bm.h"

#define TOOL "hiredis_bench"

typedef struct run run;
typedef struct conn conn;
typedef struct slot {
    conn *k;
    uint64_t t0;
} slot;

struct conn {
    run *r;
    redisAsyncContext *ac;
    bm_work work;
    slot *slots;
};

struct run {
    const bm_config *cfg;
    bm_test test;
    struct event_base *base;
    conn *conns;
    unsigned long long limit, issued, done, errors;
    uint64_t start_ns, deadline_ns, end_ns;
    double cpu_end;
    int inflight, warming, fatal;
    char first_err[256];
    bm_hist hist;
};

static void note_error(run *r, const redisReply *rep, const char *why)
{
    r->errors++;
    if (rep == NULL)
        r->fatal = 1;
    if (r->first_err[0] == '\0')
        snprintf(r->first_err, sizeof r->first_err, "%s", rep ? rep->str : why);
}

static int claim(run *r, uint64_t now)
{
    if (r->fatal)
        return 0;
    if (r->cfg->duration_s > 0)
        return now < r->deadline_ns;
    return r->issued++ < r->limit;
}

static void on_reply(redisAsyncContext *ac, void *reply, void *ud);

static void send_next(conn *k, slot *s, uint64_t now)
{
    int argc = bm_work_next(&k->work);
    s->t0 = now;
    if (redisAsyncCommandArgv(k->ac, on_reply, s, argc, k->work.argv,
                              k->work.argvlen) != REDIS_OK) {
        note_error(k->r, NULL, k->ac->errstr);
        return;
    }
    k->r->inflight++;
}

static void on_reply(redisAsyncContext *ac, void *reply, void *ud)
{
    (void)ac;
    slot *s = ud;
    run *r = s->k->r;
    redisReply *rep = reply;
    uint64_t now = bm_now_ns();
    bm_hist_add(&r->hist, now - s->t0);
    r->done++;
    r->inflight--;
    if (rep == NULL || rep->type == REDIS_REPLY_ERROR)
        note_error(r, rep, "connection lost");
    if (claim(r, now))
        send_next(s->k, s, now);
    if (r->inflight == 0)
        event_base_loopbreak(r->base);
}

static void on_warm(redisAsyncContext *ac, void *reply, void *ud)
{
    (void)ac;
    conn *k = ud;
    redisReply *rep = reply;
    if (rep == NULL || rep->type == REDIS_REPLY_ERROR)
        note_error(k->r, rep, k->ac->errstr[0] ? k->ac->errstr : "no reply");
    if (--k->r->warming == 0)
        event_base_loopbreak(k->r->base);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    if (status != REDIS_OK) {
        run *r = ac->data;
        note_error(r, NULL, ac->errstr);
        event_base_loopbreak(r->base);
    }
}

static int run_test(run *r)
{
    const bm_config *cfg = r->cfg;
    int n = cfg->connections;
    int w = r->test == BM_KEYS ? 1 : cfg->inflight;
    r->base = event_base_new();
    r->conns = calloc((size_t)n, sizeof *r->conns);
    slot *slots = calloc((size_t)n * (size_t)cfg->inflight, sizeof *slots);
    static char value_buf[1];
    char *value = cfg->datasize ? malloc(cfg->datasize) : value_buf;
    if (!r->base || !r->conns || !slots || !value) {
        fprintf(stderr, "%s: out of memory\n", TOOL);
        exit(1);
    }
    memset(value, 'x', cfg->datasize);
    if (r->test == BM_KEYS)
        r->start_ns = bm_now_ns();
    for (int i = 0; i < n; i++) {
        conn *k = &r->conns[i];
        k->r = r;
        k->slots = slots + (size_t)i * (size_t)cfg->inflight;
        for (int j = 0; j < cfg->inflight; j++)
            k->slots[j].k = k;
        k->ac = cfg->socket ? redisAsyncConnectUnix(cfg->socket)
                            : redisAsyncConnect(cfg->host, cfg->port);
        if (k->ac == NULL || k->ac->err) {
            fprintf(stderr, "%s: connect: %s\n", TOOL,
                    k->ac ? k->ac->errstr : "out of memory");
            exit(1);
        }
        k->ac->data = r;
        redisLibeventAttach(k->ac, r->base);
        redisAsyncSetConnectCallback(k->ac, on_connect);
        bm_work_init(&k->work, cfg, r->test, i, value);
        /* The same handshake aredis makes, as plain commands. */
        if (cfg->password && cfg->user)
            redisAsyncCommand(k->ac, NULL, NULL, "AUTH %s %s", cfg->user,
                              cfg->password);
        else if (cfg->password)
            redisAsyncCommand(k->ac, NULL, NULL, "AUTH %s", cfg->password);
        if (cfg->db)
            redisAsyncCommand(k->ac, NULL, NULL, "SELECT %d", cfg->db);
    }
    if (r->test != BM_KEYS) {
        r->warming = n;
        for (int i = 0; i < n; i++)
            redisAsyncCommand(r->conns[i].ac, on_warm, &r->conns[i], "PING");
        event_base_dispatch(r->base);
        if (r->fatal)
            return -1;
        r->errors = 0;
        r->start_ns = bm_now_ns();
    }
    if (cfg->duration_s > 0)
        r->deadline_ns = r->start_ns + (uint64_t)(cfg->duration_s * 1e9);
    uint64_t now = bm_now_ns();
    for (int i = 0; i < n; i++)
        for (int j = 0; j < w && claim(r, now); j++)
            send_next(&r->conns[i], &r->conns[i].slots[j], now);
    if (r->inflight > 0)
        event_base_dispatch(r->base);
    r->end_ns = bm_now_ns();
    r->cpu_end = bm_cpu_s();
    /* Disconnecting runs no callback of ours (nothing is pending), and
     * hiredis frees each context when its disconnect completes. */
    for (int i = 0; i < n; i++)
        redisAsyncDisconnect(r->conns[i].ac);
    event_base_dispatch(r->base);
    event_base_free(r->base);
    free(r->conns);
    free(slots);
    if (value != value_buf)
        free(value);
    return r->fatal ? -1 : 0;
}

int main(int argc, char **argv)
{
    bm_config cfg;
    static char msg[8192];
    int rc = bm_parse_args(&cfg, argc, argv, TOOL, 0, msg, sizeof msg);
    if (rc == 1) {
        fputs(msg, stdout);
        return 0;
    }
    if (rc != 0) {
        fputs(msg, stderr);
        return 2;
    }
    cfg.progress = 0;
    char client[64];
    snprintf(client, sizeof client, "hiredis %d.%d.%d (libevent)",
             HIREDIS_MAJOR, HIREDIS_MINOR, HIREDIS_PATCH);
    bm_report rep = {
        .cfg = &cfg, .tool = TOOL, .client = client, .out = stdout};
    static run r;
    bm_report_begin(&rep);
    int status = 0;
    for (int t = 0; t < BM_NTESTS && status == 0; t++) {
        if (!(cfg.tests & (1u << t)))
            continue;
        memset(&r, 0, sizeof r);
        r.cfg = &cfg;
        r.test = (bm_test)t;
        r.limit = cfg.duration_s > 0 ? ~0ull : (unsigned long long)cfg.requests;
        double cpu0 = bm_cpu_s();
        int e = run_test(&r);
        double cpu = r.cpu_end - cpu0;
        if (e == 0) {
            bm_result res = {.test = r.test,
                             .requests = r.done,
                             .errors = r.errors,
                             .seconds = (double)(r.end_ns - r.start_ns) / 1e9,
                             .cpu_s = cpu,
                             .hist = &r.hist};
            bm_report_test(&rep, &res);
        }
        if (r.first_err[0] || e != 0) {
            fprintf(stderr, "%s: %s: %s\n", TOOL, bm_test_name(r.test),
                    r.first_err);
            status = 1;
        }
    }
    bm_report_end(&rep);
    return status;
}
