/* Integration tests of the Sentinel topology against a real set-up: one
 * master, two replicas and three sentinels, started by the fixture
 * redis_sentinel (tests/support/redis-sentinel.sh). The set-up is shared:
 * no test fails it over or stops one of its members; the tests that do
 * (failovers, killed or paused servers, hung sentinels, a password) start
 * private set-ups through the same script. Other faults come
 * from the test itself: a port nothing listens on (a dead sentinel), a
 * socket that listens but never answers (a hung one), and a forked fake
 * sentinel that names a replica as the master. Every test counts
 * callbacks: each command completes exactly once, with a reply. */
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "aredis/aredis.h"
#include "testclient.h"
#include "testenv.h"

/* ---- the set-up's state file ------------------------------------------- */

/* The value of key in set-up name's state file into buf ("" when it is
 * there but empty; 0 when it is missing). */
static int setup_value_opt(const char *name, const char *key, char *buf,
                           size_t cap)
{
    const char *dir = getenv("AREDIS_TEST_STATE_DIR");
    cr_assert_not_null(dir, "run through ctest (fixture redis_sentinel)");
    char path[1024], line[1024];
    snprintf(path, sizeof path, "%s/%s.state", dir, name);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "%s: the set-up did not start", path);
    size_t klen = strlen(key);
    int found = 0;
    buf[0] = '\0';
    while (!found && fgets(line, sizeof line, f) != NULL) {
        line[strcspn(line, "\r\n")] = '\0';
        if (strncmp(line, key, klen) == 0 && line[klen] == '=') {
            snprintf(buf, cap, "%s", line + klen + 1);
            found = 1;
        }
    }
    fclose(f);
    return found;
}

/* The same, and it must be there and not empty. */
static void setup_value_of(const char *name, const char *key, char *buf,
                           size_t cap)
{
    cr_assert(setup_value_opt(name, key, buf, cap) && buf[0] != '\0',
              "the state of %s has no %s", name, key);
}

/* The same for the shared set-up, "sentinel". */
static void setup_value(const char *key, char *buf, size_t cap)
{
    setup_value_of("sentinel", key, buf, cap);
}

/* The port of the i-th "127.0.0.1:port" in a comma-separated list. */
static int nth_port(const char *list, int i)
{
    const char *p = list;
    for (; i > 0 && p != NULL; i--)
        if ((p = strchr(p, ',')) != NULL)
            p++;
    cr_assert_not_null(p, "no address %d in '%s'", i, list);
    const char *colon = strchr(p, ':');
    cr_assert_not_null(colon, "bad address in '%s'", list);
    return atoi(colon + 1);
}

/* ---- the set-up itself ------------------------------------------------- */

Test(sentinel_setup, every_sentinel_names_the_master_and_knows_the_rest)
{
    char service[64], master[64], replicas[256], sentinels[256];
    setup_value("service", service, sizeof service);
    setup_value("master", master, sizeof master);
    setup_value("replicas", replicas, sizeof replicas);
    setup_value("sentinels", sentinels, sizeof sentinels);
    int mport = nth_port(master, 0);

    for (int i = 0; i < 3; i++) {
        testenv_conn c;
        const aredis_reply *r;
        testclient_connect_port(&c, nth_port(sentinels, i));
        cr_assert_eq(testenv_command(&c, &r,
                                     "SENTINEL GET-MASTER-ADDR-BY-NAME %s",
                                     service),
                     0, "%s", testenv_errstr());
        cr_assert_eq(r->type, AREDIS_REPLY_ARRAY);
        cr_assert_eq(r->len, 2);
        cr_assert_eq(atoi(r->element[1].str), mport);
        cr_assert_eq(testenv_command(&c, &r, "SENTINEL REPLICAS %s", service),
                     0, "%s", testenv_errstr());
        cr_assert_eq(r->len, 2, "sentinel %d knows both replicas", i);
        cr_assert_eq(testenv_command(&c, &r, "SENTINEL SENTINELS %s", service),
                     0, "%s", testenv_errstr());
        cr_assert_eq(r->len, 2, "sentinel %d knows the other two", i);
        testenv_close(&c);
    }

    testenv_conn m;
    const aredis_reply *r;
    testclient_connect_port(&m, mport);
    cr_assert_eq(testenv_command(&m, &r, "ROLE"), 0, "%s", testenv_errstr());
    cr_assert_str_eq(r->element[0].str, "master");
    cr_assert_eq(r->element[2].len, 2, "the master has both replicas");
    testenv_close(&m);
    (void)replicas;
}

/* ---- the client through a sentinel URL ---------------------------------- */

typedef struct counter {
    int calls, errors, last_code, expect, done;
    long long n; /* the last integer reply */
    char last[256];
} counter;

static void count_cb(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    counter *k = ud;
    cr_assert_not_null(r, "callbacks always get a reply");
    k->calls++;
    if (r->type == AREDIS_REPLY_ERROR) {
        k->errors++;
        k->last_code = r->code;
    }
    if (r->type == AREDIS_REPLY_STRING || r->type == AREDIS_REPLY_STATUS ||
        r->type == AREDIS_REPLY_ERROR)
        snprintf(k->last, sizeof k->last, "%.*s", (int)r->len, r->str);
    if (r->type == AREDIS_REPLY_INTEGER)
        k->n = r->integer;
    if (k->calls >= k->expect)
        k->done = 1;
}

static int run_until(aredis_loop *loop, const int *flag, int ms)
{
    long long end = testenv_now_ms() + ms;
    while (!*flag && testenv_now_ms() < end)
        aredis_loop_run_once(loop, 10);
    return *flag;
}

/* "redis+sentinel://<before>127.0.0.1:p1,...,127.0.0.1:p3/<service><q>" */
static void sentinel_url(char *buf, size_t cap, const char *before,
                         const char *service, const char *query)
{
    char sentinels[256];
    setup_value("sentinels", sentinels, sizeof sentinels);
    snprintf(buf, cap, "redis+sentinel://%s%s/%s%s", before, sentinels, service,
             query);
}

static aredis_client *client_for(aredis_loop *loop, const char *url)
{
    aredis_status st;
    aredis_client *c =
        aredis_client_new(loop, &(aredis_options){.url = url}, &st);
    cr_assert_not_null(c, "%s: %s", url, st.msg);
    return c;
}

/* The value of key read straight from the master, "" when unset. */
static void master_get(const char *key, char *out, size_t cap)
{
    char master[64];
    setup_value("master", master, sizeof master);
    testenv_conn m;
    const aredis_reply *r;
    testclient_connect_port(&m, nth_port(master, 0));
    cr_assert_eq(testenv_command(&m, &r, "GET %s", key), 0, "%s",
                 testenv_errstr());
    snprintf(out, cap, "%.*s", r->type == AREDIS_REPLY_STRING ? (int)r->len : 0,
             r->type == AREDIS_REPLY_STRING ? r->str : "");
    testenv_close(&m);
}

/* SET key val then GET key through c; both must succeed. */
static void set_get(aredis_loop *loop, aredis_client *c, const char *key,
                    const char *val, int budget_ms)
{
    counter k = {.expect = 2};
    cr_assert_eq(aredis_command(c, count_cb, &k, "SET %s %s", key, val), 0);
    cr_assert_eq(aredis_command(c, count_cb, &k, "GET %s", key), 0);
    cr_assert(run_until(loop, &k.done, budget_ms), "%d of 2 replies in %d ms",
              k.calls, budget_ms);
    cr_assert_eq(k.errors, 0, "error: %s", k.last);
    cr_assert_str_eq(k.last, val);
    cr_assert_eq(k.calls, 2);
}

static void int_cb(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    cr_assert_eq(r->type, AREDIS_REPLY_INTEGER);
    *(long long *)ud = r->integer;
}

static void on_conn_event(aredis_client *c, const aredis_conn_event *ev,
                          void *ud)
{
    (void)c;
    if (ev->type == AREDIS_CONN_DISCONNECTED && !ev->exclusive)
        ++*(int *)ud;
}

/* Close the client's shared connection from the server side (CLIENT KILL
 * of its own id: other tests' connections stay), and let it notice. The
 * server closes the connection just after its reply, so a command sent as
 * soon as the reply is in could go out on the dying connection and fail
 * with "outcome unknown": wait for the client to report the loss. */
static void drop_connection(aredis_loop *loop, aredis_client *c)
{
    int lost = 0;
    aredis_client_set_event_handler(c, on_conn_event, &lost);
    long long id = -1;
    cr_assert_eq(aredis_command(c, int_cb, &id, "CLIENT ID"), 0);
    for (int i = 0; i < 500 && id < 0; i++)
        aredis_loop_run_once(loop, 10);
    cr_assert_geq(id, 0, "no CLIENT ID reply");
    long long killed = -1;
    cr_assert_eq(
        aredis_command(c, int_cb, &killed, "CLIENT KILL ID %lld SKIPME no", id),
        0);
    for (int i = 0; i < 500 && killed < 0; i++)
        aredis_loop_run_once(loop, 10);
    cr_assert_eq(killed, 1, "CLIENT KILL ID %lld killed %lld", id, killed);
    for (int i = 0; i < 500 && lost == 0; i++)
        aredis_loop_run_once(loop, 10);
    aredis_client_set_event_handler(c, NULL, NULL);
    cr_assert_geq(lost, 1, "the client did not notice the CLIENT KILL");
}

