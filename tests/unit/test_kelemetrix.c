/* kt_kelemetrix and kt_toml: the shipped examples/kelemetrix.toml loads;
 * each class of config error is refused with the right line; the TOML
 * subset parses what it promises; every tag and quantifier on hand-made
 * events; tag filters (regex, negate) and quantity filters at their
 * boundaries; what lands in the registry (counter, histogram, summary),
 * the series bound; and, with KT_BENCH=1, the cost per event. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "audit/kt_audit.h"
#include "core/kt_metrics.h"
#include "kelemetrix/kt_kelemetrix.h"
#include "kelemetrix/kt_toml.h"

/* ---- helpers ---- */

/* Builds an event of cluster c1: stage, verb, requestURI (NULL = none),
 * response code (0 = no responseStatus), latency in ms, and extra JSON
 * members (each starting with ','). */
static void mkev(struct kt_audit_event *ev, const char *stage,
                 const char *verb, const char *uri, int code, int latency_ms,
                 const char *extra)
{
  char json[4096], uri_s[1200] = "", code_s[128] = "", err[256];
  if (uri)
    snprintf(uri_s, sizeof uri_s, ",\"requestURI\":\"%s\"", uri);
  if (code)
    snprintf(code_s, sizeof code_s,
             ",\"responseStatus\":{\"metadata\":{},\"code\":%d}", code);
  snprintf(json, sizeof json,
           "{\"kind\":\"Event\",\"apiVersion\":\"audit.k8s.io/v1\","
           "\"auditID\":\"a1\",\"stage\":\"%s\",\"verb\":\"%s\","
           "\"user\":{\"username\":\"alice\"},\"sourceIPs\":[\"10.0.0.7\","
           "\"10.0.0.8\"],\"objectRef\":{\"resource\":\"deployments\","
           "\"namespace\":\"default\",\"name\":\"demo\",\"apiGroup\":\"apps\","
           "\"apiVersion\":\"v1\"},"
           "\"requestReceivedTimestamp\":\"2026-01-01T00:00:00.000000Z\","
           "\"stageTimestamp\":\"2026-01-01T00:00:%02d.%03d000Z\"%s%s%s}",
           stage, verb, latency_ms / 1000, latency_ms % 1000, uri_s, code_s,
           extra ? extra : "");
  cJSON *j = cJSON_Parse(json);
  assert_non_null(j);
  assert_int_equal(kt_audit_event_init(ev, j, "c1", err, sizeof err),
                   KT_AUDIT_OK);
}

static char *tagv(const struct kt_audit_event *ev, const char *name)
{
  static char buf[512];
  assert_int_equal(kt_kelemetrix_tag(ev, "192.168.1.1:443", name, buf,
                                     sizeof buf), 0);
  return buf;
}

static int load_text(struct kt_metrics *r, const char *text, char *err,
                     size_t errlen, struct kt_kelemetrix **k)
{
  struct kt_kelemetrix_opts o = {"c2=30s,c3=2m", 0, 0, r};
  return kt_kelemetrix_load(text, strlen(text), "t.toml", &o, k, err, errlen);
}

/* The config fails with exactly "t.toml:<line>: ..." containing what. */
static void assert_refused(const char *text, int line, const char *what)
{
  struct kt_metrics *r = kt_metrics_new();
  struct kt_kelemetrix *k = NULL;
  char err[512], prefix[32];
  int rc = load_text(r, text, err, sizeof err, &k);
  if (rc != -EINVAL || !strstr(err, what))
    fail_msg("want line %d \"%s\", got %d \"%s\"", line, what, rc, err);
  snprintf(prefix, sizeof prefix, "t.toml:%d: ", line);
  if (strncmp(err, prefix, strlen(prefix)) != 0)
    fail_msg("want prefix %s, got \"%s\"", prefix, err);
  assert_null(k);
  kt_metrics_free(r);
}

static double scrape(struct kt_metrics *r, const char *series)
{
  double v = -1;
  char *text = kt_metrics_render(r, NULL);
  assert_non_null(text);
  if (kt_metrics_scrape_value(text, series, &v))
    v = -1;
  free(text);
  return v;
}

/* ---- loading ---- */

static void test_example_loads(void **state)
{
  const char *src = getenv("KT_SRC");
  char path[512], err[512];
  struct kt_metrics *r = kt_metrics_new();
  struct kt_kelemetrix_opts o = {NULL, 0, 0, r};
  struct kt_kelemetrix *k;
  snprintf(path, sizeof path, "%s/examples/kelemetrix.toml", src ? src : ".");
  if (kt_kelemetrix_open(path, &o, &k, err, sizeof err))
    fail_msg("%s", err);
  assert_int_equal(kt_kelemetrix_count(k), 5);
  char *text = kt_metrics_render(r, NULL);
  const char *want[] = {"# TYPE baseline_histogram histogram",
                        "# TYPE errors_by_user_count counter",
                        "# TYPE cache_penetrations_count counter",
                        "# TYPE list_timeout_summary summary",
                        "# TYPE watch_error_summary summary"};
  for (size_t i = 0; i < 5; i++)
    if (!strstr(text, want[i]))
      fail_msg("missing %s in\n%s", want[i], text);
  free(text);
  kt_kelemetrix_free(k);
  kt_metrics_free(r);
}

