/* kt_metrics: exact exposition text for each kind, label and help escaping,
 * number formatting, registration rules (idempotence, kind clash,
 * validation), the per-metric series limit and its overflow series,
 * lock-free updates from several threads, and the scrape helper. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/kt_metrics.h"

#define V(...) ((const char *const[]){__VA_ARGS__})

static int setup(void **state)
{
  *state = kt_metrics_new();
  return *state ? 0 : -1;
}

static int teardown(void **state)
{
  kt_metrics_free(*state);
  return 0;
}

/* Renders r and checks the whole text. */
static void assert_render(struct kt_metrics *r, const char *want)
{
  size_t len = 0;
  char *text = kt_metrics_render(r, &len);
  assert_non_null(text);
  assert_string_equal(text, want);
  assert_int_equal(len, strlen(want));
  free(text);
}

/* Renders r and returns the value of one series line. */
static double scrape(struct kt_metrics *r, const char *series)
{
  char *text = kt_metrics_render(r, NULL);
  assert_non_null(text);
  double v = -1;
  int rc = kt_metrics_scrape_value(text, series, &v);
  if (rc != 0)
    fail_msg("no series %s in:\n%s", series, text);
  free(text);
  return v;
}

static void test_empty_registry(void **state)
{
  assert_render(*state, "");
  assert_null(kt_metrics_render(NULL, NULL));
}

static void test_counter_with_labels(void **state)
{
  struct kt_metrics *r = *state;
  struct kt_metric *m = kt_metrics_counter(r, "http_requests_total",
      "HTTP requests answered", V("method", "code", NULL));
  assert_non_null(m);
  kt_series_add(kt_metric_series(m, V("GET", "200")), 3);
  kt_metric_inc(m, V("POST", "500"));
  kt_metric_inc(m, V("GET", "200"));
  assert_render(r,
      "# HELP http_requests_total HTTP requests answered\n"
      "# TYPE http_requests_total counter\n"
      "http_requests_total{method=\"GET\",code=\"200\"} 4\n"
      "http_requests_total{method=\"POST\",code=\"500\"} 1\n");
}

static void test_unlabeled_starts_at_zero(void **state)
{
  struct kt_metrics *r = *state;
  struct kt_metric *c = kt_metrics_counter(r, "a_total", "A", NULL);
  kt_metrics_gauge(r, "b", "B", NULL);
  kt_metric_inc(c, NULL);
  assert_render(r,
      "# HELP a_total A\n# TYPE a_total counter\na_total 1\n"
      "# HELP b B\n# TYPE b gauge\nb 0\n");
}

static void test_counter_ignores_negative_and_set(void **state)
{
  struct kt_series *s = kt_metric_series(
      kt_metrics_counter(*state, "c_total", "C", NULL), NULL);
  kt_series_add(s, 2);
  kt_series_add(s, -1);
  kt_series_add(s, NAN);
  kt_series_set(s, 100);
  kt_series_observe(s, 100);
  assert_true(kt_series_value(s) == 2);
}

static void test_gauge_set_last_wins(void **state)
{
  struct kt_metrics *r = *state;
  struct kt_metric *g = kt_metrics_gauge(r, "queue_depth", "Depth",
                                         V("queue", NULL));
  struct kt_series *s = kt_metric_series(g, V("ingest"));
  kt_series_set(s, 17);
  kt_series_set(s, 5);
  assert_true(kt_series_value(s) == 5);
  assert_render(r,
      "# HELP queue_depth Depth\n# TYPE queue_depth gauge\n"
      "queue_depth{queue=\"ingest\"} 5\n");
  kt_series_add(s, -5.5);
  assert_true(scrape(r, "queue_depth{queue=\"ingest\"}") == -0.5);
}

