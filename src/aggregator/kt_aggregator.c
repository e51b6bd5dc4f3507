/* kt_aggregator: see the header. */
#include "aggregator/kt_aggregator.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aggregator/kt_kinds.h"
#include "aggregator/kt_spancache.h"
#include "audit/kt_audit.h"
#include "core/kt_log.h"
#include "core/kt_map.h"
#include "core/kt_str.h"
#include "core/kt_metrics.h"
#include "core/kt_time.h"
#include "diff/kt_diffcache.h"
#include "store/kt_otlp.h"
#include "store/kt_store.h"

#define MAX_LINK_DEPTH 10
#define MAX_TAGS 32

struct kv {
  char *k, *v;
};

struct tag_rule { /* one entry of --resource-tag-mapping */
  char resource[128], group[128];
  struct kv tags[8];
  int ntags;
};

struct ctx {
  uint8_t trace[16];
  uint64_t span;
};

struct kt_aggregator {
  struct kt_agg_opts o;
  struct kt_store *store;
  struct kt_spancache *sc;
  struct kt_diffcache *dc;
  cJSON *(*fetch)(void *ud, const struct kt_object *o);
  void *fetch_ud;
  struct kv pseudo_tags[MAX_TAGS], event_tags[MAX_TAGS];
  int npseudo, nevent;
  struct tag_rule rules[16];
  int nrules;
  struct kt_defer m_send; /* aggregator_send (§3.2) */
  struct kt_metric *m_lazy, *m_link;
  struct kt_otlp *otlp; /* NULL = no export */
  int store_spans;
};

static int parse_kv_list(const char *s, struct kv *out, int max)
{
  int n = 0;
  char *copy = strdup(s ? s : ""), *save = NULL;
  if (!copy)
    return -ENOMEM;
  for (char *tok = strtok_r(copy, ",", &save); tok && n < max;
       tok = strtok_r(NULL, ",", &save)) {
    char *eq = strchr(tok, '=');
    if (!eq) {
      free(copy);
      return -EINVAL;
    }
    *eq = 0;
    out[n].k = strdup(tok);
    out[n].v = strdup(eq + 1);
    n++;
  }
  free(copy);
  return n;
}

/* "pods#nodes:spec.nodeName;t2:status.hostIP,nodes.x#tag:metadata.name" */
static int parse_rules(struct kt_aggregator *a, const char *s)
{
  char *copy = strdup(s ? s : ""), *save = NULL;
  if (!copy)
    return -ENOMEM;
  for (char *ent = strtok_r(copy, ",", &save); ent && a->nrules < 16;
       ent = strtok_r(NULL, ",", &save)) {
    struct tag_rule *r = &a->rules[a->nrules];
    char *hash = strchr(ent, '#');
    if (!hash)
      goto bad;
    *hash = 0;
    char *dot = strchr(ent, '.');
    if (dot)
      *dot = 0;
    snprintf(r->resource, sizeof r->resource, "%s", ent);
    snprintf(r->group, sizeof r->group, "%s", dot ? dot + 1 : "");
    char *save2 = NULL;
    for (char *t = strtok_r(hash + 1, ";", &save2); t && r->ntags < 8;
         t = strtok_r(NULL, ";", &save2)) {
      char *colon = strchr(t, ':');
      if (!colon)
        goto bad;
      *colon = 0;
      char *path = colon + 1;
      if (*path == '{')
        path++;
      if (*path == '.')
        path++;
      size_t pl = strlen(path);
      if (pl && path[pl - 1] == '}')
        path[pl - 1] = 0;
      r->tags[r->ntags].k = strdup(t);
      r->tags[r->ntags].v = strdup(path);
      r->ntags++;
    }
    a->nrules++;
  }
  free(copy);
  return 0;
bad:
  free(copy);
  return -EINVAL;
}

