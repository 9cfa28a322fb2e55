/* Integration tests of the Sentinel topology against a real set-up: one
 * master, two replicas and three sentinels, started by the fixture
 * redis_sentinel (tests/support/redis-sentinel.sh). The set-up is shared:
 * no test here fails it over or stops one of its members. Faults come
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
#include <time.h>
#include <unistd.h>

#include "aredis/aredis.h"
#include "testenv.h"

/* ---- the set-up's state file ------------------------------------------- */

/* The value of key in set-up name's state file into buf. */
static void setup_value_of(const char *name, const char *key, char *buf,
                           size_t cap)
{
    const char *dir = getenv("AREDIS_TEST_STATE_DIR");
    cr_assert_not_null(dir, "run through ctest (fixture redis_sentinel)");
    char path[1024], line[1024];
    snprintf(path, sizeof path, "%s/%s.state", dir, name);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "%s: the fixture redis_sentinel did not run", path);
    size_t klen = strlen(key);
    buf[0] = '\0';
    while (fgets(line, sizeof line, f) != NULL) {
        line[strcspn(line, "\r\n")] = '\0';
        if (strncmp(line, key, klen) == 0 && line[klen] == '=') {
            snprintf(buf, cap, "%s", line + klen + 1);
            break;
        }
    }
    fclose(f);
    cr_assert_neq(buf[0], '\0', "%s has no %s", path, key);
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

static void connect_port(testenv_conn *c, int port)
{
    testenv_server s = {.port = port};
    snprintf(s.host, sizeof s.host, "127.0.0.1");
    cr_assert_eq(testenv_connect(c, &s), 0, "%s", testenv_errstr());
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
        connect_port(&c, nth_port(sentinels, i));
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
    connect_port(&m, mport);
    cr_assert_eq(testenv_command(&m, &r, "ROLE"), 0, "%s", testenv_errstr());
    cr_assert_str_eq(r->element[0].str, "master");
    cr_assert_eq(r->element[2].len, 2, "the master has both replicas");
    testenv_close(&m);
    (void)replicas;
}

/* ---- the client through a sentinel URL ---------------------------------- */

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

typedef struct counter {
    int calls, errors, last_code, expect, done;
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
    if (k->calls >= k->expect)
        k->done = 1;
}

