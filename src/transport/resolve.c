/* Name resolution off the loop thread (transport layer).
 *
 * getaddrinfo() blocks, sometimes for seconds, so a host name is resolved
 * on a short-lived detached thread that wakes the loop when it is done.
 * An address literal needs no lookup: it completes through a deferred call,
 * with no thread, but still from the loop and never inside the call that
 * started it.
 *
 * Lifetime: the request is shared by the resolver thread and the loop, and
 * each holds a reference under the request's mutex; whoever drops the last
 * one frees it. Cancelling therefore never waits for a lookup to end: the
 * thread finds the request cancelled and just lets go of it. The thread
 * touches nothing but the request and the loop's thread-safe wake. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "aredis/error.h"
#include "loop/loop.h"
#include "transport/transport.h"
#include "util/alloc.h"

struct aredis__resolve {
    aredis_loop *loop;
    aredis__resolve_cb cb;
    void *arg;
    char *host;
    char port[8];

    /* Loop thread only. */
    aredis__defer defer;
    void *wake; /* the wake source (names only) */
    int in_cb;  /* the callback is running */

    /* Result: written by the thread before it wakes the loop, read by the
     * loop after (the mutex orders the two). */
    struct addrinfo *res; /* from getaddrinfo(), freed with freeaddrinfo() */
    int gai_err, sys_err;

    /* A literal's single address, built in place. */
    struct addrinfo lit;
    struct sockaddr_storage lit_addr;

    pthread_mutex_t mu; /* guards refs and cancelled */
    int refs;
    int cancelled;
    int threaded;
};

static void req_free(aredis__resolve *r)
{
    if (r->res != NULL)
        freeaddrinfo(r->res);
    if (r->threaded)
        pthread_mutex_destroy(&r->mu);
    aredis__free(r->host);
    aredis__free(r);
}

/* Drop one reference; the last one frees. */
static void req_unref(aredis__resolve *r)
{
    pthread_mutex_lock(&r->mu);
    int last = --r->refs == 0;
    pthread_mutex_unlock(&r->mu);
    if (last)
        req_free(r);
}

/* Run the callback on the loop thread, then release the loop's hold. */
static void complete(void *arg)
{
    aredis__resolve *r = arg;
    char msg[256];
    const struct addrinfo *ai = NULL;
    int status = 0;

    if (r->wake != NULL) {
        aredis__loop_wake_stop(r->loop, r->wake);
        r->wake = NULL;
    }
    int gai_err = 0, sys_err = 0;
    if (r->threaded) {
        /* The wake is a system call, not a C11 synchronisation: the mutex
         * makes the thread's writes visible here. */
        pthread_mutex_lock(&r->mu);
        ai = r->res;
        gai_err = r->gai_err;
        sys_err = r->sys_err;
        pthread_mutex_unlock(&r->mu);
    } else {
        ai = &r->lit;
    }
    if (gai_err != 0 || ai == NULL) {
        const char *why = gai_err == 0            ? "no addresses"
                          : gai_err == EAI_SYSTEM ? strerror(sys_err)
                                                  : gai_strerror(gai_err);
        snprintf(msg, sizeof msg, "resolve %s: %s", r->host, why);
        status = AREDIS_ERESOLVE;
        ai = NULL;
    }
    r->in_cb = 1;
    r->cb(r->arg, status, ai, status ? msg : NULL);
    r->in_cb = 0;
    if (r->threaded)
        req_unref(r);
    else
        req_free(r);
}

/* The wake callback runs inside the loop's dispatch of this very wake
 * source; the real completion is deferred so that stopping the source
 * happens outside of it. */
static void on_wake(void *arg)
{
    aredis__resolve *r = arg;
    aredis__loop_defer(r->loop, &r->defer, complete, r);
}

static void *resolver_thread(void *arg)
{
    aredis__resolve *r = arg;
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    /* No AI_ADDRCONFIG: on a host whose only interface is loopback it
     * hides "localhost"'s addresses, which is exactly the test setup and
     * many containers. */
    hints.ai_flags = AI_NUMERICSERV;
    int rc = getaddrinfo(r->host, r->port, &hints, &res);
    int e = errno;

    pthread_mutex_lock(&r->mu);
    r->res = res;
    r->gai_err = rc;
    r->sys_err = e;
    /* Waking under the mutex: cancel() takes it before it stops the wake
     * source, so the source cannot be stopped while we use it. */
    if (!r->cancelled)
        aredis__loop_wake(r->loop, r->wake);
    int last = --r->refs == 0;
    pthread_mutex_unlock(&r->mu);
    if (last)
        req_free(r);
    return NULL;
}

