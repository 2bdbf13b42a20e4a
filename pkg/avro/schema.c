/* schema.c — Avro schema parsing (Avro 1.11 specification), Parsing
 * Canonical Form and CRC-64-AVRO fingerprints.
 *
 * The JSON is parsed with jansson into a graph of av_node. Named types
 * (record, enum, fixed) are registered under their full name when they are
 * defined, so later references — including a record referring to itself —
 * point at the same node; the graph may therefore be cyclic, which is why
 * all nodes live in a per-schema arena instead of being owned by parents. */
#include "avro/avro_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- CRC-64-AVRO ------------------------------------------------------------ */

/* The spec's table: FP_TABLE[i] = 8 rounds of fp = (fp >> 1) ^ (EMPTY & -(fp & 1))
 * starting from i. Precomputed so the module has no mutable global state. */
static const uint64_t crc64_table[256] = {
    0x0000000000000000ULL, 0x2cf1cba6b75351faULL, 0x59e3974d6ea6a3f4ULL,
    0x75125cebd9f5f20eULL, 0xb3c72e9add4d47e8ULL, 0x9f36e53c6a1e1612ULL,
    0xea24b9d7b3ebe41cULL, 0xc6d5727104b8b5e6ULL, 0xe5341f40f335c0fbULL,
    0xc9c5d4e644669101ULL, 0xbcd7880d9d93630fULL, 0x902643ab2ac032f5ULL,
    0x56f331da2e788713ULL, 0x7a02fa7c992bd6e9ULL, 0x0f10a69740de24e7ULL,
    0x23e16d31f78d751dULL, 0x48d27cf4afc4ceddULL, 0x6423b75218979f27ULL,
    0x1131ebb9c1626d29ULL, 0x3dc0201f76313cd3ULL, 0xfb15526e72898935ULL,
    0xd7e499c8c5dad8cfULL, 0xa2f6c5231c2f2ac1ULL, 0x8e070e85ab7c7b3bULL,
    0xade663b45cf10e26ULL, 0x8117a812eba25fdcULL, 0xf405f4f93257add2ULL,
    0xd8f43f5f8504fc28ULL, 0x1e214d2e81bc49ceULL, 0x32d0868836ef1834ULL,
    0x47c2da63ef1aea3aULL, 0x6b3311c55849bbc0ULL, 0x91a4f9e95f899dbaULL,
    0xbd55324fe8dacc40ULL, 0xc8476ea4312f3e4eULL, 0xe4b6a502867c6fb4ULL,
    0x2263d77382c4da52ULL, 0x0e921cd535978ba8ULL, 0x7b80403eec6279a6ULL,
    0x57718b985b31285cULL, 0x7490e6a9acbc5d41ULL, 0x58612d0f1bef0cbbULL,
    0x2d7371e4c21afeb5ULL, 0x0182ba427549af4fULL, 0xc757c83371f11aa9ULL,
    0xeba60395c6a24b53ULL, 0x9eb45f7e1f57b95dULL, 0xb24594d8a804e8a7ULL,
    0xd976851df04d5367ULL, 0xf5874ebb471e029dULL, 0x809512509eebf093ULL,
    0xac64d9f629b8a169ULL, 0x6ab1ab872d00148fULL, 0x464060219a534575ULL,
    0x33523cca43a6b77bULL, 0x1fa3f76cf4f5e681ULL, 0x3c429a5d0378939cULL,
    0x10b351fbb42bc266ULL, 0x65a10d106dde3068ULL, 0x4950c6b6da8d6192ULL,
    0x8f85b4c7de35d474ULL, 0xa3747f616966858eULL, 0xd666238ab0937780ULL,
    0xfa97e82c07c0267aULL, 0xa1f3b1a7f6bc745fULL, 0x8d027a0141ef25a5ULL,
    0xf81026ea981ad7abULL, 0xd4e1ed4c2f498651ULL, 0x12349f3d2bf133b7ULL,
    0x3ec5549b9ca2624dULL, 0x4bd7087045579043ULL, 0x6726c3d6f204c1b9ULL,
    0x44c7aee70589b4a4ULL, 0x68366541b2dae55eULL, 0x1d2439aa6b2f1750ULL,
    0x31d5f20cdc7c46aaULL, 0xf700807dd8c4f34cULL, 0xdbf14bdb6f97a2b6ULL,
    0xaee31730b66250b8ULL, 0x8212dc9601310142ULL, 0xe921cd535978ba82ULL,
    0xc5d006f5ee2beb78ULL, 0xb0c25a1e37de1976ULL, 0x9c3391b8808d488cULL,
    0x5ae6e3c98435fd6aULL, 0x7617286f3366ac90ULL, 0x03057484ea935e9eULL,
    0x2ff4bf225dc00f64ULL, 0x0c15d213aa4d7a79ULL, 0x20e419b51d1e2b83ULL,
    0x55f6455ec4ebd98dULL, 0x79078ef873b88877ULL, 0xbfd2fc8977003d91ULL,
    0x9323372fc0536c6bULL, 0xe6316bc419a69e65ULL, 0xcac0a062aef5cf9fULL,
    0x3057484ea935e9e5ULL, 0x1ca683e81e66b81fULL, 0x69b4df03c7934a11ULL,
    0x454514a570c01bebULL, 0x839066d47478ae0dULL, 0xaf61ad72c32bfff7ULL,
    0xda73f1991ade0df9ULL, 0xf6823a3fad8d5c03ULL, 0xd563570e5a00291eULL,
    0xf9929ca8ed5378e4ULL, 0x8c80c04334a68aeaULL, 0xa0710be583f5db10ULL,
    0x66a47994874d6ef6ULL, 0x4a55b232301e3f0cULL, 0x3f47eed9e9ebcd02ULL,
    0x13b6257f5eb89cf8ULL, 0x788534ba06f12738ULL, 0x5474ff1cb1a276c2ULL,
    0x2166a3f7685784ccULL, 0x0d976851df04d536ULL, 0xcb421a20dbbc60d0ULL,
    0xe7b3d1866cef312aULL, 0x92a18d6db51ac324ULL, 0xbe5046cb024992deULL,
    0x9db12bfaf5c4e7c3ULL, 0xb140e05c4297b639ULL, 0xc452bcb79b624437ULL,
    0xe8a377112c3115cdULL, 0x2e7605602889a02bULL, 0x0287cec69fdaf1d1ULL,
    0x7795922d462f03dfULL, 0x5b64598bf17c5225ULL, 0xc15d213aa4d7a795ULL,
    0xedacea9c1384f66fULL, 0x98beb677ca710461ULL, 0xb44f7dd17d22559bULL,
    0x729a0fa0799ae07dULL, 0x5e6bc406cec9b187ULL, 0x2b7998ed173c4389ULL,
    0x0788534ba06f1273ULL, 0x24693e7a57e2676eULL, 0x0898f5dce0b13694ULL,
    0x7d8aa9373944c49aULL, 0x517b62918e179560ULL, 0x97ae10e08aaf2086ULL,
    0xbb5fdb463dfc717cULL, 0xce4d87ade4098372ULL, 0xe2bc4c0b535ad288ULL,
    0x898f5dce0b136948ULL, 0xa57e9668bc4038b2ULL, 0xd06cca8365b5cabcULL,
    0xfc9d0125d2e69b46ULL, 0x3a487354d65e2ea0ULL, 0x16b9b8f2610d7f5aULL,
    0x63abe419b8f88d54ULL, 0x4f5a2fbf0fabdcaeULL, 0x6cbb428ef826a9b3ULL,
    0x404a89284f75f849ULL, 0x3558d5c396800a47ULL, 0x19a91e6521d35bbdULL,
    0xdf7c6c14256bee5bULL, 0xf38da7b29238bfa1ULL, 0x869ffb594bcd4dafULL,
    0xaa6e30fffc9e1c55ULL, 0x50f9d8d3fb5e3a2fULL, 0x7c0813754c0d6bd5ULL,
    0x091a4f9e95f899dbULL, 0x25eb843822abc821ULL, 0xe33ef64926137dc7ULL,
    0xcfcf3def91402c3dULL, 0xbadd610448b5de33ULL, 0x962caaa2ffe68fc9ULL,
    0xb5cdc793086bfad4ULL, 0x993c0c35bf38ab2eULL, 0xec2e50de66cd5920ULL,
    0xc0df9b78d19e08daULL, 0x060ae909d526bd3cULL, 0x2afb22af6275ecc6ULL,
    0x5fe97e44bb801ec8ULL, 0x7318b5e20cd34f32ULL, 0x182ba427549af4f2ULL,
    0x34da6f81e3c9a508ULL, 0x41c8336a3a3c5706ULL, 0x6d39f8cc8d6f06fcULL,
    0xabec8abd89d7b31aULL, 0x871d411b3e84e2e0ULL, 0xf20f1df0e77110eeULL,
    0xdefed65650224114ULL, 0xfd1fbb67a7af3409ULL, 0xd1ee70c110fc65f3ULL,
    0xa4fc2c2ac90997fdULL, 0x880de78c7e5ac607ULL, 0x4ed895fd7ae273e1ULL,
    0x62295e5bcdb1221bULL, 0x173b02b01444d015ULL, 0x3bcac916a31781efULL,
    0x60ae909d526bd3caULL, 0x4c5f5b3be5388230ULL, 0x394d07d03ccd703eULL,
    0x15bccc768b9e21c4ULL, 0xd369be078f269422ULL, 0xff9875a13875c5d8ULL,
    0x8a8a294ae18037d6ULL, 0xa67be2ec56d3662cULL, 0x859a8fdda15e1331ULL,
    0xa96b447b160d42cbULL, 0xdc791890cff8b0c5ULL, 0xf088d33678abe13fULL,
    0x365da1477c1354d9ULL, 0x1aac6ae1cb400523ULL, 0x6fbe360a12b5f72dULL,
    0x434ffdaca5e6a6d7ULL, 0x287cec69fdaf1d17ULL, 0x048d27cf4afc4cedULL,
    0x719f7b249309bee3ULL, 0x5d6eb082245aef19ULL, 0x9bbbc2f320e25affULL,
    0xb74a095597b10b05ULL, 0xc25855be4e44f90bULL, 0xeea99e18f917a8f1ULL,
    0xcd48f3290e9addecULL, 0xe1b9388fb9c98c16ULL, 0x94ab6464603c7e18ULL,
    0xb85aafc2d76f2fe2ULL, 0x7e8fddb3d3d79a04ULL, 0x527e16156484cbfeULL,
    0x276c4afebd7139f0ULL, 0x0b9d81580a22680aULL, 0xf10a69740de24e70ULL,
    0xddfba2d2bab11f8aULL, 0xa8e9fe396344ed84ULL, 0x8418359fd417bc7eULL,
    0x42cd47eed0af0998ULL, 0x6e3c8c4867fc5862ULL, 0x1b2ed0a3be09aa6cULL,
    0x37df1b05095afb96ULL, 0x143e7634fed78e8bULL, 0x38cfbd924984df71ULL,
    0x4ddde17990712d7fULL, 0x612c2adf27227c85ULL, 0xa7f958ae239ac963ULL,
    0x8b08930894c99899ULL, 0xfe1acfe34d3c6a97ULL, 0xd2eb0445fa6f3b6dULL,
    0xb9d81580a22680adULL, 0x9529de261575d157ULL, 0xe03b82cdcc802359ULL,
    0xccca496b7bd372a3ULL, 0x0a1f3b1a7f6bc745ULL, 0x26eef0bcc83896bfULL,
    0x53fcac5711cd64b1ULL, 0x7f0d67f1a69e354bULL, 0x5cec0ac051134056ULL,
    0x701dc166e64011acULL, 0x050f9d8d3fb5e3a2ULL, 0x29fe562b88e6b258ULL,
    0xef2b245a8c5e07beULL, 0xc3daeffc3b0d5644ULL, 0xb6c8b317e2f8a44aULL,
    0x9a3978b155abf5b0ULL,
};

