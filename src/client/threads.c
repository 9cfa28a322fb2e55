/* Thread-safe submission (client layer): the one entry point other
 * threads may use. The command is encoded on the calling thread, handed
 * over through a mutex-protected queue, and the loop is woken; the loop
 * thread then submits it as if it had been called there, so the callback
 * runs on the loop thread (DESIGN.md decision 7). */
#include <stdio.h>
#include <string.h>

#include "aredis/error.h"
#include "client/client_int.h"
#include "resp/resp.h"
#include "util/alloc.h"

typedef struct aredis__ts_msg {
    struct aredis__ts_msg *next;
    aredis_reply_cb cb;
    void *ud;
    size_t len;
    char bytes[];
} aredis__ts_msg;

/* What the clients of one loop share for their thread-safe submissions:
 * one lock and one wake-up source, started by the loop's first client
 * and stopped with its last (a client costs no descriptor, wake handle
 * or mutex of its own), and the list of clients with messages waiting. */
typedef struct aredis__ts_hub {
    pthread_mutex_t lock;
    void *wake;
    aredis_loop *loop;
    aredis_client *ready; /* under lock: clients whose ts_head is set */
    size_t nready;        /* under lock */
    size_t refs;          /* clients using it (loop thread) */
} aredis__ts_hub;

static void fail_msg(aredis_client *c, aredis__ts_msg *m, int code,
                     const char *why)
{
    if (m->cb == NULL)
        return;
    aredis_reply r = aredis__error_reply(code, why);
    AREDIS__USER_CB(c, m->cb(c, &r, m->ud));
}

/* Under the hub's lock: take c off the ready list. */
static void unlist(aredis__ts_hub *h, aredis_client *c)
{
    if (!c->ts_listed)
        return;
    for (aredis_client **pp = &h->ready; *pp != NULL; pp = &(*pp)->ts_next)
        if (*pp == c) {
            *pp = c->ts_next;
            break;
        }
    c->ts_next = NULL;
    c->ts_listed = 0;
    h->nready--;
}

static aredis__ts_msg *take(aredis_client *c)
{
    aredis__ts_hub *h = c->ts_hub;
    pthread_mutex_lock(&h->lock);
    aredis__ts_msg *m = c->ts_head;
    c->ts_head = c->ts_tail = NULL;
    unlist(h, c);
    pthread_mutex_unlock(&h->lock);
    return m;
}

static void submit_all(aredis_client *c, aredis__ts_msg *m)
{
    while (m != NULL) {
        aredis__ts_msg *next = m->next;
        int e = c->freeing ? AREDIS_ECANCELED
                           : aredis__submit_encoded(c, NULL, m->cb, m->ud,
                                                    m->bytes, m->len);
        if (e != 0)
            fail_msg(c, m, e,
                     e == AREDIS_ECANCELED ? "canceled: the client was freed"
                                           : aredis_strerror(e));
        aredis__free(m);
        m = next;
    }
}

/* The clients listed when the wake-up ran, one at a time (a client freed
 * meanwhile takes itself off the list); any listed later wait for the
 * wake-up their submission caused. */
static void on_wake(void *arg)
{
    aredis__ts_hub *h = arg;
    pthread_mutex_lock(&h->lock);
    size_t budget = h->nready;
    pthread_mutex_unlock(&h->lock);
    for (; budget > 0; budget--) {
        pthread_mutex_lock(&h->lock);
        aredis_client *c = h->ready;
        aredis__ts_msg *m = NULL;
        if (c != NULL) {
            m = c->ts_head;
            c->ts_head = c->ts_tail = NULL;
            unlist(h, c);
        }
        pthread_mutex_unlock(&h->lock);
        if (c == NULL)
            break;
        submit_all(c, m);
    }
}

int aredis__ts_init(aredis_client *c)
{
    void **slot = aredis__loop_slot(c->loop, AREDIS__SLOT_TS);
    aredis__ts_hub *h = *slot;
    if (h == NULL) {
        h = aredis__calloc(1, sizeof *h);
        if (h == NULL)
            return AREDIS_ENOMEM;
        if (pthread_mutex_init(&h->lock, NULL) != 0) {
            aredis__free(h);
            return AREDIS_ENOMEM;
        }
        int e = aredis__loop_wake_start(c->loop, on_wake, h, &h->wake);
        if (e != 0) {
            pthread_mutex_destroy(&h->lock);
            aredis__free(h);
            return e;
        }
        h->loop = c->loop;
        *slot = h;
    }
    h->refs++;
    c->ts_hub = h;
    return 0;
}

