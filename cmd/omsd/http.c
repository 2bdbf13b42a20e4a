/* http.c — one HTTP exchange on a connection (pkg/httpd does the
 * parsing and the writing): the answer, an answer held (a polling GET),
 * one that waits for Kafka (a REST trigger, XQ_DELIVERY) or for another
 * service thread (a Socket.IO request served where its session lives). */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "conn_types.h"

int omsd_http_begin(omsd_conn *c)
{
    if (!c->h && !(c->h = calloc(1, sizeof *c->h)))
        return -1;
    return 0;
}

void omsd_http_free(omsd_conn *c)
{
    if (!c->h)
        return;
    oms_httpd_txn_clear(&c->h->t);
    free(c->h->deferred.body);
    free(c->h);
    c->h = NULL;
}

void omsd_http_header(struct lws *wsi, enum lws_token_indexes t, char *buf, int len)
{
    oms_httpd_header(wsi, t, buf, len);
}

void omsd_http_token_arg(struct lws *wsi, char *out, size_t outlen)
{
    out[0] = '\0';
    /* lws copies the whole "token=..." fragment and points past the name */
    const char *v = lws_get_urlarg_by_name(wsi, "token=", out, (int)outlen);
    if (!v)
        out[0] = '\0';
    else if (v != out)
        memmove(out, v, strlen(v) + 1);
}

#define query_arg oms_httpd_query_arg


void omsd_http_reply(omsd_conn *c, int status, const char *content_type, char *body, size_t len)
{
    lws_set_timeout(c->wsi, NO_PENDING_TIMEOUT, 0);
    oms_httpd_answer(&c->h->t, c->wsi, status, content_type, body, len);
}

/* A REST handler's answer goes out. */
void omsd_http_reply_rest(omsd_conn *c, omsd_http_resp *r)
{
    snprintf(c->h->t.allow, sizeof c->h->t.allow, "%s", r->allow);
    c->h->t.cache_control = r->cache_control;
    omsd_http_reply(c, r->status, r->content_type, r->body, r->len);
    r->body = NULL;
}

void omsd_http_hold(omsd_conn *c, int secs)
{
    lws_set_timeout(c->wsi, PENDING_TIMEOUT_HTTP_CONTENT, secs);
}

void omsd_http_unlink(omsd_conn *c)
{
    for (omsd_conn **pp = &c->w->pending_http; *pp; pp = &(*pp)->pending_next) {
        if (*pp == c) {
            *pp = c->pending_next;
            return;
        }
    }
}

uint64_t omsd_http_defer(omsd_conn *c, int secs, const char *sid)
{
    c->h->request_id = omsd_http_request_id(c);
    c->h->sio_forward = true;
    snprintf(c->h->sio_sid, sizeof c->h->sio_sid, "%s", sid);
    c->pending_next = c->w->pending_http;
    c->w->pending_http = c;
    lws_set_timeout(c->wsi, PENDING_TIMEOUT_HTTP_CONTENT, secs);
    return c->h->request_id;
}

void omsd_http_answer_deferred(omsd_worker *w, uint64_t id, int status, const char *ctype,
                               char *body, size_t len)
{
    for (omsd_conn *c = w->pending_http; c; c = c->pending_next) {
        if (c->h->request_id != id || !c->h->sio_forward)
            continue;
        omsd_http_unlink(c);
        c->h->sio_forward = false;
        omsd_http_reply(c, status, ctype, body, len);
        return;
    }
    free(body); /* the client went away meanwhile */
}

static void answer_pending(omsd_worker *w, uint64_t request_id, int err, const char *errstr)
{
    omsd *d = w->d;
    for (omsd_conn *c = w->pending_http; c; c = c->pending_next) {
        if (c->h->request_id != request_id)
            continue;
        omsd_http_unlink(c);
        omsd_http_resp *r = &c->h->deferred;
        if (err) {
            free(r->body);
            char msg[256];
            snprintf(msg, sizeof msg, "kafka did not acknowledge the event: %s", errstr);
            omsd_rest_error(r, 503, "unavailable", msg);
        } else {
            d->m.triggers_produced++;
            r->status = 202;
        }
        r->deferred = false;
        omsd_http_reply_rest(c, r);
        return;
    }
}

void omsd_http_delivery(omsd_worker *w, omsd_xq_item *it, bool live)
{
    if (live)
        answer_pending(w, it->request_id, it->err, it->errstr);
}

uint64_t omsd_http_request_id(omsd_conn *c)
{
    return (++c->w->next_request << 8) | (uint64_t)c->w->idx;
}

void omsd_http_wait_delivery(omsd_conn *c, const omsd_http_resp *r)
{
    c->h->deferred = *r;
    c->pending_next = c->w->pending_http;
    c->w->pending_http = c;
    lws_set_timeout(c->wsi, PENDING_TIMEOUT_HTTP_CONTENT, 20);
}
