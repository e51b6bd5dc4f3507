/* kt_discovery: the resources a cluster serves, in their preferred
 * versions (/api, /apis, then each group-version's APIResourceList).
 * Subresources are left out. */
#ifndef KT_DISCOVERY_H
#define KT_DISCOVERY_H
#include <stddef.h>

#include "k8s/kt_kube.h"

struct kt_gvr {
  char group[128], version[64], resource[128], kind[128];
  int namespaced;
  int list_watch; /* verbs include both list and watch */
};

struct kt_discovery {
  struct kt_gvr *v;
  size_t n;
};

/* Fills d (caller frees with kt_discovery_free). 0, or -errno with the
 * reason in err. A group-version that fails alone is skipped (logged). */
int kt_discovery_load(struct kt_kube *k, struct kt_discovery *d, char *err,
                      size_t errlen);
void kt_discovery_free(struct kt_discovery *d);
/* The entry for (group, resource), or NULL. */
const struct kt_gvr *kt_discovery_find(const struct kt_discovery *d,
                                       const char *group,
                                       const char *resource);
/* The entry for (apiVersion "g/v" or "v", kind), or NULL. */
const struct kt_gvr *kt_discovery_by_kind(const struct kt_discovery *d,
                                          const char *api_version,
                                          const char *kind);
/* The list path of g: /api/v1/pods, /apis/apps/v1/deployments. */
void kt_gvr_path(const struct kt_gvr *g, char *buf, size_t len);

#endif
