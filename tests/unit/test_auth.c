/* test_auth.c — pkg/auth: JWT verification (HS256, RS256, ES256), the
 * checks libjwt leaves to us (alg pinning, "none", key confusion, exp, nbf,
 * iss, aud, role, user id), robustness on junk, and minting.
 * RSA and EC key pairs are generated once per run with OpenSSL 3. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jwt.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "auth/auth.h"
#include "common/oms.h"

#define NOW INT64_C(1800000000)
#define SECRET "test-secret-0123456789-abcdefghijklmnop"
#define OTHER_SECRET "another-secret-0123456789-abcdefghijkl"

/* PEM texts of the key pairs, made in keys_setup. */
typedef struct {
    char *rsa_priv, *rsa_pub;
    char *rsa2_priv, *rsa2_pub;
    char *ec_priv, *ec_pub;
    char *ec2_priv, *ec2_pub;
} test_keys;

static test_keys g_keys;

/* ---- helpers ------------------------------------------------------------ */

static char *bio_text(BIO *bio)
{
    char *data = NULL;
    long n = BIO_get_mem_data(bio, &data);
    assert_true(n > 0);
    char *s = malloc((size_t)n + 1);
    assert_non_null(s);
    memcpy(s, data, (size_t)n);
    s[n] = '\0';
    return s;
}

static void pem_pair(EVP_PKEY *pkey, char **priv, char **pub)
{
    assert_non_null(pkey);
    BIO *b = BIO_new(BIO_s_mem());
    assert_non_null(b);
    assert_int_equal(PEM_write_bio_PrivateKey(b, pkey, NULL, NULL, 0, NULL, NULL), 1);
    *priv = bio_text(b);
    BIO_free(b);
    b = BIO_new(BIO_s_mem());
    assert_non_null(b);
    assert_int_equal(PEM_write_bio_PUBKEY(b, pkey), 1);
    *pub = bio_text(b);
    BIO_free(b);
    EVP_PKEY_free(pkey);
}

static int keys_setup(void **state)
{
    pem_pair(EVP_RSA_gen(2048), &g_keys.rsa_priv, &g_keys.rsa_pub);
    pem_pair(EVP_RSA_gen(2048), &g_keys.rsa2_priv, &g_keys.rsa2_pub);
    pem_pair(EVP_EC_gen("P-256"), &g_keys.ec_priv, &g_keys.ec_pub);
    pem_pair(EVP_EC_gen("P-256"), &g_keys.ec2_priv, &g_keys.ec2_pub);
    return 0;
}

static int keys_teardown(void **state)
{
    char **all[] = {&g_keys.rsa_priv,  &g_keys.rsa_pub, &g_keys.rsa2_priv, &g_keys.rsa2_pub,
                    &g_keys.ec_priv,   &g_keys.ec_pub,  &g_keys.ec2_priv,  &g_keys.ec2_pub};
    for (size_t i = 0; i < OMS_ARRAY_LEN(all); i++) {
        free(*all[i]);
        *all[i] = NULL;
    }
    return 0;
}

static char *b64url(const void *data, size_t n)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const unsigned char *p = data;
    char *out = malloc(n / 3 * 4 + 5);
    assert_non_null(out);
    size_t o = 0, i = 0;
    for (; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        out[o++] = tbl[v >> 18];
        out[o++] = tbl[(v >> 12) & 63];
        out[o++] = tbl[(v >> 6) & 63];
        out[o++] = tbl[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        out[o++] = tbl[v >> 18];
        out[o++] = tbl[(v >> 12) & 63];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        out[o++] = tbl[v >> 18];
        out[o++] = tbl[(v >> 12) & 63];
        out[o++] = tbl[(v >> 6) & 63];
    }
    out[o] = '\0';
    return out;
}

/* b64url(header) "." b64url(payload) "." sig, by hand (caller frees). */
static char *hand_token(const char *header, const char *payload, const char *sig)
{
    char *h = b64url(header, strlen(header));
    char *p = b64url(payload, strlen(payload));
    size_t n = strlen(h) + strlen(p) + strlen(sig) + 3;
    char *t = malloc(n);
    assert_non_null(t);
    snprintf(t, n, "%s.%s.%s", h, p, sig);
    free(h);
    free(p);
    return t;
}

/* A token signed by libjwt with alg and key over the given claims JSON. */
static char *signed_token(jwt_alg_t alg, const void *key, size_t key_len, const char *claims)
{
    jwt_t *j = NULL;
    assert_int_equal(jwt_new(&j), 0);
    assert_int_equal(jwt_add_grants_json(j, claims), 0);
    assert_int_equal(jwt_set_alg(j, alg, key, (int)key_len), 0);
    char *t = jwt_encode_str(j);
    assert_non_null(t);
    jwt_free(j);
    return t;
}

static char *hs_token(const char *claims)
{
    return signed_token(JWT_ALG_HS256, SECRET, strlen(SECRET), claims);
}

static oms_auth *new_auth(const char *alg, const char *key, const char *iss, const char *aud,
                          int leeway)
{
    char err[256] = "";
    oms_auth_opts o = {.algorithm = alg,
                       .key = (const unsigned char *)key,
                       .key_len = strlen(key),
                       .issuer = iss,
                       .audience = aud,
                       .leeway_s = leeway};
    oms_auth *a = oms_auth_new(&o, err, sizeof err);
    if (!a)
        fail_msg("oms_auth_new(%s): %s", alg, err);
    return a;
}

static oms_auth *hs_auth(void)
{
    return new_auth("HS256", SECRET, NULL, NULL, 5);
}

/* Verify and expect rc with a message containing want (and never the
 * token's payload or signature). Returns nothing; asserts. */
static void expect_fail(const oms_auth *a, const char *tok, int want_rc, const char *want)
{
    char err[256];
    memset(err, 'x', sizeof err);
    err[sizeof err - 1] = '\0';
    oms_principal p;
    memset(&p, 0x5a, sizeof p);
    int rc = oms_auth_verify(a, tok, NOW, &p, err, sizeof err);
    if (rc != want_rc || !strstr(err, want))
        fail_msg("rc %d (want %d), err \"%s\" (want \"%s\")", rc, want_rc, err, want);
    /* *out is zeroed on failure. */
    assert_int_equal(p.user_id, 0);
    assert_int_equal(p.exp, 0);
    assert_string_equal(p.sub, "");
    /* The token text never appears in the message. */
    if (tok) {
        const char *dot = strrchr(tok, '.');
        if (dot && strlen(dot + 1) >= 8)
            assert_null(strstr(err, dot + 1));
        const char *first = strchr(tok, '.');
        if (first && dot && dot - first > 9) {
            char seg[9];
            memcpy(seg, first + 1, 8);
            seg[8] = '\0';
            assert_null(strstr(err, seg));
        }
    }
}

