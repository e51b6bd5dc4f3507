/* kt_frontend: see the header.
 *
 * A search answers one trace per matching object (its windows merged, its
 * links followed as the mode says) and remembers, under a random 64-bit
 * key, what was searched: the object and the time range. The trace id
 * handed out is ff<mode>e1e3e7<key>; GET /api/traces/<id> rebuilds the
 * trace from that entry in the mode the id names, so editing the mode
 * digits re-renders the same search another way. Entries expire after
 * --jaeger-trace-cache-ttl (the original's never do, §9.19) and are
 * persisted in the store's kv space so links survive a restart. */
#include "frontend/kt_frontend.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/kt_log.h"
#include "core/kt_map.h"
#include "core/kt_metrics.h"
#include "core/kt_time.h"
#include "frontend/kt_assemble.h"
#include "frontend/kt_modes.h"
#include "frontend/kt_tracecache.h"
#include "store/kt_store.h"

#define MAX_LIMIT 1500
#define STORE_DOWN "the span store cannot be read now (server unreachable); retry later"

struct kt_frontend {
  struct kt_frontend_opts o;
  struct kt_store *store;
  struct kt_tracecache *cache;
  pthread_mutex_t mu;
  char *clusters[256];
  int nclusters, fixed_clusters;
  struct kt_http_route routes[16];
  size_t nroutes;
  struct kt_metric *m_req;
};

/* ---- responses --------------------------------------------------------- */

static void send_json(struct kt_http_resp *resp, int status, cJSON *j)
{
  char *text = cJSON_PrintUnformatted(j);
  cJSON_Delete(j);
  if (!text) {
    resp->status = 500;
    return;
  }
  kt_http_set_body(resp, status, "application/json", text, strlen(text));
}

static cJSON *envelope(cJSON *data)
{
  cJSON *e = cJSON_CreateObject();
  cJSON_AddItemToObject(e, "data", data ? data : cJSON_CreateNull());
  cJSON_AddNumberToObject(e, "total", cJSON_IsArray(data) ? cJSON_GetArraySize(data) : 0);
  cJSON_AddNumberToObject(e, "limit", 0);
  cJSON_AddNumberToObject(e, "offset", 0);
  cJSON_AddNullToObject(e, "errors");
  return e;
}

static int jaeger_error(struct kt_http_resp *resp, int code, const char *msg)
{
  cJSON *e = envelope(NULL);
  cJSON *errs = cJSON_CreateArray(), *one = cJSON_CreateObject();
  cJSON_AddNumberToObject(one, "code", code);
  cJSON_AddStringToObject(one, "msg", msg);
  cJSON_AddItemToArray(errs, one);
  cJSON_ReplaceItemInObject(e, "errors", errs);
  send_json(resp, code, e);
  return 0;
}

/* ---- clusters ---------------------------------------------------------- */

static void add_cluster_locked(struct kt_frontend *f, const char *c)
{
  for (int i = 0; i < f->nclusters; i++)
    if (strcmp(f->clusters[i], c) == 0)
      return;
  if (f->nclusters < 256)
    f->clusters[f->nclusters++] = strdup(c);
}

void kt_frontend_note_cluster(struct kt_frontend *f, const char *cluster)
{
  if (!f || f->fixed_clusters)
    return;
  pthread_mutex_lock(&f->mu);
  add_cluster_locked(f, cluster);
  pthread_mutex_unlock(&f->mu);
}

static void seen_cluster(const char *c, void *ud)
{
  add_cluster_locked(ud, c);
}

static int known_cluster(struct kt_frontend *f, const char *c)
{
  int ok = 0;
  pthread_mutex_lock(&f->mu);
  for (int i = 0; i < f->nclusters && !ok; i++)
    ok = strcasecmp(f->clusters[i], c) == 0;
  pthread_mutex_unlock(&f->mu);
  return ok;
}

static cJSON *cluster_list(struct kt_frontend *f, int objects)
{
  cJSON *a = cJSON_CreateArray();
  pthread_mutex_lock(&f->mu);
  for (int i = 0; i < f->nclusters; i++) {
    if (objects) {
      cJSON *o = cJSON_CreateObject();
      cJSON_AddStringToObject(o, "name", f->clusters[i]);
      cJSON_AddStringToObject(o, "spanKind", "");
      cJSON_AddItemToArray(a, o);
    } else {
      cJSON_AddItemToArray(a, cJSON_CreateString(f->clusters[i]));
    }
  }
  pthread_mutex_unlock(&f->mu);
  return a;
}

