/* test_pg.c — pkg/pg, the pure parts: Postgres array literals, the fold of a
 * batch into one row per key and statement, the offsets parameters, and the
 * embedded migrations. (The SQL itself runs against a real Postgres in
 * tests/integration/04*.) */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg/embedded.h"
#include "pg/pg_internal.h"

/* ---- reading a binary array back as a text literal ---------------------------------- */

static uint32_t get32(const unsigned char *b)
{
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

static void quoted(char **o, const char *s, size_t len)
{
    *(*o)++ = '"';
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '"' || s[i] == '\\')
            *(*o)++ = '\\';
        *(*o)++ = s[i];
    }
    *(*o)++ = '"';
}

/* The array in the text form Postgres would print ({"a",1,NULL}), checking
 * the binary header on the way. */
static const char *render(pg_array *a)
{
    static char out[8192];
    int len = 0;
    const unsigned char *b = (const unsigned char *)pg_array_bytes(a, &len);
    assert_non_null(b);
    static const uint32_t oids[] = {25, 20, 23, 701, 2950, 3802};
    assert_int_equal(get32(b + 8), oids[a->type]);
    char *o = out;
    *o++ = '{';
    if (get32(b) == 0) {
        assert_int_equal(len, 12);
    } else {
        assert_int_equal(get32(b), 1);
        assert_int_equal(get32(b + 16), 1);
        uint32_t n = get32(b + 12);
        const unsigned char *p = b + 20;
        bool nulls = false;
        for (uint32_t i = 0; i < n; i++) {
            if (i)
                *o++ = ',';
            uint32_t l = get32(p);
            p += 4;
            if (l == 0xFFFFFFFFu) {
                o += sprintf(o, "NULL");
                nulls = true;
                continue;
            }
            switch (a->type) {
            case PG_T_TEXT: quoted(&o, (const char *)p, l); break;
            case PG_T_JSONB:
                assert_int_equal(p[0], 1);
                quoted(&o, (const char *)p + 1, l - 1);
                break;
            case PG_T_INT4:
                assert_int_equal(l, 4);
                o += sprintf(o, "%d", (int32_t)get32(p));
                break;
            case PG_T_INT8:
                assert_int_equal(l, 8);
                o += sprintf(o, "%lld", (long long)((uint64_t)get32(p) << 32 | get32(p + 4)));
                break;
            case PG_T_FLOAT8: {
                assert_int_equal(l, 8);
                uint64_t bits = (uint64_t)get32(p) << 32 | get32(p + 4);
                double d;
                memcpy(&d, &bits, sizeof d);
                o += sprintf(o, "%.15g", d);
                break;
            }
            case PG_T_UUID:
                assert_int_equal(l, 16);
                for (int k = 0; k < 16; k++)
                    o += sprintf(o, "%s%02x", k == 4 || k == 6 || k == 8 || k == 10 ? "-" : "",
                                 p[k]);
                break;
            }
            p += l;
        }
        assert_int_equal(get32(b + 4), nulls ? 1 : 0);
        assert_int_equal((int)(p - b), len);
    }
    *o++ = '}';
    *o = '\0';
    return out;
}

static void test_arrays(void **state)
{
    (void)state;
    pg_array a;
    memset(&a, 0, sizeof a);
    pg_array_reset(&a, PG_T_TEXT);
    assert_string_equal(render(&a), "{}");
    pg_array_str(&a, "plain");
    pg_array_str(&a, "with \"quotes\" and \\backslash\\");
    pg_array_str(&a, NULL);
    pg_array_str(&a, "");
    pg_array_str(&a, "{braces},commas");
    assert_string_equal(render(&a),
                        "{\"plain\",\"with \\\"quotes\\\" and \\\\backslash\\\\\",NULL,\"\","
                        "\"{braces},commas\"}");
    /* finishing twice gives the same bytes; more elements may follow */
    assert_string_equal(render(&a), render(&a));
    pg_array_str(&a, "more");
    assert_non_null(strstr(render(&a), ",\"more\"}"));
    pg_array_reset(&a, PG_T_INT8);
    pg_array_i64(&a, -1);
    pg_array_i64(&a, INT64_MAX);
    pg_array_i64(&a, INT64_MIN);
    assert_string_equal(render(&a), "{-1,9223372036854775807,-9223372036854775808}");
    pg_array_reset(&a, PG_T_INT4);
    pg_array_i64(&a, -5);
    pg_array_i64(&a, 2147483647);
    pg_array_str(&a, NULL);
    assert_string_equal(render(&a), "{-5,2147483647,NULL}");
    pg_array_reset(&a, PG_T_FLOAT8);
    pg_array_dbl(&a, 99.99);
    pg_array_dbl(&a, 0.1 + 0.2);
    pg_array_dbl(&a, 1e20);
    assert_string_equal(render(&a), "{99.99,0.3,1e+20}");
    pg_array_reset(&a, PG_T_UUID);
    pg_array_str(&a, "01A21416-7804-764a-bd7b-595a7bc49cb3");
    assert_string_equal(render(&a), "{01a21416-7804-764a-bd7b-595a7bc49cb3}");
    pg_array_reset(&a, PG_T_JSONB);
    pg_array_str(&a, "{\"k\":1}");
    assert_string_equal(render(&a), "{\"{\\\"k\\\":1}\"}");
    pg_array_free(&a);
}

