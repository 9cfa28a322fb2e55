/* The one binary min-heap (util layer): see heap.h. Allocates only the
 * array of node pointers, through the allocator hooks. */
#include "util/heap.h"

#include "aredis/error.h"
#include "util/alloc.h"

#define MIN_CAP 16

static int before(const aredis__heap_node *a, const aredis__heap_node *b)
{
    return a->key < b->key || (a->key == b->key && a->seq < b->seq);
}

static void place(aredis__heap *h, size_t i, aredis__heap_node *n)
{
    h->v[i] = n;
    n->pos = i + 1;
}

static void sift_up(aredis__heap *h, size_t i)
{
    aredis__heap_node *n = h->v[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!before(n, h->v[parent]))
            break;
        place(h, i, h->v[parent]);
        i = parent;
    }
    place(h, i, n);
}

static void sift_down(aredis__heap *h, size_t i)
{
    aredis__heap_node *n = h->v[i];
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= h->len)
            break;
        if (child + 1 < h->len && before(h->v[child + 1], h->v[child]))
            child++;
        if (!before(h->v[child], n))
            break;
        place(h, i, h->v[child]);
        i = child;
    }
    place(h, i, n);
}

void aredis__heap_init(aredis__heap *h)
{
    h->v = NULL;
    h->len = h->cap = 0;
    h->seq = 0;
}

void aredis__heap_cleanup(aredis__heap *h)
{
    /* The nodes are not touched: their owners may be gone already. */
    aredis__free(h->v);
    aredis__heap_init(h);
}

int aredis__heap_reserve(aredis__heap *h, size_t n)
{
    if (n <= h->cap)
        return 0;
    size_t cap = h->cap < MIN_CAP ? MIN_CAP : h->cap;
    while (cap < n)
        cap *= 2;
    /* An array of pointers to nodes. */
    // NOLINTNEXTLINE(bugprone-sizeof-expression)
    aredis__heap_node **v = aredis__reallocarray(h->v, cap, sizeof *v);
    if (v == NULL)
        return AREDIS_ENOMEM;
    h->v = v;
    h->cap = cap;
    return 0;
}

int aredis__heap_set(aredis__heap *h, aredis__heap_node *n, int64_t key)
{
    n->key = key;
    n->seq = ++h->seq;
    if (n->pos != 0) {
        /* Re-keyed in place: it moves whichever way its key says; at
         * most one of the two sifts does anything. */
        size_t i = n->pos - 1;
        sift_up(h, i);
        sift_down(h, n->pos - 1);
        return 0;
    }
    if (h->len == h->cap && aredis__heap_reserve(h, h->len + 1) != 0)
        return AREDIS_ENOMEM;
    h->v[h->len] = n;
    sift_up(h, h->len++);
    return 0;
}

void aredis__heap_remove(aredis__heap *h, aredis__heap_node *n)
{
    if (n->pos == 0)
        return;
    size_t i = n->pos - 1;
    n->pos = 0;
    h->len--;
    if (i == h->len)
        return;
    /* The last node fills the hole and moves whichever way its key says. */
    aredis__heap_node *moved = h->v[h->len];
    place(h, i, moved);
    sift_up(h, i);
    sift_down(h, moved->pos - 1);
}
