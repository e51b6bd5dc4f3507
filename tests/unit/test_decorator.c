/* Diffs, snapshots and redaction through the whole pipeline, on hand-made
 * events: what a user relies on when reading a request's log lines, and
 * what must never reach the store (a Secret's values). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit/kt_pipeline.h"
#include "diff/kt_decorator.h"
#include "core/kt_time.h"

static struct {
  char dir[64];
  struct kt_pipeline p;
  struct kt_store *store;
  struct kt_consumer *c;
} P;

static int setup(void **state)
{
  char path[128];
  snprintf(P.dir, sizeof P.dir, "/tmp/kt-dec-XXXXXX");
  assert_non_null(mkdtemp(P.dir));
  snprintf(path, sizeof path, "%s/db", P.dir);
  struct kt_pipeline_opts o = {
      .db_path = path,
      .agg = {.owner_linker = 1, .annotation_linker = 1,
              .resource_tag_mapping = "pods#nodes:spec.nodeName",
              .resource_event_tag = 1, .resource_object_tag = 1},
      .filter = {"events", "", NULL, NULL, NULL},
      .redact_pattern = "^/v1/configmaps/secret-ns/",
      .consumer = {.workers = 2, .queue_limit = 100}};
  assert_int_equal(kt_pipeline_open(&o, &P.p), 0);
  P.store = P.p.store;
  P.c = P.p.consumer;
  return 0;
}

static int teardown(void **state)
{
  char cmd[128];
  kt_pipeline_close(&P.p);
  snprintf(cmd, sizeof cmd, "rm -rf %s", P.dir);
  return system(cmd);
}

/* One audit event; body is the responseObject JSON (or NULL). */
static void send(const char *verb, const char *resource, const char *group,
                 const char *ns, const char *name, const char *sub,
                 const char *rv, int code, const char *body, int sec)
{
  char ev[16384], ref[512];
  snprintf(ref, sizeof ref,
           "{\"resource\":\"%s\",\"namespace\":\"%s\",\"name\":\"%s\","
           "\"apiGroup\":\"%s\",\"apiVersion\":\"v1\"%s%s%s%s%s%s}",
           resource, ns, name, group, sub ? ",\"subresource\":\"" : "",
           sub ? sub : "", sub ? "\"" : "", rv ? ",\"resourceVersion\":\"" : "",
           rv ? rv : "", rv ? "\"" : "");
  snprintf(ev, sizeof ev,
           "{\"kind\":\"Event\",\"apiVersion\":\"audit.k8s.io/v1\",\"auditID\":"
           "\"a-%s-%d\",\"stage\":\"ResponseComplete\",\"verb\":\"%s\",\"user\":"
           "{\"username\":\"alice\"},\"sourceIPs\":[\"10.0.0.1\",\"10.0.0.2\"],"
           "\"objectRef\":%s,\"responseStatus\":{\"metadata\":{},\"code\":%d%s},"
           "%s%s%s\"requestReceivedTimestamp\":\"2026-01-01T00:00:%02d.000000Z\","
           "\"stageTimestamp\":\"2026-01-01T00:00:%02d.001000Z\"}",
           name, sec, verb, ref, code,
           code >= 300 ? ",\"status\":\"Failure\",\"reason\":\"Conflict\","
                         "\"message\":\"the object has been modified\","
                         "\"details\":{\"causes\":[{\"reason\":\"FieldValueInvalid\","
                         "\"message\":\"spec.x is bad\"}]}" : "",
           body ? "\"responseObject\":" : "", body ? body : "", body ? "," : "",
           sec, sec);
  cJSON *item = cJSON_Parse(ev);
  assert_non_null(item);
  struct kt_submit_result r;
  assert_int_equal(kt_consumer_submit(P.c, "c1", "10.1.1.1", item, 1, 1, &r), 0);
  assert_int_equal(r.accepted, 1);
}

static void settle(void)
{
  kt_consumer_wait_idle(P.c);
  kt_store_flush(P.store);
}

/* All spans of one object's traces, concatenated. */
static void load(const char *resource, const char *name, struct kt_span_vec *v)
{
  struct kt_store_query q = {0};
  struct kt_trace_ref *refs;
  size_t n;
  q.cluster = "c1";
  q.resource = resource;
  q.name = name;
  q.service = "object";
  assert_int_equal(kt_store_find(P.store, &q, &refs, &n), 0);
  assert_true(n >= 1);
  for (size_t i = 0; i < n; i++)
    kt_store_get_trace(P.store, refs[i].trace_id, v);
  free(refs);
}

static const struct kt_span *audit_op(const struct kt_span_vec *v, const char *op)
{
  for (size_t i = 0; i < v->n; i++)
    if (!strcmp(v->v[i]->service, "audit") && !strcmp(v->v[i]->operation, op))
      return v->v[i];
  return NULL;
}

static const char *log_msg(const struct kt_span *s, const char *type)
{
  for (size_t i = 0; s && i < s->nlogs; i++)
    if (!strcmp(s->logs[i].type, type))
      return s->logs[i].msg;
  return NULL;
}

