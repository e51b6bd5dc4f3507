/* kt_objcache: objects fetched from the apiserver when an audit event
 * carries no body and none is known (behaviour spec §1.11), for the
 * linkers and resource taggers. GET with resourceVersion=0 (served from the
 * apiserver's cache); a 404 falls back to the diff controller's deletion
 * snapshot. Bounded by bytes, entries live `ttl`; concurrent misses on one
 * key make one request (single flight). The key includes the cluster
 * (unlike the original, §9.5); objects of clusters this process has no
 * client for are not fetched. Thread-safe. */
#ifndef KT_OBJCACHE_H
#define KT_OBJCACHE_H
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

struct kt_kube;
struct kt_patchcache;
struct kt_object;
struct kt_objcache;

/* client_for(ud, cluster) gives the client of a cluster, or NULL (not
 * fetched); pc (may be NULL) borrowed. 0 = defaults: 64 MiB, 5 s. */
struct kt_objcache *kt_objcache_new(struct kt_kube *(*client_for)(void *ud,
                                                                  const char *cluster),
                                    void *ud, struct kt_patchcache *pc,
                                    size_t max_bytes, int64_t ttl_us);
void kt_objcache_free(struct kt_objcache *oc);
/* The object (a new tree the caller deletes), or NULL. */
cJSON *kt_objcache_get(struct kt_objcache *oc, const struct kt_object *o);
/* Adapter for kt_aggregator_set_fetch. */
cJSON *kt_objcache_fetch(void *oc, const struct kt_object *o);

#endif