static void expect_ok(const oms_auth *a, const char *tok, oms_principal *p)
{
    char err[256] = "";
    int rc = oms_auth_verify(a, tok, NOW, p, err, sizeof err);
    if (rc != 0)
        fail_msg("verify failed: rc %d, %s", rc, err);
}

/* ---- roles and construction -------------------------------------------- */

static void test_role_name_parse(void **state)
{
    const char *names[] = {"customer", "staff", "admin", "service"};
    for (int r = 0; r < OMS_ROLE__COUNT; r++) {
        assert_string_equal(oms_role_name((oms_role)r), names[r]);
        oms_role got = OMS_ROLE__COUNT;
        assert_int_equal(oms_role_parse(names[r], &got), 0);
        assert_int_equal(got, r);
    }
    oms_role got;
    assert_int_equal(oms_role_parse("ADMIN", &got), 0);
    assert_int_equal(got, OMS_ROLE_ADMIN);
    assert_int_equal(oms_role_parse("Service", &got), 0);
    assert_int_equal(got, OMS_ROLE_SERVICE);
    assert_int_equal(oms_role_parse("root", &got), OMS_EINVAL);
    assert_int_equal(oms_role_parse("", &got), OMS_EINVAL);
    assert_int_equal(oms_role_parse("admin ", &got), OMS_EINVAL);
    assert_int_equal(oms_role_parse(NULL, &got), OMS_EINVAL);
    assert_int_equal(oms_role_parse("admin", NULL), OMS_EINVAL);
    assert_string_equal(oms_role_name(OMS_ROLE__COUNT), "unknown");
    assert_string_equal(oms_role_name((oms_role)-1), "unknown");
}

static void expect_new_fails(const oms_auth_opts *o, const char *want)
{
    char err[256] = "";
    oms_auth *a = oms_auth_new(o, err, sizeof err);
    if (a || !strstr(err, want)) {
        oms_auth_free(a);
        fail_msg("oms_auth_new: err \"%s\" (want \"%s\")", err, want);
    }
}

static void test_new_errors(void **state)
{
    const unsigned char *k = (const unsigned char *)SECRET;
    size_t kl = strlen(SECRET);
    expect_new_fails(NULL, "no JWT options");
    expect_new_fails(&(oms_auth_opts){.algorithm = NULL, .key = k, .key_len = kl}, "algorithm");
    expect_new_fails(&(oms_auth_opts){.algorithm = "", .key = k, .key_len = kl}, "algorithm");
    expect_new_fails(&(oms_auth_opts){.algorithm = "none", .key = k, .key_len = kl},
                     "unsupported JWT algorithm 'none'");
    expect_new_fails(&(oms_auth_opts){.algorithm = "HS512", .key = k, .key_len = kl},
                     "unsupported JWT algorithm 'HS512'");
    expect_new_fails(&(oms_auth_opts){.algorithm = "HS256", .key = k, .key_len = 0}, "empty");
    expect_new_fails(&(oms_auth_opts){.algorithm = "HS256", .key = NULL, .key_len = 10}, "empty");
    expect_new_fails(&(oms_auth_opts){.algorithm = "RS256", .key = NULL, .key_len = 0},
                     "RS256 key is empty");
    expect_new_fails(&(oms_auth_opts){.algorithm = "RS256", .key = k, .key_len = kl},
                     "not a PEM public key");
    /* A private key is not what verification needs. */
    expect_new_fails(&(oms_auth_opts){.algorithm = "ES256",
                                      .key = (const unsigned char *)g_keys.ec_priv,
                                      .key_len = strlen(g_keys.ec_priv)},
                     "not a PEM public key");
    /* The key-confusion setup itself: a public key PEM as an HMAC secret. */
    expect_new_fails(&(oms_auth_opts){.algorithm = "HS256",
                                      .key = (const unsigned char *)g_keys.rsa_pub,
                                      .key_len = strlen(g_keys.rsa_pub)},
                     "looks like a PEM key");
    expect_new_fails(
        &(oms_auth_opts){.algorithm = "HS256", .key = k, .key_len = kl, .leeway_s = -1},
                     "leeway");
    /* NULL errbuf is fine. */
    assert_null(oms_auth_new(NULL, NULL, 0));

    /* The algorithm name is case-insensitive; empty iss/aud mean unchecked. */
    oms_auth *a = new_auth("hs256", SECRET, "", "", 0);
    char *tok = hs_token("{\"sub\":\"7\",\"role\":\"staff\",\"exp\":1800000100}");
    oms_principal p;
    expect_ok(a, tok, &p);
    assert_int_equal(p.user_id, 7);
    free(tok);
    oms_auth_free(a);
    oms_auth_free(NULL);
}

static void test_new_from_file(void **state)
{
    (void)state;
    char err[256] = "";
    oms_auth_opts o = {.algorithm = "RS256", .leeway_s = 5};
    assert_null(oms_auth_new_from_file(&o, "/nonexistent/oms-key.pem", err, sizeof err));
    assert_non_null(strstr(err, "cannot read auth.public_key_file '/nonexistent/oms-key.pem'"));
    char path[] = "/tmp/oms-test-auth-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, g_keys.rsa_pub, strlen(g_keys.rsa_pub)), (ssize_t)strlen(g_keys.rsa_pub));
    close(fd);
    oms_auth *a = oms_auth_new_from_file(&o, path, err, sizeof err);
    assert_non_null(a);
    oms_auth_free(a);
    /* a file that is not a public key is refused by the same rules */
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(g_keys.rsa_priv, f);
    fclose(f);
    assert_null(oms_auth_new_from_file(&o, path, err, sizeof err));
    assert_non_null(strstr(err, "not a PEM public key"));
    unlink(path);
    /* HS256 takes the secret given and ignores the file */
    oms_auth_opts h = {.algorithm = "HS256", .key = (const unsigned char *)SECRET,
                       .key_len = strlen(SECRET)};
    a = oms_auth_new_from_file(&h, "/nonexistent", err, sizeof err);
    assert_non_null(a);
    oms_auth_free(a);
}

