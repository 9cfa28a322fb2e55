/* aredis._core.Future (see future.h).
 *
 * Why a future of our own: with asyncio.Future, a reply read in one loop
 * iteration resumes its coroutine only in the next one (set_result() hands
 * the task's wake-up to call_soon), and that iteration costs an extra
 * epoll_wait and a pass through the loop per awaited command. Here the
 * wake-up runs as soon as the loop callback that read the reply returns;
 * the coroutine's next command is written before the loop polls again.
 *
 * The rest is asyncio.Future's behaviour, as its Task and helpers rely on
 * it: `await` yields the future itself while pending (with
 * _asyncio_future_blocking set), add_done_callback(fn, context=) on a done
 * future schedules fn with call_soon, cancel(msg) completes it with
 * CancelledError, result() and exception() raise InvalidStateError while
 * pending, result() raises the exception with the traceback it had when
 * it was set (a re-raise does not add to it), a future whose exception
 * nobody retrieved reports it to the loop's exception handler when it is
 * destroyed, and futures can be weakly referenced (asyncio's WeakSets). */
#include "future.h"

#include <stddef.h>

/* am_send (await without a StopIteration per result) needs this flag. */
#ifdef Py_TPFLAGS_HAVE_AM_SEND
#define FUT_AM_SEND Py_TPFLAGS_HAVE_AM_SEND
#else
#define FUT_AM_SEND 0
#endif

enum { FUT_PENDING, FUT_RESULT, FUT_EXCEPTION, FUT_CANCELLED };

typedef struct {
    PyObject_HEAD PyObject *loop;
    PyObject *value;      /* result or exception, once done */
    PyObject *cancel_msg; /* cancel(msg) */
    PyObject *cb, *ctx;   /* the first done callback and its context */
    PyObject *more;       /* list of further (callback, context) tuples */
    PyObject *exc_tb;     /* the exception's traceback when it was set */
    PyObject *weakrefs;
    unsigned char state;
    unsigned char blocking;
    unsigned char log_tb; /* an exception nobody retrieved yet */
} Future;

static PyTypeObject FutureType;
static PyObject *cancelled_error, *invalid_state_error;
static PyObject *s_call_soon, *s_call_exception_handler, *kw_context;
/* asyncio.events.Handle and asyncio.format_helpers._format_callback_source
 * (NULL when it is not there), for the report of a failing done callback. */
static PyObject *handle_type, *format_callback_source;

static _Thread_local fut_batch *tl_batch;
/* The loop whose batch is running its callbacks on this thread. */
static _Thread_local PyObject *tl_draining;

PyObject *fut_running_loop(void)
{
    return tl_batch != NULL ? tl_batch->loop : tl_draining;
}

/* ------------------------------------------------------------------------
 * Running done callbacks
 * ------------------------------------------------------------------------ */

/* loop.call_soon(cb, fut, context=ctx). Consumes cb and ctx. */
static void call_soon(PyObject *loop, PyObject *cb, PyObject *ctx,
                      PyObject *fut)
{
    PyObject *args[4] = {loop, cb, fut, ctx};
    PyObject *h = PyObject_VectorcallMethod(
        s_call_soon, args, 3 | PY_VECTORCALL_ARGUMENTS_OFFSET, kw_context);
    if (h == NULL) {
        if (PyErr_ExceptionMatches(PyExc_RuntimeError))
            PyErr_Clear(); /* "Event loop is closed": nobody to run it */
        else
            PyErr_WriteUnraisable(cb);
    }
    Py_XDECREF(h);
    Py_DECREF(cb);
    Py_DECREF(ctx);
}

/* A done callback of `fut`: now, in the batch of the running loop
 * callback, or through call_soon. Consumes cb and ctx. */
static void dispatch(Future *f, PyObject *cb, PyObject *ctx)
{
    fut_batch *b = tl_batch;
    if (b != NULL && b->loop == f->loop && b->n < FUT_BATCH_MAX) {
        b->v[b->n].cb = cb;
        b->v[b->n].ctx = ctx;
        Py_INCREF(f);
        b->v[b->n].fut = (PyObject *)f;
        b->n++;
        return;
    }
    call_soon(f->loop, cb, ctx, (PyObject *)f);
}

