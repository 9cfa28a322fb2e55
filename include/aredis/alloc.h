/* Allocator hooks for the whole library.
 *
 * aredis never calls malloc() and friends directly: every allocation goes
 * through the functions installed here. Install them once, before any other
 * aredis call, and do not change them while any aredis object exists (memory
 * allocated by one set of hooks would be released by another). */
#ifndef AREDIS_ALLOC_H
#define AREDIS_ALLOC_H

#include <stddef.h>

#include "export.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct aredis_allocator {
    void *(*malloc_fn)(size_t size);
    void *(*calloc_fn)(size_t count, size_t size);
    void *(*realloc_fn)(void *ptr, size_t size);
    void (*free_fn)(void *ptr);
} aredis_allocator;

/** Install allocator hooks.
 * \param a the four functions; copied. NULL restores the C library's.
 *          All four members must be non-NULL.
 * \return 0, or AREDIS_EINVAL when a member is NULL (nothing changes).
 * \note Not thread-safe; call before creating any aredis object. \since 0.1 */
AREDIS_API int aredis_set_allocator(const aredis_allocator *a);

/** \return the hooks in use (a copy). \since 0.1 */
AREDIS_API aredis_allocator aredis_get_allocator(void);

#ifdef __cplusplus
}
#endif

#endif /* AREDIS_ALLOC_H */
