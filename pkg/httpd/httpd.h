/* httpd.h — HTTP/1.1 serving on libwebsockets, shared by the programs that
 * answer HTTP: omsd (REST API, console, Socket.IO long-polling) and
 * `oms-producer serve` (the domain services' API).
 *
 * One exchange at a time per connection: the caller keeps an oms_httpd_txn
 * per connection and forwards the lws HTTP callbacks to it. The txn reads
 * the request (method, path, a body up to a limit, refusing what it cannot
 * take), the caller decides the answer (oms_httpd_answer), and the txn
 * writes it (headers, then the body) and resets itself for the next request
 * on the same keep-alive connection. What to answer is the caller's; how
 * HTTP is spoken is here. Single-threaded, like the lws context it serves. */
#ifndef OMS_HTTPD_H
#define OMS_HTTPD_H

#include <libwebsockets.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct oms_httpd_txn {
    char method[8]; /* "GET", ...; "" for a method lws does not name */
    char path[512];
    bool path_too_long; /* over 511 bytes: path is "" (answer 414) */
    char *body;         /* NUL-terminated, body_len bytes (NULL: none) */
    size_t body_len;
    bool body_too_large; /* over the limit: not kept (answer 413; the
                          * connection closes after the answer) */
    bool no_length;      /* a body without Content-Length (answer 411) */
    size_t body_limit;
    bool handled;        /* the caller took the request */
    bool ready;          /* the answer is set */
    bool headers_sent;
    /* the answer */
    int status;
    char *resp_body; /* malloc'd */
    size_t resp_len;
    const char *content_type;  /* NULL: application/json */
    const char *cache_control; /* NULL: no-store */
    char allow[64];            /* Allow (405), "" none */
    char cors[300];            /* Access-Control-Allow-Origin, "" none */
} oms_httpd_txn;

/* What LWS_CALLBACK_HTTP should do next. */
enum {
    OMS_HTTPD_RUN = 1,  /* the request is complete: handle it now */
    OMS_HTTPD_WAIT = 0, /* a body is coming: handle it at BODY_COMPLETION */
};

/* LWS_CALLBACK_HTTP: reads the request line and decides about the body
 * (bodies over body_limit are dropped unread, and an absurdly large one is
 * answered at once). OMS_HTTPD_RUN or OMS_HTTPD_WAIT. The same as
 * oms_httpd_request_line, then oms_httpd_body_plan (for a limit that
 * depends on the path). */
int oms_httpd_begin(oms_httpd_txn *t, struct lws *wsi, size_t body_limit);
void oms_httpd_request_line(oms_httpd_txn *t, struct lws *wsi);
int oms_httpd_body_plan(oms_httpd_txn *t, struct lws *wsi, size_t body_limit);
/* LWS_CALLBACK_HTTP_BODY: keeps the body up to the limit. -1 out of
 * memory (close), else 0. */
int oms_httpd_body(oms_httpd_txn *t, const void *in, size_t len);
/* True once per request: the caller runs it now (BODY_COMPLETION may come
 * after an early answer). */
bool oms_httpd_take(oms_httpd_txn *t);
/* Set the answer (takes body, malloc'd or NULL; content_type NULL for
 * JSON) and ask for WRITEABLE. allow, cache_control and cors may be set on
 * t before or after. */
void oms_httpd_answer(oms_httpd_txn *t, struct lws *wsi, int status, const char *content_type,
                      char *body, size_t len);
/* LWS_CALLBACK_HTTP_WRITEABLE: writes what is due. 0, or -1 to close the
 * connection (a write failed, or the request's body was refused unread). */
int oms_httpd_write(oms_httpd_txn *t, struct lws *wsi);
/* Frees what the txn holds (the connection closed or became a WebSocket). */
void oms_httpd_txn_clear(oms_httpd_txn *t);

/* A request header into buf ("" when absent). False when it is longer than
 * buf holds (buf is then ""). */
bool oms_httpd_header(struct lws *wsi, enum lws_token_indexes h, char *buf, int len);
/* A query argument by its exact name: 1 (out filled, URL-decoded), 0
 * absent, -1 longer than outlen allows. */
int oms_httpd_query_arg(struct lws *wsi, const char *name, char *out, size_t outlen);

#endif