static void test_histogram_cumulative(void **state)
{
  struct kt_metrics *r = *state;
  static const double b[] = {0.25, 0.5, 1};
  struct kt_metric *h = kt_metrics_histogram(r, "op_seconds", "Op time",
                                             V("op", NULL), b, 3);
  struct kt_series *s = kt_metric_series(h, V("read"));
  kt_series_observe(s, 0.125);
  kt_series_observe(s, 0.25); /* le is inclusive */
  kt_series_observe(s, 0.375);
  kt_series_observe(s, 2);
  kt_series_add(s, 10); /* not for histograms: ignored */
  assert_true(kt_series_value(s) == 4);
  assert_render(r,
      "# HELP op_seconds Op time\n# TYPE op_seconds histogram\n"
      "op_seconds_bucket{op=\"read\",le=\"0.25\"} 2\n"
      "op_seconds_bucket{op=\"read\",le=\"0.5\"} 3\n"
      "op_seconds_bucket{op=\"read\",le=\"1\"} 3\n"
      "op_seconds_bucket{op=\"read\",le=\"+Inf\"} 4\n"
      "op_seconds_sum{op=\"read\"} 2.75\n"
      "op_seconds_count{op=\"read\"} 4\n");
}

static void test_histogram_default_buckets(void **state)
{
  struct kt_metrics *r = *state;
  static const char *const les[] = {"0.0001", "0.00025", "0.0005", "0.001",
      "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1",
      "2.5", "5", "10", "+Inf"};
  struct kt_series *s = kt_metric_series(
      kt_metrics_histogram(r, "t_seconds", "T", NULL, NULL, 0), NULL);
  kt_series_observe(s, 0.003);
  kt_series_observe(s, 7);
  kt_series_observe(s, 60);
  char name[64];
  for (size_t i = 0; i < sizeof les / sizeof les[0]; i++) {
    snprintf(name, sizeof name, "t_seconds_bucket{le=\"%s\"}", les[i]);
    double want = i < 5 ? 0 : i < 15 ? 1 : i < 16 ? 2 : 3;
    assert_true(scrape(r, name) == want);
  }
  assert_true(scrape(r, "t_seconds_sum") == (0.003 + 7) + 60);
  assert_true(scrape(r, "t_seconds_count") == 3);
}

static void test_histogram_bounds(void **state)
{
  struct kt_metrics *r = *state;
  static const double unsorted[] = {1, 0.5};
  static const double dup[] = {1, 1};
  static const double nan_b[] = {NAN};
  static const double with_inf[] = {1, INFINITY};
  assert_null(kt_metrics_histogram(r, "h1", "", NULL, unsorted, 2));
  assert_null(kt_metrics_histogram(r, "h2", "", NULL, dup, 2));
  assert_null(kt_metrics_histogram(r, "h3", "", NULL, nan_b, 1));
  struct kt_series *s = kt_metric_series(
      kt_metrics_histogram(r, "h4", "", NULL, with_inf, 2), NULL);
  kt_series_observe(s, 1);
  kt_series_observe(s, NAN); /* +Inf bucket; the sum becomes NaN */
  assert_render(r,
      "# HELP h4 \n# TYPE h4 histogram\n"
      "h4_bucket{le=\"1\"} 1\nh4_bucket{le=\"+Inf\"} 2\n"
      "h4_sum NaN\nh4_count 2\n");
}

static void test_escaping(void **state)
{
  struct kt_metrics *r = *state;
  struct kt_metric *m = kt_metrics_counter(r, "esc_total",
      "Help with \\ and\nnewline and \"quotes\"", V("path", NULL));
  kt_metric_inc(m, V("a\\b\"c\nd"));
  kt_metric_inc(m, V(NULL)); /* NULL value = "" */
  assert_render(r,
      "# HELP esc_total Help with \\\\ and\\nnewline and \"quotes\"\n"
      "# TYPE esc_total counter\n"
      "esc_total{path=\"a\\\\b\\\"c\\nd\"} 1\n"
      "esc_total{path=\"\"} 1\n");
  assert_true(scrape(r, "esc_total{path=\"a\\\\b\\\"c\\nd\"}") == 1);
}

