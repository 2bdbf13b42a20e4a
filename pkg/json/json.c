/* json.c — shortest round-trip reals and a json_dumps() that writes them.
 *
 * The digits: the 15-significant-digit rounding of a double, trailing zeros
 * removed, is its shortest round-trip form whenever it reads back to the
 * same double (DBL_DIG is 15: two different strings of at most 15 digits
 * never read back to the same normal double, so a shorter one, padded with
 * zeros, would be that rounding). Otherwise 16 digits, else 17, which
 * always do. "Reads back" is decided exactly with 128-bit integers for
 * 2^-19 <= v < 2^126 (money, quantities, ratios, timestamps: everything the
 * project writes), and with snprintf/strtod outside that range. */
#include "json/json.h"

#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- shortest digits ------------------------------------------------------------- */

__extension__ typedef unsigned __int128 u128;

static const uint64_t pow10_u64[20] = {1ull,
                                       10ull,
                                       100ull,
                                       1000ull,
                                       10000ull,
                                       100000ull,
                                       1000000ull,
                                       10000000ull,
                                       100000000ull,
                                       1000000000ull,
                                       10000000000ull,
                                       100000000000ull,
                                       1000000000000ull,
                                       10000000000000ull,
                                       100000000000000ull,
                                       1000000000000000ull,
                                       10000000000000000ull,
                                       100000000000000000ull,
                                       1000000000000000000ull,
                                       10000000000000000000ull};

static u128 pow10_u128(int k) /* 0 <= k <= 38 */
{
    return k < 20 ? (u128)pow10_u64[k] : (u128)pow10_u64[19] * pow10_u64[k - 19];
}

/* A candidate of p digits read back: does it give v = m * 2^e again? err is
 * its distance from v and ulp the gap to v's neighbours, both in the same
 * unit. strtod rounds to nearest, a tie to the even mantissa; below a power
 * of two the neighbour is only half an ulp away. */
static bool reads_back(u128 err, u128 ulp, bool below, uint64_t m, int be)
{
    bool narrow = below && m == (1ull << 52) && be > 1;
    u128 twice = err * (narrow ? 4 : 2);
    return twice < ulp || (twice == ulp && (m & 1) == 0);
}

/* v = m * 2^e (2^-19 <= v < 2^126) scaled to 17 digits: v * 10^k = q + r / d
 * exactly, 10^16 <= q < 10^17, k = 16 - *x (*x the decimal exponent of the
 * first digit), with ulp the gap 2^e between v and its upper neighbour in
 * units of 1/d. x is a guess on entry (floor(log10 v), or one less). */
typedef struct {
    uint64_t q;
    u128 r, d, ulp;
    int x;
} scaled;

static bool scale17(uint64_t m, int e, int x, scaled *o)
{
    for (int iter = 0; iter < 4; iter++) {
        int k = 16 - x;
        u128 q, r = 0, d = 1, ulp;
        if (k >= 0) {
            /* k <= 22 (x >= -6): m * 10^k < 2^53 * 2^74 */
            u128 a = (u128)m * pow10_u128(k);
            if (e >= 0) {
                q = a << e; /* v * 10^k < 10^18 here, so e is small */
                ulp = pow10_u128(k) << e;
            } else {
                int s = -e; /* 1..71 */
                q = a >> s;
                r = a & (((u128)1 << s) - 1);
                d = (u128)1 << s;
                ulp = pow10_u128(k);
            }
        } else { /* v >= 10^17 > 2^53: an integer, m << e < 2^126, -k <= 21 */
            u128 vv = (u128)m << e;
            d = pow10_u128(-k);
            q = vv / d;
            r = vv % d;
            ulp = (u128)1 << e;
        }
        if (q < pow10_u64[16]) {
            x--;
            continue;
        }
        if (q >= pow10_u64[17]) {
            x++;
            continue;
        }
        *o = (scaled){(uint64_t)q, r, d, ulp, x};
        return true;
    }
    return false;
}

