/* Server-assisted client-side caching: the second GET of a key is answered
 * from memory; a write by another client invalidates it, and after
 * aredis_ccache_sync() the next GET goes to the server again.
 *
 *     ./client_cache redis://127.0.0.1:6379/1
 *
 * Exits non-zero unless the reads go miss, hit, then (after the other
 * client's write and the sync) miss with the new value. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <aredis/aredis.h>

typedef struct run {
    aredis_client *c;
    aredis_ccache *cc;
    aredis_sync *writer; /* another client */
    int step;
    int failed;
} run;

static void next(run *s);

static void on_get(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    run *s = ud;
    aredis_ccache_stats st;
    aredis_ccache_get_stats(s->cc, &st);
    int ok = r->type == AREDIS_REPLY_STRING;
    printf("GET -> %s (hits %llu, misses %llu)\n", ok ? r->str : "?",
           (unsigned long long)st.hits, (unsigned long long)st.misses);
    const char *want = s->step < 4 ? "v1" : "v2";
    if (!ok || strcmp(r->str, want) != 0)
        s->failed = 1;
    next(s);
}

static void on_sync(aredis_ccache *cc, int status, void *ud)
{
    (void)cc;
    run *s = ud;
    if (status != 0)
        s->failed = 1;
    next(s);
}

/* One step per completion: read twice, another client writes, sync, read
 * again, then free everything (the loop then has nothing left to do). */
static void next(run *s)
{
    int e = 0;
    switch (s->step++) {
    case 0: /* the first sync: tracking is on */
        e = aredis_ccache_sync(s->cc, on_sync, s);
        break;
    case 1: /* a miss */
    case 2: /* a hit: from memory, no round trip */
    case 4: /* a miss again: the other client's write invalidated it */
        e = aredis_ccache_command(s->cc, on_get, s, "GET %s", "example:cc");
        break;
    case 3: {
        aredis_reply *r = aredis_sync_command(s->writer, "SET example:cc v2");
        aredis_reply_free(r);
        e = aredis_ccache_sync(s->cc, on_sync, s);
        break;
    }
    default: {
        aredis_ccache_stats st;
        aredis_ccache_get_stats(s->cc, &st);
        if (st.hits != 1 || st.misses != 2 || st.invalidations != 1)
            s->failed = 1;
        aredis_ccache_free(s->cc);
        aredis_client_free(s->c);
        return;
    }
    }
    if (e != 0)
        s->failed = 1;
}

int main(int argc, char **argv)
{
    const char *url = argc > 1 ? argv[1] : "redis://127.0.0.1:6379/1";
    aredis_status st;
    run s = {0};
    s.writer = aredis_sync_connect(&(aredis_options){.url = url}, &st);
    if (s.writer == NULL) {
        fprintf(stderr, "connect: %s\n", st.msg);
        return 1;
    }
    aredis_reply_free(aredis_sync_command(s.writer, "SET example:cc v1"));

    aredis_loop *loop = aredis_loop_new();
    s.c = aredis_client_new(loop, &(aredis_options){.url = url}, &st);
    if (s.c == NULL) {
        fprintf(stderr, "client: %s\n", st.msg);
        return 1;
    }
    /* Cache GET and HGETALL replies: 10000 entries, 16 MiB at most. */
    const char *cmds[] = {"GET", "HGETALL"};
    s.cc = aredis_ccache_new(s.c,
                             &(aredis_ccache_opts){.max_entries = 10000,
                                                   .max_bytes = 16 << 20,
                                                   .commands = cmds,
                                                   .ncommands = 2},
                             &st);
    if (s.cc == NULL) {
        fprintf(stderr, "cache: %s\n", st.msg);
        return 1;
    }
    next(&s);
    aredis_loop_run(loop);
    aredis_loop_free(loop);
    aredis_sync_free(s.writer);
    puts(s.failed ? "FAILED" : "ok");
    return s.failed;
}
