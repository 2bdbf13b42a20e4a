/* test_registry.c — pkg/registry's cache and backoff against a small HTTP
 * server in a thread of this test that answers like a schema registry
 * (GET /schemas/ids/N, POST /subjects/S/versions) and can be told to fail.
 * The integration test 0985 runs the real registry. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "avro/embedded.h"
#include "registry/registry.h"

/* ---- the server ------------------------------------------------------------------ */

static int listen_fd = -1;
static int port;
static pthread_t thread;
static atomic_int requests;  /* GET /schemas/ids/ answered */
static atomic_int fail_with; /* 0: answer; else this HTTP status */
static atomic_int stop;
static char last_auth[256];
static char last_body[8192];

static const char *schema_of(int id)
{
    static const char *const files[] = {NULL, "order_created.v1.avsc",
                                        "inventory_changed.v1.avsc"};
    if (id < 1 || id > 2)
        return NULL;
    for (const oms_embedded_schema *es = oms_embedded_schemas; es->file; es++)
        if (strcmp(es->file, files[id]) == 0)
            return es->text;
    return NULL;
}

static void answer(int fd, int status, const char *body)
{
    char head[256];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n",
                     status, strlen(body));
    /* the peer may be gone (teardown's wake-up call): no SIGPIPE */
    if (send(fd, head, (size_t)n, MSG_NOSIGNAL) < 0 || send(fd, body, strlen(body), MSG_NOSIGNAL) < 0)
        return;
}

static void serve_one(int fd)
{
    char req[16384];
    size_t len = 0;
    ssize_t r;
    /* headers, then as much body as Content-Length says */
    while (len < sizeof req - 1 && (r = read(fd, req + len, sizeof req - 1 - len)) > 0) {
        len += (size_t)r;
        req[len] = '\0';
        char *end = strstr(req, "\r\n\r\n");
        if (!end)
            continue;
        const char *cl = strstr(req, "Content-Length: ");
        size_t want = cl ? (size_t)atol(cl + 16) : 0;
        if (len - (size_t)(end + 4 - req) >= want)
            break;
    }
    last_auth[0] = '\0';
    const char *a = strstr(req, "Authorization: ");
    if (a)
        sscanf(a + 15, "%255[^\r]", last_auth);
    const char *body = strstr(req, "\r\n\r\n");
    snprintf(last_body, sizeof last_body, "%s", body ? body + 4 : "");
    int id;
    if (sscanf(req, "GET /base/schemas/ids/%d ", &id) == 1) {
        atomic_fetch_add(&requests, 1);
        if (atomic_load(&fail_with)) {
            answer(fd, atomic_load(&fail_with), "{\"error_code\":50001,\"message\":\"broken\"}");
            return;
        }
        if (id == 3) { /* a JSON schema */
            answer(fd, 200, "{\"schema\":\"{\\\"type\\\":\\\"object\\\"}\",\"schemaType\":\"JSON\"}");
            return;
        }
        const char *s = schema_of(id);
        if (!s) {
            answer(fd, 404, "{\"error_code\":40403,\"message\":\"Schema not found\"}");
            return;
        }
        json_t *j = json_pack("{s:s}", "schema", s);
        char *t = json_dumps(j, JSON_COMPACT);
        answer(fd, 200, t);
        free(t);
        json_decref(j);
        return;
    }
    if (strncmp(req, "POST /base/subjects/", 20) == 0) {
        if (strstr(last_body, "refuse"))
            answer(fd, 409, "{\"error_code\":409,\"message\":\"incompatible\"}");
        else
            answer(fd, 200, "{\"id\":42}");
        return;
    }
    if (strncmp(req, "GET /base/subjects ", 19) == 0) {
        answer(fd, atomic_load(&fail_with) ? atomic_load(&fail_with) : 200, "[]");
        return;
    }
    answer(fd, 404, "{}");
}

static void *server_main(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop)) {
        int fd = accept(listen_fd, NULL, NULL);
        if (fd < 0)
            continue;
        serve_one(fd);
        close(fd);
    }
    return NULL;
}

static int setup(void **state)
{
    (void)state;
    listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    if (listen_fd < 0 || bind(listen_fd, (struct sockaddr *)&sa, sizeof sa) ||
        listen(listen_fd, 16) || getsockname(listen_fd, (struct sockaddr *)&sa, &sl))
        return -1;
    port = ntohs(sa.sin_port);
    return pthread_create(&thread, NULL, server_main, NULL) ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    atomic_store(&stop, 1);
    /* wake accept() */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                             .sin_port = htons((uint16_t)port)};
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0)
        close(fd);
    pthread_join(thread, NULL);
    close(listen_fd);
    return 0;
}

