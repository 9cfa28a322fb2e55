/* aredis inside a libevent program: the client runs on an event_base.
 *
 *     ./loop_libevent redis://127.0.0.1:6379
 *
 * Link with libevent (pkg-config --libs libevent); the adapter is
 * header-only. */
#include <stdio.h>
#include <stdlib.h>

#include <aredis/adapters/libevent.h>
#include <aredis/aredis.h>

static int status = 1;

static void on_pong(aredis_client *c, const aredis_reply *r, void *ud)
{
    struct event_base *base = ud;
    printf("PING -> %.*s\n", (int)r->len, r->str);
    status = r->type == AREDIS_REPLY_STATUS ? 0 : 1;
    aredis_client_free(c);
    event_base_loopexit(base, NULL);
}

int main(int argc, char **argv)
{
    const char *url = argc > 1 ? argv[1] : getenv("REDIS_URL");
    struct event_base *base = event_base_new();
    aredis_loop *loop = aredis_loop_event(base);
    aredis_status st;
    aredis_client *c = aredis_client_new(
        loop, &(aredis_options){.url = url ? url : "redis://127.0.0.1:6379"},
        &st);
    if (c == NULL) {
        fprintf(stderr, "%s\n", st.msg);
        return 1;
    }
    aredis_command(c, on_pong, base, "PING");
    event_base_dispatch(base);
    aredis_loop_free(loop); /* runs the client's final release */
    event_base_free(base);
    return status;
}
