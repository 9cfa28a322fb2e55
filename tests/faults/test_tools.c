/* Self-tests of the fault tools (tests/support/fakeserver.c and
 * faultproxy.c), over raw loopback sockets.
 *
 * The fault tests are only as good as the faults they inject: these check
 * that the proxy delays, holds, drops, cuts after exactly N bytes, refuses
 * and reports as documented, that it never targets anything but loopback,
 * that the fake server sends each script's bytes exactly, and that both
 * tools end by themselves. No aredis client is involved: the helpers from
 * tests/support/testenv.h talk RESP directly. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "faults.h"

static void conn_to(testenv_conn *c, int port)
{
    testenv_server s;
    memset(&s, 0, sizeof s);
    snprintf(s.host, sizeof s.host, "127.0.0.1");
    s.port = port;
    cr_assert_eq(testenv_connect(c, &s), 0, "%s", testenv_errstr());
}

static void send_str(testenv_conn *c, const char *s)
{
    cr_assert_eq(testenv_send(c, s, strlen(s)), 0, "%s", testenv_errstr());
}

/* Read until `want` bytes arrived, or the stream ends. \return the count. */
static size_t recv_upto(testenv_conn *c, char *buf, size_t want)
{
    size_t got = 0;
    while (got < want) {
        size_t n = 0;
        if (testenv_recv(c, buf + got, want - got, &n) != 0)
            break;
        got += n;
    }
    return got;
}

/* Nothing arrives within ms. */
static int quiet_for(testenv_conn *c, int ms)
{
    char b[64];
    size_t n = 0;
    int saved = c->timeout_ms;
    c->timeout_ms = ms;
    int rc = testenv_recv(c, b, sizeof b, &n);
    c->timeout_ms = saved;
    return rc != 0 && strstr(testenv_errstr(), "timed out") != NULL;
}

static void ctl(faults_proxy *p, const char *line)
{
    cr_assert_eq(faults_proxy_ctl(p, line, NULL, 0), 0, "%s", testenv_errstr());
}

/* ---- the proxy ---------------------------------------------------------- */

Test(tools, proxy_refuses_non_loopback_targets, .timeout = 30)
{
    const char *targets[] = {"10.0.0.1:6379", "192.168.1.1:6379",
                             "localhost:6379", "::1:6379"};
    for (size_t i = 0; i < sizeof targets / sizeof *targets; i++) {
        char cmd[1024], out[256] = "";
        snprintf(cmd, sizeof cmd,
                 "'%s' --listen-port-file /dev/null --control-port-file "
                 "/dev/null --target '%s' --max-seconds 2 2>&1",
                 AREDIS_FAULTPROXY, targets[i]);
        FILE *f = popen(cmd, "r");
        cr_assert_not_null(f);
        size_t n = fread(out, 1, sizeof out - 1, f);
        out[n] = '\0';
        int st = pclose(f);
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) != 0,
                  "faultproxy accepted target %s", targets[i]);
        cr_assert(strstr(out, "refusing") != NULL, "%s: %s", targets[i], out);
    }
}

Test(tools, proxy_delays_holds_and_keeps_order, .timeout = 30)
{
    faults_fake f;
    faults_proxy p;
    cr_assert_eq(faults_fake_start(&f, "normal", NULL), 0, "%s",
                 testenv_errstr());
    cr_assert_eq(faults_proxy_start(&p, f.port), 0, "%s", testenv_errstr());
    testenv_conn c;
    conn_to(&c, p.port);
    const aredis_reply *r = NULL;

    ctl(&p, "delay 100");
    int64_t t0 = testenv_now_ms();
    cr_assert_eq(testenv_command(&c, &r, "PING"), 0, "%s", testenv_errstr());
    int64_t rtt = testenv_now_ms() - t0;
    cr_assert_str_eq(r->str, "PONG");
    cr_assert(rtt >= 195 && rtt < 1000, "delay 100 both ways: RTT %lld ms",
              (long long)rtt);
    /* One way only: 400 ms (both ways would be 800; the margin is for a
     * loaded machine). */
    ctl(&p, "delay 400 down");
    ctl(&p, "delay 0 up");
    t0 = testenv_now_ms();
    cr_assert_eq(testenv_command(&c, &r, "PING"), 0, "%s", testenv_errstr());
    rtt = testenv_now_ms() - t0;
    cr_assert(rtt >= 395 && rtt < 795, "delay 400 down: RTT %lld ms",
              (long long)rtt);
    ctl(&p, "reset");

    /* Held bytes come later, all of them, in order. */
    ctl(&p, "pause on down");
    char cmd[64];
    for (int i = 0; i < 50; i++) {
        snprintf(cmd, sizeof cmd, "ECHO e%d\r\n", i);
        send_str(&c, cmd);
    }
    cr_assert(quiet_for(&c, 300), "bytes passed a paused proxy");
    ctl(&p, "pause off");
    for (int i = 0; i < 50; i++) {
        char want[16];
        snprintf(want, sizeof want, "e%d", i);
        cr_assert_eq(testenv_read_reply(&c, &r), 0, "%s", testenv_errstr());
        cr_assert_str_eq(r->str, want);
    }
    testenv_close(&c);
    faults_proxy_stop(&p);
    faults_fake_stop(&f);
}

