/* kt_eventctl: see the header. The reflector's thread turns each new or
 * changed Event into a span; a checkpoint thread writes the newest handled
 * time into the ConfigMap (read-modify-write on resourceVersion, re-read on
 * conflict). */
#include "informer/kt_eventctl.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aggregator/kt_aggregator.h"
#include "audit/kt_audit.h"
#include "audit/kt_filter.h"
#include "core/kt_log.h"
#include "core/kt_map.h"
#include "core/kt_metrics.h"
#include "core/kt_time.h"
#include "k8s/kt_discovery.h"
#include "k8s/kt_reflector.h"
#include "store/kt_span.h"

struct kt_eventctl {
  struct kt_kube *kube;
  struct kt_aggregator *agg;
  char *cluster, *cm_ns, *cm_name, *exclude;
  int64_t sync_us, max_age_us;
  int64_t last_event_us; /* checkpoint read at start */
  pthread_mutex_t mu;    /* guards the fields below */
  int64_t newest_us;     /* newest handled event time */
  int pending;
  struct kt_discovery disc;
  int64_t disc_at;
  struct kt_metric *m_events;
  struct kt_defer m_handle; /* event_handle (§3.2) */
  struct kt_reflector *r;
  pthread_t thread;
  volatile int stop;
};

static void cm_path(const struct kt_eventctl *c, char *buf, size_t len)
{
  snprintf(buf, len, "/api/v1/namespaces/%s/configmaps/%s", c->cm_ns, c->cm_name);
}

/* RFC 3339 with whole seconds, as the original writes it. */
static void format_seconds(int64_t us, char *buf, size_t len)
{
  char full[40];
  kt_time_format(us, full, sizeof full);
  char *dot = strchr(full, '.');
  if (dot)
    snprintf(dot, sizeof full - (size_t)(dot - full), "Z");
  snprintf(buf, len, "%s", full);
}

/* Reads the checkpoint, creating the ConfigMap with now when absent. */
static int64_t read_checkpoint(struct kt_eventctl *c)
{
  char path[512], err[512], now[40];
  int status;
  /* Whole seconds: legacy Events carry second-precision times. */
  int64_t t = kt_now_us() / 1000000 * 1000000;
  cm_path(c, path, sizeof path);
  cJSON *cm = kt_kube_get_json(c->kube, path, &status, err, sizeof err);
  const char *ts = kt_json_str(cJSON_GetObjectItem(cm, "data"), "timestamp");
  if (ts && kt_time_parse(ts, &t))
    t = kt_now_us() / 1000000 * 1000000; /* invalid: start from now */
  cJSON_Delete(cm);
  if (status == 404) {
    format_seconds(t, now, sizeof now);
    char body[1024], *out = NULL;
    snprintf(body, sizeof body,
             "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"%s\","
             "\"namespace\":\"%s\"},\"data\":{\"timestamp\":\"%s\"}}",
             c->cm_name, c->cm_ns, now);
    snprintf(path, sizeof path, "/api/v1/namespaces/%s/configmaps", c->cm_ns);
    kt_kube_request(c->kube, "POST", path, "application/json", body, &out, err, sizeof err);
    free(out);
  }
  return t;
}

/* Writes data.timestamp = max(stored, newest); retried once on conflict. */
static void write_checkpoint(struct kt_eventctl *c)
{
  pthread_mutex_lock(&c->mu);
  int64_t newest = c->newest_us;
  int pending = c->pending;
  c->pending = 0;
  pthread_mutex_unlock(&c->mu);
  if (!pending)
    return;
  char path[512], err[512], ts[40], upd[40];
  cm_path(c, path, sizeof path);
  for (int attempt = 0; attempt < 3; attempt++) {
    int status;
    cJSON *cm = kt_kube_get_json(c->kube, path, &status, err, sizeof err);
    if (!cm)
      break;
    cJSON *data = cJSON_GetObjectItem(cm, "data");
    if (!cJSON_IsObject(data))
      data = cJSON_AddObjectToObject(cm, "data");
    int64_t stored = 0;
    const char *cur = kt_json_str(data, "timestamp");
    if (cur)
      kt_time_parse(cur, &stored);
    format_seconds(newest > stored ? newest : stored, ts, sizeof ts);
    format_seconds(kt_now_us(), upd, sizeof upd);
    cJSON_DeleteItemFromObject(data, "timestamp");
    cJSON_DeleteItemFromObject(data, "lastUpdated");
    cJSON_AddStringToObject(data, "timestamp", ts);
    cJSON_AddStringToObject(data, "lastUpdated", upd);
    char *body = cJSON_PrintUnformatted(cm), *out = NULL;
    cJSON_Delete(cm);
    status = kt_kube_request(c->kube, "PUT", path, "application/json", body, &out, err, sizeof err);
    free(body);
    free(out);
    if (status != 409)
      break;
  }
}

