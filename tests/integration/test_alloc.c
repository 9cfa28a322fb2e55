/* Memory use per command, against the real standalone server, counted
 * through allocator hooks (include/aredis/alloc.h):
 *   - the blocking facade's steady state allocates nothing: after a
 *     warm-up, SET, GET and INCR through aredis_sync_command(), each reply
 *     freed, run without a single allocation;
 *   - after a burst of commands has completed, the client does not keep
 *     the burst's spent records: blocks still allocated return to about
 *     where they were before it;
 *   - a pipeline run again and again allocates nothing once warm, at 10
 *     commands per batch as at 5,000: the cost per command does not grow
 *     with the batch. */
#include <criterion/criterion.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aredis/aredis.h"
#include "testenv.h"

static long allocs;     /* calls that allocate */
static long live;       /* blocks allocated and not freed */
static long live_bytes; /* their bytes (malloc_usable_size) */
static long peak_bytes; /* the most live_bytes has been */

static void *counted(void *p)
{
    if (p != NULL)
        live_bytes += (long)malloc_usable_size(p);
    if (live_bytes > peak_bytes)
        peak_bytes = live_bytes;
    return p;
}

static void *count_malloc(size_t n)
{
    allocs++;
    live++;
    return counted(malloc(n));
}

static void *count_calloc(size_t n, size_t size)
{
    allocs++;
    live++;
    return counted(calloc(n, size));
}

static void *count_realloc(void *p, size_t n)
{
    allocs++;
    if (p == NULL)
        live++;
    size_t old = p != NULL ? malloc_usable_size(p) : 0;
    void *q = realloc(p, n);
    if (q != NULL || n == 0)
        live_bytes -= (long)old;
    return counted(q);
}

static void count_free(void *p)
{
    if (p != NULL) {
        live--;
        live_bytes -= (long)malloc_usable_size(p);
    }
    free(p);
}

static void command(aredis_sync *s, int type, const char *fmt, const char *key,
                    const char *val)
{
    aredis_reply *r = aredis_sync_command(s, fmt, key, val);
    cr_assert_not_null(r);
    cr_assert_eq(r->type, type, "%s: type %d: %.*s", fmt, r->type, (int)r->len,
                 r->str ? r->str : "");
    aredis_reply_free(r);
}

Test(alloc, blocking_facade_steady_state_allocates_nothing)
{
    testenv_server srv;
    cr_assert_eq(testenv_server_load(&srv, NULL), 0, "%s", testenv_errstr());
    aredis_allocator a = {count_malloc, count_calloc, count_realloc,
                          count_free};
    cr_assert_eq(aredis_set_allocator(&a), 0);
    aredis_status st;
    aredis_sync *s = aredis_sync_connect(
        &(aredis_options){.host = srv.host, .port = srv.port}, &st);
    cr_assert_not_null(s, "%s", st.msg);
    char key[64], ctr[64], val[200];
    testenv_key(key, sizeof key, "sync-alloc");
    testenv_key(ctr, sizeof ctr, "sync-alloc-n");
    memset(val, 'v', sizeof val - 1);
    val[sizeof val - 1] = '\0';
    for (int round = 0; round < 2; round++) {
        long before = allocs;
        for (int i = 0; i < (round == 0 ? 100 : 1000); i++) {
            command(s, AREDIS_REPLY_STATUS, "SET %s %s", key, val);
            command(s, AREDIS_REPLY_STRING, "GET %s", key, NULL);
            command(s, AREDIS_REPLY_INTEGER, "INCR %s", ctr, NULL);
        }
        /* Round 0 warms up (buffers grow, the reply block is made). */
        if (round == 1)
            cr_assert_eq(allocs, before,
                         "%ld allocations in 3,000 commands after the "
                         "warm-up",
                         allocs - before);
    }
    command(s, AREDIS_REPLY_INTEGER, "DEL %s", key, NULL);
    command(s, AREDIS_REPLY_INTEGER, "DEL %s", ctr, NULL);
    aredis_sync_free(s);
    aredis_set_allocator(NULL);
}

