/* The structural diff as a user reads it: one line per changed leaf, paths
 * in the spec's notation, keys in byte order whatever order the two
 * versions wrote them in. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json/kt_diff.h"

/* Renders the diff of two JSON texts; caller frees. */
static char *diff(const char *a, const char *b)
{
  cJSON *x = cJSON_Parse(a), *y = cJSON_Parse(b);
  assert_non_null(x);
  assert_non_null(y);
  struct kt_diff_list l;
  kt_diff_list_init(&l, 0);
  assert_int_equal(kt_diff_compare(x, y, &l), 0);
  char *text = kt_diff_render(&l);
  kt_diff_list_free(&l);
  cJSON_Delete(x);
  cJSON_Delete(y);
  return text;
}

static void expect(const char *a, const char *b, const char *want)
{
  char *got = diff(a, b);
  assert_string_equal(got, want);
  free(got);
}

static void test_equal_is_empty(void **state)
{
  expect("{\"b\":[1,{\"c\":null}],\"a\":\"x\"}", "{\"b\":[1,{\"c\":null}],\"a\":\"x\"}", "");
}

static void test_keys_in_byte_order_same_layout(void **state)
{
  /* Same keys in the same (unsorted) order on both sides. */
  expect("{\"spec\":{\"z\":1,\"a\":1},\"metadata\":{\"name\":\"n\",\"labels\":{\"k\":\"1\"}}}",
         "{\"spec\":{\"z\":2,\"a\":2},\"metadata\":{\"name\":\"m\",\"labels\":{\"k\":\"2\"}}}",
         "metadata.labels.k \"1\" -> \"2\"\n"
         "metadata.name \"n\" -> \"m\"\n"
         "spec.a 1 -> 2\n"
         "spec.z 1 -> 2\n");
}

static void test_keys_in_byte_order_other_layout(void **state)
{
  /* Keys reordered, added and removed: the same lines in the same order. */
  expect("{\"spec\":{\"z\":1,\"a\":1,\"gone\":true},\"metadata\":{\"name\":\"n\"}}",
         "{\"metadata\":{\"name\":\"m\"},\"spec\":{\"new\":[1],\"a\":2,\"z\":2}}",
         "metadata.name \"n\" -> \"m\"\n"
         "spec.a 1 -> 2\n"
         "spec.gone true -> null\n"
         "spec.new null -> [1]\n"
         "spec.z 1 -> 2\n");
}

static void test_paths(void **state)
{
  expect("{\"metadata\":{\"labels\":{\"app.kubernetes.io/name\":\"a\"}},"
         "\"status\":{\"conditions\":[{\"type\":\"A\"},{\"type\":\"B\"}]}}",
         "{\"metadata\":{\"labels\":{\"app.kubernetes.io/name\":\"b\"}},"
         "\"status\":{\"conditions\":[{\"type\":\"A\"},{\"type\":\"C\"},{\"type\":\"D\"}]}}",
         "metadata.labels[\"app.kubernetes.io/name\"] \"a\" -> \"b\"\n"
         "status.conditions[1].type \"B\" -> \"C\"\n"
         "status.conditions[2] null -> {\"type\":\"D\"}\n");
}

static void test_type_change_and_limit(void **state)
{
  expect("{\"a\":1}", "{\"a\":\"1\"}", "a 1 -> \"1\"\n");
  cJSON *x = cJSON_Parse("{\"a\":1,\"b\":1,\"c\":1}"), *y = cJSON_Parse("{\"a\":2,\"b\":2,\"c\":2}");
  struct kt_diff_list l;
  kt_diff_list_init(&l, 2);
  assert_int_equal(kt_diff_compare(x, y, &l), 0);
  assert_int_equal(l.n, 2);
  assert_true(l.truncated);
  char *text = kt_diff_render(&l);
  assert_non_null(strstr(text, "(diff truncated)"));
  free(text);
  kt_diff_list_free(&l);
  cJSON_Delete(x);
  cJSON_Delete(y);
}

/* Values are printed exactly as cJSON prints them: escapes, integers,
 * fractions, nested values. */
static void test_value_printing(void **state)
{
  expect("{\"s\":\"a\\\"b\\\\c\\n\\t\\u0001\\u001f\u00e9\"}", "{\"s\":\"x\"}",
         "s \"a\\\"b\\\\c\\n\\t\\u0001\\u001f\u00e9\" -> \"x\"\n");
  expect("{\"n\":1.5,\"i\":-3,\"b\":false,\"o\":{\"k\":[1,\"2\"]}}",
         "{\"n\":1e300,\"i\":2147483647,\"b\":true,\"o\":null}",
         "b false -> true\n"
         "i -3 -> 2147483647\n"
         "n 1.5 -> 1e+300\n"
         "o {\"k\":[1,\"2\"]} -> null\n");
}

/* Long strings are scanned 8 bytes at a time: every character that needs
 * an escape, at every offset of a word, still gets it (as cJSON prints). */
static void test_long_string_escapes(void **state)
{
  static const char special[] = {'"', '\\', '\n', 0x01, 0x1f};
  for (size_t k = 0; k < sizeof special; k++)
    for (size_t len = 1; len <= 40; len++)
      for (size_t at = 0; at < len; at++) {
        char v[48];
        for (size_t i = 0; i < len; i++) /* plain ASCII and UTF-8 bytes */
          v[i] = i % 5 == 4 ? (char)0xc3 : i % 5 == 0 && i ? (char)0xa9 : 'a';
        v[at] = special[k];
        v[len] = 0;
        cJSON *x = cJSON_CreateObject(), *y = cJSON_CreateObject();
        cJSON_AddStringToObject(x, "s", v);
        cJSON_AddStringToObject(y, "s", "");
        struct kt_diff_list l;
        kt_diff_list_init(&l, 0);
        assert_int_equal(kt_diff_compare(x, y, &l), 0);
        char *got = kt_diff_render(&l);
        char *want = cJSON_PrintUnformatted(cJSON_GetObjectItem(x, "s"));
        char line[400];
        snprintf(line, sizeof line, "s %s -> \"\"\n", want);
        assert_string_equal(got, line);
        free(got);
        free(want);
        kt_diff_list_free(&l);
        cJSON_Delete(x);
        cJSON_Delete(y);
      }
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_equal_is_empty),
      cmocka_unit_test(test_keys_in_byte_order_same_layout),
      cmocka_unit_test(test_keys_in_byte_order_other_layout),
      cmocka_unit_test(test_paths),
      cmocka_unit_test(test_type_change_and_limit),
      cmocka_unit_test(test_value_printing),
      cmocka_unit_test(test_long_string_escapes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
