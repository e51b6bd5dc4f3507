/* kt_eventctl: the event controller (behaviour spec §1.6). Kubernetes
 * Events (core/v1, all namespaces) become `event` spans on their involved
 * object: title = reason, tags source and action, the message as an
 * `event/message` log, one second long. Only what a change needs is kept
 * per event (namespace/name/resourceVersion, in the reflector). Events
 * older than the checkpoint (ConfigMap <ns>/<name>, data.timestamp, written
 * every sync interval while events arrive) or than 5 minutes are skipped,
 * so a restart neither replays nor loses what it already handled; span ids
 * derive from the Event's uid and resourceVersion, so a replayed Event is
 * stored once. */
#ifndef KT_EVENTCTL_H
#define KT_EVENTCTL_H
#include <stdint.h>

#include "k8s/kt_kube.h"

struct kt_aggregator;
struct kt_eventctl;

struct kt_eventctl_opts {
  const char *cluster;
  const char *configmap_namespace; /* default "default" */
  const char *configmap_name;      /* default "kelemetry-event-controller" */
  int64_t sync_interval_us;        /* default 5 s */
  int64_t max_age_us;              /* default 5 minutes */
  const char *exclude_types;       /* involved objects never traced */
};

/* kube and agg are borrowed. NULL on error (logged). */
struct kt_eventctl *kt_eventctl_start(struct kt_kube *kube,
                                      struct kt_aggregator *agg,
                                      const struct kt_eventctl_opts *o);
/* Writes the checkpoint a last time, stops, frees. */
void kt_eventctl_stop(struct kt_eventctl *c);

#endif
