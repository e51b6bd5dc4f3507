/* kt_decorator: see the header. */
#include "diff/kt_decorator.h"

#include <errno.h>
#include <pthread.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit/kt_audit.h"
#include "core/kt_log.h"
#include "core/kt_metrics.h"
#include "diff/kt_diffcache.h"
#include "diff/kt_patchcache.h"
#include "core/kt_time.h"
#include "json/kt_diff.h"
#include "store/kt_span.h"

#define REDACT_LABEL "kelemetry.kubewharf.io/diff-redacted"

struct kt_decorator {
  struct kt_diffcache *dc;
  regex_t re;
  int has_re;
  struct kt_metric *m_outcome;
  struct kt_patchcache *pc; /* watch diffs, or NULL */
  int64_t backoff_us, event_timeout_us, total_timeout_us;
};

void kt_decorator_use_informer(struct kt_decorator *d,
                               struct kt_patchcache *pc, int64_t backoff_us,
                               int64_t event_timeout_us,
                               int64_t total_timeout_us)
{
  d->pc = pc;
  d->backoff_us = backoff_us > 0 ? backoff_us : 1000000;
  d->event_timeout_us = event_timeout_us > 0 ? event_timeout_us : 15000000;
  d->total_timeout_us = total_timeout_us > 0 ? total_timeout_us : 10000000;
}

int kt_decorator_new(const char *redact_pattern, struct kt_diffcache *dc,
                     struct kt_decorator **out)
{
  struct kt_decorator *d = calloc(1, sizeof *d);
  if (!d)
    return -ENOMEM;
  d->dc = dc;
  if (redact_pattern && *redact_pattern) {
    if (regcomp(&d->re, redact_pattern, REG_EXTENDED | REG_NOSUB)) {
      kt_error("invalid --diff-redact-pattern: %s", redact_pattern);
      free(d);
      return -EINVAL;
    }
    d->has_re = 1;
  }
  d->m_outcome = kt_metrics_counter(kt_metrics_default(), "diff_decorator_total",
      "Audit spans decorated, by verb and outcome",
      (const char *const[]){"verb", "outcome", NULL});
  *out = d;
  return 0;
}

void kt_decorator_free(struct kt_decorator *d)
{
  if (!d)
    return;
  if (d->has_re)
    regfree(&d->re);
  free(d);
}

static int group_matches(const char *api_version, const char *group)
{
  const char *slash = strchr(api_version, '/');
  size_t n = slash ? (size_t)(slash - api_version) : 0;
  return strlen(group) == n && strncmp(api_version, group, n) == 0;
}

cJSON *kt_decorator_body(const struct kt_audit_event *ev)
{
  const char *kind = kt_json_str(ev->response_object, "kind");
  const char *api = kt_json_str(ev->response_object, "apiVersion");
  if (!kind || !api || strcmp(kind, "Status") == 0)
    return NULL;
  /* A subresource answering with another type (Scale, Eviction) names a
   * different group; status answers with the object itself. */
  if (!group_matches(api, ev->api_group ? ev->api_group : ""))
    return NULL;
  if (!cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(ev->response_object,
                                                       "metadata")))
    return NULL;
  return ev->response_object;
}

/* Values are replaced by their length: a change stays visible, the
 * content is never stored. The next pointer is read before the item is
 * replaced (and freed). */
/* Whether v is exactly what redaction writes: sanitising again (the inbox
 * sanitises before the consumer) keeps it. A prefix test would let a real
 * value that merely starts like the marker through. */
static int is_redaction(const char *v)
{
  size_t n;
  int used = -1;
  return sscanf(v, "(redacted, %zu bytes)%n", &n, &used) == 1 && used >= 0 &&
         v[used] == 0 && v[11] >= '0' && v[11] <= '9';
}

static void redact_values(cJSON *obj)
{
  cJSON *it = obj ? obj->child : NULL;
  while (it) {
    cJSON *next = it->next;
    char buf[64];
    if (cJSON_IsString(it) && is_redaction(it->valuestring)) {
      it = next;
      continue;
    }
    size_t n = cJSON_IsString(it) ? strlen(it->valuestring) : 0;
    snprintf(buf, sizeof buf, "(redacted, %zu bytes)", n);
    if (it->string) /* ViaPointer would drop the key */
      cJSON_ReplaceItemInObjectCaseSensitive(obj, it->string,
                                             cJSON_CreateString(buf));
    it = next;
  }
}

