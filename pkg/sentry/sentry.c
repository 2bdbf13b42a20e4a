/* sentry.c — DSN, envelope, event ids, gzip: pure, no network (send.c
 * delivers). */
#include "sentry.h"

#include <ctype.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "json/json.h"

/* ---- DSN ---------------------------------------------------------------------- */

static bool key_chars_ok(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '_')
            return false;
    return n > 0;
}

int oms_sentry_dsn_parse(const char *text, const char *what, oms_sentry_dsn *out, char *errbuf,
                         size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (!text || !*text) {
        oms_errf(errbuf, errlen, "%s: empty", what);
        return OMS_EINVAL;
    }
    for (const char *c = text; *c; c++) {
        /* a DSN goes into an HTTP header: no controls, no spaces */
        if ((unsigned char)*c <= ' ' || *c == 0x7f) {
            oms_errf(errbuf, errlen, "%s: contains a space or control character", what);
            return OMS_EINVAL;
        }
    }
    const char *p = text;
    if (strncmp(p, "https://", 8) == 0) {
        strcpy(out->scheme, "https");
        p += 8;
    } else if (strncmp(p, "http://", 7) == 0) {
        strcpy(out->scheme, "http");
        p += 7;
    } else {
        oms_errf(errbuf, errlen, "%s: expected https://KEY@HOST/PROJECT_ID (or http://)", what);
        return OMS_EINVAL;
    }
    const char *at = strchr(p, '@');
    const char *slash = strchr(p, '/');
    if (!at || (slash && slash < at)) {
        oms_errf(errbuf, errlen, "%s: no public key before '@' (expected "
                                 "https://KEY@HOST/PROJECT_ID)", what);
        return OMS_EINVAL;
    }
    const char *colon = memchr(p, ':', (size_t)(at - p));
    size_t klen = (size_t)((colon ? colon : at) - p);
    if (!key_chars_ok(p, klen) || klen >= sizeof out->public_key) {
        oms_errf(errbuf, errlen, "%s: the public key is empty, too long or holds characters "
                                 "other than letters, digits, '-' and '_'", what);
        return OMS_EINVAL;
    }
    memcpy(out->public_key, p, klen);
    if (colon) {
        size_t slen = (size_t)(at - colon - 1);
        if (!key_chars_ok(colon + 1, slen) || slen >= sizeof out->secret_key) {
            oms_errf(errbuf, errlen, "%s: the secret key after ':' is not valid", what);
            return OMS_EINVAL;
        }
        memcpy(out->secret_key, colon + 1, slen);
    }
    p = at + 1;
    /* host[:port] up to the first '/' */
    slash = strchr(p, '/');
    if (!slash) {
        oms_errf(errbuf, errlen, "%s: no project id (expected https://KEY@HOST/PROJECT_ID)", what);
        return OMS_EINVAL;
    }
    const char *hend = slash;
    const char *pc = NULL;
    if (*p == '[') {
        const char *rb = memchr(p, ']', (size_t)(slash - p));
        if (!rb) {
            oms_errf(errbuf, errlen, "%s: unterminated [IPv6] host", what);
            return OMS_EINVAL;
        }
        if (rb + 1 < slash) {
            if (rb[1] != ':') {
                oms_errf(errbuf, errlen, "%s: unexpected text after the [IPv6] host", what);
                return OMS_EINVAL;
            }
            pc = rb + 1;
        }
    } else {
        pc = memchr(p, ':', (size_t)(slash - p));
    }
    if (pc) {
        hend = pc;
        char *e;
        long port = strtol(pc + 1, &e, 10);
        if (e != slash || pc + 1 == slash || port < 1 || port > 65535) {
            oms_errf(errbuf, errlen, "%s: the port is not a number between 1 and 65535", what);
            return OMS_EINVAL;
        }
        out->port = (int)port;
    }
    size_t hlen = (size_t)(hend - p);
    if (!hlen || hlen >= sizeof out->host) {
        oms_errf(errbuf, errlen, "%s: no host after '@'", what);
        return OMS_EINVAL;
    }
    for (size_t i = 0; i < hlen; i++) {
        char c = p[i];
        if (!isalnum((unsigned char)c) && !strchr(".-_[]:", c)) {
            oms_errf(errbuf, errlen, "%s: the host holds a character not allowed in a host name",
                     what);
            return OMS_EINVAL;
        }
    }
    memcpy(out->host, p, hlen);
    /* path: everything up to the last '/', then the project id */
    const char *rest = slash;
    size_t rlen = strlen(rest);
    while (rlen > 1 && rest[rlen - 1] == '/')
        rlen--; /* "…/42/" is written by hand sometimes */
    const char *last = rest + rlen;
    while (last > rest && last[-1] != '/')
        last--;
    size_t plen = (size_t)(rest + rlen - last);
    if (!plen || plen >= sizeof out->project_id) {
        oms_errf(errbuf, errlen, "%s: no project id after the host", what);
        return OMS_EINVAL;
    }
    for (size_t i = 0; i < plen; i++) {
        if (!isdigit((unsigned char)last[i])) {
            oms_errf(errbuf, errlen, "%s: the project id must be a number", what);
            return OMS_EINVAL;
        }
    }
    if (strchr(rest, '?') || strchr(rest, '#')) {
        oms_errf(errbuf, errlen, "%s: a query or fragment is not allowed", what);
        return OMS_EINVAL;
    }
    memcpy(out->project_id, last, plen);
    size_t pathlen = (size_t)(last - 1 - rest);
    if (pathlen >= sizeof out->path) {
        oms_errf(errbuf, errlen, "%s: the path is too long", what);
        return OMS_EINVAL;
    }
    memcpy(out->path, rest, pathlen);
    return OMS_OK;
}

