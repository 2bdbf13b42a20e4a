/* codec.c — Avro binary encoding to and from jansson values, with schema
 * resolution (Avro 1.11 "Schema Resolution") when the reader schema differs
 * from the writer schema.
 *
 * The decoder trusts nothing in the input: every length and count is checked
 * against the bytes left before anything is allocated or read, nesting is
 * bounded by AV_MAX_DEPTH, and the whole body must be consumed. Error
 * messages are built without cost on the success path: the innermost frame
 * writes the reason and each enclosing frame prepends its path component
 * ("items", "[2]", "quantity") while the error unwinds. */
#include "avro/avro_internal.h"

#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- errors with a field path --------------------------------------------------- */

typedef struct {
    int code;
    char msg[256];
    char path[256];
    size_t pathlen;
} av_err;

__attribute__((format(printf, 3, 4))) static int err_set(av_err *e, int code, const char *fmt,
                                                         ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    e->code = code;
    e->path[0] = '\0';
    e->pathlen = 0;
    return code;
}

/* Prepend one component: a field name (joined with '.') or an index/key in
 * brackets. When the path would overflow, the outer components are dropped
 * and the path starts with "...". */
static void path_prepend(av_err *e, const char *comp, size_t n)
{
    if (e->pathlen >= 3 && memcmp(e->path, "...", 3) == 0)
        return;
    bool dot = e->pathlen > 0 && e->path[0] != '[';
    size_t total = n + dot + e->pathlen;
    if (total + 1 > sizeof e->path) {
        comp = "...";
        n = 3;
        dot = e->pathlen > 0 && e->path[0] != '[';
        total = n + dot + e->pathlen;
        if (total + 1 > sizeof e->path)
            return;
    }
    memmove(e->path + n + dot, e->path, e->pathlen + 1);
    memcpy(e->path, comp, n);
    if (dot)
        e->path[n] = '.';
    e->pathlen = total;
}

static void path_field(av_err *e, const char *name)
{
    path_prepend(e, name, strlen(name));
}

static void path_index(av_err *e, size_t i)
{
    char b[32];
    int n = snprintf(b, sizeof b, "[%zu]", i);
    path_prepend(e, b, (size_t)n);
}

static void path_key(av_err *e, const char *key, size_t klen)
{
    char b[64];
    int n = snprintf(b, sizeof b, "[\"%.*s%s\"]", (int)(klen > 40 ? 40 : klen), key,
                     klen > 40 ? "..." : "");
    path_prepend(e, b, (size_t)n);
}

static void err_report(const av_err *e, char *errbuf, size_t errlen)
{
    if (e->pathlen)
        oms_errf(errbuf, errlen, "field '%s': %s", e->path, e->msg);
    else
        oms_errf(errbuf, errlen, "%s", e->msg);
}

/* A type as named in messages: the full name of named types. */
static const char *type_desc(const av_node *n)
{
    return n->named_idx >= 0 ? n->fullname : av_kind_name(n->kind);
}

/* ---- shared JSON helpers -------------------------------------------------------- */

/* Avro JSON for bytes/fixed: each byte becomes the code point of the same
 * value (U+0000..U+00FF), i.e. one or two UTF-8 bytes. */
static json_t *bytes_to_json(const uint8_t *p, size_t n)
{
    char stackbuf[512] = "";
    char *buf = n <= sizeof stackbuf / 2 ? stackbuf : malloc(2 * n);
    if (!buf)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t b = p[i];
        if (b < 0x80) {
            buf[o++] = (char)b;
        } else {
            buf[o++] = (char)(0xC0 | (b >> 6));
            buf[o++] = (char)(0x80 | (b & 0x3F));
        }
    }
    json_t *j = json_stringn_nocheck(buf, o);
    if (buf != stackbuf)
        free(buf);
    return j;
}

/* ---- decoder -------------------------------------------------------------------- */

typedef struct {
    const uint8_t *start, *p, *end;
    int depth;
    av_err e;
} rd;

#define RD_OFF(c) ((size_t)((c)->p - (c)->start))
#define RD_LEFT(c) ((size_t)((c)->end - (c)->p))

static int rd_oom(rd *c)
{
    return err_set(&c->e, OMS_ENOMEM, "out of memory");
}

/* One more level of nesting. Not undone on errors: a failed decode is
 * abandoned as a whole. */
static int rd_enter(rd *c)
{
    if (++c->depth > AV_MAX_DEPTH)
        return err_set(&c->e, OMS_EINVAL, "data nested deeper than %d levels at offset %zu",
                       AV_MAX_DEPTH, RD_OFF(c));
    return 0;
}

/* Variable-length base-128 unsigned integer, at most 10 bytes. */
static int rd_varint(rd *c, uint64_t *out, const char *what)
{
    const uint8_t *p = c->p;
    if (p < c->end && !(*p & 0x80)) { /* one byte: by far the most common case */
        *out = *p;
        c->p = p + 1;
        return 0;
    }
    uint64_t acc = 0;
    for (unsigned i = 0; i < 10; i++) {
        if (p >= c->end)
            return err_set(&c->e, OMS_ETRUNC, "truncated: %s at offset %zu ends after %u bytes",
                           what, RD_OFF(c), i);
        uint8_t b = *p++;
        if (i == 9) {
            if (b & 0x80)
                return err_set(&c->e, OMS_EINVAL,
                               "%s at offset %zu: varint longer than 10 bytes", what, RD_OFF(c));
            if (b > 1)
                return err_set(&c->e, OMS_EINVAL, "%s at offset %zu: varint overflows 64 bits",
                               what, RD_OFF(c));
        }
        acc |= (uint64_t)(b & 0x7F) << (7 * i);
        if (!(b & 0x80)) {
            c->p = p;
            *out = acc;
            return 0;
        }
    }
    return err_set(&c->e, OMS_EINVAL, "%s at offset %zu: varint longer than 10 bytes", what,
                   RD_OFF(c));
}

