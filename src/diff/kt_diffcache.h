/* kt_diffcache: the last known body of every object, from which the next
 * version is diffed and deletion snapshots are taken. Fed by audit
 * responseObjects now, by watches later (informers issue).
 *
 * Bodies are kept parsed, so an update costs no re-parse of the previous
 * version and no print of the new one: the event's tree is copied into one
 * compact block (kt_jmem_compact), which a diff then walks sequentially
 * and which frees the arena the event was parsed into. Memory is bounded
 * by the blocks' bytes (LRU). Evicted bodies and, at close, all bodies are printed to the
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
/* Takes ownership of tree, an ordinary cJSON tree (heap or arena; also
 * on failure). 0 or -ENOMEM. */
int kt_diffcache_put(struct kt_diffcache *dc, const char *key, const char *rv,
                     cJSON *tree);
/* Removes the entry and hands its tree to the caller. The tree is
 * compact: release it with free(), never cJSON_Delete (cJSON_Duplicate it
 * to get an ordinary tree). rv copied into rvbuf. 0 or -ENOENT. */
int kt_diffcache_take(struct kt_diffcache *dc, const char *key, cJSON **tree,
                      char *rvbuf, size_t rvlen);
/* Asks the CPU to bring key's body into the caches (no-op if absent): a
 * consumer calls it an event ahead of kt_diffcache_take. */
void kt_diffcache_prefetch(struct kt_diffcache *dc, const char *key);
/* A deep copy, an ordinary tree (caller cJSON_Deletes). 0 or -ENOENT. */
int kt_diffcache_get(struct kt_diffcache *dc, const char *key, cJSON **copy,
                     char *rvbuf, size_t rvlen);
size_t kt_diffcache_bytes(struct kt_diffcache *dc);

#endif
