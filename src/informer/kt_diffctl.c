/* kt_diffctl: see the header. One supervisor thread owns the set of
 * reflectors (one per resource); it reloads discovery every resync
 * interval and starts or stops reflectors to match. */
#include "informer/kt_diffctl.h"

#include <errno.h>
#include <pthread.h>
#include <regex.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit/kt_audit.h"
#include "audit/kt_filter.h"
#include "core/kt_grow.h"
#include "core/kt_log.h"
#include "core/kt_metrics.h"
#include "core/kt_time.h"
#include "diff/kt_decorator.h"
#include "diff/kt_patchcache.h"
#include "json/kt_diff.h"
#include "k8s/kt_discovery.h"
#include "k8s/kt_reflector.h"

#define REDACT_LABEL "kelemetry.kubewharf.io/diff-redacted"

struct watched {
  struct kt_diffctl *d;
  struct kt_gvr gvr;
  struct kt_reflector *r;
  int seen; /* still in discovery (mark and sweep) */
};

/* A record a standby holds back. */
struct held {
  struct held *next;
  int64_t at_us;
  char *key, *name, *json;
};

#define HELD_MAX 20000

struct kt_diffctl {
  struct kt_kube *kube;
  struct kt_patchcache *pc;
  char *cluster, *exclude;
  regex_t re;
  int has_re;
  int64_t resync_us;
  pthread_t thread;
  volatile int stop;
  pthread_mutex_t mu; /* guards w against stats readers */
  struct watched **w;
  size_t nw, cap;
  atomic_uint_fast64_t patches, snapshots;
  pthread_mutex_t held_mu; /* guards writer and the held records */
  int writer;
  int64_t hold_us;
  struct held *held, **held_tail;
  size_t nheld;
  struct kt_series *m_patch, *m_creation, *m_deletion;
  struct kt_series *m_resources, *m_objects, *m_bytes;
};

static int excluded(const struct kt_diffctl *d, const struct kt_gvr *g)
{
  return kt_filter_type_listed(d->exclude, g->group, g->resource);
}

static void object_key(const struct watched *w, const cJSON *obj, char *buf,
                       size_t len)
{
  const cJSON *md = cJSON_GetObjectItem(obj, "metadata");
  const char *ns = kt_json_str(md, "namespace"), *name = kt_json_str(md, "name");
  snprintf(buf, len, "%s/%s/%s/%s/%s", w->d->cluster, w->gvr.group,
           w->gvr.resource, ns ? ns : "", name ? name : "");
}

static int redacted(const struct watched *w, const cJSON *obj)
{
  const cJSON *md = cJSON_GetObjectItem(obj, "metadata");
  if (cJSON_GetObjectItem(cJSON_GetObjectItem(md, "labels"), REDACT_LABEL))
    return 1;
  if (!w->d->has_re)
    return 0;
  char path[1024];
  const char *ns = kt_json_str(md, "namespace"), *name = kt_json_str(md, "name");
  snprintf(path, sizeof path, "%s/%s/%s/%s/%s", w->gvr.group, w->gvr.version,
           w->gvr.resource, ns ? ns : "", name ? name : "");
  return regexec(&w->d->re, path, 0, NULL, 0) == 0;
}

static const char *rv_of(const cJSON *obj)
{
  const char *rv = kt_json_str(cJSON_GetObjectItem(obj, "metadata"), "resourceVersion");
  return rv ? rv : "";
}

static void store(struct kt_diffctl *d, const char *key, const char *name,
                  const char *text)
{
  if (kt_patchcache_put(d->pc, key, name, text))
    return;
  int is_patch = !strncmp(name, "rv/", 3);
  atomic_fetch_add(is_patch ? &d->patches : &d->snapshots, 1);
  kt_series_add(is_patch ? d->m_patch
                : !strcmp(name, "creation") ? d->m_creation : d->m_deletion, 1);
}

static void held_free(struct held *h)
{
  free(h->key);
  free(h->name);
  free(h->json);
  free(h);
}