Test(sentinel, set_get_through_the_url_reaches_the_master)
{
    char url[512], key[96], got[64];
    sentinel_url(url, sizeof url, "", "mymaster", "");
    aredis_loop *loop = aredis_loop_new();
    aredis_client *c = client_for(loop, url);
    testenv_key(key, sizeof key, "sentinel-setget");
    set_get(loop, c, key, "v1", 10000);
    master_get(key, got, sizeof got);
    cr_assert_str_eq(got, "v1", "the write went to the master");
    aredis_client_free(c);
    aredis_loop_free(loop);
}

/* Client-side caching works unchanged on a sentinel-managed client: a
 * read is a miss, then a hit; a write by another client invalidates it, so
 * after the sync call the next read sees the new value. */
static void cc_sync_cb(aredis_ccache *cc, int status, void *ud)
{
    (void)cc;
    cr_assert_eq(status, 0, "sync: %s", aredis_err_name(status));
    *(int *)ud = 1;
}

static void cc_get(aredis_loop *loop, aredis_ccache *cc, const char *key,
                   const char *want)
{
    counter k = {.expect = 1};
    cr_assert_eq(aredis_ccache_command(cc, count_cb, &k, "GET %s", key), 0);
    cr_assert(run_until(loop, &k.done, 5000), "no reply to the cached GET");
    cr_assert_eq(k.errors, 0, "error: %s", k.last);
    cr_assert_str_eq(k.last, want);
}

Test(sentinel, client_side_caching_on_a_sentinel_client)
{
    char url[512], key[96];
    sentinel_url(url, sizeof url, "", "mymaster", "");
    aredis_loop *loop = aredis_loop_new();
    aredis_client *c = client_for(loop, url);
    aredis_client *w = client_for(loop, url);
    testenv_key(key, sizeof key, "sentinel-ccache");
    set_get(loop, w, key, "v1", 10000);
    const char *cmds[] = {"GET"};
    aredis_status st;
    aredis_ccache *cc = aredis_ccache_new(
        c, &(aredis_ccache_opts){.commands = cmds, .ncommands = 1}, &st);
    cr_assert_not_null(cc, "%s", st.msg);
    long long end = testenv_now_ms() + 10000;
    while (aredis_ccache_get_state(cc) != AREDIS_CCACHE_ACTIVE &&
           testenv_now_ms() < end)
        aredis_loop_run_once(loop, 10);
    cr_assert_eq(aredis_ccache_get_state(cc), AREDIS_CCACHE_ACTIVE);
    cc_get(loop, cc, key, "v1"); /* miss, stored */
    cc_get(loop, cc, key, "v1"); /* hit */
    aredis_ccache_stats s1;
    aredis_ccache_get_stats(cc, &s1);
    cr_assert_geq(s1.hits, 1, "no hit on the second read");
    set_get(loop, w, key, "v2", 10000);
    int synced = 0;
    cr_assert_eq(aredis_ccache_sync(cc, cc_sync_cb, &synced), 0);
    cr_assert(run_until(loop, &synced, 5000), "no sync");
    cc_get(loop, cc, key, "v2");
    aredis_ccache_free(cc);
    aredis_client_free(c);
    aredis_client_free(w);
    aredis_loop_free(loop);
}

Test(sentinel, every_command_completes_once_across_discovery)
{
    /* Submitted before discovery has even started: all wait for it. */
    char url[512], key[96];
    sentinel_url(url, sizeof url, "", "mymaster", "?db=2");
    aredis_loop *loop = aredis_loop_new();
    aredis_client *c = client_for(loop, url);
    testenv_key(key, sizeof key, "sentinel-once");
    enum { N = 200 };
    counter k = {.expect = N + 1};
    for (int i = 0; i < N; i++)
        cr_assert_eq(aredis_command(c, count_cb, &k, "INCR %s", key), 0);
    cr_assert_eq(aredis_command(c, count_cb, &k, "GET %s", key), 0);
    cr_assert(run_until(loop, &k.done, 10000), "%d replies", k.calls);
    cr_assert_eq(k.errors, 0, "%s", k.last);
    cr_assert_str_eq(k.last, "200");
    /* Nothing completes a second time later. */
    for (int i = 0; i < 10; i++)
        aredis_loop_run_once(loop, 10);
    cr_assert_eq(k.calls, N + 1);
    aredis_command(c, NULL, NULL, "DEL %s", key);
    aredis_client_free(c);
    aredis_loop_free(loop);
}

Test(sentinel, wrong_service_name_is_a_clear_error)
{
    char url[512];
    sentinel_url(url, sizeof url, "", "nosuchservice", "?connect_timeout=2s");
    aredis_loop *loop = aredis_loop_new();
    aredis_client *c = client_for(loop, url);
    counter k = {.expect = 1};
    long long t0 = testenv_now_ms();
    cr_assert_eq(aredis_command(c, count_cb, &k, "PING"), 0);
    cr_assert(run_until(loop, &k.done, 10000), "no reply");
    long long ms = testenv_now_ms() - t0;
    cr_assert_eq(k.calls, 1);
    cr_assert_eq(k.errors, 1);
    cr_assert_eq(k.last_code, AREDIS_ENOMASTER, "code %s: %s",
                 aredis_err_name(k.last_code), k.last);
    cr_assert(strstr(k.last, "no sentinel knows the service "
                             "'nosuchservice' (3 of 3 asked") != NULL,
              "message: %s", k.last);
    fprintf(stderr, "sentinel: wrong service name: failed after %lld ms: %s\n",
            ms, k.last);
    aredis_client_free(c);
    aredis_loop_free(loop);
}

/* Reads of a client whose look-up cannot succeed: every one fails once,
 * and the first one's callback submits one more (from inside it), which
 * must complete too. */
typedef struct failing_reads {
    counter k;
    aredis_client *c;
    int resubmitted;
} failing_reads;

static void failing_cb(aredis_client *c, const aredis_reply *r, void *ud)
{
    failing_reads *f = ud;
    count_cb(c, r, &f->k);
    if (!f->resubmitted) {
        f->resubmitted = 1;
        cr_assert_eq(aredis_command(c, failing_cb, f, "GET sentinel-next"), 0);
    }
}

/* Four reads through url (three, then one from a callback) complete with
 * want_code and a message holding want_text, within bound_ms; the time
 * taken. */
static long long reads_fail(const char *url, int want_code,
                            const char *want_text, long long bound_ms)
{
    aredis_loop *loop = aredis_loop_new();
    failing_reads f = {.k = {.expect = 4}};
    f.c = client_for(loop, url);
    long long t0 = testenv_now_ms();
    for (int i = 0; i < 3; i++)
        cr_assert_eq(aredis_command(f.c, failing_cb, &f, "GET sentinel-x"), 0);
    cr_assert(run_until(loop, &f.k.done, 10000), "%s: %d of 4 completed", url,
              f.k.calls);
    long long ms = testenv_now_ms() - t0;
    /* Nothing completes a second time later. */
    for (int i = 0; i < 20; i++)
        aredis_loop_run_once(loop, 10);
    cr_assert_eq(f.k.calls, 4, "%s", url);
    cr_assert_eq(f.k.errors, 4, "%s: %s", url, f.k.last);
    cr_assert_eq(f.k.last_code, want_code, "%s: code %s: %s", url,
                 aredis_err_name(f.k.last_code), f.k.last);
    cr_assert(strstr(f.k.last, want_text) != NULL, "%s: message: %s", url,
              f.k.last);
    cr_assert_lt(ms, bound_ms, "%s: %lld ms", url, ms);
    fprintf(stderr, "sentinel: %s: 4 reads failed in %lld ms: %s\n", url, ms,
            f.k.last);
    aredis_client_free(f.c);
    aredis_loop_free(loop);
    return ms;
}

/* role=replica with a service the sentinels do not know: the reads held
 * for the replicas fail like the master's commands, with or without a
 * command timeout (well before it) and with or without the fallback. */
Test(sentinel, replica_reads_of_an_unknown_service_fail_once)
{
    static const char *const q[] = {
        "?role=replica",
        "?role=replica&command_timeout=5s",
        "?role=replica&replica_fallback=yes",
        "?role=replica&replica_fallback=yes&command_timeout=5s",
    };
    for (size_t i = 0; i < sizeof q / sizeof q[0]; i++) {
        char url[512];
        sentinel_url(url, sizeof url, "", "nosuchservice", q[i]);
        reads_fail(url, AREDIS_ENOMASTER,
                   "no sentinel knows the service 'nosuchservice' (3 of 3 "
                   "asked do not monitor it)",
                   2500);
    }
}

/* Every sentinel unreachable (two refuse, one never answers): both roles
 * fail with AREDIS_ENOMASTER, naming the sentinels' errors. */
Test(sentinel, unreachable_sentinels_fail_every_role_once)
{
    int hung;
    int fd = testenv_listener(&hung);
    cr_assert_geq(fd, 0, "%s", testenv_errstr());
    int dead1 = testenv_free_port(), dead2 = testenv_free_port();
    cr_assert(dead1 > 0 && dead2 > 0);
    static const char *const q[] = {
        "",
        "role=replica&",
        "role=replica&command_timeout=5s&",
        "role=replica&replica_fallback=yes&",
    };
    for (size_t i = 0; i < sizeof q / sizeof q[0]; i++) {
        char url[512];
        snprintf(url, sizeof url,
                 "redis+sentinel://127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d/"
                 "mymaster?%ssentinel_timeout=100ms",
                 dead1, hung, dead2, q[i]);
        reads_fail(url, AREDIS_ENOMASTER, "sentinel discovery failed, 3", 2500);
    }
    close(fd);
}

