/* A log-linear latency histogram (the idea of HdrHistogram, in a few
 * lines) and the clocks the drivers time commands with.
 *
 * Group 0 holds 0 .. 2^S - 1 ns exactly; group g >= 1 covers
 * [2^(S+g-1), 2^(S+g)) in 2^S buckets of width 2^(g-1). Adding is a
 * count-leading-zeros and an increment, so timing every command costs
 * less than reading the clock. */
#include <math.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "bm.h"

#define S BM_SUB_BITS

static int bucket_of(uint64_t ns)
{
    if (ns < (1u << S))
        return (int)ns;
    int e = 63 - __builtin_clzll(ns);
    int g = e - S + 1;
    int sub = (int)((ns >> (e - S)) - (1u << S));
    int i = (g << S) + sub;
    return i < BM_HIST_BUCKETS ? i : BM_HIST_BUCKETS - 1;
}

uint64_t bm_hist_bucket_low(int i)
{
    int g = i >> S;
    uint64_t sub = (uint64_t)(i & ((1 << S) - 1));
    if (g == 0)
        return sub;
    return ((1ull << S) + sub) << (g - 1);
}

uint64_t bm_hist_bucket_width(int i)
{
    int g = i >> S;
    return g == 0 ? 1 : 1ull << (g - 1);
}

void bm_hist_add(bm_hist *h, uint64_t ns)
{
    h->b[bucket_of(ns)]++;
    h->count++;
    if (ns > h->max_ns)
        h->max_ns = ns;
}

void bm_hist_merge(bm_hist *into, const bm_hist *from)
{
    for (int i = 0; i < BM_HIST_BUCKETS; i++)
        into->b[i] += from->b[i];
    into->count += from->count;
    if (from->max_ns > into->max_ns)
        into->max_ns = from->max_ns;
}

uint64_t bm_hist_quantile(const bm_hist *h, double q)
{
    if (h->count == 0)
        return 0;
    double r = ceil(q * (double)h->count);
    uint64_t rank = r < 1 ? 1 : (uint64_t)r;
    uint64_t seen = 0;
    for (int i = 0; i < BM_HIST_BUCKETS; i++) {
        seen += h->b[i];
        if (seen >= rank) {
            uint64_t v = bm_hist_bucket_low(i) + bm_hist_bucket_width(i) / 2;
            return v < h->max_ns ? v : h->max_ns;
        }
    }
    return h->max_ns;
}

uint64_t bm_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

double bm_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}
