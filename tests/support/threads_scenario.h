/* The thread-safe submission scenario, shared by the Criterion test
 * (tests/integration/test_threads.c) and the ThreadSanitizer driver
 * (tests/tsan/tsan_threads.c; Criterion's runner cannot start under TSan).
 * Several threads each submit many INCRs with aredis_command_ts() while
 * the calling thread runs the loop. Returns 0, or -1 with `why` set. */
#ifndef AREDIS_TESTS_THREADS_SCENARIO_H
#define AREDIS_TESTS_THREADS_SCENARIO_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aredis/aredis.h"

enum { TS_THREADS = 4, TS_PER_THREAD = 5000 };

typedef struct ts_state {
    pthread_t loop_thread;
    unsigned char seen[TS_THREADS * TS_PER_THREAD];
    int completed, wrong_thread, errors, twice;
    atomic_int submit_failures;
    aredis_client *c;
    const char *key;
    long long total;
} ts_state;

typedef struct ts_worker {
    ts_state *st;
    int index;
} ts_worker;

typedef struct ts_call {
    ts_state *st;
    size_t id;
} ts_call;

static ts_call ts_calls[TS_THREADS * TS_PER_THREAD];

static void ts_on_incr(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    ts_call *call = ud;
    ts_state *st = call->st;
    if (!pthread_equal(pthread_self(), st->loop_thread))
        st->wrong_thread++;
    if (r->type != AREDIS_REPLY_INTEGER)
        st->errors++;
    if (st->seen[call->id]++)
        st->twice++;
    st->completed++;
}

static void *ts_submitter(void *arg)
{
    ts_worker *w = arg;
    for (int k = 0; k < TS_PER_THREAD; k++) {
        size_t id = (size_t)w->index * TS_PER_THREAD + (size_t)k;
        ts_calls[id] = (ts_call){w->st, id};
        const char *argv[] = {"INCR", w->st->key};
        int e = k % 2 ? aredis_command_ts(w->st->c, ts_on_incr, &ts_calls[id],
                                          "INCR %s", w->st->key)
                      : aredis_commandv_ts(w->st->c, ts_on_incr, &ts_calls[id],
                                           2, argv, NULL);
        if (e != 0)
            atomic_fetch_add(&w->st->submit_failures, 1);
    }
    return NULL;
}

static void ts_read_counter(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    ts_state *st = ud;
    st->total = r->type == AREDIS_REPLY_STRING ? strtoll(r->str, NULL, 10) : -1;
}

static int threads_scenario(const char *url, const char *key, char *why,
                            size_t whylen)
{
    static ts_state st;
    memset(&st, 0, sizeof st);
    st.loop_thread = pthread_self();
    st.key = key;
    aredis_loop *loop = aredis_loop_new();
    st.c = aredis_client_new(loop, &(aredis_options){.url = url}, NULL);
    if (st.c == NULL) {
        snprintf(why, whylen, "client_new failed");
        return -1;
    }
    pthread_t t[TS_THREADS];
    ts_worker w[TS_THREADS];
    for (int i = 0; i < TS_THREADS; i++) {
        w[i] = (ts_worker){&st, i};
        pthread_create(&t[i], NULL, ts_submitter, &w[i]);
    }
    const int want = TS_THREADS * TS_PER_THREAD;
    for (int rounds = 0; st.completed < want && rounds < 6000; rounds++)
        aredis_loop_run_once(loop, 10);
    for (int i = 0; i < TS_THREADS; i++)
        pthread_join(t[i], NULL);
    for (int rounds = 0; st.completed < want && rounds < 2000; rounds++)
        aredis_loop_run_once(loop, 10);
    aredis_command(st.c, ts_read_counter, &st, "GET %s", key);
    for (int rounds = 0; st.total == 0 && rounds < 1000; rounds++)
        aredis_loop_run_once(loop, 10);
    aredis_client_free(st.c);
    aredis_loop_free(loop);

    if (atomic_load(&st.submit_failures) != 0)
        snprintf(why, whylen, "%d submissions refused",
                 atomic_load(&st.submit_failures));
    else if (st.completed != want)
        snprintf(why, whylen, "%d of %d callbacks ran", st.completed, want);
    else if (st.twice != 0)
        snprintf(why, whylen, "%d callbacks ran twice", st.twice);
    else if (st.errors != 0)
        snprintf(why, whylen, "%d error replies", st.errors);
    else if (st.wrong_thread != 0)
        snprintf(why, whylen, "%d callbacks off the loop thread",
                 st.wrong_thread);
    else if (st.total != want)
        snprintf(why, whylen, "counter is %lld, want %d", st.total, want);
    else
        return 0;
    return -1;
}

#endif /* AREDIS_TESTS_THREADS_SCENARIO_H */
