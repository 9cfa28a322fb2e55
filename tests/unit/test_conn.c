/* Unit tests for the connection state machine (src/conn), without sockets:
 * every transition from connect to ready and back after a loss, the
 * handshake and its refusals, reply/command pairing and CLIENT REPLY,
 * pushes, replies with nothing in flight, the salvage rules (what is sent
 * again, what fails "outcome unknown"), attempts and backoff with an
 * injected random source, cancellation (a command none of whose bytes
 * were written is taken out with them, with what is glued to it), a lent
 * connection, submitting from a completion, at most one transport at a
 * time, and the bytes of commands in flight kept until their replies
 * (keep_inflight), and at most two writes awaiting replies in a deep
 * pipeline (the rest held). The test plays the driver: it feeds events and
 * takes the actions. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "aredis/error.h"
#include "conn/conn.h"
#include "resp/resp.h"
#include "util/alloc.h"

/* NFILL more records, cmds[NCMD...], make a deep pipeline (fill()). */
enum { NCMD = 16, NFILL = AREDIS__CONN_HOLD_MIN + 16, NALL = NCMD + NFILL };

typedef struct tcmd {
    aredis__conn_cmd cc; /* first */
    int calls;
    int cancelled_seen;
    int type, code;
    char text[96];
} tcmd;

static aredis__conn_config cfg;
static aredis__conn cn;
static tcmd cmds[NALL];
static int64_t now = 1000;

/* What the driver saw. */
static struct {
    int resolves, opens, closes, open_now; /* open_now: transports open */
    int max_open;
    size_t last_index;
    int connected, disconnected, reconnecting;
    int last_code, last_attempt;
    int64_t last_delay;
    char last_msg[1024];
    int pushes;
    /* Submit a command from each completion (refill), up to this index. */
    int refill_upto, next_refill;
} d;

static uint64_t fixed_rand(void *ud)
{
    (void)ud;
    return 7;
}

static void setup(void)
{
    memset(&cfg, 0, sizeof cfg);
    cfg.max_attempts = 3;
    cfg.backoff_first_ms = 100;
    cfg.backoff_max_ms = 1000;
    cfg.connect_timeout_ms = 500;
    cfg.rand = fixed_rand;
    memset(cmds, 0, sizeof cmds);
    memset(&d, 0, sizeof d);
    now = 1000;
    cr_assert_eq(aredis__conn_init(&cn, &cfg), 0);
}

static void teardown(void)
{
    aredis__conn_cmd *left = aredis__conn_take_all(&cn);
    for (; left != NULL; left = left->next)
        aredis__free(left->copy);
    for (int i = 0; i < NALL; i++) {
        aredis__free(cmds[i].cc.copy);
        cmds[i].cc.copy = NULL;
    }
    aredis__conn_cleanup(&cn);
}

TestSuite(conn, .init = setup, .fini = teardown);

static void submit_raw(int i, int kind, unsigned flags, int argc,
                       const char **argv)
{
    aredis_buf b;
    aredis_buf_init(&b);
    cr_assert_eq(aredis_write_argv(&b, argc, argv, NULL), 0);
    cmds[i].cc.len = (uint32_t)b.len;
    cmds[i].cc.reply_kind = (uint8_t)kind;
    cmds[i].cc.flags = (uint8_t)flags;
    if (flags & AREDIS__CC_RETRY)
        cmds[i].cc.copy = aredis__strndup(b.data, b.len);
    cr_assert_eq(aredis__conn_submit(&cn, &cmds[i].cc, b.data, now), 0);
    aredis_buf_cleanup(&b);
}

static void submit(int i, const char *cmd)
{
    const char *argv[] = {cmd, "k"};
    submit_raw(i, AREDIS__REPLY_NORMAL, 0, 2, argv);
}

static void take(const aredis__conn_action *a)
{
    switch (a->kind) {
    case AREDIS__ACT_RESOLVE:
        d.resolves++;
        break;
    case AREDIS__ACT_OPEN:
        d.opens++;
        d.open_now++;
        d.last_index = a->index;
        if (d.open_now > d.max_open)
            d.max_open = d.open_now;
        break;
    case AREDIS__ACT_CLOSE:
        d.closes++;
        d.open_now = 0;
        break;
    case AREDIS__ACT_COMPLETE: {
        tcmd *t = (tcmd *)a->cmd;
        cr_assert(t >= cmds && t < cmds + NALL);
        if (t->cc.flags & AREDIS__CC_CANCELLED) {
            t->cancelled_seen++;
            break;
        }
        t->calls++;
        if (a->reply != NULL) {
            t->type = a->reply->type;
            if (a->reply->type == AREDIS_REPLY_STATUS ||
                a->reply->type == AREDIS_REPLY_STRING)
                snprintf(t->text, sizeof t->text, "%.*s", (int)a->reply->len,
                         a->reply->str);
        } else {
            t->type = a->code ? AREDIS_REPLY_ERROR : AREDIS_REPLY_NIL;
            t->code = a->code;
            snprintf(t->text, sizeof t->text, "%s", a->msg ? a->msg : "");
        }
        /* The state is consistent here: submitting is allowed. */
        if (d.next_refill > 0 && d.next_refill <= d.refill_upto)
            submit(d.next_refill++, "GET");
        break;
    }
    case AREDIS__ACT_PUSH:
        d.pushes++;
        break;
    case AREDIS__ACT_EVENT:
        if (a->event == AREDIS__EV_CONNECTED)
            d.connected++;
        else if (a->event == AREDIS__EV_DISCONNECTED) {
            d.disconnected++;
            d.last_code = a->code;
            snprintf(d.last_msg, sizeof d.last_msg, "%s", a->msg);
        } else {
            d.reconnecting++;
            d.last_delay = a->delay_ms;
            d.last_attempt = a->attempt;
        }
        break;
    default:
        cr_assert_fail("unknown action %d", a->kind);
    }
}

static void drain(void)
{
    aredis__conn_action a;
    while (aredis__conn_poll(&cn, &a))
        take(&a);
}

/* Everything queued reaches the server. */
static void write_all(void)
{
    const char *out;
    size_t n;
    while ((n = aredis__conn_out(&cn, &out)) > 0)
        aredis__conn_wrote(&cn, n);
}

/* The queued output, as text. */
static void written_text(char *buf, size_t cap)
{
    const char *out;
    size_t n = aredis__conn_out(&cn, &out);
    snprintf(buf, cap, "%.*s", (int)n, out);
}

/* Feed bytes as reads would: as much as the input buffer takes at a time. */
static void feed(const char *bytes)
{
    size_t n = strlen(bytes), avail;
    do {
        char *w = aredis__conn_in_buf(&cn, &avail);
        cr_assert_not_null(w);
        cr_assert_gt(avail, 0);
        size_t k = n < avail ? n : avail;
        memcpy(w, bytes, k);
        aredis__conn_in_commit(&cn, k, now);
        drain();
        bytes += k;
        n -= k;
    } while (n > 0);
}

static const char hello_map[] =
    "%3\r\n+server\r\n+redis\r\n+version\r\n+7.2.0\r\n+proto\r\n:3\r\n";

/* Connect through one address and complete the HELLO 3 handshake. */
static void connect_ready(void)
{
    aredis__conn_connect(&cn, now);
    drain();
    aredis__conn_resolved(&cn, 1, now);
    drain();
    aredis__conn_opened(&cn, now);
    drain();
    char out[256];
    written_text(out, sizeof out);
    cr_assert(strstr(out, "HELLO") != NULL, "%s", out);
    write_all();
    feed(hello_map);
    cr_assert_eq(cn.state, AREDIS__ST_READY);
    cr_assert_eq(cn.proto, 3);
}

/* A connect under way: the name resolved, the socket open, the
 * handshake written. */
static void open_and_write(void)
{
    aredis__conn_resolved(&cn, 1, now);
    aredis__conn_opened(&cn, now);
    drain();
    write_all();
}

/* The reconnection timer is due: resolve, open and handshake again. */
static void reconnect_ready(void)
{
    aredis__conn_timer(&cn, now);
    open_and_write();
    feed(hello_map);
}

/* ---- connecting ---------------------------------------------------------- */

