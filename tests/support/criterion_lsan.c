/* LeakSanitizer in Criterion test programs: the workers only.
 *
 * Criterion runs each test in a worker process and reports from a runner
 * process that runs no test code. The runner (Criterion 2.4) sometimes
 * exits with a small allocation of its own for a test's .timeout still
 * unreleased, which LeakSanitizer reports as a leak of the program. The
 * leak check is therefore turned off in the runner only: in a worker,
 * where every test and its fixtures run, criterion_current_test is set
 * and every leak is still reported (and fails the test under CTest, see
 * aredis_fail_on_sanitizer_reports()). A suppression could not say the
 * same: the workers' allocation stacks go through libcriterion too.
 *
 * Compiled into every Criterion test program (the aredis_criterion
 * target); without LeakSanitizer the function is simply never called. */
#include <criterion/criterion.h>

/* Called by LeakSanitizer before its check at exit. */
int __lsan_is_turned_off(void); /* NOLINT(bugprone-reserved-identifier) */
int __lsan_is_turned_off(void)  /* NOLINT(bugprone-reserved-identifier) */
{
    return criterion_current_test == NULL;
}
