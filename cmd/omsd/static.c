/* static.c — the web console's files (server.web_root), read-only, GET and
 * HEAD only, never outside the root. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "omsd.h"

#define MAX_FILE (8u << 20)

static const struct {
    const char *ext;
    const char *type;
} types[] = {
    {".html", "text/html; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".mjs", "text/javascript; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".json", "application/json"},
    {".svg", "image/svg+xml"},
    {".png", "image/png"},
    {".ico", "image/x-icon"},
    {".txt", "text/plain; charset=utf-8"},
    {".map", "application/json"},
    {".woff2", "font/woff2"},
};

void omsd_static_init(omsd *d)
{
    const char *root = d->cfg.server.web_root;
    d->web_root[0] = '\0';
    if (!root || !*root)
        return;
    char buf[PATH_MAX];
    if (realpath(root, buf)) {
        snprintf(d->web_root, sizeof d->web_root, "%s", buf);
        return;
    }
    if (root[0] != '/') {
        /* next to the program: build/bin/omsd → ../../web */
        char exe[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        if (n > 0) {
            exe[n] = '\0';
            char *slash = strrchr(exe, '/');
            if (slash) {
                *slash = '\0';
                char cand[PATH_MAX + 64];
                snprintf(cand, sizeof cand, "%s/../../%s", exe, root);
                if (realpath(cand, buf)) {
                    snprintf(d->web_root, sizeof d->web_root, "%s", buf);
                    return;
                }
            }
        }
    }
    oms_log(d->log, OMS_LOG_WARN, "no web console: server.web_root not found",
            OMS_LS("web_root", root));
}

static const char *type_of(const char *path)
{
    const char *dot = strrchr(path, '.');
    for (size_t i = 0; dot && i < OMS_ARRAY_LEN(types); i++)
        if (strcmp(dot, types[i].ext) == 0)
            return types[i].type;
    return "application/octet-stream";
}

/* A console path: "/" or segments of [A-Za-z0-9._-], none of them "." or
 * "..", nothing hidden. Anything else is not ours to serve. */
static bool safe_path(const char *p)
{
    if (p[0] != '/')
        return false;
    const char *seg = p + 1;
    for (const char *q = p + 1;; q++) {
        if (*q == '/' || *q == '\0') {
            size_t n = (size_t)(q - seg);
            if (n == 0 && *q == '/')
                return false; /* "//" */
            if (n > 0 && seg[0] == '.')
                return false; /* ".", "..", hidden files */
            if (*q == '\0')
                return true;
            seg = q + 1;
            continue;
        }
        char ch = *q;
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == '-'))
            return false;
    }
}

bool omsd_static_serve(omsd *d, const omsd_http_req *req, omsd_http_resp *resp)
{
    if (!d->web_root[0])
        return false;
    bool get = strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0;
    const char *p = req->path;
    if (!safe_path(p)) {
        /* refuse traversal attempts explicitly rather than 404 them */
        if (strstr(p, "..") || strchr(p, '\\') || strstr(p, "%2e") || strstr(p, "%2E")) {
            omsd_rest_error(resp, 400, "bad_request", "invalid path");
            return true;
        }
        return false;
    }
    char rel[600];
    snprintf(rel, sizeof rel, "%s", strcmp(p, "/") == 0 ? "/index.html" : p);
    char full[PATH_MAX + 700];
    snprintf(full, sizeof full, "%s%s", d->web_root, rel);
    char real[PATH_MAX];
    struct stat st;
    size_t rootlen = strlen(d->web_root);
    if (!realpath(full, real) || strncmp(real, d->web_root, rootlen) != 0 ||
        (real[rootlen] != '/' && real[rootlen] != '\0') || stat(real, &st) != 0 ||
        !S_ISREG(st.st_mode))
        return false;
    if (!get) {
        snprintf(resp->allow, sizeof resp->allow, "GET, HEAD");
        omsd_rest_error(resp, 405, "method_not_allowed", "the console is read-only");
        return true;
    }
    if ((size_t)st.st_size > MAX_FILE) {
        omsd_rest_error(resp, 500, "internal", "file too large to serve");
        return true;
    }
    FILE *f = fopen(real, "rb");
    char *body = f ? malloc((size_t)st.st_size + 1) : NULL;
    size_t n = body ? fread(body, 1, (size_t)st.st_size, f) : 0;
    if (f)
        fclose(f);
    if (!body || n != (size_t)st.st_size) {
        free(body);
        omsd_rest_error(resp, 500, "internal", "cannot read the file");
        return true;
    }
    free(resp->body);
    resp->status = 200;
    resp->body = body;
    resp->len = n;
    resp->content_type = type_of(real);
    /* the page itself is revalidated so a new release shows at once */
    resp->cache_control = strcmp(rel, "/index.html") == 0 ? "no-cache" : "public, max-age=300";
    return true;
}