static void *checkpointer(void *p)
{
  struct kt_eventctl *c = p;
  while (!c->stop) {
    for (int64_t t = 0; t < c->sync_us && !c->stop; t += 100000)
      usleep(100000);
    write_checkpoint(c);
  }
  return NULL;
}

static void count(struct kt_eventctl *c, const char *why)
{
  kt_metric_inc(c->m_events, (const char *const[]){c->cluster, why});
}

/* The involved object's resource, reloading discovery on a miss at most
 * every 30 s. Copies into out; 0 or -ENOENT. */
static int resolve(struct kt_eventctl *c, const char *api_version,
                   const char *kind, struct kt_gvr *out)
{
  pthread_mutex_lock(&c->mu);
  const struct kt_gvr *g = kt_discovery_by_kind(&c->disc, api_version, kind);
  if (!g && kt_mono_us() - c->disc_at > 30000000) {
    struct kt_discovery d;
    char err[512];
    if (kt_discovery_load(c->kube, &d, err, sizeof err) == 0) {
      kt_discovery_free(&c->disc);
      c->disc = d;
    }
    c->disc_at = kt_mono_us();
    g = kt_discovery_by_kind(&c->disc, api_version, kind);
  }
  if (g)
    *out = *g;
  pthread_mutex_unlock(&c->mu);
  return g ? 0 : -ENOENT;
}

static int64_t event_time(const cJSON *ev)
{
  int64_t t = 0;
  /* core/v1 first; events.k8s.io/v1 names its legacy fields deprecated*. */
  const char *fields[] = {"eventTime", "lastTimestamp", "deprecatedLastTimestamp"};
  for (size_t i = 0; i < sizeof fields / sizeof *fields; i++) {
    const char *v = kt_json_str(ev, fields[i]);
    if (v && !kt_time_parse(v, &t) && t > 0)
      return t;
  }
  return 0;
}

/* Returns the original's error label (event_handle, §3.2); *res gets the
 * involved object's resource when resolved. */
static const char *handle(struct kt_eventctl *c, const cJSON *ev, struct kt_gvr *g)
{
  int64_t t = event_time(ev);
  if (!t) {
    count(c, "no_time");
    return "InferTimestamp";
  }
  if (t < c->last_event_us) {
    count(c, "before_restart");
    return "BeforeRestart";
  }
  if (kt_now_us() - t > c->max_age_us) {
    count(c, "too_old");
    return "EventTooOld";
  }
  const cJSON *io = cJSON_GetObjectItem(ev, "involvedObject");
  if (!io)
    io = cJSON_GetObjectItem(ev, "regarding");
  const char *api = kt_json_str(io, "apiVersion"), *kind = kt_json_str(io, "kind");
  if (!kind || resolve(c, api, kind, g)) {
    count(c, "unknown_kind");
    return "UnknownGVK";
  }
  if (kt_filter_type_listed(c->exclude, g->group, g->resource)) {
    count(c, "filtered");
    return "Filtered";
  }
  const char *reason = kt_json_str(ev, "reason");
  struct kt_span *s = kt_span_new("event", reason ? reason : "Event");
  if (!s) {
    count(c, "failed");
    return "SendTrace";
  }
  s->start_us = t;
  s->end_us = t + 1000000;
  /* Legacy recorders fill source; new ones only the reporting controller. */
  const char *component = kt_json_str(cJSON_GetObjectItem(ev, "source"), "component");
  if (!component || !*component)
    component = kt_json_str(cJSON_GetObjectItem(ev, "deprecatedSource"), "component");
  if (!component || !*component)
    component = kt_json_str(ev, "reportingComponent");
  if (!component || !*component)
    component = kt_json_str(ev, "reportingController");
  kt_span_add_tag(s, "source", component ? component : "");
  kt_span_add_tag(s, "action", kt_json_str(ev, "action") ? kt_json_str(ev, "action") : "");
  const char *msg = kt_json_str(ev, "message");
  if (!msg)
    msg = kt_json_str(ev, "note");
  kt_span_add_log(s, t, "event/message", msg ? msg : "");
  /* Stable id: the same Event version is stored once across restarts. */
  const cJSON *md = cJSON_GetObjectItem(ev, "metadata");
  char idsrc[512];
  snprintf(idsrc, sizeof idsrc, "event:%s/%s/%s", c->cluster,
           kt_json_str(md, "uid") ? kt_json_str(md, "uid") : "",
           kt_json_str(md, "resourceVersion") ? kt_json_str(md, "resourceVersion") : "");
  s->span_id = kt_hash(idsrc, strlen(idsrc)) | 1;
  struct kt_object obj = {c->cluster, g->group, g->version, g->resource,
                          kt_json_str(io, "namespace") ? kt_json_str(io, "namespace") : "",
                          kt_json_str(io, "name") ? kt_json_str(io, "name") : "",
                          kt_json_str(io, "uid"), NULL,
                          /* a previous leader may have died before storing
                           * the pseudo spans it put in a shared span cache */
                          1};
  if (kt_aggregator_has_event(c->agg, &obj, t, s->span_id)) {
    kt_span_free(s);
    return "AlreadyTraced";
  }
  if (kt_aggregator_send(c->agg, &obj, s)) {
    count(c, "failed");
    return "SendTrace";
  }
  pthread_mutex_lock(&c->mu);
  if (t > c->newest_us)
    c->newest_us = t;
  c->pending = 1;
  pthread_mutex_unlock(&c->mu);
  kt_metric_inc(c->m_events, (const char *const[]){c->cluster, "traced"});
  return "<nil>";
}

