/* sstore.h — the Socket.IO session store (sstore.c): each session's
 * subscriptions and their filters by pid, in memory (this instance) and in
 * PostgreSQL (table ws_sessions, migration 0003), so that connection-state
 * recovery on any instance restores them. For socketio.c; the store thread
 * answers through the hand-over (XQ_SSTORE) and calls no dialect.
 *
 * A state is a JSON object text {"orders": FILTER | null, "inventory": ...}:
 * one member per subscription, its normalized filter or null. */
#ifndef OMSD_SSTORE_H
#define OMSD_SSTORE_H

#include "omsd.h"

/* What the store thread hands back (it->sstore of an XQ_SSTORE item; the
 * handler frees it with omsd_sstore_ans_free). */
typedef enum { OMSD_SS_SAVED, OMSD_SS_FOUND } omsd_sstore_op;

struct omsd_sstore_ans {
    omsd_sstore_op op;
    char sid[32];   /* the session that asked (its EIO sid) */
    uint64_t seq;   /* which of its requests */
    int rc;         /* OMS_OK; OMS_ENOTFOUND (no such row); OMS_EIO (Postgres failed) */
    int64_t user_id; /* FOUND: the row's */
    char *state;     /* FOUND: the row's state (malloc'd) */
};
typedef struct omsd_sstore_ans omsd_sstore_ans;
void omsd_sstore_ans_free(omsd_sstore_ans *a);

/* Start the store thread (resume.session_store: Postgres; off: memory
 * only). 0 or OMS_ENOMEM/OMS_EIO (then memory only). */
int omsd_sstore_start(omsd *d);
/* After threads_stop: join the thread, free everything. */
void omsd_sstore_join(omsd *d);
/* Whether states go to Postgres (the store thread runs). */
bool omsd_sstore_durable(const omsd *d);

/* pid's state changed to state (copied) for user_id: kept in memory at
 * once (join: one more session holding pid lives here, see
 * omsd_sstore_live); with durable true also written to Postgres by the store thread,
 * which then pushes an OMSD_SS_SAVED answer (sid, seq; rc OMS_OK once
 * committed, OMS_EIO when Postgres is down: then written when it is back)
 * to worker `worker` when answer is true. 0, or OMS_ENOMEM (nothing
 * happens, no answer). */
int omsd_sstore_save(omsd *d, const char *pid, int64_t user_id, const char *state, bool join,
                     bool durable, bool answer, int worker, const char *sid, uint64_t seq);

/* pid's state as this instance knows it: 0 and *user_id, *state (malloc'd),
 * *stored (whether Postgres has it), or OMS_ENOTFOUND / OMS_ENOMEM. */
int omsd_sstore_peek(omsd *d, const char *pid, int64_t *user_id, char **state, bool *stored);

/* Look pid up in Postgres: an OMSD_SS_FOUND answer goes to worker (sid,
 * seq). 0, or OMS_ENOMEM / OMS_EINVAL (no store: no answer). */
int omsd_sstore_lookup(omsd *d, const char *pid, int worker, const char *sid, uint64_t seq);

/* A session holding pid (counted by a save with join, or by live true)
 * joined or left (live false) this instance: the rows of live sessions are
 * kept fresh, the others expire. */
void omsd_sstore_live(omsd *d, const char *pid, bool live);

/* The client ended pid's session (DISCONNECT): forget it here and in
 * Postgres. */
void omsd_sstore_forget(omsd *d, const char *pid);

#endif