/* The p-digit (15..17) rounding of v that reads back to v, in *n and *x:
 * printf's rounding (nearest, ties to even) when that reads back, else the
 * other p-digit neighbour of v when that one does (possible only just above
 * a power of two, where the gap below is the narrower). False when neither
 * does. The p digits come from the 17: v * 10^(k-j) = (q * d + r) / (10^j d). */
static bool round_p(const scaled *sc, uint64_t m, int be, int p, uint64_t *n, int *x)
{
    uint64_t div = pow10_u64[17 - p];
    uint64_t down = sc->q / div;
    u128 r = (u128)(sc->q % div) * sc->d + sc->r, d = (u128)div * sc->d;
    bool up = 2 * r > d || (2 * r == d && (down & 1));
    bool ok_down = reads_back(r, sc->ulp, r != 0, m, be);
    bool ok_up = r != 0 && reads_back(d - r, sc->ulp, false, m, be);
    if (up ? ok_up : ok_down)
        *n = up ? down + 1 : down;
    else if (up ? ok_down : ok_up)
        *n = up ? down : down + 1;
    else
        return false;
    *x = sc->x;
    if (*n == pow10_u64[p]) {
        *n = pow10_u64[p - 1];
        (*x)++;
    }
    return true;
}

/* p digits of v as "%.{p-1}e" gives them: *n (p digits) and *x. */
static void printf_p(double v, int p, uint64_t *n, int *x)
{
    char buf[48];
    snprintf(buf, sizeof buf, "%.*e", p - 1, v);
    uint64_t d = 0;
    const char *s = buf;
    for (; *s && *s != 'e'; s++)
        if (*s >= '0' && *s <= '9')
            d = d * 10 + (uint64_t)(*s - '0');
    *n = d;
    *x = *s == 'e' ? atoi(s + 1) : 0;
}

static double read_back(uint64_t n, int p, int x)
{
    char buf[48];
    snprintf(buf, sizeof buf, "%llue%d", (unsigned long long)n, x - (p - 1));
    return strtod(buf, NULL);
}

/* The same outside the exact range (tiny, subnormal, huge), with the C
 * library doing the arithmetic. Subnormals have fewer than 15 significant
 * digits of precision, so there every length from 1 is tried. */
static int slow_shortest(double v, uint64_t *n, int *x)
{
    for (int p = v < DBL_MIN ? 1 : 15; p < 17; p++) {
        printf_p(v, p, n, x);
        double back = read_back(*n, p, *x);
        if (back == v)
            return p;
        if (back < v) { /* the neighbour above may still read back (a power of two) */
            uint64_t n1 = *n + 1;
            int x1 = *x;
            if (n1 == pow10_u64[p]) {
                n1 = pow10_u64[p - 1];
                x1++;
            }
            if (read_back(n1, p, x1) == v) {
                *n = n1;
                *x = x1;
                return p;
            }
        }
    }
    printf_p(v, 17, n, x);
    return 17;
}

int oms_json_shortest(double v, uint64_t *digits, int *exp10)
{
    uint64_t bits;
    memcpy(&bits, &v, 8);
    int be = (int)(bits >> 52) & 0x7FF;
    uint64_t m = (bits & ((1ull << 52) - 1)) | (1ull << 52);
    int e = be - 1075;
    int b = e + 52; /* floor(log2 v) for normal v */
    uint64_t n = 0;
    int x = 0, p = 0;
    scaled sc;
    /* floor(b * log10(2)) (78913 / 2^18 is log10(2) closely enough for
     * |b| < 1650), which is floor(log10 v) or one less; scale17 settles it.
     * Rounded down for negative b without shifting a negative number. */
    int guess = b >= 0 ? (b * 78913) >> 18 : -((-b * 78913 + (1 << 18) - 1) >> 18);
    if (be != 0 && b >= -19 && b <= 125 && scale17(m, e, guess, &sc)) {
        for (p = 15; p <= 17; p++)
            if (round_p(&sc, m, be, p, &n, &x))
                break;
    }
    if (p == 0 || p > 17)
        p = slow_shortest(v, &n, &x);
    while (p > 1 && n % 10 == 0) {
        n /= 10;
        p--;
    }
    *digits = n;
    *exp10 = x;
    return p;
}