/* The future is done: hand over every callback, first added first. */
static void schedule_callbacks(Future *f)
{
    PyObject *cb = f->cb, *ctx = f->ctx, *more = f->more;
    f->cb = f->ctx = f->more = NULL;
    if (cb != NULL)
        dispatch(f, cb, ctx);
    if (more == NULL)
        return;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(more); i++) {
        PyObject *t = PyList_GET_ITEM(more, i);
        PyObject *c = PyTuple_GET_ITEM(t, 0), *x = PyTuple_GET_ITEM(t, 1);
        Py_INCREF(c);
        Py_INCREF(x);
        dispatch(f, c, x);
    }
    Py_DECREF(more);
}

void fut_batch_begin(fut_batch *b, PyObject *loop)
{
    b->loop = loop;
    b->n = 0;
    b->outer = tl_batch;
    if (tl_batch == NULL)
        tl_batch = b;
}

/* SystemExit and KeyboardInterrupt stop the loop: asyncio's handles and
 * its call_exception_handler() let them through. */
static int stops_loop(PyObject *exc_type)
{
    return PyErr_GivenExceptionMatches(exc_type, PyExc_SystemExit) ||
           PyErr_GivenExceptionMatches(exc_type, PyExc_KeyboardInterrupt);
}

/* Done callback cb(fut) raised `exc`: to the loop's exception handler,
 * with the context asyncio's Handle._run gives it (message, exception,
 * handle), from the context of the loop callback, not the callback's.
 * Returns -1 with SystemExit or KeyboardInterrupt set when the handler
 * raised one. */
static int report(PyObject *loop, PyObject *cb, PyObject *ctx, PyObject *fut,
                  PyObject *exc)
{
    PyObject *args = PyTuple_Pack(1, fut), *src = NULL, *handle = NULL,
             *msg = NULL, *context = NULL, *r = NULL;
    if (args == NULL)
        goto done;
    src = format_callback_source ? PyObject_CallFunctionObjArgs(
                                       format_callback_source, cb, args, NULL)
                                 : NULL;
    if (src == NULL && !stops_loop(PyErr_Occurred())) {
        PyErr_Clear();
        src = PyObject_Repr(cb);
    }
    handle = src ? PyObject_CallFunctionObjArgs(handle_type, cb, args, loop,
                                                ctx, NULL)
                 : NULL;
    msg = handle ? PyUnicode_FromFormat("Exception in callback %U", src) : NULL;
    context = msg ? Py_BuildValue("{sOsOsO}", "message", msg, "exception", exc,
                                  "handle", handle)
                  : NULL;
    r = context
            ? PyObject_CallMethodOneArg(loop, s_call_exception_handler, context)
            : NULL;
done:
    Py_XDECREF(args);
    Py_XDECREF(src);
    Py_XDECREF(handle);
    Py_XDECREF(msg);
    Py_XDECREF(context);
    if (r != NULL) {
        Py_DECREF(r);
        return 0;
    }
    if (stops_loop(PyErr_Occurred()))
        return -1;
    PyErr_WriteUnraisable(cb);
    return 0;
}

/* cb(fut) raised, in ctx: leave ctx, then as asyncio's Handle._run.
 * Returns -1 with SystemExit or KeyboardInterrupt set (from the callback,
 * or from the exception handler told of another exception). Out of line:
 * the path of every command runs run_callback(). */
Py_NO_INLINE static int callback_failed(PyObject *loop, PyObject *cb,
                                        PyObject *ctx, PyObject *fut)
{
    PyObject *t, *v, *tb;
    PyErr_Fetch(&t, &v, &tb);
    PyErr_NormalizeException(&t, &v, &tb);
    if (tb != NULL && v != NULL)
        PyException_SetTraceback(v, tb);
    if (PyContext_Exit(ctx) != 0)
        PyErr_WriteUnraisable(cb);
    if (stops_loop(t)) {
        PyErr_Restore(t, v, tb);
        return -1;
    }
    int rc = report(loop, cb, ctx, fut, v ? v : Py_None);
    Py_XDECREF(t);
    Py_XDECREF(v);
    Py_XDECREF(tb);
    return rc;
}