static int rd_long(rd *c, int64_t *v, const char *what)
{
    uint64_t u = 0;
    int rc = rd_varint(c, &u, what);
    if (rc)
        return rc;
    /* zig-zag: 0,1,2,3 -> 0,-1,1,-2 */
    *v = (int64_t)((u >> 1) ^ (0 - (u & 1)));
    return 0;
}

static int rd_int(rd *c, int32_t *v, const char *what)
{
    size_t off = RD_OFF(c);
    int64_t l = 0;
    int rc = rd_long(c, &l, what);
    if (rc)
        return rc;
    if (l < INT32_MIN || l > INT32_MAX)
        return err_set(&c->e, OMS_EINVAL, "%s at offset %zu: %" PRId64 " does not fit an int",
                       what, off, l);
    *v = (int32_t)l;
    return 0;
}

/* A length prefix: non-negative and not more than the bytes left. */
static int rd_len(rd *c, size_t *n, const char *what)
{
    size_t off = RD_OFF(c);
    int64_t l = 0;
    int rc = rd_long(c, &l, what);
    if (rc)
        return rc;
    if (l < 0)
        return err_set(&c->e, OMS_EINVAL, "negative length %" PRId64 " for %s at offset %zu", l,
                       what, off);
    if ((uint64_t)l > RD_LEFT(c))
        return err_set(&c->e, OMS_ETRUNC,
                       "truncated: need %" PRId64 " bytes for %s at offset %zu, %zu left", l, what,
                       RD_OFF(c), RD_LEFT(c));
    *n = (size_t)l;
    return 0;
}

static int rd_need(rd *c, size_t n, const char *what)
{
    if (RD_LEFT(c) < n)
        return err_set(&c->e, OMS_ETRUNC,
                       "truncated: need %zu bytes for %s at offset %zu, %zu left", n, what,
                       RD_OFF(c), RD_LEFT(c));
    return 0;
}

static int rd_float(rd *c, double *v)
{
    int rc = rd_need(c, 4, "float");
    if (rc)
        return rc;
    const uint8_t *p = c->p;
    uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    float f;
    memcpy(&f, &u, 4);
    if (!isfinite(f))
        return err_set(&c->e, OMS_EINVAL,
                       "float at offset %zu is NaN or infinite (not representable in JSON)",
                       RD_OFF(c));
    c->p += 4;
    *v = f;
    return 0;
}

static int rd_double(rd *c, double *v)
{
    int rc = rd_need(c, 8, "double");
    if (rc)
        return rc;
    uint64_t u = 0;
    for (int i = 7; i >= 0; i--)
        u = u << 8 | c->p[i];
    double d = 0;
    memcpy(&d, &u, 8);
    if (!isfinite(d))
        return err_set(&c->e, OMS_EINVAL,
                       "double at offset %zu is NaN or infinite (not representable in JSON)",
                       RD_OFF(c));
    c->p += 8;
    *v = d;
    return 0;
}

/* Reads a string's length and checks its bytes are UTF-8; *s points into
 * the input. */
static int rd_str(rd *c, const char **s, size_t *n, const char *what)
{
    int rc = rd_len(c, n, what);
    if (rc)
        return rc;
    size_t bad = av_utf8_check(c->p, *n);
    if (bad != *n)
        return err_set(&c->e, OMS_EINVAL, "invalid UTF-8 in %s at offset %zu", what,
                       RD_OFF(c) + bad);
    *s = (const char *)c->p;
    c->p += *n;
    return 0;
}

static int rd_union_index(rd *c, const av_node *u, size_t *idx)
{
    size_t off = RD_OFF(c);
    int64_t i;
    int rc = rd_long(c, &i, "union index");
    if (rc)
        return rc;
    if (i < 0 || (uint64_t)i >= u->nbranches)
        return err_set(&c->e, OMS_EINVAL,
                       "union index %" PRId64 " at offset %zu out of range (%zu branches)", i, off,
                       u->nbranches);
    *idx = (size_t)i;
    return 0;
}

static int rd_enum_index(rd *c, const av_node *n, size_t *idx)
{
    size_t off = RD_OFF(c);
    int32_t i = 0;
    int rc = rd_int(c, &i, "enum index");
    if (rc)
        return rc;
    if (i < 0 || (size_t)i >= n->nsymbols)
        return err_set(&c->e, OMS_EINVAL,
                       "enum index %" PRId32 " at offset %zu out of range for '%s' (%zu symbols)",
                       i, off, n->fullname, n->nsymbols);
    *idx = (size_t)i;
    return 0;
}

/* Next block header of an array or map. *count is 0 at the end. A negative
 * count is followed by the block's size in bytes (*size, else -1). The count
 * is checked against the bytes left (item_min = lower bound of one item's
 * encoding) so a forged count cannot make us loop or allocate for nothing. */
