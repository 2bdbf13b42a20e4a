/* test_gateway.c — pkg/gateway: the socket-free WebSocket protocol logic.
 * Visibility by role and subscription (DESIGN §3.2), client events and
 * their answers (§3.1), refresh_token, the rate limiter and its 1008 close,
 * the `connected` data and its positions (§3.5), frame text, the bounded
 * out queue, and a mutation fuzz loop over oms_session_on_text. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "auth/auth.h"
#include "common/oms.h"
#include "events/events.h"
#include "gateway/gateway.h"

#define NOW_S INT64_C(1800000000) /* 2027-01-15T08:00:00Z */
#define NOW_MS (NOW_S * 1000 + 123)
#define NOW_ISO "2027-01-15T08:00:00.123Z"
#define SECRET "gateway-test-secret-0123456789-abcdefgh"
#define OTHER_SECRET "another-gateway-secret-0123456789-abcd"
#define OWN_ID INT64_C(42)
#define OTHER_ID INT64_C(7)

/* ---- fixture ------------------------------------------------------------- */

/* The env's positions callback: per topic kind a fixed array, so a test can
 * tell which kind was asked for. */
typedef struct fake_positions {
    int calls[OMS_TOPIC__COUNT];
    bool return_null;
} fake_positions;

static const char *const positions_json[OMS_TOPIC__COUNT] = {
    [OMS_TOPIC_ORDERS] = "[\"t:0:5\",\"t:1:-1\"]",
    [OMS_TOPIC_INVENTORY] = "[\"inv:0:7\"]",
    [OMS_TOPIC_NOTIFICATIONS] = "[\"note:0:9\",\"note:1:3\",\"note:2:-1\"]",
};

static json_t *fake_positions_cb(void *ud, oms_topic_kind kind)
{
    fake_positions *fp = ud;
    if ((unsigned)kind >= OMS_TOPIC__COUNT)
        return NULL;
    fp->calls[kind]++;
    if (fp->return_null)
        return NULL;
    return json_loads(positions_json[kind], 0, NULL);
}

typedef struct fixture {
    oms_auth *auth;
    fake_positions fp;
    oms_gw_env env;
    oms_session s;
    oms_gw_out out;
} fixture;

static oms_principal principal(int64_t uid, oms_role role)
{
    oms_principal p;
    memset(&p, 0, sizeof p);
    p.user_id = uid;
    p.role = role;
    p.exp = NOW_S + 60;
    if (uid)
        snprintf(p.sub, sizeof p.sub, "%" PRId64, uid);
    return p;
}

static void fx_session(fixture *fx, int64_t uid, oms_role role, int per_min)
{
    oms_principal p = principal(uid, role);
    oms_session_init(&fx->s, &p, per_min, fx->env.now_ms);
}

static int setup(void **state)
{
    fixture *fx = calloc(1, sizeof *fx);
    if (!fx)
        return -1;
    char err[256] = "";
    oms_auth_opts o = {
        .algorithm = "HS256",
        .key = (const unsigned char *)SECRET,
        .key_len = strlen(SECRET),
        .leeway_s = 0,
    };
    fx->auth = oms_auth_new(&o, err, sizeof err);
    if (!fx->auth) {
        fprintf(stderr, "oms_auth_new: %s\n", err);
        free(fx);
        return -1;
    }
    fx->env.auth = fx->auth;
    fx->env.positions = fake_positions_cb;
    fx->env.ud = &fx->fp;
    fx->env.now_ms = NOW_MS;
    oms_gw_out_clear(&fx->out);
    fx_session(fx, OWN_ID, OMS_ROLE_CUSTOMER, 100);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture *fx = *state;
    oms_gw_out_clear(&fx->out);
    oms_auth_free(fx->auth);
    free(fx);
    return 0;
}

/* ---- helpers ------------------------------------------------------------- */

static char *mint(int64_t uid, oms_role role, int64_t ttl_s, int64_t now_s)
{
    char *t = oms_auth_mint_hs256((const unsigned char *)SECRET, strlen(SECRET), uid, role, ttl_s,
                                  now_s, NULL, NULL);
    assert_non_null(t);
    return t;
}

/* Send one text frame (out cleared first). */
static void send_len(fixture *fx, const char *text, size_t len)
{
    oms_gw_out_clear(&fx->out);
    oms_session_on_text(&fx->s, &fx->env, text, len, &fx->out);
}

static void send_text(fixture *fx, const char *text)
{
    send_len(fx, text, strlen(text));
}

/* {"event": event, "data": data} (data taken; may be NULL: no data member). */
static void send_event(fixture *fx, const char *event, json_t *data)
{
    json_t *f = json_pack("{s:s}", "event", event);
    assert_non_null(f);
    if (data)
        json_object_set_new(f, "data", data);
    char *text = json_dumps(f, JSON_COMPACT);
    json_decref(f);
    assert_non_null(text);
    send_text(fx, text);
    free(text);
}

static char *dump(const json_t *j)
{
    return j ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY) : strdup("(null)");
}

/* The data of the single answer, which must be `event`. */
static const json_t *answer_of(const fixture *fx, const char *event)
{
    const oms_gw_out *o = &fx->out;
    if (o->n != 1 || o->answer != 0) {
        for (int i = 0; i < o->n; i++) {
            char *d = dump(o->msgs[i].data);
            print_error("  msgs[%d] = %s %s\n", i, o->msgs[i].event, d);
            free(d);
        }
        fail_msg("expected one answer (%s), got n=%d answer=%d", event, o->n, o->answer);
    }
    assert_non_null(o->msgs[0].event);
    if (strcmp(o->msgs[0].event, event) != 0) {
        char *d = dump(o->msgs[0].data);
        print_error("  data = %s\n", d);
        free(d);
    }
    assert_string_equal(o->msgs[0].event, event);
    assert_non_null(o->msgs[0].data);
    return o->msgs[0].data;
}

static const char *str_member(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    if (!json_is_string(v)) {
        char *d = dump(o);
        print_error("  object = %s\n", d);
        free(d);
        fail_msg("member \"%s\" is not a string", key);
    }
    return json_string_value(v);
}

static void expect_error(const fixture *fx, const char *code)
{
    const json_t *d = answer_of(fx, "error");
    assert_string_equal(str_member(d, "code"), code);
    const char *m = str_member(d, "message");
    assert_true(strlen(m) > 0);
}

static void expect_json(const json_t *got, const char *want_text)
{
    json_t *want = json_loads(want_text, JSON_DECODE_ANY, NULL);
    assert_non_null(want);
    if (!json_equal(got, want)) {
        char *g = dump(got);
        print_error("  got  %s\n  want %s\n", g, want_text);
        free(g);
        json_decref(want);
        fail_msg("JSON differs");
    }
    json_decref(want);
}

static const char *role_str(oms_role r)
{
    return oms_role_name(r);
}

/* ---- 1. visibility matrix -------------------------------------------------- */

/* DESIGN §3.2, written independently of the module. */
static bool expected_wants(oms_role role, int64_t own, unsigned subs, oms_event_type t,
                           int64_t ev_uid)
{
    if (role == OMS_ROLE_SERVICE)
        return false;
    bool staff = role == OMS_ROLE_STAFF || role == OMS_ROLE_ADMIN;
    switch (t) {
    case OMS_EV_ORDER_CREATED:
    case OMS_EV_ORDER_STATUS_CHANGED:
        if (!(subs & OMS_SUB_ORDERS))
            return false;
        return staff || (own > 0 && ev_uid == own);
    case OMS_EV_INVENTORY_CHANGED:
        return staff && (subs & OMS_SUB_INVENTORY);
    case OMS_EV_USER_NOTIFICATION:
        return own > 0 && ev_uid == own;
    case OMS_EV_SYSTEM_NOTIFICATION:
        return true;
    default:
        return false;
    }
}

