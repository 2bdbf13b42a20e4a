/* gateway.h — the WebSocket protocol's logic, free of sockets: what a
 * connection may see (roles and subscriptions, DESIGN §3.2), how it answers
 * client events (§3.1), rate limiting, and the frames it sends.
 *
 * Dialects (plain JSON frames, Socket.IO) only frame: they hand client
 * events to oms_session_on_message() and send what it puts in oms_gw_out. */
#ifndef OMS_GATEWAY_H
#define OMS_GATEWAY_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "auth/auth.h"
#include "events/events.h"
#include "gateway/filter.h"

enum {
    OMS_SUB_ORDERS = 1u << 0,
    OMS_SUB_INVENTORY = 1u << 1,
};

/* Close codes the gateway uses. */
enum {
    OMS_CLOSE_GOING_AWAY = 1001,
    OMS_CLOSE_POLICY = 1008,    /* sustained rate-limit abuse */
    OMS_CLOSE_TOO_BIG = 1009,   /* frame over the size limit */
    OMS_CLOSE_TRY_LATER = 1013, /* send queue overflow (slow client) */
    OMS_CLOSE_TOKEN_EXPIRED = 4401,
};

typedef struct oms_session {
    oms_principal who;
    unsigned subs;      /* OMS_SUB_* */
    double tokens;      /* rate-limit bucket */
    int64_t refill_ms;  /* last refill */
    int per_min;        /* messages per minute allowed */
    int violations;     /* consecutive rate-limited messages */
    /* the subscriptions' filters (owned references; NULL: everything the
     * role may see), OMS_GW_F_ORDERS and OMS_GW_F_INVENTORY */
    oms_filter *filter[2];
} oms_session;

enum { OMS_GW_F_ORDERS = 0, OMS_GW_F_INVENTORY = 1 };

/* What to do after a client message. msgs are server events to send in
 * order; `answer` indexes the one that answers the client's event (a
 * Socket.IO client asking for an acknowledgement gets its data as the ack
 * instead), -1 when none. close_code != 0: send msgs, then close. */
#define OMS_GW_MAX_MSGS 4
typedef struct oms_gw_msg {
    const char *event; /* static string */
    json_t *data;      /* owned */
} oms_gw_msg;

typedef struct oms_gw_out {
    oms_gw_msg msgs[OMS_GW_MAX_MSGS];
    int n;
    int answer;
    int close_code;
    char close_reason[96];
    bool exp_changed; /* a refresh_token moved who.exp */
    /* `resume`: the server replays (DESIGN §3.5) and answers `resumed`
     * itself; resume_since is data.since (a new reference, NULL when
     * absent; the server validates it) */
    bool resume;
    json_t *resume_since;
} oms_gw_out;

/* What the session needs from its server. */
typedef struct oms_gw_env {
    const oms_auth *auth;
    /* positions of a topic as a JSON array of "TOPIC:PARTITION:OFFSET" (new
     * reference), see DESIGN §3.5 */
    json_t *(*positions)(void *ud, oms_topic_kind kind);
    void *ud;
    int64_t now_ms;
    const oms_filter_limits *filter_limits; /* NULL: the defaults */
} oms_gw_env;

void oms_session_init(oms_session *s, const oms_principal *who, int rate_per_min,
                      int64_t now_ms);
/* Release what the session holds (its filters); it may be initialized again. */
void oms_session_clear(oms_session *s);
/* dst = src with references of its own to the filters (dst uninitialized). */
void oms_session_copy(oms_session *dst, const oms_session *src);

/* data of the `connected` event: {userId, role, timestamp, positions}. */
json_t *oms_gw_connected(const oms_session *s, const oms_gw_env *env);

/* Rate limiting, per client message. Returns true when the message may be
 * handled; otherwise fills out with the error (and the close, when the abuse
 * is sustained). */
bool oms_session_admit(oms_session *s, const oms_gw_env *env, oms_gw_out *out);

/* One client event (name and data, data may be NULL). Does not rate-limit. */
void oms_session_on_message(oms_session *s, const oms_gw_env *env, const char *event,
                            const json_t *data, oms_gw_out *out);

/* The plain dialect: a complete text message {"event": NAME, "data": ...}.
 * Admits (rate limit), parses and dispatches; bad JSON and a missing event
 * name give `error {code: bad_request}` and the connection stays. */
void oms_session_on_text(oms_session *s, const oms_gw_env *env, const char *text, size_t len,
                         oms_gw_out *out);

/* Whether the session receives an event of this type for this user
 * (user_id: the event's userId; 0 for events without one). */
bool oms_session_wants(const oms_session *s, oms_event_type type, int64_t user_id);

/* The same, then the subscription's filter on the event's fields (v NULL:
 * a filtered subscription gets nothing, it cannot be told). Roles and
 * subscriptions first: a filter only narrows. */
bool oms_session_wants_view(const oms_session *s, oms_event_type type, int64_t user_id,
                            const oms_filter_view *v);

/* The filter of a topic's subscription (borrowed; NULL: none). */
const oms_filter *oms_session_filter(const oms_session *s, oms_topic_kind topic);

/* {"event": NAME, "data": DATA} as compact JSON text (malloc'd). */
char *oms_gw_frame_text(const char *event, const json_t *data, size_t *len);

/* data of an `error` event: {code, message}. New reference. */
json_t *oms_gw_error(const char *code, const char *message);

/* Append a message (takes data) / release everything in out. */
void oms_gw_out_add(oms_gw_out *out, const char *event, json_t *data, bool is_answer);
void oms_gw_out_clear(oms_gw_out *out);

#endif