static int rd_block(rd *c, size_t item_min, size_t *total, int64_t *count, int64_t *size,
                    const char *what)
{
    size_t off = RD_OFF(c);
    int64_t n;
    int rc = rd_long(c, &n, "block count");
    if (rc)
        return rc;
    *size = -1;
    if (n < 0) {
        if (n == INT64_MIN)
            return err_set(&c->e, OMS_EINVAL, "invalid %s block count at offset %zu", what, off);
        n = -n;
        int64_t sz;
        if ((rc = rd_long(c, &sz, "block size")))
            return rc;
        if (sz < 0)
            return err_set(&c->e, OMS_EINVAL, "negative %s block size %" PRId64 " at offset %zu",
                           what, sz, off);
        if ((uint64_t)sz > RD_LEFT(c))
            return err_set(&c->e, OMS_ETRUNC,
                           "truncated: %s block of %" PRId64 " bytes at offset %zu, %zu left",
                           what, sz, off, RD_LEFT(c));
        *size = sz;
    }
    if (n > 0) {
        if (item_min > 0) {
            if ((uint64_t)n > RD_LEFT(c) / item_min)
                return err_set(&c->e, OMS_ETRUNC,
                               "truncated: %s block of %" PRId64
                               " items at offset %zu cannot fit in %zu bytes left",
                               what, n, off, RD_LEFT(c));
        } else if ((uint64_t)n > AV_MAX_EMPTY_ITEMS || *total + (size_t)n > AV_MAX_EMPTY_ITEMS) {
            return err_set(&c->e, OMS_EINVAL,
                           "%s at offset %zu claims more than %d zero-size items", what, off,
                           AV_MAX_EMPTY_ITEMS);
        }
        *total += (size_t)n;
    }
    *count = n;
    return 0;
}

/* Skip a value without building JSON (writer fields the reader dropped).
 * Bounds are still checked; contents (UTF-8, enum range) are not needed. */
static int rd_skip(rd *c, const av_node *n)
{
    int rc = 0;
    size_t len = 0;
    switch (n->kind) {
    case AV_NULL: return 0;
    case AV_BOOLEAN:
        if ((rc = rd_need(c, 1, "boolean")))
            return rc;
        c->p++;
        return 0;
    case AV_INT: {
        int32_t v = 0;
        return rd_int(c, &v, "int");
    }
    case AV_LONG: {
        int64_t v = 0;
        return rd_long(c, &v, "long");
    }
    case AV_FLOAT:
        if ((rc = rd_need(c, 4, "float")))
            return rc;
        c->p += 4;
        return 0;
    case AV_DOUBLE:
        if ((rc = rd_need(c, 8, "double")))
            return rc;
        c->p += 8;
        return 0;
    case AV_BYTES:
    case AV_STRING:
        if ((rc = rd_len(c, &len, av_kind_name(n->kind))))
            return rc;
        c->p += len;
        return 0;
    case AV_FIXED:
        if ((rc = rd_need(c, n->size, "fixed")))
            return rc;
        c->p += n->size;
        return 0;
    case AV_ENUM: {
        size_t idx = 0;
        return rd_enum_index(c, n, &idx);
    }
    case AV_UNION: {
        size_t idx = 0;
        if ((rc = rd_union_index(c, n, &idx)))
            return rc;
        return rd_skip(c, n->branches[idx]);
    }
    case AV_RECORD:
        if ((rc = rd_enter(c)))
            return rc;
        for (size_t i = 0; i < n->nfields; i++) {
            if ((rc = rd_skip(c, n->fields[i].type))) {
                path_field(&c->e, n->fields[i].name);
                return rc;
            }
        }
        c->depth--;
        return 0;
    case AV_ARRAY:
    case AV_MAP: {
        if ((rc = rd_enter(c)))
            return rc;
        bool map = n->kind == AV_MAP;
        size_t item_min = n->items->min_size + (map ? 1 : 0), total = 0, idx = 0;
        for (;;) {
            int64_t count, size;
            if ((rc = rd_block(c, item_min, &total, &count, &size, av_kind_name(n->kind))))
                return rc;
            if (count == 0)
                break;
            if (size >= 0) { /* the writer told us the block size: jump over it */
                c->p += size;
                idx += (size_t)count;
                continue;
            }
            for (int64_t k = 0; k < count; k++, idx++) {
                if (map && (rc = rd_len(c, &len, "map key")) == 0)
                    c->p += len;
                if (rc || (rc = rd_skip(c, n->items))) {
                    path_index(&c->e, idx);
                    return rc;
                }
            }
        }
        c->depth--;
        return 0;
    }
    }
    return err_set(&c->e, OMS_EINVAL, "unknown type");
}

static int rd_same(rd *c, const av_node *n, json_t **out);
static int rd_resolve(rd *c, const av_node *w, const av_node *r, json_t **out);

/* Arrays and maps, with writer items w and reader items r (equal pointers
 * when not resolving). */
static int rd_container(rd *c, const av_node *wn, const av_node *w, const av_node *r, json_t **out)
{
    int rc = rd_enter(c);
    if (rc)
        return rc;
    bool map = wn->kind == AV_MAP;
    json_t *res = map ? json_object() : json_array();
    if (!res)
        return rd_oom(c);
    size_t item_min = w->min_size + (map ? 1 : 0), total = 0, idx = 0;
    for (;;) {
        int64_t count, size;
        if ((rc = rd_block(c, item_min, &total, &count, &size, av_kind_name(wn->kind))))
            goto fail;
        if (count == 0)
            break;
        for (int64_t k = 0; k < count; k++, idx++) {
            const char *key = NULL;
            size_t klen = 0;
            json_t *v = NULL;
            if (map && (rc = rd_str(c, &key, &klen, "map key"))) {
                path_index(&c->e, idx);
                goto fail;
            }
            rc = w == r ? rd_same(c, w, &v) : rd_resolve(c, w, r, &v);
            if (rc) {
                if (map)
                    path_key(&c->e, key, klen);
                else
                    path_index(&c->e, idx);
                goto fail;
            }
            if (map ? json_object_setn_new_nocheck(res, key, klen, v)
                    : json_array_append_new(res, v)) {
                rc = rd_oom(c);
                goto fail;
            }
        }
    }
    c->depth--;
    *out = res;
    return 0;
fail:
    json_decref(res);
    return rc;
}

