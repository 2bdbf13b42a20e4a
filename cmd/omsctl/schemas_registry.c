/* schemas_registry.c — `omsctl schemas register|compat|list --registry`: the
 * event schemas and a Confluent-compatible schema registry. Each event type
 * lives under the TopicNameStrategy subject of its topic ("oms.orders-value"
 * holds OrderCreated and OrderStatusChanged), so "the latest registered
 * version" of a schema is the newest version of its subject with the same
 * record name. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "events/events.h"
#include "json/json.h"
#include "registry/registry.h"
#include "schemas_registry.h"

static const char *topic_of(const oms_config *cfg, oms_event_type t)
{
    switch (oms_event_topic_kind(t)) {
    case OMS_TOPIC_ORDERS: return cfg->kafka.topic_orders;
    case OMS_TOPIC_INVENTORY: return cfg->kafka.topic_inventory;
    default: return cfg->kafka.topic_notifications;
    }
}

static oms_registry *open_registry(const oms_config *cfg, const oms_events *events)
{
    if (!cfg->schema_registry.url || !*cfg->schema_registry.url) {
        fprintf(stderr, "omsctl: no schema registry: give --registry=URL or set "
                        "SCHEMA_REGISTRY_URL (schema_registry.url)\n");
        return NULL;
    }
    oms_registry_opts o = {
        .url = cfg->schema_registry.url,
        .username = cfg->schema_registry.username,
        .password = cfg->schema_registry.password,
        .ca_file = cfg->schema_registry.ca_file,
        .timeout_ms = cfg->schema_registry.timeout_ms,
    };
    char err[512];
    oms_registry *r = oms_registry_new(&o, events, err, sizeof err);
    if (!r)
        fprintf(stderr, "omsctl: %s\n", err);
    return r;
}

static char *escape(const char *s)
{
    /* subjects are topic names plus "-value": [A-Za-z0-9._-]; anything else
     * is refused rather than escaped */
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '.' || *p == '_' || *p == '-'))
            return NULL;
    return strdup(s);
}

/* GET path; 0 with *out (200), 1 for 404, -1 printed. */
static int get_json(oms_registry *r, const char *path, json_t **out)
{
    long status = 0;
    char err[512];
    *out = NULL;
    if (oms_registry_request(r, "GET", path, NULL, &status, out, err, sizeof err) != OMS_OK) {
        fprintf(stderr, "omsctl: %s\n", err);
        return -1;
    }
    if (status == 404) {
        json_decref(*out);
        *out = NULL;
        return 1;
    }
    if (status != 200 || !*out) {
        fprintf(stderr, "omsctl: schema registry '%s' answered %ld to %s\n", oms_registry_url(r),
                status, path);
        json_decref(*out);
        *out = NULL;
        return -1;
    }
    return 0;
}

/* The newest version of subject whose record is named `name`: 0 with *text
 * (malloc'd) and *version, 1 when there is none, -1 printed. */
static int latest_of_name(oms_registry *r, const char *subject, const char *name, char **text,
                          int *version, uint32_t *id)
{
    char *esc = escape(subject);
    if (!esc) {
        fprintf(stderr, "omsctl: subject '%s' has characters a topic name cannot have\n", subject);
        return -1;
    }
    char path[600];
    snprintf(path, sizeof path, "/subjects/%s/versions", esc);
    json_t *versions = NULL;
    int rc = get_json(r, path, &versions);
    if (rc != 0) {
        free(esc);
        return rc;
    }
    rc = 1;
    for (size_t i = json_array_size(versions); i-- > 0 && rc == 1;) {
        json_int_t v = json_integer_value(json_array_get(versions, i));
        snprintf(path, sizeof path, "/subjects/%s/versions/%" JSON_INTEGER_FORMAT, esc, v);
        json_t *one = NULL;
        int grc = get_json(r, path, &one);
        if (grc < 0) {
            rc = -1;
            break;
        }
        const char *t = json_string_value(json_object_get(one, "schema"));
        char perr[256];
        oms_avro_schema *s = t ? oms_avro_schema_parse(t, perr, sizeof perr) : NULL;
        if (s && strcmp(oms_avro_schema_name(s), name) == 0) {
            *text = strdup(t);
            *version = (int)v;
            *id = (uint32_t)json_integer_value(json_object_get(one, "id"));
            rc = *text ? 0 : -1;
        }
        oms_avro_schema_free(s);
        json_decref(one);
    }
    json_decref(versions);
    free(esc);
    return rc;
}