static void test_wants_matrix(void **state)
{
    (void)state;
    static const int64_t ev_uids[] = {OWN_ID, OTHER_ID, 0};
    int checked = 0;
    for (int r = 0; r < OMS_ROLE__COUNT; r++) {
        for (unsigned subs = 0; subs <= (OMS_SUB_ORDERS | OMS_SUB_INVENTORY); subs++) {
            oms_session s;
            oms_principal p = principal(r == OMS_ROLE_SERVICE ? 0 : OWN_ID, (oms_role)r);
            oms_session_init(&s, &p, 100, NOW_MS);
            s.subs = subs; /* forced, even where subscribing would be refused */
            for (int t = 0; t < OMS_EV__COUNT; t++) {
                for (size_t u = 0; u < OMS_ARRAY_LEN(ev_uids); u++) {
                    bool want = expected_wants((oms_role)r, p.user_id, subs, (oms_event_type)t,
                                               ev_uids[u]);
                    bool got = oms_session_wants(&s, (oms_event_type)t, ev_uids[u]);
                    if (got != want)
                        fail_msg("wants(role=%s subs=%u type=%s event userId=%" PRId64
                                 "): got %d, want %d",
                                 role_str((oms_role)r), subs,
                                 oms_event_type_name((oms_event_type)t), ev_uids[u], got, want);
                    checked++;
                }
            }
            /* a type past the enum is never delivered */
            assert_false(oms_session_wants(&s, OMS_EV__COUNT, OWN_ID));
        }
    }
    assert_int_equal(checked, OMS_ROLE__COUNT * 4 * OMS_EV__COUNT * 3);
}

static void test_wants_spot_checks(void **state)
{
    (void)state;
    oms_session c, st, ad, sv;
    oms_principal pc = principal(OWN_ID, OMS_ROLE_CUSTOMER);
    oms_principal ps = principal(OWN_ID, OMS_ROLE_STAFF);
    oms_principal pa = principal(OWN_ID, OMS_ROLE_ADMIN);
    oms_principal pv = principal(0, OMS_ROLE_SERVICE);
    oms_session_init(&c, &pc, 100, NOW_MS);
    oms_session_init(&st, &ps, 100, NOW_MS);
    oms_session_init(&ad, &pa, 100, NOW_MS);
    oms_session_init(&sv, &pv, 100, NOW_MS);

    /* unsubscribed: no orders for anyone, notifications still flow */
    assert_false(oms_session_wants(&c, OMS_EV_ORDER_CREATED, OWN_ID));
    assert_false(oms_session_wants(&st, OMS_EV_ORDER_STATUS_CHANGED, OTHER_ID));
    assert_false(oms_session_wants(&st, OMS_EV_INVENTORY_CHANGED, 0));
    assert_true(oms_session_wants(&c, OMS_EV_USER_NOTIFICATION, OWN_ID));
    assert_true(oms_session_wants(&c, OMS_EV_SYSTEM_NOTIFICATION, 0));

    c.subs = st.subs = ad.subs = sv.subs = OMS_SUB_ORDERS | OMS_SUB_INVENTORY;
    /* customer: own orders only, never inventory (even with the bit forced) */
    assert_true(oms_session_wants(&c, OMS_EV_ORDER_CREATED, OWN_ID));
    assert_true(oms_session_wants(&c, OMS_EV_ORDER_STATUS_CHANGED, OWN_ID));
    assert_false(oms_session_wants(&c, OMS_EV_ORDER_CREATED, OTHER_ID));
    assert_false(oms_session_wants(&c, OMS_EV_ORDER_STATUS_CHANGED, OTHER_ID));
    assert_false(oms_session_wants(&c, OMS_EV_ORDER_CREATED, 0));
    assert_false(oms_session_wants(&c, OMS_EV_INVENTORY_CHANGED, 0));
    assert_false(oms_session_wants(&c, OMS_EV_INVENTORY_CHANGED, OWN_ID));
    assert_false(oms_session_wants(&c, OMS_EV_USER_NOTIFICATION, OTHER_ID));
    assert_false(oms_session_wants(&c, OMS_EV_USER_NOTIFICATION, 0));
    /* staff and admin: all orders, inventory, own notifications */
    assert_true(oms_session_wants(&st, OMS_EV_ORDER_CREATED, OTHER_ID));
    assert_true(oms_session_wants(&ad, OMS_EV_ORDER_STATUS_CHANGED, OTHER_ID));
    assert_true(oms_session_wants(&ad, OMS_EV_ORDER_CREATED, 0));
    assert_true(oms_session_wants(&st, OMS_EV_INVENTORY_CHANGED, 0));
    assert_true(oms_session_wants(&ad, OMS_EV_INVENTORY_CHANGED, 0));
    assert_false(oms_session_wants(&st, OMS_EV_USER_NOTIFICATION, OTHER_ID));
    assert_false(oms_session_wants(&ad, OMS_EV_USER_NOTIFICATION, 0));
    assert_true(oms_session_wants(&ad, OMS_EV_SYSTEM_NOTIFICATION, 0));
    /* service: nothing at all */
    for (int t = 0; t < OMS_EV__COUNT; t++) {
        assert_false(oms_session_wants(&sv, (oms_event_type)t, 0));
        assert_false(oms_session_wants(&sv, (oms_event_type)t, OWN_ID));
    }
    /* staff with only inventory: no orders */
    st.subs = OMS_SUB_INVENTORY;
    assert_false(oms_session_wants(&st, OMS_EV_ORDER_CREATED, OTHER_ID));
    assert_true(oms_session_wants(&st, OMS_EV_INVENTORY_CHANGED, 0));
}

/* An event without a user (userId 0) never matches a user's notification or
 * a customer's orders, even for a (malformed) principal with user id 0. */
static void test_wants_user_id_zero(void **state)
{
    (void)state;
    for (int r = 0; r < OMS_ROLE__COUNT; r++) {
        oms_session s;
        oms_principal p = principal(0, (oms_role)r);
        oms_session_init(&s, &p, 100, NOW_MS);
        s.subs = OMS_SUB_ORDERS | OMS_SUB_INVENTORY;
        if (oms_session_wants(&s, OMS_EV_USER_NOTIFICATION, 0))
            fail_msg("role %s with user id 0 got a user notification without userId",
                     role_str((oms_role)r));
        if (r == OMS_ROLE_CUSTOMER) {
            assert_false(oms_session_wants(&s, OMS_EV_ORDER_CREATED, 0));
            assert_false(oms_session_wants(&s, OMS_EV_ORDER_STATUS_CHANGED, 0));
        }
    }
}

/* ---- 2. client events ---------------------------------------------------- */

static void test_subscribe_orders_customer(void **state)
{
    fixture *fx = *state;
    send_text(fx, "{\"event\":\"subscribe_to_orders\"}");
    const json_t *d = answer_of(fx, "subscription_confirmed");
    assert_string_equal(str_member(d, "type"), "order");
    assert_string_equal(str_member(d, "message"), "Subscribed to your order updates");
    expect_json(json_object_get(d, "positions"), positions_json[OMS_TOPIC_ORDERS]);
    assert_int_equal(fx->fp.calls[OMS_TOPIC_ORDERS], 1);
    assert_int_equal(fx->fp.calls[OMS_TOPIC_INVENTORY], 0);
    assert_int_equal(fx->s.subs, OMS_SUB_ORDERS);
    assert_int_equal(fx->out.close_code, 0);
    assert_true(oms_session_wants(&fx->s, OMS_EV_ORDER_CREATED, OWN_ID));
    assert_false(oms_session_wants(&fx->s, OMS_EV_ORDER_CREATED, OTHER_ID));

    /* subscribing twice is harmless */
    send_text(fx, "{\"event\":\"subscribe_to_orders\",\"data\":{}}");
    answer_of(fx, "subscription_confirmed");
    assert_int_equal(fx->s.subs, OMS_SUB_ORDERS);
}

