/* Allocator hooks (util layer).
 *
 * Holds the process-wide allocator table and the one spare block (see
 * aredis__spare_take). It touches nothing but the C library's allocator,
 * which is the default. */
#include "util/alloc.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "aredis/error.h"

aredis_allocator aredis__allocator = {malloc, calloc, realloc, free};

/* The spare block, or NULL. While parked, its first word holds its size. */
static _Atomic(void *) spare;

void *aredis__spare_take(size_t need, size_t *size)
{
    void *p = atomic_exchange_explicit(&spare, NULL, memory_order_acquire);
    if (p == NULL)
        return NULL;
    memcpy(size, p, sizeof *size);
    if (*size >= need)
        return p;
    aredis__free(p);
    return NULL;
}

void aredis__spare_give(void *p, size_t size)
{
    if (size < sizeof size || size > AREDIS__SPARE_MAX) {
        aredis__free(p);
        return;
    }
    memcpy(p, &size, sizeof size);
    void *none = NULL;
    if (!atomic_compare_exchange_strong_explicit(
            &spare, &none, p, memory_order_release, memory_order_relaxed))
        aredis__free(p); /* a spare is parked already */
}

int aredis_set_allocator(const aredis_allocator *a)
{
    /* The spare came from the hooks in use: give it back to them. */
    aredis__free(atomic_exchange(&spare, NULL));
    if (a == NULL) {
        aredis__allocator = (aredis_allocator){malloc, calloc, realloc, free};
        return 0;
    }
    if (!a->malloc_fn || !a->calloc_fn || !a->realloc_fn || !a->free_fn)
        return AREDIS_EINVAL;
    aredis__allocator = *a;
    return 0;
}

aredis_allocator aredis_get_allocator(void)
{
    return aredis__allocator;
}

char *aredis__strndup(const char *s, size_t n)
{
    if (n == SIZE_MAX)
        return NULL;
    char *p = aredis__malloc(n + 1);
    if (p == NULL)
        return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}