int kt_aggregator_new(const struct kt_agg_opts *o, struct kt_store *store,
                      struct kt_spancache *sc, struct kt_diffcache *dc,
                      struct kt_aggregator **out)
{
  struct kt_aggregator *a = calloc(1, sizeof *a);
  if (!a)
    return -ENOMEM;
  a->o = *o;
  if (!a->o.span_ttl_us)
    a->o.span_ttl_us = 30 * 60 * 1000000LL;
  if (!a->o.reserve_ttl_us)
    a->o.reserve_ttl_us = 10 * 1000000LL;
  if (!a->o.resource_event_tag_verbs)
    a->o.resource_event_tag_verbs = "create";
  a->store = store;
  a->store_spans = 1;
  a->sc = sc;
  a->dc = dc;
  a->npseudo = parse_kv_list(o->pseudo_global_tags, a->pseudo_tags, MAX_TAGS);
  a->nevent = parse_kv_list(o->event_global_tags, a->event_tags, MAX_TAGS);
  if (a->npseudo < 0 || a->nevent < 0 ||
      parse_rules(a, o->resource_tag_mapping)) {
    kt_error("invalid global tags or --resource-tag-mapping");
    kt_aggregator_free(a);
    return -EINVAL;
  }
  struct kt_metrics *r = kt_metrics_default();
  kt_defer_register(&a->m_send, "aggregator_send",
      "Event spans sent, by trace source and outcome",
      (const char *const[]){"cluster", "traceSource", "success", "error", NULL});
  a->m_lazy = kt_metrics_counter(r, "aggregator_lazy_span_total",
      "Pseudo span lookups: fetch (existed), create, repair (cached but not stored: written again), error",
      (const char *const[]){"pseudoType", "result", NULL});
  a->m_link = kt_metrics_counter(r, "linker_job_exec_total",
      "Links made by the linkers", (const char *const[]){"linker", NULL});
  *out = a;
  return 0;
}

static void free_kv(struct kv *kv, int n)
{
  for (int i = 0; i < n; i++) {
    free(kv[i].k);
    free(kv[i].v);
  }
}

void kt_aggregator_free(struct kt_aggregator *a)
{
  if (!a)
    return;
  free_kv(a->pseudo_tags, a->npseudo > 0 ? a->npseudo : 0);
  free_kv(a->event_tags, a->nevent > 0 ? a->nevent : 0);
  for (int i = 0; i < a->nrules; i++)
    free_kv(a->rules[i].tags, a->rules[i].ntags);
  free(a);
}

void kt_object_key(const struct kt_object *o, char *buf, size_t len)
{
  struct kt_str s;
  const char *parts[] = {o->cluster, o->group, o->resource, o->namespace, o->name};
  kt_str_init(&s, buf, len);
  for (int i = 0; i < 5; i++) {
    if (i)
      kt_str_addc(&s, '/');
    kt_str_add(&s, parts[i]);
  }
}

/* "<object key>/field=<field>,window=<n>": a span cache key. */
static void window_key(const char *okey, const char *field, long long window,
                       char *buf, size_t len)
{
  struct kt_str s;
  kt_str_init(&s, buf, len);
  kt_str_add(&s, okey);
  kt_str_add(&s, "/field=");
  kt_str_add(&s, field);
  kt_str_add(&s, ",window=");
  kt_str_int(&s, window);
}

static int add_key_tags(struct kt_span *s, const struct kt_object *o)
{
  int rc = kt_span_add_tag(s, "cluster", o->cluster);
  rc = rc ? rc : kt_span_add_tag(s, "group", o->group ? o->group : "");
  rc = rc ? rc : kt_span_add_tag(s, "resource", o->resource);
  rc = rc ? rc : kt_span_add_tag(s, "namespace", o->namespace ? o->namespace : "");
  rc = rc ? rc : kt_span_add_tag(s, "name", o->name);
  return rc ? rc : kt_span_add_tag(s, "version", o->version ? o->version : "");
}

static void add_kv_tags(struct kt_span *s, const struct kv *kv, int n)
{
  for (int i = 0; i < n; i++)
    kt_span_set_tag(s, kv[i].k, kv[i].v);
}

static const cJSON *lookup_body(struct kt_aggregator *a,
                                const struct kt_object *o, cJSON **owned)
{
  *owned = NULL;
  if (o->body)
    return o->body;
  char key[1024], rv[64];
  kt_object_key(o, key, sizeof key);
  if (a->dc && !kt_diffcache_get(a->dc, key, owned, rv, sizeof rv))
    return *owned;
  *owned = a->fetch ? a->fetch(a->fetch_ud, o) : NULL;
  return *owned;
}

void kt_aggregator_set_fetch(struct kt_aggregator *a,
                             cJSON *(*fetch)(void *ud, const struct kt_object *o),
                             void *ud)
{
  a->fetch = fetch;
  a->fetch_ud = ud;
}