static void test_subscribe_orders_staff_admin(void **state)
{
    fixture *fx = *state;
    static const oms_role roles[] = {OMS_ROLE_STAFF, OMS_ROLE_ADMIN};
    for (size_t i = 0; i < OMS_ARRAY_LEN(roles); i++) {
        fx_session(fx, OWN_ID, roles[i], 100);
        send_event(fx, "subscribe_to_orders", NULL);
        const json_t *d = answer_of(fx, "subscription_confirmed");
        assert_string_equal(str_member(d, "type"), "order");
        assert_string_equal(str_member(d, "message"), "Subscribed to all order updates");
        expect_json(json_object_get(d, "positions"), positions_json[OMS_TOPIC_ORDERS]);
        assert_int_equal(fx->s.subs, OMS_SUB_ORDERS);
        assert_true(oms_session_wants(&fx->s, OMS_EV_ORDER_STATUS_CHANGED, OTHER_ID));
    }
}

static void test_subscribe_inventory_customer_forbidden(void **state)
{
    fixture *fx = *state;
    fx->s.subs = OMS_SUB_ORDERS;
    send_event(fx, "subscribe_to_inventory", NULL);
    expect_error(fx, "forbidden");
    assert_int_equal(fx->s.subs, OMS_SUB_ORDERS);
    assert_int_equal(fx->fp.calls[OMS_TOPIC_INVENTORY], 0);
    assert_false(oms_session_wants(&fx->s, OMS_EV_INVENTORY_CHANGED, 0));

    fx->s.subs = 0;
    send_event(fx, "subscribe_to_inventory", json_object());
    expect_error(fx, "forbidden");
    assert_int_equal(fx->s.subs, 0);
}

static void test_subscribe_inventory_staff_admin(void **state)
{
    fixture *fx = *state;
    static const oms_role roles[] = {OMS_ROLE_STAFF, OMS_ROLE_ADMIN};
    for (size_t i = 0; i < OMS_ARRAY_LEN(roles); i++) {
        memset(&fx->fp, 0, sizeof fx->fp);
        fx_session(fx, OWN_ID, roles[i], 100);
        send_event(fx, "subscribe_to_inventory", NULL);
        const json_t *d = answer_of(fx, "subscription_confirmed");
        assert_string_equal(str_member(d, "type"), "inventory");
        assert_string_equal(str_member(d, "message"), "Subscribed to inventory alerts");
        expect_json(json_object_get(d, "positions"), positions_json[OMS_TOPIC_INVENTORY]);
        assert_int_equal(fx->fp.calls[OMS_TOPIC_INVENTORY], 1);
        assert_int_equal(fx->s.subs, OMS_SUB_INVENTORY);
        assert_true(oms_session_wants(&fx->s, OMS_EV_INVENTORY_CHANGED, 0));
        assert_false(oms_session_wants(&fx->s, OMS_EV_ORDER_CREATED, OTHER_ID));
    }
}

static void test_subscribe_service_forbidden(void **state)
{
    fixture *fx = *state;
    fx_session(fx, 0, OMS_ROLE_SERVICE, 100);
    send_event(fx, "subscribe_to_orders", NULL);
    expect_error(fx, "forbidden");
    send_event(fx, "subscribe_to_inventory", NULL);
    expect_error(fx, "forbidden");
    assert_int_equal(fx->s.subs, 0);
    assert_int_equal(fx->fp.calls[OMS_TOPIC_ORDERS] + fx->fp.calls[OMS_TOPIC_INVENTORY], 0);
}

/* No positions callback, or one that fails: an empty array, never null. */
static void test_subscribe_positions_missing(void **state)
{
    fixture *fx = *state;
    fx->env.positions = NULL;
    send_event(fx, "subscribe_to_orders", NULL);
    expect_json(json_object_get(answer_of(fx, "subscription_confirmed"), "positions"), "[]");

    fx->env.positions = fake_positions_cb;
    fx->fp.return_null = true;
    fx_session(fx, OWN_ID, OMS_ROLE_STAFF, 100);
    send_event(fx, "subscribe_to_inventory", NULL);
    expect_json(json_object_get(answer_of(fx, "subscription_confirmed"), "positions"), "[]");
    assert_int_equal(fx->fp.calls[OMS_TOPIC_INVENTORY], 1);
}

static void test_unsubscribe(void **state)
{
    fixture *fx = *state;
    fx_session(fx, OWN_ID, OMS_ROLE_STAFF, 100);
    fx->s.subs = OMS_SUB_ORDERS | OMS_SUB_INVENTORY;

    send_text(fx, "{\"event\":\"unsubscribe\",\"data\":{\"type\":\"order\"}}");
    expect_json(answer_of(fx, "unsubscribed"), "{\"type\":\"order\"}");
    assert_int_equal(fx->s.subs, OMS_SUB_INVENTORY);
    assert_false(oms_session_wants(&fx->s, OMS_EV_ORDER_CREATED, OTHER_ID));
    assert_true(oms_session_wants(&fx->s, OMS_EV_INVENTORY_CHANGED, 0));

    /* again: idempotent */
    send_text(fx, "{\"event\":\"unsubscribe\",\"data\":{\"type\":\"order\"}}");
    expect_json(answer_of(fx, "unsubscribed"), "{\"type\":\"order\"}");
    assert_int_equal(fx->s.subs, OMS_SUB_INVENTORY);

    send_text(fx, "{\"data\":{\"type\":\"inventory\",\"extra\":1},\"event\":\"unsubscribe\"}");
    expect_json(answer_of(fx, "unsubscribed"), "{\"type\":\"inventory\"}");
    assert_int_equal(fx->s.subs, 0);
    assert_false(oms_session_wants(&fx->s, OMS_EV_INVENTORY_CHANGED, 0));
    /* notifications are not a subscription */
    assert_true(oms_session_wants(&fx->s, OMS_EV_SYSTEM_NOTIFICATION, 0));
    assert_true(oms_session_wants(&fx->s, OMS_EV_USER_NOTIFICATION, OWN_ID));
}

static void test_unsubscribe_bad_type(void **state)
{
    fixture *fx = *state;
    static const char *const frames[] = {
        "{\"event\":\"unsubscribe\"}",
        "{\"event\":\"unsubscribe\",\"data\":null}",
        "{\"event\":\"unsubscribe\",\"data\":{}}",
        "{\"event\":\"unsubscribe\",\"data\":{\"type\":\"orders\"}}",
        "{\"event\":\"unsubscribe\",\"data\":{\"type\":\"Order\"}}",
        "{\"event\":\"unsubscribe\",\"data\":{\"type\":\"\"}}",
        "{\"event\":\"unsubscribe\",\"data\":{\"type\":1}}",
        "{\"event\":\"unsubscribe\",\"data\":{\"type\":null}}",
        "{\"event\":\"unsubscribe\",\"data\":{\"type\":[\"order\"]}}",
        "{\"event\":\"unsubscribe\",\"data\":\"order\"}",
        "{\"event\":\"unsubscribe\",\"data\":[\"order\"]}",
        "{\"event\":\"unsubscribe\",\"data\":{\"kind\":\"order\"}}",
    };
    fx->s.subs = OMS_SUB_ORDERS;
    for (size_t i = 0; i < OMS_ARRAY_LEN(frames); i++) {
        send_text(fx, frames[i]);
        if (fx->out.n != 1 || strcmp(fx->out.msgs[0].event, "error") != 0)
            print_error("frame: %s\n", frames[i]);
        expect_error(fx, "bad_request");
        assert_int_equal(fx->s.subs, OMS_SUB_ORDERS);
    }
    /* on_message directly with no data at all */
    oms_gw_out_clear(&fx->out);
    oms_session_on_message(&fx->s, &fx->env, "unsubscribe", NULL, &fx->out);
    expect_error(fx, "bad_request");
    assert_int_equal(fx->s.subs, OMS_SUB_ORDERS);
}

static void test_ping(void **state)
{
    fixture *fx = *state;
    send_text(fx, "{\"event\":\"ping\"}");
    expect_json(answer_of(fx, "pong"), "{\"timestamp\":\"" NOW_ISO "\"}");

    fx->env.now_ms = INT64_C(1700000000000); /* 2023-11-14T22:13:20Z */
    send_text(fx, "{\"event\":\"ping\",\"data\":{\"anything\":[1,2,3]}}");
    assert_string_equal(str_member(answer_of(fx, "pong"), "timestamp"),
                        "2023-11-14T22:13:20.000Z");

    oms_gw_out_clear(&fx->out);
    oms_session_on_message(&fx->s, &fx->env, "ping", NULL, &fx->out);
    answer_of(fx, "pong");
}