#define CRC64_EMPTY 0xc15d213aa4d7a795ULL

uint64_t oms_avro_crc64(const void *data, size_t len)
{
    const uint8_t *p = data;
    uint64_t fp = CRC64_EMPTY;
    for (size_t i = 0; i < len; i++)
        fp = (fp >> 8) ^ crc64_table[(fp ^ p[i]) & 0xff];
    return fp;
}

/* ---- small helpers ------------------------------------------------------------ */

const char *av_kind_name(av_kind k)
{
    switch (k) {
    case AV_NULL: return "null";
    case AV_BOOLEAN: return "boolean";
    case AV_INT: return "int";
    case AV_LONG: return "long";
    case AV_FLOAT: return "float";
    case AV_DOUBLE: return "double";
    case AV_BYTES: return "bytes";
    case AV_STRING: return "string";
    case AV_RECORD: return "record";
    case AV_ENUM: return "enum";
    case AV_ARRAY: return "array";
    case AV_MAP: return "map";
    case AV_UNION: return "union";
    case AV_FIXED: return "fixed";
    }
    return "?";
}

const char *av_json_type_name(const json_t *j)
{
    switch (json_typeof(j)) {
    case JSON_OBJECT: return "object";
    case JSON_ARRAY: return "array";
    case JSON_STRING: return "string";
    case JSON_INTEGER: return "integer";
    case JSON_REAL: return "real";
    case JSON_TRUE:
    case JSON_FALSE: return "boolean";
    case JSON_NULL: return "null";
    }
    return "?";
}

