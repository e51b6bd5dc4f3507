/* The PostgreSQL store against a real server (KT_TEST_PG, started by
 * tests/lib/engines.py): the backend-independent cases of store_cases.h,
 * then what is PostgreSQL's own: two store instances writing the same
 * spans leave one row per span; two processes migrating a fresh database
 * at once both succeed, and a newer schema is refused; retention drops
 * whole partitions; data older than any partition is accepted; connections
 * killed under load lose nothing; reads fail with -EIO while the database
 * refuses connections, and work again after. */
#include "../unit/store_cases.h"

#include <libpq-fe.h>
#include "core/kt_metrics.h"
#include <sys/wait.h>
#include <unistd.h>

static const char *base_dsn;
static char cases_dsn[512];

/* One value of a query on db (NULL = the base database), as a number. */
static long long sql_num(const char *db, const char *sql)
{
  char dsn[512];
  snprintf(dsn, sizeof dsn, "%s%s%s", base_dsn, db ? " dbname=" : "", db ? db : "");
  PGconn *c = PQconnectdb(dsn);
  assert_int_equal(PQstatus(c), CONNECTION_OK);
  PGresult *r = PQexec(c, sql);
  if (PQresultStatus(r) != PGRES_TUPLES_OK && PQresultStatus(r) != PGRES_COMMAND_OK)
    fail_msg("%s: %s", sql, PQerrorMessage(c));
  long long v = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r)
                    ? atoll(PQgetvalue(r, 0, 0)) : 0;
  PQclear(r);
  PQfinish(c);
  return v;
}

/* A new empty database; its conninfo goes to dsn. */
static void fresh_db(const char *name, char *dsn, size_t len)
{
  char sql[128];
  snprintf(sql, sizeof sql, "CREATE DATABASE %s", name);
  sql_num(NULL, sql);
  snprintf(dsn, len, "%s dbname=%s", base_dsn, name);
}

static struct kt_store *open_pg(const char *dsn, size_t queue_limit,
                                int64_t part_us)
{
  struct kt_store *st;
  struct kt_store_opts o = {.queue_limit = queue_limit, .partition_us = part_us};
  assert_int_equal(kt_store_open_postgres(dsn, &o, &st), 0);
  return st;
}

static struct kt_store *open_cases(size_t queue_limit)
{
  return open_pg(cases_dsn, queue_limit, 0);
}

struct writer {
  struct kt_store *st;
  int reverse;
};

static void *write_same(void *arg)
{
  struct writer *w = arg;
  for (int i = 0; i < 400; i++) {
    int id = w->reverse ? 400 - i : i + 1;
    kt_store_put(w->st, make(0xa0, (uint64_t)id, "same", 20000000 + id, 200));
  }
  return NULL;
}

static void test_two_writers_one_row(void **state)
{
  char dsn[512];
  fresh_db("two_writers", dsn, sizeof dsn);
  struct writer w[2] = {{open_pg(dsn, 50, 0), 0}, {open_pg(dsn, 50, 0), 1}};
  pthread_t th[2];
  for (int i = 0; i < 2; i++)
    pthread_create(&th[i], NULL, write_same, &w[i]);
  for (int i = 0; i < 2; i++)
    pthread_join(th[i], NULL);
  for (int i = 0; i < 2; i++)
    assert_int_equal(kt_store_flush(w[i].st), 0);
  assert_int_equal(sql_num("two_writers", "SELECT count(*) FROM spans"), 400);
  assert_int_equal(sql_num("two_writers", "SELECT count(*) FROM (SELECT 1 FROM"
                           " spans GROUP BY trace_id, span_id HAVING count(*) > 1) d"), 0);
  assert_int_equal(kt_store_count(w[1].st), 400);
  for (int i = 0; i < 2; i++)
    kt_store_close(w[i].st);
}

