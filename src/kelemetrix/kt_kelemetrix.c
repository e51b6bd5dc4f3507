/* kt_kelemetrix: see the header.
 *
 * Layout: the config is loaded once into an array of metrics, each with
 * its quantifier id, tag ids, compiled tag filters and quantity filters
 * and its registered kt_metric. Per event, an `eval` on the stack
 * computes each tag and quantity lazily, at most once, only when some
 * metric asks for it; the requestURI is parsed once for resourceVersion,
 * hasSelector and timeoutSeconds together. Nothing is allocated per event
 * and nothing is locked except the registry's series lookup. */
#include "kelemetrix/kt_kelemetrix.h"
#include "core/kt_url.h"

#include <ctype.h>
#include <errno.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "audit/kt_audit.h"
#include "core/kt_grow.h"
#include "core/kt_log.h"
#include "core/kt_metrics.h"
#include "core/kt_time.h"
#include "kelemetrix/kt_toml.h"

/* ---- tags and quantifiers ---- */

enum tag_id {
  T_CLUSTER, T_APISERVER, T_USERNAME, T_CLIENT, T_VERB, T_CODE, T_REASON,
  T_RV, T_SELECTOR, T_GROUP, T_VERSION, T_RESOURCE, T_GROUP_RESOURCE,
  T_SUBRESOURCE, T_NAMESPACE, T_NAME, NTAGS
};

static const char *const tag_names[NTAGS] = {
    "cluster",   "apiserverAddr", "username",      "clientAddr",
    "verb",      "code",          "errorReason",   "resourceVersion",
    "hasSelector", "group",       "version",       "resource",
    "groupResource", "subresource", "namespace",   "name"};

enum q_id { Q_COUNT, Q_LATENCY, Q_MQ, Q_RATIO, NQ };

static const char *const q_names[NQ] = {"request_count", "request_latency",
                                        "mq_latency", "request_latency_ratio"};
static const enum kt_metric_kind q_kinds[NQ] = {KT_COUNTER, KT_HISTOGRAM,
                                                KT_HISTOGRAM, KT_SUMMARY};
static const char *const kind_suffix[] = {"_count", "_gauge", "_histogram",
                                          "_summary"};

/* Latencies are in nanoseconds, as in the original; buckets from 100 µs
 * to 10 min (long watches). */
static const double ns_bounds[] = {1e5, 2.5e5, 5e5, 1e6, 2.5e6, 5e6,
                                   1e7, 2.5e7, 5e7, 1e8, 2.5e8, 5e8,
                                   1e9, 2.5e9, 5e9, 1e10, 3e10, 6e10,
                                   3e11, 6e11};

#define ERR_URI "kelemetrix::ErrUriParse"
#define DEFAULT_TIMEOUT_S 60.0

enum op { OP_LT, OP_GT, OP_LE, OP_GE };
static const char *const op_names[] = {"<", ">", "<=", ">="};

struct tag_filter {
  int tag;
  int is_regex, negate;
  int line;         /* of the header, for errors */
  char **choices;   /* oneOf */
  int *lines;       /* of each choice */
  regex_t *re;      /* compiled choices when is_regex */
  size_t n, nre;
  int has_tag, has_one_of;
};

struct qty_filter {
  int q, op;
  double threshold;
  int line, has_q, has_op, has_threshold;
};

struct metric {
  char *name;
  int line, name_line;
  int q, has_q;
  int tags[KT_METRICS_MAX_LABELS];
  int ntags;
  struct tag_filter *tf;
  size_t ntf, tf_cap;
  struct qty_filter *qf;
  size_t nqf, qf_cap;
  struct kt_metric *m;
};

struct timeout {
  char cluster[64];
  double secs;
};

struct kt_kelemetrix {
  struct metric *metrics;
  size_t n, cap;
  struct timeout *timeouts;
  size_t ntimeouts;
  unsigned need_tags, need_q; /* every tag/quantity some metric reads */
  int log_tags, log_quantities;
  struct kt_series *e_uri, *e_timeout;
};

/* ---- the requestURI (Go's net/url, as far as the tags need it) ---- */

enum rv_kind { RV_EMPTY, RV_ZERO, RV_NONZERO };

struct uri {
  int err;          /* url.Parse would fail */
  int rv;           /* enum rv_kind */
  int selector;     /* labelSelector or fieldSelector present */
  int has_timeout;  /* timeoutSeconds present */
  int timeout_ok;
  double timeout;
};

/* Go's url.Parse fails on control characters, a leading ':' (missing
 * scheme), a colon in the first segment of a relative path and bad
 * %-escapes in the path or the fragment. */
static int uri_invalid(const char *s, const char **query, const char **qend)
{
  const char *end = s + strlen(s), *hash = strchr(s, '#');
  for (const char *p = s; p < end; p++)
    if ((unsigned char)*p < 0x20 || *p == 0x7f)
      return 1;
  if (hash && !kt_url_escapes_ok(hash + 1, end))
    return 1;
  const char *body_end = hash ? hash : end;
  const char *q = memchr(s, '?', (size_t)(body_end - s));
  const char *path_end = q ? q : body_end;
  *query = q ? q + 1 : body_end;
  *qend = body_end;
  if (*s == ':')
    return 1;
  const char *p = s;
  int scheme = 0;
  if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')) {
    while (p < path_end && (isalnum((unsigned char)*p) || *p == '+' ||
                            *p == '-' || *p == '.'))
      p++;
    scheme = p < path_end && *p == ':';
  }
  if (scheme) /* an opaque "scheme:x" has no path to unescape */
    return p[1] == '/' && !kt_url_escapes_ok(p + 1, path_end);
  if (*s != '/') {
    const char *slash = memchr(s, '/', (size_t)(path_end - s));
    if (memchr(s, ':', (size_t)((slash ? slash : path_end) - s)))
      return 1;
  }
  return !kt_url_escapes_ok(s, path_end);
}

