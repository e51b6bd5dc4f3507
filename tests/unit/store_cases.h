/* The store's behaviour, as cases every backend must pass: spans
 * round-trip exactly (tags with quotes, newlines and UTF-8; small, large
 * and compressed logs), puts are idempotent, searches filter and order,
 * kv entries expire and are deleted, a reopened store keeps everything,
 * put blocks on a full queue without losing anything, flush means
 * committed. Included by tests/unit/test_store.c (SQLite) and
 * tests/engine/test_store_pg.c (PostgreSQL), which set store_open to open
 * their backend with the given queue limit (the same data each time). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/kt_time.h"
#include "store/kt_store.h"

static struct kt_store *(*store_open)(size_t queue_limit);

static struct kt_store *open_store(void)
{
  return store_open(10);
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

/* The `object` span of name's window [start, start + len) in trace t:
 * searches naming an object go through these (every span the aggregator
 * writes for an object is in such a trace). */
static struct kt_span *window(uint8_t t, uint64_t id, const char *name,
                              int64_t start, int64_t len)
{
  struct kt_span *s = make(t, id, name, start, 10);
  free(s->service);
  s->service = strdup("object");
  s->end_us = start + len;
  return s;
}

static void test_roundtrip(void **state)
{
  struct kt_store *st = open_store();
  size_t sizes[] = {10, 3000, 100000};
  for (int i = 0; i < 3; i++)
    assert_int_equal(kt_store_put(st, make((uint8_t)(i + 1), 2, "p", 1000000, sizes[i])), 0);
  assert_int_equal(kt_store_flush(st), 0);
  for (int i = 0; i < 3; i++) {
    struct kt_span_vec v = {0};
    uint8_t t[16];
    memset(t, i + 1, 16);
    assert_int_equal(kt_store_get_trace(st, t, &v), 0);
    assert_int_equal(v.n, 1);
    struct kt_span *want = make((uint8_t)(i + 1), 2, "p", 1000000, sizes[i]);
    const struct kt_span *got = v.v[0];
    assert_memory_equal(got->trace_id, want->trace_id, 16);
    assert_int_equal(got->span_id, 2);
    assert_int_equal(got->parent_id, 1);
    assert_int_equal(got->start_us, 1000000);
    assert_int_equal(got->end_us, 1001000);
    assert_string_equal(got->service, "audit");
    assert_string_equal(got->operation, "alice update");
    assert_string_equal(kt_span_tag(got, "weird"), kt_span_tag(want, "weird"));
    assert_int_equal(got->nlogs, 2);
    assert_string_equal(got->logs[0].msg, want->logs[0].msg);
    assert_int_equal(got->logs[0].ts_us, 1000005);
    assert_string_equal(got->logs[1].type, "realError");
    kt_span_free(want);
    kt_span_vec_free(&v);
  }
  uint8_t none[16] = {0xee};
  struct kt_span_vec v = {0};
  assert_int_equal(kt_store_get_trace(st, none, &v), -ENOENT);
  kt_store_close(st);
}

