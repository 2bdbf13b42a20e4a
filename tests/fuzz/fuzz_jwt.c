/* fuzz_jwt.c — JWT verification (pkg/auth oms_auth_verify) with HS256,
 * RS256 and ES256 configurations, and its one security invariant: a token
 * that is accepted carries the configured algorithm in its header and a
 * signature that verifies, checked here independently with OpenSSL, under
 * the configured key. So neither "alg: none" nor a token HMAC'd with the
 * RSA/EC public key (key confusion) nor any forgery may ever pass.
 *
 * Input: byte 0 picks the verifier (HS256, HS256 with iss/aud, RS256,
 * ES256); byte 1 how the token is built from the rest:
 *   0  the rest is the token, verbatim
 *   1  header JSON \0 payload JSON, signed with the configured algorithm and key
 *   2  same, HMAC-SHA256 with the configured public key PEM (or the secret)
 *   3  same, HMAC-SHA256 with a wrong secret
 *   4  same, RS256 with the test RSA key
 *   5  same, ES256 with the test EC key
 *   6  header \0 payload \0 signature bytes (base64url-encoded here)
 *   7  header \0 payload, empty signature
 * The keys below are test keys made for this file and used nowhere else. */
#include <string.h>

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include "fuzz.h"

static const char k_rsa_priv[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIIEugIBADANBgkqhkiG9w0BAQEFAASCBKQwggSgAgEAAoIBAQDfM5B86XvhjmXh\n"
    "HSAvEC2k3R+D4ac1l+E1xcTaVNJdgI+0O+w9Nn2m78XCCvE0mUnZCDj4k9owHolh\n"
    "nyimAYLPl5Ke9kH5Cq40fPR9cMZISS30uHRbc10TsHgd6MiPkubGIkk6vMrhH/K5\n"
    "p3vkn3jz8re1FldPU8pOT2Rbwvn2l7tcKBzWBvAKc05QxgiAhEHEzzftduNQENiX\n"
    "bQe5+PhS5lzqSbGTtkSDHD4NW02nILZxHVsbwRR+YO/xDk0fj2tUhYvvwEt3VNjY\n"
    "yxjLkgSJzER/r8/r3YiMV3FghcBYqkRQDhWcpen1nFsMv13Un4TA0If5JreE+SFP\n"
    "NUm3oR9TAgMBAAECggEAFWssVWBOfAGfMzAJU5rY1nZFvPEdi54MhY15632yRji9\n"
    "EY2iiOk+u5NMxeco6GRBWutYFDqT+IQlqNGOJAgHFoa0Ej8Na6mjt/O5voPg8zTa\n"
    "jR5aRCBY8TfA/xXEkUqGjMLjhhhx25KmRzyUPgczoy1Khb0kGb+vrT4fIlMei5Qs\n"
    "C1SHXrq24kaQytZpDHWoEav7CDIPzPUOqPjwUyMlKh4gGTEh1f1OJ8rsgJd4cgj9\n"
    "gYPbvj3tX/8E0A0NXpbqfrZtAoMis8cQfCXMl3E6Rag+7N3XngJ7ZVXyE5/S0Yk7\n"
    "P4JKndQZg1ePWPrFhhXkPj+QXbb5jRRI/mXS/32gyQKBgQDzB1If3aJGRkiNXhkA\n"
    "ewD+0aJq6jipOQD080UHUX+RjGEnA/bkWKpYgj2JbTA7CKTqI/MUSX+zeUef7Evk\n"
    "TRmdA7uN6iWbjG+kBcGmRFOEo7x4L0RhY8BpMDhg83m4RGmUcVxmhkDB7wcf6WFn\n"
    "MbrxfRETtGZmVNAURbRgfyRWzwKBgQDrHVSOKHarwuMG57e93EohJotANBYhtNgj\n"
    "OQjPB1ShtQFGDAxrfZhaBxhAeHC4G+v2NUGCXr7E3/V/w43M2fA/AUCzxtRmSLEC\n"
    "tOckkQVcKdtYVpNips1SfnabIPi4CVdo46NkGibSUlV1FN7wsvRv7Re4cJPlZX3r\n"
    "gh9x25yQPQKBgDaJlwlloEvq688lpbCw6clFXBBoHW0ESM2vZfc9d8Y+3XJ29knK\n"
    "B/gyygJ0CVXGG9QbWypbUBgDiGpACcvi7XOJ6eXv/J6Khmclj45zWNa0M9A4szyz\n"
    "uPMiChTfrpoGaDcStWyghhm/PTcRFXWl+FDHAzULz8r5D3TtK4xYG9yLAoGACmv1\n"
    "aIvAnuJ3n8G7sk3Gd2u29nSYmovinMUVb9/aT4SvdsRn9IfPrgXsfEcab/7E2dgI\n"
    "fFfoyt9GiZBIg9ERRimvDYj9tz73obAVItjOzQQJ9gN4awILzeFPLpcqjzXSyxJ0\n"
    "FqbWG7KMmTEApNi53xA6YfGTjLKP/1V4QVrDuN0Cf0M5GBORdgpLqAwxnNe7OD8o\n"
    "w+jOEFjMwNZaWGboDCpVn++nsXI4zb/gPzitySdTwEY27lCiLxxEA8X7NaOUJA6K\n"
    "TBlpSXUmUWI6+qsYBdEKW57cvWb8VGEo9Ynjidbl+l02/OoD/a66K0xaynYmrS2+\n"
    "/s9nX+VL254sw8ORtOk=\n"
    "-----END PRIVATE KEY-----\n";

static const char k_rsa_pub[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA3zOQfOl74Y5l4R0gLxAt\n"
    "pN0fg+GnNZfhNcXE2lTSXYCPtDvsPTZ9pu/FwgrxNJlJ2Qg4+JPaMB6JYZ8opgGC\n"
    "z5eSnvZB+QquNHz0fXDGSEkt9Lh0W3NdE7B4HejIj5LmxiJJOrzK4R/yuad75J94\n"
    "8/K3tRZXT1PKTk9kW8L59pe7XCgc1gbwCnNOUMYIgIRBxM837XbjUBDYl20Hufj4\n"
    "UuZc6kmxk7ZEgxw+DVtNpyC2cR1bG8EUfmDv8Q5NH49rVIWL78BLd1TY2MsYy5IE\n"
    "icxEf6/P692IjFdxYIXAWKpEUA4VnKXp9ZxbDL9d1J+EwNCH+Sa3hPkhTzVJt6Ef\n"
    "UwIDAQAB\n"
    "-----END PUBLIC KEY-----\n";

static const char k_ec_priv[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgq07bUOToDI+c2PKq\n"
    "y9V9RWle5VsOjWvpK8qoktDEyeGhRANCAAQFF5CGR642N5rN5c8YG1i9EC15PU4U\n"
    "Xb2p9sAAQekq0JAsgjYbP7Z2vZ9Y99ZiYJYW4kCE8VlKbnDRQpi0cehl\n"
    "-----END PRIVATE KEY-----\n";

static const char k_ec_pub[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEBReQhkeuNjeazeXPGBtYvRAteT1O\n"
    "FF29qfbAAEHpKtCQLII2Gz+2dr2fWPfWYmCWFuJAhPFZSm5w0UKYtHHoZQ==\n"
    "-----END PUBLIC KEY-----\n";

#define NOW_S INT64_C(1800000000)
#define SECRET FUZZ_SECRET

enum { V_HS, V_HS_ISSAUD, V_RS, V_ES, V__COUNT };
static oms_auth *g_v[V__COUNT];
static EVP_PKEY *g_rsa_priv, *g_ec_priv, *g_rsa_pub, *g_ec_pub;

static EVP_PKEY *pem_key(const char *pem, bool priv)
{
    BIO *b = BIO_new_mem_buf(pem, -1);
    EVP_PKEY *k = priv ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL)
                       : PEM_read_bio_PUBKEY(b, NULL, NULL, NULL);
    BIO_free(b);
    if (!k) {
        fprintf(stderr, "fuzz_jwt: bad test key\n");
        abort();
    }
    return k;
}

static oms_auth *verifier(const char *alg, const char *key, const char *iss, const char *aud)
{
    char err[256];
    oms_auth_opts o = {.algorithm = alg,
                       .key = (const unsigned char *)key,
                       .key_len = strlen(key),
                       .issuer = iss,
                       .audience = aud,
                       .leeway_s = 5};
    oms_auth *a = oms_auth_new(&o, err, sizeof err);
    if (!a) {
        fprintf(stderr, "fuzz_jwt: oms_auth_new: %s\n", err);
        abort();
    }
    return a;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (g_v[0])
        return 0;
    g_v[V_HS] = verifier("HS256", SECRET, NULL, NULL);
    g_v[V_HS_ISSAUD] = verifier("HS256", SECRET, "oms-issuer", "oms-audience");
    g_v[V_RS] = verifier("RS256", k_rsa_pub, NULL, NULL);
    g_v[V_ES] = verifier("ES256", k_ec_pub, NULL, NULL);
    g_rsa_priv = pem_key(k_rsa_priv, true);
    g_ec_priv = pem_key(k_ec_priv, true);
    g_rsa_pub = pem_key(k_rsa_pub, false);
    g_ec_pub = pem_key(k_ec_pub, false);
    return 0;
}

/* ---- base64url -------------------------------------------------------------------- */

static void b64url_append(char *o, size_t *k, const unsigned char *s, size_t n)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)s[i + 1] << 8;
        if (i + 2 < n)
            v |= s[i + 2];
        o[(*k)++] = a[(v >> 18) & 63];
        o[(*k)++] = a[(v >> 12) & 63];
        if (i + 1 < n)
            o[(*k)++] = a[(v >> 6) & 63];
        if (i + 2 < n)
            o[(*k)++] = a[v & 63];
    }
}

