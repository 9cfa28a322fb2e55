/* Fault-test helpers (tests/support): see faults.h.
 *
 * Starts and stops the project's fault tools (fakeserver, faultproxy) and
 * private redis-server instances, and keeps the per-command records fault
 * tests assert on. Child processes die with the test process
 * (PR_SET_PDEATHSIG), and the servers with it too (the start script's
 * watchdog, AREDIS_TEST_OWNER_PID), so a test that fails or times out
 * leaves nothing behind. Test code only: never linked into the library.
 *
 * Paths come from compile definitions set in tests/CMakeLists.txt:
 * AREDIS_FAKESERVER, AREDIS_FAULTPROXY (the tools) and
 * AREDIS_TEST_SUPPORT_DIR (redis-server.sh and make-certs.sh). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* PR_SET_PDEATHSIG, mkdtemp */
#endif

#include "faults.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef AREDIS_FAKESERVER
#error "AREDIS_FAKESERVER must name the fakeserver executable"
#endif
#ifndef AREDIS_FAULTPROXY
#error "AREDIS_FAULTPROXY must name the faultproxy executable"
#endif
#ifndef AREDIS_TEST_SUPPORT_DIR
#error "AREDIS_TEST_SUPPORT_DIR must name tests/support"
#endif

/* Tools started by a test never outlive this, whatever the test does. */
#define FAULTS_TOOL_MAX_SECONDS "120"

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* ---- cleanup at exit ---------------------------------------------------- */

/* What this process started or created, so that a test stopped by a
 * failed assertion (Criterion then exits the test process normally) still
 * leaves no tool running and no directory behind. Servers need nothing
 * here: the start script's watchdog stops them when this process exits. */
enum { MAX_TRACKED = 32 };
static pid_t tracked_pids[MAX_TRACKED];
static char tracked_dirs[MAX_TRACKED][200];
static int cleanup_armed;

void faults_rmdir(const char *dir);

static void cleanup_at_exit(void)
{
    for (int i = 0; i < MAX_TRACKED; i++) {
        if (tracked_pids[i] > 0) {
            kill(tracked_pids[i], SIGKILL);
            waitpid(tracked_pids[i], NULL, 0);
            tracked_pids[i] = 0;
        }
    }
    for (int i = 0; i < MAX_TRACKED; i++) {
        if (tracked_dirs[i][0] != '\0') {
            char d[200];
            memcpy(d, tracked_dirs[i], sizeof d);
            faults_rmdir(d);
        }
    }
}

static void arm_cleanup(void)
{
    if (!cleanup_armed && atexit(cleanup_at_exit) == 0)
        cleanup_armed = 1;
}

static void track_pid(pid_t pid, int on)
{
    arm_cleanup();
    for (int i = 0; i < MAX_TRACKED; i++) {
        if (on && tracked_pids[i] == 0) {
            tracked_pids[i] = pid;
            return;
        }
        if (!on && tracked_pids[i] == pid) {
            tracked_pids[i] = 0;
            return;
        }
    }
}

static void track_dir(const char *dir, int on)
{
    arm_cleanup();
    for (int i = 0; i < MAX_TRACKED; i++) {
        if (on && tracked_dirs[i][0] == '\0') {
            snprintf(tracked_dirs[i], sizeof tracked_dirs[i], "%s", dir);
            return;
        }
        if (!on && strcmp(tracked_dirs[i], dir) == 0) {
            tracked_dirs[i][0] = '\0';
            return;
        }
    }
}

/* ---- files and directories ---------------------------------------------- */

static const char *tmpdir(void)
{
    const char *t = getenv("TMPDIR");
    return t != NULL && *t != '\0' ? t : "/tmp";
}

