/* schemas.c — `omsctl schemas list|show|fingerprint|check|register|compat`. */
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "avro/avro.h"
#include "json/json.h"
#include "ctl.h"
#include "schemas_registry.h"

static void schemas_help(FILE *out)
{
    fprintf(out,
            "usage: omsctl schemas list [--registry[=URL]] [--json]\n"
            "       omsctl schemas show NAME|FINGERPRINT [--canonical]\n"
            "       omsctl schemas fingerprint FILE|-\n"
            "       omsctl schemas check FILE\n"
            "       omsctl schemas register [--registry=URL] [--json]\n"
            "       omsctl schemas compat [--registry=URL] [--json]\n"
            "\n"
            "The schemas are those built into omsctl (schemas/ at build time) plus the\n"
            ".avsc files of --schemas DIR.\n"
            "list:        every schema: full name, version, fingerprint (hex, as written after\n"
            "             C3 01 in little-endian), field count\n"
            "show:        a schema's text (the latest version of NAME, e.g. OrderCreated or\n"
            "             oms.events.OrderCreated, or the one with FINGERPRINT in hex)\n"
            "fingerprint: Parsing Canonical Form, CRC-64-AVRO fingerprint and single-object\n"
            "             header of a schema file\n"
            "check:       whether FILE can replace the latest schema of its name: readers\n"
            "             using FILE read every known version (backward), and readers of\n"
            "             the latest version read FILE's data (forward)\n"
            "\n"
            "With a Confluent-compatible schema registry (--registry=URL, else\n"
            "schema_registry.url, SCHEMA_REGISTRY_URL; basic auth and CA from the config).\n"
            "Each event type's subject is its topic's, TopicNameStrategy: '<topic>-value'.\n"
            "list --registry: every subject, version, id and record name in the registry\n"
            "register:    register the latest schema of each event type under its subject\n"
            "             (the registry answers the existing id for a known schema)\n"
            "compat:      check the latest schema of each event type against the newest\n"
            "             version of its subject with the same record name: compatible\n"
            "             (both ways), backward only, incompatible (exit 1), not registered\n"
            "\n"
            "options:\n"
            "  --schemas DIR   extra .avsc files\n"
            "  --registry[=URL] talk to the schema registry (URL over the configuration)\n"
            "  --config FILE   configuration file (default: $OMS_CONFIG, none): topics,\n"
            "                  schema_registry.*\n"
            "  --canonical     show the Parsing Canonical Form instead of the text\n"
            "  --json          machine-readable output\n"
            "  -h, --help      this help\n"
            "\n"
            "exit status: 0 ok, 1 not found or incompatible, 2 usage\n");
}

static const char *short_name(const char *full)
{
    const char *dot = strrchr(full, '.');
    return dot ? dot + 1 : full;
}

/* the version of schema i: its rank among the store's schemas of that name */
static int version_of(const oms_avro_store *st, size_t i)
{
    const char *name = oms_avro_schema_name(oms_avro_store_at(st, i));
    int v = 0;
    for (size_t k = 0; k <= i; k++)
        if (strcmp(oms_avro_schema_name(oms_avro_store_at(st, k)), name) == 0)
            v++;
    return v;
}

static int field_count(const oms_avro_schema *s)
{
    json_t *j = json_loads(oms_avro_schema_text(s), 0, NULL);
    int n = json_is_array(json_object_get(j, "fields"))
                ? (int)json_array_size(json_object_get(j, "fields"))
                : 0;
    json_decref(j);
    return n;
}

static const oms_avro_schema *find(const oms_avro_store *st, const char *what)
{
    const oms_avro_schema *s = oms_avro_store_latest(st, what);
    if (s)
        return s;
    char full[300];
    snprintf(full, sizeof full, "oms.events.%s", what);
    if ((s = oms_avro_store_latest(st, full)))
        return s;
    char *end;
    const char *hex = strncmp(what, "0x", 2) == 0 ? what + 2 : what;
    uint64_t fp = strtoull(hex, &end, 16);
    if (*hex && *end == '\0')
        return oms_avro_store_get(st, fp);
    return NULL;
}

