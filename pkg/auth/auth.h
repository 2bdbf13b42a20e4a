/* auth.h — JWT verification and minting (libjwt), with the checks libjwt
 * leaves to us: the algorithm is pinned to the configured one (an HS256
 * token "signed" with an RSA public key must not pass), "alg: none" is
 * refused, exp is required and checked, nbf/iss/aud are checked.
 * Pure: no I/O, no globals. */
#ifndef OMS_AUTH_H
#define OMS_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/oms.h"

typedef enum {
    OMS_ROLE_CUSTOMER = 0,
    OMS_ROLE_STAFF,
    OMS_ROLE_ADMIN,
    OMS_ROLE_SERVICE,
    OMS_ROLE__COUNT
} oms_role;

/* "customer", "staff", "admin", "service" */
const char *oms_role_name(oms_role r);
/* Case-insensitive; 0 or OMS_EINVAL. */
int oms_role_parse(const char *s, oms_role *out);

/* Who a verified token speaks for. */
typedef struct oms_principal {
    int64_t user_id; /* from "userId" (number or digit string) or a numeric "sub"; 0 for service */
    oms_role role;   /* claim "role" */
    int64_t exp;     /* epoch seconds */
    char sub[128];   /* the "sub" claim as text ("" when absent) */
} oms_principal;

typedef struct oms_auth_opts {
    const char *algorithm;    /* "HS256" | "RS256" | "ES256" */
    const unsigned char *key; /* HS256: the secret; RS256/ES256: the PEM public key */
    size_t key_len;
    const char *issuer;   /* NULL or "": not checked */
    const char *audience; /* NULL or "": not checked ("aud" may be a string or an array) */
    int leeway_s;         /* clock skew allowed on exp/nbf, e.g. 5 */
} oms_auth_opts;

typedef struct oms_auth oms_auth;

/* Copies the key. NULL + errbuf on a bad algorithm or an empty key.
 * (The "secret of at least 32 bytes" rule is omsd's, not this module's.)
 * The algorithm name is matched case-insensitively. Also refused: an HS256
 * secret containing "-----BEGIN" (a PEM key used as an HMAC secret is the
 * key-confusion setup), an RS256/ES256 key without "-----BEGIN PUBLIC
 * KEY-----", and a negative leeway. */
oms_auth *oms_auth_new(const oms_auth_opts *opts, char *errbuf, size_t errlen);

/* The same, with an RS256/ES256 key read from a PEM file (opts->key is
 * ignored for those; HS256 uses opts->key as given). The error names the
 * file ("cannot read auth.public_key_file 'F': why"). */
oms_auth *oms_auth_new_from_file(const oms_auth_opts *opts, const char *public_key_file,
                                 char *errbuf, size_t errlen);
void oms_auth_free(oms_auth *a);

/* Tokens longer than this are refused without being parsed. */
#define OMS_AUTH_MAX_TOKEN_LEN 16384

/* Verify token at time now_s (epoch seconds). Returns 0 and *out, or:
 *   OMS_EINVAL   malformed (not header.payload.signature, bad base64url,
 *                not JSON objects, too long), bad signature, wrong or "none"
 *                algorithm, "crit" header, missing or non-numeric exp, bad
 *                iss/aud, missing or unknown role, bad userId, no user id for
 *                a non-service role
 *   OMS_EEXPIRED now > exp + leeway (errbuf "token expired at ..."), or
 *                nbf > now + leeway (errbuf "token not valid yet ...")
 * The header's "alg" is checked before libjwt sees the token and must equal
 * the configured algorithm exactly. User id: "userId" (integer or digit
 * string, >= 0; JSON null counts as absent), else "sub" when it is a digit
 * string; it must be > 0 unless the role is service. *out is zeroed first
 * and filled only on success; out may be NULL.
 * errbuf gets a short reason fit for an HTTP 401 body (never the token). */
int oms_auth_verify(const oms_auth *a, const char *token, int64_t now_s, oms_principal *out,
                    char *errbuf, size_t errlen);

/* Seconds from now_s until a token that expires at exp stops being valid
 * (exp + leeway_s), clamped to 0..OMS_AUTH_RECHECK_S: a timer armed from it
 * looks again after a day at most, and no exp a client can put in a token
 * (up to INT64_MAX) overflows a timer. Pair with oms_auth_expired(). */
#define OMS_AUTH_RECHECK_S 86400
int64_t oms_auth_expires_in(int64_t exp, int64_t now_s, int64_t leeway_s);
/* now_s > exp + leeway_s, without overflow. */
bool oms_auth_expired(int64_t exp, int64_t now_s, int64_t leeway_s);

/* Mint an HS256 token {sub, userId, role, iat, exp = now_s + ttl_s, iss?, aud?}
 * for dev tokens, tests and `omsctl token`. sub is the decimal user id;
 * iss/aud are left out when NULL or "". Returns a malloc'd string (caller
 * frees) or NULL on a NULL/empty secret, negative user id, bad role or
 * overflow. */
char *oms_auth_mint_hs256(const unsigned char *secret, size_t secret_len, int64_t user_id,
                          oms_role role, int64_t ttl_s, int64_t now_s, const char *issuer,
                          const char *audience);

#endif
