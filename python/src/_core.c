/* aredis._core: the CPython extension over libaredis.
 *
 * Three parts: a loop adapter that lets the C client run on the running
 * asyncio loop (add_reader/add_writer for sockets, call_soon/call_later
 * for the one-shot timers, call_soon_threadsafe for wake-ups), so no thread
 * and no cross-thread hop stands between a command and its reply; the
 * conversion of replies into Python objects; and thin wrappers of the
 * client, the pipeline and the pubsub. Everything else (commands, response
 * callbacks, scripts, locks, the cache) is Python in the aredis package.
 *
 * Every function here runs on the loop's thread with the GIL held, except
 * the wake operation, which takes the GIL itself. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <aredis/aredis.h>

#include "future.h"

/* ------------------------------------------------------------------------
 * Module-wide objects
 * ------------------------------------------------------------------------ */

/* Set by configure(): int code -> exception class for client-side errors,
 * str prefix -> class for server errors; plus the two fallbacks. */
static PyObject *err_codes;
static PyObject *err_prefixes;
static PyObject *err_server_default;
static PyObject *err_client_default;

static PyObject *s_cancel, *s_is_running, *s_type, *s_pattern, *s_channel,
    *s_data;
static PyObject *kind_names[16];

/* ------------------------------------------------------------------------
 * Callables handed to the asyncio loop
 * ------------------------------------------------------------------------ */

typedef void (*fire_fn)(void *src, int arg);

typedef struct {
    PyObject_HEAD vectorcallfunc vectorcall;
    fire_fn fire;
    void *src; /* NULL once the source is stopped: calls do nothing */
    int arg;
    PyObject *loop; /* the asyncio loop calling it (borrowed; used while
                     * src is set, when the source holds the loop) */
} Trigger;

static PyObject *trigger_vcall(PyObject *self, PyObject *const *args,
                               size_t nargsf, PyObject *kwnames)
{
    (void)args;
    (void)nargsf;
    (void)kwnames;
    Trigger *t = (Trigger *)self;
    if (t->src != NULL) {
        /* The coroutines awaiting the futures completed in here resume
         * when it returns (future.h). */
        fut_batch b;
        fut_batch_begin(&b, t->loop);
        Py_INCREF(self); /* the source may be stopped from inside */
        t->fire(t->src, t->arg);
        Py_DECREF(self);
        if (fut_batch_end(&b) != 0)
            return NULL;
    }
    if (PyErr_Occurred())
        return NULL;
    Py_RETURN_NONE;
}

static PyTypeObject TriggerType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "aredis._core._Trigger",
    .tp_basicsize = sizeof(Trigger),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_vectorcall_offset = offsetof(Trigger, vectorcall),
    .tp_call = PyVectorcall_Call,
};

static Trigger *trigger_new(fire_fn fire, void *src, int arg, PyObject *loop)
{
    Trigger *t = PyObject_New(Trigger, &TriggerType);
    if (t == NULL)
        return NULL;
    t->vectorcall = trigger_vcall;
    t->fire = fire;
    t->src = src;
    t->arg = arg;
    t->loop = loop;
    return t;
}

/* ------------------------------------------------------------------------
 * The loop adapter
 * ------------------------------------------------------------------------ */

typedef struct ev_src ev_src;

typedef struct pyloop {
    /* > 0 while aredis runs from one of our triggers: a command submitted
     * then is inside the core's own callback. */
    int depth;
    /* While set, 0 ms timers are collected on `eager` instead of being
     * handed to call_soon (see pyloop_flush()). */
    int collect;
    ev_src *eager;
    PyObject *loop;
    PyObject *add_reader, *remove_reader, *add_writer, *remove_writer;
    PyObject *call_soon, *call_later;
} pyloop;

typedef struct io_src {
    pyloop *pl;
    PyObject *fd;
    aredis_io_cb cb;
    void *arg;
    int events;
    Trigger *rd, *wr;
} io_src;

struct ev_src {
    pyloop *pl;
    aredis_event_cb cb;
    void *arg;
    PyObject *handle; /* the armed asyncio handle, or NULL */
    Trigger *trig;
    int eager_armed; /* on pl->eager */
    ev_src *eager_next;
};

/* A failed call into the asyncio loop: report it (the loop may be closed,
 * in which case there is nobody left to tell) and give aredis an error. */
static int loop_call_failed(void)
{
    if (PyErr_ExceptionMatches(PyExc_RuntimeError))
        PyErr_Clear(); /* "Event loop is closed" */
    else
        PyErr_WriteUnraisable(NULL);
    return AREDIS_EIO;
}

static void io_fire(void *src, int mask)
{
    io_src *s = src;
    if (s->events & mask) {
        pyloop *pl = s->pl;
        pl->depth++;
        s->cb(s->arg, mask);
        pl->depth--;
    }
}

static int io_start(void *impl, int fd, aredis_io_cb cb, void *arg,
                    void **handle)
{
    io_src *s = PyMem_Calloc(1, sizeof *s);
    if (s == NULL)
        return AREDIS_ENOMEM;
    s->pl = impl;
    s->cb = cb;
    s->arg = arg;
    s->fd = PyLong_FromLong(fd);
    s->rd = trigger_new(io_fire, s, AREDIS_EV_READ, s->pl->loop);
    s->wr = trigger_new(io_fire, s, AREDIS_EV_WRITE, s->pl->loop);
    if (s->fd == NULL || s->rd == NULL || s->wr == NULL) {
        PyErr_Clear();
        Py_XDECREF(s->fd);
        Py_XDECREF(s->rd);
        Py_XDECREF(s->wr);
        PyMem_Free(s);
        return AREDIS_ENOMEM;
    }
    *handle = s;
    return 0;
}

static int io_set(io_src *s, int events)
{
    pyloop *pl = s->pl;
    int e = 0;
    int on = events & ~s->events, off = s->events & ~events;
    PyObject *r;
    if (on & AREDIS_EV_READ) {
        r = PyObject_CallFunctionObjArgs(pl->add_reader, s->fd, s->rd, NULL);
        if (r == NULL)
            e = loop_call_failed();
        Py_XDECREF(r);
    }
    if (on & AREDIS_EV_WRITE) {
        r = PyObject_CallFunctionObjArgs(pl->add_writer, s->fd, s->wr, NULL);
        if (r == NULL)
            e = loop_call_failed();
        Py_XDECREF(r);
    }
    if (off & AREDIS_EV_READ) {
        r = PyObject_CallOneArg(pl->remove_reader, s->fd);
        if (r == NULL)
            (void)loop_call_failed();
        Py_XDECREF(r);
    }
    if (off & AREDIS_EV_WRITE) {
        r = PyObject_CallOneArg(pl->remove_writer, s->fd);
        if (r == NULL)
            (void)loop_call_failed();
        Py_XDECREF(r);
    }
    s->events = events;
    return e;
}

static int io_update(void *impl, void *handle, int events)
{
    (void)impl;
    io_src *s = handle;
    events &= AREDIS_EV_READ | AREDIS_EV_WRITE;
    if (events == s->events)
        return 0;
    return io_set(s, events);
}

static void io_stop(void *impl, void *handle)
{
    (void)impl;
    io_src *s = handle;
    (void)io_set(s, 0);
    s->rd->src = NULL;
    s->wr->src = NULL;
    Py_DECREF(s->rd);
    Py_DECREF(s->wr);
    Py_DECREF(s->fd);
    PyMem_Free(s);
}

static void ev_fire(void *src, int arg)
{
    (void)arg;
    ev_src *s = src;
    pyloop *pl = s->pl;
    Py_CLEAR(s->handle);
    pl->depth++;
    s->cb(s->arg);
    pl->depth--;
}

static void eager_unlink(ev_src *s)
{
    if (!s->eager_armed)
        return;
    for (ev_src **pp = &s->pl->eager; *pp != NULL; pp = &(*pp)->eager_next)
        if (*pp == s) {
            *pp = s->eager_next;
            break;
        }
    s->eager_armed = 0;
    s->eager_next = NULL;
}

static int ev_new(void *impl, aredis_event_cb cb, void *arg, void **handle)
{
    ev_src *s = PyMem_Calloc(1, sizeof *s);
    if (s == NULL)
        return AREDIS_ENOMEM;
    s->pl = impl;
    s->cb = cb;
    s->arg = arg;
    s->trig = trigger_new(ev_fire, s, 0, s->pl->loop);
    if (s->trig == NULL) {
        PyErr_Clear();
        PyMem_Free(s);
        return AREDIS_ENOMEM;
    }
    *handle = s;
    return 0;
}

static void ev_disarm(ev_src *s)
{
    if (s->handle == NULL)
        return;
    PyObject *h = s->handle;
    s->handle = NULL;
    PyObject *r = PyObject_CallMethodNoArgs(h, s_cancel);
    if (r == NULL)
        (void)loop_call_failed();
    Py_XDECREF(r);
    Py_DECREF(h);
}

