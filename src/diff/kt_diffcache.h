/* kt_diffcache: the last known body of every object, from which the next
 * version is diffed and deletion snapshots are taken. Fed by audit
 * responseObjects now, by watches later (informers issue).
 *
 * Memory is bounded by bytes (LRU). Evicted bodies and, at close, all
 * bodies are written to the store's kv space and read back on a miss, so
 * a restart or an eviction costs a read, not a lost diff. Bodies are stored
 * already sanitised (no managedFields, Secret values redacted). */
#ifndef KT_DIFFCACHE_H
#define KT_DIFFCACHE_H
#include <stddef.h>

struct kt_store;
struct kt_diffcache;

/* persist may be NULL. 0 or -ENOMEM. */
int kt_diffcache_new(struct kt_store *persist, size_t max_bytes,
                     struct kt_diffcache **out);
/* Writes every cached body to the store, then frees. */
void kt_diffcache_free(struct kt_diffcache *dc);
/* Copies rv and json. 0 or -ENOMEM. */
int kt_diffcache_put(struct kt_diffcache *dc, const char *key, const char *rv,
                     const char *json, size_t len);
/* *json is a malloc'd copy (caller frees); rv copied into rvbuf.
 * 0 or -ENOENT. */
int kt_diffcache_get(struct kt_diffcache *dc, const char *key, char **json,
                     char *rvbuf, size_t rvlen);
size_t kt_diffcache_bytes(struct kt_diffcache *dc);

#endif
