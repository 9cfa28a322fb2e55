/* Fault-test helpers (tests/support): the processes a fault test drives, and
 * the bookkeeping that proves every command completed exactly once.
 *
 *   - faults_fake_*   the scripted hostile server (tests/support/fakeserver.c)
 *   - faults_proxy_*  the TCP fault proxy (tests/support/faultproxy.c)
 *   - faults_server_* a private redis-server started by
 *                     tests/support/redis-server.sh and owned by the calling
 *                     process: pause (SIGSTOP), resume, kill -9, restart on
 *                     the same port, stop
 *   - faults_track    per-command completion records and a reply callback
 *   - faults_events   a recorder for connection events
 *
 * Children are started with fork/exec and die with the test process
 * (PR_SET_PDEATHSIG) as well as by their own --max-seconds, so a crashed or
 * timed-out test leaves nothing running. Every wait has a deadline.
 * Functions return 0 on success and -1 on failure, with testenv_errstr()
 * saying why. Test code only; it uses the library's public API. */
#ifndef AREDIS_TESTS_FAULTS_H
#define AREDIS_TESTS_FAULTS_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "aredis/aredis.h"
#include "testenv.h"

/* Errors: testenv_errstr(). The clock: testenv_now_ms(). A free port:
 * testenv_free_port(). */

/* ---- child processes ------------------------------------------------------
 */

typedef struct faults_fake {
    pid_t pid;
    int port;
    char dir[200]; /* private directory: port file and the tool's stderr */
} faults_fake;

/* Start fakeserver with --script script, plus extra arguments (a NULL-
 * terminated list, or NULL), and wait until it listens (5 s at most). */
int faults_fake_start(faults_fake *f, const char *script,
                      const char *const *extra);
/* Stop it (TERM, then KILL) and remove its directory. Safe twice. */
void faults_fake_stop(faults_fake *f);

typedef struct faults_proxy {
    pid_t pid;
    int port;         /* clients connect here */
    int control_port; /* faults_proxy_ctl() talks to this */
    char dir[200];
} faults_proxy;

/* Start faultproxy in front of 127.0.0.1:target_port. */
int faults_proxy_start(faults_proxy *p, int target_port);
/* Send one control line, read the reply line into reply (may be NULL).
 * \return 0 when the reply starts with "OK", -1 otherwise. */
int faults_proxy_ctl(faults_proxy *p, const char *line, char *reply,
                     size_t cap);
void faults_proxy_stop(faults_proxy *p);

/* ---- private redis-server -------------------------------------------------
 */

typedef struct faults_server {
    char base[64];    /* name of the first start; restarts add -r<N> */
    char name[80];    /* name of the running instance (its state file) */
    char extra[1024]; /* extra redis-server arguments of every start */
    int tls;          /* the port is the TLS port (see faults_tls_extra) */
    int restarts;
    int running;
    testenv_server s; /* port, pid, dir... of the running instance */
} faults_server;

/* Start a private server named "faults-<tag>-<pid>"; port 0 lets the
 * script choose one, otherwise the server listens on that port. extra may
 * be NULL. tls: the port is a TLS port and extra carries the TLS set-up
 * (see faults_tls_dir). */
int faults_server_start(faults_server *fs, const char *tag, const char *extra,
                        int port, int tls);
/* SIGSTOP / SIGCONT. */
int faults_server_pause(faults_server *fs);
int faults_server_resume(faults_server *fs);
/* kill -9, wait until the process has gone, then tidy its state. */
int faults_server_kill9(faults_server *fs);
/* Start again on the same port, with the same extra arguments. */
int faults_server_restart(faults_server *fs);
/* Stop (graceful), tidy. Safe when not running. */
int faults_server_stop(faults_server *fs);

/* Make a private directory with test certificates (make-certs.sh): ca.crt,
 * server.crt/.key, client.crt/.key. faults_rmdir() removes it. The extra
 * arguments for a TLS-only server using them are written to extra. */
int faults_tls_dir(char *dir, size_t dircap, char *extra, size_t extracap);
void faults_rmdir(const char *dir);

/* ---- memory ----------------------------------------------------------------
 */

/* Start a peak-RSS measurement: resets the kernel's high-water mark where
 * it can (/proc/self/clear_refs) and returns the current RSS in KiB. */
long faults_rss_mark_kb(void);
/* Peak RSS (VmHWM) in KiB, or -1. */
long faults_rss_peak_kb(void);

/* ---- completion records ------------------------------------------------- */

typedef struct faults_track faults_track;

