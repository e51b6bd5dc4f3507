/* kt_diffcache: the last known body of every object, from which the next
 * version is diffed and deletion snapshots are taken. Fed by audit
 * responseObjects now, by watches later (informers issue).
 *
 * Bodies are kept parsed (cJSON trees), so an update costs no re-parse of
 * the previous version and no print of the new one: the event's own tree
 * moves into the cache. Memory is bounded by an estimate of the trees'
 * bytes (LRU). Evicted bodies and, at close, all bodies are printed to the
 * store's kv space and read back on a miss, so a restart or an eviction
 * costs a read, not a lost diff. Bodies are stored already sanitised (no
 * managedFields, Secret values redacted). */
#ifndef KT_DIFFCACHE_H
#define KT_DIFFCACHE_H
#include <stddef.h>

#include <cjson/cJSON.h>

struct kt_store;
struct kt_diffcache;

/* persist may be NULL. 0 or -ENOMEM. */
int kt_diffcache_new(struct kt_store *persist, size_t max_bytes,
                     struct kt_diffcache **out);
/* Writes every cached body to the store, then frees. */
void kt_diffcache_free(struct kt_diffcache *dc);
/* Takes ownership of tree (also on failure). 0 or -ENOMEM. */
int kt_diffcache_put(struct kt_diffcache *dc, const char *key, const char *rv,
                     cJSON *tree);
/* Removes the entry and hands its tree to the caller (who frees it or
 * puts a newer version back). rv copied into rvbuf. 0 or -ENOENT. */
int kt_diffcache_take(struct kt_diffcache *dc, const char *key, cJSON **tree,
                      char *rvbuf, size_t rvlen);
/* A deep copy (caller frees). 0 or -ENOENT. */
int kt_diffcache_get(struct kt_diffcache *dc, const char *key, cJSON **copy,
                     char *rvbuf, size_t rvlen);
size_t kt_diffcache_bytes(struct kt_diffcache *dc);

#endif
