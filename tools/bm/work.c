/* Workloads: the argv of each test's next command, for any driver.
 *
 * Keys are PREFIX + a type prefix + 12 digits, as redis-benchmark's
 * __rand_int__ makes them: one fixed name without -r, a random (xorshift,
 * seeded per connection) or sequential index below -r with it. */
#include <stdio.h>
#include <string.h>

#include "bm.h"

void bm_work_init(bm_work *w, const bm_config *cfg, bm_test t, int id,
                  char *value)
{
    memset(w, 0, sizeof *w);
    w->cfg = cfg;
    w->test = t;
    /* splitmix64 of seed and id: distinct, never-zero xorshift states. */
    uint64_t z = cfg->seed + 0x9e3779b97f4a7c15ULL * (uint64_t)(id + 1);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    w->rng = (z ^ (z >> 31)) | 1;
    w->value = value;
}

/* Sequential keys: one counter for all connections (and threads), so that
 * the names are used in turn whoever sends the command. */
static unsigned long long shared_seq;

static unsigned long long next_index(bm_work *w)
{
    const bm_config *cfg = w->cfg;
    if (cfg->keyspace <= 0)
        return 0;
    if (cfg->sequential)
        return __atomic_fetch_add(&shared_seq, 1, __ATOMIC_RELAXED) %
               (unsigned long long)cfg->keyspace;
    uint64_t x = w->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    w->rng = x;
    return x % (unsigned long long)cfg->keyspace;
}

static void key(bm_work *w, int slot, const char *type)
{
    snprintf(w->keys[slot], sizeof w->keys[slot], "%s%s%012llu", w->cfg->prefix,
             type, next_index(w));
}

static void arg(bm_work *w, int i, const char *s, size_t len)
{
    w->argv[i] = s;
    w->argvlen[i] = len;
}

static void arg_s(bm_work *w, int i, const char *s)
{
    arg(w, i, s, strlen(s));
}

static void arg_key(bm_work *w, int i, int slot, const char *type)
{
    key(w, slot, type);
    arg_s(w, i, w->keys[slot]);
}

static void arg_value(bm_work *w, int i)
{
    arg(w, i, w->value, w->cfg->datasize);
}

int bm_work_next(bm_work *w)
{
    const bm_config *cfg = w->cfg;
    bm_test t = w->test;
    w->n++;
    if (t == BM_MIXED) {
        unsigned long long period =
            (unsigned long long)(cfg->ratio_set + cfg->ratio_get);
        t = (w->n - 1) % period < (unsigned long long)cfg->ratio_set ? BM_SET
                                                                     : BM_GET;
    }
    switch (t) {
    case BM_PING:
        arg_s(w, 0, "PING");
        return 1;
    case BM_SET:
        arg_s(w, 0, "SET");
        arg_key(w, 1, 0, "key:");
        arg_value(w, 2);
        return 3;
    case BM_GET:
        arg_s(w, 0, "GET");
        arg_key(w, 1, 0, "key:");
        return 2;
    case BM_INCR:
        arg_s(w, 0, "INCR");
        arg_key(w, 1, 0, "counter:");
        return 2;
    case BM_LPUSH:
        arg_s(w, 0, "LPUSH");
        arg_key(w, 1, 0, "mylist:");
        arg_value(w, 2);
        return 3;
    case BM_LPOP:
        arg_s(w, 0, "LPOP");
        arg_key(w, 1, 0, "mylist:");
        return 2;
    case BM_HSET:
        /* One hash per prefix, fields spread over the keyspace. */
        snprintf(w->keys[1], sizeof w->keys[1], "%smyhash", cfg->prefix);
        arg_s(w, 0, "HSET");
        arg_s(w, 1, w->keys[1]);
        arg_key(w, 2, 0, "element:");
        arg_value(w, 3);
        return 4;
    case BM_MSET:
        arg_s(w, 0, "MSET");
        for (int k = 0; k < 10; k++) {
            arg_key(w, 1 + 2 * k, k, "key:");
            arg_value(w, 2 + 2 * k);
        }
        return 21;
    case BM_KEYS:
        arg_s(w, 0, "KEYS");
        arg_s(w, 1, "*");
        return 2;
    default:
        return 0;
    }
}
