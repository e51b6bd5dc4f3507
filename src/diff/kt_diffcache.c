/* kt_diffcache: see the header. The persisted form is "<rv>\n<json>". */
#include "diff/kt_diffcache.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/kt_map.h"
#include "json/kt_jmem.h"
#include "store/kt_store.h"

#define KV_NS "body"

struct body {
  struct body *prev, *next; /* LRU: head = most recent */
  char *key;                /* points into the map node */
  char rv[32];
  size_t bytes;             /* memory of the entry */
  cJSON *tree;              /* compact (kt_jmem_compact): free() it */
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
  char *json = cJSON_PrintUnformatted(b->tree);
  size_t rvlen = strlen(b->rv), jlen = json ? strlen(json) : 0;
  char *v = json ? malloc(rvlen + 1 + jlen) : NULL;
  if (v) {
    memcpy(v, b->rv, rvlen);
    v[rvlen] = '\n';
    memcpy(v + rvlen + 1, json, jlen);
    kt_store_kv_put(dc->persist, KV_NS, key, v, rvlen + 1 + jlen, 0);
  }
  free(v);
  free(json);
}

static void drop(struct kt_diffcache *dc, struct body *b)
{
  unlink_body(dc, b);
  kt_map_del(&dc->map, b->key);
  dc->bytes -= b->bytes;
  free(b->tree);
  free(b);
}

static void evict(struct kt_diffcache *dc)
{
  while (dc->bytes > dc->max_bytes && dc->tail) {
    persist_body(dc, dc->tail->key, dc->tail);
    drop(dc, dc->tail);
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
  while (dc->head) {
    persist_body(dc, dc->head->key, dc->head);
    drop(dc, dc->head);
  }
  kt_map_clear(&dc->map, NULL);
  pthread_mutex_destroy(&dc->mu);
  free(dc);
}

static struct kt_map_node *node_of(struct kt_map *m, const char *key)
{
  uint64_t h = kt_hash(key, strlen(key));
  for (struct kt_map_node *n = m->_b[h & (m->_nb - 1)]; n; n = n->_next)
    if (n->_hash == h && strcmp(n->key, key) == 0)
      return n;
  return NULL;
}

int kt_diffcache_put(struct kt_diffcache *dc, const char *key, const char *rv,
                     cJSON *tree)
{
  struct body *b = calloc(1, sizeof *b);
  size_t bytes = 0;
  int heap;
  cJSON *compact = b ? kt_jmem_compact(tree, &bytes, &heap) : NULL;
  if (!compact || heap)
    cJSON_Delete(tree);
  if (!compact) {
    free(b);
    return -ENOMEM;
  }
  snprintf(b->rv, sizeof b->rv, "%s", rv ? rv : "");
  b->tree = compact;
  b->bytes = bytes + sizeof *b + strlen(key);
  pthread_mutex_lock(&dc->mu);
  struct body *old = kt_map_get(&dc->map, key);
  if (old)
    drop(dc, old);
  if (kt_map_put(&dc->map, key, b, NULL)) {
    pthread_mutex_unlock(&dc->mu);
    free(compact);
    free(b);
    return -ENOMEM;
  }
  b->key = node_of(&dc->map, key)->key;
  push_front(dc, b);
  dc->bytes += b->bytes;
  evict(dc);
  pthread_mutex_unlock(&dc->mu);
  return 0;
}

/* A heap tree, or with compact set a compact one. */
static int load_persisted(struct kt_diffcache *dc, const char *key,
                          cJSON **tree, char *rvbuf, size_t rvlen, int compact)
{
  char *v;
  size_t len;
  if (!dc->persist || kt_store_kv_get(dc->persist, KV_NS, key, &v, &len))
    return -ENOENT;
  char *nl = memchr(v, '\n', len);
  if (nl) {
    *nl = 0;
    snprintf(rvbuf, rvlen, "%s", v);
    *tree = cJSON_ParseWithLength(nl + 1, len - (size_t)(nl + 1 - v));
    if (compact && *tree) {
      cJSON *c = kt_jmem_compact(*tree, NULL, NULL);
      cJSON_Delete(*tree);
      *tree = c;
    }
  }
  free(v);
  return nl && *tree ? 0 : -ENOENT;
}

int kt_diffcache_take(struct kt_diffcache *dc, const char *key, cJSON **tree,
                      char *rvbuf, size_t rvlen)
{
  pthread_mutex_lock(&dc->mu);
  struct body *b = kt_map_get(&dc->map, key);
  if (b) {
    *tree = b->tree;
    b->tree = NULL;
    snprintf(rvbuf, rvlen, "%s", b->rv);
    drop(dc, b);
    pthread_mutex_unlock(&dc->mu);
    return 0;
  }
  pthread_mutex_unlock(&dc->mu);
  return load_persisted(dc, key, tree, rvbuf, rvlen, 1);
}

/* The block is cold (written an update ago) and the diff walks all of it
 * in order: every line is asked for at once, not one miss at a time. */
void kt_diffcache_prefetch(struct kt_diffcache *dc, const char *key)
{
  pthread_mutex_lock(&dc->mu);
  struct body *b = kt_map_get(&dc->map, key);
  const char *t = b ? (const char *)b->tree : NULL;
  for (size_t off = 0; t && off < b->bytes; off += 64)
    __builtin_prefetch(t + off);
  pthread_mutex_unlock(&dc->mu);
}

int kt_diffcache_get(struct kt_diffcache *dc, const char *key, cJSON **copy,
                     char *rvbuf, size_t rvlen)
{
  pthread_mutex_lock(&dc->mu);
  struct body *b = kt_map_get(&dc->map, key);
  if (b) {
    unlink_body(dc, b);
    push_front(dc, b);
    *copy = cJSON_Duplicate(b->tree, 1);
    snprintf(rvbuf, rvlen, "%s", b->rv);
    pthread_mutex_unlock(&dc->mu);
    return *copy ? 0 : -ENOMEM;
  }
  pthread_mutex_unlock(&dc->mu);
  return load_persisted(dc, key, copy, rvbuf, rvlen, 0);
}

size_t kt_diffcache_bytes(struct kt_diffcache *dc)
{
  pthread_mutex_lock(&dc->mu);
  size_t n = dc->bytes;
  pthread_mutex_unlock(&dc->mu);
  return n;
}