size_t av_utf8_check(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t b = s[i];
        if (b < 0x80) {
            i++;
            continue;
        }
        size_t need;
        uint32_t cp, min;
        if (b >= 0xC2 && b <= 0xDF) {
            need = 1, cp = b & 0x1F, min = 0x80;
        } else if (b >= 0xE0 && b <= 0xEF) {
            need = 2, cp = b & 0x0F, min = 0x800;
        } else if (b >= 0xF0 && b <= 0xF4) {
            need = 3, cp = b & 0x07, min = 0x10000;
        } else {
            return i; /* continuation byte, C0/C1 overlong lead, or F5..FF */
        }
        if (n - i - 1 < need)
            return i;
        for (size_t k = 1; k <= need; k++) {
            uint8_t c = s[i + k];
            if ((c & 0xC0) != 0x80)
                return i;
            cp = (cp << 6) | (c & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return i;
        i += need + 1;
    }
    return n;
}

/* Unqualified part of a full name. */
static const char *base_name(const char *full)
{
    const char *dot = strrchr(full, '.');
    return dot ? dot + 1 : full;
}

/* Named-type matching for resolution (spec: "both schemas are records with
 * the same (unqualified) name"), plus the reader's aliases. */
bool av_names_match(const av_node *w, const av_node *r)
{
    if (w == r || strcmp(w->fullname, r->fullname) == 0)
        return true;
    if (strcmp(w->name, r->name) == 0)
        return true;
    for (size_t i = 0; i < r->naliases; i++)
        if (strcmp(r->aliases[i], w->fullname) == 0)
            return true;
    return false;
}

/* ---- arena ------------------------------------------------------------------- */

struct av_arena_block {
    av_arena_block *next;
    size_t used, cap;
    max_align_t data[];
};

#define ARENA_BLOCK 4096

static void *arena_alloc(oms_avro_schema *s, size_t n)
{
    n = (n + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
    if (n == 0)
        n = sizeof(max_align_t);
    av_arena_block *b = s->arena;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > ARENA_BLOCK ? n : ARENA_BLOCK;
        b = malloc(sizeof *b + cap);
        if (!b)
            return NULL;
        b->used = 0;
        b->cap = cap;
        b->next = s->arena;
        s->arena = b;
    }
    void *p = (char *)b->data + b->used;
    b->used += n;
    memset(p, 0, n);
    return p;
}

static char *arena_strndup(oms_avro_schema *s, const char *str, size_t n)
{
    char *p = arena_alloc(s, n + 1);
    if (p) {
        memcpy(p, str, n);
        p[n] = '\0';
    }
    return p;
}

static char *arena_strdup(oms_avro_schema *s, const char *str)
{
    return arena_strndup(s, str, strlen(str));
}

/* "ns" + "." + "name", or "name" when ns is NULL or empty. */
static char *arena_join(oms_avro_schema *s, const char *ns, const char *name)
{
    if (!ns || !*ns)
        return arena_strdup(s, name);
    size_t a = strlen(ns), b = strlen(name);
    char *p = arena_alloc(s, a + b + 2);
    if (p) {
        memcpy(p, ns, a);
        p[a] = '.';
        memcpy(p + a + 1, name, b + 1);
    }
    return p;
}

/* Make room for one more element in a growable array (elements of size
 * elem); *arr is only written through its own type by the callers. */
static void *grow(void *arr, size_t n, size_t *cap, size_t elem)
{
    if (n < *cap)
        return arr;
    size_t nc = *cap ? *cap * 2 : 16;
    void *na = realloc(arr, nc * elem);
    if (na)
        *cap = nc;
    return na;
}

static bool push_node(av_node ***arr, size_t *n, size_t *cap, av_node *p)
{
    av_node **na = grow(*arr, *n, cap, sizeof *na);
    if (!na)
        return false;
    *arr = na;
    na[(*n)++] = p;
    return true;
}

/* ---- parser ------------------------------------------------------------------- */

typedef struct {
    oms_avro_schema *s;
    char *errbuf;
    size_t errlen;
    bool failed;
    /* where we are, for messages */
    const char *cur_record;
    const char *cur_field;
    /* fields with a "default", checked once the whole schema is known (a
     * default may use the enclosing record recursively) */
    av_field **dfields;
    size_t ndfields, cap_dfields;
} ps_ctx;

__attribute__((format(printf, 2, 3))) static void ps_fail(ps_ctx *c, const char *fmt, ...)
{
    if (c->failed)
        return;
    c->failed = true;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (c->cur_record && c->cur_field)
        oms_errf(c->errbuf, c->errlen, "record '%s' field '%s': %s", c->cur_record, c->cur_field,
                 msg);
    else if (c->cur_record)
        oms_errf(c->errbuf, c->errlen, "record '%s': %s", c->cur_record, msg);
    else
        oms_errf(c->errbuf, c->errlen, "%s", msg);
}

static void ps_oom(ps_ctx *c)
{
    ps_fail(c, "out of memory");
}

/* A JSON string usable as a C string: names and symbols must not hide
 * an embedded NUL (the parser allows \u0000 for bytes defaults). */
static bool is_cstr(const json_t *j)
{
    return json_is_string(j) && strlen(json_string_value(j)) == json_string_length(j);
}

static int prim_kind(const char *s)
{
    static const struct {
        const char *name;
        av_kind kind;
    } prims[] = {
        {"null", AV_NULL},   {"boolean", AV_BOOLEAN}, {"int", AV_INT},     {"long", AV_LONG},
        {"float", AV_FLOAT}, {"double", AV_DOUBLE},   {"bytes", AV_BYTES}, {"string", AV_STRING},
    };
    for (size_t i = 0; i < OMS_ARRAY_LEN(prims); i++)
        if (strcmp(s, prims[i].name) == 0)
            return (int)prims[i].kind;
    return -1;
}

/* [A-Za-z_][A-Za-z0-9_]* over s[0..n) */
static bool valid_name_n(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        bool alpha = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || ch == '_';
        if (!alpha && !(i > 0 && ch >= '0' && ch <= '9'))
            return false;
    }
    return true;
}

