/* Audit decoding on real recorded data (shared/data/real) and on each kind
 * of bad input: what the webhook and replay rely on. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit/kt_audit.h"
#include "audit/kt_filter.h"

static char *read_all(const char *name, size_t *len)
{
  char path[512];
  const char *dir = getenv("KT_DATA");
  snprintf(path, sizeof path, "%s/%s", dir ? dir : "../shared/data/real", name);
  FILE *f = fopen(path, "rb");
  assert_non_null(f);
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *b = malloc((size_t)n + 1);
  assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
  b[n] = 0;
  fclose(f);
  *len = (size_t)n;
  return b;
}

static enum kt_audit_err decode(const char *text, struct kt_audit_event *ev)
{
  cJSON *root, *items;
  int single;
  char err[256];
  enum kt_audit_err e = kt_audit_parse_doc(text, strlen(text), &root, &items,
                                           &single, err, sizeof err);
  if (e != KT_AUDIT_OK)
    return e;
  cJSON *item = single ? root : cJSON_DetachItemFromArray(items, 0);
  e = kt_audit_event_init(ev, item, "c1", err, sizeof err);
  kt_audit_doc_free(root, !single);
  return e;
}

/* Falco's re-serialised create: sorted keys, no kind, legacy group. */
static void test_falco_create(void **state)
{
  size_t len;
  char *text = read_all("falco-k8s_audit-create_deployment.json", &len);
  struct kt_audit_event ev;
  assert_int_equal(decode(text, &ev), KT_AUDIT_OK);
  assert_string_equal(ev.verb, "create");
  assert_string_equal(ev.resource, "deployments");
  assert_string_equal(ev.api_group, "extensions");
  assert_string_equal(kt_audit_name(&ev), "nginx-deployment");
  assert_int_equal(ev.code, 201);
  char key[256];
  kt_audit_object_key(&ev, key, sizeof key);
  assert_string_equal(key, "c1/extensions/deployments/default/nginx-deployment");
  kt_audit_event_free(&ev);
  free(text);
}

/* audit2rbac: old format (timestamp, no stageTimestamp), impersonation,
 * non-resource requests. Every line decodes; the filter drops them all
 * (list/get verbs, or no objectRef). */
static void test_audit2rbac_lines(void **state)
{
  size_t len;
  char *text = read_all("audit2rbac-demo.log", &len);
  struct kt_filter *f;
  struct kt_filter_opts fo = {"events", "", NULL, NULL, NULL};
  assert_int_equal(kt_filter_new(&fo, &f), 0);
  int lines = 0, impersonated = 0;
  for (char *save = NULL, *l = strtok_r(text, "\n", &save); l;
       l = strtok_r(NULL, "\n", &save)) {
    struct kt_audit_event ev;
    assert_int_equal(decode(l, &ev), KT_AUDIT_OK);
    assert_true(ev.received_us > 1500000000LL * 1000000);
    impersonated += ev.impersonated != NULL;
    assert_non_null(kt_filter_check(f, &ev));
    kt_audit_event_free(&ev);
    lines++;
  }
  assert_int_equal(lines, 37);
  assert_true(impersonated > 0);
  kt_filter_free(f);
  free(text);
}

static void test_bad_inputs(void **state)
{
  struct kt_audit_event ev;
  assert_int_equal(decode("{\"kind\":", &ev), KT_AUDIT_BAD_JSON);
  assert_int_equal(decode("[1,2]", &ev), KT_AUDIT_NOT_EVENT);
  assert_int_equal(decode("{\"kind\":\"Pod\",\"apiVersion\":\"v1\"}", &ev),
                   KT_AUDIT_NOT_EVENT);
  assert_int_equal(decode("{\"kind\":\"EventList\",\"apiVersion\":\"audit.k8s.io/v1\"}", &ev),
                   KT_AUDIT_NOT_EVENT);
  assert_int_equal(decode("{\"kind\":\"Event\",\"apiVersion\":\"audit.k8s.io/v1\","
                          "\"auditID\":\"a\",\"user\":{\"username\":\"u\"}}", &ev),
                   KT_AUDIT_MISSING_FIELD);
  assert_int_equal(decode("{\"kind\":\"Event\",\"auditID\":\"a\",\"verb\":\"get\","
                          "\"user\":{\"username\":\"u\"},\"stage\":\"ResponseComplete\","
                          "\"requestReceivedTimestamp\":\"nope\"}", &ev),
                   KT_AUDIT_BAD_TIMESTAMP);
  assert_int_equal(decode("{\"kind\":\"Event\",\"auditID\":\"a\",\"verb\":\"get\","
                          "\"user\":{},\"stage\":\"ResponseComplete\","
                          "\"requestReceivedTimestamp\":\"2021-09-27T08:36:44.014671Z\"}", &ev),
                   KT_AUDIT_MISSING_FIELD);
}

