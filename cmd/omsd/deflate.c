/* deflate.c — permessage-deflate, compressed once (deflate.h). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "deflate.h"
#include "ws/pmd.h"

const struct lws_extension *omsd_pmd_extensions(const omsd *d)
{
    return d->cfg.server.compression ? oms_pmd_server_exts : NULL;
}

int omsd_pmd_headers(const omsd *d, struct lws *wsi, void *in)
{
    if (!d->cfg.server.compression)
        return 0;
    return oms_pmd_server_headers(wsi, in, (size_t)d->cfg.server.max_frame_bytes);
}

size_t omsd_ws_header(unsigned char *out, size_t len, bool rsv1)
{
    out[0] = (unsigned char)(0x81 | (rsv1 ? 0x40 : 0)); /* FIN, text */
    if (len < 126) {
        out[1] = (unsigned char)len;
        return 2;
    }
    if (len < 65536) {
        out[1] = 126;
        out[2] = (unsigned char)(len >> 8);
        out[3] = (unsigned char)len;
        return 4;
    }
    out[1] = 127;
    for (int i = 0; i < 8; i++)
        out[2 + i] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
    return 10;
}

/* one deflate stream per thread that compresses (the fan-out, and each
 * service thread for its Socket.IO frames), reset for every message */
static pthread_key_t z_key;
static pthread_once_t z_once = PTHREAD_ONCE_INIT;

static void z_free(void *p)
{
    z_stream *z = p;
    deflateEnd(z);
    free(z);
}

static void z_key_make(void)
{
    pthread_key_create(&z_key, z_free);
}

static z_stream *thread_stream(void)
{
    pthread_once(&z_once, z_key_make);
    z_stream *z = pthread_getspecific(z_key);
    if (z)
        return z;
    z = calloc(1, sizeof *z);
    /* raw deflate (negative bits), the largest window: a message's
     * distances never exceed its own length (see omsd_pmd_negotiated) */
    if (!z || deflateInit2(z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
        free(z);
        return NULL;
    }
    if (pthread_setspecific(z_key, z) != 0) {
        z_free(z);
        return NULL;
    }
    return z;
}

void omsd_frame_compress(omsd *d, omsd_frame *f)
{
    /* (a connection that negotiates it after this gets this one as it is) */
    if (!d->cfg.server.compression || f->z || f->len < (size_t)d->cfg.server.compression_min_bytes ||
        f->len == 0 || atomic_load_explicit(&d->pmd_conns, memory_order_relaxed) == 0)
        return;
    z_stream *z = thread_stream();
    if (!z || deflateReset(z) != Z_OK)
        return;
    /* header room, then at most the bound (plus the sync flush's bytes) */
    size_t cap = 10 + deflateBound(z, (uLong)f->len) + 16;
    unsigned char *out = malloc(cap);
    if (!out)
        return;
    z->next_in = f->buf + LWS_PRE;
    z->avail_in = (uInt)f->len;
    z->next_out = out + 10;
    z->avail_out = (uInt)(cap - 10);
    int rc = deflate(z, Z_SYNC_FLUSH);
    size_t n = cap - 10 - z->avail_out;
    /* all input taken, and the flush marker at the end (RFC 7692 7.2.1) */
    if (rc != Z_OK || z->avail_in != 0 || n < 4 || memcmp(out + 10 + n - 4, "\0\0\xff\xff", 4) != 0) {
        free(out);
        return;
    }
    n -= 4;
    unsigned char hdr[10];
    size_t hl = omsd_ws_header(hdr, n, true);
    if (hl + n >= omsd_ws_header_len(f->len) + f->len) {
        free(out); /* no gain */
        return;
    }
    memcpy(out + 10 - hl, hdr, hl);
    /* the frame starts hl bytes before the payload: keep the block, note
     * where */
    f->z = out;
    f->zoff = 10 - hl;
    f->zlen = hl + n;
    atomic_fetch_add_explicit(&d->m.deflated, 1, memory_order_relaxed);
}

bool omsd_pmd_negotiated(struct lws *wsi, size_t *max_len)
{
    if (!oms_pmd_active(wsi))
        return false;
    *max_len = oms_pmd_server_max_len(wsi);
    return true;
}

int omsd_frame_write_alone(struct lws *wsi, omsd_frame *f, bool compressed, size_t *want)
{
    if (compressed) {
        *want = f->zlen;
        return lws_write(wsi, f->z + f->zoff, f->zlen, LWS_WRITE_RAW);
    }
    /* the header in a write of its own: the frame's headroom is shared
     * with every thread sending it */
    unsigned char hdr[10];
    size_t hl = omsd_ws_header(hdr, f->len, false);
    *want = hl + f->len;
    if (lws_write(wsi, hdr, hl, LWS_WRITE_RAW) < (int)hl)
        return -1;
    int n = lws_write(wsi, f->buf + LWS_PRE, f->len, LWS_WRITE_RAW);
    return n < (int)f->len ? -1 : (int)(hl + f->len);
}
