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

#define MAX_CLUSTERS 32

struct kt_informers {
  struct kt_informers_opts o;
  struct kt_pipeline *p;
  struct kt_kube *kube;          /* the target cluster's, also in others[] */
  struct kt_kube *clients[MAX_CLUSTERS];
  int nclients;
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

/* The value of name in a "name=value,..." list, copied into buf. */
static const char *map_get(const char *list, const char *name, char *buf,
                           size_t len)
{
  size_t nl = strlen(name);
  for (const char *p = list; p && *p;) {
    const char *end = strchr(p, ',');
    size_t l = end ? (size_t)(end - p) : strlen(p);
    if (l > nl && p[nl] == '=' && !strncmp(p, name, nl)) {
      snprintf(buf, len, "%.*s", (int)(l - nl - 1), p + nl + 1);
      return buf;
    }
    p = end ? end + 1 : NULL;
  }
  return NULL;
}

/* The client configuration of cluster name (§1.2): its entry of
 * --kube-config-paths, else (the target only) --kube-config, else (the
 * target only) the in-cluster service account; an --kube-apiservers entry
 * replaces the server, or alone makes an anonymous client. */
static int cluster_config(const struct kt_informers_opts *o, const char *name,
                          struct kt_kube_config *kc, char *err, size_t errlen)
{
  char path[4096], url[1024];
  int target = !strcmp(name, o->cluster);
  const char *cfg = map_get(o->config_paths, name, path, sizeof path);
  const char *api = map_get(o->apiservers, name, url, sizeof url);
  if (!cfg && target && o->kubeconfig && *o->kubeconfig)
    cfg = o->kubeconfig;
  int rc = 0;
  memset(kc, 0, sizeof *kc);
  if (cfg)
    rc = kt_kube_load_kubeconfig(cfg, target ? o->context : NULL, kc, err, errlen);
  else if (target && !api)
    rc = kt_kube_in_cluster(NULL, kc, err, errlen);
  if (!rc && api) {
    free(kc->server);
    kc->server = strdup(api);
  }
  kc->qps = o->qps;
  kc->burst = o->burst;
  return rc;
}

static int add_client(struct kt_informers *in, const char *name)
{
  for (int i = 0; i < in->nclients; i++)
    if (!strcmp(kt_kube_cluster(in->clients[i]), name))
      return 0;
  if (in->nclients == MAX_CLUSTERS)
    return -E2BIG;
  struct kt_kube_config kc;
  char err[512];
  int rc = cluster_config(&in->o, name, &kc, err, sizeof err);
  if (rc) {
    kt_error("cluster %s: %s", name, err);
    return rc;
  }
  struct kt_kube *k = kt_kube_new(&kc, name);
  if (!k) {
    kt_kube_config_free(&kc);
    return -ENOMEM;
  }
  in->clients[in->nclients++] = k;
  return 0;
}

/* Every cluster named in --kube-config-paths or --kube-apiservers. */
static int add_named_clients(struct kt_informers *in, const char *flag,
                             const char *list)
{
  for (const char *p = list; p && *p;) {
    const char *end = strchr(p, ','), *eq = strchr(p, '=');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    if (!eq || (end && eq > end) || eq == p || (size_t)(eq - p) + 1 >= len) {
      kt_error("%s: expected name=value, got \"%.*s\"", flag, (int)len, p);
      return -EINVAL;
    }
    char name[256];
    snprintf(name, sizeof name, "%.*s", (int)(eq - p), p);
    int rc = add_client(in, name);
    if (rc)
      return rc;
    p = end ? end + 1 : NULL;
  }
  return 0;
}

static struct kt_kube *client_for(void *ud, const char *cluster)
{
  struct kt_informers *in = ud;
  for (int i = 0; i < in->nclients; i++)
    if (!strcmp(kt_kube_cluster(in->clients[i]), cluster))
      return in->clients[i];
  return NULL;
}

int kt_informers_start(const struct kt_informers_opts *o, struct kt_pipeline *p,
                       struct kt_informers **out)
{
  *out = NULL;
  /* In a pod the service account is a client too: consumers use it for
   * owner lookups and the live filter without any --kube-config. */
  int client = o->event_enable || o->diff_enable || (o->kubeconfig && *o->kubeconfig) ||
               (o->config_paths && *o->config_paths) || (o->apiservers && *o->apiservers) ||
               getenv("KUBERNETES_SERVICE_HOST");
  if (!client && !o->decorate)
    return 0;
  struct kt_informers *in = calloc(1, sizeof *in);
  if (!in)
    return -ENOMEM;
  in->o = *o;
  in->p = p;
  int prc = kt_patchcache_open(&p->diff_cache, p->store, 0, o->patch_ttl_us,
                               o->snapshot_ttl_us, &in->pc);
  if (prc) {
    free(in);
    return prc;
  }
  kt_decorator_use_informer(p->dec, in->pc, o->fetch_backoff_us,
                            o->fetch_event_timeout_us, o->fetch_total_timeout_us);
  *out = in;
  if (!client)
    return 0;
  /* The target's client is needed by the controllers; without them, other
   * clusters' clients may serve the object cache alone. */
  int rc = add_client(in, o->cluster);
  if (rc && (o->event_enable || o->diff_enable))
    return rc;
  in->kube = rc ? NULL : in->clients[0];
  rc = add_named_clients(in, "--kube-config-paths", o->config_paths);
  rc = rc ? rc : add_named_clients(in, "--kube-apiservers", o->apiservers);
  if (rc)
    return rc;
  /* Bodies for the linkers when an event has none: ask the apiserver. */
  if ((in->oc = kt_objcache_new(client_for, in, in->pc, 0, 0)))
    kt_aggregator_set_fetch(p->agg, kt_objcache_fetch, in->oc);
  if (o->live_filter && in->kube)
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
  for (int i = 0; i < in->nclients; i++)
    kt_kube_free(in->clients[i]);
  kt_patchcache_free(in->pc);
  free(in);
}