static bool valid_name(const char *s)
{
    return valid_name_n(s, strlen(s));
}

/* Dot-separated names; the empty string is the null namespace when
 * allow_empty. */
static bool valid_dotted(const char *s, bool allow_empty)
{
    if (!*s)
        return allow_empty;
    for (;;) {
        const char *dot = strchr(s, '.');
        size_t n = dot ? (size_t)(dot - s) : strlen(s);
        if (!valid_name_n(s, n))
            return false;
        if (!dot)
            return true;
        s = dot + 1;
    }
}

static av_node *new_node(ps_ctx *c, av_kind kind)
{
    av_node *n = arena_alloc(c->s, sizeof *n);
    if (!n || !push_node(&c->s->nodes, &c->s->nnodes, &c->s->cap_nodes, n)) {
        ps_oom(c);
        return NULL;
    }
    n->kind = kind;
    n->enum_default = -1;
    n->named_idx = -1;
    return n;
}

static av_node *find_named(const oms_avro_schema *s, const char *fullname)
{
    for (size_t i = 0; i < s->nnamed; i++)
        if (strcmp(s->named[i]->fullname, fullname) == 0)
            return s->named[i];
    return NULL;
}

/* A reference to a type by name: a primitive, or a previously defined named
 * type. Unqualified names are looked up in the enclosing namespace first,
 * then in the null namespace (as the Java implementation does). */
static av_node *resolve_ref(ps_ctx *c, const char *name, const char *ns)
{
    int pk = prim_kind(name);
    if (pk >= 0)
        return new_node(c, (av_kind)pk);
    av_node *n = NULL;
    if (!strchr(name, '.') && ns && *ns) {
        size_t a = strlen(ns), b = strlen(name);
        char stackbuf[256];
        char *full = a + b + 2 <= sizeof stackbuf ? stackbuf : malloc(a + b + 2);
        if (!full) {
            ps_oom(c);
            return NULL;
        }
        memcpy(full, ns, a);
        full[a] = '.';
        memcpy(full + a + 1, name, b + 1);
        n = find_named(c->s, full);
        if (full != stackbuf)
            free(full);
    }
    if (!n)
        n = find_named(c->s, name);
    if (!n) {
        if (!valid_dotted(name, false))
            ps_fail(c, "invalid type name '%.100s'", name);
        else
            ps_fail(c, "unknown type '%.100s'", name);
    }
    return n;
}

/* Reads name/namespace/aliases of a record, enum or fixed and registers
 * the node under its full name. *ns_out gets the namespace nested
 * definitions inherit (the namespace part of the full name). */
static bool define_named(ps_ctx *c, av_node *n, json_t *obj, const char *ns, const char **ns_out)
{
    const char *what = av_kind_name(n->kind);
    json_t *jn = json_object_get(obj, "name");
    if (!jn) {
        ps_fail(c, "%s without a \"name\"", what);
        return false;
    }
    if (!is_cstr(jn)) {
        ps_fail(c, "%s \"name\" must be a string, got %s", what, av_json_type_name(jn));
        return false;
    }
    const char *name = json_string_value(jn);
    char *full;
    if (strchr(name, '.')) {
        /* a dotted name is already a full name; "namespace" is ignored */
        if (!valid_dotted(name, false)) {
            ps_fail(c, "invalid %s name '%.100s'", what, name);
            return false;
        }
        full = arena_strdup(c->s, name);
    } else {
        if (!valid_name(name)) {
            ps_fail(c, "invalid %s name '%.100s'", what, name);
            return false;
        }
        json_t *jns = json_object_get(obj, "namespace");
        if (jns && !json_is_null(jns)) {
            if (!is_cstr(jns) || !valid_dotted(json_string_value(jns), true)) {
                ps_fail(c, "invalid namespace for %s '%.100s'", what, name);
                return false;
            }
            ns = json_string_value(jns);
        }
        full = arena_join(c->s, ns, name);
    }
    if (!full) {
        ps_oom(c);
        return false;
    }
    if (prim_kind(full) >= 0) {
        ps_fail(c, "'%s' is a primitive type and cannot be redefined", full);
        return false;
    }
    if (find_named(c->s, full)) {
        ps_fail(c, "redefinition of '%.200s'", full);
        return false;
    }
    n->fullname = full;
    n->name = base_name(full);
    const char *dot = strrchr(full, '.');
    const char *own_ns = dot ? arena_strndup(c->s, full, (size_t)(dot - full)) : "";
    if (!own_ns) {
        ps_oom(c);
        return false;
    }
    *ns_out = own_ns;

    json_t *ja = json_object_get(obj, "aliases");
    if (ja) {
        if (!json_is_array(ja)) {
            ps_fail(c, "%s '%s': \"aliases\" must be an array", what, full);
            return false;
        }
        size_t na = json_array_size(ja);
        n->aliases = arena_alloc(c->s, (na ? na : 1) * sizeof *n->aliases);
        if (!n->aliases) {
            ps_oom(c);
            return false;
        }
        for (size_t i = 0; i < na; i++) {
            json_t *a = json_array_get(ja, i);
            if (!is_cstr(a) || !valid_dotted(json_string_value(a), false)) {
                ps_fail(c, "%s '%s': invalid alias", what, full);
                return false;
            }
            const char *as = json_string_value(a);
            char *af = strchr(as, '.') ? arena_strdup(c->s, as) : arena_join(c->s, own_ns, as);
            if (!af) {
                ps_oom(c);
                return false;
            }
            n->aliases[n->naliases++] = af;
        }
    }
    n->named_idx = (int)c->s->nnamed;
    if (!push_node(&c->s->named, &c->s->nnamed, &c->s->cap_named, n)) {
        ps_oom(c);
        return false;
    }
    return true;
}

