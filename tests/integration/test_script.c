/* Integration tests of Lua scripts (include/aredis/script.h) against the
 * real standalone server: the locally computed SHA-1 is the server's, the
 * NOSCRIPT fallback is transparent (one callback), a script is not bound
 * to a client, script errors keep their message, pipelines load their
 * scripts before the batch (SCRIPT FLUSH between executions is harmless),
 * and Redis 7 functions (FUNCTION LOAD, FCALL) go through the ordinary
 * command API. Runs on the loop under test (tests/support/testloop.h).
 *
 * Each script's source carries this process's pid, so no other test can
 * have loaded it, and the first EVALSHA really meets NOSCRIPT. SCRIPT FLUSH
 * empties the whole server's cache, so the test that uses it runs on a
 * private server (tests/support/redis-server.sh) and cannot disturb the
 * tests running beside it. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aredis/aredis.h"
#include "testclient.h"
#include "testenv.h"

static testenv_server srv;
static char url[128];

static void setup(void)
{
    testclient_standalone(&srv, url, sizeof url, 0);
}

/* The Python library's README example, made unique to this process. */
static aredis_script *multiply_script(const char *tag)
{
    char src[256];
    snprintf(src, sizeof src,
             "-- aredis test %s %ld\n"
             "local value = redis.call('GET', KEYS[1])\n"
             "value = tonumber(value)\n"
             "return value * ARGV[1]",
             tag, (long)getpid());
    aredis_script *s = aredis_script_new(src, strlen(src));
    cr_assert_not_null(s);
    return s;
}

static int script_exists(aredis_loop *loop, aredis_client *c,
                         const aredis_script *s)
{
    testgot g = {0};
    testgot_command(loop, c, &g, "SCRIPT EXISTS %s", aredis_script_sha(s));
    cr_assert_eq(g.r->type, AREDIS_REPLY_ARRAY);
    int yes = (int)g.r->element[0].integer;
    testgot_clear(&g);
    return yes;
}

TestSuite(script, .init = setup);

