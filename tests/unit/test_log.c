/* test_log.c: the JSON log format (log.h): one object a line with the fixed
 * fields and the message's key=value pairs, numbers as numbers, quoted values
 * whole, fixed names not overwritten, and text lines unchanged. stderr goes
 * to a temporary file while the test logs. */
#include "log.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Runs log_some with stderr going to a file; returns what was written. */
static char *captured(void (*log_some)(void))
{
    FILE *f = tmpfile();
    assert_non_null(f);
    int saved = dup(STDERR_FILENO);
    assert_true(saved >= 0);
    assert_true(dup2(fileno(f), STDERR_FILENO) >= 0);
    log_some();
    assert_true(dup2(saved, STDERR_FILENO) >= 0);
    close(saved);
    long n = ftell(f);
    assert_true(n >= 0);
    char *out = calloc(1, (size_t)n + 1);
    rewind(f);
    assert_int_equal(fread(out, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    return out;
}

static void log_json(void)
{
    sx_log_set_format(SX_LOG_JSON);
    SX_LOG(SX_LOG_WARN, "replica", "lost lease partition=%d epoch=%d leader=%s why=\"%s\"", 3, 12,
           "w-1", "no \\\"answer\\\" for 2s");
    SX_LOG(SX_LOG_INFO, "rpc", "odd level=x msg=y pid=z 12=ab =c");
    sx_log_set_format(SX_LOG_TEXT);
}

static void test_json_lines(void **state)
{
    (void)state;
    sx_log_set_process("test");
    char *out = captured(log_json);
    char *second = strchr(out, '\n');
    assert_non_null(second);
    *second++ = '\0';

    json_error_t e;
    json_t *a = json_loads(out, 0, &e);
    if (!a)
        fail_msg("not JSON (%s): %s", e.text, out);
    assert_string_equal(json_string_value(json_object_get(a, "level")), "WARN");
    assert_string_equal(json_string_value(json_object_get(a, "process")), "test");
    assert_int_equal(json_integer_value(json_object_get(a, "pid")), getpid());
    assert_string_equal(json_string_value(json_object_get(a, "component")), "replica");
    assert_int_equal(json_integer_value(json_object_get(a, "partition")), 3);
    assert_int_equal(json_integer_value(json_object_get(a, "epoch")), 12);
    assert_string_equal(json_string_value(json_object_get(a, "leader")), "w-1");
    assert_string_equal(json_string_value(json_object_get(a, "why")), "no \"answer\" for 2s");
    assert_non_null(strstr(json_string_value(json_object_get(a, "msg")), "lost lease"));
    const char *t = json_string_value(json_object_get(a, "time"));
    assert_true(t && strlen(t) == 24 && t[10] == 'T' && t[23] == 'Z');
    json_decref(a);

    json_t *b = json_loads(second, 0, &e);
    if (!b)
        fail_msg("not JSON (%s): %s", e.text, second);
    /* Fixed fields are not overwritten by the message's pairs. */
    assert_string_equal(json_string_value(json_object_get(b, "level")), "INFO");
    assert_int_equal(json_integer_value(json_object_get(b, "pid")), getpid());
    assert_string_equal(json_string_value(json_object_get(b, "msg")),
                        "odd level=x msg=y pid=z 12=ab =c");
    assert_string_equal(json_string_value(json_object_get(b, "12")), "ab");
    json_decref(b);
    free(out);
}

static void log_text(void)
{
    SX_LOG(SX_LOG_INFO, "rpc", "listening port=%d", 7);
}

static void test_text_lines(void **state)
{
    (void)state;
    sx_log_set_process("test");
    char *out = captured(log_text);
    char want[64];
    snprintf(want, sizeof(want), " INFO test[%d] rpc: listening port=7\n", (int)getpid());
    assert_non_null(strstr(out, want));
    free(out);
}

static void test_format_parse(void **state)
{
    (void)state;
    sx_log_format f;
    assert_true(sx_log_format_parse("json", &f) && f == SX_LOG_JSON);
    assert_true(sx_log_format_parse("text", &f) && f == SX_LOG_TEXT);
    assert_false(sx_log_format_parse("xml", &f));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_lines),
        cmocka_unit_test(test_text_lines),
        cmocka_unit_test(test_format_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