/* A new client of the set-up whose sentinel list starts with
 * 127.0.0.1:first, a sentinel that is what ("dead", "hung"), and how long
 * its first SET+GET (of key "sentinel-<what>") took, in milliseconds. */
typedef struct first_try {
    aredis_loop *loop;
    aredis_client *c;
    char key[96];
    long long ms;
} first_try;

static void first_set_get(first_try *f, int first, const char *what,
                          const char *query)
{
    char before[64], url[512], name[64], value[64];
    snprintf(before, sizeof before, "127.0.0.1:%d,", first);
    sentinel_url(url, sizeof url, before, "mymaster", query);
    f->loop = aredis_loop_new();
    snprintf(name, sizeof name, "sentinel-%s", what);
    testenv_key(f->key, sizeof f->key, name);
    snprintf(value, sizeof value, "after-%s", what);
    long long t0 = testenv_now_ms();
    f->c = client_for(f->loop, url);
    set_get(f->loop, f->c, f->key, value, 10000);
    f->ms = testenv_now_ms() - t0;
    fprintf(stderr,
            "sentinel: first SET+GET with the first sentinel %s: %lld ms\n",
            what, f->ms);
}

Test(sentinel, a_dead_first_sentinel_costs_little)
{
    int dead = testenv_free_port();
    cr_assert_gt(dead, 0);
    first_try f;
    first_set_get(&f, dead, "dead", "");
    long long ms = f.ms;
    /* Refused at once on loopback; the bound leaves room for a loaded
     * machine, the figure is in the log. */
    cr_assert_lt(ms, 1000, "a dead sentinel cost %lld ms", ms);
    aredis_client_free(f.c);
    aredis_loop_free(f.loop);
}

Test(sentinel, a_hung_first_sentinel_costs_its_deadline_only)
{
    /* Listens, so the kernel accepts; never reads, never answers. */
    int port;
    int fd = testenv_listener(&port);
    cr_assert_geq(fd, 0, "%s", testenv_errstr());
    first_try f;
    first_set_get(&f, port, "hung", "?sentinel_timeout=400ms");
    long long ms = f.ms;
    cr_assert_geq(ms, 390, "the hung sentinel was not asked first?");
    cr_assert_lt(ms, 1500, "a hung sentinel cost %lld ms", ms);

    /* The sentinel that answered went to the front: a reconnect does not
     * wait for the hung one again. */
    long long t0 = testenv_now_ms();
    drop_connection(f.loop, f.c);
    set_get(f.loop, f.c, f.key, "again", 10000);
    ms = testenv_now_ms() - t0;
    fprintf(stderr, "sentinel: drop, reconnect, SET+GET: %lld ms\n", ms);
    cr_assert_lt(ms, 390, "the reconnect asked the hung sentinel again");
    aredis_client_free(f.c);
    aredis_loop_free(f.loop);
    close(fd);
}

/* The error of a failed discovery names what matters however many
 * sentinels failed: how many were asked, and the last one's error in
 * full; the earlier ones follow as far as room allows, the message then
 * ending with "..." rather than mid-word. Eight sentinels that never
 * answer (listening loopback ports) each cost their deadline; their
 * errors do not all fit. */
typedef struct long_error {
    int calls, code;
    char msg[2048];
} long_error;

static void on_long_error(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    long_error *e = ud;
    e->calls++;
    e->code = r->type == AREDIS_REPLY_ERROR ? r->code : 0;
    snprintf(e->msg, sizeof e->msg, "%.*s", (int)r->len, r->str);
}

Test(sentinel, a_failed_discovery_names_the_count_and_the_last_error)
{
    enum { NHUNG = 8 };
    int fds[NHUNG], ports[NHUNG];
    char list[256] = "", url[512];
    for (int i = 0; i < NHUNG; i++) {
        fds[i] = testenv_listener(&ports[i]);
        cr_assert_geq(fds[i], 0, "%s", testenv_errstr());
        size_t n = strlen(list);
        snprintf(list + n, sizeof list - n, "%s127.0.0.1:%d", i ? "," : "",
                 ports[i]);
    }
    snprintf(url, sizeof url,
             "redis+sentinel://%s/mymaster?sentinel_timeout=150ms"
             "&failover_wait=0",
             list);
    aredis_loop *loop = aredis_loop_new();
    aredis_status st;
    aredis_client *c = aredis_client_new(
        loop,
        &(aredis_options){.url = url,
                          .reconnect_max_attempts = AREDIS_NO_RECONNECT},
        &st);
    cr_assert_not_null(c, "%s", st.msg);
    long_error e = {0};
    cr_assert_eq(aredis_command(c, on_long_error, &e, "PING"), 0);
    long long t0 = testenv_now_ms();
    for (long long end = t0 + 10000; e.calls == 0 && testenv_now_ms() < end;)
        aredis_loop_run_once(loop, 10);
    cr_assert_eq(e.calls, 1, "no reply");
    fprintf(stderr, "sentinel: eight hung sentinels, %lld ms: %s\n",
            testenv_now_ms() - t0, e.msg);
    cr_assert_neq(e.code, 0, "%s", e.msg);
    cr_assert(strstr(e.msg, "8 sentinels") != NULL, "no count: %s", e.msg);
    char last[32];
    snprintf(last, sizeof last, "127.0.0.1:%d", ports[NHUNG - 1]);
    const char *at = strstr(e.msg, last);
    cr_assert_not_null(at, "the last sentinel is not named: %s", e.msg);
    cr_assert(strstr(at, "timed out") != NULL,
              "the last sentinel's error is not given: %s", e.msg);
    /* The first sentinel's error is the one that did not fit. */
    size_t len = strlen(e.msg);
    cr_assert(len > 3 && strcmp(e.msg + len - 3, "...") == 0,
              "not cut, or not cleanly: %s", e.msg);
    cr_assert_eq(strstr(e.msg, "..."), e.msg + len - 3, "%s", e.msg);
    aredis_client_free(c);
    aredis_loop_free(loop);
    cr_assert_eq(e.calls, 1);
    for (int i = 0; i < NHUNG; i++)
        close(fds[i]);
}

Test(sentinel, freed_during_discovery_completes_everything_once)
{
    int port;
    int fd = testenv_listener(&port);
    cr_assert_geq(fd, 0, "%s", testenv_errstr());
    char url[128];
    snprintf(url, sizeof url,
             "redis+sentinel://127.0.0.1:%d/mymaster?sentinel_timeout=5s",
             port);
    aredis_loop *loop = aredis_loop_new();
    aredis_client *c = client_for(loop, url);
    counter k = {.expect = 3};
    for (int i = 0; i < 3; i++)
        cr_assert_eq(aredis_command(c, count_cb, &k, "PING"), 0);
    for (int i = 0; i < 5; i++) /* the question to the sentinel is out */
        aredis_loop_run_once(loop, 10);
    cr_assert_eq(k.calls, 0);
    aredis_client_free(c);
    cr_assert(run_until(loop, &k.done, 2000));
    cr_assert_eq(k.calls, 3);
    cr_assert_eq(k.last_code, AREDIS_ECANCELED);
    aredis_loop_free(loop);
    cr_assert_eq(k.calls, 3);
    close(fd);
}

/* A fake sentinel in a child process: every SENTINEL command is answered
 * with 127.0.0.1:<port>, everything else (HELLO included) with an error,
 * so clients fall back to RESP2 and ask. The port is named_port, or, when
 * port_file is given, the number that file holds at the time of the
 * question (so a test can move the "master"). */
static pid_t fake_sentinel_at(int *port_out, int named_port,
                              const char *port_file)
{
    int fd = testenv_listener(port_out);
    cr_assert_geq(fd, 0, "%s", testenv_errstr());
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid > 0) {
        close(fd);
        return pid;
    }
    alarm(30);                /* never outlives the test by much */
    signal(SIGCHLD, SIG_IGN); /* no zombies from the per-connection forks */
    char answer[128];
    for (;;) {
        int cfd = accept(fd, NULL, NULL);
        if (cfd < 0)
            _exit(0);
        /* One process per connection: a client may hold one open (a
         * subscription) while others ask. */
        pid_t one = fork();
        if (one != 0) {
            close(cfd);
            continue;
        }
        close(fd);
        alarm(30);
        aredis_reader *rd = aredis_reader_new(NULL);
        char buf[4096];
        ssize_t n;
        while ((n = read(cfd, buf, sizeof buf)) > 0) {
            aredis_reader_feed(rd, buf, (size_t)n);
            const aredis_reply *r;
            while (aredis_reader_get_reply(rd, &r) == 1) {
                const char *out = "-ERR unknown command\r\n";
                if (r->type == AREDIS_REPLY_ARRAY && r->len > 0 &&
                    r->element[0].len == 8 &&
                    strncasecmp(r->element[0].str, "SENTINEL", 8) == 0) {
                    int p = named_port;
                    FILE *f = port_file ? fopen(port_file, "r") : NULL;
                    if (f != NULL) {
                        if (fscanf(f, "%d", &p) != 1)
                            p = named_port;
                        fclose(f);
                    }
                    snprintf(answer, sizeof answer,
                             "*2\r\n$9\r\n127.0.0.1\r\n$%d\r\n%d\r\n",
                             snprintf(NULL, 0, "%d", p), p);
                    out = answer;
                }
                if (write(cfd, out, strlen(out)) < 0)
                    break;
            }
        }
        aredis_reader_free(rd);
        close(cfd);
        _exit(0);
    }
}

