/* kt_reflector: see the header. The known state is a map "ns/name" ->
 * entry (resourceVersion and, with keep_objects, the compact JSON text):
 * text costs about the object's JSON size, where a parsed tree would cost
 * several times that; an old state is parsed only when a change needs it. */
#include "k8s/kt_reflector.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit/kt_audit.h"
#include "core/kt_log.h"
#include "core/kt_map.h"
#include "core/kt_metrics.h"
#include "core/kt_time.h"

struct entry {
  char *rv;
  char *text; /* NULL unless keep_objects */
  size_t len;
  unsigned gen; /* list generation that last saw it */
};

struct kt_reflector {
  struct kt_kube *kube;
  struct kt_reflector_opts o;
  char *path;
  struct kt_reflector_ops ops;
  void *ud;
  pthread_t thread;
  volatile int stop;
  atomic_int synced;
  pthread_mutex_t mu; /* guards known and stats against readers */
  struct kt_map known;
  struct kt_reflector_stats st;
  char rv[64];        /* last resourceVersion seen (list or watch) */
  int expired;        /* the watch asked for a relist */
  unsigned gen;
  int started; /* a thread runs (not offline) */
  struct kt_series *m_list, *m_expired, *m_error, *m_events;
};

/* Series of informer_requests_total{cluster,path,outcome}. */
static struct kt_series *series(struct kt_reflector *r, const char *outcome)
{
  struct kt_metric *m = kt_metrics_counter(kt_metrics_default(), "informer_requests_total",
      "List and watch outcomes per watched path: list, expired (relist), error, event",
      (const char *const[]){"cluster", "path", "outcome", NULL});
  return kt_metric_series(m, (const char *const[]){r->kube ? kt_kube_cluster(r->kube) : "", r->path, outcome});
}

static void entry_free(void *p)
{
  struct entry *e = p;
  if (!e)
    return;
  free(e->rv);
  free(e->text);
  free(e);
}

static void obj_key(const cJSON *obj, char *buf, size_t len)
{
  const cJSON *md = cJSON_GetObjectItem(obj, "metadata");
  const char *ns = kt_json_str(md, "namespace"), *name = kt_json_str(md, "name");
  snprintf(buf, len, "%s/%s", ns ? ns : "", name ? name : "");
}

static const char *obj_rv(const cJSON *obj)
{
  const char *rv = kt_json_str(cJSON_GetObjectItem(obj, "metadata"), "resourceVersion");
  return rv ? rv : "";
}

/* Records obj as the object's state and reports the change; skips a
 * resourceVersion already known. Takes no ownership of obj. */
static void apply(struct kt_reflector *r, enum kt_change type, cJSON *obj,
                  int initial)
{
  char key[512];
  obj_key(obj, key, sizeof key);
  const char *rv = obj_rv(obj);
  if (*rv)
    snprintf(r->rv, sizeof r->rv, "%s", rv);
  pthread_mutex_lock(&r->mu);
  struct entry *e = kt_map_get(&r->known, key);
  if (e)
    e->gen = r->gen;
  int same = e && !strcmp(e->rv, rv);
  pthread_mutex_unlock(&r->mu);
  if ((type == KT_DELETED && !e) || (type != KT_DELETED && same))
    return;
  if (type != KT_DELETED)
    type = e ? KT_MODIFIED : KT_ADDED;
  if (r->ops.prepare && type != KT_DELETED)
    r->ops.prepare(r->ud, obj);
  cJSON *old = e && e->text ? cJSON_ParseWithLength(e->text, e->len) : NULL;
  kt_series_add(r->m_events, 1);
  if (r->ops.change)
    r->ops.change(r->ud, type, old, type == KT_DELETED ? NULL : obj,
                  type == KT_ADDED && initial);
  cJSON_Delete(old);
  pthread_mutex_lock(&r->mu);
  if (type == KT_DELETED) {
    e = kt_map_del(&r->known, key);
    if (e) {
      r->st.objects--;
      r->st.bytes -= e->len;
    }
    entry_free(e);
  } else {
    struct entry *n = calloc(1, sizeof *n), *prev = NULL;
    if (n && (n->rv = strdup(rv)) &&
        (!r->o.keep_objects || (n->text = cJSON_PrintUnformatted(obj)))) {
      n->len = n->text ? strlen(n->text) : 0;
      n->gen = r->gen;
      if (!kt_map_put(&r->known, key, n, (void **)&prev)) {
        r->st.objects += !prev;
        r->st.bytes += n->len - (prev ? prev->len : 0);
        n = NULL;
      }
    }
    entry_free(prev);
    entry_free(n);
  }
  pthread_mutex_unlock(&r->mu);
}