/* strconv.ParseFloat's accepted forms, as strtod reads them. */
static int parse_float(const char *s, double *out)
{
  char *end;
  if (!*s || *s == ' ' || *s == '\t' || *s == '\n')
    return -1;
  *out = strtod(s, &end);
  return *end ? -1 : 0;
}

/* One key=value pair of the query (Go's url.ParseQuery: pairs with ';' or
 * a bad escape are dropped; the first value of a key counts). */
static void query_pair(struct uri *u, const char *s, const char *e,
                       int *seen_rv)
{
  char key[32], val[64];
  const char *eq = memchr(s, '=', (size_t)(e - s));
  const char *ke = eq ? eq : e, *vs = eq ? eq + 1 : e;
  if (s == e || memchr(s, ';', (size_t)(e - s)))
    return;
  long kn = kt_url_unescape(s, ke, key, sizeof key, 1);
  long vn = kt_url_unescape(vs, e, val, sizeof val, 1);
  if (kn < 0 || vn < 0 || (size_t)kn >= sizeof key)
    return;
  if (strcmp(key, "resourceVersion") == 0 && !*seen_rv) {
    *seen_rv = 1;
    u->rv = strcmp(val, "0") == 0 ? RV_ZERO : RV_NONZERO;
  } else if (strcmp(key, "labelSelector") == 0 ||
             strcmp(key, "fieldSelector") == 0) {
    u->selector = 1;
  } else if (strcmp(key, "timeoutSeconds") == 0 && !u->has_timeout) {
    u->has_timeout = 1;
    u->timeout_ok = (size_t)vn < sizeof val &&
                    parse_float(val, &u->timeout) == 0;
  }
}

static void parse_uri(const char *s, struct uri *u)
{
  const char *q, *qe;
  int seen_rv = 0;
  memset(u, 0, sizeof *u);
  if (uri_invalid(s, &q, &qe)) {
    u->err = 1;
    return;
  }
  while (q < qe) {
    const char *amp = memchr(q, '&', (size_t)(qe - q));
    const char *pe = amp ? amp : qe;
    query_pair(u, q, pe, &seen_rv);
    q = amp ? amp + 1 : qe;
  }
}

/* ---- one event ---- */

struct eval {
  const struct kt_kelemetrix *k;
  const struct kt_audit_event *ev;
  const char *apiserver;
  int64_t now_us; /* 0 = read the clock when mq_latency needs it */
  int complete;   /* stage ResponseComplete */
  unsigned tags_done, q_done, q_ok;
  const char *tag[NTAGS];
  double q[NQ];
  int uri_done;
  struct uri uri;
  char code[16];
  char gr[512];
};

static const char *str_or_empty(const char *s)
{
  return s ? s : "";
}

static const struct uri *event_uri(struct eval *e)
{
  if (!e->uri_done) {
    const char *s = kt_json_str(e->ev->json, "requestURI");
    parse_uri(s ? s : "", &e->uri);
    e->uri_done = 1;
    if (e->uri.err && e->k)
      kt_series_add(e->k->e_uri, 1);
  }
  return &e->uri;
}

/* The impersonated user when there is one; nodes collapsed. */
static const char *username(const struct kt_audit_event *ev)
{
  const char *u = ev->username;
  const cJSON *imp = cJSON_GetObjectItemCaseSensitive(ev->json,
                                                      "impersonatedUser");
  if (cJSON_IsObject(imp))
    u = str_or_empty(ev->impersonated);
  u = str_or_empty(u);
  return strncmp(u, "system:node:", 12) == 0 ? "system:node" : u;
}

static const char *client_addr(const struct kt_audit_event *ev)
{
  const cJSON *ips = cJSON_GetObjectItemCaseSensitive(ev->json, "sourceIPs");
  const cJSON *first = cJSON_IsArray(ips) ? ips->child : NULL;
  return cJSON_IsString(first) ? first->valuestring : "";
}

static const cJSON *response_status(const struct kt_audit_event *ev)
{
  const cJSON *rs = cJSON_GetObjectItemCaseSensitive(ev->json,
                                                     "responseStatus");
  return cJSON_IsObject(rs) ? rs : NULL;
}

static const char *uri_tag(struct eval *e, int id)
{
  const struct uri *u = event_uri(e);
  if (u->err)
    return ERR_URI;
  if (id == T_SELECTOR)
    return u->selector ? "true" : "false";
  static const char *const rv[] = {"Empty", "Zero", "NonZero"};
  return rv[u->rv];
}

