/* The refill-from-callback driver for fault tests (tests/support): see
 * refill.h.
 *
 * A second client on the test's loop keeps W commands in flight and
 * submits from its callbacks and its event handler; a thread watches the
 * server's CLIENT LIST over its own raw connection. Public API only, apart
 * from the built-in loop's iteration counter (loop/loop_int.h). Test code:
 * never linked into the library. */
#include "refill.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "loop/loop_int.h"
#include "testenv.h"

enum {
    REFILL_MAX_CMDS = 40000,
    /* Failure callbacks and events submit at once only this often: a
     * server that refuses every connection must not make the driver a
     * busy loop of its own. */
    REFILL_FAIL_BUDGET = 1000,
    REFILL_SLOT_MS = 5,
    /* A condition seen in this many samples in a row (50 ms apart) is a
     * finding; fewer may be a connection being set up or torn down. */
    REFILL_PERSIST = 4,
    REFILL_SAMPLE_MS = 50,
};

/* Where a submission came from. */
enum { FROM_START, FROM_OK, FROM_FAIL, FROM_EVENT, FROM_TIMER, FROM_N };

typedef struct rec {
    refill *r;
    int idx;
    int calls;
} rec;

struct refill {
    aredis_loop *loop;
    aredis_client *c;
    aredis_timer *topup;
    int topup_armed;
    char name[64];
    char password[128]; /* the sampler authenticates as the clients do */
    int window;
    int active;

    rec *recs;
    int sent, completed, inflight, debt;
    int twice, nulls, wrong, failures, rejected, events;
    int from[FROM_N];
    char wrong_msg[200];
    int64_t slot;
    int slot_n;

    /* The CLIENT LIST sampler. */
    int port;
    pthread_t th;
    int have_th;
    atomic_int stop;
    pthread_mutex_t mu;
    int samples, skipped;
    int run;       /* samples in a row showing a finding */
    int worst_run; /* the longest such run */
    char worst[1024];
};

static void put(char *why, size_t cap, const char *fmt, ...)
    AREDIS_PRINTF(3, 4);

