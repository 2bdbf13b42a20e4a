/* log.c — structured logging (see log.h).
 *
 * Every call builds its whole line in a buffer of its own (on the stack, or
 * on the heap for long lines) and hands it to the kernel with one write(2).
 * No lock is taken: threads never share a buffer, and the kernel keeps each
 * write of a line together. A line is capped at LOG_MAX_LINE bytes; longer
 * ones are cut inside a string value, marked "...", and still closed
 * properly, so a reader always gets one well-formed line. */
#include "log.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/oms.h"
#include "json/json.h"

#define LOG_STACK_BYTES 2048
#define LOG_MAX_LINE (64 * 1024)
/* Bytes kept free for the end of a cut line: `..."` plus
 * `,"truncated":true}` and the newline, or their text-format twins. */
#define LOG_RESERVE 48
#define LOG_MSG_COLS 32

struct oms_logger {
    int fd;
    /* Atomic so that a level change (SIGHUP reload, omsctl) may race with
     * threads that are logging without tearing or locking. */
    atomic_int min_level;
    oms_log_format format; /* never AUTO: resolved at creation */
    bool color;
};

/* ---- line buffer -------------------------------------------------------- */

typedef struct {
    char *p;
    size_t len;
    size_t cap;
    bool heap;
    bool full; /* the content limit was hit: stop adding fields */
} lbuf;

/* Grow the buffer to hold need bytes (at most LOG_MAX_LINE), moving it
 * from the stack to the heap the first time. */
static bool lb_grow(lbuf *b, size_t need)
{
    if (need <= b->cap)
        return true;
    if (need > LOG_MAX_LINE)
        return false;
    size_t ncap = b->cap * 2;
    while (ncap < need)
        ncap *= 2;
    if (ncap > LOG_MAX_LINE)
        ncap = LOG_MAX_LINE;
    char *np;
    if (b->heap) {
        np = realloc(b->p, ncap);
    } else {
        np = malloc(ncap);
        if (np)
            memcpy(np, b->p, b->len);
    }
    if (!np)
        return false; /* out of memory: the line is cut where it stands */
    b->p = np;
    b->cap = ncap;
    b->heap = true;
    return true;
}

/* Content. The buffer always keeps LOG_RESERVE bytes free behind the
 * content, so a cut line can be closed even when memory runs out. Sets
 * full (and adds nothing) when n bytes do not fit. */
static bool lb_add(lbuf *b, const char *s, size_t n)
{
    if (b->full)
        return false;
    if (b->len + n + LOG_RESERVE > LOG_MAX_LINE || !lb_grow(b, b->len + n + LOG_RESERVE)) {
        b->full = true;
        return false;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    return true;
}

static bool lb_adds(lbuf *b, const char *s)
{
    return lb_add(b, s, strlen(s));
}

/* Closing bytes: they go into the reserve, which is sized for the longest
 * ending a cut line can need (under 32 bytes). */
static void lb_end(lbuf *b, const char *s)
{
    size_t n = strlen(s);
    if (b->len + n > b->cap)
        return; /* cannot happen with LOG_RESERVE >= the longest ending */
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

/* ---- UTF-8 --------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when the bytes are
 * not valid UTF-8 (bad lead byte, truncated, overlong, surrogate, or past
 * U+10FFFF). s[0] must be >= 0x80. */
static size_t utf8_seq_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len;
    unsigned lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0)
            lo = 0xA0; /* overlong */
        else if (c == 0xED)
            hi = 0x9F; /* surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0)
            lo = 0x90; /* overlong */
        else if (c == 0xF4)
            hi = 0x8F; /* > U+10FFFF */
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
    return len;
}

/* ---- JSON ---------------------------------------------------------------- */

/* Append the body of a JSON string (no quotes). Invalid UTF-8 becomes
 * U+FFFD. Returns false when the line limit cut it short. */