static const char *compute_tag(struct eval *e, int id)
{
  const struct kt_audit_event *ev = e->ev;
  switch (id) {
  case T_CLUSTER: return ev->cluster;
  case T_APISERVER: return str_or_empty(e->apiserver);
  case T_USERNAME: return username(ev);
  case T_CLIENT: return client_addr(ev);
  case T_VERB: return str_or_empty(ev->verb);
  case T_CODE:
    if (!response_status(ev))
      return "";
    snprintf(e->code, sizeof e->code, "%d", ev->code);
    return e->code;
  case T_REASON: return str_or_empty(kt_json_str(response_status(ev),
                                                 "reason"));
  case T_RV:
  case T_SELECTOR: return uri_tag(e, id);
  case T_GROUP: return str_or_empty(ev->api_group);
  case T_VERSION: return str_or_empty(ev->api_version);
  case T_RESOURCE: return str_or_empty(ev->resource);
  case T_GROUP_RESOURCE:
    if (!ev->api_group || !*ev->api_group)
      return str_or_empty(ev->resource);
    snprintf(e->gr, sizeof e->gr, "%s.%s", str_or_empty(ev->resource),
             ev->api_group);
    return e->gr;
  case T_SUBRESOURCE: return str_or_empty(ev->subresource);
  case T_NAMESPACE: return str_or_empty(ev->namespace);
  default: return str_or_empty(ev->name);
  }
}

static const char *tag(struct eval *e, int id)
{
  if (!(e->tags_done & 1u << id)) {
    e->tag[id] = compute_tag(e, id);
    e->tags_done |= 1u << id;
  }
  return e->tag[id];
}

/* The cluster's --kube-request-timeout, else 60 s. */
static double cluster_timeout(const struct kt_kelemetrix *k,
                              const char *cluster)
{
  for (size_t i = 0; k && i < k->ntimeouts; i++)
    if (strcmp(k->timeouts[i].cluster, cluster) == 0)
      return k->timeouts[i].secs;
  return DEFAULT_TIMEOUT_S;
}

/* timeout / latency; no value when the URI or timeoutSeconds is bad. */
static int ratio(struct eval *e, double *out)
{
  const struct uri *u = event_uri(e);
  if (u->err)
    return 0;
  if (u->has_timeout && !u->timeout_ok) {
    if (e->k)
      kt_series_add(e->k->e_timeout, 1);
    return 0;
  }
  double timeout = u->has_timeout ? u->timeout
                                  : cluster_timeout(e->k, e->ev->cluster);
  double latency = (double)(e->ev->stage_us - e->ev->received_us) / 1e6;
  *out = timeout / latency; /* +Inf for a zero latency, as in Go */
  return 1;
}

static int compute_quantity(struct eval *e, int id, double *out)
{
  const struct kt_audit_event *ev = e->ev;
  if (!e->complete)
    return 0;
  switch (id) {
  case Q_COUNT:
    *out = 1;
    return 1;
  case Q_LATENCY:
    *out = (double)(ev->stage_us - ev->received_us) * 1000.0;
    return 1;
  case Q_MQ:
    if (!e->now_us)
      e->now_us = kt_now_us();
    *out = (double)(e->now_us - ev->stage_us) * 1000.0;
    return 1;
  default:
    return ratio(e, out);
  }
}

static int quantity(struct eval *e, int id, double *out)
{
  if (!(e->q_done & 1u << id)) {
    if (compute_quantity(e, id, &e->q[id]))
      e->q_ok |= 1u << id;
    e->q_done |= 1u << id;
  }
  *out = e->q[id];
  return (e->q_ok >> id) & 1;
}

static void eval_init(struct eval *e, const struct kt_kelemetrix *k,
                      const struct kt_audit_event *ev, const char *apiserver,
                      int64_t now_us)
{
  e->k = k;
  e->ev = ev;
  e->apiserver = apiserver;
  e->now_us = now_us;
  e->complete = ev->stage && strcmp(ev->stage, "ResponseComplete") == 0;
  e->tags_done = e->q_done = e->q_ok = 0;
  e->uri_done = 0;
}

/* ---- filters and emission ---- */

/* Any oneOf entry equals (or, isRegex, matches) the value; negate inverts
 * the whole answer: "none of them" (see the doc on the original's quirk). */
static int tag_filter_pass(const struct tag_filter *f, const char *v)
{
  int any = 0;
  for (size_t i = 0; i < f->n && !any; i++)
    any = f->is_regex ? regexec(&f->re[i], v, 0, NULL, 0) == 0
                      : strcmp(f->choices[i], v) == 0;
  return f->negate ? !any : any;
}

static int qty_filter_pass(const struct qty_filter *f, double v)
{
  switch (f->op) {
  case OP_LT: return v < f->threshold;
  case OP_GT: return v > f->threshold;
  case OP_LE: return v <= f->threshold;
  default: return v >= f->threshold;
  }
}

static void emit(struct eval *e, const struct metric *m)
{
  double v, x;
  const char *values[KT_METRICS_MAX_LABELS];
  if (!m->m || !quantity(e, m->q, &v))
    return;
  for (size_t i = 0; i < m->ntf; i++)
    if (!tag_filter_pass(&m->tf[i], tag(e, m->tf[i].tag)))
      return;
  for (size_t i = 0; i < m->nqf; i++)
    if (!quantity(e, m->qf[i].q, &x) || !qty_filter_pass(&m->qf[i], x))
      return;
  for (int i = 0; i < m->ntags; i++)
    values[i] = tag(e, m->tags[i]);
  struct kt_series *s = kt_metric_series(m->m, m->ntags ? values : NULL);
  if (q_kinds[m->q] == KT_COUNTER)
    kt_series_add(s, v);
  else
    kt_series_observe(s, v);
}