static int rd_same(rd *c, const av_node *n, json_t **out)
{
    int rc;
    json_t *v = NULL;
    switch (n->kind) {
    case AV_NULL:
        v = json_null();
        break;
    case AV_BOOLEAN:
        if ((rc = rd_need(c, 1, "boolean")))
            return rc;
        if (*c->p > 1)
            return err_set(&c->e, OMS_EINVAL, "invalid boolean byte 0x%02x at offset %zu", *c->p,
                           RD_OFF(c));
        v = json_boolean(*c->p++);
        break;
    case AV_INT: {
        int32_t i = 0;
        if ((rc = rd_int(c, &i, "int")))
            return rc;
        v = json_integer(i);
        break;
    }
    case AV_LONG: {
        int64_t l = 0;
        if ((rc = rd_long(c, &l, "long")))
            return rc;
        v = json_integer(l);
        break;
    }
    case AV_FLOAT:
    case AV_DOUBLE: {
        double d = 0;
        if ((rc = n->kind == AV_FLOAT ? rd_float(c, &d) : rd_double(c, &d)))
            return rc;
        v = json_real(d);
        break;
    }
    case AV_BYTES: {
        size_t len = 0;
        if ((rc = rd_len(c, &len, "bytes")))
            return rc;
        v = bytes_to_json(c->p, len);
        c->p += len;
        break;
    }
    case AV_STRING: {
        const char *s = NULL;
        size_t len = 0;
        if ((rc = rd_str(c, &s, &len, "string")))
            return rc;
        v = json_stringn_nocheck(s, len);
        break;
    }
    case AV_FIXED:
        if ((rc = rd_need(c, n->size, "fixed")))
            return rc;
        v = bytes_to_json(c->p, n->size);
        c->p += n->size;
        break;
    case AV_ENUM: {
        size_t idx = 0;
        if ((rc = rd_enum_index(c, n, &idx)))
            return rc;
        v = json_string_nocheck(n->symbols[idx]);
        break;
    }
    case AV_UNION: {
        size_t idx = 0;
        if ((rc = rd_union_index(c, n, &idx)))
            return rc;
        return rd_same(c, n->branches[idx], out);
    }
    case AV_ARRAY:
    case AV_MAP:
        return rd_container(c, n, n->items, n->items, out);
    case AV_RECORD: {
        if ((rc = rd_enter(c)))
            return rc;
        json_t *obj = json_object();
        if (!obj)
            return rd_oom(c);
        for (size_t i = 0; i < n->nfields; i++) {
            json_t *fv;
            if ((rc = rd_same(c, n->fields[i].type, &fv))) {
                path_field(&c->e, n->fields[i].name);
                json_decref(obj);
                return rc;
            }
            if (json_object_set_new_nocheck(obj, n->fields[i].name, fv)) {
                json_decref(obj);
                return rd_oom(c);
            }
        }
        c->depth--;
        *out = obj;
        return 0;
    }
    }
    if (!v)
        return rd_oom(c);
    *out = v;
    return 0;
}

static bool promotable(av_kind w, av_kind r)
{
    switch (w) {
    case AV_INT: return r == AV_LONG || r == AV_FLOAT || r == AV_DOUBLE;
    case AV_LONG: return r == AV_FLOAT || r == AV_DOUBLE;
    case AV_FLOAT: return r == AV_DOUBLE;
    case AV_STRING: return r == AV_BYTES;
    case AV_BYTES: return r == AV_STRING;
    default: return false;
    }
}

/* Same kind and, for named types, matching names (and size for fixed). */
static bool same_type(const av_node *w, const av_node *r)
{
    if (w->kind != r->kind)
        return false;
    if (w->named_idx < 0)
        return true;
    if (!av_names_match(w, r))
        return false;
    return w->kind != AV_FIXED || w->size == r->size;
}

/* The reader union branch a non-union writer type resolves to: the first
 * exact match, else the first branch it can be promoted to. */
static const av_node *pick_branch(const av_node *w, const av_node *ru)
{
    for (size_t i = 0; i < ru->nbranches; i++)
        if (same_type(w, ru->branches[i]))
            return ru->branches[i];
    for (size_t i = 0; i < ru->nbranches; i++)
        if (promotable(w->kind, ru->branches[i]->kind))
            return ru->branches[i];
    return NULL;
}

/* The reader field a writer field feeds: same name (trying the same
 * position first, the usual case), else a reader field alias. */
static long find_reader_field(const av_node *r, const char *name, size_t hint)
{
    if (hint < r->nfields && strcmp(r->fields[hint].name, name) == 0)
        return (long)hint;
    for (size_t i = 0; i < r->nfields; i++)
        if (strcmp(r->fields[i].name, name) == 0)
            return (long)i;
    for (size_t i = 0; i < r->nfields; i++)
        for (size_t k = 0; k < r->fields[i].naliases; k++)
            if (strcmp(r->fields[i].aliases[k], name) == 0)
                return (long)i;
    return -1;
}