static void change(void *ud, enum kt_change type, const cJSON *old,
                   const cJSON *obj, int initial)
{
  struct kt_eventctl *c = ud;
  if (type == KT_DELETED)
    return;
  int64_t t0 = kt_mono_us();
  struct kt_gvr g;
  memset(&g, 0, sizeof g);
  const char *err = handle(c, obj, &g);
  const cJSON *io = cJSON_GetObjectItem(obj, "involvedObject");
  if (!io)
    io = cJSON_GetObjectItem(obj, "regarding");
  const char *api = kt_json_str(io, "apiVersion"), *slash = api ? strchr(api, '/') : NULL;
  char group[128];
  snprintf(group, sizeof group, "%.*s", slash ? (int)(slash - api) : 0, api ? api : "");
  const char *et = kt_json_str(obj, "eventTime");
  kt_defer_done(&c->m_handle, (const char *const[]){
      group, slash ? slash + 1 : api ? api : "", kt_json_str(io, "kind") ? kt_json_str(io, "kind") : "",
      g.resource, et ? "eventTime" : "lastTimestamp", err}, t0);
}

struct kt_eventctl *kt_eventctl_start(struct kt_kube *kube,
                                      struct kt_aggregator *agg,
                                      const struct kt_eventctl_opts *o)
{
  struct kt_eventctl *c = calloc(1, sizeof *c);
  if (!c)
    return NULL;
  c->kube = kube;
  c->agg = agg;
  c->cluster = strdup(o->cluster ? o->cluster : "");
  c->cm_ns = strdup(o->configmap_namespace && *o->configmap_namespace ? o->configmap_namespace : "default");
  c->cm_name = strdup(o->configmap_name && *o->configmap_name ? o->configmap_name : "kelemetry-event-controller");
  c->exclude = strdup(o->exclude_types ? o->exclude_types : "");
  c->sync_us = o->sync_interval_us > 0 ? o->sync_interval_us : 5000000;
  c->max_age_us = o->max_age_us > 0 ? o->max_age_us : 300000000LL;
  pthread_mutex_init(&c->mu, NULL);
  c->m_events = kt_metrics_counter(kt_metrics_default(), "event_controller_events_total",
      "Kubernetes Events seen by the event controller, by cluster and outcome",
      (const char *const[]){"cluster", "outcome", NULL});
  kt_defer_register(&c->m_handle, "event_handle", "Kubernetes Events handled, by kind and error",
      (const char *const[]){"group", "version", "kind", "resource", "timestampType", "error", NULL});
  c->last_event_us = read_checkpoint(c);
  /* core/v1 Events, or events.k8s.io/v1 where that is all there is. */
  char err[512];
  const char *path = "/api/v1/events";
  if (kt_discovery_load(kube, &c->disc, err, sizeof err) == 0) {
    c->disc_at = kt_mono_us();
    if (!kt_discovery_find(&c->disc, "", "events") &&
        kt_discovery_find(&c->disc, "events.k8s.io", "events"))
      path = "/apis/events.k8s.io/v1/events";
  }
  kt_info("event controller %s: watching %s", c->cluster, path);
  struct kt_reflector_opts ro = {.path = path};
  struct kt_reflector_ops ops = {NULL, change};
  if (!(c->r = kt_reflector_start(kube, &ro, &ops, c)) ||
      pthread_create(&c->thread, NULL, checkpointer, c)) {
    c->stop = 1;
    kt_reflector_stop(c->r);
    c->r = NULL;
    kt_eventctl_stop(c);
    return NULL;
  }
  return c;
}

void kt_eventctl_stop(struct kt_eventctl *c)
{
  if (!c)
    return;
  c->stop = 1;
  kt_reflector_stop(c->r);
  if (c->thread)
    pthread_join(c->thread, NULL);
  write_checkpoint(c);
  kt_discovery_free(&c->disc);
  pthread_mutex_destroy(&c->mu);
  free(c->cluster);
  free(c->cm_ns);
  free(c->cm_name);
  free(c->exclude);
  free(c);
}
