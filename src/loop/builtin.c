/* The built-in event loop (loop layer).
 *
 * A small reactor in the manner of Redis's ae.c: one backend behind a table
 * of {init, destroy, add, del, mod, wait} (epoll on Linux, poll(2) as the
 * portable fallback), one-shot timers in the util heap, and a wake-up
 * descriptor (an eventfd, or a pipe) that any thread may write to. With
 * epoll, a far timer is watched through a timerfd (see far_wait). The
 * deferred-call queue and the run/stop logic live in loop.c, which calls
 * aredis__builtin_poll() once per iteration. Nothing here knows about
 * Redis, connections or clients, and nothing calls into a layer above. */
#include "loop/loop_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#endif

#include "aredis/error.h"
#include "util/alloc.h"
#include "util/heap.h"

#define EV_BOTH (AREDIS_EV_READ | AREDIS_EV_WRITE)
#define MIN_CAP 8
/* The most ready watchers one epoll_wait() returns (ready[] and evs[]
 * hold that many, whatever the number of registrations). */
#define EPOLL_BATCH 64
/* A wait bounded only by a timer this far away or more is left to the
 * timerfd (far_wait). */
#define FAR_MS 100

/* Intrusive circular doubly linked list; the head is a sentinel. Every
 * handle embeds one as its first member so a node is its handle. */
typedef struct node {
    struct node *prev, *next;
} node;

/* An io watcher. It is registered with the backend exactly while its
 * interest is nonzero: epoll reports errors and hang-ups even for an empty
 * interest, so "no interest" has to mean "not watched". */
typedef struct bio {
    /* In b->ios while started; once stopped in a batch, link.next chains
     * it on b->io_dead (a watcher per connection: 56 bytes, no spare
     * member). */
    node link;
    int fd;
    int interest;
    uint32_t pidx; /* poll backend: index in pfds/pws while registered */
    /* Set by a stop during a dispatch batch: the ready list may still
     * point here, so the memory lives on (on b->io_dead) until the batch
     * ends, and the dispatcher skips it. */
    int stopped;
    aredis_io_cb cb;
    void *arg;
    aredis__io_wait_cb wait; /* its own wait, or NULL (loop.h) */
} bio;
_Static_assert(sizeof(void *) != 8 || sizeof(bio) <= 56,
               "a watcher per connection: keep it in a 64-byte block");

typedef struct btimer {
    node link; /* in b->timers while started */
    /* In b->timers_heap while armed: key is the deadline, and seq (the
     * arming order) breaks ties, so equal deadlines fire in the order they
     * were set, and lets a batch skip timers armed by its own callbacks. */
    aredis__heap_node hn;
    aredis_event_cb cb;
    void *arg;
} btimer;

typedef struct bwake {
    node link; /* in b->wakes while started (and until reaped) */
    atomic_int pending;
    int stopped; /* as for bio: stopped in a batch, freed after it */
    int passive; /* aredis__loop_wake_set_passive() */
    struct bwake *dead_next;
    aredis_event_cb cb;
    void *arg;
} bwake;

/* One ready descriptor as the backend reported it, before filtering. */
typedef struct ready {
    bio *w;
    int mask;
} ready;

typedef struct backend {
    const char *name;
    int (*init)(aredis__builtin *b);
    void (*destroy)(aredis__builtin *b);
    /* Start watching w->fd for mask (nonzero). Capacity for one more
     * registration has been reserved by the caller. */
    int (*add)(aredis__builtin *b, bio *w, int mask);
    void (*del)(aredis__builtin *b, bio *w);
    int (*mod)(aredis__builtin *b, bio *w, int mask);
    /* Wait, then fill b->ready; returns the count or a negative error. */
    int (*wait)(aredis__builtin *b, int timeout_ms);
} backend;

struct aredis__builtin {
    const backend *be;
    size_t nreg; /* registered watchers, the internal ones included */
    size_t cap;  /* capacity of ready[] and of the backend's arrays */
    ready *ready;
#ifdef __linux__
    int epfd;
    struct epoll_event *evs;
    /* The far timers' descriptor (-1: none), watched through an internal
     * bio like the wake-up one, and the time it is armed for (0: not
     * armed, or it expired and was read). */
    int tfd;
    int64_t tfd_at;
    bio tfd_io;
#endif
    struct pollfd *pfds;
    bio **pws;

