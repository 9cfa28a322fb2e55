/* Commands a topology holds: route() answered AREDIS__HELD (no slot map
 * yet, a server being replaced, the replicas not known yet) and sends or
 * completes them later. See topology.h. */
#include "topology/topology.h"

void aredis__held_push(aredis__held *h, aredis__cmd *cmd)
{
    cmd->flags |= AREDIS__CMD_PENDING;
    cmd->link = NULL;
    cmd->cc.next = NULL;
    if (h->tail != NULL)
        h->tail->cc.next = &cmd->cc;
    else
        h->head = cmd;
    h->tail = cmd;
}

int aredis__held_remove(aredis__held *h, aredis__cmd *cmd)
{
    aredis__cmd *prev = NULL;
    for (aredis__cmd *x = h->head; x != NULL;
         prev = x, x = aredis__cmd_next(x)) {
        if (x != cmd)
            continue;
        if (prev != NULL)
            prev->cc.next = x->cc.next;
        else
            h->head = aredis__cmd_next(x);
        if (h->tail == x)
            h->tail = prev;
        x->cc.next = NULL;
        x->flags &= (uint8_t)~AREDIS__CMD_PENDING;
        return 1;
    }
    return 0;
}

aredis__cmd *aredis__held_take(aredis__held *h)
{
    aredis__cmd *list = h->head;
    h->head = h->tail = NULL;
    return list;
}
