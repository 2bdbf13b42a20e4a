/* topics.c — configs/topics.yaml: the topics `omsctl topics create` makes
 * (see config.h). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "yaml_tree.h"

#define TOPIC_DEFAULT_PARTITIONS 6
#define TOPIC_DEFAULT_RF 1
/* Kafka's replication factor is an int16; partitions have no hard limit,
 * but more than this is a typo, not a plan. */
#define TOPIC_MAX_PARTITIONS 100000
#define TOPIC_MAX_RF 32767

typedef struct {
    const char *name;
    char *errbuf;
    size_t errlen;
} tctx;

static const char *const top_keys[] = {"defaults", "topics", NULL};
static const char *const default_keys[] = {"partitions", "replication_factor", "configs", NULL};
static const char *const topic_keys[] = {"name", "partitions", "replication_factor", "configs",
                                         NULL};

/* "x.yaml:4: unknown key 'partitons' in topics[0] (did you mean 'partitions'?)" */
static int check_keys(tctx *t, const yt_node *map, const char *where,
                      const char *const *allowed)
{
    for (size_t i = 0; i < map->n; i += 2) {
        const yt_node *k = map->children[i];
        bool known = false;
        const char *best = NULL;
        size_t bestd = SIZE_MAX;
        for (size_t j = 0; allowed[j]; j++) {
            if (strlen(allowed[j]) == k->len && memcmp(allowed[j], k->value, k->len) == 0)
                known = true;
            size_t d = k->len < 64 ? yt_edit_distance(k->value, allowed[j]) : SIZE_MAX;
            if (d < bestd) {
                bestd = d;
                best = allowed[j];
            }
        }
        if (known)
            continue;
        char q[64], hint[96] = "";
        if (best && bestd <= 2 && bestd * 3 <= k->len + 1)
            snprintf(hint, sizeof hint, " (did you mean '%s'?)", best);
        oms_errf(t->errbuf, t->errlen, "%s:%d: unknown key %s%s%s%s", t->name, k->line,
                 yt_quote(k->value, k->len, q, sizeof q), *where ? " in " : "", where, hint);
        return OMS_ECONFIG;
    }
    return 0;
}

static const yt_node *map_get(const yt_node *map, const char *key)
{
    for (size_t i = 0; i < map->n; i += 2)
        if (strlen(key) == map->children[i]->len && strcmp(map->children[i]->value, key) == 0)
            return map->children[i + 1];
    return NULL;
}

static int get_int(tctx *t, const yt_node *v, const char *path, int64_t min, int64_t max,
                   int *out)
{
    int64_t n;
    char got[64], exp[96];
    if (v->kind != YT_SCALAR || yt_is_null(v) || yt_parse_int(v->value, v->len, min, max, &n)) {
        oms_errf(t->errbuf, t->errlen, "%s:%d: %s: %s, got %s", t->name, v->line, path,
                 yt_int_expectation(min, max, exp, sizeof exp),
                 yt_describe(v, got, sizeof got));
        return OMS_ECONFIG;
    }
    *out = (int)n;
    return 0;
}

static void free_configs(oms_kv *kv, size_t *n)
{
    for (size_t i = 0; i < *n; i++) {
        free(kv[i].key);
        free(kv[i].value);
        kv[i].key = kv[i].value = NULL;
    }
    *n = 0;
}

/* Merge the mapping v (topic configs) into kv/n: a name already there gets
 * the new value. */