static void hostport(const oms_sentry_dsn *dsn, char *buf, size_t len)
{
    if (dsn->port)
        snprintf(buf, len, "%s://%s:%d%s", dsn->scheme, dsn->host, dsn->port, dsn->path);
    else
        snprintf(buf, len, "%s://%s%s", dsn->scheme, dsn->host, dsn->path);
}

int oms_sentry_envelope_url(const oms_sentry_dsn *dsn, char *buf, size_t len)
{
    char base[600];
    hostport(dsn, base, sizeof base);
    int n = snprintf(buf, len, "%s/api/%s/envelope/", base, dsn->project_id);
    return n < 0 || (size_t)n >= len ? OMS_ERANGE : n;
}

int oms_sentry_auth_header(const oms_sentry_dsn *dsn, const char *client, char *buf, size_t len)
{
    int n;
    if (dsn->secret_key[0])
        n = snprintf(buf, len,
                     "Sentry sentry_version=7, sentry_client=%s, sentry_key=%s, sentry_secret=%s",
                     client, dsn->public_key, dsn->secret_key);
    else
        n = snprintf(buf, len, "Sentry sentry_version=7, sentry_client=%s, sentry_key=%s", client,
                     dsn->public_key);
    return n < 0 || (size_t)n >= len ? OMS_ERANGE : n;
}

void oms_sentry_dsn_describe(const oms_sentry_dsn *dsn, char *buf, size_t len)
{
    char base[600];
    hostport(dsn, base, sizeof base);
    snprintf(buf, len, "%s project %s", base, dsn->project_id);
}

/* ---- event ids -------------------------------------------------------------------- */