static int do_fingerprint(const char *file, bool json)
{
    size_t len;
    char *text = oms_cli_read_file(file, &len);
    if (!text) {
        fprintf(stderr, "omsctl: cannot read '%s'\n", file);
        return OMS_EXIT_USAGE;
    }
    char err[512];
    oms_avro_schema *s = oms_avro_schema_parse(text, err, sizeof err);
    free(text);
    if (!s) {
        fprintf(stderr, "omsctl: '%s' is not a valid schema: %s\n", file, err);
        return OMS_EXIT_FAIL;
    }
    uint64_t fp = oms_avro_schema_fingerprint(s);
    uint8_t hdr[OMS_AVRO_SOE_HEADER_LEN];
    oms_avro_soe_header(fp, hdr);
    char hdrhex[64] = "";
    for (int i = 0; i < OMS_AVRO_SOE_HEADER_LEN; i++)
        snprintf(hdrhex + strlen(hdrhex), sizeof hdrhex - strlen(hdrhex), "%s%02X", i ? " " : "",
                 hdr[i]);
    if (json) {
        json_t *o = json_pack("{s:s,s:s,s:s,s:I,s:s}", "name", oms_avro_schema_name(s), "canonical",
                              oms_avro_schema_canonical(s), "fingerprint", "",
                              "fingerprintSigned", (json_int_t)(int64_t)fp, "header", hdrhex);
        char hex[20];
        snprintf(hex, sizeof hex, "%016" PRIx64, fp);
        json_object_set_new(o, "fingerprint", json_string(hex));
        char *out = oms_json_dumps(o, JSON_COMPACT);
        puts(out);
        free(out);
        json_decref(o);
    } else {
        printf("name:         %s\n", oms_avro_schema_name(s));
        printf("canonical:    %s\n", oms_avro_schema_canonical(s));
        printf("fingerprint:  %016" PRIx64 " (signed %" PRId64 ")\n", fp, (int64_t)fp);
        printf("header:       %s\n", hdrhex);
    }
    oms_avro_schema_free(s);
    return OMS_EXIT_OK;
}

static int do_check(const oms_avro_store *st, const char *file, bool json)
{
    size_t len;
    char *text = oms_cli_read_file(file, &len);
    if (!text) {
        fprintf(stderr, "omsctl: cannot read '%s'\n", file);
        return OMS_EXIT_USAGE;
    }
    char err[512];
    oms_avro_schema *s = oms_avro_schema_parse(text, err, sizeof err);
    free(text);
    if (!s) {
        fprintf(stderr, "omsctl: '%s' is not a valid schema: %s\n", file, err);
        return OMS_EXIT_FAIL;
    }
    const char *name = oms_avro_schema_name(s);
    const oms_avro_schema *latest = oms_avro_store_latest(st, name);
    int problems = 0, checked = 0;
    if (!latest) {
        if (!json)
            printf("%s: new schema (no earlier version known)\n", name);
    }
    for (size_t i = 0; i < oms_avro_store_count(st); i++) {
        const oms_avro_schema *w = oms_avro_store_at(st, i);
        if (strcmp(oms_avro_schema_name(w), name) != 0)
            continue;
        checked++;
        if (oms_avro_check_compatible(w, s, err, sizeof err) != OMS_OK) {
            problems++;
            fprintf(stderr, "omsctl: backward: cannot read data of %s v%d (%016" PRIx64 "): %s\n",
                    name, version_of(st, i), oms_avro_schema_fingerprint(w), err);
        }
    }
    if (latest && oms_avro_check_compatible(s, latest, err, sizeof err) != OMS_OK) {
        problems++;
        fprintf(stderr, "omsctl: forward: current readers cannot read data of '%s': %s\n", file,
                err);
    }
    if (json)
        printf("{\"name\":\"%s\",\"versionsChecked\":%d,\"compatible\":%s}\n", name, checked,
               problems ? "false" : "true");
    else if (!problems)
        printf("%s: compatible with %d known version%s, both ways\n", name, checked,
               checked == 1 ? "" : "s");
    oms_avro_schema_free(s);
    return problems ? OMS_EXIT_FAIL : OMS_EXIT_OK;
}

