/* embedded.h — schemas compiled into the programs (build/gen/schemas_embed.c,
 * generated from the schemas/ .avsc files by scripts/embed-schemas.sh). */
#ifndef OMS_AVRO_EMBEDDED_H
#define OMS_AVRO_EMBEDDED_H

typedef struct oms_embedded_schema {
    const char *file; /* e.g. "order_created.v1.avsc" */
    const char *text; /* the schema JSON, NUL-terminated */
} oms_embedded_schema;

/* Terminated by an entry whose file is NULL. */
extern const oms_embedded_schema oms_embedded_schemas[];

#endif