static void test_open_missing_file(void **state)
{
  char err[512];
  struct kt_kelemetrix *k;
  assert_int_equal(kt_kelemetrix_open("/nonexistent/k.toml", NULL, &k, err,
                                      sizeof err), -ENOENT);
  assert_non_null(strstr(err, "cannot open /nonexistent/k.toml"));
}

static const char *const M = "[[metrics]]\nname = \"m\"\n"
                             "quantifier = \"request_count\"\n";

static void test_refusals(void **state)
{
  char t[1024];
  snprintf(t, sizeof t, "# c\n%stagz = [\"verb\"]\n", M);
  assert_refused(t, 5, "unknown key \"tagz\" in [[metrics]]");
  snprintf(t, sizeof t, "%stags = [\"verb\",\n  \"nope\"]\n", M);
  assert_refused(t, 5, "unknown tag \"nope\"");
  assert_refused("[[metrics]]\nname = \"m\"\nquantifier = \"qq\"\n", 3,
                 "unknown quantifier \"qq\"");
  snprintf(t, sizeof t, "%s[[metrics.quantityFilters]]\nquantity = "
           "\"request_count\"\noperator = \"=>\"\nthreshold = 1\n", M);
  assert_refused(t, 6, "unknown operator \"=>\"");
  snprintf(t, sizeof t, "%s\n%s", M, M);
  assert_refused(t, 6, "duplicate metric name \"m\" (first at line 2)");
  snprintf(t, sizeof t, "%s[[metrics.tagFilters]]\ntag = \"verbb\"\n"
           "oneOf = [\"x\"]\n", M);
  assert_refused(t, 5, "unknown tag \"verbb\"");
  snprintf(t, sizeof t, "%s[[metrics.tagFilters]]\ntag = \"code\"\n"
           "oneOf = [\"[4\"]\nisRegex = true\n", M);
  assert_refused(t, 6, "bad regex \"[4\" in oneOf");
  /* glibc's regcomp would copy these past memory (found by the fuzzer) */
  snprintf(t, sizeof t, "%s[[metrics.tagFilters]]\ntag = \"code\"\n"
           "oneOf = [\"ok\",\n\"a++\"]\nisRegex = true\n", M);
  assert_refused(t, 7, "a repetition of nothing or of a repetition");
  snprintf(t, sizeof t, "%s[[metrics.tagFilters]]\ntag = \"code\"\n"
           "oneOf = [\"*a\"]\nisRegex = true\n", M);
  assert_refused(t, 6, "a repetition of nothing");
  snprintf(t, sizeof t, "%s[[metrics.tagFilters]]\ntag = \"code\"\n"
           "oneOf = [\"x(((((((((((((((a+)+)+)+)+)+)+)+)+)+)+)+)+)+)+)\"]\n"
           "isRegex = true\n", M);
  assert_refused(t, 6, "too large once compiled");
  snprintf(t, sizeof t, "%s[[metrics.tagFilters]]\ntag = \"code\"\n"
           "oneOf = [\"(ab{100}){101}\"]\nisRegex = true\n", M);
  assert_refused(t, 6, "too large once compiled");
  snprintf(t, sizeof t, "%s[[metrics.tagFilters]]\ntag = \"code\"\n"
           "oneOf = [\"(a{,200}){,200}\"]\nisRegex = true\n", M);
  assert_refused(t, 6, "too large once compiled");
  snprintf(t, sizeof t, "%s[[metrics.tagFilters]]\ntag = \"code\"\n"
           "oneOf = []\n", M);
  assert_refused(t, 6, "oneOf is empty");
  snprintf(t, sizeof t, "%s[[metrics.tagFilters]]\ntag = \"code\"\n", M);
  assert_refused(t, 4, "[[metrics.tagFilters]] without oneOf");
  snprintf(t, sizeof t, "%s[[metrics.quantityFilters]]\nquantity = "
           "\"request_count\"\noperator = \"<\"\n", M);
  assert_refused(t, 4, "without threshold");
  snprintf(t, sizeof t, "%s[[metrics.quantityFilter]]\n", M);
  assert_refused(t, 4, "did you mean [[metrics.quantityFilters]]");
  snprintf(t, sizeof t, "%s[[metrics.filters]]\n", M);
  assert_refused(t, 4, "unknown table [[metrics.filters]]");
  assert_refused("[[metrics]]\nquantifier = \"request_count\"\n", 1,
                 "[[metrics]] without a name");
  assert_refused("[[metrics]]\nname = \"m\"\n", 1, "without a quantifier");
  assert_refused("[[metrics]]\nname = 1\n", 2,
                 "\"name\" must be a string, not integer");
  assert_refused("[[metrics]]\nname = \"9lives\"\n", 2,
                 "invalid metric name");
  assert_refused("x = 1\n", 1, "unknown key \"x\" at the top level");
  snprintf(t, sizeof t, "%stags = [\"verb\", \"verb\"]\n", M);
  assert_refused(t, 4, "tag \"verb\" listed twice");
  snprintf(t, sizeof t, "%stags = [\"verb\", 1]\n", M);
  assert_refused(t, 4, "must be an array of strings, not of integer");
  snprintf(t, sizeof t, "%sName = \"x\"\n", M);
  assert_refused(t, 4, "duplicate key \"Name\" (first at line 2)");
  snprintf(t, sizeof t, "%s[[metrics.tagFilters]]\ntag = \"code\"\n"
           "oneOf = [\"1\"]\nnegate = \"yes\"\n", M);
  assert_refused(t, 7, "\"negate\" must be a boolean, not string");
  snprintf(t, sizeof t, "%stags = [\"cluster\", \"apiserverAddr\", "
           "\"username\", \"clientAddr\", \"verb\", \"code\", \"group\", "
           "\"version\", \"resource\"]\n", M);
  assert_refused(t, 4, "more than 8 tags");
  snprintf(t, sizeof t, "%s[[metrics.tagFilters.x]]\n", M);
  assert_refused(t, 4, "comes before any [[metrics.tagFilters]]");
}