    node ios, timers, wakes;
    size_t nactive;  /* watchers with a nonzero interest */
    size_t nwaits;   /* started watchers with their own wait */
    size_t nwakes;   /* started wake sources */
    size_t npassive; /* ... of which passive ones */

    aredis__heap timers_heap; /* armed timers */
    size_t ntimers;           /* started timers */

    int in_batch;
    bio *io_dead;
    bwake *wake_dead;

    /* The wake-up descriptor: an eventfd (rfd == wfd) or a pipe. It is
     * watched through an internal bio that counts as neither active nor
     * started, so a wake source never keeps the loop alive. */
    bio wake_io;
    int wake_rfd, wake_wfd, wake_eventfd;
    atomic_int signalled; /* 1 while a write to wake_wfd is outstanding */
};

/* ---- small helpers ---------------------------------------------------- */

static void list_init(node *h)
{
    h->prev = h->next = h;
}

static void list_append(node *h, node *n)
{
    n->prev = h->prev;
    n->next = h;
    h->prev->next = n;
    h->prev = n;
}

static void list_remove(node *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = n;
}

static int err_from_errno(int e)
{
    switch (e) {
    case ENOMEM:
    case ENOSPC:
    case ENOBUFS:
        return AREDIS_ENOMEM;
    case EEXIST:
        return AREDIS_EBUSY; /* the descriptor is already watched */
    case EBADF:
    case EPERM:
    case EINVAL:
    case ENOENT:
        return AREDIS_EINVAL;
    default:
        return AREDIS_EIO;
    }
}

static void close_fd(int fd)
{
    if (fd >= 0)
        (void)close(fd);
}

/* Readiness as the callbacks see it. An error or a hang-up is reported as
 * both directions; the mask is then cut to the watcher's interest, so a
 * reader sees end of stream and a writer sees its write fail. */
static int mask_from_poll(short re)
{
    int mask = 0;
    if (re & POLLIN)
        mask |= AREDIS_EV_READ;
    if (re & POLLOUT)
        mask |= AREDIS_EV_WRITE;
    if (re & (POLLERR | POLLHUP | POLLNVAL))
        mask |= EV_BOTH;
    return mask;
}

/* ---- epoll backend ---------------------------------------------------- */

#ifdef __linux__
static int epoll_init_be(aredis__builtin *b)
{
    b->epfd = epoll_create1(EPOLL_CLOEXEC);
    return b->epfd < 0 ? err_from_errno(errno) : 0;
}

static void epoll_destroy_be(aredis__builtin *b)
{
    close_fd(b->tfd);
    b->tfd = -1;
    close_fd(b->epfd);
    b->epfd = -1;
    aredis__free(b->evs);
    b->evs = NULL;
}

static int epoll_ctl_be(aredis__builtin *b, int op, bio *w, int mask)
{
    struct epoll_event ev = {0};
    ev.events = ((mask & AREDIS_EV_READ) ? EPOLLIN : 0u) |
                ((mask & AREDIS_EV_WRITE) ? EPOLLOUT : 0u);
    ev.data.ptr = w;
    if (epoll_ctl(b->epfd, op, w->fd, &ev) != 0)
        return err_from_errno(errno);
    return 0;
}

static int epoll_add_be(aredis__builtin *b, bio *w, int mask)
{
    return epoll_ctl_be(b, EPOLL_CTL_ADD, w, mask);
}

static void epoll_del_be(aredis__builtin *b, bio *w)
{
    /* It fails only when the descriptor was closed first, in which case
     * the kernel has already forgotten it. */
    struct epoll_event ev = {0};
    (void)epoll_ctl(b->epfd, EPOLL_CTL_DEL, w->fd, &ev);
}

static int epoll_mod_be(aredis__builtin *b, bio *w, int mask)
{
    return epoll_ctl_be(b, EPOLL_CTL_MOD, w, mask);
}

static int epoll_wait_be(aredis__builtin *b, int timeout_ms)
{
    int max = b->cap > INT_MAX ? INT_MAX : (int)b->cap;
    int n = epoll_wait(b->epfd, b->evs, max, timeout_ms);
    if (n < 0)
        return errno == EINTR ? 0 : err_from_errno(errno);
    for (int i = 0; i < n; i++) {
        uint32_t e = b->evs[i].events;
        int mask = 0;
        if (e & EPOLLIN)
            mask |= AREDIS_EV_READ;
        if (e & EPOLLOUT)
            mask |= AREDIS_EV_WRITE;
        if (e & (EPOLLERR | EPOLLHUP))
            mask |= EV_BOTH;
        b->ready[i].w = b->evs[i].data.ptr;
        b->ready[i].mask = mask;
    }
    return n;
}

