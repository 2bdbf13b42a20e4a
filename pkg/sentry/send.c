/* send.c — the delivery of an envelope to Sentry over libcurl (the adapter
 * of pkg/sentry; the rest is pure). */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sentry.h"

/* ---- delivery ---------------------------------------------------------------------- */

typedef struct body_buf {
    char data[512];
    size_t len;
} body_buf;

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    body_buf *b = ud;
    size_t len = size * n, room = sizeof b->data - 1 - b->len;
    size_t take = len < room ? len : room;
    memcpy(b->data + b->len, p, take);
    b->len += take;
    b->data[b->len] = '\0';
    return len;
}

/* The server's own words, one line, printable, for an error message. */
static void clean_detail(const char *in, char *out, size_t outlen)
{
    size_t j = 0;
    for (size_t i = 0; in[i] && j + 1 < outlen && j < 160; i++) {
        unsigned char c = (unsigned char)in[i];
        out[j++] = c < ' ' || c == 0x7f ? ' ' : (char)c;
    }
    out[j] = '\0';
}

oms_sentry_outcome oms_sentry_send(const oms_sentry_dsn *dsn, const oms_sentry_send_opts *o,
                                   const char *envelope, size_t len, long *http, char *errbuf,
                                   size_t errlen)
{
    char url[700], auth[400], hdr[420], where[700];
    *http = 0;
    oms_sentry_dsn_describe(dsn, where, sizeof where);
    if (oms_sentry_envelope_url(dsn, url, sizeof url) < 0 ||
        oms_sentry_auth_header(dsn, o->client ? o->client : "oms.c/1.0", auth, sizeof auth) < 0) {
        oms_errf(errbuf, errlen, "sentry at '%s': DSN too long", where);
        return OMS_SENTRY_INVALID;
    }
    unsigned char *gz;
    size_t gzlen;
    if (oms_sentry_gzip(envelope, len, &gz, &gzlen) != OMS_OK) {
        oms_errf(errbuf, errlen, "sentry: out of memory");
        return OMS_SENTRY_RETRY;
    }
    snprintf(hdr, sizeof hdr, "X-Sentry-Auth: %s", auth);
    CURL *c = curl_easy_init();
    if (!c) {
        free(gz);
        oms_errf(errbuf, errlen, "sentry: cannot initialise libcurl");
        return OMS_SENTRY_RETRY;
    }
    struct curl_slist *h = NULL;
    h = curl_slist_append(h, hdr);
    h = curl_slist_append(h, "Content-Type: application/x-sentry-envelope");
    h = curl_slist_append(h, "Content-Encoding: gzip");
    body_buf b = {.len = 0};
    b.data[0] = '\0';
    char cerr[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, (const char *)gz);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)gzlen);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cerr);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, o->timeout_ms > 0 ? o->timeout_ms : 10000L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    /* verified TLS, always: a DSN pointing at a server with a bad
     * certificate is an error to fix, not to skip */
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    if (o->ca_file && *o->ca_file)
        curl_easy_setopt(c, CURLOPT_CAINFO, o->ca_file);
    CURLcode rc = curl_easy_perform(c);
    long status = 0;
    if (rc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    free(gz);
    *http = status;
    char detail[200];
    clean_detail(b.data, detail, sizeof detail);
    /* servers echo the DSN in errors (Bugsink: "key incorrect: http://KEY@..."):
     * the key stays out of our messages */
    for (char *k; dsn->public_key[0] && (k = strstr(detail, dsn->public_key));)
        memset(k, '*', strlen(dsn->public_key));
    for (char *k; dsn->secret_key[0] && (k = strstr(detail, dsn->secret_key));)
        memset(k, '*', strlen(dsn->secret_key));
    if (rc != CURLE_OK) {
        oms_errf(errbuf, errlen, "cannot reach sentry at '%s': %s", where,
                 cerr[0] ? cerr : curl_easy_strerror(rc));
        return OMS_SENTRY_RETRY;
    }
    if (status >= 200 && status < 300)
        return OMS_SENTRY_OK;
    if (status == 401 || status == 403) {
        oms_errf(errbuf, errlen,
                 "sentry at '%s' rejected the key (HTTP %ld%s%s): check the key and project of "
                 "SENTRY_DSN",
                 where, status, detail[0] ? ": " : "", detail);
        return OMS_SENTRY_REJECTED;
    }
    if (status == 404) {
        oms_errf(errbuf, errlen, "sentry at '%s' has no such project (HTTP 404): check the project "
                                 "id of SENTRY_DSN", where);
        return OMS_SENTRY_REJECTED;
    }
    if (status == 429 || status >= 500) {
        oms_errf(errbuf, errlen, "sentry at '%s' answered HTTP %ld%s%s: will retry", where, status,
                 detail[0] ? ": " : "", detail);
        return OMS_SENTRY_RETRY;
    }
    oms_errf(errbuf, errlen, "sentry at '%s' refused the event (HTTP %ld%s%s)", where, status,
             detail[0] ? ": " : "", detail);
    return OMS_SENTRY_INVALID;
}
