/* Unit tests for the waits of held cluster commands
 * (aredis__cluster_backoff(), src/topology/cluster.c):
 *  - after a TRYAGAIN (keys a migration has split, together again at the
 *    next MIGRATE or when the slot changes hands) the first retry comes
 *    within 5 ms and no two are more than 50 ms apart, so a command is
 *    answered at most 50 ms after its keys are together;
 *  - without a deadline, a command retried after TRYAGAINs waits as long
 *    in all as one retried for another cause before it gives up;
 *  - the other causes (CLUSTERDOWN, no map, a node unreachable) keep
 *    their slower schedule: 20 ms doubling up to 200 ms. */
#include <criterion/criterion.h>

#include <stdint.h>

#include "topology/topology.h"

Test(cluster_backoff, tryagain_retries_are_short)
{
    cr_assert_leq(aredis__cluster_backoff(1, 0), 5);
    int64_t prev = 0;
    for (int i = 0; i < aredis__cluster_retry_budget(1); i++) {
        int64_t d = aredis__cluster_backoff(1, i);
        cr_assert_gt(d, 0, "retry %d", i);
        cr_assert_leq(d, 50, "retry %d waits %lld ms", i, (long long)d);
        cr_assert_geq(d, prev, "retry %d waits less than the one before", i);
        prev = d;
    }
}

Test(cluster_backoff, tryagain_is_as_patient_without_a_deadline)
{
    int64_t tryagain = 0, other = 0;
    for (int i = 0; i < aredis__cluster_retry_budget(1); i++)
        tryagain += aredis__cluster_backoff(1, i);
    for (int i = 0; i < aredis__cluster_retry_budget(0); i++)
        other += aredis__cluster_backoff(0, i);
    cr_assert_geq(tryagain, other,
                  "TRYAGAIN gives up after %lld ms, others "
                  "after %lld ms",
                  (long long)tryagain, (long long)other);
}

Test(cluster_backoff, other_causes_keep_their_schedule)
{
    static const int64_t want[] = {20, 40, 80, 160, 200, 200, 200};
    for (int i = 0; i < 7; i++)
        cr_assert_eq(aredis__cluster_backoff(0, i), want[i], "retry %d", i);
    cr_assert_eq(aredis__cluster_backoff(0, 255), 200);
    cr_assert_eq(aredis__cluster_backoff(1, 255), 50);
    cr_assert_eq(aredis__cluster_retry_budget(0), 40);
}