/* Resource tags (§1.10) for obj's resource, read from its body. */
static void add_resource_tags(struct kt_aggregator *a, struct kt_span *s,
                              const struct kt_object *o, const cJSON *body)
{
  for (int i = 0; i < a->nrules && body; i++) {
    const struct tag_rule *r = &a->rules[i];
    if (strcmp(r->resource, o->resource) != 0 ||
        (r->group[0] && strcmp(r->group, o->group ? o->group : "") != 0))
      continue;
    for (int j = 0; j < r->ntags; j++) {
      const cJSON *v = kt_json_path(body, r->tags[j].v);
      char num[64];
      if (cJSON_IsString(v)) {
        kt_span_set_tag(s, r->tags[j].k, v->valuestring);
      } else if (cJSON_IsNumber(v)) {
        snprintf(num, sizeof num, "%.17g", v->valuedouble);
        kt_span_set_tag(s, r->tags[j].k, num);
      }
    }
  }
}

static void format_carrier(const struct ctx *c, char *buf, size_t len)
{
  char t[33], s[17];
  kt_trace_id_hex(c->trace, t);
  kt_span_id_hex(c->span, s);
  snprintf(buf, len, "00-%s-%s-01", t, s);
}

static int parse_carrier(const char *v, struct ctx *c)
{
  char t[33];
  if (strlen(v) != 55 || v[2] != '-' || v[35] != '-')
    return -EINVAL;
  memcpy(t, v + 3, 32);
  t[32] = 0;
  if (kt_trace_id_parse(t, c->trace))
    return -EINVAL;
  c->span = strtoull(v + 36, NULL, 16);
  return c->span ? 0 : -EINVAL;
}

struct pseudo_req {
  const struct kt_object *obj;
  const char *type;  /* object | link */
  const char *dedup; /* span cache field */
  int64_t t_us;
  const struct ctx *parent;
  const struct kv *extra;
  int nextra;
  const cJSON *body; /* for object-span resource tags */
};

/* Ids derived from the span-cache key: creating the same pseudo span twice
 * (a replay after a crash, a lost cache entry) writes the same row again
 * instead of a second span. */
static uint64_t key_hash(const char *key, const char *salt)
{
  char buf[1300];
  int n = snprintf(buf, sizeof buf, "%s#%s", key, salt);
  uint64_t h = kt_hash(buf, n > 0 && (size_t)n < sizeof buf ? (size_t)n : strlen(buf));
  return h ? h : 1;
}

static void key_trace_id(const char *key, uint8_t id[16])
{
  uint64_t a = key_hash(key, "trace-hi"), b = key_hash(key, "trace-lo");
  memcpy(id, &a, 8);
  memcpy(id + 8, &b, 8);
}

/* Every span leaves here: exported (a copy) and/or stored. Takes s. */
static int emit(struct kt_aggregator *a, struct kt_span *s)
{
  if (a->otlp)
    kt_otlp_put(a->otlp, s); /* never blocks; a drop is counted there */
  if (a->store_spans)
    return kt_store_put(a->store, s);
  kt_span_free(s);
  return 0;
}

void kt_aggregator_set_exporter(struct kt_aggregator *a, struct kt_otlp *exp,
                                int store_spans)
{
  a->otlp = exp;
  a->store_spans = store_spans;
}

static int create_pseudo(struct kt_aggregator *a, const struct pseudo_req *r,
                         const char *key, struct ctx *out)
{
  char op[512], ts[40];
  int64_t w = a->o.span_ttl_us;
  int64_t start = (r->t_us >= 0 ? r->t_us / w : (r->t_us - w + 1) / w) * w;
  snprintf(op, sizeof op, "%s/%s", r->obj->resource, r->obj->name);
  struct kt_span *s = kt_span_new(r->type, op);
  if (!s)
    return -ENOMEM;
  if (r->parent)
    memcpy(s->trace_id, r->parent->trace, 16);
  else
    key_trace_id(key, s->trace_id);
  s->span_id = key_hash(key, "span");
  s->parent_id = r->parent ? r->parent->span : 0;
  s->start_us = start;
  s->end_us = start + w;
  kt_time_format(start, ts, sizeof ts);
  add_key_tags(s, r->obj);
  kt_span_add_tag(s, "zzz-traceSource", "object");
  kt_span_add_tag(s, "zzz-pseudoType", r->type);
  kt_span_add_tag(s, "timeStamp", ts);
  add_kv_tags(s, a->pseudo_tags, a->npseudo);
  add_kv_tags(s, r->extra, r->nextra);
  if (a->o.resource_object_tag && strcmp(r->type, "object") == 0)
    add_resource_tags(a, s, r->obj, r->body);
  memcpy(out->trace, s->trace_id, 16);
  out->span = s->span_id;
  return emit(a, s);
}