static pid_t fake_sentinel(int *port_out, int named_port)
{
    return fake_sentinel_at(port_out, named_port, NULL);
}

static void write_port(const char *path, int port)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fprintf(f, "%d\n", port);
    fclose(f);
}

/* The end of a test on a fake sentinel: the client (NULL: freed already),
 * its loop, then the fake. */
static void fake_done(aredis_loop *loop, aredis_client *c, pid_t pid)
{
    if (c != NULL)
        aredis_client_free(c);
    aredis_loop_free(loop);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

/* Two private servers, a and b, play the master before and after a
 * failover; a fake sentinel names the one whose port a file holds (a's at
 * first); c is a client on that sentinel, which has written "on-a" to
 * key through a. */
typedef struct moving {
    testenv_server a, b;
    int a_stopped;
    char file[320]; /* in b's directory: b outlives a */
    pid_t pid;
    aredis_loop *loop;
    aredis_client *c;
    char key[96];
} moving;

static void moving_start(moving *m, const char *tag)
{
    char name[64], url[128];
    m->a_stopped = 0;
    snprintf(name, sizeof name, "%s-a", tag);
    cr_assert_eq(testenv_private_start(&m->a, name, NULL), 0, "%s",
                 testenv_errstr());
    snprintf(name, sizeof name, "%s-b", tag);
    cr_assert_eq(testenv_private_start(&m->b, name, NULL), 0, "%s",
                 testenv_errstr());
    snprintf(m->file, sizeof m->file, "%s/named-port", m->b.dir);
    write_port(m->file, m->a.port);
    int port;
    m->pid = fake_sentinel_at(&port, m->a.port, m->file);
    snprintf(url, sizeof url, "redis+sentinel://127.0.0.1:%d/mymaster", port);
    m->loop = aredis_loop_new();
    m->c = client_for(m->loop, url);
    snprintf(name, sizeof name, "sentinel-%s", tag);
    testenv_key(m->key, sizeof m->key, name);
    set_get(m->loop, m->c, m->key, "on-a", 10000);
}

static void moving_stop_a(moving *m)
{
    cr_assert_eq(testenv_private_stop(&m->a), 0, "%s", testenv_errstr());
    m->a_stopped = 1;
}

static void moving_done(moving *m)
{
    fake_done(m->loop, m->c, m->pid);
    if (!m->a_stopped)
        moving_stop_a(m);
    cr_assert_eq(testenv_private_stop(&m->b), 0, "%s", testenv_errstr());
}

Test(sentinel, a_lost_master_is_looked_up_again)
{
    moving m;
    moving_start(&m, "move");

    /* "Failover": the sentinel now names b, and a goes away. */
    write_port(m.file, m.b.port);
    moving_stop_a(&m);
    set_get(m.loop, m.c, m.key, "on-b", 10000);
    aredis_reply *r = testclient_direct(m.b.port, "GET %s", m.key);
    cr_assert_eq(r->type, AREDIS_REPLY_STRING, "the write did not reach b");
    cr_assert_str_eq(r->str, "on-b");
    aredis_reply_free(r);
    moving_done(&m);
}

Test(sentinel, readonly_from_a_demoted_master_looks_up_again)
{
    /* a is the master, then becomes b's replica while the connection to
     * it stays up: writes get READONLY until the client asks again. */
    moving m;
    moving_start(&m, "readonly");
    write_port(m.file, m.b.port);
    aredis_reply_free(
        testclient_direct(m.a.port, "REPLICAOF 127.0.0.1 %d", m.b.port));

    /* The first write meets READONLY and reports it (it is not re-sent
     * behind the caller's back); the ones after it reach b. */
    counter k = {.expect = 1};
    cr_assert_eq(aredis_command(m.c, count_cb, &k, "SET %s x", m.key), 0);
    cr_assert(run_until(m.loop, &k.done, 5000));
    cr_assert_eq(k.errors, 1, "%s", k.last);
    cr_assert(strncmp(k.last, "READONLY", 8) == 0, "%s", k.last);
    set_get(m.loop, m.c, m.key, "on-b", 10000);
    moving_done(&m);
}

Test(sentinel, a_replica_named_master_is_dropped)
{
    char replicas[256], before[64], url[512], key[96], got[64];
    setup_value("replicas", replicas, sizeof replicas);
    int port;
    pid_t pid = fake_sentinel(&port, nth_port(replicas, 0));
    snprintf(before, sizeof before, "127.0.0.1:%d,", port);
    sentinel_url(url, sizeof url, before, "mymaster", "");
    aredis_loop *loop = aredis_loop_new();
    aredis_client *c = client_for(loop, url);
    testenv_key(key, sizeof key, "sentinel-role");
    set_get(loop, c, key, "on-master", 10000);
    master_get(key, got, sizeof got);
    cr_assert_str_eq(got, "on-master", "ROLE check let a replica through");
    fake_done(loop, c, pid);
}

Test(sentinel, only_a_lying_sentinel_fails_with_the_role_named)
{
    char replicas[256], url[128];
    setup_value("replicas", replicas, sizeof replicas);
    int port;
    pid_t pid = fake_sentinel(&port, nth_port(replicas, 1));
    snprintf(url, sizeof url,
             "redis+sentinel://127.0.0.1:%d/mymaster?connect_timeout=2s", port);
    aredis_loop *loop = aredis_loop_new();
    aredis_client *c = client_for(loop, url);
    counter k = {.expect = 1};
    cr_assert_eq(aredis_command(c, count_cb, &k, "SET x y"), 0);
    cr_assert(run_until(loop, &k.done, 10000));
    cr_assert_eq(k.calls, 1);
    cr_assert_eq(k.last_code, AREDIS_ENOMASTER, "%s", k.last);
    cr_assert(strstr(k.last, "says it is not one") != NULL, "%s", k.last);
    fake_done(loop, c, pid);
}

/* ---- role=replica on the shared set-up ---------------------------------- */

typedef struct port_count {
    int ports[4], counts[4], calls, errors;
    char last[160];
} port_count;

/* CONFIG GET port: which server answered. */
static void port_cb(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    port_count *k = ud;
    k->calls++;
    if (r->type == AREDIS_REPLY_ERROR) {
        k->errors++;
        snprintf(k->last, sizeof k->last, "%.*s", (int)r->len, r->str);
        return;
    }
    /* An array on RESP2, a map (k, v) on RESP3. */
    cr_assert((r->type == AREDIS_REPLY_ARRAY || r->type == AREDIS_REPLY_MAP) &&
                  r->len == 2 && r->element[1].type == AREDIS_REPLY_STRING,
              "CONFIG GET port: %s", aredis_reply_type_name(r->type));
    int port = atoi(r->element[1].str);
    for (int i = 0; i < 4; i++) {
        if (k->ports[i] == 0)
            k->ports[i] = port;
        if (k->ports[i] == port) {
            k->counts[i]++;
            return;
        }
    }
}

Test(sentinel, replica_reads_spread_over_both_replicas)
{
    char url[512], replicas[256], master[64];
    setup_value("replicas", replicas, sizeof replicas);
    setup_value("master", master, sizeof master);
    sentinel_url(url, sizeof url, "", "mymaster", "?role=replica");
    aredis_loop *loop = aredis_loop_new();
    aredis_client *c = client_for(loop, url);
    /* The first look-up names the replicas; until then commands are held,
     * so not even the first read goes to the master. Read one at a time
     * until a second replica answers. */
    port_count warm = {0};
    for (long long end = testenv_now_ms() + 5000;
         warm.counts[1] == 0 && testenv_now_ms() < end;) {
        cr_assert_eq(aredis_command(c, port_cb, &warm, "CONFIG GET port"), 0);
        int want = warm.calls + 1;
        while (warm.calls < want && testenv_now_ms() < end)
            aredis_loop_run_once(loop, 10);
        aredis_loop_run_once(loop, 5);
    }
    for (int i = 0; i < 3; i++)
        cr_assert(warm.counts[i] == 0 || warm.ports[i] != nth_port(master, 0),
                  "a read before the replicas were known went to the master");
    cr_assert_eq(warm.errors, 0, "%s", warm.last);
    enum { N = 1000 };
    port_count k = {0};
    for (int i = 0; i < N; i++)
        cr_assert_eq(aredis_command(c, port_cb, &k, "CONFIG GET port"), 0);
    for (long long end = testenv_now_ms() + 10000;
         k.calls < N && testenv_now_ms() < end;)
        aredis_loop_run_once(loop, 10);
    cr_assert_eq(k.calls, N);
    cr_assert_eq(k.errors, 0, "%s", k.last);
    fprintf(stderr, "sentinel: S5 split over %d reads: %d:%d, %d:%d, %d:%d\n",
            N, k.ports[0], k.counts[0], k.ports[1], k.counts[1], k.ports[2],
            k.counts[2]);
    cr_assert_eq(k.ports[2], 0, "a third server answered (the master?)");
    int m = nth_port(master, 0);
    for (int i = 0; i < 2; i++) {
        cr_assert_neq(k.ports[i], m, "the master answered a replica read");
        cr_assert(k.ports[i] == nth_port(replicas, 0) ||
                  k.ports[i] == nth_port(replicas, 1));
        cr_assert(k.counts[i] >= N * 45 / 100 && k.counts[i] <= N * 55 / 100,
                  "replica %d got %d of %d", k.ports[i], k.counts[i], N);
    }
    aredis_client_free(c);
    aredis_loop_free(loop);
}

/* A fake sentinel that names the master but no replica (its answer to
 * SENTINEL REPLICAS lists none): role=replica reads go to the master with
 * replica_fallback, and fail at once without it. */
Test(sentinel, no_healthy_replica_falls_back_only_by_option)
{
    char master[64], url[256];
    setup_value("master", master, sizeof master);
    int mport = nth_port(master, 0), port;
    pid_t pid = fake_sentinel(&port, mport);
    aredis_loop *loop = aredis_loop_new();
    for (int fallback = 1; fallback >= 0; fallback--) {
        snprintf(url, sizeof url,
                 "redis+sentinel://127.0.0.1:%d/mymaster?role=replica&"
                 "replica_fallback=%s",
                 port, fallback ? "yes" : "no");
        aredis_client *c = client_for(loop, url);
        port_count k = {0};
        /* Until the look-up has the (empty) SENTINEL REPLICAS answer, the
         * master answers; how soon that is depends on the machine's load.
         * Read one at a time: with the fallback, for 500 ms, every read
         * from the master; without it, until the first error, then two
         * more reads that fail the same way. */
        int errors_at = -1;
        for (long long end = testenv_now_ms() + (fallback ? 500 : 5000);
             testenv_now_ms() < end &&
             (errors_at < 0 || k.calls < errors_at + 2);) {
            int want = k.calls + 1;
            cr_assert_eq(aredis_command(c, port_cb, &k, "CONFIG GET port"), 0);
            while (k.calls < want && testenv_now_ms() < end + 5000)
                aredis_loop_run_once(loop, 10);
            cr_assert_eq(k.calls, want);
            if (k.errors > 0 && errors_at < 0)
                errors_at = k.calls;
            aredis_loop_run_once(loop, 5);
        }
        if (fallback) {
            cr_assert_eq(k.errors, 0, "%s", k.last);
            cr_assert_eq(k.ports[0], mport);
            cr_assert_eq(k.counts[0], k.calls);
        } else {
            cr_assert_geq(errors_at, 1, "no read failed: %d answered", k.calls);
            cr_assert_eq(k.errors, 3, "%d errors (%s)", k.errors, k.last);
            cr_assert_eq(k.calls - errors_at, 2);
            cr_assert(strstr(k.last, "no server is known") != NULL, "%s",
                      k.last);
            cr_assert(k.counts[0] == k.calls - 3 &&
                          (k.calls == 3 || k.ports[0] == mport),
                      "before the look-up, only the master answers");
        }
        aredis_client_free(c);
    }
    fake_done(loop, NULL, pid);
}

/* ---- private set-ups: failovers and faults ------------------------------ */

/* Start or stop a private set-up through the project's script; it belongs
 * to this process (stopped by its watchdogs if the test dies). */
static void private_setup(const char *verb, const char *name, const char *args)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "AREDIS_TEST_OWNER_PID=%d bash '%s/redis-sentinel.sh' %s %s "
             "%s >&2",
             (int)getpid(), AREDIS_TEST_SUPPORT_DIR, verb, name, args);
    cr_assert_eq(system(cmd), 0, "%s failed", cmd);
}

