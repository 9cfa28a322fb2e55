/* What one blocking call costs: run one kind of call N times after a
 * warm-up and print the allocations per call (counting allocator hooks).
 * bench/sync_calls.sh runs it under strace -c -f with N = 0 and N = 2000
 * to get the system calls per call.
 *
 *     bench_sync_calls URL MODE N
 *
 * MODE: command, command_opts, pipelined (append + get_reply; one call is
 * one command, appended 50 at a time), pipeline10 (a pipeline object of 10
 * GETs executed), multi10 (the same in MULTI/EXEC), transaction (the
 * helper: WATCH, a GET, MULTI SET EXEC), script, get_message (one PUBLISH
 * from a second handle and the get-message that receives it). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aredis/aredis.h"
#include "countalloc.h"

static const char *key = "bench:sync:calls";

static int body(aredis_sync *s, aredis_pipeline *p, void *ud)
{
    (void)ud;
    aredis_reply_free(aredis_sync_pipeline_immediate(s, p, "GET %s", key));
    aredis_pipeline_multi(p);
    aredis_pipeline_command(p, "SET %s %s", key, "v");
    return 0;
}

typedef struct ctx {
    aredis_sync *s, *pub;
    aredis_pipeline *p, *multi;
    aredis_script *sc;
    aredis_pubsub *ps;
} ctx;

static int one(ctx *x, const char *mode)
{
    aredis_sync *s = x->s;
    const char *keys[] = {key};
    aredis_reply *r = NULL;
    if (strcmp(mode, "command") == 0) {
        r = aredis_sync_command(s, "GET %s", key);
    } else if (strcmp(mode, "command_opts") == 0) {
        r = aredis_sync_command_opts(s, &(aredis_cmd_opts){.timeout_ms = 1000},
                                     "GET %s", key);
    } else if (strcmp(mode, "pipelined") == 0) {
        /* One call in 50 appends the next 50. */
        if (aredis_sync_pending(s) == 0)
            for (int i = 0; i < 50; i++)
                aredis_sync_append(s, "GET %s", key);
        return aredis_sync_get_reply(s)->type == AREDIS_REPLY_ERROR;
    } else if (strcmp(mode, "pipeline10") == 0 ||
               strcmp(mode, "multi10") == 0) {
        aredis_pipeline *p = mode[0] == 'p' ? x->p : x->multi;
        for (int i = 0; i < 10; i++)
            aredis_pipeline_command(p, "GET %s", key);
        r = aredis_sync_pipeline_execute(s, p);
    } else if (strcmp(mode, "transaction") == 0) {
        r = aredis_sync_transaction(s, NULL, body, NULL, 1, keys);
    } else if (strcmp(mode, "script") == 0) {
        r = aredis_sync_script_eval(s, x->sc, 1, keys, 0, NULL);
    } else if (strcmp(mode, "get_message") == 0) {
        aredis_reply_free(aredis_sync_command(x->pub, "PUBLISH %s x", key));
        const aredis_pubsub_message *m;
        return aredis_sync_pubsub_get_message(s, x->ps, 5000, &m) != 0;
    } else {
        fprintf(stderr, "unknown mode %s\n", mode);
        exit(2);
    }
    int bad = r == NULL || r->type == AREDIS_REPLY_ERROR;
    if (bad)
        fprintf(stderr, "%s: %s\n", mode, r ? r->str : "out of memory");
    aredis_reply_free(r);
    return bad;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s URL MODE N\n", argv[0]);
        return 2;
    }
    const char *mode = argv[2];
    long n = atol(argv[3]);
    aredis_set_allocator(&countalloc_hooks);
    aredis_status st;
    ctx x = {0};
    x.s = aredis_sync_connect(&(aredis_options){.url = argv[1]}, &st);
    x.pub = aredis_sync_connect(&(aredis_options){.url = argv[1]}, &st);
    if (x.s == NULL || x.pub == NULL) {
        fprintf(stderr, "%s: %s\n", argv[1], st.msg);
        return 1;
    }
    x.p = aredis_pipeline_new(aredis_sync_client(x.s), 0);
    x.multi = aredis_pipeline_new(aredis_sync_client(x.s), 1);
    const char *src = "return redis.call('GET', KEYS[1])";
    x.sc = aredis_script_new(src, strlen(src));
    x.ps = aredis_pubsub_new(
        aredis_sync_client(x.s),
        &(aredis_pubsub_options){.ignore_subscribe_messages = 1});
    aredis_pubsub_subscribe(x.ps, key, NULL, NULL);
    aredis_reply_free(aredis_sync_command(x.s, "SET %s v", key));
    int bad = 0;
    for (int i = 0; i < 200; i++) /* warm-up */
        bad |= one(&x, mode);
    long before = countalloc_calls;
    for (long i = 0; i < n; i++)
        bad |= one(&x, mode);
    if (n > 0)
        printf("%s: %.2f allocations per call\n", mode,
               (double)(countalloc_calls - before) / (double)n);
    aredis_pubsub_free(x.ps);
    aredis_script_free(x.sc);
    aredis_pipeline_free(x.multi);
    aredis_pipeline_free(x.p);
    aredis_sync_free(x.pub);
    aredis_sync_free(x.s);
    return bad;
}
