/* aredis inside a libev program: the client runs on an ev_loop.
 *
 *     ./loop_libev redis://127.0.0.1:6379
 *
 * Link with -lev; the adapter is header-only. */
#include <stdio.h>
#include <stdlib.h>

#include <aredis/adapters/libev.h>
#include <aredis/aredis.h>

static int status = 1;

static void on_pong(aredis_client *c, const aredis_reply *r, void *ud)
{
    struct ev_loop *ev = ud;
    printf("PING -> %.*s\n", (int)r->len, r->str);
    status = r->type == AREDIS_REPLY_STATUS ? 0 : 1;
    aredis_client_free(c);
    ev_break(ev, EVBREAK_ALL);
}

int main(int argc, char **argv)
{
    const char *url = argc > 1 ? argv[1] : getenv("REDIS_URL");
    struct ev_loop *ev = ev_loop_new(EVFLAG_AUTO);
    aredis_loop *loop = aredis_loop_ev(ev);
    aredis_status st;
    aredis_client *c = aredis_client_new(
        loop, &(aredis_options){.url = url ? url : "redis://127.0.0.1:6379"},
        &st);
    if (c == NULL) {
        fprintf(stderr, "%s\n", st.msg);
        return 1;
    }
    aredis_command(c, on_pong, ev, "PING");
    ev_run(ev, 0);
    aredis_loop_free(loop);
    ev_loop_destroy(ev);
    return status;
}