static int timer_set(void *impl, void *handle, int64_t ms)
{
    (void)impl;
    ev_src *s = handle;
    ev_disarm(s);
    eager_unlink(s);
    if (ms < 0)
        return 0;
    if (ms == 0 && s->pl->collect) {
        s->eager_armed = 1;
        s->eager_next = s->pl->eager;
        s->pl->eager = s;
        return 0;
    }
    PyObject *h;
    if (ms == 0) {
        h = PyObject_CallOneArg(s->pl->call_soon, (PyObject *)s->trig);
    } else {
        PyObject *delay = PyFloat_FromDouble((double)ms / 1000.0);
        if (delay == NULL)
            return loop_call_failed();
        h = PyObject_CallFunctionObjArgs(s->pl->call_later, delay, s->trig,
                                         NULL);
        Py_DECREF(delay);
    }
    if (h == NULL)
        return loop_call_failed();
    s->handle = h;
    return 0;
}

static void ev_stop(void *impl, void *handle)
{
    (void)impl;
    ev_src *s = handle;
    ev_disarm(s);
    eager_unlink(s);
    s->trig->src = NULL;
    Py_DECREF(s->trig);
    PyMem_Free(s);
}

/* Wake-ups: an eventfd the asyncio loop watches with add_reader. The
 * wake operation is the one called from other threads (the name resolver,
 * *_ts submissions), and must not take the GIL: the thread calling it may
 * hold a lock the loop thread is waiting for while it holds the GIL. A
 * write(2) to an eventfd needs neither. */
typedef struct wake_src {
    pyloop *pl;
    aredis_event_cb cb;
    void *arg;
    int fd;
    PyObject *fdobj;
    Trigger *trig;
} wake_src;

static void wake_fire(void *src, int arg)
{
    (void)arg;
    wake_src *s = src;
    uint64_t n;
    while (read(s->fd, &n, sizeof n) < 0 && errno == EINTR)
        ;
    s->pl->depth++;
    s->cb(s->arg);
    s->pl->depth--;
}

static int wake_start(void *impl, aredis_event_cb cb, void *arg, void **handle)
{
    pyloop *pl = impl;
    wake_src *s = PyMem_Calloc(1, sizeof *s);
    if (s == NULL)
        return AREDIS_ENOMEM;
    s->pl = pl;
    s->cb = cb;
    s->arg = arg;
    s->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (s->fd < 0) {
        PyMem_Free(s);
        return AREDIS_EIO;
    }
    s->fdobj = PyLong_FromLong(s->fd);
    s->trig = trigger_new(wake_fire, s, 0, pl->loop);
    PyObject *r = NULL;
    if (s->fdobj != NULL && s->trig != NULL)
        r = PyObject_CallFunctionObjArgs(pl->add_reader, s->fdobj, s->trig,
                                         NULL);
    if (r == NULL) {
        int e = PyErr_Occurred() ? loop_call_failed() : AREDIS_ENOMEM;
        Py_XDECREF(s->fdobj);
        Py_XDECREF(s->trig);
        close(s->fd);
        PyMem_Free(s);
        return e;
    }
    Py_DECREF(r);
    *handle = s;
    return 0;
}

static void wake(void *impl, void *handle)
{
    (void)impl;
    wake_src *s = handle;
    uint64_t one = 1;
    while (write(s->fd, &one, sizeof one) < 0 && errno == EINTR)
        ;
}

static void wake_stop(void *impl, void *handle)
{
    wake_src *s = handle;
    pyloop *pl = impl;
    PyObject *r = PyObject_CallOneArg(pl->remove_reader, s->fdobj);
    if (r == NULL)
        (void)loop_call_failed();
    Py_XDECREF(r);
    s->trig->src = NULL;
    Py_DECREF(s->trig);
    Py_DECREF(s->fdobj);
    close(s->fd);
    PyMem_Free(s);
}

/* The end of a submit made with pl->collect set: the 0 ms timers armed
 * meanwhile (the core's "end of this loop turn" work: writing what was
 * queued) run now when `now` is set, else go to call_soon as usual.
 *
 * Running them now is what makes a lone awaited command cost one loop
 * iteration less: its bytes leave in the same turn, as with asyncio's own
 * transports, instead of in the next one. It is only done outside the
 * core's callbacks (depth 0), where the core is not running, and the
 * client decides when (nothing else in flight: there is no batch to
 * coalesce with). */
static void pyloop_flush(pyloop *pl, int now)
{
    pl->collect = 0;
    while (pl->eager != NULL) {
        ev_src *s = pl->eager;
        pl->eager = s->eager_next;
        s->eager_armed = 0;
        s->eager_next = NULL;
        if (now) {
            pl->depth++;
            s->cb(s->arg);
            pl->depth--;
        } else {
            (void)timer_set(pl, s, 0);
        }
    }
}

static void pyloop_free(void *impl)
{
    pyloop *pl = impl;
    Py_XDECREF(pl->loop);
    Py_XDECREF(pl->add_reader);
    Py_XDECREF(pl->remove_reader);
    Py_XDECREF(pl->add_writer);
    Py_XDECREF(pl->remove_writer);
    Py_XDECREF(pl->call_soon);
    Py_XDECREF(pl->call_later);
    PyMem_Free(pl);
}

static const aredis_loop_ops pyloop_ops = {
    .io_start = io_start,
    .io_update = io_update,
    .io_stop = io_stop,
    .timer_start = ev_new,
    .timer_set = timer_set,
    .timer_stop = ev_stop,
    .wake_start = wake_start,
    .wake = wake,
    .wake_stop = wake_stop,
    .free = pyloop_free,
};

