/* tokens.c — position tokens (DESIGN §3.5, §3.6): the Socket.IO offset
 * appended to each event and the SSE id.
 *
 * One event's position (TOPIC:PARTITION:OFFSET) is not enough to resume a
 * client: it says nothing of the other partitions. So fan-out keeps the
 * last offset it dispatched in every partition of every event topic
 * (fvec), and an event's token encodes that whole vector as of the event,
 * signed (pkg/gateway/postoken.h). Fan-out keeps a copy of the vector with
 * the event; the token is made once from it, by the first service thread
 * that has a Socket.IO or SSE receiver for it (a plain-WebSocket-only
 * deployment never pays for the MAC), and every connection receiving the
 * event gets the same bytes (but for the class digit: the receiver's
 * subscriptions, one of four).
 *
 * Why the vector is right for every receiver: a connection is given the
 * events it wants in the order fan-out dispatched them, so when it has
 * event E it has every earlier one it wanted; resuming from E's vector
 * replays exactly the later ones, in every partition at once. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "gateway/postoken.h"
#include "omsd.h"

int omsd_tokens_init(omsd *d, char *errbuf, size_t errlen)
{
    const unsigned char *secret = (const unsigned char *)d->cfg.resume.token_secret;
    size_t len = secret ? strlen((const char *)secret) : 0;
    unsigned char raw[32];
    if (len == 0 && d->secret && d->secret_len >= 16) {
        secret = d->secret; /* the key is derived from it, never the same */
        len = d->secret_len;
    } else if (len == 0) {
        if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw) {
            oms_errf(errbuf, errlen, "cannot make a position token secret: %s", strerror(errno));
            return OMS_EIO;
        }
        secret = raw;
        len = sizeof raw;
        oms_log(d->log, OMS_LOG_WARN,
                "no resume.token_secret and no HS256 JWT secret: position tokens are signed "
                "with a key of this process, so Socket.IO and SSE clients recover only on this "
                "instance; set resume.token_secret (the same on every instance)");
    }
    d->ptok = oms_postoken_new(secret, len, d->topics, OMS_TOPIC__COUNT, errbuf, errlen);
    if (!d->ptok)
        return OMS_ECONFIG;
    int n = d->nparts_total;
    d->fvec = malloc((n > 0 ? (size_t)n : 1) * sizeof *d->fvec);
    if (!d->fvec) {
        oms_errf(errbuf, errlen, "out of memory");
        return OMS_ENOMEM;
    }
    for (int k = 0; k < OMS_TOPIC__COUNT; k++)
        for (int p = 0; p < d->nparts[k]; p++)
            d->fvec[d->pbase[k] + p] = d->start_offset[k][p] - 1;
    return OMS_OK;
}

void omsd_tokens_free(omsd *d)
{
    oms_postoken_free(d->ptok);
    d->ptok = NULL;
    free(d->fvec);
    d->fvec = NULL;
}

char *omsd_token_make(omsd *d, unsigned cls, const int64_t *vec)
{
    if (!d->ptok)
        return NULL;
    size_t cap = oms_postoken_max_len(d->nparts_total) + 1;
    char *t = malloc(cap);
    if (t && oms_postoken_encode(d->ptok, cls, d->nparts, vec, t, cap) < 0) {
        free(t);
        t = NULL;
    }
    return t;
}

void omsd_token_stamp(omsd *d, omsd_frame *f, int kind, int32_t part, int64_t off)
{
    f->part = part;
    f->off = off;
    if (!d->fvec || part < 0 || part >= d->nparts[kind])
        return;
    int64_t *v = &d->fvec[d->pbase[kind] + part];
    if (off > *v)
        *v = off;
    /* out of memory: the event goes without a token (the client keeps the
     * previous offset, and a recovery sends this event again) */
    size_t n = (size_t)(d->nparts_total > 0 ? d->nparts_total : 1);
    f->tvec = malloc(n * sizeof *f->tvec);
    if (f->tvec)
        memcpy(f->tvec, d->fvec, n * sizeof *f->tvec);
}

const char *omsd_frame_token(omsd *d, omsd_frame *f)
{
    char *t = atomic_load_explicit(&f->token, memory_order_acquire);
    if (t || !f->tvec)
        return t;
    /* threads may race here: one token wins, the others are dropped */
    char *mine = omsd_token_make(d, 0, f->tvec);
    if (!mine)
        return NULL;
    char *none = NULL;
    if (atomic_compare_exchange_strong_explicit(&f->token, &none, mine, memory_order_acq_rel,
                                                memory_order_acquire))
        return mine;
    free(mine);
    return none;
}

char *omsd_token_here(omsd *d, unsigned cls)
{
    int n = d->nparts_total;
    int64_t *v = malloc((n > 0 ? (size_t)n : 1) * sizeof *v);
    if (!v)
        return NULL;
    for (int k = 0; k < OMS_TOPIC__COUNT; k++)
        for (int p = 0; p < d->nparts[k]; p++)
            v[d->pbase[k] + p] = omsd_self->last_offset[k][p];
    char *t = omsd_token_make(d, cls, v);
    free(v);
    return t;
}

int omsd_token_read(omsd *d, const char *tok, unsigned *cls, int64_t *vec)
{
    if (!d->ptok || !tok)
        return OMS_EINVAL;
    return oms_postoken_decode(d->ptok, tok, strlen(tok), cls, d->nparts, vec);
}

json_t *omsd_token_since(omsd *d, const int64_t *vec)
{
    json_t *a = json_array();
    for (int k = 0; a && k < OMS_TOPIC__COUNT; k++)
        for (int p = 0; p < d->nparts[k]; p++) {
            char pos[300];
            snprintf(pos, sizeof pos, "%s:%d:%" PRId64, d->topics[k], p, vec[d->pbase[k] + p]);
            json_array_append_new(a, json_string(pos));
        }
    return a;
}

unsigned omsd_token_subs(unsigned cls, oms_role role)
{
    bool staff = role == OMS_ROLE_STAFF || role == OMS_ROLE_ADMIN;
    unsigned subs = 0;
    if ((cls & OMS_SUB_ORDERS) && role != OMS_ROLE_SERVICE)
        subs |= OMS_SUB_ORDERS;
    if ((cls & OMS_SUB_INVENTORY) && staff)
        subs |= OMS_SUB_INVENTORY;
    return subs;
}