static int rd_record_resolve(rd *c, const av_node *w, const av_node *r, json_t **out)
{
    int rc = rd_enter(c);
    if (rc)
        return rc;
    json_t *stackvals[32];
    json_t **vals = r->nfields <= OMS_ARRAY_LEN(stackvals) ? stackvals
                                                           : malloc(r->nfields * sizeof *vals);
    if (!vals)
        return rd_oom(c);
    memset(vals, 0, r->nfields * sizeof *vals);
    json_t *obj = NULL;

    for (size_t i = 0; i < w->nfields; i++) {
        const av_field *wf = &w->fields[i];
        long j = find_reader_field(r, wf->name, i);
        if (j < 0 || vals[j]) {
            rc = rd_skip(c, wf->type);
        } else {
            const av_node *rt = r->fields[j].type;
            rc = wf->type == rt ? rd_same(c, rt, &vals[j]) : rd_resolve(c, wf->type, rt, &vals[j]);
        }
        if (rc) {
            path_field(&c->e, wf->name);
            goto done;
        }
    }
    for (size_t j = 0; j < r->nfields; j++) {
        if (vals[j])
            continue;
        const av_field *rf = &r->fields[j];
        if (!rf->dflt) {
            rc = err_set(&c->e, OMS_ESCHEMA,
                         "reader field '%s' of '%s' is missing from writer record '%s' and has "
                         "no default",
                         rf->name, r->fullname, w->fullname);
            goto done;
        }
        if (!(vals[j] = json_deep_copy(rf->dflt))) {
            rc = rd_oom(c);
            goto done;
        }
    }
    /* insert in reader order so the object has the reader's shape */
    if (!(obj = json_object())) {
        rc = rd_oom(c);
        goto done;
    }
    for (size_t j = 0; j < r->nfields; j++) {
        json_t *v = vals[j];
        vals[j] = NULL;
        if (json_object_set_new_nocheck(obj, r->fields[j].name, v)) {
            rc = rd_oom(c);
            goto done;
        }
    }
    c->depth--;
    *out = obj;
    obj = NULL;
done:
    json_decref(obj);
    for (size_t j = 0; j < r->nfields; j++)
        json_decref(vals[j]);
    if (vals != stackvals)
        free(vals);
    return rc;
}

static int rd_resolve(rd *c, const av_node *w, const av_node *r, json_t **out)
{
    int rc;
    if (w == r)
        return rd_same(c, w, out);
    if (w->kind == AV_UNION) {
        size_t idx = 0;
        if ((rc = rd_union_index(c, w, &idx)))
            return rc;
        return rd_resolve(c, w->branches[idx], r, out);
    }
    if (r->kind == AV_UNION) {
        const av_node *rb = pick_branch(w, r);
        if (!rb)
            return err_set(&c->e, OMS_ESCHEMA,
                           "writer type %s matches no branch of the reader union", type_desc(w));
        return rd_resolve(c, w, rb, out);
    }
    if (w->kind == r->kind) {
        switch (w->kind) {
        case AV_RECORD:
            if (!av_names_match(w, r))
                break;
            return rd_record_resolve(c, w, r, out);
        case AV_ENUM: {
            if (!av_names_match(w, r))
                break;
            size_t idx = 0;
            if ((rc = rd_enum_index(c, w, &idx)))
                return rc;
            const char *sym = w->symbols[idx];
            for (size_t i = 0; i < r->nsymbols; i++)
                if (strcmp(r->symbols[i], sym) == 0)
                    return (*out = json_string_nocheck(r->symbols[i])) ? 0 : rd_oom(c);
            if (r->enum_default >= 0)
                return (*out = json_string_nocheck(r->symbols[r->enum_default])) ? 0 : rd_oom(c);
            return err_set(&c->e, OMS_ESCHEMA,
                           "symbol '%s' of writer enum '%s' is not in reader enum '%s', which has "
                           "no default",
                           sym, w->fullname, r->fullname);
        }
        case AV_FIXED:
            if (!same_type(w, r))
                break;
            return rd_same(c, w, out);
        case AV_ARRAY:
        case AV_MAP:
            return rd_container(c, w, w->items, r->items, out);
        default:
            return rd_same(c, w, out); /* same primitive */
        }
    } else if (promotable(w->kind, r->kind)) {
        json_t *v = NULL;
        switch (w->kind) {
        case AV_INT:
        case AV_LONG: {
            int64_t l = 0;
            if (w->kind == AV_INT) {
                int32_t i = 0;
                rc = rd_int(c, &i, "int");
                l = i;
            } else {
                rc = rd_long(c, &l, "long");
            }
            if (rc)
                return rc;
            if (r->kind == AV_LONG)
                v = json_integer(l);
            else if (r->kind == AV_FLOAT)
                v = json_real((double)(float)l);
            else
                v = json_real((double)l);
            break;
        }
        case AV_FLOAT: {
            double d = 0;
            if ((rc = rd_float(c, &d)))
                return rc;
            v = json_real(d);
            break;
        }
        case AV_STRING: { /* string -> bytes: the same bytes, as code points */
            size_t len = 0;
            if ((rc = rd_len(c, &len, "string")))
                return rc;
            v = bytes_to_json(c->p, len);
            c->p += len;
            break;
        }
        case AV_BYTES: { /* bytes -> string: must be UTF-8 */
            const char *s = NULL;
            size_t len = 0;
            if ((rc = rd_str(c, &s, &len, "bytes read as string")))
                return rc;
            v = json_stringn_nocheck(s, len);
            break;
        }
        default: break;
        }
        if (!v)
            return rd_oom(c);
        *out = v;
        return 0;
    }
    return err_set(&c->e, OMS_ESCHEMA, "cannot read writer type %s as reader type %s",
                   type_desc(w), type_desc(r));
}