Test(tools, proxy_drop_is_a_blackhole, .timeout = 30)
{
    faults_fake f;
    faults_proxy p;
    cr_assert_eq(faults_fake_start(&f, "normal", NULL), 0, "%s",
                 testenv_errstr());
    cr_assert_eq(faults_proxy_start(&p, f.port), 0, "%s", testenv_errstr());
    testenv_conn c;
    conn_to(&c, p.port);
    ctl(&p, "drop on");
    send_str(&c, "ECHO lost\r\n");
    cr_assert(quiet_for(&c, 300), "a reply came through drop on");
    ctl(&p, "drop off");
    const aredis_reply *r = NULL;
    cr_assert_eq(testenv_command(&c, &r, "ECHO kept"), 0, "%s",
                 testenv_errstr());
    cr_assert_str_eq(r->str, "kept", "the dropped request reached the server");
    testenv_close(&c);
    faults_proxy_stop(&p);
    faults_fake_stop(&f);
}

/* cutafter N: exactly N more bytes reach the client, then a reset. */
Test(tools, proxy_cutafter_is_byte_exact, .timeout = 30)
{
    faults_fake f;
    faults_proxy p;
    const char *const extra[] = {"--stream-bytes", "200000", NULL};
    cr_assert_eq(faults_fake_start(&f, "endlessbulk", extra), 0, "%s",
                 testenv_errstr());
    cr_assert_eq(faults_proxy_start(&p, f.port), 0, "%s", testenv_errstr());
    testenv_conn c;
    conn_to(&c, p.port);
    const aredis_reply *r = NULL;
    cr_assert_eq(testenv_command(&c, &r, "HELLO 3"), 0, "%s", testenv_errstr());
    cr_assert_eq(r->type, AREDIS_REPLY_MAP);
    ctl(&p, "cutafter 1000");
    send_str(&c, "GET big\r\n");
    static char buf[300000];
    size_t got = recv_upto(&c, buf, sizeof buf);
    cr_assert_eq(got, 1000, "received %zu bytes", got);
    cr_assert(strstr(testenv_errstr(), "reset") != NULL,
              "ended with \"%s\", not a reset", testenv_errstr());
    char stats[256];
    cr_assert_eq(faults_proxy_ctl(&p, "stats", stats, sizeof stats), 0);
    cr_assert(strstr(stats, "cuts=1") != NULL, "%s", stats);
    testenv_close(&c);
    faults_proxy_stop(&p);
    faults_fake_stop(&f);
}