/* Drops held records older than hold_us (or over the bound). Under held_mu. */
static void held_trim(struct kt_diffctl *d)
{
  int64_t now = kt_mono_us();
  while (d->held && (d->nheld > HELD_MAX || now - d->held->at_us > d->hold_us)) {
    struct held *h = d->held;
    d->held = h->next;
    if (!d->held)
      d->held_tail = &d->held;
    d->nheld--;
    held_free(h);
  }
}

/* Stores, or holds back while a standby. Takes ownership of text. */
static void put_text(struct kt_diffctl *d, const char *key, const char *name,
                     char *text)
{
  pthread_mutex_lock(&d->held_mu);
  if (d->writer) {
    pthread_mutex_unlock(&d->held_mu);
    store(d, key, name, text);
    free(text);
    return;
  }
  struct held *h = calloc(1, sizeof *h);
  if (h && (h->key = strdup(key)) && (h->name = strdup(name))) {
    h->json = text;
    text = NULL;
    h->at_us = kt_mono_us();
    *d->held_tail = h;
    d->held_tail = &h->next;
    d->nheld++;
    h = NULL;
  }
  if (h)
    held_free(h);
  free(text);
  held_trim(d);
  pthread_mutex_unlock(&d->held_mu);
}

void kt_diffctl_set_writer(struct kt_diffctl *d, int writer, int64_t hold_us)
{
  pthread_mutex_lock(&d->held_mu);
  d->hold_us = hold_us > 0 ? hold_us : 15000000;
  d->writer = writer;
  held_trim(d);
  struct held *h = writer ? d->held : NULL;
  if (writer) {
    d->held = NULL;
    d->held_tail = &d->held;
    d->nheld = 0;
  }
  pthread_mutex_unlock(&d->held_mu);
  if (writer && h)
    kt_info("diff controller %s: now the writer, storing what was held back", d->cluster);
  while (h) { /* writes stay in order: this thread, then new ones */
    struct held *n = h->next;
    store(d, h->key, h->name, h->json);
    held_free(h);
    h = n;
  }
}

static void put_json(struct watched *w, const char *key, const char *name,
                     cJSON *rec)
{
  char *text = cJSON_PrintUnformatted(rec);
  if (text)
    put_text(w->d, key, name, text);
  cJSON_Delete(rec);
}

static void snapshot(struct watched *w, const char *key, const char *name,
                     const cJSON *obj)
{
  cJSON *rec = cJSON_CreateObject();
  cJSON_AddStringToObject(rec, "resourceVersion", rv_of(obj));
  cJSON_AddBoolToObject(rec, "redacted", redacted(w, obj));
  cJSON_AddItemToObject(rec, "value", cJSON_Duplicate(obj, 1));
  put_json(w, key, name, rec);
}

static void patch(struct watched *w, const char *key, const cJSON *old,
                  const cJSON *obj)
{
  const char *orv = rv_of(old), *nrv = rv_of(obj);
  cJSON *rec = cJSON_CreateObject();
  cJSON_AddNumberToObject(rec, "informerTime", (double)kt_now_us());
  cJSON_AddStringToObject(rec, "oldResourceVersion", orv);
  cJSON_AddStringToObject(rec, "newResourceVersion", nrv);
  int red = redacted(w, old) || redacted(w, obj);
  cJSON_AddBoolToObject(rec, "redacted", red);
  if (!red) {
    struct kt_diff_list l;
    kt_diff_list_init(&l, 0);
    kt_diff_compare(old, obj, &l);
    char *text = kt_diff_render(&l);
    cJSON_AddStringToObject(rec, "diff", text ? text : "");
    free(text);
    kt_diff_list_free(&l);
  }
  char name[96];
  snprintf(name, sizeof name, "rv/%s", nrv);
  put_json(w, key, name, rec);
}

static void prepare(void *ud, cJSON *obj)
{
  struct watched *w = ud;
  kt_decorator_sanitize(obj, w->gvr.group, w->gvr.resource);
}

/* diff_controller_on_create/_on_update/_on_delete (§3.2; the original
 * never emitted on_create and counted both snapshots as on_delete). */
static struct kt_defer m_on[3];
static pthread_once_t m_once = PTHREAD_ONCE_INIT;

