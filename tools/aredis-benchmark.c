/* aredis-benchmark: redis-benchmark's job, done with aredis.
 *
 *   aredis-benchmark [-h HOST] [-p PORT] [--url URL] [-c CONNS] [-P W]
 *                    [-n N | --duration S] [-d BYTES] [-r KEYS] [-t TESTS]
 *                    [--sync] [--csv | --json]
 *
 * Two drivers over the public API only (no internal header): the
 * asynchronous client, all connections on one built-in loop, each keeping
 * W commands in flight (every completion submits the next one); and the
 * blocking facade (--sync), one thread and one aredis_sync per connection.
 * The workloads, the histogram and the reports are in bm/, shared with the
 * hiredis program that bench/compare.sh runs beside this one.
 *
 * Exit status: 0; 1 when the server cannot be reached or answered with an
 * error; 2 for bad arguments. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <aredis/aredis.h>

#include "bm/bm.h"

#define TOOL "aredis-benchmark"
#define TICK_MS 200

static aredis_options make_options(const bm_config *cfg)
{
    aredis_options o = {0};
    o.url = cfg->url;
    if (cfg->url == NULL) {
        o.host = cfg->host;
        o.port = cfg->port;
        o.path = cfg->socket;
    }
    o.username = cfg->user;
    o.password = cfg->password;
    o.db = cfg->db;
    o.tls.enabled = cfg->tls;
    o.tls.ca_file = cfg->cacert;
    o.tls.ca_dir = cfg->cacertdir;
    o.tls.cert_file = cfg->cert;
    o.tls.key_file = cfg->key;
    o.tls.sni = cfg->sni;
    o.tls.insecure_skip_verify = cfg->insecure;
    /* A benchmark reports a refused connection at once; it does not wait
     * for the server to come back. */
    o.reconnect_max_attempts = AREDIS_NO_RECONNECT;
    return o;
}

/* What one test run shares between its connections or threads. */
typedef struct run {
    const bm_config *cfg;
    bm_test test;
    char *value;
    unsigned long long limit; /* commands to send; duration mode: no limit */
    uint64_t start_ns;
    uint64_t deadline_ns; /* duration mode */
    uint64_t end_ns;      /* the last completion, before the teardown */
    double cpu_start;     /* process CPU seconds at start_ns */
    double cpu_end;
    _Atomic unsigned long long issued;
    _Atomic unsigned long long done;
    _Atomic unsigned long long errors;
    _Atomic int fatal; /* a client-side failure: stop sending */
    char first_err[256];
    pthread_mutex_t err_lock;
    bm_hist hist;
} run;

static void note_error(run *r, const aredis_reply *rep)
{
    atomic_fetch_add(&r->errors, 1);
    pthread_mutex_lock(&r->err_lock);
    if (rep->code != AREDIS_ESERVER)
        r->fatal = 1;
    if (r->first_err[0] == '\0')
        snprintf(r->first_err, sizeof r->first_err, "%s: %.*s",
                 aredis_err_name(rep->code), (int)rep->len, rep->str);
    pthread_mutex_unlock(&r->err_lock);
}

/* May another command be sent? Claims one from the budget when so. */
static int claim(run *r, uint64_t now)
{
    if (r->fatal)
        return 0;
    if (r->cfg->duration_s > 0)
        return now < r->deadline_ns;
    return atomic_fetch_add(&r->issued, 1) < r->limit;
}

/* ---- asynchronous driver ---------------------------------------------- */

typedef struct conn conn;
typedef struct slot {
    conn *k;
    uint64_t t0;
} slot;

struct conn {
    run *r;
    aredis_loop *loop;
    aredis_client *c;
    bm_work work;
    slot *slots;
    int inflight; /* commands of this connection not completed yet */
};

typedef struct async_run {
    run *r;
    aredis_loop *loop;
    conn *conns;
    int n;
    int inflight; /* all connections */
    int warming;  /* warm-up PINGs still pending */
    aredis_timer *tick;
} async_run;

