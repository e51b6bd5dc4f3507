/* The SQLite store on its own: spans round-trip exactly (tags with quotes,
 * newlines and UTF-8; small and large, compressed, logs), puts are
 * idempotent, searches filter and order, kv entries expire, a reopened file
 * keeps everything, a file that is not a database is refused. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/kt_time.h"
#include "store/kt_store.h"

static char dir[64], path[128];

static struct kt_store *open_store(void)
{
  struct kt_store *st;
  struct kt_store_opts o = {.queue_limit = 10};
  assert_int_equal(kt_store_open_sqlite(path, &o, &st), 0);
  return st;
}

static struct kt_span *make(uint8_t t, uint64_t id, const char *name,
                            int64_t start, size_t logsize)
{
  struct kt_span *s = kt_span_new("audit", "alice update");
  memset(s->trace_id, t, 16);
  s->span_id = id;
  s->parent_id = id > 1 ? 1 : 0;
  s->start_us = start;
  s->end_us = start + 1000;
  kt_span_add_tag(s, "cluster", "c1");
  kt_span_add_tag(s, "resource", "pods");
  kt_span_add_tag(s, "namespace", "default");
  kt_span_add_tag(s, "name", name);
  kt_span_add_tag(s, "weird", "quote \" newline \n tab \t utf-8 é 漢");
  char *msg = malloc(logsize + 1);
  for (size_t i = 0; i < logsize; i++)
    msg[i] = (char)('a' + (i * 7 + i / 13) % 26);
  msg[logsize] = 0;
  kt_span_add_log_owned(s, start + 5, "audit/objectDiff", msg);
  kt_span_add_log(s, start + 6, "realError", "Conflict: x");
  return s;
}

static void test_roundtrip(void **state)
{
  struct kt_store *st = open_store();
  size_t sizes[] = {10, 3000, 100000};
  for (int i = 0; i < 3; i++)
    assert_int_equal(kt_store_put(st, make((uint8_t)(i + 1), 2, "p", 1000000, sizes[i])), 0);
  kt_store_flush(st);
  for (int i = 0; i < 3; i++) {
    struct kt_span_vec v = {0};
    uint8_t t[16];
    memset(t, i + 1, 16);
    assert_int_equal(kt_store_get_trace(st, t, &v), 0);
    assert_int_equal(v.n, 1);
    struct kt_span *want = make((uint8_t)(i + 1), 2, "p", 1000000, sizes[i]);
    const struct kt_span *got = v.v[0];
    assert_string_equal(kt_span_tag(got, "weird"), kt_span_tag(want, "weird"));
    assert_int_equal(got->nlogs, 2);
    assert_string_equal(got->logs[0].msg, want->logs[0].msg);
    assert_int_equal(got->logs[0].ts_us, 1000005);
    assert_string_equal(got->logs[1].type, "realError");
    kt_span_free(want);
    kt_span_vec_free(&v);
  }
  kt_store_close(st);
}

static void test_idempotent_and_find(void **state)
{
  struct kt_store *st = open_store();
  for (int i = 0; i < 50; i++)
    kt_store_put(st, make(9, (uint64_t)(i % 10) + 1, i % 2 ? "odd" : "even",
                          2000000 + i, 100));
  kt_store_flush(st);
  struct kt_span_vec v = {0};
  uint8_t t[16];
  memset(t, 9, 16);
  assert_int_equal(kt_store_get_trace(st, t, &v), 0);
  assert_int_equal(v.n, 10); /* same (trace, span) replaces */
  kt_span_vec_free(&v);
  struct kt_store_query q = {.cluster = "c1", .resource = "pods", .name = "odd",
                             .start_us = 2000000, .end_us = 3000000};
  struct kt_trace_ref *refs;
  size_t n;
  assert_int_equal(kt_store_find(st, &q, &refs, &n), 0);
  assert_int_equal(n, 1);
  assert_int_equal(refs[0].root_span_id, 1);
  /* the object of the trace root (span 1, last written by an "even" put) */
  assert_string_equal(refs[0].object, "c1//pods/default/even");
  free(refs);
  struct kt_tag tag = {"weird", "nope"};
  q.tags = &tag;
  q.ntags = 1;
  assert_int_equal(kt_store_find(st, &q, &refs, &n), 0);
  assert_int_equal(n, 0);
  free(refs);
  q.ntags = 0;
  q.start_us = 5000000; /* out of range */
  q.end_us = 6000000;
  assert_int_equal(kt_store_find(st, &q, &refs, &n), 0);
  assert_int_equal(n, 0);
  free(refs);
  assert_true(kt_store_has_span(st, t, 3));
  assert_false(kt_store_has_span(st, t, 99));
  kt_store_close(st);
}

static int count_cb(const char *key, const char *val, size_t len,
                    int64_t expires_us, void *ud)
{
  (*(int *)ud)++;
  return 0;
}

static void test_kv_and_reopen(void **state)
{
  struct kt_store *st = open_store();
  kt_store_kv_put(st, "ns", "a", "alpha", 5, 0);
  kt_store_kv_put(st, "ns", "b", "beta", 4, kt_now_us() - 1); /* expired */
  kt_store_kv_put(st, "ns", "c", "gamma", 5, 0);
  kt_store_kv_del(st, "ns", "c");
  kt_store_close(st);
  st = open_store(); /* everything survives a reopen */
  char *v;
  size_t len;
  assert_int_equal(kt_store_kv_get(st, "ns", "a", &v, &len), 0);
  assert_string_equal(v, "alpha");
  free(v);
  assert_int_equal(kt_store_kv_get(st, "ns", "b", &v, &len), -ENOENT);
  assert_int_equal(kt_store_kv_get(st, "ns", "c", &v, &len), -ENOENT);
  int n = 0;
  kt_store_kv_scan(st, "ns", count_cb, &n);
  assert_int_equal(n, 1);
  assert_true(kt_store_count(st) > 0);
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
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_roundtrip),
      cmocka_unit_test(test_idempotent_and_find),
      cmocka_unit_test(test_kv_and_reopen),
      cmocka_unit_test(test_not_a_database),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  return rc | system(cmd);
}
