/* The replies of one batch in memory kept between batches (extras layer).
 *
 * See replyset.h. The copy walks the reply with an explicit work list
 * rather than recursion: the nesting depth is the server's to choose (up
 * to the reader's bound). */
#include "extras/replyset.h"

#include <stdalign.h>
#include <stdint.h>
#include <string.h>

#include "aredis/error.h"
#include "resp/resp.h"
#include "util/alloc.h"

/* The first chunk's size; each new one doubles the last. */
#define CHUNK_MIN ((size_t)4096)
/* Chunks kept by a reset, in bytes: the chunks past it are released. */
#define KEEP_MAX ((size_t)4 << 20)

struct aredis__rs_chunk {
    aredis__rs_chunk *next;
    size_t size;
    alignas(max_align_t) unsigned char data[];
};

void aredis__replyset_init(aredis__replyset *s)
{
    memset(s, 0, sizeof *s);
}

static void free_chain(aredis__rs_chunk *ch)
{
    while (ch != NULL) {
        aredis__rs_chunk *next = ch->next;
        aredis__free(ch);
        ch = next;
    }
}

void aredis__replyset_cleanup(aredis__replyset *s)
{
    aredis__free(s->elems);
    free_chain(s->chunks);
    aredis__free(s->work);
    aredis__replyset_init(s);
}

int aredis__replyset_reset(aredis__replyset *s, size_t n)
{
    size_t kept = 0;
    for (aredis__rs_chunk *ch = s->chunks; ch != NULL; ch = ch->next) {
        kept += ch->size;
        if (ch->next != NULL && kept + ch->next->size > KEEP_MAX) {
            free_chain(ch->next);
            ch->next = NULL;
        }
    }
    s->cur = s->chunks;
    s->used = 0;
    if (n <= s->cap)
        return 0;
    aredis_reply *v = aredis__reallocarray(s->elems, n, sizeof *v);
    if (v == NULL)
        return AREDIS_ENOMEM;
    s->elems = v;
    s->cap = n;
    return 0;
}

/* n bytes aligned for a reply node, from the chunk being filled, the next
 * kept one, or a new one at the end of the chain. */
static void *take(aredis__replyset *s, size_t n)
{
    const size_t align = alignof(max_align_t);
    if (n > SIZE_MAX - align)
        return NULL;
    n = (n + align - 1) & ~(align - 1);
    aredis__rs_chunk *ch = s->cur;
    while (ch != NULL && ch->size - s->used < n) {
        if (ch->next == NULL) {
            ch = NULL;
            break;
        }
        ch = ch->next;
        s->cur = ch;
        s->used = 0;
    }
    if (ch == NULL) {
        aredis__rs_chunk *last = s->cur;
        size_t size = last != NULL && last->size <= SIZE_MAX / 2
                          ? last->size * 2
                          : CHUNK_MIN;
        if (size < n)
            size = n;
        if (size > SIZE_MAX - sizeof *ch)
            return NULL;
        ch = aredis__malloc(sizeof *ch + size);
        if (ch == NULL)
            return NULL;
        ch->next = NULL;
        ch->size = size;
        if (last != NULL)
            last->next = ch;
        else
            s->chunks = ch;
        s->cur = ch;
        s->used = 0;
    }
    void *p = ch->data + s->used;
    s->used += n;
    return p;
}

static int push(aredis__replyset *s, size_t *top, aredis_reply *r)
{
    if (*top == s->work_cap) {
        size_t cap = s->work_cap ? s->work_cap * 2 : 16;
        // NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers
        aredis_reply **v = aredis__reallocarray(s->work, cap, sizeof *v);
        if (v == NULL)
            return AREDIS_ENOMEM;
        s->work = v;
        s->work_cap = cap;
    }
    s->work[(*top)++] = r;
    return 0;
}

int aredis__replyset_put(aredis__replyset *s, size_t i, const aredis_reply *r)
{
    aredis_reply *root = &s->elems[i];
    *root = *r;
    size_t top = 0;
    if (push(s, &top, root) != 0)
        return AREDIS_ENOMEM;
    /* Each node on the list is a copy whose pointers still refer to the
     * source, alive until the completion that delivered r returns. */
    while (top > 0) {
        aredis_reply *n = s->work[--top];
        if (aredis__reply_has_str(n)) {
            if (n->len == SIZE_MAX)
                return AREDIS_ENOMEM;
            char *str = take(s, n->len + 1);
            if (str == NULL)
                return AREDIS_ENOMEM;
            memcpy(str, n->str, n->len);
            str[n->len] = '\0';
            n->str = str;
        } else if (aredis__reply_is_aggregate(n) && n->len != 0) {
            if (n->len > SIZE_MAX / sizeof *n)
                return AREDIS_ENOMEM;
            aredis_reply *kids = take(s, n->len * sizeof *kids);
            if (kids == NULL)
                return AREDIS_ENOMEM;
            memcpy(kids, n->element, n->len * sizeof *kids);
            n->element = kids;
            for (size_t k = 0; k < n->len; k++)
                if (push(s, &top, &kids[k]) != 0)
                    return AREDIS_ENOMEM;
        }
        if (n->attrs != NULL) {
            aredis_reply *a = take(s, sizeof *a);
            if (a == NULL)
                return AREDIS_ENOMEM;
            *a = *n->attrs;
            n->attrs = a;
            if (push(s, &top, a) != 0)
                return AREDIS_ENOMEM;
        }
    }
    return 0;
}