static void test_unknown_event(void **state)
{
    fixture *fx = *state;
    send_text(fx, "{\"event\":\"dance\",\"data\":{}}");
    expect_error(fx, "unknown_event");
    const char *m = str_member(fx->out.msgs[0].data, "message");
    if (!strstr(m, "dance"))
        fail_msg("message does not name the event: %s", m);

    /* names are matched exactly */
    send_text(fx, "{\"event\":\"PING\"}");
    expect_error(fx, "unknown_event");
    send_text(fx, "{\"event\":\"ping \"}");
    expect_error(fx, "unknown_event");
    send_text(fx, "{\"event\":\"\"}");
    expect_error(fx, "unknown_event");

    /* a very long name: the message is bounded, no overflow */
    char big[4096 + 32];
    strcpy(big, "{\"event\":\"");
    size_t n = strlen(big);
    memset(big + n, 'x', 4096);
    strcpy(big + n + 4096, "\"}");
    send_text(fx, big);
    expect_error(fx, "unknown_event");
    assert_true(strlen(str_member(fx->out.msgs[0].data, "message")) < 256);
    assert_int_equal(fx->s.subs, 0);

    /* a long name of multi-byte characters: wherever the name is cut, the
     * message must stay valid UTF-8 (else json_string() fails and the error
     * goes out with data null) */
    for (size_t pad = 95; pad <= 101; pad++) {
        char name[512];
        memset(name, 'y', pad);
        strcpy(name + pad, "\xc3\xa9\xe2\x9c\x93\xf0\x9f\x98\x80\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9");
        json_t *f = json_pack("{s:s}", "event", name);
        assert_non_null(f);
        char *text = json_dumps(f, JSON_COMPACT);
        json_decref(f);
        send_text(fx, text);
        free(text);
        if (fx->out.n == 1 && !fx->out.msgs[0].data)
            fail_msg("unknown event of %zu ASCII + multi-byte chars: error sent with NULL data",
                     pad);
        expect_error(fx, "unknown_event");
    }
}

static void test_bad_frames(void **state)
{
    fixture *fx = *state;
    static const char *const frames[] = {
        "not json",
        "",
        " ",
        "[1,2]",
        "[{\"event\":\"ping\"}]",
        "\"ping\"",
        "42",
        "null",
        "true",
        "{}",
        "{\"data\":{\"type\":\"order\"}}",
        "{\"event\":5}",
        "{\"event\":null}",
        "{\"event\":true}",
        "{\"event\":[\"ping\"]}",
        "{\"event\":{\"name\":\"ping\"}}",
        "{\"event\":\"ping\"",
        "{\"event\":\"ping\"} trailing",
        "{\"event\":\"ping\"}{\"event\":\"ping\"}",
        "{\"event\":\"p\\u0000ing\"}",
        "{event:\"ping\"}",
        "{'event':'ping'}",
        "\xff\xfe{}",
        "{\"event\":\"\xc3\x28\"}",
    };
    fx->s.subs = OMS_SUB_ORDERS;
    for (size_t i = 0; i < OMS_ARRAY_LEN(frames); i++) {
        send_text(fx, frames[i]);
        if (fx->out.n != 1 || strcmp(fx->out.msgs[0].event, "error") != 0 ||
            strcmp(str_member(fx->out.msgs[0].data, "code"), "bad_request") != 0)
            print_error("frame #%zu: %s\n", i, frames[i]);
        expect_error(fx, "bad_request");
        assert_int_equal(fx->out.close_code, 0);
        assert_int_equal(fx->s.subs, OMS_SUB_ORDERS);
    }
    /* a valid frame followed by junk inside the given length */
    static const char with_nul[] = "{\"event\":\"ping\"}\0junk";
    send_len(fx, with_nul, sizeof with_nul - 1);
    expect_error(fx, "bad_request");
    /* NULL text */
    send_len(fx, NULL, 0);
    expect_error(fx, "bad_request");

    /* the connection is still usable */
    send_text(fx, "{\"event\":\"ping\"}");
    answer_of(fx, "pong");
    send_text(fx, "{\"event\":\"unsubscribe\",\"data\":{\"type\":\"order\"}}");
    answer_of(fx, "unsubscribed");
    assert_int_equal(fx->s.subs, 0);
    /* a valid frame given by length, not NUL-terminated at len */
    static const char prefix[] = "{\"event\":\"ping\"}GARBAGE";
    send_len(fx, prefix, strlen("{\"event\":\"ping\"}"));
    answer_of(fx, "pong");
}

static void test_resume(void **state)
{
    fixture *fx = *state;
    /* the session hands the positions to the server, which answers */
    send_text(fx, "{\"event\":\"resume\",\"data\":{\"since\":[\"t:0:1\",\"t:1:5\"]}}");
    assert_true(fx->out.resume);
    assert_int_equal(fx->out.n, 0);
    assert_true(json_is_array(fx->out.resume_since));
    assert_int_equal(json_array_size(fx->out.resume_since), 2);
    assert_string_equal(json_string_value(json_array_get(fx->out.resume_since, 1)), "t:1:5");

    send_text(fx, "{\"event\":\"resume\"}");
    assert_true(fx->out.resume);
    assert_null(fx->out.resume_since);
}

/* ---- 3. refresh_token ---------------------------------------------------- */

static void send_refresh(fixture *fx, const char *token)
{
    send_event(fx, "refresh_token", json_pack("{s:s}", "token", token));
}

static void test_refresh_token_ok(void **state)
{
    fixture *fx = *state;
    for (int r = 0; r < OMS_ROLE__COUNT; r++) {
        int64_t uid = r == OMS_ROLE_SERVICE ? 0 : OWN_ID;
        fx_session(fx, uid, (oms_role)r, 100);
        fx->s.subs = r == OMS_ROLE_CUSTOMER || r == OMS_ROLE_SERVICE ? 0 : OMS_SUB_INVENTORY;
        unsigned subs = fx->s.subs;
        assert_int_equal(fx->s.who.exp, NOW_S + 60);
        char *tok = mint(uid, (oms_role)r, 7200, NOW_S);
        send_refresh(fx, tok);
        free(tok);
        const json_t *d = answer_of(fx, "token_refreshed");
        assert_string_equal(str_member(d, "expiresAt"), "2027-01-15T10:00:00.000Z");
        assert_int_equal(fx->s.who.exp, NOW_S + 7200);
        assert_true(fx->out.exp_changed);
        assert_int_equal(fx->s.who.user_id, uid);
        assert_int_equal(fx->s.who.role, r);
        assert_int_equal(fx->s.subs, subs);
        assert_int_equal(fx->out.close_code, 0);
    }
}

static void test_refresh_token_other_user_or_role(void **state)
{
    fixture *fx = *state;
    struct {
        int64_t uid;
        oms_role role;
    } cases[] = {
        {OTHER_ID, OMS_ROLE_CUSTOMER}, /* another user */
        {OWN_ID, OMS_ROLE_ADMIN},      /* privilege escalation */
        {OWN_ID, OMS_ROLE_STAFF},
        {0, OMS_ROLE_SERVICE},
    };
    for (size_t i = 0; i < OMS_ARRAY_LEN(cases); i++) {
        char *tok = mint(cases[i].uid, cases[i].role, 7200, NOW_S);
        send_refresh(fx, tok);
        free(tok);
        expect_error(fx, "forbidden");
        assert_false(fx->out.exp_changed);
        assert_int_equal(fx->s.who.exp, NOW_S + 60);
        assert_int_equal(fx->s.who.user_id, OWN_ID);
        assert_int_equal(fx->s.who.role, OMS_ROLE_CUSTOMER);
    }
    /* an admin may not become a customer of the same id either */
    fx_session(fx, OWN_ID, OMS_ROLE_ADMIN, 100);
    char *tok = mint(OWN_ID, OMS_ROLE_CUSTOMER, 7200, NOW_S);
    send_refresh(fx, tok);
    free(tok);
    expect_error(fx, "forbidden");
    assert_int_equal(fx->s.who.role, OMS_ROLE_ADMIN);
}

