/* The core pipeline end to end, in process: the bundled demo scenario
 * (examples/demo-deployment.jsonl, a Deployment's whole life at
 * RequestResponse level) is replayed through the consumer, aggregator and
 * decorator into a real SQLite store, and the traces are read back the way
 * the frontend reads them. These are issue 2's acceptance checks. */
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
#include "audit/kt_replay.h"

struct pipe {
  char dir[256];
  struct kt_pipeline p;
  struct kt_store *store;        /* = p.store */
  struct kt_consumer *consumer;  /* = p.consumer */
  struct kt_replay_stats st;
};

static struct pipe P;

static int open_pipeline(struct pipe *p)
{
  char path[512];
  snprintf(path, sizeof path, "%s/kelemetry.db", p->dir);
  struct kt_pipeline_opts o = {
      .db_path = path,
      .agg = {.resource_tag_mapping = "pods#nodes:spec.nodeName",
              .resource_object_tag = 1, .resource_event_tag = 1,
              .owner_linker = 1, .annotation_linker = 1},
      .filter = {"events,events.k8s.io/events,coordination.k8s.io/leases",
                 "/leader-election,local-path-provisioner/", NULL, NULL, NULL},
      .consumer = {.workers = 2, .queue_limit = 1000}};
  assert_int_equal(kt_pipeline_open(&o, &p->p), 0);
  p->store = p->p.store;
  p->consumer = p->p.consumer;
  return 0;
}

static void close_pipeline(struct pipe *p)
{
  kt_pipeline_close(&p->p);
}

static int setup(void **state)
{
  const char *src = getenv("KT_SRC");
  char demo[512];
  snprintf(P.dir, sizeof P.dir, "/tmp/kt-pipeline-XXXXXX");
  assert_non_null(mkdtemp(P.dir));
  open_pipeline(&P);
  snprintf(demo, sizeof demo, "%s/examples/demo-deployment.jsonl",
           src ? src : ".");
  assert_int_equal(kt_replay_file(P.consumer, demo, "tracetest", NULL, &P.st), 0);
  kt_consumer_wait_idle(P.consumer);
  kt_store_flush(P.store);
  return 0;
}

static int teardown(void **state)
{
  char cmd[600];
  close_pipeline(&P);
  snprintf(cmd, sizeof cmd, "rm -rf %s", P.dir);
  return system(cmd);
}

/* Object traces of one object: the root spans. */
static size_t find_object(const char *resource, const char *name,
                          struct kt_trace_ref **refs)
{
  struct kt_store_query q = {0};
  size_t n = 0;
  q.cluster = "tracetest";
  q.resource = resource;
  q.namespace = "default";
  q.name = name;
  q.service = "object";
  q.limit = 100;
  assert_int_equal(kt_store_find(P.store, &q, refs, &n), 0);
  return n;
}

static void load_trace(const struct kt_trace_ref *r, struct kt_span_vec *v)
{
  assert_int_equal(kt_store_get_trace(P.store, r->trace_id, v), 0);
}

static const struct kt_span *span_by_op(const struct kt_span_vec *v,
                                        const char *op)
{
  for (size_t i = 0; i < v->n; i++)
    if (strcmp(v->v[i]->operation, op) == 0)
      return v->v[i];
  return NULL;
}

static const struct kt_log *log_of(const struct kt_span *s, const char *type,
                                   const char *needle)
{
  for (size_t i = 0; s && i < s->nlogs; i++)
    if (strcmp(s->logs[i].type, type) == 0 &&
        (!needle || strstr(s->logs[i].msg, needle)))
      return &s->logs[i];
  return NULL;
}

static void test_replay_counts(void **state)
{
  assert_int_equal(P.st.events, 73);
  assert_int_equal(P.st.rejected, 0);
  struct kt_consumer_stats cs;
  kt_consumer_stats(P.consumer, &cs);
  assert_true(cs.traced > 50);
  assert_true(cs.filtered > 0); /* gets, lists, leases, RequestReceived */
  assert_int_equal(cs.failed, 0);
}

/* One object span per (object, window): the demo lasts minutes. */
static void test_one_trace_per_window(void **state)
{
  struct kt_trace_ref *refs;
  assert_int_equal(find_object("deployments", "demo", &refs), 1);
  struct kt_span_vec v = {0};
  load_trace(&refs[0], &v);
  size_t roots = 0;
  for (size_t i = 0; i < v.n; i++)
    if (v.v[i]->parent_id == 0) {
      roots++;
      assert_string_equal(v.v[i]->service, "object");
      assert_string_equal(kt_span_tag(v.v[i], "name"), "demo");
      assert_int_equal(v.v[i]->end_us - v.v[i]->start_us, 30 * 60 * 1000000LL);
    }
  assert_int_equal(roots, 1);
  kt_span_vec_free(&v);
  free(refs);
}

static size_t count_links(const struct kt_span_vec *v, const char *role,
                          const char *linked_resource)
{
  size_t n = 0;
  for (size_t i = 0; i < v->n; i++) {
    const struct kt_span *s = v->v[i];
    if (strcmp(s->service, "link") == 0 &&
        strcmp(kt_span_tag(s, "linkRole"), role) == 0 &&
        strcmp(kt_span_tag(s, "linkedResource"), linked_resource) == 0 &&
        strcmp(kt_span_tag(s, "linkClass"), "children") == 0)
      n++;
  }
  return n;
}

