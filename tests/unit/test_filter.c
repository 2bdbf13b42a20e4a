/* test_filter.c — subscription filters (pkg/gateway/filter.c): every
 * operator, the normalized form, bad filters and their messages, sessions
 * (subscribe/unsubscribe/role first), and the router's shared evaluation:
 * random filters against oms_session_wants_view(), and 10,000 connections
 * with 100 distinct product filters getting exactly their events while
 * testing only the groups an event can match. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/filter.h"
#include "gateway/gateway.h"
#include "gateway/router.h"

static oms_filter *parse_ok(const char *text, oms_topic_kind topic)
{
    json_error_t jerr;
    json_t *j = json_loads(text, 0, &jerr);
    if (!j)
        fail_msg("bad test JSON %s: %s", text, jerr.text);
    oms_filter *f = NULL;
    char err[256] = "";
    int rc = oms_filter_parse(j, topic, NULL, &f, err, sizeof err);
    json_decref(j);
    if (rc != OMS_OK)
        fail_msg("filter %s refused: %s", text, err);
    return f;
}

static void expect_bad(const char *text, oms_topic_kind topic, const oms_filter_limits *lim,
                       const char *needle)
{
    json_t *j = json_loads(text, JSON_DECODE_ANY, NULL);
    assert_non_null(j);
    oms_filter *f = NULL;
    char err[256] = "";
    int rc = oms_filter_parse(j, topic, lim, &f, err, sizeof err);
    json_decref(j);
    if (rc != OMS_EINVAL || f)
        fail_msg("filter %s: expected a refusal, got rc %d", text, rc);
    if (!strstr(err, needle))
        fail_msg("filter %s: message '%s' does not contain '%s'", text, err, needle);
}

static oms_event inv(int64_t product, int32_t qty, const char *status)
{
    oms_event ev = {0};
    ev.type = OMS_EV_INVENTORY_CHANGED;
    ev.product_id = product;
    ev.product_name = (char *)"Widget";
    ev.quantity = qty;
    ev.threshold = 10;
    ev.status = (char *)status;
    ev.source = (char *)"inventory-service";
    return ev;
}

static oms_event order(oms_event_type t, const char *id, int64_t user, const char *status,
                       double total)
{
    oms_event ev = {0};
    ev.type = t;
    ev.order_id = (char *)id;
    ev.alias_id = (char *)"A-1";
    ev.user_id = user;
    ev.status = (char *)status;
    ev.total_amount = total;
    ev.previous_status = t == OMS_EV_ORDER_STATUS_CHANGED ? (char *)"confirmed" : NULL;
    ev.source = (char *)"order-service";
    return ev;
}

static bool matches(const oms_filter *f, const oms_event *ev)
{
    oms_filter_view v;
    oms_filter_view_of(ev, &v);
    return oms_filter_match(f, &v);
}

static void test_operators(void **state)
{
    (void)state;
    oms_event a = inv(3, 5, "low_stock"), b = inv(17, 50, "in_stock"), c = inv(42, 0, "out_of_stock");
    /* equality */
    oms_filter *f = parse_ok("{\"productId\": 17}", OMS_TOPIC_INVENTORY);
    assert_false(matches(f, &a));
    assert_true(matches(f, &b));
    oms_filter_unref(f);
    /* set membership */
    f = parse_ok("{\"productId\": [3, 42, 99]}", OMS_TOPIC_INVENTORY);
    assert_true(matches(f, &a));
    assert_false(matches(f, &b));
    assert_true(matches(f, &c));
    oms_filter_unref(f);
    f = parse_ok("{\"status\": [\"low_stock\", \"out_of_stock\"]}", OMS_TOPIC_INVENTORY);
    assert_true(matches(f, &a));
    assert_false(matches(f, &b));
    assert_true(matches(f, &c));
    oms_filter_unref(f);
    /* each comparison, on its boundary */
    struct {
        const char *spec;
        bool at5, at50;
    } cmp[] = {
        {"{\"quantity\": {\"lt\": 5}}", false, false},   {"{\"quantity\": {\"lte\": 5}}", true, false},
        {"{\"quantity\": {\"gt\": 5}}", false, true},    {"{\"quantity\": {\"gte\": 5}}", true, true},
        {"{\"quantity\": {\"gte\": 5, \"lt\": 50}}", true, false},
        {"{\"quantity\": {\"gt\": 4, \"lte\": 50}}", true, true},
    };
    for (size_t i = 0; i < sizeof cmp / sizeof cmp[0]; i++) {
        f = parse_ok(cmp[i].spec, OMS_TOPIC_INVENTORY);
        if (matches(f, &a) != cmp[i].at5 || matches(f, &b) != cmp[i].at50)
            fail_msg("%s: quantity 5 -> %d (want %d), 50 -> %d (want %d)", cmp[i].spec,
                     matches(f, &a), cmp[i].at5, matches(f, &b), cmp[i].at50);
        oms_filter_unref(f);
    }
    /* conjunction */
    f = parse_ok("{\"productId\": [3, 17], \"quantity\": {\"lt\": 10}}", OMS_TOPIC_INVENTORY);
    assert_true(matches(f, &a));
    assert_false(matches(f, &b)); /* product ok, quantity not */
    assert_false(matches(f, &c)); /* quantity ok, product not */
    oms_filter_unref(f);
    /* orders: orderId, totalAmount (OrderCreated only), previousStatus, eventType */
    oms_event o1 = order(OMS_EV_ORDER_CREATED, "ord-1", 7, "created", 650.5);
    oms_event o2 = order(OMS_EV_ORDER_STATUS_CHANGED, "ord-1", 7, "shipped", 0);
    oms_event o3 = order(OMS_EV_ORDER_CREATED, "ord-2", 8, "created", 20);
    f = parse_ok("{\"orderId\": \"ord-1\"}", OMS_TOPIC_ORDERS);
    assert_true(matches(f, &o1));
    assert_true(matches(f, &o2));
    assert_false(matches(f, &o3));
    oms_filter_unref(f);
    f = parse_ok("{\"totalAmount\": {\"gte\": 500}}", OMS_TOPIC_ORDERS);
    assert_true(matches(f, &o1));
    assert_false(matches(f, &o2)); /* no totalAmount in a status change */
    assert_false(matches(f, &o3));
    oms_filter_unref(f);
    f = parse_ok("{\"status\": [\"shipped\", \"delivered\"]}", OMS_TOPIC_ORDERS);
    assert_false(matches(f, &o1));
    assert_true(matches(f, &o2));
    oms_filter_unref(f);
    f = parse_ok("{\"previousStatus\": \"confirmed\"}", OMS_TOPIC_ORDERS);
    assert_false(matches(f, &o1)); /* a field the event lacks matches nothing */
    assert_true(matches(f, &o2));
    oms_filter_unref(f);
    f = parse_ok("{\"eventType\": \"order-status-changed\", \"userId\": [7, 9]}", OMS_TOPIC_ORDERS);
    assert_string_equal(oms_filter_text(f), "{\"eventType\":\"OrderStatusChanged\",\"userId\":[7,9]}");
    assert_false(matches(f, &o1));
    assert_true(matches(f, &o2));
    oms_filter_unref(f);
    f = parse_ok("{\"totalAmount\": {\"gt\": 20.25}}", OMS_TOPIC_ORDERS);
    assert_string_equal(oms_filter_text(f), "{\"totalAmount\":{\"gt\":20.25}}");
    assert_true(matches(f, &o1));
    assert_false(matches(f, &o3));
    oms_filter_unref(f);
}