/* ---- HS256 -------------------------------------------------------------- */

static void test_hs256_each_role(void **state)
{
    oms_auth *a = hs_auth();
    static const struct {
        const char *claims;
        oms_role role;
        int64_t uid;
        const char *sub;
    } cases[] = {
        {"{\"sub\":\"42\",\"userId\":42,\"role\":\"customer\",\"exp\":1800000600,"
         "\"iat\":1799999000}",
         OMS_ROLE_CUSTOMER, 42, "42"},
        {"{\"sub\":\"7\",\"userId\":7,\"role\":\"staff\",\"exp\":1800000600}", OMS_ROLE_STAFF, 7,
         "7"},
        {"{\"sub\":\"1\",\"userId\":1,\"role\":\"admin\",\"exp\":1800000600}", OMS_ROLE_ADMIN, 1,
         "1"},
        {"{\"sub\":\"payments-svc\",\"role\":\"service\",\"exp\":1800000600}", OMS_ROLE_SERVICE, 0,
         "payments-svc"},
        {"{\"sub\":\"9\",\"role\":\"Admin\",\"exp\":1800000600.9}", OMS_ROLE_ADMIN, 9, "9"},
    };
    for (size_t i = 0; i < OMS_ARRAY_LEN(cases); i++) {
        char *tok = hs_token(cases[i].claims);
        oms_principal p;
        expect_ok(a, tok, &p);
        assert_int_equal(p.role, cases[i].role);
        assert_int_equal(p.user_id, cases[i].uid);
        assert_int_equal(p.exp, 1800000600);
        assert_string_equal(p.sub, cases[i].sub);
        /* out may be NULL, errbuf may be NULL. */
        assert_int_equal(oms_auth_verify(a, tok, NOW, NULL, NULL, 0), 0);
        free(tok);
    }
    oms_auth_free(a);
}

static void test_garbage_tokens(void **state)
{
    oms_auth *a = hs_auth();
#define claims "{\"sub\":\"1\",\"role\":\"admin\",\"exp\":1800000600}"
    expect_fail(a, NULL, OMS_EINVAL, "missing token");
    expect_fail(a, "", OMS_EINVAL, "missing token");
    expect_fail(a, "abc", OMS_EINVAL, "three dot-separated parts");
    expect_fail(a, "a.b", OMS_EINVAL, "three dot-separated parts");
    expect_fail(a, "a.b.c.d", OMS_EINVAL, "three dot-separated parts");
    expect_fail(a, "...", OMS_EINVAL, "three dot-separated parts");
    expect_fail(a, "..", OMS_EINVAL, "header");
    expect_fail(a, "Bearer x.y.z", OMS_EINVAL, "header");
    expect_fail(a, "!!!!.eyJ9.sig", OMS_EINVAL, "header");
    expect_fail(a, "eyJhbGciOiJIUzI1NiJ9=.eyJ9.sig", OMS_EINVAL, "header"); /* padding */
    expect_fail(a, "eyJhbGciOiJIUzI1NiJ9.x.sig", OMS_EINVAL, "payload");      /* bad length */

    static const struct {
        const char *header, *payload, *sig, *want;
    } cases[] = {
        {"not json", "{}", "c2ln", "header is not base64url JSON"},
        {"[\"HS256\"]", "{}", "c2ln", "header is not base64url JSON object"},
        {"{\"typ\":\"JWT\"}", "{}", "c2ln", "header has no algorithm"},
        {"{\"alg\":256}", "{}", "c2ln", "algorithm is not a string"},
        {"{\"alg\":\"HS512\"}", "{}", "c2ln",
         "token algorithm 'HS512' is not the configured 'HS256'"},
        {"{\"alg\":\"hs256\"}", "{}", "c2ln", "token algorithm 'hs256' is not the configured"},
        {"{\"alg\":\"HS256 \\\" evil <script>\"}", "{}", "c2ln",
         "token algorithm is not the configured 'HS256'"},
        {"{\"alg\":\"HS256\",\"alg\":\"none\"}", "{}", "c2ln", "header is not base64url JSON"},
        {"{\"alg\":\"HS256\",\"crit\":[\"b64\"],\"b64\":false}", "{}", "c2ln", "critical"},
        {"{\"alg\":\"HS256\"}", "not json", "c2ln", "payload is not base64url JSON"},
        {"{\"alg\":\"HS256\"}", "[1,2]", "c2ln", "payload is not base64url JSON object"},
        {"{\"alg\":\"HS256\"}", "{\"a\":1,\"a\":2}", "c2ln", "payload"},
        {"{\"alg\":\"HS256\",\"typ\":\"JWT\"}", claims, "", "no signature"},
        {"{\"alg\":\"HS256\",\"typ\":\"JWT\"}", claims, "c2lnbmF0dXJlLWZha2U",
         "signature is invalid"},
        {"{\"alg\":\"HS256\",\"typ\":\"JWT\"}", claims, "%%%%", "signature is invalid"},
    };
    for (size_t i = 0; i < OMS_ARRAY_LEN(cases); i++) {
        char *tok = hand_token(cases[i].header, cases[i].payload, cases[i].sig);
        expect_fail(a, tok, OMS_EINVAL, cases[i].want);
        free(tok);
    }

    /* NULL auth, and a tiny or NULL errbuf. */
    char *tok = hs_token(claims);
    expect_fail(NULL, tok, OMS_EINVAL, "not configured");
    char small[8];
    assert_int_equal(oms_auth_verify(a, "junk", NOW, NULL, small, sizeof small), OMS_EINVAL);
    assert_int_equal(strlen(small), sizeof small - 1);
    assert_int_equal(oms_auth_verify(a, "junk", NOW, NULL, NULL, 0), OMS_EINVAL);
    free(tok);
    oms_auth_free(a);
#undef claims
}