/* ---- trace cache ------------------------------------------------------- */

struct entry {
  struct kt_objkey key;
  int64_t start, end;
};

/* An entry is "<start> <end> <cluster/group/resource/namespace/name>". */
static void cache_put(struct kt_frontend *f, uint64_t id, const struct entry *e)
{
  char v[1024], obj[900];
  kt_objkey_format(&e->key, obj, sizeof obj);
  snprintf(v, sizeof v, "%lld %lld %s", (long long)e->start, (long long)e->end,
           obj);
  f->cache->ops->put(f->cache->impl, id, v, f->o.trace_cache_ttl_us);
}

static int cache_get(struct kt_frontend *f, uint64_t id, struct entry *e)
{
  char *v;
  long long s, t;
  int off = 0;
  if (f->cache->ops->get(f->cache->impl, id, &v))
    return -ENOENT;
  int rc = sscanf(v, "%lld %lld %n", &s, &t, &off) >= 2 && off > 0
               ? kt_objkey_parse(v + off, &e->key) : -EINVAL;
  free(v);
  e->start = s;
  e->end = t;
  return rc;
}

/* ---- Jaeger JSON --------------------------------------------------------- */

/* Integers as JSON integers: cJSON prints doubles with %g, which turns a
 * microsecond timestamp into 1.76e+15, and the UI needs integers. */
static void add_int(cJSON *o, const char *k, int64_t v)
{
  char buf[32];
  snprintf(buf, sizeof buf, "%lld", (long long)v);
  cJSON_AddRawToObject(o, k, buf);
}

static cJSON *tag_json(const char *k, const char *v)
{
  cJSON *t = cJSON_CreateObject();
  cJSON_AddStringToObject(t, "key", k);
  cJSON_AddStringToObject(t, "type", "string");
  cJSON_AddStringToObject(t, "value", v);
  return t;
}

static cJSON *logs_json(const struct kt_span *s)
{
  cJSON *logs = cJSON_CreateArray();
  for (size_t i = 0; i < s->nlogs; i++) {
    const struct kt_log *l = &s->logs[i];
    cJSON *lj = cJSON_CreateObject(), *fields = cJSON_CreateArray();
    add_int(lj, "timestamp", l->ts_us);
    if (l->nfields) {
      for (size_t j = 0; j < l->nfields; j++)
        if (strncmp(l->fields[j].key, "zzz-", 4) != 0)
          cJSON_AddItemToArray(fields, tag_json(l->fields[j].key, l->fields[j].value));
    } else {
      cJSON_AddItemToArray(fields, tag_json("event", l->msg));
      cJSON_AddItemToArray(fields, tag_json("logType", l->type));
    }
    cJSON_AddItemToObject(lj, "fields", fields);
    cJSON_AddItemToArray(logs, lj);
  }
  return logs;
}

static const char *process_id(cJSON *procs, const char *service, char *buf,
                              size_t len)
{
  cJSON *p;
  int i = 0;
  cJSON_ArrayForEach(p, procs) {
    i++;
    if (strcmp(cJSON_GetObjectItemCaseSensitive(p, "serviceName")->valuestring,
               service) == 0)
      return p->string;
  }
  snprintf(buf, len, "p%d", i + 1);
  cJSON *np = cJSON_CreateObject();
  cJSON_AddStringToObject(np, "serviceName", service);
  cJSON_AddItemToObject(np, "tags", cJSON_CreateArray());
  cJSON_AddItemToObject(procs, buf, np);
  return buf;
}

