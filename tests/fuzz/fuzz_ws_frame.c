/* fuzz_ws_frame.c — the plain WebSocket dialect's frame handler,
 * oms_session_on_text (pkg/gateway), with varied principals and rates.
 *
 * Input: byte 0 picks the principal (low 3 bits: admin 1, staff 2,
 * customer 3, customer 4, service, customer 0, staff 0, admin 9) and the
 * rate limit (high bits: 1, 3, 20 or 100 per minute); byte 1 the clock
 * step between frames. The rest is frames separated by '\n', "@T0".."@T9"
 * standing for real tokens (fuzz.h). Invariants: every answer serializes
 * as a frame, the answer index is valid, a refresh never changes who the
 * session is, customers and services never subscribe to inventory,
 * services never subscribe at all, exp never moves backwards past a valid
 * refresh. */
#include <string.h>

#include "fuzz.h"
#include "gateway/gateway.h"

static int64_t g_t0_ms;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    g_t0_ms = oms_now_ms();
    fuzz_tokens_init(g_t0_ms / 1000);
    return 0;
}

static json_t *positions(void *ud, oms_topic_kind kind)
{
    (void)ud;
    return json_pack("[s]", kind == OMS_TOPIC_ORDERS ? "oms.orders:0:1" : "oms.x:1:2");
}

static const char *const k_events[] = {"error",         "subscription_confirmed", "unsubscribed",
                                       "pong",          "token_refreshed",        "resumed"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!g_t0_ms)
        LLVMFuzzerInitialize(NULL, NULL);
    if (size < 2)
        return 0;
    static const struct {
        oms_role role;
        int64_t uid;
    } who[8] = {{OMS_ROLE_ADMIN, 1},    {OMS_ROLE_STAFF, 2},    {OMS_ROLE_CUSTOMER, 3},
                {OMS_ROLE_CUSTOMER, 4}, {OMS_ROLE_SERVICE, 0},  {OMS_ROLE_CUSTOMER, 0},
                {OMS_ROLE_STAFF, 0},    {OMS_ROLE_ADMIN, 9}};
    static const int rates[4] = {1, 3, 20, 100};
    oms_principal p;
    memset(&p, 0, sizeof p);
    p.role = who[data[0] & 7].role;
    p.user_id = who[data[0] & 7].uid;
    p.exp = g_t0_ms / 1000 + 3600;
    snprintf(p.sub, sizeof p.sub, "%lld", (long long)p.user_id);
    int64_t step_ms = (int64_t)data[1] * 97;

    size_t len;
    char *text = fuzz_expand(data + 2, size - 2, &len);
    oms_session s;
    int64_t now = g_t0_ms;
    oms_session_init(&s, &p, rates[(data[0] >> 3) & 3], now);
    oms_gw_env env = {fuzz_auth(), positions, NULL, now, NULL};

    size_t at = 0;
    while (at <= len) {
        const char *nl = memchr(text + at, '\n', len - at);
        size_t flen = nl ? (size_t)(nl - (text + at)) : len - at;
        env.now_ms = now;
        int64_t exp_before = s.who.exp;
        oms_gw_out out;
        memset(&out, 0, sizeof out);
        out.answer = -1;
        oms_session_on_text(&s, &env, text + at, flen, &out);

        FUZZ_CHECK(out.n >= 0 && out.n <= OMS_GW_MAX_MSGS, "n=%d", out.n);
        FUZZ_CHECK(out.answer >= -1 && out.answer < out.n, "answer=%d n=%d", out.answer, out.n);
        for (int i = 0; i < out.n; i++) {
            bool known = false;
            for (size_t k = 0; k < OMS_ARRAY_LEN(k_events); k++)
                known |= out.msgs[i].event && strcmp(out.msgs[i].event, k_events[k]) == 0;
            FUZZ_CHECK(known, "event '%s'", out.msgs[i].event ? out.msgs[i].event : "(null)");
            size_t fl = 0;
            char *frame = oms_gw_frame_text(out.msgs[i].event, out.msgs[i].data, &fl);
            FUZZ_CHECK(frame != NULL, "answer '%s' does not serialize", out.msgs[i].event);
            free(frame);
        }
        FUZZ_CHECK(s.who.user_id == p.user_id && s.who.role == p.role,
                   "session changed principal to %lld/%d", (long long)s.who.user_id,
                   (int)s.who.role);
        if (!out.exp_changed)
            FUZZ_CHECK(s.who.exp == exp_before, "exp moved without a refresh");
        bool staff = p.role == OMS_ROLE_STAFF || p.role == OMS_ROLE_ADMIN;
        if (!staff)
            FUZZ_CHECK(!(s.subs & OMS_SUB_INVENTORY), "a %s subscribed to inventory",
                       oms_role_name(p.role));
        if (p.role == OMS_ROLE_SERVICE)
            FUZZ_CHECK(s.subs == 0, "a service subscribed");
        FUZZ_CHECK(!oms_session_wants(&s, OMS_EV_INVENTORY_CHANGED, 0) || staff,
                   "a non-staff session wants inventory");
        FUZZ_CHECK(!oms_session_wants(&s, OMS_EV_USER_NOTIFICATION, 77),
                   "a session wants another user's notification");
        if (!staff)
            FUZZ_CHECK(!oms_session_wants(&s, OMS_EV_ORDER_CREATED, p.user_id + 1),
                       "a customer wants another user's order");
        int close = out.close_code;
        oms_gw_out_clear(&out);
        if (close || !nl)
            break;
        at += flen + 1;
        now += step_ms;
    }
    oms_session_clear(&s); /* subscription filters */
    free(text);
    return 0;
}
