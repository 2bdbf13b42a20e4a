/* pg.h — the Postgres side of the projections (DESIGN §3.4): a libpq
 * connection built from the configuration, the versioned SQL migrations of
 * migrations/ (embedded in the programs), the consumer offsets stored next to
 * the read models, the exactly-once batch apply with its position guards,
 * and what `omsctl projections` asks.
 *
 * One oms_pg is one connection: use it from one thread at a time.
 *
 * Exactly once: oms_pg_apply() writes a batch's effects and the next
 * offsets of the partitions it covers in one transaction, after checking
 * (under a row lock) that the stored offsets are still the ones the caller
 * started from. A crash, a lost connection, a second instance or a rebuild
 * between two batches can therefore neither lose nor repeat an effect. */
#ifndef OMS_PG_H
#define OMS_PG_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/oms.h"
#include "config/config.h"
#include "events/events.h"

typedef struct oms_pg oms_pg;

/* Connect with cfg->database (host, port, user, password, name; or url,
 * which takes precedence; then sslmode, sslrootcert and params), passed to
 * PQconnectdbParams as keywords. app is the application_name the server
 * shows (pg_stat_activity); connect_timeout_s bounds the attempt (libpq
 * rounds values under 2 up to 2). Statements time out after 60 s. The
 * session runs with synchronous_commit off: a COMMIT does not wait for its
 * WAL flush, so a Postgres crash may lose the last transactions — effects
 * and offsets together, which the consumers then read and apply again:
 * still exactly once, only later.
 * Returns NULL + errbuf ("cannot connect to postgres at 'HOST:PORT'
 * database 'NAME': reason"). */
oms_pg *oms_pg_connect(const oms_config *cfg, const char *app, int connect_timeout_s,
                       char *errbuf, size_t errlen);
void oms_pg_free(oms_pg *pg);

/* Check what libpq can check without connecting: database.url parses and
 * every database.params name is a libpq keyword. Returns 0 or OMS_ECONFIG
 * with errbuf ("database.params: 'sslmod' is not a libpq connection
 * parameter"); messages never hold the URL (it may carry a password). */
int oms_pg_check_config(const oms_config *cfg, char *errbuf, size_t errlen);

/* "'HOST:PORT' database 'NAME'" for messages, without any password. */
void oms_pg_describe(const oms_config *cfg, char *buf, size_t len);

/* True when the server accepts connections (PQping; no authentication). */
bool oms_pg_ping(const oms_config *cfg, int connect_timeout_s);

/* False once the connection is lost: free it and connect again. */
bool oms_pg_connected(const oms_pg *pg);

/* The libpq connection (borrowed), for tools and tests. */
PGconn *oms_pg_handle(oms_pg *pg);

/* ---- migrations ----------------------------------------------------------------- */

/* The highest version among the embedded migrations. */
int oms_pg_migrations_latest(void);

/* Apply the pending embedded migrations in version order, each in its own
 * transaction recorded in oms_schema_migrations (version, name, checksum),
 * under an advisory lock so that concurrent callers (two omsd starting at
 * once) wait for each other instead of racing. A migration already applied
 * whose text changed since is an error. *from and *to (may be NULL) get the
 * schema version before and after. A database newer than this program
 * (version above oms_pg_migrations_latest()) is left alone: *to is its
 * version. Returns 0, OMS_ESCHEMA (a migration failed or changed; errbuf
 * names the file) or OMS_EIO. */
int oms_pg_migrate(oms_pg *pg, int *from, int *to, char *errbuf, size_t errlen);

/* The applied schema version (0: none) into *version. Returns 0 or OMS_EIO. */
int oms_pg_schema_version(oms_pg *pg, int *version, char *errbuf, size_t errlen);

/* ---- offsets --------------------------------------------------------------------- */

/* A partition and its next offset (meaning depends on the call). */
typedef struct oms_pg_partition {
    const char *topic; /* borrowed */
    int32_t partition;
    int64_t next_offset;
} oms_pg_partition;

/* Make sure each of the n partitions has a row for group (next offset 0 when
 * new), then read the stored next offsets into parts[i].next_offset.
 * Returns 0 or OMS_EIO + errbuf. */
int oms_pg_offsets_claim(oms_pg *pg, const char *group, oms_pg_partition *parts, size_t n,
                         char *errbuf, size_t errlen);

/* Read the stored next offsets (0 for a partition without a row) into
 * parts[i].next_offset. Returns 0 or OMS_EIO + errbuf. */
int oms_pg_offsets_read(oms_pg *pg, const char *group, oms_pg_partition *parts, size_t n,
                        char *errbuf, size_t errlen);

/* A stored row of oms_offsets. */
typedef struct oms_pg_offset_row {
    char group[256];
    char topic[256];
    int32_t partition;
    int64_t next_offset;
    int64_t updated_ms; /* when it was last written, epoch ms */
} oms_pg_offset_row;

/* The rows of group (every group when NULL), sorted by group, topic and
 * partition, into *out (malloc'd, caller frees; NULL when none). Returns the
 * count, or OMS_EIO / OMS_ENOMEM + errbuf. */
int oms_pg_offsets_list(oms_pg *pg, const char *group, oms_pg_offset_row **out, char *errbuf,
                        size_t errlen);

/* ---- batch apply ------------------------------------------------------------------ */

