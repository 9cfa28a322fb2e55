/* Lua scripts: the Python library's multiply example in C, called directly
 * and inside a pipeline.
 *
 *     ./script redis://127.0.0.1:6379/6
 *
 * The script object carries its SHA-1; evaluating it sends EVALSHA, and if
 * the server does not know the script yet (the first time, or after SCRIPT
 * FLUSH) it is loaded and run in the same call: one callback. In a pipeline
 * the script is loaded before the batch goes out. Exits non-zero unless
 * the results are 10 and [OK, 25]. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <aredis/aredis.h>

static const char lua[] = "local value = redis.call('GET', KEYS[1])\n"
                          "value = tonumber(value)\n"
                          "return value * ARGV[1]";

static aredis_script *multiply;
static int failed;

static void on_pipeline(aredis_pipeline *p, const aredis_reply *r, void *ud)
{
    (void)ud;
    if (r->type == AREDIS_REPLY_ARRAY && r->len == 2)
        printf("pipeline: SET foo 5, multiply(foo, 5) -> [%s, %lld]\n",
               r->element[0].str, r->element[1].integer);
    else
        printf("pipeline failed: %s\n",
               r->type == AREDIS_REPLY_ERROR ? r->str : "?");
    failed |= !(r->type == AREDIS_REPLY_ARRAY && r->len == 2 &&
                r->element[1].integer == 25);
    aredis_client *c = aredis_pipeline_client(p);
    aredis_pipeline_free(p);
    aredis_client_free(c);
}

static void on_multiply(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)ud;
    if (r->type == AREDIS_REPLY_ERROR) {
        printf("multiply failed: %s\n", r->str);
        failed = 1;
        aredis_client_free(c);
        return;
    }
    printf("SET foo 2, multiply(keys=[foo], args=[5]) -> %lld\n", r->integer);
    failed |= r->integer != 10;

    const char *keys[] = {"foo"}, *args[] = {"5"};
    aredis_pipeline *p = aredis_pipeline_new(c, 1);
    aredis_pipeline_command(p, "SET foo 5");
    aredis_pipeline_script(p, multiply, 1, keys, 1, args);
    aredis_pipeline_execute(p, on_pipeline, NULL);
}

static void on_exists(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)ud;
    /* 0 on a fresh server: the eval below then loads it on the way. */
    if (r->type == AREDIS_REPLY_ARRAY && r->len == 1)
        printf("known to the server before the first call: %s\n",
               r->element[0].integer ? "yes" : "no");
    const char *keys[] = {"foo"}, *args[] = {"5"};
    aredis_script_eval(c, multiply, on_multiply, NULL, 1, keys, 1, args);
}

int main(int argc, char **argv)
{
    const char *url = argc > 1 ? argv[1] : getenv("REDIS_URL");
    aredis_loop *loop = aredis_loop_new();
    aredis_status st;
    aredis_client *c = aredis_client_new(
        loop, &(aredis_options){.url = url ? url : "redis://127.0.0.1:6379/6"},
        &st);
    if (c == NULL) {
        fprintf(stderr, "%s\n", st.msg);
        return 1;
    }
    multiply = aredis_script_new(lua, strlen(lua));
    printf("script sha1 %s\n", aredis_script_sha(multiply));
    aredis_command(c, NULL, NULL, "SET foo 2");
    aredis_command(c, on_exists, NULL, "SCRIPT EXISTS %s",
                   aredis_script_sha(multiply));
    aredis_loop_run(loop);
    aredis_script_free(multiply);
    aredis_loop_free(loop);
    return failed;
}