static oms_registry *client(oms_events *e, const char *user, int wait_ms)
{
    char url[64], err[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/base/", port);
    oms_registry_opts o = {.url = url, .username = user, .password = "pw", .timeout_ms = 2000,
                           .wait_ms = wait_ms};
    oms_registry *r = oms_registry_new(&o, e, err, sizeof err);
    if (!r)
        fail_msg("oms_registry_new: %s", err);
    return r;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- tests ---------------------------------------------------------------------------- */

static void test_fetch_once_then_cached(void **state)
{
    (void)state;
    char err[512];
    oms_events *e = oms_events_new(NULL, err, sizeof err);
    oms_registry *r = client(e, "alice", 0);
    atomic_store(&requests, 0);
    const oms_events_writer *w = NULL, *w2 = NULL;
    assert_int_equal(oms_registry_lookup(r, 1, &w, err, sizeof err), OMS_OK);
    assert_non_null(w);
    assert_null(oms_events_writer_error(w));
    /* basic auth: alice:pw */
    assert_string_equal(last_auth, "Basic YWxpY2U6cHc=");
    for (int i = 0; i < 100; i++) {
        assert_int_equal(oms_registry_lookup(r, 1, &w2, err, sizeof err), OMS_OK);
        assert_ptr_equal(w, w2);
    }
    assert_int_equal(atomic_load(&requests), 1);
    /* a JSON schema is a writer too */
    assert_int_equal(oms_registry_lookup(r, 3, &w, err, sizeof err), OMS_OK);
    oms_registry_stats st;
    oms_registry_stats_get(r, &st);
    assert_int_equal(st.cached, 2);
    assert_int_equal(st.fetches, 2);
    assert_true(st.up);
    oms_registry_free(r);
    oms_events_free(e);
}

static void test_unknown_id(void **state)
{
    (void)state;
    char err[512];
    oms_events *e = oms_events_new(NULL, err, sizeof err);
    oms_registry *r = client(e, NULL, 0);
    atomic_store(&requests, 0);
    const oms_events_writer *w = NULL;
    assert_int_equal(oms_registry_lookup(r, 77, &w, err, sizeof err), OMS_ENOTFOUND);
    assert_non_null(strstr(err, "unknown to the schema registry (Schema not found)"));
    /* not asked again at once */
    assert_int_equal(oms_registry_lookup(r, 77, &w, err, sizeof err), OMS_ENOTFOUND);
    assert_int_equal(atomic_load(&requests), 1);
    assert_string_equal(last_auth, "");
    oms_registry_free(r);
    oms_events_free(e);
}

static void test_down_backoff_and_back(void **state)
{
    (void)state;
    char err[512];
    oms_events *e = oms_events_new(NULL, err, sizeof err);
    oms_registry *r = client(e, NULL, 0);
    const oms_events_writer *w = NULL;
    assert_int_equal(oms_registry_lookup(r, 1, &w, err, sizeof err), OMS_OK);
    atomic_store(&fail_with, 503);
    atomic_store(&requests, 0);
    /* an id not cached waits: EAGAIN, and no request during the backoff */
    assert_int_equal(oms_registry_lookup(r, 2, &w, err, sizeof err), OMS_EAGAIN);
    assert_non_null(strstr(err, "answered 503"));
    assert_int_equal(oms_registry_lookup(r, 2, &w, err, sizeof err), OMS_EAGAIN);
    assert_non_null(strstr(err, "next try in"));
    assert_int_equal(atomic_load(&requests), 1);
    /* the cached id still answers */
    assert_int_equal(oms_registry_lookup(r, 1, &w, err, sizeof err), OMS_OK);
    oms_registry_stats st;
    oms_registry_stats_get(r, &st);
    assert_false(st.up);
    assert_int_equal(st.backoff_ms, 250);
    assert_true(st.waits >= 2);
    /* the backoff doubles */
    sleep_ms(300);
    assert_int_equal(oms_registry_lookup(r, 2, &w, err, sizeof err), OMS_EAGAIN);
    oms_registry_stats_get(r, &st);
    assert_int_equal(st.backoff_ms, 500);
    assert_int_equal(atomic_load(&requests), 2);
    /* a probe reports the state without moving the backoff */
    assert_int_equal(oms_registry_probe(r, err, sizeof err), OMS_EAGAIN);
    /* back: after the backoff the id comes */
    atomic_store(&fail_with, 0);
    sleep_ms(550);
    assert_int_equal(oms_registry_lookup(r, 2, &w, err, sizeof err), OMS_OK);
    oms_registry_stats_get(r, &st);
    assert_true(st.up);
    assert_int_equal(st.backoff_ms, 0);
    assert_int_equal(oms_registry_probe(r, err, sizeof err), OMS_OK);
    oms_registry_free(r);
    oms_events_free(e);
}

static void *heal_later(void *arg)
{
    (void)arg;
    sleep_ms(600);
    atomic_store(&fail_with, 0);
    return NULL;
}

/* A CLI's client waits for the registry (wait_ms) instead of failing. */
static void test_wait_for_registry(void **state)
{
    (void)state;
    char err[512];
    oms_events *e = oms_events_new(NULL, err, sizeof err);
    oms_registry *r = client(e, NULL, 5000);
    atomic_store(&fail_with, 500);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, heal_later, NULL), 0);
    const oms_events_writer *w = NULL;
    int rc = oms_registry_lookup(r, 2, &w, err, sizeof err);
    pthread_join(t, NULL);
    if (rc)
        fail_msg("lookup: %s", err);
    assert_non_null(w);
    oms_registry_free(r);
    oms_events_free(e);
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* A wait that ended in vain is not repeated for every other new id. */
static void test_wait_once(void **state)
{
    (void)state;
    char err[512];
    oms_events *e = oms_events_new(NULL, err, sizeof err);
    oms_registry *r = client(e, NULL, 400);
    atomic_store(&fail_with, 500);
    const oms_events_writer *w = NULL;
    uint64_t t0 = mono_ms();
    assert_int_equal(oms_registry_lookup(r, 1, &w, err, sizeof err), OMS_EAGAIN);
    uint64_t t1 = mono_ms();
    assert_true(t1 - t0 >= 350);
    assert_int_equal(oms_registry_lookup(r, 2, &w, err, sizeof err), OMS_EAGAIN);
    assert_true(mono_ms() - t1 < 200);
    atomic_store(&fail_with, 0);
    oms_registry_free(r);
    oms_events_free(e);
}

static void test_register_and_errors(void **state)
{
    (void)state;
    char err[512];
    oms_events *e = oms_events_new(NULL, err, sizeof err);
    oms_registry *r = client(e, NULL, 0);
    uint32_t id = 0;
    int rc = oms_registry_register(r, "oms.orders-value", "{\"type\":\"string\"}", &id, err,
                                   sizeof err);
    if (rc)
        fail_msg("register: %s", err);
    assert_int_equal(id, 42);
    assert_non_null(strstr(last_body, "\"schemaType\":\"AVRO\""));
    assert_int_equal(oms_registry_register(r, "oms.orders-value", "\"refuse\"", &id, err,
                                           sizeof err),
                     OMS_ESCHEMA);
    assert_non_null(strstr(err, "incompatible"));
    char subject[64];
    oms_registry_subject("oms.inventory", subject, sizeof subject);
    assert_string_equal(subject, "oms.inventory-value");
    oms_registry_free(r);
    /* a URL that is not http(s) */
    oms_registry_opts o = {.url = "ftp://x"};
    assert_null(oms_registry_new(&o, e, err, sizeof err));
    assert_non_null(strstr(err, "must start with http://"));
    /* nothing listens: EAGAIN, not a DLQ verdict */
    o.url = "http://127.0.0.1:1";
    r = oms_registry_new(&o, e, err, sizeof err);
    const oms_events_writer *w = NULL;
    assert_int_equal(oms_registry_lookup(r, 1, &w, err, sizeof err), OMS_EAGAIN);
    oms_registry_free(r);
    oms_events_free(e);
}

/* The events own an attached registry; decoding goes through it. */
static void test_attached(void **state)
{
    (void)state;
    char err[512];
    oms_events *e = oms_events_new(NULL, err, sizeof err);
    oms_registry_attach(client(e, NULL, 0), e);
    oms_event ev;
    memset(&ev, 0, sizeof ev);
    ev.type = OMS_EV_INVENTORY_CHANGED;
    strcpy(ev.event_id, "01890a5d-ac96-774b-bcce-b302099a8057");
    ev.occurred_at = 1;
    ev.source = "s";
    ev.product_id = 3;
    ev.product_name = "P";
    ev.quantity = 4;
    ev.threshold = 5;
    ev.status = "low_stock";
    uint8_t buf[512];
    size_t n = 0;
    assert_int_equal(oms_event_encode_confluent(e, &ev, 2, buf, sizeof buf, &n, err, sizeof err),
                     0);
    oms_event back;
    int rc = oms_event_decode(e, buf, n, &back, err, sizeof err);
    if (rc)
        fail_msg("decode: %s", err);
    assert_int_equal(back.quantity, 4);
    oms_event_clear(&back);
    oms_events_free(e); /* frees the registry: ASan says whether */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fetch_once_then_cached),
        cmocka_unit_test(test_unknown_id),
        cmocka_unit_test(test_down_backoff_and_back),
        cmocka_unit_test(test_wait_for_registry),
        cmocka_unit_test(test_wait_once),
        cmocka_unit_test(test_register_and_errors),
        cmocka_unit_test(test_attached),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