static bool json_str_body(lbuf *b, const char *str)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)str;
    size_t n = strlen(str);
    size_t i = 0;
    while (i < n) {
        /* Copy a run of bytes that need no escaping in one go. */
        size_t j = i;
        while (j < n && s[j] >= 0x20 && s[j] < 0x7F && s[j] != '"' && s[j] != '\\')
            j++;
        if (j > i) {
            if (!lb_add(b, (const char *)s + i, j - i)) {
                /* Keep as much of the run as fits. */
                b->full = false;
                size_t room = LOG_MAX_LINE - LOG_RESERVE - b->len;
                if (room > j - i)
                    room = j - i;
                if (room > 0)
                    lb_add(b, (const char *)s + i, room);
                b->full = true;
                return false;
            }
            i = j;
            continue;
        }
        unsigned c = s[i];
        char esc[8];
        size_t elen;
        size_t adv = 1;
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            elen = 2;
        } else if (c == '\n' || c == '\r' || c == '\t' || c == '\b' || c == '\f') {
            esc[0] = '\\';
            esc[1] = c == '\n' ? 'n' : c == '\r' ? 'r' : c == '\t' ? 't' : c == '\b' ? 'b' : 'f';
            elen = 2;
        } else if (c < 0x20 || c == 0x7F) {
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            elen = 6;
        } else {
            size_t sl = utf8_seq_len(s + i, n - i);
            if (sl) {
                memcpy(esc, s + i, sl);
                elen = sl;
                adv = sl;
            } else {
                memcpy(esc, "\\ufffd", 6);
                elen = 6;
            }
        }
        if (!lb_add(b, esc, elen))
            return false;
        i += adv;
    }
    return true;
}

/* Append "str" quoted; a cut string ends with "..." and is still closed. */
static bool json_str(lbuf *b, const char *s)
{
    if (!lb_add(b, "\"", 1)) {
        lb_end(b, "\"...\"");
        return false;
    }
    bool ok = json_str_body(b, s ? s : "");
    if (!ok)
        lb_end(b, "...");
    if (ok)
        ok = lb_add(b, "\"", 1);
    if (!ok)
        lb_end(b, "\"");
    return ok;
}

/* A double as a JSON number that reads back as the same double: the
 * shortest such digits, ".0" added to integral values so a parser keeps it
 * a real (oms_json_fmt_real, as every JSON the project writes). NaN and
 * infinities are not JSON: null. */
static void fmt_double(double d, char *out, size_t outlen, bool json)
{
    if (!isfinite(d)) {
        snprintf(out, outlen, "%s", json ? "null" : isnan(d) ? "nan" : d > 0 ? "inf" : "-inf");
        return;
    }
    char num[OMS_JSON_REAL_MAX];
    oms_json_fmt_real(d, num);
    snprintf(out, outlen, "%s", num);
}

static void format_json(lbuf *b, oms_log_level level, const char *msg,
                        const oms_log_field *fields)
{
    char ts[32];
    oms_iso8601_ms(oms_now_ms(), ts, sizeof ts);
    lb_adds(b, "{\"ts\":\"");
    lb_adds(b, ts);
    lb_adds(b, "\",\"level\":\"");
    lb_adds(b, oms_log_level_name(level));
    lb_adds(b, "\",\"msg\":");
    bool ok = json_str(b, msg);
    /* Set between a key and its value, so a cut line gets "key":null and
     * stays valid JSON. */
    bool need_value = false;
    for (const oms_log_field *f = fields; ok && f && f->type != OMS_LOG_F_END; f++) {
        if (!f->key)
            continue;
        char num[40];
        if (!(ok = lb_add(b, ",", 1)))
            break;
        need_value = true;
        if (!(ok = json_str(b, f->key) && lb_add(b, ":", 1)))
            break;
        switch (f->type) {
        case OMS_LOG_F_STR:
            /* json_str closes a cut string itself: the value is there. */
            ok = f->s ? json_str(b, f->s) : lb_adds(b, "null");
            need_value = !ok && !f->s;
            break;
        case OMS_LOG_F_INT:
            snprintf(num, sizeof num, "%" PRId64, f->i);
            ok = lb_adds(b, num);
            break;
        case OMS_LOG_F_DBL:
            fmt_double(f->d, num, sizeof num, true);
            ok = lb_adds(b, num);
            break;
        case OMS_LOG_F_BOOL:
            ok = lb_adds(b, f->i ? "true" : "false");
            break;
        default:
            ok = lb_adds(b, "null");
            break;
        }
        if (ok)
            need_value = false;
    }
    if (!ok) {
        if (need_value) {
            if (b->p[b->len - 1] == ',')
                b->len--; /* the key itself did not fit */
            else if (b->p[b->len - 1] == ':')
                lb_end(b, "null");
            else
                lb_end(b, ":null");
        }
        lb_end(b, ",\"truncated\":true");
    }
    lb_end(b, "}\n");
}

/* ---- text ---------------------------------------------------------------- */

