/* kt_kinds: see the header. */
#include "aggregator/kt_kinds.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/kt_map.h"

static const char *builtin[][3] = {
    {"apps", "Deployment", "deployments"},
    {"apps", "ReplicaSet", "replicasets"},
    {"apps", "StatefulSet", "statefulsets"},
    {"apps", "DaemonSet", "daemonsets"},
    {"apps", "ControllerRevision", "controllerrevisions"},
    {"batch", "Job", "jobs"},
    {"batch", "CronJob", "cronjobs"},
    {"", "Pod", "pods"},
    {"", "Node", "nodes"},
    {"", "Service", "services"},
    {"", "Endpoints", "endpoints"},
    {"", "ConfigMap", "configmaps"},
    {"", "Secret", "secrets"},
    {"", "Namespace", "namespaces"},
    {"", "ReplicationController", "replicationcontrollers"},
    {"", "PersistentVolumeClaim", "persistentvolumeclaims"},
    {"", "PersistentVolume", "persistentvolumes"},
    {"", "ServiceAccount", "serviceaccounts"},
    {"discovery.k8s.io", "EndpointSlice", "endpointslices"},
    {"networking.k8s.io", "Ingress", "ingresses"},
    {"policy", "PodDisruptionBudget", "poddisruptionbudgets"},
    {"autoscaling", "HorizontalPodAutoscaler", "horizontalpodautoscalers"},
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct kt_map learnt;

void kt_kinds_group(const char *api_version, char *out, size_t outlen)
{
  const char *slash = api_version ? strchr(api_version, '/') : NULL;
  size_t n = slash ? (size_t)(slash - api_version) : 0;
  if (n >= outlen)
    n = outlen - 1;
  memcpy(out, api_version ? api_version : "", n);
  out[n] = 0;
}

void kt_kinds_learn(const char *group, const char *kind, const char *resource)
{
  char key[256];
  if (!kind || !resource || strchr(resource, '/'))
    return;
  snprintf(key, sizeof key, "%s/%s", group ? group : "", kind);
  pthread_mutex_lock(&mu);
  const char *have = kt_map_get(&learnt, key);
  if (!have || strcmp(have, resource) != 0) {
    char *r = strdup(resource);
    void *old = NULL;
    if (r && kt_map_put(&learnt, key, r, &old) == 0)
      free(old);
    else
      free(r);
  }
  pthread_mutex_unlock(&mu);
}

/* English plural of a lower-cased kind, as Kubernetes' defaulting does. */
static void guess_plural(const char *kind, char *out, size_t outlen)
{
  size_t n = strlen(kind);
  char low[200];
  if (n >= sizeof low - 3)
    n = sizeof low - 4;
  for (size_t i = 0; i < n; i++)
    low[i] = (char)tolower((unsigned char)kind[i]);
  low[n] = 0;
  if (n && low[n - 1] == 'y' && n > 1 && !strchr("aeiou", low[n - 2]))
    snprintf(out, outlen, "%.*sies", (int)(n - 1), low);
  else if (n && (low[n - 1] == 's' || low[n - 1] == 'x'))
    snprintf(out, outlen, "%ses", low);
  else
    snprintf(out, outlen, "%ss", low);
}

int kt_kinds_resource(const char *api_version, const char *kind, char *out,
                      size_t outlen)
{
  char group[128], key[256];
  if (!kind || !*kind)
    return -ENOENT;
  kt_kinds_group(api_version, group, sizeof group);
  snprintf(key, sizeof key, "%s/%s", group, kind);
  pthread_mutex_lock(&mu);
  const char *r = kt_map_get(&learnt, key);
  if (r) {
    snprintf(out, outlen, "%s", r);
    pthread_mutex_unlock(&mu);
    return 0;
  }
  pthread_mutex_unlock(&mu);
  for (size_t i = 0; i < sizeof builtin / sizeof builtin[0]; i++) {
    if (strcmp(builtin[i][0], group) == 0 && strcmp(builtin[i][1], kind) == 0) {
      snprintf(out, outlen, "%s", builtin[i][2]);
      return 0;
    }
  }
  guess_plural(kind, out, outlen);
  return 0;
}