int oms_avro_decode_json(const oms_avro_schema *writer, const oms_avro_schema *reader,
                         const uint8_t *body, size_t body_len, json_t **out, char *errbuf,
                         size_t errlen)
{
    if (out)
        *out = NULL;
    if (!writer || !out || (!body && body_len)) {
        oms_errf(errbuf, errlen, "invalid arguments");
        return OMS_EINVAL;
    }
    /* Identical canonical forms read identically: skip resolution. */
    if (!reader || (reader != writer && reader->fingerprint == writer->fingerprint &&
                    strcmp(reader->canonical, writer->canonical) == 0))
        reader = writer;
    static const uint8_t empty[1];
    rd c = {.start = body ? body : empty, .p = body ? body : empty};
    c.end = c.p + body_len;
    json_t *v = NULL;
    int rc = rd_resolve(&c, writer->root, reader->root, &v);
    if (rc == 0 && c.p != c.end) {
        rc = err_set(&c.e, OMS_EINVAL, "trailing garbage: %zu bytes after the datum at offset %zu",
                     RD_LEFT(&c), RD_OFF(&c));
        json_decref(v);
        v = NULL;
    }
    if (rc) {
        err_report(&c.e, errbuf, errlen);
        return rc;
    }
    *out = v;
    return 0;
}

/* ---- compatibility check --------------------------------------------------------- */

typedef struct {
    const av_node *w[AV_MAX_DEPTH * 4];
    const av_node *r[AV_MAX_DEPTH * 4];
    int n;
    av_err e;
} compat_ctx;

static int compat(compat_ctx *c, const av_node *w, const av_node *r)
{
    if (w == r)
        return 0;
    if (c->n >= (int)OMS_ARRAY_LEN(c->w))
        return err_set(&c->e, OMS_ESCHEMA, "schemas nested too deeply to compare");
    /* A pair already being compared further up is assumed compatible:
     * that is how recursive records terminate. */
    for (int i = 0; i < c->n; i++)
        if (c->w[i] == w && c->r[i] == r)
            return 0;
    c->w[c->n] = w;
    c->r[c->n] = r;
    c->n++;
    int rc = 0;
    if (w->kind == AV_UNION) {
        /* every branch the writer may have used must be readable */
        for (size_t i = 0; i < w->nbranches && !rc; i++)
            rc = compat(c, w->branches[i], r);
    } else if (r->kind == AV_UNION) {
        const av_node *rb = pick_branch(w, r);
        rc = rb ? compat(c, w, rb)
                : err_set(&c->e, OMS_ESCHEMA,
                          "writer type %s matches no branch of the reader union", type_desc(w));
    } else if (w->kind == r->kind) {
        switch (w->kind) {
        case AV_RECORD:
            if (!av_names_match(w, r)) {
                rc = err_set(&c->e, OMS_ESCHEMA,
                             "writer record '%s' does not match reader record '%s'", w->fullname,
                             r->fullname);
                break;
            }
            for (size_t j = 0; j < r->nfields && !rc; j++) {
                const av_field *rf = &r->fields[j];
                const av_field *wf = NULL;
                for (size_t i = 0; i < w->nfields && !wf; i++) {
                    if (strcmp(w->fields[i].name, rf->name) == 0)
                        wf = &w->fields[i];
                }
                for (size_t i = 0; i < w->nfields && !wf; i++)
                    for (size_t k = 0; k < rf->naliases && !wf; k++)
                        if (strcmp(w->fields[i].name, rf->aliases[k]) == 0)
                            wf = &w->fields[i];
                if (wf) {
                    if ((rc = compat(c, wf->type, rf->type)))
                        path_field(&c->e, rf->name);
                } else if (!rf->dflt) {
                    rc = err_set(&c->e, OMS_ESCHEMA,
                                 "reader field '%s' of '%s' is missing from writer record '%s' "
                                 "and has no default",
                                 rf->name, r->fullname, w->fullname);
                }
            }
            break;
        case AV_ENUM:
            if (!av_names_match(w, r)) {
                rc = err_set(&c->e, OMS_ESCHEMA, "writer enum '%s' does not match reader enum '%s'",
                             w->fullname, r->fullname);
                break;
            }
            if (r->enum_default >= 0)
                break;
            for (size_t i = 0; i < w->nsymbols && !rc; i++) {
                bool found = false;
                for (size_t k = 0; k < r->nsymbols && !found; k++)
                    found = strcmp(w->symbols[i], r->symbols[k]) == 0;
                if (!found)
                    rc = err_set(&c->e, OMS_ESCHEMA,
                                 "symbol '%s' of writer enum '%s' is not in reader enum '%s', "
                                 "which has no default",
                                 w->symbols[i], w->fullname, r->fullname);
            }
            break;
        case AV_FIXED:
            if (!same_type(w, r))
                rc = err_set(&c->e, OMS_ESCHEMA,
                             "writer fixed '%s' (%zu) does not match reader fixed '%s' (%zu)",
                             w->fullname, w->size, r->fullname, r->size);
            break;
        case AV_ARRAY:
        case AV_MAP:
            if ((rc = compat(c, w->items, r->items)))
                path_prepend(&c->e, w->kind == AV_ARRAY ? "[]" : "[*]", 2 + (w->kind == AV_MAP));
            break;
        default: break;
        }
    } else if (!promotable(w->kind, r->kind)) {
        rc = err_set(&c->e, OMS_ESCHEMA, "cannot read writer type %s as reader type %s",
                     type_desc(w), type_desc(r));
    }
    c->n--;
    return rc;
}

int oms_avro_check_compatible(const oms_avro_schema *writer, const oms_avro_schema *reader,
                              char *errbuf, size_t errlen)
{
    if (!writer || !reader) {
        oms_errf(errbuf, errlen, "invalid arguments");
        return OMS_EINVAL;
    }
    compat_ctx *c = calloc(1, sizeof *c);
    if (!c) {
        oms_errf(errbuf, errlen, "out of memory");
        return OMS_ENOMEM;
    }
    int rc = compat(c, writer->root, reader->root);
    if (rc)
        err_report(&c->e, errbuf, errlen);
    free(c);
    return rc;
}