Test(conn, connect_resolve_open_handshake_ready)
{
    submit(0, "GET");
    cr_assert_eq(cn.state, AREDIS__ST_RESOLVING, "a submit connects");
    drain();
    cr_assert_eq(d.resolves, 1);
    cr_assert_eq(aredis__conn_deadline(&cn), now + 500, "connect deadline");
    aredis__conn_resolved(&cn, 2, now);
    drain();
    cr_assert_eq(cn.state, AREDIS__ST_CONNECTING);
    cr_assert_eq(d.opens, 1);
    cr_assert_eq(d.last_index, 0);
    aredis__conn_opened(&cn, now);
    drain();
    cr_assert_eq(cn.state, AREDIS__ST_HANDSHAKE);
    cr_assert_eq(cmds[0].calls, 0);
    write_all();
    feed(hello_map);
    cr_assert_eq(cn.state, AREDIS__ST_READY);
    cr_assert_eq(d.connected, 1);
    cr_assert_eq(aredis__conn_deadline(&cn), 0);
    char out[256];
    written_text(out, sizeof out);
    cr_assert_str_eq(out, "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n",
                     "the pending GET is released");
    write_all();
    feed("$1\r\nv\r\n");
    cr_assert_eq(cmds[0].calls, 1);
    cr_assert_str_eq(cmds[0].text, "v");
    cr_assert_eq(d.max_open, 1);
}

Test(conn, second_address_after_a_refused_first)
{
    aredis__conn_connect(&cn, now);
    drain();
    aredis__conn_resolved(&cn, 2, now);
    drain();
    aredis__conn_open_failed(&cn, AREDIS_ECONNREFUSED, "refused", now);
    drain();
    cr_assert_eq(d.opens, 2);
    cr_assert_eq(d.last_index, 1);
    cr_assert_eq(d.max_open, 1, "the first transport closes first");
    aredis__conn_open_failed(&cn, AREDIS_ECONNREFUSED, "refused", now);
    drain();
    cr_assert_eq(d.disconnected, 1);
    cr_assert_eq(d.last_code, AREDIS_ECONNREFUSED);
    cr_assert_eq(cn.state, AREDIS__ST_BACKOFF);
    cr_assert_eq(d.open_now, 0);
}

Test(conn, connect_requests_never_overlap)
{
    aredis__conn_connect(&cn, now);
    aredis__conn_connect(&cn, now);
    submit(0, "GET");
    drain();
    cr_assert_eq(d.resolves, 1);
    aredis__conn_resolved(&cn, 1, now);
    aredis__conn_connect(&cn, now);
    aredis__conn_resolved(&cn, 1, now); /* stale: ignored */
    drain();
    cr_assert_eq(d.opens, 1);
    cr_assert_eq(d.resolves, 1);
}

Test(conn, connect_timeout_then_backoff_with_jitter)
{
    aredis__conn_connect(&cn, now);
    drain();
    now += 499;
    aredis__conn_timer(&cn, now);
    drain();
    cr_assert_eq(d.disconnected, 0, "not yet");
    now += 1;
    aredis__conn_timer(&cn, now);
    drain();
    cr_assert_eq(d.disconnected, 1);
    cr_assert_eq(d.last_code, AREDIS_ETIMEDOUT);
    cr_assert_eq(d.reconnecting, 1);
    /* 100 ms, drawn from its upper half: 50 + 7 % 51. */
    cr_assert_eq(d.last_delay, 57);
    cr_assert_eq(d.last_attempt, 1);
    cr_assert_eq(cn.state, AREDIS__ST_BACKOFF);
    cr_assert_eq(aredis__conn_deadline(&cn), now + 57);
    aredis__conn_timer(&cn, now + 56);
    cr_assert_eq(cn.state, AREDIS__ST_BACKOFF);
    aredis__conn_timer(&cn, now + 57);
    drain();
    cr_assert_eq(cn.state, AREDIS__ST_RESOLVING);
    cr_assert_eq(d.resolves, 2);
}

Test(conn, backoff_doubles_up_to_its_cap)
{
    cfg.max_attempts = -1;
    cfg.rand = NULL; /* no jitter */
    aredis__conn_connect(&cn, now);
    int64_t want[] = {100, 200, 400, 800, 1000, 1000};
    for (int i = 0; i < 6; i++) {
        drain();
        aredis__conn_open_failed(&cn, AREDIS_ECONNREFUSED, "refused", now);
        drain();
        cr_assert_eq(d.last_delay, want[i], "attempt %d: %lld", i + 1,
                     (long long)d.last_delay);
        cr_assert_eq(d.last_attempt, i + 1);
        now = aredis__conn_deadline(&cn);
        aredis__conn_timer(&cn, now);
    }
}

Test(conn, attempts_run_out_and_pending_commands_fail)
{
    submit(0, "GET");
    for (int i = 0; i < 4; i++) {
        drain();
        aredis__conn_open_failed(&cn, AREDIS_ECONNREFUSED, "refused", now);
        drain();
        if (cn.state == AREDIS__ST_BACKOFF) {
            now = aredis__conn_deadline(&cn);
            aredis__conn_timer(&cn, now);
        }
    }
    cr_assert_eq(d.reconnecting, 3, "exactly max_attempts attempts");
    cr_assert_eq(cn.state, AREDIS__ST_IDLE);
    cr_assert_eq(cmds[0].calls, 1);
    cr_assert_eq(cmds[0].code, AREDIS_ECONNREFUSED);
    /* The next command starts a new round. */
    submit(1, "GET");
    cr_assert_eq(cn.state, AREDIS__ST_RESOLVING);
}

/* A connection that came back is a new outage's: its attempts start again
 * (reconnect_max_attempts counts per outage). */
Test(conn, attempts_restart_per_outage)
{
    cfg.max_attempts = 2;
    connect_ready();
    aredis__conn_closed(&cn, AREDIS_ECLOSED, "gone", now);
    drain();
    cr_assert_eq(d.last_attempt, 1);
    aredis__conn_timer(&cn, now);
    aredis__conn_open_failed(&cn, AREDIS_ECONNREFUSED, "refused", now);
    drain();
    cr_assert_eq(d.last_attempt, 2);
    now = aredis__conn_deadline(&cn);
    reconnect_ready();
    cr_assert_eq(cn.state, AREDIS__ST_READY);
    aredis__conn_closed(&cn, AREDIS_ECLOSED, "gone again", now);
    drain();
    cr_assert_eq(cn.state, AREDIS__ST_BACKOFF, "not given up");
    cr_assert_eq(d.last_attempt, 1, "a new outage, a new count");
}

/* ---- the handshake ---------------------------------------------------- */

static void to_handshake(void)
{
    aredis__conn_connect(&cn, now);
    open_and_write();
}

Test(conn, hello_answered_with_ok_is_a_protocol_error)
{
    submit(0, "GET");
    to_handshake();
    feed("+OK\r\n");
    cr_assert_eq(d.connected, 0);
    cr_assert_eq(d.disconnected, 1);
    cr_assert_eq(d.last_code, AREDIS_EPROTO);
    cr_assert(strstr(d.last_msg, "HELLO") != NULL, "%s", d.last_msg);
    cr_assert_eq(cmds[0].calls, 0, "the GET waits for the next connection");
    cr_assert_eq(cn.npend, 1);
}

Test(conn, hello_map_without_the_expected_fields_is_refused)
{
    to_handshake();
    feed("%1\r\n+proto\r\n:3\r\n");
    cr_assert_eq(d.last_code, AREDIS_EPROTO);
    cr_assert_eq(d.connected, 0);
}

/* Each of server and version is required, not just one of them. */
Test(conn, hello_map_needs_both_server_and_version)
{
    static const char *const partial[] = {
        "%2\r\n+server\r\n+redis\r\n+proto\r\n:3\r\n",
        "%2\r\n+version\r\n+7.2.0\r\n+proto\r\n:3\r\n",
    };
    for (int i = 0; i < 2; i++) {
        memset(&d, 0, sizeof d);
        to_handshake();
        feed(partial[i]);
        cr_assert_eq(d.last_code, AREDIS_EPROTO, "reply %d", i);
        cr_assert_eq(d.connected, 0, "reply %d was taken for a HELLO", i);
        aredis__conn_abort(&cn, AREDIS_ECLOSED, "next");
        drain();
    }
}

Test(conn, stray_reply_during_the_handshake)
{
    submit(0, "GET");
    to_handshake();
    /* The stray comes first: it cannot pass for HELLO's reply, and
     * HELLO's map cannot pass for the GET's. */
    feed("+UNSOLICITED\r\n");
    cr_assert_eq(d.last_code, AREDIS_EPROTO);
    cr_assert_eq(cmds[0].calls, 0);
}