/* One debug line with every tag and quantity the config uses. */
static void debug_log(struct eval *e)
{
  const struct kt_kelemetrix *k = e->k;
  char buf[1800];
  size_t n = 0;
  double v;
  n += (size_t)snprintf(buf, sizeof buf, "kelemetrix: event %s/%s",
                        e->ev->cluster, str_or_empty(e->ev->audit_id));
  for (int i = 0; k->log_tags && i < NTAGS && n < sizeof buf; i++)
    if (k->need_tags & 1u << i)
      n += (size_t)snprintf(buf + n, sizeof buf - n, " tag.%s=%s",
                            tag_names[i], tag(e, i));
  for (int i = 0; k->log_quantities && i < NQ && n < sizeof buf; i++)
    if ((k->need_q & 1u << i) && quantity(e, i, &v))
      n += (size_t)snprintf(buf + n, sizeof buf - n, " quantity.%s=%g",
                            q_names[i], v);
  kt_debug("%s", buf);
}

void kt_kelemetrix_observe_at(struct kt_kelemetrix *k,
                              const struct kt_audit_event *ev,
                              const char *apiserver, int64_t now_us)
{
  struct eval e;
  if (!k || !ev)
    return;
  eval_init(&e, k, ev, apiserver, now_us);
  if (k->log_tags || k->log_quantities)
    debug_log(&e);
  for (size_t i = 0; i < k->n; i++)
    emit(&e, &k->metrics[i]);
}

void kt_kelemetrix_observe(struct kt_kelemetrix *k,
                           const struct kt_audit_event *ev,
                           const char *apiserver)
{
  kt_kelemetrix_observe_at(k, ev, apiserver, 0);
}

static int find_name(const char *const *names, int n, const char *s)
{
  for (int i = 0; i < n; i++)
    if (strcmp(names[i], s) == 0)
      return i;
  return -1;
}

int kt_kelemetrix_tag(const struct kt_audit_event *ev, const char *apiserver,
                      const char *name, char *buf, size_t len)
{
  struct eval e;
  int id = find_name(tag_names, NTAGS, name);
  if (id < 0)
    return -ENOENT;
  eval_init(&e, NULL, ev, apiserver, 0);
  snprintf(buf, len, "%s", tag(&e, id));
  return 0;
}

int kt_kelemetrix_quantity(const struct kt_kelemetrix *k,
                           const struct kt_audit_event *ev,
                           const char *name, int64_t now_us, double *out)
{
  struct eval e;
  int id = find_name(q_names, NQ, name);
  if (id < 0)
    return -ENOENT;
  eval_init(&e, k, ev, NULL, now_us);
  return quantity(&e, id, out);
}

/* ---- loading ---- */

/* Load state: where errors go. */
struct load {
  const char *path;
  char *err;
  size_t errlen;
  struct kt_kelemetrix *k;
  struct kt_metrics *registry;
};