static int make_dir(char *dir, size_t cap, const char *tag)
{
    if ((size_t)snprintf(dir, cap, "%s/aredis-%s.XXXXXX", tmpdir(), tag) >=
        cap) {
        testenv_set_err("temporary directory name too long");
        return -1;
    }
    if (mkdtemp(dir) == NULL) {
        testenv_set_err("mkdtemp %s: %s", dir, strerror(errno));
        dir[0] = '\0';
        return -1;
    }
    track_dir(dir, 1);
    return 0;
}

/* Remove a directory and the plain files in it (the tools and make-certs.sh
 * create no subdirectories). */
void faults_rmdir(const char *dir)
{
    if (dir == NULL || dir[0] == '\0')
        return;
    track_dir(dir, 0);
    DIR *d = opendir(dir);
    if (d != NULL) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            char p[512];
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
        closedir(d);
    }
    rmdir(dir);
}

/* Read a port number that a tool writes (atomically) into path. */
static int read_port(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    int port = -1;
    if (fscanf(f, "%d", &port) != 1)
        port = -1;
    fclose(f);
    return port;
}

/* The last bytes of a tool's stderr log, for error messages. */
static void log_tail(const char *dir, char *out, size_t cap)
{
    char p[512];
    snprintf(p, sizeof p, "%s/stderr.log", dir);
    out[0] = '\0';
    FILE *f = fopen(p, "r");
    if (f == NULL)
        return;
    if (fseek(f, -(long)(cap - 1), SEEK_END) != 0)
        rewind(f);
    size_t n = fread(out, 1, cap - 1, f);
    out[n] = '\0';
    fclose(f);
}

/* ---- child processes ---------------------------------------------------- */

/* fork/exec argv with stdin and stdout on /dev/null, stderr on
 * dir/stderr.log. The child gets SIGKILL when this process dies. */
static pid_t spawn(const char *dir, char *const argv[])
{
    pid_t parent = getpid();
    char logp[512];
    snprintf(logp, sizeof logp, "%s/stderr.log", dir);
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        testenv_set_err("fork: %s", strerror(errno));
        return -1;
    }
    if (pid > 0) {
        track_pid(pid, 1);
        return pid;
    }

    /* Child: only async-signal-safe calls until exec. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(127); /* the parent died before prctl took effect */
    int devnull = open("/dev/null", O_RDWR);
    int log = open(logp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (devnull >= 0) {
        dup2(devnull, 0);
        dup2(devnull, 1);
    }
    if (log >= 0)
        dup2(log, 2);
    /* No socket of the test (the client's connections) may stay open in
     * the tool: a killed connection must really close. */
    for (int fd = 3; fd < 4096; fd++)
        close(fd);
    execv(argv[0], argv);
    _exit(127);
}

/* Wait until the tool has written its port file; -1 if it died or took
 * longer than 5 s. */
static int wait_port_file(pid_t pid, const char *dir, const char *file,
                          const char *what)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    int64_t deadline = testenv_now_ms() + 5000;
    for (;;) {
        int port = read_port(path);
        if (port > 0)
            return port;
        int st = 0;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            char tail[600];
            log_tail(dir, tail, sizeof tail);
            testenv_set_err("%s exited during start-up (status %d): %s", what,
                            st, tail);
            return -1;
        }
        if (testenv_now_ms() > deadline) {
            testenv_set_err("%s did not write %s within 5 s", what, path);
            return -1;
        }
        sleep_ms(5);
    }
}

/* TERM, wait up to 2 s, then KILL; always reaps. */
static void stop_child(pid_t *pid)
{
    if (*pid <= 0)
        return;
    kill(*pid, SIGTERM);
    int64_t deadline = testenv_now_ms() + 2000;
    int st;
    while (waitpid(*pid, &st, WNOHANG) == 0) {
        if (testenv_now_ms() > deadline) {
            kill(*pid, SIGKILL);
            waitpid(*pid, &st, 0);
            break;
        }
        sleep_ms(5);
    }
    track_pid(*pid, 0);
    *pid = 0;
}

