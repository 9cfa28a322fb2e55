/* The blocking facade's node calls (client layer): aredis_node_commandv()
 * and aredis_nodes_commandv() of aredis/cluster.h, with or without
 * per-command options, called and waited for like aredis_sync_commandv()
 * (sync.c). The SCAN iterator of the blocking facade walks a cluster's
 * primaries with them. */
#include "aredis/cluster.h"
#include "aredis/sync.h"
#include "client/sync_int.h"

aredis_reply *aredis_sync_node_commandv_opts(aredis_sync *s,
                                             const aredis_cmd_opts *o,
                                             const char *host, int port,
                                             int argc, const char *const *argv,
                                             const size_t *argvlen)
{
    int e = aredis__sync_begin(s);
    if (e != 0)
        return aredis__sync_error(e, aredis__sync_why(e));
    e = aredis_node_commandv_opts(s->client, o, host, port,
                                  aredis__sync_on_reply, &s->w, argc, argv,
                                  argvlen);
    return aredis__sync_reply(s, e);
}

aredis_reply *aredis_sync_node_commandv(aredis_sync *s, const char *host,
                                        int port, int argc,
                                        const char *const *argv,
                                        const size_t *argvlen)
{
    return aredis_sync_node_commandv_opts(s, NULL, host, port, argc, argv,
                                          argvlen);
}

aredis_reply *aredis_sync_nodes_commandv_opts(aredis_sync *s,
                                              const aredis_cmd_opts *o,
                                              int which, int argc,
                                              const char *const *argv,
                                              const size_t *argvlen)
{
    int e = aredis__sync_begin(s);
    if (e != 0)
        return aredis__sync_error(e, aredis__sync_why(e));
    e = aredis_nodes_commandv_opts(s->client, o, which, aredis__sync_on_reply,
                                   &s->w, argc, argv, argvlen);
    return aredis__sync_reply(s, e);
}

aredis_reply *aredis_sync_nodes_commandv(aredis_sync *s, int which, int argc,
                                         const char *const *argv,
                                         const size_t *argvlen)
{
    return aredis_sync_nodes_commandv_opts(s, NULL, which, argc, argv, argvlen);
}
