/* yaml_tree.h — private to pkg/config: a small YAML document tree built
 * from libyaml's event parser, plus scalar conversions shared by the
 * omsd.yaml and topics.yaml loaders.
 *
 * The tree keeps what error messages need (1-based line and column, and
 * whether a scalar was quoted) and refuses what a config file never needs
 * and would only make it ambiguous: anchors, aliases, tags, complex keys,
 * duplicate keys, several documents. */
#ifndef OMS_CONFIG_YAML_TREE_H
#define OMS_CONFIG_YAML_TREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    YT_SCALAR,
    YT_MAP,
    YT_SEQ,
} yt_kind;

typedef struct yt_node {
    yt_kind kind;
    int line; /* 1-based */
    int col;  /* 1-based */
    /* scalar */
    char *value; /* NUL-terminated; may hold NULs itself, see len */
    size_t len;
    bool plain; /* not quoted nor a block scalar: "4" is quoted, 4 is plain */
    /* map: children[2i] is a key (always a scalar), children[2i+1] its
     * value; seq: the items */
    struct yt_node **children;
    size_t n;
    size_t cap;
} yt_node;

/* Nesting deeper than this is refused (it would only be an attack). */
#define YT_MAX_DEPTH 32

/* Parse one YAML document. *out is NULL for an empty stream (empty file,
 * only comments) or a document that is only a null. Errors name
 * "name:line:col". Returns 0, OMS_ECONFIG or OMS_ENOMEM with errbuf. */
int yt_parse(const char *buf, size_t len, const char *name, yt_node **out, char *errbuf,
             size_t errlen);

void yt_free(yt_node *n);

/* Read a whole file (at most 4 MiB) into a NUL-terminated heap buffer.
 * Returns 0 or OMS_EIO / OMS_ENOMEM with errbuf ("cannot read 'path': ..."). */
int yt_read_file(const char *path, char **out, size_t *outlen, char *errbuf, size_t errlen);

/* A plain empty, "~" or "null" scalar: YAML's null (key with no value). */
bool yt_is_null(const yt_node *n);

/* What a node is, for "expected X, got Y" messages: "a mapping",
 * "a sequence", "nothing" (null) or the quoted, shortened scalar. */
const char *yt_describe(const yt_node *n, char *buf, size_t buflen);

/* s quoted and shortened for a message: 'abc', control bytes as \xNN. */
const char *yt_quote(const char *s, size_t len, char *buf, size_t buflen);

/* Strict base-10 integer: optional sign, digits only, no spaces, within
 * [min, max]. Returns 0, OMS_EINVAL (not an integer) or OMS_ERANGE. */
int yt_parse_int(const char *s, size_t len, int64_t min, int64_t max, int64_t *out);

/* true/false/yes/no/on/off, case-insensitive. Returns 0 or OMS_EINVAL. */
int yt_parse_bool(const char *s, size_t len, bool *out);

/* "expected an integer between 1 and 65535" (or "of at least 1" when max
 * is INT_MAX or more) into buf. */
const char *yt_int_expectation(int64_t min, int64_t max, char *buf, size_t buflen);

/* Kafka's rule for topic names: 1 to 249 characters of [a-zA-Z0-9._-],
 * not "." or "..". */
bool yt_valid_topic_name(const char *s, size_t n);

/* Optimal string alignment distance (Levenshtein plus transpositions), for
 * did-you-mean suggestions. Strings longer than 64 bytes
 * give SIZE_MAX. */
size_t yt_edit_distance(const char *a, const char *b);

#endif
