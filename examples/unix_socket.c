/* Connecting over a Unix socket, with the database in the URL.
 *
 *     ./unix_socket unix:///run/redis/redis.sock?db=2
 */
#include <stdio.h>

#include <aredis/aredis.h>

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s unix:///path/to/redis.sock[?db=N]\n",
                argv[0]);
        return 2;
    }
    aredis_status st;
    aredis_sync *s =
        aredis_sync_connect(&(aredis_options){.url = argv[1]}, &st);
    if (s == NULL) {
        fprintf(stderr, "%s: %s\n", argv[1], st.msg);
        return 1;
    }
    aredis_reply *r = aredis_sync_command(s, "CLIENT INFO");
    if (r != NULL)
        printf("%.*s\n", (int)r->len, r->str);
    int bad = r == NULL || r->type == AREDIS_REPLY_ERROR;
    aredis_reply_free(r);
    aredis_sync_free(s);
    return bad;
}
