/* Test environment helpers for integration tests (tests/support).
 *
 * Integration tests talk to real servers that CTest fixtures start with
 * tests/support/redis-server.sh. This header gives them:
 *   - the server's address, read from the state file the script writes;
 *   - a tiny blocking loopback client: connect with a timeout, send bytes,
 *     and read replies into an aredis_reader, every call bounded by a
 *     deadline so that a test can fail but never hang.
 * It uses only the public protocol API (aredis_reader, aredis_buf) and
 * POSIX sockets; it is test code and never part of the library.
 *
 * Errors: functions return 0 (or 1 where documented) on success and -1 on
 * failure; testenv_errstr() then says what went wrong, in a sentence fit for
 * an assertion message. */
#ifndef AREDIS_TESTS_TESTENV_H
#define AREDIS_TESTS_TESTENV_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "aredis/export.h"
#include "aredis/resp.h"

/* Deadline of one connect, send or read call, unless a connection sets its
 * own timeout_ms. */
#define TESTENV_DEFAULT_TIMEOUT_MS 10000

/* A running server, as described by its state file. */
typedef struct testenv_server {
    char name[64];
    char host[64]; /* always a loopback address */
    int port;      /* TCP port, 0 when the server has none */
    long pid;
    char unixsocket[108]; /* "" when none */
    char dir[256];
    char log[300];
} testenv_server;

/* Load a fixture server's state.
 * name NULL: the test's own server, from the file named by the environment
 * variable AREDIS_TEST_STATE (CTest sets it from the test's first fixture).
 * Otherwise: $AREDIS_TEST_STATE_DIR/<name>.state, for tests that need more
 * than one server ("standalone", later "tls", "cluster"...).
 * A missing variable or file is an error (-1): a test must fail, not skip,
 * when the server it needs is not there. */
int testenv_server_load(testenv_server *s, const char *name);

/* A blocking connection. The reader belongs to it. */
typedef struct testenv_conn {
    int fd;
    aredis_reader *reader;
    /* Deadline for each call, in milliseconds; set after connecting to
     * change it. */
    int timeout_ms;
} testenv_conn;

/* Connect to s->host:s->port over TCP (testenv_connect) or to its unix
 * socket (testenv_connect_unix), within TESTENV_DEFAULT_TIMEOUT_MS, and
 * create the connection's reader with default limits.
 * On failure c->fd is -1 and nothing needs closing. */
int testenv_connect(testenv_conn *c, const testenv_server *s);
int testenv_connect_unix(testenv_conn *c, const testenv_server *s);

/* Close the socket and free the reader (and so every reply it returned).
 * Safe on a connection that failed to connect, and twice. */
void testenv_close(testenv_conn *c);

/* Send all len bytes, or fail at the deadline or on a socket error. */
int testenv_send(testenv_conn *c, const void *data, size_t len);

/* Receive raw bytes, bypassing the connection's reader: waits until at
 * least one byte arrives and stores up to cap bytes in buf, *n their count.
 * End of stream before the deadline is an error. */
int testenv_recv(testenv_conn *c, char *buf, size_t cap, size_t *n);

/* Read the next complete reply into the connection's reader, reading
 * straight into its buffer (aredis_reader_prepare/commit). *out is borrowed
 * from the reader: valid until the next call that uses this connection.
 * Fails on a reader error (see testenv_errstr()), end of stream or the
 * deadline. */
int testenv_read_reply(testenv_conn *c, const aredis_reply **out);

/* Encode one command with aredis_write_fmt() (aredis_write_vfmt()) or
 * aredis_write_argv(), send it and read its reply (as
 * testenv_read_reply()). */
int testenv_command(testenv_conn *c, const aredis_reply **out, const char *fmt,
                    ...);
int testenv_vcommand(testenv_conn *c, const aredis_reply **out, const char *fmt,
                     va_list ap);
int testenv_commandv(testenv_conn *c, const aredis_reply **out, int argc,
                     const char *const *argv, const size_t *argvlen);

/* The last error, as a sentence; "" when none. Static storage, one per
 * thread (each Criterion test runs in its own process). */
const char *testenv_errstr(void);

/* Set that error (for the other support files: one error channel for all
 * of them). The arguments may be testenv_errstr() itself. */
void testenv_set_err(const char *fmt, ...) AREDIS_PRINTF(1, 2);

/* ---- fixtures shared by the integration tests ---------------------------
 */

/* A loopback TCP port that nothing listened on a moment ago (bound, noted,
 * released), or -1. */
int testenv_free_port(void);

/* A listening loopback TCP socket (the kernel completes connections into
 * its backlog; nobody reads or answers unless the caller does): its
 * descriptor, with its port in *port, or -1. The caller closes it. */
int testenv_listener(int *port);

/* "redis://127.0.0.1:<port>/<db>" into buf. Returns buf. */
char *testenv_url(char *buf, size_t cap, const testenv_server *s, int db);

/* Run tests/support/redis-server.sh <verb> <name> [args], owned by this
 * process (the script's watchdog stops a server whose owner exits: this
 * process, not the shell system() starts). On failure the error holds the
 * end of the script's output. */
int testenv_script(const char *verb, const char *name, const char *args);

/* Start a private redis-server through tests/support/redis-server.sh,
 * named "<tag>-<pid>" and owned by this process (the script's watchdog
 * stops it when the process exits, whatever happens), and load its state
 * into *s. extra: more redis-server arguments ("--port 7000", ...) or NULL.
 * For tests that kill, restart or reconfigure a server, which the shared
 * fixture servers must never be. */
int testenv_private_start(testenv_server *s, const char *tag,
                          const char *extra);

/* Stop a private server (by s->name) and remove its directory. */
int testenv_private_stop(const testenv_server *s);

/* The same for a private Redis Cluster (tests/support/redis-cluster.sh,
 * extra: e.g. "--primaries 2 --replicas 0"); *s is its first primary. */
int testenv_private_cluster_start(testenv_server *s, const char *tag,
                                  const char *extra);
int testenv_private_cluster_stop(const testenv_server *s);

/* The ports of a cluster's state file line key= ("nodes", "primaries",
 * "replicas"), "127.0.0.1:P1,127.0.0.1:P2,...", in order: their count
 * (at most max), or -1 when the file or the line is missing. */
int testenv_state_ports(const char *name, const char *key, int *ports, int max);

/* Milliseconds on the monotonic clock. */
int64_t testenv_now_ms(void);

/* Write a key name unique to this process into buf:
 * "aredis:test:<pid>:<suffix>". Returns buf. */
char *testenv_key(char *buf, size_t cap, const char *suffix);

#endif /* AREDIS_TESTS_TESTENV_H */