static aredis_loop *pyloop_new(PyObject *loop, pyloop **out)
{
    pyloop *pl = PyMem_Calloc(1, sizeof *pl);
    if (pl == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    Py_INCREF(loop);
    pl->loop = loop;
#define GETM(field, name)                                           \
    if ((pl->field = PyObject_GetAttrString(loop, name)) == NULL) { \
        pyloop_free(pl);                                            \
        return NULL;                                                \
    }
    GETM(add_reader, "add_reader");
    GETM(remove_reader, "remove_reader");
    GETM(add_writer, "add_writer");
    GETM(remove_writer, "remove_writer");
    GETM(call_soon, "call_soon");
    GETM(call_later, "call_later");
#undef GETM
    aredis_loop *l = aredis_loop_new_custom(&pyloop_ops, pl);
    if (l == NULL) {
        pyloop_free(pl);
        PyErr_NoMemory();
        return NULL;
    }
    *out = pl;
    return l;
}

/* ------------------------------------------------------------------------
 * Replies to Python objects, errors to exceptions
 * ------------------------------------------------------------------------ */

typedef struct {
    int decode;
    const char *encoding; /* NULL: utf-8 */
} conv;

static PyObject *make_text(const conv *cv, const char *s, size_t n)
{
    if (!cv->decode)
        return PyBytes_FromStringAndSize(s, (Py_ssize_t)n);
    if (cv->encoding == NULL)
        return PyUnicode_DecodeUTF8(s, (Py_ssize_t)n, "strict");
    return PyUnicode_Decode(s, (Py_ssize_t)n, cv->encoding, "strict");
}

/* The exception instance for an error reply. */
static PyObject *error_object(const aredis_reply *r)
{
    PyObject *cls = NULL, *msg;
    const char *s = r->str ? r->str : "";
    size_t n = r->str ? r->len : 0;
    if (r->code == AREDIS_ESERVER) {
        size_t w = 0;
        while (w < n && s[w] != ' ')
            w++;
        if (err_prefixes != NULL) {
            PyObject *k = PyUnicode_DecodeUTF8(s, (Py_ssize_t)w, "replace");
            if (k == NULL)
                return NULL;
            cls = PyDict_GetItemWithError(err_prefixes, k);
            Py_DECREF(k);
            if (cls == NULL && PyErr_Occurred())
                return NULL;
        }
        if (cls == NULL)
            cls = err_server_default;
        /* As redis-py: the generic "ERR " prefix is not part of the
         * message. */
        if (n >= 4 && memcmp(s, "ERR ", 4) == 0) {
            s += 4;
            n -= 4;
        }
    } else if (err_codes != NULL) {
        PyObject *k = PyLong_FromLong(r->code);
        if (k == NULL)
            return NULL;
        cls = PyDict_GetItemWithError(err_codes, k);
        Py_DECREF(k);
        if (cls == NULL && PyErr_Occurred())
            return NULL;
    }
    if (cls == NULL)
        cls =
            r->code == AREDIS_ESERVER ? err_server_default : err_client_default;
    if (cls == NULL)
        cls = PyExc_RuntimeError;
    msg = PyUnicode_DecodeUTF8(s, (Py_ssize_t)n, "replace");
    if (msg == NULL)
        return NULL;
    PyObject *e = PyObject_CallOneArg(cls, msg);
    Py_DECREF(msg);
    return e;
}

static PyObject *convert(const conv *cv, const aredis_reply *r)
{
    switch (r->type) {
    case AREDIS_REPLY_STRING:
    case AREDIS_REPLY_STATUS:
    case AREDIS_REPLY_VERB:
        return make_text(cv, r->str, r->len);
    case AREDIS_REPLY_INTEGER:
        return PyLong_FromLongLong(r->integer);
    case AREDIS_REPLY_NIL:
        Py_RETURN_NONE;
    case AREDIS_REPLY_DOUBLE:
        return PyFloat_FromDouble(r->dval);
    case AREDIS_REPLY_BOOL:
        return PyBool_FromLong(r->integer != 0);
    case AREDIS_REPLY_BIGNUM: {
        char buf[128];
        if (r->len < sizeof buf) {
            memcpy(buf, r->str, r->len);
            buf[r->len] = '\0';
            return PyLong_FromString(buf, NULL, 10);
        }
        return PyBytes_FromStringAndSize(r->str, (Py_ssize_t)r->len);
    }
    case AREDIS_REPLY_ERROR:
        return error_object(r);
    case AREDIS_REPLY_MAP: {
        PyObject *d = PyDict_New();
        if (d == NULL)
            return NULL;
        for (size_t i = 0; i + 1 < r->len; i += 2) {
            PyObject *k = convert(cv, &r->element[i]);
            PyObject *v = k ? convert(cv, &r->element[i + 1]) : NULL;
            if (v == NULL || PyDict_SetItem(d, k, v) != 0) {
                Py_XDECREF(k);
                Py_XDECREF(v);
                Py_DECREF(d);
                return NULL;
            }
            Py_DECREF(k);
            Py_DECREF(v);
        }
        return d;
    }
    case AREDIS_REPLY_ARRAY:
    case AREDIS_REPLY_SET:
    case AREDIS_REPLY_PUSH:
    case AREDIS_REPLY_ATTR:
    default: {
        PyObject *l = PyList_New((Py_ssize_t)r->len);
        if (l == NULL)
            return NULL;
        for (size_t i = 0; i < r->len; i++) {
            PyObject *v = convert(cv, &r->element[i]);
            if (v == NULL) {
                Py_DECREF(l);
                return NULL;
            }
            PyList_SET_ITEM(l, (Py_ssize_t)i, v);
        }
        return l;
    }
    }
}

/* Complete with the pending Python exception. */
static void settle_exc(PyObject *fut)
{
    PyObject *t, *v, *tb;
    PyErr_Fetch(&t, &v, &tb);
    PyErr_NormalizeException(&t, &v, &tb);
    if (v == NULL) {
        Py_XDECREF(t);
        Py_XDECREF(tb);
        return;
    }
    if (tb != NULL)
        PyException_SetTraceback(v, tb);
    Py_XDECREF(t);
    Py_XDECREF(tb);
    fut_settle(fut, v, 1);
}

/* ------------------------------------------------------------------------
 * Command arguments
 * ------------------------------------------------------------------------ */

#define ARGV_STACK 16

typedef struct {
    int argc;
    const char **argv;
    size_t *lens;
    PyObject **keep; /* owned objects whose buffers argv points into */
    const char *sargv[ARGV_STACK];
    size_t slens[ARGV_STACK];
    PyObject *skeep[ARGV_STACK];
} argbuf;

static void argbuf_clear(argbuf *a)
{
    for (int i = 0; i < a->argc; i++)
        Py_XDECREF(a->keep[i]);
    if (a->argv != a->sargv) {
        PyMem_Free(a->argv);
        PyMem_Free(a->lens);
        PyMem_Free(a->keep);
    }
    a->argc = 0;
}

/* One argument: bytes as they are, str in UTF-8 (or the client's
 * encoding), int and float as their decimal text (float through repr, as
 * redis-py), buffers as their bytes, anything else through str(). */
static int encode_arg(argbuf *a, int i, PyObject *o, const char *encoding)
{
    PyObject *k = NULL;
    if (PyBytes_CheckExact(o)) {
        Py_INCREF(o);
        k = o;
    } else if (PyUnicode_Check(o)) {
        if (encoding == NULL) {
            Py_ssize_t n;
            const char *s = PyUnicode_AsUTF8AndSize(o, &n);
            if (s == NULL)
                return -1;
            Py_INCREF(o);
            a->keep[i] = o;
            a->argv[i] = s;
            a->lens[i] = (size_t)n;
            return 0;
        }
        k = PyUnicode_AsEncodedString(o, encoding, "strict");
    } else if (PyLong_Check(o)) {
        int overflow = 0;
        long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
        if (v == -1 && PyErr_Occurred())
            return -1;
        if (!overflow) {
            char buf[32];
            int n = snprintf(buf, sizeof buf, "%lld", v);
            k = PyBytes_FromStringAndSize(buf, n);
        } else {
            PyObject *s = PyObject_Str(o);
            if (s == NULL)
                return -1;
            k = PyUnicode_AsUTF8String(s);
            Py_DECREF(s);
        }
    } else if (PyBytes_Check(o) || PyByteArray_Check(o) ||
               PyMemoryView_Check(o)) {
        k = PyBytes_FromObject(o);
    } else {
        PyObject *s = PyFloat_Check(o) ? PyObject_Repr(o) : PyObject_Str(o);
        if (s == NULL)
            return -1;
        k = PyUnicode_AsEncodedString(s, encoding ? encoding : "utf-8",
                                      "strict");
        Py_DECREF(s);
    }
    if (k == NULL)
        return -1;
    a->keep[i] = k;
    a->argv[i] = PyBytes_AS_STRING(k);
    a->lens[i] = (size_t)PyBytes_GET_SIZE(k);
    return 0;
}

/* Fill `a` from args[0..n); a first argument with a space in it ("CONFIG
 * GET") is split into words, as redis-py does. */
static int argbuf_fill(argbuf *a, PyObject *const *args, Py_ssize_t n,
                       const char *encoding)
{
    PyObject *words = NULL;
    Py_ssize_t nw = 0;
    a->argc = 0;
    a->argv = a->sargv;
    a->lens = a->slens;
    a->keep = a->skeep;
    if (n < 1) {
        PyErr_SetString(PyExc_ValueError, "a command needs a name");
        return -1;
    }
    if (PyUnicode_Check(args[0]) &&
        PyUnicode_FindChar(args[0], ' ', 0, PyUnicode_GET_LENGTH(args[0]), 1) >=
            0) {
        words = PyUnicode_Split(args[0], NULL, -1);
        if (words == NULL)
            return -1;
        nw = PyList_GET_SIZE(words);
    }
    Py_ssize_t total = (words ? nw : 1) + n - 1;
    if (total > INT32_MAX / 2) {
        Py_XDECREF(words);
        PyErr_SetString(PyExc_ValueError, "too many arguments");
        return -1;
    }
    if (total > ARGV_STACK) {
        a->argv = PyMem_Calloc((size_t)total, sizeof *a->argv);
        a->lens = PyMem_Calloc((size_t)total, sizeof *a->lens);
        a->keep = PyMem_Calloc((size_t)total, sizeof *a->keep);
        if (a->argv == NULL || a->lens == NULL || a->keep == NULL) {
            PyMem_Free(a->argv);
            PyMem_Free(a->lens);
            PyMem_Free(a->keep);
            a->argv = a->sargv;
            Py_XDECREF(words);
            PyErr_NoMemory();
            return -1;
        }
    }
    int i = 0;
    for (Py_ssize_t w = 0; w < (words ? nw : 0); w++, i++) {
        a->argc = i;
        if (encode_arg(a, i, PyList_GET_ITEM(words, w), encoding) != 0)
            goto fail;
    }
    for (Py_ssize_t j = words ? 1 : 0; j < n; j++, i++) {
        a->argc = i;
        if (encode_arg(a, i, args[j], encoding) != 0)
            goto fail;
    }
    a->argc = i;
    Py_XDECREF(words);
    return 0;
fail:
    Py_XDECREF(words);
    argbuf_clear(a);
    return -1;
}

/* ------------------------------------------------------------------------
 * Client
 * ------------------------------------------------------------------------ */

/* A pipeline or pubsub of a client, on the client's list: close() frees
 * their C objects before it closes the client, as the C library wants (a
 * pipeline keeps a pointer to its client, which frees itself once its
 * last command has completed), and they refuse to work from then on. */
typedef struct dep {
    struct dep *next, **pprev;
    void (*drop)(struct dep *d); /* free the C object; unlinked already */
} dep;

typedef struct {
    PyObject_HEAD aredis_loop *loop;
    pyloop *pl; /* owned by loop */
    aredis_client *c;
    PyObject *aloop;
    PyObject *callbacks; /* dict: command name -> response callback */
    PyObject *encoding_obj;
    conv cv;
    const char *encoding; /* for arguments; NULL: utf-8 */
    dep *deps;            /* each holds a reference to the client */
} Client;

static void dep_link(Client *c, dep *d, void (*drop)(dep *))
{
    d->drop = drop;
    d->next = c->deps;
    d->pprev = &c->deps;
    if (c->deps != NULL)
        c->deps->pprev = &d->next;
    c->deps = d;
}

static void dep_unlink(dep *d)
{
    if (d->pprev == NULL)
        return;
    *d->pprev = d->next;
    if (d->next != NULL)
        d->next->pprev = d->pprev;
    d->next = NULL;
    d->pprev = NULL;
}

/* Off the client's list, and its C object freed. */
static void dep_drop(dep *d)
{
    dep_unlink(d);
    d->drop(d);
}

static PyTypeObject ClientType;

/* What a command keeps until its completion. */
typedef struct pending {
    PyObject *fut;
    PyObject *cb;   /* response callback or NULL */
    PyObject *opts; /* its keyword arguments (dict) or NULL */
    PyObject *keep; /* the object that issued it (client, pipeline...) */
    Client *owner;
} pending;

static PyObject *get_running_loop;

/* A command's future belongs to the loop the client runs on: a command
 * from a coroutine of another running loop (a second asyncio.run() with a
 * client made in the first) could never complete there. Outside any
 * running loop (loop.run_until_complete(r.get(...))) it is fine. */
static int check_loop(Client *owner)
{
    if (fut_running_loop() == owner->aloop)
        return 0; /* a coroutine resumed by one of its replies */
    PyObject *running = PyObject_CallNoArgs(get_running_loop);
    if (running == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_RuntimeError))
            return -1;
        PyErr_Clear();
        /* No loop runs in this thread. The client's loop running all the
         * same means it runs in another thread, which the client belongs
         * to: a call from here would race with it. */
        PyObject *r = PyObject_CallMethodNoArgs(owner->aloop, s_is_running);
        int elsewhere = r != NULL ? PyObject_IsTrue(r) : -1;
        Py_XDECREF(r);
        if (elsewhere > 0)
            PyErr_SetString(PyExc_RuntimeError,
                            "this client's event loop runs in another "
                            "thread: hand the work to that loop "
                            "(asyncio.run_coroutine_threadsafe())");
        return elsewhere != 0 ? -1 : 0;
    }
    Py_DECREF(running);
    if (running == owner->aloop)
        return 0;
    PyErr_SetString(PyExc_RuntimeError,
                    "this client runs on another event loop (the one of its "
                    "first command): create it in the loop that uses it, or "
                    "close() it first to let it move to the running one");
    return -1;
}