static int b64v(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-' || c == '+')
        return 62;
    if (c == '_' || c == '/')
        return 63;
    return -1;
}

/* Lenient on purpose (both alphabets, '=' padding): the check below must
 * not call a token forged just because it is spelled unusually. Returns
 * a malloc'd buffer or NULL. */
static unsigned char *b64_decode(const char *s, size_t n, size_t *out_len)
{
    while (n > 0 && s[n - 1] == '=')
        n--;
    unsigned char *o = malloc(n * 3 / 4 + 3);
    size_t k = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64v((unsigned char)s[i]);
        if (v < 0) {
            free(o);
            return NULL;
        }
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            o[k++] = (unsigned char)(acc >> bits);
        }
    }
    *out_len = k;
    return o;
}

/* ---- signing and the independent check ------------------------------------------ */

static size_t hmac(const void *key, size_t klen, const char *msg, size_t n, unsigned char *out)
{
    unsigned int len = 0;
    HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)msg, n, out, &len);
    return len;
}

/* RS256 or ES256 (raw r||s, 64 bytes) signature of msg into out (>= 512). */
static size_t sign(EVP_PKEY *k, bool ec, const char *msg, size_t n, unsigned char *out)
{
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    unsigned char der[600];
    size_t dl = sizeof der;
    if (EVP_DigestSignInit(c, NULL, EVP_sha256(), NULL, k) != 1 ||
        EVP_DigestSign(c, der, &dl, (const unsigned char *)msg, n) != 1) {
        EVP_MD_CTX_free(c);
        return 0;
    }
    EVP_MD_CTX_free(c);
    if (!ec) {
        memcpy(out, der, dl);
        return dl;
    }
    const unsigned char *p = der;
    ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long)dl);
    if (!sig)
        return 0;
    memset(out, 0, 64);
    BN_bn2binpad(ECDSA_SIG_get0_r(sig), out, 32);
    BN_bn2binpad(ECDSA_SIG_get0_s(sig), out + 32, 32);
    ECDSA_SIG_free(sig);
    return 64;
}