static av_node *parse_type(ps_ctx *c, json_t *j, const char *ns, int depth);

static av_node *parse_record(ps_ctx *c, json_t *obj, const char *ns, int depth)
{
    av_node *n = new_node(c, AV_RECORD);
    const char *own_ns;
    if (!n || !define_named(c, n, obj, ns, &own_ns))
        return NULL;
    const char *saved_record = c->cur_record, *saved_field = c->cur_field;
    c->cur_record = n->fullname;
    c->cur_field = NULL;
    json_t *jf = json_object_get(obj, "fields");
    if (!jf || !json_is_array(jf)) {
        ps_fail(c, "%s", jf ? "\"fields\" must be an array" : "record without \"fields\"");
        return NULL;
    }
    size_t nf = json_array_size(jf);
    n->fields = arena_alloc(c->s, (nf ? nf : 1) * sizeof *n->fields);
    if (!n->fields) {
        ps_oom(c);
        return NULL;
    }
    for (size_t i = 0; i < nf; i++) {
        json_t *f = json_array_get(jf, i);
        if (!json_is_object(f)) {
            ps_fail(c, "field #%zu must be an object, got %s", i, av_json_type_name(f));
            return NULL;
        }
        json_t *fname = json_object_get(f, "name");
        if (!fname || !is_cstr(fname)) {
            ps_fail(c, "field #%zu has no \"name\" string", i);
            return NULL;
        }
        const char *name = json_string_value(fname);
        if (!valid_name(name)) {
            ps_fail(c, "invalid field name '%.100s'", name);
            return NULL;
        }
        for (size_t k = 0; k < i; k++) {
            if (strcmp(n->fields[k].name, name) == 0) {
                ps_fail(c, "duplicate field '%s'", name);
                return NULL;
            }
        }
        av_field *fld = &n->fields[i];
        fld->owner = n;
        fld->name = arena_strdup(c->s, name);
        if (!fld->name) {
            ps_oom(c);
            return NULL;
        }
        c->cur_field = fld->name;
        json_t *ft = json_object_get(f, "type");
        if (!ft) {
            ps_fail(c, "field without \"type\"");
            return NULL;
        }
        fld->type = parse_type(c, ft, own_ns, depth + 1);
        if (!fld->type)
            return NULL;
        json_t *ord = json_object_get(f, "order");
        if (ord && !(json_is_string(ord) && (strcmp(json_string_value(ord), "ascending") == 0 ||
                                             strcmp(json_string_value(ord), "descending") == 0 ||
                                             strcmp(json_string_value(ord), "ignore") == 0))) {
            ps_fail(c, "\"order\" must be \"ascending\", \"descending\" or \"ignore\"");
            return NULL;
        }
        json_t *fa = json_object_get(f, "aliases");
        if (fa) {
            if (!json_is_array(fa)) {
                ps_fail(c, "\"aliases\" must be an array");
                return NULL;
            }
            size_t na = json_array_size(fa);
            fld->aliases = arena_alloc(c->s, (na ? na : 1) * sizeof *fld->aliases);
            if (!fld->aliases) {
                ps_oom(c);
                return NULL;
            }
            for (size_t k = 0; k < na; k++) {
                json_t *a = json_array_get(fa, k);
                if (!is_cstr(a) || !valid_name(json_string_value(a))) {
                    ps_fail(c, "invalid field alias");
                    return NULL;
                }
                if (!(fld->aliases[fld->naliases++] = arena_strdup(c->s, json_string_value(a)))) {
                    ps_oom(c);
                    return NULL;
                }
            }
        }
        fld->dflt_raw = json_object_get(f, "default");
        if (fld->dflt_raw) {
            av_field **nd = grow(c->dfields, c->ndfields, &c->cap_dfields, sizeof *nd);
            if (!nd) {
                ps_oom(c);
                return NULL;
            }
            c->dfields = nd;
            nd[c->ndfields++] = fld;
        }
        n->nfields++;
        c->cur_field = NULL;
    }
    c->cur_record = saved_record;
    c->cur_field = saved_field;
    return n;
}

static av_node *parse_enum(ps_ctx *c, json_t *obj, const char *ns)
{
    av_node *n = new_node(c, AV_ENUM);
    const char *own_ns;
    if (!n || !define_named(c, n, obj, ns, &own_ns))
        return NULL;
    json_t *js = json_object_get(obj, "symbols");
    if (!js || !json_is_array(js)) {
        ps_fail(c, "enum '%s': \"symbols\" must be an array", n->fullname);
        return NULL;
    }
    size_t ns_ = json_array_size(js);
    n->symbols = arena_alloc(c->s, (ns_ ? ns_ : 1) * sizeof *n->symbols);
    if (!n->symbols) {
        ps_oom(c);
        return NULL;
    }
    for (size_t i = 0; i < ns_; i++) {
        json_t *sym = json_array_get(js, i);
        if (!is_cstr(sym) || !valid_name(json_string_value(sym))) {
            bool str = json_is_string(sym);
            ps_fail(c, "enum '%s': invalid symbol #%zu%s%.100s%s", n->fullname, i, str ? " '" : "",
                    str ? json_string_value(sym) : "", str ? "'" : "");
            return NULL;
        }
        const char *sv = json_string_value(sym);
        for (size_t k = 0; k < i; k++) {
            if (strcmp(n->symbols[k], sv) == 0) {
                ps_fail(c, "enum '%s': duplicate symbol '%s'", n->fullname, sv);
                return NULL;
            }
        }
        if (!(n->symbols[i] = arena_strdup(c->s, sv))) {
            ps_oom(c);
            return NULL;
        }
        n->nsymbols++;
    }
    json_t *jd = json_object_get(obj, "default");
    if (jd) {
        if (is_cstr(jd))
            for (size_t i = 0; i < n->nsymbols; i++)
                if (strcmp(n->symbols[i], json_string_value(jd)) == 0)
                    n->enum_default = (long)i;
        if (n->enum_default < 0) {
            ps_fail(c, "enum '%s': default is not one of its symbols", n->fullname);
            return NULL;
        }
    }
    return n;
}

