/* kt_elector: see the header. */
#include "k8s/kt_elector.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit/kt_audit.h"
#include "core/kt_log.h"
#include "core/kt_metrics.h"
#include "core/kt_time.h"

struct observed {
  char record[512]; /* holder + renewTime as last seen */
  int64_t at_mono;  /* when it last changed */
};

struct kt_elector {
  struct kt_kube *kube;
  char *component, *ns, *name, *identity;
  int n;
  int64_t lease_us, renew_deadline_us, retry_us;
  void (*start)(void *), (*stop)(void *);
  void *ud;
  pthread_t thread;
  volatile int quit;
  struct observed *obs; /* per lease */
  struct kt_series *gauge;
};

/* One identity per process, <hostname>_<random>, as the original. */
static pthread_once_t identity_once = PTHREAD_ONCE_INIT;
static char identity[300];

static void make_identity(void)
{
  char host[256] = "kelemetry";
  gethostname(host, sizeof host - 1);
  unsigned long long rnd = (unsigned long long)kt_now_us() ^ ((unsigned long long)getpid() << 32);
  FILE *ur = fopen("/dev/urandom", "rb");
  if (ur) {
    if (fread(&rnd, sizeof rnd, 1, ur) != 1)
      rnd ^= (unsigned long long)kt_mono_us();
    fclose(ur);
  }
  snprintf(identity, sizeof identity, "%s_%016llx", host, rnd);
}

static void lease_path(const struct kt_elector *e, int i, int item, char *buf,
                       size_t len)
{
  if (item)
    snprintf(buf, len, "/apis/coordination.k8s.io/v1/namespaces/%s/leases/%s-%d",
             e->ns, e->name, i);
  else
    snprintf(buf, len, "/apis/coordination.k8s.io/v1/namespaces/%s/leases", e->ns);
}

static void micro_time(char *buf, size_t len)
{
  kt_time_format(kt_now_us(), buf, len);
}

/* The lease body to write, keeping the record's resourceVersion and
 * transitions. */
static char *lease_body(const struct kt_elector *e, int i, const cJSON *cur,
                        const char *holder)
{
  char name[300], now[40];
  snprintf(name, sizeof name, "%s-%d", e->name, i);
  micro_time(now, sizeof now);
  const cJSON *md = cJSON_GetObjectItem(cur, "metadata");
  const cJSON *spec = cJSON_GetObjectItem(cur, "spec");
  const char *prev = kt_json_str(spec, "holderIdentity");
  const cJSON *tr = cJSON_GetObjectItem(spec, "leaseTransitions");
  int transitions = cJSON_IsNumber(tr) ? tr->valueint : 0;
  if (cur && *holder && (!prev || strcmp(prev, holder)))
    transitions++;
  cJSON *b = cJSON_CreateObject();
  cJSON_AddStringToObject(b, "apiVersion", "coordination.k8s.io/v1");
  cJSON_AddStringToObject(b, "kind", "Lease");
  cJSON *m = cJSON_AddObjectToObject(b, "metadata");
  cJSON_AddStringToObject(m, "name", name);
  cJSON_AddStringToObject(m, "namespace", e->ns);
  const char *rv = kt_json_str(md, "resourceVersion");
  if (rv)
    cJSON_AddStringToObject(m, "resourceVersion", rv);
  cJSON *s = cJSON_AddObjectToObject(b, "spec");
  cJSON_AddStringToObject(s, "holderIdentity", holder);
  cJSON_AddNumberToObject(s, "leaseDurationSeconds", (double)((e->lease_us + 999999) / 1000000));
  const char *acq = kt_json_str(spec, "acquireTime");
  cJSON_AddStringToObject(s, "acquireTime", prev && !strcmp(prev, holder) && acq ? acq : now);
  cJSON_AddStringToObject(s, "renewTime", now);
  cJSON_AddNumberToObject(s, "leaseTransitions", transitions);
  char *text = cJSON_PrintUnformatted(b);
  cJSON_Delete(b);
  return text;
}

/* One attempt to take or renew lease i. 1 = held, 0 = held by another
 * (or lost a race), -1 = the apiserver could not be asked. */