int faults_fake_start(faults_fake *f, const char *script,
                      const char *const *extra)
{
    memset(f, 0, sizeof *f);
    if (make_dir(f->dir, sizeof f->dir, "fake") != 0)
        return -1;
    char portfile[512];
    snprintf(portfile, sizeof portfile, "%s/port", f->dir);
    const char *argv[32] = {
        AREDIS_FAKESERVER, "--port-file",          portfile, "--script", script,
        "--max-seconds",   FAULTS_TOOL_MAX_SECONDS};
    int n = 7;
    for (int i = 0; extra != NULL && extra[i] != NULL && n < 31; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    f->pid = spawn(f->dir, (char *const *)argv);
    if (f->pid < 0) {
        faults_rmdir(f->dir);
        return -1;
    }
    f->port = wait_port_file(f->pid, f->dir, "port", "fakeserver");
    if (f->port < 0) {
        faults_fake_stop(f);
        return -1;
    }
    return 0;
}

void faults_fake_stop(faults_fake *f)
{
    stop_child(&f->pid);
    faults_rmdir(f->dir);
    f->dir[0] = '\0';
}

int faults_proxy_start(faults_proxy *p, int target_port)
{
    memset(p, 0, sizeof *p);
    if (make_dir(p->dir, sizeof p->dir, "proxy") != 0)
        return -1;
    char lf[512], cf[512], target[64];
    snprintf(lf, sizeof lf, "%s/listen", p->dir);
    snprintf(cf, sizeof cf, "%s/control", p->dir);
    snprintf(target, sizeof target, "127.0.0.1:%d", target_port);
    const char *argv[] = {AREDIS_FAULTPROXY,
                          "--listen-port-file",
                          lf,
                          "--control-port-file",
                          cf,
                          "--target",
                          target,
                          "--max-seconds",
                          FAULTS_TOOL_MAX_SECONDS,
                          NULL};
    p->pid = spawn(p->dir, (char *const *)argv);
    if (p->pid < 0) {
        faults_rmdir(p->dir);
        return -1;
    }
    /* The listen file is written last: when it is there, both ports are. */
    p->port = wait_port_file(p->pid, p->dir, "listen", "faultproxy");
    p->control_port = p->port > 0 ? read_port(cf) : -1;
    if (p->port < 0 || p->control_port < 0) {
        if (p->port > 0)
            testenv_set_err("faultproxy wrote no control port");
        faults_proxy_stop(p);
        return -1;
    }
    return 0;
}

int faults_proxy_ctl(faults_proxy *p, const char *line, char *reply, size_t cap)
{
    char buf[512];
    size_t got = 0;
    testenv_server s;
    memset(&s, 0, sizeof s);
    snprintf(s.host, sizeof s.host, "127.0.0.1");
    s.port = p->control_port;
    testenv_conn c;
    if (testenv_connect(&c, &s) != 0) {
        testenv_set_err("proxy control: %s", testenv_errstr());
        return -1;
    }
    c.timeout_ms = 5000;
    char msg[300];
    int n = snprintf(msg, sizeof msg, "%s\n", line);
    int rc = -1;
    if (testenv_send(&c, msg, (size_t)n) != 0) {
        testenv_set_err("proxy control: %s", testenv_errstr());
        goto done;
    }
    /* One reply line. */
    while (got < sizeof buf - 1 && memchr(buf, '\n', got) == NULL) {
        size_t k = 0;
        if (testenv_recv(&c, buf + got, sizeof buf - 1 - got, &k) != 0) {
            testenv_set_err("proxy control: %s", testenv_errstr());
            goto done;
        }
        got += k;
    }
    buf[got] = '\0';
    buf[strcspn(buf, "\r\n")] = '\0';
    if (reply != NULL && cap > 0)
        snprintf(reply, cap, "%s", buf);
    if (strncmp(buf, "OK", 2) == 0)
        rc = 0;
    else
        testenv_set_err("proxy control '%s': %s", line, buf);
done:
    testenv_close(&c);
    return rc;
}

void faults_proxy_stop(faults_proxy *p)
{
    stop_child(&p->pid);
    faults_rmdir(p->dir);
    p->dir[0] = '\0';
}

/* ---- private redis-server ----------------------------------------------- */

static void ensure_state_dir(void)
{
    /* Under CTest the tests' environment names the directory; run by hand,
     * a private one under TMPDIR will do. */
    if (getenv("AREDIS_TEST_STATE_DIR") == NULL) {
        char d[300];
        snprintf(d, sizeof d, "%s/aredis-faults-state-%ld", tmpdir(),
                 (long)getpid());
        if (mkdir(d, 0700) == 0)
            track_dir(d, 1);
        setenv("AREDIS_TEST_STATE_DIR", d, 1);
    }
}

static int server_start_named(faults_server *fs, int port)
{
    char args[1200];
    if (port > 0)
        snprintf(args, sizeof args, "%s %s %d", fs->extra,
                 fs->tls ? "--tls-port" : "--port", port);
    else
        snprintf(args, sizeof args, "%s", fs->extra);
    if (testenv_script("start", fs->name, args) != 0)
        return -1;
    if (testenv_server_load(&fs->s, fs->name) != 0) {
        testenv_script("stop", fs->name, NULL);
        return -1;
    }
    /* The state file holds the port the script picked; the extra argument
     * above overrode it. */
    if (port > 0)
        fs->s.port = port;
    fs->running = 1;
    return 0;
}

int faults_server_start(faults_server *fs, const char *tag, const char *extra,
                        int port, int tls)
{
    memset(fs, 0, sizeof *fs);
    ensure_state_dir();
    snprintf(fs->base, sizeof fs->base, "faults-%s-%ld", tag, (long)getpid());
    snprintf(fs->name, sizeof fs->name, "%s", fs->base);
    snprintf(fs->extra, sizeof fs->extra, "%s", extra != NULL ? extra : "");
    fs->tls = tls;
    return server_start_named(fs, port);
}

static int server_signal(faults_server *fs, int sig)
{
    if (!fs->running || fs->s.pid <= 0) {
        testenv_set_err("server %s is not running", fs->name);
        return -1;
    }
    if (kill((pid_t)fs->s.pid, sig) != 0) {
        testenv_set_err("kill(%ld, %d): %s", fs->s.pid, sig, strerror(errno));
        return -1;
    }
    return 0;
}

int faults_server_pause(faults_server *fs)
{
    return server_signal(fs, SIGSTOP);
}

int faults_server_resume(faults_server *fs)
{
    return server_signal(fs, SIGCONT);
}

/* Gone, or a zombie: an orphaned server is reaped by init only later. */
static int proc_gone(long pid)
{
    char p[64], buf[512];
    snprintf(p, sizeof p, "/proc/%ld/stat", pid);
    FILE *f = fopen(p, "r");
    if (f == NULL)
        return 1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *rp = strrchr(buf, ')');
    return rp != NULL && (rp[2] == 'Z' || rp[2] == 'X');
}

int faults_server_kill9(faults_server *fs)
{
    if (server_signal(fs, SIGKILL) != 0)
        return -1;
    int64_t deadline = testenv_now_ms() + 5000;
    while (!proc_gone(fs->s.pid)) {
        if (testenv_now_ms() > deadline) {
            testenv_set_err("pid %ld still alive 5 s after SIGKILL", fs->s.pid);
            return -1;
        }
        sleep_ms(2);
    }
    fs->running = 0;
    /* Stops the watchdog and removes the state file and directory. */
    return testenv_script("stop", fs->name, NULL);
}

int faults_server_restart(faults_server *fs)
{
    if (fs->running && faults_server_stop(fs) != 0)
        return -1;
    int port = fs->s.port;
    /* A new name, so nothing of the old instance (its watchdog tidying up)
     * can touch the new one's state. */
    fs->restarts++;
    snprintf(fs->name, sizeof fs->name, "%s-r%d", fs->base, fs->restarts);
    return server_start_named(fs, port);
}

int faults_server_stop(faults_server *fs)
{
    if (!fs->running)
        return 0;
    fs->running = 0;
    return testenv_script("stop", fs->name, NULL);
}

int faults_tls_dir(char *dir, size_t dircap, char *extra, size_t extracap)
{
    if (make_dir(dir, dircap, "faults-tls") != 0)
        return -1;
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "bash '%s/make-certs.sh' '%s' >'%s/make-certs.log' 2>&1",
             AREDIS_TEST_SUPPORT_DIR, dir, dir);
    if (system(cmd) != 0) {
        testenv_set_err("make-certs.sh %s failed", dir);
        faults_rmdir(dir);
        return -1;
    }
    /* TLS only: plain TCP off, the TLS port given per start. */
    snprintf(extra, extracap,
             "--port 0 --tls-port {port} --tls-cert-file %s/server.crt "
             "--tls-key-file %s/server.key --tls-ca-cert-file %s/ca.crt "
             "--tls-auth-clients no",
             dir, dir, dir);
    return 0;
}

