/* request.c — what every HTTP-facing part of the gateway shares (REST,
 * the console's files, WebSocket upgrades, Socket.IO): the JSON answer and
 * error shapes, the Origin check, and the token of a request. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "json/json.h"
#include "omsd.h"

void omsd_rest_json(omsd_http_resp *resp, int status, json_t *body)
{
    free(resp->body);
    resp->status = status;
    resp->content_type = "application/json";
    resp->body = body ? oms_json_dumps(body, JSON_COMPACT) : NULL;
    resp->len = resp->body ? strlen(resp->body) : 0;
    json_decref(body);
}

void omsd_rest_error(omsd_http_resp *resp, int status, const char *code, const char *message)
{
    omsd_rest_json(resp, status,
                   json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", message));
}

bool omsd_origin_allowed(const omsd *d, const char *origin, const char *host)
{
    if (!origin || !*origin)
        return true;
    /* our own origin: the console omsd serves */
    if (host && *host) {
        const char *rest = strstr(origin, "://");
        if (rest && strcmp(rest + 3, host) == 0)
            return true;
    }
    const char *list = d->cfg.server.cors_origin;
    if (!list || !*list)
        return false;
    size_t olen = strlen(origin);
    for (const char *p = list; *p;) {
        while (*p == ' ' || *p == ',')
            p++;
        const char *e = p;
        while (*e && *e != ',')
            e++;
        const char *t = e;
        while (t > p && t[-1] == ' ')
            t--;
        size_t n = (size_t)(t - p);
        if ((n == 1 && *p == '*') || (n == olen && strncmp(p, origin, n) == 0))
            return true;
        p = e;
    }
    return false;
}

int omsd_rest_auth(omsd *d, const omsd_http_req *req, oms_principal *who, omsd_http_resp *resp)
{
    const char *tok = NULL;
    if (req->authorization && *req->authorization) {
        if (strncasecmp(req->authorization, "Bearer ", 7) != 0) {
            omsd_rest_error(resp, 401, "unauthorized", "Authorization must be 'Bearer <JWT>'");
            return -1;
        }
        tok = req->authorization + 7;
        while (*tok == ' ')
            tok++;
    } else if (req->token_arg && *req->token_arg) {
        tok = req->token_arg;
    }
    if (!tok || !*tok) {
        omsd_rest_error(resp, 401, "unauthorized",
                        "a token is required: 'Authorization: Bearer <JWT>' or ?token=<JWT>");
        return -1;
    }
    char err[256];
    int rc = oms_auth_verify(d->auth, tok, oms_now_ms() / 1000, who, err, sizeof err);
    if (rc != OMS_OK) {
        omsd_rest_error(resp, 401, rc == OMS_EEXPIRED ? "token_expired" : "unauthorized", err);
        return -1;
    }
    return 0;
}