/* Sleeps ms, then the next step: x5 up to 1 s. */
static long backoff(long ms)
{
  struct timespec ts = {ms / 1000, ms % 1000 * 1000000L};
  nanosleep(&ts, NULL);
  return ms * 5 > 1000 ? 1000 : ms * 5;
}

/* Gets or creates the pseudo span of (object, window, dedup): §1.8's
 * reserve / fetch / set loop. Contention (-EBUSY, -ESTALE) is retried with
 * the original's backoff (10ms x5), but not given up before a reservation
 * could have expired (twice the reserve TTL + 1 s: etcd restarts a lease's
 * TTL when it restarts itself): a holder that died, or a reservation left
 * by a shared engine's outage, is then taken over rather than the event
 * dropped. A shared engine that cannot be reached (-EIO) is
 * waited for without limit (backoff up to 1 s): processing stalls, the
 * queue in front fills and the webhook answers 503, and nothing is lost.
 * *created tells the caller to run the link job. */
static int get_or_create_pseudo(struct kt_aggregator *a,
                                const struct pseudo_req *r, struct ctx *out,
                                int *created)
{
  char key[1200], okey[1024], carrier[64];
  kt_object_key(r->obj, okey, sizeof okey);
  window_key(okey, r->dedup, (long long)(r->t_us / a->o.span_ttl_us), key,
             sizeof key);
  *created = 0;
  long busy_ms = 10, down_ms = 10;
  int64_t patience = 2 * a->o.reserve_ttl_us + 1000000;
  int64_t give_up = kt_mono_us() + patience;
  for (int attempt = 0;; attempt++) {
    char *val = NULL;
    uint64_t uid = 0;
    int rc = a->sc->ops->fetch_or_reserve(a->sc->impl, key,
                                          a->o.reserve_ttl_us, &val, &uid);
    if (rc == 0 && val) {
      rc = parse_carrier(val, out);
      free(val);
      kt_metric_inc(a->m_lazy, (const char *const[]){r->type, "fetch"});
      if (rc == 0 && r->obj->recovered && a->store_spans &&
          !kt_store_has_span(a->store, out->trace, out->span, r->obj->name)) {
        kt_metric_inc(a->m_lazy, (const char *const[]){r->type, "repair"});
        *created = 1; /* its link spans may be lost with it */
        return create_pseudo(a, r, key, out);
      }
      return rc;
    }
    if (rc == 0) {
      rc = create_pseudo(a, r, key, out);
      format_carrier(out, carrier, sizeof carrier);
      if (rc)
        break;
      /* Our reservation may outlive an outage: set it when the engine is
       * back (-ESTALE then means it expired, or the lost answer's write
       * did happen: fetch again). */
      while ((rc = a->sc->ops->set_reserved(a->sc->impl, key, carrier, uid,
                                            a->o.span_ttl_us +
                                                a->o.span_extra_ttl_us)) == -EIO)
        down_ms = backoff(down_ms);
      if (rc == 0) {
        *created = 1;
        kt_metric_inc(a->m_lazy, (const char *const[]){r->type, "create"});
        return 0;
      }
    }
    if (rc == -EIO) {
      down_ms = backoff(down_ms);
      give_up = kt_mono_us() + patience;
      continue;
    }
    down_ms = 10;
    if ((rc != -EBUSY && rc != -ESTALE) ||
        (attempt >= 3 && kt_mono_us() > give_up))
      break;
    busy_ms = backoff(busy_ms);
  }
  kt_metric_inc(a->m_lazy, (const char *const[]){r->type, "error"});
  return -EAGAIN;
}

static int ensure_object_span(struct kt_aggregator *a,
                              const struct kt_object *o, int64_t t,
                              struct ctx *out, int depth);

struct link {
  struct kt_object target;
  char group[128], resource[128];
  const char *cls, *dedup, *linker;
};