#define SECRET(rv, value) \
  "{\"kind\":\"Secret\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"db\"," \
  "\"namespace\":\"default\",\"resourceVersion\":\"" rv "\",\"annotations\":{" \
  "\"kubectl.kubernetes.io/last-applied-configuration\":\"{\\\"data\\\":{\\\"pw\\\":\\\"" value "\\\"}}\"}}," \
  "\"data\":{\"pw\":\"" value "\"},\"type\":\"Opaque\"}"

static void test_secret_values_never_stored(void **state)
{
  send("create", "secrets", "", "default", "db", NULL, NULL, 201,
       SECRET("10", "aHVudGVyMg=="), 1);
  send("update", "secrets", "", "default", "db", NULL, "10", 200,
       SECRET("11", "c3dvcmRmaXNo"), 2);
  send("delete", "secrets", "", "default", "db", NULL, NULL, 200,
       "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Success\"}", 3);
  settle();
  struct kt_span_vec v = {0};
  load("secrets", "db", &v);
  assert_true(v.n >= 4);
  for (size_t i = 0; i < v.n; i++) {
    for (size_t j = 0; j < v.v[i]->nlogs; j++) {
      assert_null(strstr(v.v[i]->logs[j].msg, "aHVudGVyMg"));
      assert_null(strstr(v.v[i]->logs[j].msg, "c3dvcmRmaXNo"));
    }
  }
  const char *snap = log_msg(audit_op(&v, "alice create"), "audit/objectSnapshot");
  assert_non_null(snap);
  assert_non_null(strstr(snap, "(redacted, 12 bytes)"));
  /* Still useful: the change of size is visible, and the deletion shows
   * the last known (redacted) object. */
  assert_non_null(log_msg(audit_op(&v, "alice delete"), "audit/objectSnapshot"));
  kt_span_vec_free(&v);
}

/* Sanitising twice (inbox, then consumer) keeps the first lengths; a real
 * value that only starts like the marker is still redacted. */
static void test_sanitize_idempotent_not_fooled(void **state)
{
  cJSON *b = cJSON_Parse("{\"kind\":\"Secret\",\"metadata\":{\"name\":\"s\"},"
                         "\"data\":{\"a\":\"aHVudGVyMg==\","
                         "\"b\":\"(redacted, 3 bytes)hunter2\"}}");
  kt_decorator_sanitize(b, "", "secrets");
  kt_decorator_sanitize(b, "", "secrets");
  const cJSON *d = cJSON_GetObjectItem(b, "data");
  assert_string_equal(cJSON_GetObjectItem(d, "a")->valuestring, "(redacted, 12 bytes)");
  assert_string_equal(cJSON_GetObjectItem(d, "b")->valuestring, "(redacted, 26 bytes)");
  cJSON_Delete(b);
}

#define CM(rv, labels, value) \
  "{\"kind\":\"ConfigMap\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"cm\"," \
  "\"namespace\":\"default\",\"resourceVersion\":\"" rv "\"" labels "," \
  "\"managedFields\":[{\"manager\":\"kubectl\",\"operation\":\"Update\"}]}," \
  "\"data\":{\"k\":\"" value "\"}}"

static void test_diff_noop_and_failure(void **state)
{
  send("create", "configmaps", "", "default", "cm", NULL, NULL, 201, CM("20", "", "v1"), 5);
  send("update", "configmaps", "", "default", "cm", NULL, "20", 200, CM("21", "", "v2"), 6);
  send("update", "configmaps", "", "default", "cm", NULL, "21", 200, CM("21", "", "v2"), 7);
  send("update", "configmaps", "", "default", "cm", NULL, "21", 409, NULL, 8);
  settle();
  struct kt_span_vec v = {0};
  load("configmaps", "cm", &v);
  int diffs = 0, noop = 0, conflict = 0;
  for (size_t i = 0; i < v.n; i++) {
    const struct kt_span *s = v.v[i];
    const char *d = log_msg(s, "audit/objectDiff");
    if (d) {
      diffs++;
      assert_string_equal(d, "data.k \"v1\" -> \"v2\"\n"
                             "metadata.resourceVersion \"20\" -> \"21\"\n");
      assert_string_equal(kt_span_tag(s, "newResourceVersion"), "21");
    }
    const char *nv = log_msg(s, "realVerbose");
    noop += nv && !strcmp(nv, "No-op update");
    if (!strcmp(s->operation, "alice update (Conflict)")) {
      conflict = 1;
      assert_string_equal(log_msg(s, "realError"),
                          "Conflict: the object has been modified");
      assert_string_equal(kt_span_tag(s, "responseCode"), "409");
      assert_int_equal(s->nlogs, 2); /* the cause too */
    }
    for (size_t j = 0; j < s->nlogs; j++)
      assert_null(strstr(s->logs[j].msg, "managedFields"));
    if (!strcmp(s->service, "audit")) {
      assert_string_equal(kt_span_tag(s, "sourceIP"), "10.0.0.1");
      assert_string_equal(kt_span_tag(s, "proxy"), "[10.0.0.2]");
      assert_string_equal(kt_span_tag(s, "apiserver"), "10.1.1.1");
    }
  }
  assert_int_equal(diffs, 1);
  assert_int_equal(noop, 1);
  assert_true(conflict);
  kt_span_vec_free(&v);
}