static void test_refresh_token_expired(void **state)
{
    fixture *fx = *state;
    char *tok = mint(OWN_ID, OMS_ROLE_CUSTOMER, 3600, NOW_S - 7200);
    send_refresh(fx, tok);
    free(tok);
    expect_error(fx, "token_expired");
    const char *m = str_member(fx->out.msgs[0].data, "message");
    if (!strstr(m, "expired"))
        fail_msg("message: %s", m);
    assert_false(fx->out.exp_changed);
    assert_int_equal(fx->s.who.exp, NOW_S + 60);
    assert_int_equal(fx->out.close_code, 0);

    /* valid now, checked against env.now_ms: expired one second later */
    tok = mint(OWN_ID, OMS_ROLE_CUSTOMER, 10, NOW_S);
    fx->env.now_ms = (NOW_S + 11) * 1000;
    send_refresh(fx, tok);
    expect_error(fx, "token_expired");
    fx->env.now_ms = (NOW_S + 10) * 1000;
    send_refresh(fx, tok);
    free(tok);
    answer_of(fx, "token_refreshed");
    assert_int_equal(fx->s.who.exp, NOW_S + 10);
}

static void test_refresh_token_garbage(void **state)
{
    fixture *fx = *state;
    static const char *const toks[] = {"garbage", "a.b.c", "", "...", "eyJ.eyJ.x"};
    for (size_t i = 0; i < OMS_ARRAY_LEN(toks); i++) {
        send_refresh(fx, toks[i]);
        expect_error(fx, "bad_request");
        assert_false(fx->out.exp_changed);
    }
    /* signed with another secret */
    char *tok = oms_auth_mint_hs256((const unsigned char *)OTHER_SECRET, strlen(OTHER_SECRET),
                                    OWN_ID, OMS_ROLE_CUSTOMER, 7200, NOW_S, NULL, NULL);
    assert_non_null(tok);
    send_refresh(fx, tok);
    free(tok);
    expect_error(fx, "bad_request");
    /* a valid token with a tampered last byte */
    tok = mint(OWN_ID, OMS_ROLE_CUSTOMER, 7200, NOW_S);
    size_t n = strlen(tok);
    tok[n - 2] = tok[n - 2] == 'A' ? 'B' : 'A';
    send_refresh(fx, tok);
    free(tok);
    expect_error(fx, "bad_request");
    assert_int_equal(fx->s.who.exp, NOW_S + 60);
}

static void test_refresh_token_missing(void **state)
{
    fixture *fx = *state;
    static const char *const frames[] = {
        "{\"event\":\"refresh_token\"}",
        "{\"event\":\"refresh_token\",\"data\":null}",
        "{\"event\":\"refresh_token\",\"data\":{}}",
        "{\"event\":\"refresh_token\",\"data\":{\"token\":null}}",
        "{\"event\":\"refresh_token\",\"data\":{\"token\":123}}",
        "{\"event\":\"refresh_token\",\"data\":{\"token\":[\"x\"]}}",
        "{\"event\":\"refresh_token\",\"data\":\"eyJ.eyJ.x\"}",
    };
    for (size_t i = 0; i < OMS_ARRAY_LEN(frames); i++) {
        send_text(fx, frames[i]);
        expect_error(fx, "bad_request");
        assert_false(fx->out.exp_changed);
    }
    oms_gw_out_clear(&fx->out);
    oms_session_on_message(&fx->s, &fx->env, "refresh_token", NULL, &fx->out);
    expect_error(fx, "bad_request");
    assert_int_equal(fx->s.who.exp, NOW_S + 60);
}

/* A correctly signed token whose exp is far in the future (e.g. a
 * "never expires" service token): expiresAt must be formatted without
 * signed overflow (exp * 1000). */
static void test_refresh_token_far_future_exp(void **state)
{
    fixture *fx = *state;
    static const int64_t ttls[] = {INT64_C(10000000000000000), /* exp*1000 > INT64_MAX */
                                   INT64_C(9000000000000000000) - NOW_S,
                                   INT64_C(300000000000)}; /* past year 9999 */
    for (size_t i = 0; i < OMS_ARRAY_LEN(ttls); i++) {
        char *tok = mint(OWN_ID, OMS_ROLE_CUSTOMER, ttls[i], NOW_S);
        send_refresh(fx, tok);
        free(tok);
        const json_t *d = answer_of(fx, "token_refreshed");
        const char *at = str_member(d, "expiresAt");
        /* all three are past year 9999: shown as the last representable second */
        if (strncmp(at, "9999-12-31T23:59:59", 19) != 0)
            fail_msg("expiresAt for exp %" PRId64 ": %s", NOW_S + ttls[i], at);
        assert_int_equal(fx->s.who.exp, NOW_S + ttls[i]);
        assert_true(fx->out.exp_changed);
    }
}

/* ---- 4. rate limit ------------------------------------------------------- */

static int send_pings(fixture *fx, int n)
{
    int passed = 0;
    for (int i = 0; i < n; i++) {
        send_text(fx, "{\"event\":\"ping\"}");
        assert_int_equal(fx->out.n, 1);
        if (strcmp(fx->out.msgs[0].event, "pong") == 0)
            passed++;
    }
    return passed;
}

static void expect_rate_limited(const fixture *fx)
{
    expect_error(fx, "rate_limited");
    const char *m = str_member(fx->out.msgs[0].data, "message");
    if (!strstr(m, "100"))
        fail_msg("message does not give the limit: %s", m);
}

static void test_rate_limit_burst_and_refill(void **state)
{
    fixture *fx = *state;
    for (int i = 0; i < 100; i++) {
        send_text(fx, "{\"event\":\"ping\"}");
        if (fx->out.n != 1 || strcmp(fx->out.msgs[0].event, "pong") != 0)
            fail_msg("message %d of 100 was not admitted", i + 1);
    }
    send_text(fx, "{\"event\":\"ping\"}");
    expect_rate_limited(fx);
    assert_int_equal(fx->out.close_code, 0);
    assert_int_equal(fx->s.violations, 1);

    /* a minute later the bucket is full again (and no fuller) */
    fx->env.now_ms += 60000;
    assert_int_equal(send_pings(fx, 100), 100);
    send_text(fx, "{\"event\":\"ping\"}");
    expect_rate_limited(fx);
    assert_int_equal(fx->out.close_code, 0);

    /* a long pause does not bank more than a bucketful */
    fx->env.now_ms += 3600 * 1000;
    assert_int_equal(send_pings(fx, 150), 100);
}

static void test_rate_limit_partial_refill(void **state)
{
    fixture *fx = *state;
    assert_int_equal(send_pings(fx, 100), 100);
    send_text(fx, "{\"event\":\"ping\"}");
    expect_rate_limited(fx);
    /* 100/min = one per 600 ms */
    fx->env.now_ms += 300;
    send_text(fx, "{\"event\":\"ping\"}");
    expect_rate_limited(fx);
    fx->env.now_ms += 301;
    send_text(fx, "{\"event\":\"ping\"}");
    answer_of(fx, "pong");
    send_text(fx, "{\"event\":\"ping\"}");
    expect_rate_limited(fx);
}

/* Every message counts, bad ones included, and a limited message is not
 * parsed (rate_limited, not bad_request). */
static void test_rate_limit_counts_bad_frames(void **state)
{
    fixture *fx = *state;
    for (int i = 0; i < 100; i++) {
        send_text(fx, "garbage");
        expect_error(fx, "bad_request");
    }
    send_text(fx, "garbage");
    expect_rate_limited(fx);
    send_text(fx, "{\"event\":\"subscribe_to_orders\"}");
    expect_rate_limited(fx);
    assert_int_equal(fx->s.subs, 0);
}

