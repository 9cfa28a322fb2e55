/* Commands encoded when queued and decoded when submitted (extras layer).
 *
 * See cmdbuf.h for why. The encoding is the public RESP writer's, so the
 * decoder only ever reads "*<argc>\r\n" followed by argc
 * "$<len>\r\n<bytes>\r\n" produced by that writer, and trusts it. Uses nothing
 * below the public headers except the allocator and the command table. */
#include <string.h>

#include "aredis/cluster.h"
#include "aredis/error.h"
#include "extras/cmdbuf.h"
#include "util/alloc.h"
#include "util/cmdtable.h"

void aredis__cmdbuf_init(aredis__cmdbuf *q)
{
    memset(q, 0, sizeof *q);
    aredis_buf_init(&q->enc);
}

void aredis__cmdbuf_cleanup(aredis__cmdbuf *q)
{
    aredis_buf_cleanup(&q->enc);
    aredis__free(q->cmds);
    aredis__free(q->argv);
    aredis__free(q->argvlen);
    aredis__cmdbuf_init(q);
}

void aredis__cmdbuf_clear(aredis__cmdbuf *q)
{
    q->enc.len = 0;
    q->n = 0;
}

static int reserve_entry(aredis__cmdbuf *q)
{
    if (q->n < q->cap)
        return 0;
    size_t cap = q->cap ? q->cap * 2 : 16;
    aredis__cmdbuf_entry *e = aredis__reallocarray(q->cmds, cap, sizeof *e);
    if (e == NULL)
        return AREDIS_ENOMEM;
    q->cmds = e;
    q->cap = cap;
    return 0;
}

/* Record the command the writer just appended at [start, enc.len). */
static void record(aredis__cmdbuf *q, size_t start)
{
    const char *p = q->enc.data + start + 1; /* past '*' */
    int argc = 0;
    while (*p != '\r')
        argc = argc * 10 + (*p++ - '0');
    q->cmds[q->n].off = start;
    q->cmds[q->n].len = q->enc.len - start;
    q->cmds[q->n].argc = argc;
    q->n++;
}

int aredis__cmdbuf_vfmt(aredis__cmdbuf *q, const char *fmt, va_list ap)
{
    if (fmt == NULL)
        return AREDIS_EFORMAT;
    int e = reserve_entry(q);
    if (e != 0)
        return e;
    size_t start = q->enc.len;
    va_list copy;
    va_copy(copy, ap);
    e = aredis_write_vfmt(&q->enc, fmt, copy);
    va_end(copy);
    if (e != 0)
        return e;
    record(q, start);
    return 0;
}

int aredis__cmdbuf_argv(aredis__cmdbuf *q, int argc, const char *const *argv,
                        const size_t *argvlen)
{
    int e = reserve_entry(q);
    if (e != 0)
        return e;
    size_t start = q->enc.len;
    e = aredis_write_argv(&q->enc, argc, argv, argvlen);
    if (e != 0)
        return e;
    record(q, start);
    return 0;
}

static int reserve_argv(aredis__cmdbuf *q, size_t n)
{
    if (n <= q->argcap)
        return 0;
    size_t cap = q->argcap ? q->argcap : 8;
    while (cap < n)
        cap *= 2;
    const char **v = aredis__reallocarray(q->argv, cap, sizeof *v);
    if (v == NULL)
        return AREDIS_ENOMEM;
    q->argv = v;
    size_t *l = aredis__reallocarray(q->argvlen, cap, sizeof *l);
    if (l == NULL)
        return AREDIS_ENOMEM;
    q->argvlen = l;
    q->argcap = cap;
    return 0;
}

int aredis__cmdbuf_lists(aredis__cmdbuf *q, int nhead, const char *const *head,
                         int count, int nkeys, const char *const *keys,
                         const size_t *keylens, int nargs,
                         const char *const *args, const size_t *arglens)
{
    if (nhead < 1 || nkeys < 0 || nargs < 0 || (nkeys > 0 && keys == NULL) ||
        (nargs > 0 && args == NULL) || nkeys > (1 << 28) || nargs > (1 << 28))
        return AREDIS_EINVAL;
    size_t total =
        (size_t)nhead + (count ? 1u : 0u) + (size_t)nkeys + (size_t)nargs;
    int e = reserve_argv(q, total);
    if (e != 0)
        return e;
    char num[24];
    size_t k = 0;
    for (int i = 0; i < nhead; i++, k++) {
        q->argv[k] = head[i];
        q->argvlen[k] = strlen(head[i]);
    }
    if (count) {
        /* Built by hand: the writer's %d would need a format per call. */
        char tmp[24];
        size_t n = 0;
        unsigned v = (unsigned)nkeys;
        do
            tmp[n++] = (char)('0' + v % 10);
        while ((v /= 10) != 0);
        for (size_t j = 0; j < n; j++)
            num[j] = tmp[n - 1 - j];
        q->argv[k] = num;
        q->argvlen[k++] = n;
    }
    for (int i = 0; i < nkeys; i++, k++) {
        if (keys[i] == NULL)
            return AREDIS_EINVAL;
        q->argv[k] = keys[i];
        q->argvlen[k] = keylens ? keylens[i] : strlen(keys[i]);
    }
    for (int i = 0; i < nargs; i++, k++) {
        if (args[i] == NULL)
            return AREDIS_EINVAL;
        q->argv[k] = args[i];
        q->argvlen[k] = arglens ? arglens[i] : strlen(args[i]);
    }
    return aredis__cmdbuf_argv(q, (int)total, q->argv, q->argvlen);
}

int aredis__cmdbuf_decode(aredis__cmdbuf *q, size_t i, int *argc,
                          const char *const **argv, const size_t **argvlen)
{
    const aredis__cmdbuf_entry *c = &q->cmds[i];
    int e = reserve_argv(q, (size_t)c->argc);
    if (e != 0)
        return e;
    aredis__args it;
    aredis__args_init(&it, q->enc.data + c->off);
    for (int k = 0; k < c->argc; k++)
        aredis__args_next(&it, &q->argv[k], &q->argvlen[k]);
    *argc = c->argc;
    *argv = q->argv;
    *argvlen = q->argvlen;
    return 0;
}

const char *aredis__cmdbuf_name(const aredis__cmdbuf *q, size_t i, size_t *len)
{
    aredis__args it;
    const char *name = "";
    *len = 0;
    aredis__args_init(&it, q->enc.data + q->cmds[i].off);
    aredis__args_next(&it, &name, len);
    return name;
}

int aredis__cmdbuf_no_multi(const aredis__cmdbuf *q, size_t i)
{
    aredis__cmdclass k;
    aredis__cmd_classify(q->enc.data + q->cmds[i].off, &k);
    return (k.flags & AREDIS__CMDF_NO_MULTI) != 0;
}

int aredis__cmdbuf_is_refused(const aredis__cmdbuf *q, size_t i)
{
    size_t n;
    const char *name = aredis__cmdbuf_name(q, i, &n);
    const aredis__cmdinfo *e = aredis__cmd_lookup(name, n);
    return e != NULL &&
           (e->flags & (AREDIS__CMDF_REFUSED | AREDIS__CMDF_PUBSUB)) != 0;
}

int aredis__cmdbuf_slot(const aredis__cmdbuf *q, size_t i)
{
    const char *key;
    size_t n;
    if (!aredis__cmd_first_key(q->enc.data + q->cmds[i].off, &key, &n))
        return -1;
    return (int)aredis_cluster_keyslot(key, n);
}
