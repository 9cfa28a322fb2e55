/* A user's program built against an installed aredis (see CMakeLists.txt
 * next to it): PING the server named by REDIS_URL through the client, on
 * the built-in loop, and exit 0 only on PONG. It uses only the installed
 * headers, so it also checks that they are complete. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <aredis/aredis.h>

static void on_pong(aredis_client *c, const aredis_reply *r, void *ud)
{
    int *ok = ud;
    *ok = r->type == AREDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0;
    if (!*ok)
        fprintf(stderr, "PING: %.*s\n", (int)r->len, r->str);
    aredis_client_free(c);
}

int main(void)
{
    const char *url = getenv("REDIS_URL");
    if (url == NULL) {
        fprintf(stderr, "set REDIS_URL\n");
        return 2;
    }
    aredis_loop *loop = aredis_loop_new();
    aredis_status st;
    aredis_client *c =
        aredis_client_new(loop, &(aredis_options){.url = url}, &st);
    if (c == NULL) {
        fprintf(stderr, "aredis_client_new: %s\n", st.msg);
        return 1;
    }
    int ok = 0;
    if (aredis_command(c, on_pong, &ok, "PING") != 0)
        return 1;
    aredis_loop_run(loop);
    aredis_loop_free(loop);
    printf("aredis %s: %s\n", aredis_version_string(), ok ? "PONG" : "failed");
    return ok ? 0 : 1;
}
