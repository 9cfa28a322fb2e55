/* Allocator hooks that count the calls that allocate, for tests of
 * allocations per command: install with
 * aredis_set_allocator(&countalloc_hooks), read countalloc_calls (reset it
 * or take differences), and aredis_set_allocator(NULL) at the end.
 * Header-only; one counter per test program. */
#ifndef AREDIS_TESTS_COUNTALLOC_H
#define AREDIS_TESTS_COUNTALLOC_H

#include <stdlib.h>

#include "aredis/alloc.h"

static long countalloc_calls;

static void *countalloc_malloc(size_t n)
{
    countalloc_calls++;
    return malloc(n);
}

static void *countalloc_calloc(size_t n, size_t size)
{
    countalloc_calls++;
    return calloc(n, size);
}

static void *countalloc_realloc(void *p, size_t n)
{
    countalloc_calls++;
    return realloc(p, n);
}

static const aredis_allocator countalloc_hooks = {
    countalloc_malloc, countalloc_calloc, countalloc_realloc, free};

#endif /* AREDIS_TESTS_COUNTALLOC_H */