static int done_count;

static void on_done(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    (void)ud;
    cr_assert_neq(r->type, AREDIS_REPLY_ERROR, "%.*s", (int)r->len, r->str);
    done_count++;
}

static void burst(aredis_loop *loop, aredis_client *c, int n)
{
    done_count = 0;
    for (int i = 0; i < n; i++)
        cr_assert_eq(aredis_command(c, on_done, NULL, "PING"), 0);
    for (int t = 0; t < 1000 && done_count < n; t++)
        aredis_loop_run_once(loop, 10);
    cr_assert_eq(done_count, n);
}

/* 2,000 commands at once need 2,000 records; once they have completed,
 * an idle client keeps a few for reuse, not all of them (it kept up to
 * 1,024, ~150 KB, before). */
Test(alloc, spent_records_are_released_after_a_burst)
{
    testenv_server srv;
    cr_assert_eq(testenv_server_load(&srv, NULL), 0, "%s", testenv_errstr());
    aredis_allocator a = {count_malloc, count_calloc, count_realloc,
                          count_free};
    cr_assert_eq(aredis_set_allocator(&a), 0);
    aredis_loop *loop = aredis_loop_new();
    aredis_client *c = aredis_client_new(
        loop, &(aredis_options){.host = srv.host, .port = srv.port}, NULL);
    cr_assert_not_null(c);
    burst(loop, c, 10); /* connected, buffers grown */
    long before = live;
    burst(loop, c, 2000);
    cr_assert_leq(live - before, 100,
                  "%ld more blocks allocated after the burst than before",
                  live - before);
    /* The window a steady load needs is still recycled. */
    long calls = allocs;
    burst(loop, c, 50);
    cr_assert_eq(allocs, calls, "%ld allocations for 50 commands",
                 allocs - calls);
    aredis_client_free(c);
    aredis_loop_free(loop);
    aredis_set_allocator(NULL);
}

/* An idle connection holds no reader, no output buffer and no command
 * record (they go to a few spares the loop keeps, shared by its clients),
 * nor a timer, a wake-up source or a pool of its own (the clients of a
 * loop share one timer and one wake-up; a node's pool comes with its
 * first use): 60 clients on one loop, idle after one PING each, hold 6
 * blocks and 1,700 bytes each at most, the loop's spares aside. They held
 * 14 blocks before the spares, and 8.7 blocks and 2,118 bytes before the
 * shared timer and wake-up. */
Test(alloc, idle_connections_hold_no_reader_nor_buffers)
{
    enum { N = 60 };
    testenv_server srv;
    cr_assert_eq(testenv_server_load(&srv, NULL), 0, "%s", testenv_errstr());
    aredis_allocator a = {count_malloc, count_calloc, count_realloc,
                          count_free};
    cr_assert_eq(aredis_set_allocator(&a), 0);
    aredis_loop *loop = aredis_loop_new();
    long before = live, before_bytes = live_bytes;
    peak_bytes = live_bytes;
    aredis_client *c[N];
    done_count = 0;
    for (int i = 0; i < N; i++) {
        c[i] = aredis_client_new(
            loop, &(aredis_options){.host = srv.host, .port = srv.port}, NULL);
        cr_assert_not_null(c[i]);
        cr_assert_eq(aredis_command(c[i], on_done, NULL, "PING"), 0);
    }
    for (int t = 0; t < 1000 && done_count < N; t++)
        aredis_loop_run_once(loop, 10);
    cr_assert_eq(done_count, N);
    for (int t = 0; t < 5; t++) /* the deferred trims */
        aredis_loop_run_once(loop, 0);
    double per = (double)(live - before) / N;
    double bytes = (double)(live_bytes - before_bytes) / N;
    fprintf(stderr, "idle client: %.2f blocks, %.0f bytes\n", per, bytes);
    /* The client, its topology with the node and the shared link, the
     * transport, the loop's watcher and the host name, and the loop's
     * arrays grown by a slot each. */
    cr_assert_leq(per, 6.0, "%.2f blocks per idle client", per);
    cr_assert_leq(bytes, 1700.0, "%.0f bytes per idle client", bytes);
    /* On the way there, all connecting at once: what malloc has handed
     * out at most, per client, is what stays resident after the burst
     * (the blocks freed in between are holes it keeps). Their handshakes
     * are parsed by the loop's spare readers and written from its spare
     * blocks, and a client keeps no encoding area while its command waits
     * for the connection: 1,446 bytes at most per client, where a reader
     * each, the handshakes' own buffers and the encoding areas made
     * 1,724. */
    double peak = (double)(peak_bytes - before_bytes) / N;
    fprintf(stderr, "connecting client: %.0f bytes at most\n", peak);
    cr_assert_leq(peak, 1550.0, "%.0f bytes per connecting client", peak);
    for (int i = 0; i < N; i++)
        aredis_client_free(c[i]);
    aredis_loop_free(loop);
    aredis_set_allocator(NULL);
}

