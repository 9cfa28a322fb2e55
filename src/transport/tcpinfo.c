/* How much of a TCP stream the peer acknowledged (transport layer).
 *
 * glibc's struct tcp_info stops before tcpi_bytes_acked (Linux 4.1), so
 * this file reads the kernel's own struct from <linux/tcp.h>, which cannot
 * share a file with <netinet/tcp.h> (tcp.c). A kernel too old to fill the
 * field returns a shorter struct: that is "cannot say", never 0. */
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "aredis/error.h"
#include "transport/transport_int.h"

#ifdef __linux__
#include <linux/tcp.h>
#include <netinet/in.h>

int aredis__tcp_bytes_acked(int fd, uint64_t *acked)
{
    struct tcp_info ti;
    socklen_t len = sizeof ti;
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0 ||
        len < offsetof(struct tcp_info, tcpi_bytes_acked) +
                  sizeof ti.tcpi_bytes_acked)
        return AREDIS_ENOTSUP;
    *acked = ti.tcpi_bytes_acked;
    return 0;
}

#else

int aredis__tcp_bytes_acked(int fd, uint64_t *acked)
{
    (void)fd;
    (void)acked;
    return AREDIS_ENOTSUP;
}

#endif
