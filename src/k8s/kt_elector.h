/* kt_elector: N-leader election on coordination.k8s.io/v1 Leases
 * (behaviour spec §1.6.1). Leases <name>-0 .. <name>-(N-1); a candidate
 * holds at most one; it takes a lease that is absent, free or not renewed
 * within its duration (as observed on the local monotonic clock, like
 * client-go, so clock skew between hosts does not matter), renews it every
 * retry period with optimistic concurrency on resourceVersion, and gives up
 * leadership when it could not renew within the renew deadline. Leading
 * runs start(); losing runs stop() and goes back to candidacy, as often as
 * it happens (the original deadlocked there, upstream #334). On exit the
 * lease is released (holder cleared) so another takes it at once. */
#ifndef KT_ELECTOR_H
#define KT_ELECTOR_H
#include <stdint.h>

#include "k8s/kt_kube.h"

struct kt_elector_opts {
  const char *component;  /* metric label: event-informer, diff-controller */
  const char *namespace;  /* default "default" */
  const char *name;       /* lease name prefix */
  const char *identity;   /* default <hostname>_<random> */
  int num_leaders;        /* default 1 */
  int64_t lease_us;       /* default 15 s */
  int64_t renew_deadline_us; /* default 10 s */
  int64_t retry_us;       /* default 2 s */
};

struct kt_elector;

/* start/stop run in the elector's thread; start must return promptly
 * (start threads), stop must wait for the work to end. kube is borrowed. */
struct kt_elector *kt_elector_start(struct kt_kube *kube,
                                    const struct kt_elector_opts *o,
                                    void (*start)(void *ud),
                                    void (*stop)(void *ud), void *ud);
/* Asks the elector to stop without waiting (to stop several at once). */
void kt_elector_signal(struct kt_elector *e);
/* Stops leading (stop() called if leading), releases, joins, frees. */
void kt_elector_stop(struct kt_elector *e);

#endif
