/* The webhook's JSON parser: the same trees as cJSON for what the
 * apiserver sends, a clear error offset for what it must refuse. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json/kt_jparse.h"

static void *heap(void *ud, size_t n)
{
  return cJSON_malloc(n);
}

/* Parses text with both parsers and compares the printed trees. */
static void same_as_cjson(const char *text)
{
  size_t at = 0;
  cJSON *mine = kt_jparse(text, strlen(text), heap, NULL, &at);
  cJSON *ref = cJSON_Parse(text);
  assert_non_null(ref);
  if (!mine)
    fail_msg("refused at %zu: %s", at, text);
  char *a = cJSON_PrintUnformatted(mine), *b = cJSON_PrintUnformatted(ref);
  assert_string_equal(a, b);
  free(a);
  free(b);
  cJSON_Delete(mine);
  cJSON_Delete(ref);
}

static void test_valid_documents(void **state)
{
  same_as_cjson("{\"kind\":\"EventList\",\"items\":[{\"a\":1,\"b\":[true,false,null],"
                "\"c\":{\"d\":-12.5e-3,\"e\":\"\"}}]}");
  same_as_cjson(" [ 0 , -0 , 123456789012345 , 1234567890123456789 , 1E+400 , 2.5 ] ");
  same_as_cjson("\"esc: \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u00e9 \\u20ac \\ud83d\\ude00\"");
  same_as_cjson("{\"dup\":1,\"dup\":2}");
  same_as_cjson("\"raw \xc3\xa9 utf-8\"");
  same_as_cjson("{\"k\\\"q\":\"v\\\\\"}");
}

/* Node details the rest of the code reads directly. */
static void test_node_fields(void **state)
{
  const char *t = "{\"n\":3000000000,\"m\":-7,\"t\":true,\"a\":[1,2,3]}";
  size_t at;
  cJSON *j = kt_jparse(t, strlen(t), heap, NULL, &at);
  assert_non_null(j);
  assert_int_equal(cJSON_GetObjectItem(j, "n")->valueint, 2147483647);
  assert_int_equal(cJSON_GetObjectItem(j, "m")->valueint, -7);
  assert_true(cJSON_IsTrue(cJSON_GetObjectItem(j, "t")));
  cJSON *a = cJSON_GetObjectItem(j, "a");
  assert_ptr_equal(a->child->prev, cJSON_GetArrayItem(a, 2)); /* the tail */
  cJSON_AddItemToArray(a, cJSON_CreateNumber(4)); /* appends after it */
  assert_int_equal(cJSON_GetArrayItem(a, 3)->valueint, 4);
  cJSON_Delete(j);
}

static void refused_at(const char *text, size_t want)
{
  size_t at = 12345;
  cJSON *j = kt_jparse(text, strlen(text), heap, NULL, &at);
  if (j)
    fail_msg("accepted: %s", text);
  assert_int_equal(at, want);
}

static void test_refusals(void **state)
{
  refused_at("", 0);
  refused_at("{\"a\":1", 6);          /* ended early */
  refused_at("{\"a\":1} x", 8);       /* trailing bytes */
  refused_at("[01]", 2);              /* leading zero */
  refused_at("[1.]", 3);
  refused_at("[-]", 2);
  refused_at("{a:1}", 1);             /* unquoted key */
  refused_at("[tru]", 1);
  refused_at("\"\\x\"", 1);           /* unknown escape */
  refused_at("\"\\ud800x\"", 1);      /* lone high surrogate */
  refused_at("\"\\udc00\"", 1);       /* low surrogate first */
  refused_at("\"open", 5);
  refused_at("[1,]", 3);
}

static void test_depth_limit(void **state)
{
  char deep[2100];
  memset(deep, '[', 1000);
  memset(deep + 1000, ']', 1000);
  deep[2000] = 0;
  size_t at;
  cJSON *j = kt_jparse(deep, 2000, heap, NULL, &at);
  assert_non_null(j); /* cJSON's limit: 1000 levels */
  cJSON_Delete(j);
  memmove(deep + 1, deep, 2000);
  deep[0] = '[';
  deep[2001] = ']';
  assert_null(kt_jparse(deep, 2002, heap, NULL, &at));
  assert_int_equal(at, 1000);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_valid_documents),
      cmocka_unit_test(test_node_fields),
      cmocka_unit_test(test_refusals),
      cmocka_unit_test(test_depth_limit),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
