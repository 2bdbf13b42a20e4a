/* common.c — error strings, clocks, timestamps and UUIDv7. */
#define _GNU_SOURCE
#include "oms.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

const char *oms_strerror(int err)
{
    switch (err) {
    case OMS_OK: return "success";
    case OMS_EINVAL: return "invalid input";
    case OMS_ENOMEM: return "out of memory";
    case OMS_ETRUNC: return "truncated input";
    case OMS_ENOTFOUND: return "not found";
    case OMS_EIO: return "i/o error";
    case OMS_ESCHEMA: return "schema error";
    case OMS_EMAGIC: return "bad magic bytes";
    case OMS_ERANGE: return "value out of range";
    case OMS_EKAFKA: return "kafka error";
    case OMS_ETIMEDOUT: return "timed out";
    case OMS_ECONFIG: return "configuration error";
    case OMS_EEXPIRED: return "expired";
    case OMS_EDENIED: return "permission denied";
    case OMS_EAGAIN: return "temporarily unavailable";
    default: return "unknown error";
    }
}

void oms_errf(char *errbuf, size_t errlen, const char *fmt, ...)
{
    if (!errbuf || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errbuf, errlen, fmt, ap);
    va_end(ap);
}

int64_t oms_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t oms_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

size_t oms_iso8601_ms(int64_t ms, char *buf, size_t buflen)
{
    int64_t secs = ms / 1000;
    int64_t frac = ms % 1000;
    if (frac < 0) {
        frac += 1000;
        secs -= 1;
    }
    time_t t = (time_t)secs;
    struct tm tm;
    gmtime_r(&t, &tm);
    int n = snprintf(buf, buflen, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)frac);
    return n < 0 ? 0 : (size_t)n;
}

static int parse_digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if ((*p)[i] < '0' || (*p)[i] > '9')
            return -1;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return 0;
}

int oms_parse_iso8601_ms(const char *s, int64_t *out_ms)
{
    int Y, M, D, h = 0, m = 0, sec = 0, ms = 0;
    const char *p = s;
    if (!s || parse_digits(&p, 4, &Y) || *p++ != '-' || parse_digits(&p, 2, &M) || *p++ != '-' ||
        parse_digits(&p, 2, &D))
        return OMS_EINVAL;
    if (*p == 'T' || *p == 't' || *p == ' ') {
        p++;
        if (parse_digits(&p, 2, &h) || *p++ != ':' || parse_digits(&p, 2, &m))
            return OMS_EINVAL;
        if (*p == ':') {
            p++;
            if (parse_digits(&p, 2, &sec))
                return OMS_EINVAL;
            if (*p == '.' || *p == ',') {
                p++;
                int digits = 0;
                while (*p >= '0' && *p <= '9') {
                    if (digits < 3)
                        ms = ms * 10 + (*p - '0');
                    digits++;
                    p++;
                }
                if (digits == 0)
                    return OMS_EINVAL;
                for (; digits < 3; digits++)
                    ms *= 10;
            }
        }
    }
    int offset_min = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p == '-' ? -1 : 1, oh, om = 0;
        p++;
        if (parse_digits(&p, 2, &oh))
            return OMS_EINVAL;
        if (*p == ':')
            p++;
        if (*p && parse_digits(&p, 2, &om))
            return OMS_EINVAL;
        offset_min = sign * (oh * 60 + om);
    }
    if (*p != '\0')
        return OMS_EINVAL;
    if (M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || sec > 60)
        return OMS_EINVAL;
    /* days from civil (Howard Hinnant's algorithm), no timezone state */
    int y = Y - (M <= 2);
    int era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153u * (unsigned)(M + (M > 2 ? -3 : 9)) + 2) / 5 + (unsigned)D - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    int64_t days = (int64_t)era * 146097 + (int64_t)doe - 719468;
    int64_t t = days * 86400 + h * 3600 + m * 60 + sec - (int64_t)offset_min * 60;
    *out_ms = t * 1000 + ms;
    return OMS_OK;
}

/* A per-thread xorshift generator seeded from getrandom(2): UUIDv7 needs
 * unpredictable-enough bits, and one syscall per event would cost more
 * than the whole encode. */
static _Thread_local uint64_t rng_state[2];

static uint64_t rng_next(void)
{
    if (rng_state[0] == 0 && rng_state[1] == 0) {
        if (getrandom(rng_state, sizeof rng_state, 0) != (ssize_t)sizeof rng_state ||
            (rng_state[0] == 0 && rng_state[1] == 0)) {
            rng_state[0] = (uint64_t)oms_mono_ns() | 1;
            rng_state[1] = (uint64_t)oms_now_ms() ^ 0x9e3779b97f4a7c15ull;
        }
    }
    uint64_t s1 = rng_state[0];
    const uint64_t s0 = rng_state[1];
    const uint64_t result = s0 + s1;
    rng_state[0] = s0;
    s1 ^= s1 << 23;
    rng_state[1] = s1 ^ s0 ^ (s1 >> 18) ^ (s0 >> 5);
    return result;
}

void oms_uuid7(int64_t ms, char out[37])
{
    static const char hex[] = "0123456789abcdef";
    uint8_t b[16];
    uint64_t r1 = rng_next(), r2 = rng_next();
    uint64_t t = (uint64_t)ms;
    for (int i = 0; i < 6; i++)
        b[i] = (uint8_t)(t >> (40 - 8 * i));
    memcpy(b + 6, &r1, 2);
    memcpy(b + 8, &r2, 8);
    b[6] = (uint8_t)(0x70 | (b[6] & 0x0f));
    b[8] = (uint8_t)(0x80 | (b[8] & 0x3f));
    char *o = out;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *o++ = '-';
        *o++ = hex[b[i] >> 4];
        *o++ = hex[b[i] & 15];
    }
    *o = '\0';
}