Test(conn, stray_reply_read_with_the_hello_reply)
{
    submit(0, "GET");
    to_handshake();
    size_t n = strlen(hello_map), avail;
    char *w = aredis__conn_in_buf(&cn, &avail);
    memcpy(w, hello_map, n);
    memcpy(w + n, "+UNSOLICITED\r\n", 14);
    aredis__conn_in_commit(&cn, n + 14, now);
    drain();
    cr_assert_eq(d.connected, 1);
    cr_assert_eq(d.disconnected, 1);
    cr_assert_eq(d.last_code, AREDIS_EPROTO);
    cr_assert_eq(cmds[0].calls, 0, "never given the stray reply");
    cr_assert_eq(cn.npend, 1, "unwritten, so queued again");
}

Test(conn, resp2_fallback_and_setup_steps)
{
    cfg.password = "pw";
    cfg.client_name = "me";
    cfg.db = 2;
    to_handshake();
    feed("-ERR unknown command 'HELLO'\r\n");
    char out[256];
    written_text(out, sizeof out);
    cr_assert(strstr(out, "AUTH") != NULL, "%s", out);
    write_all();
    feed("+OK\r\n");
    written_text(out, sizeof out);
    cr_assert(strstr(out, "SETNAME") != NULL, "%s", out);
    write_all();
    feed("+OK\r\n");
    written_text(out, sizeof out);
    cr_assert(strstr(out, "SELECT") != NULL, "%s", out);
    write_all();
    cr_assert_eq(d.connected, 0);
    feed("+OK\r\n");
    cr_assert_eq(d.connected, 1);
    cr_assert_eq(cn.proto, 2);
}

Test(conn, refused_auth_is_eauth)
{
    cfg.protocol = 2;
    cfg.password = "bad";
    to_handshake();
    feed("-WRONGPASS invalid username-password pair\r\n");
    cr_assert_eq(d.last_code, AREDIS_EAUTH);
    cr_assert(strstr(d.last_msg, "AUTH") != NULL, "%s", d.last_msg);
}

/* 1 when s is well-formed UTF-8 (no sequence cut short). */
static int utf8_whole(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p != 0) {
        int n = *p < 0x80 ? 0 : *p >= 0xF0 ? 3 : *p >= 0xE0 ? 2 : 1;
        if (*p >= 0x80 && *p < 0xC0)
            return 0; /* a continuation byte where a character starts */
        p++;
        for (int i = 0; i < n; i++, p++)
            if ((*p & 0xC0) != 0x80)
                return 0;
    }
    return 1;
}

/* The server's refusal, quoted: in full when it fits in a connection's
 * message, even past 192 bytes (171 bytes of server text here, "é" being
 * two bytes); cut cleanly when it does not: between characters, ending
 * with "...". */
Test(conn, a_refusal_is_quoted_whole_or_cut_cleanly)
{
    char err[1400], want[1500];
    size_t n = (size_t)snprintf(err, sizeof err, "WRONGPASS x");
    for (int i = 0; i < 80; i++)
        n += (size_t)snprintf(err + n, sizeof err - n, "\xc3\xa9");
    cfg.protocol = 2;
    cfg.password = "bad";
    to_handshake();
    char line[1500];
    snprintf(line, sizeof line, "-%s\r\n", err);
    feed(line);
    cr_assert_eq(d.last_code, AREDIS_EAUTH);
    snprintf(want, sizeof want, "handshake failed: AUTH: %s", err);
    cr_assert_str_eq(d.last_msg, want);

    /* 600 characters, 1,200 bytes: more than a message holds. */
    teardown();
    setup();
    n = (size_t)snprintf(err, sizeof err, "WRONGPASS x");
    for (int i = 0; i < 600; i++)
        n += (size_t)snprintf(err + n, sizeof err - n, "\xc3\xa9");
    cfg.protocol = 2;
    cfg.password = "bad";
    to_handshake();
    snprintf(line, sizeof line, "-%s\r\n", err);
    feed(line);
    cr_assert_eq(d.last_code, AREDIS_EAUTH);
    size_t len = strlen(d.last_msg);
    cr_assert_lt(len, AREDIS__CONN_MSG_MAX);
    cr_assert_gt(len, AREDIS__CONN_MSG_MAX - 8, "%zu bytes", len);
    cr_assert_str_eq(d.last_msg + len - 3, "...", "%s", d.last_msg);
    cr_assert(utf8_whole(d.last_msg), "cut inside a character: %s", d.last_msg);
    snprintf(want, sizeof want, "handshake failed: AUTH: %s", err);
    cr_assert_eq(strncmp(d.last_msg, want, len - 3), 0, "%s", d.last_msg);
}

Test(conn, explicit_resp3_does_not_fall_back)
{
    cfg.protocol = 3;
    to_handshake();
    feed("-NOPROTO unsupported protocol version\r\n");
    cr_assert_eq(d.last_code, AREDIS_ESERVER);
    cr_assert_eq(d.connected, 0);
}

/* ---- replies ------------------------------------------------------------- */

Test(conn, replies_pair_with_commands_in_order)
{
    connect_ready();
    for (int i = 0; i < 3; i++)
        submit(i, "GET");
    cr_assert_eq(cn.inflight, 3);
    write_all();
    feed(":1\r\n:2\r\n:3");
    cr_assert_eq(cmds[0].calls, 1);
    cr_assert_eq(cmds[1].calls, 1);
    cr_assert_eq(cmds[2].calls, 0, "the third reply is cut");
    feed("\r\n");
    cr_assert_eq(cmds[2].calls, 1);
    cr_assert_eq(cn.inflight, 0);
}

Test(conn, client_reply_off_skip_on)
{
    connect_ready();
    const char *ping[] = {"PING"};
    const char *off[] = {"CLIENT", "REPLY", "OFF"};
    const char *on[] = {"CLIENT", "REPLY", "ON"};
    const char *skip[] = {"CLIENT", "REPLY", "SKIP"};
    submit_raw(0, AREDIS__REPLY_NORMAL, 0, 1, ping);
    submit_raw(1, AREDIS__REPLY_OFF, 0, 3, off);
    submit_raw(2, AREDIS__REPLY_NORMAL, 0, 1, ping);
    submit_raw(3, AREDIS__REPLY_SKIP, 0, 3, skip);
    submit_raw(4, AREDIS__REPLY_ON, 0, 3, on);
    submit_raw(5, AREDIS__REPLY_SKIP, 0, 3, skip);
    submit_raw(6, AREDIS__REPLY_NORMAL, 0, 1, ping);
    submit_raw(7, AREDIS__REPLY_NORMAL, 0, 1, ping);
    cr_assert_eq(cn.inflight, 3);
    drain();
    int silent[] = {1, 2, 3, 5, 6};
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(cmds[silent[i]].calls, 1);
        cr_assert_eq(cmds[silent[i]].type, AREDIS_REPLY_NIL);
    }
    write_all();
    feed("+PONG\r\n+OK\r\n+PONG\r\n");
    cr_assert_str_eq(cmds[0].text, "PONG");
    cr_assert_str_eq(cmds[4].text, "OK");
    cr_assert_str_eq(cmds[7].text, "PONG");
}

Test(conn, pushes_never_reach_a_command)
{
    connect_ready();
    submit(0, "GET");
    write_all();
    feed(">2\r\n+invalidate\r\n*1\r\n$1\r\nk\r\n$1\r\nv\r\n");
    cr_assert_eq(d.pushes, 1);
    cr_assert_eq(cmds[0].calls, 1);
    cr_assert_str_eq(cmds[0].text, "v");
}

Test(conn, stray_reply_while_idle_is_a_protocol_error)
{
    connect_ready();
    feed("+OK\r\n");
    cr_assert_eq(d.last_code, AREDIS_EPROTO);
    cr_assert(strstr(d.last_msg, "no command") != NULL, "%s", d.last_msg);
    cr_assert_eq(cn.state, AREDIS__ST_BACKOFF);
    cr_assert_eq(d.open_now, 0);
}

Test(conn, reply_before_the_command_was_written_is_stray)
{
    connect_ready();
    submit(0, "GET");
    size_t avail;
    char *w = aredis__conn_in_buf(&cn, &avail);
    memcpy(w, "+OK\r\n", 5);
    aredis__conn_in_commit(&cn, 5, now);
    write_all(); /* written after the reply arrived: still not its reply */
    drain();
    cr_assert_eq(d.last_code, AREDIS_EPROTO);
    cr_assert_eq(cmds[0].calls, 1);
    cr_assert_eq(cmds[0].code, AREDIS_EUNKNOWN,
                 "written, so it may have run: %s", cmds[0].text);
}

