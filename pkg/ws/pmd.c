/* pmd.c — permessage-deflate as an lws extension of our own (pmd.h). */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "ws/pmd.h"

/* lws 4.1's private ABI for LWS_EXT_CB_PAYLOAD_RX (private-lib-roles-ws.h,
 * private-lib-core-net.h): `in` points at these two buffers, the answer is
 * one of these codes. Another lws may have changed them. */
#if LWS_LIBRARY_VERSION_MAJOR != 4 || LWS_LIBRARY_VERSION_MINOR != 1
#error "pkg/ws/pmd.c repeats part of lws 4.1's extension ABI: check it against this lws"
#endif
struct pmd_bufs {
    struct lws_tokens eb_in;
    struct lws_tokens eb_out;
};
enum {
    PMDR_UNKNOWN,
    PMDR_DID_NOTHING,
    PMDR_HAS_PENDING,
    PMDR_EMPTY_NONFINAL,
    PMDR_EMPTY_FINAL,
    PMDR_NOTHING_WE_SHOULD_DO,
    PMDR_FAILED = -1
};

enum { OPT_SERVER_NCT, OPT_CLIENT_NCT, OPT_SERVER_BITS, OPT_CLIENT_BITS, OPT_MAX_MESSAGE, OPT_PROBE };

/* lws matches a server's offered arguments against this table (only the
 * argument-less ones) and a client's answer against all of it; the last
 * two are ours, taken only from lws_set_extension_option. */
static const struct lws_ext_options pmd_options[] = {
    {"server_no_context_takeover", EXTARG_NONE},
    {"client_no_context_takeover", EXTARG_NONE},
    {"server_max_window_bits", EXTARG_OPT_DEC},
    {"client_max_window_bits", EXTARG_OPT_DEC},
    {"oms_max_message", EXTARG_DEC},
    {"oms_probe", EXTARG_NONE},
    {NULL, EXTARG_NONE},
};

typedef struct pmd_conn {
    z_stream z;
    bool zinit;
    bool server;      /* our side of the connection */
    bool peer_nct;    /* the peer compresses each message on its own */
    bool in_msg;      /* inside a compressed message */
    bool over;        /* ...which passed max: the rest is skipped */
    bool ended;       /* ...whose deflate stream ended (BFINAL) */
    bool broken;      /* the inflater lost track: no more compressed input */
    size_t got;       /* inflated bytes of the message so far */
    size_t max;       /* the most a message may inflate to */
} pmd_conn;

/* ---- this thread's buffer for what one piece of input inflates to --------------------------- */

typedef struct out_buf {
    unsigned char *b; /* LWS_PRE, then cap bytes, then one for lws' NUL */
    size_t cap;
} out_buf;

static pthread_key_t out_key;
static pthread_once_t out_once = PTHREAD_ONCE_INIT;

static void out_free(void *p)
{
    out_buf *o = p;
    free(o->b);
    free(o);
}

static void out_key_make(void)
{
    (void)pthread_key_create(&out_key, out_free);
}

static out_buf *thread_out(void)
{
    (void)pthread_once(&out_once, out_key_make);
    out_buf *o = pthread_getspecific(out_key);
    if (o)
        return o;
    o = calloc(1, sizeof *o);
    if (o && pthread_setspecific(out_key, o) != 0) {
        free(o);
        o = NULL;
    }
    return o;
}

/* room for at least `want` bytes (a buffer that grew past 256 KiB for one
 * large message is given back at the next message) */
static bool out_reserve(out_buf *o, size_t want)
{
    if (want <= o->cap)
        return true;
    size_t cap = o->cap ? o->cap : 16384;
    while (cap < want)
        cap *= 2;
    unsigned char *nb = realloc(o->b, LWS_PRE + cap + 1);
    if (!nb)
        return false;
    o->b = nb;
    o->cap = cap;
    return true;
}

