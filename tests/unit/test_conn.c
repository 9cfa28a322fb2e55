/* Unit tests for the sans-I/O connection: reply/command pairing in order,
 * CLIENT REPLY ON/OFF/SKIP bookkeeping, RESP3 pushes routed aside, a stray
 * reply as a protocol error, and output accounting. No sockets. */
#include <criterion/criterion.h>
#include <string.h>

#include "aredis/error.h"
#include "conn/conn.h"
#include "resp/resp.h"

static aredis__conn cn;
static aredis__cmd cmds[16];

static void setup(void)
{
    cr_assert_eq(aredis__conn_init(&cn, NULL), 0);
    memset(cmds, 0, sizeof cmds);
}

static void teardown(void)
{
    aredis__conn_cleanup(&cn);
}

/* Encode argv into the output buffer and enqueue cmds[i]. */
static int send_cmd(int i, int kind, int argc, const char **argv)
{
    size_t before = cn.out.len;
    cr_assert_eq(aredis_write_argv(&cn.out, argc, argv, NULL), 0);
    return aredis__conn_enqueue(&cn, &cmds[i], cn.out.len - before, kind);
}

/* Bytes from the server; everything queued has reached it before. */
static void feed(const char *bytes)
{
    const char *out;
    aredis__conn_wrote(&cn, aredis__conn_out(&cn, &out));
    size_t n = strlen(bytes), avail;
    char *w = aredis__conn_in_buf(&cn, &avail);
    cr_assert_not_null(w);
    cr_assert_geq(avail, n);
    memcpy(w, bytes, n);
    cr_assert_eq(aredis__conn_in_commit(&cn, n), 0);
}

TestSuite(conn, .init = setup, .fini = teardown);

Test(conn, replies_pair_with_commands_in_order)
{
    const char *get[] = {"GET", "k"};
    for (int i = 0; i < 3; i++)
        cr_assert_eq(send_cmd(i, AREDIS__REPLY_NORMAL, 2, get), 1);
    cr_assert_eq(cn.inflight, 3);
    feed(":1\r\n:2\r\n:3");
    aredis__cmd *c;
    const aredis_reply *r;
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(aredis__conn_next(&cn, &c, &r), 1);
        cr_assert_eq(c, &cmds[i]);
        cr_assert_eq(r->integer, i + 1);
    }
    cr_assert_eq(aredis__conn_next(&cn, &c, &r), 0, "third reply is cut");
    feed("\r\n");
    cr_assert_eq(aredis__conn_next(&cn, &c, &r), 1);
    cr_assert_eq(c, &cmds[2]);
    cr_assert_eq(cn.inflight, 0);
}

Test(conn, client_reply_off_skip_on)
{
    const char *ping[] = {"PING"};
    const char *off[] = {"CLIENT", "REPLY", "OFF"};
    const char *on[] = {"CLIENT", "REPLY", "ON"};
    const char *skip[] = {"CLIENT", "REPLY", "SKIP"};
    cr_assert_eq(send_cmd(0, AREDIS__REPLY_NORMAL, 1, ping), 1);
    cr_assert_eq(send_cmd(1, AREDIS__REPLY_OFF, 3, off), 0);
    cr_assert(cmds[1].flags & AREDIS__CMD_NOREPLY);
    cr_assert_eq(send_cmd(2, AREDIS__REPLY_NORMAL, 1, ping), 0, "silenced");
    cr_assert_eq(send_cmd(3, AREDIS__REPLY_SKIP, 3, skip), 0);
    cr_assert_eq(send_cmd(4, AREDIS__REPLY_ON, 3, on), 1, "ON is answered");
    cr_assert_eq(send_cmd(5, AREDIS__REPLY_SKIP, 3, skip), 0);
    cr_assert_eq(send_cmd(6, AREDIS__REPLY_NORMAL, 1, ping), 0, "skipped");
    cr_assert_eq(send_cmd(7, AREDIS__REPLY_NORMAL, 1, ping), 1);
    cr_assert_eq(cn.inflight, 3);

    /* What a server sends for that sequence: PONG, OK (for ON), PONG. */
    feed("+PONG\r\n+OK\r\n+PONG\r\n");
    aredis__cmd *c;
    const aredis_reply *r;
    int want[] = {0, 4, 7};
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(aredis__conn_next(&cn, &c, &r), 1);
        cr_assert_eq(c, &cmds[want[i]], "reply %d went to cmd %ld", i,
                     (long)(c - cmds));
    }
}