static void test_wrong_signature(void **state)
{
    oms_auth *a = hs_auth();
    char *tok = signed_token(JWT_ALG_HS256, OTHER_SECRET, strlen(OTHER_SECRET),
                             "{\"sub\":\"1\",\"role\":\"admin\",\"exp\":1800000600}");
    expect_fail(a, tok, OMS_EINVAL, "signature is invalid");
    free(tok);
    oms_auth_free(a);
}

static void test_tampered_payload(void **state)
{
    oms_auth *a = hs_auth();
    char *tok = hs_token("{\"sub\":\"42\",\"role\":\"customer\",\"exp\":1800000600}");
    expect_ok(a, tok, &(oms_principal){0});
    /* Swap the payload for one that makes us admin; keep header and signature. */
    char *evil = b64url("{\"sub\":\"42\",\"role\":\"admin\",\"exp\":1800000600}",
                        strlen("{\"sub\":\"42\",\"role\":\"admin\",\"exp\":1800000600}"));
    const char *d1 = strchr(tok, '.'), *d2 = strrchr(tok, '.');
    size_t n = (size_t)(d1 - tok) + 1 + strlen(evil) + strlen(d2) + 1;
    char *t2 = malloc(n);
    assert_non_null(t2);
    snprintf(t2, n, "%.*s.%s%s", (int)(d1 - tok), tok, evil, d2);
    expect_fail(a, t2, OMS_EINVAL, "signature is invalid");
    /* One flipped character in the signature. */
    size_t L = strlen(tok);
    tok[L - 2] = tok[L - 2] == 'A' ? 'B' : 'A';
    expect_fail(a, tok, OMS_EINVAL, "signature is invalid");
    free(t2);
    free(evil);
    free(tok);
    oms_auth_free(a);
}

/* ---- time claims -------------------------------------------------------- */

static void test_expired_and_leeway(void **state)
{
    oms_auth *a = hs_auth(); /* leeway 5 */
    char *tok = hs_token("{\"sub\":\"1\",\"role\":\"admin\",\"exp\":1799999995}"); /* now - 5 */
    oms_principal p;
    expect_ok(a, tok, &p);
    assert_int_equal(p.exp, 1799999995);
    free(tok);
    tok = hs_token("{\"sub\":\"1\",\"role\":\"admin\",\"exp\":1799999994}"); /* now - 6 */
    expect_fail(a, tok, OMS_EEXPIRED, "token expired at 2027-01-15T07:59:54");
    free(tok);
    /* Absurd values do not overflow. */
    tok = hs_token("{\"sub\":\"1\",\"role\":\"admin\",\"exp\":-9223372036854775807}");
    expect_fail(a, tok, OMS_EEXPIRED, "token expired");
    free(tok);
    tok = hs_token("{\"sub\":\"1\",\"role\":\"admin\",\"exp\":9223372036854775807}");
    expect_ok(a, tok, &p);
    free(tok);
    oms_auth_free(a);

    a = new_auth("HS256", SECRET, NULL, NULL, 0);
    tok = hs_token("{\"sub\":\"1\",\"role\":\"admin\",\"exp\":1800000000}"); /* == now */
    expect_ok(a, tok, &p);
    free(tok);
    tok = hs_token("{\"sub\":\"1\",\"role\":\"admin\",\"exp\":1799999999}");
    expect_fail(a, tok, OMS_EEXPIRED, "expired");
    free(tok);
    oms_auth_free(a);
}

static void test_nbf(void **state)
{
    oms_auth *a = hs_auth(); /* leeway 5 */
    char *tok =
        hs_token("{\"sub\":\"1\",\"role\":\"admin\",\"exp\":1800000600,\"nbf\":1800000060}");
    expect_fail(a, tok, OMS_EEXPIRED, "not valid yet");
    free(tok);
    tok = hs_token("{\"sub\":\"1\",\"role\":\"admin\",\"exp\":1800000600,\"nbf\":1800000005}");
    expect_ok(a, tok, &(oms_principal){0});
    free(tok);
    tok = hs_token("{\"sub\":\"1\",\"role\":\"admin\",\"exp\":1800000600,\"nbf\":1799990000}");
    expect_ok(a, tok, &(oms_principal){0});
    free(tok);
    tok = hs_token("{\"sub\":\"1\",\"role\":\"admin\",\"exp\":1800000600,\"nbf\":\"soon\"}");
    expect_fail(a, tok, OMS_EINVAL, "nbf claim is not a number");
    free(tok);
    tok = hs_token(
        "{\"sub\":\"1\",\"role\":\"admin\",\"exp\":1800000600,\"nbf\":9223372036854775807}");
    expect_fail(a, tok, OMS_EEXPIRED, "not valid yet");
    free(tok);
    oms_auth_free(a);
}

static void test_missing_exp(void **state)
{
    oms_auth *a = hs_auth();
    char *tok = hs_token("{\"sub\":\"1\",\"role\":\"admin\"}");
    expect_fail(a, tok, OMS_EINVAL, "no exp claim");
    free(tok);
    tok = hs_token("{\"sub\":\"1\",\"role\":\"admin\",\"exp\":\"1800000600\"}");
    expect_fail(a, tok, OMS_EINVAL, "exp claim is not a number");
    free(tok);
    tok = hs_token("{\"sub\":\"1\",\"role\":\"admin\",\"exp\":null}");
    expect_fail(a, tok, OMS_EINVAL, "exp claim is not a number");
    free(tok);
    tok = hs_token("{\"sub\":\"1\",\"role\":\"admin\",\"exp\":1e300}");
    expect_fail(a, tok, OMS_EINVAL, "exp claim is not a number");
    free(tok);
    oms_auth_free(a);
}

/* ---- role and user id --------------------------------------------------- */