typedef struct setup {
    char name[64], sentinels[256], replicas[256], master[64];
    int master_pid, replica_pid[2], sentinel_pid[3];
} setup;

static void pids_of(const char *list, int *out, int n)
{
    const char *p = list;
    for (int i = 0; i < n && p != NULL && *p != '\0'; i++) {
        out[i] = atoi(p);
        if ((p = strchr(p, ',')) != NULL)
            p++;
    }
}

static void setup_start(setup *s, const char *tag, const char *args)
{
    char buf[256];
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "%s-%d", tag, (int)getpid());
    private_setup("start", s->name, args);
    setup_value_of(s->name, "sentinels", s->sentinels, sizeof s->sentinels);
    setup_value_of(s->name, "master", s->master, sizeof s->master);
    setup_value_opt(s->name, "replicas", s->replicas, sizeof s->replicas);
    setup_value_of(s->name, "master_pid", buf, sizeof buf);
    s->master_pid = atoi(buf);
    setup_value_opt(s->name, "replica_pids", buf, sizeof buf);
    pids_of(buf, s->replica_pid, 2);
    setup_value_of(s->name, "sentinel_pids", buf, sizeof buf);
    pids_of(buf, s->sentinel_pid, 3);
}

static void setup_stop(setup *s)
{
    private_setup("stop", s->name, "");
}

/* The sentinels' events, from our own subscription on one of them: when
 * the first of each kind arrived. */
typedef struct evwatch {
    aredis_client *c;
    aredis_pubsub *ps;
    int subscribed;
    long long switch_at, fence_at, sdown_at, odown_at;
} evwatch;

static void ev_cb(aredis_pubsub *ps, const aredis_pubsub_message *m, void *ud)
{
    (void)ps;
    evwatch *w = ud;
    if (m->kind == AREDIS_PUBSUB_PSUBSCRIBE) {
        w->subscribed = 1;
        return;
    }
    if (m->kind != AREDIS_PUBSUB_PMESSAGE)
        return;
    long long now = testenv_now_ms();
    char ev[64], data[256];
    snprintf(ev, sizeof ev, "%.*s", (int)m->channel_len, m->channel);
    snprintf(data, sizeof data, "%.*s", (int)m->data_len, m->data);
    long long *at = NULL;
    if (strcmp(ev, "+switch-master") == 0)
        at = &w->switch_at;
    else if (strcmp(ev, "+selected-slave") == 0)
        at = &w->fence_at;
    else if (strcmp(ev, "+sdown") == 0 && strncmp(data, "slave ", 6) == 0)
        at = &w->sdown_at;
    else if (strcmp(ev, "+odown") == 0)
        at = &w->odown_at;
    if (at != NULL && *at == 0)
        *at = now;
}

static void evwatch_start(evwatch *w, aredis_loop *loop, int port)
{
    memset(w, 0, sizeof *w);
    aredis_status st;
    w->c = aredis_client_new(
        loop, &(aredis_options){.host = "127.0.0.1", .port = port}, &st);
    cr_assert_not_null(w->c, "%s", st.msg);
    w->ps = aredis_pubsub_new(w->c, NULL);
    cr_assert_not_null(w->ps);
    cr_assert_eq(aredis_pubsub_psubscribe(w->ps, "*", ev_cb, w), 0);
    cr_assert(run_until(loop, &w->subscribed, 5000), "no PSUBSCRIBE");
}

static void evwatch_stop(evwatch *w)
{
    aredis_pubsub_free(w->ps);
    aredis_client_free(w->c);
}

/* A stream of SET <prefix>:<i> <i>, one record per write: each callback
 * must run exactly once. */
typedef struct wrec {
    struct writer *w;
    int calls, ok;
    long long done_at;
} wrec;

typedef struct writer {
    aredis_client *c;
    const char *prefix;
    unsigned flags; /* aredis_cmd_opts.flags of each write */
    wrec *recs;
    int n, cap;
    int calls, ok, failed, codes[3]; /* EUNKNOWN, ENOMASTER, other */
    char last[256];
    const long long *switch_at;
    long long first_ok_after_switch;
} writer;

static void w_cb(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    wrec *x = ud;
    writer *w = x->w;
    cr_assert_not_null(r);
    x->calls++;
    cr_assert_eq(x->calls, 1, "a write completed twice");
    x->done_at = testenv_now_ms();
    w->calls++;
    if (r->type == AREDIS_REPLY_ERROR) {
        w->failed++;
        w->codes[r->code == AREDIS_EUNKNOWN    ? 0
                 : r->code == AREDIS_ENOMASTER ? 1
                                               : 2]++;
        snprintf(w->last, sizeof w->last, "%s: %.*s", aredis_err_name(r->code),
                 (int)r->len, r->str);
        return;
    }
    x->ok = 1;
    w->ok++;
    if (w->switch_at != NULL && *w->switch_at != 0 &&
        w->first_ok_after_switch == 0 && x->done_at >= *w->switch_at)
        w->first_ok_after_switch = x->done_at;
}

static void writer_init(writer *w, aredis_client *c, const char *prefix,
                        unsigned flags, const long long *switch_at)
{
    memset(w, 0, sizeof *w);
    w->c = c;
    w->prefix = prefix;
    w->flags = flags;
    w->cap = 20000;
    w->recs = calloc((size_t)w->cap, sizeof *w->recs);
    cr_assert_not_null(w->recs);
    w->switch_at = switch_at;
}

static void w_send(writer *w)
{
    cr_assert_lt(w->n, w->cap);
    wrec *x = &w->recs[w->n];
    x->w = w;
    aredis_cmd_opts o = {.flags = w->flags};
    cr_assert_eq(aredis_command_opts(w->c, &o, w_cb, x, "SET %s:%d %d",
                                     w->prefix, w->n, w->n),
                 0);
    w->n++;
}

/* Every write completes, exactly once. */
static void writer_drain(aredis_loop *loop, writer *w, int ms)
{
    for (long long end = testenv_now_ms() + ms;
         w->calls < w->n && testenv_now_ms() < end;)
        aredis_loop_run_once(loop, 10);
    cr_assert_eq(w->calls, w->n, "%d of %d writes completed", w->calls, w->n);
    for (int i = 0; i < w->n; i++)
        cr_assert_eq(w->recs[i].calls, 1, "write %d: %d callbacks", i,
                     w->recs[i].calls);
}

/* The writes so far are on n replicas: WAIT, on the writer's own
 * connection. Redis replicates asynchronously: a write the master
 * acknowledged and had not passed on when it died or hung is lost by any
 * failover, whatever the client does. The failover tests check what the
 * client guarantees, so the writes made before the fault are replicated
 * first. */
