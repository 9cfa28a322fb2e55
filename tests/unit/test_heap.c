/* Unit tests for the one binary heap (util/heap.c) that the built-in
 * loop's timers and the client's command deadlines share: order by key
 * then insertion (FIFO ties), removal and re-keying anywhere, against a
 * brute-force reference over random operations; inserting within the
 * reserved room never allocates. No server, no I/O. */
#include <criterion/criterion.h>

#include <stdlib.h>
#include <string.h>

#include "aredis/alloc.h"
#include "aredis/error.h"
#include "util/heap.h"

typedef struct item {
    int id;
    aredis__heap_node hn;
} item;

static item *item_of(aredis__heap_node *n)
{
    return AREDIS__CONTAINER_OF(n, item, hn);
}

Test(heap, empty_and_single)
{
    aredis__heap h;
    aredis__heap_init(&h);
    cr_assert_null(aredis__heap_min(&h));
    item a = {.id = 1};
    cr_assert_not(aredis__heap_contains(&a.hn));
    aredis__heap_remove(&h, &a.hn); /* not in: nothing */
    cr_assert_eq(aredis__heap_set(&h, &a.hn, 5), 0);
    cr_assert(aredis__heap_contains(&a.hn));
    cr_assert_eq(item_of(aredis__heap_min(&h))->id, 1);
    aredis__heap_remove(&h, &a.hn);
    cr_assert_not(aredis__heap_contains(&a.hn));
    cr_assert_null(aredis__heap_min(&h));
    aredis__heap_cleanup(&h);
}

Test(heap, equal_keys_come_out_in_insertion_order)
{
    aredis__heap h;
    aredis__heap_init(&h);
    item it[20];
    for (int i = 0; i < 20; i++) {
        it[i].id = i;
        it[i].hn.pos = 0;
        cr_assert_eq(aredis__heap_set(&h, &it[i].hn, i % 2 ? 7 : 3), 0);
    }
    /* Re-keying moves an item behind the others of its new key. */
    cr_assert_eq(aredis__heap_set(&h, &it[0].hn, 3), 0);
    int want[20], k = 0;
    for (int i = 2; i < 20; i += 2)
        want[k++] = i;
    want[k++] = 0;
    for (int i = 1; i < 20; i += 2)
        want[k++] = i;
    for (int i = 0; i < 20; i++) {
        aredis__heap_node *n = aredis__heap_min(&h);
        cr_assert_not_null(n);
        cr_assert_eq(item_of(n)->id, want[i], "position %d: %d, want %d", i,
                     item_of(n)->id, want[i]);
        aredis__heap_remove(&h, n);
    }
    cr_assert_null(aredis__heap_min(&h));
    aredis__heap_cleanup(&h);
}

Test(heap, random_operations_match_a_reference)
{
    enum { N = 200, OPS = 20000 };
    aredis__heap h;
    aredis__heap_init(&h);
    item it[N];
    int in[N];
    int64_t key[N];
    uint64_t seq[N], clock = 0;
    memset(in, 0, sizeof in);
    for (int i = 0; i < N; i++) {
        it[i].id = i;
        it[i].hn.pos = 0;
    }
    srand(12345);
    for (int op = 0; op < OPS; op++) {
        int i = rand() % N;
        if (rand() % 3 == 0) {
            aredis__heap_remove(&h, &it[i].hn);
            in[i] = 0;
        } else {
            int64_t k = rand() % 50; /* many ties */
            cr_assert_eq(aredis__heap_set(&h, &it[i].hn, k), 0);
            in[i] = 1;
            key[i] = k;
            seq[i] = ++clock;
        }
        /* The reference minimum: smallest key, then the earliest set. */
        int best = -1;
        size_t count = 0;
        for (int j = 0; j < N; j++) {
            if (!in[j])
                continue;
            count++;
            if (best < 0 || key[j] < key[best] ||
                (key[j] == key[best] && seq[j] < seq[best]))
                best = j;
        }
        cr_assert_eq(h.len, count);
        aredis__heap_node *m = aredis__heap_min(&h);
        if (best < 0)
            cr_assert_null(m);
        else
            cr_assert_eq(item_of(m)->id, best, "op %d", op);
        for (int j = 0; j < N; j++)
            cr_assert_eq(aredis__heap_contains(&it[j].hn), in[j]);
    }
    aredis__heap_cleanup(&h);
}

static int allocs;
static void *count_malloc(size_t n)
{
    allocs++;
    return malloc(n);
}
static void *count_calloc(size_t n, size_t s)
{
    allocs++;
    return calloc(n, s);
}
static void *count_realloc(void *p, size_t n)
{
    allocs++;
    return realloc(p, n);
}

Test(heap, inserting_within_the_reserved_room_does_not_allocate)
{
    aredis_allocator a = {count_malloc, count_calloc, count_realloc, free};
    cr_assert_eq(aredis_set_allocator(&a), 0);
    aredis__heap h;
    aredis__heap_init(&h);
    cr_assert_eq(aredis__heap_reserve(&h, 100), 0);
    int before = allocs;
    item it[100];
    for (int i = 0; i < 100; i++) {
        it[i].hn.pos = 0;
        cr_assert_eq(aredis__heap_set(&h, &it[i].hn, 100 - i), 0);
    }
    cr_assert_eq(allocs, before, "%d allocations", allocs - before);
    aredis__heap_cleanup(&h);
    aredis_set_allocator(NULL);
}
