/* A group that Redis Sentinel watches: writes go to the master, reads
 * spread over the replicas, and both follow a failover by themselves.
 *
 *     ./sentinel 'redis+sentinel://127.0.0.1:26379,127.0.0.1:26380/mymaster'
 *
 * Two clients on one loop: one for the master (the default role), with a
 * failover_wait of 5 s (writes are held that long while the master is
 * down), and one with ?role=replica for reads. The program writes a key,
 * then reads it back from the replicas until a replica has it (replication
 * is asynchronous), and prints which server answered each read.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <aredis/aredis.h>

typedef struct app {
    aredis_client *master, *replicas;
    int reads_left, ports, done, failed;
} app;

static void on_port(aredis_client *c, const aredis_reply *r, void *ud);

static void on_get(aredis_client *c, const aredis_reply *r, void *ud)
{
    app *a = ud;
    (void)c;
    if (r->type == AREDIS_REPLY_ERROR) {
        fprintf(stderr, "GET on a replica: %s\n", r->str);
        a->failed = 1;
        a->done = 1;
        return;
    }
    if (r->type == AREDIS_REPLY_STRING) {
        printf("a replica has it: %.*s\n", (int)r->len, r->str);
        /* Which replicas serve the reads: each command goes to the next. */
        for (int i = 0; i < 4; i++)
            aredis_command(a->replicas, on_port, a, "CONFIG GET port");
        return;
    }
    if (--a->reads_left <= 0) {
        fprintf(stderr, "no replica has the key yet\n");
        a->failed = 1;
        a->done = 1;
        return;
    }
    aredis_command(a->replicas, on_get, a, "GET example:sentinel");
}

static void on_port(aredis_client *c, const aredis_reply *r, void *ud)
{
    app *a = ud;
    (void)c;
    if (r->type == AREDIS_REPLY_ERROR) {
        fprintf(stderr, "CONFIG GET: %s\n", r->str);
        a->failed = 1;
    } else if (r->len == 2) {
        printf("read served by the replica on port %.*s\n",
               (int)r->element[1].len, r->element[1].str);
    }
    if (++a->ports == 4)
        a->done = 1;
}

static void on_waited(aredis_client *c, const aredis_reply *r, void *ud)
{
    app *a = ud;
    (void)c;
    if (r->type == AREDIS_REPLY_INTEGER)
        printf("replicas that have the write: %lld\n", r->integer);
    aredis_command(a->replicas, on_get, a, "GET example:sentinel");
}

static void on_set(aredis_client *c, const aredis_reply *r, void *ud)
{
    app *a = ud;
    (void)c;
    if (r->type == AREDIS_REPLY_ERROR) {
        /* AREDIS_ENOMASTER: no master within failover_wait; the message
         * says why (the sentinels' answers, the master's state). */
        fprintf(stderr, "SET on the master: %s: %s\n", aredis_err_name(r->code),
                r->str);
        a->failed = 1;
        a->done = 1;
        return;
    }
    printf("SET on the master: %.*s\n", (int)r->len, r->str);
    /* Wait (up to 1 s) until a replica has it, then read it there. */
    aredis_command(a->master, on_waited, a, "WAIT 1 1000");
}

int main(int argc, char **argv)
{
    const char *base =
        argc > 1 ? argv[1] : "redis+sentinel://127.0.0.1:26379/mymaster";
    char url[1024];
    aredis_loop *loop = aredis_loop_new();
    aredis_status st;
    app a = {.reads_left = 100};

    a.master = aredis_client_new(
        loop,
        &(aredis_options){.url = base, .sentinel = {.failover_wait_ms = 5000}},
        &st);
    snprintf(url, sizeof url, "%s%srole=replica", base,
             strchr(base, '?') != NULL ? "&" : "?");
    a.replicas =
        a.master != NULL
            ? aredis_client_new(loop, &(aredis_options){.url = url}, &st)
            : NULL;
    if (a.replicas == NULL) {
        fprintf(stderr, "%s\n", st.msg);
        aredis_client_free(a.master);
        aredis_loop_free(loop);
        return 1;
    }
    aredis_command(a.master, on_set, &a, "SET example:sentinel hello");
    while (!a.done)
        aredis_loop_run_once(loop, 100);
    aredis_client_free(a.master);
    aredis_client_free(a.replicas);
    aredis_loop_run(loop); /* lets the clients finish closing */
    aredis_loop_free(loop);
    return a.failed;
}