static void test_idempotent_and_find(void **state)
{
  struct kt_store *st = open_store();
  for (int i = 0; i < 50; i++)
    kt_store_put(st, make(9, (uint64_t)(i % 10) + 1, i % 2 ? "odd" : "even",
                          2000000 + i % 10, 100));
  kt_store_flush(st);
  struct kt_span_vec v = {0};
  uint8_t t[16];
  memset(t, 9, 16);
  assert_int_equal(kt_store_get_trace(st, t, &v), 0);
  assert_int_equal(v.n, 10); /* same (trace, span) replaces */
  for (size_t i = 1; i < v.n; i++) /* ordered by start */
    assert_true(v.v[i - 1]->start_us <= v.v[i]->start_us);
  kt_span_vec_free(&v);
  kt_store_put(st, window(9, 100, "odd", 2000000, 1000000));
  kt_store_flush(st);
  struct kt_store_query q = {.cluster = "c1", .resource = "pods", .name = "odd",
                             .start_us = 2000000, .end_us = 3000000};
  struct kt_trace_ref *refs;
  size_t n;
  assert_int_equal(kt_store_find(st, &q, &refs, &n), 0);
  assert_int_equal(n, 1);
  assert_int_equal(refs[0].root_span_id, 1);
  assert_int_equal(refs[0].start_us, 2000000);
  /* the object of the trace root (span 1, last written by an "even" put) */
  assert_string_equal(refs[0].object, "c1//pods/default/even");
  free(refs);
  struct kt_tag tag = {"weird", "nope"};
  q.tags = &tag;
  q.ntags = 1;
  assert_int_equal(kt_store_find(st, &q, &refs, &n), 0);
  assert_int_equal(n, 0);
  free(refs);
  tag.value = "quote \" newline \n tab \t utf-8 é 漢";
  assert_int_equal(kt_store_find(st, &q, &refs, &n), 0);
  assert_int_equal(n, 1);
  free(refs);
  q.ntags = 0;
  q.start_us = 5000000; /* out of range */
  q.end_us = 6000000;
  assert_int_equal(kt_store_find(st, &q, &refs, &n), 0);
  assert_int_equal(n, 0);
  free(refs);
  assert_true(kt_store_has_span(st, t, 3, NULL));
  assert_false(kt_store_has_span(st, t, 99, NULL));
  kt_store_close(st);
}

/* Newest first, the limit counts traces, durations and services filter. */
static void test_find_order_and_limit(void **state)
{
  struct kt_store *st = open_store();
  for (int i = 0; i < 6; i++) {
    struct kt_span *root = make((uint8_t)(0x40 + i), 1, "many", 7000000 + i * 1000, 10);
    free(root->service);
    root->service = strdup("object");
    root->end_us = root->start_us + 100 * (i + 1);
    kt_store_put(st, root);
    kt_store_put(st, make((uint8_t)(0x40 + i), 2, "many", 7000000 + i * 1000 + 10, 10));
  }
  assert_int_equal(kt_store_flush(st), 0);
  struct kt_store_query q = {.cluster = "c1", .name = "many", .limit = 4};
  struct kt_trace_ref *refs;
  size_t n;
  assert_int_equal(kt_store_find(st, &q, &refs, &n), 0);
  assert_int_equal(n, 4);
  for (size_t i = 0; i < n; i++)
    assert_int_equal(refs[i].trace_id[0], 0x45 - i); /* newest first */
  free(refs);
  q.service = "object";
  q.min_dur_us = 250;
  q.max_dur_us = 450;
  q.limit = 0;
  assert_int_equal(kt_store_find(st, &q, &refs, &n), 0);
  assert_int_equal(n, 2); /* durations 300 and 400 */
  assert_int_equal(refs[0].trace_id[0], 0x43);
  assert_int_equal(refs[1].trace_id[0], 0x42);
  free(refs);
  kt_store_close(st);
}

static int count_cb(const char *key, const char *val, size_t len,
                    int64_t expires_us, void *ud)
{
  assert_int_equal(val[len], 0);
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
  kt_store_kv_put(st, "ns", "d", "one", 3, 0); /* the last write wins */
  kt_store_kv_put(st, "ns", "d", "two\0bytes", 9, 0);
  kt_store_kv_put(st, "other", "a", "x", 1, 0);
  kt_store_close(st);
  st = open_store(); /* everything survives a reopen */
  char *v;
  size_t len;
  assert_int_equal(kt_store_kv_get(st, "ns", "a", &v, &len), 0);
  assert_string_equal(v, "alpha");
  free(v);
  assert_int_equal(kt_store_kv_get(st, "ns", "d", &v, &len), 0);
  assert_int_equal(len, 9);
  assert_memory_equal(v, "two\0bytes", 9);
  free(v);
  assert_int_equal(kt_store_kv_get(st, "ns", "b", &v, &len), -ENOENT);
  assert_int_equal(kt_store_kv_get(st, "ns", "c", &v, &len), -ENOENT);
  int n = 0;
  kt_store_kv_scan(st, "ns", count_cb, &n);
  assert_int_equal(n, 2);
  assert_true(kt_store_count(st) > 0);
  /* retention deletes expired kv entries for good */
  assert_true(kt_store_retain(st, 0) >= 0);
  kt_store_kv_put(st, "ns", "b2", "x", 1, kt_now_us() + 200000);
  kt_store_flush(st);
  assert_int_equal(kt_store_kv_get(st, "ns", "b2", &v, &len), 0);
  free(v);
  kt_store_close(st);
}