static void test_role_claim(void **state)
{
    oms_auth *a = hs_auth();
    char *tok = hs_token("{\"sub\":\"1\",\"exp\":1800000600}");
    expect_fail(a, tok, OMS_EINVAL, "no role claim");
    free(tok);
    tok = hs_token("{\"sub\":\"1\",\"role\":null,\"exp\":1800000600}");
    expect_fail(a, tok, OMS_EINVAL, "no role claim");
    free(tok);
    tok = hs_token("{\"sub\":\"1\",\"role\":\"superuser\",\"exp\":1800000600}");
    expect_fail(a, tok, OMS_EINVAL, "role is not one of customer, staff, admin, service");
    free(tok);
    tok = hs_token("{\"sub\":\"1\",\"role\":[\"admin\"],\"exp\":1800000600}");
    expect_fail(a, tok, OMS_EINVAL, "role is not one of");
    free(tok);
    tok = hs_token("{\"sub\":\"1\",\"role\":\"STAFF\",\"exp\":1800000600}");
    oms_principal p;
    expect_ok(a, tok, &p);
    assert_int_equal(p.role, OMS_ROLE_STAFF);
    free(tok);
    oms_auth_free(a);
}

static void test_user_id_rules(void **state)
{
    oms_auth *a = hs_auth();
    static const struct {
        const char *claims, *want;
    } bad[] = {
        {"{\"role\":\"customer\",\"exp\":1800000600}", "no user id"},
        {"{\"sub\":\"alice\",\"role\":\"customer\",\"exp\":1800000600}", "no user id"},
        {"{\"sub\":\"0\",\"role\":\"staff\",\"exp\":1800000600}", "no user id"},
        {"{\"userId\":0,\"role\":\"admin\",\"exp\":1800000600}", "for role 'admin'"},
        {"{\"userId\":-5,\"role\":\"customer\",\"exp\":1800000600}", "userId claim"},
        {"{\"userId\":\"12a\",\"role\":\"customer\",\"exp\":1800000600}", "userId claim"},
        {"{\"userId\":\"-12\",\"role\":\"customer\",\"exp\":1800000600}", "userId claim"},
        {"{\"userId\":\"\",\"role\":\"customer\",\"exp\":1800000600}", "userId claim"},
        {"{\"userId\":\"99999999999999999999\",\"role\":\"customer\",\"exp\":1800000600}",
         "userId claim"},
        {"{\"userId\":4.5,\"role\":\"customer\",\"exp\":1800000600}", "userId claim"},
        {"{\"userId\":true,\"role\":\"customer\",\"exp\":1800000600}", "userId claim"},
        {"{\"sub\":{\"id\":1},\"role\":\"customer\",\"exp\":1800000600}",
         "sub claim is not a string"},
    };
    for (size_t i = 0; i < OMS_ARRAY_LEN(bad); i++) {
        char *tok = hs_token(bad[i].claims);
        expect_fail(a, tok, OMS_EINVAL, bad[i].want);
        free(tok);
    }

    /* A service needs no user id, but keeps one it is given. */
    oms_principal p;
    char *tok = hs_token("{\"role\":\"service\",\"exp\":1800000600}");
    expect_ok(a, tok, &p);
    assert_int_equal(p.user_id, 0);
    assert_string_equal(p.sub, "");
    free(tok);
    tok = hs_token("{\"userId\":null,\"sub\":\"0\",\"role\":\"service\",\"exp\":1800000600}");
    expect_ok(a, tok, &p);
    assert_int_equal(p.user_id, 0);
    free(tok);
    tok = hs_token("{\"userId\":77,\"role\":\"service\",\"exp\":1800000600}");
    expect_ok(a, tok, &p);
    assert_int_equal(p.user_id, 77);
    free(tok);
    oms_auth_free(a);
}

static void test_user_id_string(void **state)
{
    oms_auth *a = hs_auth();
    oms_principal p;
    char *tok = hs_token("{\"userId\":\"123\",\"sub\":\"user-123\",\"role\":\"customer\","
                         "\"exp\":1800000600}");
    expect_ok(a, tok, &p);
    assert_int_equal(p.user_id, 123);
    assert_string_equal(p.sub, "user-123");
    free(tok);
    tok = hs_token("{\"userId\":\"9223372036854775807\",\"role\":\"customer\",\"exp\":1800000600}");
    expect_ok(a, tok, &p);
    assert_int_equal(p.user_id, INT64_MAX);
    free(tok);
    /* userId wins over a numeric sub. */
    tok = hs_token("{\"userId\":5,\"sub\":\"6\",\"role\":\"customer\",\"exp\":1800000600}");
    expect_ok(a, tok, &p);
    assert_int_equal(p.user_id, 5);
    assert_string_equal(p.sub, "6");
    free(tok);
    oms_auth_free(a);
}

static void test_numeric_sub_fallback(void **state)
{
    oms_auth *a = hs_auth();
    oms_principal p;
    char *tok = hs_token("{\"sub\":\"314\",\"role\":\"customer\",\"exp\":1800000600}");
    expect_ok(a, tok, &p);
    assert_int_equal(p.user_id, 314);
    assert_string_equal(p.sub, "314");
    free(tok);
    /* A bare number as sub is tolerated. */
    tok = hs_token("{\"sub\":271,\"role\":\"staff\",\"exp\":1800000600}");
    expect_ok(a, tok, &p);
    assert_int_equal(p.user_id, 271);
    assert_string_equal(p.sub, "271");
    free(tok);
    /* A long sub is truncated, never on half a UTF-8 character. */
    char claims[1024];
    char sub[400] = "";
    for (int i = 0; i < 63; i++)
        strcat(sub, "\xc3\xa9" "a"); /* "éa": 3 bytes; byte 127 is inside an é */
    snprintf(claims, sizeof claims,
             "{\"sub\":\"%s\",\"role\":\"service\",\"exp\":1800000600}", sub);
    tok = hs_token(claims);
    expect_ok(a, tok, &p);
    assert_int_equal(strlen(p.sub), 126);
    assert_memory_equal(p.sub, sub, 126);
    assert_int_equal(p.user_id, 0);
    free(tok);
    oms_auth_free(a);
}

/* ---- iss / aud ---------------------------------------------------------- */

