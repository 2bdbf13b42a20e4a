/* test_log.c — pkg/log: JSON and text lines, escaping, filtering, limits. */
#define _GNU_SOURCE /* F_SETPIPE_SZ */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "common/oms.h"
#include "log/log.h"

/* A pipe whose read end is non-blocking, so a test that expects no output
 * gets "nothing" instead of hanging. */
typedef struct {
    int rd, wr;
} pipe_fds;

static pipe_fds open_pipe(void)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
#ifdef F_SETPIPE_SZ
    /* Room for several lines at the 64 KiB cap (the default is 64 KiB). */
    fcntl(fds[1], F_SETPIPE_SZ, 1 << 20);
#endif
    fcntl(fds[0], F_SETFL, O_NONBLOCK);
    return (pipe_fds){fds[0], fds[1]};
}

static void close_pipe(pipe_fds p)
{
    close(p.rd);
    close(p.wr);
}

/* Everything written so far (caller frees), NUL-terminated. */
static char *drain(pipe_fds p, size_t *len_out)
{
    size_t cap = 1 << 17, len = 0;
    char *buf = malloc(cap + 1);
    assert_non_null(buf);
    for (;;) {
        ssize_t r = read(p.rd, buf + len, cap - len);
        if (r <= 0)
            break;
        len += (size_t)r;
        if (len == cap) {
            cap *= 2;
            buf = realloc(buf, cap + 1);
            assert_non_null(buf);
        }
    }
    buf[len] = '\0';
    if (len_out)
        *len_out = len;
    return buf;
}