static void test_array_bad_elements(void **state)
{
    (void)state;
    pg_array a;
    memset(&a, 0, sizeof a);
    int len;
    const char *bad_uuids[] = {"not-a-uuid", "01a21416-7804-764a-bd7b-595a7bc49cb", "",
                               "01a21416-7804-764a-bd7b-595a7bc49cb3ff",
                               "g1a21416-7804-764a-bd7b-595a7bc49cb3"};
    for (size_t i = 0; i < OMS_ARRAY_LEN(bad_uuids); i++) {
        pg_array_reset(&a, PG_T_UUID);
        pg_array_str(&a, bad_uuids[i]);
        assert_null(pg_array_bytes(&a, &len));
    }
    /* a number in a text column, a string in a number column: refused */
    pg_array_reset(&a, PG_T_TEXT);
    pg_array_i64(&a, 1);
    assert_null(pg_array_bytes(&a, &len));
    pg_array_reset(&a, PG_T_INT8);
    pg_array_str(&a, "1");
    assert_null(pg_array_bytes(&a, &len));
    pg_array_reset(&a, PG_T_INT8);
    pg_array_dbl(&a, 1.0);
    assert_null(pg_array_bytes(&a, &len));
    pg_array_free(&a);
}

static void test_params(void **state)
{
    (void)state;
    pg_params p = {0};
    pg_array a;
    memset(&a, 0, sizeof a);
    pg_array_reset(&a, PG_T_INT4);
    pg_array_i64(&a, 3);
    pg_params_text(&p, "group");
    assert_true(pg_params_array(&p, &a));
    assert_int_equal(p.n, 2);
    assert_int_equal(p.formats[0], 0);
    assert_string_equal(p.values[0], "group");
    assert_int_equal(p.formats[1], 1);
    assert_int_equal(p.lengths[1], 28);
    for (int i = 2; i < PG_MAX_PARAMS; i++)
        pg_params_text(&p, "x");
    pg_params_text(&p, "one too many"); /* ignored */
    assert_int_equal(p.n, PG_MAX_PARAMS);
    assert_false(pg_params_array(&p, &a));
    pg_array_free(&a);
}

/* ---- a batch built by hand ---------------------------------------------------------- */

static oms_event evs[16];
static oms_pg_record recs[16];
static size_t nrecs;

static oms_pg_record *add(oms_event_type t, int32_t partition, int64_t offset)
{
    oms_event *ev = &evs[nrecs];
    memset(ev, 0, sizeof *ev);
    ev->type = t;
    snprintf(ev->event_id, sizeof ev->event_id, "01a21416-7804-764a-bd7b-%012zu", nrecs);
    /* (digits only: a valid UUID) */
    ev->occurred_at = 1700000000000 + (int64_t)nrecs;
    ev->source = "test";
    recs[nrecs] = (oms_pg_record){.ev = ev,
                                  .topic = t <= OMS_EV_ORDER_STATUS_CHANGED ? "o"
                                           : t == OMS_EV_INVENTORY_CHANGED  ? "i"
                                                                            : "n",
                                  .partition = partition,
                                  .offset = offset};
    return &recs[nrecs++];
}

static void order(oms_event_type t, const char *id, const char *status, int64_t offset)
{
    oms_pg_record *r = add(t, 1, offset);
    oms_event *ev = (oms_event *)r->ev;
    ev->order_id = (char *)id;
    ev->alias_id = "A";
    ev->user_id = 7;
    ev->status = (char *)status;
    ev->total_amount = 12.5;
}

