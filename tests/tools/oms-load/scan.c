/* scan.c — just enough JSON scanning for the receive path, without
 * allocating: a load generator that parsed each frame into a tree would
 * measure its own malloc, not the server. */
#include <stddef.h>
#include <string.h>

#include "common/oms.h"
#include "load.h"

const char *const load_ev_names[LOAD_EV__COUNT] = {"order_update", "inventory_update",
                                                   "user_notification", "system_notification",
                                                   "other"};

static const char *skip_ws(const char *p, const char *e)
{
    while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

const char *load_json_skip_string(const char *p, const char *e)
{
    for (p++; p < e;) {
        const char *q = memchr(p, '"', (size_t)(e - p));
        if (!q)
            return NULL;
        /* escaped when preceded by an odd number of backslashes */
        size_t bs = 0;
        while (q - bs > p && q[-1 - (ptrdiff_t)bs] == '\\')
            bs++;
        if (!(bs & 1))
            return q + 1;
        p = q + 1;
    }
    return NULL;
}

const char *load_json_skip_value(const char *p, const char *e)
{
    p = skip_ws(p, e);
    if (p >= e)
        return NULL;
    if (*p == '"')
        return load_json_skip_string(p, e);
    if (*p == '{' || *p == '[') {
        int depth = 0;
        while (p < e) {
            char ch = *p;
            if (ch == '"') {
                p = load_json_skip_string(p, e);
                if (!p)
                    return NULL;
                continue;
            }
            if (ch == '{' || ch == '[')
                depth++;
            else if ((ch == '}' || ch == ']') && --depth == 0)
                return p + 1;
            p++;
        }
        return NULL;
    }
    while (p < e && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\n')
        p++;
    return p;
}

bool load_json_member(const char *p, const char *e, const char *key, const char **v,
                      const char **ve)
{
    size_t kl = strlen(key);
    p = skip_ws(p, e);
    if (p >= e || *p != '{')
        return false;
    p = skip_ws(p + 1, e);
    while (p < e && *p == '"') {
        const char *k = p + 1, *ke = load_json_skip_string(p, e);
        if (!ke)
            return false;
        size_t n = (size_t)(ke - 1 - k);
        p = skip_ws(ke, e);
        if (p >= e || *p != ':')
            return false;
        const char *val = skip_ws(p + 1, e), *end = load_json_skip_value(val, e);
        if (!end)
            return false;
        if (n == kl && memcmp(k, key, kl) == 0) {
            *v = val;
            *ve = end;
            return true;
        }
        p = skip_ws(end, e);
        if (p < e && *p == ',')
            p = skip_ws(p + 1, e);
    }
    return false;
}

bool load_json_string_member(const char *p, const char *e, const char *key, const char **v,
                             const char **ve)
{
    const char *a, *b;
    if (!load_json_member(p, e, key, &a, &b) || *a != '"' || b - a < 2)
        return false;
    *v = a + 1;
    *ve = b - 1;
    return true;
}

/* days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant) */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static int digits(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

bool load_parse_ts_ms(const char *s, const char *e, int64_t *ms)
{
    if (e > s && *s >= '0' && *s <= '9' && e - s <= 15) {
        /* a number of milliseconds, as Avro's timestamp-millis in JSON */
        int64_t v = 0;
        for (const char *p = s; p < e; p++) {
            if (*p < '0' || *p > '9')
                return false;
            v = v * 10 + (*p - '0');
        }
        *ms = v;
        return true;
    }
    if (e - s == 24 && s[4] == '-' && s[7] == '-' && s[10] == 'T' && s[13] == ':' &&
        s[16] == ':' && s[19] == '.' && s[23] == 'Z') {
        int y = digits(s, 4), mo = digits(s + 5, 2), d = digits(s + 8, 2), h = digits(s + 11, 2),
            mi = digits(s + 14, 2), se = digits(s + 17, 2), f = digits(s + 20, 3);
        if (y >= 0 && mo >= 1 && mo <= 12 && d >= 1 && d <= 31 && h >= 0 && mi >= 0 && se >= 0 &&
            f >= 0) {
            *ms = ((days_from_civil(y, (unsigned)mo, (unsigned)d) * 24 + h) * 60 + mi) * 60000 +
                  (int64_t)se * 1000 + f;
            return true;
        }
    }
    /* anything else ISO 8601 through the library */
    char buf[64];
    if (e - s <= 0 || e - s >= (long)sizeof buf)
        return false;
    memcpy(buf, s, (size_t)(e - s));
    buf[e - s] = '\0';
    return oms_parse_iso8601_ms(buf, ms) == OMS_OK;
}

bool load_name_is(const char *s, size_t n, const char *want)
{
    return strlen(want) == n && memcmp(s, want, n) == 0;
}

int load_kind_of(const char *name, size_t n)
{
    for (int k = 0; k < LOAD_EV_OTHER; k++)
        if (load_name_is(name, n, load_ev_names[k]))
            return k;
    return LOAD_EV_OTHER;
}