/* Run cb(fut) in ctx, entered already, and leave ctx. Returns -1 with
 * SystemExit or KeyboardInterrupt set. */
static int run_callback(PyObject *loop, PyObject *cb, PyObject *ctx,
                        PyObject *fut)
{
    PyObject *r = PyObject_CallOneArg(cb, fut);
    if (r == NULL)
        return callback_failed(loop, cb, ctx, fut);
    Py_DECREF(r);
    if (PyContext_Exit(ctx) != 0)
        PyErr_WriteUnraisable(cb);
    return 0;
}

int fut_batch_end(fut_batch *b)
{
    if (tl_batch != b)
        return 0; /* joined an outer batch */
    tl_batch = NULL;
    /* The loop callback's own error, if any, waits for the batch; so does
     * a SystemExit or KeyboardInterrupt from a callback, which then sends
     * the rest the usual way and replaces it. */
    PyObject *t, *v, *tb, *st = NULL, *sv = NULL, *stb = NULL;
    PyErr_Fetch(&t, &v, &tb);
    PyObject *outer_loop = tl_draining;
    tl_draining = b->loop;
    for (int i = 0; i < b->n; i++) {
        PyObject *cb = b->v[i].cb, *ctx = b->v[i].ctx, *fut = b->v[i].fut;
        if (st != NULL || PyContext_Enter(ctx) != 0) {
            /* Stopping the loop, or that context is running already. */
            PyErr_Clear();
            call_soon(b->loop, cb, ctx, fut);
            Py_DECREF(fut);
            continue;
        }
        if (run_callback(b->loop, cb, ctx, fut) != 0)
            PyErr_Fetch(&st, &sv, &stb);
        Py_DECREF(cb);
        Py_DECREF(ctx);
        Py_DECREF(fut);
    }
    tl_draining = outer_loop;
    b->n = 0;
    if (st != NULL) {
        Py_XDECREF(t);
        Py_XDECREF(v);
        Py_XDECREF(tb);
        PyErr_Restore(st, sv, stb);
        return -1;
    }
    PyErr_Restore(t, v, tb);
    return 0;
}

/* ------------------------------------------------------------------------
 * Completing
 * ------------------------------------------------------------------------ */

PyObject *fut_new(PyObject *loop)
{
    Future *f = PyObject_GC_New(Future, &FutureType);
    if (f == NULL)
        return NULL;
    Py_INCREF(loop);
    f->loop = loop;
    f->value = f->cancel_msg = f->cb = f->ctx = f->more = NULL;
    f->exc_tb = f->weakrefs = NULL;
    f->state = FUT_PENDING;
    f->blocking = 0;
    f->log_tb = 0;
    PyObject_GC_Track(f);
    return (PyObject *)f;
}

void fut_settle(PyObject *fut, PyObject *value, int is_error)
{
    Future *f = (Future *)fut;
    if (f->state != FUT_PENDING) {
        Py_DECREF(value);
        return;
    }
    f->value = value;
    f->state = FUT_RESULT;
    if (is_error) {
        f->state = FUT_EXCEPTION;
        f->exc_tb = PyException_GetTraceback(value);
        f->log_tb = 1;
    }
    schedule_callbacks(f);
}

/* A new CancelledError carrying the cancel() message. */
static PyObject *make_cancelled(Future *f)
{
    return f->cancel_msg ? PyObject_CallOneArg(cancelled_error, f->cancel_msg)
                         : PyObject_CallNoArgs(cancelled_error);
}

/* The CancelledError of a cancelled future, raised. */
static PyObject *raise_cancelled(Future *f)
{
    PyObject *e = make_cancelled(f);
    if (e != NULL) {
        PyErr_SetObject(cancelled_error, e);
        Py_DECREF(e);
    }
    return NULL;
}