static av_node *parse_fixed(ps_ctx *c, json_t *obj, const char *ns)
{
    av_node *n = new_node(c, AV_FIXED);
    const char *own_ns;
    if (!n || !define_named(c, n, obj, ns, &own_ns))
        return NULL;
    json_t *sz = json_object_get(obj, "size");
    if (!sz || !json_is_integer(sz) || json_integer_value(sz) < 0 ||
        json_integer_value(sz) > INT32_MAX) {
        ps_fail(c, "fixed '%s': \"size\" must be a non-negative integer", n->fullname);
        return NULL;
    }
    n->size = (size_t)json_integer_value(sz);
    return n;
}

static av_node *parse_union(ps_ctx *c, json_t *arr, const char *ns, int depth)
{
    av_node *n = new_node(c, AV_UNION);
    if (!n)
        return NULL;
    size_t nb = json_array_size(arr);
    n->branches = arena_alloc(c->s, (nb ? nb : 1) * sizeof *n->branches);
    if (!n->branches) {
        ps_oom(c);
        return NULL;
    }
    for (size_t i = 0; i < nb; i++) {
        av_node *b = parse_type(c, json_array_get(arr, i), ns, depth + 1);
        if (!b)
            return NULL;
        if (b->kind == AV_UNION) {
            ps_fail(c, "union branch #%zu is itself a union (nested unions are not allowed)", i);
            return NULL;
        }
        for (size_t k = 0; k < i; k++) {
            const av_node *o = n->branches[k];
            bool named = b->named_idx >= 0;
            if (o->kind == b->kind && (!named || strcmp(o->fullname, b->fullname) == 0)) {
                ps_fail(c, "union contains '%s' twice",
                        named ? b->fullname : av_kind_name(b->kind));
                return NULL;
            }
        }
        n->branches[n->nbranches++] = b;
    }
    return n;
}

static av_node *parse_type(ps_ctx *c, json_t *j, const char *ns, int depth)
{
    if (depth > AV_MAX_DEPTH) {
        ps_fail(c, "schema nested deeper than %d levels", AV_MAX_DEPTH);
        return NULL;
    }
    if (json_is_string(j)) {
        if (!is_cstr(j)) {
            ps_fail(c, "type name contains a NUL character");
            return NULL;
        }
        return resolve_ref(c, json_string_value(j), ns);
    }
    if (json_is_array(j))
        return parse_union(c, j, ns, depth);
    if (!json_is_object(j)) {
        ps_fail(c, "a schema must be a JSON string, object or array, not %s",
                av_json_type_name(j));
        return NULL;
    }
    json_t *jt = json_object_get(j, "type");
    if (!jt) {
        ps_fail(c, "schema object without \"type\"");
        return NULL;
    }
    if (!is_cstr(jt)) {
        ps_fail(c, "\"type\" must be a string, got %s", av_json_type_name(jt));
        return NULL;
    }
    const char *t = json_string_value(jt);
    av_node *n;
    int pk = prim_kind(t);
    if (pk >= 0) {
        n = new_node(c, (av_kind)pk);
    } else if (strcmp(t, "record") == 0 || strcmp(t, "error") == 0) {
        n = parse_record(c, j, ns, depth);
    } else if (strcmp(t, "enum") == 0) {
        n = parse_enum(c, j, ns);
    } else if (strcmp(t, "fixed") == 0) {
        n = parse_fixed(c, j, ns);
    } else if (strcmp(t, "array") == 0 || strcmp(t, "map") == 0) {
        bool arr = t[0] == 'a';
        const char *key = arr ? "items" : "values";
        json_t *ji = json_object_get(j, key);
        if (!ji) {
            ps_fail(c, "%s without \"%s\"", t, key);
            return NULL;
        }
        n = new_node(c, arr ? AV_ARRAY : AV_MAP);
        if (n && !(n->items = parse_type(c, ji, ns, depth + 1)))
            return NULL;
    } else {
        /* {"type": "some.Named"}: a reference written as an object */
        return resolve_ref(c, t, ns);
    }
    if (!n)
        return NULL;
    json_t *lt = json_object_get(j, "logicalType");
    if (is_cstr(lt) && !(n->logical = arena_strdup(c->s, json_string_value(lt)))) {
        ps_oom(c);
        return NULL;
    }
    return n;
}

/* ---- defaults ------------------------------------------------------------------- */

/* Converts a field's "default" (Avro JSON encoding: union defaults belong to
 * the first branch, bytes are code points U+0000..U+00FF) into the codec's
 * JSON shape, which is what the decoder returns for a missing writer field.
 * NULL with a message in why when the default does not match the type. */