static bool verify_sig(int v, const char *msg, size_t n, const unsigned char *sig, size_t sl)
{
    if (v == V_HS || v == V_HS_ISSAUD) {
        unsigned char mac[64];
        size_t ml = hmac(SECRET, strlen(SECRET), msg, n, mac);
        return sl == ml && CRYPTO_memcmp(mac, sig, ml) == 0;
    }
    unsigned char der[200];
    const unsigned char *use = sig;
    size_t ul = sl;
    if (v == V_ES) {
        if (sl != 64)
            return false;
        ECDSA_SIG *es = ECDSA_SIG_new();
        ECDSA_SIG_set0(es, BN_bin2bn(sig, 32, NULL), BN_bin2bn(sig + 32, 32, NULL));
        unsigned char *p = der;
        int dl = i2d_ECDSA_SIG(es, &p);
        ECDSA_SIG_free(es);
        if (dl <= 0)
            return false;
        use = der;
        ul = (size_t)dl;
    }
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    bool ok = EVP_DigestVerifyInit(c, NULL, EVP_sha256(), NULL, v == V_ES ? g_ec_pub : g_rsa_pub) ==
                  1 &&
              EVP_DigestVerify(c, use, ul, (const unsigned char *)msg, n) == 1;
    EVP_MD_CTX_free(c);
    return ok;
}

static const char *const k_alg[V__COUNT] = {"HS256", "HS256", "RS256", "ES256"};