static void test_normalized(void **state)
{
    (void)state;
    struct {
        const char *in, *out;
    } n[] = {
        {"{\"productId\": [42, 3, 17, 3]}", "{\"productId\":[3,17,42]}"},
        {"{\"productId\": [17]}", "{\"productId\":17}"},
        {"{\"productId\": 17.0}", "{\"productId\":17}"},
        {"{\"quantity\": {\"lt\": 10}, \"productId\": 5}", "{\"productId\":5,\"quantity\":{\"lt\":10}}"},
        {"{\"quantity\": {\"lte\": 10, \"lt\": 10}}", "{\"quantity\":{\"lt\":10}}"},
        {"{\"quantity\": {\"gte\": 3, \"gt\": 5}}", "{\"quantity\":{\"gt\":5}}"},
        {"{\"quantity\": {\"gte\": 6, \"gt\": 5}}", "{\"quantity\":{\"gte\":6}}"},
        {"{\"status\": [\"out_of_stock\", \"low_stock\"]}",
         "{\"status\":[\"low_stock\",\"out_of_stock\"]}"},
    };
    for (size_t i = 0; i < sizeof n / sizeof n[0]; i++) {
        oms_filter *f = parse_ok(n[i].in, OMS_TOPIC_INVENTORY);
        if (strcmp(oms_filter_text(f), n[i].out) != 0)
            fail_msg("%s normalized to %s, expected %s", n[i].in, oms_filter_text(f), n[i].out);
        /* the normalized form parses to itself */
        oms_filter *g = parse_ok(oms_filter_text(f), OMS_TOPIC_INVENTORY);
        assert_string_equal(oms_filter_text(g), oms_filter_text(f));
        oms_filter_unref(g);
        oms_filter_unref(f);
    }
    /* null and {} select everything: no filter */
    oms_filter *f = (oms_filter *)1;
    char err[128];
    json_t *empty = json_object();
    assert_int_equal(oms_filter_parse(empty, OMS_TOPIC_ORDERS, NULL, &f, err, sizeof err), 0);
    assert_null(f);
    assert_int_equal(oms_filter_parse(json_null(), OMS_TOPIC_ORDERS, NULL, &f, err, sizeof err), 0);
    assert_null(f);
    json_decref(empty);
}

