/* fuzz_tokens.c — the placeholder tokens of fuzz.h:
 *   @T0 admin 1      @T1 staff 2        @T2 customer 3     @T3 customer 4
 *   @T4 service      @T5 customer 3, expired               @T6 admin 1, wrong secret
 *   @T7 customer 3, later exp (a refresh)                  @T8 admin 1, alg none
 *   @T9 staff 2, iss/aud set (not checked by fuzz_auth) */
#include "fuzz.h"

#include <string.h>

#include <jansson.h>

static char *g_tokens[FUZZ_NTOKENS];
static oms_auth *g_auth;

static char *b64url(const char *s)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t n = strlen(s);
    char *o = malloc(n * 4 / 3 + 4);
    size_t k = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)(unsigned char)s[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)(unsigned char)s[i + 1] << 8;
        if (i + 2 < n)
            v |= (unsigned char)s[i + 2];
        o[k++] = a[(v >> 18) & 63];
        o[k++] = a[(v >> 12) & 63];
        if (i + 1 < n)
            o[k++] = a[(v >> 6) & 63];
        if (i + 2 < n)
            o[k++] = a[v & 63];
    }
    o[k] = '\0';
    return o;
}

static char *mint(const char *secret, int64_t uid, oms_role role, int64_t ttl, int64_t now,
                  const char *iss, const char *aud)
{
    char *t = oms_auth_mint_hs256((const unsigned char *)secret, strlen(secret), uid, role, ttl,
                                  now, iss, aud);
    if (!t) {
        fprintf(stderr, "fuzz: cannot mint a token\n");
        abort();
    }
    return t;
}

void fuzz_tokens_init(int64_t now_s)
{
    if (g_auth)
        return;
    const char *s = FUZZ_SECRET;
    int64_t day = 86400, decade = 3650 * day;
    g_tokens[0] = mint(s, 1, OMS_ROLE_ADMIN, decade, now_s, NULL, NULL);
    g_tokens[1] = mint(s, 2, OMS_ROLE_STAFF, decade, now_s, NULL, NULL);
    g_tokens[2] = mint(s, 3, OMS_ROLE_CUSTOMER, decade, now_s, NULL, NULL);
    g_tokens[3] = mint(s, 4, OMS_ROLE_CUSTOMER, decade, now_s, NULL, NULL);
    g_tokens[4] = mint(s, 0, OMS_ROLE_SERVICE, decade, now_s, NULL, NULL);
    g_tokens[5] = mint(s, 3, OMS_ROLE_CUSTOMER, 3600, now_s - 2 * day, NULL, NULL);
    g_tokens[6] = mint("another-secret-another-secret-another-sec", 1, OMS_ROLE_ADMIN, decade,
                       now_s, NULL, NULL);
    g_tokens[7] = mint(s, 3, OMS_ROLE_CUSTOMER, 2 * decade, now_s, NULL, NULL);
    char payload[160];
    snprintf(payload, sizeof payload,
             "{\"sub\":\"1\",\"userId\":1,\"role\":\"admin\",\"exp\":%lld}",
             (long long)(now_s + decade));
    char *h = b64url("{\"alg\":\"none\",\"typ\":\"JWT\"}"), *p = b64url(payload);
    size_t n = strlen(h) + strlen(p) + 3;
    g_tokens[8] = malloc(n);
    snprintf(g_tokens[8], n, "%s.%s.", h, p);
    free(h);
    free(p);
    g_tokens[9] = mint(s, 2, OMS_ROLE_STAFF, decade, now_s, "oms-issuer", "oms-audience");
    char err[256];
    oms_auth_opts o = {.algorithm = "HS256",
                       .key = (const unsigned char *)s,
                       .key_len = strlen(s),
                       .leeway_s = 5};
    g_auth = oms_auth_new(&o, err, sizeof err);
    if (!g_auth) {
        fprintf(stderr, "fuzz: oms_auth_new: %s\n", err);
        abort();
    }
}

const char *fuzz_token(int i)
{
    return i >= 0 && i < FUZZ_NTOKENS ? g_tokens[i] : "";
}

const oms_auth *fuzz_auth(void)
{
    return g_auth;
}

char *fuzz_expand(const uint8_t *data, size_t size, size_t *len)
{
    size_t need = size + 1;
    for (size_t i = 0; i + 2 < size; i++)
        if (data[i] == '@' && data[i + 1] == 'T' && data[i + 2] >= '0' && data[i + 2] <= '9')
            need += strlen(g_tokens[data[i + 2] - '0']);
    char *o = malloc(need);
    if (!o)
        abort();
    size_t k = 0;
    for (size_t i = 0; i < size;) {
        if (i + 2 < size && data[i] == '@' && data[i + 1] == 'T' && data[i + 2] >= '0' &&
            data[i + 2] <= '9') {
            const char *t = g_tokens[data[i + 2] - '0'];
            size_t tl = strlen(t);
            memcpy(o + k, t, tl);
            k += tl;
            i += 3;
        } else {
            o[k++] = (char)data[i++];
        }
    }
    o[k] = '\0';
    if (len)
        *len = k;
    return o;
}
