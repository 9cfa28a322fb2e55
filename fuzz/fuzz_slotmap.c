/* libFuzzer target for the cluster slot map and redirect parsers
 * (topology/slotmap.c).
 *
 * The input is read as RESP; each complete reply goes to the three slot
 * map parsers (CLUSTER SHARDS, SLOTS and NODES), and the raw input, cut
 * at its first NUL byte, to the redirect parser. Checked on every input:
 *   - a parser returns 0 with a map, or AREDIS_EPROTO with no map and a
 *     non-empty reason;
 *   - a map is consistent: every assigned slot names a shard, every shard
 *     a node, every node a non-empty host and a port in 1..65535, and the
 *     covered count is the number of assigned slots;
 *   - a redirect is MOVED or ASK with a slot below 16384 and a port in
 *     1..65535, or 0, or AREDIS_EPROTO with a reason.
 * The corpus also replays through fuzz/replay.c. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aredis/error.h"
#include "aredis/resp.h"
#include "topology/slotmap.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                          \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, \
                    #cond);                                                  \
            abort();                                                         \
        }                                                                    \
    } while (0)

static void check_map(const aredis__slotmap *m)
{
    size_t covered = 0;
    for (unsigned s = 0; s < AREDIS_CLUSTER_SLOTS; s++) {
        if (m->slot[s] == AREDIS__SLOT_NONE)
            continue;
        covered++;
        CHECK(m->slot[s] < m->nshards);
    }
    CHECK(covered == m->covered);
    CHECK(m->nshards > 0);
    for (size_t i = 0; i < m->nshards; i++) {
        CHECK(m->shards[i].primary < m->nnodes);
        CHECK((size_t)m->shards[i].first_replica + m->shards[i].nreplicas <=
              m->nreplicas);
        for (unsigned k = 0; k < m->shards[i].nreplicas; k++)
            CHECK(m->replicas[m->shards[i].first_replica + k] < m->nnodes);
    }
    for (size_t i = 0; i < m->nnodes; i++) {
        const aredis__slotnode *n = &m->nodes[i];
        CHECK(n->host != NULL && n->host[0] != '\0');
        CHECK(strlen(n->host) <= AREDIS__REDIRECT_HOST_MAX);
        CHECK(n->port > 0 || n->tls_port > 0);
        CHECK(n->port >= 0 && n->port <= 65535);
        CHECK(n->tls_port >= 0 && n->tls_port <= 65535);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    typedef int (*parser)(aredis__slotmap **, const aredis_reply *,
                          const char *, char *, size_t);
    static const parser parsers[] = {aredis__slotmap_from_shards,
                                     aredis__slotmap_from_slots,
                                     aredis__slotmap_from_nodes};
    char err[128];
    aredis_reader *rd = aredis_reader_new(NULL);
    CHECK(rd != NULL);
    const aredis_reply *r;
    if (aredis_reader_feed(rd, (const char *)data, size) == 0 &&
        aredis_reader_get_reply(rd, &r) == 1) {
        for (size_t i = 0; i < sizeof parsers / sizeof *parsers; i++) {
            aredis__slotmap *m = NULL;
            err[0] = '\0';
            int rc = parsers[i](&m, r, "127.0.0.1", err, sizeof err);
            if (rc == 0) {
                CHECK(m != NULL);
                check_map(m);
                aredis__slotmap_free(m);
            } else {
                CHECK(rc == AREDIS_EPROTO || rc == AREDIS_ENOMEM);
                CHECK(m == NULL);
                CHECK(err[0] != '\0');
            }
        }
    }
    aredis_reader_free(rd);

    size_t n = strnlen((const char *)data, size);
    char *msg = malloc(n ? n : 1); /* exactly n bytes: ASan sees overreads */
    CHECK(msg != NULL);
    memcpy(msg, data, n);
    aredis__redirect rd2;
    err[0] = '\0';
    int rc = aredis__redirect_parse(msg, n, &rd2, err, sizeof err);
    if (rc == 1) {
        CHECK(rd2.kind == AREDIS__REDIRECT_MOVED ||
              rd2.kind == AREDIS__REDIRECT_ASK);
        CHECK(rd2.slot < AREDIS_CLUSTER_SLOTS);
        CHECK(rd2.port >= 1 && rd2.port <= 65535);
        CHECK(strlen(rd2.host) <= AREDIS__REDIRECT_HOST_MAX);
    } else {
        CHECK(rc == 0 || (rc == AREDIS_EPROTO && err[0] != '\0'));
    }
    free(msg);
    return 0;
}