/* ---- pipelines ---------------------------------------------------------- */

/* One batch: per key i, SET i, GET i (a string), INCR n (a number) and
 * MGET i n (an array), so the replies copied include every shape that
 * matters, nested ones too. */
typedef struct pipe_run {
    aredis_pipeline *p;
    char key[64], ctr[64];
    size_t per_batch; /* commands */
    int batches, done;
    long allocs_at_warm; /* allocations when the warm-up batches ended */
    long long last_n;
} pipe_run;

static void pipe_queue(pipe_run *r)
{
    for (size_t i = 0; i < r->per_batch / 4; i++) {
        char k[96];
        snprintf(k, sizeof k, "%s:%zu", r->key, i);
        cr_assert_eq(aredis_pipeline_command(r->p, "SET %s v%zu", k, i), 0);
        cr_assert_eq(aredis_pipeline_command(r->p, "GET %s", k), 0);
        cr_assert_eq(aredis_pipeline_command(r->p, "INCR %s", r->ctr), 0);
        cr_assert_eq(aredis_pipeline_command(r->p, "MGET %s %s", k, r->ctr), 0);
    }
}

static void pipe_done(aredis_pipeline *p, const aredis_reply *res, void *ud)
{
    pipe_run *r = ud;
    cr_assert_eq(res->type, AREDIS_REPLY_ARRAY, "%.*s", (int)res->len,
                 res->type == AREDIS_REPLY_ERROR ? res->str : "");
    cr_assert_eq(res->len, r->per_batch);
    for (size_t i = 0; i < r->per_batch / 4; i++) {
        const aredis_reply *e = &res->element[4 * i];
        char v[32];
        snprintf(v, sizeof v, "v%zu", i);
        cr_assert_str_eq(e[0].str, "OK");
        cr_assert_eq(e[1].type, AREDIS_REPLY_STRING);
        cr_assert_str_eq(e[1].str, v);
        cr_assert_eq(e[2].type, AREDIS_REPLY_INTEGER);
        cr_assert_eq(e[2].integer, r->last_n + 1);
        r->last_n = e[2].integer;
        cr_assert_eq(e[3].type, AREDIS_REPLY_ARRAY);
        cr_assert_eq(e[3].len, 2);
        cr_assert_str_eq(e[3].element[0].str, v);
        char n[32];
        snprintf(n, sizeof n, "%lld", r->last_n);
        cr_assert_str_eq(e[3].element[1].str, n);
    }
    /* Two batches warm up: the second fills the pipeline's other reply
     * set (it starts from this callback, while this reply is in use). */
    if (++r->done == 2)
        r->allocs_at_warm = allocs;
    if (r->done == r->batches)
        return;
    pipe_queue(r);
    cr_assert_eq(aredis_pipeline_execute(p, pipe_done, r), 0);
}