static void test_bad_filters(void **state)
{
    (void)state;
    const oms_topic_kind I = OMS_TOPIC_INVENTORY, O = OMS_TOPIC_ORDERS;
    expect_bad("[1]", I, NULL, "filter: must be an object");
    expect_bad("\"x\"", I, NULL, "filter: must be an object");
    expect_bad("{\"colour\": \"red\"}", I, NULL, "colour: not a field of inventory events");
    expect_bad("{\"orderId\": \"x\"}", I, NULL, "orderId: not a field of inventory events");
    expect_bad("{\"productId\": 1}", O, NULL, "productId: not a field of order events");
    expect_bad("{\"productId\": \"17\"}", I, NULL, "productId: a value must be a number");
    expect_bad("{\"productId\": 1.5}", I, NULL, "productId: a value must be an integer");
    expect_bad("{\"productId\": []}", I, NULL, "productId: an empty list matches nothing");
    expect_bad("{\"productId\": [1, [2]]}", I, NULL, "productId: a value must be a number");
    expect_bad("{\"productId\": 1e300}", I, NULL, "productId: a value is out of range");
    expect_bad("{\"quantity\": {\"below\": 3}}", I, NULL, "quantity: unknown operator 'below'");
    expect_bad("{\"quantity\": {}}", I, NULL, "quantity: give a value");
    expect_bad("{\"quantity\": {\"lt\": \"3\"}}", I, NULL, "quantity: 'lt' must be a number");
    expect_bad("{\"productName\": {\"lt\": 3}}", I, NULL,
               "productName: lt, lte, gt and gte apply to numeric fields only");
    expect_bad("{\"status\": \"shiped\"}", O, NULL,
               "status: 'shiped' is not one of created, confirmed, shipped");
    expect_bad("{\"status\": \"shipped\"}", I, NULL, "status: 'shipped' is not one of in_stock");
    expect_bad("{\"eventType\": \"InventoryChanged\"}", O, NULL, "eventType: 'InventoryChanged'");
    expect_bad("{\"orderId\": 17}", O, NULL, "orderId: values must be strings");
    expect_bad("{\"orderId\": \"\"}", O, NULL, "orderId: an empty string");
    char big[400];
    snprintf(big, sizeof big, "{\"orderId\": \"%0300d\"}", 1);
    expect_bad(big, O, NULL, "orderId: a value is longer than 256 bytes");
    /* the limits */
    oms_filter_limits lim = {5, 4096};
    expect_bad("{\"productId\": [1,2,3,4,5,6]}", I, &lim,
               "productId: the filter holds more than 5 values (server.filter_max_values)");
    expect_bad("{\"productId\": [1,2,3], \"quantity\": {\"gt\": 1, \"lt\": 9}, \"delta\": 1}", I,
               &lim, "the filter holds more than 5 values");
    oms_filter_limits small = {256, 64};
    expect_bad("{\"productName\": [\"aaaaaaaaaaaaaaaa\", \"bbbbbbbbbbbbbbbbbbb\", \"cccccccccccccccc\"]}",
               I, &small, "(server.filter_max_bytes)");
    /* the default limit: 256 values */
    json_t *a = json_array();
    for (int i = 0; i < 257; i++)
        json_array_append_new(a, json_integer(i));
    json_t *spec = json_pack("{s:o}", "productId", a);
    oms_filter *f = NULL;
    char err[256];
    assert_int_equal(oms_filter_parse(spec, I, NULL, &f, err, sizeof err), OMS_EINVAL);
    assert_non_null(strstr(err, "more than 256 values"));
    json_array_remove(a, 0);
    assert_int_equal(oms_filter_parse(spec, I, NULL, &f, err, sizeof err), OMS_OK);
    assert_non_null(f);
    oms_filter_unref(f);
    json_decref(spec);
}