static void test_iss_aud(void **state)
{
    oms_auth *a = new_auth("HS256", SECRET, "https://auth.oms.test", "oms-gateway", 5);
    oms_principal p;
#define C(extra) "{\"sub\":\"1\",\"role\":\"admin\",\"exp\":1800000600" extra "}"
    static const char *ok[] = {
        C(",\"iss\":\"https://auth.oms.test\",\"aud\":\"oms-gateway\""),
        C(",\"iss\":\"https://auth.oms.test\",\"aud\":[\"other\",\"oms-gateway\"]"),
        C(",\"iss\":\"https://auth.oms.test\",\"aud\":[\"oms-gateway\"]"),
    };
    for (size_t i = 0; i < OMS_ARRAY_LEN(ok); i++) {
        char *tok = hs_token(ok[i]);
        expect_ok(a, tok, &p);
        free(tok);
    }
    static const struct {
        const char *claims, *want;
    } bad[] = {
        {C(",\"aud\":\"oms-gateway\""), "no issuer"},
        {C(",\"iss\":\"https://evil.test\",\"aud\":\"oms-gateway\""), "issuer (iss) does not"},
        {C(",\"iss\":[\"https://auth.oms.test\"],\"aud\":\"oms-gateway\""), "issuer"},
        {C(",\"iss\":\"https://auth.oms.test\""), "no audience"},
        {C(",\"iss\":\"https://auth.oms.test\",\"aud\":\"oms-gateway2\""), "aud) does not"},
        {C(",\"iss\":\"https://auth.oms.test\",\"aud\":[\"a\",\"b\"]"), "audience (aud) does not"},
        {C(",\"iss\":\"https://auth.oms.test\",\"aud\":[]"), "audience (aud) does not"},
        {C(",\"iss\":\"https://auth.oms.test\",\"aud\":42"), "audience (aud) does not"},
    };
    for (size_t i = 0; i < OMS_ARRAY_LEN(bad); i++) {
        char *tok = hs_token(bad[i].claims);
        expect_fail(a, tok, OMS_EINVAL, bad[i].want);
        free(tok);
    }
    oms_auth_free(a);

    /* Not configured: not checked. */
    a = hs_auth();
    char *tok = hs_token(C(",\"iss\":\"whoever\",\"aud\":17"));
    expect_ok(a, tok, &p);
    free(tok);
#undef C
    oms_auth_free(a);
}

/* ---- algorithms --------------------------------------------------------- */

static void test_alg_none_refused(void **state)
{
    oms_auth *a = hs_auth();
    const char *claims = "{\"sub\":\"1\",\"userId\":1,\"role\":\"admin\",\"exp\":1800000600}";
    char *tok = hand_token("{\"alg\":\"none\",\"typ\":\"JWT\"}", claims, "");
    expect_fail(a, tok, OMS_EINVAL, "token algorithm 'none' is not the configured 'HS256'");
    free(tok);
    tok = hand_token("{\"alg\":\"None\",\"typ\":\"JWT\"}", claims, "");
    expect_fail(a, tok, OMS_EINVAL, "token algorithm 'None' is not the configured");
    free(tok);
    /* A "none" token with a signature tacked on is refused just the same. */
    tok = hand_token("{\"alg\":\"none\",\"typ\":\"JWT\"}", claims, "c2ln");
    expect_fail(a, tok, OMS_EINVAL, "'none' is not the configured");
    free(tok);
    oms_auth_free(a);

    a = new_auth("RS256", g_keys.rsa_pub, NULL, NULL, 5);
    tok = hand_token("{\"alg\":\"none\"}", claims, "");
    expect_fail(a, tok, OMS_EINVAL, "token algorithm 'none' is not the configured 'RS256'");
    free(tok);
    oms_auth_free(a);
}

static const char *k_admin = "{\"sub\":\"1\",\"userId\":1,\"role\":\"admin\",\"exp\":1800000600}";

static void test_rs256_ok(void **state)
{
    oms_auth *a = new_auth("RS256", g_keys.rsa_pub, NULL, NULL, 5);
    char *tok = signed_token(JWT_ALG_RS256, g_keys.rsa_priv, strlen(g_keys.rsa_priv), k_admin);
    oms_principal p;
    expect_ok(a, tok, &p);
    assert_int_equal(p.role, OMS_ROLE_ADMIN);
    assert_int_equal(p.user_id, 1);
    free(tok);
    /* Signed by another RSA key. */
    tok = signed_token(JWT_ALG_RS256, g_keys.rsa2_priv, strlen(g_keys.rsa2_priv), k_admin);
    expect_fail(a, tok, OMS_EINVAL, "signature is invalid");
    free(tok);
    oms_auth_free(a);
}

static void test_rs256_key_confusion(void **state)
{
    oms_auth *a = new_auth("RS256", g_keys.rsa_pub, NULL, NULL, 5);
    /* HS256 with the public key PEM as the HMAC secret: libjwt's
     * jwt_decode(pubkey) accepts this; we must not. */
    char *tok = signed_token(JWT_ALG_HS256, g_keys.rsa_pub, strlen(g_keys.rsa_pub), k_admin);
    expect_fail(a, tok, OMS_EINVAL, "token algorithm 'HS256' is not the configured 'RS256'");
    free(tok);
    /* Same with the trailing newline stripped (a common variant). */
    size_t n = strlen(g_keys.rsa_pub);
    tok = signed_token(JWT_ALG_HS256, g_keys.rsa_pub, n - 1, k_admin);
    expect_fail(a, tok, OMS_EINVAL, "'HS256' is not the configured 'RS256'");
    free(tok);
    oms_auth_free(a);

    /* And against an ES256 verifier. */
    a = new_auth("ES256", g_keys.ec_pub, NULL, NULL, 5);
    tok = signed_token(JWT_ALG_HS256, g_keys.ec_pub, strlen(g_keys.ec_pub), k_admin);
    expect_fail(a, tok, OMS_EINVAL, "'HS256' is not the configured 'ES256'");
    free(tok);
    oms_auth_free(a);
}

static void test_es256_ok(void **state)
{
    oms_auth *a = new_auth("ES256", g_keys.ec_pub, NULL, NULL, 5);
    char *tok = signed_token(JWT_ALG_ES256, g_keys.ec_priv, strlen(g_keys.ec_priv),
                             "{\"sub\":\"88\",\"role\":\"customer\",\"exp\":1800000600}");
    oms_principal p;
    expect_ok(a, tok, &p);
    assert_int_equal(p.role, OMS_ROLE_CUSTOMER);
    assert_int_equal(p.user_id, 88);
    free(tok);
    tok = signed_token(JWT_ALG_ES256, g_keys.ec2_priv, strlen(g_keys.ec2_priv), k_admin);
    expect_fail(a, tok, OMS_EINVAL, "signature is invalid");
    free(tok);
    oms_auth_free(a);
}

