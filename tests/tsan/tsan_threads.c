/* ThreadSanitizer driver for the thread-safe submission scenario
 * (tests/support/threads_scenario.h). Criterion's runner cannot start
 * under TSan, so this plain program runs the same scenario and exits
 * non-zero on any failure; TSan itself fails the run on a data race
 * (halt_on_error=1). Usage: tsan_threads (finds the standalone server
 * through AREDIS_TEST_STATE like every integration test). */
#include <stdio.h>

#include "testenv.h"
#include "threads_scenario.h"

int main(void)
{
    testenv_server srv;
    if (testenv_server_load(&srv, "standalone") != 0) {
        fprintf(stderr, "tsan_threads: %s\n", testenv_errstr());
        return 1;
    }
    char url[128], key[64], why[160] = "";
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/0", srv.port);
    testenv_key(key, sizeof key, "tsan");
    if (threads_scenario(url, key, why, sizeof why) != 0) {
        fprintf(stderr, "tsan_threads: %s\n", why);
        return 1;
    }
    printf("tsan_threads: %d callbacks, each once, on the loop thread\n",
           TS_THREADS * TS_PER_THREAD);
    return 0;
}