Test(conn, garbage_blames_the_oldest_command)
{
    connect_ready();
    submit(0, "GET");
    submit(1, "GET");
    write_all();
    feed("@@@\r\n");
    cr_assert_eq(cmds[0].code, AREDIS_EPROTO);
    cr_assert(strstr(cmds[0].text, "type byte") != NULL, "%s", cmds[0].text);
    cr_assert_eq(cmds[1].code, AREDIS_EUNKNOWN);
    /* The next connection reads with a new reader. */
    now = aredis__conn_deadline(&cn);
    reconnect_ready();
    cr_assert_eq(cn.state, AREDIS__ST_READY);
}

Test(conn, oversized_reply_is_etoobig)
{
    static const aredis_reader_limits small = {.max_bulk_len = 10};
    cfg.limits = &small;
    aredis__conn_cleanup(&cn);
    cr_assert_eq(aredis__conn_init(&cn, &cfg), 0);
    connect_ready();
    submit(0, "GET");
    write_all();
    feed("$11\r\nhello world\r\n");
    cr_assert_eq(cmds[0].calls, 1);
    cr_assert_eq(cmds[0].code, AREDIS_ETOOBIG, "%s", cmds[0].text);
}

/* ---- a lost connection ------------------------------------------------ */

Test(conn, salvage_rules)
{
    connect_ready();
    const char *incr[] = {"INCR", "n"};
    submit_raw(0, AREDIS__REPLY_NORMAL, 0, 2, incr); /* written: unknown */
    submit_raw(1, AREDIS__REPLY_NORMAL, AREDIS__CC_RETRY, 2, incr); /* again */
    write_all();
    submit_raw(2, AREDIS__REPLY_NORMAL, 0, 2, incr); /* unwritten: again */
    submit_raw(3, AREDIS__REPLY_NORMAL, AREDIS__CC_NO_RESEND, 2, incr);
    aredis__conn_closed(&cn, AREDIS_ECLOSED, "server closed", now);
    cr_assert_eq(cn.state, AREDIS__ST_BACKOFF, "final before any action");
    aredis__conn_action a;
    cr_assert(aredis__conn_poll(&cn, &a));
    cr_assert_eq(a.kind, AREDIS__ACT_CLOSE, "the transport goes first");
    take(&a);
    drain();
    cr_assert_eq(cmds[0].code, AREDIS_EUNKNOWN);
    cr_assert(strstr(cmds[0].text, "outcome unknown") != NULL);
    cr_assert_eq(cmds[1].calls, 0);
    cr_assert(cmds[1].cc.flags & AREDIS__CC_WAS_SENT);
    cr_assert_eq(cmds[2].calls, 0);
    cr_assert_eq(cmds[3].code, AREDIS_ECLOSED);
    cr_assert_eq(cn.npend, 2);
    cr_assert_eq(d.last_delay, 0, "a lost ready connection retries at once");
    /* They go out again in their order on the next connection. */
    reconnect_ready();
    write_all();
    feed(":1\r\n:2\r\n");
    cr_assert_eq(cmds[1].calls, 1);
    cr_assert_eq(cmds[1].type, AREDIS_REPLY_INTEGER);
    cr_assert_eq(cmds[2].calls, 1);
}

Test(conn, a_retried_write_that_runs_out_of_attempts_is_unknown)
{
    cfg.max_attempts = 1;
    connect_ready();
    const char *incr[] = {"INCR", "n"};
    submit_raw(0, AREDIS__REPLY_NORMAL, AREDIS__CC_RETRY, 2, incr);
    write_all();
    aredis__conn_closed(&cn, AREDIS_ECLOSED, "gone", now);
    drain();
    aredis__conn_timer(&cn, now);
    aredis__conn_open_failed(&cn, AREDIS_ECONNREFUSED, "refused", now);
    drain();
    cr_assert_eq(cmds[0].calls, 1);
    cr_assert_eq(cmds[0].code, AREDIS_EUNKNOWN, "%s", cmds[0].text);
}

Test(conn, lent_connection_is_not_reconnected)
{
    cn.lent = 1;
    connect_ready();
    submit(0, "WATCH");
    write_all();
    submit(1, "GET");
    aredis__conn_closed(&cn, AREDIS_ECLOSED, "gone", now);
    drain();
    cr_assert_eq(cn.state, AREDIS__ST_IDLE);
    cr_assert(cn.broken);
    cr_assert_eq(d.reconnecting, 0);
    cr_assert_eq(cmds[0].code, AREDIS_EUNKNOWN);
    cr_assert_eq(cmds[1].code, AREDIS_ECLOSED, "never replayed");
    submit(2, "GET");
    drain();
    cr_assert_eq(cmds[2].code, AREDIS_ECLOSED);
    cr_assert_eq(d.resolves, 1, "no new connection behind its back");
}

Test(conn, cancel_pending_and_in_flight)
{
    connect_ready();
    submit(0, "GET");
    write_all();
    cr_assert_eq(aredis__conn_cancel(&cn, &cmds[0].cc), 0, "in flight");
    feed("+late\r\n");
    cr_assert_eq(cmds[0].calls, 0);
    cr_assert_eq(cmds[0].cancelled_seen, 1, "its late reply comes back");
    aredis__conn_closed(&cn, AREDIS_ECLOSED, "gone", now);
    drain();
    submit(1, "GET");
    cr_assert_eq(cn.npend, 1);
    cr_assert_eq(aredis__conn_cancel(&cn, &cmds[1].cc), 1, "pending");
    cr_assert_eq(cn.npend, 0);
    cr_assert_eq(cn.pend_out.len, 0, "with its bytes");
}

Test(conn, submit_from_a_completion)
{
    connect_ready();
    d.next_refill = 1;
    d.refill_upto = 5;
    submit(0, "GET");
    for (int i = 0; i < 6; i++) {
        write_all();
        feed("+x\r\n");
    }
    for (int i = 0; i <= 5; i++)
        cr_assert_eq(cmds[i].calls, 1, "command %d", i);
}

Test(conn, submit_from_a_completion_after_a_loss)
{
    connect_ready();
    d.next_refill = 2;
    d.refill_upto = 4;
    submit(0, "GET");
    submit(1, "GET");
    write_all();
    aredis__conn_closed(&cn, AREDIS_ECLOSED, "gone", now);
    drain();
    /* Each failure submitted another: they wait for the one reconnect. */
    cr_assert_eq(cmds[0].calls, 1);
    cr_assert_eq(cmds[1].calls, 1);
    cr_assert_eq(cn.npend, 2);
    cr_assert_eq(cn.state, AREDIS__ST_BACKOFF);
    cr_assert_eq(d.resolves, 1, "no second connect");
    aredis__conn_timer(&cn, now);
    drain();
    cr_assert_eq(d.resolves, 2);
    cr_assert_eq(d.max_open, 1);
}

Test(conn, exclusive_connection_dropped_when_idle)
{
    cn.exclusive = 1;
    connect_ready();
    aredis__conn_closed(&cn, AREDIS_ECLOSED, "gone", now);
    drain();
    cr_assert_eq(cn.state, AREDIS__ST_IDLE);
    cr_assert_eq(d.reconnecting, 0);
}

/* An exclusive connection that carries subscriptions (a RESP2 pub/sub
 * connection) has nothing pending, yet it is retried, not dropped. */
Test(conn, exclusive_connection_with_subscriptions_is_retried)
{
    cn.exclusive = 1;
    cn.keep = 1;
    connect_ready();
    aredis__conn_closed(&cn, AREDIS_ECLOSED, "gone", now);
    drain();
    cr_assert_eq(cn.state, AREDIS__ST_BACKOFF);
    cr_assert_eq(d.reconnecting, 1);
}

Test(conn, subscriptions_keep_the_connection)
{
    cfg.max_attempts = 1;
    cn.keep = 1;
    connect_ready();
    aredis__conn_closed(&cn, AREDIS_ECLOSED, "gone", now);
    for (int i = 0; i < 3; i++) {
        drain();
        now = aredis__conn_deadline(&cn);
        aredis__conn_timer(&cn, now);
        aredis__conn_open_failed(&cn, AREDIS_ECONNREFUSED, "refused", now);
    }
    drain();
    cr_assert_eq(cn.state, AREDIS__ST_BACKOFF, "retried past max_attempts");
}

