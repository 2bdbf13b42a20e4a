/* test_mail.c — pkg/mail: addresses, RFC 2047 headers, dates, Message-IDs,
 * the multipart/alternative message, EMAIL_TLS. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "mail/mail.h"

/* Decode the base64 of s[0..n) into out (NUL-terminated); returns its length. */
static size_t unb64(const char *s, size_t n, char *out)
{
    static const char *abc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    unsigned v = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        const char *p = strchr(abc, s[i]);
        if (!p || !s[i])
            continue; /* '=', CR, LF */
        v = (v << 6) | (unsigned)(p - abc);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (char)((v >> bits) & 0xff);
        }
    }
    out[o] = '\0';
    return o;
}

static void test_address(void **state)
{
    assert_true(oms_mail_address_valid("ops@oms.test"));
    assert_true(oms_mail_address_valid("a.b+c@x.example.org"));
    const char *bad[] = {"", "x", "@x.org", "a@", "a@b@c", "a b@x.org", "<a@x.org>", "a@x.org,b@x.org",
                         "a@x.org\r\nBcc: evil@x.org", "\"a\"@x.org", "é@x.org"};
    for (size_t i = 0; i < OMS_ARRAY_LEN(bad); i++)
        if (oms_mail_address_valid(bad[i]))
            fail_msg("'%s' accepted", bad[i]);
    assert_false(oms_mail_address_valid(NULL));
}

static void test_header(void **state)
{
    oms_mail_buf b = {0};
    assert_int_equal(oms_mail_header(&b, "Subject", "[OMS] New order ORDER-1"), 0);
    assert_string_equal(b.p, "Subject: [OMS] New order ORDER-1\r\n");
    b.len = 0;
    /* UTF-8: encoded words, each at most 75 characters, folded, and the
     * decoded words give the text back */
    const char *v = "Commande créée : ☕ café crème pour l'équipe — total 12,50 € (ORDER-12345678)";
    assert_int_equal(oms_mail_header(&b, "Subject", v), 0);
    assert_memory_equal(b.p, "Subject: =?UTF-8?B?", 19);
    char decoded[512] = "";
    size_t dl = 0;
    for (char *w = b.p; (w = strstr(w, "=?UTF-8?B?"));) {
        w += 10;
        char *end = strstr(w, "?=");
        assert_non_null(end);
        assert_true(end - w + 12 <= 75);
        dl += unb64(w, (size_t)(end - w), decoded + dl);
        w = end + 2;
    }
    assert_string_equal(decoded, v);
    /* continuation lines start with a space; every line ends CRLF */
    assert_non_null(strstr(b.p, "?=\r\n =?UTF-8?B?"));
    assert_memory_equal(b.p + b.len - 2, "\r\n", 2);
    /* header injection and bad UTF-8 are refused and leave b unchanged */
    size_t keep = b.len;
    assert_int_equal(oms_mail_header(&b, "Subject", "hi\r\nBcc: evil@x.org"), OMS_EINVAL);
    assert_int_equal(oms_mail_header(&b, "Subject", "bad \xc3\x28 utf8"), OMS_EINVAL);
    assert_int_equal(b.len, keep);
    /* ASCII that looks like an encoded word is encoded, not passed through */
    b.len = 0;
    assert_int_equal(oms_mail_header(&b, "Subject", "=?UTF-8?B?eA==?="), 0);
    assert_memory_equal(b.p, "Subject: =?UTF-8?B?PT9VVEYtOD9CP2VBPT0/PQ==?=", 44);
    free(b.p);
}

static void test_date_and_id(void **state)
{
    char d[64], id[128];
    oms_mail_date(1764979200123, d, sizeof d); /* 2025-12-06 00:00:00 UTC, a Saturday */
    assert_string_equal(d, "Sat, 06 Dec 2025 00:00:00 +0000");
    assert_true(oms_mail_message_id("01939b2c-7d4e-7a3b", "oms.test", id, sizeof id) > 0);
    assert_string_equal(id, "<01939b2c-7d4e-7a3b@oms.test>");
    oms_mail_message_id("digest-a b<c>", "x.org", id, sizeof id);
    assert_string_equal(id, "<digest-a-b-c-@x.org>");
    assert_int_equal(oms_mail_message_id("k", "x.org", id, 4), OMS_ERANGE);
}

