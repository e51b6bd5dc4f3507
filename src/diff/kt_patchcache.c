/* kt_patchcache: see the header. Entries sit in a map and in a FIFO list;
 * the oldest go first when the byte budget is exceeded (patches are read
 * within seconds of being written, so age is the right order). */
#include "diff/kt_patchcache.h"

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

#define NS "patch"

struct entry {
  struct entry *newer, *older;
  char *key; /* owned copy (the map has its own) */
  char *json;
  size_t bytes;
  int64_t expires_us;
};

struct kt_patchcache {
  struct kt_store *store;
  size_t max_bytes, bytes;
  int64_t patch_ttl_us, snapshot_ttl_us;
  pthread_mutex_t mu;
  struct kt_map map;
  struct entry *newest, *oldest;
  struct kt_kv *kv; /* shared engine, or NULL */
  char *prefix;
};

struct kt_patchcache *kt_patchcache_new(struct kt_store *store,
                                        size_t max_bytes,
                                        int64_t patch_ttl_us,
                                        int64_t snapshot_ttl_us)
{
  struct kt_patchcache *pc = calloc(1, sizeof *pc);
  if (!pc)
    return NULL;
  pc->store = store;
  pc->max_bytes = max_bytes ? max_bytes : 64u << 20;
  pc->patch_ttl_us = patch_ttl_us ? patch_ttl_us : 600000000LL;
  pc->snapshot_ttl_us = snapshot_ttl_us ? snapshot_ttl_us : 600000000LL;
  pthread_mutex_init(&pc->mu, NULL);
  kt_map_init(&pc->map);
  return pc;
}

int kt_patchcache_open(const struct kt_kv_choice *c, struct kt_store *store,
                       size_t max_bytes, int64_t patch_ttl_us,
                       int64_t snapshot_ttl_us, struct kt_patchcache **out)
{
  struct kt_kv *kv;
  const char *prefix = "";
  int rc = kt_kv_open_choice(c, "diff cache", &kv, &prefix);
  if (rc)
    return rc;
  *out = kt_patchcache_new(kv ? NULL : store, max_bytes, patch_ttl_us,
                           snapshot_ttl_us);
  if (*out && kv && !((*out)->prefix = strdup(prefix))) {
    kt_patchcache_free(*out);
    *out = NULL;
  }
  if (!*out) {
    kt_kv_free(kv);
    return -ENOMEM;
  }
  (*out)->kv = kv;
  return 0;
}

static void unlink_entry(struct kt_patchcache *pc, struct entry *e)
{
  if (e->newer)
    e->newer->older = e->older;
  else
    pc->newest = e->older;
  if (e->older)
    e->older->newer = e->newer;
  else
    pc->oldest = e->newer;
  pc->bytes -= e->bytes;
}

static void entry_free(struct entry *e)
{
  free(e->key);
  free(e->json);
  free(e);
}

void kt_patchcache_free(struct kt_patchcache *pc)
{
  if (!pc)
    return;
  for (struct entry *e = pc->oldest, *n; e; e = n) {
    n = e->newer;
    entry_free(e);
  }
  kt_map_clear(&pc->map, NULL);
  pthread_mutex_destroy(&pc->mu);
  kt_kv_free(pc->kv);
  free(pc->prefix);
  free(pc);
}

static void full_key(const char *objkey, const char *name, char *buf,
                     size_t len)
{
  snprintf(buf, len, "%s/%s", objkey, name);
}

static int is_patch(const char *name)
{
  return !strncmp(name, "rv/", 3);
}

/* The engine's key: the original's layout (§1.7.2), "rv/" -> "newRv/". */
static int kv_key(const struct kt_patchcache *pc, const char *objkey,
                  const char *name, char *buf, size_t len)
{
  int n = is_patch(name)
              ? snprintf(buf, len, "%s%s/newRv/%s", pc->prefix, objkey, name + 3)
              : snprintf(buf, len, "%s%s/%s", pc->prefix, objkey, name);
  return n < 0 || (size_t)n >= len ? -EINVAL : 0;
}

/* Into the memory layer (newest), evicting the oldest past the budget. */
static int mem_insert(struct kt_patchcache *pc, const char *key,
                      const char *json, int64_t ttl)
{
  struct entry *e = calloc(1, sizeof *e);
  if (!e || !(e->key = strdup(key)) || !(e->json = strdup(json))) {
    if (e)
      entry_free(e);
    return -ENOMEM;
  }
  e->bytes = strlen(key) + strlen(json) + sizeof *e + 64;
  e->expires_us = kt_now_us() + ttl;
  pthread_mutex_lock(&pc->mu);
  struct entry *old = NULL;
  int rc = kt_map_put(&pc->map, key, e, (void **)&old);
  if (!rc) {
    if (old) {
      unlink_entry(pc, old);
      entry_free(old);
    }
    e->older = pc->newest;
    if (pc->newest)
      pc->newest->newer = e;
    else
      pc->oldest = e;
    pc->newest = e;
    pc->bytes += e->bytes;
    while (pc->bytes > pc->max_bytes && pc->oldest != e) {
      struct entry *victim = pc->oldest;
      kt_map_del(&pc->map, victim->key);
      unlink_entry(pc, victim);
      entry_free(victim);
    }
  }
  pthread_mutex_unlock(&pc->mu);
  if (rc)
    entry_free(e);
  return rc;
}

int kt_patchcache_put(struct kt_patchcache *pc, const char *objkey,
                      const char *name, const char *json)
{
  char key[1280], kk[2400];
  full_key(objkey, name, key, sizeof key);
  int64_t ttl = is_patch(name) ? pc->patch_ttl_us : pc->snapshot_ttl_us;
  int rc = mem_insert(pc, key, json, ttl);
  if (rc)
    return rc;
  if (pc->kv) {
    rc = kv_key(pc, objkey, name, kk, sizeof kk);
    return rc ? rc : kt_kv_put(pc->kv, kk, json, strlen(json), ttl, NULL);
  }
  if (pc->store)
    kt_store_kv_put(pc->store, NS, key, json, strlen(json), kt_now_us() + ttl);
  return 0;
}

/* A miss in memory, asked of the engine; a patch found is kept in memory
 * for the next reader (it never changes for its resourceVersion). */
static char *kv_get(struct kt_patchcache *pc, const char *objkey,
                    const char *name, const char *key)
{
  char kk[2400];
  struct kt_kv_val v;
  if (kv_key(pc, objkey, name, kk, sizeof kk) || kt_kv_get(pc->kv, kk, &v))
    return NULL;
  if (is_patch(name))
    mem_insert(pc, key, v.data, pc->patch_ttl_us);
  return v.data;
}

char *kt_patchcache_get(struct kt_patchcache *pc, const char *objkey,
                        const char *name)
{
  char key[1280], *out = NULL;
  full_key(objkey, name, key, sizeof key);
  pthread_mutex_lock(&pc->mu);
  struct entry *e = kt_map_get(&pc->map, key);
  if (e && e->expires_us > kt_now_us() && (!pc->kv || is_patch(name)))
    out = strdup(e->json);
  pthread_mutex_unlock(&pc->mu);
  if (pc->kv)
    return out ? out : kv_get(pc, objkey, name, key);
  size_t len;
  if (!out && !e && pc->store && kt_store_kv_get(pc->store, NS, key, &out, &len))
    out = NULL;
  return out;
}
