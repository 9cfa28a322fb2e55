/* Locks: two workers on one client share a lock; the second waits and is
 * woken by the first one's release, not by polling.
 *
 *     ./lock redis://127.0.0.1:6379/4
 *
 * Each worker, holding the lock, increments a counter with GET + SET (a
 * lost update without the lock) and prints its fencing token, which a
 * resource would check to turn away a holder that was paused past its
 * TTL. The second worker also extends its lock before releasing it.
 * Exits non-zero unless both got the lock in turn, the tokens grew, the
 * counter went up by 2 and the second worker was never polled. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <aredis/aredis.h>

typedef struct worker {
    const char *name;
    aredis_lock *lock;
    long long counter;
    int done;
} worker;

static worker w1 = {.name = "first"}, w2 = {.name = "second"};
static int failed, finished;
static long long start_value;

static void stop_if_finished(aredis_client *c)
{
    if (++finished < 2)
        return;
    aredis_lock_stats st;
    aredis_lock_get_stats(w2.lock, &st);
    printf("second waited: %d attempts, %d wake-ups, %d polls\n", st.attempts,
           st.wakeups, st.polls);
    failed |= st.polls != 0 || w2.counter != start_value + 2 ||
              aredis_lock_fence(w2.lock) <= aredis_lock_fence(w1.lock);
    aredis_lock_free(w1.lock);
    aredis_lock_free(w2.lock);
    aredis_client_free(c);
}

static void on_released(aredis_lock *l, int status, void *ud)
{
    worker *w = ud;
    printf("%s: released (%s)\n", w->name,
           status == 0 ? "ok" : aredis_strerror(status));
    failed |= status != 0;
    stop_if_finished(aredis_lock_client(l));
}

static void on_extended(aredis_lock *l, int status, void *ud)
{
    worker *w = ud;
    printf("%s: extended, %lld ms of validity left\n", w->name,
           (long long)aredis_lock_validity_ms(l));
    failed |= status != 0;
    aredis_lock_release(l, on_released, w);
}

static void on_set(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    worker *w = ud;
    failed |= r->type == AREDIS_REPLY_ERROR;
    if (w == &w2)
        aredis_lock_extend(w->lock, 5000, AREDIS_LOCK_EXTEND_ADD, on_extended,
                           w);
    else
        aredis_lock_release(w->lock, on_released, w);
}

static void on_get(aredis_client *c, const aredis_reply *r, void *ud)
{
    worker *w = ud;
    long long v = r->type == AREDIS_REPLY_STRING ? atoll(r->str) : 0;
    if (w == &w1)
        start_value = v;
    w->counter = v + 1;
    printf("%s: holds the lock (fencing token %lld), counter %lld -> %lld\n",
           w->name, aredis_lock_fence(w->lock), v, w->counter);
    aredis_command(c, on_set, w, "SET lock-example:counter %lld", w->counter);
}

static void on_acquired(aredis_lock *l, int status, void *ud)
{
    worker *w = ud;
    if (status != 0) {
        printf("%s: not acquired: %s\n", w->name, aredis_strerror(status));
        failed = 1;
        stop_if_finished(aredis_lock_client(l));
        return;
    }
    aredis_command(aredis_lock_client(l), on_get, w,
                   "GET lock-example:counter");
}

int main(int argc, char **argv)
{
    const char *url = argc > 1 ? argv[1] : getenv("REDIS_URL");
    aredis_loop *loop = aredis_loop_new();
    aredis_status st;
    aredis_client *c = aredis_client_new(
        loop, &(aredis_options){.url = url ? url : "redis://127.0.0.1:6379/4"},
        &st);
    if (c == NULL) {
        fprintf(stderr, "%s\n", st.msg);
        return 1;
    }
    /* The poll interval only matters if a release notification is lost;
     * here the second worker is woken by the first one's release. */
    aredis_lock_options o = {.ttl_ms = 10000, .fence = 1, .poll_ms = 5000};
    w1.lock = aredis_lock_new(c, "lock-example", &o, &st);
    w2.lock = aredis_lock_new(c, "lock-example", &o, &st);
    if (w1.lock == NULL || w2.lock == NULL) {
        fprintf(stderr, "%s\n", st.msg);
        return 1;
    }
    aredis_lock_acquire(w1.lock, 0, on_acquired, &w1);
    aredis_lock_acquire(w2.lock, 5000, on_acquired, &w2);
    aredis_loop_run(loop);
    aredis_loop_free(loop);
    printf("%s\n", failed ? "FAILED" : "ok");
    return failed;
}