void kt_decorator_sanitize(cJSON *body, const char *group,
                           const char *resource)
{
  cJSON *meta = cJSON_GetObjectItemCaseSensitive(body, "metadata");
  cJSON_DeleteItemFromObjectCaseSensitive(meta, "managedFields");
  if ((group && *group) || !resource || strcmp(resource, "secrets") != 0)
    return;
  redact_values(cJSON_GetObjectItemCaseSensitive(body, "data"));
  redact_values(cJSON_GetObjectItemCaseSensitive(body, "stringData"));
  cJSON *ann = cJSON_GetObjectItemCaseSensitive(meta, "annotations");
  cJSON *last = cJSON_GetObjectItemCaseSensitive(
      ann, "kubectl.kubernetes.io/last-applied-configuration");
  if (last)
    cJSON_ReplaceItemInObjectCaseSensitive(
        ann, "kubectl.kubernetes.io/last-applied-configuration",
        cJSON_CreateString("(redacted)"));
}

static int is_redacted(const struct kt_decorator *d,
                       const struct kt_audit_event *ev, const cJSON *body)
{
  const cJSON *labels = kt_json_path(body, "metadata.labels");
  if (cJSON_GetObjectItemCaseSensitive(labels, REDACT_LABEL))
    return 1;
  if (!d->has_re)
    return 0;
  char path[1024];
  snprintf(path, sizeof path, "%s/%s/%s/%s/%s",
           ev->api_group ? ev->api_group : "",
           ev->api_version ? ev->api_version : "", ev->resource,
           kt_audit_namespace(ev), kt_audit_name(ev));
  return regexec(&d->re, path, 0, NULL, 0) == 0;
}

static void add_error_logs(const struct kt_audit_event *ev,
                           struct kt_span *span)
{
  const cJSON *st = cJSON_GetObjectItemCaseSensitive(ev->json, "responseStatus");
  char buf[2048];
  const char *reason = kt_json_str(st, "reason");
  const char *msg = kt_json_str(st, "message");
  snprintf(buf, sizeof buf, "%s: %s", reason ? reason : "",
           msg ? msg : "");
  kt_span_add_log(span, ev->stage_us, "realError", buf);
  const cJSON *cause;
  cJSON_ArrayForEach(cause, kt_json_path(st, "details.causes")) {
    const char *t = kt_json_str(cause, "reason");
    const char *m = kt_json_str(cause, "message");
    snprintf(buf, sizeof buf, "%s: %s", t ? t : "", m ? m : "");
    kt_span_add_log(span, ev->stage_us, "realError", buf);
  }
}

static const char *rv_of(const cJSON *body)
{
  const char *rv = kt_json_str(kt_json_path(body, "metadata"),
                               "resourceVersion");
  return rv ? rv : "";
}

/* Go's time.Duration text, as the original prints `informer latency`. */
static void go_duration(int64_t us, char *buf, size_t len)
{
  const char *sign = us < 0 ? "-" : "";
  double a = us < 0 ? -(double)us : (double)us;
  if (a < 1000)
    snprintf(buf, len, "%s%.0f\u00b5s", sign, a);
  else if (a < 1e6)
    snprintf(buf, len, "%s%.4gms", sign, a / 1e3);
  else
    snprintf(buf, len, "%s%.4gs", sign, a / 1e6);
}

/* The watch patch of objkey at newrv, waiting for it when wait is set.
 * Parsed JSON or NULL. */
static cJSON *informer_patch(struct kt_decorator *d,
                             const struct kt_audit_event *ev,
                             const char *objkey, const char *newrv, int wait)
{
  char name[96];
  snprintf(name, sizeof name, "rv/%s", newrv);
  int64_t start = kt_now_us(), deadline = ev->stage_us + d->event_timeout_us;
  if (deadline > start + d->total_timeout_us)
    deadline = start + d->total_timeout_us;
  for (;;) {
    char *text = kt_patchcache_get(d->pc, objkey, name);
    if (text) {
      cJSON *p = cJSON_Parse(text);
      free(text);
      return p;
    }
    int64_t now = kt_now_us();
    if (!wait || now >= deadline)
      return NULL;
    int64_t nap = d->backoff_us < deadline - now ? d->backoff_us : deadline - now;
    struct timespec ts = {nap / 1000000, (nap % 1000000) * 1000};
    nanosleep(&ts, NULL);
  }
}

/* diff_informer_latency (§3.2): watch time minus audit stage time, ns.
 * Registered once: this runs for every decorated update. */
static struct kt_metric *m_informer_latency;
static pthread_once_t m_once = PTHREAD_ONCE_INIT;