static void test_number_format(void **state)
{
  struct kt_metrics *r = *state;
  struct kt_metric *g = kt_metrics_gauge(r, "n", "", V("k", NULL));
  kt_series_set(kt_metric_series(g, V("int")), 42);
  kt_series_set(kt_metric_series(g, V("frac")), 0.25);
  kt_series_set(kt_metric_series(g, V("neg")), -3);
  kt_series_set(kt_metric_series(g, V("big")), 1e20);
  kt_series_set(kt_metric_series(g, V("tiny")), 1e-7);
  kt_series_set(kt_metric_series(g, V("inexact")), 0.1 + 0.2);
  kt_series_set(kt_metric_series(g, V("inf")), -INFINITY);
  kt_series_set(kt_metric_series(g, V("negzero")), -0.0);
  kt_series_set(kt_metric_series(g, V("large")), 123456789012345.0);
  assert_render(r,
      "# HELP n \n# TYPE n gauge\n"
      "n{k=\"int\"} 42\nn{k=\"frac\"} 0.25\nn{k=\"neg\"} -3\n"
      "n{k=\"big\"} 1e+20\nn{k=\"tiny\"} 1e-07\n"
      "n{k=\"inexact\"} 0.30000000000000004\nn{k=\"inf\"} -Inf\n"
      "n{k=\"negzero\"} 0\nn{k=\"large\"} 123456789012345\n");
  assert_true(scrape(r, "n{k=\"inexact\"}") == 0.1 + 0.2);
}

static void test_idempotent_registration(void **state)
{
  struct kt_metrics *r = *state;
  struct kt_metric *a = kt_metrics_counter(r, "x_total", "X", V("l", NULL));
  struct kt_metric *b = kt_metrics_counter(r, "x_total", "other help",
                                           V("l", NULL));
  assert_non_null(a);
  assert_ptr_equal(a, b);
  assert_ptr_equal(kt_metric_series(a, V("v")), kt_metric_series(b, V("v")));
  static const double bd[] = {1, 2};
  struct kt_metric *h = kt_metrics_histogram(r, "h", "", NULL, bd, 2);
  assert_ptr_equal(h, kt_metrics_histogram(r, "h", "", NULL, bd, 2));
  struct kt_metric *d = kt_metrics_histogram(r, "d", "", NULL, NULL, 0);
  assert_ptr_equal(d, kt_metrics_histogram(r, "d", "", NULL, NULL, 0));
  /* Registered once, rendered once, first help wins. */
  char *text = kt_metrics_render(r, NULL);
  assert_non_null(strstr(text, "# HELP x_total X\n"));
  assert_null(strstr(strstr(text, "x_total") + 1, "# HELP x_total"));
  free(text);
  assert_ptr_equal(kt_metrics_default(), kt_metrics_default());
  assert_non_null(kt_metrics_default());
}

static void test_definition_clash(void **state)
{
  struct kt_metrics *r = *state;
  static const double b1[] = {1, 2}, b2[] = {1, 3};
  assert_non_null(kt_metrics_counter(r, "c_total", "", V("a", NULL)));
  assert_null(kt_metrics_gauge(r, "c_total", "", V("a", NULL)));
  assert_null(kt_metrics_histogram(r, "c_total", "", V("a", NULL), NULL, 0));
  assert_null(kt_metrics_counter(r, "c_total", "", V("b", NULL)));
  assert_null(kt_metrics_counter(r, "c_total", "", V("a", "b", NULL)));
  assert_null(kt_metrics_counter(r, "c_total", "", NULL));
  assert_non_null(kt_metrics_histogram(r, "h", "", NULL, b1, 2));
  assert_null(kt_metrics_histogram(r, "h", "", NULL, b2, 2));
  assert_null(kt_metrics_histogram(r, "h", "", NULL, NULL, 0));
  /* A failed registration leaves NULLs that every call tolerates. */
  struct kt_metric *none = kt_metrics_gauge(r, "c_total", "", NULL);
  assert_null(kt_metric_series(none, NULL));
  kt_metric_inc(none, NULL);
  kt_series_add(NULL, 1);
  kt_series_set(NULL, 1);
  kt_series_observe(NULL, 1);
  assert_true(kt_series_value(NULL) == 0);
}