static void test_build(void **state)
{
    const char *to[] = {"ops@oms.test", "boss@oms.test"};
    oms_mail_message m = {.from = "alerts@oms.test",
                          .from_name = "OMS Alertes – Café",
                          .to = to,
                          .nto = 2,
                          .subject = "[OMS] New order ORDER-1: total 12.50, user 7",
                          .text = "A new order.\nItems: 2 x Café\n",
                          .html = "<p>A new order: 2 &times; Café</p>",
                          .message_id = "<e1@oms.test>",
                          .date_ms = 1764979200123};
    char *msg, err[256];
    size_t len;
    assert_int_equal(oms_mail_build(&m, &msg, &len, err, sizeof err), 0);
    assert_int_equal(strlen(msg), len);
    char *body = strstr(msg, "\r\n\r\n");
    assert_non_null(body);
    *body = '\0';
    /* headers */
    assert_non_null(strstr(msg, "From: =?UTF-8?B?"));
    assert_non_null(strstr(msg, "?= <alerts@oms.test>\r\n"));
    assert_non_null(strstr(msg, "To: ops@oms.test,\r\n boss@oms.test\r\n"));
    assert_non_null(strstr(msg, "Subject: [OMS] New order ORDER-1: total 12.50, user 7\r\n"));
    assert_non_null(strstr(msg, "Date: Sat, 06 Dec 2025 00:00:00 +0000\r\n"));
    assert_non_null(strstr(msg, "Message-ID: <e1@oms.test>\r\n"));
    assert_non_null(strstr(msg, "MIME-Version: 1.0\r\n"));
    assert_non_null(strstr(msg, "Content-Type: multipart/alternative; boundary=\""));
    *body = '\r';
    /* both parts, base64, UTF-8, and the closing boundary */
    const char *tp = strstr(msg, "Content-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: base64\r\n\r\n");
    const char *hp = strstr(msg, "Content-Type: text/html; charset=UTF-8\r\nContent-Transfer-Encoding: base64\r\n\r\n");
    assert_non_null(tp);
    assert_non_null(hp);
    assert_true(tp < hp);
    char out[512];
    tp = strstr(tp, "\r\n\r\n") + 4;
    unb64(tp, (size_t)(strstr(tp, "--") - tp), out);
    assert_string_equal(out, m.text);
    hp = strstr(hp, "\r\n\r\n") + 4;
    unb64(hp, (size_t)(strstr(hp, "--") - hp), out);
    assert_string_equal(out, m.html);
    assert_non_null(strstr(msg, "--\r\n"));
    /* no line over 998 characters, every line ends CRLF */
    for (const char *p = msg; *p;) {
        const char *nl = strstr(p, "\r\n");
        assert_non_null(nl);
        assert_true(nl - p <= 998);
        p = nl + 2;
    }
    free(msg);

    /* refusals: a bad sender, a bad recipient, an injected subject */
    m.from = "bad sender";
    assert_int_equal(oms_mail_build(&m, &msg, &len, err, sizeof err), OMS_EINVAL);
    m.from = "alerts@oms.test";
    const char *bad_to[] = {"ops@oms.test", "x@y.org\r\nBcc: evil@z.org"};
    m.to = bad_to;
    assert_int_equal(oms_mail_build(&m, &msg, &len, err, sizeof err), OMS_EINVAL);
    assert_non_null(strstr(err, "recipient 2"));
    m.to = to;
    m.subject = "x\nBcc: evil@z.org";
    assert_int_equal(oms_mail_build(&m, &msg, &len, err, sizeof err), OMS_EINVAL);
    m.subject = "ok";
    m.nto = 0;
    assert_int_equal(oms_mail_build(&m, &msg, &len, err, sizeof err), OMS_EINVAL);
}

static void test_tls(void **state)
{
    oms_smtp_tls t;
    assert_int_equal(oms_smtp_tls_parse("", 587, &t), 0);
    assert_int_equal(t, OMS_SMTP_TLS_STARTTLS);
    assert_int_equal(oms_smtp_tls_parse("auto", 465, &t), 0);
    assert_int_equal(t, OMS_SMTP_TLS_IMPLICIT);
    assert_int_equal(oms_smtp_tls_parse("auto", 25, &t), 0);
    assert_int_equal(t, OMS_SMTP_TLS_STARTTLS); /* never plain text unless asked */
    assert_int_equal(oms_smtp_tls_parse("TLS", 587, &t), 0);
    assert_int_equal(t, OMS_SMTP_TLS_IMPLICIT);
    assert_int_equal(oms_smtp_tls_parse("none", 465, &t), 0);
    assert_int_equal(t, OMS_SMTP_TLS_NONE);
    assert_int_equal(oms_smtp_tls_parse("maybe", 587, &t), OMS_EINVAL);
    assert_string_equal(oms_smtp_tls_name(OMS_SMTP_TLS_STARTTLS), "starttls");
}

static void test_html_escape(void **state)
{
    oms_mail_buf b = {0};
    assert_int_equal(oms_mail_html_escape(&b, "<a href=\"x\">Tom & Jerry's</a>"), 0);
    assert_string_equal(b.p, "&lt;a href=&quot;x&quot;&gt;Tom &amp; Jerry&#39;s&lt;/a&gt;");
    free(b.p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_address),     cmocka_unit_test(test_header),
        cmocka_unit_test(test_date_and_id), cmocka_unit_test(test_build),
        cmocka_unit_test(test_tls),         cmocka_unit_test(test_html_escape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
