/* Unit tests pinning the size of the command record: its connection part
 * (src/conn) and the whole record the client allocates per command in
 * flight (src/client); and of what every idle connection holds: the
 * client, its node with the shared connection, the connection's action
 * slots. Growing any is a decision, not an accident: change the figure
 * here and say why (docs/guide/benchmarks.md compares the heap per idle
 * connection with hiredis's). */
#include <criterion/criterion.h>

#include "client/client_int.h"
#include "conn/conn.h"
#include "node/node.h"

Test(record, conn_part_is_32_bytes)
{
    cr_assert_eq(sizeof(aredis__conn_cmd), 32);
}

Test(record, command_record_fits_96_bytes)
{
    cr_assert_leq(sizeof(aredis__cmd), 96);
    cr_assert_eq(AREDIS__CMD_SIZE, 96);
}

Test(record, conn_part_is_first)
{
    /* A pointer to the connection's part is a pointer to the record. */
    aredis__cmd cmd;
    cr_assert_eq((void *)&cmd.cc, (void *)&cmd);
}

/* 64-bit figures (bench/conn_memory.sh measured them against hiredis's
 * 1.5-1.6 KB per idle connection): malloc rounds each block up to 16
 * bytes with 8 of its own, so a few bytes more can cost 16. */
Test(record, idle_connection_structs)
{
    if (sizeof(void *) != 8)
        return;
    cr_assert_leq(sizeof(aredis_client), 584);
    cr_assert_leq(sizeof(aredis__node), 432);
    cr_assert_leq(sizeof(aredis__conn), 296);
    cr_assert_eq(sizeof(aredis__conn_qa), 16);
}
