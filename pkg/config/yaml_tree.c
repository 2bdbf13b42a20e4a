/* yaml_tree.c — libyaml events to a small tree (see yaml_tree.h). */
#include "yaml_tree.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <yaml.h>

#include "common/oms.h"

#define YT_MAX_FILE (4u * 1024 * 1024)

/* ---- tree ---------------------------------------------------------------- */

void yt_free(yt_node *n)
{
    if (!n)
        return;
    for (size_t i = 0; i < n->n; i++)
        yt_free(n->children[i]);
    free(n->children);
    free(n->value);
    free(n);
}

static yt_node *yt_new(yt_kind kind, const yaml_mark_t *mark)
{
    yt_node *n = calloc(1, sizeof *n);
    if (!n)
        return NULL;
    n->kind = kind;
    n->line = (int)mark->line + 1;
    n->col = (int)mark->column + 1;
    return n;
}

static int yt_push(yt_node *parent, yt_node *child)
{
    if (parent->n == parent->cap) {
        size_t ncap = parent->cap ? parent->cap * 2 : 8;
        yt_node **nc = realloc(parent->children, ncap * sizeof *nc);
        if (!nc)
            return OMS_ENOMEM;
        parent->children = nc;
        parent->cap = ncap;
    }
    parent->children[parent->n++] = child;
    return 0;
}

bool yt_is_null(const yt_node *n)
{
    if (!n)
        return true;
    if (n->kind != YT_SCALAR || !n->plain)
        return false;
    return n->len == 0 || strcmp(n->value, "~") == 0 || strcmp(n->value, "null") == 0 ||
           strcmp(n->value, "Null") == 0 || strcmp(n->value, "NULL") == 0;
}

const char *yt_quote(const char *s, size_t len, char *buf, size_t buflen)
{
    static const char hex[] = "0123456789abcdef";
    enum { SHOWN = 40 };
    size_t o = 0;
    if (buflen < 8) {
        if (buflen)
            buf[0] = '\0';
        return buf;
    }
    buf[o++] = '\'';
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (i == SHOWN || o + 8 >= buflen) {
            memcpy(buf + o, "...", 3);
            o += 3;
            break;
        }
        if (c < 0x20 || c == 0x7F) {
            buf[o++] = '\\';
            buf[o++] = 'x';
            buf[o++] = hex[c >> 4];
            buf[o++] = hex[c & 15];
        } else {
            buf[o++] = (char)c;
        }
    }
    buf[o++] = '\'';
    buf[o] = '\0';
    return buf;
}

const char *yt_describe(const yt_node *n, char *buf, size_t buflen)
{
    if (yt_is_null(n))
        snprintf(buf, buflen, "nothing");
    else if (n->kind == YT_MAP)
        snprintf(buf, buflen, "a mapping");
    else if (n->kind == YT_SEQ)
        snprintf(buf, buflen, "a sequence");
    else
        yt_quote(n->value, n->len, buf, buflen);
    return buf;
}

/* ---- parser -------------------------------------------------------------- */

typedef struct {
    const char *buf;
    size_t len;
    const char *name;
    char *errbuf;
    size_t errlen;
    yt_node *root;
    yt_node *stack[YT_MAX_DEPTH];
    int depth;
    bool have_doc;
} yt_builder;

/* libyaml's marks are 0-based; people count from 1. */
static int line_of_offset(const yt_builder *yb, size_t off)
{
    int line = 1;
    for (size_t i = 0; i < off && i < yb->len; i++)
        if (yb->buf[i] == '\n')
            line++;
    return line;
}

