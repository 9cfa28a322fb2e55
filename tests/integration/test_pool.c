/* Integration tests of exclusive connections and the disconnected queue,
 * against the real standalone server: blocking commands never stall the
 * shared connection, the pool's bound and wait, borrowing and returning a
 * connection, idle closing, and the bounded queue while disconnected. */
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
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

typedef struct result {
    int calls, done, order;
    int type, code;
    long long integer;
    char text[256];
} result;

static int sequence; /* completion order across results */

static void keep(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    result *k = ud;
    k->calls++;
    k->done = 1;
    k->order = ++sequence;
    k->type = r->type;
    k->code = r->code;
    k->integer = r->integer;
    if (r->str != NULL && r->type != AREDIS_REPLY_ARRAY &&
        r->type != AREDIS_REPLY_MAP && r->type != AREDIS_REPLY_INTEGER)
        snprintf(k->text, sizeof k->text, "%.*s", (int)r->len, r->str);
    if (r->type == AREDIS_REPLY_ARRAY && r->len == 2)
        snprintf(k->text, sizeof k->text, "%.*s", (int)r->element[1].len,
                 r->element[1].str);
}

TestSuite(pool, .init = setup);

Test(pool, blocking_commands_do_not_stall_other_callers)
{
    aredis_loop *loop = testloop_new();
    aredis_client *c =
        aredis_client_new(loop, &(aredis_options){.url = url}, NULL);
    char key[64];
    testenv_key(key, sizeof key, "blpop");
    result blpop = {0}, ping = {0}, push = {0};
    sequence = 0;
    cr_assert_eq(aredis_command(c, keep, &blpop, "BLPOP %s %d", key, 5), 0);
    cr_assert_eq(aredis_command(c, keep, &ping, "PING"), 0);
    cr_assert(testloop_run_until(loop, &ping.done, 3000));
    cr_assert_eq(blpop.calls, 0,
                 "BLPOP is still waiting on its own connection");
    cr_assert_str_eq(ping.text, "PONG");
    /* Feed the list from the shared connection: BLPOP wakes up. */
    cr_assert_eq(aredis_command(c, keep, &push, "LPUSH %s v", key), 0);
    cr_assert(testloop_run_until(loop, &blpop.done, 5000));
    cr_assert_eq(blpop.type, AREDIS_REPLY_ARRAY);
    cr_assert_str_eq(blpop.text, "v");
    cr_assert_lt(ping.order, blpop.order);
    aredis_client_free(c);
    testloop_free(loop);
}

Test(pool, bounded_with_a_wait)
{
    aredis_loop *loop = testloop_new();
    aredis_client *c = aredis_client_new(
        loop, &(aredis_options){.url = url, .pool_max = 1, .pool_wait_ms = 300},
        NULL);
    char key[64];
    testenv_key(key, sizeof key, "bounded");
    result first = {0}, second = {0};
    aredis_command(c, keep, &first, "BLPOP %s 1", key);
    int64_t t0 = testenv_now_ms();
    aredis_command(c, keep, &second, "BLPOP %s 1", key);
    cr_assert(testloop_run_until(loop, &second.done, 3000));
    int64_t waited = testenv_now_ms() - t0;
    cr_assert_eq(second.code, AREDIS_EPOOL, "%d: %s", second.code, second.text);
    /* Not before pool_wait_ms; the upper bound only leaves room for a
     * loaded machine (EPOOL above already says it did not wait for the
     * connection the first BLPOP frees after 1 s). */
    cr_assert(waited >= 280 && waited < 2500,
              "waited %lld ms for a connection, pool_wait_ms is 300",
              (long long)waited);
    cr_assert(strstr(second.text, "pool_wait_ms") != NULL, "%s", second.text);
    cr_assert(testloop_run_until(loop, &first.done, 3000));
    cr_assert_eq(first.type, AREDIS_REPLY_NIL, "BLPOP timed out server-side");
    aredis_client_free(c);
    testloop_free(loop);
}

typedef struct borrow {
    aredis_exclusive *x;
    int status, done;
} borrow;

static void got(aredis_client *c, aredis_exclusive *x, int status, void *ud)
{
    (void)c;
    borrow *b = ud;
    b->x = x;
    b->status = status;
    b->done = 1;
}

static long long client_id(aredis_loop *loop, aredis_exclusive *x)
{
    result id = {0};
    cr_assert_eq(aredis_exclusive_command(x, keep, &id, "CLIENT ID"), 0);
    cr_assert(testloop_run_until(loop, &id.done, 3000));
    cr_assert_eq(id.type, AREDIS_REPLY_INTEGER);
    return id.integer;
}