static void test_wrong_alg_config(void **state)
{
    char *es = signed_token(JWT_ALG_ES256, g_keys.ec_priv, strlen(g_keys.ec_priv), k_admin);
    char *rs = signed_token(JWT_ALG_RS256, g_keys.rsa_priv, strlen(g_keys.rsa_priv), k_admin);
    char *hs = hs_token(k_admin);

    oms_auth *a = new_auth("RS256", g_keys.rsa_pub, NULL, NULL, 5);
    expect_fail(a, es, OMS_EINVAL, "token algorithm 'ES256' is not the configured 'RS256'");
    oms_auth_free(a);
    a = new_auth("ES256", g_keys.ec_pub, NULL, NULL, 5);
    expect_fail(a, rs, OMS_EINVAL, "token algorithm 'RS256' is not the configured 'ES256'");
    expect_fail(a, hs, OMS_EINVAL, "token algorithm 'HS256' is not the configured 'ES256'");
    oms_auth_free(a);
    a = hs_auth();
    expect_fail(a, rs, OMS_EINVAL, "token algorithm 'RS256' is not the configured 'HS256'");
    oms_auth_free(a);
    /* ES256 configured with an RSA public key: nothing verifies. */
    a = new_auth("ES256", g_keys.rsa_pub, NULL, NULL, 5);
    expect_fail(a, es, OMS_EINVAL, "signature is invalid");
    oms_auth_free(a);
    free(es);
    free(rs);
    free(hs);
}

/* ---- robustness --------------------------------------------------------- */