/* ---- memory ------------------------------------------------------------- */

static long status_kb(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (f == NULL)
        return -1;
    char line[256];
    long v = -1;
    size_t klen = strlen(key);
    while (fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
            v = strtol(line + klen + 1, NULL, 10);
            break;
        }
    }
    fclose(f);
    return v;
}

long faults_rss_mark_kb(void)
{
    /* "5" resets the peak RSS to the current RSS (Linux 4.0+); without it
     * the measurement starts from the earlier peak, which only makes the
     * bound looser. */
    int fd = open("/proc/self/clear_refs", O_WRONLY);
    if (fd >= 0) {
        ssize_t w = write(fd, "5", 1);
        (void)w;
        close(fd);
    }
    long rss = status_kb("VmRSS");
    long hwm = status_kb("VmHWM");
    return hwm > rss ? hwm : rss;
}

long faults_rss_peak_kb(void)
{
    return status_kb("VmHWM");
}

/* ---- completion records ------------------------------------------------- */

void faults_track_init(faults_track *t, faults_cmd *cmds, int cap)
{
    memset(t, 0, sizeof *t);
    memset(cmds, 0, sizeof *cmds * (size_t)cap);
    t->cmds = cmds;
    t->cap = cap;
}

void faults_reply_cb(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    faults_cmd *k = ud;
    faults_track *t = k->t;
    if (r == NULL) {
        t->null_replies++;
        return;
    }
    if (++k->calls > 1) {
        t->twice++;
        return;
    }
    t->completed++;
    k->at_ms = testenv_now_ms();
    k->type = r->type;
    k->code = r->type == AREDIS_REPLY_ERROR ? r->code : 0;
    if (r->type == AREDIS_REPLY_INTEGER)
        k->integer = r->integer;
    if ((r->type == AREDIS_REPLY_STRING || r->type == AREDIS_REPLY_STATUS ||
         r->type == AREDIS_REPLY_ERROR || r->type == AREDIS_REPLY_VERB) &&
        r->str != NULL)
        snprintf(k->text, sizeof k->text, "%.*s",
                 (int)(r->len < sizeof k->text ? r->len : sizeof k->text - 1),
                 r->str);
    if (r->type == AREDIS_REPLY_ERROR) {
        t->errors++;
        int i = -k->code;
        t->codes[i > 0 && i < 64 ? i : 0]++;
    } else {
        t->ok++;
        t->last_ok_ms = k->at_ms;
    }
}

