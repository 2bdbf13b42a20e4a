/* alert.h — the alerting rules and notices of DESIGN §3.8 (the original
 * system's "Order creation alert" to Sentry and e-mail), and the Postgres
 * record that makes each notice go out once.
 *
 * Pure parts (rules, notices, digests) know nothing of Kafka, Postgres or
 * the network and are unit-tested; the store (oms_alert_store_*) is the
 * Postgres adapter over tables alert_notices and alert_digests
 * (migrations/0002_alerts.sql) and oms_offsets. */
#ifndef OMS_ALERT_H
#define OMS_ALERT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/oms.h"
#include "config/config.h"
#include "events/events.h"
#include "mail/mail.h"
#include "sentry/sentry.h"

/* ---- rules ------------------------------------------------------------------------ */

#define OMS_ALERT_MAX_RULES 16
#define OMS_ALERT_MAX_VALUES 8

/* One rule: every condition must hold. */
typedef struct oms_alert_rule {
    unsigned types;                        /* bit (1u << oms_event_type) */
    char statuses[OMS_ALERT_MAX_VALUES][32]; /* any of them; none: any status */
    size_t nstatuses;
    bool has_min_total;
    double min_total; /* totalAmount >= */
} oms_alert_rule;

typedef struct oms_alert_rules {
    oms_alert_rule rules[OMS_ALERT_MAX_RULES];
    size_t n;
} oms_alert_rules;

/* The default: the original system's behaviour, every new order. */
#define OMS_ALERT_DEFAULT_RULES "type=OrderCreated"

/* Parse rules text: rules separated by ';', each a list of conditions
 * separated by spaces, all of which must hold:
 *   type=T[,T...]     event types (OrderCreated, order-created, ...); required
 *   status=S[,S...]   the event's status (cancelled, low_stock, ...)
 *   total>=N          the order's totalAmount at least N
 * e.g. "type=OrderCreated; type=OrderStatusChanged status=cancelled;
 *       type=InventoryChanged status=low_stock,out_of_stock".
 * Returns 0 or OMS_EINVAL with errbuf naming the rule and condition. */
int oms_alert_rules_parse(const char *text, oms_alert_rules *out, char *errbuf, size_t errlen);

/* The index of the first rule ev matches, or -1. */
int oms_alert_rules_match(const oms_alert_rules *r, const oms_event *ev);

/* The topics (bit (1u << oms_topic_kind)) the rules need to read. */
unsigned oms_alert_rules_topics(const oms_alert_rules *r);

/* ---- settings -------------------------------------------------------------------- */

/* The alerts.* configuration, checked and parsed. */
typedef struct oms_alert_settings {
    bool enabled;   /* the alerting consumer runs (alerts.enabled, or auto and a sink set) */
    bool sentry;    /* a DSN is set: notices and omsd's own errors go to Sentry */
    oms_sentry_dsn dsn;
    char sentry_where[400]; /* the DSN without its key, for logs and health */
    bool email;     /* alerts.email.enabled */
    oms_smtp_tls tls;
    char from[256];
    char **recipients;
    size_t nrecipients;
    oms_alert_rules rules;
    unsigned topics; /* bit (1u << oms_topic_kind) the rules read */
} oms_alert_settings;

/* Check and parse cfg->alerts into *out: the DSN, the rules, the e-mail
 * settings (host and recipients required when e-mail is on, addresses
 * plain, EMAIL_USER with a password, console_url http(s)). Returns 0 or
 * OMS_ECONFIG with errbuf naming the key or variable, never a secret.
 * Free with oms_alert_settings_free. */
int oms_alert_settings_load(const oms_config *cfg, oms_alert_settings *out, char *errbuf,
                            size_t errlen);
void oms_alert_settings_free(oms_alert_settings *s);

/* ---- notices ------------------------------------------------------------------------ */

/* What goes to Sentry and by e-mail for one event or one digest. */
typedef struct oms_alert_notice {
    char key[64];     /* eventId, or "digest-<uuid>": the idempotency key */
    char event_id[33]; /* Sentry event_id derived from key */
    const char *level; /* "info", ... (static) */
    char *message;     /* Sentry message */
    json_t *tags;      /* object of strings */
    json_t *extra;     /* object */
    char *subject;     /* e-mail */
    char *text;
    char *html;
    int64_t timestamp_ms;
} oms_alert_notice;

/* Build the notice of ev (OrderCreated: "Order creation alert triggered for
 * order ORDER-123", tags orderId, aliasId, userId, status, extra total and
 * items; other types have their own wording). console_url ("" none) is
 * linked from the e-mail. Returns 0 or OMS_ENOMEM. Free with
 * oms_alert_notice_clear. */