static int merge_configs(tctx *t, const yt_node *v, const char *path, oms_kv *kv, size_t *n)
{
    char got[64], q[64];
    if (yt_is_null(v))
        return 0;
    if (v->kind != YT_MAP) {
        oms_errf(t->errbuf, t->errlen, "%s:%d: %s: expected a mapping of topic configs, got %s",
                 t->name, v->line, path, yt_describe(v, got, sizeof got));
        return OMS_ECONFIG;
    }
    for (size_t i = 0; i < v->n; i += 2) {
        const yt_node *k = v->children[i], *val = v->children[i + 1];
        if (k->len == 0 || memchr(k->value, '\0', k->len)) {
            oms_errf(t->errbuf, t->errlen, "%s:%d: %s: invalid config name %s", t->name, k->line,
                     path, yt_quote(k->value, k->len, q, sizeof q));
            return OMS_ECONFIG;
        }
        if (val->kind != YT_SCALAR || yt_is_null(val) || memchr(val->value, '\0', val->len)) {
            oms_errf(t->errbuf, t->errlen, "%s:%d: %s.%s: expected a value, got %s", t->name,
                     val->line, path, k->value, yt_describe(val, got, sizeof got));
            return OMS_ECONFIG;
        }
        size_t j = 0;
        while (j < *n && strcmp(kv[j].key, k->value) != 0)
            j++;
        if (j == OMS_TOPIC_MAX_CONFIGS) {
            oms_errf(t->errbuf, t->errlen, "%s:%d: %s: too many configs (at most %d)", t->name,
                     k->line, path, OMS_TOPIC_MAX_CONFIGS);
            return OMS_ECONFIG;
        }
        char *value = strdup(val->value);
        if (!value)
            goto nomem;
        if (j == *n) {
            if (!(kv[j].key = strdup(k->value))) {
                free(value);
                goto nomem;
            }
            (*n)++;
        } else {
            free(kv[j].value);
        }
        kv[j].value = value;
    }
    return 0;
nomem:
    oms_errf(t->errbuf, t->errlen, "%s: out of memory", t->name);
    return OMS_ENOMEM;
}

static int topic_from_node(tctx *t, const yt_node *item, size_t idx, const oms_topic_spec *def,
                           const oms_topic_list *done, oms_topic_spec *ts)
{
    char where[32], path[64], got[64], q[64];
    int rc;
    snprintf(where, sizeof where, "topics[%zu]", idx);
    if (item->kind != YT_MAP) {
        oms_errf(t->errbuf, t->errlen, "%s:%d: %s: expected a mapping (name:, partitions:, ...), "
                                       "got %s",
                 t->name, item->line, where, yt_describe(item, got, sizeof got));
        return OMS_ECONFIG;
    }
    if ((rc = check_keys(t, item, where, topic_keys)))
        return rc;
    const yt_node *name = map_get(item, "name");
    if (!name) {
        oms_errf(t->errbuf, t->errlen, "%s:%d: %s: missing 'name'", t->name, item->line, where);
        return OMS_ECONFIG;
    }
    if (name->kind != YT_SCALAR || !yt_valid_topic_name(name->value, name->len)) {
        oms_errf(t->errbuf, t->errlen,
                 "%s:%d: %s.name: expected a Kafka topic name (1 to 249 of a-z A-Z 0-9 . _ -), "
                 "got %s",
                 t->name, name->line, where, yt_describe(name, got, sizeof got));
        return OMS_ECONFIG;
    }
    for (size_t i = 0; i < done->count; i++) {
        if (strcmp(done->topics[i].name, name->value) == 0) {
            oms_errf(t->errbuf, t->errlen, "%s:%d: %s: topic %s is listed twice", t->name,
                     name->line, where, yt_quote(name->value, name->len, q, sizeof q));
            return OMS_ECONFIG;
        }
    }
    if (!(ts->name = strdup(name->value)))
        goto nomem;
    ts->partitions = def->partitions;
    ts->replication_factor = def->replication_factor;
    const yt_node *v;
    if ((v = map_get(item, "partitions"))) {
        snprintf(path, sizeof path, "%s.partitions", where);
        if ((rc = get_int(t, v, path, 1, TOPIC_MAX_PARTITIONS, &ts->partitions)))
            return rc;
    }
    if ((v = map_get(item, "replication_factor"))) {
        snprintf(path, sizeof path, "%s.replication_factor", where);
        if ((rc = get_int(t, v, path, 1, TOPIC_MAX_RF, &ts->replication_factor)))
            return rc;
    }
    for (size_t i = 0; i < def->nconfigs; i++) {
        ts->configs[i].key = strdup(def->configs[i].key);
        ts->configs[i].value = strdup(def->configs[i].value);
        ts->nconfigs++;
        if (!ts->configs[i].key || !ts->configs[i].value)
            goto nomem;
    }
    if ((v = map_get(item, "configs"))) {
        snprintf(path, sizeof path, "%s.configs", where);
        if ((rc = merge_configs(t, v, path, ts->configs, &ts->nconfigs)))
            return rc;
    }
    return 0;
nomem:
    oms_errf(t->errbuf, t->errlen, "%s: out of memory", t->name);
    return OMS_ENOMEM;
}

