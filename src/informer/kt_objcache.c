/* kt_objcache: see the header. Entries hold compact JSON text; a fetch in
 * progress is an entry without text that others wait on. */
#include "informer/kt_objcache.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aggregator/kt_aggregator.h"
#include "core/kt_log.h"
#include "core/kt_map.h"
#include "core/kt_metrics.h"
#include "core/kt_time.h"
#include "diff/kt_patchcache.h"
#include "k8s/kt_kube.h"

struct entry {
  char *text;      /* NULL while fetching, or for a known absence */
  int fetching;
  int64_t expires_us;
  size_t bytes;
};

struct kt_objcache {
  struct kt_kube *(*client_for)(void *ud, const char *cluster);
  void *ud;
  struct kt_patchcache *pc;
  size_t max_bytes, bytes;
  int64_t ttl_us;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  struct kt_map map;
  struct kt_metric *m;
};

struct kt_objcache *kt_objcache_new(struct kt_kube *(*client_for)(void *ud,
                                                                  const char *cluster),
                                    void *ud, struct kt_patchcache *pc,
                                    size_t max_bytes, int64_t ttl_us)
{
  struct kt_objcache *oc = calloc(1, sizeof *oc);
  if (!oc)
    return NULL;
  oc->client_for = client_for;
  oc->ud = ud;
  oc->pc = pc;
  oc->max_bytes = max_bytes ? max_bytes : 64u << 20;
  oc->ttl_us = ttl_us ? ttl_us : 5000000;
  pthread_mutex_init(&oc->mu, NULL);
  pthread_cond_init(&oc->cv, NULL);
  kt_map_init(&oc->map);
  oc->m = kt_metrics_counter(kt_metrics_default(), "object_cache_lookups_total",
      "Object cache lookups by outcome (hit, fetched, snapshot, missing, error)",
      (const char *const[]){"outcome", NULL});
  return oc;
}

static void entry_free(void *p)
{
  struct entry *e = p;
  if (e)
    free(e->text);
  free(e);
}

void kt_objcache_free(struct kt_objcache *oc)
{
  if (!oc)
    return;
  kt_map_clear(&oc->map, entry_free);
  pthread_cond_destroy(&oc->cv);
  pthread_mutex_destroy(&oc->mu);
  free(oc);
}

static int expired(const char *key, void *value, void *ud)
{
  struct kt_objcache *oc = ud;
  struct entry *e = value;
  if (e->fetching || e->expires_us > kt_now_us())
    return 0;
  oc->bytes -= e->bytes;
  entry_free(e);
  return 1;
}

/* GET with resourceVersion=0; on 404 the deletion snapshot. */
static char *fetch(struct kt_objcache *oc, struct kt_kube *kube,
                   const struct kt_object *o, const char *key,
                   const char **outcome)
{
  char path[2048], err[512], *body = NULL;
  const char *v = o->version && *o->version ? o->version : "v1";
  int n = *o->group ? snprintf(path, sizeof path, "/apis/%s/%s", o->group, v)
                    : snprintf(path, sizeof path, "/api/%s", v);
  if (o->namespace && *o->namespace)
    n += snprintf(path + n, sizeof path - (size_t)n, "/namespaces/%s", o->namespace);
  snprintf(path + n, sizeof path - (size_t)n, "/%s/%s?resourceVersion=0", o->resource, o->name);
  int st = kt_kube_request(kube, "GET", path, NULL, NULL, &body, err, sizeof err);
  if (st >= 200 && st < 300) {
    *outcome = "fetched";
    return body;
  }
  free(body);
  if (st == 404 && oc->pc) {
    char *snap = kt_patchcache_get(oc->pc, key, "deletion");
    cJSON *j = snap ? cJSON_Parse(snap) : NULL;
    char *text = cJSON_IsObject(cJSON_GetObjectItem(j, "value"))
                     ? cJSON_PrintUnformatted(cJSON_GetObjectItem(j, "value")) : NULL;
    cJSON_Delete(j);
    free(snap);
    *outcome = text ? "snapshot" : "missing";
    return text;
  }
  *outcome = st == 404 ? "missing" : "error";
  if (st != 404)
    kt_debug("object cache: %s", err);
  return NULL;
}

cJSON *kt_objcache_get(struct kt_objcache *oc, const struct kt_object *o)
{
  struct kt_kube *kube = o->name && *o->name ? oc->client_for(oc->ud, o->cluster) : NULL;
  if (!kube)
    return NULL;
  char key[1024];
  kt_object_key(o, key, sizeof key);
  pthread_mutex_lock(&oc->mu);
  struct entry *e;
  while ((e = kt_map_get(&oc->map, key)) && e->fetching)
    pthread_cond_wait(&oc->cv, &oc->mu);
  if (e && e->expires_us > kt_now_us()) {
    cJSON *j = e->text ? cJSON_Parse(e->text) : NULL;
    pthread_mutex_unlock(&oc->mu);
    kt_metric_inc(oc->m, (const char *const[]){"hit"});
    return j;
  }
  if (e) {
    oc->bytes -= e->bytes;
    entry_free(kt_map_del(&oc->map, key));
  }
  struct entry *mine = calloc(1, sizeof *mine);
  if (!mine || kt_map_put(&oc->map, key, mine, NULL)) {
    pthread_mutex_unlock(&oc->mu);
    free(mine);
    return NULL;
  }
  mine->fetching = 1;
  pthread_mutex_unlock(&oc->mu);

  const char *outcome;
  char *text = fetch(oc, kube, o, key, &outcome);
  kt_metric_inc(oc->m, (const char *const[]){outcome});
  cJSON *j = text ? cJSON_Parse(text) : NULL;

  pthread_mutex_lock(&oc->mu);
  mine->fetching = 0;
  mine->text = text;
  mine->bytes = (text ? strlen(text) : 0) + strlen(key) + sizeof *mine;
  mine->expires_us = kt_now_us() + oc->ttl_us;
  oc->bytes += mine->bytes;
  if (oc->bytes > oc->max_bytes)
    kt_map_sweep(&oc->map, expired, oc);
  if (oc->bytes > oc->max_bytes) { /* still too big: keep nothing of this one */
    kt_map_del(&oc->map, key);
    oc->bytes -= mine->bytes;
    entry_free(mine);
  }
  pthread_cond_broadcast(&oc->cv);
  pthread_mutex_unlock(&oc->mu);
  return j;
}

cJSON *kt_objcache_fetch(void *oc, const struct kt_object *o)
{
  return kt_objcache_get(oc, o);
}
