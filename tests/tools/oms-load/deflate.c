/* deflate.c — the permessage-deflate (RFC 7692) offer of --compress: the
 * project's own extension (pkg/ws/pmd.h), wrapped for one defect of the
 * lws it runs on.
 *
 * lws 4.1.6's client parser (lib/roles/ws/client-parser-ws.c) loops over a
 * frame until the extension has taken all its bytes; for an uncompressed
 * data frame on a connection that negotiated the extension (RSV1 clear:
 * omsd's `connected`, any frame under its compression_min_bytes) the
 * extension answers "nothing we should do", and the parser then neither
 * counts the frame's bytes as used nor stops: it hands the same message to
 * the protocol callback forever, at 100 % CPU, its timers starved (fixed
 * upstream in 9202017c2, "pmd: fix ws parser for non pmd packet with pmd
 * ext enabled"; lws' own client extension spins the same way). Here such a
 * frame is its own output, all its input taken, which that parser then
 * delivers once. The server side (omsd) parses in a function without the
 * defect. */
#include "load.h"
#include "ws/pmd.h"

/* lws 4.1's private ABI for LWS_EXT_CB_PAYLOAD_RX, as pkg/ws/pmd.c repeats
 * it: `in` points at these buffers; 5 is PMDR_NOTHING_WE_SHOULD_DO */
#if LWS_LIBRARY_VERSION_MAJOR != 4 || LWS_LIBRARY_VERSION_MINOR != 1
#error "oms-load's deflate.c repeats part of lws 4.1's extension ABI: check it against this lws"
#endif
struct ext_bufs {
    struct lws_tokens eb_in;
    struct lws_tokens eb_out;
};
#define EXT_NOTHING_WE_SHOULD_DO 5

static int on_ext(struct lws_context *ctx, const struct lws_extension *ext, struct lws *wsi,
                  enum lws_extension_callback_reasons reason, void *user, void *in, size_t len)
{
    int n = oms_pmd_client_exts[0].callback(ctx, ext, wsi, reason, user, in, len);
    if (reason == LWS_EXT_CB_PAYLOAD_RX && n == EXT_NOTHING_WE_SHOULD_DO && in) {
        struct ext_bufs *eb = in;
        eb->eb_out = eb->eb_in;
        eb->eb_in.len = 0;
    }
    return n;
}

static struct lws_extension exts[2];

const struct lws_extension *load_client_extensions(void)
{
    exts[0] = oms_pmd_client_exts[0];
    exts[0].callback = on_ext;
    return exts;
}

bool load_deflate_active(struct lws *wsi)
{
    return oms_pmd_active(wsi);
}
