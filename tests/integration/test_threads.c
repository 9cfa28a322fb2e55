/* Integration test of thread-safe submission against the real server:
 * several threads each submit many commands through aredis_command_ts()
 * while the loop runs on its own thread; every callback runs exactly once,
 * on the loop thread, and the server's counter proves nothing was lost or
 * sent twice. The test suite also runs this file under ThreadSanitizer. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "aredis/aredis.h"
#include "testenv.h"
#include "threads_scenario.h"

static testenv_server srv;

Test(threads, many_threads_submit_every_callback_once)
{
    cr_assert_eq(testenv_server_load(&srv, "standalone"), 0, "%s",
                 testenv_errstr());
    char url[128], key[64], why[160] = "";
    testenv_key(key, sizeof key, "ts");
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/0", srv.port);
    cr_assert_eq(threads_scenario(url, key, why, sizeof why), 0, "%s", why);
}

static void count_cancel(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    int *n = ud;
    if (r->type == AREDIS_REPLY_ERROR && r->code == AREDIS_ECANCELED)
        n[0]++;
    else
        n[1]++;
}

Test(threads, submissions_pending_at_free_are_cancelled)
{
    cr_assert_eq(testenv_server_load(&srv, "standalone"), 0, "%s",
                 testenv_errstr());
    char url[128];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/0", srv.port);
    aredis_loop *loop = aredis_loop_new();
    aredis_client *c =
        aredis_client_new(loop, &(aredis_options){.url = url}, NULL);
    int counts[2] = {0, 0};
    for (int i = 0; i < 10; i++)
        cr_assert_eq(aredis_command_ts(c, count_cancel, counts, "PING"), 0);
    aredis_client_free(c);
    cr_assert_eq(aredis_command_ts(c, count_cancel, counts, "PING"),
                 AREDIS_ESTATE, "refused once freeing");
    aredis_loop_free(loop);
    cr_assert_eq(counts[0] + counts[1], 10, "each completes once");
}
