/* httpd.c — see httpd.h. */
#include "httpd/httpd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    enum lws_token_indexes token;
    const char *name;
} methods[] = {
    {WSI_TOKEN_GET_URI, "GET"},         {WSI_TOKEN_POST_URI, "POST"},
    {WSI_TOKEN_OPTIONS_URI, "OPTIONS"}, {WSI_TOKEN_PUT_URI, "PUT"},
    {WSI_TOKEN_PATCH_URI, "PATCH"},     {WSI_TOKEN_DELETE_URI, "DELETE"},
    {WSI_TOKEN_HEAD_URI, "HEAD"},
};

bool oms_httpd_header(struct lws *wsi, enum lws_token_indexes h, char *buf, int len)
{
    buf[0] = '\0';
    int n = lws_hdr_total_length(wsi, h);
    if (n >= len)
        return false;
    if (n > 0)
        lws_hdr_copy(wsi, buf, len, h);
    return true;
}

int oms_httpd_query_arg(struct lws *wsi, const char *name, char *out, size_t outlen)
{
    size_t nl = strlen(name);
    char frag[1024];
    out[0] = '\0';
    for (int i = 0; i < 64; i++) {
        int fl = lws_hdr_fragment_length(wsi, WSI_TOKEN_HTTP_URI_ARGS, i);
        if (fl <= 0)
            break;
        if ((size_t)fl <= nl)
            continue;
        /* a fragment too long for frag: lws copies nothing, skip it (it is
         * not ours to judge) */
        if (lws_hdr_copy_fragment(wsi, frag, (int)sizeof frag, WSI_TOKEN_HTTP_URI_ARGS, i) < 0)
            continue;
        if (strncmp(frag, name, nl) != 0 || frag[nl] != '=')
            continue;
        size_t vl = strlen(frag + nl + 1);
        if (vl >= outlen)
            return -1;
        memcpy(out, frag + nl + 1, vl + 1);
        return 1;
    }
    return 0;
}

int oms_httpd_begin(oms_httpd_txn *t, struct lws *wsi, size_t body_limit)
{
    oms_httpd_request_line(t, wsi);
    return oms_httpd_body_plan(t, wsi, body_limit);
}

void oms_httpd_request_line(oms_httpd_txn *t, struct lws *wsi)
{
    t->method[0] = '\0';
    t->path[0] = '\0';
    t->path_too_long = false;
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
        if (lws_hdr_total_length(wsi, methods[i].token) > 0) {
            snprintf(t->method, sizeof t->method, "%s", methods[i].name);
            t->path_too_long = !oms_httpd_header(wsi, methods[i].token, t->path, sizeof t->path);
            break;
        }
    }
}

int oms_httpd_body_plan(oms_httpd_txn *t, struct lws *wsi, size_t body_limit)
{
    t->body_limit = body_limit;
    if (strcmp(t->method, "POST") != 0 && strcmp(t->method, "PUT") != 0 &&
        strcmp(t->method, "PATCH") != 0)
        return OMS_HTTPD_RUN;
    char cl[32], te[64];
    if (!oms_httpd_header(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH, cl, sizeof cl))
        snprintf(cl, sizeof cl, "18446744073709551615");
    oms_httpd_header(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING, te, sizeof te);
    if (!cl[0] && te[0]) {
        t->no_length = true;
        return OMS_HTTPD_RUN;
    }
    unsigned long long n = cl[0] ? strtoull(cl, NULL, 10) : 0;
    if (n > body_limit) {
        t->body_too_large = true;
        /* answering while the client still sends would make the kernel
         * reset the connection under the answer: read and drop the body
         * first, unless it is absurdly large */
        return n / 16 > body_limit ? OMS_HTTPD_RUN : OMS_HTTPD_WAIT;
    }
    return n > 0 ? OMS_HTTPD_WAIT : OMS_HTTPD_RUN;
}