static void stock(int64_t product, int32_t qty, int64_t offset)
{
    oms_pg_record *r = add(OMS_EV_INVENTORY_CHANGED, 2, offset);
    oms_event *ev = (oms_event *)r->ev;
    ev->product_id = product;
    ev->product_name = "P";
    ev->quantity = qty;
    ev->threshold = 1;
    ev->status = "in_stock";
}

static const char *col(pg_fold *f, pg_query q, int c)
{
    return render(&f->cols[q][c]);
}

static pg_fold *fold_all(void)
{
    static size_t idx[16];
    static pg_fold f;
    for (size_t i = 0; i < nrecs; i++)
        idx[i] = i;
    assert_int_equal(pg_fold_build(&f, recs, idx, nrecs), OMS_OK);
    return &f;
}

static void test_fold_orders(void **state)
{
    (void)state;
    nrecs = 0;
    /* x: created in an earlier batch, changed twice here */
    order(OMS_EV_ORDER_STATUS_CHANGED, "x", "confirmed", 10);
    /* y: created here, then changed twice */
    order(OMS_EV_ORDER_CREATED, "y", "created", 11);
    order(OMS_EV_ORDER_STATUS_CHANGED, "x", "shipped", 12);
    order(OMS_EV_ORDER_STATUS_CHANGED, "y", "confirmed", 13);
    order(OMS_EV_ORDER_STATUS_CHANGED, "y", "cancelled", 14);
    /* z: changed before it is created in the same batch: the change must
     * be checked against the stored rows, before the creation */
    order(OMS_EV_ORDER_STATUS_CHANGED, "z", "shipped", 15);
    order(OMS_EV_ORDER_CREATED, "z", "created", 16);
    pg_fold *f = fold_all();

    /* one stored-row update per order changed before any creation */
    assert_int_equal(f->rows[PG_Q_ORDERS_PRE], 2);
    assert_string_equal(col(f, PG_Q_ORDERS_PRE, 0), "{\"x\",\"z\"}");
    assert_string_equal(col(f, PG_Q_ORDERS_PRE, 1), "{\"shipped\",\"shipped\"}");
    assert_string_equal(col(f, PG_Q_ORDERS_PRE, 3), "{\"o:1:12\",\"o:1:15\"}");
    assert_string_equal(col(f, PG_Q_ORDERS_PRE, 5), "{12,15}");
    /* their history first, every event */
    assert_int_equal(f->rows[PG_Q_HISTORY_PRE], 3);
    assert_string_equal(col(f, PG_Q_HISTORY_PRE, 0), "{\"x\",\"x\",\"z\"}");
    assert_string_equal(col(f, PG_Q_HISTORY_PRE, 3), "{\"o:1:10\",\"o:1:12\",\"o:1:15\"}");
    /* one upsert per created order, folded with what follows it */
    assert_int_equal(f->rows[PG_Q_ORDERS], 2);
    assert_string_equal(col(f, PG_Q_ORDERS, 0), "{\"y\",\"z\"}");
    assert_string_equal(col(f, PG_Q_ORDERS, 3), "{\"cancelled\",\"created\"}");
    assert_string_equal(col(f, PG_Q_ORDERS, 4), "{12.5,12.5}");
    assert_string_equal(col(f, PG_Q_ORDERS, 5), "{\"[]\",\"[]\"}");
    assert_string_equal(col(f, PG_Q_ORDERS, 6), "{1700000000001,1700000000006}"); /* created */
    assert_string_equal(col(f, PG_Q_ORDERS, 7), "{1700000000004,1700000000006}"); /* updated */
    assert_string_equal(col(f, PG_Q_ORDERS, 8), "{\"o:1:14\",\"o:1:16\"}");
    assert_int_equal(f->rows[PG_Q_HISTORY], 4);
    assert_string_equal(col(f, PG_Q_HISTORY, 1),
                        "{\"created\",\"confirmed\",\"cancelled\",\"created\"}");
    assert_int_equal(f->rows[PG_Q_INVENTORY], 0);
    assert_int_equal(f->rows[PG_Q_NOTIFICATIONS], 0);
    pg_fold_free(f);
}