static const backend epoll_backend = {
    "epoll",      epoll_init_be, epoll_destroy_be, epoll_add_be,
    epoll_del_be, epoll_mod_be,  epoll_wait_be,
};
#endif

/* ---- poll backend ----------------------------------------------------- */

static short poll_events(int mask)
{
    return (short)(((mask & AREDIS_EV_READ) ? POLLIN : 0) |
                   ((mask & AREDIS_EV_WRITE) ? POLLOUT : 0));
}

static int poll_init_be(aredis__builtin *b)
{
    (void)b;
    return 0;
}

static void poll_destroy_be(aredis__builtin *b)
{
    aredis__free(b->pfds);
    aredis__free(b->pws);
    b->pfds = NULL;
    b->pws = NULL;
}

/* The registered watchers are the first nreg slots, in no order; the
 * common code bumps nreg after add() and drops it after del(). */
static int poll_add_be(aredis__builtin *b, bio *w, int mask)
{
    size_t i = b->nreg;
    b->pfds[i].fd = w->fd;
    b->pfds[i].events = poll_events(mask);
    b->pfds[i].revents = 0;
    b->pws[i] = w;
    w->pidx = (uint32_t)i;
    return 0;
}

static void poll_del_be(aredis__builtin *b, bio *w)
{
    size_t i = w->pidx, last = b->nreg - 1;
    if (i != last) {
        b->pfds[i] = b->pfds[last];
        b->pws[i] = b->pws[last];
        b->pws[i]->pidx = (uint32_t)i;
    }
}

static int poll_mod_be(aredis__builtin *b, bio *w, int mask)
{
    b->pfds[w->pidx].events = poll_events(mask);
    return 0;
}

static int poll_wait_be(aredis__builtin *b, int timeout_ms)
{
    int n = poll(b->pfds, (nfds_t)b->nreg, timeout_ms);
    if (n < 0)
        return errno == EINTR ? 0 : err_from_errno(errno);
    int k = 0;
    for (size_t i = 0; i < b->nreg && k < n; i++) {
        if (b->pfds[i].revents == 0)
            continue;
        b->ready[k].w = b->pws[i];
        b->ready[k].mask = mask_from_poll(b->pfds[i].revents);
        k++;
    }
    return k;
}

static const backend poll_backend = {
    "poll",      poll_init_be, poll_destroy_be, poll_add_be,
    poll_del_be, poll_mod_be,  poll_wait_be,
};

/* Make room for n registrations in ready[] and the backend's arrays. On
 * failure the arrays that did grow stay grown and valid; cap only moves
 * once all of them have. */
static int reserve(aredis__builtin *b, size_t n)
{
#ifdef __linux__
    /* epoll hands over at most cap ready watchers per wait and the next
     * wait the rest: past a batch, registrations need no more room. */
    if (b->epfd >= 0 && n > EPOLL_BATCH)
        n = EPOLL_BATCH;
#endif
    if (n <= b->cap)
        return 0;
    size_t cap = b->cap < MIN_CAP ? MIN_CAP : b->cap;
    while (cap < n)
        cap *= 2;
    ready *r = aredis__reallocarray(b->ready, cap, sizeof *r);
    if (r == NULL)
        return AREDIS_ENOMEM;
    b->ready = r;
#ifdef __linux__
    if (b->epfd >= 0) {
        struct epoll_event *e = aredis__reallocarray(b->evs, cap, sizeof *e);
        if (e == NULL)
            return AREDIS_ENOMEM;
        b->evs = e;
    }
#endif
    if (b->be == &poll_backend) {
        struct pollfd *p = aredis__reallocarray(b->pfds, cap, sizeof *p);
        if (p == NULL)
            return AREDIS_ENOMEM;
        b->pfds = p;
        bio **w = aredis__reallocarray(b->pws, cap, sizeof(bio *));
        if (w == NULL)
            return AREDIS_ENOMEM;
        b->pws = w;
    }
    b->cap = cap;
    return 0;
}

/* ---- io watchers ------------------------------------------------------ */