static void on_reply(aredis_client *c, const aredis_reply *rep, void *ud);

static int send_next(conn *k, slot *s, uint64_t now)
{
    int argc = bm_work_next(&k->work);
    s->t0 = now;
    int e =
        aredis_commandv(k->c, on_reply, s, argc, k->work.argv, k->work.argvlen);
    if (e) {
        fprintf(stderr, "%s: aredis_commandv: %s\n", TOOL, aredis_strerror(e));
        k->r->fatal = 1;
        return e;
    }
    k->inflight++;
    async_run *a = aredis_loop_get_data(k->loop);
    a->inflight++;
    return 0;
}

static void on_reply(aredis_client *c, const aredis_reply *rep, void *ud)
{
    (void)c;
    slot *s = ud;
    conn *k = s->k;
    run *r = k->r;
    async_run *a = aredis_loop_get_data(k->loop);
    uint64_t now = bm_now_ns();
    bm_hist_add(&r->hist, now - s->t0);
    atomic_fetch_add(&r->done, 1);
    k->inflight--;
    a->inflight--;
    if (rep->type == AREDIS_REPLY_ERROR)
        note_error(r, rep);
    if (claim(r, now))
        send_next(k, s, now);
    if (a->inflight == 0)
        aredis_loop_stop(k->loop);
}

static void on_warm(aredis_client *c, const aredis_reply *rep, void *ud)
{
    (void)c;
    conn *k = ud;
    async_run *a = aredis_loop_get_data(k->loop);
    if (rep->type == AREDIS_REPLY_ERROR)
        note_error(k->r, rep);
    if (--a->warming == 0)
        aredis_loop_stop(k->loop);
}

static void on_tick(void *arg)
{
    async_run *a = arg;
    bm_progress(a->r->cfg, a->r->test, atomic_load(&a->r->done),
                a->r->start_ns);
    aredis_timer_start(a->tick, TICK_MS);
}

static int open_conns(async_run *a, const bm_config *cfg)
{
    aredis_options o = make_options(cfg);
    for (int i = 0; i < a->n; i++) {
        conn *k = &a->conns[i];
        aredis_status st;
        k->r = a->r;
        k->loop = a->loop;
        k->c = aredis_client_new(a->loop, &o, &st);
        if (k->c == NULL) {
            fprintf(stderr, "%s: %s\n", TOOL, st.msg);
            return -1;
        }
        bm_work_init(&k->work, cfg, a->r->test, i, a->r->value);
        for (int w = 0; w < cfg->inflight; w++)
            k->slots[w].k = k;
    }
    return 0;
}

static int run_async(run *r)
{
    const bm_config *cfg = r->cfg;
    int w = r->test == BM_KEYS ? 1 : cfg->inflight;
    async_run a = {.r = r, .n = cfg->connections};
    int rc = -1;
    a.loop = aredis_loop_new();
    a.conns = calloc((size_t)a.n, sizeof *a.conns);
    slot *slots = calloc((size_t)a.n * (size_t)cfg->inflight, sizeof *slots);
    if (a.loop == NULL || a.conns == NULL || slots == NULL) {
        fprintf(stderr, "%s: out of memory\n", TOOL);
        goto done;
    }
    aredis_loop_set_data(a.loop, &a, NULL);
    for (int i = 0; i < a.n; i++)
        a.conns[i].slots = slots + (size_t)i * (size_t)cfg->inflight;
    /* KEYS counts the connect, as the table it reproduces does; the other
     * tests start on connected clients (a PING each). */
    if (r->test == BM_KEYS) {
        r->start_ns = bm_now_ns();
        r->cpu_start = bm_cpu_s();
    }
    if (open_conns(&a, cfg) != 0)
        goto done;
    if (r->test != BM_KEYS) {
        a.warming = a.n;
        for (int i = 0; i < a.n; i++)
            aredis_command(a.conns[i].c, on_warm, &a.conns[i], "PING");
        aredis_loop_run(a.loop);
        if (r->fatal)
            goto done;
        atomic_store(&r->errors, 0);
        r->start_ns = bm_now_ns();
        r->cpu_start = bm_cpu_s();
    }
    if (cfg->duration_s > 0)
        r->deadline_ns = r->start_ns + (uint64_t)(cfg->duration_s * 1e9);
    if (cfg->progress) {
        a.tick = aredis_timer_new(a.loop, on_tick, &a);
        if (a.tick)
            aredis_timer_start(a.tick, TICK_MS);
    }
    uint64_t now = bm_now_ns();
    for (int i = 0; i < a.n; i++) {
        for (int j = 0; j < w && claim(r, now); j++) {
            if (send_next(&a.conns[i], &a.conns[i].slots[j], now) != 0)
                break;
        }
    }
    if (a.inflight > 0)
        aredis_loop_run(a.loop);
    r->end_ns = bm_now_ns();
    r->cpu_end = bm_cpu_s();
    rc = r->fatal ? -1 : 0;
done:
    aredis_timer_free(a.tick);
    for (int i = 0; a.conns && i < a.n; i++)
        aredis_client_free(a.conns[i].c);
    aredis_loop_free(a.loop);
    free(a.conns);
    free(slots);
    return rc;
}

