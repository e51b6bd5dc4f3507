/* kt_diffcache: see the header. The persisted form is "<rv>\n<json>". */
#include "diff/kt_diffcache.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/kt_map.h"
#include "store/kt_store.h"

#define KV_NS "body"

struct body {
  struct body *prev, *next; /* LRU: head = most recent */
  char *key;                /* points into the map node */
  char rv[32];
  size_t len;
  char json[];
};

struct kt_diffcache {
  pthread_mutex_t mu;
  struct kt_map map;
  struct body *head, *tail;
  size_t bytes, max_bytes;
  struct kt_store *persist;
};

static void unlink_body(struct kt_diffcache *dc, struct body *b)
{
  if (b->prev)
    b->prev->next = b->next;
  else
    dc->head = b->next;
  if (b->next)
    b->next->prev = b->prev;
  else
    dc->tail = b->prev;
  b->prev = b->next = NULL;
}

static void push_front(struct kt_diffcache *dc, struct body *b)
{
  b->next = dc->head;
  b->prev = NULL;
  if (dc->head)
    dc->head->prev = b;
  dc->head = b;
  if (!dc->tail)
    dc->tail = b;
}

static void persist_body(struct kt_diffcache *dc, const char *key,
                         const struct body *b)
{
  if (!dc->persist)
    return;
  size_t rvlen = strlen(b->rv);
  char *v = malloc(rvlen + 1 + b->len);
  if (!v)
    return;
  memcpy(v, b->rv, rvlen);
  v[rvlen] = '\n';
  memcpy(v + rvlen + 1, b->json, b->len);
  kt_store_kv_put(dc->persist, KV_NS, key, v, rvlen + 1 + b->len, 0);
  free(v);
}

static void evict(struct kt_diffcache *dc)
{
  while (dc->bytes > dc->max_bytes && dc->tail) {
    struct body *b = dc->tail;
    unlink_body(dc, b);
    persist_body(dc, b->key, b);
    kt_map_del(&dc->map, b->key);
    dc->bytes -= b->len;
    free(b);
  }
}

int kt_diffcache_new(struct kt_store *persist, size_t max_bytes,
                     struct kt_diffcache **out)
{
  struct kt_diffcache *dc = calloc(1, sizeof *dc);
  if (!dc)
    return -ENOMEM;
  pthread_mutex_init(&dc->mu, NULL);
  kt_map_init(&dc->map);
  dc->max_bytes = max_bytes ? max_bytes : (size_t)256 << 20;
  dc->persist = persist;
  *out = dc;
  return 0;
}

void kt_diffcache_free(struct kt_diffcache *dc)
{
  if (!dc)
    return;
  for (struct body *b = dc->head, *next; b; b = next) {
    next = b->next;
    persist_body(dc, b->key, b);
    free(b);
  }
  kt_map_clear(&dc->map, NULL);
  pthread_mutex_destroy(&dc->mu);
  free(dc);
}

static struct kt_map_node *node_of(struct kt_map *m, const char *key)
{
  /* The body keeps a pointer to the map's copy of its key. */
  struct kt_map_node **b = m->_b;
  uint64_t h = kt_hash(key, strlen(key));
  for (struct kt_map_node *n = b[h & (m->_nb - 1)]; n; n = n->_next)
    if (n->_hash == h && strcmp(n->key, key) == 0)
      return n;
  return NULL;
}

int kt_diffcache_put(struct kt_diffcache *dc, const char *key, const char *rv,
                     const char *json, size_t len)
{
  struct body *b = malloc(sizeof *b + len + 1);
  if (!b)
    return -ENOMEM;
  snprintf(b->rv, sizeof b->rv, "%s", rv ? rv : "");
  memcpy(b->json, json, len);
  b->json[len] = 0;
  b->len = len;
  b->prev = b->next = NULL;
  pthread_mutex_lock(&dc->mu);
  void *old = NULL;
  if (kt_map_put(&dc->map, key, b, &old)) {
    pthread_mutex_unlock(&dc->mu);
    free(b);
    return -ENOMEM;
  }
  if (old) {
    struct body *o = old;
    unlink_body(dc, o);
    dc->bytes -= o->len;
    free(o);
  }
  b->key = node_of(&dc->map, key)->key;
  push_front(dc, b);
  dc->bytes += len;
  evict(dc);
  pthread_mutex_unlock(&dc->mu);
  return 0;
}

static int get_persisted(struct kt_diffcache *dc, const char *key, char **json,
                         char *rvbuf, size_t rvlen)
{
  char *v;
  size_t len;
  if (!dc->persist || kt_store_kv_get(dc->persist, KV_NS, key, &v, &len))
    return -ENOENT;
  char *nl = memchr(v, '\n', len);
  if (!nl) {
    free(v);
    return -ENOENT;
  }
  *nl = 0;
  snprintf(rvbuf, rvlen, "%s", v);
  *json = strdup(nl + 1);
  free(v);
  return *json ? 0 : -ENOMEM;
}

int kt_diffcache_get(struct kt_diffcache *dc, const char *key, char **json,
                     char *rvbuf, size_t rvlen)
{
  pthread_mutex_lock(&dc->mu);
  struct body *b = kt_map_get(&dc->map, key);
  if (b) {
    unlink_body(dc, b);
    push_front(dc, b);
    *json = malloc(b->len + 1);
    if (*json)
      memcpy(*json, b->json, b->len + 1);
    snprintf(rvbuf, rvlen, "%s", b->rv);
    pthread_mutex_unlock(&dc->mu);
    return *json ? 0 : -ENOMEM;
  }
  pthread_mutex_unlock(&dc->mu);
  return get_persisted(dc, key, json, rvbuf, rvlen);
}

size_t kt_diffcache_bytes(struct kt_diffcache *dc)
{
  pthread_mutex_lock(&dc->mu);
  size_t n = dc->bytes;
  pthread_mutex_unlock(&dc->mu);
  return n;
}
