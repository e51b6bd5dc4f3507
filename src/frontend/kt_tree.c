/* kt_tree: see the header. Steps follow the shipped transform config of
 * the original (hack/tfconfig.yaml): batches `initial` (prune childless
 * pseudo spans, object tags, service/operation names), `collapse`
 * (requests and events become logs on their object), `final` (cluster
 * prefix, internal tags removed, time range in the root's name). */
#include "frontend/kt_tree.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PSEUDO "zzz-pseudoType"
#define SOURCE "zzz-traceSource"

void kt_tree_init(struct kt_tree *t)
{
  memset(t, 0, sizeof *t);
  t->root = -1;
}

static void free_index(struct kt_tree *t)
{
  for (size_t i = 0; t->kids && i < t->_nindexed; i++)
    free(t->kids[i]);
  free(t->kids);
  free(t->nkids);
  t->kids = NULL;
  t->nkids = NULL;
}

void kt_tree_free(struct kt_tree *t)
{
  free_index(t);
  for (size_t i = 0; i < t->n; i++)
    kt_span_free(t->s[i]);
  free(t->s);
  kt_tree_init(t);
}

int kt_tree_add(struct kt_tree *t, struct kt_span *s)
{
  if (t->n == t->cap) {
    size_t cap = t->cap ? t->cap * 2 : 64;
    struct kt_span **v = realloc(t->s, cap * sizeof *v);
    if (!v) {
      kt_span_free(s);
      return -ENOMEM;
    }
    t->s = v;
    t->cap = cap;
  }
  t->s[t->n++] = s;
  return 0;
}

int kt_tree_absorb(struct kt_tree *t, struct kt_tree *src)
{
  int rc = 0;
  for (size_t i = 0; i < src->n; i++) {
    if (src->s[i] && !rc)
      rc = kt_tree_add(t, src->s[i]);
    else
      kt_span_free(src->s[i]);
    src->s[i] = NULL;
  }
  kt_tree_free(src);
  return rc;
}

/* span id -> index, open addressing; rebuilt with the children index. */
struct idmap {
  uint64_t *k;
  int *v;
  size_t cap;
};

static void idmap_build(struct idmap *m, const struct kt_tree *t)
{
  m->cap = 16;
  while (m->cap < t->n * 2 + 1)
    m->cap *= 2;
  m->k = calloc(m->cap, sizeof *m->k);
  m->v = calloc(m->cap, sizeof *m->v);
  for (size_t i = 0; m->k && m->v && i < t->n; i++) {
    if (!t->s[i])
      continue;
    size_t h = (size_t)(t->s[i]->span_id * 0x9E3779B97F4A7C15ull) & (m->cap - 1);
    while (m->k[h] && m->k[h] != t->s[i]->span_id)
      h = (h + 1) & (m->cap - 1);
    m->k[h] = t->s[i]->span_id;
    m->v[h] = (int)i;
  }
}

static int idmap_get(const struct idmap *m, uint64_t id)
{
  if (!id || !m->k)
    return -1;
  size_t h = (size_t)(id * 0x9E3779B97F4A7C15ull) & (m->cap - 1);
  while (m->k[h]) {
    if (m->k[h] == id)
      return m->v[h];
    h = (h + 1) & (m->cap - 1);
  }
  return -1;
}

int kt_tree_find(const struct kt_tree *t, uint64_t span_id)
{
  for (size_t i = 0; i < t->n; i++)
    if (t->s[i] && t->s[i]->span_id == span_id)
      return (int)i;
  return -1;
}

static void push_kid(struct kt_tree *t, int parent, int kid)
{
  int *v = realloc(t->kids[parent], (t->nkids[parent] + 1) * sizeof *v);
  if (!v)
    return;
  v[t->nkids[parent]++] = kid;
  t->kids[parent] = v;
}

int kt_tree_index(struct kt_tree *t)
{
  struct idmap m;
  free_index(t);
  t->kids = calloc(t->n ? t->n : 1, sizeof *t->kids);
  t->nkids = calloc(t->n ? t->n : 1, sizeof *t->nkids);
  t->root = -1;
  t->_nindexed = t->n;
  if (!t->kids || !t->nkids)
    return -1;
  idmap_build(&m, t);
  for (size_t i = 0; i < t->n; i++) {
    if (!t->s[i])
      continue;
    int p = idmap_get(&m, t->s[i]->parent_id);
    if (p >= 0 && p != (int)i)
      push_kid(t, p, (int)i);
    else if (t->root < 0 || t->s[i]->start_us < t->s[t->root]->start_us)
      t->root = (int)i;
  }
  free(m.k);
  free(m.v);
  return t->root;
}

static const char *pseudo(const struct kt_span *s)
{
  return kt_span_tag(s, PSEUDO);
}