static pending *pending_new(Client *owner, PyObject *keep, PyObject *cb,
                            PyObject *opts)
{
    if (check_loop(owner) != 0)
        return NULL;
    pending *p = PyMem_Malloc(sizeof *p);
    if (p == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    p->fut = fut_new(owner->aloop);
    if (p->fut == NULL) {
        PyMem_Free(p);
        return NULL;
    }
    Py_XINCREF(cb);
    Py_XINCREF(opts);
    Py_INCREF(keep);
    p->cb = cb;
    p->opts = opts;
    p->keep = keep;
    p->owner = owner;
    return p;
}

static void pending_free(pending *p)
{
    Py_DECREF(p->fut);
    Py_XDECREF(p->cb);
    Py_XDECREF(p->opts);
    Py_DECREF(p->keep);
    PyMem_Free(p);
}

static int raise_code(int code, const char *what)
{
    aredis_reply r = {.type = AREDIS_REPLY_ERROR, .code = code};
    char msg[256];
    snprintf(msg, sizeof msg, "%s: %s", what, aredis_strerror(code));
    r.str = msg;
    r.len = strlen(msg);
    PyObject *e = error_object(&r);
    if (e != NULL) {
        PyErr_SetObject((PyObject *)Py_TYPE(e), e);
        Py_DECREF(e);
    }
    return -1;
}

/* Deliver a reply to a pending command's future. */
static void deliver(pending *p, const aredis_reply *r)
{
    PyObject *v;
    if (r->type == AREDIS_REPLY_ERROR) {
        v = error_object(r);
        if (v == NULL)
            settle_exc(p->fut);
        else
            fut_settle(p->fut, v, 1);
        return;
    }
    v = convert(&p->owner->cv, r);
    if (v != NULL && p->cb != NULL) {
        PyObject *args[1] = {v};
        PyObject *w;
        if (p->opts != NULL && PyDict_GET_SIZE(p->opts) > 0) {
            PyObject *t = PyTuple_Pack(1, v);
            w = t ? PyObject_Call(p->cb, t, p->opts) : NULL;
            Py_XDECREF(t);
        } else {
            w = PyObject_Vectorcall(p->cb, args, 1, NULL);
        }
        Py_DECREF(v);
        v = w;
    }
    if (v == NULL)
        settle_exc(p->fut);
    else
        fut_settle(p->fut, v, 0);
}

static void on_reply(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    pending *p = ud;
    deliver(p, r);
    pending_free(p);
}

static int opt_str(PyObject *d, const char *k, const char **out)
{
    PyObject *v = PyDict_GetItemString(d, k);
    if (v == NULL || v == Py_None)
        return 0;
    if (!PyUnicode_Check(v)) {
        PyErr_Format(PyExc_TypeError, "%s must be a str", k);
        return -1;
    }
    *out = PyUnicode_AsUTF8(v);
    return *out == NULL ? -1 : 0;
}

static int opt_ll(PyObject *d, const char *k, long long *out)
{
    PyObject *v = PyDict_GetItemString(d, k);
    if (v == NULL || v == Py_None)
        return 0;
    long long x = PyLong_AsLongLong(v);
    if (x == -1 && PyErr_Occurred())
        return -1;
    *out = x;
    return 0;
}

static int opt_int(PyObject *d, const char *k, int *out)
{
    long long x = *out;
    if (opt_ll(d, k, &x) != 0)
        return -1;
    if (x < INT32_MIN || x > INT32_MAX) {
        PyErr_Format(PyExc_ValueError, "%s is out of range", k);
        return -1;
    }
    *out = (int)x;
    return 0;
}

static int opt_i64(PyObject *d, const char *k, int64_t *out)
{
    long long x = *out;
    if (opt_ll(d, k, &x) != 0)
        return -1;
    *out = (int64_t)x;
    return 0;
}

/* The keys of Client()'s options dict (the Python layer maps the
 * StrictRedis, cluster and Sentinel arguments to them) and the fields of
 * aredis_options they set, in the order they are read. */
typedef enum { OPT_STR, OPT_INT, OPT_I64 } opt_kind;

#define OPT(key, kind, field)                      \
    {                                              \
        key, kind, offsetof(aredis_options, field) \
    }
static const struct opt_field {
    const char *key;
    opt_kind kind;
    size_t off;
} client_options[] = {
    OPT("url", OPT_STR, url),
    OPT("host", OPT_STR, host),
    OPT("port", OPT_INT, port),
    OPT("path", OPT_STR, path),
    OPT("username", OPT_STR, username),
    OPT("password", OPT_STR, password),
    OPT("db", OPT_INT, db),
    OPT("client_name", OPT_STR, client_name),
    OPT("protocol", OPT_INT, protocol),
    OPT("connect_timeout_ms", OPT_I64, connect_timeout_ms),
    OPT("command_timeout_ms", OPT_I64, command_timeout_ms),
    OPT("keepalive_idle_s", OPT_INT, keepalive_idle_s),
    OPT("keepalive_interval_s", OPT_INT, keepalive_interval_s),
    OPT("keepalive_count", OPT_INT, keepalive_count),
    OPT("reconnect_max_attempts", OPT_INT, reconnect_max_attempts),
    OPT("retry_read_only", OPT_INT, retry_read_only),
    OPT("pool_max", OPT_INT, pool_max),
    OPT("pool_wait_ms", OPT_I64, pool_wait_ms),
    OPT("pool_idle_ms", OPT_I64, pool_idle_ms),
    OPT("tls", OPT_INT, tls.enabled),
    OPT("tls_ca_file", OPT_STR, tls.ca_file),
    OPT("tls_ca_dir", OPT_STR, tls.ca_dir),
    OPT("tls_cert_file", OPT_STR, tls.cert_file),
    OPT("tls_key_file", OPT_STR, tls.key_file),
    OPT("tls_sni", OPT_STR, tls.sni),
    OPT("tls_insecure", OPT_INT, tls.insecure_skip_verify),
    OPT("sentinel_addrs", OPT_STR, sentinel.addrs),
    OPT("sentinel_service", OPT_STR, sentinel.service),
    OPT("sentinel_role", OPT_INT, sentinel.role),
    OPT("sentinel_replica_fallback", OPT_INT, sentinel.replica_fallback),
    OPT("sentinel_failover_wait_ms", OPT_I64, sentinel.failover_wait_ms),
    OPT("sentinel_password", OPT_STR, sentinel.password),
    OPT("sentinel_timeout_ms", OPT_I64, sentinel.timeout_ms),
};
#undef OPT

/* Set the fields of `opts` whose keys `d` has (and not None). */
static int options_from_dict(PyObject *d, aredis_options *opts)
{
    for (size_t i = 0; i < sizeof client_options / sizeof *client_options;
         i++) {
        const struct opt_field *f = &client_options[i];
        void *at = (char *)opts + f->off;
        int rc = f->kind == OPT_STR   ? opt_str(d, f->key, at)
                 : f->kind == OPT_INT ? opt_int(d, f->key, at)
                                      : opt_i64(d, f->key, at);
        if (rc != 0)
            return -1;
    }
    return 0;
}

/* Client(loop, options: dict, callbacks: dict, decode: bool, encoding) */
static int client_init(Client *self, PyObject *args, PyObject *kw)
{
    static const char *kwlist[] = {"loop",   "options",  "callbacks",
                                   "decode", "encoding", NULL};
    PyObject *loop, *o, *cbs, *enc = Py_None;
    int decode = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO!O!|pO", (char **)kwlist,
                                     &loop, &PyDict_Type, &o, &PyDict_Type,
                                     &cbs, &decode, &enc))
        return -1;
    if (self->c != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "already initialised");
        return -1;
    }
    aredis_options opts = {0};
    opts.normalize_resp2 = 1;
    if (options_from_dict(o, &opts) != 0)
        return -1;
    if (enc != Py_None) {
        if (!PyUnicode_Check(enc)) {
            PyErr_SetString(PyExc_TypeError, "encoding must be a str");
            return -1;
        }
        const char *e = PyUnicode_AsUTF8(enc);
        if (e == NULL)
            return -1;
        Py_INCREF(enc);
        self->encoding_obj = enc;
        /* UTF-8 is the fast path of both directions. */
        if (strcmp(e, "utf-8") != 0 && strcmp(e, "utf8") != 0 &&
            strcmp(e, "UTF-8") != 0)
            self->encoding = e;
    }
    self->cv.decode = decode;
    self->cv.encoding = self->encoding;
    Py_INCREF(loop);
    self->aloop = loop;
    Py_INCREF(cbs);
    self->callbacks = cbs;
    self->loop = pyloop_new(loop, &self->pl);
    if (self->loop == NULL)
        return -1;
    aredis_status st = {0};
    self->c = aredis_client_new(self->loop, &opts, &st);
    if (self->c == NULL) {
        aredis_loop_free(self->loop); /* and self->pl with it */
        self->loop = NULL;
        self->pl = NULL;
        aredis_reply r = {.type = AREDIS_REPLY_ERROR,
                          .code = st.code ? st.code : AREDIS_EINVAL,
                          .str = st.msg,
                          .len = strlen(st.msg)};
        PyObject *e = error_object(&r);
        if (e != NULL) {
            PyErr_SetObject((PyObject *)Py_TYPE(e), e);
            Py_DECREF(e);
        }
        return -1;
    }
    return 0;
}