Test(conn, abort_completes_everything)
{
    connect_ready();
    submit(0, "GET");
    write_all();
    submit(1, "GET");
    aredis__conn_abort(&cn, AREDIS_ECANCELED, "gone");
    drain();
    cr_assert_eq(cmds[0].code, AREDIS_ECANCELED);
    cr_assert_eq(cmds[1].code, AREDIS_ECANCELED);
    cr_assert_eq(d.open_now, 0);
    cr_assert(aredis__conn_idle(&cn));
}

Test(conn, output_accounting)
{
    connect_ready();
    const char *set[] = {"SET", "key", "value"};
    submit_raw(0, AREDIS__REPLY_NORMAL, 0, 3, set);
    submit_raw(1, AREDIS__REPLY_NORMAL, 0, 3, set);
    const char *data;
    size_t n = aredis__conn_out(&cn, &data);
    size_t one = strlen("*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n");
    cr_assert_eq(n, 2 * one);
    cr_assert_eq(cmds[1].cc.end - cmds[0].cc.end, one);
    aredis__conn_wrote(&cn, 4);
    size_t m = aredis__conn_out(&cn, &data);
    cr_assert_eq(m, n - 4);
    cr_assert_eq(data[0], '$');
    aredis__conn_wrote(&cn, m);
    cr_assert_eq(aredis__conn_out(&cn, &data), 0);
    cr_assert(!aredis__conn_want_write(&cn));
}

/* ---- keeping the bytes of commands in flight (a cluster's redirects) ---- */

/* The bytes aredis_write_argv() makes of {cmd, "k"}. */
static size_t encoded(char *buf, size_t cap, const char *cmd)
{
    return (size_t)snprintf(buf, cap, "*2\r\n$%zu\r\n%s\r\n$1\r\nk\r\n",
                            strlen(cmd), cmd);
}

static void assert_bytes(int i, const char *cmd)
{
    char want[64];
    size_t n = encoded(want, sizeof want, cmd);
    const char *got = aredis__conn_cmd_bytes(&cn, &cmds[i].cc);
    cr_assert_not_null(got, "command %d: its bytes are gone", i);
    cr_assert_eq(cmds[i].cc.len, n);
    cr_assert_eq(memcmp(got, want, n), 0, "command %d: %.*s", i, (int)n, got);
}

Test(conn, bytes_in_flight_stay_until_the_reply)
{
    cfg.keep_inflight = 1;
    connect_ready();
    submit(0, "GET");
    submit(1, "INCR");
    write_all();
    assert_bytes(0, "GET");
    assert_bytes(1, "INCR");
    /* The reply to the first: its bytes are there while it completes. */
    size_t avail;
    char *w = aredis__conn_in_buf(&cn, &avail);
    memcpy(w, "$1\r\nv\r\n", 7);
    aredis__conn_in_commit(&cn, 7, now);
    aredis__conn_action a;
    cr_assert(aredis__conn_poll(&cn, &a));
    cr_assert_eq(a.kind, AREDIS__ACT_COMPLETE);
    cr_assert_eq(a.cmd, &cmds[0].cc);
    assert_bytes(0, "GET");
    take(&a);
    /* Commands submitted meanwhile move the buffer; the bytes follow. */
    for (int i = 2; i < 8; i++)
        submit(i, "SET");
    write_all();
    assert_bytes(1, "INCR");
    assert_bytes(7, "SET");
    /* Without the option the connection keeps none. */
    cfg.keep_inflight = 0;
    cr_assert_null(aredis__conn_cmd_bytes(&cn, &cmds[7].cc));
    cfg.keep_inflight = 1;
    feed(":1\r\n+OK\r\n+OK\r\n+OK\r\n+OK\r\n+OK\r\n+OK\r\n");
    for (int i = 0; i < 8; i++)
        cr_assert_eq(cmds[i].calls, 1, "command %d", i);
    /* Nothing in flight: the next write leaves nothing behind. */
    submit(8, "GET");
    write_all();
    feed("$1\r\nv\r\n");
    submit(9, "GET");
    assert_bytes(9, "GET");
}

Test(conn, bytes_kept_in_flight_do_not_pile_up)
{
    cfg.keep_inflight = 1;
    connect_ready();
    /* A window of four in flight, 5,000 times over: what was answered is
     * dropped from the front of the buffer now and then, so the buffer
     * stays near the window's size plus the slack before a compaction. */
    int next = 0;
    for (int i = 0; i < 4; i++)
        submit(next++ % NCMD, "GET");
    size_t most = 0;
    for (int round = 0; round < 5000; round++) {
        write_all();
        feed("$1\r\nv\r\n");
        cmds[next % NCMD].calls = 0;
        submit(next++ % NCMD, "GET");
        if (cn.out.len > most)
            most = cn.out.len;
    }
    cr_assert_lt(most, (size_t)3 * 4096, "the buffer grew to %zu bytes", most);
    for (int i = next - 4; i < next; i++)
        assert_bytes(i % NCMD, "GET");
}

/* Commands of many sizes, written a few bytes at a time, answered
 * oldest first in between: after every step each command in flight still
 * finds its own bytes (the front of the buffer is dropped while part of it
 * is kept), and after every write the buffer holds at most twice what is
 * in flight or unwritten, plus the slack before a compaction. */
Test(conn, bytes_kept_in_flight_survive_partial_writes_and_compaction)
{
    cfg.keep_inflight = 1;
    connect_ready();
    static char want[NCMD][4200];
    static size_t wlen[NCMD];
    static char val[4096];
    uint32_t seed = 1;
    int next = 0, oldest = 0; /* [oldest, next) not answered yet */
    for (int round = 0; round < 6000; round++) {
        seed = seed * 1103515245u + 12345u;
        uint32_t r = seed >> 8;
        if (r % 10 < 4 && next - oldest < NCMD) {
            int i = next % NCMD;
            size_t vl = 1 + (r >> 4) % (sizeof val - 1);
            memset(val, 'a' + next % 26, vl);
            val[vl] = '\0';
            memset(&cmds[i], 0, sizeof cmds[i]);
            wlen[i] = (size_t)snprintf(
                want[i], sizeof want[i],
                "*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$%zu\r\n%s\r\n", vl, val);
            const char *argv[] = {"SET", "key", val};
            submit_raw(i, AREDIS__REPLY_NORMAL, 0, 3, argv);
            next++;
        } else if (r % 10 < 7) {
            const char *out;
            size_t n = aredis__conn_out(&cn, &out);
            if (n == 0)
                continue;
            aredis__conn_wrote(&cn, 1 + (r >> 4) % n);
            size_t live = 0;
            for (int k = oldest; k < next; k++)
                live += wlen[k % NCMD];
            cr_assert_leq(cn.out.len, 2 * live + 4096,
                          "round %d: %zu bytes kept for %zu", round, cn.out.len,
                          live);
        } else if (oldest < next && cmds[oldest % NCMD].cc.end <= cn.written) {
            feed("+OK\r\n");
            cr_assert_eq(cmds[oldest % NCMD].calls, 1);
            oldest++;
        }
        for (int k = oldest; k < next; k++) {
            const char *got = aredis__conn_cmd_bytes(&cn, &cmds[k % NCMD].cc);
            cr_assert_not_null(got, "round %d: command %d lost its bytes",
                               round, k);
            cr_assert_eq(memcmp(got, want[k % NCMD], wlen[k % NCMD]), 0,
                         "round %d: command %d has other bytes", round, k);
        }
    }
    cr_assert_gt(oldest, 1000);
}

Test(conn, a_written_retry_is_sent_again_from_the_kept_bytes)
{
    cfg.keep_inflight = 1;
    connect_ready();
    submit(0, "INCR");
    cmds[0].cc.flags |= AREDIS__CC_RETRY; /* no copy of its own */
    write_all();
    aredis__conn_closed(&cn, AREDIS_ECLOSED, "server closed", now);
    drain();
    cr_assert_eq(cmds[0].calls, 0, "%s", cmds[0].text);
    cr_assert_eq(cn.npend, 1);
    reconnect_ready();
    char out[128], want[64];
    written_text(out, sizeof out);
    encoded(want, sizeof want, "INCR");
    cr_assert_str_eq(out, want);
    write_all();
    feed(":1\r\n");
    cr_assert_eq(cmds[0].calls, 1);
    cr_assert_eq(cmds[0].type, AREDIS_REPLY_INTEGER);
}