static int io_start(void *impl, int fd, aredis_io_cb cb, void *arg,
                    void **handle)
{
    aredis__builtin *b = impl;
    if (fd < 0 || cb == NULL || handle == NULL)
        return AREDIS_EINVAL;
    bio *w = aredis__calloc(1, sizeof *w);
    if (w == NULL)
        return AREDIS_ENOMEM;
    w->fd = fd;
    w->cb = cb;
    w->arg = arg;
    list_append(&b->ios, &w->link);
    *handle = w;
    return 0;
}

static void io_unregister(aredis__builtin *b, bio *w)
{
    b->be->del(b, w);
    b->nreg--;
}

static int io_update(void *impl, void *handle, int events)
{
    aredis__builtin *b = impl;
    bio *w = handle;
    events &= EV_BOTH;
    if (events == w->interest)
        return 0;
    if (events == 0) {
        io_unregister(b, w);
        b->nactive--;
    } else if (w->interest == 0) {
        int rc = reserve(b, b->nreg + 1);
        if (rc == 0)
            rc = b->be->add(b, w, events);
        if (rc != 0)
            return rc;
        b->nreg++;
        b->nactive++;
    } else {
        int rc = b->be->mod(b, w, events);
        if (rc != 0)
            return rc;
    }
    w->interest = events;
    return 0;
}

static void io_stop(void *impl, void *handle)
{
    aredis__builtin *b = impl;
    bio *w = handle;
    if (w->interest != 0) {
        io_unregister(b, w);
        b->nactive--;
        w->interest = 0;
    }
    list_remove(&w->link);
    if (w->wait != NULL)
        b->nwaits--;
    if (b->in_batch) {
        w->stopped = 1;
        w->link.next = (node *)b->io_dead; /* out of b->ios: free for this */
        b->io_dead = w;
    } else {
        aredis__free(w);
    }
}

/* ---- timers: the util heap, ordered by (deadline, seq) ------------------ */

static btimer *timer_of(aredis__heap_node *n)
{
    return AREDIS__CONTAINER_OF(n, btimer, hn);
}

static int timer_start(void *impl, aredis_event_cb cb, void *arg, void **handle)
{
    aredis__builtin *b = impl;
    if (cb == NULL || handle == NULL)
        return AREDIS_EINVAL;
    /* The heap holds every started timer's slot in advance, so that
     * timer_set() can never fail for want of memory. */
    if (aredis__heap_reserve(&b->timers_heap, b->ntimers + 1) != 0)
        return AREDIS_ENOMEM;
    btimer *t = aredis__calloc(1, sizeof *t);
    if (t == NULL)
        return AREDIS_ENOMEM;
    t->cb = cb;
    t->arg = arg;
    list_append(&b->timers, &t->link);
    b->ntimers++;
    *handle = t;
    return 0;
}

static int timer_set(void *impl, void *handle, int64_t ms)
{
    aredis__builtin *b = impl;
    btimer *t = handle;
    if (ms < 0) {
        aredis__heap_remove(&b->timers_heap, &t->hn);
        return 0;
    }
    int64_t now = aredis__now_ms();
    /* Room was reserved by timer_start(): this cannot fail. */
    return aredis__heap_set(&b->timers_heap, &t->hn,
                            ms > INT64_MAX - now ? INT64_MAX : now + ms);
}

static void timer_stop(void *impl, void *handle)
{
    aredis__builtin *b = impl;
    btimer *t = handle;
    aredis__heap_remove(&b->timers_heap, &t->hn);
    list_remove(&t->link);
    b->ntimers--;
    /* Safe even in a batch: the dispatcher holds no pointer to a timer
     * once it has taken it off the heap. */
    aredis__free(t);
}

/* Fire every timer that was due when the batch started. Each is taken off
 * the heap before its callback, which may then re-arm or stop it or any
 * other timer. A timer armed by one of these callbacks has a larger seq
 * than `limit` and waits for the next iteration, so a timer re-arming
 * itself at 0 ms cannot hold the loop here. */
static void run_timers(aredis__builtin *b)
{
    int64_t now = aredis__now_ms();
    uint64_t limit = b->timers_heap.seq;
    aredis__heap_node *n;
    while ((n = aredis__heap_min(&b->timers_heap)) != NULL) {
        if (n->key > now || n->seq > limit)
            break;
        aredis__heap_remove(&b->timers_heap, n);
        btimer *t = timer_of(n);
        t->cb(t->arg);
    }
}