/* u (< 10^20) in decimal at o; returns the end. */
static char *put_u64(char *o, uint64_t u)
{
    char tmp[20];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    while (n)
        *o++ = tmp[--n];
    return o;
}

size_t oms_json_fmt_real(double v, char out[OMS_JSON_REAL_MAX])
{
    char *o = out;
    if (signbit(v)) {
        *o++ = '-';
        v = -v;
    }
    if (v == 0) {
        memcpy(o, "0.0", 4);
        return (size_t)(o + 3 - out);
    }
    uint64_t n;
    int x;
    int nd = oms_json_shortest(v, &n, &x);
    char d[17];
    for (int i = nd - 1; i >= 0; i--) {
        d[i] = (char)('0' + n % 10);
        n /= 10;
    }
    /* where "%.17g" switches to the exponent form, as jansson wrote it */
    if (x < -4 || x >= 17) {
        *o++ = d[0];
        if (nd > 1) {
            *o++ = '.';
            memcpy(o, d + 1, (size_t)nd - 1);
            o += nd - 1;
        }
        *o++ = 'e';
        if (x < 0)
            *o++ = '-';
        o = put_u64(o, (uint64_t)(x < 0 ? -x : x));
    } else if (x >= 0) { /* integer part of x + 1 digits */
        if (nd <= x + 1) {
            memcpy(o, d, (size_t)nd);
            o += nd;
            memset(o, '0', (size_t)(x + 1 - nd));
            o += x + 1 - nd;
            /* integral: ".0" keeps it a real when read back */
            *o++ = '.';
            *o++ = '0';
        } else {
            memcpy(o, d, (size_t)x + 1);
            o += x + 1;
            *o++ = '.';
            memcpy(o, d + x + 1, (size_t)(nd - x - 1));
            o += nd - x - 1;
        }
    } else { /* 0.000ddd */
        *o++ = '0';
        *o++ = '.';
        for (int i = 0; i < -x - 1; i++)
            *o++ = '0';
        memcpy(o, d, (size_t)nd);
        o += nd;
    }
    *o = '\0';
    return (size_t)(o - out);
}

/* ---- the serializer ------------------------------------------------------------- */

/* jansson's dump.c, rewritten on a growing buffer; the comments say where
 * it does something surprising that must be kept. */

#define FLAGS_TO_INDENT(f) ((f) & 0x1F)
#define MAX_PARENTS 2048

typedef struct {
    char *p;
    size_t len, cap;
    bool failed;
    const json_t *parents[MAX_PARENTS]; /* the containers being written */
    int nparents;
} dumper;

static bool put(dumper *w, const char *s, size_t n)
{
    if (w->failed)
        return false;
    if (w->cap - w->len <= n) {
        size_t cap = w->cap ? w->cap : 256;
        while (cap - w->len <= n) {
            if (cap > SIZE_MAX / 2) {
                w->failed = true;
                return false;
            }
            cap *= 2;
        }
        char *p = realloc(w->p, cap);
        if (!p) {
            w->failed = true;
            return false;
        }
        w->p = p;
        w->cap = cap;
    }
    memcpy(w->p + w->len, s, n);
    w->len += n;
    return true;
}

static bool put_indent(dumper *w, size_t flags, int depth, bool space)
{
    static const char whitespace[] = "                                ";
    if (FLAGS_TO_INDENT(flags) > 0) {
        size_t n = (size_t)depth * FLAGS_TO_INDENT(flags);
        if (!put(w, "\n", 1))
            return false;
        while (n > 0) {
            size_t c = n < sizeof whitespace - 1 ? n : sizeof whitespace - 1;
            if (!put(w, whitespace, c))
                return false;
            n -= c;
        }
    } else if (space && !(flags & JSON_COMPACT)) {
        return put(w, " ", 1);
    }
    return true;
}

/* Length of the UTF-8 sequence at s (jansson's utf8_iterate: no overlongs,
 * surrogates or code points above U+10FFFF) and its code point; 0 when
 * invalid. */
