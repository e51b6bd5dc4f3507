/* kt_tracecache: the embedded backend; see the header. */
#include "frontend/kt_tracecache.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/kt_map.h"
#include "core/kt_time.h"
#include "store/kt_store.h"

#define KV_NS "trace"

struct entry {
  char *val;
  int64_t expires_us;
};

struct embedded {
  pthread_mutex_t mu;
  struct kt_map map;
  size_t max;
  struct kt_store *st;
};

static void entry_free(void *p)
{
  struct entry *e = p;
  if (e)
    free(e->val);
  free(e);
}

static int expired(const char *key, void *value, void *ud)
{
  struct entry *e = value;
  if (e->expires_us > *(int64_t *)ud)
    return 0;
  entry_free(e);
  return 1;
}

static int e_put(void *impl, uint64_t key, const char *val, int64_t ttl_us)
{
  struct embedded *c = impl;
  char k[32];
  int64_t now = kt_now_us();
  struct entry *e = calloc(1, sizeof *e);
  snprintf(k, sizeof k, "%016llx", (unsigned long long)key);
  if (!e || !(e->val = strdup(val))) {
    free(e);
    return -ENOMEM;
  }
  e->expires_us = now + ttl_us;
  pthread_mutex_lock(&c->mu);
  if (c->map.n >= c->max) { /* expired first, then everything: the store has them */
    kt_map_sweep(&c->map, expired, &now);
    if (c->map.n >= c->max)
      kt_map_clear(&c->map, entry_free);
  }
  void *old = NULL;
  if (kt_map_put(&c->map, k, e, &old))
    entry_free(e);
  entry_free(old);
  pthread_mutex_unlock(&c->mu);
  return kt_store_kv_put(c->st, KV_NS, k, val, strlen(val), now + ttl_us);
}

static int e_get(void *impl, uint64_t key, char **val)
{
  struct embedded *c = impl;
  char k[32];
  size_t len;
  snprintf(k, sizeof k, "%016llx", (unsigned long long)key);
  pthread_mutex_lock(&c->mu);
  struct entry *e = kt_map_get(&c->map, k);
  if (e && e->expires_us > kt_now_us()) {
    *val = strdup(e->val);
    pthread_mutex_unlock(&c->mu);
    return *val ? 0 : -ENOMEM;
  }
  pthread_mutex_unlock(&c->mu);
  return kt_store_kv_get(c->st, KV_NS, k, val, &len);
}

static void e_free(void *impl)
{
  struct embedded *c = impl;
  kt_map_clear(&c->map, entry_free);
  pthread_mutex_destroy(&c->mu);
  free(c);
}

static const struct kt_tracecache_ops embedded_ops = {e_put, e_get, e_free};

int kt_tracecache_embedded_new(struct kt_store *st, size_t max_entries,
                               struct kt_tracecache **out)
{
  struct kt_tracecache *tc = calloc(1, sizeof *tc);
  struct embedded *c = calloc(1, sizeof *c);
  if (!tc || !c) {
    free(tc);
    free(c);
    return -ENOMEM;
  }
  pthread_mutex_init(&c->mu, NULL);
  kt_map_init(&c->map);
  c->max = max_entries ? max_entries : 100000;
  c->st = st;
  tc->ops = &embedded_ops;
  tc->impl = c;
  *out = tc;
  return 0;
}

void kt_tracecache_free(struct kt_tracecache *c)
{
  if (!c)
    return;
  c->ops->free(c->impl);
  free(c);
}