Test(pool, borrow_run_a_transaction_and_return)
{
    aredis_loop *loop = testloop_new();
    aredis_client *c =
        aredis_client_new(loop, &(aredis_options){.url = url}, NULL);
    char key[64];
    testenv_key(key, sizeof key, "multi");
    borrow b = {0};
    cr_assert_eq(aredis_client_acquire(c, got, &b), 0);
    cr_assert_eq(b.done, 0, "never inside the call");
    cr_assert(testloop_run_until(loop, &b.done, 3000));
    cr_assert_eq(b.status, 0);
    long long id1 = client_id(loop, b.x);

    result multi = {0}, incr = {0}, exec = {0};
    aredis_exclusive_command(b.x, keep, &multi, "MULTI");
    aredis_exclusive_command(b.x, keep, &incr, "INCR %s", key);
    aredis_exclusive_command(b.x, keep, &exec, "EXEC");
    cr_assert(testloop_run_until(loop, &exec.done, 3000));
    cr_assert_str_eq(multi.text, "OK");
    cr_assert_str_eq(incr.text, "QUEUED");
    cr_assert_eq(exec.type, AREDIS_REPLY_ARRAY);
    aredis_exclusive_release(b.x);

    /* Given back clean, the same connection is lent again. */
    borrow again = {0};
    aredis_client_acquire(c, got, &again);
    cr_assert(testloop_run_until(loop, &again.done, 3000));
    cr_assert_eq(client_id(loop, again.x), id1);

    /* Given back with a reply unread: closed, never reused. */
    result unread = {0};
    aredis_exclusive_command(again.x, keep, &unread, "DEBUG SLEEP 0.2");
    aredis_exclusive_release(again.x);
    cr_assert(testloop_run_until(loop, &unread.done, 3000));
    cr_assert_eq(unread.code, AREDIS_ECANCELED, "%s", unread.text);
    borrow third = {0};
    aredis_client_acquire(c, got, &third);
    cr_assert(testloop_run_until(loop, &third.done, 3000));
    cr_assert_neq(client_id(loop, third.x), id1);
    aredis_exclusive_release(third.x);
    aredis_client_free(c);
    testloop_free(loop);
}

Test(pool, idle_connections_close)
{
    aredis_loop *loop = testloop_new();
    aredis_client *c = aredis_client_new(
        loop, &(aredis_options){.url = url, .pool_idle_ms = 100}, NULL);
    borrow b = {0};
    aredis_client_acquire(c, got, &b);
    cr_assert(testloop_run_until(loop, &b.done, 3000));
    long long id1 = client_id(loop, b.x);
    aredis_exclusive_release(b.x);
    int never = 0;
    testloop_run_until(loop, &never, 400);
    borrow b2 = {0};
    aredis_client_acquire(c, got, &b2);
    cr_assert(testloop_run_until(loop, &b2.done, 3000));
    cr_assert_neq(client_id(loop, b2.x), id1, "the idle one was closed");
    aredis_exclusive_release(b2.x);
    aredis_client_free(c);
    testloop_free(loop);
}

/* The connections named `name` in CLIENT LIST (asked on c's shared
 * connection) whose line also holds `with`: their number, and the id of
 * the first in *id. */
static int clients_with(aredis_loop *loop, aredis_client *c, const char *name,
                        const char *with, long long *id)
{
    char want[96];
    snprintf(want, sizeof want, " name=%s ", name);
    testgot g = {0};
    testgot_command(loop, c, &g, "CLIENT LIST");
    cr_assert_not_null(g.r->str);
    int n = 0;
    for (const char *line = g.r->str; line != NULL && *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end != NULL ? (size_t)(end - line) : strlen(line);
        char buf[1024];
        snprintf(buf, sizeof buf, "%.*s", (int)len, line);
        if (strstr(buf, want) != NULL && strstr(buf, with) != NULL &&
            n++ == 0 && id != NULL)
            sscanf(buf, "id=%lld", id);
        line = end != NULL ? end + 1 : NULL;
    }
    testgot_clear(&g);
    return n;
}

/* The id of the connection named `name` whose last command is `cmd`, or
 * 0. */
static long long connection_running(aredis_loop *loop, aredis_client *c,
                                    const char *name, const char *cmd)
{
    char with[64];
    snprintf(with, sizeof with, " cmd=%s ", cmd);
    long long id = 0;
    clients_with(loop, c, name, with, &id);
    return id;
}

