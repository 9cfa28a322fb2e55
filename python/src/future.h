/* aredis._core.Future: the futures the extension's commands return.
 *
 * An asyncio-compatible future (the protocol asyncio's Task, gather,
 * wait_for, shield, wait and run_until_complete use), with one difference
 * from asyncio.Future: a future completed while one of the extension's
 * loop callbacks runs (a reply read from a socket) does not hand its done
 * callbacks to loop.call_soon(); they run when that loop callback returns,
 * in the same loop iteration (see fut_batch_begin()).
 *
 * Every function here runs on the future's loop thread with the GIL held. */
#ifndef AREDIS_PY_FUTURE_H
#define AREDIS_PY_FUTURE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* Set up the type and its module-wide objects; adds "Future" to m. */
int fut_module_init(PyObject *m);

/* A new pending future of the asyncio loop `loop`. */
PyObject *fut_new(PyObject *loop);

/* Complete `fut` with `value` (an exception instance when is_error).
 * Consumes `value`. A future already done (cancelled by its awaiter) is
 * left as it is. */
void fut_settle(PyObject *fut, PyObject *value, int is_error);

/* The done callbacks of the futures of `loop` completed between
 * fut_batch_begin() and fut_batch_end() run at fut_batch_end() instead of
 * going through loop.call_soon(): the loop callback that read a reply
 * resumes the coroutine awaiting it before it returns, and the coroutine's
 * next command leaves in the same loop iteration. At most FUT_BATCH_MAX
 * callbacks wait so; the next ones go through call_soon (after those, as
 * they completed after them). Nested calls join the outer batch.
 *
 * fut_batch_end() returns -1 with an exception set when a callback, or the
 * loop's exception handler, raised SystemExit or KeyboardInterrupt (as
 * asyncio's handles, it lets those stop the loop); the callbacks not run
 * yet then go through call_soon. Other exceptions go to the loop's
 * exception handler, as asyncio's Handle reports them. */
#define FUT_BATCH_MAX 32

typedef struct fut_batch {
    PyObject *loop; /* borrowed */
    int n;
    struct {
        PyObject *cb, *ctx, *fut;
    } v[FUT_BATCH_MAX];
    struct fut_batch *outer;
} fut_batch;

void fut_batch_begin(fut_batch *b, PyObject *loop);

/* The asyncio loop running on this thread, when it is inside one of the
 * extension's loop callbacks or running the callbacks of its batch;
 * NULL when that is not known (borrowed). A cheap answer to "which loop
 * runs here" where it applies: asyncio.get_running_loop() makes a system
 * call (getpid) each time. */
PyObject *fut_running_loop(void);
int fut_batch_end(fut_batch *b);

#endif
