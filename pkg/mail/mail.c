/* mail.c — MIME building and EMAIL_TLS parsing: pure, no network (smtp.c
 * delivers). */
#include "mail.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* ---- buffer ------------------------------------------------------------------------ */

static int buf_reserve(oms_mail_buf *b, size_t n)
{
    if (b->len + n + 1 <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n + 1)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p)
        return OMS_ENOMEM;
    b->p = p;
    b->cap = cap;
    return 0;
}

static int buf_add(oms_mail_buf *b, const char *s, size_t n)
{
    if (buf_reserve(b, n))
        return OMS_ENOMEM;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

static int buf_str(oms_mail_buf *b, const char *s)
{
    return buf_add(b, s, strlen(s));
}

int oms_mail_printf(oms_mail_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || buf_reserve(b, (size_t)n))
        return OMS_ENOMEM;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

int oms_mail_html_escape(oms_mail_buf *b, const char *s)
{
    for (; *s; s++) {
        const char *r = NULL;
        switch (*s) {
        case '&': r = "&amp;"; break;
        case '<': r = "&lt;"; break;
        case '>': r = "&gt;"; break;
        case '"': r = "&quot;"; break;
        case '\'': r = "&#39;"; break;
        default: break;
        }
        if (r ? buf_str(b, r) : buf_add(b, s, 1))
            return OMS_ENOMEM;
    }
    return 0;
}

/* ---- base64 ---------------------------------------------------------------------- */

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int base64_add(oms_mail_buf *b, const unsigned char *in, size_t n, size_t line, bool crlf)
{
    size_t col = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)in[i] << 16;
        if (i + 1 < n)
            v |= (unsigned)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        char q[4] = {b64[(v >> 18) & 63], b64[(v >> 12) & 63],
                     i + 1 < n ? b64[(v >> 6) & 63] : '=', i + 2 < n ? b64[v & 63] : '='};
        if (buf_add(b, q, 4))
            return OMS_ENOMEM;
        col += 4;
        if (line && col >= line && i + 3 < n) {
            if (buf_str(b, "\r\n"))
                return OMS_ENOMEM;
            col = 0;
        }
    }
    return crlf ? buf_str(b, "\r\n") : 0;
}

/* ---- headers ------------------------------------------------------------------------- */

bool oms_mail_address_valid(const char *s)
{
    if (!s)
        return false;
    size_t n = strlen(s);
    if (n < 3 || n > 254)
        return false;
    const char *at = strchr(s, '@');
    if (!at || at == s || !at[1] || strchr(at + 1, '@'))
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= ' ' || c >= 0x7f || strchr("<>()[]\\,;:\"", c))
            return false;
    }
    return true;
}

/* Length of the UTF-8 sequence at s, 0 when it is not valid. */
static size_t utf8_len(const unsigned char *s)
{
    if (s[0] < 0x80)
        return 1;
    size_t n = (s[0] & 0xE0) == 0xC0 ? 2 : (s[0] & 0xF0) == 0xE0 ? 3 : (s[0] & 0xF8) == 0xF0 ? 4 : 0;
    if (!n || (n == 2 && s[0] < 0xC2))
        return 0;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    return n;
}

static bool plain_ascii(const char *v)
{
    for (const unsigned char *p = (const unsigned char *)v; *p; p++)
        if (*p < ' ' || *p >= 0x7f)
            return false;
    /* "=?" would be read as the start of an encoded word */
    return !strstr(v, "=?") && strlen(v) < 900;
}

/* Encoded words of v onto b (the first on the current line, each further
 * one on a continuation line). */
static int encoded_words(oms_mail_buf *b, const char *v)
{
    const unsigned char *p = (const unsigned char *)v;
    bool first = true;
    while (*p || first) {
        /* 45 bytes -> 60 base64 characters -> 72 with "=?UTF-8?B?" "?=" */
        size_t take = 0;
        while (p[take]) {
            size_t l = utf8_len(p + take);
            if (!l)
                return OMS_EINVAL;
            if (take + l > 45)
                break;
            take += l;
        }
        if (!first && buf_str(b, "\r\n "))
            return OMS_ENOMEM;
        if (buf_str(b, "=?UTF-8?B?") || base64_add(b, p, take, 0, false) || buf_str(b, "?="))
            return OMS_ENOMEM;
        p += take;
        first = false;
    }
    return 0;
}