static size_t utf8_next(const unsigned char *s, size_t left, int32_t *cp)
{
    unsigned char c = s[0];
    size_t n;
    int32_t v;
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
        v = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        v = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        v = c & 0x07;
    } else {
        return 0;
    }
    if (n > left)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        v = v << 6 | (s[i] & 0x3F);
    }
    if ((n == 3 && v < 0x800) || (n == 4 && v < 0x10000) || v > 0x10FFFF ||
        (v >= 0xD800 && v <= 0xDFFF))
        return 0;
    *cp = v;
    return n;
}

static bool put_string(dumper *w, const char *str, size_t len, size_t flags)
{
    static const char hex[] = "0123456789ABCDEF";
    const unsigned char *s = (const unsigned char *)str, *end = s + len, *run = s;
    if (!put(w, "\"", 1))
        return false;
    while (s < end) {
        int32_t cp;
        size_t n = utf8_next(s, (size_t)(end - s), &cp);
        if (!n) {
            w->failed = true; /* json_dumps fails on such a string */
            return false;
        }
        bool esc = cp == '\\' || cp == '"' || cp < 0x20 ||
                   ((flags & JSON_ESCAPE_SLASH) && cp == '/') ||
                   ((flags & JSON_ENSURE_ASCII) && cp > 0x7F);
        if (!esc) {
            s += n;
            continue;
        }
        if (s > run && !put(w, (const char *)run, (size_t)(s - run)))
            return false;
        char seq[13];
        size_t sl = 2;
        switch (cp) {
        case '\\': memcpy(seq, "\\\\", 2); break;
        case '"': memcpy(seq, "\\\"", 2); break;
        case '\b': memcpy(seq, "\\b", 2); break;
        case '\f': memcpy(seq, "\\f", 2); break;
        case '\n': memcpy(seq, "\\n", 2); break;
        case '\r': memcpy(seq, "\\r", 2); break;
        case '\t': memcpy(seq, "\\t", 2); break;
        case '/': memcpy(seq, "\\/", 2); break;
        default: {
            int32_t units[2] = {cp, 0};
            int nu = 1;
            if (cp >= 0x10000) { /* a UTF-16 surrogate pair */
                cp -= 0x10000;
                units[0] = 0xD800 | ((cp & 0xFFC00) >> 10);
                units[1] = 0xDC00 | (cp & 0x3FF);
                nu = 2;
            }
            sl = 0;
            for (int i = 0; i < nu; i++) {
                seq[sl++] = '\\';
                seq[sl++] = 'u';
                for (int sh = 12; sh >= 0; sh -= 4)
                    seq[sl++] = hex[(units[i] >> sh) & 15];
            }
            break;
        }
        }
        if (!put(w, seq, sl))
            return false;
        s += n;
        run = s;
    }
    if (s > run && !put(w, (const char *)run, (size_t)(s - run)))
        return false;
    return put(w, "\"", 1);
}

typedef struct {
    const char *key;
    size_t len;
} sort_key;

/* jansson's compare_keys: bytes, then length */
static int compare_keys(const void *a, const void *b)
{
    const sort_key *k1 = a, *k2 = b;
    size_t min = k1->len < k2->len ? k1->len : k2->len;
    int res = memcmp(k1->key, k2->key, min);
    if (res)
        return res;
    return k1->len < k2->len ? -1 : k1->len > k2->len;
}

static bool dump_value(dumper *w, const json_t *json, size_t flags, int depth);

static bool enter(dumper *w, const json_t *json)
{
    /* a container inside itself: json_dumps refuses it */
    for (int i = 0; i < w->nparents; i++)
        if (w->parents[i] == json)
            return false;
    if (w->nparents == MAX_PARENTS)
        return false;
    w->parents[w->nparents++] = json;
    return true;
}

static bool dump_member(dumper *w, const char *key, size_t klen, const json_t *value,
                        size_t flags, int depth, bool last)
{
    if (!put_string(w, key, klen, flags) ||
        !put(w, flags & JSON_COMPACT ? ":" : ": ", flags & JSON_COMPACT ? 1 : 2) ||
        !dump_value(w, value, flags, depth + 1))
        return false;
    if (!last)
        return put(w, ",", 1) && put_indent(w, flags, depth + 1, true);
    return put_indent(w, flags, depth, false);
}

