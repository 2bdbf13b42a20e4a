/* auth.c — JWT verification and minting on top of libjwt 1.10.2.
 *
 * libjwt checks the signature and nothing else, and it trusts the token's
 * own "alg" header: given an RSA public key it happily verifies an HS256
 * token whose HMAC secret is that very PEM text (key confusion). So before
 * libjwt sees a token we parse its header ourselves and refuse any "alg"
 * other than the configured one ("none" included); after jwt_decode we
 * check jwt_get_alg() again, in case libjwt read the header differently.
 * exp, nbf, iss, aud, role and the user id are ours to check as well. */
#include "auth/auth.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <jwt.h>

struct oms_auth {
    jwt_alg_t alg;
    const char *alg_name; /* canonical spelling, static */
    unsigned char *key;   /* key_len bytes plus a NUL */
    size_t key_len;
    char *issuer;   /* NULL: not checked */
    char *audience; /* NULL: not checked */
    int64_t leeway_s;
};

static const struct {
    const char *name;
    jwt_alg_t alg;
} k_algs[] = {
    {"HS256", JWT_ALG_HS256},
    {"RS256", JWT_ALG_RS256},
    {"ES256", JWT_ALG_ES256},
};

static const char *const k_role_names[OMS_ROLE__COUNT] = {
    [OMS_ROLE_CUSTOMER] = "customer",
    [OMS_ROLE_STAFF] = "staff",
    [OMS_ROLE_ADMIN] = "admin",
    [OMS_ROLE_SERVICE] = "service",
};

/* Keys larger than this are certainly a configuration mistake (and libjwt
 * takes the length as an int). */
#define MAX_KEY_LEN (1u << 20)

/* ---- roles ------------------------------------------------------------ */

const char *oms_role_name(oms_role r)
{
    if ((unsigned)r >= OMS_ROLE__COUNT)
        return "unknown";
    return k_role_names[r];
}

int oms_role_parse(const char *s, oms_role *out)
{
    if (!s || !out)
        return OMS_EINVAL;
    for (int i = 0; i < OMS_ROLE__COUNT; i++) {
        if (strcasecmp(s, k_role_names[i]) == 0) {
            *out = (oms_role)i;
            return 0;
        }
    }
    return OMS_EINVAL;
}

/* ---- small helpers ---------------------------------------------------- */

static bool contains(const unsigned char *hay, size_t n, const char *needle)
{
    size_t m = strlen(needle);
    if (m == 0 || m > n)
        return m == 0;
    for (size_t i = 0; i + m <= n; i++)
        if (hay[i] == (unsigned char)needle[0] && memcmp(hay + i, needle, m) == 0)
            return true;
    return false;
}

static char *dup_nonempty(const char *s, bool *nomem)
{
    if (!s || !*s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        *nomem = true;
    return d;
}

static int b64url_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

/* Decode unpadded base64url (RFC 7515 §2) strictly: no padding, no
 * whitespace, no stray bits. Returns a malloc'd NUL-terminated buffer and
 * its length, or NULL with *rc = OMS_EINVAL (bad input) or OMS_ENOMEM. */
static unsigned char *b64url_decode(const char *s, size_t n, size_t *out_len, int *rc)
{
    *rc = OMS_EINVAL;
    if (n == 0 || n % 4 == 1)
        return NULL;
    unsigned char *out = malloc(n / 4 * 3 + 3);
    if (!out) {
        *rc = OMS_ENOMEM;
        return NULL;
    }
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64url_value((unsigned char)s[i]);
        if (v < 0)
            goto bad;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (acc != 0) /* leftover bits must be zero in a canonical encoding */
        goto bad;
    out[o] = '\0';
    *out_len = o;
    *rc = 0;
    return out;
bad:
    free(out);
    return NULL;
}

/* Decode one segment and parse it as a JSON object (duplicate keys
 * refused, so a header cannot say "alg" twice). NULL with *rc set. */
static json_t *segment_object(const char *s, size_t n, int *rc)
{
    size_t len = 0;
    unsigned char *raw = b64url_decode(s, n, &len, rc);
    if (!raw)
        return NULL;
    json_error_t jerr;
    json_t *obj = json_loadb((const char *)raw, len, JSON_REJECT_DUPLICATES, &jerr);
    free(raw);
    if (!obj || !json_is_object(obj)) {
        json_decref(obj);
        *rc = OMS_EINVAL;
        return NULL;
    }
    *rc = 0;
    return obj;
}

/* True when s is short and plain enough to quote back in an error. */
static bool quotable(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 16)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '+'))
            return false;
    }
    return true;
}

