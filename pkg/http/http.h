/* http.h — a small JSON-over-HTTP client on libcurl, for omsctl talking to
 * omsd's REST API. */
#ifndef OMS_HTTP_H
#define OMS_HTTP_H

#include <jansson.h>
#include <stddef.h>

#include "common/oms.h"

typedef struct oms_http_resp {
    long status;   /* HTTP status, 0 when no answer */
    char *body;    /* malloc'd, NUL-terminated */
    size_t len;
    json_t *json;  /* parsed body when it is JSON, else NULL */
} oms_http_resp;

/* method "GET"/"POST"; url absolute; bearer may be NULL; body may be NULL.
 * Returns 0 (an HTTP answer arrived, whatever its status) or OMS_EIO with
 * errbuf saying why nothing came back ("connection refused", "timed out").
 * timeout_ms bounds the whole exchange. */
int oms_http_request(const char *method, const char *url, const char *bearer, const char *body,
                     long timeout_ms, oms_http_resp *out, char *errbuf, size_t errlen);

void oms_http_resp_free(oms_http_resp *r);

/* The {"error": {code, message}} of an error answer, or NULL. Borrowed. */
const char *oms_http_error_message(const oms_http_resp *r);

#endif
