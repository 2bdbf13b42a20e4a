/* pg_internal.h — private parts of pkg/pg shared by its files and its unit
 * test: the connection struct, statement helpers, Postgres array literals,
 * and the pure fold of a batch into multi-row statements. */
#ifndef OMS_PG_INTERNAL_H
#define OMS_PG_INTERNAL_H

#include "pg/pg.h"

/* ---- connection and statements --------------------------------------------------- */

/* Prepared statements, created on a connection when first used. */
typedef enum {
    PG_Q_ORDERS_PRE,   /* status changes of orders created before the batch */
    PG_Q_HISTORY_PRE,  /* their history rows (the foreign key checks the order exists) */
    PG_Q_ORDERS,       /* orders created in the batch, folded with their later changes */
    PG_Q_HISTORY,      /* history rows of those */
    PG_Q_INVENTORY,    /* last event per product */
    PG_Q_NOTIFICATIONS,/* last event per notification id */
    PG_Q_OFFSETS_ADVANCE, /* check and store a batch's offsets (oms_offsets_advance) */
    PG_Q_OFFSETS_READ,
    PG_Q__COUNT
} pg_query;

/* The statements that carry a batch's effects, in the order they run. */
#define PG_FOLD_FIRST PG_Q_ORDERS_PRE
#define PG_FOLD_COUNT (PG_Q_NOTIFICATIONS + 1)
#define PG_MAX_COLS 12

extern const char *const pg_query_sql[PG_Q__COUNT];
extern const int pg_query_nparams[PG_Q__COUNT];

struct oms_pg {
    PGconn *conn;
    bool broken; /* the pipeline could not be sent whole: unusable */
    bool prepared[PG_Q__COUNT];
    char where[300]; /* "host:port database 'name'" for messages */
    /* the apply in flight (pipeline mode), see oms_pg_apply_send */
    bool inflight;
    int outcome; /* first failure among its results, PG_OK when none */
    char error[512];
    oms_pg_apply_stats st;
};

/* Outcome classes of a statement. */
enum { PG_OK = 0, PG_DATA = 1, PG_FAIL = 2, PG_MOVED = 3 };

/* Classify a result: PG_OK, PG_DATA (SQLSTATE class 22 or 23: the data broke
 * a rule), PG_MOVED (SQLSTATE OMS01 from oms_offsets_advance: the stored
 * offsets moved) or PG_FAIL (anything else: connection, timeout, ...). Fills
 * errbuf with "SQLSTATE message (detail)" unless PG_OK. Does not clear res. */
int pg_classify(oms_pg *pg, const PGresult *res, int ok_status, char *errbuf, size_t errlen);

/* Run a parameterless command; PG_OK/PG_DATA/PG_FAIL. */
int pg_command(oms_pg *pg, const char *sql, char *errbuf, size_t errlen);

struct pg_params;
/* Run prepared statement q with its parameters; *out (may be NULL) gets the
 * result on PG_OK (caller clears). PG_OK/PG_DATA/PG_FAIL/PG_MOVED. */
int pg_exec(oms_pg *pg, pg_query q, const struct pg_params *params, PGresult **out,
            char *errbuf, size_t errlen);

/* Prepare q on the connection unless done. PG_OK or PG_FAIL. */
int pg_prepare(oms_pg *pg, pg_query q, char *errbuf, size_t errlen);
/* The name of q's prepared statement ("oms_qN") into buf[16]. */
void pg_query_name(pg_query q, char buf[16]);


/* ---- text buffers and array literals ------------------------------------------------ */

typedef struct pg_sb {
    char *s;
    size_t len, cap;
    bool oom;
} pg_sb;

void pg_sb_add(pg_sb *b, const char *s, size_t len);
void pg_sb_free(pg_sb *b);

/* The element types the statements take. */
typedef enum { PG_T_TEXT, PG_T_INT8, PG_T_INT4, PG_T_FLOAT8, PG_T_UUID, PG_T_JSONB } pg_type;

/* A one-dimensional Postgres array in the binary format of array_send /
 * array_recv, sent as a binary parameter: the server takes the elements as
 * they are instead of parsing a text literal ({"a","b"}), which costs it
 * a sixth of its time on a batch otherwise. */
typedef struct pg_array {
    pg_sb sb; /* a 20-byte header (filled by pg_array_bytes), then the elements */
    size_t n;
    pg_type type;
    bool has_null;
    bool bad; /* an element could not be encoded (a malformed UUID) */
} pg_array;

/* Start (or restart) an array of the given element type. */
void pg_array_reset(pg_array *a, pg_type type);
/* A text, UUID (in its 36-character form) or JSON (text) element; NULL
 * gives SQL NULL (any type). */
void pg_array_str(pg_array *a, const char *s);
/* An int8 or int4 element. */
void pg_array_i64(pg_array *a, int64_t v);
/* A float8 element. */
void pg_array_dbl(pg_array *a, double v);
/* The array's bytes (owned by a, valid until the next change) and their
 * count, or NULL when out of memory or an element was bad. May be called
 * again after more elements. */
const char *pg_array_bytes(pg_array *a, int *len);
void pg_array_free(pg_array *a);

/* The parameters of one statement. */
#define PG_MAX_PARAMS 12
typedef struct pg_params {
    int n;
    const char *values[PG_MAX_PARAMS];
    int lengths[PG_MAX_PARAMS];
    int formats[PG_MAX_PARAMS];
} pg_params;

/* Append a text parameter (may be NULL). */
void pg_params_text(pg_params *p, const char *s);
/* Append an array parameter (binary). false when the array failed. */
bool pg_params_array(pg_params *p, pg_array *a);

/* The array parameters of PG_Q_OFFSETS_ADVANCE for the cursors (reset
 * first): topics, partitions, expected and next offsets. Returns 0 or
 * OMS_ENOMEM. */
int pg_cursor_arrays(const oms_pg_cursor *cur, size_t n, pg_array out[4]);

/* ---- the fold ------------------------------------------------------------------------ */

/* The element type of each column of the effect statements. */
extern const pg_type pg_fold_types[PG_FOLD_COUNT][PG_MAX_COLS];

/* The column arrays of the effect statements for one set of records. */
typedef struct pg_fold {
    size_t rows[PG_FOLD_COUNT];
    pg_array cols[PG_FOLD_COUNT][PG_MAX_COLS];
} pg_fold;

/* Fold recs[idx[0]], ..., recs[idx[n-1]] (stream order; every ev non-NULL)
 * into f (reset first):
 *   orders:    an OrderCreated starts the row; later status changes in the
 *              set only move status, updated_at and the position. Status
 *              changes before any OrderCreated of the same order in the set
 *              apply to the stored row (PG_Q_ORDERS_PRE, last one wins) and
 *              their history rows go first (PG_Q_HISTORY_PRE), so an order
 *              created later in the set does not make them valid.
 *   history:   one row per OrderCreated/OrderStatusChanged.
 *   inventory: the last InventoryChanged per product.
 *   notifications: the last event per eventId.
 * One row per key per statement ("cannot affect row a second time").
 * Returns 0 or OMS_ENOMEM. */
int pg_fold_build(pg_fold *f, const oms_pg_record *recs, const size_t *idx, size_t n);
void pg_fold_free(pg_fold *f);

/* "TOPIC:PARTITION:OFFSET" into buf. */
void pg_position(const oms_pg_record *r, char *buf, size_t len);

#endif
