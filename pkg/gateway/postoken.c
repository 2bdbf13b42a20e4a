/* postoken.c — position tokens and process ids (postoken.h). */
#include "gateway/postoken.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/types.h>

#include "common/oms.h"

#define VERSION 1
#define MAC_LEN 12
#define PID_RAND 12
#define PID_MAC 9
#define MAX_RAW (3 + 3 * OMS_POSTOKEN_MAX_TOPICS + 10 * OMS_POSTOKEN_MAX_PARTS + MAC_LEN)

struct oms_postoken {
    unsigned char key[32];
    int ntopics;
    /* HMAC-SHA256 with the key's inner and outer blocks already hashed:
     * each MAC copies them (no key schedule, no algorithm fetch per call;
     * fan-out makes one per event). Read-only once made: any thread. */
    EVP_MD *md;
    EVP_MD_CTX *inner, *outer;
};

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* HMAC-SHA256(key, label || p) into out, from the precomputed blocks. 0,
 * or -1 out of memory (out is then not a MAC: callers fail). */
static int mac(const oms_postoken *k, const char *label, const unsigned char *p, size_t n,
               unsigned char out[32])
{
    unsigned char ih[32];
    unsigned int il = 0, ol = 0;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    int ok = c && EVP_MD_CTX_copy_ex(c, k->inner) && EVP_DigestUpdate(c, label, strlen(label)) &&
             EVP_DigestUpdate(c, p, n) && EVP_DigestFinal_ex(c, ih, &il) &&
             EVP_MD_CTX_copy_ex(c, k->outer) && EVP_DigestUpdate(c, ih, il) &&
             EVP_DigestFinal_ex(c, out, &ol);
    EVP_MD_CTX_free(c);
    return ok ? 0 : -1;
}

/* The inner and outer blocks of HMAC-SHA256 for k->key. */
static int mac_setup(oms_postoken *k)
{
    unsigned char ipad[64], opad[64];
    memset(ipad, 0x36, sizeof ipad);
    memset(opad, 0x5c, sizeof opad);
    for (size_t i = 0; i < sizeof k->key; i++) {
        ipad[i] ^= k->key[i];
        opad[i] ^= k->key[i];
    }
    k->md = EVP_MD_fetch(NULL, "SHA256", NULL);
    k->inner = EVP_MD_CTX_new();
    k->outer = EVP_MD_CTX_new();
    int ok = k->md && k->inner && k->outer && EVP_DigestInit_ex(k->inner, k->md, NULL) &&
             EVP_DigestUpdate(k->inner, ipad, sizeof ipad) &&
             EVP_DigestInit_ex(k->outer, k->md, NULL) &&
             EVP_DigestUpdate(k->outer, opad, sizeof opad);
    OPENSSL_cleanse(ipad, sizeof ipad);
    OPENSSL_cleanse(opad, sizeof opad);
    return ok ? 0 : -1;
}

oms_postoken *oms_postoken_new(const unsigned char *secret, size_t len, const char *const *topics,
                               int ntopics, char *errbuf, size_t errlen)
{
    if (!secret || len < 16) {
        oms_errf(errbuf, errlen, "the position token secret must have at least 16 bytes");
        return NULL;
    }
    if (ntopics < 1 || ntopics > OMS_POSTOKEN_MAX_TOPICS) {
        oms_errf(errbuf, errlen, "position tokens take 1 to %d topics", OMS_POSTOKEN_MAX_TOPICS);
        return NULL;
    }
    oms_postoken *k = calloc(1, sizeof *k);
    if (!k) {
        oms_errf(errbuf, errlen, "out of memory");
        return NULL;
    }
    k->ntopics = ntopics;
    /* key = HMAC(secret, context and topic names): a token made for other
     * topics, or with another secret, never verifies */
    size_t need = 32;
    for (int i = 0; i < ntopics; i++)
        need += strlen(topics[i]) + 1;
    char *ctx = malloc(need);
    if (!ctx) {
        free(k);
        oms_errf(errbuf, errlen, "out of memory");
        return NULL;
    }
    size_t n = (size_t)snprintf(ctx, need, "oms position token v%d", VERSION);
    for (int i = 0; i < ntopics; i++) {
        ctx[n++] = '\n';
        size_t tl = strlen(topics[i]);
        memcpy(ctx + n, topics[i], tl);
        n += tl;
    }
    unsigned int ol = sizeof k->key;
    HMAC(EVP_sha256(), secret, (int)len, (const unsigned char *)ctx, n, k->key, &ol);
    free(ctx);
    if (mac_setup(k) != 0) {
        oms_postoken_free(k);
        oms_errf(errbuf, errlen, "cannot set HMAC-SHA256 up (OpenSSL)");
        return NULL;
    }
    return k;
}