/* ---- sessions ------------------------------------------------------------------------ */

static void session_for(oms_session *s, oms_role role, int64_t user)
{
    oms_principal p = {0};
    p.role = role;
    p.user_id = user;
    oms_session_init(s, &p, 1000, 0);
}

static const char *send_event(oms_session *s, const char *event, const char *data,
                              json_t **answer)
{
    static char code[64];
    oms_gw_env env = {0};
    oms_gw_out out;
    memset(&out, 0, sizeof out);
    out.answer = -1;
    json_t *d = data ? json_loads(data, 0, NULL) : NULL;
    oms_session_on_message(s, &env, event, d, &out);
    json_decref(d);
    assert_int_equal(out.n, 1);
    snprintf(code, sizeof code, "%s", out.msgs[0].event);
    if (strcmp(code, "error") == 0)
        snprintf(code, sizeof code, "error:%s",
                 json_string_value(json_object_get(out.msgs[0].data, "code")));
    if (answer)
        *answer = json_incref(out.msgs[0].data);
    oms_gw_out_clear(&out);
    return code;
}

static void test_session_subscribe(void **state)
{
    (void)state;
    oms_session s;
    session_for(&s, OMS_ROLE_STAFF, 5);
    json_t *ans = NULL;
    assert_string_equal(send_event(&s, "subscribe_to_inventory",
                                   "{\"filter\": {\"productId\": [17, 3], \"quantity\": {\"lt\": 10}}}",
                                   &ans),
                        "subscription_confirmed");
    char *echo = json_dumps(json_object_get(ans, "filter"), JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(echo, "{\"productId\":[3,17],\"quantity\":{\"lt\":10}}");
    free(echo);
    json_decref(ans);
    oms_event lo = inv(3, 4, "low_stock"), other = inv(4, 4, "low_stock");
    oms_filter_view v1, v2;
    oms_filter_view_of(&lo, &v1);
    oms_filter_view_of(&other, &v2);
    assert_true(oms_session_wants_view(&s, OMS_EV_INVENTORY_CHANGED, 0, &v1));
    assert_false(oms_session_wants_view(&s, OMS_EV_INVENTORY_CHANGED, 0, &v2));
    assert_false(oms_session_wants_view(&s, OMS_EV_INVENTORY_CHANGED, 0, NULL));
    /* a bad filter: refused, the subscription as it was */
    assert_string_equal(send_event(&s, "subscribe_to_inventory", "{\"filter\": {\"qty\": 1}}", &ans),
                        "error:bad_filter");
    assert_non_null(strstr(json_string_value(json_object_get(ans, "message")), "qty"));
    json_decref(ans);
    assert_false(oms_session_wants_view(&s, OMS_EV_INVENTORY_CHANGED, 0, &v2));
    /* resubscribe replaces it (no filter: everything, no echo) */
    assert_string_equal(send_event(&s, "subscribe_to_inventory", NULL, &ans),
                        "subscription_confirmed");
    assert_null(json_object_get(ans, "filter"));
    json_decref(ans);
    assert_true(oms_session_wants_view(&s, OMS_EV_INVENTORY_CHANGED, 0, &v2));
    /* unsubscribe drops it */
    send_event(&s, "subscribe_to_inventory", "{\"filter\": {\"productId\": 3}}", NULL);
    assert_string_equal(send_event(&s, "unsubscribe", "{\"type\": \"inventory\"}", NULL),
                        "unsubscribed");
    assert_null(s.filter[OMS_GW_F_INVENTORY]);
    assert_false(oms_session_wants_view(&s, OMS_EV_INVENTORY_CHANGED, 0, &v1));
    assert_string_equal(send_event(&s, "subscribe_to_inventory", NULL, NULL),
                        "subscription_confirmed");
    assert_true(oms_session_wants_view(&s, OMS_EV_INVENTORY_CHANGED, 0, &v2));
    /* copies hold their own references */
    send_event(&s, "subscribe_to_orders", "{\"filter\": {\"status\": \"shipped\"}}", NULL);
    oms_session copy;
    oms_session_copy(&copy, &s);
    oms_session_clear(&s);
    oms_event o = order(OMS_EV_ORDER_STATUS_CHANGED, "o", 9, "shipped", 0);
    oms_filter_view vo;
    oms_filter_view_of(&o, &vo);
    assert_true(oms_session_wants_view(&copy, OMS_EV_ORDER_STATUS_CHANGED, 9, &vo));
    oms_session_clear(&copy);
}

static void test_session_role_first(void **state)
{
    (void)state;
    oms_session s;
    session_for(&s, OMS_ROLE_CUSTOMER, 7);
    /* a customer may narrow its own orders, never widen to others' */
    assert_string_equal(send_event(&s, "subscribe_to_orders",
                                   "{\"filter\": {\"userId\": [7, 8], \"orderId\": [\"a\", \"b\"]}}",
                                   NULL),
                        "subscription_confirmed");
    oms_event mine = order(OMS_EV_ORDER_CREATED, "a", 7, "created", 1);
    oms_event theirs = order(OMS_EV_ORDER_CREATED, "b", 8, "created", 1);
    oms_event mine_other = order(OMS_EV_ORDER_CREATED, "c", 7, "created", 1);
    oms_filter_view v;
    oms_filter_view_of(&mine, &v);
    assert_true(oms_session_wants_view(&s, mine.type, mine.user_id, &v));
    oms_filter_view_of(&theirs, &v);
    assert_false(oms_session_wants_view(&s, theirs.type, theirs.user_id, &v));
    oms_filter_view_of(&mine_other, &v);
    assert_false(oms_session_wants_view(&s, mine_other.type, mine_other.user_id, &v));
    /* inventory: forbidden, with or without a filter (and a bad filter too) */
    assert_string_equal(send_event(&s, "subscribe_to_inventory",
                                   "{\"filter\": {\"productId\": 1}}", NULL),
                        "error:forbidden");
    assert_string_equal(send_event(&s, "subscribe_to_inventory", "{\"filter\": 3}", NULL),
                        "error:forbidden");
    oms_session_clear(&s);
}

/* ---- the router ---------------------------------------------------------------------- */

typedef struct fake {
    oms_session s;
    oms_route rt;
    int in;
    int hits;
} fake;

static void on_hit(void *conn, void *ud)
{
    (void)ud;
    ((fake *)conn)->hits++;
}

static uint64_t rng = 0x9e3779b9;
static uint32_t rnd(uint32_t n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng % n);
}