/* Append s escaped for a text line: control characters as \n, \t, \xNN,
 * invalid UTF-8 bytes as \xNN; with in_quotes, also " and \ escaped.
 * Returns false when cut short. Counts displayed characters in *cols. */
static bool text_str(lbuf *b, const char *str, bool in_quotes, size_t *cols)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)str;
    size_t n = strlen(str);
    size_t i = 0;
    size_t ncols = 0;
    while (i < n) {
        unsigned c = s[i];
        char esc[8];
        size_t elen, adv = 1;
        if (c >= 0x20 && c < 0x7F && !(in_quotes && (c == '"' || c == '\\'))) {
            esc[0] = (char)c;
            elen = 1;
        } else if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            elen = 2;
        } else if (c == '\n' || c == '\t' || c == '\r') {
            esc[0] = '\\';
            esc[1] = c == '\n' ? 'n' : c == '\t' ? 't' : 'r';
            elen = 2;
        } else if (c >= 0x80 && (adv = utf8_seq_len(s + i, n - i)) > 0) {
            memcpy(esc, s + i, adv);
            elen = adv;
        } else {
            adv = 1;
            esc[0] = '\\';
            esc[1] = 'x';
            esc[2] = hex[c >> 4];
            esc[3] = hex[c & 15];
            elen = 4;
        }
        if (!lb_add(b, esc, elen))
            return false;
        ncols += elen == adv ? 1 : elen;
        i += adv;
    }
    if (cols)
        *cols = ncols;
    return true;
}

/* Values are quoted when a reader could not tell where they end. */
static bool text_needs_quotes(const char *s)
{
    if (!*s)
        return true;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p <= 0x20 || *p == '"' || *p == '=' || *p == '\\' || *p == 0x7F)
            return true;
    return false;
}

static bool text_value(lbuf *b, const char *s)
{
    if (!text_needs_quotes(s))
        return text_str(b, s, false, NULL);
    bool ok = lb_add(b, "\"", 1) && text_str(b, s, true, NULL) && lb_add(b, "\"", 1);
    if (!ok)
        lb_end(b, "...\"");
    return ok;
}

static const char *level_label(oms_log_level level)
{
    switch (level) {
    case OMS_LOG_DEBUG: return "DEBUG";
    case OMS_LOG_INFO: return "INFO ";
    case OMS_LOG_WARN: return "WARN ";
    case OMS_LOG_ERROR: return "ERROR";
    }
    return "?????";
}

static const char *level_color(oms_log_level level)
{
    switch (level) {
    case OMS_LOG_DEBUG: return "\033[90m"; /* grey */
    case OMS_LOG_INFO: return "\033[32m";  /* green */
    case OMS_LOG_WARN: return "\033[33m";  /* yellow */
    case OMS_LOG_ERROR: return "\033[31m"; /* red */
    }
    return "";
}

static void format_text(lbuf *b, const oms_logger *lg, oms_log_level level, const char *msg,
                        const oms_log_field *fields)
{
    /* UTC like the JSON ts, so text and JSON lines of a run compare; also
     * localtime_r may take the libc timezone lock. */
    char ts[32];
    oms_iso8601_ms(oms_now_ms(), ts, sizeof ts);
    lb_add(b, ts + 11, 12); /* "HH:MM:SS.mmm" */
    lb_add(b, " ", 1);
    if (lg->color)
        lb_adds(b, level_color(level));
    lb_adds(b, level_label(level));
    if (lg->color)
        lb_adds(b, "\033[0m");
    lb_add(b, " ", 1);

    size_t cols = 0;
    bool ok = text_str(b, msg ? msg : "", false, &cols);
    bool any = fields && fields->type != OMS_LOG_F_END;
    if (ok && any && cols < LOG_MSG_COLS) {
        static const char spaces[LOG_MSG_COLS] = "                                ";
        ok = lb_add(b, spaces, LOG_MSG_COLS - cols);
    }
    for (const oms_log_field *f = fields; ok && f && f->type != OMS_LOG_F_END; f++) {
        if (!f->key)
            continue;
        char num[40];
        ok = lb_add(b, " ", 1) && text_str(b, f->key, false, NULL) && lb_add(b, "=", 1);
        if (!ok)
            break;
        switch (f->type) {
        case OMS_LOG_F_STR:
            ok = text_value(b, f->s ? f->s : "(null)");
            break;
        case OMS_LOG_F_INT:
            snprintf(num, sizeof num, "%" PRId64, f->i);
            ok = lb_adds(b, num);
            break;
        case OMS_LOG_F_DBL:
            fmt_double(f->d, num, sizeof num, false);
            ok = lb_adds(b, num);
            break;
        case OMS_LOG_F_BOOL:
            ok = lb_adds(b, f->i ? "true" : "false");
            break;
        default:
            ok = lb_adds(b, "?");
            break;
        }
    }
    if (!ok)
        lb_end(b, "... truncated=true");
    lb_end(b, "\n");
}

