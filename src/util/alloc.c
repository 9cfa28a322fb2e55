/* Allocator hooks (util layer).
 *
 * Holds the process-wide allocator table. It touches nothing but the C
 * library's allocator, which is the default. */
#include "util/alloc.h"

#include <stdlib.h>
#include <string.h>

#include "aredis/error.h"

aredis_allocator aredis__allocator = {malloc, calloc, realloc, free};

int aredis_set_allocator(const aredis_allocator *a)
{
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