void aredis__ts_drain(aredis_client *c)
{
    if (c->ts_hub == NULL)
        return;
    aredis__ts_msg *m = take(c);
    while (m != NULL) {
        aredis__ts_msg *next = m->next;
        fail_msg(c, m, AREDIS_ECANCELED, "canceled: the client was freed");
        aredis__free(m);
        m = next;
    }
}

void aredis__ts_close(aredis_client *c)
{
    if (c->ts_hub == NULL)
        return;
    pthread_mutex_lock(&c->ts_hub->lock);
    c->ts_closed = 1;
    pthread_mutex_unlock(&c->ts_hub->lock);
}

int aredis__ts_queued(aredis_client *c)
{
    if (c->ts_hub == NULL)
        return 0;
    pthread_mutex_lock(&c->ts_hub->lock);
    int queued = c->ts_head != NULL;
    pthread_mutex_unlock(&c->ts_hub->lock);
    return queued;
}

void *aredis__ts_wake(aredis_client *c)
{
    return c->ts_hub != NULL ? c->ts_hub->wake : NULL;
}

void aredis__ts_cleanup(aredis_client *c)
{
    aredis__ts_hub *h = c->ts_hub;
    if (h == NULL)
        return;
    pthread_mutex_lock(&h->lock);
    c->ts_closed = 1;
    unlist(h, c);
    pthread_mutex_unlock(&h->lock);
    c->ts_hub = NULL;
    if (--h->refs > 0)
        return;
    /* The last client: no thread may submit to any client of the loop
     * now (each is closed, or freed), so nothing wakes the source. */
    aredis__loop_wake_stop(h->loop, h->wake);
    pthread_mutex_destroy(&h->lock);
    *aredis__loop_slot(h->loop, AREDIS__SLOT_TS) = NULL;
    aredis__free(h);
}

static int enqueue(aredis_client *c, aredis_reply_cb cb, void *ud,
                   aredis_buf *b)
{
    if (c == NULL) {
        aredis_buf_cleanup(b);
        return AREDIS_EINVAL;
    }
    aredis__ts_msg *m = aredis__malloc(sizeof *m + b->len);
    if (m == NULL) {
        aredis_buf_cleanup(b);
        return AREDIS_ENOMEM;
    }
    m->next = NULL;
    m->cb = cb;
    m->ud = ud;
    m->len = b->len;
    memcpy(m->bytes, b->data, b->len);
    aredis_buf_cleanup(b);
    aredis__ts_hub *h = c->ts_hub;
    pthread_mutex_lock(&h->lock);
    if (c->ts_closed) {
        pthread_mutex_unlock(&h->lock);
        aredis__free(m);
        return AREDIS_ESTATE;
    }
    if (c->ts_tail)
        c->ts_tail->next = m;
    else
        c->ts_head = m;
    c->ts_tail = m;
    if (!c->ts_listed) {
        c->ts_listed = 1;
        c->ts_next = h->ready;
        h->ready = c;
        h->nready++;
    }
    aredis__loop_wake(h->loop, h->wake);
    pthread_mutex_unlock(&h->lock);
    return 0;
}

int aredis_command_ts(aredis_client *c, aredis_reply_cb cb, void *ud,
                      const char *fmt, ...)
{
    if (fmt == NULL)
        return AREDIS_EFORMAT;
    aredis_buf b;
    aredis_buf_init(&b);
    va_list ap;
    va_start(ap, fmt);
    int e = aredis_write_vfmt(&b, fmt, ap);
    va_end(ap);
    if (e != 0)
        return e;
    return enqueue(c, cb, ud, &b);
}

int aredis_commandv_ts(aredis_client *c, aredis_reply_cb cb, void *ud, int argc,
                       const char *const *argv, const size_t *argvlen)
{
    aredis_buf b;
    aredis_buf_init(&b);
    int e = aredis_write_argv(&b, argc, argv, argvlen);
    if (e != 0)
        return e;
    return enqueue(c, cb, ud, &b);
}
