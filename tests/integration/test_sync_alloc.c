/* The blocking facade's steady state allocates nothing, against the real
 * standalone server: after a warm-up, SET, GET and INCR through
 * aredis_sync_command(), each reply freed, run through counting allocator
 * hooks (include/aredis/alloc.h) without a single allocation. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aredis/aredis.h"
#include "testenv.h"

static long allocs;

static void *count_malloc(size_t n)
{
    allocs++;
    return malloc(n);
}

static void *count_calloc(size_t n, size_t size)
{
    allocs++;
    return calloc(n, size);
}

static void *count_realloc(void *p, size_t n)
{
    allocs++;
    return realloc(p, n);
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

Test(sync_alloc, steady_state_allocates_nothing)
{
    testenv_server srv;
    cr_assert_eq(testenv_server_load(&srv, NULL), 0, "%s", testenv_errstr());
    aredis_allocator a = {count_malloc, count_calloc, count_realloc, free};
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