static void link_tags(struct kv *kv, const struct kt_object *o,
                      const char *role, const char *cls)
{
  kv[0] = (struct kv){"linkedCluster", (char *)o->cluster};
  kv[1] = (struct kv){"linkedGroup", (char *)(o->group ? o->group : "")};
  kv[2] = (struct kv){"linkedResource", (char *)o->resource};
  kv[3] = (struct kv){"linkedNamespace", (char *)(o->namespace ? o->namespace : "")};
  kv[4] = (struct kv){"linkedName", (char *)o->name};
  kv[5] = (struct kv){"linkRole", (char *)role};
  kv[6] = (struct kv){"linkClass", (char *)cls};
}

/* Makes the forward (child -> parent) and backward link spans. */
static void make_link(struct kt_aggregator *a, const struct kt_object *o,
                      const struct ctx *octx, struct link *l, int64_t t,
                      int depth)
{
  struct ctx pctx, tmp;
  int created;
  if (ensure_object_span(a, &l->target, t, &pctx, depth + 1))
    return;
  struct kv kv[7];
  link_tags(kv, &l->target, "parent", l->cls);
  struct pseudo_req fwd = {o, "link", l->dedup, t, octx, kv, 7, NULL};
  get_or_create_pseudo(a, &fwd, &tmp, &created);
  char okey[1024], dedup[1200];
  kt_object_key(o, okey, sizeof okey);
  snprintf(dedup, sizeof dedup, "%s@%s", l->dedup, okey);
  link_tags(kv, o, "child", l->cls);
  struct pseudo_req back = {&l->target, "link", dedup, t, &pctx, kv, 7, NULL};
  get_or_create_pseudo(a, &back, &tmp, &created);
  kt_metric_inc(a->m_link, (const char *const[]){l->linker});
}

static void owner_links(struct kt_aggregator *a, const struct kt_object *o,
                        const cJSON *body, const struct ctx *octx, int64_t t,
                        int depth)
{
  const cJSON *refs = kt_json_path(body, "metadata.ownerReferences");
  const cJSON *ref;
  cJSON_ArrayForEach(ref, refs) {
    if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(ref, "controller")))
      continue;
    struct link l = {.cls = "children", .dedup = "ownerReference",
                     .linker = "owner"};
    const char *api = kt_json_str(ref, "apiVersion");
    const char *kind = kt_json_str(ref, "kind");
    const char *name = kt_json_str(ref, "name");
    if (!name || kt_kinds_resource(api, kind, l.resource, sizeof l.resource))
      continue;
    kt_kinds_group(api, l.group, sizeof l.group);
    const char *slash = api ? strchr(api, '/') : NULL;
    l.target = (struct kt_object){o->cluster, l.group, slash ? slash + 1 : api,
                                  l.resource, o->namespace, name,
                                  kt_json_str(ref, "uid"), NULL, o->recovered};
    make_link(a, o, octx, &l, t, depth);
  }
}

static void annotation_link(struct kt_aggregator *a, const struct kt_object *o,
                            const cJSON *body, const struct ctx *octx,
                            int64_t t, int depth)
{
  const cJSON *ann = kt_json_path(body, "metadata.annotations");
  const char *v = kt_json_str(ann, "kelemetry.kubewharf.io/parent-link");
  if (!v)
    return;
  cJSON *p = cJSON_Parse(v);
  const char *res = kt_json_str(p, "resource"), *name = kt_json_str(p, "name");
  if (res && name) {
    const char *cl = kt_json_str(p, "cluster");
    struct link l = {.cls = "", .dedup = "annotation", .linker = "annotation"};
    l.target = (struct kt_object){cl && *cl ? cl : o->cluster,
                                  kt_json_str(p, "group"),
                                  kt_json_str(p, "version"), res,
                                  kt_json_str(p, "namespace"), name,
                                  kt_json_str(p, "uid"), NULL, o->recovered};
    make_link(a, o, octx, &l, t, depth);
  } else {
    kt_warn("object %s/%s: invalid parent-link annotation", o->resource,
            o->name);
  }
  cJSON_Delete(p);
}

/* Claims the link job of (object, window): true for exactly one caller.
 * The job needs the object's body; an object span created by a linker
 * (a pod's owner seen before its own first event reached its partition)
 * has none yet, so the claim is made by the first caller that has one. */