/* ---- public -------------------------------------------------------------- */

oms_logger *oms_logger_new(int fd, oms_log_level min_level, oms_log_format format)
{
    oms_logger *lg = calloc(1, sizeof *lg);
    if (!lg)
        return NULL;
    bool tty = isatty(fd) == 1;
    lg->fd = fd;
    atomic_init(&lg->min_level, (int)min_level);
    if (format == OMS_LOG_FORMAT_AUTO)
        format = tty ? OMS_LOG_FORMAT_TEXT : OMS_LOG_FORMAT_JSON;
    lg->format = format;
    /* Colors only for people: never in a file or pipe, and NO_COLOR
     * (no-color.org) turns them off. */
    const char *nc = getenv("NO_COLOR");
    lg->color = tty && format == OMS_LOG_FORMAT_TEXT && !(nc && *nc);
    return lg;
}

void oms_logger_free(oms_logger *lg)
{
    free(lg);
}

void oms_logger_set_level(oms_logger *lg, oms_log_level level)
{
    if (lg)
        atomic_store_explicit(&lg->min_level, (int)level, memory_order_relaxed);
}

oms_log_level oms_logger_level(const oms_logger *lg)
{
    if (!lg)
        return OMS_LOG_ERROR;
    /* atomic_load on a const object is not allowed by every C11 library. */
    return (oms_log_level)atomic_load_explicit((atomic_int *)&lg->min_level,
                                               memory_order_relaxed);
}

int oms_log_level_parse(const char *s, oms_log_level *out)
{
    static const struct {
        const char *name;
        oms_log_level level;
    } names[] = {
        {"debug", OMS_LOG_DEBUG}, {"info", OMS_LOG_INFO},   {"warn", OMS_LOG_WARN},
        {"warning", OMS_LOG_WARN}, {"error", OMS_LOG_ERROR},
    };
    if (!s)
        return OMS_EINVAL;
    for (size_t i = 0; i < OMS_ARRAY_LEN(names); i++) {
        if (strcasecmp(s, names[i].name) == 0) {
            if (out)
                *out = names[i].level;
            return 0;
        }
    }
    return OMS_EINVAL;
}

const char *oms_log_level_name(oms_log_level level)
{
    switch (level) {
    case OMS_LOG_DEBUG: return "debug";
    case OMS_LOG_INFO: return "info";
    case OMS_LOG_WARN: return "warn";
    case OMS_LOG_ERROR: return "error";
    }
    return "unknown";
}

int oms_log_format_parse(const char *s, oms_log_format *out)
{
    oms_log_format f;
    if (!s)
        return OMS_EINVAL;
    if (strcasecmp(s, "auto") == 0)
        f = OMS_LOG_FORMAT_AUTO;
    else if (strcasecmp(s, "json") == 0)
        f = OMS_LOG_FORMAT_JSON;
    else if (strcasecmp(s, "text") == 0)
        f = OMS_LOG_FORMAT_TEXT;
    else
        return OMS_EINVAL;
    if (out)
        *out = f;
    return 0;
}

void oms_log_fields(oms_logger *lg, oms_log_level level, const char *msg,
                    const oms_log_field *fields)
{
    if (!lg || (int)level < atomic_load_explicit(&lg->min_level, memory_order_relaxed))
        return;
    char stackbuf[LOG_STACK_BYTES];
    lbuf b = {stackbuf, 0, sizeof stackbuf, false, false};
    if (lg->format == OMS_LOG_FORMAT_TEXT)
        format_text(&b, lg, level, msg, fields);
    else
        format_json(&b, level, msg, fields);

    /* One write(2) per line. Retry only on EINTR or a short write (a full
     * pipe); logging must never fail its caller, so other errors are
     * dropped. */
    size_t off = 0;
    while (off < b.len) {
        ssize_t w = write(lg->fd, b.p + off, b.len - off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        off += (size_t)w;
    }
    if (b.heap)
        free(b.p);
}