Test(conn, pushes_never_reach_a_command)
{
    const char *get[] = {"GET", "k"};
    cr_assert_eq(send_cmd(0, AREDIS__REPLY_NORMAL, 2, get), 1);
    feed(">2\r\n+invalidate\r\n*1\r\n$1\r\nk\r\n$1\r\nv\r\n");
    aredis__cmd *c = &cmds[9];
    const aredis_reply *r;
    cr_assert_eq(aredis__conn_next(&cn, &c, &r), 1);
    cr_assert_null(c);
    cr_assert_eq(r->type, AREDIS_REPLY_PUSH);
    cr_assert_eq(aredis__conn_next(&cn, &c, &r), 1);
    cr_assert_eq(c, &cmds[0]);
    cr_assert_str_eq(r->str, "v");
}

Test(conn, stray_reply_is_a_protocol_error)
{
    feed("+OK\r\n");
    aredis__cmd *c;
    const aredis_reply *r;
    cr_assert_eq(aredis__conn_next(&cn, &c, &r), AREDIS_EPROTO);
    cr_assert(strstr(aredis__conn_errstr(&cn), "no command") != NULL);
}

/* Only a command the server received in full can be answered: a reply
 * that arrives while the oldest command is still in the output buffer
 * (released by a finished handshake in the same read, say) is stray. */
Test(conn, reply_before_the_command_was_written_is_stray)
{
    const char *get[] = {"GET", "k"};
    cr_assert_eq(send_cmd(0, AREDIS__REPLY_NORMAL, 2, get), 1);
    size_t n = strlen("+OK\r\n"), avail;
    char *w = aredis__conn_in_buf(&cn, &avail);
    memcpy(w, "+OK\r\n", n);
    cr_assert_eq(aredis__conn_in_commit(&cn, n), 0);
    /* Written after the reply arrived: still not its reply. */
    const char *out;
    aredis__conn_wrote(&cn, aredis__conn_out(&cn, &out));
    aredis__cmd *c;
    const aredis_reply *r;
    cr_assert_eq(aredis__conn_next(&cn, &c, &r), AREDIS_EPROTO);
    cr_assert_eq(cn.inflight, 1, "the command stays for the salvage rules");
}

Test(conn, garbage_is_a_protocol_error_and_reset_recovers)
{
    const char *ping[] = {"PING"};
    cr_assert_eq(send_cmd(0, AREDIS__REPLY_NORMAL, 1, ping), 1);
    feed("@@@\r\n");
    aredis__cmd *c;
    const aredis_reply *r;
    cr_assert_eq(aredis__conn_next(&cn, &c, &r), AREDIS_EPROTO);
    cr_assert(strstr(aredis__conn_errstr(&cn), "type byte") != NULL);
    aredis__cmd *left = aredis__conn_take_inflight(&cn);
    cr_assert_eq(left, &cmds[0]);
    cr_assert_eq(aredis__conn_reset(&cn), 0);
    cr_assert_eq(send_cmd(1, AREDIS__REPLY_NORMAL, 1, ping), 1);
    feed("+PONG\r\n");
    cr_assert_eq(aredis__conn_next(&cn, &c, &r), 1);
    cr_assert_eq(c, &cmds[1]);
}

Test(conn, output_accounting)
{
    const char *set[] = {"SET", "key", "value"};
    cr_assert_eq(send_cmd(0, AREDIS__REPLY_NORMAL, 3, set), 1);
    cr_assert_eq(send_cmd(1, AREDIS__REPLY_NORMAL, 3, set), 1);
    const char *data;
    size_t n = aredis__conn_out(&cn, &data);
    cr_assert_eq(n,
                 2 * strlen("*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n"));
    cr_assert_eq(cmds[0].end, n / 2);
    cr_assert_eq(cmds[1].end, n);
    aredis__conn_wrote(&cn, 4);
    size_t m = aredis__conn_out(&cn, &data);
    cr_assert_eq(m, n - 4);
    cr_assert_eq(data[0], '$');
    aredis__conn_wrote(&cn, m);
    cr_assert_eq(aredis__conn_out(&cn, &data), 0);
    cr_assert_eq(cn.written, n);
}
