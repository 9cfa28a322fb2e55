/* The one binary min-heap (util layer): the built-in loop's timers and the
 * client's command deadlines.
 *
 * Intrusive: the owner embeds an aredis__heap_node and gets back to itself
 * with AREDIS__CONTAINER_OF; the heap holds an array of pointers to nodes,
 * and each node knows its position, so removing or re-keying any node is
 * O(log n) and inserting allocates nothing once the array is big enough
 * (aredis__heap_reserve). Nodes are ordered by key, then by the order they
 * were inserted or re-keyed, so equal keys come out first-in first-out. */
#ifndef AREDIS_UTIL_HEAP_H
#define AREDIS_UTIL_HEAP_H

#include <stddef.h>
#include <stdint.h>

#define AREDIS__CONTAINER_OF(ptr, type, member) \
    ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

typedef struct aredis__heap_node {
    int64_t key;
    uint64_t seq; /* when it was (re-)keyed: ties and batch limits */
    size_t pos;   /* index in the heap + 1; 0: not in a heap */
} aredis__heap_node;

typedef struct aredis__heap {
    aredis__heap_node **v;
    size_t len, cap;
    uint64_t seq; /* the last seq handed out */
} aredis__heap;

/* An empty heap; no allocation. */
void aredis__heap_init(aredis__heap *h);
/* Free the array. The nodes are the owners' and are not touched (they may
 * be freed already), so their pos is stale afterwards. */
void aredis__heap_cleanup(aredis__heap *h);

/* Room for n nodes in all, so that inserting up to n can never fail.
 * 0 or AREDIS_ENOMEM. */
int aredis__heap_reserve(aredis__heap *h, size_t n);

/* Insert n with key, or re-key it if it is already in. 0, or AREDIS_ENOMEM
 * (only when inserting beyond the reserved room). */
int aredis__heap_set(aredis__heap *h, aredis__heap_node *n, int64_t key);

/* Take n out; nothing when it is not in. */
void aredis__heap_remove(aredis__heap *h, aredis__heap_node *n);

/* The node with the smallest (key, seq), or NULL when empty. */
static inline aredis__heap_node *aredis__heap_min(const aredis__heap *h)
{
    return h->len > 0 ? h->v[0] : NULL;
}

static inline int aredis__heap_contains(const aredis__heap_node *n)
{
    return n->pos != 0;
}

#endif /* AREDIS_UTIL_HEAP_H */