/* The future's exception, raised. Each raise adds its frames to the
 * exception's traceback: it starts again from the one it had when it was
 * set. (Out of line, to keep result_of() small.) */
Py_NO_INLINE static PyObject *raise_exception(Future *f)
{
    f->log_tb = 0;
    PyException_SetTraceback(f->value, f->exc_tb ? f->exc_tb : Py_None);
    PyErr_SetObject((PyObject *)Py_TYPE(f->value), f->value);
    return NULL;
}

/* result(): a new reference, or NULL with the future's exception (or
 * CancelledError, or InvalidStateError) raised. */
static PyObject *result_of(Future *f)
{
    switch (f->state) {
    case FUT_RESULT:
        Py_INCREF(f->value);
        return f->value;
    case FUT_EXCEPTION:
        return raise_exception(f);
    case FUT_CANCELLED:
        return raise_cancelled(f);
    default:
        PyErr_SetString(invalid_state_error, "Result is not ready.");
        return NULL;
    }
}

/* ------------------------------------------------------------------------
 * await
 * ------------------------------------------------------------------------ */

static PyObject *fut_await(PyObject *self)
{
    Py_INCREF(self);
    return self;
}

static PySendResult fut_send(PyObject *self, PyObject *arg, PyObject **out)
{
    (void)arg;
    Future *f = (Future *)self;
    if (f->state == FUT_PENDING) {
        f->blocking = 1;
        Py_INCREF(self);
        *out = self;
        return PYGEN_NEXT;
    }
    *out = result_of(f);
    return *out == NULL ? PYGEN_ERROR : PYGEN_RETURN;
}

static PyObject *fut_iternext(PyObject *self)
{
    PyObject *r;
    PySendResult s = fut_send(self, Py_None, &r);
    if (s != PYGEN_RETURN)
        return r;
    if (r != Py_None) {
        /* StopIteration(r), built so that a tuple stays one value. */
        PyObject *e = PyObject_CallOneArg(PyExc_StopIteration, r);
        if (e != NULL) {
            PyErr_SetObject(PyExc_StopIteration, e);
            Py_DECREF(e);
        }
    }
    Py_DECREF(r);
    return NULL;
}

/* ------------------------------------------------------------------------
 * Methods
 * ------------------------------------------------------------------------ */

/* The coroutine protocol (send, throw, close) on the future itself: the
 * original library's command methods were coroutines, and programs pass
 * them to asyncio.create_task(), which takes what has these methods. As a
 * coroutine, a future awaits itself: send() yields it while pending and
 * stops with its result once done. */
static PyObject *fut_send_method(PyObject *self, PyObject *value)
{
    (void)value;
    PyObject *r = fut_iternext(self);
    if (r == NULL && !PyErr_Occurred())
        PyErr_SetNone(PyExc_StopIteration);
    return r;
}

static PyObject *fut_throw(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *typ, *val = Py_None, *tb = Py_None;
    if (!PyArg_UnpackTuple(args, "throw", 1, 3, &typ, &val, &tb))
        return NULL;
    if (PyExceptionInstance_Check(typ)) {
        PyErr_SetObject((PyObject *)Py_TYPE(typ), typ);
    } else if (PyExceptionClass_Check(typ)) {
        PyErr_SetObject(typ, val);
    } else {
        PyErr_SetString(PyExc_TypeError,
                        "exceptions must be classes or instances deriving "
                        "from BaseException");
        return NULL;
    }
    if (tb != Py_None && PyTraceBack_Check(tb)) {
        PyObject *t, *v, *old;
        PyErr_Fetch(&t, &v, &old);
        PyErr_NormalizeException(&t, &v, &old);
        Py_XDECREF(old);
        Py_INCREF(tb);
        PyErr_Restore(t, v, tb);
    }
    return NULL;
}

static PyObject *fut_close(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    Py_RETURN_NONE;
}

static PyObject *fut_result(PyObject *self, PyObject *unused)
{
    (void)unused;
    return result_of((Future *)self);
}