Test(script, the_local_sha1_is_the_servers)
{
    aredis_loop *loop = testloop_new();
    aredis_client *c = testclient_new(loop, url);
    aredis_script *s = aredis_script_new("return 1", 8);
    cr_assert_str_eq(aredis_script_sha(s),
                     "e0e1f9fabfc9d4800c877a703b823ac0578ff8db");
    size_t len = 0;
    cr_assert_str_eq(aredis_script_source(s, &len), "return 1");
    cr_assert_eq(len, 8);
    aredis_script *m = multiply_script("sha");
    size_t mlen;
    const char *src = aredis_script_source(m, &mlen);
    testgot g = {0};
    const char *argv[] = {"SCRIPT", "LOAD", src};
    size_t argvlen[] = {6, 4, mlen};
    cr_assert_eq(aredis_commandv(c, testgot_keep, &g, 3, argv, argvlen), 0);
    cr_assert(testloop_run_until(loop, &g.calls, 3000));
    cr_assert_eq(g.r->type, AREDIS_REPLY_STRING);
    cr_assert_str_eq(g.r->str, aredis_script_sha(m));
    /* Binary-safe sources: an embedded NUL is part of what is hashed. */
    aredis_script *z = aredis_script_new("return '\0'", 10);
    cr_assert_str_neq(aredis_script_sha(z), aredis_script_sha(s));
    aredis_script *e = aredis_script_new(NULL, 0);
    cr_assert_str_eq(aredis_script_sha(e),
                     "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    cr_assert_null(aredis_script_new(NULL, 1));
    aredis_script_free(e);
    aredis_script_free(z);
    aredis_script_free(m);
    aredis_script_free(s);
    aredis_script_free(NULL);
    testgot_clear(&g);
    testclient_finish(loop, c);
}

Test(script, eval_loads_on_noscript_transparently_on_any_client)
{
    aredis_loop *loop = testloop_new();
    aredis_client *c1 = testclient_new(loop, url);
    aredis_client *c2 = aredis_client_new(
        loop, &(aredis_options){.url = url, .protocol = 2}, NULL);
    char k[64];
    testenv_key(k, sizeof k, "multiply");
    testgot g = {0};
    testgot_command(loop, c1, &g, "SET %s 2", k);
    aredis_script *mul = multiply_script("eval");
    cr_assert_eq(script_exists(loop, c1, mul), 0, "not loaded yet");
    const char *keys[] = {k}, *args[] = {"5"};
    testgot r = {0};
    cr_assert_eq(
        aredis_script_eval(c1, mul, testgot_keep, &r, 1, keys, 1, args), 0);
    cr_assert_eq(r.calls, 0, "never inside the call");
    cr_assert(testloop_run_until(loop, &r.calls, 3000));
    cr_assert_eq(r.r->type, AREDIS_REPLY_INTEGER, "%s",
                 r.r->type == AREDIS_REPLY_ERROR ? r.r->str : "");
    cr_assert_eq(r.r->integer, 10);
    cr_assert_eq(script_exists(loop, c1, mul), 1, "loaded on the way");
    int never = 0;
    testloop_run_until(loop, &never, 30);
    cr_assert_eq(r.calls, 1, "one callback for EVALSHA + LOAD + EVALSHA");

    /* The same object on another client (RESP2), freed by the caller as
     * soon as the call returned: the command keeps its own reference. */
    testgot_clear(&r);
    const char *args2[] = {"7"};
    cr_assert_eq(
        aredis_script_eval(c2, mul, testgot_keep, &r, 1, keys, 1, args2), 0);
    aredis_script_free(mul);
    cr_assert(testloop_run_until(loop, &r.calls, 3000));
    cr_assert_eq(r.r->integer, 14);

    /* Binary-safe keys and arguments. */
    aredis_script *echo = aredis_script_new("return ARGV[1]", 14);
    testgot_clear(&r);
    const char *bin[] = {"a\0b"};
    size_t binlen[] = {3};
    cr_assert_eq(aredis_script_evalv(c1, echo, testgot_keep, &r, 1, keys, NULL,
                                     1, bin, binlen),
                 0);
    cr_assert(testloop_run_until(loop, &r.calls, 3000));
    cr_assert_eq(r.r->type, AREDIS_REPLY_STRING);
    cr_assert_eq(r.r->len, 3);
    cr_assert(memcmp(r.r->str, "a\0b", 3) == 0);
    cr_assert_eq(
        aredis_script_eval(c1, NULL, testgot_keep, &r, 0, NULL, 0, NULL),
        AREDIS_EINVAL);
    cr_assert_eq(
        aredis_script_eval(c1, echo, testgot_keep, &r, -1, NULL, 0, NULL),
        AREDIS_EINVAL);
    aredis_script_free(echo);
    testgot_command(loop, c1, &g, "DEL %s", k);
    testgot_clear(&g);
    testgot_clear(&r);
    aredis_client_free(c2);
    testclient_finish(loop, c1);
}

Test(script, script_errors_keep_their_message)
{
    aredis_loop *loop = testloop_new();
    aredis_client *c = testclient_new(loop, url);
    char src[128];
    /* A runtime error raised by the script. */
    snprintf(src, sizeof src, "-- %ld\nreturn redis.call('NOSUCHCOMMAND')",
             (long)getpid());
    aredis_script *bad = aredis_script_new(src, strlen(src));
    testgot r = {0};
    cr_assert_eq(aredis_script_eval(c, bad, testgot_keep, &r, 0, NULL, 0, NULL),
                 0);
    cr_assert(testloop_run_until(loop, &r.calls, 3000));
    cr_assert_eq(r.r->type, AREDIS_REPLY_ERROR);
    cr_assert_eq(r.r->code, AREDIS_ESERVER);
    cr_assert(strstr(r.r->str, "user_script") != NULL, "%s", r.r->str);
    cr_assert(strncmp(r.r->str, "ERR", 3) == 0, "%s", r.r->str);
    aredis_script_free(bad);

    /* One that does not compile: SCRIPT LOAD's own message. */
    testgot_clear(&r);
    snprintf(src, sizeof src, "-- %ld\nreturn (", (long)getpid());
    aredis_script *broken = aredis_script_new(src, strlen(src));
    cr_assert_eq(
        aredis_script_eval(c, broken, testgot_keep, &r, 0, NULL, 0, NULL), 0);
    cr_assert(testloop_run_until(loop, &r.calls, 3000));
    cr_assert_eq(r.r->code, AREDIS_ESERVER);
    cr_assert(strstr(r.r->str, "compiling") != NULL, "%s", r.r->str);
    cr_assert(strstr(r.r->str, "user_script") != NULL, "%s", r.r->str);
    int never = 0;
    testloop_run_until(loop, &never, 30);
    cr_assert_eq(r.calls, 1);

    /* In a pipeline, the broken script fails the batch before it is sent. */
    char k[64];
    testenv_key(k, sizeof k, "broken");
    for (int tx = 0; tx <= 1; tx++) {
        aredis_pipeline *p = aredis_pipeline_new(c, tx);
        aredis_pipeline_command(p, "SET %s 1", k);
        cr_assert_eq(aredis_pipeline_script(p, broken, 0, NULL, 0, NULL), 0);
        testgot g = {0};
        cr_assert_eq(aredis_pipeline_execute(p, testgot_keep_pipeline, &g), 0);
        cr_assert(testloop_run_until(loop, &g.calls, 3000));
        cr_assert_eq(g.r->type, AREDIS_REPLY_ERROR);
        cr_assert_eq(g.r->code, AREDIS_ESERVER);
        cr_assert(strncmp(g.r->str, "SCRIPT LOAD failed: ", 20) == 0, "%s",
                  g.r->str);
        testgot_clear(&g);
        testgot_command(loop, c, &g, "EXISTS %s", k);
        cr_assert_eq(g.r->integer, 0, "nothing of the batch ran");
        testgot_clear(&g);
        aredis_pipeline_free(p);
    }
    aredis_script_free(broken);
    testgot_clear(&r);

    /* A long error message (500 bytes) is a reply: it comes whole, through
     * a script object and through a plain EVAL, never cut to the size of
     * a message the library composes. */
    snprintf(src, sizeof src,
             "-- %ld\nreturn redis.error_reply(string.rep('x', 500))",
             (long)getpid());
    aredis_script *longerr = aredis_script_new(src, strlen(src));
    cr_assert_eq(
        aredis_script_eval(c, longerr, testgot_keep, &r, 0, NULL, 0, NULL), 0);
    cr_assert(testloop_run_until(loop, &r.calls, 3000));
    for (int form = 0; form < 2; form++) {
        cr_assert_eq(r.r->type, AREDIS_REPLY_ERROR);
        cr_assert_eq(r.r->code, AREDIS_ESERVER);
        cr_assert_geq(r.r->len, 500, "%zu bytes: %s", r.r->len, r.r->str);
        cr_assert_eq(strlen(r.r->str), r.r->len);
        const char *x = strchr(r.r->str, 'x');
        cr_assert_not_null(x, "%s", r.r->str);
        cr_assert_eq(strspn(x, "x"), 500, "%s", r.r->str);
        testgot_clear(&r);
        if (form == 0)
            testgot_command(loop, c, &r, "EVAL %s 0", src);
    }
    aredis_script_free(longerr);
    testclient_finish(loop, c);
}

Test(script, pipelines_load_their_scripts_even_after_script_flush)
{
    testenv_server own;
    char own_url[128];
    cr_assert_eq(testenv_private_start(&own, "script", NULL), 0, "%s",
                 testenv_errstr());
    testenv_url(own_url, sizeof own_url, &own, 0);
    aredis_loop *loop = testloop_new();
    aredis_client *c = testclient_new(loop, own_url);
    char k[64];
    testenv_key(k, sizeof k, "pipe-script");
    aredis_script *mul = multiply_script("pipeline");
    const char *keys[] = {k}, *a5[] = {"5"}, *a3[] = {"3"};
    testgot g = {0};
    for (int tx = 0; tx <= 1; tx++) {
        aredis_pipeline *p = aredis_pipeline_new(c, tx);
        for (int round = 0; round < 2; round++) {
            /* Every execution starts from a server that knows no script. */
            testgot_command(loop, c, &g, "SCRIPT FLUSH");
            testgot_clear(&g);
            aredis_pipeline_command(p, "SET %s 5", k);
            cr_assert_eq(aredis_pipeline_script(p, mul, 1, keys, 1, a5), 0);
            cr_assert_eq(aredis_pipeline_script(p, mul, 1, keys, 1, a3), 0);
            cr_assert_eq(aredis_pipeline_size(p), 3);
            cr_assert_eq(aredis_pipeline_execute(p, testgot_keep_pipeline, &g),
                         0);
            cr_assert(testloop_run_until(loop, &g.calls, 3000));
            cr_assert_eq(g.r->type, AREDIS_REPLY_ARRAY, "tx=%d round=%d: %s",
                         tx, round,
                         g.r->type == AREDIS_REPLY_ERROR ? g.r->str : "");
            cr_assert_eq(g.r->len, 3);
            cr_assert_eq(g.r->element[1].integer, 25);
            cr_assert_eq(g.r->element[2].integer, 15);
            testgot_clear(&g);
        }
        aredis_pipeline_free(p);
    }
    /* With a WATCH: the load goes to the WATCH connection, before MULTI. */
    testgot_command(loop, c, &g, "SCRIPT FLUSH");
    testgot_clear(&g);
    aredis_pipeline *p = aredis_pipeline_new(c, 1);
    testgot w = {0};
    cr_assert_eq(aredis_pipeline_watch(p, testgot_keep_pipeline, &w, 1, keys),
                 0);
    cr_assert(testloop_run_until(loop, &w.calls, 3000));
    cr_assert_eq(aredis_pipeline_multi(p), 0);
    cr_assert_eq(aredis_pipeline_script(p, mul, 1, keys, 1, a3), 0);
    cr_assert_eq(aredis_pipeline_execute(p, testgot_keep_pipeline, &g), 0);
    cr_assert(testloop_run_until(loop, &g.calls, 3000));
    cr_assert_eq(g.r->type, AREDIS_REPLY_ARRAY, "%s",
                 g.r->type == AREDIS_REPLY_ERROR ? g.r->str : "");
    cr_assert_eq(g.r->element[0].integer, 15);
    testgot_clear(&g);
    testgot_clear(&w);
    /* A script queued and never executed is released with the pipeline. */
    aredis_pipeline_script(p, mul, 1, keys, 1, a3);
    aredis_script_free(mul);
    aredis_pipeline_free(p);
    testclient_finish(loop, c);
    cr_assert_eq(testenv_private_stop(&own), 0, "%s", testenv_errstr());
}

Test(script, functions_go_through_the_command_api)
{
    aredis_loop *loop = testloop_new();
    aredis_client *c = testclient_new(loop, url);
    char lib[64], fn[64], code[512], k[64];
    snprintf(lib, sizeof lib, "aredis_test_%ld", (long)getpid());
    snprintf(fn, sizeof fn, "aredis_getset_%ld", (long)getpid());
    snprintf(code, sizeof code,
             "#!lua name=%s\n"
             "redis.register_function('%s', function(keys, args)\n"
             "  local old = redis.call('GET', keys[1])\n"
             "  redis.call('SET', keys[1], args[1])\n"
             "  return old\n"
             "end)",
             lib, fn);
    testenv_key(k, sizeof k, "fcall");
    testgot g = {0};
    testgot_command(loop, c, &g, "FUNCTION LOAD REPLACE %s", code);
    cr_assert_eq(g.r->type, AREDIS_REPLY_STRING, "%s", g.r->str);
    cr_assert_str_eq(g.r->str, lib);
    testgot_clear(&g);
    cr_assert_eq(
        aredis_command(c, testgot_keep, &g, "FCALL %s 1 %s %s", fn, k, "one"),
        0);
    cr_assert(testloop_run_until(loop, &g.calls, 3000));
    cr_assert_eq(g.r->type, AREDIS_REPLY_NIL);
    testgot_clear(&g);
    cr_assert_eq(
        aredis_command(c, testgot_keep, &g, "FCALL %s 1 %s %s", fn, k, "two"),
        0);
    cr_assert(testloop_run_until(loop, &g.calls, 3000));
    cr_assert_str_eq(g.r->str, "one");
    /* And in a transaction pipeline. */
    aredis_pipeline *p = aredis_pipeline_new(c, 1);
    aredis_pipeline_command(p, "FCALL %s 1 %s %s", fn, k, "three");
    aredis_pipeline_command(p, "GETDEL %s", k);
    testgot_clear(&g);
    cr_assert_eq(aredis_pipeline_execute(p, testgot_keep_pipeline, &g), 0);
    cr_assert(testloop_run_until(loop, &g.calls, 3000));
    cr_assert_eq(g.r->type, AREDIS_REPLY_ARRAY);
    cr_assert_str_eq(g.r->element[0].str, "two");
    cr_assert_str_eq(g.r->element[1].str, "three");
    aredis_pipeline_free(p);
    testgot_command(loop, c, &g, "FUNCTION DELETE %s", lib);
    cr_assert_eq(g.r->type, AREDIS_REPLY_STATUS, "%s", g.r->str);
    testgot_clear(&g);
    testclient_finish(loop, c);
}
