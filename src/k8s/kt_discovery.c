/* kt_discovery: see the header. */
#include "k8s/kt_discovery.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/kt_grow.h"
#include "core/kt_log.h"
#include "core/kt_metrics.h"
#include "core/kt_time.h"

static int has_verb(const cJSON *verbs, const char *v)
{
  const cJSON *it;
  cJSON_ArrayForEach(it, verbs) if (cJSON_IsString(it) && !strcmp(it->valuestring, v)) return 1;
  return 0;
}

static int add_group_version(struct kt_kube *k, struct kt_discovery *d,
                             size_t *cap, const char *group,
                             const char *version)
{
  char path[512], err[512];
  int status;
  snprintf(path, sizeof path, *group ? "/apis/%s/%s" : "/api/%s%s",
           *group ? group : version, *group ? version : "");
  cJSON *list = kt_kube_get_json(k, path, &status, err, sizeof err);
  if (!list) {
    kt_warn("discovery %s: %s", kt_kube_cluster(k), err);
    return 0;
  }
  const cJSON *it;
  cJSON_ArrayForEach(it, cJSON_GetObjectItem(list, "resources")) {
    const cJSON *name = cJSON_GetObjectItem(it, "name"), *kind = cJSON_GetObjectItem(it, "kind");
    if (!cJSON_IsString(name) || strchr(name->valuestring, '/') || !cJSON_IsString(kind))
      continue;
    if (KT_GROW(d->v, *cap, d->n)) {
      cJSON_Delete(list);
      return -ENOMEM;
    }
    struct kt_gvr *g = &d->v[d->n++];
    memset(g, 0, sizeof *g);
    snprintf(g->group, sizeof g->group, "%s", group);
    snprintf(g->version, sizeof g->version, "%s", version);
    snprintf(g->resource, sizeof g->resource, "%s", name->valuestring);
    snprintf(g->kind, sizeof g->kind, "%s", kind->valuestring);
    g->namespaced = cJSON_IsTrue(cJSON_GetObjectItem(it, "namespaced"));
    const cJSON *verbs = cJSON_GetObjectItem(it, "verbs");
    g->list_watch = has_verb(verbs, "list") && has_verb(verbs, "watch");
  }
  cJSON_Delete(list);
  return 0;
}

static struct kt_defer m_resync; /* discovery_resync (§3.2) */
static pthread_once_t m_once = PTHREAD_ONCE_INIT;

static void register_metrics(void)
{
  kt_defer_register(&m_resync, "discovery_resync", "Discovery loads, by cluster",
                    (const char *const[]){"cluster", NULL});
}

int kt_discovery_load(struct kt_kube *k, struct kt_discovery *d, char *err,
                      size_t errlen)
{
  memset(d, 0, sizeof *d);
  size_t cap = 0;
  int status, rc = 0;
  int64_t t0 = kt_mono_us();
  pthread_once(&m_once, register_metrics);
  cJSON *core = kt_kube_get_json(k, "/api", &status, err, errlen);
  if (!core) {
    kt_defer_done(&m_resync, (const char *const[]){kt_kube_cluster(k)}, t0);
    return status < 0 ? status : -EIO;
  }
  const cJSON *it;
  /* The core group's first version is its preferred one. */
  const cJSON *v0 = cJSON_GetArrayItem(cJSON_GetObjectItem(core, "versions"), 0);
  if (cJSON_IsString(v0))
    rc = add_group_version(k, d, &cap, "", v0->valuestring);
  cJSON_Delete(core);
  cJSON *groups = rc ? NULL : kt_kube_get_json(k, "/apis", &status, err, errlen);
  if (!rc && !groups)
    rc = status < 0 ? status : -EIO;
  cJSON_ArrayForEach(it, cJSON_GetObjectItem(groups, "groups")) {
    const cJSON *name = cJSON_GetObjectItem(it, "name");
    const cJSON *pv = cJSON_GetObjectItem(cJSON_GetObjectItem(it, "preferredVersion"), "version");
    if (!pv)
      pv = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(it, "versions"), 0), "version");
    if (cJSON_IsString(name) && cJSON_IsString(pv) &&
        (rc = add_group_version(k, d, &cap, name->valuestring, pv->valuestring)))
      break;
  }
  cJSON_Delete(groups);
  if (rc)
    kt_discovery_free(d);
  kt_defer_done(&m_resync, (const char *const[]){kt_kube_cluster(k)}, t0);
  return rc;
}

void kt_discovery_free(struct kt_discovery *d)
{
  free(d->v);
  memset(d, 0, sizeof *d);
}

const struct kt_gvr *kt_discovery_find(const struct kt_discovery *d,
                                       const char *group,
                                       const char *resource)
{
  for (size_t i = 0; i < d->n; i++)
    if (!strcmp(d->v[i].group, group ? group : "") && !strcmp(d->v[i].resource, resource))
      return &d->v[i];
  return NULL;
}

const struct kt_gvr *kt_discovery_by_kind(const struct kt_discovery *d,
                                          const char *api_version,
                                          const char *kind)
{
  const char *slash = api_version ? strchr(api_version, '/') : NULL;
  size_t gl = slash ? (size_t)(slash - api_version) : 0;
  for (size_t i = 0; i < d->n; i++)
    if (!strcmp(d->v[i].kind, kind) && strlen(d->v[i].group) == gl &&
        !strncmp(d->v[i].group, api_version ? api_version : "", gl))
      return &d->v[i];
  return NULL;
}

void kt_gvr_path(const struct kt_gvr *g, char *buf, size_t len)
{
  if (*g->group)
    snprintf(buf, len, "/apis/%s/%s/%s", g->group, g->version, g->resource);
  else
    snprintf(buf, len, "/api/%s/%s", g->version, g->resource);
}