static void put(char *why, size_t cap, const char *fmt, ...)
{
    if (why == NULL || cap == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, cap, fmt, ap);
    va_end(ap);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- the commands -------------------------------------------------------
 *
 * Four kinds in turn, so a lost connection meets each of the salvage
 * rules: PING (plain), ECHO marked idempotent (may be re-sent), SET (a
 * write: never re-sent once written) and ECHO with a 1.5 s deadline. */

static void on_reply(aredis_client *c, const aredis_reply *rp, void *ud);

static void arm_topup(refill *r)
{
    if (!r->topup_armed && r->topup != NULL &&
        aredis_timer_start(r->topup, REFILL_SLOT_MS) == 0)
        r->topup_armed = 1;
}

static int submit(refill *r, int from)
{
    if (!r->active || r->sent >= REFILL_MAX_CMDS)
        return -1;
    rec *k = &r->recs[r->sent];
    k->r = r;
    k->idx = r->sent;
    k->calls = 0;
    char arg[32], key[80];
    snprintf(arg, sizeof arg, "rf:%d", k->idx);
    snprintf(key, sizeof key, "%s:k", r->name);
    aredis_cmd_opts o = {0};
    const char *argv[3];
    int argc;
    switch (k->idx % 4) {
    case 0:
        argv[0] = "PING";
        argc = 1;
        break;
    case 1:
        o.flags = AREDIS_CMD_IDEMPOTENT;
        argv[0] = "ECHO";
        argv[1] = arg;
        argc = 2;
        break;
    case 2:
        argv[0] = "SET";
        argv[1] = key;
        argv[2] = arg;
        argc = 3;
        break;
    default:
        o.timeout_ms = 1500;
        argv[0] = "ECHO";
        argv[1] = arg;
        argc = 2;
    }
    int e = aredis_commandv_opts(r->c, &o, on_reply, k, argc, argv, NULL);
    if (e != 0) {
        r->rejected++;
        arm_topup(r); /* the window is short of one: try again soon */
        return -1;
    }
    r->sent++;
    r->inflight++;
    r->from[from]++;
    return 0;
}

/* The reply a successful completion of command k must carry. */
static int reply_matches(const rec *k, const aredis_reply *rp)
{
    char arg[32];
    switch (k->idx % 4) {
    case 0:
        return rp->type == AREDIS_REPLY_STATUS && strcmp(rp->str, "PONG") == 0;
    case 2:
        return rp->type == AREDIS_REPLY_STATUS && strcmp(rp->str, "OK") == 0;
    default:
        snprintf(arg, sizeof arg, "rf:%d", k->idx);
        return rp->type == AREDIS_REPLY_STRING && rp->len == strlen(arg) &&
               memcmp(rp->str, arg, rp->len) == 0;
    }
}

static void on_reply(aredis_client *c, const aredis_reply *rp, void *ud)
{
    (void)c;
    rec *k = ud;
    refill *r = k->r;
    if (++k->calls > 1) {
        r->twice++;
        return;
    }
    r->completed++;
    r->inflight--;
    int failed = 1;
    if (rp == NULL) {
        r->nulls++;
    } else if (rp->type == AREDIS_REPLY_ERROR) {
        r->failures++;
    } else {
        failed = 0;
        if (!reply_matches(k, rp) && r->wrong++ == 0)
            snprintf(r->wrong_msg, sizeof r->wrong_msg,
                     "command %d got a reply of type %d \"%.*s\"", k->idx,
                     rp->type, rp->str ? (int)(rp->len > 60 ? 60 : rp->len) : 0,
                     rp->str ? rp->str : "");
    }
    if (!r->active)
        return;
    if (r->debt > 0) {
        r->debt--; /* the event handler submitted this one's successor */
        return;
    }
    if (failed) {
        if (r->failures <= REFILL_FAIL_BUDGET)
            submit(r, FROM_FAIL);
        return;
    }
    int64_t slot = now_ms() / REFILL_SLOT_MS;
    if (slot != r->slot) {
        r->slot = slot;
        r->slot_n = 0;
    }
    if (r->slot_n < r->window) {
        r->slot_n++;
        submit(r, FROM_OK);
    } else {
        arm_topup(r);
    }
}

static void on_topup(void *arg)
{
    refill *r = arg;
    r->topup_armed = 0;
    while (r->active && r->inflight < r->window &&
           r->failures <= REFILL_FAIL_BUDGET)
        if (submit(r, FROM_TIMER) != 0)
            break;
}

static void on_event(aredis_client *c, const aredis_conn_event *ev, void *ud)
{
    (void)c;
    refill *r = ud;
    r->events++;
    /* One beyond the window at most: an outage of many attempts must not
     * pile up a command per attempt. */
    if (ev->type == AREDIS_CONN_DISCONNECTED && r->active &&
        r->inflight <= r->window && r->failures <= REFILL_FAIL_BUDGET &&
        submit(r, FROM_EVENT) == 0)
        r->debt++;
}

/* ---- CLIENT LIST --------------------------------------------------------
 */

/* One look at the server: connections named after the driver, and
 * connections with no name (the sampler names its own). 0, or -1 when no
 * sample could be taken. */
static int sample(const refill *r, int *named, int *unnamed, char *text,
                  size_t cap)
{
    testenv_server s;
    memset(&s, 0, sizeof s);
    snprintf(s.host, sizeof s.host, "127.0.0.1");
    s.port = r->port;
    testenv_conn a;
    if (testenv_connect(&a, &s) != 0)
        return -1;
    a.timeout_ms = 300;
    const aredis_reply *rp = NULL;
    int rc = -1;
    if (r->password[0] != '\0' &&
        (testenv_command(&a, &rp, "AUTH %s", r->password) != 0 ||
         rp->type != AREDIS_REPLY_STATUS))
        goto done;
    if (testenv_command(&a, &rp, "CLIENT SETNAME refill-observer") != 0 ||
        rp->type != AREDIS_REPLY_STATUS)
        goto done;
    if (testenv_command(&a, &rp, "CLIENT LIST") != 0 ||
        (rp->type != AREDIS_REPLY_STRING && rp->type != AREDIS_REPLY_VERB))
        goto done;
    *named = *unnamed = 0;
    char want[80];
    snprintf(want, sizeof want, " name=%s ", r->name);
    const char *p = rp->str, *end = rp->str + rp->len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        char line[1024];
        snprintf(line, sizeof line, "%.*s", (int)n, p);
        if (strstr(line, want) != NULL)
            (*named)++;
        else if (strstr(line, " name= ") != NULL)
            (*unnamed)++;
        p += n + 1;
    }
    snprintf(text, cap, "%.*s", (int)rp->len, rp->str);
    rc = 0;
done:
    testenv_close(&a);
    return rc;
}

