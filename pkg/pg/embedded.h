/* embedded.h — the SQL migrations compiled into the programs
 * (build/gen/migrations_embed.c, generated from migrations/NNNN_name.sql by
 * scripts/embed-migrations.sh). Private to pkg/pg. */
#ifndef OMS_PG_EMBEDDED_H
#define OMS_PG_EMBEDDED_H

typedef struct oms_pg_migration {
    int version;      /* NNNN of the file name, strictly increasing */
    const char *file; /* e.g. "0001_projections.sql" */
    const char *sql;  /* the file's text, NUL-terminated */
} oms_pg_migration;

/* In version order, terminated by an entry whose file is NULL. */
extern const oms_pg_migration oms_pg_migrations[];

#endif