static int try_lease(struct kt_elector *e, int i)
{
  char path[512], err[512];
  int status;
  lease_path(e, i, 1, path, sizeof path);
  cJSON *cur = kt_kube_get_json(e->kube, path, &status, err, sizeof err);
  if (!cur && status != 404)
    return -1;
  if (cur) {
    const cJSON *spec = cJSON_GetObjectItem(cur, "spec");
    const char *holder = kt_json_str(spec, "holderIdentity");
    const char *renew = kt_json_str(spec, "renewTime");
    const cJSON *dur = cJSON_GetObjectItem(spec, "leaseDurationSeconds");
    char record[512];
    snprintf(record, sizeof record, "%s|%s", holder ? holder : "", renew ? renew : "");
    struct observed *o = &e->obs[i];
    if (strcmp(o->record, record)) {
      snprintf(o->record, sizeof o->record, "%s", record);
      o->at_mono = kt_mono_us();
    }
    int64_t d = cJSON_IsNumber(dur) ? (int64_t)dur->valuedouble * 1000000 : e->lease_us;
    int mine = holder && !strcmp(holder, e->identity);
    if (!mine && holder && *holder && kt_mono_us() - o->at_mono < d) {
      cJSON_Delete(cur);
      return 0;
    }
  }
  char *body = lease_body(e, i, cur, e->identity), *out = NULL;
  int existed = cur != NULL;
  cJSON_Delete(cur);
  if (!existed)
    lease_path(e, i, 0, path, sizeof path);
  status = kt_kube_request(e->kube, existed ? "PUT" : "POST", path,
                           "application/json", body, &out, err, sizeof err);
  free(body);
  free(out);
  if (status < 0)
    return -1;
  return status >= 200 && status < 300; /* 409: someone else wrote first */
}

static void release(struct kt_elector *e, int i)
{
  char path[512], err[512];
  int status;
  lease_path(e, i, 1, path, sizeof path);
  cJSON *cur = kt_kube_get_json(e->kube, path, &status, err, sizeof err);
  const char *holder = kt_json_str(cJSON_GetObjectItem(cur, "spec"), "holderIdentity");
  if (holder && !strcmp(holder, e->identity)) {
    char *body = lease_body(e, i, cur, ""), *out = NULL;
    kt_kube_request(e->kube, "PUT", path, "application/json", body, &out, err, sizeof err);
    free(body);
    free(out);
  }
  cJSON_Delete(cur);
}

static void nap(struct kt_elector *e, int64_t us)
{
  for (int64_t t = 0; t < us && !e->quit; t += 50000)
    usleep(50000);
}

/* Leads on lease i until the renew deadline passes without a renewal. */
static void lead(struct kt_elector *e, int i)
{
  kt_info("%s: %s leads (lease %s-%d)", e->component, e->identity, e->name, i);
  kt_series_set(e->gauge, 1);
  e->start(e->ud);
  int64_t renewed = kt_mono_us();
  while (!e->quit) {
    nap(e, e->retry_us);
    if (e->quit)
      break;
    if (try_lease(e, i) == 1)
      renewed = kt_mono_us();
    else if (kt_mono_us() - renewed > e->renew_deadline_us)
      break;
  }
  e->stop(e->ud);
  kt_series_set(e->gauge, 0);
  if (e->quit)
    release(e, i);
  else
    kt_warn("%s: %s lost lease %s-%d", e->component, e->identity, e->name, i);
}

static void *run(void *p)
{
  struct kt_elector *e = p;
  while (!e->quit) {
    int won = -1;
    for (int i = 0; i < e->n && won < 0 && !e->quit; i++)
      if (try_lease(e, i) == 1)
        won = i;
    if (won >= 0)
      lead(e, won);
    else
      nap(e, e->retry_us);
  }
  return NULL;
}

static void elector_free(struct kt_elector *e)
{
  free(e->obs);
  free(e->component);
  free(e->ns);
  free(e->name);
  free(e->identity);
  free(e);
}

struct kt_elector *kt_elector_start(struct kt_kube *kube,
                                    const struct kt_elector_opts *o,
                                    void (*start)(void *ud),
                                    void (*stop)(void *ud), void *ud)
{
  struct kt_elector *e = calloc(1, sizeof *e);
  if (!e)
    return NULL;
  pthread_once(&identity_once, make_identity);
  e->kube = kube;
  e->component = strdup(o->component ? o->component : "");
  e->ns = strdup(o->namespace && *o->namespace ? o->namespace : "default");
  e->name = strdup(o->name);
  e->identity = strdup(o->identity && *o->identity ? o->identity : identity);
  e->n = o->num_leaders > 0 ? o->num_leaders : 1;
  e->lease_us = o->lease_us > 0 ? o->lease_us : 15000000;
  e->renew_deadline_us = o->renew_deadline_us > 0 ? o->renew_deadline_us : 10000000;
  e->retry_us = o->retry_us > 0 ? o->retry_us : 2000000;
  e->start = start;
  e->stop = stop;
  e->ud = ud;
  e->obs = calloc((size_t)e->n, sizeof *e->obs);
  struct kt_metric *m = kt_metrics_gauge(kt_metrics_default(), "is_leader",
      "1 while this process holds one of the component's leases",
      (const char *const[]){"component", NULL});
  e->gauge = kt_metric_series(m, (const char *const[]){e->component});
  if (!e->obs || pthread_create(&e->thread, NULL, run, e)) {
    elector_free(e);
    return NULL;
  }
  return e;
}

void kt_elector_signal(struct kt_elector *e)
{
  if (e)
    e->quit = 1;
}

void kt_elector_stop(struct kt_elector *e)
{
  if (!e)
    return;
  e->quit = 1;
  pthread_join(e->thread, NULL);
  elector_free(e);
}