static void out_trim(out_buf *o)
{
    if (o->cap > 262144) {
        free(o->b);
        o->b = NULL;
        o->cap = 0;
    }
}

/* ---- inflating ------------------------------------------------------------------------------ */

/* Inflate len bytes of in (flush: Z_NO_FLUSH, or Z_SYNC_FLUSH for the
 * trailer) onto o->b after its first *n bytes, never past room bytes.
 * 0: all input taken and all its output out; 1: room reached; -1: not a
 * deflate stream (or out of memory). */
static int inflate_into(pmd_conn *p, out_buf *o, const unsigned char *in, size_t len, int flush,
                        size_t *n, size_t room)
{
    p->z.next_in = (Bytef *)in;
    p->z.avail_in = (uInt)len;
    for (;;) {
        if (p->ended) /* bytes after the stream's end: only a trailer may follow */
            return 0;
        if (*n >= room)
            return 1;
        size_t want = *n + 16384 < room ? *n + 16384 : room;
        if (!out_reserve(o, want))
            return -1;
        size_t cap = o->cap < room ? o->cap : room;
        p->z.next_out = o->b + LWS_PRE + *n;
        p->z.avail_out = (uInt)(cap - *n);
        int rc = inflate(&p->z, flush);
        *n = cap - p->z.avail_out;
        if (rc == Z_STREAM_END) {
            p->ended = true;
            return 0;
        }
        if (rc == Z_BUF_ERROR) { /* no progress: input wanted, or room */
            if (p->z.avail_out)
                return 0;
            continue;
        }
        if (rc != Z_OK)
            return -1;
        if (p->z.avail_out) /* inflate stops only when one side is spent */
            return 0;
    }
}

static void msg_end(pmd_conn *p)
{
    p->in_msg = false;
    if (!p->zinit)
        return;
    if (p->over && !p->peer_nct)
        p->broken = true; /* its window misses what we skipped */
    if (p->peer_nct || p->ended || p->broken) {
        (void)inflateEnd(&p->z); /* the window goes with it */
        p->zinit = false;
    }
}

static int payload_rx(pmd_conn *p, struct lws *wsi, struct pmd_bufs *eb)
{
    if (!p->in_msg) {
        /* a new message, or a control frame (whose RSV1 is an error).
         * Not compressed: its bytes pass as they are. Said as "unknown",
         * which both of lws 4.1's parsers count as all taken; its client
         * parser does not for "nothing we should do" and hands the same
         * bytes to the protocol forever (fixed upstream in 9202017c2) */
        if (!(lws_get_reserved_bits(wsi) & 0x40))
            return PMDR_UNKNOWN;
        if (p->broken)
            return PMDR_FAILED;
        if (!p->zinit) {
            memset(&p->z, 0, sizeof p->z);
            if (inflateInit2(&p->z, -15) != Z_OK)
                return PMDR_FAILED;
            p->zinit = true;
        }
        p->in_msg = true;
        p->over = p->ended = false;
        p->got = 0;
    }
    out_buf *o = thread_out();
    if (!o)
        return PMDR_FAILED;
    if (!p->got)
        out_trim(o);
    bool last = lws_is_final_fragment(wsi);
    size_t n = 0;
    if (!p->over) {
        /* up to max + 1 for the message: one byte more than allowed shows
         * the receiver it is too big */
        size_t room = p->max + 1 - p->got;
        int rc = inflate_into(p, o, (const unsigned char *)eb->eb_in.token,
                              (size_t)(eb->eb_in.len > 0 ? eb->eb_in.len : 0), Z_NO_FLUSH, &n, room);
        if (rc == 0 && last && !p->ended) {
            static const unsigned char trailer[4] = {0, 0, 0xff, 0xff};
            rc = inflate_into(p, o, trailer, sizeof trailer, Z_SYNC_FLUSH, &n, room);
        }
        if (rc < 0) {
            p->broken = true;
            msg_end(p);
            return PMDR_FAILED;
        }
        if (rc == 1)
            p->over = true;
        p->got += n;
    }
    eb->eb_in.token += eb->eb_in.len > 0 ? eb->eb_in.len : 0;
    eb->eb_in.len = 0;
    if (!out_reserve(o, 1))
        return PMDR_FAILED;
    eb->eb_out.token = o->b + LWS_PRE;
    eb->eb_out.len = (int)n;
    if (last) {
        msg_end(p);
        return PMDR_EMPTY_FINAL;
    }
    return PMDR_EMPTY_NONFINAL;
}