static void replicated(aredis_loop *loop, writer *w, int n)
{
    counter k = {.expect = 1};
    long long t0 = testenv_now_ms();
    cr_assert_eq(aredis_command(w->c, count_cb, &k, "WAIT %d 5000", n), 0);
    cr_assert(run_until(loop, &k.done, 10000), "WAIT: no reply");
    cr_assert_eq(k.errors, 0, "WAIT: %s", k.last);
    cr_assert_eq(k.n, n,
                 "%lld of %d replicas have the first %d writes after %lld ms",
                 k.n, n, w->n, testenv_now_ms() - t0);
}

/* Write every 2 ms (500/s) until `after_ms` past the switch or `max_ms`;
 * tick (if any) runs between writes. */
static void pump(aredis_loop *loop, writer *w, const evwatch *ev,
                 long long after_ms, long long max_ms,
                 void (*tick)(void *ud, long long now), void *ud)
{
    long long t0 = testenv_now_ms(), next = t0;
    for (;;) {
        long long now = testenv_now_ms();
        if (now - t0 > max_ms ||
            (ev->switch_at != 0 && now - ev->switch_at >= after_ms))
            break;
        if (now >= next) {
            w_send(w);
            next += 2;
        }
        if (tick != NULL)
            tick(ud, now);
        aredis_loop_run_once(loop, 1);
    }
    cr_assert_neq(ev->switch_at, 0, "no +switch-master in %lld ms", max_ms);
}

static int master_port_via(int sentinel_port)
{
    testenv_conn c;
    const aredis_reply *r;
    testclient_connect_port(&c, sentinel_port);
    cr_assert_eq(
        testenv_command(&c, &r, "SENTINEL GET-MASTER-ADDR-BY-NAME mymaster"), 0,
        "%s", testenv_errstr());
    int port = atoi(r->element[1].str);
    testenv_close(&c);
    return port;
}

/* The new master's port, once the last sentinel names it too. */
static int new_master(const setup *s)
{
    int old = nth_port(s->master, 0), port = old;
    for (long long end = testenv_now_ms() + 10000;
         port == old && testenv_now_ms() < end;) {
        port = master_port_via(nth_port(s->sentinels, 2));
        if (port == old)
            usleep(50000);
    }
    cr_assert_neq(port, old, "the sentinels still name the old master");
    return port;
}

/* How many acknowledged writes the server at port lacks; *after_switch:
 * how many of those were acknowledged after the switch. */
static int acked_but_lost(const writer *w, int port, long long switch_at,
                          int *after_switch)
{
    testenv_conn m;
    testclient_connect_port(&m, port);
    int lost = 0;
    *after_switch = 0;
    for (int i = 0; i < w->n; i++) {
        if (!w->recs[i].ok)
            continue;
        const aredis_reply *r;
        cr_assert_eq(testenv_command(&m, &r, "EXISTS %s:%d", w->prefix, i), 0,
                     "%s", testenv_errstr());
        if (r->integer == 0) {
            lost++;
            if (w->recs[i].done_at >= switch_at)
                ++*after_switch;
        }
    }
    testenv_close(&m);
    return lost;
}

/* INFO replication of the server at port, its "key:value" lines joined by
 * spaces into buf ("unreachable: why" when it does not answer). */
static void repl_info(int port, char *buf, size_t cap)
{
    testenv_server sv = {.port = port};
    snprintf(sv.host, sizeof sv.host, "127.0.0.1");
    testenv_conn m;
    const aredis_reply *r;
    if (testenv_connect(&m, &sv) != 0) {
        snprintf(buf, cap, "unreachable: %s", testenv_errstr());
        return;
    }
    if (testenv_command(&m, &r, "INFO replication") != 0 ||
        r->type != AREDIS_REPLY_STRING) {
        snprintf(buf, cap, "no INFO: %s", testenv_errstr());
        testenv_close(&m);
        return;
    }
    size_t n = 0;
    buf[0] = '\0';
    for (const char *p = r->str, *end = r->str + r->len; p < end && n < cap;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t l = (size_t)((nl != NULL ? nl : end) - p);
        if (l > 0 && p[l - 1] == '\r')
            l--;
        if (l > 0 && p[0] != '#')
            n += (size_t)snprintf(buf + n, cap - n, "%s%.*s", n ? " " : "",
                                  (int)l, p);
        p = nl != NULL ? nl + 1 : end;
    }
    testenv_close(&m);
}

/* On a loss, what the failing test prints: the writes missing on the new
 * master (index ranges; when they were acknowledged, relative to the fault
 * at t0 - the kill or the pause - and to the switch), the old master's INFO
 * replication taken just before the fault (`before`), both servers' INFO
 * replication now and the new master's log. The new master had the old
 * one's stream up to its second_repl_offset - 1: less than the old
 * master's master_repl_offset before the fault means writes acknowledged
 * but never replicated (the client cannot tell which server acknowledged
 * a reply; the old master was the only one writable then). */
static void explain_loss(const writer *w, const setup *s, int port,
                         long long t0, long long switch_at, const char *before)
{
    char info[2048];
    int old = nth_port(s->master, 0), from = -1;
    fprintf(stderr,
            "sentinel: writes acked but missing on 127.0.0.1:%d:", port);
    testenv_conn m;
    testclient_connect_port(&m, port);
    for (int i = 0; i <= w->n; i++) {
        int missing = 0;
        if (i < w->n && w->recs[i].ok) {
            const aredis_reply *r;
            cr_assert_eq(testenv_command(&m, &r, "EXISTS %s:%d", w->prefix, i),
                         0, "%s", testenv_errstr());
            missing = r->integer == 0;
        }
        if (missing && from < 0)
            from = i;
        if (!missing && from >= 0) {
            fprintf(
                stderr,
                " %d..%d (acked %lld..%lld ms after the fault, %lld..%lld ms "
                "after the switch)",
                from, i - 1, w->recs[from].done_at - t0,
                w->recs[i - 1].done_at - t0, w->recs[from].done_at - switch_at,
                w->recs[i - 1].done_at - switch_at);
            from = -1;
        }
    }
    testenv_close(&m);
    fprintf(stderr,
            "\nsentinel: old master 127.0.0.1:%d before the fault: %s\n", old,
            before);
    repl_info(port, info, sizeof info);
    fprintf(stderr, "sentinel: new master 127.0.0.1:%d now: %s\n", port, info);
    repl_info(old, info, sizeof info);
    fprintf(stderr, "sentinel: old master 127.0.0.1:%d now: %s\n", old, info);
    /* The new master's log: its sync with the old one and its promotion. */
    char name[96], path[1024], line[512];
    const char *dir = getenv("AREDIS_TEST_STATE_DIR");
    snprintf(name, sizeof name, "%s-r1", s->name);
    if (dir != NULL && setup_value_opt(name, "log", path, sizeof path)) {
        FILE *f = fopen(path, "r");
        while (f != NULL && fgets(line, sizeof line, f) != NULL)
            fprintf(stderr, "sentinel: %s log: %s", name, line);
        if (f != NULL)
            fclose(f);
    }
}

/* The callback that submits during the switch: from the client's own
 * DISCONNECTED event of the master's connection. */
typedef struct in_cb {
    int submitted;
    counter k;
    char key[96];
} in_cb;

static void submit_on_loss(aredis_client *c, const aredis_conn_event *ev,
                           void *ud)
{
    in_cb *x = ud;
    if (ev->type != AREDIS_CONN_DISCONNECTED || ev->exclusive || x->submitted)
        return;
    x->submitted = 1;
    x->k.expect = 1;
    cr_assert_eq(
        aredis_command(c, count_cb, &x->k, "SET %s in-callback", x->key), 0);
}

Test(sentinel_failover, graceful_failover_fences_writes, .timeout = 120)
{
    setup s;
    setup_start(&s, "graceful", "--replicas 1");
    char url[512], key[96];
    snprintf(url, sizeof url, "redis+sentinel://%s/mymaster", s.sentinels);
    aredis_loop *loop = aredis_loop_new();
    aredis_client *c = client_for(loop, url);
    evwatch ev; /* on the sentinel told to fail over: the leader */
    evwatch_start(&ev, loop, nth_port(s.sentinels, 1));
    in_cb cb = {0};
    testenv_key(cb.key, sizeof cb.key, "sentinel-in-cb");
    aredis_client_set_event_handler(c, submit_on_loss, &cb);
    testenv_key(key, sizeof key, "sentinel-graceful");
    writer w;
    writer_init(&w, c, key, 0, &ev.switch_at);
    for (int i = 0; i < 50; i++) /* connected, writing */
        w_send(&w);
    writer_drain(loop, &w, 10000);
    replicated(loop, &w, 1);

    testenv_conn s2;
    const aredis_reply *r;
    testclient_connect_port(&s2, nth_port(s.sentinels, 1));
    cr_assert_eq(testenv_command(&s2, &r, "SENTINEL FAILOVER mymaster"), 0,
                 "%s", testenv_errstr());
    cr_assert_eq(r->type, AREDIS_REPLY_STATUS, "%s", r->str);
    testenv_close(&s2);
    long long t0 = testenv_now_ms();
    pump(loop, &w, &ev, 300, 15000, NULL, NULL);
    writer_drain(loop, &w, 10000);
    cr_assert(run_until(loop, &cb.k.done, 5000),
              "the command submitted from the callback did not complete");
    cr_assert_eq(cb.k.calls, 1);
    cr_assert_eq(cb.k.errors, 0, "%s", cb.k.last);

    int port = new_master(&s), after = 0;
    int lost = acked_but_lost(&w, port, ev.switch_at, &after);
    fprintf(stderr,
            "sentinel: S2 graceful failover: fence %lld ms and switch %lld "
            "ms after SENTINEL FAILOVER, first OK %lld ms after the switch; "
            "%d writes, %d acked, %d failed (%d unknown), acked-but-lost %d "
            "(%d after the switch)%s%s\n",
            ev.fence_at ? ev.fence_at - t0 : -1, ev.switch_at - t0,
            w.first_ok_after_switch ? w.first_ok_after_switch - ev.switch_at
                                    : -1,
            w.n, w.ok, w.failed, w.codes[0], lost, after,
            w.failed ? "; last: " : "", w.failed ? w.last : "");
    cr_assert_eq(after, 0, "writes acked after the switch were lost");
    cr_assert_leq(lost, 5, "%d acked writes lost", lost);
    cr_assert_gt(w.first_ok_after_switch, 0, "no write succeeded after");
    cr_assert_eq(w.codes[1] + w.codes[2], 0, "a write failed: %s", w.last);
    set_get(loop, c, key, "after", 10000);
    testenv_conn m;
    testclient_connect_port(&m, port);
    cr_assert_eq(testenv_command(&m, &r, "GET %s", cb.key), 0, "%s",
                 testenv_errstr());
    cr_assert_eq(r->type, AREDIS_REPLY_STRING, "in-callback write missing");
    testenv_close(&m);
    aredis_client_free(c);
    evwatch_stop(&ev);
    aredis_loop_free(loop);
    free(w.recs);
    setup_stop(&s);
}