static void test_name_validation(void **state)
{
  struct kt_metrics *r = *state;
  assert_null(kt_metrics_counter(r, "", "", NULL));
  assert_null(kt_metrics_counter(r, NULL, "", NULL));
  assert_null(kt_metrics_counter(r, "1abc", "", NULL));
  assert_null(kt_metrics_counter(r, "a-b", "", NULL));
  assert_null(kt_metrics_counter(r, "a", "", V("bad-label", NULL)));
  assert_null(kt_metrics_counter(r, "a", "", V("__reserved", NULL)));
  assert_null(kt_metrics_counter(r, "a", "", V("x:y", NULL)));
  assert_null(kt_metrics_counter(r, "a", "", V("dup", "dup", NULL)));
  assert_null(kt_metrics_histogram(r, "a", "", V("le", NULL), NULL, 0));
  assert_null(kt_metrics_counter(r, "a", "", V("l1", "l2", "l3", "l4", "l5",
      "l6", "l7", "l8", "l9", NULL)));
  assert_null(kt_metrics_counter(NULL, "a", "", NULL));
  struct kt_metric *m = kt_metrics_counter(r, "ns:sub_total", NULL,
      V("l1", "l2", "l3", "l4", "l5", "l6", "l7", "l8", NULL));
  assert_non_null(m);
  assert_non_null(kt_metrics_gauge(r, "le", "", V("le", "camelCase", NULL)));
  kt_metric_inc(m, V("1", "2", "3", "4", "5", "6", "7", "8"));
  assert_true(scrape(r, "ns:sub_total{l1=\"1\",l2=\"2\",l3=\"3\",l4=\"4\","
                        "l5=\"5\",l6=\"6\",l7=\"7\",l8=\"8\"}") == 1);
}

static void test_series_overflow(void **state)
{
  struct kt_metrics *r = *state;
  struct kt_metric *m = kt_metrics_counter(r, "u_total", "Unbounded",
                                           V("id", "kind", NULL));
  char id[16];
  struct kt_series *first = NULL;
  for (int i = 0; i < KT_METRICS_MAX_SERIES; i++) {
    snprintf(id, sizeof id, "%d", i);
    struct kt_series *s = kt_metric_series(m, V(id, "k"));
    assert_non_null(s);
    first = first ? first : s;
    kt_series_add(s, 1);
  }
  struct kt_series *o1 = kt_metric_series(m, V("new1", "k"));
  struct kt_series *o2 = kt_metric_series(m, V("new2", "k"));
  assert_non_null(o1);
  assert_ptr_equal(o1, o2);
  assert_ptr_not_equal(o1, first);
  kt_series_add(o1, 1);
  kt_metric_inc(m, V("new3", "k"));
  /* Known tuples still find their own series. */
  assert_ptr_equal(kt_metric_series(m, V("0", "k")), first);
  assert_true(scrape(r, "u_total{id=\"0\",kind=\"k\"}") == 1);
  assert_true(scrape(r, "u_total{id=\"999\",kind=\"k\"}") == 1);
  assert_true(scrape(r, "u_total{id=\"_overflow\",kind=\"_overflow\"}") == 2);
  assert_true(scrape(r, "kt_metrics_series_overflow_total") == 3);
  char *text = kt_metrics_render(r, NULL);
  assert_null(strstr(text, "new1"));
  /* The overflow series comes last among u_total's lines. */
  const char *ov = strstr(text, "u_total{id=\"_overflow\"");
  assert_non_null(strstr(text, "u_total{id=\"999\""));
  assert_true(strstr(text, "u_total{id=\"999\"") < ov);
  free(text);
}

struct worker {
  struct kt_metric *c, *h;
  pthread_barrier_t *go;
};

#define THREADS 4
#define ADDS 100000

static void *work(void *arg)
{
  struct worker *w = arg;
  pthread_barrier_wait(w->go);
  struct kt_series *s = kt_metric_series(w->c, V("shared"));
  struct kt_series *hs = kt_metric_series(w->h, NULL);
  for (int i = 0; i < ADDS; i++) {
    kt_series_add(s, 1);
    kt_series_observe(hs, (i % 4) * 0.5);
  }
  return NULL;
}

