/* The blocking facade beyond single commands (client layer): the host and
 * port constructor, per-command options, and pipelining -- commands
 * appended without waiting whose replies are read one by one.
 *
 * Each appended command has a slot, and the handle keeps the slots in
 * submission order in a ring. A reply is copied into its slot's block,
 * which the slot keeps when it is recycled: once the blocks have grown to
 * the replies a program gets, appending and reading allocate nothing. */
#include <stdint.h>
#include <string.h>

#include "aredis/error.h"
#include "client/sync_int.h"
#include "resp/resp.h"
#include "util/alloc.h"

struct aredis__sync_slot {
    aredis__sync_slot *next; /* in the handle's spare list */
    int done;
    const aredis_reply *r; /* the reply: in block, or a static error */
    aredis_reply *block;
    size_t cap; /* bytes in block */
};

#define STATIC_ERROR(name, c, text)                               \
    static const aredis_reply name = {.type = AREDIS_REPLY_ERROR, \
                                      .code = (c),                \
                                      .len = sizeof text - 1,     \
                                      .str = text}

STATIC_ERROR(oom_reply, AREDIS_ENOMEM, "out of memory copying the reply");
STATIC_ERROR(none_reply, AREDIS_ESTATE,
             "no appended command is waiting to be read");
STATIC_ERROR(busy_reply, AREDIS_EBUSY,
             "a blocking call cannot be made from a callback that runs "
             "inside another blocking call on the same handle");
STATIC_ERROR(broken_reply, AREDIS_ESTATE,
             "the handle is unusable after an internal error");
STATIC_ERROR(nohandle_reply, AREDIS_EINVAL, "no handle given (NULL)");

aredis_sync *aredis_sync_connect_host(const char *host, int port,
                                      aredis_status *st)
{
    return aredis_sync_connect(&(aredis_options){.host = host, .port = port},
                               st);
}

aredis_reply *aredis_sync_command_opts(aredis_sync *s, const aredis_cmd_opts *o,
                                       const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    aredis_reply *r =
        fmt != NULL ? aredis__sync_call(s, o, fmt, &ap, 0, NULL, NULL)
                    : aredis__sync_error(AREDIS_EFORMAT, "no format given");
    va_end(ap);
    return r;
}

aredis_reply *aredis_sync_commandv_opts(aredis_sync *s,
                                        const aredis_cmd_opts *o, int argc,
                                        const char *const *argv,
                                        const size_t *argvlen)
{
    return aredis__sync_call(s, o, NULL, NULL, argc, argv, argvlen);
}

/* ---- pipelining ---------------------------------------------------------- */

static void on_slot(aredis_client *c, const aredis_reply *r, void *ud)
{
    (void)c;
    aredis__sync_slot *sl = ud;
    size_t nodes, bytes;
    sl->r = &oom_reply;
    sl->done = 1;
    if (aredis__reply_measure(r, &nodes, &bytes) != 0 ||
        nodes > (SIZE_MAX - bytes) / sizeof(aredis_reply))
        return;
    size_t need = nodes * sizeof(aredis_reply) + bytes;
    if (need > sl->cap) {
        size_t cap = sl->cap * 2 > need ? sl->cap * 2 : need;
        aredis__free(sl->block);
        sl->cap = 0;
        if ((sl->block = aredis__malloc(cap)) == NULL)
            return;
        sl->cap = cap;
    }
    sl->r = aredis__reply_copy_to(r, sl->block, nodes);
}

static void slot_recycle(aredis_sync *s, aredis__sync_slot *sl)
{
    sl->next = s->pipe.spare;
    s->pipe.spare = sl;
}

/* Room for one more slot in the ring; 0 or AREDIS_ENOMEM. */
static int ring_reserve(aredis_sync *s)
{
    if (s->pipe.n < s->pipe.cap)
        return 0;
    size_t old = s->pipe.cap, cap = old ? old * 2 : 16;
    // NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers
    aredis__sync_slot **ring = aredis__reallocarray(NULL, cap, sizeof *ring);
    if (ring == NULL)
        return AREDIS_ENOMEM;
    for (size_t i = 0; old != 0 && i < s->pipe.n; i++)
        ring[i] = s->pipe.ring[(s->pipe.head + i) % old];
    aredis__free(s->pipe.ring);
    s->pipe.ring = ring;
    s->pipe.cap = cap;
    s->pipe.head = 0;
    return 0;
}