/* The only pooled connection is killed under a blocking command: that
 * command fails, and the connection goes back to the pool, so the
 * blocking command queued behind it runs (reconnected) instead of
 * waiting out pool_wait_ms. */
Test(pool, a_connection_lost_under_a_blocking_command_is_reused)
{
    aredis_loop *loop = testloop_new();
    char name[64], key[64];
    snprintf(name, sizeof name, "lostblk-%ld", (long)getpid());
    testenv_key(key, sizeof key, "lostblk");
    aredis_client *c =
        aredis_client_new(loop,
                          &(aredis_options){.url = url,
                                            .client_name = name,
                                            .pool_max = 1,
                                            .pool_wait_ms = 2000},
                          NULL);
    cr_assert_not_null(c);
    result first = {0}, second = {0};
    cr_assert_eq(aredis_command(c, keep, &first, "BLPOP %s 10", key), 0);
    cr_assert_eq(aredis_command(c, keep, &second, "BLPOP %s 1", key), 0);
    long long id = 0;
    int64_t until = testenv_now_ms() + 3000;
    while (id == 0 && testenv_now_ms() < until)
        id = connection_running(loop, c, name, "blpop");
    cr_assert_neq(id, 0, "the first BLPOP never reached the server");
    testgot g = {0};
    testgot_command(loop, c, &g, "CLIENT KILL ID %lld", id);
    testgot_clear(&g);
    cr_assert(testloop_run_until(loop, &first.done, 3000));
    cr_assert_eq(first.type, AREDIS_REPLY_ERROR);
    cr_assert(testloop_run_until(loop, &second.done, 4000));
    cr_assert_eq(second.type, AREDIS_REPLY_NIL,
                 "the second BLPOP did not get the connection back: %d %s",
                 second.code, second.text);
    aredis_client_free(c);
    testloop_free(loop);
}

/* WAIT counts the replicas that have the writes of its own connection:
 * it must run where the caller's writes went (the shared connection),
 * not on a pooled one that wrote nothing, while BLPOP still gets a pooled
 * connection. */
Test(pool, wait_runs_on_the_connection_of_the_writes)
{
    aredis_loop *loop = testloop_new();
    char name[64], key[64];
    snprintf(name, sizeof name, "waitconn-%ld", (long)getpid());
    testenv_key(key, sizeof key, "waitconn");
    aredis_client *c = aredis_client_new(
        loop,
        &(aredis_options){
            .url = url, .client_name = name, .command_timeout_ms = 2000},
        NULL);
    cr_assert_not_null(c);
    result set = {0}, wait = {0}, wait2 = {0};
    cr_assert_eq(aredis_command(c, keep, &set, "SET %s v", key), 0);
    cr_assert_eq(aredis_command(c, keep, &wait, "WAIT 0 0"), 0);
    cr_assert_eq(aredis_command(c, keep, &wait2, "WAIT 0 100"), 0);
    cr_assert(testloop_run_until(loop, &wait2.done, 3000));
    cr_assert_eq(set.calls, 1);
    cr_assert_eq(wait.calls, 1);
    cr_assert_eq(wait.type, AREDIS_REPLY_INTEGER, "%d %s", wait.code,
                 wait.text);
    cr_assert_eq(wait.integer, 0);
    cr_assert(set.order < wait.order && wait.order < wait2.order,
              "WAIT overtook the writes it waits for");
    cr_assert_eq(clients_with(loop, c, name, "", NULL), 1,
                 "WAIT opened a connection of its own");
    /* A real blocking command still goes to a pooled connection. */
    result blpop = {0};
    cr_assert_eq(aredis_command(c, keep, &blpop, "BLPOP %s-list 0.05", key), 0);
    cr_assert(testloop_run_until(loop, &blpop.done, 3000));
    cr_assert_eq(blpop.type, AREDIS_REPLY_NIL);
    cr_assert_eq(clients_with(loop, c, name, "", NULL), 2);
    aredis_client_free(c);
    testloop_free(loop);
}

/* A blocking command that outlives its per-call deadline leaves the
 * server blocked on its pooled connection: that connection is closed, so
 * the pool is not left with one less connection until data comes. */
