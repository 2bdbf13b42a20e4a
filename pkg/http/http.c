/* http.c — libcurl easy interface, one request at a time. */
#include "http/http.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *buf;
    size_t len, cap;
    int oom;
} sink;

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
    sink *s = ud;
    size_t n = size * nmemb;
    if (s->len + n + 1 > s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 4096;
        while (cap < s->len + n + 1)
            cap *= 2;
        char *nb = realloc(s->buf, cap);
        if (!nb) {
            s->oom = 1;
            return 0;
        }
        s->buf = nb;
        s->cap = cap;
    }
    memcpy(s->buf + s->len, ptr, n);
    s->len += n;
    s->buf[s->len] = '\0';
    return n;
}

int oms_http_request(const char *method, const char *url, const char *bearer, const char *body,
                     long timeout_ms, oms_http_resp *out, char *errbuf, size_t errlen)
{
    memset(out, 0, sizeof *out);
    CURL *h = curl_easy_init();
    if (!h) {
        oms_errf(errbuf, errlen, "cannot initialise libcurl");
        return OMS_EIO;
    }
    sink s = {0};
    struct curl_slist *hdrs = NULL;
    char *auth = NULL;
    if (bearer && *bearer) {
        size_t n = strlen(bearer) + 32;
        auth = malloc(n);
        if (auth) {
            snprintf(auth, n, "Authorization: Bearer %s", bearer);
            hdrs = curl_slist_append(hdrs, auth);
        }
    }
    hdrs = curl_slist_append(hdrs, "Accept: application/json");
    if (body) {
        hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms < 5000 ? timeout_ms : 5000);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "omsctl");
    if (getenv("OMS_INSECURE_TLS")) {
        /* self-signed test certificates */
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    CURLcode rc = curl_easy_perform(h);
    int ret = OMS_OK;
    if (rc != CURLE_OK) {
        oms_errf(errbuf, errlen, "%s", rc == CURLE_COULDNT_CONNECT ? "connection refused"
                                       : rc == CURLE_OPERATION_TIMEDOUT
                                           ? "timed out"
                                           : curl_easy_strerror(rc));
        free(s.buf);
        ret = OMS_EIO;
    } else {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &out->status);
        out->body = s.buf ? s.buf : strdup("");
        out->len = s.len;
        out->json = s.len ? json_loadb(s.buf, s.len, 0, NULL) : NULL;
    }
    curl_slist_free_all(hdrs);
    free(auth);
    curl_easy_cleanup(h);
    return ret;
}

void oms_http_resp_free(oms_http_resp *r)
{
    free(r->body);
    json_decref(r->json);
    memset(r, 0, sizeof *r);
}

const char *oms_http_error_message(const oms_http_resp *r)
{
    return json_string_value(json_object_get(json_object_get(r->json, "error"), "message"));
}
