/* sentry.h — a minimal Sentry client: DSN parsing, event envelopes and
 * their delivery to the envelope endpoint (POST /api/{project}/envelope/,
 * gzip, X-Sentry-Auth) through libcurl with TLS verified.
 *
 * The pure parts (DSN, envelope, event ids) know nothing of the network and
 * are unit-tested with plain bytes; oms_sentry_send() is the only adapter.
 * The DSN's key is a credential: no message of this module ever holds it
 * (oms_sentry_dsn_describe() gives the safe form for logs). */
#ifndef OMS_SENTRY_H
#define OMS_SENTRY_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/oms.h"

/* A parsed DSN: SCHEME://PUBLIC_KEY[:SECRET]@HOST[:PORT][/PATH]/PROJECT_ID */
typedef struct oms_sentry_dsn {
    char scheme[8];      /* "http" or "https" */
    char public_key[128];
    char secret_key[128]; /* legacy DSNs only, "" otherwise */
    char host[256];      /* as written, [v6] brackets kept */
    int port;            /* 0: the scheme's default */
    char path[256];      /* prefix before the project id, "" or "/sub" (no trailing /) */
    char project_id[64]; /* digits */
} oms_sentry_dsn;

/* Parse text into *out. Returns 0 or OMS_EINVAL with errbuf saying what is
 * wrong ("SENTRY_DSN: no public key before '@'"); the message never holds
 * the key. what names the source in messages ("SENTRY_DSN"). */
int oms_sentry_dsn_parse(const char *text, const char *what, oms_sentry_dsn *out, char *errbuf,
                         size_t errlen);

/* The envelope endpoint: SCHEME://HOST[:PORT]PATH/api/PROJECT/envelope/
 * into buf. Returns the length or OMS_ERANGE. */
int oms_sentry_envelope_url(const oms_sentry_dsn *dsn, char *buf, size_t len);

/* The X-Sentry-Auth header value (without the name) for client, e.g.
 * "Sentry sentry_version=7, sentry_client=omsd/1.0, sentry_key=KEY".
 * Returns the length or OMS_ERANGE. */
int oms_sentry_auth_header(const oms_sentry_dsn *dsn, const char *client, char *buf, size_t len);

/* "https://HOST[:PORT]PATH project 42" (no key) for logs and health. */
void oms_sentry_dsn_describe(const oms_sentry_dsn *dsn, char *buf, size_t len);

/* A Sentry event_id (32 lowercase hex digits) derived from a key such as an
 * event's eventId: the key itself when it is a UUID (dashes dropped,
 * lowercased), else the first 128 bits of its SHA-256. The same key always
 * gives the same id, so a notice sent twice is dropped by Sentry itself. */
void oms_sentry_event_id(const char *key, char out[33]);

/* One event. Strings are borrowed; tags and extra (may be NULL) are JSON
 * objects, borrowed; tags' values must be strings. */
typedef struct oms_sentry_event {
    const char *event_id;    /* 32 hex; see oms_sentry_event_id */
    const char *level;       /* "fatal", "error", "warning", "info", "debug" */
    const char *message;     /* the event's message */
    const char *logger;      /* may be NULL */
    const char *environment; /* may be NULL or "" */
    const char *server_name; /* may be NULL or "" */
    const char *release;     /* may be NULL or "" */
    const char *fingerprint; /* may be NULL: Sentry groups by message */
    json_t *tags;
    json_t *extra;
    int64_t timestamp_ms; /* epoch ms */
} oms_sentry_event;

/* The envelope of one event (Sentry envelope format: a header line with
 * event_id and sent_at, an item header {"type":"event","length":N}, the
 * event JSON) as a malloc'd buffer in *out (caller frees), *len its length.
 * Returns 0, OMS_EINVAL (event_id not 32 hex, a bad level, tags that are
 * not strings) or OMS_ENOMEM. */
int oms_sentry_envelope(const oms_sentry_event *ev, int64_t sent_at_ms, char **out, size_t *len);

/* gzip (RFC 1952) of in into a malloc'd *out. Returns 0 or OMS_ENOMEM. */
int oms_sentry_gzip(const void *in, size_t len, unsigned char **out, size_t *outlen);

/* ---- delivery (libcurl) ----------------------------------------------------- */

typedef enum {
    OMS_SENTRY_OK = 0,
    OMS_SENTRY_RETRY,    /* no answer, 429 or 5xx: try again later */
    OMS_SENTRY_REJECTED, /* 401/403: the key or project is wrong (config) */
    OMS_SENTRY_INVALID,  /* another 4xx: the server refused this envelope */
} oms_sentry_outcome;

typedef struct oms_sentry_send_opts {
    const char *ca_file; /* may be NULL/"": the system's CAs */
    long timeout_ms;     /* whole exchange; 0: 10 s */
    const char *client;  /* sentry_client, e.g. "omsd/1.0" */
} oms_sentry_send_opts;

/* POST the envelope, gzipped, with X-Sentry-Auth. TLS peers and host names
 * are verified. *http gets the status (0: none). errbuf says what happened
 * in words an operator can act on ("sentry at 'https://host project 7'
 * rejected the key (HTTP 403): check SENTRY_DSN"), never with the key. */
oms_sentry_outcome oms_sentry_send(const oms_sentry_dsn *dsn, const oms_sentry_send_opts *o,
                                   const char *envelope, size_t len, long *http, char *errbuf,
                                   size_t errlen);

#endif