static PyObject *fut_exception(PyObject *self, PyObject *unused)
{
    (void)unused;
    Future *f = (Future *)self;
    switch (f->state) {
    case FUT_RESULT:
        Py_RETURN_NONE;
    case FUT_EXCEPTION:
        f->log_tb = 0;
        Py_INCREF(f->value);
        return f->value;
    case FUT_CANCELLED:
        return raise_cancelled(f);
    default:
        PyErr_SetString(invalid_state_error, "Exception is not set.");
        return NULL;
    }
}

static PyObject *fut_done(PyObject *self, PyObject *unused)
{
    (void)unused;
    return PyBool_FromLong(((Future *)self)->state != FUT_PENDING);
}

static PyObject *fut_cancelled(PyObject *self, PyObject *unused)
{
    (void)unused;
    return PyBool_FromLong(((Future *)self)->state == FUT_CANCELLED);
}

static PyObject *fut_get_loop(PyObject *self, PyObject *unused)
{
    (void)unused;
    Future *f = (Future *)self;
    Py_INCREF(f->loop);
    return f->loop;
}

/* One optional keyword-only or positional argument `name`. */
static int one_kwarg(const char *fn, const char *name, PyObject *const *args,
                     Py_ssize_t npos, Py_ssize_t maxpos, PyObject *kwnames,
                     PyObject **out)
{
    if (npos > maxpos) {
        PyErr_Format(PyExc_TypeError, "%s() takes too many arguments", fn);
        return -1;
    }
    if (maxpos > 0 && npos == maxpos)
        *out = args[npos - 1];
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    for (Py_ssize_t i = 0; i < nkw; i++) {
        PyObject *k = PyTuple_GET_ITEM(kwnames, i);
        if (!PyUnicode_Check(k) || PyUnicode_CompareWithASCIIString(k, name)) {
            PyErr_Format(PyExc_TypeError,
                         "%s() got an unexpected keyword argument %R", fn, k);
            return -1;
        }
        *out = args[npos + i];
    }
    return 0;
}

static PyObject *fut_add_done_callback(PyObject *self, PyObject *const *args,
                                       size_t nargsf, PyObject *kwnames)
{
    Future *f = (Future *)self;
    Py_ssize_t n = PyVectorcall_NARGS(nargsf);
    PyObject *ctx = Py_None;
    if (n < 1) {
        PyErr_SetString(PyExc_TypeError,
                        "add_done_callback() needs a callback");
        return NULL;
    }
    if (one_kwarg("add_done_callback", "context", args + 1, n - 1, 0, kwnames,
                  &ctx) != 0)
        return NULL;
    PyObject *cb = args[0];
    if (ctx == Py_None) {
        ctx = PyContext_CopyCurrent();
        if (ctx == NULL)
            return NULL;
    } else {
        Py_INCREF(ctx);
    }
    Py_INCREF(cb);
    if (f->state != FUT_PENDING) {
        call_soon(f->loop, cb, ctx, self);
        Py_RETURN_NONE;
    }
    if (f->cb == NULL) {
        f->cb = cb;
        f->ctx = ctx;
        Py_RETURN_NONE;
    }
    PyObject *t = PyTuple_Pack(2, cb, ctx);
    Py_DECREF(cb);
    Py_DECREF(ctx);
    if (t == NULL)
        return NULL;
    if (f->more == NULL && (f->more = PyList_New(0)) == NULL) {
        Py_DECREF(t);
        return NULL;
    }
    int e = PyList_Append(f->more, t);
    Py_DECREF(t);
    if (e != 0)
        return NULL;
    Py_RETURN_NONE;
}

/* fn's __eq__ may run any code, this method and add_done_callback()
 * included: the comparisons hold references of their own, and the list
 * is rebuilt from the one it started with. */