static int is_type(const struct kt_span *s, const char *type)
{
  const char *p = pseudo(s);
  return p && strcmp(p, type) == 0;
}

static void delete_subtree(struct kt_tree *t, int i)
{
  if (!t->s[i])
    return;
  for (size_t k = 0; k < t->nkids[i]; k++)
    delete_subtree(t, t->kids[i][k]);
  kt_span_free(t->s[i]);
  t->s[i] = NULL;
}

/* ---- merging ----------------------------------------------------------- */

static void merge_into(struct kt_span *base, struct kt_span *other)
{
  if (other->start_us < base->start_us)
    base->start_us = other->start_us;
  if (other->end_us > base->end_us)
    base->end_us = other->end_us;
  for (size_t i = 0; i < other->ntags; i++)
    kt_span_set_tag(base, other->tags[i].key, other->tags[i].value);
  for (size_t i = 0; i < other->nlogs; i++) {
    struct kt_log *l = &other->logs[i];
    kt_span_add_log_owned(base, l->ts_us, l->type, l->msg);
    l->msg = NULL;
  }
}

void kt_tree_merge_roots(struct kt_tree *t)
{
  int base = -1;
  for (size_t i = 0; i < t->n; i++)
    if (t->s[i] && !t->s[i]->parent_id &&
        (base < 0 || t->s[i]->start_us < t->s[base]->start_us))
      base = (int)i;
  if (base < 0)
    return;
  for (size_t i = 0; i < t->n; i++) {
    struct kt_span *r = t->s[i];
    if (!r || r->parent_id || (int)i == base)
      continue;
    merge_into(t->s[base], r);
    for (size_t j = 0; j < t->n; j++)
      if (t->s[j] && t->s[j]->parent_id == r->span_id)
        t->s[j]->parent_id = t->s[base]->span_id;
    kt_span_free(r);
    t->s[i] = NULL;
  }
}

void kt_tree_clip(struct kt_tree *t, int64_t start, int64_t end)
{
  for (size_t i = 0; i < t->n; i++) {
    struct kt_span *s = t->s[i];
    if (!s)
      continue;
    const char *src = kt_span_tag(s, SOURCE);
    if (src && strcmp(src, "object") == 0) {
      s->start_us = start;
      s->end_us = end;
    } else if (!(s->start_us > start && s->start_us < end)) {
      kt_span_free(s);
      t->s[i] = NULL;
    }
  }
}

/* ---- steps ------------------------------------------------------------- */

/* Post-order: a non-root pseudo span with no surviving child goes. */
static int prune_childless(struct kt_tree *t, int i)
{
  int alive = 0;
  for (size_t k = 0; k < t->nkids[i]; k++)
    if (t->s[t->kids[i][k]])
      alive += prune_childless(t, t->kids[i][k]);
  if (i != t->root && pseudo(t->s[i]) && !alive) {
    kt_span_free(t->s[i]);
    t->s[i] = NULL;
    return 0;
  }
  return 1;
}

static const char *find_tag_below(struct kt_tree *t, int i, const char *key)
{
  for (size_t k = 0; k < t->nkids[i]; k++) {
    const struct kt_span *c = t->s[t->kids[i][k]];
    if (!c || is_type(c, "object"))
      continue;
    const char *v = kt_span_tag(c, key);
    if (!v)
      v = find_tag_below(t, t->kids[i][k], key);
    if (v)
      return v;
  }
  return NULL;
}

static void object_tags(struct kt_tree *t, const char *key)
{
  for (size_t i = 0; i < t->n; i++) {
    struct kt_span *s = t->s[i];
    if (!s || !is_type(s, "object") || !kt_span_tag(s, "resource") ||
        kt_span_tag(s, key))
      continue;
    const char *v = find_tag_below(t, (int)i, key);
    if (v) {
      char *copy = strdup(v);
      if (copy)
        kt_span_set_tag(s, key, copy);
      free(copy);
    }
  }
}

static void set_str(char **field, const char *v)
{
  char *c = strdup(v);
  if (c) {
    free(*field);
    *field = c;
  }
}

/* Object spans: service = resource, operation = "[namespace ]name". */
static void service_operation(struct kt_tree *t)
{
  char op[512];
  for (size_t i = 0; i < t->n; i++) {
    struct kt_span *s = t->s[i];
    const char *src = s ? kt_span_tag(s, SOURCE) : NULL;
    if (!src || strcmp(src, "object") != 0 || is_type(s, "linkClass"))
      continue;
    const char *res = kt_span_tag(s, "resource");
    const char *ns = kt_span_tag(s, "namespace");
    const char *name = kt_span_tag(s, "name");
    if (res && *res)
      set_str(&s->service, res);
    int n = 0;
    op[0] = 0;
    if (ns && *ns && strcmp(ns, "default") != 0)
      n = snprintf(op, sizeof op, "%s", ns);
    if (name && *name)
      snprintf(op + n, sizeof op - (size_t)n, "%s%s", n ? " " : "", name);
    set_str(&s->operation, op);
  }
}