/* Sleeps up to ms, in slices, unless stopping. */
static void nap(struct kt_reflector *r, long ms)
{
  for (long t = 0; t < ms && !r->stop; t += 100)
    usleep(100000);
}

/* ---- list --------------------------------------------------------------- */

struct gone_ctx {
  struct kt_reflector *r;
  cJSON *gone; /* array of last states */
};

static int collect_gone(const char *key, void *value, void *ud)
{
  struct gone_ctx *g = ud;
  struct entry *e = value;
  if (e->gen == g->r->gen)
    return 0;
  cJSON *o = e->text ? cJSON_ParseWithLength(e->text, e->len) : NULL;
  if (!o) { /* keep the identity so the deletion can be reported */
    char ns[256], name[256];
    const char *slash = strchr(key, '/');
    snprintf(ns, sizeof ns, "%.*s", (int)(slash ? slash - key : 0), key);
    snprintf(name, sizeof name, "%s", slash ? slash + 1 : key);
    o = cJSON_CreateObject();
    cJSON *md = cJSON_AddObjectToObject(o, "metadata");
    cJSON_AddStringToObject(md, "namespace", ns);
    cJSON_AddStringToObject(md, "name", name);
    cJSON_AddStringToObject(md, "resourceVersion", e->rv);
  }
  cJSON_AddItemToArray(g->gone, o);
  return 0;
}

static int list(struct kt_reflector *r, char *err, size_t errlen)
{
  char cont[2048] = "", path[4096], esc[2048];
  int first = !atomic_load(&r->synced), status;
  r->gen++;
  kt_series_add(r->m_list, 1);
  do {
    kt_kube_escape(cont, esc, sizeof esc);
    snprintf(path, sizeof path, "%s%climit=%d%s%s", r->path,
             strchr(r->path, '?') ? '&' : '?', r->o.page_size,
             *cont ? "&continue=" : "", esc);
    cJSON *page = kt_kube_get_json(r->kube, path, &status, err, errlen);
    if (!page)
      return status == 410 ? -ESTALE : -EIO;
    const cJSON *md = cJSON_GetObjectItem(page, "metadata"), *it;
    const char *rv = kt_json_str(md, "resourceVersion"), *c = kt_json_str(md, "continue");
    cJSON *items = cJSON_GetObjectItem(page, "items");
    cJSON_ArrayForEach(it, items) apply(r, KT_ADDED, (cJSON *)it, first);
    if (rv)
      snprintf(r->rv, sizeof r->rv, "%s", rv);
    snprintf(cont, sizeof cont, "%s", c ? c : "");
    cJSON_Delete(page);
  } while (*cont && !r->stop);
  if (r->stop)
    return -EINTR;
  /* What the list no longer holds was deleted while we were not watching. */
  struct gone_ctx g = {r, cJSON_CreateArray()};
  pthread_mutex_lock(&r->mu);
  kt_map_sweep(&r->known, collect_gone, &g);
  pthread_mutex_unlock(&r->mu);
  cJSON *it;
  char keep[64];
  snprintf(keep, sizeof keep, "%s", r->rv);
  cJSON_ArrayForEach(it, g.gone) apply(r, KT_DELETED, it, 0);
  snprintf(r->rv, sizeof r->rv, "%s", keep);
  cJSON_Delete(g.gone);
  atomic_store(&r->synced, 1);
  return 0;
}

/* ---- watch -------------------------------------------------------------- */

static int on_line(char *line, size_t len, void *ud)
{
  struct kt_reflector *r = ud;
  cJSON *ev = cJSON_ParseWithLength(line, len);
  const char *type = kt_json_str(ev, "type");
  cJSON *obj = cJSON_GetObjectItem(ev, "object");
  int stop = 0;
  if (!type && kt_json_str(ev, "kind") && !strcmp(kt_json_str(ev, "kind"), "Status")) {
    type = "ERROR"; /* a plain Status answer instead of a stream */
    obj = ev;
  }
  if (!type || !cJSON_IsObject(obj)) {
    kt_warn("watch %s: a line that is not a watch event", r->path);
    stop = 1;
  } else if (!strcmp(type, "ERROR")) {
    const cJSON *code = cJSON_GetObjectItem(obj, "code");
    if (cJSON_IsNumber(code) && code->valueint == 410) {
      r->expired = 1;
      kt_series_add(r->m_expired, 1);
    } else {
      kt_warn("watch %s: %s", r->path, kt_json_str(obj, "message") ? kt_json_str(obj, "message") : "error");
    }
    stop = 1;
  } else if (!strcmp(type, "BOOKMARK")) {
    const char *rv = obj_rv(obj);
    if (*rv)
      snprintf(r->rv, sizeof r->rv, "%s", rv);
  } else if (!strcmp(type, "ADDED") || !strcmp(type, "MODIFIED")) {
    apply(r, KT_MODIFIED, obj, 0);
  } else if (!strcmp(type, "DELETED")) {
    apply(r, KT_DELETED, obj, 0);
  }
  cJSON_Delete(ev);
  return stop || r->stop;
}