int64_t aredis__builtin_timer_deadline(const void *handle)
{
    const btimer *t = handle;
    return aredis__heap_contains(&t->hn) ? t->hn.key : -1;
}

/* ---- wake-ups ---------------------------------------------------------
 *
 * A wake sets the handle's pending flag and, if no write to the wake
 * descriptor is outstanding, writes one. The loop clears `signalled`
 * before it drains the descriptor and scans the handles, so a wake that
 * races with the scan either is seen by it or writes the descriptor again:
 * every wake is followed by a callback that starts after it, and wakes
 * that arrive together coalesce into one callback. */

static void wake_signal(aredis__builtin *b)
{
    for (;;) {
        ssize_t n;
        if (b->wake_eventfd) {
            uint64_t one = 1;
            n = write(b->wake_wfd, &one, sizeof one);
        } else {
            char c = 1;
            n = write(b->wake_wfd, &c, 1);
        }
        /* EAGAIN means a full pipe, which is readable: enough. */
        if (n >= 0 || errno != EINTR)
            return;
    }
}

static void wake_drain(aredis__builtin *b)
{
    char buf[256];
    for (;;) {
        ssize_t n = read(b->wake_rfd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n == (ssize_t)sizeof buf && !b->wake_eventfd)
            continue;
        return;
    }
}

static void wake_dispatch(aredis__builtin *b)
{
    atomic_store(&b->signalled, 0);
    wake_drain(b);
    /* Handles stopped by a callback stay linked (and allocated) until the
     * batch ends, so following n->next stays valid. */
    for (node *n = b->wakes.next; n != &b->wakes; n = n->next) {
        bwake *w = (bwake *)n;
        if (!w->stopped && atomic_exchange(&w->pending, 0))
            w->cb(w->arg);
    }
}

static int wake_start(void *impl, aredis_event_cb cb, void *arg, void **handle)
{
    aredis__builtin *b = impl;
    if (cb == NULL || handle == NULL)
        return AREDIS_EINVAL;
    bwake *w = aredis__calloc(1, sizeof *w);
    if (w == NULL)
        return AREDIS_ENOMEM;
    atomic_init(&w->pending, 0);
    w->cb = cb;
    w->arg = arg;
    list_append(&b->wakes, &w->link);
    b->nwakes++;
    *handle = w;
    return 0;
}

static void wake(void *impl, void *handle)
{
    aredis__builtin *b = impl;
    bwake *w = handle;
    if (atomic_exchange(&w->pending, 1))
        return;
    if (atomic_exchange(&b->signalled, 1))
        return;
    wake_signal(b);
}

static void wake_stop(void *impl, void *handle)
{
    aredis__builtin *b = impl;
    bwake *w = handle;
    b->nwakes--;
    b->npassive -= w->passive != 0;
    if (b->in_batch) {
        w->stopped = 1;
        w->dead_next = b->wake_dead;
        b->wake_dead = w;
        return;
    }
    list_remove(&w->link);
    aredis__free(w);
}

static int wake_open(aredis__builtin *b, int use_pipe)
{
#ifdef __linux__
    if (!use_pipe) {
        int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (fd >= 0) {
            b->wake_rfd = b->wake_wfd = fd;
            b->wake_eventfd = 1;
            return 0;
        }
    }
    int p[2];
    if (pipe2(p, O_NONBLOCK | O_CLOEXEC) != 0)
        return err_from_errno(errno);
#else
    (void)use_pipe;
    int p[2];
    if (pipe(p) != 0)
        return err_from_errno(errno);
    for (int i = 0; i < 2; i++) {
        int fl = fcntl(p[i], F_GETFL);
        if (fl < 0 || fcntl(p[i], F_SETFL, fl | O_NONBLOCK) != 0 ||
            fcntl(p[i], F_SETFD, FD_CLOEXEC) != 0) {
            int e = errno;
            close_fd(p[0]);
            close_fd(p[1]);
            return err_from_errno(e);
        }
    }
#endif
    b->wake_rfd = p[0];
    b->wake_wfd = p[1];
    return 0;
}

/* ---- far timers -------------------------------------------------------
 *
 * epoll_wait() with a timeout costs the kernel a clock read or three and a
 * sleeper timer set up and cancelled on every call: at one reply per wait
 * (a program awaiting each command), about 1% of the client's time, paid
 * for a timer (a cluster's periodic refresh, command deadlines) that is
 * seconds away and almost never fires. A wait bounded only by such a far
 * timer waits without a timeout instead, while a timerfd armed at or
 * before the earliest deadline ends it. The timerfd is re-armed only when
 * the earliest deadline moves before it: deadlines that move later (each
 * command's now + timeout) leave it alone, and it then expires early,
 * once, finds nothing due and is armed again. */