/* The C client and its loop outlive a Client object freed from inside one
 * of the core's callbacks (the last reference to a client can go with the
 * reply of its last command): the core is running then, so they are freed
 * from the asyncio loop's next turn instead. */
typedef struct reaper {
    aredis_client *c;
    aredis_loop *loop;
    Trigger *trig;
    pyloop *pl; /* for a closed client's loop (see client_close()) */
} reaper;

static void reap(aredis_client *c, aredis_loop *loop)
{
    /* Completions still pending (each holds a reference to the client, so
     * there are none unless the interpreter is shutting down) run inside
     * aredis_loop_free(). */
    if (c != NULL)
        aredis_client_free(c);
    if (loop != NULL)
        aredis_loop_free(loop);
}

static void reap_fire(void *src, int arg)
{
    (void)arg;
    reaper *r = src;
    r->trig->src = NULL;
    Py_DECREF(r->trig);
    reap(r->c, r->loop);
    PyMem_Free(r);
}

static void client_dealloc(Client *self)
{
    if (self->pl != NULL && self->pl->depth > 0) {
        reaper *r = PyMem_Calloc(1, sizeof *r);
        PyObject *h = NULL;
        if (r != NULL) {
            r->c = self->c;
            r->loop = self->loop;
            r->trig = trigger_new(reap_fire, r, 0, self->aloop);
            if (r->trig != NULL)
                h = PyObject_CallOneArg(self->pl->call_soon,
                                        (PyObject *)r->trig);
        }
        if (h != NULL) {
            Py_DECREF(h);
            self->c = NULL;
            self->loop = NULL;
        } else {
            /* No way to come back later (the asyncio loop is closed, or
             * no memory): leaking the client beats freeing it under the
             * core's feet. */
            PyErr_Clear();
            if (r != NULL)
                Py_XDECREF(r->trig);
            PyMem_Free(r);
            self->c = NULL;
            self->loop = NULL;
        }
    }
    reap(self->c, self->loop);
    Py_XDECREF(self->aloop);
    Py_XDECREF(self->callbacks);
    Py_XDECREF(self->encoding_obj);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int client_ready(Client *self)
{
    if (self->c == NULL) {
        raise_code(AREDIS_ESTATE, "the client is closed");
        return -1;
    }
    return 0;
}

/* A command to the client's routing (host NULL) or to the node at
 * host:port; args[0..n) the command, the keywords after them its
 * response callback's options. Returns the awaitable future. */
static PyObject *client_submit(Client *self, const char *host, int port,
                               PyObject *const *args, Py_ssize_t n,
                               PyObject *kwnames)
{
    if (client_ready(self) != 0)
        return NULL;
    if (n < 1) {
        PyErr_SetString(PyExc_TypeError, "execute_command needs a command");
        return NULL;
    }
    PyObject *cb = PyDict_GetItemWithError(self->callbacks, args[0]);
    if (cb == NULL && PyErr_Occurred())
        return NULL;
    if (cb == Py_None)
        cb = NULL;
    PyObject *opts = NULL;
    if (kwnames != NULL && PyTuple_GET_SIZE(kwnames) > 0) {
        opts = PyDict_New();
        if (opts == NULL)
            return NULL;
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(kwnames); i++)
            if (PyDict_SetItem(opts, PyTuple_GET_ITEM(kwnames, i),
                               args[n + i]) != 0) {
                Py_DECREF(opts);
                return NULL;
            }
    }
    argbuf a;
    if (argbuf_fill(&a, args, n, self->encoding) != 0) {
        Py_XDECREF(opts);
        return NULL;
    }
    pending *p = pending_new(self, (PyObject *)self, cb, opts);
    Py_XDECREF(opts);
    if (p == NULL) {
        argbuf_clear(&a);
        return NULL;
    }
    /* The future is ours too: an eager flush may complete it (and free
     * p) before this returns. */
    PyObject *fut = p->fut;
    Py_INCREF(fut);
    int eager = self->pl->depth == 0;
    self->pl->collect = eager;
    int e = host == NULL
                ? aredis_commandv(self->c, on_reply, p, a.argc, a.argv, a.lens)
                : aredis_node_commandv(self->c, host, port, on_reply, p, a.argc,
                                       a.argv, a.lens);
    argbuf_clear(&a);
    if (e != 0)
        pending_free(p);
    if (eager)
        pyloop_flush(self->pl, e == 0 && aredis_client_pending(self->c) == 1);
    if (e != 0) {
        Py_DECREF(fut);
        raise_code(e, "cannot submit the command");
        return NULL;
    }
    return fut;
}

/* execute_command(*args, **options) -> awaitable future */
static PyObject *client_execute(Client *self, PyObject *const *args,
                                Py_ssize_t nargsf, PyObject *kwnames)
{
    return client_submit(self, NULL, 0, args, PyVectorcall_NARGS(nargsf),
                         kwnames);
}

/* node_command(host, port, *args, **options) -> awaitable future */
static PyObject *client_node_command(Client *self, PyObject *const *args,
                                     Py_ssize_t nargsf, PyObject *kwnames)
{
    Py_ssize_t n = PyVectorcall_NARGS(nargsf);
    if (n < 2) {
        PyErr_SetString(PyExc_TypeError, "node_command(host, port, *args)");
        return NULL;
    }
    const char *host = PyUnicode_AsUTF8(args[0]);
    long port = PyLong_AsLong(args[1]);
    if (host == NULL || (port == -1 && PyErr_Occurred()))
        return NULL;
    return client_submit(self, host, (int)port, args + 2, n - 2, kwnames);
}

static PyObject *node_tuple(const aredis_node_addr *a)
{
    return Py_BuildValue("(siO)", a->host, a->port,
                         a->primary ? Py_True : Py_False);
}

/* nodes(which) -> [(host, port, primary)] as the client knows them now */
static PyObject *client_nodes(Client *self, PyObject *arg)
{
    long which = PyLong_AsLong(arg);
    if (which == -1 && PyErr_Occurred())
        return NULL;
    if (client_ready(self) != 0)
        return NULL;
    size_t n = aredis_client_nodes(self->c, (int)which, NULL, 0);
    aredis_node_addr *a = PyMem_Calloc(n ? n : 1, sizeof *a);
    if (a == NULL)
        return PyErr_NoMemory();
    n = aredis_client_nodes(self->c, (int)which, a, n);
    PyObject *out = PyList_New(0);
    for (size_t i = 0; out != NULL && i < n; i++) {
        PyObject *t = node_tuple(&a[i]);
        if (t == NULL || PyList_Append(out, t) != 0)
            Py_CLEAR(out);
        Py_XDECREF(t);
    }
    PyMem_Free(a);
    return out;
}

/* key_primary(key) -> (host, port, True) of the primary serving the key's
 * slot, as the client's slot map says now; None when it has none */
static PyObject *client_key_primary(Client *self, PyObject *key)
{
    argbuf a;
    if (client_ready(self) != 0 ||
        argbuf_fill(&a, &key, 1, self->encoding) != 0)
        return NULL;
    unsigned slot = aredis_cluster_keyslot(a.argv[0], a.lens[0]);
    argbuf_clear(&a);
    aredis_node_addr node;
    if (aredis_client_slot_primary(self->c, slot, &node, NULL) != 1)
        Py_RETURN_NONE;
    return node_tuple(&node);
}

/* A closed client's release: its loop goes on the asyncio loop's next
 * turn (the release runs inside one of the loop's own callbacks). Without
 * a way to come back (the asyncio loop is closed) it is leaked rather than
 * freed under the core's feet. */
static void orphan_loop_free(void *data)
{
    reaper *r = data;
    PyObject *h = PyObject_CallOneArg(r->pl->call_soon, (PyObject *)r->trig);
    if (h == NULL) {
        PyErr_Clear();
        r->trig->src = NULL;
        Py_DECREF(r->trig);
        PyMem_Free(r);
        return;
    }
    Py_DECREF(h);
}