static void *observe(void *arg)
{
    refill *r = arg;
    while (!atomic_load(&r->stop)) {
        int named = 0, unnamed = 0;
        char text[1024];
        int rc = sample(r, &named, &unnamed, text, sizeof text);
        pthread_mutex_lock(&r->mu);
        if (rc != 0) {
            r->skipped++; /* neither extends nor ends a run */
        } else {
            r->samples++;
            if (named > 1 || unnamed > 0) {
                if (++r->run > r->worst_run) {
                    r->worst_run = r->run;
                    snprintf(
                        r->worst, sizeof r->worst,
                        "%d connections named %s and %d with no name:\n%.800s",
                        named, r->name, unnamed, text);
                }
            } else {
                r->run = 0;
            }
        }
        pthread_mutex_unlock(&r->mu);
        sleep_ms(REFILL_SAMPLE_MS);
    }
    return NULL;
}

static void stop_observer(refill *r)
{
    if (!r->have_th)
        return;
    atomic_store(&r->stop, 1);
    pthread_join(r->th, NULL);
    r->have_th = 0;
}

int refill_name_conn(struct testenv_conn *a)
{
    const aredis_reply *rp = NULL;
    if (testenv_command(a, &rp, "CLIENT SETNAME refill-admin") != 0)
        return -1;
    return rp->type == AREDIS_REPLY_STATUS ? 0 : 1;
}

/* ---- life ---------------------------------------------------------------
 */

refill *refill_start(aredis_loop *loop, const aredis_options *o, int window,
                     int observe_port, char *why, size_t cap)
{
    static int seq;
    refill *r = calloc(1, sizeof *r);
    if (r == NULL) {
        put(why, cap, "out of memory");
        return NULL;
    }
    r->recs = calloc(REFILL_MAX_CMDS, sizeof *r->recs);
    if (r->recs == NULL) {
        free(r);
        put(why, cap, "out of memory");
        return NULL;
    }
    r->loop = loop;
    r->window = window;
    snprintf(r->name, sizeof r->name, "refill-%ld-%d", (long)getpid(), ++seq);
    pthread_mutex_init(&r->mu, NULL);
    if (o->password != NULL)
        snprintf(r->password, sizeof r->password, "%s", o->password);
    aredis_options opts = *o;
    opts.client_name = r->name;
    aredis_status st;
    r->c = aredis_client_new(loop, &opts, &st);
    if (r->c == NULL) {
        put(why, cap, "refill client: %s", st.msg);
        goto fail;
    }
    aredis_client_set_event_handler(r->c, on_event, r);
    r->topup = aredis_timer_new(loop, on_topup, r);
    if (r->topup == NULL) {
        put(why, cap, "out of memory");
        goto fail;
    }
    r->active = 1;
    for (int i = 0; i < window; i++)
        if (submit(r, FROM_START) != 0) {
            put(why, cap, "the driver's first submissions were refused");
            goto fail;
        }
    if (observe_port > 0) {
        r->port = observe_port;
        if (pthread_create(&r->th, NULL, observe, r) != 0) {
            put(why, cap, "cannot start the CLIENT LIST thread");
            goto fail;
        }
        r->have_th = 1;
    }
    return r;
fail:
    r->active = 0;
    aredis_timer_free(r->topup);
    aredis_client_free(r->c);
    /* Commands already submitted complete when the loop runs: keep the
     * records (and so the driver) alive until then. */
    if (r->sent == 0) {
        pthread_mutex_destroy(&r->mu);
        free(r->recs);
        free(r);
    }
    return NULL;
}

const char *refill_client_name(const refill *r)
{
    return r->name;
}

static int drained(const refill *r)
{
    return r->inflight == 0;
}

/* Run the loop for ms with the longest waits it allows, and count its
 * iterations. A loop with nothing left to wait for returns at once: the
 * rest of the period is slept, since nothing could happen in it. */
static uint64_t idle_iterations(aredis_loop *loop, int ms)
{
    uint64_t before = aredis__loop_iterations(loop);
    int64_t end = now_ms() + ms;
    for (;;) {
        int64_t left = end - now_ms();
        if (left <= 0)
            break;
        int rc = aredis_loop_run_once(loop, (int)left);
        if (rc <= 0) {
            left = end - now_ms();
            if (left > 0)
                sleep_ms((int)left);
            break;
        }
    }
    return aredis__loop_iterations(loop) - before;
}

