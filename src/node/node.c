/* One server (node layer): its address and role, its shared connection
 * and its pool of exclusive connections (pool.c); the connections' driver
 * is link.c. */
#include "node/node.h"

#include <assert.h>
#include <string.h>

#include "aredis/error.h"
#include "util/alloc.h"

int aredis__node_init(aredis__node *n, aredis_client *c, const char *host,
                      int port)
{
    memset(n, 0, sizeof *n);
    n->c = c;
    n->port = port;
    if (host == c->cfg.host) /* borrowed: the client outlives its nodes */
        n->host = c->cfg.host;
    else if (host != NULL &&
             (n->host = aredis__strndup(host, strlen(host))) == NULL)
        return AREDIS_ENOMEM;
    int e = aredis__link_init(&n->main, n, 0);
    if (e != 0) {
        aredis__link_cleanup(&n->main);
        aredis__node_set_host(n, NULL);
    }
    return e;
}

void aredis__node_set_host(aredis__node *n, char *host)
{
    if (n->host != n->c->cfg.host)
        aredis__free(n->host);
    n->host = host;
}

void aredis__node_set_steps(aredis__node *n, const aredis__conn_step *steps,
                            size_t nsteps)
{
    assert(nsteps <= UINT8_MAX); /* a handful: READONLY, CLIENT TRACKING */
    n->steps = steps;
    n->nsteps = (uint8_t)nsteps;
    n->main.conn.extra = steps;
    n->main.conn.nextra = n->nsteps;
    for (aredis__link *l = aredis__pool_first(n); l != NULL;
         l = aredis__pool_next(l)) {
        l->conn.extra = steps;
        l->conn.nextra = n->nsteps;
    }
}

void aredis__node_cleanup(aredis__node *n)
{
    aredis__cancel_list(n->c, aredis__link_take_all(&n->main));
    aredis__pool_free_all(n);
    aredis__link_cleanup(&n->main);
    aredis__node_set_host(n, NULL);
}

void aredis__node_timer(aredis__node *n, int64_t now)
{
    aredis__link_timer(&n->main, now);
    aredis__pool_timer(n, now);
}

int aredis__node_unwait(aredis__node *n, aredis__cmd *cmd)
{
    return aredis__pool_unwait(n, cmd);
}