static void test_syntax_errors(void **state)
{
  assert_refused("[[metrics]]\nname = \"m\n", 2, "unterminated string");
  assert_refused("[[metrics]]\nname \"m\"\n", 2, "expected '=' after key");
  assert_refused("\n[metrics]\n", 2, "[table] headers are not supported");
  assert_refused("[[metrics]]\nname = {a = 1}\n", 2, "inline tables");
  assert_refused("[[metrics]]\nx = 1979-05-27\n", 2, "invalid value");
  assert_refused("[[metrics]]\nx = 01\n", 2, "invalid value");
  assert_refused("[[metrics]]\nx = 1__0\n", 2, "invalid value");
  assert_refused("[[metrics]]\nx = 0x10\n", 2, "hexadecimal");
  assert_refused("[[metrics]]\nx = [\"a\",\n\"b\"\n", 4,
                 "unterminated array");
  assert_refused("[[metrics]]\nx = [[1]]\n", 2, "nested arrays");
  assert_refused("[[metrics]]\nx = \"\"\"a\"\"\"\n", 2, "multi-line");
  assert_refused("[[metrics]]\nx = 1 2\n", 2, "unexpected '2' after the "
                 "value");
  assert_refused("[[metrics]]\na.b = 1\n", 2, "dotted keys");
  assert_refused("[[metrics]]\nx = 1\nx = 2\n", 3,
                 "duplicate key \"x\" (first at line 2)");
  assert_refused("[[metrics]]\nx = \"\\q\"\n", 2, "unknown escape");
  assert_refused("[[metrics]]\nx = \"\\u0000\"\n", 2, "\\u0000");
  assert_refused("[[metrics]]\nx = \"a\xff\"\n", 2, "invalid UTF-8");
  assert_refused("[[metrics]]\nx = \"a\x01\"\n", 2, "control character");
  assert_refused("[[metrics\n", 1, "expected ]]");
  assert_refused("[[metrics]]\nx =\n", 2, "missing value");
  assert_refused("[[metrics.tagFilters]]\n", 1,
                 "comes before any [[metrics]]");
  assert_refused("[[metrics]]\r\nname = \"m\"\r\nbad\r\n", 3,
                 "expected '=' after key \"bad\"");
}

static void test_bad_timeouts(void **state)
{
  struct kt_metrics *r = kt_metrics_new();
  struct kt_kelemetrix *k;
  char err[256];
  const char *bad[] = {"c1", "c1=", "=1m", "c1=1x", "c1=1m,", "c1=-1s"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    struct kt_kelemetrix_opts o = {bad[i], 0, 0, r};
    assert_int_equal(kt_kelemetrix_load(M, strlen(M), "t.toml", &o, &k, err,
                                        sizeof err), -EINVAL);
    assert_non_null(strstr(err, "--kube-request-timeout"));
  }
  kt_metrics_free(r);
}

/* ---- the TOML subset ---- */