static cJSON *span_json(const struct kt_span *s, const char *trace_id,
                        cJSON *procs, int has_parent)
{
  char sid[17], pid[17], pbuf[16];
  cJSON *j = cJSON_CreateObject();
  kt_span_id_hex(s->span_id, sid);
  cJSON_AddStringToObject(j, "traceID", trace_id);
  cJSON_AddStringToObject(j, "spanID", sid);
  cJSON_AddStringToObject(j, "operationName", s->operation);
  cJSON *refs = cJSON_AddArrayToObject(j, "references");
  if (has_parent) {
    cJSON *r = cJSON_CreateObject();
    kt_span_id_hex(s->parent_id, pid);
    cJSON_AddStringToObject(r, "refType", "CHILD_OF");
    cJSON_AddStringToObject(r, "traceID", trace_id);
    cJSON_AddStringToObject(r, "spanID", pid);
    cJSON_AddItemToArray(refs, r);
  }
  add_int(j, "startTime", s->start_us);
  add_int(j, "duration", s->end_us > s->start_us ? s->end_us - s->start_us : 0);
  cJSON *tags = cJSON_AddArrayToObject(j, "tags");
  for (size_t i = 0; i < s->ntags; i++)
    cJSON_AddItemToArray(tags, tag_json(s->tags[i].key, s->tags[i].value));
  cJSON_AddItemToObject(j, "logs", logs_json(s));
  cJSON_AddStringToObject(j, "processID", process_id(procs, s->service, pbuf, sizeof pbuf));
  cJSON_AddNullToObject(j, "warnings");
  cJSON_AddNumberToObject(j, "flags", 1);
  return j;
}

/* The Jaeger UI's trace: root first, then the rest in start order. */
static cJSON *trace_json(const struct kt_tree *t, const char *trace_id)
{
  cJSON *tr = cJSON_CreateObject(), *spans = cJSON_CreateArray();
  cJSON *procs = cJSON_CreateObject();
  cJSON_AddStringToObject(tr, "traceID", trace_id);
  cJSON_AddItemToArray(spans, span_json(t->s[t->root], trace_id, procs, 0));
  for (size_t i = 0; i < t->n; i++)
    if (t->s[i] && (int)i != t->root)
      cJSON_AddItemToArray(spans, span_json(t->s[i], trace_id, procs, 1));
  cJSON_AddItemToObject(tr, "spans", spans);
  cJSON_AddItemToObject(tr, "processes", procs);
  cJSON_AddNullToObject(tr, "warnings");
  return tr;
}

/* ---- building ----------------------------------------------------------- */

static int build(struct kt_frontend *f, const struct entry *e,
                 const struct kt_mode *m, struct kt_tree *t)
{
  struct kt_assemble_opts ao = {f->o.span_ttl_us, f->o.follow_link_limit};
  kt_tree_init(t);
  int rc = kt_assemble(f->store, &ao, &e->key, e->start, e->end, m, t);
  if (rc)
    kt_tree_free(t);
  return rc;
}

/* NULL with *rc -EIO when the store cannot answer, else -ENOENT. */
static cJSON *render(struct kt_frontend *f, const struct entry *e,
                     const struct kt_mode *m, uint64_t key, int *rc)
{
  struct kt_tree t;
  char id[33];
  if ((*rc = build(f, e, m, &t)))
    return NULL;
  kt_mode_trace_id(m->id, key, id);
  cJSON *j = trace_json(&t, id);
  kt_tree_free(&t);
  return j;
}


/* ---- search ------------------------------------------------------------- */

struct search {
  const struct kt_mode *mode;
  cJSON *tags_json; /* owns the strings below */
  const char *cluster, *group, *resource, *ns, *name;
  struct kt_tag tags[16];
  size_t ntags;
  int64_t start, end, min_dur, max_dur;
  size_t limit;
};

static int parse_int(const char *s, int64_t *out)
{
  char *end;
  if (!s || !*s)
    return -EINVAL;
  long long v = strtoll(s, &end, 10);
  if (*end)
    return -EINVAL;
  *out = v;
  return 0;
}

/* Tags are a JSON object of strings (the UI stringifies everything). */
static int parse_tags(struct search *s, const char *json, char *err,
                      size_t errlen)
{
  s->tags_json = cJSON_Parse(json);
  if (!cJSON_IsObject(s->tags_json)) {
    snprintf(err, errlen, "tags must be a JSON object of strings");
    return -EINVAL;
  }
  cJSON *it = s->tags_json->child;
  while (it) { /* non-strings become their JSON text, as Jaeger compares */
    cJSON *next = it->next;
    if (!cJSON_IsString(it) && it->string) {
      char *v = cJSON_PrintUnformatted(it);
      cJSON_ReplaceItemInObjectCaseSensitive(s->tags_json, it->string,
                                             cJSON_CreateString(v ? v : ""));
      free(v);
    }
    it = next;
  }
  cJSON_ArrayForEach(it, s->tags_json) {
    const char *k = it->string, *v = it->valuestring;
    if (!strcmp(k, "cluster"))
      s->cluster = v;
    else if (!strcmp(k, "group"))
      s->group = v;
    else if (!strcmp(k, "resource"))
      s->resource = v;
    else if (!strcmp(k, "namespace"))
      s->ns = v;
    else if (!strcmp(k, "name"))
      s->name = v;
    else if (s->ntags < 16)
      s->tags[s->ntags++] = (struct kt_tag){(char *)k, (char *)v};
  }
  return 0;
}