/* A JSON number as whole seconds; reals are truncated. */
static bool json_seconds(const json_t *v, int64_t *out)
{
    if (json_is_integer(v)) {
        *out = (int64_t)json_integer_value(v);
        return true;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (!(d > -9.0e18 && d < 9.0e18))
            return false;
        *out = (int64_t)d;
        return true;
    }
    return false;
}

/* A string of 1..19 ASCII digits that fits in int64_t. */
static bool parse_digits(const char *s, int64_t *out)
{
    if (!s || !*s)
        return false;
    int64_t v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return false;
        int d = *p - '0';
        if (v > (INT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

/* Copy at most dstlen-1 bytes without splitting a UTF-8 sequence. */
static void copy_utf8(char *dst, size_t dstlen, const char *src)
{
    size_t n = strlen(src);
    if (n >= dstlen) {
        n = dstlen - 1;
        /* Back off over continuation bytes to the start of a character. */
        while (n > 0 && ((unsigned char)src[n] & 0xC0) == 0x80)
            n--;
    }
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* now > t + leeway, without overflow for any int64 values. */
static bool past(int64_t now, int64_t t, int64_t leeway)
{
    return now > t && (uint64_t)now - (uint64_t)t > (uint64_t)leeway;
}

bool oms_auth_expired(int64_t exp, int64_t now_s, int64_t leeway_s)
{
    return past(now_s, exp, leeway_s);
}

int64_t oms_auth_expires_in(int64_t exp, int64_t now_s, int64_t leeway_s)
{
    if (past(now_s, exp, leeway_s))
        return 0;
    /* exp + leeway - now, in unsigned arithmetic: exp may be near INT64_MAX */
    uint64_t left = (uint64_t)exp + (uint64_t)leeway_s - (uint64_t)now_s;
    if (exp >= now_s && (uint64_t)exp - (uint64_t)now_s >= OMS_AUTH_RECHECK_S)
        return OMS_AUTH_RECHECK_S;
    return left > OMS_AUTH_RECHECK_S ? OMS_AUTH_RECHECK_S : (int64_t)left;
}

/* ---- construction ----------------------------------------------------- */

oms_auth *oms_auth_new(const oms_auth_opts *opts, char *errbuf, size_t errlen)
{
    if (!opts) {
        oms_errf(errbuf, errlen, "no JWT options given");
        return NULL;
    }
    if (!opts->algorithm || !*opts->algorithm) {
        oms_errf(errbuf, errlen, "no JWT algorithm configured (want HS256, RS256 or ES256)");
        return NULL;
    }
    int ai = -1;
    for (size_t i = 0; i < OMS_ARRAY_LEN(k_algs); i++)
        if (strcasecmp(opts->algorithm, k_algs[i].name) == 0)
            ai = (int)i;
    if (ai < 0) {
        oms_errf(errbuf, errlen, "unsupported JWT algorithm '%.32s' (want HS256, RS256 or ES256)",
                 opts->algorithm);
        return NULL;
    }
    jwt_alg_t alg = k_algs[ai].alg;
    const char *name = k_algs[ai].name;
    if (!opts->key || opts->key_len == 0) {
        oms_errf(errbuf, errlen, "%s key is empty", name);
        return NULL;
    }
    if (opts->key_len > MAX_KEY_LEN) {
        oms_errf(errbuf, errlen, "%s key is too long (%zu bytes)", name, opts->key_len);
        return NULL;
    }
    if (alg == JWT_ALG_HS256) {
        /* A PEM key as an HMAC secret is the key-confusion setup itself:
         * anyone holding the public key could mint tokens. */
        if (contains(opts->key, opts->key_len, "-----BEGIN")) {
            oms_errf(errbuf, errlen,
                     "HS256 secret looks like a PEM key; use RS256 or ES256 for a public key");
            return NULL;
        }
    } else if (!contains(opts->key, opts->key_len, "-----BEGIN PUBLIC KEY-----")) {
        /* libjwt reads the verification key with PEM_read_bio_PUBKEY. */
        oms_errf(errbuf, errlen, "%s key is not a PEM public key ('-----BEGIN PUBLIC KEY-----')",
                 name);
        return NULL;
    }
    if (opts->leeway_s < 0) {
        oms_errf(errbuf, errlen, "JWT leeway must not be negative (got %d)", opts->leeway_s);
        return NULL;
    }

    bool nomem = false;
    oms_auth *a = calloc(1, sizeof *a);
    if (!a)
        goto oom;
    a->alg = alg;
    a->alg_name = name;
    a->leeway_s = opts->leeway_s;
    a->key = malloc(opts->key_len + 1);
    if (!a->key)
        goto oom;
    memcpy(a->key, opts->key, opts->key_len);
    a->key[opts->key_len] = '\0';
    a->key_len = opts->key_len;
    a->issuer = dup_nonempty(opts->issuer, &nomem);
    a->audience = dup_nonempty(opts->audience, &nomem);
    if (nomem)
        goto oom;
    return a;
oom:
    oms_auth_free(a);
    oms_errf(errbuf, errlen, "out of memory");
    return NULL;
}

void oms_auth_free(oms_auth *a)
{
    if (!a)
        return;
    if (a->key) {
        /* Best effort; the secret should not linger in freed memory. */
        volatile unsigned char *p = a->key;
        for (size_t i = 0; i < a->key_len; i++)
            p[i] = 0;
    }
    free(a->key);
    free(a->issuer);
    free(a->audience);
    free(a);
}

/* ---- verification ----------------------------------------------------- */

/* The header checks libjwt does not do: alg pinned, no "crit". */
static int check_header(const oms_auth *a, const char *seg, size_t n, char *errbuf, size_t errlen)
{
    int rc;
    json_t *hdr = segment_object(seg, n, &rc);
    if (!hdr) {
        if (rc == OMS_ENOMEM)
            oms_errf(errbuf, errlen, "out of memory");
        else
            oms_errf(errbuf, errlen, "malformed token (header is not base64url JSON object)");
        return rc;
    }
    rc = OMS_EINVAL;
    const json_t *alg = json_object_get(hdr, "alg");
    if (!alg) {
        oms_errf(errbuf, errlen, "malformed token (header has no algorithm)");
        goto out;
    }
    if (!json_is_string(alg)) {
        oms_errf(errbuf, errlen, "malformed token (header algorithm is not a string)");
        goto out;
    }
    const char *alg_s = json_string_value(alg);
    if (strcmp(alg_s, a->alg_name) != 0) {
        if (quotable(alg_s))
            oms_errf(errbuf, errlen, "token algorithm '%s' is not the configured '%s'", alg_s,
                     a->alg_name);
        else
            oms_errf(errbuf, errlen, "token algorithm is not the configured '%s'", a->alg_name);
        goto out;
    }
    if (json_object_get(hdr, "crit")) {
        /* RFC 7515 §4.1.11: we understand no extensions, so must refuse. */
        oms_errf(errbuf, errlen, "token header has unsupported critical extensions");
        goto out;
    }
    rc = 0;
out:
    json_decref(hdr);
    return rc;
}

/* exp/nbf/iss/aud, then role and user id, into *p. */
static int check_claims(const oms_auth *a, const json_t *c, int64_t now_s, oms_principal *p,
                        char *errbuf, size_t errlen)
{
    const json_t *v = json_object_get(c, "exp");
    if (!v) {
        oms_errf(errbuf, errlen, "token has no exp claim");
        return OMS_EINVAL;
    }
    if (!json_seconds(v, &p->exp)) {
        oms_errf(errbuf, errlen, "token exp claim is not a number");
        return OMS_EINVAL;
    }
    if (past(now_s, p->exp, a->leeway_s)) {
        char when[40];
        if (p->exp >= 0 && p->exp <= INT64_C(253402300799)) { /* through year 9999 */
            oms_iso8601_ms(p->exp * 1000, when, sizeof when);
            oms_errf(errbuf, errlen, "token expired at %s", when);
        } else {
            oms_errf(errbuf, errlen, "token expired");
        }
        return OMS_EEXPIRED;
    }

    v = json_object_get(c, "nbf");
    if (v) {
        int64_t nbf;
        if (!json_seconds(v, &nbf)) {
            oms_errf(errbuf, errlen, "token nbf claim is not a number");
            return OMS_EINVAL;
        }
        if (past(nbf, now_s, a->leeway_s)) {
            oms_errf(errbuf, errlen, "token not valid yet (nbf is in the future)");
            return OMS_EEXPIRED;
        }
    }

    if (a->issuer) {
        v = json_object_get(c, "iss");
        if (!v) {
            oms_errf(errbuf, errlen, "token has no issuer (iss)");
            return OMS_EINVAL;
        }
        if (!json_is_string(v) || strcmp(json_string_value(v), a->issuer) != 0) {
            oms_errf(errbuf, errlen, "token issuer (iss) does not match");
            return OMS_EINVAL;
        }
    }

    if (a->audience) {
        v = json_object_get(c, "aud");
        if (!v) {
            oms_errf(errbuf, errlen, "token has no audience (aud)");
            return OMS_EINVAL;
        }
        bool ok = false;
        if (json_is_string(v)) {
            ok = strcmp(json_string_value(v), a->audience) == 0;
        } else if (json_is_array(v)) {
            size_t i;
            const json_t *e;
            json_array_foreach(v, i, e)
            {
                if (json_is_string(e) && strcmp(json_string_value(e), a->audience) == 0)
                    ok = true;
            }
        }
        if (!ok) {
            oms_errf(errbuf, errlen, "token audience (aud) does not match");
            return OMS_EINVAL;
        }
    }

    v = json_object_get(c, "role");
    if (!v || json_is_null(v)) {
        oms_errf(errbuf, errlen, "token has no role claim");
        return OMS_EINVAL;
    }
    if (!json_is_string(v) || oms_role_parse(json_string_value(v), &p->role) != 0) {
        oms_errf(errbuf, errlen, "token role is not one of customer, staff, admin, service");
        return OMS_EINVAL;
    }

    /* sub: kept as text; a digit string (or a bare number) may be the user id. */
    int64_t sub_id = 0;
    v = json_object_get(c, "sub");
    if (v && !json_is_null(v)) {
        if (json_is_string(v)) {
            copy_utf8(p->sub, sizeof p->sub, json_string_value(v));
            if (!parse_digits(json_string_value(v), &sub_id))
                sub_id = 0;
        } else if (json_is_integer(v) && json_integer_value(v) >= 0) {
            sub_id = (int64_t)json_integer_value(v);
            snprintf(p->sub, sizeof p->sub, "%" PRId64, sub_id);
        } else {
            oms_errf(errbuf, errlen, "token sub claim is not a string");
            return OMS_EINVAL;
        }
    }

    v = json_object_get(c, "userId");
    if (v && !json_is_null(v)) {
        bool ok = false;
        if (json_is_integer(v)) {
            p->user_id = (int64_t)json_integer_value(v);
            ok = p->user_id >= 0;
        } else if (json_is_string(v)) {
            ok = parse_digits(json_string_value(v), &p->user_id);
        }
        if (!ok) {
            p->user_id = 0;
            oms_errf(errbuf, errlen, "token userId claim is not a non-negative integer");
            return OMS_EINVAL;
        }
    } else {
        p->user_id = sub_id;
    }

    if (p->user_id <= 0 && p->role != OMS_ROLE_SERVICE) {
        oms_errf(errbuf, errlen, "token has no user id (userId or numeric sub) for role '%s'",
                 oms_role_name(p->role));
        return OMS_EINVAL;
    }
    return 0;
}

int oms_auth_verify(const oms_auth *a, const char *token, int64_t now_s, oms_principal *out,
                    char *errbuf, size_t errlen)
{
    if (out)
        memset(out, 0, sizeof *out);
    if (!a) {
        oms_errf(errbuf, errlen, "token verification is not configured");
        return OMS_EINVAL;
    }
    if (!token || !*token) {
        oms_errf(errbuf, errlen, "missing token");
        return OMS_EINVAL;
    }
    size_t len = strnlen(token, OMS_AUTH_MAX_TOKEN_LEN + 1);
    if (len > OMS_AUTH_MAX_TOKEN_LEN) {
        oms_errf(errbuf, errlen, "token too long (more than %d bytes)", OMS_AUTH_MAX_TOKEN_LEN);
        return OMS_EINVAL;
    }

    /* header.payload.signature, exactly. */
    const char *dot1 = memchr(token, '.', len);
    const char *dot2 = dot1 ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token)) : NULL;
    if (!dot2 || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token))) {
        oms_errf(errbuf, errlen, "malformed token (expected three dot-separated parts)");
        return OMS_EINVAL;
    }
    int rc = check_header(a, token, (size_t)(dot1 - token), errbuf, errlen);
    if (rc)
        return rc;

    json_t *payload = segment_object(dot1 + 1, (size_t)(dot2 - dot1 - 1), &rc);
    if (!payload) {
        if (rc == OMS_ENOMEM)
            oms_errf(errbuf, errlen, "out of memory");
        else
            oms_errf(errbuf, errlen, "malformed token (payload is not base64url JSON object)");
        return rc;
    }
    json_decref(payload);
    if (dot2[1] == '\0') {
        oms_errf(errbuf, errlen, "token has no signature");
        return OMS_EINVAL;
    }

    jwt_t *jwt = NULL;
    char *claims_text = NULL;
    json_t *claims = NULL;
    oms_principal p;
    memset(&p, 0, sizeof p);

    int e = jwt_decode(&jwt, token, a->key, (int)a->key_len);
    if (e != 0) {
        jwt = NULL; /* libjwt frees it on failure */
        rc = e == ENOMEM ? OMS_ENOMEM : OMS_EINVAL;
        oms_errf(errbuf, errlen, "%s",
                 e == ENOMEM ? "out of memory" : "token signature is invalid");
        goto out;
    }
    /* Defence in depth: what libjwt verified with must be what we pinned. */
    if (jwt_get_alg(jwt) != a->alg) {
        rc = OMS_EINVAL;
        oms_errf(errbuf, errlen, "token algorithm is not the configured '%s'", a->alg_name);
        goto out;
    }
    claims_text = jwt_get_grants_json(jwt, NULL);
    if (!claims_text) {
        rc = OMS_ENOMEM;
        oms_errf(errbuf, errlen, "out of memory");
        goto out;
    }
    json_error_t jerr;
    claims = json_loads(claims_text, 0, &jerr);
    if (!claims || !json_is_object(claims)) {
        rc = OMS_EINVAL;
        oms_errf(errbuf, errlen, "malformed token (claims are not a JSON object)");
        goto out;
    }
    rc = check_claims(a, claims, now_s, &p, errbuf, errlen);
    if (rc == 0 && out)
        *out = p;
out:
    json_decref(claims);
    free(claims_text);
    jwt_free(jwt);
    return rc;
}