void oms_postoken_free(oms_postoken *k)
{
    if (k) {
        OPENSSL_cleanse(k->key, sizeof k->key);
        EVP_MD_CTX_free(k->inner);
        EVP_MD_CTX_free(k->outer);
        EVP_MD_free(k->md);
        free(k);
    }
}

size_t oms_postoken_max_len(int total_parts)
{
    size_t raw = 3 + 3 * OMS_POSTOKEN_MAX_TOPICS + 10 * (size_t)(total_parts > 0 ? total_parts : 0) +
                 MAC_LEN;
    return 1 + (raw * 4 + 2) / 3;
}

static size_t put_varint(unsigned char *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (unsigned char)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (unsigned char)v;
    return n;
}

/* 0 or -1 (runs past end, or longer than 10 bytes) */
static int get_varint(const unsigned char *p, size_t n, size_t *i, uint64_t *v)
{
    uint64_t r = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (*i >= n)
            return -1;
        unsigned char b = p[(*i)++];
        r |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = r;
            return 0;
        }
    }
    return -1;
}

static size_t b64_encode(const unsigned char *in, size_t n, char *out)
{
    size_t o = 0, i = 0;
    for (; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = b64[v >> 18];
        out[o++] = b64[(v >> 12) & 63];
        out[o++] = b64[(v >> 6) & 63];
        out[o++] = b64[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = b64[v >> 18];
        out[o++] = b64[(v >> 12) & 63];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = b64[v >> 18];
        out[o++] = b64[(v >> 12) & 63];
        out[o++] = b64[(v >> 6) & 63];
    }
    out[o] = '\0';
    return o;
}

static int b64_val(char c)
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

/* Bytes decoded, or -1 (a character outside base64url, a length of 4k+1,
 * or unused bits that are not zero). */
static long b64_decode(const char *in, size_t n, unsigned char *out)
{
    if (n % 4 == 1)
        return -1;
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64_val(in[i]);
        if (v < 0)
            return -1;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (acc != 0)
        return -1; /* one token, one spelling */
    return (long)o;
}

char oms_postoken_class_char(unsigned cls)
{
    return "0123456789abcdef"[cls & OMS_POSTOKEN_MAX_CLASS];
}

/* The class a token's first character names, -1 when none (lowercase hex
 * only: one class, one spelling). */
static int class_of(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

int oms_postoken_encode(const oms_postoken *k, unsigned cls, const int *nparts,
                        const int64_t *vec, char *out, size_t outlen)
{
    if (!k || cls > OMS_POSTOKEN_MAX_CLASS || !nparts || !vec || !out)
        return OMS_EINVAL;
    int total = 0;
    for (int t = 0; t < k->ntopics; t++) {
        if (nparts[t] < 0 || total + nparts[t] > OMS_POSTOKEN_MAX_PARTS)
            return OMS_EINVAL;
        total += nparts[t];
    }
    unsigned char raw[MAX_RAW];
    size_t n = 0;
    raw[n++] = VERSION;
    n += put_varint(raw + n, (uint64_t)k->ntopics);
    int i = 0;
    for (int t = 0; t < k->ntopics; t++) {
        n += put_varint(raw + n, (uint64_t)nparts[t]);
        uint64_t prev = 0;
        for (int p = 0; p < nparts[t]; p++, i++) {
            if (vec[i] < -1)
                return OMS_EINVAL;
            int64_t delta = (int64_t)((uint64_t)vec[i] - prev);
            uint64_t zz = ((uint64_t)delta << 1) ^ (uint64_t)(delta >> 63);
            n += put_varint(raw + n, zz);
            prev = (uint64_t)vec[i];
        }
    }
    unsigned char m[32];
    if (mac(k, "pos:", raw, n, m) != 0)
        return OMS_ENOMEM;
    memcpy(raw + n, m, MAC_LEN);
    n += MAC_LEN;
    if (outlen < 2 + (n * 4 + 2) / 3)
        return OMS_ERANGE;
    out[0] = oms_postoken_class_char(cls);
    return (int)(1 + b64_encode(raw, n, out + 1));
}

int oms_postoken_decode(const oms_postoken *k, const char *tok, size_t len, unsigned *cls,
                        const int *nparts, int64_t *vec)
{
    int c0 = tok ? class_of(tok[0]) : -1;
    if (!k || !tok || len < 2 || c0 < 0)
        return OMS_EINVAL;
    if (len - 1 > (MAX_RAW * 4 + 2) / 3)
        return OMS_EINVAL;
    unsigned char raw[MAX_RAW + 3];
    long rn = b64_decode(tok + 1, len - 1, raw);
    if (rn < 1 + 1 + MAC_LEN)
        return OMS_EINVAL;
    size_t n = (size_t)rn - MAC_LEN;
    unsigned char m[32];
    if (mac(k, "pos:", raw, n, m) != 0)
        return OMS_ENOMEM;
    if (CRYPTO_memcmp(m, raw + n, MAC_LEN) != 0)
        return OMS_EDENIED;
    /* signed by us: now its shape */
    size_t i = 0;
    uint64_t v;
    if (raw[i++] != VERSION)
        return OMS_EINVAL;
    if (get_varint(raw, n, &i, &v) != 0)
        return OMS_EINVAL;
    if (v != (uint64_t)k->ntopics)
        return OMS_ENOTFOUND;
    int at = 0;
    bool other = false;
    for (int t = 0; t < k->ntopics; t++) {
        uint64_t np;
        if (get_varint(raw, n, &i, &np) != 0 || np > OMS_POSTOKEN_MAX_PARTS)
            return OMS_EINVAL;
        if (np != (uint64_t)nparts[t])
            other = true;
        uint64_t prev = 0;
        for (uint64_t p = 0; p < np; p++) {
            uint64_t zz;
            if (get_varint(raw, n, &i, &zz) != 0)
                return OMS_EINVAL;
            int64_t delta = (int64_t)(zz >> 1) ^ -(int64_t)(zz & 1);
            uint64_t val = prev + (uint64_t)delta;
            prev = val;
            if ((int64_t)val < -1)
                return OMS_EINVAL;
            if (!other)
                vec[at++] = (int64_t)val;
        }
    }
    if (i != n)
        return OMS_EINVAL;
    if (other)
        return OMS_ENOTFOUND;
    if (cls)
        *cls = (unsigned)c0;
    return OMS_OK;
}

static int pid_mac(const oms_postoken *k, const unsigned char *rnd, int64_t user_id,
                   unsigned char out[32])
{
    unsigned char buf[PID_RAND + 8];
    memcpy(buf, rnd, PID_RAND);
    for (int i = 0; i < 8; i++)
        buf[PID_RAND + i] = (unsigned char)((uint64_t)user_id >> (8 * i));
    return mac(k, "pid:", buf, sizeof buf, out);
}

int oms_postoken_pid_new(const oms_postoken *k, int64_t user_id, char *out)
{
    unsigned char raw[PID_RAND + PID_MAC];
    size_t got = 0;
    while (got < PID_RAND) {
        ssize_t r = getrandom(raw + got, PID_RAND - got, 0);
        if (r <= 0)
            return OMS_EIO;
        got += (size_t)r;
    }
    unsigned char m[32];
    if (pid_mac(k, raw, user_id, m) != 0)
        return OMS_ENOMEM;
    memcpy(raw + PID_RAND, m, PID_MAC);
    b64_encode(raw, sizeof raw, out);
    return OMS_OK;
}

int oms_postoken_pid_check(const oms_postoken *k, const char *pid, int64_t user_id)
{
    if (!k || !pid || strlen(pid) != OMS_POSTOKEN_PID_LEN)
        return OMS_EINVAL;
    unsigned char raw[PID_RAND + PID_MAC + 3];
    if (b64_decode(pid, OMS_POSTOKEN_PID_LEN, raw) != PID_RAND + PID_MAC)
        return OMS_EINVAL;
    unsigned char m[32];
    if (pid_mac(k, raw, user_id, m) != 0)
        return OMS_ENOMEM;
    return CRYPTO_memcmp(m, raw + PID_RAND, PID_MAC) == 0 ? OMS_OK : OMS_EDENIED;
}