static PyObject *fut_remove_done_callback(PyObject *self, PyObject *fn)
{
    Future *f = (Future *)self;
    Py_ssize_t removed = 0;
    PyObject *cb = f->cb;
    if (cb != NULL) {
        Py_INCREF(cb);
        int eq = PyObject_RichCompareBool(cb, fn, Py_EQ);
        if (eq > 0 && f->cb == cb) {
            Py_CLEAR(f->cb);
            Py_CLEAR(f->ctx);
            removed++;
        }
        Py_DECREF(cb);
        if (eq < 0)
            return NULL;
    }
    PyObject *more = f->more;
    if (more != NULL) {
        Py_INCREF(more);
        PyObject *keep = PyList_New(0);
        for (Py_ssize_t i = 0; keep != NULL && i < PyList_GET_SIZE(more); i++) {
            PyObject *t = PyList_GET_ITEM(more, i);
            Py_INCREF(t);
            int eq =
                PyObject_RichCompareBool(PyTuple_GET_ITEM(t, 0), fn, Py_EQ);
            if (eq < 0 || (!eq && PyList_Append(keep, t) != 0))
                Py_CLEAR(keep);
            removed += eq > 0;
            Py_DECREF(t);
        }
        if (keep != NULL && f->more == more)
            Py_SETREF(f->more, keep);
        else
            Py_XDECREF(keep);
        Py_DECREF(more);
        if (keep == NULL)
            return NULL;
    }
    /* Keep the order: the first of the rest becomes the first. */
    if (f->cb == NULL && f->more != NULL && PyList_GET_SIZE(f->more) > 0) {
        PyObject *t = PyList_GET_ITEM(f->more, 0);
        f->cb = PyTuple_GET_ITEM(t, 0);
        f->ctx = PyTuple_GET_ITEM(t, 1);
        Py_INCREF(f->cb);
        Py_INCREF(f->ctx);
        if (PyList_SetSlice(f->more, 0, 1, NULL) != 0)
            return NULL;
    }
    return PyLong_FromSsize_t(removed);
}

static PyObject *fut_cancel(PyObject *self, PyObject *const *args,
                            size_t nargsf, PyObject *kwnames)
{
    Future *f = (Future *)self;
    PyObject *msg = Py_None;
    if (one_kwarg("cancel", "msg", args, PyVectorcall_NARGS(nargsf), 1, kwnames,
                  &msg) != 0)
        return NULL;
    if (f->state != FUT_PENDING)
        Py_RETURN_FALSE;
    f->state = FUT_CANCELLED;
    if (msg != Py_None) {
        Py_INCREF(msg);
        f->cancel_msg = msg;
    }
    schedule_callbacks(f);
    Py_RETURN_TRUE;
}

/* asyncio.gather() asks a cancelled child for these two (in 3.9 to 3.11
 * at least): without them its outer future never completes. */
static PyObject *fut_make_cancelled_error(PyObject *self, PyObject *unused)
{
    (void)unused;
    return make_cancelled((Future *)self);
}

static PyObject *get_cancel_message(PyObject *self, void *closure)
{
    (void)closure;
    Future *f = (Future *)self;
    PyObject *m = f->cancel_msg ? f->cancel_msg : Py_None;
    Py_INCREF(m);
    return m;
}

static int set_cancel_message(PyObject *self, PyObject *v, void *closure)
{
    (void)closure;
    Future *f = (Future *)self;
    if (v == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete attribute");
        return -1;
    }
    PyObject *m = v == Py_None ? NULL : v;
    Py_XINCREF(m);
    Py_XSETREF(f->cancel_msg, m);
    return 0;
}

static PyObject *get_blocking(PyObject *self, void *closure)
{
    (void)closure;
    return PyBool_FromLong(((Future *)self)->blocking);
}

/* The value v given to the flag attribute `name`: 0 or 1, or -1 with the
 * error raised. It cannot be deleted, nor set unless may_set. */
static int flag_value(PyObject *v, int may_set, const char *name)
{
    if (v == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete attribute");
        return -1;
    }
    int b = PyObject_IsTrue(v);
    if (b > 0 && !may_set) {
        PyErr_Format(PyExc_ValueError, "%s can only be set to False", name);
        return -1;
    }
    return b;
}