static void test_fold_inventory_and_notifications(void **state)
{
    (void)state;
    nrecs = 0;
    stock(5, 10, 100);
    stock(6, 3, 101);
    stock(5, 8, 102);
    oms_pg_record *r = add(OMS_EV_USER_NOTIFICATION, 3, 7);
    oms_event *ev = (oms_event *)r->ev;
    ev->user_id = 42;
    ev->title = "T";
    ev->message = "M \"quoted\"";
    ev->data_json = "{\"k\":1}";
    r = add(OMS_EV_SYSTEM_NOTIFICATION, 3, 8);
    ev = (oms_event *)r->ev;
    ev->title = "S";
    ev->message = "all";
    ev->severity = "warning";
    /* the same notification delivered twice: one row, the last */
    r = add(OMS_EV_SYSTEM_NOTIFICATION, 3, 9);
    memcpy(((oms_event *)r->ev)->event_id, evs[4].event_id, sizeof evs[4].event_id);
    ev = (oms_event *)r->ev;
    ev->title = "S2";
    ev->message = "all";
    ev->severity = "info";
    pg_fold *f = fold_all();
    assert_int_equal(f->rows[PG_Q_INVENTORY], 2);
    assert_string_equal(col(f, PG_Q_INVENTORY, 0), "{5,6}");
    assert_string_equal(col(f, PG_Q_INVENTORY, 2), "{8,3}");
    assert_string_equal(col(f, PG_Q_INVENTORY, 6), "{\"i:2:102\",\"i:2:101\"}");
    assert_int_equal(f->rows[PG_Q_NOTIFICATIONS], 2);
    assert_string_equal(col(f, PG_Q_NOTIFICATIONS, 1), "{\"user\",\"system\"}");
    assert_string_equal(col(f, PG_Q_NOTIFICATIONS, 2), "{42,NULL}");
    assert_string_equal(col(f, PG_Q_NOTIFICATIONS, 3), "{\"T\",\"S2\"}");
    assert_string_equal(col(f, PG_Q_NOTIFICATIONS, 4), "{\"M \\\"quoted\\\"\",\"all\"}");
    assert_string_equal(col(f, PG_Q_NOTIFICATIONS, 5), "{NULL,\"info\"}");
    assert_string_equal(col(f, PG_Q_NOTIFICATIONS, 6), "{\"{\\\"k\\\":1}\",NULL}");
    assert_int_equal(f->rows[PG_Q_ORDERS] + f->rows[PG_Q_HISTORY], 0);
    pg_fold_free(f);
}

static void test_fold_subset_keeps_order(void **state)
{
    (void)state;
    nrecs = 0;
    order(OMS_EV_ORDER_CREATED, "a", "created", 1);
    order(OMS_EV_ORDER_STATUS_CHANGED, "a", "confirmed", 2);
    order(OMS_EV_ORDER_STATUS_CHANGED, "a", "shipped", 3);
    /* bisection folds halves: the second half alone is two changes of a
     * stored order */
    size_t idx[2] = {1, 2};
    pg_fold f;
    memset(&f, 0, sizeof f);
    assert_int_equal(pg_fold_build(&f, recs, idx, 2), OMS_OK);
    assert_int_equal(f.rows[PG_Q_ORDERS], 0);
    assert_int_equal(f.rows[PG_Q_ORDERS_PRE], 1);
    assert_string_equal(col(&f, PG_Q_ORDERS_PRE, 1), "{\"shipped\"}");
    assert_int_equal(f.rows[PG_Q_HISTORY_PRE], 2);
    /* an empty set folds to nothing */
    assert_int_equal(pg_fold_build(&f, recs, idx, 0), OMS_OK);
    for (int q = 0; q < PG_FOLD_COUNT; q++)
        assert_int_equal(f.rows[q], 0);
    pg_fold_free(&f);
}

static void test_order_items_json(void **state)
{
    (void)state;
    nrecs = 0;
    order(OMS_EV_ORDER_CREATED, "i", "created", 1);
    oms_order_item items[2] = {{16, "Product \"16\"", 3, 80.22}, {7, NULL, 1, 0.1}};
    ((oms_event *)recs[0].ev)->items = items;
    ((oms_event *)recs[0].ev)->nitems = 2;
    pg_fold *f = fold_all();
    /* JSON text, quoted inside the array literal */
    assert_string_equal(col(f, PG_Q_ORDERS, 5),
                        "{\"[{\\\"productId\\\":16,\\\"productName\\\":\\\"Product "
                        "\\\\\\\"16\\\\\\\"\\\",\\\"quantity\\\":3,\\\"price\\\":80.22},"
                        "{\\\"productId\\\":7,\\\"productName\\\":\\\"\\\","
                        "\\\"quantity\\\":1,\\\"price\\\":0.1}]\"}");
    pg_fold_free(f);
}

