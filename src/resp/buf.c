/* Growable byte buffer (resp layer).
 *
 * The writer encodes commands into it and the connection writes it to the
 * socket. Pure memory management: no I/O. */
#include <stdint.h>
#include <string.h>

#include "aredis/error.h"
#include "resp/resp.h"
#include "util/alloc.h"

#define BUF_MIN_CAP 64

void aredis_buf_init(aredis_buf *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void aredis_buf_cleanup(aredis_buf *b)
{
    aredis__free(b->data);
    aredis_buf_init(b);
}

int aredis__buf_reserve(aredis_buf *b, size_t extra)
{
    if (b->cap - b->len >= extra)
        return 0;
    if (extra > SIZE_MAX - b->len)
        return AREDIS_ENOMEM;
    size_t need = b->len + extra;
    size_t cap = b->cap < BUF_MIN_CAP ? BUF_MIN_CAP : b->cap;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    char *p = aredis__realloc(b->data, cap);
    if (p == NULL)
        return AREDIS_ENOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

int aredis__buf_append(aredis_buf *b, const void *p, size_t n)
{
    if (aredis__buf_reserve(b, n) != 0)
        return AREDIS_ENOMEM;
    if (n != 0)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

void aredis__buf_consume(aredis_buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}