Test(conn, pending_commands_taken_come_with_their_bytes)
{
    aredis__conn_connect(&cn, now);
    drain();
    submit(0, "GET");
    submit(1, "INCR");
    aredis__conn_cmd *q = aredis__conn_take_pending(&cn);
    cr_assert_eq(q, &cmds[0].cc);
    cr_assert_eq(q->next, &cmds[1].cc);
    cr_assert_null(q->next->next);
    cr_assert_eq(cn.npend, 0);
    char want[64];
    size_t n = encoded(want, sizeof want, "GET");
    cr_assert_not_null(cmds[0].cc.copy);
    cr_assert_eq(memcmp(cmds[0].cc.copy, want, n), 0);
    n = encoded(want, sizeof want, "INCR");
    cr_assert_not_null(cmds[1].cc.copy);
    cr_assert_eq(memcmp(cmds[1].cc.copy, want, n), 0);
    cr_assert_eq(cmds[0].cc.flags & AREDIS__CC_PENDING, 0);
}

/* ---- extra handshake steps (the client-side cache's CLIENT TRACKING) ---- */

static const char tracking_on[] =
    "*3\r\n$6\r\nCLIENT\r\n$8\r\nTRACKING\r\n$2\r\nON\r\n";
static const aredis__conn_step tracking_step[] = {
    {"CLIENT TRACKING", tracking_on, sizeof tracking_on - 1}};

/* Open a transport and answer HELLO; the extra step is then due. */
static void open_and_hello(void)
{
    aredis__conn_connect(&cn, now);
    drain();
    aredis__conn_resolved(&cn, 1, now);
    drain();
    aredis__conn_opened(&cn, now);
    drain();
    write_all();
    feed(hello_map);
}