static int append(aredis_sync *s, const aredis_cmd_opts *o, const char *fmt,
                  va_list *ap, int argc, const char *const *argv,
                  const size_t *argvlen)
{
    int e = aredis__sync_begin(s);
    if (e != 0)
        return e;
    if (ring_reserve(s) != 0)
        return AREDIS_ENOMEM;
    aredis__sync_slot *sl = s->pipe.spare;
    if (sl != NULL)
        s->pipe.spare = sl->next;
    else if ((sl = aredis__calloc(1, sizeof *sl)) == NULL)
        return AREDIS_ENOMEM;
    sl->done = 0;
    sl->r = NULL;
    e = fmt != NULL ? aredis_vcommand_opts(s->client, o, on_slot, sl, fmt, *ap)
                    : aredis_commandv_opts(s->client, o, on_slot, sl, argc,
                                           argv, argvlen);
    if (e != 0) {
        slot_recycle(s, sl);
        return e;
    }
    s->pipe.ring[(s->pipe.head + s->pipe.n) % s->pipe.cap] = sl;
    s->pipe.n++;
    return 0;
}

int aredis_sync_vappend(aredis_sync *s, const char *fmt, va_list ap)
{
    if (fmt == NULL)
        return AREDIS_EFORMAT;
    va_list copy;
    va_copy(copy, ap);
    int e = append(s, NULL, fmt, &copy, 0, NULL, NULL);
    va_end(copy);
    return e;
}

int aredis_sync_append(aredis_sync *s, const char *fmt, ...)
{
    if (fmt == NULL)
        return AREDIS_EFORMAT;
    va_list ap;
    va_start(ap, fmt);
    int e = append(s, NULL, fmt, &ap, 0, NULL, NULL);
    va_end(ap);
    return e;
}

int aredis_sync_append_opts(aredis_sync *s, const aredis_cmd_opts *o,
                            const char *fmt, ...)
{
    if (fmt == NULL)
        return AREDIS_EFORMAT;
    va_list ap;
    va_start(ap, fmt);
    int e = append(s, o, fmt, &ap, 0, NULL, NULL);
    va_end(ap);
    return e;
}

int aredis_sync_appendv(aredis_sync *s, int argc, const char *const *argv,
                        const size_t *argvlen)
{
    return append(s, NULL, NULL, NULL, argc, argv, argvlen);
}

int aredis_sync_appendv_opts(aredis_sync *s, const aredis_cmd_opts *o, int argc,
                             const char *const *argv, const size_t *argvlen)
{
    return append(s, o, NULL, NULL, argc, argv, argvlen);
}

const aredis_reply *aredis_sync_get_reply(aredis_sync *s)
{
    if (s == NULL)
        return &nohandle_reply;
    if (s->pipe.lent != NULL) {
        slot_recycle(s, s->pipe.lent);
        s->pipe.lent = NULL;
    }
    int e = aredis__sync_begin(s);
    if (e != 0)
        return e == AREDIS_EBUSY ? &busy_reply : &broken_reply;
    if (s->pipe.n == 0)
        return &none_reply;
    aredis__sync_slot *sl = s->pipe.ring[s->pipe.head];
    if (aredis__sync_wait_flag(s->loop, &sl->done, -1) != 0) {
        /* The slot stays in the ring: its callback may still land. */
        s->broken = 1;
        return &broken_reply;
    }
    s->pipe.head = (s->pipe.head + 1) % s->pipe.cap;
    s->pipe.n--;
    s->pipe.lent = sl;
    return sl->r;
}

size_t aredis_sync_pending(const aredis_sync *s)
{
    return s != NULL ? s->pipe.n : 0;
}

static void slot_free(aredis__sync_slot *sl)
{
    if (sl == NULL)
        return;
    aredis__free(sl->block);
    aredis__free(sl);
}

void aredis__sync_more_free(aredis_sync *s)
{
    for (size_t i = 0; i < s->pipe.n; i++)
        slot_free(s->pipe.ring[(s->pipe.head + i) % s->pipe.cap]);
    aredis__free(s->pipe.ring);
    while (s->pipe.spare != NULL) {
        aredis__sync_slot *next = s->pipe.spare->next;
        slot_free(s->pipe.spare);
        s->pipe.spare = next;
    }
    slot_free(s->pipe.lent);
    aredis__free(s->msg.buf);
    /* A transaction whose wait was abandoned may have landed its result. */
    aredis_reply_free(s->tx.result);
}