static int lfail(struct load *l, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int lfail(struct load *l, int line, const char *fmt, ...)
{
  char msg[400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  snprintf(l->err, l->errlen, "%s:%d: %s", l->path, line, msg);
  return -EINVAL;
}

static int want_type(struct load *l, const struct kt_toml_pair *p,
                     enum kt_toml_type t)
{
  int ok = p->v.type == t ||
           (t == KT_TOML_FLOAT && p->v.type == KT_TOML_INT);
  if (ok)
    return 0;
  return lfail(l, p->line, "\"%s\" must be %s, not %s", p->key,
               t == KT_TOML_STRING ? "a string"
               : t == KT_TOML_BOOL ? "a boolean"
               : t == KT_TOML_FLOAT ? "a number" : "an array of strings",
               kt_toml_type_name(p->v.type));
}

static int want_strings(struct load *l, const struct kt_toml_pair *p)
{
  int rc = want_type(l, p, KT_TOML_ARRAY);
  for (size_t i = 0; !rc && i < p->v.nitems; i++)
    if (p->v.items[i].type != KT_TOML_STRING)
      rc = lfail(l, p->v.items[i].line, "\"%s\" must be an array of "
                 "strings, not of %s", p->key,
                 kt_toml_type_name(p->v.items[i].type));
  return rc;
}

static int lookup_tag(struct load *l, const char *s, int line, int *out)
{
  *out = find_name(tag_names, NTAGS, s);
  if (*out >= 0)
    return 0;
  return lfail(l, line, "unknown tag \"%s\" (cluster, apiserverAddr, "
               "username, clientAddr, verb, code, errorReason, "
               "resourceVersion, hasSelector, group, version, resource, "
               "groupResource, subresource, namespace, name)", s);
}

static int lookup_q(struct load *l, const char *s, int line, int *out)
{
  *out = find_name(q_names, NQ, s);
  if (*out >= 0)
    return 0;
  return lfail(l, line, "unknown quantifier \"%s\" (request_count, "
               "request_latency, mq_latency, request_latency_ratio)", s);
}

/* Prometheus metric names: [a-zA-Z_:][a-zA-Z0-9_:]*. */
static int valid_metric_name(const char *s)
{
  if (!*s || (*s >= '0' && *s <= '9') || strlen(s) > 200)
    return 0;
  for (; *s; s++)
    if (!isalnum((unsigned char)*s) && *s != '_' && *s != ':')
      return 0;
  return 1;
}

static int metric_tags(struct load *l, struct metric *m,
                       const struct kt_toml_pair *p)
{
  int rc = want_strings(l, p);
  if (!rc && p->v.nitems > KT_METRICS_MAX_LABELS)
    return lfail(l, p->line, "more than %d tags", KT_METRICS_MAX_LABELS);
  for (size_t i = 0; !rc && i < p->v.nitems; i++) {
    const struct kt_toml_value *it = &p->v.items[i];
    int id;
    rc = lookup_tag(l, it->s, it->line, &id);
    for (int j = 0; !rc && j < m->ntags; j++)
      if (m->tags[j] == id)
        rc = lfail(l, it->line, "tag \"%s\" listed twice", it->s);
    if (!rc)
      m->tags[m->ntags++] = id;
  }
  return rc;
}

static int metric_pair(struct load *l, struct metric *m,
                       const struct kt_toml_pair *p)
{
  int rc;
  if (strcasecmp(p->key, "name") == 0) {
    rc = want_type(l, p, KT_TOML_STRING);
    if (!rc && !valid_metric_name(p->v.s))
      return lfail(l, p->line, "invalid metric name \"%s\" (letters, "
                   "digits, '_' and ':', not starting with a digit)",
                   p->v.s);
    if (!rc && !(m->name = strdup(p->v.s)))
      return -ENOMEM;
    m->name_line = p->line;
    return rc;
  }
  if (strcasecmp(p->key, "quantifier") == 0) {
    rc = want_type(l, p, KT_TOML_STRING);
    rc = rc ? rc : lookup_q(l, p->v.s, p->line, &m->q);
    m->has_q = !rc;
    return rc;
  }
  if (strcasecmp(p->key, "tags") == 0)
    return metric_tags(l, m, p);
  if (strcasecmp(p->key, "tagFilters") == 0 ||
      strcasecmp(p->key, "quantityFilters") == 0)
    return lfail(l, p->line, "\"%s\" must be written as [[metrics.%s]] "
                 "tables", p->key, p->key);
  return lfail(l, p->line, "unknown key \"%s\" in [[metrics]]", p->key);
}

static int one_of(struct load *l, struct tag_filter *f,
                  const struct kt_toml_pair *p)
{
  int rc = want_strings(l, p);
  if (!rc && p->v.nitems == 0)
    return lfail(l, p->line, "oneOf is empty: the filter would never pass");
  if (rc)
    return rc;
  f->choices = calloc(p->v.nitems, sizeof *f->choices);
  f->lines = calloc(p->v.nitems, sizeof *f->lines);
  if (!f->choices || !f->lines)
    return -ENOMEM;
  for (; f->n < p->v.nitems; f->n++) {
    f->lines[f->n] = p->v.items[f->n].line;
    if (!(f->choices[f->n] = strdup(p->v.items[f->n].s)))
      return -ENOMEM;
  }
  f->has_one_of = 1;
  return 0;
}

static int tag_filter_pair(struct load *l, struct tag_filter *f,
                           const struct kt_toml_pair *p)
{
  int rc;
  if (strcasecmp(p->key, "tag") == 0) {
    rc = want_type(l, p, KT_TOML_STRING);
    rc = rc ? rc : lookup_tag(l, p->v.s, p->line, &f->tag);
    f->has_tag = !rc;
    return rc;
  }
  if (strcasecmp(p->key, "oneOf") == 0)
    return f->has_one_of ? lfail(l, p->line, "duplicate key \"%s\"", p->key)
                         : one_of(l, f, p);
  if (strcasecmp(p->key, "isRegex") == 0 || strcasecmp(p->key, "negate") == 0) {
    rc = want_type(l, p, KT_TOML_BOOL);
    if (!rc)
      *(strcasecmp(p->key, "negate") == 0 ? &f->negate : &f->is_regex) =
          p->v.b;
    return rc;
  }
  return lfail(l, p->line, "unknown key \"%s\" in [[metrics.tagFilters]]",
               p->key);
}

static int qty_filter_pair(struct load *l, struct qty_filter *f,
                           const struct kt_toml_pair *p)
{
  int rc;
  if (strcasecmp(p->key, "quantity") == 0) {
    rc = want_type(l, p, KT_TOML_STRING);
    rc = rc ? rc : lookup_q(l, p->v.s, p->line, &f->q);
    f->has_q = !rc;
    return rc;
  }
  if (strcasecmp(p->key, "operator") == 0) {
    rc = want_type(l, p, KT_TOML_STRING);
    f->op = rc ? -1 : find_name(op_names, 4, p->v.s);
    if (!rc && f->op < 0)
      return lfail(l, p->line, "unknown operator \"%s\" (<, >, <=, >=)",
                   p->v.s);
    f->has_op = !rc;
    return rc;
  }
  if (strcasecmp(p->key, "threshold") == 0) {
    rc = want_type(l, p, KT_TOML_FLOAT);
    f->threshold = p->v.num;
    f->has_threshold = !rc;
    return rc;
  }
  return lfail(l, p->line,
               "unknown key \"%s\" in [[metrics.quantityFilters]]", p->key);
}

/* Case-insensitive on each key, as the original's decoder (go-toml). */
static int key_eq(const char *a, const char *b)
{
  return strcasecmp(a, b) == 0;
}

/* Checks for keys given twice under different cases ("name", "Name"),
 * which go-toml would map to the same field. */
static int case_dups(struct load *l, const struct kt_toml_table *t)
{
  for (size_t i = 0; i < t->npairs; i++)
    for (size_t j = 0; j < i; j++)
      if (key_eq(t->pairs[i].key, t->pairs[j].key))
        return lfail(l, t->pairs[i].line, "duplicate key \"%s\" (first at "
                     "line %d)", t->pairs[i].key, t->pairs[j].line);
  return 0;
}

static int add_metric(struct load *l, const struct kt_toml_table *t)
{
  struct kt_kelemetrix *k = l->k;
  if (KT_GROW(k->metrics, k->cap, k->n))
    return -ENOMEM;
  struct metric *m = &k->metrics[k->n++];
  memset(m, 0, sizeof *m);
  m->line = t->line;
  int rc = case_dups(l, t);
  for (size_t i = 0; !rc && i < t->npairs; i++)
    rc = metric_pair(l, m, &t->pairs[i]);
  if (!rc && !m->name)
    rc = lfail(l, t->line, "[[metrics]] without a name");
  if (!rc && !m->has_q)
    rc = lfail(l, t->line, "[[metrics]] \"%s\" without a quantifier",
               m->name);
  return rc;
}

/* ---- regex size ---- */

#define RE_MAX_NODES 10000
#define RE_MAX_DEPTH 64

/* Past a bracket expression ("[^]a[:alpha:]]"), p on its '['; NULL when
 * it does not end (regcomp then says why). */
static const char *skip_bracket(const char *p)
{
  p++;
  if (*p == '^')
    p++;
  if (*p == ']')
    p++;
  while (*p && *p != ']') {
    if (*p == '[' && (p[1] == ':' || p[1] == '.' || p[1] == '=')) {
      char c = p[1];
      const char *e = p + 2;
      while (*e && !(e[0] == c && e[1] == ']'))
        e++;
      if (!*e)
        return NULL;
      p = e + 2;
    } else {
      p++;
    }
  }
  return *p ? p : NULL;
}

/* "{m}", "{m,}", "{m,n}", "{,n}" at p: the copies regcomp makes, and p
 * on '}'; 0 when it is not a bound. */
static double bound_copies(const char **p)
{
  char *e = (char *)*p + 1;
  double m = *e == ',' ? 0 : strtod(*p + 1, &e), n = m;
  if ((e == *p + 1 && *e != ',') || m < 0)
    return 0;
  if (*e == ',') {
    const char *s = e + 1;
    n = *s == '}' ? m + 1 : strtod(s, &e);
    if (*s == '}')
      e = (char *)s;
  }
  if (*e != '}')
    return 0;
  *p = e;
  return n > 1 ? n : 1;
}

/* Why glibc's regcomp would take too much memory for re, or NULL. It
 * copies a repeated sub-expression once per repetition ("x{1000}" is 1000
 * copies, each "(...)+" level doubles), so a short pattern can ask for
 * gigabytes. This estimates the compiled size the same way. Repeating
 * nothing or a repetition ("a**", "a++") is refused as RE2 does; a '?'
 * after a repetition stays allowed (Go's lazy "+?"; glibc: optional). */
static const char *regex_cost(const char *re)
{
  double sum[RE_MAX_DEPTH], last[RE_MAX_DEPTH];
  int d = 0, state = 0; /* 0 nothing to repeat, 1 atom, 2 repeated */
  sum[0] = last[0] = 0;
  for (const char *p = re; *p; p++) {
    double atom = 1, copies = 0;
    if (*p == '(') {
      if (++d >= RE_MAX_DEPTH)
        return "groups nested too deeply";
      sum[d] = last[d] = 0;
      state = 0;
      continue;
    }
    if (*p == '|') {
      last[d] = 0;
      state = 0;
      continue;
    }
    if (*p == '*' || *p == '?')
      copies = 1;
    else if (*p == '+')
      copies = 2;
    else if (*p == '{' && state)
      copies = bound_copies(&p);
    if (copies) {
      if (!state || (state == 2 && *p != '?'))
        return "a repetition of nothing or of a repetition";
      sum[d] += last[d] * (copies - 1);
      last[d] *= copies;
      state = 2;
    } else {
      if (*p == '\\' && p[1])
        p++;
      else if (*p == '[' && !(p = skip_bracket(p)))
        return NULL;
      else if (*p == ')' && d > 0)
        atom = sum[d--] + 1;
      sum[d] += atom;
      last[d] = atom;
      state = 1;
    }
    if (sum[d] > RE_MAX_NODES)
      return "too large once compiled";
  }
  return NULL;
}

static int compile_regexes(struct load *l, struct tag_filter *f)
{
  if (!f->is_regex)
    return 0;
  f->re = calloc(f->n, sizeof *f->re);
  if (!f->re)
    return -ENOMEM;
  for (; f->nre < f->n; f->nre++) {
    const char *cost = regex_cost(f->choices[f->nre]);
    if (cost)
      return lfail(l, f->lines[f->nre], "bad regex \"%s\" in oneOf: %s",
                   f->choices[f->nre], cost);
    int rc = regcomp(&f->re[f->nre], f->choices[f->nre],
                     REG_EXTENDED | REG_NOSUB);
    if (rc) {
      char why[128];
      regerror(rc, &f->re[f->nre], why, sizeof why);
      regfree(&f->re[f->nre]);
      return lfail(l, f->lines[f->nre], "bad regex \"%s\" in oneOf: %s",
                   f->choices[f->nre], why);
    }
  }
  return 0;
}

static int add_tag_filter(struct load *l, struct metric *m,
                          const struct kt_toml_table *t)
{
  if (KT_GROW(m->tf, m->tf_cap, m->ntf))
    return -ENOMEM;
  struct tag_filter *f = &m->tf[m->ntf++];
  memset(f, 0, sizeof *f);
  f->line = t->line;
  int rc = case_dups(l, t);
  for (size_t i = 0; !rc && i < t->npairs; i++)
    rc = tag_filter_pair(l, f, &t->pairs[i]);
  if (!rc && !f->has_tag)
    rc = lfail(l, t->line, "[[metrics.tagFilters]] without a tag");
  if (!rc && !f->has_one_of)
    rc = lfail(l, t->line, "[[metrics.tagFilters]] without oneOf");
  rc = rc ? rc : compile_regexes(l, f);
  if (!rc && f->negate && f->n > 1)
    kt_warn("%s:%d: negate with %zu oneOf values passes when the value is "
            "none of them (the original passed when it differed from any "
            "one)", l->path, t->line, f->n);
  return rc;
}

static int add_qty_filter(struct load *l, struct metric *m,
                          const struct kt_toml_table *t)
{
  if (KT_GROW(m->qf, m->qf_cap, m->nqf))
    return -ENOMEM;
  struct qty_filter *f = &m->qf[m->nqf++];
  memset(f, 0, sizeof *f);
  f->line = t->line;
  int rc = case_dups(l, t);
  for (size_t i = 0; !rc && i < t->npairs; i++)
    rc = qty_filter_pair(l, f, &t->pairs[i]);
  const char *missing = !f->has_q ? "quantity" : !f->has_op ? "operator"
                        : !f->has_threshold ? "threshold" : NULL;
  if (!rc && missing)
    rc = lfail(l, t->line, "[[metrics.quantityFilters]] without %s",
               missing);
  return rc;
}

static const char *table_hint(const char *name)
{
  if (key_eq(name, "metrics.quantityFilter"))
    return " (did you mean [[metrics.quantityFilters]]?)";
  if (key_eq(name, "metrics.filters") || key_eq(name, "metrics.tagFilter"))
    return " (did you mean [[metrics.tagFilters]]?)";
  return " (expected [[metrics]], [[metrics.tagFilters]] or "
         "[[metrics.quantityFilters]])";
}

/* Maps the parsed tables onto metrics and filters. tmap[i] is the metric
 * index of table i when it is a [[metrics]]. */
static int map_tables(struct load *l, const struct kt_toml_doc *doc,
                      int *tmap)
{
  const struct kt_toml_table *root = &doc->tables[0];
  if (root->npairs)
    return lfail(l, root->pairs[0].line, "unknown key \"%s\" at the top "
                 "level (metrics are [[metrics]] tables)",
                 root->pairs[0].key);
  int rc = 0;
  for (size_t i = 1; !rc && i < doc->ntables; i++) {
    const struct kt_toml_table *t = &doc->tables[i];
    int parent = t->parent >= 0 ? tmap[t->parent] : -1;
    tmap[i] = -1;
    if (key_eq(t->name, "metrics")) {
      tmap[i] = (int)l->k->n;
      rc = add_metric(l, t);
    } else if (parent >= 0 && key_eq(t->name, "metrics.tagFilters")) {
      rc = add_tag_filter(l, &l->k->metrics[parent], t);
    } else if (parent >= 0 && key_eq(t->name, "metrics.quantityFilters")) {
      rc = add_qty_filter(l, &l->k->metrics[parent], t);
    } else {
      rc = lfail(l, t->line, "unknown table [[%s]]%s", t->name,
                 table_hint(t->name));
    }
  }
  return rc;
}

static int check_duplicates(struct load *l)
{
  const struct kt_kelemetrix *k = l->k;
  for (size_t i = 0; i < k->n; i++)
    for (size_t j = 0; j < i; j++)
      if (strcmp(k->metrics[i].name, k->metrics[j].name) == 0)
        return lfail(l, k->metrics[i].name_line, "duplicate metric name "
                     "\"%s\" (first at line %d)", k->metrics[i].name,
                     k->metrics[j].name_line);
  return 0;
}

static struct kt_metric *register_metric(struct load *l,
                                         const struct metric *m)
{
  const char *labels[KT_METRICS_MAX_LABELS + 1];
  char name[256], help[512];
  enum kt_metric_kind kind = q_kinds[m->q];
  for (int i = 0; i < m->ntags; i++)
    labels[i] = tag_names[m->tags[i]];
  labels[m->ntags] = NULL;
  snprintf(name, sizeof name, "%s%s", m->name, kind_suffix[kind]);
  snprintf(help, sizeof help, "kelemetrix: %s of audit events (%s)",
           q_names[m->q], l->path);
  if (kind == KT_COUNTER)
    return kt_metrics_counter(l->registry, name, help, labels);
  if (kind == KT_SUMMARY)
    return kt_metrics_summary(l->registry, name, help, labels);
  return kt_metrics_histogram(l->registry, name, help, labels, ns_bounds,
                              sizeof ns_bounds / sizeof ns_bounds[0]);
}

static int register_all(struct load *l)
{
  struct kt_kelemetrix *k = l->k;
  for (size_t i = 0; i < k->n; i++) {
    struct metric *m = &k->metrics[i];
    m->m = register_metric(l, m);
    if (!m->m)
      return lfail(l, m->name_line, "cannot register \"%s%s\": the name is "
                   "taken by another metric", m->name,
                   kind_suffix[q_kinds[m->q]]);
    k->need_q |= 1u << m->q;
    for (int j = 0; j < m->ntags; j++)
      k->need_tags |= 1u << m->tags[j];
    for (size_t j = 0; j < m->ntf; j++)
      k->need_tags |= 1u << m->tf[j].tag;
    for (size_t j = 0; j < m->nqf; j++)
      k->need_q |= 1u << m->qf[j].q;
  }
  struct kt_metric *e = kt_metrics_counter(l->registry,
      "kelemetrix_errors_total",
      "Audit events whose requestURI (uri_parse) or timeoutSeconds "
      "(bad_timeout) could not be read; their tags say "
      "kelemetrix::ErrUriParse, their ratio is skipped",
      (const char *const[]){"reason", NULL});
  k->e_uri = kt_metric_series(e, (const char *const[]){"uri_parse"});
  k->e_timeout = kt_metric_series(e, (const char *const[]){"bad_timeout"});
  return 0;
}

/* "a=1m,b=30s" into k->timeouts. */
static int parse_timeouts(struct kt_kelemetrix *k, const char *s, char *err,
                          size_t errlen)
{
  if (!s || !*s)
    return 0;
  size_t n = 1;
  for (const char *p = s; *p; p++)
    n += *p == ',';
  k->timeouts = calloc(n, sizeof *k->timeouts);
  if (!k->timeouts)
    return -ENOMEM;
  for (const char *p = s;;) {
    const char *comma = strchr(p, ','), *e = comma ? comma : p + strlen(p);
    const char *eq = memchr(p, '=', (size_t)(e - p));
    char dur[64];
    int64_t us;
    struct timeout *t = &k->timeouts[k->ntimeouts];
    if (!eq || eq == p || (size_t)(eq - p) >= sizeof t->cluster ||
        (size_t)(e - eq - 1) >= sizeof dur) {
      snprintf(err, errlen, "--kube-request-timeout: expected "
               "cluster=duration,... at \"%.*s\"", (int)(e - p), p);
      return -EINVAL;
    }
    memcpy(t->cluster, p, (size_t)(eq - p));
    memcpy(dur, eq + 1, (size_t)(e - eq - 1));
    dur[e - eq - 1] = '\0';
    if (kt_duration_parse(dur, &us) || us <= 0) {
      snprintf(err, errlen, "--kube-request-timeout: invalid duration "
               "\"%s\" for cluster %s", dur, t->cluster);
      return -EINVAL;
    }
    t->secs = (double)us / 1e6;
    k->ntimeouts++;
    if (!comma)
      return 0;
    p = comma + 1;
  }
}

int kt_kelemetrix_load(const char *text, size_t len, const char *path,
                       const struct kt_kelemetrix_opts *o,
                       struct kt_kelemetrix **out, char *err, size_t errlen)
{
  struct kt_toml_doc doc;
  char msg[300];
  int line, *tmap = NULL;
  struct load l = {path ? path : "kelemetrix.toml", err, errlen, NULL,
                   o && o->registry ? o->registry : kt_metrics_default()};
  *out = NULL;
  int rc = kt_toml_parse(text, len, &doc, &line, msg, sizeof msg);
  if (rc == -EINVAL)
    lfail(&l, line, "%s", msg);
  l.k = rc ? NULL : calloc(1, sizeof *l.k);
  tmap = rc ? NULL : calloc(doc.ntables, sizeof *tmap);
  if (!rc && (!l.k || !tmap))
    rc = -ENOMEM;
  if (!rc && o) {
    l.k->log_tags = o->log_tags;
    l.k->log_quantities = o->log_quantities;
    rc = parse_timeouts(l.k, o->request_timeouts, err, errlen);
  }
  rc = rc ? rc : map_tables(&l, &doc, tmap);
  rc = rc ? rc : check_duplicates(&l);
  rc = rc ? rc : register_all(&l);
  if (rc == -ENOMEM)
    snprintf(err, errlen, "%s: out of memory", l.path);
  kt_toml_free(&doc);
  free(tmap);
  if (rc) {
    kt_kelemetrix_free(l.k);
    return rc;
  }
  *out = l.k;
  return 0;
}

int kt_kelemetrix_open(const char *path, const struct kt_kelemetrix_opts *o,
                       struct kt_kelemetrix **out, char *err, size_t errlen)
{
  FILE *f = fopen(path, "rb");
  *out = NULL;
  if (!f) {
    int e = errno;
    snprintf(err, errlen, "cannot open %s: %s", path, strerror(e));
    return -e;
  }
  size_t cap = KT_TOML_MAX_TEXT + 1;
  char *buf = malloc(cap);
  size_t n = buf ? fread(buf, 1, cap, f) : 0;
  int rd_err = ferror(f);
  fclose(f);
  int rc = 0;
  if (!buf) {
    snprintf(err, errlen, "%s: out of memory", path);
    rc = -ENOMEM;
  } else if (rd_err) {
    snprintf(err, errlen, "cannot read %s", path);
    rc = -EIO;
  } else if (n > KT_TOML_MAX_TEXT) {
    snprintf(err, errlen, "%s: larger than %u bytes", path,
             KT_TOML_MAX_TEXT);
    rc = -EINVAL;
  }
  rc = rc ? rc : kt_kelemetrix_load(buf, n, path, o, out, err, errlen);
  free(buf);
  return rc;
}

static void free_tag_filter(struct tag_filter *f)
{
  for (size_t i = 0; i < f->nre; i++)
    regfree(&f->re[i]);
  for (size_t i = 0; i < f->n; i++)
    free(f->choices[i]);
  free(f->re);
  free(f->choices);
  free(f->lines);
}

void kt_kelemetrix_free(struct kt_kelemetrix *k)
{
  if (!k)
    return;
  for (size_t i = 0; i < k->n; i++) {
    struct metric *m = &k->metrics[i];
    for (size_t j = 0; j < m->ntf; j++)
      free_tag_filter(&m->tf[j]);
    free(m->tf);
    free(m->qf);
    free(m->name);
  }
  free(k->metrics);
  free(k->timeouts);
  free(k);
}

size_t kt_kelemetrix_count(const struct kt_kelemetrix *k)
{
  return k ? k->n : 0;
}
