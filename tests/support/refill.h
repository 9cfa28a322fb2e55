/* The refill-from-callback driver for fault tests (tests/support).
 *
 * The most common asynchronous pattern keeps W commands in flight by
 * submitting the next command from each completion callback. A fault test
 * runs it beside its own client, on the same loop and through the same
 * fault, so every scenario also checks what that pattern needs:
 *
 *   - every command completes exactly once, with a non-NULL reply, and a
 *     successful reply is the one its command asked for;
 *   - the driver's client never has more than one connection on the
 *     server: a thread samples CLIENT LIST over a separate raw connection
 *     during the test (connections named after the driver's client, and
 *     connections with no name, which a half-set-up or leaked socket has),
 *     and refill_quiesce() checks it once more after the fault;
 *   - the loop does not spin while idle (aredis__loop_iterations() over an
 *     idle period);
 *   - aredis_loop_run() returns within a bound once the clients are freed.
 *
 * Submissions come from success callbacks, from failure callbacks and from
 * the connection event handler (on DISCONNECTED), which is where a
 * submission meets a link in the middle of being torn down. Successes are
 * paced (at most W refills per 5 ms slot, the rest topped up by a timer)
 * so a healthy server does not turn the test into a busy loop; failures
 * and events always submit at once, within a budget.
 *
 * Functions that check return 0, or -1 with a sentence in the caller's
 * buffer. Test code only. */
#ifndef AREDIS_TESTS_REFILL_H
#define AREDIS_TESTS_REFILL_H

#include <stddef.h>
#include <stdint.h>

#include "aredis/aredis.h"

typedef struct refill refill;

/* Start the driver: a client on loop made from *o (copied; host, port,
 * TLS, password, reconnect settings... as the test's own client has them)
 * whose client_name is replaced by a name unique to this driver, keeping
 * `window` commands in flight. observe_port > 0: a thread samples CLIENT
 * LIST on 127.0.0.1:observe_port (the server itself, not a proxy) every
 * 50 ms, authenticating with o->password if set; samples that cannot be taken
 * (server down, stopped, full) are skipped. Connections with no name that the
 * test itself opens to that server must be short, or named
 * (refill_name_conn()). \return the driver, or NULL with the reason in why. */
refill *refill_start(aredis_loop *loop, const aredis_options *o, int window,
                     int observe_port, char *why, size_t cap);

/* The name the driver's client gives its connections. */
const char *refill_client_name(const refill *r);

/* Stop submitting, let what is in flight complete (timeout_ms at most:
 * a server that is down may hold commands in a backoff; they stay), then:
 *   - count the loop's iterations over idle_ms with nothing to do and
 *     fail if they exceed max_iterations (only when everything drained);
 *   - take CLIENT LIST once more (retrying for up to 1 s while it shows
 *     more than one connection for the driver, or one with no name) and
 *     fail on what the sampling thread saw during the test.
 * The sampling thread is stopped. \return 0, or -1 and why. */
int refill_quiesce(refill *r, int timeout_ms, int idle_ms,
                   uint64_t max_iterations, char *why, size_t cap);

/* Free the driver's client (aredis_client_free). The loop still has to
 * run for its callbacks: see refill_run_loop(). */
void refill_free_client(refill *r);

/* Run aredis_loop_run(loop) and return how long it took in ms. If it has
 * not returned after abort_ms, print why and abort the process (the test
 * fails as crashed): a loop that never returns cannot be stopped from
 * outside. */
int64_t refill_run_loop(aredis_loop *loop, int abort_ms);

/* After the loop has run: every command submitted completed exactly
 * once, with a non-NULL reply, and every successful reply matched its
 * command. Prints one summary line ("REFILL <name>: ...") to stderr and
 * frees the driver, whatever the result. \return 0, or -1 and why. */
int refill_finish(refill *r, const char *name, char *why, size_t cap);

/* Give a raw connection opened to the observed server a name (CLIENT
 * SETNAME refill-admin) so that it does not count as a leaked one.
 * \return 0; 1 when the server refused (NOAUTH before AUTH: the
 * connection stays unnamed, so keep it short); -1 when the connection
 * failed (testenv_errstr() says why). */
struct testenv_conn;
int refill_name_conn(struct testenv_conn *a);

#endif /* AREDIS_TESTS_REFILL_H */
