/* smtp.c — SMTP delivery over libcurl (the adapter of pkg/mail; building
 * messages is pure, in mail.c). */
#include <curl/curl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "mail.h"

typedef struct upload {
    const char *p;
    size_t left;
} upload;

static size_t on_read(char *dst, size_t size, size_t n, void *ud)
{
    upload *u = ud;
    size_t room = size * n, take = u->left < room ? u->left : room;
    memcpy(dst, u->p, take);
    u->p += take;
    u->left -= take;
    return take;
}

oms_smtp_outcome oms_smtp_send(const oms_smtp_opts *o, const char *from, const char *const *to,
                               size_t nto, const char *msg, size_t len, char *errbuf,
                               size_t errlen)
{
    char url[400], mfrom[300], where[300];
    snprintf(where, sizeof where, "%s:%d", o->host, o->port);
    const char *host = o->host;
    bool v6 = strchr(host, ':') != NULL;
    snprintf(url, sizeof url, "%s://%s%s%s:%d/%s",
             o->tls == OMS_SMTP_TLS_IMPLICIT ? "smtps" : "smtp", v6 ? "[" : "", host, v6 ? "]" : "",
             o->port, o->helo && *o->helo ? o->helo : "");
    snprintf(mfrom, sizeof mfrom, "<%s>", from);
    CURL *c = curl_easy_init();
    if (!c) {
        oms_errf(errbuf, errlen, "smtp: cannot initialise libcurl");
        return OMS_SMTP_RETRY;
    }
    struct curl_slist *rcpt = NULL;
    for (size_t i = 0; i < nto; i++) {
        char r[300];
        snprintf(r, sizeof r, "<%s>", to[i]);
        rcpt = curl_slist_append(rcpt, r);
    }
    upload u = {msg, len};
    char cerr[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_MAIL_FROM, mfrom);
    curl_easy_setopt(c, CURLOPT_MAIL_RCPT, rcpt);
    curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(c, CURLOPT_READDATA, &u);
    curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cerr);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, o->timeout_ms > 0 ? o->timeout_ms : 30000L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
    /* STARTTLS is required, not tried: a server (or a man in the middle)
     * that does not offer it fails the send instead of getting the
     * password and the mail in plain text */
    curl_easy_setopt(c, CURLOPT_USE_SSL,
                     o->tls == OMS_SMTP_TLS_NONE ? (long)CURLUSESSL_NONE : (long)CURLUSESSL_ALL);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    if (o->ca_file && *o->ca_file)
        curl_easy_setopt(c, CURLOPT_CAINFO, o->ca_file);
    if (o->user && *o->user) {
        curl_easy_setopt(c, CURLOPT_USERNAME, o->user);
        curl_easy_setopt(c, CURLOPT_PASSWORD, o->password ? o->password : "");
    }
    CURLcode rc = curl_easy_perform(c);
    long code = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_slist_free_all(rcpt);
    curl_easy_cleanup(c);
    if (rc == CURLE_OK)
        return OMS_SMTP_OK;
    const char *why = cerr[0] ? cerr : curl_easy_strerror(rc);
    switch (rc) {
    case CURLE_LOGIN_DENIED:
        oms_errf(errbuf, errlen, "smtp server '%s' refused the login of EMAIL_USER (%s): check "
                                 "EMAIL_USER and EMAIL_PASSWORD", where, why);
        return OMS_SMTP_REJECTED;
    case CURLE_USE_SSL_FAILED:
        oms_errf(errbuf, errlen, "smtp server '%s' does not offer STARTTLS (%s): not sending in "
                                 "plain text; set EMAIL_TLS=tls for port 465, or EMAIL_TLS=none "
                                 "to allow plain text", where, why);
        return OMS_SMTP_REJECTED;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
        oms_errf(errbuf, errlen, "smtp server '%s': TLS certificate not trusted (%s)", where, why);
        return OMS_SMTP_REJECTED;
    default: break;
    }
    if (code >= 500) {
        oms_errf(errbuf, errlen, "smtp server '%s' refused the mail (%ld: %s)", where, code, why);
        return OMS_SMTP_REJECTED;
    }
    oms_errf(errbuf, errlen, "cannot send through smtp server '%s': %s", where, why);
    return OMS_SMTP_RETRY;
}
