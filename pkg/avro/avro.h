/* avro.h — Avro schemas, Parsing Canonical Form, CRC-64-AVRO fingerprints,
 * single-object encoding and a resolving datum codec to and from jansson.
 *
 * avro-c has no canonical form, no fingerprints, no single-object framing and
 * no schema defaults in resolution (see notes/deps-probe.md), so this module
 * implements the Avro 1.11 specification for those parts itself. It is pure:
 * no I/O except oms_avro_store_load_dir(), no globals. */
#ifndef OMS_AVRO_H
#define OMS_AVRO_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "common/oms.h"

typedef struct oms_avro_schema oms_avro_schema;
typedef struct oms_avro_store oms_avro_store;

#define OMS_AVRO_SOE_MAGIC0 0xC3
#define OMS_AVRO_SOE_MAGIC1 0x01
#define OMS_AVRO_SOE_HEADER_LEN 10 /* C3 01 + 8-byte LE fingerprint */

/* ---- schemas ------------------------------------------------------------ */

/* Parse a schema from its JSON text. Returns NULL and fills errbuf on error
 * (invalid JSON, unknown type name, bad default, duplicate name...).
 * The original text is kept so defaults and logical types survive. */
oms_avro_schema *oms_avro_schema_parse(const char *json_text, char *errbuf, size_t errlen);

void oms_avro_schema_free(oms_avro_schema *s);

/* The schema's Parsing Canonical Form (Avro spec), owned by the schema. */
const char *oms_avro_schema_canonical(const oms_avro_schema *s);

/* CRC-64-AVRO (Rabin) fingerprint of the canonical form. */
uint64_t oms_avro_schema_fingerprint(const oms_avro_schema *s);

/* Full name of a named top-level schema ("oms.events.OrderCreated"), or the
 * primitive/complex type name ("int", "array", "union"). Owned by the schema. */
const char *oms_avro_schema_name(const oms_avro_schema *s);

/* The original JSON text the schema was parsed from. */
const char *oms_avro_schema_text(const oms_avro_schema *s);

/* CRC-64-AVRO of arbitrary bytes (the spec's table-driven algorithm,
 * EMPTY = 0xc15d213aa4d7a795). */
uint64_t oms_avro_crc64(const void *data, size_t len);

/* ---- single-object encoding ----------------------------------------------- */

/* Write C3 01 and the little-endian fingerprint into out[10]. */
void oms_avro_soe_header(uint64_t fingerprint, uint8_t out[OMS_AVRO_SOE_HEADER_LEN]);

/* Check the marker and read the fingerprint. On success *body points just
 * past the header. Returns 0, OMS_ETRUNC (shorter than 10 bytes) or
 * OMS_EMAGIC (marker is not C3 01). */
int oms_avro_soe_parse(const uint8_t *buf, size_t len, uint64_t *fingerprint, const uint8_t **body,
                       size_t *body_len);

/* ---- datum codec (binary <-> jansson) --------------------------------------- */

/* JSON mapping used by the codec (both ways):
 *   null/boolean/int/long/float/double/string -> the JSON scalar
 *   bytes/fixed -> string, each byte as one code point U+0000..U+00FF (Avro JSON)
 *   enum -> its symbol string; array -> array; map -> object; record -> object
 *   union -> the branch's value unwrapped (null for "null"); on encode the first
 *            branch that accepts the JSON value is chosen.
 * Logical types are carried as their underlying type (timestamp-millis: long). */

/* Encode value with schema into out (capacity cap); *written gets the byte
 * count. Returns 0, OMS_EINVAL (value does not match schema; errbuf names the
 * field path, e.g. "items[2].quantity: expected int") or OMS_ERANGE (cap too
 * small; call again with a bigger buffer). */
int oms_avro_encode_json(const oms_avro_schema *schema, const json_t *value, uint8_t *out,
                         size_t cap, size_t *written, char *errbuf, size_t errlen);

/* Decode body (plain binary, no SOE header) written with `writer`, resolved
 * against `reader` (may be the same pointer, or NULL for "same as writer"),
 * into a new jansson value in the reader's shape: writer fields missing from
 * the reader are skipped, reader fields missing from the writer get their
 * default (an error if they have none), promotions int->long->float->double,
 * string<->bytes, unions on either side, enum symbols by name.
 * The whole body must be consumed. Returns 0 and *out (caller json_decref's),
 * or OMS_ETRUNC / OMS_EINVAL (corrupt data: negative length, bad union
 * index, invalid UTF-8...) / OMS_ESCHEMA (schemas cannot be resolved) with
 * errbuf saying why; *out is NULL then. Never reads past body_len. */
int oms_avro_decode_json(const oms_avro_schema *writer, const oms_avro_schema *reader,
                         const uint8_t *body, size_t body_len, json_t **out, char *errbuf,
                         size_t errlen);

/* Check that data written with `writer` can be read with `reader` without
 * data (Avro resolution rules, defaults included). 0 or OMS_ESCHEMA + errbuf. */
int oms_avro_check_compatible(const oms_avro_schema *writer, const oms_avro_schema *reader,
                              char *errbuf, size_t errlen);

/* ---- schema store ------------------------------------------------------------ */

/* A set of schemas keyed by fingerprint. For each named top-level schema the
 * store also knows the latest version, used as the reader schema: the one
 * added last with that full name (load order: file names sorted, so
 * "x.v1.avsc" < "x.v2.avsc"; callers add versions oldest first). */
oms_avro_store *oms_avro_store_new(void);
void oms_avro_store_free(oms_avro_store *st);

/* Parse and add a schema. Adding the same canonical form twice is a no-op
 * returning 0. origin (a file name, may be NULL) is used in messages.
 * Returns 0, or OMS_ESCHEMA with errbuf. */
int oms_avro_store_add(oms_avro_store *st, const char *json_text, const char *origin,
                       char *errbuf, size_t errlen);

/* Add every "*.avsc" file of dir in sorted order. Returns the number of
 * schemas added (>= 0) or a negative code with errbuf naming the file. */
int oms_avro_store_load_dir(oms_avro_store *st, const char *dir, char *errbuf, size_t errlen);

/* Add the schemas compiled into the program (avro/embedded.h). */
int oms_avro_store_load_embedded(oms_avro_store *st, char *errbuf, size_t errlen);

/* Look up by fingerprint; NULL when unknown. Borrowed pointer. */
const oms_avro_schema *oms_avro_store_get(const oms_avro_store *st, uint64_t fingerprint);

/* The latest schema with this full name; NULL when unknown. Borrowed. */
const oms_avro_schema *oms_avro_store_latest(const oms_avro_store *st, const char *full_name);

/* Iterate: returns the i-th schema in insertion order, NULL past the end. */
const oms_avro_schema *oms_avro_store_at(const oms_avro_store *st, size_t i);
size_t oms_avro_store_count(const oms_avro_store *st);

/* Decode a single-object-encoded record: find the writer schema by
 * fingerprint, resolve against the latest schema of the same name, decode.
 * Returns 0 with *out and (optionally) *writer_out, or OMS_ETRUNC /
 * OMS_EMAGIC / OMS_ENOTFOUND (unknown fingerprint; errbuf shows it in hex) /
 * OMS_EINVAL / OMS_ESCHEMA with errbuf. */
int oms_avro_store_decode(const oms_avro_store *st, const uint8_t *buf, size_t len, json_t **out,
                          const oms_avro_schema **writer_out, char *errbuf, size_t errlen);

#endif
