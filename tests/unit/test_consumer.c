/* The consumer's workers build the next event's object key ahead of
 * processing it: a key must only ever serve the event it was built for,
 * also when the queue ran dry in between and a later event's item took
 * the freed memory of the one the key was built for. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit/kt_pipeline.h"

static cJSON *event(const char *verb, const char *name, int n)
{
  char text[2048];
  snprintf(text, sizeof text,
      "{\"kind\":\"Event\",\"apiVersion\":\"audit.k8s.io/v1\","
      "\"level\":\"RequestResponse\",\"auditID\":\"id-%d\","
      "\"stage\":\"ResponseComplete\","
      "\"requestURI\":\"/api/v1/namespaces/default/configmaps/%s\","
      "\"verb\":\"%s\",\"user\":{\"username\":\"alice\"},"
      "\"objectRef\":{\"resource\":\"configmaps\",\"namespace\":\"default\","
      "\"name\":\"%s\",\"apiVersion\":\"v1\"},"
      "\"responseStatus\":{\"code\":200},"
      "\"responseObject\":{\"kind\":\"ConfigMap\",\"apiVersion\":\"v1\","
      "\"metadata\":{\"name\":\"%s\",\"namespace\":\"default\","
      "\"resourceVersion\":\"%d\"},\"data\":{\"k\":\"%s\"}},"
      "\"requestReceivedTimestamp\":\"2026-01-01T00:00:0%d.000000Z\","
      "\"stageTimestamp\":\"2026-01-01T00:00:0%d.001000Z\"}",
      n, name, verb, name, name, 100 + n, name, n, n);
  cJSON *e = cJSON_Parse(text);
  assert_non_null(e);
  return e;
}

static void submit(struct kt_consumer *c, cJSON *items)
{
  struct kt_submit_result res;
  int n = cJSON_GetArraySize(items);
  assert_int_equal(kt_consumer_submit(c, "keys", "", items, 0, 1, &res), 0);
  assert_int_equal(res.accepted, n);
  cJSON_Delete(items);
  kt_consumer_wait_idle(c);
}

/* The span of the update of name: its logs. */
static int has_log(struct kt_store *st, const char *name, const char *type)
{
  struct kt_store_query q = {.cluster = "keys", .resource = "configmaps",
                             .name = name, .service = "audit"};
  struct kt_trace_ref *refs;
  size_t n;
  int found = 0;
  assert_int_equal(kt_store_find(st, &q, &refs, &n), 0);
  assert_int_equal(n, 1);
  struct kt_span_vec v = {0};
  assert_int_equal(kt_store_get_trace(st, refs[0].trace_id, &v), 0);
  for (size_t i = 0; i < v.n; i++)
    for (size_t j = 0; strcmp(v.v[i]->service, "audit") == 0 && j < v.v[i]->nlogs; j++)
      found |= strcmp(v.v[i]->logs[j].type, type) == 0;
  kt_span_vec_free(&v);
  free(refs);
  return found;
}

/* A batch of two (the worker builds the second one's key while on the
 * first), the queue empty, then an update of a third object alone: its
 * item is allocated where the second's was freed. Its diff must look for
 * its own previous version (none), not the second object's. */
static void test_key_built_ahead_serves_its_event(void **state)
{
  char dir[] = "/tmp/kt-consumer-XXXXXX", path[128], cmd[160];
  assert_non_null(mkdtemp(dir));
  snprintf(path, sizeof path, "%s/kelemetry.db", dir);
  struct kt_pipeline_opts o = {.db_path = path,
                               .consumer = {.workers = 1, .queue_limit = 100}};
  struct kt_pipeline p;
  assert_int_equal(kt_pipeline_open(&o, &p), 0);
  for (int round = 0; round < 3; round++) {
    char x[16], y[16], z[16];
    snprintf(x, sizeof x, "x%d", round);
    snprintf(y, sizeof y, "y%d", round);
    snprintf(z, sizeof z, "z%d", round);
    cJSON *two = cJSON_CreateArray();
    cJSON_AddItemToArray(two, event("create", x, 1));
    cJSON_AddItemToArray(two, event("create", y, 2));
    submit(p.consumer, two);
    cJSON *one = cJSON_CreateArray();
    cJSON_AddItemToArray(one, event("update", z, 3));
    submit(p.consumer, one);
    assert_int_equal(kt_store_flush(p.store), 0);
    assert_true(has_log(p.store, z, "kelemetryError")); /* no previous version */
    assert_false(has_log(p.store, z, "audit/objectDiff"));
  }
  kt_pipeline_close(&p);
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  assert_int_equal(system(cmd), 0);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_key_built_ahead_serves_its_event),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