/* ---- blocking driver (--sync) ------------------------------------------ */

typedef struct sync_thread {
    run *r;
    int id;
    pthread_t th;
    pthread_barrier_t *go;
    bm_hist hist;
    uint64_t end_ns;
    atomic_int *finished;
} sync_thread;

static aredis_sync *sync_open(run *r, const aredis_options *o)
{
    aredis_status st;
    aredis_sync *s = aredis_sync_connect(o, &st);
    if (s == NULL) {
        pthread_mutex_lock(&r->err_lock);
        r->fatal = 1;
        if (r->first_err[0] == '\0')
            snprintf(r->first_err, sizeof r->first_err, "%s", st.msg);
        pthread_mutex_unlock(&r->err_lock);
    }
    return s;
}

static void *sync_main(void *arg)
{
    sync_thread *t = arg;
    run *r = t->r;
    const bm_config *cfg = r->cfg;
    aredis_options o = make_options(cfg);
    aredis_sync *s = NULL;
    bm_work work;
    bm_work_init(&work, cfg, r->test, t->id, r->value);
    /* As in the asynchronous driver, only KEYS counts the connect: the
     * clock starts between the two barriers. */
    if (r->test != BM_KEYS)
        s = sync_open(r, &o);
    pthread_barrier_wait(t->go);
    pthread_barrier_wait(t->go);
    if (r->test == BM_KEYS)
        s = sync_open(r, &o);
    uint64_t now = bm_now_ns();
    while (s && claim(r, now)) {
        int argc = bm_work_next(&work);
        aredis_reply *rep =
            aredis_sync_commandv(s, argc, work.argv, work.argvlen);
        uint64_t t1 = bm_now_ns();
        bm_hist_add(&t->hist, t1 - now);
        now = t1;
        atomic_fetch_add(&r->done, 1);
        if (rep == NULL) {
            fprintf(stderr, "%s: out of memory\n", TOOL);
            r->fatal = 1;
            break;
        }
        if (rep->type == AREDIS_REPLY_ERROR)
            note_error(r, rep);
        aredis_reply_free(rep);
    }
    t->end_ns = bm_now_ns();
    aredis_sync_free(s);
    atomic_fetch_add(t->finished, 1);
    return NULL;
}