static int claim_link_job(struct kt_aggregator *a, const struct kt_object *o,
                          int64_t t)
{
  char key[1200], okey[1024], *val = NULL;
  uint64_t uid;
  kt_object_key(o, okey, sizeof okey);
  window_key(okey, "linkjob", (long long)(t / a->o.span_ttl_us), key,
             sizeof key);
  int rc;
  long ms = 10; /* a shared engine's outage is waited out, as above */
  while ((rc = a->sc->ops->fetch_or_reserve(a->sc->impl, key,
                                            a->o.reserve_ttl_us, &val,
                                            &uid)) == -EIO)
    ms = backoff(ms);
  free(val);
  if (rc || val)
    return 0;
  while ((rc = a->sc->ops->set_reserved(a->sc->impl, key, "done", uid,
                                        a->o.span_ttl_us +
                                            a->o.span_extra_ttl_us)) == -EIO)
    ms = backoff(ms);
  return rc == 0;
}

static int ensure_object_span(struct kt_aggregator *a,
                              const struct kt_object *o, int64_t t,
                              struct ctx *out, int depth)
{
  cJSON *owned;
  const cJSON *body = lookup_body(a, o, &owned);
  struct pseudo_req r = {o, "object", "object", t, NULL, NULL, 0, body};
  int created;
  int rc = get_or_create_pseudo(a, &r, out, &created);
  int linkers = a->o.owner_linker || a->o.annotation_linker;
  if (rc == 0 && body && linkers && depth < MAX_LINK_DEPTH &&
      ((created && o->recovered) || claim_link_job(a, o, t))) {
    if (a->o.owner_linker)
      owner_links(a, o, body, out, t, depth);
    if (a->o.annotation_linker)
      annotation_link(a, o, body, out, t, depth);
  }
  cJSON_Delete(owned);
  return rc;
}

static int verb_listed(const char *list, const char *verb)
{
  size_t n = strlen(verb);
  for (const char *p = list; p && *p;) {
    const char *c = strchr(p, ',');
    size_t len = c ? (size_t)(c - p) : strlen(p);
    if (len == n && strncmp(p, verb, n) == 0)
      return 1;
    p = c ? c + 1 : NULL;
  }
  return 0;
}

int kt_aggregator_has_event(struct kt_aggregator *a,
                            const struct kt_object *obj, int64_t t_us,
                            uint64_t span_id)
{
  char okey[1024], key[1200];
  uint8_t trace[16];
  kt_object_key(obj, okey, sizeof okey);
  window_key(okey, "object", (long long)(t_us / a->o.span_ttl_us), key,
             sizeof key);
  key_trace_id(key, trace);
  return kt_store_has_span(a->store, trace, span_id, obj->name);
}

int kt_aggregator_send(struct kt_aggregator *a, const struct kt_object *obj,
                       struct kt_span *ev)
{
  struct ctx octx;
  int64_t t0 = kt_mono_us();
  int rc = ensure_object_span(a, obj, ev->start_us, &octx, 0);
  const char *src = ev->service;
  if (rc) {
    kt_defer_done(&a->m_send, (const char *const[]){obj->cluster, src, "false",
                                                    "EnsureObjectSpan"}, t0);
    kt_span_free(ev);
    return rc;
  }
  memcpy(ev->trace_id, octx.trace, 16);
  ev->parent_id = octx.span;
  if (!ev->span_id)
    ev->span_id = kt_random_u64();
  add_key_tags(ev, obj);
  kt_span_add_tag(ev, "zzz-notPseudo", "zzz-notPseudo");
  kt_span_add_tag(ev, "zzz-traceSource", src);
  const char *verb = kt_span_tag(ev, "tag");
  if (a->o.resource_event_tag && verb &&
      verb_listed(a->o.resource_event_tag_verbs, verb))
    add_resource_tags(a, ev, obj, obj->body);
  /* Quirk §9.1 not copied: event spans get the event global tags. */
  add_kv_tags(ev, a->event_tags, a->nevent);
  char source[32]; /* ev belongs to the store once put */
  snprintf(source, sizeof source, "%s", src);
  rc = emit(a, ev);
  kt_defer_done(&a->m_send, (const char *const[]){obj->cluster, source, rc ? "false" : "true",
                                                  rc ? "StoreSpan" : "<nil>"}, t0);
  return rc;
}