static PyObject *client_close(Client *self, PyObject *unused)
{
    (void)unused;
    while (self->deps != NULL)
        dep_drop(self->deps);
    if (self->c == NULL)
        Py_RETURN_NONE;
    /* From here the C client frees itself once what it has in flight has
     * completed (the UNWATCH of a pipeline dropped above included), which
     * may be after this object is gone: the loop it runs on goes with it,
     * not with this object. */
    reaper *r = PyMem_Calloc(1, sizeof *r);
    if (r == NULL)
        return PyErr_NoMemory();
    r->loop = self->loop;
    r->pl = self->pl;
    r->trig = trigger_new(reap_fire, r, 0, self->aloop);
    if (r->trig == NULL) {
        PyMem_Free(r);
        return NULL;
    }
    aredis_client_set_data(self->c, r, orphan_loop_free);
    aredis_client_close(self->c);
    self->c = NULL;
    self->loop = NULL;
    self->pl = NULL;
    Py_RETURN_NONE;
}

static PyObject *client_pending(Client *self, PyObject *unused)
{
    (void)unused;
    return PyLong_FromSize_t(self->c ? aredis_client_pending(self->c) : 0);
}

static PyObject *client_protocol(Client *self, PyObject *unused)
{
    (void)unused;
    return PyLong_FromLong(self->c ? aredis_client_protocol(self->c) : 0);
}

static PyMethodDef client_methods[] = {
    {"execute_command", (PyCFunction)(void (*)(void))client_execute,
     METH_FASTCALL | METH_KEYWORDS,
     "execute_command(*args, **options): send a command; returns a future"},
    {"node_command", (PyCFunction)(void (*)(void))client_node_command,
     METH_FASTCALL | METH_KEYWORDS,
     "node_command(host, port, *args, **options): send a command to that "
     "node, not routed; returns a future"},
    {"nodes", (PyCFunction)client_nodes, METH_O,
     "nodes(which): [(host, port, primary)] (1 primaries, 2 replicas, 3 "
     "both)"},
    {"key_primary", (PyCFunction)client_key_primary, METH_O,
     "key_primary(key): (host, port, True) of the key's primary, or None"},
    {"close", (PyCFunction)client_close, METH_NOARGS,
     "Let the commands in flight complete, then free the client."},
    {"pending", (PyCFunction)client_pending, METH_NOARGS,
     "Commands whose reply has not arrived yet."},
    {"protocol", (PyCFunction)client_protocol, METH_NOARGS,
     "2 or 3 once connected, 0 before."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ClientType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "aredis._core.Client",
    .tp_basicsize = sizeof(Client),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)client_init,
    .tp_dealloc = (destructor)client_dealloc,
    .tp_methods = client_methods,
};

/* ------------------------------------------------------------------------
 * What pipelines and pubsubs share: each is a Python object over a C
 * object of its client (the owner), on the client's list (a dep) while
 * that C object is there.
 * ------------------------------------------------------------------------ */

/* 0 when the C object `obj` is there, else -1 with the reason raised. */
static int dependent_ready(const void *obj, const Client *owner,
                           const char *what)
{
    if (obj != NULL)
        return 0;
    return raise_code(AREDIS_ESTATE, owner != NULL && owner->c == NULL
                                         ? "the client is closed"
                                         : what);
}

/* tp_init's arguments (client, flag=False), for an object not initialised
 * yet (owner NULL) of an open client. */
static int dependent_args(PyObject *args, PyObject *kw, const char *flag,
                          Client **c, int *value, const Client *owner)
{
    const char *kwlist[] = {"client", flag, NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O!|p", (char **)kwlist,
                                     &ClientType, c, value))
        return -1;
    if (client_ready(*c) != 0)
        return -1;
    if (owner != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "already initialised");
        return -1;
    }
    return 0;
}

/* The new C object `obj` (NULL: out of memory) joins client c. */
static int dependent_link(Client *c, const void *obj, Client **owner, dep *d,
                          void (*drop)(dep *))
{
    if (obj == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    Py_INCREF(c);
    *owner = c;
    dep_link(c, d, drop);
    return 0;
}

static void dependent_dealloc(PyObject *self, const void *obj, Client *owner,
                              dep *d)
{
    dep_unlink(d);
    if (obj != NULL)
        d->drop(d);
    Py_XDECREF(owner);
    Py_TYPE(self)->tp_free(self);
}

/* The future of a command handed to the C library (e == 0); else NULL
 * with the error raised, and p freed. */
static PyObject *submitted(pending *p, int e, const char *what)
{
    if (e != 0) {
        pending_free(p);
        return raise_code(e, what), NULL;
    }
    Py_INCREF(p->fut);
    return p->fut;
}

/* ------------------------------------------------------------------------
 * Pipeline
 * ------------------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD Client *owner;
    aredis_pipeline *p; /* NULL once dropped */
    dep d;
} Pipeline;

static PyTypeObject PipelineType;

/* Free the C pipeline. A batch or a WATCH still in flight finishes from
 * its own callbacks, which complete their futures as usual. */
static void pipeline_drop(dep *d)
{
    Pipeline *self = (Pipeline *)((char *)d - offsetof(Pipeline, d));
    aredis_pipeline_free(self->p);
    self->p = NULL;
}

static int pipeline_ready(Pipeline *self)
{
    return dependent_ready(self->p, self->owner, "pipeline");
}

static int pipeline_init(Pipeline *self, PyObject *args, PyObject *kw)
{
    Client *c;
    int tx = 1;
    if (dependent_args(args, kw, "transaction", &c, &tx, self->owner) != 0)
        return -1;
    self->p = aredis_pipeline_new(c->c, tx);
    return dependent_link(c, self->p, &self->owner, &self->d, pipeline_drop);
}

static void pipeline_dealloc(Pipeline *self)
{
    dependent_dealloc((PyObject *)self, self->p, self->owner, &self->d);
}

static void on_pipeline(aredis_pipeline *pl, const aredis_reply *r, void *ud)
{
    (void)pl;
    pending *p = ud;
    deliver(p, r);
    pending_free(p);
}

/* A command for the pipeline, encoded into a. */
static int pipeline_args(Pipeline *self, argbuf *a, PyObject *const *args,
                         Py_ssize_t n)
{
    if (pipeline_ready(self) != 0)
        return -1;
    return argbuf_fill(a, args, n, self->owner->encoding);
}

static PyObject *pipeline_command(Pipeline *self, PyObject *const *args,
                                  Py_ssize_t n)
{
    argbuf a;
    if (pipeline_args(self, &a, args, n) != 0)
        return NULL;
    int e = aredis_pipeline_commandv(self->p, a.argc, a.argv, a.lens);
    argbuf_clear(&a);
    if (e != 0)
        return raise_code(e, "cannot queue the command"), NULL;
    Py_RETURN_NONE;
}

static PyObject *pipeline_immediate(Pipeline *self, PyObject *const *args,
                                    Py_ssize_t n)
{
    argbuf a;
    if (pipeline_args(self, &a, args, n) != 0)
        return NULL;
    pending *p = pending_new(self->owner, (PyObject *)self, NULL, NULL);
    if (p == NULL) {
        argbuf_clear(&a);
        return NULL;
    }
    int e = aredis_pipeline_immediatev(self->p, on_pipeline, p, a.argc, a.argv,
                                       a.lens);
    argbuf_clear(&a);
    return submitted(p, e, "cannot send the command");
}

static PyObject *pipeline_execute(Pipeline *self, PyObject *unused)
{
    (void)unused;
    if (pipeline_ready(self) != 0)
        return NULL;
    pending *p = pending_new(self->owner, (PyObject *)self, NULL, NULL);
    if (p == NULL)
        return NULL;
    int e = aredis_pipeline_execute(self->p, on_pipeline, p);
    return submitted(p, e, "cannot execute the pipeline");
}

static PyObject *pipeline_watch(Pipeline *self, PyObject *const *args,
                                Py_ssize_t n)
{
    if (pipeline_ready(self) != 0)
        return NULL;
    argbuf a;
    PyObject *name = PyUnicode_FromString("WATCH");
    if (name == NULL)
        return NULL;
    /* Encode as a command so keys get the usual conversions; skip WATCH. */
    PyObject **all = PyMem_Calloc((size_t)n + 1, sizeof *all);
    if (all == NULL) {
        Py_DECREF(name);
        return PyErr_NoMemory();
    }
    all[0] = name;
    for (Py_ssize_t i = 0; i < n; i++)
        all[i + 1] = args[i];
    int rc = argbuf_fill(&a, all, n + 1, self->owner->encoding);
    PyMem_Free(all);
    Py_DECREF(name);
    if (rc != 0)
        return NULL;
    for (int i = 1; i < a.argc; i++)
        if (memchr(a.argv[i], '\0', a.lens[i]) != NULL) {
            argbuf_clear(&a);
            PyErr_SetString(PyExc_ValueError,
                            "a watched key cannot contain a NUL byte");
            return NULL;
        }
    pending *p = pending_new(self->owner, (PyObject *)self, NULL, NULL);
    if (p == NULL) {
        argbuf_clear(&a);
        return NULL;
    }
    int e =
        aredis_pipeline_watch(self->p, on_pipeline, p, a.argc - 1, a.argv + 1);
    argbuf_clear(&a);
    return submitted(p, e, "cannot watch");
}