static void add_field(struct kt_tag **f, size_t *n, const char *k,
                      const char *v)
{
  struct kt_tag *nf = realloc(*f, (*n + 1) * sizeof **f);
  if (!nf)
    return;
  *f = nf;
  nf[*n].key = strdup(k);
  nf[*n].value = strdup(v);
  (*n)++;
}

/* Splits audit/objectDiff lines into `diff` and `verbose diff` fields;
 * managedFields lines are dropped. */
static void diff_fields(const struct kt_span *c, struct kt_tag **f, size_t *n)
{
  size_t cap = 0;
  for (size_t i = 0; i < c->nlogs; i++)
    if (strcmp(c->logs[i].type, "audit/objectDiff") == 0)
      cap += strlen(c->logs[i].msg) + 1;
  if (!cap)
    return;
  char *diff = calloc(1, cap + 1), *verbose = calloc(1, cap + 1);
  for (size_t i = 0; diff && verbose && i < c->nlogs; i++) {
    if (strcmp(c->logs[i].type, "audit/objectDiff") != 0)
      continue;
    const char *p = c->logs[i].msg;
    while (*p) {
      const char *nl = strchr(p, '\n');
      size_t len = nl ? (size_t)(nl - p) : strlen(p);
      int is_verbose = !strncmp(p, "metadata.resourceVersion ", 25) ||
                       !strncmp(p, "metadata.generation ", 20);
      int hidden = !strncmp(p, "metadata.managedFields", 22);
      char *dst = is_verbose ? verbose : diff;
      if (!hidden && len) {
        if (*dst)
          strcat(dst, "\n");
        strncat(dst, p, len);
      }
      p += len + (nl ? 1 : 0);
    }
  }
  if (diff && *diff)
    add_field(f, n, "diff", diff);
  if (verbose && *verbose)
    add_field(f, n, "verbose diff", verbose);
  free(diff);
  free(verbose);
}

static void collapse_child(struct kt_span *parent, const struct kt_span *c)
{
  static const char *maps[][3] = {{"audit", "userAgent", "userAgent"},
                                  {"audit", "sourceIP", "sourceIP"},
                                  {"event", "action", "action"},
                                  {"event", "source", "source"}};
  static const char *types[][2] = {{"event/message", "message"},
                                   {"audit/objectSnapshot", "snapshot"},
                                   {"realError", "error"},
                                   {"realVerbose", ""},
                                   {"kelemetryError", "_debug"}};
  const char *src = kt_span_tag(c, SOURCE);
  struct kt_tag *f = NULL;
  size_t n = 0;
  add_field(&f, &n, SOURCE, src);
  add_field(&f, &n, src, c->operation);
  for (size_t i = 0; i < 4; i++) {
    const char *v = kt_span_tag(c, maps[i][1]);
    if (!strcmp(src, maps[i][0]) && v && *v)
      add_field(&f, &n, maps[i][2], v);
  }
  diff_fields(c, &f, &n);
  for (size_t i = 0; i < c->nlogs; i++)
    for (size_t j = 0; j < 5; j++)
      if (strcmp(c->logs[i].type, types[j][0]) == 0)
        add_field(&f, &n, types[j][1], c->logs[i].msg);
  kt_span_add_log_fields(parent, c->start_us, f, n);
}

static void collapse(struct kt_tree *t)
{
  for (size_t i = 0; i < t->n; i++) {
    if (!t->s[i] || !pseudo(t->s[i]))
      continue;
    for (size_t k = 0; k < t->nkids[i]; k++) {
      int c = t->kids[i][k];
      if (!t->s[c] || pseudo(t->s[c]) || !kt_span_tag(t->s[c], SOURCE))
        continue;
      collapse_child(t->s[i], t->s[c]);
      delete_subtree(t, c);
    }
  }
}

/* Pre-order, so a chain of extracted spans hoists to the first survivor. */
static void extract(struct kt_tree *t, int i, const char *type)
{
  struct kt_span *s = t->s[i];
  if (!s)
    return;
  int gone = i != t->root && is_type(s, type);
  for (size_t k = 0; k < t->nkids[i]; k++) {
    int c = t->kids[i][k];
    if (gone && t->s[c])
      t->s[c]->parent_id = s->parent_id;
    extract(t, c, type);
  }
  if (gone) {
    kt_span_free(s);
    t->s[i] = NULL;
  }
}

