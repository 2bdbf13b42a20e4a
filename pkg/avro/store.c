/* store.c — single-object encoding framing and the schema store
 * (fingerprint -> schema, full name -> latest version). */
#include "avro/avro_internal.h"
#include "avro/embedded.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- single-object encoding ------------------------------------------------------ */

void oms_avro_soe_header(uint64_t fingerprint, uint8_t out[OMS_AVRO_SOE_HEADER_LEN])
{
    out[0] = OMS_AVRO_SOE_MAGIC0;
    out[1] = OMS_AVRO_SOE_MAGIC1;
    for (int i = 0; i < 8; i++)
        out[2 + i] = (uint8_t)(fingerprint >> (8 * i));
}

int oms_avro_soe_parse(const uint8_t *buf, size_t len, uint64_t *fingerprint, const uint8_t **body,
                       size_t *body_len)
{
    /* check the marker bytes we have first: a 1-byte non-Avro payload is
     * "not Avro" rather than "truncated Avro" */
    if (!buf)
        len = 0;
    if ((len >= 1 && buf[0] != OMS_AVRO_SOE_MAGIC0) || (len >= 2 && buf[1] != OMS_AVRO_SOE_MAGIC1))
        return OMS_EMAGIC;
    if (len < OMS_AVRO_SOE_HEADER_LEN)
        return OMS_ETRUNC;
    uint64_t fp = 0;
    for (int i = 7; i >= 0; i--)
        fp = fp << 8 | buf[2 + i];
    if (fingerprint)
        *fingerprint = fp;
    if (body)
        *body = buf + OMS_AVRO_SOE_HEADER_LEN;
    if (body_len)
        *body_len = len - OMS_AVRO_SOE_HEADER_LEN;
    return 0;
}

/* ---- store ---------------------------------------------------------------------------- */

typedef struct {
    oms_avro_schema *schema;
    size_t latest; /* index of the newest entry with the same full name (self if unnamed) */
} st_entry;

typedef struct {
    uint64_t fp;
    size_t idx;
} st_fp;

struct oms_avro_store {
    st_entry *entries; /* insertion order */
    size_t n, cap;
    st_fp *byfp; /* sorted by fingerprint, for the per-record lookup */
};

oms_avro_store *oms_avro_store_new(void)
{
    return calloc(1, sizeof(oms_avro_store));
}

void oms_avro_store_free(oms_avro_store *st)
{
    if (!st)
        return;
    for (size_t i = 0; i < st->n; i++)
        oms_avro_schema_free(st->entries[i].schema);
    free(st->entries);
    free(st->byfp);
    free(st);
}