/* Deployment > 2 ReplicaSets > Pods, by owner links both ways. */
static void test_owner_links(void **state)
{
  struct kt_trace_ref *refs;
  struct kt_span_vec v = {0};
  assert_int_equal(find_object("deployments", "demo", &refs), 1);
  load_trace(&refs[0], &v);
  assert_int_equal(count_links(&v, "child", "replicasets"), 2);
  char rs[2][128];
  size_t k = 0;
  for (size_t i = 0; i < v.n && k < 2; i++)
    if (strcmp(v.v[i]->service, "link") == 0)
      snprintf(rs[k++], sizeof rs[0], "%s", kt_span_tag(v.v[i], "linkedName"));
  kt_span_vec_free(&v);
  free(refs);
  size_t pods = 0;
  for (size_t j = 0; j < 2; j++) {
    assert_int_equal(find_object("replicasets", rs[j], &refs), 1);
    load_trace(&refs[0], &v);
    assert_int_equal(count_links(&v, "parent", "deployments"), 1);
    pods += count_links(&v, "child", "pods");
    kt_span_vec_free(&v);
    free(refs);
  }
  assert_true(pods >= 4);
}

static void test_delete_snapshot(void **state)
{
  struct kt_trace_ref *refs;
  struct kt_span_vec v = {0};
  find_object("deployments", "demo", &refs);
  load_trace(&refs[0], &v);
  const struct kt_span *del = span_by_op(&v, "kubernetes-admin delete");
  assert_non_null(del);
  const struct kt_log *snap = log_of(del, "audit/objectSnapshot", NULL);
  assert_non_null(snap);
  cJSON *obj = cJSON_Parse(snap->msg);
  cJSON *meta = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
  assert_string_equal(cJSON_GetObjectItemCaseSensitive(meta, "name")->valuestring,
                      "demo");
  cJSON_Delete(obj);
  kt_span_vec_free(&v);
  free(refs);
}

static void test_status_diff(void **state)
{
  struct kt_trace_ref *refs;
  struct kt_span_vec v = {0};
  find_object("deployments", "demo", &refs);
  load_trace(&refs[0], &v);
  int found = 0;
  for (size_t i = 0; i < v.n; i++)
    if (strcmp(v.v[i]->operation, "system:serviceaccount:kube-system:"
                                  "deployment-controller update status") == 0 &&
        log_of(v.v[i], "audit/objectDiff", "status.observedGeneration 1 -> 2"))
      found = 1;
  assert_true(found);
  /* The user's scale shows the replicas it changed. */
  const struct kt_span *scale = span_by_op(&v, "kubernetes-admin patch scale");
  assert_non_null(log_of(scale, "audit/objectDiff", "spec.replicas 2 -> 4"));
  kt_span_vec_free(&v);
  free(refs);
}

static void test_no_managed_fields(void **state)
{
  const char *objs[][2] = {{"deployments", "demo"}};
  struct kt_trace_ref *refs;
  struct kt_span_vec v = {0};
  find_object(objs[0][0], objs[0][1], &refs);
  load_trace(&refs[0], &v);
  size_t diffs = 0;
  for (size_t i = 0; i < v.n; i++)
    for (size_t j = 0; j < v.v[i]->nlogs; j++) {
      assert_null(strstr(v.v[i]->logs[j].msg, "managedFields"));
      diffs += strcmp(v.v[i]->logs[j].type, "audit/objectDiff") == 0;
    }
  assert_true(diffs >= 4);
  kt_span_vec_free(&v);
  free(refs);
}

/* A pod created with generateName is traced under its generated name. */
static void test_generate_name(void **state)
{
  struct kt_store_query q = {0};
  struct kt_trace_ref *refs;
  size_t n;
  q.cluster = "tracetest";
  q.resource = "pods";
  q.service = "object";
  q.limit = 100;
  assert_int_equal(kt_store_find(P.store, &q, &refs, &n), 0);
  assert_true(n >= 4);
  struct kt_span_vec v = {0};
  load_trace(&refs[0], &v);
  const char *name = kt_span_tag(v.v[0], "name");
  assert_true(strncmp(name, "demo-", 5) == 0 && strlen(name) > 10);
  kt_span_vec_free(&v);
  free(refs);
}

/* A restart inside the window reuses the object span (span cache persisted
 * in the store), so replaying more events adds to the same trace. */
static void test_restart_reuses_span(void **state)
{
  struct kt_trace_ref *before, *after;
  assert_int_equal(find_object("deployments", "demo", &before), 1);
  close_pipeline(&P);
  open_pipeline(&P);
  char demo[512];
  const char *src = getenv("KT_SRC");
  struct kt_replay_stats st = {0};
  snprintf(demo, sizeof demo, "%s/examples/demo-deployment.jsonl", src ? src : ".");
  assert_int_equal(kt_replay_file(P.consumer, demo, "tracetest", NULL, &st), 0);
  kt_consumer_wait_idle(P.consumer);
  kt_store_flush(P.store);
  assert_int_equal(find_object("deployments", "demo", &after), 1);
  assert_memory_equal(before[0].trace_id, after[0].trace_id, 16);
  free(before);
  free(after);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_replay_counts),
      cmocka_unit_test(test_one_trace_per_window),
      cmocka_unit_test(test_owner_links),
      cmocka_unit_test(test_delete_snapshot),
      cmocka_unit_test(test_status_diff),
      cmocka_unit_test(test_no_managed_fields),
      cmocka_unit_test(test_generate_name),
      cmocka_unit_test(test_restart_reuses_span),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