/* Keep flooding at a frozen clock: rate_limited errors, then a 1008 close.
 * Returns how many limited messages it took (the last one closes). */
static int flood_until_close(fixture *fx, int max)
{
    for (int i = 1; i <= max; i++) {
        send_text(fx, "{\"event\":\"ping\"}");
        expect_rate_limited(fx);
        if (fx->out.close_code != 0) {
            assert_int_equal(fx->out.close_code, OMS_CLOSE_POLICY);
            assert_true(strlen(fx->out.close_reason) > 0);
            assert_true(strlen(fx->out.close_reason) < sizeof fx->out.close_reason);
            return i;
        }
    }
    fail_msg("no close after %d rate-limited messages", max);
    return -1;
}

static void test_rate_limit_flood_closes(void **state)
{
    fixture *fx = *state;
    assert_int_equal(send_pings(fx, 100), 100);
    int n = flood_until_close(fx, 1000);
    print_message("closed 1008 after %d rate-limited messages (reason \"%s\")\n", n,
                  fx->out.close_reason);
    /* a burst is tolerated: not closed on the first rejection */
    assert_true(n > 1);
}

static void test_rate_limit_pass_resets_violations(void **state)
{
    fixture *fx = *state;
    assert_int_equal(send_pings(fx, 100), 100);
    int n = flood_until_close(fx, 1000);

    fx_session(fx, OWN_ID, OMS_ROLE_CUSTOMER, 100);
    assert_int_equal(send_pings(fx, 100), 100);
    for (int i = 0; i < n - 1; i++) {
        send_text(fx, "{\"event\":\"ping\"}");
        expect_rate_limited(fx);
        assert_int_equal(fx->out.close_code, 0);
    }
    assert_int_equal(fx->s.violations, n - 1);
    fx->env.now_ms += 601; /* one token */
    send_text(fx, "{\"event\":\"ping\"}");
    answer_of(fx, "pong");
    assert_int_equal(fx->s.violations, 0);
    /* the count starts over: n - 1 more are tolerated, the n-th closes */
    for (int i = 0; i < n - 1; i++) {
        send_text(fx, "{\"event\":\"ping\"}");
        expect_rate_limited(fx);
        if (fx->out.close_code != 0)
            fail_msg("closed after %d violations following a passing message (expected %d)",
                     i + 1, n);
    }
    assert_int_equal(flood_until_close(fx, 1), 1);
}

static void test_rate_limit_clock_backwards(void **state)
{
    fixture *fx = *state;
    assert_int_equal(send_pings(fx, 100), 100);
    fx->env.now_ms -= 10000;
    send_text(fx, "{\"event\":\"ping\"}");
    expect_rate_limited(fx);
    fx->env.now_ms = NOW_MS + 601;
    send_text(fx, "{\"event\":\"ping\"}");
    answer_of(fx, "pong");
    assert_true(fx->s.tokens >= 0.0 && fx->s.tokens <= fx->s.per_min);
}

static void test_session_init(void **state)
{
    (void)state;
    oms_principal p = principal(OWN_ID, OMS_ROLE_STAFF);
    oms_session s;
    oms_session_init(&s, &p, 0, NOW_MS);
    assert_int_equal(s.per_min, 100);
    assert_true(s.tokens == 100.0);
    assert_int_equal(s.subs, 0);
    assert_int_equal(s.violations, 0);
    assert_int_equal(s.refill_ms, NOW_MS);
    assert_int_equal(s.who.user_id, OWN_ID);
    assert_int_equal(s.who.role, OMS_ROLE_STAFF);
    assert_string_equal(s.who.sub, "42");
    oms_session_init(&s, &p, -5, NOW_MS);
    assert_int_equal(s.per_min, 100);
    oms_session_init(&s, &p, 7, NOW_MS);
    assert_int_equal(s.per_min, 7);
    assert_true(s.tokens == 7.0);
}

/* A small limit: still a tolerance before the close. */
static void test_rate_limit_small(void **state)
{
    fixture *fx = *state;
    fx_session(fx, OWN_ID, OMS_ROLE_CUSTOMER, 3);
    assert_int_equal(send_pings(fx, 3), 3);
    int closed_at = 0;
    for (int i = 1; i <= 100 && !closed_at; i++) {
        send_text(fx, "{\"event\":\"ping\"}");
        expect_error(fx, "rate_limited");
        if (fx->out.close_code)
            closed_at = i;
    }
    assert_true(closed_at > 1);
    assert_int_equal(fx->out.close_code, OMS_CLOSE_POLICY);
}

/* ---- 5. connected -------------------------------------------------------- */

static void test_connected(void **state)
{
    fixture *fx = *state;
    for (int r = 0; r < OMS_ROLE__COUNT; r++) {
        memset(&fx->fp, 0, sizeof fx->fp);
        int64_t uid = r == OMS_ROLE_SERVICE ? 0 : OWN_ID + r;
        fx_session(fx, uid, (oms_role)r, 100);
        json_t *d = oms_gw_connected(&fx->s, &fx->env);
        assert_non_null(d);
        if (uid)
            assert_int_equal(json_integer_value(json_object_get(d, "userId")), uid);
        else
            assert_true(json_is_null(json_object_get(d, "userId")));
        assert_true(json_is_integer(json_object_get(d, "userId")) || uid == 0);
        assert_string_equal(str_member(d, "role"), oms_role_name((oms_role)r));
        assert_string_equal(str_member(d, "timestamp"), NOW_ISO);
        expect_json(json_object_get(d, "positions"), positions_json[OMS_TOPIC_NOTIFICATIONS]);
        assert_int_equal(fx->fp.calls[OMS_TOPIC_NOTIFICATIONS], 1);
        assert_int_equal(fx->fp.calls[OMS_TOPIC_ORDERS], 0);
        assert_int_equal(json_object_size(d), 4);
        json_decref(d);
    }
    static const char *const names[] = {"customer", "staff", "admin", "service"};
    for (int r = 0; r < OMS_ROLE__COUNT; r++)
        assert_string_equal(oms_role_name((oms_role)r), names[r]);
}

static void test_connected_no_positions(void **state)
{
    fixture *fx = *state;
    fx->env.positions = NULL;
    json_t *d = oms_gw_connected(&fx->s, &fx->env);
    assert_true(json_is_array(json_object_get(d, "positions")));
    assert_int_equal(json_array_size(json_object_get(d, "positions")), 0);
    assert_int_equal(json_integer_value(json_object_get(d, "userId")), OWN_ID);
    assert_string_equal(str_member(d, "role"), "customer");
    json_decref(d);

    fx->env.positions = fake_positions_cb;
    fx->fp.return_null = true;
    d = oms_gw_connected(&fx->s, &fx->env);
    expect_json(json_object_get(d, "positions"), "[]");
    json_decref(d);
}

/* ---- 6. frames and the out queue ----------------------------------------- */

static void check_frame(const char *event, const json_t *data)
{
    size_t len = 0;
    char *text = oms_gw_frame_text(event, data, &len);
    assert_non_null(text);
    assert_int_equal(len, strlen(text));
    json_error_t jerr;
    json_t *f = json_loadb(text, len, 0, &jerr);
    if (!f)
        fail_msg("frame is not JSON (%s): %s", jerr.text, text);
    assert_true(json_is_object(f));
    assert_int_equal(json_object_size(f), 2);
    assert_string_equal(str_member(f, "event"), event);
    const json_t *got = json_object_get(f, "data");
    assert_non_null(got);
    if (data) {
        if (!json_equal(got, data))
            fail_msg("data differs: %s", text);
    } else {
        assert_true(json_is_null(got));
    }
    /* compact: no whitespace outside strings for these samples */
    assert_null(strstr(text, "\": "));
    assert_null(strstr(text, ", \""));
    json_decref(f);
    free(text);
}