int oms_alert_notice_from_event(const oms_event *ev, const char *console_url,
                                oms_alert_notice *out);

/* One line naming ev for a digest ("ORDER-123 · user 7 · total 59.97 ·
 * OrderCreated") into buf. */
void oms_alert_summary(const oms_event *ev, char *buf, size_t len);

/* The digest of count folded notices (lines: their summaries, in order;
 * all are listed in the e-mail, the first 100 in Sentry's extra), keyed
 * "digest-<digest_id>". Returns 0 or OMS_ENOMEM. */
int oms_alert_notice_digest(const char *digest_id, const char *const *lines, size_t count,
                            int max_per_minute, int64_t first_ms, int64_t last_ms,
                            const char *console_url, int64_t now_ms, oms_alert_notice *out);

void oms_alert_notice_clear(oms_alert_notice *n);

/* ---- the record (Postgres) ----------------------------------------------------------- */

typedef enum {
    OMS_ALERT_SEND = 0,  /* notify individually, then oms_alert_store_done */
    OMS_ALERT_FOLDED,    /* recorded for the next digest; offset advanced */
    OMS_ALERT_DONE,      /* this event was handled before; offset advanced */
} oms_alert_decision;

struct pg_conn;

/* Create the group's offset row of a partition when missing (at `initial`),
 * and read the stored next offset into *next. Returns 0 or OMS_EIO. */
int oms_alert_store_position(struct pg_conn *c, const char *group, const char *topic,
                             int32_t partition, int64_t initial, int64_t *next, char *errbuf,
                             size_t errlen);

/* Store next for a partition whose stored value is expected (records that
 * raise no notice). OMS_EEXPIRED when the stored offset moved (another
 * member owns the partition now), else 0 or OMS_EIO. */
int oms_alert_store_advance(struct pg_conn *c, const char *group, const char *topic,
                            int32_t partition, int64_t expected, int64_t next, char *errbuf,
                            size_t errlen);

/* One event matched a rule, at offset of a partition whose stored offset is
 * expected. In one transaction: check the stored offset (OMS_EEXPIRED when it
 * moved), then
 *   - the event has a record already: DONE when it was sent or folded (the
 *     offset goes to offset + 1), SEND when a send was decided but not
 *     recorded as done (a crash in between: send again, same ids);
 *   - else decide (under an advisory lock, so instances count together):
 *     SEND while fewer than max_per_minute notices were decided in the last
 *     60 s, else FOLDED (the offset goes to offset + 1); record it.
 * summary is kept for the digest. Returns 0 (*d set), OMS_EEXPIRED or
 * OMS_EIO. */
int oms_alert_store_claim(struct pg_conn *c, const char *group, const char *topic,
                          int32_t partition, int64_t expected, int64_t offset,
                          const char *event_id, const char *event_type, const char *summary,
                          int max_per_minute, oms_alert_decision *d, char *errbuf,
                          size_t errlen);

/* A SEND went out to every sink: record it and store offset + 1, in one
 * transaction. OMS_EEXPIRED, OMS_EIO or 0. */
int oms_alert_store_done(struct pg_conn *c, const char *group, const char *topic,
                         int32_t partition, int64_t offset, const char *event_id,
                         char *errbuf, size_t errlen);

/* A digest to send: its id, and the summaries of its notices in order. */
typedef struct oms_alert_digest {
    char id[37];
    char **lines;
    size_t count;
    int64_t first_ms, last_ms;
} oms_alert_digest;

/* Take the digest lock (a session advisory lock: one sender among all
 * instances; released by oms_alert_store_digest_release or when the
 * connection ends), then return the digest to send: one recorded and not
 * sent (a crash in between: send again, same id), else a new one of every
 * folded notice not in a digest yet, when the oldest is interval_s old.
 * Returns 1 (a digest in *dg), 0 (none; lock released) or OMS_EIO. */
int oms_alert_store_digest_take(struct pg_conn *c, int interval_s, oms_alert_digest *dg,
                                char *errbuf, size_t errlen);
/* The digest went out: record it and release the lock. 0 or OMS_EIO. */
int oms_alert_store_digest_done(struct pg_conn *c, const char *id, char *errbuf, size_t errlen);
void oms_alert_store_digest_release(struct pg_conn *c);
void oms_alert_digest_clear(oms_alert_digest *dg);

/* Figures for `omsctl alerts status`. */
typedef struct oms_alert_counts {
    int64_t sent, pending, folded, folded_pending, digests, digests_pending;
    int64_t last_sent_ms; /* -1: none */
} oms_alert_counts;
int oms_alert_store_counts(struct pg_conn *c, oms_alert_counts *out, char *errbuf,
                           size_t errlen);

#endif