void oms_sentry_event_id(const char *key, char out[33])
{
    size_t n = 0;
    bool uuid = strlen(key) == 36;
    for (size_t i = 0; uuid && i < 36; i++) {
        char c = key[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            uuid = c == '-';
            continue;
        }
        if (!isxdigit((unsigned char)c)) {
            uuid = false;
            break;
        }
        out[n++] = (char)tolower((unsigned char)c);
    }
    if (uuid && n == 32) {
        out[32] = '\0';
        return;
    }
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)key, strlen(key), md);
    for (size_t i = 0; i < 16; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* ---- envelope --------------------------------------------------------------------- */

static bool is_hex32(const char *s)
{
    if (!s || strlen(s) != 32)
        return false;
    for (size_t i = 0; i < 32; i++)
        if (!isxdigit((unsigned char)s[i]) || isupper((unsigned char)s[i]))
            return false;
    return true;
}

static bool level_ok(const char *l)
{
    static const char *const levels[] = {"fatal", "error", "warning", "info", "debug"};
    for (size_t i = 0; l && i < OMS_ARRAY_LEN(levels); i++)
        if (strcmp(l, levels[i]) == 0)
            return true;
    return false;
}

static void set_opt_str(json_t *o, const char *k, const char *v)
{
    if (v && *v)
        json_object_set_new(o, k, json_string(v));
}

int oms_sentry_envelope(const oms_sentry_event *ev, int64_t sent_at_ms, char **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    if (!is_hex32(ev->event_id) || !level_ok(ev->level) || !ev->message)
        return OMS_EINVAL;
    const char *k;
    json_t *v;
    if (ev->tags) {
        if (!json_is_object(ev->tags))
            return OMS_EINVAL;
        json_object_foreach(ev->tags, k, v)
        {
            if (!json_is_string(v))
                return OMS_EINVAL;
        }
    }
    if (ev->extra && !json_is_object(ev->extra))
        return OMS_EINVAL;
    char ts[32], sent[32];
    oms_iso8601_ms(ev->timestamp_ms, ts, sizeof ts);
    oms_iso8601_ms(sent_at_ms, sent, sizeof sent);
    json_t *e = json_object();
    json_object_set_new(e, "event_id", json_string(ev->event_id));
    json_object_set_new(e, "timestamp", json_string(ts));
    json_object_set_new(e, "platform", json_string("c"));
    json_object_set_new(e, "level", json_string(ev->level));
    /* "message" as an object is what current SDKs send; Bugsink and Sentry
     * both show its "formatted" text as the title */
    json_object_set_new(e, "message", json_pack("{s:s}", "formatted", ev->message));
    set_opt_str(e, "logger", ev->logger);
    set_opt_str(e, "environment", ev->environment);
    set_opt_str(e, "server_name", ev->server_name);
    set_opt_str(e, "release", ev->release);
    if (ev->fingerprint && *ev->fingerprint)
        json_object_set_new(e, "fingerprint", json_pack("[s]", ev->fingerprint));
    if (ev->tags)
        json_object_set(e, "tags", ev->tags);
    if (ev->extra)
        json_object_set(e, "extra", ev->extra);
    json_object_set_new(e, "sdk", json_pack("{s:s,s:s}", "name", "oms.c", "version", "1.0"));
    char *body = oms_json_dumps(e, JSON_COMPACT);
    json_decref(e);
    if (!body)
        return OMS_ENOMEM;
    size_t blen = strlen(body);
    char head[256];
    int hn = snprintf(head, sizeof head,
                      "{\"event_id\":\"%s\",\"sent_at\":\"%s\"}\n{\"type\":\"event\",\"length\":%zu}\n",
                      ev->event_id, sent, blen);
    char *buf = malloc((size_t)hn + blen + 2);
    if (!buf) {
        free(body);
        return OMS_ENOMEM;
    }
    memcpy(buf, head, (size_t)hn);
    memcpy(buf + hn, body, blen);
    buf[(size_t)hn + blen] = '\n';
    buf[(size_t)hn + blen + 1] = '\0';
    free(body);
    *out = buf;
    *len = (size_t)hn + blen + 1;
    return OMS_OK;
}

int oms_sentry_gzip(const void *in, size_t len, unsigned char **out, size_t *outlen)
{
    *out = NULL;
    *outlen = 0;
    z_stream z;
    memset(&z, 0, sizeof z);
    /* windowBits 15 + 16: a gzip wrapper rather than zlib's */
    if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return OMS_ENOMEM;
    size_t cap = deflateBound(&z, (uLong)len) + 32;
    unsigned char *buf = malloc(cap);
    if (!buf) {
        deflateEnd(&z);
        return OMS_ENOMEM;
    }
    z.next_in = (Bytef *)(uintptr_t)in;
    z.avail_in = (uInt)len;
    z.next_out = buf;
    z.avail_out = (uInt)cap;
    int rc = deflate(&z, Z_FINISH);
    size_t n = cap - z.avail_out;
    deflateEnd(&z);
    if (rc != Z_STREAM_END) {
        free(buf);
        return OMS_ENOMEM;
    }
    *out = buf;
    *outlen = n;
    return OMS_OK;
}