static int parse_search(const struct kt_http_req *req, struct search *s,
                        char *err, size_t errlen)
{
  const char *v;
  int64_t n;
  memset(s, 0, sizeof *s);
  s->mode = kt_mode_by_name(kt_http_query(req, "service"));
  if (!s->mode) {
    snprintf(err, errlen, "invalid display mode \"%s\"",
             kt_http_query(req, "service") ? kt_http_query(req, "service") : "");
    return -EINVAL;
  }
  s->end = kt_now_us();
  s->start = s->end - 3600 * 1000000LL;
  s->limit = 20;
  if ((v = kt_http_query(req, "end")) && parse_int(v, &s->end))
    return snprintf(err, errlen, "end must be microseconds"), -EINVAL;
  if ((v = kt_http_query(req, "start")) && parse_int(v, &s->start))
    return snprintf(err, errlen, "start must be microseconds"), -EINVAL;
  if ((v = kt_http_query(req, "limit")) && *v) {
    if (parse_int(v, &n) || n < 1)
      return snprintf(err, errlen, "limit must be a positive number"), -EINVAL;
    s->limit = n > MAX_LIMIT ? MAX_LIMIT : (size_t)n;
  }
  if ((v = kt_http_query(req, "minDuration")) && *v &&
      kt_duration_parse(v, &s->min_dur))
    return snprintf(err, errlen, "invalid minDuration %s", v), -EINVAL;
  if ((v = kt_http_query(req, "maxDuration")) && *v &&
      kt_duration_parse(v, &s->max_dur))
    return snprintf(err, errlen, "invalid maxDuration %s", v), -EINVAL;
  if (s->end < s->start)
    return snprintf(err, errlen, "end is before start"), -EINVAL;
  if ((v = kt_http_query(req, "tags")) && *v && parse_tags(s, v, err, errlen))
    return -EINVAL;
  if ((v = kt_http_query(req, "operation")) && *v)
    s->cluster = v;
  return 0;
}

struct found {
  char obj[64][640];
  size_t n, limit;
  int store_err; /* the store could not be read (a server store is down) */
};

static void collect_objects(struct kt_frontend *f, const struct search *s,
                            const char *service, struct found *out)
{
  struct kt_store_query q = {s->cluster, s->group, s->resource, s->ns, s->name,
                             service, s->tags, s->ntags, s->start, s->end,
                             s->min_dur, s->max_dur, 200};
  struct kt_trace_ref *refs = NULL;
  size_t n = 0;
  if (!strcmp(service, "object"))
    q.start_us = s->start - f->o.span_ttl_us;
  if (kt_store_find(f->store, &q, &refs, &n)) {
    out->store_err = 1;
    return;
  }
  for (size_t i = 0; i < n && out->n < out->limit; i++) {
    int dup = !refs[i].root_span_id;
    for (size_t j = 0; j < out->n && !dup; j++)
      dup = strcmp(out->obj[j], refs[i].object) == 0;
    if (!dup)
      snprintf(out->obj[out->n++], sizeof out->obj[0], "%s", refs[i].object);
  }
  free(refs);
}

/* Objects whose requests or events match, newest first; else, when a
 * single object was named, that object even if idle in the range. */
static void find_objects(struct kt_frontend *f, const struct search *s,
                         struct found *out)
{
  out->n = 0;
  out->store_err = 0;
  out->limit = s->limit < 64 ? s->limit : 64;
  collect_objects(f, s, "audit", out);
  collect_objects(f, s, "event", out);
  if (!out->n && s->resource && s->name && !s->ntags)
    collect_objects(f, s, "object", out);
}