int ctl_schemas_register(const oms_config *cfg, const oms_avro_store *st, bool json)
{
    char err[512];
    oms_events *events = oms_events_new(NULL, err, sizeof err);
    oms_registry *r = events ? open_registry(cfg, events) : NULL;
    if (!r) {
        if (!events)
            fprintf(stderr, "omsctl: %s\n", err);
        oms_events_free(events);
        return OMS_EXIT_USAGE;
    }
    int rc = OMS_EXIT_OK;
    if (json)
        printf("[");
    for (int t = 0; t < OMS_EV__COUNT; t++) {
        const oms_avro_schema *s = oms_avro_store_latest(st, oms_event_schema_name(t));
        char subject[300];
        oms_registry_subject(topic_of(cfg, t), subject, sizeof subject);
        uint32_t id = 0;
        if (!s || oms_registry_register(r, subject, oms_avro_schema_text(s), &id, err,
                                        sizeof err) != OMS_OK) {
            fprintf(stderr, "omsctl: cannot register %s under '%s': %s\n",
                    oms_event_type_name(t), subject, s ? err : "schema not loaded");
            rc = OMS_EXIT_FAIL;
            continue;
        }
        if (json)
            printf("%s{\"name\":\"%s\",\"subject\":\"%s\",\"id\":%" PRIu32 "}", t ? "," : "",
                   oms_event_schema_name(t), subject, id);
        else
            printf("%-20s %-36s id %" PRIu32 "\n", oms_event_type_name(t), subject, id);
    }
    if (json)
        printf("]\n");
    oms_registry_free(r);
    oms_events_free(events);
    return rc;
}

int ctl_schemas_compat(const oms_config *cfg, const oms_avro_store *st, bool json)
{
    char err[512];
    oms_events *events = oms_events_new(NULL, err, sizeof err);
    oms_registry *r = events ? open_registry(cfg, events) : NULL;
    if (!r) {
        if (!events)
            fprintf(stderr, "omsctl: %s\n", err);
        oms_events_free(events);
        return OMS_EXIT_USAGE;
    }
    int rc = OMS_EXIT_OK;
    json_t *out = json_array();
    if (!json)
        printf("%-20s %-36s %-9s %s\n", "SCHEMA", "SUBJECT", "VERSION", "RESULT");
    for (int t = 0; t < OMS_EV__COUNT; t++) {
        const char *name = oms_event_schema_name(t);
        const oms_avro_schema *s = oms_avro_store_latest(st, name);
        char subject[300];
        oms_registry_subject(topic_of(cfg, t), subject, sizeof subject);
        char *text = NULL;
        int version = 0;
        uint32_t id = 0;
        int lrc = s ? latest_of_name(r, subject, name, &text, &version, &id) : -1;
        const char *result;
        char why[512] = "";
        if (lrc < 0) {
            rc = OMS_EXIT_FAIL;
            result = "error";
        } else if (lrc == 1) {
            result = "not registered";
        } else {
            oms_avro_schema *reg = oms_avro_schema_parse(text, why, sizeof why);
            /* backward: our readers read what the registered version wrote;
             * forward: readers of the registered version read ours */
            if (!reg) {
                result = "incompatible";
            } else if (oms_avro_check_compatible(reg, s, why, sizeof why) != OMS_OK) {
                result = "incompatible";
            } else if (oms_avro_check_compatible(s, reg, why, sizeof why) != OMS_OK) {
                result = "backward only";
            } else {
                result = "compatible";
            }
            if (strcmp(result, "incompatible") == 0)
                rc = OMS_EXIT_FAIL;
            oms_avro_schema_free(reg);
            free(text);
        }
        if (json) {
            json_t *o = json_pack("{s:s,s:s,s:s}", "name", name, "subject", subject, "result",
                                  result);
            if (lrc == 0) {
                json_object_set_new(o, "version", json_integer(version));
                json_object_set_new(o, "id", json_integer(id));
            }
            if (why[0])
                json_object_set_new(o, "reason", json_string(why));
            json_array_append_new(out, o);
        } else {
            char v[16] = "-";
            if (lrc == 0)
                snprintf(v, sizeof v, "%d", version);
            printf("%-20s %-36s %-9s %s%s%s\n", oms_event_type_name(t), subject, v, result,
                   why[0] ? ": " : "", why);
        }
    }
    if (json) {
        char *s = oms_json_dumps(out, JSON_COMPACT);
        puts(s ? s : "[]");
        free(s);
    }
    json_decref(out);
    oms_registry_free(r);
    oms_events_free(events);
    return rc;
}

