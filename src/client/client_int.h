/* Private to the client folder: the client's state and the helpers shared
 * by client.c (life cycle, submit, completion), handshake.c (the protocol
 * handshake) and normalize.c (RESP2 -> RESP3 reshaping). */
#ifndef AREDIS_CLIENT_CLIENT_INT_H
#define AREDIS_CLIENT_CLIENT_INT_H

#include <stddef.h>
#include <stdint.h>

#include "aredis/client.h"
#include "conn/conn.h"
#include "loop/loop.h"
#include "transport/transport.h"

/* Connection states. */
enum {
    AREDIS__ST_IDLE,       /* no socket; the next command connects */
    AREDIS__ST_RESOLVING,  /* waiting for the host name */
    AREDIS__ST_CONNECTING, /* TCP connect / TLS handshake */
    AREDIS__ST_HANDSHAKE,  /* HELLO / AUTH / SETNAME / SELECT */
    AREDIS__ST_READY,
};

/* Built-in reshaping of RESP2 replies (normalize.c). */
enum {
    AREDIS__NORM_NONE,
    AREDIS__NORM_MAP,          /* flat array -> map */
    AREDIS__NORM_SET,          /* array -> set */
    AREDIS__NORM_PAIRS_DOUBLE, /* m,s,m,s -> [m,s(double)],... */
    AREDIS__NORM_DOUBLE,       /* bulk -> double */
    AREDIS__NORM_DOUBLES,      /* array of bulks -> array of doubles */
};

typedef struct arena_chunk arena_chunk;

struct aredis_reply_arena {
    arena_chunk *chunks;
    size_t used; /* in the first chunk */
};

typedef struct aredis__hook {
    char *name;
    size_t len;
    aredis_reply_hook fn;
    void *ud;
} aredis__hook;

struct aredis_client {
    aredis_loop *loop;
    aredis__config cfg;
    int state;
    int freeing;
    int in_cb; /* depth of user callbacks on the stack */
    int proto; /* 2 or 3 once negotiated */
    int hs_step;

    aredis__resolve *resolving;
    struct sockaddr_storage *addrs;
    socklen_t *addrlens;
    size_t naddrs, addr_next;
    aredis__transport *tp;
    void *io;
    int io_events;
    void *timer;
    int64_t timer_at; /* armed for this absolute time, 0: disarmed */
    int64_t connect_deadline;

    aredis__conn conn;

    /* Commands submitted before the connection is ready, with their bytes. */
    aredis_buf pend_out;
    aredis__cmd *pend_head, *pend_tail;

    /* Completions decided inside an API call, run from the loop. */
    aredis__cmd *done_head, *done_tail;
    aredis__defer defer;
    int flush_wanted;

    /* Commands with a deadline, a binary min-heap on cmd->deadline. */
    aredis__cmd **heap;
    size_t heap_len, heap_cap;

    size_t pending; /* callbacks still to run */
    aredis__cmd *free_cmds;
    size_t nfree_cmds;

    aredis__hook *hooks;
    size_t nhooks;
    aredis_reply_arena arena;
    aredis_push_cb push_cb;
    void *push_ud;
    void *data;
    void (*data_free)(void *);
    char errmsg[192]; /* why the last connection failed */
};

/* handshake.c */
int aredis__handshake_start(aredis_client *c);
/* client.c, for handshake.c */
int aredis__client_internal(aredis_client *c, int argc, const char **argv,
                            void (*icb)(aredis_client *, aredis__cmd *,
                                        const aredis_reply *));
void aredis__client_ready(aredis_client *c);
void aredis__client_conn_failed(aredis_client *c, int code, const char *msg);
void aredis__client_flush(aredis_client *c);

/* normalize.c */
int aredis__norm_classify(const char *name, size_t len, const char *args,
                          size_t argslen, int argc);
const aredis_reply *aredis__normalize(aredis_reply_arena *a, int norm,
                                      const aredis_reply *r);

/* arena.c */
void aredis__arena_reset(aredis_reply_arena *a);
void aredis__arena_cleanup(aredis_reply_arena *a);

#endif /* AREDIS_CLIENT_CLIENT_INT_H */