static int set_blocking(PyObject *self, PyObject *v, void *closure)
{
    (void)closure;
    Future *f = (Future *)self;
    if (v == Py_False) { /* what asyncio's Task sets, once per await */
        f->blocking = 0;
        return 0;
    }
    int b = flag_value(v, f->state == FUT_PENDING, "_asyncio_future_blocking");
    if (b < 0)
        return -1;
    f->blocking = (unsigned char)b;
    return 0;
}

static PyObject *get_log_traceback(PyObject *self, void *closure)
{
    (void)closure;
    return PyBool_FromLong(((Future *)self)->log_tb);
}

static int set_log_traceback(PyObject *self, PyObject *v, void *closure)
{
    (void)closure;
    if (flag_value(v, 0, "_log_traceback") < 0)
        return -1;
    ((Future *)self)->log_tb = 0;
    return 0;
}

static PyObject *get_loop_attr(PyObject *self, void *closure)
{
    (void)closure;
    return fut_get_loop(self, NULL);
}

static PyObject *fut_repr(PyObject *self)
{
    Future *f = (Future *)self;
    static const char *const names[] = {"pending", "finished", "finished",
                                        "cancelled"};
    if (f->state == FUT_RESULT)
        return PyUnicode_FromFormat("<aredis Future finished result=%.200R>",
                                    f->value);
    if (f->state == FUT_EXCEPTION)
        return PyUnicode_FromFormat("<aredis Future finished exception=%.200R>",
                                    f->value);
    return PyUnicode_FromFormat("<aredis Future %s>", names[f->state]);
}

static int fut_traverse(PyObject *self, visitproc visit, void *arg)
{
    Future *f = (Future *)self;
    Py_VISIT(f->loop);
    Py_VISIT(f->value);
    Py_VISIT(f->cancel_msg);
    Py_VISIT(f->cb);
    Py_VISIT(f->ctx);
    Py_VISIT(f->more);
    Py_VISIT(f->exc_tb);
    return 0;
}

static int fut_clear(PyObject *self)
{
    Future *f = (Future *)self;
    Py_CLEAR(f->loop);
    Py_CLEAR(f->value);
    Py_CLEAR(f->cancel_msg);
    Py_CLEAR(f->cb);
    Py_CLEAR(f->ctx);
    Py_CLEAR(f->more);
    Py_CLEAR(f->exc_tb);
    return 0;
}

/* An exception nobody retrieved (result(), exception(), await): to the
 * loop's exception handler, as asyncio.Future does when it is destroyed. */
static void fut_finalize(PyObject *self)
{
    Future *f = (Future *)self;
    if (!f->log_tb || f->loop == NULL || f->value == NULL)
        return;
    f->log_tb = 0;
    PyObject *t, *v, *tb;
    PyErr_Fetch(&t, &v, &tb);
    PyObject *ctx = Py_BuildValue("{sssOsO}", "message",
                                  "Future exception was never retrieved",
                                  "exception", f->value, "future", self);
    PyObject *r =
        ctx ? PyObject_CallMethodOneArg(f->loop, s_call_exception_handler, ctx)
            : NULL;
    if (r == NULL)
        PyErr_WriteUnraisable(self);
    Py_XDECREF(r);
    Py_XDECREF(ctx);
    PyErr_Restore(t, v, tb);
}

static void fut_dealloc(PyObject *self)
{
    Future *f = (Future *)self;
    /* Only a future with an exception to report has a finalizer to run. */
    if (f->log_tb && PyObject_CallFinalizerFromDealloc(self) < 0)
        return; /* resurrected by the exception handler */
    PyObject_GC_UnTrack(self);
    if (f->weakrefs != NULL)
        PyObject_ClearWeakRefs(self);
    (void)fut_clear(self);
    PyObject_GC_Del(self);
}

