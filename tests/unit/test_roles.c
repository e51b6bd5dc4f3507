/* kt_roles: the flag sets of the production roles (informers, consumers,
 * frontend) and all-in-one run what a user expects, dependencies are
 * pulled in, and impossible combinations are refused with the flag named. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/kt_roles.h"

static struct kt_roles_flags all_in_one(void)
{
  return (struct kt_roles_flags){
      .webhook = 1, .producer = 1, .consumer = 1, .query = 1, .metrics = 1,
      .store_spans = 1, .mq = "local", .span_cache = "local",
      .diff_cache = "local", .trace_cache = "local", .store = "sqlite",
      .otlp_endpoint = ""};
}

static void test_all_in_one(void **state)
{
  struct kt_roles r;
  char err[256];
  struct kt_roles_flags f = all_in_one();
  assert_int_equal(kt_roles_resolve(&f, &r, err, sizeof err), 0);
  int want[] = {KT_C_WEBHOOK, KT_C_PRODUCER, KT_C_MQ, KT_C_CONSUMER,
                KT_C_AGGREGATOR, KT_C_SPAN_CACHE, KT_C_STORE, KT_C_QUERY,
                KT_C_TRACE_CACHE, KT_C_METRICS};
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
    assert_true(r.on[want[i]]);
  assert_false(r.on[KT_C_EVENT_INFORMER]);
  assert_false(r.on[KT_C_DIFF_CONTROLLER]);
  assert_false(r.on[KT_C_OTLP]);
  assert_string_equal(r.why[KT_C_AGGREGATOR], "needed by audit-consumer");
}

static void test_informers_role(void **state)
{
  struct kt_roles r;
  char err[256];
  struct kt_roles_flags f = all_in_one();
  f.webhook = f.consumer = f.query = 0;
  f.event_informer = f.diff_controller = 1;
  f.span_cache = f.diff_cache = "redis";
  f.store = "postgres";
  assert_int_equal(kt_roles_resolve(&f, &r, err, sizeof err), 0);
  assert_false(r.on[KT_C_WEBHOOK]);
  assert_false(r.on[KT_C_MQ]);
  assert_false(r.on[KT_C_QUERY]);
  assert_false(r.on[KT_C_TRACE_CACHE]);
  assert_true(r.on[KT_C_AGGREGATOR]);
  assert_string_equal(r.why[KT_C_AGGREGATOR], "needed by event-informer");
  assert_true(r.on[KT_C_DIFF_CACHE]);
  assert_true(r.on[KT_C_STORE]);
}

static void test_consumer_role_redis(void **state)
{
  struct kt_roles r;
  char err[256];
  struct kt_roles_flags f = all_in_one();
  f.query = 0;
  f.mq = "redis";
  f.diff_decorator = 1;
  f.diff_cache = "etcd";
  assert_int_equal(kt_roles_resolve(&f, &r, err, sizeof err), 0);
  assert_true(r.on[KT_C_DIFF_DECORATOR]);
  assert_true(r.on[KT_C_DIFF_CACHE]);
  assert_false(r.on[KT_C_TRACE_CACHE]);
  /* A webhook-only process (producer) needs no aggregator nor store. */
  f.consumer = 0;
  assert_int_equal(kt_roles_resolve(&f, &r, err, sizeof err), 0);
  assert_true(r.on[KT_C_PRODUCER]);
  assert_true(r.on[KT_C_MQ]);
  assert_false(r.on[KT_C_AGGREGATOR]);
  assert_false(r.on[KT_C_STORE]);
}

static void test_frontend_role(void **state)
{
  struct kt_roles r;
  char err[256];
  struct kt_roles_flags f = all_in_one();
  f.webhook = f.consumer = 0;
  assert_int_equal(kt_roles_resolve(&f, &r, err, sizeof err), 0);
  assert_true(r.on[KT_C_QUERY]);
  assert_true(r.on[KT_C_STORE]);
  assert_string_equal(r.why[KT_C_STORE], "needed by jaeger-query");
  assert_false(r.on[KT_C_AGGREGATOR]);
  assert_false(r.on[KT_C_SPAN_CACHE]);
}

static void test_refused(void **state)
{
  struct kt_roles r;
  char err[256];
  struct kt_roles_flags f = all_in_one();
  f.consumer = 0; /* webhook with the in-process queue and nobody reading */
  assert_int_equal(kt_roles_resolve(&f, &r, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "--audit-consumer-enable"));
  f = all_in_one();
  f.mq = "redis";
  f.producer = 0;
  assert_int_equal(kt_roles_resolve(&f, &r, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "--audit-producer-enable"));
  f = all_in_one();
  f.mq = "kafka";
  assert_int_equal(kt_roles_resolve(&f, &r, err, sizeof err), -EINVAL);
  f = all_in_one();
  f.store_spans = 0; /* spans neither stored nor exported */
  assert_int_equal(kt_roles_resolve(&f, &r, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "--tracer-otel-endpoint"));
  f.otlp_endpoint = "http://127.0.0.1:4318/v1/traces";
  assert_int_equal(kt_roles_resolve(&f, &r, err, sizeof err), 0);
  assert_true(r.on[KT_C_OTLP]);
}

static void test_print(void **state)
{
  struct kt_roles r;
  char err[256], *buf = NULL;
  size_t len = 0;
  struct kt_roles_flags f = all_in_one();
  assert_int_equal(kt_roles_resolve(&f, &r, err, sizeof err), 0);
  FILE *out = open_memstream(&buf, &len);
  kt_roles_print(&f, &r, out);
  fclose(out);
  assert_non_null(strstr(buf, "audit-webhook    yes"));
  assert_non_null(strstr(buf, "event-informer   no"));
  assert_non_null(strstr(buf, "span-store       yes  sqlite"));
  int lines = 0;
  for (char *p = buf; *p; p++)
    lines += *p == '\n';
  assert_int_equal(lines, KT_C_COUNT + 1);
  free(buf);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_all_in_one),
      cmocka_unit_test(test_informers_role),
      cmocka_unit_test(test_consumer_role_redis),
      cmocka_unit_test(test_frontend_role),
      cmocka_unit_test(test_refused),
      cmocka_unit_test(test_print),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