static int run_sync(run *r)
{
    const bm_config *cfg = r->cfg;
    int n = cfg->connections;
    pthread_barrier_t go;
    atomic_int finished = 0;
    sync_thread *ts = calloc((size_t)n, sizeof *ts);
    if (ts == NULL) {
        fprintf(stderr, "%s: out of memory\n", TOOL);
        return -1;
    }
    pthread_barrier_init(&go, NULL, (unsigned)n + 1);
    int started = 0;
    for (; started < n; started++) {
        ts[started] = (sync_thread){
            .r = r, .id = started, .go = &go, .finished = &finished};
        if (pthread_create(&ts[started].th, NULL, sync_main, &ts[started]))
            break;
    }
    if (started < n) {
        /* The barrier counts every thread: without all of them it would
         * never open. A tool can just stop here. */
        fprintf(stderr, "%s: cannot start %d threads\n", TOOL, n);
        exit(1);
    }
    /* Between the barriers the threads wait (connected, unless KEYS) and
     * the clock starts; they read it after the second. */
    pthread_barrier_wait(&go);
    r->start_ns = bm_now_ns();
    r->cpu_start = bm_cpu_s();
    if (cfg->duration_s > 0)
        r->deadline_ns = r->start_ns + (uint64_t)(cfg->duration_s * 1e9);
    pthread_barrier_wait(&go);
    while (atomic_load(&finished) < n) {
        struct timespec ts_sleep = {0, TICK_MS * 1000000L};
        nanosleep(&ts_sleep, NULL);
        bm_progress(cfg, r->test, atomic_load(&r->done), r->start_ns);
    }
    for (int i = 0; i < n; i++) {
        pthread_join(ts[i].th, NULL);
        bm_hist_merge(&r->hist, &ts[i].hist);
        if (ts[i].end_ns > r->end_ns)
            r->end_ns = ts[i].end_ns;
    }
    r->cpu_end = bm_cpu_s();
    pthread_barrier_destroy(&go);
    free(ts);
    return r->fatal ? -1 : 0;
}

/* ---- main ---------------------------------------------------------------- */

int main(int argc, char **argv)
{
    bm_config cfg;
    static char msg[8192];
    int rc =
        bm_parse_args(&cfg, argc, argv, TOOL,
                      BM_CAP_TLS | BM_CAP_SYNC | BM_CAP_URL, msg, sizeof msg);
    if (rc == 1) {
        fputs(msg, stdout);
        return 0;
    }
    if (rc != 0) {
        fputs(msg, stderr);
        return 2;
    }
    char *value = malloc(cfg.datasize + 1);
    run *r = calloc(1, sizeof *r);
    if (value == NULL || r == NULL) {
        fprintf(stderr, "%s: out of memory\n", TOOL);
        return 1;
    }
    memset(value, 'x', cfg.datasize);
    value[cfg.datasize] = '\0';

    char client[64];
    snprintf(client, sizeof client, "aredis %s (%s)", aredis_version_string(),
             cfg.sync ? "sync" : "async");
    bm_report rep = {
        .cfg = &cfg, .tool = TOOL, .client = client, .out = stdout};
    bm_report_begin(&rep);
    int status = 0;
    for (int t = 0; t < BM_NTESTS && status == 0; t++) {
        if (!(cfg.tests & (1u << t)))
            continue;
        memset(r, 0, sizeof *r);
        pthread_mutex_init(&r->err_lock, NULL);
        r->cfg = &cfg;
        r->test = (bm_test)t;
        r->value = value;
        r->limit =
            cfg.duration_s > 0 ? ~0ull : (unsigned long long)cfg.requests;
        /* CPU over the timed part only, as the seconds: the connects
         * and warm-up PINGs before it are not the commands measured. */
        int e = cfg.sync ? run_sync(r) : run_async(r);
        double cpu = r->cpu_end - r->cpu_start;
        bm_progress_clear(&cfg);
        if (e == 0) {
            bm_result res = {.test = r->test,
                             .requests = atomic_load(&r->done),
                             .errors = atomic_load(&r->errors),
                             .seconds = (double)(r->end_ns - r->start_ns) / 1e9,
                             .cpu_s = cpu,
                             .hist = &r->hist};
            bm_report_test(&rep, &res);
        }
        if (r->first_err[0]) {
            fprintf(stderr, "%s: %s: %s\n", TOOL, bm_test_name(r->test),
                    r->first_err);
            status = 1;
        } else if (e != 0) {
            status = 1;
        }
        pthread_mutex_destroy(&r->err_lock);
    }
    bm_report_end(&rep);
    free(r);
    free(value);
    return status;
}