static int option(pmd_conn *p, int idx, const char *val, bool named)
{
    switch (idx) {
    case OPT_SERVER_NCT:
        if (!p->server)
            p->peer_nct = true; /* the server compresses each message alone */
        return 0;
    case OPT_CLIENT_NCT:
        if (p->server)
            p->peer_nct = true;
        return 0;
    case OPT_SERVER_BITS:
    case OPT_CLIENT_BITS:
        /* we inflate with the largest window, which takes any smaller; we
         * never compress through lws */
        return named ? -1 : 0;
    case OPT_MAX_MESSAGE: {
        if (!named || !val)
            return named ? -1 : 0; /* never from the peer */
        errno = 0;
        char *end;
        unsigned long long v = strtoull(val, &end, 10);
        if (errno || end == val || *end || v == 0 || v >= SIZE_MAX)
            return -1;
        p->max = (size_t)v;
        return 0;
    }
    case OPT_PROBE: /* 1: lws answers 0 itself for a connection with no
                     * WebSocket at all */
        return named ? 1 : -1;
    default:
        return -1;
    }
}

static int pmd_callback(struct lws_context *ctx, const struct lws_extension *ext, struct lws *wsi,
                        enum lws_extension_callback_reasons reason, void *user, void *in, size_t len)
{
    (void)ctx;
    (void)ext;
    (void)len;
    pmd_conn *p = user;
    switch (reason) {
    case LWS_EXT_CB_CONSTRUCT:
    case LWS_EXT_CB_CLIENT_CONSTRUCT:
        p = calloc(1, sizeof *p);
        if (!p)
            return -1;
        p->server = reason == LWS_EXT_CB_CONSTRUCT;
        p->max = OMS_PMD_MAX_MESSAGE;
        *(void **)user = p;
        if (in)
            *(const struct lws_ext_options **)in = pmd_options;
        return 0;
    case LWS_EXT_CB_DESTROY:
        if (p) {
            if (p->zinit)
                (void)inflateEnd(&p->z);
            free(p);
        }
        return 0;
    case LWS_EXT_CB_OPTION_DEFAULT:
    case LWS_EXT_CB_OPTION_CONFIRM:
    case LWS_EXT_CB_PACKET_TX_PRESEND:
    case LWS_EXT_CB_PAYLOAD_TX: /* written as given: nothing deflated here */
        return 0;
    case LWS_EXT_CB_OPTION_SET: {
        const struct lws_ext_option_arg *oa = in;
        if (!p || !oa || oa->option_index < 0 || oa->option_index > OPT_PROBE)
            return -1;
        return option(p, oa->option_index, NULL, false);
    }
    case LWS_EXT_CB_NAMED_OPTION_SET: {
        const struct lws_ext_option_arg *oa = in;
        if (!p || !oa || !oa->option_name)
            return -1;
        for (int i = 0; pmd_options[i].name; i++)
            if (!strcmp(pmd_options[i].name, oa->option_name))
                return option(p, i, oa->start, true);
        return -1;
    }
    case LWS_EXT_CB_PAYLOAD_RX:
        return p && in ? payload_rx(p, wsi, in) : PMDR_FAILED;
    default:
        return 0;
    }
}

const struct lws_extension oms_pmd_server_exts[] = {
    {"permessage-deflate", pmd_callback, "permessage-deflate"},
    {NULL, NULL, NULL},
};

