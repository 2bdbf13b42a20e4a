/* avro_internal.h — the parsed schema graph shared by schema.c (parser,
 * canonical form), codec.c (binary <-> jansson, resolution) and store.c.
 * Private to pkg/avro. */
#ifndef OMS_AVRO_INTERNAL_H
#define OMS_AVRO_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "avro/avro.h"

/* Deepest nesting accepted, both for schema JSON (one level per type
 * definition) and for data (one level per record, array or map). The same
 * number for both so that every non-recursive schema the parser accepts can
 * be decoded; recursive schemas are bounded by the data limit. It keeps
 * hostile input from exhausting the stack. */
#define AV_MAX_DEPTH 64

/* An array or map whose items encode to zero bytes (null, empty record...)
 * costs nothing per item on the wire, so a 10-byte message could claim 2^62
 * of them. Cap the item count of such containers. */
#define AV_MAX_EMPTY_ITEMS 65536

typedef enum {
    AV_NULL,
    AV_BOOLEAN,
    AV_INT,
    AV_LONG,
    AV_FLOAT,
    AV_DOUBLE,
    AV_BYTES,
    AV_STRING,
    AV_RECORD,
    AV_ENUM,
    AV_ARRAY,
    AV_MAP,
    AV_UNION,
    AV_FIXED,
} av_kind;

typedef struct av_node av_node;

typedef struct av_field {
    const char *name;
    const av_node *owner; /* the record */
    av_node *type;
    json_t *dflt_raw;  /* the "default" as written; borrowed, valid during parsing only */
    json_t *dflt;      /* the default in codec JSON shape (owned), NULL when none */
    const char **aliases;
    size_t naliases;
} av_field;

struct av_node {
    av_kind kind;
    const char *fullname; /* record/enum/fixed: "a.b.Name" */
    const char *name;     /* unqualified: points into fullname */
    const char *logical;  /* logicalType, informational only; NULL when none */
    const char **aliases; /* full names */
    size_t naliases;
    av_field *fields; /* record */
    size_t nfields;
    const char **symbols; /* enum */
    size_t nsymbols;
    long enum_default; /* index into symbols, -1 when none */
    av_node *items;    /* array items, map values */
    av_node **branches; /* union */
    size_t nbranches;
    size_t size;     /* fixed */
    size_t min_size; /* lower bound of the encoded size in bytes */
    int named_idx;   /* index in schema->named, -1 for unnamed types */
    int min_state;   /* min_size computation: 0 todo, 1 in progress, 2 done */
};

/* Arena: nodes, field arrays and strings of one schema live in a few big
 * blocks freed together, so the graph (which may be cyclic) needs no
 * ownership rules. */
typedef struct av_arena_block av_arena_block;

struct oms_avro_schema {
    char *text;
    char *canonical;
    uint64_t fingerprint;
    const char *name;
    av_node *root;
    av_arena_block *arena;
    av_node **nodes; /* every node (to free field defaults) */
    size_t nnodes, cap_nodes;
    av_node **named; /* named types in definition order */
    size_t nnamed, cap_named;
};

const char *av_kind_name(av_kind k);

/* "object", "integer", "real", "boolean"... for messages. */
const char *av_json_type_name(const json_t *j);

/* Check that s[0..n) is valid UTF-8 (RFC 3629: no overlongs, surrogates or
 * code points above U+10FFFF). Returns n when valid, else the offset of the
 * first bad byte. */
size_t av_utf8_check(const uint8_t *s, size_t n);

/* The unqualified name of a named node. */
bool av_names_match(const av_node *writer, const av_node *reader);

#endif
