/* kt_patchcache: what the diff controller learnt from watching objects,
 * for the decorator to attach to audit spans (behaviour spec §1.7.2):
 * patches keyed by the new resourceVersion, and the `creation` and
 * `deletion` snapshots, per object (cluster/group/resource/ns/name: the
 * cluster is part of the key, unlike the original's object cache).
 *
 * A bounded in-memory layer (bytes, oldest first out, TTLs) in front of the
 * store's kv space "patch", which other processes sharing the store can
 * read. Thread-safe. Values are JSON text:
 *   patch:    {"informerTime":us,"oldResourceVersion":..,"newResourceVersion":..,
 *              "redacted":bool,"diff":"<rendered lines>"}
 *   snapshot: {"resourceVersion":..,"redacted":bool,"value":{object}} */
#ifndef KT_PATCHCACHE_H
#define KT_PATCHCACHE_H
#include <stddef.h>
#include <stdint.h>

struct kt_store;
struct kt_kv_choice;
struct kt_patchcache;

/* store may be NULL (memory only). 0 TTLs = 10 minutes; 0 bytes = 64 MiB. */
struct kt_patchcache *kt_patchcache_new(struct kt_store *store,
                                        size_t max_bytes,
                                        int64_t patch_ttl_us,
                                        int64_t snapshot_ttl_us);
/* With --diff-cache=redis|etcd (c->kind), the shared engine replaces the
 * store, so that the decorators of every process read what the diff
 * controllers of any process wrote: keys
 *   <prefix><cluster>/<group>/<resource>/<namespace>/<name>/newRv/<rv>
 *   <prefix><cluster>/<group>/<resource>/<namespace>/<name>/creation|deletion
 * with the patch / snapshot TTL (later writes overwrite). The memory layer
 * stays in front for patches (a resourceVersion's patch never changes);
 * snapshots are always read from the engine (another process may have
 * written a newer one), and a miss in memory always asks the engine.
 * c NULL or local = kt_patchcache_new. 0, or -EINVAL / -ENOMEM (logged). */
int kt_patchcache_open(const struct kt_kv_choice *c, struct kt_store *store,
                       size_t max_bytes, int64_t patch_ttl_us,
                       int64_t snapshot_ttl_us, struct kt_patchcache **out);
void kt_patchcache_free(struct kt_patchcache *pc);

/* name: "rv/<resourceVersion>", "creation" or "deletion". Copies json.
 * 0, -ENOMEM, or (shared engine) -EIO when it could not be written. */
int kt_patchcache_put(struct kt_patchcache *pc, const char *objkey,
                      const char *name, const char *json);
/* malloc'd JSON text (caller frees), or NULL when absent or expired. */
char *kt_patchcache_get(struct kt_patchcache *pc, const char *objkey,
                        const char *name);

#endif