static const char *const inv_filters[] = {
    NULL,
    "{\"productId\": 1}",
    "{\"productId\": [1, 2, 3]}",
    "{\"productId\": [2, 3]}",
    "{\"productId\": [3, 2]}", /* same as the one before */
    "{\"quantity\": {\"lt\": 10}}",
    "{\"quantity\": {\"lt\": 10}, \"status\": \"low_stock\"}",
    "{\"status\": [\"low_stock\", \"out_of_stock\"]}",
    "{\"productName\": \"Widget\", \"productId\": [4, 5]}",
    "{\"productId\": {\"gte\": 3}}",
};
static const char *const ord_filters[] = {
    NULL,
    "{\"orderId\": \"o1\"}",
    "{\"orderId\": [\"o1\", \"o2\"]}",
    "{\"status\": \"shipped\"}",
    "{\"userId\": 3}",
    "{\"totalAmount\": {\"gte\": 100}}",
    "{\"status\": [\"created\", \"shipped\"], \"userId\": [1, 2, 3]}",
};

static void subscribe_random(fake *x)
{
    bool inv_ok = x->s.who.role == OMS_ROLE_STAFF || x->s.who.role == OMS_ROLE_ADMIN;
    int which = (int)rnd(3);
    if (which == 2) {
        send_event(&x->s, "unsubscribe", rnd(2) ? "{\"type\":\"order\"}" : "{\"type\":\"inventory\"}",
                   NULL);
        return;
    }
    const char *spec = which == 0 ? ord_filters[rnd(sizeof ord_filters / sizeof *ord_filters)]
                                  : inv_filters[rnd(sizeof inv_filters / sizeof *inv_filters)];
    char data[256];
    snprintf(data, sizeof data, "{\"filter\": %s}", spec ? spec : "null");
    const char *ans = send_event(&x->s, which == 0 ? "subscribe_to_orders" : "subscribe_to_inventory",
                                 data, NULL);
    if (which == 1 && !inv_ok)
        assert_string_equal(ans, "error:forbidden");
    else if (x->s.who.role != OMS_ROLE_SERVICE)
        assert_string_equal(ans, "subscription_confirmed");
}

