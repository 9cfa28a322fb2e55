/* Getting started with the blocking facade: the same steps as
 * getting_started.c, one call at a time.
 *
 *     ./getting_started_sync redis://127.0.0.1:6379/0 */
#define _POSIX_C_SOURCE 200809L /* nanosleep */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <aredis/aredis.h>

static int failed;

/* Sync calls return NULL only when out of memory. */
static aredis_reply *must(aredis_reply *r)
{
    if (r == NULL) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    return r;
}

/* Print a reply, check it, and free it (sync replies are owned). */
static void expect(const char *what, aredis_reply *r, int ok)
{
    if (r->type == AREDIS_REPLY_INTEGER)
        printf("%-22s -> %lld\n", what, r->integer);
    else
        printf("%-22s -> %s%.*s\n", what,
               r->type == AREDIS_REPLY_ERROR ? "error: " : "", (int)r->len,
               r->str ? r->str : "(nil)");
    if (!ok || r->type == AREDIS_REPLY_ERROR)
        failed = 1;
    aredis_reply_free(r);
}

int main(int argc, char **argv)
{
    const char *url = argc > 1 ? argv[1] : getenv("REDIS_URL");
    if (url == NULL)
        url = "redis://127.0.0.1:6379/0";
    aredis_status st;
    aredis_sync *s = aredis_sync_connect(&(aredis_options){.url = url}, &st);
    if (s == NULL) {
        fprintf(stderr, "%s: %s\n", url, st.msg);
        return 1;
    }
    aredis_reply *r;
    expect("FLUSHDB", must(aredis_sync_command(s, "FLUSHDB")), 1);
    expect("SET foo 1", must(aredis_sync_command(s, "SET foo %d", 1)), 1);
    r = must(aredis_sync_command(s, "EXISTS foo"));
    expect("EXISTS foo", r, r->integer == 1);
    r = must(aredis_sync_command(s, "INCRBY foo %d", 100));
    expect("INCRBY foo 100", r, r->integer == 101);
    r = must(aredis_sync_command(s, "GET foo"));
    expect("GET foo", r, r->str && strcmp(r->str, "101") == 0);
    expect("EXPIRE foo 1", must(aredis_sync_command(s, "EXPIRE foo 1")), 1);
    r = must(aredis_sync_command(s, "TTL foo"));
    expect("TTL foo", r, r->integer >= 0);
    printf("%-22s\n", "sleep 1.1 s");
    nanosleep(&(struct timespec){1, 100 * 1000 * 1000}, NULL);
    r = must(aredis_sync_command(s, "EXISTS foo"));
    expect("EXISTS foo", r, r->integer == 0);
    aredis_sync_free(s);
    printf("%s\n", failed ? "FAILED" : "all steps as expected");
    return failed;
}
