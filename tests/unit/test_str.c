/* kt_str, which builds the keys events are filed under and span titles:
 * snprintf's results without its format parsing. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "core/kt_str.h"

/* kt_str, which builds the keys the parsed events are filed under:
 * snprintf's results without its format parsing. */
static void test_str_building(void **state)
{
  char buf[16], want[64];
  struct kt_str s;
  kt_str_init(&s, buf, sizeof buf);
  kt_str_add(&s, "pods");
  kt_str_addc(&s, '/');
  kt_str_add(&s, NULL);
  kt_str_int(&s, -9223372036854775807LL - 1);
  snprintf(want, sizeof want, "pods/%lld", -9223372036854775807LL - 1);
  assert_int_equal(s.len, strlen(want)); /* the whole length, as snprintf */
  assert_int_equal(strlen(buf), sizeof buf - 1);
  assert_memory_equal(buf, want, sizeof buf - 1); /* truncated, terminated */
  kt_str_init(&s, buf, sizeof buf);
  kt_str_int(&s, 0);
  kt_str_int(&s, 42);
  assert_string_equal(buf, "042");
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_str_building),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