/* S1 and more, on one killed master: the main client's writes wait and
 * resume (failover_wait default), a failover_wait=0 client's fail naming
 * the cause, a client freed during the failover completes its held
 * commands once. */
typedef struct kill_ctx {
    aredis_loop *loop;
    aredis_client *zero, *victim;
    counter zk, vk;
    int lost, phase; /* 1: zero saw the loss, 2: the victim did */
    long long t_kill;
    char key[96];
} kill_ctx;

static void lost_event(aredis_client *c, const aredis_conn_event *ev, void *ud)
{
    kill_ctx *x = ud;
    if (ev->type == AREDIS_CONN_DISCONNECTED && !ev->exclusive)
        x->lost |= c == x->zero ? 1 : 2;
}

static void kill_tick(void *ud, long long now)
{
    kill_ctx *x = ud;
    if (x->phase == 0 && x->lost == 3) {
        x->phase = 1;
        for (int i = 0; i < 3; i++) {
            cr_assert_eq(
                aredis_command(x->zero, count_cb, &x->zk, "SET %s z", x->key),
                0);
            cr_assert_eq(
                aredis_command(x->victim, count_cb, &x->vk, "SET %s v", x->key),
                0);
        }
    } else if (x->phase == 1 && now - x->t_kill > 400) {
        x->phase = 2;
        cr_assert_eq(x->vk.calls, 0, "the victim's writes were not held: %s",
                     x->vk.last);
        aredis_client_free(x->victim); /* during the failover */
        x->victim = NULL;
    }
}

Test(sentinel_failover, killed_master_writes_wait_and_resume, .timeout = 120)
{
    setup s;
    setup_start(&s, "killed", "--replicas 1");
    char url[512], zurl[512], key[96];
    snprintf(url, sizeof url, "redis+sentinel://%s/mymaster", s.sentinels);
    snprintf(zurl, sizeof zurl, "redis+sentinel://%s/mymaster?failover_wait=0",
             s.sentinels);
    aredis_loop *loop = aredis_loop_new();
    evwatch ev;
    evwatch_start(&ev, loop, nth_port(s.sentinels, 0));
    kill_ctx x = {.loop = loop};
    x.zk.expect = 3;
    x.vk.expect = 3;
    aredis_client *c = client_for(loop, url);
    /* No reconnect attempts: its commands fail at the first look-up that
     * finds no master, well before the switch. */
    aredis_status zst;
    x.zero = aredis_client_new(
        loop,
        &(aredis_options){.url = zurl,
                          .reconnect_max_attempts = AREDIS_NO_RECONNECT},
        &zst);
    cr_assert_not_null(x.zero, "%s", zst.msg);
    x.victim = client_for(loop, url);
    aredis_client_set_event_handler(x.zero, lost_event, &x);
    aredis_client_set_event_handler(x.victim, lost_event, &x);
    testenv_key(key, sizeof key, "sentinel-killed");
    testenv_key(x.key, sizeof x.key, "sentinel-killed-other");
    set_get(loop, x.zero, x.key, "0", 10000);
    set_get(loop, x.victim, x.key, "1", 10000);
    writer w;
    writer_init(&w, c, key, AREDIS_CMD_IDEMPOTENT, &ev.switch_at);
    for (int i = 0; i < 50; i++)
        w_send(&w);
    writer_drain(loop, &w, 10000);
    replicated(loop, &w, 1);
    char before[2048];
    repl_info(nth_port(s.master, 0), before, sizeof before);

    cr_assert_eq(kill(s.master_pid, SIGKILL), 0);
    x.t_kill = testenv_now_ms();
    pump(loop, &w, &ev, 300, 20000, kill_tick, &x);
    writer_drain(loop, &w, 10000);
    cr_assert_eq(x.phase, 2, "the clients did not see the loss");
    cr_assert(run_until(loop, &x.vk.done, 2000));
    cr_assert_eq(x.vk.calls, 3);
    cr_assert_eq(x.vk.last_code, AREDIS_ECANCELED, "%s", x.vk.last);
    cr_assert(run_until(loop, &x.zk.done, 5000));
    cr_assert_eq(x.zk.calls, 3);

    fprintf(stderr,
            "sentinel: S1 kill -9: switch %lld ms after the kill, first OK "
            "%lld ms after the switch; %d writes, %d failed%s%s; "
            "failover_wait=0: %d of 3 failed, last: %s\n",
            ev.switch_at - x.t_kill,
            w.first_ok_after_switch ? w.first_ok_after_switch - ev.switch_at
                                    : -1,
            w.n, w.failed, w.failed ? ", last: " : "", w.failed ? w.last : "",
            x.zk.errors, x.zk.last);
    cr_assert_eq(w.failed, 0, "writes failed: %s", w.last);
    cr_assert_gt(w.first_ok_after_switch, 0);
    cr_assert_eq(x.zk.errors, 3, "failover_wait=0: %s", x.zk.last);
    cr_assert_eq(x.zk.last_code, AREDIS_ENOMASTER, "%s", x.zk.last);
    cr_assert(strstr(x.zk.last, "is down") != NULL, "%s", x.zk.last);

    int port = new_master(&s), after = 0;
    int lost = acked_but_lost(&w, port, ev.switch_at, &after);
    if (lost > 0)
        explain_loss(&w, &s, port, x.t_kill, ev.switch_at, before);
    cr_assert_eq(lost, 0,
                 "%d acknowledged writes missing on the new master (%d "
                 "acked after the switch)",
                 lost, after);
    set_get(loop, x.zero, x.key, "after", 10000);
    aredis_client_free(x.zero);
    aredis_client_free(c);
    evwatch_stop(&ev);
    aredis_loop_free(loop);
    free(w.recs);
    setup_stop(&s);
}

Test(sentinel_failover, paused_master_costs_nothing, .timeout = 120)
{
    setup s;
    setup_start(&s, "paused", "--replicas 1");
    char url[512], key[96];
    snprintf(url, sizeof url, "redis+sentinel://%s/mymaster", s.sentinels);
    aredis_loop *loop = aredis_loop_new();
    evwatch ev;
    evwatch_start(&ev, loop, nth_port(s.sentinels, 0));
    aredis_client *c = client_for(loop, url);
    testenv_key(key, sizeof key, "sentinel-paused");
    writer w;
    writer_init(&w, c, key, AREDIS_CMD_IDEMPOTENT, &ev.switch_at);
    for (int i = 0; i < 50; i++)
        w_send(&w);
    writer_drain(loop, &w, 10000);
    replicated(loop, &w, 1);
    char before[2048];
    repl_info(nth_port(s.master, 0), before, sizeof before);

    cr_assert_eq(kill(s.master_pid, SIGSTOP), 0);
    long long t0 = testenv_now_ms();
    usleep(50000); /* stopped for sure before the INCR reaches it */
    /* Not idempotent, written to the hung master: its outcome is unknown. */
    counter incr = {.expect = 1};
    cr_assert_eq(aredis_command(c, count_cb, &incr, "INCR %s:n", key), 0);
    pump(loop, &w, &ev, 300, 20000, NULL, NULL);
    kill(s.master_pid, SIGCONT);
    writer_drain(loop, &w, 10000);
    cr_assert(run_until(loop, &incr.done, 5000));
    cr_assert_eq(incr.calls, 1);
    fprintf(stderr,
            "sentinel: S3 SIGSTOP: +odown %lld ms, switch %lld ms after the "
            "pause, first OK %lld ms after the switch; %d writes, %d "
            "failed%s%s; the INCR in flight: %s\n",
            ev.odown_at ? ev.odown_at - t0 : -1, ev.switch_at - t0,
            w.first_ok_after_switch ? w.first_ok_after_switch - ev.switch_at
                                    : -1,
            w.n, w.failed, w.failed ? ", last: " : "", w.failed ? w.last : "",
            incr.last);
    cr_assert_eq(w.failed, 0, "writes failed: %s", w.last);
    cr_assert_eq(incr.errors, 1, "the INCR: %s", incr.last);
    cr_assert_eq(incr.last_code, AREDIS_EUNKNOWN, "the INCR: %s", incr.last);
    int port = new_master(&s), after = 0;
    int lost = acked_but_lost(&w, port, ev.switch_at, &after);
    if (lost > 0)
        explain_loss(&w, &s, port, t0, ev.switch_at, before);
    cr_assert_eq(lost, 0,
                 "%d acknowledged writes missing on the new master (%d "
                 "acked after the switch)",
                 lost, after);
    set_get(loop, c, key, "after", 10000);
    aredis_client_free(c);
    evwatch_stop(&ev);
    aredis_loop_free(loop);
    free(w.recs);
    setup_stop(&s);
}