/* ---- encoder -------------------------------------------------------------------- */

typedef struct {
    uint8_t *out;
    size_t cap, pos;
    int depth;
    av_err e;
} wr;

static int wr_put(wr *c, const void *p, size_t n)
{
    if (c->cap - c->pos < n)
        return err_set(&c->e, OMS_ERANGE, "output buffer of %zu bytes is too small", c->cap);
    if (n)
        memcpy(c->out + c->pos, p, n);
    c->pos += n;
    return 0;
}

static int wr_varint(wr *c, uint64_t v)
{
    uint8_t b[10];
    size_t n = 0;
    while (v >= 0x80) {
        b[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    b[n++] = (uint8_t)v;
    return wr_put(c, b, n);
}

static int wr_long(wr *c, int64_t v)
{
    uint64_t u = (uint64_t)v << 1;
    return wr_varint(c, v < 0 ? ~u : u);
}

static int wr_mismatch(wr *c, const av_node *n, const json_t *v)
{
    return err_set(&c->e, OMS_EINVAL, "expected %s, got %s", type_desc(n), av_json_type_name(v));
}

/* bytes/fixed from a string of code points U+0000..U+00FF: ASCII bytes, or
 * the two-byte UTF-8 sequences C2/C3 xx. */
static int wr_bytes_json(wr *c, const av_node *n, const json_t *v)
{
    const uint8_t *s = (const uint8_t *)json_string_value(v);
    size_t len = json_string_length(v), count = 0;
    for (size_t i = 0; i < len; i++, count++) {
        if (s[i] < 0x80)
            continue;
        if ((s[i] == 0xC2 || s[i] == 0xC3) && i + 1 < len && (s[i + 1] & 0xC0) == 0x80) {
            i++;
            continue;
        }
        return err_set(&c->e, OMS_EINVAL,
                       "%s value has a character above U+00FF (or bad UTF-8) at byte %zu",
                       av_kind_name(n->kind), i);
    }
    int rc;
    if (n->kind == AV_FIXED) {
        if (count != n->size)
            return err_set(&c->e, OMS_EINVAL, "fixed '%s' needs %zu bytes, got %zu", n->fullname,
                           n->size, count);
    } else if ((rc = wr_long(c, (int64_t)count))) {
        return rc;
    }
    if (c->cap - c->pos < count)
        return err_set(&c->e, OMS_ERANGE, "output buffer of %zu bytes is too small", c->cap);
    for (size_t i = 0; i < len; i++) {
        if (s[i] < 0x80) {
            c->out[c->pos++] = s[i];
        } else {
            c->out[c->pos++] = (uint8_t)((s[i] & 0x03) << 6 | (s[i + 1] & 0x3F));
            i++;
        }
    }
    return 0;
}

static bool json_shallow_ok(const av_node *b, const json_t *v)
{
    switch (b->kind) {
    case AV_NULL: return json_is_null(v);
    case AV_BOOLEAN: return json_is_boolean(v);
    case AV_INT:
    case AV_LONG: return json_is_integer(v);
    case AV_FLOAT:
    case AV_DOUBLE: return json_is_number(v);
    case AV_BYTES:
    case AV_STRING:
    case AV_ENUM:
    case AV_FIXED: return json_is_string(v);
    case AV_ARRAY: return json_is_array(v);
    case AV_MAP:
    case AV_RECORD: return json_is_object(v);
    case AV_UNION: return false;
    }
    return false;
}

static int wr_value(wr *c, const av_node *n, const json_t *v);

static int wr_union(wr *c, const av_node *n, const json_t *v)
{
    size_t saved = c->pos;
    av_err first;
    bool have_first = false;
    for (size_t i = 0; i < n->nbranches; i++) {
        const av_node *b = n->branches[i];
        if (!json_shallow_ok(b, v))
            continue;
        int rc = wr_long(c, (int64_t)i);
        if (!rc)
            rc = wr_value(c, b, v);
        if (!rc)
            return 0;
        if (rc != OMS_EINVAL)
            return rc;
        /* keep the first branch's reason: it is the most likely intent */
        if (!have_first) {
            first = c->e;
            have_first = true;
        }
        c->pos = saved;
    }
    if (have_first) {
        c->e = first;
        return first.code;
    }
    char list[200] = "";
    size_t o = 0;
    for (size_t i = 0; i < n->nbranches && o < sizeof list - 1; i++) {
        int k = snprintf(list + o, sizeof list - o, "%s%s", i ? "|" : "",
                         type_desc(n->branches[i]));
        if (k < 0)
            break;
        o += (size_t)k;
    }
    return err_set(&c->e, OMS_EINVAL, "expected one of %s, got %s", list, av_json_type_name(v));
}

static int wr_record(wr *c, const av_node *n, const json_t *v)
{
    size_t matched = 0;
    int rc;
    for (size_t i = 0; i < n->nfields; i++) {
        const av_field *f = &n->fields[i];
        json_t *fv = json_object_get(v, f->name);
        if (fv) {
            matched++;
            rc = wr_value(c, f->type, fv);
        } else if (f->dflt) {
            /* the default belongs to the first branch of a union */
            if (f->type->kind == AV_UNION) {
                rc = wr_long(c, 0);
                if (!rc)
                    rc = wr_value(c, f->type->branches[0], f->dflt);
            } else {
                rc = wr_value(c, f->type, f->dflt);
            }
        } else {
            rc = err_set(&c->e, OMS_EINVAL, "missing (the field has no default)");
        }
        if (rc) {
            path_field(&c->e, f->name);
            return rc;
        }
    }
    if (matched != json_object_size(v)) {
        const char *key;
        json_t *unused;
        json_object_foreach((json_t *)v, key, unused)
        {
            bool known = false;
            for (size_t i = 0; i < n->nfields && !known; i++)
                known = strcmp(n->fields[i].name, key) == 0;
            if (!known)
                return err_set(&c->e, OMS_EINVAL, "unknown field '%.100s' for record '%s'", key,
                               n->fullname);
        }
    }
    return 0;
}

static int wr_value(wr *c, const av_node *n, const json_t *v)
{
    int rc;
    switch (n->kind) {
    case AV_NULL:
        return json_is_null(v) ? 0 : wr_mismatch(c, n, v);
    case AV_BOOLEAN: {
        if (!json_is_boolean(v))
            return wr_mismatch(c, n, v);
        uint8_t b = json_is_true(v);
        return wr_put(c, &b, 1);
    }
    case AV_INT:
    case AV_LONG: {
        if (!json_is_integer(v))
            return wr_mismatch(c, n, v);
        json_int_t i = json_integer_value(v);
        if (n->kind == AV_INT && (i < INT32_MIN || i > INT32_MAX))
            return err_set(&c->e, OMS_EINVAL, "%lld is out of range for int", (long long)i);
        return wr_long(c, (int64_t)i);
    }
    case AV_FLOAT: {
        if (!json_is_number(v))
            return wr_mismatch(c, n, v);
        double d = json_number_value(v);
        if (fabs(d) > FLT_MAX)
            return err_set(&c->e, OMS_EINVAL, "%g is out of range for float", d);
        float f = (float)d;
        uint32_t u;
        memcpy(&u, &f, 4);
        uint8_t b[4] = {(uint8_t)u, (uint8_t)(u >> 8), (uint8_t)(u >> 16), (uint8_t)(u >> 24)};
        return wr_put(c, b, 4);
    }
    case AV_DOUBLE: {
        if (!json_is_number(v))
            return wr_mismatch(c, n, v);
        double d = json_number_value(v);
        uint64_t u;
        memcpy(&u, &d, 8);
        uint8_t b[8];
        for (int i = 0; i < 8; i++)
            b[i] = (uint8_t)(u >> (8 * i));
        return wr_put(c, b, 8);
    }
    case AV_BYTES:
    case AV_FIXED:
        if (!json_is_string(v))
            return wr_mismatch(c, n, v);
        return wr_bytes_json(c, n, v);
    case AV_STRING: {
        if (!json_is_string(v))
            return wr_mismatch(c, n, v);
        const char *s = json_string_value(v);
        size_t len = json_string_length(v);
        size_t bad = av_utf8_check((const uint8_t *)s, len);
        if (bad != len) /* only possible with json_string_nocheck() */
            return err_set(&c->e, OMS_EINVAL, "invalid UTF-8 in string at byte %zu", bad);
        if ((rc = wr_long(c, (int64_t)len)))
            return rc;
        return wr_put(c, s, len);
    }
    case AV_ENUM: {
        if (!json_is_string(v))
            return wr_mismatch(c, n, v);
        const char *s = json_string_value(v);
        for (size_t i = 0; i < n->nsymbols; i++)
            if (strcmp(n->symbols[i], s) == 0)
                return wr_long(c, (int64_t)i);
        return err_set(&c->e, OMS_EINVAL, "'%.100s' is not a symbol of enum '%s'", s, n->fullname);
    }
    case AV_UNION:
        return wr_union(c, n, v);
    case AV_ARRAY:
    case AV_MAP:
    case AV_RECORD:
        break;
    }
    /* containers */
    if (n->kind == AV_ARRAY ? !json_is_array(v) : !json_is_object(v))
        return wr_mismatch(c, n, v);
    /* the depth is restored on errors too: a failed union branch is retried */
    if (c->depth >= AV_MAX_DEPTH)
        return err_set(&c->e, OMS_EINVAL, "value nested deeper than %d levels", AV_MAX_DEPTH);
    c->depth++;
    if (n->kind == AV_RECORD) {
        rc = wr_record(c, n, v);
    } else if (n->kind == AV_ARRAY) {
        size_t len = json_array_size(v);
        rc = len ? wr_long(c, (int64_t)len) : 0;
        for (size_t i = 0; i < len && !rc; i++)
            if ((rc = wr_value(c, n->items, json_array_get(v, i))))
                path_index(&c->e, i);
        if (!rc)
            rc = wr_long(c, 0);
    } else {
        size_t len = json_object_size(v);
        rc = len ? wr_long(c, (int64_t)len) : 0;
        const char *key;
        size_t klen;
        json_t *mv;
        json_object_keylen_foreach((json_t *)v, key, klen, mv)
        {
            if (rc)
                break;
            if (!(rc = wr_long(c, (int64_t)klen)) && !(rc = wr_put(c, key, klen)) &&
                (rc = wr_value(c, n->items, mv)))
                path_key(&c->e, key, klen);
        }
        if (!rc)
            rc = wr_long(c, 0);
    }
    c->depth--;
    return rc;
}

int oms_avro_encode_json(const oms_avro_schema *schema, const json_t *value, uint8_t *out,
                         size_t cap, size_t *written, char *errbuf, size_t errlen)
{
    if (written)
        *written = 0;
    if (!schema || !value || !written || (!out && cap)) {
        oms_errf(errbuf, errlen, "invalid arguments");
        return OMS_EINVAL;
    }
    wr c = {.out = out, .cap = cap};
    int rc = wr_value(&c, schema->root, value);
    if (rc) {
        err_report(&c.e, errbuf, errlen);
        return rc;
    }
    *written = c.pos;
    return 0;
}
