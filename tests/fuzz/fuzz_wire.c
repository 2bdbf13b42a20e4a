/* fuzz_wire.c — the Confluent and JSON record decoders of pkg/events
 * (oms_event_decode on records that start with 00 or '{').
 *
 * Input: byte 0 picks the record:
 *   0..7  a Confluent record with schema id = byte 0, the rest its body; the
 *         ids are registry writers prepared at start (an in-process lookup
 *         stands in for the registry): 0 OrderCreated, 1 OrderStatusChanged,
 *         4 InventoryChanged, 5 UserNotification, 6 SystemNotification (the
 *         current schemas), 2 OrderStatusChanged with an added optional
 *         field, 3 one without "message", 7 a JSON schema (the body is a
 *         JSON record);
 *   8     a Confluent record with an id the registry does not know;
 *   other the rest is the whole record (a JSON record, or anything).
 * Invariants beyond no crash, no leak, no undefined behaviour:
 *   - a body under a current schema decodes exactly as the same body in
 *     single-object encoding: same code, same message (after the
 *     "schema id N: " prefix), same event;
 *   - an accepted event validates, gives the same frame from the fast JSON
 *     writer and jansson's, and survives a JSON record and a Confluent round
 *     trip unchanged;
 *   - a JSON record the fast reader accepts, the jansson path accepts as the
 *     same event (the fast reader answers "unsure" for everything else);
 *   - an unknown id is OMS_ENOTFOUND, never accepted. */
#include <string.h>

#include "avro/embedded.h"
#include "events/events.h"
#include "events/events_internal.h"
#include "fuzz.h"

#define NW 8
static oms_events *g_ev;
static oms_events_writer *g_w[NW];
static const oms_event_type g_type[NW] = {
    OMS_EV_ORDER_CREATED,        OMS_EV_ORDER_STATUS_CHANGED, OMS_EV_ORDER_STATUS_CHANGED,
    OMS_EV_ORDER_STATUS_CHANGED, OMS_EV_INVENTORY_CHANGED,    OMS_EV_USER_NOTIFICATION,
    OMS_EV_SYSTEM_NOTIFICATION,  OMS_EV__COUNT};

static int lookup(void *ctx, uint32_t id, const oms_events_writer **out, char *errbuf,
                  size_t errlen)
{
    (void)ctx;
    if (id >= NW) {
        oms_errf(errbuf, errlen, "unknown to the schema registry");
        return OMS_ENOTFOUND;
    }
    *out = g_w[id];
    return OMS_OK;
}

static const char *embedded(const char *file)
{
    for (const oms_embedded_schema *es = oms_embedded_schemas; es->file; es++)
        if (strcmp(es->file, file) == 0)
            return es->text;
    abort();
}

static char *osc_variant(int v)
{
    json_t *j = json_loads(embedded("order_status_changed.v1.avsc"), 0, NULL);
    json_t *fields = json_object_get(j, "fields");
    if (v == 2) {
        json_array_append_new(fields, json_pack("{s:s,s:[s,s],s:n}", "name", "channel", "type",
                                                "null", "string", "default"));
    } else {
        for (size_t i = 0; i < json_array_size(fields); i++)
            if (strcmp(json_string_value(json_object_get(json_array_get(fields, i), "name")),
                       "message") == 0)
                json_array_remove(fields, i);
    }
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return s;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (g_ev)
        return 0;
    char err[512];
    g_ev = oms_events_new(NULL, err, sizeof err);
    if (!g_ev) {
        fprintf(stderr, "fuzz_wire: oms_events_new: %s\n", err);
        abort();
    }
    static const char *const files[NW] = {
        "order_created.v1.avsc",     "order_status_changed.v1.avsc", NULL, NULL,
        "inventory_changed.v1.avsc", "user_notification.v1.avsc",
        "system_notification.v1.avsc", NULL};
    for (int i = 0; i < NW; i++) {
        if (files[i]) {
            g_w[i] = oms_events_writer_new(g_ev, embedded(files[i]), NULL);
        } else if (i == 7) {
            g_w[i] = oms_events_writer_new(g_ev, "{}", "JSON");
        } else {
            char *t = osc_variant(i);
            g_w[i] = oms_events_writer_new(g_ev, t, "AVRO");
            free(t);
        }
        if (!g_w[i] || oms_events_writer_error(g_w[i])) {
            fprintf(stderr, "fuzz_wire: writer %d: %s\n", i,
                    g_w[i] ? oms_events_writer_error(g_w[i]) : "no memory");
            abort();
        }
    }
    oms_events_set_lookup(g_ev, lookup, NULL, NULL);
    return 0;
}

/* The event as JSON: equal JSON, equal events (doubles compared as JSON
 * reals, which round-trip exactly). */
static bool same_event(const oms_event *a, const oms_event *b)
{
    json_t *ja = oms_event_to_json(a), *jb = oms_event_to_json(b);
    /* data compares as parsed JSON: a JSON record writes it back compact */
    bool eq = json_equal(ja, jb);
    json_decref(ja);
    json_decref(jb);
    return eq;
}