static cJSON *run_search(struct kt_frontend *f, const struct search *s,
                         int *count)
{
  struct found *fo = malloc(sizeof *fo);
  cJSON *data = cJSON_CreateArray();
  *count = 0;
  if (!fo)
    return data;
  find_objects(f, s, fo);
  if (fo->store_err) { /* NULL: the caller answers 503 */
    free(fo);
    cJSON_Delete(data);
    return NULL;
  }
  for (size_t i = 0; i < fo->n; i++) {
    struct entry e = {.start = s->start, .end = s->end};
    if (kt_objkey_parse(fo->obj[i], &e.key))
      continue;
    uint64_t key = kt_random_u64();
    int rc;
    cJSON *tr = render(f, &e, s->mode, key, &rc);
    if (!tr)
      continue;
    cache_put(f, key, &e);
    cJSON_AddItemToArray(data, tr);
    (*count)++;
  }
  free(fo);
  return data;
}

/* ---- handlers ------------------------------------------------------------ */

static int h_services(void *ud, const struct kt_http_req *req,
                      struct kt_http_resp *resp)
{
  size_t n;
  const struct kt_mode *m = kt_modes(&n);
  cJSON *a = cJSON_CreateArray();
  for (size_t i = 0; i < n; i++)
    cJSON_AddItemToArray(a, cJSON_CreateString(m[i].name));
  if (strstr(req->path, "/v3/")) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "services", a);
    send_json(resp, 200, o);
  } else {
    send_json(resp, 200, envelope(a));
  }
  return 0;
}

static int h_operations(void *ud, const struct kt_http_req *req,
                        struct kt_http_resp *resp)
{
  struct kt_frontend *f = ud;
  if (strncmp(req->path, "/api/services/", 14) == 0) {
    if (!strstr(req->path + 14, "/operations"))
      return -ENOENT;
    send_json(resp, 200, envelope(cluster_list(f, 0)));
  } else if (strstr(req->path, "/v3/")) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "operations", cluster_list(f, 1));
    send_json(resp, 200, o);
  } else {
    send_json(resp, 200, envelope(cluster_list(f, 1)));
  }
  return 0;
}

static int get_one(struct kt_frontend *f, const char *id, cJSON **out,
                   char *err, size_t errlen)
{
  uint32_t mode;
  uint64_t key;
  struct entry e;
  const struct kt_mode *m;
  if (kt_mode_parse_trace_id(id, &mode, &key)) {
    snprintf(err, errlen, "trace %s not found: not a kelemetry trace id", id);
    return 400;
  }
  if (!(m = kt_mode_by_id(mode))) {
    snprintf(err, errlen, "unknown display mode %08x in trace id", mode);
    return 400;
  }
  if (cache_get(f, key, &e)) {
    snprintf(err, errlen, "trace %s not found (expired or never issued)", id);
    return 404;
  }
  int rc;
  *out = render(f, &e, m, key, &rc);
  if (!*out && rc == -EIO) {
    snprintf(err, errlen, "the store cannot be read now; retry later");
    return 503;
  }
  if (!*out) {
    snprintf(err, errlen, "trace %s not found: no spans left in its range", id);
    return 404;
  }
  return 200;
}

static void collect_id(const char *v, void *ud)
{
  cJSON_AddItemToArray(ud, cJSON_CreateString(v));
}

static int h_traces_by_ids(struct kt_frontend *f, const struct kt_http_req *req,
                           struct kt_http_resp *resp)
{
  cJSON *ids = cJSON_CreateArray(), *id, *data = cJSON_CreateArray();
  cJSON *errs = cJSON_CreateArray();
  int unavailable = 0;
  kt_http_query_all(req, "traceID", collect_id, ids);
  cJSON_ArrayForEach(id, ids) {
    char err[256];
    cJSON *tr = NULL;
    int st = get_one(f, id->valuestring, &tr, err, sizeof err);
    if (tr) {
      cJSON_AddItemToArray(data, tr);
    } else {
      cJSON *e = cJSON_CreateObject();
      cJSON_AddNumberToObject(e, "code", st);
      unavailable |= st == 503;
      cJSON_AddStringToObject(e, "msg", err);
      cJSON_AddStringToObject(e, "traceID", id->valuestring);
      cJSON_AddItemToArray(errs, e);
    }
  }
  cJSON_Delete(ids);
  cJSON *env = envelope(data);
  if (cJSON_GetArraySize(errs))
    cJSON_ReplaceItemInObject(env, "errors", errs);
  else
    cJSON_Delete(errs);
  send_json(resp, cJSON_GetArraySize(data) ? 200 : unavailable ? 503 : 404, env);
  return 0;
}