int refill_quiesce(refill *r, int timeout_ms, int idle_ms,
                   uint64_t max_iterations, char *why, size_t cap)
{
    r->active = 0;
    if (r->topup_armed) {
        aredis_timer_stop(r->topup);
        r->topup_armed = 0;
    }
    int64_t deadline = now_ms() + timeout_ms;
    while (!drained(r) && now_ms() < deadline)
        aredis_loop_run_once(r->loop, 10);
    if (drained(r)) {
        uint64_t n = idle_iterations(r->loop, idle_ms);
        if (n > max_iterations) {
            stop_observer(r);
            put(why, cap,
                "the loop ran %llu iterations in %d ms with nothing to do "
                "(at most %llu expected): it spins",
                (unsigned long long)n, idle_ms,
                (unsigned long long)max_iterations);
            return -1;
        }
    }
    stop_observer(r);
    if (r->port > 0) {
        /* After the fault: one connection at most, none left half made.
         * A connection that was closed a moment ago may still be listed,
         * hence the second look. */
        int named = 0, unnamed = 0, ok = 0;
        char text[1024] = "";
        int64_t until = now_ms() + 1000;
        do {
            if (sample(r, &named, &unnamed, text, sizeof text) == 0 &&
                named <= 1 && unnamed == 0) {
                ok = 1;
                break;
            }
            sleep_ms(REFILL_SAMPLE_MS);
        } while (now_ms() < until);
        if (!ok && text[0] != '\0') {
            put(why, cap,
                "after the fault the server lists %d connections named %s "
                "and %d with no name (one link: at most one connection):\n%s",
                named, r->name, unnamed, text);
            return -1;
        }
    }
    if (r->worst_run >= REFILL_PERSIST) {
        put(why, cap,
            "during the fault, %d CLIENT LIST samples in a row (%d ms "
            "apart) showed extra connections; the first of the longest run: "
            "%s",
            r->worst_run, REFILL_SAMPLE_MS, r->worst);
        return -1;
    }
    return 0;
}

void refill_free_client(refill *r)
{
    r->active = 0;
    stop_observer(r);
    aredis_timer_free(r->topup);
    r->topup = NULL;
    aredis_client_free(r->c);
}

/* ---- a bounded aredis_loop_run() ----------------------------------------
 */

typedef struct watchdog {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
    int abort_ms;
} watchdog;

static void *watch(void *arg)
{
    watchdog *wd = arg;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += wd->abort_ms / 1000;
    until.tv_nsec += (long)(wd->abort_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&wd->mu);
    while (!wd->done)
        if (pthread_cond_timedwait(&wd->cv, &wd->mu, &until) != 0)
            break;
    int done = wd->done;
    pthread_mutex_unlock(&wd->mu);
    if (!done) {
        fprintf(stderr,
                "aredis_loop_run() has not returned %d ms after every "
                "client was freed: something keeps the loop alive\n",
                wd->abort_ms);
        abort();
    }
    return NULL;
}

int64_t refill_run_loop(aredis_loop *loop, int abort_ms)
{
    watchdog wd = {.done = 0, .abort_ms = abort_ms};
    pthread_mutex_init(&wd.mu, NULL);
    pthread_cond_init(&wd.cv, NULL);
    pthread_t th;
    int have = pthread_create(&th, NULL, watch, &wd) == 0;
    int64_t t0 = now_ms();
    aredis_loop_run(loop);
    int64_t took = now_ms() - t0;
    pthread_mutex_lock(&wd.mu);
    wd.done = 1;
    pthread_cond_signal(&wd.cv);
    pthread_mutex_unlock(&wd.mu);
    if (have)
        pthread_join(th, NULL);
    pthread_cond_destroy(&wd.cv);
    pthread_mutex_destroy(&wd.mu);
    return took;
}

int refill_finish(refill *r, const char *name, char *why, size_t cap)
{
    int rc = 0;
    int missing = 0, first_missing = -1;
    for (int i = 0; i < r->sent; i++)
        if (r->recs[i].calls == 0 && missing++ == 0)
            first_missing = i;
    fprintf(stderr,
            "REFILL %s: sent=%d completed=%d failed=%d rejected=%d "
            "events=%d from{start=%d ok=%d fail=%d event=%d timer=%d} "
            "samples=%d skipped=%d\n",
            name, r->sent, r->completed, r->failures, r->rejected, r->events,
            r->from[FROM_START], r->from[FROM_OK], r->from[FROM_FAIL],
            r->from[FROM_EVENT], r->from[FROM_TIMER], r->samples, r->skipped);
    if (r->twice != 0) {
        put(why, cap, "%d callbacks ran for commands already completed",
            r->twice);
        rc = -1;
    } else if (r->nulls != 0) {
        put(why, cap, "%d callbacks got a NULL reply", r->nulls);
        rc = -1;
    } else if (missing != 0) {
        put(why, cap, "%d of %d commands never completed (the first: #%d)",
            missing, r->sent, first_missing);
        rc = -1;
    } else if (r->wrong != 0) {
        put(why, cap, "%d replies did not answer their command: %s", r->wrong,
            r->wrong_msg);
        rc = -1;
    }
    stop_observer(r);
    pthread_mutex_destroy(&r->mu);
    free(r->recs);
    free(r);
    return rc;
}