static int watch(struct kt_reflector *r, char *err, size_t errlen)
{
  char path[4096];
  long t = r->o.watch_timeout_s ? r->o.watch_timeout_s : 300 + random() % 300;
  snprintf(path, sizeof path,
           "%s%cwatch=1&allowWatchBookmarks=true&resourceVersion=%s&timeoutSeconds=%ld",
           r->path, strchr(r->path, '?') ? '&' : '?', r->rv, t);
  r->expired = 0;
  int status = kt_kube_stream(r->kube, path, on_line, r, &r->stop, t + 30, err, errlen);
  if (status == 410) {
    r->expired = 1;
    kt_series_add(r->m_expired, 1);
  }
  return status == 200 || r->expired ? 0 : -EIO;
}

static void *run(void *p)
{
  struct kt_reflector *r = p;
  char err[512];
  long backoff = 0;
  int need_list = 1;
  while (!r->stop) {
    int rc = need_list ? list(r, err, sizeof err) : watch(r, err, sizeof err);
    if (r->stop)
      break;
    if (rc) {
      kt_series_add(r->m_error, 1);
      backoff = backoff ? (backoff * 2 > 30000 ? 30000 : backoff * 2) : 500;
      long sleep_ms = backoff / 2 + random() % (backoff / 2 + 1);
      kt_warn("%s %s (cluster %s): %s; retry in %ld ms", need_list ? "list" : "watch",
              r->path, kt_kube_cluster(r->kube), err, sleep_ms);
      nap(r, sleep_ms);
      /* A watch that cannot resume may have lost its place: relist. */
      need_list = need_list || backoff >= 4000;
      continue;
    }
    backoff = 0;
    need_list = !need_list ? r->expired : 0;
  }
  return NULL;
}

static struct kt_reflector *make(struct kt_kube *kube,
                                  const struct kt_reflector_opts *o,
                                  const struct kt_reflector_ops *ops, void *ud)
{
  struct kt_reflector *r = calloc(1, sizeof *r);
  if (!r || !(r->path = strdup(o->path))) {
    free(r);
    return NULL;
  }
  r->kube = kube;
  r->o = *o;
  r->o.path = r->path;
  if (r->o.page_size <= 0)
    r->o.page_size = 500;
  r->ops = *ops;
  r->ud = ud;
  kt_map_init(&r->known);
  pthread_mutex_init(&r->mu, NULL);
  r->m_list = series(r, "list");
  r->m_expired = series(r, "expired");
  r->m_error = series(r, "error");
  r->m_events = series(r, "event");
  return r;
}

struct kt_reflector *kt_reflector_start(struct kt_kube *kube,
                                        const struct kt_reflector_opts *o,
                                        const struct kt_reflector_ops *ops,
                                        void *ud)
{
  struct kt_reflector *r = make(kube, o, ops, ud);
  if (r && pthread_create(&r->thread, NULL, run, r)) {
    kt_map_clear(&r->known, NULL);
    pthread_mutex_destroy(&r->mu);
    free(r->path);
    free(r);
    return NULL;
  }
  if (r)
    r->started = 1;
  return r;
}

struct kt_reflector *kt_reflector_offline(const struct kt_reflector_opts *o,
                                          const struct kt_reflector_ops *ops,
                                          void *ud)
{
  return make(NULL, o, ops, ud);
}

int kt_reflector_feed(struct kt_reflector *r, char *line, size_t len)
{
  return on_line(line, len, r);
}

void kt_reflector_signal(struct kt_reflector *r)
{
  if (r)
    r->stop = 1;
}

void kt_reflector_stop(struct kt_reflector *r)
{
  if (!r)
    return;
  r->stop = 1;
  if (r->started)
    pthread_join(r->thread, NULL);
  kt_map_clear(&r->known, entry_free);
  pthread_mutex_destroy(&r->mu);
  free(r->path);
  free(r);
}

void kt_reflector_stats(const struct kt_reflector *r,
                        struct kt_reflector_stats *out)
{
  pthread_mutex_lock((pthread_mutex_t *)&r->mu);
  *out = r->st;
  pthread_mutex_unlock((pthread_mutex_t *)&r->mu);
}
