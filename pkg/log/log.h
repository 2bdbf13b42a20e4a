/* log.h — structured logging: one JSON object per line, or aligned readable
 * text when the output is a terminal.
 *
 *   oms_log(lg, OMS_LOG_WARN, "record not decodable",
 *           OMS_LS("topic", topic), OMS_LI("partition", p), OMS_LI("offset", off));
 *
 * JSON:  {"ts":"2026-11-25T18:13:04.123Z","level":"warn","msg":"record not decodable","topic":"oms.orders","partition":3,"offset":1042}
 * text:  18:13:04.123 WARN  record not decodable           topic=oms.orders partition=3 offset=1042
 *
 * Each line is written with a single write(2), so lines from several threads
 * never interleave. A NULL logger is allowed and logs nothing. */
#ifndef OMS_LOG_H
#define OMS_LOG_H

#include <stdint.h>
#include <stdio.h>

typedef enum {
    OMS_LOG_DEBUG = 0,
    OMS_LOG_INFO = 1,
    OMS_LOG_WARN = 2,
    OMS_LOG_ERROR = 3,
} oms_log_level;

typedef enum {
    OMS_LOG_FORMAT_AUTO = 0, /* text if the fd is a terminal, JSON otherwise */
    OMS_LOG_FORMAT_JSON = 1,
    OMS_LOG_FORMAT_TEXT = 2,
} oms_log_format;

typedef enum {
    OMS_LOG_F_END = 0,
    OMS_LOG_F_STR,
    OMS_LOG_F_INT,
    OMS_LOG_F_DBL,
    OMS_LOG_F_BOOL,
} oms_log_ftype;

typedef struct oms_log_field {
    const char *key;
    oms_log_ftype type;
    const char *s;
    int64_t i;
    double d;
} oms_log_field;

#define OMS_LS(k, v) ((oms_log_field){(k), OMS_LOG_F_STR, (v), 0, 0.0})
#define OMS_LI(k, v) ((oms_log_field){(k), OMS_LOG_F_INT, NULL, (int64_t)(v), 0.0})
#define OMS_LD(k, v) ((oms_log_field){(k), OMS_LOG_F_DBL, NULL, 0, (double)(v)})
#define OMS_LB(k, v) ((oms_log_field){(k), OMS_LOG_F_BOOL, NULL, (v) ? 1 : 0, 0.0})

typedef struct oms_logger oms_logger;

/* A logger writing to fd (usually 2) at or above min_level. Returns NULL
 * only on allocation failure. */
oms_logger *oms_logger_new(int fd, oms_log_level min_level, oms_log_format format);
void oms_logger_free(oms_logger *lg);

void oms_logger_set_level(oms_logger *lg, oms_log_level level);
oms_log_level oms_logger_level(const oms_logger *lg);

/* "debug" | "info" | "warn" (or "warning") | "error", case-insensitive.
 * Returns 0 or OMS_EINVAL. */
int oms_log_level_parse(const char *s, oms_log_level *out);
const char *oms_log_level_name(oms_log_level level);

/* "auto" | "json" | "text". Returns 0 or OMS_EINVAL. */
int oms_log_format_parse(const char *s, oms_log_format *out);

/* Log msg with the fields of the array, which ends with an entry whose type
 * is OMS_LOG_F_END. Strings are JSON-escaped (JSON) or quoted when they
 * hold spaces (text). Use the oms_log() macro. */
void oms_log_fields(oms_logger *lg, oms_log_level level, const char *msg,
                    const oms_log_field *fields);

#define oms_log(lg, level, ...) oms_log_fields_(lg, level, __VA_ARGS__, OMS_LOG_END_)
#define OMS_LOG_END_ ((oms_log_field){NULL, OMS_LOG_F_END, NULL, 0, 0.0})
#define oms_log_fields_(lg, level, msg, ...) \
    oms_log_fields((lg), (level), (msg), (const oms_log_field[]){__VA_ARGS__})

#endif
