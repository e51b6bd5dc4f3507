/* The SQLite store: the backend-independent cases (store_cases.h), plus
 * what is SQLite's own: retention deletes whole traces whose root ended
 * before the cut-off, a file that is not a database is refused, a
 * rewritten span moves in the searches (upsert in place), a database
 * written by the first release (schema 1, 16 KB pages, rows put with
 * INSERT OR REPLACE) opens and takes rewrites, and the writer's batch wait
 * neither delays a flush nor keeps a lone span from being committed. */
#include "store_cases.h"

#include <sqlite3.h>
#include <time.h>

#include "store/kt_store_backend.h"

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
  assert_false(kt_store_has_span(st, t, 2, NULL));
  memset(t, 0x91, 16);
  assert_true(kt_store_has_span(st, t, 1, NULL));
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

static size_t find_range(struct kt_store *st, const char *name,
                         const char *service, int64_t start, int64_t end)
{
  struct kt_store_query q = {.cluster = "c1", .resource = "pods", .name = name,
                             .service = service, .start_us = start, .end_us = end};
  struct kt_trace_ref *refs;
  size_t n;
  assert_int_equal(kt_store_find(st, &q, &refs, &n), 0);
  free(refs);
  return n;
}

/* A span written again (a redelivery, a replay) is rewritten in place and
 * searches see its new times. */
static void test_rewrite_moves_in_searches(void **state)
{
  struct kt_store *st = open_store();
  int64_t before = kt_store_count(st);
  kt_store_put(st, window(0xa0, 99, "moved", 7000000, 1000000));
  kt_store_put(st, make(0xa0, 5, "moved", 7000000, 10));
  assert_int_equal(kt_store_flush(st), 0);
  assert_int_equal(find_range(st, "moved", "audit", 7000000, 7000050), 1);
  struct kt_span *s = make(0xa0, 5, "moved", 7000100, 10);
  free(s->operation);
  s->operation = strdup("bob patch");
  kt_store_put(st, s);
  assert_int_equal(kt_store_flush(st), 0);
  assert_int_equal(kt_store_count(st) - before, 2);
  assert_int_equal(find_range(st, "moved", "audit", 7000000, 7000050), 0);
  assert_int_equal(find_range(st, "moved", "audit", 7000090, 7000200), 1);
  uint8_t t[16];
  memset(t, 0xa0, 16);
  assert_true(kt_store_has_span(st, t, 5, "moved"));
  assert_false(kt_store_has_span(st, t, 5, "other"));
  struct kt_span_vec v = {0};
  assert_int_equal(kt_store_get_trace(st, t, &v), 0);
  assert_int_equal(v.n, 2);
  assert_int_equal(v.v[1]->start_us, 7000100);
  assert_string_equal(v.v[1]->operation, "bob patch");
  kt_span_vec_free(&v);
  kt_store_close(st);
}

/* Searches naming an object look in its windows' traces: a span is found
 * when its own start is in the range, in whichever window; an object with
 * no window in the range is not looked at. */