/* One record of a batch. */
typedef struct oms_pg_record {
    const oms_event *ev; /* the decoded event (borrowed); NULL: not decodable, skipped */
    const char *topic;   /* borrowed */
    int32_t partition;
    int64_t offset;
    /* out: set by oms_pg_apply when the record broke a constraint of the
     * read models (it was left out; the rest of the batch applied) */
    bool rejected;
    char reason[384];
} oms_pg_record;

/* One partition a batch covers. */
typedef struct oms_pg_cursor {
    const char *topic; /* borrowed */
    int32_t partition;
    int64_t expected; /* the next offset the caller believes is stored */
    int64_t next;     /* the next offset to store (after the batch's last record) */
} oms_pg_cursor;

/* Called inside the transaction, after the effects and offsets are written
 * and before COMMIT, with the batch (rejected records marked): the place to
 * make dead-letter copies durable. A non-zero return rolls everything back
 * and oms_pg_apply returns it. */
typedef int (*oms_pg_before_commit)(void *ctx, const oms_pg_record *recs, size_t n);

typedef struct oms_pg_apply_stats {
    size_t applied;    /* records applied (decoded, not rejected) */
    size_t rejected;   /* records left out for a constraint */
    size_t statements; /* statements sent, guards and bisection included */
} oms_pg_apply_stats;

/* Apply recs[0..n) in their order (the consumption order: offsets ascending
 * within each partition) and store the cursors' next offsets, in one
 * transaction:
 *   1. lock the group's rows of the cursors' partitions; when a stored next
 *      offset is not cursors[i].expected (a rebuild, another instance, an
 *      earlier commit whose answer was lost), roll back and return
 *      OMS_EEXPIRED, errbuf naming the partition: nothing applied; else
 *      store the cursors' next offsets;
 *   2. fold the batch into one multi-row statement per kind of change
 *      (orders, status history, inventory, notifications), each row guarded
 *      by its stream position;
 *   3. when a statement fails for a record's data (SQLSTATE class 22 or 23:
 *      a foreign key, check, not-null or value error), bisect the batch
 *      under savepoints to find the records at fault, mark them rejected
 *      with the reason, and apply the others;
 *   4. call before_commit (may be NULL), COMMIT.
 * Records with ev == NULL are left out (their `rejected`/`reason` are the
 * caller's); the others' are reset on entry. st may be NULL.
 * Returns 0; OMS_EEXPIRED as above; OMS_EIO + errbuf when Postgres failed
 * (connection lost, timeout...: nothing applied, try the same batch again
 * later; check oms_pg_connected); OMS_ENOMEM; or before_commit's code. */
int oms_pg_apply(oms_pg *pg, const char *group, oms_pg_record *recs, size_t n,
                 const oms_pg_cursor *cursors, size_t ncursors,
                 oms_pg_before_commit before_commit, void *ctx, oms_pg_apply_stats *st,
                 char *errbuf, size_t errlen);

/* The common case of oms_pg_apply without waiting for it: the whole
 * transaction (offsets check and store, the folded effects, COMMIT) is sent
 * at once in libpq pipeline mode, one round trip, and its outcome collected
 * with oms_pg_apply_poll(), so that the caller reads and decodes the next
 * batch meanwhile. No bisection and no before_commit here: every record must
 * be decoded (ev != NULL), and when one breaks a rule the outcome is
 * OMS_EINVAL with nothing applied; the caller then applies the same batch
 * with oms_pg_apply(), which isolates it. recs and cursors may be reused as
 * soon as this returns. Nothing else may use the connection until the
 * outcome is collected. Returns 0 (in flight), OMS_EINVAL (a record without
 * ev, or an apply already in flight), OMS_ENOMEM or OMS_EIO + errbuf
 * (nothing in flight; the connection is unusable when !oms_pg_connected). */
int oms_pg_apply_send(oms_pg *pg, const char *group, const oms_pg_record *recs, size_t n,
                      const oms_pg_cursor *cursors, size_t ncursors, char *errbuf,
                      size_t errlen);

/* Whether an apply sent with oms_pg_apply_send() awaits its outcome. */
bool oms_pg_apply_pending(const oms_pg *pg);

/* Collect the outcome of the apply in flight, waiting up to timeout_ms (0:
 * not at all, -1: until it is known). Returns OMS_ETIMEDOUT while it runs;
 * then, once: 0 (committed; *st filled, may be NULL), OMS_EEXPIRED (the
 * stored offsets moved: nothing applied), OMS_EINVAL (a record broke a rule:
 * nothing applied, use oms_pg_apply) or OMS_EIO (Postgres failed: nothing
 * applied, or the answer to COMMIT was lost, which the offsets check of the
 * next try sorts out), with errbuf. */
int oms_pg_apply_poll(oms_pg *pg, int timeout_ms, oms_pg_apply_stats *st, char *errbuf,
                      size_t errlen);

/* ---- operator queries ------------------------------------------------------------- */

typedef struct oms_pg_counts {
    int64_t orders, history, inventory, notifications;
} oms_pg_counts;

/* Row counts of the read models. Returns 0 or OMS_EIO + errbuf. */
int oms_pg_counts_get(oms_pg *pg, oms_pg_counts *out, char *errbuf, size_t errlen);

/* In one transaction: empty the read models (orders, order_status_history,
 * inventory, notifications) and set every stored next offset, of every
 * group, to 0, so that the running consumers fold the log again from its
 * start. *partitions (may be NULL) gets the number of offset rows reset.
 * Returns 0 or OMS_EIO + errbuf. */
int oms_pg_rebuild_reset(oms_pg *pg, int64_t *partitions, char *errbuf, size_t errlen);

#endif