#define N 400

static void check_events(oms_router *r, fake *f)
{
    static const char *const ost[] = {"created", "shipped", "delivered"};
    static const char *const ist[] = {"in_stock", "low_stock", "out_of_stock"};
    static const char *const oid[] = {"o1", "o2", "o3"};
    for (int round = 0; round < 60; round++) {
        oms_event ev = round % 2 ? inv(1 + rnd(6), (int32_t)rnd(20), ist[rnd(3)])
                                 : order(rnd(2) ? OMS_EV_ORDER_CREATED : OMS_EV_ORDER_STATUS_CHANGED,
                                         oid[rnd(3)], 1 + rnd(4), ost[rnd(3)], rnd(200));
        oms_filter_view v;
        oms_filter_view_of(&ev, &v);
        for (int i = 0; i < N; i++)
            f[i].hits = 0;
        size_t n = oms_router_dispatch_view(r, ev.type, ev.user_id, &v, on_hit, NULL);
        size_t want = 0;
        for (int i = 0; i < N; i++) {
            int expect = f[i].in && oms_session_wants_view(&f[i].s, ev.type, ev.user_id, &v);
            want += (size_t)expect;
            if (f[i].hits != expect)
                fail_msg("event %d: conn %d (role %d, user %lld, subs %u, filter %s) hit %d "
                         "times, expected %d",
                         round, i, f[i].s.who.role, (long long)f[i].s.who.user_id, f[i].s.subs,
                         f[i].s.filter[ev.type == OMS_EV_INVENTORY_CHANGED]
                             ? oms_filter_text(f[i].s.filter[ev.type == OMS_EV_INVENTORY_CHANGED])
                             : "-",
                         f[i].hits, expect);
        }
        assert_int_equal(n, want);
    }
}