#ifdef __linux__
static void far_open(aredis__builtin *b)
{
    b->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (b->tfd < 0)
        return;
    b->tfd_io.fd = b->tfd;
    b->tfd_io.interest = AREDIS_EV_READ;
    list_init(&b->tfd_io.link);
    if (reserve(b, b->nreg + 1) != 0 ||
        b->be->add(b, &b->tfd_io, AREDIS_EV_READ) != 0) {
        close_fd(b->tfd);
        b->tfd = -1;
        return;
    }
    b->nreg++;
}

/* The timeout for a wait of `timeout` ms that only the earliest timer
 * bounds: -1 once the timerfd is armed for it, else `timeout`. */
static int far_wait(aredis__builtin *b, int timeout)
{
    const aredis__heap_node *first = aredis__heap_min(&b->timers_heap);
    if (b->tfd < 0 || first == NULL || timeout < FAR_MS)
        return timeout;
    if (b->tfd_at == 0 || b->tfd_at > first->key) {
        struct itimerspec its = {{0, 0}, {0, 0}};
        its.it_value.tv_sec = (time_t)(first->key / 1000);
        its.it_value.tv_nsec = (long)(first->key % 1000) * 1000000;
        if (timerfd_settime(b->tfd, TFD_TIMER_ABSTIME, &its, NULL) != 0)
            return timeout;
        b->tfd_at = first->key;
    }
    return -1;
}

/* The timerfd expired: read it (it stays readable until then); the
 * timers due run after the batch, and the next wait arms it again. */
static void far_expired(aredis__builtin *b)
{
    uint64_t n;
    ssize_t r;
    do {
        r = read(b->tfd, &n, sizeof n);
    } while (r < 0 && errno == EINTR);
    b->tfd_at = 0;
}
#endif

/* ---- the loop --------------------------------------------------------- */

/* Free what callbacks stopped during the batch that just ended. */
static void reap(aredis__builtin *b)
{
    while (b->io_dead != NULL) {
        bio *w = b->io_dead;
        b->io_dead = (bio *)w->link.next;
        aredis__free(w);
    }
    while (b->wake_dead != NULL) {
        bwake *w = b->wake_dead;
        b->wake_dead = w->dead_next;
        list_remove(&w->link);
        aredis__free(w);
    }
}

static int wait_timeout(const aredis__builtin *b, int timeout_ms)
{
    const aredis__heap_node *first = aredis__heap_min(&b->timers_heap);
    if (first == NULL)
        return timeout_ms;
    int64_t d = first->key - aredis__now_ms();
    if (d < 0)
        d = 0;
    if (timeout_ms >= 0 && d > timeout_ms)
        return timeout_ms;
    return d > INT_MAX ? INT_MAX : (int)d;
}

void aredis__builtin_io_set_wait(aredis__builtin *b, void *handle,
                                 aredis__io_wait_cb cb)
{
    bio *w = handle;
    b->nwaits -= w->wait != NULL;
    b->nwaits += cb != NULL;
    w->wait = cb;
}

void aredis__builtin_wake_set_passive(aredis__builtin *b, void *handle, int on)
{
    bwake *w = handle;
    on = on != 0;
    b->npassive += (size_t)on - (size_t)w->passive;
    w->passive = on;
}

/* The watcher whose own wait may replace the backend's: the only one
 * with an interest, reading only, while no wake source that may not wait
 * could end a wait, and none is signalled already. */
static bio *sole_waiter(aredis__builtin *b)
{
    if (b->nwaits == 0 || b->nactive != 1 || b->nwakes != b->npassive ||
        atomic_load(&b->signalled))
        return NULL;
    for (node *n = b->ios.next; n != &b->ios; n = n->next) {
        bio *w = (bio *)n;
        if (w->interest != 0)
            return w->interest == AREDIS_EV_READ && w->wait != NULL ? w : NULL;
    }
    return NULL;
}