const struct lws_extension oms_pmd_client_exts[] = {
    {"permessage-deflate", pmd_callback, "permessage-deflate; client_max_window_bits"},
    {NULL, NULL, NULL},
};

bool oms_pmd_active(struct lws *wsi)
{
    return lws_set_extension_option(wsi, "permessage-deflate", "oms_probe", NULL) == 1;
}

int oms_pmd_set_max_message(struct lws *wsi, size_t max_message)
{
    char v[32];
    snprintf(v, sizeof v, "%zu", max_message ? max_message : OMS_PMD_MAX_MESSAGE);
    return lws_set_extension_option(wsi, "permessage-deflate", "oms_max_message", v);
}

/* The first offer's server_max_window_bits=N (8..15), or 0. */
static int offered_server_bits(struct lws *wsi)
{
    char offer[512];
    if (lws_hdr_copy(wsi, offer, sizeof offer, WSI_TOKEN_EXTENSIONS) <= 0)
        return 0;
    char *first = strstr(offer, "permessage-deflate");
    if (!first)
        return 0;
    char *comma = strchr(first, ',');
    if (comma)
        *comma = '\0';
    const char *q = strstr(first, "server_max_window_bits");
    if (!q)
        return 0;
    q += strlen("server_max_window_bits");
    while (*q == ' ')
        q++;
    if (*q != '=')
        return 0;
    q++;
    while (*q == ' ' || *q == '"')
        q++;
    int bits = 0;
    while (*q >= '0' && *q <= '9' && bits < 100)
        bits = bits * 10 + (*q++ - '0');
    return bits >= 8 && bits <= 15 ? bits : 0;
}

size_t oms_pmd_server_max_len(struct lws *wsi)
{
    int bits = offered_server_bits(wsi);
    return bits && bits < 15 ? (size_t)1 << bits : SIZE_MAX;
}

int oms_pmd_server_headers(struct lws *wsi, void *in, size_t max_message)
{
    struct lws_process_html_args *a = in;
    static const char line[] = "\r\nSec-WebSocket-Extensions: permessage-deflate";
    if (!a || !a->p || lws_hdr_total_length(wsi, WSI_TOKEN_UPGRADE) <= 0 ||
        lws_hdr_total_length(wsi, WSI_TOKEN_EXTENSIONS) <= 0 || !oms_pmd_active(wsi))
        return 0;
    if (max_message)
        (void)oms_pmd_set_max_message(wsi, max_message);
    /* lws 4.1 ends its answer with our extension's line, then "\r\n", then
     * hands the rest to us: reopen that line (it starts with the "\r\n"
     * lws wrote before it, within the 192 bytes lws allows it) */
    char *end = a->p - 2;
    if (memcmp(end, "\r\n", 2) != 0)
        return 0;
    char *s = NULL;
    for (char *q = end - 2; q > end - 256; q--)
        if (q[0] == '\r' && q[1] == '\n') {
            s = q;
            break;
        }
    if (!s || (size_t)(end - s) >= 256 || strncmp(s, line, sizeof line - 1) != 0)
        return 0;
    char have[256];
    memcpy(have, s, (size_t)(end - s));
    have[end - s] = '\0';
    char add[160];
    int bits = offered_server_bits(wsi);
    int k = snprintf(add, sizeof add, "%s%s",
                     strstr(have, "server_no_context_takeover") ? "" : "; server_no_context_takeover",
                     strstr(have, "client_no_context_takeover") ? "" : "; client_no_context_takeover");
    if (bits)
        k += snprintf(add + k, sizeof add - (size_t)k, "; server_max_window_bits=%d", bits);
    if (a->max_len < k)
        return -1;
    /* the client compresses each message alone from now on */
    (void)lws_set_extension_option(wsi, "permessage-deflate", "client_no_context_takeover", NULL);
    memcpy(end, add, (size_t)k);
    memcpy(end + k, "\r\n", 2);
    a->p = end + k + 2;
    a->max_len -= k;
    return 0;
}