static void test_redaction_label_and_pattern(void **state)
{
  const char *lab = ",\"labels\":{\"kelemetry.kubewharf.io/diff-redacted\":\"\"}";
  char a[1024], b[1024];
  snprintf(a, sizeof a, "{\"kind\":\"ConfigMap\",\"apiVersion\":\"v1\",\"metadata\":"
           "{\"name\":\"red\",\"namespace\":\"default\",\"resourceVersion\":\"30\"%s},"
           "\"data\":{\"k\":\"topsecret1\"}}", lab);
  snprintf(b, sizeof b, "{\"kind\":\"ConfigMap\",\"apiVersion\":\"v1\",\"metadata\":"
           "{\"name\":\"red\",\"namespace\":\"default\",\"resourceVersion\":\"31\"%s},"
           "\"data\":{\"k\":\"topsecret2\"}}", lab);
  send("create", "configmaps", "", "default", "red", NULL, NULL, 201, a, 10);
  send("update", "configmaps", "", "default", "red", NULL, "30", 200, b, 11);
  /* by --diff-controller-redact-pattern */
  send("create", "configmaps", "", "secret-ns", "x", NULL, NULL, 201,
       "{\"kind\":\"ConfigMap\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"x\","
       "\"namespace\":\"secret-ns\",\"resourceVersion\":\"40\"},\"data\":{\"k\":\"topsecret3\"}}", 12);
  settle();
  const char *objs[][2] = {{"configmaps", "red"}, {"configmaps", "x"}};
  for (int o = 0; o < 2; o++) {
    struct kt_span_vec v = {0};
    load(objs[o][0], objs[o][1], &v);
    int redacted = 0;
    for (size_t i = 0; i < v.n; i++)
      for (size_t j = 0; j < v.v[i]->nlogs; j++) {
        assert_null(strstr(v.v[i]->logs[j].msg, "topsecret"));
        redacted += !strcmp(v.v[i]->logs[j].msg,
                            "Sensitive object content has been redacted");
      }
    assert_true(redacted >= 1);
    kt_span_vec_free(&v);
  }
}

/* The parent-link annotation links across clusters; resource tags. */
static void test_annotation_link_and_tags(void **state)
{
  send("create", "pods", "", "default", "p1", NULL, NULL, 201,
       "{\"kind\":\"Pod\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"p1\","
       "\"namespace\":\"default\",\"resourceVersion\":\"50\",\"annotations\":{"
       "\"kelemetry.kubewharf.io/parent-link\":\"{\\\"cluster\\\":\\\"c2\\\","
       "\\\"group\\\":\\\"batch\\\",\\\"version\\\":\\\"v1\\\",\\\"resource\\\":"
       "\\\"jobs\\\",\\\"namespace\\\":\\\"ops\\\",\\\"name\\\":\\\"j\\\",\\\"uid\\\":\\\"u\\\"}\"}},"
       "\"spec\":{\"nodeName\":\"node-7\"}}", 20);
  settle();
  struct kt_span_vec v = {0};
  load("pods", "p1", &v);
  int links = 0;
  for (size_t i = 0; i < v.n; i++) {
    const struct kt_span *s = v.v[i];
    if (!strcmp(s->service, "link")) {
      links++;
      assert_string_equal(kt_span_tag(s, "linkedCluster"), "c2");
      assert_string_equal(kt_span_tag(s, "linkedResource"), "jobs");
      assert_string_equal(kt_span_tag(s, "linkRole"), "parent");
      assert_string_equal(kt_span_tag(s, "linkClass"), "");
    }
    if (!strcmp(s->service, "object") || !strcmp(s->service, "audit"))
      assert_string_equal(kt_span_tag(s, "nodes"), "node-7");
  }
  assert_int_equal(links, 1);
  kt_span_vec_free(&v);
}

static void test_retention(void **state)
{
  int64_t before = kt_store_count(P.store);
  assert_true(before > 0);
  /* Everything above is dated 2026-01-01: a cut-off of 2025 keeps it all,
   * one of 2027 deletes it all. */
  assert_int_equal(kt_store_retain(P.store, 1735689600LL * 1000000), 0);
  assert_int_equal(kt_store_count(P.store), before);
  assert_int_equal(kt_store_retain(P.store, 1798761600LL * 1000000), before);
  assert_int_equal(kt_store_count(P.store), 0);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_secret_values_never_stored),
      cmocka_unit_test(test_sanitize_idempotent_not_fooled),
      cmocka_unit_test(test_diff_noop_and_failure),
      cmocka_unit_test(test_redaction_label_and_pattern),
      cmocka_unit_test(test_annotation_link_and_tags),
      cmocka_unit_test(test_retention),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
