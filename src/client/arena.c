/* Scratch arena for reply hooks (client layer).
 *
 * Hooks build reshaped replies here; the client resets the arena after the
 * callback that saw them returns. The first chunk is kept between replies
 * so the common case allocates nothing. */
#include <stdalign.h>
#include <stdint.h>
#include <string.h>

#include "client/client_int.h"
#include "util/alloc.h"

#define CHUNK_SIZE ((size_t)4096)

struct arena_chunk {
    arena_chunk *next;
    size_t size;
    alignas(max_align_t) unsigned char data[];
};

static void *arena_alloc(aredis_reply_arena *a, size_t n)
{
    n = (n + alignof(max_align_t) - 1) & ~(alignof(max_align_t) - 1);
    arena_chunk *ch = a->chunks;
    if (ch == NULL || ch->size - a->used < n) {
        size_t size = n > CHUNK_SIZE ? n : CHUNK_SIZE;
        if (size > SIZE_MAX - sizeof *ch)
            return NULL;
        arena_chunk *nc = aredis__malloc(sizeof *nc + size);
        if (nc == NULL)
            return NULL;
        nc->size = size;
        nc->next = ch;
        a->chunks = nc;
        a->used = 0;
        ch = nc;
    }
    void *p = ch->data + a->used;
    a->used += n;
    return p;
}

aredis_reply *aredis_arena_nodes(aredis_reply_arena *a, size_t n)
{
    if (n == 0 || n > SIZE_MAX / sizeof(aredis_reply))
        return NULL;
    aredis_reply *r = arena_alloc(a, n * sizeof *r);
    if (r != NULL)
        memset(r, 0, n * sizeof *r);
    return r;
}

char *aredis_arena_strndup(aredis_reply_arena *a, const char *s, size_t n)
{
    if (n == SIZE_MAX)
        return NULL;
    char *p = arena_alloc(a, n + 1);
    if (p == NULL)
        return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

void aredis__arena_reset(aredis_reply_arena *a)
{
    /* Keep the oldest chunk (the last in the list), free the rest. */
    arena_chunk *ch = a->chunks;
    if (ch == NULL)
        return;
    while (ch->next != NULL) {
        arena_chunk *next = ch->next;
        aredis__free(ch);
        ch = next;
    }
    a->chunks = ch;
    a->used = 0;
}

void aredis__arena_cleanup(aredis_reply_arena *a)
{
    arena_chunk *ch = a->chunks;
    while (ch != NULL) {
        arena_chunk *next = ch->next;
        aredis__free(ch);
        ch = next;
    }
    a->chunks = NULL;
    a->used = 0;
}