int faults_send(faults_track *t, aredis_client *c, const aredis_cmd_opts *o,
                const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = faults_vsend(t, c, o, fmt, ap);
    va_end(ap);
    return rc;
}

int faults_vsend(faults_track *t, aredis_client *c, const aredis_cmd_opts *o,
                 const char *fmt, va_list ap)
{
    if (t->sent >= t->cap)
        return AREDIS_EINVAL;
    char line[1024];
    vsnprintf(line, sizeof line, fmt, ap);
    faults_cmd *k = &t->cmds[t->sent];
    memset(k, 0, sizeof *k);
    snprintf(k->cmd, sizeof k->cmd, "%.47s", line);
    const char *argv[16];
    int argc = 0;
    for (char *p = line; *p != '\0' && argc < 16;) {
        while (*p == ' ')
            *p++ = '\0';
        if (*p == '\0')
            break;
        argv[argc++] = p;
        while (*p != '\0' && *p != ' ')
            p++;
    }
    k->t = t;
    k->idx = t->sent;
    int rc = aredis_commandv_opts(c, o, faults_reply_cb, k, argc, argv, NULL);
    if (rc != 0)
        return rc;
    return t->sent++;
}

void faults_track_pending_str(const faults_track *t, char *buf, size_t cap)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < t->sent && used + 1 < cap; i++) {
        if (t->cmds[i].calls != 0)
            continue;
        int n = snprintf(buf + used, cap - used, "%s%d (%s)", used ? ", " : "",
                         i, t->cmds[i].cmd);
        if (n < 0)
            break;
        used += (size_t)n;
    }
}