/* frontend_find_traces and frontend_get_trace (§3.2). */
static struct kt_defer m_find, m_get;
static pthread_once_t m_once = PTHREAD_ONCE_INIT;

static void register_metrics(void)
{
  kt_defer_register(&m_find, "frontend_find_traces", "Trace searches", NULL);
  kt_defer_register(&m_get, "frontend_get_trace", "Traces shown by id", NULL);
}

static int traces(struct kt_frontend *f, const struct kt_http_req *req,
                  struct kt_http_resp *resp);

static int h_traces(void *ud, const struct kt_http_req *req,
                    struct kt_http_resp *resp)
{
  int64_t t0 = kt_mono_us();
  pthread_once(&m_once, register_metrics);
  int by_id = strncmp(req->path, "/api/traces/", 12) == 0 || kt_http_query(req, "traceID");
  int rc = traces(ud, req, resp);
  kt_defer_done(by_id ? &m_get : &m_find, NULL, t0);
  return rc;
}

static int traces(struct kt_frontend *f, const struct kt_http_req *req,
                  struct kt_http_resp *resp)
{
  char err[256];
  if (strncmp(req->path, "/api/traces/", 12) == 0) {
    cJSON *tr = NULL;
    int st = get_one(f, req->path + 12, &tr, err, sizeof err);
    if (!tr)
      return jaeger_error(resp, st, err);
    cJSON *data = cJSON_CreateArray();
    cJSON_AddItemToArray(data, tr);
    send_json(resp, 200, envelope(data));
    return 0;
  }
  if (kt_http_query(req, "traceID"))
    return h_traces_by_ids(f, req, resp);
  struct search s;
  int count;
  if (parse_search(req, &s, err, sizeof err)) {
    cJSON_Delete(s.tags_json);
    return jaeger_error(resp, 400, err);
  }
  cJSON *data = run_search(f, &s, &count);
  cJSON_Delete(s.tags_json);
  if (!data)
    return jaeger_error(resp, 503, STORE_DOWN);
  send_json(resp, 200, envelope(data));
  return 0;
}

static int h_dependencies(void *ud, const struct kt_http_req *req,
                          struct kt_http_resp *resp)
{
  send_json(resp, 200, envelope(cJSON_CreateArray()));
  return 0;
}

/* GET /redirect?cluster=&resource=&namespace=&name=&ts=RFC3339 */
static int h_redirect(void *ud, const struct kt_http_req *req,
                      struct kt_http_resp *resp)
{
  struct kt_frontend *f = ud;
  const char *cl = kt_http_query(req, "cluster"), *res = kt_http_query(req, "resource");
  const char *name = kt_http_query(req, "name"), *ts = kt_http_query(req, "ts");
  int64_t t;
  if (!cl || !*cl || !res || !*res || !name || !*name)
    return jaeger_error(resp, 400, "cluster, resource and name are required");
  if (!known_cluster(f, cl))
    return jaeger_error(resp, 404, "unknown cluster");
  if (ts && kt_time_parse(ts, &t))
    return jaeger_error(resp, 400, "ts must be RFC 3339");
  if (!ts)
    t = kt_now_us();
  struct search s = {0};
  s.mode = kt_mode_default();
  s.cluster = cl;
  s.resource = res;
  s.name = name;
  s.ns = kt_http_query(req, "namespace");
  s.group = kt_http_query(req, "group");
  s.start = t - f->o.span_ttl_us;
  s.end = t + f->o.span_ttl_us;
  s.limit = 2;
  struct found fo;
  find_objects(f, &s, &fo);
  if (fo.n > 1)
    return jaeger_error(resp, 409, "several objects match: add group or namespace");
  if (fo.n == 0)
    return jaeger_error(resp, 404, "no events found for this object around ts");
  struct entry e = {.start = s.start, .end = s.end};
  kt_objkey_parse(fo.obj[0], &e.key);
  uint64_t key = kt_random_u64();
  char id[33];
  cache_put(f, key, &e);
  kt_mode_trace_id(s.mode->id, key, id);
  resp->status = 302;
  snprintf(resp->location, sizeof resp->location, "/trace/%s", id);
  kt_http_set_body(resp, 302, "text/plain", strdup("Found"), 5);
  return 0;
}

static int rfc3339_param(const struct kt_http_req *req, const char *k,
                         int64_t *out)
{
  const char *v = kt_http_query(req, k);
  return v && *v ? kt_time_parse(v, out) : 1;
}

