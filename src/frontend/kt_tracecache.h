/* kt_tracecache: what each handed-out trace id stands for (behaviour spec
 * §2.9), behind an ops table so a shared backend (Redis, etcd) can replace
 * the embedded one for several frontends. The embedded backend keeps
 * recent entries in memory (bounded) and writes every entry through to the
 * store's kv space, where it outlives restarts; entries expire after their
 * TTL everywhere (the original's never do, §9.19). */
#ifndef KT_TRACECACHE_H
#define KT_TRACECACHE_H
#include <stddef.h>
#include <stdint.h>

struct kt_store;
struct kt_kv;
struct kt_kv_choice;

struct kt_tracecache_ops {
  int (*put)(void *impl, uint64_t key, const char *val, int64_t ttl_us);
  /* *val malloc'd (caller frees); 0 or -ENOENT */
  int (*get)(void *impl, uint64_t key, char **val);
  void (*free)(void *impl);
};

struct kt_tracecache {
  const struct kt_tracecache_ops *ops;
  void *impl;
};

int kt_tracecache_embedded_new(struct kt_store *st, size_t max_entries,
                               struct kt_tracecache **out);
/* On a shared engine, for several frontends: key <prefix><id as decimal>
 * (§2.9), value the entry as given, TTL as put asks (the original's etcd
 * entries never expire). Takes ownership of kv; prefix is copied. get
 * returns -EIO while the engine is unreachable. */
int kt_tracecache_kv_new(struct kt_kv *kv, const char *prefix,
                         struct kt_tracecache **out);
/* The backend --jaeger-trace-cache chose (c NULL = embedded). */
int kt_tracecache_open(const struct kt_kv_choice *c, struct kt_store *st,
                       struct kt_tracecache **out);
void kt_tracecache_free(struct kt_tracecache *c);

#endif
