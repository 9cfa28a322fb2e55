/* Exclusive connections: a BLPOP that would stall everyone is sent on its
 * own connection automatically, and a borrowed connection runs an
 * optimistic transaction (WATCH / MULTI / EXEC) with nobody in between.
 *
 *     ./exclusive redis://127.0.0.1:6379
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <aredis/aredis.h>

static int pending = 4, failed;

static void done(aredis_client *c, const char *what, const aredis_reply *r)
{
    if (r->type == AREDIS_REPLY_ERROR) {
        printf("%s -> error: %s\n", what, r->str);
        failed = 1;
    } else if (r->type == AREDIS_REPLY_ARRAY) {
        printf("%s -> array of %zu\n", what, r->len);
    } else {
        printf("%s -> %s\n", what, r->str ? r->str : "(nil)");
    }
    if (--pending == 0)
        aredis_client_free(c);
}

static void on_blpop(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)ud;
    done(c, "BLPOP demo:queue 2 (on its own connection)", r);
}

static void on_ping(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)ud;
    done(c, "PING (not stalled by the BLPOP)", r);
}

static void on_exec(aredis_client *c, const aredis_reply *r, void *ud)
{
    aredis_exclusive_release(ud);
    done(c, "WATCH/MULTI/INCR/EXEC on a borrowed connection", r);
}

static void ignore(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    (void)r;
    (void)ud;
}

static void on_push(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)ud;
    done(c, "LPUSH demo:queue job", r);
}

static void got(aredis_client *c, aredis_exclusive *x, int status, void *ud)
{
    (void)ud;
    if (status != 0) {
        printf("no exclusive connection: %s\n", aredis_strerror(status));
        failed = 1;
        pending = 1;
        aredis_client_free(c);
        return;
    }
    aredis_exclusive_command(x, ignore, NULL, "WATCH demo:counter");
    aredis_exclusive_command(x, ignore, NULL, "MULTI");
    aredis_exclusive_command(x, ignore, NULL, "INCR demo:counter");
    aredis_exclusive_command(x, on_exec, x, "EXEC");
}

int main(int argc, char **argv)
{
    const char *url = argc > 1 ? argv[1] : getenv("REDIS_URL");
    aredis_loop *loop = aredis_loop_new();
    aredis_status st;
    aredis_client *c = aredis_client_new(
        loop, &(aredis_options){.url = url ? url : "redis://127.0.0.1:6379"},
        &st);
    if (c == NULL) {
        fprintf(stderr, "%s\n", st.msg);
        return 1;
    }
    aredis_command(c, on_blpop, NULL, "BLPOP demo:queue 2");
    aredis_command(c, on_ping, NULL, "PING");
    aredis_client_acquire(c, got, NULL);
    aredis_command(c, on_push, NULL, "LPUSH demo:queue job");
    aredis_loop_run(loop);
    aredis_loop_free(loop);
    return failed;
}