static void test_toml_values(void **state)
{
  const char *text =
      "# top\n"
      "[[a]]  # trailing comment\n"
      "s = \"tab\\there \\\"q\\\" \\u00e9\\U0001F600\"\n"
      "l = 'C:\\path'\n"
      "\"quoted key\" = true\n"
      "i = -1_000\n"
      "f = 6.02e+23\n"
      "g = +inf\n"
      "arr = [\n  \"x\", # one\n  'y',\n]\n"
      "empty = []\n"
      "[[ a . b ]]\r\n"
      "t = false\r\n";
  struct kt_toml_doc d;
  char err[256];
  int line;
  if (kt_toml_parse(text, strlen(text), &d, &line, err, sizeof err))
    fail_msg("line %d: %s", line, err);
  assert_int_equal(d.ntables, 3);
  const struct kt_toml_table *a = &d.tables[1], *b = &d.tables[2];
  assert_string_equal(a->name, "a");
  assert_int_equal(a->line, 2);
  assert_int_equal(a->parent, -1);
  assert_string_equal(b->name, "a.b");
  assert_int_equal(b->parent, 1);
  assert_int_equal(a->npairs, 8);
  assert_string_equal(a->pairs[0].v.s,
                      "tab\there \"q\" \xc3\xa9\xf0\x9f\x98\x80");
  assert_string_equal(a->pairs[1].v.s, "C:\\path");
  assert_string_equal(a->pairs[2].key, "quoted key");
  assert_int_equal(a->pairs[2].v.b, 1);
  assert_int_equal(a->pairs[3].v.type, KT_TOML_INT);
  assert_true(a->pairs[3].v.num == -1000);
  assert_int_equal(a->pairs[4].v.type, KT_TOML_FLOAT);
  assert_true(a->pairs[4].v.num == 6.02e23);
  assert_true(isinf(a->pairs[5].v.num));
  assert_int_equal(a->pairs[6].v.nitems, 2);
  assert_int_equal(a->pairs[6].v.items[1].line, 11);
  assert_string_equal(a->pairs[6].v.items[1].s, "y");
  assert_int_equal(a->pairs[7].v.nitems, 0);
  assert_int_equal(b->line, 14);
  assert_int_equal(b->pairs[0].v.b, 0);
  kt_toml_free(&d);
}

/* go-toml matches keys case-insensitively; so do we. */
static void test_case_insensitive_keys(void **state)
{
  const char *t = "[[Metrics]]\nName = \"m\"\nQuantifier = \"request_count\"\n"
                  "TAGS = [\"verb\"]\n[[Metrics.TagFilters]]\nTag = \"verb\"\n"
                  "OneOf = [\"get\"]\nIsRegex = false\n";
  struct kt_metrics *r = kt_metrics_new();
  struct kt_kelemetrix *k;
  char err[256];
  if (load_text(r, t, err, sizeof err, &k))
    fail_msg("%s", err);
  kt_kelemetrix_free(k);
  kt_metrics_free(r);
}

/* ---- tags and quantities ---- */

static void test_tags(void **state)
{
  struct kt_audit_event ev;
  mkev(&ev, "ResponseComplete", "list",
       "/apis/apps/v1/deployments?labelSelector=a%3Db&resourceVersion=0",
       0, 5, ",\"impersonatedUser\":{\"username\":\"system:node:n1\"},"
       "\"responseStatus\":{\"code\":403,\"reason\":\"Forbidden\"}");
  assert_string_equal(tagv(&ev, "cluster"), "c1");
  assert_string_equal(tagv(&ev, "apiserverAddr"), "192.168.1.1:443");
  assert_string_equal(tagv(&ev, "username"), "system:node");
  assert_string_equal(tagv(&ev, "clientAddr"), "10.0.0.7");
  assert_string_equal(tagv(&ev, "verb"), "list");
  assert_string_equal(tagv(&ev, "code"), "403");
  assert_string_equal(tagv(&ev, "errorReason"), "Forbidden");
  assert_string_equal(tagv(&ev, "resourceVersion"), "Zero");
  assert_string_equal(tagv(&ev, "hasSelector"), "true");
  assert_string_equal(tagv(&ev, "group"), "apps");
  assert_string_equal(tagv(&ev, "version"), "v1");
  assert_string_equal(tagv(&ev, "resource"), "deployments");
  assert_string_equal(tagv(&ev, "groupResource"), "deployments.apps");
  assert_string_equal(tagv(&ev, "subresource"), "");
  assert_string_equal(tagv(&ev, "namespace"), "default");
  assert_string_equal(tagv(&ev, "name"), "demo");
  char buf[8];
  assert_int_equal(kt_kelemetrix_tag(&ev, NULL, "nope", buf, sizeof buf),
                   -ENOENT);
  kt_audit_event_free(&ev);
}

static void test_tags_absent(void **state)
{
  struct kt_audit_event ev;
  char json[] = "{\"kind\":\"Event\",\"auditID\":\"x\",\"stage\":"
                "\"RequestReceived\",\"verb\":\"get\",\"user\":{\"username\":"
                "\"bob\"},\"impersonatedUser\":{},\"requestReceivedTimestamp\":"
                "\"2026-01-01T00:00:00Z\"}";
  char err[256];
  assert_int_equal(kt_audit_event_init(&ev, cJSON_Parse(json), "c1", err,
                                       sizeof err), KT_AUDIT_OK);
  assert_string_equal(tagv(&ev, "username"), ""); /* impersonated, no name */
  assert_string_equal(tagv(&ev, "clientAddr"), "");
  assert_string_equal(tagv(&ev, "code"), "");
  assert_string_equal(tagv(&ev, "errorReason"), "");
  assert_string_equal(tagv(&ev, "resourceVersion"), "Empty");
  assert_string_equal(tagv(&ev, "hasSelector"), "false");
  assert_string_equal(tagv(&ev, "group"), "");
  assert_string_equal(tagv(&ev, "groupResource"), "");
  assert_string_equal(tagv(&ev, "name"), "");
  kt_audit_event_free(&ev);
}

