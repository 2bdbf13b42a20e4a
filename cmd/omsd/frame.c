/* frame.c — a serialized frame, shared by reference by every connection
 * and every service thread it goes to. */
#include <stdlib.h>
#include <string.h>

#include "omsd.h"

omsd_frame *omsd_frame_alloc(size_t len)
{
    /* one byte more: room for a NUL some dialects write after the bytes */
    omsd_frame *f = malloc(sizeof *f + LWS_PRE + len + 1);
    if (!f)
        return NULL;
    f->refs = 1;
    f->topic = -1;
    f->ts_ms = 0;
    f->part = -1;
    f->off = -1;
    f->token = NULL;
    f->tvec = NULL;
    f->len = len;
    f->view = NULL;
    f->z = NULL;
    return f;
}

omsd_frame *omsd_frame_new(const char *data, size_t len)
{
    omsd_frame *f = omsd_frame_alloc(len);
    if (f)
        memcpy(f->buf + LWS_PRE, data, len);
    return f;
}

omsd_frame *omsd_frame_replay(omsd_frame *f)
{
    if (!f->ts_ms)
        return f;
    omsd_frame *g = omsd_frame_new((const char *)f->buf + LWS_PRE, f->len);
    if (g) {
        g->topic = f->topic;
        g->part = f->part;
        g->off = f->off;
    }
    omsd_frame_unref(f);
    return g;
}

void omsd_frame_unref(omsd_frame *f)
{
    if (f && atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) == 1) {
        oms_filter_view_free(f->view);
        free(f->z);
        free(atomic_load(&f->token));
        free(f->tvec);
        free(f);
    }
}
