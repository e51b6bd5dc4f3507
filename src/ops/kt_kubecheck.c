/* kt_kubecheck: see the header. */
#include "ops/kt_kubecheck.h"

#include <stdlib.h>
#include <string.h>

#include "audit/kt_audit.h"
#include "k8s/kt_discovery.h"
#include "k8s/kt_kube.h"

int kt_kubecheck(const char *kubeconfig, const char *context, FILE *out)
{
  struct kt_kube_config kc;
  char err[512];
  int rc = kubeconfig && *kubeconfig
               ? kt_kube_load_kubeconfig(kubeconfig, context, &kc, err, sizeof err)
               : kt_kube_in_cluster(NULL, &kc, err, sizeof err);
  if (rc) {
    fprintf(out, "kube-check: %s\n", err);
    return 1;
  }
  char server[1024];
  snprintf(server, sizeof server, "%s", kc.server);
  struct kt_kube *k = kt_kube_new(&kc, "check");
  if (!k) {
    kt_kube_config_free(&kc);
    fprintf(out, "kube-check: out of memory\n");
    return 1;
  }
  int status;
  cJSON *v = kt_kube_get_json(k, "/version", &status, err, sizeof err);
  if (!v) {
    fprintf(out, "kube-check: %s: %s%s\n", server, err,
            status == 401 ? " (credentials refused)" : status == 403 ? " (forbidden)" : "");
    kt_kube_free(k);
    return 1;
  }
  char version[128];
  snprintf(version, sizeof version, "%s",
           kt_json_str(v, "gitVersion") ? kt_json_str(v, "gitVersion") : "(no version)");
  cJSON_Delete(v);
  /* /version is open to anyone: prove the credentials on what the
   * controllers read (leases for election). */
  v = kt_kube_get_json(k, "/apis/coordination.k8s.io/v1/namespaces/default/leases?limit=1",
                       &status, err, sizeof err);
  cJSON_Delete(v);
  if (status == 401 || status == 403 || status < 0) {
    fprintf(out, "kube-check: %s: %s%s\n", server, err,
            status == 401 ? " (credentials refused)" : status == 403 ? " (forbidden)" : "");
    kt_kube_free(k);
    return 1;
  }
  fprintf(out, "apiserver %s: %s\n", server, version);
  struct kt_discovery d;
  if (kt_discovery_load(k, &d, err, sizeof err)) {
    fprintf(out, "kube-check: discovery: %s\n", err);
    kt_kube_free(k);
    return 1;
  }
  size_t watchable = 0;
  for (size_t i = 0; i < d.n; i++)
    watchable += d.v[i].list_watch;
  fprintf(out, "resources: %zu served, %zu can be listed and watched\n", d.n, watchable);
  fprintf(out, "events: %s\n",
          kt_discovery_find(&d, "", "events") ? "core/v1"
          : kt_discovery_find(&d, "events.k8s.io", "events") ? "events.k8s.io/v1" : "none");
  fprintf(out, "leases: %s\n",
          kt_discovery_find(&d, "coordination.k8s.io", "leases") ? "coordination.k8s.io/v1"
                                                                  : "none (no leader election)");
  kt_discovery_free(&d);
  kt_kube_free(k);
  return 0;
}