static void test_huge_token(void **state)
{
    oms_auth *a = hs_auth();
    size_t n = 1 << 20;
    char *big = malloc(n + 1);
    assert_non_null(big);
    memset(big, 'A', n);
    big[n / 3] = '.';
    big[2 * n / 3] = '.';
    big[n] = '\0';
    expect_fail(a, big, OMS_EINVAL, "token too long");
    /* A well-formed token just past the limit. */
    char *pad = malloc(OMS_AUTH_MAX_TOKEN_LEN);
    assert_non_null(pad);
    memset(pad, 'x', OMS_AUTH_MAX_TOKEN_LEN - 1);
    pad[OMS_AUTH_MAX_TOKEN_LEN - 1] = '\0';
    char *claims = malloc(OMS_AUTH_MAX_TOKEN_LEN + 100);
    assert_non_null(claims);
    snprintf(claims, OMS_AUTH_MAX_TOKEN_LEN + 100,
             "{\"sub\":\"1\",\"role\":\"admin\",\"exp\":1800000600,\"pad\":\"%s\"}", pad);
    char *tok = hs_token(claims);
    expect_fail(a, tok, OMS_EINVAL, "token too long");
    free(tok);
    /* ...and one just under it passes. */
    snprintf(claims, OMS_AUTH_MAX_TOKEN_LEN + 100,
             "{\"sub\":\"1\",\"role\":\"admin\",\"exp\":1800000600,\"pad\":\"%.*s\"}",
             OMS_AUTH_MAX_TOKEN_LEN / 4 * 3 - 200, pad);
    tok = hs_token(claims);
    assert_true(strlen(tok) <= OMS_AUTH_MAX_TOKEN_LEN);
    expect_ok(a, tok, &(oms_principal){0});
    free(tok);
    free(claims);
    free(pad);
    free(big);
    oms_auth_free(a);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15u;
static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void test_junk_never_crashes(void **state)
{
    static const char k_b64[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    oms_auth *hs = hs_auth();
    oms_auth *rs = new_auth("RS256", g_keys.rsa_pub, NULL, NULL, 5);
    char *good = hs_token(k_admin);
    size_t glen = strlen(good);
    char buf[4096];
    char err[128];
    for (int iter = 0; iter < 3000; iter++) {
        size_t n;
        switch (iter % 3) {
        case 0: /* binary junk with a few dots */
            n = 1 + rng() % (sizeof buf - 1);
            for (size_t i = 0; i < n; i++) {
                unsigned c = (unsigned)(rng() % 256);
                buf[i] = (char)(c == 0 ? '.' : c);
            }
            break;
        case 1: /* base64url alphabet junk, three parts */
            n = 3 + rng() % 600;
            for (size_t i = 0; i < n; i++)
                buf[i] = k_b64[rng() % 64];
            buf[rng() % (n / 2)] = '.';
            buf[n / 2 + rng() % (n - n / 2)] = '.';
            break;
        default: /* a good token with a few bytes mutated */
            n = glen;
            memcpy(buf, good, n);
            for (int k = 0; k < 3; k++)
                buf[rng() % n] = (char)(1 + rng() % 255);
            break;
        }
        buf[n] = '\0';
        oms_principal p;
        int rc = oms_auth_verify(iter & 1 ? hs : rs, buf, NOW, &p, err, sizeof err);
        /* A mutation may land on a byte that decodes the same; that's fine. */
        if (rc == 0)
            assert_int_equal(iter % 3, 2);
        else
            assert_true(rc == OMS_EINVAL || rc == OMS_EEXPIRED);
    }
    free(good);
    oms_auth_free(hs);
    oms_auth_free(rs);
}

/* ---- minting ------------------------------------------------------------ */

/* Timers armed from a token's exp: clamped to a day, never overflowing,
 * whatever exp a client signs (issue #15: a huge exp hung the service
 * thread). */
static void test_expires_in(void **state)
{
    (void)state;
    const int64_t now = 1700000000;
    assert_int_equal(oms_auth_expires_in(now + 60, now, 5), 65);
    assert_int_equal(oms_auth_expires_in(now, now, 5), 5);
    assert_int_equal(oms_auth_expires_in(now - 3, now, 5), 2);
    assert_int_equal(oms_auth_expires_in(now - 5, now, 5), 0);
    assert_int_equal(oms_auth_expires_in(now - 6, now, 5), 0);
    assert_int_equal(oms_auth_expires_in(now + OMS_AUTH_RECHECK_S - 10, now, 5), OMS_AUTH_RECHECK_S - 5);
    assert_int_equal(oms_auth_expires_in(now + OMS_AUTH_RECHECK_S, now, 5), OMS_AUTH_RECHECK_S);
    assert_int_equal(oms_auth_expires_in(INT64_C(9300000000000), now, 5), OMS_AUTH_RECHECK_S);
    assert_int_equal(oms_auth_expires_in(INT64_MAX, now, 5), OMS_AUTH_RECHECK_S);
    assert_int_equal(oms_auth_expires_in(INT64_MAX - 2, INT64_MAX, 5), 3);
    assert_int_equal(oms_auth_expires_in(INT64_MIN, now, 5), 0);
    assert_false(oms_auth_expired(INT64_MAX, now, 5));
    assert_true(oms_auth_expired(INT64_MIN, now, 5));
    assert_false(oms_auth_expired(now - 5, now, 5));
    assert_true(oms_auth_expired(now - 6, now, 5));
}

static void test_mint_roundtrip(void **state)
{
    const unsigned char *s = (const unsigned char *)SECRET;
    size_t sl = strlen(SECRET);
    oms_auth *a = new_auth("HS256", SECRET, "oms-dev", "oms", 5);
    for (int r = 0; r < OMS_ROLE__COUNT; r++) {
        int64_t uid = r == OMS_ROLE_SERVICE ? 0 : 1000 + r;
        char *tok = oms_auth_mint_hs256(s, sl, uid, (oms_role)r, 3600, NOW, "oms-dev", "oms");
        assert_non_null(tok);
        oms_principal p;
        expect_ok(a, tok, &p);
        assert_int_equal(p.role, r);
        assert_int_equal(p.user_id, uid);
        assert_int_equal(p.exp, NOW + 3600);
        char want[24];
        snprintf(want, sizeof want, "%lld", (long long)uid);
        assert_string_equal(p.sub, want);

        /* The claims are the documented ones. */
        jwt_t *j = NULL;
        assert_int_equal(jwt_decode(&j, tok, s, (int)sl), 0);
        assert_int_equal(jwt_get_alg(j), JWT_ALG_HS256);
        assert_string_equal(jwt_get_grant(j, "sub"), want);
        assert_int_equal(jwt_get_grant_int(j, "userId"), uid);
        assert_string_equal(jwt_get_grant(j, "role"), oms_role_name((oms_role)r));
        assert_int_equal(jwt_get_grant_int(j, "iat"), NOW);
        assert_int_equal(jwt_get_grant_int(j, "exp"), NOW + 3600);
        assert_string_equal(jwt_get_grant(j, "iss"), "oms-dev");
        assert_string_equal(jwt_get_grant(j, "aud"), "oms");
        jwt_free(j);
        free(tok);
    }

    /* Wrong iss/aud, wrong secret, expiry. */
    char *tok = oms_auth_mint_hs256(s, sl, 5, OMS_ROLE_CUSTOMER, 3600, NOW, "other", "oms");
    expect_fail(a, tok, OMS_EINVAL, "issuer (iss) does not match");
    free(tok);
    tok = oms_auth_mint_hs256(s, sl, 5, OMS_ROLE_CUSTOMER, 3600, NOW, "oms-dev", NULL);
    expect_fail(a, tok, OMS_EINVAL, "no audience");
    free(tok);
    tok = oms_auth_mint_hs256((const unsigned char *)OTHER_SECRET, strlen(OTHER_SECRET), 5,
                              OMS_ROLE_CUSTOMER, 3600, NOW, "oms-dev", "oms");
    expect_fail(a, tok, OMS_EINVAL, "signature is invalid");
    free(tok);
    tok = oms_auth_mint_hs256(s, sl, 5, OMS_ROLE_CUSTOMER, 60, NOW - 120, "oms-dev", "oms");
    expect_fail(a, tok, OMS_EEXPIRED, "token expired");
    free(tok);
    oms_auth_free(a);

    /* Without iss/aud the claims are absent. */
    tok = oms_auth_mint_hs256(s, sl, 5, OMS_ROLE_STAFF, 60, NOW, "", NULL);
    assert_non_null(tok);
    jwt_t *j = NULL;
    assert_int_equal(jwt_decode(&j, tok, s, (int)sl), 0);
    assert_null(jwt_get_grant(j, "iss"));
    assert_null(jwt_get_grant(j, "aud"));
    jwt_free(j);
    free(tok);

    /* Refusals. */
    assert_null(oms_auth_mint_hs256(NULL, 10, 1, OMS_ROLE_ADMIN, 60, NOW, NULL, NULL));
    assert_null(oms_auth_mint_hs256(s, 0, 1, OMS_ROLE_ADMIN, 60, NOW, NULL, NULL));
    assert_null(oms_auth_mint_hs256(s, sl, -1, OMS_ROLE_ADMIN, 60, NOW, NULL, NULL));
    assert_null(oms_auth_mint_hs256(s, sl, 1, OMS_ROLE__COUNT, 60, NOW, NULL, NULL));
    assert_null(oms_auth_mint_hs256(s, sl, 1, OMS_ROLE_ADMIN, INT64_MAX, NOW, NULL, NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_role_name_parse),
        cmocka_unit_test(test_new_errors),
        cmocka_unit_test(test_new_from_file),
        cmocka_unit_test(test_hs256_each_role),
        cmocka_unit_test(test_garbage_tokens),
        cmocka_unit_test(test_wrong_signature),
        cmocka_unit_test(test_tampered_payload),
        cmocka_unit_test(test_expired_and_leeway),
        cmocka_unit_test(test_nbf),
        cmocka_unit_test(test_missing_exp),
        cmocka_unit_test(test_role_claim),
        cmocka_unit_test(test_user_id_rules),
        cmocka_unit_test(test_user_id_string),
        cmocka_unit_test(test_numeric_sub_fallback),
        cmocka_unit_test(test_iss_aud),
        cmocka_unit_test(test_alg_none_refused),
        cmocka_unit_test(test_rs256_ok),
        cmocka_unit_test(test_rs256_key_confusion),
        cmocka_unit_test(test_es256_ok),
        cmocka_unit_test(test_wrong_alg_config),
        cmocka_unit_test(test_huge_token),
        cmocka_unit_test(test_junk_never_crashes),
        cmocka_unit_test(test_mint_roundtrip),
        cmocka_unit_test(test_expires_in),
    };
    return cmocka_run_group_tests(tests, keys_setup, keys_teardown);
}
