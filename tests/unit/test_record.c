/* Unit tests pinning the size of the command record: its connection part
 * (src/conn) and the whole record the client allocates per command in
 * flight (src/client). Growing either is a decision, not an accident:
 * change the figure here and say why. */
#include <criterion/criterion.h>

#include "client/client_int.h"
#include "conn/conn.h"

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