static PyObject *pipeline_multi(Pipeline *self, PyObject *unused)
{
    (void)unused;
    if (pipeline_ready(self) != 0)
        return NULL;
    int e = aredis_pipeline_multi(self->p);
    if (e != 0)
        return raise_code(e, "cannot start MULTI"), NULL;
    Py_RETURN_NONE;
}

/* Empty the queue and give back a WATCH connection. A pipeline whose
 * batch or WATCH is still in flight (its awaiter was cancelled: reset()
 * runs on the way out of `async with`) cannot be reset: it is dropped
 * instead, and the Python side makes a new one on next use. */
static PyObject *pipeline_reset(Pipeline *self, PyObject *unused)
{
    (void)unused;
    if (self->p != NULL && aredis_pipeline_reset(self->p) != 0)
        dep_drop(&self->d);
    Py_RETURN_NONE;
}

static PyObject *pipeline_get_closed(Pipeline *self, void *closure)
{
    (void)closure;
    return PyBool_FromLong(self->p == NULL);
}

static PyGetSetDef pipeline_getset[] = {
    {"closed", (getter)pipeline_get_closed, NULL,
     "True once the C pipeline is gone (client closed, or dropped by a "
     "reset() while busy): a new one is needed.",
     NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyObject *pipeline_size(Pipeline *self, PyObject *unused)
{
    (void)unused;
    return PyLong_FromSize_t(self->p ? aredis_pipeline_size(self->p) : 0);
}

static PyObject *pipeline_watching(Pipeline *self, PyObject *unused)
{
    (void)unused;
    return PyBool_FromLong(self->p ? aredis_pipeline_watching(self->p) : 0);
}

static PyMethodDef pipeline_methods[] = {
    {"command", (PyCFunction)(void (*)(void))pipeline_command, METH_FASTCALL,
     "Queue a command."},
    {"immediate", (PyCFunction)(void (*)(void))pipeline_immediate,
     METH_FASTCALL, "Send a command now on the WATCH connection."},
    {"execute", (PyCFunction)pipeline_execute, METH_NOARGS,
     "Send the queued commands; a future of the list of replies."},
    {"watch", (PyCFunction)(void (*)(void))pipeline_watch, METH_FASTCALL,
     "WATCH keys on an exclusive connection; a future."},
    {"multi", (PyCFunction)pipeline_multi, METH_NOARGS,
     "Start buffering after WATCH."},
    {"reset", (PyCFunction)pipeline_reset, METH_NOARGS,
     "Empty the queue and give back a WATCH connection."},
    {"size", (PyCFunction)pipeline_size, METH_NOARGS, "Commands queued."},
    {"watching", (PyCFunction)pipeline_watching, METH_NOARGS,
     "True while a WATCH is held."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject PipelineType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "aredis._core.Pipeline",
    .tp_basicsize = sizeof(Pipeline),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)pipeline_init,
    .tp_dealloc = (destructor)pipeline_dealloc,
    .tp_methods = pipeline_methods,
    .tp_getset = pipeline_getset,
};

/* ------------------------------------------------------------------------
 * PubSub
 * ------------------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD Client *owner;
    aredis_pubsub *ps; /* NULL once closed */
    dep d;
} PubSub;

/* Leave every subscription and free; waiting get_message() calls
 * complete with None. */
static void pubsub_drop(dep *d)
{
    PubSub *self = (PubSub *)((char *)d - offsetof(PubSub, d));
    aredis_pubsub_free(self->ps);
    self->ps = NULL;
}

static int pubsub_ready(PubSub *self)
{
    return dependent_ready(self->ps, self->owner, "pubsub");
}

static PyObject *message_dict(const conv *cv, const aredis_pubsub_message *m)
{
    PyObject *d = PyDict_New(), *v;
    if (d == NULL)
        return NULL;
    int k = m->kind >= 0 && m->kind < 16 ? m->kind : 0;
    if (PyDict_SetItem(d, s_type, kind_names[k]) != 0)
        goto fail;
    v = m->pattern ? make_text(cv, m->pattern, m->pattern_len)
                   : (Py_INCREF(Py_None), Py_None);
    if (v == NULL || PyDict_SetItem(d, s_pattern, v) != 0)
        goto fail_v;
    Py_DECREF(v);
    if (m->channel)
        v = make_text(cv, m->channel, m->channel_len);
    else if (m->pattern)
        v = make_text(cv, m->pattern, m->pattern_len);
    else
        v = (Py_INCREF(Py_None), Py_None);
    if (v == NULL || PyDict_SetItem(d, s_channel, v) != 0)
        goto fail_v;
    Py_DECREF(v);
    if (m->kind == AREDIS_PUBSUB_MESSAGE || m->kind == AREDIS_PUBSUB_PMESSAGE ||
        m->kind == AREDIS_PUBSUB_SMESSAGE)
        v = make_text(cv, m->data ? m->data : "", m->data_len);
    else
        v = PyLong_FromLongLong(m->count);
    if (v == NULL || PyDict_SetItem(d, s_data, v) != 0)
        goto fail_v;
    Py_DECREF(v);
    /* For a pattern subscription, redis-py reports the pattern as the
     * channel of the confirmation and no pattern. */
    if (m->kind == AREDIS_PUBSUB_PSUBSCRIBE ||
        m->kind == AREDIS_PUBSUB_PUNSUBSCRIBE) {
        if (PyDict_SetItem(d, s_pattern, Py_None) != 0)
            goto fail;
    }
    return d;
fail_v:
    Py_XDECREF(v);
fail:
    Py_DECREF(d);
    return NULL;
}

static void on_event(aredis_pubsub *ps, const aredis_pubsub_message *m,
                     void *ud)
{
    /* AREDIS_PUBSUB_RESUBSCRIBED: redis-py has no such message; the
     * subscriptions are back, nothing to tell. */
    (void)ps;
    (void)m;
    (void)ud;
}

static int pubsub_init(PubSub *self, PyObject *args, PyObject *kw)
{
    Client *c;
    int ignore = 0;
    if (dependent_args(args, kw, "ignore_subscribe_messages", &c, &ignore,
                       self->owner) != 0)
        return -1;
    aredis_pubsub_options o = {.ignore_subscribe_messages = ignore,
                               .event_handler = on_event};
    self->ps = aredis_pubsub_new(c->c, &o);
    return dependent_link(c, self->ps, &self->owner, &self->d, pubsub_drop);
}

static void pubsub_dealloc(PubSub *self)
{
    dependent_dealloc((PyObject *)self, self->ps, self->owner, &self->d);
}

/* Message handlers are called by the Python layer when it reads a message
 * (as the documented API does: get_message(), listen() and run_in_thread()
 * dispatch them), so every subscription here queues its messages. */
typedef int (*sub_fn)(aredis_pubsub *, const char *, aredis_pubsub_handler,
                      void *);
typedef int (*unsub_fn)(aredis_pubsub *, const char *);

static PyObject *do_subscribe(PubSub *self, PyObject *name, sub_fn fn)
{
    if (pubsub_ready(self) != 0)
        return NULL;
    argbuf a;
    if (argbuf_fill(&a, &name, 1, self->owner->encoding) != 0)
        return NULL;
    if (memchr(a.argv[0], '\0', a.lens[0]) != NULL) {
        argbuf_clear(&a);
        PyErr_SetString(PyExc_ValueError, "a channel cannot contain NUL");
        return NULL;
    }
    int e = fn(self->ps, a.argv[0], NULL, NULL);
    argbuf_clear(&a);
    if (e != 0)
        return raise_code(e, "cannot subscribe"), NULL;
    Py_RETURN_NONE;
}

static PyObject *do_unsubscribe(PubSub *self, PyObject *args, unsub_fn fn)
{
    PyObject *name = Py_None;
    if (!PyArg_ParseTuple(args, "|O", &name))
        return NULL;
    if (pubsub_ready(self) != 0)
        return NULL;
    int e;
    if (name == Py_None) {
        e = fn(self->ps, NULL);
    } else {
        argbuf a;
        if (argbuf_fill(&a, &name, 1, self->owner->encoding) != 0)
            return NULL;
        e = fn(self->ps, a.argv[0]);
        argbuf_clear(&a);
    }
    if (e != 0)
        return raise_code(e, "cannot unsubscribe"), NULL;
    Py_RETURN_NONE;
}

static PyObject *pubsub_subscribe(PubSub *s, PyObject *a)
{
    return do_subscribe(s, a, aredis_pubsub_subscribe);
}
static PyObject *pubsub_psubscribe(PubSub *s, PyObject *a)
{
    return do_subscribe(s, a, aredis_pubsub_psubscribe);
}
static PyObject *pubsub_unsubscribe(PubSub *s, PyObject *a)
{
    return do_unsubscribe(s, a, aredis_pubsub_unsubscribe);
}
static PyObject *pubsub_punsubscribe(PubSub *s, PyObject *a)
{
    return do_unsubscribe(s, a, aredis_pubsub_punsubscribe);
}

typedef struct {
    PyObject *fut;
    PubSub *self;
} msg_wait;

static void on_message(aredis_pubsub *ps, const aredis_pubsub_message *m,
                       int status, void *ud)
{
    (void)ps;
    msg_wait *w = ud;
    if (m != NULL) {
        PyObject *d = message_dict(&w->self->owner->cv, m);
        if (d == NULL)
            settle_exc(w->fut);
        else
            fut_settle(w->fut, d, 0);
    } else if (status == AREDIS_ETIMEDOUT || status == AREDIS_ECANCELED) {
        Py_INCREF(Py_None);
        fut_settle(w->fut, Py_None, 0);
    } else {
        raise_code(status, "get_message");
        settle_exc(w->fut);
    }
    Py_DECREF(w->fut);
    Py_DECREF(w->self);
    PyMem_Free(w);
}

static PyObject *pubsub_get_message(PubSub *self, PyObject *args)
{
    long long timeout_ms = -1;
    if (!PyArg_ParseTuple(args, "|L", &timeout_ms))
        return NULL;
    if (pubsub_ready(self) != 0)
        return NULL;
    if (check_loop(self->owner) != 0)
        return NULL;
    msg_wait *w = PyMem_Malloc(sizeof *w);
    if (w == NULL)
        return PyErr_NoMemory();
    w->fut = fut_new(self->owner->aloop);
    if (w->fut == NULL) {
        PyMem_Free(w);
        return NULL;
    }
    w->self = self;
    Py_INCREF(self);
    int e =
        aredis_pubsub_get_message(self->ps, (int64_t)timeout_ms, on_message, w);
    if (e != 0) {
        Py_DECREF(w->fut);
        Py_DECREF(self);
        PyMem_Free(w);
        return raise_code(e, "get_message"), NULL;
    }
    Py_INCREF(w->fut);
    return w->fut;
}

static PyObject *pubsub_poll(PubSub *self, PyObject *unused)
{
    (void)unused;
    if (self->ps == NULL)
        Py_RETURN_NONE;
    aredis_pubsub_message *m = aredis_pubsub_poll(self->ps);
    if (m == NULL)
        Py_RETURN_NONE;
    PyObject *d = message_dict(&self->owner->cv, m);
    aredis_pubsub_message_free(m);
    return d;
}

static PyObject *pubsub_subscriptions(PubSub *self, PyObject *unused)
{
    (void)unused;
    return PyLong_FromSize_t(self->ps ? aredis_pubsub_subscriptions(self->ps)
                                      : 0);
}

static PyObject *pubsub_close(PubSub *self, PyObject *unused)
{
    (void)unused;
    if (self->ps != NULL)
        dep_drop(&self->d);
    Py_RETURN_NONE;
}

static PyObject *pubsub_get_closed(PubSub *self, void *closure)
{
    (void)closure;
    return PyBool_FromLong(self->ps == NULL);
}

static PyGetSetDef pubsub_getset[] = {
    {"closed", (getter)pubsub_get_closed, NULL,
     "True once closed, by close() or with the client.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMethodDef pubsub_methods[] = {
    {"subscribe", (PyCFunction)pubsub_subscribe, METH_O, "subscribe(channel)"},
    {"psubscribe", (PyCFunction)pubsub_psubscribe, METH_O,
     "psubscribe(pattern)"},
    {"unsubscribe", (PyCFunction)pubsub_unsubscribe, METH_VARARGS,
     "unsubscribe(channel=None)"},
    {"punsubscribe", (PyCFunction)pubsub_punsubscribe, METH_VARARGS,
     "punsubscribe(pattern=None)"},
    {"get_message", (PyCFunction)pubsub_get_message, METH_VARARGS,
     "get_message(timeout_ms=-1): a future of the next message or None"},
    {"poll", (PyCFunction)pubsub_poll, METH_NOARGS,
     "The next queued message, or None."},
    {"subscriptions", (PyCFunction)pubsub_subscriptions, METH_NOARGS,
     "Channels and patterns held."},
    {"close", (PyCFunction)pubsub_close, METH_NOARGS,
     "Leave every subscription."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject PubSubType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "aredis._core.PubSub",
    .tp_basicsize = sizeof(PubSub),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)pubsub_init,
    .tp_dealloc = (destructor)pubsub_dealloc,
    .tp_methods = pubsub_methods,
    .tp_getset = pubsub_getset,
};

/* ------------------------------------------------------------------------
 * Response callbacks that are hot enough to be worth C
 * ------------------------------------------------------------------------ */

/* "OK" (as bytes or str) -> True; anything else unchanged. */
static PyObject *cb_bool_ok(PyObject *m, PyObject *r)
{
    (void)m;
    if ((PyBytes_Check(r) && PyBytes_GET_SIZE(r) == 2 &&
         memcmp(PyBytes_AS_STRING(r), "OK", 2) == 0) ||
        (PyUnicode_Check(r) && PyUnicode_CompareWithASCIIString(r, "OK") == 0))
        Py_RETURN_TRUE;
    Py_INCREF(r);
    return r;
}

/* Integer-ish -> bool; None stays None. */
static PyObject *cb_to_bool(PyObject *m, PyObject *r)
{
    (void)m;
    if (r == Py_None)
        Py_RETURN_NONE;
    int t = PyObject_IsTrue(r);
    if (t < 0)
        return NULL;
    return PyBool_FromLong(t);
}

static PyObject *configure(PyObject *m, PyObject *args, PyObject *kw)
{
    (void)m;
    static const char *kwlist[] = {"codes", "prefixes", "server_default",
                                   "client_default", NULL};
    PyObject *c, *p, *sd, *cd;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O!O!OO", (char **)kwlist,
                                     &PyDict_Type, &c, &PyDict_Type, &p, &sd,
                                     &cd))
        return NULL;
    Py_INCREF(c);
    Py_INCREF(p);
    Py_INCREF(sd);
    Py_INCREF(cd);
    Py_XSETREF(err_codes, c);
    Py_XSETREF(err_prefixes, p);
    Py_XSETREF(err_server_default, sd);
    Py_XSETREF(err_client_default, cd);
    Py_RETURN_NONE;
}