static void free_spec(oms_topic_spec *ts)
{
    free(ts->name);
    ts->name = NULL;
    free_configs(ts->configs, &ts->nconfigs);
}

static int topics_from_tree(tctx *t, const yt_node *root, oms_topic_list *out)
{
    char got[64];
    int rc = 0;
    /* The file's defaults; a spec used as a template, never returned. */
    oms_topic_spec def = {.partitions = TOPIC_DEFAULT_PARTITIONS,
                          .replication_factor = TOPIC_DEFAULT_RF};
    oms_topic_list tl = {NULL, 0};
    if (!root)
        return 0;
    if (root->kind != YT_MAP) {
        oms_errf(t->errbuf, t->errlen, "%s:%d: expected a mapping (defaults:, topics:), got %s",
                 t->name, root->line, yt_describe(root, got, sizeof got));
        return OMS_ECONFIG;
    }
    if ((rc = check_keys(t, root, "", top_keys)))
        return rc;

    /* defaults first, wherever they stand in the file */
    const yt_node *d = map_get(root, "defaults");
    if (d && !yt_is_null(d)) {
        if (d->kind != YT_MAP) {
            oms_errf(t->errbuf, t->errlen, "%s:%d: defaults: expected a mapping, got %s",
                     t->name, d->line, yt_describe(d, got, sizeof got));
            return OMS_ECONFIG;
        }
        const yt_node *v;
        if ((rc = check_keys(t, d, "defaults", default_keys)))
            goto out;
        if ((v = map_get(d, "partitions")) &&
            (rc = get_int(t, v, "defaults.partitions", 1, TOPIC_MAX_PARTITIONS, &def.partitions)))
            goto out;
        if ((v = map_get(d, "replication_factor")) &&
            (rc = get_int(t, v, "defaults.replication_factor", 1, TOPIC_MAX_RF,
                          &def.replication_factor)))
            goto out;
        if ((v = map_get(d, "configs")) &&
            (rc = merge_configs(t, v, "defaults.configs", def.configs, &def.nconfigs)))
            goto out;
    }

    const yt_node *list = map_get(root, "topics");
    if (list && !yt_is_null(list)) {
        if (list->kind != YT_SEQ) {
            oms_errf(t->errbuf, t->errlen,
                     "%s:%d: topics: expected a sequence of topics (- name: ...), got %s",
                     t->name, list->line, yt_describe(list, got, sizeof got));
            rc = OMS_ECONFIG;
            goto out;
        }
        if (list->n > 0 && !(tl.topics = calloc(list->n, sizeof *tl.topics))) {
            oms_errf(t->errbuf, t->errlen, "%s: out of memory", t->name);
            rc = OMS_ENOMEM;
            goto out;
        }
        for (size_t i = 0; i < list->n; i++) {
            /* count first: a half-built spec is freed with the list */
            oms_topic_spec *ts = &tl.topics[tl.count];
            tl.count++;
            if ((rc = topic_from_node(t, list->children[i], i, &def,
                                      &(oms_topic_list){tl.topics, tl.count - 1}, ts)))
                goto out;
        }
    }
    *out = tl;
    tl.topics = NULL;
    tl.count = 0;
out:
    free_spec(&def);
    oms_topics_free(&tl);
    return rc;
}

int oms_topics_load_string(oms_topic_list *out, const char *yaml, size_t len, const char *name,
                           char *errbuf, size_t errlen)
{
    yt_node *root = NULL;
    out->topics = NULL;
    out->count = 0;
    int rc = yt_parse(yaml, len, name, &root, errbuf, errlen);
    if (rc)
        return rc;
    tctx t = {name, errbuf, errlen};
    rc = topics_from_tree(&t, root, out);
    yt_free(root);
    return rc;
}

int oms_topics_load_file(oms_topic_list *out, const char *path, char *errbuf, size_t errlen)
{
    char *buf;
    size_t len;
    out->topics = NULL;
    out->count = 0;
    int rc = yt_read_file(path, &buf, &len, errbuf, errlen);
    if (rc)
        return rc;
    rc = oms_topics_load_string(out, buf, len, path, errbuf, errlen);
    free(buf);
    return rc;
}

void oms_topics_free(oms_topic_list *tl)
{
    if (!tl)
        return;
    for (size_t i = 0; i < tl->count; i++)
        free_spec(&tl->topics[i]);
    free(tl->topics);
    tl->topics = NULL;
    tl->count = 0;
}
