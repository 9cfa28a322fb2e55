/* Getting started, asynchronously, on the built-in loop.
 *
 * flushdb, set, exists, incr, get, expire, ttl, sleep, exists: each step
 * is sent from the previous step's callback. Run it with a server URL:
 *
 *     ./getting_started redis://127.0.0.1:6379/0
 *
 * (REDIS_URL is used when no argument is given.) It exits non-zero if any
 * reply is not what the step expects. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <aredis/aredis.h>

typedef struct demo {
    aredis_loop *loop;
    aredis_client *client;
    aredis_timer *sleep;
    int step;
    int failed;
} demo;

static void next(demo *d);

static void show(const char *what, const aredis_reply *r)
{
    if (r->type == AREDIS_REPLY_INTEGER)
        printf("%-22s -> %lld\n", what, r->integer);
    else if (r->type == AREDIS_REPLY_NIL)
        printf("%-22s -> (nil)\n", what);
    else
        printf("%-22s -> %s%.*s\n", what,
               r->type == AREDIS_REPLY_ERROR ? "error: " : "", (int)r->len,
               r->str);
}

static void on_reply(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    demo *d = ud;
    static const char *names[] = {
        "FLUSHDB",        "SET foo 1", "EXISTS foo",
        "INCRBY foo 100", "GET foo",   "EXPIRE foo 1",
        "TTL foo",        "",          "EXISTS foo (after 1.1 s)"};
    show(names[d->step], r);
    int ok = 1;
    switch (d->step) {
    case 2:
        ok = r->type == AREDIS_REPLY_INTEGER && r->integer == 1;
        break;
    case 4:
        ok = r->type == AREDIS_REPLY_STRING && strcmp(r->str, "101") == 0;
        break;
    case 6:
        ok = r->type == AREDIS_REPLY_INTEGER && r->integer >= 0;
        break;
    case 8:
        ok = r->type == AREDIS_REPLY_INTEGER && r->integer == 0;
        break;
    default:
        ok = r->type != AREDIS_REPLY_ERROR;
    }
    if (!ok) {
        fprintf(stderr, "unexpected reply at step %d\n", d->step);
        d->failed = 1;
        aredis_client_free(d->client);
        return;
    }
    d->step++;
    next(d);
}

static void after_sleep(void *arg)
{
    demo *d = arg;
    d->step++;
    next(d);
}

static void next(demo *d)
{
    aredis_client *c = d->client;
    switch (d->step) {
    case 0:
        aredis_command(c, on_reply, d, "FLUSHDB");
        break;
    case 1:
        aredis_command(c, on_reply, d, "SET %s %d", "foo", 1);
        break;
    case 2:
        aredis_command(c, on_reply, d, "EXISTS %s", "foo");
        break;
    case 3:
        aredis_command(c, on_reply, d, "INCRBY %s %d", "foo", 100);
        break;
    case 4:
        aredis_command(c, on_reply, d, "GET %s", "foo");
        break;
    case 5:
        aredis_command(c, on_reply, d, "EXPIRE %s %d", "foo", 1);
        break;
    case 6:
        aredis_command(c, on_reply, d, "TTL %s", "foo");
        break;
    case 7:
        /* Sleep without blocking the loop: a one-shot timer. */
        printf("%-22s\n", "sleep 1.1 s");
        aredis_timer_start(d->sleep, 1100);
        break;
    case 8:
        aredis_command(c, on_reply, d, "EXISTS %s", "foo");
        break;
    default:
        /* Done: freeing the client lets aredis_loop_run() return. */
        aredis_client_free(c);
    }
}

int main(int argc, char **argv)
{
    const char *url = argc > 1 ? argv[1] : getenv("REDIS_URL");
    if (url == NULL)
        url = "redis://127.0.0.1:6379/0";
    demo d = {0};
    d.loop = aredis_loop_new();
    if (d.loop == NULL)
        return 1;
    aredis_status st;
    d.client = aredis_client_new(d.loop, &(aredis_options){.url = url}, &st);
    if (d.client == NULL) {
        fprintf(stderr, "%s: %s\n", url, st.msg);
        aredis_loop_free(d.loop);
        return 1;
    }
    d.sleep = aredis_timer_new(d.loop, after_sleep, &d);
    printf("connecting to %s (aredis %s)\n", url, aredis_version_string());
    next(&d);
    aredis_loop_run(d.loop);
    aredis_timer_free(d.sleep);
    aredis_loop_free(d.loop);
    if (d.step < 9)
        d.failed = 1;
    printf("%s\n", d.failed ? "FAILED" : "all steps as expected");
    return d.failed;
}