static PyObject *version(PyObject *m, PyObject *unused)
{
    (void)m;
    (void)unused;
    return PyUnicode_FromString(aredis_version_string());
}

static PyMethodDef module_methods[] = {
    {"configure", (PyCFunction)(void (*)(void))configure,
     METH_VARARGS | METH_KEYWORDS, "Set the exception classes."},
    {"bool_ok", cb_bool_ok, METH_O, "b'OK' -> True"},
    {"to_bool", cb_to_bool, METH_O, "int -> bool (None stays None)"},
    {"libaredis_version", version, METH_NOARGS, "The C library's version."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    "aredis._core",
    "The C core of the aredis asyncio client.",
    -1,
    module_methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC PyInit__core(void)
{
    static const char *kinds[16] = {
        [0] = "unknown",
        [AREDIS_PUBSUB_MESSAGE] = "message",
        [AREDIS_PUBSUB_PMESSAGE] = "pmessage",
        [AREDIS_PUBSUB_SMESSAGE] = "smessage",
        [AREDIS_PUBSUB_SUBSCRIBE] = "subscribe",
        [AREDIS_PUBSUB_UNSUBSCRIBE] = "unsubscribe",
        [AREDIS_PUBSUB_PSUBSCRIBE] = "psubscribe",
        [AREDIS_PUBSUB_PUNSUBSCRIBE] = "punsubscribe",
        [AREDIS_PUBSUB_SSUBSCRIBE] = "ssubscribe",
        [AREDIS_PUBSUB_SUNSUBSCRIBE] = "sunsubscribe",
        [AREDIS_PUBSUB_RESUBSCRIBED] = "resubscribed",
    };
    for (int i = 0; i < 16; i++)
        if ((kind_names[i] = PyUnicode_InternFromString(
                 kinds[i] ? kinds[i] : "unknown")) == NULL)
            return NULL;
    if ((s_cancel = PyUnicode_InternFromString("cancel")) == NULL ||
        (s_is_running = PyUnicode_InternFromString("is_running")) == NULL ||
        (s_type = PyUnicode_InternFromString("type")) == NULL ||
        (s_pattern = PyUnicode_InternFromString("pattern")) == NULL ||
        (s_channel = PyUnicode_InternFromString("channel")) == NULL ||
        (s_data = PyUnicode_InternFromString("data")) == NULL)
        return NULL;
    if (PyType_Ready(&TriggerType) < 0 || PyType_Ready(&ClientType) < 0 ||
        PyType_Ready(&PipelineType) < 0 || PyType_Ready(&PubSubType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module_def);
    if (m == NULL)
        return NULL;
    PyObject *asyncio = PyImport_ImportModule("asyncio");
    if (asyncio == NULL) {
        Py_DECREF(m);
        return NULL;
    }
    get_running_loop = PyObject_GetAttrString(asyncio, "get_running_loop");
    Py_DECREF(asyncio);
    if (get_running_loop == NULL || fut_module_init(m) != 0) {
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(&ClientType);
    Py_INCREF(&PipelineType);
    Py_INCREF(&PubSubType);
    if (PyModule_AddObject(m, "Client", (PyObject *)&ClientType) < 0 ||
        PyModule_AddObject(m, "Pipeline", (PyObject *)&PipelineType) < 0 ||
        PyModule_AddObject(m, "PubSub", (PyObject *)&PubSubType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
#define ERRCONST(name, value, msg)                      \
    if (PyModule_AddIntConstant(m, #name, value) < 0) { \
        Py_DECREF(m);                                   \
        return NULL;                                    \
    }
    AREDIS_ERRNO_MAP(ERRCONST)
#undef ERRCONST
    return m;
}