static void test_concurrent_adds(void **state)
{
  struct kt_metrics *r = *state;
  static const double b[] = {0.5, 1};
  pthread_barrier_t go;
  pthread_barrier_init(&go, NULL, THREADS);
  struct worker w = {kt_metrics_counter(r, "par_total", "", V("k", NULL)),
                     kt_metrics_histogram(r, "par_h", "", NULL, b, 2), &go};
  pthread_t t[THREADS];
  for (int i = 0; i < THREADS; i++)
    assert_int_equal(pthread_create(&t[i], NULL, work, &w), 0);
  for (int i = 0; i < THREADS; i++)
    pthread_join(t[i], NULL);
  pthread_barrier_destroy(&go);
  assert_true(kt_series_value(kt_metric_series(w.c, V("shared"))) ==
              THREADS * ADDS);
  assert_true(scrape(r, "par_total{k=\"shared\"}") == THREADS * ADDS);
  assert_true(scrape(r, "par_h_bucket{le=\"0.5\"}") == THREADS * ADDS / 2);
  assert_true(scrape(r, "par_h_bucket{le=\"1\"}") == THREADS * ADDS * 3 / 4);
  assert_true(scrape(r, "par_h_count") == THREADS * ADDS);
  assert_true(scrape(r, "par_h_sum") == THREADS * ADDS / 4 * 3.0);
}

static void test_scrape_helper(void **state)
{
  (void)state;
  const char *text =
      "# HELP audit_webhook_rejected_total x{reason=\"bad_json\"} 7\n"
      "# TYPE audit_webhook_rejected_total counter\n"
      "audit_webhook_rejected_total{reason=\"bad_json2\"} 5\n"
      "audit_webhook_rejected_total{reason=\"bad_json\"} 3\n"
      "up_total 1.5\n"
      "up_total_more 9\n"
      "h_bucket{le=\"+Inf\"} +Inf\n"
      "bad 12abc\n"
      "last 4";
  double v = 0;
  assert_int_equal(kt_metrics_scrape_value(text,
      "audit_webhook_rejected_total{reason=\"bad_json\"}", &v), 0);
  assert_true(v == 3);
  assert_int_equal(kt_metrics_scrape_value(text, "up_total", &v), 0);
  assert_true(v == 1.5);
  assert_int_equal(kt_metrics_scrape_value(text, "h_bucket{le=\"+Inf\"}", &v),
                   0);
  assert_true(isinf(v) && v > 0);
  assert_int_equal(kt_metrics_scrape_value(text, "last", &v), 0);
  assert_true(v == 4);
  assert_int_equal(kt_metrics_scrape_value(text, "up", &v), -ENOENT);
  assert_int_equal(kt_metrics_scrape_value(text,
      "audit_webhook_rejected_total{reason=\"bad\"}", &v), -ENOENT);
  assert_int_equal(kt_metrics_scrape_value(text, "x{reason=\"bad_json\"}", &v),
                   -ENOENT);
  assert_int_equal(kt_metrics_scrape_value(text, "bad", &v), -EINVAL);
  assert_int_equal(kt_metrics_scrape_value("", "up_total", &v), -ENOENT);
  assert_int_equal(kt_metrics_scrape_value(NULL, "up_total", &v), -EINVAL);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
      T(test_empty_registry),
      T(test_counter_with_labels),
      T(test_unlabeled_starts_at_zero),
      T(test_counter_ignores_negative_and_set),
      T(test_gauge_set_last_wins),
      T(test_histogram_cumulative),
      T(test_histogram_default_buckets),
      T(test_histogram_bounds),
      T(test_escaping),
      T(test_number_format),
      T(test_idempotent_registration),
      T(test_definition_clash),
      T(test_name_validation),
      T(test_series_overflow),
      T(test_concurrent_adds),
      T(test_scrape_helper),
#undef T
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
