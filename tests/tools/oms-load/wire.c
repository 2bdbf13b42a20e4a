/* wire.c — bytes received on the wire: what TCP handed this process on a
 * socket (TCP_INFO's tcpi_bytes_received, Linux 4.1+), WebSocket frame
 * headers and compressed payloads included, as opposed to the payload
 * bytes the protocol callbacks see after permessage-deflate inflated them.
 *
 * Its own file: <linux/tcp.h> declares struct tcp_info with the field, and
 * clashes with glibc's <netinet/tcp.h>, which libwebsockets.h brings in. */
#include <linux/tcp.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include "wire.h"

int load_wire_rx_bytes(int fd, uint64_t *bytes)
{
    struct tcp_info ti;
    socklen_t len = sizeof ti;
    memset(&ti, 0, sizeof ti);
    if (fd < 0 || getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0)
        return -1;
    /* an older kernel fills less: then the field was not there */
    if (len < offsetof(struct tcp_info, tcpi_bytes_received) + sizeof ti.tcpi_bytes_received)
        return -1;
    *bytes = ti.tcpi_bytes_received;
    return 0;
}