/* The token was accepted: prove it deserved it. */
static void check_accepted(int v, const char *tok, const oms_principal *p)
{
    const char *d1 = strchr(tok, '.');
    FUZZ_CHECK(d1, "accepted a token without a dot");
    const char *d2 = strchr(d1 + 1, '.');
    FUZZ_CHECK(d2 && !strchr(d2 + 1, '.'), "accepted a token without three parts");
    size_t hl = 0;
    unsigned char *h = b64_decode(tok, (size_t)(d1 - tok), &hl);
    FUZZ_CHECK(h, "accepted a token whose header is not base64url");
    json_t *hj = json_loadb((const char *)h, hl, 0, NULL);
    free(h);
    const char *alg = json_string_value(json_object_get(hj, "alg"));
    FUZZ_CHECK(alg && strcmp(alg, k_alg[v]) == 0, "accepted header alg '%s' under %s",
               alg ? alg : "(none)", k_alg[v]);
    json_decref(hj);
    size_t sl = 0;
    unsigned char *sig = b64_decode(d2 + 1, strlen(d2 + 1), &sl);
    FUZZ_CHECK(sig, "accepted a token whose signature is not base64url");
    bool ok = verify_sig(v, tok, (size_t)(d2 - tok), sig, sl);
    free(sig);
    FUZZ_CHECK(ok, "accepted a token whose signature does not verify under %s", k_alg[v]);
    FUZZ_CHECK((unsigned)p->role < OMS_ROLE__COUNT, "role %d", (int)p->role);
    FUZZ_CHECK(p->user_id > 0 || p->role == OMS_ROLE_SERVICE, "no user id for %s",
               oms_role_name(p->role));
    FUZZ_CHECK(p->user_id >= 0, "negative user id");
    FUZZ_CHECK(p->exp >= NOW_S - 5, "accepted an expired token (exp %lld)", (long long)p->exp);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!g_v[0])
        LLVMFuzzerInitialize(NULL, NULL);
    if (size < 2)
        return 0;
    int v = data[0] % V__COUNT;
    int mode = data[1] % 8;
    const char *rest = (const char *)data + 2;
    size_t n = size - 2;
    char *tok;
    if (mode == 0) {
        tok = malloc(n + 1);
        memcpy(tok, rest, n);
        tok[n] = '\0';
    } else {
        const char *z1 = memchr(rest, 0, n);
        size_t hl = z1 ? (size_t)(z1 - rest) : n;
        const char *pl = z1 ? z1 + 1 : rest + n;
        size_t left = z1 ? n - hl - 1 : 0;
        const char *z2 = memchr(pl, 0, left);
        size_t pll = z2 ? (size_t)(z2 - pl) : left;
        const char *sg = z2 ? z2 + 1 : pl + left;
        size_t sgl = z2 ? left - pll - 1 : 0;
        tok = malloc((hl + pll + 700) * 2);
        size_t k = 0;
        b64url_append(tok, &k, (const unsigned char *)rest, hl);
        tok[k++] = '.';
        b64url_append(tok, &k, (const unsigned char *)pl, pll);
        size_t signed_len = k;
        tok[k++] = '.';
        unsigned char sig[600];
        size_t sl = 0;
        switch (mode) {
        case 1:
            if (v == V_RS)
                sl = sign(g_rsa_priv, false, tok, signed_len, sig);
            else if (v == V_ES)
                sl = sign(g_ec_priv, true, tok, signed_len, sig);
            else
                sl = hmac(SECRET, strlen(SECRET), tok, signed_len, sig);
            break;
        case 2: {
            const char *key = v == V_RS ? k_rsa_pub : v == V_ES ? k_ec_pub : SECRET;
            sl = hmac(key, strlen(key), tok, signed_len, sig);
            break;
        }
        case 3:
            sl = hmac("not-the-secret", 14, tok, signed_len, sig);
            break;
        case 4:
            sl = sign(g_rsa_priv, false, tok, signed_len, sig);
            break;
        case 5:
            sl = sign(g_ec_priv, true, tok, signed_len, sig);
            break;
        case 6:
            sl = sgl > 512 ? 512 : sgl;
            memcpy(sig, sg, sl);
            break;
        default:
            break;
        }
        b64url_append(tok, &k, sig, sl);
        tok[k] = '\0';
    }
    oms_principal p;
    char err[256];
    int rc = oms_auth_verify(g_v[v], tok, NOW_S, &p, err, sizeof err);
    static int debug = -1;
    if (debug < 0)
        debug = getenv("FUZZ_DEBUG") != NULL;
    if (debug)
        fprintf(stderr, "verifier %s, mode %d: rc %d (%s)\n", k_alg[v], mode, rc,
                rc ? err : "accepted");
    if (rc == OMS_OK) {
        check_accepted(v, tok, &p);
    } else {
        FUZZ_CHECK(rc == OMS_EINVAL || rc == OMS_EEXPIRED || rc == OMS_ENOMEM, "rc %d", rc);
        FUZZ_CHECK(memchr(err, '\0', sizeof err) && err[0], "no error message");
        FUZZ_CHECK(p.user_id == 0 && p.exp == 0 && p.role == 0 && p.sub[0] == '\0',
                   "principal filled on failure");
    }
    free(tok);
    return 0;
}