static int run_until(aredis_loop *loop, const int *flag, int ms)
{
    long long end = now_ms() + ms;
    while (!*flag && now_ms() < end)
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
    connect_port(&m, nth_port(master, 0));
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
    long long end = now_ms() + 10000;
    while (aredis_ccache_get_state(cc) != AREDIS_CCACHE_ACTIVE &&
           now_ms() < end)
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
    long long t0 = now_ms();
    cr_assert_eq(aredis_command(c, count_cb, &k, "PING"), 0);
    cr_assert(run_until(loop, &k.done, 10000), "no reply");
    long long ms = now_ms() - t0;
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

Test(sentinel, a_dead_first_sentinel_costs_little)
{
    int dead = testenv_free_port();
    cr_assert_gt(dead, 0);
    char before[64], url[512], key[96];
    snprintf(before, sizeof before, "127.0.0.1:%d,", dead);
    sentinel_url(url, sizeof url, before, "mymaster", "");
    aredis_loop *loop = aredis_loop_new();
    testenv_key(key, sizeof key, "sentinel-dead");
    long long t0 = now_ms();
    aredis_client *c = client_for(loop, url);
    set_get(loop, c, key, "after-dead", 10000);
    long long ms = now_ms() - t0;
    fprintf(stderr,
            "sentinel: first SET+GET with the first sentinel dead: %lld ms\n",
            ms);
    /* Refused at once on loopback; the bound leaves room for a loaded
     * machine, the figure is in the log. */
    cr_assert_lt(ms, 1000, "a dead sentinel cost %lld ms", ms);
    aredis_client_free(c);
    aredis_loop_free(loop);
}

Test(sentinel, a_hung_first_sentinel_costs_its_deadline_only)
{
    /* Listens, so the kernel accepts; never reads, never answers. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(listen(fd, 8), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    char before[64], url[512], key[96];
    snprintf(before, sizeof before, "127.0.0.1:%d,", ntohs(a.sin_port));
    sentinel_url(url, sizeof url, before, "mymaster",
                 "?sentinel_timeout=400ms");
    aredis_loop *loop = aredis_loop_new();
    testenv_key(key, sizeof key, "sentinel-hung");
    long long t0 = now_ms();
    aredis_client *c = client_for(loop, url);
    set_get(loop, c, key, "after-hung", 10000);
    long long ms = now_ms() - t0;
    fprintf(stderr,
            "sentinel: first SET+GET with the first sentinel hung: %lld ms\n",
            ms);
    cr_assert_geq(ms, 390, "the hung sentinel was not asked first?");
    cr_assert_lt(ms, 1500, "a hung sentinel cost %lld ms", ms);

    /* The sentinel that answered went to the front: a reconnect does not
     * wait for the hung one again. */
    t0 = now_ms();
    drop_connection(loop, c);
    set_get(loop, c, key, "again", 10000);
    ms = now_ms() - t0;
    fprintf(stderr, "sentinel: drop, reconnect, SET+GET: %lld ms\n", ms);
    cr_assert_lt(ms, 390, "the reconnect asked the hung sentinel again");
    aredis_client_free(c);
    aredis_loop_free(loop);
    close(fd);
}

Test(sentinel, freed_during_discovery_completes_everything_once)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(listen(fd, 8), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    char url[128];
    snprintf(url, sizeof url,
             "redis+sentinel://127.0.0.1:%d/mymaster?sentinel_timeout=5s",
             ntohs(a.sin_port));
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
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(listen(fd, 8), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port_out = ntohs(a.sin_port);
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

Test(sentinel, a_lost_master_is_looked_up_again)
{
    /* Two private servers play the master before and after a failover;
     * the fake sentinel names whichever the file says. */
    testenv_server a, b;
    cr_assert_eq(testenv_private_start(&a, "moving-a", NULL), 0, "%s",
                 testenv_errstr());
    cr_assert_eq(testenv_private_start(&b, "moving-b", NULL), 0, "%s",
                 testenv_errstr());
    char file[320], url[128], key[96];
    snprintf(file, sizeof file, "%s/named-port", b.dir); /* b outlives a */
    write_port(file, a.port);
    int port;
    pid_t pid = fake_sentinel_at(&port, a.port, file);
    snprintf(url, sizeof url, "redis+sentinel://127.0.0.1:%d/mymaster", port);
    aredis_loop *loop = aredis_loop_new();
    aredis_client *c = client_for(loop, url);
    testenv_key(key, sizeof key, "sentinel-move");
    set_get(loop, c, key, "on-a", 10000);

    /* "Failover": the sentinel now names b, and a goes away. */
    write_port(file, b.port);
    cr_assert_eq(testenv_private_stop(&a), 0, "%s", testenv_errstr());
    set_get(loop, c, key, "on-b", 10000);
    testenv_conn cb;
    const aredis_reply *r;
    connect_port(&cb, b.port);
    cr_assert_eq(testenv_command(&cb, &r, "GET %s", key), 0, "%s",
                 testenv_errstr());
    cr_assert_eq(r->type, AREDIS_REPLY_STRING, "the write did not reach b");
    cr_assert_str_eq(r->str, "on-b");
    testenv_close(&cb);
    aredis_client_free(c);
    aredis_loop_free(loop);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    cr_assert_eq(testenv_private_stop(&b), 0, "%s", testenv_errstr());
}

Test(sentinel, readonly_from_a_demoted_master_looks_up_again)
{
    /* a is the master, then becomes b's replica while the connection to
     * it stays up: writes get READONLY until the client asks again. */
    testenv_server a, b;
    cr_assert_eq(testenv_private_start(&a, "demoted-a", NULL), 0, "%s",
                 testenv_errstr());
    cr_assert_eq(testenv_private_start(&b, "demoted-b", NULL), 0, "%s",
                 testenv_errstr());
    char file[320], url[128], key[96];
    snprintf(file, sizeof file, "%s/named-port", b.dir);
    write_port(file, a.port);
    int port;
    pid_t pid = fake_sentinel_at(&port, a.port, file);
    snprintf(url, sizeof url, "redis+sentinel://127.0.0.1:%d/mymaster", port);
    aredis_loop *loop = aredis_loop_new();
    aredis_client *c = client_for(loop, url);
    testenv_key(key, sizeof key, "sentinel-readonly");
    set_get(loop, c, key, "on-a", 10000);

    write_port(file, b.port);
    testenv_conn ca;
    const aredis_reply *r;
    connect_port(&ca, a.port);
    cr_assert_eq(testenv_command(&ca, &r, "REPLICAOF 127.0.0.1 %d", b.port), 0,
                 "%s", testenv_errstr());
    testenv_close(&ca);

    /* The first write meets READONLY and reports it (it is not re-sent
     * behind the caller's back); the ones after it reach b. */
    counter k = {.expect = 1};
    cr_assert_eq(aredis_command(c, count_cb, &k, "SET %s x", key), 0);
    cr_assert(run_until(loop, &k.done, 5000));
    cr_assert_eq(k.errors, 1, "%s", k.last);
    cr_assert(strncmp(k.last, "READONLY", 8) == 0, "%s", k.last);
    set_get(loop, c, key, "on-b", 10000);
    aredis_client_free(c);
    aredis_loop_free(loop);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    cr_assert_eq(testenv_private_stop(&a), 0, "%s", testenv_errstr());
    cr_assert_eq(testenv_private_stop(&b), 0, "%s", testenv_errstr());
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
    aredis_client_free(c);
    aredis_loop_free(loop);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
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
    aredis_client_free(c);
    aredis_loop_free(loop);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

/* ---- a real failover, on a private set-up ------------------------------- */

/* Start or stop a private set-up through the project's script; it belongs
 * to this process (stopped by its watchdogs if the test dies). */
static void private_setup(const char *verb, const char *name)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "AREDIS_TEST_OWNER_PID=%d bash '%s/redis-sentinel.sh' %s %s "
             "%s >&2",
             (int)getpid(), AREDIS_TEST_SUPPORT_DIR, verb, name,
             strcmp(verb, "start") == 0 ? "--replicas 1" : "");
    cr_assert_eq(system(cmd), 0, "%s failed", cmd);
}

typedef struct switch_seen {
    int seen;
    long long at;
} switch_seen;

static void on_event(aredis_client *c, const aredis_conn_event *ev, void *ud)
{
    (void)c;
    switch_seen *s = ud;
    if (ev->type == AREDIS_CONN_DISCONNECTED && ev->msg != NULL &&
        strstr(ev->msg, "+switch-master") != NULL && !s->seen) {
        s->seen = 1;
        s->at = now_ms();
    }
}

static int master_port_via(int sentinel_port)
{
    testenv_conn c;
    const aredis_reply *r;
    connect_port(&c, sentinel_port);
    cr_assert_eq(
        testenv_command(&c, &r, "SENTINEL GET-MASTER-ADDR-BY-NAME mymaster"), 0,
        "%s", testenv_errstr());
    int port = atoi(r->element[1].str);
    testenv_close(&c);
    return port;
}

Test(sentinel_failover, writes_resume_on_the_new_master, .timeout = 120)
{
    char name[64], sentinels[256], url[512], key[96];
    snprintf(name, sizeof name, "failover-%d", (int)getpid());
    private_setup("start", name);
    setup_value_of(name, "sentinels", sentinels, sizeof sentinels);
    int old_port = master_port_via(nth_port(sentinels, 0));
    snprintf(url, sizeof url, "redis+sentinel://%s/mymaster", sentinels);

    aredis_loop *loop = aredis_loop_new();
    aredis_client *c = client_for(loop, url);
    switch_seen sw = {0};
    aredis_client_set_event_handler(c, on_event, &sw);
    testenv_key(key, sizeof key, "sentinel-failover");
    set_get(loop, c, key, "before", 10000);

    testenv_conn s1;
    const aredis_reply *r;
    connect_port(&s1, nth_port(sentinels, 1));
    cr_assert_eq(testenv_command(&s1, &r, "SENTINEL FAILOVER mymaster"), 0,
                 "%s", testenv_errstr());
    cr_assert_eq(r->type, AREDIS_REPLY_STATUS, "%s", r->str);
    testenv_close(&s1);
    long long t0 = now_ms();

    /* Writes every 20 ms until the client has followed the switch. */
    counter w = {.expect = 1 << 30};
    int sent = 0;
    while (!sw.seen && now_ms() - t0 < 15000) {
        cr_assert_eq(aredis_command(c, count_cb, &w, "SET %s w%d", key, sent),
                     0);
        sent++;
        long long until = now_ms() + 20;
        while (now_ms() < until)
            aredis_loop_run_once(loop, 5);
    }
    cr_assert(sw.seen, "no +switch-master followed in 15 s");
    set_get(loop, c, key, "after", 10000);
    long long done = now_ms();
    for (long long end = now_ms() + 1000; w.calls < sent && now_ms() < end;)
        aredis_loop_run_once(loop, 10);
    cr_assert_eq(w.calls, sent, "%d of %d writes completed", w.calls, sent);
    fprintf(stderr,
            "sentinel: failover: switch followed %lld ms after SENTINEL "
            "FAILOVER, first write on the new master %lld ms after it; %d "
            "of %d writes meanwhile failed (last: %s)\n",
            sw.at - t0, done - sw.at, w.errors, sent, w.last);

    /* The switch reached the client from one sentinel; the others learn
     * the new configuration through their hello messages, a moment later. */
    int new_port = master_port_via(nth_port(sentinels, 2));
    for (long long end = now_ms() + 5000;
         new_port == old_port && now_ms() < end;
         new_port = master_port_via(nth_port(sentinels, 2)))
        aredis_loop_run_once(loop, 100);
    cr_assert_neq(new_port, old_port, "the sentinels still name the old one");
    testenv_conn m;
    connect_port(&m, new_port);
    cr_assert_eq(testenv_command(&m, &r, "GET %s", key), 0, "%s",
                 testenv_errstr());
    cr_assert_eq(r->type, AREDIS_REPLY_STRING);
    cr_assert_str_eq(r->str, "after",
                     "the last write is not on the new master");
    testenv_close(&m);
    aredis_client_free(c);
    aredis_loop_free(loop);
    private_setup("stop", name);
}