int aredis__builtin_poll(aredis__builtin *b, int timeout_ms)
{
    int timeout = wait_timeout(b, timeout_ms);
    bio *sole = timeout != 0 ? sole_waiter(b) : NULL;
    if (sole != NULL) {
        b->in_batch = 1;
        int r = sole->wait(sole->arg, timeout);
        if (r >= 0) {
            run_timers(b);
            b->in_batch = 0;
            reap(b);
            return 0;
        }
        b->in_batch = 0;
    }
#ifdef __linux__
    if (timeout_ms < 0)
        timeout = far_wait(b, timeout);
#endif
    int n = b->be->wait(b, timeout);
    if (n < 0)
        return n;
    b->in_batch = 1;
    for (int i = 0; i < n; i++) {
        /* Re-read b->ready each time: a callback that starts watching a
         * new descriptor may grow (move) the array. */
        bio *w = b->ready[i].w;
        int mask = b->ready[i].mask;
        if (w == &b->wake_io) {
            wake_dispatch(b);
            continue;
        }
#ifdef __linux__
        if (w == &b->tfd_io) {
            far_expired(b);
            continue;
        }
#endif
        /* A watcher stopped or changed by an earlier callback of this
         * batch gets nothing it no longer asks for. */
        mask &= w->interest;
        if (!w->stopped && mask != 0)
            w->cb(w->arg, mask);
    }
    run_timers(b);
    b->in_batch = 0;
    reap(b);
    return 0;
}

int aredis__builtin_alive(const aredis__builtin *b)
{
    return b->nactive > 0 || b->timers_heap.len > 0;
}

int aredis__builtin_wakeable(const aredis__builtin *b)
{
    return b->nwakes > 0;
}

const char *aredis__builtin_backend(const aredis__builtin *b)
{
    return b->be->name;
}

/* Also frees every source the user did not stop, so a forgotten watcher
 * costs nothing but the missed events. */
static void builtin_free(void *impl)
{
    aredis__builtin *b = impl;
    if (b == NULL)
        return;
    reap(b);
    while (b->ios.next != &b->ios) {
        node *n = b->ios.next;
        list_remove(n);
        aredis__free(n);
    }
    while (b->timers.next != &b->timers) {
        node *n = b->timers.next;
        list_remove(n);
        aredis__free(n);
    }
    while (b->wakes.next != &b->wakes) {
        node *n = b->wakes.next;
        list_remove(n);
        aredis__free(n);
    }
    b->be->destroy(b);
    if (b->wake_wfd != b->wake_rfd)
        close_fd(b->wake_wfd);
    close_fd(b->wake_rfd);
    aredis__free(b->ready);
    aredis__heap_cleanup(&b->timers_heap);
    aredis__free(b);
}

int aredis__builtin_new(int force_poll, aredis__builtin **out)
{
    aredis__builtin *b = aredis__calloc(1, sizeof *b);
    if (b == NULL)
        return AREDIS_ENOMEM;
#ifdef __linux__
    b->epfd = -1;
    b->tfd = -1;
    b->be = force_poll ? &poll_backend : &epoll_backend;
#else
    (void)force_poll;
    b->be = &poll_backend;
#endif
    b->wake_rfd = b->wake_wfd = -1;
    list_init(&b->ios);
    list_init(&b->timers);
    list_init(&b->wakes);
    aredis__heap_init(&b->timers_heap);
    atomic_init(&b->signalled, 0);

    /* The poll backend also gets the pipe, the wake-up of systems without
     * eventfd, so that one machine tests both. */
    int rc = b->be->init(b);
    if (rc == 0)
        rc = wake_open(b, force_poll);
    if (rc == 0)
        rc = reserve(b, 1);
    if (rc == 0) {
        b->wake_io.fd = b->wake_rfd;
        b->wake_io.interest = AREDIS_EV_READ;
        list_init(&b->wake_io.link);
        rc = b->be->add(b, &b->wake_io, AREDIS_EV_READ);
    }
    if (rc != 0) {
        builtin_free(b);
        return rc;
    }
    b->nreg = 1;
#ifdef __linux__
    /* Without one, far timers bound the wait like near ones. */
    if (b->be == &epoll_backend)
        far_open(b);
#endif
    *out = b;
    return 0;
}

const aredis_loop_ops aredis__builtin_ops = {
    .io_start = io_start,
    .io_update = io_update,
    .io_stop = io_stop,
    .timer_start = timer_start,
    .timer_set = timer_set,
    .timer_stop = timer_stop,
    .wake_start = wake_start,
    .wake = wake,
    .wake_stop = wake_stop,
    .free = builtin_free,
};
