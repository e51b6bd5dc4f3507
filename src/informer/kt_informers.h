/* kt_informers: the Kubernetes side of one process: the target cluster's
 * client (made when a controller is enabled or --kube-config is given), the
 * event controller and the diff controller, each run only while this
 * process holds one of the component's leases, the live audit filter, the
 * object cache, and the patch cache the decorator reads watch diffs from. */
#ifndef KT_INFORMERS_H
#define KT_INFORMERS_H
#include <stdint.h>

struct kt_pipeline;
struct kt_informers;

struct kt_informers_opts {
  const char *cluster;       /* --kube-target-cluster */
  const char *kubeconfig;    /* path, or NULL/"" for in-cluster */
  const char *context;       /* --kube-context (target cluster) */
  const char *config_paths;  /* --kube-config-paths name=path,... */
  const char *apiservers;    /* --kube-apiservers name=url,... */
  double qps;
  int burst;
  int event_enable, diff_enable, decorate; /* decorate: read watch diffs */
  int live_filter;           /* watch default/kelemetry-filter-config */
  const char *exclude_types;
  const char *redact_pattern;
  int64_t discovery_resync_us;
  int64_t patch_ttl_us, snapshot_ttl_us;
  int64_t fetch_backoff_us, fetch_event_timeout_us, fetch_total_timeout_us;
  const char *cm_namespace, *cm_name;
  int64_t cm_sync_us;
  struct kt_informers_election {
    int enable;
    const char *namespace, *name;
    int num_leaders;
    int64_t lease_us, renew_deadline_us, retry_us;
  } event_le, diff_le;
};

/* Starts what the options enable, wiring the decorator of p to the patch
 * cache. p must outlive the informers. 0, or -errno (reason logged). */
int kt_informers_start(const struct kt_informers_opts *o, struct kt_pipeline *p,
                       struct kt_informers **out);
/* Stops the controllers and elections (leases released). */
void kt_informers_stop(struct kt_informers *in);
/* Frees the rest (the patch cache) once no consumer reads it. */
void kt_informers_free(struct kt_informers *in);

#endif