/* Position of fp in byfp, or where it would be inserted. */
static size_t fp_search(const oms_avro_store *st, uint64_t fp)
{
    size_t lo = 0, hi = st->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (st->byfp[mid].fp < fp)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static const st_entry *find_entry(const oms_avro_store *st, uint64_t fp)
{
    size_t i = fp_search(st, fp);
    return i < st->n && st->byfp[i].fp == fp ? &st->entries[st->byfp[i].idx] : NULL;
}

static bool is_named(const oms_avro_schema *s)
{
    return s->root->named_idx >= 0;
}

/* 1 when added, 0 when already present, < 0 on error. */
static int store_add(oms_avro_store *st, const char *json_text, const char *origin, char *errbuf,
                     size_t errlen)
{
    char why[512] = "";
    oms_avro_schema *s = oms_avro_schema_parse(json_text, why, sizeof why);
    if (!s) {
        oms_errf(errbuf, errlen, "%s: %s", origin ? origin : "schema", why);
        return OMS_ESCHEMA;
    }
    const st_entry *old = find_entry(st, s->fingerprint);
    if (old) {
        if (strcmp(old->schema->canonical, s->canonical) != 0) {
            /* 64-bit CRC collision: never expected, but never silently wrong */
            oms_errf(errbuf, errlen, "%s: fingerprint 0x%016" PRIx64 " collides with '%s'",
                     origin ? origin : "schema", s->fingerprint, old->schema->name);
            oms_avro_schema_free(s);
            return OMS_ESCHEMA;
        }
        oms_avro_schema_free(s);
        return 0;
    }
    if (st->n == st->cap) {
        size_t nc = st->cap ? st->cap * 2 : 16;
        st_entry *ne = realloc(st->entries, nc * sizeof *ne);
        if (ne)
            st->entries = ne;
        st_fp *nf = ne ? realloc(st->byfp, nc * sizeof *nf) : NULL;
        if (!nf) {
            oms_avro_schema_free(s);
            oms_errf(errbuf, errlen, "out of memory");
            return OMS_ENOMEM;
        }
        st->byfp = nf;
        st->cap = nc;
    }
    size_t idx = st->n;
    st->entries[idx] = (st_entry){.schema = s, .latest = idx};
    if (is_named(s))
        for (size_t i = 0; i < idx; i++)
            if (is_named(st->entries[i].schema) &&
                strcmp(st->entries[i].schema->name, s->name) == 0)
                st->entries[i].latest = idx;
    size_t pos = fp_search(st, s->fingerprint);
    memmove(&st->byfp[pos + 1], &st->byfp[pos], (st->n - pos) * sizeof *st->byfp);
    st->byfp[pos] = (st_fp){s->fingerprint, idx};
    st->n++;
    return 1;
}

int oms_avro_store_add(oms_avro_store *st, const char *json_text, const char *origin,
                       char *errbuf, size_t errlen)
{
    if (!st || !json_text) {
        oms_errf(errbuf, errlen, "invalid arguments");
        return OMS_EINVAL;
    }
    int rc = store_add(st, json_text, origin, errbuf, errlen);
    return rc < 0 ? rc : 0;
}

#define MAX_SCHEMA_FILE (4u << 20)

static char *read_file(const char *path, char *errbuf, size_t errlen, int *rc)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0) {
        oms_errf(errbuf, errlen, "%s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        *rc = OMS_EIO;
        return NULL;
    }
    if (sb.st_size > (off_t)MAX_SCHEMA_FILE) {
        oms_errf(errbuf, errlen, "%s: larger than %u bytes", path, MAX_SCHEMA_FILE);
        close(fd);
        *rc = OMS_EINVAL;
        return NULL;
    }
    size_t cap = (size_t)sb.st_size + 1, len = 0;
    char *buf = malloc(cap);
    if (!buf) {
        close(fd);
        oms_errf(errbuf, errlen, "out of memory");
        *rc = OMS_ENOMEM;
        return NULL;
    }
    for (;;) {
        ssize_t k = read(fd, buf + len, cap - 1 - len);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            oms_errf(errbuf, errlen, "%s: %s", path, strerror(errno));
            free(buf);
            close(fd);
            *rc = OMS_EIO;
            return NULL;
        }
        if (k == 0)
            break;
        len += (size_t)k;
        if (len == cap - 1)
            break; /* the file grew while we read it: take what stat said */
    }
    close(fd);
    buf[len] = '\0';
    if (strlen(buf) != len) {
        oms_errf(errbuf, errlen, "%s: contains a NUL byte", path);
        free(buf);
        *rc = OMS_EINVAL;
        return NULL;
    }
    return buf;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int oms_avro_store_load_dir(oms_avro_store *st, const char *dir, char *errbuf, size_t errlen)
{
    if (!st || !dir) {
        oms_errf(errbuf, errlen, "invalid arguments");
        return OMS_EINVAL;
    }
    DIR *d = opendir(dir);
    if (!d) {
        oms_errf(errbuf, errlen, "%s: %s", dir, strerror(errno));
        return OMS_EIO;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t len = strlen(de->d_name);
        if (de->d_name[0] == '.' || len <= 5 || strcmp(de->d_name + len - 5, ".avsc") != 0)
            continue;
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 16;
            char **nn = realloc(names, nc * sizeof *nn);
            if (!nn) {
                rc = OMS_ENOMEM;
                break;
            }
            names = nn;
            cap = nc;
        }
        if (!(names[n] = strdup(de->d_name))) {
            rc = OMS_ENOMEM;
            break;
        }
        n++;
    }
    closedir(d);
    if (rc) {
        oms_errf(errbuf, errlen, "out of memory");
    } else if (n) {
        qsort(names, n, sizeof *names, cmp_str);
    }
    int added = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        size_t plen = strlen(dir) + strlen(names[i]) + 2;
        char *path = malloc(plen);
        if (!path) {
            oms_errf(errbuf, errlen, "out of memory");
            rc = OMS_ENOMEM;
            break;
        }
        snprintf(path, plen, "%s/%s", dir, names[i]);
        char *text = read_file(path, errbuf, errlen, &rc);
        if (text) {
            int r = store_add(st, text, path, errbuf, errlen);
            if (r < 0)
                rc = r;
            else
                added += r;
            free(text);
        }
        free(path);
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return rc ? rc : added;
}

