/* aredis inside a libuv program: the client runs on uv's loop.
 *
 *     ./loop_libuv redis://127.0.0.1:6379
 *
 * Link with libuv (pkg-config --libs libuv); the adapter is header-only. */
/* libuv's headers use POSIX types that strict C11 hides. */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>

#include <aredis/adapters/libuv.h>
#include <aredis/aredis.h>

static int status = 1;

static void on_pong(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)ud;
    printf("PING -> %.*s\n", (int)r->len, r->str);
    status = r->type == AREDIS_REPLY_STATUS ? 0 : 1;
    /* With the client gone, uv_run() has nothing left and returns. */
    aredis_client_free(c);
}

int main(int argc, char **argv)
{
    const char *url = argc > 1 ? argv[1] : getenv("REDIS_URL");
    uv_loop_t *uv = uv_default_loop();
    aredis_loop *loop = aredis_loop_uv(uv);
    aredis_status st;
    aredis_client *c = aredis_client_new(
        loop, &(aredis_options){.url = url ? url : "redis://127.0.0.1:6379"},
        &st);
    if (c == NULL) {
        fprintf(stderr, "%s\n", st.msg);
        return 1;
    }
    aredis_command(c, on_pong, NULL, "PING");
    uv_run(uv, UV_RUN_DEFAULT);
    aredis_loop_free(loop);
    uv_run(uv, UV_RUN_DEFAULT); /* let the adapter's handles close */
    uv_loop_close(uv);
    return status;
}