static void test_frame_text(void **state)
{
    (void)state;
    json_t *d = json_pack("{s:i,s:s,s:[i,s,n],s:{s:b}}", "a", 1, "s",
                          "quote \" backslash \\ newline \n tab \t unicode \xc3\xa9 \xe2\x9c\x93",
                          "arr", 1, "x", "o", "k", 1);
    assert_non_null(d);
    check_frame("order_update", d);
    json_decref(d);

    check_frame("ping", NULL);
    size_t len = 0;
    char *text = oms_gw_frame_text("pong", NULL, &len);
    assert_string_equal(text, "{\"event\":\"pong\",\"data\":null}");
    assert_int_equal(len, strlen(text));
    free(text);

    /* len may be NULL */
    json_t *one = json_integer(1);
    text = oms_gw_frame_text("x", one, NULL);
    assert_string_equal(text, "{\"event\":\"x\",\"data\":1}");
    free(text);
    check_frame("x", one);
    json_decref(one);

    json_t *arr = json_pack("[s,s]", "t:0:5", "t:1:-1");
    check_frame("positions", arr);
    json_decref(arr);
    json_t *s = json_string("just a string");
    check_frame("s", s);
    json_decref(s);
    json_t *empty = json_object();
    check_frame("e", empty);
    json_decref(empty);
    /* the caller's data is not consumed */
    json_t *keep = json_pack("{s:s}", "k", "v");
    text = oms_gw_frame_text("k", keep, NULL);
    free(text);
    assert_int_equal(keep->refcount, 1);
    json_decref(keep);

    /* no event name: no frame */
    text = oms_gw_frame_text(NULL, NULL, &len);
    assert_null(text);
}

static void test_gw_error(void **state)
{
    (void)state;
    json_t *e = oms_gw_error("bad_request", "nope \"quoted\"");
    expect_json(e, "{\"code\":\"bad_request\",\"message\":\"nope \\\"quoted\\\"\"}");
    check_frame("error", e);
    json_decref(e);
}

static void test_out_add_and_clear(void **state)
{
    (void)state;
    oms_gw_out out;
    memset(&out, 0, sizeof out);
    oms_gw_out_add(&out, "a", json_object(), false);
    assert_int_equal(out.n, 1);
    assert_int_equal(out.answer, -1); /* no answer yet */
    oms_gw_out_add(&out, "b", json_pack("{s:i}", "i", 2), true);
    assert_int_equal(out.answer, 1);
    oms_gw_out_add(&out, "c", NULL, false); /* NULL data is allowed */
    assert_int_equal(out.n, 3);
    assert_string_equal(out.msgs[0].event, "a");
    assert_string_equal(out.msgs[1].event, "b");
    assert_null(out.msgs[2].data);
    oms_gw_out_clear(&out);
    assert_int_equal(out.n, 0);
    assert_int_equal(out.answer, -1);
    assert_int_equal(out.close_code, 0);
    assert_false(out.exp_changed);
    /* clearing twice is fine */
    oms_gw_out_clear(&out);
    assert_int_equal(out.n, 0);
}

static void test_out_add_overflow(void **state)
{
    (void)state;
    oms_gw_out out;
    oms_gw_out_clear(&out);
    for (int i = 0; i < OMS_GW_MAX_MSGS; i++)
        oms_gw_out_add(&out, "m", json_pack("{s:i,s:s}", "i", i, "pad", "some payload"), i == 1);
    assert_int_equal(out.n, OMS_GW_MAX_MSGS);
    assert_int_equal(out.answer, 1);
    /* beyond the bound: dropped (and freed: LeakSanitizer checks), the
     * answer index never points past n */
    for (int i = 0; i < 10; i++)
        oms_gw_out_add(&out, "extra", json_pack("[s,i]", "dropped", i), true);
    oms_gw_out_add(&out, "extra", NULL, true);
    assert_int_equal(out.n, OMS_GW_MAX_MSGS);
    assert_true(out.answer >= -1 && out.answer < out.n);
    for (int i = 0; i < out.n; i++) {
        assert_string_equal(out.msgs[i].event, "m");
        assert_int_equal(json_integer_value(json_object_get(out.msgs[i].data, "i")), i);
    }
    oms_gw_out_clear(&out);
    assert_int_equal(out.n, 0);
}

/* ---- 7. fuzz --------------------------------------------------------------- */

static uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

typedef struct buf {
    char *p;
    size_t n, cap;
} buf;

static void buf_reserve(buf *b, size_t extra)
{
    if (b->n + extra <= b->cap)
        return;
    size_t cap = (b->n + extra) * 2 + 64;
    char *p = realloc(b->p, cap);
    assert_non_null(p);
    b->p = p;
    b->cap = cap;
}

static void buf_put(buf *b, const char *s, size_t n)
{
    buf_reserve(b, n);
    memcpy(b->p + b->n, s, n);
    b->n += n;
}

static void buf_puts(buf *b, const char *s)
{
    buf_put(b, s, strlen(s));
}

static const char *const known_events[] = {
    "error", "subscription_confirmed", "unsubscribed", "pong", "token_refreshed", "resumed",
};
static const char *const known_codes[] = {
    "bad_request", "unknown_event", "forbidden", "rate_limited", "token_expired",
};

static bool in_list(const char *s, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(s, list[i]) == 0)
            return true;
    return false;
}

/* What must hold after any message. */
static void check_invariants(const fixture *fx, const oms_principal *who0, const char *frame,
                             size_t len)
{
    const oms_gw_out *o = &fx->out;
    if (o->resume && o->n == 0) /* handed to the server, which answers */
        return;
    if (o->resume && o->n == 0) /* handed to the server, which answers */
        return;
    if (o->n != 1 || o->answer != 0)
        fail_msg("n=%d answer=%d for frame %.*s", o->n, o->answer, (int)(len > 200 ? 200 : len),
                 frame);
    const char *ev = o->msgs[0].event;
    assert_non_null(ev);
    if (!in_list(ev, known_events, OMS_ARRAY_LEN(known_events)))
        fail_msg("unexpected event %s", ev);
    assert_true(json_is_object(o->msgs[0].data));
    if (strcmp(ev, "error") == 0) {
        const char *code = str_member(o->msgs[0].data, "code");
        if (!in_list(code, known_codes, OMS_ARRAY_LEN(known_codes)))
            fail_msg("unexpected error code %s", code);
        str_member(o->msgs[0].data, "message");
    }
    assert_true(o->close_code == 0 || o->close_code == OMS_CLOSE_POLICY);
    /* the answer always frames to valid JSON */
    size_t flen = 0;
    char *text = oms_gw_frame_text(ev, o->msgs[0].data, &flen);
    assert_non_null(text);
    assert_int_equal(flen, strlen(text));
    json_t *back = json_loadb(text, flen, 0, NULL);
    if (!back)
        fail_msg("answer frame is not JSON: %s", text);
    json_decref(back);
    free(text);
    /* session state stays sane: identity fixed, subscriptions per role */
    const oms_session *s = &fx->s;
    assert_int_equal(s->who.user_id, who0->user_id);
    assert_int_equal(s->who.role, who0->role);
    assert_int_equal(s->subs & ~(unsigned)(OMS_SUB_ORDERS | OMS_SUB_INVENTORY), 0);
    if (s->who.role == OMS_ROLE_SERVICE)
        assert_int_equal(s->subs, 0);
    if (s->who.role == OMS_ROLE_CUSTOMER)
        assert_int_equal(s->subs & OMS_SUB_INVENTORY, 0);
    assert_true(s->tokens >= 0.0 && s->tokens <= s->per_min);
    assert_true(s->violations >= 0);
}

