/* mail.h — e-mail: MIME messages (multipart/alternative, RFC 2047 encoded
 * UTF-8 headers, Date, Message-ID) and their delivery over SMTP through
 * libcurl (smtp:// with STARTTLS, smtps://, AUTH).
 *
 * Building is pure and unit-tested; oms_smtp_send() is the adapter. The
 * password never appears in a message of this module. */
#ifndef OMS_MAIL_H
#define OMS_MAIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/oms.h"

/* A growing text buffer (start zeroed; free(b.p)). */
typedef struct oms_mail_buf {
    char *p;
    size_t len, cap;
} oms_mail_buf;

/* Whether s is a plain address "local@domain" that may go into a header and
 * an SMTP envelope: printable ASCII, no spaces, quotes, angle brackets,
 * commas or controls, one '@' with text on both sides. */
bool oms_mail_address_valid(const char *s);

/* Append header "Name: value\r\n" to b: value as is when it is printable
 * ASCII, else as RFC 2047 encoded words (=?UTF-8?B?...?=) of at most 75
 * characters each, never splitting a UTF-8 sequence, folded onto
 * continuation lines. A CR or LF in value (header injection) or invalid
 * UTF-8 is OMS_EINVAL. Returns 0, OMS_EINVAL or OMS_ENOMEM. */
int oms_mail_header(oms_mail_buf *b, const char *name, const char *value);

/* "Mon, 07 Dec 2026 05:02:58 +0000" (RFC 5322 date, UTC) into buf (>= 32). */
void oms_mail_date(int64_t ms, char *buf, size_t len);

/* "<KEY@DOMAIN>" into buf: a Message-ID that is the same for the same key,
 * so a message sent twice is recognisable as one (receivers that drop
 * duplicate Message-IDs drop it). KEY characters outside [A-Za-z0-9.-] are
 * replaced by '-'. Returns the length or OMS_ERANGE. */
int oms_mail_message_id(const char *key, const char *domain, char *buf, size_t len);

typedef struct oms_mail_message {
    const char *from;         /* address */
    const char *from_name;    /* may be NULL: display name (UTF-8) */
    const char *const *to;    /* addresses */
    size_t nto;
    const char *subject;      /* UTF-8 */
    const char *text;         /* UTF-8 plain text */
    const char *html;         /* UTF-8 HTML (may be NULL: text/plain only) */
    const char *message_id;   /* "<...>" */
    int64_t date_ms;          /* epoch ms */
    const char *boundary;     /* may be NULL: derived from message_id */
} oms_mail_message;

/* The whole message (headers, CRLF line ends, base64 bodies in lines of 76)
 * in *out (malloc'd, NUL-terminated, caller frees), *len its length.
 * Returns 0, OMS_EINVAL with errbuf (an address or header that is not
 * allowed) or OMS_ENOMEM. */
int oms_mail_build(const oms_mail_message *m, char **out, size_t *len, char *errbuf,
                   size_t errlen);

/* HTML-escape s (& < > " ') onto b. 0 or OMS_ENOMEM. */
int oms_mail_html_escape(oms_mail_buf *b, const char *s);
/* printf onto b. 0 or OMS_ENOMEM. */
int oms_mail_printf(oms_mail_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- SMTP (libcurl) ---------------------------------------------------------------- */

typedef enum {
    OMS_SMTP_TLS_STARTTLS = 0, /* smtp://, STARTTLS required (never plain) */
    OMS_SMTP_TLS_IMPLICIT,     /* smtps:// */
    OMS_SMTP_TLS_NONE,         /* smtp://, plain text, only when asked for */
} oms_smtp_tls;

/* "starttls", "tls" (or "ssl", "smtps"), "none"; "" or "auto": by port (465:
 * tls, else starttls). Returns 0 or OMS_EINVAL. */
int oms_smtp_tls_parse(const char *s, int port, oms_smtp_tls *out);
const char *oms_smtp_tls_name(oms_smtp_tls t);

typedef struct oms_smtp_opts {
    const char *host;
    int port;
    oms_smtp_tls tls;
    const char *user;     /* "" or NULL: no AUTH */
    const char *password; /* with user */
    const char *ca_file;  /* "" or NULL: the system's CAs */
    long timeout_ms;      /* whole exchange; 0: 30 s */
    const char *helo;     /* the name for EHLO, may be NULL */
} oms_smtp_opts;

typedef enum {
    OMS_SMTP_OK = 0,
    OMS_SMTP_RETRY,    /* no connection, TLS handshake, timeout, 4xx: try later */
    OMS_SMTP_REJECTED, /* authentication refused, STARTTLS refused, 5xx: fix the config */
} oms_smtp_outcome;

/* Send msg (a built message) from `from` to every address of to, in one
 * SMTP transaction. errbuf says what happened ("cannot reach smtp server
 * 'HOST:PORT': ..."), without the password. */
oms_smtp_outcome oms_smtp_send(const oms_smtp_opts *o, const char *from, const char *const *to,
                               size_t nto, const char *msg, size_t len, char *errbuf,
                               size_t errlen);

#endif
