/* kt_diffctl: the diff controller (behaviour spec §1.7.1). Watches every
 * list+watch resource of one cluster (minus the excluded types), following
 * discovery as it changes, and writes into the patch cache: a patch per
 * update (the structural diff of consecutive versions, keyed by the new
 * resourceVersion), a `creation` snapshot for objects added after the first
 * list, a `deletion` snapshot with the last known state. Objects are
 * sanitised before they are kept (no managedFields, no Secret values), so
 * diffs never mention them. Redaction: the label
 * kelemetry.kubewharf.io/diff-redacted or the redact pattern on
 * group/version/resource/namespace/name; a redacted patch says only that
 * the object changed. */
#ifndef KT_DIFFCTL_H
#define KT_DIFFCTL_H
#include <stddef.h>
#include <stdint.h>

#include "k8s/kt_kube.h"

struct kt_patchcache;
struct kt_diffctl;

struct kt_diffctl_opts {
  const char *cluster;
  const char *exclude_types;  /* "events,events.k8s.io/events,..." */
  const char *redact_pattern; /* POSIX ERE, NULL = none */
  int64_t discovery_resync_us; /* 0 = 1 hour */
};

struct kt_diffctl_stats {
  size_t watched;    /* resources being watched */
  size_t objects;    /* objects held */
  size_t bytes;      /* their JSON bytes */
  uint64_t patches, snapshots;
};

/* Starts watching; kube and pc are borrowed. NULL on error (logged). */
struct kt_diffctl *kt_diffctl_start(struct kt_kube *kube,
                                    struct kt_patchcache *pc,
                                    const struct kt_diffctl_opts *o);
/* Only the writer stores (behaviour spec §1.7.1: one writer among the
 * watching leaders). A standby keeps what it would have written over the
 * last hold_us (bounded) and writes it when it becomes the writer, so a
 * writer's death loses nothing that happened within a lease. Starts as a
 * writer. */
void kt_diffctl_set_writer(struct kt_diffctl *d, int writer, int64_t hold_us);
/* Stops every watch and frees (within about a second). */
void kt_diffctl_stop(struct kt_diffctl *d);
void kt_diffctl_stats(struct kt_diffctl *d, struct kt_diffctl_stats *out);

#endif