static void register_informer_latency(void)
{
  static const double ns[] = {-1e9, -1e8, -1e7, 0, 1e6, 1e7, 5e7, 1e8, 2.5e8,
                              5e8, 1e9, 2.5e9, 5e9, 1e10, 3e10};
  m_informer_latency = kt_metrics_histogram(kt_metrics_default(),
      "diff_informer_latency_histogram",
      "Nanoseconds from the audit stage time to the watch seeing the change",
      (const char *const[]){"cluster", "apiGroup", "resource", NULL}, ns,
      sizeof ns / sizeof ns[0]);
}

static struct kt_metric *informer_latency(void)
{
  pthread_once(&m_once, register_informer_latency);
  return m_informer_latency;
}

/* Attaches a watch patch; returns the outcome label. */
static const char *apply_patch(const struct kt_audit_event *ev,
                               const cJSON *patch, struct kt_span *span)
{
  const cJSON *t = cJSON_GetObjectItem(patch, "informerTime");
  const char *diff = kt_json_str(patch, "diff");
  char lat[48];
  if (cJSON_IsNumber(t)) {
    go_duration((int64_t)t->valuedouble - ev->stage_us, lat, sizeof lat);
    kt_span_add_tag(span, "informer latency", lat);
    kt_series_observe(kt_metric_series(informer_latency(), (const char *const[]){
                          ev->cluster, ev->api_group ? ev->api_group : "", ev->resource}),
                      (t->valuedouble - (double)ev->stage_us) * 1000.0);
  }
  if (cJSON_IsTrue(cJSON_GetObjectItem(patch, "redacted"))) {
    kt_span_add_log(span, ev->stage_us, "kelemetryError",
                    "Sensitive object content has been redacted");
    return "informer_redacted";
  }
  if (diff && *diff)
    kt_span_add_log(span, ev->stage_us, "audit/objectDiff", diff);
  return "informer";
}

/* Diffs body against the previous version; returns the outcome label.
 * The previous version leaves the cache: the caller puts the new one back
 * (kt_decorator_remember) once the event is sent. */
static const char *diff_update(struct kt_decorator *d,
                               struct kt_audit_event *ev, const char *objkey,
                               cJSON *body, struct kt_span *span)
{
  char oldrv[64];
  cJSON *old = NULL;
  const char *newrv = rv_of(body);
  kt_span_add_tag(span, "newResourceVersion", newrv);
  if (ev->rv && *ev->rv && strcmp(ev->rv, newrv) == 0) {
    kt_span_add_log(span, ev->stage_us, "realVerbose", "No-op update");
    return "noop_update";
  }
  cJSON *patch = d->pc && *newrv ? informer_patch(d, ev, objkey, newrv, 0) : NULL;
  if (patch) {
    const char *outcome = apply_patch(ev, patch, span);
    cJSON_Delete(patch);
    return outcome;
  }
  if (kt_diffcache_take(d->dc, objkey, &old, oldrv, sizeof oldrv)) {
    kt_span_add_log(span, ev->stage_us, "kelemetryError",
                    "No previous version of this object is known: no diff");
    return "miss";
  }
  if (strcmp(oldrv, newrv) == 0) {
    free(old); /* compact */
    kt_span_add_log(span, ev->stage_us, "realVerbose", "No-op update");
    return "same_rv";
  }
  struct kt_diff_list l;
  kt_diff_list_init(&l, 0);
  kt_diff_compare(old, body, &l);
  if (l.n) { /* the entries point into old */
    char *text = kt_diff_render(&l);
    if (text)
      kt_span_add_log_owned(span, ev->stage_us, "audit/objectDiff", text);
  }
  kt_diff_list_free(&l);
  free(old);
  return "hit";
}

/* A scale subresource answers with a Scale; carry its replicas into the
 * cached object so the request that changed them shows the change and the
 * controller's next update does not. */
static const char *apply_scale(struct kt_decorator *d,
                               struct kt_audit_event *ev, const char *objkey,
                               struct kt_span *span)
{
  const cJSON *nr = kt_json_path(ev->response_object, "spec.replicas");
  char oldrv[64], line[128];
  cJSON *old = NULL;
  if (!cJSON_IsNumber(nr) ||
      kt_diffcache_take(d->dc, objkey, &old, oldrv, sizeof oldrv))
    return "subresource";
  cJSON *copy = cJSON_Duplicate(old, 1); /* old is compact */
  free(old);
  cJSON *or = kt_json_path(copy, "spec.replicas");
  if (cJSON_IsNumber(or) && or->valuedouble != nr->valuedouble) {
    snprintf(line, sizeof line, "spec.replicas %.17g -> %.17g\n",
             or->valuedouble, nr->valuedouble);
    kt_span_add_log(span, ev->stage_us, "audit/objectDiff", line);
    cJSON_SetNumberValue(or, nr->valuedouble);
  }
  if (copy)
    kt_diffcache_put(d->dc, objkey, oldrv, copy);
  return "scale";
}