static void test_migration_concurrent(void **state)
{
  char dsn[512];
  fresh_db("migrate", dsn, sizeof dsn);
  pid_t kids[2];
  for (int i = 0; i < 2; i++) {
    kids[i] = fork();
    assert_true(kids[i] >= 0);
    if (kids[i] == 0) {
      struct kt_store *st;
      struct kt_store_opts o = {0};
      int rc = kt_store_open_postgres(dsn, &o, &st);
      if (!rc) {
        kt_store_put(st, make((uint8_t)(0xb0 + i), 1, "m", kt_now_us(), 10));
        rc = kt_store_flush(st);
        kt_store_close(st);
      }
      _exit(rc ? 1 : 0);
    }
  }
  for (int i = 0; i < 2; i++) {
    int status;
    assert_int_equal(waitpid(kids[i], &status, 0), kids[i]);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  assert_int_equal(sql_num("migrate", "SELECT count(*) FROM schema_version"), 1);
  assert_int_equal(sql_num("migrate", "SELECT version FROM schema_version"), 1);
  assert_int_equal(sql_num("migrate", "SELECT count(*) FROM spans"), 2);
  struct kt_store *st = open_pg(dsn, 0, 0); /* migrating again: a no-op */
  assert_int_equal(kt_store_count(st), 2);
  kt_store_close(st);
  sql_num("migrate", "UPDATE schema_version SET version = 99");
  struct kt_store_opts o = {0};
  assert_int_equal(kt_store_open_postgres(dsn, &o, &st), -EPROTO);
}

#define HOUR 3600000000LL
#define DAY (24 * HOUR)

static void test_retention_drops_partitions(void **state)
{
  char dsn[512];
  fresh_db("retention", dsn, sizeof dsn);
  struct kt_store *st = open_pg(dsn, 0, HOUR);
  int64_t now = kt_now_us();
  long long ahead = sql_num("retention", "SELECT count(*) FROM pg_inherits"
                            " WHERE inhparent = 'spans'::regclass");
  assert_true(ahead >= 2); /* this hour's and the next one's */
  /* 2001-01-01: older than any partition, accepted (replays) */
  int64_t old[3] = {978307200000000LL, now - 3 * DAY, now - 2 * DAY};
  for (int i = 0; i < 3; i++)
    kt_store_put(st, make((uint8_t)(0xc0 + i), 1, "r", old[i], 10));
  kt_store_put(st, make(0xc3, 1, "r", now, 10));
  assert_int_equal(kt_store_flush(st), 0);
  assert_int_equal(sql_num("retention", "SELECT count(*) FROM pg_inherits"
                           " WHERE inhparent = 'spans'::regclass"), ahead + 3);
  uint8_t t[16];
  memset(t, 0xc0, 16);
  assert_true(kt_store_has_span(st, t, 1, NULL));
  assert_int_equal(kt_store_retain(st, now - DAY), 3);
  assert_int_equal(sql_num("retention", "SELECT count(*) FROM pg_inherits"
                           " WHERE inhparent = 'spans'::regclass"), ahead);
  assert_false(kt_store_has_span(st, t, 1, NULL));
  memset(t, 0xc3, 16);
  assert_true(kt_store_has_span(st, t, 1, NULL));
  assert_int_equal(kt_store_count(st), 1);
  /* the old data can come again: its partition is made again */
  kt_store_put(st, make(0xc0, 1, "r", old[0], 10));
  assert_int_equal(kt_store_flush(st), 0);
  assert_int_equal(kt_store_count(st), 2);
  kt_store_close(st);
}

struct loader {
  struct kt_store *st;
  int n;
  int done; /* atomic */
};

static void *load(void *arg)
{
  struct loader *l = arg;
  for (int i = 0; i < l->n; i++)
    kt_store_put(l->st, make(0xd0, (uint64_t)i + 1, "k", 30000000 + i, 500));
  kt_store_flush(l->st);
  __atomic_store_n(&l->done, 1, __ATOMIC_SEQ_CST);
  return NULL;
}

static double metric(const char *series)
{
  double v = 0;
  char *text = kt_metrics_render(kt_metrics_default(), NULL);
  kt_metrics_scrape_value(text, series, &v);
  free(text);
  return v;
}

/* The server ends every connection of the store several times while it
 * writes: the writer reconnects and keeps its batch, the pool reconnects,
 * nothing is lost, nothing duplicated. */
static void test_connections_killed(void **state)
{
  char dsn[512];
  fresh_db("killed", dsn, sizeof dsn);
  const char *series = "store_errors_total{backend=\"postgres\",op=\"write\"}";
  double errors = metric(series);
  struct loader l = {open_pg(dsn, 100, 0), 30000, 0};
  pthread_t th;
  pthread_create(&th, NULL, load, &l);
  int kills = 0;
  while (!__atomic_load_n(&l.done, __ATOMIC_SEQ_CST) && kills < 100) {
    usleep(50000);
    kills += sql_num(NULL, "SELECT count(pg_terminate_backend(pid)) FROM"
                     " pg_stat_activity WHERE datname = 'killed'") > 0;
  }
  pthread_join(th, NULL);
  assert_true(kills >= 3);
  assert_true(metric(series) > errors); /* the writer did lose its connection */
  assert_int_equal(kt_store_flush(l.st), 0);
  assert_int_equal(kt_store_count(l.st), 30000);
  assert_int_equal(sql_num("killed", "SELECT count(DISTINCT span_id) FROM spans"), 30000);
  kt_store_close(l.st);
}

static void test_reads_fail_while_refused(void **state)
{
  char dsn[512];
  fresh_db("refused", dsn, sizeof dsn);
  struct kt_store *st = open_pg(dsn, 0, 0);
  kt_store_put(st, make(0xe0, 1, "x", 40000000, 10));
  assert_int_equal(kt_store_flush(st), 0);
  sql_num(NULL, "ALTER DATABASE refused ALLOW_CONNECTIONS false");
  sql_num(NULL, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
          " WHERE datname = 'refused'");
  uint8_t t[16];
  memset(t, 0xe0, 16);
  struct kt_span_vec v = {0};
  assert_int_equal(kt_store_get_trace(st, t, &v), -EIO);
  struct kt_store_query q = {.cluster = "c1"};
  struct kt_trace_ref *refs;
  size_t n;
  assert_int_equal(kt_store_find(st, &q, &refs, &n), -EIO);
  char *val;
  size_t len;
  assert_int_equal(kt_store_kv_get(st, "ns", "k", &val, &len), -EIO);
  assert_true(kt_store_count(st) < 0);
  sql_num(NULL, "ALTER DATABASE refused ALLOW_CONNECTIONS true");
  assert_int_equal(kt_store_get_trace(st, t, &v), 0);
  assert_int_equal(v.n, 1);
  kt_span_vec_free(&v);
  kt_store_close(st);
}

static void test_unreachable(void **state)
{
  struct kt_store *st;
  struct kt_store_opts o = {0};
  assert_int_equal(kt_store_open_postgres("host=127.0.0.1 port=1 user=x", &o, &st), -EIO);
  assert_int_equal(kt_store_open_postgres("not a conninfo", &o, &st), -EIO);
}

int main(void)
{
  base_dsn = getenv("KT_TEST_PG");
  if (!base_dsn) {
    fprintf(stderr, "KT_TEST_PG is not set: run under tests/lib/engines.py\n");
    return 1;
  }
  fresh_db("cases", cases_dsn, sizeof cases_dsn);
  store_open = open_cases;
  const struct CMUnitTest tests[] = {
      STORE_CASES,
      cmocka_unit_test(test_two_writers_one_row),
      cmocka_unit_test(test_migration_concurrent),
      cmocka_unit_test(test_retention_drops_partitions),
      cmocka_unit_test(test_connections_killed),
      cmocka_unit_test(test_reads_fail_while_refused),
      cmocka_unit_test(test_unreachable),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
