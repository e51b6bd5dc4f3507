/* kt_livefilter: see the header. */
#include "informer/kt_livefilter.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit/kt_audit.h"
#include "audit/kt_filter.h"
#include "core/kt_log.h"
#include "core/kt_time.h"
#include "k8s/kt_kube.h"
#include "k8s/kt_reflector.h"

#define CM_NS "default"
#define CM_NAME "kelemetry-filter-config"

struct kt_livefilter {
  struct kt_kube *kube;
  struct kt_filter *filter;
  struct kt_reflector *r;
};

/* A Warning Event on the ConfigMap, as the original emits. */
static void warn_event(struct kt_livefilter *lf, const cJSON *cm, const char *msg)
{
  const cJSON *md = cJSON_GetObjectItem(cm, "metadata");
  char now[40], err[256], *out = NULL;
  kt_time_format(kt_now_us(), now, sizeof now);
  char *dot = strchr(now, '.');
  if (dot)
    snprintf(dot, sizeof now - (size_t)(dot - now), "Z");
  cJSON *ev = cJSON_CreateObject();
  cJSON_AddStringToObject(ev, "apiVersion", "v1");
  cJSON_AddStringToObject(ev, "kind", "Event");
  cJSON *m = cJSON_AddObjectToObject(ev, "metadata");
  cJSON_AddStringToObject(m, "generateName", CM_NAME ".");
  cJSON_AddStringToObject(m, "namespace", CM_NS);
  cJSON *io = cJSON_AddObjectToObject(ev, "involvedObject");
  cJSON_AddStringToObject(io, "apiVersion", "v1");
  cJSON_AddStringToObject(io, "kind", "ConfigMap");
  cJSON_AddStringToObject(io, "namespace", CM_NS);
  cJSON_AddStringToObject(io, "name", CM_NAME);
  if (kt_json_str(md, "uid"))
    cJSON_AddStringToObject(io, "uid", kt_json_str(md, "uid"));
  cJSON_AddStringToObject(ev, "reason", "InvalidConfig");
  cJSON_AddStringToObject(ev, "message", msg);
  cJSON_AddStringToObject(ev, "type", "Warning");
  cJSON_AddStringToObject(cJSON_AddObjectToObject(ev, "source"), "component", "kelemetry");
  cJSON_AddStringToObject(ev, "firstTimestamp", now);
  cJSON_AddStringToObject(ev, "lastTimestamp", now);
  cJSON_AddNumberToObject(ev, "count", 1);
  char *body = cJSON_PrintUnformatted(ev);
  cJSON_Delete(ev);
  kt_kube_request(lf->kube, "POST", "/api/v1/namespaces/" CM_NS "/events",
                  "application/json", body, &out, err, sizeof err);
  free(body);
  free(out);
}

static void change(void *ud, enum kt_change type, const cJSON *old,
                   const cJSON *obj, int initial)
{
  struct kt_livefilter *lf = ud;
  const char *re = obj ? kt_json_str(cJSON_GetObjectItem(obj, "data"), "exclude-regex") : NULL;
  char err[512];
  if (kt_filter_set_live(lf->filter, re, err, sizeof err)) {
    kt_warn("filter config %s/%s: %s (live filter cleared)", CM_NS, CM_NAME, err);
    warn_event(lf, obj, err);
  } else {
    kt_info("filter config %s/%s: exclude-regex %s", CM_NS, CM_NAME,
            re && *re ? re : "(none)");
  }
}

struct kt_livefilter *kt_livefilter_start(struct kt_kube *kube,
                                          struct kt_filter *filter)
{
  struct kt_livefilter *lf = calloc(1, sizeof *lf);
  if (!lf)
    return NULL;
  lf->kube = kube;
  lf->filter = filter;
  struct kt_reflector_opts ro = {
      .path = "/api/v1/namespaces/" CM_NS "/configmaps?fieldSelector=metadata.name%3D" CM_NAME};
  struct kt_reflector_ops ops = {NULL, change};
  if (!(lf->r = kt_reflector_start(kube, &ro, &ops, lf))) {
    free(lf);
    return NULL;
  }
  return lf;
}

void kt_livefilter_stop(struct kt_livefilter *lf)
{
  if (!lf)
    return;
  kt_reflector_stop(lf->r);
  free(lf);
}