static void register_on_metrics(void)
{
  const char *const labels[] = {"apiGroup", "resource", NULL};
  kt_defer_register(&m_on[KT_ADDED], "diff_controller_on_create", "Objects added", labels);
  kt_defer_register(&m_on[KT_MODIFIED], "diff_controller_on_update", "Objects changed", labels);
  kt_defer_register(&m_on[KT_DELETED], "diff_controller_on_delete", "Objects deleted", labels);
}

static void change(void *ud, enum kt_change type, const cJSON *old,
                   const cJSON *obj, int initial)
{
  struct watched *w = ud;
  int64_t t0 = kt_mono_us();
  pthread_once(&m_once, register_on_metrics);
  char key[1024];
  object_key(w, obj ? obj : old, key, sizeof key);
  if (type == KT_ADDED && !initial)
    snapshot(w, key, "creation", obj);
  else if (type == KT_MODIFIED && old)
    patch(w, key, old, obj);
  else if (type == KT_DELETED && old)
    snapshot(w, key, "deletion", old);
  kt_defer_done(&m_on[type], (const char *const[]){w->gvr.group, w->gvr.resource}, t0);
}

static void start_watch(struct kt_diffctl *d, const struct kt_gvr *g)
{
  struct watched *w = calloc(1, sizeof *w);
  if (!w || KT_GROW(d->w, d->cap, d->nw)) {
    free(w);
    return;
  }
  char path[512];
  w->d = d;
  w->gvr = *g;
  w->seen = 1;
  kt_gvr_path(g, path, sizeof path);
  struct kt_reflector_opts ro = {.path = path, .keep_objects = 1};
  struct kt_reflector_ops ops = {prepare, change};
  if (!(w->r = kt_reflector_start(d->kube, &ro, &ops, w))) {
    free(w);
    return;
  }
  kt_info("diff controller %s: watching %s", d->cluster, path);
  pthread_mutex_lock(&d->mu);
  d->w[d->nw++] = w;
  pthread_mutex_unlock(&d->mu);
}

/* Matches the reflectors to discovery: new resources watched, vanished
 * ones stopped. */
static void sync_watches(struct kt_diffctl *d, const struct kt_discovery *disc)
{
  for (size_t i = 0; i < d->nw; i++)
    d->w[i]->seen = 0;
  for (size_t j = 0; j < disc->n; j++) {
    const struct kt_gvr *g = &disc->v[j];
    if (!g->list_watch || excluded(d, g))
      continue;
    size_t i = 0;
    while (i < d->nw && !(strcmp(d->w[i]->gvr.group, g->group) == 0 &&
                          strcmp(d->w[i]->gvr.resource, g->resource) == 0 &&
                          strcmp(d->w[i]->gvr.version, g->version) == 0))
      i++;
    if (i < d->nw)
      d->w[i]->seen = 1;
    else
      start_watch(d, g);
  }
  for (size_t i = 0; i < d->nw;) {
    if (d->w[i]->seen) {
      i++;
      continue;
    }
    struct watched *w = d->w[i];
    kt_info("diff controller %s: %s/%s gone from discovery", d->cluster,
            w->gvr.group, w->gvr.resource);
    pthread_mutex_lock(&d->mu);
    d->w[i] = d->w[--d->nw];
    pthread_mutex_unlock(&d->mu);
    kt_reflector_stop(w->r);
    free(w);
  }
}

static void *run(void *p)
{
  struct kt_diffctl *d = p;
  int64_t next = 0;
  while (!d->stop) {
    if (kt_mono_us() >= next) {
      struct kt_discovery disc;
      char err[512];
      if (kt_discovery_load(d->kube, &disc, err, sizeof err) == 0) {
        sync_watches(d, &disc);
        kt_discovery_free(&disc);
        next = kt_mono_us() + d->resync_us;
      } else {
        kt_warn("diff controller %s: discovery: %s", d->cluster, err);
        next = kt_mono_us() + 2000000;
      }
    }
    struct kt_diffctl_stats st;
    kt_diffctl_stats(d, &st);
    kt_series_set(d->m_resources, (double)st.watched);
    kt_series_set(d->m_objects, (double)st.objects);
    kt_series_set(d->m_bytes, (double)st.bytes);
    usleep(100000);
  }
  return NULL;
}