static size_t count_lines(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* Parse one JSON line, asserting it is exactly one line and valid JSON. */
static json_t *parse_line(const char *line)
{
    assert_int_equal(count_lines(line), 1);
    assert_true(line[strlen(line) - 1] == '\n');
    json_error_t jerr;
    json_t *j = json_loads(line, 0, &jerr);
    if (!j)
        fail_msg("invalid JSON (%s at %d): %s", jerr.text, jerr.position, line);
    return j;
}

static void test_json_fields_and_types(void **state)
{
    pipe_fds p = open_pipe();
    oms_logger *lg = oms_logger_new(p.wr, OMS_LOG_DEBUG, OMS_LOG_FORMAT_JSON);
    assert_non_null(lg);
    oms_log(lg, OMS_LOG_WARN, "record not decodable", OMS_LS("topic", "oms.orders"),
            OMS_LI("partition", 3), OMS_LI("offset", INT64_C(9007199254740993)),
            OMS_LD("ratio", 0.25), OMS_LD("whole", 3.0), OMS_LB("retry", 1), OMS_LB("fatal", 0),
            OMS_LD("sum", 0.1 + 0.7), OMS_LD("big", 1e21));
    char *out = drain(p, NULL);
    json_t *j = parse_line(out);

    const char *ts = json_string_value(json_object_get(j, "ts"));
    assert_non_null(ts);
    int64_t ms;
    assert_int_equal(oms_parse_iso8601_ms(ts, &ms), 0);
    assert_true(llabs((long long)(oms_now_ms() - ms)) < 60000);
    assert_int_equal(strlen(ts), 24); /* 2026-11-25T18:13:04.123Z */
    assert_string_equal(json_string_value(json_object_get(j, "level")), "warn");
    assert_string_equal(json_string_value(json_object_get(j, "msg")), "record not decodable");
    assert_string_equal(json_string_value(json_object_get(j, "topic")), "oms.orders");
    assert_true(json_is_integer(json_object_get(j, "partition")));
    assert_int_equal(json_integer_value(json_object_get(j, "partition")), 3);
    assert_int_equal(json_integer_value(json_object_get(j, "offset")),
                     INT64_C(9007199254740993));
    assert_true(json_is_real(json_object_get(j, "ratio")));
    assert_true(json_real_value(json_object_get(j, "ratio")) == 0.25);
    assert_true(json_is_real(json_object_get(j, "whole")));
    /* the shortest digits that read back, as every JSON of the project */
    assert_non_null(strstr(out, "\"whole\":3.0,"));
    assert_non_null(strstr(out, "\"sum\":0.7999999999999999,\"big\":1e21}"));
    assert_true(json_real_value(json_object_get(j, "sum")) == 0.1 + 0.7);
    assert_true(json_is_true(json_object_get(j, "retry")));
    assert_true(json_is_false(json_object_get(j, "fatal")));
    /* keys in order: ts, level, msg first */
    assert_true(strncmp(out, "{\"ts\":", 6) == 0);
    assert_non_null(strstr(out, "\"level\":\"warn\",\"msg\":"));
    json_decref(j);
    free(out);
    oms_logger_free(lg);
    close_pipe(p);
}

static void test_json_escaping(void **state)
{
    pipe_fds p = open_pipe();
    oms_logger *lg = oms_logger_new(p.wr, OMS_LOG_DEBUG, OMS_LOG_FORMAT_JSON);
    const char *nasty = "say \"hi\"\\ now\nnext\tline\r\x01\x1f\x7f end";
    /* invalid UTF-8: lone continuation, truncated 2-byte, overlong, surrogate */
    const char *bad = "a\x80" "b\xc3" "c\xc0\xaf" "d\xed\xa0\x80" "e";
    oms_log(lg, OMS_LOG_INFO, nasty, OMS_LS("k\"ey\n", nasty), OMS_LS("utf8", "caf\xc3\xa9 \xe2\x82\xac"),
            OMS_LS("bad", bad), OMS_LS("none", NULL), OMS_LD("nan", NAN), OMS_LD("inf", INFINITY));
    char *out = drain(p, NULL);
    json_t *j = parse_line(out);
    assert_string_equal(json_string_value(json_object_get(j, "msg")), nasty);
    assert_string_equal(json_string_value(json_object_get(j, "k\"ey\n")), nasty);
    assert_string_equal(json_string_value(json_object_get(j, "utf8")), "caf\xc3\xa9 \xe2\x82\xac");
    /* each invalid sequence byte became U+FFFD, the valid letters stayed */
    const char *b = json_string_value(json_object_get(j, "bad"));
    assert_non_null(b);
    assert_string_equal(b, "a\xef\xbf\xbd" "b\xef\xbf\xbd" "c\xef\xbf\xbd\xef\xbf\xbd"
                           "d\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" "e");
    assert_true(json_is_null(json_object_get(j, "none")));
    assert_true(json_is_null(json_object_get(j, "nan")));
    assert_true(json_is_null(json_object_get(j, "inf")));
    /* control characters are escaped, never raw */
    for (const char *c = out; *c && c[1]; c++)
        assert_true((unsigned char)*c >= 0x20);
    json_decref(j);
    free(out);
    oms_logger_free(lg);
    close_pipe(p);
}

static void test_level_filtering(void **state)
{
    pipe_fds p = open_pipe();
    oms_logger *lg = oms_logger_new(p.wr, OMS_LOG_WARN, OMS_LOG_FORMAT_JSON);
    assert_int_equal(oms_logger_level(lg), OMS_LOG_WARN);
    oms_log(lg, OMS_LOG_DEBUG, "debug");
    oms_log(lg, OMS_LOG_INFO, "info");
    oms_log(lg, OMS_LOG_WARN, "warn");
    oms_log(lg, OMS_LOG_ERROR, "error");
    char *out = drain(p, NULL);
    assert_int_equal(count_lines(out), 2);
    assert_null(strstr(out, "\"msg\":\"info\""));
    assert_non_null(strstr(out, "\"level\":\"warn\""));
    assert_non_null(strstr(out, "\"level\":\"error\""));
    free(out);

    oms_logger_set_level(lg, OMS_LOG_DEBUG);
    assert_int_equal(oms_logger_level(lg), OMS_LOG_DEBUG);
    oms_log(lg, OMS_LOG_DEBUG, "now shown");
    out = drain(p, NULL);
    assert_non_null(strstr(out, "\"level\":\"debug\",\"msg\":\"now shown\""));
    free(out);
    oms_logger_free(lg);
    close_pipe(p);
}

static void test_text_format(void **state)
{
    pipe_fds p = open_pipe();
    oms_logger *lg = oms_logger_new(p.wr, OMS_LOG_DEBUG, OMS_LOG_FORMAT_TEXT);
    oms_log(lg, OMS_LOG_WARN, "record not decodable", OMS_LS("topic", "oms.orders"),
            OMS_LI("partition", 3), OMS_LS("reason", "bad magic byte"), OMS_LS("empty", ""),
            OMS_LS("q", "a\"b"), OMS_LB("ok", 0), OMS_LD("ratio", 0.5));
    char *out = drain(p, NULL);
    assert_int_equal(count_lines(out), 1);
    /* HH:MM:SS.mmm LEVEL msg */
    assert_true(out[2] == ':' && out[5] == ':' && out[8] == '.');
    assert_true(strncmp(out + 12, " WARN  record not decodable ", 28) == 0);
    assert_null(strchr(out, '\033')); /* a pipe gets no colors */
    assert_non_null(strstr(out, " topic=oms.orders"));
    assert_non_null(strstr(out, " partition=3"));
    assert_non_null(strstr(out, " reason=\"bad magic byte\""));
    assert_non_null(strstr(out, " empty=\"\""));
    assert_non_null(strstr(out, " q=\"a\\\"b\""));
    assert_non_null(strstr(out, " ok=false"));
    assert_non_null(strstr(out, " ratio=0.5"));
    /* the message is padded so fields line up */
    const char *msg = out + 19;
    assert_true(strncmp(msg + 32, " topic=", 7) == 0);
    free(out);

    /* a newline in the message cannot split the line */
    oms_log(lg, OMS_LOG_INFO, "two\nlines");
    out = drain(p, NULL);
    assert_int_equal(count_lines(out), 1);
    assert_non_null(strstr(out, "INFO  two\\nlines\n"));
    free(out);
    oms_logger_free(lg);
    close_pipe(p);
}

static void test_auto_format_on_pipe_is_json(void **state)
{
    pipe_fds p = open_pipe();
    oms_logger *lg = oms_logger_new(p.wr, OMS_LOG_INFO, OMS_LOG_FORMAT_AUTO);
    oms_log(lg, OMS_LOG_INFO, "hello", OMS_LI("n", 1));
    char *out = drain(p, NULL);
    json_t *j = parse_line(out);
    assert_int_equal(json_integer_value(json_object_get(j, "n")), 1);
    json_decref(j);
    free(out);
    oms_logger_free(lg);
    close_pipe(p);
}

static void test_null_logger_is_noop(void **state)
{
    oms_log(NULL, OMS_LOG_ERROR, "nobody hears this", OMS_LI("n", 1));
    oms_log_fields(NULL, OMS_LOG_ERROR, "nor this", NULL);
    oms_logger_set_level(NULL, OMS_LOG_DEBUG);
    oms_logger_free(NULL);
}

static void test_no_fields_and_null_msg(void **state)
{
    pipe_fds p = open_pipe();
    oms_logger *lg = oms_logger_new(p.wr, OMS_LOG_INFO, OMS_LOG_FORMAT_JSON);
    oms_log_fields(lg, OMS_LOG_INFO, NULL, NULL);
    oms_log(lg, OMS_LOG_INFO, "skip null key", ((oms_log_field){NULL, OMS_LOG_F_INT, NULL, 1, 0}),
            OMS_LI("kept", 2));
    char *out = drain(p, NULL);
    assert_int_equal(count_lines(out), 2);
    char *second = strchr(out, '\n') + 1;
    second[-1] = '\0';
    json_t *j = json_loads(out, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "msg")), "");
    json_decref(j);
    j = parse_line(second);
    assert_int_equal(json_object_size(j), 4);
    assert_int_equal(json_integer_value(json_object_get(j, "kept")), 2);
    json_decref(j);
    free(out);
    oms_logger_free(lg);
    close_pipe(p);
}

