/* Internal allocation entry points (util layer).
 *
 * Every allocation in the library goes through these, which call the hooks
 * installed with aredis_set_allocator(). Array helpers check the size
 * multiplication for overflow so no caller has to. */
#ifndef AREDIS_UTIL_ALLOC_H
#define AREDIS_UTIL_ALLOC_H

#include <stddef.h>
#include <stdint.h>

#include "aredis/alloc.h"

extern aredis_allocator aredis__allocator;

static inline void *aredis__malloc(size_t n)
{
    return aredis__allocator.malloc_fn(n);
}

static inline void *aredis__calloc(size_t count, size_t size)
{
    if (size != 0 && count > SIZE_MAX / size)
        return NULL;
    return aredis__allocator.calloc_fn(count, size);
}

static inline void *aredis__realloc(void *p, size_t n)
{
    return aredis__allocator.realloc_fn(p, n);
}

static inline void aredis__free(void *p)
{
    aredis__allocator.free_fn(p);
}

/* realloc to count * size bytes, NULL on overflow or OOM (p untouched). */
static inline void *aredis__reallocarray(void *p, size_t count, size_t size)
{
    if (size != 0 && count > SIZE_MAX / size)
        return NULL;
    return aredis__allocator.realloc_fn(p, count * size);
}

/* Copy n bytes into a new NUL-terminated allocation. */
char *aredis__strndup(const char *s, size_t n);

/* One spare block for the process, so that a loop that takes a small
 * object and frees it again (a blocking call's owned reply) allocates
 * nothing in the steady state. Take returns the spare when it has at least
 * `need` bytes, with its size in *size (the caller owns it; free it with
 * aredis__free or give it back), or NULL; give parks p (`size` bytes, at
 * most AREDIS__SPARE_MAX)
 * as the spare, or frees it when one is parked already. Thread-safe (one
 * atomic exchange). The spare is released when the hooks change. */
#define AREDIS__SPARE_MAX 1024
void *aredis__spare_take(size_t need, size_t *size);
void aredis__spare_give(void *p, size_t size);

#endif /* AREDIS_UTIL_ALLOC_H */