static void test_router_filters_random(void **state)
{
    (void)state;
    oms_router *r = oms_router_new();
    fake *f = calloc(N, sizeof *f);
    for (int i = 0; i < N; i++)
        session_for(&f[i].s, (oms_role)rnd(OMS_ROLE__COUNT), 1 + rnd(4));
    for (int round = 0; round < 4000; round++) {
        fake *x = &f[rnd(N)];
        switch (rnd(4)) {
        case 0:
            if (!x->in) {
                assert_int_equal(oms_router_add(r, &x->rt, x, &x->s), 0);
                x->in = 1;
            }
            break;
        case 1:
        case 2:
            subscribe_random(x);
            if (x->in)
                assert_int_equal(oms_router_update(r, &x->rt, &x->s), 0);
            break;
        default:
            if (x->in) {
                oms_router_remove(r, &x->rt);
                x->in = 0;
            }
        }
        if (round % 400 == 0)
            check_events(r, f);
    }
    check_events(r, f);
    /* groups: at most one per distinct (topic, text) */
    assert_true(oms_router_filter_groups(r) <= 6 + 8);
    for (int i = 0; i < N; i++) {
        if (f[i].in)
            oms_router_remove(r, &f[i].rt);
        oms_session_clear(&f[i].s);
    }
    assert_int_equal(oms_router_filter_groups(r), 0);
    oms_router_free(r);
    free(f);
}

/* The case: 10,000 connections, 100 distinct product filters. Each
 * gets exactly the events of its product, and an event tests the one group
 * of its product, not 100 filters (let alone 10,000). */
static void test_router_shared_evaluation(void **state)
{
    (void)state;
    enum { M = 10000, P = 100 };
    oms_router *r = oms_router_new();
    fake *f = calloc(M, sizeof *f);
    for (int i = 0; i < M; i++) {
        session_for(&f[i].s, i % 2 ? OMS_ROLE_STAFF : OMS_ROLE_ADMIN, 100000 + i);
        char data[96];
        snprintf(data, sizeof data, "{\"filter\": {\"productId\": %d}}", 1000 + i % P);
        assert_string_equal(send_event(&f[i].s, "subscribe_to_inventory", data, NULL),
                            "subscription_confirmed");
        assert_int_equal(oms_router_add(r, &f[i].rt, &f[i], &f[i].s), 0);
    }
    assert_int_equal(oms_router_filter_groups(r), P);
    int hits[P] = {0};
    uint64_t evals0 = oms_router_filter_evals(r);
    for (int e = 0; e < 3 * P; e++) {
        oms_event ev = inv(1000 + e % P, 5, "low_stock");
        oms_filter_view v;
        oms_filter_view_of(&ev, &v);
        assert_int_equal(oms_router_dispatch_view(r, ev.type, 0, &v, on_hit, NULL), M / P);
        hits[e % P]++;
    }
    /* an event of a product nobody filters on: nothing, and no test */
    oms_event none = inv(5, 5, "low_stock");
    oms_filter_view vn;
    oms_filter_view_of(&none, &vn);
    assert_int_equal(oms_router_dispatch_view(r, none.type, 0, &vn, on_hit, NULL), 0);
    assert_int_equal(oms_router_filter_evals(r) - evals0, 3 * P);
    for (int i = 0; i < M; i++)
        if (f[i].hits != hits[i % P])
            fail_msg("conn %d (product %d): %d events, expected %d", i, 1000 + i % P, f[i].hits,
                     hits[i % P]);
    for (int i = 0; i < M; i++) {
        oms_router_remove(r, &f[i].rt);
        oms_session_clear(&f[i].s);
    }
    assert_int_equal(oms_router_filter_groups(r), 0);
    oms_router_free(r);
    free(f);
}