int faults_sendv(faults_track *t, aredis_client *c, const aredis_cmd_opts *o,
                 int argc, const char *const *argv, const size_t *argvlen)
{
    if (t->sent >= t->cap)
        return AREDIS_EINVAL;
    faults_cmd *k = &t->cmds[t->sent];
    memset(k, 0, sizeof *k);
    size_t used = 0;
    for (int i = 0; i < argc && used + 1 < sizeof k->cmd; i++) {
        size_t n = argvlen != NULL ? argvlen[i] : strlen(argv[i]);
        int w = snprintf(k->cmd + used, sizeof k->cmd - used, "%s%.*s",
                         i ? " " : "", (int)(n > 16 ? 16 : n), argv[i]);
        if (w < 0)
            break;
        used += (size_t)w;
    }
    k->t = t;
    k->idx = t->sent;
    int rc =
        aredis_commandv_opts(c, o, faults_reply_cb, k, argc, argv, argvlen);
    if (rc != 0)
        return rc;
    return t->sent++;
}

int faults_track_done(const faults_track *t)
{
    return t->completed >= t->sent;
}

void faults_track_errors(const faults_track *t, char *buf, size_t cap)
{
    size_t used = 0;
    used += (size_t)snprintf(buf, cap, "{");
    int first = 1;
    for (int i = 0; i < 64 && used < cap; i++) {
        if (t->codes[i] == 0)
            continue;
        const char *name = i == 0 ? "OTHER" : aredis_err_name(-i);
        if (strncmp(name, "AREDIS_", 7) == 0)
            name += 7;
        used += (size_t)snprintf(buf + used, cap - used, "%s%s:%d",
                                 first ? "" : ",", name, t->codes[i]);
        first = 0;
    }
    if (used < cap)
        snprintf(buf + used, cap - used, "}");
}

void faults_summary(const char *name, const faults_track *t,
                    int64_t recovered_ms)
{
    char errs[512];
    faults_track_errors(t, errs, sizeof errs);
    if (recovered_ms >= 0)
        fprintf(stderr,
                "FAULT %s: sent=%d completed=%d errors=%s "
                "recovered_ms=%lld\n",
                name, t->sent, t->completed, errs, (long long)recovered_ms);
    else
        fprintf(stderr,
                "FAULT %s: sent=%d completed=%d errors=%s "
                "recovered_ms=none\n",
                name, t->sent, t->completed, errs);
}

/* ---- connection events -------------------------------------------------- */

