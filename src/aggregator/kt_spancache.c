/* kt_spancache: the embedded (memory + store) backend; see the header. */
#include "aggregator/kt_spancache.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/kt_map.h"
#include "core/kt_time.h"
#include "store/kt_span.h"
#include "store/kt_store.h"

#define KV_NS "spancache"

struct entry {
  char *value; /* NULL while reserved */
  uint64_t uid;
  int64_t expires_us;
};

struct mem {
  pthread_mutex_t mu;
  struct kt_map map;
  struct kt_store *persist;
  size_t max_entries;
};

static void entry_free(void *p)
{
  struct entry *e = p;
  if (e)
    free(e->value);
  free(e);
}

static int drop_expired(const char *key, void *value, void *ud)
{
  struct entry *e = value;
  int64_t now = *(int64_t *)ud;
  if (e->expires_us > now)
    return 0;
  entry_free(e);
  return 1;
}

/* Called with mu held when the map is full: expired entries go first; if
 * none, everything set goes (values survive in the store). */
static void make_room(struct mem *m)
{
  int64_t now = kt_now_us();
  kt_map_sweep(&m->map, drop_expired, &now);
  if (m->map.n < m->max_entries)
    return;
  now = INT64_MAX;
  kt_map_sweep(&m->map, drop_expired, &now);
}

static int load_persisted(struct mem *m, const char *key, char **value)
{
  if (!m->persist)
    return -ENOENT;
  size_t len;
  return kt_store_kv_get(m->persist, KV_NS, key, value, &len);
}

static int mem_fetch_or_reserve(void *impl, const char *key,
                                int64_t reserve_ttl_us, char **value,
                                uint64_t *uid)
{
  struct mem *m = impl;
  int64_t now = kt_now_us();
  *value = NULL;
  pthread_mutex_lock(&m->mu);
  struct entry *e = kt_map_get(&m->map, key);
  if (e && e->expires_us > now) {
    int rc = 0;
    if (e->value) {
      *value = strdup(e->value);
      rc = *value ? 0 : -ENOMEM;
    } else {
      rc = -EBUSY;
    }
    pthread_mutex_unlock(&m->mu);
    return rc;
  }
  if (!e && load_persisted(m, key, value) == 0) {
    pthread_mutex_unlock(&m->mu);
    return 0;
  }
  if (!e) {
    if (m->map.n >= m->max_entries)
      make_room(m);
    e = calloc(1, sizeof *e);
    if (!e || kt_map_put(&m->map, key, e, NULL)) {
      free(e);
      pthread_mutex_unlock(&m->mu);
      return -ENOMEM;
    }
  }
  free(e->value);
  e->value = NULL;
  e->uid = kt_random_u64();
  e->expires_us = now + reserve_ttl_us;
  *uid = e->uid;
  pthread_mutex_unlock(&m->mu);
  return 0;
}

static int mem_set_reserved(void *impl, const char *key, const char *value,
                            uint64_t uid, int64_t ttl_us)
{
  struct mem *m = impl;
  int64_t now = kt_now_us();
  pthread_mutex_lock(&m->mu);
  struct entry *e = kt_map_get(&m->map, key);
  if (!e || e->value || e->uid != uid || e->expires_us <= now) {
    pthread_mutex_unlock(&m->mu);
    return -ESTALE;
  }
  e->value = strdup(value);
  if (!e->value) {
    pthread_mutex_unlock(&m->mu);
    return -ENOMEM;
  }
  e->uid = kt_random_u64();
  e->expires_us = now + ttl_us;
  pthread_mutex_unlock(&m->mu);
  if (m->persist)
    return kt_store_kv_put(m->persist, KV_NS, key, value, strlen(value),
                           now + ttl_us);
  return 0;
}

static void mem_free(void *impl)
{
  struct mem *m = impl;
  kt_map_clear(&m->map, entry_free);
  pthread_mutex_destroy(&m->mu);
  free(m);
}

static const struct kt_spancache_ops mem_ops = {
    mem_fetch_or_reserve, mem_set_reserved, mem_free};

int kt_spancache_memory_new(struct kt_store *persist, size_t max_entries,
                            struct kt_spancache **out)
{
  struct kt_spancache *sc = calloc(1, sizeof *sc);
  struct mem *m = calloc(1, sizeof *m);
  if (!sc || !m) {
    free(sc);
    free(m);
    return -ENOMEM;
  }
  pthread_mutex_init(&m->mu, NULL);
  kt_map_init(&m->map);
  m->persist = persist;
  m->max_entries = max_entries ? max_entries : 1000000;
  sc->ops = &mem_ops;
  sc->impl = m;
  *out = sc;
  return 0;
}

void kt_spancache_free(struct kt_spancache *sc)
{
  if (!sc)
    return;
  sc->ops->free(sc->impl);
  free(sc);
}