int oms_httpd_body(oms_httpd_txn *t, const void *in, size_t len)
{
    if (len == 0 || !in || t->body_too_large)
        return 0;
    if (t->body_len + len > t->body_limit) {
        t->body_too_large = true;
        return 0;
    }
    char *nb = realloc(t->body, t->body_len + len + 1);
    if (!nb)
        return -1;
    t->body = nb;
    memcpy(t->body + t->body_len, in, len);
    t->body_len += len;
    t->body[t->body_len] = '\0';
    return 0;
}

bool oms_httpd_take(oms_httpd_txn *t)
{
    if (t->handled)
        return false;
    t->handled = true;
    return true;
}

void oms_httpd_answer(oms_httpd_txn *t, struct lws *wsi, int status, const char *content_type,
                      char *body, size_t len)
{
    free(t->resp_body);
    t->status = status;
    t->content_type = content_type;
    t->resp_body = body;
    t->resp_len = body ? len : 0;
    t->handled = true;
    t->ready = true;
    lws_callback_on_writable(wsi);
}

static int add(struct lws *wsi, const char *name, const char *value, unsigned char **p,
               unsigned char *end)
{
    return lws_add_http_header_by_name(wsi, (const unsigned char *)name,
                                       (const unsigned char *)value, (int)strlen(value), p, end);
}

static int write_headers(oms_httpd_txn *t, struct lws *wsi)
{
    unsigned char buf[LWS_PRE + 2048];
    unsigned char *start = buf + LWS_PRE, *p = start, *end = buf + sizeof buf - 1;
    const char *ctype = t->content_type ? t->content_type : "application/json";
    if (lws_add_http_common_headers(wsi, (unsigned)t->status, ctype, (lws_filepos_t)t->resp_len,
                                    &p, end))
        return -1;
    if (t->cors[0] && (add(wsi, "access-control-allow-origin:", t->cors, &p, end) ||
                       add(wsi, "vary:", "Origin", &p, end)))
        return -1;
    if (strcmp(t->method, "OPTIONS") == 0 && t->cors[0] &&
        (add(wsi, "access-control-allow-methods:", "GET, POST, OPTIONS", &p, end) ||
         add(wsi, "access-control-allow-headers:", "Authorization, Content-Type", &p, end) ||
         add(wsi, "access-control-max-age:", "600", &p, end)))
        return -1;
    if (t->allow[0] && add(wsi, "allow:", t->allow, &p, end))
        return -1;
    if (t->status == 401 && add(wsi, "www-authenticate:", "Bearer", &p, end))
        return -1;
    /* a body refused unread: the connection cannot carry another request */
    if ((t->body_too_large || t->no_length) && add(wsi, "connection:", "close", &p, end))
        return -1;
    if (add(wsi, "cache-control:", t->cache_control ? t->cache_control : "no-store", &p, end) ||
        add(wsi, "x-content-type-options:", "nosniff", &p, end) ||
        lws_finalize_write_http_header(wsi, start, &p, end))
        return -1;
    return 0;
}

int oms_httpd_write(oms_httpd_txn *t, struct lws *wsi)
{
    if (!t->ready)
        return 0;
    if (!t->headers_sent) {
        if (write_headers(t, wsi))
            return -1;
        t->headers_sent = true;
        if (t->resp_len > 0 && strcmp(t->method, "HEAD") != 0) {
            lws_callback_on_writable(wsi); /* the body on the next turn */
            return 0;
        }
    } else if (t->resp_len > 0) {
        /* one final write: lws buffers what the socket does not take */
        unsigned char *b = malloc(LWS_PRE + t->resp_len);
        if (!b)
            return -1;
        memcpy(b + LWS_PRE, t->resp_body, t->resp_len);
        int n = lws_write(wsi, b + LWS_PRE, t->resp_len, LWS_WRITE_HTTP_FINAL);
        free(b);
        if (n < 0)
            return -1;
    }
    if (t->body_too_large || t->no_length)
        return -1; /* the rest of the body is still on the wire */
    /* transaction done: ready for the next one on this connection */
    oms_httpd_txn_clear(t);
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

void oms_httpd_txn_clear(oms_httpd_txn *t)
{
    free(t->body);
    free(t->resp_body);
    memset(t, 0, sizeof *t);
}
