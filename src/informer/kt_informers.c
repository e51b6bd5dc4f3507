/* kt_informers: see the header. Without election a controller runs once
 * (not N times like the original's disabled-election quirk). */
#include "informer/kt_informers.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aggregator/kt_aggregator.h"
#include "audit/kt_pipeline.h"
#include "core/kt_log.h"
#include "diff/kt_decorator.h"
#include "diff/kt_patchcache.h"
#include "informer/kt_diffctl.h"
#include "informer/kt_eventctl.h"
#include "informer/kt_livefilter.h"
#include "informer/kt_objcache.h"
#include "k8s/kt_elector.h"
#include "k8s/kt_kube.h"

struct kt_informers {
  struct kt_informers_opts o;
  struct kt_pipeline *p;
  struct kt_kube *kube;
  struct kt_patchcache *pc;
  struct kt_objcache *oc;
  struct kt_livefilter *lf;
  struct kt_elector *event_el, *diff_el, *writer_el;
  struct kt_eventctl *eventctl;
  struct kt_diffctl *diffctl;
};

static void event_start(void *ud)
{
  struct kt_informers *in = ud;
  struct kt_eventctl_opts eo = {in->o.cluster, in->o.cm_namespace, in->o.cm_name,
                                in->o.cm_sync_us, 0, in->o.exclude_types};
  in->eventctl = kt_eventctl_start(in->kube, in->p->agg, &eo);
}

static void event_stop(void *ud)
{
  struct kt_informers *in = ud;
  kt_eventctl_stop(in->eventctl);
  in->eventctl = NULL;
}

static void writer_on(void *ud)
{
  struct kt_informers *in = ud;
  kt_diffctl_set_writer(in->diffctl, 1, in->o.diff_le.lease_us);
}

static void writer_off(void *ud)
{
  struct kt_informers *in = ud;
  kt_diffctl_set_writer(in->diffctl, 0, in->o.diff_le.lease_us);
}

static void diff_start(void *ud)
{
  struct kt_informers *in = ud;
  struct kt_diffctl_opts d = {in->o.cluster, in->o.exclude_types,
                              in->o.redact_pattern, in->o.discovery_resync_us};
  if (!(in->diffctl = kt_diffctl_start(in->kube, in->pc, &d)) || !in->o.diff_le.enable)
    return;
  /* One writer among the watching leaders; the others stand by. */
  writer_off(in);
  struct kt_informers_election le = in->o.diff_le;
  char name[256];
  snprintf(name, sizeof name, "%s-writer", le.name ? le.name : "kelemetry-diff-controller");
  struct kt_elector_opts eo = {"diff-writer", le.namespace, name, NULL, 1, le.lease_us,
                               le.renew_deadline_us, le.retry_us};
  in->writer_el = kt_elector_start(in->kube, &eo, writer_on, writer_off, in);
}

static void diff_stop(void *ud)
{
  struct kt_informers *in = ud;
  kt_elector_stop(in->writer_el);
  in->writer_el = NULL;
  kt_diffctl_stop(in->diffctl);
  in->diffctl = NULL;
}

/* Runs the component under election, or directly when election is off. */
static struct kt_elector *run(struct kt_informers *in, const char *component,
                              const struct kt_informers_election *le,
                              void (*start)(void *), void (*stop)(void *))
{
  if (!le->enable) {
    start(in);
    return NULL;
  }
  struct kt_elector_opts eo = {component, le->namespace, le->name, NULL,
                               le->num_leaders, le->lease_us,
                               le->renew_deadline_us, le->retry_us};
  return kt_elector_start(in->kube, &eo, start, stop, in);
}

int kt_informers_start(const struct kt_informers_opts *o, struct kt_pipeline *p,
                       struct kt_informers **out)
{
  *out = NULL;
  int client = o->event_enable || o->diff_enable || (o->kubeconfig && *o->kubeconfig);
  if (!client && !o->decorate)
    return 0;
  struct kt_informers *in = calloc(1, sizeof *in);
  if (!in)
    return -ENOMEM;
  in->o = *o;
  in->p = p;
  in->pc = kt_patchcache_new(p->store, 0, o->patch_ttl_us, o->snapshot_ttl_us);
  if (!in->pc) {
    free(in);
    return -ENOMEM;
  }
  kt_decorator_use_informer(p->dec, in->pc, o->fetch_backoff_us,
                            o->fetch_event_timeout_us, o->fetch_total_timeout_us);
  *out = in;
  if (!client)
    return 0;
  struct kt_kube_config kc;
  char err[512];
  int rc = o->kubeconfig && *o->kubeconfig
               ? kt_kube_load_kubeconfig(o->kubeconfig, o->context, &kc, err, sizeof err)
               : kt_kube_in_cluster(NULL, &kc, err, sizeof err);
  if (rc) {
    kt_error("cluster %s: %s", o->cluster, err);
    return rc;
  }
  kc.qps = o->qps;
  kc.burst = o->burst;
  if (!(in->kube = kt_kube_new(&kc, o->cluster))) {
    kt_kube_config_free(&kc);
    return -ENOMEM;
  }
  /* Bodies for the linkers when an event has none: ask the apiserver. */
  if ((in->oc = kt_objcache_new(in->kube, in->pc, 0, 0)))
    kt_aggregator_set_fetch(p->agg, kt_objcache_fetch, in->oc);
  if (o->live_filter)
    in->lf = kt_livefilter_start(in->kube, p->filter);
  if (o->event_enable)
    in->event_el = run(in, "event-informer", &o->event_le, event_start, event_stop);
  if (o->diff_enable)
    in->diff_el = run(in, "diff-controller", &o->diff_le, diff_start, diff_stop);
  return 0;
}

void kt_informers_stop(struct kt_informers *in)
{
  if (!in)
    return;
  kt_livefilter_stop(in->lf);
  in->lf = NULL;
  kt_elector_signal(in->event_el);
  kt_elector_signal(in->diff_el);
  if (in->event_el)
    kt_elector_stop(in->event_el);
  else if (in->o.event_enable)
    event_stop(in);
  if (in->diff_el)
    kt_elector_stop(in->diff_el);
  else if (in->o.diff_enable)
    diff_stop(in);
  in->event_el = in->diff_el = NULL;
  in->o.event_enable = in->o.diff_enable = 0;
}

void kt_informers_free(struct kt_informers *in)
{
  if (!in)
    return;
  kt_informers_stop(in);
  kt_aggregator_set_fetch(in->p->agg, NULL, NULL);
  kt_objcache_free(in->oc);
  kt_kube_free(in->kube);
  kt_patchcache_free(in->pc);
  free(in);
}