void faults_event_cb(aredis_client *c, const aredis_conn_event *ev, void *ud)
{
    (void)c;
    faults_events *e = ud;
    if (ev == NULL)
        return;
    if (e->n == FAULTS_MAX_EVENTS) {
        e->dropped++;
        return;
    }
    e->ev[e->n].type = ev->type;
    e->ev[e->n].code = ev->code;
    e->ev[e->n].attempt = ev->attempt;
    e->ev[e->n].exclusive = ev->exclusive;
    e->ev[e->n].delay_ms = ev->delay_ms;
    e->ev[e->n].at_ms = testenv_now_ms();
    snprintf(e->ev[e->n].msg, sizeof e->ev[e->n].msg, "%s",
             ev->msg != NULL ? ev->msg : "");
    e->n++;
}

int faults_events_find(const faults_events *e, int from, int type,
                       int exclusive)
{
    for (int i = from < 0 ? 0 : from; i < e->n; i++)
        if (e->ev[i].type == type && (e->ev[i].exclusive != 0) == exclusive)
            return i;
    return -1;
}

void faults_events_str(const faults_events *e, char *buf, size_t cap)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < e->n && used < cap; i++) {
        const char *sep = i ? "," : "";
        const char *x = e->ev[i].exclusive ? "x:" : "";
        int w;
        switch (e->ev[i].type) {
        case AREDIS_CONN_CONNECTED:
            w = snprintf(buf + used, cap - used, "%s%sCONNECTED", sep, x);
            break;
        case AREDIS_CONN_DISCONNECTED:
            w = snprintf(buf + used, cap - used, "%s%sDISCONNECTED(%s: %s)",
                         sep, x, aredis_err_name(e->ev[i].code) + 7,
                         e->ev[i].msg);
            break;
        case AREDIS_CONN_RECONNECTING:
            w = snprintf(buf + used, cap - used, "%s%sRECONNECTING(%d,%lldms)",
                         sep, x, e->ev[i].attempt,
                         (long long)e->ev[i].delay_ms);
            break;
        default:
            w = snprintf(buf + used, cap - used, "%s%s?%d", sep, x,
                         e->ev[i].type);
        }
        if (w < 0)
            break;
        used += (size_t)w;
    }
}

/* ---- the client under test ---------------------------------------------- */

aredis_client *faults_client_new(aredis_loop **loop, int port, aredis_options o,
                                 faults_events *ev)
{
    *loop = aredis_loop_new();
    if (*loop == NULL) {
        testenv_set_err("aredis_loop_new failed");
        return NULL;
    }
    o.host = "127.0.0.1";
    o.port = port;
    aredis_status st;
    aredis_client *c = aredis_client_new(*loop, &o, &st);
    if (c == NULL) {
        testenv_set_err("aredis_client_new: %s", st.msg);
        aredis_loop_free(*loop);
        *loop = NULL;
        return NULL;
    }
    if (ev != NULL)
        aredis_client_set_event_handler(c, faults_event_cb, ev);
    return c;
}

/* ---- driving the loop --------------------------------------------------- */

int faults_run_until(aredis_loop *loop, int (*pred)(const void *),
                     const void *arg, int timeout_ms)
{
    int64_t deadline = testenv_now_ms() + timeout_ms;
    while (!pred(arg)) {
        int64_t left = deadline - testenv_now_ms();
        if (left <= 0)
            return pred(arg);
        aredis_loop_run_once(loop, left < 10 ? (int)left : 10);
    }
    return 1;
}

static int never(const void *arg)
{
    (void)arg;
    return 0;
}

void faults_run_for(aredis_loop *loop, int ms)
{
    faults_run_until(loop, never, NULL, ms);
}

static int track_done_pred(const void *arg)
{
    return faults_track_done(arg);
}

int faults_wait_track(aredis_loop *loop, const faults_track *t, int timeout_ms)
{
    return faults_run_until(loop, track_done_pred, t, timeout_ms);
}
