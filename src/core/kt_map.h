/* kt_map: a string-keyed hash map (chained, FNV-1a, doubling). Not
 * thread-safe: owners wrap it in their own lock. The map copies keys and
 * stores values as opaque pointers it never frees. */
#ifndef KT_MAP_H
#define KT_MAP_H
#include <stddef.h>
#include <stdint.h>

struct kt_map_node {
  struct kt_map_node *_next;
  uint64_t _hash;
  void *value;
  char key[]; /* NUL-terminated copy */
};

struct kt_map {
  struct kt_map_node **_b;
  size_t _nb, n;
};

uint64_t kt_hash(const void *data, size_t len); /* FNV-1a 64 */
void kt_map_init(struct kt_map *m);
/* Frees nodes; calls free_value on each value if non-NULL. */
void kt_map_clear(struct kt_map *m, void (*free_value)(void *));
void *kt_map_get(const struct kt_map *m, const char *key);
/* Inserts or replaces; *old receives a replaced value (or NULL).
 * 0 or -ENOMEM. */
int kt_map_put(struct kt_map *m, const char *key, void *value, void **old);
/* Removes and returns the value, or NULL. */
void *kt_map_del(struct kt_map *m, const char *key);
/* Visits every entry; returning non-zero from fn deletes it (fn must then
 * release the value itself). */
void kt_map_sweep(struct kt_map *m, int (*fn)(const char *key, void *value,
                                               void *ud), void *ud);

#endif