static bool dump_object(dumper *w, const json_t *json, size_t flags, int depth, bool embed)
{
    if (!enter(w, json))
        return false;
    void *iter = json_object_iter((json_t *)json);
    if (!embed && !put(w, "{", 1))
        return false;
    if (!iter) {
        w->nparents--;
        return embed || put(w, "}", 1);
    }
    if (!put_indent(w, flags, depth + 1, false))
        return false;
    if (flags & JSON_SORT_KEYS) {
        size_t size = json_object_size(json), i = 0;
        sort_key *keys = malloc(size * sizeof *keys);
        if (!keys)
            return false;
        for (; iter && i < size; i++) {
            keys[i].key = json_object_iter_key(iter);
            keys[i].len = json_object_iter_key_len(iter);
            iter = json_object_iter_next((json_t *)json, iter);
        }
        size = i;
        qsort(keys, size, sizeof *keys, compare_keys);
        for (i = 0; i < size; i++) {
            const json_t *value = json_object_getn(json, keys[i].key, keys[i].len);
            if (!dump_member(w, keys[i].key, keys[i].len, value, flags, depth, i + 1 == size)) {
                free(keys);
                return false;
            }
        }
        free(keys);
    } else {
        while (iter) {
            void *next = json_object_iter_next((json_t *)json, iter);
            if (!dump_member(w, json_object_iter_key(iter), json_object_iter_key_len(iter),
                             json_object_iter_value(iter), flags, depth, !next))
                return false;
            iter = next;
        }
    }
    w->nparents--;
    return embed || put(w, "}", 1);
}

static bool dump_array(dumper *w, const json_t *json, size_t flags, int depth, bool embed)
{
    if (!enter(w, json))
        return false;
    size_t n = json_array_size(json);
    if (!embed && !put(w, "[", 1))
        return false;
    if (n == 0) {
        w->nparents--;
        return embed || put(w, "]", 1);
    }
    if (!put_indent(w, flags, depth + 1, false))
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!dump_value(w, json_array_get(json, i), flags, depth + 1))
            return false;
        if (i + 1 < n) {
            if (!put(w, ",", 1) || !put_indent(w, flags, depth + 1, true))
                return false;
        } else if (!put_indent(w, flags, depth, false)) {
            return false;
        }
    }
    w->nparents--;
    return embed || put(w, "]", 1);
}

static bool dump_value(dumper *w, const json_t *json, size_t flags, int depth)
{
    /* JSON_EMBED leaves out the outermost brackets only */
    bool embed = flags & JSON_EMBED;
    flags &= ~(size_t)JSON_EMBED;
    if (!json)
        return false;
    switch (json_typeof(json)) {
    case JSON_NULL: return put(w, "null", 4);
    case JSON_TRUE: return put(w, "true", 4);
    case JSON_FALSE: return put(w, "false", 5);
    case JSON_INTEGER: {
        char buf[32];
        int n = snprintf(buf, sizeof buf, "%" JSON_INTEGER_FORMAT, json_integer_value(json));
        return n > 0 && put(w, buf, (size_t)n);
    }
    case JSON_REAL: {
        char buf[OMS_JSON_REAL_MAX];
        return put(w, buf, oms_json_fmt_real(json_real_value(json), buf));
    }
    case JSON_STRING:
        return put_string(w, json_string_value(json), json_string_length(json), flags);
    case JSON_ARRAY: return dump_array(w, json, flags, depth, embed);
    case JSON_OBJECT: return dump_object(w, json, flags, depth, embed);
    default: return false;
    }
}

char *oms_json_dumps(const json_t *json, size_t flags)
{
    if (!(flags & JSON_ENCODE_ANY) && !json_is_array(json) && !json_is_object(json))
        return NULL;
    dumper *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    char *out = NULL;
    if (dump_value(w, json, flags, 0) && put(w, "", 1)) /* the NUL */
        out = w->p;
    else
        free(w->p);
    /* a result sized to its text, as json_dumps gives it */
    if (out && w->cap - w->len > 256) {
        char *shrunk = realloc(out, w->len);
        if (shrunk)
            out = shrunk;
    }
    free(w);
    return out;
}