int aredis__resolve_literal(const char *host, int port,
                            struct sockaddr_storage *ss, socklen_t *len)
{
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
    memset(ss, 0, sizeof *ss);
    if (host == NULL || port < 0 || port > 65535)
        return 0;
    if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        *len = sizeof *s4;
    } else if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        *len = sizeof *s6;
    } else {
        return 0;
    }
    return 1;
}

/* Fill r->lit when host is an IPv4 or IPv6 literal; 1 if so. */
static int parse_literal(aredis__resolve *r, const char *host, int port)
{
    socklen_t len = 0;
    memset(&r->lit, 0, sizeof r->lit);
    if (!aredis__resolve_literal(host, port, &r->lit_addr, &len))
        return 0;
    r->lit.ai_family = r->lit_addr.ss_family;
    r->lit.ai_addrlen = len;
    r->lit.ai_socktype = SOCK_STREAM;
    r->lit.ai_protocol = IPPROTO_TCP;
    r->lit.ai_addr = (struct sockaddr *)&r->lit_addr;
    return 1;
}

/* Start the lookup thread with every signal blocked, so the program's
 * signals keep going to its own threads. */
static int start_thread(aredis__resolve *r)
{
    pthread_attr_t attr;
    pthread_t tid;
    sigset_t all, old;
    if (pthread_attr_init(&attr) != 0)
        return AREDIS_ENOMEM;
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&tid, &attr, resolver_thread, r);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    return rc == 0 ? 0 : rc == EAGAIN ? AREDIS_ENOMEM : AREDIS_EIO;
}

int aredis__resolve_start(aredis_loop *loop, const char *host, int port,
                          aredis__resolve_cb cb, void *arg,
                          aredis__resolve **out)
{
    *out = NULL;
    if (loop == NULL || host == NULL || cb == NULL || port < 0 || port > 65535)
        return AREDIS_EINVAL;
    aredis__resolve *r = aredis__calloc(1, sizeof *r);
    if (r == NULL)
        return AREDIS_ENOMEM;
    r->loop = loop;
    r->cb = cb;
    r->arg = arg;
    snprintf(r->port, sizeof r->port, "%d", port);

    if (parse_literal(r, host, port)) {
        aredis__loop_defer(loop, &r->defer, complete, r);
        *out = r;
        return 0;
    }

    int rc = AREDIS_ENOMEM;
    r->host = aredis__strndup(host, strlen(host));
    if (r->host == NULL)
        goto fail;
    if (pthread_mutex_init(&r->mu, NULL) != 0)
        goto fail;
    r->threaded = 1;
    if ((rc = aredis__loop_wake_start(loop, on_wake, r, &r->wake)) != 0)
        goto fail;
    r->refs = 2; /* the loop's and the thread's */
    if ((rc = start_thread(r)) != 0) {
        aredis__loop_wake_stop(loop, r->wake);
        goto fail;
    }
    *out = r;
    return 0;
fail:
    r->res = NULL;
    req_free(r);
    return rc;
}

void aredis__resolve_cancel(aredis__resolve *r)
{
    if (r == NULL)
        return;
    if (r->in_cb) {
        /* Cancelling from its own callback: the callback has run, and the
         * request goes when it returns. */
        return;
    }
    aredis__loop_undefer(r->loop, &r->defer);
    if (!r->threaded) {
        req_free(r);
        return;
    }
    pthread_mutex_lock(&r->mu);
    r->cancelled = 1;
    pthread_mutex_unlock(&r->mu);
    /* From here the thread will not wake the loop, and stopping the wake
     * source means a wake already sent is not delivered either. */
    if (r->wake != NULL) {
        aredis__loop_wake_stop(r->loop, r->wake);
        r->wake = NULL;
    }
    req_unref(r);
}
