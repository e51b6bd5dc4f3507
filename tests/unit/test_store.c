/* The SQLite store: the backend-independent cases (store_cases.h), plus
 * what is SQLite's own: retention deletes whole traces whose root ended
 * before the cut-off, and a file that is not a database is refused. */
#include "store_cases.h"

static char dir[64], path[128];

static struct kt_store *open_sqlite(size_t queue_limit)
{
  struct kt_store *st;
  struct kt_store_opts o = {.queue_limit = queue_limit};
  assert_int_equal(kt_store_open_sqlite(path, &o, &st), 0);
  return st;
}

static void test_retain_whole_traces(void **state)
{
  struct kt_store *st = open_store();
  int64_t before = kt_store_count(st);
  kt_store_put(st, make(0x90, 1, "old", 100, 10));  /* root ends at 1100 */
  kt_store_put(st, make(0x90, 2, "old", 5000, 10)); /* child, later */
  kt_store_put(st, make(0x91, 1, "new", 9000, 10));
  kt_store_flush(st);
  assert_int_equal(kt_store_retain(st, 2000), 2);
  uint8_t t[16];
  memset(t, 0x90, 16);
  assert_false(kt_store_has_span(st, t, 2));
  memset(t, 0x91, 16);
  assert_true(kt_store_has_span(st, t, 1));
  assert_int_equal(kt_store_count(st) - before, 1);
  kt_store_close(st);
}

static void test_not_a_database(void **state)
{
  char bad[160];
  snprintf(bad, sizeof bad, "%s/bad.db", dir);
  FILE *f = fopen(bad, "w");
  for (int i = 0; i < 200; i++)
    fputs("not a database at all ", f);
  fclose(f);
  struct kt_store *st;
  struct kt_store_opts o = {0};
  assert_int_equal(kt_store_open_sqlite(bad, &o, &st), -EIO);
}

int main(void)
{
  snprintf(dir, sizeof dir, "/tmp/kt-store-XXXXXX");
  if (!mkdtemp(dir))
    return 1;
  snprintf(path, sizeof path, "%s/s.db", dir);
  store_open = open_sqlite;
  const struct CMUnitTest tests[] = {
      STORE_CASES,
      cmocka_unit_test(test_retain_whole_traces),
      cmocka_unit_test(test_not_a_database),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  return rc | system(cmd);
}