static void test_search_through_windows(void **state)
{
  struct kt_store *st = open_store();
  for (int w = 0; w < 3; w++) { /* windows [10 s, 11 s), [11, 12), [12, 13) */
    int64_t ws = 10000000 + w * 1000000;
    kt_store_put(st, window((uint8_t)(0xd0 + w), 1, "win-pod", ws, 1000000));
    kt_store_put(st, make((uint8_t)(0xd0 + w), 2, "win-pod", ws + 999000, 10));
  }
  kt_store_put(st, make(0xd1, 3, "linked-pod", 11500000, 10)); /* no window */
  assert_int_equal(kt_store_flush(st), 0);
  assert_int_equal(find_range(st, "win-pod", "audit", 10999000, 10999000), 1);
  assert_int_equal(find_range(st, "win-pod", "audit", 10999000, 11999000), 2);
  assert_int_equal(find_range(st, "win-pod", "audit", 11000000, 11998999), 0);
  assert_int_equal(find_range(st, "win-pod", NULL, 0, 0), 3);
  assert_int_equal(find_range(st, "win-pod", "object", 11000000, 11000000), 1);
  assert_int_equal(find_range(st, "win-pod", "audit", 20000000, 30000000), 0);
  assert_int_equal(find_range(st, "linked-pod", NULL, 0, 0), 0);
  /* newest window first */
  struct kt_store_query q = {.cluster = "c1", .resource = "pods",
                             .name = "win-pod", .limit = 2};
  struct kt_trace_ref *refs;
  size_t n;
  assert_int_equal(kt_store_find(st, &q, &refs, &n), 0);
  assert_int_equal(n, 2);
  assert_int_equal(refs[0].trace_id[0], 0xd2);
  assert_int_equal(refs[1].trace_id[0], 0xd1);
  free(refs);
  kt_store_close(st);
}

/* The layout the first release wrote, byte for byte its statements. */
static const char *v1_schema =
    "PRAGMA page_size=16384; PRAGMA journal_mode=WAL;"
    "CREATE TABLE spans(trace_id BLOB NOT NULL, span_id INTEGER NOT NULL,"
    " parent_id INTEGER NOT NULL, service TEXT NOT NULL,"
    " operation TEXT NOT NULL, start_us INTEGER NOT NULL,"
    " end_us INTEGER NOT NULL, cluster TEXT, grp TEXT, resource TEXT,"
    " namespace TEXT, name TEXT, body BLOB NOT NULL);"
    "CREATE UNIQUE INDEX spans_id ON spans(trace_id, span_id);"
    "CREATE INDEX spans_object ON spans (cluster, resource, name, namespace, start_us);"
    "CREATE INDEX spans_resource ON spans (cluster, resource, start_us);"
    "CREATE INDEX spans_roots ON spans(end_us) WHERE parent_id = 0;"
    "CREATE TABLE kv(ns TEXT NOT NULL, key TEXT NOT NULL,"
    " value BLOB NOT NULL, expires_us INTEGER NOT NULL,"
    " PRIMARY KEY(ns, key)) WITHOUT ROWID;"
    "PRAGMA user_version = 1;";