Test(sentinel_failover, a_killed_replica_leaves_the_rotation, .timeout = 120)
{
    setup s;
    setup_start(&s, "replicas", "--replicas 2");
    char url[512];
    snprintf(url, sizeof url, "redis+sentinel://%s/mymaster?role=replica",
             s.sentinels);
    aredis_loop *loop = aredis_loop_new();
    evwatch ev;
    evwatch_start(&ev, loop, nth_port(s.sentinels, 0));
    aredis_client *c = client_for(loop, url);
    port_count warm = {0};
    for (int i = 0; i < 50 && warm.counts[1] == 0; i++) {
        cr_assert_eq(aredis_command(c, port_cb, &warm, "CONFIG GET port"), 0);
        int want = warm.calls + 1;
        for (long long end = testenv_now_ms() + 2000;
             warm.calls < want && testenv_now_ms() < end;)
            aredis_loop_run_once(loop, 10);
    }
    cr_assert_neq(warm.counts[1], 0, "reads did not reach both replicas");

    cr_assert_eq(kill(s.replica_pid[0], SIGKILL), 0);
    long long t_kill = testenv_now_ms();
    enum { CAP = 8000 };
    port_count before = {0}, after = {0};
    int sent = 0;
    long long next = testenv_now_ms();
    while (testenv_now_ms() - t_kill < 15000 &&
           (ev.sdown_at == 0 || testenv_now_ms() - ev.sdown_at < 2000) &&
           sent < CAP) {
        if (testenv_now_ms() >= next) {
            /* Reads from +sdown + 1 s on are counted apart. */
            port_count *k =
                ev.sdown_at != 0 && testenv_now_ms() >= ev.sdown_at + 1000
                    ? &after
                    : &before;
            cr_assert_eq(aredis_command(c, port_cb, k, "CONFIG GET port"), 0);
            sent++;
            next += 2;
        }
        aredis_loop_run_once(loop, 1);
    }
    cr_assert_neq(ev.sdown_at, 0, "no +sdown");
    for (long long end = testenv_now_ms() + 5000;
         before.calls + after.calls < sent && testenv_now_ms() < end;)
        aredis_loop_run_once(loop, 10);
    cr_assert_eq(before.calls + after.calls, sent);
    fprintf(stderr,
            "sentinel: S5 kill -9 of a replica: +sdown %lld ms after; before "
            "+sdown+1s %d reads, %d errors; after: %d reads, %d errors\n",
            ev.sdown_at - t_kill, before.calls, before.errors, after.calls,
            after.errors);
    cr_assert_gt(after.calls, 100);
    cr_assert_eq(after.errors, 0, "%s", after.last);
    int live = 0;
    for (int i = 0; i < 4; i++)
        if (after.counts[i] > 0)
            live++;
    cr_assert_eq(live, 1, "reads still reach %d servers", live);
    aredis_client_free(c);
    evwatch_stop(&ev);
    aredis_loop_free(loop);
    setup_stop(&s);
}

/* ---- sentinels that fail ------------------------------------------------- */

static void stop_sentinels(const setup *s, int sig, int n)
{
    for (int i = 0; i < n; i++)
        kill(s->sentinel_pid[i], sig);
}

Test(sentinel_faults, all_sentinels_hung_then_back, .timeout = 60)
{
    /* No replica: nothing can fail over while the sentinels are paused. */
    setup s;
    setup_start(&s, "hung", "--replicas 0");
    char url[512], key[96];
    snprintf(url, sizeof url,
             "redis+sentinel://%s/mymaster?sentinel_timeout=100ms",
             s.sentinels);
    aredis_loop *loop = aredis_loop_new();
    aredis_client *c = client_for(loop, url);
    testenv_key(key, sizeof key, "sentinel-all-hung");
    set_get(loop, c, key, "before", 10000);
    stop_sentinels(&s, SIGSTOP, 3);
    drop_connection(loop, c);
    counter k = {.expect = 2};
    long long t0 = testenv_now_ms();
    cr_assert_eq(aredis_command(c, count_cb, &k, "SET %s held", key), 0);
    cr_assert_eq(aredis_command(c, count_cb, &k, "GET %s", key), 0);
    for (long long end = testenv_now_ms() + 1500; testenv_now_ms() < end;)
        aredis_loop_run_once(loop, 10);
    int held = k.calls;
    stop_sentinels(&s, SIGCONT, 3);
    cr_assert(run_until(loop, &k.done, 10000));
    fprintf(stderr,
            "sentinel: all sentinels hung for 1.5 s: the held write "
            "completed %lld ms after it was submitted\n",
            testenv_now_ms() - t0);
    cr_assert_eq(held, 0, "commands did not wait for the sentinels");
    cr_assert_eq(k.calls, 2);
    cr_assert_eq(k.errors, 0, "%s", k.last);
    cr_assert_str_eq(k.last, "held");
    aredis_client_free(c);
    aredis_loop_free(loop);
    setup_stop(&s);
}

Test(sentinel_faults, learnt_sentinels_outlive_the_configured_one,
     .timeout = 60)
{
    setup s;
    setup_start(&s, "learnt", "--replicas 0");
    char url[512], key[96];
    snprintf(url, sizeof url,
             "redis+sentinel://127.0.0.1:%d/mymaster?sentinel_timeout=100ms&"
             "failover_wait=0",
             nth_port(s.sentinels, 0));
    aredis_loop *loop = aredis_loop_new();
    aredis_client *c = client_for(loop, url);
    testenv_key(key, sizeof key, "sentinel-learnt");
    set_get(loop, c, key, "before", 10000);
    for (long long end = testenv_now_ms() + 300; testenv_now_ms() < end;)
        aredis_loop_run_once(loop, 10); /* SENTINEL SENTINELS answers */
    stop_sentinels(&s, SIGSTOP, 1);     /* the only one configured */
    drop_connection(loop, c);
    long long t0 = testenv_now_ms();
    counter k = {.expect = 2};
    cr_assert_eq(aredis_command(c, count_cb, &k, "SET %s learnt", key), 0);
    cr_assert_eq(aredis_command(c, count_cb, &k, "GET %s", key), 0);
    int ok = run_until(loop, &k.done, 5000);
    long long ms = testenv_now_ms() - t0;
    stop_sentinels(&s, SIGCONT, 1);
    cr_assert(ok, "no reply");
    fprintf(stderr,
            "sentinel: the configured sentinel hung, the learnt ones "
            "answered: SET+GET in %lld ms\n",
            ms);
    cr_assert_eq(k.errors, 0, "%s", k.last);
    cr_assert_str_eq(k.last, "learnt");
    aredis_client_free(c);
    aredis_loop_free(loop);
    setup_stop(&s);
}

/* ---- sentinel AUTH --------------------------------------------------------
 */

static void auth_fails(const setup *s, const char *query, const char *want)
{
    char url[512];
    snprintf(url, sizeof url, "redis+sentinel://%s/mymaster%s", s->sentinels,
             query);
    aredis_loop *loop = aredis_loop_new();
    aredis_client *c = client_for(loop, url);
    counter k = {.expect = 1};
    long long t0 = testenv_now_ms();
    cr_assert_eq(aredis_command(c, count_cb, &k, "SET k v"), 0);
    cr_assert(run_until(loop, &k.done, 5000), "no reply");
    long long ms = testenv_now_ms() - t0;
    fprintf(stderr, "sentinel: S6 %s: failed in %lld ms: %s\n",
            query[0] ? query : "no password", ms, k.last);
    cr_assert_eq(k.errors, 1);
    cr_assert(strstr(k.last, want) != NULL, "%s", k.last);
    cr_assert(strstr(k.last, s->sentinels) != NULL,
              "the sentinel's address is not named: %s", k.last);
    cr_assert_lt(ms, 1000, "took %lld ms", ms);
    aredis_client_free(c);
    aredis_loop_free(loop);
}

Test(sentinel_auth, sentinel_password_errors_are_named, .timeout = 60)
{
    setup s;
    setup_start(&s, "auth",
                "--replicas 0 --sentinels 1 --sentinel-password s3cret");
    auth_fails(&s, "", "NOAUTH");
    auth_fails(&s, "?sentinel_password=wrong", "WRONGPASS");
    char url[512], key[96];
    snprintf(url, sizeof url,
             "redis+sentinel://%s/mymaster?sentinel_password=s3cret",
             s.sentinels);
    aredis_loop *loop = aredis_loop_new();
    aredis_client *c = client_for(loop, url);
    testenv_key(key, sizeof key, "sentinel-auth");
    set_get(loop, c, key, "authed", 10000);
    aredis_client_free(c);
    aredis_loop_free(loop);
    setup_stop(&s);
}
