/* libFuzzer target for URL parsing (transport/config.c).
 *
 * The input, cut at its first NUL byte, is the URL of an otherwise empty
 * aredis_options. Checked on every input:
 *   - success: a port in 1..65535, db >= 0, a host or a unix path (never
 *     both) of a usable length, protocol 0/2/3, sane timeouts and
 *     keepalive, and no message;
 *   - failure: AREDIS_EURL or AREDIS_EINVAL with a non-empty, printable
 *     message, and nothing left allocated in the config;
 *   - the same input gives the same result again, also with an error
 *     buffer too small for the message (which must stay NUL-terminated).
 * The corpus also replays through fuzz/replay.c. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aredis/error.h"
#include "transport/transport.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                          \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, \
                    #cond);                                                  \
            abort();                                                         \
        }                                                                    \
    } while (0)

static void check_success(const aredis__config *c, const char *err)
{
    CHECK(err[0] == '\0');
    CHECK(c->port >= 1 && c->port <= 65535);
    CHECK(c->db >= 0);
    CHECK((c->host != NULL) != (c->path != NULL));
    if (c->host != NULL)
        CHECK(c->host[0] != '\0' && strlen(c->host) <= 253);
    if (c->path != NULL)
        CHECK(c->path[0] != '\0' && strlen(c->path) < 108);
    CHECK(c->protocol == 0 || c->protocol == 2 || c->protocol == 3);
    CHECK(c->connect_timeout_ms > 0 || c->connect_timeout_ms == -1);
    CHECK(c->command_timeout_ms >= 0);
    CHECK(c->keepalive_idle_s >= 0 && c->keepalive_idle_s <= 32767);
    CHECK(c->tls == 0 || c->tls == 1);
    CHECK(aredis__config_more_of(c)->tls_insecure == 0 ||
          aredis__config_more_of(c)->tls_insecure == 1);
    /* Strings that were given are never empty. */
    CHECK(c->username == NULL || c->username[0] != '\0');
    CHECK(c->password == NULL || c->password[0] != '\0');
    CHECK(c->client_name == NULL || c->client_name[0] != '\0');
    CHECK(aredis__config_more_of(c)->tls_key_file == NULL ||
          aredis__config_more_of(c)->tls_cert_file != NULL);
    /* A cluster URL: 1..AREDIS__MAX_SEEDS seeds, the first one being host
     * and port; database 0 only. Anything else has no seeds. */
    if (c->cluster) {
        CHECK(aredis__config_more_of(c)->nseeds >= 1 &&
              aredis__config_more_of(c)->nseeds <= AREDIS__MAX_SEEDS);
        CHECK(aredis__config_more_of(c)->seeds != NULL && c->path == NULL &&
              c->db == 0);
        CHECK(aredis__config_more_of(c)->nsentinels == 0);
        for (size_t i = 0; i < aredis__config_more_of(c)->nseeds; i++) {
            CHECK(aredis__config_more_of(c)->seeds[i].host != NULL &&
                  aredis__config_more_of(c)->seeds[i].host[0] != '\0');
            CHECK(strlen(aredis__config_more_of(c)->seeds[i].host) <= 253);
            CHECK(aredis__config_more_of(c)->seeds[i].port >= 1 &&
                  aredis__config_more_of(c)->seeds[i].port <= 65535);
        }
        CHECK(strcmp(c->host, aredis__config_more_of(c)->seeds[0].host) == 0);
        CHECK(c->port == aredis__config_more_of(c)->seeds[0].port);
    } else {
        CHECK(aredis__config_more_of(c)->nseeds == 0 &&
              aredis__config_more_of(c)->seeds == NULL);
    }
    /* A sentinel URL: every address usable, a service name, sane knobs. */
    const aredis__config_more *m = aredis__config_more_of(c);
    CHECK((m->nsentinels > 0) == (m->sentinels != NULL));
    CHECK((m->nsentinels > 0) == (m->sentinel_service != NULL));
    for (size_t i = 0; i < m->nsentinels; i++) {
        CHECK(m->sentinels[i].host != NULL && m->sentinels[i].host[0] != '\0');
        CHECK(strlen(m->sentinels[i].host) <= 253);
        CHECK(m->sentinels[i].port >= 1 && m->sentinels[i].port <= 65535);
    }
    if (m->nsentinels > 0) {
        CHECK(m->sentinel_service[0] != '\0');
        CHECK(m->sentinel_timeout_ms > 0);
        CHECK(m->sentinel_tls == 0 || m->sentinel_tls == 1);
        CHECK(m->sentinel_role == 0 || m->sentinel_role == 1);
        CHECK(c->path == NULL);
    }
}

static void check_failure(int rc, const aredis__config *c, const char *err,
                          size_t errlen)
{
    CHECK(rc == AREDIS_EURL || rc == AREDIS_EINVAL || rc == AREDIS_ENOTSUP);
    size_t n = strnlen(err, errlen);
    CHECK(n > 0 && n < errlen);
    for (size_t i = 0; i < n; i++)
        CHECK(err[i] >= 0x20 && err[i] < 0x7f);
    CHECK(c->host == NULL && c->path == NULL && c->username == NULL &&
          c->password == NULL && c->client_name == NULL &&
          aredis__config_more_of(c)->tls_ca_file == NULL &&
          aredis__config_more_of(c)->tls_sni == NULL &&
          aredis__config_more_of(c)->seeds == NULL &&
          aredis__config_more_of(c)->nseeds == 0 &&
          aredis__config_more_of(c)->sentinels == NULL &&
          aredis__config_more_of(c)->nsentinels == 0 &&
          aredis__config_more_of(c)->sentinel_service == NULL &&
          aredis__config_more_of(c)->sentinel_password == NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096)
        return 0;
    char *url = malloc(size + 1);
    CHECK(url != NULL);
    memcpy(url, data, size);
    url[size] = '\0';

    aredis_options o = {.url = url};
    aredis__config c;
    char err[256];
    int rc = aredis__config_from_options(&c, &o, err, sizeof err);
    if (rc == 0)
        check_success(&c, err);
    else
        check_failure(rc, &c, err, sizeof err);
    aredis__config_cleanup(&c);

    /* Again, with a message buffer of 1 to 16 bytes. */
    char small[16];
    size_t smalllen = 1 + size % sizeof small;
    int rc2 = aredis__config_from_options(&c, &o, small, smalllen);
    CHECK(rc2 == rc);
    CHECK(memchr(small, '\0', smalllen) != NULL);
    if (rc == 0) {
        CHECK(small[0] == '\0');
    } else if (strlen(err) < smalllen) {
        CHECK(strcmp(small, err) == 0);
    } else if (smalllen < 5) {
        CHECK(small[0] == '\0'); /* no room for a cut message */
    } else {
        /* Cut between two characters, marked with "...". */
        size_t kept = strlen(small) - 3;
        CHECK(strlen(small) >= 3 && strcmp(small + kept, "...") == 0);
        CHECK(kept + 4 <= smalllen && kept + 7 >= smalllen);
        CHECK(strncmp(small, err, kept) == 0);
    }
    aredis__config_cleanup(&c);

    free(url);
    return 0;
}
