/* oms.h — definitions shared by every pkg/ module: error codes and helpers.
 *
 * Convention: functions return 0 on success or a negative OMS_E* code;
 * oms_strerror() turns a code into a short lowercase phrase. Constructors
 * return NULL and fill a caller-supplied errbuf instead. */
#ifndef OMS_COMMON_H
#define OMS_COMMON_H

#include <stddef.h>
#include <stdint.h>

enum {
    OMS_OK = 0,
    OMS_EINVAL = -1,     /* invalid argument or malformed input */
    OMS_ENOMEM = -2,     /* out of memory */
    OMS_ETRUNC = -3,     /* input ended before a complete value */
    OMS_ENOTFOUND = -4,  /* unknown key, name or fingerprint */
    OMS_EIO = -5,        /* system call or file error */
    OMS_ESCHEMA = -6,    /* schema is invalid or incompatible */
    OMS_EMAGIC = -7,     /* not single-object encoded (bad marker) */
    OMS_ERANGE = -8,     /* value out of range */
    OMS_EKAFKA = -9,     /* Kafka client error */
    OMS_ETIMEDOUT = -10, /* an operation did not finish in time */
    OMS_ECONFIG = -11,   /* configuration error */
    OMS_EEXPIRED = -12,  /* a token or position is past its validity */
    OMS_EDENIED = -13,   /* authenticated but not allowed */
    OMS_EAGAIN = -14,    /* not possible yet (a dependency is down): try again later */
};

/* A short lowercase description of an OMS_E* code (never NULL). */
const char *oms_strerror(int err);

/* snprintf into errbuf when errbuf is non-NULL and errlen > 0. */
void oms_errf(char *errbuf, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Wall clock in milliseconds since the Unix epoch. */
int64_t oms_now_ms(void);

/* Monotonic clock in nanoseconds. */
uint64_t oms_mono_ns(void);

/* Format epoch milliseconds as ISO 8601 UTC with milliseconds
 * ("2026-11-25T18:13:04.123Z") into buf (at least 25 bytes).
 * Returns the length written. */
size_t oms_iso8601_ms(int64_t ms, char *buf, size_t buflen);

/* Parse an ISO 8601 / RFC 3339 timestamp ("2026-11-25T18:13:04Z",
 * optional fraction, "Z" or "+hh:mm") into epoch milliseconds.
 * Returns 0 or OMS_EINVAL. */
int oms_parse_iso8601_ms(const char *s, int64_t *out_ms);

/* Write a new random UUIDv7 (RFC 9562) as 36 characters plus NUL into
 * out[37]. Uses the given millisecond timestamp; random bits come from
 * getrandom(2). */
void oms_uuid7(int64_t ms, char out[37]);

#define OMS_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