static char *big_string(size_t n, char c)
{
    char *s = malloc(n + 1);
    assert_non_null(s);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

static void test_long_lines(void **state)
{
    pipe_fds p = open_pipe();
    oms_logger *lg = oms_logger_new(p.wr, OMS_LOG_INFO, OMS_LOG_FORMAT_JSON);

    /* longer than the stack buffer, shorter than the cap: kept whole */
    char *mid = big_string(10000, 'm');
    oms_log(lg, OMS_LOG_INFO, mid, OMS_LS("v", mid));
    size_t len;
    char *out = drain(p, &len);
    json_t *j = parse_line(out);
    assert_string_equal(json_string_value(json_object_get(j, "msg")), mid);
    assert_string_equal(json_string_value(json_object_get(j, "v")), mid);
    assert_null(json_object_get(j, "truncated"));
    json_decref(j);
    free(out);

    /* 1 MiB: cut to at most 64 KiB, one valid line, marked truncated */
    char *huge = big_string(1 << 20, 'h');
    oms_log(lg, OMS_LOG_INFO, "huge", OMS_LS("v", huge), OMS_LI("after", 1));
    out = drain(p, &len);
    assert_true(len <= 64 * 1024);
    assert_true(len > 60 * 1024);
    j = parse_line(out);
    assert_true(json_is_true(json_object_get(j, "truncated")));
    const char *v = json_string_value(json_object_get(j, "v"));
    assert_non_null(v);
    assert_true(strlen(v) > 60000);
    assert_string_equal(v + strlen(v) - 3, "...");
    json_decref(j);
    free(out);

    /* a huge message full of characters that need escaping */
    char *ctl = big_string(1 << 18, '\n');
    oms_log(lg, OMS_LOG_INFO, ctl, OMS_LS("v", "x"));
    out = drain(p, &len);
    assert_true(len <= 64 * 1024);
    j = parse_line(out);
    assert_true(json_is_true(json_object_get(j, "truncated")));
    json_decref(j);
    free(out);

    /* many fields: cut between fields, still valid */
    oms_log_field *many = calloc(5001, sizeof *many);
    char (*keys)[16] = calloc(5000, sizeof *keys);
    for (int i = 0; i < 5000; i++) {
        snprintf(keys[i], sizeof keys[i], "key%d", i);
        many[i] = OMS_LS(keys[i], "value-value-value");
    }
    many[5000] = OMS_LOG_END_;
    oms_log_fields(lg, OMS_LOG_INFO, "many", many);
    out = drain(p, &len);
    assert_true(len <= 64 * 1024);
    j = parse_line(out);
    assert_true(json_is_true(json_object_get(j, "truncated")));
    json_decref(j);
    free(out);
    free(many);
    free(keys);

    /* text format too */
    oms_logger_free(lg);
    lg = oms_logger_new(p.wr, OMS_LOG_INFO, OMS_LOG_FORMAT_TEXT);
    oms_log(lg, OMS_LOG_INFO, "huge", OMS_LS("v", huge));
    out = drain(p, &len);
    assert_true(len <= 64 * 1024);
    assert_int_equal(count_lines(out), 1);
    assert_non_null(strstr(out, "truncated=true\n"));
    free(out);

    free(mid);
    free(huge);
    free(ctl);
    oms_logger_free(lg);
    close_pipe(p);
}

static void test_parse_names(void **state)
{
    oms_log_level lv;
    assert_int_equal(oms_log_level_parse("debug", &lv), 0);
    assert_int_equal(lv, OMS_LOG_DEBUG);
    assert_int_equal(oms_log_level_parse("INFO", &lv), 0);
    assert_int_equal(lv, OMS_LOG_INFO);
    assert_int_equal(oms_log_level_parse("warning", &lv), 0);
    assert_int_equal(lv, OMS_LOG_WARN);
    assert_int_equal(oms_log_level_parse("Warn", &lv), 0);
    assert_int_equal(lv, OMS_LOG_WARN);
    assert_int_equal(oms_log_level_parse("error", &lv), 0);
    assert_int_equal(lv, OMS_LOG_ERROR);
    assert_int_equal(oms_log_level_parse("verbose", &lv), OMS_EINVAL);
    assert_int_equal(oms_log_level_parse(NULL, &lv), OMS_EINVAL);
    assert_string_equal(oms_log_level_name(OMS_LOG_WARN), "warn");
    assert_string_equal(oms_log_level_name(OMS_LOG_ERROR), "error");

    oms_log_format f;
    assert_int_equal(oms_log_format_parse("json", &f), 0);
    assert_int_equal(f, OMS_LOG_FORMAT_JSON);
    assert_int_equal(oms_log_format_parse("text", &f), 0);
    assert_int_equal(f, OMS_LOG_FORMAT_TEXT);
    assert_int_equal(oms_log_format_parse("auto", &f), 0);
    assert_int_equal(f, OMS_LOG_FORMAT_AUTO);
    assert_int_equal(oms_log_format_parse("xml", &f), OMS_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_fields_and_types),
        cmocka_unit_test(test_json_escaping),
        cmocka_unit_test(test_level_filtering),
        cmocka_unit_test(test_text_format),
        cmocka_unit_test(test_auto_format_on_pipe_is_json),
        cmocka_unit_test(test_null_logger_is_noop),
        cmocka_unit_test(test_no_fields_and_null_msg),
        cmocka_unit_test(test_long_lines),
        cmocka_unit_test(test_parse_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
