/* Integration tests of the Sentinel topology against a real set-up: one
 * master, two replicas and three sentinels, started by the fixture
 * redis_sentinel (tests/support/redis-sentinel.sh). The set-up is shared:
 * no test here fails it over or stops one of its members. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aredis/aredis.h"
#include "testenv.h"

/* ---- the set-up's state file ------------------------------------------- */

/* The value of key in the set-up's state file into buf ("" when absent). */
static void setup_value(const char *key, char *buf, size_t cap)
{
    const char *dir = getenv("AREDIS_TEST_STATE_DIR");
    cr_assert_not_null(dir, "run through ctest (fixture redis_sentinel)");
    char path[1024], line[1024];
    snprintf(path, sizeof path, "%s/sentinel.state", dir);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "%s: the fixture redis_sentinel did not run", path);
    size_t klen = strlen(key);
    buf[0] = '\0';
    while (fgets(line, sizeof line, f) != NULL) {
        line[strcspn(line, "\r\n")] = '\0';
        if (strncmp(line, key, klen) == 0 && line[klen] == '=') {
            snprintf(buf, cap, "%s", line + klen + 1);
            break;
        }
    }
    fclose(f);
    cr_assert_neq(buf[0], '\0', "%s has no %s", path, key);
}

/* The port of the i-th "127.0.0.1:port" in a comma-separated list. */
static int nth_port(const char *list, int i)
{
    const char *p = list;
    for (; i > 0 && p != NULL; i--)
        if ((p = strchr(p, ',')) != NULL)
            p++;
    cr_assert_not_null(p, "no address %d in '%s'", i, list);
    const char *colon = strchr(p, ':');
    cr_assert_not_null(colon, "bad address in '%s'", list);
    return atoi(colon + 1);
}

static void connect_port(testenv_conn *c, int port)
{
    testenv_server s = {.port = port};
    snprintf(s.host, sizeof s.host, "127.0.0.1");
    cr_assert_eq(testenv_connect(c, &s), 0, "%s", testenv_errstr());
}

/* ---- the set-up itself ------------------------------------------------- */

Test(sentinel_setup, every_sentinel_names_the_master_and_knows_the_rest)
{
    char service[64], master[64], replicas[256], sentinels[256];
    setup_value("service", service, sizeof service);
    setup_value("master", master, sizeof master);
    setup_value("replicas", replicas, sizeof replicas);
    setup_value("sentinels", sentinels, sizeof sentinels);
    int mport = nth_port(master, 0);

    for (int i = 0; i < 3; i++) {
        testenv_conn c;
        const aredis_reply *r;
        connect_port(&c, nth_port(sentinels, i));
        cr_assert_eq(testenv_command(&c, &r,
                                     "SENTINEL GET-MASTER-ADDR-BY-NAME %s",
                                     service),
                     0, "%s", testenv_errstr());
        cr_assert_eq(r->type, AREDIS_REPLY_ARRAY);
        cr_assert_eq(r->len, 2);
        cr_assert_eq(atoi(r->element[1].str), mport);
        cr_assert_eq(testenv_command(&c, &r, "SENTINEL REPLICAS %s", service),
                     0, "%s", testenv_errstr());
        cr_assert_eq(r->len, 2, "sentinel %d knows both replicas", i);
        cr_assert_eq(testenv_command(&c, &r, "SENTINEL SENTINELS %s", service),
                     0, "%s", testenv_errstr());
        cr_assert_eq(r->len, 2, "sentinel %d knows the other two", i);
        testenv_close(&c);
    }

    testenv_conn m;
    const aredis_reply *r;
    connect_port(&m, mport);
    cr_assert_eq(testenv_command(&m, &r, "ROLE"), 0, "%s", testenv_errstr());
    cr_assert_str_eq(r->element[0].str, "master");
    cr_assert_eq(r->element[2].len, 2, "the master has both replicas");
    testenv_close(&m);
    (void)replicas;
}