static int parser_error(yt_builder *yb, const yaml_parser_t *p)
{
    if (p->error == YAML_MEMORY_ERROR) {
        oms_errf(yb->errbuf, yb->errlen, "%s: out of memory", yb->name);
        return OMS_ENOMEM;
    }
    const char *problem = p->problem ? p->problem : "invalid YAML";
    if (p->error == YAML_READER_ERROR) {
        /* Reader errors (bad encoding) carry a byte offset, not a mark. */
        oms_errf(yb->errbuf, yb->errlen, "%s:%d: %s (byte %zu)", yb->name,
                 line_of_offset(yb, p->problem_offset), problem, p->problem_offset);
        return OMS_ECONFIG;
    }
    /* libyaml's complaint about a tab is cryptic; say what it means. */
    size_t at = p->problem_mark.index;
    const char *hint = at < yb->len && yb->buf[at] == '\t'
                           ? " (tabs are not allowed in indentation: use spaces)"
                           : "";
    if (p->context) {
        oms_errf(yb->errbuf, yb->errlen, "%s:%zu:%zu: %s (%s at line %zu)%s", yb->name,
                 p->problem_mark.line + 1, p->problem_mark.column + 1, problem, p->context,
                 p->context_mark.line + 1, hint);
    } else {
        oms_errf(yb->errbuf, yb->errlen, "%s:%zu:%zu: %s%s", yb->name, p->problem_mark.line + 1,
                 p->problem_mark.column + 1, problem, hint);
    }
    return OMS_ECONFIG;
}

/* Anchors, aliases and tags are refused: a config file is read by people,
 * and "&x"/"*x" or "!!int" make what they read differ from what we use. */
static int check_props(yt_builder *yb, const yaml_event_t *ev, const yaml_char_t *anchor,
                       const yaml_char_t *tag, bool implicit_tag)
{
    if (anchor) {
        oms_errf(yb->errbuf, yb->errlen,
                 "%s:%zu:%zu: anchors and aliases are not supported (found anchor '&%s')",
                 yb->name, ev->start_mark.line + 1, ev->start_mark.column + 1,
                 (const char *)anchor);
        return OMS_ECONFIG;
    }
    if (tag && !implicit_tag) {
        oms_errf(yb->errbuf, yb->errlen, "%s:%zu:%zu: tags are not supported (found '%s')",
                 yb->name, ev->start_mark.line + 1, ev->start_mark.column + 1,
                 (const char *)tag);
        return OMS_ECONFIG;
    }
    return 0;
}

/* Attach a finished node (or an opened container) to its parent. Takes
 * ownership of n, freeing it on error. */
static int attach(yt_builder *yb, yt_node *n)
{
    if (yb->depth == 0) {
        if (yb->root) {
            oms_errf(yb->errbuf, yb->errlen, "%s:%d: only one YAML document is allowed",
                     yb->name, n->line);
            yt_free(n);
            return OMS_ECONFIG;
        }
        yb->root = n;
        return 0;
    }
    yt_node *parent = yb->stack[yb->depth - 1];
    if (parent->kind == YT_MAP && parent->n % 2 == 0) {
        /* n is a key */
        if (n->kind != YT_SCALAR) {
            oms_errf(yb->errbuf, yb->errlen, "%s:%d:%d: mapping keys must be scalars",
                     yb->name, n->line, n->col);
            yt_free(n);
            return OMS_ECONFIG;
        }
        for (size_t i = 0; i < parent->n; i += 2) {
            const yt_node *k = parent->children[i];
            if (k->len == n->len && memcmp(k->value, n->value, n->len) == 0) {
                char q[64];
                oms_errf(yb->errbuf, yb->errlen, "%s:%d: duplicate key %s (first at line %d)",
                         yb->name, n->line, yt_quote(n->value, n->len, q, sizeof q), k->line);
                yt_free(n);
                return OMS_ECONFIG;
            }
        }
    }
    int rc = yt_push(parent, n);
    if (rc) {
        yt_free(n);
        oms_errf(yb->errbuf, yb->errlen, "%s: out of memory", yb->name);
    }
    return rc;
}

