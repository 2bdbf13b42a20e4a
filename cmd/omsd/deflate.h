/* deflate.h — permessage-deflate (RFC 7692), compressed once per event.
 *
 * The extension (pkg/ws/pmd.h, ours: lws' own can be made to abort)
 * negotiates ("server_no_context_takeover; client_no_context_takeover")
 * and inflates what clients send; it deflates nothing. On a connection
 * that negotiated it, omsd writes every data frame itself, header
 * included, as raw bytes: an event's frame is deflated once (a fresh raw
 * deflate stream per message, flushed with Z_SYNC_FLUSH, the trailing
 * 00 00 ff ff cut, RSV1 set), and the same bytes go to every such
 * connection. No context is kept between messages, as the answer says. Frames under server.compression_min_bytes, and those a client's
 * server_max_window_bits could not hold, go uncompressed (RSV1 clear). Part
 * of the core (conn.h): calls nothing above it. */
#ifndef OMSD_DEFLATE_H
#define OMSD_DEFLATE_H

#include "omsd.h"

/* lws' extension table for the context (NULL when server.compression is
 * off: nothing is negotiated). */
const struct lws_extension *omsd_pmd_extensions(const omsd *d);

/* Compress f once (any thread, before f is shared): sets f->z/f->zlen to
 * the whole compressed WebSocket frame when f is big enough, the result
 * smaller and some connection negotiated the extension (d->pmd_conns).
 * Nothing on failure (f then goes uncompressed). */
void omsd_frame_compress(omsd *d, omsd_frame *f);

/* LWS_CALLBACK_ADD_HEADERS: completes the extension's answer on an
 * upgrade that negotiated it (oms_pmd_server_headers). */
int omsd_pmd_headers(const omsd *d, struct lws *wsi, void *in);

/* At the WebSocket's start: whether it negotiated permessage-deflate, and
 * the largest message its server_max_window_bits lets us compress. */
bool omsd_pmd_negotiated(struct lws *wsi, size_t *max_len);

/* Write f alone as one text frame, compressed (f->z) or not, raw: lws
 * adds nothing. Returns what lws_write returns and *want, the byte count
 * that means all of it (header included). */
int omsd_frame_write_alone(struct lws *wsi, omsd_frame *f, bool compressed, size_t *want);

/* The WebSocket header of an unmasked final text frame of len bytes
 * (rsv1: compressed) into out (10 bytes at most); returns its length. */
size_t omsd_ws_header(unsigned char *out, size_t len, bool rsv1);

/* That header's length. */
static inline size_t omsd_ws_header_len(size_t len)
{
    return len < 126 ? 2 : len < 65536 ? 4 : 10;
}

#endif