Test(pool, a_timed_out_blocking_command_frees_its_connection)
{
    aredis_loop *loop = testloop_new();
    char name[64], key[64];
    snprintf(name, sizeof name, "blkto-%ld", (long)getpid());
    testenv_key(key, sizeof key, "blkto");
    aredis_client *c =
        aredis_client_new(loop,
                          &(aredis_options){.url = url,
                                            .client_name = name,
                                            .pool_max = 1,
                                            .pool_wait_ms = 3000},
                          NULL);
    cr_assert_not_null(c);
    result first = {0}, second = {0};
    aredis_cmd_opts o = {.timeout_ms = 150};
    cr_assert_eq(aredis_command_opts(c, &o, keep, &first, "BLPOP %s 0", key),
                 0);
    cr_assert_eq(aredis_command(c, keep, &second, "BLPOP %s 0.05", key), 0);
    int64_t t0 = testenv_now_ms();
    cr_assert(testloop_run_until(loop, &second.done, 5000));
    int64_t waited = testenv_now_ms() - t0;
    cr_assert_eq(first.calls, 1);
    cr_assert_eq(first.code, AREDIS_ETIMEDOUT, "%d %s", first.code, first.text);
    cr_assert_eq(second.calls, 1);
    cr_assert_eq(second.type, AREDIS_REPLY_NIL,
                 "the second BLPOP never got the connection: %d %s",
                 second.code, second.text);
    cr_assert(waited < 2000, "the second BLPOP waited %lld ms",
              (long long)waited);
    /* Nothing of ours is left blocked in the server. */
    cr_assert_eq(clients_with(loop, c, name, " flags=b ", NULL), 0);
    aredis_client_free(c);
    testloop_free(loop);
}

static int closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0)
        return -1;
    close(fd);
    return ntohs(a.sin_port);
}

Test(pool, the_disconnected_queue_is_bounded)
{
    char down[128];
    snprintf(down, sizeof down, "redis://127.0.0.1:%d", closed_port());
    aredis_loop *loop = testloop_new();
    aredis_client *c =
        aredis_client_new(loop,
                          &(aredis_options){.url = down,
                                            .max_queued = 3,
                                            .reconnect_max_attempts = 2,
                                            .reconnect_initial_ms = 20},
                          NULL);
    result r[6];
    memset(r, 0, sizeof r);
    for (int i = 0; i < 6; i++)
        cr_assert_eq(aredis_command(c, keep, &r[i], "PING"), 0);
    cr_assert(testloop_run_until(loop, &r[5].done, 3000));
    for (int i = 3; i < 6; i++)
        cr_assert_eq(r[i].code, AREDIS_EBUSY, "%d: %s", i, r[i].text);
    /* The queued ones fail once the attempts are spent. */
    cr_assert(testloop_run_until(loop, &r[2].done, 5000));
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(r[i].calls, 1);
        cr_assert_eq(r[i].code, AREDIS_ECONNREFUSED, "%d: %s", i, r[i].text);
    }
    aredis_client_free(c);
    testloop_free(loop);

    /* AREDIS_QUEUE_WAIT accepts them anyway; they fail at their deadline. */
    loop = testloop_new();
    c = aredis_client_new(loop,
                          &(aredis_options){.url = down,
                                            .max_queued = 1,
                                            .queue_full = AREDIS_QUEUE_WAIT,
                                            .reconnect_max_attempts = -1,
                                            .command_timeout_ms = 150},
                          NULL);
    memset(r, 0, sizeof r);
    for (int i = 0; i < 3; i++)
        aredis_command(c, keep, &r[i], "PING");
    cr_assert(testloop_run_until(loop, &r[2].done, 3000));
    for (int i = 0; i < 3; i++)
        cr_assert_eq(r[i].code, AREDIS_ETIMEDOUT, "%d: %s", i, r[i].text);
    aredis_client_free(c);
    testloop_free(loop);
}

Test(pool, bad_resilience_options_are_refused)
{
    aredis_loop *loop = testloop_new();
    aredis_status st;
    cr_assert_null(aredis_client_new(
        loop,
        &(aredis_options){
            .url = url, .reconnect_initial_ms = 900, .reconnect_max_ms = 100},
        &st));
    cr_assert_eq(st.code, AREDIS_EINVAL);
    cr_assert(strstr(st.msg, "reconnect_initial_ms") != NULL, "%s", st.msg);
    cr_assert_null(aredis_client_new(
        loop, &(aredis_options){.url = url, .queue_full = 7}, &st));
    cr_assert(strstr(st.msg, "queue_full") != NULL, "%s", st.msg);
    testloop_free(loop);
}