static void test_v1_database_opens(void **state)
{
  char old[160];
  snprintf(old, sizeof old, "%s/v1.db", dir);
  sqlite3 *db;
  assert_int_equal(sqlite3_open(old, &db), SQLITE_OK);
  assert_int_equal(sqlite3_exec(db, v1_schema, NULL, NULL, NULL), SQLITE_OK);
  struct kt_span *s = make(0xb1, 1, "old-pod", 8000000, 3000);
  unsigned char *body;
  size_t len;
  assert_int_equal(kt__store_encode_body(s, &body, &len), 0);
  sqlite3_stmt *q;
  assert_int_equal(sqlite3_prepare_v2(db,
      "INSERT OR REPLACE INTO spans VALUES(?,1,0,'audit','alice update',"
      "8000000,8001000,'c1',NULL,'pods','default','old-pod',?)", -1, &q, NULL),
      SQLITE_OK);
  sqlite3_bind_blob(q, 1, s->trace_id, 16, SQLITE_STATIC);
  sqlite3_bind_blob(q, 2, body, (int)len, SQLITE_STATIC);
  assert_int_equal(sqlite3_step(q), SQLITE_DONE);
  assert_int_equal(sqlite3_exec(db,
      "INSERT INTO spans SELECT trace_id, 7, 0, 'object', 'pods/old-pod', 7000000,"
      " 9000000, cluster, grp, resource, namespace, name, body FROM spans",
      NULL, NULL, NULL), SQLITE_OK);
  sqlite3_finalize(q);
  assert_int_equal(sqlite3_exec(db, "INSERT INTO kv VALUES('spancache','k','v',0)",
                                NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(db);
  free(body);

  struct kt_store *st;
  struct kt_store_opts o = {0};
  assert_int_equal(kt_store_open_sqlite(old, &o, &st), 0);
  struct kt_span_vec v = {0};
  assert_int_equal(kt_store_get_trace(st, s->trace_id, &v), 0);
  assert_int_equal(v.n, 2); /* the window, then the span */
  assert_string_equal(v.v[1]->logs[0].msg, s->logs[0].msg);
  kt_span_vec_free(&v);
  assert_int_equal(find_range(st, "old-pod", NULL, 0, 0), 1); /* through schema 2's indexes */
  char *val;
  assert_int_equal(kt_store_kv_get(st, "spancache", "k", &val, &len), 0);
  assert_string_equal(val, "v");
  free(val);
  /* the same span again, moved: rewritten in place, not duplicated */
  kt_store_put(st, make(0xb1, 1, "old-pod", 8500000, 10));
  assert_int_equal(kt_store_flush(st), 0);
  assert_int_equal(kt_store_count(st), 2);
  assert_int_equal(find_range(st, "old-pod", "audit", 8000000, 8000000), 0);
  assert_int_equal(find_range(st, "old-pod", "audit", 8500000, 8500000), 1);
  kt_store_close(st);
  kt_span_free(s);
  /* schema 1's per-span object index is gone, schema 2's are there */
  assert_int_equal(sqlite3_open(old, &db), SQLITE_OK);
  assert_int_equal(sqlite3_prepare_v2(db,
      "SELECT group_concat(name, ',') FROM (SELECT name FROM sqlite_master"
      " WHERE type = 'index' AND tbl_name = 'spans' ORDER BY name)", -1, &q, NULL),
      SQLITE_OK);
  assert_int_equal(sqlite3_step(q), SQLITE_ROW);
  assert_string_equal((const char *)sqlite3_column_text(q, 0),
                      "spans_key,spans_resource,spans_roots,spans_windows");
  sqlite3_finalize(q);
  sqlite3_close(db);
}

/* Whether span id of trace t becomes visible within 3 s (no flush). */
static int visible_soon(struct kt_store *st, const uint8_t t[16], uint64_t id)
{
  for (int i = 0; i < 300; i++) {
    if (kt_store_has_span(st, t, id, NULL))
      return 1;
    struct timespec ts = {0, 10000000};
    nanosleep(&ts, NULL);
  }
  return 0;
}

static void test_batch_wait(void **state)
{
  char p2[160];
  snprintf(p2, sizeof p2, "%s/wait.db", dir);
  struct kt_store *st;
  /* a flush commits at once even when batches may wait 10 s */
  struct kt_store_opts o = {.batch_wait_us = 10000000};
  assert_int_equal(kt_store_open_sqlite(p2, &o, &st), 0);
  int64_t t0 = kt_mono_us();
  kt_store_put(st, make(0xc1, 1, "w", 9000000, 10));
  assert_int_equal(kt_store_flush(st), 0);
  assert_true(kt_mono_us() - t0 < 5000000);
  uint8_t t[16];
  memset(t, 0xc1, 16);
  assert_true(kt_store_has_span(st, t, 1, NULL));
  kt_store_close(st);
  /* without a flush, a lone span is committed once the wait is over */
  o.batch_wait_us = 30000;
  assert_int_equal(kt_store_open_sqlite(p2, &o, &st), 0);
  kt_store_put(st, make(0xc2, 1, "w", 9000000, 10));
  memset(t, 0xc2, 16);
  assert_true(visible_soon(st, t, 1));
  kt_store_close(st);
  /* a burst that stops is committed once no op came for batch_idle_us
   * (5 ms), long before a 10 s wait is over */
  o.batch_wait_us = 10000000;
  assert_int_equal(kt_store_open_sqlite(p2, &o, &st), 0);
  t0 = kt_mono_us();
  for (int i = 0; i < 3; i++)
    kt_store_put(st, make(0xc3, (uint64_t)i + 1, "w", 9000000, 10));
  memset(t, 0xc3, 16);
  assert_true(visible_soon(st, t, 3));
  assert_true(kt_mono_us() - t0 < 5000000);
  kt_store_close(st);
}

/* The durable inbox's put commits at once, ahead of a batch still
 * gathering, and a deletion queued after it never commits before it. */
static void test_durable_put_goes_first(void **state)
{
  char p2[160];
  snprintf(p2, sizeof p2, "%s/urgent.db", dir);
  struct kt_store *st;
  struct kt_store_opts o = {.batch_wait_us = 10000000, .batch_idle_us = -1};
  assert_int_equal(kt_store_open_sqlite(p2, &o, &st), 0);
  kt_store_put(st, make(0xd1, 1, "u", 9000000, 10)); /* gathering: 10 s */
  int64_t t0 = kt_mono_us();
  assert_int_equal(kt_store_kv_put_durable(st, "inbox", "k1", "body", 4), 0);
  assert_true(kt_mono_us() - t0 < 5000000);
  char *v;
  size_t len;
  assert_int_equal(kt_store_kv_get(st, "inbox", "k1", &v, &len), 0);
  assert_memory_equal(v, "body", 4);
  free(v);
  uint8_t t[16];
  memset(t, 0xd1, 16);
  assert_false(kt_store_has_span(st, t, 1, NULL)); /* still in its batch */
  kt_store_kv_del(st, "inbox", "k1");
  assert_int_equal(kt_store_kv_put_durable(st, "inbox", "k2", "b2", 2), 0);
  assert_int_equal(kt_store_flush(st), 0);
  assert_true(kt_store_has_span(st, t, 1, NULL));
  assert_int_equal(kt_store_kv_get(st, "inbox", "k1", &v, &len), -ENOENT);
  assert_int_equal(kt_store_kv_get(st, "inbox", "k2", &v, &len), 0);
  free(v);
  kt_store_close(st);
}

struct after {
  struct kt_store *st;
  int calls, ok, stored; /* stored: the span was readable in the call */
};

static void after_cb(void *arg, int ok)
{
  struct after *a = arg;
  uint8_t t[16];
  memset(t, 0xd2, 16);
  a->calls++;
  a->ok = ok;
  a->stored = kt_store_has_span(a->st, t, 1, NULL);
}

/* An after-commit call runs once what was put before it is committed
 * (the separate inbox deletes its entries so), not while it gathers; with
 * nothing pending it runs at once. */
static void test_after_commit(void **state)
{
  char p2[160];
  snprintf(p2, sizeof p2, "%s/after.db", dir);
  struct kt_store *st;
  struct kt_store_opts o = {.batch_wait_us = 300000};
  assert_int_equal(kt_store_open_sqlite(p2, &o, &st), 0);
  struct after a = {st, 0, 0, 0}, now = {st, 0, 0, 0};
  assert_int_equal(kt_store_after_commit(st, after_cb, &now), 0);
  assert_int_equal(now.calls, 1); /* nothing pending: at once */
  assert_true(now.ok);
  kt_store_put(st, make(0xd2, 1, "a", 9000000, 10));
  assert_int_equal(kt_store_after_commit(st, after_cb, &a), 0);
  assert_int_equal(a.calls, 0); /* the batch is still gathering */
  assert_int_equal(kt_store_flush(st), 0);
  kt_store_close(st); /* joins the writer: the call has run */
  assert_int_equal(a.calls, 1);
  assert_true(a.ok);
  assert_true(a.stored);
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
      cmocka_unit_test(test_rewrite_moves_in_searches),
      cmocka_unit_test(test_search_through_windows),
      cmocka_unit_test(test_v1_database_opens),
      cmocka_unit_test(test_batch_wait),
      cmocka_unit_test(test_durable_put_goes_first),
      cmocka_unit_test(test_after_commit),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  return rc | system(cmd);
}