int oms_mail_header(oms_mail_buf *b, const char *name, const char *value)
{
    if (strpbrk(value, "\r\n"))
        return OMS_EINVAL;
    for (const unsigned char *p = (const unsigned char *)value; *p;) {
        size_t l = utf8_len(p);
        if (!l)
            return OMS_EINVAL;
        p += l;
    }
    size_t mark = b->len;
    int rc = oms_mail_printf(b, "%s: ", name);
    if (!rc)
        rc = plain_ascii(value) ? buf_str(b, value) : encoded_words(b, value);
    if (!rc)
        rc = buf_str(b, "\r\n");
    if (rc) {
        b->len = mark;
        if (b->p)
            b->p[mark] = '\0';
    }
    return rc;
}

void oms_mail_date(int64_t ms, char *buf, size_t len)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    /* by hand, not strftime: %a and %b follow the locale */
    snprintf(buf, len, "%s, %02d %s %04d %02d:%02d:%02d +0000", days[tm.tm_wday % 7], tm.tm_mday,
             months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

int oms_mail_message_id(const char *key, const char *domain, char *buf, size_t len)
{
    int n = snprintf(buf, len, "<%s@%s>", key, domain && *domain ? domain : "localhost");
    if (n < 0 || (size_t)n >= len)
        return OMS_ERANGE;
    size_t klen = strlen(key);
    for (size_t i = 1; i <= klen; i++)
        if (!isalnum((unsigned char)buf[i]) && buf[i] != '.' && buf[i] != '-')
            buf[i] = '-';
    for (size_t i = klen + 2; i + 1 < (size_t)n; i++)
        if (!isalnum((unsigned char)buf[i]) && buf[i] != '.' && buf[i] != '-')
            buf[i] = '-';
    return n;
}

/* A display name as a quoted string when it is simple ASCII, else encoded. */
static int from_header(oms_mail_buf *b, const char *name, const char *addr)
{
    if (!name || !*name)
        return oms_mail_printf(b, "From: %s\r\n", addr);
    if (strpbrk(name, "\r\n"))
        return OMS_EINVAL;
    bool simple = true;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        if (*p < ' ' || *p >= 0x7f || *p == '"' || *p == '\\')
            simple = false;
    if (simple && strlen(name) < 200)
        return oms_mail_printf(b, "From: \"%s\" <%s>\r\n", name, addr);
    if (buf_str(b, "From: "))
        return OMS_ENOMEM;
    int rc = encoded_words(b, name);
    if (rc)
        return rc;
    return oms_mail_printf(b, " <%s>\r\n", addr);
}

static int body_part(oms_mail_buf *b, const char *boundary, const char *type, const char *body)
{
    if (oms_mail_printf(b,
                        "--%s\r\nContent-Type: %s; charset=UTF-8\r\n"
                        "Content-Transfer-Encoding: base64\r\n\r\n",
                        boundary, type))
        return OMS_ENOMEM;
    return base64_add(b, (const unsigned char *)body, strlen(body), 76, true);
}

int oms_mail_build(const oms_mail_message *m, char **out, size_t *len, char *errbuf,
                   size_t errlen)
{
    *out = NULL;
    *len = 0;
    if (!oms_mail_address_valid(m->from)) {
        oms_errf(errbuf, errlen, "the sender address is not a plain address (local@domain)");
        return OMS_EINVAL;
    }
    if (!m->nto) {
        oms_errf(errbuf, errlen, "no recipient");
        return OMS_EINVAL;
    }
    for (size_t i = 0; i < m->nto; i++) {
        if (!oms_mail_address_valid(m->to[i])) {
            oms_errf(errbuf, errlen, "recipient %zu is not a plain address (local@domain)", i + 1);
            return OMS_EINVAL;
        }
    }
    if (!m->message_id || strpbrk(m->message_id, "\r\n \t") || m->message_id[0] != '<') {
        oms_errf(errbuf, errlen, "bad Message-ID");
        return OMS_EINVAL;
    }
    for (const unsigned char *p = (const unsigned char *)m->text; *p;) {
        size_t l = utf8_len(p);
        if (!l) {
            oms_errf(errbuf, errlen, "the text body is not UTF-8");
            return OMS_EINVAL;
        }
        p += l;
    }
    char boundary[128], date[48];
    if (m->boundary)
        snprintf(boundary, sizeof boundary, "%s", m->boundary);
    else {
        /* from the Message-ID: '=' and '_' never occur in base64 bodies as
         * "=_" at a line start, so the boundary cannot clash with a body */
        snprintf(boundary, sizeof boundary, "=_oms_%.60s", m->message_id + 1);
        for (char *c = boundary; *c; c++)
            if (!isalnum((unsigned char)*c) && *c != '=' && *c != '_' && *c != '.')
                *c = '_';
    }
    oms_mail_date(m->date_ms, date, sizeof date);
    oms_mail_buf b = {0};
    int rc = from_header(&b, m->from_name, m->from);
    if (!rc)
        rc = buf_str(&b, "To: ");
    for (size_t i = 0; !rc && i < m->nto; i++)
        rc = oms_mail_printf(&b, "%s%s", i ? ",\r\n " : "", m->to[i]);
    if (!rc)
        rc = buf_str(&b, "\r\n");
    if (!rc && (rc = oms_mail_header(&b, "Subject", m->subject ? m->subject : "")) == OMS_EINVAL)
        oms_errf(errbuf, errlen, "the subject holds a line break or is not UTF-8");
    if (!rc)
        rc = oms_mail_printf(&b, "Date: %s\r\nMessage-ID: %s\r\nMIME-Version: 1.0\r\n", date,
                             m->message_id);
    if (!rc && m->html)
        rc = oms_mail_printf(&b,
                             "Content-Type: multipart/alternative; boundary=\"%s\"\r\n\r\n"
                             "This is a MIME message: plain text and HTML.\r\n",
                             boundary);
    if (!rc && m->html) {
        rc = body_part(&b, boundary, "text/plain", m->text);
        if (!rc)
            rc = body_part(&b, boundary, "text/html", m->html);
        if (!rc)
            rc = oms_mail_printf(&b, "--%s--\r\n", boundary);
    } else if (!rc) {
        rc = buf_str(&b, "Content-Type: text/plain; charset=UTF-8\r\n"
                         "Content-Transfer-Encoding: base64\r\n\r\n");
        if (!rc)
            rc = base64_add(&b, (const unsigned char *)m->text, strlen(m->text), 76, true);
    }
    if (rc) {
        if (rc == OMS_ENOMEM)
            oms_errf(errbuf, errlen, "out of memory");
        free(b.p);
        return rc;
    }
    *out = b.p;
    *len = b.len;
    return 0;
}

/* ---- EMAIL_TLS --------------------------------------------------------------------------- */

int oms_smtp_tls_parse(const char *s, int port, oms_smtp_tls *out)
{
    if (!s || !*s || strcasecmp(s, "auto") == 0)
        *out = port == 465 ? OMS_SMTP_TLS_IMPLICIT : OMS_SMTP_TLS_STARTTLS;
    else if (strcasecmp(s, "starttls") == 0)
        *out = OMS_SMTP_TLS_STARTTLS;
    else if (strcasecmp(s, "tls") == 0 || strcasecmp(s, "ssl") == 0 || strcasecmp(s, "smtps") == 0)
        *out = OMS_SMTP_TLS_IMPLICIT;
    else if (strcasecmp(s, "none") == 0)
        *out = OMS_SMTP_TLS_NONE;
    else
        return OMS_EINVAL;
    return 0;
}

const char *oms_smtp_tls_name(oms_smtp_tls t)
{
    return t == OMS_SMTP_TLS_IMPLICIT ? "tls" : t == OMS_SMTP_TLS_NONE ? "none" : "starttls";
}