static void test_cursor_arrays(void **state)
{
    (void)state;
    oms_pg_cursor c[2] = {{"t.orders", 0, 10, 25}, {"t.inventory", 5, 0, 3}};
    pg_array a[4];
    memset(a, 0, sizeof a);
    assert_int_equal(pg_cursor_arrays(c, 2, a), OMS_OK);
    assert_string_equal(render(&a[0]), "{\"t.orders\",\"t.inventory\"}");
    assert_string_equal(render(&a[1]), "{0,5}");
    assert_string_equal(render(&a[2]), "{10,0}");
    assert_string_equal(render(&a[3]), "{25,3}");
    for (int i = 0; i < 4; i++)
        pg_array_free(&a[i]);
}

static void test_position(void **state)
{
    (void)state;
    oms_pg_record r = {.topic = "oms.orders", .partition = 3, .offset = 1042};
    char buf[64];
    pg_position(&r, buf, sizeof buf);
    assert_string_equal(buf, "oms.orders:3:1042");
}

static void test_migrations_embedded(void **state)
{
    (void)state;
    int prev = 0, n = 0;
    for (const oms_pg_migration *m = oms_pg_migrations; m->file; m++, n++) {
        assert_true(m->version > prev);
        prev = m->version;
        assert_non_null(strstr(m->file, ".sql"));
        assert_true(strlen(m->sql) > 0);
    }
    assert_true(n >= 1);
    assert_int_equal(oms_pg_migrations_latest(), prev);
    /* the first creates the tables of the contract */
    const char *sql = oms_pg_migrations[0].sql;
    const char *tables[] = {"CREATE TABLE orders", "CREATE TABLE order_status_history",
                            "CREATE TABLE inventory", "CREATE TABLE notifications",
                            "CREATE TABLE oms_offsets"};
    for (size_t i = 0; i < OMS_ARRAY_LEN(tables); i++)
        assert_non_null(strstr(sql, tables[i]));
}

/* ---- connection settings (no server needed) ------------------------------------------ */

static void test_conn_config(void **state)
{
    oms_config c;
    char err[512], where[300];
    assert_int_equal(oms_config_defaults(&c), 0);
    oms_pg_describe(&c, where, sizeof where);
    assert_string_equal(where, "'127.0.0.1:5432' database 'oms'");
    assert_int_equal(oms_pg_check_config(&c, err, sizeof err), 0);

    /* the URL's password never shows */
    free(c.database.url);
    c.database.url = strdup("postgresql://omsd:TOPSECRET@pg.internal:5433/orders?sslmode=require");
    oms_pg_describe(&c, where, sizeof where);
    assert_string_equal(where, "'pg.internal:5433' database 'orders' (database.url)");
    assert_int_equal(oms_pg_check_config(&c, err, sizeof err), 0);
    free(c.database.url);
    c.database.url = strdup("postgresql://omsd:TOPSECRET@pg.internal:5433/oms?sslmod=require");
    assert_int_equal(oms_pg_check_config(&c, err, sizeof err), OMS_ECONFIG);
    assert_string_equal(err, "database.url (or DATABASE_URL): invalid URI query parameter: "
                             "\"sslmod\"");
    assert_null(strstr(err, "TOPSECRET"));
    free(c.database.url);
    c.database.url = strdup("host=x password=TOPSECRET port");
    assert_int_equal(oms_pg_check_config(&c, err, sizeof err), OMS_ECONFIG);
    assert_null(strstr(err, "TOPSECRET"));
    free(c.database.url);
    c.database.url = strdup("");

    /* database.params: libpq's keywords only */
    c.database.params[0] = (oms_kv){strdup("sslcert"), strdup("/x.crt")};
    c.database.params[1] = (oms_kv){strdup("sslmod"), strdup("require")};
    c.database.nparams = 1;
    assert_int_equal(oms_pg_check_config(&c, err, sizeof err), 0);
    c.database.nparams = 2;
    assert_int_equal(oms_pg_check_config(&c, err, sizeof err), OMS_ECONFIG);
    assert_string_equal(err, "database.params: 'sslmod' is not a libpq connection parameter");
    oms_config_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_arrays),
        cmocka_unit_test(test_array_bad_elements),
        cmocka_unit_test(test_params),
        cmocka_unit_test(test_fold_orders),
        cmocka_unit_test(test_fold_inventory_and_notifications),
        cmocka_unit_test(test_fold_subset_keeps_order),
        cmocka_unit_test(test_order_items_json),
        cmocka_unit_test(test_cursor_arrays),
        cmocka_unit_test(test_position),
        cmocka_unit_test(test_conn_config),
        cmocka_unit_test(test_migrations_embedded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