static void test_fuzz_on_text(void **state)
{
    fixture *fx = *state;
    char *tok = mint(OWN_ID, OMS_ROLE_CUSTOMER, 7200, NOW_S);
    char *staff_tok = mint(OWN_ID, OMS_ROLE_STAFF, 7200, NOW_S);
    char refresh[1024], refresh_staff[1024];
    snprintf(refresh, sizeof refresh, "{\"event\":\"refresh_token\",\"data\":{\"token\":\"%s\"}}",
             tok);
    snprintf(refresh_staff, sizeof refresh_staff,
             "{\"event\":\"refresh_token\",\"data\":{\"token\":\"%s\"}}", staff_tok);
    free(tok);
    free(staff_tok);
    const char *const seeds[] = {
        "{\"event\":\"unsubscribe\",\"data\":{\"type\":\"order\"}}",
        "{\"event\":\"unsubscribe\",\"data\":{\"type\":\"inventory\"}}",
        "{\"event\":\"subscribe_to_orders\"}",
        "{\"event\":\"subscribe_to_inventory\",\"data\":{}}",
        "{\"event\":\"ping\",\"data\":null}",
        "{\"event\":\"resume\",\"data\":{\"since\":[\"t:0:5\",\"inv:0:-1\"]}}",
        "{\"event\":\"dance\",\"data\":[1,2.5e300,-0,\"\\u00e9\\ud83d\\ude00\"]}",
        refresh,
        refresh_staff,
    };
    static const char *const inserts[] = {
        "{", "}", "[", "]", "\"", "\\", ":", ",", "null", "true", "1e999", "-", "\\u0000",
        "\\ud800", "\xc3", "\xff", "\"event\":", "\"data\":", "\"type\":\"order\"", " ", "\n",
    };
    static const oms_role roles[] = {OMS_ROLE_CUSTOMER, OMS_ROLE_STAFF, OMS_ROLE_ADMIN,
                                     OMS_ROLE_SERVICE};

    uint64_t seed = UINT64_C(0x2545F4914F6CDD1D);
    buf b = {0};
    oms_principal who0 = principal(OWN_ID, OMS_ROLE_CUSTOMER);
    int role_i = 0, closes = 0, parsed_ok = 0;
    bool tight = false;
    for (int iter = 0; iter < 20000; iter++) {
        if (iter % 2500 == 0) {
            /* a new connection: rotate roles; every other one has a tight
             * limit and a frozen clock, to reach the 1008 path */
            role_i = (role_i + 1) % (int)OMS_ARRAY_LEN(roles);
            tight = (iter / 2500) % 2 == 1;
            who0 = principal(roles[role_i] == OMS_ROLE_SERVICE ? 0 : OWN_ID, roles[role_i]);
            oms_session_init(&fx->s, &who0, tight ? 20 : 1000000, fx->env.now_ms);
        }
        if (!tight)
            fx->env.now_ms += (int64_t)(xorshift(&seed) % 50);
        fx->fp.return_null = xorshift(&seed) % 16 == 0;

        b.n = 0;
        uint64_t r = xorshift(&seed);
        const char *base = seeds[r % OMS_ARRAY_LEN(seeds)];
        switch ((r >> 8) % 8) {
        case 0: /* as is */
            buf_puts(&b, base);
            break;
        case 1: /* pure random bytes */
        {
            size_t n = xorshift(&seed) % 64;
            for (size_t i = 0; i < n; i++) {
                char c = (char)xorshift(&seed);
                buf_put(&b, &c, 1);
            }
            break;
        }
        case 2: /* deep nesting as the data */
        case 3: /* deep nesting around everything */
        {
            size_t depth = 1 + xorshift(&seed) % 5000;
            bool obj = xorshift(&seed) % 2;
            bool close_it = xorshift(&seed) % 2;
            if ((r >> 8) % 8 == 2)
                buf_puts(&b, "{\"event\":\"unsubscribe\",\"data\":");
            for (size_t i = 0; i < depth; i++)
                buf_puts(&b, obj ? "{\"type\":" : "[");
            buf_puts(&b, "\"order\"");
            if (close_it)
                for (size_t i = 0; i < depth; i++)
                    buf_puts(&b, obj ? "}" : "]");
            if ((r >> 8) % 8 == 2)
                buf_puts(&b, "}");
            break;
        }
        case 4: /* splice two seeds */
        {
            const char *other = seeds[xorshift(&seed) % OMS_ARRAY_LEN(seeds)];
            size_t a = xorshift(&seed) % (strlen(base) + 1);
            size_t c = xorshift(&seed) % (strlen(other) + 1);
            buf_put(&b, base, a);
            buf_puts(&b, other + c);
            break;
        }
        case 5: /* long strings */
        {
            size_t n = xorshift(&seed) % 20000;
            buf_puts(&b, "{\"event\":\"");
            buf_reserve(&b, n);
            memset(b.p + b.n, xorshift(&seed) % 2 ? 'a' : 0x80, n);
            b.n += n;
            buf_puts(&b, "\",\"data\":{\"type\":\"order\",\"token\":\"x\"}}");
            break;
        }
        default: /* mutate: flips, inserts, deletes, truncation */
        {
            buf_puts(&b, base);
            int k = 1 + (int)(xorshift(&seed) % 6);
            for (int j = 0; j < k && b.n > 0; j++) {
                size_t pos = xorshift(&seed) % b.n;
                switch (xorshift(&seed) % 5) {
                case 0:
                    b.p[pos] ^= (char)(1u << (xorshift(&seed) % 8));
                    break;
                case 1:
                    b.p[pos] = (char)xorshift(&seed);
                    break;
                case 2: {
                    const char *ins = inserts[xorshift(&seed) % OMS_ARRAY_LEN(inserts)];
                    size_t il = strlen(ins);
                    buf_reserve(&b, il);
                    memmove(b.p + pos + il, b.p + pos, b.n - pos);
                    memcpy(b.p + pos, ins, il);
                    b.n += il;
                    break;
                }
                case 3: {
                    size_t dl = xorshift(&seed) % (b.n - pos + 1);
                    memmove(b.p + pos, b.p + pos + dl, b.n - pos - dl);
                    b.n -= dl;
                    break;
                }
                default:
                    b.n = pos; /* truncate */
                    break;
                }
            }
            break;
        }
        }

        /* an exact-size copy, not NUL-terminated: ASan catches over-reads */
        char *frame = malloc(b.n ? b.n : 1);
        assert_non_null(frame);
        if (b.n)
            memcpy(frame, b.p, b.n);
        oms_gw_out_clear(&fx->out);
        oms_session_on_text(&fx->s, &fx->env, frame, b.n, &fx->out);
        check_invariants(fx, &who0, frame, b.n);
        if (fx->out.resume || strcmp(fx->out.msgs[0].event, "error") != 0)
            parsed_ok++;
        if (fx->out.close_code) {
            closes++;
            oms_session_init(&fx->s, &who0, tight ? 20 : 1000000, fx->env.now_ms);
        }
        free(frame);
        oms_gw_out_clear(&fx->out);
        assert_int_equal(fx->out.n, 0);
    }
    free(b.p);
    print_message("fuzz: %d frames answered without error, %d closes\n", parsed_ok, closes);
    assert_true(parsed_ok > 100);
    assert_true(closes > 0);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_wants_matrix),
        T(test_wants_spot_checks),
        T(test_wants_user_id_zero),
        T(test_subscribe_orders_customer),
        T(test_subscribe_orders_staff_admin),
        T(test_subscribe_inventory_customer_forbidden),
        T(test_subscribe_inventory_staff_admin),
        T(test_subscribe_service_forbidden),
        T(test_subscribe_positions_missing),
        T(test_unsubscribe),
        T(test_unsubscribe_bad_type),
        T(test_ping),
        T(test_unknown_event),
        T(test_bad_frames),
        T(test_resume),
        T(test_refresh_token_ok),
        T(test_refresh_token_other_user_or_role),
        T(test_refresh_token_expired),
        T(test_refresh_token_garbage),
        T(test_refresh_token_missing),
        T(test_refresh_token_far_future_exp),
        T(test_rate_limit_burst_and_refill),
        T(test_rate_limit_partial_refill),
        T(test_rate_limit_counts_bad_frames),
        T(test_rate_limit_flood_closes),
        T(test_rate_limit_pass_resets_violations),
        T(test_rate_limit_clock_backwards),
        T(test_rate_limit_small),
        T(test_session_init),
        T(test_connected),
        T(test_connected_no_positions),
        T(test_frame_text),
        T(test_gw_error),
        T(test_out_add_and_clear),
        T(test_out_add_overflow),
        T(test_fuzz_on_text),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