/* An update without the object in its answer: only the watch can tell
 * what changed. NULL when there is no patch (the caller falls back). */
static const char *bodyless_update(struct kt_decorator *d,
                                   const struct kt_audit_event *ev,
                                   const char *objkey, struct kt_span *span)
{
  const char *newrv = kt_json_str(kt_json_path(ev->response_object, "metadata"),
                                  "resourceVersion");
  if (!d->pc || !newrv || !*newrv)
    return NULL;
  kt_span_add_tag(span, "newResourceVersion", newrv);
  cJSON *patch = informer_patch(d, ev, objkey, newrv, 1);
  const char *outcome = patch ? apply_patch(ev, patch, span) : NULL;
  cJSON_Delete(patch);
  return outcome;
}

static void add_snapshot(struct kt_span *span, int64_t ts, const cJSON *body)
{
  char *text = cJSON_PrintUnformatted(body);
  if (text)
    kt_span_add_log_owned(span, ts, "audit/objectSnapshot", text);
}

static const char *snapshot_delete(struct kt_decorator *d,
                                   struct kt_audit_event *ev,
                                   const char *objkey, cJSON *body,
                                   struct kt_span *span)
{
  char rv[64];
  cJSON *last = NULL;
  if (body) {
    add_snapshot(span, ev->stage_us, body);
    return "hit";
  }
  if (d->pc) { /* the diff controller's last state of the object */
    char *text = kt_patchcache_get(d->pc, objkey, "deletion");
    cJSON *snap = text ? cJSON_Parse(text) : NULL;
    const cJSON *value = cJSON_GetObjectItem(snap, "value");
    free(text);
    if (cJSON_IsObject(value))
      add_snapshot(span, ev->stage_us, value);
    cJSON_Delete(snap);
    if (value)
      return "informer";
  }
  if (kt_diffcache_get(d->dc, objkey, &last, rv, sizeof rv))
    return "miss";
  add_snapshot(span, ev->stage_us, last);
  cJSON_Delete(last);
  return "hit";
}

static int is_update(const struct kt_audit_event *ev)
{
  return !strcmp(ev->verb, "update") || !strcmp(ev->verb, "patch");
}

void kt_decorator_prefetch(struct kt_decorator *d,
                           const struct kt_audit_event *ev, const char *objkey)
{
  if (d->dc && ev->code < 300 && is_update(ev))
    kt_diffcache_prefetch(d->dc, objkey);
}

void kt_decorator_remember(struct kt_decorator *d, struct kt_audit_event *ev,
                           const char *objkey)
{
  cJSON *body = kt_decorator_body(ev);
  if (!body)
    return;
  char rv[64];
  snprintf(rv, sizeof rv, "%s", rv_of(body));
  cJSON_DetachItemViaPointer(ev->json, body);
  ev->response_object = NULL;
  kt_diffcache_put(d->dc, objkey, rv, body);
}

int kt_decorator_apply(struct kt_decorator *d, struct kt_audit_event *ev,
                       const char *objkey, struct kt_span *span, int *remember)
{
  *remember = 0;
  const char *outcome = "unsupported_verb";
  if (ev->code >= 300) {
    add_error_logs(ev, span);
    kt_metric_inc(d->m_outcome, (const char *const[]){ev->verb, "failed_request"});
    return 0;
  }
  cJSON *body = kt_decorator_body(ev);
  if (body)
    kt_decorator_sanitize(body, ev->api_group, ev->resource);
  int sub = ev->subresource && *ev->subresource;
  int redacted = body && is_redacted(d, ev, body);
  int upd = is_update(ev);
  if (redacted) {
    kt_span_add_log(span, ev->stage_us, "kelemetryError",
                    "Sensitive object content has been redacted");
    outcome = "redacted";
  } else if (upd && body) {
    outcome = diff_update(d, ev, objkey, body, span);
  } else if (upd && (outcome = bodyless_update(d, ev, objkey, span))) {
    /* the informer's patch */
  } else if (upd && sub && strcmp(ev->subresource, "scale") == 0) {
    outcome = apply_scale(d, ev, objkey, span);
  } else if (!strcmp(ev->verb, "create") && !sub && body) {
    add_snapshot(span, ev->stage_us, body);
    outcome = "snapshot";
  } else if (!strcmp(ev->verb, "delete") && !sub) {
    outcome = snapshot_delete(d, ev, objkey, body, span);
  } else if (sub) {
    outcome = "subresource";
  }
  *remember = body && !redacted;
  kt_metric_inc(d->m_outcome, (const char *const[]){ev->verb, outcome});
  return 0;
}