/* One submitted command. */
typedef struct faults_cmd {
    faults_track *t;
    int idx;
    int calls; /* callbacks run for it: must end at exactly 1 */
    int type;  /* reply type of the (first) callback */
    int code;  /* for errors: the aredis_err (ESERVER from the server) */
    long long integer;
    char cmd[48];   /* the command as sent, truncated (faults_send) */
    char text[160]; /* string/status/error text, truncated */
    int64_t at_ms;  /* when it completed */
} faults_cmd;

struct faults_track {
    faults_cmd *cmds;
    int cap;
    int sent;      /* submits that returned 0 */
    int completed; /* commands with at least one callback */
    int twice;     /* callbacks beyond the first, over all commands */
    int null_replies;
    int ok;             /* completed with a non-error reply */
    int errors;         /* completed with an error reply */
    int codes[64];      /* errors by -code (client codes and ESERVER) */
    int64_t last_ok_ms; /* time of the latest non-error completion */
};

void faults_track_init(faults_track *t, faults_cmd *cmds, int cap);

/* Submit a command through aredis_commandv_opts(): fmt is formatted with
 * vsnprintf into 1 KiB at most and split on spaces (so no argument may
 * contain one; use faults_sendv for big or binary values). o may be NULL.
 * \return the command's index, or the submit's negative error. */
int faults_send(faults_track *t, aredis_client *c, const aredis_cmd_opts *o,
                const char *fmt, ...) AREDIS_PRINTF(4, 5);
int faults_vsend(faults_track *t, aredis_client *c, const aredis_cmd_opts *o,
                 const char *fmt, va_list ap) AREDIS_PRINTF(4, 0);
/* The same with an argument vector (binary safe, any size; argvlen NULL
 * means strlen). */
int faults_sendv(faults_track *t, aredis_client *c, const aredis_cmd_opts *o,
                 int argc, const char *const *argv, const size_t *argvlen);

/* The reply callback faults_send() uses; ud is a faults_cmd. */
void faults_reply_cb(aredis_client *c, const aredis_reply *r, void *ud);

/* "3 (BLPOP a 5), 7 (GET b)": the commands still waiting. */
void faults_track_pending_str(const faults_track *t, char *buf, size_t cap);

/* Every command sent has completed. */
int faults_track_done(const faults_track *t);

/* "{ETIMEDOUT:3,EUNKNOWN:2}" (the AREDIS_ prefix dropped). */
void faults_track_errors(const faults_track *t, char *buf, size_t cap);

/* Print "FAULT <name>: sent=N completed=N errors={...} recovered_ms=T" to
 * stderr (recovered_ms < 0 prints "none"). */
void faults_summary(const char *name, const faults_track *t,
                    int64_t recovered_ms);

/* ---- connection events -------------------------------------------------- */

enum { FAULTS_MAX_EVENTS = 128 };

typedef struct faults_events {
    int n;
    int dropped; /* events beyond FAULTS_MAX_EVENTS */
    struct {
        int type, code, attempt, exclusive;
        int64_t delay_ms, at_ms;
        char msg[128];
    } ev[FAULTS_MAX_EVENTS];
} faults_events;

/* An aredis_conn_event_cb; ud is a faults_events. */
void faults_event_cb(aredis_client *c, const aredis_conn_event *ev, void *ud);

/* Index of the first event at or after `from` of that type on the shared
 * (exclusive 0) or an exclusive (1) connection, or -1. */
int faults_events_find(const faults_events *e, int from, int type,
                       int exclusive);

/* "CONNECTED,DISCONNECTED(ECLOSED),RECONNECTING(1,100ms),..." */
void faults_events_str(const faults_events *e, char *buf, size_t cap);

/* ---- the client under test ---------------------------------------------- */

/* A new built-in loop in *loop and on it a client of 127.0.0.1:port made
 * from o (host and port filled in), its connection events recorded into
 * ev (NULL: no handler). \return the client, or NULL with the reason in
 * testenv_errstr(), and nothing left to free. */
aredis_client *faults_client_new(aredis_loop **loop, int port, aredis_options o,
                                 faults_events *ev);

/* ---- driving the loop --------------------------------------------------- */

/* Run the loop until pred(arg) is true or timeout_ms passes.
 * \return pred's last value. */
int faults_run_until(aredis_loop *loop, int (*pred)(const void *),
                     const void *arg, int timeout_ms);
/* Run the loop for ms. */
void faults_run_for(aredis_loop *loop, int ms);
/* faults_run_until(faults_track_done). */
int faults_wait_track(aredis_loop *loop, const faults_track *t, int timeout_ms);

#endif /* AREDIS_TESTS_FAULTS_H */