int cmd_schemas(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"schemas", required_argument, NULL, 'S'}, {"canonical", no_argument, NULL, 'C'},
        {"json", no_argument, NULL, 'J'},          {"help", no_argument, NULL, 'h'},
        {"registry", optional_argument, NULL, 'G'}, {"config", required_argument, NULL, 'c'},
        {NULL, 0, NULL, 0},
    };
    const char *pc = "omsctl schemas";
    const char *dir = NULL, *registry_url = NULL, *config = NULL;
    bool canonical = false, json = false, registry = false;
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'S': dir = optarg; break;
        case 'C': canonical = true; break;
        case 'J': json = true; break;
        case 'G':
            registry = true;
            registry_url = optarg;
            break;
        case 'c': config = optarg; break;
        case 'h': schemas_help(stdout); return OMS_EXIT_OK;
        default: return oms_cli_usage_error(pc, "unknown or incomplete option");
        }
    }
    if (optind >= argc)
        return oms_cli_usage_error(
            pc, "name an action: list, show, fingerprint, check, register or compat");
    const char *action = argv[optind++];
    const char *arg = optind < argc ? argv[optind++] : NULL;
    if (optind < argc)
        return oms_cli_usage_error(pc, "unexpected argument '%s'", argv[optind]);
    bool is_list = strcmp(action, "list") == 0;
    bool needs_registry = strcmp(action, "register") == 0 || strcmp(action, "compat") == 0;
    if (!is_list && !needs_registry && strcmp(action, "show") && strcmp(action, "fingerprint") &&
        strcmp(action, "check"))
        return oms_cli_usage_error(pc, "unknown action '%s'", action);
    if (registry && !is_list && !needs_registry)
        return oms_cli_usage_error(pc, "--registry goes with list, register and compat");
    if (needs_registry && arg)
        return oms_cli_usage_error(pc, "unexpected argument '%s'", arg);
    if (needs_registry || (is_list && registry)) {
        oms_config cfg;
        int crc = oms_cli_load_config("omsctl", config, &cfg);
        if (crc)
            return crc;
        if (registry_url) {
            free(cfg.schema_registry.url);
            cfg.schema_registry.url = strdup(registry_url);
        }
        int rc = OMS_EXIT_OK;
        if (is_list) {
            rc = ctl_schemas_list_registry(&cfg, json);
        } else {
            char err[512];
            oms_avro_store *st = oms_avro_store_new();
            if (!st || oms_avro_store_load_embedded(st, err, sizeof err) < 0 ||
                (dir && oms_avro_store_load_dir(st, dir, err, sizeof err) < 0)) {
                fprintf(stderr, "omsctl: cannot load schemas: %s\n", st ? err : "out of memory");
                rc = OMS_EXIT_USAGE;
            } else if (strcmp(action, "register") == 0) {
                rc = ctl_schemas_register(&cfg, st, json);
            } else {
                rc = ctl_schemas_compat(&cfg, st, json);
            }
            oms_avro_store_free(st);
        }
        oms_config_free(&cfg);
        return rc;
    }
    if (is_list && arg)
        return oms_cli_usage_error(pc, "unexpected argument '%s'", arg);
    if (!is_list && !arg)
        return oms_cli_usage_error(pc, "%s needs an argument", action);
    if (strcmp(action, "fingerprint") == 0)
        return do_fingerprint(arg, json);

    char err[512];
    oms_avro_store *st = oms_avro_store_new();
    if (!st || oms_avro_store_load_embedded(st, err, sizeof err) < 0 ||
        (dir && oms_avro_store_load_dir(st, dir, err, sizeof err) < 0)) {
        fprintf(stderr, "omsctl: cannot load schemas: %s\n", st ? err : "out of memory");
        oms_avro_store_free(st);
        return OMS_EXIT_USAGE;
    }
    int rc = OMS_EXIT_OK;
    if (is_list) {
        size_t n = oms_avro_store_count(st);
        if (json)
            printf("[");
        else
            printf("%-22s %-8s %-16s %s\n", "NAME", "VERSION", "FINGERPRINT", "FIELDS");
        for (size_t i = 0; i < n; i++) {
            const oms_avro_schema *s = oms_avro_store_at(st, i);
            const oms_avro_schema *latest = oms_avro_store_latest(st, oms_avro_schema_name(s));
            if (json)
                printf("%s{\"name\":\"%s\",\"version\":%d,\"fingerprint\":\"%016" PRIx64
                       "\",\"fields\":%d,\"latest\":%s}",
                       i ? "," : "", oms_avro_schema_name(s), version_of(st, i),
                       oms_avro_schema_fingerprint(s), field_count(s),
                       latest == s ? "true" : "false");
            else
                printf("%-22s v%-7d %016" PRIx64 " %d%s\n", short_name(oms_avro_schema_name(s)),
                       version_of(st, i), oms_avro_schema_fingerprint(s), field_count(s),
                       latest == s ? "" : "  (superseded)");
        }
        if (json)
            printf("]\n");
    } else if (strcmp(action, "show") == 0) {
        const oms_avro_schema *s = find(st, arg);
        if (!s) {
            fprintf(stderr, "omsctl: no schema named or with fingerprint '%s' (see 'omsctl schemas "
                            "list')\n",
                    arg);
            rc = OMS_EXIT_FAIL;
        } else {
            const char *t = canonical ? oms_avro_schema_canonical(s) : oms_avro_schema_text(s);
            fputs(t, stdout);
            if (t[0] && t[strlen(t) - 1] != '\n')
                putchar('\n');
        }
    } else {
        rc = do_check(st, arg, json);
    }
    oms_avro_store_free(st);
    return rc;
}