/* Keeps only the logs that have a field named key (e.g. `audit`). */
static void filter_logs(cJSON *trace, const char *key)
{
  cJSON *span;
  cJSON_ArrayForEach(span, cJSON_GetObjectItem(trace, "spans")) {
    cJSON *logs = cJSON_GetObjectItem(span, "logs"), *keep = cJSON_CreateArray();
    cJSON *l = logs ? logs->child : NULL;
    while (l) {
      cJSON *next = l->next, *f;
      int has = 0;
      cJSON_ArrayForEach(f, cJSON_GetObjectItem(l, "fields"))
        has |= !strcmp(cJSON_GetObjectItem(f, "key")->valuestring, key);
      if (has)
        cJSON_AddItemToArray(keep, cJSON_DetachItemViaPointer(logs, l));
      l = next;
    }
    cJSON_ReplaceItemInObject(span, "logs", keep);
  }
}

/* GET /extensions/api/v1/trace (§2.10): one object's trace as Jaeger UI
 * JSON for other tools; span_type keeps only logs with that field. */
static int h_extension_trace(void *ud, const struct kt_http_req *req,
                             struct kt_http_resp *resp)
{
  struct kt_frontend *f = ud;
  const char *cl = kt_http_query(req, "cluster"), *res = kt_http_query(req, "resource");
  const char *name = kt_http_query(req, "name"), *mode = kt_http_query(req, "displayMode");
  const char *span_type = kt_http_query(req, "span_type");
  struct search s = {0};
  if (!cl || !*cl || !res || !*res || !name || !*name)
    return jaeger_error(resp, 400, "cluster, resource and name are required");
  if (!known_cluster(f, cl))
    return jaeger_error(resp, 404, "unknown cluster");
  s.mode = kt_mode_by_name(mode && *mode ? mode : "tracing");
  if (!s.mode)
    return jaeger_error(resp, 400, "invalid displayMode");
  s.end = kt_now_us();
  s.start = s.end - f->o.span_ttl_us;
  if (rfc3339_param(req, "start", &s.start) < 0 || rfc3339_param(req, "end", &s.end) < 0 ||
      s.end < s.start)
    return jaeger_error(resp, 400, "start and end must be RFC 3339, start before end");
  s.cluster = cl;
  s.resource = res;
  s.name = name;
  s.ns = kt_http_query(req, "namespace");
  s.limit = 20;
  struct found fo;
  find_objects(f, &s, &fo);
  if (fo.n > 1)
    return jaeger_error(resp, 409, "several objects match: add namespace");
  struct entry e = {.start = s.start, .end = s.end};
  cJSON *tr = NULL;
  int rc = -ENOENT;
  if (fo.n == 1 && kt_objkey_parse(fo.obj[0], &e.key) == 0)
    tr = render(f, &e, s.mode, kt_random_u64(), &rc);
  if (!tr && rc == -EIO)
    return jaeger_error(resp, 503, "the store cannot be read now; retry later");
  if (!tr)
    return jaeger_error(resp, 404, "no trace for this object in the range");
  if (span_type && *span_type)
    filter_logs(tr, span_type);
  send_json(resp, 200, tr);
  return 0;
}