static void test_uri_tags(void **state)
{
  static const struct {
    const char *uri, *rv, *sel;
  } cases[] = {
      {"/api/v1/pods", "Empty", "false"},
      {"/api/v1/pods?resourceVersion=", "NonZero", "false"},
      {"/api/v1/pods?resourceVersion=%30", "Zero", "false"},
      {"/api/v1/pods?resourceVersion=12&resourceVersion=0", "NonZero", "false"},
      {"/api/v1/pods?resourceVersion=%zz&resourceVersion=0", "Zero", "false"},
      {"/api/v1/pods?resourceVersion=0;x", "Empty", "false"},
      {"/api/v1/pods?fieldSelector", "Empty", "true"},
      {"/api/v1/pods?x=1&&fieldSelector=a&resourceVersion=7#frag", "NonZero",
       "true"},
      {"/api/v1/p%zzods?resourceVersion=0", "kelemetrix::ErrUriParse",
       "kelemetrix::ErrUriParse"},
      {":foo", "kelemetrix::ErrUriParse", "kelemetrix::ErrUriParse"},
      {"1a:b/c", "kelemetrix::ErrUriParse", "kelemetrix::ErrUriParse"},
      {"a:b/c?resourceVersion=1", "NonZero", "false"}, /* scheme a, opaque */
      {"/x\\u0001", "kelemetrix::ErrUriParse", "kelemetrix::ErrUriParse"},
      {"", "Empty", "false"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    struct kt_audit_event ev;
    mkev(&ev, "ResponseComplete", "list", cases[i].uri, 200, 1, NULL);
    if (strcmp(tagv(&ev, "resourceVersion"), cases[i].rv) ||
        strcmp(tagv(&ev, "hasSelector"), cases[i].sel))
      fail_msg("%s: rv %s sel %s", cases[i].uri,
               tagv(&ev, "resourceVersion"), tagv(&ev, "hasSelector"));
    kt_audit_event_free(&ev);
  }
}

static double qv(const struct kt_kelemetrix *k, const struct kt_audit_event *ev,
                 const char *q, int64_t now)
{
  double v;
  int rc = kt_kelemetrix_quantity(k, ev, q, now, &v);
  assert_true(rc >= 0);
  return rc ? v : NAN;
}

static void test_quantities(void **state)
{
  struct kt_metrics *r = kt_metrics_new();
  struct kt_kelemetrix *k;
  struct kt_audit_event ev;
  char err[256];
  int64_t t0 = 1767225600LL * 1000000; /* 2026-01-01T00:00:00Z */
  assert_int_equal(load_text(r, M, err, sizeof err, &k), 0);

  mkev(&ev, "RequestReceived", "get", "/api/v1/pods/x", 0, 0, NULL);
  assert_true(isnan(qv(k, &ev, "request_count", 0)));
  assert_true(isnan(qv(k, &ev, "request_latency", 0)));
  assert_true(isnan(qv(k, &ev, "mq_latency", 0)));
  assert_true(isnan(qv(k, &ev, "request_latency_ratio", 0)));
  kt_audit_event_free(&ev);

  mkev(&ev, "ResponseComplete", "list", "/api/v1/pods?timeoutSeconds=30", 200,
       2500, NULL);
  assert_true(qv(k, &ev, "request_count", 0) == 1);
  assert_true(qv(k, &ev, "request_latency", 0) == 2.5e9);
  assert_true(qv(k, &ev, "mq_latency", t0 + 3500000) == 1e9);
  assert_true(qv(k, &ev, "request_latency_ratio", 0) == 12);
  double v;
  assert_int_equal(kt_kelemetrix_quantity(k, &ev, "nope", 0, &v), -ENOENT);
  kt_audit_event_free(&ev);

  /* No timeoutSeconds: the cluster's --kube-request-timeout, else 60 s. */
  mkev(&ev, "ResponseComplete", "list", "/api/v1/pods", 200, 2000, NULL);
  assert_true(qv(k, &ev, "request_latency_ratio", 0) == 30);
  snprintf(ev.cluster, sizeof ev.cluster, "c2");
  assert_true(qv(k, &ev, "request_latency_ratio", 0) == 15);
  snprintf(ev.cluster, sizeof ev.cluster, "c3");
  assert_true(qv(k, &ev, "request_latency_ratio", 0) == 60);
  assert_true(qv(NULL, &ev, "request_latency_ratio", 0) == 30);
  kt_audit_event_free(&ev);

  mkev(&ev, "ResponseComplete", "watch", "/api/v1/pods?timeoutSeconds=x",
       200, 2000, NULL);
  assert_true(isnan(qv(k, &ev, "request_latency_ratio", 0)));
  kt_audit_event_free(&ev);
  mkev(&ev, "ResponseComplete", "watch", "/api/v1/p%zz?timeoutSeconds=1",
       200, 2000, NULL);
  assert_true(isnan(qv(k, &ev, "request_latency_ratio", 0)));
  kt_audit_event_free(&ev);
  mkev(&ev, "ResponseComplete", "watch", "/api/v1/pods?timeoutSeconds=1",
       200, 0, NULL);
  assert_true(isinf(qv(k, &ev, "request_latency_ratio", 0)));
  kt_audit_event_free(&ev);
  kt_kelemetrix_free(k);
  kt_metrics_free(r);
}

/* ---- filters and emission ---- */

static const char *const FILTERS =
    "[[metrics]]\nname = \"neg1\"\nquantifier = \"request_count\"\n"
    "tags = [\"verb\"]\n"
    "[[metrics.tagFilters]]\ntag = \"verb\"\noneOf = [\"get\"]\n"
    "negate = true\n"
    "[[metrics]]\nname = \"neg2\"\nquantifier = \"request_count\"\n"
    "tags = [\"verb\"]\n"
    "[[metrics.tagFilters]]\ntag = \"verb\"\noneOf = [\"get\", \"list\"]\n"
    "negate = true\n"
    "[[metrics]]\nname = \"re\"\nquantifier = \"request_count\"\n"
    "tags = [\"code\"]\n"
    "[[metrics.tagFilters]]\ntag = \"code\"\noneOf = [\"^4\", \"^50[0-3]$\"]\n"
    "isRegex = true\n"
    "[[metrics]]\nname = \"re2\"\nquantifier = \"request_count\"\n"
    "tags = [\"code\"]\n"
    "[[metrics.tagFilters]]\ntag = \"code\"\n"
    "oneOf = [\"^[[:digit:]]0+?[04]$\", \"^(2|3){1,2}0{1}0$\", \"a\\\\+\"]\n"
    "isRegex = true\n"
    "[[metrics]]\nname = \"le\"\nquantifier = \"request_count\"\n"
    "[[metrics.quantityFilters]]\nquantity = \"request_latency\"\n"
    "operator = \"<=\"\nthreshold = 1e9\n"
    "[[metrics]]\nname = \"lt\"\nquantifier = \"request_count\"\n"
    "[[metrics.quantityFilters]]\nquantity = \"request_latency\"\n"
    "operator = \"<\"\nthreshold = 1_000_000_000\n"
    "[[metrics]]\nname = \"ge\"\nquantifier = \"request_count\"\n"
    "[[metrics.quantityFilters]]\nquantity = \"request_latency\"\n"
    "operator = \">=\"\nthreshold = 1e9\n"
    "[[metrics]]\nname = \"gt\"\nquantifier = \"request_count\"\n"
    "[[metrics.quantityFilters]]\nquantity = \"request_latency\"\n"
    "operator = \">\"\nthreshold = 1e9\n"
    "[[metrics]]\nname = \"lat\"\nquantifier = \"request_latency\"\n"
    "tags = [\"verb\"]\n"
    "[[metrics]]\nname = \"ratio\"\nquantifier = \"request_latency_ratio\"\n";

static void observe(struct kt_kelemetrix *k, const char *verb, int code,
                    int latency_ms)
{
  struct kt_audit_event ev;
  mkev(&ev, "ResponseComplete", verb, "/apis/apps/v1/deployments", code,
       latency_ms, NULL);
  kt_kelemetrix_observe(k, &ev, "a:1");
  kt_audit_event_free(&ev);
}

static void test_filters(void **state)
{
  struct kt_metrics *r = kt_metrics_new();
  struct kt_kelemetrix *k;
  char err[256];
  if (load_text(r, FILTERS, err, sizeof err, &k))
    fail_msg("%s", err);
  observe(k, "get", 200, 1000);    /* latency == 1e9 ns exactly */
  observe(k, "list", 404, 500);
  observe(k, "watch", 503, 2000);
  observe(k, "create", 504, 1000);
  /* negate, one value: everything but get. */
  assert_true(scrape(r, "neg1_count{verb=\"get\"}") == -1);
  assert_true(scrape(r, "neg1_count{verb=\"list\"}") == 1);
  /* negate, two values: none of them (the original: any one differs). */
  assert_true(scrape(r, "neg2_count{verb=\"get\"}") == -1);
  assert_true(scrape(r, "neg2_count{verb=\"list\"}") == -1);
  assert_true(scrape(r, "neg2_count{verb=\"watch\"}") == 1);
  /* regexes are searched (unanchored unless anchored). */
  assert_true(scrape(r, "re_count{code=\"404\"}") == 1);
  assert_true(scrape(r, "re_count{code=\"503\"}") == 1);
  assert_true(scrape(r, "re_count{code=\"504\"}") == -1);
  assert_true(scrape(r, "re2_count{code=\"404\"}") == 1);
  assert_true(scrape(r, "re2_count{code=\"200\"}") == 1);
  assert_true(scrape(r, "re2_count{code=\"503\"}") == -1);
  assert_true(scrape(r, "re_count{code=\"200\"}") == -1);
  /* operators at the threshold: 500 ms, 1 s, 1 s, 2 s */
  assert_true(scrape(r, "le_count") == 3);
  assert_true(scrape(r, "lt_count") == 1);
  assert_true(scrape(r, "ge_count") == 3);
  assert_true(scrape(r, "gt_count") == 1);
  /* histogram in ns; summary quantiles */
  assert_true(scrape(r, "lat_histogram_count{verb=\"get\"}") == 1);
  assert_true(scrape(r, "lat_histogram_sum{verb=\"watch\"}") == 2e9);
  assert_true(scrape(r, "lat_histogram_bucket{verb=\"list\",le=\"500000000\"}")
              == 1);
  assert_true(scrape(r, "ratio_summary_count") == 4);
  assert_true(scrape(r, "ratio_summary{quantile=\"0.5\"}") == 60);
  assert_true(scrape(r, "ratio_summary{quantile=\"0.99\"}") == 120);
  assert_true(scrape(r, "ratio_summary_sum") == 30 + 60 + 60 + 120);
  kt_kelemetrix_free(k);
  kt_metrics_free(r);
}

/* Stages other than ResponseComplete count for nothing but are seen. */
static void test_stages(void **state)
{
  struct kt_metrics *r = kt_metrics_new();
  struct kt_kelemetrix *k;
  struct kt_audit_event ev;
  char err[256];
  assert_int_equal(load_text(r, FILTERS, err, sizeof err, &k), 0);
  mkev(&ev, "RequestReceived", "list", "/api/v1/pods", 0, 0, NULL);
  kt_kelemetrix_observe(k, &ev, NULL);
  kt_audit_event_free(&ev);
  mkev(&ev, "ResponseStarted", "watch", "/api/v1/pods", 200, 10, NULL);
  kt_kelemetrix_observe(k, &ev, NULL);
  kt_audit_event_free(&ev);
  assert_true(scrape(r, "le_count") == 0);
  assert_true(scrape(r, "ratio_summary_count") == 0);
  kt_kelemetrix_free(k);
  kt_metrics_free(r);
}

/* The shipped metrics on events made to hit each. */
static void test_example_metrics(void **state)
{
  const char *src = getenv("KT_SRC");
  char path[512], err[512];
  struct kt_metrics *r = kt_metrics_new();
  struct kt_kelemetrix_opts o = {NULL, 0, 0, r};
  struct kt_kelemetrix *k;
  struct kt_audit_event ev;
  snprintf(path, sizeof path, "%s/examples/kelemetrix.toml", src ? src : ".");
  assert_int_equal(kt_kelemetrix_open(path, &o, &k, err, sizeof err), 0);
  mkev(&ev, "ResponseComplete", "list", "/apis/apps/v1/deployments?"
       "timeoutSeconds=1&labelSelector=x", 200, 1500, NULL);
  kt_kelemetrix_observe(k, &ev, "a:1");
  kt_audit_event_free(&ev);
  mkev(&ev, "ResponseComplete", "watch", "/apis/apps/v1/deployments?"
       "watch=1&resourceVersion=5&timeoutSeconds=500", 200, 100, NULL);
  kt_kelemetrix_observe(k, &ev, "a:1");
  kt_audit_event_free(&ev);
  assert_true(scrape(r, "cache_penetrations_count{username=\"alice\","
              "cluster=\"c1\",group=\"apps\",resource=\"deployments\","
              "verb=\"list\",hasSelector=\"true\"}") == 1);
  assert_true(scrape(r, "list_timeout_summary_count{username=\"alice\","
              "cluster=\"c1\",group=\"apps\",resource=\"deployments\","
              "hasSelector=\"true\"}") == 1);
  assert_true(scrape(r, "watch_error_summary_sum{username=\"alice\","
              "cluster=\"c1\",group=\"apps\",resource=\"deployments\"}") ==
              5000);
  assert_true(scrape(r, "baseline_histogram_count{cluster=\"c1\"}") == 2);
  kt_kelemetrix_free(k);
  kt_metrics_free(r);
}

/* Past 1000 label tuples a metric's new tuples share "_overflow". */
static void test_series_bound(void **state)
{
  struct kt_metrics *r = kt_metrics_new();
  struct kt_kelemetrix *k;
  char err[256], extra[128];
  const char *t = "[[metrics]]\nname = \"u\"\nquantifier = \"request_count\"\n"
                  "tags = [\"username\"]\n";
  assert_int_equal(load_text(r, t, err, sizeof err, &k), 0);
  for (int i = 0; i < KT_METRICS_MAX_SERIES + 5; i++) {
    struct kt_audit_event ev;
    snprintf(extra, sizeof extra, ",\"impersonatedUser\":{\"username\":"
             "\"user%d\"}", i);
    mkev(&ev, "ResponseComplete", "get", "/", 200, 1, extra);
    kt_kelemetrix_observe(k, &ev, NULL);
    kt_audit_event_free(&ev);
  }
  assert_true(scrape(r, "u_count{username=\"user999\"}") == 1);
  assert_true(scrape(r, "u_count{username=\"user1000\"}") == -1);
  assert_true(scrape(r, "u_count{username=\"_overflow\"}") == 5);
  assert_true(scrape(r, "kt_metrics_series_overflow_total") == 5);
  kt_kelemetrix_free(k);
  kt_metrics_free(r);
}

/* The summary type itself: quantiles by nearest rank over the window. */
static void test_summary_window(void **state)
{
  struct kt_metrics *r = kt_metrics_new();
  assert_null(kt_metrics_summary(r, "s", "h",
                                 (const char *const[]){"quantile", NULL}));
  struct kt_metric *m = kt_metrics_summary(r, "s", "h", NULL);
  assert_non_null(m);
  struct kt_series *s = kt_metric_series(m, NULL);
  assert_true(scrape(r, "s{quantile=\"0.5\"}") != scrape(r, "s_count"));
  for (int i = 1; i <= 100; i++)
    kt_series_observe(s, i);
  assert_true(scrape(r, "s{quantile=\"0.5\"}") == 50);
  assert_true(scrape(r, "s{quantile=\"0.9\"}") == 90);
  assert_true(scrape(r, "s{quantile=\"0.99\"}") == 99);
  assert_true(scrape(r, "s_count") == 100);
  assert_true(kt_series_value(s) == 100);
  /* the window forgets: 512 more of 1000 */
  for (int i = 0; i < KT_METRICS_SUMMARY_WINDOW; i++)
    kt_series_observe(s, 1000);
  assert_true(scrape(r, "s{quantile=\"0.5\"}") == 1000);
  assert_true(scrape(r, "s_count") == 100 + KT_METRICS_SUMMARY_WINDOW);
  assert_true(scrape(r, "s_sum") == 5050 + 1000.0 * KT_METRICS_SUMMARY_WINDOW);
  char *text = kt_metrics_render(r, NULL);
  assert_non_null(strstr(text, "# TYPE s summary\n"));
  free(text);
  kt_metrics_free(r);
}

/* KT_BENCH=1: cost of observe with the shipped config, per event. */
static void test_bench(void **state)
{
  if (!getenv("KT_BENCH"))
    skip();
  const char *src = getenv("KT_SRC");
  char path[512], err[512];
  struct kt_metrics *r = kt_metrics_new();
  struct kt_kelemetrix_opts o = {NULL, 0, 0, r};
  struct kt_kelemetrix *k;
  enum { N = 8, ROUNDS = 200000 };
  struct kt_audit_event ev[N];
  snprintf(path, sizeof path, "%s/examples/kelemetrix.toml", src ? src : ".");
  assert_int_equal(kt_kelemetrix_open(path, &o, &k, err, sizeof err), 0);
  for (int i = 0; i < N; i++)
    mkev(&ev[i], i % 4 ? "ResponseComplete" : "RequestReceived",
         i % 3 ? "get" : "list", "/apis/apps/v1/namespaces/default/"
         "deployments?resourceVersion=0&timeoutSeconds=5", i % 5 ? 200 : 404,
         3, NULL);
  struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  for (int i = 0; i < ROUNDS; i++)
    kt_kelemetrix_observe(k, &ev[i % N], "10.0.0.1:6443");
  clock_gettime(CLOCK_MONOTONIC, &b);
  double ns = ((double)(b.tv_sec - a.tv_sec) * 1e9 +
               (double)(b.tv_nsec - a.tv_nsec)) / ROUNDS;
  printf("kelemetrix observe, examples/kelemetrix.toml: %.0f ns/event\n", ns);
  for (int i = 0; i < N; i++)
    kt_audit_event_free(&ev[i]);
  kt_kelemetrix_free(k);
  kt_metrics_free(r);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_example_loads),
      cmocka_unit_test(test_open_missing_file),
      cmocka_unit_test(test_refusals),
      cmocka_unit_test(test_syntax_errors),
      cmocka_unit_test(test_bad_timeouts),
      cmocka_unit_test(test_toml_values),
      cmocka_unit_test(test_case_insensitive_keys),
      cmocka_unit_test(test_tags),
      cmocka_unit_test(test_tags_absent),
      cmocka_unit_test(test_uri_tags),
      cmocka_unit_test(test_quantities),
      cmocka_unit_test(test_filters),
      cmocka_unit_test(test_stages),
      cmocka_unit_test(test_example_metrics),
      cmocka_unit_test(test_series_bound),
      cmocka_unit_test(test_summary_window),
      cmocka_unit_test(test_bench),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