int oms_avro_store_load_embedded(oms_avro_store *st, char *errbuf, size_t errlen)
{
    if (!st) {
        oms_errf(errbuf, errlen, "invalid arguments");
        return OMS_EINVAL;
    }
    int added = 0;
    for (const oms_embedded_schema *e = oms_embedded_schemas; e->file; e++) {
        int r = store_add(st, e->text, e->file, errbuf, errlen);
        if (r < 0)
            return r;
        added += r;
    }
    return added;
}

const oms_avro_schema *oms_avro_store_get(const oms_avro_store *st, uint64_t fingerprint)
{
    const st_entry *e = st ? find_entry(st, fingerprint) : NULL;
    return e ? e->schema : NULL;
}

const oms_avro_schema *oms_avro_store_latest(const oms_avro_store *st, const char *full_name)
{
    if (!st || !full_name)
        return NULL;
    for (size_t i = st->n; i-- > 0;) {
        const oms_avro_schema *s = st->entries[i].schema;
        if (is_named(s) && strcmp(s->name, full_name) == 0)
            return s;
    }
    return NULL;
}

const oms_avro_schema *oms_avro_store_at(const oms_avro_store *st, size_t i)
{
    return st && i < st->n ? st->entries[i].schema : NULL;
}

size_t oms_avro_store_count(const oms_avro_store *st)
{
    return st ? st->n : 0;
}

int oms_avro_store_decode(const oms_avro_store *st, const uint8_t *buf, size_t len, json_t **out,
                          const oms_avro_schema **writer_out, char *errbuf, size_t errlen)
{
    if (out)
        *out = NULL;
    if (writer_out)
        *writer_out = NULL;
    if (!st || !out || (!buf && len)) {
        oms_errf(errbuf, errlen, "invalid arguments");
        return OMS_EINVAL;
    }
    uint64_t fp;
    const uint8_t *body;
    size_t body_len;
    int rc = oms_avro_soe_parse(buf, len, &fp, &body, &body_len);
    if (rc == OMS_EMAGIC) {
        oms_errf(errbuf, errlen,
                 "not single-object encoded: marker is %02x %02x, expected c3 01", buf[0],
                 len > 1 ? buf[1] : 0);
        return rc;
    }
    if (rc) {
        oms_errf(errbuf, errlen, "truncated: single-object header needs %d bytes, got %zu",
                 OMS_AVRO_SOE_HEADER_LEN, len);
        return rc;
    }
    const st_entry *e = find_entry(st, fp);
    if (!e) {
        oms_errf(errbuf, errlen, "unknown schema fingerprint 0x%016" PRIx64, fp);
        return OMS_ENOTFOUND;
    }
    const oms_avro_schema *reader = st->entries[e->latest].schema;
    rc = oms_avro_decode_json(e->schema, reader, body, body_len, out, errbuf, errlen);
    if (rc == 0 && writer_out)
        *writer_out = e->schema;
    return rc;
}
