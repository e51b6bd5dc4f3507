/* kt_tracecache: the embedded backend and the shared (kv) one; see the
 * header. */
#include "frontend/kt_tracecache.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/kt_log.h"
#include "core/kt_map.h"
#include "core/kt_time.h"
#include "kv/kt_kv.h"
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

/* ---- shared (kv) backend ------------------------------------------------ */

struct shared {
  struct kt_kv *kv;
  char *prefix;
};

static void shared_key(const struct shared *s, uint64_t key, char *buf,
                       size_t len)
{
  snprintf(buf, len, "%s%llu", s->prefix, (unsigned long long)key);
}

static int s_put(void *impl, uint64_t key, const char *val, int64_t ttl_us)
{
  struct shared *s = impl;
  char k[1100];
  shared_key(s, key, k, sizeof k);
  return kt_kv_put(s->kv, k, val, strlen(val), ttl_us, NULL);
}

static int s_get(void *impl, uint64_t key, char **val)
{
  struct shared *s = impl;
  char k[1100];
  struct kt_kv_val v;
  shared_key(s, key, k, sizeof k);
  int rc = kt_kv_get(s->kv, k, &v);
  *val = rc ? NULL : v.data; /* NUL-terminated, handed over */
  return rc;
}

static void s_free(void *impl)
{
  struct shared *s = impl;
  kt_kv_free(s->kv);
  free(s->prefix);
  free(s);
}

static const struct kt_tracecache_ops shared_ops = {s_put, s_get, s_free};

int kt_tracecache_kv_new(struct kt_kv *kv, const char *prefix,
                         struct kt_tracecache **out)
{
  struct kt_tracecache *tc = calloc(1, sizeof *tc);
  struct shared *s = calloc(1, sizeof *s);
  size_t plen = strlen(prefix ? prefix : "");
  char *p = plen < 1024 ? strdup(prefix ? prefix : "") : NULL;
  if (!tc || !s || !p) {
    free(tc);
    free(s);
    free(p);
    kt_kv_free(kv);
    return p || plen < 1024 ? -ENOMEM : -EINVAL;
  }
  s->kv = kv;
  s->prefix = p;
  tc->ops = &shared_ops;
  tc->impl = s;
  *out = tc;
  return 0;
}

int kt_tracecache_open(const struct kt_kv_choice *c, struct kt_store *st,
                       struct kt_tracecache **out)
{
  struct kt_kv *kv;
  const char *prefix = "";
  int rc = kt_kv_open_choice(c, "trace cache", &kv, &prefix);
  if (rc)
    return rc;
  if (!kv)
    return kt_tracecache_embedded_new(st, 0, out);
  return kt_tracecache_kv_new(kv, prefix, out);
}

void kt_tracecache_free(struct kt_tracecache *c)
{
  if (!c)
    return;
  c->ops->free(c->impl);
  free(c);
}