static int on_event(yt_builder *yb, const yaml_event_t *ev)
{
    int rc;
    yt_node *n;
    switch (ev->type) {
    case YAML_DOCUMENT_START_EVENT:
        if (yb->have_doc) {
            oms_errf(yb->errbuf, yb->errlen, "%s:%zu: only one YAML document is allowed",
                     yb->name, ev->start_mark.line + 1);
            return OMS_ECONFIG;
        }
        yb->have_doc = true;
        return 0;
    case YAML_ALIAS_EVENT:
        oms_errf(yb->errbuf, yb->errlen,
                 "%s:%zu:%zu: anchors and aliases are not supported (found alias '*%s')",
                 yb->name, ev->start_mark.line + 1, ev->start_mark.column + 1,
                 (const char *)ev->data.alias.anchor);
        return OMS_ECONFIG;
    case YAML_SCALAR_EVENT:
        rc = check_props(yb, ev, ev->data.scalar.anchor, ev->data.scalar.tag,
                         ev->data.scalar.plain_implicit || ev->data.scalar.quoted_implicit);
        if (rc)
            return rc;
        if (!(n = yt_new(YT_SCALAR, &ev->start_mark)))
            goto nomem;
        n->len = ev->data.scalar.length;
        n->value = malloc(n->len + 1);
        if (!n->value) {
            yt_free(n);
            goto nomem;
        }
        memcpy(n->value, ev->data.scalar.value, n->len);
        n->value[n->len] = '\0';
        n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
        return attach(yb, n);
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT: {
        bool seq = ev->type == YAML_SEQUENCE_START_EVENT;
        rc = seq ? check_props(yb, ev, ev->data.sequence_start.anchor,
                               ev->data.sequence_start.tag, ev->data.sequence_start.implicit)
                 : check_props(yb, ev, ev->data.mapping_start.anchor,
                               ev->data.mapping_start.tag, ev->data.mapping_start.implicit);
        if (rc)
            return rc;
        if (yb->depth == YT_MAX_DEPTH) {
            oms_errf(yb->errbuf, yb->errlen, "%s:%zu: nested more than %d levels deep",
                     yb->name, ev->start_mark.line + 1, YT_MAX_DEPTH);
            return OMS_ECONFIG;
        }
        if (!(n = yt_new(seq ? YT_SEQ : YT_MAP, &ev->start_mark)))
            goto nomem;
        if ((rc = attach(yb, n)))
            return rc;
        yb->stack[yb->depth++] = n;
        return 0;
    }
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        yb->depth--;
        return 0;
    default:
        return 0;
    }
nomem:
    oms_errf(yb->errbuf, yb->errlen, "%s: out of memory", yb->name);
    return OMS_ENOMEM;
}

int yt_parse(const char *buf, size_t len, const char *name, yt_node **out, char *errbuf,
             size_t errlen)
{
    yaml_parser_t parser;
    yt_builder yb = {.buf = buf, .len = len, .name = name, .errbuf = errbuf, .errlen = errlen};
    int rc = 0;
    *out = NULL;
    if (!yaml_parser_initialize(&parser)) {
        oms_errf(errbuf, errlen, "%s: out of memory", name);
        return OMS_ENOMEM;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);
    for (;;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) {
            rc = parser_error(&yb, &parser);
            break;
        }
        bool done = ev.type == YAML_STREAM_END_EVENT;
        rc = on_event(&yb, &ev);
        yaml_event_delete(&ev);
        if (rc || done)
            break;
    }
    yaml_parser_delete(&parser);
    if (rc) {
        yt_free(yb.root);
        return rc;
    }
    if (yt_is_null(yb.root)) {
        yt_free(yb.root);
        yb.root = NULL;
    }
    *out = yb.root;
    return 0;
}