static PyMethodDef fut_methods[] = {
    {"result", fut_result, METH_NOARGS,
     "The result; raises the exception, CancelledError or "
     "InvalidStateError."},
    {"exception", fut_exception, METH_NOARGS, "The exception or None."},
    {"done", fut_done, METH_NOARGS, "Completed, failed or cancelled."},
    {"cancelled", fut_cancelled, METH_NOARGS, "Cancelled."},
    {"get_loop", fut_get_loop, METH_NOARGS, "The asyncio loop."},
    {"add_done_callback", (PyCFunction)(void (*)(void))fut_add_done_callback,
     METH_FASTCALL | METH_KEYWORDS,
     "add_done_callback(fn, *, context=None): fn(future) once done."},
    {"remove_done_callback", fut_remove_done_callback, METH_O,
     "Remove every instance of fn; returns how many."},
    {"cancel", (PyCFunction)(void (*)(void))fut_cancel,
     METH_FASTCALL | METH_KEYWORDS,
     "cancel(msg=None): True when it was pending. The command still "
     "completes on the server; its reply is dropped."},
    {"send", fut_send_method, METH_O,
     "send(value): as a coroutine awaiting this future (create_task)."},
    {"throw", fut_throw, METH_VARARGS,
     "throw(exc): raises exc, as a coroutine awaiting this future would."},
    {"close", fut_close, METH_NOARGS, "Nothing to close."},
    {"_make_cancelled_error", fut_make_cancelled_error, METH_NOARGS,
     "The CancelledError to raise for this future (asyncio.gather)."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef fut_getset[] = {
    {"_asyncio_future_blocking", get_blocking, set_blocking, NULL, NULL},
    {"_loop", get_loop_attr, NULL, NULL, NULL},
    {"_cancel_message", get_cancel_message, set_cancel_message, NULL, NULL},
    {"_log_traceback", get_log_traceback, set_log_traceback, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyAsyncMethods fut_async = {
    .am_await = fut_await,
    .am_send = fut_send,
};

static PyTypeObject FutureType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "aredis._core.Future",
    .tp_doc = "The future of a command: awaitable, asyncio-compatible.",
    .tp_basicsize = sizeof(Future),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | FUT_AM_SEND,
    .tp_as_async = &fut_async,
    .tp_iter = fut_await,
    .tp_iternext = fut_iternext,
    .tp_repr = fut_repr,
    .tp_traverse = fut_traverse,
    .tp_clear = fut_clear,
    .tp_dealloc = fut_dealloc,
    .tp_finalize = fut_finalize,
    .tp_weaklistoffset = offsetof(Future, weakrefs),
    .tp_methods = fut_methods,
    .tp_getset = fut_getset,
};

int fut_module_init(PyObject *m)
{
    PyObject *ex = PyImport_ImportModule("asyncio.exceptions");
    if (ex == NULL)
        return -1;
    cancelled_error = PyObject_GetAttrString(ex, "CancelledError");
    invalid_state_error = PyObject_GetAttrString(ex, "InvalidStateError");
    Py_DECREF(ex);
    if (cancelled_error == NULL || invalid_state_error == NULL)
        return -1;
    PyObject *events = PyImport_ImportModule("asyncio.events");
    if (events == NULL)
        return -1;
    handle_type = PyObject_GetAttrString(events, "Handle");
    Py_DECREF(events);
    if (handle_type == NULL)
        return -1;
    /* Private to asyncio: without it, the callback's repr() does. */
    PyObject *helpers = PyImport_ImportModule("asyncio.format_helpers");
    format_callback_source =
        helpers ? PyObject_GetAttrString(helpers, "_format_callback_source")
                : NULL;
    Py_XDECREF(helpers);
    PyErr_Clear();
    if ((s_call_soon = PyUnicode_InternFromString("call_soon")) == NULL ||
        (s_call_exception_handler =
             PyUnicode_InternFromString("call_exception_handler")) == NULL ||
        (kw_context = Py_BuildValue("(s)", "context")) == NULL)
        return -1;
    if (PyType_Ready(&FutureType) < 0)
        return -1;
    Py_INCREF(&FutureType);
    if (PyModule_AddObject(m, "Future", (PyObject *)&FutureType) < 0) {
        Py_DECREF(&FutureType);
        return -1;
    }
    return 0;
}