Test(tools, proxy_cut_refuse_and_control_errors, .timeout = 30)
{
    faults_fake f;
    faults_proxy p;
    cr_assert_eq(faults_fake_start(&f, "normal", NULL), 0, "%s",
                 testenv_errstr());
    cr_assert_eq(faults_proxy_start(&p, f.port), 0, "%s", testenv_errstr());
    testenv_conn c;
    conn_to(&c, p.port);
    const aredis_reply *r = NULL;
    cr_assert_eq(testenv_command(&c, &r, "PING"), 0, "%s", testenv_errstr());
    ctl(&p, "cut");
    char b[16];
    cr_assert_eq(recv_upto(&c, b, sizeof b), 0);
    cr_assert(strstr(testenv_errstr(), "reset") != NULL, "%s",
              testenv_errstr());
    testenv_close(&c);

    ctl(&p, "refuse on");
    /* Accepted and reset at once: the reset may even beat the connect's
     * completion on this side. */
    testenv_server ps;
    memset(&ps, 0, sizeof ps);
    snprintf(ps.host, sizeof ps.host, "127.0.0.1");
    ps.port = p.port;
    if (testenv_connect(&c, &ps) == 0) {
        cr_assert_eq(recv_upto(&c, b, sizeof b), 0);
        testenv_close(&c);
    }
    cr_assert(strstr(testenv_errstr(), "reset") != NULL, "%s",
              testenv_errstr());
    ctl(&p, "refuse off");
    conn_to(&c, p.port);
    cr_assert_eq(testenv_command(&c, &r, "PING"), 0, "%s", testenv_errstr());
    testenv_close(&c);

    char reply[256];
    cr_assert_neq(faults_proxy_ctl(&p, "bogus", reply, sizeof reply), 0);
    cr_assert_str_eq(reply, "ERR unknown command 'bogus'");
    cr_assert_neq(faults_proxy_ctl(&p, "delay", reply, sizeof reply), 0);
    cr_assert(strncmp(reply, "ERR usage", 9) == 0, "%s", reply);
    cr_assert_neq(faults_proxy_ctl(&p, "drop maybe", reply, sizeof reply), 0);
    cr_assert_str_eq(reply, "ERR expected on|off");
    cr_assert_eq(faults_proxy_ctl(&p, "stats", reply, sizeof reply), 0);
    unsigned long long conns, total, up, down, cuts;
    cr_assert_eq(sscanf(reply,
                        "OK conns=%llu total=%llu up=%llu down=%llu "
                        "cuts=%llu",
                        &conns, &total, &up, &down, &cuts),
                 5, "%s", reply);
    cr_assert_eq(total, 3, "%s", reply);
    cr_assert_geq(cuts, 1, "%s", reply);
    faults_proxy_stop(&p);
    faults_fake_stop(&f);
}

/* The proxy passes a dead target on as a reset; and it quits on request. */
Test(tools, proxy_target_down_and_quit, .timeout = 30)
{
    int port = testenv_free_port();
    faults_proxy p;
    cr_assert_eq(faults_proxy_start(&p, port), 0, "%s", testenv_errstr());
    testenv_conn c;
    conn_to(&c, p.port);
    char b[16];
    cr_assert_eq(recv_upto(&c, b, sizeof b), 0);
    cr_assert(strstr(testenv_errstr(), "reset") != NULL, "%s",
              testenv_errstr());
    testenv_close(&c);
    ctl(&p, "quit");
    int64_t deadline = testenv_now_ms() + 3000;
    int st = 0;
    while (waitpid(p.pid, &st, WNOHANG) == 0 && testenv_now_ms() < deadline)
        usleep(10000);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "no clean exit on quit");
    p.pid = 0;
    faults_proxy_stop(&p);
}

/* ---- the fake server ------------------------------------------------------
 */

/* Connect, say HELLO 3 (answered with a map), send `cmd` if any, and
 * return what came back within a short wait. */
static size_t script_bytes(const char *script, const char *cmd, char *buf,
                           size_t cap, size_t want)
{
    faults_fake f;
    cr_assert_eq(faults_fake_start(&f, script, NULL), 0, "%s",
                 testenv_errstr());
    testenv_conn c;
    conn_to(&c, f.port);
    const aredis_reply *r = NULL;
    size_t got = 0;
    if (strcmp(script, "silent-accept") == 0) {
        send_str(&c, "*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\n");
    } else {
        cr_assert_eq(testenv_command(&c, &r, "HELLO 3"), 0, "%s: %s", script,
                     testenv_errstr());
        cr_assert_eq(r->type, AREDIS_REPLY_MAP);
        const aredis_reply *proto = aredis_reply_map_get(r, "proto", 5);
        cr_assert(proto != NULL && proto->integer == 3);
    }
    if (cmd != NULL)
        send_str(&c, cmd);
    c.timeout_ms = 500;
    got = recv_upto(&c, buf, want < cap ? want : cap);
    testenv_close(&c);
    faults_fake_stop(&f);
    return got;
}

