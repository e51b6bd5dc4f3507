/* kt_spancache: the "create once" protocol of kelemetry's span cache
 * (behaviour spec §1.8). For a key (object, window, dedup id) exactly one
 * caller, across threads and — with the shared backends — processes, gets
 * to create the pseudo span; every other caller gets the stored carrier.
 *
 *   fetch_or_reserve: value stored      -> 0, *value set (caller frees)
 *                     nobody holds it   -> 0, *value NULL, *uid = our lease
 *                     reserved by other -> -EBUSY (retry later)
 *   set_reserved:     stores the value if our reservation still stands,
 *                     else -ESTALE.
 *
 * The embedded backend keeps entries in memory and persists values in the
 * store's kv space, so a restart inside a window reuses the span. Unlike
 * the original's local cache (quirk §9.12), an expired reservation does
 * not block its key: the next caller takes it over. */
#ifndef KT_SPANCACHE_H
#define KT_SPANCACHE_H
#include <stddef.h>
#include <stdint.h>

struct kt_store;
struct kt_kv;
struct kt_kv_choice;

struct kt_spancache_ops {
  int (*fetch_or_reserve)(void *impl, const char *key, int64_t reserve_ttl_us,
                          char **value, uint64_t *uid);
  int (*set_reserved)(void *impl, const char *key, const char *value,
                      uint64_t uid, int64_t ttl_us);
  void (*free)(void *impl);
};

struct kt_spancache {
  const struct kt_spancache_ops *ops;
  void *impl;
};

/* persist may be NULL (memory only). max_entries bounds memory: the oldest
 * set entries are dropped first (they are still found in the store). */
int kt_spancache_memory_new(struct kt_store *persist, size_t max_entries,
                            struct kt_spancache **out);
/* On a shared engine (Redis, etcd), so that processes sharing it create
 * each pseudo span once between them. Takes ownership of kv; prefix is
 * copied. A key is <prefix><the caller's key>; its value is one state
 * byte, 0 = reserved (then the 8-byte little-endian reservation time in
 * unix ms) or 1 = set (then the value), as in the original's etcd cache.
 * A reservation lives reserve_ttl and a value ttl, through the engine's
 * TTLs, so an expired reservation is taken over by the next caller. The
 * uid is the engine's version of the key. While the engine is
 * unreachable, both operations return -EIO (the caller waits). */
int kt_spancache_kv_new(struct kt_kv *kv, const char *prefix,
                        struct kt_spancache **out);
/* The backend --span-cache chose: the embedded one (persist, max_entries
 * as kt_spancache_memory_new) for local, else a kv one. */
int kt_spancache_open(const struct kt_kv_choice *c, struct kt_store *persist,
                      size_t max_entries, struct kt_spancache **out);
void kt_spancache_free(struct kt_spancache *sc);

#endif