struct putter {
  struct kt_store *st;
  int base, n;
};

static void *put_many(void *arg)
{
  struct putter *p = arg;
  for (int i = 0; i < p->n; i++)
    assert_int_equal(kt_store_put(p->st, make(0x60, (uint64_t)(p->base + i),
                                              "bp", 9000000 + i, 50)), 0);
  return NULL;
}

/* A queue of 10 with three threads putting 300 spans each: puts wait for
 * room, and every span is there after flush. */
static void test_backpressure(void **state)
{
  struct kt_store *st = open_store();
  int64_t before = kt_store_count(st);
  pthread_t th[3];
  struct putter p[3];
  for (int i = 0; i < 3; i++) {
    p[i] = (struct putter){st, 1 + i * 300, 300};
    pthread_create(&th[i], NULL, put_many, &p[i]);
  }
  for (int i = 0; i < 3; i++)
    pthread_join(th[i], NULL);
  assert_int_equal(kt_store_flush(st), 0);
  assert_int_equal(kt_store_count(st) - before, 900);
  uint8_t t[16];
  memset(t, 0x60, 16);
  assert_true(kt_store_has_span(st, t, 1, NULL));
  assert_true(kt_store_has_span(st, t, 900, NULL));
  kt_store_close(st);
}

static void note(const char *cluster, void *ud)
{
  if (!strcmp(cluster, "cl-a") || !strcmp(cluster, "cl-b"))
    (*(int *)ud)++;
}

/* Clusters of trace roots; names and values that are not valid UTF-8 are
 * stored and found by the same bytes (PostgreSQL cleans both sides). */
static void test_clusters_and_odd_bytes(void **state)
{
  struct kt_store *st = open_store();
  const char *clusters[] = {"cl-a", "cl-b", "cl-a"};
  for (int i = 0; i < 3; i++) {
    struct kt_span *s = make((uint8_t)(0x70 + i), 1, "bad\xff\xfename", 11000000, 10);
    kt_span_set_tag(s, "cluster", clusters[i]);
    kt_span_set_tag(s, "raw", "\xc3\x28 and \xed\xa0\x80");
    kt_store_put(st, s);
  }
  assert_int_equal(kt_store_flush(st), 0);
  int seen = 0;
  assert_int_equal(kt_store_clusters(st, note, &seen), 0);
  assert_int_equal(seen, 2);
  struct kt_store_query q = {.cluster = "cl-b", .name = "bad\xff\xfename"};
  struct kt_trace_ref *refs;
  size_t n;
  assert_int_equal(kt_store_find(st, &q, &refs, &n), 0);
  assert_int_equal(n, 1);
  assert_int_equal(refs[0].trace_id[0], 0x71);
  free(refs);
  struct kt_span_vec v = {0};
  uint8_t t[16];
  memset(t, 0x71, 16);
  assert_int_equal(kt_store_get_trace(st, t, &v), 0);
  assert_string_equal(kt_span_tag(v.v[0], "raw"), "\xc3\x28 and \xed\xa0\x80");
  assert_string_equal(kt_span_tag(v.v[0], "name"), "bad\xff\xfename");
  kt_span_vec_free(&v);
  kt_store_close(st);
}

#define STORE_CASES                                  \
  cmocka_unit_test(test_roundtrip),                  \
  cmocka_unit_test(test_idempotent_and_find),        \
  cmocka_unit_test(test_find_order_and_limit),       \
  cmocka_unit_test(test_kv_and_reopen),              \
  cmocka_unit_test(test_backpressure),               \
  cmocka_unit_test(test_clusters_and_odd_bytes)