/* Without a view (oms_router_dispatch), filtered connections get nothing;
 * unfiltered ones get everything as before. A router freed with groups in
 * it releases them (ASan checks). */
static void test_router_no_view(void **state)
{
    (void)state;
    oms_router *r = oms_router_new();
    fake a = {0}, b = {0};
    session_for(&a.s, OMS_ROLE_STAFF, 1);
    session_for(&b.s, OMS_ROLE_STAFF, 2);
    send_event(&a.s, "subscribe_to_orders", "{\"filter\": {\"status\": \"shipped\"}}", NULL);
    send_event(&b.s, "subscribe_to_orders", NULL, NULL);
    assert_int_equal(oms_router_add(r, &a.rt, &a, &a.s), 0);
    assert_int_equal(oms_router_add(r, &b.rt, &b, &b.s), 0);
    assert_int_equal(oms_router_dispatch(r, OMS_EV_ORDER_CREATED, 3, on_hit, NULL), 1);
    assert_int_equal(b.hits, 1);
    assert_int_equal(a.hits, 0);
    oms_router_free(r);
    oms_session_clear(&a.s);
    oms_session_clear(&b.s);
}

static void test_view_copy(void **state)
{
    (void)state;
    oms_event ev = order(OMS_EV_ORDER_STATUS_CHANGED, "ord-9", 4, "delivered", 0);
    oms_filter_view v;
    oms_filter_view_of(&ev, &v);
    oms_filter_view *c = oms_filter_view_copy(&v);
    assert_non_null(c);
    assert_string_equal(c->str[OMS_FF_ORDER_ID], "ord-9");
    assert_ptr_not_equal(c->str[OMS_FF_ORDER_ID], ev.order_id);
    assert_string_equal(c->str[OMS_FF_PREVIOUS_STATUS], "confirmed");
    assert_int_equal(c->present, v.present);
    oms_filter *f = parse_ok("{\"orderId\": \"ord-9\", \"status\": \"delivered\"}", OMS_TOPIC_ORDERS);
    assert_true(oms_filter_match(f, c));
    oms_filter_field field;
    const uint64_t *keys;
    size_t nkeys;
    assert_true(oms_filter_pivot(f, &field, &keys, &nkeys));
    assert_int_equal(field, OMS_FF_ORDER_ID);
    uint64_t k;
    assert_true(oms_filter_key(field, c, &k));
    assert_int_equal(nkeys, 1);
    assert_true(keys[0] == k);
    oms_filter_unref(f);
    f = parse_ok("{\"totalAmount\": {\"lt\": 3}}", OMS_TOPIC_ORDERS);
    assert_false(oms_filter_pivot(f, &field, &keys, &nkeys));
    oms_filter_unref(f);
    oms_filter_view_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_operators),
        cmocka_unit_test(test_normalized),
        cmocka_unit_test(test_bad_filters),
        cmocka_unit_test(test_session_subscribe),
        cmocka_unit_test(test_session_role_first),
        cmocka_unit_test(test_router_filters_random),
        cmocka_unit_test(test_router_shared_evaluation),
        cmocka_unit_test(test_router_no_view),
        cmocka_unit_test(test_view_copy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
