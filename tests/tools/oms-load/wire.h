/* wire.h — bytes received on the wire by one TCP socket (wire.c). */
#ifndef OMS_LOAD_WIRE_H
#define OMS_LOAD_WIRE_H

#include <stdint.h>

/* TCP payload bytes received so far on socket fd into *bytes: 0, or -1
 * (not a TCP socket, or a kernel without tcpi_bytes_received) */
int load_wire_rx_bytes(int fd, uint64_t *bytes);

#endif