/* v1beta1 EventLists and generateName creates (name from responseObject). */
static void test_generate_name_v1beta1(void **state)
{
  const char *doc =
      "{\"kind\":\"EventList\",\"apiVersion\":\"audit.k8s.io/v1beta1\",\"items\":[{"
      "\"auditID\":\"x\",\"verb\":\"create\",\"stage\":\"ResponseComplete\","
      "\"user\":{\"username\":\"system:serviceaccount:kube-system:replicaset-controller\"},"
      "\"objectRef\":{\"resource\":\"pods\",\"namespace\":\"default\",\"apiVersion\":\"v1\"},"
      "\"responseStatus\":{\"metadata\":{},\"code\":201},"
      "\"responseObject\":{\"kind\":\"Pod\",\"apiVersion\":\"v1\",\"metadata\":{"
      "\"name\":\"demo-abc-x1y2z\",\"namespace\":\"default\"}},"
      "\"requestReceivedTimestamp\":\"2026-01-01T00:00:00.000001Z\","
      "\"stageTimestamp\":\"2026-01-01T00:00:00.002001Z\"}]}";
  struct kt_audit_event ev;
  assert_int_equal(decode(doc, &ev), KT_AUDIT_OK);
  assert_string_equal(kt_audit_name(&ev), "demo-abc-x1y2z");
  assert_int_equal(ev.stage_us - ev.received_us, 2000);
  kt_audit_event_free(&ev);
}

static void test_filter_reasons(void **state)
{
  struct kt_filter *f;
  struct kt_filter_opts fo = {"events,coordination.k8s.io/leases",
                              "/leader-election", "^apps/v1/deployments/kube-system/",
                              NULL, "c9"};
  assert_int_equal(kt_filter_new(&fo, &f), 0);
  char doc[1024];
  const char *cases[][5] = {
      /* verb, group, resource, userAgent, expected */
      {"update", "apps", "deployments", "kubectl", NULL},
      {"get", "apps", "deployments", "kubectl", "verb"},
      {"update", "coordination.k8s.io", "leases", "kubectl", "excluded_type"},
      {"update", "", "events", "kubectl", "excluded_type"},
      {"update", "apps", "deployments", "kcm/leader-election", "excluded_user_agent"},
  };
  for (size_t i = 0; i < 5; i++) {
    snprintf(doc, sizeof doc,
             "{\"auditID\":\"a\",\"verb\":\"%s\",\"stage\":\"ResponseComplete\","
             "\"user\":{\"username\":\"u\"},\"userAgent\":\"%s\",\"objectRef\":{"
             "\"resource\":\"%s\",\"apiGroup\":\"%s\",\"apiVersion\":\"v1\","
             "\"namespace\":\"default\",\"name\":\"n\"},"
             "\"requestReceivedTimestamp\":\"2026-01-01T00:00:00Z\"}",
             cases[i][0], cases[i][3], cases[i][2], cases[i][1]);
    struct kt_audit_event ev;
    assert_int_equal(decode(doc, &ev), KT_AUDIT_OK);
    const char *why = kt_filter_check(f, &ev);
    if (cases[i][4])
      assert_string_equal(why, cases[i][4]);
    else
      assert_null(why);
    kt_audit_event_free(&ev);
  }
  struct kt_filter *bad;
  struct kt_filter_opts fb = {"", "", "([", NULL, NULL};
  assert_int_equal(kt_filter_new(&fb, &bad), -22);
  kt_filter_free(f);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_falco_create),
      cmocka_unit_test(test_audit2rbac_lines),
      cmocka_unit_test(test_bad_inputs),
      cmocka_unit_test(test_generate_name_v1beta1),
      cmocka_unit_test(test_filter_reasons),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
