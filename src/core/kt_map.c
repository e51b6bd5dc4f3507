/* kt_map: see kt_map.h. */
#include "core/kt_map.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

uint64_t kt_hash(const void *data, size_t len)
{
  const unsigned char *p = data;
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < len; i++) {
    h ^= p[i];
    h *= 0x100000001b3ull;
  }
  return h;
}

void kt_map_init(struct kt_map *m)
{
  memset(m, 0, sizeof *m);
}

void kt_map_clear(struct kt_map *m, void (*free_value)(void *))
{
  for (size_t i = 0; i < m->_nb; i++) {
    struct kt_map_node *n = m->_b[i];
    while (n) {
      struct kt_map_node *next = n->_next;
      if (free_value)
        free_value(n->value);
      free(n);
      n = next;
    }
  }
  free(m->_b);
  kt_map_init(m);
}

static struct kt_map_node **find(const struct kt_map *m, const char *key,
                                 uint64_t h)
{
  if (!m->_nb)
    return NULL;
  struct kt_map_node **pp = &m->_b[h & (m->_nb - 1)];
  for (; *pp; pp = &(*pp)->_next)
    if ((*pp)->_hash == h && strcmp((*pp)->key, key) == 0)
      return pp;
  return pp;
}

void *kt_map_get(const struct kt_map *m, const char *key)
{
  struct kt_map_node **pp = find(m, key, kt_hash(key, strlen(key)));
  return pp && *pp ? (*pp)->value : NULL;
}

static int grow(struct kt_map *m)
{
  size_t nb = m->_nb ? m->_nb * 2 : 64;
  struct kt_map_node **b = calloc(nb, sizeof *b);
  if (!b)
    return -ENOMEM;
  for (size_t i = 0; i < m->_nb; i++) {
    struct kt_map_node *n = m->_b[i];
    while (n) {
      struct kt_map_node *next = n->_next;
      n->_next = b[n->_hash & (nb - 1)];
      b[n->_hash & (nb - 1)] = n;
      n = next;
    }
  }
  free(m->_b);
  m->_b = b;
  m->_nb = nb;
  return 0;
}

int kt_map_put(struct kt_map *m, const char *key, void *value, void **old)
{
  size_t klen = strlen(key);
  uint64_t h = kt_hash(key, klen);
  if (old)
    *old = NULL;
  if (m->n + 1 > m->_nb && grow(m))
    return -ENOMEM;
  struct kt_map_node **pp = find(m, key, h);
  if (*pp) {
    if (old)
      *old = (*pp)->value;
    (*pp)->value = value;
    return 0;
  }
  struct kt_map_node *n = malloc(sizeof *n + klen + 1);
  if (!n)
    return -ENOMEM;
  memcpy(n->key, key, klen + 1);
  n->_hash = h;
  n->value = value;
  n->_next = NULL;
  *pp = n;
  m->n++;
  return 0;
}

void *kt_map_del(struct kt_map *m, const char *key)
{
  struct kt_map_node **pp = find(m, key, kt_hash(key, strlen(key)));
  if (!pp || !*pp)
    return NULL;
  struct kt_map_node *n = *pp;
  void *v = n->value;
  *pp = n->_next;
  free(n);
  m->n--;
  return v;
}

void kt_map_sweep(struct kt_map *m,
                  int (*fn)(const char *key, void *value, void *ud), void *ud)
{
  for (size_t i = 0; i < m->_nb; i++) {
    struct kt_map_node **pp = &m->_b[i];
    while (*pp) {
      struct kt_map_node *n = *pp;
      if (fn(n->key, n->value, ud)) {
        *pp = n->_next;
        free(n);
        m->n--;
      } else {
        pp = &n->_next;
      }
    }
  }
}