/* ---- minting ---------------------------------------------------------- */

char *oms_auth_mint_hs256(const unsigned char *secret, size_t secret_len, int64_t user_id,
                          oms_role role, int64_t ttl_s, int64_t now_s, const char *issuer,
                          const char *audience)
{
    if (!secret || secret_len == 0 || secret_len > MAX_KEY_LEN)
        return NULL;
    if ((unsigned)role >= OMS_ROLE__COUNT || user_id < 0 || user_id > LONG_MAX)
        return NULL;
    /* exp = now + ttl must fit in a long (libjwt's integer grants). */
    if (now_s < LONG_MIN || now_s > LONG_MAX || (ttl_s > 0 && now_s > LONG_MAX - ttl_s) ||
        (ttl_s < 0 && now_s < LONG_MIN - ttl_s))
        return NULL;
    int64_t exp = now_s + ttl_s;

    jwt_t *jwt = NULL;
    char *token = NULL;
    char sub[24];
    snprintf(sub, sizeof sub, "%" PRId64, user_id);
    if (jwt_new(&jwt) != 0)
        return NULL;
    if (jwt_add_grant(jwt, "sub", sub) || jwt_add_grant_int(jwt, "userId", (long)user_id) ||
        jwt_add_grant(jwt, "role", oms_role_name(role)) ||
        jwt_add_grant_int(jwt, "iat", (long)now_s) || jwt_add_grant_int(jwt, "exp", (long)exp))
        goto out;
    if (issuer && *issuer && jwt_add_grant(jwt, "iss", issuer))
        goto out;
    if (audience && *audience && jwt_add_grant(jwt, "aud", audience))
        goto out;
    if (jwt_set_alg(jwt, JWT_ALG_HS256, secret, (int)secret_len))
        goto out;
    token = jwt_encode_str(jwt);
out:
    jwt_free(jwt);
    return token;
}

oms_auth *oms_auth_new_from_file(const oms_auth_opts *opts, const char *public_key_file,
                                 char *errbuf, size_t errlen)
{
    if (!opts->algorithm || strcasecmp(opts->algorithm, "HS256") == 0)
        return oms_auth_new(opts, errbuf, errlen);
    const char *path = public_key_file ? public_key_file : "";
    FILE *f = fopen(path, "rb");
    char *pem = NULL;
    size_t len = 0;
    int err = 0;
    if (!f) {
        err = errno;
    } else {
        /* a public key is a few KB; anything past 1 MiB is not one */
        pem = malloc(1u << 20);
        if (!pem)
            err = ENOMEM;
        else
            len = fread(pem, 1, (1u << 20) - 1, f);
        if (pem && ferror(f))
            err = errno ? errno : EIO;
        fclose(f);
    }
    if (err) {
        oms_errf(errbuf, errlen, "cannot read auth.public_key_file '%s': %s", path, strerror(err));
        free(pem);
        return NULL;
    }
    pem[len] = '\0';
    oms_auth_opts o = *opts;
    o.key = (const unsigned char *)pem;
    o.key_len = len;
    oms_auth *a = oms_auth_new(&o, errbuf, errlen);
    free(pem);
    return a;
}