Test(conn, extra_step_runs_last_and_before_every_queued_command)
{
    cn.extra = tracking_step;
    cn.nextra = 1;
    cfg.db = 2;
    submit(0, "GET");
    open_and_hello();
    char out[256];
    written_text(out, sizeof out);
    cr_assert_str_eq(out, "*2\r\n$6\r\nSELECT\r\n$1\r\n2\r\n");
    write_all();
    feed("+OK\r\n");
    written_text(out, sizeof out);
    cr_assert_str_eq(out, tracking_on, "after SELECT, alone");
    cr_assert_eq(cn.state, AREDIS__ST_HANDSHAKE);
    write_all();
    feed("+OK\r\n");
    cr_assert_eq(cn.state, AREDIS__ST_READY);
    written_text(out, sizeof out);
    cr_assert_str_eq(out, "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n",
                     "the queued GET only once the step is answered");
    write_all();
    feed("$1\r\nv\r\n");
    cr_assert_eq(cmds[0].calls, 1);

    /* A lost connection: the new one runs the step again, and the command
     * that was in flight waits behind it. */
    submit_raw(1, AREDIS__REPLY_NORMAL, AREDIS__CC_RETRY, 2,
               (const char *[]){"GET", "k"});
    write_all();
    aredis__conn_closed(&cn, AREDIS_ECLOSED, "gone", now);
    drain();
    cr_assert_eq(cn.state, AREDIS__ST_BACKOFF);
    aredis__conn_timer(&cn, aredis__conn_deadline(&cn));
    drain();
    aredis__conn_resolved(&cn, 1, now);
    drain();
    aredis__conn_opened(&cn, now);
    drain();
    write_all();
    feed(hello_map);
    written_text(out, sizeof out);
    cr_assert_str_eq(out, "*2\r\n$6\r\nSELECT\r\n$1\r\n2\r\n");
    write_all();
    feed("+OK\r\n");
    written_text(out, sizeof out);
    cr_assert_str_eq(out, tracking_on, "replayed on the new connection");
    write_all();
    feed("+OK\r\n");
    written_text(out, sizeof out);
    cr_assert_str_eq(out, "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
    cr_assert_eq(d.connected, 2);
    write_all();
    feed("$1\r\nw\r\n");
    cr_assert_eq(cmds[1].calls, 1);
}

Test(conn, refused_extra_step_fails_the_handshake)
{
    cn.extra = tracking_step;
    cn.nextra = 1;
    submit(0, "GET");
    open_and_hello();
    write_all();
    feed("-ERR unknown subcommand 'TRACKING'\r\n");
    cr_assert_eq(d.connected, 0);
    cr_assert_eq(d.disconnected, 1);
    cr_assert_eq(d.last_code, AREDIS_ESERVER);
    cr_assert(strstr(d.last_msg, "CLIENT TRACKING") != NULL, "%s", d.last_msg);
    cr_assert_eq(cmds[0].calls, 0, "the GET was never sent: it waits");
}

Test(conn, no_extra_step_when_the_owner_clears_it)
{
    cn.extra = tracking_step;
    cn.nextra = 1;
    cn.extra = NULL;
    cn.nextra = 0;
    open_and_hello();
    cr_assert_eq(cn.state, AREDIS__ST_READY);
    cr_assert_eq(d.connected, 1);
}

/* ---- at most two writes awaiting replies in a deep pipeline ------------ */

/* Write what the connection gives now, in one write: its size (0: none). */
static size_t write_once(void)
{
    const char *out;
    size_t n = aredis__conn_out(&cn, &out);
    if (n > 0)
        aredis__conn_wrote(&cn, n);
    return n;
}

/* n commands of the fill in flight, in one write. */
static void fill(int n)
{
    for (int i = 0; i < n; i++)
        submit(NCMD + i, "GET");
    cr_assert_gt(write_once(), 0);
}

/* n replies. */
static void answer(int n)
{
    static char r[NALL * 5 + 1];
    for (int i = 0; i < n; i++)
        memcpy(r + 5 * i, "+OK\r\n", 5);
    r[5 * n] = '\0';
    feed(r);
}

Test(conn, at_most_two_writes_await_replies_in_a_deep_pipeline)
{
    connect_ready();
    char one[64];
    size_t len = encoded(one, sizeof one, "GET");
    fill(NFILL);
    submit(0, "GET");
    cr_assert_eq(write_once(), len, "the second write goes at once");
    submit(1, "GET");
    submit(2, "GET");
    cr_assert(aredis__conn_held(&cn), "two unanswered: the rest waits");
    cr_assert_eq(write_once(), 0);
    answer(10);
    cr_assert(aredis__conn_held(&cn), "the first write is answered in part");
    cr_assert_eq(write_once(), 0);
    answer(NFILL - 10);
    cr_assert(!aredis__conn_held(&cn));
    cr_assert_eq(write_once(), 2 * len, "what was held goes in one write");
    /* A shallow pipeline: writes go as they come. */
    submit(3, "GET");
    cr_assert_eq(write_once(), len);
    answer(4);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(cmds[i].calls, 1, "command %d", i);
    cr_assert(aredis__conn_idle(&cn));
}

Test(conn, a_shallow_pipeline_never_waits)
{
    connect_ready();
    for (int i = 0; i < NCMD; i++) {
        submit(i, "GET");
        cr_assert(!aredis__conn_held(&cn), "command %d", i);
        cr_assert_gt(write_once(), 0, "command %d", i);
    }
    answer(NCMD);
    for (int i = 0; i < NCMD; i++) {
        submit(i, "GET");
        cr_assert_gt(write_once(), 0, "one at a time: command %d", i);
        answer(1);
    }
}

Test(conn, the_rest_of_a_partial_write_goes_whatever_the_count)
{
    connect_ready();
    fill(NFILL);
    submit(0, "GET");
    const char *out;
    size_t n = aredis__conn_out(&cn, &out);
    aredis__conn_wrote(&cn, 3); /* the transport took 3 bytes */
    submit(1, "GET");
    /* The first write is unanswered, but the second is not all out: its
     * rest, and what joined it, go on (a held half command would never
     * be answered). */
    cr_assert(!aredis__conn_held(&cn));
    cr_assert_eq(write_once(), 2 * n - 3);
    submit(2, "GET");
    cr_assert(aredis__conn_held(&cn), "a whole second write unanswered");
    answer(NFILL);
    cr_assert_eq(write_once(), n);
}

Test(conn, an_exclusive_connection_never_holds)
{
    cn.exclusive = 1;
    connect_ready();
    fill(NFILL);
    for (int i = 0; i < 4; i++) {
        submit(i, "GET");
        cr_assert_gt(write_once(), 0, "command %d", i);
    }
}

Test(conn, held_commands_of_a_lost_connection_were_never_sent)
{
    connect_ready();
    const char *incr[] = {"INCR", "n"};
    fill(NFILL);
    submit_raw(0, AREDIS__REPLY_NORMAL, 0, 2, incr);
    write_once();
    submit_raw(1, AREDIS__REPLY_NORMAL, 0, 2, incr);
    submit_raw(2, AREDIS__REPLY_NORMAL, AREDIS__CC_NO_RESEND, 2, incr);
    cr_assert_eq(write_once(), 0, "1 and 2 are held");
    aredis__conn_closed(&cn, AREDIS_ECLOSED, "server closed", now);
    drain();
    cr_assert_eq(cmds[0].code, AREDIS_EUNKNOWN, "written: %s", cmds[0].text);
    cr_assert_eq(cmds[NCMD].code, AREDIS_EUNKNOWN);
    /* Held: never written, so safe to send again (or elsewhere), and one
     * that must not be re-sent fails as never sent. */
    cr_assert_eq(cmds[1].calls, 0, "%s", cmds[1].text);
    cr_assert_eq(cn.npend, 1);
    cr_assert_eq(cmds[2].code, AREDIS_ECLOSED);
    cr_assert(strstr(cmds[2].text, "before the command was sent") != NULL, "%s",
              cmds[2].text);
    /* It goes out on the next connection. */
    reconnect_ready();
    write_all();
    feed(":1\r\n");
    cr_assert_eq(cmds[1].calls, 1);
    cr_assert_eq(cmds[1].type, AREDIS_REPLY_INTEGER);
}

Test(conn, held_commands_taken_pending_come_with_their_bytes)
{
    /* A cluster moves the commands of a lost node elsewhere with
     * aredis__conn_take_pending(): the held ones are among them. */
    connect_ready();
    fill(NFILL);
    submit(0, "GET");
    write_once();
    submit(1, "INCR");
    cr_assert_eq(write_once(), 0);
    aredis__conn_closed(&cn, AREDIS_ECLOSED, "server closed", now);
    drain();
    aredis__conn_cmd *q = aredis__conn_take_pending(&cn);
    cr_assert_eq(q, &cmds[1].cc);
    cr_assert_null(q->next);
    char want[64];
    size_t n = encoded(want, sizeof want, "INCR");
    cr_assert_eq(memcmp(q->copy, want, n), 0);
    cr_assert_eq(cmds[1].calls, 0);
}

/* ---- a deadline takes out what was never written ------------------------ */

/* The concatenated encodings of commands {names[i], "k"}. */
static size_t encoded_all(char *buf, size_t cap, const char *const *names,
                          int n)
{
    size_t len = 0;
    for (int i = 0; i < n; i++)
        len += encoded(buf + len, cap - len, names[i]);
    return len;
}

/* The output still to write is exactly want (len bytes). */
static void assert_out(const char *want, size_t len)
{
    const char *out;
    size_t n = aredis__conn_out(&cn, &out);
    cr_assert_eq(n, len, "%zu bytes to write, %zu expected: %.*s", n, len,
                 (int)n, out);
    cr_assert_eq(memcmp(out, want, len), 0, "%.*s", (int)n, out);
}

Test(conn, cancel_takes_an_unwritten_command_out_with_its_bytes)
{
    cfg.keep_inflight = 1;
    connect_ready();
    submit(0, "GET");
    submit(1, "INCR");
    submit(2, "DECR");
    submit(3, "SET");
    /* None written: INCR goes, its bytes with it. */
    cr_assert_eq(aredis__conn_cancel(&cn, &cmds[1].cc), 1);
    cr_assert_eq(cn.inflight, 3);
    char want[256];
    const char *rest[] = {"GET", "DECR", "SET"};
    size_t len = encoded_all(want, sizeof want, rest, 3);
    assert_out(want, len);
    cr_assert_eq(cn.queued, cn.written + len);
    assert_bytes(2, "DECR"); /* the ones after it moved with their bytes */
    assert_bytes(3, "SET");
    /* The last one, then the first. */
    cr_assert_eq(aredis__conn_cancel(&cn, &cmds[3].cc), 1);
    cr_assert_eq(aredis__conn_cancel(&cn, &cmds[0].cc), 1);
    len = encoded(want, sizeof want, "DECR");
    assert_out(want, len);
    cr_assert_eq(cn.head, &cmds[2].cc);
    cr_assert_eq(cn.tail, &cmds[2].cc);
    submit(4, "GET");
    write_all();
    feed(":-1\r\n$1\r\nv\r\n");
    cr_assert_eq(cmds[2].calls, 1);
    cr_assert_eq(cmds[2].type, AREDIS_REPLY_INTEGER);
    cr_assert_eq(cmds[4].calls, 1);
    cr_assert_eq(cmds[4].type, AREDIS_REPLY_STRING);
    for (int i = 0; i < 4; i += (i == 0 ? 1 : 2))
        cr_assert_eq(cmds[i].calls + cmds[i].cancelled_seen, 0, "command %d",
                     i);
    cr_assert(aredis__conn_idle(&cn));
}

Test(conn, cancel_after_a_partial_write_takes_only_the_unwritten)
{
    cfg.keep_inflight = 1;
    connect_ready();
    submit(0, "GET");
    submit(1, "INCR");
    submit(2, "DECR");
    submit(3, "SET");
    char one[64];
    size_t get = encoded(one, sizeof one, "GET");
    /* The transport takes GET and 3 bytes of INCR. */
    aredis__conn_wrote(&cn, get + 3);
    cr_assert_eq(aredis__conn_cancel(&cn, &cmds[0].cc), 0, "written");
    cr_assert_eq(aredis__conn_cancel(&cn, &cmds[1].cc), 0, "written in part");
    cr_assert_eq(aredis__conn_cancel(&cn, &cmds[2].cc), 1, "never written");
    cr_assert_eq(cn.inflight, 3);
    char want[256];
    const char *rest[] = {"INCR", "SET"};
    size_t len = encoded_all(want, sizeof want, rest, 2);
    assert_out(want + 3, len - 3);
    assert_bytes(3, "SET");
    write_all();
    /* The replies pair with what was sent: the cancelled ones' are read
     * and dropped. */
    feed("$1\r\nv\r\n:1\r\n+OK\r\n");
    cr_assert_eq(cmds[0].cancelled_seen, 1);
    cr_assert_eq(cmds[1].cancelled_seen, 1);
    cr_assert_eq(cmds[2].calls + cmds[2].cancelled_seen, 0);
    cr_assert_eq(cmds[3].calls, 1);
    cr_assert_str_eq(cmds[3].text, "OK");
    cr_assert(aredis__conn_idle(&cn));
}

Test(conn, cancel_of_all_that_a_partial_write_left_ends_that_write)
{
    connect_ready();
    submit(0, "GET");
    submit(1, "INCR");
    char one[64];
    aredis__conn_wrote(&cn, encoded(one, sizeof one, "GET"));
    cr_assert(cn.wpart, "the write was taken in part");
    cr_assert_eq(aredis__conn_cancel(&cn, &cmds[1].cc), 1);
    cr_assert(!cn.wpart, "nothing of it is left to write");
    cr_assert(!aredis__conn_want_write(&cn));
    feed("$1\r\nv\r\n");
    cr_assert_eq(cmds[0].calls, 1);
    cr_assert(aredis__conn_idle(&cn));
}

Test(conn, cancel_of_a_held_command_in_a_deep_pipeline)
{
    connect_ready();
    char one[64];
    size_t len = encoded(one, sizeof one, "GET");
    fill(NFILL);
    submit(0, "GET");
    cr_assert_eq(write_once(), len);
    submit(1, "INCR");
    submit(2, "GET");
    cr_assert(aredis__conn_held(&cn));
    cr_assert_eq(aredis__conn_cancel(&cn, &cmds[1].cc), 1, "held: unwritten");
    answer(NFILL);
    cr_assert_eq(write_once(), len, "only the GET is left");
    answer(2);
    cr_assert_eq(cmds[0].calls, 1);
    cr_assert_eq(cmds[2].calls, 1);
    cr_assert_eq(cmds[1].calls + cmds[1].cancelled_seen, 0);
    cr_assert(aredis__conn_idle(&cn));
}

/* What taking a command out would change for the others: it stays. */
Test(conn, cancel_keeps_what_the_others_depend_on)
{
    connect_ready();
    const char *on[] = {"CLIENT", "REPLY", "ON"};
    submit_raw(0, AREDIS__REPLY_ON, 0, 3, on);
    cr_assert_eq(aredis__conn_cancel(&cn, &cmds[0].cc), 0, "CLIENT REPLY");
    const char *multi[] = {"MULTI"};
    submit_raw(1, AREDIS__REPLY_NORMAL,
               AREDIS__CC_TOGETHER | AREDIS__CC_NO_RESEND, 1, multi);
    cr_assert_eq(aredis__conn_cancel(&cn, &cmds[1].cc), 0, "a part of a whole");
    const char *skip[] = {"CLIENT", "REPLY", "SKIP"};
    submit_raw(2, AREDIS__REPLY_SKIP, 0, 3, skip);
    submit(3, "GET"); /* silenced by the SKIP: no reply awaited */
    cr_assert_eq(aredis__conn_cancel(&cn, &cmds[3].cc), 0, "silenced");
    cn.lent = 1;
    submit(4, "GET");
    cr_assert_eq(aredis__conn_cancel(&cn, &cmds[4].cc), 0, "lent");
    cn.lent = 0;
    submit(5, "GET");
    cr_assert_eq(aredis__conn_cancel(&cn, &cmds[5].cc), 1);
    /* Never re-sent after a loss is another promise: it goes. */
    const char *get[] = {"GET", "k"};
    submit_raw(6, AREDIS__REPLY_NORMAL, AREDIS__CC_NO_RESEND, 2, get);
    cr_assert_eq(aredis__conn_cancel(&cn, &cmds[6].cc), 1, "NO_RESEND");
    write_all();
    feed("+OK\r\n+OK\r\n$1\r\nv\r\n");
    drain();
    for (int i = 0; i < 5; i++)
        cr_assert_eq(cmds[i].calls + cmds[i].cancelled_seen, 1, "command %d",
                     i);
    for (int i = 5; i < 7; i++)
        cr_assert_eq(cmds[i].calls + cmds[i].cancelled_seen, 0, "command %d",
                     i);
    cr_assert(aredis__conn_idle(&cn));
}

/* The same rule for commands waiting for the connection to be ready: a
 * MULTI ... EXEC whose parts time out one by one is never split (its
 * MULTI taken out, its SET sent to run alone), CLIENT REPLY SKIP keeps
 * the command it silences, and NO_RESEND alone keeps nothing. */
Test(conn, cancel_of_pending_keeps_what_the_others_depend_on)
{
    const char *multi[] = {"MULTI"};
    const char *set[] = {"SET", "k", "v"};
    const char *exec[] = {"EXEC"};
    const char *skip[] = {"CLIENT", "REPLY", "SKIP"};
    const char *get[] = {"GET", "k"};
    const unsigned part = AREDIS__CC_TOGETHER | AREDIS__CC_NO_RESEND;
    submit_raw(0, AREDIS__REPLY_NORMAL, part, 1, multi);
    submit_raw(1, AREDIS__REPLY_NORMAL, part, 3, set);
    submit_raw(2, AREDIS__REPLY_NORMAL, part, 1, exec);
    submit_raw(3, AREDIS__REPLY_SKIP, 0, 3, skip);
    submit(4, "GET"); /* silenced by the SKIP once sent */
    submit_raw(5, AREDIS__REPLY_NORMAL, AREDIS__CC_NO_RESEND, 2, get);
    submit(6, "INCR");
    cr_assert_eq(cn.npend, 7);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(aredis__conn_cancel(&cn, &cmds[i].cc), 0,
                     "part %d of a whole", i);
    cr_assert_eq(aredis__conn_cancel(&cn, &cmds[3].cc), 0, "CLIENT REPLY");
    cr_assert_eq(aredis__conn_cancel(&cn, &cmds[4].cc), 0, "silenced");
    cr_assert_eq(aredis__conn_cancel(&cn, &cmds[5].cc), 1, "NO_RESEND");
    cr_assert_eq(cn.npend, 6);
    connect_ready();
    char want[256];
    size_t len = 0;
    aredis_buf b;
    aredis_buf_init(&b);
    cr_assert_eq(aredis_write_argv(&b, 1, multi, NULL), 0);
    cr_assert_eq(aredis_write_argv(&b, 3, set, NULL), 0);
    cr_assert_eq(aredis_write_argv(&b, 1, exec, NULL), 0);
    cr_assert_eq(aredis_write_argv(&b, 3, skip, NULL), 0);
    cr_assert_lt(b.len, sizeof want);
    memcpy(want, b.data, b.len);
    len = b.len;
    aredis_buf_cleanup(&b);
    const char *rest[] = {"GET", "INCR"};
    len += encoded_all(want + len, sizeof want - len, rest, 2);
    assert_out(want, len);
    write_all();
    feed("+OK\r\n+QUEUED\r\n*1\r\n+OK\r\n:1\r\n");
    drain();
    for (int i = 0; i < 5; i++)
        cr_assert_eq(cmds[i].calls + cmds[i].cancelled_seen, 1, "command %d",
                     i);
    cr_assert_eq(cmds[5].calls + cmds[5].cancelled_seen, 0);
    cr_assert_eq(cmds[6].calls, 1);
    cr_assert_eq(cmds[6].type, AREDIS_REPLY_INTEGER, "INCR got its own reply");
    cr_assert(aredis__conn_idle(&cn));
}

/* A borrowed connection not ready yet: the borrower's sequence stays. */
Test(conn, cancel_of_pending_on_a_lent_connection)
{
    cn.lent = 1;
    submit(0, "WATCH");
    submit(1, "GET");
    cr_assert_eq(aredis__conn_cancel(&cn, &cmds[0].cc), 0, "lent");
    cr_assert_eq(cn.npend, 2);
    connect_ready();
    write_all();
    feed("+OK\r\n$1\r\nv\r\n");
    cr_assert_eq(cmds[0].cancelled_seen, 1);
    cr_assert_eq(cmds[1].calls, 1);
    cr_assert_str_eq(cmds[1].text, "v");
    cr_assert(aredis__conn_idle(&cn));
}

/* ASKING, then four commands: 0 GET, 1 ASKING, 2 INCR, 3 DECR from b. */
static void submit_with_asking(int b)
{
    const char *asking[] = {"ASKING"};
    submit(b, "GET");
    submit_raw(b + 1, AREDIS__REPLY_NORMAL, AREDIS__CC_GLUED, 1, asking);
    submit(b + 2, "INCR");
    submit(b + 3, "DECR");
    cr_assert_eq(aredis__conn_cancel(&cn, &cmds[b + 1].cc), 0, "never alone");
    cmds[b + 1].cc.flags &= (uint8_t)~AREDIS__CC_CANCELLED;
    cr_assert_eq(aredis__conn_cancel(&cn, &cmds[b + 2].cc), 1);
    drain();
    cr_assert_eq(cmds[b + 1].calls, 1, "ASKING completes");
    cr_assert_eq(cmds[b + 1].code, AREDIS_ECANCELED);
}

/* ASKING applies to the command after it: it never goes alone, and never
 * stays behind when that command is taken out, pending or queued. */
Test(conn, a_glued_command_goes_with_the_next)
{
    char want[256];
    const char *rest[] = {"GET", "DECR"};
    size_t len = encoded_all(want, sizeof want, rest, 2);
    submit_with_asking(0);
    cr_assert_eq(cn.npend, 2);
    cr_assert_eq(cn.pend_out.len, len);
    cr_assert_eq(memcmp(cn.pend_out.data, want, len), 0);
    connect_ready();
    write_all();
    feed("$1\r\nv\r\n:-1\r\n");
    submit_with_asking(4);
    cr_assert_eq(cn.inflight, 2);
    assert_out(want, len);
    write_all();
    feed("$1\r\nv\r\n:-1\r\n");
    for (int i = 0; i < 8; i += 4) {
        cr_assert_eq(cmds[i].calls, 1, "command %d", i);
        cr_assert_eq(cmds[i + 3].type, AREDIS_REPLY_INTEGER, "command %d",
                     i + 3);
        cr_assert_eq(cmds[i + 2].calls + cmds[i + 2].cancelled_seen, 0);
    }
    /* ASKING written already: its command stays with it. */
    const char *asking[] = {"ASKING"};
    submit_raw(8, AREDIS__REPLY_NORMAL, AREDIS__CC_GLUED, 1, asking);
    write_all();
    submit(9, "INCR");
    cr_assert_eq(aredis__conn_cancel(&cn, &cmds[9].cc), 0);
    write_all();
    feed("+OK\r\n:1\r\n");
    cr_assert_eq(cmds[8].calls, 1);
    cr_assert_eq(cmds[9].cancelled_seen, 1);
    cr_assert(aredis__conn_idle(&cn));
}
