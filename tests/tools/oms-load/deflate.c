/* deflate.c — the permessage-deflate (RFC 7692) offer of --compress: the
 * project's own extension (pkg/ws/pmd.h), not lws' own client one, which
 * on Debian's lws 4.1.6 spins at 100 % CPU once a server accepts the offer
 * and sends a frame uncompressed: its client parser hands the same message
 * to the protocol callback forever (fixed upstream in lws 9202017c2;
 * pmd.c answers such a frame in the way that parser takes). */
#include "load.h"
#include "ws/pmd.h"

const struct lws_extension *load_client_extensions(void)
{
    return oms_pmd_client_exts;
}

bool load_deflate_active(struct lws *wsi)
{
    return oms_pmd_active(wsi);
}