int yt_read_file(const char *path, char **out, size_t *outlen, char *errbuf, size_t errlen)
{
    *out = NULL;
    *outlen = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        oms_errf(errbuf, errlen, "cannot open '%s': %s", path, strerror(errno));
        return OMS_EIO;
    }
    int rc = 0;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    if (!buf) {
        rc = OMS_ENOMEM;
        oms_errf(errbuf, errlen, "cannot read '%s': out of memory", path);
        goto out;
    }
    for (;;) {
        if (len + 1 == cap) {
            if (cap >= YT_MAX_FILE) {
                rc = OMS_EIO;
                oms_errf(errbuf, errlen, "cannot read '%s': larger than %u bytes", path,
                         YT_MAX_FILE);
                goto out;
            }
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                rc = OMS_ENOMEM;
                oms_errf(errbuf, errlen, "cannot read '%s': out of memory", path);
                goto out;
            }
            buf = nb;
            cap *= 2;
        }
        size_t r = fread(buf + len, 1, cap - 1 - len, f);
        len += r;
        if (r == 0) {
            if (ferror(f)) {
                rc = OMS_EIO;
                oms_errf(errbuf, errlen, "cannot read '%s': %s", path, strerror(errno));
                goto out;
            }
            break;
        }
    }
    buf[len] = '\0';
    *out = buf;
    *outlen = len;
    buf = NULL;
out:
    free(buf);
    fclose(f);
    return rc;
}

/* ---- scalars ------------------------------------------------------------- */

int yt_parse_int(const char *s, size_t len, int64_t min, int64_t max, int64_t *out)
{
    size_t i = 0;
    bool neg = false;
    if (len > 0 && (s[0] == '-' || s[0] == '+')) {
        neg = s[0] == '-';
        i = 1;
    }
    if (i == len)
        return OMS_EINVAL;
    /* Accumulate as a negative number so INT64_MIN fits. */
    int64_t v = 0;
    bool overflow = false;
    for (; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return OMS_EINVAL;
        int d = s[i] - '0';
        if (v < (INT64_MIN + d) / 10)
            overflow = true;
        else
            v = v * 10 - d;
    }
    if (overflow)
        return OMS_ERANGE;
    if (!neg) {
        if (v == INT64_MIN)
            return OMS_ERANGE;
        v = -v;
    }
    if (v < min || v > max)
        return OMS_ERANGE;
    *out = v;
    return 0;
}

int yt_parse_bool(const char *s, size_t len, bool *out)
{
    static const struct {
        const char *word;
        bool value;
    } words[] = {
        {"true", true}, {"yes", true}, {"on", true}, {"false", false}, {"no", false}, {"off", false},
    };
    for (size_t i = 0; i < OMS_ARRAY_LEN(words); i++) {
        if (strlen(words[i].word) == len && strncasecmp(s, words[i].word, len) == 0) {
            *out = words[i].value;
            return 0;
        }
    }
    return OMS_EINVAL;
}

const char *yt_int_expectation(int64_t min, int64_t max, char *buf, size_t buflen)
{
    if (max >= INT_MAX)
        snprintf(buf, buflen, "expected an integer of at least %lld", (long long)min);
    else
        snprintf(buf, buflen, "expected an integer between %lld and %lld", (long long)min,
                 (long long)max);
    return buf;
}

bool yt_valid_topic_name(const char *s, size_t n)
{
    if (n == 0 || n > 249 || (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

size_t yt_edit_distance(const char *a, const char *b)
{
    enum { MAXL = 64 };
    size_t la = strlen(a), lb = strlen(b);
    if (la > MAXL || lb > MAXL)
        return SIZE_MAX;
    /* Three rows: the one before last is needed for transpositions. */
    size_t r0[MAXL + 1], r1[MAXL + 1], r2[MAXL + 1];
    size_t *pp = r0, *prev = r1, *cur = r2;
    for (size_t j = 0; j <= lb; j++)
        prev[j] = j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            size_t best = prev[j] + 1;
            if (cur[j - 1] + 1 < best)
                best = cur[j - 1] + 1;
            if (prev[j - 1] + cost < best)
                best = prev[j - 1] + cost;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                pp[j - 2] + 1 < best)
                best = pp[j - 2] + 1;
            cur[j] = best;
        }
        size_t *t = pp;
        pp = prev;
        prev = cur;
        cur = t;
    }
    return prev[lb];
}