/* v3 search: the summaries the Jaeger UI v2.19+ lists. */
static int h_summaries(void *ud, const struct kt_http_req *req,
                       struct kt_http_resp *resp)
{
  struct kt_frontend *f = ud;
  struct search s = {0};
  char err[256];
  s.mode = kt_mode_by_name(kt_http_query(req, "query.serviceName"));
  if (!s.mode)
    return jaeger_error(resp, 400, "invalid display mode");
  s.end = kt_now_us();
  s.start = s.end - 3600 * 1000000LL;
  s.limit = 20;
  if (rfc3339_param(req, "query.startTimeMin", &s.start) < 0 ||
      rfc3339_param(req, "query.startTimeMax", &s.end) < 0)
    return jaeger_error(resp, 400, "startTimeMin/startTimeMax must be RFC 3339");
  const char *v = kt_http_query(req, "query.searchDepth");
  int64_t n;
  if (v && !parse_int(v, &n) && n > 0)
    s.limit = n > MAX_LIMIT ? MAX_LIMIT : (size_t)n;
  if ((v = kt_http_query(req, "query.attributes")) && *v &&
      parse_tags(&s, v, err, sizeof err)) {
    cJSON_Delete(s.tags_json);
    return jaeger_error(resp, 400, err);
  }
  if ((v = kt_http_query(req, "query.operationName")) && *v)
    s.cluster = v;
  int count;
  cJSON *traces = run_search(f, &s, &count), *tr;
  cJSON_Delete(s.tags_json);
  if (!traces)
    return jaeger_error(resp, 503, STORE_DOWN);
  cJSON *out = cJSON_CreateObject(), *sums = cJSON_AddArrayToObject(out, "summaries");
  cJSON_ArrayForEach(tr, traces) {
    cJSON *sum = cJSON_CreateObject(), *spans = cJSON_GetObjectItem(tr, "spans");
    cJSON *root = cJSON_GetArrayItem(spans, 0);
    char num[32];
    double st = strtod(cJSON_GetObjectItem(root, "startTime")->valuestring, NULL);
    double du = strtod(cJSON_GetObjectItem(root, "duration")->valuestring, NULL);
    cJSON_AddStringToObject(sum, "traceId", cJSON_GetObjectItem(tr, "traceID")->valuestring);
    cJSON_AddStringToObject(sum, "rootOperationName",
                            cJSON_GetObjectItem(root, "operationName")->valuestring);
    snprintf(num, sizeof num, "%.0f000", st);
    cJSON_AddStringToObject(sum, "minStartTimeUnixNano", num);
    snprintf(num, sizeof num, "%.0f000", st + du);
    cJSON_AddStringToObject(sum, "maxEndTimeUnixNano", num);
    cJSON_AddNumberToObject(sum, "spanCount", cJSON_GetArraySize(spans));
    cJSON_AddItemToArray(sums, sum);
  }
  cJSON_Delete(traces);
  send_json(resp, 200, out);
  return 0;
}

int kt_frontend_new(const struct kt_frontend_opts *o, struct kt_store *store,
                    struct kt_frontend **out)
{
  struct kt_frontend *f = calloc(1, sizeof *f);
  if (!f)
    return -ENOMEM;
  f->o = *o;
  if (!f->o.trace_cache_ttl_us)
    f->o.trace_cache_ttl_us = 24 * 3600 * 1000000LL;
  if (!f->o.follow_link_limit)
    f->o.follow_link_limit = 10;
  if (!f->o.span_ttl_us)
    f->o.span_ttl_us = 30 * 60 * 1000000LL;
  f->store = store;
  int rc = kt_tracecache_open(o->trace_cache, store, &f->cache);
  if (rc) {
    free(f);
    return rc;
  }
  pthread_mutex_init(&f->mu, NULL);
  if (o->clusters && *o->clusters) {
    char *copy = strdup(o->clusters), *save = NULL;
    for (char *c = strtok_r(copy, ",", &save); c; c = strtok_r(NULL, ",", &save))
      add_cluster_locked(f, c);
    free(copy);
    f->fixed_clusters = 1;
  } else {
    kt_store_clusters(store, seen_cluster, f);
  }
  const struct kt_http_route r[] = {
      {"GET", "/api/services", h_services, f},
      {"GET", "/api/v3/services", h_services, f},
      {"GET", "/api/services/", h_operations, f},
      {"GET", "/api/operations", h_operations, f},
      {"GET", "/api/v3/operations", h_operations, f},
      {"GET", "/api/traces", h_traces, f},
      {"GET", "/api/traces/", h_traces, f},
      {"GET", "/api/v3/trace-summaries", h_summaries, f},
      {"GET", "/api/dependencies", h_dependencies, f},
      {"GET", "/redirect", h_redirect, f},
      {"GET", "/extensions/api/v1/trace", h_extension_trace, f},
  };
  f->nroutes = sizeof r / sizeof r[0];
  memcpy(f->routes, r, sizeof r);
  *out = f;
  return 0;
}

void kt_frontend_free(struct kt_frontend *f)
{
  if (!f)
    return;
  for (int i = 0; i < f->nclusters; i++)
    free(f->clusters[i]);
  kt_tracecache_free(f->cache);
  pthread_mutex_destroy(&f->mu);
  free(f);
}

const struct kt_http_route *kt_frontend_routes(struct kt_frontend *f, size_t *n)
{
  *n = f->nroutes;
  return f->routes;
}