Test(tools, fakeserver_sends_each_script, .timeout = 30)
{
    static const struct {
        const char *script, *bytes;
    } cases[] = {
        {"hugearray", "*4294967295\r\n"},
        {"hugebulk", "$9999999999\r\n"},
        {"garbage", "@#!\r\n"},
    };
    char buf[64];
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        size_t n = strlen(cases[i].bytes);
        size_t got =
            script_bytes(cases[i].script, "GET x\r\n", buf, sizeof buf, n);
        cr_assert_eq(got, n, "%s: %zu bytes", cases[i].script, got);
        cr_assert_eq(memcmp(buf, cases[i].bytes, n), 0, "%s", cases[i].script);
    }
    static char deep[400001];
    size_t got = script_bytes("deep", "GET x\r\n", deep, sizeof deep, 400000);
    cr_assert_eq(got, 400000);
    for (size_t i = 0; i < got; i += 4)
        cr_assert_eq(memcmp(deep + i, "*1\r\n", 4), 0, "offset %zu", i);
    /* The stray reply comes with no command sent. */
    got = script_bytes("stray", NULL, buf, sizeof buf, 14);
    cr_assert_eq(got, 14);
    cr_assert_eq(memcmp(buf, "+UNSOLICITED\r\n", 14), 0);
    /* Silence, with and without the handshake. */
    cr_assert_eq(script_bytes("silent", "GET x\r\n", buf, sizeof buf, 1), 0);
    cr_assert_eq(script_bytes("silent-accept", NULL, buf, sizeof buf, 1), 0);
}

/* The endless bulk announces its length, then trickles: never the whole. */
Test(tools, fakeserver_endless_bulk_trickles, .timeout = 30)
{
    static char buf[300000];
    faults_fake f;
    const char *const extra[] = {"--stream-bytes", "100000", NULL};
    cr_assert_eq(faults_fake_start(&f, "endlessbulk", extra), 0, "%s",
                 testenv_errstr());
    testenv_conn c;
    conn_to(&c, f.port);
    const aredis_reply *r = NULL;
    cr_assert_eq(testenv_command(&c, &r, "HELLO 3"), 0, "%s", testenv_errstr());
    send_str(&c, "GET x\r\n");
    c.timeout_ms = 500;
    size_t got = recv_upto(&c, buf, sizeof buf);
    const char *hdr = "$419430400\r\n";
    cr_assert_eq(memcmp(buf, hdr, strlen(hdr)), 0);
    cr_assert_eq(got, strlen(hdr) + 100000, "%zu bytes", got);
    testenv_close(&c);
    faults_fake_stop(&f);
}

/* --then normal: the first connection is hostile, later ones behave. */
Test(tools, fakeserver_then_normal_and_max_seconds, .timeout = 30)
{
    faults_fake f;
    const char *const extra[] = {"--then", "normal", "--max-seconds", "1",
                                 NULL};
    cr_assert_eq(faults_fake_start(&f, "garbage", extra), 0, "%s",
                 testenv_errstr());
    int64_t t0 = testenv_now_ms();
    testenv_conn c1, c2;
    conn_to(&c1, f.port);
    conn_to(&c2, f.port);
    const aredis_reply *r = NULL;
    cr_assert_eq(testenv_command(&c2, &r, "ECHO fine"), 0, "%s",
                 testenv_errstr());
    cr_assert_str_eq(r->str, "fine");
    cr_assert_eq(testenv_command(&c1, &r, "GET x"), -1,
                 "the first connection was not hostile");
    testenv_close(&c1);
    testenv_close(&c2);
    int st = 0;
    while (waitpid(f.pid, &st, WNOHANG) == 0 && testenv_now_ms() - t0 < 3000)
        usleep(10000);
    int64_t lived = testenv_now_ms() - t0;
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0 && lived < 2500,
              "--max-seconds 1: still running after %lld ms", (long long)lived);
    f.pid = 0;
    faults_fake_stop(&f);
}