static void check_event(const oms_event *ev, uint32_t id)
{
    char err[512];
    FUZZ_CHECK(oms_event_validate(ev, err, sizeof err) == OMS_OK, "accepted but invalid: %s",
               err);
    size_t fl = 0, gl = 0;
    char *fast = oms_event_frame_json(ev, "oms.orders:1:2", &fl);
    char *gen = oms_event_frame_json_generic(ev, "oms.orders:1:2", &gl);
    FUZZ_CHECK(fast && gen && fl == gl && memcmp(fast, gen, fl) == 0, "frames differ");
    free(fast);
    free(gen);
    uint8_t *buf = malloc(1 << 17);
    size_t n = 0;
    oms_event back;
    /* as a JSON record */
    FUZZ_CHECK(oms_event_encode_json_record(ev, buf, 1 << 17, &n, err, sizeof err) == OMS_OK,
               "does not encode as JSON: %s", err);
    FUZZ_CHECK(oms_event_decode(g_ev, buf, n, &back, err, sizeof err) == OMS_OK,
               "its JSON record does not decode: %s", err);
    FUZZ_CHECK(same_event(ev, &back), "the JSON round trip changed the event");
    oms_event_clear(&back);
    /* in the Confluent framing, under the current schema's id */
    uint32_t cur = 0;
    while (cur < NW && g_type[cur] != ev->type)
        cur++;
    (void)id;
    FUZZ_CHECK(cur < NW, "no writer for type %d", ev->type);
    FUZZ_CHECK(oms_event_encode_confluent(g_ev, ev, cur, buf, 1 << 17, &n, err, sizeof err) ==
                   OMS_OK,
               "does not encode: %s", err);
    FUZZ_CHECK(oms_event_decode(g_ev, buf, n, &back, err, sizeof err) == OMS_OK,
               "its Confluent record does not decode: %s", err);
    FUZZ_CHECK(same_event(ev, &back), "the Confluent round trip changed the event");
    oms_event_clear(&back);
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!g_ev)
        LLVMFuzzerInitialize(NULL, NULL);
    if (size < 1)
        return 0;
    uint8_t mode = data[0];
    size_t len;
    uint8_t *rec;
    if (mode <= NW) {
        uint32_t id = mode < NW ? mode : 0x7fffff01u;
        len = OMS_CONFLUENT_HEADER_LEN + size - 1;
        rec = malloc(len);
        rec[0] = 0;
        rec[1] = (uint8_t)(id >> 24);
        rec[2] = (uint8_t)(id >> 16);
        rec[3] = (uint8_t)(id >> 8);
        rec[4] = (uint8_t)id;
        memcpy(rec + OMS_CONFLUENT_HEADER_LEN, data + 1, size - 1);
    } else {
        len = size - 1;
        rec = malloc(len ? len : 1);
        memcpy(rec, data + 1, len);
    }
    oms_event ev;
    char err[512] = "";
    if (mode > NW) {
        oms_event fast, slow;
        if (oms_ev_json_record_fast(rec, len, &fast)) {
            int src = oms_ev_json_record_generic(rec, len, &slow, err, sizeof err);
            FUZZ_CHECK(src == OMS_OK, "fast reader accepted what jansson refuses: %s", err);
            FUZZ_CHECK(same_event(&fast, &slow) && (!fast.data_json) == (!slow.data_json) &&
                           (!fast.data_json || strcmp(fast.data_json, slow.data_json) == 0),
                       "fast and jansson JSON records differ");
            oms_event_clear(&slow);
            oms_event_clear(&fast);
        }
    }
    int rc = oms_event_decode(g_ev, rec, len, &ev, err, sizeof err);
    FUZZ_CHECK(rc != OMS_EAGAIN, "EAGAIN without a registry outage: %s", err);
    if (mode == NW)
        FUZZ_CHECK(rc == OMS_ENOTFOUND, "an unknown id gave %d: %s", rc, err);
    if (rc == OMS_OK)
        FUZZ_CHECK(oms_event_wire_format(rec, len) != OMS_WIRE_SOE || len >= 10,
                   "short single-object record accepted");
    if (mode < NW && g_type[mode] != OMS_EV__COUNT && mode != 2 && mode != 3) {
        /* the same body in single-object encoding */
        size_t slen = OMS_AVRO_SOE_HEADER_LEN + size - 1;
        uint8_t *soe = malloc(slen);
        oms_avro_soe_header(
            oms_avro_schema_fingerprint(oms_events_writer_schema(g_ev, g_type[mode])), soe);
        memcpy(soe + OMS_AVRO_SOE_HEADER_LEN, data + 1, size - 1);
        oms_event ref;
        char rerr[512] = "";
        int rrc = oms_event_decode(g_ev, soe, slen, &ref, rerr, sizeof rerr);
        FUZZ_CHECK(rc == rrc, "confluent rc %d (%s), single-object rc %d (%s)", rc, err, rrc,
                   rerr);
        if (rc != OMS_OK) {
            char want[600];
            snprintf(want, sizeof want, "schema id %u: %s", mode, rerr);
            FUZZ_CHECK(strcmp(err, want) == 0, "messages differ:\n  %s\n  %s", err, want);
        } else {
            FUZZ_CHECK(same_event(&ev, &ref), "confluent and single-object events differ");
            oms_event_clear(&ref);
        }
        free(soe);
    }
    if (rc == OMS_OK) {
        check_event(&ev, mode);
        oms_event_clear(&ev);
    }
    free(rec);
    return 0;
}
