/* Fault tests: a server that answers the handshake wrongly
 * (tests/support/fakeserver.c).
 *
 * A reply with nothing in flight is a protocol error in every state, the
 * handshake included, and HELLO must be answered with the connection's
 * properties (a map with server, version and proto). For each broken
 * first connection the client must close it with AREDIS_EPROTO, never
 * hand a handshake reply (or a stray one) to a user command, and succeed
 * on the next, well-behaved connection (--then normal) with the command
 * that waited. The stray reply on an idle ready connection is
 * test_hostile.c's stray_reply. Public API only. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "aredis/aredis.h"
#include "faults.h"

static struct {
    faults_fake fake;
    aredis_loop *loop;
    aredis_client *c;
    faults_events ev;
    faults_track t;
    faults_cmd cmds[8];
} h;

/* The first connection runs `script`, later ones are normal. A GET is
 * submitted before the client has connected, so it waits for the
 * handshake; it must end with the normal server's +OK. */
static void broken_handshake(const char *script, const char *what)
{
    memset(&h, 0, sizeof h);
    const char *const extra[] = {"--then", "normal", NULL};
    cr_assert_eq(faults_fake_start(&h.fake, script, extra), 0, "%s",
                 testenv_errstr());
    h.c = faults_client_new(
        &h.loop, h.fake.port,
        (aredis_options){.reconnect_initial_ms = 10, .reconnect_max_ms = 20},
        &h.ev);
    cr_assert_not_null(h.c, "%s", testenv_errstr());
    faults_track_init(&h.t, h.cmds, 8);
    int i = faults_send(&h.t, h.c, &(aredis_cmd_opts){.timeout_ms = 3000},
                        "GET key");
    cr_assert_geq(i, 0);
    cr_assert(faults_wait_track(h.loop, &h.t, 5000), "the GET never completed");

    char evs[1024];
    faults_events_str(&h.ev, evs, sizeof evs);
    int d = faults_events_find(&h.ev, 0, AREDIS_CONN_DISCONNECTED, 0);
    cr_assert_geq(d, 0, "%s: the broken handshake was accepted (events: %s)",
                  what, evs);
    cr_assert_eq(h.ev.ev[d].code, AREDIS_EPROTO, "%s: events: %s", what, evs);
    cr_assert_gt(faults_events_find(&h.ev, d, AREDIS_CONN_CONNECTED, 0), d,
                 "%s: no new connection after the broken one (events: %s)",
                 what, evs);

    faults_cmd *k = &h.cmds[i];
    cr_assert_eq(k->calls, 1);
    cr_assert_eq(k->type, AREDIS_REPLY_STATUS,
                 "%s: the waiting GET got type %d (%s: %s), not the next "
                 "connection's reply",
                 what, k->type, aredis_err_name(k->code), k->text);
    cr_assert_str_eq(k->text, "OK");
    cr_assert_eq(h.t.twice, 0);
    cr_assert_eq(h.t.null_replies, 0);
    cr_assert_eq(aredis_client_pending(h.c), 0);
    aredis_client_free(h.c);
    aredis_loop_free(h.loop);
    faults_fake_stop(&h.fake);
}

/* +OK is not what HELLO answers: taking it for RESP3 would leave the
 * client speaking a protocol the server never agreed to. */
Test(handshake, hello_answered_with_ok, .timeout = 30)
{
    broken_handshake("hello-ok", "+OK to HELLO");
}

/* A reply before HELLO's: it would pass for HELLO's, and HELLO's map for
 * the first user command's. */
Test(handshake, stray_reply_before_hello_reply, .timeout = 30)
{
    broken_handshake("stray-hello", "a stray reply before HELLO's");
}

/* A reply right behind HELLO's, read in the same turn: no user command had
 * been written, so it cannot belong to the one the handshake releases. */
Test(handshake, stray_reply_after_hello_reply, .timeout = 30)
{
    broken_handshake("hello-stray", "a stray reply after HELLO's");
}