static void compact(struct kt_tree *t, int i)
{
  struct kt_span *s = t->s[i];
  int64_t lo = INT64_MAX, hi = INT64_MIN;
  for (size_t k = 0; k < t->nkids[i]; k++) {
    struct kt_span *c = t->s[t->kids[i][k]];
    if (!c)
      continue;
    compact(t, t->kids[i][k]);
    lo = c->start_us < lo ? c->start_us : lo;
    hi = c->end_us > hi ? c->end_us : hi;
  }
  if (!pseudo(s))
    return;
  for (size_t l = 0; l < s->nlogs; l++) {
    lo = s->logs[l].ts_us < lo ? s->logs[l].ts_us : lo;
    hi = s->logs[l].ts_us + 1000000 > hi ? s->logs[l].ts_us + 1000000 : hi;
  }
  if (lo > hi)
    return;
  if (i == t->root) {
    int64_t pad = (hi - lo) / 20;
    lo -= pad;
    hi += pad;
  }
  s->start_us = lo;
  s->end_us = hi;
}

/* Non-event logs of each span move to one child span per trace source. */
static void group_by_source(struct kt_tree *t)
{
  size_t n = t->n;
  for (size_t i = 0; i < n; i++) {
    struct kt_span *s = t->s[i];
    if (!s || is_type(s, "groupByTraceSource"))
      continue;
    struct kt_span *g = NULL;
    size_t keep = 0;
    for (size_t l = 0; l < s->nlogs; l++) {
      const char *src = kt_log_field(&s->logs[l], SOURCE);
      if (!src || strcmp(src, "event") == 0) {
        s->logs[keep++] = s->logs[l];
        continue;
      }
      if (!g) { /* one per source; the shipped config has only audit */
        g = kt_span_new(src, src);
        if (!g) {
          s->logs[keep++] = s->logs[l];
          continue;
        }
        memcpy(g->trace_id, s->trace_id, 16);
        g->span_id = kt_random_u64();
        g->parent_id = s->span_id;
        g->start_us = s->start_us;
        g->end_us = s->end_us;
        kt_span_add_tag(g, PSEUDO, "groupByTraceSource");
      }
      struct kt_log *lg = &s->logs[l];
      kt_span_add_log_fields(g, lg->ts_us, lg->fields, lg->nfields);
      free(lg->type);
      free(lg->msg);
    }
    s->nlogs = keep;
    if (g)
      kt_tree_add(t, g);
  }
}

static void cluster_prefix(struct kt_tree *t, int i, const char *parent)
{
  struct kt_span *s = t->s[i];
  const char *cl = kt_span_tag(s, "cluster");
  if (cl && *cl && (!parent || strcmp(cl, parent) != 0)) {
    char buf[512];
    snprintf(buf, sizeof buf, "%s %s", cl, s->service);
    set_str(&s->service, buf);
  }
  for (size_t k = 0; k < t->nkids[i]; k++)
    if (t->s[t->kids[i][k]])
      cluster_prefix(t, t->kids[i][k], cl && *cl ? cl : parent);
}

static void hhmmss(int64_t us, char *buf, size_t len)
{
  time_t secs = (time_t)(us / 1000000);
  struct tm tm;
  gmtime_r(&secs, &tm);
  strftime(buf, len, "%H:%M:%S", &tm);
}

static void prune_tags(struct kt_tree *t)
{
  for (size_t i = 0; i < t->n; i++) {
    struct kt_span *s = t->s[i];
    for (size_t j = 0; s && j < s->ntags;) {
      if (strncmp(s->tags[j].key, "zzz-", 4) == 0)
        kt_span_del_tag(s, s->tags[j].key);
      else
        j++;
    }
  }
  struct kt_span *r = t->s[t->root];
  char a[16], b[16], op[1024];
  hhmmss(r->start_us, a, sizeof a);
  hhmmss(r->end_us, b, sizeof b);
  snprintf(op, sizeof op, "%s / %s..%s", r->operation, a, b);
  set_str(&r->operation, op);
}

void kt_tree_transform(struct kt_tree *t, const struct kt_mode *m)
{
  if (kt_tree_index(t) < 0)
    return;
  prune_childless(t, t->root);
  kt_tree_index(t);
  object_tags(t, "nodes");
  service_operation(t);
  if (m->view == KT_VIEW_TRACING || m->view == KT_VIEW_GROUPED) {
    collapse(t);
    kt_tree_index(t);
  }
  if (m->view == KT_VIEW_TIMELINE || m->view == KT_VIEW_TRACING) {
    extract(t, t->root, m->view == KT_VIEW_TIMELINE ? "object" : "linkClass");
    kt_tree_index(t);
  }
  if (m->view == KT_VIEW_GROUPED) {
    group_by_source(t);
    kt_tree_index(t);
  }
  if (m->view == KT_VIEW_TRACING || m->view == KT_VIEW_GROUPED)
    compact(t, t->root);
  cluster_prefix(t, t->root, NULL);
  prune_tags(t);
}