int ctl_schemas_list_registry(const oms_config *cfg, bool json)
{
    char err[512];
    oms_events *events = oms_events_new(NULL, err, sizeof err);
    oms_registry *r = events ? open_registry(cfg, events) : NULL;
    if (!r) {
        if (!events)
            fprintf(stderr, "omsctl: %s\n", err);
        oms_events_free(events);
        return OMS_EXIT_USAGE;
    }
    int rc = OMS_EXIT_OK;
    json_t *subjects = NULL, *out = json_array();
    if (get_json(r, "/subjects", &subjects) != 0) {
        rc = OMS_EXIT_FAIL;
        goto done;
    }
    if (!json)
        printf("%-36s %-8s %-6s %s\n", "SUBJECT", "VERSION", "ID", "SCHEMA");
    size_t i;
    json_t *sj;
    json_array_foreach(subjects, i, sj)
    {
        char *esc = escape(json_string_value(sj) ? json_string_value(sj) : "");
        if (!esc)
            continue; /* not a topic's subject: not ours to show */
        char path[600];
        snprintf(path, sizeof path, "/subjects/%s/versions", esc);
        json_t *versions = NULL;
        if (get_json(r, path, &versions) != 0) {
            free(esc);
            rc = OMS_EXIT_FAIL;
            continue;
        }
        size_t k;
        json_t *vj;
        json_array_foreach(versions, k, vj)
        {
            snprintf(path, sizeof path, "/subjects/%s/versions/%" JSON_INTEGER_FORMAT, esc,
                     json_integer_value(vj));
            json_t *one = NULL;
            if (get_json(r, path, &one) != 0) {
                rc = OMS_EXIT_FAIL;
                continue;
            }
            const char *t = json_string_value(json_object_get(one, "schema"));
            const char *type = json_string_value(json_object_get(one, "schemaType"));
            char perr[256];
            oms_avro_schema *s = t && (!type || strcmp(type, "AVRO") == 0)
                                     ? oms_avro_schema_parse(t, perr, sizeof perr)
                                     : NULL;
            const char *name = s ? oms_avro_schema_name(s) : type ? type : "?";
            json_int_t id = json_integer_value(json_object_get(one, "id"));
            if (json)
                json_array_append_new(out, json_pack("{s:s,s:I,s:I,s:s}", "subject",
                                                     json_string_value(sj), "version",
                                                     json_integer_value(vj), "id", id, "schema",
                                                     name));
            else
                printf("%-36s %-8" JSON_INTEGER_FORMAT " %-6" JSON_INTEGER_FORMAT " %s\n",
                       json_string_value(sj), json_integer_value(vj), id, name);
            oms_avro_schema_free(s);
            json_decref(one);
        }
        json_decref(versions);
        free(esc);
    }
    if (json) {
        char *s = oms_json_dumps(out, JSON_COMPACT);
        puts(s ? s : "[]");
        free(s);
    }
done:
    json_decref(subjects);
    json_decref(out);
    oms_registry_free(r);
    oms_events_free(events);
    return rc;
}