struct kt_diffctl *kt_diffctl_start(struct kt_kube *kube,
                                    struct kt_patchcache *pc,
                                    const struct kt_diffctl_opts *o)
{
  struct kt_diffctl *d = calloc(1, sizeof *d);
  if (!d)
    return NULL;
  d->kube = kube;
  d->pc = pc;
  d->cluster = strdup(o->cluster ? o->cluster : "");
  d->exclude = strdup(o->exclude_types ? o->exclude_types : "");
  d->resync_us = o->discovery_resync_us ? o->discovery_resync_us : 3600000000LL;
  pthread_mutex_init(&d->mu, NULL);
  pthread_mutex_init(&d->held_mu, NULL);
  d->writer = 1;
  d->hold_us = 15000000;
  d->held_tail = &d->held;
  struct kt_metrics *reg = kt_metrics_default();
  const char *const cl[] = {d->cluster, NULL};
  struct kt_metric *rec = kt_metrics_counter(reg, "diff_controller_records_total",
      "Patches and snapshots the diff controller wrote, by cluster and kind",
      (const char *const[]){"cluster", "kind", NULL});
  d->m_patch = kt_metric_series(rec, (const char *const[]){d->cluster, "patch"});
  d->m_creation = kt_metric_series(rec, (const char *const[]){d->cluster, "creation"});
  d->m_deletion = kt_metric_series(rec, (const char *const[]){d->cluster, "deletion"});
  d->m_resources = kt_metric_series(kt_metrics_gauge(reg, "diff_controller_watched_resources",
      "Resources the diff controller watches", (const char *const[]){"cluster", NULL}), cl);
  d->m_objects = kt_metric_series(kt_metrics_gauge(reg, "diff_controller_objects",
      "Objects whose last version the diff controller holds", (const char *const[]){"cluster", NULL}), cl);
  d->m_bytes = kt_metric_series(kt_metrics_gauge(reg, "diff_controller_object_bytes",
      "JSON bytes of the objects the diff controller holds", (const char *const[]){"cluster", NULL}), cl);
  if (o->redact_pattern && *o->redact_pattern) {
    if (regcomp(&d->re, o->redact_pattern, REG_EXTENDED | REG_NOSUB)) {
      kt_error("diff controller: invalid redact pattern %s", o->redact_pattern);
      kt_diffctl_stop(d);
      return NULL;
    }
    d->has_re = 1;
  }
  if (pthread_create(&d->thread, NULL, run, d)) {
    kt_diffctl_stop(d);
    return NULL;
  }
  return d;
}

void kt_diffctl_stop(struct kt_diffctl *d)
{
  if (!d)
    return;
  d->stop = 1;
  if (d->thread)
    pthread_join(d->thread, NULL);
  for (size_t i = 0; i < d->nw; i++) /* all at once: each takes up to 1 s */
    kt_reflector_signal(d->w[i]->r);
  for (size_t i = 0; i < d->nw; i++) {
    kt_reflector_stop(d->w[i]->r);
    free(d->w[i]);
  }
  free(d->w);
  if (d->m_resources) { /* no longer watching */
    kt_series_set(d->m_resources, 0);
    kt_series_set(d->m_objects, 0);
    kt_series_set(d->m_bytes, 0);
  }
  if (d->has_re)
    regfree(&d->re);
  pthread_mutex_destroy(&d->mu);
  while (d->held) {
    struct held *h = d->held;
    d->held = h->next;
    held_free(h);
  }
  pthread_mutex_destroy(&d->held_mu);
  free(d->cluster);
  free(d->exclude);
  free(d);
}

void kt_diffctl_stats(struct kt_diffctl *d, struct kt_diffctl_stats *out)
{
  memset(out, 0, sizeof *out);
  pthread_mutex_lock(&d->mu);
  out->watched = d->nw;
  for (size_t i = 0; i < d->nw; i++) {
    struct kt_reflector_stats rs;
    kt_reflector_stats(d->w[i]->r, &rs);
    out->objects += rs.objects;
    out->bytes += rs.bytes;
  }
  pthread_mutex_unlock(&d->mu);
  out->patches = atomic_load(&d->patches);
  out->snapshots = atomic_load(&d->snapshots);
}
