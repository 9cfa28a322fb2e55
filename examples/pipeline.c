/* Pipelines: commands buffered and sent together, their replies delivered
 * at once, in order -- the Python library's pipeline example in C.
 *
 *     ./pipeline redis://127.0.0.1:6379/9
 *
 * First as a transaction (MULTI ... EXEC around the batch): FLUSHDB, SET
 * foo bar, SET bar foo, KEYS *. Then the same pipeline object again, plain
 * this time, with a command the server refuses: its error stays in its own
 * slot. (REDIS_URL is used when no argument is given.) Exits non-zero on
 * any unexpected reply. The database given is emptied. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <aredis/aredis.h>

static int failed;

static void print_reply(const aredis_reply *r)
{
    switch (r->type) {
    case AREDIS_REPLY_INTEGER:
        printf("%lld", r->integer);
        break;
    case AREDIS_REPLY_NIL:
        printf("(nil)");
        break;
    case AREDIS_REPLY_ARRAY:
        printf("[");
        for (size_t i = 0; i < r->len; i++) {
            printf(i ? ", " : "");
            print_reply(&r->element[i]);
        }
        printf("]");
        break;
    case AREDIS_REPLY_ERROR:
        printf("error(%.*s)", (int)r->len, r->str);
        break;
    default:
        printf("%.*s", (int)r->len, r->str);
    }
}

static int is_str(const aredis_reply *r, const char *s)
{
    return (r->type == AREDIS_REPLY_STATUS || r->type == AREDIS_REPLY_STRING) &&
           strcmp(r->str, s) == 0;
}

static void on_plain(aredis_pipeline *p, const aredis_reply *r, void *ud)
{
    (void)ud;
    printf("plain pipeline -> ");
    print_reply(r);
    printf("\n");
    /* [bar, error(WRONGTYPE ...), 1]: each command's reply in its slot. */
    if (r->type != AREDIS_REPLY_ARRAY || r->len != 3 ||
        !is_str(&r->element[0], "bar") ||
        r->element[1].type != AREDIS_REPLY_ERROR || r->element[2].integer != 1)
        failed = 1;
    aredis_client *c = aredis_pipeline_client(p);
    aredis_pipeline_free(p);
    aredis_client_free(c);
}

static void on_transaction(aredis_pipeline *p, const aredis_reply *r, void *ud)
{
    (void)ud;
    printf("transaction    -> ");
    print_reply(r);
    printf("\n");
    /* [OK, OK, OK, [bar, foo]] (KEYS comes in no particular order). */
    if (r->type != AREDIS_REPLY_ARRAY || r->len != 4 ||
        !is_str(&r->element[1], "OK") || r->element[3].len != 2) {
        failed = 1;
        aredis_client *c = aredis_pipeline_client(p);
        aredis_pipeline_free(p);
        aredis_client_free(c);
        return;
    }
    /* The pipeline is empty again: reuse it, as a plain pipeline. */
    aredis_pipeline_command(p, "GET foo");
    aredis_pipeline_command(p, "LPUSH foo x"); /* foo holds a string */
    aredis_pipeline_command(p, "EXISTS bar");
    aredis_pipeline_execute(p, on_plain, NULL);
}

int main(int argc, char **argv)
{
    const char *url = argc > 1 ? argv[1] : getenv("REDIS_URL");
    aredis_loop *loop = aredis_loop_new();
    aredis_status st;
    aredis_client *c = aredis_client_new(
        loop, &(aredis_options){.url = url ? url : "redis://127.0.0.1:6379/9"},
        &st);
    if (c == NULL) {
        fprintf(stderr, "%s\n", st.msg);
        return 1;
    }
    /* transaction = 1: aredis_pipeline_multi() would do the same on a plain
     * one. A plain pipeline is not atomic, but costs no MULTI/EXEC. */
    aredis_pipeline *p = aredis_pipeline_new(c, 1);
    aredis_pipeline_command(p, "FLUSHDB");
    aredis_pipeline_command(p, "SET %s %s", "foo", "bar");
    aredis_pipeline_command(p, "SET %s %s", "bar", "foo");
    aredis_pipeline_command(p, "KEYS *");
    int e = aredis_pipeline_execute(p, on_transaction, NULL);
    if (e != 0) {
        fprintf(stderr, "execute: %s\n", aredis_strerror(e));
        return 1;
    }
    aredis_loop_run(loop);
    aredis_loop_free(loop);
    return failed;
}
