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

static void fail_msg(aredis_client *c, aredis__ts_msg *m, int code,
                     const char *why)
{
    if (m->cb == NULL)
        return;
    aredis_reply r = aredis__error_reply(code, why);
    AREDIS__USER_CB(c, m->cb(c, &r, m->ud));
}

static aredis__ts_msg *take(aredis_client *c)
{
    pthread_mutex_lock(&c->ts_lock);
    aredis__ts_msg *m = c->ts_head;
    c->ts_head = c->ts_tail = NULL;
    pthread_mutex_unlock(&c->ts_lock);
    return m;
}

static void on_wake(void *arg)
{
    aredis_client *c = arg;
    aredis__ts_msg *m = take(c);
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

int aredis__ts_init(aredis_client *c)
{
    if (pthread_mutex_init(&c->ts_lock, NULL) != 0)
        return AREDIS_ENOMEM;
    int e = aredis__loop_wake_start(c->loop, on_wake, c, &c->ts_wake);
    if (e != 0) {
        pthread_mutex_destroy(&c->ts_lock);
        return e;
    }
    c->ts_ready = 1;
    return 0;
}

void aredis__ts_drain(aredis_client *c)
{
    if (!c->ts_ready)
        return;
    aredis__ts_msg *m = take(c);
    while (m != NULL) {
        aredis__ts_msg *next = m->next;
        fail_msg(c, m, AREDIS_ECANCELED, "canceled: the client was freed");
        aredis__free(m);
        m = next;
    }
}

void aredis__ts_cleanup(aredis_client *c)
{
    if (!c->ts_ready)
        return;
    /* Under the lock, so a submitting thread never wakes a stopped
     * source (it checks ts_closed under the same lock). */
    pthread_mutex_lock(&c->ts_lock);
    aredis__loop_wake_stop(c->loop, c->ts_wake);
    c->ts_wake = NULL;
    pthread_mutex_unlock(&c->ts_lock);
    pthread_mutex_destroy(&c->ts_lock);
    c->ts_ready = 0;
}

static int enqueue(aredis_client *c, aredis_reply_cb cb, void *ud,
                   aredis_buf *b)
{
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
    pthread_mutex_lock(&c->ts_lock);
    if (c->ts_closed) {
        pthread_mutex_unlock(&c->ts_lock);
        aredis__free(m);
        return AREDIS_ESTATE;
    }
    if (c->ts_tail)
        c->ts_tail->next = m;
    else
        c->ts_head = m;
    c->ts_tail = m;
    aredis__loop_wake(c->loop, c->ts_wake);
    pthread_mutex_unlock(&c->ts_lock);
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