static json_t *default_value(const av_node *n, json_t *d, int depth, char *why, size_t whylen)
{
    if (depth > AV_MAX_DEPTH) {
        snprintf(why, whylen, "nested deeper than %d levels", AV_MAX_DEPTH);
        return NULL;
    }
    switch (n->kind) {
    case AV_NULL:
        if (json_is_null(d))
            return json_null();
        break;
    case AV_BOOLEAN:
        if (json_is_boolean(d))
            return json_boolean(json_is_true(d));
        break;
    case AV_INT:
        if (json_is_integer(d)) {
            json_int_t v = json_integer_value(d);
            if (v < INT32_MIN || v > INT32_MAX) {
                snprintf(why, whylen, "%lld out of range for int", (long long)v);
                return NULL;
            }
            return json_integer(v);
        }
        break;
    case AV_LONG:
        if (json_is_integer(d))
            return json_integer(json_integer_value(d));
        break;
    case AV_FLOAT:
    case AV_DOUBLE:
        if (json_is_number(d))
            return json_real(json_number_value(d));
        break;
    case AV_STRING:
        if (json_is_string(d))
            return json_stringn(json_string_value(d), json_string_length(d));
        break;
    case AV_BYTES:
    case AV_FIXED:
        if (json_is_string(d)) {
            const uint8_t *p = (const uint8_t *)json_string_value(d);
            size_t len = json_string_length(d), cps = 0;
            for (size_t i = 0; i < len; i++) {
                if (p[i] >= 0xC4) { /* UTF-8 lead byte of a code point above U+00FF */
                    snprintf(why, whylen, "bytes default has a code point above U+00FF");
                    return NULL;
                }
                if ((p[i] & 0xC0) != 0x80)
                    cps++;
            }
            if (n->kind == AV_FIXED && cps != n->size) {
                snprintf(why, whylen, "fixed '%s' default has %zu bytes, expected %zu",
                         n->fullname, cps, n->size);
                return NULL;
            }
            return json_stringn(json_string_value(d), len);
        }
        break;
    case AV_ENUM:
        if (is_cstr(d)) {
            for (size_t i = 0; i < n->nsymbols; i++)
                if (strcmp(n->symbols[i], json_string_value(d)) == 0)
                    return json_string(n->symbols[i]);
            snprintf(why, whylen, "'%.100s' is not a symbol of enum '%s'", json_string_value(d),
                     n->fullname);
            return NULL;
        }
        break;
    case AV_ARRAY:
        if (json_is_array(d)) {
            json_t *out = json_array();
            for (size_t i = 0; out && i < json_array_size(d); i++) {
                json_t *v = default_value(n->items, json_array_get(d, i), depth + 1, why, whylen);
                if (!v || json_array_append_new(out, v)) {
                    json_decref(out);
                    return NULL;
                }
            }
            return out;
        }
        break;
    case AV_MAP:
        if (json_is_object(d)) {
            json_t *out = json_object();
            const char *k;
            size_t klen;
            json_t *dv;
            json_object_keylen_foreach(d, k, klen, dv)
            {
                json_t *v = default_value(n->items, dv, depth + 1, why, whylen);
                if (!v || !out || json_object_setn_new_nocheck(out, k, klen, v)) {
                    json_decref(out);
                    return NULL;
                }
            }
            return out;
        }
        break;
    case AV_RECORD:
        if (json_is_object(d)) {
            json_t *out = json_object();
            for (size_t i = 0; out && i < n->nfields; i++) {
                const av_field *f = &n->fields[i];
                json_t *fv = json_object_get(d, f->name);
                json_t *v = NULL;
                if (fv)
                    v = default_value(f->type, fv, depth + 1, why, whylen);
                else if (f->dflt)
                    v = json_deep_copy(f->dflt);
                else if (f->dflt_raw)
                    v = default_value(f->type, f->dflt_raw, depth + 1, why, whylen);
                else
                    snprintf(why, whylen, "record default lacks field '%s'", f->name);
                if (!v || json_object_set_new_nocheck(out, f->name, v)) {
                    json_decref(out);
                    return NULL;
                }
            }
            return out;
        }
        break;
    case AV_UNION: {
        if (n->nbranches == 0) {
            snprintf(why, whylen, "an empty union has no default");
            return NULL;
        }
        json_t *v = default_value(n->branches[0], d, depth + 1, why, whylen);
        if (!v && why[0]) {
            size_t used = strlen(why);
            snprintf(why + used, whylen - used, " (a union's default must match its first branch)");
        }
        return v;
    }
    }
    snprintf(why, whylen, "expected %s, got %s", av_kind_name(n->kind), av_json_type_name(d));
    return NULL;
}

/* ---- canonical form -------------------------------------------------------------- */

typedef struct {
    char *buf;
    size_t len, cap;
    bool oom;
} sbuf;

static void sb_putn(sbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 256;
        while (nc < b->len + n + 1)
            nc *= 2;
        char *p = realloc(b->buf, nc);
        if (!p) {
            b->oom = true;
            return;
        }
        b->buf = p;
        b->cap = nc;
    }
    memcpy(b->buf + b->len, s, n);
    b->len += n;
    b->buf[b->len] = '\0';
}

static void sb_puts(sbuf *b, const char *s)
{
    sb_putn(b, s, strlen(s));
}

/* Names, symbols and field names are restricted to [A-Za-z0-9_.], so they
 * never need JSON escaping (the spec's [STRINGS] rule is moot). */
static void sb_quoted(sbuf *b, const char *s)
{
    sb_putn(b, "\"", 1);
    sb_puts(b, s);
    sb_putn(b, "\"", 1);
}

/* Parsing Canonical Form: [PRIMITIVES] bare names, [FULLNAMES], [STRIP] all
 * but name/type/fields/symbols/items/values/size, [ORDER] in that order,
 * [INTEGERS] plain decimal, [WHITESPACE] none. A named type is written in
 * full at its first occurrence and by full name afterwards. */