static void pipe_steady_state(size_t per_batch)
{
    testenv_server srv;
    cr_assert_eq(testenv_server_load(&srv, NULL), 0, "%s", testenv_errstr());
    aredis_allocator a = {count_malloc, count_calloc, count_realloc,
                          count_free};
    cr_assert_eq(aredis_set_allocator(&a), 0);
    aredis_loop *loop = aredis_loop_new();
    aredis_client *c = aredis_client_new(
        loop, &(aredis_options){.host = srv.host, .port = srv.port}, NULL);
    cr_assert_not_null(c);
    pipe_run r = {.per_batch = per_batch, .batches = 6};
    testenv_key(r.key, sizeof r.key, "pipe-alloc");
    testenv_key(r.ctr, sizeof r.ctr, "pipe-alloc-n");
    /* The reader's input buffer starts small and doubles (up to 16 KiB)
     * whenever a read fills it, which depends on timing: read a reply
     * larger than its cap first, so it has grown before anything is
     * counted. */
    static char big[64 * 1024];
    memset(big, 'x', sizeof big);
    done_count = 0;
    cr_assert_eq(
        aredis_command(c, on_done, NULL, "SET %s %b", r.key, big, sizeof big),
        0);
    cr_assert_eq(aredis_command(c, on_done, NULL, "GET %s", r.key), 0);
    for (int t = 0; t < 1000 && done_count < 2; t++)
        aredis_loop_run_once(loop, 10);
    cr_assert_eq(done_count, 2);
    r.p = aredis_pipeline_new(c, 0);
    cr_assert_not_null(r.p);
    pipe_queue(&r);
    cr_assert_eq(aredis_pipeline_execute(r.p, pipe_done, &r), 0);
    for (int t = 0; t < 3000 && r.done < r.batches; t++)
        aredis_loop_run_once(loop, 10);
    cr_assert_eq(r.done, r.batches);
    long n = allocs - r.allocs_at_warm;
    cr_assert_eq(n, 0,
                 "%ld allocations in %d batches of %zu commands after the "
                 "warm-up (%.3f per command)",
                 n, r.batches - 2, per_batch,
                 (double)n / (double)((size_t)(r.batches - 2) * per_batch));
    aredis_pipeline_free(r.p);
    aredis_client_free(c);
    aredis_loop_free(loop);
    aredis_set_allocator(NULL);
}

Test(alloc, pipeline_steady_state_allocates_nothing_small)
{
    pipe_steady_state(12);
}

Test(alloc, pipeline_steady_state_allocates_nothing_large)
{
    pipe_steady_state(5000);
}

static void count_done(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    (void)r;
    (*(int *)ud)++;
}

/* Commands whose deadline passes while they wait for a connection are
 * released: once the client and its loop are gone, every block the
 * library allocated has been freed. */
Test(alloc, commands_timed_out_while_waiting_are_released)
{
    enum { N = 20 };
    int port = testenv_free_port();
    cr_assert_gt(port, 0, "%s", testenv_errstr());
    aredis_allocator a = {count_malloc, count_calloc, count_realloc,
                          count_free};
    cr_assert_eq(aredis_set_allocator(&a), 0);
    long before = live;
    aredis_loop *loop = aredis_loop_new();
    aredis_client *c =
        aredis_client_new(loop,
                          &(aredis_options){.host = "127.0.0.1",
                                            .port = port,
                                            .reconnect_max_attempts = -1,
                                            .command_timeout_ms = 50},
                          NULL);
    cr_assert_not_null(c);
    int done = 0;
    for (int i = 0; i < N; i++)
        cr_assert_eq(aredis_command(c, count_done, &done, "PING"), 0);
    int64_t until = testenv_now_ms() + 5000;
    while (done < N && testenv_now_ms() < until)
        aredis_loop_run_once(loop, 10);
    cr_assert_eq(done, N);
    aredis_client_free(c);
    aredis_loop_run(loop);
    aredis_loop_free(loop);
    aredis_set_allocator(NULL);
    cr_assert_eq(live, before, "%ld blocks never freed", live - before);
}