static void canon(sbuf *b, const av_node *n, bool *emitted)
{
    char num[32];
    switch (n->kind) {
    case AV_NULL:
    case AV_BOOLEAN:
    case AV_INT:
    case AV_LONG:
    case AV_FLOAT:
    case AV_DOUBLE:
    case AV_BYTES:
    case AV_STRING:
        sb_quoted(b, av_kind_name(n->kind));
        return;
    case AV_RECORD:
    case AV_ENUM:
    case AV_FIXED:
        if (emitted[n->named_idx]) {
            sb_quoted(b, n->fullname);
            return;
        }
        emitted[n->named_idx] = true;
        sb_puts(b, "{\"name\":");
        sb_quoted(b, n->fullname);
        sb_puts(b, ",\"type\":");
        sb_quoted(b, av_kind_name(n->kind));
        if (n->kind == AV_RECORD) {
            sb_puts(b, ",\"fields\":[");
            for (size_t i = 0; i < n->nfields; i++) {
                sb_puts(b, i ? ",{\"name\":" : "{\"name\":");
                sb_quoted(b, n->fields[i].name);
                sb_puts(b, ",\"type\":");
                canon(b, n->fields[i].type, emitted);
                sb_puts(b, "}");
            }
            sb_puts(b, "]}");
        } else if (n->kind == AV_ENUM) {
            sb_puts(b, ",\"symbols\":[");
            for (size_t i = 0; i < n->nsymbols; i++) {
                if (i)
                    sb_puts(b, ",");
                sb_quoted(b, n->symbols[i]);
            }
            sb_puts(b, "]}");
        } else {
            snprintf(num, sizeof num, ",\"size\":%zu}", n->size);
            sb_puts(b, num);
        }
        return;
    case AV_ARRAY:
        sb_puts(b, "{\"type\":\"array\",\"items\":");
        canon(b, n->items, emitted);
        sb_puts(b, "}");
        return;
    case AV_MAP:
        sb_puts(b, "{\"type\":\"map\",\"values\":");
        canon(b, n->items, emitted);
        sb_puts(b, "}");
        return;
    case AV_UNION:
        sb_puts(b, "[");
        for (size_t i = 0; i < n->nbranches; i++) {
            if (i)
                sb_puts(b, ",");
            canon(b, n->branches[i], emitted);
        }
        sb_puts(b, "]");
        return;
    }
}

/* Lower bound of the encoded size; cycles count as 0 (still a lower bound). */
static size_t compute_min_size(av_node *n)
{
    if (n->min_state == 2)
        return n->min_size;
    if (n->min_state == 1)
        return 0;
    n->min_state = 1;
    size_t m = 0;
    switch (n->kind) {
    case AV_NULL: m = 0; break;
    case AV_FLOAT: m = 4; break;
    case AV_DOUBLE: m = 8; break;
    case AV_FIXED: m = n->size; break;
    case AV_RECORD:
        for (size_t i = 0; i < n->nfields; i++) {
            size_t f = compute_min_size(n->fields[i].type);
            m = m + f < m ? SIZE_MAX : m + f;
        }
        break;
    case AV_ARRAY:
    case AV_MAP:
        compute_min_size(n->items);
        m = 1;
        break;
    case AV_UNION:
        for (size_t i = 0; i < n->nbranches; i++)
            compute_min_size(n->branches[i]);
        m = 1;
        break;
    default: m = 1; break; /* boolean, int, long, bytes, string, enum */
    }
    n->min_size = m;
    n->min_state = 2;
    return m;
}

/* ---- public API ------------------------------------------------------------------ */

void oms_avro_schema_free(oms_avro_schema *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->nnodes; i++) {
        av_node *n = s->nodes[i];
        if (n->kind == AV_RECORD)
            for (size_t k = 0; k < n->nfields; k++)
                json_decref(n->fields[k].dflt);
    }
    av_arena_block *b = s->arena;
    while (b) {
        av_arena_block *next = b->next;
        free(b);
        b = next;
    }
    free(s->nodes);
    free(s->named);
    free(s->text);
    free(s->canonical);
    free(s);
}

oms_avro_schema *oms_avro_schema_parse(const char *json_text, char *errbuf, size_t errlen)
{
    if (errbuf && errlen)
        errbuf[0] = '\0';
    if (!json_text) {
        oms_errf(errbuf, errlen, "schema text is NULL");
        return NULL;
    }
    json_error_t jerr;
    /* JSON_ALLOW_NUL: a bytes default may legitimately be "\u0000" */
    json_t *doc =
        json_loads(json_text, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    if (!doc) {
        oms_errf(errbuf, errlen, "invalid JSON at line %d column %d: %s", jerr.line, jerr.column,
                 jerr.text);
        return NULL;
    }
    oms_avro_schema *s = calloc(1, sizeof *s);
    ps_ctx c = {.s = s, .errbuf = errbuf, .errlen = errlen};
    if (!s || !(s->text = strdup(json_text))) {
        oms_errf(errbuf, errlen, "out of memory");
        goto fail;
    }
    s->root = parse_type(&c, doc, "", 0);
    if (!s->root)
        goto fail;

    /* Defaults are checked last: a default may need a record whose fields
     * were still being parsed when the default was read. */
    for (size_t i = 0; i < c.ndfields; i++) {
        av_field *f = c.dfields[i];
        char why[256] = "";
        f->dflt = default_value(f->type, f->dflt_raw, 0, why, sizeof why);
        if (!f->dflt) {
            oms_errf(errbuf, errlen, "record '%s' field '%s': invalid default: %s",
                     f->owner->fullname, f->name, why[0] ? why : "out of memory");
            goto fail;
        }
    }
    for (size_t i = 0; i < s->nnodes; i++) {
        av_node *n = s->nodes[i];
        if (n->kind == AV_RECORD)
            for (size_t k = 0; k < n->nfields; k++)
                n->fields[k].dflt_raw = NULL; /* borrowed from doc, about to go */
        compute_min_size(n);
    }

    bool *emitted = calloc(s->nnamed ? s->nnamed : 1, sizeof *emitted);
    sbuf b = {0};
    if (emitted)
        canon(&b, s->root, emitted);
    free(emitted);
    if (!emitted || b.oom || !b.buf) {
        free(b.buf);
        oms_errf(errbuf, errlen, "out of memory");
        goto fail;
    }
    s->canonical = b.buf;
    s->fingerprint = oms_avro_crc64(b.buf, b.len);
    s->name = s->root->named_idx >= 0 ? s->root->fullname : av_kind_name(s->root->kind);
    free(c.dfields);
    json_decref(doc);
    return s;

fail:
    free(c.dfields);
    json_decref(doc);
    oms_avro_schema_free(s);
    if (errbuf && errlen && !errbuf[0])
        oms_errf(errbuf, errlen, "invalid schema");
    return NULL;
}

const char *oms_avro_schema_canonical(const oms_avro_schema *s)
{
    return s->canonical;
}

uint64_t oms_avro_schema_fingerprint(const oms_avro_schema *s)
{
    return s->fingerprint;
}

const char *oms_avro_schema_name(const oms_avro_schema *s)
{
    return s->name;
}

const char *oms_avro_schema_text(const oms_avro_schema *s)
{
    return s->text;
}
